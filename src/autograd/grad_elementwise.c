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
static void g_gelu(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* Phi(x) + x phi(x) */
  asg_tensor *x = y->in[0];
  asg_tensor *cdf =
      asg_mul_scalar(asg_add_scalar(asg_erf(asg_mul_scalar(x, 0.7071067811865476)), 1), 0.5);
  asg_tensor *pdf =
      asg_mul_scalar(asg_exp(asg_mul_scalar(asg_mul(x, x), -0.5)), 0.3989422804014327);
  dx[0] = asg_mul(dy, asg_add(cdf, asg_mul(x, pdf)));
}
static void g_gelu_tanh(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* u = a(x + c x^3), t = tanh u: 0.5(1+t) + 0.5 x (1-t^2) a (1 + 3c x^2) */
  const double a = 0.7978845608028654, c = 0.044715;
  asg_tensor *x = y->in[0], *x2 = asg_mul(x, x);
  asg_tensor *t = asg_tanh(asg_mul_scalar(asg_add(x, asg_mul_scalar(asg_mul(x2, x), c)), a));
  asg_tensor *left = asg_mul_scalar(asg_add_scalar(t, 1), 0.5);
  asg_tensor *du = asg_mul_scalar(asg_add_scalar(asg_mul_scalar(x2, 3 * c), 1), 0.5 * a);
  asg_tensor *right = asg_mul(asg_mul(x, asg_sub(k(y, 1), asg_mul(t, t))), du);
  dx[0] = asg_mul(dy, asg_add(left, right));
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
