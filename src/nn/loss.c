/* Loss functions built from public ops (so autograd differentiates them
 * like any graph). Internal headers are used only to fail the graph with a
 * message naming the loss and the shapes. */
#include <math.h>

#include "asg/loss.h"
#include "ops/op_util.h"

static bool check_reduction(asg_graph *g, const char *name, asg_reduction r) {
  if (r == ASG_REDUCE_MEAN || r == ASG_REDUCE_SUM || r == ASG_REDUCE_NONE) return true;
  asg__fail(g, ASG_ERR_INVALID, name, "reduction %d is not mean, sum or none", (int)r);
  return false;
}

/* Validates a pair of same-shape float tensors and the reduction. */
static asg_graph *check_pair(const char *name, asg_tensor *a, asg_tensor *b, asg_reduction r) {
  asg_tensor *in[2] = {a, b};
  asg_graph *g = asg__graph_of(name, 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g) return NULL;
  if (!asg__need_float(g, name, a) || !asg__same_dtype(g, name, a, b)) return NULL;
  if (!asg_shape_equal(a->shape, b->shape)) {
    asg__fail(g, ASG_ERR_SHAPE, name, "input %s and target %s differ", SHP(a->shape, b1),
              SHP(b->shape, b2));
    return NULL;
  }
  return check_reduction(g, name, r) ? g : NULL;
}

static asg_tensor *reduce(asg_tensor *t, asg_reduction r) {
  if (r == ASG_REDUCE_MEAN) return asg_mean(t, ASG_ALL_AXES, false);
  if (r == ASG_REDUCE_SUM) return asg_sum(t, ASG_ALL_AXES, false);
  return t;
}

static asg_tensor *k(asg_tensor *like, double v) { return asg_scalar(like->graph, like->dtype, v); }

asg_tensor *asg_mse_loss(asg_tensor *x, asg_tensor *y, asg_reduction r) {
  if (!check_pair("mse_loss", x, y, r)) return NULL;
  asg_tensor *d = asg_sub(x, y);
  return reduce(asg_mul(d, d), r);
}

asg_tensor *asg_l1_loss(asg_tensor *x, asg_tensor *y, asg_reduction r) {
  if (!check_pair("l1_loss", x, y, r)) return NULL;
  return reduce(asg_abs(asg_sub(x, y)), r);
}

/* where(|d| < beta, 0.5 d^2 * quad, |d| * lin - off): the two branches of
 * smooth L1 and Huber differ only by these constants. */
static asg_tensor *piecewise(asg_tensor *x, asg_tensor *y, double beta, double quad, double lin,
                             double off, asg_reduction r) {
  asg_tensor *d = asg_sub(x, y), *ad = asg_abs(d);
  asg_tensor *q = asg_mul_scalar(asg_mul(d, d), 0.5 * quad);
  asg_tensor *l = asg_add_scalar(asg_mul_scalar(ad, lin), -off);
  return reduce(asg_where(asg_lt(ad, k(x, beta)), q, l), r);
}

asg_tensor *asg_smooth_l1_loss(asg_tensor *x, asg_tensor *y, double beta, asg_reduction r) {
  asg_graph *g = check_pair("smooth_l1_loss", x, y, r);
  if (!g) return NULL;
  if (!(beta >= 0))
    return asg__fail(g, ASG_ERR_INVALID, "smooth_l1_loss", "beta must be >= 0, got %g", beta);
  if (beta == 0) return reduce(asg_abs(asg_sub(x, y)), r);
  return piecewise(x, y, beta, 1 / beta, 1, 0.5 * beta, r);
}

asg_tensor *asg_huber_loss(asg_tensor *x, asg_tensor *y, double delta, asg_reduction r) {
  asg_graph *g = check_pair("huber_loss", x, y, r);
  if (!g) return NULL;
  if (!(delta > 0))
    return asg__fail(g, ASG_ERR_INVALID, "huber_loss", "delta must be > 0, got %g", delta);
  return piecewise(x, y, delta, 1, delta, 0.5 * delta * delta, r);
}

/* Checks scores [..., C] against integer labels [...]. */
static asg_graph *check_class(const char *name, asg_tensor *x, asg_tensor *labels,
                              asg_reduction r) {
  asg_tensor *in[2] = {x, labels};
  asg_graph *g = asg__graph_of(name, 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, name, x)) return NULL;
  if (labels->dtype != ASG_I32 && labels->dtype != ASG_I64) {
    asg__fail(g, ASG_ERR_DTYPE, name, "labels are %s, need int32 or int64",
              asg_dtype_name(labels->dtype));
    return NULL;
  }
  asg_shape want = x->shape;
  want.ndim = x->shape.ndim - 1;
  if (x->shape.ndim < 1 || !asg_shape_equal(want, labels->shape)) {
    asg__fail(g, ASG_ERR_SHAPE, name,
              "scores %s need labels of their shape without the last "
              "(class) dim, got %s",
              SHP(x->shape, b1), SHP(labels->shape, b2));
    return NULL;
  }
  return check_reduction(g, name, r) ? g : NULL;
}

/* Per-row loss (1 - s) * w[y] * -logp[y] + s/C * sum_c w[c] * -logp[c]
 * (w = 1 without a weight), zero on ignored rows, reduced with PyTorch's
 * weighted mean: sum of the rows / sum of w[y] over non-ignored rows (the
 * row count without weights; NaN when every row is ignored, as PyTorch; the
 * gradient is then zero, as PyTorch's). Ignored rows pick class 0 so that
 * one_hot sees only real labels: it reports the others (out of range) when
 * the program runs. The rows are zeroed with where, not a product with the
 * mask, so that their gradient stays 0 even when the mean divides by zero. */
static asg_tensor *nll_rows(asg_tensor *logp, asg_tensor *labels, asg_tensor *w, double s,
                            int64_t ignore, asg_reduction r) {
  int last = logp->shape.ndim - 1;
  int64_t C = logp->shape.dims[last];
  asg_dtype dt = logp->dtype;
  asg_graph *g = logp->graph;
  asg_tensor *zero = asg_scalar(g, dt, 0);
  asg_tensor *keep_l = asg_ne(labels, asg_scalar(g, labels->dtype, (double)ignore));
  asg_tensor *safe = asg_where(keep_l, labels, asg_scalar(g, labels->dtype, 0));
  asg_tensor *keep = asg_cast(keep_l, dt);
  asg_tensor *oh = asg_one_hot(safe, C, dt);
  asg_tensor *picked = asg_sum(asg_mul(oh, logp), ASG_AXES(last), false);
  asg_tensor *wy = w ? asg_sum(asg_mul(oh, w), ASG_AXES(last), false) : NULL;
  asg_tensor *row = asg_mul_scalar(wy ? asg_mul(wy, picked) : picked, -(1 - s));
  if (s != 0) {
    asg_tensor *all = asg_sum(w ? asg_mul(logp, w) : logp, ASG_AXES(last), false);
    row = asg_sub(row, asg_mul_scalar(all, s / (double)C));
  }
  row = asg_where(keep, row, zero);
  if (r == ASG_REDUCE_NONE) return row;
  asg_tensor *total = asg_sum(row, ASG_ALL_AXES, false);
  if (r == ASG_REDUCE_SUM) return total;
  asg_tensor *den = wy ? asg_where(keep, wy, zero) : keep;
  return asg_div(total, asg_sum(den, ASG_ALL_AXES, false));
}

/* A class weight must be a float [C] of the scores' dtype (or NULL). */
static bool check_class_weight(asg_graph *g, const char *name, asg_tensor *x, asg_tensor *w) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!w) return true;
  asg_tensor *in[2] = {x, w};
  if (!asg__graph_of(name, 2, in) || !asg__same_dtype(g, name, x, w)) return false;
  int64_t C = x->shape.dims[x->shape.ndim - 1];
  if (w->shape.ndim != 1 || w->shape.dims[0] != C) {
    asg__fail(g, ASG_ERR_SHAPE, name, "weight %s must be [C] for scores %s", SHP(w->shape, b1),
              SHP(x->shape, b2));
    return false;
  }
  return true;
}

asg_tensor *asg_cross_entropy_loss(asg_tensor *logits, asg_tensor *labels, double s,
                                   int64_t ignore_index, asg_reduction r) {
  return asg_cross_entropy_loss_weighted(logits, labels, NULL, s, ignore_index, r);
}

asg_tensor *asg_cross_entropy_loss_weighted(asg_tensor *logits, asg_tensor *labels,
                                            asg_tensor *weight, double s, int64_t ignore_index,
                                            asg_reduction r) {
  const char *name = "cross_entropy_loss";
  asg_graph *g = check_class(name, logits, labels, r);
  if (!g || !check_class_weight(g, name, logits, weight)) return NULL;
  if (!(s >= 0 && s < 1))
    return asg__fail(g, ASG_ERR_INVALID, name, "label smoothing must be in [0, 1), got %g", s);
  if (r == ASG_REDUCE_MEAN && !weight)
    return asg_softmax_cross_entropy(logits, labels, s, ignore_index);
  return nll_rows(asg_log_softmax(logits, -1), labels, weight, s, ignore_index, r);
}

asg_tensor *asg_nll_loss(asg_tensor *logp, asg_tensor *labels, int64_t ignore_index,
                         asg_reduction r) {
  return asg_nll_loss_weighted(logp, labels, NULL, ignore_index, r);
}

asg_tensor *asg_nll_loss_weighted(asg_tensor *logp, asg_tensor *labels, asg_tensor *weight,
                                  int64_t ignore_index, asg_reduction r) {
  asg_graph *g = check_class("nll_loss", logp, labels, r);
  if (!g || !check_class_weight(g, "nll_loss", logp, weight)) return NULL;
  return nll_rows(logp, labels, weight, 0, ignore_index, r);
}

asg_tensor *asg_bce_loss(asg_tensor *p, asg_tensor *y, asg_tensor *w, asg_reduction r) {
  asg_graph *g = check_pair("bce_loss", p, y, r);
  if (!g) return NULL;
  /* clamp the logs, not p, so the loss stays finite at p = 0 or 1 */
  asg_tensor *lp = asg_clamp(asg_log(p), -100, INFINITY);
  asg_tensor *lq = asg_clamp(asg_log(asg_sub(k(p, 1), p)), -100, INFINITY);
  asg_tensor *l = asg_neg(asg_add(asg_mul(y, lp), asg_mul(asg_sub(k(p, 1), y), lq)));
  if (w) l = asg_mul(l, w);
  return reduce(l, r);
}

/* (1 - y) x + w_y softplus(-x): softplus(-x) = log(1 + exp(-|x|)) + max(-x,
 * 0), evaluated stably with log1p by the kernel; its gradient -sigmoid(-x)
 * is exact everywhere. */
static asg_tensor *bce_logits(asg_tensor *x, asg_tensor *y, asg_tensor *pw) {
  asg_tensor *sp = asg_softplus(asg_neg(x), 1, 30);
  asg_tensor *lin = asg_mul(asg_sub(k(x, 1), y), x);
  if (pw) sp = asg_mul(asg_add_scalar(asg_mul(asg_add_scalar(pw, -1), y), 1), sp);
  return asg_add(lin, sp);
}

asg_tensor *asg_bce_with_logits_loss(asg_tensor *x, asg_tensor *y, asg_tensor *pw,
                                     asg_reduction r) {
  asg_graph *g = check_pair("bce_with_logits_loss", x, y, r);
  if (!g) return NULL;
  return reduce(bce_logits(x, y, pw), r);
}

asg_tensor *asg_kl_div_loss(asg_tensor *in, asg_tensor *t, bool log_target, asg_reduction r) {
  asg_reduction rr = r == ASG_REDUCE_BATCHMEAN ? ASG_REDUCE_SUM : r;
  asg_graph *g = check_pair("kl_div_loss", in, t, rr);
  if (!g) return NULL;
  asg_tensor *l;
  if (log_target) {
    l = asg_mul(asg_exp(t), asg_sub(t, in));
  } else { /* xlogy(p, p) - p log q with xlogy(0, 0) = 0; log never sees 0 */
    asg_tensor *pos = asg_gt(t, k(t, 0));
    asg_tensor *safe = asg_where(pos, t, k(t, 1));
    l = asg_sub(asg_mul(t, asg_log(safe)), asg_mul(t, in));
  }
  if (r != ASG_REDUCE_BATCHMEAN) return reduce(l, r);
  int64_t b = in->shape.ndim ? in->shape.dims[0] : 1;
  int64_t kb, bsym = asg__count_dim(g, &b, 1, &kb); /* a symbolic batch: its bound value */
  asg_tensor *sum = asg_sum(l, ASG_ALL_AXES, false);
  return bsym ? asg_mul(sum, asg__dim_ratio(g, in->dtype, bsym, 0, 1, kb, 0))
              : asg_mul_scalar(sum, 1.0 / (double)kb);
}

/* ---- focal, margin and embedding losses ---- */

/* torchvision.ops.sigmoid_focal_loss: bce_with_logits * (1 - p_t)^gamma *
 * alpha_t. 1 - p_t is sigmoid(x) (1 - y) + sigmoid(-x) y, a sum of two
 * non-negative terms for y in [0, 1], so pow never sees a rounded negative. */
asg_tensor *asg_sigmoid_focal_loss(asg_tensor *x, asg_tensor *y, double alpha, double gamma,
                                   asg_reduction r) {
  const char *name = "sigmoid_focal_loss";
  asg_graph *g = check_pair(name, x, y, r);
  if (!g) return NULL;
  if (!(gamma >= 0) || isinf(gamma))
    return asg__fail(g, ASG_ERR_INVALID, name, "gamma must be finite and >= 0, got %g", gamma);
  if (!(alpha <= 1))
    return asg__fail(g, ASG_ERR_INVALID, name,
                     "alpha must be <= 1 (negative: no class balance), got %g", alpha);
  asg_tensor *l = bce_logits(x, y, NULL);
  if (gamma != 0) {
    asg_tensor *q =
        asg_add(asg_mul(asg_sigmoid(x), asg_sub(k(x, 1), y)), asg_mul(asg_sigmoid(asg_neg(x)), y));
    asg_tensor *m = gamma == 1 ? q : gamma == 2 ? asg_mul(q, q) : asg_pow_scalar(q, gamma);
    l = asg_mul(l, m);
  }
  /* alpha y + (1 - alpha)(1 - y) */
  if (alpha >= 0) l = asg_mul(l, asg_add_scalar(asg_mul_scalar(y, 2 * alpha - 1), 1 - alpha));
  return reduce(l, r);
}

/* Fails unless b has a's dtype and shape; the message names both. */
static bool check_same(asg_graph *g, const char *name, const char *an, asg_tensor *a,
                       const char *bn, asg_tensor *b) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!asg__same_dtype(g, name, a, b)) return false;
  if (asg_shape_equal(a->shape, b->shape)) return true;
  asg__fail(g, ASG_ERR_SHAPE, name, "%s %s and %s %s differ", an, SHP(a->shape, b1), bn,
            SHP(b->shape, b2));
  return false;
}

/* A target of +1/-1 labels of shape want, in x's float dtype or I32/I64;
 * returned in x's dtype. */
static asg_tensor *sign_target(asg_graph *g, const char *name, asg_tensor *x, asg_tensor *y,
                               asg_shape want) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (y->dtype != x->dtype && y->dtype != ASG_I32 && y->dtype != ASG_I64)
    return asg__fail(g, ASG_ERR_DTYPE, name, "target is %s, need %s (as the input), int32 or int64",
                     asg_dtype_name(y->dtype), asg_dtype_name(x->dtype));
  if (!asg_shape_equal(want, y->shape))
    return asg__fail(g, ASG_ERR_SHAPE, name, "target %s must be %s", SHP(y->shape, b1),
                     SHP(want, b2));
  return asg_cast(y, x->dtype);
}

static bool check_finite(asg_graph *g, const char *name, const char *what, double v) {
  if (isfinite(v)) return true;
  asg__fail(g, ASG_ERR_INVALID, name, "%s must be finite, got %g", what, v);
  return false;
}

asg_tensor *asg_hinge_embedding_loss(asg_tensor *x, asg_tensor *y, double margin, asg_reduction r) {
  const char *name = "hinge_embedding_loss";
  asg_tensor *in[2] = {x, y}, *t;
  asg_graph *g = asg__graph_of(name, 2, in);
  if (!g || !asg__need_float(g, name, x) || !check_reduction(g, name, r) ||
      !check_finite(g, name, "margin", margin) || !(t = sign_target(g, name, x, y, x->shape)))
    return NULL;
  /* PyTorch's form: both terms apply to a target that is neither 1 nor -1 */
  asg_tensor *neg = asg_where(asg_ne(t, k(x, 1)), asg_relu(asg_sub(k(x, margin), x)), k(x, 0));
  asg_tensor *pos = asg_where(asg_ne(t, k(x, -1)), x, k(x, 0));
  return reduce(asg_add(neg, pos), r);
}

asg_tensor *asg_multi_margin_loss(asg_tensor *x, asg_tensor *labels, int p, double margin,
                                  asg_tensor *weight, asg_reduction r) {
  const char *name = "multi_margin_loss";
  asg_graph *g = check_class(name, x, labels, r);
  if (!g || !check_class_weight(g, name, x, weight) || !check_finite(g, name, "margin", margin))
    return NULL;
  if (p != 1 && p != 2) return asg__fail(g, ASG_ERR_INVALID, name, "p must be 1 or 2, got %d", p);
  int last = x->shape.ndim - 1;
  asg_tensor *oh = asg_one_hot(labels, x->shape.dims[last], x->dtype);
  asg_tensor *xy = asg_sum(asg_mul(oh, x), ASG_AXES(last), true);
  asg_tensor *z = asg_relu(asg_add_scalar(asg_sub(x, xy), margin));
  if (p == 2) z = asg_mul(z, z);
  z = asg_mul(z, asg_sub(k(x, 1), oh)); /* the label's own class is no term */
  asg_tensor *row = asg_mean(z, ASG_AXES(last), false);
  if (weight) row = asg_mul(row, asg_sum(asg_mul(oh, weight), ASG_AXES(last), false));
  return reduce(row, r);
}

asg_tensor *asg_margin_ranking_loss(asg_tensor *x1, asg_tensor *x2, asg_tensor *y, double margin,
                                    asg_reduction r) {
  const char *name = "margin_ranking_loss";
  asg_tensor *in[3] = {x1, x2, y}, *t;
  asg_graph *g = asg__graph_of(name, 3, in);
  if (!g || !asg__need_float(g, name, x1) || !check_reduction(g, name, r) ||
      !check_same(g, name, "input1", x1, "input2", x2) ||
      !check_finite(g, name, "margin", margin) || !(t = sign_target(g, name, x1, y, x1->shape)))
    return NULL;
  return reduce(asg_relu(asg_add_scalar(asg_mul(asg_neg(t), asg_sub(x1, x2)), margin)), r);
}

/* The shape of x without its last dim (per-row losses). */
static asg_shape rows_of(asg_tensor *x) {
  asg_shape s = x->shape;
  s.ndim--;
  return s;
}

static bool need_rows(asg_graph *g, const char *name, asg_tensor *x) {
  if (x->shape.ndim >= 1) return true;
  asg__fail(g, ASG_ERR_SHAPE, name, "inputs need a feature dim (last), got a scalar");
  return false;
}

asg_tensor *asg_cosine_embedding_loss(asg_tensor *x1, asg_tensor *x2, asg_tensor *y, double margin,
                                      asg_reduction r) {
  const char *name = "cosine_embedding_loss";
  asg_tensor *in[3] = {x1, x2, y}, *t;
  asg_graph *g = asg__graph_of(name, 3, in);
  if (!g || !asg__need_float(g, name, x1) || !check_reduction(g, name, r) ||
      !check_same(g, name, "input1", x1, "input2", x2) || !need_rows(g, name, x1))
    return NULL;
  if (!(margin >= -1 && margin <= 1))
    return asg__fail(g, ASG_ERR_INVALID, name, "margin must be in [-1, 1], got %g", margin);
  if (!(t = sign_target(g, name, x1, y, rows_of(x1)))) return NULL;
  asg_axes last = ASG_AXES(x1->shape.ndim - 1);
  /* PyTorch's eps of 1e-12 on each squared norm */
  asg_tensor *dot = asg_sum(asg_mul(x1, x2), last, false);
  asg_tensor *m1 = asg_add_scalar(asg_sum(asg_mul(x1, x1), last, false), 1e-12);
  asg_tensor *m2 = asg_add_scalar(asg_sum(asg_mul(x2, x2), last, false), 1e-12);
  asg_tensor *cos = asg_div(dot, asg_sqrt(asg_mul(m1, m2)));
  asg_tensor *pos = asg_where(asg_eq(t, k(x1, 1)), asg_sub(k(x1, 1), cos), k(x1, 0));
  asg_tensor *neg =
      asg_where(asg_eq(t, k(x1, -1)), asg_relu(asg_add_scalar(cos, -margin)), k(x1, 0));
  return reduce(asg_add(pos, neg), r);
}

/* PyTorch's pairwise_distance: the p-norm of a - b + eps over the last dim. */
static asg_tensor *pdist(asg_tensor *a, asg_tensor *b, double p, double eps) {
  asg_axes last = ASG_AXES(a->shape.ndim - 1);
  asg_tensor *d = asg_add_scalar(asg_sub(a, b), eps);
  if (p == 2) return asg_sqrt(asg_sum(asg_mul(d, d), last, false));
  if (p == 1) return asg_sum(asg_abs(d), last, false);
  if (isinf(p)) return asg_max(asg_abs(d), last, false);
  return asg_pow_scalar(asg_sum(asg_pow_scalar(asg_abs(d), p), last, false), 1 / p);
}

asg_tensor *asg_triplet_margin_loss(asg_tensor *anchor, asg_tensor *positive, asg_tensor *negative,
                                    double margin, double p, double eps, bool swap,
                                    asg_reduction r) {
  const char *name = "triplet_margin_loss";
  asg_tensor *in[3] = {anchor, positive, negative};
  asg_graph *g = asg__graph_of(name, 3, in);
  if (!g || !asg__need_float(g, name, anchor) || !check_reduction(g, name, r) ||
      !check_same(g, name, "anchor", anchor, "positive", positive) ||
      !check_same(g, name, "anchor", anchor, "negative", negative) || !need_rows(g, name, anchor))
    return NULL;
  if (!(margin > 0) || isinf(margin)) /* PyTorch raises too */
    return asg__fail(g, ASG_ERR_INVALID, name, "margin must be finite and > 0, got %g", margin);
  if (!(p > 0)) return asg__fail(g, ASG_ERR_INVALID, name, "norm degree p must be > 0, got %g", p);
  if (!(eps >= 0) || isinf(eps))
    return asg__fail(g, ASG_ERR_INVALID, name, "eps must be finite and >= 0, got %g", eps);
  asg_tensor *dp = pdist(anchor, positive, p, eps), *dn = pdist(anchor, negative, p, eps);
  if (swap) dn = asg_minimum(dn, pdist(positive, negative, p, eps));
  return reduce(asg_relu(asg_add_scalar(asg_sub(dp, dn), margin)), r);
}
