/* Host dtype conversions: f32 <-> f16/bf16 with round-to-nearest-even, and
 * element-wise conversion between the six dtypes for loaders and writers. */
#include <math.h>
#include <string.h>

#include "io/io_internal.h"

uint16_t asg_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
  if (exp == 0xff) /* inf stays inf; NaN keeps its top payload bits and is made quiet */
    return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
  int e = (int)exp - 127 + 15; /* biased f16 exponent */
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    /* f16 subnormal: the value in units of 2^-24 is M * 2^(exp-126) with
     * M the 24-bit significand; shift right by 126-exp, rounding. */
    if (exp == 0) return (uint16_t)sign; /* f32 subnormals are far below 2^-25 */
    uint32_t m = man | 0x800000u, shift = 126u - exp;
    if (shift > 24) return (uint16_t)sign; /* < half the smallest subnormal */
    uint32_t q = m >> shift, r = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (r > half || (r == half && (q & 1))) q++; /* may carry into the smallest normal */
    return (uint16_t)(sign | q);
  }
  uint32_t h = ((uint32_t)e << 10) | (man >> 13), r = man & 0x1fffu;
  if (r > 0x1000u || (r == 0x1000u && (h & 1))) h++; /* a carry may reach inf: correct */
  return (uint16_t)(sign | h);
}

float asg_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    float v = ldexpf((float)man, -24); /* zero or subnormal, exact */
    return sign ? -v : v;
  }
  if (exp == 31)
    x = sign | 0x7f800000u | (man << 13);
  else
    x = sign | ((exp - 15 + 127) << 23) | (man << 13);
  float f;
  memcpy(&f, &x, 4);
  return f;
}

uint16_t asg_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu)) return (uint16_t)((x >> 16) | 0x40u);
  x += 0x7fffu + ((x >> 16) & 1u); /* round to nearest even; overflow carries into inf */
  return (uint16_t)(x >> 16);
}

float asg_bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* double -> float rounded to odd: rounding that result again to a format of
 * at most 22 significant bits (f16, bf16) equals rounding d directly, so
 * f64 -> f16 is correctly rounded once, not twice. */
static float to_f32_odd(double d) {
  float f = (float)d;
  if (isnan(d) || (double)f == d) return f;
  if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f); /* truncate toward zero */
  uint32_t x;
  memcpy(&x, &f, 4);
  x |= 1u;
  memcpy(&f, &x, 4);
  return f;
}

static double get_float(const unsigned char *p, asg_dtype dt) {
  switch (dt) {
  case ASG_F32: {
    float f;
    memcpy(&f, p, 4);
    return f;
  }
  case ASG_F64: {
    double d;
    memcpy(&d, p, 8);
    return d;
  }
  case ASG_F16: {
    uint16_t h;
    memcpy(&h, p, 2);
    return asg_f16_to_f32(h);
  }
  case ASG_BF16: {
    uint16_t h;
    memcpy(&h, p, 2);
    return asg_bf16_to_f32(h);
  }
  default: return 0;
  }
}

static void put_float(unsigned char *p, asg_dtype dt, double d) {
  switch (dt) {
  case ASG_F32: {
    float f = (float)d;
    memcpy(p, &f, 4);
    break;
  }
  case ASG_F64: memcpy(p, &d, 8); break;
  case ASG_F16: {
    uint16_t h = asg_f32_to_f16(to_f32_odd(d));
    memcpy(p, &h, 2);
    break;
  }
  case ASG_BF16: {
    uint16_t h = asg_f32_to_bf16(to_f32_odd(d));
    memcpy(p, &h, 2);
    break;
  }
  default: break;
  }
}

bool asg__dtype_is_int(asg_dtype dt) { return dt == ASG_I32 || dt == ASG_I64; }

bool asg__dtype_valid(int dt) { return dt >= 0 && dt < ASG_DTYPE_COUNT; }

asg_status asg_convert(const void *src, asg_dtype sdt, void *dst, asg_dtype ddt, size_t n) {
  if (!asg__dtype_valid((int)sdt) || !asg__dtype_valid((int)ddt))
    return asg__error(ASG_ERR_INVALID, "asg_convert: invalid dtype");
  if (n && (!src || !dst)) return asg__error(ASG_ERR_INVALID, "asg_convert: NULL buffer");
  const unsigned char *s = src;
  unsigned char *d = dst;
  size_t ss = asg_dtype_size(sdt), ds = asg_dtype_size(ddt);
  if (sdt == ddt) {
    if (n) memcpy(dst, src, n * ss);
    return ASG_OK;
  }
  if (asg__dtype_is_int(sdt) != asg__dtype_is_int(ddt))
    return asg__error(ASG_ERR_DTYPE, "asg_convert: cannot convert %s to %s", asg_dtype_name(sdt),
                      asg_dtype_name(ddt));
  if (asg__dtype_is_int(sdt)) {
    for (size_t i = 0; i < n; i++) {
      int64_t v;
      if (sdt == ASG_I32) {
        int32_t w;
        memcpy(&w, s + i * 4, 4);
        v = w;
        memcpy(d + i * 8, &v, 8);
      } else {
        memcpy(&v, s + i * 8, 8);
        if (v < INT32_MIN || v > INT32_MAX)
          return asg__error(ASG_ERR_DTYPE, "asg_convert: I64 value %lld at %zu does not fit in I32",
                            (long long)v, i);
        int32_t w = (int32_t)v;
        memcpy(d + i * 4, &w, 4);
      }
    }
    return ASG_OK;
  }
  if (sdt == ASG_F32 && ddt == ASG_F16) { /* the common cases, without the double detour */
    for (size_t i = 0; i < n; i++) {
      float f;
      memcpy(&f, s + i * 4, 4);
      uint16_t h = asg_f32_to_f16(f);
      memcpy(d + i * 2, &h, 2);
    }
    return ASG_OK;
  }
  if (sdt == ASG_F32 && ddt == ASG_BF16) {
    for (size_t i = 0; i < n; i++) {
      float f;
      memcpy(&f, s + i * 4, 4);
      uint16_t h = asg_f32_to_bf16(f);
      memcpy(d + i * 2, &h, 2);
    }
    return ASG_OK;
  }
  for (size_t i = 0; i < n; i++)
    put_float(d + i * ds, ddt, get_float(s + i * ss, sdt));
  return ASG_OK;
}
