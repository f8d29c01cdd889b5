#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_pdl.cuh"
#include "backends/cuda/cuda_fastdiv.cuh"
#include "backends/cuda/cuda_fault.cuh"
#include "backends/cuda/cuda_half.cuh"
#include "backends/cuda/ew_ops.cuh"
#include "runtime/layout.h"
// CUDA kernels of the elementwise family: unary ops, binary ops and where
// with NumPy broadcasting, cast, broadcast_to, fill, and the identity copies
// (stop_gradient, reshape, assign), and cache_write. Semantics follow the CPU reference
// (src/backends/cpu/cpu_elementwise.c, cpu_shape.c).
//
// Broadcasting: on the host, each input gets per-dim element strides (0 on
// broadcast dims) and adjacent dims that stay contiguous for every operand
// are merged. When that leaves one dim, every operand is either contiguous
// or a scalar and a vectorized kernel (16-byte loads) runs; otherwise a
// strided kernel decomposes the flat output index (32-bit math when it fits).
#include <math.h>
#include <stdint.h>

#include <limits>
#include <type_traits>

namespace {

constexpr int kThreads = 256;
constexpr int kMaxIn = 3;

// m_exp & co. and the float semantics of every op: ew_ops.cuh (shared with
// the fused chains compiled at run time).
template <class T> constexpr bool is_int_v = std::is_integral<T>::value;

// Integer pow as the CPU computes it: (T)pow((double)x, (double)y). Results
// of a non-negative exponent are integers, so rounding removes the last-ulp
// error of the device pow; NaN and out-of-range values become the minimum
// integer, as x86's truncating conversion gives.
template <class T> __device__ __forceinline__ T int_pow(T x, T y) {
  double r = pow((double)x, (double)y);
  if (y >= 0 && fabs(r) < 9007199254740992.0) r = rint(r);
  const double lo = (double)std::numeric_limits<T>::min(), hi = -lo; // hi = 2^(bits-1)
  if (!(r > lo - 1.0 && r < hi)) return std::numeric_limits<T>::min();
  return (T)r;
}

// ---- op functors ----
template <int OP, class T> struct UnaryF {
  T f0, f1; // attrs converted on the host, as the CPU does
  __device__ __forceinline__ T operator()(T x) const {
    if constexpr (is_int_v<T>) {
      using U = typename std::make_unsigned<T>::type;
      if constexpr (OP == ASG_OP_NEG)
        return (T)(U(0) - (U)x); // wraps like the CPU
      else if constexpr (OP == ASG_OP_ABS)
        return x < 0 ? (T)(U(0) - (U)x) : x;
      else if constexpr (OP == ASG_OP_SIGN)
        return ew_sign(x, f0, f1);
      else if constexpr (OP == ASG_OP_RELU)
        return ew_relu(x, f0, f1);
      else
        return ew_clamp(x, f0, f1);
    } else {
      if constexpr (OP == ASG_OP_NEG)
        return ew_neg(x, f0, f1);
      else if constexpr (OP == ASG_OP_ABS)
        return ew_abs(x, f0, f1);
      else if constexpr (OP == ASG_OP_SIGN)
        return ew_sign(x, f0, f1);
      else if constexpr (OP == ASG_OP_EXP)
        return ew_exp(x, f0, f1);
      else if constexpr (OP == ASG_OP_LOG)
        return ew_log(x, f0, f1);
      else if constexpr (OP == ASG_OP_SQRT)
        return ew_sqrt(x, f0, f1);
      else if constexpr (OP == ASG_OP_RSQRT)
        return ew_rsqrt(x, f0, f1);
      else if constexpr (OP == ASG_OP_SIN)
        return ew_sin(x, f0, f1);
      else if constexpr (OP == ASG_OP_COS)
        return ew_cos(x, f0, f1);
      else if constexpr (OP == ASG_OP_TANH)
        return ew_tanh(x, f0, f1);
      else if constexpr (OP == ASG_OP_ERF)
        return ew_erf(x, f0, f1);
      else if constexpr (OP == ASG_OP_SIGMOID)
        return ew_sigmoid(x, f0, f1);
      else if constexpr (OP == ASG_OP_RELU)
        return ew_relu(x, f0, f1);
      else if constexpr (OP == ASG_OP_LEAKY_RELU)
        return ew_leaky_relu(x, f0, f1);
      else if constexpr (OP == ASG_OP_GELU)
        return ew_gelu(x, f0, f1);
      else if constexpr (OP == ASG_OP_GELU_TANH)
        return ew_gelu_tanh(x, f0, f1);
      else if constexpr (OP == ASG_OP_SILU)
        return ew_silu(x, f0, f1);
      else if constexpr (OP == ASG_OP_ELU)
        return ew_elu(x, f0, f1);
      else if constexpr (OP == ASG_OP_SOFTPLUS)
        return ew_softplus(x, f0, f1);
      else
        return ew_clamp(x, f0, f1);
    }
  }
};

template <int OP, class T> struct BinaryF {
  __device__ __forceinline__ T operator()(T x, T y) const {
    if constexpr (is_int_v<T>) {
      using U = typename std::make_unsigned<T>::type; // integer +,-,* wrap
      if constexpr (OP == ASG_OP_ADD)
        return (T)((U)x + (U)y);
      else if constexpr (OP == ASG_OP_SUB)
        return (T)((U)x - (U)y);
      else if constexpr (OP == ASG_OP_MUL)
        return (T)((U)x * (U)y);
      else if constexpr (OP == ASG_OP_DIV) // x/0 = 0; MIN/-1 wraps instead of trapping
        return y == 0 ? T(0) : y == -1 ? (T)(U(0) - (U)x) : (T)(x / y);
      else if constexpr (OP == ASG_OP_POW)
        return int_pow(x, y);
      else if constexpr (OP == ASG_OP_MAXIMUM)
        return x > y ? x : y;
      else if constexpr (OP == ASG_OP_MINIMUM)
        return x < y ? x : y;
      else
        return cmp(x, y);
    } else {
      if constexpr (OP == ASG_OP_ADD)
        return ew_add(x, y);
      else if constexpr (OP == ASG_OP_SUB)
        return ew_sub(x, y);
      else if constexpr (OP == ASG_OP_MUL)
        return ew_mul(x, y);
      else if constexpr (OP == ASG_OP_DIV)
        return ew_div(x, y);
      else if constexpr (OP == ASG_OP_POW)
        return ew_pow(x, y);
      else if constexpr (OP == ASG_OP_MAXIMUM)
        return ew_maximum(x, y);
      else if constexpr (OP == ASG_OP_MINIMUM)
        return ew_minimum(x, y);
      else if constexpr (OP == ASG_OP_GELU_BWD)
        return ew_gelu_bwd(x, y);
      else if constexpr (OP == ASG_OP_GELU_TANH_BWD)
        return ew_gelu_tanh_bwd(x, y);
      else
        return cmp(x, y);
    }
  }
  // comparisons give a 0/1 mask of the input dtype (any T)
  __device__ __forceinline__ static T cmp(T x, T y) {
    if constexpr (OP == ASG_OP_EQ)
      return ew_eq(x, y);
    else if constexpr (OP == ASG_OP_NE)
      return ew_ne(x, y);
    else if constexpr (OP == ASG_OP_LT)
      return ew_lt(x, y);
    else if constexpr (OP == ASG_OP_LE)
      return ew_le(x, y);
    else if constexpr (OP == ASG_OP_GT)
      return ew_gt(x, y);
    else
      return ew_ge(x, y);
  }
};

template <class T> struct WhereF {
  __device__ __forceinline__ T operator()(T c, T a, T b) const { return ew_where(c, a, b); }
};

template <class T> struct IdentityF {
  __device__ __forceinline__ T operator()(T x) const { return x; }
};

// Cast through double / int64 exactly as the CPU: float -> int truncates,
// NaN -> 0, beyond +-9.2e18 -> INT64 limits; int64 -> int32 keeps low bits.
template <class TO, class TI> struct CastF {
  __device__ __forceinline__ TO operator()(TI x) const {
    if constexpr (is_int_v<TI>) {
      if constexpr (is_int_v<TO>)
        return (TO)(int64_t)x;
      else
        return (TO)(double)(int64_t)x;
    } else {
      double v = (double)x;
      if constexpr (is_int_v<TO>) {
        int64_t iv = v != v ? 0 : v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
        return (TO)iv;
      } else {
        return (TO)v;
      }
    }
  }
};

// ---- kernels ----
template <class T, int N> struct Ins { const T *p[N]; };

// Per-input element strides over the merged output dims (0 = broadcast):
// asg__broadcast_plan (runtime/layout.h).
using Bcast = asg_bcast_plan;
static_assert(kMaxIn == ASG_BCAST_MAX_IN, "one input bound");

// The same for outputs of < 2^31 elements: 32-bit strides and dividers.
struct Bcast32 {
  int nd;
  asg_fastdiv div[ASG_MAX_DIMS];
  int32_t st[kMaxIn][ASG_MAX_DIMS];
};

template <class T, int K> struct alignas(sizeof(T) * K) Vec { T v[K]; };

template <class F, class TO, class TI, int N>
__device__ __forceinline__ TO apply(const F &f, const TI (&v)[N]) {
  if constexpr (N == 1)
    return f(v[0]);
  else if constexpr (N == 2)
    return f(v[0], v[1]);
  else
    return f(v[0], v[1], v[2]);
}

// out [n] contiguous; input k is contiguous [n], or a scalar when bit k of
// `splat` is set. K elements per thread step, 16-byte accesses for the
// wider of the two types (pointers checked for alignment on the host).
template <class F, class TO, class TI, int N>
__global__ void __launch_bounds__(kThreads)
    ew_vec_kernel(F f, TO *__restrict__ o, Ins<TI, N> in, unsigned splat, int64_t n) {
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  constexpr int K = 16 / (sizeof(TO) > sizeof(TI) ? sizeof(TO) : sizeof(TI));
  using VI = Vec<TI, K>;
  using VO = Vec<TO, K>;
  TI sv[N];
#pragma unroll
  for (int k = 0; k < N; k++)
    sv[k] = (splat >> k & 1u) ? in.p[k][0] : TI(0);
  const int64_t nv = n / K, stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  for (int64_t i = tid; i < nv; i += stride) {
    VI a[N];
#pragma unroll
    for (int k = 0; k < N; k++)
      if (!(splat >> k & 1u)) a[k] = reinterpret_cast<const VI *>(in.p[k])[i];
    VO r;
#pragma unroll
    for (int j = 0; j < K; j++) {
      TI v[N];
#pragma unroll
      for (int k = 0; k < N; k++)
        v[k] = (splat >> k & 1u) ? sv[k] : a[k].v[j];
      r.v[j] = apply<F, TO, TI, N>(f, v);
    }
    reinterpret_cast<VO *>(o)[i] = r;
  }
  for (int64_t i = nv * K + tid; i < n; i += stride) { // tail (< K elements)
    TI v[N];
#pragma unroll
    for (int k = 0; k < N; k++)
      v[k] = (splat >> k & 1u) ? sv[k] : in.p[k][i];
    o[i] = apply<F, TO, TI, N>(f, v);
  }
}

// out [dims...] row-major, input k at sum(idx[d] * st[k][d]); outputs of
// < 2^31 elements (inputs are never larger than the output, so their
// offsets fit too).
template <class F, class TO, class TI, int N>
__global__ void __launch_bounds__(kThreads)
    ew_strided32_kernel(F f, TO *__restrict__ o, Ins<TI, N> in, Bcast32 b, uint32_t n) {
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  const uint32_t stride = gridDim.x * blockDim.x;
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int32_t off[N];
    uint32_t r = i;
#pragma unroll
    for (int k = 0; k < N; k++)
      off[k] = 0;
    for (int d = b.nd - 1; d > 0; d--) {
      const uint32_t q = asg_cuda_fastdiv(b.div[d], r);
      const int32_t idx = (int32_t)(r - q * b.div[d].d);
      r = q;
#pragma unroll
      for (int k = 0; k < N; k++)
        off[k] += idx * b.st[k][d];
    }
#pragma unroll
    for (int k = 0; k < N; k++)
      off[k] += (int32_t)r * b.st[k][0]; // r < dims[0]
    TI v[N];
#pragma unroll
    for (int k = 0; k < N; k++)
      v[k] = in.p[k][off[k]];
    o[i] = apply<F, TO, TI, N>(f, v);
  }
}

// out [.., inner] with inner % K == 0 (< 2^31 elements): each thread writes K
// consecutive elements of one row ([B, T, C] + [C] style broadcasts); input
// k's innermost stride is 1 (one K-vector load, aligned: see launch) or 0
// (one value for the K outputs).
template <class F, class TO, class TI, int N>
__global__ void __launch_bounds__(kThreads)
    ew_rowvec32_kernel(F f, TO *__restrict__ o, Ins<TI, N> in, Bcast32 b, uint32_t nvec) {
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  constexpr int K = 16 / (sizeof(TO) > sizeof(TI) ? sizeof(TO) : sizeof(TI));
  using VI = Vec<TI, K>;
  using VO = Vec<TO, K>;
  const int last = b.nd - 1;
  const uint32_t stride = gridDim.x * blockDim.x;
  for (uint32_t v = blockIdx.x * blockDim.x + threadIdx.x; v < nvec; v += stride) {
    const uint32_t i = v * (uint32_t)K;
    int32_t off[N];
    uint32_t r = i;
#pragma unroll
    for (int k = 0; k < N; k++)
      off[k] = 0;
    for (int d = last; d > 0; d--) {
      const uint32_t q = asg_cuda_fastdiv(b.div[d], r);
      const int32_t idx = (int32_t)(r - q * b.div[d].d);
      r = q;
#pragma unroll
      for (int k = 0; k < N; k++)
        off[k] += idx * b.st[k][d];
    }
#pragma unroll
    for (int k = 0; k < N; k++)
      off[k] += (int32_t)r * b.st[k][0];
    VI a[N];
    TI sv[N];
#pragma unroll
    for (int k = 0; k < N; k++) {
      if (b.st[k][last] != 0)
        a[k] = *reinterpret_cast<const VI *>(in.p[k] + off[k]);
      else
        sv[k] = in.p[k][off[k]];
    }
    VO res;
#pragma unroll
    for (int j = 0; j < K; j++) {
      TI x[N];
#pragma unroll
      for (int k = 0; k < N; k++)
        x[k] = b.st[k][last] != 0 ? a[k].v[j] : sv[k];
      res.v[j] = apply<F, TO, TI, N>(f, x);
    }
    *reinterpret_cast<VO *>(o + i) = res;
  }
}

// The same with 64-bit indices, for huge outputs.
template <class F, class TO, class TI, int N>
__global__ void __launch_bounds__(kThreads)
    ew_strided64_kernel(F f, TO *__restrict__ o, Ins<TI, N> in, Bcast b, int64_t n) {
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[N];
#pragma unroll
    for (int k = 0; k < N; k++)
      off[k] = 0;
    int64_t r = i;
    for (int d = b.nd - 1; d >= 0; d--) {
      const int64_t idx = r % b.dims[d];
      r /= b.dims[d];
#pragma unroll
      for (int k = 0; k < N; k++)
        off[k] += idx * b.st[k][d];
    }
    TI v[N];
#pragma unroll
    for (int k = 0; k < N; k++)
      v[k] = in.p[k][off[k]];
    o[i] = apply<F, TO, TI, N>(f, v);
  }
}

// out [n] = v
template <class T> __global__ void fill_kernel(T *__restrict__ o, T v, int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
    o[i] = v;
}

// ---- host side ----
bool aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

template <class TO, class TI, int N, class F> asg_status launch(const asg_cuda_call *c, F f) {
  const asg_step *s = c->s;
  const int64_t n = asg_shape_numel(s->out.shape);
  if (n <= 0) return ASG_OK;
  Bcast b;
  asg__broadcast_plan(&b, s->out.shape, s->in, N);
  Ins<TI, N> in;
  for (int k = 0; k < N; k++)
    in.p[k] = static_cast<const TI *>(c->in[k]);
  TO *o = static_cast<TO *>(c->out);
  if (b.nd == 1) { // every operand contiguous or a scalar
    constexpr int K = 16 / (sizeof(TO) > sizeof(TI) ? sizeof(TO) : sizeof(TI));
    unsigned splat = 0;
    bool ok = aligned(o, sizeof(TO) * K);
    for (int k = 0; k < N; k++) {
      if (b.st[k][0] == 0)
        splat |= 1u << k;
      else
        ok = ok && aligned(in.p[k], sizeof(TI) * K);
    }
    if (ok) {
      const int64_t units = n / K > 0 ? n / K : 1;
      pdl_launch(c->ctx, ew_vec_kernel<F, TO, TI, N>, asg_cuda_blocks(units, kThreads), kThreads, 0,
                 f, o, in, splat, n);
      return asg_cuda_check(c);
    }
  }
  const unsigned blocks = asg_cuda_blocks(n, kThreads);
  if (n <= (int64_t)INT32_MAX) { // i + stride stays below 2^32
    Bcast32 b32;
    b32.nd = b.nd;
    for (int d = 0; d < b.nd; d++) {
      b32.div[d] = asg__fastdiv((uint32_t)b.dims[d]);
      for (int k = 0; k < kMaxIn; k++)
        b32.st[k][d] = (int32_t)b.st[k][d];
    }
    // Rows of K-vectors: an input contiguous along the last dim has outer
    // strides that are multiples of that dim, so with inner % K == 0 and
    // aligned bases every vector access is aligned.
    constexpr int K = 16 / (sizeof(TO) > sizeof(TI) ? sizeof(TO) : sizeof(TI));
    const int last = b.nd - 1;
    bool rowvec = b.dims[last] % K == 0 && aligned(o, sizeof(TO) * K);
    for (int k = 0; k < N && rowvec; k++) {
      const int64_t sl = b.st[k][last];
      rowvec = sl == 0 || (sl == 1 && aligned(in.p[k], sizeof(TI) * K));
    }
    if (rowvec) {
      const uint32_t nvec = (uint32_t)(n / K);
      pdl_launch(c->ctx, ew_rowvec32_kernel<F, TO, TI, N>, asg_cuda_blocks(nvec, kThreads),
                 kThreads, 0, f, o, in, b32, nvec);
      return asg_cuda_check(c);
    }
    pdl_launch(c->ctx, ew_strided32_kernel<F, TO, TI, N>, blocks, kThreads, 0, f, o, in, b32,
               (uint32_t)n);
  } else {
    pdl_launch(c->ctx, ew_strided64_kernel<F, TO, TI, N>, blocks, kThreads, 0, f, o, in, b, n);
  }
  return asg_cuda_check(c);
}

asg_status dtype_error(const asg_cuda_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

// ---- unary ----
// f32 x [n] -> y [n] as the 16-bit operand copy of the products that alone
// read it (asg_cuda_call.half_out; bf16 when HO == kHalfBf16): four
// elements a step when x is 16-byte and y 8-byte aligned, then the tail.
template <int HO, class F>
__global__ void __launch_bounds__(kThreads)
    unary_half_kernel(F f, const float *__restrict__ x, void *__restrict__ y, int64_t n, bool vec) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  const int64_t n4 = vec ? n / 4 : 0;
  for (int64_t i = tid; i < n4; i += stride) {
    float4 v = reinterpret_cast<const float4 *>(x)[i];
    v.x = f(v.x), v.y = f(v.y), v.z = f(v.z), v.w = f(v.w);
    half_store4<HO>(y, i, v);
  }
  for (int64_t i = n4 * 4 + tid; i < n; i += stride)
    half_store<HO>(y, i, f(x[i]));
}

template <class T, class F> asg_status unary_launch(const asg_cuda_call *c, F f) {
  if constexpr (std::is_same<T, float>::value) {
    if (c->half_out) {
      const int64_t n = asg_shape_numel(c->s->out.shape);
      const bool vec = (uintptr_t)c->in[0] % 16 == 0 && (uintptr_t)c->half_out % 8 == 0;
      const unsigned grid = asg_cuda_blocks(vec ? (n + 3) / 4 : n, kThreads);
      if (c->bf16)
        unary_half_kernel<kHalfBf16><<<grid, kThreads, 0, c->ctx->stream>>>(
            f, (const float *)c->in[0], c->half_out, n, vec);
      else
        unary_half_kernel<kHalfFp16><<<grid, kThreads, 0, c->ctx->stream>>>(
            f, (const float *)c->in[0], c->half_out, n, vec);
      return asg_cuda_check(c);
    }
  }
  return launch<T, T, 1>(c, f);
}

template <class T> asg_status unary_t(const asg_cuda_call *c) {
  const T f0 = (T)c->s->attr.f[0], f1 = (T)c->s->attr.f[1];
#define ASG_UN(ID)                                                                                 \
  case ASG_OP_##ID: return unary_launch<T>(c, UnaryF<ASG_OP_##ID, T>{f0, f1});
  // clang-format off
  switch (c->s->op) {
    ASG_UN(NEG) ASG_UN(ABS) ASG_UN(SIGN) ASG_UN(RELU) ASG_UN(CLAMP)
    default: break;
  }
  if constexpr (!is_int_v<T>) {
    switch (c->s->op) {
      ASG_UN(EXP) ASG_UN(LOG) ASG_UN(SQRT) ASG_UN(RSQRT) ASG_UN(SIN) ASG_UN(COS) ASG_UN(TANH)
      ASG_UN(ERF) ASG_UN(SIGMOID) ASG_UN(LEAKY_RELU) ASG_UN(GELU) ASG_UN(GELU_TANH) ASG_UN(SILU)
      ASG_UN(ELU) ASG_UN(SOFTPLUS)
      default: break;
    }
  }
  // clang-format on
#undef ASG_UN
  return dtype_error(c, c->s->out.dtype);
}

asg_status unary_run(const asg_cuda_call *c) {
  switch (c->s->out.dtype) {
  case ASG_F32: return unary_t<float>(c);
  case ASG_F64: return unary_t<double>(c);
  case ASG_I32: return unary_t<int32_t>(c);
  case ASG_I64: return unary_t<int64_t>(c);
  default: return dtype_error(c, c->s->out.dtype);
  }
}

// ---- binary and where ----
template <class T> asg_status binary_t(const asg_cuda_call *c) {
#define ASG_BIN(ID)                                                                                \
  case ASG_OP_##ID: return launch<T, T, 2>(c, BinaryF<ASG_OP_##ID, T>{});
  // clang-format off
  switch (c->s->op) {
    ASG_BIN(ADD) ASG_BIN(SUB) ASG_BIN(MUL) ASG_BIN(DIV) ASG_BIN(POW) ASG_BIN(MAXIMUM)
    ASG_BIN(MINIMUM) ASG_BIN(EQ) ASG_BIN(NE) ASG_BIN(LT) ASG_BIN(LE) ASG_BIN(GT) ASG_BIN(GE)
    case ASG_OP_WHERE: return launch<T, T, 3>(c, WhereF<T>{});
    default: break;
  }
  if constexpr (!is_int_v<T>) {
    switch (c->s->op) {
      ASG_BIN(GELU_BWD) ASG_BIN(GELU_TANH_BWD)
      default: break;
    }
  }
  // clang-format on
#undef ASG_BIN
  return dtype_error(c, c->s->out.dtype);
}

asg_status binary_run(const asg_cuda_call *c) {
  const int n_in = c->s->op == ASG_OP_WHERE ? 3 : 2;
  for (int k = 0; k < n_in; k++) // inputs share the output's dtype (checked at build time)
    if (c->s->in[k].dtype != c->s->out.dtype) return dtype_error(c, c->s->in[k].dtype);
  switch (c->s->out.dtype) {
  case ASG_F32: return binary_t<float>(c);
  case ASG_F64: return binary_t<double>(c);
  case ASG_I32: return binary_t<int32_t>(c);
  case ASG_I64: return binary_t<int64_t>(c);
  default: return dtype_error(c, c->s->out.dtype);
  }
}

// ---- cast ----
template <class TO> asg_status cast_to(const asg_cuda_call *c) {
  switch (c->s->in[0].dtype) {
  case ASG_F32: return launch<TO, float, 1>(c, CastF<TO, float>{});
  case ASG_F64: return launch<TO, double, 1>(c, CastF<TO, double>{});
  case ASG_I32: return launch<TO, int32_t, 1>(c, CastF<TO, int32_t>{});
  case ASG_I64: return launch<TO, int64_t, 1>(c, CastF<TO, int64_t>{});
  default: return dtype_error(c, c->s->in[0].dtype);
  }
}

asg_status cast_run(const asg_cuda_call *c) {
  switch (c->s->out.dtype) {
  case ASG_F32: return cast_to<float>(c);
  case ASG_F64: return cast_to<double>(c);
  case ASG_I32: return cast_to<int32_t>(c);
  case ASG_I64: return cast_to<int64_t>(c);
  default: return dtype_error(c, c->s->out.dtype);
  }
}

// ---- broadcast_to: a pure data movement, so any dtype by element size ----
asg_status broadcast_to_run(const asg_cuda_call *c) {
  switch (asg_dtype_size(c->s->out.dtype)) {
  case 2: return launch<uint16_t, uint16_t, 1>(c, IdentityF<uint16_t>{});
  case 4: return launch<uint32_t, uint32_t, 1>(c, IdentityF<uint32_t>{});
  case 8: return launch<uint64_t, uint64_t, 1>(c, IdentityF<uint64_t>{});
  default: return dtype_error(c, c->s->out.dtype);
  }
}

// ---- fill ----
template <class T> asg_status fill_t(const asg_cuda_call *c, int64_t n) {
  const T v = (T)c->s->attr.f[0]; // converted on the host, as the CPU does
  fill_kernel<T><<<asg_cuda_blocks(n, kThreads), kThreads, 0, c->ctx->stream>>>(
      static_cast<T *>(c->out), v, n);
  return asg_cuda_check(c);
}

asg_status fill_run(const asg_cuda_call *c) {
  const int64_t n = asg_shape_numel(c->s->out.shape);
  if (n <= 0) return ASG_OK;
  switch (c->s->out.dtype) {
  case ASG_F32: return fill_t<float>(c, n);
  case ASG_F64: return fill_t<double>(c, n);
  case ASG_I32: return fill_t<int32_t>(c, n);
  case ASG_I64: return fill_t<int64_t>(c, n);
  default: return dtype_error(c, c->s->out.dtype);
  }
}

// ---- identity copies: views that could not alias, and assign ----
asg_status copy_from(const asg_cuda_call *c, const void *src) {
  const size_t bytes = (size_t)asg_shape_numel(c->s->out.shape) * asg_dtype_size(c->s->out.dtype);
  if (c->out == src || bytes == 0) return ASG_OK;
  cudaError_t e = cudaMemcpyAsync(c->out, src, bytes, cudaMemcpyDeviceToDevice, c->ctx->stream);
  if (e != cudaSuccess) {
    cudaGetLastError(); // clear it so that later steps do not report it again
    return asg__error(ASG_ERR_BACKEND, "cuda: %s: %s", c->s->label, cudaGetErrorString(e));
  }
  return asg_cuda_check(c);
}

asg_status copy_run(const asg_cuda_call *c) { return copy_from(c, c->in[0]); }
asg_status assign_run(const asg_cuda_call *c) {
  return copy_from(c, c->in[1]);
} // out aliases the variable

// ---- cache_write ----
// cache [outer, tmax, inner] (out aliases it), value [outer, t, inner] in
// elements of U: out[o, pos + j] = value[o, j] (cpu_shape.c). pos is read
// on the device (a captured graph stays valid). Checked programs (fault
// set): a pos outside [0, tmax - t] writes nothing and is reported, as the
// CPU stops before the step; unchecked: the rows landing in [0, tmax).

// One cache write's arguments (from its call: cw_job).
struct CwJob {
  void *y;
  const void *v, *pos;
  int64_t total, t, tmax, inner;
  unsigned step1;
};

template <typename X> __device__ __forceinline__ bool cw_outside(const CwJob &j, int64_t *pos) {
  *pos = (int64_t) * (const X *)j.pos;
  return *pos < 0 || *pos > j.tmax - j.t;
}

// report: whether an out-of-range position goes to the fault record (a
// checked program writes nothing then either way).
template <typename U, typename X>
__device__ __forceinline__ void cache_write_job(const CwJob &j, asg_index_fault *fault,
                                                bool report) {
  U *__restrict__ y = (U *)j.y;
  const U *__restrict__ v = (const U *)j.v;
  const int64_t t = j.t, tmax = j.tmax, inner = j.inner;
  int64_t pos;
  if (cw_outside<X>(j, &pos)) {
    if (fault) {
      if (report && blockIdx.x == 0 && threadIdx.x == 0) asg_cuda_index_fault(fault, j.step1, pos);
      return;
    }
    if (pos >= tmax || pos <= -t) return; // no row lands (and pos + j cannot overflow)
  }
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < j.total;
       e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t k = e % inner, r = e / inner;
    const int64_t jj = r % t, o = r / t, row = pos + jj;
    if (row >= 0 && row < tmax) y[(o * tmax + row) * inner + k] = v[e];
  }
}

template <typename U, typename X>
__global__ void cache_write_kernel(CwJob j, asg_index_fault *fault) {
  pdl_wait(); // launched dependent (cuda_pdl.cuh)
  pdl_trigger();
  cache_write_job<U, X>(j, fault, true);
}

// Two independent cache writes in one launch (a decode step's k and v rows:
// paired by cuda_exec.c): blockIdx.y picks the job. As when they run one
// after the other, the fault record names the first in schedule order: b
// reports only when a's position is in range.
template <typename U, typename X>
__global__ void cache_write2_kernel(CwJob a, CwJob b, asg_index_fault *fault) {
  pdl_wait();
  pdl_trigger();
  int64_t pa;
  if (blockIdx.y == 0)
    cache_write_job<U, X>(a, fault, true);
  else
    cache_write_job<U, X>(b, fault, !cw_outside<X>(a, &pa));
}

CwJob cw_job(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const int a = (int)s->attr.i[0];
  int64_t outer, inner;
  asg__split_axis(s->out.shape, a, &outer, &inner);
  const int64_t t = s->in[1].shape.dims[a], tmax = s->out.shape.dims[a];
  return CwJob{c->out, c->in[1], c->in[2], outer * t * inner, t, tmax, inner, c->step1};
}

template <typename U> asg_status cache_write_typed(const asg_cuda_call *c) {
  const CwJob j = cw_job(c);
  if (j.total == 0) return ASG_OK;
  const unsigned grid = asg_cuda_blocks(j.total, kThreads);
  if (c->s->in[2].dtype == ASG_I32)
    pdl_launch(c->ctx, cache_write_kernel<U, int32_t>, grid, kThreads, 0, j, c->fault);
  else
    pdl_launch(c->ctx, cache_write_kernel<U, int64_t>, grid, kThreads, 0, j, c->fault);
  return asg_cuda_check(c);
}

template <typename U>
asg_status cache_write2_typed(const asg_cuda_call *a, const asg_cuda_call *b) {
  const CwJob ja = cw_job(a), jb = cw_job(b);
  const int64_t most = ja.total > jb.total ? ja.total : jb.total;
  if (most == 0) return ASG_OK;
  const dim3 grid(asg_cuda_blocks(most, kThreads), 2);
  if (a->s->in[2].dtype == ASG_I32)
    pdl_launch(a->ctx, cache_write2_kernel<U, int32_t>, grid, kThreads, 0, ja, jb, a->fault);
  else
    pdl_launch(a->ctx, cache_write2_kernel<U, int64_t>, grid, kThreads, 0, ja, jb, a->fault);
  return asg_cuda_check(a);
}

asg_status cache_write_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const asg_dtype pt = s->in[2].dtype;
  if (pt != ASG_I32 && pt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: position dtype %s not supported", s->label,
                      asg_dtype_name(pt));
  asg_status st = copy_from(c, c->in[0]); // nothing: the plan aliases out and the cache
  if (st) return st;
  switch (asg_dtype_size(s->out.dtype)) {
  case 2: return cache_write_typed<uint16_t>(c);
  case 4: return cache_write_typed<uint32_t>(c);
  case 8: return cache_write_typed<unsigned long long>(c);
  default:
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->out.dtype));
  }
}

} // namespace

extern "C" bool asg_cuda_cache_write_pairable(const asg_step *a, const asg_step *b) {
  const size_t es = asg_dtype_size(a->out.dtype);
  return a->op == ASG_OP_CACHE_WRITE && b->op == ASG_OP_CACHE_WRITE &&
         es == asg_dtype_size(b->out.dtype) && (es == 2 || es == 4 || es == 8) &&
         a->in[2].dtype == b->in[2].dtype &&
         (a->in[2].dtype == ASG_I32 || a->in[2].dtype == ASG_I64);
}

extern "C" asg_status asg_cuda_cache_write_pair(const asg_cuda_call *a, const asg_cuda_call *b) {
  switch (asg_dtype_size(a->s->out.dtype)) {
  case 2: return cache_write2_typed<uint16_t>(a, b);
  case 4: return cache_write2_typed<uint32_t>(a, b);
  default: return cache_write2_typed<unsigned long long>(a, b);
  }
}

extern "C" void asg_cuda_register_elementwise(asg_cuda_kernel *t) {
  t[ASG_OP_CACHE_WRITE].run = cache_write_run;
  for (asg_op op : asg__unary_ops)
    t[op].run = unary_run;
  for (asg_op op : asg__broadcast_ops)
    t[op].run = binary_run;
  t[ASG_OP_CAST].run = cast_run;
  t[ASG_OP_STOP_GRADIENT].run = copy_run;
  t[ASG_OP_RESHAPE].run = copy_run;
  t[ASG_OP_AUX].run = copy_run; // compile makes no step of it: its parent's step writes it
  t[ASG_OP_BROADCAST_TO].run = broadcast_to_run;
  t[ASG_OP_FILL].run = fill_run;
  t[ASG_OP_ASSIGN].run = assign_run;
}
