// Internal interface of the CUDA fused attention, shared by the files it is
// split into (cuda_attention.cu: dispatch and the generic kernels;
// cuda_attention_f32.cu, cuda_attention_tc.cu, cuda_attention_hf.cu: the
// tiled fp32, TF32 and 16-bit kernels): the tiling constants, the problem
// geometry and the launchers the dispatch calls across files. C++ linkage,
// namespace asg_cuda_attn; included only by those .cu files.
#ifndef ASG_CUDA_ATTENTION_H
#define ASG_CUDA_ATTENTION_H

#include "backends/cuda/cuda.h"

#include <stddef.h>
#include <stdint.h>

namespace asg_cuda_attn {

constexpr int kThreads = 128; // tiled kernels: 16 row groups x 8 column groups
constexpr int kRows = 64;     // A rows per block of the tiled kernels

struct Geo {
  int64_t nbh; // product of the leading dims
  int Tq, Tk, D;
  const void *mask; // key mask (the ops' optional last input) or NULL
  int64_t G;        // heads per mask row
};

// Raises the kernel's dynamic shared-memory limit (it is a per-function
// attribute, not a stream operation, so it is legal during graph capture).
template <typename K> bool allow_smem(K kern, size_t bytes) {
  return cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) ==
         cudaSuccess;
}

// The kernels of one tensor-core path for one D, with their shared bytes:
// [0] lse only, [1] forward with v, [2] bwd_q, [3] bwd_kv.
typedef void (*fwd_fn)(const float *, const float *, const float *, float *, float *, int64_t, int,
                       int, float, int, const float *, int64_t);
typedef void (*bwd_fn)(const float *, const float *, const float *, const float *, const float *,
                       const float *, float *, int64_t, int, int, float, int, const float *,
                       int64_t);
struct MmaSet {
  fwd_fn fwd[2];
  bwd_fn bwd_q, bwd_kv;
  size_t smem[4];
};

// cuda_attention_f32.cu: the fp32 tiled kernels for D <= DP (DP = 32, 64 or
// 128); false (nothing launched) when the device lacks the shared memory.
template <int DP> bool tiled_dispatch(const asg_cuda_call *c, const Geo &g, bool vec);

// cuda_attention_tc.cu: the TF32 kernels for D = DP (32, 64 or 128).
template <int DP> MmaSet tf32_set();

// cuda_attention_hf.cu: the 16-bit kernels for D = DP (32, 64 or 128) with
// HO = kHalfBf16 or kHalfFp16 operands (cuda_half.cuh).
template <int DP, int HO> MmaSet half_set();

} // namespace asg_cuda_attn

#endif
