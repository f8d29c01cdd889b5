/* Fusion rule: a convolution with its bias (fuse.c adds the ReLU after it).
 *
 *   y = relu(conv2d(x, w) + reshape(b [O], [1,O,1,1]))  ->  conv2d_bias_act(x, w, b), act 1
 *   y = conv2d(x, w) + reshape(b [O], [1,O,1,1])        ->  conv2d_bias_act(x, w, b), act 0
 *
 * That is the graph asg_conv2d(x, w, bias) and the ONNX importer's Conv
 * build, and the ReLU most CNNs put after it. Unfused, each is a pass over
 * the whole activation; fused, a backend adds the bias and clamps while the
 * convolution's output is still in cache or registers. */
#include "passes/passes.h"

/* The [O] bias of a per-channel add operand: reshape(b [O]) -> [1,O,1,1]. */
static asg_tensor *channel_bias(const asg_tensor *t, const asg_tensor *conv) {
  if (t->op != ASG_OP_RESHAPE || t->shape.ndim != 4) return NULL;
  const int64_t O = conv->shape.dims[1];
  const asg_shape want = ASG_SHAPE(1, O, 1, 1);
  asg_tensor *b = t->in[0];
  if (!asg_shape_equal(t->shape, want) || b->shape.ndim != 1 || b->shape.dims[0] != O) return NULL;
  return b->dtype == conv->dtype ? b : NULL;
}

bool asg__fuse_conv_match(const asg_fuse_view *v, asg_tensor *add, asg_fuse_match *m) {
  asg_tensor *conv = add->in[0], *b = NULL;
  if (conv->op == ASG_OP_CONV2D) b = channel_bias(add->in[1], conv);
  if (!b && add->in[1]->op == ASG_OP_CONV2D) {
    conv = add->in[1];
    b = channel_bias(add->in[0], conv);
  }
  if (!b || v->readers[conv->id] != 1 || !asg_shape_equal(add->shape, conv->shape)) return false;
  *m = (asg_fuse_match){.main = conv,
                        .op = ASG_OP_CONV2D_BIAS_ACT,
                        .n_in = 3,
                        .in = {conv->in[0], conv->in[1], b},
                        .attr = conv->attr,
                        .act_attr = 9};
  return true;
}
