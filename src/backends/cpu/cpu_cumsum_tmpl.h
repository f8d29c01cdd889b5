/* The cumsum kernel for one element type, included by cpu_sort.c once per
 * type with SUF, T (the type) and A (its accumulator: T's values widened)
 * defined; they are undefined at the end. No include guard: it is meant to
 * be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Rows [lo, hi) of x [outer, n, inner] -> y [outer, n, inner]: the running
 * sum along n (before the element when excl, from the end when rev). */
static void ASG_CAT(scan, SUF)(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const scan_job *j = ctx;
  const T *x = j->c->in[0];
  T *y = j->c->out;
  const int64_t n = j->n, in = j->inner, st = j->rev ? -in : in;
  for (int64_t r = lo; r < hi; r++) {
    int64_t p = (r / in) * n * in + r % in + (j->rev ? (n - 1) * in : 0);
    A acc = 0;
    for (int64_t e = 0; e < n; e++, p += st) {
      const A v = (A)x[p];
      if (!j->excl) acc += v;
      y[p] = (T)acc;
      if (j->excl) acc += v;
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef A
