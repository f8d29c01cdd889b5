/* CPU kernels of the softmax cross-entropy and its backward op.
 *
 * logits [R, C], labels [R] (i32/i64) -> loss scalar: the mean over the
 * counted rows of (1-ls) (lse - x[label]) + ls (lse - mean_c x) (NaN when no
 * row counts, as PyTorch; the gradient is then zero). Row losses go to the
 * workspace and are summed in row order. Row kernels per type:
 * cpu_ce_tmpl.h; f32 rows are compiled again per SIMD level. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"

enum { L = ASG_LANES };

/* The labels of a step and its ignore_index. */
typedef struct ce_labels {
  const void *p;
  bool i32;
  int64_t ignore;
} ce_labels;

static inline int64_t ce_label(const ce_labels *lb, int64_t r) {
  return lb->i32 ? (int64_t)((const int32_t *)lb->p)[r] : ((const int64_t *)lb->p)[r];
}

/* A row takes part in the loss when its label is a class index; ignored and
 * out-of-range labels are left out (and never used to index). Out-of-range
 * ones are an error unless the program is unchecked (cpu_backend.c scans
 * the labels first). */
static inline bool ce_label_ok(const ce_labels *lb, int64_t l, int64_t C) {
  return l != lb->ignore && l >= 0 && l < C;
}

ASG_ALWAYS_INLINE double lanes_total(double *acc) { return asg_lanes_sum_f64(acc); }

#define SUF f32
#define T float
#define EXP asg_expf_fast
#include "backends/cpu/cpu_ce_tmpl.h"
#define SUF f64
#define T double
#define EXP exp
#include "backends/cpu/cpu_ce_tmpl.h"

#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void ce_fwd_rows_f32_avx512(const float *x, const ce_labels *lb, int64_t C,
                                                     double ls, double *row, int64_t lo,
                                                     int64_t hi) {
  ce_fwd_rows_f32(x, lb, C, ls, row, lo, hi);
}
ASG_TARGET_AVX2 static void ce_fwd_rows_f32_avx2(const float *x, const ce_labels *lb, int64_t C,
                                                 double ls, double *row, int64_t lo, int64_t hi) {
  ce_fwd_rows_f32(x, lb, C, ls, row, lo, hi);
}
ASG_TARGET_AVX512 static void ce_bwd_rows_f32_avx512(const float *x, const ce_labels *lb, int64_t C,
                                                     double ls, double scale, float *dx, int64_t lo,
                                                     int64_t hi) {
  ce_bwd_rows_f32(x, lb, C, ls, scale, dx, lo, hi);
}
ASG_TARGET_AVX2 static void ce_bwd_rows_f32_avx2(const float *x, const ce_labels *lb, int64_t C,
                                                 double ls, double scale, float *dx, int64_t lo,
                                                 int64_t hi) {
  ce_bwd_rows_f32(x, lb, C, ls, scale, dx, lo, hi);
}
#endif

typedef struct ce_job {
  const asg_cpu_call *c;
  ce_labels lb;
  int64_t C;
  double ls, scale; /* label smoothing; backward: dloss / count */
} ce_job;

static void ce_fwd_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const ce_job *j = ctx;
  const void *x = j->c->in[0];
  double *row = j->c->ws;
  if (j->c->s->in[0].dtype == ASG_F64) {
    ce_fwd_rows_f64(x, &j->lb, j->C, j->ls, row, lo, hi);
    return;
  }
#ifdef ASG_SIMD_X86
  const int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    ce_fwd_rows_f32_avx512(x, &j->lb, j->C, j->ls, row, lo, hi);
  else if (level == ASG_SIMD_AVX2)
    ce_fwd_rows_f32_avx2(x, &j->lb, j->C, j->ls, row, lo, hi);
  else
#endif
    ce_fwd_rows_f32(x, &j->lb, j->C, j->ls, row, lo, hi);
}

static void ce_bwd_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const ce_job *j = ctx;
  const void *x = j->c->in[0];
  void *dx = j->c->out;
  if (j->c->s->in[0].dtype == ASG_F64) {
    ce_bwd_rows_f64(x, &j->lb, j->C, j->ls, j->scale, dx, lo, hi);
    return;
  }
#ifdef ASG_SIMD_X86
  const int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    ce_bwd_rows_f32_avx512(x, &j->lb, j->C, j->ls, j->scale, dx, lo, hi);
  else if (level == ASG_SIMD_AVX2)
    ce_bwd_rows_f32_avx2(x, &j->lb, j->C, j->ls, j->scale, dx, lo, hi);
  else
#endif
    ce_bwd_rows_f32(x, &j->lb, j->C, j->ls, j->scale, dx, lo, hi);
}

/* Rows whose label counts. */
static int64_t ce_count(const ce_labels *lb, int64_t R, int64_t C) {
  int64_t n = 0;
  for (int64_t r = 0; r < R; r++)
    n += ce_label_ok(lb, ce_label(lb, r), C);
  return n;
}

static void ce_dims(const asg_step *s, int64_t *R, int64_t *C) {
  const asg_shape sh = s->in[0].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = asg_shape_numel(sh) / (*C > 0 ? *C : 1);
}

static asg_status ce_kernel(const asg_cpu_call *c) {
  int64_t R, C;
  ce_dims(c->s, &R, &C);
  const asg_dtype dt = c->s->in[0].dtype, ldt = c->s->in[1].dtype;
  if ((dt != ASG_F32 && dt != ASG_F64) || (ldt != ASG_I32 && ldt != ASG_I64))
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  const bool fwd = c->s->op == ASG_OP_SOFTMAX_CE;
  if (R == 0 || C == 0) { /* nothing counted: loss NaN (as an empty mean), no gradient */
    if (fwd) asg_cpu_store(c->out, dt, 0, NAN);
    return ASG_OK;
  }
  ce_job j = {c, {c->in[1], ldt == ASG_I32, c->s->attr.i[0]}, C, c->s->attr.f[0], 0};
  const int64_t count = ce_count(&j.lb, R, C);
  const int nt = asg_cpu_threads_for(c, R * C, R);
  if (fwd) {
    asg_cpu_parallel_for(c->pool, nt, R, ce_fwd_range, &j);
    const double *row = c->ws;
    double total = 0;
    for (int64_t r = 0; r < R; r++) /* in row order */
      total += row[r];
    asg_cpu_store(c->out, dt, 0,
                  count ? total / (double)count : NAN); /* no row: NaN (0/0), as PyTorch */
  } else {
    j.scale = count ? asg_cpu_load(c->in[2], dt, 0) / (double)count : 0.0;
    asg_cpu_parallel_for(c->pool, nt, R, ce_bwd_range, &j);
  }
  return ASG_OK;
}

static size_t ce_fwd_ws(const asg_step *s, int nthreads) {
  (void)nthreads;
  int64_t R, C;
  ce_dims(s, &R, &C);
  return (size_t)R * sizeof(double);
}

void asg_cpu_register_ce(asg_cpu_kernel *t) {
  t[ASG_OP_SOFTMAX_CE].run = ce_kernel;
  t[ASG_OP_SOFTMAX_CE].ws = ce_fwd_ws;
  t[ASG_OP_SOFTMAX_CE_BWD].run = ce_kernel;
}
