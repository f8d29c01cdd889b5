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

/* Over one run (x row xr, mean m, kind BN_SUM / BN_SQ):
 *   BN_SUM  s0 = sum(x)
 *   BN_SQ   s0 = sum((x - m)^2), s1 = sum(x - m)  (the rounding of m, corrected
 *           by the caller)
 * T lanes over chunks of BN_CHUNK elements, each chunk's lanes then added to
 * double lanes (long runs keep their precision), those in lane order. */
ASG_ALWAYS_INLINE void ASG_CAT(bn_run_sums, SUF)(const T *xr, int64_t S, T m, int kind, double *s0,
                                                 double *s1) {
  double da[ASG_LANES] = {0}, db[ASG_LANES] = {0};
  for (int64_t c0 = 0; c0 < S; c0 += BN_CHUNK) {
    const int64_t n = S - c0 < BN_CHUNK ? S - c0 : BN_CHUNK;
    const T *x = xr + c0;
    T a[ASG_LANES] = {0}, b[ASG_LANES] = {0};
    int64_t i = 0;
    for (; i + ASG_LANES <= n; i += ASG_LANES)
      for (int l = 0; l < ASG_LANES; l++) {
        const T d = x[i + l] - m;
        a[l] += kind == BN_SUM ? x[i + l] : d * d;
        b[l] += kind == BN_SQ ? d : 0;
      }
    for (int64_t t = i; t < n; t++) {
      const T d = x[t] - m;
      a[t - i] += kind == BN_SUM ? x[t] : d * d;
      b[t - i] += kind == BN_SQ ? d : 0;
    }
    for (int l = 0; l < ASG_LANES; l++)
      da[l] += (double)a[l], db[l] += (double)b[l];
  }
  double sa = 0, sb = 0;
  for (int l = 0; l < ASG_LANES; l++)
    sa += da[l], sb += db[l];
  *s0 = sa, *s1 = sb;
}

/* The backward ops' one pass over x and dy after the mean (BN_SQDY): the
 * sums of BN_SQ and those of dy, each with the operations and order it had
 * in a pass of its own (the same bits), x read once instead of twice:
 *   q0 = sum((x - m)^2), q1 = sum(x - m), q2 = sum(dy), q3 = sum(dy * (x - m)) */
ASG_ALWAYS_INLINE void ASG_CAT(bn_run_sums4, SUF)(const T *xr, const T *dr, int64_t S, T m,
                                                  double q[4]) {
  double da[4][ASG_LANES] = {{0}};
  for (int64_t c0 = 0; c0 < S; c0 += BN_CHUNK) {
    const int64_t n = S - c0 < BN_CHUNK ? S - c0 : BN_CHUNK;
    const T *x = xr + c0, *g = dr + c0;
    T a[4][ASG_LANES] = {{0}};
    int64_t i = 0;
    for (; i + ASG_LANES <= n; i += ASG_LANES)
      for (int l = 0; l < ASG_LANES; l++) {
        const T d = x[i + l] - m;
        a[0][l] += d * d, a[1][l] += d, a[2][l] += g[i + l], a[3][l] += g[i + l] * d;
      }
    for (int64_t t = i; t < n; t++) {
      const T d = x[t] - m;
      a[0][t - i] += d * d, a[1][t - i] += d, a[2][t - i] += g[t], a[3][t - i] += g[t] * d;
    }
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < ASG_LANES; l++)
        da[k][l] += (double)a[k][l];
  }
  for (int k = 0; k < 4; k++) {
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
    case BN_SUM:
    case BN_SQ: ASG_CAT(bn_run_sums, SUF)(xr, S, m, j->pass, &j->p0[r], &j->p1[r]); break;
    case BN_Y: { /* y = (x - mean) * k + b, k = rstd * gamma */
      const T k = (T)j->k[ch], b = ((const T *)c->in[2])[ch];
      T *yr = out + r * S;
      for (int64_t i = 0; i < S; i++)
        yr[i] = (xr[i] - m) * k + b;
      break;
    }
    case BN_SQDY: {
      double q[4];
      ASG_CAT(bn_run_sums4, SUF)(xr, dy + r * S, S, m, q);
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
