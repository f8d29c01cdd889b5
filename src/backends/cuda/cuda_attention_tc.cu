// CUDA fused attention, TF32 tensor-core path: the tc_* kernels (forward,
// bwd_q, bwd_kv) with their mma.sync TF32 product helpers, and tf32_set, which
// hands them to the dispatch in cuda_attention.cu.
#include "backends/cuda/cuda_attention_tile.cuh"

namespace asg_cuda_attn {
namespace {

// ---- TF32 tensor-core path (the program allows TF32; f32, D = 32, 64 or 128) ----
// Same tiling as the fp32 kernels (a block of 4 warps owns 64 A rows, 16 per warp, and
// walks the other side in tiles double-buffered in shared memory), but every
// product runs as mma.sync m16n8k8 TF32 with fp32 accumulation; softmax
// statistics, exp2 and rescaling stay in fp32. Fragments (lane = 4 g + t):
// A (16x8): a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); B (8x8):
// b0 (k t, n g), b1 (k t+4, n g); C (16x8): c0/c1 (g, 2t/2t+1), c2/c3
// (g+8, 2t/2t+1). A score tile in C fragments feeds the next product as its
// A operand without shuffles: a sum over k may take its terms in any order,
// so k = t stands for column 2t and k = t+4 for column 2t+1 of each 8-wide
// block, and the B rows are read in the same order. Shared rows keep the
// DP+4 stride: both access patterns below (and ldmatrix's eight 16-byte
// rows) hit distinct banks. Every operand is rounded to nearest TF32
// (cvt.rna): staged tiles once, in shared memory, by the threads that copied
// them; probabilities as they enter a product. Raw fp32 bits would be
// truncated by the unit: measured on an H200, about twice the error (1.8e-3
// vs 9e-4 of the output scale). Operands of the Q.K^T-like products come from
// shared memory by ldmatrix (one instruction per fragment): with the rounding
// done once, the kernels issue 40-50% fewer instructions than when every warp
// converted its own scalar loads (H200, GPT-2 layer, with the 32-row tiles
// below: forward 231 -> 194 us, bwd_q 283 -> 248, bwd_kv 394 -> 317).

__device__ __forceinline__ uint32_t tf32_rna(float x) {
  uint32_t u;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(x));
  return u;
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
#if __CUDA_ARCH__ >= 800
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, "
               "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap(); // never launched: the host checks the kernel's PTX version
#endif
}

// c[j] += A[16 rows, DP] . B[8j + n, DP] for n < 8: A, B row-major, stride DP+4,
// already rounded to TF32 in shared memory (round_tile).
template <int DP, int N>
__device__ __forceinline__ void tc_nt(const float *A, const float *B, float (&c)[N / 8][4]) {
  constexpr int LD = DP + 4;
  const int lane = threadIdx.x & 31, r8 = lane & 7, m1 = (lane >> 3) & 1, m2 = lane >> 4;
  // A: matrices (rows 0-7 | 8-15) x (k | k+4); B: (k | k+4) x (tile j | j+1)
  const float *a = A + (r8 + 8 * m1) * LD + 4 * m2, *b = B + (r8 + 8 * m2) * LD + 4 * m1;
#pragma unroll
  for (int k = 0; k < DP; k += 8) {
    uint32_t af[4];
    ldsm_x4(af, a + k);
#pragma unroll
    for (int j = 0; j < N / 8; j += 2) {
      uint32_t bf[4];
      ldsm_x4(bf, b + j * 8 * LD + k);
      mma_tf32(c[j], af[0], af[1], af[2], af[3], bf[0], bf[1]);
      mma_tf32(c[j + 1], af[0], af[1], af[2], af[3], bf[2], bf[3]);
    }
  }
}

// c[j] += sum_r p[16 rows][r] X[r][8j .. 8j+7] over N rows r: p in C fragments
// (p[kb] holds columns 8kb..8kb+7, rounded here), X row-major [N][DP+4], rounded.
template <int DP, int N>
__device__ __forceinline__ void tc_pn(const float (&p)[N / 8][4], const float *X,
                                      float (&c)[DP / 8][4]) {
  constexpr int LD = DP + 4;
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const float *x = X + 2 * t * LD + g;
#pragma unroll
  for (int kb = 0; kb < N / 8; kb++) {
    uint32_t a0 = tf32_rna(p[kb][0]), a1 = tf32_rna(p[kb][2]);
    uint32_t a2 = tf32_rna(p[kb][1]), a3 = tf32_rna(p[kb][3]);
#pragma unroll
    for (int j = 0; j < DP / 8; j++)
      mma_tf32(c[j], a0, a1, a2, a3, __float_as_uint(x[kb * 8 * LD + j * 8]),
               __float_as_uint(x[kb * 8 * LD + LD + j * 8]));
  }
}

// Rounds to TF32, in place, the 16-byte chunks of an [R][DP+4] tile that this
// thread staged with load_tile<R, DP, true> (same chunk walk): called after
// cp_wait, whose guarantee covers only the calling thread's copies, and before
// the __syncthreads that publishes the tile. Every product then reads ready
// TF32 words and converts nothing (four warps read each tile).
template <int R, int DP> __device__ __forceinline__ void round_tile(float *s) {
  constexpr int LD = DP + 4, C4 = DP / 4;
#pragma unroll
  for (int i = 0; i < R * C4 / kThreads; i++) {
    int e = threadIdx.x + i * kThreads;
    float4 *p = (float4 *)(s + (e / C4) * LD + (e % C4) * 4);
    float4 x = *p;
    x.x = __uint_as_float(tf32_rna(x.x));
    x.y = __uint_as_float(tf32_rna(x.y));
    x.z = __uint_as_float(tf32_rna(x.z));
    x.w = __uint_as_float(tf32_rna(x.w));
    *p = x;
  }
}

// Key (or query) tile of the TF32 kernels: 32 rows for every D keeps a block
// of D = 64 under 76 KB of shared memory, so three blocks (12 warps) share an
// SM; 64-row tiles allowed two, and the kernels wait on shared-memory and
// exp latencies that only more warps hide (H200: forward 222 -> 194 us).
template <int DP> constexpr int tc_tile() { return 32; }

template <int DP> constexpr int tc_fwd_floats(bool with_v) {
  return (kRows + 2 * tc_tile<DP>() * (with_v ? 2 : 1)) * (DP + 4);
}
template <int DP> constexpr int tc_bwd_q_floats() {
  return (2 * kRows + 4 * tc_tile<DP>()) * (DP + 4);
}
template <int DP> constexpr int tc_bwd_kv_floats() {
  return (2 * kRows + 4 * tc_tile<DP>()) * (DP + 4) + 4 * tc_tile<DP>();
}

// ---- TF32 forward: o [NB,Tq,D] (WITH_V) or lse [NB,Tq] ----
template <int DP, bool WITH_V>
__global__ void __launch_bounds__(kThreads)
    tc_fwd_kernel(const float *q, const float *k, const float *v, float *out, float *lse_out,
                  int64_t nbh, int Tq, int Tk, float scale, int causal, const float *mask,
                  int64_t G) {
  constexpr int NB = tc_tile<DP>(), LD = DP + 4;
  extern __shared__ float4 smem4[];
  float *Qs = (float *)smem4;   // [64][LD]
  float *Ks = Qs + kRows * LD;  // 2 x [NB][LD]
  float *Vs = Ks + 2 * NB * LD; // 2 x [NB][LD] (WITH_V)
  const int lane = threadIdx.x & 31, g = lane >> 2, w = threadIdx.x >> 5;
  int64_t bh;
  int qt;
  query_block(nbh, Tq, &bh, &qt);
  const int q0 = qt * kRows;
  const float *kh = k + bh * Tk * DP, *vh = v + bh * Tk * DP;
  int nkt = (Tk + NB - 1) / NB;
  if (causal) nkt = min(nkt, (q0 + kRows - 1) / NB + 1);
  const float sl2 = scale * kLog2e;
  const float *mrow = mask ? mask + bh / G * Tk : nullptr;  // key mask row (or none)
  const int qr[2] = {q0 + 16 * w + g, q0 + 16 * w + g + 8}; // this thread's two rows

  load_tile<kRows, DP, true>(Qs, q + bh * Tq * DP, q0, Tq, DP);
  load_tile<NB, DP, true>(Ks, kh, 0, Tk, DP);
  if (WITH_V) load_tile<NB, DP, true>(Vs, vh, 0, Tk, DP);
  cp_commit();

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  float o[DP / 8][4];
  tc_zero(o);
  for (int it = 0; it < nkt; it++) {
    const int k0 = it * NB, buf = it & 1;
    cp_wait<0>(); // tile it has landed
    if (it == 0) round_tile<kRows, DP>(Qs);
    round_tile<NB, DP>(Ks + buf * NB * LD);
    if (WITH_V) round_tile<NB, DP>(Vs + buf * NB * LD);
    __syncthreads(); // and every warp is done with tile it-1: its buffers are free
    if (it + 1 < nkt) {
      load_tile<NB, DP, true>(Ks + (buf ^ 1) * NB * LD, kh, k0 + NB, Tk, DP);
      if (WITH_V) load_tile<NB, DP, true>(Vs + (buf ^ 1) * NB * LD, vh, k0 + NB, Tk, DP);
    }
    cp_commit();
    float s[NB / 8][4];
    tc_zero(s);
    tc_nt<DP, NB>(Qs + 16 * w * LD, Ks + buf * NB * LD, s);
    const bool edge = mrow || k0 + NB > Tk || (causal && k0 + NB - 1 > q0 + 16 * w);
    float alpha[2];
    softmax_tile<NB>(s, m, l, alpha, sl2, edge, k0, Tk, causal, qr, mrow);
    if (WITH_V) {
#pragma unroll
      for (int j = 0; j < DP / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
          o[j][e] *= alpha[e >> 1];
      tc_pn<DP, NB>(s, Vs + buf * NB * LD, o);
    }
  }
  cp_wait<0>();
  fwd_finish<DP, WITH_V>(o, m, l, out, lse_out, bh, q0, Tq, qr);
}

// ---- TF32 bwd_q: dq [NB,Tq,D] = scale * sum_j ds_ij k_j ----
template <int DP>
__global__ void __launch_bounds__(kThreads)
    tc_bwd_q_kernel(const float *q, const float *k, const float *v, const float *dout,
                    const float *lse, const float *delta, float *dq, int64_t nbh, int Tq, int Tk,
                    float scale, int causal, const float *mask, int64_t G) {
  constexpr int NB = tc_tile<DP>(), LD = DP + 4;
  extern __shared__ float4 smem4[];
  float *Qs = (float *)smem4;   // [64][LD]
  float *dOs = Qs + kRows * LD; // [64][LD]
  float *Ks = dOs + kRows * LD; // 2 x [NB][LD]
  float *Vs = Ks + 2 * NB * LD; // 2 x [NB][LD]
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

  load_tile<kRows, DP, true>(Qs, q + bh * Tq * DP, q0, Tq, DP);
  load_tile<kRows, DP, true>(dOs, dout + bh * Tq * DP, q0, Tq, DP);
  load_tile<NB, DP, true>(Ks, kh, 0, Tk, DP);
  load_tile<NB, DP, true>(Vs, vh, 0, Tk, DP);
  cp_commit();

  float lse2[2], dl[2];
#pragma unroll
  for (int h = 0; h < 2; h++) {
    int qi = min(qr[h], Tq - 1); // padding rows read a real row, never stored
    lse2[h] = lse[bh * Tq + qi] * kLog2e;
    dl[h] = delta[bh * Tq + qi];
  }
  float acc[DP / 8][4];
  tc_zero(acc);
  for (int it = 0; it < nkt; it++) {
    const int k0 = it * NB, buf = it & 1;
    cp_wait<0>();
    if (it == 0) {
      round_tile<kRows, DP>(Qs);
      round_tile<kRows, DP>(dOs);
    }
    round_tile<NB, DP>(Ks + buf * NB * LD);
    round_tile<NB, DP>(Vs + buf * NB * LD);
    __syncthreads();
    if (it + 1 < nkt) {
      load_tile<NB, DP, true>(Ks + (buf ^ 1) * NB * LD, kh, k0 + NB, Tk, DP);
      load_tile<NB, DP, true>(Vs + (buf ^ 1) * NB * LD, vh, k0 + NB, Tk, DP);
    }
    cp_commit();
    const float *Kt = Ks + buf * NB * LD;
    float s[NB / 8][4], dp[NB / 8][4];
    tc_zero(s);
    tc_zero(dp);
    tc_nt<DP, NB>(Qs + 16 * w * LD, Kt, s);
    tc_nt<DP, NB>(dOs + 16 * w * LD, Vs + buf * NB * LD, dp);
    const bool edge = mrow || k0 + NB > Tk || (causal && k0 + NB - 1 > q0 + 16 * w);
    bwd_q_ds<NB>(s, dp, sl2, lse2, dl, edge, k0, Tk, causal, qr, mrow);
    tc_pn<DP, NB>(s, Kt, acc);
  }
  cp_wait<0>();
  const float mul[2] = {scale, scale};
  tc_store<DP>(dq + bh * Tq * DP, acc, mul, q0, Tq);
}

// ---- TF32 bwd_kv: dkv [2,NB,Tk,D]; one block per 64 keys, walking the query
// tiles that see them; the products run transposed (key rows) ----
template <int DP>
__global__ void __launch_bounds__(kThreads)
    tc_bwd_kv_kernel(const float *q, const float *k, const float *v, const float *dout,
                     const float *lse, const float *delta, float *dkv, int64_t nbh, int Tq, int Tk,
                     float scale, int causal, const float *mask, int64_t G) {
  constexpr int NQ = tc_tile<DP>(), LD = DP + 4;
  extern __shared__ float4 smem4[];
  float *Ks = (float *)smem4;    // [64][LD]
  float *Vs = Ks + kRows * LD;   // [64][LD]
  float *Qs = Vs + kRows * LD;   // 2 x [NQ][LD]
  float *dOs = Qs + 2 * NQ * LD; // 2 x [NQ][LD]
  float *Ls = dOs + 2 * NQ * LD; // 2 x [NQ] lse
  float *Dl = Ls + 2 * NQ;       // 2 x [NQ] delta
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
                       mrow && kr[1] < Tk && mrow[kr[1]] == 0.f}; // this thread's two key rows

  load_tile<kRows, DP, true>(Ks, k + bh * Tk * DP, k0, Tk, DP);
  load_tile<kRows, DP, true>(Vs, v + bh * Tk * DP, k0, Tk, DP);
  if (qt0 < nqt) {
    load_tile<NQ, DP, true>(Qs, qh, qt0 * NQ, Tq, DP);
    load_tile<NQ, DP, true>(dOs, doh, qt0 * NQ, Tq, DP);
    load_vec<NQ>(Ls, lh, qt0 * NQ, Tq);
    load_vec<NQ>(Dl, dh, qt0 * NQ, Tq);
  }
  cp_commit();

  float dk[DP / 8][4], dv[DP / 8][4];
  tc_zero(dk);
  tc_zero(dv);
  for (int it = qt0; it < nqt; it++) {
    const int q0 = it * NQ, buf = (it - qt0) & 1;
    cp_wait<0>();
    if (it == qt0) {
      round_tile<kRows, DP>(Ks);
      round_tile<kRows, DP>(Vs);
    }
    round_tile<NQ, DP>(Qs + buf * NQ * LD);
    round_tile<NQ, DP>(dOs + buf * NQ * LD);
    __syncthreads();
    if (it + 1 < nqt) {
      const int nb = buf ^ 1;
      load_tile<NQ, DP, true>(Qs + nb * NQ * LD, qh, q0 + NQ, Tq, DP);
      load_tile<NQ, DP, true>(dOs + nb * NQ * LD, doh, q0 + NQ, Tq, DP);
      load_vec<NQ>(Ls + nb * NQ, lh, q0 + NQ, Tq);
      load_vec<NQ>(Dl + nb * NQ, dh, q0 + NQ, Tq);
    }
    cp_commit();
    const float *Qt = Qs + buf * NQ * LD, *dOt = dOs + buf * NQ * LD;
    const float *Lt = Ls + buf * NQ, *Dt = Dl + buf * NQ;
    float s[NQ / 8][4], dp[NQ / 8][4];
    tc_zero(s);
    tc_zero(dp);
    tc_nt<DP, NQ>(Ks + 16 * w * LD, Qt, s);   // s[key][query]
    tc_nt<DP, NQ>(Vs + 16 * w * LD, dOt, dp); // dp[key][query] = v_j . do_i
    const bool edge = mrow || q0 + NQ > Tq || (causal && q0 < k0 + 16 * w + 15);
    bwd_kv_pds<NQ>(s, dp, Lt, Dt, sl2, edge, q0, Tq, causal, kr, hid);
    tc_pn<DP, NQ>(s, dOt, dv);
    tc_pn<DP, NQ>(dp, Qt, dk);
  }
  cp_wait<0>();
  const float one[2] = {1.f, 1.f}, sc[2] = {scale, scale};
  tc_store<DP>(dkv + bh * Tk * DP, dk, sc, k0, Tk);
  tc_store<DP>(dkv + (nbh + bh) * Tk * DP, dv, one, k0, Tk);
}

} // namespace

template <int DP> MmaSet tf32_set() {
  return {{tc_fwd_kernel<DP, false>, tc_fwd_kernel<DP, true>},
          tc_bwd_q_kernel<DP>,
          tc_bwd_kv_kernel<DP>,
          {tc_fwd_floats<DP>(false) * sizeof(float), tc_fwd_floats<DP>(true) * sizeof(float),
           tc_bwd_q_floats<DP>() * sizeof(float), tc_bwd_kv_floats<DP>() * sizeof(float)}};
}

template MmaSet tf32_set<32>();
template MmaSet tf32_set<64>();
template MmaSet tf32_set<128>();

} // namespace asg_cuda_attn
