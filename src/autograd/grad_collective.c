/* Gradients of collectives. With each rank's loss L_r and the total loss
 * sum_r L_r, a collective's adjoint is another collective:
 *   all_reduce sum/mean  -> all_reduce sum/mean of dy
 *   all_gather           -> reduce_scatter sum of dy
 *   reduce_scatter sum   -> all_gather of dy (mean: / world)
 * all_reduce max/min and broadcast have no gradient here. */
#include "autograd/grad.h"

static void g_all_reduce(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_comm_op op = (asg_comm_op)y->attr.i[0];
  if (!need[0]) return;
  if (y->n_in > 1 || (op != ASG_COMM_SUM && op != ASG_COMM_MEAN)) {
    asg__fail(y->graph, ASG_ERR_INVALID, "all_reduce", "no gradient for a %s all_reduce",
              y->n_in > 1 ? "gated" : "max/min");
    return;
  }
  dx[0] = asg_all_reduce(dy, op);
}

static void g_all_gather(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  if (need[0]) dx[0] = asg_reduce_scatter(dy, (int)y->attr.i[0], ASG_COMM_SUM);
}

static void g_reduce_scatter(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  if (!need[0]) return;
  const int world = (int)y->attr.i[0];
  asg_tensor *g = asg_all_gather(dy, world);
  dx[0] = y->attr.i[1] == ASG_COMM_MEAN ? asg_mul_scalar(g, 1.0 / world) : g;
}

void asg_grad_register_collective(asg_grad_rule *t) {
  t[ASG_OP_ALL_REDUCE] = g_all_reduce;
  t[ASG_OP_ALL_GATHER] = g_all_gather;
  t[ASG_OP_REDUCE_SCATTER] = g_reduce_scatter;
}
