/* Elementwise op constructors: unary, binary (NumPy broadcasting), where.
 * Attributes: LEAKY_RELU f0=slope; ELU f0=alpha; SOFTPLUS f0=beta
 * f1=threshold; CLAMP f0=lo f1=hi. */
#include "ops/op_util.h"

/* Ops defined for integer tensors too; the rest need f32/f64. */
static bool int_ok(asg_op op) {
  return op == ASG_OP_NEG || op == ASG_OP_ABS || op == ASG_OP_SIGN || op == ASG_OP_RELU ||
         op == ASG_OP_CLAMP || op == ASG_OP_CAST;
}

static asg_tensor *unary(asg_op op, asg_tensor *x, double f0, double f1) {
  const char *name = asg__op_name(op);
  asg_graph *g = asg__graph_of(name, 1, &x);
  if (!g) return NULL;
  if (!int_ok(op) && !asg__need_float(g, name, x)) return NULL;
  if (x->dtype == ASG_BF16 || x->dtype == ASG_F16)
    return asg__fail(g, ASG_ERR_DTYPE, name, "%s tensors are storage-only on the CPU",
                     asg_dtype_name(x->dtype));
  asg_tensor *y = asg__node(g, op, x->dtype, x->shape, 1, &x);
  if (y) {
    y->attr.f[0] = f0;
    y->attr.f[1] = f1;
  }
  return y;
}

asg_tensor *asg_neg(asg_tensor *x) { return unary(ASG_OP_NEG, x, 0, 0); }
asg_tensor *asg_abs(asg_tensor *x) { return unary(ASG_OP_ABS, x, 0, 0); }
asg_tensor *asg_sign(asg_tensor *x) { return unary(ASG_OP_SIGN, x, 0, 0); }
asg_tensor *asg_exp(asg_tensor *x) { return unary(ASG_OP_EXP, x, 0, 0); }
asg_tensor *asg_log(asg_tensor *x) { return unary(ASG_OP_LOG, x, 0, 0); }
asg_tensor *asg_sqrt(asg_tensor *x) { return unary(ASG_OP_SQRT, x, 0, 0); }
asg_tensor *asg_rsqrt(asg_tensor *x) { return unary(ASG_OP_RSQRT, x, 0, 0); }
asg_tensor *asg_sin(asg_tensor *x) { return unary(ASG_OP_SIN, x, 0, 0); }
asg_tensor *asg_cos(asg_tensor *x) { return unary(ASG_OP_COS, x, 0, 0); }
asg_tensor *asg_tanh(asg_tensor *x) { return unary(ASG_OP_TANH, x, 0, 0); }
asg_tensor *asg_erf(asg_tensor *x) { return unary(ASG_OP_ERF, x, 0, 0); }
asg_tensor *asg_sigmoid(asg_tensor *x) { return unary(ASG_OP_SIGMOID, x, 0, 0); }
asg_tensor *asg_relu(asg_tensor *x) { return unary(ASG_OP_RELU, x, 0, 0); }
asg_tensor *asg_leaky_relu(asg_tensor *x, double s) { return unary(ASG_OP_LEAKY_RELU, x, s, 0); }
asg_tensor *asg_gelu(asg_tensor *x) { return unary(ASG_OP_GELU, x, 0, 0); }
asg_tensor *asg_gelu_tanh(asg_tensor *x) { return unary(ASG_OP_GELU_TANH, x, 0, 0); }
asg_tensor *asg_silu(asg_tensor *x) { return unary(ASG_OP_SILU, x, 0, 0); }
asg_tensor *asg_elu(asg_tensor *x, double alpha) { return unary(ASG_OP_ELU, x, alpha, 0); }

asg_tensor *asg_softplus(asg_tensor *x, double beta, double threshold) {
  if (x && beta <= 0)
    return asg__fail(x->graph, ASG_ERR_INVALID, "softplus", "beta must be > 0, got %g", beta);
  return unary(ASG_OP_SOFTPLUS, x, beta, threshold);
}

asg_tensor *asg_clamp(asg_tensor *x, double lo, double hi) {
  if (x && lo > hi) return asg__fail(x->graph, ASG_ERR_INVALID, "clamp", "lo %g > hi %g", lo, hi);
  return unary(ASG_OP_CLAMP, x, lo, hi);
}

asg_tensor *asg_stop_gradient(asg_tensor *x) {
  asg_graph *g = asg__graph_of("stop_gradient", 1, &x);
  return g ? asg__node(g, ASG_OP_STOP_GRADIENT, x->dtype, x->shape, 1, &x) : NULL;
}

asg_tensor *asg_cast(asg_tensor *x, asg_dtype dt) {
  asg_graph *g = asg__graph_of("cast", 1, &x);
  if (!g) return NULL;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__fail(g, ASG_ERR_DTYPE, "cast", "cannot cast to %s on the CPU", asg_dtype_name(dt));
  if (x->dtype == dt) return x;
  return asg__node(g, ASG_OP_CAST, dt, x->shape, 1, &x);
}

static bool float_only_binary(asg_op op) {
  return op == ASG_OP_POW || op == ASG_OP_GELU_BWD || op == ASG_OP_GELU_TANH_BWD;
}

static asg_tensor *binary(asg_op op, asg_tensor *a, asg_tensor *b) {
  const char *name = asg__op_name(op);
  asg_tensor *in[2] = {a, b};
  asg_graph *g = asg__graph_of(name, 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g || !asg__same_dtype(g, name, a, b)) return NULL;
  if (float_only_binary(op) && !asg__need_float(g, name, a)) return NULL;
  asg_shape out;
  if (!asg__broadcast_shapes(a->shape, b->shape, &out))
    return asg__fail(g, ASG_ERR_SHAPE, name, "%s and %s do not broadcast", SHP(a->shape, b1),
                     SHP(b->shape, b2));
  return asg__node(g, op, a->dtype, out, 2, in);
}

asg_tensor *asg_add(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_ADD, a, b); }
asg_tensor *asg_sub(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_SUB, a, b); }
asg_tensor *asg_mul(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_MUL, a, b); }
asg_tensor *asg_div(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_DIV, a, b); }
asg_tensor *asg_pow(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_POW, a, b); }
asg_tensor *asg_maximum(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_MAXIMUM, a, b); }
asg_tensor *asg_minimum(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_MINIMUM, a, b); }
asg_tensor *asg_eq(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_EQ, a, b); }
asg_tensor *asg_ne(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_NE, a, b); }
asg_tensor *asg_lt(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_LT, a, b); }
asg_tensor *asg_le(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_LE, a, b); }
asg_tensor *asg_gt(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_GT, a, b); }
asg_tensor *asg_ge(asg_tensor *a, asg_tensor *b) { return binary(ASG_OP_GE, a, b); }
asg_tensor *asg_gelu_bwd(asg_tensor *dy, asg_tensor *x) { return binary(ASG_OP_GELU_BWD, dy, x); }
asg_tensor *asg_gelu_tanh_bwd(asg_tensor *dy, asg_tensor *x) {
  return binary(ASG_OP_GELU_TANH_BWD, dy, x);
}

asg_tensor *asg_where(asg_tensor *cond, asg_tensor *a, asg_tensor *b) {
  asg_tensor *in[3] = {cond, a, b};
  asg_graph *g = asg__graph_of("where", 3, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF];
  if (!g || !asg__same_dtype(g, "where", a, b)) return NULL;
  if (cond->dtype != a->dtype)
    return asg__fail(g, ASG_ERR_DTYPE, "where", "condition is %s, values are %s (cast it)",
                     asg_dtype_name(cond->dtype), asg_dtype_name(a->dtype));
  asg_shape s1, out;
  if (!asg__broadcast_shapes(cond->shape, a->shape, &s1) ||
      !asg__broadcast_shapes(s1, b->shape, &out))
    return asg__fail(g, ASG_ERR_SHAPE, "where", "%s, %s and %s do not broadcast",
                     SHP(cond->shape, b1), SHP(a->shape, b2), SHP(b->shape, b3));
  return asg__node(g, ASG_OP_WHERE, a->dtype, out, 3, in);
}

static asg_tensor *with_scalar(asg_tensor *(*f)(asg_tensor *, asg_tensor *), asg_tensor *x,
                               double c) {
  if (!asg__graph_of("scalar", 1, &x)) return NULL;
  return f(x, asg_scalar(x->graph, x->dtype, c));
}
asg_tensor *asg_add_scalar(asg_tensor *x, double c) { return with_scalar(asg_add, x, c); }
asg_tensor *asg_mul_scalar(asg_tensor *x, double c) { return with_scalar(asg_mul, x, c); }
asg_tensor *asg_pow_scalar(asg_tensor *x, double c) { return with_scalar(asg_pow, x, c); }
