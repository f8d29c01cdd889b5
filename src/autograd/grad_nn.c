/* Gradient rules of the nn family. Softmax, log_softmax, rmsnorm and rope
 * use public ops (differentiable again); layernorm, batchnorm and softmax
 * cross-entropy use their dedicated one-pass backward ops (not
 * differentiable again). */
#include "autograd/grad.h"

/* softmax: dx = y * (dy - sum(dy * y, axis)) */
static void g_softmax(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  asg_axes ax = ASG_AXES((int)y->attr.i[0]);
  dx[0] = asg_mul(y, asg_sub(dy, asg_sum(asg_mul(dy, y), ax, true)));
}

/* log_softmax: dx = dy - exp(y) * sum(dy, axis) */
static void g_log_softmax(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  asg_axes ax = ASG_AXES((int)y->attr.i[0]);
  dx[0] = asg_sub(dy, asg_mul(asg_exp(y), asg_sum(dy, ax, true)));
}

/* A dedicated backward node of y's dtype, carrying y's attributes. Shapes
 * are right by construction (they come from a checked forward node). */
static asg_tensor *bwd_node(asg_op op, asg_tensor *y, asg_shape shape, int n, asg_tensor **in) {
  asg_graph *g = asg__graph_of(asg__op_name(op), n, in);
  if (!g) return NULL;
  asg_tensor *t = asg__node(g, op, y->dtype, shape, n, in);
  if (t) t->attr = y->attr;
  return t;
}

/* layernorm(x, gamma, beta): dx and dgamma recompute the row statistics
 * from x; dbeta is dy summed over the leading dims. */
static void g_layernorm(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0], *gamma = y->in[1];
  if (need[0]) {
    asg_tensor *in[3] = {dy, x, gamma};
    dx[0] = bwd_node(ASG_OP_LAYERNORM_BWD_X, y, x->shape, 3, in);
  }
  if (need[1]) {
    asg_tensor *in[2] = {dy, x};
    dx[1] = bwd_node(ASG_OP_LAYERNORM_BWD_GAMMA, y, gamma->shape, 2, in);
  }
  if (need[2]) {
    asg_axes lead = {0, {0}};
    for (int d = 0; d < x->shape.ndim - 1; d++)
      lead.axis[lead.n++] = d;
    dx[2] = lead.n ? asg_sum(dy, lead, false) : dy;
  }
}

/* rmsnorm(x, w): with r = 1/sqrt(mean(x^2) + eps) per row and xh = x * r,
 * dw = sum over the leading dims of dy * xh and
 * dx = r * (g - xh * mean(g * xh)), g = dy * w (means over the last dim).
 * Generic ops rather than dedicated backward ops: no extra kernels on every
 * backend, a gradient that is differentiable again, and about as many steps
 * as the gradient of the chain of generic ops the layers built before (the
 * backward is not the hot path of its users: Llama inference, fine-tunes). */
static void g_rmsnorm(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0], *w = y->in[1];
  asg_axes last = ASG_AXES(-1);
  asg_tensor *r = asg_rsqrt(asg_add_scalar(asg_mean(asg_mul(x, x), last, true), y->attr.f[0]));
  asg_tensor *xh = asg_mul(x, r);
  if (need[0]) {
    asg_tensor *g = asg_mul(dy, w);
    dx[0] = asg_mul(r, asg_sub(g, asg_mul(xh, asg_mean(asg_mul(g, xh), last, true))));
  }
  if (need[1]) {
    asg_axes lead = {0, {0}};
    for (int d = 0; d < x->shape.ndim - 1; d++)
      lead.axis[lead.n++] = d;
    asg_tensor *p = asg_mul(dy, xh);
    dx[1] = lead.n ? asg_sum(p, lead, false) : p;
  }
}

/* concat(t[..., D/2:], t[..., :D/2]) over the last axis, that first half
 * negated when neg (then it is rotate_half(t) of the rope op); a table of
 * rank 0 or last dim 1 (broadcast over D) is its own swap. */
static asg_tensor *swap_halves(asg_tensor *t, bool neg) {
  int nd = t->shape.ndim;
  int64_t D = nd ? t->shape.dims[nd - 1] : 1, h = D / 2;
  if (D == 1) return neg ? asg_neg(t) : t;
  asg_tensor *p[2] = {asg_slice(t, -1, h, D, 1), asg_slice(t, -1, 0, h, 1)};
  if (neg) p[0] = asg_neg(p[0]);
  return p[0] && p[1] ? asg_concat(p, 2, -1) : NULL; /* a failed slice failed the graph */
}

/* rope(x, c, s) = x c + R(x) s, R = rotate_half: a linear map with
 * R^T = -R, so dx = dy c + R^T(dy s) = dy c - R(dy s). Elementwise,
 * -R(dy s) = R(dy) s' with s' = -swap_halves(s) (R moves each half to the
 * other), so dx = rope(dy, c, s'): one op of x's size, the swap only on the
 * (small) table. dc = dy x and ds = dy R(x), summed down to the tables'
 * shapes by the engine. Differentiable again (rope, slices, concat, neg,
 * mul). */
static void g_rope(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0], *c = y->in[1], *s = y->in[2];
  if (need[0]) dx[0] = asg_rope(dy, c, asg_neg(swap_halves(s, false)));
  if (need[1]) dx[1] = asg_mul(dy, x);
  if (need[2]) dx[2] = asg_mul(dy, swap_halves(x, true));
}

/* batchnorm(x, gamma, beta): dx and dgamma recompute each channel's
 * statistics from x; dbeta is dy summed over every dim but the channels. */
static void g_batchnorm(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0], *gamma = y->in[1];
  if (need[0]) {
    asg_tensor *in[3] = {dy, x, gamma};
    dx[0] = bwd_node(ASG_OP_BATCHNORM_BWD_X, y, x->shape, 3, in);
  }
  if (need[1]) {
    asg_tensor *in[2] = {dy, x};
    dx[1] = bwd_node(ASG_OP_BATCHNORM_BWD_GAMMA, y, gamma->shape, 2, in);
  }
  if (need[2]) {
    asg_axes other = {0, {0}};
    for (int d = 0; d < x->shape.ndim; d++)
      if (d != 1) other.axis[other.n++] = d;
    dx[2] = asg_sum(dy, other, false);
  }
}

/* softmax_cross_entropy(logits, labels): one fused pass gives dlogits;
 * labels are integers (no gradient). */
static void g_softmax_ce(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  if (!need[0]) return;
  asg_tensor *in[3] = {y->in[0], y->in[1], dy};
  dx[0] = bwd_node(ASG_OP_SOFTMAX_CE_BWD, y, y->in[0]->shape, 3, in);
}

void asg_grad_register_nn(asg_grad_rule *t) {
  t[ASG_OP_SOFTMAX] = g_softmax;
  t[ASG_OP_LOG_SOFTMAX] = g_log_softmax;
  t[ASG_OP_LAYERNORM] = g_layernorm;
  t[ASG_OP_RMSNORM] = g_rmsnorm;
  t[ASG_OP_ROPE] = g_rope;
  t[ASG_OP_BATCHNORM] = g_batchnorm;
  t[ASG_OP_SOFTMAX_CE] = g_softmax_ce;
}
