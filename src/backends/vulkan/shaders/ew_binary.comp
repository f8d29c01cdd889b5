#version 460
// out = f(in0, in1[, in2]) with NumPy broadcasting: out [dims...] row-major
// over the merged dims of the host (bcast_init in vk_elementwise.c), input k
// read at sum_d idx[d] * st[k][d] (stride 0 on broadcast dims). nd == 1 is
// the fast path: every operand contiguous or a scalar, no index math.
// Ops: binary (EW_ADD..EW_GELU_TANH_BWD), where (3 inputs), copy
// (broadcast_to, any dtype of T's size). Comparisons give a 0/1 mask of T.
#include "common.glsl"
#include "math64.glsl"
#include "ew_ops.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in0, in1, in2;
  int n, op, nd, pad_;
  uint dim[8], mag[8], shf[8]; // dims and their division magics
  int st[3][8];
};

// q = r / dim[d] by multiply and shift (exact for r < 2^32, dim < 2^31)
uint ew_div(Params p, uint r, int d) {
  uint hi, lo;
  umulExtended(r, p.mag[d], hi, lo);
  return uint((uint64_t(hi) + uint64_t(r)) >> p.shf[d]);
}

#if !T_IS_FLOAT
// Integer pow as the CPU computes it, (T)pow((double)x, (double)y), exactly:
// the integer power, rounded to a double's 53 bits (i64), and the minimum
// integer for results out of range (x86's conversion of NaN/inf/large).
T ew_ipow(T xt, T yt) {
  int64_t x = int64_t(xt), y = int64_t(yt);
#if defined(T_I32)
  const int64_t TMIN = -2147483648l, TLIM = 2147483648l;
#else
  const int64_t TMIN = -9223372036854775807l - 1l;
#endif
  bool odd = (y & 1l) != 0l;
  uint64_t ux = x < 0l ? uint64_t(0ul) - uint64_t(x) : uint64_t(x);
  bool negr = x < 0l && odd;
  if (y < 0l) { // |x| >= 2: |x^y| < 1 truncates to 0; 0^-y = inf
    if (ux == 0ul) return T(TMIN);
    if (ux == 1ul) return T(negr ? -1l : 1l);
    return T(0);
  }
  uint64_t u = 1ul;
  if (ux == 0ul) {
    u = y == 0l ? 1ul : 0ul;
  } else if (ux >= 2ul) {
    if (y >= 64l) return T(TMIN); // >= 2^64
    uint64_t lim = 0xfffffffffffffffful / ux;
    for (int64_t k = 0l; k < y; k++) {
      if (u > lim) return T(TMIN);
      u *= ux;
    }
  }
#if defined(T_I32)
  if (negr ? u > uint64_t(TLIM) : u >= uint64_t(TLIM)) return T(TMIN);
  return T(negr ? -int64_t(u) : int64_t(u));
#else
  // round to nearest even at 53 bits, as the double result is
  uint h32 = uint(u >> 32);
  int msb = h32 != 0u ? 32 + findMSB(h32) : findMSB(uint(u));
  if (msb >= 53) {
    int s = msb - 52;
    uint64_t keep = u >> s, rem = u - (keep << s), hf = 1ul << (s - 1);
    if (rem > hf || (rem == hf && (keep & 1ul) != 0ul)) keep += 1ul;
    if (keep >= (1ul << (63 - s))) return T(TMIN); // >= 2^63 in magnitude
    u = keep << s;
  }
  return T(negr ? -int64_t(u) : int64_t(u));
#endif
}
#endif

#if T_IS_FLOAT
#if defined(T_F64)
const double C_RSQRT2 = 0.70710678118654752440LF, C_RSQRT2PI = 0.39894228040143267794LF,
             C_GT0 = 0.79788456080286535588LF, C_GT1 = 0.044715LF,
             C_GT0X2 = 1.59576912160573071176LF, C_GT1X3 = 0.134145LF;
#else
const float C_RSQRT2 = 0.70710678118654752440, C_RSQRT2PI = 0.39894228040143267794,
            C_GT0 = 0.79788456080286535588, C_GT1 = 0.044715, C_GT0X2 = 1.59576912160573071176,
            C_GT1X3 = 0.134145;
#endif
// g gelu'(x) = g (Phi(x) + x phi(x)), as the CPU reference (cpu_elementwise_tmpl.h)
T ew_gelu_bwd(T g, T x) {
  return g * (T(0.5) * (T(1) + m_erf(x * C_RSQRT2)) + x * (m_exp(T(-0.5) * x * x) * C_RSQRT2PI));
}
// g gelu_tanh'(x), u = a (x + c x^3): sigmoid(2u) + 2a x p q (1 + 3c x^2) with
// e = exp(-2|u|) <= 1, p = 1/(1 + e), q = e p (no overflow, no cancellation)
T ew_gelu_tanh_bwd(T g, T x) {
  const T x2 = x * x, u = C_GT0 * (x + C_GT1 * x2 * x);
  const T e = m_exp(T(-2) * abs(u)), p = T(1) / (T(1) + e), q = e * p;
  return g * ((u >= T(0) ? p : q) + C_GT0X2 * x * (p * q) * (T(1) + C_GT1X3 * x2));
}
#endif

T ew_apply(int op, T x, T y, T z) {
  switch (op) {
#if T_IS_FLOAT
  case EW_ADD: return x + y;
  case EW_SUB: return x - y;
  case EW_MUL: return x * y;
  case EW_DIV: return x / y;
  case EW_POW: return m_pow(x, y);
  case EW_MAXIMUM: return x > y || isnan(x) ? x : y; // NaN wins
  case EW_MINIMUM: return x < y || isnan(x) ? x : y;
  case EW_GELU_BWD: return ew_gelu_bwd(x, y);
  case EW_GELU_TANH_BWD: return ew_gelu_tanh_bwd(x, y);
#else
  case EW_ADD: return x + y; // wraps
  case EW_SUB: return x - y;
  case EW_MUL: return x * y;
  case EW_DIV: // x/0 = 0; MIN/-1 wraps instead of trapping
    return y == T(0) ? T(0) : (y == T(-1) ? -x : x / y);
  case EW_POW: return ew_ipow(x, y);
  case EW_MAXIMUM: return x > y ? x : y;
  case EW_MINIMUM: return x < y ? x : y;
#endif
  case EW_EQ: return T(x == y);
  case EW_NE: return T(x != y);
  case EW_LT: return T(x < y);
  case EW_LE: return T(x <= y);
  case EW_GT: return T(x > y);
  case EW_GE: return T(x >= y);
  case EW_WHERE: return x != T(0) ? y : z;
  default: return x; // EW_COPY
  }
}

void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.out_), a = BufT(p.in0), b = BufT(p.in1), c = BufT(p.in2);
  const int n = p.n, op = p.op, nd = p.nd;
  const bool two = op <= EW_WHERE, three = op == EW_WHERE;
  if (nd == 1) {
    // [n], each input contiguous (stride 1) or a scalar (stride 0)
    const uint s0 = uint(p.st[0][0]), s1 = uint(p.st[1][0]), s2 = uint(p.st[2][0]);
    if (op == EW_ADD && s0 == 1u && s1 == 1u) { // the common same-shape case
      GRID_LOOP(i, n) o.v[i] = a.v[i] + b.v[i];
    } else if (op == EW_MUL && s0 == 1u && s1 == 1u) {
      GRID_LOOP(i, n) o.v[i] = a.v[i] * b.v[i];
    } else {
      GRID_LOOP(i, n) {
        T x = a.v[i * s0];
        T y = two ? b.v[i * s1] : T(0);
        T z = three ? c.v[i * s2] : T(0);
        o.v[i] = ew_apply(op, x, y, z);
      }
    }
    return;
  }
  GRID_LOOP(i, n) {
    uint r = i;
    int o0 = 0, o1 = 0, o2 = 0;
    for (int d = nd - 1; d > 0; d--) {
      uint q = ew_div(p, r, d);
      int idx = int(r - q * p.dim[d]);
      r = q;
      o0 += idx * p.st[0][d];
      o1 += idx * p.st[1][d];
      o2 += idx * p.st[2][d];
    }
    o0 += int(r) * p.st[0][0];
    o1 += int(r) * p.st[1][0];
    o2 += int(r) * p.st[2][0];
    T x = a.v[o0];
    T y = two ? b.v[o1] : T(0);
    T z = three ? c.v[o2] : T(0);
    o.v[i] = ew_apply(op, x, y, z);
  }
}
