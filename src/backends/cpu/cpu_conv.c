/* CPU kernels of the conv family: conv2d (forward, input and weight
 * gradients, transpose), max/avg/adaptive-avg pooling and their gradients.
 *
 * Convolutions are im2col + GEMM per image and group. With several threads
 * the images are split into nt = min(threads, N) fixed contiguous blocks,
 * one per thread, each with its own column buffer in the workspace, and the
 * GEMMs are called from inside the parallel loop, single-threaded (single
 * images of a small CNN are too small for a threaded GEMM to pay off). With
 * one image or one thread the images run in order and each GEMM is split
 * over the threads instead.
 * The weight gradient sums each block into its own partial buffer, then adds
 * the partials in block order: the result depends only on the shapes and
 * the program's thread count, never on timing. Attribute layout:
 * src/ops/op_conv.c. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"

/* Geometry of the forward convolution that a step describes:
 * x [N,C,H,W] * w [O,C/G,KH,KW] -> y [N,O,OH,OW]. */
typedef struct cgeo {
  int64_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, G;
  int64_t Cg, Og, CKK, OHW, HW; /* per group */
  bool direct;                  /* 1x1 kernel, stride 1, no padding: the columns are x itself */
} cgeo;

static void geo_of(const asg_step *s, cgeo *g) {
  const asg_shape *xs, *ws, *ys;
  switch (s->op) {
  case ASG_OP_CONV2D: xs = &s->in[0].shape, ws = &s->in[1].shape, ys = &s->out.shape; break;
  case ASG_OP_CONV2D_BWD_WEIGHT:
    ys = &s->in[0].shape, xs = &s->in[1].shape, ws = &s->out.shape;
    break;
  default: /* BWD_INPUT, CONV_TRANSPOSE2D: in0 is the conv output (gradient) */
    ys = &s->in[0].shape, ws = &s->in[1].shape, xs = &s->out.shape;
    break;
  }
  g->N = xs->dims[0], g->C = xs->dims[1], g->H = xs->dims[2], g->W = xs->dims[3];
  g->O = ys->dims[1], g->OH = ys->dims[2], g->OW = ys->dims[3];
  g->KH = ws->dims[2], g->KW = ws->dims[3];
  g->sh = s->attr.i[0], g->sw = s->attr.i[1], g->ph = s->attr.i[2], g->pw = s->attr.i[3];
  g->dh = s->attr.i[4], g->dw = s->attr.i[5], g->G = s->attr.i[6];
  g->Cg = g->C / g->G, g->Og = g->O / g->G;
  g->CKK = g->Cg * g->KH * g->KW;
  g->OHW = g->OH * g->OW, g->HW = g->H * g->W;
  g->direct = g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
              g->OH == g->H && g->OW == g->W;
}

/* Image blocks (threads) for this step: one unless there are several
 * images and enough work. */
static int conv_blocks(const cgeo *g, int nthreads) {
  if (nthreads <= 1 || g->N <= 1 || g->N * g->O * g->OHW * g->CKK < ((int64_t)1 << 20)) return 1;
  return g->N < nthreads ? (int)g->N : nthreads;
}

/* Per block: a column buffer [CKK, OHW]; the weight gradient adds a
 * partial [O, CKK] per block when there are several. */
static size_t conv_ws(const asg_step *s, int nthreads) {
  cgeo g;
  geo_of(s, &g);
  int nb = conv_blocks(&g, nthreads);
  size_t n = g.direct ? 0 : (size_t)(g.CKK * g.OHW);
  if (s->op == ASG_OP_CONV2D_BWD_WEIGHT && nb > 1) n += (size_t)(g.O * g.CKK);
  return n * (size_t)nb * asg_dtype_size(s->out.dtype);
}

/* Range [lo, hi) of output positions o whose input o*s + off lies in [0, n). */
static void valid_range(int64_t n, int64_t on, int64_t s, int64_t off, int64_t *lo, int64_t *hi) {
  int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
  int64_t h = n - off <= 0 ? 0 : (n - off - 1) / s + 1;
  if (l > on) l = on;
  if (h > on) h = on;
  if (h < l) h = l;
  *lo = l, *hi = h;
}

#define DEF_CONV(SUF, T, GEMM)                                                                     \
  /* x: one image's group channels [Cg,H,W] -> col [CKK, OHW] */                                   \
  static void im2col_##SUF(const cgeo *g, const T *x, T *col) {                                    \
    for (int64_t c = 0; c < g->Cg; c++)                                                            \
      for (int64_t kh = 0; kh < g->KH; kh++)                                                       \
        for (int64_t kw = 0; kw < g->KW; kw++) {                                                   \
          T *row = col + ((c * g->KH + kh) * g->KW + kw) * g->OHW;                                 \
          int64_t offh = kh * g->dh - g->ph, offw = kw * g->dw - g->pw, hlo, hhi, wlo, whi;        \
          valid_range(g->H, g->OH, g->sh, offh, &hlo, &hhi);                                       \
          valid_range(g->W, g->OW, g->sw, offw, &wlo, &whi);                                       \
          for (int64_t oh = 0; oh < g->OH; oh++) {                                                 \
            T *r = row + oh * g->OW;                                                               \
            if (oh < hlo || oh >= hhi) {                                                           \
              memset(r, 0, sizeof(T) * (size_t)g->OW);                                             \
              continue;                                                                            \
            }                                                                                      \
            const T *xr = x + (c * g->H + oh * g->sh + offh) * g->W;                               \
            for (int64_t ow = 0; ow < wlo; ow++)                                                   \
              r[ow] = 0;                                                                           \
            if (g->sw == 1)                                                                        \
              memcpy(r + wlo, xr + (wlo + offw), sizeof(T) * (size_t)(whi - wlo));                 \
            else                                                                                   \
              for (int64_t ow = wlo; ow < whi; ow++)                                               \
                r[ow] = xr[ow * g->sw + offw];                                                     \
            for (int64_t ow = whi; ow < g->OW; ow++)                                               \
              r[ow] = 0;                                                                           \
          }                                                                                        \
        }                                                                                          \
  }                                                                                                \
  /* col [CKK, OHW] -> adds into one image's group channels [Cg,H,W] */                            \
  static void col2im_##SUF(const cgeo *g, const T *col, T *x) {                                    \
    for (int64_t c = 0; c < g->Cg; c++)                                                            \
      for (int64_t kh = 0; kh < g->KH; kh++)                                                       \
        for (int64_t kw = 0; kw < g->KW; kw++) {                                                   \
          const T *row = col + ((c * g->KH + kh) * g->KW + kw) * g->OHW;                           \
          int64_t offh = kh * g->dh - g->ph, offw = kw * g->dw - g->pw, hlo, hhi, wlo, whi;        \
          valid_range(g->H, g->OH, g->sh, offh, &hlo, &hhi);                                       \
          valid_range(g->W, g->OW, g->sw, offw, &wlo, &whi);                                       \
          for (int64_t oh = hlo; oh < hhi; oh++) {                                                 \
            const T *r = row + oh * g->OW;                                                         \
            T *xr = x + (c * g->H + oh * g->sh + offh) * g->W;                                     \
            for (int64_t ow = wlo; ow < whi; ow++)                                                 \
              xr[ow * g->sw + offw] += r[ow];                                                      \
          }                                                                                        \
        }                                                                                          \
  }                                                                                                \
  /* Image n (block t) of x [N,C,H,W], w [O,Cg,KH,KW] -> y [N,O,OH,OW]:                            \
   * y_ng [Og,OHW] = w_g [Og,CKK] col */                                                           \
  static void fwd_##SUF(const asg_cpu_call *c, const cgeo *g, int64_t n, int64_t t,                \
                        asg_cpu_pool *gp) {                                                        \
    const T *x = c->in[0], *w = c->in[1];                                                          \
    T *y = c->out;                                                                                 \
    for (int64_t gi = 0; gi < g->G; gi++) {                                                        \
      const T *xg = x + (n * g->C + gi * g->Cg) * g->HW, *col = xg;                                \
      if (!g->direct) {                                                                            \
        T *buf = (T *)c->ws + t * g->CKK * g->OHW;                                                 \
        im2col_##SUF(g, xg, buf);                                                                  \
        col = buf;                                                                                 \
      }                                                                                            \
      GEMM(false, false, g->Og, g->OHW, g->CKK, 1, w + gi * g->Og * g->CKK, g->CKK, col, g->OHW,   \
           0, y + (n * g->O + gi * g->Og) * g->OHW, g->OHW, gp);                                   \
    }                                                                                              \
  }                                                                                                \
  /* Image n (block t) of dy [N,O,OH,OW], w [O,Cg,KH,KW] -> dx [N,C,H,W] (also                     \
   * conv_transpose2d): col [CKK,OHW] = w_g^T dy_ng, scattered back by col2im */                   \
  static void bwd_input_##SUF(const asg_cpu_call *c, const cgeo *g, int64_t n, int64_t t,          \
                              asg_cpu_pool *gp) {                                                  \
    const T *dy = c->in[0], *w = c->in[1];                                                         \
    T *dx = c->out;                                                                                \
    for (int64_t gi = 0; gi < g->G; gi++) {                                                        \
      T *dxg = dx + (n * g->C + gi * g->Cg) * g->HW;                                               \
      T *col = g->direct ? dxg : (T *)c->ws + t * g->CKK * g->OHW;                                 \
      GEMM(true, false, g->CKK, g->OHW, g->Og, 1, w + gi * g->Og * g->CKK, g->CKK,                 \
           dy + (n * g->O + gi * g->Og) * g->OHW, g->OHW, 0, col, g->OHW, gp);                     \
      if (!g->direct) {                                                                            \
        memset(dxg, 0, sizeof(T) * (size_t)(g->Cg * g->HW));                                       \
        col2im_##SUF(g, col, dxg);                                                                 \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  /* Image n (block t) of dy [N,O,OH,OW], x [N,C,H,W] -> adds dy_ng col_ng^T into                  \
   * part [O,Cg,KH,KW], block t's partial of dw (dw itself when one block) */                      \
  static void bwd_weight_##SUF(const asg_cpu_call *c, const cgeo *g, int64_t n, int64_t t,         \
                               T *part, asg_cpu_pool *gp) {                                        \
    const T *dy = c->in[0], *x = c->in[1];                                                         \
    int64_t ncol = g->direct ? 0 : g->CKK * g->OHW;                                                \
    for (int64_t gi = 0; gi < g->G; gi++) {                                                        \
      const T *xg = x + (n * g->C + gi * g->Cg) * g->HW, *col = xg;                                \
      if (!g->direct) {                                                                            \
        T *buf = (T *)c->ws + t * ncol;                                                            \
        im2col_##SUF(g, xg, buf);                                                                  \
        col = buf;                                                                                 \
      }                                                                                            \
      GEMM(false, true, g->Og, g->CKK, g->OHW, 1, dy + (n * g->O + gi * g->Og) * g->OHW, g->OHW,   \
           col, g->OHW, 1, part + gi * g->Og * g->CKK, g->CKK, gp);                                \
    }                                                                                              \
  }                                                                                                \
  /* dw [i] = sum over blocks t in order of part [t, i], for i in [lo, hi) */                      \
  static void sum_parts_##SUF(const T *part, T *dw, int64_t nw, int nb, int64_t lo, int64_t hi) {  \
    for (int64_t i = lo; i < hi; i++) {                                                            \
      T s = part[i];                                                                               \
      for (int t = 1; t < nb; t++)                                                                 \
        s += part[t * nw + i];                                                                     \
      dw[i] = s;                                                                                   \
    }                                                                                              \
  }

DEF_CONV(f32, float, asg_cpu_sgemm)
DEF_CONV(f64, double, asg_cpu_dgemm)

/* A convolution step split into nb blocks of images. */
typedef struct conv_job {
  const asg_cpu_call *c;
  cgeo g;
  int nb;
  asg_cpu_pool *gemm_pool; /* threads for each GEMM: the program's with one block */
  void *part;              /* weight gradient partials [nb, O*CKK] (dw itself when nb = 1) */
  int64_t nw;              /* O*CKK */
} conv_job;

/* Blocks [lo, hi): each runs its images in order. */
static void conv_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const conv_job *j = ctx;
  const cgeo *g = &j->g;
  bool f32 = j->c->s->out.dtype == ASG_F32;
  for (int64_t t = lo; t < hi; t++)
    for (int64_t n = g->N * t / j->nb; n < g->N * (t + 1) / j->nb; n++)
      switch (j->c->s->op) {
      case ASG_OP_CONV2D:
        f32 ? fwd_f32(j->c, g, n, t, j->gemm_pool) : fwd_f64(j->c, g, n, t, j->gemm_pool);
        break;
      case ASG_OP_CONV2D_BWD_WEIGHT:
        if (f32)
          bwd_weight_f32(j->c, g, n, t, (float *)j->part + t * j->nw, j->gemm_pool);
        else
          bwd_weight_f64(j->c, g, n, t, (double *)j->part + t * j->nw, j->gemm_pool);
        break;
      default:
        f32 ? bwd_input_f32(j->c, g, n, t, j->gemm_pool)
            : bwd_input_f64(j->c, g, n, t, j->gemm_pool);
        break;
      }
}

static void sum_parts_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const conv_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F32)
    sum_parts_f32(j->part, j->c->out, j->nw, j->nb, lo, hi);
  else
    sum_parts_f64(j->part, j->c->out, j->nw, j->nb, lo, hi);
}

static asg_status conv_kernel(const asg_cpu_call *c) {
  conv_job j = {.c = c};
  geo_of(c->s, &j.g);
  bool f32 = c->s->out.dtype == ASG_F32;
  if (!f32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  j.nb = conv_blocks(&j.g, c->nthreads);
  j.gemm_pool = j.nb > 1 ? NULL : c->pool;
  if (c->s->op == ASG_OP_CONV2D_BWD_WEIGHT) {
    size_t es = f32 ? sizeof(float) : sizeof(double);
    int64_t ncol = j.g.direct ? 0 : j.g.CKK * j.g.OHW;
    j.nw = j.g.O * j.g.CKK;
    j.part = j.nb > 1 ? (char *)c->ws + (size_t)(j.nb * ncol) * es : c->out;
    memset(j.part, 0, es * (size_t)(j.nb * j.nw));
  }
  asg_cpu_parallel_for(c->pool, j.nb, j.nb, conv_range, &j);
  if (c->s->op == ASG_OP_CONV2D_BWD_WEIGHT && j.nb > 1)
    asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, j.nw * j.nb, j.nw), j.nw, sum_parts_range,
                         &j);
  return ASG_OK;
}

/* ---- pooling: every (n, c) plane is independent, so planes run in
 * parallel and each gradient plane is written by one thread. ---- */
typedef struct pgeo {
  int64_t planes, H, W, OH, OW, KH, KW, sh, sw, ph, pw;
} pgeo;

/* x [N,C,H,W] -> y [N,C,OH,OW]; for the BWD ops x is the output. */
static void pgeo_of(const asg_step *s, pgeo *p) {
  bool bwd = s->op == ASG_OP_MAXPOOL2D_BWD || s->op == ASG_OP_AVGPOOL2D_BWD ||
             s->op == ASG_OP_ADAPTIVE_AVGPOOL2D_BWD;
  const asg_shape *xs = bwd ? &s->out.shape : &s->in[0].shape;
  const asg_shape *ys = bwd ? &s->in[0].shape : &s->out.shape;
  p->planes = xs->dims[0] * xs->dims[1];
  p->H = xs->dims[2], p->W = xs->dims[3], p->OH = ys->dims[2], p->OW = ys->dims[3];
  p->KH = s->attr.i[0], p->KW = s->attr.i[1], p->sh = s->attr.i[2], p->sw = s->attr.i[3];
  p->ph = s->attr.i[4], p->pw = s->attr.i[5];
}

#define DEF_POOL(SUF, T)                                                                           \
  /* Flat index in the plane of the window's first maximum (-1: none). */                          \
  static int64_t argmax_##SUF(const pgeo *p, const T *x, int64_t oh, int64_t ow) {                 \
    int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw, bi = -1;                             \
    if (p->KH == 2 && p->KW == 2 && h0 >= 0 && w0 >= 0 && h0 + 1 < p->H && w0 + 1 < p->W) {        \
      /* the common 2x2 window inside the plane: same rule, no bound checks */                     \
      int64_t i0 = h0 * p->W + w0, idx[4] = {i0, i0 + 1, i0 + p->W, i0 + p->W + 1};                \
      T b = x[i0];                                                                                 \
      bi = i0;                                                                                     \
      for (int k = 1; k < 4; k++) {                                                                \
        T v = x[idx[k]];                                                                           \
        if (v > b || (v != v && b == b)) b = v, bi = idx[k];                                       \
      }                                                                                            \
      return bi;                                                                                   \
    }                                                                                              \
    T best = -INFINITY;                                                                            \
    for (int64_t h = h0 < 0 ? 0 : h0; h < h0 + p->KH && h < p->H; h++)                             \
      for (int64_t w = w0 < 0 ? 0 : w0; w < w0 + p->KW && w < p->W; w++) {                         \
        T v = x[h * p->W + w];                                                                     \
        if (bi < 0 || v > best || (v != v && best == best)) best = v, bi = h * p->W + w;           \
      }                                                                                            \
    return bi;                                                                                     \
  }                                                                                                \
  /* x [N,C,H,W] -> y [N,C,OH,OW] */                                                               \
  static void maxpool_##SUF(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {        \
    for (int64_t pl = lo; pl < hi; pl++) {                                                         \
      const T *x = (const T *)c->in[0] + pl * p->H * p->W;                                         \
      T *y = (T *)c->out + pl * p->OH * p->OW;                                                     \
      for (int64_t oh = 0; oh < p->OH; oh++)                                                       \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                                   \
          int64_t i = argmax_##SUF(p, x, oh, ow);                                                  \
          y[oh * p->OW + ow] = i < 0 ? (T)-INFINITY : x[i];                                        \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  /* dy [N,C,OH,OW], x [N,C,H,W] -> dx [N,C,H,W] */                                                \
  static void maxpool_bwd_##SUF(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {    \
    for (int64_t pl = lo; pl < hi; pl++) {                                                         \
      const T *x = (const T *)c->in[1] + pl * p->H * p->W;                                         \
      const T *dy = (const T *)c->in[0] + pl * p->OH * p->OW;                                      \
      T *dx = (T *)c->out + pl * p->H * p->W;                                                      \
      memset(dx, 0, sizeof(T) * (size_t)(p->H * p->W));                                            \
      for (int64_t oh = 0; oh < p->OH; oh++)                                                       \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                                   \
          int64_t i = argmax_##SUF(p, x, oh, ow);                                                  \
          if (i >= 0) dx[i] += dy[oh * p->OW + ow];                                                \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  /* x [N,C,H,W] -> y [N,C,OH,OW]; padding counts as zeros (divisor KH*KW) */                      \
  static void avgpool_##SUF(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {        \
    T inv = (T)(1.0 / (double)(p->KH * p->KW));                                                    \
    for (int64_t pl = lo; pl < hi; pl++) {                                                         \
      const T *x = (const T *)c->in[0] + pl * p->H * p->W;                                         \
      T *y = (T *)c->out + pl * p->OH * p->OW;                                                     \
      for (int64_t oh = 0; oh < p->OH; oh++)                                                       \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                                   \
          int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;                                \
          T s = 0;                                                                                 \
          for (int64_t h = h0 < 0 ? 0 : h0; h < h0 + p->KH && h < p->H; h++)                       \
            for (int64_t w = w0 < 0 ? 0 : w0; w < w0 + p->KW && w < p->W; w++)                     \
              s += x[h * p->W + w];                                                                \
          y[oh * p->OW + ow] = s * inv;                                                            \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  /* dy [N,C,OH,OW] -> dx [N,C,H,W] */                                                             \
  static void avgpool_bwd_##SUF(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {    \
    T inv = (T)(1.0 / (double)(p->KH * p->KW));                                                    \
    for (int64_t pl = lo; pl < hi; pl++) {                                                         \
      const T *dy = (const T *)c->in[0] + pl * p->OH * p->OW;                                      \
      T *dx = (T *)c->out + pl * p->H * p->W;                                                      \
      memset(dx, 0, sizeof(T) * (size_t)(p->H * p->W));                                            \
      for (int64_t oh = 0; oh < p->OH; oh++)                                                       \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                                   \
          int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;                                \
          T g = dy[oh * p->OW + ow] * inv;                                                         \
          for (int64_t h = h0 < 0 ? 0 : h0; h < h0 + p->KH && h < p->H; h++)                       \
            for (int64_t w = w0 < 0 ? 0 : w0; w < w0 + p->KW && w < p->W; w++)                     \
              dx[h * p->W + w] += g;                                                               \
        }                                                                                          \
    }                                                                                              \
  }                                                                                                \
  /* x [N,C,H,W] -> y [N,C,OH,OW], PyTorch bins */                                                 \
  static void adaptive_##SUF(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {       \
    for (int64_t pl = lo; pl < hi; pl++) {                                                         \
      const T *x = (const T *)c->in[0] + pl * p->H * p->W;                                         \
      T *y = (T *)c->out + pl * p->OH * p->OW;                                                     \
      for (int64_t oh = 0; oh < p->OH; oh++) {                                                     \
        int64_t hs = oh * p->H / p->OH, he = ((oh + 1) * p->H + p->OH - 1) / p->OH;                \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                                   \
          int64_t ws = ow * p->W / p->OW, we = ((ow + 1) * p->W + p->OW - 1) / p->OW;              \
          T s = 0;                                                                                 \
          for (int64_t h = hs; h < he; h++)                                                        \
            for (int64_t w = ws; w < we; w++)                                                      \
              s += x[h * p->W + w];                                                                \
          y[oh * p->OW + ow] = s / (T)((he - hs) * (we - ws));                                     \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }                                                                                                \
  /* dy [N,C,OH,OW] -> dx [N,C,H,W] */                                                             \
  static void adaptive_bwd_##SUF(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {   \
    for (int64_t pl = lo; pl < hi; pl++) {                                                         \
      const T *dy = (const T *)c->in[0] + pl * p->OH * p->OW;                                      \
      T *dx = (T *)c->out + pl * p->H * p->W;                                                      \
      memset(dx, 0, sizeof(T) * (size_t)(p->H * p->W));                                            \
      for (int64_t oh = 0; oh < p->OH; oh++) {                                                     \
        int64_t hs = oh * p->H / p->OH, he = ((oh + 1) * p->H + p->OH - 1) / p->OH;                \
        for (int64_t ow = 0; ow < p->OW; ow++) {                                                   \
          int64_t ws = ow * p->W / p->OW, we = ((ow + 1) * p->W + p->OW - 1) / p->OW;              \
          T g = dy[oh * p->OW + ow] / (T)((he - hs) * (we - ws));                                  \
          for (int64_t h = hs; h < he; h++)                                                        \
            for (int64_t w = ws; w < we; w++)                                                      \
              dx[h * p->W + w] += g;                                                               \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

DEF_POOL(f32, float)
DEF_POOL(f64, double)

/* ---- 2x2 max pooling with stride 2 and no padding (every window inside
 * the plane, none overlapping): the CNNs' pool, with straight loops over a
 * pair of input rows that the compiler vectorizes. Same rule as argmax_f32:
 * the first maximum in row-major window order, a NaN (the first) wins. */
static bool pool_is_2x2(const pgeo *p) {
  return p->KH == 2 && p->KW == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 &&
         2 * p->OH <= p->H && 2 * p->OW <= p->W;
}

/* The first maximum of (a, b) (a on ties), NaN-first: applied as a tree
 * over ((x00, x01), (x10, x11)) it picks the window element argmax_f32 picks. */
static inline float first_max(float a, float b) { return b > a || (b != b && a == a) ? b : a; }

/* planes [lo, hi) of x [N*C,H,W] -> y [N*C,OH,OW] */
static void maxpool2x2_f32(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  const int64_t W = p->W, OW = p->OW;
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *x = (const float *)c->in[0] + pl * p->H * W;
    float *y = (float *)c->out + pl * p->OH * OW;
    for (int64_t oh = 0; oh < p->OH; oh++) {
      const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
      float *yr = y + oh * OW;
      for (int64_t ow = 0; ow < OW; ow++)
        yr[ow] =
            first_max(first_max(r0[2 * ow], r0[2 * ow + 1]), first_max(r1[2 * ow], r1[2 * ow + 1]));
    }
  }
}

/* planes [lo, hi) of dy [N*C,OH,OW], x [N*C,H,W] -> dx [N*C,H,W]: each
 * window's gradient to its first maximum, zeros elsewhere */
static void maxpool2x2_bwd_f32(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  const int64_t W = p->W, OW = p->OW;
  const bool covered = 2 * p->OH == p->H && 2 * p->OW == W;
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *x = (const float *)c->in[1] + pl * p->H * W;
    const float *dy = (const float *)c->in[0] + pl * p->OH * OW;
    float *dx = (float *)c->out + pl * p->H * W;
    if (!covered) /* the odd last row or column, which no window reads */
      memset(dx, 0, sizeof(float) * (size_t)(p->H * W));
    for (int64_t oh = 0; oh < p->OH; oh++) {
      const float *r0 = x + 2 * oh * W, *r1 = r0 + W, *g = dy + oh * OW;
      float *d0 = dx + 2 * oh * W, *d1 = d0 + W;
      for (int64_t ow = 0; ow < OW; ow++) {
        float a = r0[2 * ow], b = r0[2 * ow + 1], e = r1[2 * ow], f = r1[2 * ow + 1];
        /* k: window position (0..3) of the first maximum, as argmax_f32 */
        float m = a;
        int k = 0;
        k = b > m || (b != b && m == m) ? 1 : k;
        m = k == 1 ? b : m;
        k = e > m || (e != e && m == m) ? 2 : k;
        m = k == 2 ? e : m;
        k = f > m || (f != f && m == m) ? 3 : k;
        float gv = g[ow];
        d0[2 * ow] = k == 0 ? gv : 0.0f;
        d0[2 * ow + 1] = k == 1 ? gv : 0.0f;
        d1[2 * ow] = k == 2 ? gv : 0.0f;
        d1[2 * ow + 1] = k == 3 ? gv : 0.0f;
      }
    }
  }
}

typedef struct pool_job {
  const asg_cpu_call *c;
  pgeo p;
  bool fast2x2; /* max pooling (either direction) on 2x2 windows, stride 2 */
} pool_job;

/* Planes [lo, hi) of the step. */
static void pool_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const pool_job *j = ctx;
  const asg_cpu_call *c = j->c;
  const pgeo *p = &j->p;
  bool f32 = c->s->out.dtype == ASG_F32;
  if (f32 && j->fast2x2) {
    if (c->s->op == ASG_OP_MAXPOOL2D)
      maxpool2x2_f32(c, p, lo, hi);
    else
      maxpool2x2_bwd_f32(c, p, lo, hi);
    return;
  }
  switch (c->s->op) {
  case ASG_OP_MAXPOOL2D: f32 ? maxpool_f32(c, p, lo, hi) : maxpool_f64(c, p, lo, hi); break;
  case ASG_OP_MAXPOOL2D_BWD:
    f32 ? maxpool_bwd_f32(c, p, lo, hi) : maxpool_bwd_f64(c, p, lo, hi);
    break;
  case ASG_OP_AVGPOOL2D: f32 ? avgpool_f32(c, p, lo, hi) : avgpool_f64(c, p, lo, hi); break;
  case ASG_OP_AVGPOOL2D_BWD:
    f32 ? avgpool_bwd_f32(c, p, lo, hi) : avgpool_bwd_f64(c, p, lo, hi);
    break;
  case ASG_OP_ADAPTIVE_AVGPOOL2D:
    f32 ? adaptive_f32(c, p, lo, hi) : adaptive_f64(c, p, lo, hi);
    break;
  default: f32 ? adaptive_bwd_f32(c, p, lo, hi) : adaptive_bwd_f64(c, p, lo, hi); break;
  }
}

static asg_status pool_kernel(const asg_cpu_call *c) {
  pool_job j = {.c = c};
  pgeo_of(c->s, &j.p);
  if (c->s->out.dtype != ASG_F32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  j.fast2x2 =
      (c->s->op == ASG_OP_MAXPOOL2D || c->s->op == ASG_OP_MAXPOOL2D_BWD) && pool_is_2x2(&j.p);
  int nt = asg_cpu_threads_for(c, j.p.planes * j.p.H * j.p.W, j.p.planes);
  asg_cpu_parallel_for(c->pool, nt, j.p.planes, pool_range, &j);
  return ASG_OK;
}

void asg_cpu_register_conv(asg_cpu_kernel *t) {
  static const asg_op convs[] = {ASG_OP_CONV2D, ASG_OP_CONV2D_BWD_INPUT, ASG_OP_CONV2D_BWD_WEIGHT,
                                 ASG_OP_CONV_TRANSPOSE2D};
  static const asg_op pools[] = {ASG_OP_MAXPOOL2D,          ASG_OP_MAXPOOL2D_BWD,
                                 ASG_OP_AVGPOOL2D,          ASG_OP_AVGPOOL2D_BWD,
                                 ASG_OP_ADAPTIVE_AVGPOOL2D, ASG_OP_ADAPTIVE_AVGPOOL2D_BWD};
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
    t[convs[i]].run = conv_kernel;
    t[convs[i]].ws = conv_ws;
  }
  for (size_t i = 0; i < sizeof pools / sizeof *pools; i++)
    t[pools[i]].run = pool_kernel;
}
