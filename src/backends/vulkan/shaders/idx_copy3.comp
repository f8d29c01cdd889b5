#version 460
// Strided record copy (slice, concat) in units U of 4, 8 or 16 bytes:
// [outer, cnt, len] units, dst[o*d_o + j*d_j + k] = src[o*s_o + j*s_j + k].
// Consecutive invocations take consecutive k: both sides are contiguous runs.
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
  uint total, cnt, len, d_o, d_j, s_o, s_j;
};
void main() {
  Params p = Params(push.params);
  BufU y = BufU(p.dst), x = BufU(p.src);
  uint cnt = p.cnt, len = p.len, d_o = p.d_o, d_j = p.d_j, s_o = p.s_o, s_j = p.s_j;
  GRID_LOOP(e, p.total) {
    uint k = e % len, r = e / len;
    uint j = r % cnt, o = r / cnt;
    y.v[o * d_o + j * d_j + k] = x.v[o * s_o + j * s_j + k];
  }
}
