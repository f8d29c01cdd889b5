#version 460
// argsort by counting (the path of sort_argsort.comp's rows of n > 1024
// entries with k > 1024): invocation (e, row) of a grid of ceil(n / 256) x
// rows workgroups counts the elements before element e (the order and the
// priorities q of sort_argsort.comp), over tiles of 256 held in shared
// memory, and writes e at that rank when it is < k. n comparisons per
// invocation (on llvmpipe, whose loops stop after 65535 iterations per
// invocation, rows up to ~65000 entries).
#include "common.glsl"
#if defined(T_F64) || defined(T_I64)
#define K uint64_t
#else
#define K uint
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x_, y_;
  int rows, n, k, inner, desc;
};

shared K tq[256];

K okey(T v) { // ascending order key (sort_argsort.comp)
#if defined(T_F64)
  if (isnan(v)) return ~K(0);
  uvec2 h = v == 0.0 ? uvec2(0u) : unpackDouble2x32(v);
  K u = (K(h.y) << 32) | K(h.x);
  return (h.y & 0x80000000u) != 0u ? ~u : (u | (K(1) << 63));
#elif defined(T_F32)
  if (isnan(v)) return ~K(0);
  uint u = v == 0.0 ? 0u : floatBitsToUint(v);
  return (u & 0x80000000u) != 0u ? ~u : (u | 0x80000000u);
#elif defined(T_I64)
  return K(v) ^ (K(1) << 63);
#else
  return uint(v) ^ 0x80000000u;
#endif
}

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x_);
  BufI64 y = BufI64(p.y_);
  const uint n = uint(p.n), k = uint(p.k), inner = uint(p.inner), tid = gl_LocalInvocationID.x;
  const uint e = gl_WorkGroupID.x * 256u + tid;
  for (uint r = gl_WorkGroupID.y; r < uint(p.rows); r += gl_NumWorkGroups.y) { // uniform
    const uint xb = (r / inner) * n * inner + r % inner, yb = (r / inner) * k * inner + r % inner;
#define Q(i) (p.desc != 0 ? okey(x.v[xb + (i) * inner]) : ~okey(x.v[xb + (i) * inner]))
    const K q = e < n ? Q(e) : K(0);
    uint rank = 0u;
    for (uint base = 0u; base < n; base += 256u) {
      barrier(); // the last tile is read
      if (base + tid < n) tq[tid] = Q(base + tid);
      barrier();
      const uint m = min(256u, n - base);
      for (uint t = 0u; t < m; t++) {
        const K qt = tq[t];
        rank += qt > q || (qt == q && base + t < e) ? 1u : 0u;
      }
    }
    if (e < n && rank < k) y.v[yb + rank * inner] = int64_t(e);
#undef Q
  }
}
