#version 460
// General permute, one invocation per output unit (writes coalesced):
// y[e] = x[sum_j coord_j(e) * oist_j] over the output dims od (simplified:
// size-1 dims dropped, adjacent in-order dims merged). When the last dim
// stays last, units U hold several elements of it (wide moves).
#include "common.glsl"
#if defined(U_128)
layout(buffer_reference, std430, buffer_reference_align = 16) buffer BufU { uvec4 v[]; };
#elif defined(U_64)
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufU { uvec2 v[]; };
#else
#define BufU BufU32
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, src;
  uint total;
  int nd;
  uint od[8], oist[8];
};
void main() {
  Params p = Params(push.params);
  BufU y = BufU(p.dst), x = BufU(p.src);
  int nd = p.nd;
  uint od[8], oist[8];
  for (int j = 0; j < 8; j++) {
    od[j] = p.od[j];
    oist[j] = p.oist[j];
  }
  GRID_LOOP(e, p.total) {
    uint r = e, off = 0;
    for (int j = nd - 1; j > 0; j--) {
      uint q = r / od[j];
      off += (r - q * od[j]) * oist[j];
      r = q;
    }
    y.v[e] = x.v[off + r * oist[0]];
  }
}
