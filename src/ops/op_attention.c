/* Fused scaled-dot-product attention and its backward ops: the contract
 * that the kernels of every backend follow.
 *
 * Shapes: q [..., Tq, D], k [..., Tk, D], v [..., Tk, D] with identical
 * leading dims; one float dtype (f32/f64) everywhere.
 * Attributes (every op of the family): f0 = scale, i0 = causal (0/1; key j
 * is visible to query i iff j <= i, top-left aligned).
 *   ATTENTION        (q, k, v [, mask])                 -> o     [..., Tq, D]
 *   ATTENTION_LSE    (q, k [, mask])                    -> lse   [..., Tq]
 *   ATTENTION_BWD_Q  (q, k, v, do, lse, delta [, mask]) -> dq    [..., Tq, D]
 *   ATTENTION_BWD_KV (q, k, v, do, lse, delta [, mask]) -> dkv   [2, ..., Tk, D]
 * where s_ij = scale q_i.k_j, lse_i = log sum_j exp(s_ij) over visible j,
 * o_i = sum_j exp(s_ij - lse_i) v_j, delta_i = sum_d do_id o_id, and dkv
 * packs dk (index 0) and dv (index 1) so one kernel produces both.
 * The key mask [L..., Tk] (q's dtype; L... a prefix of q's leading dims,
 * e.g. [B, Tk] for q [B, H, Tq, D]): key j of the query rows under mask row
 * m is visible only where mask[m, j] != 0; the head (product of the leading
 * dims) bh reads mask row bh / (NB / NBm), NB and NBm the products of q's
 * and the mask's leading dims. A query that sees no key gets o_i = 0 and
 * lse_i = -inf, and contributes nothing to the gradients.
 * Kernels accumulate in the dtype (f32 scale = (float)f0); the forward uses
 * an online softmax, the backward ops recompute p_ij = exp(s_ij - lse_i).
 * The backward nodes are made by src/autograd/grad_attention.c. */
#include <math.h>

#include "ops/op_util.h"

/* q, k (and v) agree: float dtype, rank >= 2, leading dims, D; Tq, Tk,
 * D >= 1 (a query with no keys has no softmax). */
static bool check_qkv(asg_graph *g, const char *name, asg_tensor *q, asg_tensor *k, asg_tensor *v) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!asg__need_float(g, name, q) || !asg__same_dtype(g, name, q, k) ||
      (v && !asg__same_dtype(g, name, q, v)))
    return false;
  asg_tensor *t[3] = {q, k, v};
  const char *what[3] = {"q", "k", "v"};
  for (int i = 0; i < 3 && t[i]; i++)
    if (t[i]->shape.ndim < 2) {
      asg__fail(g, ASG_ERR_SHAPE, name, "%s must have rank >= 2 ([..., T, D]), got %s", what[i],
                SHP(t[i]->shape, b1));
      return false;
    }
  int nd = q->shape.ndim;
  bool ok = k->shape.ndim == nd;
  for (int d = 0; ok && d < nd - 2; d++)
    ok = k->shape.dims[d] == q->shape.dims[d];
  if (!ok || k->shape.dims[nd - 1] != q->shape.dims[nd - 1]) {
    asg__fail(g, ASG_ERR_SHAPE, name,
              "k %s does not match q %s: expected the same leading dims and D ([..., Tk, D])",
              SHP(k->shape, b1), SHP(q->shape, b2));
    return false;
  }
  if (v && !asg_shape_equal(v->shape, k->shape)) {
    asg__fail(g, ASG_ERR_SHAPE, name, "v %s does not match k %s: expected the same shape",
              SHP(v->shape, b1), SHP(k->shape, b2));
    return false;
  }
  /* symbolic T and D are >= 1 by their node constraints */
  if ((q->shape.dims[nd - 2] < 1 && !asg__dim_is_sym(q->shape.dims[nd - 2])) ||
      (k->shape.dims[nd - 2] < 1 && !asg__dim_is_sym(k->shape.dims[nd - 2])) ||
      (q->shape.dims[nd - 1] < 1 && !asg__dim_is_sym(q->shape.dims[nd - 1]))) {
    asg__fail(g, ASG_ERR_SHAPE, name, "needs Tq, Tk, D >= 1, got q %s, k %s", SHP(q->shape, b1),
              SHP(k->shape, b2));
    return false;
  }
  return true;
}

/* The key mask (see the top): q's dtype, [L..., Tk] with L... a prefix of
 * q's leading dims. */
static bool check_mask(asg_graph *g, const char *name, asg_tensor *q, asg_tensor *k,
                       asg_tensor *mask) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!asg__same_dtype(g, name, q, mask)) return false;
  const int nd = q->shape.ndim, r = mask->shape.ndim;
  bool ok = r >= 1 && r - 1 <= nd - 2 && mask->shape.dims[r - 1] == k->shape.dims[nd - 2];
  for (int d = 0; ok && d < r - 1; d++)
    ok = mask->shape.dims[d] == q->shape.dims[d];
  if (!ok)
    asg__fail(g, ASG_ERR_SHAPE, name,
              "key mask %s does not fit q %s: expected [L..., Tk] with L... leading dims of q "
              "(e.g. [B, Tk] for [B, H, Tq, D])",
              SHP(mask->shape, b1), SHP(q->shape, b2));
  return ok;
}

static bool check_scale(asg_graph *g, const char *name, double scale) {
  if (isfinite(scale)) return true;
  asg__fail(g, ASG_ERR_INVALID, name, "scale must be finite, got %g", scale);
  return false;
}

static asg_tensor *make(asg_graph *g, asg_op op, asg_dtype dt, asg_shape s, int n,
                        asg_tensor *const *in, double scale, bool causal) {
  asg_tensor *y = asg__node(g, op, dt, s, n, in);
  if (y) {
    y->attr.f[0] = scale;
    y->attr.i[0] = causal ? 1 : 0;
  }
  return y;
}

asg_tensor *asg_attention_masked(asg_tensor *q, asg_tensor *k, asg_tensor *v, asg_tensor *mask,
                                 double scale, bool causal) {
  asg_tensor *in[4] = {q, k, v, mask};
  const int n = mask ? 4 : 3;
  asg_graph *g = asg__graph_of("attention", n, in);
  if (!g || !check_qkv(g, "attention", q, k, v) || !check_scale(g, "attention", scale) ||
      (mask && !check_mask(g, "attention", q, k, mask)))
    return NULL;
  return make(g, ASG_OP_ATTENTION, q->dtype, q->shape, n, in, scale, causal);
}

asg_tensor *asg_attention(asg_tensor *q, asg_tensor *k, asg_tensor *v, double scale, bool causal) {
  return asg_attention_masked(q, k, v, NULL, scale, causal);
}

asg_tensor *asg__attention_lse(asg_tensor *q, asg_tensor *k, asg_tensor *mask, double scale,
                               bool causal) {
  asg_tensor *in[3] = {q, k, mask};
  const int n = mask ? 3 : 2;
  asg_graph *g = asg__graph_of("attention_lse", n, in);
  if (!g || !check_qkv(g, "attention_lse", q, k, NULL) || !check_scale(g, "attention_lse", scale) ||
      (mask && !check_mask(g, "attention_lse", q, k, mask)))
    return NULL;
  asg_shape s = q->shape; /* [..., Tq] */
  s.ndim--;
  return make(g, ASG_OP_ATTENTION_LSE, q->dtype, s, n, in, scale, causal);
}

/* The backward ops' extra inputs: do like q, lse and delta like q without D. */
static asg_tensor *bwd(asg_op op, asg_tensor *q, asg_tensor *k, asg_tensor *v, asg_tensor *dout,
                       asg_tensor *lse, asg_tensor *delta, asg_tensor *mask, double scale,
                       bool causal) {
  const char *name = asg__op_name(op);
  asg_tensor *in[7] = {q, k, v, dout, lse, delta, mask};
  const int n = mask ? 7 : 6;
  asg_graph *g = asg__graph_of(name, n, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g || !check_qkv(g, name, q, k, v) || !check_scale(g, name, scale) ||
      (mask && !check_mask(g, name, q, k, mask)))
    return NULL;
  asg_shape rows = q->shape;
  rows.ndim--;
  for (int i = 3; i < 6; i++) {
    if (!asg__same_dtype(g, name, q, in[i])) return NULL;
    asg_shape want = i == 3 ? q->shape : rows;
    if (!asg_shape_equal(in[i]->shape, want))
      return asg__fail(g, ASG_ERR_SHAPE, name, "%s is %s, expected %s",
                       i == 3   ? "do"
                       : i == 4 ? "lse"
                                : "delta",
                       SHP(in[i]->shape, b1), SHP(want, b2));
  }
  asg_shape s = q->shape;
  if (op == ASG_OP_ATTENTION_BWD_KV) { /* [2, ..., Tk, D] */
    if (k->shape.ndim + 1 > ASG_MAX_DIMS)
      return asg__fail(g, ASG_ERR_SHAPE, name, "k %s has too many dims to pack dk and dv",
                       SHP(k->shape, b1));
    s.ndim = k->shape.ndim + 1;
    s.dims[0] = 2;
    for (int d = 0; d < k->shape.ndim; d++)
      s.dims[d + 1] = k->shape.dims[d];
  }
  return make(g, op, q->dtype, s, n, in, scale, causal);
}

asg_tensor *asg__attention_bwd_q(asg_tensor *q, asg_tensor *k, asg_tensor *v, asg_tensor *dout,
                                 asg_tensor *lse, asg_tensor *delta, asg_tensor *mask, double scale,
                                 bool causal) {
  return bwd(ASG_OP_ATTENTION_BWD_Q, q, k, v, dout, lse, delta, mask, scale, causal);
}

asg_tensor *asg__attention_bwd_kv(asg_tensor *q, asg_tensor *k, asg_tensor *v, asg_tensor *dout,
                                  asg_tensor *lse, asg_tensor *delta, asg_tensor *mask,
                                  double scale, bool causal) {
  return bwd(ASG_OP_ATTENTION_BWD_KV, q, k, v, dout, lse, delta, mask, scale, causal);
}
