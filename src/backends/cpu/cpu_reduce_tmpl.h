/* The reduction kernels for one element type, included by cpu_reduce.c once per type
 * with SUF, T, ACC, IS_FLOAT defined; they are undefined at the end. No include guard: it
 * is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Outputs [lo, hi). */
static void ASG_CAT(red, SUF)(const asg_cpu_call *c, const asg_reduce_plan *p, int64_t lo,
                              int64_t hi) {
  const T *x = c->in[0];
  asg_op op = c->s->op;
  for (int64_t o = lo; o < hi; o++) {
    int64_t base = kept_offset(p, o);
    if (op == ASG_OP_SUM || op == ASG_OP_MEAN || op == ASG_OP_VAR) {
      ACC s = 0;
      FOR_REDUCED(T, ACC, s += v)
      if (op == ASG_OP_SUM) {
        ((T *)c->out)[o] = (T)s;
      } else {
        ACC mean = s / (ACC)p->nred;
        if (op == ASG_OP_MEAN) {
          ((T *)c->out)[o] = (T)mean;
        } else {
          ACC q2 = 0;
          FOR_REDUCED(T, ACC, q2 += (v - mean) * (v - mean))
          ((T *)c->out)[o] = (T)(q2 / (ACC)(p->nred - c->s->attr.i[2]));
        }
      }
    } else {
      ACC best = (ACC)x[base];
      int64_t bi = 0;
      bool is_max = op != ASG_OP_MIN;
      FOR_REDUCED(
          T, ACC,
          if (IS_FLOAT && v != v && best == best) {
            best = v;
            bi = j;
          } else if (is_max ? v > best : v < best) {
            best = v;
            bi = j;
          })
      if (op == ASG_OP_ARGMAX)
        ((int64_t *)c->out)[o] = bi;
      else
        ((T *)c->out)[o] = (T)best;
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef ACC
#undef IS_FLOAT
