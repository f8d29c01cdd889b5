/* The fused Adam kernels for one element type, included by cpu_optim.c
 * once per type with T (the type), SUF (its name suffix) and SQRT (its
 * square root) defined; they are undefined at the end. No include guard: it
 * is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* ADAM_MOMENT (second false): o = m beta + g (1 - beta);
 * ADAM_MOMENT2 (second true): o = m beta + g^2 (1 - beta); over n elements */
ASG_ALWAYS_INLINE void ASG_CAT(moment, SUF)(bool second, const asg_attrs *at, T *o, const T *m,
                                            const T *g, int64_t n) {
  const T beta = (T)at->f[0], one_m = (T)at->f[1];
  if (second)
    for (int64_t i = 0; i < n; i++) {
      T gg = g[i] * g[i];
      o[i] = m[i] * beta + gg * one_m;
    }
  else
    for (int64_t i = 0; i < n; i++)
      o[i] = m[i] * beta + g[i] * one_m;
}

/* ADAM_PARAM over n elements, given the per-step scalars already in T:
 * o = p dec - step m / (sqrt(v) / sbc2 + eps) (dec only with decay) */
ASG_ALWAYS_INLINE void ASG_CAT(param, SUF)(T *o, const T *p, const T *m, const T *v, T step, T sbc2,
                                           T eps, bool decay, T dec, int64_t n) {
  if (decay)
    for (int64_t i = 0; i < n; i++) {
      T pd = p[i] * dec;
      T den = SQRT(v[i]) / sbc2 + eps;
      T q = m[i] / den;
      o[i] = pd - step * q;
    }
  else
    for (int64_t i = 0; i < n; i++) {
      T den = SQRT(v[i]) / sbc2 + eps;
      T q = m[i] / den;
      o[i] = p[i] - step * q;
    }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef T
#undef SUF
#undef SQRT
