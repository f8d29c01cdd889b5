/* Fused optimizer update ops (internal: built by src/optim/optim.c). Each is
 * elementwise over same-shape F32/F64 tensors; none is differentiated.
 *
 *   ADAM_MOMENT  (m, g)  -> m * beta + g * (1 - beta)
 *   ADAM_MOMENT2 (v, g)  -> v * beta + (g * g) * (1 - beta)
 *     attrs f0 = beta, f1 = 1 - beta (computed in double here, then each is
 *     rounded to the tensor dtype, as asg_mul_scalar would round them)
 *   ADAM_PARAM (p, m, v, lr, bc1, bc2) -> the new parameter
 *     attrs f0 = eps, f1 = decoupled weight decay wd (AdamW; 0 for Adam).
 *     lr, bc1, bc2 are scalars (one element) of one float dtype S; these
 *     are computed in S and then rounded to the parameter's dtype T:
 *       step = (T)(lr / bc1), sbc2 = (T)sqrt(bc2), decay = (T)(1 - lr * (S)wd)
 *     and then, in T:
 *       p' = (wd != 0 ? p * decay : p) - step * (m / (sqrt(v) / sbc2 + (T)eps))
 *     which is exactly the sequence of separate ops optim.c built before.
 *
 * The kernels must keep that order of operations (CPU: cpu_optim.c, CUDA:
 * cuda_optim.cu). */
#include "ops/op_util.h"

/* The element tensors share graph, float dtype and shape. */
static bool same_elems(asg_graph *g, const char *op, int n, asg_tensor *const *t) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (t[0]->dtype != ASG_F32 && t[0]->dtype != ASG_F64) {
    asg__fail(g, ASG_ERR_DTYPE, op, "needs f32 or f64 tensors, got %s",
              asg_dtype_name(t[0]->dtype));
    return false;
  }
  for (int i = 1; i < n; i++) {
    if (!asg__same_dtype(g, op, t[0], t[i])) return false;
    if (!asg_shape_equal(t[0]->shape, t[i]->shape)) {
      asg__fail(g, ASG_ERR_SHAPE, op, "input %d is %s, input 0 is %s (no broadcasting)", i,
                SHP(t[i]->shape, b1), SHP(t[0]->shape, b2));
      return false;
    }
  }
  return true;
}

static asg_tensor *moment(asg_op op, asg_tensor *m, asg_tensor *gr, double beta) {
  const char *name = asg__op_name(op);
  asg_tensor *in[2] = {m, gr};
  asg_graph *g = asg__graph_of(name, 2, in);
  if (!g || !same_elems(g, name, 2, in)) return NULL;
  if (!(beta >= 0 && beta <= 1))
    return asg__fail(g, ASG_ERR_INVALID, name, "beta must be in [0, 1], got %g", beta);
  asg_tensor *y = asg__node(g, op, m->dtype, m->shape, 2, in);
  if (y) {
    y->attr.f[0] = beta;
    y->attr.f[1] = 1 - beta;
  }
  return y;
}

asg_tensor *asg__adam_moment(asg_tensor *m, asg_tensor *g, double beta) {
  return moment(ASG_OP_ADAM_MOMENT, m, g, beta);
}

asg_tensor *asg__adam_moment2(asg_tensor *v, asg_tensor *g, double beta) {
  return moment(ASG_OP_ADAM_MOMENT2, v, g, beta);
}

asg_tensor *asg__adam_param(asg_tensor *p, asg_tensor *m, asg_tensor *v, asg_tensor *lr,
                            asg_tensor *bc1, asg_tensor *bc2, double eps, double wd) {
  asg_tensor *in[6] = {p, m, v, lr, bc1, bc2};
  asg_graph *g = asg__graph_of("adam_param", 6, in);
  if (!g || !same_elems(g, "adam_param", 3, in)) return NULL;
  for (int i = 3; i < 6; i++) {
    if (asg_shape_numel(in[i]->shape) != 1 || (in[i]->dtype != ASG_F32 && in[i]->dtype != ASG_F64))
      return asg__fail(g, ASG_ERR_INVALID, "adam_param",
                       "input %d (lr, bc1, bc2) must be a one-element f32/f64 tensor", i);
    if (!asg__same_dtype(g, "adam_param", in[3], in[i])) return NULL;
  }
  if (!(eps >= 0) || !(wd >= 0))
    return asg__fail(g, ASG_ERR_INVALID, "adam_param", "eps %g and wd %g must be >= 0", eps, wd);
  asg_tensor *y = asg__node(g, ASG_OP_ADAM_PARAM, p->dtype, p->shape, 6, in);
  if (y) {
    y->attr.f[0] = eps;
    y->attr.f[1] = wd;
  }
  return y;
}
