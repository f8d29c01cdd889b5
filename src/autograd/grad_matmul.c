/* Gradient rule of matmul (any transposes, broadcast batch dims: the
 * engine sums the broadcast batch dims away). */
#include "autograd/grad.h"

/* x [..., R, C] as one [prod(...) * R, C] matrix (a view). */
static asg_tensor *rows2d(asg_tensor *x) {
  /* -1: the row count may be a product of symbolic dims */
  return asg_reshape(x, ASG_SHAPE(-1, x->shape.dims[x->shape.ndim - 1]));
}

static void g_matmul(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *a = y->in[0], *b = y->in[1];
  bool ta = y->attr.i[0], tb = y->attr.i[1];
  /* C = op(A) op(B): dA = dC op(B)^T (transposed back if ta), dB likewise */
  if (need[0]) dx[0] = ta ? asg_matmul_t(b, dy, tb, true) : asg_matmul_t(dy, b, false, !tb);
  if (!need[1]) return;
  if (b->shape.ndim == 2 && a->shape.ndim > 2 && !ta) {
    /* B is shared by every batch matrix of A (a layer's weight): its
     * gradient is one GEMM over all batch rows (K = batch * M) instead of a
     * batched product summed over the batch afterwards. */
    asg_tensor *a2 = rows2d(a), *dy2 = rows2d(dy);
    dx[1] = tb ? asg_matmul_t(dy2, a2, true, false) : asg_matmul_t(a2, dy2, true, false);
    return;
  }
  dx[1] = tb ? asg_matmul_t(dy, a, true, ta) : asg_matmul_t(a, dy, !ta, false);
}

void asg_grad_register_matmul(asg_grad_rule *t) { t[ASG_OP_MATMUL] = g_matmul; }
