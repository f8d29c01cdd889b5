/* Cast and CastLike. ASG computes in F32/F64/I32/I64, so the narrower ONNX
 * types are held in one of those with their exact values (docs/onnx.md,
 * "Element types"): float16, bfloat16, the float8 types and float4e2m1 as
 * F32, the small integers as I32, uint32/uint64 as I64. A Cast to one of
 * them rounds (or wraps) the value as ONNX does, built from ASG ops that are
 * exact: the result is a value of the target type, held in the wider one. */
#ifdef ASG_HAVE_ONNX
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/onnx_internal.h"

static asg_tensor *sc(asg_tensor *x, double v) { /* a scalar of x's dtype */
  return asg_scalar(asg_tensor_graph(x), asg_tensor_dtype(x), v);
}

/* floor of F64 values with |v| < 2^62 (callers bound them): truncation by
 * the cast to I64, one less where that went up. */
static asg_tensor *floor_bounded(asg_tensor *v) {
  asg_tensor *t = asg_cast(asg_cast(v, ASG_I64), ASG_F64);
  return asg_sub(t, asg_gt(t, v));
}

/* Round half to even of F64 values 0 <= q < 2^52. */
static asg_tensor *round_even(asg_tensor *q) {
  asg_tensor *f = floor_bounded(q), *d = asg_sub(q, f);
  asg_tensor *odd = asg_sub(f, asg_mul_scalar(floor_bounded(asg_mul_scalar(f, 0.5)), 2));
  return asg_add(asg_add(f, asg_gt(d, sc(d, 0.5))), asg_mul(asg_eq(d, sc(d, 0.5)), odd));
}

/* A float format: m mantissa bits, normal exponents emin..emax, largest
 * finite value max. What an overflow, an infinity and a NaN become: */
enum { OV_INF, OV_MAX, OV_NAN };
typedef struct float_fmt {
  const char *name;
  int m, emin, emax;
  double max;
  int overflow, inf; /* OV_*: for finite values beyond max, and for +-inf */
  bool nan_to_zero;  /* float4e2m1 has no NaN (ONNX's reference gives 0) */
} float_fmt;

/* 2^(base + i) for i in [0, n) as an F64 constant [n]. */
static asg_tensor *pow2_table(asg_graph *g, int base, int n) {
  double v[300];
  for (int i = 0; i < n; i++)
    v[i] = ldexp(1, base + i);
  return asg_constant(g, ASG_F64, ASG_SHAPE(n), v);
}
static asg_tensor *lookup(asg_tensor *table, asg_tensor *idx_f64) {
  return asg_gather(table, asg_cast(idx_f64, ASG_I64), 0);
}

/* floor(log2(as)) of F64 values as > 0, exact where it is in [lo, hi]
 * (else a value beyond that range): log2, then exact comparisons with
 * powers of two correct its rounding. */
static asg_tensor *exponent(asg_graph *g, asg_tensor *as, int lo, int hi) {
  asg_tensor *e = floor_bounded(asg_clamp(asg_mul_scalar(asg_log(as), 1 / log(2.0)), lo, hi));
  asg_tensor *p2 = pow2_table(g, lo - 1, hi - lo + 3);                  /* 2^(lo-1) .. 2^(hi+1) */
  e = asg_sub(e, asg_lt(as, lookup(p2, asg_add_scalar(e, 1 - lo))));    /* as < 2^e */
  return asg_add(e, asg_ge(as, lookup(p2, asg_add_scalar(e, 2 - lo)))); /* as >= 2^(e+1) */
}

/* float8e8m0 (powers of two 2^-127 .. 2^127, NaN) as ONNX's reference
 * makes it from the float32 bits: the sign is dropped, round_mode "up"
 * takes the next power of two unless x is one, "down" this one; 0 and the
 * float32 subnormals have the exponent field 0. Beyond 2^127: 2^127 when
 * saturating, else NaN; inf and NaN give NaN. */
static asg_tensor *to_e8m0(asg_graph *g, asg_tensor *x, bool up, bool saturate) {
  x = asg_cast(asg_cast(x, ASG_F32), ASG_F64);
  asg_tensor *a = asg_abs(x);
  asg_tensor *pos = asg_mul(asg_gt(a, sc(a, 0)), asg_lt(a, sc(a, INFINITY)));
  asg_tensor *as = asg_where(pos, a, sc(a, 1));
  asg_tensor *e = exponent(g, as, -130, 129);
  asg_tensor *t = pow2_table(g, -127, 256); /* 2^-127 .. 2^128 */
  if (up) {
    e = asg_add(e, asg_gt(as, lookup(t, asg_add_scalar(e, 127)))); /* not a power of two */
    e = asg_clamp(e, -126, 128);
  } else {
    e = asg_clamp(e, -127, 127);
  }
  if (saturate) e = asg_minimum(e, sc(e, 127));
  asg_tensor *v = lookup(t, asg_add_scalar(e, 127));
  v = asg_where(asg_gt(v, sc(v, ldexp(1, 127))), sc(v, NAN), v); /* 2^128: beyond the type */
  v = asg_where(pos, v, asg_where(asg_eq(a, sc(a, 0)), sc(a, ldexp(1, -127)), sc(a, NAN)));
  return asg_cast(v, ASG_F32);
}

/* x rounded to the format (round to nearest, ties to even; subnormals of
 * the format included), as F32. The exponent of |x| comes from log2,
 * corrected by exact comparisons with powers of two; the scaling by powers
 * of two, the rounding and the comparisons are exact in F64. */
static asg_tensor *round_to(asg_graph *g, asg_tensor *x, const float_fmt *f) {
  x = asg_cast(x, ASG_F64);
  asg_tensor *a = asg_abs(x);
  asg_tensor *pos = asg_mul(asg_gt(a, sc(a, 0)), asg_lt(a, sc(a, INFINITY))); /* finite, not 0 */
  asg_tensor *as = asg_where(pos, a, sc(a, 1));
  int hi = f->emax + 2; /* exponents that matter, with a margin */
  asg_tensor *e = exponent(g, as, f->emin - 2, hi);
  /* the spacing of the format at as: 2^(max(e, emin) - m) */
  asg_tensor *ee = asg_clamp(e, f->emin, hi + 1);
  asg_tensor *ulp =
      lookup(pow2_table(g, f->emin - f->m, hi + 2 - f->emin), asg_add_scalar(ee, -f->emin));
  asg_tensor *r = asg_mul(round_even(asg_div(as, ulp)), ulp);
  asg_tensor *mag = asg_where(pos, r, a); /* 0, inf and NaN as they were */
  double ov[3] = {INFINITY, f->max, NAN};
  asg_tensor *is_inf = asg_eq(a, sc(a, INFINITY));
  mag = asg_where(asg_gt(mag, sc(mag, f->max)),
                  asg_where(is_inf, sc(a, ov[f->inf]), sc(a, ov[f->overflow])), mag);
  if (f->nan_to_zero) mag = asg_where(asg_ne(mag, mag), sc(mag, 0), mag);
  asg_tensor *y = asg_where(asg_lt(x, sc(x, 0)), asg_neg(mag), mag);
  /* the gradient of a cast: the identity (straight through) where x is
   * finite; x - stop_gradient(x) is exactly 0 there, so y keeps its value */
  asg_tensor *through = asg_add(y, asg_sub(x, asg_stop_gradient(x)));
  return asg_cast(asg_where(asg_lt(a, sc(a, INFINITY)), through, y), ASG_F32);
}

/* The format of a narrow float type; NULL for others. saturate: the
 * attribute of Cast (opset 19), which only the float8 types read. */
static const float_fmt *float_format(int64_t to, bool saturate) {
  static const float_fmt f16 = {"float16", 10, -14, 15, 65504.0, OV_INF, OV_INF, false};
  static const float_fmt bf16 = {"bfloat16", 7,      -126, 127, 3.38953138925153547590e38,
                                 OV_INF,     OV_INF, false};
  static const float_fmt f4 = {"float4e2m1", 1, 0, 2, 6.0, OV_MAX, OV_MAX, true};
  /* float8: saturated / not, per type (ONNX's Cast table) */
  static const float_fmt e4m3fn[2] = {{"float8e4m3fn", 3, -6, 8, 448.0, OV_NAN, OV_NAN, false},
                                      {"float8e4m3fn", 3, -6, 8, 448.0, OV_MAX, OV_MAX, false}};
  static const float_fmt e4m3fnuz[2] = {{"float8e4m3fnuz", 3, -7, 7, 240.0, OV_NAN, OV_NAN, false},
                                        {"float8e4m3fnuz", 3, -7, 7, 240.0, OV_MAX, OV_MAX, false}};
  static const float_fmt e5m2[2] = {{"float8e5m2", 2, -14, 15, 57344.0, OV_INF, OV_INF, false},
                                    {"float8e5m2", 2, -14, 15, 57344.0, OV_MAX, OV_MAX, false}};
  static const float_fmt e5m2fnuz[2] = {
      {"float8e5m2fnuz", 2, -15, 15, 57344.0, OV_NAN, OV_NAN, false},
      {"float8e5m2fnuz", 2, -15, 15, 57344.0, OV_MAX, OV_MAX, false}};
  switch (to) {
  case ONNX_FLOAT16: return &f16;
  case ONNX_BFLOAT16: return &bf16;
  case ONNX_FLOAT4E2M1: return &f4;
  case ONNX_FLOAT8E4M3FN: return &e4m3fn[saturate];
  case ONNX_FLOAT8E4M3FNUZ: return &e4m3fnuz[saturate];
  case ONNX_FLOAT8E5M2: return &e5m2[saturate];
  case ONNX_FLOAT8E5M2FNUZ: return &e5m2fnuz[saturate];
  default: return NULL;
  }
}

/* Range of the integer types ASG holds in a wider one (uint64: the values
 * that int64 holds). */
static bool int_range(int64_t to, int64_t *lo, int64_t *hi) {
  switch (to) {
  case ONNX_INT8: *lo = -128, *hi = 127; return true;
  case ONNX_UINT8: *lo = 0, *hi = 255; return true;
  case ONNX_INT16: *lo = -32768, *hi = 32767; return true;
  case ONNX_UINT16: *lo = 0, *hi = 65535; return true;
  case ONNX_UINT32: *lo = 0, *hi = 4294967295; return true;
  case ONNX_UINT64: *lo = 0, *hi = INT64_MAX; return true;
  case ONNX_INT4: *lo = -8, *hi = 7; return true;
  case ONNX_UINT4: *lo = 0, *hi = 15; return true;
  case ONNX_INT2: *lo = -2, *hi = 1; return true;
  case ONNX_UINT2: *lo = 0, *hi = 3; return true;
  default: return false;
  }
}

/* To a narrow integer type: floats truncate toward zero, and a value
 * outside the type (undefined in ONNX) becomes 0 as in ONNX's reference;
 * integers wrap around as two's complement does. */
static asg_tensor *to_int(asg_tensor *x, int64_t lo, int64_t hi, asg_dtype dt) {
  asg_dtype xt = asg_tensor_dtype(x);
  if (asg_dtype_is_float(xt)) {
    x = asg_cast(x, ASG_F64);
    asg_tensor *in = asg_mul(asg_gt(x, sc(x, (double)lo - 1)), asg_lt(x, sc(x, (double)hi + 1)));
    return asg_cast(asg_where(in, x, sc(x, 0)), dt);
  }
  if (hi == INT64_MAX) return asg_cast(x, dt); /* uint64 from int64: the same values */
  x = asg_cast(x, ASG_I64);
  int64_t span = hi - lo + 1; /* 2^bits */
  asg_tensor *r = asg_sub(x, asg_mul(asg_div(x, sc(x, (double)span)), sc(x, (double)span)));
  r = asg_add(r, asg_mul(asg_lt(r, sc(r, 0)), sc(r, (double)span))); /* x mod 2^bits */
  if (lo < 0) r = asg_sub(r, asg_mul(asg_gt(r, sc(r, (double)hi)), sc(r, (double)span)));
  return asg_cast(r, dt);
}

/* x cast to ONNX type `to` (the result's is_bool in *is_bool). */
static asg_status cast_to(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val *src, int64_t to,
                          onnx_val *out) {
  asg_tensor *x = src->t;
  asg_dtype dt;
  bool is_bool;
  if (!onnx__dtype((int32_t)to, &dt, &is_bool)) UNSUP("cast to %s", onnx__type_name((int32_t)to));
  out->is_bool = is_bool;
  out->onnx_type = (int32_t)to;
  if (is_bool) DONE(asg_cast(asg_ne(x, sc(x, 0)), ASG_I32));
  bool saturate = onnx__attr_int(n, "saturate", 1) != 0;
  if (to == ONNX_FLOAT8E8M0) {
    const char *rm = onnx__attr_str(n, "round_mode", "up");
    if (strcmp(rm, "up") && strcmp(rm, "down")) UNSUP("cast to float8e8m0 with round_mode=%s", rm);
    DONE(to_e8m0(c->g, x, !strcmp(rm, "up"), saturate));
  }
  const float_fmt *ff = float_format(to, saturate);
  if (ff) DONE(round_to(c->g, x, ff));
  int64_t lo, hi;
  if (int_range(to, &lo, &hi)) DONE(to_int(x, lo, hi, dt));
  if (onnx__small_int(src) && dt == ASG_I64) { /* shape values stay known at import */
    int64_t v[ASG_MAX_DIMS * 8];
    int k;
    if (!onnx__host_ints(c, src, "input", v, ASG_MAX_DIMS * 8, &k))
      return onnx__host_result(c, out, v, k, src->host.shape.ndim == 0);
    asg_clear_error();
  }
  DONE(asg_cast(x, dt));
}

ONNX_OP(onnx__op_cast) {
  UNUSED;
  NEED(1);
  return cast_to(c, n, in[0], onnx__attr_int(n, "to", 0), out);
}

/* CastLike: the type of the second input, which the importer knows only as
 * ASG holds it (and as a bool or not): a narrow ONNX type of it is read
 * from the value info of the model when present, else its ASG dtype. */
ONNX_OP(onnx__op_cast_like) {
  UNUSED;
  NEED(2);
  int64_t to = in[1]->onnx_type;
  if (!to) {
    asg_dtype d = asg_tensor_dtype(T(1));
    to = in[1]->is_bool ? ONNX_BOOL
         : d == ASG_F32 ? ONNX_FLOAT
         : d == ASG_F64 ? ONNX_DOUBLE
         : d == ASG_I32 ? ONNX_INT32
                        : ONNX_INT64;
  }
  asg_status st = cast_to(c, n, in[0], to, out);
  /* only input 0's value matters: a known one gives a known result */
  if (!st && in[0]->has_host && !in[0]->from_var) st = onnx__fold(c, out);
  return st;
}
#endif
