// CUDA fused attention, fp32 tiled path (f32, D <= 128, no key mask): the
// register-tiled fp32 FMA kernels (forward, bwd_q, bwd_kv) and their
// launchers. The path is described in cuda_attention.cu; the dispatch there
// calls tiled_dispatch.
#include "backends/cuda/cuda_attention_tile.cuh"

namespace asg_cuda_attn {
namespace {

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

// ---- host side ----

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

} // namespace

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

template bool tiled_dispatch<32>(const asg_cuda_call *c, const Geo &g, bool vec);
template bool tiled_dispatch<64>(const asg_cuda_call *c, const Geo &g, bool vec);
template bool tiled_dispatch<128>(const asg_cuda_call *c, const Geo &g, bool vec);

} // namespace asg_cuda_attn
