#version 460
// softmax / log_softmax (-DLOG) of x [outer, n, inner] along n.
//  - inner == 1 (rows = 1): g lanes per row (256/g rows per group), max
//    (NaN propagates) and sum of exp(x - max) joined by shared-memory trees;
//  - inner > 1 (rows = 0): an invocation per (outer, inner) line, the CPU's
//    loop; neighbouring invocations read neighbouring inner elements.
#include "common.glsl"
// m_exp / m_log: the same few-ulp results on every driver, f32 and f64
#include "math64.glsl"
#if defined(T_F64)
#define NEG_INF packDouble2x32(uvec2(0u, 0xfff00000u))
#else
#define NEG_INF uintBitsToFloat(0xff800000u)
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x_, y_;
  int outer, n, inner, g, rows;
};

shared T sh[256];
uint tid, lane;

T max_nan(T a, T b) { return isnan(a) ? a : isnan(b) ? b : (a > b ? a : b); }

// joins the g consecutive lanes of each row: max (mx) or sum; all lanes get it
T tree(T a, bool mx, uint g) {
  sh[tid] = a;
  barrier();
  for (uint s = g / 2; s > 0; s >>= 1) {
    if (lane < s) sh[tid] = mx ? max_nan(sh[tid], sh[tid + s]) : sh[tid] + sh[tid + s];
    barrier();
  }
  a = sh[tid - lane];
  barrier();
  return a;
}

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x_), y = BufT(p.y_);
  int n = p.n;
  if (p.rows == 0) {
    int inner = p.inner;
    GRID_LOOP(l, p.outer * inner) {
      int li = int(l), off = (li / inner) * n * inner + li % inner;
      T m = x.v[off];
      for (int j = 1; j < n; j++) {
        T v = x.v[off + j * inner];
        if (v > m || isnan(v)) m = v;
      }
      T sum = T(0);
#ifdef LOG
      for (int j = 0; j < n; j++) sum += m_exp(x.v[off + j * inner] - m);
      // (x - m) - log(sum), not x - (m + log(sum)): exact for large x
      T lg = m_log(sum);
      // precise: drivers may otherwise reassociate it into x - (m + lg)
      for (int j = 0; j < n; j++) {
        precise T d = (x.v[off + j * inner] - m) - lg;
        y.v[off + j * inner] = d;
      }
#else
      for (int j = 0; j < n; j++) {
        T e = m_exp(x.v[off + j * inner] - m);
        y.v[off + j * inner] = e;
        sum += e;
      }
      T inv = T(1) / sum;
      for (int j = 0; j < n; j++) y.v[off + j * inner] *= inv;
#endif
    }
    return;
  }
  tid = gl_LocalInvocationID.x;
  uint g = uint(p.g), RPG = 256 / g;
  lane = tid % g;
  uint groups = (uint(p.outer) + RPG - 1) / RPG;
  for (uint u = gl_WorkGroupID.x; u < groups; u += gl_NumWorkGroups.x) { // uniform per group
    int row = int(u * RPG + tid / g);
    bool live = row < p.outer;
    int base = live ? row * n : 0, end = live ? n : 0;
    T m = NEG_INF;
    for (int j = int(lane); j < end; j += int(g)) m = max_nan(m, x.v[base + j]);
    m = tree(m, true, g);
    T sum = T(0);
    for (int j = int(lane); j < end; j += int(g)) sum += m_exp(x.v[base + j] - m);
    sum = tree(sum, false, g);
#ifdef LOG
    T lg = m_log(sum);
    for (int j = int(lane); j < end; j += int(g)) {
      precise T d = (x.v[base + j] - m) - lg; // precise: as above
      y.v[base + j] = d;
    }
#else
    T inv = T(1) / sum;
    for (int j = int(lane); j < end; j += int(g)) y.v[base + j] = m_exp(x.v[base + j] - m) * inv;
#endif
  }
}
