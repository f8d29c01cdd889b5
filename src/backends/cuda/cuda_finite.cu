// Anomaly mode on CUDA (check_finite = ASG_CHECK_FINITE_STEP; the record is
// described at asg_finite_fault in runtime/inspect.h): after each step, one
// kernel scans its float output and claims the record for the first step
// that holds a NaN or inf; then one kernel per float input scans that input
// only when the record names this step. cuda_backend.c reads the record
// after the run. Elements are tested by their bits (exponent all ones), so
// fast-math settings cannot drop the test.
#include "backends/cuda/cuda.h"
#include "runtime/inspect.h"

// in1 == 0: the step's output x; else input in1 - 1 of step step1.
template <typename U>
static __global__ void finite_kernel(const U *x, int64_t n, U expmask, unsigned step1, unsigned in1,
                                     asg_finite_fault *f) {
  const unsigned claimed = *(volatile unsigned *)&f->step1;
  if (in1 == 0 ? claimed != 0u : claimed != step1) return; // an earlier step faulted / not this one
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const U b = x[i];
    if ((b & expmask) != expmask) continue;
    if (in1 == 0) {
      if (atomicCAS(&f->step1, 0u, step1) == 0u) {
        f->index = i;
        f->bits = (uint64_t)b;
      }
    } else if (atomicCAS(&f->in1, 0u, in1) == 0u) {
      f->in_index = i;
      f->in_bits = (uint64_t)b;
    }
    return;
  }
}

template <typename U>
static void launch(const void *x, int64_t n, U expmask, unsigned step1, unsigned in1,
                   asg_finite_fault *f, cudaStream_t st) {
  finite_kernel<U>
      <<<asg_cuda_blocks(n, 256), 256, 0, st>>>((const U *)x, n, expmask, step1, in1, f);
}

static void check(const void *x, asg_dtype dt, int64_t n, unsigned step1, unsigned in1,
                  asg_finite_fault *f, cudaStream_t st) {
  if (n <= 0) return;
  switch (dt) {
  case ASG_F32: launch<unsigned>(x, n, 0x7F800000u, step1, in1, f, st); break;
  case ASG_F64: launch<unsigned long long>(x, n, 0x7FF0000000000000ull, step1, in1, f, st); break;
  case ASG_F16: launch<unsigned short>(x, n, (unsigned short)0x7C00u, step1, in1, f, st); break;
  case ASG_BF16: launch<unsigned short>(x, n, (unsigned short)0x7F80u, step1, in1, f, st); break;
  default: break; // integers are always finite
  }
}

extern "C" void asg_cuda_check_finite(const asg_step *s, void *out, const void *const *in,
                                      unsigned step1, asg_finite_fault *f, cudaStream_t st) {
  check(out, s->out.dtype, asg_shape_numel(s->out.shape), step1, 0u, f, st);
  for (int j = 0; in && j < s->n_in; j++)
    if (in[j] != out) // an input updated in place holds the new values: not inspected
      check(in[j], s->in[j].dtype, asg_shape_numel(s->in[j].shape), step1, (unsigned)j + 1, f, st);
}
