/* Matmul constructor. Attributes: i0 = transpose a, i1 = transpose b. */
#include "ops/op_util.h"

asg_tensor *asg_matmul_t(asg_tensor *a, asg_tensor *b, bool ta, bool tb) {
  asg_tensor *in[2] = {a, b};
  asg_graph *g = asg__graph_of("matmul", 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF], b4[ASG_SHAPE_BUF];
  if (!g || !asg__same_dtype(g, "matmul", a, b) || !asg__need_float(g, "matmul", a)) return NULL;
  if (a->shape.ndim < 2 || b->shape.ndim < 2)
    return asg__fail(g, ASG_ERR_SHAPE, "matmul", "operands need rank >= 2, got %s x %s",
                     SHP(a->shape, b1), SHP(b->shape, b2));
  int ra = a->shape.ndim, rb = b->shape.ndim;
  int64_t M = a->shape.dims[ra - (ta ? 1 : 2)], K = a->shape.dims[ra - (ta ? 2 : 1)];
  int64_t K2 = b->shape.dims[rb - (tb ? 1 : 2)], N = b->shape.dims[rb - (tb ? 2 : 1)];
  if (K != K2)
    return asg__fail(g, ASG_ERR_SHAPE, "matmul", "%s%s x %s%s: inner dims %s != %s",
                     SHP(a->shape, b1), ta ? "^T" : "", SHP(b->shape, b2), tb ? "^T" : "",
                     DIM(K, b3), DIM(K2, b4));
  asg_shape ba = a->shape, bb = b->shape, bo;
  ba.ndim -= 2;
  bb.ndim -= 2;
  if (!asg__broadcast_shapes(ba, bb, &bo))
    return asg__fail(g, ASG_ERR_SHAPE, "matmul", "batch dims of %s and %s do not broadcast",
                     SHP(a->shape, b1), SHP(b->shape, b2));
  bo.dims[bo.ndim++] = M;
  bo.dims[bo.ndim++] = N;
  asg_tensor *y = asg__node(g, ASG_OP_MATMUL, a->dtype, bo, 2, in);
  if (y) {
    y->attr.i[0] = ta;
    y->attr.i[1] = tb;
  }
  return y;
}

asg_tensor *asg_matmul(asg_tensor *a, asg_tensor *b) { return asg_matmul_t(a, b, false, false); }
