/* CPU kernels of the random family. Element i of a node draws from the
 * counter-based RNG with key = rng_key(seed, run count) and counter i, so
 * values do not depend on threads or backend, and every run is a new draw. */
#include <math.h>

#include "backends/cpu/cpu.h"

/* Uniform in [lo, hi): rounding lo + (hi - lo) u to the dtype can reach hi,
 * which is stepped back below it. */
#define DEF_RAND(SUF, T, NEXT)                                                                     \
  /* Elements [lo, hi) of out [n]. */                                                              \
  static void rand_##SUF(const asg_cpu_call *c, uint64_t key, int64_t lo, int64_t hi) {            \
    T *y = c->out;                                                                                 \
    asg_op op = c->s->op;                                                                          \
    double f0 = c->s->attr.f[0], f1 = c->s->attr.f[1];                                             \
    for (int64_t i = lo; i < hi; i++) {                                                            \
      if (op == ASG_OP_RAND_UNIFORM) {                                                             \
        T v = (T)(f0 + (f1 - f0) * asg__rng_uniform(key, (uint64_t)i));                            \
        if ((double)v >= f1 && f1 > f0) v = NEXT(v, (T)f0);                                        \
        y[i] = v;                                                                                  \
      } else if (op == ASG_OP_RAND_NORMAL) {                                                       \
        y[i] = (T)(f0 + f1 * asg__rng_normal(key, (uint64_t)i));                                   \
      } else {                                                                                     \
        y[i] = asg__rng_uniform(key, (uint64_t)i) < f0 ? (T)1 : (T)0;                              \
      }                                                                                            \
    }                                                                                              \
  }

/* Integer outputs only come from bernoulli (checked at build time). */
static inline int64_t int_next(int64_t v, int64_t lo) {
  (void)lo;
  return v;
}
DEF_RAND(f32, float, nextafterf)
DEF_RAND(f64, double, nextafter)
DEF_RAND(i32, int32_t, int_next)
DEF_RAND(i64, int64_t, int_next)

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
