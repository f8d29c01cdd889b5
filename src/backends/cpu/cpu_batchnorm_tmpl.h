/* The batch-norm kernels of one element type, included by cpu_batchnorm.c
 * with SUF and T defined (undefined at the end; no include guard: included
 * once per type). x is [N, C, S] (S: the dims after the channels, 1 for
 * [N, C]); channel ch's values are N runs of S contiguous elements. Every
 * sum over a channel goes to lane i % ASG_LANES of each run, in double, and
 * the lanes are added in lane order: the same bits at every SIMD level. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Mean and 1/sqrt(var + eps) of channel ch (two passes; biased var). */
ASG_ALWAYS_INLINE void ASG_CAT(bn_stats, SUF)(const T *x, int64_t N, int64_t C, int64_t S,
                                              int64_t ch, double eps, double *mean, double *rstd) {
  double acc[ASG_LANES] = {0}, s = 0, q = 0, M = (double)(N * S);
  for (int64_t n = 0; n < N; n++) {
    const T *r = x + (n * C + ch) * S;
    int64_t i = 0;
    for (; i + ASG_LANES <= S; i += ASG_LANES)
      for (int l = 0; l < ASG_LANES; l++)
        acc[l] += (double)r[i + l];
    for (int64_t t = i; t < S; t++)
      acc[t - i] += (double)r[t];
  }
  for (int l = 0; l < ASG_LANES; l++)
    s += acc[l], acc[l] = 0;
  double m = s / M;
  for (int64_t n = 0; n < N; n++) {
    const T *r = x + (n * C + ch) * S;
    int64_t i = 0;
    for (; i + ASG_LANES <= S; i += ASG_LANES)
      for (int l = 0; l < ASG_LANES; l++) {
        double d = (double)r[i + l] - m;
        acc[l] += d * d;
      }
    for (int64_t t = i; t < S; t++) {
      double d = (double)r[t] - m;
      acc[t - i] += d * d;
    }
  }
  for (int l = 0; l < ASG_LANES; l++)
    q += acc[l];
  *mean = m;
  *rstd = 1.0 / sqrt(q / M + eps);
}

/* sum(dy) and sum(dy * (x - mean)) over channel ch. */
ASG_ALWAYS_INLINE void ASG_CAT(bn_dy_sums, SUF)(const T *dy, const T *x, int64_t N, int64_t C,
                                                int64_t S, int64_t ch, double mean, double *sdy,
                                                double *sdyx) {
  double a[ASG_LANES] = {0}, b[ASG_LANES] = {0};
  for (int64_t n = 0; n < N; n++) {
    const T *xr = x + (n * C + ch) * S, *dr = dy + (n * C + ch) * S;
    int64_t i = 0;
    for (; i + ASG_LANES <= S; i += ASG_LANES)
      for (int l = 0; l < ASG_LANES; l++) {
        double g = (double)dr[i + l];
        a[l] += g;
        b[l] += g * ((double)xr[i + l] - mean);
      }
    for (int64_t t = i; t < S; t++) {
      double g = (double)dr[t];
      a[t - i] += g;
      b[t - i] += g * ((double)xr[t] - mean);
    }
  }
  double s = 0, t = 0;
  for (int l = 0; l < ASG_LANES; l++)
    s += a[l], t += b[l];
  *sdy = s;
  *sdyx = t;
}

/* Channels [lo, hi) of the step's op:
 *   BATCHNORM(x, gamma, beta)   y  = (x - mean) * rstd * gamma + beta
 *   BATCHNORM_BWD_X(dy, x, gamma)
 *                               dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat))
 *   BATCHNORM_BWD_GAMMA(dy, x)  dgamma = sum(dy * xhat)
 * with xhat = (x - mean) * rstd, means over the channel's N * S values. */
ASG_ALWAYS_INLINE void ASG_CAT(bn_channels, SUF)(const asg_cpu_call *c, int64_t N, int64_t C,
                                                 int64_t S, int64_t lo, int64_t hi) {
  const asg_op op = c->s->op;
  const double eps = c->s->attr.f[0], M = (double)(N * S);
  const T *x = c->in[op == ASG_OP_BATCHNORM ? 0 : 1];
  T *out = c->out;
  for (int64_t ch = lo; ch < hi; ch++) {
    double mean, rstd;
    ASG_CAT(bn_stats, SUF)(x, N, C, S, ch, eps, &mean, &rstd);
    if (op == ASG_OP_BATCHNORM) {
      const T *gamma = c->in[1], *beta = c->in[2];
      double k = rstd * (double)gamma[ch], b = (double)beta[ch];
      for (int64_t n = 0; n < N; n++) {
        const T *xr = x + (n * C + ch) * S;
        T *yr = out + (n * C + ch) * S;
        for (int64_t i = 0; i < S; i++)
          yr[i] = (T)(((double)xr[i] - mean) * k + b);
      }
      continue;
    }
    const T *dy = c->in[0];
    double sdy, sdyx;
    ASG_CAT(bn_dy_sums, SUF)(dy, x, N, C, S, ch, mean, &sdy, &sdyx);
    if (op == ASG_OP_BATCHNORM_BWD_GAMMA) {
      out[ch] = (T)(sdyx * rstd);
      continue;
    }
    const T *gamma = c->in[2];
    double k = (double)gamma[ch] * rstd, mdy = sdy / M, cx = rstd * rstd * sdyx / M;
    for (int64_t n = 0; n < N; n++) {
      const T *xr = x + (n * C + ch) * S, *dr = dy + (n * C + ch) * S;
      T *dxr = out + (n * C + ch) * S;
      for (int64_t i = 0; i < S; i++)
        dxr[i] = (T)(k * ((double)dr[i] - mdy - ((double)xr[i] - mean) * cx));
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
