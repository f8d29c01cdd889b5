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

/* The reduced element count: *n its constant factor times the returned
 * symbolic dim (0: none). */
static int64_t count(asg_tensor *y, int64_t *n) {
  int64_t dims[ASG_MAX_DIMS];
  int k = 0;
  for (int d = 0; d < y->in[0]->shape.ndim; d++)
    if ((y->attr.i[0] >> d) & 1) dims[k++] = y->in[0]->shape.dims[d];
  return asg__count_dim(y->graph, dims, k, n);
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
  int64_t n, sym = count(y, &n);
  dx[0] = sym ? asg_mul(expand(y, dy), asg__dim_ratio(y->graph, y->dtype, sym, 0, 1, n, 0))
              : asg_mul_scalar(expand(y, dy), 1.0 / (double)n);
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
  int64_t n, sym = count(y, &n), corr = y->attr.i[2];
  asg_tensor *k = sym ? asg_mul(c, asg__dim_ratio(y->graph, y->dtype, sym, 0, 2, n, -corr))
                      : asg_mul_scalar(c, 2.0 / ((double)n - (double)corr));
  dx[0] = asg_mul(expand(y, dy), k);
}

void asg_grad_register_reduce(asg_grad_rule *t) {
  t[ASG_OP_SUM] = g_sum;
  t[ASG_OP_MEAN] = g_mean;
  t[ASG_OP_MAX] = g_maxmin;
  t[ASG_OP_MIN] = g_maxmin;
  t[ASG_OP_VAR] = g_var;
}
