/* Direct forward convolution for f32, stride 1: no im2col, no GEMM call.
 *
 * Why: a small CNN's convolutions have few taps (CKK = Cg*KH*KW of
 * 9..600) and few outputs (8..64): one image's im2col GEMM is then a
 * [Og, CKK] x [CKK, OH*OW] product too small for the BLAS to reach speed,
 * and the im2col copy costs a large part of the product. It also runs
 * input gradients, as the forward of dy with the flipped weights
 * (cpu_conv.c builds that geometry; asg_cpu_conv_direct_pack flips).
 *
 * How: the image's group channels are copied once into a zero-padded
 * buffer xp [Cg, Hp, Wp] (Hp = OH + (KH-1)dh, Wp = OW + (KW-1)dw), so that
 * for the output position q = oh*Wp + ow of the padded grid every tap
 * t = (c, kh, kw) reads xp at q + off[t], off[t] = c*Hp*Wp + kh*dh*Wp +
 * kw*dw: one contiguous run of 16 outputs is one contiguous run of inputs.
 *   out[o, q] = sum_t w[o, t] * xp[q + off[t]]   for 8 outputs o at a time
 * The columns ow >= OW of the padded grid are computed and dropped: at
 * AVX-512 each vector's valid lanes are compressed straight into y
 * (block_store_avx512), elsewhere the block goes to a buffer whose rows
 * are copied to y. The weights are packed per group as [Og/8, CKK, 8]
 * (zero rows past Og). Each output is a sum over t in order, one fused
 * multiply-add per tap (see block_f32), so every SIMD level gives the same
 * bits. (Unlike cpu_simd.h's plain-C kernels this file uses intrinsics:
 * C has no vector FMA, and a multiply and an add cost twice the FMA.) */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_conv.h"
#include "backends/cpu/cpu_simd.h"
#ifdef ASG_SIMD_X86
#include <immintrin.h> /* FMA: no plain-C spelling of a vector fused multiply-add */
#endif

#define OB 8 /* outputs per block */

bool asg_cpu_conv_direct_ok(const cgeo *g) {
  /* stride 1, and not a 1x1 conv (whose columns are x itself). Below 16
   * taps the padded copy and the row compaction cost more than they save
   * (a 1-channel 3x3 conv measured slower than im2col + GEMM). Up to
   * CONV_DIRECT_MAX_TAPS taps the kernel beats im2col + GEMM: 32->64
   * channels 3x3 on 14x14 ran at 95 GFLOP/s against 76 on one AVX-512 core
   * (AMD EPYC, FMA peak 116; the padded grid's dropped columns included);
   * the limit keeps the padded image in the caches. */
  return g->sh == 1 && g->sw == 1 && !g->direct && g->Cg <= 128 && g->CKK >= 9 &&
         g->CKK <= CONV_DIRECT_MAX_TAPS;
}

static int64_t blocks_of(const cgeo *g) { return (g->Og + OB - 1) / OB; }
static int64_t hp_of(const cgeo *g) { return g->OH + (g->KH - 1) * g->dh; }
static int64_t wp_of(const cgeo *g) { return g->OW + (g->KW - 1) * g->dw; }
/* Outputs of the padded grid, rounded up to whole vectors. */
static int64_t q_of(const cgeo *g) {
  return (g->OH * wp_of(g) + ASG_LANES - 1) / ASG_LANES * ASG_LANES;
}

/* Packed weights [G, Og/8, CKK, 8], then the output tables of the padded
 * grid's vectors (block_store_avx512): at [nv] (8-aligned), mask [nv]. */
int64_t asg_cpu_conv_direct_wpack(const cgeo *g) {
  return g->G * blocks_of(g) * g->CKK * OB + q_of(g) / 16 * 3 + 2;
}

static void tables_of(const cgeo *g, const float *wp, int64_t **at, uint16_t **mask) {
  const float *end = wp + g->G * blocks_of(g) * g->CKK * OB;
  *at = (int64_t *)(void *)(((uintptr_t)end + 7) & ~(uintptr_t)7);
  *mask = (uint16_t *)(void *)(*at + q_of(g) / 16);
}

/* Floats of xp, with room for the last vector's reads past the grid. */
int64_t asg_cpu_conv_direct_xp(const cgeo *g) {
  return g->Cg * hp_of(g) * wp_of(g) + q_of(g) + (g->KW - 1) * g->dw + ASG_LANES;
}

void asg_cpu_conv_direct_offsets(const cgeo *g, int64_t *off) {
  const int64_t Wp = wp_of(g), plane = hp_of(g) * Wp;
  for (int64_t c = 0, t = 0; c < g->Cg; c++)
    for (int64_t kh = 0; kh < g->KH; kh++)
      for (int64_t kw = 0; kw < g->KW; kw++)
        off[t++] = c * plane + kh * g->dh * Wp + kw * g->dw;
}

void asg_cpu_conv_direct_pad(const cgeo *g, const float *xg, float *xp) {
  const int64_t Hp = hp_of(g), Wp = wp_of(g), plane = Hp * Wp;
  memset(xp, 0, sizeof(float) * (size_t)asg_cpu_conv_direct_xp(g));
  for (int64_t c = 0; c < g->Cg; c++)
    for (int64_t h = 0; h < g->H && h + g->ph < Hp; h++) {
      int64_t wn = g->W + g->pw < Wp ? g->W : Wp - g->pw;
      memcpy(xp + c * plane + (h + g->ph) * Wp + g->pw, xg + (c * g->H + h) * g->W,
             sizeof(float) * (size_t)wn);
    }
}

/* xp, then (below AVX-512, where the block goes through it) out [OB, Q] */
int64_t asg_cpu_conv_direct_ws(const cgeo *g) {
#ifdef ASG_SIMD_X86
  if (asg_cpu_simd_level() == ASG_SIMD_AVX512) return asg_cpu_conv_direct_xp(g);
#endif
  return asg_cpu_conv_direct_xp(g) + OB * q_of(g);
}

/* With flip, g is the transposed geometry of a conv's input gradient
 * (asg_cpu_conv_direct_pack): tap t = (c, kh, kw) of output o is the
 * conv's weight w [G*Cg', Og', KH, KW] at (o of group gi, c, KH-1-kh,
 * KW-1-kw), Cg' = g->Og and Og' = g->Cg. */
static int64_t flip_at(const cgeo *g, int64_t gi, int64_t o, int64_t t) {
  const int64_t KK = g->KH * g->KW, c = t / KK, kh = t % KK / g->KW, kw = t % g->KW;
  return ((gi * g->Cg + c) * g->Og + o) * KK + (g->KH - 1 - kh) * g->KW + (g->KW - 1 - kw);
}

void asg_cpu_conv_direct_pack(const cgeo *g, const float *w, bool flip, float *wp) {
  int64_t nb = blocks_of(g), *at;
  uint16_t *mask;
  /* per vector v of the padded grid: the lanes that are outputs (columns
   * < OW of rows < OH) and the y position of the first (the column walks
   * along: no division) */
  tables_of(g, wp, &at, &mask);
  const int64_t Wp = wp_of(g);
  for (int64_t v = 0, yi = 0, p = 0, col = 0; v < q_of(g) / 16; v++) {
    unsigned m = 0;
    for (int l = 0; l < 16; l++, p++) {
      m |= (unsigned)(p < g->OH * Wp && col < g->OW) << l;
      col = col + 1 == Wp ? 0 : col + 1;
    }
    mask[v] = (uint16_t)m, at[v] = yi;
    yi += __builtin_popcount(m);
  }
  for (int64_t gi = 0; gi < g->G; gi++)
    for (int64_t b = 0; b < nb; b++)
      for (int64_t t = 0; t < g->CKK; t++)
        for (int64_t j = 0; j < OB; j++) {
          int64_t o = b * OB + j;
          wp[((gi * nb + b) * g->CKK + t) * OB + j] =
              o >= g->Og ? 0.0f : w[flip ? flip_at(g, gi, o, t) : (gi * g->Og + o) * g->CKK + t];
        }
}

/* out [OB, Q] = w [CKK, OB]^T gathered xp, Q a multiple of ASG_LANES.
 * Each tap is one fused multiply-add per output (rounded once), in tap
 * order: FMA instructions at the AVX2 and AVX-512 levels, fmaf (correctly
 * rounded, slower) at the base level, so every level gives the same bits. */
static void block_f32(const float *xp, const int64_t *off, int64_t CKK, const float *w, float *out,
                      int64_t Q) {
  for (int64_t q = 0; q < Q; q += ASG_LANES) {
    float acc[OB][ASG_LANES] = {{0}};
    for (int64_t t = 0; t < CKK; t++)
      for (int j = 0; j < OB; j++)
        for (int l = 0; l < ASG_LANES; l++)
          acc[j][l] = fmaf(w[t * OB + j], xp[off[t] + q + l], acc[j][l]);
    for (int j = 0; j < OB; j++)
      memcpy(out + j * Q + q, acc[j], sizeof acc[j]);
  }
}
#ifdef ASG_SIMD_X86
/* The AVX-512 block with its output stored in place: per vector v of the
 * padded grid, mask[v] marks the lanes that are outputs (columns < OW of
 * rows < OH) and at[v] is the y position of the first; the valid lanes
 * are compressed into consecutive positions of each output plane y0 + j *
 * OHW after the epilogue (bias [no] or NULL; act 1: ReLU, max(v, 0) being
 * v > 0 ? v : 0, NaN and -0 included). The sums are block_f32's. */
ASG_TARGET_AVX512 static void block_store_avx512(const float *xp, const int64_t *off, int64_t CKK,
                                                 const float *w, int64_t nv, const uint16_t *mask,
                                                 const int64_t *at, float *y0, int64_t OHW, int no,
                                                 const float *bias, int act) {
  /* two vectors at a time (named sums: GCC keeps an array of vectors in
   * memory): 2 loads and 8 broadcasts per 16 multiply-adds */
  for (int64_t v = 0; v < nv; v += 2) {
    const bool two = v + 1 < nv && mask[v + 1];
    if (!mask[v] && !two) continue;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m512 b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
    const float *x0 = xp + v * 16;
    const int64_t sb = v + 1 < nv ? 16 : 0; /* a last odd vector: b repeats a (not stored) */
    for (int64_t t = 0; t < CKK; t++) {
      const __m512 xa = _mm512_loadu_ps(x0 + off[t]), xb = _mm512_loadu_ps(x0 + off[t] + sb);
      const float *wt = w + t * OB;
#define FMA2(j)                                                                                    \
  {                                                                                                \
    const __m512 wj = _mm512_set1_ps(wt[j]);                                                       \
    a##j = _mm512_fmadd_ps(wj, xa, a##j), b##j = _mm512_fmadd_ps(wj, xb, b##j);                    \
  }
      FMA2(0) FMA2(1) FMA2(2) FMA2(3) FMA2(4) FMA2(5) FMA2(6) FMA2(7)
#undef FMA2
    }
    const __m512 acc[2][OB] = {{a0, a1, a2, a3, a4, a5, a6, a7}, {b0, b1, b2, b3, b4, b5, b6, b7}};
    for (int i = 0; i < 2 && v + i < nv; i++) {
      const uint16_t m = mask[v + i];
      if (!m) continue;
      const __mmask16 keep = (__mmask16)((1u << __builtin_popcount(m)) - 1);
      for (int j = 0; j < no; j++) {
        __m512 r = acc[i][j];
        if (bias) r = _mm512_add_ps(r, _mm512_set1_ps(bias[j]));
        if (act) r = _mm512_max_ps(r, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y0 + j * OHW + at[v + i], keep, _mm512_maskz_compress_ps(m, r));
      }
    }
  }
}
/* The same, 16 positions (two registers) x 4 outputs at a time: 16
 * registers would not hold 16 x 8 sums, and one register x 8 outputs is
 * bound by the loads. */
__attribute__((target("avx2,fma"))) static void block_f32_avx2(const float *xp, const int64_t *off,
                                                               int64_t CKK, const float *w,
                                                               float *out, int64_t Q) {
  for (int64_t q = 0; q < Q; q += 16)
    for (int j0 = 0; j0 < OB; j0 += 4) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0,
             b3 = a0;
      for (int64_t t = 0; t < CKK; t++) {
        const float *x = xp + off[t] + q, *wt = w + t * OB + j0;
        const __m256 xa = _mm256_loadu_ps(x), xb = _mm256_loadu_ps(x + 8);
        const __m256 w0 = _mm256_set1_ps(wt[0]), w1 = _mm256_set1_ps(wt[1]),
                     w2 = _mm256_set1_ps(wt[2]), w3 = _mm256_set1_ps(wt[3]);
        a0 = _mm256_fmadd_ps(w0, xa, a0), b0 = _mm256_fmadd_ps(w0, xb, b0);
        a1 = _mm256_fmadd_ps(w1, xa, a1), b1 = _mm256_fmadd_ps(w1, xb, b1);
        a2 = _mm256_fmadd_ps(w2, xa, a2), b2 = _mm256_fmadd_ps(w2, xb, b2);
        a3 = _mm256_fmadd_ps(w3, xa, a3), b3 = _mm256_fmadd_ps(w3, xb, b3);
      }
      float *o = out + j0 * Q + q;
      _mm256_storeu_ps(o, a0), _mm256_storeu_ps(o + 8, b0);
      _mm256_storeu_ps(o + Q, a1), _mm256_storeu_ps(o + Q + 8, b1);
      _mm256_storeu_ps(o + 2 * Q, a2), _mm256_storeu_ps(o + 2 * Q + 8, b2);
      _mm256_storeu_ps(o + 3 * Q, a3), _mm256_storeu_ps(o + 3 * Q + 8, b3);
    }
}
#endif
static void block_f32_any(const float *xp, const int64_t *off, int64_t CKK, const float *w,
                          float *out, int64_t Q) {
#ifdef ASG_SIMD_X86
  static _Atomic int has_fma = -1; /* every AVX2 CPU we know has FMA3; checked all the same */
  if (has_fma < 0) has_fma = __builtin_cpu_supports("fma") != 0;
  /* (AVX-512 runs block_store_avx512 instead) */
  if (asg_cpu_simd_level() == ASG_SIMD_AVX2 && has_fma) {
    block_f32_avx2(xp, off, CKK, w, out, Q);
    return;
  }
#endif
  block_f32(xp, off, CKK, w, out, Q);
}

void asg_cpu_conv_direct_image(const cgeo *g, const float *x, const float *wp, float *y, int64_t n,
                               float *ws, const float *bias, int act) {
  const int64_t Wp = wp_of(g), Q = q_of(g), nb = blocks_of(g);
  float *xp = ws, *out = ws + asg_cpu_conv_direct_xp(g);
  int64_t off[CONV_DIRECT_MAX_TAPS];
  asg_cpu_conv_direct_offsets(g, off);
  for (int64_t gi = 0; gi < g->G; gi++) {
    /* xp [Cg, Hp, Wp]: x's group channels at (ph, pw), zeros around */
    const float *xg = x + (n * g->C + gi * g->Cg) * g->HW;
    asg_cpu_conv_direct_pad(g, xg, xp);
#ifdef ASG_SIMD_X86
    if (asg_cpu_simd_level() == ASG_SIMD_AVX512) { /* no out buffer: straight into y */
      const int64_t nv = Q / 16;
      int64_t *at;
      uint16_t *mask;
      tables_of(g, wp, &at, &mask);
      for (int64_t b = 0; b < nb; b++) {
        const int64_t o0 = b * OB, no = g->Og - o0 < OB ? g->Og - o0 : OB, o = gi * g->Og + o0;
        block_store_avx512(xp, off, g->CKK, wp + (gi * nb + b) * g->CKK * OB, nv, mask, at,
                           y + (n * g->O + o) * g->OHW, g->OHW, (int)no, bias ? bias + o : NULL,
                           act);
      }
      continue;
    }
#endif
    for (int64_t b = 0; b < nb; b++) {
      block_f32_any(xp, off, g->CKK, wp + (gi * nb + b) * g->CKK * OB, out, Q);
      int64_t o0 = b * OB, no = g->Og - o0 < OB ? g->Og - o0 : OB;
      for (int64_t j = 0; j < no; j++) {
        const int64_t o = gi * g->Og + o0 + j;
        float *yr = y + (n * g->O + o) * g->OHW;
        const float *src = out + j * Q;
        const float bo = bias ? bias[o] : 0.0f;
        for (int64_t oh = 0; oh < g->OH; oh++) { /* simple loops: the compiler vectorizes them */
          const float *s = src + oh * Wp;
          float *d = yr + oh * g->OW;
          if (!bias) {
            memcpy(d, s, sizeof(float) * (size_t)g->OW);
          } else if (act) { /* conv2d_bias_act: as its add and relu steps */
            for (int64_t ow = 0; ow < g->OW; ow++) {
              float v = s[ow] + bo;
              d[ow] = v > 0 ? v : 0.0f;
            }
          } else {
            for (int64_t ow = 0; ow < g->OW; ow++)
              d[ow] = s[ow] + bo;
          }
        }
      }
    }
  }
}
