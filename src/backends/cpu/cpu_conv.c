/* CPU kernels of the convolutions: conv2d forward, its input and weight
 * gradients, and conv_transpose2d (pooling: cpu_pooling.c).
 *
 * Convolutions are im2col + GEMM per image and group (cpu_conv_tmpl.h),
 * except the f32 stride-1 forward with few input channels, which runs the
 * direct kernel of cpu_conv_direct.c. With several threads the images are
 * split into nt = min(threads, N) fixed contiguous blocks, one per thread,
 * each with its own buffers in the workspace, and the GEMMs are called from
 * inside the parallel loop, single-threaded (single images of a small CNN
 * are too small for a threaded GEMM to pay off). With one image or one
 * thread the images run in order and each GEMM is split over the threads
 * instead. conv2d_bias_act (made by the fusion pass, src/passes/fuse_conv.c)
 * adds the bias and applies the ReLU to each image right after it.
 * The weight gradient sums each block into its own partial buffer, then adds
 * the partials in block order: the result depends only on the shapes and
 * the program's thread count, never on timing. Attribute layout:
 * src/ops/op_conv.c. */
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

/* Image blocks (threads) for this step: one unless there are several
 * images and enough work. */
static int conv_blocks(const cgeo *g, int nthreads) {
  if (nthreads <= 1 || g->N <= 1 || g->N * g->O * g->OHW * g->CKK < ((int64_t)1 << 20)) return 1;
  return g->N < nthreads ? (int)g->N : nthreads;
}

/* The f32 forward that runs the direct kernel. */
static bool use_direct(const asg_step *s, const cgeo *g) {
  return (s->op == ASG_OP_CONV2D || s->op == ASG_OP_CONV2D_BIAS_ACT) && s->out.dtype == ASG_F32 &&
         asg_cpu_conv_direct_ok(g);
}

/* Elements of one block's buffers. */
static int64_t block_ws(const asg_step *s, const cgeo *g) {
  if (use_direct(s, g)) return asg_cpu_conv_direct_ws(g);
  return g->direct ? 0 : g->CKK * g->OHW;
}

/* Per block its buffers; the weight gradient adds a partial [O, CKK] per
 * block when there are several, the direct kernel its packed weights. */
static size_t conv_ws(const asg_step *s, int nthreads) {
  cgeo g;
  geo_of(s, &g);
  int nb = conv_blocks(&g, nthreads);
  size_t n = (size_t)block_ws(s, &g) * (size_t)nb;
  if (s->op == ASG_OP_CONV2D_BWD_WEIGHT && nb > 1) n += (size_t)(nb * g.O * g.CKK);
  if (use_direct(s, &g)) n += (size_t)asg_cpu_conv_direct_wpack(&g);
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
  bool direct_fwd;         /* the direct kernel (cpu_conv_direct.c) */
  int64_t bws;             /* elements of one block's buffers */
  const float *wpack;      /* the direct kernel's packed weights */
  asg_cpu_pool *gemm_pool; /* threads for each GEMM: the program's with one block */
  void *part;              /* weight gradient partials [nb, O*CKK] (dw itself when nb = 1) */
  int64_t nw;              /* O*CKK */
} conv_job;

/* Blocks [lo, hi): each runs its images in order. */
static void conv_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const conv_job *j = ctx;
  const cgeo *g = &j->g;
  const asg_cpu_call *c = j->c;
  bool f32 = c->s->out.dtype == ASG_F32;
  for (int64_t t = lo; t < hi; t++) {
    void *buf = (char *)c->ws + (size_t)(t * j->bws) * (f32 ? sizeof(float) : sizeof(double));
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
  geo_of(c->s, &j.g);
  bool f32 = c->s->out.dtype == ASG_F32;
  if (!f32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  size_t es = f32 ? sizeof(float) : sizeof(double);
  j.nb = conv_blocks(&j.g, c->nthreads);
  j.bws = block_ws(c->s, &j.g);
  j.gemm_pool = j.nb > 1 ? NULL : c->pool;
  void *after = (char *)c->ws + (size_t)(j.nb * j.bws) * es; /* past the blocks' buffers */
  j.direct_fwd = use_direct(c->s, &j.g);
  if (j.direct_fwd) {
    asg_cpu_conv_direct_pack(&j.g, c->in[1], after);
    j.wpack = after;
  }
  if (c->s->op == ASG_OP_CONV2D_BWD_WEIGHT) {
    j.nw = j.g.O * j.g.CKK;
    j.part = j.nb > 1 ? after : c->out;
    memset(j.part, 0, es * (size_t)(j.nb * j.nw));
  }
  asg_cpu_parallel_for(c->pool, j.nb, j.nb, conv_range, &j);
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
