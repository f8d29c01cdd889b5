// Floating-point semantics of the elementwise ops on CUDA, one function per
// op: T x [, T y] (and the op's attributes f0, f1 already converted to T)
// -> T (sign, relu, clamp, the comparisons and where serve integer T too). The kernels of
// cuda_elementwise.cu call these, and the fused chains compiled at run time (cuda_fuse.c, NVRTC)
// get this very text prepended, so a fused chain computes what its steps compute one by one. Plain
// CUDA C++ without includes (NVRTC provides the math functions). Semantics follow the CPU reference
// (src/backends/cpu/cpu_elementwise.c).
#ifndef ASG_EW_OPS_CUH
#define ASG_EW_OPS_CUH

#define ASG_EW_M1(name)                                                                            \
  __device__ __forceinline__ float m_##name(float x) { return name##f(x); }                        \
  __device__ __forceinline__ double m_##name(double x) { return name(x); }
ASG_EW_M1(exp)
ASG_EW_M1(log)
ASG_EW_M1(sqrt)
ASG_EW_M1(sin)
ASG_EW_M1(cos)
ASG_EW_M1(tanh)
ASG_EW_M1(erf)
ASG_EW_M1(expm1)
ASG_EW_M1(log1p)
ASG_EW_M1(fabs)
#undef ASG_EW_M1
__device__ __forceinline__ float m_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double m_pow(double x, double y) { return pow(x, y); }

// ---- unary: ew_<op>(x, f0, f1) ----
template <class T> __device__ __forceinline__ T ew_neg(T x, T, T) { return -x; }
template <class T> __device__ __forceinline__ T ew_abs(T x, T, T) { return m_fabs(x); }
template <class T> __device__ __forceinline__ T ew_sign(T x, T, T) {
  return (T)((x > 0) - (x < 0));
}
template <class T> __device__ __forceinline__ T ew_exp(T x, T, T) { return m_exp(x); }
template <class T> __device__ __forceinline__ T ew_log(T x, T, T) { return m_log(x); }
template <class T> __device__ __forceinline__ T ew_sqrt(T x, T, T) { return m_sqrt(x); }
template <class T> __device__ __forceinline__ T ew_rsqrt(T x, T, T) { return T(1) / m_sqrt(x); }
template <class T> __device__ __forceinline__ T ew_sin(T x, T, T) { return m_sin(x); }
template <class T> __device__ __forceinline__ T ew_cos(T x, T, T) { return m_cos(x); }
template <class T> __device__ __forceinline__ T ew_tanh(T x, T, T) { return m_tanh(x); }
template <class T> __device__ __forceinline__ T ew_erf(T x, T, T) { return m_erf(x); }
template <class T> __device__ __forceinline__ T ew_sigmoid(T x, T, T) { // stable on both sides
  return x >= 0 ? T(1) / (T(1) + m_exp(-x)) : m_exp(x) / (T(1) + m_exp(x));
}
template <class T> __device__ __forceinline__ T ew_relu(T x, T, T) { return x > 0 ? x : T(0); }
template <class T> __device__ __forceinline__ T ew_leaky_relu(T x, T f0, T) {
  return x > 0 ? x : f0 * x;
}
template <class T> __device__ __forceinline__ T ew_gelu(T x, T, T) {
  return (T)0.5 * x * (T(1) + m_erf(x * (T)0.70710678118654752440));
}
template <class T> __device__ __forceinline__ T ew_gelu_tanh(T x, T, T) {
  return (T)0.5 * x * (T(1) + m_tanh((T)0.79788456080286535588 * (x + (T)0.044715 * x * x * x)));
}
template <class T> __device__ __forceinline__ T ew_silu(T x, T, T) {
  return x >= 0 ? x / (T(1) + m_exp(-x)) : x * m_exp(x) / (T(1) + m_exp(x));
}
template <class T> __device__ __forceinline__ T ew_elu(T x, T f0, T) {
  return x > 0 ? x : f0 * m_expm1(x);
}
template <class T> __device__ __forceinline__ T ew_softplus(T x, T f0, T f1) {
  return x * f0 > f1 ? x : m_log1p(m_exp(f0 * x)) / f0;
}
template <class T> __device__ __forceinline__ T ew_clamp(T x, T f0, T f1) {
  return x < f0 ? f0 : (x > f1 ? f1 : x);
}

// ---- binary: ew_<op>(x, y); comparisons give a 0/1 mask of T ----
template <class T> __device__ __forceinline__ T ew_add(T x, T y) { return x + y; }
template <class T> __device__ __forceinline__ T ew_sub(T x, T y) { return x - y; }
template <class T> __device__ __forceinline__ T ew_mul(T x, T y) { return x * y; }
template <class T> __device__ __forceinline__ T ew_div(T x, T y) { return x / y; }
template <class T> __device__ __forceinline__ T ew_pow(T x, T y) { return m_pow(x, y); }
template <class T> __device__ __forceinline__ T ew_maximum(T x, T y) { // NaN wins
  return x > y || x != x ? x : y;
}
template <class T> __device__ __forceinline__ T ew_minimum(T x, T y) {
  return x < y || x != x ? x : y;
}
template <class T> __device__ __forceinline__ T ew_eq(T x, T y) { return (T)(x == y); }
template <class T> __device__ __forceinline__ T ew_ne(T x, T y) { return (T)(x != y); }
template <class T> __device__ __forceinline__ T ew_lt(T x, T y) { return (T)(x < y); }
template <class T> __device__ __forceinline__ T ew_le(T x, T y) { return (T)(x <= y); }
template <class T> __device__ __forceinline__ T ew_gt(T x, T y) { return (T)(x > y); }
template <class T> __device__ __forceinline__ T ew_ge(T x, T y) { return (T)(x >= y); }
// gradients of gelu (float T only): g gelu'(x), x the input of gelu. Erf form:
// Phi(x) + x phi(x). Tanh form, u = a (x + c x^3): sigmoid(2u) + 2a x p q (1 + 3c x^2)
// from e = exp(-2|u|) <= 1, p = 1/(1 + e), q = e p (no overflow, no cancellation).
template <class T> __device__ __forceinline__ T ew_gelu_bwd(T g, T x) {
  return g * ((T)0.5 * (T(1) + m_erf(x * (T)0.70710678118654752440)) +
              x * (m_exp((T)-0.5 * x * x) * (T)0.39894228040143267794));
}
template <class T> __device__ __forceinline__ T ew_gelu_tanh_bwd(T g, T x) {
  const T x2 = x * x, u = (T)0.79788456080286535588 * (x + (T)0.044715 * x2 * x);
  const T e = m_exp((T)-2 * m_fabs(u)), p = T(1) / (T(1) + e), q = e * p;
  return g * ((u >= T(0) ? p : q) +
              (T)1.59576912160573071176 * x * (p * q) * (T(1) + (T)0.134145 * x2));
}
template <class T> __device__ __forceinline__ T ew_where(T c, T a, T b) {
  return c != T(0) ? a : b;
}

#endif
