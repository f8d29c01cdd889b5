// Programmatic dependent launch (sm_90+). A kernel launched by pdl_launch may
// start while the kernel before it in the stream is still running (a decode
// step is a chain of small kernels, each a few microseconds: without this,
// each one's launch and ramp-up leave the memory idle). Such a kernel must
// call pdl_wait() before it reads anything an earlier kernel wrote and
// before it writes anything: griddepcontrol.wait returns once the kernels
// before it have finished and their writes are visible. It calls
// pdl_trigger() after that, which lets the next one be scheduled (waiting
// first bounds the overlap to one kernel). Before the wait a kernel may only
// compute indices and prefetch into L2, which is coherent for every SM (a
// product's weights stream in during the previous kernel).
// ASG_CUDA_PDL=0, or a device below compute capability 9, launches plainly.
#ifndef ASG_CUDA_PDL_CUH
#define ASG_CUDA_PDL_CUH

#include "backends/cuda/cuda.h"

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Prefetches the 128-byte lines of [p, p + bytes) into L2 (the threads of a
// block share the lines: thread t takes lines t, t + nthr, ...).
__device__ __forceinline__ void l2_prefetch(const void *p, size_t bytes, int t, int nthr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)127);
  const char *end = (const char *)p + bytes;
  for (c += (size_t)t * 128; c < end; c += (size_t)nthr * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(c));
#else
  (void)p, (void)bytes, (void)t, (void)nthr;
#endif
}

// kernel<<<grid, block, smem, ctx->stream>>>(args...) with the
// programmatic-serialization attribute when the context allows it
// (asg_cuda_ctx.pdl). Errors are left for asg_cuda_check, as a <<<>>> launch's.
template <typename... KArgs, typename... Args>
void pdl_launch(const asg_cuda_ctx *ctx, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                size_t smem, Args... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = ctx->stream;
  cfg.attrs = attr;
  cfg.numAttrs = ctx->pdl ? 1 : 0;
  cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

#endif
