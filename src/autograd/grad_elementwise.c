/* Gradient rules of elementwise ops, written with ops so that they can be
 * differentiated again. */
#include <math.h>

#include "autograd/grad.h"

static asg_tensor *k(asg_tensor *like, double v) { return asg_scalar(like->graph, like->dtype, v); }

static void g_neg(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)y, (void)need;
  dx[0] = asg_neg(dy);
}
static void g_abs(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_mul(dy, asg_sign(y->in[0]));
}
static void g_exp(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_mul(dy, y);
}
static void g_log(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_div(dy, y->in[0]);
}
static void g_sqrt(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* d sqrt(x) = 1 / (2 sqrt(x)) */
  dx[0] = asg_div(asg_mul_scalar(dy, 0.5), y);
}
static void g_rsqrt(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3 */
  dx[0] = asg_mul(dy, asg_mul_scalar(asg_mul(y, asg_mul(y, y)), -0.5));
}
static void g_sin(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_mul(dy, asg_cos(y->in[0]));
}
static void g_cos(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_neg(asg_mul(dy, asg_sin(y->in[0])));
}
static void g_tanh(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_mul(dy, asg_sub(k(y, 1), asg_mul(y, y)));
}
static void g_erf(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* 2/sqrt(pi) exp(-x^2) */
  asg_tensor *x = y->in[0];
  dx[0] = asg_mul(dy, asg_mul_scalar(asg_exp(asg_neg(asg_mul(x, x))), 1.1283791670955126));
}
static void g_sigmoid(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_mul(dy, asg_mul(y, asg_sub(k(y, 1), y)));
}
static void g_relu(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* y > 0 exactly where x > 0: reading the output leaves the input to
                 relu alone (a GEMM epilogue can then compute it, docs/backends.md) */
  dx[0] = asg_mul(dy, asg_gt(y, k(y, 0)));
}
static void g_leaky_relu(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_where(asg_gt(y->in[0], k(y, 0)), dy, asg_mul_scalar(dy, y->attr.f[0]));
}
/* gelu and gelu_tanh: one gelu_bwd / gelu_tanh_bwd node (dy * gelu'(x)); their
 * rules below give the second derivatives. */
static void g_gelu(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_gelu_bwd(dy, y->in[0]);
}
static void g_gelu_tanh(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_gelu_tanh_bwd(dy, y->in[0]);
}
/* y = g * gelu'(x): d/dg = gelu'(x), a gelu_bwd again; d/dx = g gelu''(x),
 * gelu''(x) = 2 phi(x) + x phi'(x) = phi(x) (2 - x^2), phi(x) = e^(-x^2/2) / sqrt(2 pi) */
static void g_gelu_bwd(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *g = y->in[0], *x = y->in[1];
  if (need[0]) dx[0] = asg_gelu_bwd(dy, x);
  if (!need[1]) return;
  asg_tensor *x2 = asg_mul(x, x);
  asg_tensor *pdf = asg_mul_scalar(asg_exp(asg_mul_scalar(x2, -0.5)), 0.3989422804014327);
  dx[1] = asg_mul(asg_mul(dy, g), asg_mul(pdf, asg_sub(k(y, 2), x2)));
}
/* y = g * gelu_tanh'(x), u = a (x + c x^3), t = tanh u, u' = a (1 + 3c x^2),
 * u'' = 6ac x: gelu_tanh' = (1 + t)/2 + x (1 - t^2) u'/2 and
 * gelu_tanh'' = (1 - t^2) (u' + x u''/2 - x t u'^2) = (1 - t^2) (u' (1 - x t u') + 3ac x^2).
 * 1 - t^2 = 4 sigmoid(2u) sigmoid(-2u): as 1 - t t it would cancel where tanh
 * saturates (backends' float tanh differ there by an ulp that this multiplies). */
static void g_gelu_tanh_bwd(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  const double a = 0.7978845608028654, c = 0.044715;
  asg_tensor *g = y->in[0], *x = y->in[1];
  if (need[0]) dx[0] = asg_gelu_tanh_bwd(dy, x);
  if (!need[1]) return;
  asg_tensor *x2 = asg_mul(x, x);
  asg_tensor *u = asg_mul_scalar(asg_add(x, asg_mul_scalar(asg_mul(x2, x), c)), a);
  asg_tensor *t = asg_tanh(u);
  asg_tensor *sech2 = asg_mul_scalar(
      asg_mul(asg_sigmoid(asg_mul_scalar(u, 2)), asg_sigmoid(asg_mul_scalar(u, -2))), 4);
  asg_tensor *du = asg_mul_scalar(asg_add_scalar(asg_mul_scalar(x2, 3 * c), 1), a);
  asg_tensor *in = asg_sub(k(y, 1), asg_mul(asg_mul(x, t), du)); /* 1 - x t u' */
  asg_tensor *d2 = asg_mul(sech2, asg_add(asg_mul(du, in), asg_mul_scalar(x2, 3 * a * c)));
  dx[1] = asg_mul(asg_mul(dy, g), d2);
}
static void g_silu(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* s (1 + x (1 - s)) */
  asg_tensor *x = y->in[0], *s = asg_sigmoid(x);
  dx[0] = asg_mul(dy, asg_mul(s, asg_add_scalar(asg_mul(x, asg_sub(k(y, 1), s)), 1)));
}
static void g_elu(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* x <= 0: alpha e^x = y + alpha */
  dx[0] = asg_where(asg_gt(y->in[0], k(y, 0)), dy, asg_mul(dy, asg_add_scalar(y, y->attr.f[0])));
}
static void g_softplus(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  asg_tensor *bx = asg_mul_scalar(y->in[0], y->attr.f[0]);
  dx[0] = asg_where(asg_gt(bx, k(y, y->attr.f[1])), dy, asg_mul(dy, asg_sigmoid(bx)));
}
static void g_clamp(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  asg_tensor *x = y->in[0];
  dx[0] = asg_mul(dy, asg_mul(asg_ge(x, k(y, y->attr.f[0])), asg_le(x, k(y, y->attr.f[1]))));
}
static void g_cast(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  if (asg_dtype_is_float(y->dtype)) dx[0] = asg_cast(dy, y->in[0]->dtype);
}

static void g_add(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)y, (void)need;
  dx[0] = dy;
  dx[1] = dy;
}
static void g_sub(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)y;
  dx[0] = dy;
  if (need[1]) dx[1] = asg_neg(dy);
}
static void g_mul(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  if (need[0]) dx[0] = asg_mul(dy, y->in[1]);
  if (need[1]) dx[1] = asg_mul(dy, y->in[0]);
}
static void g_div(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *b = y->in[1];
  if (need[0]) dx[0] = asg_div(dy, b);
  if (need[1]) dx[1] = asg_neg(asg_div(asg_mul(dy, y), b)); /* -dy a / b^2 */
}
static void g_pow(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *a = y->in[0], *b = y->in[1];
  if (need[0]) dx[0] = asg_mul(dy, asg_mul(b, asg_pow(a, asg_add_scalar(b, -1))));
  if (need[1]) dx[1] = asg_mul(dy, asg_mul(asg_log(a), y));
}
/* Ties send the whole gradient to the first operand. */
static void g_maximum(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *m = asg_ge(y->in[0], y->in[1]);
  if (need[0]) dx[0] = asg_mul(dy, m);
  if (need[1]) dx[1] = asg_mul(dy, asg_sub(k(y, 1), m));
}
static void g_minimum(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *m = asg_le(y->in[0], y->in[1]);
  if (need[0]) dx[0] = asg_mul(dy, m);
  if (need[1]) dx[1] = asg_mul(dy, asg_sub(k(y, 1), m));
}
static void g_where(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *c = y->in[0], *z = k(y, 0);
  if (need[1]) dx[1] = asg_where(c, dy, z);
  if (need[2]) dx[2] = asg_where(c, z, dy);
}

void asg_grad_register_elementwise(asg_grad_rule *t) {
  t[ASG_OP_NEG] = g_neg;
  t[ASG_OP_ABS] = g_abs;
  t[ASG_OP_EXP] = g_exp;
  t[ASG_OP_LOG] = g_log;
  t[ASG_OP_SQRT] = g_sqrt;
  t[ASG_OP_RSQRT] = g_rsqrt;
  t[ASG_OP_SIN] = g_sin;
  t[ASG_OP_COS] = g_cos;
  t[ASG_OP_TANH] = g_tanh;
  t[ASG_OP_ERF] = g_erf;
  t[ASG_OP_SIGMOID] = g_sigmoid;
  t[ASG_OP_RELU] = g_relu;
  t[ASG_OP_LEAKY_RELU] = g_leaky_relu;
  t[ASG_OP_GELU] = g_gelu;
  t[ASG_OP_GELU_TANH] = g_gelu_tanh;
  t[ASG_OP_GELU_BWD] = g_gelu_bwd;
  t[ASG_OP_GELU_TANH_BWD] = g_gelu_tanh_bwd;
  t[ASG_OP_SILU] = g_silu;
  t[ASG_OP_ELU] = g_elu;
  t[ASG_OP_SOFTPLUS] = g_softplus;
  t[ASG_OP_CLAMP] = g_clamp;
  t[ASG_OP_CAST] = g_cast;
  t[ASG_OP_ADD] = g_add;
  t[ASG_OP_SUB] = g_sub;
  t[ASG_OP_MUL] = g_mul;
  t[ASG_OP_DIV] = g_div;
  t[ASG_OP_POW] = g_pow;
  t[ASG_OP_MAXIMUM] = g_maximum;
  t[ASG_OP_MINIMUM] = g_minimum;
  t[ASG_OP_WHERE] = g_where;
}
