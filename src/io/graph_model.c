/* The view of a graph that both exports draw: parts and drawing scopes. */
#include <stdio.h>

#include "io/viz_internal.h"

const char *asg__viz_part_name(asg__viz_part p) {
  static const char *names[] = {"forward", "backward", "optimizer",
                                "input",   "variable", "constant"};
  return names[p];
}

const char *asg__viz_label(const asg_tensor *t) {
  return t->name && t->name[0] ? t->name : asg__op_name(t->op);
}

static bool is_optim_scope(const char *s) {
  return strncmp(s, "optim", 5) == 0 && (s[5] == '\0' || s[5] == '/');
}

static asg__viz_part part_of(const asg_tensor *t) {
  const unsigned fl = asg__op_info[t->op].flags;
  if (t->op == ASG_OP_INPUT) return ASG_VIZ_INPUT;
  if (t->op == ASG_OP_VARIABLE)
    return t->name && strncmp(t->name, "optim/", 6) == 0 ? ASG_VIZ_OPT : ASG_VIZ_VAR;
  if (fl & ASG_OPF_SOURCE) return t->grad_of ? ASG_VIZ_BWD : ASG_VIZ_CONST;
  if (is_optim_scope(t->scope) || t->op == ASG_OP_ASSIGN || t->op == ASG_OP_ADAM_MOMENT ||
      t->op == ASG_OP_ADAM_MOMENT2 || t->op == ASG_OP_ADAM_PARAM)
    return ASG_VIZ_OPT;
  if (t->grad_of || (fl & ASG_OPF_BWD)) return ASG_VIZ_BWD;
  return ASG_VIZ_FWD;
}

/* "prefix/anchor" (or "prefix" when anchor is empty), malloc'ed. */
static char *join(const char *prefix, const char *anchor) {
  size_t a = strlen(prefix), b = strlen(anchor);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  memcpy(s, prefix, a);
  s[a] = '\0';
  if (b) {
    s[a] = '/';
    memcpy(s + a + 1, anchor, b + 1);
  }
  return s;
}

asg_status asg__viz_model_build(const asg_graph *g, asg__viz_model *m) {
  const int n = g->n_nodes;
  *m = (asg__viz_model){0};
  m->part = calloc((size_t)n + 1, sizeof *m->part);
  m->scope = calloc((size_t)n + 1, sizeof *m->scope);
  /* anchor: the forward scope a node belongs with (borrowed strings) */
  const char **anchor = calloc((size_t)n + 1, sizeof *anchor);
  if (!m->part || !m->scope || !anchor) goto oom;
  m->n = n;
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[i];
    m->part[i] = part_of(t);
    anchor[i] = t->scope;
  }
  /* a layer's variables are made outside its scope: draw them in the scope
   * of their first forward user */
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[i];
    if (m->part[i] != ASG_VIZ_FWD || !t->scope[0]) continue;
    for (int k = 0; k < t->n_in; k++) {
      const asg_tensor *in = t->in[k];
      if (in->op == ASG_OP_VARIABLE && m->part[in->id] == ASG_VIZ_VAR &&
          anchor[in->id] == in->scope && !in->scope[0])
        anchor[in->id] = t->scope;
    }
  }
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[i];
    const asg__viz_part p = m->part[i];
    if (t->grad_of) { /* drawn with the node whose gradient it computes */
      const asg_tensor *f = g->nodes[t->grad_of - 1];
      anchor[i] = f->grad_of ? anchor[f->id] : f->scope;
      m->scope[i] = join("grad", anchor[i]);
    } else if (p == ASG_VIZ_OPT && !strcmp(t->scope, "optim") && t->op != ASG_OP_VARIABLE) {
      /* with the parameter it updates: the first input anchored elsewhere */
      const char *a = NULL;
      for (int k = 0; k < t->n_in && !a; k++) {
        const char *b = anchor[t->in[k]->id];
        if (b[0] && !is_optim_scope(b)) a = b;
      }
      for (int k = 0; k < t->n_in && !a; k++)
        if (m->part[t->in[k]->id] == ASG_VIZ_OPT && strcmp(anchor[t->in[k]->id], "optim"))
          a = anchor[t->in[k]->id];
      anchor[i] = a ? a : "optim";
      m->scope[i] = is_optim_scope(anchor[i]) ? asg__strdup(anchor[i]) : join("optim", anchor[i]);
    } else if (p == ASG_VIZ_OPT && t->op == ASG_OP_VARIABLE && t->scope[0]) {
      m->scope[i] = asg__strdup(t->scope);
    } else {
      m->scope[i] = asg__strdup(anchor[i]);
    }
    if (!m->scope[i]) goto oom;
  }
  /* optimizer state (made in the "optim" scope) goes with its first update */
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[i];
    if (m->part[i] != ASG_VIZ_OPT || t->op == ASG_OP_VARIABLE) continue;
    for (int k = 0; k < t->n_in; k++) {
      const asg_tensor *in = t->in[k];
      if (in->op != ASG_OP_VARIABLE || strcmp(m->scope[in->id], "optim") ||
          !strcmp(m->scope[i], "optim"))
        continue;
      char *s = asg__strdup(m->scope[i]);
      if (!s) goto oom;
      free(m->scope[in->id]);
      m->scope[in->id] = s;
    }
  }
  free(anchor);
  return ASG_OK;
oom:
  free(anchor);
  asg__viz_model_free(m);
  return asg__error(ASG_ERR_OOM, "graph export: out of memory");
}

void asg__viz_model_free(asg__viz_model *m) {
  for (int i = 0; m->scope && i < m->n; i++)
    free(m->scope[i]);
  free(m->scope);
  free(m->part);
  *m = (asg__viz_model){0};
}

asg_status asg__viz_check_graph(const asg_graph *g, const char *path, const char *fn) {
  if (!g || g->magic != ASG_GRAPH_MAGIC)
    return asg__error(ASG_ERR_INVALID, "%s: the graph is NULL or not a graph", fn);
  if (!path || !path[0]) return asg__error(ASG_ERR_INVALID, "%s: no output path given", fn);
  return ASG_OK;
}

asg_status asg__viz_write_file(const char *path, const asg_sbuf *b, const char *fn) {
  if (b->oom) return asg__error(ASG_ERR_OOM, "%s: out of memory writing %s", fn, path);
  FILE *f = fopen(path, "wb");
  if (!f) return asg__error(ASG_ERR_IO, "%s: cannot create %s", fn, path);
  size_t w = b->len ? fwrite(b->s, 1, b->len, f) : 0;
  int rc = fclose(f);
  if (w != b->len || rc != 0) return asg__error(ASG_ERR_IO, "%s: cannot write %s", fn, path);
  return ASG_OK;
}
