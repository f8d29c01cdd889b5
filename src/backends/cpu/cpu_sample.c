/* CPU kernel of sample_filter (semantics: src/ops/op_sample.c), the
 * reference of the GPU kernels, which follow the same steps per row:
 *   1. the row's max m; a NaN makes the row all NaN;
 *   2. top-k (0 < k < V): the threshold key Kk = the largest order key K
 *      with count(key(x) >= K) >= k, built bit by bit from the top (a
 *      bisection over the key space: one counting pass per key bit);
 *   3. top-p (0 < p < 1): weights w = (x == m ? 1 : exp(x - m)) over the
 *      entries with key >= Kk (0 elsewhere), kept in the output row as
 *      scratch; Z = their sum; Kp = the largest K with
 *      sum(w : key >= K) >= p Z, by the same bisection. p <= 0 (or NaN):
 *      Kp = key(m); p >= 1: no top-p;
 *   4. y = x where key(x) >= max(Kk, Kp), else -inf.
 * Order keys map values to unsigned integers of the same order (-0 as +0),
 * so the thresholds are exact values of the row and ties are kept. Sums are
 * in double, in index order. Cost per row: V (bits + 3) passes, no sort. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"

static inline uint32_t key32(float x) {
  uint32_t u;
  if (x == 0) x = 0; /* -0 as +0: equal values, one key */
  memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}
static inline uint64_t key64(double x) {
  uint64_t u;
  if (x == 0) x = 0;
  memcpy(&u, &x, 8);
  return (u & 0x8000000000000000ull) ? ~u : u | 0x8000000000000000ull;
}

typedef struct sf_job {
  const asg_cpu_call *c;
  int64_t V, k;
  double p;
} sf_job;

/* One row x [V] -> y [V] per type: cpu_sample_tmpl.h. */
#define SUF f32
#define T float
#define K uint32_t
#define KEY key32
#define BITS 32
#include "backends/cpu/cpu_sample_tmpl.h"
#define SUF f64
#define T double
#define K uint64_t
#define KEY key64
#define BITS 64
#include "backends/cpu/cpu_sample_tmpl.h"

static void sf_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const sf_job *j = ctx;
  const int64_t V = j->V;
  for (int64_t r = lo; r < hi; r++)
    if (j->c->s->out.dtype == ASG_F32)
      row_f32((const float *)j->c->in[0] + r * V, (float *)j->c->out + r * V, V, j->k, j->p);
    else
      row_f64((const double *)j->c->in[0] + r * V, (double *)j->c->out + r * V, V, j->k, j->p);
}

static asg_status sample_filter_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  sf_job j = {c, s->out.shape.dims[s->out.shape.ndim - 1], 0, 0};
  j.k = s->in[1].dtype == ASG_I32 ? (int64_t) * (const int32_t *)c->in[1]
                                  : *(const int64_t *)c->in[1];
  j.p = s->in[2].dtype == ASG_F32 ? (double)*(const float *)c->in[2] : *(const double *)c->in[2];
  const int64_t rows = j.V ? asg_shape_numel(s->out.shape) / j.V : 0;
  /* ~40 passes over each row */
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, 40 * rows * j.V, rows), rows, sf_range, &j);
  return ASG_OK;
}

void asg_cpu_register_sample(asg_cpu_kernel *t) {
  t[ASG_OP_SAMPLE_FILTER].run = sample_filter_kernel;
}
