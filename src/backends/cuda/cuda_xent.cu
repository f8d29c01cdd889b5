// CUDA kernels of softmax cross-entropy (+ its backward op). Reference
// semantics: src/backends/cpu/cpu_nn.c. Sums accumulate in double for f32
// and f64 as on the CPU, and every reduction has a fixed order (no atomics),
// so results are deterministic run to run. Row helpers: cuda_rows.cuh.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_nn.h"
#include "backends/cuda/cuda_fault.cuh"
#include "backends/cuda/cuda_half.cuh"
#include "backends/cuda/cuda_rows.cuh"

#include <math.h>

#include <type_traits>

namespace {

// ---- softmax cross-entropy ----

__device__ __forceinline__ int64_t label_at(const void *l, bool i32, int64_t r) {
  return i32 ? (int64_t)((const int32_t *)l)[r] : ((const int64_t *)l)[r];
}
// Ignored and out-of-range labels leave the row out (and never index);
// out-of-range ones are reported to c->fault (cuda_fault.cuh).
__device__ __forceinline__ bool label_ok(int64_t lab, int64_t C, int64_t ignore) {
  return lab != ignore && lab >= 0 && lab < C;
}

__device__ __forceinline__ float exp_t(float v) { return expf(v); }
__device__ __forceinline__ double exp_t(double v) { return exp(v); }

// log-sum-exp of one row in one pass over it (online: each thread keeps its
// running max m and sum s of exp(x - m) in double, rescaled when m grows;
// the threads' pairs are then joined). As the CPU's two passes (max, then
// the sum of exp(x - max) in double), a NaN or +inf anywhere, or a row of
// only -inf, gives NaN.
// Folds four values into a thread's running (max m, sum s of exp(x - m)):
// one rescale per vector instead of per element.
__device__ __forceinline__ void lse_add4(float4 v, float &m, double &s, int &bad) {
  const float mx = fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)); // NaNs are flagged below
  bad |= (v.x != v.x) | (v.y != v.y) | (v.z != v.z) | (v.w != v.w) | (mx == INFINITY);
  if (mx > m) {
    s *= (double)expf(m - mx); // exp(-inf) = 0 for the first vector
    m = mx;
  }
  if (m != -INFINITY) // -inf elements add exp(-inf) = 0
    s += (double)(expf(v.x - m) + expf(v.y - m) + expf(v.z - m) + expf(v.w - m));
}

// The log-sum-exp of a row as m + lg (m its max, lg = log(sum exp(x - m))):
// kept apart so that x - lse is computed as (x - m) - lg, exact for large
// logits where m + lg would round lg away.
struct Lse {
  double m, lg;
};

// HI (T = float, VEC): the logits are kept as 16 bits (asg_cuda_call.in_half),
// xr then points at the row's first 16-bit value.
template <bool WARP, bool VEC, typename T, int HI>
__device__ Lse row_lse(const T *xr, int64_t C, int lane, int nthr, T *shT, double *sh) {
  T m = (T)-INFINITY;
  double s = 0;
  int bad = 0;
  if constexpr (VEC) { // T = float, C % 4 == 0, rows 16-byte (8-byte for 16 bits) aligned
    for (int64_t j = lane; j < C / 4; j += nthr)
      lse_add4(half_load4<HI>(xr, j), m, s, bad);
  } else {
    for (int64_t j = lane; j < C; j += nthr) {
      const T v = xr[j];
      if (v > m) {
        if (v == (T)INFINITY) bad = 1;
        s = s * (double)exp_t(m - v) + 1.0; // exp(-inf) = 0 for the first element
        m = v;
      } else if (v != v) {
        bad = 1;
      } else if (v != (T)-INFINITY) {
        s += (double)exp_t(v - m);
      }
    }
  }
  const T M = row_reduce<WARP, MaxOp>(m, shT);
  bad = (int)row_reduce<WARP, SumOp>((double)bad, sh);
  if (bad || M == (T)-INFINITY) return {NAN, NAN};
  s = row_reduce<WARP, SumOp>(m == (T)-INFINITY ? 0.0 : s * (double)exp_t(m - M), sh);
  return {(double)M, log(s)};
}

// logits [R,C], labels [R] -> row losses [R] (0 for left-out rows):
// (1-ls) * (lg - (x[label] - m)) + ls * (lg - mean_c (x - m)), lse = m + lg
// lse_out (when set) keeps each counted row's m [R], then lg [R], for the
// backward step.
template <bool WARP, bool VEC, typename T, int HI>
__global__ void ce_rows_kernel(const T *x, const void *lab, bool i32, double *row, double *lse_out,
                               int64_t R, int64_t C, double ls, int64_t ign, asg_index_fault *fault,
                               unsigned step1) {
  __shared__ double sh[32];
  __shared__ T shT[32];
  RowIter<WARP> it;
  for (int64_t r = it.first; r < R; r += it.step) {
    int64_t l = label_at(lab, i32, r);
    if (!label_ok(l, C, ign)) { // uniform over the row's threads
      if (it.lane == 0) {
        row[r] = 0;
        if (l != ign) asg_cuda_index_fault(fault, step1, l);
      }
      continue;
    }
    const T *xr = HI ? (const T *)((const char *)x + r * C * 2) : x + r * C;
    const Lse z = row_lse<WARP, VEC, T, HI>(xr, C, it.lane, it.nthr, shT, sh);
    double v = (1 - ls) * (z.lg - ((double)(HI ? (T)half_load<HI>(xr, l) : xr[l]) - z.m));
    if (ls > 0) {
      double sx = 0;
      for (int64_t j = it.lane; j < C; j += it.nthr)
        sx += (double)(HI ? (T)half_load<HI>(xr, j) : xr[j]) - z.m;
      sx = row_reduce<WARP, SumOp>(sx, sh);
      v += ls * (z.lg - sx / (double)C);
    }
    if (it.lane == 0) {
      row[r] = v;
      if (lse_out) {
        lse_out[r] = z.m;
        lse_out[R + r] = z.lg;
      }
    }
  }
}

// row [R], labels [R] -> loss [] = sum(row) / count (NaN when nothing counts,
// as PyTorch's mean over no rows);
// count (when set) keeps the count for the backward step. One block; each
// thread sums a fixed strided subset, then a fixed-order fold.
template <typename T>
__global__ void ce_total_kernel(const double *row, const void *lab, bool i32, T *out, double *count,
                                int64_t R, int64_t C, int64_t ign) {
  __shared__ double sh[32];
  double t = 0, n = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
    t += row[r];
    n += label_ok(label_at(lab, i32, r), C, ign) ? 1.0 : 0.0;
  }
  t = row_reduce<false, SumOp>(t, sh);
  n = row_reduce<false, SumOp>(n, sh);
  if (threadIdx.x == 0) {
    *out = (T)(n > 0 ? t / n : (double)NAN);
    if (count) *count = n;
  }
}

// labels [R] -> count [] (double, exact): rows that take part in the loss
__global__ void ce_count_kernel(const void *lab, bool i32, double *count, int64_t R, int64_t C,
                                int64_t ign) {
  __shared__ double sh[32];
  double n = 0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
    n += label_ok(label_at(lab, i32, r), C, ign) ? 1.0 : 0.0;
  n = row_reduce<false, SumOp>(n, sh);
  if (threadIdx.x == 0) *count = n;
}

// logits [R,C], labels [R], dloss [] -> dlogits [R,C] =
// (softmax - ((1-ls) onehot + ls/C)) * dloss / count; zero for left-out rows
// lse_in (when set): the rows' log-sum-exp from the forward step (m [R], then
// lg [R]), so the row is read once. VEC: T = float, C % 4 == 0, rows 16-byte
// aligned; the softmax exp((x - m) - lg) is then computed in float.
template <bool WARP, bool VEC, typename T, int HO, int HI>
__global__ void ce_bwd_kernel(const T *x, const void *lab, bool i32, const T *dloss,
                              const double *count, const double *lse_in, void *dxv, int64_t R,
                              int64_t C, double ls, int64_t ign, asg_index_fault *fault,
                              unsigned step1) {
  T *dx = static_cast<T *>(dxv);
  __shared__ double sh[32];
  __shared__ T shT[32];
  RowIter<WARP> it;
  double n = *count;
  double scale = n > 0 ? (double)*dloss / n : 0.0, off = ls / (double)C;
  for (int64_t r = it.first; r < R; r += it.step) {
    int64_t l = label_at(lab, i32, r);
    const T *xr = HI ? (const T *)((const char *)x + r * C * 2) : x + r * C;
    T *dr = dx + r * C;
    if (!label_ok(l, C, ign)) {
      if (it.lane == 0 && l != ign) asg_cuda_index_fault(fault, step1, l);
      for (int64_t j = it.lane; j < C; j += it.nthr)
        if constexpr (HO != 0)
          half_store<HO>(dxv, r * C + j, 0.f);
        else
          dr[j] = (T)0;
      continue;
    }
    const Lse z = lse_in ? Lse{lse_in[r], lse_in[R + r]}
                         : row_lse<WARP, VEC, T, HI>(xr, C, it.lane, it.nthr, shT, sh);
    if constexpr (VEC) {
      float4 *d4 = reinterpret_cast<float4 *>(dr);
      // m is a float value (the row's max), so x - m is exact in float
      const float mf = (float)z.m, lf = (float)z.lg, sc = (float)scale, of = (float)off,
                  hit = (float)(1 - ls);
      for (int64_t j = it.lane; j < C / 4; j += it.nthr) {
        const float4 v = half_load4<HI>(xr, j);
        float4 o;
        o.x = (expf((v.x - mf) - lf) - of - (4 * j == l ? hit : 0.f)) * sc;
        o.y = (expf((v.y - mf) - lf) - of - (4 * j + 1 == l ? hit : 0.f)) * sc;
        o.z = (expf((v.z - mf) - lf) - of - (4 * j + 2 == l ? hit : 0.f)) * sc;
        o.w = (expf((v.w - mf) - lf) - of - (4 * j + 3 == l ? hit : 0.f)) * sc;
        if constexpr (HO != 0)
          half_store4<HO>(dxv, r * (C / 4) + j, o);
        else
          d4[j] = o;
      }
    } else {
      for (int64_t j = it.lane; j < C; j += it.nthr) {
        double v = exp(((double)xr[j] - z.m) - z.lg) - off;
        if (j == l) v -= 1 - ls;
        if constexpr (HO != 0)
          half_store<HO>(dxv, r * C + j, (float)(v * scale));
        else
          dr[j] = (T)(v * scale);
      }
    }
  }
}

void ce_dims(const asg_step *s, int64_t *R, int64_t *C) {
  asg_shape sh = s->in[0].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = prod_dims(sh, 0, sh.ndim - 1);
}

size_t ce_fwd_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  int64_t R, C;
  ce_dims(s, &R, &C);
  return (size_t)R * sizeof(double);
}

size_t ce_bwd_ws(const asg_step *s, unsigned flags) {
  (void)flags;
  (void)s;
  return sizeof(double);
}

template <bool WARP, bool VEC, typename T, int HI>
void ce_launch_as(const asg_cuda_call *c, int64_t R, int64_t C, unsigned grid) {
  cudaStream_t st = c->ctx->stream;
  const T *x = (const T *)c->in[0];
  const void *lab = c->in[1];
  bool i32 = c->s->in[1].dtype == ASG_I32;
  double ls = c->s->attr.f[0];
  int64_t ign = c->s->attr.i[0];
  double *ws = (double *)c->ws;
  // kept statistics (cuda_backend.c): m [R], lg [R], then the count of rows taken
  double *keep = (double *)c->stats_out;
  const double *kept = (const double *)c->stats_in;
  if (c->s->op == ASG_OP_SOFTMAX_CE) {
    ce_rows_kernel<WARP, VEC, T, HI>
        <<<grid, kThreads, 0, st>>>(x, lab, i32, ws, keep, R, C, ls, ign, c->fault, c->step1);
    ce_total_kernel<T>
        <<<1, 1024, 0, st>>>(ws, lab, i32, (T *)c->out, keep ? keep + 2 * R : nullptr, R, C, ign);
  } else {
    const double *count = kept ? kept + 2 * R : ws;
    if (!kept) ce_count_kernel<<<1, 1024, 0, st>>>(lab, i32, ws, R, C, ign);
    const T *dl = (const T *)c->in[2];
    // the logits gradient straight into the products' 16-bit copy (cuda_backend.c)
    if constexpr (std::is_same<T, float>::value) {
      if (c->half_out && c->bf16) {
        ce_bwd_kernel<WARP, VEC, T, kHalfBf16, HI><<<grid, kThreads, 0, st>>>(
            x, lab, i32, dl, count, kept, c->half_out, R, C, ls, ign, c->fault, c->step1);
        return;
      }
      if (c->half_out) {
        ce_bwd_kernel<WARP, VEC, T, kHalfFp16, HI><<<grid, kThreads, 0, st>>>(
            x, lab, i32, dl, count, kept, c->half_out, R, C, ls, ign, c->fault, c->step1);
        return;
      }
    }
    ce_bwd_kernel<WARP, VEC, T, 0, HI><<<grid, kThreads, 0, st>>>(
        x, lab, i32, dl, count, kept, c->out, R, C, ls, ign, c->fault, c->step1);
  }
}

template <typename T> void ce_launch(const asg_cuda_call *c, int64_t R, int64_t C) {
  bool warp = C <= kWarpRowsMaxC;
  unsigned grid = row_grid(R, warp);
  // 16-byte rows: the float kernels read (and write) four elements at a time
  if constexpr (std::is_same<T, float>::value) {
    if (c->in_half) { // 16-bit logits (cuda_backend.c checked C % 4 and the alignment)
      if (c->bf16)
        warp ? ce_launch_as<true, true, T, kHalfBf16>(c, R, C, grid)
             : ce_launch_as<false, true, T, kHalfBf16>(c, R, C, grid);
      else
        warp ? ce_launch_as<true, true, T, kHalfFp16>(c, R, C, grid)
             : ce_launch_as<false, true, T, kHalfFp16>(c, R, C, grid);
      return;
    }
    const bool vec = C % 4 == 0 && (uintptr_t)c->in[0] % 16 == 0 &&
                     (c->s->op == ASG_OP_SOFTMAX_CE || (uintptr_t)c->out % 16 == 0);
    if (vec) {
      warp ? ce_launch_as<true, true, T, 0>(c, R, C, grid)
           : ce_launch_as<false, true, T, 0>(c, R, C, grid);
      return;
    }
  }
  warp ? ce_launch_as<true, false, T, 0>(c, R, C, grid)
       : ce_launch_as<false, false, T, 0>(c, R, C, grid);
}

template <typename T> __global__ void ce_nan_kernel(T *out) { *out = (T)NAN; }

asg_status ce_run(const asg_cuda_call *c) {
  int64_t R, C;
  ce_dims(c->s, &R, &C);
  asg_dtype dt = c->s->in[0].dtype, ldt = c->s->in[1].dtype;
  if ((dt != ASG_F32 && dt != ASG_F64) || (ldt != ASG_I32 && ldt != ASG_I64)) return dtype_error(c);
  bool fwd = c->s->op == ASG_OP_SOFTMAX_CE;
  if (R == 0 || C == 0) { // nothing counted: loss NaN (as an empty mean), no gradient
    if (!fwd) return ASG_OK;
    if (dt == ASG_F32)
      ce_nan_kernel<float><<<1, 1, 0, c->ctx->stream>>>((float *)c->out);
    else
      ce_nan_kernel<double><<<1, 1, 0, c->ctx->stream>>>((double *)c->out);
    return asg_cuda_check(c);
  }
  if (dt == ASG_F32)
    ce_launch<float>(c, R, C);
  else
    ce_launch<double>(c, R, C);
  return asg_cuda_check(c);
}

} // namespace

void asg_cuda_nn::register_xent(asg_cuda_kernel *t) {
  t[ASG_OP_SOFTMAX_CE].run = ce_run;
  t[ASG_OP_SOFTMAX_CE].ws = ce_fwd_ws;
  t[ASG_OP_SOFTMAX_CE_BWD].run = ce_run;
  t[ASG_OP_SOFTMAX_CE_BWD].ws = ce_bwd_ws;
}
