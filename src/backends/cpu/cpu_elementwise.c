/* CPU elementwise kernels: unary, binary with broadcasting, where, cast.
 * Broadcasting (asg__broadcast_plan, runtime/layout.h): input strides are 0
 * on broadcast dims, adjacent dims that stay contiguous for every operand
 * are merged, and the loop runs over
 * (row, chunk) work units so that both many short rows and one long row
 * spread over threads. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"
#include "runtime/layout.h"

#define CHUNK 16384

/* Offsets of work unit u: row = u / nchunk over dims [0, nd-1). */
static void bcast_offsets(const asg_bcast_plan *b, int n, int64_t row, int64_t *off) {
  for (int k = 0; k < n; k++)
    off[k] = 0;
  for (int d = b->nd - 2; d >= 0; d--) {
    int64_t i = row % b->dims[d];
    row /= b->dims[d];
    for (int k = 0; k < n; k++)
      off[k] += i * b->st[k][d];
  }
}

/* ---- the per-type kernels (cpu_elementwise_tmpl.h): bin_*, where_*, un_* ---- */
#define SUF f32
#define T float
#define IS_INT 0
#define POW powf
#define MATH(fn) fn##f
#include "backends/cpu/cpu_elementwise_tmpl.h"
#define SUF f64
#define T double
#define IS_INT 0
#define POW pow
#define MATH(fn) fn
#include "backends/cpu/cpu_elementwise_tmpl.h"
#define SUF i32
#define T int32_t
#define IS_INT 1
#define POW pow
#include "backends/cpu/cpu_elementwise_tmpl.h"
#define SUF i64
#define T int64_t
#define IS_INT 1
#define POW pow
#include "backends/cpu/cpu_elementwise_tmpl.h"

/* ---- f32 gradients of gelu: vectorized like erf and gelu below ---- */
/* g (Phi(x) + x phi(x)): erf and e^(-x^2/2) from one asg_erff_exp_fast. */
ASG_ALWAYS_INLINE float gelu_bwd1_f32(float g, float x) {
  float e, erf = asg_erff_exp_fast(x * 0.70710678118654752440f, &e);
  return g * (0.5f * (1.0f + erf) + x * (e * 0.39894228040143267794f));
}
/* g gelu_tanh'(x), u = a (x + c x^3): (1 + tanh u)/2 = sigmoid(2u) and
 * (1 - tanh^2 u)/4 = sigmoid(2u) sigmoid(-2u), both from e = exp(-2|u|) <= 1
 * (no overflow, no cancellation): p = 1/(1 + e) = sigmoid(2|u|), q = e p =
 * sigmoid(-2|u|); gelu_tanh' = sigmoid(2u) + 2a x p q (1 + 3c x^2). */
ASG_ALWAYS_INLINE float gelu_tanh_bwd1_f32(float g, float x) {
  const float x2 = x * x, u = 0.79788456080286535588f * (x + 0.044715f * x2 * x);
  const float e = asg_expf_fast(-2.0f * fabsf(u)), p = 1.0f / (1.0f + e), q = e * p;
  return g * ((u >= 0 ? p : q) + (float)(2 * 0.79788456080286535588) * x * (p * q) *
                                     (1.0f + (float)(3 * 0.044715) * x2));
}
/* o [n] = g [n] * gelu'(x [n]) (tanh form if th), g and x read with element
 * strides sg, sx (0: broadcast); the same-shape case gets its own loop. */
ASG_ALWAYS_INLINE void gelu_bwd_f32(bool th, float *o, const float *g, int64_t sg, const float *x,
                                    int64_t sx, int64_t n) {
  if (sg == 1 && sx == 1) {
    if (th)
      for (int64_t i = 0; i < n; i++)
        o[i] = gelu_tanh_bwd1_f32(g[i], x[i]);
    else
      for (int64_t i = 0; i < n; i++)
        o[i] = gelu_bwd1_f32(g[i], x[i]);
  } else if (th) {
    for (int64_t i = 0; i < n; i++)
      o[i] = gelu_tanh_bwd1_f32(g[i * sg], x[i * sx]);
  } else {
    for (int64_t i = 0; i < n; i++)
      o[i] = gelu_bwd1_f32(g[i * sg], x[i * sx]);
  }
}

/* A broadcasting op split into (row, chunk) work units. */
typedef struct bcast_job {
  const asg_cpu_call *c;
  asg_bcast_plan b;
  int64_t inner, nchunk;
} bcast_job;

/* Work units [lo, hi): out [rows, inner] from the inputs' broadcast views.
 * Compiled again for AVX2 and AVX-512 below with the generic loops inlined
 * (on data in cache, as the MLP's ReLU gradient gt + mul: ~30% faster than
 * SSE2); the same IEEE operation per element at every level. */
ASG_ALWAYS_INLINE void broadcast_body(void *ctx, int64_t lo, int64_t hi) {
  const bcast_job *j = ctx;
  const asg_cpu_call *c = j->c;
  const asg_step *s = c->s;
  const asg_bcast_plan *bp = &j->b;
  const int nin = s->n_in;
  const int64_t inner = j->inner, nchunk = j->nchunk;
  const size_t es = asg_dtype_size(s->out.dtype);
  for (int64_t u = lo; u < hi; u++) {
    int64_t off[3], row = u / nchunk, ch = u % nchunk;
    int64_t i0 = ch * CHUNK, n = inner - i0 < CHUNK ? inner - i0 : CHUNK;
    bcast_offsets(bp, nin, row, off);
    for (int k = 0; k < nin; k++)
      off[k] += i0 * bp->st[k][bp->nd - 1];
    char *o = (char *)c->out + (size_t)(row * inner + i0) * es;
    const char *p0 = (const char *)c->in[0] + (size_t)off[0] * es;
    const char *p1 = (const char *)c->in[1] + (size_t)off[1] * es;
    int64_t s0 = bp->st[0][bp->nd - 1], s1 = bp->st[1][bp->nd - 1];
    if (s->op == ASG_OP_WHERE) {
      const char *p2 = (const char *)c->in[2] + (size_t)off[2] * es;
      int64_t s2 = bp->st[2][bp->nd - 1];
      switch (s->out.dtype) {
      case ASG_F32:
        where_f32((float *)o, (const float *)p0, s0, (const float *)p1, s1, (const float *)p2, s2,
                  n);
        break;
      case ASG_F64:
        where_f64((double *)o, (const double *)p0, s0, (const double *)p1, s1, (const double *)p2,
                  s2, n);
        break;
      case ASG_I32:
        where_i32((int32_t *)o, (const int32_t *)p0, s0, (const int32_t *)p1, s1,
                  (const int32_t *)p2, s2, n);
        break;
      case ASG_I64:
        where_i64((int64_t *)o, (const int64_t *)p0, s0, (const int64_t *)p1, s1,
                  (const int64_t *)p2, s2, n);
        break;
      default: break;
      }
      continue;
    }
    if (s->out.dtype == ASG_F32 && (s->op == ASG_OP_GELU_BWD || s->op == ASG_OP_GELU_TANH_BWD)) {
      gelu_bwd_f32(s->op == ASG_OP_GELU_TANH_BWD, (float *)o, (const float *)p0, s0,
                   (const float *)p1, s1, n);
      continue;
    }
    switch (s->out.dtype) {
    case ASG_F32:
      bin_f32(s->op, (float *)o, (const float *)p0, s0, (const float *)p1, s1, n);
      break;
    case ASG_F64:
      bin_f64(s->op, (double *)o, (const double *)p0, s0, (const double *)p1, s1, n);
      break;
    case ASG_I32:
      bin_i32(s->op, (int32_t *)o, (const int32_t *)p0, s0, (const int32_t *)p1, s1, n);
      break;
    case ASG_I64:
      bin_i64(s->op, (int64_t *)o, (const int64_t *)p0, s0, (const int64_t *)p1, s1, n);
      break;
    default: break;
    }
  }
}

static void broadcast_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  broadcast_body(ctx, lo, hi);
}
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void broadcast_range_avx512(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  broadcast_body(ctx, lo, hi);
}
ASG_TARGET_AVX2 static void broadcast_range_avx2(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  broadcast_body(ctx, lo, hi);
}
#endif

static asg_status broadcast_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  bcast_job j = {.c = c};
  asg__broadcast_plan(&j.b, s->out.shape, s->in, s->n_in);
  j.inner = j.b.dims[j.b.nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < j.b.nd - 1; d++)
    rows *= j.b.dims[d];
  j.nchunk = (j.inner + CHUNK - 1) / CHUNK;
  int64_t units = rows * j.nchunk, total = rows * j.inner;
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, total, units), units,
                       ASG_CPU_PICK(broadcast_range), &j);
  return ASG_OK;
}

/* f32 erf and gelu (the exporters' GELU is built on Erf): libm's erff is a
 * scalar call per element; asg_erff_fast (cpu_simd.h) vectorizes, at every
 * SIMD level with the same results. o [n] = f(a [n]). */
ASG_ALWAYS_INLINE void erf_gelu_f32(bool gelu, float *o, const float *a, int64_t n) {
  if (gelu)
    for (int64_t i = 0; i < n; i++)
      o[i] = 0.5f * a[i] * (1.0f + asg_erff_fast(a[i] * 0.70710678118654752440f));
  else
    for (int64_t i = 0; i < n; i++)
      o[i] = asg_erff_fast(a[i]);
}

/* Chunks [lo, hi) of a unary op over out [total] (compiled at every level
 * as broadcast_body). */
ASG_ALWAYS_INLINE void unary_body(void *ctx, int64_t lo, int64_t hi) {
  const asg_cpu_call *c = ctx;
  const asg_step *s = c->s;
  int64_t total = asg_shape_numel(s->out.shape);
  size_t es = asg_dtype_size(s->out.dtype);
  for (int64_t u = lo; u < hi; u++) {
    int64_t i0 = u * CHUNK, n = total - i0 < CHUNK ? total - i0 : CHUNK;
    void *o = (char *)c->out + (size_t)i0 * es;
    const void *a = (const char *)c->in[0] + (size_t)i0 * es;
    if (s->out.dtype == ASG_F32 && (s->op == ASG_OP_ERF || s->op == ASG_OP_GELU)) {
      erf_gelu_f32(s->op == ASG_OP_GELU, o, a, n);
      continue;
    }
    switch (s->out.dtype) {
    case ASG_F32: un_f32(s->op, &s->attr, o, a, n); break;
    case ASG_F64: un_f64(s->op, &s->attr, o, a, n); break;
    case ASG_I32: un_i32(s->op, &s->attr, o, a, n); break;
    case ASG_I64: un_i64(s->op, &s->attr, o, a, n); break;
    default: break;
    }
  }
}

static void unary_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  unary_body(ctx, lo, hi);
}
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void unary_range_avx512(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  unary_body(ctx, lo, hi);
}
ASG_TARGET_AVX2 static void unary_range_avx2(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  unary_body(ctx, lo, hi);
}
#endif

static asg_status unary_kernel(const asg_cpu_call *c) {
  int64_t total = asg_shape_numel(c->s->out.shape);
  int64_t units = (total + CHUNK - 1) / CHUNK;
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, total, units), units,
                       ASG_CPU_PICK(unary_range), (void *)c);
  return ASG_OK;
}

/* ---- cast: read any host dtype as double/int64, write the target ---- */
/* Elements [lo, hi) of out [n]. */
static void cast_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const asg_cpu_call *c = ctx;
  asg_dtype from = c->s->in[0].dtype, to = c->s->out.dtype;
  const void *a = c->in[0];
  void *o = c->out;
  for (int64_t i = lo; i < hi; i++) {
    double v = 0;
    int64_t iv = 0;
    bool is_int = false;
    switch (from) {
    case ASG_F32: v = ((const float *)a)[i]; break;
    case ASG_F64: v = ((const double *)a)[i]; break;
    case ASG_I32: iv = ((const int32_t *)a)[i], is_int = true; break;
    case ASG_I64: iv = ((const int64_t *)a)[i], is_int = true; break;
    default: break;
    }
    if (is_int)
      v = (double)iv;
    else if (to == ASG_I32 || to == ASG_I64) /* float -> int truncates; NaN/inf -> 0/limits */
      iv = v != v ? 0 : v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
    switch (to) {
    case ASG_F32: ((float *)o)[i] = (float)v; break;
    case ASG_F64: ((double *)o)[i] = v; break;
    case ASG_I32: ((int32_t *)o)[i] = (int32_t)iv; break;
    case ASG_I64: ((int64_t *)o)[i] = iv; break;
    default: break;
    }
  }
}

static asg_status cast_kernel(const asg_cpu_call *c) {
  int64_t n = asg_shape_numel(c->s->out.shape);
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, n, n), n, cast_range, (void *)c);
  return ASG_OK;
}

/* Views and copies share this: identity on the bytes. */
static asg_status copy_kernel(const asg_cpu_call *c) {
  if (c->out != c->in[0])
    memmove(c->out, c->in[0], asg_shape_numel(c->s->out.shape) * asg_dtype_size(c->s->out.dtype));
  return ASG_OK;
}

void asg_cpu_register_elementwise(asg_cpu_kernel *t) {
  for (int i = 0; i < ASG__N_UNARY_OPS; i++)
    t[asg__unary_ops[i]].run = unary_kernel;
  for (int i = 0; i < ASG__N_BROADCAST_OPS; i++)
    t[asg__broadcast_ops[i]].run = broadcast_kernel;
  t[ASG_OP_CAST].run = cast_kernel;
  t[ASG_OP_STOP_GRADIENT].run = copy_kernel;
  t[ASG_OP_RESHAPE].run = copy_kernel;
  t[ASG_OP_AUX].run = copy_kernel; /* compile makes no step of it: its parent's step writes it */
}
