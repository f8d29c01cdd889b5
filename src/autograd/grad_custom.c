/* The gradient rule of custom ops (include/asg/custom.h): the op's own
 * gradient function builds the input gradients from ops of the graph
 * (existing ops or a custom backward op). What it returns is checked here,
 * so that a wrong shape or dtype names the custom op, not a later add. */
#include <stdio.h>

#include "autograd/grad.h"
#include "core/symbol.h"
#include "ops/op_custom.h"

static void grad_custom(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_graph *g = y->graph;
  const asg_custom_op *op = asg__custom_get(&y->attr);
  if (!op) {
    asg__fail(g, ASG_ERR_INVALID, "grad", "custom node %d names no registered op", y->id);
    return;
  }
  /* an input made by a non-differentiable op (asg_stop_gradient) drops its
   * gradient: not asked for, so such a path needs no gradient function */
  bool want[ASG_CUSTOM_MAX_INPUTS] = {0}, any = false;
  for (int i = 0; i < y->n_in && i < ASG_CUSTOM_MAX_INPUTS; i++) {
    const unsigned fl = asg__op_info[y->in[i]->op].flags;
    want[i] = need[i] && !((fl & ASG_OPF_NODIFF) && !(fl & ASG_OPF_SOURCE));
    any = any || want[i];
  }
  if (!any) return;
  char what[ASG_CUSTOM_NAME_MAX + 32];
  snprintf(what, sizeof what, "grad of custom op '%s'", op->name);
  if (!op->d.grad) {
    asg__fail(g, ASG_ERR_UNSUPPORTED, what,
              "the op has no gradient function (asg_custom_desc.grad); give it one, or cut the "
              "path with asg_stop_gradient");
    return;
  }
  asg_dtype dts[ASG_CUSTOM_MAX_INPUTS];
  asg_shape shs[ASG_CUSTOM_MAX_INPUTS];
  const int n = y->n_in;
  for (int i = 0; i < n; i++) {
    dts[i] = y->in[i]->dtype;
    shs[i] = y->in[i]->shape;
  }
  asg_custom_sig sig;
  asg__custom_sig(op, &y->attr, n, dts, shs, &sig);
  char msg[256] = "";
  const asg_custom_grad_args a = {g, &sig, y->in, y, dy, want, msg, sizeof msg};
  asg_tensor *din[ASG_CUSTOM_MAX_INPUTS] = {0};
  const int rc = op->d.grad(&a, din);
  if (g->status != ASG_OK) return; /* an op it built failed: that error stands */
  if (rc != 0) {
    msg[sizeof msg - 1] = '\0';
    asg__fail(g, ASG_ERR_INVALID, what, "%s",
              msg[0] ? msg : "the gradient function failed (returned non-zero)");
    return;
  }
  for (int i = 0; i < n; i++) {
    asg_tensor *d = din[i];
    if (!want[i] || !d) continue;
    char b1[160], b2[160];
    asg_shape bs;
    if (!asg__tensor_ok(d) || d->graph != g) {
      asg__fail(g, ASG_ERR_INVALID, what, "the gradient of input %d is not a tensor of this graph",
                i);
      return;
    }
    /* the input's shape, or one it broadcasts to (summed down by the engine) */
    if (d->dtype != dts[i] || !asg__broadcast_shapes(shs[i], d->shape, &bs) ||
        !asg_shape_equal(bs, d->shape)) {
      asg__fail(g, ASG_ERR_SHAPE, what, "the gradient of input %d is %s %s; the input is %s %s", i,
                asg_dtype_name(d->dtype), asg__shape_str_g(g, d->shape, b1, sizeof b1),
                asg_dtype_name(dts[i]), asg__shape_str_g(g, shs[i], b2, sizeof b2));
      return;
    }
    dx[i] = d;
  }
}

void asg_grad_register_custom(asg_grad_rule *t) { t[ASG_OP_CUSTOM] = grad_custom; }
