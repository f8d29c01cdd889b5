/* The binary, where and unary kernels for one element type, included by cpu_elementwise.c once
 * per type with SUF, T, IS_INT, POW and, for floating types, MATH(fn) (the libm function fn for
 * T: MATH(exp) is expf or exp) defined; they are undefined at the end. No include guard: it is
 * meant to be included more than once.
 *
 * Each op is written once, for one element (bin1, un1); the loops call it with the op a
 * constant (the switch in bin, un), so that after inlining every op has its own loop the
 * compiler vectorizes, as if written out by hand. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* x is a NaN; never for integers (a function, not x != x, which warns on them) */
#if IS_INT
static inline bool ASG_CAT(is_nan, SUF)(T x) {
  (void)x;
  return false;
}
#else
static inline bool ASG_CAT(is_nan, SUF)(T x) { return x != x; }
#endif

/* ---- binary: o = x op y ---- */
ASG_ALWAYS_INLINE T ASG_CAT(bin1, SUF)(asg_op op, T x, T y) {
  switch (op) {
  /* integers wrap around (two's complement, as PyTorch), with no signed
   * overflow in C: the arithmetic is done unsigned */
  case ASG_OP_ADD: return IS_INT ? (T)((uint64_t)x + (uint64_t)y) : x + y;
  case ASG_OP_SUB: return IS_INT ? (T)((uint64_t)x - (uint64_t)y) : x - y;
  case ASG_OP_MUL: return IS_INT ? (T)((uint64_t)x * (uint64_t)y) : x * y;
  case ASG_OP_DIV:
    if (IS_INT) /* x/0 = 0; MIN/-1 wraps instead of trapping */
      return y == 0 ? (T)0 : y == -1 ? (T)(0 - (uint64_t)x) : (T)(x / y);
    return x / y;
  case ASG_OP_POW: return (T)POW(x, y);
  case ASG_OP_MAXIMUM: return x > y || ASG_CAT(is_nan, SUF)(x) ? x : y; /* a NaN propagates */
  case ASG_OP_MINIMUM: return x < y || ASG_CAT(is_nan, SUF)(x) ? x : y;
  case ASG_OP_EQ: return (T)(x == y);
  case ASG_OP_NE: return (T)(x != y);
  case ASG_OP_LT: return (T)(x < y);
  case ASG_OP_LE: return (T)(x <= y);
  case ASG_OP_GT: return (T)(x > y);
  case ASG_OP_GE: return (T)(x >= y);
#if !IS_INT
  /* x = dy, y = the input of gelu: dy (Phi(y) + y phi(y)) */
  case ASG_OP_GELU_BWD:
    return x * ((T)0.5 * ((T)1 + MATH(erf)(y * (T)0.70710678118654752440)) +
                y * (MATH(exp)((T)-0.5 * y * y) * (T)0.39894228040143267794));
  case ASG_OP_GELU_TANH_BWD: { /* as gelu_tanh_bwd1_f32 (cpu_elementwise.c) */
    const T y2 = y * y, u = (T)0.79788456080286535588 * (y + (T)0.044715 * y2 * y);
    const T e = MATH(exp)((T)-2 * MATH(fabs)(u)), p = (T)1 / ((T)1 + e), q = e * p;
    return x * ((u >= 0 ? p : q) +
                (T)(2 * 0.79788456080286535588) * y * (p * q) * ((T)1 + (T)(3 * 0.044715) * y2));
  }
#endif
  default: return 0;
  }
}

/* o [n] = a [n] op b [n], a and b read with element strides sa, sb (0: one
 * broadcast element). The common stride patterns get their own loops so that
 * the compiler vectorizes them: contiguous/contiguous, contiguous/splat,
 * splat/contiguous. */
ASG_ALWAYS_INLINE void ASG_CAT(bin_loop, SUF)(asg_op op, T *o, const T *a, int64_t sa, const T *b,
                                              int64_t sb, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; i++)
      o[i] = ASG_CAT(bin1, SUF)(op, a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const T y = b[0];
    for (int64_t i = 0; i < n; i++)
      o[i] = ASG_CAT(bin1, SUF)(op, a[i], y);
  } else if (sa == 0 && sb == 1) {
    const T x = a[0];
    for (int64_t i = 0; i < n; i++)
      o[i] = ASG_CAT(bin1, SUF)(op, x, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++)
      o[i] = ASG_CAT(bin1, SUF)(op, a[i * sa], b[i * sb]);
  }
}

ASG_ALWAYS_INLINE void ASG_CAT(bin, SUF)(asg_op op, T *o, const T *a, int64_t sa, const T *b,
                                         int64_t sb, int64_t n) {
  switch (op) {
  case ASG_OP_ADD: ASG_CAT(bin_loop, SUF)(ASG_OP_ADD, o, a, sa, b, sb, n); break;
  case ASG_OP_SUB: ASG_CAT(bin_loop, SUF)(ASG_OP_SUB, o, a, sa, b, sb, n); break;
  case ASG_OP_MUL: ASG_CAT(bin_loop, SUF)(ASG_OP_MUL, o, a, sa, b, sb, n); break;
  case ASG_OP_DIV: ASG_CAT(bin_loop, SUF)(ASG_OP_DIV, o, a, sa, b, sb, n); break;
  case ASG_OP_POW: ASG_CAT(bin_loop, SUF)(ASG_OP_POW, o, a, sa, b, sb, n); break;
  case ASG_OP_MAXIMUM: ASG_CAT(bin_loop, SUF)(ASG_OP_MAXIMUM, o, a, sa, b, sb, n); break;
  case ASG_OP_MINIMUM: ASG_CAT(bin_loop, SUF)(ASG_OP_MINIMUM, o, a, sa, b, sb, n); break;
  case ASG_OP_EQ: ASG_CAT(bin_loop, SUF)(ASG_OP_EQ, o, a, sa, b, sb, n); break;
  case ASG_OP_NE: ASG_CAT(bin_loop, SUF)(ASG_OP_NE, o, a, sa, b, sb, n); break;
  case ASG_OP_LT: ASG_CAT(bin_loop, SUF)(ASG_OP_LT, o, a, sa, b, sb, n); break;
  case ASG_OP_LE: ASG_CAT(bin_loop, SUF)(ASG_OP_LE, o, a, sa, b, sb, n); break;
  case ASG_OP_GT: ASG_CAT(bin_loop, SUF)(ASG_OP_GT, o, a, sa, b, sb, n); break;
  case ASG_OP_GE: ASG_CAT(bin_loop, SUF)(ASG_OP_GE, o, a, sa, b, sb, n); break;
#if !IS_INT
  case ASG_OP_GELU_BWD: ASG_CAT(bin_loop, SUF)(ASG_OP_GELU_BWD, o, a, sa, b, sb, n); break;
  case ASG_OP_GELU_TANH_BWD:
    ASG_CAT(bin_loop, SUF)(ASG_OP_GELU_TANH_BWD, o, a, sa, b, sb, n);
    break;
#endif
  default: break;
  }
}

/* o [n] = c [n] != 0 ? a [n] : b [n], each input read with its own element
 * stride (0: broadcast). */
static void ASG_CAT(where, SUF)(T *o, const T *c, int64_t sc, const T *a, int64_t sa, const T *b,
                                int64_t sb, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    o[i] = c[i * sc] != 0 ? a[i * sa] : b[i * sb];
}

/* ---- unary: o = f(x); f0, f1 are the op's attributes (slope, alpha,
 * beta/threshold, clamp bounds) ---- */
#if IS_INT
ASG_ALWAYS_INLINE T ASG_CAT(un1, SUF)(asg_op op, T x, T lo, T hi) {
  switch (op) {
  case ASG_OP_NEG: return (T)(0 - (uint64_t)x); /* -MIN wraps to MIN */
  case ASG_OP_ABS: return x < 0 ? (T)(0 - (uint64_t)x) : x;
  case ASG_OP_SIGN: return (T)((x > 0) - (x < 0));
  case ASG_OP_RELU: return x > 0 ? x : 0;
  case ASG_OP_CLAMP: return x < lo ? lo : (x > hi ? hi : x);
  default: return 0;
  }
}
#else
ASG_ALWAYS_INLINE T ASG_CAT(un1, SUF)(asg_op op, T x, T f0, T f1) {
  const T one = 1, half = (T)0.5, zero = 0;
  switch (op) {
  case ASG_OP_NEG: return -x;
  case ASG_OP_ABS: return MATH(fabs)(x);
  case ASG_OP_SIGN: return (T)((x > 0) - (x < 0));
  case ASG_OP_EXP: return MATH(exp)(x);
  case ASG_OP_LOG: return MATH(log)(x);
  case ASG_OP_SQRT: return MATH(sqrt)(x);
  case ASG_OP_RSQRT: return one / MATH(sqrt)(x);
  case ASG_OP_SIN: return MATH(sin)(x);
  case ASG_OP_COS: return MATH(cos)(x);
  case ASG_OP_TANH: return MATH(tanh)(x);
  case ASG_OP_ERF: return MATH(erf)(x);
  case ASG_OP_SIGMOID: /* exp of a non-positive number: no overflow */
    return x >= 0 ? one / (one + MATH(exp)(-x)) : MATH(exp)(x) / (one + MATH(exp)(x));
  case ASG_OP_RELU: return x > 0 ? x : zero;
  case ASG_OP_LEAKY_RELU: return x > 0 ? x : f0 * x;
  case ASG_OP_GELU: return half * x * (one + MATH(erf)(x * (T)0.70710678118654752440));
  case ASG_OP_GELU_TANH:
    return half * x * (one + MATH(tanh)((T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x)));
  case ASG_OP_SILU:
    return x >= 0 ? x / (one + MATH(exp)(-x)) : x * MATH(exp)(x) / (one + MATH(exp)(x));
  case ASG_OP_ELU: return x > 0 ? x : f0 * MATH(expm1)(x);
  case ASG_OP_SOFTPLUS: return x * f0 > f1 ? x : MATH(log1p)(MATH(exp)(f0 * x)) / f0;
  case ASG_OP_CLAMP: return x < f0 ? f0 : (x > f1 ? f1 : x);
  default: return 0;
  }
}
#endif

/* o [n] = f(a [n]). */
ASG_ALWAYS_INLINE void ASG_CAT(un_loop, SUF)(asg_op op, T *o, const T *a, int64_t n, T f0, T f1) {
  for (int64_t i = 0; i < n; i++)
    o[i] = ASG_CAT(un1, SUF)(op, a[i], f0, f1);
}

ASG_ALWAYS_INLINE void ASG_CAT(un, SUF)(asg_op op, const asg_attrs *at, T *o, const T *a,
                                        int64_t n) {
  const T f0 = (T)at->f[0], f1 = (T)at->f[1];
  switch (op) {
  case ASG_OP_NEG: ASG_CAT(un_loop, SUF)(ASG_OP_NEG, o, a, n, f0, f1); break;
  case ASG_OP_ABS: ASG_CAT(un_loop, SUF)(ASG_OP_ABS, o, a, n, f0, f1); break;
  case ASG_OP_SIGN: ASG_CAT(un_loop, SUF)(ASG_OP_SIGN, o, a, n, f0, f1); break;
  case ASG_OP_RELU: ASG_CAT(un_loop, SUF)(ASG_OP_RELU, o, a, n, f0, f1); break;
  case ASG_OP_CLAMP: ASG_CAT(un_loop, SUF)(ASG_OP_CLAMP, o, a, n, f0, f1); break;
#if !IS_INT
  case ASG_OP_EXP: ASG_CAT(un_loop, SUF)(ASG_OP_EXP, o, a, n, f0, f1); break;
  case ASG_OP_LOG: ASG_CAT(un_loop, SUF)(ASG_OP_LOG, o, a, n, f0, f1); break;
  case ASG_OP_SQRT: ASG_CAT(un_loop, SUF)(ASG_OP_SQRT, o, a, n, f0, f1); break;
  case ASG_OP_RSQRT: ASG_CAT(un_loop, SUF)(ASG_OP_RSQRT, o, a, n, f0, f1); break;
  case ASG_OP_SIN: ASG_CAT(un_loop, SUF)(ASG_OP_SIN, o, a, n, f0, f1); break;
  case ASG_OP_COS: ASG_CAT(un_loop, SUF)(ASG_OP_COS, o, a, n, f0, f1); break;
  case ASG_OP_TANH: ASG_CAT(un_loop, SUF)(ASG_OP_TANH, o, a, n, f0, f1); break;
  case ASG_OP_ERF: ASG_CAT(un_loop, SUF)(ASG_OP_ERF, o, a, n, f0, f1); break;
  case ASG_OP_SIGMOID: ASG_CAT(un_loop, SUF)(ASG_OP_SIGMOID, o, a, n, f0, f1); break;
  case ASG_OP_LEAKY_RELU: ASG_CAT(un_loop, SUF)(ASG_OP_LEAKY_RELU, o, a, n, f0, f1); break;
  case ASG_OP_GELU: ASG_CAT(un_loop, SUF)(ASG_OP_GELU, o, a, n, f0, f1); break;
  case ASG_OP_GELU_TANH: ASG_CAT(un_loop, SUF)(ASG_OP_GELU_TANH, o, a, n, f0, f1); break;
  case ASG_OP_SILU: ASG_CAT(un_loop, SUF)(ASG_OP_SILU, o, a, n, f0, f1); break;
  case ASG_OP_ELU: ASG_CAT(un_loop, SUF)(ASG_OP_ELU, o, a, n, f0, f1); break;
  case ASG_OP_SOFTPLUS: ASG_CAT(un_loop, SUF)(ASG_OP_SOFTPLUS, o, a, n, f0, f1); break;
#endif
  default: break;
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef IS_INT
#undef POW
#undef MATH
