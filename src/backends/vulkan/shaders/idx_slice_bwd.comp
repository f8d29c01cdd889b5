#version 460
// slice_bwd: dy [outer, count, len] -> dx [outer, n, len] (units U), one
// pass writing every dx element: dy's row where i = start + j*step, else 0.
#include "common.glsl"
#if defined(U_128)
layout(buffer_reference, std430, buffer_reference_align = 16) buffer BufU { uvec4 v[]; };
#define UZERO uvec4(0)
#elif defined(U_64)
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufU { uvec2 v[]; };
#define UZERO uvec2(0)
#else
#define BufU BufU32
#define UZERO 0u
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, src;
  uint total, n, len, start, step, count;
};
void main() {
  Params p = Params(push.params);
  BufU y = BufU(p.dst), x = BufU(p.src);
  uint n = p.n, len = p.len, start = p.start, step = p.step, count = p.count;
  GRID_LOOP(e, p.total) {
    uint k = e % len, r = e / len;
    uint i = r % n, o = r / n;
    uint d = i - start, j = d / step; // d wraps above count*step when i < start
    bool hit = i >= start && j * step == d && j < count;
    y.v[e] = hit ? x.v[(o * count + j) * len + k] : UZERO;
  }
}
