/* CPU reductions over any axis set: sum, mean, max, min, var, argmax.
 * Input dims are coalesced into runs of kept and reduced axes
 * (asg__reduce_plan, runtime/layout.h); each output element (parallel)
 * walks its reduced elements, innermost run last. */
#include <math.h>

#include "backends/cpu/cpu.h"
#include "runtime/layout.h"

static int64_t kept_offset(const asg_reduce_plan *p, int64_t o) {
  int64_t off = 0;
  for (int d = p->nk - 1; d >= 0; d--) {
    off += (o % p->kd[d]) * p->ks[d];
    o /= p->kd[d];
  }
  return off;
}

/* Visits the reduced elements of one output: BODY sees `v` (ACC) and `j`
 * (index along the flattened reduced set). */
#define FOR_REDUCED(T, ACC, BODY)                                                                  \
  {                                                                                                \
    int64_t inner = p->rd[p->nr - 1], istr = p->rs[p->nr - 1], outer = p->nred / inner;            \
    for (int64_t r = 0; r < outer; r++) {                                                          \
      int64_t off = base, rr = r;                                                                  \
      for (int d = p->nr - 2; d >= 0; d--) {                                                       \
        off += (rr % p->rd[d]) * p->rs[d];                                                         \
        rr /= p->rd[d];                                                                            \
      }                                                                                            \
      const T *q = x + off;                                                                        \
      if (istr == 1) { /* contiguous run: a loop the compiler can vectorize */                     \
        for (int64_t i = 0; i < inner; i++) {                                                      \
          ACC v = (ACC)q[i];                                                                       \
          int64_t j = r * inner + i;                                                               \
          (void)j;                                                                                 \
          BODY;                                                                                    \
        }                                                                                          \
      } else {                                                                                     \
        for (int64_t i = 0; i < inner; i++) {                                                      \
          ACC v = (ACC)q[i * istr];                                                                \
          int64_t j = r * inner + i;                                                               \
          (void)j;                                                                                 \
          BODY;                                                                                    \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

#define DEF_REDUCE(SUF, T, ACC, IS_FLOAT)                                                          \
  /* Outputs [lo, hi). */                                                                          \
  static void red_##SUF(const asg_cpu_call *c, const asg_reduce_plan *p, int64_t lo, int64_t hi) { \
    const T *x = c->in[0];                                                                         \
    asg_op op = c->s->op;                                                                          \
    for (int64_t o = lo; o < hi; o++) {                                                            \
      int64_t base = kept_offset(p, o);                                                            \
      if (op == ASG_OP_SUM || op == ASG_OP_MEAN || op == ASG_OP_VAR) {                             \
        ACC s = 0;                                                                                 \
        FOR_REDUCED(T, ACC, s += v)                                                                \
        if (op == ASG_OP_SUM) {                                                                    \
          ((T *)c->out)[o] = (T)s;                                                                 \
        } else {                                                                                   \
          ACC mean = s / (ACC)p->nred;                                                             \
          if (op == ASG_OP_MEAN) {                                                                 \
            ((T *)c->out)[o] = (T)mean;                                                            \
          } else {                                                                                 \
            ACC q2 = 0;                                                                            \
            FOR_REDUCED(T, ACC, q2 += (v - mean) * (v - mean))                                     \
            ((T *)c->out)[o] = (T)(q2 / (ACC)(p->nred - c->s->attr.i[2]));                         \
          }                                                                                        \
        }                                                                                          \
      } else {                                                                                     \
        ACC best = (ACC)x[base];                                                                   \
        int64_t bi = 0;                                                                            \
        bool is_max = op != ASG_OP_MIN;                                                            \
        FOR_REDUCED(                                                                               \
            T, ACC,                                                                                \
            if (IS_FLOAT && v != v && best == best) {                                              \
              best = v;                                                                            \
              bi = j;                                                                              \
            } else if (is_max ? v > best : v < best) {                                             \
              best = v;                                                                            \
              bi = j;                                                                              \
            })                                                                                     \
        if (op == ASG_OP_ARGMAX)                                                                   \
          ((int64_t *)c->out)[o] = bi;                                                             \
        else                                                                                       \
          ((T *)c->out)[o] = (T)best;                                                              \
      }                                                                                            \
    }                                                                                              \
  }

DEF_REDUCE(f32, float, double, 1)
DEF_REDUCE(f64, double, double, 1)
DEF_REDUCE(i32, int32_t, int64_t, 0)
DEF_REDUCE(i64, int64_t, int64_t, 0)

typedef struct red_job {
  const asg_cpu_call *c;
  asg_reduce_plan p;
} red_job;

static void reduce_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const red_job *j = ctx;
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

void asg_cpu_register_reduce(asg_cpu_kernel *t) {
  t[ASG_OP_SUM].run = reduce_kernel;
  t[ASG_OP_MEAN].run = reduce_kernel;
  t[ASG_OP_MAX].run = reduce_kernel;
  t[ASG_OP_MIN].run = reduce_kernel;
  t[ASG_OP_VAR].run = reduce_kernel;
  t[ASG_OP_ARGMAX].run = reduce_kernel;
}
