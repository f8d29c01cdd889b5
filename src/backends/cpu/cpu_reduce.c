/* CPU reductions over any axis set: sum, mean, max, min, var, argmax.
 * Input dims are coalesced into runs of kept and reduced axes
 * (asg__reduce_plan, runtime/layout.h); each output element (parallel)
 * walks its reduced elements, innermost run last. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"
#include "runtime/layout.h"

/* Input offset of output o (its first reduced element). */
static int64_t kept_offset(const asg_reduce_plan *p, int64_t o) {
  int64_t off = 0;
  for (int d = p->nk - 1; d >= 0; d--) {
    off += (o % p->kd[d]) * p->ks[d];
    o /= p->kd[d];
  }
  return off;
}

/* Offset of run r of the reduced set (all reduced dims but the innermost). */
static inline int64_t run_offset(const asg_reduce_plan *p, int64_t r) {
  int64_t off = 0;
  for (int d = p->nr - 2; d >= 0; d--) {
    off += (r % p->rd[d]) * p->rs[d];
    r /= p->rd[d];
  }
  return off;
}

/* the reduction kernels per type (cpu_reduce_tmpl.h) */
#define SUF f32
#define T float
#define ACC double
#define IS_FLOAT 1
#include "backends/cpu/cpu_reduce_tmpl.h"
#define SUF f64
#define T double
#define ACC double
#define IS_FLOAT 1
#include "backends/cpu/cpu_reduce_tmpl.h"
#define SUF i32
#define T int32_t
#define ACC int64_t
#define IS_FLOAT 0
#include "backends/cpu/cpu_reduce_tmpl.h"
#define SUF i64
#define T int64_t
#define ACC int64_t
#define IS_FLOAT 0
#include "backends/cpu/cpu_reduce_tmpl.h"

/* ---- f32 sum, mean and var, the hot reductions (batch-norm statistics,
 * bias gradients), in two layouts that vectorize. ---- */

enum { L = ASG_LANES, COLS = 64 };

/* acc[i % L] += (q[i] - mean)^k for i in [0, n), k = 1 (mean ignored) or 2. */
ASG_ALWAYS_INLINE void lanes_add(double *acc, const float *q, int64_t n, bool sq, double mean) {
  int64_t i = 0;
  if (!sq) {
    for (; i + L <= n; i += L)
      for (int l = 0; l < L; l++)
        acc[l] += (double)q[i + l];
    for (int64_t t = i; t < n; t++)
      acc[t - i] += (double)q[t];
  } else {
    for (; i + L <= n; i += L)
      for (int l = 0; l < L; l++) {
        double d = (double)q[i + l] - mean;
        acc[l] += d * d;
      }
    for (int64_t t = i; t < n; t++) {
      double d = (double)q[t] - mean;
      acc[t - i] += d * d;
    }
  }
}

/* Outputs [lo, hi) when the innermost reduced run is contiguous (the
 * batch-norm statistics of [N,C,H,W] over N, H, W): element i of every run
 * goes to lane i % L (cpu_simd.h); the lanes, in double, are added in lane
 * order at the end, the same bits at every SIMD level. */
ASG_ALWAYS_INLINE void red_lanes_f32(const asg_cpu_call *c, const asg_reduce_plan *p, int64_t lo,
                                     int64_t hi) {
  const float *x = c->in[0];
  const asg_op op = c->s->op;
  const int64_t inner = p->rd[p->nr - 1], outer = p->nred / inner;
  for (int64_t o = lo; o < hi; o++) {
    const int64_t base = kept_offset(p, o);
    double acc[L] = {0}, s = 0;
    for (int64_t r = 0; r < outer; r++)
      lanes_add(acc, x + base + run_offset(p, r), inner, false, 0);
    for (int l = 0; l < L; l++)
      s += acc[l];
    double mean = s / (double)p->nred, q = 0;
    if (op == ASG_OP_VAR) {
      for (int l = 0; l < L; l++)
        acc[l] = 0;
      for (int64_t r = 0; r < outer; r++)
        lanes_add(acc, x + base + run_offset(p, r), inner, true, mean);
      for (int l = 0; l < L; l++)
        q += acc[l];
    }
    float *y = c->out;
    y[o] = (float)(op == ASG_OP_SUM    ? s
                   : op == ASG_OP_MEAN ? mean
                                       : q / (double)(p->nred - c->s->attr.i[2]));
  }
}

/* Outputs [lo, hi) when the innermost kept dim is contiguous (a bias
 * gradient: [B,C] summed over B): blocks of up to COLS consecutive outputs,
 * which read consecutive elements, walk the reduced set together. Each
 * output adds its elements in red_f32's order, so the results are
 * red_f32's; the block is what vectorizes. */
ASG_ALWAYS_INLINE void red_cols_f32(const asg_cpu_call *c, const asg_reduce_plan *p, int64_t lo,
                                    int64_t hi) {
  const float *x = c->in[0];
  const asg_op op = c->s->op;
  const int64_t inner = p->rd[p->nr - 1], istr = p->rs[p->nr - 1], outer = p->nred / inner;
  const int64_t kin = p->kd[p->nk - 1]; /* outputs per innermost kept row */
  float *y = c->out;
  for (int64_t o = lo; o < hi;) {
    int64_t w = kin - o % kin;
    w = w < COLS ? w : COLS;
    w = w < hi - o ? w : hi - o;
    const int64_t base = kept_offset(p, o);
    double s[COLS] = {0}, q[COLS] = {0}, mean[COLS];
    for (int64_t r = 0; r < outer; r++) {
      const float *row = x + base + run_offset(p, r);
      for (int64_t i = 0; i < inner; i++)
        for (int64_t b = 0; b < w; b++)
          s[b] += (double)row[i * istr + b];
    }
    for (int64_t b = 0; b < w; b++)
      mean[b] = s[b] / (double)p->nred;
    if (op == ASG_OP_VAR)
      for (int64_t r = 0; r < outer; r++) {
        const float *row = x + base + run_offset(p, r);
        for (int64_t i = 0; i < inner; i++)
          for (int64_t b = 0; b < w; b++) {
            double d = (double)row[i * istr + b] - mean[b];
            q[b] += d * d;
          }
      }
    for (int64_t b = 0; b < w; b++)
      y[o + b] = (float)(op == ASG_OP_SUM    ? s[b]
                         : op == ASG_OP_MEAN ? mean[b]
                                             : q[b] / (double)(p->nred - c->s->attr.i[2]));
    o += w;
  }
}

#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void red_lanes_f32_avx512(const asg_cpu_call *c, const asg_reduce_plan *p,
                                                   int64_t lo, int64_t hi) {
  red_lanes_f32(c, p, lo, hi);
}
ASG_TARGET_AVX2 static void red_lanes_f32_avx2(const asg_cpu_call *c, const asg_reduce_plan *p,
                                               int64_t lo, int64_t hi) {
  red_lanes_f32(c, p, lo, hi);
}
ASG_TARGET_AVX512 static void red_cols_f32_avx512(const asg_cpu_call *c, const asg_reduce_plan *p,
                                                  int64_t lo, int64_t hi) {
  red_cols_f32(c, p, lo, hi);
}
ASG_TARGET_AVX2 static void red_cols_f32_avx2(const asg_cpu_call *c, const asg_reduce_plan *p,
                                              int64_t lo, int64_t hi) {
  red_cols_f32(c, p, lo, hi);
}
#endif

/* The vector path for this step, or false (then red_f32 runs). */
static bool red_fast_f32(const asg_cpu_call *c, const asg_reduce_plan *p, int64_t lo, int64_t hi) {
  asg_op op = c->s->op;
  if (c->s->in[0].dtype != ASG_F32 || p->nred == 0 ||
      (op != ASG_OP_SUM && op != ASG_OP_MEAN && op != ASG_OP_VAR))
    return false;
  bool lanes = p->rs[p->nr - 1] == 1 && p->rd[p->nr - 1] >= L;
  bool cols = !lanes && p->nk > 0 && p->ks[p->nk - 1] == 1 && p->kd[p->nk - 1] > 1;
  if (!lanes && !cols) return false;
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512) {
    lanes ? red_lanes_f32_avx512(c, p, lo, hi) : red_cols_f32_avx512(c, p, lo, hi);
    return true;
  }
  if (level == ASG_SIMD_AVX2) {
    lanes ? red_lanes_f32_avx2(c, p, lo, hi) : red_cols_f32_avx2(c, p, lo, hi);
    return true;
  }
#endif
  lanes ? red_lanes_f32(c, p, lo, hi) : red_cols_f32(c, p, lo, hi);
  return true;
}

typedef struct red_job {
  const asg_cpu_call *c;
  asg_reduce_plan p;
} red_job;

static void reduce_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const red_job *j = ctx;
  if (red_fast_f32(j->c, &j->p, lo, hi)) return;
  switch (j->c->s->in[0].dtype) {
  case ASG_F32: red_f32(j->c, &j->p, lo, hi); break;
  case ASG_F64: red_f64(j->c, &j->p, lo, hi); break;
  case ASG_I32: red_i32(j->c, &j->p, lo, hi); break;
  case ASG_I64: red_i64(j->c, &j->p, lo, hi); break;
  default: break;
  }
}

static asg_status reduce_kernel(const asg_cpu_call *c) {
  asg_dtype dt = c->s->in[0].dtype;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  red_job j = {.c = c};
  asg__reduce_plan(&j.p, c->s->in[0].shape, c->s->attr.i[0]);
  int nt = asg_cpu_threads_for(c, j.p.nout * j.p.nred, j.p.nout);
  asg_cpu_parallel_for(c->pool, nt, j.p.nout, reduce_range, &j);
  return ASG_OK;
}

/* ---- ROWDOT: out [R] = sum_j a[r, j] * b[r, j] for a, b [R, C] ----
 * (src/passes/fuse_rowdot.c) The products are rounded to the dtype and
 * added as the sum step would add the mul step's output: f32 rows of at
 * least L in lanes (red_lanes_f32), else in order, in double; the same bits
 * as mul + sum. */
static void rowdot_rows_f32(const float *a, const float *b, float *y, int64_t C, int64_t lo,
                            int64_t hi) {
  for (int64_t r = lo; r < hi; r++) {
    const float *ar = a + r * C, *br = b + r * C;
    double s = 0;
    if (C >= L) {
      double acc[L] = {0};
      int64_t i = 0;
      for (; i + L <= C; i += L)
        for (int l = 0; l < L; l++) {
          const float pr = ar[i + l] * br[i + l];
          acc[l] += (double)pr;
        }
      for (int64_t t = i; t < C; t++) {
        const float pr = ar[t] * br[t];
        acc[t - i] += (double)pr;
      }
      for (int l = 0; l < L; l++)
        s += acc[l];
    } else {
      for (int64_t j = 0; j < C; j++) {
        const float pr = ar[j] * br[j];
        s += (double)pr;
      }
    }
    y[r] = (float)s;
  }
}

static void rowdot_rows_f64(const double *a, const double *b, double *y, int64_t C, int64_t lo,
                            int64_t hi) {
  for (int64_t r = lo; r < hi; r++) {
    double s = 0;
    for (int64_t j = 0; j < C; j++) {
      const double pr = a[r * C + j] * b[r * C + j];
      s += pr;
    }
    y[r] = s;
  }
}

typedef struct rowdot_job {
  const asg_cpu_call *c;
  int64_t C;
} rowdot_job;

static void rowdot_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const rowdot_job *j = ctx;
  const asg_cpu_call *c = j->c;
  if (c->s->out.dtype == ASG_F32)
    rowdot_rows_f32(c->in[0], c->in[1], c->out, j->C, lo, hi);
  else
    rowdot_rows_f64(c->in[0], c->in[1], c->out, j->C, lo, hi);
}

static asg_status rowdot_kernel(const asg_cpu_call *c) {
  const asg_shape sh = c->s->in[0].shape;
  if (c->s->out.dtype != ASG_F32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  const int64_t C = sh.ndim ? sh.dims[sh.ndim - 1] : 1, R = asg_shape_numel(c->s->out.shape);
  rowdot_job j = {c, C};
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, R * C, R), R, rowdot_range, &j);
  return ASG_OK;
}

void asg_cpu_register_reduce(asg_cpu_kernel *t) {
  t[ASG_OP_ROWDOT].run = rowdot_kernel;
  t[ASG_OP_SUM].run = reduce_kernel;
  t[ASG_OP_MEAN].run = reduce_kernel;
  t[ASG_OP_MAX].run = reduce_kernel;
  t[ASG_OP_MIN].run = reduce_kernel;
  t[ASG_OP_VAR].run = reduce_kernel;
  t[ASG_OP_ARGMAX].run = reduce_kernel;
}
