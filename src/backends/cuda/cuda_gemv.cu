// Skinny products: y [M, N] = x [M, K] W [N, K]^T (+ bias [N], act, + res) for a
// few rows of x (M <= 8: the linear layers of a decode step), f32. cuBLAS
// runs these as GEMMs with tiles of 8+ rows at a quarter of the memory
// bandwidth or less (H100: [1, 768] x [768, 3072] with GELU took 11 us for
// the 9.4 MB of W); here every element of W is read once with 16-byte loads
// and dotted with every row of x. Memory-bound: the time is W's bytes.
//
//   block = R rows of W (4, 2 or 1: as many as keep the SMs' shares of W
//   within ~10% of each other), its 4 warps splitting K (thread t takes the
//   float4 columns t, t + 128, ...); per thread acc [M, R], summed over the
//   warp's lanes, then over the 4 warps in order (deterministic).
//   Launched dependent (cuda_pdl.cuh): the block's rows of W are prefetched
//   into L2 while the kernel before it still runs, and with them the
//   block's share of the next products' weights (asg_cuda_call.pf,
//   cuda_plan_prefetch.c), which stream in while the kernels between run.
#include <stdlib.h>

#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_pdl.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxRows = 8;         // rows of x (M) this path takes
constexpr int kNormSmem = 48 << 10; // bytes of normalized rows a block may keep

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The epilogue of matmul_bias_act (as cuda_matmul.cu's epi_kernel).
__device__ __forceinline__ float epilogue(float v, int act) {
  if (act == ASG_CUDA_EPI_RELU) return v > 0.f ? v : 0.f;
  if (act == ASG_CUDA_EPI_GELU_TANH) {
    const float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
    return 0.5f * v * (1.f + tanhf(u));
  }
  return v;
}

// The norm of each row of x [M, K] (norm_matmul), into xs [M, K] (shared):
// layernorm (NORM 1) (x - mean) / sqrt(var + eps) * g + b, or rmsnorm
// (NORM 2) x / sqrt(mean(x^2) + eps) * g, the row's sums over K taken by one
// warp in a fixed order.
template <int M, int NORM>
__device__ void norm_rows(const float *__restrict__ x, const float *__restrict__ g,
                          const float *__restrict__ b, float eps, int K, float *xs) {
  __shared__ float mean[M], rstd[M];
  const int t = threadIdx.x, warp = t / 32, lane = t % 32, K4 = K / 4;
  for (int e = t; e < M * K4; e += kThreads)
    reinterpret_cast<float4 *>(xs)[e] = __ldg(reinterpret_cast<const float4 *>(x) + e);
  __syncthreads();
  for (int m = warp; m < M; m += kWarps) {
    const float *r = xs + (int64_t)m * K;
    float s = 0.f;
    if (NORM == 1) {
      for (int k = lane; k < K; k += 32)
        s += r[k];
      s = warp_sum(s) / (float)K;
    }
    const float mu = NORM == 1 ? s : 0.f;
    float q = 0.f;
    for (int k = lane; k < K; k += 32)
      q += (r[k] - mu) * (r[k] - mu);
    q = warp_sum(q) / (float)K;
    if (lane == 0) mean[m] = mu, rstd[m] = rsqrtf(q + eps);
  }
  __syncthreads();
#pragma unroll
  for (int m = 0; m < M; m++)
    for (int k = t; k < K; k += kThreads) {
      const float v = (xs[m * K + k] - mean[m]) * rstd[m] * g[k];
      xs[m * K + k] = NORM == 1 ? v + b[k] : v;
    }
  __syncthreads();
}

// x [M, K], w [N, K], bias [N] or null, res [M, N] or null -> y [M, N]
// = act(x w^T + bias) + res. VEC: K % 4 == 0 and x, w 16-byte aligned.
// NORM (1 layernorm, 2 rmsnorm; with VEC): x is normalized first, into
// dynamic shared memory [M, K] (norm_rows), which the products then read.
template <int M, int R, bool VEC, int NORM>
__global__ void __launch_bounds__(kThreads)
    gemv_kernel(const float *__restrict__ x, const float *__restrict__ w,
                const float *__restrict__ bias, const float *__restrict__ res,
                float *__restrict__ y, int N, int K, int act, asg_cuda_pf pf,
                const float *__restrict__ ng, const float *__restrict__ nb, float eps) {
  __shared__ float red[kWarps][M * R];
  extern __shared__ float4 xs4[]; // [M, K] normalized rows (NORM)
  const int n0 = blockIdx.x * R, t = threadIdx.x, warp = t / 32, lane = t % 32;
  l2_prefetch(w + (int64_t)n0 * K, sizeof(float) * (size_t)min(R, N - n0) * K, t, kThreads);
  l2_prefetch_share(pf, blockIdx.x, gridDim.x, t, kThreads);
  pdl_wait();
  pdl_trigger();
  if constexpr (NORM != 0) {
    norm_rows<M, NORM>(x, ng, nb, eps, K, reinterpret_cast<float *>(xs4));
    x = reinterpret_cast<const float *>(xs4);
  }
  const float *wr[R];
#pragma unroll
  for (int r = 0; r < R; r++) // rows past N re-read row N - 1; their sums are dropped
    wr[r] = w + (int64_t)min(n0 + r, N - 1) * K;
  float acc[M][R];
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++)
      acc[m][r] = 0.f;
  if (VEC) {
    const int K4 = K / 4;
    // 4 steps' loads of W in flight a thread (K = 3072: 6 steps a thread)
#pragma unroll 4
    for (int k4 = t; k4 < K4; k4 += kThreads) {
      float4 wv[R];
#pragma unroll
      for (int r = 0; r < R; r++)
        wv[r] = __ldcs(reinterpret_cast<const float4 *>(wr[r]) + k4); // streamed once
#pragma unroll
      for (int m = 0; m < M; m++) {
        const float4 *xr = reinterpret_cast<const float4 *>(x + (int64_t)m * K) + k4;
        const float4 xv = NORM ? *xr : __ldg(xr);
#pragma unroll
        for (int r = 0; r < R; r++)
          acc[m][r] += wv[r].x * xv.x + wv[r].y * xv.y + wv[r].z * xv.z + wv[r].w * xv.w;
      }
    }
  } else {
    for (int k = t; k < K; k += kThreads) {
      float wv[R];
#pragma unroll
      for (int r = 0; r < R; r++)
        wv[r] = wr[r][k];
#pragma unroll
      for (int m = 0; m < M; m++) {
        const float xv = x[(int64_t)m * K + k];
#pragma unroll
        for (int r = 0; r < R; r++)
          acc[m][r] += wv[r] * xv;
      }
    }
  }
#pragma unroll
  for (int m = 0; m < M; m++)
#pragma unroll
    for (int r = 0; r < R; r++) {
      const float s = warp_sum(acc[m][r]);
      if (lane == 0) red[warp][m * R + r] = s;
    }
  __syncthreads();
  if (t < M * R) {
    const int m = t / R, n = n0 + t % R;
    if (n < N) {
      float v = red[0][t];
#pragma unroll
      for (int q = 1; q < kWarps; q++)
        v += red[q][t];
      if (bias) v = epilogue(v + bias[n], act);
      if (res) v += res[(int64_t)m * N + n];
      y[(int64_t)m * N + n] = v;
    }
  }
}

// The arguments every launch passes on.
struct Args {
  const float *x, *w, *bias, *res;
  float *y;
  int N, K, act;
  bool vec;
  asg_cuda_pf pf;
  int norm; // 0, or norm_matmul's kind (with vec)
  const float *ng, *nb;
  float eps;
};

template <int M, int R> void launch_r(const asg_cuda_ctx *ctx, const Args &a) {
  const unsigned blocks = (unsigned)((a.N + R - 1) / R);
  const size_t smem = a.norm ? sizeof(float) * M * (size_t)a.K : 0;
  auto k = !a.vec        ? gemv_kernel<M, R, false, 0>
           : a.norm == 1 ? gemv_kernel<M, R, true, 1>
           : a.norm == 2 ? gemv_kernel<M, R, true, 2>
                         : gemv_kernel<M, R, true, 0>;
  pdl_launch(ctx, k, blocks, kThreads, smem, a.x, a.w, a.bias, a.res, a.y, a.N, a.K, a.act, a.pf,
             a.ng, a.nb, a.eps);
}

// Rows of W a block takes: the most (fewer blocks, less reduction) whose
// blocks spread over the SMs with the busiest one at most ~10% above the
// mean (H100, N = 768: 4 rows make 192 blocks for 132 SMs, half of which
// read twice what the others do).
int rows_per_block(int N, int sms) {
  int best = 1;
  double best_skew = 1e30;
  for (int r = 4; r >= 1; r /= 2) {
    const int64_t b = (N + r - 1) / r;
    const double skew = (double)((b + sms - 1) / sms) * sms / (double)b;
    if (skew <= 1.1) return r;
    if (skew < best_skew) best = r, best_skew = skew;
  }
  return best;
}

template <int M> void launch(const asg_cuda_ctx *ctx, const Args &a) {
  switch (rows_per_block(a.N, ctx->sm_count > 0 ? ctx->sm_count : 1)) {
  case 4: launch_r<M, 4>(ctx, a); break;
  case 2: launch_r<M, 2>(ctx, a); break;
  default: launch_r<M, 1>(ctx, a); break;
  }
}

// The rows of x ([..., M, K] as one [rows, K] matrix), or 0 when the step is
// not a skinny x W^T product of f32 with one matrix W [N, K].
int64_t gemv_rows(const asg_cuda_call *c, int64_t *N, int64_t *K) {
  static int off = -1;
  if (off < 0) {
    const char *e = getenv("ASG_CUDA_GEMV");
    off = e && e[0] == '0';
  }
  const asg_step *s = c->s;
  if (off || (s->op != ASG_OP_MATMUL && s->op != ASG_OP_MATMUL_BIAS_ACT)) return 0;
  if (s->out.dtype != ASG_F32 || s->in[0].dtype != ASG_F32 || s->in[1].dtype != ASG_F32) return 0;
  if (s->attr.i[0] != 0 || s->attr.i[1] == 0) return 0; // x not transposed, W transposed
  if (c->bf16 || c->fp16 || c->bgrad_out || c->out_half || c->colsum_out) return 0;
  const asg_shape as = s->in[0].shape, bs = s->in[1].shape, os = s->out.shape;
  if (as.ndim < 2 || bs.ndim < 2 || os.ndim < 2) return 0;
  *N = bs.dims[bs.ndim - 2];
  *K = bs.dims[bs.ndim - 1];
  if (asg_shape_numel(bs) != *N * *K || as.dims[as.ndim - 1] != *K) return 0; // one W
  if (*N < 1 || *K < 1 || *N > INT32_MAX || *K > INT32_MAX) return 0;
  const int64_t rows = asg_shape_numel(os) / *N;
  if (rows < 1 || rows > kMaxRows || asg_shape_numel(as) != rows * *K) return 0; // x not broadcast
  // norm_matmul: the rows normalized in shared memory, 16-byte loads
  if (c->norm_kind &&
      (*K % 4 || rows * *K > kNormSmem / (int64_t)sizeof(float) || (uintptr_t)c->in[0] % 16 ||
       (uintptr_t)c->in[1] % 16 || (c->norm_kind != 1 && c->norm_kind != 2)))
    return 0;
  return rows;
}

} // namespace

extern "C" bool asg_cuda_gemv_ok(const asg_cuda_call *c) {
  int64_t N, K;
  return gemv_rows(c, &N, &K) > 0;
}

extern "C" asg_status asg_cuda_gemv(const asg_cuda_call *c) {
  int64_t N, K;
  const int64_t rows = gemv_rows(c, &N, &K);
  if (rows <= 0) return asg__error(ASG_ERR_BACKEND, "cuda: %s: not a skinny product", c->s->label);
  Args a;
  a.x = (const float *)c->in[0], a.w = (const float *)c->in[1];
  a.bias = (const float *)c->epi_bias, a.res = (const float *)c->epi_res;
  a.y = (float *)(c->epi_out ? c->epi_out : c->out);
  a.N = (int)N, a.K = (int)K, a.act = c->epi_act;
  a.vec = K % 4 == 0 && (uintptr_t)a.x % 16 == 0 && (uintptr_t)a.w % 16 == 0;
  a.pf = c->pf;
  a.norm = c->norm_kind;
  a.ng = (const float *)c->norm_gamma, a.nb = (const float *)c->norm_beta, a.eps = c->norm_eps;
  const asg_cuda_ctx *ctx = c->ctx;
  switch (rows) {
  case 1: launch<1>(ctx, a); break;
  case 2: launch<2>(ctx, a); break;
  case 3: launch<3>(ctx, a); break;
  case 4: launch<4>(ctx, a); break;
  case 5: launch<5>(ctx, a); break;
  case 6: launch<6>(ctx, a); break;
  case 7: launch<7>(ctx, a); break;
  default: launch<8>(ctx, a); break;
  }
  return asg_cuda_check(c);
}
