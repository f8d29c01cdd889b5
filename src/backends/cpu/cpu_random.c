/* CPU kernels of the random family. Element i of a node draws from the
 * counter-based RNG with key = rng_key(seed, run count) and counter i, so
 * values do not depend on threads or backend, and every run is a new draw. */
#include <math.h>

#include "backends/cpu/cpu.h"

/* Uniform in [lo, hi): rounding lo + (hi - lo) u to the dtype can reach hi,
 * which is stepped back below it. */

/* Integer outputs only come from bernoulli (checked at build time). */
static inline int64_t int_next(int64_t v, int64_t lo) {
  (void)lo;
  return v;
}

/* the draws per type (cpu_random_tmpl.h) */
#define SUF f32
#define T float
#define NEXT nextafterf
#include "backends/cpu/cpu_random_tmpl.h"
#define SUF f64
#define T double
#define NEXT nextafter
#include "backends/cpu/cpu_random_tmpl.h"
#define SUF i32
#define T int32_t
#define NEXT int_next
#include "backends/cpu/cpu_random_tmpl.h"
#define SUF i64
#define T int64_t
#define NEXT int_next
#include "backends/cpu/cpu_random_tmpl.h"

typedef struct rand_job {
  const asg_cpu_call *c;
  uint64_t key;
} rand_job;

static void rand_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const rand_job *j = ctx;
  switch (j->c->s->out.dtype) {
  case ASG_F32: rand_f32(j->c, j->key, lo, hi); break;
  case ASG_F64: rand_f64(j->c, j->key, lo, hi); break;
  case ASG_I32: rand_i32(j->c, j->key, lo, hi); break;
  case ASG_I64: rand_i64(j->c, j->key, lo, hi); break;
  default: break;
  }
}

/* out [any shape] */
static asg_status rand_kernel(const asg_cpu_call *c) {
  asg_dtype dt = c->s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  int64_t n = asg_shape_numel(c->s->out.shape);
  rand_job j = {c, asg__rng_key((uint64_t)c->s->attr.i[0], c->run)};
  /* a draw costs about four elementwise ops: threads pay off sooner */
  asg_cpu_parallel_for(c->pool, n >= ASG_CPU_PAR_MIN / 4 ? c->nthreads : 1, n, rand_range, &j);
  return ASG_OK;
}

void asg_cpu_register_random(asg_cpu_kernel *t) {
  t[ASG_OP_RAND_UNIFORM].run = rand_kernel;
  t[ASG_OP_RAND_NORMAL].run = rand_kernel;
  t[ASG_OP_RAND_BERNOULLI].run = rand_kernel;
}
