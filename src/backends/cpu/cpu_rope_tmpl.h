/* rope's row kernels for one element type, included by cpu_rope.c once per
 * type with SUF, T defined; they are undefined at the end. No include
 * guard: it is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* One row xr [D] -> yr [D], h = D / 2; the tables advance by lc / ls per
 * element (1, or 0 when broadcast over D). */
static inline void ASG_CAT(rope_row, SUF)(const T *xr, const T *cr, const T *sr, T *yr, int64_t h,
                                          int64_t lc, int64_t ls) {
  for (int64_t i = 0; i < h; i++) {
    const T a = xr[i], b = xr[i + h];
    yr[i] = a * cr[i * lc] - b * sr[i * ls];
    yr[i + h] = b * cr[(i + h) * lc] + a * sr[(i + h) * ls];
  }
}

/* Rows [lo, hi) of x [R, D] -> y [R, D]. The common case (both tables
 * along D) calls the inline body with constant strides, so that loop
 * vectorizes. */
static void ASG_CAT(rope_rows, SUF)(const rope_job *j, int64_t lo, int64_t hi) {
  const asg_rope_plan *p = &j->p;
  const T *x = j->c->in[0], *cs = j->c->in[1], *sn = j->c->in[2];
  T *y = j->c->out;
  const int64_t D = p->D, h = D / 2, lc = p->last[0], ls = p->last[1];
  for (int64_t r = lo; r < hi; r++) {
    int64_t oc, os;
    table_rows(p, r, &oc, &os);
    if (lc == 1 && ls == 1)
      ASG_CAT(rope_row, SUF)(x + r * D, cs + oc, sn + os, y + r * D, h, 1, 1);
    else
      ASG_CAT(rope_row, SUF)(x + r * D, cs + oc, sn + os, y + r * D, h, lc, ls);
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
