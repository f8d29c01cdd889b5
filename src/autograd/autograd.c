/* Reverse-mode autodiff as a graph-to-graph transform: walk the nodes that
 * lie between the wrt set and y in reverse creation order, apply each op's
 * rule, and sum the contributions reaching each input. */
#include <pthread.h>
#include <stdlib.h>

#include "autograd/grad.h"

static asg_grad_rule rules[ASG_OP_COUNT];
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

static void rules_init(void) {
  asg_grad_register_elementwise(rules);
  asg_grad_register_reduce(rules);
  asg_grad_register_matmul(rules);
  asg_grad_register_shape(rules);
  asg_grad_register_index(rules);
  asg_grad_register_nn(rules);
  asg_grad_register_conv(rules);
  asg_grad_register_attention(rules);
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

asg_status asg_vjp(asg_tensor *y, asg_tensor *dy, int n, asg_tensor *const *wrt,
                   asg_tensor **grads) {
  asg_tensor *pair[2] = {y, dy};
  asg_graph *g = asg__graph_of("grad", 2, pair);
  if (!g) /* message already set */
    return asg__tensor_ok(y) && y->graph->status ? y->graph->status : ASG_ERR_INVALID;
  if (n < 0 || (n > 0 && (!wrt || !grads)))
    return asg__error(ASG_ERR_INVALID, "grad: bad wrt list");
  char b1[96], b2[96];
  if (!asg_shape_equal(y->shape, dy->shape) || y->dtype != dy->dtype) {
    asg__fail(g, ASG_ERR_SHAPE, "grad", "upstream gradient is %s %s, output is %s %s",
              asg_dtype_name(dy->dtype), asg_shape_str(dy->shape, b1, sizeof b1),
              asg_dtype_name(y->dtype), asg_shape_str(y->shape, b2, sizeof b2));
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
  int N = y->id + 1; /* nodes made from here on are gradient nodes */
  int max_in = 1;
  for (int i = 0; i < N; i++)
    if (g->nodes[i]->n_in > max_in) max_in = g->nodes[i]->n_in;
  char *reach = calloc((size_t)N, 1);
  asg_tensor **acc = calloc((size_t)N, sizeof *acc);
  bool *need = malloc(sizeof *need * (size_t)max_in);
  asg_tensor **dx = malloc(sizeof *dx * (size_t)max_in);
  if (!reach || !acc || !need || !dx) {
    free(reach), free(acc), free(need), free(dx);
    return asg__error(ASG_ERR_OOM, "grad: out of memory");
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
    asg_tensor *t = g->nodes[i];
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
    R[t->op](t, acc[i], need, dx);
    for (int k = 0; k < nin; k++) {
      if (!need[k] || !dx[k]) continue;
      asg_tensor *in = t->in[k];
      asg_tensor *d = asg__sum_to(dx[k], in->shape);
      acc[in->id] = acc[in->id] ? asg_add(acc[in->id], d) : d;
    }
  }
  for (int i = 0; i < n && g->status == ASG_OK; i++) {
    asg_tensor *w = wrt[i];
    grads[i] = (w->id < N && acc[w->id]) ? acc[w->id] : asg_fill(g, w->dtype, w->shape, 0.0);
  }
  free(reach), free(acc), free(need), free(dx);
  if (g->status != ASG_OK) {
    for (int i = 0; i < n; i++)
      grads[i] = NULL;
    return asg__error(g->status, "%s", g->err);
  }
  return ASG_OK;
}

asg_status asg_grad(asg_tensor *loss, int n, asg_tensor *const *wrt, asg_tensor **grads) {
  asg_graph *g = asg__graph_of("grad", 1, &loss);
  if (!g)
    return asg__tensor_ok(loss) && loss->graph->status ? loss->graph->status : ASG_ERR_INVALID;
  if (asg_shape_numel(loss->shape) != 1) {
    char b[96];
    asg__fail(g, ASG_ERR_SHAPE, "grad", "loss must hold one element, it is %s",
              asg_shape_str(loss->shape, b, sizeof b));
    return g->status;
  }
  if (!asg_dtype_is_float(loss->dtype)) {
    asg__fail(g, ASG_ERR_DTYPE, "grad", "loss must be float, it is %s",
              asg_dtype_name(loss->dtype));
    return g->status;
  }
  return asg_vjp(loss, asg_fill(g, loss->dtype, loss->shape, 1.0), n, wrt, grads);
}

bool asg_op_has_grad(int op) { return op >= 0 && op < ASG_OP_COUNT && asg__grad_rules()[op]; }
