/* bf16 products on the CPU (asg_compile_opts.bf16_matmul), through oneDNN's
 * matmul primitive where the CPU multiplies bf16 pairs natively
 * (AVX512-BF16 or AMX): operands rounded to bf16 (nearest even), f32 sums
 * and results, as the CUDA backend's bf16 products. */
#ifndef ASG_CPU_GEMM_BF16_H
#define ASG_CPU_GEMM_BF16_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/cpu/cpu.h"

/* Whether bf16 products run here: libdnnl was built in, the CPU has bf16
 * dot products, and ASG_CPU_BF16 is not "0". Read once per process. */
bool asg_cpu_bf16_products(void);

/* y [n] = x [n] rounded to bf16 (nearest even; NaN stays NaN), split over
 * the pool's threads. */
void asg_cpu_to_bf16(const float *x, uint16_t *y, int64_t n, asg_cpu_pool *pool);

/* C [m, n] = op(A) op(B) on this thread (its OpenMP setting: the caller's),
 * row-major: A [m, k] (ta: stored [k, m]) with row stride lda, B [k, n] (tb:
 * stored [n, k]) with row stride ldb, bf16; C f32 with row stride ldc.
 * false when oneDNN failed (C not written). */
bool asg_cpu_bf16_gemm(bool ta, bool tb, int m, int n, int k, const uint16_t *a, int lda,
                       const uint16_t *b, int ldb, float *c, int ldc);

#endif
