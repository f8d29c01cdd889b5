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

/* Rows [lo, hi) of x [R, D] -> y [R, D] per type (cpu_rope_tmpl.h). */
#define SUF f32
#define T float
#include "backends/cpu/cpu_rope_tmpl.h"
#define SUF f64
#define T double
#include "backends/cpu/cpu_rope_tmpl.h"

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
