/* Vulkan kernels of the elementwise family: unary ops, binary ops and where
 * with NumPy broadcasting, cast, broadcast_to, fill, and the identity copies
 * (stop_gradient, reshape, assign). Semantics follow the CPU reference
 * (cpu_elementwise.c, cpu_shape.c); the shaders are ew_unary.comp,
 * ew_binary.comp and ew_cast.comp, transcendentals from math64.glsl.
 *
 * Broadcasting: on the host each input gets per-dim element strides (0 on
 * broadcast dims) and adjacent dims that stay contiguous for every operand
 * are merged. One merged dim means every operand is contiguous or a scalar
 * (the shader's fast path, no index math); otherwise the shader decomposes
 * the flat output index with multiply-shift divisions. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

#define EW_MAX_IN 3

/* Op codes of the shaders: keep in sync with shaders/ew_ops.glsl. */
enum {
  EW_NEG,
  EW_ABS,
  EW_SIGN,
  EW_EXP,
  EW_LOG,
  EW_SQRT,
  EW_RSQRT,
  EW_SIN,
  EW_COS,
  EW_TANH,
  EW_ERF,
  EW_SIGMOID,
  EW_RELU,
  EW_LEAKY_RELU,
  EW_GELU,
  EW_GELU_TANH,
  EW_SILU,
  EW_ELU,
  EW_SOFTPLUS,
  EW_CLAMP
};
enum {
  EW_ADD,
  EW_SUB,
  EW_MUL,
  EW_DIV,
  EW_POW,
  EW_MAXIMUM,
  EW_MINIMUM,
  EW_EQ,
  EW_NE,
  EW_LT,
  EW_LE,
  EW_GT,
  EW_GE,
  EW_GELU_BWD,
  EW_GELU_TANH_BWD,
  EW_WHERE,
  EW_COPY
};

static asg_status dtype_error(const asg_vk_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

/* Copies n bytes (a multiple of 4) from src to dst unless they coincide. */
static asg_status copy_bytes(const asg_vk_call *c, uint64_t dst, uint64_t src, size_t n) {
  struct {
    uint64_t out, in;
    int64_t n;
  } p = {dst, src, (int64_t)(n / 4)};
  if (dst == src || !n) return ASG_OK;
  if (n % 4) return dtype_error(c, c->s->out.dtype);
  return asg_vk_dispatch(c, "util_copy", &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

/* ---- unary: [n] contiguous ---- */
static int unary_code(asg_op op, bool is_float) {
  switch (op) {
  case ASG_OP_NEG: return EW_NEG;
  case ASG_OP_ABS: return EW_ABS;
  case ASG_OP_SIGN: return EW_SIGN;
  case ASG_OP_RELU: return EW_RELU;
  case ASG_OP_CLAMP: return EW_CLAMP;
  default: break;
  }
  if (!is_float) return -1; /* the rest are float-only, as on the CPU */
  switch (op) {
  case ASG_OP_EXP: return EW_EXP;
  case ASG_OP_LOG: return EW_LOG;
  case ASG_OP_SQRT: return EW_SQRT;
  case ASG_OP_RSQRT: return EW_RSQRT;
  case ASG_OP_SIN: return EW_SIN;
  case ASG_OP_COS: return EW_COS;
  case ASG_OP_TANH: return EW_TANH;
  case ASG_OP_ERF: return EW_ERF;
  case ASG_OP_SIGMOID: return EW_SIGMOID;
  case ASG_OP_LEAKY_RELU: return EW_LEAKY_RELU;
  case ASG_OP_GELU: return EW_GELU;
  case ASG_OP_GELU_TANH: return EW_GELU_TANH;
  case ASG_OP_SILU: return EW_SILU;
  case ASG_OP_ELU: return EW_ELU;
  case ASG_OP_SOFTPLUS: return EW_SOFTPLUS;
  default: return -1;
  }
}

static asg_status unary_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  char name[32];
  asg_status st = asg_vk_variant(c, "ew_unary", dt, name, sizeof name);
  if (st) return st;
  const int code = unary_code(s->op, asg_dtype_is_float(dt));
  if (code < 0 || s->in[0].dtype != dt) return dtype_error(c, dt);
  /* attrs converted to the dtype on the host, as the CPU does ((T)f[k]) */
  struct {
    uint64_t out, in;
    uint64_t f0d, f1d; /* double bits (no Float64 in the other variants) */
    int64_t i0, i1;
    float f0f, f1f;
    int32_t n, op;
  } p;
  memset(&p, 0, sizeof p);
  p.out = c->out;
  p.in = c->in[0];
  const double f0 = s->attr.f[0], f1 = s->attr.f[1];
  memcpy(&p.f0d, &f0, 8);
  memcpy(&p.f1d, &f1, 8);
  p.f0f = (float)f0;
  p.f1f = (float)f1;
  if (dt == ASG_I32) {
    p.i0 = (int32_t)f0;
    p.i1 = (int32_t)f1;
  } else if (dt == ASG_I64) {
    p.i0 = (int64_t)f0;
    p.i1 = (int64_t)f1;
  }
  p.n = (int32_t)asg_shape_numel(s->out.shape);
  p.op = code;
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

/* ---- binary, where, broadcast_to: broadcasting over merged dims ---- */
typedef struct ew_bparams {
  uint64_t out, in[EW_MAX_IN];
  int32_t n, op, nd, pad;
  uint32_t dim[ASG_MAX_DIMS], mag[ASG_MAX_DIMS], shf[ASG_MAX_DIMS];
  int32_t st[EW_MAX_IN][ASG_MAX_DIMS];
} ew_bparams;

/* The broadcast plan of the first n_in inputs (asg__broadcast_plan: merged
 * dims, element strides) in the shader's 32-bit form, with dividers. */
_Static_assert(EW_MAX_IN == ASG_BCAST_MAX_IN, "one input bound");
static void bcast_init(ew_bparams *b, const asg_step *s, int n_in) {
  asg_bcast_plan bp;
  asg__broadcast_plan(&bp, s->out.shape, s->in, n_in);
  b->nd = bp.nd;
  for (int d = 0; d < bp.nd; d++) {
    const asg_fastdiv f = asg__fastdiv((uint32_t)bp.dims[d]); /* dims < 2^31 */
    b->dim[d] = f.d;
    b->mag[d] = f.m;
    b->shf[d] = f.l;
    for (int k = 0; k < EW_MAX_IN; k++)
      b->st[k][d] = (int32_t)bp.st[k][d]; /* < 2^31: inputs are never larger than out */
  }
}

static asg_status bcast_dispatch(const asg_vk_call *c, const char *base, asg_dtype dt, int n_in,
                                 int code) {
  char name[32];
  asg_status st = asg_vk_variant(c, base, dt, name, sizeof name);
  if (st) return st;
  ew_bparams p;
  memset(&p, 0, sizeof p);
  p.out = c->out;
  for (int k = 0; k < EW_MAX_IN; k++)
    p.in[k] = c->in[k < n_in ? k : 0];
  p.n = (int32_t)asg_shape_numel(c->s->out.shape);
  p.op = code;
  bcast_init(&p, c->s, n_in);
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

static asg_status binary_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  int code;
  switch (s->op) {
  case ASG_OP_ADD: code = EW_ADD; break;
  case ASG_OP_SUB: code = EW_SUB; break;
  case ASG_OP_MUL: code = EW_MUL; break;
  case ASG_OP_DIV: code = EW_DIV; break;
  case ASG_OP_POW: code = EW_POW; break;
  case ASG_OP_MAXIMUM: code = EW_MAXIMUM; break;
  case ASG_OP_MINIMUM: code = EW_MINIMUM; break;
  case ASG_OP_EQ: code = EW_EQ; break;
  case ASG_OP_NE: code = EW_NE; break;
  case ASG_OP_LT: code = EW_LT; break;
  case ASG_OP_LE: code = EW_LE; break;
  case ASG_OP_GT: code = EW_GT; break;
  case ASG_OP_GE: code = EW_GE; break;
  case ASG_OP_GELU_BWD: code = EW_GELU_BWD; break;
  case ASG_OP_GELU_TANH_BWD: code = EW_GELU_TANH_BWD; break;
  default: code = EW_WHERE; break;
  }
  const int n_in = code == EW_WHERE ? 3 : 2;
  for (int k = 0; k < n_in; k++) /* inputs share the output's dtype (checked at build time) */
    if (s->in[k].dtype != s->out.dtype) return dtype_error(c, s->in[k].dtype);
  if ((code == EW_GELU_BWD || code == EW_GELU_TANH_BWD) && !asg_dtype_is_float(s->out.dtype))
    return dtype_error(c, s->out.dtype); /* float-only, as on the CPU */
  return bcast_dispatch(c, "ew_binary", s->out.dtype, n_in, code);
}

/* A pure data movement: any dtype by its element size. */
static asg_status broadcast_to_record(const asg_vk_call *c) {
  const asg_dtype dt = c->s->out.dtype;
  switch (asg_dtype_size(dt)) {
  case 4: return bcast_dispatch(c, "ew_binary", ASG_I32, 1, EW_COPY);
  case 8: return bcast_dispatch(c, "ew_binary", ASG_I64, 1, EW_COPY);
  default: return dtype_error(c, dt);
  }
}

/* ---- cast: [n] contiguous, one variant per (from, to) ---- */
static asg_status cast_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const asg_dtype from = s->in[0].dtype, to = s->out.dtype;
  if (from == to) return copy_bytes(c, c->out, c->in[0], asg__tdesc_bytes(&s->out));
  const char *fs = asg_vk_suffix(from), *ts = asg_vk_suffix(to);
  if (!fs) return dtype_error(c, from);
  if (!ts) return dtype_error(c, to);
  if ((from == ASG_F64 || to == ASG_F64) && !c->ctx->caps.f64) return dtype_error(c, ASG_F64);
  char name[32];
  snprintf(name, sizeof name, "ew_cast%s%s", fs, ts);
  struct {
    uint64_t out, in;
    int32_t n, pad;
  } p = {c->out, c->in[0], (int32_t)asg_shape_numel(s->out.shape), 0};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

/* ---- fill, and the identity copies ---- */
static asg_status fill_record(const asg_vk_call *c) {
  char name[32];
  asg_status st = asg_vk_variant(c, "fill", c->s->out.dtype, name, sizeof name);
  double v = c->s->attr.f[0];
  struct { /* shaders/fill.comp */
    uint64_t out;
    int64_t n;
    uint64_t dbits;
    int64_t ival;
    float fval;
  } p = {c->out, asg_shape_numel(c->s->out.shape), 0, 0, (float)v};
  memcpy(&p.dbits, &v, sizeof v);
  p.ival = c->s->out.dtype == ASG_I32 ? (int64_t)(int32_t)v : (int64_t)v;
  return st ? st : asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

/* stop_gradient, reshape: views that could not alias their input */
static asg_status copy_record(const asg_vk_call *c) {
  return copy_bytes(c, c->out, c->in[0], asg__tdesc_bytes(&c->s->out));
}

static asg_status assign_record(const asg_vk_call *c) {
  return copy_bytes(c, c->out, c->in[1], asg__tdesc_bytes(&c->s->out)); /* out aliases the var */
}

/* cache_write (shaders/cache_write.comp): out aliases the cache */
static asg_status cache_write_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype, pt = s->in[2].dtype;
  const size_t es = asg_dtype_size(dt);
  if ((es != 4 && es != 8) || (dt == ASG_F64 && !c->ctx->caps.f64)) return dtype_error(c, dt);
  if (pt != ASG_I32 && pt != ASG_I64) return dtype_error(c, pt);
  const int a = (int)s->attr.i[0];
  int64_t outer, inner;
  asg__split_axis(s->out.shape, a, &outer, &inner);
  const int64_t t = s->in[1].shape.dims[a], total = outer * t * inner;
  if (asg_shape_numel(s->out.shape) >= INT32_MAX) /* the shader's index math is 32-bit */
    return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: cache of more than 2^31 - 1 elements",
                      s->label);
  if (c->out != c->in[0]) { /* the plan aliases them: nothing to copy */
    asg_status st = copy_bytes(c, c->out, c->in[0], asg__tdesc_bytes(&s->out));
    if (st) return st;
    asg_vk_barrier(c);
  }
  struct { /* shaders/cache_write.comp */
    uint64_t dst, src, pos, fault;
    int64_t t, tmax;
    uint32_t total, inner;
    int32_t pos64;
    uint32_t step1;
  } p = {c->out,          c->in[1],        c->in[2],      c->fault, t, s->out.shape.dims[a],
         (uint32_t)total, (uint32_t)inner, pt == ASG_I64, c->step1};
  return asg_vk_dispatch(c, es == 8 ? "cache_write_u64" : "cache_write_u32", &p, sizeof p,
                         asg_vk_groups(c, total, 256), 1, 1);
}

void asg_vk_register_elementwise(asg_vk_kernel *t) {
  t[ASG_OP_CACHE_WRITE].record = cache_write_record;
  for (int i = 0; i < ASG__N_UNARY_OPS; i++)
    t[asg__unary_ops[i]].record = unary_record;
  for (int i = 0; i < ASG__N_BROADCAST_OPS; i++)
    t[asg__broadcast_ops[i]].record = binary_record;
  t[ASG_OP_CAST].record = cast_record;
  t[ASG_OP_STOP_GRADIENT].record = copy_record;
  t[ASG_OP_RESHAPE].record = copy_record;
  t[ASG_OP_AUX].record = copy_record; /* compile makes no step of it: its parent's step writes it */
  t[ASG_OP_BROADCAST_TO].record = broadcast_to_record;
  t[ASG_OP_FILL].record = fill_record;
  t[ASG_OP_ASSIGN].record = assign_record;
}
