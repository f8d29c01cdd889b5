/* Gradient rules of shape ops. */
#include "autograd/grad.h"

static void g_reshape(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_reshape(dy, y->in[0]->shape);
}
/* The engine sums dy down to the input's shape. */
static void g_broadcast_to(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)y, (void)need;
  dx[0] = dy;
}

void asg_grad_register_shape(asg_grad_rule *t) {
  t[ASG_OP_RESHAPE] = g_reshape;
  t[ASG_OP_BROADCAST_TO] = g_broadcast_to;
}
