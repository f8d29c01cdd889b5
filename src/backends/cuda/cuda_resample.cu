// CUDA kernels of pad, pad_bwd, upsample and upsample_bwd: one thread per
// written element (grid-stride loops, 64-bit indices); the gradients gather
// the readers of each input element in the CPU's order, so there are no
// atomics and results are deterministic. Maps and geometry:
// src/runtime/resample.h; reference: src/backends/cpu/cpu_resample.c.
// 'nearest' indices are float32 (as PyTorch) for both dtypes; the linear
// source coordinate rounds each step (__fmul_rn: no FMA contraction), as
// the CPU does.
#include <math.h>
#include <stdint.h>

#include "backends/cuda/cuda.h"
#include "runtime/resample.h"

namespace {

constexpr int kThreads = 256;

#define GRID_STRIDE(i, total)                                                                      \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (total);                    \
       i += (int64_t)gridDim.x * blockDim.x)

// The plan as kernel arguments (by value).
struct PadArgs {
  int nd, mode;
  int64_t out[ASG_MAX_DIMS], in[ASG_MAX_DIMS], before[ASG_MAX_DIMS];
};

__device__ __forceinline__ int64_t pad_src(const PadArgs &p, int64_t o, int d) {
  const int64_t c = o - p.before[d], in = p.in[d];
  if (c >= 0 && c < in) return c;
  if (p.mode == ASG_PAD_CONSTANT) return -1;
  if (p.mode == ASG_PAD_REFLECT) return c < 0 ? -c : 2 * (in - 1) - c;
  return c < 0 ? 0 : in - 1;
}

// y [out dims] from x [in dims]; the constant where a coordinate falls outside.
template <typename T> __global__ void pad_kernel(const T *x, T *y, PadArgs p, T value, int64_t n) {
  GRID_STRIDE(i, n) {
    int64_t rem = i, off = 0, stride = 1;
    bool fill = false;
    for (int d = p.nd - 1; d >= 0; d--) {
      const int64_t c = pad_src(p, rem % p.out[d], d);
      rem /= p.out[d];
      fill = fill || c < 0;
      off += c * stride;
      stride *= p.in[d];
    }
    y[i] = fill ? value : x[off];
  }
}

// dx [in dims] from dy [out dims]: the sum of dy over each element's readers
// (up to 3 ranges per dim), an odometer with the last dim innermost.
template <typename T> __global__ void pad_bwd_kernel(const T *dy, T *dx, PadArgs p, int64_t n) {
  const int nd = p.nd;
  int64_t ost[ASG_MAX_DIMS];
  ost[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--)
    ost[d] = ost[d + 1] * p.out[d + 1];
  GRID_STRIDE(i, n) {
    int64_t rlo[ASG_MAX_DIMS][3], rhi[ASG_MAX_DIMS][3], o[ASG_MAX_DIMS], rem = i;
    int nr[ASG_MAX_DIMS], k[ASG_MAX_DIMS];
    bool none = false;
    for (int d = nd - 1; d >= 0; d--) {
      const int64_t c = rem % p.in[d], b = p.before[d], in = p.in[d], on = p.out[d];
      rem /= p.in[d];
      int64_t a3[3], b3[3];
      int m = 0;
      if (p.mode == ASG_PAD_REPLICATE) {
        a3[0] = c == 0 ? 0 : c + b, b3[0] = c == in - 1 ? on : c + b + 1, m = 1;
      } else {
        if (p.mode == ASG_PAD_REFLECT && c > 0) a3[m] = b - c, b3[m] = b - c + 1, m++;
        a3[m] = c + b, b3[m] = c + b + 1, m++;
        if (p.mode == ASG_PAD_REFLECT && c < in - 1)
          a3[m] = b + 2 * (in - 1) - c, b3[m] = a3[m] + 1, m++;
      }
      nr[d] = 0;
      for (int j = 0; j < m; j++) {
        const int64_t l = a3[j] < 0 ? 0 : a3[j], h = b3[j] > on ? on : b3[j];
        if (l < h) rlo[d][nr[d]] = l, rhi[d][nr[d]] = h, nr[d]++;
      }
      none = none || nr[d] == 0;
    }
    T acc = (T)0;
    if (!none) {
      for (int d = 0; d < nd; d++)
        k[d] = 0, o[d] = rlo[d][0];
      for (;;) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++)
          off += o[d] * ost[d];
        acc += dy[off];
        int d = nd - 1;
        for (; d >= 0; d--) { // next position: innermost dim first
          if (++o[d] < rhi[d][k[d]]) break;
          if (++k[d] < nr[d]) {
            o[d] = rlo[d][k[d]];
            break;
          }
          k[d] = 0, o[d] = rlo[d][0];
        }
        if (d < 0) break;
      }
    }
    dx[i] = acc;
  }
}

// ---- upsample ----
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

__device__ __forceinline__ int64_t near_src(float r, int64_t o, int64_t in) {
  const int64_t s = (int64_t)floorf(__fmul_rn((float)o, r));
  return s < in - 1 ? s : in - 1;
}

// The smallest o in [0, on] whose nearest source is >= t (on if none).
__device__ int64_t near_first(float r, int64_t t, int64_t in, int64_t on) {
  if (t <= 0) return 0;
  if (t >= in) return on;
  const double e = r > 0 ? ceil((double)t / r) : (double)on;
  int64_t o = e >= (double)on ? on : (int64_t)e;
  while (o > 0 && near_src(r, o - 1, in) >= t)
    o--;
  while (o < on && near_src(r, o, in) < t)
    o++;
  return o;
}

template <typename T> struct Taps {
  int64_t i0, i1;
  T l0, l1;
};

template <typename T> __device__ Taps<T> lin_taps(T r, bool align, int64_t o, int64_t in) {
  Taps<T> t;
  T real = align ? mul_rn(r, (T)o) : mul_rn(r, (T)o + (T)0.5) - (T)0.5;
  if (!align && real < (T)0) real = (T)0;
  t.i0 = (int64_t)real;
  if (t.i0 > in - 1) t.i0 = in - 1;
  const T l1 = real - (T)t.i0;
  t.l1 = l1 < (T)0 ? (T)0 : l1 > (T)1 ? (T)1 : l1;
  t.l0 = (T)1 - t.l1;
  t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
  return t;
}

// The smallest o in [0, on] whose linear i0 is >= t (on if none).
template <typename T>
__device__ int64_t lin_first(T r, bool align, int64_t t, int64_t in, int64_t on) {
  if (t <= 0) return 0;
  if (t >= in) return on;
  const double e =
      r > (T)0 ? ceil(align ? (double)t / r : ((double)t + 0.5) / r - 0.5) : (double)on;
  int64_t o = e <= 0 ? 0 : e >= (double)on ? on : (int64_t)e;
  while (o > 0 && lin_taps(r, align, o - 1, in).i0 >= t)
    o--;
  while (o < on && lin_taps(r, align, o, in).i0 < t)
    o++;
  return o;
}

template <typename T> __device__ T lin_weight(T r, bool align, int64_t o, int64_t i, int64_t in) {
  const Taps<T> t = lin_taps(r, align, o, in);
  return (t.i0 == i ? t.l0 : (T)0) + (t.i1 == i ? t.l1 : (T)0);
}

// x [planes, H, W] -> y [planes, OH, OW]
template <typename T>
__global__ void upsample_kernel(const T *x, T *y, asg_upsample_plan p, T rh, T rw) {
  const bool al = p.align != 0;
  GRID_STRIDE(i, p.planes * p.OH * p.OW) {
    const int64_t ow = i % p.OW, t = i / p.OW, oh = t % p.OH, pl = t / p.OH;
    const T *xp = x + pl * p.H * p.W;
    if (p.mode == ASG_UPSAMPLE_NEAREST) {
      y[i] = xp[near_src(p.rn[0], oh, p.H) * p.W + near_src(p.rn[1], ow, p.W)];
      continue;
    }
    const Taps<T> th = lin_taps(rh, al, oh, p.H), tw = lin_taps(rw, al, ow, p.W);
    const T *x0 = xp + th.i0 * p.W, *x1 = xp + th.i1 * p.W;
    y[i] = th.l0 * (tw.l0 * x0[tw.i0] + tw.l1 * x0[tw.i1]) +
           th.l1 * (tw.l0 * x1[tw.i0] + tw.l1 * x1[tw.i1]);
  }
}

// dy [planes, OH, OW] -> dx [planes, H, W]: each input element gathers the
// outputs that read it, in the CPU's (oh, ow) order.
template <typename T>
__global__ void upsample_bwd_kernel(const T *dy, T *dx, asg_upsample_plan p, T rh, T rw) {
  const bool al = p.align != 0, near = p.mode == ASG_UPSAMPLE_NEAREST;
  GRID_STRIDE(i, p.planes * p.H * p.W) {
    const int64_t iw = i % p.W, t = i / p.W, ih = t % p.H, pl = t / p.H;
    const T *dyp = dy + pl * p.OH * p.OW;
    const int64_t hlo =
        near ? near_first(p.rn[0], ih, p.H, p.OH) : lin_first(rh, al, ih - 1, p.H, p.OH);
    const int64_t hhi =
        near ? near_first(p.rn[0], ih + 1, p.H, p.OH) : lin_first(rh, al, ih + 1, p.H, p.OH);
    const int64_t wlo =
        near ? near_first(p.rn[1], iw, p.W, p.OW) : lin_first(rw, al, iw - 1, p.W, p.OW);
    const int64_t whi =
        near ? near_first(p.rn[1], iw + 1, p.W, p.OW) : lin_first(rw, al, iw + 1, p.W, p.OW);
    T acc = (T)0;
    for (int64_t oh = hlo; oh < hhi; oh++) {
      const T *g = dyp + oh * p.OW;
      T s = (T)0;
      if (near) {
        for (int64_t ow = wlo; ow < whi; ow++)
          s += g[ow];
        acc += s;
        continue;
      }
      for (int64_t ow = wlo; ow < whi; ow++)
        s += lin_weight(rw, al, ow, iw, p.W) * g[ow];
      acc += lin_weight(rh, al, oh, ih, p.H) * s;
    }
    dx[i] = acc;
  }
}

template <typename T> void launch(const asg_cuda_call *c, T rh, T rw) {
  const asg_step *s = c->s;
  cudaStream_t st = c->ctx->stream;
  const T *in = (const T *)c->in[0];
  T *out = (T *)c->out;
  if (s->op == ASG_OP_PAD || s->op == ASG_OP_PAD_BWD) {
    asg_pad_plan pl;
    asg__pad_plan(&pl, s);
    PadArgs a;
    a.nd = pl.nd, a.mode = pl.mode;
    for (int d = 0; d < ASG_MAX_DIMS; d++) {
      a.out[d] = d < pl.nd ? pl.out[d] : 1, a.in[d] = d < pl.nd ? pl.in[d] : 1;
      a.before[d] = d < pl.nd ? pl.before[d] : 0;
    }
    if (s->op == ASG_OP_PAD)
      pad_kernel<T><<<asg_cuda_blocks(pl.n_out, kThreads), kThreads, 0, st>>>(
          in, out, a, (T)pl.value, pl.n_out);
    else
      pad_bwd_kernel<T>
          <<<asg_cuda_blocks(pl.n_in, kThreads), kThreads, 0, st>>>(in, out, a, pl.n_in);
    return;
  }
  asg_upsample_plan u;
  asg__upsample_plan(&u, s);
  if (s->op == ASG_OP_UPSAMPLE)
    upsample_kernel<T><<<asg_cuda_blocks(u.planes * u.OH * u.OW, kThreads), kThreads, 0, st>>>(
        in, out, u, rh, rw);
  else
    upsample_bwd_kernel<T>
        <<<asg_cuda_blocks(u.planes * u.H * u.W, kThreads), kThreads, 0, st>>>(in, out, u, rh, rw);
}

asg_status resample_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  if (asg_shape_numel(s->out.shape) <= 0) return ASG_OK;
  if (s->op == ASG_OP_UPSAMPLE || s->op == ASG_OP_UPSAMPLE_BWD) {
    asg_upsample_plan u; // only for the linear ratios of this dtype
    asg__upsample_plan(&u, s);
    if (dt == ASG_F32)
      launch<float>(c, u.rf[0], u.rf[1]);
    else
      launch<double>(c, u.rd[0], u.rd[1]);
  } else if (dt == ASG_F32) {
    launch<float>(c, 0.0f, 0.0f);
  } else {
    launch<double>(c, 0.0, 0.0);
  }
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_resample(asg_cuda_kernel *t) {
  static const asg_op ops[] = {ASG_OP_PAD, ASG_OP_PAD_BWD, ASG_OP_UPSAMPLE, ASG_OP_UPSAMPLE_BWD};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    t[ops[i]].run = resample_run;
}
