// CUDA kernels of the conv family: conv2d (forward, input and weight
// gradients, transpose, conv2d_bias_act: the forward and a bias/ReLU pass), max/avg/adaptive-avg
// pooling and their gradients. Reference semantics: src/backends/cpu/cpu_conv.c; attribute layout:
// src/ops/op_conv.c.
//
// Convolutions are im2col (or a col2im gather) into the workspace plus
// strided-batched cuBLAS GEMMs, over chunks of images sized so the columns
// stay under kWsLimit (all images at once when they fit). Gradient kernels
// gather (one thread per written element), so there are no atomics and the
// results are deterministic; the weight gradient accumulates the chunks with
// beta = 1 GEMMs in chunk order.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_fastdiv.cuh"

#include <limits.h>
#include <math.h>

namespace {

constexpr int kThreads = 256;
constexpr size_t kWsLimit = (size_t)256 << 20; // column workspace bound per chunk

// Element counts whose indices the kernels may compute in 32 bits (grid-
// stride loops add at most 2^27 past the end).
bool fits32(int64_t n) { return n < ((int64_t)1 << 30); }

asg_status dtype_error(const asg_cuda_call *c) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype not supported", c->s->label);
}

// ---- geometry ----

// The forward convolution a step describes:
// x [N,C,H,W] * w [O,C/G,KH,KW] -> y [N,O,OH,OW].
struct Geo {
  int64_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, G;
  int64_t Cg, Og, KK, CKK, OHW, HW; // CKK = Cg*KH*KW: GEMM depth of one group
  bool direct; // 1x1 kernel, stride 1, no padding, same size: the columns are x itself
};

Geo geo_of(const asg_step *s) {
  const asg_shape *xs, *ws, *ys;
  switch (s->op) {
  case ASG_OP_CONV2D:
  case ASG_OP_CONV2D_BIAS_ACT:
    xs = &s->in[0].shape, ws = &s->in[1].shape, ys = &s->out.shape;
    break;
  case ASG_OP_CONV2D_BWD_WEIGHT:
    ys = &s->in[0].shape, xs = &s->in[1].shape, ws = &s->out.shape;
    break;
  default: // BWD_INPUT, CONV_TRANSPOSE2D: in0 is the conv output (gradient)
    ys = &s->in[0].shape, ws = &s->in[1].shape, xs = &s->out.shape;
    break;
  }
  Geo g;
  g.N = xs->dims[0], g.C = xs->dims[1], g.H = xs->dims[2], g.W = xs->dims[3];
  g.O = ys->dims[1], g.OH = ys->dims[2], g.OW = ys->dims[3];
  g.KH = ws->dims[2], g.KW = ws->dims[3];
  g.sh = s->attr.i[0], g.sw = s->attr.i[1], g.ph = s->attr.i[2], g.pw = s->attr.i[3];
  g.dh = s->attr.i[4], g.dw = s->attr.i[5], g.G = s->attr.i[6];
  g.Cg = g.C / g.G, g.Og = g.O / g.G;
  g.KK = g.KH * g.KW, g.CKK = g.Cg * g.KK;
  g.OHW = g.OH * g.OW, g.HW = g.H * g.W;
  g.direct = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
             g.OH == g.H && g.OW == g.W;
  return g;
}

// Workspace elements per image: the columns [C*KH*KW, OHW] (none when
// direct), plus for the weight gradient the image's dy rearranged.
int64_t ws_per_image(const asg_step *s, const Geo &g) {
  int64_t col = g.C * g.KK * g.OHW;
  if (s->op == ASG_OP_CONV2D_BWD_WEIGHT) return col + g.O * g.OHW;
  return g.direct ? 0 : col;
}

// Images per chunk: as many as fit in kWsLimit, at least one.
int64_t chunk_images(const asg_step *s, const Geo &g) {
  size_t per = (size_t)ws_per_image(s, g) * asg_dtype_size(s->out.dtype);
  if (g.N <= 0) return 0;
  if (per == 0) return g.N;
  int64_t n = (int64_t)(kWsLimit / per);
  if (n < 1) n = 1;
  return n < g.N ? n : g.N;
}

size_t conv_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  Geo g = geo_of(s);
  return (size_t)chunk_images(s, g) * (size_t)ws_per_image(s, g) * asg_dtype_size(s->out.dtype);
}

// ---- GEMM: row-major C[M,N] = op(A)[M,K] op(B)[K,N] (+ beta C), batched
// with element strides. cuBLAS is column-major, so it computes
// C^T = op(B)^T op(A)^T: operands swapped. F32 uses CUBLAS_COMPUTE_32F
// (TF32 when the program allows it), F64 CUBLAS_COMPUTE_64F. ----
template <typename T> struct BlasType;
template <> struct BlasType<float> {
  static constexpr cudaDataType dt = CUDA_R_32F;
  static constexpr cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
};
template <> struct BlasType<double> {
  static constexpr cudaDataType dt = CUDA_R_64F;
  static constexpr cublasComputeType_t ct = CUBLAS_COMPUTE_64F;
};

template <typename T>
asg_status gemm_rm(const asg_cuda_call *c, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                   const T *A, int64_t lda, int64_t sA, const T *B, int64_t ldb, int64_t sB, T beta,
                   T *C, int64_t ldc, int64_t sC, int64_t batch) {
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || lda > INT_MAX || ldb > INT_MAX ||
      ldc > INT_MAX || batch > INT_MAX)
    return asg__error(ASG_ERR_UNSUPPORTED, "cuda: %s: GEMM dimensions exceed cuBLAS limits",
                      c->s->label);
  const T one = 1;
  cublasHandle_t h = c->ctx->blas;
  cublasStatus_t st = cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasGemmStridedBatchedEx(
        h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K,
        &one, B, BlasType<T>::dt, (int)ldb, (long long)sB, A, BlasType<T>::dt, (int)lda,
        (long long)sA, &beta, C, BlasType<T>::dt, (int)ldc, (long long)sC, (int)batch,
        c->tf32 && BlasType<T>::ct == CUBLAS_COMPUTE_32F ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                         : BlasType<T>::ct,
        CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return asg__error(ASG_ERR_BACKEND, "cuda: %s: cuBLAS GEMM failed (%s)", c->s->label,
                      cublasGetStatusString(st));
  return ASG_OK;
}

// ---- im2col / col2im ----

// The index geometry of the kernels below, in I = int32_t where every index
// of the launch fits (with the dividers of asg_fastdiv: the CNN's im2col
// took 28 us a launch with 64-bit division, 18 us with 32-bit division) or
// int64_t.
template <typename I> struct GeoK {
  I C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, KK, OHW, HW, rows;
  asg_fastdiv fC, fH, fW, fOW, fKW, fKK, fOHW, frows, fsh, fsw; // used by 32-bit I
};
// asg__fastdiv of a dimension (1 for an empty one, and for one beyond 32
// bits, which only the 64-bit path meets and it does not use the divider)
asg_fastdiv fdiv(int64_t d) {
  return asg__fastdiv(d > 0 && d <= (int64_t)UINT32_MAX ? (uint32_t)d : 1u);
}

template <typename I> GeoK<I> geo_k(const Geo &g) {
  const int64_t rows = g.C * g.KK;
  return {(I)g.C,     (I)g.H,     (I)g.W,      (I)g.OH,    (I)g.OW,    (I)g.KH,   (I)g.KW,
          (I)g.sh,    (I)g.sw,    (I)g.ph,     (I)g.pw,    (I)g.dh,    (I)g.dw,   (I)g.KK,
          (I)g.OHW,   (I)g.HW,    (I)rows,     fdiv(g.C),  fdiv(g.H),  fdiv(g.W), fdiv(g.OW),
          fdiv(g.KW), fdiv(g.KK), fdiv(g.OHW), fdiv(rows), fdiv(g.sh), fdiv(g.sw)};
}

// n / d for n >= 0: multiply and shift (f) in 32-bit indices.
template <typename I> __device__ __forceinline__ I qdiv(I n, I d, const asg_fastdiv &f) {
  if constexpr (sizeof(I) == 4)
    return (I)asg_cuda_fastdiv(f, (uint32_t)n);
  else
    return n / d;
}

// x chunk [cn,C,H,W] -> columns: element (n, row = (c*KH+kh)*KW+kw, p = oh*OW+ow)
// goes to col[n*img_stride + row*row_stride + p] (zero where the window is
// in the padding). Image-major: img_stride = C*KK*OHW, row_stride = OHW;
// images along K (weight gradient): img_stride = OHW, row_stride = cn*OHW.
template <typename T, typename I>
__global__ void im2col_kernel(const T *x, T *col, GeoK<I> g, I cn, I img_stride, I row_stride) {
  const I rows = g.rows, total = cn * rows * g.OHW;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)gridDim.x * blockDim.x) {
    const I t = qdiv(i, g.OHW, g.fOHW), p = i - t * g.OHW;
    const I n = qdiv(t, rows, g.frows), row = t - n * rows;
    const I oh = qdiv(p, g.OW, g.fOW), ow = p - oh * g.OW;
    const I c = qdiv(row, g.KK, g.fKK), r2 = row - c * g.KK;
    const I kh = qdiv(r2, g.KW, g.fKW), kw = r2 - kh * g.KW;
    const I h = oh * g.sh - g.ph + kh * g.dh, w = ow * g.sw - g.pw + kw * g.dw;
    T v = (T)0;
    if (h >= 0 && h < g.H && w >= 0 && w < g.W) v = x[((n * g.C + c) * g.H + h) * g.W + w];
    col[n * img_stride + row * row_stride + p] = v;
  }
}

// image-major columns [cn, C*KK, OHW] -> dx chunk [cn,C,H,W]: each input
// element gathers the column entries that read it, kh then kw (the CPU's
// col2im order), so no atomics.
template <typename T, typename I>
__global__ void col2im_kernel(const T *col, T *dx, GeoK<I> g, I cn) {
  I total = cn * g.C * g.HW;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)gridDim.x * blockDim.x) {
    const I t = qdiv(i, g.W, g.fW), w = i - t * g.W;
    const I u = qdiv(t, g.H, g.fH), h = t - u * g.H;
    const I n = qdiv(u, g.C, g.fC), c = u - n * g.C;
    const T *cb = col + (n * g.C + c) * g.KK * g.OHW;
    T acc = (T)0;
    for (I kh = 0; kh < g.KH; kh++) {
      const I th = h + g.ph - kh * g.dh;
      if (th < 0) continue;
      const I oh = qdiv(th, g.sh, g.fsh);
      if (oh * g.sh != th || oh >= g.OH) continue;
      for (I kw = 0; kw < g.KW; kw++) {
        const I tw = w + g.pw - kw * g.dw;
        if (tw < 0) continue;
        const I ow = qdiv(tw, g.sw, g.fsw);
        if (ow * g.sw != tw || ow >= g.OW) continue;
        acc += cb[(kh * g.KW + kw) * g.OHW + oh * g.OW + ow];
      }
    }
    dx[i] = acc;
  }
}

// dy chunk [cn, O, OHW] -> dyr [O, cn, OHW] (images along the GEMM depth)
template <typename T, typename I>
__global__ void dy_rearrange_kernel(const T *dy, T *dyr, I cn, I O, I OHW, asg_fastdiv fO,
                                    asg_fastdiv fOHW) {
  I total = cn * O * OHW;
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)gridDim.x * blockDim.x) {
    const I t = qdiv(i, OHW, fOHW), p = i - t * OHW;
    const I n = qdiv(t, O, fO), o = t - n * O;
    dyr[(o * cn + n) * OHW + p] = dy[i];
  }
}

// conv2d_bias_act's epilogue: y [N,O,OHW] = act(y + b[o]) in place, act 1:
// ReLU (as the add and relu steps the fusion pass replaced).
template <typename T, typename I>
__global__ void bias_act_kernel(T *y, const T *b, I total, I O, I OHW, int act) {
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (I)gridDim.x * blockDim.x) {
    T v = y[i] + b[(i / OHW) % O];
    y[i] = act && !(v > (T)0) ? (T)0 : v;
  }
}

template <typename T> void bias_act(cudaStream_t st, T *y, const T *b, const Geo &g, int act) {
  const int64_t total = g.N * g.O * g.OHW;
  const unsigned nb = asg_cuda_blocks(total, kThreads);
  if (fits32(total))
    bias_act_kernel<T, int32_t>
        <<<nb, kThreads, 0, st>>>(y, b, (int32_t)total, (int32_t)g.O, (int32_t)g.OHW, act);
  else
    bias_act_kernel<T, int64_t><<<nb, kThreads, 0, st>>>(y, b, total, g.O, g.OHW, act);
}

// Launchers: 32-bit indices when the chunk's x (or dx) and columns fit.
template <typename T>
void im2col(cudaStream_t st, const T *x, T *col, const Geo &g, int64_t cn, int64_t img_stride,
            int64_t row_stride) {
  const int64_t total = cn * g.C * g.KK * g.OHW;
  const unsigned nb = asg_cuda_blocks(total, kThreads);
  if (fits32(total) && fits32(cn * g.C * g.HW))
    im2col_kernel<T, int32_t><<<nb, kThreads, 0, st>>>(x, col, geo_k<int32_t>(g), (int32_t)cn,
                                                       (int32_t)img_stride, (int32_t)row_stride);
  else
    im2col_kernel<T, int64_t>
        <<<nb, kThreads, 0, st>>>(x, col, geo_k<int64_t>(g), cn, img_stride, row_stride);
}

template <typename T> void col2im(cudaStream_t st, const T *col, T *dx, const Geo &g, int64_t cn) {
  const unsigned nb = asg_cuda_blocks(cn * g.C * g.HW, kThreads);
  if (fits32(cn * g.C * g.KK * g.OHW) && fits32(cn * g.C * g.HW))
    col2im_kernel<T, int32_t><<<nb, kThreads, 0, st>>>(col, dx, geo_k<int32_t>(g), (int32_t)cn);
  else
    col2im_kernel<T, int64_t><<<nb, kThreads, 0, st>>>(col, dx, geo_k<int64_t>(g), cn);
}

template <typename T>
void dy_rearrange(cudaStream_t st, const T *dy, T *dyr, int64_t cn, int64_t O, int64_t OHW) {
  const unsigned nb = asg_cuda_blocks(cn * O * OHW, kThreads);
  if (fits32(cn * O * OHW))
    dy_rearrange_kernel<T, int32_t><<<nb, kThreads, 0, st>>>(dy, dyr, (int32_t)cn, (int32_t)O,
                                                             (int32_t)OHW, fdiv(O), fdiv(OHW));
  else
    dy_rearrange_kernel<T, int64_t>
        <<<nb, kThreads, 0, st>>>(dy, dyr, cn, O, OHW, asg_fastdiv{}, asg_fastdiv{});
}

// ---- convolutions ----

// x [N,C,H,W], w [O,Cg,KH,KW] -> y [N,O,OH,OW]: y_ng [Og,OHW] = w_g [Og,CKK] col_ng.
// Batched over images (one call per group) or over groups (one per image),
// whichever needs fewer calls.
template <typename T> asg_status conv_fwd(const asg_cuda_call *c, const Geo &g, int64_t chunk) {
  const T *x = (const T *)c->in[0], *w = (const T *)c->in[1];
  T *y = (T *)c->out;
  int64_t sI = g.C * g.KK * g.OHW, sG = g.CKK * g.OHW; // column strides: image, group
  asg_status st = ASG_OK;
  for (int64_t n0 = 0; n0 < g.N && !st; n0 += chunk) {
    int64_t cn = g.N - n0 < chunk ? g.N - n0 : chunk;
    const T *col = x + n0 * g.C * g.HW;
    if (!g.direct) {
      im2col<T>(c->ctx->stream, col, (T *)c->ws, g, cn, sI, g.OHW);
      if ((st = asg_cuda_check(c))) return st;
      col = (const T *)c->ws;
    }
    T *yc = y + n0 * g.O * g.OHW;
    if (g.G <= cn) {
      for (int64_t gi = 0; gi < g.G && !st; gi++)
        st = gemm_rm<T>(c, false, false, g.Og, g.OHW, g.CKK, w + gi * g.Og * g.CKK, g.CKK, 0,
                        col + gi * sG, g.OHW, sI, (T)0, yc + gi * g.Og * g.OHW, g.OHW, g.O * g.OHW,
                        cn);
    } else {
      for (int64_t n = 0; n < cn && !st; n++)
        st = gemm_rm<T>(c, false, false, g.Og, g.OHW, g.CKK, w, g.CKK, g.Og * g.CKK, col + n * sI,
                        g.OHW, sG, (T)0, yc + n * g.O * g.OHW, g.OHW, g.Og * g.OHW, g.G);
    }
  }
  return st;
}

// dy [N,O,OH,OW], w [O,Cg,KH,KW] -> dx [N,C,H,W] (also conv_transpose2d):
// col_ng [CKK,OHW] = w_g^T dy_ng, then gathered back by col2im.
template <typename T>
asg_status conv_bwd_input(const asg_cuda_call *c, const Geo &g, int64_t chunk) {
  const T *dy = (const T *)c->in[0], *w = (const T *)c->in[1];
  T *dx = (T *)c->out;
  int64_t sI = g.C * g.KK * g.OHW, sG = g.CKK * g.OHW;
  asg_status st = ASG_OK;
  for (int64_t n0 = 0; n0 < g.N && !st; n0 += chunk) {
    int64_t cn = g.N - n0 < chunk ? g.N - n0 : chunk;
    T *dxc = dx + n0 * g.C * g.HW;
    T *col = g.direct ? dxc : (T *)c->ws; // direct: the GEMM writes dx itself
    const T *dyc = dy + n0 * g.O * g.OHW;
    if (g.G <= cn) {
      for (int64_t gi = 0; gi < g.G && !st; gi++)
        st = gemm_rm<T>(c, true, false, g.CKK, g.OHW, g.Og, w + gi * g.Og * g.CKK, g.CKK, 0,
                        dyc + gi * g.Og * g.OHW, g.OHW, g.O * g.OHW, (T)0, col + gi * sG, g.OHW, sI,
                        cn);
    } else {
      for (int64_t n = 0; n < cn && !st; n++)
        st = gemm_rm<T>(c, true, false, g.CKK, g.OHW, g.Og, w, g.CKK, g.Og * g.CKK,
                        dyc + n * g.O * g.OHW, g.OHW, g.Og * g.OHW, (T)0, col + n * sI, g.OHW, sG,
                        g.G);
    }
    if (st) return st;
    if (!g.direct) {
      col2im<T>(c->ctx->stream, col, dxc, g, cn);
      st = asg_cuda_check(c);
    }
  }
  return st;
}

// dy [N,O,OH,OW], x [N,C,H,W] -> dw [O,Cg,KH,KW] = sum_n dy_ng col_ng^T.
// A chunk of cn images becomes one GEMM per group with depth cn*OHW: the
// columns are laid out [C*KK, cn*OHW] and dy [O, cn*OHW] (for one image
// both are the plain layouts, so x or dy are used in place). Chunks add
// with beta = 1 in order. One strided-batched call covers the groups.
template <typename T>
asg_status conv_bwd_weight(const asg_cuda_call *c, const Geo &g, int64_t chunk) {
  const T *dy = (const T *)c->in[0], *x = (const T *)c->in[1];
  T *dw = (T *)c->out;
  cudaStream_t s = c->ctx->stream;
  asg_status st = ASG_OK;
  for (int64_t n0 = 0; n0 < g.N && !st; n0 += chunk) {
    int64_t cn = g.N - n0 < chunk ? g.N - n0 : chunk, K = cn * g.OHW;
    const T *xc = x + n0 * g.C * g.HW, *dyc = dy + n0 * g.O * g.OHW;
    const T *col = xc, *dya = dyc;
    T *colbuf = (T *)c->ws, *dyr = colbuf + g.C * g.KK * K;
    if (!(g.direct && cn == 1)) {
      im2col<T>(s, xc, colbuf, g, cn, g.OHW, K);
      col = colbuf;
    }
    if (cn > 1) {
      dy_rearrange<T>(s, dyc, dyr, cn, g.O, g.OHW);
      dya = dyr;
    }
    if ((st = asg_cuda_check(c))) return st;
    st = gemm_rm<T>(c, false, true, g.Og, g.CKK, K, dya, K, g.Og * K, col, K, g.CKK * K,
                    n0 == 0 ? (T)0 : (T)1, dw, g.CKK, g.Og * g.CKK, g.G);
  }
  return st;
}

template <typename T> asg_status conv_dispatch(const asg_cuda_call *c, const Geo &g) {
  int64_t chunk = chunk_images(c->s, g);
  switch (c->s->op) {
  case ASG_OP_CONV2D: return conv_fwd<T>(c, g, chunk);
  case ASG_OP_CONV2D_BIAS_ACT: {
    asg_status st = conv_fwd<T>(c, g, chunk);
    if (st) return st;
    bias_act<T>(c->ctx->stream, (T *)c->out, (const T *)c->in[2], g, (int)c->s->attr.i[9]);
    return asg_cuda_check(c);
  }
  case ASG_OP_CONV2D_BWD_WEIGHT: return conv_bwd_weight<T>(c, g, chunk);
  default: return conv_bwd_input<T>(c, g, chunk);
  }
}

asg_status conv_run(const asg_cuda_call *c) {
  asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  Geo g = geo_of(c->s);
  if (g.N == 0 || g.OHW == 0 || g.HW == 0) { // empty batch: only dw has values (zeros)
    size_t bytes = asg__tdesc_bytes(&c->s->out);
    if (bytes) cudaMemsetAsync(c->out, 0, bytes, c->ctx->stream);
    if (bytes && c->s->op == ASG_OP_CONV2D_BIAS_ACT) { // an empty input padded: act(0 + b)
      if (dt == ASG_F32)
        bias_act<float>(c->ctx->stream, (float *)c->out, (const float *)c->in[2], g,
                        (int)c->s->attr.i[9]);
      else
        bias_act<double>(c->ctx->stream, (double *)c->out, (const double *)c->in[2], g,
                         (int)c->s->attr.i[9]);
    }
    return asg_cuda_check(c);
  }
  return dt == ASG_F32 ? conv_dispatch<float>(c, g) : conv_dispatch<double>(c, g);
}

// ---- pooling: one thread per written element; gradients gather from the
// output windows that contain the input element, in the CPU's (oh, ow) order ----

template <typename I> struct PgeoT {
  I planes, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  bool excl;                              // avg: divide by the window's input cells
  asg_fastdiv fH, fW, fOH, fOW, fsh, fsw; // set by narrow, used by 32-bit I
};
using Pgeo = PgeoT<int64_t>;

// The geometry in 32-bit indices (the kernels' divisions and products; callers
// check that every index fits)
PgeoT<int32_t> narrow(const Pgeo &p) {
  return {(int32_t)p.planes, (int32_t)p.H,  (int32_t)p.W,  (int32_t)p.OH, (int32_t)p.OW,
          (int32_t)p.KH,     (int32_t)p.KW, (int32_t)p.sh, (int32_t)p.sw, (int32_t)p.ph,
          (int32_t)p.pw,     (int32_t)p.dh, (int32_t)p.dw, p.excl,        fdiv(p.H),
          fdiv(p.W),         fdiv(p.OH),    fdiv(p.OW),    fdiv(p.sh),    fdiv(p.sw)};
}

// x [N,C,H,W] -> y [N,C,OH,OW]; for the BWD ops x is the output.
Pgeo pgeo_of(const asg_step *s) {
  bool bwd = s->op == ASG_OP_MAXPOOL2D_BWD || s->op == ASG_OP_AVGPOOL2D_BWD ||
             s->op == ASG_OP_ADAPTIVE_AVGPOOL2D_BWD;
  const asg_shape *xs = bwd ? &s->out.shape : &s->in[0].shape;
  const asg_shape *ys = bwd ? &s->in[0].shape : &s->out.shape;
  Pgeo p = {};
  p.planes = xs->dims[0] * xs->dims[1];
  p.H = xs->dims[2], p.W = xs->dims[3], p.OH = ys->dims[2], p.OW = ys->dims[3];
  p.KH = s->attr.i[0], p.KW = s->attr.i[1], p.sh = s->attr.i[2], p.sw = s->attr.i[3];
  p.ph = s->attr.i[4], p.pw = s->attr.i[5];
  p.dh = s->attr.i[6] > 1 ? s->attr.i[6] : 1, p.dw = s->attr.i[7] > 1 ? s->attr.i[7] : 1;
  p.excl = s->attr.i[9] != 0;
  return p;
}

// Inclusive range [lo, hi] of windows o (start o*s - pad, extent K) that
// contain position h, clipped to [0, On).
template <typename I>
__device__ __forceinline__ void windows_of(I h, I pad, I K, I s, I On, const asg_fastdiv &fs, I *lo,
                                           I *hi) {
  I a = h + pad - K + 1;
  *lo = a <= 0 ? 0 : qdiv(a + s - 1, s, fs);
  I u = qdiv(h + pad, s, fs);
  *hi = u < On - 1 ? u : On - 1;
}

// Flat index in the plane of the window's first maximum (-1: none); NaN
// wins. Taps every (dh, dw), in row-major order.
template <typename T, typename I>
__device__ I window_argmax(const PgeoT<I> &p, const T *x, I oh, I ow) {
  I h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw, bi = -1;
  T best = (T)-INFINITY;
  for (I kh = 0; kh < p.KH; kh++) {
    I h = h0 + kh * p.dh;
    if (h < 0 || h >= p.H) continue;
    for (I kw = 0; kw < p.KW; kw++) {
      I w = w0 + kw * p.dw;
      if (w < 0 || w >= p.W) continue;
      T v = x[h * p.W + w];
      if (bi < 0 || v > best || (v != v && best == best)) best = v, bi = h * p.W + w;
    }
  }
  return bi;
}

// 1 / the divisor of average pooling's window (oh, ow), as the CPU
// (cpu_pooling.c): the window clipped to the padded input, or with excl its
// input cells; full = 1 / (KH*KW).
template <typename T, typename I>
__device__ __forceinline__ T avg_inv(const PgeoT<I> &p, I oh, I ow, T full) {
  I h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw, h1 = h0 + p.KH, w1 = w0 + p.KW;
  if (p.excl) {
    h0 = h0 > 0 ? h0 : 0, w0 = w0 > 0 ? w0 : 0;
    h1 = h1 < p.H ? h1 : p.H, w1 = w1 < p.W ? w1 : p.W;
  } else {
    h1 = h1 < p.H + p.ph ? h1 : p.H + p.ph, w1 = w1 < p.W + p.pw ? w1 : p.W + p.pw;
  }
  I d = (h1 - h0) * (w1 - w0);
  return d == p.KH * p.KW ? full : d > 0 ? (T)(1.0 / (double)d) : (T)0;
}

// grid-stride loop over [0, total) in the kernel's index type I
#define GRID_STRIDE(i, total)                                                                      \
  for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (total); i += (I)gridDim.x * blockDim.x)

// x [N,C,H,W] -> y [N,C,OH,OW]
template <typename T, typename I> __global__ void maxpool_kernel(const T *x, T *y, PgeoT<I> p) {
  GRID_STRIDE(i, p.planes * p.OH * p.OW) {
    const I t = qdiv(i, p.OW, p.fOW), ow = i - t * p.OW;
    const I pl = qdiv(t, p.OH, p.fOH), oh = t - pl * p.OH;
    const T *xp = x + pl * p.H * p.W;
    I b = window_argmax(p, xp, oh, ow);
    y[i] = b < 0 ? (T)-INFINITY : xp[b];
  }
}

// dy [N,C,OH,OW], x [N,C,H,W] -> dx [N,C,H,W]: an input element collects dy
// of every window whose first maximum it is.
template <typename T, typename I>
__global__ void maxpool_bwd_kernel(const T *dy, const T *x, T *dx, PgeoT<I> p) {
  GRID_STRIDE(i, p.planes * p.H * p.W) {
    const I t = qdiv(i, p.W, p.fW), w = i - t * p.W;
    const I pl = qdiv(t, p.H, p.fH), h = t - pl * p.H;
    const T *xp = x + pl * p.H * p.W, *dyp = dy + pl * p.OH * p.OW;
    I hlo, hhi, wlo, whi, me = h * p.W + w;
    // windows whose dilated extent covers (h, w); window_argmax returns taps only
    windows_of(h, p.ph, (p.KH - 1) * p.dh + 1, p.sh, p.OH, p.fsh, &hlo, &hhi);
    windows_of(w, p.pw, (p.KW - 1) * p.dw + 1, p.sw, p.OW, p.fsw, &wlo, &whi);
    T acc = (T)0;
    for (I oh = hlo; oh <= hhi; oh++)
      for (I ow = wlo; ow <= whi; ow++)
        if (window_argmax(p, xp, oh, ow) == me) acc += dyp[oh * p.OW + ow];
    dx[i] = acc;
  }
}

// x [N,C,H,W] -> y [N,C,OH,OW]; padding counts as zeros (divisor: avg_inv)
template <typename T, typename I>
__global__ void avgpool_kernel(const T *x, T *y, PgeoT<I> p, T inv) {
  GRID_STRIDE(i, p.planes * p.OH * p.OW) {
    I ow = i % p.OW, oh = (i / p.OW) % p.OH, pl = i / (p.OH * p.OW);
    const T *xp = x + pl * p.H * p.W;
    I h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
    T s = (T)0;
    for (I h = h0 < 0 ? 0 : h0; h < h0 + p.KH && h < p.H; h++)
      for (I w = w0 < 0 ? 0 : w0; w < w0 + p.KW && w < p.W; w++)
        s += xp[h * p.W + w];
    y[i] = s * avg_inv(p, oh, ow, inv);
  }
}

// dy [N,C,OH,OW] -> dx [N,C,H,W]
template <typename T, typename I>
__global__ void avgpool_bwd_kernel(const T *dy, T *dx, PgeoT<I> p, T inv) {
  GRID_STRIDE(i, p.planes * p.H * p.W) {
    I w = i % p.W, h = (i / p.W) % p.H, pl = i / (p.H * p.W);
    const T *dyp = dy + pl * p.OH * p.OW;
    I hlo, hhi, wlo, whi;
    windows_of(h, p.ph, p.KH, p.sh, p.OH, p.fsh, &hlo, &hhi);
    windows_of(w, p.pw, p.KW, p.sw, p.OW, p.fsw, &wlo, &whi);
    T acc = (T)0;
    for (I oh = hlo; oh <= hhi; oh++)
      for (I ow = wlo; ow <= whi; ow++)
        acc += dyp[oh * p.OW + ow] * avg_inv(p, oh, ow, inv);
    dx[i] = acc;
  }
}

// PyTorch bins: [floor(o*n/on), ceil((o+1)*n/on))
template <typename I> __device__ __forceinline__ I bin_start(I o, I n, I on) { return o * n / on; }
template <typename I> __device__ __forceinline__ I bin_end(I o, I n, I on) {
  return ((o + 1) * n + on - 1) / on;
}

// x [N,C,H,W] -> y [N,C,OH,OW]
template <typename T, typename I> __global__ void adaptive_kernel(const T *x, T *y, PgeoT<I> p) {
  GRID_STRIDE(i, p.planes * p.OH * p.OW) {
    I ow = i % p.OW, oh = (i / p.OW) % p.OH, pl = i / (p.OH * p.OW);
    const T *xp = x + pl * p.H * p.W;
    I hs = bin_start(oh, p.H, p.OH), he = bin_end(oh, p.H, p.OH);
    I ws = bin_start(ow, p.W, p.OW), we = bin_end(ow, p.W, p.OW);
    T s = (T)0;
    for (I h = hs; h < he; h++)
      for (I w = ws; w < we; w++)
        s += xp[h * p.W + w];
    y[i] = s / (T)((he - hs) * (we - ws));
  }
}

// dy [N,C,OH,OW] -> dx [N,C,H,W]; the bins holding h are
// o in [floor(h*on/n), floor(((h+1)*on-1)/n)] (checked again in the loop).
template <typename T, typename I>
__global__ void adaptive_bwd_kernel(const T *dy, T *dx, PgeoT<I> p) {
  GRID_STRIDE(i, p.planes * p.H * p.W) {
    I w = i % p.W, h = (i / p.W) % p.H, pl = i / (p.H * p.W);
    const T *dyp = dy + pl * p.OH * p.OW;
    I hlo = h * p.OH / p.H, hhi = ((h + 1) * p.OH - 1) / p.H;
    I wlo = w * p.OW / p.W, whi = ((w + 1) * p.OW - 1) / p.W;
    if (hhi > p.OH - 1) hhi = p.OH - 1;
    if (whi > p.OW - 1) whi = p.OW - 1;
    T acc = (T)0;
    for (I oh = hlo; oh <= hhi; oh++) {
      I hs = bin_start(oh, p.H, p.OH), he = bin_end(oh, p.H, p.OH);
      if (h < hs || h >= he) continue;
      for (I ow = wlo; ow <= whi; ow++) {
        I ws = bin_start(ow, p.W, p.OW), we = bin_end(ow, p.W, p.OW);
        if (w < ws || w >= we) continue;
        acc += dyp[oh * p.OW + ow] / (T)((he - hs) * (we - ws));
      }
    }
    dx[i] = acc;
  }
}

template <typename T, typename I> void pool_launch(const asg_cuda_call *c, const PgeoT<I> &p) {
  cudaStream_t s = c->ctx->stream;
  I nout = p.planes * p.OH * p.OW, nin = p.planes * p.H * p.W;
  const T *in0 = (const T *)c->in[0];
  T *out = (T *)c->out;
  T inv = (T)(1.0 / (double)(p.KH * p.KW));
  switch (c->s->op) {
  case ASG_OP_MAXPOOL2D:
    maxpool_kernel<T, I><<<asg_cuda_blocks(nout, kThreads), kThreads, 0, s>>>(in0, out, p);
    break;
  case ASG_OP_MAXPOOL2D_BWD:
    maxpool_bwd_kernel<T, I>
        <<<asg_cuda_blocks(nin, kThreads), kThreads, 0, s>>>(in0, (const T *)c->in[1], out, p);
    break;
  case ASG_OP_AVGPOOL2D:
    avgpool_kernel<T, I><<<asg_cuda_blocks(nout, kThreads), kThreads, 0, s>>>(in0, out, p, inv);
    break;
  case ASG_OP_AVGPOOL2D_BWD:
    avgpool_bwd_kernel<T, I><<<asg_cuda_blocks(nin, kThreads), kThreads, 0, s>>>(in0, out, p, inv);
    break;
  case ASG_OP_ADAPTIVE_AVGPOOL2D:
    adaptive_kernel<T, I><<<asg_cuda_blocks(nout, kThreads), kThreads, 0, s>>>(in0, out, p);
    break;
  default:
    adaptive_bwd_kernel<T, I><<<asg_cuda_blocks(nin, kThreads), kThreads, 0, s>>>(in0, out, p);
    break;
  }
}

asg_status pool_run(const asg_cuda_call *c) {
  asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  Pgeo p = pgeo_of(c->s);
  if (p.planes * p.H * p.W == 0) return ASG_OK; // nothing to write
  if (p.OH * p.OW == 0) {                       // no windows: the gradient is zero
    size_t bytes = asg__tdesc_bytes(&c->s->out);
    if (bytes) cudaMemsetAsync(c->out, 0, bytes, c->ctx->stream);
    return asg_cuda_check(c);
  }
  // 32-bit indices where every index fits (64-bit division is a long
  // instruction sequence: the CNN's max-pool gradient took 33 us)
  const bool small = fits32(p.planes * p.H * p.W) && fits32(p.planes * p.OH * p.OW);
  if (dt == ASG_F32)
    small ? pool_launch<float>(c, narrow(p)) : pool_launch<float>(c, p);
  else
    small ? pool_launch<double>(c, narrow(p)) : pool_launch<double>(c, p);
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_conv(asg_cuda_kernel *t) {
  static const asg_op convs[] = {ASG_OP_CONV2D, ASG_OP_CONV2D_BIAS_ACT, ASG_OP_CONV2D_BWD_INPUT,
                                 ASG_OP_CONV2D_BWD_WEIGHT, ASG_OP_CONV_TRANSPOSE2D};
  static const asg_op pools[] = {ASG_OP_MAXPOOL2D,          ASG_OP_MAXPOOL2D_BWD,
                                 ASG_OP_AVGPOOL2D,          ASG_OP_AVGPOOL2D_BWD,
                                 ASG_OP_ADAPTIVE_AVGPOOL2D, ASG_OP_ADAPTIVE_AVGPOOL2D_BWD};
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
    t[convs[i]].run = conv_run;
    t[convs[i]].ws = conv_ws;
  }
  for (size_t i = 0; i < sizeof pools / sizeof *pools; i++)
    t[pools[i]].run = pool_run;
}
