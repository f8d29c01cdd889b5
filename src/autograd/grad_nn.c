/* Gradient rules of the nn family. Softmax and log_softmax use public ops
 * (differentiable again); layernorm, batchnorm and softmax cross-entropy use their
 * dedicated one-pass backward ops (not differentiable again). */
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
  t[ASG_OP_BATCHNORM] = g_batchnorm;
  t[ASG_OP_SOFTMAX_CE] = g_softmax_ce;
}
