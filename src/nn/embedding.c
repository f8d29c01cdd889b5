/* Embedding: weight [num, dim] ~ N(0, 1) (PyTorch default), f32 or f64;
 * apply takes integer indices [...] and returns [..., dim] of its dtype. Settings: i[0] = num,
 * i[1] = dim. Out-of-range indices fail the run (asg_embedding). */
#include "nn/layer.h"

static asg_tensor *embedding_apply(asg_layer *l, asg_tensor *idx, asg_tensor *mask) {
  (void)mask;
  char b1[64];
  asg_dtype dt = asg_tensor_dtype(idx);
  if (dt != ASG_I32 && dt != ASG_I64)
    return asg_graph_fail(l->g, ASG_ERR_DTYPE, "embedding", "indices %s must be i32 or i64, got %s",
                          asg_shape_str(asg_tensor_shape(idx), b1, sizeof b1), asg_dtype_name(dt));
  return asg_embedding(asg_layer_param(l, "weight"), idx);
}

asg_layer *asg_nn_embedding_ex(asg_graph *g, const char *name, int64_t num, int64_t dim,
                               const asg_embedding_opts *o) {
  asg_embedding_opts d = {0};
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, embedding_apply);
  if (!l) return NULL;
  if (num < 1 || dim < 1)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "embedding: num (%lld) and dim (%lld) must be >= 1",
                                       (long long)num, (long long)dim);
  if (!asg__layer_dtype_ok(l, "embedding", o->dtype)) return NULL;
  l->i[0] = num;
  l->i[1] = dim;
  if (!asg__layer_param(l, "weight", o->dtype, ASG_SHAPE(num, dim), asg_init_normal(0, 1), true))
    return NULL;
  return l;
}

asg_layer *asg_nn_embedding(asg_graph *g, const char *name, int64_t num, int64_t dim) {
  return asg_nn_embedding_ex(g, name, num, dim, NULL);
}
