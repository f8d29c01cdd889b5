/* Collective ops (asg/dist.h): every rank of the program's communicator runs
 * them together. Attributes:
 *   all_reduce      inputs (x[, gate]); i0 = asg_comm_op. The optional
 *                   gate (one I32/F32/F64 element, internal: data-parallel
 *                   accumulation) reduces only on runs where it is nonzero;
 *                   elsewhere the result is x unchanged. Every rank must see
 *                   the same gate.
 *   broadcast       i0 = root rank
 *   all_gather      i0 = world size ([d0, ...] -> [world d0, ...])
 *   reduce_scatter  i0 = world size, i1 = asg_comm_op (sum or mean)
 * The world size a graph was built for is checked against the program's
 * communicator at compile time (runtime/compile.c). */
#include "ops/op_util.h"

static bool reduce_dtype_ok(asg_dtype dt) {
  return dt == ASG_F32 || dt == ASG_F64 || dt == ASG_I32 || dt == ASG_I64 || dt == ASG_BF16 ||
         dt == ASG_F16;
}

static bool check_x(asg_graph *g, const char *op, const asg_tensor *x) {
  if (!reduce_dtype_ok(x->dtype)) {
    asg__fail(g, ASG_ERR_DTYPE, op, "unsupported dtype %s", asg_dtype_name(x->dtype));
    return false;
  }
  return true;
}

static bool check_op(asg_graph *g, const char *name, asg_comm_op op, bool minmax_ok) {
  if (op == ASG_COMM_SUM || op == ASG_COMM_MEAN ||
      (minmax_ok && (op == ASG_COMM_MAX || op == ASG_COMM_MIN)))
    return true;
  asg__fail(g, ASG_ERR_INVALID, name, "unknown or unsupported reduction %d", (int)op);
  return false;
}

static asg_tensor *all_reduce(asg_tensor *x, asg_comm_op op, asg_tensor *gate) {
  asg_tensor *in[2] = {x, gate};
  const int n = gate ? 2 : 1;
  asg_graph *g = asg__graph_of("all_reduce", n, in);
  if (!g || !check_x(g, "all_reduce", x) || !check_op(g, "all_reduce", op, true)) return NULL;
  if (op == ASG_COMM_MEAN && !asg_dtype_is_float(x->dtype))
    return asg__fail(g, ASG_ERR_DTYPE, "all_reduce", "a mean needs a float tensor, got %s",
                     asg_dtype_name(x->dtype));
  if (gate && (asg_shape_numel(gate->shape) != 1 || gate->shape.ndim > 1 ||
               (gate->dtype != ASG_I32 && gate->dtype != ASG_F32 && gate->dtype != ASG_F64)))
    return asg__fail(g, ASG_ERR_INVALID, "all_reduce", "gate must be one i32/f32/f64 element");
  asg_tensor *y = asg__node(g, ASG_OP_ALL_REDUCE, x->dtype, x->shape, n, in);
  if (y) y->attr.i[0] = op;
  return y;
}

asg_tensor *asg_all_reduce(asg_tensor *x, asg_comm_op op) { return all_reduce(x, op, NULL); }

asg_tensor *asg__all_reduce_gated(asg_tensor *x, asg_comm_op op, asg_tensor *gate) {
  return all_reduce(x, op, gate);
}

asg_tensor *asg_broadcast(asg_tensor *x, int root) {
  asg_graph *g = asg__graph_of("broadcast", 1, &x);
  if (!g || !check_x(g, "broadcast", x)) return NULL;
  if (root < 0) return asg__fail(g, ASG_ERR_INVALID, "broadcast", "root %d is negative", root);
  asg_tensor *y = asg__node(g, ASG_OP_BROADCAST, x->dtype, x->shape, 1, &x);
  if (y) y->attr.i[0] = root;
  return y;
}

static bool check_world(asg_graph *g, const char *op, const asg_tensor *x, int world) {
  char b[ASG_SHAPE_BUF];
  if (world < 1) {
    asg__fail(g, ASG_ERR_INVALID, op, "world size %d must be >= 1", world);
    return false;
  }
  if (x->shape.ndim < 1) {
    asg__fail(g, ASG_ERR_SHAPE, op, "needs a tensor of rank >= 1, got %s", SHP(x->shape, b));
    return false;
  }
  return true;
}

asg_tensor *asg_all_gather(asg_tensor *x, int world) {
  asg_graph *g = asg__graph_of("all_gather", 1, &x);
  if (!g || !check_x(g, "all_gather", x) || !check_world(g, "all_gather", x, world)) return NULL;
  asg_shape s = x->shape;
  s.dims[0] = asg__dim_mul(g, s.dims[0], world);
  if (g->status) return NULL;
  asg_tensor *y = asg__node(g, ASG_OP_ALL_GATHER, x->dtype, s, 1, &x);
  if (y) y->attr.i[0] = world;
  return y;
}

asg_tensor *asg_reduce_scatter(asg_tensor *x, int world, asg_comm_op op) {
  asg_graph *g = asg__graph_of("reduce_scatter", 1, &x);
  if (!g || !check_x(g, "reduce_scatter", x) || !check_world(g, "reduce_scatter", x, world) ||
      !check_op(g, "reduce_scatter", op, false))
    return NULL;
  if (op == ASG_COMM_MEAN && !asg_dtype_is_float(x->dtype))
    return asg__fail(g, ASG_ERR_DTYPE, "reduce_scatter", "a mean needs a float tensor, got %s",
                     asg_dtype_name(x->dtype));
  asg_shape s = x->shape;
  char b[ASG_SHAPE_BUF];
  if (!asg__dim_is_sym(s.dims[0]) && s.dims[0] % world != 0)
    return asg__fail(g, ASG_ERR_SHAPE, "reduce_scatter",
                     "first dim of %s does not split into %d equal blocks", SHP(s, b), world);
  s.dims[0] = asg__dim_div_exact(g, s.dims[0], world, "reduce_scatter");
  if (g->status) return NULL;
  asg_tensor *y = asg__node(g, ASG_OP_REDUCE_SCATTER, x->dtype, s, 1, &x);
  if (y) {
    y->attr.i[0] = world;
    y->attr.i[1] = op;
  }
  return y;
}
