/* mm_tile_<W>, the register tile of cpu_attention_f32.c's products over vectors of W floats,
 * included there once per W (4, 8, 16: the SSE2, AVX2, AVX-512 registers) with MM_W defined
 * (undefined at the end). No include guard: it is meant to be included more than once. */
#define MM_CAT_(a, b) a##_##b
#define MM_CAT(a, b) MM_CAT_(a, b)
#define VEC MM_CAT(vec, MM_W)

typedef float VEC __attribute__((vector_size(sizeof(float) * MM_W)));

/* NV <= 16 / MM_W (AVX-512: 2) vectors a row; see mm_cols. */
ASG_ALWAYS_INLINE void MM_CAT(mm_tile, MM_W)(int R, int NV, const float *A, int64_t sr, int64_t sk,
                                             const float *B, int64_t ldb, int64_t K, float *C,
                                             int64_t ldc) {
  enum { NVMAX = MM_W == 16 ? 2 : 16 / MM_W };
  VEC acc[RT][NVMAX], b[NVMAX];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++)
      acc[r][v] = (VEC){0};
  for (int64_t k = 0; k < K; k++) {
    for (int v = 0; v < NV; v++)
      memcpy(&b[v], B + k * ldb + v * MM_W, sizeof b[v]);
    for (int r = 0; r < R; r++) {
      const float x = A[r * sr + k * sk];
      for (int v = 0; v < NV; v++)
        acc[r][v] += x * b[v];
    }
  }
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++)
      memcpy(C + r * ldc + v * MM_W, &acc[r][v], sizeof acc[r][v]);
}

#undef VEC
#undef MM_CAT
#undef MM_CAT_
#undef MM_W
