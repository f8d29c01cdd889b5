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
// kernels in cuda_attention_tc.cu); without it the fp32 kernels keep the
// ~1e-4 parity tolerance. Programs with 16-bit products (bf16_matmul /
// fp16_matmul) run the hf_* kernels: the same tiling with bf16 / fp16
// m16n8k16 products (cuda_attention_hf.cu).
// Causal tiles entirely above the diagonal are never visited. D is
// zero-padded to 32, 64 or 128 in shared memory, so odd D costs padding, not
// a separate kernel; D not a multiple of 4 (or unaligned buffers) copies
// 4-byte elements instead of 16-byte vectors. A key mask
// (asg_attention_masked) is read by the tensor-core kernels; f64, D > 128,
// strict f32 with a mask and devices with too little shared memory use a
// generic warp-per-row kernel that accumulates in its output row.
//
// Files: this one holds the generic kernels and the dispatch (attention_run);
// cuda_attention_f32.cu the fp32 tiled kernels, cuda_attention_tc.cu the TF32
// ones, cuda_attention_hf.cu the bf16 / fp16 ones; cuda_attention_tile.cuh the
// device helpers they share, cuda_attention.h the constants, types and
// launchers shared across the files. The split-over-keys decode kernels are
// in cuda_attention_decode.cu.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_attention.h"
#include "backends/cuda/cuda_half.cuh"
#include "runtime/layout.h"

#include <math.h>
#include <stdlib.h>

namespace asg_cuda_attn {
namespace {

constexpr int kGenThreads = 256;

asg_status dtype_error(const asg_cuda_call *c) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype not supported", c->s->label);
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
    if (s->op != ASG_OP_ATTENTION || !c->stats_out || g.nbh * g.Tq == 0) return asg_cuda_check(c);
    // the lse as well (the generic kernel's lse form: -inf where no key is seen)
    asg_cuda_call lc = *c;
    lc.out = c->stats_out;
    lc.stats_out = nullptr;
    asg_step ls = *s;
    ls.op = ASG_OP_ATTENTION_LSE;
    lc.s = &ls;
    if (dt == ASG_F32)
      gen_launch<float>(&lc, g);
    else
      gen_launch<double>(&lc, g);
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
} // namespace asg_cuda_attn

extern "C" void asg_cuda_register_attention(asg_cuda_kernel *t) {
  t[ASG_OP_ATTENTION].run = asg_cuda_attn::attention_run;
  t[ASG_OP_ATTENTION].ws = asg_cuda_attention_decode_ws;
  t[ASG_OP_ATTENTION_LSE].run = asg_cuda_attn::attention_run;
  t[ASG_OP_ATTENTION_BWD_Q].run = asg_cuda_attn::attention_run;
  t[ASG_OP_ATTENTION_BWD_KV].run = asg_cuda_attn::attention_run;
}
