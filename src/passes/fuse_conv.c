/* Fusion of a convolution with its bias and ReLU (see passes.h).
 *
 *   y = relu(conv2d(x, w) + reshape(b [O], [1,O,1,1]))  ->  conv2d_bias_act(x, w, b), act 1
 *   y = conv2d(x, w) + reshape(b [O], [1,O,1,1])        ->  conv2d_bias_act(x, w, b), act 0
 *
 * That is the graph asg_conv2d(x, w, bias) and the ONNX importer's Conv
 * build, and the ReLU most CNNs put after it. Unfused, each is a pass over
 * the whole activation; fused, a backend adds the bias and clamps while the
 * convolution's output is still in cache or registers.
 *
 * Why the node table is swapped rather than the graph rewritten: ids are
 * the schedule (creation order) and the user's graph must stay as built
 * (it may be differentiated, exported or compiled again with no_fusion),
 * so the fused node takes the id of the node it replaces (the add or the
 * relu) and lives only in the table compile reads. The nodes between (the
 * conv2d, the add) are then read by nothing and compile drops them. */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

struct asg_fusion {
  asg_tensor **saved; /* the graph's own node table, restored by asg__fuse_end */
  asg_tensor **nodes; /* the table compile reads */
  asg_tensor **made;  /* fused nodes (each owns its in[]) */
  int n_made;
};

/* The [O] bias of a per-channel add operand: reshape(b [O]) -> [1,O,1,1]. */
static asg_tensor *channel_bias(const asg_tensor *t, const asg_tensor *conv) {
  if (t->op != ASG_OP_RESHAPE || t->shape.ndim != 4) return NULL;
  const int64_t O = conv->shape.dims[1];
  const asg_shape want = ASG_SHAPE(1, O, 1, 1);
  asg_tensor *b = t->in[0];
  if (!asg_shape_equal(t->shape, want) || b->shape.ndim != 1 || b->shape.dims[0] != O) return NULL;
  return b->dtype == conv->dtype ? b : NULL;
}

/* A fused node standing in for `at`, reading x, w and b. */
static asg_tensor *fused(const asg_tensor *at, const asg_tensor *conv, asg_tensor *b, int act) {
  asg_tensor *f = malloc(sizeof *f);
  asg_tensor **in = malloc(sizeof *in * 3);
  if (!f || !in) {
    free(f), free(in);
    return NULL;
  }
  *f = *at; /* id, graph, scope, shape and dtype of the replaced node */
  f->op = ASG_OP_CONV2D_BIAS_ACT;
  f->n_in = 3;
  in[0] = conv->in[0], in[1] = conv->in[1], in[2] = b;
  f->in = in;
  f->attr = conv->attr;
  f->attr.i[9] = act;
  return f;
}

asg_status asg__fuse_begin(asg_graph *g, int n_out, asg_tensor *const *outs, asg_fusion **out) {
  *out = NULL;
  const char *env = getenv("ASG_FUSE_CONV"); /* "0": this pass off in every program */
  if (env && !strcmp(env, "0")) return ASG_OK;
  const int N = g->n_nodes;
  /* readers[i]: how many nodes and outputs read node i; reader[i]: one of them */
  int *readers = calloc((size_t)N + 1, sizeof *readers);
  int *reader = malloc(sizeof *reader * ((size_t)N + 1));
  asg_fusion *f = calloc(1, sizeof *f);
  if (!readers || !reader || !f) goto oom;
  for (int i = 0; i < N; i++)
    for (int k = 0; k < g->nodes[i]->n_in; k++) {
      const int j = g->nodes[i]->in[k]->id;
      readers[j]++, reader[j] = i;
    }
  for (int i = 0; i < n_out; i++)
    readers[outs[i]->id] += 2; /* an output is read from outside: never fused away */
  for (int i = 0; i < N; i++) {
    asg_tensor *add = g->nodes[i];
    if (add->op != ASG_OP_ADD || (add->dtype != ASG_F32 && add->dtype != ASG_F64)) continue;
    asg_tensor *conv = add->in[0], *b = NULL;
    if (conv->op == ASG_OP_CONV2D) b = channel_bias(add->in[1], conv);
    if (!b && add->in[1]->op == ASG_OP_CONV2D) {
      conv = add->in[1];
      b = channel_bias(add->in[0], conv);
    }
    if (!b || readers[conv->id] != 1 || !asg_shape_equal(add->shape, conv->shape)) continue;
    asg_tensor *at = add; /* the node the fused one replaces */
    int act = 0;
    if (readers[add->id] == 1 && g->nodes[reader[add->id]]->op == ASG_OP_RELU) {
      at = g->nodes[reader[add->id]];
      act = 1;
    }
    if (!f->nodes) { /* the first fusion: the table compile reads becomes a copy */
      f->nodes = malloc(sizeof *f->nodes * ((size_t)g->cap_nodes + 1));
      f->made = malloc(sizeof *f->made * ((size_t)N + 1));
      if (!f->nodes || !f->made) goto oom;
      memcpy(f->nodes, g->nodes, sizeof *f->nodes * (size_t)N);
    }
    asg_tensor *fz = fused(at, conv, b, act);
    if (!fz) goto oom;
    f->made[f->n_made++] = fz;
    f->nodes[at->id] = fz;
  }
  free(readers), free(reader);
  if (!f->n_made) {
    asg__fuse_end(g, f);
    return ASG_OK;
  }
  f->saved = g->nodes;
  g->nodes = f->nodes;
  *out = f;
  return ASG_OK;
oom:
  free(readers), free(reader);
  asg__fuse_end(g, f);
  return asg__error(ASG_ERR_OOM, "compile: out of memory (fusion pass)");
}

void asg__fuse_end(asg_graph *g, asg_fusion *f) {
  if (!f) return;
  if (f->saved) g->nodes = f->saved;
  for (int i = 0; i < f->n_made; i++) {
    free(f->made[i]->in);
    free(f->made[i]);
  }
  free(f->made), free(f->nodes), free(f);
}
