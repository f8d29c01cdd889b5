/* Shape-only constructors: reshape (a view), flatten, squeeze, unsqueeze,
 * broadcast_to. */
#include "core/checks.h"
#include "ops/op_util.h"

/* Reshape where x or the target has symbolic dims: element counts agree
 * as expressions; a -1 is the exact quotient (a constraint when only the
 * binding can tell, e.g. [batch*seq] into [-1, 4]). */
static asg_tensor *reshape_sym(asg_graph *g, asg_tensor *x, asg_shape s) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF], b4[ASG_SHAPE_BUF];
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.ndim && g->status == ASG_OK; i++) {
    if (s.dims[i] == -1) {
      if (infer >= 0)
        return asg__fail(g, ASG_ERR_SHAPE, "reshape", "more than one -1 in %s", SHP(s, b1));
      infer = i;
    } else if (s.dims[i] == 0 || !asg__dim_valid(g, s.dims[i])) {
      return asg__fail(g, ASG_ERR_SHAPE, "reshape", "bad dim %d in %s", i, SHP(s, b1));
    } else {
      known = asg__dim_mul(g, known, s.dims[i]);
    }
  }
  int64_t n = asg__shape_numel_dim(g, x->shape);
  if (g->status != ASG_OK) return NULL;
  if (infer >= 0) {
    s.dims[infer] = asg__dim_div_exact(g, n, known, "reshape");
    if (g->status != ASG_OK) return NULL;
    known = n;
  }
  if (known != n)
    return asg__fail(g, ASG_ERR_SHAPE, "reshape", "cannot reshape %s (%s elements) into %s (%s)",
                     SHP(x->shape, b1), DIM(n, b2), SHP(s, b3), DIM(known, b4));
  if (asg_shape_equal(s, x->shape)) return x;
  return asg__node(g, ASG_OP_RESHAPE, x->dtype, s, 1, &x);
}

asg_tensor *asg_reshape(asg_tensor *x, asg_shape s) {
  asg_graph *g = asg__graph_of("reshape", 1, &x);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g) return NULL;
  if (s.ndim < 0 || s.ndim > ASG_MAX_DIMS)
    return asg__fail(g, ASG_ERR_SHAPE, "reshape", "rank %d out of range", s.ndim);
  if (!asg__shape_is_static(s) || !asg__shape_is_static(x->shape)) return reshape_sym(g, x, s);
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.ndim; i++) {
    if (s.dims[i] == -1) {
      if (infer >= 0)
        return asg__fail(g, ASG_ERR_SHAPE, "reshape", "more than one -1 in %s", SHP(s, b1));
      infer = i;
    } else if (s.dims[i] <= 0) {
      return asg__fail(g, ASG_ERR_SHAPE, "reshape", "bad dim in %s", SHP(s, b1));
    } else if (!asg__mul_i64(known, s.dims[i], &known)) {
      return asg__fail(g, ASG_ERR_SHAPE, "reshape", "%s has more elements than fit in int64",
                       SHP(s, b1));
    }
  }
  int64_t n = asg_shape_numel(x->shape);
  if (infer >= 0) {
    if (n % known)
      return asg__fail(g, ASG_ERR_SHAPE, "reshape", "cannot reshape %s into %s", SHP(x->shape, b1),
                       SHP(s, b2));
    s.dims[infer] = n / known;
    known = n;
  }
  if (known != n)
    return asg__fail(g, ASG_ERR_SHAPE, "reshape", "cannot reshape %s (%lld elements) into %s",
                     SHP(x->shape, b1), (long long)n, SHP(s, b2));
  if (asg_shape_equal(s, x->shape)) return x;
  return asg__node(g, ASG_OP_RESHAPE, x->dtype, s, 1, &x);
}

asg_tensor *asg_flatten(asg_tensor *x, int start) {
  asg_graph *g = asg__graph_of("flatten", 1, &x);
  int a;
  if (!g) return NULL;
  if (!asg__norm_axis(start, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, "flatten", "axis %d out of range for rank %d", start,
                     x->shape.ndim);
  asg_shape s = {a + 1, {0}};
  for (int i = 0; i < a; i++)
    s.dims[i] = x->shape.dims[i];
  s.dims[a] = 1;
  for (int i = a; i < x->shape.ndim; i++)
    s.dims[a] = asg__dim_mul(g, s.dims[a], x->shape.dims[i]);
  if (g->status != ASG_OK) return NULL;
  return asg_reshape(x, s);
}

asg_tensor *asg_unsqueeze(asg_tensor *x, int axis) {
  asg_graph *g = asg__graph_of("unsqueeze", 1, &x);
  int a;
  if (!g) return NULL;
  if (x->shape.ndim >= ASG_MAX_DIMS || !asg__norm_axis(axis, x->shape.ndim + 1, &a))
    return asg__fail(g, ASG_ERR_INVALID, "unsqueeze", "axis %d out of range for rank %d", axis,
                     x->shape.ndim);
  asg_shape s = {x->shape.ndim + 1, {0}};
  for (int i = 0, j = 0; i < s.ndim; i++)
    s.dims[i] = i == a ? 1 : x->shape.dims[j++];
  return asg_reshape(x, s);
}

asg_tensor *asg_squeeze(asg_tensor *x, int axis) {
  asg_graph *g = asg__graph_of("squeeze", 1, &x);
  int a;
  if (!g) return NULL;
  if (!asg__norm_axis(axis, x->shape.ndim, &a) || x->shape.dims[a] != 1)
    return asg__fail(g, ASG_ERR_INVALID, "squeeze", "axis %d is not a size-1 dim", axis);
  asg_shape s = {x->shape.ndim - 1, {0}};
  for (int i = 0, j = 0; i < x->shape.ndim; i++)
    if (i != a) s.dims[j++] = x->shape.dims[i];
  return asg_reshape(x, s);
}

asg_tensor *asg_broadcast_to(asg_tensor *x, asg_shape s) {
  asg_graph *g = asg__graph_of("broadcast_to", 1, &x);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  asg_shape r;
  if (!g) return NULL;
  if (s.ndim < x->shape.ndim || s.ndim > ASG_MAX_DIMS || !asg__broadcast_shapes(x->shape, s, &r) ||
      !asg_shape_equal(r, s))
    return asg__fail(g, ASG_ERR_SHAPE, "broadcast_to", "cannot broadcast %s to %s",
                     SHP(x->shape, b1), SHP(s, b2));
  if (asg_shape_equal(x->shape, s)) return x;
  return asg__node(g, ASG_OP_BROADCAST_TO, x->dtype, s, 1, &x);
}
