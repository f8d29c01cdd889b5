/* Graph copies for symbolic programs: a private symbolic copy, and static
 * specializations with every symbolic dim evaluated under a binding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checks.h"
#include "core/specialize.h"
#include "core/symbol.h"

/* Bytes of a leaf's data (constants and data-initialized variables have
 * constant shapes). */
static size_t leaf_bytes(const asg_tensor *t) {
  int64_t n = asg_shape_numel(t->shape);
  return n > 0 ? (size_t)n * asg_dtype_size(t->dtype) : 0;
}

static void *arena_copy(asg_graph *g, const void *src, size_t bytes) {
  void *d = asg__arena_alloc(&g->arena, bytes ? bytes : 1);
  if (d && bytes) memcpy(d, src, bytes);
  return d;
}

/* The deep parts of a node of the symbolic copy: strings and data. */
static bool own_pointers(asg_graph *c, asg_tensor *t) {
  if (t->name && !(t->name = asg__arena_strdup(&c->arena, t->name))) return false;
  if (t->scope && !(t->scope = asg__arena_strdup(&c->arena, t->scope))) return false;
  if (t->data && !(t->data = arena_copy(c, t->data, leaf_bytes(t)))) return false;
  if (t->op == ASG_OP_VARIABLE && t->init.kind == ASG_INIT_DATA && t->init.data &&
      !(t->init.data = arena_copy(c, t->init.data, leaf_bytes(t))))
    return false;
  return true;
}

/* Evaluates t's shape and dim attributes under values. */
static asg_status eval_node(const asg_graph *g, asg_tensor *t, const int64_t *values, bool needed) {
  asg_status st = ASG_OK;
  asg_shape s = asg__shape_eval(g, t->shape, values, &st);
  char why[96];
  if (!st && needed && !asg__shape_check(s, asg_dtype_size(t->dtype), NULL, why, sizeof why))
    st = asg__error(ASG_ERR_SHAPE, "%s", why); /* sizes that static graphs reject while building */
  if (st && needed) return st;
  t->shape = st ? ASG_SCALAR : s;
  uint32_t mask = asg__op_dim_attrs(t->op);
  for (int j = 0; mask && j < 16; j++) {
    if (!(mask & (1u << j)) || !asg__dim_is_sym(t->attr.i[j])) continue;
    int64_t v = asg__dim_eval(g, t->attr.i[j], values);
    if (v < 0 && needed) return ASG_ERR_SHAPE;
    t->attr.i[j] = v < 0 ? 0 : v;
    if (t->op == ASG_OP_FILL && j == 0) /* asg__dim_ratio: (a v + b) / (c v + e) */
      t->attr.f[0] = (double)(t->attr.i[1] * t->attr.i[0] + t->attr.i[2]) /
                     (double)(t->attr.i[3] * t->attr.i[0] + t->attr.i[4]);
  }
  return ASG_OK;
}

asg_graph *asg__graph_specialize(const asg_graph *g, const int64_t *values, const char *need,
                                 asg_status *status) {
  asg_graph *c = asg_graph_new();
  *status = ASG_ERR_OOM;
  if (!c) return NULL;
  c->seed = g->seed;
  c->eval_mode = g->eval_mode;
  asg_status st = ASG_OK;
  c->nodes = malloc(sizeof *c->nodes * ((size_t)g->n_nodes + 1));
  c->updates = malloc(sizeof *c->updates * ((size_t)g->n_updates + 1));
  if (!c->nodes || !c->updates) goto oom;
  c->cap_nodes = g->n_nodes + 1;
  c->cap_updates = g->n_updates + 1;
  if (!values && (st = asg__sym_copy(c, g)) != ASG_OK) goto fail;
  for (int i = 0; i < g->n_nodes; i++) {
    const asg_tensor *src = g->nodes[i];
    asg_tensor *t = asg__arena_alloc(&c->arena, sizeof *t);
    asg_tensor **in =
        src->n_in ? asg__arena_alloc(&c->arena, sizeof *in * (size_t)src->n_in) : NULL;
    if (!t || (src->n_in && !in)) goto oom;
    *t = *src;
    t->graph = c;
    t->in = in;
    for (int k = 0; k < src->n_in; k++)
      in[k] = c->nodes[src->in[k]->id]; /* inputs come first: ids are a topological order */
    if (!values && !own_pointers(c, t)) goto oom;
    if (values && (st = eval_node(g, t, values, !need || need[i])) != ASG_OK) {
      char buf[160], why[512];
      snprintf(why, sizeof why, "%s", asg_last_error());
      st = asg__error(st, "specialize: %s%s%s: shape %s does not evaluate under the binding: %s",
                      src->scope, src->scope[0] ? "/" : "", asg__op_name(src->op),
                      asg__shape_str_g(g, src->shape, buf, sizeof buf), why);
      goto fail;
    }
    c->nodes[c->n_nodes++] = t;
  }
  for (int i = 0; i < g->n_updates; i++)
    c->updates[c->n_updates++] = c->nodes[g->updates[i]->id];
  *status = ASG_OK;
  return c;
oom:
  st = asg__error(ASG_ERR_OOM, "specialize: out of memory");
fail:
  *status = st;
  asg_graph_free(c);
  return NULL;
}
