/* Helpers shared by the op constructors. */
#include "ops/op_util.h"

bool asg__need_float(asg_graph *g, const char *op, const asg_tensor *x) {
  if (x->dtype == ASG_F32 || x->dtype == ASG_F64) return true;
  asg__fail(g, ASG_ERR_DTYPE, op, "needs a float tensor (f32/f64), got %s",
            asg_dtype_name(x->dtype));
  return false;
}

bool asg__same_dtype(asg_graph *g, const char *op, const asg_tensor *a, const asg_tensor *b) {
  if (a->dtype == b->dtype) return true;
  asg__fail(g, ASG_ERR_DTYPE, op, "dtypes differ: %s vs %s (cast one explicitly)",
            asg_dtype_name(a->dtype), asg_dtype_name(b->dtype));
  return false;
}

bool asg__axes_mask(asg_graph *g, const char *op, asg_axes axes, int ndim, int64_t *mask) {
  int64_t m = 0;
  if (axes.n < 0 || axes.n > ASG_MAX_DIMS) {
    asg__fail(g, ASG_ERR_INVALID, op, "bad axis count %d", axes.n);
    return false;
  }
  if (axes.n == 0) m = ((int64_t)1 << ndim) - 1;
  for (int i = 0; i < axes.n; i++) {
    int a;
    if (!asg__norm_axis(axes.axis[i], ndim, &a)) {
      asg__fail(g, ASG_ERR_INVALID, op, "axis %d out of range for rank %d", axes.axis[i], ndim);
      return false;
    }
    if (m & ((int64_t)1 << a)) {
      asg__fail(g, ASG_ERR_INVALID, op, "axis %d given twice", axes.axis[i]);
      return false;
    }
    m |= (int64_t)1 << a;
  }
  *mask = m;
  return true;
}

asg_shape asg__reduced_shape(asg_shape s, int64_t mask, bool keepdim) {
  asg_shape r = {0, {0}};
  for (int i = 0; i < s.ndim; i++) {
    if (mask & ((int64_t)1 << i)) {
      if (keepdim) r.dims[r.ndim++] = 1;
    } else {
      r.dims[r.ndim++] = s.dims[i];
    }
  }
  return r;
}

asg_tensor *asg__count_tensor(asg_graph *g, asg_dtype dt, const int64_t *dims, int n,
                              double *konst) {
  asg_tensor *t = NULL;
  *konst = 1;
  for (int i = 0; i < n; i++) {
    if (!asg__dim_is_sym(dims[i])) {
      *konst *= (double)dims[i];
      continue;
    }
    asg_tensor *c = asg_sum(asg_fill(g, dt, ASG_SHAPE(dims[i]), 1.0), ASG_ALL_AXES, false);
    t = t ? asg_mul(t, c) : c;
  }
  return t;
}
