// CUDA kernels of the nn family: layernorm (+ its two backward ops), rmsnorm,
// softmax cross-entropy (+ its backward op) and the random sources.
// Reference semantics: src/backends/cpu/cpu_nn.c and cpu_random.c. Sums
// accumulate in double for f32 and f64 as on the CPU, and every reduction has
// a fixed order (no atomics), so results are deterministic run to run.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_fault.cuh"
#include "backends/cuda/cuda_half.cuh"

#include <math.h>

#include <type_traits>

namespace {

constexpr int kThreads = 256; // block size of the row and column kernels
// Rows up to this width use one warp per row (up to 128 elements a lane:
// [8192, 768] layernorms get 1024 blocks of 8 rows and no block-wide syncs).
constexpr int kWarpRowsMaxC = 4096;

int64_t prod_dims(asg_shape s, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; d++)
    n *= s.dims[d];
  return n;
}

asg_status dtype_error(const asg_cuda_call *c) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype not supported", c->s->label);
}

// ---- row reductions: a warp (WARP) or a whole block reduces one row ----

struct SumOp {
  template <typename V> __device__ static V apply(V a, V b) { return a + b; }
};
// Max that propagates NaN, like the CPU's `if (x > m || x != x) m = x`.
struct MaxOp {
  template <typename V> __device__ static V apply(V a, V b) { return (b > a || b != b) ? b : a; }
};

// Every thread of the row gets the result. The block version writes one
// partial per warp and every thread then folds them in warp order, so the
// result does not depend on timing. sh holds >= 32 values.
template <bool WARP, typename Op, typename V> __device__ V row_reduce(V v, V *sh) {
  for (int o = 16; o > 0; o >>= 1)
    v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (WARP) return v;
  int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads(); // sh may still be read by a previous call
  if ((threadIdx.x & 31) == 0) sh[w] = v;
  __syncthreads();
  V t = sh[0];
  for (int i = 1; i < nw; i++)
    t = Op::apply(t, sh[i]);
  return t;
}

// HO (16-bit outputs, asg_cuda_call.half_out): an f32 output is written as
// bf16 (kHalfBf16) or fp16 (kHalfFp16) instead (0: as T); cuda_half.cuh.

// Row geometry of one thread: which row it starts at, its lane in the row,
// the number of threads per row and the row step of the grid-stride loop.
template <bool WARP> struct RowIter {
  int64_t first, step;
  int lane, nthr;
  __device__ RowIter() {
    if (WARP) {
      int wpb = blockDim.x >> 5;
      first = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5);
      step = (int64_t)gridDim.x * wpb;
      lane = threadIdx.x & 31;
      nthr = 32;
    } else {
      first = blockIdx.x;
      step = gridDim.x;
      lane = threadIdx.x;
      nthr = blockDim.x;
    }
  }
};

// Mean and 1/sqrt(var + eps) of one row (two passes, as on the CPU).
template <bool WARP, typename T>
__device__ void ln_stats(const T *xr, int64_t C, double eps, int lane, int nthr, double *sh,
                         double *mean, double *rstd) {
  double s = 0;
  for (int64_t j = lane; j < C; j += nthr)
    s += (double)xr[j];
  double m = row_reduce<WARP, SumOp>(s, sh) / (double)C;
  double q = 0;
  for (int64_t j = lane; j < C; j += nthr) {
    double d = (double)xr[j] - m;
    q += d * d;
  }
  q = row_reduce<WARP, SumOp>(q, sh);
  *mean = m;
  *rstd = 1.0 / sqrt(q / (double)C + eps);
}

// x [R,C], gamma [C], beta [C] -> y [R,C] (HO: 16-bit y);
// stats (when set) keeps mean [R] and rstd [R] for the backward steps.
// With xa (a residual add folded in, asg_cuda_call.ln_add): x = xa + xb is
// computed here and written to xs first; each thread then reads back only
// the elements it wrote.
template <bool WARP, typename T, int HO>
__global__ void ln_fwd_kernel(const T *x, const T *gm, const T *bt, void *yv, double *stats,
                              int64_t R, int64_t C, double eps, const T *xa, const T *xb, T *xs) {
  __shared__ double sh[32];
  RowIter<WARP> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    const T *xr = x + r * C;
    if (xa) {
      for (int64_t j = it.lane; j < C; j += it.nthr)
        xs[r * C + j] = xa[r * C + j] + xb[r * C + j];
      xr = xs + r * C;
    }
    double mean, rstd;
    ln_stats<WARP>(xr, C, eps, it.lane, it.nthr, sh, &mean, &rstd);
    if (stats && it.lane == 0) stats[r] = mean, stats[R + r] = rstd;
    for (int64_t j = it.lane; j < C; j += it.nthr) {
      const T v = (T)(((double)xr[j] - mean) * rstd * (double)gm[j] + (double)bt[j]);
      if constexpr (HO != 0)
        half_store<HO>(yv, r * C + j, v);
      else
        static_cast<T *>(yv)[r * C + j] = v;
    }
  }
}

// Rows of at most 32 K columns: a warp per row keeps its K values a lane in
// registers (columns lane + 32 k), so the row is read once (a + b once
// when an add is folded in, and the sum written once). The statistics take
// two passes (mean, then squared deviations); each lane sums its K values in
// T and the lanes' sums are joined in double. Per-element arithmetic is in T:
// in double (f32 -> f64 conversions run at a quarter of the f32 rate on
// sm_90) the kernel was bound by conversions, not memory. Pointers are
// __restrict__ so that loads need not wait for earlier stores (x is xs only
// when an add is folded in, and then x is not read).
template <typename T, int K, int HO>
__global__ void ln_fwd_reg_kernel(const T *__restrict__ x, const T *__restrict__ gm,
                                  const T *__restrict__ bt, void *__restrict__ yv,
                                  double *__restrict__ stats, int64_t R, int64_t C, double eps,
                                  const T *__restrict__ xa, const T *__restrict__ xb,
                                  T *__restrict__ xs) {
  RowIter<true> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    // loads first: with x == xs (a folded add) the reads of x never happen
    T v[K];
#pragma unroll
    for (int k = 0; k < K; k++) {
      const int64_t j = it.lane + 32 * k;
      v[k] = j < C ? (xa ? xa[r * C + j] + xb[r * C + j] : x[r * C + j]) : (T)0;
    }
    T s = 0; // columns past C hold zeros
#pragma unroll
    for (int k = 0; k < K; k++) {
      const int64_t j = it.lane + 32 * k;
      if (xa && j < C) xs[r * C + j] = v[k];
      s += v[k];
    }
    const double mean = row_reduce<true, SumOp>((double)s, (double *)nullptr) / (double)C;
    const T mt = (T)mean;
    T q = 0;
#pragma unroll
    for (int k = 0; k < K; k++)
      if (it.lane + 32 * k < C) {
        const T d = v[k] - mt;
        q += d * d;
      }
    const double rstd =
        1.0 / sqrt(row_reduce<true, SumOp>((double)q, (double *)nullptr) / (double)C + eps);
    if (stats && it.lane == 0) stats[r] = mean, stats[R + r] = rstd;
    const T rt = (T)rstd;
#pragma unroll
    for (int k = 0; k < K; k++) {
      const int64_t j = it.lane + 32 * k;
      if (j >= C) continue;
      const T y = (v[k] - mt) * rt * gm[j] + bt[j];
      if constexpr (HO != 0)
        half_store<HO>(yv, r * C + j, y);
      else
        static_cast<T *>(yv)[r * C + j] = y;
    }
  }
}

// Widest rows of ln_fwd_reg_kernel.
constexpr int64_t kLnRegMaxC = 1024;

template <typename T, int HO>
void ln_reg_launch(cudaStream_t st, unsigned grid, int64_t C, const T *x, const T *gm, const T *bt,
                   void *y, double *keep, int64_t R, double eps, const T *xa, const T *xb, T *xs) {
  auto kern = C <= 256   ? ln_fwd_reg_kernel<T, 8, HO>
              : C <= 512 ? ln_fwd_reg_kernel<T, 16, HO>
              : C <= 768 ? ln_fwd_reg_kernel<T, 24, HO>
                         : ln_fwd_reg_kernel<T, 32, HO>;
  kern<<<grid, kThreads, 0, st>>>(x, gm, bt, y, keep, R, C, eps, xa, xb, xs);
}

template <bool WARP, typename T>
void ln_fwd_launch(const asg_cuda_call *c, unsigned grid, const T *x, const T *gm, const T *bt,
                   int64_t R, int64_t C, double eps) {
  cudaStream_t st = c->ctx->stream;
  double *keep = (double *)c->stats_out;
  const T *xa = (const T *)c->ln_add[0], *xb = (const T *)c->ln_add[1];
  T *xs = const_cast<T *>(x); // written only with xa: the fused add's output
  const bool reg = WARP && C <= kLnRegMaxC;
  if constexpr (std::is_same<T, float>::value) { // into the products' 16-bit copy (cuda_backend.c)
    if (c->half_out && reg && c->bf16)
      ln_reg_launch<T, kHalfBf16>(st, grid, C, x, gm, bt, c->half_out, keep, R, eps, xa, xb, xs);
    else if (c->half_out && reg)
      ln_reg_launch<T, kHalfFp16>(st, grid, C, x, gm, bt, c->half_out, keep, R, eps, xa, xb, xs);
    else if (c->half_out && c->bf16)
      ln_fwd_kernel<WARP, T, kHalfBf16>
          <<<grid, kThreads, 0, st>>>(x, gm, bt, c->half_out, keep, R, C, eps, xa, xb, xs);
    else if (c->half_out)
      ln_fwd_kernel<WARP, T, kHalfFp16>
          <<<grid, kThreads, 0, st>>>(x, gm, bt, c->half_out, keep, R, C, eps, xa, xb, xs);
    if (c->half_out) return;
  }
  if (reg)
    ln_reg_launch<T, 0>(st, grid, C, x, gm, bt, c->out, keep, R, eps, xa, xb, xs);
  else
    ln_fwd_kernel<WARP, T, 0>
        <<<grid, kThreads, 0, st>>>(x, gm, bt, c->out, keep, R, C, eps, xa, xb, xs);
}

// dy [R,C], x [R,C], gamma [C] -> dx [R,C]:
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma.
// stats: the forward's mean [R] and rstd [R] (NULL: computed here).
template <bool WARP, typename T>
__global__ void ln_bwd_x_kernel(const T *dy, const T *x, const T *gm, const double *stats, T *dx,
                                int64_t R, int64_t C, double eps) {
  __shared__ double sh[32];
  RowIter<WARP> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    const T *xr = x + r * C, *dyr = dy + r * C;
    T *dxr = dx + r * C;
    double mean, rstd;
    if (stats)
      mean = stats[r], rstd = stats[R + r];
    else
      ln_stats<WARP>(xr, C, eps, it.lane, it.nthr, sh, &mean, &rstd);
    double sg = 0, sgx = 0;
    for (int64_t j = it.lane; j < C; j += it.nthr) {
      double g = (double)dyr[j] * (double)gm[j];
      sg += g;
      sgx += g * (((double)xr[j] - mean) * rstd);
    }
    sg = row_reduce<WARP, SumOp>(sg, sh) / (double)C;
    sgx = row_reduce<WARP, SumOp>(sgx, sh) / (double)C;
    for (int64_t j = it.lane; j < C; j += it.nthr) {
      double xh = ((double)xr[j] - mean) * rstd;
      dxr[j] = (T)(rstd * ((double)dyr[j] * (double)gm[j] - sg - xh * sgx));
    }
  }
}

// ---- layernorm_bwd_x + layernorm_bwd_gamma (+ dbeta) in one pass (paired
// by cuda_backend.c when they read the same dy and x): dy, x [R,C] (C <= 32
// K), gamma [C] -> dx [R,C] as ln_bwd_x_kernel, part [gridDim.x, C], each
// block's sum over its rows of dy * xhat, and (part2 set: a sum of dy over
// the rows folded in, the layer's beta gradient) part2 [gridDim.x, C], its
// sum over its rows of dy; ln_bwd_g_final_kernel sums the partials in block
// order. A warp takes a row of each group of 8 and keeps it in registers (K
// values a lane); the group's dy * xhat and dy go to shared memory
// ([2][8][C] of T), and thread t adds the 8 rows of columns t + 256 m in
// order (in T) to its running sums (in double; fixed grid, fixed order:
// deterministic; no
// per-lane column sums in registers, which held the kernel to a quarter of
// the SM's warps). Per-element arithmetic is in T, row sums are joined
// across lanes in double (see ln_fwd_reg_kernel).
constexpr int kXgMaxBlocks = 256; // one wave of 2 blocks an SM on 128+ SMs (fewer partials)
constexpr int kXgCols = 4;        // columns a thread sums: C <= 1024 = 4 x kThreads
int64_t ln_xg_blocks(int64_t R) {
  int64_t b = (R + kThreads / 32 - 1) / (kThreads / 32);
  return b < 1 ? 1 : b > kXgMaxBlocks ? kXgMaxBlocks : b;
}

template <typename T> size_t ln_xg_smem(int64_t C) {
  return 2 * (size_t)(kThreads / 32) * (size_t)C * sizeof(T);
}

template <typename T, int K>
__global__ void __launch_bounds__(kThreads, sizeof(T) == 4 ? 2 : 1) // f32: 2 blocks an SM
    ln_bwd_xg_kernel(const T *__restrict__ dy, const T *__restrict__ x, const T *__restrict__ gm,
                     const double *__restrict__ stats, T *__restrict__ dx, double *part,
                     double *part2, int64_t R, int64_t C, double eps) {
  extern __shared__ __align__(16) unsigned char xg_smem[];
  T *cg = reinterpret_cast<T *>(xg_smem), *cb = cg + (kThreads / 32) * C;
  __shared__ double sh[32];
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  double accg[kXgCols], accb[kXgCols]; // each group's 8 rows are added in T
#pragma unroll
  for (int m = 0; m < kXgCols; m++)
    accg[m] = 0, accb[m] = 0;
  const int64_t groups = (R + kThreads / 32 - 1) / (kThreads / 32);
  for (int64_t gi = blockIdx.x; gi < groups; gi += gridDim.x) { // uniform per block
    const int64_t r = gi * (kThreads / 32) + w;
    T *rg = cg + w * C, *rb = cb + w * C;
    if (r < R) {
      const T *xr = x + r * C, *dyr = dy + r * C;
      double mean, rstd;
      if (stats)
        mean = stats[r], rstd = stats[R + r];
      else
        ln_stats<true>(xr, C, eps, lane, 32, sh, &mean, &rstd);
      const T mt = (T)mean, rt = (T)rstd;
      T dv[K], xv[K];
      T sg = 0, sgx = 0;
#pragma unroll
      for (int k = 0; k < K; k++) {
        const int j = lane + 32 * k;
        dv[k] = j < C ? dyr[j] : (T)0;
        xv[k] = j < C ? xr[j] : (T)0;
      }
#pragma unroll
      for (int k = 0; k < K; k++) {
        const int j = lane + 32 * k;
        if (j < C) {
          const T xh = (xv[k] - mt) * rt, g = dv[k] * gm[j];
          sg += g;
          sgx += g * xh;
          rg[j] = dv[k] * xh;
          rb[j] = dv[k];
        }
      }
      const T mg = (T)(row_reduce<true, SumOp>((double)sg, sh) / (double)C);
      const T mgx = (T)(row_reduce<true, SumOp>((double)sgx, sh) / (double)C);
#pragma unroll
      for (int k = 0; k < K; k++) {
        const int j = lane + 32 * k;
        if (j < C) {
          const T xh = (xv[k] - mt) * rt; // dy back from shared memory: fewer registers
          dx[r * C + j] = rt * (rb[j] * gm[j] - mg - xh * mgx);
        }
      }
    } else {
      for (int64_t j = lane; j < C; j += 32)
        rg[j] = 0, rb[j] = 0;
    }
    __syncthreads();
#pragma unroll
    for (int m = 0; m < kXgCols; m++) {
      const int j = threadIdx.x + kThreads * m;
      if (j < C) {
        T a = 0, b = 0;
#pragma unroll
        for (int q = 0; q < kThreads / 32; q++)
          a += cg[q * C + j], b += cb[q * C + j];
        accg[m] += (double)a;
        accb[m] += (double)b;
      }
    }
    __syncthreads(); // the next group overwrites the rows
  }
#pragma unroll
  for (int m = 0; m < kXgCols; m++) {
    const int j = threadIdx.x + kThreads * m;
    if (j < C) {
      part[(int64_t)blockIdx.x * C + j] = accg[m];
      if (part2) part2[(int64_t)blockIdx.x * C + j] = accb[m];
    }
  }
}

// x [R,C] -> mean [R], rstd [R] (first pass of the dgamma reduction)
template <bool WARP, typename T>
__global__ void ln_stats_kernel(const T *x, double *mean, double *rstd, int64_t R, int64_t C,
                                double eps) {
  __shared__ double sh[32];
  RowIter<WARP> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    double m, rs;
    ln_stats<WARP>(x + r * C, C, eps, it.lane, it.nthr, sh, &m, &rs);
    if (it.lane == 0) mean[r] = m, rstd[r] = rs;
  }
}

// dgamma partials: block (32 columns, 8 row lanes) of chunk p sums rows
// [p*rows_per, (p+1)*rows_per) of dy * xhat into part [P, C].
constexpr int kColTile = 32, kRowLanes = 8;
template <typename T>
__global__ void ln_bwd_g_partial_kernel(const T *dy, const T *x, const double *mean,
                                        const double *rstd, double *part, int64_t R, int64_t C,
                                        int64_t rows_per) {
  __shared__ double sh[kRowLanes][kColTile];
  int64_t j = (int64_t)blockIdx.x * kColTile + threadIdx.x;
  int64_t p = blockIdx.y;
  int64_t r0 = p * rows_per, r1 = r0 + rows_per < R ? r0 + rows_per : R;
  double acc = 0;
  if (j < C)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes)
      acc += (double)dy[r * C + j] * (((double)x[r * C + j] - mean[r]) * rstd[r]);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < C) {
    double t = sh[0][threadIdx.x];
    for (int k = 1; k < kRowLanes; k++)
      t += sh[k][threadIdx.x];
    part[p * C + j] = t;
  }
}

// part [P, C] -> dgamma [C]: a block of 32 columns x 16 row lanes; lane y
// sums chunks y, y + 16, ... in order, then the lanes are added in order
// (one thread per column walking all P chunks waited on P dependent loads).
constexpr int kSumLanes = 16;
template <typename T>
__global__ void ln_bwd_g_final_kernel(const double *part, T *dg, int64_t P, int64_t C) {
  __shared__ double sh[kSumLanes][kColTile];
  const int64_t j = (int64_t)blockIdx.x * kColTile + threadIdx.x;
  double t = 0;
  if (j < C)
    for (int64_t p = threadIdx.y; p < P; p += kSumLanes)
      t += part[p * C + j];
  sh[threadIdx.y][threadIdx.x] = t;
  __syncthreads();
  if (threadIdx.y == 0 && j < C) {
    double u = sh[0][threadIdx.x];
    for (int k = 1; k < kSumLanes; k++)
      u += sh[k][threadIdx.x];
    dg[j] = (T)u;
  }
}

void ln_g_final(const double *part, void *dg, int64_t P, int64_t C, bool f32, cudaStream_t st) {
  const unsigned g = (unsigned)((C + kColTile - 1) / kColTile);
  if (f32)
    ln_bwd_g_final_kernel<float><<<g, dim3(kColTile, kSumLanes), 0, st>>>(part, (float *)dg, P, C);
  else
    ln_bwd_g_final_kernel<double>
        <<<g, dim3(kColTile, kSumLanes), 0, st>>>(part, (double *)dg, P, C);
}

// x is input 0 for LAYERNORM, input 1 for the backward ops.
void ln_dims(const asg_step *s, int64_t *R, int64_t *C) {
  asg_shape sh = s->in[s->op == ASG_OP_LAYERNORM ? 0 : 1].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = prod_dims(sh, 0, sh.ndim - 1);
}

// Row chunks of the dgamma reduction: a function of R only (deterministic).
int64_t ln_g_chunks(int64_t R) {
  int64_t p = (R + 63) / 64;
  if (p > 1024) p = 1024;
  return p < 1 ? 1 : p;
}

// Widest rows the one-pass layernorm backward takes (32 K columns a warp).
constexpr int64_t kXgMaxC = 1024;

// Workspace of layernorm_bwd_x: the dgamma and dbeta partials when it also
// computes a paired layernorm_bwd_gamma (and sum).
size_t ln_bwd_x_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  int64_t R, C;
  ln_dims(s, &R, &C);
  return C <= kXgMaxC ? 2 * (size_t)ln_xg_blocks(R) * (size_t)C * sizeof(double) : 0;
}

template <typename T, int K>
void ln_xg_launch(const asg_cuda_call *c, int64_t R, int64_t C, double eps) {
  cudaStream_t st = c->ctx->stream;
  const int64_t P = ln_xg_blocks(R);
  double *part = (double *)c->ws, *part2 = c->fused_out2 ? part + P * C : nullptr;
  const size_t smem = ln_xg_smem<T>(C);
  auto kern = ln_bwd_xg_kernel<T, K>;
  if (smem > 48 * 1024 && cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               (int)smem) != cudaSuccess)
    return; // reported by the caller's check
  kern<<<(unsigned)P, kThreads, smem, st>>>((const T *)c->in[0], (const T *)c->in[1],
                                            (const T *)c->in[2], (const double *)c->stats_in,
                                            (T *)c->out, part, part2, R, C, eps);
  ln_g_final(part, c->fused_out, P, C, std::is_same<T, float>::value, st);
  if (part2) ln_g_final(part2, c->fused_out2, P, C, std::is_same<T, float>::value, st);
}

size_t ln_bwd_g_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  int64_t R, C;
  ln_dims(s, &R, &C);
  return ((size_t)R * 2 + (size_t)ln_g_chunks(R) * (size_t)C) * sizeof(double);
}

// Grid for a row kernel: one warp (8 per block) or one block per row.
unsigned row_grid(int64_t R, bool warp) {
  return asg_cuda_blocks(warp ? R * 32 : R * kThreads, kThreads);
}

template <typename T> void ln_launch(const asg_cuda_call *c, int64_t R, int64_t C) {
  cudaStream_t st = c->ctx->stream;
  double eps = c->s->attr.f[0];
  bool warp = C <= kWarpRowsMaxC;
  unsigned grid = row_grid(R, warp);
  const T *in0 = (const T *)c->in[0], *in1 = (const T *)c->in[1];
  T *out = (T *)c->out;
  switch (c->s->op) {
  case ASG_OP_LAYERNORM: {
    const T *bt = (const T *)c->in[2];
    if (warp)
      ln_fwd_launch<true, T>(c, grid, in0, in1, bt, R, C, eps);
    else
      ln_fwd_launch<false, T>(c, grid, in0, in1, bt, R, C, eps);
    break;
  }
  case ASG_OP_LAYERNORM_BWD_X: {
    const T *gm = (const T *)c->in[2];
    const double *kept = (const double *)c->stats_in;
    if (c->fused_out) { // and the paired dgamma (cuda_backend.c checked C <= kXgMaxC)
      if (C <= 256)
        ln_xg_launch<T, 8>(c, R, C, eps);
      else if (C <= 512)
        ln_xg_launch<T, 16>(c, R, C, eps);
      else if (C <= 768)
        ln_xg_launch<T, 24>(c, R, C, eps);
      else
        ln_xg_launch<T, 32>(c, R, C, eps);
      break;
    }
    if (warp)
      ln_bwd_x_kernel<true, T><<<grid, kThreads, 0, st>>>(in0, in1, gm, kept, out, R, C, eps);
    else
      ln_bwd_x_kernel<false, T><<<grid, kThreads, 0, st>>>(in0, in1, gm, kept, out, R, C, eps);
    break;
  }
  default: { // LAYERNORM_BWD_GAMMA(dy, x): workspace = mean [R], rstd [R], part [P, C]
    // (the forward's statistics when it kept them)
    double *mean = (double *)c->ws, *rstd = mean + R, *part = rstd + R;
    if (c->stats_in) {
      mean = (double *)c->stats_in, rstd = mean + R;
    } else if (warp) {
      ln_stats_kernel<true, T><<<grid, kThreads, 0, st>>>(in1, mean, rstd, R, C, eps);
    } else {
      ln_stats_kernel<false, T><<<grid, kThreads, 0, st>>>(in1, mean, rstd, R, C, eps);
    }
    int64_t P = ln_g_chunks(R), rows_per = (R + P - 1) / P;
    dim3 g2((unsigned)((C + kColTile - 1) / kColTile), (unsigned)P);
    ln_bwd_g_partial_kernel<T>
        <<<g2, dim3(kColTile, kRowLanes), 0, st>>>(in0, in1, mean, rstd, part, R, C, rows_per);
    ln_g_final(part, out, P, C, std::is_same<T, float>::value, st);
    break;
  }
  }
}

asg_status layernorm_run(const asg_cuda_call *c) {
  int64_t R, C;
  ln_dims(c->s, &R, &C);
  asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  if (C == 0) return ASG_OK;
  if (c->s->op == ASG_OP_LAYERNORM_BWD_GAMMA && R == 0) { // dgamma of an empty batch is zero
    cudaMemsetAsync(c->out, 0, (size_t)C * asg_dtype_size(dt), c->ctx->stream);
    return asg_cuda_check(c);
  }
  if (R == 0) return ASG_OK;
  if (dt == ASG_F32)
    ln_launch<float>(c, R, C);
  else
    ln_launch<double>(c, R, C);
  return asg_cuda_check(c);
}

// ---- rmsnorm ----

// x [R,C], w [C] -> y [R,C] = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps)
// per row; the sum of squares in double as on the CPU (cpu_nn.c). A warp
// per row for C <= kWarpRowsMaxC, else a block (ln_fwd_kernel's layout).
template <bool WARP, typename T>
__global__ void rms_fwd_kernel(const T *x, const T *w, T *y, int64_t R, int64_t C, double eps) {
  __shared__ double sh[32];
  RowIter<WARP> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    const T *xr = x + r * C;
    double q = 0;
    for (int64_t j = it.lane; j < C; j += it.nthr) {
      const double v = (double)xr[j];
      q += v * v;
    }
    q = row_reduce<WARP, SumOp>(q, sh);
    const double rstd = 1.0 / sqrt(q / (double)C + eps);
    for (int64_t j = it.lane; j < C; j += it.nthr)
      y[r * C + j] = (T)((double)xr[j] * rstd * (double)w[j]);
  }
}

// Rows of at most kLnRegMaxC columns: as ln_fwd_reg_kernel, a warp per row
// with its K values a lane (and the weight's) loaded before any is used, so
// a row costs one memory latency, not one per value (a decode step's
// [1, 768] rows are latency-bound); the lanes' sums of squares in T joined
// in double, y in T.
template <typename T, int K>
__global__ void rms_fwd_reg_kernel(const T *__restrict__ x, const T *__restrict__ w,
                                   T *__restrict__ y, int64_t R, int64_t C, double eps) {
  RowIter<true> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    T v[K], wv[K];
#pragma unroll
    for (int k = 0; k < K; k++) {
      const int64_t j = it.lane + 32 * k;
      v[k] = j < C ? x[r * C + j] : (T)0;
      wv[k] = j < C ? w[j] : (T)0;
    }
    T q = 0; // columns past C hold zeros
#pragma unroll
    for (int k = 0; k < K; k++)
      q += v[k] * v[k];
    const T rt =
        (T)(1.0 / sqrt(row_reduce<true, SumOp>((double)q, (double *)nullptr) / (double)C + eps));
#pragma unroll
    for (int k = 0; k < K; k++) {
      const int64_t j = it.lane + 32 * k;
      if (j < C) y[r * C + j] = v[k] * rt * wv[k];
    }
  }
}

template <typename T> void rms_launch(const asg_cuda_call *c, int64_t R, int64_t C) {
  const T *x = (const T *)c->in[0], *w = (const T *)c->in[1];
  T *y = (T *)c->out;
  double eps = c->s->attr.f[0];
  bool warp = C <= kWarpRowsMaxC;
  unsigned grid = row_grid(R, warp);
  if (C <= kLnRegMaxC) {
    auto kern = C <= 256   ? rms_fwd_reg_kernel<T, 8>
                : C <= 512 ? rms_fwd_reg_kernel<T, 16>
                : C <= 768 ? rms_fwd_reg_kernel<T, 24>
                           : rms_fwd_reg_kernel<T, 32>;
    kern<<<grid, kThreads, 0, c->ctx->stream>>>(x, w, y, R, C, eps);
  } else if (warp)
    rms_fwd_kernel<true, T><<<grid, kThreads, 0, c->ctx->stream>>>(x, w, y, R, C, eps);
  else
    rms_fwd_kernel<false, T><<<grid, kThreads, 0, c->ctx->stream>>>(x, w, y, R, C, eps);
}

asg_status rmsnorm_run(const asg_cuda_call *c) {
  asg_shape sh = c->s->in[0].shape;
  int64_t C = sh.dims[sh.ndim - 1], R = prod_dims(sh, 0, sh.ndim - 1);
  asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  if (R == 0 || C == 0) return ASG_OK;
  if (dt == ASG_F32)
    rms_launch<float>(c, R, C);
  else
    rms_launch<double>(c, R, C);
  return asg_cuda_check(c);
}

// ---- softmax cross-entropy ----

__device__ __forceinline__ int64_t label_at(const void *l, bool i32, int64_t r) {
  return i32 ? (int64_t)((const int32_t *)l)[r] : ((const int64_t *)l)[r];
}
// Ignored and out-of-range labels leave the row out (and never index);
// out-of-range ones are reported to c->fault (cuda_fault.cuh).
__device__ __forceinline__ bool label_ok(int64_t lab, int64_t C, int64_t ignore) {
  return lab != ignore && lab >= 0 && lab < C;
}

__device__ __forceinline__ float exp_t(float v) { return expf(v); }
__device__ __forceinline__ double exp_t(double v) { return exp(v); }

// log-sum-exp of one row in one pass over it (online: each thread keeps its
// running max m and sum s of exp(x - m) in double, rescaled when m grows;
// the threads' pairs are then joined). As the CPU's two passes (max, then
// the sum of exp(x - max) in double), a NaN or +inf anywhere, or a row of
// only -inf, gives NaN.
// Folds four values into a thread's running (max m, sum s of exp(x - m)):
// one rescale per vector instead of per element.
__device__ __forceinline__ void lse_add4(float4 v, float &m, double &s, int &bad) {
  const float mx = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)); // NaNs are flagged below
  bad |= (v.x != v.x) | (v.y != v.y) | (v.z != v.z) | (v.w != v.w) | (mx == INFINITY);
  if (mx > m) {
    s *= (double)expf(m - mx); // exp(-inf) = 0 for the first vector
    m = mx;
  }
  if (m != -INFINITY) // -inf elements add exp(-inf) = 0
    s += (double)(expf(v.x - m) + expf(v.y - m) + expf(v.z - m) + expf(v.w - m));
}

// The log-sum-exp of a row as m + lg (m its max, lg = log(sum exp(x - m))):
// kept apart so that x - lse is computed as (x - m) - lg, exact for large
// logits where m + lg would round lg away.
struct Lse {
  double m, lg;
};

// HI (T = float, VEC): the logits are kept as 16 bits (asg_cuda_call.in_half),
// xr then points at the row's first 16-bit value.
template <bool WARP, bool VEC, typename T, int HI>
__device__ Lse row_lse(const T *xr, int64_t C, int lane, int nthr, T *shT, double *sh) {
  T m = (T)-INFINITY;
  double s = 0;
  int bad = 0;
  if constexpr (VEC) { // T = float, C % 4 == 0, rows 16-byte (8-byte for 16 bits) aligned
    for (int64_t j = lane; j < C / 4; j += nthr)
      lse_add4(half_load4<HI>(xr, j), m, s, bad);
  } else {
    for (int64_t j = lane; j < C; j += nthr) {
      const T v = xr[j];
      if (v > m) {
        if (v == (T)INFINITY) bad = 1;
        s = s * (double)exp_t(m - v) + 1.0; // exp(-inf) = 0 for the first element
        m = v;
      } else if (v != v) {
        bad = 1;
      } else if (v != (T)-INFINITY) {
        s += (double)exp_t(v - m);
      }
    }
  }
  const T M = row_reduce<WARP, MaxOp>(m, shT);
  bad = (int)row_reduce<WARP, SumOp>((double)bad, sh);
  if (bad || M == (T)-INFINITY) return {NAN, NAN};
  s = row_reduce<WARP, SumOp>(m == (T)-INFINITY ? 0.0 : s * (double)exp_t(m - M), sh);
  return {(double)M, log(s)};
}

// logits [R,C], labels [R] -> row losses [R] (0 for left-out rows):
// (1-ls) * (lg - (x[label] - m)) + ls * (lg - mean_c (x - m)), lse = m + lg
// lse_out (when set) keeps each counted row's m [R], then lg [R], for the
// backward step.
template <bool WARP, bool VEC, typename T, int HI>
__global__ void ce_rows_kernel(const T *x, const void *lab, bool i32, double *row, double *lse_out,
                               int64_t R, int64_t C, double ls, int64_t ign, asg_index_fault *fault,
                               unsigned step1) {
  __shared__ double sh[32];
  __shared__ T shT[32];
  RowIter<WARP> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    int64_t l = label_at(lab, i32, r);
    if (!label_ok(l, C, ign)) { // uniform over the row's threads
      if (it.lane == 0) {
        row[r] = 0;
        if (l != ign) asg_cuda_index_fault(fault, step1, l);
      }
      continue;
    }
    const T *xr = HI ? (const T *)((const char *)x + r * C * 2) : x + r * C;
    const Lse z = row_lse<WARP, VEC, T, HI>(xr, C, it.lane, it.nthr, shT, sh);
    double v = (1 - ls) * (z.lg - ((double)(HI ? (T)half_load<HI>(xr, l) : xr[l]) - z.m));
    if (ls > 0) {
      double sx = 0;
      for (int64_t j = it.lane; j < C; j += it.nthr)
        sx += (double)(HI ? (T)half_load<HI>(xr, j) : xr[j]) - z.m;
      sx = row_reduce<WARP, SumOp>(sx, sh);
      v += ls * (z.lg - sx / (double)C);
    }
    if (it.lane == 0) {
      row[r] = v;
      if (lse_out) {
        lse_out[r] = z.m;
        lse_out[R + r] = z.lg;
      }
    }
  }
}

// row [R], labels [R] -> loss [] = sum(row) / count (NaN when nothing counts,
// as PyTorch's mean over no rows);
// count (when set) keeps the count for the backward step. One block; each
// thread sums a fixed strided subset, then a fixed-order fold.
template <typename T>
__global__ void ce_total_kernel(const double *row, const void *lab, bool i32, T *out, double *count,
                                int64_t R, int64_t C, int64_t ign) {
  __shared__ double sh[32];
  double t = 0, n = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
    t += row[r];
    n += label_ok(label_at(lab, i32, r), C, ign) ? 1.0 : 0.0;
  }
  t = row_reduce<false, SumOp>(t, sh);
  n = row_reduce<false, SumOp>(n, sh);
  if (threadIdx.x == 0) {
    *out = (T)(n > 0 ? t / n : (double)NAN);
    if (count) *count = n;
  }
}

// labels [R] -> count [] (double, exact): rows that take part in the loss
__global__ void ce_count_kernel(const void *lab, bool i32, double *count, int64_t R, int64_t C,
                                int64_t ign) {
  __shared__ double sh[32];
  double n = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
    n += label_ok(label_at(lab, i32, r), C, ign) ? 1.0 : 0.0;
  n = row_reduce<false, SumOp>(n, sh);
  if (threadIdx.x == 0) *count = n;
}

// logits [R,C], labels [R], dloss [] -> dlogits [R,C] =
// (softmax - ((1-ls) onehot + ls/C)) * dloss / count; zero for left-out rows
// lse_in (when set): the rows' log-sum-exp from the forward step (m [R], then
// lg [R]), so the row is read once. VEC: T = float, C % 4 == 0, rows 16-byte
// aligned; the softmax exp((x - m) - lg) is then computed in float.
template <bool WARP, bool VEC, typename T, int HO, int HI>
__global__ void ce_bwd_kernel(const T *x, const void *lab, bool i32, const T *dloss,
                              const double *count, const double *lse_in, void *dxv, int64_t R,
                              int64_t C, double ls, int64_t ign, asg_index_fault *fault,
                              unsigned step1) {
  T *dx = static_cast<T *>(dxv);
  __shared__ double sh[32];
  __shared__ T shT[32];
  RowIter<WARP> it;
  double n = *count;
  double scale = n > 0 ? (double)*dloss / n : 0.0, off = ls / (double)C;
  for (int64_t r = it.first; r < R; r += it.step) {
    int64_t l = label_at(lab, i32, r);
    const T *xr = HI ? (const T *)((const char *)x + r * C * 2) : x + r * C;
    T *dr = dx + r * C;
    if (!label_ok(l, C, ign)) {
      if (it.lane == 0 && l != ign) asg_cuda_index_fault(fault, step1, l);
      for (int64_t j = it.lane; j < C; j += it.nthr)
        if constexpr (HO != 0)
          half_store<HO>(dxv, r * C + j, 0.f);
        else
          dr[j] = (T)0;
      continue;
    }
    const Lse z = lse_in ? Lse{lse_in[r], lse_in[R + r]}
                         : row_lse<WARP, VEC, T, HI>(xr, C, it.lane, it.nthr, shT, sh);
    if constexpr (VEC) {
      float4 *d4 = reinterpret_cast<float4 *>(dr);
      // m is a float value (the row's max), so x - m is exact in float
      const float mf = (float)z.m, lf = (float)z.lg, sc = (float)scale, of = (float)off,
                  hit = (float)(1 - ls);
      for (int64_t j = it.lane; j < C / 4; j += it.nthr) {
        const float4 v = half_load4<HI>(xr, j);
        float4 o;
        o.x = (expf((v.x - mf) - lf) - of - (4 * j == l ? hit : 0.f)) * sc;
        o.y = (expf((v.y - mf) - lf) - of - (4 * j + 1 == l ? hit : 0.f)) * sc;
        o.z = (expf((v.z - mf) - lf) - of - (4 * j + 2 == l ? hit : 0.f)) * sc;
        o.w = (expf((v.w - mf) - lf) - of - (4 * j + 3 == l ? hit : 0.f)) * sc;
        if constexpr (HO != 0)
          half_store4<HO>(dxv, r * (C / 4) + j, o);
        else
          d4[j] = o;
      }
    } else {
      for (int64_t j = it.lane; j < C; j += it.nthr) {
        double v = exp(((double)xr[j] - z.m) - z.lg) - off;
        if (j == l) v -= 1 - ls;
        if constexpr (HO != 0)
          half_store<HO>(dxv, r * C + j, (float)(v * scale));
        else
          dr[j] = (T)(v * scale);
      }
    }
  }
}

void ce_dims(const asg_step *s, int64_t *R, int64_t *C) {
  asg_shape sh = s->in[0].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = prod_dims(sh, 0, sh.ndim - 1);
}

size_t ce_fwd_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  int64_t R, C;
  ce_dims(s, &R, &C);
  return (size_t)R * sizeof(double);
}

size_t ce_bwd_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  (void)s;
  return sizeof(double);
}

template <bool WARP, bool VEC, typename T, int HI>
void ce_launch_as(const asg_cuda_call *c, int64_t R, int64_t C, unsigned grid) {
  cudaStream_t st = c->ctx->stream;
  const T *x = (const T *)c->in[0];
  const void *lab = c->in[1];
  bool i32 = c->s->in[1].dtype == ASG_I32;
  double ls = c->s->attr.f[0];
  int64_t ign = c->s->attr.i[0];
  double *ws = (double *)c->ws;
  // kept statistics (cuda_backend.c): m [R], lg [R], then the count of rows taken
  double *keep = (double *)c->stats_out;
  const double *kept = (const double *)c->stats_in;
  if (c->s->op == ASG_OP_SOFTMAX_CE) {
    ce_rows_kernel<WARP, VEC, T, HI>
        <<<grid, kThreads, 0, st>>>(x, lab, i32, ws, keep, R, C, ls, ign, c->fault, c->step1);
    ce_total_kernel<T>
        <<<1, 1024, 0, st>>>(ws, lab, i32, (T *)c->out, keep ? keep + 2 * R : nullptr, R, C, ign);
  } else {
    const double *count = kept ? kept + 2 * R : ws;
    if (!kept) ce_count_kernel<<<1, 1024, 0, st>>>(lab, i32, ws, R, C, ign);
    const T *dl = (const T *)c->in[2];
    // the logits gradient straight into the products' 16-bit copy (cuda_backend.c)
    if constexpr (std::is_same<T, float>::value) {
      if (c->half_out && c->bf16) {
        ce_bwd_kernel<WARP, VEC, T, kHalfBf16, HI><<<grid, kThreads, 0, st>>>(
            x, lab, i32, dl, count, kept, c->half_out, R, C, ls, ign, c->fault, c->step1);
        return;
      }
      if (c->half_out) {
        ce_bwd_kernel<WARP, VEC, T, kHalfFp16, HI><<<grid, kThreads, 0, st>>>(
            x, lab, i32, dl, count, kept, c->half_out, R, C, ls, ign, c->fault, c->step1);
        return;
      }
    }
    ce_bwd_kernel<WARP, VEC, T, 0, HI><<<grid, kThreads, 0, st>>>(
        x, lab, i32, dl, count, kept, c->out, R, C, ls, ign, c->fault, c->step1);
  }
}

template <typename T> void ce_launch(const asg_cuda_call *c, int64_t R, int64_t C) {
  bool warp = C <= kWarpRowsMaxC;
  unsigned grid = row_grid(R, warp);
  // 16-byte rows: the float kernels read (and write) four elements at a time
  if constexpr (std::is_same<T, float>::value) {
    if (c->in_half) { // 16-bit logits (cuda_backend.c checked C % 4 and the alignment)
      if (c->bf16)
        warp ? ce_launch_as<true, true, T, kHalfBf16>(c, R, C, grid)
             : ce_launch_as<false, true, T, kHalfBf16>(c, R, C, grid);
      else
        warp ? ce_launch_as<true, true, T, kHalfFp16>(c, R, C, grid)
             : ce_launch_as<false, true, T, kHalfFp16>(c, R, C, grid);
      return;
    }
    const bool vec = C % 4 == 0 && (uintptr_t)c->in[0] % 16 == 0 &&
                     (c->s->op == ASG_OP_SOFTMAX_CE || (uintptr_t)c->out % 16 == 0);
    if (vec) {
      warp ? ce_launch_as<true, true, T, 0>(c, R, C, grid)
           : ce_launch_as<false, true, T, 0>(c, R, C, grid);
      return;
    }
  }
  warp ? ce_launch_as<true, false, T, 0>(c, R, C, grid)
       : ce_launch_as<false, false, T, 0>(c, R, C, grid);
}

template <typename T> __global__ void ce_nan_kernel(T *out) { *out = (T)NAN; }

asg_status ce_run(const asg_cuda_call *c) {
  int64_t R, C;
  ce_dims(c->s, &R, &C);
  asg_dtype dt = c->s->in[0].dtype, ldt = c->s->in[1].dtype;
  if ((dt != ASG_F32 && dt != ASG_F64) || (ldt != ASG_I32 && ldt != ASG_I64)) return dtype_error(c);
  bool fwd = c->s->op == ASG_OP_SOFTMAX_CE;
  if (R == 0 || C == 0) { // nothing counted: loss NaN (as an empty mean), no gradient
    if (!fwd) return ASG_OK;
    if (dt == ASG_F32)
      ce_nan_kernel<float><<<1, 1, 0, c->ctx->stream>>>((float *)c->out);
    else
      ce_nan_kernel<double><<<1, 1, 0, c->ctx->stream>>>((double *)c->out);
    return asg_cuda_check(c);
  }
  if (dt == ASG_F32)
    ce_launch<float>(c, R, C);
  else
    ce_launch<double>(c, R, C);
  return asg_cuda_check(c);
}

// ---- random sources: a port of the counter-based RNG of core/internal.h
// and core/init.c. The products and sums that the CPU rounds one by one
// (built with -ffp-contract=off) use explicit _rn intrinsics here, so nvcc
// does not fuse them into FMAs and the values match bit for bit, up to the
// last-ulp differences of log/cos in the normal draw. ----

__device__ __forceinline__ uint64_t d_mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ uint64_t d_rng_bits(uint64_t key, uint64_t counter) {
  return d_mix64(d_mix64(key) ^ (counter * 0xd1b54a32d192ed03ull));
}
__device__ __forceinline__ double d_rng_uniform(uint64_t key, uint64_t counter) {
  return (double)(d_rng_bits(key, counter) >> 11) * (1.0 / 9007199254740992.0);
}
__device__ __forceinline__ double d_rng_normal(uint64_t key, uint64_t counter) {
  double u1 = d_rng_uniform(key, 2 * counter), u2 = d_rng_uniform(key, 2 * counter + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return __dmul_rn(sqrt(__dmul_rn(-2.0, log(u1))), cos(__dmul_rn(6.283185307179586, u2)));
}
__device__ __forceinline__ uint64_t d_rng_key(uint64_t seed, uint64_t run) {
  return d_mix64(seed ^ d_mix64(run + 0x632be59bd9b4e019ull));
}

// Stepping a uniform that rounded up to hi back below it (integers: no-op).
__device__ __forceinline__ float step_down(float v, float lo) { return nextafterf(v, lo); }
__device__ __forceinline__ double step_down(double v, double lo) { return nextafter(v, lo); }
__device__ __forceinline__ int32_t step_down(int32_t v, int32_t) { return v; }
__device__ __forceinline__ int64_t step_down(int64_t v, int64_t) { return v; }

// out [n]: element i draws from counter i of key(seed, *run); the run count
// is read on the device so a captured graph draws fresh values each replay.
template <typename T>
__global__ void rand_kernel(T *y, int64_t n, asg_op op, double f0, double f1, uint64_t seed,
                            const uint64_t *run) {
  uint64_t key = d_rng_key(seed, *run);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (op == ASG_OP_RAND_UNIFORM) {
      double u = d_rng_uniform(key, (uint64_t)i);
      T v = (T)__dadd_rn(f0, __dmul_rn(__dsub_rn(f1, f0), u));
      if ((double)v >= f1 && f1 > f0) v = step_down(v, (T)f0);
      y[i] = v;
    } else if (op == ASG_OP_RAND_NORMAL) {
      y[i] = (T)__dadd_rn(f0, __dmul_rn(f1, d_rng_normal(key, (uint64_t)i)));
    } else {
      y[i] = d_rng_uniform(key, (uint64_t)i) < f0 ? (T)1 : (T)0;
    }
  }
}

template <typename T> void rand_launch(const asg_cuda_call *c, int64_t n) {
  rand_kernel<T><<<asg_cuda_blocks(n, kThreads), kThreads, 0, c->ctx->stream>>>(
      (T *)c->out, n, c->s->op, c->s->attr.f[0], c->s->attr.f[1], (uint64_t)c->s->attr.i[0],
      c->run);
}

asg_status rand_run(const asg_cuda_call *c) {
  int64_t n = asg_shape_numel(c->s->out.shape);
  switch (c->s->out.dtype) { // integers only come from bernoulli (checked at build time)
  case ASG_F32:
    if (n) rand_launch<float>(c, n);
    break;
  case ASG_F64:
    if (n) rand_launch<double>(c, n);
    break;
  case ASG_I32:
    if (n) rand_launch<int32_t>(c, n);
    break;
  case ASG_I64:
    if (n) rand_launch<int64_t>(c, n);
    break;
  default: return dtype_error(c);
  }
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_part_finish(const double *part, void *out, int64_t P, int64_t C, bool f32,
                                     cudaStream_t st) {
  ln_g_final(part, out, P, C, f32, st);
}

extern "C" void asg_cuda_register_nn(asg_cuda_kernel *t) {
  t[ASG_OP_LAYERNORM].run = layernorm_run;
  t[ASG_OP_LAYERNORM_BWD_X].run = layernorm_run;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].run = layernorm_run;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].ws = ln_bwd_g_ws;
  t[ASG_OP_LAYERNORM_BWD_X].ws = ln_bwd_x_ws;
  t[ASG_OP_RMSNORM].run = rmsnorm_run;
  t[ASG_OP_SOFTMAX_CE].run = ce_run;
  t[ASG_OP_SOFTMAX_CE].ws = ce_fwd_ws;
  t[ASG_OP_SOFTMAX_CE_BWD].run = ce_run;
  t[ASG_OP_SOFTMAX_CE_BWD].ws = ce_bwd_ws;
  t[ASG_OP_RAND_UNIFORM].run = rand_run;
  t[ASG_OP_RAND_NORMAL].run = rand_run;
  t[ASG_OP_RAND_BERNOULLI].run = rand_run;
}
