// Fused attention for a few query rows over many keys (a decode step over a
// KV cache: Tq = 1, or the G query heads of a grouped key/value head), split
// over the keys ("flash decoding"): the generic kernel's one warp per query
// row would walk the whole cache alone. Forward only (ATTENTION), f32.
//
//   split:   block (bh, s) takes keys [64 s, 64 s + 64) of head bh for all
//            Tq rows: partial max m, sum l = sum exp(x - m) and
//            o = sum exp(x - m) v, into the workspace;
//   combine: block per row merges the splits: o = sum_s e^(m_s - M) o_s / L.
// Shapes: q [NB, Tq, D], k and v [NB, Tk, D], mask [NB / G, Tk] or none,
// out [NB, Tq, D], lse [NB, Tq] (kept for a backward step, if asked);
// D a multiple of 4 (float4 loads), at most 256. Both kernels are launched
// dependent (cuda_pdl.cuh): a split prefetches its k and v rows into L2
// while the kernel before it (the cache write) still runs.
#include <math.h>

#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_pdl.cuh"

namespace {

constexpr int kRows = 8;               // query rows a block serves
constexpr int kThreads = 128;          // 4 warps
constexpr int kTpk = 2;                // threads a key for the scores
constexpr int kKeys = kThreads / kTpk; // keys a split takes (one a lane for the softmax)
constexpr int kMaxD = 256;             // head size
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1)
    x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1)
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

int splits(int Tk) { return (Tk + kKeys - 1) / kKeys; }

// Every load of a thread is issued before its values are used (its part of
// a key row, a run of v rows), so a split costs a few memory latencies, not
// one per key (the first version, a warp per key and 16 keys in turn, took
// ~20 us a layer on an H100 for a 577-row cache), and splits of 64 keys
// give the GPU more blocks to keep loads in flight (batch 1: 12 heads).
//   scores: kTpk threads a key, each over every kTpk-th float4 of the row,
//           joined by shuffles;
//   o_s:    thread (g, c) sums keys g, g + KG, ... of float4 column c of v,
//           KG = kThreads / (D / 4) key groups, folded in order after.
__global__ void __launch_bounds__(kThreads)
    split_kernel(const float *q, const float *k, const float *v, float *pm, float *pl, float *po,
                 int Tq, int Tk, int D, float scale, int causal, const float *mask, int64_t G) {
  __shared__ float4 qs4[kRows * kMaxD / 4]; // [Tq, D], scaled
  __shared__ float ps[kRows * kKeys];       // [Tq, keys]: scores, then exp(x - m)
  __shared__ float4 red4[kThreads * kRows]; // o_s partials [KG, Tq, D / 4]
  const int64_t bh = blockIdx.x;
  const int sp = blockIdx.y, ns = gridDim.y, j0 = sp * kKeys, nk = min(kKeys, Tk - j0);
  const int t = threadIdx.x, warp = t / 32, lane = t % 32, D4 = D / 4;
  const float4 *kh = reinterpret_cast<const float4 *>(k + bh * Tk * D);
  const float4 *vh = reinterpret_cast<const float4 *>(v + bh * Tk * D);
  const float *mr = mask ? mask + bh / G * Tk : nullptr;
  l2_prefetch(kh + (int64_t)j0 * D4, sizeof(float4) * (size_t)nk * D4, t, kThreads);
  l2_prefetch(vh + (int64_t)j0 * D4, sizeof(float4) * (size_t)nk * D4, t, kThreads);
  pdl_wait();
  pdl_trigger();
  // a split the mask hides entirely (cache rows not written yet) reads no k or v
  const int kk = t / kTpk, part = t % kTpk; // the key this thread scores
  const bool seen = kk < nk && (!mr || mr[j0 + kk] != 0.f);
  if (!__syncthreads_or(seen)) {
    for (int i = t; i < Tq; i += kThreads) {
      pm[(bh * ns + sp) * Tq + i] = -INFINITY; // combine skips it (po unread)
      pl[(bh * ns + sp) * Tq + i] = 0.f;
    }
    return;
  }
  const float4 *qh = reinterpret_cast<const float4 *>(q + bh * Tq * D);
  for (int x = t; x < Tq * D4; x += kThreads) {
    float4 a = qh[x];
    qs4[x] = make_float4(a.x * scale, a.y * scale, a.z * scale, a.w * scale);
  }
  __syncthreads();
  { // scores of key j0 + kk for every row
    float s[kRows];
#pragma unroll
    for (int i = 0; i < kRows; i++)
      s[i] = 0.f;
    if (seen) {
      const float4 *kr = kh + (int64_t)(j0 + kk) * D4;
#pragma unroll 4
      for (int c = part; c < D4; c += kTpk) {
        const float4 kv = kr[c];
#pragma unroll
        for (int i = 0; i < kRows; i++)
          if (i < Tq) {
            const float4 qv = qs4[i * D4 + c];
            s[i] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
          }
      }
    }
#pragma unroll
    for (int i = 0; i < kRows; i++) // the key's kTpk lanes are adjacent
      for (int o = 1; o < kTpk; o <<= 1)
        s[i] += __shfl_xor_sync(0xffffffffu, s[i], o);
    if (part == 0)
      for (int i = 0; i < Tq; i++)
        ps[i * kKeys + kk] = seen && (!causal || j0 + kk <= i) ? s[i] : -INFINITY;
  }
  __syncthreads();
  // per row (a warp each): the split's max and sum; probabilities in place
  for (int i = warp; i < Tq; i += kWarps) {
    float m = -INFINITY;
    for (int jj = lane; jj < nk; jj += 32)
      m = fmaxf(m, ps[i * kKeys + jj]);
    m = warp_max(m);
    float l = 0.f;
    for (int jj = lane; jj < kKeys; jj += 32) {
      const float p = jj >= nk || m == -INFINITY ? 0.f : __expf(ps[i * kKeys + jj] - m);
      ps[i * kKeys + jj] = p;
      l += p;
    }
    l = warp_sum(l);
    if (lane == 0) {
      pm[(bh * ns + sp) * Tq + i] = m;
      pl[(bh * ns + sp) * Tq + i] = l;
    }
  }
  __syncthreads();
  // o_s [Tq, D]: thread (g, c) over keys g, g + KG, ...
  const int KG = kThreads / D4, g = t / D4, c = t % D4;
  if (g < KG) {
    float4 acc[kRows];
#pragma unroll
    for (int i = 0; i < kRows; i++)
      acc[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    // kBatch rows of v loaded before any is used; a hidden key's row is read
    // (it lies in k's bounds) but never multiplied: p = 0 there, and v may
    // hold anything (a cache row not written yet)
    constexpr int kBatch = 8;
    for (int jb = g; jb < nk; jb += kBatch * KG) {
      float4 vv[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; u++) {
        const int jj = jb + u * KG;
        vv[u] = jj < nk ? vh[(int64_t)(j0 + jj) * D4 + c] : make_float4(0.f, 0.f, 0.f, 0.f);
      }
#pragma unroll
      for (int u = 0; u < kBatch; u++) {
        const int jj = jb + u * KG;
        if (jj >= nk) break;
#pragma unroll
        for (int i = 0; i < kRows; i++) {
          const float p = i < Tq ? ps[i * kKeys + jj] : 0.f;
          if (p != 0.f) {
            acc[i].x += p * vv[u].x, acc[i].y += p * vv[u].y;
            acc[i].z += p * vv[u].z, acc[i].w += p * vv[u].w;
          }
        }
      }
    }
    for (int i = 0; i < Tq; i++)
      red4[(g * Tq + i) * D4 + c] = acc[i];
  }
  __syncthreads();
  for (int x = t; x < Tq * D4; x += kThreads) {
    float4 o = red4[x];
    for (int q2 = 1; q2 < KG; q2++) {
      const float4 r = red4[q2 * Tq * D4 + x];
      o.x += r.x, o.y += r.y, o.z += r.z, o.w += r.w;
    }
    reinterpret_cast<float4 *>(po)[(bh * ns + sp) * Tq * D4 + x] = o;
  }
}

// A block-wide max (kMax) or sum of v, the same in every thread: warps in
// order (deterministic); sh holds kWarps values.
template <bool kMax> __device__ float block_reduce(float v, float *sh) {
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads(); // sh may still be read by a previous call
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  float r = sh[0];
  for (int w = 1; w < kWarps; w++)
    r = kMax ? fmaxf(r, sh[w]) : r + sh[w];
  return r;
}

// Block per row r = (bh, i): M = max_s m_s, L = sum_s l_s e^(m_s - M),
// out = sum_s e^(m_s - M) o_s / L. The splits' values are loaded kBatch at
// a time before any is used (a loop of dependent loads over ~20 splits was
// the step's slowest part); a split the mask hid (m_s = -inf) is skipped,
// its o_s unwritten.
__global__ void __launch_bounds__(kThreads)
    combine_kernel(const float *pm, const float *pl, const float *po, float *out, float *lse,
                   int Tq, int D, int ns) {
  __shared__ float sh[kWarps];
  const int64_t r = blockIdx.x, bh = r / Tq;
  const int i = (int)(r % Tq), t = threadIdx.x;
  pdl_wait();
  pdl_trigger();
  const float *mr = pm + bh * ns * Tq + i, *lr = pl + bh * ns * Tq + i; // split s at s * Tq
  float m = -INFINITY;
  for (int sp = t; sp < ns; sp += kThreads)
    m = fmaxf(m, mr[(int64_t)sp * Tq]);
  const float M = block_reduce<true>(m, sh);
  float l = 0.f;
  for (int sp = t; sp < ns; sp += kThreads) {
    const float ms = mr[(int64_t)sp * Tq];
    if (ms != -INFINITY) l += lr[(int64_t)sp * Tq] * __expf(ms - M);
  }
  const float L = block_reduce<false>(l, sh);
  // a row that sees no key: zero output, lse -inf (as the other kernels)
  constexpr int kBatch = 8;
  for (int d = t; d < D; d += kThreads) {
    float acc = 0.f;
    for (int s0 = 0; s0 < ns; s0 += kBatch) {
      float ms[kBatch], os[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; u++) {
        const int sp = s0 + u;
        ms[u] = sp < ns ? mr[(int64_t)sp * Tq] : -INFINITY;
        os[u] = sp < ns ? po[((bh * ns + sp) * Tq + i) * D + d] : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kBatch; u++)
        if (ms[u] != -INFINITY) acc += os[u] * __expf(ms[u] - M);
    }
    out[r * D + d] = L > 0.f ? acc / L : 0.f;
  }
  if (lse && t == 0) lse[r] = L > 0.f ? M + logf(L) : -INFINITY;
}

// The geometry a step would take this path with (Tq, Tk, D, NB), or false.
bool geometry(const asg_step *s, int *Tq, int *Tk, int *D, int64_t *nbh) {
  if (s->op != ASG_OP_ATTENTION || s->in[0].dtype != ASG_F32) return false;
  asg_shape qs = s->in[0].shape, ks = s->in[1].shape;
  if (qs.ndim < 2 || ks.ndim < 2) return false;
  *Tq = (int)qs.dims[qs.ndim - 2];
  *D = (int)qs.dims[qs.ndim - 1];
  *Tk = (int)ks.dims[ks.ndim - 2];
  *nbh = 1;
  for (int d = 0; d < qs.ndim - 2; d++)
    *nbh *= qs.dims[d];
  // more keys than query rows: a decode step over a cache of any length (the
  // generic kernel's warp per row took ~95 us for 81 keys on an H100)
  return *Tq >= 1 && *Tq <= kRows && (*Tk >= kKeys || *Tk > *Tq) && *D >= 4 && *D % 4 == 0 &&
         *D <= kMaxD && *nbh >= 1;
}

} // namespace

extern "C" size_t asg_cuda_attention_decode_ws(const asg_step *s, unsigned plan_flags) {
  (void)plan_flags;
  int Tq, Tk, D;
  int64_t nbh;
  if (!geometry(s, &Tq, &Tk, &D, &nbh)) return 0;
  return (size_t)nbh * (size_t)splits(Tk) * (size_t)Tq * (size_t)(D + 2) * sizeof(float);
}

extern "C" bool asg_cuda_attention_decode(const asg_cuda_call *c, const float *mask, int64_t G) {
  int Tq, Tk, D;
  int64_t nbh;
  if (!c->ws || !geometry(c->s, &Tq, &Tk, &D, &nbh) || nbh > 0x7fffffff) return false;
  for (int i = 0; i < 3; i++) // float4 loads
    if ((uintptr_t)c->in[i] % 16) return false;
  const int ns = splits(Tk);
  // the partial outputs first: 16-byte aligned as the workspace
  float *po = (float *)c->ws, *pm = po + nbh * ns * Tq * D, *pl = pm + nbh * ns * Tq;
  const float *q = (const float *)c->in[0], *k = (const float *)c->in[1];
  const float *v = (const float *)c->in[2];
  pdl_launch(c->ctx, split_kernel, dim3((unsigned)nbh, (unsigned)ns), kThreads, 0, q, k, v, pm, pl,
             po, Tq, Tk, D, (float)c->s->attr.f[0], (int)c->s->attr.i[0], mask, G);
  pdl_launch(c->ctx, combine_kernel, (unsigned)(nbh * Tq), kThreads, 0, pm, pl, po, (float *)c->out,
             (float *)c->stats_out, Tq, D, ns);
  return true;
}
