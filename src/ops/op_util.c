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

int64_t asg__count_dim(asg_graph *g, const int64_t *dims, int n, int64_t *konst) {
  int64_t sym = 1;
  *konst = 1;
  for (int i = 0; i < n; i++) {
    if (asg__dim_is_sym(dims[i]))
      sym = asg__dim_mul(g, sym, dims[i]);
    else
      *konst *= dims[i]; /* node dims: their product fits (asg__shape_check) */
  }
  return asg__dim_is_sym(sym) ? sym : 0;
}

asg_tensor *asg__dim_ratio(asg_graph *g, asg_dtype dt, int64_t d, int64_t a, int64_t b, int64_t c,
                           int64_t e) {
  asg_tensor *t = asg_fill(g, dt, ASG_SCALAR, 0.0);
  if (!t) return NULL;
  t->attr.i[0] = d;
  t->attr.i[1] = a, t->attr.i[2] = b, t->attr.i[3] = c, t->attr.i[4] = e;
  return t;
}
