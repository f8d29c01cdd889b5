/* Further-output rules: a value another step computes anyway, from the same
 * inputs, becomes that step's further output (an aux node, ops.def), so it
 * is not computed again.
 *
 *   o = attention(q, k, v [, mask]), ..., lse = attention_lse(q, k [, mask])
 *     -> lse = aux(o, 1): the forward step writes its rows' log-sum-exp
 *   dx = layernorm_bwd_x(dy, x, gamma), dg = layernorm_bwd_gamma(dy, x),
 *   db = sum(dy over every axis but the last)
 *     -> dg = aux(dx, 1), db = aux(dx, 2): one pass over dy and x
 *   the same for batchnorm_bwd_x / batchnorm_bwd_gamma and the sum of dy
 *   over every axis but the channels (1)
 *   y = batchnorm(x, gamma, beta), m = mean(x), v = var(x) (biased) over
 *   every axis but the channels -> m = aux(y, 1), v = aux(y, 2): the batch
 *   statistics the running averages are made of, from the pass that
 *   normalizes with them
 *
 * These are what the gradient rules of attention, layernorm and batchnorm
 * build (src/autograd/grad_attention.c, grad_nn.c) and what the batch-norm
 * layer reads for its running statistics (src/nn/norm.c). The step that takes them on
 * must be one that runs anyway (read by some node), built before the value,
 * over the same inputs with the same attributes and dtype; every input of
 * the value is an input of that step, so it is alive there. A backend
 * without a kernel that writes them runs the value's own op right after
 * the step (runtime/plan.h). */
#include "passes/passes.h"

/* A reduction over the axes of mask `keep` left out, no kept dims: every
 * axis but the last (layernorm rows) or every axis but 1 (batch-norm
 * channels) of a tensor of at least 2 dims. */
static bool reduces_all_but(const asg_tensor *t, int axis) {
  const int nd = t->in[0]->shape.ndim;
  if (nd < 2 || t->attr.i[1] != 0) return false;
  const int a = axis < 0 ? nd - 1 : axis;
  return t->attr.i[0] == ((((int64_t)1 << nd) - 1) & ~((int64_t)1 << a));
}

/* Hosts a value may be a further output of: op and slot, at most 2 (a sum
 * over axis 0 of a 2-D tensor is both a layernorm's and a batch norm's). */
typedef struct stats_host {
  asg_op op;
  int slot;
} stats_host;

static int hosts_of(const asg_tensor *t, stats_host *h) {
  int n = 0;
  switch (t->op) {
  case ASG_OP_ATTENTION_LSE: h[n++] = (stats_host){ASG_OP_ATTENTION, 1}; break;
  case ASG_OP_LAYERNORM_BWD_GAMMA: h[n++] = (stats_host){ASG_OP_LAYERNORM_BWD_X, 1}; break;
  case ASG_OP_BATCHNORM_BWD_GAMMA: h[n++] = (stats_host){ASG_OP_BATCHNORM_BWD_X, 1}; break;
  case ASG_OP_SUM: /* the beta gradients */
    if (reduces_all_but(t, -1)) h[n++] = (stats_host){ASG_OP_LAYERNORM_BWD_X, 2};
    if (reduces_all_but(t, 1)) h[n++] = (stats_host){ASG_OP_BATCHNORM_BWD_X, 2};
    break;
  case ASG_OP_MEAN:
    if (reduces_all_but(t, 1)) h[n++] = (stats_host){ASG_OP_BATCHNORM, 1};
    break;
  case ASG_OP_VAR: /* the biased variance the forward normalizes with */
    if (reduces_all_but(t, 1) && t->attr.i[2] == 0) h[n++] = (stats_host){ASG_OP_BATCHNORM, 2};
    break;
  default: break;
  }
  return n;
}

/* Host h computes t as its further output of kind k. */
static bool same_work(const asg_tensor *h, const asg_tensor *t, stats_host k) {
  switch (k.op) {
  case ASG_OP_ATTENTION: { /* q, k and the key mask (the last input) */
    const bool masked = t->n_in > 2;
    return h->in[0] == t->in[0] && h->in[1] == t->in[1] && (h->n_in > 3) == masked &&
           (!masked || h->in[3] == t->in[2]) && h->attr.f[0] == t->attr.f[0] &&
           h->attr.i[0] == t->attr.i[0];
  }
  case ASG_OP_LAYERNORM_BWD_X:
  case ASG_OP_BATCHNORM_BWD_X:
    if (k.slot == 1) /* dy, x, eps */
      return h->in[0] == t->in[0] && h->in[1] == t->in[1] && h->attr.f[0] == t->attr.f[0];
    return h->in[0] == t->in[0];                      /* dy, summed to the beta gradient [C] */
  case ASG_OP_BATCHNORM: return h->in[0] == t->in[0]; /* x */
  default: return false;
  }
}

asg_tensor *asg__fuse_stats_match(const asg_fuse_view *v, const asg_tensor *t,
                                  const unsigned char *used, int *slot) {
  stats_host hs[2];
  const int nh = hosts_of(t, hs);
  if (!nh) return NULL;
  /* the host reads t's first input: look among the nodes built after it */
  const asg_tensor *a0 = t->in[0];
  for (int i = a0->id + 1; i < t->id; i++) {
    asg_tensor *h = v->g->nodes[i];
    if (v->readers[i] == 0 || h->dtype != t->dtype) continue;
    for (int k = 0; k < nh; k++)
      if (h->op == hs[k].op && !(used[i] >> hs[k].slot & 1) && same_work(h, t, hs[k])) {
        *slot = hs[k].slot;
        return h;
      }
  }
  return NULL;
}
