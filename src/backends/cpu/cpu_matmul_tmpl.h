/* The built-in GEMM's row kernels for one element type, included by cpu_matmul.c once per type
 * with SUF, T defined; they are undefined at the end. No include guard: it
 * is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

static void ASG_CAT(rows, SUF)(const gemm_job *g, int64_t lo, int64_t hi) {
  const T *A = g->A, *B = g->B, alpha = (T)g->alpha, beta = (T)g->beta;
  const int64_t N = g->N, K = g->K, lda = g->lda, ldb = g->ldb;
  const bool ta = g->ta;
  for (int64_t i = lo; i < hi; i++) {
    T *c = (T *)g->C + i * g->ldc;
    if (beta == 0)
      memset(c, 0, sizeof(T) * (size_t)N);
    else if (beta != 1)
      for (int64_t j = 0; j < N; j++)
        c[j] *= beta;
    if (!g->tb) {
      for (int64_t k = 0; k < K; k++) {
        T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
        const T *b = B + k * ldb;
        for (int64_t j = 0; j < N; j++)
          c[j] += a * b[j];
      }
    } else {
      for (int64_t j = 0; j < N; j++) {
        const T *b = B + j * ldb;
        T s = 0;
        if (!ta)
          for (int64_t k = 0; k < K; k++)
            s += A[i * lda + k] * b[k];
        else
          for (int64_t k = 0; k < K; k++)
            s += A[k * lda + i] * b[k];
        c[j] += alpha * s;
      }
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
