/* The batch-norm row passes of one element type, included by
 * cpu_batchnorm.c with SUF and T defined (undefined at the end; no include
 * guard: included once per type). x is [N, C, S] (S: the dims after the
 * channels, 1 for [N, C]): row r = n * C + c is S contiguous elements of
 * channel c. A pass walks rows in memory order and leaves one partial sum
 * per row (lanes of T, added in lane order, then in double), which
 * cpu_batchnorm.c adds per channel in row order: the same bits at every SIMD
 * level and for any number of threads. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* sum of r[0, S) (sq false), of (r - m)^2 (sq true). */
ASG_ALWAYS_INLINE double ASG_CAT(bn_run_sum, SUF)(const T *r, int64_t S, bool sq, T m) {
  T acc[ASG_LANES] = {0};
  int64_t i = 0;
  for (; i + ASG_LANES <= S; i += ASG_LANES)
    for (int l = 0; l < ASG_LANES; l++) {
      T d = r[i + l] - m;
      acc[l] += sq ? d * d : r[i + l];
    }
  for (int64_t t = i; t < S; t++) {
    T d = r[t] - m;
    acc[t - i] += sq ? d * d : r[t];
  }
  double s = 0;
  for (int l = 0; l < ASG_LANES; l++)
    s += (double)acc[l];
  return s;
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
    case BN_SUM: j->p0[r] = ASG_CAT(bn_run_sum, SUF)(xr, S, false, 0); break;
    case BN_SQ: j->p0[r] = ASG_CAT(bn_run_sum, SUF)(xr, S, true, m); break;
    case BN_Y: { /* y = (x - mean) * k + b, k = rstd * gamma */
      const T k = (T)j->k[ch], b = ((const T *)c->in[2])[ch];
      T *yr = out + r * S;
      for (int64_t i = 0; i < S; i++)
        yr[i] = (xr[i] - m) * k + b;
      break;
    }
    case BN_DY: { /* sum(dy), sum(dy * (x - mean)) */
      const T *dr = dy + r * S;
      T a[ASG_LANES] = {0}, b[ASG_LANES] = {0};
      int64_t i = 0;
      for (; i + ASG_LANES <= S; i += ASG_LANES)
        for (int l = 0; l < ASG_LANES; l++) {
          a[l] += dr[i + l];
          b[l] += dr[i + l] * (xr[i + l] - m);
        }
      for (int64_t t = i; t < S; t++) {
        a[t - i] += dr[t];
        b[t - i] += dr[t] * (xr[t] - m);
      }
      double sa = 0, sb = 0;
      for (int l = 0; l < ASG_LANES; l++)
        sa += (double)a[l], sb += (double)b[l];
      j->p0[r] = sa, j->p1[r] = sb;
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
