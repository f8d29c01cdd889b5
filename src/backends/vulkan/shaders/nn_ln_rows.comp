#version 460
// Layernorm row kernel, tpr (a power of two <= 256) threads per row, 256/tpr
// rows per work group, rows grid-strided over the groups. Statistics in the
// accumulator type A (f32: float, f64: double), two passes as on the CPU;
// fixed-order shared-memory tree reductions (deterministic).
//   mode 0 (layernorm):     x [R,C], gamma [C], beta [C]  -> y [R,C]
//   mode 1 (bwd_x):         dy [R,C] (a), x [R,C], gamma [C] (b) -> dx [R,C]
//   mode 2 (stats of bwd_gamma): x [R,C] -> mean [R], rstd [R] (A, at ws)
#include "common.glsl"
layout(local_size_x = 256) in;
#if defined(T_F64)
#define A double
#else
#define A float
#endif
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x, a, b, out_, ws;
#if defined(T_F64)
  double eps;
#else
  uint64_t eps_d_; // double eps of the C struct (no doubles in f32 shaders)
#endif
  float eps_f;
  uint R, C, tpr, mode;
};

shared A sh[256];

// Sum over the tpr threads of one row; every thread of the row gets it.
// Called by every thread of the group (barriers).
A row_sum(A v, uint lid, uint lane, uint tpr) {
  sh[lid] = v;
  barrier();
  for (uint s = tpr >> 1; s > 0; s >>= 1) {
    if (lane < s) sh[lid] += sh[lid + s];
    barrier();
  }
  A r = sh[lid - lane];
  barrier();
  return r;
}

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x), a = BufT(p.a), b = BufT(p.b), o = BufT(p.out_);
#if defined(T_F64)
  A eps = p.eps;
#else
  A eps = p.eps_f;
#endif
  uint lid = gl_LocalInvocationID.x, tpr = p.tpr, lane = lid & (tpr - 1u);
  uint rpg = 256u / tpr, R = p.R, C = p.C, mode = p.mode;
  // the loop bound is uniform over the group: every thread reaches the barriers
  for (uint base = gl_WorkGroupID.x * rpg; base < R; base += gl_NumWorkGroups.x * rpg) {
    uint r = base + lid / tpr;
    uint n = r < R ? C : 0u, off = r * C;
    A s = A(0);
    for (uint j = lane; j < n; j += tpr)
      s += A(x.v[off + j]);
    A mean = row_sum(s, lid, lane, tpr) / A(C);
    A q = A(0);
    for (uint j = lane; j < n; j += tpr) {
      A d = A(x.v[off + j]) - mean;
      q += d * d;
    }
    A rstd = A(1) / sqrt(row_sum(q, lid, lane, tpr) / A(C) + eps);
    if (mode == 0u) {
      for (uint j = lane; j < n; j += tpr)
        o.v[off + j] = T((A(x.v[off + j]) - mean) * rstd * A(a.v[j]) + A(b.v[j]));
    } else if (mode == 1u) { // a = dy, b = gamma
      A sg = A(0), sgx = A(0);
      for (uint j = lane; j < n; j += tpr) {
        A g = A(a.v[off + j]) * A(b.v[j]);
        sg += g;
        sgx += g * ((A(x.v[off + j]) - mean) * rstd);
      }
      sg = row_sum(sg, lid, lane, tpr) / A(C);
      sgx = row_sum(sgx, lid, lane, tpr) / A(C);
      for (uint j = lane; j < n; j += tpr) {
        A xh = (A(x.v[off + j]) - mean) * rstd;
        o.v[off + j] = T(rstd * (A(a.v[off + j]) * A(b.v[j]) - sg - xh * sgx));
      }
    } else if (lane == 0u && r < R) {
#if defined(T_F64)
      BufF64 st = BufF64(p.ws);
#else
      BufF32 st = BufF32(p.ws);
#endif
      st.v[r] = mean;
      st.v[R + r] = rstd;
    }
  }
}
