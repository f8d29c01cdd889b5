/* Linear layer: y = x W^T + b with W [out, in] (PyTorch layout), x [..., in].
 * Settings: i[0] = in features, i[1] = out features. */
#include <math.h>

#include "core/symbol.h"
#include "nn/layer.h"

/* Parameters are cast to the activations' dtype when they differ (e.g. an
 * f32 model run in f64 for a gradient check); the cast is differentiable. */
static asg_tensor *as_dtype(asg_tensor *p, asg_tensor *x) {
  if (!p || asg_tensor_dtype(p) == asg_tensor_dtype(x)) return p;
  return asg_cast(p, asg_tensor_dtype(x));
}

static asg_tensor *linear_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  char b1[96], b2[96], b3[96];
  asg_tensor *w = asg_layer_param(l, "weight"), *b = asg_layer_param(l, "bias");
  asg_shape xs = asg_tensor_shape(x);
  int64_t in = l->i[0], out = l->i[1];
  if (xs.ndim < 1 || xs.dims[xs.ndim - 1] != in)
    return asg_graph_fail(
        l->g, ASG_ERR_SHAPE, "linear", "input %s has %s features, but %s.weight %s expects %lld",
        asg_graph_shape_str(l->g, xs, b1, sizeof b1),
        asg__dim_str(l->g, xs.ndim ? xs.dims[xs.ndim - 1] : 0, b3, sizeof b3), l->name,
        asg_graph_shape_str(l->g, asg_tensor_shape(w), b2, sizeof b2), (long long)in);
  if (!asg_dtype_is_float(asg_tensor_dtype(x)))
    return asg_graph_fail(l->g, ASG_ERR_DTYPE, "linear", "input must be floating point, got %s",
                          asg_dtype_name(asg_tensor_dtype(x)));
  w = as_dtype(w, x);
  b = as_dtype(b, x);
  /* One GEMM over all leading dims: [N, in] x [out, in]^T (reshape is a view),
   * which also keeps the weight gradient a single GEMM. */
  asg_tensor *x2 = xs.ndim == 2 ? x : asg_reshape(x, ASG_SHAPE(-1, in));
  asg_tensor *y = asg_matmul_t(x2, w, false, true);
  if (b) y = asg_add(y, b);
  if (xs.ndim != 2) {
    asg_shape ys = xs;
    ys.dims[ys.ndim - 1] = out;
    y = asg_reshape(y, ys);
  }
  return y;
}

asg_layer *asg_nn_linear_ex(asg_graph *g, const char *name, int64_t in, int64_t out,
                            const asg_linear_opts *o) {
  asg_linear_opts d = {0};
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, linear_apply);
  if (!l) return NULL;
  if (in < 1 || out < 1)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "linear: in (%lld) and out (%lld) features must be >= 1",
                                       (long long)in, (long long)out);
  asg_dtype dt = o->dtype;
  if (!asg__layer_dtype_ok(l, "linear", dt)) return NULL;
  l->i[0] = in;
  l->i[1] = out;
  /* PyTorch: kaiming_uniform(a=sqrt(5)) on W = U(-1/sqrt(in), 1/sqrt(in)); same bound for b */
  double bound = 1.0 / sqrt((double)in);
  asg_init wi = o->init ? *o->init : asg_init_uniform(-bound, bound);
  if (!asg__layer_param(l, "weight", dt, ASG_SHAPE(out, in), wi, true)) return NULL;
  if (!o->no_bias &&
      !asg__layer_param(l, "bias", dt, ASG_SHAPE(out), asg_init_uniform(-bound, bound), true))
    return NULL;
  return l;
}

asg_layer *asg_nn_linear(asg_graph *g, const char *name, int64_t in, int64_t out) {
  return asg_nn_linear_ex(g, name, in, out, NULL);
}
