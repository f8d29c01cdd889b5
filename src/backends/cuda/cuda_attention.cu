// CUDA kernels of the fused attention ops: attention, attention_lse,
// attention_bwd_q, attention_bwd_kv. Contract: src/ops/ops.def and the CPU
// reference (src/backends/cpu/cpu_attention.c); shapes are flattened to
// [NB, T, D] (NB = product of the leading dims).
//
// f32 with D <= 128 takes the tiled path: a block of 128 threads owns 64
// "A rows" (queries in the forward and bwd_q, keys in bwd_kv) and walks the
// other side in tiles staged in shared memory with cp.async, overlapping the
// next tile's copy with the current tile's arithmetic. Scores never reach
// device memory: the forward keeps a running max and sum (online softmax),
// the backward recomputes p from the row logsumexp. Arithmetic is plain fp32
// FMA, with exp2 on log2e-scaled scores. When the program allows TF32
// (asg_compile_opts.allow_tf32) and D is 32, 64 or 128 with aligned buffers,
// the same tiling runs its products on tensor cores instead (mma.sync TF32,
// fp32 accumulation and softmax; about 1e-3 relative error, see the tc_*
// kernels); without it the fp32 kernels keep the ~1e-4 parity tolerance.
// Programs with 16-bit products (bf16_matmul / fp16_matmul) run the hf_*
// kernels: the same tiling with bf16 / fp16 m16n8k16 products (hf_* below).
// Causal tiles entirely above the diagonal are never visited. D is
// zero-padded to 32, 64 or 128 in shared memory, so odd D costs padding, not
// a separate kernel; D not a multiple of 4 (or unaligned buffers) copies
// 4-byte elements instead of 16-byte vectors. A key mask
// (asg_attention_masked) is read by the tensor-core kernels; f64, D > 128,
// strict f32 with a mask and devices with too little shared memory use a
// generic warp-per-row kernel that accumulates in its output row.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_half.cuh"
#include "runtime/layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

namespace {

constexpr int kThreads = 128; // tiled kernels: 16 row groups x 8 column groups
constexpr int kRows = 64;     // A rows per block of the tiled kernels
constexpr int kGenThreads = 256;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

asg_status dtype_error(const asg_cuda_call *c) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype not supported", c->s->label);
}

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

// ---- register-tiled products on shared-memory tiles ----
// Thread layout: rg = tid / 8 owns A rows rg + 16 i (i < 4); cg = tid % 8
// owns B rows cg + 8 j (NT) or output columns cg*4 + 32 h .. +3 (NN). The 8
// threads of a row group are 8 consecutive lanes (row reductions are three
// shuffles), read the same A row (a broadcast) and 8 consecutive B rows of a
// stride DP+4 (distinct banks).

// acc[i][j] += A[rg+16i] . B[cg+8j] over DP: A [64][DP+4], B [NB][DP+4].
template <int DP, int NB>
__device__ __forceinline__ void mm_nt(const float *A, const float *B, float (&acc)[4][NB / 8]) {
  constexpr int LD = DP + 4;
  const int rg = threadIdx.x >> 3, cg = threadIdx.x & 7;
#pragma unroll 8
  for (int k = 0; k < DP; k += 4) {
    float4 a[4], b[NB / 8];
#pragma unroll
    for (int i = 0; i < 4; i++)
      a[i] = *(const float4 *)(A + (rg + 16 * i) * LD + k);
#pragma unroll
    for (int j = 0; j < NB / 8; j++)
      b[j] = *(const float4 *)(B + (cg + 8 * j) * LD + k);
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < NB / 8; j++) {
        float t = acc[i][j];
        t = fmaf(a[i].x, b[j].x, t);
        t = fmaf(a[i].y, b[j].y, t);
        t = fmaf(a[i].z, b[j].z, t);
        acc[i][j] = fmaf(a[i].w, b[j].w, t);
      }
  }
}

__device__ __forceinline__ float comp(float4 v, int u) {
  return u == 0 ? v.x : u == 1 ? v.y : u == 2 ? v.z : v.w;
}

// acc[i][h] += sum_c P[rg+16i][c] * B[c][cg*4+32h .. +3]: P [64][NB+8], B [NB][DP+4].
template <int DP, int NB>
__device__ __forceinline__ void mm_nn(const float *P, const float *B, float4 (&acc)[4][DP / 32]) {
  constexpr int LP = NB + 8, LD = DP + 4;
  const int rg = threadIdx.x >> 3, cg = threadIdx.x & 7;
#pragma unroll 2
  for (int c = 0; c < NB; c += 4) {
    float4 p[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
      p[i] = *(const float4 *)(P + (rg + 16 * i) * LP + c);
#pragma unroll
    for (int u = 0; u < 4; u++) {
      float4 b[DP / 32];
#pragma unroll
      for (int h = 0; h < DP / 32; h++)
        b[h] = *(const float4 *)(B + (c + u) * LD + cg * 4 + 32 * h);
#pragma unroll
      for (int i = 0; i < 4; i++) {
        float pu = comp(p[i], u);
#pragma unroll
        for (int h = 0; h < DP / 32; h++) {
          acc[i][h].x = fmaf(pu, b[h].x, acc[i][h].x);
          acc[i][h].y = fmaf(pu, b[h].y, acc[i][h].y);
          acc[i][h].z = fmaf(pu, b[h].z, acc[i][h].z);
          acc[i][h].w = fmaf(pu, b[h].w, acc[i][h].w);
        }
      }
    }
  }
}

// Rows [r0, r0+64) of acc * mul into a row-major [T, D] matrix (rows < T, columns < D).
template <int DP, bool VEC>
__device__ __forceinline__ void store_rows(float *g, const float4 (&acc)[4][DP / 32],
                                           const float (&mul)[4], int r0, int T, int D) {
  const int rg = threadIdx.x >> 3, cg = threadIdx.x & 7;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int r = r0 + rg + 16 * i;
    if (r >= T) continue;
    float *row = g + (int64_t)r * D;
#pragma unroll
    for (int h = 0; h < DP / 32; h++) {
      int col = cg * 4 + 32 * h;
      float4 v = acc[i][h];
      v.x *= mul[i], v.y *= mul[i], v.z *= mul[i], v.w *= mul[i];
      if (VEC) {
        if (col < D) *(float4 *)(row + col) = v;
      } else {
#pragma unroll
        for (int u = 0; u < 4; u++)
          if (col + u < D) row[col + u] = comp(v, u);
      }
    }
  }
}

// Key tiles: 64 keys for D <= 64, 32 for D = 128 (registers and shared memory).
template <int DP> constexpr int key_tile() { return DP == 128 ? 32 : 64; }

// Shared floats of each tiled kernel.
template <int DP> constexpr int fwd_floats(bool with_v) {
  return kRows * (DP + 4) + 2 * key_tile<DP>() * (DP + 4) +
         (with_v ? kRows * (key_tile<DP>() + 8) : 0);
}
template <int DP> constexpr int bwd_q_floats() {
  return 2 * kRows * (DP + 4) + 2 * key_tile<DP>() * (DP + 4) + kRows * (key_tile<DP>() + 8);
}
template <int DP> constexpr int bwd_kv_floats() {
  return 2 * kRows * (DP + 4) + 2 * key_tile<DP>() * (DP + 4) + 2 * kRows * (key_tile<DP>() + 8) +
         2 * key_tile<DP>();
}

// Block -> (head bh, query tile qt). The tiles nearest the end come first:
// under a causal mask they have the most key tiles, so the long blocks start
// early and the short ones fill the tail.
__device__ __forceinline__ void query_block(int64_t nbh, int Tq, int64_t *bh, int *qt) {
  int nqt = (Tq + kRows - 1) / kRows;
  *qt = nqt - 1 - (int)(blockIdx.x / nbh);
  *bh = (int64_t)(blockIdx.x % nbh);
}

// ---- forward: o [NB,Tq,D] (WITH_V) or lse [NB,Tq] from q [NB,Tq,D], k, v [NB,Tk,D] ----
template <int DP, bool VEC, bool WITH_V>
__global__ void __launch_bounds__(kThreads)
    fwd_kernel(const float *q, const float *k, const float *v, float *out, float *lse_out,
               int64_t nbh, int Tq, int Tk, int D, float scale, int causal) {
  constexpr int NB = key_tile<DP>(), LD = DP + 4, LP = NB + 8;
  extern __shared__ float4 smem4[];
  float *Qs = (float *)smem4;  // [64][LD]
  float *Ks = Qs + kRows * LD; // [NB][LD]; lse: two buffers
  float *Vs = Ks + NB * LD;    // [NB][LD]
  float *Ps = Vs + NB * LD;    // [64][LP]
  const int rg = threadIdx.x >> 3, cg = threadIdx.x & 7;
  int64_t bh;
  int qt;
  query_block(nbh, Tq, &bh, &qt);
  const int q0 = qt * kRows;
  const float *qh = q + bh * Tq * D, *kh = k + bh * Tk * D, *vh = v + bh * Tk * D;
  int nkt = (Tk + NB - 1) / NB;
  if (causal) nkt = min(nkt, (q0 + kRows - 1) / NB + 1); // tiles past the diagonal are all masked
  const float sl2 = scale * kLog2e;

  // groups: {Q, K0}, {V0}; then per tile {K(t+1)}, {V(t+1)}
  load_tile<kRows, DP, VEC>(Qs, qh, q0, Tq, D);
  load_tile<NB, DP, VEC>(Ks, kh, 0, Tk, D);
  cp_commit();
  if (WITH_V) load_tile<NB, DP, VEC>(Vs, vh, 0, Tk, D);
  cp_commit();

  float m[4], l[4]; // running max (log2 units) and this thread's share of the sum
  float4 o[4][DP / 32];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    m[i] = -INFINITY, l[i] = 0.f;
#pragma unroll
    for (int h = 0; h < DP / 32; h++)
      o[i][h] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  for (int t = 0; t < nkt; t++) {
    const int k0 = t * NB;
    const float *Kt = Ks;
    if (WITH_V) {
      cp_wait<1>(); // K(t) has landed, V(t) may be in flight
      __syncthreads();
    } else { // lse: K is double-buffered, the next tile copies during this one
      cp_wait<0>();
      __syncthreads();
      if (t + 1 < nkt) load_tile<NB, DP, VEC>(Ks + ((t + 1) & 1) * NB * LD, kh, k0 + NB, Tk, D);
      cp_commit();
      Kt = Ks + (t & 1) * NB * LD;
    }
    float s[4][NB / 8];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < NB / 8; j++)
        s[i][j] = 0.f;
    mm_nt<DP, NB>(Qs, Kt, s);
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int qi = q0 + rg + 16 * i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < NB / 8; j++) {
        int kj = k0 + cg + 8 * j;
        bool ok = kj < Tk && (!causal || kj <= qi);
        s[i][j] = ok ? s[i][j] * sl2 : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      // Key 0 is visible to every row (padding rows too), so from the first
      // tile on mn is finite and exp2(-inf - mn) = 0 is never -inf - -inf.
      float mn = fmaxf(m[i], mx);
      float alpha = exp2f(m[i] - mn);
      m[i] = mn;
      float rs = 0.f;
#pragma unroll
      for (int j = 0; j < NB / 8; j++) {
        s[i][j] = exp2f(s[i][j] - mn);
        rs += s[i][j];
      }
      l[i] = l[i] * alpha + rs;
      if (WITH_V) {
#pragma unroll
        for (int h = 0; h < DP / 32; h++) {
          o[i][h].x *= alpha, o[i][h].y *= alpha, o[i][h].z *= alpha, o[i][h].w *= alpha;
        }
#pragma unroll
        for (int j = 0; j < NB / 8; j++)
          Ps[(rg + 16 * i) * LP + cg + 8 * j] = s[i][j];
      }
    }
    if (WITH_V) {
      __syncthreads(); // Ks fully read, Ps complete
      if (t + 1 < nkt) load_tile<NB, DP, VEC>(Ks, kh, k0 + NB, Tk, D);
      cp_commit();
      cp_wait<1>(); // V(t) has landed
      __syncthreads();
      mm_nn<DP, NB>(Ps, Vs, o);
      __syncthreads(); // Vs fully read
      if (t + 1 < nkt) load_tile<NB, DP, VEC>(Vs, vh, k0 + NB, Tk, D);
      cp_commit();
    }
  }
  cp_wait<0>(); // no copy may outlive the block
#pragma unroll
  for (int i = 0; i < 4; i++) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 4);
  }
  if (WITH_V) {
    float inv[4];
#pragma unroll
    for (int i = 0; i < 4; i++)
      inv[i] = 1.f / l[i];
    store_rows<DP, VEC>(out + bh * Tq * D, o, inv, q0, Tq, D);
  }
  if (!WITH_V) lse_out = out;
  if (lse_out && cg == 0) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      int qi = q0 + rg + 16 * i;
      if (qi < Tq) lse_out[bh * Tq + qi] = (m[i] + log2f(l[i])) * kLn2;
    }
  }
}

// ---- bwd_q: dq [NB,Tq,D] = scale * sum_j ds_ij k_j; one block per query tile ----
template <int DP, bool VEC>
__global__ void __launch_bounds__(kThreads)
    bwd_q_kernel(const float *q, const float *k, const float *v, const float *dout,
                 const float *lse, const float *delta, float *dq, int64_t nbh, int Tq, int Tk,
                 int D, float scale, int causal) {
  constexpr int NB = key_tile<DP>(), LD = DP + 4, LP = NB + 8;
  extern __shared__ float4 smem4[];
  float *Qs = (float *)smem4;   // [64][LD]
  float *dOs = Qs + kRows * LD; // [64][LD]
  float *Ks = dOs + kRows * LD; // [NB][LD]
  float *Vs = Ks + NB * LD;     // [NB][LD]
  float *dSs = Vs + NB * LD;    // [64][LP]
  const int rg = threadIdx.x >> 3, cg = threadIdx.x & 7;
  int64_t bh;
  int qt;
  query_block(nbh, Tq, &bh, &qt);
  const int q0 = qt * kRows;
  const float *kh = k + bh * Tk * D, *vh = v + bh * Tk * D;
  int nkt = (Tk + NB - 1) / NB;
  if (causal) nkt = min(nkt, (q0 + kRows - 1) / NB + 1);
  const float sl2 = scale * kLog2e;

  // groups: {Q, dO, V0}, {K0}; then per tile {V(t+1)}, {K(t+1)}
  load_tile<kRows, DP, VEC>(Qs, q + bh * Tq * D, q0, Tq, D);
  load_tile<kRows, DP, VEC>(dOs, dout + bh * Tq * D, q0, Tq, D);
  load_tile<NB, DP, VEC>(Vs, vh, 0, Tk, D);
  cp_commit();
  load_tile<NB, DP, VEC>(Ks, kh, 0, Tk, D);
  cp_commit();

  float lse2[4], dl[4];
  float4 acc[4][DP / 32];
#pragma unroll
  for (int i = 0; i < 4; i++) {
    int qi = min(q0 + rg + 16 * i, Tq - 1); // padding rows read a real row, never stored
    lse2[i] = lse[bh * Tq + qi] * kLog2e;
    dl[i] = delta[bh * Tq + qi];
#pragma unroll
    for (int h = 0; h < DP / 32; h++)
      acc[i][h] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  for (int t = 0; t < nkt; t++) {
    const int k0 = t * NB;
    float dp[4][NB / 8], s[4][NB / 8];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < NB / 8; j++)
        dp[i][j] = 0.f, s[i][j] = 0.f;
    cp_wait<1>(); // V(t) (and Q, dO) have landed
    __syncthreads();
    mm_nt<DP, NB>(dOs, Vs, dp); // dp_ij = do_i . v_j
    __syncthreads();            // Vs fully read
    if (t + 1 < nkt) load_tile<NB, DP, VEC>(Vs, vh, k0 + NB, Tk, D);
    cp_commit();
    cp_wait<1>(); // K(t) has landed
    __syncthreads();
    mm_nt<DP, NB>(Qs, Ks, s);
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int qi = q0 + rg + 16 * i;
#pragma unroll
      for (int j = 0; j < NB / 8; j++) {
        int kj = k0 + cg + 8 * j;
        bool ok = kj < Tk && (!causal || kj <= qi);
        float p = ok ? exp2f(fmaf(s[i][j], sl2, -lse2[i])) : 0.f;
        dSs[(rg + 16 * i) * LP + cg + 8 * j] = p * (dp[i][j] - dl[i]);
      }
    }
    __syncthreads(); // dSs complete
    mm_nn<DP, NB>(dSs, Ks, acc);
    __syncthreads(); // Ks and dSs fully read
    if (t + 1 < nkt) load_tile<NB, DP, VEC>(Ks, kh, k0 + NB, Tk, D);
    cp_commit();
  }
  cp_wait<0>();
  const float mul[4] = {scale, scale, scale, scale};
  store_rows<DP, VEC>(dq + bh * Tq * D, acc, mul, q0, Tq, D);
}

// ---- bwd_kv: dkv [2,NB,Tk,D]: dk_j = scale * sum_i ds_ij q_i, dv_j = sum_i p_ij do_i;
// one block per key tile (64 keys), walking the query tiles that see it ----
template <int DP, bool VEC>
__global__ void __launch_bounds__(kThreads)
    bwd_kv_kernel(const float *q, const float *k, const float *v, const float *dout,
                  const float *lse, const float *delta, float *dkv, int64_t nbh, int Tq, int Tk,
                  int D, float scale, int causal) {
  constexpr int NQ = key_tile<DP>(), LD = DP + 4, LP = NQ + 8; // NQ: query tile
  extern __shared__ float4 smem4[];
  float *Ks = (float *)smem4;   // [64][LD]
  float *Vs = Ks + kRows * LD;  // [64][LD]
  float *Qs = Vs + kRows * LD;  // [NQ][LD]
  float *dOs = Qs + NQ * LD;    // [NQ][LD]
  float *Ps = dOs + NQ * LD;    // [64][LP]: p transposed (key rows)
  float *dSs = Ps + kRows * LP; // [64][LP]: ds transposed
  float *Ls = dSs + kRows * LP; // [NQ] lse
  float *Dl = Ls + NQ;          // [NQ] delta
  const int rg = threadIdx.x >> 3, cg = threadIdx.x & 7;
  // key tiles in order: under a causal mask the first see the most queries
  const int kt = (int)(blockIdx.x / nbh);
  const int64_t bh = (int64_t)(blockIdx.x % nbh);
  const int k0 = kt * kRows;
  const float *qh = q + bh * Tq * D, *doh = dout + bh * Tq * D;
  const float *lh = lse + bh * Tq, *dh = delta + bh * Tq;
  const int nqt = (Tq + NQ - 1) / NQ;
  const int qt0 = causal ? k0 / NQ : 0; // earlier query tiles see none of these keys
  const float sl2 = scale * kLog2e;

  // groups: {K, V, dO(qt0)}, {Q(qt0), lse, delta}; then per tile {dO}, {Q, lse, delta}
  load_tile<kRows, DP, VEC>(Ks, k + bh * Tk * D, k0, Tk, D);
  load_tile<kRows, DP, VEC>(Vs, v + bh * Tk * D, k0, Tk, D);
  if (qt0 < nqt) load_tile<NQ, DP, VEC>(dOs, doh, qt0 * NQ, Tq, D);
  cp_commit();
  if (qt0 < nqt) {
    load_tile<NQ, DP, VEC>(Qs, qh, qt0 * NQ, Tq, D);
    load_vec<NQ>(Ls, lh, qt0 * NQ, Tq);
    load_vec<NQ>(Dl, dh, qt0 * NQ, Tq);
  }
  cp_commit();

  float4 dk[4][DP / 32], dv[4][DP / 32];
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int h = 0; h < DP / 32; h++)
      dk[i][h] = dv[i][h] = make_float4(0.f, 0.f, 0.f, 0.f);
  for (int t = qt0; t < nqt; t++) {
    const int q0 = t * NQ;
    float dp[4][NQ / 8], s[4][NQ / 8];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
      for (int j = 0; j < NQ / 8; j++)
        dp[i][j] = 0.f, s[i][j] = 0.f;
    cp_wait<1>(); // K, V, dO(t) have landed
    __syncthreads();
    mm_nt<DP, NQ>(Vs, dOs, dp); // dp[key][query] = v_j . do_i
    cp_wait<0>();               // Q(t), lse, delta have landed
    __syncthreads();
    mm_nt<DP, NQ>(Ks, Qs, s);
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int kj = k0 + rg + 16 * i;
#pragma unroll
      for (int j = 0; j < NQ / 8; j++) {
        int c = cg + 8 * j, qi = q0 + c;
        bool ok = qi < Tq && (!causal || kj <= qi);
        float p = ok ? exp2f(fmaf(s[i][j], sl2, -Ls[c] * kLog2e)) : 0.f;
        Ps[(rg + 16 * i) * LP + c] = p;
        dSs[(rg + 16 * i) * LP + c] = p * (dp[i][j] - Dl[c]);
      }
    }
    __syncthreads(); // Ps and dSs complete
    mm_nn<DP, NQ>(Ps, dOs, dv);
    __syncthreads(); // dOs fully read
    if (t + 1 < nqt) load_tile<NQ, DP, VEC>(dOs, doh, q0 + NQ, Tq, D);
    cp_commit();
    mm_nn<DP, NQ>(dSs, Qs, dk);
    __syncthreads(); // Qs, Ls, Dl fully read
    if (t + 1 < nqt) {
      load_tile<NQ, DP, VEC>(Qs, qh, q0 + NQ, Tq, D);
      load_vec<NQ>(Ls, lh, q0 + NQ, Tq);
      load_vec<NQ>(Dl, dh, q0 + NQ, Tq);
    }
    cp_commit();
  }
  cp_wait<0>();
  const float one[4] = {1.f, 1.f, 1.f, 1.f}, sc[4] = {scale, scale, scale, scale};
  store_rows<DP, VEC>(dkv + bh * Tk * D, dk, sc, k0, Tk, D);
  store_rows<DP, VEC>(dkv + (nbh + bh) * Tk * D, dv, one, k0, Tk, D);
}

// ---- TF32 tensor-core path (the program allows TF32; f32, D = 32, 64 or 128) ----
// Same tiling as above (a block of 4 warps owns 64 A rows, 16 per warp, and
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

template <int N> __device__ __forceinline__ void tc_zero(float (&c)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; j++)
    c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.f;
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

// ---- generic path (f64, D > 128): one warp per row, the output row is the
// accumulator (each lane owns columns lane, lane+32, ...) ----

template <typename T> __device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

struct Warp {
  int64_t first, step;
  int lane;
  __device__ Warp() {
    first = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    step = ((int64_t)gridDim.x * blockDim.x) >> 5;
    lane = threadIdx.x & 31;
  }
};

// o [NB,Tq,D] (WITH_V) or lse [NB,Tq]; warp per query row
template <typename T, bool WITH_V>
__global__ void gen_fwd_kernel(const T *q, const T *k, const T *v, T *out, T *lse_out, int64_t nbh,
                               int Tq, int Tk, int D, T scale, int causal, const T *mask,
                               int64_t G) {
  Warp w;
  for (int64_t r = w.first; r < nbh * Tq; r += w.step) {
    const int64_t bh = r / Tq;
    const int i = (int)(r % Tq);
    const T *qi = q + r * D, *kh = k + bh * Tk * D, *vh = v + bh * Tk * D;
    T *oi = out + r * D;
    if (WITH_V)
      for (int d = w.lane; d < D; d += 32)
        oi[d] = 0;
    T m = -INFINITY, l = 0;
    const int n = causal ? min(Tk, i + 1) : Tk;
    const T *mr = mask ? mask + bh / G * Tk : nullptr;
    for (int j = 0; j < n; j++) {
      if (mr && mr[j] == 0) continue; // hidden key
      T s = 0;
      for (int d = w.lane; d < D; d += 32)
        s += qi[d] * kh[(int64_t)j * D + d];
      s = warp_sum(s) * scale;
      T mn = s > m ? s : m, a = exp(m - mn), p = exp(s - mn);
      l = l * a + p;
      m = mn;
      if (WITH_V)
        for (int d = w.lane; d < D; d += 32)
          oi[d] = oi[d] * a + p * vh[(int64_t)j * D + d];
    }
    // a query that sees no key (mask): zero output, lse -inf
    const T lse = l > 0 ? m + log(l) : -(T)INFINITY;
    if (WITH_V) {
      for (int d = w.lane; d < D; d += 32)
        oi[d] = l > 0 ? oi[d] / l : (T)0;
      if (lse_out && w.lane == 0) lse_out[r] = lse;
    } else if (w.lane == 0) {
      out[r] = lse;
    }
  }
}

// dq [NB,Tq,D]; warp per query row
template <typename T>
__global__ void gen_bwd_q_kernel(const T *q, const T *k, const T *v, const T *dout, const T *lse,
                                 const T *delta, T *dq, int64_t nbh, int Tq, int Tk, int D, T scale,
                                 int causal, const T *mask, int64_t G) {
  Warp w;
  for (int64_t r = w.first; r < nbh * Tq; r += w.step) {
    const int64_t bh = r / Tq;
    const int i = (int)(r % Tq);
    const T *qi = q + r * D, *doi = dout + r * D, *kh = k + bh * Tk * D, *vh = v + bh * Tk * D;
    T *dqi = dq + r * D;
    const T li = lse[r], di = delta[r];
    for (int d = w.lane; d < D; d += 32)
      dqi[d] = 0;
    const int n = causal ? min(Tk, i + 1) : Tk;
    const T *mr = mask ? mask + bh / G * Tk : nullptr;
    for (int j = 0; j < n; j++) {
      if (mr && mr[j] == 0) continue; // hidden key: no term
      T s = 0, dp = 0;
      for (int d = w.lane; d < D; d += 32) {
        s += qi[d] * kh[(int64_t)j * D + d];
        dp += doi[d] * vh[(int64_t)j * D + d];
      }
      s = warp_sum(s) * scale;
      dp = warp_sum(dp);
      T ds = exp(s - li) * (dp - di);
      for (int d = w.lane; d < D; d += 32)
        dqi[d] += ds * kh[(int64_t)j * D + d];
    }
    for (int d = w.lane; d < D; d += 32)
      dqi[d] *= scale;
  }
}

// dkv [2,NB,Tk,D]; warp per key row
template <typename T>
__global__ void gen_bwd_kv_kernel(const T *q, const T *k, const T *v, const T *dout, const T *lse,
                                  const T *delta, T *dkv, int64_t nbh, int Tq, int Tk, int D,
                                  T scale, int causal, const T *mask, int64_t G) {
  Warp w;
  for (int64_t r = w.first; r < nbh * Tk; r += w.step) {
    const int64_t bh = r / Tk;
    const int j = (int)(r % Tk);
    const T *kj = k + r * D, *vj = v + r * D, *qh = q + bh * Tq * D, *doh = dout + bh * Tq * D;
    T *dk = dkv + r * D, *dv = dkv + (nbh * Tk + r) * D;
    for (int d = w.lane; d < D; d += 32)
      dk[d] = 0, dv[d] = 0;
    const bool hidden = mask && mask[bh / G * Tk + j] == 0; // no query sees it
    for (int i = hidden ? Tq : causal ? j : 0; i < Tq; i++) {
      const T *qi = qh + (int64_t)i * D, *doi = doh + (int64_t)i * D;
      T s = 0, dp = 0;
      for (int d = w.lane; d < D; d += 32) {
        s += qi[d] * kj[d];
        dp += doi[d] * vj[d];
      }
      s = warp_sum(s) * scale;
      dp = warp_sum(dp);
      T p = exp(s - lse[bh * Tq + i]), ds = p * (dp - delta[bh * Tq + i]);
      for (int d = w.lane; d < D; d += 32) {
        dk[d] += ds * qi[d];
        dv[d] += p * doi[d];
      }
    }
    for (int d = w.lane; d < D; d += 32)
      dk[d] *= scale;
  }
}

// ---- host side ----

struct Geo {
  int64_t nbh; // product of the leading dims
  int Tq, Tk, D;
  const void *mask; // key mask (the ops' optional last input) or NULL
  int64_t G;        // heads per mask row
};

template <typename T> void gen_launch(const asg_cuda_call *c, const Geo &g) {
  const asg_step *s = c->s;
  cudaStream_t st = c->ctx->stream;
  const T *q = (const T *)c->in[0], *k = (const T *)c->in[1];
  const T *v = s->op != ASG_OP_ATTENTION_LSE ? (const T *)c->in[2] : k;
  const T *mask = (const T *)g.mask;
  T *out = (T *)c->out;
  T scale = (T)s->attr.f[0];
  int causal = (int)s->attr.i[0];
  int64_t rows = g.nbh * (s->op == ASG_OP_ATTENTION_BWD_KV ? g.Tk : g.Tq);
  unsigned grid = asg_cuda_blocks(rows * 32, kGenThreads);
  switch (s->op) {
  case ASG_OP_ATTENTION:
    gen_fwd_kernel<T, true><<<grid, kGenThreads, 0, st>>>(
        q, k, v, out, (T *)c->stats_out, g.nbh, g.Tq, g.Tk, g.D, scale, causal, mask, g.G);
    break;
  case ASG_OP_ATTENTION_LSE:
    gen_fwd_kernel<T, false><<<grid, kGenThreads, 0, st>>>(q, k, k, out, nullptr, g.nbh, g.Tq, g.Tk,
                                                           g.D, scale, causal, mask, g.G);
    break;
  case ASG_OP_ATTENTION_BWD_Q:
    gen_bwd_q_kernel<T><<<grid, kGenThreads, 0, st>>>(
        q, k, v, (const T *)c->in[3], (const T *)c->in[4], (const T *)c->in[5], out, g.nbh, g.Tq,
        g.Tk, g.D, scale, causal, mask, g.G);
    break;
  default:
    gen_bwd_kv_kernel<T><<<grid, kGenThreads, 0, st>>>(
        q, k, v, (const T *)c->in[3], (const T *)c->in[4], (const T *)c->in[5], out, g.nbh, g.Tq,
        g.Tk, g.D, scale, causal, mask, g.G);
    break;
  }
}

// Raises the kernel's dynamic shared-memory limit (it is a per-function
// attribute, not a stream operation, so it is legal during graph capture).
template <typename K> bool allow_smem(K kern, size_t bytes) {
  return cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) ==
         cudaSuccess;
}

template <int DP> size_t tiled_smem(asg_op op) {
  int f = op == ASG_OP_ATTENTION         ? fwd_floats<DP>(true)
          : op == ASG_OP_ATTENTION_LSE   ? fwd_floats<DP>(false)
          : op == ASG_OP_ATTENTION_BWD_Q ? bwd_q_floats<DP>()
                                         : bwd_kv_floats<DP>();
  return (size_t)f * sizeof(float);
}

template <int DP, bool VEC> bool tiled_launch(const asg_cuda_call *c, const Geo &g) {
  const asg_step *s = c->s;
  cudaStream_t st = c->ctx->stream;
  const float *q = (const float *)c->in[0], *k = (const float *)c->in[1];
  const float *v = s->n_in > 2 ? (const float *)c->in[2] : q;
  float *out = (float *)c->out;
  float scale = (float)s->attr.f[0];
  int causal = (int)s->attr.i[0];
  size_t smem = tiled_smem<DP>(s->op);
  unsigned qblocks = (unsigned)(((g.Tq + kRows - 1) / kRows) * g.nbh);
  unsigned kblocks = (unsigned)(((g.Tk + kRows - 1) / kRows) * g.nbh);
  switch (s->op) {
  case ASG_OP_ATTENTION: {
    auto kern = fwd_kernel<DP, VEC, true>;
    if (!allow_smem(kern, smem)) return false;
    kern<<<qblocks, kThreads, smem, st>>>(q, k, v, out, (float *)c->stats_out, g.nbh, g.Tq, g.Tk,
                                          g.D, scale, causal);
    break;
  }
  case ASG_OP_ATTENTION_LSE: {
    auto kern = fwd_kernel<DP, VEC, false>;
    if (!allow_smem(kern, smem)) return false;
    kern<<<qblocks, kThreads, smem, st>>>(q, k, k, out, nullptr, g.nbh, g.Tq, g.Tk, g.D, scale,
                                          causal);
    break;
  }
  case ASG_OP_ATTENTION_BWD_Q: {
    auto kern = bwd_q_kernel<DP, VEC>;
    if (!allow_smem(kern, smem)) return false;
    kern<<<qblocks, kThreads, smem, st>>>(q, k, v, (const float *)c->in[3], (const float *)c->in[4],
                                          (const float *)c->in[5], out, g.nbh, g.Tq, g.Tk, g.D,
                                          scale, causal);
    break;
  }
  default: {
    auto kern = bwd_kv_kernel<DP, VEC>;
    if (!allow_smem(kern, smem)) return false;
    kern<<<kblocks, kThreads, smem, st>>>(q, k, v, (const float *)c->in[3], (const float *)c->in[4],
                                          (const float *)c->in[5], out, g.nbh, g.Tq, g.Tk, g.D,
                                          scale, causal);
    break;
  }
  }
  return true;
}

template <int DP> bool tiled_dispatch(const asg_cuda_call *c, const Geo &g, bool vec) {
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->ctx->device) !=
          cudaSuccess ||
      tiled_smem<DP>(c->s->op) > (size_t)optin) {
    cudaGetLastError();
    return false;
  }
  return vec ? tiled_launch<DP, true>(c, g) : tiled_launch<DP, false>(c, g);
}

// The TF32 kernels: false (nothing launched) when the device lacks the shared
// memory or the kernels were built for a PTX target without mma.sync (< 8.0).
template <typename K> bool tc_ready(K kern, size_t smem, int optin) {
  cudaFuncAttributes a;
  if (smem > (size_t)optin || cudaFuncGetAttributes(&a, kern) != cudaSuccess || a.ptxVersion < 80 ||
      !allow_smem(kern, smem)) {
    cudaGetLastError();
    return false;
  }
  return true;
}

// The kernels of one tensor-core path for one D, with their shared bytes:
// [0] lse only, [1] forward with v, [2] bwd_q, [3] bwd_kv.
typedef void (*fwd_fn)(const float *, const float *, const float *, float *, float *, int64_t, int,
                       int, float, int, const float *, int64_t);
typedef void (*bwd_fn)(const float *, const float *, const float *, const float *, const float *,
                       const float *, float *, int64_t, int, int, float, int, const float *,
                       int64_t);
struct MmaSet {
  fwd_fn fwd[2];
  bwd_fn bwd_q, bwd_kv;
  size_t smem[4];
};

template <int DP> MmaSet tf32_set() {
  return {{tc_fwd_kernel<DP, false>, tc_fwd_kernel<DP, true>},
          tc_bwd_q_kernel<DP>,
          tc_bwd_kv_kernel<DP>,
          {tc_fwd_floats<DP>(false) * sizeof(float), tc_fwd_floats<DP>(true) * sizeof(float),
           tc_bwd_q_floats<DP>() * sizeof(float), tc_bwd_kv_floats<DP>() * sizeof(float)}};
}

template <int DP, int HO> MmaSet half_set() {
  return {{hf_fwd_kernel<DP, HO, false>, hf_fwd_kernel<DP, HO, true>},
          hf_bwd_q_kernel<DP, HO>,
          hf_bwd_kv_kernel<DP, HO>,
          {hf_bytes<DP>(1, 1, false), hf_bytes<DP>(2, 1, false), hf_bytes<DP>(2, 2, false),
           hf_bytes<DP>(2, 2, true)}};
}

bool mma_launch(const asg_cuda_call *c, const Geo &g, const MmaSet &m) {
  const asg_step *s = c->s;
  cudaStream_t st = c->ctx->stream;
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->ctx->device) !=
      cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  const float *q = (const float *)c->in[0], *k = (const float *)c->in[1];
  const float *v = s->op != ASG_OP_ATTENTION_LSE ? (const float *)c->in[2] : q;
  const float *mask = (const float *)g.mask;
  float *out = (float *)c->out;
  float scale = (float)s->attr.f[0];
  int causal = (int)s->attr.i[0];
  unsigned qblocks = (unsigned)(((g.Tq + kRows - 1) / kRows) * g.nbh);
  unsigned kblocks = (unsigned)(((g.Tk + kRows - 1) / kRows) * g.nbh);
  switch (s->op) {
  case ASG_OP_ATTENTION:
  case ASG_OP_ATTENTION_LSE: {
    const int with_v = s->op == ASG_OP_ATTENTION;
    if (!tc_ready(m.fwd[with_v], m.smem[with_v], optin)) return false;
    m.fwd[with_v]<<<qblocks, kThreads, m.smem[with_v], st>>>(
        q, k, v, out, with_v ? (float *)c->stats_out : nullptr, g.nbh, g.Tq, g.Tk, scale, causal,
        mask, g.G);
    break;
  }
  case ASG_OP_ATTENTION_BWD_Q:
    if (!tc_ready(m.bwd_q, m.smem[2], optin)) return false;
    m.bwd_q<<<qblocks, kThreads, m.smem[2], st>>>(q, k, v, (const float *)c->in[3],
                                                  (const float *)c->in[4], (const float *)c->in[5],
                                                  out, g.nbh, g.Tq, g.Tk, scale, causal, mask, g.G);
    break;
  default:
    if (!tc_ready(m.bwd_kv, m.smem[3], optin)) return false;
    m.bwd_kv<<<kblocks, kThreads, m.smem[3], st>>>(
        q, k, v, (const float *)c->in[3], (const float *)c->in[4], (const float *)c->in[5], out,
        g.nbh, g.Tq, g.Tk, scale, causal, mask, g.G);
    break;
  }
  return true;
}

// The tensor-core paths: 16-bit operands when the program's products take
// them (ASG_CUDA_HALF_ATTENTION=0 keeps TF32 there, for comparisons), else TF32.
bool mma_dispatch(const asg_cuda_call *c, const Geo &g) {
  static int half_off = -1;
  if (half_off < 0) {
    const char *e = getenv("ASG_CUDA_HALF_ATTENTION");
    half_off = e && e[0] == '0';
  }
  if ((c->bf16 || c->fp16) && !half_off) {
    bool done;
    if (c->bf16)
      done = g.D == 32   ? mma_launch(c, g, half_set<32, kHalfBf16>())
             : g.D == 64 ? mma_launch(c, g, half_set<64, kHalfBf16>())
                         : mma_launch(c, g, half_set<128, kHalfBf16>());
    else
      done = g.D == 32   ? mma_launch(c, g, half_set<32, kHalfFp16>())
             : g.D == 64 ? mma_launch(c, g, half_set<64, kHalfFp16>())
                         : mma_launch(c, g, half_set<128, kHalfFp16>());
    if (done) return true;
  }
  return g.D == 32   ? mma_launch(c, g, tf32_set<32>())
         : g.D == 64 ? mma_launch(c, g, tf32_set<64>())
                     : mma_launch(c, g, tf32_set<128>());
}

// 16-byte copies need D % 4 == 0 and 16-byte aligned buffers.
bool vec_ok(const asg_cuda_call *c, int D) {
  if (D % 4) return false;
  if ((uintptr_t)c->out % 16) return false;
  for (int i = 0; i < c->s->n_in; i++)
    if ((uintptr_t)c->in[i] % 16) return false;
  return true;
}

asg_status attention_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->in[0].dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  asg_shape qs = s->in[0].shape, ks = s->in[1].shape;
  if (qs.ndim < 2 || ks.ndim < 2)
    return asg__error(ASG_ERR_SHAPE, "cuda: %s: attention needs [..., T, D] inputs", s->label);
  Geo g;
  g.nbh = 1;
  for (int d = 0; d < qs.ndim - 2; d++)
    g.nbh *= qs.dims[d];
  g.Tq = (int)qs.dims[qs.ndim - 2];
  g.D = (int)qs.dims[qs.ndim - 1];
  g.Tk = (int)ks.dims[ks.ndim - 2];
  const int mi = asg__attention_mask(s, &g.G);
  g.mask = mi >= 0 ? c->in[mi] : nullptr;
  if (asg_shape_numel(s->out.shape) == 0) return ASG_OK;
  if (g.nbh == 0 || g.Tq == 0 || g.Tk == 0 || g.D == 0) { // nothing attends: zero gradients
    cudaMemsetAsync(c->out, 0, (size_t)asg_shape_numel(s->out.shape) * asg_dtype_size(dt),
                    c->ctx->stream);
    return asg_cuda_check(c);
  }
  if (s->op == ASG_OP_ATTENTION_LSE && c->stats_in) { // the forward step kept it
    cudaMemcpyAsync(c->out, c->stats_in, (size_t)asg_shape_numel(s->out.shape) * asg_dtype_size(dt),
                    cudaMemcpyDeviceToDevice, c->ctx->stream);
    return asg_cuda_check(c);
  }
  bool done = false; // a key mask takes the tensor-core or else the generic kernels
  // a few query rows over many keys (decode steps): split over the keys
  if (dt == ASG_F32) done = asg_cuda_attention_decode(c, (const float *)g.mask, g.G);
  if (!done && dt == ASG_F32 && c->tf32 && (g.D == 32 || g.D == 64 || g.D == 128) && vec_ok(c, g.D))
    done = mma_dispatch(c, g);
  if (!done && !g.mask && dt == ASG_F32 && g.D <= 128) {
    bool vec = vec_ok(c, g.D);
    if (g.D <= 32)
      done = tiled_dispatch<32>(c, g, vec);
    else if (g.D <= 64)
      done = tiled_dispatch<64>(c, g, vec);
    else
      done = tiled_dispatch<128>(c, g, vec);
  }
  if (!done) { // f64, D > 128, or not enough shared memory on this device
    cudaGetLastError();
    if (dt == ASG_F32)
      gen_launch<float>(c, g);
    else
      gen_launch<double>(c, g);
  }
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_attention(asg_cuda_kernel *t) {
  t[ASG_OP_ATTENTION].run = attention_run;
  t[ASG_OP_ATTENTION].ws = asg_cuda_attention_decode_ws;
  t[ASG_OP_ATTENTION_LSE].run = attention_run;
  t[ASG_OP_ATTENTION_BWD_Q].run = attention_run;
  t[ASG_OP_ATTENTION_BWD_KV].run = attention_run;
}
