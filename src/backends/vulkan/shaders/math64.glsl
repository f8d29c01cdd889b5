// Transcendentals for float and double, overloaded: m_exp, m_log, m_log1p,
// m_expm1, m_sin, m_cos, m_tanh, m_erf, m_pow (include after common.glsl).
//
// GLSL has no double exp/log/sin/cos/tanh/pow and no erf at all, and the
// float builtins are loosely specified at the edges (tanh may give NaN for
// large |x|, pow is undefined for x < 0, sin/cos/log are only loosely
// accurate). Doubles: range reduction (Cody-Waite, Payne-Hanek for huge
// sin/cos arguments) plus Taylor series / continued fractions, double-double
// where it matters (pow, erf's e^-x^2): <= ~6 ulp against glibc, with C99
// results for infinities, NaN, signed zeros, overflow and underflow. Floats:
// the same methods in float, <= ~4 ulp on every driver (lavapipe's builtin
// log is only ~2^-21 absolute near 1 and its sin/cos fail for large x).
//
// Uncalled functions are dropped and no global double constants exist
// (macros instead), so a float/int shader including this file declares no
// Float64 capability.
#ifndef ASG_MATH64_GLSL
#define ASG_MATH64_GLSL

// ---------------------------------------------------------------- helpers
float m32_inf() { return uintBitsToFloat(0x7f800000u); }
float m32_nan() { return uintBitsToFloat(0x7fc00000u); }
bool m32_signbit(float x) { return (floatBitsToUint(x) & 0x80000000u) != 0u; }

double m64_inf() { return packDouble2x32(uvec2(0u, 0x7ff00000u)); }
double m64_nan() { return packDouble2x32(uvec2(0u, 0x7ff80000u)); }
bool m64_signbit(double x) { return (unpackDouble2x32(x).y & 0x80000000u) != 0u; }
// 2^k for k in [-1022, 1023], built from its bits (ldexp's range is not
// portable at the extremes).
double m64_pow2i(int k) { return packDouble2x32(uvec2(0u, uint(k + 1023) << 20)); }
// p * 2^k for |k| <= 2100: two exact scalings, one rounding (subnormals).
double m64_scale(double p, int k) {
  int k1 = k >> 1;
  return p * m64_pow2i(k1) * m64_pow2i(k - k1);
}

// Cody-Waite ln2: LN2_HI has 40 significant bits, so k * LN2_HI is exact for
// the |k| <= 1100 that exp and log need.
#define M64_LN2_HI 0.6931471805601177LF
#define M64_LN2_LO -1.7239444525614835e-13LF
#define M64_INV_LN2 1.4426950408889634LF

// ------------------------------------------------------------------- exp
double m64_exp_dd(double hi, double lo); // below: e^(hi + lo)

double m_exp(double x) {
  if (isnan(x)) return x;
  if (x > 709.782712893383973096LF) return m64_inf();
  if (x < -745.1332191019412LF) return 0.0LF;
  return m64_exp_dd(x, 0.0LF);
}

// 2^k for k in [-126, 127]; x * 2^k for |k| <= 252 in two exact steps
float m32_pow2i(int k) { return uintBitsToFloat(uint(k + 127) << 23); }
float m32_scale(float p, int k) {
  int k1 = k >> 1;
  return p * m32_pow2i(k1) * m32_pow2i(k - k1);
}

// Own code rather than the builtin: the same few-ulp result on every driver
// (the builtin is exp2(x log2 e) on many GPUs, whose error grows with |x|).
float m_exp(float x) {
  if (isnan(x)) return x;
  if (x > 88.72283935546875) return m32_inf();
  if (x < -103.97208) return 0.0;
  float k = roundEven(x * 1.44269504);
  precise float r = (x - k * 0.693145751953125) - k * 1.428606765e-06; // 16-bit hi: exact
  float p = 1.98412698e-04; // Taylor to r^7
  p = p * r + 1.38888889e-03;
  p = p * r + 8.33333333e-03;
  p = p * r + 4.16666667e-02;
  p = p * r + 1.66666667e-01;
  p = p * r + 0.5;
  p = p * r * r + r;
  return m32_scale(1.0 + p, int(k));
}

// ------------------------------------------------------------------- log
double m_log(double x) {
  if (isnan(x)) return x;
  if (x < 0.0LF) return m64_nan();
  if (x == 0.0LF) return -m64_inf();
  if (isinf(x)) return x;
  int eadj = 0;
  if (x < 2.2250738585072014e-308LF) { // subnormal: normalize first
    x *= 18014398509481984.0LF;        // 2^54
    eadj = -54;
  }
  int e;
  double m = frexp(x, e); // [0.5, 1)
  if (m < 0.70710678118654752440LF) {
    m *= 2.0LF;
    e -= 1;
  }
  // log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716: series to s^25
  precise double f = m - 1.0LF; // exact
  double s = f / (2.0LF + f);
  double z = s * s;
  double q = 1.0LF / 25.0LF;
  q = q * z + 1.0LF / 23.0LF;
  q = q * z + 1.0LF / 21.0LF;
  q = q * z + 1.0LF / 19.0LF;
  q = q * z + 1.0LF / 17.0LF;
  q = q * z + 1.0LF / 15.0LF;
  q = q * z + 1.0LF / 13.0LF;
  q = q * z + 1.0LF / 11.0LF;
  q = q * z + 1.0LF / 9.0LF;
  q = q * z + 1.0LF / 7.0LF;
  q = q * z + 1.0LF / 5.0LF;
  q = q * z + 1.0LF / 3.0LF;
  // 2s = f - s f, computed so that f's exact bits dominate: log(m) = f - s(f - 2 z q)
  precise double lm = f - s * (f - 2.0LF * z * q);
  double ed = double(e + eadj);
  precise double res = ed * M64_LN2_HI + (lm + ed * M64_LN2_LO);
  return res;
}

// As the double version (builtins are only ~2^-21 absolute near 1 on some
// drivers): 2 atanh(s) to s^11.
float m_log(float x) {
  if (isnan(x)) return x;
  if (x < 0.0) return m32_nan();
  if (x == 0.0) return -m32_inf();
  if (isinf(x)) return x;
  int eadj = 0;
  if (x < 1.17549435e-38) { // subnormal (where the device keeps them)
    x *= 16777216.0;
    eadj = -24;
  }
  int e;
  float m = frexp(x, e);
  if (m < 0.70710678) {
    m *= 2.0;
    e -= 1;
  }
  precise float f = m - 1.0;
  float s = f / (2.0 + f);
  float z = s * s;
  float q = 1.0 / 11.0;
  q = q * z + 1.0 / 9.0;
  q = q * z + 1.0 / 7.0;
  q = q * z + 1.0 / 5.0;
  q = q * z + 1.0 / 3.0;
  precise float lm = f - s * (f - 2.0 * z * q);
  float ed = float(e + eadj);
  precise float res = ed * 0.693145751953125 + (lm + ed * 1.428606765e-06);
  return res;
}

// ----------------------------------------------------------------- expm1
double m_expm1(double x) {
  if (isnan(x)) return x;
  if (x > 709.782712893383973096LF) return m64_inf();
  if (x < -38.0LF) return -1.0LF;
  if (abs(x) < 0.5LF) { // x (1 + x/2! + ... + x^14/15!), next term < 1e-18
    double p = 7.647163731819816e-13LF;
    p = p * x + 1.1470745597729725e-11LF;
    p = p * x + 1.6059043836821613e-10LF;
    p = p * x + 2.08767569878681e-09LF;
    p = p * x + 2.505210838544172e-08LF;
    p = p * x + 2.755731922398589e-07LF;
    p = p * x + 2.7557319223985893e-06LF;
    p = p * x + 2.48015873015873e-05LF;
    p = p * x + 0.0001984126984126984LF;
    p = p * x + 0.001388888888888889LF;
    p = p * x + 0.008333333333333333LF;
    p = p * x + 0.041666666666666664LF;
    p = p * x + 0.16666666666666666LF;
    p = p * x + 0.5LF;
    return x + x * (x * p); // -0 stays -0
  }
  return m_exp(x) - 1.0LF;
}

float m_expm1(float x) {
  if (isnan(x)) return x;
  if (x > 88.72283935546875) return m32_inf();
  if (x < -18.0) return -1.0;
  if (abs(x) < 0.5) { // Taylor to x^9 (next term < 1.1e-9 relative)
    float p = 2.7557319e-06;
    p = p * x + 2.4801587e-05;
    p = p * x + 1.9841270e-04;
    p = p * x + 1.3888889e-03;
    p = p * x + 8.3333333e-03;
    p = p * x + 4.1666667e-02;
    p = p * x + 1.6666667e-01;
    p = p * x + 0.5;
    return x + x * (x * p);
  }
  return m_exp(x) - 1.0;
}

// ----------------------------------------------------------------- log1p
// log(u) * x / (u - 1) with u = 1 + x rounded: the quotient corrects u's
// rounding error to first order (Goldberg's trick).
double m_log1p(double x) {
  if (isnan(x)) return x;
  if (x < -1.0LF) return m64_nan();
  if (x == -1.0LF) return -m64_inf();
  if (isinf(x)) return x;
  precise double u = 1.0LF + x;
  if (u == 1.0LF) return x;
  precise double d = u - 1.0LF;
  return m_log(u) * (x / d);
}

float m_log1p(float x) {
  if (isnan(x)) return x;
  if (x < -1.0) return m32_nan();
  if (x == -1.0) return -m32_inf();
  if (isinf(x)) return x;
  precise float u = 1.0 + x;
  if (u == 1.0) return x;
  precise float d = u - 1.0;
  return m_log(u) * (x / d);
}

// ------------------------------------------------------------------ tanh
// tanh|x| = t / (t + 2), t = expm1(2|x|): no cancellation near 0, saturates.
double m_tanh(double x) {
  if (isnan(x) || x == 0.0LF) return x;
  double a = abs(x), r = 1.0LF;
  if (a < 22.0LF) {
    double t = m_expm1(2.0LF * a);
    r = t / (t + 2.0LF);
  }
  return x < 0.0LF ? -r : r;
}

float m_tanh(float x) {
  if (isnan(x) || x == 0.0) return x;
  float a = abs(x), r = 1.0;
  if (a < 9.5) {
    float t = m_expm1(2.0 * a);
    r = t / (t + 2.0);
  }
  return x < 0.0 ? -r : r;
}

// --------------------------------------------------------------- sin/cos
// Reduction x = k pi/2 + r, |r| <= ~pi/4: Cody-Waite for moderate |x|
// (parts of pi/2 short enough that k * part is exact), else Payne-Hanek:
// the bits of 2/pi around x's exponent times x's mantissa in 32-bit limbs.
const uint M64_TWO_OVER_PI[40] = uint[40](
    0xA2F9836Eu, 0x4E441529u, 0xFC2757D1u, 0xF534DDC0u, 0xDB629599u, 0x3C439041u, 0xFE5163ABu,
    0xDEBBC561u, 0xB7246E3Au, 0x424DD2E0u, 0x06492EEAu, 0x09D1921Cu, 0xFE1DEB1Cu, 0xB129A73Eu,
    0xE88235F5u, 0x2EBB4484u, 0xE99C7026u, 0xB45F7E41u, 0x3991D639u, 0x835339F4u, 0x9C845F8Bu,
    0xBDF9283Bu, 0x1FF897FFu, 0xDE05980Fu, 0xEF2F118Bu, 0x5A0A6D1Fu, 0x6D367ECFu, 0x27CB09B7u,
    0x4F463F66u, 0x9E5FEA2Du, 0x7527BAC7u, 0xEBE5F17Bu, 0x3D0739F7u, 0x8A5292EAu, 0x6BFB5FB1u,
    0x1F8D5D08u, 0x56033046u, 0xFC7B6BABu, 0xF0CFBC20u, 0x9AF4361Du);

// 32 bits of the 288-bit little-endian number P starting at bit pos (bits
// outside P are 0).
uint m_ph_bits(uint P[9], int pos) {
  int w = pos >> 5, sh = pos & 31;
  uint lo = (w >= 0 && w < 9) ? P[w] : 0u;
  uint hi = (w + 1 >= 0 && w + 1 < 9) ? P[w + 1] : 0u;
  return sh == 0 ? lo : (lo >> sh) | (hi << (32 - sh));
}

// Payne-Hanek for a = M 2^E (M = mhi 2^32 + mlo < 2^53, E >= -40): returns
// q mod 4 of a * 2/pi = q + f, |f| <= 1/2, |f| in 128 bits f1..f4 (f1 the
// most significant word), neg = f < 0. 7 words of 2/pi leave an error
// < 2^-138, far below the smallest |f| of any double (~2^-61).
uint m_payne_hanek(int E, uint mlo, uint mhi, out uint f[4], out bool neg) {
  // words before i0 only add multiples of 4 to a * 2/pi
  int i0 = E > 2 ? (E - 2) >> 5 : 0;
  uint P[9] = uint[9](0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
  uint m[2] = uint[2](mlo, mhi);
  for (int h = 0; h < 2; h++) { // P += m[h] W 2^(32 h), W = words i0..i0+6
    uint carry = 0u;
    for (int j = 0; j < 7; j++) {
      uint hiw, low;
      umulExtended(M64_TWO_OVER_PI[i0 + 6 - j], m[h], hiw, low);
      uint64_t t = uint64_t(low) + uint64_t(P[j + h]) + uint64_t(carry);
      P[j + h] = uint(t);
      carry = hiw + uint(t >> 32); // the whole sum is < 2^64
    }
    P[7 + h] = carry;
  }
  // bit i of P weighs 2^(i + E - 32 (i0 + 7)): the binary point is at pt
  int pt = 32 * (i0 + 7) - E;
  uint q = m_ph_bits(P, pt) & 3u;
  for (int k = 0; k < 4; k++)
    f[k] = m_ph_bits(P, pt - 32 * (k + 1));
  neg = (f[0] & 0x80000000u) != 0u;
  if (neg) { // f >= 1/2: round the quotient up, |f| = 1 - f (to within 2^-128)
    q += 1u;
    for (int k = 0; k < 4; k++)
      f[k] = ~f[k];
  }
  return q & 3u;
}

// r with x = q pi/2 + r, |r| <= ~pi/4; returns q mod 4. x finite.
int m64_rem_pio2(double x, out double r) {
  double a = abs(x);
  int q;
  if (a < 524288.0LF) {
    double k = roundEven(a * 0.6366197723675814LF);
    precise double t = a - k * 1.5707963267341256LF; // exact: k < 2^19, 33-bit part
    t = t - k * 6.077100506303966e-11LF;
    t = t - k * 2.0222662487959506e-21LF;
    r = t;
    q = int(k);
  } else {
    uvec2 b = unpackDouble2x32(a);
    uint f[4];
    bool neg;
    q = int(m_payne_hanek(int(b.y >> 20) - 1075, b.x, (b.y & 0xfffffu) | 0x100000u, f, neg));
    const double S = 2.3283064365386963e-10LF; // 2^-32
    double fr = (double(f[0]) + (double(f[1]) + (double(f[2]) + double(f[3]) * S) * S) * S) * S;
    double rr = fr * 1.5707963267948966LF + fr * 6.123233995736766e-17LF; // pi/2 = hi + lo
    r = neg ? -rr : rr;
  }
  if (x < 0.0LF) {
    r = -r;
    q = -q;
  }
  return q & 3;
}

// sin and cos on |r| <= pi/4 (Taylor to r^21 / r^22: next terms < 1e-19)
double m64_sin_poly(double r) {
  double z = r * r;
  double p = -1.9572941063391263e-20LF;
  p = p * z + 8.22063524662433e-18LF;
  p = p * z - 2.8114572543455206e-15LF;
  p = p * z + 7.647163731819816e-13LF;
  p = p * z - 1.6059043836821613e-10LF;
  p = p * z + 2.505210838544172e-08LF;
  p = p * z - 2.7557319223985893e-06LF;
  p = p * z + 0.0001984126984126984LF;
  p = p * z - 0.008333333333333333LF;
  p = p * z + 0.16666666666666666LF;
  return r - r * z * p;
}

double m64_cos_poly(double r) {
  double z = r * r;
  double p = -8.896791392450574e-22LF;
  p = p * z + 4.110317623312165e-19LF;
  p = p * z - 1.5619206968586225e-16LF;
  p = p * z + 4.779477332387385e-14LF;
  p = p * z - 1.1470745597729725e-11LF;
  p = p * z + 2.08767569878681e-09LF;
  p = p * z - 2.755731922398589e-07LF;
  p = p * z + 2.48015873015873e-05LF;
  p = p * z - 0.001388888888888889LF;
  p = p * z + 0.041666666666666664LF;
  // 1 - z/2 + z^2 p, with the rounding of 1 - z/2 recovered
  double h = 0.5LF * z;
  precise double w = 1.0LF - h;
  precise double c = w + (((1.0LF - w) - h) + z * z * p);
  return c;
}

double m_sin(double x) {
  if (isinf(x) || isnan(x)) return m64_nan();
  if (abs(x) < 0.7853981633974483LF) return m64_sin_poly(x);
  double r;
  int q = m64_rem_pio2(x, r);
  double v = (q & 1) == 0 ? m64_sin_poly(r) : m64_cos_poly(r);
  return q >= 2 ? -v : v;
}

double m_cos(double x) {
  if (isinf(x) || isnan(x)) return m64_nan();
  if (abs(x) < 0.7853981633974483LF) return m64_cos_poly(x);
  double r;
  int q = m64_rem_pio2(x, r);
  double v = (q & 1) == 0 ? m64_cos_poly(r) : m64_sin_poly(r);
  return (q == 1 || q == 2) ? -v : v;
}

// Floats: own code too (the builtins' reduction of large arguments is poor
// on some drivers). Cody-Waite with parts of 12, 12, 24 bits for |x| < 6000
// (k < 2^12), Payne-Hanek above.
int m32_rem_pio2(float x, out float r) {
  float a = abs(x);
  int q;
  if (a < 6000.0) {
    float k = roundEven(a * 0.63661975);
    precise float t = a - k * 1.57080078125;
    t = t - k * -4.453584551811218e-06;
    t = t - k * -8.705515752716053e-10;
    r = t;
    q = int(k);
  } else {
    uint b = floatBitsToUint(a), f[4];
    bool neg;
    q = int(m_payne_hanek(int(b >> 23) - 150, (b & 0x7fffffu) | 0x800000u, 0u, f, neg));
    float fr = (float(f[0]) + float(f[1]) * 2.3283064e-10) * 2.3283064e-10;
    float rr = fr * 1.57079633;
    r = neg ? -rr : rr;
  }
  if (x < 0.0) {
    r = -r;
    q = -q;
  }
  return q & 3;
}

float m32_sin_poly(float r) { // Taylor to r^9
  float z = r * r;
  float p = -2.75573192e-06;
  p = p * z + 1.98412698e-04;
  p = p * z - 8.33333333e-03;
  p = p * z + 1.66666667e-01;
  return r - r * z * p;
}

float m32_cos_poly(float r) { // Taylor to r^10
  float z = r * r;
  float p = -2.75573192e-07;
  p = p * z + 2.48015873e-05;
  p = p * z - 1.38888889e-03;
  p = p * z + 4.16666667e-02;
  float h = 0.5 * z;
  precise float w = 1.0 - h;
  precise float c = w + (((1.0 - w) - h) + z * z * p);
  return c;
}

float m_sin(float x) {
  if (isinf(x) || isnan(x)) return m32_nan();
  if (abs(x) < 0.78539816) return m32_sin_poly(x);
  float r;
  int q = m32_rem_pio2(x, r);
  float v = (q & 1) == 0 ? m32_sin_poly(r) : m32_cos_poly(r);
  return q >= 2 ? -v : v;
}

float m_cos(float x) {
  if (isinf(x) || isnan(x)) return m32_nan();
  if (abs(x) < 0.78539816) return m32_cos_poly(x);
  float r;
  int q = m32_rem_pio2(x, r);
  float v = (q & 1) == 0 ? m32_cos_poly(r) : m32_sin_poly(r);
  return (q == 1 || q == 2) ? -v : v;
}

// ------------------------------------------------- double-double helpers
// Exact products without FMA (Veltkamp/Dekker: |a|, |b| < 2^995): a b = p + e.
void m64_two_prod(double a, double b, out double p, out double e) {
  precise double ca = 134217729.0LF * a, ah = ca - (ca - a), al = a - ah;
  precise double cb = 134217729.0LF * b, bh = cb - (cb - b), bl = b - bh;
  precise double pp = a * b;
  precise double ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
  p = pp;
  e = ee;
}

// e^(hi + lo), |lo| << ulp(hi); hi within exp's finite range
double m64_exp_dd(double hi, double lo) {
  double k = roundEven(hi * M64_INV_LN2);
  precise double r = ((hi - k * M64_LN2_HI) - k * M64_LN2_LO) + lo; // |r| <= 0.3466
  // e^r by its Taylor series to r^13 (next term < 5e-18)
  double p = 1.6059043836821613e-10LF;
  p = p * r + 2.08767569878681e-09LF;
  p = p * r + 2.505210838544172e-08LF;
  p = p * r + 2.755731922398589e-07LF;
  p = p * r + 2.7557319223985893e-06LF;
  p = p * r + 2.48015873015873e-05LF;
  p = p * r + 0.0001984126984126984LF;
  p = p * r + 0.001388888888888889LF;
  p = p * r + 0.008333333333333333LF;
  p = p * r + 0.041666666666666664LF;
  p = p * r + 0.16666666666666666LF;
  p = p * r + 0.5LF;
  p = p * r * r + r; // keeps r's low bits: e^r = 1 + (r + r^2 p)
  return m64_scale(1.0LF + p, int(k));
}

// log x = hi + lo to ~2^-100 relative, x positive finite normal or subnormal
void m64_log_dd(double x, out double hi, out double lo) {
  int eadj = 0;
  if (x < 2.2250738585072014e-308LF) {
    x *= 18014398509481984.0LF;
    eadj = -54;
  }
  int e;
  double m = frexp(x, e);
  if (m < 0.70710678118654752440LF) {
    m *= 2.0LF;
    e -= 1;
  }
  precise double f = m - 1.0LF;      // exact
  precise double uh = 2.0LF + f;     // 2 + f = uh + ul exactly
  precise double ul = f - (uh - 2.0LF);
  double sh = f / uh;                // s = f / (2 + f) = sh + sl
  double ph, pe;
  m64_two_prod(sh, uh, ph, pe);
  precise double sl = (((f - ph) - pe) - sh * ul) / uh;
  double z = sh * sh;
  double q = 1.0LF / 25.0LF;
  q = q * z + 1.0LF / 23.0LF;
  q = q * z + 1.0LF / 21.0LF;
  q = q * z + 1.0LF / 19.0LF;
  q = q * z + 1.0LF / 17.0LF;
  q = q * z + 1.0LF / 15.0LF;
  q = q * z + 1.0LF / 13.0LF;
  q = q * z + 1.0LF / 11.0LF;
  q = q * z + 1.0LF / 9.0LF;
  q = q * z + 1.0LF / 7.0LF;
  q = q * z + 1.0LF / 5.0LF;
  q = q * z + 1.0LF / 3.0LF;
  // log m = 2 s + 2 s z q; log x = e ln2 + log m
  double ed = double(e + eadj);
  precise double a = ed * M64_LN2_HI; // exact
  precise double b = 2.0LF * sh;
  precise double s1 = a + b; // two-sum
  precise double bb = s1 - a;
  precise double err = (a - (s1 - bb)) + (b - bb);
  precise double tail = err + (2.0LF * sl + (2.0LF * sh * z * q + ed * M64_LN2_LO));
  precise double h2 = s1 + tail;
  hi = h2;
  lo = tail - (h2 - s1);
}

// ------------------------------------------------------------------- erf
// |x| < 1.75: erf x = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!!
// (positive terms, no cancellation); above: erfc by its continued fraction
// erfc x = e^(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
// e^(-x^2) with x^2 kept exactly (hi + lo).
double m_erf(double x) {
  if (isnan(x) || x == 0.0LF) return x;
  double a = abs(x), r;
  if (a >= 6.0LF) {
    r = 1.0LF;
  } else {
    double x2h, x2l;
    m64_two_prod(a, a, x2h, x2l);
    double ex = m64_exp_dd(-x2h, -x2l);
    if (a < 1.75LF) {
      // nested (Horner) form: 1 + w/3 (1 + w/5 (1 + ...)), w = 2 x^2; 32
      // terms leave < 1e-19 at 1.75
      double w = 2.0LF * x2h, acc = 1.0LF;
      for (int n = 32; n >= 1; n--)
        acc = 1.0LF + acc * (w / double(2 * n + 1));
      double s = a * acc;
      r = 1.1283791670955126LF * ex * s;
    } else {
      double f = a;
      for (int k = 64; k >= 1; k--) // converged to < 1e-17 from 1.75 on
        f = a + (0.5LF * double(k)) / f;
      r = 1.0LF - ex * 0.5641895835477563LF / f;
    }
  }
  return x < 0.0LF ? -r : r;
}

// |x| < 0.75: Taylor x sum c_n x^2n (to x^21); 0.75 <= |x| < 4: 1 - e^(-x^2)
// g(x), g = e^(x^2) erfc(x) fitted (Chebyshev, own fit) by a polynomial in
// u = (1/x - 0.7916667) * 1.8461538 on [-1, 1]; ~7e-8 absolute.
float m_erf(float x) {
  if (isnan(x) || x == 0.0) return x;
  float a = abs(x), r;
  if (a >= 4.0) {
    r = 1.0;
  } else if (a < 0.75) {
    float z = a * a;
    float p = 1.48071928e-08;
    p = p * z - 1.63658447e-07;
    p = p * z + 1.64621144e-06;
    p = p * z - 1.49256504e-05;
    p = p * z + 1.20553330e-04;
    p = p * z - 8.54832702e-04;
    p = p * z + 5.22397763e-03;
    p = p * z - 2.68661706e-02;
    p = p * z + 1.12837917e-01;
    p = p * z - 3.76126389e-01;
    p = p * z + 1.12837917;
    r = a * p;
  } else {
    float u = (1.0 / a - 0.79166667) * 1.84615385;
    float p = 9.311333590e-06;
    p = p * u - 1.554022057e-05;
    p = p * u - 1.425166625e-05;
    p = p * u + 7.477312431e-05;
    p = p * u - 2.002384512e-04;
    p = p * u + 4.818389275e-04;
    p = p * u - 7.832074910e-04;
    p = p * u - 1.356963172e-04;
    p = p * u + 7.886421323e-03;
    p = p * u - 4.353045749e-02;
    p = p * u + 1.780710607e-01;
    p = p * u + 3.650936380e-01;
    r = 1.0 - m_exp(-a * a) * p;
  }
  return x < 0.0 ? -r : r;
}

// ------------------------------------------------------------------- pow
// C99 pow: pow(x, +-0) = 1, pow(1, y) = 1 (even NaN); negative x only with
// integer y; zeros and infinities by the sign rules of Annex F.
double m_pow(double x, double y) {
  if (y == 0.0LF || x == 1.0LF) return 1.0LF;
  if (isnan(x) || isnan(y)) return m64_nan();
  double ax = abs(x);
  if (isinf(y)) {
    if (ax == 1.0LF) return 1.0LF;
    return (ax < 1.0LF) == (y < 0.0LF) ? m64_inf() : 0.0LF;
  }
  bool yint = floor(y) == y;
  bool yodd = yint && abs(y) < 9007199254740992.0LF && fract(y * 0.5LF) != 0.0LF;
  bool neg = m64_signbit(x) && yodd;
  double res;
  if (x == 0.0LF || isinf(x)) {
    res = isinf(x) == (y > 0.0LF) ? m64_inf() : 0.0LF;
  } else if (x < 0.0LF && !yint) {
    return m64_nan();
  } else if (ax == 1.0LF) {
    res = 1.0LF;
  } else {
    // e^(y log|x|) with log|x| and the product in double-double
    double lh, ll;
    m64_log_dd(ax, lh, ll);
    double ph = y * lh, pl = 0.0LF;
    if (ph > 709.8LF) {
      res = m64_inf();
    } else if (ph < -745.2LF) {
      res = 0.0LF;
    } else {
      double pe;
      m64_two_prod(y, lh, ph, pe); // |y| < 745.2 / |lh| here: no overflow
      pl = pe + y * ll;
      precise double sh = ph + pl;
      precise double sl = pl - (sh - ph);
      res = sh > 709.782712893384LF ? m64_inf() : m64_exp_dd(sh, sl);
    }
  }
  return neg ? -res : res;
}

// Float-float versions of the helpers above, for powf (Dekker split 2^12+1).
void m32_two_prod(float a, float b, out float p, out float e) {
  precise float ca = 4097.0 * a, ah = ca - (ca - a), al = a - ah;
  precise float cb = 4097.0 * b, bh = cb - (cb - b), bl = b - bh;
  precise float pp = a * b;
  precise float ee = ((ah * bh - pp) + ah * bl + al * bh) + al * bl;
  p = pp;
  e = ee;
}

float m32_exp_ff(float hi, float lo) {
  float k = roundEven(hi * 1.44269504);
  precise float r = ((hi - k * 0.693145751953125) - k * 1.428606765e-06) + lo;
  float p = 1.98412698e-04;
  p = p * r + 1.38888889e-03;
  p = p * r + 8.33333333e-03;
  p = p * r + 4.16666667e-02;
  p = p * r + 1.66666667e-01;
  p = p * r + 0.5;
  p = p * r * r + r;
  return m32_scale(1.0 + p, int(k));
}

void m32_log_ff(float x, out float hi, out float lo) {
  int eadj = 0;
  if (x < 1.17549435e-38) {
    x *= 16777216.0;
    eadj = -24;
  }
  int e;
  float m = frexp(x, e);
  if (m < 0.70710678) {
    m *= 2.0;
    e -= 1;
  }
  precise float f = m - 1.0;
  precise float uh = 2.0 + f;
  precise float ul = f - (uh - 2.0);
  float sh = f / uh;
  float ph, pe;
  m32_two_prod(sh, uh, ph, pe);
  precise float sl = (((f - ph) - pe) - sh * ul) / uh;
  float z = sh * sh;
  float q = 1.0 / 13.0;
  q = q * z + 1.0 / 11.0;
  q = q * z + 1.0 / 9.0;
  q = q * z + 1.0 / 7.0;
  q = q * z + 1.0 / 5.0;
  q = q * z + 1.0 / 3.0;
  float ed = float(e + eadj);
  precise float a = ed * 0.693145751953125; // exact
  precise float b = 2.0 * sh;
  precise float s1 = a + b;
  precise float bb = s1 - a;
  precise float err = (a - (s1 - bb)) + (b - bb);
  precise float tail = err + (2.0 * sl + (2.0 * sh * z * q + ed * 1.428606765e-06));
  precise float h2 = s1 + tail;
  hi = h2;
  lo = tail - (h2 - s1);
}

float m_pow(float x, float y) {
  if (y == 0.0 || x == 1.0) return 1.0;
  if (isnan(x) || isnan(y)) return m32_nan();
  float ax = abs(x);
  if (isinf(y)) {
    if (ax == 1.0) return 1.0;
    return (ax < 1.0) == (y < 0.0) ? m32_inf() : 0.0;
  }
  bool yint = floor(y) == y;
  bool yodd = yint && abs(y) < 16777216.0 && fract(y * 0.5) != 0.0;
  bool neg = m32_signbit(x) && yodd;
  float res;
  if (x == 0.0 || isinf(x)) {
    res = isinf(x) == (y > 0.0) ? m32_inf() : 0.0;
  } else if (x < 0.0 && !yint) {
    return m32_nan();
  } else if (ax == 1.0) {
    res = 1.0;
  } else {
    float lh, ll;
    m32_log_ff(ax, lh, ll);
    float ph = y * lh;
    if (ph > 88.8) {
      res = m32_inf();
    } else if (ph < -104.0) {
      res = 0.0;
    } else {
      float pe;
      m32_two_prod(y, lh, ph, pe);
      float pl = pe + y * ll;
      precise float sh = ph + pl;
      precise float sl = pl - (sh - ph);
      res = sh > 88.72283935546875 ? m32_inf() : m32_exp_ff(sh, sl);
    }
  }
  return neg ? -res : res;
}

#endif
