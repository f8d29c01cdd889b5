/* Rematerialization for gradient checkpointing: scopes marked for
 * recomputation, and the copies of their forward nodes that the backward
 * reads instead of the originals (see passes.h).
 *
 * Why copies rather than a reordering: creation order is the schedule
 * (runtime/compile.c), so a copy made while autograd reaches a scope's
 * nodes runs right before that scope's backward, after the backward of
 * every later scope. The originals are then read only by the forward pass
 * (and by the backward of nodes outside the scope, which read only the
 * scope's outputs), so the memory plan frees them early. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"

/* ---- marks ---- */

/* Whether a node of scope s lies inside marked scope m (m's length n). */
static bool inside(const char *s, const char *m, size_t n) {
  return strncmp(s, m, n) == 0 && (s[n] == '\0' || s[n] == '/' || s[n] == '.');
}

/* The mark of scope (made unmarked if absent), or NULL on OOM. */
static asg_scope_mark *find_mark(asg_graph *g, const char *scope) {
  for (int i = 0; i < g->n_marks; i++)
    if (strcmp(g->marks[i].scope, scope) == 0) return &g->marks[i];
  if (g->n_marks == g->cap_marks) { /* regrown in the arena: marks are few */
    int cap = g->cap_marks ? 2 * g->cap_marks : 16;
    asg_scope_mark *m = asg__arena_alloc(&g->arena, sizeof *m * (size_t)cap);
    if (!m) return NULL;
    if (g->n_marks) memcpy(m, g->marks, sizeof *m * (size_t)g->n_marks);
    g->marks = m;
    g->cap_marks = cap;
  }
  const char *s = asg__arena_strdup(&g->arena, scope);
  if (!s) return NULL;
  g->marks[g->n_marks] = (asg_scope_mark){s, false, false};
  return &g->marks[g->n_marks++];
}

/* Checks what both public calls take; fn names the caller. */
static asg_status check_args(asg_graph *g, const char *scope, const char *fn) {
  if (!g || g->magic != ASG_GRAPH_MAGIC)
    return asg__error(ASG_ERR_INVALID, "%s: graph is NULL or not a graph", fn);
  if (g->status != ASG_OK)
    return asg__error(g->status, "%s: the graph has an error: %s", fn, g->err);
  if (!scope || !scope[0])
    return asg__error(ASG_ERR_INVALID, "%s: scope is %s; give a scope's name (e.g. \"h.3\")", fn,
                      scope ? "\"\"" : "NULL");
  return ASG_OK;
}

/* The first distinct top-level scopes of g's forward nodes (up to 8) in
 * buf, comma-separated, for a message. */
static void top_scopes(const asg_graph *g, char *buf, size_t n) {
  const char *seen[8];
  size_t seen_len[8], at = 0;
  int found = 0;
  buf[0] = '\0';
  for (int i = 0; i < g->n_nodes && found < 8; i++) {
    const char *s = g->nodes[i]->scope;
    if (g->nodes[i]->grad_of || !s[0]) continue;
    const size_t len = strcspn(s, "/");
    bool dup = false;
    for (int k = 0; k < found && !dup; k++)
      dup = seen_len[k] == len && strncmp(seen[k], s, len) == 0;
    if (dup) continue;
    int w = snprintf(buf + at, n - at, "%s%.*s", found ? ", " : "", (int)len, s);
    if (w < 0 || (size_t)w >= n - at) {
      buf[at] = '\0';
      break;
    }
    at += (size_t)w;
    seen[found] = s;
    seen_len[found++] = len;
  }
}

asg_status asg_graph_checkpoint_scope(asg_graph *g, const char *scope) {
  const char *fn = "asg_graph_checkpoint_scope";
  asg_status st = check_args(g, scope, fn);
  if (st) return st;
  const size_t len = strlen(scope);
  bool any = false;
  for (int i = 0; i < g->n_nodes && !any; i++)
    any = inside(g->nodes[i]->scope, scope, len);
  if (!any) {
    char top[256];
    top_scopes(g, top, sizeof top);
    return asg__error(ASG_ERR_NOT_FOUND,
                      "%s: no node of the graph is in scope '%s' (mark a scope after building "
                      "it; top-level scopes: %s)",
                      fn, scope, top[0] ? top : "none");
  }
  asg_scope_mark *m = find_mark(g, scope);
  if (!m) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  m->checkpoint = true;
  return ASG_OK;
}

asg_status asg_graph_declare_block(asg_graph *g, const char *scope) {
  const char *fn = "asg_graph_declare_block";
  asg_status st = check_args(g, scope, fn);
  if (st) return st;
  asg_scope_mark *m = find_mark(g, scope);
  if (!m) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  m->block = true;
  return ASG_OK;
}

bool asg__remat_has_blocks(const asg_graph *g) {
  for (int j = 0; j < g->n_marks; j++)
    if (g->marks[j].block) return true;
  return false;
}

/* ---- the pass ---- */

struct asg_remat {
  asg_graph *g;
  int n;             /* forward nodes: ids < n */
  int *region;       /* per forward node: the index of its (outermost) mark, -1: none */
  asg_tensor **copy; /* per forward node: its recomputed copy, once made */
  int *stack, *list; /* scratch of one closure */
  char *seen;
  asg_tensor **ins;                  /* scratch: the inputs of one copy */
  const char *src_scope, *dst_scope; /* the last copy's scopes ("x" -> "x/remat") */
};

/* Leaves (inputs, variables, constants, fills) are not recomputed: they are
 * kept anyway. Nor are assigns (side effects) and collectives (every rank
 * would have to run the copy). Random sources are: same seed, same draws. */
static bool recomputable(const asg_tensor *t) {
  const unsigned fl = asg__op_info[t->op].flags;
  if (fl & (ASG_OPF_ASSIGN | ASG_OPF_COLL)) return false;
  return t->n_in > 0 || (fl & ASG_OPF_RANDOM);
}

void asg__remat_end(asg_remat *r) {
  if (!r) return;
  free(r->region), free(r->copy), free(r->stack), free(r->list), free(r->seen), free(r->ins);
  free(r);
}

asg_status asg__remat_begin(asg_graph *g, int n, asg_remat **out) {
  *out = NULL;
  bool active = false;
  for (int j = 0; j < g->n_marks; j++)
    active |= g->marks[j].checkpoint || (g->marks[j].block && g->remat_blocks);
  if (!active || n <= 0) return ASG_OK;
  asg_remat *r = calloc(1, sizeof *r);
  int max_in = 1;
  for (int i = 0; i < n; i++)
    if (g->nodes[i]->n_in > max_in) max_in = g->nodes[i]->n_in;
  if (r) {
    r->g = g;
    r->n = n;
    r->region = malloc(sizeof *r->region * (size_t)n);
    r->copy = calloc((size_t)n, sizeof *r->copy);
    r->stack = malloc(sizeof *r->stack * (size_t)n);
    r->list = malloc(sizeof *r->list * (size_t)n);
    r->seen = calloc((size_t)n, 1);
    r->ins = malloc(sizeof *r->ins * (size_t)max_in);
  }
  if (!r || !r->region || !r->copy || !r->stack || !r->list || !r->seen || !r->ins) {
    asg__remat_end(r);
    return asg__error(ASG_ERR_OOM, "grad: out of memory");
  }
  bool any = false;
  const char *prev = NULL; /* consecutive nodes mostly share a scope */
  for (int i = 0; i < n; i++) {
    const char *s = g->nodes[i]->scope;
    if (prev && strcmp(prev, s) == 0) {
      r->region[i] = r->region[i - 1];
      continue;
    }
    int best = -1;
    size_t best_len = 0;
    for (int j = 0; j < g->n_marks; j++) {
      const asg_scope_mark *m = &g->marks[j];
      if (!m->checkpoint && !(m->block && g->remat_blocks)) continue;
      size_t len = strlen(m->scope);
      if (inside(s, m->scope, len) && (best < 0 || len < best_len)) best = j, best_len = len;
    }
    r->region[i] = best;
    any |= best >= 0;
    prev = s;
  }
  if (!any) {
    asg__remat_end(r);
    return ASG_OK;
  }
  *out = r;
  return ASG_OK;
}

/* A forward node of region reg whose copy the closure must make. */
static bool wanted(const asg_remat *r, const asg_tensor *v, int reg) {
  return v->id < r->n && r->region[v->id] == reg && !r->copy[v->id] && recomputable(v);
}

static int cmp_int(const void *a, const void *b) {
  const int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* The copy of x (region reg) over the copies of its inputs in the region.
 * Its scope is x's + "/remat", so profiles and error messages tell it from
 * the forward node (and it stays inside the marked scope). */
static asg_tensor *copy_node(asg_remat *r, asg_tensor *x, int reg) {
  asg_graph *g = r->g;
  for (int k = 0; k < x->n_in; k++) {
    asg_tensor *v = x->in[k];
    r->ins[k] = v->id < r->n && r->region[v->id] == reg && r->copy[v->id] ? r->copy[v->id] : v;
  }
  if (!r->src_scope || strcmp(r->src_scope, x->scope) != 0) {
    char buf[ASG_SCOPE_MAX + 8];
    snprintf(buf, sizeof buf, "%s/remat", x->scope);
    const char *s = asg__arena_strdup(&g->arena, buf);
    if (!s) return asg__fail(g, ASG_ERR_OOM, "grad", "out of memory");
    r->src_scope = x->scope;
    r->dst_scope = s;
  }
  asg_tensor *c = asg__node(g, x->op, x->dtype, x->shape, x->n_in, r->ins);
  if (!c) return NULL;
  c->attr = x->attr; /* a random op keeps its seed: the copy draws the forward's values */
  c->data = x->data;
  c->scope = r->dst_scope;
  r->copy[x->id] = c;
  return c;
}

asg_tensor *asg__remat_node(asg_remat *r, asg_tensor *t) {
  if (!r || t->id >= r->n || r->region[t->id] < 0 || !recomputable(t)) return t;
  if (r->copy[t->id]) return r->copy[t->id];
  const int reg = r->region[t->id];
  /* the region's nodes t depends on that have no copy yet (each pushed once) */
  int top = 0, nl = 0;
  r->stack[top++] = t->id;
  r->seen[t->id] = 1;
  while (top > 0) {
    const asg_tensor *x = r->g->nodes[r->stack[--top]];
    r->list[nl++] = x->id;
    for (int k = 0; k < x->n_in; k++) {
      const asg_tensor *v = x->in[k];
      if (!wanted(r, v, reg) || r->seen[v->id]) continue;
      r->seen[v->id] = 1;
      r->stack[top++] = v->id;
    }
  }
  /* copied in id order: inputs before their readers, the forward's order */
  qsort(r->list, (size_t)nl, sizeof *r->list, cmp_int);
  bool ok = true;
  for (int q = 0; q < nl; q++) {
    asg_tensor *x = r->g->nodes[r->list[q]];
    r->seen[x->id] = 0;
    if (ok) ok = copy_node(r, x, reg) != NULL;
  }
  return ok ? r->copy[t->id] : NULL;
}
