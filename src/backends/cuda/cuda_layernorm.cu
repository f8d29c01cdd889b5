// CUDA kernels of layernorm (+ its two backward ops: layernorm_bwd_x, alone
// or with a paired layernorm_bwd_gamma in one pass, and layernorm_bwd_gamma)
// and of rmsnorm, whose register kernel follows layernorm's. Reference
// semantics: src/backends/cpu/cpu_nn.c. Sums accumulate in double for f32
// and f64 as on the CPU, and every reduction has a fixed order (no atomics),
// so results are deterministic run to run. Row helpers: cuda_rows.cuh.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_nn.h"
#include "backends/cuda/cuda_pdl.cuh"
#include "backends/cuda/cuda_half.cuh"
#include "backends/cuda/cuda_rows.cuh"

#include <math.h>

#include <type_traits>

namespace {

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
  // gamma and beta: into L2 while the kernel before runs, then (f32) into
  // registers once with the first row, so a row's only dependent loads are
  // its own values (a decode step's single row is latency-bound)
  l2_prefetch(gm, sizeof(T) * (size_t)C, threadIdx.x, blockDim.x);
  l2_prefetch(bt, sizeof(T) * (size_t)C, threadIdx.x, blockDim.x);
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  RowIter<true> it;
  constexpr bool kKeepGB = sizeof(T) == 4; // f64: 3K doubles a lane would spill
  T gv[kKeepGB ? K : 1], bv[kKeepGB ? K : 1];
  if constexpr (kKeepGB)
#pragma unroll
    for (int k = 0; k < K; k++) {
      const int64_t j = it.lane + 32 * k;
      gv[k] = j < C ? gm[j] : (T)0;
      bv[k] = j < C ? bt[j] : (T)0;
    }
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
      T g, b;
      if constexpr (kKeepGB)
        g = gv[k], b = bv[k];
      else
        g = gm[j], b = bt[j];
      const T y = (v[k] - mt) * rt * g + b;
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
void ln_reg_launch(const asg_cuda_ctx *ctx, unsigned grid, int64_t C, const T *x, const T *gm,
                   const T *bt, void *y, double *keep, int64_t R, double eps, const T *xa,
                   const T *xb, T *xs) {
  auto kern = C <= 256   ? ln_fwd_reg_kernel<T, 8, HO>
              : C <= 512 ? ln_fwd_reg_kernel<T, 16, HO>
              : C <= 768 ? ln_fwd_reg_kernel<T, 24, HO>
                         : ln_fwd_reg_kernel<T, 32, HO>;
  pdl_launch(ctx, kern, grid, kThreads, 0, x, gm, bt, y, keep, R, C, eps, xa, xb, xs);
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
      ln_reg_launch<T, kHalfBf16>(c->ctx, grid, C, x, gm, bt, c->half_out, keep, R, eps, xa, xb,
                                  xs);
    else if (c->half_out && reg)
      ln_reg_launch<T, kHalfFp16>(c->ctx, grid, C, x, gm, bt, c->half_out, keep, R, eps, xa, xb,
                                  xs);
    else if (c->half_out && c->bf16)
      ln_fwd_kernel<WARP, T, kHalfBf16>
          <<<grid, kThreads, 0, st>>>(x, gm, bt, c->half_out, keep, R, C, eps, xa, xb, xs);
    else if (c->half_out)
      ln_fwd_kernel<WARP, T, kHalfFp16>
          <<<grid, kThreads, 0, st>>>(x, gm, bt, c->half_out, keep, R, C, eps, xa, xb, xs);
    if (c->half_out) return;
  }
  if (reg)
    ln_reg_launch<T, 0>(c->ctx, grid, C, x, gm, bt, c->out, keep, R, eps, xa, xb, xs);
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
    if (c->fused_out) { // and its dgamma (asg_cuda_ln_xg_ok took the rows)
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
  l2_prefetch(w, sizeof(T) * (size_t)C, threadIdx.x, blockDim.x); // while the kernel before runs
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
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
    pdl_launch(c->ctx, kern, grid, kThreads, 0, x, w, y, R, C, eps);
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

} // namespace

// f32/f64 rows of 1..kXgMaxC columns whose staged [2][8][C] values (and
// 1 KiB of the kernel's own) fit the shared memory a block may opt in to.
extern "C" bool asg_cuda_ln_xg_ok(const asg_step *s, size_t smem_max) {
  if (s->op != ASG_OP_LAYERNORM_BWD_X || (s->out.dtype != ASG_F32 && s->out.dtype != ASG_F64))
    return false;
  const asg_shape sh = s->in[1].shape;
  const int64_t C = sh.ndim ? sh.dims[sh.ndim - 1] : 0;
  const size_t smem = s->out.dtype == ASG_F32 ? ln_xg_smem<float>(C) : ln_xg_smem<double>(C);
  return C >= 1 && C <= kXgMaxC && asg_shape_numel(sh) > 0 && smem + 1024 <= smem_max;
}

extern "C" void asg_cuda_part_finish(const double *part, void *out, int64_t P, int64_t C, bool f32,
                                     cudaStream_t st) {
  ln_g_final(part, out, P, C, f32, st);
}

void asg_cuda_nn::register_layernorm(asg_cuda_kernel *t) {
  t[ASG_OP_LAYERNORM].run = layernorm_run;
  t[ASG_OP_LAYERNORM_BWD_X].run = layernorm_run;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].run = layernorm_run;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].ws = ln_bwd_g_ws;
  t[ASG_OP_LAYERNORM_BWD_X].ws = ln_bwd_x_ws;
  t[ASG_OP_RMSNORM].run = rmsnorm_run;
}
