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
//   into L2 while the kernel before it still runs.
#include <stdlib.h>

#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_pdl.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxRows = 8; // rows of x (M) this path takes

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

// x [M, K], w [N, K], bias [N] or null, res [M, N] or null -> y [M, N]
// = act(x w^T + bias) + res. VEC: K % 4 == 0 and x, w 16-byte aligned.
template <int M, int R, bool VEC>
__global__ void __launch_bounds__(kThreads)
    gemv_kernel(const float *__restrict__ x, const float *__restrict__ w,
                const float *__restrict__ bias, const float *__restrict__ res,
                float *__restrict__ y, int N, int K, int act) {
  __shared__ float red[kWarps][M * R];
  const int n0 = blockIdx.x * R, t = threadIdx.x, warp = t / 32, lane = t % 32;
  l2_prefetch(w + (int64_t)n0 * K, sizeof(float) * (size_t)min(R, N - n0) * K, t, kThreads);
  pdl_wait();
  pdl_trigger();
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
        const float4 xv = __ldg(reinterpret_cast<const float4 *>(x + (int64_t)m * K) + k4);
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

template <int M, int R>
void launch_r(const asg_cuda_ctx *ctx, const float *x, const float *w, const float *bias,
              const float *res, float *y, int N, int K, int act, bool vec) {
  const unsigned blocks = (unsigned)((N + R - 1) / R);
  pdl_launch(ctx, vec ? gemv_kernel<M, R, true> : gemv_kernel<M, R, false>, blocks, kThreads, 0, x,
             w, bias, res, y, N, K, act);
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

template <int M>
void launch(const asg_cuda_ctx *ctx, const float *x, const float *w, const float *bias,
            const float *res, float *y, int N, int K, int act, bool vec) {
  switch (rows_per_block(N, ctx->sm_count > 0 ? ctx->sm_count : 1)) {
  case 4: launch_r<M, 4>(ctx, x, w, bias, res, y, N, K, act, vec); break;
  case 2: launch_r<M, 2>(ctx, x, w, bias, res, y, N, K, act, vec); break;
  default: launch_r<M, 1>(ctx, x, w, bias, res, y, N, K, act, vec); break;
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
  const float *x = (const float *)c->in[0], *w = (const float *)c->in[1];
  const float *bias = (const float *)c->epi_bias, *res = (const float *)c->epi_res;
  float *y = (float *)(c->epi_out ? c->epi_out : c->out);
  const int act = c->epi_act;
  const bool vec = K % 4 == 0 && (uintptr_t)x % 16 == 0 && (uintptr_t)w % 16 == 0;
  const asg_cuda_ctx *ctx = c->ctx;
  const int n = (int)N, k = (int)K;
  switch (rows) {
  case 1: launch<1>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  case 2: launch<2>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  case 3: launch<3>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  case 4: launch<4>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  case 5: launch<5>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  case 6: launch<6>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  case 7: launch<7>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  default: launch<8>(ctx, x, w, bias, res, y, n, k, act, vec); break;
  }
  return asg_cuda_check(c);
}
