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

// ---- multi-tensor Adam: the three updates of many parameters in one launch ----
// Work units (vectors or tail elements) per block: 8 per thread, loaded
// kAdamUnroll at a time. A block's start is a chain of dependent reads (the
// table search, the tensor's entry, lr and the bias corrections): with one
// unit per thread it left the kernel at half the memory bandwidth.
// Small models get smaller blocks: the MLP's 0.67 M parameters in chunks of
// kAdamChunk made 86 blocks on 132 SMs, one block an SM paying the start's
// latency chain (18 us, 4x its bytes at the memory's rate); chunks halve,
// down to one unit per thread, until the launch has kAdamMinBlocks (about
// two an SM: MLP step 0.099 -> 0.091 ms; five an SM measured the same).
constexpr int kAdamUnroll = 4;
constexpr int kAdamChunk = kThreads * 2 * kAdamUnroll;
constexpr int64_t kAdamMinBlocks = 256;

// Block b updates units [(b - block0) * chunk, ...) of the last tensor
// whose block0 <= b. Each thread loads m, g, v, p, computes m', v' (stored)
// and p' from the same registers: the values the separate kernels would
// read back, so the results are bit-identical. In-place tensors (m_out == m,
// ...) are read before they are written by the same thread, element by
// element, as in the separate kernels (no __restrict__ here for that reason).
template <class T, class S>
__global__ void __launch_bounds__(kThreads)
    adam_multi_kernel(const asg_cuda_adam_tensor *tab, int n_tab) {
  const int64_t b = blockIdx.x;
  int lo = 0, hi = n_tab - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tab[mid].block0 <= b)
      lo = mid;
    else
      hi = mid - 1;
  }
  const asg_cuda_adam_tensor &e = tab[lo];
  const int64_t u0 = (b - e.block0) * e.chunk;
  const int64_t u1 = e.units < u0 + e.chunk ? e.units : u0 + e.chunk;
  const MomentF<T, false> f1{(T)e.beta1, (T)e.one_m1};
  const MomentF<T, true> f2{(T)e.beta2, (T)e.one_m2};
  ParamF<T, S> fp;
  fp.init(static_cast<const S *>(e.lr), static_cast<const S *>(e.bc1),
          static_cast<const S *>(e.bc2), e.eps, e.wd);
  const T *m = static_cast<const T *>(e.m), *v = static_cast<const T *>(e.v),
          *p = static_cast<const T *>(e.p), *g = static_cast<const T *>(e.g);
  T *mo = static_cast<T *>(e.m_out), *vo = static_cast<T *>(e.v_out),
    *po = static_cast<T *>(e.p_out);
  constexpr int K = 16 / sizeof(T);
  using V = Vec<T, K>;
  const int64_t nv = e.vec ? e.n / K : 0;
  int64_t u = u0 + threadIdx.x;
  // whole vectors, kAdamUnroll at a time (a thread's units are distinct
  // elements, so reading them all before writing keeps in-place updates exact)
  for (; u + (kAdamUnroll - 1) * (int64_t)blockDim.x < (nv < u1 ? nv : u1);
       u += kAdamUnroll * (int64_t)blockDim.x) {
    V a[kAdamUnroll], gg[kAdamUnroll], c[kAdamUnroll], d[kAdamUnroll];
#pragma unroll
    for (int k = 0; k < kAdamUnroll; k++) {
      const int64_t w = u + k * (int64_t)blockDim.x;
      a[k] = reinterpret_cast<const V *>(m)[w];
      gg[k] = reinterpret_cast<const V *>(g)[w];
      c[k] = reinterpret_cast<const V *>(v)[w];
      d[k] = reinterpret_cast<const V *>(p)[w];
    }
#pragma unroll
    for (int k = 0; k < kAdamUnroll; k++) {
      const int64_t w = u + k * (int64_t)blockDim.x;
      V rm, rv, rp;
#pragma unroll
      for (int j = 0; j < K; j++) {
        rm.v[j] = f1(a[k].v[j], gg[k].v[j]);
        rv.v[j] = f2(c[k].v[j], gg[k].v[j]);
        rp.v[j] = fp(d[k].v[j], rm.v[j], rv.v[j]);
      }
      reinterpret_cast<V *>(mo)[w] = rm;
      reinterpret_cast<V *>(vo)[w] = rv;
      reinterpret_cast<V *>(po)[w] = rp;
    }
  }
  for (; u < u1; u += blockDim.x) {
    if (u < nv) {
      const V a = reinterpret_cast<const V *>(m)[u], gg = reinterpret_cast<const V *>(g)[u],
              c = reinterpret_cast<const V *>(v)[u], d = reinterpret_cast<const V *>(p)[u];
      V rm, rv, rp;
#pragma unroll
      for (int j = 0; j < K; j++) {
        rm.v[j] = f1(a.v[j], gg.v[j]);
        rv.v[j] = f2(c.v[j], gg.v[j]);
        rp.v[j] = fp(d.v[j], rm.v[j], rv.v[j]);
      }
      reinterpret_cast<V *>(mo)[u] = rm;
      reinterpret_cast<V *>(vo)[u] = rv;
      reinterpret_cast<V *>(po)[u] = rp;
    } else {
      const int64_t i = nv * K + (u - nv);
      const T gi = g[i], mi = m[i], vi = v[i], pi = p[i];
      const T nm = f1(mi, gi), nvv = f2(vi, gi);
      mo[i] = nm;
      vo[i] = nvv;
      po[i] = fp(pi, nm, nvv);
    }
  }
}

template <class T, class S>
asg_status adam_multi_t(const asg_cuda_call *c, const asg_cuda_adam_tensor *tab, int n,
                        int64_t blocks) {
  adam_multi_kernel<T, S><<<(unsigned)blocks, kThreads, 0, c->ctx->stream>>>(tab, n);
  return asg_cuda_check(c);
}

} // namespace

extern "C" int64_t asg_cuda_adam_layout(asg_cuda_adam_tensor *e, int n, asg_dtype t) {
  const int64_t K = 16 / (int64_t)asg_dtype_size(t);
  for (int i = 0; i < n; i++) {
    asg_cuda_adam_tensor *x = &e[i];
    x->vec = aligned16(x->m_out) && aligned16(x->v_out) && aligned16(x->p_out) && aligned16(x->m) &&
             aligned16(x->v) && aligned16(x->p) && aligned16(x->g);
    const int64_t nv = x->vec ? x->n / K : 0;
    x->units = nv + (x->n - nv * K);
  }
  for (int chunk = kAdamChunk;; chunk /= 2) {
    int64_t blocks = 0;
    for (int i = 0; i < n; i++) {
      e[i].chunk = chunk;
      e[i].block0 = blocks;
      blocks += (e[i].units + chunk - 1) / chunk;
    }
    if (blocks >= kAdamMinBlocks || chunk <= kThreads) return blocks;
  }
}

extern "C" asg_status asg_cuda_adam_multi(const asg_cuda_call *c, const asg_cuda_adam_tensor *tab,
                                          int n, int64_t blocks, asg_dtype t, asg_dtype s) {
  if (blocks <= 0 || n <= 0) return ASG_OK;
  if (t == ASG_F32 && s == ASG_F32) return adam_multi_t<float, float>(c, tab, n, blocks);
  if (t == ASG_F32 && s == ASG_F64) return adam_multi_t<float, double>(c, tab, n, blocks);
  if (t == ASG_F64 && s == ASG_F32) return adam_multi_t<double, float>(c, tab, n, blocks);
  if (t == ASG_F64 && s == ASG_F64) return adam_multi_t<double, double>(c, tab, n, blocks);
  return dtype_error(c, t);
}

extern "C" void asg_cuda_register_optim(asg_cuda_kernel *t) {
  t[ASG_OP_ADAM_MOMENT].run = moment_run;
  t[ASG_OP_ADAM_MOMENT2].run = moment_run;
  t[ASG_OP_ADAM_PARAM].run = param_run;
}
