/* CPU kernels of pooling: max, average and adaptive average pooling over
 * [N,C,H,W] and their gradients, with PyTorch's options (dilation, ceil
 * mode, count_include_pad). Every (n, c) plane is independent, so planes
 * run in parallel and each gradient plane is written by one thread.
 * Attribute layout: src/ops/op_conv.c. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"
#ifdef ASG_SIMD_X86
#include <immintrin.h>
#endif

typedef struct pgeo {
  int64_t planes, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  bool exclude_pad; /* avg: divide by the input cells of the window */
} pgeo;

/* x [N,C,H,W] -> y [N,C,OH,OW]; for the BWD ops x is the output. */
static void pgeo_of(const asg_step *s, pgeo *p) {
  bool bwd = s->op == ASG_OP_MAXPOOL2D_BWD || s->op == ASG_OP_AVGPOOL2D_BWD ||
             s->op == ASG_OP_ADAPTIVE_AVGPOOL2D_BWD;
  const asg_shape *xs = bwd ? &s->out.shape : &s->in[0].shape;
  const asg_shape *ys = bwd ? &s->in[0].shape : &s->out.shape;
  p->planes = xs->dims[0] * xs->dims[1];
  p->H = xs->dims[2], p->W = xs->dims[3], p->OH = ys->dims[2], p->OW = ys->dims[3];
  p->KH = s->attr.i[0], p->KW = s->attr.i[1], p->sh = s->attr.i[2], p->sw = s->attr.i[3];
  p->ph = s->attr.i[4], p->pw = s->attr.i[5];
  p->dh = s->attr.i[6] > 1 ? s->attr.i[6] : 1, p->dw = s->attr.i[7] > 1 ? s->attr.i[7] : 1;
  p->exclude_pad = s->attr.i[9] != 0;
}

/* Taps k in [*lo, *hi) of a window starting at o0 with K taps every d
 * that fall inside [0, n). */
static inline void pool_taps(int64_t o0, int64_t K, int64_t d, int64_t n, int64_t *lo,
                             int64_t *hi) {
  *lo = o0 < 0 ? (-o0 + d - 1) / d : 0;
  *hi = n - o0 <= 0 ? 0 : (n - o0 + d - 1) / d;
  if (*hi > K) *hi = K;
}

/* Divisor of average pooling's window (oh, ow), as PyTorch: the window
 * clipped to the padded input (a ceil-mode window may overhang it), or
 * with exclude_pad only its input cells. */
static inline int64_t avg_divisor(const pgeo *p, int64_t oh, int64_t ow) {
  int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;
  int64_t h1 = h0 + p->KH, w1 = w0 + p->KW;
  if (p->exclude_pad) {
    h1 = h1 < p->H ? h1 : p->H, w1 = w1 < p->W ? w1 : p->W;
    h0 = h0 > 0 ? h0 : 0, w0 = w0 > 0 ? w0 : 0;
  } else {
    h1 = h1 < p->H + p->ph ? h1 : p->H + p->ph, w1 = w1 < p->W + p->pw ? w1 : p->W + p->pw;
  }
  return (h1 - h0) * (w1 - w0);
}

/* argmax, maxpool(_bwd), avgpool(_bwd), adaptive(_bwd) per type */
#define T float
#define SUF f32
#include "backends/cpu/cpu_pooling_tmpl.h"
#define T double
#define SUF f64
#include "backends/cpu/cpu_pooling_tmpl.h"

/* ---- 2x2 max pooling with stride 2 and no padding (every window inside
 * the plane, none overlapping): the CNNs' pool, with straight loops over a
 * pair of input rows (and intrinsics for the forward at AVX-512: the
 * compiler's own vectors for strided pairs were slower than scalar code). Same rule as argmax_f32:
 * the first maximum in row-major window order, a NaN (the first) wins. */
static bool pool_is_2x2(const pgeo *p) {
  return p->KH == 2 && p->KW == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 &&
         p->dh == 1 && p->dw == 1 && 2 * p->OH <= p->H && 2 * p->OW <= p->W;
}

/* The first maximum of (a, b) (a on ties), NaN-first: applied as a tree
 * over ((x00, x01), (x10, x11)) it picks the window element argmax_f32 picks. */
static inline float first_max(float a, float b) { return b > a || (b != b && a == a) ? b : a; }

/* planes [lo, hi) of x [N*C,H,W] -> y [N*C,OH,OW] */
static void maxpool2x2_f32(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  const int64_t W = p->W, OW = p->OW;
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *x = (const float *)c->in[0] + pl * p->H * W;
    float *y = (float *)c->out + pl * p->OH * OW;
    for (int64_t oh = 0; oh < p->OH; oh++) {
      const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
      float *yr = y + oh * OW;
      for (int64_t ow = 0; ow < OW; ow++)
        yr[ow] =
            first_max(first_max(r0[2 * ow], r0[2 * ow + 1]), first_max(r1[2 * ow], r1[2 * ow + 1]));
    }
  }
}

#ifdef ASG_SIMD_X86
/* first_max on 16 lanes: b where b > a or b is a NaN and a is not, else a */
ASG_TARGET_AVX512 static inline __m512 first_max16(__m512 a, __m512 b) {
  const __mmask16 nan_b = _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
  const __mmask16 nan_a = _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
  const __mmask16 take = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) | (nan_b & (__mmask16)~nan_a);
  return _mm512_mask_blend_ps(take, a, b);
}

/* The same pooling at AVX-512, 16 outputs at a time: each row pair's even
 * and odd columns split by two permutes, the tree applied per lane (the
 * same bits as the loop above). Rows shorter than 32 inputs load and
 * store under masks. */
ASG_TARGET_AVX512 static void maxpool2x2_f32_avx512(const asg_cpu_call *c, const pgeo *p,
                                                    int64_t lo, int64_t hi) {
  const int64_t W = p->W, OW = p->OW;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *x = (const float *)c->in[0] + pl * p->H * W;
    float *y = (float *)c->out + pl * p->OH * OW;
    for (int64_t oh = 0; oh < p->OH; oh++) {
      const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
      for (int64_t o = 0; o < OW; o += 16) {
        const int m = OW - o < 16 ? (int)(OW - o) : 16; /* outputs: 2m inputs a row */
        const __mmask16 k0 = (__mmask16)(2 * m >= 16 ? 0xffff : (1u << (2 * m)) - 1);
        const __mmask16 k1 = (__mmask16)(2 * m <= 16 ? 0 : (1u << (2 * m - 16)) - 1);
        const __m512 a0 = _mm512_maskz_loadu_ps(k0, r0 + 2 * o);
        const __m512 a1 = _mm512_maskz_loadu_ps(k1, r0 + 2 * o + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(k0, r1 + 2 * o);
        const __m512 b1 = _mm512_maskz_loadu_ps(k1, r1 + 2 * o + 16);
        const __m512 top =
            first_max16(_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1));
        const __m512 bot =
            first_max16(_mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1));
        _mm512_mask_storeu_ps(y + oh * OW + o, (__mmask16)((1u << m) - 1), first_max16(top, bot));
      }
    }
  }
}
#endif

/* planes [lo, hi) of dy [N*C,OH,OW], x [N*C,H,W] -> dx [N*C,H,W]: each
 * window's gradient to its first maximum, zeros elsewhere */
static void maxpool2x2_bwd_f32(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  const int64_t W = p->W, OW = p->OW;
  const bool covered = 2 * p->OH == p->H && 2 * p->OW == W;
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *x = (const float *)c->in[1] + pl * p->H * W;
    const float *dy = (const float *)c->in[0] + pl * p->OH * OW;
    float *dx = (float *)c->out + pl * p->H * W;
    if (!covered) /* the odd last row or column, which no window reads */
      memset(dx, 0, sizeof(float) * (size_t)(p->H * W));
    for (int64_t oh = 0; oh < p->OH; oh++) {
      const float *r0 = x + 2 * oh * W, *r1 = r0 + W, *g = dy + oh * OW;
      float *d0 = dx + 2 * oh * W, *d1 = d0 + W;
      for (int64_t ow = 0; ow < OW; ow++) {
        float a = r0[2 * ow], b = r0[2 * ow + 1], e = r1[2 * ow], f = r1[2 * ow + 1];
        /* k: window position (0..3) of the first maximum, as argmax_f32 */
        float m = a;
        int k = 0;
        k = b > m || (b != b && m == m) ? 1 : k;
        m = k == 1 ? b : m;
        k = e > m || (e != e && m == m) ? 2 : k;
        m = k == 2 ? e : m;
        k = f > m || (f != f && m == m) ? 3 : k;
        float gv = g[ow];
        d0[2 * ow] = k == 0 ? gv : 0.0f;
        d0[2 * ow + 1] = k == 1 ? gv : 0.0f;
        d1[2 * ow] = k == 2 ? gv : 0.0f;
        d1[2 * ow + 1] = k == 3 ? gv : 0.0f;
      }
    }
  }
}

#ifdef ASG_SIMD_X86
/* The same backward at AVX-512, 16 windows at a time: the window position
 * of each first maximum as four lane masks (the scalar loop's sequence of
 * comparisons, per lane), dy placed under them and interleaved back into
 * the two input rows (the same bits as the loop above). */
ASG_TARGET_AVX512 static inline __mmask16 takes16(__m512 m, __m512 b) {
  const __mmask16 nan_b = _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
  const __mmask16 nan_m = _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
  return _mm512_cmp_ps_mask(b, m, _CMP_GT_OQ) | (nan_b & (__mmask16)~nan_m);
}

ASG_TARGET_AVX512 static void maxpool2x2_bwd_f32_avx512(const asg_cpu_call *c, const pgeo *p,
                                                        int64_t lo, int64_t hi) {
  const int64_t W = p->W, OW = p->OW;
  const bool covered = 2 * p->OH == p->H && 2 * p->OW == W;
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  /* interleave (e0 o0 e1 o1 ...): the first 16 from lanes 0-7, the next from 8-15 */
  const __m512i ilo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i ihi = _mm512_add_epi32(ilo, _mm512_set1_epi32(8));
  for (int64_t pl = lo; pl < hi; pl++) {
    const float *x = (const float *)c->in[1] + pl * p->H * W;
    const float *dy = (const float *)c->in[0] + pl * p->OH * OW;
    float *dx = (float *)c->out + pl * p->H * W;
    if (!covered) memset(dx, 0, sizeof(float) * (size_t)(p->H * W));
    for (int64_t oh = 0; oh < p->OH; oh++) {
      const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
      float *d0 = dx + 2 * oh * W, *d1 = d0 + W;
      for (int64_t o = 0; o < OW; o += 16) {
        const int m = OW - o < 16 ? (int)(OW - o) : 16;
        const __mmask16 k0 = (__mmask16)(2 * m >= 16 ? 0xffff : (1u << (2 * m)) - 1);
        const __mmask16 k1 = (__mmask16)(2 * m <= 16 ? 0 : (1u << (2 * m - 16)) - 1);
        const __m512 a0 = _mm512_maskz_loadu_ps(k0, r0 + 2 * o);
        const __m512 a1 = _mm512_maskz_loadu_ps(k1, r0 + 2 * o + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(k0, r1 + 2 * o);
        const __m512 b1 = _mm512_maskz_loadu_ps(k1, r1 + 2 * o + 16);
        const __m512 te = _mm512_permutex2var_ps(a0, even, a1);
        const __m512 to = _mm512_permutex2var_ps(a0, odd, a1);
        const __m512 be = _mm512_permutex2var_ps(b0, even, b1);
        const __m512 bo = _mm512_permutex2var_ps(b0, odd, b1);
        const __mmask16 t1 = takes16(te, to);
        const __m512 m1 = _mm512_mask_blend_ps(t1, te, to);
        const __mmask16 t2 = takes16(m1, be);
        const __m512 m2 = _mm512_mask_blend_ps(t2, m1, be);
        const __mmask16 t3 = takes16(m2, bo);
        const __m512 g = _mm512_maskz_loadu_ps((__mmask16)((1u << m) - 1), dy + oh * OW + o);
        const __m512 gte = _mm512_maskz_mov_ps((__mmask16) ~(t1 | t2 | t3), g);
        const __m512 gto = _mm512_maskz_mov_ps(t1 & (__mmask16) ~(t2 | t3), g);
        const __m512 gbe = _mm512_maskz_mov_ps(t2 & (__mmask16)~t3, g);
        const __m512 gbo = _mm512_maskz_mov_ps(t3, g);
        _mm512_mask_storeu_ps(d0 + 2 * o, k0, _mm512_permutex2var_ps(gte, ilo, gto));
        _mm512_mask_storeu_ps(d0 + 2 * o + 16, k1, _mm512_permutex2var_ps(gte, ihi, gto));
        _mm512_mask_storeu_ps(d1 + 2 * o, k0, _mm512_permutex2var_ps(gbe, ilo, gbo));
        _mm512_mask_storeu_ps(d1 + 2 * o + 16, k1, _mm512_permutex2var_ps(gbe, ihi, gbo));
      }
    }
  }
}
#endif

typedef struct pool_job {
  const asg_cpu_call *c;
  pgeo p;
  bool fast2x2; /* max pooling (either direction) on 2x2 windows, stride 2 */
} pool_job;

/* Planes [lo, hi) of the step. */
static void pool_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const pool_job *j = ctx;
  const asg_cpu_call *c = j->c;
  const pgeo *p = &j->p;
  bool f32 = c->s->out.dtype == ASG_F32;
  if (f32 && j->fast2x2) {
    const bool fwd = c->s->op == ASG_OP_MAXPOOL2D;
#ifdef ASG_SIMD_X86
    if (asg_cpu_simd_level() == ASG_SIMD_AVX512) {
      fwd ? maxpool2x2_f32_avx512(c, p, lo, hi) : maxpool2x2_bwd_f32_avx512(c, p, lo, hi);
      return;
    }
#endif
    fwd ? maxpool2x2_f32(c, p, lo, hi) : maxpool2x2_bwd_f32(c, p, lo, hi);
    return;
  }
  switch (c->s->op) {
  case ASG_OP_MAXPOOL2D: f32 ? maxpool_f32(c, p, lo, hi) : maxpool_f64(c, p, lo, hi); break;
  case ASG_OP_MAXPOOL2D_BWD:
    f32 ? maxpool_bwd_f32(c, p, lo, hi) : maxpool_bwd_f64(c, p, lo, hi);
    break;
  case ASG_OP_AVGPOOL2D: f32 ? avgpool_f32(c, p, lo, hi) : avgpool_f64(c, p, lo, hi); break;
  case ASG_OP_AVGPOOL2D_BWD:
    f32 ? avgpool_bwd_f32(c, p, lo, hi) : avgpool_bwd_f64(c, p, lo, hi);
    break;
  case ASG_OP_ADAPTIVE_AVGPOOL2D:
    f32 ? adaptive_f32(c, p, lo, hi) : adaptive_f64(c, p, lo, hi);
    break;
  default: f32 ? adaptive_bwd_f32(c, p, lo, hi) : adaptive_bwd_f64(c, p, lo, hi); break;
  }
}

static asg_status pool_kernel(const asg_cpu_call *c) {
  pool_job j = {.c = c};
  pgeo_of(c->s, &j.p);
  if (c->s->out.dtype != ASG_F32 && c->s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", c->s->label);
  j.fast2x2 =
      (c->s->op == ASG_OP_MAXPOOL2D || c->s->op == ASG_OP_MAXPOOL2D_BWD) && pool_is_2x2(&j.p);
  int nt = asg_cpu_threads_for(c, j.p.planes * j.p.H * j.p.W, j.p.planes);
  asg_cpu_parallel_for(c->pool, nt, j.p.planes, pool_range, &j);
  return ASG_OK;
}

void asg_cpu_register_pooling(asg_cpu_kernel *t) {
  static const asg_op pools[] = {ASG_OP_MAXPOOL2D,          ASG_OP_MAXPOOL2D_BWD,
                                 ASG_OP_AVGPOOL2D,          ASG_OP_AVGPOOL2D_BWD,
                                 ASG_OP_ADAPTIVE_AVGPOOL2D, ASG_OP_ADAPTIVE_AVGPOOL2D_BWD};
  for (size_t i = 0; i < sizeof pools / sizeof *pools; i++)
    t[pools[i]].run = pool_kernel;
}
