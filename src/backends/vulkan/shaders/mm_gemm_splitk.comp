#version 460
// Split-K epilogue of mm_gemm_v.comp: c[i] = sum_{s<S} ws[s*n + i], added in
// order s = 0..S-1 so that results do not depend on scheduling.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t c_, ws;
  int n, S; // output elements, partials (S * n < 2^31)
};
void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.c_), w = BufT(p.ws);
  uint n = uint(p.n), S = uint(p.S);
  GRID_LOOP(i, n) {
    T a = T(0);
    for (uint s = 0; s < S; s++)
      a += w.v[s * n + i];
    o.v[i] = a;
  }
}
