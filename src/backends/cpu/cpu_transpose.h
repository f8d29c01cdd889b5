/* A 16 x 16 f32 tile transposed in AVX-512 registers, shared by the CPU
 * kernels that lay an operand out the other way (the direct convolution's
 * weight gradient, the f32 attention's K and V), and the padded transpose
 * built on it. Exact: the same bits whatever computes them. */
#ifndef ASG_CPU_TRANSPOSE_H
#define ASG_CPU_TRANSPOSE_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/cpu/cpu_simd.h"

#ifdef ASG_SIMD_X86
#include <immintrin.h>

/* dst [c * ld + r] = src [r * ls + c] for a 16 x 16 tile, in registers */
ASG_TARGET_AVX512 static inline void asg_transpose16_avx512(const float *src, int64_t ls,
                                                            float *dst, int64_t ld) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; i++)
    r[i] = _mm512_loadu_ps(src + i * ls);
  for (int i = 0; i < 8; i++) { /* pairs of rows interleaved */
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) { /* groups of 4 rows: 4 x 4 blocks per 128 bits */
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) { /* then the 128-bit blocks */
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
  }
  for (int i = 0; i < 16; i++)
    _mm512_storeu_ps(dst + i * ld, r[i]);
}
#endif

/* dst [cols, ld] = src [rows, cols] transposed, dst's columns [rows, ld)
 * zero; whole 16 x 16 tiles in registers when tiles (the AVX-512 level),
 * the rest element by element (a copy: the same bits whichever way). */
static inline void asg_transpose_pad(const float *src, int64_t rows, int64_t cols, float *dst,
                                     int64_t ld, bool tiles) {
  int64_t rf = 0, cf = 0; /* done in tiles: r < rf, c < cf */
#ifdef ASG_SIMD_X86
  if (tiles) {
    rf = rows / 16 * 16, cf = cols / 16 * 16;
    for (int64_t r0 = 0; r0 < rf; r0 += 16)
      for (int64_t c0 = 0; c0 < cf; c0 += 16)
        asg_transpose16_avx512(src + r0 * cols + c0, cols, dst + c0 * ld + r0, ld);
  }
#else
  (void)tiles;
#endif
  for (int64_t c = 0; c < cols; c++) {
    for (int64_t r = c < cf ? rf : 0; r < rows; r++)
      dst[c * ld + r] = src[r * cols + c];
    for (int64_t r = rows; r < ld; r++)
      dst[c * ld + r] = 0.0f;
  }
}

#endif
