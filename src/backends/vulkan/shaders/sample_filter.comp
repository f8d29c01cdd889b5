#version 460
// sample_filter of x [rows, V] (semantics and steps: src/backends/cpu/
// cpu_sample.c): one workgroup per row (grid-stride over rows); each pass
// over the row (max, a count or a sum per key bit) is a shared-memory tree
// in a fixed order (deterministic). top_k (i32/i64) and top_p (f32 or T)
// are read here. The weights of the top-p passes are kept in the output
// row. Sums are in T (no double needed for f32), so a top-p threshold may
// differ from the CPU's (double sums) where the crossing lies within
// rounding of p.
#include "common.glsl"
#include "math64.glsl" // m_exp: the same few-ulp results on every driver
#if defined(T_F64)
#define K uint64_t
#define BITS 64
#define INF m64_inf()
#define NANV m64_nan()
K okey(double v) { // order key: unsigned, ordered as the values, -0 as +0
  uvec2 h = v == 0.0 ? uvec2(0u) : unpackDouble2x32(v);
  K u = (K(h.y) << 32) | K(h.x);
  return (h.y & 0x80000000u) != 0u ? ~u : (u | (K(1) << 63));
}
#else
#define K uint
#define BITS 32
#define INF m32_inf()
#define NANV m32_nan()
K okey(float v) {
  uint u = v == 0.0 ? 0u : floatBitsToUint(v);
  return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
}
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x_, y_, k_, p_;
  int rows, V, k64, p32;
};

shared T sh[256];
shared int shc[256];

T tree_sum(T a) {
  uint tid = gl_LocalInvocationID.x;
  sh[tid] = a;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (tid < s) sh[tid] += sh[tid + s];
    barrier();
  }
  a = sh[0];
  barrier();
  return a;
}
T tree_max(T a) {
  uint tid = gl_LocalInvocationID.x;
  sh[tid] = a;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (tid < s && sh[tid + s] > sh[tid]) sh[tid] = sh[tid + s];
    barrier();
  }
  a = sh[0];
  barrier();
  return a;
}
int tree_count(int a) { // counts < 2^31: a row has fewer elements
  uint tid = gl_LocalInvocationID.x;
  shc[tid] = a;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (tid < s) shc[tid] += shc[tid + s];
    barrier();
  }
  a = shc[0];
  barrier();
  return a;
}

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x_), y = BufT(p.y_);
  const int64_t k = p.k64 != 0 ? BufI64(p.k_).v[0] : int64_t(BufI32(p.k_).v[0]);
  const T pv = p.p32 != 0 ? T(BufF32(p.p_).v[0]) : BufT(p.p_).v[0];
  const uint V = uint(p.V), tid = gl_LocalInvocationID.x;
  for (uint r = gl_WorkGroupID.x; r < uint(p.rows); r += gl_NumWorkGroups.x) { // uniform
    const uint base = r * V;
    // 1. max; a NaN makes the row all NaN
    T m = -INF;
    int nan = 0;
    for (uint i = tid; i < V; i += 256u) {
      T v = x.v[base + i];
      if (isnan(v))
        nan = 1;
      else if (v > m)
        m = v;
    }
    m = tree_max(m);
    if (tree_count(nan) != 0) {
      for (uint i = tid; i < V; i += 256u) y.v[base + i] = NANV;
      continue;
    }
    // 2. top-k: the largest key K with count(key >= K) >= k
    K kk = K(0), kp = K(0);
    if (k > 0 && k < int64_t(V))
      for (int b = BITS - 1; b >= 0; b--) {
        K cand = kk | (K(1) << b);
        int n = 0;
        for (uint i = tid; i < V; i += 256u) n += okey(x.v[base + i]) >= cand ? 1 : 0;
        if (int64_t(tree_count(n)) >= k) kk = cand;
      }
    // 3. top-p: weights in y, then the largest K with sum(w : key >= K) >= p Z
    if (!(pv > T(0))) {
      kp = okey(m);
    } else if (pv < T(1)) {
      T z = T(0);
      for (uint i = tid; i < V; i += 256u) {
        T v = x.v[base + i];
        T w = okey(v) < kk ? T(0) : v == m ? T(1) : m_exp(v - m);
        y.v[base + i] = w;
        z += w;
      }
      T goal = pv * tree_sum(z);
      for (int b = BITS - 1; b >= 0; b--) {
        K cand = kp | (K(1) << b);
        T s = T(0);
        for (uint i = tid; i < V; i += 256u)
          if (okey(x.v[base + i]) >= cand) s += y.v[base + i];
        if (tree_sum(s) >= goal) kp = cand;
      }
    }
    // 4. keep key >= both thresholds (each invocation rewrites its own entries)
    K thr = kk > kp ? kk : kp;
    for (uint i = tid; i < V; i += 256u) {
      T v = x.v[base + i];
      y.v[base + i] = okey(v) >= thr ? v : -INF;
    }
  }
}
