// CUDA fused attention, 16-bit tensor-core path (bf16_matmul / fp16_matmul
// programs): the hf_* kernels (forward, bwd_q, bwd_kv) with their m16n8k16
// product helpers, and half_set, which hands them to the dispatch in
// cuda_attention.cu.
#include "backends/cuda/cuda_attention_tile.cuh"
#include "backends/cuda/cuda_half.cuh"

#include <string.h>

namespace asg_cuda_attn {
namespace {

// ---- 16-bit tensor-core path (bf16_matmul / fp16_matmul programs; f32
// buffers, D = 32, 64 or 128) ----
// The program chose 16-bit products for its GEMMs; the attention's products
// take the same operands (PyTorch's autocast runs its flash attention in bf16
// as well): mma.sync m16n8k16 with bf16 (or fp16) operands and fp32 sums.
// Softmax statistics, exp2, rescaling, lse and the outputs stay fp32. The
// walking side's tiles are copied as f32 by cp.async into one staging buffer;
// each thread then converts the chunks it copied into a double-buffered
// 16-bit tile (rows of DP+8 halves: ldmatrix's eight rows fall on distinct
// banks). The block's own 64 rows are converted once while the first tile is
// in flight, and each warp keeps its 16 rows' A fragments in registers.
// Fragments (lane = 4g + t): A (16x16): a0 (g, 2t|2t+1), a1 (g+8, 2t|2t+1),
// a2 (g, 2t+8|2t+9), a3 (g+8, 2t+8|2t+9); B (16x8): b0 (k 2t|2t+1, n g), b1
// (k 2t+8|2t+9, n g); C as in the TF32 path. So a score tile's C fragments,
// packed in pairs, are the A fragments of the next product, in order. B
// operands that are rows of a tile (K in Q.K^T) load with ldmatrix, those
// read down columns (V in P.V) with ldmatrix.trans.

typedef uint16_t half_t; // raw bf16 / fp16 bits in shared memory

// (lo, hi) rounded to nearest even, lo in the low half (the smaller column).
template <int HO> __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t u;
  if constexpr (HO == kHalfBf16) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    memcpy(&u, &h, 4);
  } else {
    __half2 h = __floats2half2_rn(lo, hi);
    memcpy(&u, &h, 4);
  }
  return u;
}

template <int HO>
__device__ __forceinline__ void mma16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                      uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  if constexpr (HO == kHalfBf16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap(); // never launched: the host checks the kernel's PTX version
#endif
}

// ldsm_x4 with each 8x8 matrix transposed: lane l receives (row 2 (l % 4) and
// the next, column l / 4) of matrix m in r[m]: B fragments read down columns.
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void *row) {
#if __CUDA_ARCH__ >= 800
  unsigned a = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#else
  r[0] = r[1] = r[2] = r[3] = 0u;
  (void)row;
#endif
}

// Converts the 16-byte chunks this thread staged with load_tile<R, DP, true>
// (same walk; after cp_wait, before the __syncthreads that publishes dst) from
// the f32 tile src [R][DP+4] into the 16-bit tile dst [R][DP+8].
template <int R, int DP, int HO>
__device__ __forceinline__ void cvt_tile(half_t *dst, const float *src) {
  constexpr int LD = DP + 4, LH = DP + 8, C4 = DP / 4;
#pragma unroll
  for (int i = 0; i < R * C4 / kThreads; i++) {
    int e = threadIdx.x + i * kThreads, r = e / C4, col = (e % C4) * 4;
    float4 x = *(const float4 *)(src + r * LD + col);
    *(uint2 *)(dst + r * LH + col) = make_uint2(pack2<HO>(x.x, x.y), pack2<HO>(x.z, x.w));
  }
}

// Rows [r0, r0+R) of a row-major f32 [T, DP] matrix into the 16-bit tile
// dst [R][DP+8] by plain loads (rows >= T become zeros); every load is
// issued before the first store.
template <int R, int DP, int HO>
__device__ __forceinline__ void load_half(half_t *dst, const float *g, int r0, int T) {
  constexpr int LH = DP + 8, C4 = DP / 4, N = R * C4 / kThreads;
  static_assert(R * C4 % kThreads == 0, "whole chunks per thread");
  float4 x[N];
#pragma unroll
  for (int i = 0; i < N; i++) {
    int e = threadIdx.x + i * kThreads, r = e / C4, col = (e % C4) * 4;
    x[i] = r0 + r < T ? __ldg((const float4 *)(g + (int64_t)(r0 + r) * DP + col))
                      : make_float4(0.f, 0.f, 0.f, 0.f);
  }
#pragma unroll
  for (int i = 0; i < N; i++) {
    int e = threadIdx.x + i * kThreads, r = e / C4, col = (e % C4) * 4;
    *(uint2 *)(dst + r * LH + col) =
        make_uint2(pack2<HO>(x[i].x, x[i].y), pack2<HO>(x[i].z, x[i].w));
  }
}

// The A fragments of the 16 rows at A (stride DP+8), one per 16-wide k chunk.
template <int DP>
__device__ __forceinline__ void frag_a(uint32_t (&a)[DP / 16][4], const half_t *A) {
  constexpr int LH = DP + 8;
  const int lane = threadIdx.x & 31;
  // matrices: (rows 0-7 | 8-15) x (k 0-7 | 8-15)
  const half_t *p = A + ((lane & 7) + 8 * ((lane >> 3) & 1)) * LH + 8 * (lane >> 4);
#pragma unroll
  for (int kd = 0; kd < DP / 16; kd++)
    ldsm_x4(a[kd], p + 16 * kd);
}

// c[j] += A . B[8j + n] over DP for n < 8: a from frag_a, B [N][DP+8].
template <int DP, int N, int HO>
__device__ __forceinline__ void hf_nt(const uint32_t (&a)[DP / 16][4], const half_t *B,
                                      float (&c)[N / 8][4]) {
  constexpr int LH = DP + 8;
  const int lane = threadIdx.x & 31;
  // matrices: (rows of tile j | j+1) x (k 0-7 | 8-15), in the order b0(j), b1(j), b0(j+1), b1(j+1)
  const half_t *b = B + ((lane & 7) + 8 * (lane >> 4)) * LH + 8 * ((lane >> 3) & 1);
#pragma unroll
  for (int kd = 0; kd < DP / 16; kd++)
#pragma unroll
    for (int j = 0; j < N / 8; j += 2) {
      uint32_t bf[4];
      ldsm_x4(bf, b + j * 8 * LH + 16 * kd);
      mma16<HO>(c[j], a[kd], bf[0], bf[1]);
      mma16<HO>(c[j + 1], a[kd], bf[2], bf[3]);
    }
}

// c[j] += sum_r p[16 rows][r] X[r][8j .. 8j+7] over N rows r: p in fp32 C
// fragments (p[kb] holds columns 8kb..8kb+7), X [N][DP+8] read down columns.
template <int DP, int N, int HO>
__device__ __forceinline__ void hf_pn(const float (&p)[N / 8][4], const half_t *X,
                                      float (&c)[DP / 8][4]) {
  constexpr int LH = DP + 8;
  const int lane = threadIdx.x & 31;
  // matrices: (rows 0-7 | 8-15 of the chunk) x (columns of tile j | j+1)
  const half_t *x = X + ((lane & 7) + 8 * ((lane >> 3) & 1)) * LH + 8 * (lane >> 4);
#pragma unroll
  for (int kk = 0; kk < N / 16; kk++) {
    const uint32_t a[4] = {pack2<HO>(p[2 * kk][0], p[2 * kk][1]),
                           pack2<HO>(p[2 * kk][2], p[2 * kk][3]),
                           pack2<HO>(p[2 * kk + 1][0], p[2 * kk + 1][1]),
                           pack2<HO>(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
    for (int j = 0; j < DP / 8; j += 2) {
      uint32_t bf[4];
      ldsm_x4_t(bf, x + kk * 16 * LH + j * 8);
      mma16<HO>(c[j], a, bf[0], bf[1]);
      mma16<HO>(c[j + 1], a, bf[2], bf[3]);
    }
  }
}

// Walking-side tile of the 16-bit kernels (keys in the forward and bwd_q,
// queries in bwd_kv).
template <int DP> constexpr int hf_tile() { return 32; }

// Blocks per SM the backward kernels are compiled for: D = 64 fits three
// (<= 168 registers; the compiler's choice, 186 and 203, allowed two: H200,
// GPT-2 layer, bwd_q 1.71 -> 1.45 ms, bwd_kv 1.98 -> 1.87 ms a step); D = 128
// already spills at one.
template <int DP> constexpr int hf_min_blocks() { return DP == 64 ? 3 : 1; }

// Shared bytes: f32 staging for the walking side's nt tensors, their 16-bit
// double buffers, the block's own nf 16-bit tiles of 64 rows, and lse/delta.
template <int DP> constexpr size_t hf_bytes(int nt, int nf, bool vecs) {
  return (size_t)nt * hf_tile<DP>() * (DP + 4) * 4 + (size_t)nt * 2 * hf_tile<DP>() * (DP + 8) * 2 +
         (size_t)nf * kRows * (DP + 8) * 2 + (vecs ? 4 * hf_tile<DP>() * 4 : 0);
}

// ---- 16-bit forward: o [NB,Tq,D] (WITH_V) or lse [NB,Tq] ----
template <int DP, int HO, bool WITH_V>
__global__ void __launch_bounds__(kThreads)
    hf_fwd_kernel(const float *q, const float *k, const float *v, float *out, float *lse_out,
                  int64_t nbh, int Tq, int Tk, float scale, int causal, const float *mask,
                  int64_t G) {
  constexpr int NB = hf_tile<DP>(), LD = DP + 4, LH = DP + 8, NT = WITH_V ? 2 : 1;
  extern __shared__ float4 smem4[];
  float *St = (float *)smem4;                 // staging: K [NB][LD] (, V [NB][LD])
  half_t *Kh = (half_t *)(St + NT * NB * LD); // 2 x [NB][LH]
  half_t *Vh = Kh + 2 * NB * LH;              // 2 x [NB][LH] (WITH_V)
  half_t *Qh = Kh + NT * 2 * NB * LH;         // [64][LH]
  const int lane = threadIdx.x & 31, g = lane >> 2, w = threadIdx.x >> 5;
  int64_t bh;
  int qt;
  query_block(nbh, Tq, &bh, &qt);
  const int q0 = qt * kRows;
  const float *kh = k + bh * Tk * DP, *vh = v + bh * Tk * DP;
  int nkt = (Tk + NB - 1) / NB;
  if (causal) nkt = min(nkt, (q0 + kRows - 1) / NB + 1);
  const float sl2 = scale * kLog2e;
  const float *mrow = mask ? mask + bh / G * Tk : nullptr; // key mask row (or none)
  const int qr[2] = {q0 + 16 * w + g, q0 + 16 * w + g + 8};

  load_tile<NB, DP, true>(St, kh, 0, Tk, DP);
  if (WITH_V) load_tile<NB, DP, true>(St + NB * LD, vh, 0, Tk, DP);
  cp_commit();
  load_half<kRows, DP, HO>(Qh, q + bh * Tq * DP, q0, Tq);

  uint32_t qf[DP / 16][4];
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[DP / 8][4];
  tc_zero(o);
  for (int it = 0; it < nkt; it++) {
    const int k0 = it * NB, buf = it & 1;
    cp_wait<0>();
    cvt_tile<NB, DP, HO>(Kh + buf * NB * LH, St);
    if (WITH_V) cvt_tile<NB, DP, HO>(Vh + buf * NB * LH, St + NB * LD);
    __syncthreads(); // tile it published; every warp is done with tile it-1 (and the staging)
    if (it == 0) frag_a<DP>(qf, Qh + 16 * w * LH);
    if (it + 1 < nkt) {
      load_tile<NB, DP, true>(St, kh, k0 + NB, Tk, DP);
      if (WITH_V) load_tile<NB, DP, true>(St + NB * LD, vh, k0 + NB, Tk, DP);
    }
    cp_commit();
    float s[NB / 8][4];
    tc_zero(s);
    hf_nt<DP, NB, HO>(qf, Kh + buf * NB * LH, s);
    const bool edge = mrow || k0 + NB > Tk || (causal && k0 + NB - 1 > q0 + 16 * w);
    float alpha[2];
    softmax_tile<NB>(s, m, l, alpha, sl2, edge, k0, Tk, causal, qr, mrow);
    if (WITH_V) {
#pragma unroll
      for (int j = 0; j < DP / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
          o[j][e] *= alpha[e >> 1];
      hf_pn<DP, NB, HO>(s, Vh + buf * NB * LH, o);
    }
  }
  cp_wait<0>();
  fwd_finish<DP, WITH_V>(o, m, l, out, lse_out, bh, q0, Tq, qr);
}

// ---- 16-bit bwd_q: dq [NB,Tq,D] = scale * sum_j ds_ij k_j ----
template <int DP, int HO>
__global__ void __launch_bounds__(kThreads, hf_min_blocks<DP>())
    hf_bwd_q_kernel(const float *q, const float *k, const float *v, const float *dout,
                    const float *lse, const float *delta, float *dq, int64_t nbh, int Tq, int Tk,
                    float scale, int causal, const float *mask, int64_t G) {
  constexpr int NB = hf_tile<DP>(), LD = DP + 4, LH = DP + 8;
  extern __shared__ float4 smem4[];
  float *St = (float *)smem4;                // staging: K, V [NB][LD]
  half_t *Kh = (half_t *)(St + 2 * NB * LD); // 2 x [NB][LH]
  half_t *Vh = Kh + 2 * NB * LH;             // 2 x [NB][LH]
  half_t *Qh = Vh + 2 * NB * LH;             // [64][LH]
  half_t *dOh = Qh + kRows * LH;             // [64][LH]
  const int lane = threadIdx.x & 31, g = lane >> 2, w = threadIdx.x >> 5;
  int64_t bh;
  int qt;
  query_block(nbh, Tq, &bh, &qt);
  const int q0 = qt * kRows;
  const float *kh = k + bh * Tk * DP, *vh = v + bh * Tk * DP;
  int nkt = (Tk + NB - 1) / NB;
  if (causal) nkt = min(nkt, (q0 + kRows - 1) / NB + 1);
  const float sl2 = scale * kLog2e;
  const float *mrow = mask ? mask + bh / G * Tk : nullptr; // key mask row (or none)
  const int qr[2] = {q0 + 16 * w + g, q0 + 16 * w + g + 8};

  load_tile<NB, DP, true>(St, kh, 0, Tk, DP);
  load_tile<NB, DP, true>(St + NB * LD, vh, 0, Tk, DP);
  cp_commit();
  load_half<kRows, DP, HO>(Qh, q + bh * Tq * DP, q0, Tq);
  load_half<kRows, DP, HO>(dOh, dout + bh * Tq * DP, q0, Tq);

  float lse2[2], dl[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    int qi = min(qr[h], Tq - 1); // padding rows read a real row, never stored
    lse2[h] = lse[bh * Tq + qi] * kLog2e;
    dl[h] = delta[bh * Tq + qi];
  }
  uint32_t qf[DP / 16][4], df[DP / 16][4];
  float acc[DP / 8][4];
  tc_zero(acc);
  for (int it = 0; it < nkt; it++) {
    const int k0 = it * NB, buf = it & 1;
    cp_wait<0>();
    cvt_tile<NB, DP, HO>(Kh + buf * NB * LH, St);
    cvt_tile<NB, DP, HO>(Vh + buf * NB * LH, St + NB * LD);
    __syncthreads();
    if (it == 0) {
      frag_a<DP>(qf, Qh + 16 * w * LH);
      frag_a<DP>(df, dOh + 16 * w * LH);
    }
    if (it + 1 < nkt) {
      load_tile<NB, DP, true>(St, kh, k0 + NB, Tk, DP);
      load_tile<NB, DP, true>(St + NB * LD, vh, k0 + NB, Tk, DP);
    }
    cp_commit();
    const half_t *Kt = Kh + buf * NB * LH;
    float s[NB / 8][4], dp[NB / 8][4];
    tc_zero(s);
    tc_zero(dp);
    hf_nt<DP, NB, HO>(qf, Kt, s);
    hf_nt<DP, NB, HO>(df, Vh + buf * NB * LH, dp);
    const bool edge = mrow || k0 + NB > Tk || (causal && k0 + NB - 1 > q0 + 16 * w);
    bwd_q_ds<NB>(s, dp, sl2, lse2, dl, edge, k0, Tk, causal, qr, mrow);
    hf_pn<DP, NB, HO>(s, Kt, acc);
  }
  cp_wait<0>();
  const float mul[2] = {scale, scale};
  tc_store<DP>(dq + bh * Tq * DP, acc, mul, q0, Tq);
}

// ---- 16-bit bwd_kv: dkv [2,NB,Tk,D]; one block per 64 keys, walking the
// query tiles that see them; the products run transposed (key rows) ----
template <int DP, int HO>
__global__ void __launch_bounds__(kThreads, hf_min_blocks<DP>())
    hf_bwd_kv_kernel(const float *q, const float *k, const float *v, const float *dout,
                     const float *lse, const float *delta, float *dkv, int64_t nbh, int Tq, int Tk,
                     float scale, int causal, const float *mask, int64_t G) {
  constexpr int NQ = hf_tile<DP>(), LD = DP + 4, LH = DP + 8;
  extern __shared__ float4 smem4[];
  float *St = (float *)smem4;                // staging: Q, dO [NQ][LD]
  half_t *Qh = (half_t *)(St + 2 * NQ * LD); // 2 x [NQ][LH]
  half_t *dOh = Qh + 2 * NQ * LH;            // 2 x [NQ][LH]
  half_t *Kh = dOh + 2 * NQ * LH;            // [64][LH]
  half_t *Vh = Kh + kRows * LH;              // [64][LH]
  float *Ls = (float *)(Vh + kRows * LH);    // 2 x [NQ] lse
  float *Dl = Ls + 2 * NQ;                   // 2 x [NQ] delta
  const int lane = threadIdx.x & 31, g = lane >> 2, w = threadIdx.x >> 5;
  const int kt = (int)(blockIdx.x / nbh);
  const int64_t bh = (int64_t)(blockIdx.x % nbh);
  const int k0 = kt * kRows;
  const float *qh = q + bh * Tq * DP, *doh = dout + bh * Tq * DP;
  const float *lh = lse + bh * Tq, *dh = delta + bh * Tq;
  const int nqt = (Tq + NQ - 1) / NQ;
  const int qt0 = causal ? k0 / NQ : 0; // earlier query tiles see none of these keys
  const float sl2 = scale * kLog2e;
  const int kr[2] = {k0 + 16 * w + g, k0 + 16 * w + g + 8};
  const float *mrow = mask ? mask + bh / G * Tk : nullptr; // key mask row (or none)
  const bool hid[2] = {mrow && kr[0] < Tk && mrow[kr[0]] == 0.f,
                       mrow && kr[1] < Tk && mrow[kr[1]] == 0.f};

  if (qt0 < nqt) {
    load_tile<NQ, DP, true>(St, qh, qt0 * NQ, Tq, DP);
    load_tile<NQ, DP, true>(St + NQ * LD, doh, qt0 * NQ, Tq, DP);
    load_vec<NQ>(Ls, lh, qt0 * NQ, Tq);
    load_vec<NQ>(Dl, dh, qt0 * NQ, Tq);
  }
  cp_commit();
  load_half<kRows, DP, HO>(Kh, k + bh * Tk * DP, k0, Tk);
  load_half<kRows, DP, HO>(Vh, v + bh * Tk * DP, k0, Tk);

  uint32_t kf[DP / 16][4], vf[DP / 16][4];
  float dk[DP / 8][4], dv[DP / 8][4];
  tc_zero(dk);
  tc_zero(dv);
  for (int it = qt0; it < nqt; it++) {
    const int q0 = it * NQ, buf = (it - qt0) & 1;
    cp_wait<0>();
    cvt_tile<NQ, DP, HO>(Qh + buf * NQ * LH, St);
    cvt_tile<NQ, DP, HO>(dOh + buf * NQ * LH, St + NQ * LD);
    __syncthreads();
    if (it == qt0) {
      frag_a<DP>(kf, Kh + 16 * w * LH);
      frag_a<DP>(vf, Vh + 16 * w * LH);
    }
    if (it + 1 < nqt) {
      const int nb = buf ^ 1;
      load_tile<NQ, DP, true>(St, qh, q0 + NQ, Tq, DP);
      load_tile<NQ, DP, true>(St + NQ * LD, doh, q0 + NQ, Tq, DP);
      load_vec<NQ>(Ls + nb * NQ, lh, q0 + NQ, Tq);
      load_vec<NQ>(Dl + nb * NQ, dh, q0 + NQ, Tq);
    }
    cp_commit();
    const half_t *Qt = Qh + buf * NQ * LH, *dOt = dOh + buf * NQ * LH;
    const float *Lt = Ls + buf * NQ, *Dt = Dl + buf * NQ;
    float s[NQ / 8][4], dp[NQ / 8][4];
    tc_zero(s);
    tc_zero(dp);
    hf_nt<DP, NQ, HO>(kf, Qt, s);   // s[key][query]
    hf_nt<DP, NQ, HO>(vf, dOt, dp); // dp[key][query] = v_j . do_i
    const bool edge = mrow || q0 + NQ > Tq || (causal && q0 < k0 + 16 * w + 15);
    bwd_kv_pds<NQ>(s, dp, Lt, Dt, sl2, edge, q0, Tq, causal, kr, hid);
    hf_pn<DP, NQ, HO>(s, dOt, dv);
    hf_pn<DP, NQ, HO>(dp, Qt, dk);
  }
  cp_wait<0>();
  const float one[2] = {1.f, 1.f}, sc[2] = {scale, scale};
  tc_store<DP>(dkv + bh * Tk * DP, dk, sc, k0, Tk);
  tc_store<DP>(dkv + (nbh + bh) * Tk * DP, dv, one, k0, Tk);
}

} // namespace

template <int DP, int HO> MmaSet half_set() {
  return {{hf_fwd_kernel<DP, HO, false>, hf_fwd_kernel<DP, HO, true>},
          hf_bwd_q_kernel<DP, HO>,
          hf_bwd_kv_kernel<DP, HO>,
          {hf_bytes<DP>(1, 1, false), hf_bytes<DP>(2, 1, false), hf_bytes<DP>(2, 2, false),
           hf_bytes<DP>(2, 2, true)}};
}

template MmaSet half_set<32, kHalfBf16>();
template MmaSet half_set<64, kHalfBf16>();
template MmaSet half_set<128, kHalfBf16>();
template MmaSet half_set<32, kHalfFp16>();
template MmaSet half_set<64, kHalfFp16>();
template MmaSet half_set<128, kHalfFp16>();

} // namespace asg_cuda_attn
