/* 1-D convolutions (asg/ops.h) as the 2-D ops with H = 1: x [N, C, L]
 * becomes [N, C, 1, L] and w [A, B, K] becomes [A, B, 1, K] (views), the
 * 2-D op runs with stride/dilation 1 and no padding along H, and the result
 * loses its H axis again. No kernel of its own: every backend and the
 * gradient rules of conv2d / conv_transpose2d serve it. Checks that only the
 * 1-D form can get wrong (ranks) are made here; the rest come from the 2-D
 * op under the scope "conv1d" / "conv_transpose1d". */
#include "asg/ops.h"

static asg_conv_params to_2d(asg_conv1d_params p) {
  asg_conv_params q = {.stride = {1, p.stride},
                       .padding = {0, p.padding},
                       .dilation = {1, p.dilation},
                       .groups = p.groups,
                       .output_padding = {0, p.output_padding}};
  return q;
}

static asg_tensor *conv1d_any(const char *what, asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                              asg_conv1d_params p, bool transpose) {
  char b1[96], b2[96];
  asg_graph *g = x ? asg_tensor_graph(x) : w ? asg_tensor_graph(w) : NULL;
  if (!g) return NULL;
  if (!x || !w) /* a failed op upstream already set the graph's error; this keeps the first */
    return asg_graph_fail(g, ASG_ERR_INVALID, what, "input and weight are required");
  if (asg_tensor_graph(w) != g || (bias && asg_tensor_graph(bias) != g))
    return asg_graph_fail(g, ASG_ERR_INVALID, what, "input, weight and bias must share a graph");
  asg_shape xs = asg_tensor_shape(x), ws = asg_tensor_shape(w);
  if (xs.ndim != 3 || ws.ndim != 3)
    return asg_graph_fail(
        g, ASG_ERR_SHAPE, what, "input %s and weight %s must both have rank 3 ([N, C, L] and %s)",
        asg_graph_shape_str(g, xs, b1, sizeof b1), asg_graph_shape_str(g, ws, b2, sizeof b2),
        transpose ? "[Cin, Cout/groups, K]" : "[Cout, Cin/groups, K]");
  asg_scope_push(g, what);
  asg_tensor *x4 = asg_unsqueeze(x, 2), *w4 = asg_unsqueeze(w, 2);
  asg_tensor *y =
      transpose ? asg_conv_transpose2d(x4, w4, bias, to_2d(p)) : asg_conv2d(x4, w4, bias, to_2d(p));
  y = y ? asg_squeeze(y, 2) : NULL;
  asg_scope_pop(g);
  return y;
}

asg_tensor *asg_conv1d(asg_tensor *x, asg_tensor *w, asg_tensor *bias, asg_conv1d_params p) {
  return conv1d_any("conv1d", x, w, bias, p, false);
}

asg_tensor *asg_conv_transpose1d(asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                                 asg_conv1d_params p) {
  return conv1d_any("conv_transpose1d", x, w, bias, p, true);
}
