/* CPU matmul: batched with broadcast batch dims, either operand transposed.
 * GEMM goes to oneDNN's sgemm (f32) and CBLAS when the build found them,
 * else to a simple blocked kernel whose inner loop the compiler
 * vectorizes. */
#define _GNU_SOURCE /* dlopen's RTLD_NOLOAD */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_gemm_bf16.h"
#include "backends/cpu/cpu_simd.h"
#include "runtime/layout.h"
#ifdef ASG_HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef ASG_HAVE_DNNL
#include <dlfcn.h>
#include <dnnl.h>
#endif
#if defined(ASG_HAVE_CBLAS) || defined(ASG_HAVE_DNNL)
#define ASG_BLOCKED_GEMM 1
#endif

/* One product C = alpha * op(A) op(B) + beta * C (the arguments of
 * asg_cpu_sgemm/dgemm), shared by the threads that split it. */
typedef struct gemm_job {
  bool ta, tb, f64;
  int64_t M, N, K, lda, ldb, ldc;
  double alpha, beta; /* exact for f32 too */
  const void *A, *B;
  void *C;
  bool by_rows;      /* BLAS blocks: of rows of C, else of columns */
  int64_t blk;       /* rows or columns a block */
  int64_t nsub, sub; /* each block split along the other axis into nsub parts of sub */
  /* matmul_bias_act's epilogue, applied to each block of C as it is done:
   * C = act(C + bias [N]) + res [M, N] (bias NULL: none; res NULL: none) */
  const void *bias;
  int act;
  const void *res; /* rows of ldc elements, as C */
  /* bf16 products (cpu_gemm_bf16.h): room for both operands in bf16 (NULL:
   * f32), and the operands once converted there */
  uint16_t *bf16;
  const uint16_t *abf, *bbf;
} gemm_job;

/* One f32 row y [n] = act(y + b) + r (b, r NULL: none; act 1 relu, 2
 * gelu_tanh), the adds and the activation as the unfused steps do them (the
 * same bits). One loop per case, so that each vectorizes; compiled again
 * for AVX2 and AVX-512 below (the baseline SSE2 loop took ~1 ns an element,
 * 50-80 us per block of the char-GPT's [512, 128] outputs). */
ASG_ALWAYS_INLINE void epi_row_f32(float *y, const float *b, const float *r, int act, int64_t n) {
  if (b && act == 2) /* the gelu_tanh step's formula (cpu_elementwise_tmpl.h): libm's tanhf */
    for (int64_t j = 0; j < n; j++) {
      const float v = y[j] + b[j];
      y[j] = 0.5f * v * (1.0f + tanhf(0.79788456080286535588f * (v + 0.044715f * v * v * v)));
    }
  else if (b && act == 1)
    for (int64_t j = 0; j < n; j++) {
      const float v = y[j] + b[j];
      y[j] = v > 0 ? v : 0.0f;
    }
  else if (b)
    for (int64_t j = 0; j < n; j++)
      y[j] += b[j];
  if (r)
    for (int64_t j = 0; j < n; j++)
      y[j] += r[j];
}
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void epi_row_f32_avx512(float *y, const float *b, const float *r, int act,
                                                 int64_t n) {
  epi_row_f32(y, b, r, act, n);
}
ASG_TARGET_AVX2 static void epi_row_f32_avx2(float *y, const float *b, const float *r, int act,
                                             int64_t n) {
  epi_row_f32(y, b, r, act, n);
}
#endif
static void epi_row_f32_any(float *y, const float *b, const float *r, int act, int64_t n) {
#ifdef ASG_SIMD_X86
  const int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    epi_row_f32_avx512(y, b, r, act, n);
  else if (level == ASG_SIMD_AVX2)
    epi_row_f32_avx2(y, b, r, act, n);
  else
#endif
    epi_row_f32(y, b, r, act, n);
}

/* rows [r0, r1) x columns [c0, c1) of C: C = act(C + bias) + res (act 1
 * relu, 2 gelu_tanh, f32 only); without a bias, only the residual. */
static void epilogue(const gemm_job *g, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; r++) {
    if (g->f64) {
      double *y = (double *)g->C + r * g->ldc;
      const double *b = g->bias, *rr = g->res ? (const double *)g->res + r * g->ldc : NULL;
      if (b)
        for (int64_t j = c0; j < c1; j++) {
          const double v = y[j] + b[j];
          y[j] = g->act == 1 && !(v > 0) ? 0 : v;
        }
      if (rr)
        for (int64_t j = c0; j < c1; j++)
          y[j] += rr[j];
    } else {
      const float *b = g->bias, *rr = g->res ? (const float *)g->res + r * g->ldc : NULL;
      epi_row_f32_any((float *)g->C + r * g->ldc + c0, b ? b + c0 : NULL, rr ? rr + c0 : NULL,
                      g->act, c1 - c0);
    }
  }
}

/* The built-in kernel on rows [lo, hi) of C [M, N], per type
 * (cpu_matmul_tmpl.h). */
#define SUF f32
#define T float
#include "backends/cpu/cpu_matmul_tmpl.h"
#define SUF f64
#define T double
#include "backends/cpu/cpu_matmul_tmpl.h"

static void rows_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const gemm_job *g = ctx;
  g->f64 ? rows_f64(g, lo, hi) : rows_f32(g, lo, hi);
  if (g->bias || g->res) epilogue(g, lo, hi, 0, g->N);
}

/* Skinny products C [M, N] = alpha A [M, K] B [N, K]^T with M <= SKINNY_M
 * (a decode step's linear layers: M is the batch): each row of B (a
 * weight row) is read once for all M rows of A, straight from memory, where
 * a BLAS GEMM would first pack (copy) all of B. 16 lanes of partial sums
 * keep the dot products vectorized without reassociating them. */
#define SKINNY_M 8
#define LANES 32
#if defined(__GNUC__)
#define ASG_INLINE static inline __attribute__((always_inline))
#else
#define ASG_INLINE static inline
#endif

/* s[r] = a_r . b for R <= 4 rows a_r (stride lda) of length K: R x LANES
 * partial sums, enough independent chains to keep the FMA units busy. */
ASG_INLINE void dots(const float *a, int64_t lda, const float *b, int64_t K, int R, float *s) {
  float acc[4][LANES] = {{0}};
  int64_t k = 0;
  for (; k + LANES <= K; k += LANES)
    for (int r = 0; r < R; r++)
      for (int l = 0; l < LANES; l++)
        acc[r][l] += a[r * lda + k + l] * b[k + l];
  for (int r = 0; r < R; r++) {
    float t = 0;
    for (int64_t q = k; q < K; q++)
      t += a[r * lda + q] * b[q];
    for (int l = 0; l < LANES; l++)
      t += acc[r][l];
    s[r] = t;
  }
}

/* columns [j0, j1) of C */
ASG_INLINE void skinny_cols(const gemm_job *g, int64_t j0, int64_t j1) {
  const float *A = g->A, *B = g->B, alpha = (float)g->alpha, beta = (float)g->beta;
  float *C = g->C, s[4];
  for (int64_t j = j0; j < j1; j++)
    for (int64_t i = 0; i < g->M;) {
      int R = g->M - i >= 4 ? 4 : 1;
      if (R == 4)
        dots(A + i * g->lda, g->lda, B + j * g->ldb, g->K, 4, s);
      else
        dots(A + i * g->lda, g->lda, B + j * g->ldb, g->K, 1, s);
      for (int r = 0; r < R; r++, i++) {
        float *c = C + i * g->ldc + j;
        *c = beta == 0 ? alpha * s[r] : alpha * s[r] + beta * *c;
      }
    }
}

/* The same code compiled for wider vectors and FMA, picked at run time:
 * here each weight is used M times, so arithmetic matters (the build
 * targets baseline x86-64). */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f,avx512vl,fma"))) static void skinny_avx512(const gemm_job *g,
                                                                          int64_t j0, int64_t j1) {
  skinny_cols(g, j0, j1);
}
__attribute__((target("avx2,fma"))) static void skinny_avx2(const gemm_job *g, int64_t j0,
                                                            int64_t j1) {
  skinny_cols(g, j0, j1);
}
static int simd_level(void) {
  static int level = -1; /* benign race: every thread computes the same value */
  if (level < 0) {
    __builtin_cpu_init();
    level = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") ? 2
            : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")  ? 1
                                                                               : 0;
  }
  return level;
}
#endif

static void skinny_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const gemm_job *g = ctx;
  int64_t j0 = lo * g->blk, j1 = hi * g->blk < g->N ? hi * g->blk : g->N;
#if defined(__x86_64__) && defined(__GNUC__)
  int level = simd_level();
  if (level == 2)
    skinny_avx512(g, j0, j1);
  else if (level == 1)
    skinny_avx2(g, j0, j1);
  else
#endif
    skinny_cols(g, j0, j1);
  if (g->bias || g->res) epilogue(g, 0, g->M, j0, j1);
}

static bool skinny(gemm_job *g, asg_cpu_pool *pool) {
  if (g->f64 || g->ta || !g->tb || g->M > SKINNY_M || g->K < LANES) return false;
  int pt = asg_cpu_pool_threads(pool);
  int nt = g->M * g->N * g->K >= (int64_t)1 << 18 ? pt : 1;
  g->blk = 64; /* columns a task */
  asg_cpu_parallel_for(pool, nt, (g->N + g->blk - 1) / g->blk, skinny_range, g);
  return true;
}

#ifdef ASG_HAVE_DNNL
/* oneDNN's sgemm runs on OpenMP threads (Debian's libdnnl: libgomp), as
 * many as the calling thread's OpenMP setting allows: each of our threads
 * asks for one around its call (that setting is per thread), so it never
 * starts a team beside our pool. Found in the libgomp libdnnl loaded; where
 * there is none (another OpenMP), f32 stays with CBLAS. */
static void (*omp_set)(int);
static int (*omp_get)(void);

static void dnnl_init(void) {
  void *h = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (!h) return;
  *(void **)&omp_set = dlsym(h, "omp_set_num_threads");
  *(void **)&omp_get = dlsym(h, "omp_get_max_threads");
  if (!omp_set || !omp_get) omp_set = NULL, omp_get = NULL;
  dlclose(h); /* still loaded: libdnnl needs it */
}

static bool dnnl_on(void) {
  static int off = -1;
  if (off < 0) {
    const char *e = getenv("ASG_CPU_DNNL");
    off = e && e[0] == '0';
  }
  return omp_set && !off;
}

/* oneDNN calls on this thread alone: its OpenMP setting is 1 around them. */
static int omp_one_begin(void) {
  const int prev = omp_get();
  if (prev != 1) omp_set(1);
  return prev;
}
static void omp_one_end(int prev) {
  if (prev != 1) omp_set(prev);
}

/* C [m, n] = alpha op(A) op(B) + beta C, row-major, on this thread only;
 * false when oneDNN failed (C not written: the caller computes it). */
static bool one_thread_sgemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
                             int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  const int prev = omp_one_begin();
  const dnnl_status_t st =
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  omp_one_end(prev);
  return st == dnnl_success;
}

/* The same from the job's bf16 operands (alpha 1, beta 0), elements ao of A
 * and bo of B on. */
static bool one_thread_bf16(const gemm_job *g, int m, int n, int64_t ao, int64_t bo, float *c) {
  const int prev = omp_one_begin();
  const bool ok = asg_cpu_bf16_gemm(g->ta, g->tb, m, n, (int)g->K, g->abf + ao, (int)g->lda,
                                    g->bbf + bo, (int)g->ldb, c, (int)g->ldc);
  omp_one_end(prev);
  return ok;
}
#else
static bool dnnl_on(void) { return false; }
#endif

#ifdef ASG_BLOCKED_GEMM
/* One thread pool: OpenBLAS and oneDNN run single-threaded (set when the
 * CPU device opens, and around each oneDNN call) and large GEMMs are split
 * into row or column blocks over our threads. Two pools (ours waiting while
 * BLAS threads run) oversubscribe the cores and were measured 2-5x slower.
 * Blocks [lo, hi) of the job. */
static void blas_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const gemm_job *g = ctx;
  const int64_t len = g->by_rows ? g->M : g->N, len2 = g->by_rows ? g->N : g->M;
  const int64_t es = g->f64 ? 8 : 4;
  for (int64_t b = lo; b < hi; b++) {
    const int64_t o = b / g->nsub * g->blk, n = len - o < g->blk ? len - o : g->blk;
    const int64_t o2 = b % g->nsub * g->sub, n2 = len2 - o2 < g->sub ? len2 - o2 : g->sub;
    if (n2 <= 0) continue;
    /* block rows [i0, i0 + m) x columns [j0, j0 + nn) of C */
    const int64_t i0 = g->by_rows ? o : o2, j0 = g->by_rows ? o2 : o;
    const int m = (int)(g->by_rows ? n : n2), nn = (int)(g->by_rows ? n2 : n);
    const int64_t ao = g->ta ? i0 : i0 * g->lda, bo = g->tb ? j0 * g->ldb : j0; /* elements */
    const char *a = (const char *)g->A + ao * es, *bb = (const char *)g->B + bo * es;
    char *c = (char *)g->C + (i0 * g->ldc + j0) * es;
    bool done = false;
#ifdef ASG_HAVE_DNNL
    if (g->abf) done = one_thread_bf16(g, m, nn, ao, bo, (float *)c);
    if (!done)
      done = !g->f64 && dnnl_on() &&
             one_thread_sgemm(g->ta, g->tb, m, nn, (int)g->K, (float)g->alpha, (const float *)a,
                              (int)g->lda, (const float *)bb, (int)g->ldb, (float)g->beta,
                              (float *)c, (int)g->ldc);
#endif
    if (!done) {
#ifndef ASG_HAVE_CBLAS
      rows_f32(g, o, o + n); /* oneDNN failed; without CBLAS the blocks are whole rows */
#else
      enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans;
      enum CBLAS_TRANSPOSE tb = g->tb ? CblasTrans : CblasNoTrans;
      if (g->f64)
        cblas_dgemm(CblasRowMajor, ta, tb, m, nn, (int)g->K, g->alpha, (const double *)a,
                    (int)g->lda, (const double *)bb, (int)g->ldb, g->beta, (double *)c,
                    (int)g->ldc);
      else
        cblas_sgemm(CblasRowMajor, ta, tb, m, nn, (int)g->K, (float)g->alpha, (const float *)a,
                    (int)g->lda, (const float *)bb, (int)g->ldb, (float)g->beta, (float *)c,
                    (int)g->ldc);
#endif
    }
    if (g->bias || g->res) epilogue(g, i0, i0 + m, j0, j0 + nn); /* while the block is in cache */
  }
}
#endif

void asg_cpu_blas_init(void) {
#ifdef ASG_HAVE_CBLAS
  openblas_set_num_threads(1);
#endif
#ifdef ASG_HAVE_DNNL
  dnnl_init();
#endif
}

bool asg_cpu_bf16_ready(void) {
#ifdef ASG_HAVE_DNNL
  return omp_get && asg_cpu_bf16_products(); /* its calls run with OpenMP set to one thread */
#else
  return false;
#endif
}

const char *asg_cpu_gemm_name(void) {
#ifdef ASG_HAVE_CBLAS
  return dnnl_on() ? "oneDNN sgemm (f32), OpenBLAS" : "OpenBLAS";
#else
  return dnnl_on() ? "oneDNN sgemm (f32), built-in" : "built-in";
#endif
}

static void gemm_run(gemm_job *g, asg_cpu_pool *pool) {
  const int64_t M = g->M, N = g->N, K = g->K;
  if (M == 0 || N == 0) return;
  const int pt = asg_cpu_pool_threads(pool);
  if (skinny(g, pool)) return;
#ifdef ASG_BLOCKED_GEMM
#ifdef ASG_HAVE_CBLAS
  const bool blocked = true;
#else
  const bool blocked = !g->f64 && dnnl_on();
#endif
  if (blocked && K > 0 && M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX) {
    int nt = M * N * K >= (int64_t)1 << 20 ? pt : 1;
#ifdef ASG_HAVE_CBLAS
    g->by_rows = M >= N;
#else
    g->by_rows = true; /* a block oneDNN fails is computed by rows_f32 */
#endif
#ifdef ASG_HAVE_DNNL
    /* bf16 operands, converted once for all blocks; products of a few rows
     * (a decode step's) stay f32: converting the weights would cost more */
    if (g->bf16 && !g->f64 && M > SKINNY_M && g->alpha == 1 && g->beta == 0) {
      const int64_t na = (g->ta ? K : M) * g->lda, nb = (g->tb ? N : K) * g->ldb;
      asg_cpu_to_bf16(g->A, g->bf16, na, pool);
      asg_cpu_to_bf16(g->B, g->bf16 + na, nb, pool);
      g->abf = g->bf16, g->bbf = g->bf16 + na;
    }
#endif
    const int64_t len = g->by_rows ? M : N, len2 = g->by_rows ? N : M;
    g->blk = (len + nt - 1) / nt;
    if (g->blk < 16) g->blk = 16;
    const int64_t nb = (len + g->blk - 1) / g->blk;
    /* Fewer blocks than threads (a [128, 128] weight gradient on 16 threads):
     * split the other axis too, in parts of 64 or more. Only with CBLAS: a
     * block oneDNN fails is then computed by BLAS, not by whole rows. */
    g->nsub = 1;
#ifdef ASG_HAVE_CBLAS
    if (nb < nt) g->nsub = nt / nb < len2 / 64 ? nt / nb : len2 / 64;
    if (g->nsub < 1) g->nsub = 1;
#endif
    g->sub = (len2 + g->nsub - 1) / g->nsub;
    asg_cpu_parallel_for(pool, nt, nb * g->nsub, blas_range, g);
    return;
  }
#endif
  int nt = M * N * K >= (int64_t)1 << 18 ? pt : 1;
  asg_cpu_parallel_for(pool, nt, M, rows_range, g);
}

/* One product from the arguments of asg_cpu_sgemm / asg_cpu_dgemm. */
static void gemm_call(bool f64, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                      const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                      int64_t ldc, asg_cpu_pool *pool) {
  gemm_job g = {.ta = ta,
                .tb = tb,
                .f64 = f64,
                .M = M,
                .N = N,
                .K = K,
                .lda = lda,
                .ldb = ldb,
                .ldc = ldc,
                .alpha = alpha,
                .beta = beta,
                .A = A,
                .B = B,
                .C = C};
  gemm_run(&g, pool);
}

void asg_cpu_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                   asg_cpu_pool *pool) {
  gemm_call(false, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool);
}

void asg_cpu_dgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                   int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc,
                   asg_cpu_pool *pool) {
  gemm_call(true, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, pool);
}

/* One product of the step into C [M, N], with matmul_bias_act's epilogue
 * (its residual at C's offset in the output). */
static void step_gemm(const asg_cpu_call *c, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                      const void *A, int64_t lda, const void *B, int64_t ldb, void *C) {
  const asg_step *s = c->s;
  const bool fused = s->op == ASG_OP_MATMUL_BIAS_ACT;
  const int bi = fused ? asg__mba_bias(s) : -1, ri = fused ? asg__mba_res(s) : -1;
  const void *res =
      ri >= 0 ? (const char *)c->in[ri] + ((const char *)C - (const char *)c->out) : NULL;
  gemm_job g = {.ta = ta,
                .tb = tb,
                .f64 = s->out.dtype == ASG_F64,
                .M = M,
                .N = N,
                .K = K,
                .lda = lda,
                .ldb = ldb,
                .ldc = N,
                .alpha = 1.0,
                .A = A,
                .B = B,
                .C = C,
                .bias = bi >= 0 ? c->in[bi] : NULL,
                .act = fused ? (int)s->attr.i[2] : 0,
                .res = res};
  if (c->bf16) g.bf16 = c->ws; /* sized by asg_cpu_matmul_bf16_ws */
  gemm_run(&g, c->pool);
}

/* out[..., M, N] = a[..., M, K] b[..., K, N] (attrs i0/i1 transpose a/b);
 * matmul_bias_act (src/passes/fuse_linear.c): then out = act(out + bias [N])
 * (+ r [..., M, N] when it has one; asg__mba_bias/_res), act (i2) 1: ReLU,
 * 2: tanh GELU (f32). */
static asg_status matmul_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  asg_shape as = s->in[0].shape, bs = s->in[1].shape, os = s->out.shape;
  bool ta = s->attr.i[0], tb = s->attr.i[1];
  int ra = as.ndim, rb = bs.ndim, ro = os.ndim;
  int64_t M = os.dims[ro - 2], N = os.dims[ro - 1];
  int64_t K = as.dims[ra - (ta ? 2 : 1)];
  int64_t lda = as.dims[ra - 1], ldb = bs.dims[rb - 1];
  int64_t nbatch = 1, nb_b = 1;
  for (int i = 0; i < ro - 2; i++)
    nbatch *= os.dims[i];
  for (int i = 0; i < rb - 2; i++)
    nb_b *= bs.dims[i];
  bool f32 = s->out.dtype == ASG_F32;
  size_t es = f32 ? 4 : 8;
  /* [.., M, K] x [K, N]: one tall GEMM over all batch rows */
  int64_t nb_a = 1;
  for (int i = 0; i < ra - 2; i++)
    nb_a *= as.dims[i];
  if (nb_b == 1 && !ta && nb_a == nbatch) {
    step_gemm(c, false, tb, nbatch * M, N, K, c->in[0], lda, c->in[1], ldb, c->out);
    return ASG_OK;
  }
  int64_t astr[ASG_MAX_DIMS] = {0}, bstr[ASG_MAX_DIMS] = {0};
  int nbd = ro - 2;
  { /* batch strides in matrices, 0 where broadcast */
    int64_t st = 1;
    for (int d = nbd - 1; d >= 0; d--) {
      int id = ra - 2 - (nbd - d);
      astr[d] = (id >= 0 && as.dims[id] != 1) ? st : 0;
      if (id >= 0) st *= as.dims[id];
    }
    st = 1;
    for (int d = nbd - 1; d >= 0; d--) {
      int id = rb - 2 - (nbd - d);
      bstr[d] = (id >= 0 && bs.dims[id] != 1) ? st : 0;
      if (id >= 0) st *= bs.dims[id];
    }
  }
  int64_t amat = as.dims[ra - 1] * as.dims[ra - 2], bmat = bs.dims[rb - 1] * bs.dims[rb - 2];
  for (int64_t bi = 0; bi < nbatch; bi++) {
    int64_t r = bi, ao = 0, bo = 0;
    for (int d = nbd - 1; d >= 0; d--) {
      int64_t i = r % os.dims[d];
      r /= os.dims[d];
      ao += i * astr[d];
      bo += i * bstr[d];
    }
    const char *A = (const char *)c->in[0] + (size_t)(ao * amat) * es;
    const char *B = (const char *)c->in[1] + (size_t)(bo * bmat) * es;
    step_gemm(c, ta, tb, M, N, K, A, lda, B, ldb, (char *)c->out + (size_t)(bi * M * N) * es);
  }
  return ASG_OK;
}

size_t asg_cpu_matmul_bf16_ws(const asg_step *s) {
  if ((s->op != ASG_OP_MATMUL && s->op != ASG_OP_MATMUL_BIAS_ACT) || s->out.dtype != ASG_F32)
    return 0;
  /* one product's operands (matmul_kernel): all of A in one tall product or
   * one batch item of it, and one batch item of B */
  const asg_shape as = s->in[0].shape, bs = s->in[1].shape;
  const int64_t n = asg_shape_numel(as) + bs.dims[bs.ndim - 1] * bs.dims[bs.ndim - 2];
  return ((size_t)n * sizeof(uint16_t) + 63) & ~(size_t)63;
}

void asg_cpu_register_matmul(asg_cpu_kernel *t) {
  t[ASG_OP_MATMUL].run = matmul_kernel;
  t[ASG_OP_MATMUL_BIAS_ACT].run = matmul_kernel;
}
