/* Reverse-mode autodiff as a graph-to-graph transform: walk the nodes that
 * lie between the wrt set and y in reverse creation order, apply each op's
 * rule, and sum the contributions reaching each input. */
#include <pthread.h>
#include <stdlib.h>

#include "autograd/grad.h"
#include "core/symbol.h"
#include "passes/passes.h"

static asg_grad_rule rules[ASG_OP_COUNT];
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

static void rules_init(void) {
  asg_grad_register_elementwise(rules);
  asg_grad_register_reduce(rules);
  asg_grad_register_matmul(rules);
  asg_grad_register_shape(rules);
  asg_grad_register_index(rules);
  asg_grad_register_sort(rules);
  asg_grad_register_nn(rules);
  asg_grad_register_conv(rules);
  asg_grad_register_attention(rules);
  asg_grad_register_collective(rules);
  asg_grad_register_custom(rules);
  asg_grad_register_resample(rules);
}

const asg_grad_rule *asg__grad_rules(void) {
  pthread_once(&rules_once, rules_init);
  return rules;
}

asg_tensor *asg__sum_to(asg_tensor *x, asg_shape s) {
  if (!x || asg_shape_equal(x->shape, s)) return x;
  asg_axes ax = {0, {0}};
  int lead = x->shape.ndim - s.ndim;
  for (int d = 0; d < x->shape.ndim; d++)
    if (d < lead || (s.dims[d - lead] == 1 && x->shape.dims[d] != 1)) ax.axis[ax.n++] = d;
  asg_tensor *r = ax.n ? asg_sum(x, ax, true) : x;
  return asg_reshape(r, s);
}

/* Gradients of step-1 slices wait here, per sliced tensor, until every
 * contribution to that tensor is in: pieces that cover an axis between them
 * (a split: q, k, v out of one projection) become one concat, where each
 * alone would be a zero-padded tensor of the input's size and the pieces
 * would be summed. */
typedef struct slice_piece {
  asg_tensor *dy; /* gradient of the slice */
  int axis;
  int64_t start, count;
  struct slice_piece *next;
} slice_piece;

static asg_tensor *add_to(asg_tensor *acc, asg_tensor *d) { return acc ? asg_add(acc, d) : d; }

/* The pieces of one axis, sorted by start (by the caller), as one gradient
 * of x's shape:
 * a concat when they do not overlap (gaps filled with zeros), else the
 * sum of their slice_bwd. */
static asg_tensor *join_pieces(asg_tensor *x, slice_piece **v, int n) {
  const int a = v[0]->axis;
  bool disjoint = n > 1;
  for (int i = 1; i < n && disjoint; i++)
    disjoint = v[i]->start >= v[i - 1]->start + v[i - 1]->count;
  if (!disjoint) {
    asg_tensor *sum = NULL;
    for (int i = 0; i < n; i++)
      sum = add_to(sum, asg__slice_bwd(v[i]->dy, x->shape, a, v[i]->start, 1));
    return sum;
  }
  asg_tensor **parts = malloc(sizeof *parts * (size_t)(2 * n + 1));
  if (!parts) return asg__fail(x->graph, ASG_ERR_OOM, "grad", "out of memory");
  int np = 0;
  int64_t at = 0;
  for (int i = 0; i <= n; i++) {
    const int64_t next = i < n ? v[i]->start : x->shape.dims[a];
    if (next > at) { /* a gap no slice read: zero gradient */
      asg_shape zs = x->shape;
      zs.dims[a] = next - at;
      parts[np++] = asg_fill(x->graph, v[0]->dy->dtype, zs, 0.0);
    }
    if (i < n) {
      parts[np++] = v[i]->dy;
      at = v[i]->start + v[i]->count;
    }
  }
  asg_tensor *r = asg_concat(parts, np, a);
  free(parts);
  return r;
}

static int by_start(const void *a, const void *b) {
  const slice_piece *p = *(slice_piece *const *)a, *q = *(slice_piece *const *)b;
  return (p->start > q->start) - (p->start < q->start);
}

/* Folds the waiting slice gradients of node i into acc[i]: all the pieces
 * of an axis in one join (an RNN's T time steps: one concat, not T/64
 * zero-padded sums). */
static void settle_pieces(asg_tensor *x, slice_piece **pend, asg_tensor **acc) {
  while (pend[x->id]) {
    int n = 0, a = pend[x->id]->axis;
    for (slice_piece *p = pend[x->id]; p; p = p->next)
      n += p->axis == a;
    slice_piece **v = malloc(sizeof *v * (size_t)n);
    if (!v) {
      asg__fail(x->graph, ASG_ERR_OOM, "grad", "out of memory");
      return; /* the pieces are freed with pend by the caller's loop end */
    }
    n = 0;
    for (slice_piece **pp = &pend[x->id]; *pp;) {
      if ((*pp)->axis == a) {
        v[n++] = *pp;
        *pp = (*pp)->next;
      } else {
        pp = &(*pp)->next;
      }
    }
    qsort(v, (size_t)n, sizeof *v, by_start);
    acc[x->id] = add_to(acc[x->id], n == 1 ? asg__slice_bwd(v[0]->dy, x->shape, a, v[0]->start, 1)
                                           : join_pieces(x, v, n));
    for (int k = 0; k < n; k++)
      free(v[k]);
    free(v);
  }
}

/* Nodes made since *mark compute the gradient of node `of` (graph export
 * draws them with it). */
static void mark_gradient_nodes(asg_graph *g, int *mark, int of) {
  for (; *mark < g->n_nodes; (*mark)++)
    g->nodes[*mark]->grad_of = of + 1;
}

asg_status asg_vjp(asg_tensor *y, asg_tensor *dy, int n, asg_tensor *const *wrt,
                   asg_tensor **grads) {
  asg_tensor *pair[2] = {y, dy};
  asg_graph *g = asg__graph_of("grad", 2, pair);
  if (!g) /* message already set */
    return asg__tensor_ok(y) && y->graph->status ? y->graph->status : ASG_ERR_INVALID;
  if (n < 0 || (n > 0 && (!wrt || !grads)))
    return asg__error(ASG_ERR_INVALID, "grad: bad wrt list");
  char b1[160], b2[160];
  if (!asg_shape_equal(y->shape, dy->shape) || y->dtype != dy->dtype) {
    asg__fail(g, ASG_ERR_SHAPE, "grad", "upstream gradient is %s %s, output is %s %s",
              asg_dtype_name(dy->dtype), asg__shape_str_g(g, dy->shape, b1, sizeof b1),
              asg_dtype_name(y->dtype), asg__shape_str_g(g, y->shape, b2, sizeof b2));
    return g->status;
  }
  for (int i = 0; i < n; i++) {
    grads[i] = NULL;
    if (!wrt[i] || wrt[i]->magic != ASG_NODE_MAGIC || wrt[i]->graph != g) {
      asg__fail(g, ASG_ERR_INVALID, "grad", "wrt[%d] is NULL or from another graph", i);
      return g->status;
    }
  }
  const asg_grad_rule *R = asg__grad_rules();
  /* nodes from `mark` on compute the gradient of node mark_of */
  int mark = g->n_nodes, mark_of = y->id;
  int N = y->id + 1; /* nodes made from here on are gradient nodes */
  int max_in = 1;
  for (int i = 0; i < N; i++)
    if (g->nodes[i]->n_in > max_in) max_in = g->nodes[i]->n_in;
  char *reach = calloc((size_t)N, 1);
  asg_tensor **acc = calloc((size_t)N, sizeof *acc);
  bool *need = malloc(sizeof *need * (size_t)max_in);
  asg_tensor **dx = malloc(sizeof *dx * (size_t)max_in);
  slice_piece **pend = calloc((size_t)N, sizeof *pend);
  if (!reach || !acc || !need || !dx || !pend) {
    free(reach), free(acc), free(need), free(dx), free(pend);
    return asg__error(ASG_ERR_OOM, "grad: out of memory");
  }
  /* gradient checkpointing: rules of nodes in marked scopes read recomputed copies */
  asg_remat *rm = NULL;
  asg_status rst = asg__remat_begin(g, N, &rm);
  if (rst) {
    free(reach), free(acc), free(need), free(dx), free(pend);
    return rst;
  }
  for (int i = 0; i < n; i++)
    if (wrt[i]->id < N) reach[wrt[i]->id] = 1;
  for (int i = 0; i < N; i++) {
    asg_tensor *t = g->nodes[i];
    for (int k = 0; k < t->n_in && !reach[i]; k++)
      reach[i] = reach[t->in[k]->id];
  }
  acc[y->id] = dy;
  for (int i = y->id; i >= 0 && g->status == ASG_OK; i--) {
    mark_gradient_nodes(g, &mark, mark_of);
    mark_of = i;
    asg_tensor *t = g->nodes[i];
    settle_pieces(t, pend, acc); /* every contribution to node i is in */
    if (!acc[i] || !reach[i] || t->n_in == 0) continue;
    unsigned fl = asg__op_info[t->op].flags;
    if (fl & ASG_OPF_NODIFF) continue; /* zero gradient */
    if (!R[t->op]) {
      asg__fail(g, ASG_ERR_UNSUPPORTED, "grad", "op '%s'%s%s has no gradient rule%s",
                asg__op_name(t->op), t->scope[0] ? " in " : "", t->scope,
                (fl & ASG_OPF_BWD) ? " (differentiating a backward op is not supported)" : "");
      break;
    }
    int nin = t->n_in;
    for (int k = 0; k < nin; k++) {
      need[k] = reach[t->in[k]->id] && asg_dtype_is_float(t->in[k]->dtype);
      dx[k] = NULL;
    }
    /* pieces are joined by comparing their bounds: constant ones only */
    if (t->op == ASG_OP_SLICE && (t->attr.i[2] == 1 || t->attr.i[3] == 1) && t->attr.i[1] >= 0 &&
        t->attr.i[3] >= 0 && t->in[0]->shape.dims[t->attr.i[0]] >= 0) {
      if (!need[0]) continue;
      slice_piece *p = malloc(sizeof *p);
      if (!p) {
        asg__fail(g, ASG_ERR_OOM, "grad", "out of memory");
        break;
      }
      *p = (slice_piece){acc[i], (int)t->attr.i[0], t->attr.i[1], t->attr.i[3], pend[t->in[0]->id]};
      pend[t->in[0]->id] = p;
      continue;
    }
    asg_tensor *fwd = asg__remat_node(rm, t); /* t, or its recomputed copy */
    if (!fwd) break;
    R[t->op](fwd, acc[i], need, dx);
    for (int k = 0; k < nin; k++) {
      if (!need[k] || !dx[k]) continue;
      asg_tensor *in = t->in[k];
      asg_tensor *d = asg__sum_to(dx[k], in->shape);
      acc[in->id] = acc[in->id] ? asg_add(acc[in->id], d) : d;
    }
  }
  mark_gradient_nodes(g, &mark, mark_of);
  for (int i = 0; i < n && g->status == ASG_OK; i++) {
    asg_tensor *w = wrt[i];
    grads[i] = (w->id < N && acc[w->id]) ? acc[w->id] : asg_fill(g, w->dtype, w->shape, 0.0);
  }
  for (int i = 0; i < N; i++) /* left by an error */
    while (pend[i]) {
      slice_piece *p = pend[i];
      pend[i] = p->next;
      free(p);
    }
  free(reach), free(acc), free(need), free(dx), free(pend);
  asg__remat_end(rm);
  if (g->status != ASG_OK) {
    for (int i = 0; i < n; i++)
      grads[i] = NULL;
    return asg__error(g->status, "%s", g->err);
  }
  mark_gradient_nodes(g, &mark, y->id); /* zeros for unreached wrt */
  return ASG_OK;
}

asg_status asg_grad(asg_tensor *loss, int n, asg_tensor *const *wrt, asg_tensor **grads) {
  asg_graph *g = asg__graph_of("grad", 1, &loss);
  if (!g)
    return asg__tensor_ok(loss) && loss->graph->status ? loss->graph->status : ASG_ERR_INVALID;
  if (asg_shape_numel(loss->shape) != 1) {
    char b[160];
    asg__fail(g, ASG_ERR_SHAPE, "grad", "loss must hold one element, it is %s",
              asg__shape_str_g(g, loss->shape, b, sizeof b));
    return g->status;
  }
  if (!asg_dtype_is_float(loss->dtype)) {
    asg__fail(g, ASG_ERR_DTYPE, "grad", "loss must be float, it is %s",
              asg_dtype_name(loss->dtype));
    return g->status;
  }
  asg_tensor *seed = asg_fill(g, loss->dtype, loss->shape, 1.0);
  if (seed) seed->grad_of = loss->id + 1;
  return asg_vjp(loss, seed, n, wrt, grads);
}

bool asg_op_has_grad(int op) { return op >= 0 && op < ASG_OP_COUNT && asg__grad_rules()[op]; }
