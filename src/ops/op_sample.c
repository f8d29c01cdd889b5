/* Sampling ops: top-k / top-p filtering of logits (sample_filter).
 *
 * Inputs (logits [..., V] f32/f64, top_k one I32/I64 element, top_p one
 * element of f32 or the logits' dtype); the settings are read at run time so
 * one program serves any of them. Per row (the last axis), as Hugging Face's
 * TopKLogitsWarper then TopPLogitsWarper:
 *   - top-k: keep x >= the k-th largest value (every entry tied with it);
 *     k <= 0 or k >= V keeps all;
 *   - top-p: over the kept entries, with probabilities softmax-renormalized
 *     over them, keep x >= t where t is the largest value whose entries >= t
 *     hold probability >= p (the entry that crosses p is kept, and every
 *     entry tied with it); p >= 1 keeps all, p <= 0 (or NaN) only the
 *     maximum (and its ties);
 *   - other entries become -inf; a row with a NaN becomes all NaN.
 * Weights are exp(x - max), and 1 for entries equal to the max (so a row
 * with +inf keeps only its +inf entries under top-p; an all -inf row stays
 * all -inf). Kernels find the thresholds by bisection on the values' order
 * keys (no sort): see src/backends/cpu/cpu_sample.c. */
#include "ops/op_util.h"

static bool one_element(asg_shape s) { return s.ndim == 0 || (s.ndim == 1 && s.dims[0] == 1); }

asg_tensor *asg_sample_filter(asg_tensor *logits, asg_tensor *top_k, asg_tensor *top_p) {
  asg_tensor *in[3] = {logits, top_k, top_p};
  asg_graph *g = asg__graph_of("sample_filter", 3, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g) return NULL;
  if (logits->dtype != ASG_F32 && logits->dtype != ASG_F64)
    return asg__fail(g, ASG_ERR_DTYPE, "sample_filter", "logits must be f32 or f64, got %s",
                     asg_dtype_name(logits->dtype));
  if (logits->shape.ndim < 1)
    return asg__fail(g, ASG_ERR_SHAPE, "sample_filter", "logits must be [..., V], got a scalar");
  if (top_k->dtype != ASG_I32 && top_k->dtype != ASG_I64)
    return asg__fail(g, ASG_ERR_DTYPE, "sample_filter", "top_k must be i32 or i64, got %s",
                     asg_dtype_name(top_k->dtype));
  if (top_p->dtype != ASG_F32 && top_p->dtype != logits->dtype)
    return asg__fail(g, ASG_ERR_DTYPE, "sample_filter", "top_p must be f32 or %s, got %s",
                     asg_dtype_name(logits->dtype), asg_dtype_name(top_p->dtype));
  if (!one_element(top_k->shape) || !one_element(top_p->shape))
    return asg__fail(g, ASG_ERR_SHAPE, "sample_filter",
                     "top_k %s and top_p %s must have one element ([] or [1])",
                     SHP(top_k->shape, b1), SHP(top_p->shape, b2));
  return asg__node(g, ASG_OP_SAMPLE_FILTER, logits->dtype, logits->shape, 3, in);
}
