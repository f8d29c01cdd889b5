/* Group norm and instance norm (PyTorch's GroupNorm and InstanceNorm1d/2d/
 * 3d without running statistics): each sample's channels split into G
 * groups of C/G, each group normalized over its channels and every spatial
 * position with the biased variance, then an optional per-channel affine.
 * Instance norm is group norm with one channel a group (G = C).
 *
 * Built from existing ops (reshape to [N, G, -1], the layernorm op without
 * gamma/beta, reshape back, mul/add), so every backend and autograd have it.
 *
 * Parameters: weight [C] = 1, bias [C] = 0 (trainable) when affine.
 * Settings: i[0] = C, i[1] = G, i[2] = 1 for instance norm; f[1] = eps. */
#include "nn/layer.h"

static asg_tensor *groupnorm_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  char b1[96];
  asg_graph *g = l->g;
  bool inst = l->i[2];
  const char *what = inst ? "instancenorm" : "groupnorm";
  int64_t C = l->i[0], G = l->i[1];
  asg_shape xs = asg_tensor_shape(x);
  if (xs.ndim < (inst ? 3 : 2) || xs.dims[1] != C)
    return asg_graph_fail(g, ASG_ERR_SHAPE, what, "input %s must be [N, %lld, %s",
                          asg_graph_shape_str(g, xs, b1, sizeof b1), (long long)C,
                          inst ? "L, ...] (at least one spatial dim)" : "...]");
  asg_dtype dt = asg_tensor_dtype(x);
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg_graph_fail(g, ASG_ERR_DTYPE, what, "input must be f32 or f64, got %s",
                          asg_dtype_name(dt));
  if (inst) { /* PyTorch: "Expected more than 1 spatial element"; symbolic dims pass */
    int64_t sp = 1;
    for (int d = 2; d < xs.ndim && sp > 0; d++)
      sp = asg_dim_is_symbolic(xs.dims[d]) ? -1 : sp * xs.dims[d];
    if (sp == 1)
      return asg_graph_fail(g, ASG_ERR_SHAPE, what,
                            "input %s has one spatial element: nothing to normalize over",
                            asg_graph_shape_str(g, xs, b1, sizeof b1));
  }
  /* [N, G, (C/G) * spatial]: the layernorm op normalizes over the last dim */
  asg_tensor *y = asg_reshape(x, ASG_SHAPE(xs.dims[0], G, -1));
  y = asg_reshape(asg_layernorm(y, NULL, NULL, l->f[1]), xs);
  asg_tensor *w = asg_layer_param(l, "weight"), *b = asg_layer_param(l, "bias");
  if (!w) return y;
  asg_shape cs = {xs.ndim - 1, {0}}; /* [C, 1, ..., 1] against [N, C, ...] */
  cs.dims[0] = C;
  for (int d = 1; d < cs.ndim; d++)
    cs.dims[d] = 1;
  if (asg_tensor_dtype(w) != dt) {
    w = asg_cast(w, dt);
    b = asg_cast(b, dt);
  }
  return asg_add(asg_mul(y, asg_reshape(w, cs)), asg_reshape(b, cs));
}

static asg_layer *group_new(asg_graph *g, const char *name, int64_t groups, int64_t channels,
                            double eps, bool affine, asg_dtype dt, bool inst) {
  const char *what = inst ? "instancenorm" : "groupnorm";
  asg_layer *l = asg__layer_new(g, name, groupnorm_apply);
  if (!l) return NULL;
  if (eps == 0) eps = 1e-5;
  if (channels < 1 || groups < 1 || !(eps > 0))
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "%s: channels (%lld) and groups (%lld) must be >= 1, eps (%g) > 0", what,
        (long long)channels, (long long)groups, eps);
  if (channels % groups)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "%s: channels (%lld) must be divisible by num_groups (%lld)",
                                       what, (long long)channels, (long long)groups);
  if (!asg__layer_dtype_ok(l, what, dt)) return NULL;
  l->i[0] = channels;
  l->i[1] = groups;
  l->i[2] = inst;
  l->f[1] = eps;
  if (affine && (!asg__layer_param(l, "weight", dt, ASG_SHAPE(channels), asg_init_ones(), true) ||
                 !asg__layer_param(l, "bias", dt, ASG_SHAPE(channels), asg_init_zeros(), true)))
    return NULL;
  return l;
}

asg_layer *asg_nn_groupnorm(asg_graph *g, const char *name, int64_t num_groups, int64_t channels,
                            const asg_groupnorm_opts *o) {
  asg_groupnorm_opts d = {0};
  if (!o) o = &d;
  return group_new(g, name, num_groups, channels, o->eps, !o->no_affine, o->dtype, false);
}

asg_layer *asg_nn_instancenorm(asg_graph *g, const char *name, int64_t channels,
                               const asg_instancenorm_opts *o) {
  asg_instancenorm_opts d = {0};
  if (!o) o = &d;
  return group_new(g, name, channels, channels, o->eps, o->affine, o->dtype, true);
}
