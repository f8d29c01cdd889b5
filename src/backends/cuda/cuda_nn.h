// Internal interface of the nn family, which is split into cuda_nn.cu (the
// random sources and asg_cuda_register_nn), cuda_layernorm.cu and
// cuda_xent.cu: the register functions asg_cuda_register_nn calls. C++
// linkage, namespace asg_cuda_nn; included only by those .cu files.
#ifndef ASG_CUDA_NN_H
#define ASG_CUDA_NN_H

#include "backends/cuda/cuda.h"

namespace asg_cuda_nn {

// cuda_layernorm.cu: layernorm, layernorm_bwd_x, layernorm_bwd_gamma, rmsnorm
void register_layernorm(asg_cuda_kernel *t);
// cuda_xent.cu: softmax_ce, softmax_ce_bwd
void register_xent(asg_cuda_kernel *t);

} // namespace asg_cuda_nn

#endif
