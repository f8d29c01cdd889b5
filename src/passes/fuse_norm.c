/* Fusion rule: a norm into the products that read it (fuse.c runs it after
 * the add rules, so the product may already be a matmul_bias_act).
 *
 *   y = matmul(layernorm(x), w)          ->  norm_matmul(x, w, gamma, beta), i4 = 1
 *   y = matmul_bias_act(rmsnorm(x), w, ...) ->  norm_matmul(x, w, ..., weight), i4 = 2, i5 = 1
 *
 * when every reader of the norm's output is such a product taking it as its
 * first operand, untransposed: a decode step's q/k/v, MLP and head products
 * (not training, where the weight gradient's product reads it transposed,
 * nor a norm that is an output). The norm's step and its [..., M, K] output
 * go away; a backend can normalize the few rows of a decode step while it
 * loads them (CUDA: cuda_gemv.cu) instead of launching the norm on its own.
 * Products sharing one norm (Llama's q, k and v) each compute it.
 * ASG_FUSE_NORM=0: off. */
#include "passes/passes.h"

bool asg__fuse_norm_match(const asg_fuse_view *v, asg_tensor *p, asg_fuse_match *m) {
  if ((p->op != ASG_OP_MATMUL && p->op != ASG_OP_MATMUL_BIAS_ACT) || p->attr.i[0]) return false;
  asg_tensor *n = p->in[0];
  if ((n->op != ASG_OP_LAYERNORM && n->op != ASG_OP_RMSNORM) || n->dtype != p->dtype ||
      (p->dtype != ASG_F32 && p->dtype != ASG_F64))
    return false;
  if (v->readers[n->id] != v->first_reads[n->id])
    return false; /* some reader is not such a product */
  const int n_in = p->n_in + n->n_in - 1;
  if (n_in > ASG_FUSE_MAX_IN) return false;
  *m = (asg_fuse_match){
      .main = p, .op = ASG_OP_NORM_MATMUL, .n_in = n_in, .attr = p->attr, .act_attr = 2};
  for (int k = 0; k < p->n_in; k++)
    m->in[k] = p->in[k];
  m->in[0] = n->in[0];
  for (int k = 1; k < n->n_in; k++)
    m->in[p->n_in + k - 1] = n->in[k];
  m->attr.i[4] = n->op == ASG_OP_LAYERNORM ? 1 : 2;
  m->attr.i[5] = p->op == ASG_OP_MATMUL_BIAS_ACT;
  m->attr.f[0] = n->attr.f[0];
  return true;
}
