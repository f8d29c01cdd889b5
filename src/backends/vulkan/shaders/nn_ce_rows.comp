#version 460
// Softmax cross-entropy row kernel, tpr threads per row (power of two <= 256),
// 256/tpr rows per group, rows grid-strided. Rows whose label is ignore_index
// or outside [0, C) are left out (never indexed; out-of-range ones are
// reported to fault, fault.glsl). Accumulates in A = T. With lse = m + lg
// (m the row's max, lg = log(sum exp(x - m))), x - lse is computed as
// (x - m) - lg: exact for large logits, where m + lg would round lg away.
//   mode 0: logits [R,C], labels [R] -> row losses [R] (A, at ws; 0 if left out)
//           (1-ls) * (lg - (x[label] - m)) + ls * (lg - mean_c (x - m))
//   mode 1: logits [R,C], labels [R], dloss [], count (uint at ws) -> dlogits [R,C]
//           (softmax - ((1-ls) onehot + ls/C)) * dloss / count; 0 if left out
#include "common.glsl"
#include "fault.glsl"
#if defined(T_F64)
#include "math64.glsl"
#define A double
#define EXP m_exp
#define LOG m_log
#else
#define A float
#define EXP exp
#define LOG log
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x, lab, dloss, out_, ws, fault;
  int64_t ign;
#if defined(T_F64)
  double ls;
#else
  uint64_t ls_d_; // double of the C struct (no doubles in f32 shaders)
#endif
  float ls_f;
  uint R, C, tpr, mode, lab64, step1;
};

shared A sh[256];

// Sum (max: NaN-propagating like the CPU) over the tpr threads of one row;
// every thread of the row gets it. Called by every thread of the group.
A row_reduce(A v, bool is_max, uint lid, uint lane, uint tpr) {
  sh[lid] = v;
  barrier();
  for (uint s = tpr >> 1; s > 0; s >>= 1) {
    if (lane < s) {
      A u = sh[lid], w = sh[lid + s];
      sh[lid] = is_max ? ((w > u || isnan(w)) ? w : u) : u + w;
    }
    barrier();
  }
  A r = sh[lid - lane];
  barrier();
  return r;
}

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x), o = BufT(p.out_);
#if defined(T_F64)
  A ls = p.ls;
  BufF64 row = BufF64(p.ws);
#else
  A ls = p.ls_f;
  BufF32 row = BufF32(p.ws);
#endif
  uint lid = gl_LocalInvocationID.x, tpr = p.tpr, lane = lid & (tpr - 1u);
  uint rpg = 256u / tpr, R = p.R, C = p.C, mode = p.mode;
  A scale = A(0), off = ls / A(C);
  if (mode == 1u) {
    uint cnt = BufU32(p.ws).v[0];
    scale = cnt > 0u ? A(BufT(p.dloss).v[0]) / A(cnt) : A(0);
  }
  // the loop bound is uniform over the group: every thread reaches the barriers
  for (uint base = gl_WorkGroupID.x * rpg; base < R; base += gl_NumWorkGroups.x * rpg) {
    uint r = base + lid / tpr, off_r = r * C;
    int64_t l = -1;
    if (r < R) l = p.lab64 != 0u ? BufI64(p.lab).v[r] : int64_t(BufI32(p.lab).v[r]);
    bool ok = r < R && l != p.ign && l >= 0 && l < int64_t(C);
    if (lane == 0u && r < R && !ok && l != p.ign) report_index(p.fault, p.step1, l);
    uint n = ok ? C : 0u, li = uint(l);
    A m = A(uintBitsToFloat(0xff800000u)); // -inf
    for (uint j = lane; j < n; j += tpr) {
      A v = A(x.v[off_r + j]);
      if (v > m || isnan(v)) m = v;
    }
    m = row_reduce(m, true, lid, lane, tpr);
    A s = A(0);
    for (uint j = lane; j < n; j += tpr)
      s += EXP(A(x.v[off_r + j]) - m);
    s = row_reduce(s, false, lid, lane, tpr);
    A lg = LOG(s);
    if (mode == 0u) {
      precise A v = A(0); // precise: no reassociation into x - (m + lg)
      if (ok) v = (A(1) - ls) * (lg - (A(x.v[off_r + li]) - m));
      if (ls > A(0)) { // uniform
        precise A sx = A(0);
        for (uint j = lane; j < n; j += tpr)
          sx += A(x.v[off_r + j]) - m;
        sx = row_reduce(sx, false, lid, lane, tpr);
        v += ls * (lg - sx / A(C));
      }
      if (lane == 0u && r < R) row.v[r] = ok ? v : A(0);
    } else if (r < R) {
      for (uint j = lane; j < C; j += tpr) {
        precise A v = A(0);
        if (ok) {
          precise A t = (A(x.v[off_r + j]) - m) - lg;
          v = EXP(t) - off;
          if (j == li) v -= A(1) - ls;
        }
        o.v[off_r + j] = T(v * scale);
      }
    }
  }
}
