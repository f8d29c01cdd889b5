/* Compile: pick the nodes the outputs need, order them, and plan memory.
 *
 * Schedule: creation order is topological; collectives move as early as
 * their inputs allow (hoist_collectives); assigns go last so that every
 * read of a variable in a step sees the value from before the step.
 * Memory: one arena; each non-view node gets a block from a best-fit free
 * list when it is produced and gives it back after its last reader ran. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes/passes.h"
#include "runtime/compile.h"

typedef struct free_block {
  size_t off, size;
} free_block;

typedef struct arena_planner {
  free_block *blocks;
  int n, cap;
  size_t top;
} arena_planner;

static bool planner_alloc(arena_planner *a, size_t size, size_t *off) {
  int best = -1;
  for (int i = 0; i < a->n; i++)
    if (a->blocks[i].size >= size && (best < 0 || a->blocks[i].size < a->blocks[best].size))
      best = i;
  if (best >= 0) {
    *off = a->blocks[best].off;
    a->blocks[best].off += size;
    a->blocks[best].size -= size;
    if (a->blocks[best].size == 0) {
      memmove(a->blocks + best, a->blocks + best + 1,
              (size_t)(a->n - best - 1) * sizeof *a->blocks);
      a->n--;
    }
    return true;
  }
  /* Grow the arena; reuse a free block that ends at the top. */
  if (a->n && a->blocks[a->n - 1].off + a->blocks[a->n - 1].size == a->top) {
    *off = a->blocks[a->n - 1].off;
    a->top = *off + size;
    a->n--;
    return true;
  }
  *off = a->top;
  a->top += size;
  return true;
}

static bool planner_free(arena_planner *a, size_t off, size_t size) {
  int i = 0;
  while (i < a->n && a->blocks[i].off < off)
    i++;
  if (a->n == a->cap) {
    int cap = a->cap ? a->cap * 2 : 64;
    free_block *nb = realloc(a->blocks, (size_t)cap * sizeof *nb);
    if (!nb) return false;
    a->blocks = nb;
    a->cap = cap;
  }
  memmove(a->blocks + i + 1, a->blocks + i, (size_t)(a->n - i) * sizeof *a->blocks);
  a->blocks[i] = (free_block){off, size};
  a->n++;
  /* coalesce with the next, then with the previous */
  if (i + 1 < a->n && a->blocks[i].off + a->blocks[i].size == a->blocks[i + 1].off) {
    a->blocks[i].size += a->blocks[i + 1].size;
    memmove(a->blocks + i + 1, a->blocks + i + 2, (size_t)(a->n - i - 2) * sizeof *a->blocks);
    a->n--;
  }
  if (i > 0 && a->blocks[i - 1].off + a->blocks[i - 1].size == a->blocks[i].off) {
    a->blocks[i - 1].size += a->blocks[i].size;
    memmove(a->blocks + i, a->blocks + i + 1, (size_t)(a->n - i - 1) * sizeof *a->blocks);
    a->n--;
  }
  return true;
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* The node whose storage t reads, following views. */
static const asg_tensor *asg__origin(const asg_tensor *t) {
  while (asg__op_info[t->op].flags & ASG_OPF_VIEW)
    t = t->in[0];
  return t;
}

/* A slice that selects one contiguous run of its input's bytes (every axis
 * before the sliced one has size 1; step 1 or a single index) starting at a
 * multiple of 64 bytes, the arena's alignment: it can be a view at that
 * offset instead of a copy (the attention gradient [2, ...] split into dk
 * and dv, a row block of a matrix). *off: the byte offset. */
static bool contiguous_slice(const asg_tensor *t, size_t *off) {
  if (t->op != ASG_OP_SLICE) return false;
  const asg_shape *x = &t->in[0]->shape;
  const int a = (int)t->attr.i[0];
  const int64_t start = t->attr.i[1], step = t->attr.i[2], count = t->attr.i[3];
  if (a < 0 || a >= x->ndim || (step != 1 && count != 1)) return false;
  int64_t inner = 1;
  for (int d = 0; d < x->ndim; d++)
    if (d < a && x->dims[d] != 1)
      return false;
    else if (d > a)
      inner *= x->dims[d];
  const size_t o = (size_t)(start * inner) * asg_dtype_size(t->dtype);
  if (o % 64) return false;
  *off = o;
  return true;
}

static size_t node_bytes(const asg_tensor *t) {
  return (size_t)asg_shape_numel(t->shape) * asg_dtype_size(t->dtype);
}

enum { MAX_PLACED = 16 };

/* Concat t of contiguous pieces (every axis before the concat axis has size
 * 1): whether the values its inputs are views of can be produced in place,
 * inside t's block, so that t copies nothing (attention's dq and [dk, dv]
 * into one [3, ...] gradient). Each input's storage owner (root) must be an
 * arena value planned by itself (not a leaf, not already placed or a
 * placement target), land 64-byte aligned, fit inside t, and two roots must
 * not overlap. place[j]: byte offset of input j's root inside t. */
static bool place_concat(const asg_tensor *t, const int *root, const size_t *view_off,
                         const char *has_buf, const char *target, size_t *place) {
  const int a = (int)t->attr.i[0];
  if (t->n_in < 1 || t->n_in > MAX_PLACED || a < 0 || a >= t->shape.ndim || target[t->id])
    return false;
  int64_t inner = 1;
  for (int d = 0; d < t->shape.ndim; d++)
    if (d < a && t->shape.dims[d] != 1)
      return false;
    else if (d > a)
      inner *= t->shape.dims[d];
  const size_t es = asg_dtype_size(t->dtype), total = node_bytes(t);
  int64_t at = 0;
  for (int j = 0; j < t->n_in; j++) {
    const asg_tensor *x = t->in[j];
    const int r = root[x->id];
    const size_t pos = (size_t)(at * inner) * es;
    at += x->shape.dims[a];
    if (has_buf[r] || r == t->id || root[r] != r || target[r] || x->dtype != t->dtype ||
        pos < view_off[x->id] || t->graph->nodes[r]->op == ASG_OP_AUX)
      return false;
    place[j] = pos - view_off[x->id];
    const size_t bytes = node_bytes(t->graph->nodes[r]);
    if (place[j] % 64 || place[j] + bytes > total) return false;
    for (int q = 0; q < j; q++) {
      const int rq = root[t->in[q]->id];
      if (rq == r ? place[q] != place[j]
                  : place[j] < place[q] + node_bytes(t->graph->nodes[rq]) &&
                        place[q] < place[j] + bytes)
        return false;
    }
  }
  return true;
}

/* cache_write rules: a variable is written by one cache_write at most, is
 * not also assigned, and no needed node reads it (its storage, through
 * views) where the schedule runs that read after the write: created after
 * the write, or an assign (assigns run last). Such a read would silently see
 * the new rows. Views themselves read nothing; their readers are checked. */
asg_status asg__cache_write_check(const asg_graph *g, const char *need) {
  const int N = g->n_nodes;
  int *w = NULL; /* per variable id: 1 + id of its cache_write */
  for (int i = 0; i < N && !w; i++)
    if (need[i] && g->nodes[i]->op == ASG_OP_CACHE_WRITE && !(w = calloc((size_t)N, sizeof *w)))
      return asg__error(ASG_ERR_OOM, "compile: out of memory");
  if (!w) return ASG_OK;
  asg_status st = ASG_OK;
  for (int i = 0; i < N && !st; i++) {
    const asg_tensor *t = g->nodes[i];
    if (!need[i] || t->op != ASG_OP_CACHE_WRITE) continue;
    if (w[t->in[0]->id])
      st = asg__error(ASG_ERR_INVALID,
                      "compile: variable '%s' is written by two cache_write ops in one program",
                      t->in[0]->name);
    w[t->in[0]->id] = i + 1;
  }
  for (int i = 0; i < N && !st; i++)
    if (need[i] && g->nodes[i]->op == ASG_OP_ASSIGN && w[g->nodes[i]->in[0]->id])
      st = asg__error(ASG_ERR_INVALID,
                      "compile: variable '%s' is both assigned and written by cache_write in one "
                      "program",
                      g->nodes[i]->in[0]->name);
  for (int i = 0; i < N && !st; i++) {
    const asg_tensor *t = g->nodes[i];
    if (!need[i] || (asg__op_info[t->op].flags & ASG_OPF_VIEW)) continue;
    for (int j = 0; j < t->n_in && !st; j++) {
      const asg_tensor *o = asg__origin(t->in[j]);
      if (o->op != ASG_OP_VARIABLE || !w[o->id] || (t->op != ASG_OP_ASSIGN && i < w[o->id]))
        continue; /* not a cache-written variable, or read before (or by) the write */
      const char *ws = g->nodes[w[o->id] - 1]->scope;
      st = asg__error(ASG_ERR_INVALID,
                      "compile: %s%s%s reads variable '%s' after cache_write%s%s writes it (it "
                      "would see the new rows); read the cache_write result instead, or build the "
                      "read before the write",
                      t->scope, t->scope[0] ? "/" : "", asg__op_name(t->op), o->name,
                      ws[0] ? " in " : "", ws);
    }
  }
  free(w);
  return st;
}

/* The step that computes aux node x alone (plan.h): its recipe op and
 * attributes, reading x's inputs after its parent (in[0]); out of memory:
 * false. */
static bool aux_step(asg_step *u, const asg_tensor *x, const asg_buf_ref *buf) {
  u->op = (asg_op)x->attr.i[ASG_AUX_OP];
  u->attr = x->attr;
  u->attr.i[ASG_AUX_OP] = u->attr.i[ASG_AUX_SLOT] = 0;
  u->out = (asg_tdesc){x->dtype, x->shape};
  u->out_buf = buf[x->id];
  u->node_id = x->id;
  u->n_in = x->n_in - 1;
  snprintf(u->label, sizeof u->label, "%s%s%s", x->scope, x->scope[0] ? "/" : "",
           asg__op_name(u->op));
  u->in = calloc((size_t)u->n_in + 1, sizeof *u->in);
  u->in_buf = calloc((size_t)u->n_in + 1, sizeof *u->in_buf);
  if (!u->in || !u->in_buf) return false;
  for (int j = 0; j < u->n_in; j++) {
    u->in[j] = (asg_tdesc){x->in[j + 1]->dtype, x->in[j + 1]->shape};
    u->in_buf[j] = buf[x->in[j + 1]->id];
  }
  return true;
}

void asg__compiled_free(asg_compiled *c) {
  if (!c) return;
  for (int i = 0; i < c->plan.n_steps; i++) {
    asg_step *s = &c->plan.steps[i];
    for (int k = 0; k < s->n_aux; k++)
      free(s->aux[k].in), free(s->aux[k].in_buf);
    free(s->aux);
    free(s->in);
    free(s->in_buf);
  }
  free(c->plan.steps);
  free(c->vars);
  free(c->consts);
  free(c->inputs);
  free(c->node_buf);
  free(c->node_has_buf);
  memset(c, 0, sizeof *c);
}

void asg__mark_needed(const asg_graph *g, int n_out, asg_tensor *const *outs, char *need) {
  for (int i = 0; i < n_out; i++)
    need[outs[i]->id] = 1;
  for (int i = g->n_nodes - 1; i >= 0; i--) /* ids are a topological order */
    if (need[i])
      for (int k = 0; k < g->nodes[i]->n_in; k++)
        need[g->nodes[i]->in[k]->id] = 1;
}

asg_status asg__collective_check(const asg_graph *g, const char *need, asg_comm *comm,
                                 const char *backend) {
  const int world = asg_comm_size(comm);
  for (int i = 0; i < g->n_nodes; i++) { /* the first one in graph order */
    const asg_tensor *t = g->nodes[i];
    if (!need[i] || !(asg__op_info[t->op].flags & ASG_OPF_COLL)) continue;
    const char *sc = t->scope && t->scope[0] ? t->scope : "", *sl = sc[0] ? "/" : "";
    const char *op = asg__op_name(t->op);
    const long long a = (long long)t->attr.i[0];
    if (!comm)
      return asg__error(ASG_ERR_INVALID,
                        "asg_compile: %s%s%s is a collective but the program has no "
                        "communicator (set asg_compile_opts.comm; asg/dist.h)",
                        sc, sl, op);
    if (world > 1 && !strcmp(asg_comm_kind(comm), "rendezvous") && strcmp(backend, "cuda") != 0)
      return asg__error(ASG_ERR_UNSUPPORTED,
                        "asg_compile: %s%s%s: on the %s backend collectives need an MPI launch "
                        "(mpirun); a torchrun-style rendezvous serves CUDA programs (NCCL) only",
                        sc, sl, op, backend);
    if ((t->op == ASG_OP_ALL_GATHER || t->op == ASG_OP_REDUCE_SCATTER) && a != world)
      return asg__error(ASG_ERR_INVALID,
                        "asg_compile: %s%s%s was built for a world of %lld ranks; the "
                        "communicator has %d",
                        sc, sl, op, a, world);
    if (t->op == ASG_OP_BROADCAST && a >= world)
      return asg__error(ASG_ERR_INVALID,
                        "asg_compile: %s%s%s: root %lld is not a rank of a world of %d", sc, sl, op,
                        a, world);
  }
  return ASG_OK;
}

/* Collectives early: the data-parallel optimizer makes its gradient
 * buckets (flatten, all-reduce) after the whole backward pass, so in
 * creation order every all-reduce waits for the last gradient. Here each
 * collective, with the steps that only prepare its input (every reader of
 * theirs is such a step or the collective, and asg_grad did not make them:
 * the backward pass itself keeps its order), moves to right after the last
 * step it depends on; every other step keeps its place. A backend that runs
 * collectives beside the compute (CUDA: docs/distributed.md) then overlaps
 * a bucket's transfer with the rest of the backward pass. The order stays
 * topological (a moved step comes after each of its inputs and before each
 * reader) and is the same on every rank, so collectives still match.
 * order[0..n) holds node ids in creation order; pos is scratch (N ints). */
static asg_status hoist_collectives(const asg_graph *g, int *order, int n, int *pos) {
  bool any = false;
  for (int i = 0; i < n && !any; i++)
    any = asg__op_info[g->nodes[order[i]]->op].flags & ASG_OPF_COLL;
  if (!any) return ASG_OK;
  const int N = g->n_nodes;
  /* readers: how many steps read each node, and how many of them move */
  int *readers = calloc((size_t)N + 1, sizeof *readers);
  int *moving = calloc((size_t)N + 1, sizeof *moving);
  char *moves = calloc((size_t)N + 1, 1);
  int64_t *key = malloc(sizeof *key * ((size_t)n + 1));
  int *sorted = malloc(sizeof *sorted * ((size_t)n + 1));
  if (!readers || !moving || !moves || !key || !sorted) {
    free(readers), free(moving), free(moves), free(key), free(sorted);
    return asg__error(ASG_ERR_OOM, "compile: out of memory");
  }
  for (int i = 0; i < N; i++)
    pos[i] = -1;
  for (int i = 0; i < n; i++)
    pos[order[i]] = i;
  for (int i = 0; i < N; i++) /* every reader, steps or not (assigns, outputs' users) */
    for (int k = 0; k < g->nodes[i]->n_in; k++)
      readers[g->nodes[i]->in[k]->id]++;
  for (int i = n - 1; i >= 0; i--) { /* readers come later: decided before their inputs */
    const asg_tensor *t = g->nodes[order[i]];
    moves[t->id] = (asg__op_info[t->op].flags & ASG_OPF_COLL) ||
                   (!t->grad_of && readers[t->id] > 0 && moving[t->id] == readers[t->id]);
    if (moves[t->id])
      for (int k = 0; k < t->n_in; k++)
        moving[t->in[k]->id]++;
  }
  /* key: a staying step's own place times n; a moving one goes after the
   * latest step it reads (in creation order among the moved ones) */
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[order[i]];
    if (!moves[t->id]) {
      key[i] = (int64_t)i * (n + 1);
      continue;
    }
    int64_t after = -1;
    for (int k = 0; k < t->n_in; k++) {
      int q = pos[t->in[k]->id];
      if (q >= 0 && key[q] > after) after = key[q];
    }
    /* right after `after`'s staying step, behind moved steps placed there before */
    key[i] = after < 0 ? i + 1 - (int64_t)(n + 1) : after - after % (n + 1) + 1 + i;
  }
  /* stable sort of the places by key (insertion: keys are mostly in order) */
  for (int i = 0; i < n; i++) {
    int j = i;
    while (j > 0 && key[sorted[j - 1]] > key[i]) {
      sorted[j] = sorted[j - 1];
      j--;
    }
    sorted[j] = i;
  }
  for (int i = 0; i < n; i++)
    pos[i] = order[sorted[i]];
  memcpy(order, pos, sizeof *order * (size_t)n);
  free(readers), free(moving), free(moves), free(key), free(sorted);
  return ASG_OK;
}

asg_status asg__compile_graph(asg_graph *g, int n_out, asg_tensor *const *outs, bool fuse,
                              asg_compiled *c) {
  memset(c, 0, sizeof *c);
  int N = g->n_nodes;
  /* fused nodes replace nodes of g->nodes until the end (src/passes) */
  asg_fusion *fz = NULL;
  if (fuse) {
    asg_status fs = asg__fuse_begin(g, n_out, outs, &fz);
    if (fs) return fs;
  }
  char *need = calloc((size_t)N + 1, 1);
  int *last_use = malloc(sizeof(int) * ((size_t)N + 1));
  int *root = malloc(sizeof(int) * ((size_t)N + 1)); /* storage owner of each node */
  /* order: node ids, or -(id + 1) for the snapshot step of assign `id` */
  int *order = malloc(sizeof(int) * (2 * (size_t)N + 1));
  int *asn = malloc(sizeof(int) * ((size_t)N + 1)); /* assign nodes */
  char *assigned = calloc((size_t)N + 1, 1);        /* variables assigned here */
  asg_buf_ref *snap = calloc((size_t)N + 1, sizeof *snap);
  asg_buf_ref *buf = calloc((size_t)N + 1, sizeof *buf);
  char *has_buf = calloc((size_t)N + 1, 1);
  size_t *view_off = calloc((size_t)N + 1, sizeof *view_off); /* bytes into root's storage */
  char *target = calloc((size_t)N + 1, 1);  /* concats whose inputs are made in place */
  char *alloced = calloc((size_t)N + 1, 1); /* roots that got their block */
  char *sview = calloc((size_t)N + 1, 1);   /* slices that are views */
  /* aux[i * ASG_MAX_AUX + k]: the aux node that is node i's further output k + 1, or -1 */
  int *aux = malloc(sizeof(int) * ((size_t)N + 1) * ASG_MAX_AUX);
  size_t place[MAX_PLACED];
  arena_planner ap = {0};
  asg_status st = ASG_OK;
  if (!need || !last_use || !root || !order || !asn || !assigned || !snap || !buf || !has_buf ||
      !view_off || !target || !alloced || !sview || !aux) {
    st = asg__error(ASG_ERR_OOM, "compile: out of memory");
    goto done;
  }
  /* 1. reachability from the outputs */
  asg__mark_needed(g, n_out, outs, need);
  if ((st = asg__cache_write_check(g, need)) != ASG_OK) goto done;
  for (int i = 0; i < N * ASG_MAX_AUX; i++)
    aux[i] = -1;
  for (int i = 0; i < N; i++) {
    const asg_tensor *t = g->nodes[i];
    if (!need[i] || t->op != ASG_OP_AUX) continue;
    const int p = t->in[0]->id, k = (int)t->attr.i[ASG_AUX_SLOT] - 1;
    if (k < 0 || k >= ASG_MAX_AUX || p >= i || aux[p * ASG_MAX_AUX + k] >= 0) {
      st = asg__error(ASG_ERR_INVALID, "compile: malformed aux node %d", i);
      goto done;
    }
    aux[p * ASG_MAX_AUX + k] = i;
  }

  /* 2. leaves get persistent storage; one assign per variable */
  c->vars = calloc((size_t)N + 1, sizeof *c->vars);
  c->consts = calloc((size_t)N + 1, sizeof *c->consts);
  c->inputs = calloc((size_t)N + 1, sizeof *c->inputs);
  if (!c->vars || !c->consts || !c->inputs) {
    st = asg__error(ASG_ERR_OOM, "compile: out of memory");
    goto done;
  }
  int n_order = 0;
  for (int i = 0; i < N; i++) {
    asg_tensor *t = g->nodes[i];
    root[i] = i;
    last_use[i] = -1;
    if (!need[i]) continue;
    if (t->op == ASG_OP_VARIABLE) {
      buf[i] = (asg_buf_ref){ASG_BUF_VAR, c->n_vars, 0};
      c->vars[c->n_vars++] = t;
      has_buf[i] = 1;
    } else if (t->op == ASG_OP_CONSTANT || t->op == ASG_OP_FILL) {
      /* fills are folded: filled once when the program is built */
      buf[i] = (asg_buf_ref){ASG_BUF_CONST, c->n_consts, 0};
      c->consts[c->n_consts++] = t;
      has_buf[i] = 1;
    } else if (t->op == ASG_OP_INPUT) {
      buf[i] = (asg_buf_ref){ASG_BUF_INPUT, c->n_inputs, 0};
      c->inputs[c->n_inputs++] = t;
      has_buf[i] = 1;
    } else if (t->op != ASG_OP_ASSIGN && t->op != ASG_OP_AUX) {
      order[n_order++] = i; /* (an aux node is no step: its parent's step writes it) */
    }
  }
  if ((st = hoist_collectives(g, order, n_order, last_use)) != ASG_OK) goto done;
  for (int i = 0; i < N; i++)
    last_use[i] = -1; /* (scratch above) */
  int n_asn = 0;
  for (int i = 0; i < N; i++) {
    asg_tensor *t = g->nodes[i];
    if (!need[i] || t->op != ASG_OP_ASSIGN) continue;
    if (assigned[t->in[0]->id]) {
      st = asg__error(ASG_ERR_INVALID, "compile: variable '%s' is assigned twice in one program",
                      t->in[0]->name);
      goto done;
    }
    assigned[t->in[0]->id] = 1;
    asn[n_asn++] = i;
  }
  /* An assign whose value is another assigned variable would read it after
   * that variable's own assign ran (assign(a, b) + assign(b, a) must swap):
   * copy such values into the arena first, after every other read. */
  for (int k = 0; k < n_asn; k++) {
    asg_tensor *t = g->nodes[asn[k]], *v = t->in[1];
    if (v->op == ASG_OP_VARIABLE && assigned[v->id] && v != t->in[0])
      order[n_order++] = -(t->id + 1);
  }
  for (int k = 0; k < n_asn; k++)
    order[n_order++] = asn[k];

  /* 3a. in-place assigns: when the value of assign(var, val) is an
   * elementwise op of var's dtype and shape and no step after val's reads
   * var, val is computed straight into var's storage and the assign copies
   * nothing (an optimizer update then costs no extra buffer or copy). */
  if (n_asn) {
    int *pos = malloc(sizeof(int) * ((size_t)N + 1));
    char *snapped = calloc((size_t)N + 1, 1);
    if (!pos || !snapped) {
      free(pos), free(snapped);
      st = asg__error(ASG_ERR_OOM, "compile: out of memory");
      goto done;
    }
    for (int i = 0; i < N; i++)
      pos[i] = -1;
    for (int k = 0; k < n_order; k++)
      if (order[k] >= 0)
        pos[order[k]] = k;
      else
        snapped[g->nodes[-order[k] - 1]->in[1]->id] = 1;
    for (int k = 0; k < n_asn; k++) {
      asg_tensor *var = g->nodes[asn[k]]->in[0], *val = g->nodes[asn[k]]->in[1];
      unsigned fl = asg__op_info[val->op].flags;
      if (!(fl & ASG_OPF_ELEM) || val->op == ASG_OP_CAST || val->dtype != var->dtype ||
          pos[val->id] < 0 || root[val->id] != val->id || snapped[var->id])
        continue;
      bool ok = true;
      for (int j = 0; j < val->n_in && ok; j++) /* element i may only read element i of var */
        if (asg__origin(val->in[j]) == var) ok = asg_shape_equal(val->in[j]->shape, val->shape);
      for (int q = pos[val->id] + 1; q < n_order && ok; q++) {
        if (order[q] < 0) continue; /* snapshots never read var (checked above) */
        asg_tensor *t = g->nodes[order[q]];
        if (t->op == ASG_OP_ASSIGN) continue; /* a value that is var was snapshotted */
        for (int j = 0; j < t->n_in && ok; j++)
          ok = asg__origin(t->in[j]) != var;
      }
      if (ok) root[val->id] = var->id;
    }
    free(pos), free(snapped);
  }

  /* 3. liveness: views share their source's storage, except views of a
   * variable assigned in this program: those copy, so that they keep the
   * value from before the step (they run before every assign). Contiguous
   * slices of values in the arena are views too, at a byte offset (view_off)
   * into their source; slices of variables, constants and inputs copy. */
  for (int k = 0; k < n_order; k++) {
    if (order[k] < 0) continue; /* snapshots live to the end */
    asg_tensor *t = g->nodes[order[k]];
    unsigned fl = asg__op_info[t->op].flags;
    size_t off = 0;
    if (fl & ASG_OPF_ASSIGN) {
      root[t->id] = root[t->in[0]->id];
    } else if (fl & ASG_OPF_VIEW) {
      int r = root[t->in[0]->id];
      if (!(g->nodes[r]->op == ASG_OP_VARIABLE && assigned[r])) {
        root[t->id] = r;
        view_off[t->id] = view_off[t->in[0]->id];
      }
    } else if (contiguous_slice(t, &off) && !has_buf[root[t->in[0]->id]]) {
      root[t->id] = root[t->in[0]->id]; /* has_buf here: only leaves (var/const/input) */
      view_off[t->id] = view_off[t->in[0]->id] + off;
      sview[t->id] = 1;
    } else if (t->op == ASG_OP_CONCAT && place_concat(t, root, view_off, has_buf, target, place)) {
      /* the inputs' roots (and every view of them so far) move into t's block;
       * t's block is then taken when the first of them is produced */
      target[t->id] = 1;
      for (int j = 0; j < t->n_in; j++) {
        const int r = root[t->in[j]->id];
        if (r == t->id) continue; /* an earlier input had the same root */
        if (last_use[r] > last_use[t->id]) last_use[t->id] = last_use[r];
        for (int q = 0; q < k; q++)
          if (order[q] >= 0 && root[order[q]] == r) {
            root[order[q]] = t->id;
            view_off[order[q]] += place[j];
          }
      }
      if (last_use[t->id] < k) last_use[t->id] = k;
    }
    for (int j = 0; j < t->n_in; j++)
      last_use[root[t->in[j]->id]] = k;
  }
  for (int i = 0; i < n_out; i++)
    last_use[root[outs[i]->id]] = n_order; /* kept to the end */

  /* 4. steps + arena offsets */
  c->plan.steps = calloc((size_t)n_order + 1, sizeof *c->plan.steps);
  if (!c->plan.steps) {
    st = asg__error(ASG_ERR_OOM, "compile: out of memory");
    goto done;
  }
  /* roots freed after step k, bucketed by k */
  int *free_head = malloc(sizeof(int) * ((size_t)n_order + 1));
  int *free_next = malloc(sizeof(int) * ((size_t)N + 1));
  if (!free_head || !free_next) {
    free(free_head), free(free_next);
    st = asg__error(ASG_ERR_OOM, "compile: out of memory");
    goto done;
  }
  for (int k = 0; k <= n_order; k++)
    free_head[k] = -1;
  for (int k = 0; k < n_order; k++) {
    asg_step *s = &c->plan.steps[k];
    if (order[k] < 0) { /* snapshot of an assign's value: a copy step */
      asg_tensor *a = g->nodes[-order[k] - 1], *v = a->in[1];
      size_t off, bytes = align64(node_bytes(v));
      planner_alloc(&ap, bytes ? bytes : 64, &off);
      snap[a->id] = (asg_buf_ref){ASG_BUF_ARENA, 0, off};
      s->op = ASG_OP_STOP_GRADIENT; /* identity copy */
      s->out = (asg_tdesc){v->dtype, v->shape};
      s->out_buf = snap[a->id];
      s->node_id = a->id;
      s->n_in = 1;
      snprintf(s->label, sizeof s->label, "%s%sassign (copy of '%s')", a->scope,
               a->scope[0] ? "/" : "", v->name);
      s->in = calloc(1, sizeof *s->in);
      s->in_buf = calloc(1, sizeof *s->in_buf);
      if (!s->in || !s->in_buf) {
        c->plan.n_steps = k + 1;
        free(free_head), free(free_next);
        st = asg__error(ASG_ERR_OOM, "compile: out of memory");
        goto done;
      }
      s->in[0] = s->out;
      s->in_buf[0] = buf[v->id];
      continue;
    }
    asg_tensor *t = g->nodes[order[k]];
    int i = t->id;
    /* a block for node b: its own root, or a concat whose inputs are made in place */
    const int b = root[i] == i || target[root[i]] ? root[i] : -1;
    if (b >= 0 && !alloced[b]) {
      size_t off, bytes = align64(node_bytes(g->nodes[b]));
      if (bytes == 0) bytes = 64;
      planner_alloc(&ap, bytes, &off);
      buf[b] = (asg_buf_ref){ASG_BUF_ARENA, 0, off};
      alloced[b] = 1;
      if (last_use[b] < 0) last_use[b] = k; /* dead value: free right away */
      if (last_use[b] < n_order) {
        free_next[b] = free_head[last_use[b]];
        free_head[last_use[b]] = b;
      }
    }
    /* the further outputs get their blocks with the step that writes them */
    for (int a = 0; a < ASG_MAX_AUX; a++) {
      const int x = aux[i * ASG_MAX_AUX + a];
      if (x < 0) continue;
      if (!s->aux && !(s->aux = calloc(ASG_MAX_AUX, sizeof *s->aux))) {
        c->plan.n_steps = k + 1;
        free(free_head), free(free_next);
        st = asg__error(ASG_ERR_OOM, "compile: out of memory");
        goto done;
      }
      size_t off, bytes = align64(node_bytes(g->nodes[x]));
      planner_alloc(&ap, bytes ? bytes : 64, &off);
      buf[x] = (asg_buf_ref){ASG_BUF_ARENA, 0, off};
      alloced[x] = has_buf[x] = 1;
      if (last_use[x] < 0) last_use[x] = k;
      if (last_use[x] < n_order) {
        free_next[x] = free_head[last_use[x]];
        free_head[last_use[x]] = x;
      }
      if (!aux_step(&s->aux[s->n_aux++], g->nodes[x], buf)) {
        c->plan.n_steps = k + 1;
        free(free_head), free(free_next);
        st = asg__error(ASG_ERR_OOM, "compile: out of memory");
        goto done;
      }
    }
    if (root[i] != i) {
      buf[i] = buf[root[i]];
      buf[i].offset += view_off[i];
    }
    has_buf[i] = 1;
    s->keep = last_use[root[i]] == n_order;
    s->op = t->op;
    s->attr = t->attr;
    s->out = (asg_tdesc){t->dtype, t->shape};
    s->out_buf = buf[i];
    s->node_id = i;
    s->n_in = t->n_in;
    if (t->scope && t->scope[0])
      snprintf(s->label, sizeof s->label, "%s/%s", t->scope, asg__op_name(t->op));
    else
      snprintf(s->label, sizeof s->label, "%s", asg__op_name(t->op));
    if (t->n_in) {
      s->in = calloc((size_t)t->n_in, sizeof *s->in);
      s->in_buf = calloc((size_t)t->n_in, sizeof *s->in_buf);
      if (!s->in || !s->in_buf) {
        c->plan.n_steps = k + 1;
        free(free_head), free(free_next);
        st = asg__error(ASG_ERR_OOM, "compile: out of memory");
        goto done;
      }
    }
    for (int j = 0; j < t->n_in; j++) {
      s->in[j] = (asg_tdesc){t->in[j]->dtype, t->in[j]->shape};
      s->in_buf[j] = buf[t->in[j]->id];
    }
    if (sview[i] || target[i]) {
      /* a view, or a concat whose inputs were made in place: a reshape of its own bytes */
      s->op = ASG_OP_RESHAPE;
      memset(&s->attr, 0, sizeof s->attr);
      s->n_in = 1;
      s->in[0] = s->out;
      s->in_buf[0] = buf[i];
    }
    if (t->op == ASG_OP_ASSIGN && t->in[1]->op == ASG_OP_VARIABLE && assigned[t->in[1]->id] &&
        t->in[1] != t->in[0])
      s->in_buf[1] = snap[i];
    /* release storage whose last reader was this step (after the output got
     * its block, so an output never overlaps its own inputs) */
    for (int r = free_head[k]; r >= 0; r = free_next[r]) {
      asg_tensor *rt = g->nodes[r];
      size_t bytes = align64(node_bytes(rt));
      if (!planner_free(&ap, buf[r].offset, bytes ? bytes : 64)) {
        c->plan.n_steps = k + 1;
        free(free_head), free(free_next);
        st = asg__error(ASG_ERR_OOM, "compile: out of memory");
        goto done;
      }
    }
  }
  free(free_head), free(free_next);
  c->plan.n_steps = n_order;
  c->plan.arena_bytes = ap.top;
  c->node_buf = buf;
  c->node_has_buf = has_buf;
  c->n_nodes = N;
  buf = NULL;
  has_buf = NULL;
done:
  free(need);
  free(last_use);
  free(root);
  free(order);
  free(asn);
  free(assigned);
  free(snap);
  free(buf);
  free(has_buf);
  free(view_off);
  free(target);
  free(alloced);
  free(sview);
  free(aux);
  free(ap.blocks);
  asg__fuse_end(g, fz);
  if (st != ASG_OK) asg__compiled_free(c);
  return st;
}
