/* assign: in-place update of a variable, run after every read in the step. */
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
