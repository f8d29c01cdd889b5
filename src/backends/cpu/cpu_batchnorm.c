/* CPU batch norm with the batch's statistics: BATCHNORM, BATCHNORM_BWD_X,
 * BATCHNORM_BWD_GAMMA (src/ops/op_nn.c), for x [N, C, S]:
 *   y      = (x - mean) * rstd * gamma + beta
 *   dx     = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))
 *   dgamma = sum(dy * xhat)
 * with xhat = (x - mean) * rstd, means per channel over its N * S values,
 * rstd = 1 / sqrt(var + eps) (biased var, two passes). Each pass streams
 * the tensors in memory order, threads splitting the rows (a channel's
 * values are N runs of S, far apart: walking them per channel defeats the
 * prefetchers); per-row partial sums go to the workspace and are added per
 * channel in row order. Per type: cpu_batchnorm_tmpl.h; the f32 passes are
 * compiled for each SIMD level (cpu_simd.h), the same bits at every level. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"

enum { BN_SUM, BN_SQ, BN_Y, BN_SQDY, BN_DX };
enum { BN_CHUNK = 1024 }; /* elements a run's T lanes sum before going to double */

typedef struct bn_job {
  const asg_cpu_call *c;
  int64_t N, C, S;
  int pass;
  double *p0, *p1, *p2, *p3;              /* per-row partial sums [N * C] */
  double *mean, *rstd, *k, *mdy, *cx, *e; /* per channel [C]; e = sum(x - (T)mean) */
} bn_job;

#define SUF f32
#define T float
#include "backends/cpu/cpu_batchnorm_tmpl.h"
#define SUF f64
#define T double
#include "backends/cpu/cpu_batchnorm_tmpl.h"

#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void bn_rows_f32_avx512(const bn_job *j, int64_t lo, int64_t hi) {
  bn_rows_f32(j, lo, hi);
}
ASG_TARGET_AVX2 static void bn_rows_f32_avx2(const bn_job *j, int64_t lo, int64_t hi) {
  bn_rows_f32(j, lo, hi);
}
#endif

static void bn_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const bn_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F64) {
    bn_rows_f64(j, lo, hi);
    return;
  }
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512) {
    bn_rows_f32_avx512(j, lo, hi);
    return;
  }
  if (level == ASG_SIMD_AVX2) {
    bn_rows_f32_avx2(j, lo, hi);
    return;
  }
#endif
  bn_rows_f32(j, lo, hi);
}

/* One pass over every row; then, per channel, the row partials p0..p3 added
 * in row order into out[0..3] (those not NULL). */
static void bn_pass(bn_job *j, int pass, double *out0, double *out1, double *out2, double *out3) {
  const int64_t rows = j->N * j->C;
  j->pass = pass;
  asg_cpu_parallel_for(j->c->pool, asg_cpu_threads_for(j->c, rows * j->S, rows), rows, bn_range, j);
  double *const out[4] = {out0, out1, out2, out3};
  const double *const part[4] = {j->p0, j->p1, j->p2, j->p3};
  for (int k = 0; k < 4; k++)
    for (int64_t ch = 0; out[k] && ch < j->C; ch++) {
      double a = 0;
      for (int64_t n = 0; n < j->N; n++)
        a += part[k][n * j->C + ch];
      out[k][ch] = a;
    }
}

static void bn_dims(const asg_step *s, int64_t *N, int64_t *C, int64_t *S) {
  asg_shape xs = s->in[s->op == ASG_OP_BATCHNORM ? 0 : 1].shape; /* [N, C, ...] */
  *N = xs.dims[0], *C = xs.dims[1], *S = 1;
  for (int d = 2; d < xs.ndim; d++)
    *S *= xs.dims[d];
}

static double gamma_at(const asg_cpu_call *c, int i, int64_t ch) {
  return asg_cpu_load(c->in[i], c->s->out.dtype, ch);
}

static asg_status batchnorm_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  if (s->out.dtype != ASG_F32 && s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  bn_job j = {.c = c};
  bn_dims(s, &j.N, &j.C, &j.S);
  const int64_t C = j.C;
  const double M = (double)(j.N * j.S), eps = s->attr.f[0];
  j.p0 = c->ws, j.p1 = j.p0 + j.N * C, j.p2 = j.p1 + j.N * C, j.p3 = j.p2 + j.N * C;
  j.mean = j.p3 + j.N * C;
  j.rstd = j.mean + C, j.k = j.rstd + C, j.mdy = j.k + C, j.cx = j.mdy + C, j.e = j.cx + C;
  memset(j.mean, 0, sizeof(double) * (size_t)C); /* read (not used) by the first pass */
  bn_pass(&j, BN_SUM, j.mean, NULL, NULL, NULL);
  for (int64_t ch = 0; ch < C; ch++)
    j.mean[ch] /= M;
  /* deviations from the mean as the passes round it (m = (T)mean): their sum
   * e takes that rounding out of the variance and of sum(dy * (x - mean));
   * the backward ops take sum(dy), sum(dy * (x - m)) in the same pass */
  const bool fwd = s->op == ASG_OP_BATCHNORM;
  if (fwd)
    bn_pass(&j, BN_SQ, j.rstd, j.e, NULL, NULL);
  else
    bn_pass(&j, BN_SQDY, j.rstd, j.e, j.mdy, j.cx);
  for (int64_t ch = 0; ch < C; ch++) {
    const double q = j.rstd[ch] - j.e[ch] * j.e[ch] / M, var = (q > 0 ? q : 0) / M;
    j.rstd[ch] = 1.0 / sqrt(var + eps);
    for (int a = 0; fwd && a < s->n_aux; a++) /* the batch mean and (biased) variance */
      asg_cpu_store(c->aux[a], s->out.dtype, ch, s->aux[a].op == ASG_OP_MEAN ? j.mean[ch] : var);
  }
  if (fwd) {
    for (int64_t ch = 0; ch < C; ch++)
      j.k[ch] = j.rstd[ch] * gamma_at(c, 1, ch);
    bn_pass(&j, BN_Y, NULL, NULL, NULL, NULL);
    return ASG_OK;
  }
  for (int64_t ch = 0; ch < C; ch++)
    j.cx[ch] -= j.mdy[ch] * j.e[ch] / M; /* sum(dy * (x - mean)) */
  if (s->op == ASG_OP_BATCHNORM_BWD_GAMMA) {
    for (int64_t ch = 0; ch < C; ch++)
      asg_cpu_store(c->out, s->out.dtype, ch, j.cx[ch] * j.rstd[ch]);
    return ASG_OK;
  }
  /* batchnorm_bwd_x's further outputs: the gamma gradient as its own op
   * computes it, the beta gradient sum(dy) */
  for (int a = 0; a < s->n_aux; a++)
    for (int64_t ch = 0; ch < C; ch++)
      asg_cpu_store(c->aux[a], s->out.dtype, ch,
                    s->aux[a].op == ASG_OP_BATCHNORM_BWD_GAMMA ? j.cx[ch] * j.rstd[ch] : j.mdy[ch]);
  for (int64_t ch = 0; ch < C; ch++) {
    j.k[ch] = gamma_at(c, 2, ch) * j.rstd[ch];
    j.mdy[ch] /= M;
    j.cx[ch] = j.rstd[ch] * j.rstd[ch] * j.cx[ch] / M;
  }
  bn_pass(&j, BN_DX, NULL, NULL, NULL, NULL);
  return ASG_OK;
}

static size_t batchnorm_ws(const asg_step *s, int nthreads) {
  (void)nthreads;
  int64_t N, C, S;
  bn_dims(s, &N, &C, &S);
  return (size_t)(4 * N * C + 6 * C) * sizeof(double);
}

/* the further outputs the passes' sums give (src/passes/fuse_stats.c): the
 * forward's batch mean and variance, dx's gamma and beta gradients */
static bool bn_fwd_aux(asg_op a) { return a == ASG_OP_MEAN || a == ASG_OP_VAR; }
static bool bn_bwd_x_aux(asg_op a) { return a == ASG_OP_BATCHNORM_BWD_GAMMA || a == ASG_OP_SUM; }

void asg_cpu_register_batchnorm(asg_cpu_kernel *t) {
  const asg_op ops[3] = {ASG_OP_BATCHNORM, ASG_OP_BATCHNORM_BWD_X, ASG_OP_BATCHNORM_BWD_GAMMA};
  for (int i = 0; i < 3; i++) {
    t[ops[i]].run = batchnorm_kernel;
    t[ops[i]].ws = batchnorm_ws;
  }
  t[ASG_OP_BATCHNORM].writes_aux = bn_fwd_aux;
  t[ASG_OP_BATCHNORM_BWD_X].writes_aux = bn_bwd_x_aux;
}
