/* CPU kernel interface. Each op family registers its kernels into the
 * dispatch table in its own file (cpu_<family>.c). */
#ifndef ASG_CPU_H
#define ASG_CPU_H

#include "backends/cpu/cpu_pool.h"
#include "runtime/plan.h"

typedef struct asg_cpu_call {
  const asg_step *s;
  void *out;
  const void *const *in; /* s->n_in pointers */
  void *ws;              /* workspace of the size the kernel asked for */
  uint64_t run;          /* program run count (RNG key) */
  asg_cpu_pool *pool;    /* the device's threads (asg_cpu_parallel_for) */
  int nthreads;          /* threads in pool */
  asg_comm *comm;        /* the program's communicator (collectives), or NULL */
  void *const *aux;      /* s->n_aux further outputs (plan.h) */
  /* bf16 products (asg_compile_opts.bf16_matmul, where the CPU has them):
   * ws also holds a product's operands in bf16 (asg_cpu_matmul_bf16_ws) */
  bool bf16;
} asg_cpu_call;

typedef struct asg_cpu_kernel {
  asg_status (*run)(const asg_cpu_call *c);
  /* Workspace bytes this step needs (NULL: none). Asked at compile time. */
  size_t (*ws)(const asg_step *s, int nthreads);
  /* Whether run writes a further output (plan.h) of op a itself (NULL:
   * none); the backend runs a's own kernel after the step for the others. */
  bool (*writes_aux)(asg_op a);
} asg_cpu_kernel;

/* Family registration (one per file). */
void asg_cpu_register_elementwise(asg_cpu_kernel *t);
void asg_cpu_register_reduce(asg_cpu_kernel *t);
void asg_cpu_register_matmul(asg_cpu_kernel *t);
void asg_cpu_register_shape(asg_cpu_kernel *t);
void asg_cpu_register_index(asg_cpu_kernel *t);
void asg_cpu_register_nn(asg_cpu_kernel *t);
void asg_cpu_register_ce(asg_cpu_kernel *t);   /* softmax cross-entropy (cpu_ce.c) */
void asg_cpu_register_rope(asg_cpu_kernel *t); /* rope (cpu_rope.c) */
void asg_cpu_register_batchnorm(asg_cpu_kernel *t);
void asg_cpu_register_conv(asg_cpu_kernel *t);
void asg_cpu_register_pooling(asg_cpu_kernel *t);
void asg_cpu_register_random(asg_cpu_kernel *t);
void asg_cpu_register_optim(asg_cpu_kernel *t);
void asg_cpu_register_attention(asg_cpu_kernel *t);
void asg_cpu_register_sample(asg_cpu_kernel *t);
void asg_cpu_register_sort(asg_cpu_kernel *t);
void asg_cpu_register_collective(asg_cpu_kernel *t);
void asg_cpu_register_resample(asg_cpu_kernel *t); /* pad, upsample (+bwd) */
void asg_cpu_register_custom(asg_cpu_kernel *t);   /* user-registered ops (asg/custom.h) */

/* p[i] of an f32 or f64 tensor, as a double, and the reverse (rounded). */
static inline double asg_cpu_load(const void *p, asg_dtype dt, int64_t i) {
  return dt == ASG_F64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}
static inline void asg_cpu_store(void *p, asg_dtype dt, int64_t i, double v) {
  if (dt == ASG_F64)
    ((double *)p)[i] = v;
  else
    ((float *)p)[i] = (float)v;
}

/* Work below this many elements runs on one thread. */
#define ASG_CPU_PAR_MIN 32768

/* Threads for a loop of `units` independent units and `work` elements: 1
 * below ASG_CPU_PAR_MIN (no wake-up), else one per PAR_MIN / 2 elements, at
 * least 2, at most the program's: on many cores a small step wakes only the
 * threads its work pays for (16 threads for the 4096 elements each of a
 * [16, 64, 128] add cost more than they split). */
static inline int asg_cpu_threads_for(const asg_cpu_call *c, int64_t work, int64_t units) {
  if (work < ASG_CPU_PAR_MIN || units <= 1) return 1;
  const int64_t want = work / (ASG_CPU_PAR_MIN / 2);
  return want >= c->nthreads ? c->nthreads : want < 2 ? 2 : (int)want;
}

/* Whether bf16 products run (cpu_gemm_bf16.h, and the OpenMP runtime
 * oneDNN uses was found); after asg_cpu_blas_init. */
bool asg_cpu_bf16_ready(void);
/* Workspace bytes a matmul step's bf16 operands need (0: not an f32
 * product). */
size_t asg_cpu_matmul_bf16_ws(const asg_step *s);

/* Makes the BLAS single-threaded: parallelism comes from our threads. */
void asg_cpu_blas_init(void);
/* The GEMM libraries products use, for the device description. */
const char *asg_cpu_gemm_name(void);
/* C = alpha * op(A) op(B) + beta * C, row-major; BLAS when built with it.
 * Large products are split over pool's threads (NULL: this thread only). */
void asg_cpu_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                   asg_cpu_pool *pool);
void asg_cpu_dgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                   int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc,
                   asg_cpu_pool *pool);

#endif
