#version 460
// dgamma partials of layernorm_bwd_gamma: a group of 32 columns x 8 row lanes
// sums, for row chunk p = group y, rows [p*rows_per, (p+1)*rows_per) of
// dy * xhat into part [P, C] (A). Column tiles grid-stride over group x.
//   dy [R,C], x [R,C], mean [R], rstd [R] -> part [P,C]
#include "common.glsl"
layout(local_size_x = 32, local_size_y = 8) in;
#if defined(T_F64)
#define A double
#define BufA BufF64
#else
#define A float
#define BufA BufF32
#endif
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dy, x, stats, part;
  uint R, C, rows_per;
};

shared A sh[8][32];

void main() {
  Params p = Params(push.params);
  BufT dy = BufT(p.dy), x = BufT(p.x);
  BufA st = BufA(p.stats), part = BufA(p.part);
  uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y, R = p.R, C = p.C;
  uint pc = gl_WorkGroupID.y, r0 = pc * p.rows_per, r1 = min(r0 + p.rows_per, R);
  uint tiles = (C + 31u) / 32u;
  for (uint t = gl_WorkGroupID.x; t < tiles; t += gl_NumWorkGroups.x) {
    uint j = t * 32u + lx;
    A acc = A(0);
    if (j < C)
      for (uint r = r0 + ly; r < r1; r += 8u)
        acc += A(dy.v[r * C + j]) * ((A(x.v[r * C + j]) - st.v[r]) * st.v[R + r]);
    sh[ly][lx] = acc;
    barrier();
    if (ly == 0u && j < C) {
      A s = sh[0][lx];
      for (uint k = 1u; k < 8u; k++)
        s += sh[k][lx];
      part.v[pc * C + j] = s;
    }
    barrier();
  }
}
