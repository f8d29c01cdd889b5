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

// Loads of f32 values kept as 16 bits (HI = kHalfBf16 / kHalfFp16; 0: f32):
// x[i], and x[4q .. 4q+3] (8-byte aligned for 16 bits, 16-byte for f32).
template <int HI> __device__ __forceinline__ float half_load(const void *x, int64_t i) {
  if constexpr (HI == kHalfBf16)
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(x)[i]);
  else if constexpr (HI == kHalfFp16)
    return __half2float(static_cast<const __half *>(x)[i]);
  else
    return static_cast<const float *>(x)[i];
}

template <int HI> __device__ __forceinline__ float4 half_load4(const void *x, int64_t q) {
  if constexpr (HI == 0) {
    return static_cast<const float4 *>(x)[q];
  } else {
    const uint2 u = static_cast<const uint2 *>(x)[q];
    float2 a, b;
    if constexpr (HI == kHalfBf16) {
      a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.x));
      b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.y));
    } else {
      a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
      b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
    }
    return make_float4(a.x, a.y, b.x, b.y);
  }
}

#endif
