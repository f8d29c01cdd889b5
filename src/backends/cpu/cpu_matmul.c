/* CPU matmul: batched with broadcast batch dims, either operand transposed.
 * GEMM goes to CBLAS when the build found one, else to a simple blocked
 * kernel whose inner loop the compiler vectorizes. */
#include <string.h>

#include "backends/cpu/cpu.h"
#ifdef ASG_HAVE_CBLAS
#include <cblas.h>
#endif

#define DEF_GEMM(NAME, T, BLASFN)                                                                  \
  void NAME(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T *A, int64_t lda,   \
            const T *B, int64_t ldb, T beta, T *C, int64_t ldc, int nthreads) {                    \
    if (M == 0 || N == 0) return;                                                                  \
    BLASFN                                                                                         \
    int nt = M * N * K >= (int64_t)1 << 18 ? nthreads : 1;                                         \
    _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int64_t i = 0; i < M; i++) { \
      T *c = C + i * ldc;                                                                          \
      if (beta == 0)                                                                               \
        memset(c, 0, sizeof(T) * (size_t)N);                                                       \
      else if (beta != 1)                                                                          \
        for (int64_t j = 0; j < N; j++)                                                            \
          c[j] *= beta;                                                                            \
      if (!tb) {                                                                                   \
        for (int64_t k = 0; k < K; k++) {                                                          \
          T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);                                    \
          const T *b = B + k * ldb;                                                                \
          for (int64_t j = 0; j < N; j++)                                                          \
            c[j] += a * b[j];                                                                      \
        }                                                                                          \
      } else {                                                                                     \
        for (int64_t j = 0; j < N; j++) {                                                          \
          const T *b = B + j * ldb;                                                                \
          T s = 0;                                                                                 \
          if (!ta)                                                                                 \
            for (int64_t k = 0; k < K; k++)                                                        \
              s += A[i * lda + k] * b[k];                                                          \
          else                                                                                     \
            for (int64_t k = 0; k < K; k++)                                                        \
              s += A[k * lda + i] * b[k];                                                          \
          c[j] += alpha * s;                                                                       \
        }                                                                                          \
      }                                                                                            \
    }                                                                                              \
  }

#ifdef ASG_HAVE_CBLAS
/* One thread pool: OpenBLAS runs single-threaded (set when the CPU device
 * opens) and large GEMMs are split into row or column blocks over our OpenMP
 * threads. Two pools (OpenMP spinning while BLAS threads run) oversubscribe
 * the cores and were measured 2-5x slower. */
#define BLAS_CALL(fn, TY)                                                                          \
  if (K > 0 && M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX) {                               \
    int nt = M * N * K >= (int64_t)1 << 20 ? nthreads : 1;                                         \
    bool by_rows = M >= N;                                                                         \
    int64_t len = by_rows ? M : N, blk = (len + nt - 1) / nt;                                      \
    if (blk < 16) blk = 16;                                                                        \
    int64_t nblk = (len + blk - 1) / blk;                                                          \
    _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int64_t b = 0; b < nblk;     \
                                                                      b++) {                       \
      int64_t o = b * blk, n = len - o < blk ? len - o : blk;                                      \
      const TY *a = A, *bb = B;                                                                    \
      if (by_rows)                                                                                 \
        a = ta ? A + o : A + o * lda;                                                              \
      else                                                                                         \
        bb = tb ? B + o * ldb : B + o;                                                             \
      fn(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,            \
         (int)(by_rows ? n : M), (int)(by_rows ? N : n), (int)K, alpha, a, (int)lda, bb, (int)ldb, \
         beta, by_rows ? C + o *ldc : C + o, (int)ldc);                                            \
    }                                                                                              \
    return;                                                                                        \
  }
#else
#define BLAS_CALL(fn, TY)
#endif

void asg_cpu_blas_init(void) {
#ifdef ASG_HAVE_CBLAS
  openblas_set_num_threads(1);
#endif
}

DEF_GEMM(asg_cpu_sgemm, float, BLAS_CALL(cblas_sgemm, float))
DEF_GEMM(asg_cpu_dgemm, double, BLAS_CALL(cblas_dgemm, double))

/* out[..., M, N] = a[..., M, K] b[..., K, N] (attrs i0/i1 transpose a/b). */
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
    if (f32)
      asg_cpu_sgemm(false, tb, nbatch * M, N, K, 1.0f, c->in[0], lda, c->in[1], ldb, 0.0f, c->out,
                    N, c->nthreads);
    else
      asg_cpu_dgemm(false, tb, nbatch * M, N, K, 1.0, c->in[0], lda, c->in[1], ldb, 0.0, c->out, N,
                    c->nthreads);
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
    char *C = (char *)c->out + (size_t)(bi * M * N) * es;
    if (f32)
      asg_cpu_sgemm(ta, tb, M, N, K, 1.0f, (const float *)A, lda, (const float *)B, ldb, 0.0f,
                    (float *)C, N, c->nthreads);
    else
      asg_cpu_dgemm(ta, tb, M, N, K, 1.0, (const double *)A, lda, (const double *)B, ldb, 0.0,
                    (double *)C, N, c->nthreads);
  }
  return ASG_OK;
}

void asg_cpu_register_matmul(asg_cpu_kernel *t) { t[ASG_OP_MATMUL].run = matmul_kernel; }
