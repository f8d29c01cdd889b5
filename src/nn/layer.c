/* Layer base: construction, parameter registration, apply under the
 * layer's name scope; activation and sequential containers. */
#include <stdio.h>
#include <string.h>

#include "nn/layer.h"

asg_layer *asg__layer_new(asg_graph *g, const char *name, asg_layer_fn apply) {
  if (!g) return NULL;
  if (asg_graph_status(g) != ASG_OK) return NULL;
  if (!name || !name[0])
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, "layer", "a name is required");
  asg_layer *l = asg_graph_alloc(g, sizeof *l);
  char *n = asg_graph_alloc(g, strlen(name) + 1);
  if (!l || !n) return NULL;
  strcpy(n, name);
  l->g = g;
  l->name = n;
  l->apply = apply;
  return l;
}

asg_tensor *asg__layer_param(asg_layer *l, const char *short_name, asg_dtype dt, asg_shape shape,
                             asg_init init, bool trainable) {
  char full[512];
  if (!l) return NULL;
  if (l->n_params >= ASG_LAYER_MAX_PARAMS)
    return asg_graph_fail(l->g, ASG_ERR_INVALID, l->name, "too many parameters");
  snprintf(full, sizeof full, "%s.%s", l->name, short_name);
  asg_tensor *v = asg_variable(l->g, full, dt, shape, init);
  if (!v) return NULL;
  if (!trainable) asg_variable_set_trainable(v, false);
  l->pname[l->n_params] = short_name;
  l->param[l->n_params++] = v;
  return v;
}

bool asg__layer_dtype_ok(asg_layer *l, const char *what, asg_dtype dt) {
  if (dt == ASG_F32 || dt == ASG_F64) return true;
  /* f16/bf16 are storage types (files, GPU matmul operands): no op computes
   * in them, and variables cannot be initialized in them */
  asg_graph_fail(l->g, ASG_ERR_DTYPE, l->name,
                 "%s: parameters must be f32 or f64, got %s (f16/bf16 weights load into f32 "
                 "variables; save them as F16/BF16 with asg_safetensors_write_as)",
                 what, asg_dtype_name(dt));
  return false;
}

uint64_t asg__layer_seed(const asg_layer *l) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char *s = l->name; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h ? h : 1;
}

asg_tensor *asg_layer_apply_masked(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  if (!l || !x) return NULL; /* a failed constructor or input: the graph has the error */
  asg_scope_push(l->g, l->name);
  asg_tensor *y = l->apply(l, x, mask);
  asg_scope_pop(l->g);
  return y;
}

asg_tensor *asg_layer_apply(asg_layer *l, asg_tensor *x) {
  return asg_layer_apply_masked(l, x, NULL);
}

asg_tensor *asg_layer_param(const asg_layer *l, const char *short_name) {
  if (!l || !short_name) return NULL;
  for (int i = 0; i < l->n_params; i++)
    if (strcmp(l->pname[i], short_name) == 0) return l->param[i];
  return NULL;
}

const char *asg_layer_name(const asg_layer *l) { return l ? l->name : NULL; }

/* ---- activation (i[0] = asg_activation) ---- */
static asg_tensor *activation_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  switch ((asg_activation)l->i[0]) {
  case ASG_ACT_RELU: return asg_relu(x);
  case ASG_ACT_GELU: return asg_gelu(x);
  case ASG_ACT_GELU_TANH: return asg_gelu_tanh(x);
  case ASG_ACT_TANH: return asg_tanh(x);
  case ASG_ACT_SIGMOID: return asg_sigmoid(x);
  case ASG_ACT_SILU: return asg_silu(x);
  case ASG_ACT_IDENTITY: return x;
  }
  return x;
}

asg_layer *asg_nn_activation(asg_graph *g, const char *name, asg_activation act) {
  asg_layer *l = asg__layer_new(g, name, activation_apply);
  if (l) l->i[0] = act;
  return l;
}

/* ---- sequential ---- */
static asg_tensor *sequential_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  for (int i = 0; i < l->n_children && x; i++) {
    /* children keep their own scopes, not nested under the container */
    asg_scope_pop(l->g);
    x = asg_layer_apply_masked(l->children[i], x, mask);
    asg_scope_push(l->g, l->name);
  }
  return x;
}

asg_layer *asg_nn_sequential(asg_graph *g, const char *name, int n, asg_layer *const *layers) {
  asg_layer *l = asg__layer_new(g, name, sequential_apply);
  if (!l) return NULL;
  l->children = asg_graph_alloc(g, sizeof(asg_layer *) * (size_t)(n > 0 ? n : 1));
  if (!l->children) return NULL;
  for (int i = 0; i < n; i++) {
    if (!layers[i]) return NULL; /* a failed layer constructor: the graph has the error */
    l->children[l->n_children++] = layers[i];
  }
  return l;
}
