/* The reduction kernels (sum, mean, var, max, min, argmax) for one element type, included by
 * cpu_reduce.c once per type with SUF, T, ACC (the accumulator: double for floats, int64_t for
 * integers) and IS_FLOAT defined; they are undefined at the end. No include guard: it is meant
 * to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* x is a NaN; never for integers (a function, not x != x, which warns on them) */
#if IS_FLOAT
static inline bool ASG_CAT(is_nan, SUF)(ACC x) { return x != x; }
#else
static inline bool ASG_CAT(is_nan, SUF)(ACC x) {
  (void)x;
  return false;
}
#endif

/* The run_* functions fold one run of the reduced set, q[i st] for i in [0, n), in order; they
 * are called with st a literal 1 for a contiguous run, a loop the compiler can vectorize. */

/* s + sum q[i st] */
ASG_ALWAYS_INLINE ACC ASG_CAT(run_sum, SUF)(const T *q, int64_t n, int64_t st, ACC s) {
  for (int64_t i = 0; i < n; i++) {
    ACC v = (ACC)q[i * st];
    s += v;
  }
  return s;
}

/* s + sum (q[i st] - mean)^2 */
ASG_ALWAYS_INLINE ACC ASG_CAT(run_sqdev, SUF)(const T *q, int64_t n, int64_t st, ACC mean, ACC s) {
  for (int64_t i = 0; i < n; i++) {
    ACC v = (ACC)q[i * st];
    s += (v - mean) * (v - mean);
  }
  return s;
}

/* The running max (min unless is_max) *best and its index *bi in the reduced
 * set, where q[0] has index j0. Floats: the first NaN wins. */
ASG_ALWAYS_INLINE void ASG_CAT(run_best, SUF)(const T *q, int64_t n, int64_t st, int64_t j0,
                                              bool is_max, ACC *best, int64_t *bi) {
  ACC b = *best;
  int64_t k = *bi;
  for (int64_t i = 0; i < n; i++) {
    ACC v = (ACC)q[i * st];
    if ((ASG_CAT(is_nan, SUF)(v) && !ASG_CAT(is_nan, SUF)(b)) || (is_max ? v > b : v < b)) {
      b = v;
      k = j0 + i;
    }
  }
  *best = b;
  *bi = k;
}

/* Outputs [lo, hi): each walks its reduced elements run by run (innermost
 * reduced dim: inner elements, stride istr), accumulating in ACC. */
static void ASG_CAT(red, SUF)(const asg_cpu_call *c, const asg_reduce_plan *p, int64_t lo,
                              int64_t hi) {
  const T *x = c->in[0];
  asg_op op = c->s->op;
  const int64_t inner = p->rd[p->nr - 1], istr = p->rs[p->nr - 1], outer = p->nred / inner;
  for (int64_t o = lo; o < hi; o++) {
    int64_t base = kept_offset(p, o);
    if (op == ASG_OP_SUM || op == ASG_OP_MEAN || op == ASG_OP_VAR) {
      ACC s = 0;
      for (int64_t r = 0; r < outer; r++) {
        const T *q = x + base + run_offset(p, r);
        s = istr == 1 ? ASG_CAT(run_sum, SUF)(q, inner, 1, s)
                      : ASG_CAT(run_sum, SUF)(q, inner, istr, s);
      }
      if (op == ASG_OP_SUM) {
        ((T *)c->out)[o] = (T)s;
      } else {
        ACC mean = s / (ACC)p->nred;
        if (op == ASG_OP_MEAN) {
          ((T *)c->out)[o] = (T)mean;
        } else {
          ACC q2 = 0;
          for (int64_t r = 0; r < outer; r++) {
            const T *q = x + base + run_offset(p, r);
            q2 = istr == 1 ? ASG_CAT(run_sqdev, SUF)(q, inner, 1, mean, q2)
                           : ASG_CAT(run_sqdev, SUF)(q, inner, istr, mean, q2);
          }
          ((T *)c->out)[o] = (T)(q2 / (ACC)(p->nred - c->s->attr.i[2]));
        }
      }
    } else {
      ACC best = (ACC)x[base];
      int64_t bi = 0;
      bool is_max = op != ASG_OP_MIN;
      for (int64_t r = 0; r < outer; r++) {
        const T *q = x + base + run_offset(p, r);
        if (istr == 1)
          ASG_CAT(run_best, SUF)(q, inner, 1, r * inner, is_max, &best, &bi);
        else
          ASG_CAT(run_best, SUF)(q, inner, istr, r * inner, is_max, &best, &bi);
      }
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
