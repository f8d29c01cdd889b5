// Shared helpers of the nn family's row kernels (cuda_layernorm.cu,
// cuda_xent.cu; cuda_nn.cu takes the block size and dtype_error): the block
// size, the warp-per-row limit, the row reductions (a warp or a block reduces
// one row, in a fixed order) and each thread's row geometry. Everything is in
// an anonymous namespace (and inline), so each file that includes it has its
// own copy and no symbol is shared across files.
#ifndef ASG_CUDA_ROWS_CUH
#define ASG_CUDA_ROWS_CUH

#include "backends/cuda/cuda.h"

#include <stdint.h>

namespace {

constexpr int kThreads = 256; // block size of the row and column kernels
// Rows up to this width use one warp per row (up to 128 elements a lane:
// [8192, 768] layernorms get 1024 blocks of 8 rows and no block-wide syncs).
constexpr int kWarpRowsMaxC = 4096;

inline int64_t prod_dims(asg_shape s, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; d++)
    n *= s.dims[d];
  return n;
}

inline asg_status dtype_error(const asg_cuda_call *c) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype not supported", c->s->label);
}

// ---- row reductions: a warp (WARP) or a whole block reduces one row ----

struct SumOp {
  template <typename V> __device__ static V apply(V a, V b) { return a + b; }
};
// Max that propagates NaN, like the CPU's `if (x > m || x != x) m = x`.
struct MaxOp {
  template <typename V> __device__ static V apply(V a, V b) { return (b > a || b != b) ? b : a; }
};

// Every thread of the row gets the result. The block version writes one
// partial per warp and every thread then folds them in warp order, so the
// result does not depend on timing. sh holds >= 32 values.
template <bool WARP, typename Op, typename V> __device__ V row_reduce(V v, V *sh) {
  for (int o = 16; o > 0; o >>= 1)
    v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (WARP) return v;
  int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  __syncthreads(); // sh may still be read by a previous call
  if ((threadIdx.x & 31) == 0) sh[w] = v;
  __syncthreads();
  V t = sh[0];
  for (int i = 1; i < nw; i++)
    t = Op::apply(t, sh[i]);
  return t;
}

// HO (16-bit outputs, asg_cuda_call.half_out): an f32 output is written as
// bf16 (kHalfBf16) or fp16 (kHalfFp16) instead (0: as T); cuda_half.cuh.

// Row geometry of one thread: which row it starts at, its lane in the row,
// the number of threads per row and the row step of the grid-stride loop.
template <bool WARP> struct RowIter {
  int64_t first, step;
  int lane, nthr;
  __device__ RowIter() {
    if (WARP) {
      int wpb = blockDim.x >> 5;
      first = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5);
      step = (int64_t)gridDim.x * wpb;
      lane = threadIdx.x & 31;
      nthr = 32;
    } else {
      first = blockIdx.x;
      step = gridDim.x;
      lane = threadIdx.x;
      nthr = blockDim.x;
    }
  }
};

// Grid for a row kernel: one warp (8 per block) or one block per row.
inline unsigned row_grid(int64_t R, bool warp) {
  return asg_cuda_blocks(warp ? R * 32 : R * kThreads, kThreads);
}

} // namespace

#endif
