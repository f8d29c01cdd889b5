/* Loss functions built from public ops (so autograd differentiates them
 * like any graph). Internal headers are used only to fail the graph with a
 * message naming the loss and the shapes. */
#include <math.h>

#include "asg/loss.h"
#include "ops/op_util.h"

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
  if (r != ASG_REDUCE_MEAN && r != ASG_REDUCE_SUM && r != ASG_REDUCE_NONE) {
    asg__fail(g, ASG_ERR_INVALID, name, "reduction %d is not mean, sum or none", (int)r);
    return NULL;
  }
  return g;
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
  if (r != ASG_REDUCE_MEAN && r != ASG_REDUCE_SUM && r != ASG_REDUCE_NONE) {
    asg__fail(g, ASG_ERR_INVALID, name, "reduction %d is not mean, sum or none", (int)r);
    return NULL;
  }
  return g;
}

/* Per-row loss (1 - s) * -logp[label] + s * mean_c(-logp), zero on ignored
 * rows, reduced with the mean over non-ignored rows (NaN when every row is
 * ignored, as PyTorch; the gradient is then zero, as PyTorch's). Ignored
 * rows pick class 0 so that one_hot sees only real labels: it reports the
 * others (out of range) when the program runs. The rows are zeroed with
 * where, not a product with the mask, so that their gradient stays 0 even
 * when the mean divides by zero. */
static asg_tensor *nll_rows(asg_tensor *logp, asg_tensor *labels, double s, int64_t ignore,
                            asg_reduction r) {
  int last = logp->shape.ndim - 1;
  int64_t C = logp->shape.dims[last];
  asg_dtype dt = logp->dtype;
  asg_graph *g = logp->graph;
  asg_tensor *keep_l = asg_ne(labels, asg_scalar(g, labels->dtype, (double)ignore));
  asg_tensor *safe = asg_where(keep_l, labels, asg_scalar(g, labels->dtype, 0));
  asg_tensor *keep = asg_cast(keep_l, dt);
  asg_tensor *picked = asg_sum(asg_mul(asg_one_hot(safe, C, dt), logp), ASG_AXES(last), false);
  asg_tensor *row = asg_mul_scalar(picked, -(1 - s));
  if (s != 0)
    row = asg_sub(row, asg_mul_scalar(asg_sum(logp, ASG_AXES(last), false), s / (double)C));
  row = asg_where(keep, row, asg_scalar(g, dt, 0));
  if (r == ASG_REDUCE_NONE) return row;
  asg_tensor *total = asg_sum(row, ASG_ALL_AXES, false);
  if (r == ASG_REDUCE_SUM) return total;
  return asg_div(total, asg_sum(keep, ASG_ALL_AXES, false));
}

asg_tensor *asg_cross_entropy_loss(asg_tensor *logits, asg_tensor *labels, double s,
                                   int64_t ignore_index, asg_reduction r) {
  asg_graph *g = check_class("cross_entropy_loss", logits, labels, r);
  if (!g) return NULL;
  if (!(s >= 0 && s < 1))
    return asg__fail(g, ASG_ERR_INVALID, "cross_entropy_loss",
                     "label smoothing must be in [0, 1), got %g", s);
  if (r == ASG_REDUCE_MEAN) return asg_softmax_cross_entropy(logits, labels, s, ignore_index);
  return nll_rows(asg_log_softmax(logits, -1), labels, s, ignore_index, r);
}

asg_tensor *asg_nll_loss(asg_tensor *logp, asg_tensor *labels, int64_t ignore_index,
                         asg_reduction r) {
  if (!check_class("nll_loss", logp, labels, r)) return NULL;
  return nll_rows(logp, labels, 0, ignore_index, r);
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

asg_tensor *asg_bce_with_logits_loss(asg_tensor *x, asg_tensor *y, asg_tensor *pw,
                                     asg_reduction r) {
  asg_graph *g = check_pair("bce_with_logits_loss", x, y, r);
  if (!g) return NULL;
  /* softplus(-x) = log(1 + exp(-|x|)) + max(-x, 0), evaluated stably with
   * log1p by the kernel; its gradient -sigmoid(-x) is exact everywhere. */
  asg_tensor *sp = asg_softplus(asg_neg(x), 1, 30);
  asg_tensor *lin = asg_mul(asg_sub(k(x, 1), y), x);
  if (pw) sp = asg_mul(asg_add_scalar(asg_mul(asg_add_scalar(pw, -1), y), 1), sp);
  return reduce(asg_add(lin, sp), r);
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
