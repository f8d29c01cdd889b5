// Device helpers shared by the tiled attention kernels (cuda_attention_f32.cu,
// cuda_attention_tc.cu, cuda_attention_hf.cu): cp.async staging of tiles and
// vectors into shared memory, the block -> query tile order, and the
// tensor-core helpers and score-tile steps of the TF32 and 16-bit kernels.
// Everything here is inline and in an anonymous namespace: each .cu that
// includes it gets its own copy.
#ifndef ASG_CUDA_ATTENTION_TILE_CUH
#define ASG_CUDA_ATTENTION_TILE_CUH

#include "backends/cuda/cuda_attention.h"

#include <math.h>
#include <stdint.h>

namespace asg_cuda_attn {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- cp.async staging (plain copies before sm_80) ----

__device__ __forceinline__ void cp_async16(float *dst, const float *src, bool ok) {
#if __CUDA_ARCH__ >= 800
  unsigned a = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(src),
               "r"(ok ? 16 : 0)); // src-size 0 zero-fills
#else
  *(float4 *)dst = ok ? *(const float4 *)src : make_float4(0.f, 0.f, 0.f, 0.f);
#endif
}

__device__ __forceinline__ void cp_async4(float *dst, const float *src, bool ok) {
#if __CUDA_ARCH__ >= 800
  unsigned a = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(a), "l"(src),
               "r"(ok ? 4 : 0));
#else
  *dst = ok ? *src : 0.f;
#endif
}

__device__ __forceinline__ void cp_commit() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of this thread's committed groups are in flight;
// a __syncthreads() after it publishes every thread's copies.
template <int N> __device__ __forceinline__ void cp_wait() {
#if __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// Rows [r0, r0+R) of a row-major [T, D] matrix into s [R][DP+4]; rows >= T
// and columns >= D become zeros, so they add nothing to dot products.
template <int R, int DP, bool VEC>
__device__ __forceinline__ void load_tile(float *s, const float *g, int r0, int T, int D) {
  constexpr int LD = DP + 4;
  if (VEC) {
    constexpr int C4 = DP / 4;
    static_assert(R * C4 % kThreads == 0, "whole chunks per thread");
#pragma unroll // a fixed trip count: no loop and no division left at run time
    for (int i = 0; i < R * C4 / kThreads; i++) {
      int e = threadIdx.x + i * kThreads, r = e / C4, col = (e % C4) * 4;
      bool ok = r0 + r < T && col < D;
      cp_async16(s + r * LD + col, ok ? g + (int64_t)(r0 + r) * D + col : g, ok);
    }
  } else {
    for (int e = threadIdx.x; e < R * DP; e += kThreads) {
      int r = e / DP, col = e % DP;
      bool ok = r0 + r < T && col < D;
      cp_async4(s + r * LD + col, ok ? g + (int64_t)(r0 + r) * D + col : g, ok);
    }
  }
}

// Elements [r0, r0+R) of a [T] vector into s [R] (zeros past T).
template <int R> __device__ __forceinline__ void load_vec(float *s, const float *g, int r0, int T) {
  for (int e = threadIdx.x; e < R; e += kThreads) {
    bool ok = r0 + e < T;
    cp_async4(s + e, ok ? g + r0 + e : g, ok);
  }
}

// Block -> (head bh, query tile qt). The tiles nearest the end come first:
// under a causal mask they have the most key tiles, so the long blocks start
// early and the short ones fill the tail.
__device__ __forceinline__ void query_block(int64_t nbh, int Tq, int64_t *bh, int *qt) {
  int nqt = (Tq + kRows - 1) / kRows;
  *qt = nqt - 1 - (int)(blockIdx.x / nbh);
  *bh = (int64_t)(blockIdx.x % nbh);
}

// ---- tensor-core helpers shared by the TF32 (cuda_attention_tc.cu) and
// 16-bit (cuda_attention_hf.cu) kernels; fragment layouts: see
// cuda_attention_tc.cu ----

// 2^x in one MUFU op, subnormal results flushed to zero (exp2f adds a range
// test and two multiplies to keep them; a probability under 2^-126 is 0 here).
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Four 8x8 matrices of 16-bit pairs (here: 8 rows x 4 floats each) from shared
// memory; lane l names row l % 8 of matrix l / 8 and receives in r[m] the
// 32-bit word (row l / 4, column l % 4) of matrix m: exactly the A fragment
// of a 16x8 tile, or the B fragments of two 8x8 tiles, in one instruction.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *row) {
#if __CUDA_ARCH__ >= 800
  unsigned a = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#else
  r[0] = r[1] = r[2] = r[3] = 0u;
  (void)row;
#endif
}

template <int N> __device__ __forceinline__ void tc_zero(float (&c)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; j++)
    c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.f;
}

// Rows [r0, r0+64) of c * mul (C fragments, warp w owns rows 16w..16w+15) into a
// row-major [T, DP] matrix (rows < T).
template <int DP>
__device__ __forceinline__ void tc_store(float *gm, const float (&c)[DP / 8][4],
                                         const float (&mul)[2], int r0, int T) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3, w = threadIdx.x >> 5;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    int r = r0 + 16 * w + g + 8 * h;
    if (r >= T) continue;
    float *row = gm + (int64_t)r * DP + 2 * t;
#pragma unroll
    for (int j = 0; j < DP / 8; j++)
      *(float2 *)(row + 8 * j) = make_float2(c[j][2 * h] * mul[h], c[j][2 * h + 1] * mul[h]);
  }
}

// ---- score-tile steps shared by the TF32 and 16-bit kernels (C fragments:
// this thread holds rows g and g+8 of its warp's 16, columns 8j + 2t + {0,1}) ----

// Forward: scales a score tile s to log2 units, masks keys >= Tk, (causal)
// keys after the row and keys the mask row mrow hides (edge tiles only:
// every tile when masked), folds the tile into the running max m and sum l
// of the thread's two rows qr, and leaves the unnormalized probabilities in s
// and the running output's rescale factors in alpha. A row that has seen no
// key yet keeps m = -inf (its probabilities and alpha are 0).
template <int NB>
__device__ __forceinline__ void
softmax_tile(float (&s)[NB / 8][4], float (&m)[2], float (&l)[2], float (&alpha)[2], float sl2,
             bool edge, int k0, int Tk, int causal, const int (&qr)[2], const float *mrow) {
  const int t = threadIdx.x & 3;
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < NB / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float x = s[j][e] * sl2;
      if (edge) {
        int kj = k0 + 8 * j + 2 * t + (e & 1);
        if (kj >= Tk || (causal && kj > qr[e >> 1]) || (mrow && mrow[kj] == 0.f)) x = -INFINITY;
      }
      s[j][e] = x;
      mx[e >> 1] = fmaxf(mx[e >> 1], x);
    }
#pragma unroll
  for (int h = 0; h < 2; h++) {
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
    mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
    // without a mask key 0 is visible to every row (padding rows too), so m
    // is finite from the first tile; a masked row may stay at -inf: shift by 0
    float mn = fmaxf(m[h], mx[h]);
    alpha[h] = ex2(m[h] - (mn == -INFINITY ? 0.f : mn));
    m[h] = mn;
  }
  const float sh[2] = {m[0] == -INFINITY ? 0.f : m[0], m[1] == -INFINITY ? 0.f : m[1]};
  float rs[2] = {0.f, 0.f};
#pragma unroll
  for (int j = 0; j < NB / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      s[j][e] = ex2(s[j][e] - sh[e >> 1]);
      rs[e >> 1] += s[j][e];
    }
  l[0] = l[0] * alpha[0] + rs[0];
  l[1] = l[1] * alpha[1] + rs[1];
}

// Forward, after the last tile: the rows' sums over their four lanes, the
// output rows o / l (WITH_V) and lse = (m + log2 l) ln 2 (into out when
// !WITH_V, else into lse_out when set).
template <int DP, bool WITH_V>
__device__ __forceinline__ void fwd_finish(const float (&o)[DP / 8][4], const float (&m)[2],
                                           float (&l)[2], float *out, float *lse_out, int64_t bh,
                                           int q0, int Tq, const int (&qr)[2]) {
#pragma unroll
  for (int h = 0; h < 2; h++) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
  }
  if (WITH_V) { // a row that saw no key (mask): l = 0, output 0
    const float inv[2] = {l[0] > 0.f ? 1.f / l[0] : 0.f, l[1] > 0.f ? 1.f / l[1] : 0.f};
    tc_store<DP>(out + bh * Tq * DP, o, inv, q0, Tq);
  }
  if (!WITH_V) lse_out = out;
  if (lse_out && (threadIdx.x & 3) == 0) {
#pragma unroll
    for (int h = 0; h < 2; h++)
      if (qr[h] < Tq)
        lse_out[bh * Tq + qr[h]] = l[h] > 0.f ? (m[h] + log2f(l[h])) * kLn2 : -INFINITY;
  }
}

// bwd_q: s (scores) becomes ds = p (dp - delta), p = exp2(s sl2 - lse2) with
// the forward's masks; rows qr, keys from k0.
template <int NB>
__device__ __forceinline__ void bwd_q_ds(float (&s)[NB / 8][4], const float (&dp)[NB / 8][4],
                                         float sl2, const float (&lse2)[2], const float (&dl)[2],
                                         bool edge, int k0, int Tk, int causal, const int (&qr)[2],
                                         const float *mrow) {
  const int t = threadIdx.x & 3;
#pragma unroll
  for (int j = 0; j < NB / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      float p = ex2(fmaf(s[j][e], sl2, -lse2[e >> 1]));
      if (edge) {
        int kj = k0 + 8 * j + 2 * t + (e & 1);
        if (kj >= Tk || (causal && kj > qr[e >> 1]) || (mrow && mrow[kj] == 0.f)) p = 0.f;
      }
      s[j][e] = p * (dp[j][e] - dl[e >> 1]);
    }
}

// bwd_kv (transposed tiles: key rows kr, query columns from q0): s becomes p
// and dp becomes ds = p (dp - delta), with lse Lt and delta Dt of the tile's
// queries (shared memory); hid: the key rows the mask hides.
template <int NQ>
__device__ __forceinline__ void bwd_kv_pds(float (&s)[NQ / 8][4], float (&dp)[NQ / 8][4],
                                           const float *Lt, const float *Dt, float sl2, bool edge,
                                           int q0, int Tq, int causal, const int (&kr)[2],
                                           const bool (&hid)[2]) {
  const int t = threadIdx.x & 3;
#pragma unroll
  for (int j = 0; j < NQ / 8; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int c = 8 * j + 2 * t + (e & 1);
      float p = ex2(fmaf(s[j][e], sl2, -Lt[c] * kLog2e));
      if (edge) {
        int qi = q0 + c;
        if (qi >= Tq || (causal && kr[e >> 1] > qi) || hid[e >> 1]) p = 0.f;
      }
      s[j][e] = p;
      dp[j][e] = p * (dp[j][e] - Dt[c]);
    }
}

} // namespace
} // namespace asg_cuda_attn

#endif
