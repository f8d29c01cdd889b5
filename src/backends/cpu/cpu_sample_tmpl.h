/* The sample_filter row kernel for one element type, included by
 * cpu_sample.c once per type with SUF, T (the type), K (its order key
 * type), KEY (the key function) and BITS (K's width) defined; they are
 * undefined at the end. No include guard: it is meant to be included more
 * than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* One row x [V] -> y [V], steps 1-4 of the comment in cpu_sample.c. */
static void ASG_CAT(row, SUF)(const T *x, T *y, int64_t V, int64_t k, double p) {
  T m = -(T)INFINITY;
  for (int64_t i = 0; i < V; i++) {
    if (isnan(x[i])) {
      for (int64_t j = 0; j < V; j++)
        y[j] = (T)NAN;
      return;
    }
    if (x[i] > m) m = x[i];
  }
  K kk = 0, kp = 0;
  if (k > 0 && k < V) /* top-k: count(key >= Kk) >= k */
    for (int b = BITS - 1; b >= 0; b--) {
      const K cand = kk | ((K)1 << b);
      int64_t n = 0;
      for (int64_t i = 0; i < V; i++)
        n += KEY(x[i]) >= cand;
      if (n >= k) kk = cand;
    }
  if (!(p > 0)) {
    kp = KEY(m);
  } else if (p < 1) { /* top-p: sum(w : key >= Kp) >= p Z, w kept in y */
    double z = 0;
    for (int64_t i = 0; i < V; i++) {
      y[i] = KEY(x[i]) < kk ? 0 : x[i] == m ? 1 : (T)exp((double)(x[i] - m));
      z += (double)y[i];
    }
    const double goal = p * z;
    for (int b = BITS - 1; b >= 0; b--) {
      const K cand = kp | ((K)1 << b);
      double sum = 0;
      for (int64_t i = 0; i < V; i++)
        if (KEY(x[i]) >= cand) sum += (double)y[i];
      if (sum >= goal) kp = cand;
    }
  }
  const K thr = kk > kp ? kk : kp;
  for (int64_t i = 0; i < V; i++)
    y[i] = KEY(x[i]) >= thr ? x[i] : -(T)INFINITY;
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef K
#undef KEY
#undef BITS
