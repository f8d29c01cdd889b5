/* Convolution layers (PyTorch layouts and default init), 2-D on NCHW,
 * 1-D on NCL (asg_conv1d: the 2-D op with H = 1, see conv1d.c) and 3-D on
 * NCDHW (asg_conv3d: the 2-D ops over depth planes, see conv3d.c).
 * conv2d:           weight [out, in/groups, kh, kw],     bias [out]
 * conv_transpose2d: weight [in, out/groups, kh, kw],     bias [out]
 * conv1d:           weight [out, in/groups, k],          bias [out]
 * conv_transpose1d: weight [in, out/groups, k],          bias [out]
 * conv3d:           weight [out, in/groups, kd, kh, kw], bias [out]
 * conv_transpose3d: weight [in, out/groups, kd, kh, kw], bias [out]
 * Settings: i[0] = in channels, i[1] = out channels, i[2] = 1 for transpose,
 * i[3] = spatial rank (1, 2 or 3); extra = the asg_conv1d_params,
 * asg_conv_params or asg_conv3d_params of that rank. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/layer.h"

static asg_tensor *as_dtype(asg_tensor *p, asg_tensor *x) {
  if (!p || asg_tensor_dtype(p) == asg_tensor_dtype(x)) return p;
  return asg_cast(p, asg_tensor_dtype(x));
}

static const char *conv_what(const asg_layer *l) {
  static const char *names[3][2] = {{"conv1d", "conv_transpose1d"},
                                    {"conv2d", "conv_transpose2d"},
                                    {"conv3d", "conv_transpose3d"}};
  return names[l->i[3] - 1][l->i[2] != 0];
}

static asg_tensor *conv_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  char b1[96];
  const char *what = conv_what(l);
  asg_shape xs = asg_tensor_shape(x);
  int rank = (int)l->i[3] + 2;
  if (xs.ndim != rank || xs.dims[1] != l->i[0])
    return asg_graph_fail(l->g, ASG_ERR_SHAPE, what,
                          "input %s must be [N, %lld, %s] (layer made for %lld input channels)",
                          asg_graph_shape_str(l->g, xs, b1, sizeof b1), (long long)l->i[0],
                          rank == 5   ? "D, H, W"
                          : rank == 4 ? "H, W"
                                      : "L",
                          (long long)l->i[0]);
  asg_tensor *w = as_dtype(asg_layer_param(l, "weight"), x);
  asg_tensor *b = as_dtype(asg_layer_param(l, "bias"), x);
  if (rank == 3) {
    const asg_conv1d_params *p = l->extra;
    return l->i[2] ? asg_conv_transpose1d(x, w, b, *p) : asg_conv1d(x, w, b, *p);
  }
  if (rank == 5) {
    const asg_conv3d_params *p = l->extra;
    return l->i[2] ? asg_conv_transpose3d(x, w, b, *p) : asg_conv3d(x, w, b, *p);
  }
  const asg_conv_params *p = l->extra;
  return l->i[2] ? asg_conv_transpose2d(x, w, b, *p) : asg_conv2d(x, w, b, *p);
}

/* A layer of spatial rank r (1..3) with kernel k[0..r), the params p of
 * that rank (pb bytes) and their groups. */
static asg_layer *conv_new(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch, int r,
                           const int *k, const void *p, size_t pb, int64_t G,
                           const asg_conv_opts *o, bool transpose) {
  asg_conv_opts d = {0};
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, conv_apply);
  if (!l) return NULL;
  l->i[2] = transpose;
  l->i[3] = r;
  const char *what = conv_what(l);
  if (G == 0) G = 1;
  bool kok = true;
  double ksize = 1;
  for (int j = 0; j < r; j++)
    kok = kok && k[j] >= 1, ksize *= k[j];
  if (in_ch < 1 || out_ch < 1 || !kok || G < 1) {
    char ks[64];
    int n = snprintf(ks, sizeof ks, "%s%d", r > 1 ? "(" : "", k[0]);
    for (int j = 1; j < r; j++)
      n += snprintf(ks + n, sizeof ks - (size_t)n, ", %d", k[j]);
    if (r > 1) snprintf(ks + n, sizeof ks - (size_t)n, ")");
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "%s: channels (%lld, %lld), kernel %s and groups (%lld) must be >= 1", what,
        (long long)in_ch, (long long)out_ch, ks, (long long)G);
  }
  if (in_ch % G || out_ch % G)
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "%s: in (%lld) and out (%lld) channels must be divisible by groups=%lld", what,
        (long long)in_ch, (long long)out_ch, (long long)G);
  if (!asg__layer_dtype_ok(l, what, o->dtype)) return NULL;
  void *pp = asg_graph_alloc(g, pb);
  if (!pp) return NULL;
  memcpy(pp, p, pb);
  l->extra = pp;
  l->i[0] = in_ch;
  l->i[1] = out_ch;
  int64_t a = transpose ? in_ch : out_ch, b = transpose ? out_ch / G : in_ch / G;
  asg_shape ws = {r + 2, {a, b}};
  for (int j = 0; j < r; j++)
    ws.dims[2 + j] = k[j];
  /* PyTorch: kaiming_uniform(a=sqrt(5)) computes fan_in from the weight's
   * dims[1] times the kernel size (also for the transposed layout), giving
   * U(+-1/sqrt(fan_in)); the bias uses the same bound. */
  double fan_in = (double)b * ksize;
  double bound = 1.0 / sqrt(fan_in);
  if (!asg__layer_param(l, "weight", o->dtype, ws, asg_init_kaiming_uniform(sqrt(5.0)), true))
    return NULL;
  if (!o->no_bias && !asg__layer_param(l, "bias", o->dtype, ASG_SHAPE(out_ch),
                                       asg_init_uniform(-bound, bound), true))
    return NULL;
  return l;
}

asg_layer *asg_nn_conv2d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch, int kh,
                         int kw, asg_conv_params p, bool bias) {
  asg_conv_opts o = {.no_bias = !bias};
  const int k[2] = {kh, kw};
  return conv_new(g, name, in_ch, out_ch, 2, k, &p, sizeof p, p.groups, &o, false);
}

asg_layer *asg_nn_conv_transpose2d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                   int kh, int kw, asg_conv_params p, bool bias) {
  asg_conv_opts o = {.no_bias = !bias};
  const int k[2] = {kh, kw};
  return conv_new(g, name, in_ch, out_ch, 2, k, &p, sizeof p, p.groups, &o, true);
}

asg_layer *asg_nn_conv2d_ex(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch, int kh,
                            int kw, asg_conv_params p, const asg_conv_opts *o) {
  const int k[2] = {kh, kw};
  return conv_new(g, name, in_ch, out_ch, 2, k, &p, sizeof p, p.groups, o, false);
}

asg_layer *asg_nn_conv_transpose2d_ex(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                      int kh, int kw, asg_conv_params p, const asg_conv_opts *o) {
  const int k[2] = {kh, kw};
  return conv_new(g, name, in_ch, out_ch, 2, k, &p, sizeof p, p.groups, o, true);
}

asg_layer *asg_nn_conv1d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch, int k,
                         asg_conv1d_params p, const asg_conv_opts *o) {
  return conv_new(g, name, in_ch, out_ch, 1, &k, &p, sizeof p, p.groups, o, false);
}

asg_layer *asg_nn_conv_transpose1d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                   int k, asg_conv1d_params p, const asg_conv_opts *o) {
  return conv_new(g, name, in_ch, out_ch, 1, &k, &p, sizeof p, p.groups, o, true);
}

asg_layer *asg_nn_conv3d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                         const int k[3], asg_conv3d_params p, const asg_conv_opts *o) {
  return conv_new(g, name, in_ch, out_ch, 3, k, &p, sizeof p, p.groups, o, false);
}

asg_layer *asg_nn_conv_transpose3d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                   const int k[3], asg_conv3d_params p, const asg_conv_opts *o) {
  return conv_new(g, name, in_ch, out_ch, 3, k, &p, sizeof p, p.groups, o, true);
}
