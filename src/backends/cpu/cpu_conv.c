/* CPU kernels of the convolutions: conv2d forward, its input and weight
 * gradients, and conv_transpose2d (pooling: cpu_pooling.c).
 *
 * f32 convolutions of stride 1 (up to 1152 taps a group) run the direct
 * kernels, without im2col: cpu_conv_direct.c for the forward, and for the
 * input gradient and conv_transpose2d as the forward of dy with the
 * flipped, transposed weights (transposed_geo), cpu_conv_direct_bw.c for
 * the weight gradient (from 64 taps). The others are im2col + GEMM per
 * image and group (cpu_conv_tmpl.h). With several threads the images are
 * split into nt = min(threads, N) fixed contiguous blocks, one per thread,
 * each with its own buffers in the workspace, and the GEMMs are called from
 * inside the parallel loop, single-threaded (single images of a small CNN
 * are too small for a threaded GEMM to pay off). With one image or one
 * thread the images run in order and each GEMM is split over the threads
 * instead. conv2d_bias_act (made by the fusion pass, src/passes/fuse_conv.c)
 * adds the bias and applies the ReLU to each image right after it.
 * The im2col weight gradient sums WEIGHT_BLOCKS fixed blocks of images into
 * partial buffers, then adds the partials in block order; the direct one
 * has a fixed order per weight: the result depends only on the shapes,
 * never on the threads or timing. Attribute layout: src/ops/op_conv.c. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_conv.h"

static void geo_of(const asg_step *s, cgeo *g) {
  const asg_shape *xs, *ws, *ys;
  switch (s->op) {
  case ASG_OP_CONV2D:
  case ASG_OP_CONV2D_BIAS_ACT:
    xs = &s->in[0].shape, ws = &s->in[1].shape, ys = &s->out.shape;
    break;
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

/* Image blocks for this step: one unless there are several images and
 * enough work; then one per thread, except for the weight gradient, whose
 * blocks are partial sums: WEIGHT_BLOCKS of them whatever the threads, so
 * that the result does not depend on the threads. */
#define WEIGHT_BLOCKS 8
static int conv_blocks(const asg_step *s, const cgeo *g, int nthreads) {
  if (g->N <= 1 || g->N * g->O * g->OHW * g->CKK < ((int64_t)1 << 20)) return 1;
  if (s->op == ASG_OP_CONV2D_BWD_WEIGHT) return g->N < WEIGHT_BLOCKS ? (int)g->N : WEIGHT_BLOCKS;
  if (nthreads <= 1) return 1;
  return g->N < nthreads ? (int)g->N : nthreads;
}

/* Threads that run the blocks, each with its buffers. */
static int block_threads(int nb, int nthreads) { return nb < nthreads ? nb : nthreads; }

/* The conv whose forward direct kernel runs the input gradient (and
 * conv_transpose2d) of stride-1 conv g: dy [N,O,OH,OW] -> dx [N,C,H,W]
 * with the weights flipped and transposed, padded by (KH-1)dh - ph (false
 * when that is negative). */
static bool transposed_geo(const cgeo *g, cgeo *t) {
  *t = *g;
  t->C = g->O, t->H = g->OH, t->W = g->OW, t->O = g->C, t->OH = g->H, t->OW = g->W;
  t->ph = (g->KH - 1) * g->dh - g->ph, t->pw = (g->KW - 1) * g->dw - g->pw;
  t->Cg = g->Og, t->Og = g->Cg, t->CKK = g->Og * g->KH * g->KW;
  t->OHW = g->HW, t->HW = g->OHW, t->direct = false;
  return g->sh == 1 && g->sw == 1 && t->ph >= 0 && t->pw >= 0;
}

/* Whether the f32 step runs the direct kernels (cpu_conv_direct.c), and
 * the geometry they see (dg): g itself, or for an input gradient the
 * transposed conv. */
static bool use_direct(const asg_step *s, const cgeo *g, cgeo *dg) {
  if (s->out.dtype != ASG_F32) return false;
  *dg = *g;
  if (s->op == ASG_OP_CONV2D_BWD_INPUT || s->op == ASG_OP_CONV_TRANSPOSE2D)
    if (!transposed_geo(g, dg)) return false;
  /* the weight gradient copies dy transposed: with few taps the copy costs
   * more than the products (1->32 channels 3x3 measured 3x slower) */
  if (s->op == ASG_OP_CONV2D_BWD_WEIGHT && g->CKK < 64) return false;
  return asg_cpu_conv_direct_ok(dg);
}

/* Elements of one block's buffers. */
static int64_t block_ws(const asg_step *s, const cgeo *g) {
  cgeo dg;
  if (use_direct(s, g, &dg))
    return s->op == ASG_OP_CONV2D_BWD_WEIGHT ? 0 : asg_cpu_conv_direct_ws(&dg);
  return g->direct ? 0 : g->CKK * g->OHW;
}

/* Per thread its block buffers; the weight gradient adds a partial [O, CKK]
 * per block when there are several, the direct kernel its packed weights
 * (the direct weight gradient: its own workspace). */
static size_t conv_ws(const asg_step *s, int nthreads) {
  cgeo g, dg;
  geo_of(s, &g);
  if (use_direct(s, &g, &dg)) {
    if (s->op == ASG_OP_CONV2D_BWD_WEIGHT)
      return (size_t)asg_cpu_conv_direct_bw_ws(&g) * sizeof(float);
    return (size_t)(asg_cpu_conv_direct_ws(&dg) *
                        block_threads(conv_blocks(s, &dg, nthreads), nthreads) +
                    asg_cpu_conv_direct_wpack(&dg)) *
           sizeof(float);
  }
  int nb = conv_blocks(s, &g, nthreads);
  size_t n = (size_t)block_ws(s, &g) * (size_t)block_threads(nb, nthreads);
  if (s->op == ASG_OP_CONV2D_BWD_WEIGHT && nb > 1) n += (size_t)(nb * g.O * g.CKK);
  return n * asg_dtype_size(s->out.dtype);
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

/* im2col/col2im, fwd, bwd_input, bwd_weight, sum_parts per type */
#define T float
#define SUF f32
#define GEMM asg_cpu_sgemm
#include "backends/cpu/cpu_conv_tmpl.h"
#define T double
#define SUF f64
#define GEMM asg_cpu_dgemm
#include "backends/cpu/cpu_conv_tmpl.h"

/* A convolution step split into nb blocks of images. */
typedef struct conv_job {
  const asg_cpu_call *c;
  cgeo g;
  int nb;
  bool direct_fwd;         /* the direct forward kernel (also for input gradients) */
  int64_t bws;             /* elements of one block's buffers */
  const float *wpack;      /* the direct kernel's packed weights */
  asg_cpu_pool *gemm_pool; /* threads for each GEMM: the program's with one block */
  void *part;              /* weight gradient partials [nb, O*CKK] (dw itself when nb = 1) */
  int64_t nw;              /* O*CKK */
} conv_job;

/* Blocks [lo, hi): each runs its images in order, in thread tid's
 * buffers. */
static void conv_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  const conv_job *j = ctx;
  const cgeo *g = &j->g;
  const asg_cpu_call *c = j->c;
  bool f32 = c->s->out.dtype == ASG_F32;
  void *buf = c->ws
                  ? (char *)c->ws + (size_t)(tid * j->bws) * (f32 ? sizeof(float) : sizeof(double))
                  : NULL; /* no workspace: no buffers */
  for (int64_t t = lo; t < hi; t++) {
    for (int64_t n = g->N * t / j->nb; n < g->N * (t + 1) / j->nb; n++) {
      if (j->direct_fwd) {
        const bool fused = c->s->op == ASG_OP_CONV2D_BIAS_ACT;
        asg_cpu_conv_direct_image(g, c->in[0], j->wpack, c->out, n, buf, fused ? c->in[2] : NULL,
                                  fused ? (int)c->s->attr.i[9] : 0);
        continue;
      }
      switch (c->s->op) {
      case ASG_OP_CONV2D:
      case ASG_OP_CONV2D_BIAS_ACT:
        f32 ? fwd_f32(c, g, n, buf, j->gemm_pool) : fwd_f64(c, g, n, buf, j->gemm_pool);
        break;
      case ASG_OP_CONV2D_BWD_WEIGHT:
        if (f32)
          bwd_weight_f32(c, g, n, buf, (float *)j->part + t * j->nw, j->gemm_pool);
        else
          bwd_weight_f64(c, g, n, buf, (double *)j->part + t * j->nw, j->gemm_pool);
        break;
      default:
        f32 ? bwd_input_f32(c, g, n, buf, j->gemm_pool) : bwd_input_f64(c, g, n, buf, j->gemm_pool);
        break;
      }
    }
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
  cgeo g;
  geo_of(c->s, &g);
  bool f32 = c->s->out.dtype == ASG_F32;
  if (!f32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  j.direct_fwd = use_direct(c->s, &g, &j.g);
  if (j.direct_fwd && c->s->op == ASG_OP_CONV2D_BWD_WEIGHT) {
    asg_cpu_conv_direct_bw(&g, c->in[1], c->in[0], c->out, c->ws, c->pool, c->nthreads);
    return ASG_OK;
  }
  if (!j.direct_fwd) j.g = g;
  size_t es = f32 ? sizeof(float) : sizeof(double);
  j.nb = conv_blocks(c->s, &j.g, c->nthreads);
  const int nt = block_threads(j.nb, c->nthreads);
  j.bws = block_ws(c->s, &g);
  j.gemm_pool = j.nb > 1 ? NULL : c->pool;
  /* past the threads' buffers (no workspace at all: NULL, and nothing is put there) */
  void *after = c->ws ? (char *)c->ws + (size_t)(nt * j.bws) * es : NULL;
  if (j.direct_fwd) { /* a forward, or an input gradient as the transposed forward */
    asg_cpu_conv_direct_pack(
        &j.g, c->in[1], c->s->op != ASG_OP_CONV2D && c->s->op != ASG_OP_CONV2D_BIAS_ACT, after);
    j.wpack = after;
  }
  if (c->s->op == ASG_OP_CONV2D_BWD_WEIGHT) {
    j.nw = j.g.O * j.g.CKK;
    j.part = j.nb > 1 ? after : c->out;
    memset(j.part, 0, es * (size_t)(j.nb * j.nw));
  }
  asg_cpu_parallel_for(c->pool, nt, j.nb, conv_range, &j);
  if (c->s->op == ASG_OP_CONV2D_BWD_WEIGHT && j.nb > 1)
    asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, j.nw * j.nb, j.nw), j.nw, sum_parts_range,
                         &j);
  return ASG_OK;
}

void asg_cpu_register_conv(asg_cpu_kernel *t) {
  static const asg_op convs[] = {ASG_OP_CONV2D, ASG_OP_CONV2D_BIAS_ACT, ASG_OP_CONV2D_BWD_INPUT,
                                 ASG_OP_CONV2D_BWD_WEIGHT, ASG_OP_CONV_TRANSPOSE2D};
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
    t[convs[i]].run = conv_kernel;
    t[convs[i]].ws = conv_ws;
  }
}
