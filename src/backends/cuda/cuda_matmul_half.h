// Internal interface of the matmul family's 16-bit operand copies
// (cuda_matmul_half.cu), used by cuda_matmul.cu: under bf16_matmul /
// fp16_matmul an f32 product converts its operands into the workspace each
// run, optionally taking an operand's column sums on the way (a linear
// layer's bias gradient). C++ linkage, namespace asg_cuda_mm.
#ifndef ASG_CUDA_MATMUL_HALF_H
#define ASG_CUDA_MATMUL_HALF_H

#include "backends/cuda/cuda.h"

#include <stddef.h>

namespace asg_cuda_mm {

// Workspace sizes are kept 256-byte aligned (cuBLASLt operands).
inline size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

// Workspace bytes of the column-sum partials of an [..., C] operand.
size_t colsum_bytes(asg_shape s);

// x [n] f32 -> y [n] of dt (ASG_BF16 or ASG_F16), on c's stream.
asg_status to_half(const asg_cuda_call *c, asg_dtype dt, const void *x, void *y, int64_t n);

// The conversion of operand j of c's step with its column sums into
// c->colsum_out (partials in the workspace at part).
asg_status to_half_colsum(const asg_cuda_call *c, asg_dtype dt, int j, const void *x, void *y,
                          double *part);

} // namespace asg_cuda_mm

#endif
