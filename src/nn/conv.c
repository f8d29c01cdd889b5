/* 2-D convolution layers (NCHW, PyTorch layouts and default init).
 * conv2d:           weight [out, in/groups, kh, kw], bias [out]
 * conv_transpose2d: weight [in, out/groups, kh, kw], bias [out]
 * Settings: i[0] = in channels, i[1] = out channels, i[2] = 1 for transpose;
 * extra = the asg_conv_params. */
#include <math.h>
#include <string.h>

#include "nn/layer.h"

static asg_tensor *as_dtype(asg_tensor *p, asg_tensor *x) {
  if (!p || asg_tensor_dtype(p) == asg_tensor_dtype(x)) return p;
  return asg_cast(p, asg_tensor_dtype(x));
}

static asg_tensor *conv_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  char b1[96];
  const char *what = l->i[2] ? "conv_transpose2d" : "conv2d";
  asg_shape xs = asg_tensor_shape(x);
  if (xs.ndim != 4 || xs.dims[1] != l->i[0])
    return asg_graph_fail(l->g, ASG_ERR_SHAPE, what,
                          "input %s must be [N, %lld, H, W] (layer made for %lld input channels)",
                          asg_graph_shape_str(l->g, xs, b1, sizeof b1), (long long)l->i[0],
                          (long long)l->i[0]);
  asg_tensor *w = as_dtype(asg_layer_param(l, "weight"), x);
  asg_tensor *b = as_dtype(asg_layer_param(l, "bias"), x);
  const asg_conv_params *p = l->extra;
  return l->i[2] ? asg_conv_transpose2d(x, w, b, *p) : asg_conv2d(x, w, b, *p);
}

static asg_layer *conv_new(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch, int kh,
                           int kw, asg_conv_params p, bool bias, bool transpose) {
  const char *what = transpose ? "conv_transpose2d" : "conv2d";
  asg_layer *l = asg__layer_new(g, name, conv_apply);
  if (!l) return NULL;
  int64_t G = p.groups ? p.groups : 1;
  if (in_ch < 1 || out_ch < 1 || kh < 1 || kw < 1 || G < 1)
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "%s: channels (%lld, %lld), kernel (%d, %d) and groups (%lld) must be >= 1", what,
        (long long)in_ch, (long long)out_ch, kh, kw, (long long)G);
  if (in_ch % G || out_ch % G)
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "%s: in (%lld) and out (%lld) channels must be divisible by groups=%lld", what,
        (long long)in_ch, (long long)out_ch, (long long)G);
  asg_conv_params *pp = asg_graph_alloc(g, sizeof *pp);
  if (!pp) return NULL;
  *pp = p;
  l->extra = pp;
  l->i[0] = in_ch;
  l->i[1] = out_ch;
  l->i[2] = transpose;
  asg_shape ws =
      transpose ? ASG_SHAPE(in_ch, out_ch / G, kh, kw) : ASG_SHAPE(out_ch, in_ch / G, kh, kw);
  /* PyTorch: kaiming_uniform(a=sqrt(5)) computes fan_in from the weight's
   * dims[1]*kh*kw (also for the transposed layout), giving U(+-1/sqrt(fan_in));
   * the bias uses the same bound. */
  double fan_in = (double)(ws.dims[1] * kh * kw);
  double bound = 1.0 / sqrt(fan_in);
  if (!asg__layer_param(l, "weight", ASG_F32, ws, asg_init_kaiming_uniform(sqrt(5.0)), true))
    return NULL;
  if (bias && !asg__layer_param(l, "bias", ASG_F32, ASG_SHAPE(out_ch),
                                asg_init_uniform(-bound, bound), true))
    return NULL;
  return l;
}

asg_layer *asg_nn_conv2d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch, int kh,
                         int kw, asg_conv_params p, bool bias) {
  return conv_new(g, name, in_ch, out_ch, kh, kw, p, bias, false);
}

asg_layer *asg_nn_conv_transpose2d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                   int kh, int kw, asg_conv_params p, bool bias) {
  return conv_new(g, name, in_ch, out_ch, kh, kw, p, bias, true);
}
