/* The compile-time fusion pass (see passes.h): finds each rule's pattern,
 * with an optional activation after it, and swaps fused nodes into a copy of
 * the node table.
 *
 * Why the node table is swapped rather than the graph rewritten: ids are
 * the schedule (creation order) and the user's graph must stay as built
 * (it may be differentiated, exported or compiled again with no_fusion),
 * so a fused node takes the id of the node it replaces (the add or the
 * relu) and lives only in the table compile reads. The nodes between are
 * then read by nothing and compile drops them. */
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

struct asg_fusion {
  asg_tensor **saved; /* the graph's own node table, restored by asg__fuse_end */
  asg_tensor **nodes; /* the table compile reads */
  asg_tensor **made;  /* fused nodes (each owns its in[]) */
  int n_made;
};

/* Whether the rule's environment switch (e.g. ASG_FUSE_CONV) is not "0". */
static bool rule_on(const char *env) {
  const char *e = getenv(env);
  return !(e && !strcmp(e, "0"));
}

/* The fused node of m standing in for `at`. */
static asg_tensor *fused(const asg_tensor *at, const asg_fuse_match *m, int act) {
  asg_tensor *f = malloc(sizeof *f);
  asg_tensor **in = malloc(sizeof *in * (size_t)m->n_in);
  if (!f || !in) {
    free(f), free(in);
    return NULL;
  }
  *f = *at;                  /* id, graph, shape and dtype of the replaced node */
  f->scope = m->main->scope; /* a profile counts the fused step where the product is */
  f->op = m->op;
  f->n_in = m->n_in;
  memcpy(in, m->in, sizeof *in * (size_t)m->n_in);
  f->in = in;
  f->attr = m->attr;
  f->attr.i[m->act_attr] = act;
  return f;
}

/* Puts fz in the table compile reads at fz's id (made a copy of g's on the first call). */
static bool swap_in(asg_fusion *f, const asg_graph *g, asg_tensor *fz) {
  const int N = g->n_nodes;
  if (!f->nodes) {
    f->nodes = malloc(sizeof *f->nodes * ((size_t)g->cap_nodes + 1));
    f->made = malloc(sizeof *f->made * (2 * (size_t)N + 1));
    if (!f->nodes || !f->made) {
      free(f->nodes), free(f->made);
      f->nodes = NULL, f->made = NULL;
      return false;
    }
    memcpy(f->nodes, g->nodes, sizeof *f->nodes * (size_t)N);
  }
  f->made[f->n_made++] = fz;
  f->nodes[fz->id] = fz;
  return true;
}

/* The aux node standing in for stat as further output `slot` of fwd's step:
 * stat's op, attributes and inputs after fwd (ops.def). */
static asg_tensor *aux_of(const asg_tensor *stat, asg_tensor *fwd, int slot) {
  asg_tensor *x = malloc(sizeof *x);
  asg_tensor **in = malloc(sizeof *in * ((size_t)stat->n_in + 1));
  if (!x || !in) {
    free(x), free(in);
    return NULL;
  }
  *x = *stat; /* id, graph, shape, dtype, scope and attributes of the replaced node */
  x->op = ASG_OP_AUX;
  x->n_in = stat->n_in + 1;
  in[0] = fwd;
  memcpy(in + 1, stat->in, sizeof *in * (size_t)stat->n_in);
  x->in = in;
  x->attr.i[ASG_AUX_OP] = stat->op;
  x->attr.i[ASG_AUX_SLOT] = slot;
  return x;
}

asg_status asg__fuse_begin(asg_graph *g, int n_out, asg_tensor *const *outs, asg_fusion **out) {
  *out = NULL;
  const bool conv = rule_on("ASG_FUSE_CONV"), linear = rule_on("ASG_FUSE_LINEAR");
  const bool residual = linear && rule_on("ASG_FUSE_RESIDUAL"), stats = rule_on("ASG_FUSE_STATS");
  const bool rowdot = rule_on("ASG_FUSE_ROWDOT");
  if (!conv && !linear && !stats && !rowdot) return ASG_OK;
  const int N = g->n_nodes;
  asg_fuse_view v = {g, calloc((size_t)N + 1, sizeof(int)), malloc(sizeof(int) * ((size_t)N + 1))};
  asg_fusion *f = calloc(1, sizeof *f);
  int *readers = v.readers, *reader = v.reader;
  if (!readers || !reader || !f) goto oom;
  for (int i = 0; i < N; i++)
    for (int k = 0; k < g->nodes[i]->n_in; k++) {
      const int j = g->nodes[i]->in[k]->id;
      readers[j]++, reader[j] = i;
    }
  for (int i = 0; i < n_out; i++)
    readers[outs[i]->id] += 2; /* an output is read from outside: never fused away */
  for (int i = 0; i < N && (conv || linear); i++) {
    asg_tensor *add = g->nodes[i];
    asg_fuse_match m;
    if (f->nodes && f->nodes[i] != add) continue; /* replaced by an earlier fusion */
    if (add->op != ASG_OP_ADD || (add->dtype != ASG_F32 && add->dtype != ASG_F64)) continue;
    if (!(conv && asg__fuse_conv_match(&v, add, &m)) &&
        !(linear && asg__fuse_linear_match(&v, add, &m)))
      continue;
    if (m.no_act && !residual) continue;
    asg_tensor *at = add; /* the node the fused one replaces */
    int act = 0;
    const asg_op next =
        readers[add->id] == 1 && !m.no_act ? g->nodes[reader[add->id]]->op : ASG_OP_INPUT;
    if (next == ASG_OP_RELU || (next == ASG_OP_GELU_TANH && m.gelu_tanh)) {
      at = g->nodes[reader[add->id]];
      act = next == ASG_OP_RELU ? 1 : 2;
    }
    if (residual && act == 0 && m.op == ASG_OP_MATMUL_BIAS_ACT && next == ASG_OP_ADD) {
      /* y = (a w + b) + r, r of y's shape: the residual stream of a
       * transformer block after its projection (input 3) */
      asg_tensor *ra = g->nodes[reader[add->id]];
      asg_tensor *r = ra->in[0] == add ? ra->in[1] : ra->in[0];
      /* the residual add made right after (as fuse_linear.c's residual form) */
      if (ra->id == add->id + 1 && r != add && r->dtype == add->dtype &&
          asg_shape_equal(r->shape, add->shape)) {
        at = ra;
        m.in[m.n_in++] = r;
      }
    }
    asg_tensor *fz = fused(at, &m, act);
    if (!fz) goto oom;
    if (!swap_in(f, g, fz)) {
      free(fz->in), free(fz);
      goto oom;
    }
  }
  for (int i = 0; i < N && rowdot; i++) {
    asg_tensor *sum = g->nodes[i];
    asg_fuse_match m;
    if ((f->nodes && f->nodes[i] != sum) || !asg__fuse_rowdot_match(&v, sum, &m)) continue;
    asg_tensor *fz = fused(sum, &m, 0);
    if (!fz) goto oom;
    if (!swap_in(f, g, fz)) {
      free(fz->in), free(fz);
      goto oom;
    }
  }
  if (stats) {
    unsigned char *used = calloc((size_t)N + 1, 1);
    if (!used) goto oom;
    for (int i = 0; i < N; i++) {
      const asg_tensor *t = g->nodes[i];
      asg_tensor *host;
      int slot;
      if ((f->nodes && f->nodes[i] != t) || !(host = asg__fuse_stats_match(&v, t, used, &slot)))
        continue;
      asg_tensor *x = aux_of(t, host, slot);
      if (!x || !swap_in(f, g, x)) {
        if (x) free(x->in), free(x);
        free(used);
        goto oom;
      }
      used[host->id] |= (unsigned char)(1u << slot);
    }
    free(used);
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
