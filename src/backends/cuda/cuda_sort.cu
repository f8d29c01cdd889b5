// CUDA kernels of argsort and cumsum (semantics: src/ops/op_sort.c; CPU
// reference: src/backends/cpu/cpu_sort.c). The same steps as the Vulkan
// shaders (src/backends/vulkan/shaders/sort_argsort.comp, sort_cumsum.comp),
// one block per row (grid-stride over rows).
//
// argsort: each element has a priority q (unsigned, larger first: the
// value's order key, NaN above +inf, -0 as +0, complemented for ascending);
// i comes before j when q_i > q_j, or q_i == q_j and i < j (a total order:
// the result is the CPU's whatever the algorithm).
//   n <= kLim (2048): the row's (q, i) pairs are bitonic-sorted in shared
//     memory.
//   n > kLim, k <= kLim: Q = the k-th largest q, bit by bit from the top
//     (a counting pass per key bit); the elements with q == Q take ranks c,
//     c+1, ... (c = count(q > Q) < k) in index order by a running prefix
//     count; the c elements above Q are gathered into shared memory and
//     sorted (top-k sampling of vocabulary rows).
//   n > kLim, k > kLim: rank_kernel, one thread per entry counting the
//     entries before it (n^2 comparisons per row, spread over the grid).
// cumsum: chunks of 256 scanned in shared memory in double (f32, f64) or
// unsigned integers (wrapping), plus the running sum of earlier chunks.
#include <stdint.h>

#include "backends/cuda/cuda.h"

namespace {

constexpr int kThreads = 1024;
constexpr unsigned kLim = 2048;

__device__ __forceinline__ uint32_t okey(float v) {
  if (isnan(v)) return 0xffffffffu;
  const uint32_t u = v == 0.0f ? 0u : __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ unsigned long long okey(double v) {
  if (isnan(v)) return ~0ull;
  const unsigned long long u = v == 0.0 ? 0ull : (unsigned long long)__double_as_longlong(v);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}
__device__ __forceinline__ uint32_t okey(int32_t v) { return (uint32_t)v ^ 0x80000000u; }
__device__ __forceinline__ unsigned long long okey(long long v) {
  return (unsigned long long)v ^ 0x8000000000000000ull;
}

template <typename K> __device__ __forceinline__ bool before(K qa, unsigned ia, K qb, unsigned ib) {
  return qa > qb || (qa == qb && ia < ib);
}

__device__ unsigned block_count(unsigned v, unsigned *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  const unsigned r = sh[0];
  __syncthreads();
  return r;
}

template <typename K> __device__ void bitonic(K *sq, unsigned *si, unsigned P) {
  for (unsigned size = 2; size <= P; size <<= 1)
    for (unsigned st = size >> 1; st > 0; st >>= 1) {
      for (unsigned t = threadIdx.x; t < P / 2; t += kThreads) {
        const unsigned i = 2 * t - (t & (st - 1)), j = i + st;
        const bool up = (i & size) == 0;
        const K qi = sq[i], qj = sq[j];
        const unsigned ii = si[i], ij = si[j];
        if (up ? before(qj, ij, qi, ii) : before(qi, ii, qj, ij)) {
          sq[i] = qj, sq[j] = qi;
          si[i] = ij, si[j] = ii;
        }
      }
      __syncthreads();
    }
}

__device__ __forceinline__ unsigned pow2_at_least(unsigned v) {
  unsigned p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

// x [outer, n, inner] -> y [outer, k, inner] (int64 positions along n).
template <typename T, typename K, int BITS>
__global__ void __launch_bounds__(kThreads)
    argsort_kernel(long long *__restrict__ y, const T *__restrict__ x, long long rows, long long n,
                   long long k, long long inner, bool desc) {
  __shared__ K sq[kLim];
  __shared__ unsigned si[kLim];
  __shared__ unsigned su[kThreads];
  __shared__ unsigned scount;
  const unsigned tid = threadIdx.x;
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) { // uniform per block
    const T *xr = x + (r / inner) * n * inner + r % inner;
    long long *yr = y + (r / inner) * k * inner + r % inner;
    auto Q = [&](long long e) -> K {
      const K o = okey(xr[e * inner]);
      return desc ? o : (K)~o;
    };
    if (n <= (long long)kLim) { // the whole row in shared memory
      const unsigned P = pow2_at_least((unsigned)n);
      for (unsigned e = tid; e < P; e += kThreads) {
        sq[e] = e < n ? Q(e) : (K)0;
        si[e] = e < n ? e : 0xffffffffu; // padding sorts last
      }
      __syncthreads();
      bitonic(sq, si, P);
      for (long long e = tid; e < k; e += kThreads)
        yr[e * inner] = si[e];
      __syncthreads();
      continue;
    }
    K thr = 0; // the k-th largest q
    for (int b = BITS - 1; b >= 0; b--) {
      const K cand = thr | ((K)1 << b);
      unsigned cnt = 0;
      for (long long e = tid; e < n; e += kThreads)
        cnt += Q(e) >= cand;
      if (block_count(cnt, su) >= k) thr = cand;
    }
    unsigned c = 0;
    for (long long e = tid; e < n; e += kThreads)
      c += Q(e) > thr;
    c = block_count(c, su);
    // ties at thr: ranks c, c+1, ... in index order
    unsigned long long seen = 0;
    for (long long base = 0; base < n && c + seen < (unsigned long long)k; base += kThreads) {
      const long long e = base + tid;
      const unsigned f = e < n && Q(e) == thr;
      su[tid] = f;
      __syncthreads();
      for (unsigned s = 1; s < kThreads; s <<= 1) { // inclusive scan
        const unsigned add = tid >= s ? su[tid - s] : 0;
        __syncthreads();
        su[tid] += add;
        __syncthreads();
      }
      const unsigned long long rank = c + seen + su[tid] - f;
      const unsigned total = su[kThreads - 1];
      if (f && rank < (unsigned long long)k) yr[rank * inner] = e;
      seen += total;
      __syncthreads();
    }
    if (c == 0) continue;
    // the c < k <= kLim elements above thr (argsort_run sends k > kLim to
    // rank_kernel): gathered into shared memory and sorted
    if (tid == 0) scount = 0;
    __syncthreads();
    for (long long e = tid; e < n; e += kThreads) {
      const K q = Q(e);
      if (q > thr) {
        const unsigned at = atomicAdd(&scount, 1u);
        sq[at] = q;
        si[at] = (unsigned)e;
      }
    }
    __syncthreads();
    const unsigned P = pow2_at_least(c);
    for (unsigned e = c + tid; e < P; e += kThreads) {
      sq[e] = 0;
      si[e] = 0xffffffffu;
    }
    __syncthreads();
    bitonic(sq, si, P);
    for (unsigned e = tid; e < c; e += kThreads)
      yr[(long long)e * inner] = si[e];
    __syncthreads();
  }
}

constexpr int kRank = 256;

// Rows of n > kLim with k > kLim: thread (e, row) of a grid of
// ceil(n / kRank) x rows blocks counts the elements before element e over
// tiles held in shared memory and writes e at that rank when it is < k.
template <typename T, typename K>
__global__ void __launch_bounds__(kRank)
    rank_kernel(long long *__restrict__ y, const T *__restrict__ x, long long rows, long long n,
                long long k, long long inner, bool desc) {
  __shared__ K tq[kRank];
  const unsigned tid = threadIdx.x;
  const long long e = (long long)blockIdx.x * kRank + tid;
  for (long long r = blockIdx.y; r < rows; r += gridDim.y) { // uniform per block
    const T *xr = x + (r / inner) * n * inner + r % inner;
    long long *yr = y + (r / inner) * k * inner + r % inner;
    auto Q = [&](long long i) -> K {
      const K o = okey(xr[i * inner]);
      return desc ? o : (K)~o;
    };
    const K q = e < n ? Q(e) : (K)0;
    long long rank = 0;
    for (long long base = 0; base < n; base += kRank) {
      __syncthreads(); // the last tile is read
      if (base + tid < n) tq[tid] = Q(base + tid);
      __syncthreads();
      const int m = n - base < kRank ? (int)(n - base) : kRank;
      for (int t = 0; t < m; t++)
        rank += tq[t] > q || (tq[t] == q && base + t < e);
    }
    if (e < n && rank < k) yr[rank * inner] = e;
  }
}

constexpr int kScan = 256;

// T values accumulated in A (double for floats, unsigned for integers).
template <typename T, typename A>
__global__ void __launch_bounds__(kScan)
    cumsum_kernel(T *__restrict__ y, const T *__restrict__ x, long long rows, long long n,
                  long long inner, bool excl, bool rev) {
  __shared__ A sh[kScan];
  const unsigned tid = threadIdx.x;
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const long long b = (r / inner) * n * inner + r % inner;
    A carry = 0;
    for (long long base = 0; base < n; base += kScan) {
      const long long e = base + tid;
      const long long at = b + (rev ? n - 1 - (e < n ? e : n - 1) : e) * inner;
      const A v = e < n ? (A)x[at] : (A)0;
      sh[tid] = v;
      __syncthreads();
      for (unsigned s = 1; s < kScan; s <<= 1) {
        const A add = tid >= s ? sh[tid - s] : (A)0;
        __syncthreads();
        sh[tid] += add;
        __syncthreads();
      }
      const A part = excl ? (tid > 0 ? sh[tid - 1] : (A)0) : sh[tid];
      if (e < n) y[at] = (T)(carry + part);
      carry += sh[kScan - 1];
      __syncthreads();
    }
  }
}

struct row_geom {
  long long rows, n, inner;
};

row_geom geom(const asg_step *s) {
  const asg_shape xs = s->in[0].shape;
  const int a = (int)s->attr.i[0];
  row_geom g = {1, xs.dims[a], 1};
  for (int d = 0; d < xs.ndim; d++)
    if (d != a) (d < a ? g.rows : g.inner) *= xs.dims[d];
  g.rows *= g.inner;
  return g;
}

unsigned grid_for(long long rows) { return (unsigned)(rows < 65535 ? rows : 65535); }

asg_status argsort_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const row_geom g = geom(s);
  const long long k = s->out.shape.dims[s->attr.i[0]];
  const bool desc = s->attr.i[1] != 0;
  if (g.n >= (1ll << 31))
    return asg__error(ASG_ERR_UNSUPPORTED, "cuda: %s: rows of %lld entries (at most 2^31 - 1)",
                      s->label, g.n);
  if (g.rows == 0) return ASG_OK;
  cudaStream_t st = c->ctx->stream;
  long long *y = (long long *)c->out;
  const unsigned grid = grid_for(g.rows);
  if (g.n > (long long)kLim && k > (long long)kLim) {
    const long long bx = (g.n + kRank - 1) / kRank;
    if (bx >= (1ll << 31))
      return asg__error(ASG_ERR_UNSUPPORTED, "cuda: %s: rows of %lld entries", s->label, g.n);
    const dim3 rg((unsigned)bx, grid);
    switch (s->in[0].dtype) {
    case ASG_F32:
      rank_kernel<float, uint32_t>
          <<<rg, kRank, 0, st>>>(y, (const float *)c->in[0], g.rows, g.n, k, g.inner, desc);
      break;
    case ASG_F64:
      rank_kernel<double, unsigned long long>
          <<<rg, kRank, 0, st>>>(y, (const double *)c->in[0], g.rows, g.n, k, g.inner, desc);
      break;
    case ASG_I32:
      rank_kernel<int32_t, uint32_t>
          <<<rg, kRank, 0, st>>>(y, (const int32_t *)c->in[0], g.rows, g.n, k, g.inner, desc);
      break;
    case ASG_I64:
      rank_kernel<long long, unsigned long long>
          <<<rg, kRank, 0, st>>>(y, (const long long *)c->in[0], g.rows, g.n, k, g.inner, desc);
      break;
    default:
      return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                        asg_dtype_name(s->in[0].dtype));
    }
    return asg_cuda_check(c);
  }
  switch (s->in[0].dtype) {
  case ASG_F32:
    argsort_kernel<float, uint32_t, 32>
        <<<grid, kThreads, 0, st>>>(y, (const float *)c->in[0], g.rows, g.n, k, g.inner, desc);
    break;
  case ASG_F64:
    argsort_kernel<double, unsigned long long, 64>
        <<<grid, kThreads, 0, st>>>(y, (const double *)c->in[0], g.rows, g.n, k, g.inner, desc);
    break;
  case ASG_I32:
    argsort_kernel<int32_t, uint32_t, 32>
        <<<grid, kThreads, 0, st>>>(y, (const int32_t *)c->in[0], g.rows, g.n, k, g.inner, desc);
    break;
  case ASG_I64:
    argsort_kernel<long long, unsigned long long, 64>
        <<<grid, kThreads, 0, st>>>(y, (const long long *)c->in[0], g.rows, g.n, k, g.inner, desc);
    break;
  default:
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->in[0].dtype));
  }
  return asg_cuda_check(c);
}

asg_status cumsum_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const row_geom g = geom(s);
  const bool excl = s->attr.i[1] != 0, rev = s->attr.i[2] != 0;
  if (g.rows == 0) return ASG_OK;
  cudaStream_t st = c->ctx->stream;
  const unsigned grid = grid_for(g.rows);
  switch (s->out.dtype) {
  case ASG_F32:
    cumsum_kernel<float, double><<<grid, kScan, 0, st>>>((float *)c->out, (const float *)c->in[0],
                                                         g.rows, g.n, g.inner, excl, rev);
    break;
  case ASG_F64:
    cumsum_kernel<double, double><<<grid, kScan, 0, st>>>(
        (double *)c->out, (const double *)c->in[0], g.rows, g.n, g.inner, excl, rev);
    break;
  case ASG_I32:
    cumsum_kernel<int32_t, uint32_t><<<grid, kScan, 0, st>>>(
        (int32_t *)c->out, (const int32_t *)c->in[0], g.rows, g.n, g.inner, excl, rev);
    break;
  case ASG_I64:
    cumsum_kernel<long long, unsigned long long><<<grid, kScan, 0, st>>>(
        (long long *)c->out, (const long long *)c->in[0], g.rows, g.n, g.inner, excl, rev);
    break;
  default:
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->out.dtype));
  }
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_sort(asg_cuda_kernel *t) {
  t[ASG_OP_ARGSORT].run = argsort_run;
  t[ASG_OP_CUMSUM].run = cumsum_run;
}
