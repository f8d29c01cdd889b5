/* 3-D convolutions (asg/ops.h) built from the 2-D ops, so every backend and
 * the gradient rules of conv2d / conv_transpose2d serve them.
 *
 * conv3d, x [N,C,D,H,W] * w [O,Cg,KD,KH,KW] (G groups, Cg = C/G): the KD
 * depth taps become channels. After zero padding in depth, slice kd takes
 * depths kd*dd + od*sd for od < OD; the slices are stacked as
 *   x2 [N*OD, G*KD*Cg, H, W]   channel (g, kd, c)
 *   w2 [O, KD*Cg, KH, KW]      w permuted to [O, KD, Cg, KH, KW]
 * and one conv2d over the N*OD planes, with G groups of KD*Cg channels,
 * sums over (kd, c, kh, kw) as the 3-D convolution does:
 *   y [N,O,OD,OH,OW] = permute(reshape(conv2d(x2, w2), [N,OD,O,OH,OW])).
 * Memory: x2 holds the input KD times (an im2col along depth only).
 *
 * conv_transpose3d, x [N,Ci,D,H,W] * w [Ci,Cog,KD,KH,KW] -> [N,Co,OD,OH,OW]:
 * one conv_transpose2d over the N*D planes with KD*Cog outputs a group
 * (w permuted to [Ci, KD, Cog, KH, KW]) gives, for each tap kd, the
 * contribution z_kd [N, D, Co, OH, OW] of input depth i to output depth
 * i*sd + kd*dd - pd; each z_kd is spread to stride sd (zeros between),
 * shifted by kd*dd, and the KD of them are added; the result is cropped by
 * pd at both ends (output_padding extends the end, as in PyTorch). */
#include "asg/ops.h"

static int or1(int v) { return v ? v : 1; }

static asg_tensor *fail(asg_graph *g, const char *what, const char *msg, asg_shape a, asg_shape b) {
  char b1[96], b2[96];
  return asg_graph_fail(g, ASG_ERR_SHAPE, what, "%s (input %s, weight %s)", msg,
                        asg_graph_shape_str(g, a, b1, sizeof b1),
                        asg_graph_shape_str(g, b, b2, sizeof b2));
}

/* The checks only the 3-D form can get wrong; the 2-D op checks the rest. */
static asg_graph *check(const char *what, asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                        const asg_conv3d_params *p) {
  asg_graph *g = x ? asg_tensor_graph(x) : w ? asg_tensor_graph(w) : NULL;
  if (!g) return NULL;
  if (!x || !w) { /* a failed op upstream already set the graph's error; this keeps the first */
    asg_graph_fail(g, ASG_ERR_INVALID, what, "input and weight are required");
    return NULL;
  }
  if (asg_tensor_graph(w) != g || (bias && asg_tensor_graph(bias) != g)) {
    asg_graph_fail(g, ASG_ERR_INVALID, what, "input, weight and bias must share a graph");
    return NULL;
  }
  asg_shape xs = asg_tensor_shape(x), ws = asg_tensor_shape(w);
  if (xs.ndim != 5 || ws.ndim != 5) {
    fail(g, what, "input and weight must both have rank 5 ([N, C, D, H, W])", xs, ws);
    return NULL;
  }
  for (int k = 0; k < 3; k++)
    if (p->stride[k] < 0 || p->dilation[k] < 0 || p->padding[k] < 0 || p->output_padding[k] < 0 ||
        p->groups < 0) {
      asg_graph_fail(g, ASG_ERR_INVALID, what,
                     "stride, dilation, padding, output_padding and groups must be >= 0 "
                     "(0: the default)");
      return NULL;
    }
  if (asg_dim_is_symbolic(xs.dims[2]) || asg_dim_is_symbolic(xs.dims[1])) {
    fail(g, what, "the depth and channel dims must be static", xs, ws);
    return NULL;
  }
  return g;
}

static asg_tensor *add_bias(asg_tensor *y, asg_tensor *bias, int64_t O) {
  return bias ? asg_add(y, asg_reshape(bias, ASG_SHAPE(1, O, 1, 1, 1))) : y;
}

asg_tensor *asg_conv3d(asg_tensor *x, asg_tensor *w, asg_tensor *bias, asg_conv3d_params p) {
  asg_graph *g = check("conv3d", x, w, bias, &p);
  if (!g) return NULL;
  asg_shape xs = asg_tensor_shape(x), ws = asg_tensor_shape(w);
  const int64_t N = xs.dims[0], C = xs.dims[1], D = xs.dims[2], H = xs.dims[3], W = xs.dims[4];
  const int64_t O = ws.dims[0], Cg = ws.dims[1], KD = ws.dims[2];
  const int64_t G = or1(p.groups), sd = or1(p.stride[0]), dd = or1(p.dilation[0]);
  const int64_t pd = p.padding[0];
  if (C != Cg * G || O % G)
    return fail(g, "conv3d",
                "input channels must be groups x the weight's dim 1, and groups must "
                "divide the output channels",
                xs, ws);
  const int64_t span = dd * (KD - 1) + 1, Dp = D + 2 * pd;
  if (KD < 1 || Dp < span)
    return fail(g, "conv3d", "the dilated kernel is deeper than the padded input", xs, ws);
  const int64_t OD = (Dp - span) / sd + 1;
  asg_scope_push(g, "conv3d");
  if (pd) {
    const int64_t pads[6] = {0, 0, 0, 0, pd, pd};
    x = asg_pad(x, pads, 6, ASG_PAD_CONSTANT, 0.0);
  }
  /* x2 [N, G, KD, Cg, OD, H, W] -> [N*OD, G*KD*Cg, H, W] */
  asg_tensor *taps[64], *x2;
  asg_tensor **tp = KD <= 64 ? taps : NULL;
  if (!tp) {
    asg_scope_pop(g);
    return fail(g, "conv3d", "at most 64 kernel taps in depth", xs, ws);
  }
  for (int64_t kd = 0; kd < KD; kd++) {
    asg_tensor *s = asg_slice(x, 2, kd * dd, kd * dd + (OD - 1) * sd + 1, sd);
    tp[kd] = asg_reshape(s, (asg_shape){7, {N, G, 1, Cg, OD, H, W}});
  }
  x2 = KD == 1 ? tp[0] : asg_concat(tp, (int)KD, 2);
  static const int to_planes[7] = {0, 4, 1, 2, 3, 5, 6};
  x2 = asg_reshape(asg_permute(x2, to_planes), ASG_SHAPE(-1, G * KD * Cg, H, W));
  static const int w_perm[5] = {0, 2, 1, 3, 4}; /* [O, KD, Cg, KH, KW] */
  asg_tensor *w2 =
      asg_reshape(asg_permute(w, w_perm), ASG_SHAPE(O, KD * Cg, ws.dims[3], ws.dims[4]));
  asg_conv_params q = {.stride = {p.stride[1], p.stride[2]},
                       .padding = {p.padding[1], p.padding[2]},
                       .dilation = {p.dilation[1], p.dilation[2]},
                       .groups = (int)G};
  asg_tensor *y2 = asg_conv2d(x2, w2, NULL, q); /* [N*OD, O, OH, OW] */
  asg_tensor *y = NULL;
  if (y2) {
    asg_shape s2 = asg_tensor_shape(y2);
    static const int back[5] = {0, 2, 1, 3, 4};
    y = asg_permute(asg_reshape(y2, ASG_SHAPE(N, OD, O, s2.dims[2], s2.dims[3])), back);
    y = add_bias(y, bias, O);
  }
  asg_scope_pop(g);
  return y;
}

asg_tensor *asg_conv_transpose3d(asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                                 asg_conv3d_params p) {
  asg_graph *g = check("conv_transpose3d", x, w, bias, &p);
  if (!g) return NULL;
  asg_shape xs = asg_tensor_shape(x), ws = asg_tensor_shape(w);
  const int64_t N = xs.dims[0], Ci = xs.dims[1], D = xs.dims[2], H = xs.dims[3], W = xs.dims[4];
  const int64_t Cog = ws.dims[1], KD = ws.dims[2], G = or1(p.groups);
  const int64_t sd = or1(p.stride[0]), dd = or1(p.dilation[0]), pd = p.padding[0];
  const int64_t opd = p.output_padding[0], Co = Cog * G;
  if (ws.dims[0] != Ci || Ci % G)
    return fail(g, "conv_transpose3d",
                "the weight's dim 0 must be the input channels, and groups must divide them", xs,
                ws);
  if (opd >= sd && opd >= dd)
    return fail(g, "conv_transpose3d",
                "output_padding must be smaller than the stride or the dilation", xs, ws);
  /* full depth before the crop by pd; the output depth after it */
  const int64_t full = (D - 1) * sd + dd * (KD - 1) + 1 + opd, OD = full - 2 * pd;
  if (KD < 1 || KD > 64 || OD < 1)
    return fail(g, "conv_transpose3d", "the output depth would be < 1 (or over 64 depth taps)", xs,
                ws);
  asg_scope_push(g, "conv_transpose3d");
  /* [N*D, Ci, H, W] * [Ci, KD*Cog, KH, KW] -> z [N*D, G*KD*Cog, OH, OW] */
  static const int to_planes[5] = {0, 2, 1, 3, 4};
  asg_tensor *x2 = asg_reshape(asg_permute(x, to_planes), ASG_SHAPE(-1, Ci, H, W));
  static const int w_perm[5] = {0, 2, 1, 3, 4}; /* [Ci, KD, Cog, KH, KW] */
  asg_tensor *w2 =
      asg_reshape(asg_permute(w, w_perm), ASG_SHAPE(Ci, KD * Cog, ws.dims[3], ws.dims[4]));
  asg_conv_params q = {.stride = {p.stride[1], p.stride[2]},
                       .padding = {p.padding[1], p.padding[2]},
                       .dilation = {p.dilation[1], p.dilation[2]},
                       .groups = (int)G,
                       .output_padding = {p.output_padding[1], p.output_padding[2]}};
  asg_tensor *z = asg_conv_transpose2d(x2, w2, NULL, q), *sum = NULL;
  if (z) {
    asg_shape zs = asg_tensor_shape(z);
    const int64_t OH = zs.dims[2], OW = zs.dims[3];
    /* [N, D, G, KD, Cog, OH, OW] */
    z = asg_reshape(z, (asg_shape){7, {N, D, G, KD, Cog, OH, OW}});
    for (int64_t kd = 0; kd < KD; kd++) {
      /* tap kd: [N, D, plane = Co*OH*OW], input depth i at output depth
       * i*sd + kd*dd (-1: the plane may have a symbolic height or width) */
      asg_tensor *t = asg_reshape(asg_slice(z, 3, kd, kd + 1, 1), ASG_SHAPE(N, D, 1, -1));
      if (sd > 1) { /* spread to stride sd: zeros after each depth, the last ones dropped */
        const int64_t spread[6] = {0, 0, 0, sd - 1, 0, 0};
        t = asg_reshape(asg_pad(t, spread, 6, ASG_PAD_CONSTANT, 0.0), ASG_SHAPE(N, D * sd, -1));
        t = asg_slice(t, 1, 0, (D - 1) * sd + 1, 1);
      } else {
        t = asg_reshape(t, ASG_SHAPE(N, D, -1));
      }
      const int64_t before = kd * dd, after = full - before - ((D - 1) * sd + 1);
      const int64_t shift[4] = {0, 0, before, after};
      t = asg_pad(t, shift, 4, ASG_PAD_CONSTANT, 0.0); /* [N, full, plane] */
      sum = sum ? asg_add(sum, t) : t;
    }
    if (pd) sum = asg_slice(sum, 1, pd, full - pd, 1);
    static const int back[5] = {0, 2, 1, 3, 4};
    sum = asg_permute(asg_reshape(sum, ASG_SHAPE(N, OD, Co, OH, OW)), back);
    sum = add_bias(sum, bias, Co);
  }
  asg_scope_pop(g);
  return sum;
}
