/* Further-output rules: a value another step computes anyway, from the same
 * inputs, becomes that step's further output (an aux node, ops.def), so it
 * is not computed again.
 *
 *   o = attention(q, k, v [, mask]), ..., lse = attention_lse(q, k [, mask])
 *     -> lse = aux(o, 1): the forward step writes its rows' log-sum-exp
 *   dx = layernorm_bwd_x(dy, x, gamma), dg = layernorm_bwd_gamma(dy, x),
 *   db = sum(dy over every axis but the last)
 *     -> dg = aux(dx, 1), db = aux(dx, 2): one pass over dy and x
 *
 * These are what the gradient rules of attention and layernorm build
 * (src/autograd/grad_attention.c, grad_nn.c). The step that takes them on
 * must be one that runs anyway (read by some node), built before the value,
 * over the same inputs with the same attributes and dtype; every input of
 * the value is an input of that step, so it is alive there. A backend
 * without a kernel that writes them runs the value's own op right after
 * the step (runtime/plan.h). */
#include "passes/passes.h"

/* sum over every axis but the last, no kept dims, of a [.., C] tensor */
static bool row_sum(const asg_tensor *t) {
  if (t->op != ASG_OP_SUM) return false;
  const int nd = t->in[0]->shape.ndim;
  return nd >= 2 && t->attr.i[0] == ((int64_t)1 << (nd - 1)) - 1 && t->attr.i[1] == 0;
}

asg_tensor *asg__fuse_stats_match(const asg_fuse_view *v, const asg_tensor *t,
                                  const unsigned char *used, int *slot) {
  asg_op host;
  if (t->op == ASG_OP_ATTENTION_LSE)
    host = ASG_OP_ATTENTION, *slot = 1;
  else if (t->op == ASG_OP_LAYERNORM_BWD_GAMMA)
    host = ASG_OP_LAYERNORM_BWD_X, *slot = 1;
  else if (row_sum(t))
    host = ASG_OP_LAYERNORM_BWD_X, *slot = 2;
  else
    return NULL;
  /* the host reads t's first input: look among the nodes built after it */
  const asg_tensor *a0 = t->in[0];
  for (int i = a0->id + 1; i < t->id; i++) {
    asg_tensor *h = v->g->nodes[i];
    if (h->op != host || (used[i] >> *slot & 1) || v->readers[i] == 0 || h->dtype != t->dtype)
      continue;
    bool ok;
    if (host == ASG_OP_ATTENTION) { /* q, k and the key mask (the last input) */
      const bool masked = t->n_in > 2;
      ok = h->in[0] == t->in[0] && h->in[1] == t->in[1] && (h->n_in > 3) == masked &&
           (!masked || h->in[3] == t->in[2]) && h->attr.f[0] == t->attr.f[0] &&
           h->attr.i[0] == t->attr.i[0];
    } else if (*slot == 1) { /* dy, x, eps */
      ok = h->in[0] == t->in[0] && h->in[1] == t->in[1] && h->attr.f[0] == t->attr.f[0];
    } else { /* dy, summed to the beta gradient [C] */
      ok = h->in[0] == t->in[0];
    }
    if (ok) return h;
  }
  return NULL;
}
