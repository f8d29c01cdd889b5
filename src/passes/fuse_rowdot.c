/* Fusion rule: row dot products (fuse.c swaps the fused node in).
 *
 *   y = sum(mul(a, b), last axis)  ->  rowdot(a, b)
 *
 * for a, b of the mul's own shape and dtype (no broadcast), the sum over the
 * last axis only without kept dims, and the products read by nothing else
 * (attention's delta = sum(do * o) in its gradient rule). The fused step
 * reads a and b once and never stores the [..., C] products. */
#include "passes/passes.h"

bool asg__fuse_rowdot_match(const asg_fuse_view *v, asg_tensor *sum, asg_fuse_match *m) {
  if (sum->op != ASG_OP_SUM) return false;
  asg_tensor *mm = sum->in[0];
  const int nd = mm->shape.ndim;
  if (mm->op != ASG_OP_MUL || nd < 1 || sum->attr.i[0] != (int64_t)1 << (nd - 1) ||
      sum->attr.i[1] != 0 || v->readers[mm->id] != 1 ||
      (mm->dtype != ASG_F32 && mm->dtype != ASG_F64) || sum->dtype != mm->dtype)
    return false;
  for (int k = 0; k < 2; k++)
    if (mm->in[k]->dtype != mm->dtype || !asg_shape_equal(mm->in[k]->shape, mm->shape))
      return false;
  *m = (asg_fuse_match){.main = mm, .op = ASG_OP_ROWDOT, .n_in = 2, .in = {mm->in[0], mm->in[1]}};
  return true;
}
