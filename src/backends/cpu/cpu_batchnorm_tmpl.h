/* The batch-norm row passes of one element type, included by
 * cpu_batchnorm.c with SUF and T defined (undefined at the end; no include
 * guard: included once per type). x is [N, C, S] (S: the dims after the
 * channels, 1 for [N, C]): row r = n * C + c is S contiguous elements of
 * channel c. A pass walks rows in memory order and leaves partial sums per
 * row (lanes of T, added in lane order, then in double), which
 * cpu_batchnorm.c adds per channel in row order: the same bits at every SIMD
 * level and for any number of threads. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Over one run (x row xr, dy row dr, mean m), the sums of a pass:
 *   BN_SUM   q0 = sum(x)
 *   BN_SQ    q0 = sum((x - m)^2), q1 = sum(x - m)  (the rounding of m,
 *            corrected by the caller)
 *   BN_SQDY  those of BN_SQ, and q2 = sum(dy), q3 = sum(dy * (x - m)): the
 *            backward ops' one pass over x and dy after the mean
 * T lanes over chunks of BN_CHUNK elements, each chunk's lanes then added to
 * double lanes (long runs keep their precision), those in lane order. Each
 * sum has its own lanes, so it has the same bits whichever pass takes it.
 * kind is a constant at every call (the function is inlined): the loops
 * keep only the sums of that pass. */
/* One element's terms into lane l of a pass's sums (see bn_run_sums). */
ASG_ALWAYS_INLINE void ASG_CAT(bn_add, SUF)(T a[4][ASG_LANES], int l, int kind, T x, T g, T m) {
  const T d = x - m;
  a[0][l] += kind == BN_SUM ? x : d * d;
  if (kind != BN_SUM) a[1][l] += d;
  if (kind == BN_SQDY) a[2][l] += g, a[3][l] += g * d;
}

ASG_ALWAYS_INLINE void ASG_CAT(bn_run_sums, SUF)(const T *xr, const T *dr, int64_t S, T m, int kind,
                                                 double q[4]) {
  const int nq = kind == BN_SUM ? 1 : kind == BN_SQ ? 2 : 4;
  double da[4][ASG_LANES] = {{0}};
  for (int64_t c0 = 0; c0 < S; c0 += BN_CHUNK) {
    const int64_t n = S - c0 < BN_CHUNK ? S - c0 : BN_CHUNK;
    const T *x = xr + c0, *g = dr ? dr + c0 : NULL;
    T a[4][ASG_LANES] = {{0}};
    int64_t i = 0;
    for (; i + ASG_LANES <= n; i += ASG_LANES)
      for (int l = 0; l < ASG_LANES; l++)
        ASG_CAT(bn_add, SUF)(a, l, kind, x[i + l], g ? g[i + l] : 0, m);
    for (int64_t t = i; t < n; t++)
      ASG_CAT(bn_add, SUF)(a, (int)(t - i), kind, x[t], g ? g[t] : 0, m);
    for (int k = 0; k < nq; k++)
      for (int l = 0; l < ASG_LANES; l++)
        da[k][l] += (double)a[k][l];
  }
  for (int k = 0; k < nq; k++) {
    double sk = 0;
    for (int l = 0; l < ASG_LANES; l++)
      sk += da[k][l];
    q[k] = sk;
  }
}

/* Rows [lo, hi) of pass j->pass (see bn_pass in cpu_batchnorm.c). */
ASG_ALWAYS_INLINE void ASG_CAT(bn_rows, SUF)(const bn_job *j, int64_t lo, int64_t hi) {
  const asg_cpu_call *c = j->c;
  const int64_t C = j->C, S = j->S;
  const T *x = c->in[c->s->op == ASG_OP_BATCHNORM ? 0 : 1], *dy = c->in[0];
  T *out = c->out;
  for (int64_t r = lo; r < hi; r++) {
    const int64_t ch = r % C;
    const T *xr = x + r * S, m = (T)j->mean[ch];
    switch (j->pass) {
    case BN_SUM: {
      double q[4];
      ASG_CAT(bn_run_sums, SUF)(xr, NULL, S, m, BN_SUM, q);
      j->p0[r] = q[0];
      break;
    }
    case BN_SQ: {
      double q[4];
      ASG_CAT(bn_run_sums, SUF)(xr, NULL, S, m, BN_SQ, q);
      j->p0[r] = q[0], j->p1[r] = q[1];
      break;
    }
    case BN_Y: { /* y = (x - mean) * k + b, k = rstd * gamma */
      const T k = (T)j->k[ch], b = ((const T *)c->in[2])[ch];
      T *yr = out + r * S;
      for (int64_t i = 0; i < S; i++)
        yr[i] = (xr[i] - m) * k + b;
      break;
    }
    case BN_SQDY: {
      double q[4];
      ASG_CAT(bn_run_sums, SUF)(xr, dy + r * S, S, m, BN_SQDY, q);
      j->p0[r] = q[0], j->p1[r] = q[1], j->p2[r] = q[2], j->p3[r] = q[3];
      break;
    }
    default: { /* BN_DX: dx = k * (dy - mean(dy) - (x - mean) * cx), k = gamma * rstd */
      const T k = (T)j->k[ch], mdy = (T)j->mdy[ch], cx = (T)j->cx[ch];
      const T *dr = dy + r * S;
      T *dxr = out + r * S;
      for (int64_t i = 0; i < S; i++)
        dxr[i] = k * (dr[i] - mdy - (xr[i] - m) * cx);
      break;
    }
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
