/* CUDA kernel interface, shared by the host backend (cuda_backend.c, C) and
 * the kernel files (cuda_<family>.cu, CUDA C++). Each family registers its
 * launchers into the dispatch table, as on the CPU. */
#ifndef ASG_CUDA_H
#define ASG_CUDA_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/backend.h"
#include "runtime/inspect.h"
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
  /* kernels of cuda_pdl.cuh may overlap the one before them (compute
   * capability 9+, ASG_CUDA_PDL not 0) */
  bool pdl;
  void *gemm_cache;                 /* cuBLASLt algorithms chosen per GEMM shape (cuda_matmul.cu) */
  struct asg_cuda_staging *staging; /* double-buffered uploads (cuda_backend.c) */
  int n_staging;
  cudaStream_t copy_stream; /* uploads overlap the compute stream */
  void *bounce;             /* pinned buffer for small reads */
  /* cuda_alloc's live buffers and their sizes (cudaFree does not tell a
   * size), for memory_stats; changed under the store lock */
  struct asg_cuda_live *live;
  size_t n_live, cap_live, live_bytes;
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
  bool tf32;   /* f32 GEMMs may use TF32 tensor cores (asg_compile_opts.allow_tf32) */
  bool bf16;   /* f32 GEMMs take bf16-rounded operands (asg_compile_opts.bf16_matmul) */
  bool fp16;   /* ... or fp16-rounded ones (asg_compile_opts.fp16_matmul) */
  void *state; /* what the kernel's .prepare made for this step (or NULL) */
  /* Statistics a forward step hands to later steps over the same inputs
   * (paired by cuda_backend.c): softmax CE -> its backward (the rows'
   * log-sum-exp and the count of rows taken, doubles), attention ->
   * attention_lse (the lse itself), layernorm -> its two backward ops (row
   * means, then 1/std, doubles). The forward writes them to stats_out when
   * set; a later step reads stats_in when set instead of recomputing them. */
  void *stats_out;
  const void *stats_in;
  /* bf16/fp16 copies of a product's operands shared by the products that
   * read the same tensor (planned by cuda_backend.c): per operand,
   * ASG_CUDA_HALF_NONE converts it into the workspace, _MAKE into half[j],
   * _READY finds it in half[j] already. */
  void *half[2];
  unsigned char half_mode[2];
  /* When set, the step writes its f32 output as that 16-bit copy instead
   * (bf16 when bf16, else fp16): every reader of it is a product reading the
   * copy (the softmax CE backward, layernorm and permute do this). */
  void *half_out;
  /* layernorm_bwd_x: also the dgamma of a later layernorm_bwd_gamma over the
   * same dy and x, into that step's output (paired by cuda_backend.c, which
   * then skips that step; rows of at most 1024 columns). */
  void *fused_out;
  /* With fused_out: also the sum of dy over its rows (a layer's beta
   * gradient: a sum step over every axis of dy but the last, paired with it
   * by cuda_backend.c, which skips that step), into that step's output. */
  void *fused_out2;
  /* matmul_bias_act (set by cuda_matmul.cu from the step): the GEMM's
   * epilogue adds epi_bias [N] to every output row, applies epi_act and
   * writes epi_out (the step's out). */
  const void *epi_bias;
  void *epi_out;
  int epi_act;         /* ASG_CUDA_EPI_* */
  const void *epi_res; /* ... then adds this [rows, N] (asg__mba_res), or NULL */
  /* matmul a^T b: also the column sums of a ([R, C] -> [C], f32: a linear
   * layer's bias gradient) into bgrad_out, in cuBLASLt's epilogue; the sum
   * step then launches nothing (cuda_backend.c plans it). */
  void *bgrad_out;
  /* layernorm: its input is the sum ln_add[0] + ln_add[1] of an add step
   * folded in (cuda_backend.c): computed and written to in[0] first. */
  const void *ln_add[2];
  /* matmul with 16-bit operands: while converting operand colsum_op ([R, C]
   * f32), also its column sums ([C], f32: a linear layer's bias gradient)
   * into colsum_out; the sum step then launches nothing (cuda_backend.c). */
  void *colsum_out;
  int colsum_op;
  /* matmul with 16-bit operands: writes its output as that 16-bit type in
   * the first half of out's bytes (every reader of it is a softmax CE or its
   * backward step, with in_half set; cuda_backend.c). Known at .prepare. */
  bool out_half;
  /* softmax CE / its backward: in[0] (the logits) holds 16-bit values (bf16
   * when bf16, else fp16) written by the product with out_half. */
  bool in_half;
  /* Steps that read indices (asg__step_checks_index) report an out-of-range
   * one here (device memory, cuda_fault.cuh) as step1 = 1 + the step's
   * index; NULL when the program does not check. */
  asg_index_fault *fault;
  unsigned step1;
  asg_comm *comm; /* the program's communicator (asg_plan.comm; collectives), or NULL */
} asg_cuda_call;

enum { ASG_CUDA_EPI_BIAS = 1, ASG_CUDA_EPI_RELU = 2, ASG_CUDA_EPI_GELU_TANH = 3 };

enum { ASG_CUDA_HALF_NONE = 0, ASG_CUDA_HALF_MAKE = 1, ASG_CUDA_HALF_READY = 2 };

/* Whether a product's plan (.prepare state) computes the bias gradient
 * asked for by bgrad_out (else its sum step must run). */
bool asg_cuda_mm_bgrad(const void *state);

/* Whether a product's plan (.prepare state) writes its output as 16 bits
 * (asg_cuda_call.out_half honoured). */
bool asg_cuda_mm_out_half(const void *state);

/* The 16-bit dtype a product's plan (its .prepare state) converts its f32
 * operands to, or ASG_F32 when it converts nothing (cuda_matmul.cu). */
asg_dtype asg_cuda_mm_low(const void *state);

/* Skinny products (cuda_gemv.cu): an f32 x [rows <= 8, K] times W [N, K]^T,
 * with matmul_bias_act's epilogue when c has one, run as one memory-bound
 * kernel instead of a cuBLAS GEMM (ASG_CUDA_GEMV=0: cuBLAS). */
bool asg_cuda_gemv_ok(const asg_cuda_call *c);
asg_status asg_cuda_gemv(const asg_cuda_call *c);

/* The ops cuda_matmul.cu runs as products (with their .prepare plans):
 * matmul and the fused matmul_bias_act. */
static inline bool asg_cuda_is_product(asg_op op) {
  return op == ASG_OP_MATMUL || op == ASG_OP_MATMUL_BIAS_ACT;
}

/* Split-over-keys attention for <= 8 query rows (cuda_attention_decode.cu):
 * false when the step does not qualify (then another kernel runs it). */
bool asg_cuda_attention_decode(const asg_cuda_call *c, const float *mask, int64_t G);
size_t asg_cuda_attention_decode_ws(const asg_step *s, unsigned plan_flags);

/* Whether the one-pass layernorm backward (cuda_layernorm.cu) can write
 * layernorm_bwd_x step s's further outputs, its gamma and beta gradients
 * (smem_max: the shared memory a block may opt in to; cuda_exec.c). */
bool asg_cuda_ln_xg_ok(const asg_step *s, size_t smem_max);

/* Two cache_write steps in one launch (cuda_elementwise.cu; cuda_exec.c
 * pairs a decode step's k and v writes): whether a and b can be, and the
 * launch (each job as its own step: its fault record entry, its position). */
bool asg_cuda_cache_write_pairable(const asg_step *a, const asg_step *b);
asg_status asg_cuda_cache_write_pair(const asg_cuda_call *a, const asg_cuda_call *b);

typedef struct asg_cuda_kernel {
  /* Enqueues the step on c->ctx->stream; must not synchronize or allocate.
   * Returns an error for unsupported dtypes/shapes (checked at enqueue). */
  asg_status (*run)(const asg_cuda_call *c);
  /* Device workspace bytes the step needs in a plan with these flags
   * (ASG_PLAN_*; NULL: none). */
  size_t (*ws)(const asg_step *s, unsigned plan_flags);
  /* Optional, once per step when the program is created (buffers are
   * resolved, nothing is captured yet): plans the step (e.g. picks a GEMM
   * algorithm by timing candidates on the step's own buffers) into *state,
   * which later calls see as c->state and .release frees. */
  asg_status (*prepare)(const asg_cuda_call *c, void **state);
  void (*release)(void *state);
} asg_cuda_kernel;

/* Frees the context's GEMM algorithm cache (cuda_close). */
void asg_cuda_gemm_cache_free(void *cache);

void asg_cuda_register_elementwise(asg_cuda_kernel *t); /* unary, binary, where, cast, copies,
                                                           fill, assign, cache_write,
                                                           broadcast_to */
void asg_cuda_register_reduce(asg_cuda_kernel *t);      /* sum..argmax, softmax, log_softmax */
void asg_cuda_register_matmul(asg_cuda_kernel *t);
void asg_cuda_register_index(asg_cuda_kernel *t);     /* permute, slice(_bwd), concat, gather,
                                                         scatter_add, one_hot */
void asg_cuda_register_nn(asg_cuda_kernel *t);        /* layernorm(+bwd), softmax CE(+bwd), rand */
void asg_cuda_register_rope(asg_cuda_kernel *t);      /* rope */
void asg_cuda_register_batchnorm(asg_cuda_kernel *t); /* batchnorm (+bwd) */
void asg_cuda_register_conv(asg_cuda_kernel *t);      /* conv family and pools */
void asg_cuda_register_optim(asg_cuda_kernel *t);     /* fused Adam updates */
void asg_cuda_register_attention(asg_cuda_kernel *t); /* fused attention fwd/bwd */
void asg_cuda_register_sample(asg_cuda_kernel *t);    /* sample_filter */
void asg_cuda_register_resample(asg_cuda_kernel *t);  /* pad, upsample (+bwd) */
void asg_cuda_register_sort(asg_cuda_kernel *t);      /* argsort, cumsum */
/* all_reduce, broadcast, all_gather, reduce_scatter over NCCL (cuda_collective.cu);
 * registers nothing in a build without NCCL */
void asg_cuda_register_collective(asg_cuda_kernel *t);
/* user-registered ops (asg/custom.h): their CUDA callback on the program's stream */
void asg_cuda_register_custom(asg_cuda_kernel *t);
/* After a run of a program with collectives: an asynchronous NCCL error
 * (a transport failure, a lost peer) as an error naming `what`; the NCCL
 * communicator is then aborted and comm broken. */
asg_status asg_cuda_coll_after_run(asg_comm *comm, const char *what);

/* Multi-tensor Adam (cuda_backend.c groups the adam_moment, adam_moment2,
 * adam_param steps of many parameters into one launch): per element of each
 * tensor, m' = adam_moment(m, g), v' = adam_moment2(v, g) and
 * p' = adam_param(p, m', v', lr, bc1, bc2), with the very operations of the
 * separate kernels. A table of these lives in device memory, written once. */
typedef struct asg_cuda_adam_tensor {
  void *m_out, *v_out, *p_out;         /* may equal m, v, p (in place) */
  const void *m, *v, *p, *g;           /* dtype T, n elements each */
  const void *lr, *bc1, *bc2;          /* one element each, dtype S */
  double beta1, one_m1, beta2, one_m2; /* moment attrs f0, f1 (rounded to T) */
  double eps, wd;                      /* param attrs f0, f1 */
  int64_t n;                           /* elements */
  int64_t units, block0;               /* set by asg_cuda_adam_layout: work units, first block */
  int32_t vec;                         /* 16-byte vectors (every pointer aligned) */
  int32_t chunk;                       /* set by asg_cuda_adam_layout: work units per block */
} asg_cuda_adam_tensor;

/* Lays out the launch of e[0..n) (parameters of dtype t): sets units, block0,
 * chunk and vec; returns the number of blocks (0 when every tensor is empty). */
int64_t asg_cuda_adam_layout(asg_cuda_adam_tensor *e, int n, asg_dtype t);
/* Enqueues the update of the n tensors of tab (a device copy of a table laid
 * out above) in one kernel of `blocks` blocks; errors name c->s. */
asg_status asg_cuda_adam_multi(const asg_cuda_call *c, const asg_cuda_adam_tensor *tab, int n,
                               int64_t blocks, asg_dtype t, asg_dtype s);

/* ---- byte ranges of a resolved plan's operands (hazard checks of the
 * multi-tensor Adam grouping and of the elementwise fusion) ---- */
typedef struct asg_cuda_range {
  uintptr_t lo, hi; /* [lo, hi) */
} asg_cuda_range;

static inline bool asg_cuda_overlap(asg_cuda_range a, asg_cuda_range b) {
  return a.lo < b.hi && b.lo < a.hi;
}
/* Bytes of input j / the output of step i. */
static inline asg_cuda_range asg_cuda_in_range(const asg_resolved *r, int i, int j) {
  const uintptr_t p = (uintptr_t)r->in[i][j];
  return (asg_cuda_range){p, p + asg__tdesc_bytes(&r->plan.steps[i].in[j])};
}
static inline asg_cuda_range asg_cuda_out_range(const asg_resolved *r, int i) {
  const uintptr_t p = (uintptr_t)r->out[i];
  return (asg_cuda_range){p, p + asg__tdesc_bytes(&r->plan.steps[i].out)};
}

/* ---- fused elementwise chains (cuda_fuse.c) ----
 * Consecutive elementwise steps over the same elements run as one kernel,
 * generated for the chain and compiled when the program is created (NVRTC,
 * loaded at run time; without it nothing is fused): each thread loads the
 * chain's external inputs for its element, evaluates the steps in order in
 * registers and stores only the values that are read after the chain (or
 * are variables / program outputs). */
typedef struct asg_cuda_fusion {
  signed char *role; /* per step: 0 run, 1 skip (done by a later launch), 2 launch */
  int *group;        /* per launching step: its chain */
  struct asg_cuda_chain *chains;
  int n_chains;
  int fused_steps; /* steps that no longer launch alone */
  void *module;    /* CUmodule with every chain's kernel */
  double compile_ms;
} asg_cuda_fusion;

/* Finds the chains of the resolved plan (an asg_resolved) and compiles their
 * kernels (none with ASG_CUDA_FUSE=0, or when NVRTC cannot be loaded). Steps
 * with exclude[i] set (may be NULL) are in no chain. */
asg_status asg_cuda_fuse_plan(const asg_resolved *r, const char *exclude, asg_cuda_fusion *f);
void asg_cuda_fusion_free(asg_cuda_fusion *f);
/* Chain k's store of the f32 value at addr: its index, or -1 (none, or not
 * an f32 chain); *first, *last: the chain's steps. */
int asg_cuda_chain_store(const asg_cuda_fusion *f, int k, uintptr_t addr, int *first, int *last);
/* Makes store j of chain k write its values as a 16-bit copy at dst (bf16
 * when bf16, else fp16) instead of f32 (cuda_backend.c's half_plan). */
void asg_cuda_chain_half(asg_cuda_fusion *f, int k, int j, void *dst, bool bf16);
/* Enqueues chain k; errors are reported with c->s's label. */
asg_status asg_cuda_fused_run(const asg_cuda_call *c, const asg_cuda_fusion *f, int k);

/* part [P, C] (double partial column sums, chunk by chunk) -> out [C] (f32
 * when f32, else f64), in a fixed order (cuda_layernorm.cu). */
void asg_cuda_part_finish(const double *part, void *out, int64_t P, int64_t C, bool f32,
                          cudaStream_t st);

/* Anomaly mode (runtime/inspect.h, asg_finite_fault): checks step s's
 * output, then (in not NULL) its inputs, into record f (cuda_finite.cu). */
void asg_cuda_check_finite(const asg_step *s, void *out, const void *const *in, unsigned step1,
                           asg_finite_fault *f, cudaStream_t st);

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
