// CUDA kernels of the elementwise family.
#include "backends/cuda/cuda.h"

extern "C" void asg_cuda_register_elementwise(asg_cuda_kernel *t) { (void)t; }
