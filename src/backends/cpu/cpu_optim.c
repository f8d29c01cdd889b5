/* CPU kernels of the fused optimizer updates (formulas and their exact order
 * of operations: src/ops/op_optim.c). Each expression is written as the
 * separate ops computed it, one rounding per operation (-ffp-contract=off),
 * so the fused step gives bit-identical results. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"

#define CHUNK 16384

/* moment_f32/_f64 and param_f32/_f64 from one template (cpu_optim_tmpl.h) */
#define T float
#define SUF f32
#define SQRT sqrtf
#include "backends/cpu/cpu_optim_tmpl.h"
#define T double
#define SUF f64
#define SQRT sqrt
#include "backends/cpu/cpu_optim_tmpl.h"

/* Chunks [lo, hi) of ADAM_MOMENT(2): out [total] from m, g [total]. Compiled
 * again for AVX2 and AVX-512 below (the baseline SSE2 loops took ~40% of the
 * step's optimizer time of an MLP's 0.67M parameters). */
ASG_ALWAYS_INLINE void moment_body(const asg_cpu_call *c, int64_t lo, int64_t hi) {
  const asg_step *s = c->s;
  bool second = s->op == ASG_OP_ADAM_MOMENT2;
  int64_t total = asg_shape_numel(s->out.shape);
  for (int64_t u = lo; u < hi; u++) {
    int64_t i0 = u * CHUNK, n = total - i0 < CHUNK ? total - i0 : CHUNK;
    if (s->out.dtype == ASG_F32)
      moment_f32(second, &s->attr, (float *)c->out + i0, (const float *)c->in[0] + i0,
                 (const float *)c->in[1] + i0, n);
    else
      moment_f64(second, &s->attr, (double *)c->out + i0, (const double *)c->in[0] + i0,
                 (const double *)c->in[1] + i0, n);
  }
}

/* The per-step scalars in the scalars' dtype S, then rounded to the
 * parameter's (as the former scalar ops and their casts did). */
static void param_scalars(const asg_cpu_call *c, double *step, double *sbc2, double *dec) {
  const asg_step *s = c->s;
  double wd = s->attr.f[1];
  if (s->in[3].dtype == ASG_F32) {
    float lr = *(const float *)c->in[3], b1 = *(const float *)c->in[4];
    float b2 = *(const float *)c->in[5];
    *step = lr / b1;
    *sbc2 = sqrtf(b2);
    *dec = 1.0f - lr * (float)wd;
  } else {
    double lr = *(const double *)c->in[3], b1 = *(const double *)c->in[4];
    double b2 = *(const double *)c->in[5];
    *step = lr / b1;
    *sbc2 = sqrt(b2);
    *dec = 1.0 - lr * wd;
  }
}

typedef struct param_job {
  const asg_cpu_call *c;
  double step, sbc2, dec;
} param_job;

/* Chunks [lo, hi) of ADAM_PARAM: out [total] from p, m, v [total]. */
ASG_ALWAYS_INLINE void param_body(const param_job *j, int64_t lo, int64_t hi) {
  const asg_cpu_call *c = j->c;
  const asg_step *s = c->s;
  const double step = j->step, sbc2 = j->sbc2, dec = j->dec;
  bool decay = s->attr.f[1] != 0;
  int64_t total = asg_shape_numel(s->out.shape);
  for (int64_t u = lo; u < hi; u++) {
    int64_t i0 = u * CHUNK, n = total - i0 < CHUNK ? total - i0 : CHUNK;
    if (s->out.dtype == ASG_F32)
      param_f32((float *)c->out + i0, (const float *)c->in[0] + i0, (const float *)c->in[1] + i0,
                (const float *)c->in[2] + i0, (float)step, (float)sbc2, (float)s->attr.f[0], decay,
                (float)dec, n);
    else
      param_f64((double *)c->out + i0, (const double *)c->in[0] + i0, (const double *)c->in[1] + i0,
                (const double *)c->in[2] + i0, step, sbc2, s->attr.f[0], decay, dec, n);
  }
}

static void moment_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  moment_body(ctx, lo, hi);
}
static void param_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  param_body(ctx, lo, hi);
}
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void moment_range_avx512(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  moment_body(ctx, lo, hi);
}
ASG_TARGET_AVX2 static void moment_range_avx2(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  moment_body(ctx, lo, hi);
}
ASG_TARGET_AVX512 static void param_range_avx512(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  param_body(ctx, lo, hi);
}
ASG_TARGET_AVX2 static void param_range_avx2(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  param_body(ctx, lo, hi);
}
#endif

static asg_status moment_kernel(const asg_cpu_call *c) {
  int64_t total = asg_shape_numel(c->s->out.shape);
  int64_t units = (total + CHUNK - 1) / CHUNK;
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, total, units), units,
                       ASG_CPU_PICK(moment_range), (void *)c);
  return ASG_OK;
}

static asg_status param_kernel(const asg_cpu_call *c) {
  param_job j = {.c = c};
  param_scalars(c, &j.step, &j.sbc2, &j.dec);
  int64_t total = asg_shape_numel(c->s->out.shape);
  int64_t units = (total + CHUNK - 1) / CHUNK;
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, total, units), units,
                       ASG_CPU_PICK(param_range), &j);
  return ASG_OK;
}

void asg_cpu_register_optim(asg_cpu_kernel *t) {
  t[ASG_OP_ADAM_MOMENT].run = moment_kernel;
  t[ASG_OP_ADAM_MOMENT2].run = moment_kernel;
  t[ASG_OP_ADAM_PARAM].run = param_kernel;
}
