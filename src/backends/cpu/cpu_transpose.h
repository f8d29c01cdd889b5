/* A 16 x 16 f32 tile transposed in AVX-512 registers, shared by the CPU
 * kernels that lay an operand out the other way (the direct convolution's
 * weight gradient, the f32 attention's K and V). Exact: the same bits
 * whatever computes it, so the callers' results do not depend on it. */
#ifndef ASG_CPU_TRANSPOSE_H
#define ASG_CPU_TRANSPOSE_H

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

#endif
