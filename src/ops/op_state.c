/* State ops: writes into variables.
 *
 * assign: in-place update of a variable, run after every read in the step.
 *
 * cache_write (a KV cache): inputs (cache, value, pos), attr i0 = axis
 * (normalized). Writes value into the variable's rows [pos, pos + T) along
 * the axis when the step runs, in schedule order (not last, as assigns);
 * the result is the variable's own storage after the write (it aliases the
 * variable, runtime/compile.c). pos is one I32/I64 element read at run time
 * and checked like an index (runtime/index_check.c). */
#include <stdio.h>

#include "ops/op_util.h"

asg_tensor *asg_assign(asg_tensor *var, asg_tensor *value) {
  asg_tensor *in[2] = {var, value};
  asg_graph *g = asg__graph_of("assign", 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g) return NULL;
  if (var->op != ASG_OP_VARIABLE)
    return asg__fail(g, ASG_ERR_INVALID, "assign", "target is a '%s' node, not a variable",
                     asg__op_name(var->op));
  if (!asg__same_dtype(g, "assign", var, value)) return NULL;
  if (!asg_shape_equal(var->shape, value->shape))
    return asg__fail(g, ASG_ERR_SHAPE, "assign", "variable '%s' is %s, value is %s", var->name,
                     SHP(var->shape, b1), SHP(value->shape, b2));
  return asg__node(g, ASG_OP_ASSIGN, var->dtype, var->shape, 2, in);
}

asg_tensor *asg_cache_write(asg_tensor *cache, asg_tensor *value, asg_tensor *pos, int axis) {
  asg_tensor *in[3] = {cache, value, pos};
  asg_graph *g = asg__graph_of("cache_write", 3, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], m[3 * ASG_SHAPE_BUF];
  int a;
  if (!g) return NULL;
  if (cache->op != ASG_OP_VARIABLE)
    return asg__fail(g, ASG_ERR_INVALID, "cache_write", "cache is a '%s' node, not a variable",
                     asg__op_name(cache->op));
  if (!asg__same_dtype(g, "cache_write", cache, value)) return NULL;
  if (pos->dtype != ASG_I32 && pos->dtype != ASG_I64)
    return asg__fail(g, ASG_ERR_DTYPE, "cache_write", "pos must be i32 or i64, got %s",
                     asg_dtype_name(pos->dtype));
  if (pos->shape.ndim > 1 || (pos->shape.ndim == 1 && pos->shape.dims[0] != 1))
    return asg__fail(g, ASG_ERR_SHAPE, "cache_write",
                     "pos must have one element ([] or [1]), got %s", SHP(pos->shape, b1));
  if (!asg__norm_axis(axis, cache->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, "cache_write", "axis %d out of range for %s", axis,
                     SHP(cache->shape, b1));
  bool ok = value->shape.ndim == cache->shape.ndim;
  for (int d = 0; ok && d < cache->shape.ndim; d++)
    ok = d == a || value->shape.dims[d] == cache->shape.dims[d];
  if (!ok)
    return asg__fail(g, ASG_ERR_SHAPE, "cache_write",
                     "value %s must match variable '%s' %s outside axis %d", SHP(value->shape, b1),
                     cache->name, SHP(cache->shape, b2), a);
  int64_t t = value->shape.dims[a], tmax = cache->shape.dims[a];
  snprintf(m, sizeof m, "value %s has more rows than variable '%s' %s along axis %d",
           SHP(value->shape, b1), cache->name, SHP(cache->shape, b2), a);
  if (!asg__dim_is_sym(t) && !asg__dim_is_sym(tmax)) {
    if (t > tmax) return asg__fail(g, ASG_ERR_SHAPE, "cache_write", "%s", m);
  } else {
    int64_t room = asg__dim_sub(g, tmax, t);
    if (g->status != ASG_OK || !asg__dim_require_ge(g, room, 0, "cache_write", m)) return NULL;
  }
  asg_tensor *y = asg__node(g, ASG_OP_CACHE_WRITE, cache->dtype, cache->shape, 3, in);
  if (y) y->attr.i[0] = a;
  return y;
}
