/* The softmax cross-entropy kernels for one element type, included by cpu_nn.c once per type
 * with SUF, T, EXP defined; they are undefined at the end. No include guard: it
 * is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* log-sum-exp = *mo + the returned log(sum exp(x - max)); kept apart so that
 * x - lse is computed as (x - max) - log(sum), exact for large logits */
static inline double ASG_CAT(lse, SUF)(const T *xr, int64_t C, double *mo) {
  T m = xr[0];
  for (int64_t j = 1; j < C; j++)
    if (xr[j] > m || xr[j] != xr[j]) m = xr[j];
  double s = 0;
  for (int64_t j = 0; j < C; j++)
    s += (double)EXP(xr[j] - m);
  *mo = (double)m;
  return log(s);
}
/* Row losses [lo, hi) into the workspace. */
static void ASG_CAT(ce_fwd_rows, SUF)(const asg_cpu_call *c, int64_t C, int64_t lo, int64_t hi) {
  const T *x = c->in[0];
  const void *lab = c->in[1];
  asg_dtype ldt = c->s->in[1].dtype;
  double ls = c->s->attr.f[0], *row = c->ws;
  int64_t ign = c->s->attr.i[0];
  for (int64_t r = lo; r < hi; r++) {
    int64_t l = label_at(lab, ldt, r);
    row[r] = 0;
    if (!label_ok(l, C, ign)) continue;
    const T *xr = x + r * C;
    double m, lg = ASG_CAT(lse, SUF)(xr, C, &m), v = (1 - ls) * (lg - ((double)xr[l] - m));
    if (ls > 0) {
      double sx = 0;
      for (int64_t j = 0; j < C; j++)
        sx += (double)xr[j] - m;
      v += ls * (lg - sx / (double)C);
    }
    row[r] = v;
  }
}
/* The mean of the row losses, in row order. */
static void ASG_CAT(ce_fwd, SUF)(const asg_cpu_call *c, int64_t R, int64_t C) {
  const void *lab = c->in[1];
  asg_dtype ldt = c->s->in[1].dtype;
  const double *row = c->ws;
  int64_t ign = c->s->attr.i[0];
  double total = 0;
  int64_t count = 0;
  for (int64_t r = 0; r < R; r++) {
    total += row[r];
    count += label_ok(label_at(lab, ldt, r), C, ign);
  }
  /* no row counted: NaN (0/0), as PyTorch's mean over no elements */
  *(T *)c->out = (T)(count ? total / (double)count : NAN);
}
/* logits [R,C], labels [R], dloss [] -> dlogits [R,C] =
 * (softmax - ((1-ls) onehot + ls/C)) * dloss / count; zero for left-out rows */
/* dloss / count (0 when no row counts) */
static double ASG_CAT(ce_bwd_scale, SUF)(const asg_cpu_call *c, int64_t R, int64_t C) {
  const void *lab = c->in[1];
  asg_dtype ldt = c->s->in[1].dtype;
  int64_t ign = c->s->attr.i[0], count = 0;
  for (int64_t r = 0; r < R; r++)
    count += label_ok(label_at(lab, ldt, r), C, ign);
  return count ? (double)*(const T *)c->in[2] / (double)count : 0.0;
}
/* Rows [lo, hi) of dlogits. */
static void ASG_CAT(ce_bwd, SUF)(const asg_cpu_call *c, int64_t C, double scale, int64_t lo,
                                 int64_t hi) {
  const T *x = c->in[0];
  const void *lab = c->in[1];
  asg_dtype ldt = c->s->in[1].dtype;
  T *dx = c->out;
  double ls = c->s->attr.f[0];
  int64_t ign = c->s->attr.i[0];
  double off = ls / (double)C;
  for (int64_t r = lo; r < hi; r++) {
    int64_t l = label_at(lab, ldt, r);
    const T *xr = x + r * C;
    T *dr = dx + r * C;
    if (!label_ok(l, C, ign)) {
      for (int64_t j = 0; j < C; j++)
        dr[j] = 0;
      continue;
    }
    double m, lg = ASG_CAT(lse, SUF)(xr, C, &m);
    for (int64_t j = 0; j < C; j++)
      dr[j] = (T)((exp(((double)xr[j] - m) - lg) - off) * scale);
    dr[l] = (T)((exp(((double)xr[l] - m) - lg) - off - (1 - ls)) * scale);
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef EXP
