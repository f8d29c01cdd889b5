/* CPU kernels of the nn family: softmax, log_softmax, layernorm (+ its two
 * backward ops), rmsnorm (the cross-entropy: cpu_ce.c).
 * Sums accumulate in double for both f32 and f64; rows run in parallel and
 * every sum has a fixed order, so results do not depend on the threads. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"

/* ---- shared helpers ---- */
static int64_t prod_dims(asg_shape s, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; d++)
    n *= s.dims[d];
  return n;
}

static int threads_for(const asg_cpu_call *c, int64_t work, int64_t units) {
  return asg_cpu_threads_for(c, work, units);
}

/* ---- softmax / log_softmax ----
 * x [outer, n, inner] (axis = n) -> y same shape. One "line" is the n
 * elements of one (outer, inner) pair, stride `inner`; the last axis is the
 * contiguous case (stride 1, inlined with a constant stride). Per type:
 * cpu_softmax_tmpl.h. */
#define SUF f32
#define T float
#define EXP asg_expf_fast
#include "backends/cpu/cpu_softmax_tmpl.h"
#define SUF f64
#define T double
#define EXP exp
#include "backends/cpu/cpu_softmax_tmpl.h"

/* ---- f32 rows over ASG_LANES lanes (cpu_simd.h): element j of a row
 * goes to lane j % ASG_LANES, and the lanes' partial results are combined
 * in lane order, so every SIMD level gives the same bits. ---- */
enum { L = ASG_LANES };

ASG_ALWAYS_INLINE double lanes_total(double *acc) { return asg_lanes_sum_f64(acc); }

/* One contiguous row x [n] -> y [n]: softmax, or log_softmax when lg. */
ASG_ALWAYS_INLINE void sm_row_f32(const float *x, float *y, int64_t n, bool lg) {
  const float m = asg_row_max_f32(x, n);
  int64_t j;
  /* y = e^(x - m) as a plain loop (it vectorizes); the sum in lanes */
  for (j = 0; j < n; j++)
    y[j] = asg_expf_fast(x[j] - m);
  double acc[L] = {0};
  for (j = 0; j + L <= n; j += L)
    for (int l = 0; l < L; l++)
      acc[l] += (double)y[j + l];
  for (int64_t t = j; t < n; t++)
    acc[t - j] += (double)y[t];
  if (!lg) {
    float inv = (float)(1.0 / lanes_total(acc));
    for (j = 0; j < n; j++)
      y[j] *= inv;
  } else { /* (x - m) - log(sum): exact for large x */
    double lgs = log(lanes_total(acc));
    for (j = 0; j < n; j++)
      y[j] = (float)(((double)x[j] - (double)m) - lgs);
  }
}

/* Rows [lo, hi) of x [R, n] -> y [R, n]. */
ASG_ALWAYS_INLINE void sm_rows_f32(const float *x, float *y, int64_t n, bool lg, int64_t lo,
                                   int64_t hi) {
  for (int64_t r = lo; r < hi; r++)
    sm_row_f32(x + r * n, y + r * n, n, lg);
}

/* Mean and 1/std of one row xr [C] in double (two passes, as ln_stats). */
ASG_ALWAYS_INLINE void ln_row_stats_f32(const float *xr, int64_t C, double eps, double *mean,
                                        double *rstd) {
  double acc[L] = {0};
  int64_t j = 0;
  for (; j + L <= C; j += L)
    for (int l = 0; l < L; l++)
      acc[l] += (double)xr[j + l];
  for (int64_t t = j; t < C; t++)
    acc[t - j] += (double)xr[t];
  double m = lanes_total(acc) / (double)C;
  for (int l = 0; l < L; l++)
    acc[l] = 0;
  for (j = 0; j + L <= C; j += L)
    for (int l = 0; l < L; l++) {
      double d = (double)xr[j + l] - m;
      acc[l] += d * d;
    }
  for (int64_t t = j; t < C; t++) {
    double d = (double)xr[t] - m;
    acc[t - j] += d * d;
  }
  *mean = m;
  *rstd = 1.0 / sqrt(lanes_total(acc) / (double)C + eps);
}

/* Rows [lo, hi) of x [R,C], gamma [C], beta [C] -> y [R,C]. */
ASG_ALWAYS_INLINE void ln_fwd_rows_f32(const float *x, const float *gm, const float *bt, float *y,
                                       int64_t C, double eps, int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    double mean, rstd;
    ln_row_stats_f32(xr, C, eps, &mean, &rstd);
    for (int64_t j = 0; j < C; j++)
      yr[j] = (float)(((double)xr[j] - mean) * rstd * (double)gm[j] + (double)bt[j]);
  }
}

/* Rows [lo, hi) of dy [R,C], x [R,C], gamma [C] -> dx [R,C] (as ln_bwd_x_f64);
 * pg / pb (may be NULL): += those rows' dy * xhat and dy, in row order. */
ASG_ALWAYS_INLINE void ln_bwd_x_rows_f32(const float *dy, const float *x, const float *gm,
                                         float *dx, int64_t C, double eps, int64_t lo, int64_t hi,
                                         double *pg, double *pb) {
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = x + r * C, *dyr = dy + r * C;
    float *dxr = dx + r * C;
    double mean, rstd, ag[L] = {0}, agx[L] = {0};
    ln_row_stats_f32(xr, C, eps, &mean, &rstd);
    int64_t j = 0;
    for (; j + L <= C; j += L)
      for (int l = 0; l < L; l++) {
        double g = (double)dyr[j + l] * (double)gm[j + l];
        ag[l] += g;
        agx[l] += g * (((double)xr[j + l] - mean) * rstd);
      }
    for (int64_t t = j; t < C; t++) {
      double g = (double)dyr[t] * (double)gm[t];
      ag[t - j] += g;
      agx[t - j] += g * (((double)xr[t] - mean) * rstd);
    }
    double sg = lanes_total(ag) / (double)C, sgx = lanes_total(agx) / (double)C;
    for (j = 0; j < C; j++) {
      double xh = ((double)xr[j] - mean) * rstd;
      dxr[j] = (float)(rstd * ((double)dyr[j] * (double)gm[j] - sg - xh * sgx));
    }
    if (pg)
      for (j = 0; j < C; j++)
        pg[j] += (double)dyr[j] * (((double)xr[j] - mean) * rstd);
    if (pb)
      for (j = 0; j < C; j++)
        pb[j] += (double)dyr[j];
  }
}

/* The three f32 row kernels compiled per SIMD level. */
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void sm_rows_f32_avx512(const float *x, float *y, int64_t n, bool lg,
                                                 int64_t lo, int64_t hi) {
  sm_rows_f32(x, y, n, lg, lo, hi);
}
ASG_TARGET_AVX2 static void sm_rows_f32_avx2(const float *x, float *y, int64_t n, bool lg,
                                             int64_t lo, int64_t hi) {
  sm_rows_f32(x, y, n, lg, lo, hi);
}
ASG_TARGET_AVX512 static void ln_fwd_rows_f32_avx512(const float *x, const float *gm,
                                                     const float *bt, float *y, int64_t C,
                                                     double eps, int64_t lo, int64_t hi) {
  ln_fwd_rows_f32(x, gm, bt, y, C, eps, lo, hi);
}
ASG_TARGET_AVX2 static void ln_fwd_rows_f32_avx2(const float *x, const float *gm, const float *bt,
                                                 float *y, int64_t C, double eps, int64_t lo,
                                                 int64_t hi) {
  ln_fwd_rows_f32(x, gm, bt, y, C, eps, lo, hi);
}
ASG_TARGET_AVX512 static void ln_bwd_x_rows_f32_avx512(const float *dy, const float *x,
                                                       const float *gm, float *dx, int64_t C,
                                                       double eps, int64_t lo, int64_t hi,
                                                       double *pg, double *pb) {
  ln_bwd_x_rows_f32(dy, x, gm, dx, C, eps, lo, hi, pg, pb);
}
ASG_TARGET_AVX2 static void ln_bwd_x_rows_f32_avx2(const float *dy, const float *x, const float *gm,
                                                   float *dx, int64_t C, double eps, int64_t lo,
                                                   int64_t hi, double *pg, double *pb) {
  ln_bwd_x_rows_f32(dy, x, gm, dx, C, eps, lo, hi, pg, pb);
}
#endif

static void sm_rows_f32_any(const float *x, float *y, int64_t n, bool lg, int64_t lo, int64_t hi) {
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    sm_rows_f32_avx512(x, y, n, lg, lo, hi);
  else if (level == ASG_SIMD_AVX2)
    sm_rows_f32_avx2(x, y, n, lg, lo, hi);
  else
#endif
    sm_rows_f32(x, y, n, lg, lo, hi);
}

static void ln_fwd_f32(const asg_cpu_call *c, int64_t C, int64_t lo, int64_t hi) {
  const float *x = c->in[0], *gm = c->in[1], *bt = c->in[2];
  double eps = c->s->attr.f[0];
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    ln_fwd_rows_f32_avx512(x, gm, bt, c->out, C, eps, lo, hi);
  else if (level == ASG_SIMD_AVX2)
    ln_fwd_rows_f32_avx2(x, gm, bt, c->out, C, eps, lo, hi);
  else
#endif
    ln_fwd_rows_f32(x, gm, bt, c->out, C, eps, lo, hi);
}

/* pg / pb (may be NULL): += the rows' dy * xhat and dy (ln_bwd_with_aux). */
static void ln_bwd_x_f32(const asg_cpu_call *c, int64_t C, int64_t lo, int64_t hi, double *pg,
                         double *pb) {
  const float *dy = c->in[0], *x = c->in[1], *gm = c->in[2];
  double eps = c->s->attr.f[0];
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    ln_bwd_x_rows_f32_avx512(dy, x, gm, c->out, C, eps, lo, hi, pg, pb);
  else if (level == ASG_SIMD_AVX2)
    ln_bwd_x_rows_f32_avx2(dy, x, gm, c->out, C, eps, lo, hi, pg, pb);
  else
#endif
    ln_bwd_x_rows_f32(dy, x, gm, c->out, C, eps, lo, hi, pg, pb);
}

/* The sizes of a row-wise step, shared by its threads: [R, C] for
 * layernorm and cross-entropy, lines of n (stride inner) for softmax. */
typedef struct nn_job {
  const asg_cpu_call *c;
  int64_t R, C;
} nn_job;

static void softmax_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const nn_job *j = ctx;
  if (j->c->s->in[0].dtype == ASG_F32 && j->C == 1) /* contiguous rows: vectorized */
    sm_rows_f32_any(j->c->in[0], j->c->out, j->R, j->c->s->op == ASG_OP_LOG_SOFTMAX, lo, hi);
  else if (j->c->s->in[0].dtype == ASG_F32)
    softmax_f32(j->c, j->R, j->C, lo, hi);
  else
    softmax_f64(j->c, j->R, j->C, lo, hi);
}

static asg_status softmax_kernel(const asg_cpu_call *c) {
  asg_shape s = c->s->in[0].shape;
  int a = (int)c->s->attr.i[0];
  int64_t outer = prod_dims(s, 0, a), n = s.dims[a], inner = prod_dims(s, a + 1, s.ndim);
  if (c->s->in[0].dtype != ASG_F32 && c->s->in[0].dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  if (outer * n * inner == 0) return ASG_OK;
  nn_job j = {c, n, inner}; /* R: line length, C: stride */
  int64_t lines = outer * inner;
  asg_cpu_parallel_for(c->pool, threads_for(c, lines * n, lines), lines, softmax_range, &j);
  return ASG_OK;
}

/* ---- layernorm ----
 * x [R, C] (all leading dims flattened), gamma/beta [C]. Statistics are
 * recomputed by the backward ops rather than saved (no extra outputs).
 * dgamma [C] = sum_r dy * xhat: row statistics go to the workspace (2R
 * doubles) first; then column blocks run in parallel, each summing its rows
 * in order (deterministic, no atomics). Per type: cpu_layernorm_tmpl.h. */

/* Columns per task of the dgamma reduction: wide enough for contiguous
 * reads, small enough to keep the accumulators in registers/L1. */
#define LN_COLS 64
/* Rows per task of layernorm_bwd_x with further outputs (the gamma and beta
 * gradients, src/passes/fuse_stats.c): each block's dx rows, then its
 * partial sums while those rows are in cache; the partials are added in
 * block order (bits independent of the thread count). */
#define LN_RB 32

#define SUF f32
#define T float
#include "backends/cpu/cpu_layernorm_tmpl.h"
#define SUF f64
#define T double
#include "backends/cpu/cpu_layernorm_tmpl.h"

/* Rows [lo, hi) of x [R,C], gamma [C], beta [C] -> y [R,C] (f64; f32 runs
 * in lanes: ln_fwd_f32). */
static void ln_fwd_f64(const asg_cpu_call *c, int64_t C, int64_t lo, int64_t hi) {
  const double *x = c->in[0], *gm = c->in[1], *bt = c->in[2];
  double *y = c->out;
  double eps = c->s->attr.f[0];
  for (int64_t r = lo; r < hi; r++) {
    const double *xr = x + r * C;
    double *yr = y + r * C;
    double mean, rstd;
    ln_stats_f64(xr, C, eps, &mean, &rstd);
    for (int64_t j = 0; j < C; j++)
      yr[j] = (xr[j] - mean) * rstd * gm[j] + bt[j];
  }
}

/* Rows [r0, r1) of layernorm_bwd_x's further outputs (f64): the rows'
 * sums of dy * xhat into pg [C], of dy into pb [C], in row order; either
 * may be NULL. */
static void ln_bwd_aux_block_f64(const asg_cpu_call *c, int64_t C, int64_t r0, int64_t r1,
                                 double *pg, double *pb) {
  const double *dy = c->in[0], *x = c->in[1];
  const double eps = c->s->attr.f[0];
  if (pg) memset(pg, 0, sizeof(double) * (size_t)C);
  if (pb) memset(pb, 0, sizeof(double) * (size_t)C);
  for (int64_t r = r0; r < r1; r++) {
    const double *xr = x + r * C, *dyr = dy + r * C;
    if (pg) {
      double mean, rstd;
      ln_stats_f64(xr, C, eps, &mean, &rstd);
      for (int64_t j = 0; j < C; j++)
        pg[j] += dyr[j] * ((xr[j] - mean) * rstd);
    }
    if (pb)
      for (int64_t j = 0; j < C; j++)
        pb[j] += dyr[j];
  }
}

/* Rows [lo, hi) of dy [R,C], x [R,C], gamma [C] -> dx [R,C] (f64; f32:
 * ln_bwd_x_f32): dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
 * g = dy * gamma. */
static void ln_bwd_x_f64(const asg_cpu_call *c, int64_t C, int64_t lo, int64_t hi) {
  const double *dy = c->in[0], *x = c->in[1], *gm = c->in[2];
  double *dx = c->out;
  double eps = c->s->attr.f[0];
  for (int64_t r = lo; r < hi; r++) {
    const double *xr = x + r * C, *dyr = dy + r * C;
    double *dxr = dx + r * C;
    double mean, rstd, sg = 0, sgx = 0;
    ln_stats_f64(xr, C, eps, &mean, &rstd);
    for (int64_t j = 0; j < C; j++) {
      double g = dyr[j] * gm[j];
      sg += g;
      sgx += g * (xr[j] - mean) * rstd;
    }
    sg /= (double)C;
    sgx /= (double)C;
    for (int64_t j = 0; j < C; j++) {
      double xh = (xr[j] - mean) * rstd;
      dxr[j] = rstd * (dyr[j] * gm[j] - sg - xh * sgx);
    }
  }
}

/* x is input 0 for LAYERNORM, input 1 for the backward ops. */
static void ln_dims(const asg_step *s, int64_t *R, int64_t *C) {
  asg_shape sh = s->in[s->op == ASG_OP_LAYERNORM ? 0 : 1].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = prod_dims(sh, 0, sh.ndim - 1);
}

static void ln_fwd_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const nn_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F32)
    ln_fwd_f32(j->c, j->C, lo, hi);
  else
    ln_fwd_f64(j->c, j->C, lo, hi);
}
static void ln_bwd_x_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const nn_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F32)
    ln_bwd_x_f32(j->c, j->C, lo, hi, NULL, NULL);
  else
    ln_bwd_x_f64(j->c, j->C, lo, hi);
}
static void ln_bwd_g_stats_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const nn_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F32)
    ln_bwd_g_stats_f32(j->c, j->R, j->C, lo, hi);
  else
    ln_bwd_g_stats_f64(j->c, j->R, j->C, lo, hi);
}
static void ln_bwd_g_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const nn_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F32)
    ln_bwd_g_f32(j->c, j->R, j->C, lo, hi);
  else
    ln_bwd_g_f64(j->c, j->R, j->C, lo, hi);
}

/* layernorm_bwd_x with further outputs: which of them is the gamma
 * gradient (kg) and the beta sum (kb), -1: none. */
typedef struct ln_aux_job {
  const asg_cpu_call *c;
  int64_t R, C;
  int kg, kb;
  double *part; /* [blocks][2][C] */
} ln_aux_job;

static void ln_bwd_aux_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const ln_aux_job *j = ctx;
  const bool f32 = j->c->s->out.dtype == ASG_F32;
  for (int64_t b = lo; b < hi; b++) {
    const int64_t r0 = b * LN_RB, r1 = r0 + LN_RB < j->R ? r0 + LN_RB : j->R;
    double *pg = j->kg >= 0 ? j->part + b * 2 * j->C : NULL;
    double *pb = j->kb >= 0 ? j->part + (b * 2 + 1) * j->C : NULL;
    if (f32) { /* the partial sums from the dx pass's own statistics */
      if (pg) memset(pg, 0, sizeof(double) * (size_t)j->C);
      if (pb) memset(pb, 0, sizeof(double) * (size_t)j->C);
      ln_bwd_x_f32(j->c, j->C, r0, r1, pg, pb);
    } else {
      ln_bwd_x_f64(j->c, j->C, r0, r1);
      ln_bwd_aux_block_f64(j->c, j->C, r0, r1, pg, pb);
    }
  }
}

/* dx [R,C] and the gamma / beta gradients [C] in one pass over dy and x. */
static void ln_bwd_with_aux(const asg_cpu_call *c, int64_t R, int64_t C) {
  ln_aux_job j = {c, R, C, -1, -1, c->ws};
  for (int k = 0; k < c->s->n_aux; k++)
    if (c->s->aux[k].op == ASG_OP_LAYERNORM_BWD_GAMMA)
      j.kg = k;
    else if (c->s->aux[k].op == ASG_OP_SUM)
      j.kb = k;
  const int64_t nb = (R + LN_RB - 1) / LN_RB;
  asg_cpu_parallel_for(c->pool, threads_for(c, R * C, nb), nb, ln_bwd_aux_range, &j);
  for (int w = 0; w < 2; w++) {
    const int k = w == 0 ? j.kg : j.kb;
    if (k < 0) continue;
    for (int64_t col = 0; col < C; col++) {
      double acc = 0;
      for (int64_t b = 0; b < nb; b++)
        acc += j.part[(b * 2 + w) * C + col];
      if (c->s->out.dtype == ASG_F32)
        ((float *)c->aux[k])[col] = (float)acc;
      else
        ((double *)c->aux[k])[col] = acc;
    }
  }
}

static asg_status layernorm_kernel(const asg_cpu_call *c) {
  int64_t R, C;
  ln_dims(c->s, &R, &C);
  bool f32 = c->s->out.dtype == ASG_F32;
  if (c->s->out.dtype != ASG_F32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  if (C == 0) return ASG_OK;
  if (R == 0) { /* dgamma (and a dx step's further outputs) of an empty batch are zero */
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    if (c->s->op == ASG_OP_LAYERNORM_BWD_GAMMA) memset(c->out, 0, es * (size_t)C);
    for (int k = 0; k < c->s->n_aux; k++)
      memset(c->aux[k], 0, es * (size_t)C);
    return ASG_OK;
  }
  nn_job j = {c, R, C};
  int nt = threads_for(c, R * C, R);
  switch (c->s->op) {
  case ASG_OP_LAYERNORM: asg_cpu_parallel_for(c->pool, nt, R, ln_fwd_range, &j); break;
  case ASG_OP_LAYERNORM_BWD_X:
    if (c->s->n_aux)
      ln_bwd_with_aux(c, R, C);
    else
      asg_cpu_parallel_for(c->pool, nt, R, ln_bwd_x_range, &j);
    break;
  default: {
    asg_cpu_parallel_for(c->pool, nt, R, ln_bwd_g_stats_range, &j);
    int64_t nb = (C + LN_COLS - 1) / LN_COLS;
    asg_cpu_parallel_for(c->pool, threads_for(c, R * C, nb), nb, ln_bwd_g_range, &j);
    break;
  }
  }
  return ASG_OK;
}

static size_t ln_bwd_x_ws(const asg_step *s, int nthreads) {
  (void)nthreads;
  int64_t R, C;
  ln_dims(s, &R, &C);
  return s->n_aux ? (size_t)((R + LN_RB - 1) / LN_RB) * 2 * (size_t)C * sizeof(double) : 0;
}

static size_t ln_bwd_g_ws(const asg_step *s, int nthreads) {
  (void)nthreads;
  int64_t R, C;
  ln_dims(s, &R, &C);
  return (size_t)R * 2 * sizeof(double);
}

/* ---- rmsnorm ----
 * x [R, C] (all leading dims flattened), weight [C] -> y [R, C]:
 * y = x * rstd * weight, rstd = 1 / sqrt(mean_j x^2 + eps) of each row, the
 * sum in double and in column order (one row per task: thread-count
 * independent). Its gradient is made of generic ops (grad_nn.c). */

/* Rows [lo, hi) of x [R,C], w [C] -> y [R,C], f32. */
static void rms_rows_f32(const float *x, const float *w, float *y, int64_t C, double eps,
                         int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    double q = 0;
    for (int64_t j = 0; j < C; j++)
      q += (double)xr[j] * (double)xr[j];
    double rstd = 1.0 / sqrt(q / (double)C + eps);
    for (int64_t j = 0; j < C; j++)
      yr[j] = (float)((double)xr[j] * rstd * (double)w[j]);
  }
}

/* Rows [lo, hi) of x [R,C], w [C] -> y [R,C], f64. */
static void rms_rows_f64(const double *x, const double *w, double *y, int64_t C, double eps,
                         int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; r++) {
    const double *xr = x + r * C;
    double *yr = y + r * C;
    double q = 0;
    for (int64_t j = 0; j < C; j++)
      q += xr[j] * xr[j];
    double rstd = 1.0 / sqrt(q / (double)C + eps);
    for (int64_t j = 0; j < C; j++)
      yr[j] = xr[j] * rstd * w[j];
  }
}

static void rms_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const nn_job *j = ctx;
  const asg_cpu_call *c = j->c;
  double eps = c->s->attr.f[0];
  if (c->s->out.dtype == ASG_F32)
    rms_rows_f32(c->in[0], c->in[1], c->out, j->C, eps, lo, hi);
  else
    rms_rows_f64(c->in[0], c->in[1], c->out, j->C, eps, lo, hi);
}

static asg_status rmsnorm_kernel(const asg_cpu_call *c) {
  asg_shape sh = c->s->in[0].shape;
  int64_t C = sh.dims[sh.ndim - 1], R = prod_dims(sh, 0, sh.ndim - 1);
  if (c->s->out.dtype != ASG_F32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  if (R == 0 || C == 0) return ASG_OK;
  nn_job j = {c, R, C};
  asg_cpu_parallel_for(c->pool, threads_for(c, R * C, R), R, rms_range, &j);
  return ASG_OK;
}

/* layernorm_bwd_x's one pass also sums the gamma and beta gradients
 * (src/passes/fuse_stats.c) */
static bool ln_bwd_x_aux(asg_op a) { return a == ASG_OP_LAYERNORM_BWD_GAMMA || a == ASG_OP_SUM; }

void asg_cpu_register_nn(asg_cpu_kernel *t) {
  t[ASG_OP_SOFTMAX].run = softmax_kernel;
  t[ASG_OP_LOG_SOFTMAX].run = softmax_kernel;
  t[ASG_OP_LAYERNORM].run = layernorm_kernel;
  t[ASG_OP_LAYERNORM_BWD_X].run = layernorm_kernel;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].run = layernorm_kernel;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].ws = ln_bwd_g_ws;
  t[ASG_OP_LAYERNORM_BWD_X].ws = ln_bwd_x_ws;
  t[ASG_OP_LAYERNORM_BWD_X].writes_aux = ln_bwd_x_aux;
  t[ASG_OP_RMSNORM].run = rmsnorm_kernel;
}
