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
// out [NB, Tq, D], lse [NB, Tq] (kept for a backward step, if asked).
#include <math.h>

#include "backends/cuda/cuda.h"

namespace {

constexpr int kRows = 8;      // query rows a block serves
constexpr int kKeys = 64;     // keys a split takes
constexpr int kThreads = 128; // 4 warps
constexpr int kMaxD = 256;    // head size: D / 32 values a lane

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

__global__ void __launch_bounds__(kThreads)
    split_kernel(const float *q, const float *k, const float *v, float *pm, float *pl, float *po,
                 int Tq, int Tk, int D, float scale, int causal, const float *mask, int64_t G) {
  __shared__ float qs[kRows * kMaxD]; // [Tq, D], scaled
  __shared__ float ps[kRows * kKeys]; // [Tq, keys]: scores, then exp(x - m)
  const int64_t bh = blockIdx.x;
  const int sp = blockIdx.y, ns = gridDim.y, j0 = sp * kKeys, nk = min(kKeys, Tk - j0);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float *kh = k + bh * Tk * D, *vh = v + bh * Tk * D;
  const float *mr = mask ? mask + bh / G * Tk : nullptr;
  // a split the mask hides entirely (cache rows not written yet) reads no k or v
  int any = !mr;
  for (int jj = threadIdx.x; !any && jj < nk; jj += kThreads)
    any = mr[j0 + jj] != 0.f;
  if (!__syncthreads_or(any)) {
    for (int i = threadIdx.x; i < Tq; i += kThreads) {
      pm[(bh * ns + sp) * Tq + i] = -INFINITY; // combine skips it (po unread)
      pl[(bh * ns + sp) * Tq + i] = 0.f;
    }
    return;
  }
  for (int x = threadIdx.x; x < Tq * D; x += kThreads)
    qs[x] = q[bh * Tq * D + x] * scale;
  __syncthreads();
  // scores: a warp per key, its row of k held in registers for every query row
  for (int jj = warp; jj < nk; jj += kThreads / 32) {
    const int j = j0 + jj;
    const bool seen = !mr || mr[j] != 0.f;
    float kr[kMaxD / 32];
#pragma unroll
    for (int t = 0; t < kMaxD / 32; t++) {
      const int d = lane + 32 * t;
      kr[t] = seen && d < D ? kh[(int64_t)j * D + d] : 0.f;
    }
    for (int i = 0; i < Tq; i++) {
      float s = 0.f;
#pragma unroll
      for (int t = 0; t < kMaxD / 32; t++) {
        const int d = lane + 32 * t;
        if (d < D) s += qs[i * D + d] * kr[t];
      }
      s = warp_sum(s);
      if (lane == 0) ps[i * kKeys + jj] = seen && (!causal || j <= i) ? s : -INFINITY;
    }
  }
  __syncthreads();
  // per row: the split's max and sum; probabilities in place
  for (int i = warp; i < Tq; i += kThreads / 32) {
    float m = -INFINITY;
    for (int jj = lane; jj < nk; jj += 32)
      m = fmaxf(m, ps[i * kKeys + jj]);
    m = warp_max(m);
    float l = 0.f;
    for (int jj = lane; jj < nk; jj += 32) {
      const float p = m == -INFINITY ? 0.f : __expf(ps[i * kKeys + jj] - m);
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
  // o_s [Tq, D]: threads along d read rows of v coalesced
  for (int x = threadIdx.x; x < Tq * D; x += kThreads) {
    const int i = x / D, d = x % D;
    float acc = 0.f;
    for (int jj = 0; jj < nk; jj++) {
      const float p = ps[i * kKeys + jj];
      if (p != 0.f) acc += p * vh[(int64_t)(j0 + jj) * D + d]; // hidden keys: v unread
    }
    po[((bh * ns + sp) * Tq + i) * D + d] = acc;
  }
}

__global__ void __launch_bounds__(kThreads)
    combine_kernel(const float *pm, const float *pl, const float *po, float *out, float *lse,
                   int Tq, int D, int ns) {
  const int64_t r = blockIdx.x, bh = r / Tq;
  const int i = (int)(r % Tq);
  float M = -INFINITY;
  for (int s = 0; s < ns; s++)
    M = fmaxf(M, pm[(bh * ns + s) * Tq + i]);
  float L = 0.f;
  for (int s = 0; s < ns; s++) {
    const float m = pm[(bh * ns + s) * Tq + i];
    if (m != -INFINITY) L += pl[(bh * ns + s) * Tq + i] * __expf(m - M);
  }
  // a row that sees no key: zero output, lse -inf (as the other kernels)
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float acc = 0.f;
    for (int s = 0; s < ns; s++) {
      const float m = pm[(bh * ns + s) * Tq + i];
      if (m != -INFINITY) acc += po[((bh * ns + s) * Tq + i) * D + d] * __expf(m - M);
    }
    out[r * D + d] = L > 0.f ? acc / L : 0.f;
  }
  if (lse && threadIdx.x == 0) lse[r] = L > 0.f ? M + logf(L) : -INFINITY;
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
  return *Tq >= 1 && *Tq <= kRows && (*Tk >= 2 * kKeys || *Tk > *Tq) && *D >= 1 && *D <= kMaxD &&
         *nbh >= 1;
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
  const int ns = splits(Tk);
  float *pm = (float *)c->ws, *pl = pm + nbh * ns * Tq, *po = pl + nbh * ns * Tq;
  const float *q = (const float *)c->in[0], *k = (const float *)c->in[1];
  const float *v = (const float *)c->in[2];
  cudaStream_t st = c->ctx->stream;
  split_kernel<<<dim3((unsigned)nbh, (unsigned)ns), kThreads, 0, st>>>(
      q, k, v, pm, pl, po, Tq, Tk, D, (float)c->s->attr.f[0], (int)c->s->attr.i[0], mask, G);
  combine_kernel<<<(unsigned)(nbh * Tq), kThreads, 0, st>>>(pm, pl, po, (float *)c->out,
                                                            (float *)c->stats_out, Tq, D, ns);
  return true;
}
