/* f32 kernels of the fused attention ops (contract: src/ops/op_attention.c),
 * the reference the GPU backends are compared with.
 *
 * A unit is ASG_ATT_BLK query rows of one head (keys for bwd_kv). Its
 * products run in tiles of RT rows by 16 or 32 columns whose sums stay in
 * registers (mm_tile): C = A B with A's elements broadcast and B's rows in
 * lanes, so no sum goes across lanes. For scores, B is k or v transposed
 * into the workspace; for the products with P or dS it is v, k, do or q as
 * stored (copied with zero padding when D is not a multiple of 16). The row
 * work (max, exp, sum, scale; dS) runs in ASG_LANES lanes with
 * asg_expf_fast. Every sum has a fixed order (products: over k ascending;
 * row sums: per lane, then a fixed tree), the same at every SIMD level
 * (cpu_simd.h) and for any thread count. Causal: a tile of query rows
 * computes the keys its last row sees, not the unit's.
 * Masked, causally hidden and padding keys get p = 0 by a select, never by
 * a product; a query that sees no key gets o = 0 and lse = -inf. A thread's
 * workspace is O(T (D + BLK)) floats, never [Tq, Tk]. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_attention.h"
#include "backends/cpu/cpu_simd.h"
#include "backends/cpu/cpu_transpose.h"

enum { L = ASG_LANES, RT = 4 /* rows of a register tile */ };

static inline int64_t up(int64_t n) { return (n + L - 1) / L * L; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* C = A B for one tile: C[r, 0 .. NV W) = sum over k < K, in order, of A[r sr + k sk]
 * B[k ldb + 0 .. NV W), for rows r < R <= RT, NV vectors of W floats (the level's register):
 * R x NV vector sums, one multiply and one add a term, so the same bits at every width. The sums
 * are GNU C vector values: as arrays of lanes gcc kept them in memory, a store and a load per
 * term (3x slower), and wider vectors than the level's registers were split through memory. */
#if defined(__GNUC__)
#define MM_W 4
#include "backends/cpu/cpu_attention_mm.h"
#define MM_W 8
#include "backends/cpu/cpu_attention_mm.h"
#define MM_W 16
#include "backends/cpu/cpu_attention_mm.h"
#endif

/* Rows [0, R) of C[:, 0 .. N) = A B over K, N a multiple of L, in vectors of W floats: tiles of
 * 2 vectors (AVX-512), 2 (AVX2) or 4 (SSE2), 16 columns at least. */
ASG_ALWAYS_INLINE void mm_cols(int W, int R, const float *A, int64_t sr, int64_t sk, const float *B,
                               int64_t ldb, int64_t K, int64_t N, float *C, int64_t ldc) {
#if defined(__GNUC__)
  const int nv = W == 16 ? 2 : L / W; /* vectors of a full tile (AVX-512: 32 columns) */
  int64_t n = 0;
  for (; n < N; n += nv * W) {
    if (W == 16 && N - n < nv * W) { /* 16 columns left */
      mm_tile_16(R, 1, A, sr, sk, B + n, ldb, K, C + n, ldc);
      break;
    }
    if (W == 16)
      mm_tile_16(R, nv, A, sr, sk, B + n, ldb, K, C + n, ldc);
    else if (W == 8)
      mm_tile_8(R, nv, A, sr, sk, B + n, ldb, K, C + n, ldc);
    else
      mm_tile_4(R, nv, A, sr, sk, B + n, ldb, K, C + n, ldc);
  }
#else
  (void)W;
  for (int r = 0; r < R; r++)
    for (int64_t n = 0; n < N; n++) {
      float acc = 0;
      for (int64_t k = 0; k < K; k++)
        acc += A[r * sr + k * sk] * B[k * ldb + n];
      C[r * ldc + n] = acc;
    }
#endif
}

/* Rows [0, nr) of C = A B: tiles of RT rows, then single rows. */
ASG_ALWAYS_INLINE void mm(int W, int64_t nr, const float *A, int64_t sr, int64_t sk, const float *B,
                          int64_t ldb, int64_t K, int64_t N, float *C, int64_t ldc) {
  int64_t r = 0;
  for (; r + RT <= nr; r += RT)
    mm_cols(W, RT, A + r * sr, sr, sk, B, ldb, K, N, C + r * ldc, ldc);
  for (; r < nr; r++)
    mm_cols(W, 1, A + r * sr, sr, sk, B, ldb, K, N, C + r * ldc, ldc);
}

/* Rows x [n, D] with a row length that mm can read in whole vectors: x itself when D is a multiple
 * of L, else a copy [n, up(D)] with zeros after D (into buf). *ld: its row length. */
static const float *rows_padded(const float *x, int64_t n, int64_t D, float *buf, int64_t *ld) {
  *ld = up(D);
  if (*ld == D) return x;
  for (int64_t j = 0; j < n; j++) {
    memcpy(buf + j * *ld, x + j * D, sizeof(float) * (size_t)D);
    memset(buf + j * *ld + D, 0, sizeof(float) * (size_t)(*ld - D));
  }
  return buf;
}

/* ok[j] = 1 where key j < n is visible under the mask row mr (NULL: all), else 0, for j < ldk. */
static void keys_visible(const float *mr, int64_t n, float *ok, int64_t ldk) {
  for (int64_t j = 0; j < n; j++)
    ok[j] = !mr || mr[j] != 0 ? 1.0f : 0.0f;
  for (int64_t j = n; j < ldk; j++)
    ok[j] = 0;
}

/* dst [nr, D] = s (A B) (mm over K, B's rows up(D) long): straight into dst when D is a multiple
 * of L, else through ob [nr, up(D)]. */
ASG_ALWAYS_INLINE void mm_store(int W, int64_t nr, const float *A, int64_t sr, int64_t sk,
                                const float *B, int64_t ldb, int64_t K, int64_t D, float s,
                                float *dst, float *ob) {
  const int64_t Dp = up(D);
  float *c = Dp == D ? dst : ob;
  mm(W, nr, A, sr, sk, B, ldb, K, Dp, c, Dp);
  for (int64_t r = 0; r < nr; r++)
    for (int64_t d = 0; d < D; d++)
      dst[r * D + d] = s == 1 ? c[r * Dp + d] : s * c[r * Dp + d];
}

/* The maximum (NaN wins) and the sum of the L lanes of a, as fixed trees (halves combined lane
 * by lane). Overwrite a. */
ASG_ALWAYS_INLINE float lanes_max(float *a) {
  for (int h = L / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; l++)
      a[l] = asg_max_nan_f32(a[l], a[l + h]);
  return a[0];
}
ASG_ALWAYS_INLINE float lanes_sum(float *a) {
  for (int h = L / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; l++)
      a[l] += a[l + h];
  return a[0];
}

/* One score row s [w] (w a multiple of L; keys j < nk with ok[j] != 0 visible) to
 * p = exp(s sc - m) / l (p = 0 where hidden; not when lse_only); returns its
 * log-sum-exp m + log(l), m the visible maximum (NaN wins) and l the sum of the exps. */
ASG_ALWAYS_INLINE float softmax_row(float *s, const float *ok, int64_t w, int32_t nk, float sc,
                                    bool lse_only) {
  float mx[L], acc[L];
  for (int l = 0; l < L; l++)
    mx[l] = -INFINITY, acc[l] = 0;
  for (int64_t j = 0; j < w; j += L)
    for (int l = 0; l < L; l++) {
      float x = s[j + l] * sc;
      bool vis = ((int32_t)j + l < nk) & (ok[j + l] != 0);
      bool take = vis & ((x > mx[l]) | (x != x)); /* max_nan, vectorized */
      s[j + l] = x;
      mx[l] = take ? x : mx[l];
    }
  const float m = lanes_max(mx);
  for (int64_t j = 0; j < w; j += L)
    for (int l = 0; l < L; l++) {
      bool vis = ((int32_t)j + l < nk) & (ok[j + l] != 0);
      float e = asg_expf_fast(s[j + l] - m);
      e = vis ? e : 0.0f;
      s[j + l] = e;
      acc[l] += e;
    }
  const float sum = lanes_sum(acc);
  if (lse_only) return m + logf(sum);
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < w; j++)
    s[j] *= inv;
  return m + logf(sum);
}

/* ATTENTION (o, and its lse as its further output when it has one) and
 * ATTENTION_LSE (lse) of units [lo, hi): per tile of RT query rows,
 * S = scale q k^T over the keys its last row sees, softmax rows, o = P v.
 * ws: kt [D, ldk] | ok [ldk] | S [RT, ldk] | v padded [Tk, Dp] | ob [RT, Dp]. */
ASG_ALWAYS_INLINE void fwd_units(int W, const asg_cpu_call *c, const att_dims *a, int64_t lo,
                                 int64_t hi, float *ws) {
  const bool lse_only = c->s->op == ASG_OP_ATTENTION_LSE;
  const float *q = c->in[0], *k = c->in[1], *v = lse_only ? NULL : c->in[2];
  float *out = c->out;
  /* an ATTENTION step's further output is its lse (src/passes/fuse_stats.c) */
  float *lse = lse_only ? out : c->s->n_aux ? (float *)c->aux[0] : NULL; /* [.., Tq] */
  const float sc = (float)c->s->attr.f[0];
  const int64_t Tq = a->Tq, Tk = a->Tk, D = a->D, nbq = (Tq + ASG_ATT_BLK - 1) / ASG_ATT_BLK;
  const int64_t Dp = up(D), Tkp = up(Tk);
  float *kt = ws, *ok = kt + D * Tkp, *S = ok + Tkp, *vbuf = S + RT * Tkp, *ob = vbuf + Tk * Dp;
  for (int64_t u = lo; u < hi; u++) {
    const int64_t b = u / nbq, i0 = (u % nbq) * ASG_ATT_BLK;
    const int64_t nq = min64(Tq - i0, ASG_ATT_BLK);
    const float *mr = a->mask >= 0 ? (const float *)c->in[a->mask] + (b / a->G) * Tk : NULL;
    /* keys past the mask's last visible one are never read (a KV cache
     * filled up to its current length costs that length, not its size) */
    int64_t nkb = att_n_keys(a, i0 + nq - 1);
    while (mr && nkb > 0 && mr[nkb - 1] == 0)
      nkb--;
    if (nkb == 0) { /* no visible key in the unit: o = 0, lse = -inf */
      for (int64_t r = 0; r < nq; r++) {
        if (lse) lse[b * Tq + i0 + r] = -INFINITY;
        if (!lse_only) memset(out + (b * Tq + i0 + r) * D, 0, sizeof(float) * (size_t)D);
      }
      continue;
    }
    const int64_t ldk = up(nkb);
    asg_transpose_pad(k + b * Tk * D, nkb, D, kt, ldk, W == 16);
    keys_visible(mr, nkb, ok, ldk);
    int64_t first = 0; /* the first visible key */
    while (first < nkb && ok[first] == 0)
      first++;
    int64_t ldv = D;
    const float *vr = lse_only ? NULL : rows_padded(v + b * Tk * D, nkb, D, vbuf, &ldv);
    const float *qb = q + (b * Tq + i0) * D;
    for (int64_t t0 = 0; t0 < nq; t0 += RT) {
      const int64_t nr = min64(RT, nq - t0);
      const int64_t kn = min64(att_n_keys(a, i0 + t0 + nr - 1), nkb), w = up(kn);
      mm(W, nr, qb + t0 * D, D, 1, kt, ldk, D, w, S, ldk);
      for (int64_t r = 0; r < nr; r++) {
        const int64_t i = i0 + t0 + r, nk = min64(att_n_keys(a, i), nkb);
        float *row = S + r * ldk;
        if (first >= nk) { /* no visible key: o = 0, lse = -inf */
          memset(row, 0, sizeof(float) * (size_t)w);
          if (lse) lse[b * Tq + i] = -INFINITY;
          continue;
        }
        const float l = softmax_row(row, ok, w, (int32_t)nk, sc, lse_only);
        if (lse) lse[b * Tq + i] = l;
      }
      if (lse_only) continue;
      mm_store(W, nr, S, ldk, 1, vr, ldv, kn, D, 1, out + (b * Tq + i0 + t0) * D, ob);
    }
  }
}

/* ATTENTION_BWD_Q of units [lo, hi): per tile of RT query rows, P = exp(scale q k^T - lse),
 * dP = do v^T, dS = P (dP - delta), dq = scale dS k.
 * ws: kt, vt [D, ldk] | ok [ldk] | S, dP [RT, ldk] | k padded [Tk, Dp] | ob [RT, Dp]. */
ASG_ALWAYS_INLINE void bwd_q_units(int W, const asg_cpu_call *c, const att_dims *a, int64_t lo,
                                   int64_t hi, float *ws) {
  const float *q = c->in[0], *k = c->in[1], *v = c->in[2], *dO = c->in[3], *lse = c->in[4],
              *dl = c->in[5];
  float *dq = c->out;
  const float sc = (float)c->s->attr.f[0];
  const int64_t Tq = a->Tq, Tk = a->Tk, D = a->D, nbq = (Tq + ASG_ATT_BLK - 1) / ASG_ATT_BLK;
  const int64_t Dp = up(D), Tkp = up(Tk);
  float *kt = ws, *vt = kt + D * Tkp, *ok = vt + D * Tkp, *S = ok + Tkp, *dP = S + RT * Tkp;
  float *kbuf = dP + RT * Tkp, *ob = kbuf + Tk * Dp;
  for (int64_t u = lo; u < hi; u++) {
    const int64_t b = u / nbq, i0 = (u % nbq) * ASG_ATT_BLK;
    const int64_t nq = min64(Tq - i0, ASG_ATT_BLK), r0 = b * Tq + i0;
    const float *mr = a->mask >= 0 ? (const float *)c->in[a->mask] + (b / a->G) * Tk : NULL;
    int64_t nkb = att_n_keys(a, i0 + nq - 1);
    while (mr && nkb > 0 && mr[nkb - 1] == 0) /* hidden keys add nothing */
      nkb--;
    if (nkb == 0) {
      memset(dq + r0 * D, 0, sizeof(float) * (size_t)(nq * D));
      continue;
    }
    const int64_t ldk = up(nkb);
    asg_transpose_pad(k + b * Tk * D, nkb, D, kt, ldk, W == 16);
    asg_transpose_pad(v + b * Tk * D, nkb, D, vt, ldk, W == 16);
    keys_visible(mr, nkb, ok, ldk);
    int64_t ldkr = D;
    const float *kr = rows_padded(k + b * Tk * D, nkb, D, kbuf, &ldkr);
    for (int64_t t0 = 0; t0 < nq; t0 += RT) {
      const int64_t nr = min64(RT, nq - t0);
      const int64_t kn = min64(att_n_keys(a, i0 + t0 + nr - 1), nkb), w = up(kn);
      mm(W, nr, q + (r0 + t0) * D, D, 1, kt, ldk, D, w, S, ldk);
      mm(W, nr, dO + (r0 + t0) * D, D, 1, vt, ldk, D, w, dP, ldk);
      for (int64_t r = 0; r < nr; r++) {
        const int32_t nk = (int32_t)min64(att_n_keys(a, i0 + t0 + r), nkb);
        const float li = lse[r0 + t0 + r], di = dl[r0 + t0 + r];
        float *sr = S + r * ldk;
        const float *dpr = dP + r * ldk;
        for (int64_t j = 0; j < w; j += L)
          for (int l = 0; l < L; l++) {
            bool vis = ((int32_t)j + l < nk) & (ok[j + l] != 0);
            float ds = asg_expf_fast(sr[j + l] * sc - li) * (dpr[j + l] - di);
            sr[j + l] = vis ? ds : 0.0f;
          }
      }
      mm_store(W, nr, S, ldk, 1, kr, ldkr, kn, D, sc, dq + (r0 + t0) * D, ob);
    }
  }
}

/* ATTENTION_BWD_KV of units [lo, hi) (a unit: keys [j0, j0 + nk) of a head), over the queries
 * that see any of them (causal: i >= j0): per tile of RT queries, P = exp(scale q k^T - lse)
 * and dS = P (do v^T - delta) over the keys its last row sees; then per tile of RT keys,
 * dv = P^T do and dk = scale dS^T q over the queries that see them.
 * ws: kt, vt [D, ldk] | ok [ldk] | P, dS [Tq, ldk] | q, do padded [Tq, Dp] | ob [RT, Dp]. */
ASG_ALWAYS_INLINE void bwd_kv_units(int W, const asg_cpu_call *c, const att_dims *a, int64_t lo,
                                    int64_t hi, float *ws) {
  const float *q = c->in[0], *k = c->in[1], *v = c->in[2], *dO = c->in[3], *lse = c->in[4],
              *dl = c->in[5];
  const float sc = (float)c->s->attr.f[0];
  const int64_t Tq = a->Tq, Tk = a->Tk, D = a->D, nbk = (Tk + ASG_ATT_BLK - 1) / ASG_ATT_BLK;
  const int64_t Dp = up(D), B = ASG_ATT_BLK;
  float *dk = c->out, *dv = dk + a->NB * Tk * D; /* dkv [2, NB, Tk, D] */
  float *kt = ws, *vt = kt + D * B, *ok = vt + D * B, *P = ok + B, *dS = P + Tq * B;
  float *qbuf = dS + Tq * B, *dobuf = qbuf + Tq * Dp, *ob = dobuf + Tq * Dp;
  for (int64_t u = lo; u < hi; u++) {
    const int64_t b = u / nbk, j0 = (u % nbk) * B, nk = min64(Tk - j0, B);
    const int64_t ilo = a->causal ? j0 : 0, nqv = Tq - ilo, c0 = b * Tk + j0, r0 = b * Tq + ilo;
    if (nqv <= 0) { /* no query sees these keys */
      memset(dk + c0 * D, 0, sizeof(float) * (size_t)(nk * D));
      memset(dv + c0 * D, 0, sizeof(float) * (size_t)(nk * D));
      continue;
    }
    const float *mr = a->mask >= 0 ? (const float *)c->in[a->mask] + (b / a->G) * Tk + j0 : NULL;
    const int64_t ldk = up(nk);
    asg_transpose_pad(k + c0 * D, nk, D, kt, ldk, W == 16);
    asg_transpose_pad(v + c0 * D, nk, D, vt, ldk, W == 16);
    keys_visible(mr, nk, ok, ldk);
    /* query t (i = ilo + t) sees the unit's keys jj < kn(t); causal: jj <= t (ilo = j0) */
    for (int64_t t0 = 0; t0 < nqv; t0 += RT) {
      const int64_t nr = min64(RT, nqv - t0);
      const int64_t kn = a->causal ? min64(nk, t0 + nr) : nk, w = up(kn);
      mm(W, nr, q + (r0 + t0) * D, D, 1, kt, ldk, D, w, P + t0 * ldk, ldk);
      mm(W, nr, dO + (r0 + t0) * D, D, 1, vt, ldk, D, w, dS + t0 * ldk, ldk);
      for (int64_t r = 0; r < nr; r++) {
        const int64_t t = t0 + r;
        const int32_t n = (int32_t)(a->causal ? min64(nk, t + 1) : nk);
        const float li = lse[r0 + t], di = dl[r0 + t];
        float *pr = P + t * ldk, *dsr = dS + t * ldk;
        for (int64_t j = 0; j < w; j += L)
          for (int l = 0; l < L; l++) {
            bool vis = ((int32_t)j + l < n) & (ok[j + l] != 0);
            float p = asg_expf_fast(pr[j + l] * sc - li);
            float ds = p * (dsr[j + l] - di);
            pr[j + l] = vis ? p : 0.0f;
            dsr[j + l] = vis ? ds : 0.0f;
          }
      }
    }
    /* dv, dk rows jj of a tile: sums over the queries t >= the tile's first key (causal), whose
     * rows above hold P and dS for all the tile's keys (tiles of both are RT-aligned, L a
     * multiple of RT) */
    int64_t ldq = D, ldo = D;
    const float *qr = rows_padded(q + r0 * D, nqv, D, qbuf, &ldq);
    const float *dor = rows_padded(dO + r0 * D, nqv, D, dobuf, &ldo);
    for (int64_t jj = 0; jj < nk; jj += RT) {
      const int64_t nr = min64(RT, nk - jj), ts = a->causal ? min64(jj, nqv) : 0;
      mm_store(W, nr, P + ts * ldk + jj, 1, ldk, dor + ts * ldo, ldo, nqv - ts, D, 1,
               dv + (c0 + jj) * D, ob);
      mm_store(W, nr, dS + ts * ldk + jj, 1, ldk, qr + ts * ldq, ldq, nqv - ts, D, sc,
               dk + (c0 + jj) * D, ob);
    }
  }
}

/* The three bodies per SIMD level, W its vector width in floats. */
ASG_ALWAYS_INLINE void units(int W, const asg_cpu_call *c, const att_dims *a, int64_t lo,
                             int64_t hi, float *ws) {
  switch (c->s->op) {
  case ASG_OP_ATTENTION:
  case ASG_OP_ATTENTION_LSE: fwd_units(W, c, a, lo, hi, ws); break;
  case ASG_OP_ATTENTION_BWD_Q: bwd_q_units(W, c, a, lo, hi, ws); break;
  default: bwd_kv_units(W, c, a, lo, hi, ws); break;
  }
}
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void units_avx512(const asg_cpu_call *c, const att_dims *a, int64_t lo,
                                           int64_t hi, float *ws) {
  units(16, c, a, lo, hi, ws);
}
ASG_TARGET_AVX2 static void units_avx2(const asg_cpu_call *c, const att_dims *a, int64_t lo,
                                       int64_t hi, float *ws) {
  units(8, c, a, lo, hi, ws);
}
#endif

void asg_cpu_attention_f32(const asg_cpu_call *c, const att_dims *a, int64_t lo, int64_t hi,
                           float *ws) {
#ifdef ASG_SIMD_X86
  int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    units_avx512(c, a, lo, hi, ws);
  else if (level == ASG_SIMD_AVX2)
    units_avx2(c, a, lo, hi, ws);
  else
#endif
    units(4, c, a, lo, hi, ws);
}

size_t asg_cpu_attention_f32_ws(const att_dims *a, asg_op op) {
  const int64_t D = a->D, Dp = up(D), Tkp = up(a->Tk), B = ASG_ATT_BLK;
  int64_t n;
  if (op == ASG_OP_ATTENTION || op == ASG_OP_ATTENTION_LSE)
    n = D * Tkp + Tkp + RT * Tkp + a->Tk * Dp + RT * Dp;
  else if (op == ASG_OP_ATTENTION_BWD_Q)
    n = 2 * D * Tkp + Tkp + 2 * RT * Tkp + a->Tk * Dp + RT * Dp;
  else
    n = 2 * D * B + B + 2 * a->Tq * B + 2 * a->Tq * Dp + RT * Dp;
  return (size_t)up(n) * sizeof(float); /* whole vectors: every thread's slice stays aligned */
}
