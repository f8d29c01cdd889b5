/* Parameter-free layers: dropout, pools, flatten.
 * dropout: f[0] = p, i[0] = applications so far (each gets its own mask).
 * max/avg pool: extra = asg_pool_params. adaptive pool: i[0], i[1] = out h, w.
 * flatten: i[0] = start axis. */
#include "nn/layer.h"

static asg_tensor *dropout_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  if (!asg_graph_is_training(l->g) || l->f[0] == 0) return x;
  /* a layer applied twice in one graph must not reuse the same mask */
  uint64_t seed = asg__layer_seed(l) + 0x9e3779b97f4a7c15ull * (uint64_t)l->i[0]++;
  return asg_dropout(x, l->f[0], seed);
}

asg_layer *asg_nn_dropout(asg_graph *g, const char *name, double p) {
  asg_layer *l = asg__layer_new(g, name, dropout_apply);
  if (!l) return NULL;
  if (!(p >= 0 && p < 1))
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "dropout: p must be in [0, 1), got %g", p);
  l->f[0] = p;
  return l;
}

static asg_tensor *pool_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  const asg_pool_params *p = l->extra;
  return l->i[0] ? asg_max_pool2d(x, *p) : asg_avg_pool2d(x, *p);
}

static asg_layer *pool_new(asg_graph *g, const char *name, asg_pool_params p, bool max) {
  asg_layer *l = asg__layer_new(g, name, pool_apply);
  if (!l) return NULL;
  asg_pool_params *pp = asg_graph_alloc(g, sizeof *pp);
  if (!pp) return NULL;
  *pp = p; /* the op checks the geometry when applied */
  l->extra = pp;
  l->i[0] = max;
  return l;
}

asg_layer *asg_nn_maxpool2d(asg_graph *g, const char *name, asg_pool_params p) {
  return pool_new(g, name, p, true);
}

asg_layer *asg_nn_avgpool2d(asg_graph *g, const char *name, asg_pool_params p) {
  return pool_new(g, name, p, false);
}

static asg_tensor *adaptive_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  return asg_adaptive_avg_pool2d(x, (int)l->i[0], (int)l->i[1]);
}

asg_layer *asg_nn_adaptive_avgpool2d(asg_graph *g, const char *name, int oh, int ow) {
  asg_layer *l = asg__layer_new(g, name, adaptive_apply);
  if (!l) return NULL;
  if (oh < 1 || ow < 1)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "adaptive_avgpool2d: output size (%d, %d) must be >= 1", oh,
                                       ow);
  l->i[0] = oh;
  l->i[1] = ow;
  return l;
}

/* Upsampling and padding layers: the ops (asg/ops.h) with fixed settings,
 * kept by value in the graph's arena; the ops check them when applied. */
static asg_tensor *upsample_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  return asg_upsample(x, *(const asg_upsample_params *)l->extra);
}

asg_layer *asg_nn_upsample(asg_graph *g, const char *name, asg_upsample_params p) {
  asg_layer *l = asg__layer_new(g, name, upsample_apply);
  asg_upsample_params *pp = l ? asg_graph_alloc(g, sizeof *pp) : NULL;
  if (!pp) return NULL;
  *pp = p;
  l->extra = pp;
  return l;
}

typedef struct pad_settings {
  int64_t pads[2 * ASG_MAX_DIMS];
  int n;
  asg_pad_mode mode;
  double value;
} pad_settings;

static asg_tensor *pad_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  const pad_settings *p = l->extra;
  return asg_pad(x, p->pads, p->n, p->mode, p->value);
}

asg_layer *asg_nn_pad(asg_graph *g, const char *name, const int64_t *pads, int n, asg_pad_mode mode,
                      double value) {
  asg_layer *l = asg__layer_new(g, name, pad_apply);
  if (!l) return NULL;
  if (n < 0 || n > 2 * ASG_MAX_DIMS || (n > 0 && !pads))
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "pad: %d pad values (at most %d, and pads given)", n,
                                       2 * ASG_MAX_DIMS);
  pad_settings *p = asg_graph_alloc(g, sizeof *p);
  if (!p) return NULL;
  for (int i = 0; i < n; i++)
    p->pads[i] = pads[i];
  p->n = n, p->mode = mode, p->value = value;
  l->extra = p;
  return l;
}

static asg_tensor *flatten_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  return asg_flatten(x, (int)l->i[0]);
}

asg_layer *asg_nn_flatten(asg_graph *g, const char *name, int start_axis) {
  asg_layer *l = asg__layer_new(g, name, flatten_apply);
  if (l) l->i[0] = start_axis;
  return l;
}
