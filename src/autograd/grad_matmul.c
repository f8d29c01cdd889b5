/* Gradient rule of matmul (any transposes, broadcast batch dims: the
 * engine sums the broadcast batch dims away). */
#include "autograd/grad.h"

static void g_matmul(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *a = y->in[0], *b = y->in[1];
  bool ta = y->attr.i[0], tb = y->attr.i[1];
  /* C = op(A) op(B): dA = dC op(B)^T (transposed back if ta), dB likewise */
  if (need[0]) dx[0] = ta ? asg_matmul_t(b, dy, tb, true) : asg_matmul_t(dy, b, false, !tb);
  if (need[1]) dx[1] = tb ? asg_matmul_t(dy, a, true, ta) : asg_matmul_t(a, dy, !ta, false);
}

void asg_grad_register_matmul(asg_grad_rule *t) { t[ASG_OP_MATMUL] = g_matmul; }
