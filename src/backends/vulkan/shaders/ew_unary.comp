#version 460
// out[i] = f(in[i]), [n] contiguous; op selected by p.op (uniform), with
// the loop inside each case so that every op gets its own tight loop.
// Semantics as the CPU reference (cpu_elementwise.c): integer neg/abs wrap.
#include "common.glsl"
#include "math64.glsl"
#include "ew_ops.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in_;
  uint64_t f0d, f1d; // attrs converted on the host to each dtype, as the CPU does (f64 bits)
  int64_t i0, i1;
  float f0f, f1f;
  int n, op;
};

#define EW_LOOP(EXPR)                                                                              \
  GRID_LOOP(i, n) {                                                                                \
    T x = a.v[i];                                                                                  \
    o.v[i] = (EXPR);                                                                               \
  }                                                                                                \
  break

#if defined(T_F64)
const double C_RSQRT2 = 0.70710678118654752440LF, C_GT0 = 0.79788456080286535588LF,
             C_GT1 = 0.044715LF, C_HALF = 0.5LF;
T ew_sqrt(T x) { return x < 0.0LF ? m64_nan() : sqrt(x); } // NaN below 0, as libm
#elif defined(T_F32)
const float C_RSQRT2 = 0.70710678118654752440, C_GT0 = 0.79788456080286535588, C_GT1 = 0.044715,
            C_HALF = 0.5;
T ew_sqrt(T x) { return x < 0.0 ? m32_nan() : sqrt(x); }
#endif

void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.out_), a = BufT(p.in_);
  const int n = p.n;
#if defined(T_F32)
  const T f0 = p.f0f, f1 = p.f1f;
#elif defined(T_F64)
  const T f0 = uint64BitsToDouble(p.f0d), f1 = uint64BitsToDouble(p.f1d);
#else
  const T f0 = T(p.i0), f1 = T(p.i1);
#endif
  const T one = T(1), zero = T(0);
  switch (p.op) {
  case EW_NEG: EW_LOOP(-x);
#if T_IS_FLOAT
  case EW_ABS: EW_LOOP(abs(x));
#else
  case EW_ABS: EW_LOOP(x < zero ? -x : x);
#endif
  case EW_SIGN: EW_LOOP(T(x > zero) - T(x < zero));
  case EW_RELU: EW_LOOP(x > zero ? x : zero);
  case EW_CLAMP: EW_LOOP(x < f0 ? f0 : (x > f1 ? f1 : x));
#if T_IS_FLOAT
  case EW_EXP: EW_LOOP(m_exp(x));
  case EW_LOG: EW_LOOP(m_log(x));
  case EW_SQRT: EW_LOOP(ew_sqrt(x));
  case EW_RSQRT: EW_LOOP(one / ew_sqrt(x));
  case EW_SIN: EW_LOOP(m_sin(x));
  case EW_COS: EW_LOOP(m_cos(x));
  case EW_TANH: EW_LOOP(m_tanh(x));
  case EW_ERF: EW_LOOP(m_erf(x));
  case EW_SIGMOID: // stable on both sides
    EW_LOOP(x >= zero ? one / (one + m_exp(-x)) : m_exp(x) / (one + m_exp(x)));
  case EW_LEAKY_RELU: EW_LOOP(x > zero ? x : f0 * x);
  case EW_GELU: EW_LOOP(C_HALF * x * (one + m_erf(x * C_RSQRT2)));
  case EW_GELU_TANH:
    EW_LOOP(C_HALF * x *
            (one + m_tanh(C_GT0 * (x + C_GT1 * x * x * x))));
  case EW_SILU: EW_LOOP(x >= zero ? x / (one + m_exp(-x)) : x * m_exp(x) / (one + m_exp(x)));
  case EW_ELU: EW_LOOP(x > zero ? x : f0 * m_expm1(x));
  case EW_SOFTPLUS: EW_LOOP(x * f0 > f1 ? x : m_log1p(m_exp(f0 * x)) / f0);
#endif
  default: break;
  }
}
