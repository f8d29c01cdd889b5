// CUDA kernel of sample_filter: the CPU reference's steps
// (src/backends/cpu/cpu_sample.c) with one block per row; each pass over the
// row (max, a count or a sum per key bit) is a block reduction in a fixed
// order, so results are deterministic. top_k and top_p are read on the
// device (a captured graph serves any settings). The weights of the top-p
// passes are kept in the output row, as on the CPU.
#include <math.h>
#include <stdint.h>

#include "backends/cuda/cuda.h"

namespace {

constexpr int kThreads = 1024;

// Order keys (cpu_sample.c): unsigned integers ordered as the values, -0 as +0.
__device__ __forceinline__ uint32_t order_key(float x) {
  const uint32_t u = x == 0.0f ? 0u : __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ unsigned long long order_key(double x) {
  const unsigned long long u = x == 0.0 ? 0ull : (unsigned long long)__double_as_longlong(x);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// Sum of v over the block (a fixed tree: deterministic); every thread gets it.
template <typename A> __device__ A block_sum(A v, A *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  const A r = sh[0];
  __syncthreads();
  return r;
}

template <typename T> __device__ T block_max(T v, T *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s && sh[threadIdx.x + s] > sh[threadIdx.x])
      sh[threadIdx.x] = sh[threadIdx.x + s];
    __syncthreads();
  }
  const T r = sh[0];
  __syncthreads();
  return r;
}

// x, y [rows, V]; K: the key type of T (BITS bits). kp: top_k (i64 when
// k64, else i32); pp: top_p (f32 when p32, else T).
template <typename T, typename K, int BITS>
__global__ void __launch_bounds__(kThreads)
    sample_filter_kernel(T *__restrict__ y, const T *__restrict__ x, const void *kp, bool k64,
                         const void *pp, bool p32, int64_t rows, int64_t V) {
  __shared__ T shm[kThreads];
  __shared__ long long shc[kThreads];
  __shared__ double shd[kThreads];
  const int64_t k = k64 ? *(const int64_t *)kp : (int64_t) * (const int32_t *)kp;
  const double p = p32 ? (double)*(const float *)pp : (double)*(const T *)pp;
  const T inf = (T)INFINITY;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) { // uniform per block
    const T *xr = x + r * V;
    T *yr = y + r * V;
    // 1. max; a NaN makes the row all NaN
    T m = -inf;
    long long nan = 0;
    for (int64_t i = threadIdx.x; i < V; i += kThreads) {
      const T v = xr[i];
      if (isnan(v))
        nan = 1;
      else if (v > m)
        m = v;
    }
    m = block_max(m, shm);
    if (block_sum(nan, shc)) {
      for (int64_t i = threadIdx.x; i < V; i += kThreads)
        yr[i] = (T)NAN;
      continue;
    }
    // 2. top-k: the largest key K with count(key >= K) >= k
    K kk = 0, kpk = 0;
    if (k > 0 && k < V)
      for (int b = BITS - 1; b >= 0; b--) {
        const K cand = kk | ((K)1 << b);
        long long n = 0;
        for (int64_t i = threadIdx.x; i < V; i += kThreads)
          n += order_key(xr[i]) >= cand;
        if (block_sum(n, shc) >= k) kk = cand;
      }
    // 3. top-p: weights in yr, then the largest K with sum(w : key >= K) >= p Z
    if (!(p > 0)) {
      kpk = order_key(m);
    } else if (p < 1) {
      double z = 0;
      for (int64_t i = threadIdx.x; i < V; i += kThreads) {
        const T v = xr[i];
        const T w = order_key(v) < kk ? (T)0 : v == m ? (T)1 : (T)exp((double)(v - m));
        yr[i] = w;
        z += (double)w;
      }
      const double goal = p * block_sum(z, shd); // the block's own writes of yr: synced
      for (int b = BITS - 1; b >= 0; b--) {
        const K cand = kpk | ((K)1 << b);
        double sum = 0;
        for (int64_t i = threadIdx.x; i < V; i += kThreads)
          if (order_key(xr[i]) >= cand) sum += (double)yr[i];
        if (block_sum(sum, shd) >= goal) kpk = cand;
      }
    }
    // 4. keep key >= both thresholds (each thread rewrites only its own yr[i])
    const K thr = kk > kpk ? kk : kpk;
    for (int64_t i = threadIdx.x; i < V; i += kThreads) {
      const T v = xr[i];
      yr[i] = order_key(v) >= thr ? v : -inf;
    }
    __syncthreads(); // the next row's reductions reuse shared memory
  }
}

asg_status sample_filter_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype, kt = s->in[1].dtype, pt = s->in[2].dtype;
  if ((dt != ASG_F32 && dt != ASG_F64) || (kt != ASG_I32 && kt != ASG_I64) ||
      (pt != ASG_F32 && pt != dt))
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtypes %s, %s, %s not supported", s->label,
                      asg_dtype_name(dt), asg_dtype_name(kt), asg_dtype_name(pt));
  const int64_t V = s->out.shape.dims[s->out.shape.ndim - 1];
  const int64_t rows = V ? asg_shape_numel(s->out.shape) / V : 0;
  if (rows == 0) return ASG_OK;
  const unsigned grid = (unsigned)(rows < 65535 ? rows : 65535);
  cudaStream_t st = c->ctx->stream;
  if (dt == ASG_F32)
    sample_filter_kernel<float, uint32_t, 32>
        <<<grid, kThreads, 0, st>>>((float *)c->out, (const float *)c->in[0], c->in[1],
                                    kt == ASG_I64, c->in[2], pt == ASG_F32, rows, V);
  else
    sample_filter_kernel<double, unsigned long long, 64>
        <<<grid, kThreads, 0, st>>>((double *)c->out, (const double *)c->in[0], c->in[1],
                                    kt == ASG_I64, c->in[2], pt == ASG_F32, rows, V);
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_sample(asg_cuda_kernel *t) {
  t[ASG_OP_SAMPLE_FILTER].run = sample_filter_run;
}
