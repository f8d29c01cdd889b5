/* The layernorm kernels shared by both element types (row statistics and
 * the dgamma reduction), included by cpu_nn.c once per type with SUF and T
 * defined; they are undefined at the end. No include guard: it is meant to
 * be included more than once. The f32 forward and dx rows run in lanes in
 * cpu_nn.c; the f64 ones follow this file there. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Mean and 1/std of one row xr [C], in double (two passes). */
static inline void ASG_CAT(ln_stats, SUF)(const T *xr, int64_t C, double eps, double *mean,
                                          double *rstd) {
  double s = 0, q = 0;
  for (int64_t j = 0; j < C; j++)
    s += (double)xr[j];
  double m = s / (double)C;
  for (int64_t j = 0; j < C; j++) {
    double d = (double)xr[j] - m;
    q += d * d;
  }
  *mean = m;
  *rstd = 1.0 / sqrt(q / (double)C + eps);
}

/* Statistics of rows [lo, hi) of x [R,C] into the workspace: mean [R],
 * rstd [R]. */
static void ASG_CAT(ln_bwd_g_stats, SUF)(const asg_cpu_call *c, int64_t R, int64_t C, int64_t lo,
                                         int64_t hi) {
  const T *x = c->in[1];
  double eps = c->s->attr.f[0], *mean = c->ws, *rstd = mean + R;
  for (int64_t r = lo; r < hi; r++)
    ASG_CAT(ln_stats, SUF)(x + r * C, C, eps, mean + r, rstd + r);
}

/* Column blocks [lo, hi) of dgamma [C] = sum_r dy [R,C] * xhat [R,C], each
 * block of LN_COLS columns summing its rows in order. */
static void ASG_CAT(ln_bwd_g, SUF)(const asg_cpu_call *c, int64_t R, int64_t C, int64_t lo,
                                   int64_t hi) {
  const T *dy = c->in[0], *x = c->in[1];
  T *dg = c->out;
  const double *mean = c->ws, *rstd = mean + R;
  for (int64_t b = lo; b < hi; b++) {
    int64_t j0 = b * LN_COLS, w = C - j0 < LN_COLS ? C - j0 : LN_COLS;
    double acc[LN_COLS] = {0};
    for (int64_t r = 0; r < R; r++) {
      const T *xr = x + r * C + j0, *dyr = dy + r * C + j0;
      double m = mean[r], rs = rstd[r];
      for (int64_t j = 0; j < w; j++)
        acc[j] += (double)dyr[j] * (((double)xr[j] - m) * rs);
    }
    for (int64_t j = 0; j < w; j++)
      dg[j0 + j] = (T)acc[j];
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
