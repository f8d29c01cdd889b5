/* The ONNX operator table: each entry maps one ONNX operator (for a range
 * of opsets) onto ASG op constructors. Inputs that give shapes or axes must
 * be known at import time (initializers, Constant, Shape of static shapes);
 * unsupported attribute values are ASG_ERR_UNSUPPORTED naming the node. */
#ifdef ASG_HAVE_ONNX
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/onnx_internal.h"

#define OP(name) static ONNX_OP(op_##name)

static int rank(const asg_tensor *t) { return asg_tensor_shape(t).ndim; }

/* ---- elementwise ---- */
#define UNARY(name, expr)                                                                          \
  OP(name) {                                                                                       \
    UNUSED;                                                                                        \
    NEED(1);                                                                                       \
    asg_tensor *x = T(0);                                                                          \
    DONE(expr);                                                                                    \
  }
UNARY(relu, asg_relu(x))
UNARY(sigmoid, asg_sigmoid(x))
UNARY(tanh, asg_tanh(x))
UNARY(exp, asg_exp(x))
UNARY(log, asg_log(x))
UNARY(sqrt, asg_sqrt(x))
UNARY(abs, asg_abs(x))
UNARY(neg, asg_neg(x))
UNARY(erf, asg_erf(x))
UNARY(sin, asg_sin(x))
UNARY(cos, asg_cos(x))
UNARY(sign, asg_sign(x))
UNARY(reciprocal, asg_div(asg_scalar(c->g, asg_tensor_dtype(x), 1), x))
UNARY(softplus, asg_softplus(x, 1, INFINITY))
UNARY(softsign, asg_div(x, asg_add_scalar(asg_abs(x), 1)))
UNARY(elu, asg_elu(x, onnx__attr_float(n, "alpha", 1.0)))
UNARY(leaky_relu, asg_leaky_relu(x, onnx__attr_float(n, "alpha", 0.01)))
UNARY(hard_sigmoid, asg_clamp(asg_add_scalar(asg_mul_scalar(x, onnx__attr_float(n, "alpha", 0.2)),
                                             onnx__attr_float(n, "beta", 0.5)),
                              0, 1))
UNARY(hard_swish, asg_mul(x, asg_clamp(asg_add_scalar(asg_mul_scalar(x, 1.0 / 6), 0.5), 0, 1)))
UNARY(mish, asg_mul(x, asg_tanh(asg_softplus(x, 1, INFINITY))))

static asg_tensor *sc(asg_tensor *x, double v) { /* a scalar of x's dtype */
  return asg_scalar(asg_tensor_graph(x), asg_tensor_dtype(x), v);
}
UNARY(tan, asg_div(asg_sin(x), asg_cos(x)))
UNARY(sinh, asg_mul_scalar(asg_sub(asg_exp(x), asg_exp(asg_neg(x))), 0.5))
UNARY(cosh, asg_mul_scalar(asg_add(asg_exp(x), asg_exp(asg_neg(x))), 0.5))
UNARY(asinh, asg_log(asg_add(x, asg_sqrt(asg_add_scalar(asg_mul(x, x), 1)))))
UNARY(acosh, asg_log(asg_add(x, asg_sqrt(asg_add_scalar(asg_mul(x, x), -1)))))
UNARY(atanh, asg_mul_scalar(asg_log(asg_div(asg_add_scalar(x, 1), asg_sub(sc(x, 1), x))), 0.5))
UNARY(swish, asg_mul(x, asg_sigmoid(asg_mul_scalar(x, onnx__attr_float(n, "alpha", 1.0)))))
UNARY(thresholded_relu, asg_where(asg_gt(x, sc(x, onnx__attr_float(n, "alpha", 1.0))), x, sc(x, 0)))
/* max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) */
UNARY(celu, asg_add(asg_relu(x),
                    asg_minimum(sc(x, 0),
                                asg_mul_scalar(
                                    asg_add_scalar(asg_exp(asg_mul_scalar(
                                                       x, 1.0 / onnx__attr_float(n, "alpha", 1.0))),
                                                   -1),
                                    onnx__attr_float(n, "alpha", 1.0)))))

OP(shrink) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  double l = onnx__attr_float(n, "lambd", 0.5), b = onnx__attr_float(n, "bias", 0);
  asg_tensor *y = asg_where(asg_lt(x, sc(x, -l)), asg_add_scalar(x, b), sc(x, 0));
  DONE(asg_where(asg_gt(x, sc(x, l)), asg_add_scalar(x, -b), y));
}

OP(is_nan) {
  UNUSED;
  NEED(1);
  out[0].is_bool = true;
  DONE(asg_ne(T(0), T(0)));
}

OP(is_inf) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  bool pos = onnx__attr_int(n, "detect_positive", 1) != 0,
       neg = onnx__attr_int(n, "detect_negative", 1) != 0;
  asg_tensor *p = asg_eq(x, sc(x, INFINITY)), *m = asg_eq(x, sc(x, -INFINITY));
  out[0].is_bool = true;
  DONE(pos && neg ? asg_add(p, m) : pos ? p : neg ? m : asg_mul(p, m));
}

OP(identity) {
  UNUSED;
  NEED(1);
  out[0] = *in[0];
  out[0].name = NULL;
  if (in[0]->has_host) { /* the output owns its own copy */
    size_t b = (size_t)asg_shape_numel(in[0]->host.shape) * asg_dtype_size(in[0]->host.dtype);
    out[0].host.data = malloc(b ? b : 1);
    if (!out[0].host.data) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    memcpy(out[0].host.data, in[0]->host.data, b);
  }
  if (nout > 1) UNSUP("the mask output is not supported");
  return ASG_OK;
}

OP(gelu) {
  UNUSED;
  NEED(1);
  const char *a = onnx__attr_str(n, "approximate", "none");
  if (!strcmp(a, "tanh")) DONE(asg_gelu_tanh(T(0)));
  if (strcmp(a, "none")) UNSUP("approximate='%s'", a);
  DONE(asg_gelu(T(0)));
}

OP(selu) {
  UNUSED;
  NEED(1);
  double a = onnx__attr_float(n, "alpha", 1.67326319217681884765625);
  double g = onnx__attr_float(n, "gamma", 1.05070102214813232421875);
  DONE(asg_mul_scalar(asg_elu(T(0), a), g));
}

OP(prelu) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0), *z = asg_scalar(c->g, asg_tensor_dtype(x), 0);
  DONE(asg_add(asg_maximum(x, z), asg_mul(T(1), asg_minimum(x, z))));
}

typedef asg_tensor *(*bin_fn)(asg_tensor *, asg_tensor *);
static asg_status binary(onnx_ctx *c, onnx_val **in, int nin, onnx_val *out, bin_fn f,
                         bool to_bool) {
  if (nin < 2 || !in[0] || !in[1]) return onnx__node_error(c, ASG_ERR_FORMAT, "needs 2 inputs");
  asg_tensor *a = in[0]->t, *b = in[1]->t;
  /* ASG needs one dtype: ints meeting floats follow the float */
  if (asg_tensor_dtype(a) != asg_tensor_dtype(b)) {
    if (asg_dtype_is_float(asg_tensor_dtype(b)))
      a = asg_cast(a, asg_tensor_dtype(b));
    else
      b = asg_cast(b, asg_tensor_dtype(a));
  }
  out[0].t = f(a, b);
  out[0].is_bool = to_bool;
  if (!out[0].t) return onnx__build_error(c);
  return ASG_OK;
}
#define BINARY(name, f, to_bool)                                                                   \
  OP(name) {                                                                                       \
    UNUSED;                                                                                        \
    return binary(c, in, nin, out, f, to_bool);                                                    \
  }
static asg_tensor *or_fn(asg_tensor *a, asg_tensor *b) {
  return asg_ne(asg_add(asg_ne(a, asg_scalar(asg_tensor_graph(a), asg_tensor_dtype(a), 0)),
                        asg_ne(b, asg_scalar(asg_tensor_graph(b), asg_tensor_dtype(b), 0))),
                asg_scalar(asg_tensor_graph(a), asg_tensor_dtype(a), 0));
}
static asg_tensor *and_fn(asg_tensor *a, asg_tensor *b) {
  return asg_ne(asg_mul(a, b), asg_scalar(asg_tensor_graph(a), asg_tensor_dtype(a), 0));
}
static asg_tensor *xor_fn(asg_tensor *a, asg_tensor *b) {
  asg_tensor *z = asg_scalar(asg_tensor_graph(a), asg_tensor_dtype(a), 0);
  return asg_ne(asg_ne(a, z), asg_ne(b, z));
}
BINARY(add, asg_add, false)
BINARY(sub, asg_sub, false)
BINARY(mul, asg_mul, false)
BINARY(div, asg_div, false)
static asg_tensor *pow_fn(asg_tensor *a, asg_tensor *b) { /* integer powers through f64 */
  asg_dtype dt = asg_tensor_dtype(a);
  if (asg_dtype_is_float(dt)) return asg_pow(a, b);
  return asg_cast(asg_pow(asg_cast(a, ASG_F64), asg_cast(b, ASG_F64)), dt);
}
BINARY(pow, pow_fn, false)
BINARY(equal, asg_eq, true)
BINARY(less, asg_lt, true)
BINARY(less_equal, asg_le, true)
BINARY(greater, asg_gt, true)
BINARY(greater_equal, asg_ge, true)
BINARY(and, and_fn, true)
BINARY(or, or_fn, true)
BINARY(xor, xor_fn, true)
/* Integer Mod: the truncated remainder (fmod=1), moved by b when its sign
 * differs from b's (fmod=0, Python's %). Float Mod would need floor. */
static asg_tensor *rem_fn(asg_tensor *a, asg_tensor *b) {
  return asg_sub(a, asg_mul(asg_div(a, b), b));
}
static asg_tensor *mod_fn(asg_tensor *a, asg_tensor *b) {
  asg_tensor *r = rem_fn(a, b), *z = asg_scalar(asg_tensor_graph(a), asg_tensor_dtype(a), 0);
  return asg_add(r, asg_mul(asg_mul(asg_ne(r, z), asg_ne(asg_lt(r, z), asg_lt(b, z))), b));
}
OP(mod) {
  UNUSED;
  NEED(2);
  if (asg_dtype_is_float(asg_tensor_dtype(T(0))) || asg_dtype_is_float(asg_tensor_dtype(T(1))))
    UNSUP("Mod of floats");
  return binary(c, in, nin, out, onnx__attr_int(n, "fmod", 0) ? rem_fn : mod_fn, false);
}

OP(not ) {
  UNUSED;
  NEED(1);
  out[0].is_bool = true;
  DONE(asg_eq(T(0), asg_scalar(c->g, asg_tensor_dtype(T(0)), 0)));
}

/* Max / Min / Sum / Mean of any number of inputs. */
static asg_status variadic(onnx_ctx *c, onnx_val **in, int nin, onnx_val *out, bin_fn f,
                           bool mean) {
  if (nin < 1 || !in[0]) return onnx__node_error(c, ASG_ERR_FORMAT, "needs inputs");
  asg_tensor *acc = in[0]->t;
  for (int i = 1; i < nin; i++) {
    if (!in[i]) return onnx__node_error(c, ASG_ERR_FORMAT, "input %d is missing", i);
    acc = f(acc, in[i]->t);
  }
  if (mean && nin > 1) acc = asg_mul_scalar(acc, 1.0 / nin);
  out[0].t = acc;
  if (!acc) return onnx__build_error(c);
  return ASG_OK;
}
OP(max) {
  UNUSED;
  return variadic(c, in, nin, out, asg_maximum, false);
}
OP(min) {
  UNUSED;
  return variadic(c, in, nin, out, asg_minimum, false);
}
OP(sum) {
  UNUSED;
  return variadic(c, in, nin, out, asg_add, false);
}
OP(mean) {
  UNUSED;
  return variadic(c, in, nin, out, asg_add, true);
}

OP(where) {
  UNUSED;
  NEED(3);
  asg_tensor *a = T(1), *b = T(2);
  DONE(asg_where(asg_cast(T(0), asg_tensor_dtype(a)), a, b));
}

OP(clip) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  if (IN(1)) x = asg_maximum(x, T(1));
  if (IN(2)) x = asg_minimum(x, T(2));
  DONE(x);
}

/* ---- linear algebra ---- */
OP(matmul) {
  UNUSED;
  NEED(2);
  asg_tensor *a = T(0), *b = T(1);
  bool va = rank(a) == 1, vb = rank(b) == 1;
  if (va) a = asg_unsqueeze(a, 0);
  if (vb) b = asg_unsqueeze(b, 1);
  asg_tensor *y = asg_matmul(a, b);
  if (vb) y = asg_squeeze(y, -1);
  if (va) y = asg_squeeze(y, vb ? -1 : -2);
  DONE(y);
}

OP(gemm) {
  UNUSED;
  NEED(2);
  double alpha = onnx__attr_float(n, "alpha", 1), beta = onnx__attr_float(n, "beta", 1);
  asg_tensor *y = asg_matmul_t(T(0), T(1), onnx__attr_int(n, "transA", 0) != 0,
                               onnx__attr_int(n, "transB", 0) != 0);
  if (alpha != 1) y = asg_mul_scalar(y, alpha);
  if (IN(2)) y = asg_add(y, beta == 1 ? T(2) : asg_mul_scalar(T(2), beta));
  DONE(y);
}

/* Softmax / LogSoftmax: from opset 13 over one axis (default -1); before,
 * over all the dims from axis on (default 1), flattened. */
static asg_status softmax_like(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin,
                               onnx_val *out, bool log_) {
  NEED(1);
  asg_tensor *x = T(0);
  if (c->opset >= 13) {
    int axis = (int)onnx__attr_int(n, "axis", -1);
    DONE(log_ ? asg_log_softmax(x, axis) : asg_softmax(x, axis));
  }
  asg_shape s = asg_tensor_shape(x);
  int axis = (int)onnx__attr_int(n, "axis", 1);
  if (axis < -s.ndim || axis >= s.ndim) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += s.ndim;
  int64_t a = 1, b = 1;
  for (int i = 0; i < s.ndim; i++) {
    int64_t *p = i < axis ? &a : &b;
    *p = asg_dim_mul(c->g, *p, s.dims[i]);
  }
  asg_tensor *x2 = asg_reshape(x, ASG_SHAPE(a, b));
  DONE(asg_reshape(log_ ? asg_log_softmax(x2, 1) : asg_softmax(x2, 1), s));
}
OP(softmax) {
  UNUSED;
  return softmax_like(c, n, in, nin, out, false);
}
OP(log_softmax) {
  UNUSED;
  return softmax_like(c, n, in, nin, out, true);
}

/* Dropout in inference, or in training with a ratio of 0: the identity,
 * and a mask of all true. Training with a ratio draws random masks that
 * no file can pin down: refused. */
OP(dropout) {
  UNUSED;
  NEED(1);
  if (IN(2)) {
    int64_t tm[1];
    int k;
    asg_status st = onnx__host_ints(c, in[2], "training_mode", tm, 1, &k);
    if (st) return st;
    if (k == 1 && tm[0]) {
      double ratio = onnx__attr_float(n, "ratio", 0.5);
      if (IN(1)) {
        if (!in[1]->has_host || asg_shape_numel(in[1]->host.shape) != 1)
          UNSUP("input '%s' (ratio) must be known at import time with training_mode=true",
                in[1]->name);
        const void *d = in[1]->host.data;
        ratio = in[1]->host.dtype == ASG_F32 ? ((const float *)d)[0] : ((const double *)d)[0];
      }
      if (ratio != 0) UNSUP("training_mode=true (random masks)");
    }
  }
  asg_status st = op_identity(c, n, in, 1, out, 1);
  if (st || nout < 2 || !n->output[1] || !n->output[1][0]) return st;
  out[1].is_bool = true;
  out[1].t = asg_fill(c->g, ASG_I32, asg_tensor_shape(T(0)), 1);
  return out[1].t ? ASG_OK : onnx__build_error(c);
}

/* ArgMax / ArgMin; select_last_index through a reversed gather. */
static asg_status arg_extreme(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin,
                              onnx_val *out, bool is_min) {
  NEED(1);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  int axis = (int)onnx__attr_int(n, "axis", 0);
  bool keep = onnx__attr_int(n, "keepdims", 1) != 0,
       last = onnx__attr_int(n, "select_last_index", 0);
  if (axis < -s.ndim || axis >= s.ndim) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += s.ndim;
  if (is_min) x = asg_neg(x);
  int64_t d = s.dims[axis];
  if (last) {
    if (asg_dim_is_symbolic(d) || d > (1 << 24)) UNSUP("select_last_index on this dim");
    int64_t *idx = malloc(8 * (size_t)d);
    if (!idx) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    for (int64_t i = 0; i < d; i++)
      idx[i] = d - 1 - i;
    x = asg_gather(x, asg_constant(c->g, ASG_I64, ASG_SHAPE(d), idx), axis);
    free(idx);
  }
  asg_tensor *y = asg_argmax(x, axis, keep);
  if (last) y = asg_sub(asg_scalar(c->g, ASG_I64, (double)(d - 1)), y);
  DONE(y);
}
OP(argmax) {
  UNUSED;
  return arg_extreme(c, n, in, nin, out, false);
}
OP(argmin) {
  UNUSED;
  return arg_extreme(c, n, in, nin, out, true);
}

/* ---- the table ---- */
typedef struct onnx_op {
  const char *name;
  /* The first opset whose semantics the entry implements: the operator's
   * newest version up to opset 23 whose changes matter here (versions that
   * only add element types do not count). A model of an older opset gets
   * ASG_ERR_UNSUPPORTED for the operator. */
  int since;
  onnx_op_fn fn;
} onnx_op;

static const onnx_op ops[] = {
    {"Abs", 6, op_abs},
    {"Add", 7, op_add},
    {"And", 7, op_and},
    {"ArgMax", 11, op_argmax},
    {"ArgMin", 11, op_argmin},
    {"AveragePool", 11, onnx__op_avg_pool},
    {"BatchNormalization", 9, onnx__op_batch_norm},
    {"Cast", 6, onnx__op_cast},
    {"Clip", 11, op_clip},
    {"Concat", 11, onnx__op_concat},
    {"Constant", 12, onnx__op_constant},
    {"ConstantOfShape", 9, onnx__op_constant_of_shape},
    {"Conv", 11, onnx__op_conv},
    {"ConvTranspose", 11, onnx__op_conv_transpose},
    {"Cos", 7, op_cos},
    {"Div", 7, op_div},
    {"Dropout", 7, op_dropout}, /* inference: the identity at every version */
    {"Elu", 6, op_elu},
    {"Equal", 11, op_equal},
    {"Erf", 9, op_erf},
    {"Exp", 6, op_exp},
    {"Expand", 8, onnx__op_expand},
    {"Flatten", 11, onnx__op_flatten},
    {"Gather", 11, onnx__op_gather},
    {"Gelu", 20, op_gelu},
    {"Gemm", 11, op_gemm},
    {"GlobalAveragePool", 1, onnx__op_global_avg_pool},
    {"GlobalMaxPool", 1, onnx__op_global_max_pool},
    {"Greater", 9, op_greater},
    {"GreaterOrEqual", 12, op_greater_equal},
    {"HardSigmoid", 6, op_hard_sigmoid},
    {"HardSwish", 14, op_hard_swish},
    {"Identity", 1, op_identity},
    {"LayerNormalization", 17, onnx__op_layer_norm},
    {"LeakyRelu", 6, op_leaky_relu},
    {"Less", 9, op_less},
    {"LessOrEqual", 12, op_less_equal},
    {"Log", 6, op_log},
    {"LogSoftmax", 1, op_log_softmax},
    {"MatMul", 9, op_matmul},
    {"Max", 8, op_max},
    {"MaxPool", 11, onnx__op_max_pool},
    {"Mean", 8, op_mean},
    {"Min", 8, op_min},
    {"Mish", 18, op_mish},
    {"Mod", 10, op_mod},
    {"Mul", 7, op_mul},
    {"Neg", 6, op_neg},
    {"Not", 1, op_not},
    {"Or", 7, op_or},
    {"Pow", 7, op_pow},
    {"PRelu", 9, op_prelu},
    {"Range", 11, onnx__op_range},
    {"Reciprocal", 6, op_reciprocal},
    {"ReduceL1", 11, onnx__op_reduce_l1},
    {"ReduceL2", 11, onnx__op_reduce_l2},
    {"ReduceLogSum", 11, onnx__op_reduce_log_sum},
    {"ReduceLogSumExp", 11, onnx__op_reduce_log_sum_exp},
    {"ReduceMax", 11, onnx__op_reduce_max},
    {"ReduceMean", 11, onnx__op_reduce_mean},
    {"ReduceMin", 11, onnx__op_reduce_min},
    {"ReduceSum", 11, onnx__op_reduce_sum},
    {"ReduceSumSquare", 11, onnx__op_reduce_sum_square},
    {"Relu", 6, op_relu},
    {"Reshape", 5, onnx__op_reshape},
    {"Resize", 11, onnx__op_resize},
    {"Selu", 6, op_selu},
    {"Shape", 1, onnx__op_shape},
    {"Sigmoid", 6, op_sigmoid},
    {"Sign", 9, op_sign},
    {"Sin", 7, op_sin},
    {"Size", 1, onnx__op_size},
    {"Slice", 11, onnx__op_slice},
    {"Softmax", 1, op_softmax},
    {"Softplus", 1, op_softplus},
    {"Softsign", 1, op_softsign},
    {"Split", 11, onnx__op_split},
    {"Sqrt", 6, op_sqrt},
    {"Squeeze", 11, onnx__op_squeeze},
    {"Sub", 7, op_sub},
    {"Sum", 8, op_sum},
    {"Tanh", 6, op_tanh},
    {"Transpose", 1, onnx__op_transpose},
    {"Unsqueeze", 11, onnx__op_unsqueeze},
    {"Where", 9, op_where},
    {"Xor", 7, op_xor},
    {"Acosh", 9, op_acosh},
    {"Asinh", 9, op_asinh},
    {"Atanh", 9, op_atanh},
    {"Attention", 23, onnx__op_attention},
    {"CastLike", 15, onnx__op_cast_like},
    {"Celu", 12, op_celu},
    {"Cosh", 9, op_cosh},
    {"CumSum", 11, onnx__op_cumsum},
    {"DepthToSpace", 11, onnx__op_depth_to_space},
    {"GroupNormalization", 21, onnx__op_group_norm},
    {"Hardmax", 13, onnx__op_hardmax},
    {"InstanceNormalization", 6, onnx__op_instance_norm},
    {"IsInf", 10, op_is_inf},
    {"IsNaN", 9, op_is_nan},
    {"LpNormalization", 1, onnx__op_lp_norm},
    {"MeanVarianceNormalization", 9, onnx__op_mvn},
    {"OneHot", 11, onnx__op_one_hot},
    {"Pad", 11, onnx__op_pad},
    {"RMSNormalization", 23, onnx__op_rms_norm},
    {"Shrink", 9, op_shrink},
    {"Sinh", 9, op_sinh},
    {"SpaceToDepth", 1, onnx__op_space_to_depth},
    {"Swish", 24, op_swish},
    {"Tan", 7, op_tan},
    {"ThresholdedRelu", 10, op_thresholded_relu},
    {"Tile", 6, onnx__op_tile},
    {"Trilu", 14, onnx__op_trilu},
};

onnx_op_fn onnx__find_op(const char *op_type, int *since) {
  if (since) *since = 0;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (!strcmp(ops[i].name, op_type)) {
      if (since) *since = ops[i].since;
      return ops[i].fn;
    }
  return NULL;
}
#endif
