/* Vector code for CPU kernels without intrinsics.
 *
 * The build targets baseline x86-64 (SSE2). A hot kernel is written once as
 * plain C loops over ASG_LANES independent lanes (arrays such as
 * acc[ASG_LANES], never a reduction the compiler would have to reorder), an
 * always-inline body; thin wrappers compile that body again for AVX2 and
 * AVX-512 through target attributes, and asg_cpu_simd_level() picks one at
 * run time. Every level performs the same IEEE operations in the same order
 * on each lane, and -ffp-contract=off keeps the compiler from forming
 * FMAs, so the results are the same bits at every level and on every x86
 * machine: only the speed differs.
 *
 * ASG_CPU_SIMD=none|avx2|avx512 caps the level (read once per process),
 * for tests that compare the levels and for measuring. */
#ifndef ASG_CPU_SIMD_H
#define ASG_CPU_SIMD_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_pool.h"

/* Lanes of a vector loop: one AVX-512 register of floats. */
#define ASG_LANES 16

#if defined(__GNUC__)
#define ASG_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ASG_ALWAYS_INLINE static inline
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define ASG_SIMD_X86 1
#define ASG_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2")))
#define ASG_TARGET_AVX2 __attribute__((target("avx2")))
#include <immintrin.h>
#endif

enum { ASG_SIMD_BASE = 0, ASG_SIMD_AVX2 = 1, ASG_SIMD_AVX512 = 2 };

/* The widest level this CPU runs, capped by ASG_CPU_SIMD. */
static inline int asg_cpu_simd_level(void) {
  static _Atomic int level = -1; /* every thread computes the same value */
  if (level >= 0) return level;
  int l = ASG_SIMD_BASE;
#ifdef ASG_SIMD_X86
  __builtin_cpu_init();
  l = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
          ? ASG_SIMD_AVX512
      : __builtin_cpu_supports("avx2") ? ASG_SIMD_AVX2
                                       : ASG_SIMD_BASE;
#endif
  const char *e = getenv("ASG_CPU_SIMD");
  if (e && !strcmp(e, "none")) l = ASG_SIMD_BASE;
  if (e && !strcmp(e, "avx2") && l > ASG_SIMD_AVX2) l = ASG_SIMD_AVX2;
  level = l;
  return level;
}

/* The range function (cpu_pool.h) for this CPU's level, from a loop
 * compiled at the three levels (f_avx2, f_avx512: the same body under
 * ASG_TARGET_AVX2 / _AVX512). ASG_CPU_PICK(f) names them by suffix. */
static inline asg_cpu_range_fn asg_cpu_simd_pick(asg_cpu_range_fn base, asg_cpu_range_fn avx2,
                                                 asg_cpu_range_fn avx512) {
  const int level = asg_cpu_simd_level();
  return level == ASG_SIMD_AVX512 ? avx512 : level == ASG_SIMD_AVX2 ? avx2 : base;
}
#ifdef ASG_SIMD_X86
#define ASG_CPU_PICK(f) asg_cpu_simd_pick(f, f##_avx2, f##_avx512)
#else
#define ASG_CPU_PICK(f) (f)
#endif

/* The sum of acc[0..ASG_LANES), as a fixed tree (halves added lane by lane):
 * four vector steps rather than a chain of dependent adds, which dominated
 * rows as short as attention's. Overwrites acc. */
ASG_ALWAYS_INLINE double asg_lanes_sum_f64(double *acc) {
  for (int w = ASG_LANES / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; l++)
      acc[l] += acc[l + w];
  return acc[0];
}

/* The larger of m and v, NaN (either) wins; | rather than ||: no branch. */
ASG_ALWAYS_INLINE float asg_max_nan_f32(float m, float v) { return ((v > m) | (v != v)) ? v : m; }
ASG_ALWAYS_INLINE double asg_max_nan_f64(double m, double v) {
  return ((v > m) | (v != v)) ? v : m;
}

/* The maximum of x [n], n >= 1, and in *nan whether x holds a NaN, in
 * registers of the level (gcc 12 keeps a lane-array max loop scalar, a
 * compare a lane: about half of a cross-entropy row). A maximum is the same
 * value in any order (up to the sign of a zero maximum, which no caller's
 * x - max or exp tells apart). */
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static inline float asg_max_avx512(const float *x, int64_t n, bool *nan) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  __mmask16 bad = 0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(x + j);
    bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, v);
  }
  if (j < n) { /* the tail, padded with -inf */
    const __mmask16 k = (__mmask16)((1u << (n - j)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), k, x + j);
    bad |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, v);
  }
  *nan = bad != 0;
  return _mm512_reduce_max_ps(m);
}
ASG_TARGET_AVX2 static inline float asg_max_avx2(const float *x, int64_t n, bool *nan) {
  __m256 m = _mm256_set1_ps(-INFINITY), bad = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    m = _mm256_max_ps(m, v);
  }
  float r[8];
  _mm256_storeu_ps(r, m);
  bool nn = _mm256_movemask_ps(bad) != 0;
  float out = r[0];
  for (int l = 1; l < 8; l++)
    out = r[l] > out ? r[l] : out;
  for (; j < n; j++) {
    out = x[j] > out ? x[j] : out;
    nn |= x[j] != x[j];
  }
  *nan = nn;
  return out;
}
#endif

/* The maximum of x [n], n >= 1; NaN wins (the row's first NaN). */
static inline float asg_row_max_f32(const float *x, int64_t n) {
  bool nan = false;
  float m = -INFINITY;
#ifdef ASG_SIMD_X86
  const int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    m = asg_max_avx512(x, n, &nan);
  else if (level == ASG_SIMD_AVX2)
    m = asg_max_avx2(x, n, &nan);
  else
#endif
    for (int64_t j = 0; j < n; j++) {
      m = x[j] > m ? x[j] : m;
      nan |= x[j] != x[j];
    }
  if (nan)
    for (int64_t t = 0; t < n; t++)
      if (x[t] != x[t]) return x[t];
  return m;
}
/* The same for double rows, in order (f64 rows are not hot). */
ASG_ALWAYS_INLINE double asg_row_max_f64(const double *x, int64_t n) {
  double m = x[0];
  for (int64_t j = 1; j < n; j++)
    m = asg_max_nan_f64(m, x[j]);
  return m;
}

/* Float bits, for the exponent arithmetic of exp (no conversion of an
 * out-of-range float to int, which C leaves undefined). */
ASG_ALWAYS_INLINE uint32_t asg_f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
ASG_ALWAYS_INLINE float asg_u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* exp(x) in float, within 2 ulp of the true value for x in [-87.3, 88.7];
 * 0 below (where expf gives denormals under 1.2e-38), +inf above, NaN for
 * NaN. Branch-free, so a loop over it vectorizes.
 * x = n ln2 + r, |r| <= ln2/2 (ln2 split in two parts so that n ln2 is
 * exact), exp(r) by its Taylor polynomial to r^7 (error under 2e-9 there),
 * times 2^n built in the exponent bits. */
ASG_ALWAYS_INLINE float asg_expf_fast(float x) {
  const float big = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  float xc = x < -87.33654f ? -87.33654f : x > 88.72283f ? 88.72283f : x; /* NaN stays */
  float t = xc * 1.44269504088896341f + big;
  float n = t - big;
  uint32_t ni = asg_f2u(t) - asg_f2u(big); /* n as a two's-complement integer */
  float r = xc - n * 0.693359375f;         /* ln2 high part: 9 bits, so n*hi is exact */
  r = r - n * -2.12194440e-4f;             /* ln2 - hi */
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  /* 2^n as two factors: n reaches 128 at the top of the range, beyond a
   * single float exponent */
  uint32_t h = ni >> 1 | (ni & 0x80000000u); /* floor(n / 2), arithmetic */
  float s1 = asg_u2f((h + 127u) << 23), s2 = asg_u2f((ni - h + 127u) << 23);
  float y = p * s1 * s2;
  y = x < -87.33654f ? 0.0f : y;
  return x > 88.72283f ? (float)INFINITY : y;
}

/* erf(x) in float, within 2 ulp (measured over every float against double
 * erf; glibc's erff: 1 ulp). Branch-free; both pieces are computed and one
 * is kept. |x| < 0.875: x + x P(x^2); above: 1 - exp(-x^2) Q(t),
 * t = 1/(1 + x/2), where Q fits erfc(x) exp(x^2) (both polynomials are
 * weighted least-squares fits of ours, relative error < 5e-10 in exact
 * arithmetic); 1 beyond |x| = 4, where float erf is 1. *e = exp(-x^2) as
 * asg_expf_fast gives it (the large-|x| piece needs it; gelu's gradient
 * reuses it for the normal density). */
ASG_ALWAYS_INLINE float asg_erff_exp_fast(float x, float *e) {
  float ax = fabsf(x), s = x * x;
  float p = 8.685867158000592e-05f;
  p = p * s + -0.0008212555119405461f;
  p = p * s + 0.005206770599868027f;
  p = p * s + -0.026861538938943247f;
  p = p * s + 0.11283730616802273f;
  p = p * s + -0.37612635691804497f;
  p = p * s + 0.1283791667206053f; /* 2/sqrt(pi) - 1: x + x p rounds less than x p */
  float small = x + x * p;
  float t = 1.0f / (1.0f + 0.5f * ax);
  float q = 0.007198510103027065f;
  q = q * t + 0.09088052901861114f;
  q = q * t + -0.4224492364304252f;
  q = q * t + 0.5160569697165741f;
  q = q * t + -0.07533086755913611f;
  q = q * t + 0.3370712639645515f;
  q = q * t + 0.2622074476590229f;
  q = q * t + 0.28457769998828464f;
  q = q * t + -0.0001348986730073536f;
  *e = asg_expf_fast(-s);
  float big = 1.0f - *e * q;
  big = ax > 4.0f ? 1.0f : big;
  big = x < 0 ? -big : big;
  return ax < 0.875f ? small : big; /* NaN: big, which is NaN */
}
ASG_ALWAYS_INLINE float asg_erff_fast(float x) {
  float e;
  return asg_erff_exp_fast(x, &e);
}

#endif
