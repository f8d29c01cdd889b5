/* The softmax cross-entropy row kernels for one element type, included by
 * cpu_ce.c once per type with SUF, T and EXP (T -> T) defined; they are
 * undefined at the end. No include guard: it is meant to be included more
 * than once.
 *
 * Rows run in ASG_LANES lanes (cpu_simd.h): element j of a row goes to lane
 * j % L, the maximum and the sums (in double) are combined lane by lane as a
 * fixed tree, so every SIMD level and thread count gives the same bits. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Row xr [C]: *mo = its maximum (NaN wins), returns log(sum exp(x - max)),
 * kept apart from the maximum so that x - lse is computed as (x - max) -
 * log(sum): exact for large logits. */
ASG_ALWAYS_INLINE double ASG_CAT(row_lse, SUF)(const T *xr, int64_t C, T *mo) {
  const T m = ASG_CAT(asg_row_max, SUF)(xr, C);
  int64_t j = 0;
  double acc[L] = {0};
  for (; j + L <= C; j += L) {
    T e[L]; /* the exps, then their sums in double */
    for (int l = 0; l < L; l++)
      e[l] = EXP(xr[j + l] - m);
    for (int l = 0; l < L; l++)
      acc[l] += (double)e[l];
  }
  for (int64_t t = j; t < C; t++)
    acc[t - j] += (double)EXP(xr[t] - m);
  *mo = m;
  return log(lanes_total(acc));
}

/* sum over the row of x - m, in lanes (label smoothing's mean term) */
ASG_ALWAYS_INLINE double ASG_CAT(row_centered_sum, SUF)(const T *xr, int64_t C, double m) {
  double acc[L] = {0};
  int64_t j = 0;
  for (; j + L <= C; j += L)
    for (int l = 0; l < L; l++)
      acc[l] += (double)xr[j + l] - m;
  for (int64_t t = j; t < C; t++)
    acc[t - j] += (double)xr[t] - m;
  return lanes_total(acc);
}

/* Row losses [lo, hi) of x [R, C] into row [R] (0 for rows left out):
 * (1-ls) (lse - x[label]) + ls (lse - mean_c x). */
ASG_ALWAYS_INLINE void ASG_CAT(ce_fwd_rows, SUF)(const T *x, const ce_labels *lb, int64_t C,
                                                 double ls, double *row, int64_t lo, int64_t hi) {
  for (int64_t r = lo; r < hi; r++) {
    const int64_t l = ce_label(lb, r);
    row[r] = 0;
    if (!ce_label_ok(lb, l, C)) continue;
    const T *xr = x + r * C;
    T mt;
    const double lg = ASG_CAT(row_lse, SUF)(xr, C, &mt), m = (double)mt;
    double v = (1 - ls) * (lg - ((double)xr[l] - m));
    if (ls > 0) v += ls * (lg - ASG_CAT(row_centered_sum, SUF)(xr, C, m) / (double)C);
    row[r] = v;
  }
}

/* Rows [lo, hi) of dx [R, C] = (softmax(x) - ((1-ls) onehot + ls/C)) scale
 * (scale: dloss / count); zero for rows left out. */
ASG_ALWAYS_INLINE void ASG_CAT(ce_bwd_rows, SUF)(const T *x, const ce_labels *lb, int64_t C,
                                                 double ls, double scale, T *dx, int64_t lo,
                                                 int64_t hi) {
  const T off = (T)(ls / (double)C), sc = (T)scale, hit = (T)(1 - ls);
  for (int64_t r = lo; r < hi; r++) {
    const int64_t l = ce_label(lb, r);
    const T *xr = x + r * C;
    T *dr = dx + r * C;
    if (!ce_label_ok(lb, l, C)) {
      memset(dr, 0, sizeof(T) * (size_t)C);
      continue;
    }
    T m;
    const T lg = (T)ASG_CAT(row_lse, SUF)(xr, C, &m);
    for (int64_t j = 0; j < C; j++)
      dr[j] = (EXP((xr[j] - m) - lg) - off) * sc;
    dr[l] = (EXP((xr[l] - m) - lg) - off - hit) * sc;
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef EXP
