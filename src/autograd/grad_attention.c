/* Gradient rule of fused attention: the dedicated backward ops recompute
 * the probabilities from the row logsumexp (no [..., Tq, Tk] tensor). */
#include "autograd/grad.h"

/* o = attention(q, k, v): lse = attention_lse(q, k), delta = sum(do * o)
 * over D; dq from one op, dk and dv packed in dkv [2, ..., Tk, D]. */
/* The key mask (an optional fourth input) gets no gradient. */
static void g_attention(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *q = y->in[0], *k = y->in[1], *v = y->in[2], *mask = y->n_in > 3 ? y->in[3] : NULL;
  double scale = y->attr.f[0];
  bool causal = y->attr.i[0] != 0;
  asg_tensor *lse = asg__attention_lse(q, k, mask, scale, causal);
  asg_tensor *delta = asg_sum(asg_mul(dy, y), ASG_AXES(-1), false); /* [..., Tq] */
  if (need[0]) dx[0] = asg__attention_bwd_q(q, k, v, dy, lse, delta, mask, scale, causal);
  if (need[1] || need[2]) {
    asg_tensor *dkv = asg__attention_bwd_kv(q, k, v, dy, lse, delta, mask, scale, causal);
    for (int i = 0; i < 2; i++)
      if (need[1 + i]) dx[1 + i] = asg_reshape(asg_slice(dkv, 0, i, i + 1, 1), k->shape);
  }
}

void asg_grad_register_attention(asg_grad_rule *t) { t[ASG_OP_ATTENTION] = g_attention; }
