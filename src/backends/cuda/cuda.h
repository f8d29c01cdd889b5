/* CUDA kernel interface, shared by the host backend (cuda_backend.c, C) and
 * the kernel files (cuda_<family>.cu, CUDA C++). Each family registers its
 * launchers into the dispatch table, as on the CPU. */
#ifndef ASG_CUDA_H
#define ASG_CUDA_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_cuda_ctx {
  int device;
  cudaStream_t stream;
  cublasHandle_t blas;
  cublasLtHandle_t lt;
  void *blas_ws; /* cuBLAS(Lt) workspace: fixed, so GEMMs never allocate */
  size_t blas_ws_bytes;
  int sm_count;
} asg_cuda_ctx;

typedef struct asg_cuda_call {
  const asg_step *s;
  void *out;             /* device pointer */
  const void *const *in; /* host array of s->n_in device pointers */
  void *ws;              /* device workspace of the size .ws asked for */
  /* Device pointer to the program's run count (RNG key): kernels read it
   * on the device so that a captured CUDA graph stays valid across runs. */
  const uint64_t *run;
  asg_cuda_ctx *ctx;
  bool tf32; /* f32 GEMMs may use TF32 tensor cores (asg_compile_opts.allow_tf32) */
} asg_cuda_call;

typedef struct asg_cuda_kernel {
  /* Enqueues the step on c->ctx->stream; must not synchronize or allocate.
   * Returns an error for unsupported dtypes/shapes (checked at enqueue). */
  asg_status (*run)(const asg_cuda_call *c);
  /* Device workspace bytes the step needs (NULL: none). */
  size_t (*ws)(const asg_step *s);
} asg_cuda_kernel;

void asg_cuda_register_elementwise(asg_cuda_kernel *t); /* unary, binary, where, cast, copies,
                                                           fill, assign, broadcast_to */
void asg_cuda_register_reduce(asg_cuda_kernel *t);      /* sum..argmax, softmax, log_softmax */
void asg_cuda_register_matmul(asg_cuda_kernel *t);
void asg_cuda_register_index(asg_cuda_kernel *t);     /* permute, slice(_bwd), concat, gather,
                                                         scatter_add, one_hot */
void asg_cuda_register_nn(asg_cuda_kernel *t);        /* layernorm(+bwd), softmax CE(+bwd), rand */
void asg_cuda_register_conv(asg_cuda_kernel *t);      /* conv family and pools */
void asg_cuda_register_optim(asg_cuda_kernel *t);     /* fused Adam updates */
void asg_cuda_register_attention(asg_cuda_kernel *t); /* fused attention fwd/bwd */

/* *counter += 1 on the stream (the run count kept on the device). */
void asg_cuda_increment(uint64_t *counter, cudaStream_t stream);
/* Launch geometry for n independent elements (grid-stride loops). */
unsigned asg_cuda_blocks(int64_t n, int threads);

/* Maps the last launch error to a status with the step's label. */
asg_status asg_cuda_check(const asg_cuda_call *c);

#ifdef __cplusplus
}
#endif
#endif
