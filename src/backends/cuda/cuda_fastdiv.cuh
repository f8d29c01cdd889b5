// n / d for 32-bit unsigned n by a multiply and a shift, with f =
// asg__fastdiv(d) made on the host (runtime/layout.h): 32-bit integer
// division is a long instruction sequence on the GPU, and index arithmetic
// made of it bounds kernels that move little data per element.
#ifndef ASG_CUDA_FASTDIV_CUH
#define ASG_CUDA_FASTDIV_CUH

#include "runtime/layout.h"

#include <stdint.h>

static __device__ __forceinline__ uint32_t asg_cuda_fastdiv(const asg_fastdiv &f, uint32_t n) {
  return (uint32_t)(((uint64_t)__umulhi(n, f.m) + n) >> f.l);
}

#endif
