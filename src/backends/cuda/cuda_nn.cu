// CUDA kernels of the nn family: the random sources, and the family's
// registration. The rest of the family is split by concern: layernorm (+ its
// two backward ops) and rmsnorm in cuda_layernorm.cu, softmax cross-entropy
// (+ its backward op) in cuda_xent.cu, their shared row helpers in
// cuda_rows.cuh. Reference semantics: src/backends/cpu/cpu_random.c.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_nn.h"
#include "backends/cuda/cuda_rows.cuh"

#include <math.h>

namespace {

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

extern "C" void asg_cuda_register_nn(asg_cuda_kernel *t) {
  asg_cuda_nn::register_layernorm(t); // layernorm (+bwd), rmsnorm
  asg_cuda_nn::register_xent(t);      // softmax CE (+bwd)
  t[ASG_OP_RAND_UNIFORM].run = rand_run;
  t[ASG_OP_RAND_NORMAL].run = rand_run;
  t[ASG_OP_RAND_BERNOULLI].run = rand_run;
}
