// CUDA kernels of batch norm with the batch's statistics: batchnorm,
// batchnorm_bwd_x and batchnorm_bwd_gamma (src/ops/op_nn.c). Reference
// semantics: src/backends/cpu/cpu_batchnorm_tmpl.h.
//
// x is [N, C, S] (S: the dims after the channels, 1 for [N, C]); channel
// ch's M = N * S values are N runs of S contiguous elements. Each op is
//  1. a statistics pass over units of work, each writing one partial state
//     (count, mean, squared deviations about the mean, and for the backward
//     ops sum(dy) and sum(dy * (x - mean))) to the workspace:
//     - runs of >= kRunMin elements: a unit is a (channel, chunk) pair, the
//       chunk a contiguous range of the channel's values, read a block at a
//       time (neighbouring threads on neighbouring elements of a run);
//     - shorter runs ([N, C] included): x is seen as [N, K = C * S] and a
//       unit is (row chunk, 32 columns), so a warp reads 32 neighbouring
//       elements of a row even when each belongs to another channel;
//  2. a finalize: the partials of each channel are merged in a fixed order
//     into its mean, 1/std and dy sums, which give dgamma or the channel's
//     coefficients of
//  3. an elementwise pass in flat order (aligned vectors where a vector's
//     elements share one channel, or are consecutive channels of [N, C]).
// Each thread takes its values kV at a time, computes the group's mean and
// squared deviations exactly from registers (two passes, in double, as the
// CPU over a channel) and merges the group into its running state; states
// are merged pairwise (Chan et al.: no E[x^2] - E[x]^2 cancellation, so
// f64 keeps its precision) in fixed trees and orders: no atomics, and
// reruns give the same bits. The elementwise pass computes in the tensor's
// type (as the layernorm kernels of cuda_layernorm.cu: f32 -> f64 conversions run
// at a quarter of the f32 rate on sm_90). Indices are 64-bit, except the
// elementwise pass's division into channels (32-bit when the tensor has
// < 2^32 elements, cuda_fastdiv.cuh).
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_fastdiv.cuh"

#include <math.h>
#include <stdint.h>

namespace {

constexpr int kThreads = 256;            // every kernel's block size
constexpr int kV = 8;                    // values a thread takes per group
constexpr int64_t kTile = kThreads * kV; // values a block reads per step (runs)
constexpr int64_t kRunMin = 32;          // shortest run read as runs
constexpr int kCols = 32;                // columns of a unit over [N, K]
constexpr int kRowLanes = kThreads / kCols;
constexpr int64_t kRowsPer = kRowLanes * kV; // rows a block reads per step (columns)
constexpr int64_t kTargetUnits = 4096;       // units to aim at: several waves of blocks on 132 SMs
constexpr unsigned kFull = 0xffffffffu;

int64_t cdiv(int64_t a, int64_t b) { return b > 0 ? (a + b - 1) / b : 0; }
int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
__device__ __forceinline__ int64_t dmin(int64_t a, int64_t b) { return a < b ? a : b; }

// The launch geometry of a step: a function of x's shape only, so that the
// workspace size (.ws) and the run agree and the partials, hence the bits,
// are the same on every run.
struct Geo {
  int64_t N, C, S, M; // x [N, C, S]; M = N * S values a channel
  bool cols;          // runs shorter than kRunMin: units over [N, K = C * S]
  int64_t P;          // chunks: of each channel's values (runs) / of the rows (cols)
  int64_t per;        // values (runs) / rows (cols) a chunk
  int64_t ctiles;     // cols: tiles of kCols columns
  int64_t Kp, Sp;     // partial (chunk p, channel ch, s < Sp) at p * Kp + ch * Sp + s
  int64_t ds, dstep;  // runs: a step of kThreads values moves s by ds, the offset by dstep
};

Geo bn_geo(const asg_step *s) {
  const asg_shape xs = s->in[s->op == ASG_OP_BATCHNORM ? 0 : 1].shape; // [N, C, ...]
  Geo g = {};
  g.N = xs.dims[0];
  g.C = xs.dims[1];
  g.S = 1;
  for (int d = 2; d < xs.ndim; d++)
    g.S *= xs.dims[d];
  g.M = g.N * g.S;
  g.cols = g.S < kRunMin;
  if (!g.cols) {
    const int64_t tiles = cdiv(g.M, kTile);
    const int64_t p = imin(tiles, imax(1, cdiv(kTargetUnits, g.C)));
    g.per = cdiv(tiles, p) * kTile;
    g.P = cdiv(g.M, g.per);
    g.Kp = g.C, g.Sp = 1;
    g.ds = kThreads % g.S;
    g.dstep = (kThreads / g.S) * g.C * g.S + g.ds;
  } else {
    const int64_t K = g.C * g.S, rtiles = cdiv(g.N, kRowsPer);
    g.ctiles = cdiv(K, kCols);
    const int64_t p = imin(rtiles, imax(1, cdiv(kTargetUnits, g.ctiles)));
    g.per = cdiv(rtiles, p) * kRowsPer;
    g.P = cdiv(g.N, g.per);
    g.Kp = K, g.Sp = g.S;
  }
  return g;
}

// ---- partial states and their merges ----
// BWD: the dy sums are kept (sdyx about the state's own mean); otherwise
// they stay 0 and are neither merged nor stored.
struct St {
  double n, mean, m2; // count, mean, sum of squared deviations about the mean
  double sdy, sdyx;   // sum dy, sum dy * (x - mean)
};
template <bool BWD> constexpr int kNS = BWD ? 5 : 3; // doubles a stored state

__device__ __forceinline__ St st_empty() { return St{0, 0, 0, 0, 0}; }

// a and b of disjoint value sets -> their union (Chan et al.). The order of
// the operands is part of the result's bits: callers fix it.
template <bool BWD> __device__ __forceinline__ St merge(St a, St b) {
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  const double n = a.n + b.n, inv = 1.0 / n, d = b.mean - a.mean, wb = b.n * inv;
  St r;
  r.n = n;
  r.mean = a.mean + d * wb;
  r.m2 = a.m2 + b.m2 + d * d * a.n * wb;
  if (BWD) {
    // sum dy (x - mean) about the new mean: a.mean - mean = -d b.n / n and
    // b.mean - mean = d a.n / n shift each side's sum by that times its sum dy
    r.sdy = a.sdy + b.sdy;
    r.sdyx = a.sdyx + b.sdyx + d * (a.n * b.sdy - b.n * a.sdy) * inv;
  } else {
    r.sdy = 0, r.sdyx = 0;
  }
  return r;
}

// The state of a thread's group: xv[0, cnt) and dv[0, cnt) (cnt >= 1; the
// rest hold zeros). Mean, then deviations about it, as the CPU's two passes.
template <bool BWD, typename T>
__device__ __forceinline__ St group(const T (&xv)[kV], const T (&dv)[kV], int cnt) {
  double s = 0;
#pragma unroll
  for (int k = 0; k < kV; k++)
    s += (double)xv[k];
  const double m = cnt == kV ? s * (1.0 / kV) : s / cnt;
  double q = 0, a = 0, b = 0;
#pragma unroll
  for (int k = 0; k < kV; k++)
    if (k < cnt) {
      const double d = (double)xv[k] - m;
      q += d * d;
      if (BWD) {
        const double g = (double)dv[k];
        a += g;
        b += g * d;
      }
    }
  return St{(double)cnt, m, q, a, b};
}

template <bool BWD> __device__ __forceinline__ St shfl_down(St v, int o) {
  St u;
  u.n = __shfl_down_sync(kFull, v.n, o);
  u.mean = __shfl_down_sync(kFull, v.mean, o);
  u.m2 = __shfl_down_sync(kFull, v.m2, o);
  u.sdy = BWD ? __shfl_down_sync(kFull, v.sdy, o) : 0.0;
  u.sdyx = BWD ? __shfl_down_sync(kFull, v.sdyx, o) : 0.0;
  return u;
}

// Lane 0 gets the merge of the warp's 32 states (a fixed tree: lane l takes
// lane l + o for o = 16, 8, ..., 1); the other lanes' results are not used.
template <bool BWD> __device__ __forceinline__ St warp_merge(St v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v = merge<BWD>(v, shfl_down<BWD>(v, o));
  return v;
}

// Thread 0 gets the merge of the block's kThreads states: each warp's tree,
// then the warps in order. Every thread of the block must call it.
template <bool BWD> __device__ St block_merge(St v, St *sh) {
  v = warp_merge<BWD>(v);
  __syncthreads(); // sh may still be read by a previous call
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  if (threadIdx.x == 0) // v is warp 0's state, sh[0]
    for (int w = 1; w < kThreads / 32; w++)
      v = merge<BWD>(v, sh[w]);
  return v;
}

template <bool BWD> __device__ __forceinline__ void st_store(double *part, int64_t i, St v) {
  double *q = part + i * kNS<BWD>;
  q[0] = v.n, q[1] = v.mean, q[2] = v.m2;
  if (BWD) q[3] = v.sdy, q[4] = v.sdyx;
}

template <bool BWD> __device__ __forceinline__ St st_load(const double *part, int64_t i) {
  const double *q = part + i * kNS<BWD>;
  return St{q[0], q[1], q[2], BWD ? q[3] : 0.0, BWD ? q[4] : 0.0};
}

// ---- 1. statistics ----
// Runs: unit u = (channel u / P, chunk u % P); chunk p holds the channel's
// values j in [p * per, min((p + 1) * per, M)), value j = n * S + s being
// element n * C * S + ch * S + s. Thread t takes j = j0 + t, j0 + t +
// kThreads, ..., walking (s, offset) by (ds, dstep) without divisions.
// -> part [P, C] states. dy is read only for BWD.
template <bool BWD, typename T>
__global__ void __launch_bounds__(kThreads)
    bn_runs_kernel(const T *__restrict__ x, const T *__restrict__ dy, double *__restrict__ part,
                   Geo g) {
  __shared__ St sh[kThreads / 32];
  const int64_t units = g.C * g.P, CS = g.C * g.S;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) { // uniform per block
    const int64_t ch = u / g.P, p = u - ch * g.P;
    const int64_t j1 = dmin((p + 1) * g.per, g.M);
    int64_t j = p * g.per + threadIdx.x, n = j / g.S, s = j - n * g.S, o = n * CS + ch * g.S + s;
    St st = st_empty();
    while (j < j1) {
      T xv[kV], dv[kV];
      int cnt = 0;
#pragma unroll
      for (int k = 0; k < kV; k++) {
        const bool ok = j < j1; // values past j1 are another chunk's
        xv[k] = ok ? x[o] : T(0);
        if (BWD) dv[k] = ok ? dy[o] : T(0);
        cnt += ok;
        j += kThreads, s += g.ds, o += g.dstep;
        if (s >= g.S) s -= g.S, o += CS - g.S; // into the channel's next run
      }
      st = merge<BWD>(st, group<BWD>(xv, dv, cnt));
    }
    st = block_merge<BWD>(st, sh);
    if (threadIdx.x == 0) st_store<BWD>(part, p * g.C + ch, st);
  }
}

// Short runs: x as [N, K]; unit u = (row chunk u / ctiles, column tile
// u % ctiles); thread (tx, ty) takes column tile * kCols + tx, rows
// r0 + ty, r0 + ty + kRowLanes, ... of the chunk; the kRowLanes states of
// a column are merged in ty order. -> part [P, K] states (column ch * S + s
// of channel ch).
template <bool BWD, typename T>
__global__ void __launch_bounds__(kThreads)
    bn_cols_kernel(const T *__restrict__ x, const T *__restrict__ dy, double *__restrict__ part,
                   Geo g) {
  __shared__ St sh[kRowLanes][kCols];
  const int tx = threadIdx.x % kCols, ty = threadIdx.x / kCols;
  const int64_t K = g.Kp, units = g.P * g.ctiles;
  for (int64_t u = blockIdx.x; u < units; u += gridDim.x) { // uniform per block
    const int64_t p = u / g.ctiles, col = (u - p * g.ctiles) * kCols + tx;
    const int64_t r1 = dmin((p + 1) * g.per, g.N);
    int64_t r = p * g.per + ty, o = r * K + col;
    St st = st_empty();
    if (col < K)
      while (r < r1) {
        T xv[kV], dv[kV];
        int cnt = 0;
#pragma unroll
        for (int k = 0; k < kV; k++) {
          const bool ok = r < r1;
          xv[k] = ok ? x[o] : T(0);
          if (BWD) dv[k] = ok ? dy[o] : T(0);
          cnt += ok;
          r += kRowLanes, o += kRowLanes * K;
        }
        st = merge<BWD>(st, group<BWD>(xv, dv, cnt));
      }
    sh[ty][tx] = st;
    __syncthreads();
    if (ty == 0 && col < K) { // st is sh[0][tx]
      for (int k = 1; k < kRowLanes; k++)
        st = merge<BWD>(st, sh[k][tx]);
      st_store<BWD>(part, p * K + col, st);
    }
    __syncthreads(); // sh is written again by the next unit
  }
}

// ---- 2. finalize ----
enum Mode { kFwd, kBwdX, kBwdGamma };

// Channel ch's P * Sp partials -> (by mode)
//   kFwd:      coef [3, C] = mean, rstd * gamma, beta
//   kBwdX:     coef [4, C] = mean, gamma * rstd, mean(dy), rstd^2 mean(dy * (x - mean))
//   kBwdGamma: dgamma [C] = sum(dy * (x - mean)) * rstd
// with rstd = 1 / sqrt(m2 / M + eps) (biased var), as the CPU. G threads a
// channel (a warp, or the block when channels have many partials) fold
// partials q = lane, lane + G, ... in order, then a fixed tree.
template <bool BWD, int G, typename T>
__global__ void __launch_bounds__(kThreads)
    bn_final_kernel(const double *__restrict__ part, Geo g, int mode, double eps,
                    const T *__restrict__ gamma, const T *__restrict__ beta, T *__restrict__ coef,
                    T *__restrict__ dgamma) {
  static_assert(G == 32 || G == kThreads, "a warp or the block per channel");
  __shared__ St sh[kThreads / 32];
  constexpr int CPB = kThreads / G; // channels a block
  const int lane = threadIdx.x % G;
  const int64_t Q = g.P * g.Sp, C = g.C;
  for (int64_t c0 = (int64_t)blockIdx.x * CPB; c0 < C; c0 += (int64_t)gridDim.x * CPB) {
    const int64_t ch = c0 + threadIdx.x / G; // uniform per warp (G = 32) / block
    St st = st_empty();
    if (ch < C)
      for (int64_t q = lane; q < Q; q += G) {
        const int64_t p = q / g.Sp, s = q - p * g.Sp;
        st = merge<BWD>(st, st_load<BWD>(part, p * g.Kp + ch * g.Sp + s));
      }
    if constexpr (G == 32)
      st = warp_merge<BWD>(st);
    else
      st = block_merge<BWD>(st, sh);
    if (lane != 0 || ch >= C) continue;
    const double M = st.n, rstd = 1.0 / sqrt(st.m2 / M + eps); // M = 0: NaN, as the CPU
    if (mode == kFwd) {
      coef[ch] = (T)st.mean;
      coef[C + ch] = (T)(rstd * (double)gamma[ch]);
      coef[2 * C + ch] = beta[ch];
    } else if (mode == kBwdX) {
      coef[ch] = (T)st.mean;
      coef[C + ch] = (T)((double)gamma[ch] * rstd);
      coef[2 * C + ch] = (T)(st.sdy / M);
      coef[3 * C + ch] = (T)(rstd * rstd * st.sdyx / M);
    } else {
      dgamma[ch] = (T)(st.sdyx * rstd);
    }
  }
}

// ---- 3. elementwise ----
template <typename T, int VW> struct alignas(sizeof(T) * VW) Vec { T v[VW]; };

// Element i of x (and dy) with its channel's coefficients c = coef:
//   BWD false: y  = (x - c0) * c1 + c2
//   BWD true:  dx = c1 * (dy - c2 - (x - c0) * c3)
// A thread takes VW elements (one aligned vector): one channel when
// S % VW == 0, else (S == 1, C % VW == 0) VW consecutive channels.
// I32: the tensor has < 2^32 elements; the channel of i is then found with
// 32-bit multiplicative division (fS, fC).
template <bool BWD, typename T, int VW, bool I32>
__global__ void __launch_bounds__(kThreads)
    bn_apply_kernel(const T *__restrict__ x, const T *__restrict__ dy, const T *__restrict__ coef,
                    T *__restrict__ out, int64_t nvec, int64_t S, int64_t C, asg_fastdiv fS,
                    asg_fastdiv fC) {
  using V = Vec<T, VW>;
  for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < nvec;
       q += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = q * VW;
    int64_t ch;
    if (I32) {
      const uint32_t r = asg_cuda_fastdiv(fS, (uint32_t)i);
      ch = (int64_t)(r - asg_cuda_fastdiv(fC, r) * (uint32_t)C);
    } else {
      ch = (i / S) % C;
    }
    const V xv = reinterpret_cast<const V *>(x)[q];
    V dv, ov;
    if (BWD) dv = reinterpret_cast<const V *>(dy)[q];
#pragma unroll
    for (int l = 0; l < VW; l++) {
      const int64_t c = S == 1 ? ch + l : ch;
      const T d = xv.v[l] - coef[c];
      if (BWD)
        ov.v[l] = coef[C + c] * (dv.v[l] - coef[2 * C + c] - d * coef[3 * C + c]);
      else
        ov.v[l] = d * coef[C + c] + coef[2 * C + c];
    }
    reinterpret_cast<V *>(out)[q] = ov;
  }
}

// ---- host ----
// Workspace: coef [4, C] of T (256-byte aligned size), then the partials.
size_t coef_bytes(int64_t C, size_t tsize) { return ((size_t)(4 * C) * tsize + 255) / 256 * 256; }

size_t bn_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  const Geo g = bn_geo(s);
  const size_t ns = s->op == ASG_OP_BATCHNORM ? kNS<false> : kNS<true>;
  return coef_bytes(g.C, asg_dtype_size(s->out.dtype)) + (size_t)(g.P * g.Kp) * ns * sizeof(double);
}

template <bool BWD, typename T>
void bn_stats(const Geo &g, const T *x, const T *dy, double *part, cudaStream_t st) {
  if (g.P == 0) return; // no values (M = 0)
  if (g.cols) {
    if (g.ctiles == 0) return;
    bn_cols_kernel<BWD, T>
        <<<asg_cuda_blocks(g.P * g.ctiles * kThreads, kThreads), kThreads, 0, st>>>(x, dy, part, g);
  } else {
    bn_runs_kernel<BWD, T>
        <<<asg_cuda_blocks(g.C * g.P * kThreads, kThreads), kThreads, 0, st>>>(x, dy, part, g);
  }
}

template <bool BWD, typename T>
void bn_final(const Geo &g, const double *part, int mode, double eps, const T *gamma, const T *beta,
              T *coef, T *dgamma, cudaStream_t st) {
  if (g.P * g.Sp >= kThreads) // many partials a channel (few channels): a block each
    bn_final_kernel<BWD, kThreads, T>
        <<<asg_cuda_blocks(g.C * kThreads, kThreads), kThreads, 0, st>>>(part, g, mode, eps, gamma,
                                                                         beta, coef, dgamma);
  else
    bn_final_kernel<BWD, 32, T><<<asg_cuda_blocks(g.C * 32, kThreads), kThreads, 0, st>>>(
        part, g, mode, eps, gamma, beta, coef, dgamma);
}

template <bool BWD, typename T, int VW>
void bn_apply_as(const Geo &g, const T *x, const T *dy, const T *coef, T *out, cudaStream_t st) {
  const int64_t total = g.M * g.C, nvec = total / VW;
  const unsigned grid = asg_cuda_blocks(nvec, kThreads);
  if (total <= (int64_t)UINT32_MAX) // then S, C <= 2^32 - 1 as well
    bn_apply_kernel<BWD, T, VW, true><<<grid, kThreads, 0, st>>>(
        x, dy, coef, out, nvec, g.S, g.C, asg__fastdiv((uint32_t)g.S), asg__fastdiv((uint32_t)g.C));
  else
    bn_apply_kernel<BWD, T, VW, false>
        <<<grid, kThreads, 0, st>>>(x, dy, coef, out, nvec, g.S, g.C, asg_fastdiv{}, asg_fastdiv{});
}

template <bool BWD, typename T>
void bn_apply(const Geo &g, const T *x, const T *dy, const T *coef, T *out, cudaStream_t st) {
  constexpr int VW = 16 / sizeof(T); // 16-byte vectors
  const uintptr_t mis =
      ((uintptr_t)x | (uintptr_t)out | (BWD ? (uintptr_t)dy : 0)) % (VW * sizeof(T));
  if (mis == 0 && (g.S % VW == 0 || (g.S == 1 && g.C % VW == 0)))
    bn_apply_as<BWD, T, VW>(g, x, dy, coef, out, st);
  else
    bn_apply_as<BWD, T, 1>(g, x, dy, coef, out, st);
}

template <typename T> void bn_launch(const asg_cuda_call *c, const Geo &g) {
  cudaStream_t st = c->ctx->stream;
  const asg_op op = c->s->op;
  const double eps = c->s->attr.f[0];
  T *coef = (T *)c->ws, *out = (T *)c->out;
  double *part = (double *)((char *)c->ws + coef_bytes(g.C, sizeof(T)));
  if (op == ASG_OP_BATCHNORM) { // (x, gamma, beta) -> y
    const T *x = (const T *)c->in[0];
    bn_stats<false, T>(g, x, nullptr, part, st);
    bn_final<false, T>(g, part, kFwd, eps, (const T *)c->in[1], (const T *)c->in[2], coef, nullptr,
                       st);
    bn_apply<false, T>(g, x, nullptr, coef, out, st);
    return;
  }
  const T *dy = (const T *)c->in[0], *x = (const T *)c->in[1];
  bn_stats<true, T>(g, x, dy, part, st);
  if (op == ASG_OP_BATCHNORM_BWD_GAMMA) { // (dy, x) -> dgamma [C]
    bn_final<true, T>(g, part, kBwdGamma, eps, nullptr, nullptr, nullptr, out, st);
    return;
  }
  // (dy, x, gamma) -> dx
  bn_final<true, T>(g, part, kBwdX, eps, (const T *)c->in[2], nullptr, coef, nullptr, st);
  bn_apply<true, T>(g, x, dy, coef, out, st);
}

asg_status batchnorm_run(const asg_cuda_call *c) {
  const asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype not supported", c->s->label);
  const Geo g = bn_geo(c->s);
  if (g.C == 0) return ASG_OK;
  // no values: y and dx are empty; dgamma is NaN (0 * the rstd of an empty
  // channel, 1 / sqrt(0 / 0)), as on the CPU
  if (g.M == 0 && c->s->op != ASG_OP_BATCHNORM_BWD_GAMMA) return ASG_OK;
  if (dt == ASG_F32)
    bn_launch<float>(c, g);
  else
    bn_launch<double>(c, g);
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_batchnorm(asg_cuda_kernel *t) {
  t[ASG_OP_BATCHNORM].run = batchnorm_run;
  t[ASG_OP_BATCHNORM_BWD_X].run = batchnorm_run;
  t[ASG_OP_BATCHNORM_BWD_GAMMA].run = batchnorm_run;
  t[ASG_OP_BATCHNORM].ws = bn_ws;
  t[ASG_OP_BATCHNORM_BWD_X].ws = bn_ws;
  t[ASG_OP_BATCHNORM_BWD_GAMMA].ws = bn_ws;
}
