#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_fastdiv.cuh"
#include "runtime/layout.h"
// CUDA kernels of the reduce family: sum, mean, max, min, var, argmax over
// any axis set, and softmax / log_softmax along one axis. Semantics follow
// the CPU reference (src/backends/cpu/cpu_reduce.c, cpu_nn.c).
//
// Reductions: on the host the input dims are coalesced into runs of kept
// and reduced axes (asg__reduce_plan, runtime/layout.h). Then
//  - "rows": the innermost dim is reduced (e.g. [B, C] -> [B], or the
//    batch-norm statistics [N, C, HW] -> [C]): a warp (short rows) or a
//    block (long rows) per output, neighbouring threads on neighbouring
//    reduced elements, shuffle + shared-memory tree;
//  - "cols": the innermost dim is kept (e.g. [B, C] -> [C]): neighbouring
//    threads take neighbouring outputs (coalesced reads), and BY thread
//    slices of a block share the reduced set of each output, joined in
//    shared memory.
// When there are too few outputs to fill the GPU (e.g. a full reduction),
// the reduced set is cut into S chunks whose partials go to the workspace
// and a second kernel joins them. Every order is fixed: results are
// deterministic. Sums accumulate in double (floats) or int64 (integers), as
// on the CPU (the f32 column sums of [R, C] -> [C] add runs of up to 16 rows
// in f32 first: values near the f32 limit may then overflow where double
// would not); max/min/argmax keep the first extreme index, and the first NaN
// wins (NaN propagates).
#include <math.h>
#include <stdint.h>

#include <limits>
#include <type_traits>

namespace {

constexpr int kThreads = 256;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }

template <class T> __device__ __forceinline__ bool is_nan(T v) {
  if constexpr (std::is_floating_point<T>::value)
    return v != v;
  else
    return false;
}

// ---- warp shuffles for every partial type ----
__device__ __forceinline__ float shx(float v, int m) { return __shfl_xor_sync(kFull, v, m); }
__device__ __forceinline__ double shx(double v, int m) { return __shfl_xor_sync(kFull, v, m); }
__device__ __forceinline__ int shx(int v, int m) { return __shfl_xor_sync(kFull, v, m); }
__device__ __forceinline__ long long shx(long long v, int m) {
  return __shfl_xor_sync(kFull, v, m);
}
__device__ __forceinline__ long shx(long v, int m) {
  return (long)__shfl_xor_sync(kFull, (long long)v, m);
}

template <class T> struct Best {
  T v;
  long long i; // index along the flattened reduced set; < 0: no element yet
};
template <class T> __device__ __forceinline__ Best<T> shx(Best<T> b, int m) {
  return Best<T>{shx(b.v, m), shx(b.i, m)};
}

// ---- reducers: P is the partial, join must be commutative and associative
// (bitwise, so that every thread of a butterfly gets the same value) ----
template <class T> using Acc = std::conditional_t<std::is_integral<T>::value, long long, double>;

template <int OP, class T> struct Red {
  static constexpr bool kSum = OP == ASG_OP_SUM || OP == ASG_OP_MEAN || OP == ASG_OP_VAR;
  using P = std::conditional_t<kSum, Acc<T>, Best<T>>;
  __device__ __forceinline__ static P none() {
    if constexpr (kSum)
      return P(0);
    else
      return P{T(0), -1};
  }
  __device__ __forceinline__ static P elem(T v, long long j) {
    if constexpr (kSum)
      return (P)v;
    else
      return P{v, j};
  }
  __device__ __forceinline__ static P join(P a, P b) {
    if constexpr (kSum) {
      return a + b;
    } else {
      if (a.i < 0) return b;
      if (b.i < 0) return a;
      const bool an = is_nan(a.v), bn = is_nan(b.v);
      if (an != bn) return an ? a : b; // NaN beats numbers
      if (!an) {
        if constexpr (OP == ASG_OP_MIN) {
          if (a.v < b.v) return a;
          if (b.v < a.v) return b;
        } else {
          if (a.v > b.v) return a;
          if (b.v > a.v) return b;
        }
      }
      return a.i < b.i ? a : b; // ties (and two NaNs): the first index
    }
  }
};

template <class T> struct MaxNanR { // softmax's max: NaN propagates
  using P = T;
  __device__ __forceinline__ static P join(P a, P b) {
    return is_nan(a) ? a : is_nan(b) ? b : (a > b ? a : b);
  }
};
struct SumR {
  using P = double;
  __device__ __forceinline__ static P join(P a, P b) { return a + b; }
};

// Joins p over each group of G consecutive threads (G = 8: each quarter
// warp; 32: each warp; G = blockDim.x = kThreads: the whole block); every
// thread of the group gets the result. All threads of the block must call it.
template <class R, int G> __device__ __forceinline__ typename R::P group_join(typename R::P p) {
  using P = typename R::P;
#pragma unroll
  for (int m = (G < 32 ? G / 2 : 16); m >= 1; m >>= 1)
    p = R::join(p, shx(p, m));
  if constexpr (G > 32) {
    static_assert(G == kThreads, "a group wider than a warp is the whole block");
    __shared__ P sh[G / 32];
    if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = p;
    __syncthreads();
    p = sh[0];
#pragma unroll
    for (int w = 1; w < G / 32; w++)
      p = R::join(p, sh[w]);
    __syncthreads(); // sh is reused by the next call
  }
  return p;
}

// Joins p over the BY threads of a block that share tx (block = BY x TX).
template <class R, int BY, int TX>
__device__ __forceinline__ typename R::P slice_join(typename R::P p, int tx, int ty) {
  using P = typename R::P;
  if constexpr (BY == 1) {
    (void)tx, (void)ty;
    return p;
  } else {
    __shared__ P sh[BY][TX];
    sh[ty][tx] = p;
    __syncthreads();
    p = sh[0][tx];
#pragma unroll
    for (int k = 1; k < BY; k++)
      p = R::join(p, sh[k][tx]);
    __syncthreads();
    return p;
  }
}

// ---- reduction plan (host) ----
struct RPlan {
  int nk, nr;
  int64_t kd[ASG_MAX_DIMS], ks[ASG_MAX_DIMS]; // kept dims / input strides
  int64_t rd[ASG_MAX_DIMS], rs[ASG_MAX_DIMS]; // reduced dims / input strides
  int64_t nout, nred;
  bool fast;                      // input < 2^31 elements: rdiv is set
  asg_fastdiv rdiv[ASG_MAX_DIMS]; // dividers of rd
};

void rplan_init(RPlan *p, asg_shape s, int64_t mask) {
  asg_reduce_plan r; // runs of kept and reduced dims (runtime/layout.h)
  asg__reduce_plan(&r, s, mask);
  p->nk = r.nk;
  p->nr = r.nr;
  for (int d = 0; d < r.nk; d++) {
    p->kd[d] = r.kd[d];
    p->ks[d] = r.ks[d];
  }
  for (int d = 0; d < r.nr; d++) {
    p->rd[d] = r.rd[d];
    p->rs[d] = r.rs[d];
  }
  p->nout = r.nout;
  p->nred = r.nred;
  p->fast = asg_shape_numel(s) <= (int64_t)INT32_MAX;
  for (int d = 0; d < p->nr; d++)
    p->rdiv[d] = asg__fastdiv(p->fast && p->rd[d] > 0 ? (uint32_t)p->rd[d] : 1u);
}

__device__ __forceinline__ int64_t kept_off(const RPlan &p, int64_t o) {
  int64_t off = 0;
  for (int d = p.nk - 1; d >= 0; d--) {
    off += (o % p.kd[d]) * p.ks[d];
    o /= p.kd[d];
  }
  return off;
}

// Offset of reduced element j (row-major over the reduced dims, so j is
// also the CPU's argmax index).
__device__ __forceinline__ int64_t red_off(const RPlan &p, int64_t j) {
  if (p.nr == 1) return j * p.rs[0];
  if (p.fast) { // j and every offset < 2^31
    uint32_t r = (uint32_t)j;
    int32_t off = 0;
    for (int d = p.nr - 1; d > 0; d--) {
      const uint32_t q = asg_cuda_fastdiv(p.rdiv[d], r);
      off += (int32_t)(r - q * p.rdiv[d].d) * (int32_t)p.rs[d];
      r = q;
    }
    return off + (int64_t)r * p.rs[0]; // r < rd[0]
  }
  int64_t off = 0;
  for (int d = p.nr - 1; d >= 0; d--) {
    off += (j % p.rd[d]) * p.rs[d];
    j /= p.rd[d];
  }
  return off;
}

template <int OP, class T>
__device__ __forceinline__ void store(void *out, int64_t o, typename Red<OP, T>::P acc,
                                      int64_t nred) {
  if constexpr (OP == ASG_OP_SUM)
    static_cast<T *>(out)[o] = (T)acc;
  else if constexpr (OP == ASG_OP_MEAN)
    static_cast<T *>(out)[o] = (T)(acc / (Acc<T>)nred);
  else if constexpr (OP == ASG_OP_ARGMAX)
    static_cast<int64_t *>(out)[o] = acc.i < 0 ? 0 : acc.i;
  else
    static_cast<T *>(out)[o] = acc.i < 0 ? T(0) : acc.v; // MAX, MIN
}

// VAR: with one chunk the variance itself; otherwise the chunk's (count,
// mean, sum of squared deviations) for var_finish_kernel.
template <class T>
__device__ __forceinline__ void var_store(void *out, void *part, int64_t o, int s, int S,
                                          int64_t cnt, double mean, double m2, int64_t nred,
                                          long long corr) {
  if (S == 1) {
    static_cast<T *>(out)[o] = (T)(m2 / (double)(nred - corr));
  } else {
    double *q = static_cast<double *>(part) + (o * S + s) * 3;
    q[0] = (double)cnt, q[1] = mean, q[2] = m2;
  }
}

// ---- reduction kernels ----
// x: output o's reduced elements at kept_off(o) + red_off(j), the innermost
// reduced run contiguous -> out [nout]; G threads per output (G = 32: 8 rows per block; G = 256: a
// row per block). With S > 1 each row is cut into S chunks and chunk s writes its partial to part[o
// * S + s] (reduce_finish_kernel joins them; VAR: var_store).
template <int OP, class T, int G>
__global__ void __launch_bounds__(kThreads)
    reduce_rows_kernel(const T *__restrict__ x, void *__restrict__ out, void *__restrict__ part,
                       RPlan p, int S, long long corr) {
  using R = Red<OP, T>;
  using P = typename R::P;
  constexpr int RPB = kThreads / G;
  const int lane = threadIdx.x % G, grp = threadIdx.x / G;
  const int64_t units = (p.nout + RPB - 1) / RPB * S, chunk = (p.nred + S - 1) / S;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) { // uniform per block
    const int64_t row = (u / S) * RPB + grp;
    const int s = (int)(u % S);
    const bool live = row < p.nout;
    const int64_t j0 = s * chunk, j1 = j0 + chunk < p.nred ? j0 + chunk : p.nred;
    const int64_t jend = live ? j1 : j0; // idle threads still join (with nothing)
    const T *xr = x + (live ? kept_off(p, row) : 0);
    P acc = R::none();
#pragma unroll 4
    for (int64_t j = j0 + lane; j < jend; j += G)
      acc = R::join(acc, R::elem(xr[red_off(p, j)], j));
    acc = group_join<R, G>(acc);
    if constexpr (OP == ASG_OP_VAR) { // second pass around the chunk's mean, as on the CPU
      const int64_t cnt = j1 > j0 ? j1 - j0 : 0;
      const double mean = cnt ? acc / (double)cnt : 0.0;
      double q = 0;
#pragma unroll 4
      for (int64_t j = j0 + lane; j < jend; j += G) {
        const double d = (double)xr[red_off(p, j)] - mean;
        q += d * d;
      }
      q = group_join<R, G>(q);
      if (live && lane == 0) var_store<T>(out, part, row, s, S, cnt, mean, q, p.nred, corr);
    } else if (live && lane == 0) {
      if (S == 1)
        store<OP, T>(out, row, acc, p.nred);
      else
        static_cast<P *>(part)[row * S + s] = acc;
    }
  }
}

// x: output o's reduced elements at kept_off(o) + red_off(j) -> out [nout].
// Block = TX neighbouring outputs x BY slices; thread (tx, ty) takes
// j = ty, ty + BY, ... of its output's chunk, so a warp reads TX consecutive
// kept elements at once. Partials as in reduce_rows_kernel.
template <int OP, class T, int BY>
__global__ void __launch_bounds__(kThreads)
    reduce_cols_kernel(const T *__restrict__ x, void *__restrict__ out, void *__restrict__ part,
                       RPlan p, int S, long long corr) {
  using R = Red<OP, T>;
  using P = typename R::P;
  constexpr int TX = kThreads / BY;
  const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
  const int64_t units = (p.nout + TX - 1) / TX * S, chunk = (p.nred + S - 1) / S;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) { // uniform per block
    const int64_t o = (u / S) * TX + tx;
    const int s = (int)(u % S);
    const bool live = o < p.nout;
    const int64_t j0 = s * chunk, j1 = j0 + chunk < p.nred ? j0 + chunk : p.nred;
    const int64_t jend = live ? j1 : j0; // idle threads still join (with nothing)
    const T *xo = x + (live ? kept_off(p, o) : 0);
    P acc = R::none();
#pragma unroll 4
    for (int64_t j = j0 + ty; j < jend; j += BY)
      acc = R::join(acc, R::elem(xo[red_off(p, j)], j));
    acc = slice_join<R, BY, TX>(acc, tx, ty);
    if constexpr (OP == ASG_OP_VAR) {
      const int64_t cnt = j1 > j0 ? j1 - j0 : 0;
      const double mean = cnt ? acc / (double)cnt : 0.0;
      double q = 0;
#pragma unroll 4
      for (int64_t j = j0 + ty; j < jend; j += BY) {
        const double d = (double)xo[red_off(p, j)] - mean;
        q += d * d;
      }
      q = slice_join<R, BY, TX>(q, tx, ty);
      if (live && ty == 0) var_store<T>(out, part, o, s, S, cnt, mean, q, p.nred, corr);
    } else if (live && ty == 0) {
      if (S == 1)
        store<OP, T>(out, o, acc, p.nred);
      else
        static_cast<P *>(part)[o * S + s] = acc;
    }
  }
}

// [R, C] -> [C] with C % 4 == 0 and 16-byte rows (bias gradients): as
// reduce_cols_kernel, but each thread takes four neighbouring outputs with
// one 16-byte load per row (a warp reads 512 contiguous bytes at once).
template <int OP, class T, int BY>
__global__ void __launch_bounds__(kThreads)
    reduce_cols4_kernel(const T *__restrict__ x, void *__restrict__ out, void *__restrict__ part,
                        RPlan p, int S) {
  static_assert(sizeof(T) == 4 && OP != ASG_OP_VAR, "float quads; var takes two passes");
  using R = Red<OP, T>;
  using P = typename R::P;
  using Q = std::conditional_t<std::is_integral<T>::value, int4, float4>;
  constexpr int TX = kThreads / BY;
  const int tx = threadIdx.x % TX, ty = threadIdx.x / TX;
  const int64_t nq = p.nout / 4, stride = p.rs[0] / 4; // quads per row, row stride in quads
  const int64_t units = (nq + TX - 1) / TX * S, chunk = (p.nred + S - 1) / S;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) { // uniform per block
    const int64_t q = (u / S) * TX + tx;
    const int s = (int)(u % S);
    const bool live = q < nq;
    const int64_t j0 = s * chunk, j1 = j0 + chunk < p.nred ? j0 + chunk : p.nred;
    const int64_t jend = live ? j1 : j0;
    const Q *xq = reinterpret_cast<const Q *>(x) + (live ? q : 0);
    P a0 = R::none(), a1 = R::none(), a2 = R::none(), a3 = R::none();
    if constexpr (R::kSum && std::is_same<T, float>::value) {
      // runs of up to 16 rows summed in f32, the runs in double: a conversion
      // and a double add per element kept the kernel off the memory bound
      for (int64_t j = j0 + ty; j < jend;) {
        float4 f = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll 4
        for (int t = 0; t < 16 && j < jend; t++, j += BY) {
          const Q v = xq[j * stride];
          f.x += v.x, f.y += v.y, f.z += v.z, f.w += v.w;
        }
        a0 += f.x, a1 += f.y, a2 += f.z, a3 += f.w;
      }
    } else {
#pragma unroll 4
      for (int64_t j = j0 + ty; j < jend; j += BY) {
        const Q v = xq[j * stride];
        a0 = R::join(a0, R::elem((T)v.x, j));
        a1 = R::join(a1, R::elem((T)v.y, j));
        a2 = R::join(a2, R::elem((T)v.z, j));
        a3 = R::join(a3, R::elem((T)v.w, j));
      }
    }
    a0 = slice_join<R, BY, TX>(a0, tx, ty);
    a1 = slice_join<R, BY, TX>(a1, tx, ty);
    a2 = slice_join<R, BY, TX>(a2, tx, ty);
    a3 = slice_join<R, BY, TX>(a3, tx, ty);
    if (live && ty == 0) {
      const P a[4] = {a0, a1, a2, a3};
      for (int k = 0; k < 4; k++) {
        if (S == 1)
          store<OP, T>(out, 4 * q + k, a[k], p.nred);
        else
          static_cast<P *>(part)[(4 * q + k) * S + s] = a[k];
      }
    }
  }
}

// part [nout, S] -> out [nout]; a warp per output.
template <int OP, class T>
__global__ void __launch_bounds__(kThreads)
    reduce_finish_kernel(const typename Red<OP, T>::P *__restrict__ part, void *__restrict__ out,
                         int64_t nout, int S, int64_t nred) {
  using R = Red<OP, T>;
  using P = typename R::P;
  constexpr int RPB = kThreads / 32;
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  for (int64_t o0 = (int64_t)blockIdx.x * RPB; o0 < nout; o0 += (int64_t)gridDim.x * RPB) {
    const int64_t o = o0 + w;
    if (o >= nout) break; // warp-uniform: no block-wide sync below
    P acc = R::none();
    for (int k = lane; k < S; k += 32)
      acc = R::join(acc, part[o * S + k]);
    acc = group_join<R, 32>(acc);
    if (lane == 0) store<OP, T>(out, o, acc, nred);
  }
}

// part [nout, S, 3] (count, mean, M2 per chunk) -> out [nout]: the pairwise
// update of Chan, Golub & LeVeque in chunk order; a thread per output.
template <class T>
__global__ void __launch_bounds__(kThreads)
    var_finish_kernel(const double *__restrict__ part, T *__restrict__ out, int64_t nout, int S,
                      int64_t nred, long long corr) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < nout; o += stride) {
    double n = 0, mean = 0, m2 = 0;
    for (int k = 0; k < S; k++) {
      const double *q = part + (o * S + k) * 3;
      if (q[0] == 0) continue;
      const double nn = n + q[0], delta = q[1] - mean;
      mean += delta * (q[0] / nn);
      m2 += q[2] + delta * delta * (n * q[0] / nn);
      n = nn;
    }
    out[o] = (T)(m2 / (double)(nred - corr));
  }
}

// ---- geometry (shared by run and the workspace size) ----
struct Geom {
  bool rows;  // the innermost dim is reduced (in a run of >= 16)
  bool quads; // [R, C] -> [C] of 4-byte elements, C % 4 == 0: reduce_cols4_kernel
  int width;  // rows: threads per row (8, 32, 256); cols: BY slices (1, 8)
  int S;      // chunks per output (> 1: partials in the workspace)
};

// [R, C] -> [C] over 4-byte elements with C and the row stride multiples of 4
// (the run also needs 16-byte aligned input; else the scalar kernel runs
// with the same chunks).
bool quads_of(const RPlan &p, asg_dtype dt, int op) {
  return (dt == ASG_F32 || dt == ASG_I32) && op != ASG_OP_VAR && p.nk == 1 && p.ks[0] == 1 &&
         p.nr == 1 && p.nout % 4 == 0 && p.rs[0] % 4 == 0;
}

Geom geom_of(const RPlan &p, bool quads) {
  Geom g;
  g.quads = quads;
  // rows when the innermost dim is reduced and its run fills a warp; short
  // runs ([N, 3] -> [N]) read better with a thread per output
  g.rows = p.rs[p.nr - 1] == 1 && p.rd[p.nr - 1] >= 16;
  // short rows (attention's [B, H, T, 64] -> [B, H, T]) take 8 threads each:
  // a warp would spend more time joining its 32 partials than reading
  if (g.rows)
    g.width = p.nred <= 128 ? 8 : p.nred <= 1024 ? 32 : kThreads;
  else
    g.width = p.nred >= 64 ? 8 : 1;
  // outputs per block (quads: four per thread)
  const int64_t per_block = kThreads / g.width * (g.quads && !g.rows ? 4 : 1);
  const int64_t blocks = (p.nout + per_block - 1) / per_block;
  g.S = 1;
  // Too few blocks to fill the GPU (132 SMs x 8 blocks): split long reductions.
  // Column blocks read TX outputs x BY slices at once, so their chunks can be
  // shorter ([8192, 768] -> [768]: 24 blocks unsplit, 768 in chunks of 256).
  const int64_t min_chunk = g.rows ? 2048 : g.quads ? 128 : 256;
  if (blocks < 1024 && p.nred >= 4 * min_chunk) {
    int64_t s = (2048 + blocks - 1) / blocks;
    if (s > p.nred / min_chunk) s = p.nred / min_chunk; // keep chunks long
    if (s > 1024) s = 1024;
    if (s >= 2) g.S = (int)s;
  }
  return g;
}

constexpr size_t kPartBytes = 24; // >= every partial (VAR: 3 doubles)

size_t reduce_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  RPlan p;
  rplan_init(&p, s->in[0].shape, s->attr.i[0]);
  if (p.nout <= 0) return 0;
  const Geom g = geom_of(p, quads_of(p, s->in[0].dtype, (int)s->op));
  return g.S > 1 ? (size_t)p.nout * (size_t)g.S * kPartBytes : 0;
}

asg_status dtype_error(const asg_cuda_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

template <int OP, class T> asg_status reduce_t(const asg_cuda_call *c, const RPlan &p) {
  using P = typename Red<OP, T>::P;
  static_assert(sizeof(P) <= kPartBytes, "workspace sized for 24-byte partials");
  const Geom g = geom_of(p, quads_of(p, c->s->in[0].dtype, OP));
  const T *x = static_cast<const T *>(c->in[0]);
  void *part = g.S > 1 ? c->ws : nullptr;
  if (g.S > 1 && !part)
    return asg__error(ASG_ERR_BACKEND, "cuda: %s: workspace missing", c->s->label);
  const long long corr = (long long)c->s->attr.i[2];
  cudaStream_t st = c->ctx->stream;
  const int64_t per_block = kThreads / g.width;
  const unsigned blocks = asg_cuda_blocks((p.nout + per_block - 1) / per_block * g.S, 1);
  if (g.rows) {
    if (g.width == 8)
      reduce_rows_kernel<OP, T, 8><<<blocks, kThreads, 0, st>>>(x, c->out, part, p, g.S, corr);
    else if (g.width == 32)
      reduce_rows_kernel<OP, T, 32><<<blocks, kThreads, 0, st>>>(x, c->out, part, p, g.S, corr);
    else
      reduce_rows_kernel<OP, T, kThreads>
          <<<blocks, kThreads, 0, st>>>(x, c->out, part, p, g.S, corr);
  } else if (g.quads && (uintptr_t)x % 16 == 0) {
    if constexpr (sizeof(T) == 4 && OP != ASG_OP_VAR) {
      // TX = per_block quads per block
      const unsigned qb = asg_cuda_blocks((p.nout / 4 + per_block - 1) / per_block * g.S, 1);
      if (g.width == 8)
        reduce_cols4_kernel<OP, T, 8><<<qb, kThreads, 0, st>>>(x, c->out, part, p, g.S);
      else
        reduce_cols4_kernel<OP, T, 1><<<qb, kThreads, 0, st>>>(x, c->out, part, p, g.S);
    }
  } else {
    if (g.width == 8)
      reduce_cols_kernel<OP, T, 8><<<blocks, kThreads, 0, st>>>(x, c->out, part, p, g.S, corr);
    else
      reduce_cols_kernel<OP, T, 1><<<blocks, kThreads, 0, st>>>(x, c->out, part, p, g.S, corr);
  }
  if (g.S > 1) {
    if constexpr (OP == ASG_OP_VAR) {
      var_finish_kernel<T><<<asg_cuda_blocks(p.nout, kThreads), kThreads, 0, st>>>(
          static_cast<const double *>(part), static_cast<T *>(c->out), p.nout, g.S, p.nred, corr);
    } else {
      const unsigned fb = asg_cuda_blocks((p.nout + 7) / 8, 1);
      reduce_finish_kernel<OP, T>
          <<<fb, kThreads, 0, st>>>(static_cast<const P *>(part), c->out, p.nout, g.S, p.nred);
    }
  }
  return asg_cuda_check(c);
}

template <class T> asg_status reduce_dt(const asg_cuda_call *c, const RPlan &p) {
  switch (c->s->op) {
  case ASG_OP_SUM: return reduce_t<ASG_OP_SUM, T>(c, p);
  case ASG_OP_MAX: return reduce_t<ASG_OP_MAX, T>(c, p);
  case ASG_OP_MIN: return reduce_t<ASG_OP_MIN, T>(c, p);
  case ASG_OP_ARGMAX: return reduce_t<ASG_OP_ARGMAX, T>(c, p);
  default: break;
  }
  if constexpr (std::is_floating_point<T>::value) { // mean and var need floats
    if (c->s->op == ASG_OP_MEAN) return reduce_t<ASG_OP_MEAN, T>(c, p);
    if (c->s->op == ASG_OP_VAR) return reduce_t<ASG_OP_VAR, T>(c, p);
  }
  return dtype_error(c, c->s->in[0].dtype);
}

// ROWDOT (src/passes/fuse_rowdot.c): out [R] = sum over j of a[r, j] * b[r, j],
// a, b [R, C]; attention's delta. f32: L lanes per row (8 for rows of up to
// 256: attention's rows of 64 are two 16-byte loads a lane), VEC: 16-byte
// loads (C % 4 == 0, aligned rows). The products are rounded to f32 as a
// mul step would store them; each lane sums its own in f32 and the lanes'
// sums are joined in double.
template <int L, bool VEC>
__global__ void __launch_bounds__(kThreads)
    rowdot_kernel(const float *__restrict__ a, const float *__restrict__ b, float *__restrict__ out,
                  int64_t R, int64_t C) {
  const int lane = threadIdx.x % L;
  const int64_t step = (int64_t)gridDim.x * (kThreads / L);
  for (int64_t r = (int64_t)blockIdx.x * (kThreads / L) + threadIdx.x / L; r < R; r += step) {
    float acc = 0;
    if constexpr (VEC) {
      const float4 *a4 = reinterpret_cast<const float4 *>(a + r * C),
                   *b4 = reinterpret_cast<const float4 *>(b + r * C);
      for (int64_t j = lane; j < C / 4; j += L) {
        const float4 u = a4[j], v = b4[j];
        acc +=
            __fmul_rn(u.x, v.x) + __fmul_rn(u.y, v.y) + __fmul_rn(u.z, v.z) + __fmul_rn(u.w, v.w);
      }
    } else {
      for (int64_t j = lane; j < C; j += L)
        acc += __fmul_rn(a[r * C + j], b[r * C + j]);
    }
    // the lanes of this row only: the row groups of a warp may leave the loop apart
    unsigned grp = 0xffffffffu;
    if constexpr (L < 32) grp = ((1u << L) - 1u) << ((threadIdx.x & 31) & ~(unsigned)(L - 1));
    double t = acc;
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1)
      t += __shfl_xor_sync(grp, t, o);
    if (lane == 0) out[r] = (float)t;
  }
}

template <int L>
void rowdot_launch(const float *a, const float *b, float *out, int64_t R, int64_t C,
                   cudaStream_t st) {
  const unsigned g = asg_cuda_blocks(R * L, kThreads);
  if (C % 4 == 0 && (uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0)
    rowdot_kernel<L, true><<<g, kThreads, 0, st>>>(a, b, out, R, C);
  else
    rowdot_kernel<L, false><<<g, kThreads, 0, st>>>(a, b, out, R, C);
}

// f64 rows: a thread per row, the products summed in order.
__global__ void rowdot_f64_kernel(const double *__restrict__ a, const double *__restrict__ b,
                                  double *__restrict__ out, int64_t R, int64_t C) {
  for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R;
       r += (int64_t)gridDim.x * blockDim.x) {
    double s = 0;
    for (int64_t j = 0; j < C; j++)
      s += __dmul_rn(a[r * C + j], b[r * C + j]);
    out[r] = s;
  }
}

asg_status rowdot_run(const asg_cuda_call *c) {
  const asg_shape sh = c->s->in[0].shape;
  const int64_t R = asg_shape_numel(c->s->out.shape), C = sh.ndim ? sh.dims[sh.ndim - 1] : 1;
  if (R <= 0) return ASG_OK;
  cudaStream_t st = c->ctx->stream;
  if (c->s->out.dtype == ASG_F64) {
    rowdot_f64_kernel<<<asg_cuda_blocks(R, kThreads), kThreads, 0, st>>>(
        (const double *)c->in[0], (const double *)c->in[1], (double *)c->out, R, C);
    return asg_cuda_check(c);
  }
  if (c->s->out.dtype != ASG_F32) return dtype_error(c, c->s->out.dtype);
  const float *a = (const float *)c->in[0], *b = (const float *)c->in[1];
  if (C <= 256)
    rowdot_launch<8>(a, b, (float *)c->out, R, C, st);
  else
    rowdot_launch<32>(a, b, (float *)c->out, R, C, st);
  return asg_cuda_check(c);
}

asg_status reduce_run(const asg_cuda_call *c) {
  RPlan p;
  rplan_init(&p, c->s->in[0].shape, c->s->attr.i[0]);
  if (p.nout <= 0) return ASG_OK;
  switch (c->s->in[0].dtype) {
  case ASG_F32: return reduce_dt<float>(c, p);
  case ASG_F64: return reduce_dt<double>(c, p);
  case ASG_I32: return reduce_dt<int32_t>(c, p);
  case ASG_I64: return reduce_dt<int64_t>(c, p);
  default: return dtype_error(c, c->s->in[0].dtype);
  }
}

// ---- softmax / log_softmax ----
// x [rows, n] -> y [rows, n] along the contiguous last axis; G threads per
// row. Max (NaN propagates), then the sum of exp(x - max) in double, then
// the outputs, as the CPU computes them.
template <class T, int G, bool LOG>
__global__ void __launch_bounds__(kThreads)
    softmax_rows_kernel(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int64_t n) {
  constexpr int RPB = kThreads / G;
  const int lane = threadIdx.x % G, grp = threadIdx.x / G;
  for (int64_t r0 = (int64_t)blockIdx.x * RPB; r0 < rows;
       r0 += (int64_t)gridDim.x * RPB) { // uniform per block
    const int64_t row = r0 + grp;
    const bool live = row < rows;
    const T *xr = x + (live ? row * n : 0);
    T m = -std::numeric_limits<T>::infinity();
    if (live)
      for (int64_t j = lane; j < n; j += G)
        m = MaxNanR<T>::join(m, xr[j]);
    m = group_join<MaxNanR<T>, G>(m);
    double sum = 0;
    if (live)
      for (int64_t j = lane; j < n; j += G)
        sum += (double)m_exp(xr[j] - m);
    sum = group_join<SumR, G>(sum);
    if (!live) continue; // no block-wide sync below
    T *yr = y + row * n;
    if constexpr (LOG) { // (x - m) - log(sum), not x - (m + log(sum)): exact for large x
      const double lg = log(sum);
      for (int64_t j = lane; j < n; j += G)
        yr[j] = (T)(((double)xr[j] - (double)m) - lg);
    } else {
      const T inv = (T)(1.0 / sum);
      for (int64_t j = lane; j < n; j += G)
        yr[j] = m_exp(xr[j] - m) * inv;
    }
  }
}

// x [outer, n, inner] -> y, along n with inner > 1: a thread per (outer,
// inner) line, the CPU's loop; neighbouring threads read neighbouring inner
// elements, so every step is coalesced.
template <class T, bool LOG>
__global__ void __launch_bounds__(kThreads)
    softmax_lines_kernel(const T *__restrict__ x, T *__restrict__ y, int64_t outer, int64_t n,
                         int64_t inner) {
  const int64_t lines = outer * inner, stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t l = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; l < lines; l += stride) {
    const int64_t off = (l / inner) * n * inner + l % inner;
    const T *xl = x + off;
    T *yl = y + off;
    T m = xl[0];
    for (int64_t j = 1; j < n; j++) {
      const T v = xl[j * inner];
      if (v > m || v != v) m = v;
    }
    double sum = 0;
    if constexpr (LOG) {
      for (int64_t j = 0; j < n; j++)
        sum += (double)m_exp(xl[j * inner] - m);
      const double lg = log(sum);
      for (int64_t j = 0; j < n; j++)
        yl[j * inner] = (T)(((double)xl[j * inner] - (double)m) - lg);
    } else {
      for (int64_t j = 0; j < n; j++) {
        const T e = m_exp(xl[j * inner] - m);
        yl[j * inner] = e;
        sum += (double)e;
      }
      const T inv = (T)(1.0 / sum);
      for (int64_t j = 0; j < n; j++)
        yl[j * inner] *= inv;
    }
  }
}

template <class T, bool LOG>
asg_status softmax_t(const asg_cuda_call *c, int64_t outer, int64_t n, int64_t inner) {
  const T *x = static_cast<const T *>(c->in[0]);
  T *y = static_cast<T *>(c->out);
  cudaStream_t st = c->ctx->stream;
  if (inner == 1) {
    if (n <= 1024) {
      const unsigned blocks = asg_cuda_blocks((outer + kThreads / 32 - 1) / (kThreads / 32), 1);
      softmax_rows_kernel<T, 32, LOG><<<blocks, kThreads, 0, st>>>(x, y, outer, n);
    } else {
      softmax_rows_kernel<T, kThreads, LOG>
          <<<asg_cuda_blocks(outer, 1), kThreads, 0, st>>>(x, y, outer, n);
    }
  } else {
    softmax_lines_kernel<T, LOG>
        <<<asg_cuda_blocks(outer * inner, kThreads), kThreads, 0, st>>>(x, y, outer, n, inner);
  }
  return asg_cuda_check(c);
}

asg_status softmax_run(const asg_cuda_call *c) {
  const asg_shape s = c->s->in[0].shape;
  const int a = (int)c->s->attr.i[0];
  if (a < 0 || a >= s.ndim)
    return asg__error(ASG_ERR_INVALID, "cuda: %s: axis %d out of range", c->s->label, a);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; d++)
    outer *= s.dims[d];
  for (int d = a + 1; d < s.ndim; d++)
    inner *= s.dims[d];
  const int64_t n = s.dims[a];
  if (outer * n * inner == 0) return ASG_OK;
  const bool lg = c->s->op == ASG_OP_LOG_SOFTMAX;
  switch (c->s->in[0].dtype) {
  case ASG_F32:
    return lg ? softmax_t<float, true>(c, outer, n, inner)
              : softmax_t<float, false>(c, outer, n, inner);
  case ASG_F64:
    return lg ? softmax_t<double, true>(c, outer, n, inner)
              : softmax_t<double, false>(c, outer, n, inner);
  default: return dtype_error(c, c->s->in[0].dtype);
  }
}

} // namespace

extern "C" void asg_cuda_register_reduce(asg_cuda_kernel *t) {
  static const asg_op red[] = {ASG_OP_SUM, ASG_OP_MEAN, ASG_OP_MAX,
                               ASG_OP_MIN, ASG_OP_VAR,  ASG_OP_ARGMAX};
  for (asg_op op : red) {
    t[op].run = reduce_run;
    t[op].ws = reduce_ws;
  }
  t[ASG_OP_ROWDOT].run = rowdot_run;
  t[ASG_OP_SOFTMAX].run = softmax_run;
  t[ASG_OP_LOG_SOFTMAX].run = softmax_run;
}
