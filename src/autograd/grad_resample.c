/* Gradient rules of pad and upsample (attribute layout: src/ops/op_resample.c).
 * A constant pad's gradient is the inverse crop, itself a constant pad (of
 * zeros, with every pad negated), so it is differentiable again; reflect and
 * replicate pads and upsample use their dedicated gather ops. */
#include "autograd/grad.h"

/* A backward node of x's shape carrying y's attributes (checked by y). */
static asg_tensor *bwd_node(asg_op op, asg_tensor *y, asg_tensor *dy) {
  asg_graph *g = asg__graph_of(asg__op_name(op), 1, &dy);
  if (!g) return NULL;
  asg_tensor *t = asg__node(g, op, y->dtype, y->in[0]->shape, 1, &dy);
  if (t) t->attr = y->attr;
  return t;
}

static void g_pad(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  if ((int)y->attr.f[1] != ASG_PAD_CONSTANT) {
    dx[0] = bwd_node(ASG_OP_PAD_BWD, y, dy);
    return;
  }
  /* asg_pad's order: pairs from the last dim backwards */
  int64_t pads[2 * ASG_MAX_DIMS];
  const int r = y->shape.ndim;
  for (int k = 0; k < r; k++) {
    pads[2 * k] = -y->attr.i[2 * (r - 1 - k)];
    pads[2 * k + 1] = -y->attr.i[2 * (r - 1 - k) + 1];
  }
  dx[0] = asg_pad(dy, pads, 2 * r, ASG_PAD_CONSTANT, 0);
}

static void g_upsample(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = bwd_node(ASG_OP_UPSAMPLE_BWD, y, dy);
}

void asg_grad_register_resample(asg_grad_rule *t) {
  t[ASG_OP_PAD] = g_pad;
  t[ASG_OP_UPSAMPLE] = g_upsample;
}
