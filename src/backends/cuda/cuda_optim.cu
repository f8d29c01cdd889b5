#include "backends/cuda/cuda.h"
// CUDA kernels of the fused optimizer updates (adam_moment, adam_moment2,
// adam_param; formulas and order of operations in src/ops/op_optim.c).
// Every operation is an explicitly rounded intrinsic (no FMA contraction),
// so the results are bit-identical to the CPU reference. Grid-stride loops
// over 16-byte vectors when every operand is aligned, plus a scalar tail.
#include <stdint.h>

namespace {

constexpr int kThreads = 256;

// ---- correctly rounded arithmetic, one rounding per operation ----
__device__ __forceinline__ float r_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double r_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float r_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double r_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float r_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double r_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float r_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double r_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float r_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double r_sqrt(double a) { return __dsqrt_rn(a); }

template <class T, int K> struct alignas(sizeof(T) * K) Vec { T v[K]; };

// m * beta + g * (1 - beta); SECOND: v * beta + (g * g) * (1 - beta)
template <class T, bool SECOND> struct MomentF {
  T beta, one_m;
  __device__ __forceinline__ T operator()(T m, T g) const {
    const T x = SECOND ? r_mul(g, g) : g;
    return r_add(r_mul(m, beta), r_mul(x, one_m));
  }
};

template <class T, class F>
__global__ void __launch_bounds__(kThreads)
    moment_kernel(F f, T *__restrict__ o, const T *m, const T *g, int64_t n, bool vec) {
  constexpr int K = 16 / sizeof(T);
  using V = Vec<T, K>;
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t nv = vec ? n / K : 0;
  for (int64_t i = tid; i < nv; i += stride) {
    const V a = reinterpret_cast<const V *>(m)[i], b = reinterpret_cast<const V *>(g)[i];
    V r;
#pragma unroll
    for (int j = 0; j < K; j++)
      r.v[j] = f(a.v[j], b.v[j]);
    reinterpret_cast<V *>(o)[i] = r;
  }
  for (int64_t i = nv * K + tid; i < n; i += stride)
    o[i] = f(m[i], g[i]);
}

// The new parameter; the per-step scalars are read on the device (a
// captured CUDA graph stays valid when lr changes) in their dtype S and
// rounded to T after the scalar arithmetic, as the former scalar ops did.
template <class T, class S> struct ParamF {
  T step, sbc2, eps, dec;
  bool decay;
  __device__ __forceinline__ void init(const S *lr, const S *bc1, const S *bc2, double eps_,
                                       double wd) {
    const S l = *lr;
    step = (T)r_div(l, *bc1);
    sbc2 = (T)r_sqrt(*bc2);
    dec = (T)r_sub(S(1), r_mul(l, (S)wd));
    eps = (T)eps_;
    decay = wd != 0;
  }
  __device__ __forceinline__ T operator()(T p, T m, T v) const {
    const T pd = decay ? r_mul(p, dec) : p;
    const T den = r_add(r_div(r_sqrt(v), sbc2), eps);
    return r_sub(pd, r_mul(step, r_div(m, den)));
  }
};

template <class T, class S>
__global__ void __launch_bounds__(kThreads)
    param_kernel(T *__restrict__ o, const T *p, const T *m, const T *v, const S *lr, const S *bc1,
                 const S *bc2, double eps, double wd, int64_t n, bool vec) {
  constexpr int K = 16 / sizeof(T);
  using V = Vec<T, K>;
  ParamF<T, S> f;
  f.init(lr, bc1, bc2, eps, wd);
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t nv = vec ? n / K : 0;
  for (int64_t i = tid; i < nv; i += stride) {
    const V a = reinterpret_cast<const V *>(p)[i], b = reinterpret_cast<const V *>(m)[i],
            c = reinterpret_cast<const V *>(v)[i];
    V r;
#pragma unroll
    for (int j = 0; j < K; j++)
      r.v[j] = f(a.v[j], b.v[j], c.v[j]);
    reinterpret_cast<V *>(o)[i] = r;
  }
  for (int64_t i = nv * K + tid; i < n; i += stride)
    o[i] = f(p[i], m[i], v[i]);
}

bool aligned16(const void *p) { return ((uintptr_t)p % 16) == 0; }

asg_status dtype_error(const asg_cuda_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

template <class T> asg_status moment_t(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const int64_t n = asg_shape_numel(s->out.shape);
  if (n <= 0) return ASG_OK;
  constexpr int K = 16 / sizeof(T);
  T *o = static_cast<T *>(c->out);
  const T *m = static_cast<const T *>(c->in[0]), *g = static_cast<const T *>(c->in[1]);
  const bool vec = aligned16(o) && aligned16(m) && aligned16(g);
  const unsigned blocks = asg_cuda_blocks(vec && n / K > 0 ? n / K : n, kThreads);
  const T beta = (T)s->attr.f[0], one_m = (T)s->attr.f[1];
  if (s->op == ASG_OP_ADAM_MOMENT2)
    moment_kernel<T>
        <<<blocks, kThreads, 0, c->ctx->stream>>>(MomentF<T, true>{beta, one_m}, o, m, g, n, vec);
  else
    moment_kernel<T>
        <<<blocks, kThreads, 0, c->ctx->stream>>>(MomentF<T, false>{beta, one_m}, o, m, g, n, vec);
  return asg_cuda_check(c);
}

asg_status moment_run(const asg_cuda_call *c) {
  for (int k = 0; k < 2; k++)
    if (c->s->in[k].dtype != c->s->out.dtype) return dtype_error(c, c->s->in[k].dtype);
  switch (c->s->out.dtype) {
  case ASG_F32: return moment_t<float>(c);
  case ASG_F64: return moment_t<double>(c);
  default: return dtype_error(c, c->s->out.dtype);
  }
}

template <class T, class S> asg_status param_t(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const int64_t n = asg_shape_numel(s->out.shape);
  if (n <= 0) return ASG_OK;
  constexpr int K = 16 / sizeof(T);
  T *o = static_cast<T *>(c->out);
  const T *p = static_cast<const T *>(c->in[0]), *m = static_cast<const T *>(c->in[1]),
          *v = static_cast<const T *>(c->in[2]);
  const bool vec = aligned16(o) && aligned16(p) && aligned16(m) && aligned16(v);
  const unsigned blocks = asg_cuda_blocks(vec && n / K > 0 ? n / K : n, kThreads);
  param_kernel<T, S><<<blocks, kThreads, 0, c->ctx->stream>>>(
      o, p, m, v, static_cast<const S *>(c->in[3]), static_cast<const S *>(c->in[4]),
      static_cast<const S *>(c->in[5]), s->attr.f[0], s->attr.f[1], n, vec);
  return asg_cuda_check(c);
}

template <class T> asg_status param_s(const asg_cuda_call *c) {
  for (int k = 4; k < 6; k++)
    if (c->s->in[k].dtype != c->s->in[3].dtype) return dtype_error(c, c->s->in[k].dtype);
  switch (c->s->in[3].dtype) {
  case ASG_F32: return param_t<T, float>(c);
  case ASG_F64: return param_t<T, double>(c);
  default: return dtype_error(c, c->s->in[3].dtype);
  }
}

asg_status param_run(const asg_cuda_call *c) {
  for (int k = 0; k < 3; k++)
    if (c->s->in[k].dtype != c->s->out.dtype) return dtype_error(c, c->s->in[k].dtype);
  switch (c->s->out.dtype) {
  case ASG_F32: return param_s<float>(c);
  case ASG_F64: return param_s<double>(c);
  default: return dtype_error(c, c->s->out.dtype);
  }
}

} // namespace

extern "C" void asg_cuda_register_optim(asg_cuda_kernel *t) {
  t[ASG_OP_ADAM_MOMENT].run = moment_run;
  t[ASG_OP_ADAM_MOMENT2].run = moment_run;
  t[ASG_OP_ADAM_PARAM].run = param_run;
}
