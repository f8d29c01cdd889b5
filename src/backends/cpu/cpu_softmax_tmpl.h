/* The softmax / log-softmax line kernels for one element type, included by cpu_nn.c once per type
 * with SUF, T, EXP defined; they are undefined at the end. No include guard: it
 * is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

static inline void ASG_CAT(sm_line, SUF)(const T *x, T *y, int64_t n, int64_t s, bool lg) {
  T m = x[0];
  for (int64_t j = 1; j < n; j++)
    if (x[j * s] > m || x[j * s] != x[j * s]) m = x[j * s];
  double sum = 0;
  if (!lg) {
    for (int64_t j = 0; j < n; j++) {
      T e = EXP(x[j * s] - m);
      y[j * s] = e;
      sum += (double)e;
    }
    T inv = (T)(1.0 / sum);
    for (int64_t j = 0; j < n; j++)
      y[j * s] *= inv;
  } else {
    for (int64_t j = 0; j < n; j++)
      sum += (double)EXP(x[j * s] - m);
    /* (x - m) - log(sum), not x - (m + log(sum)): exact for large x */
    double lg = log(sum);
    for (int64_t j = 0; j < n; j++)
      y[j * s] = (T)(((double)x[j * s] - (double)m) - lg);
  }
}
/* Lines [lo, hi) of the outer * inner lines. */
static void ASG_CAT(softmax, SUF)(const asg_cpu_call *c, int64_t n, int64_t inner, int64_t lo,
                                  int64_t hi) {
  const T *x = c->in[0];
  T *y = c->out;
  bool lg = c->s->op == ASG_OP_LOG_SOFTMAX;
  if (inner == 1) {
    for (int64_t r = lo; r < hi; r++)
      ASG_CAT(sm_line, SUF)(x + r * n, y + r * n, n, 1, lg);
  } else {
    for (int64_t l = lo; l < hi; l++) {
      int64_t off = (l / inner) * n * inner + l % inner;
      ASG_CAT(sm_line, SUF)(x + off, y + off, n, inner, lg);
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef EXP
