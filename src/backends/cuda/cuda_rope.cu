// CUDA kernel of rope (contract: src/ops/op_nn.c; reference:
// src/backends/cpu/cpu_rope.c). One thread per pair (row r of x [R, D],
// k < h = D/2) writes
//   y[r, k]     = x[r, k]     * cos[k]     - x[r, k + h] * sin[k]
//   y[r, k + h] = x[r, k + h] * cos[k + h] + x[r, k]     * sin[k + h]
// with the products rounded on their own (__fmul_rn / __dmul_rn: no FMA
// contraction), so the bits are the CPU's. The tables' rows come from
// asg__rope_plan (runtime/layout.h), passed by value.
#include <stdint.h>

#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_pdl.cuh"
#include "runtime/layout.h"

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__global__ void rope_kernel(const T *__restrict__ x, const T *__restrict__ cs,
                            const T *__restrict__ sn, T *__restrict__ y, asg_rope_plan p,
                            int64_t n) {
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  const int64_t h = p.D / 2, lc = p.last[0], ls = p.last[1];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / h, k = i - r * h;
    int64_t q = r, oc = 0, os = 0;
    for (int d = p.nd - 1; d >= 0; d--) {
      const int64_t nq = q / p.dims[d], idx = q - nq * p.dims[d];
      q = nq;
      oc += idx * p.st[0][d];
      os += idx * p.st[1][d];
    }
    const int64_t xo = r * p.D + k;
    const T a = x[xo], b = x[xo + h];
    y[xo] = mul_rn(a, cs[oc + k * lc]) - mul_rn(b, sn[os + k * ls]);
    y[xo + h] = mul_rn(b, cs[oc + (k + h) * lc]) + mul_rn(a, sn[os + (k + h) * ls]);
  }
}

template <typename T> void launch(const asg_cuda_call *c, const asg_rope_plan &p, int64_t n) {
  pdl_launch(c->ctx, rope_kernel<T>, asg_cuda_blocks(n, kThreads), kThreads, 0, (const T *)c->in[0],
             (const T *)c->in[1], (const T *)c->in[2], (T *)c->out, p, n);
}

asg_status rope_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  asg_rope_plan p;
  asg__rope_plan(&p, s);
  const int64_t n = p.rows * (p.D / 2); // pairs
  if (n == 0) return ASG_OK;
  if (dt == ASG_F32)
    launch<float>(c, p, n);
  else
    launch<double>(c, p, n);
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_rope(asg_cuda_kernel *t) { t[ASG_OP_ROPE].run = rope_run; }
