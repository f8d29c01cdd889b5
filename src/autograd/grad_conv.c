/* Gradient rules of the conv family. The backward nodes are built by the
 * internal constructors in src/ops/op_conv.c (core/internal.h), which copy
 * the forward node's attributes; see that file for the attribute layout. */
#include "autograd/grad.h"

/* y = conv2d(x, w): dx = conv2d_bwd_input(dy, w), dw = conv2d_bwd_weight(dy, x).
 * (A bias was added by a separate add node and gets its gradient there.) */
static void g_conv2d(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0], *w = y->in[1];
  if (need[0]) dx[0] = asg__conv2d_bwd_input(dy, w, x->shape, &y->attr);
  if (need[1]) dx[1] = asg__conv2d_bwd_weight(dy, x, w->shape, &y->attr);
}

/* y = conv_transpose2d(x, w) is the input gradient of a conv2d whose input
 * has y's shape and whose output has x's shape: dx = that conv2d applied to
 * dy (output cut to x's size, which output_padding may require), and dw is
 * that conv2d's weight gradient with x in the role of its output gradient. */
static void g_conv_transpose2d(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0], *w = y->in[1];
  if (need[0]) dx[0] = asg__conv2d_shaped(dy, w, x->shape, &y->attr);
  if (need[1]) dx[1] = asg__conv2d_bwd_weight(x, dy, w->shape, &y->attr);
}

static void g_maxpool(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg__pool_bwd(ASG_OP_MAXPOOL2D_BWD, dy, y->in[0], &y->attr);
}
static void g_avgpool(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg__pool_bwd(ASG_OP_AVGPOOL2D_BWD, dy, y->in[0], &y->attr);
}
static void g_adaptive(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg__pool_bwd(ASG_OP_ADAPTIVE_AVGPOOL2D_BWD, dy, y->in[0], &y->attr);
}

void asg_grad_register_conv(asg_grad_rule *t) {
  t[ASG_OP_CONV2D] = g_conv2d;
  t[ASG_OP_CONV_TRANSPOSE2D] = g_conv_transpose2d;
  t[ASG_OP_MAXPOOL2D] = g_maxpool;
  t[ASG_OP_AVGPOOL2D] = g_avgpool;
  t[ASG_OP_ADAPTIVE_AVGPOOL2D] = g_adaptive;
}
