/* Direct weight gradient for f32, stride 1: no im2col, no GEMM call.
 *
 * Why: im2col + GEMM writes and reads the columns (CKK x OH*OW floats an
 * image) and calls the BLAS once per image with a short inner dimension.
 *
 * How: with xp the padded image of cpu_conv_direct.c (tap t of output
 * (oh, ow) reads xp [oh*Wp + ow + off[t]]),
 *   dw [o, t] = sum over images n, positions p = (oh, ow) of
 *               dy [n, o, p] * xp_n [oh*Wp + ow + off[t]]
 * The outputs o are the vector lanes: dy is copied transposed, dyt [p, Og
 * rounded up to 16 lanes], and a tile of OV vectors of outputs x TT taps
 * keeps its sums in registers while it runs over the positions, each step
 * one load of dyt per vector, one broadcast of xp per tap and OV*TT fused
 * multiply-adds. The sums live in dwt [CKK, Og rounded up] between blocks
 * of images, and go to dw [Og, CKK] at the end. Every dw element is thus
 * one chain of fused multiply-adds over the images and positions in order:
 * every SIMD level gives the same bits, and the threads (which split the
 * tiles) do not change them. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_conv.h"
#include "backends/cpu/cpu_simd.h"
#include "backends/cpu/cpu_transpose.h"
#ifdef ASG_SIMD_X86
#include <immintrin.h> /* FMA: no plain-C spelling of a vector fused multiply-add */
#endif

#define OV 2  /* vectors of 16 outputs per tile */
#define TT 12 /* taps per tile */

/* Outputs rounded up to whole vectors; floats of one image's copies (xp,
 * then dyt [OHW, ogp]). */
static int64_t ogp_of(const cgeo *g) { return (g->Og + 15) / 16 * 16; }
static int64_t image_of(const cgeo *g) { return asg_cpu_conv_direct_xp(g) + g->OHW * ogp_of(g); }

/* Images copied at once: up to about 8 MiB of copies (fixed by the shapes,
 * never by the threads), and of those SUB at a time through all tiles, so
 * that their copies stay in the L2 cache. */
static int64_t block_of(const cgeo *g) {
  int64_t most = ((int64_t)1 << 21) / image_of(g);
  if (most < 1) most = 1;
  const int64_t blocks = (g->N + most - 1) / most;
  return (g->N + blocks - 1) / blocks;
}
static int64_t sub_of(const cgeo *g) {
  int64_t s = ((int64_t)1 << 16) / image_of(g);
  return s < 1 ? 1 : s;
}

int64_t asg_cpu_conv_direct_bw_ws(const cgeo *g) {
  return block_of(g) * image_of(g) + g->CKK * ogp_of(g);
}

/* One tile over nimg images: outputs o0.. (nv vectors), taps at xo[TT]
 * (the last repeated past CKK), sums s in dwt rows t0.. */
typedef struct tile_args {
  const float *copies; /* the first image's copies; image_of floats apart */
  int64_t img, xpn, ogp, nimg, OH, OW, Wp, o0;
  int64_t xo[TT];
  float *dwt; /* dwt + t0 * ogp + o0 */
} tile_args;

static void tile_base(const tile_args *a, int nv, int nk) {
  float s[TT][OV * 16];
  for (int k = 0; k < nk; k++)
    memcpy(s[k], a->dwt + k * a->ogp, sizeof(float) * 16 * (size_t)nv);
  for (int64_t n = 0; n < a->nimg; n++) {
    const float *xp = a->copies + n * a->img, *dyt = xp + a->xpn + a->o0;
    for (int64_t oh = 0; oh < a->OH; oh++)
      for (int64_t ow = 0; ow < a->OW; ow++) {
        const float *d = dyt + (oh * a->OW + ow) * a->ogp, *x = xp + oh * a->Wp + ow;
        for (int k = 0; k < nk; k++)
          for (int l = 0; l < 16 * nv; l++)
            s[k][l] = fmaf(d[l], x[a->xo[k]], s[k][l]);
      }
  }
  for (int k = 0; k < nk; k++)
    memcpy(a->dwt + k * a->ogp, s[k], sizeof(float) * 16 * (size_t)nv);
}

#ifdef ASG_SIMD_X86
/* AVX-512: OV*TT sums in registers (named: GCC keeps an array of vectors
 * in memory). Taps past nk repeat the last one and are not stored. */
#define TAPS(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#define DECL(k) __m512 a##k, b##k;
#define LOAD(k)                                                                                    \
  a##k = _mm512_loadu_ps(w + (k < nk ? k : nk - 1) * ogp);                                         \
  b##k = two ? _mm512_loadu_ps(w + (k < nk ? k : nk - 1) * ogp + 16) : a##k;
#define STORE(k)                                                                                   \
  if (k < nk) {                                                                                    \
    _mm512_storeu_ps(w + k * ogp, a##k);                                                           \
    if (two) _mm512_storeu_ps(w + k * ogp + 16, b##k);                                             \
  }
#define STEP(k)                                                                                    \
  {                                                                                                \
    const __m512 xv = _mm512_set1_ps(x[xo##k]);                                                    \
    a##k = _mm512_fmadd_ps(d0, xv, a##k);                                                          \
    b##k = _mm512_fmadd_ps(d1, xv, b##k);                                                          \
  }
#define XO(k) const int64_t xo##k = a->xo[k];
ASG_TARGET_AVX512 static void tile_avx512(const tile_args *a, int nv, int nk) {
  const int64_t ogp = a->ogp, OW = a->OW, Wp = a->Wp;
  const bool two = nv == 2; /* else the b sums repeat the a sums (not stored) */
  float *w = a->dwt;
  TAPS(DECL)
  TAPS(LOAD)
  TAPS(XO)
  for (int64_t n = 0; n < a->nimg; n++) {
    const float *xp = a->copies + n * a->img, *dyt = xp + a->xpn + a->o0;
    for (int64_t oh = 0; oh < a->OH; oh++) {
      const float *drow = dyt + oh * OW * ogp, *xrow = xp + oh * Wp;
      for (int64_t ow = 0; ow < OW; ow++) {
        const float *x = xrow + ow;
        const __m512 d0 = _mm512_loadu_ps(drow + ow * ogp),
                     d1 = two ? _mm512_loadu_ps(drow + ow * ogp + 16) : d0;
        TAPS(STEP)
      }
    }
  }
  TAPS(STORE)
}
#undef DECL
#undef LOAD
#undef STORE
#undef STEP
#undef XO
#undef TAPS

/* AVX2: 16 lanes (two registers) x TT/2 taps at a time: fewer broadcasts
 * per multiply-add than 8 lanes x TT. */
__attribute__((target("avx2,fma"))) static void tile_avx2(const tile_args *a, int nv, int nk) {
  enum { TH = TT / 2 };
  for (int h = 0; h < nv; h++)
    for (int k0 = 0; k0 < nk; k0 += TH) {
      __m256 s[2][TH];
      for (int k = 0; k < TH; k++)
        for (int i = 0; i < 2; i++) {
          const int kk = k0 + k < nk ? k0 + k : nk - 1;
          s[i][k] = _mm256_loadu_ps(a->dwt + kk * a->ogp + 16 * h + 8 * i);
        }
      int64_t xo[TH];
      for (int k = 0; k < TH; k++)
        xo[k] = a->xo[k0 + k];
      for (int64_t n = 0; n < a->nimg; n++) {
        const float *xp = a->copies + n * a->img, *dyt = xp + a->xpn + a->o0 + 16 * h;
        for (int64_t oh = 0; oh < a->OH; oh++)
          for (int64_t ow = 0; ow < a->OW; ow++) {
            const float *d = dyt + (oh * a->OW + ow) * a->ogp, *x = xp + oh * a->Wp + ow;
            const __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
            for (int k = 0; k < TH; k++) {
              const __m256 xv = _mm256_set1_ps(x[xo[k]]);
              s[0][k] = _mm256_fmadd_ps(d0, xv, s[0][k]);
              s[1][k] = _mm256_fmadd_ps(d1, xv, s[1][k]);
            }
          }
      }
      for (int k = 0; k < TH && k0 + k < nk; k++)
        for (int i = 0; i < 2; i++)
          _mm256_storeu_ps(a->dwt + (k0 + k) * a->ogp + 16 * h + 8 * i, s[i][k]);
    }
}
#endif

typedef struct bw_job {
  const cgeo *g;
  const float *x, *dy;
  float *copies, *dwt;
  int64_t n0, nimg, gi, ntile_o, ntile_t;
  const int64_t *off;
} bw_job;

/* Images [lo, hi) of the block -> their copies: xp, and dyt [OHW, ogp]
 * (zeros past Og). */
static void copy_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const bw_job *b = ctx;
  const cgeo *g = b->g;
  const int64_t ogp = ogp_of(g), n = b->n0;
  for (int64_t i = lo; i < hi; i++) {
    float *xp = b->copies + i * image_of(g), *dyt = xp + asg_cpu_conv_direct_xp(g);
    asg_cpu_conv_direct_pad(g, b->x + ((n + i) * g->C + b->gi * g->Cg) * g->HW, xp);
    const float *dy = b->dy + ((n + i) * g->O + b->gi * g->Og) * g->OHW;
    /* dy [Og, OHW] -> dyt [OHW, ogp], zeros past Og */
    asg_transpose_pad(dy, g->Og, g->OHW, dyt, ogp, asg_cpu_simd_level() == ASG_SIMD_AVX512);
  }
}

/* Tiles [lo, hi): SUB images at a time through all of them. */
static void tile_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const bw_job *b = ctx;
  const cgeo *g = b->g;
  const int64_t ogp = ogp_of(g), sub = sub_of(g), nvec = ogp / 16;
  tile_args a = {.img = image_of(g),
                 .xpn = asg_cpu_conv_direct_xp(g),
                 .ogp = ogp,
                 .OH = g->OH,
                 .OW = g->OW,
                 .Wp = g->OW + (g->KW - 1) * g->dw};
  const int level = asg_cpu_simd_level();
#ifdef ASG_SIMD_X86
  static _Atomic int has_fma = -1; /* every AVX2 CPU we know has FMA3; checked all the same */
  if (has_fma < 0) has_fma = __builtin_cpu_supports("fma") != 0;
#endif
  for (int64_t s0 = 0; s0 < b->nimg; s0 += sub) {
    a.nimg = b->nimg - s0 < sub ? b->nimg - s0 : sub;
    a.copies = b->copies + s0 * a.img;
    for (int64_t tile = lo; tile < hi; tile++) {
      const int64_t v0 = tile / b->ntile_t * OV, t0 = tile % b->ntile_t * TT;
      const int nv = nvec - v0 < OV ? (int)(nvec - v0) : OV;
      const int nk = g->CKK - t0 < TT ? (int)(g->CKK - t0) : TT;
      a.o0 = v0 * 16;
      a.dwt = b->dwt + t0 * ogp + a.o0;
      for (int k = 0; k < TT; k++)
        a.xo[k] = b->off[t0 + (k < nk ? k : nk - 1)];
#ifdef ASG_SIMD_X86
      if (level == ASG_SIMD_AVX512)
        tile_avx512(&a, nv, nk);
      else if (level == ASG_SIMD_AVX2 && has_fma)
        tile_avx2(&a, nv, nk);
      else
#endif
        tile_base(&a, nv, nk);
    }
  }
  (void)level;
}

void asg_cpu_conv_direct_bw(const cgeo *g, const float *x, const float *dy, float *dw, float *ws,
                            asg_cpu_pool *pool, int nthreads) {
  int64_t off[CONV_DIRECT_MAX_TAPS];
  asg_cpu_conv_direct_offsets(g, off);
  const int64_t B = block_of(g), ogp = ogp_of(g);
  bw_job b = {.g = g,
              .x = x,
              .dy = dy,
              .copies = ws,
              .dwt = ws + B * image_of(g),
              .ntile_o = (ogp / 16 + OV - 1) / OV,
              .ntile_t = (g->CKK + TT - 1) / TT,
              .off = off};
  const int64_t tiles = b.ntile_o * b.ntile_t;
  for (b.gi = 0; b.gi < g->G; b.gi++) {
    memset(b.dwt, 0, sizeof(float) * (size_t)(g->CKK * ogp));
    for (b.n0 = 0; b.n0 < g->N; b.n0 += B) {
      b.nimg = g->N - b.n0 < B ? g->N - b.n0 : B;
      asg_cpu_parallel_for(pool, b.nimg * image_of(g) >= ASG_CPU_PAR_MIN ? nthreads : 1, b.nimg,
                           copy_range, &b);
      asg_cpu_parallel_for(pool, nthreads, tiles, tile_range, &b);
    }
    float *dwg = dw + b.gi * g->Og * g->CKK; /* dwt [CKK, ogp] -> dw_g [Og, CKK] */
    for (int64_t o = 0; o < g->Og; o++)
      for (int64_t t = 0; t < g->CKK; t++)
        dwg[o * g->CKK + t] = b.dwt[t * ogp + o];
  }
}
