/* The layer base shared by every layer file in src/nn. Layers use only the
 * public API (plus this struct). */
#ifndef ASG_NN_LAYER_H
#define ASG_NN_LAYER_H

#include "asg/nn.h"

/* 64: an LSTM/GRU registers 4 per layer and direction (8 bidirectional layers) */
#define ASG_LAYER_MAX_PARAMS 64

typedef asg_tensor *(*asg_layer_fn)(asg_layer *l, asg_tensor *x, asg_tensor *mask);

struct asg_layer {
  asg_graph *g;
  const char *name;
  asg_layer_fn apply;
  int n_params;
  const char *pname[ASG_LAYER_MAX_PARAMS]; /* short names: "weight" */
  asg_tensor *param[ASG_LAYER_MAX_PARAMS];
  int n_children;
  asg_layer **children;
  double f[8]; /* per-layer settings, documented by each layer */
  int64_t i[8];
  void *extra; /* per-layer data in graph memory */
};

/* Allocates a layer in graph memory with a copy of name; NULL (graph
 * error set) if name is NULL/empty or memory runs out. */
asg_layer *asg__layer_new(asg_graph *g, const char *name, asg_layer_fn apply);
/* Registers variable "<layer>.<short>" and returns it. */
asg_tensor *asg__layer_param(asg_layer *l, const char *short_name, asg_dtype dt, asg_shape shape,
                             asg_init init, bool trainable);
/* True for parameter dtypes the ops compute in (f32, f64); otherwise fails
 * the graph naming the layer (what: "conv2d") and the dtype. */
bool asg__layer_dtype_ok(asg_layer *l, const char *what, asg_dtype dt);
/* Stable 64-bit seed for a layer's random ops, from its name. */
uint64_t asg__layer_seed(const asg_layer *l);

#endif
