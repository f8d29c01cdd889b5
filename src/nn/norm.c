/* Normalization layers (group and instance norm: groupnorm.c).
 * batchnorm: weight, bias [C] (trainable; absent with no_affine);
 *   running_mean, running_var [C] and num_batches_tracked (i64 scalar)
 *   (frozen). Settings: i[0] = C, i[1] = cumulative, f[0] = momentum,
 *   f[1] = eps.
 * layernorm: weight, bias [dim]. Settings: i[0] = dim, f[1] = eps.
 * rmsnorm:   weight [dim].       Settings: i[0] = dim, f[1] = eps. */
#include "nn/layer.h"
#include "ops/op_util.h"

static asg_tensor *as_dtype(asg_tensor *p, asg_dtype dt) {
  if (!p || asg_tensor_dtype(p) == dt) return p;
  return asg_cast(p, dt);
}

/* ---- batch norm ---- */
static asg_tensor *batchnorm_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  char b1[96];
  asg_graph *g = l->g;
  asg_shape xs = asg_tensor_shape(x);
  int64_t C = l->i[0];
  if (xs.ndim < 2 || xs.dims[1] != C)
    return asg_graph_fail(g, ASG_ERR_SHAPE, "batchnorm",
                          "input %s must be [N, %lld] or [N, %lld, ...]",
                          asg_graph_shape_str(g, xs, b1, sizeof b1), (long long)C, (long long)C);
  asg_dtype dt = asg_tensor_dtype(x);
  if (!asg_dtype_is_float(dt))
    return asg_graph_fail(g, ASG_ERR_DTYPE, "batchnorm", "input must be floating point, got %s",
                          asg_dtype_name(dt));
  double m = l->f[0], eps = l->f[1];
  /* per-channel vectors broadcast as [C, 1, ..., 1] against [N, C, ...] */
  asg_shape cs = {xs.ndim - 1, {0}};
  cs.dims[0] = C;
  for (int d = 1; d < cs.ndim; d++)
    cs.dims[d] = 1;
  asg_tensor *rm = asg_layer_param(l, "running_mean"), *rv = asg_layer_param(l, "running_var");
  asg_tensor *w = as_dtype(asg_layer_param(l, "weight"), dt);
  asg_tensor *b = as_dtype(asg_layer_param(l, "bias"), dt);
  asg_tensor *mean, *var;
  if (asg_graph_is_training(g)) {
    asg_axes ax = {0, {0}};
    int64_t n = 1, dims[ASG_MAX_DIMS];
    for (int d = 0; d < xs.ndim; d++)
      if (d != 1) {
        dims[ax.n] = xs.dims[d];
        ax.axis[ax.n++] = d;
      }
    int64_t nsym = asg__count_dim(g, dims, ax.n, &n); /* n times the symbolic dims */
    if (nsym) {
      /* "more than 1 value per channel" for a symbolic batch */
      int64_t nd = 1;
      for (int k = 0; k < ax.n; k++)
        nd = asg__dim_mul(g, nd, dims[k]);
      if (!asg__dim_require_ge(g, nd, 2, "batchnorm",
                               "training needs more than 1 value per channel"))
        return NULL;
    }
    if (!nsym && n < 2)
      return asg_graph_fail(g, ASG_ERR_SHAPE, "batchnorm",
                            "input %s: training needs more than 1 value per channel",
                            asg_graph_shape_str(g, xs, b1, sizeof b1));
    /* one op normalizes with the batch statistics (and one op per input
     * differentiates it); built first, so that the mean and var below,
     * which only feed the running stats, can be its further outputs
     * (src/passes/fuse_stats.c) rather than two more passes over x */
    asg_tensor *y = asg_batchnorm(x, w, b, eps);
    mean = asg_mean(x, ax, false);  /* [C] */
    var = asg_var(x, ax, 0, false); /* biased: used to normalize */
    /* running stats (PyTorch): rs = (1-m) rs + m batch, with the unbiased
     * variance; the batch stats carry no gradient into the update. */
    asg_dtype sd = asg_tensor_dtype(rm);
    asg_tensor *bm = as_dtype(asg_stop_gradient(mean), sd);
    asg_tensor *bv;
    if (nsym) { /* Bessel's n / (n - 1) of the bound n */
      bv = as_dtype(asg_mul(asg_stop_gradient(var), asg__dim_ratio(g, dt, nsym, n, 0, n, -1)), sd);
    } else {
      bv = as_dtype(asg_mul_scalar(asg_stop_gradient(var), (double)n / (double)(n - 1)), sd);
    }
    /* num_batches_tracked counts training steps (PyTorch's add_(1)); every
     * read in a step sees the count from before the step's assigns */
    asg_tensor *nbt = asg_layer_param(l, "num_batches_tracked");
    asg_tensor *nb1 = asg_add_scalar(nbt, 1);
    asg_tensor *um, *uv;
    if (l->i[1]) { /* cumulative (momentum None): factor 1 / count, the mean of every batch */
      asg_tensor *one = asg_scalar(g, sd, 1.0);
      asg_tensor *f = asg_div(one, asg_cast(nb1, sd)), *k = asg_sub(one, f);
      um = asg_assign(rm, asg_add(asg_mul(rm, k), asg_mul(bm, f)));
      uv = asg_assign(rv, asg_add(asg_mul(rv, k), asg_mul(bv, f)));
    } else {
      um = asg_assign(rm, asg_add(asg_mul_scalar(rm, 1 - m), asg_mul_scalar(bm, m)));
      uv = asg_assign(rv, asg_add(asg_mul_scalar(rv, 1 - m), asg_mul_scalar(bv, m)));
    }
    asg_tensor *un = asg_assign(nbt, nb1);
    if (!um || !uv || !un) return NULL;
    if (asg_graph_add_update(g, um) != ASG_OK || asg_graph_add_update(g, uv) != ASG_OK ||
        asg_graph_add_update(g, un) != ASG_OK)
      return asg_graph_fail(g, ASG_ERR_INVALID, "batchnorm",
                            "could not register the running-stat updates: %s", asg_last_error());
    return y;
  }
  mean = as_dtype(rm, dt);
  var = as_dtype(rv, dt);
  asg_tensor *inv = asg_rsqrt(asg_add_scalar(asg_reshape(var, cs), eps));
  if (!w) return asg_mul(asg_sub(x, asg_reshape(mean, cs)), inv); /* no_affine */
  asg_tensor *y = asg_mul(asg_sub(x, asg_reshape(mean, cs)), asg_mul(inv, asg_reshape(w, cs)));
  return asg_add(y, asg_reshape(b, cs));
}

asg_layer *asg_nn_batchnorm_ex(asg_graph *g, const char *name, int64_t channels,
                               const asg_batchnorm_opts *o) {
  asg_batchnorm_opts d = {0};
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, batchnorm_apply);
  if (!l) return NULL;
  double momentum = o->momentum, eps = o->eps;
  if (momentum == 0 && !o->cumulative) momentum = 0.1;
  if (eps == 0) eps = 1e-5;
  if (o->cumulative && momentum != 0)
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "batchnorm: cumulative (momentum None) and momentum %g are exclusive", momentum);
  if (channels < 1 || !(o->cumulative || (momentum > 0 && momentum <= 1)) || !(eps > 0))
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "batchnorm: channels (%lld) must be >= 1, momentum (%g) in (0, 1], eps (%g) > 0",
        (long long)channels, momentum, eps);
  if (!asg__layer_dtype_ok(l, "batchnorm", o->dtype)) return NULL;
  l->i[0] = channels;
  l->i[1] = o->cumulative;
  l->f[0] = momentum;
  l->f[1] = eps;
  asg_shape s = ASG_SHAPE(channels);
  asg_dtype dt = o->dtype;
  if (!o->no_affine && (!asg__layer_param(l, "weight", dt, s, asg_init_ones(), true) ||
                        !asg__layer_param(l, "bias", dt, s, asg_init_zeros(), true)))
    return NULL;
  if (!asg__layer_param(l, "running_mean", dt, s, asg_init_zeros(), false) ||
      !asg__layer_param(l, "running_var", dt, s, asg_init_ones(), false) ||
      !asg__layer_param(l, "num_batches_tracked", ASG_I64, ASG_SCALAR, asg_init_zeros(), false))
    return NULL;
  return l;
}

asg_layer *asg_nn_batchnorm(asg_graph *g, const char *name, int64_t channels, double momentum,
                            double eps) {
  asg_batchnorm_opts o = {.momentum = momentum, .eps = eps};
  return asg_nn_batchnorm_ex(g, name, channels, &o);
}

/* ---- layer norm and RMS norm (over the last dim) ---- */
static bool last_dim_ok(asg_layer *l, asg_tensor *x, const char *what) {
  char b1[96];
  asg_shape xs = asg_tensor_shape(x);
  if (xs.ndim < 1 || xs.dims[xs.ndim - 1] != l->i[0]) {
    asg_graph_fail(l->g, ASG_ERR_SHAPE, what, "input %s: last dim must be %lld",
                   asg_graph_shape_str(l->g, xs, b1, sizeof b1), (long long)l->i[0]);
    return false;
  }
  if (!asg_dtype_is_float(asg_tensor_dtype(x))) {
    asg_graph_fail(l->g, ASG_ERR_DTYPE, what, "input must be floating point, got %s",
                   asg_dtype_name(asg_tensor_dtype(x)));
    return false;
  }
  return true;
}

static asg_tensor *layernorm_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  if (!last_dim_ok(l, x, "layernorm")) return NULL;
  asg_dtype dt = asg_tensor_dtype(x);
  return asg_layernorm(x, as_dtype(asg_layer_param(l, "weight"), dt),
                       as_dtype(asg_layer_param(l, "bias"), dt), l->f[1]);
}

static asg_tensor *rmsnorm_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  if (!last_dim_ok(l, x, "rmsnorm")) return NULL;
  return asg_rmsnorm(x, as_dtype(asg_layer_param(l, "weight"), asg_tensor_dtype(x)), l->f[1]);
}

static asg_layer *norm_new(asg_graph *g, const char *name, int64_t dim, const asg_norm_opts *o,
                           bool rms) {
  asg_norm_opts d = {0};
  if (!o) o = &d;
  const char *what = rms ? "rmsnorm" : "layernorm";
  asg_layer *l = asg__layer_new(g, name, rms ? rmsnorm_apply : layernorm_apply);
  if (!l) return NULL;
  double eps = o->eps == 0 ? (rms ? 1e-6 : 1e-5) : o->eps;
  if (dim < 1 || !(eps > 0))
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "%s: dim (%lld) must be >= 1 and eps (%g) > 0", what,
                                       (long long)dim, eps);
  if (!asg__layer_dtype_ok(l, what, o->dtype)) return NULL;
  l->i[0] = dim;
  l->f[1] = eps;
  if (!asg__layer_param(l, "weight", o->dtype, ASG_SHAPE(dim), asg_init_ones(), true)) return NULL;
  if (!rms && !asg__layer_param(l, "bias", o->dtype, ASG_SHAPE(dim), asg_init_zeros(), true))
    return NULL;
  return l;
}

asg_layer *asg_nn_layernorm_ex(asg_graph *g, const char *name, int64_t dim,
                               const asg_norm_opts *o) {
  return norm_new(g, name, dim, o, false);
}

asg_layer *asg_nn_rmsnorm_ex(asg_graph *g, const char *name, int64_t dim, const asg_norm_opts *o) {
  return norm_new(g, name, dim, o, true);
}

asg_layer *asg_nn_layernorm(asg_graph *g, const char *name, int64_t dim, double eps) {
  asg_norm_opts o = {.eps = eps};
  return norm_new(g, name, dim, &o, false);
}

asg_layer *asg_nn_rmsnorm(asg_graph *g, const char *name, int64_t dim, double eps) {
  asg_norm_opts o = {.eps = eps};
  return norm_new(g, name, dim, &o, true);
}
