/* Statistics rule: a backward op's statistics taken from the forward step
 * that computes them anyway, as its further output (an aux node, ops.def).
 *
 *   o = attention(q, k, v [, mask]), ..., lse = attention_lse(q, k [, mask])
 *     -> lse = aux(o, 1): the forward step writes its rows' log-sum-exp too
 *
 * attention_lse is what attention's gradient rule builds for its backward
 * ops (src/autograd/grad_attention.c); without this rule it runs the
 * forward's Q.K^T and softmax over again. The forward must be one that runs
 * anyway (read by some node), over the same q, k and mask with the same
 * scale, causality and dtype, built before the lse. A forward gives its lse
 * to one reader: a second attention_lse of it stays as it is. */
#include "passes/passes.h"

asg_tensor *asg__fuse_stats_match(const asg_fuse_view *v, const asg_tensor *lse,
                                  const char *taken) {
  if (lse->op != ASG_OP_ATTENTION_LSE) return NULL;
  const bool masked = lse->n_in > 2;
  /* the forward reads q: look among q's readers built before the lse */
  const asg_tensor *q = lse->in[0];
  for (int i = q->id + 1; i < lse->id; i++) {
    asg_tensor *a = v->g->nodes[i];
    if (a->op != ASG_OP_ATTENTION || taken[i] || v->readers[i] == 0 || a->dtype != lse->dtype ||
        a->in[0] != q || a->in[1] != lse->in[1] || (a->n_in > 3) != masked ||
        (masked && a->in[3] != lse->in[2]) || a->attr.f[0] != lse->attr.f[0] ||
        a->attr.i[0] != lse->attr.i[0])
      continue;
    return a;
  }
  return NULL;
}
