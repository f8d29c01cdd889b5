/* CPU kernel of rope, the reference of every backend (contract:
 * src/ops/op_nn.c): y = x * cos + rotate_half(x) * sin over the last dim,
 * rotate_half(x) = concat(-x[D/2:], x[:D/2]). With h = D/2, for i < h:
 *   y[i]     = x[i]     * cos[i]     - x[i + h] * sin[i]
 *   y[i + h] = x[i + h] * cos[i + h] + x[i]     * sin[i + h]
 * in the element type: the same roundings as the mul, mul, add (of a
 * negated product) that the op replaces. x [R, D] by rows; the rows of the
 * broadcast tables come from asg__rope_plan (runtime/layout.h). Rows run in
 * parallel; each output is written once, so the bits do not depend on the
 * threads. */
#include "backends/cpu/cpu.h"
#include "runtime/layout.h"

typedef struct rope_job {
  const asg_cpu_call *c;
  asg_rope_plan p;
} rope_job;

/* Start of row r's cos and sin rows (the plan's digits of r). */
static void table_rows(const asg_rope_plan *p, int64_t r, int64_t *oc, int64_t *os) {
  int64_t a = 0, b = 0;
  for (int d = p->nd - 1; d >= 0; d--) {
    const int64_t i = r % p->dims[d];
    r /= p->dims[d];
    a += i * p->st[0][d];
    b += i * p->st[1][d];
  }
  *oc = a;
  *os = b;
}

/* Rows [lo, hi) of x [R, D] -> y [R, D]; tables advance by lc / ls per
 * element (1, or 0 when broadcast over D). The common case (both 1) calls
 * the inline body with constant strides, so that loop vectorizes. */
#define ROPE_ROWS(SUF, T)                                                                          \
  static inline void rope_row_##SUF(const T *xr, const T *cr, const T *sr, T *yr, int64_t h,       \
                                    int64_t lc, int64_t ls) {                                      \
    for (int64_t i = 0; i < h; i++) {                                                              \
      const T a = xr[i], b = xr[i + h];                                                            \
      yr[i] = a * cr[i * lc] - b * sr[i * ls];                                                     \
      yr[i + h] = b * cr[(i + h) * lc] + a * sr[(i + h) * ls];                                     \
    }                                                                                              \
  }                                                                                                \
  static void rope_rows_##SUF(const rope_job *j, int64_t lo, int64_t hi) {                         \
    const asg_rope_plan *p = &j->p;                                                                \
    const T *x = j->c->in[0], *cs = j->c->in[1], *sn = j->c->in[2];                                \
    T *y = j->c->out;                                                                              \
    const int64_t D = p->D, h = D / 2, lc = p->last[0], ls = p->last[1];                           \
    for (int64_t r = lo; r < hi; r++) {                                                            \
      int64_t oc, os;                                                                              \
      table_rows(p, r, &oc, &os);                                                                  \
      if (lc == 1 && ls == 1)                                                                      \
        rope_row_##SUF(x + r * D, cs + oc, sn + os, y + r * D, h, 1, 1);                           \
      else                                                                                         \
        rope_row_##SUF(x + r * D, cs + oc, sn + os, y + r * D, h, lc, ls);                         \
    }                                                                                              \
  }
ROPE_ROWS(f32, float)
ROPE_ROWS(f64, double)

static void rope_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const rope_job *j = ctx;
  if (j->c->s->out.dtype == ASG_F32)
    rope_rows_f32(j, lo, hi);
  else
    rope_rows_f64(j, lo, hi);
}

static asg_status rope_kernel(const asg_cpu_call *c) {
  const asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype %s not supported", c->s->label,
                      asg_dtype_name(dt));
  rope_job j = {.c = c};
  asg__rope_plan(&j.p, c->s);
  if (j.p.rows == 0 || j.p.D == 0) return ASG_OK;
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, j.p.rows * j.p.D, j.p.rows), j.p.rows,
                       rope_range, &j);
  return ASG_OK;
}

void asg_cpu_register_rope(asg_cpu_kernel *t) { t[ASG_OP_ROPE].run = rope_kernel; }
