/* Fusion rule: a product with its bias (fuse.c adds the ReLU after it).
 *
 *   y = relu(matmul(a, w) + b [N])       ->  matmul_bias_act(a, w, b), act 1
 *   y = gelu_tanh(matmul(a, w) + b [N])  ->  matmul_bias_act(a, w, b), act 2 (f32)
 *   y = matmul(a, w) + b [N]             ->  matmul_bias_act(a, w, b), act 0
 *   y = (matmul(a, w) + b [N]) + r       ->  matmul_bias_act(a, w, b, r), act 0
 *                                            (fuse.c; r of y's shape, added last)
 *   y = matmul(a, w) + r                 ->  matmul_bias_act(a, w, r), i3 = 1: no bias
 *                                            (Llama's projections into the residual
 *                                            stream; a gradient's sum of a product
 *                                            and another term)
 *
 * for a product [..., M, N] of either transposition: asg_nn_linear's graph
 * (x w^T + b) and the ONNX importer's Gemm and MatMul + Add. A backend adds
 * the bias and clamps in its GEMM's epilogue (cuBLASLt) or on each block
 * of rows as the GEMM finishes it (CPU), instead of two more passes over
 * the output. Training keeps the fusion: neither the product's nor the add's
 * gradient reads their outputs, and ReLU's reads its own (the fused one's);
 * gelu_tanh's reads its input, the add, which then stays (only inference
 * folds it: GPT-2's MLP when generating). */
#include "passes/passes.h"

bool asg__fuse_linear_match(const asg_fuse_view *v, asg_tensor *add, asg_fuse_match *m) {
  for (int k = 0; k < 2; k++) {
    asg_tensor *mm = add->in[k], *b = add->in[1 - k];
    if (mm->op != ASG_OP_MATMUL || mm->dtype != add->dtype || v->readers[mm->id] != 1 ||
        !asg_shape_equal(add->shape, mm->shape))
      continue;
    const int64_t N = mm->shape.dims[mm->shape.ndim - 1];
    if (b->dtype != add->dtype || b->shape.ndim != 1 || b->shape.dims[0] != N) continue;
    *m = (asg_fuse_match){.main = mm,
                          .op = ASG_OP_MATMUL_BIAS_ACT,
                          .n_in = 3,
                          .in = {mm->in[0], mm->in[1], b},
                          .attr = mm->attr,
                          .act_attr = 2,
                          .gelu_tanh = add->dtype == ASG_F32};
    return true;
  }
  for (int k = 0; k < 2; k++) { /* the residual form: a product plus r of its shape */
    asg_tensor *mm = add->in[k], *r = add->in[1 - k];
    /* made right after the product (the fused step runs where the add did,
     * so a later add would keep the product's operands alive longer: a
     * gradient's sum, built long after its product, in checkpointed blocks) */
    if (mm->op != ASG_OP_MATMUL || mm->dtype != add->dtype || v->readers[mm->id] != 1 ||
        add->id != mm->id + 1 || r == mm || r->dtype != add->dtype ||
        !asg_shape_equal(add->shape, mm->shape) || !asg_shape_equal(r->shape, add->shape))
      continue;
    *m = (asg_fuse_match){.main = mm,
                          .op = ASG_OP_MATMUL_BIAS_ACT,
                          .n_in = 3,
                          .in = {mm->in[0], mm->in[1], r},
                          .attr = mm->attr,
                          .act_attr = 2,
                          .no_act = true};
    m->attr.i[3] = 1;
    return true;
  }
  return false;
}
