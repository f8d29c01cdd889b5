/* CPU kernels of pad, pad_bwd, upsample and upsample_bwd: the reference the
 * GPU kernels mirror (maps and gather order: runtime/resample.h; attributes:
 * src/ops/op_resample.c). Every element is written once by one thread and
 * gradients gather, so results do not depend on the thread count. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "runtime/resample.h"

/* Input coordinate read by output coordinate o of a padded dim (-1: the
 * constant value). */
static inline int64_t pad_src(int mode, int64_t o, int64_t before, int64_t in) {
  int64_t c = o - before;
  if (c >= 0 && c < in) return c;
  if (mode == ASG_PAD_CONSTANT) return -1;
  if (mode == ASG_PAD_REFLECT) return c < 0 ? -c : 2 * (in - 1) - c;
  return c < 0 ? 0 : in - 1;
}

/* The outputs of a padded dim that read input c, as up to 3 ranges
 * [lo, hi) in increasing order; returns how many. */
static int pad_readers(int mode, int64_t c, int64_t before, int64_t in, int64_t out, int64_t *lo,
                       int64_t *hi) {
  int64_t a[3], b[3];
  int k = 0, n = 0;
  if (mode == ASG_PAD_REPLICATE) { /* the edges take everything beyond them */
    a[k] = c == 0 ? 0 : c + before, b[k] = c == in - 1 ? out : c + before + 1, k++;
  } else {
    if (mode == ASG_PAD_REFLECT && c > 0) a[k] = before - c, b[k] = a[k] + 1, k++;
    a[k] = c + before, b[k] = a[k] + 1, k++;
    if (mode == ASG_PAD_REFLECT && c < in - 1)
      a[k] = before + 2 * (in - 1) - c, b[k] = a[k] + 1, k++;
  }
  for (int j = 0; j < k; j++) {
    int64_t l = a[j] < 0 ? 0 : a[j], h = b[j] > out ? out : b[j];
    if (l < h) lo[n] = l, hi[n] = h, n++;
  }
  return n;
}

/* PyTorch's 'nearest' source index, in float32. */
static inline int64_t near_src(float r, int64_t o, int64_t in) {
  int64_t s = (int64_t)floorf((float)o * r);
  return s < in - 1 ? s : in - 1;
}

/* The smallest o in [0, out] whose source is >= t (out if none). */
static int64_t near_first(float r, int64_t t, int64_t in, int64_t out) {
  if (t <= 0) return 0;
  if (t >= in) return out;
  double e = r > 0 ? ceil((double)t / r) : (double)out;
  int64_t o = e >= (double)out ? out : (int64_t)e;
  while (o > 0 && near_src(r, o - 1, in) >= t)
    o--;
  while (o < out && near_src(r, o, in) < t)
    o++;
  return o;
}

#define T float
#define SUF f32
#include "backends/cpu/cpu_resample_tmpl.h"
#define T double
#define SUF f64
#include "backends/cpu/cpu_resample_tmpl.h"

typedef struct rs_job {
  const asg_cpu_call *c;
  asg_pad_plan pad;
  asg_upsample_plan up;
} rs_job;

static void rs_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const rs_job *j = ctx;
  const asg_cpu_call *c = j->c;
  const bool f32 = c->s->out.dtype == ASG_F32;
  const void *in = c->in[0];
  void *out = c->out;
  const asg_upsample_plan *u = &j->up;
  switch (c->s->op) {
  case ASG_OP_PAD:
    f32 ? pad_rows_f32(&j->pad, in, out, lo, hi) : pad_rows_f64(&j->pad, in, out, lo, hi);
    break;
  case ASG_OP_PAD_BWD:
    f32 ? pad_bwd_rows_f32(&j->pad, in, out, lo, hi) : pad_bwd_rows_f64(&j->pad, in, out, lo, hi);
    break;
  case ASG_OP_UPSAMPLE:
    f32 ? up_rows_f32(u, in, out, lo, hi, u->rf[0], u->rf[1])
        : up_rows_f64(u, in, out, lo, hi, u->rd[0], u->rd[1]);
    break;
  default:
    f32 ? up_bwd_rows_f32(u, in, out, lo, hi, u->rf[0], u->rf[1])
        : up_bwd_rows_f64(u, in, out, lo, hi, u->rd[0], u->rd[1]);
    break;
  }
}

static asg_status resample_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  if (s->out.dtype != ASG_F32 && s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->out.dtype));
  rs_job j = {.c = c};
  int64_t rows, work = asg_shape_numel(s->out.shape);
  if (work <= 0) return ASG_OK;
  switch (s->op) {
  case ASG_OP_PAD:
  case ASG_OP_PAD_BWD:
    asg__pad_plan(&j.pad, s);
    rows = s->op == ASG_OP_PAD ? j.pad.n_out / j.pad.out[j.pad.nd - 1]
                               : j.pad.n_in / j.pad.in[j.pad.nd - 1];
    break;
  default:
    asg__upsample_plan(&j.up, s);
    rows = j.up.planes * (s->op == ASG_OP_UPSAMPLE ? j.up.OH : j.up.H);
    break;
  }
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, work, rows), rows, rs_range, &j);
  return ASG_OK;
}

void asg_cpu_register_resample(asg_cpu_kernel *t) {
  static const asg_op ops[] = {ASG_OP_PAD, ASG_OP_PAD_BWD, ASG_OP_UPSAMPLE, ASG_OP_UPSAMPLE_BWD};
  for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
    t[ops[i]].run = resample_kernel;
}
