#version 460
// argsort of x [outer, n, inner] along n, the first k positions of each row
// into y [outer, k, inner] (I64); semantics: src/ops/op_sort.c, CPU
// reference: src/backends/cpu/cpu_sort.c. One workgroup per row (grid-
// stride over rows, uniform), 256 invocations.
//
// Every element gets a priority q (unsigned, larger first: the order key of
// the value, NaN above +inf, -0 as +0, complemented for ascending order);
// element i comes before j when q_i > q_j, or q_i == q_j and i < j: a total
// order, so the result does not depend on the algorithm.
//   n <= LIM: the row's (q, i) pairs are bitonic-sorted in shared memory.
//   n > LIM, k <= LIM: Q = the k-th largest q, found bit by bit from the
//     top (one counting pass over the row per key bit). Elements with
//     q == Q take the ranks after the c = count(q > Q) < k elements above
//     it, in index order (a running prefix count over the row); those c
//     are gathered into shared memory and bitonic-sorted.
//   n > LIM, k > LIM: sort_rank.comp (vk_sort.c chooses).
// Loops per invocation stay far below llvmpipe's cap of 65535 iterations
// per shader invocation for rows up to ~500k entries (BITS n / 256).
#include "common.glsl"
#if defined(T_F64) || defined(T_I64)
#define K uint64_t
#define BITS 64
#else
#define K uint
#define BITS 32
#endif
#define LIM 1024u
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x_, y_;
  int rows, n, k, inner, desc;
};

shared K sq[LIM];
shared uint si[LIM];
shared uint su[256];
shared uint scount;

K okey(T v) { // ascending order key (unsigned)
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

bool before(K qa, uint ia, K qb, uint ib) { return qa > qb || (qa == qb && ia < ib); }

uint tree_count(uint a) { // sum over the workgroup (< 2^31: a row has fewer elements)
  uint tid = gl_LocalInvocationID.x;
  su[tid] = a;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (tid < s) su[tid] += su[tid + s];
    barrier();
  }
  a = su[0];
  barrier();
  return a;
}

// Bitonic sort of sq/si[0..P) (P a power of two <= LIM) by `before`.
void bitonic(uint P) {
  for (uint size = 2u; size <= P; size <<= 1)
    for (uint st = size >> 1; st > 0u; st >>= 1) {
      for (uint t = gl_LocalInvocationID.x; t < P / 2u; t += 256u) {
        uint i = 2u * t - (t & (st - 1u)), j = i + st;
        bool up = (i & size) == 0u;
        K qi = sq[i], qj = sq[j];
        uint ii = si[i], ij = si[j];
        if (up ? before(qj, ij, qi, ii) : before(qi, ii, qj, ij)) {
          sq[i] = qj, sq[j] = qi;
          si[i] = ij, si[j] = ii;
        }
      }
      barrier();
    }
}

uint pow2_at_least(uint v) {
  uint p = 1u;
  while (p < v) p <<= 1;
  return p;
}

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x_);
  BufI64 y = BufI64(p.y_);
  const uint n = uint(p.n), k = uint(p.k), inner = uint(p.inner), tid = gl_LocalInvocationID.x;
  for (uint r = gl_WorkGroupID.x; r < uint(p.rows); r += gl_NumWorkGroups.x) { // uniform
    const uint xb = (r / inner) * n * inner + r % inner, yb = (r / inner) * k * inner + r % inner;
#define Q(e) (p.desc != 0 ? okey(x.v[xb + (e) * inner]) : ~okey(x.v[xb + (e) * inner]))
    if (n <= LIM) { // the whole row in shared memory
      const uint P = pow2_at_least(n);
      for (uint e = tid; e < P; e += 256u) {
        sq[e] = e < n ? Q(e) : K(0);
        si[e] = e < n ? e : 0xffffffffu; // padding sorts last
      }
      barrier();
      bitonic(P);
      for (uint e = tid; e < k; e += 256u) y.v[yb + e * inner] = int64_t(si[e]);
      barrier(); // shared memory is reused by the next row
      continue;
    }
    // Q = the k-th largest q: the largest value with count(q >= Q) >= k
    K thr = K(0);
    for (int b = BITS - 1; b >= 0; b--) {
      const K cand = thr | (K(1) << b);
      uint cnt = 0u;
      for (uint e = tid; e < n; e += 256u) cnt += Q(e) >= cand ? 1u : 0u;
      if (tree_count(cnt) >= k) thr = cand;
    }
    uint c = 0u; // elements above Q (< k)
    for (uint e = tid; e < n; e += 256u) c += Q(e) > thr ? 1u : 0u;
    c = tree_count(c);
    // ties at Q: ranks c, c+1, ... in index order (a running prefix count)
    uint seen = 0u;
    for (uint base = 0u; base < n && c + seen < k; base += 256u) { // uniform
      const uint e = base + tid;
      const uint f = e < n && Q(e) == thr ? 1u : 0u;
      su[tid] = f;
      barrier();
      for (uint s = 1u; s < 256u; s <<= 1) { // inclusive scan (Hillis-Steele)
        const uint add = tid >= s ? su[tid - s] : 0u;
        barrier();
        su[tid] += add;
        barrier();
      }
      const uint rank = c + seen + su[tid] - f, total = su[255];
      if (f != 0u && rank < k) y.v[yb + rank * inner] = int64_t(e);
      seen += total;
      barrier();
    }
    if (c == 0u) continue;
    // the c < k <= LIM elements above Q (vk_sort.c sends k > LIM to
    // sort_rank.comp): gathered into shared memory and sorted
    if (tid == 0u) scount = 0u;
    barrier();
    for (uint e = tid; e < n; e += 256u) {
      const K q = Q(e);
      if (q > thr) {
        const uint at = atomicAdd(scount, 1u);
        sq[at] = q;
        si[at] = e;
      }
    }
    barrier();
    const uint P = pow2_at_least(c);
    for (uint e = c + tid; e < P; e += 256u) {
      sq[e] = K(0);
      si[e] = 0xffffffffu;
    }
    barrier();
    bitonic(P);
    for (uint e = tid; e < c; e += 256u) y.v[yb + e * inner] = int64_t(si[e]);
    barrier();
#undef Q
  }
}
