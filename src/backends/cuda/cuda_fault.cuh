// Reports an out-of-range index seen by a kernel (runtime/backend.h): the
// first step to report claims the program's fault record (step1 from 0 by
// compare-and-swap) and stores its bad value; cuda_backend.c reads the
// record after the run. f is NULL when the program is unchecked.
#ifndef ASG_CUDA_FAULT_CUH
#define ASG_CUDA_FAULT_CUH

#include "runtime/backend.h"

__device__ __forceinline__ void asg_cuda_index_fault(asg_index_fault *f, unsigned step1,
                                                     int64_t v) {
  if (f && atomicCAS(&f->step1, 0u, step1) == 0u) f->value = v;
}

#endif
