// The matmul family's 16-bit operand copies (cuda_matmul_half.h): f32 ->
// bf16 / fp16 conversion kernels, and the conversion that also takes an
// operand's column sums.
#include "backends/cuda/cuda_matmul_half.h"

#include "backends/cuda/cuda_half.cuh"

namespace asg_cuda_mm {
namespace {

// Row chunks of the column sums taken while converting an [R, C] operand
// (a function of R and C only: deterministic): chunks of at least 64 rows.
int64_t colsum_chunks(int64_t R, int64_t C) {
  const int64_t xb = (C / 4 + 31) / 32; // blocks across the columns
  int64_t p = (2048 + xb - 1) / xb;     // ~2048 blocks in all
  const int64_t most = (R + 63) / 64;
  if (p > most) p = most;
  return p < 1 ? 1 : p;
}

// x [n] f32 -> y [n] bf16 or fp16 (HO, cuda_half.cuh); VEC: 4 elements a
// step (x 16-byte and y 8-byte aligned), then the tail.
template <int HO, bool VEC>
__global__ void to_half_kernel(const float *__restrict__ x, void *__restrict__ y, int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (VEC) {
    const int64_t n4 = n / 4;
    for (int64_t i = tid; i < n4; i += stride)
      half_store4<HO>(y, i, reinterpret_cast<const float4 *>(x)[i]);
    done = n4 * 4;
  }
  for (int64_t i = done + tid; i < n; i += stride)
    half_store<HO>(y, i, x[i]);
}

template <int HO> void to_half_launch(cudaStream_t st, const float *x, void *y, int64_t n) {
  if (((uintptr_t)x % 16) == 0 && ((uintptr_t)y % 8) == 0)
    to_half_kernel<HO, true><<<asg_cuda_blocks((n + 3) / 4, 256), 256, 0, st>>>(x, y, n);
  else
    to_half_kernel<HO, false><<<asg_cuda_blocks(n, 256), 256, 0, st>>>(x, y, n);
}

// x [R, C] f32 -> y [R, C] bf16 / fp16 (as to_half_kernel) and part [P, C]:
// chunk p = blockIdx.y sums rows [p * rows, (p + 1) * rows) of each column
// (in double; runs of 16 rows a thread in f32): the column sums of an
// operand taken while it is converted (asg_cuda_call.colsum_out). Block: 32
// column quads (a warp reads 512 contiguous bytes of a row) x 8 row lanes;
// C % 4 == 0, x 16-byte and y 8-byte aligned.
template <int HO>
__global__ void __launch_bounds__(256)
    to_half_colsum_kernel(const float *__restrict__ x, void *__restrict__ y,
                          double *__restrict__ part, int64_t R, int64_t C, int64_t rows) {
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
  const int64_t nq = C / 4, q = (int64_t)blockIdx.x * 32 + tx;
  const int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < R ? r0 + rows : R;
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  if (q < nq)
    for (int64_t r = r0 + ty; r < r1;) {
      float4 f = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int t = 0; t < 16 && r < r1; t++, r += 8) {
        const float4 v = reinterpret_cast<const float4 *>(x)[r * nq + q];
        half_store4<HO>(y, r * nq + q, v);
        f.x += v.x, f.y += v.y, f.z += v.z, f.w += v.w;
      }
      a0 += f.x, a1 += f.y, a2 += f.z, a3 += f.w;
    }
  __shared__ double sh[8][4][32];
  sh[ty][0][tx] = a0, sh[ty][1][tx] = a1, sh[ty][2][tx] = a2, sh[ty][3][tx] = a3;
  __syncthreads();
  if (ty < 4 && q < nq) { // row lanes joined in order; lane ty writes component ty
    double t = sh[0][ty][tx];
    for (int k = 1; k < 8; k++)
      t += sh[k][ty][tx];
    part[(int64_t)blockIdx.y * C + 4 * q + ty] = t;
  }
}

} // namespace

size_t colsum_bytes(asg_shape s) {
  const int64_t C = s.ndim ? s.dims[s.ndim - 1] : 0, R = C ? asg_shape_numel(s) / C : 0;
  return align256((size_t)colsum_chunks(R, C) * (size_t)C * sizeof(double));
}

// The conversion of operand j with its column sums into c->colsum_out
// (partials in the workspace at part).
asg_status to_half_colsum(const asg_cuda_call *c, asg_dtype dt, int j, const void *x, void *y,
                          double *part) {
  const asg_shape sh = c->s->in[j].shape;
  const int64_t C = sh.dims[sh.ndim - 1], R = C ? asg_shape_numel(sh) / C : 0;
  if (R <= 0) return ASG_OK;
  const int64_t P = colsum_chunks(R, C), rows = (R + P - 1) / P;
  const dim3 grid((unsigned)((C / 4 + 31) / 32), (unsigned)P);
  cudaStream_t st = c->ctx->stream;
  if (dt == ASG_BF16)
    to_half_colsum_kernel<kHalfBf16><<<grid, 256, 0, st>>>((const float *)x, y, part, R, C, rows);
  else
    to_half_colsum_kernel<kHalfFp16><<<grid, 256, 0, st>>>((const float *)x, y, part, R, C, rows);
  asg_cuda_part_finish(part, c->colsum_out, P, C, true, st);
  return asg_cuda_check(c);
}

asg_status to_half(const asg_cuda_call *c, asg_dtype dt, const void *x, void *y, int64_t n) {
  if (n <= 0) return ASG_OK;
  if (dt == ASG_BF16)
    to_half_launch<kHalfBf16>(c->ctx->stream, (const float *)x, y, n);
  else
    to_half_launch<kHalfFp16>(c->ctx->stream, (const float *)x, y, n);
  return asg_cuda_check(c);
}

} // namespace asg_cuda_mm
