// CUDA kernels of the index family: permute, slice, slice_bwd, concat,
// gather, scatter_add, one_hot. Data movement is dtype-generic: kernels move
// "units" of 2, 4, 8 or 16 bytes, the widest that divides every byte length,
// stride and address involved (rows of 4 floats move as one 16-byte load).
// Only scatter_add and one_hot do arithmetic per dtype. Every kernel writes
// all of its output (arena buffers are reused). Out-of-range indices never
// index (zeros / skipped / all-zero rows) and are reported to c->fault.
#include <stdint.h>

#include <initializer_list>

#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_fastdiv.cuh"
#include "backends/cuda/cuda_fault.cuh"
#include "backends/cuda/cuda_half.cuh"
#include "runtime/layout.h"

namespace {

constexpr int kThreads = 256;

// widest unit (<= 16 bytes, >= the element size) dividing every value
size_t unit_for(size_t es, std::initializer_list<uint64_t> vals) {
  size_t u = 16;
  while (u > es) {
    bool ok = true;
    for (uint64_t v : vals)
      ok = ok && v % u == 0;
    if (ok) break;
    u /= 2;
  }
  return u;
}

template <typename U> struct Tag { using type = U; };

// Calls f(Tag<U>{}) with U the plain type of u bytes (uint4: 16 bytes).
template <typename F> asg_status with_unit(size_t u, F &&f) {
  switch (u) {
  case 2: return f(Tag<uint16_t>{});
  case 4: return f(Tag<uint32_t>{});
  case 8: return f(Tag<unsigned long long>{});
  default: return f(Tag<uint4>{});
  }
}

asg_status api_err(const asg_cuda_call *c, cudaError_t e) {
  if (e == cudaSuccess) return asg_cuda_check(c);
  cudaGetLastError(); // clear it: the step reports it
  return asg__error(ASG_ERR_BACKEND, "cuda: %s: %s", c->s->label, cudaGetErrorString(e));
}

asg_status bad_dtype(const asg_cuda_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

bool movable(asg_dtype dt) {
  size_t es = asg_dtype_size(dt);
  return es == 2 || es == 4 || es == 8;
}

uint64_t addr(const void *p) { return (uint64_t)(uintptr_t)p; }

// ---- strided record copy (slice, slice_bwd, concat) ----
// [outer, cnt, len] units: dst[o*d_o + j*d_j + k] = src[o*s_o + j*s_j + k].
// I is the index type: 32-bit when everything fits (cheaper divisions).
template <typename U, typename I>
__global__ void copy3_kernel(U *__restrict__ dst, const U *__restrict__ src, I total, I cnt, I len,
                             I d_o, I d_j, I s_o, I s_j) {
  for (I e = blockIdx.x * (I)blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I k = e % len, r = e / len;
    I j = r % cnt, o = r / cnt;
    dst[o * d_o + j * d_j + k] = src[o * s_o + j * s_j + k];
  }
}

// Byte-level arguments; picks the unit and the index width.
asg_status copy3(const asg_cuda_call *c, void *dst, const void *src, int64_t outer, int64_t cnt,
                 int64_t len_b, int64_t d_o_b, int64_t d_j_b, int64_t s_o_b, int64_t s_j_b,
                 size_t es) {
  int64_t total_b = outer * cnt * len_b;
  if (total_b == 0) return ASG_OK;
  size_t u = unit_for(es, {addr(dst), addr(src), (uint64_t)len_b, (uint64_t)d_o_b, (uint64_t)d_j_b,
                           (uint64_t)s_o_b, (uint64_t)s_j_b});
  int64_t total = total_b / (int64_t)u, len = len_b / (int64_t)u;
  int64_t d_o = d_o_b / (int64_t)u, d_j = d_j_b / (int64_t)u, s_o = s_o_b / (int64_t)u,
          s_j = s_j_b / (int64_t)u;
  // largest index formed: o*d_o + j*d_j + k on either side
  int64_t maxd = (outer - 1) * d_o + (cnt - 1) * d_j + len,
          maxs = (outer - 1) * s_o + (cnt - 1) * s_j + len;
  bool small = total < INT32_MAX && maxd < INT32_MAX && maxs < INT32_MAX;
  unsigned grid = asg_cuda_blocks(total, kThreads);
  cudaStream_t st = c->ctx->stream;
  return with_unit(u, [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (small)
      copy3_kernel<U, uint32_t><<<grid, kThreads, 0, st>>>(
          (U *)dst, (const U *)src, (uint32_t)total, (uint32_t)cnt, (uint32_t)len, (uint32_t)d_o,
          (uint32_t)d_j, (uint32_t)s_o, (uint32_t)s_j);
    else
      copy3_kernel<U, int64_t><<<grid, kThreads, 0, st>>>((U *)dst, (const U *)src, total, cnt, len,
                                                          d_o, d_j, s_o, s_j);
    return asg_cuda_check(c);
  });
}

// ---- permute ----
// The permutation is simplified first (asg__permute_plan, runtime/layout.h):
// size-1 dims are dropped and input dims that stay adjacent and in order are
// merged (e.g. [N,C,H,W] -> [N,H,W,C] is a batch of [C, HW] -> [HW, C]
// transposes). Then:
//   - the input's last dim goes to some other place and both the rows and
//     columns of that 2-D transpose have >= 16 elements: tiled transpose
//     through shared memory, batched over the other dims (last-two-dims
//     transposes, NCHW <-> NHWC, ...);
//   - otherwise one thread per output element walks the input strides; when
//     the last dim stays last (e.g. [B,T,H,D] -> [B,H,T,D]) reads and writes
//     are contiguous along it and whole rows move in wide units.
using PermPlan = asg_permute_plan;

template <typename I> struct PermGeom {
  int nd;
  I od[ASG_MAX_DIMS];   // output dims
  I oist[ASG_MAX_DIMS]; // input stride of each output dim
};

// x (any layout) -> y [od0..odn]: y[e] = x[sum coord_j * oist_j]
template <typename U, typename I>
__global__ void permute_kernel(U *__restrict__ y, const U *__restrict__ x, I total, PermGeom<I> g) {
  for (I e = blockIdx.x * (I)blockDim.x + threadIdx.x; e < total; e += (I)gridDim.x * blockDim.x) {
    I r = e, off = 0;
    for (int j = g.nd - 1; j > 0; j--) {
      I q = r / g.od[j];
      off += (r - q * g.od[j]) * g.oist[j];
      r = q;
    }
    off += r * g.oist[0];
    y[e] = x[off];
  }
}

struct TileBatch {
  int nb;
  int64_t bd[ASG_MAX_DIMS], bis[ASG_MAX_DIMS], bos[ASG_MAX_DIMS]; // dims, input/output strides
};

constexpr int kTile = 32, kTileRows = 8;

// Batched 2-D transpose, per batch: x [NI, NJ] with row stride isp (columns
// contiguous) -> y [NJ, NI] with row stride osq (columns contiguous).
// Block 32x8; a 32x33 shared tile (padding avoids bank conflicts) makes both
// the loads (along j) and the stores (along i) coalesced. All loop bounds
// depend only on blockIdx, so every thread reaches each __syncthreads.
template <typename T>
__global__ void transpose_tiled_kernel(T *__restrict__ y, const T *__restrict__ x, int64_t NI,
                                       int64_t NJ, int64_t isp, int64_t osq, int64_t nbatch,
                                       TileBatch tb) {
  __shared__ T tile[kTile][kTile + 1];
  int64_t tiles_i = (NI + kTile - 1) / kTile, tiles_j = (NJ + kTile - 1) / kTile;
  int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t b = blockIdx.z; b < nbatch; b += gridDim.z) {
    int64_t r = b, io = 0, oo = 0;
    for (int k = tb.nb - 1; k >= 0; k--) {
      int64_t co = r % tb.bd[k];
      r /= tb.bd[k];
      io += co * tb.bis[k];
      oo += co * tb.bos[k];
    }
    for (int64_t ti = blockIdx.y; ti < tiles_i; ti += gridDim.y) {
      for (int64_t tj = blockIdx.x; tj < tiles_j; tj += gridDim.x) {
        int64_t i0 = ti * kTile, j0 = tj * kTile;
        for (int rr = ty; rr < kTile; rr += kTileRows) {
          int64_t i = i0 + rr, j = j0 + tx;
          if (i < NI && j < NJ) tile[rr][tx] = x[io + i * isp + j];
        }
        __syncthreads();
        for (int rr = ty; rr < kTile; rr += kTileRows) {
          int64_t j = j0 + rr, i = i0 + tx;
          if (i < NI && j < NJ) y[oo + j * osq + i] = tile[tx][rr];
        }
        __syncthreads();
      }
    }
  }
}

// The same for < 2^31 units, dividing by multiply and shift (asg_fastdiv):
// [8,1024,12,64] -> [8,12,1024,64] in 16-byte units is bound by its index
// arithmetic with plain divisions.
struct PermGeom32 {
  int nd;
  asg_fastdiv od[ASG_MAX_DIMS];
  uint32_t oist[ASG_MAX_DIMS];
};

// Input offset of output element e.
__device__ __forceinline__ uint32_t perm32_offset(uint32_t e, const PermGeom32 &g) {
  uint32_t r = e, off = 0;
  for (int j = g.nd - 1; j > 0; j--) {
    const uint32_t q = asg_cuda_fastdiv(g.od[j], r);
    off += (r - q * g.od[j].d) * g.oist[j];
    r = q;
  }
  return off + r * g.oist[0];
}

template <typename U>
__global__ void permute32_kernel(U *__restrict__ y, const U *__restrict__ x, uint32_t total,
                                 PermGeom32 g) {
  for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x)
    y[e] = x[perm32_offset(e, g)];
}

// The same into a product's bf16/fp16 operand copy (asg_cuda_call.half_out):
// f32 units of W floats (4: the last dim stays last in rows of 16 bytes).
template <int HO, int W>
__global__ void permute_half_kernel(void *__restrict__ y, const float *__restrict__ x,
                                    uint32_t total, PermGeom32 g) {
  for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const uint32_t off = perm32_offset(e, g);
    if constexpr (W == 4)
      half_store4<HO>(y, e, reinterpret_cast<const float4 *>(x)[off]);
    else
      half_store<HO>(y, e, x[off]);
  }
}

// f32 permute of < 2^31 elements written as the 16-bit copy c->half_out.
asg_status permute_half(const asg_cuda_call *c, PermPlan &p, int64_t total) {
  PermGeom32 g = {};
  int W = 1;
  if (p.nd <= 1) { // only size-1 axes moved: a conversion
    g.nd = 1;
    g.od[0] = asg__fastdiv((uint32_t)total);
    g.oist[0] = 1;
  } else {
    const int nd = p.nd;
    if (p.pm[nd - 1] == nd - 1 && p.dims[nd - 1] % 4 == 0 && (uintptr_t)c->in[0] % 16 == 0) {
      W = 4; // whole 16-byte pieces of rows
      p.dims[nd - 1] /= 4;
      total /= 4;
      for (int j = 0; j < nd - 1; j++)
        p.oist[j] /= 4;
    }
    g.nd = nd;
    for (int j = 0; j < nd; j++) {
      g.od[j] = asg__fastdiv((uint32_t)p.dims[p.pm[j]]);
      g.oist[j] = (uint32_t)p.oist[j];
    }
  }
  const unsigned grid = asg_cuda_blocks(total, kThreads);
  cudaStream_t st = c->ctx->stream;
  const float *x = (const float *)c->in[0];
  if (c->bf16)
    W == 4 ? permute_half_kernel<kHalfBf16, 4>
        <<<grid, kThreads, 0, st>>>(c->half_out, x, (uint32_t)total, g)
           : permute_half_kernel<kHalfBf16, 1>
        <<<grid, kThreads, 0, st>>>(c->half_out, x, (uint32_t)total, g);
  else
    W == 4 ? permute_half_kernel<kHalfFp16, 4>
        <<<grid, kThreads, 0, st>>>(c->half_out, x, (uint32_t)total, g)
           : permute_half_kernel<kHalfFp16, 1>
        <<<grid, kThreads, 0, st>>>(c->half_out, x, (uint32_t)total, g);
  return asg_cuda_check(c);
}

template <typename I>
asg_status permute_general(const asg_cuda_call *c, const PermPlan &p, const int64_t *oist, size_t u,
                           int64_t total) {
  PermGeom<I> g = {};
  PermGeom32 g32 = {};
  g.nd = g32.nd = p.nd;
  bool fast = total < INT32_MAX;
  for (int j = 0; j < p.nd; j++) {
    g.od[j] = (I)p.dims[p.pm[j]];
    g.oist[j] = (I)oist[j];
    g32.od[j] = asg__fastdiv((uint32_t)(fast ? p.dims[p.pm[j]] : 1));
    g32.oist[j] = (uint32_t)oist[j];
    fast = fast && oist[j] * p.dims[p.pm[j]] < INT32_MAX; // every input offset fits
  }
  unsigned grid = asg_cuda_blocks(total, kThreads);
  cudaStream_t st = c->ctx->stream;
  return with_unit(u, [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (fast)
      permute32_kernel<U>
          <<<grid, kThreads, 0, st>>>((U *)c->out, (const U *)c->in[0], (uint32_t)total, g32);
    else
      permute_kernel<U, I>
          <<<grid, kThreads, 0, st>>>((U *)c->out, (const U *)c->in[0], (I)total, g);
    return asg_cuda_check(c);
  });
}

asg_status permute_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (!movable(dt)) return bad_dtype(c, dt);
  size_t es = asg_dtype_size(dt);
  int64_t total = asg_shape_numel(s->out.shape);
  if (total == 0) return ASG_OK;
  PermPlan p;
  asg__permute_plan(&p, s->in[0].shape, s->attr.i);
  // (cuda_backend.c sets half_out only for f32 permutes of < 2^31 elements)
  if (c->half_out) return permute_half(c, p, total);
  cudaStream_t st = c->ctx->stream;
  if (p.nd <= 1) { // only size-1 axes moved: a plain copy
    return api_err(
        c, cudaMemcpyAsync(c->out, c->in[0], (size_t)total * es, cudaMemcpyDeviceToDevice, st));
  }
  int nd = p.nd;
  const int *inv = p.inv;
  const int64_t *ist = p.ist, *ost = p.ost;
  int64_t *oist = p.oist; // rescaled below for wide units

  if (p.pm[nd - 1] != nd - 1) {
    // rows i: input dim P (goes last in the output); columns j: input's last dim L
    int P = p.pm[nd - 1], L = nd - 1;
    int64_t NI = p.dims[P], NJ = p.dims[L];
    if (NI >= 16 && NJ >= 16) {
      TileBatch tb = {};
      int64_t nbatch = 1;
      for (int d = 0; d < nd; d++) {
        if (d == P || d == L) continue;
        tb.bd[tb.nb] = p.dims[d];
        tb.bis[tb.nb] = ist[d];
        tb.bos[tb.nb] = ost[inv[d]];
        nbatch *= p.dims[d];
        tb.nb++;
      }
      int64_t tiles_i = (NI + kTile - 1) / kTile, tiles_j = (NJ + kTile - 1) / kTile;
      dim3 grid((unsigned)(tiles_j < 65535 ? tiles_j : 65535),
                (unsigned)(tiles_i < 65535 ? tiles_i : 65535),
                (unsigned)(nbatch < 65535 ? nbatch : 65535));
      dim3 block(kTile, kTileRows);
      int64_t isp = ist[P], osq = ost[inv[L]];
      switch (es) {
      case 2:
        transpose_tiled_kernel<uint16_t><<<grid, block, 0, st>>>(
            (uint16_t *)c->out, (const uint16_t *)c->in[0], NI, NJ, isp, osq, nbatch, tb);
        break;
      case 4:
        transpose_tiled_kernel<uint32_t><<<grid, block, 0, st>>>(
            (uint32_t *)c->out, (const uint32_t *)c->in[0], NI, NJ, isp, osq, nbatch, tb);
        break;
      default:
        transpose_tiled_kernel<unsigned long long><<<grid, block, 0, st>>>(
            (unsigned long long *)c->out, (const unsigned long long *)c->in[0], NI, NJ, isp, osq,
            nbatch, tb);
      }
      return asg_cuda_check(c);
    }
  }
  size_t u = es;
  if (p.pm[nd - 1] == nd - 1) {
    // the last dim stays last: move its rows in wide units
    int64_t row_b = p.dims[nd - 1] * (int64_t)es;
    u = unit_for(es, {addr(c->out), addr(c->in[0]), (uint64_t)row_b});
    int64_t f = (int64_t)(u / es);
    p.dims[nd - 1] /= f;
    total /= f;
    for (int j = 0; j < nd - 1; j++)
      oist[j] /= f; // multiples of the row length
  }
  if (total < INT32_MAX) return permute_general<uint32_t>(c, p, oist, u, total);
  return permute_general<int64_t>(c, p, oist, u, total);
}

// ---- slice / slice_bwd ----
// x [outer, n, inner] -> y [outer, count, inner], y[o, j] = x[o, start + j*step]
asg_status slice_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (!movable(dt)) return bad_dtype(c, dt);
  int a = (int)s->attr.i[0];
  int64_t start = s->attr.i[1], step = s->attr.i[2], count = s->attr.i[3], outer, inner;
  int64_t n = s->in[0].shape.dims[a];
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  int64_t es = (int64_t)asg_dtype_size(dt), rb = inner * es;
  const char *src = (const char *)c->in[0] + start * rb;
  if (step == 1) // one contiguous block per outer row
    return copy3(c, c->out, src, outer, 1, count * rb, count * rb, 0, n * rb, 0, (size_t)es);
  return copy3(c, c->out, src, outer, count, rb, count * rb, rb, n * rb, step * rb, (size_t)es);
}

// dy [outer, count, inner] -> dx [outer, n, inner]: zeros, dy at the slice
asg_status slice_bwd_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (!movable(dt)) return bad_dtype(c, dt);
  int a = (int)s->attr.i[0];
  int64_t start = s->attr.i[1], step = s->attr.i[2], count = s->attr.i[3], outer, inner;
  int64_t n = s->out.shape.dims[a];
  asg__split_axis(s->out.shape, a, &outer, &inner);
  int64_t es = (int64_t)asg_dtype_size(dt), rb = inner * es;
  // all-zero bits are 0 in every dtype here
  asg_status st = api_err(c, cudaMemsetAsync(c->out, 0, (size_t)(outer * n * rb), c->ctx->stream));
  if (st) return st;
  char *dst = (char *)c->out + start * rb;
  if (step == 1) // one contiguous block per outer row
    return copy3(c, dst, c->in[0], outer, 1, count * rb, n * rb, 0, count * rb, 0, (size_t)es);
  return copy3(c, dst, c->in[0], outer, count, rb, n * rb, step * rb, count * rb, rb, (size_t)es);
}

// ---- concat ----
// xs[k] [outer, n_k, inner] -> y [outer, sum n_k, inner]; one launch per input
asg_status concat_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (!movable(dt)) return bad_dtype(c, dt);
  int a = (int)s->attr.i[0];
  int64_t outer, inner;
  asg__split_axis(s->out.shape, a, &outer, &inner);
  int64_t es = (int64_t)asg_dtype_size(dt), orb = s->out.shape.dims[a] * inner * es, before = 0;
  for (int k = 0; k < s->n_in; k++) {
    if (s->in[k].dtype != dt) return bad_dtype(c, s->in[k].dtype);
    int64_t rb = s->in[k].shape.dims[a] * inner * es; // one outer row of input k
    asg_status st =
        copy3(c, (char *)c->out + before, c->in[k], outer, 1, rb, orb, 0, rb, 0, (size_t)es);
    if (st) return st;
    before += rb;
  }
  return ASG_OK;
}

// ---- gather ----
// x [outer, n, inner], idx [m] -> y [outer, m, inner]; y[o, j] = x[o, idx[j]],
// zeros where idx[j] is outside [0, n). Units of U; len = inner in units.
template <typename U, typename X>
__global__ void gather_kernel(U *__restrict__ y, const U *__restrict__ x, const X *__restrict__ idx,
                              int64_t total, int64_t m, int64_t n, int64_t len,
                              asg_index_fault *fault, unsigned step1) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t k = e % len, r = e / len;
    int64_t j = r % m, o = r / m;
    int64_t i = (int64_t)idx[j];
    const bool ok = i >= 0 && i < n;
    y[e] = ok ? x[(o * n + i) * len + k] : U{};
    if (!ok && k == 0) asg_cuda_index_fault(fault, step1, i);
  }
}

asg_status gather_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, it = s->in[1].dtype;
  if (!movable(dt)) return bad_dtype(c, dt);
  if (it != ASG_I32 && it != ASG_I64) return bad_dtype(c, it);
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->in[0].shape.dims[a], m = asg_shape_numel(s->in[1].shape);
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  size_t es = asg_dtype_size(dt);
  int64_t rb = inner * (int64_t)es;
  size_t u = unit_for(es, {addr(c->out), addr(c->in[0]), (uint64_t)rb});
  int64_t len = rb / (int64_t)u, total = outer * m * len;
  if (total == 0) return ASG_OK;
  unsigned grid = asg_cuda_blocks(total, kThreads);
  cudaStream_t st = c->ctx->stream;
  return with_unit(u, [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (it == ASG_I32)
      gather_kernel<U, int32_t><<<grid, kThreads, 0, st>>>((U *)c->out, (const U *)c->in[0],
                                                           (const int32_t *)c->in[1], total, m, n,
                                                           len, c->fault, c->step1);
    else
      gather_kernel<U, int64_t><<<grid, kThreads, 0, st>>>((U *)c->out, (const U *)c->in[0],
                                                           (const int64_t *)c->in[1], total, m, n,
                                                           len, c->fault, c->step1);
    return asg_cuda_check(c);
  });
}

// ---- scatter_add ----
// x [outer, n, inner], idx [m], src [outer, m, inner] -> y = x, then
// y[o, idx[j]] += src[o, j]; out-of-range idx[j] are ignored.
// One thread per src element with atomicAdd: for F32/F64 the order of the
// additions to one element (duplicate indices) is therefore nondeterministic
// and results may differ from the CPU (which adds in j order) by rounding.
// Integer results are exact and deterministic.
__device__ __forceinline__ void atomic_add(float *p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double *p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t *p, int32_t v) { atomicAdd((int *)p, (int)v); }
__device__ __forceinline__ void atomic_add(int64_t *p, int64_t v) {
  // two's-complement addition: the unsigned wrap-around gives the signed sum
  atomicAdd((unsigned long long *)p, (unsigned long long)v);
}

template <typename T, typename X>
__global__ void scatter_add_kernel(T *__restrict__ y, const X *__restrict__ idx,
                                   const T *__restrict__ src, int64_t total, int64_t m, int64_t n,
                                   int64_t inner, asg_index_fault *fault, unsigned step1) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t k = e % inner, r = e / inner;
    int64_t j = r % m, o = r / m;
    int64_t i = (int64_t)idx[j];
    if (i >= 0 && i < n)
      atomic_add(&y[(o * n + i) * inner + k], src[e]);
    else if (k == 0)
      asg_cuda_index_fault(fault, step1, i);
  }
}

template <typename T>
asg_status scatter_add_typed(const asg_cuda_call *c, int64_t total, int64_t m, int64_t n,
                             int64_t inner) {
  unsigned grid = asg_cuda_blocks(total, kThreads);
  cudaStream_t st = c->ctx->stream;
  if (c->s->in[1].dtype == ASG_I32)
    scatter_add_kernel<T, int32_t>
        <<<grid, kThreads, 0, st>>>((T *)c->out, (const int32_t *)c->in[1], (const T *)c->in[2],
                                    total, m, n, inner, c->fault, c->step1);
  else
    scatter_add_kernel<T, int64_t>
        <<<grid, kThreads, 0, st>>>((T *)c->out, (const int64_t *)c->in[1], (const T *)c->in[2],
                                    total, m, n, inner, c->fault, c->step1);
  return asg_cuda_check(c);
}

asg_status scatter_add_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, it = s->in[1].dtype;
  if (it != ASG_I32 && it != ASG_I64) return bad_dtype(c, it);
  if (s->in[0].dtype != dt || s->in[2].dtype != dt) return bad_dtype(c, s->in[2].dtype);
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->in[0].shape.dims[a], m = asg_shape_numel(s->in[1].shape);
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  size_t bytes = (size_t)asg_shape_numel(s->out.shape) * asg_dtype_size(dt);
  switch (dt) {
  case ASG_F32:
  case ASG_F64:
  case ASG_I32:
  case ASG_I64: break;
  default: return bad_dtype(c, dt);
  }
  if (c->out != c->in[0] && bytes) {
    asg_status st = api_err(
        c, cudaMemcpyAsync(c->out, c->in[0], bytes, cudaMemcpyDeviceToDevice, c->ctx->stream));
    if (st) return st;
  }
  int64_t total = outer * m * inner;
  if (total == 0) return ASG_OK;
  switch (dt) {
  case ASG_F32: return scatter_add_typed<float>(c, total, m, n, inner);
  case ASG_F64: return scatter_add_typed<double>(c, total, m, n, inner);
  case ASG_I32: return scatter_add_typed<int32_t>(c, total, m, n, inner);
  default: return scatter_add_typed<int64_t>(c, total, m, n, inner);
  }
}

// ---- one_hot ----
// idx [m] -> y [m, depth]: 1 at idx, 0 elsewhere (all 0 when out of range)
template <typename T, typename X>
__global__ void one_hot_kernel(T *__restrict__ y, const X *__restrict__ idx, int64_t total,
                               int64_t depth, asg_index_fault *fault, unsigned step1) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
       e += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = e / depth, col = e - r * depth;
    const int64_t i = (int64_t)idx[r];
    y[e] = i == col ? T(1) : T(0);
    if (col == 0 && (i < 0 || i >= depth)) asg_cuda_index_fault(fault, step1, i);
  }
}

template <typename T>
asg_status one_hot_typed(const asg_cuda_call *c, int64_t total, int64_t depth) {
  unsigned grid = asg_cuda_blocks(total, kThreads);
  cudaStream_t st = c->ctx->stream;
  if (c->s->in[0].dtype == ASG_I32)
    one_hot_kernel<T, int32_t><<<grid, kThreads, 0, st>>>((T *)c->out, (const int32_t *)c->in[0],
                                                          total, depth, c->fault, c->step1);
  else
    one_hot_kernel<T, int64_t><<<grid, kThreads, 0, st>>>((T *)c->out, (const int64_t *)c->in[0],
                                                          total, depth, c->fault, c->step1);
  return asg_cuda_check(c);
}

asg_status one_hot_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, it = s->in[0].dtype;
  if (it != ASG_I32 && it != ASG_I64) return bad_dtype(c, it);
  int64_t depth = s->attr.i[0], total = asg_shape_numel(s->out.shape);
  if (total == 0 || depth < 1) return ASG_OK;
  switch (dt) {
  case ASG_F32: return one_hot_typed<float>(c, total, depth);
  case ASG_F64: return one_hot_typed<double>(c, total, depth);
  case ASG_I32: return one_hot_typed<int32_t>(c, total, depth);
  case ASG_I64: return one_hot_typed<int64_t>(c, total, depth);
  default: return bad_dtype(c, dt);
  }
}

} // namespace

extern "C" void asg_cuda_register_index(asg_cuda_kernel *t) {
  t[ASG_OP_PERMUTE].run = permute_run;
  t[ASG_OP_SLICE].run = slice_run;
  t[ASG_OP_SLICE_BWD].run = slice_bwd_run;
  t[ASG_OP_CONCAT].run = concat_run;
  t[ASG_OP_GATHER].run = gather_run;
  t[ASG_OP_SCATTER_ADD].run = scatter_add_run;
  t[ASG_OP_ONE_HOT].run = one_hot_run;
}
