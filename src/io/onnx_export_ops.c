/* ONNX export, the per-op mapping (see onnx_export.c): each ASG op becomes
 * one or a few ONNX nodes of the default domain, decompositions where ONNX
 * has no such op (batchnorm with the batch's statistics, rmsnorm, rope,
 * GELU's gradients, the variance). */
#include <math.h>
#include <string.h>

#include "asg/custom.h"

#ifdef ASG_HAVE_ONNX
#include "core/symbol.h"
#include "io/onnx_export.h"

/* ---- per-op mapping ---- */

static const char *ex_reduce(ex *e, const char *op, const char *x, int64_t mask, int nd, bool keep,
                             const char *out) {
  int64_t ax[ASG_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < nd; i++)
    if (mask & ((int64_t)1 << i)) ax[k++] = i;
  if (!x) return NULL;
  Onnx__NodeProto *n;
  /* ReduceSum takes axes as an input since opset 13, the others since 18 */
  if (!strcmp(op, "ReduceSum") || e->o.opset >= 18) {
    const char *ins[2] = {x, ex_ints(e, k, ax)};
    if (!ins[1]) return NULL;
    n = ex_node(e, op, 2, ins, out);
  } else {
    n = ex_node(e, op, 1, &x, out);
    ex_attr_ints(e, n, "axes", k, ax);
  }
  ex_attr_int(e, n, "keepdims", keep);
  return n ? n->output[0] : NULL;
}

static const char *ex_transpose_last2(ex *e, const char *x, int nd) {
  int64_t perm[ASG_MAX_DIMS];
  for (int i = 0; i < nd; i++)
    perm[i] = i;
  perm[nd - 2] = nd - 1, perm[nd - 1] = nd - 2;
  if (!x) return NULL;
  Onnx__NodeProto *n = ex_node(e, "Transpose", 1, &x, NULL);
  ex_attr_ints(e, n, "perm", nd, perm);
  return n ? n->output[0] : NULL;
}

/* x[..., lo:hi] on the last of nd axes */
static const char *ex_slice_last(ex *e, const char *x, int nd, int64_t lo, int64_t hi) {
  const int64_t ax = nd - 1, one = 1;
  const char *in[5] = {x, ex_ints(e, 1, &lo), ex_ints(e, 1, &hi), ex_ints(e, 1, &ax),
                       ex_ints(e, 1, &one)};
  if (!x || !in[1] || !in[2] || !in[3] || !in[4]) return NULL;
  Onnx__NodeProto *n = ex_node(e, "Slice", 5, in, NULL);
  return n ? n->output[0] : NULL;
}

static void ex_conv_attrs(ex *e, Onnx__NodeProto *n, const asg_attrs *a, bool transpose) {
  int64_t v[4] = {a->i[0], a->i[1]};
  ex_attr_ints(e, n, "strides", 2, v);
  v[0] = v[2] = a->i[2], v[1] = v[3] = a->i[3];
  ex_attr_ints(e, n, "pads", 4, v);
  v[0] = a->i[4], v[1] = a->i[5];
  ex_attr_ints(e, n, "dilations", 2, v);
  ex_attr_int(e, n, "group", a->i[6]);
  v[0] = a->i[7], v[1] = a->i[8];
  if (transpose) ex_attr_ints(e, n, "output_padding", 2, v);
}

static const char *const ex_unary_ops[ASG_OP_COUNT] = {
    [ASG_OP_NEG] = "Neg",
    [ASG_OP_ABS] = "Abs",
    [ASG_OP_SIGN] = "Sign",
    [ASG_OP_EXP] = "Exp",
    [ASG_OP_LOG] = "Log",
    [ASG_OP_SQRT] = "Sqrt",
    [ASG_OP_SIN] = "Sin",
    [ASG_OP_COS] = "Cos",
    [ASG_OP_TANH] = "Tanh",
    [ASG_OP_ERF] = "Erf",
    [ASG_OP_SIGMOID] = "Sigmoid",
    [ASG_OP_RELU] = "Relu",
    [ASG_OP_STOP_GRADIENT] = "Identity",
};

static const char *const ex_binary_ops[ASG_OP_COUNT] = {
    [ASG_OP_ADD] = "Add", [ASG_OP_SUB] = "Sub",     [ASG_OP_MUL] = "Mul",     [ASG_OP_DIV] = "Div",
    [ASG_OP_POW] = "Pow", [ASG_OP_MAXIMUM] = "Max", [ASG_OP_MINIMUM] = "Min",
};

/* Comparisons give a bool in ONNX, a 0/1 mask of the node's dtype in ASG. */
static const char *const ex_compare_ops[ASG_OP_COUNT] = {
    [ASG_OP_EQ] = "Equal",       [ASG_OP_NE] = "Equal",   [ASG_OP_LT] = "Less",
    [ASG_OP_LE] = "LessOrEqual", [ASG_OP_GT] = "Greater", [ASG_OP_GE] = "GreaterOrEqual",
};

/* Emits the ONNX nodes of t (not a source) whose result is named out. */
asg_status ex_op(ex *e, const asg_tensor *t, const char *out) {
  const char *x = t->n_in > 0 ? e->val[t->in[0]->id] : NULL;
  const char *b = t->n_in > 1 ? e->val[t->in[1]->id] : NULL;
  const asg_attrs *a = &t->attr;
  asg_dtype dt = t->dtype;
  int nd = t->n_in > 0 ? t->in[0]->shape.ndim : 0;
  const char *r = NULL;
  Onnx__NodeProto *n = NULL;
  if (ex_unary_ops[t->op]) return ex1(e, ex_unary_ops[t->op], x, out) ? ASG_OK : ASG_ERR_OOM;
  if (ex_binary_ops[t->op]) return ex2(e, ex_binary_ops[t->op], x, b, out) ? ASG_OK : ASG_ERR_OOM;
  if (ex_compare_ops[t->op]) {
    r = ex2(e, ex_compare_ops[t->op], x, b, NULL);
    if (t->op == ASG_OP_NE) r = ex1(e, "Not", r, NULL);
    return ex_cast(e, r, ex_type(dt), out) ? ASG_OK : ASG_ERR_OOM;
  }
  switch (t->op) {
  case ASG_OP_RSQRT: r = ex1(e, "Reciprocal", ex1(e, "Sqrt", x, NULL), out); break;
  case ASG_OP_LEAKY_RELU:
  case ASG_OP_ELU:
    if ((n = ex_node(e, t->op == ASG_OP_ELU ? "Elu" : "LeakyRelu", 1, &x, out)))
      ex_attr_float(e, n, "alpha", a->f[0]), r = out;
    break;
  case ASG_OP_GELU: /* x/2 (1 + erf(x/sqrt(2))) */
    r = ex2(
        e, "Mul", ex2(e, "Mul", x, ex_scalar(e, dt, 0.5), NULL),
        ex2(e, "Add", ex_scalar(e, dt, 1.0),
            ex1(e, "Erf", ex2(e, "Mul", x, ex_scalar(e, dt, 0.70710678118654752440), NULL), NULL),
            NULL),
        out);
    break;
  case ASG_OP_GELU_TANH: { /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    const char *x3 = ex2(e, "Mul", ex2(e, "Mul", x, x, NULL), x, NULL);
    const char *in = ex2(e, "Add", x, ex2(e, "Mul", x3, ex_scalar(e, dt, 0.044715), NULL), NULL);
    const char *th =
        ex1(e, "Tanh", ex2(e, "Mul", in, ex_scalar(e, dt, 0.79788456080286535588), NULL), NULL);
    r = ex2(e, "Mul", ex2(e, "Mul", x, ex_scalar(e, dt, 0.5), NULL),
            ex2(e, "Add", ex_scalar(e, dt, 1.0), th, NULL), out);
    break;
  }
  case ASG_OP_GELU_BWD: { /* dy (Phi(x) + x phi(x)); here x names dy and b the input x */
    const char *cdf = ex2(
        e, "Mul", ex_scalar(e, dt, 0.5),
        ex2(e, "Add", ex_scalar(e, dt, 1.0),
            ex1(e, "Erf", ex2(e, "Mul", b, ex_scalar(e, dt, 0.70710678118654752440), NULL), NULL),
            NULL),
        NULL);
    const char *pdf = ex2(
        e, "Mul",
        ex1(e, "Exp", ex2(e, "Mul", ex2(e, "Mul", b, b, NULL), ex_scalar(e, dt, -0.5), NULL), NULL),
        ex_scalar(e, dt, 0.39894228040143267794), NULL);
    r = ex2(e, "Mul", x, ex2(e, "Add", cdf, ex2(e, "Mul", b, pdf, NULL), NULL), out);
    break;
  }
  case ASG_OP_GELU_TANH_BWD: { /* dy ((1 + t)/2 + x (1 - t^2) a (1 + 3c x^2) / 2), t = tanh u */
    const char *x2 = ex2(e, "Mul", b, b, NULL);
    const char *in =
        ex2(e, "Add", b,
            ex2(e, "Mul", ex2(e, "Mul", x2, b, NULL), ex_scalar(e, dt, 0.044715), NULL), NULL);
    const char *t =
        ex1(e, "Tanh", ex2(e, "Mul", in, ex_scalar(e, dt, 0.79788456080286535588), NULL), NULL);
    const char *left =
        ex2(e, "Mul", ex2(e, "Add", t, ex_scalar(e, dt, 1.0), NULL), ex_scalar(e, dt, 0.5), NULL);
    const char *du = ex2(
        e, "Add", ex_scalar(e, dt, 0.5 * 0.79788456080286535588),
        ex2(e, "Mul", x2, ex_scalar(e, dt, 1.5 * 0.79788456080286535588 * 0.044715), NULL), NULL);
    const char *sech2 = ex2(e, "Sub", ex_scalar(e, dt, 1.0), ex2(e, "Mul", t, t, NULL), NULL);
    const char *right = ex2(e, "Mul", ex2(e, "Mul", b, sech2, NULL), du, NULL);
    r = ex2(e, "Mul", x, ex2(e, "Add", left, right, NULL), out);
    break;
  }
  case ASG_OP_SILU: r = ex2(e, "Mul", x, ex1(e, "Sigmoid", x, NULL), out); break;
  case ASG_OP_SOFTPLUS: { /* beta x > threshold ? x : log(1 + exp(beta x)) / beta */
    const char *bx = ex2(e, "Mul", x, ex_scalar(e, dt, a->f[0]), NULL);
    const char *sp = ex2(e, "Div", ex1(e, "Softplus", bx, NULL), ex_scalar(e, dt, a->f[0]), NULL);
    const char *c = ex2(e, "Greater", bx, ex_scalar(e, dt, a->f[1]), NULL);
    const char *in[3] = {c, x, sp};
    if (c && sp) n = ex_node(e, "Where", 3, in, out), r = n ? out : NULL;
    break;
  }
  case ASG_OP_CLAMP: {
    const char *in[3] = {x, ex_scalar(e, dt, a->f[0]), ex_scalar(e, dt, a->f[1])};
    if (in[1] && in[2]) n = ex_node(e, "Clip", 3, in, out), r = n ? out : NULL;
    break;
  }
  case ASG_OP_CAST: r = ex_cast(e, x, ex_type(dt), out); break;
  case ASG_OP_WHERE: {
    const char *in[3] = {ex_cast(e, x, 9 /* BOOL */, NULL), b, e->val[t->in[2]->id]};
    if (in[0]) n = ex_node(e, "Where", 3, in, out), r = n ? out : NULL;
    break;
  }
  case ASG_OP_SUM: r = ex_reduce(e, "ReduceSum", x, a->i[0], nd, a->i[1], out); break;
  case ASG_OP_MEAN: r = ex_reduce(e, "ReduceMean", x, a->i[0], nd, a->i[1], out); break;
  case ASG_OP_MAX: r = ex_reduce(e, "ReduceMax", x, a->i[0], nd, a->i[1], out); break;
  case ASG_OP_MIN: r = ex_reduce(e, "ReduceMin", x, a->i[0], nd, a->i[1], out); break;
  case ASG_OP_VAR: { /* mean of squared deviations, rescaled by n / (n - correction) */
    int64_t cnt = 1;
    for (int i = 0; i < nd; i++)
      if (a->i[0] & ((int64_t)1 << i))
        cnt = asg__dim_is_sym(cnt) || asg__dim_is_sym(t->in[0]->shape.dims[i])
                  ? -2
                  : cnt * t->in[0]->shape.dims[i];
    if (a->i[2] && asg__dim_is_sym(cnt))
      return ex_unsup(e, "correction %lld over a symbolic number of elements", (long long)a->i[2]);
    const char *d = ex2(e, "Sub", x, ex_reduce(e, "ReduceMean", x, a->i[0], nd, true, NULL), NULL);
    const char *m = ex_reduce(e, "ReduceMean", ex2(e, "Mul", d, d, NULL), a->i[0], nd, a->i[1],
                              a->i[2] ? NULL : out);
    r = a->i[2] ? ex2(e, "Mul", m, ex_scalar(e, dt, (double)cnt / (double)(cnt - a->i[2])), out)
                : m;
    break;
  }
  case ASG_OP_ARGMAX: {
    int ax = 0;
    while (ax < nd && !(a->i[0] & ((int64_t)1 << ax)))
      ax++;
    if ((n = ex_node(e, "ArgMax", 1, &x, dt == ASG_I64 ? out : NULL))) {
      ex_attr_int(e, n, "axis", ax);
      ex_attr_int(e, n, "keepdims", a->i[1]);
      r = dt == ASG_I64 ? out : ex_cast(e, n->output[0], ex_type(dt), out);
    }
    break;
  }
  case ASG_OP_SOFTMAX:
  case ASG_OP_LOG_SOFTMAX:
    if ((n = ex_node(e, t->op == ASG_OP_SOFTMAX ? "Softmax" : "LogSoftmax", 1, &x, out)))
      ex_attr_int(e, n, "axis", a->i[0]), r = out;
    break;
  case ASG_OP_MATMUL: {
    int nb = t->in[1]->shape.ndim;
    const char *pa = a->i[0] ? ex_transpose_last2(e, x, nd) : x;
    const char *pb = a->i[1] ? ex_transpose_last2(e, b, nb) : b;
    r = ex2(e, "MatMul", pa, pb, out);
    break;
  }
  case ASG_OP_RESHAPE: {
    const char *s = ex_reshape_shape(e, t->in[0], t->shape);
    if (!s) return e->oom ? ASG_ERR_OOM : ASG_ERR_UNSUPPORTED;
    r = ex2(e, "Reshape", x, s, out);
    break;
  }
  case ASG_OP_PERMUTE:
    if ((n = ex_node(e, "Transpose", 1, &x, out)))
      ex_attr_ints(e, n, "perm", t->shape.ndim, a->i), r = out;
    break;
  case ASG_OP_SLICE: { /* i0 axis, i1 start, i2 step, i3 count */
    if (asg__dim_is_sym(a->i[3]) || asg__dim_is_sym(a->i[1]))
      return ex_unsup(e, "slice with a symbolic start or length");
    int64_t end = a->i[1] + a->i[2] * a->i[3];
    if (end < 0) end = INT64_MIN; /* a negative step running past index 0 */
    const char *in[5] = {x, ex_ints(e, 1, &a->i[1]), ex_ints(e, 1, &end), ex_ints(e, 1, &a->i[0]),
                         ex_ints(e, 1, &a->i[2])};
    if (in[1] && in[2] && in[3] && in[4]) n = ex_node(e, "Slice", 5, in, out), r = n ? out : NULL;
    break;
  }
  case ASG_OP_CONCAT: {
    const char **in = ex_alloc(e, sizeof *in * (size_t)t->n_in);
    if (!in) break;
    for (int i = 0; i < t->n_in; i++)
      in[i] = e->val[t->in[i]->id];
    if ((n = ex_node(e, "Concat", t->n_in, in, out))) ex_attr_int(e, n, "axis", a->i[0]), r = out;
    break;
  }
  case ASG_OP_BROADCAST_TO: { /* Expand broadcasts both ways: a symbolic dim is 1 */
    int64_t v[ASG_MAX_DIMS];
    const asg_shape xs = t->in[0]->shape;
    for (int i = 0; i < t->shape.ndim; i++) {
      int xi = i - (t->shape.ndim - xs.ndim);
      bool sym = asg__dim_is_sym(t->shape.dims[i]);
      if (sym && (xi < 0 || xs.dims[xi] != t->shape.dims[i]))
        return ex_unsup(e, "broadcast to a new symbolic dimension");
      v[i] = sym ? 1 : t->shape.dims[i];
    }
    r = ex2(e, "Expand", x, ex_ints(e, t->shape.ndim, v), out);
    break;
  }
  case ASG_OP_GATHER:
    if ((n = ex_node(e, "Gather", 2, (const char *[]){x, b}, out)))
      ex_attr_int(e, n, "axis", a->i[0]), r = out;
    break;
  case ASG_OP_ONE_HOT: { /* values [off, on] of the node's dtype */
    int64_t two = 2;
    union {
      float f[2];
      double d[2];
      int32_t i[2];
      int64_t l[2];
    } v = {{0}};
    if (dt == ASG_F32)
      v.f[1] = 1;
    else if (dt == ASG_F64)
      v.d[1] = 1;
    else if (dt == ASG_I32)
      v.i[1] = 1;
    else
      v.l[1] = 1;
    const char *in[3] = {x, ex_ints(e, 1, &a->i[0]), ex_init(e, NULL, dt, 1, &two, &v)};
    if (in[1] && in[2] && (n = ex_node(e, "OneHot", 3, in, out)))
      ex_attr_int(e, n, "axis", -1), r = out;
    break;
  }
  case ASG_OP_LAYERNORM: {
    const char *in[3] = {x, b, e->val[t->in[2]->id]};
    if ((n = ex_node(e, "LayerNormalization", 3, in, out))) {
      ex_attr_int(e, n, "axis", -1);
      ex_attr_float(e, n, "epsilon", a->f[0]);
      r = out;
    }
    break;
  }
  case ASG_OP_RMSNORM: { /* decomposed at every opset (RMSNormalization is opset 23) */
    int64_t last = (int64_t)1 << (nd - 1);
    const char *ms = ex_reduce(e, "ReduceMean", ex2(e, "Mul", x, x, NULL), last, nd, true, NULL);
    const char *inv =
        ex1(e, "Reciprocal",
            ex1(e, "Sqrt", ex2(e, "Add", ms, ex_scalar(e, dt, a->f[0]), NULL), NULL), NULL);
    r = ex2(e, "Mul", ex2(e, "Mul", x, inv, NULL), b, out);
    break;
  }
  case ASG_OP_ROPE: { /* x cos + concat(-x[h:], x[:h]) sin: Slice, Neg, Concat, Mul, Add */
    const int64_t D = t->shape.dims[nd - 1], h = D / 2;
    const char *rot[2] = {ex1(e, "Neg", ex_slice_last(e, x, nd, h, D), NULL),
                          ex_slice_last(e, x, nd, 0, h)};
    if (!rot[0] || !rot[1] || !(n = ex_node(e, "Concat", 2, rot, NULL))) break;
    ex_attr_int(e, n, "axis", nd - 1);
    const char *sn = e->val[t->in[2]->id];
    r = ex2(e, "Add", ex2(e, "Mul", x, b, NULL), ex2(e, "Mul", n->output[0], sn, NULL), out);
    break;
  }
  case ASG_OP_BATCHNORM: { /* training mode: the batch's statistics, as the op computes them */
    int64_t mask = ((int64_t)1 << nd) - 1 - 2; /* every axis but the channels */
    asg_shape cs = {nd - 1, {0}};              /* gamma, beta [C] as [C, 1, ...] */
    cs.dims[0] = t->in[0]->shape.dims[1];
    for (int i = 1; i < cs.ndim; i++)
      cs.dims[i] = 1;
    const char *d = ex2(e, "Sub", x, ex_reduce(e, "ReduceMean", x, mask, nd, true, NULL), NULL);
    const char *v = ex_reduce(e, "ReduceMean", ex2(e, "Mul", d, d, NULL), mask, nd, true, NULL);
    const char *inv =
        ex1(e, "Reciprocal",
            ex1(e, "Sqrt", ex2(e, "Add", v, ex_scalar(e, dt, a->f[0]), NULL), NULL), NULL);
    const char *gs = ex_reshape_shape(e, t->in[1], cs);
    const char *gr = gs ? ex2(e, "Reshape", b, gs, NULL) : NULL;
    const char *br = gs ? ex2(e, "Reshape", e->val[t->in[2]->id], gs, NULL) : NULL;
    r = ex2(e, "Add", ex2(e, "Mul", ex2(e, "Mul", d, inv, NULL), gr, NULL), br, out);
    break;
  }
  case ASG_OP_CONV2D:
  case ASG_OP_CONV_TRANSPOSE2D: {
    bool tr = t->op == ASG_OP_CONV_TRANSPOSE2D;
    if ((n = ex_node(e, tr ? "ConvTranspose" : "Conv", 2, (const char *[]){x, b}, out)))
      ex_conv_attrs(e, n, a, tr), r = out;
    break;
  }
  case ASG_OP_MAXPOOL2D:
  case ASG_OP_AVGPOOL2D: {
    bool mx = t->op == ASG_OP_MAXPOOL2D;
    if ((n = ex_node(e, mx ? "MaxPool" : "AveragePool", 1, &x, out))) {
      int64_t v[4] = {a->i[4], a->i[5], a->i[4], a->i[5]};
      ex_attr_ints(e, n, "kernel_shape", 2, a->i);
      ex_attr_ints(e, n, "strides", 2, a->i + 2);
      ex_attr_ints(e, n, "pads", 4, v);
      if (a->i[6] > 1 || a->i[7] > 1) ex_attr_ints(e, n, "dilations", 2, a->i + 6); /* max only */
      if (a->i[8])
        ex_attr_int(e, n, "ceil_mode", 1); /* same rule: no window starts in the end pad */
      /* ASG counts padding as zeros unless exclude_pad (ONNX's default) */
      if (!mx) ex_attr_int(e, n, "count_include_pad", a->i[9] ? 0 : 1);
      r = out;
    }
    break;
  }
  case ASG_OP_ADAPTIVE_AVGPOOL2D: {
    const asg_shape xs = t->in[0]->shape, ys = t->shape;
    if (ys.dims[2] == 1 && ys.dims[3] == 1) {
      r = ex1(e, "GlobalAveragePool", x, out);
      break;
    }
    int64_t k[2];
    for (int i = 0; i < 2; i++) {
      if (asg__dim_is_sym(xs.dims[2 + i]) || xs.dims[2 + i] % ys.dims[2 + i])
        return ex_unsup(e,
                        "adaptive pooling whose input size is not a multiple of the output size");
      k[i] = xs.dims[2 + i] / ys.dims[2 + i];
    }
    if ((n = ex_node(e, "AveragePool", 1, &x, out)))
      ex_attr_ints(e, n, "kernel_shape", 2, k), ex_attr_ints(e, n, "strides", 2, k), r = out;
    break;
  }
  case ASG_OP_CUSTOM: { /* user code (asg/custom.h): nothing an ONNX runtime could run */
    const asg_custom_op *cop = asg_custom_of(t);
    return ex_unsup(e, "custom op '%s' has no ONNX mapping (custom ops are not exported)",
                    cop ? asg_custom_name(cop) : "?");
  }
  default:
    return ex_unsup(e, "no ONNX mapping%s",
                    asg__op_info[t->op].flags & ASG_OPF_BWD
                        ? " (a backward op: export the forward graph)"
                        : "");
  }
  return r && !e->oom ? ASG_OK : ASG_ERR_OOM;
}

#endif
