/* Reduction constructors. Attributes: i0 = bitmask of reduced axes,
 * i1 = keepdim, i2 = correction (VAR). ARGMAX reduces one axis to I64. */
#include <stdio.h>

#include "ops/op_util.h"

static asg_tensor *reduce(asg_op op, asg_tensor *x, asg_axes axes, bool keepdim, int corr) {
  const char *name = asg__op_name(op);
  asg_graph *g = asg__graph_of(name, 1, &x);
  int64_t mask;
  if (!g || !asg__axes_mask(g, name, axes, x->shape.ndim, &mask)) return NULL;
  if ((op == ASG_OP_MEAN || op == ASG_OP_VAR) && !asg__need_float(g, name, x)) return NULL;
  if (x->dtype != ASG_F32 && x->dtype != ASG_F64 && x->dtype != ASG_I32 && x->dtype != ASG_I64)
    return asg__fail(g, ASG_ERR_DTYPE, name, "dtype %s not supported", asg_dtype_name(x->dtype));
  int64_t count = 1;
  for (int i = 0; i < x->shape.ndim; i++)
    if (mask & ((int64_t)1 << i)) count = asg__dim_mul(g, count, x->shape.dims[i]);
  if (g->status != ASG_OK) return NULL;
  if (op == ASG_OP_VAR && asg__dim_is_sym(count) && corr >= 0) {
    /* the count is known once bound: at least corr + 1 elements */
    char b1[ASG_SHAPE_BUF], m[2 * ASG_SHAPE_BUF];
    snprintf(m, sizeof m, "correction %d needs more than %d reduced elements (%s)", corr, corr,
             DIM(count, b1));
    if (!asg__dim_require_ge(g, count, (int64_t)corr + 1, name, m)) return NULL;
  } else if (op == ASG_OP_VAR && (corr < 0 || count - corr <= 0))
    return asg__fail(g, ASG_ERR_INVALID, name,
                     "correction %d leaves no degrees of freedom (%lld elements)", corr,
                     (long long)count);
  asg_dtype dt = op == ASG_OP_ARGMAX ? ASG_I64 : x->dtype;
  asg_tensor *y = asg__node(g, op, dt, asg__reduced_shape(x->shape, mask, keepdim), 1, &x);
  if (y) {
    y->attr.i[0] = mask;
    y->attr.i[1] = keepdim;
    y->attr.i[2] = corr;
  }
  return y;
}

asg_tensor *asg_sum(asg_tensor *x, asg_axes a, bool k) { return reduce(ASG_OP_SUM, x, a, k, 0); }
asg_tensor *asg_mean(asg_tensor *x, asg_axes a, bool k) { return reduce(ASG_OP_MEAN, x, a, k, 0); }
asg_tensor *asg_max(asg_tensor *x, asg_axes a, bool k) { return reduce(ASG_OP_MAX, x, a, k, 0); }
asg_tensor *asg_min(asg_tensor *x, asg_axes a, bool k) { return reduce(ASG_OP_MIN, x, a, k, 0); }
asg_tensor *asg_var(asg_tensor *x, asg_axes a, int corr, bool k) {
  return reduce(ASG_OP_VAR, x, a, k, corr);
}
asg_tensor *asg_argmax(asg_tensor *x, int axis, bool keepdim) {
  return reduce(ASG_OP_ARGMAX, x, ASG_AXES(axis), keepdim, 0);
}
