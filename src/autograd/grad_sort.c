/* Gradient rules of the sort family. argsort has none (NODIFF); sort and
 * topk values are gathers, whose rule is gather's. cumsum is linear: its
 * adjoint sums dy over the positions each x_i went into, which is the
 * cumsum of dy in the other direction (same exclusivity). */
#include "autograd/grad.h"

static void g_cumsum(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg_cumsum(dy, (int)y->attr.i[0], y->attr.i[1] != 0, y->attr.i[2] == 0);
}

void asg_grad_register_sort(asg_grad_rule *t) { t[ASG_OP_CUMSUM] = g_cumsum; }
