#version 460
// RMSNorm row kernel (the layout of nn_ln_rows.comp): tpr (a power of two
// <= 256) threads per row, 256/tpr rows per work group, rows grid-strided
// over the groups. The mean square accumulates in A (f32: float, f64:
// double) with a fixed-order shared-memory tree reduction (deterministic).
//   x [R,C], w [C] -> y [R,C] = x / sqrt(mean(x^2) + eps) * w
#include "common.glsl"
layout(local_size_x = 256) in;
#if defined(T_F64)
#define A double
#else
#define A float
#endif
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x, w, out_;
#if defined(T_F64)
  double eps;
#else
  uint64_t eps_d_; // double eps of the C struct (no doubles in f32 shaders)
#endif
  float eps_f;
  uint R, C, tpr;
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
  BufT x = BufT(p.x), w = BufT(p.w), o = BufT(p.out_);
#if defined(T_F64)
  A eps = p.eps;
#else
  A eps = p.eps_f;
#endif
  uint lid = gl_LocalInvocationID.x, tpr = p.tpr, lane = lid & (tpr - 1u);
  uint rpg = 256u / tpr, R = p.R, C = p.C;
  // the loop bound is uniform over the group: every thread reaches the barriers
  for (uint base = gl_WorkGroupID.x * rpg; base < R; base += gl_NumWorkGroups.x * rpg) {
    uint r = base + lid / tpr;
    uint n = r < R ? C : 0u, off = r * C;
    A q = A(0);
    for (uint j = lane; j < n; j += tpr) {
      A v = A(x.v[off + j]);
      q += v * v;
    }
    A rstd = A(1) / sqrt(row_sum(q, lid, lane, tpr) / A(C) + eps);
    for (uint j = lane; j < n; j += tpr)
      o.v[off + j] = T(A(x.v[off + j]) * rstd * A(w.v[j]));
  }
}
