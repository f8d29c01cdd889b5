// 16-bit stores of f32 values, rounded to nearest even (NaN stays NaN, fp16
// overflows to inf). The products' operand conversion (cuda_matmul.cu) and
// the steps that write a product's operand copy directly
// (asg_cuda_call.half_out) round with the same functions, so a copy holds
// the same bits whichever made it.
#ifndef ASG_CUDA_HALF_CUH
#define ASG_CUDA_HALF_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

enum { kHalfBf16 = 1, kHalfFp16 = 2 }; // HO: which 16-bit type

// y[i] = v
template <int HO> __device__ __forceinline__ void half_store(void *y, int64_t i, float v) {
  if constexpr (HO == kHalfBf16)
    static_cast<__nv_bfloat16 *>(y)[i] = __float2bfloat16_rn(v);
  else
    static_cast<__half *>(y)[i] = __float2half_rn(v);
}

// y[4q .. 4q+3] = v (y 8-byte aligned)
template <int HO> __device__ __forceinline__ void half_store4(void *y, int64_t q, float4 v) {
  if constexpr (HO == kHalfBf16) {
    __nv_bfloat162 *d = static_cast<__nv_bfloat162 *>(y) + 2 * q;
    d[0] = __floats2bfloat162_rn(v.x, v.y), d[1] = __floats2bfloat162_rn(v.z, v.w);
  } else {
    __half2 *d = static_cast<__half2 *>(y) + 2 * q;
    d[0] = __floats2half2_rn(v.x, v.y), d[1] = __floats2half2_rn(v.z, v.w);
  }
}

#endif
