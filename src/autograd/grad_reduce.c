/* Gradient rules of reductions. */
#include "autograd/grad.h"
#include "ops/op_util.h"

/* dy with the reduced axes put back as size-1 dims, broadcast to x. */
static asg_tensor *expand(asg_tensor *y, asg_tensor *dy) {
  asg_tensor *x = y->in[0];
  asg_shape keep = {0, {0}};
  for (int d = 0; d < x->shape.ndim; d++)
    keep.dims[keep.ndim++] = (y->attr.i[0] >> d) & 1 ? 1 : x->shape.dims[d];
  return asg_broadcast_to(asg_reshape(dy, keep), x->shape);
}

/* The reduced element count: *n its constant factor; a scalar tensor of
 * the symbolic factor (its value is known only at run time) or NULL. */
static asg_tensor *count(asg_tensor *y, double *n) {
  int64_t dims[ASG_MAX_DIMS];
  int k = 0;
  for (int d = 0; d < y->in[0]->shape.ndim; d++)
    if ((y->attr.i[0] >> d) & 1) dims[k++] = y->in[0]->shape.dims[d];
  return asg__count_tensor(y->graph, y->dtype, dims, k, n);
}

static asg_axes axes_of(asg_tensor *y) {
  asg_axes a = {0, {0}};
  for (int d = 0; d < y->in[0]->shape.ndim; d++)
    if ((y->attr.i[0] >> d) & 1) a.axis[a.n++] = d;
  return a;
}

static void g_sum(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = expand(y, dy);
}
static void g_mean(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  double n;
  asg_tensor *sym = count(y, &n);
  dx[0] = asg_mul_scalar(expand(y, dy), 1.0 / n);
  if (sym) dx[0] = asg_div(dx[0], sym);
}
/* Ties share the gradient equally. */
static void g_maxmin(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  asg_tensor *x = y->in[0];
  asg_tensor *mask = asg_eq(x, expand(y, y));
  asg_tensor *n = asg_sum(mask, axes_of(y), true);
  dx[0] = asg_div(asg_mul(mask, expand(y, dy)), n);
}
static void g_var(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need; /* 2 (x - mean) / (n - correction) */
  asg_tensor *x = y->in[0];
  asg_tensor *c = asg_sub(x, asg_mean(x, axes_of(y), true));
  double n;
  asg_tensor *sym = count(y, &n);
  if (!sym) {
    dx[0] = asg_mul(expand(y, dy), asg_mul_scalar(c, 2.0 / (n - (double)y->attr.i[2])));
    return;
  }
  asg_tensor *dof = asg_add_scalar(asg_mul_scalar(sym, n), -(double)y->attr.i[2]);
  dx[0] = asg_mul(expand(y, dy), asg_div(asg_mul_scalar(c, 2.0), dof));
}

void asg_grad_register_reduce(asg_grad_rule *t) {
  t[ASG_OP_SUM] = g_sum;
  t[ASG_OP_MEAN] = g_mean;
  t[ASG_OP_MAX] = g_maxmin;
  t[ASG_OP_MIN] = g_maxmin;
  t[ASG_OP_VAR] = g_var;
}
