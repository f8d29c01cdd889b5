/* Neural-network op constructors: softmax, log_softmax, layernorm, rmsnorm,
 * rope, batchnorm, softmax cross-entropy, random sources and dropout.
 *
 * Attributes:
 *   SOFTMAX, LOG_SOFTMAX   i0 = axis (normalized to [0, ndim))
 *   LAYERNORM              f0 = eps; inputs (x [..., C], gamma [C], beta [C])
 *   LAYERNORM_BWD_X        f0 = eps; inputs (dy, x, gamma) -> dx   (made by grad_nn.c)
 *   LAYERNORM_BWD_GAMMA    f0 = eps; inputs (dy, x) -> dgamma [C]  (made by grad_nn.c)
 *   RMSNORM                f0 = eps; inputs (x [..., C], weight [C]); gradient from
 *                          generic ops (grad_nn.c)
 *   ROPE                   no attrs; inputs (x [..., D], cos, sin), cos and sin broadcast
 *                          to x's shape: y = x * cos + rotate_half(x) * sin, with
 *                          rotate_half(x) = concat(-x[..., D/2:], x[..., :D/2])
 *   BATCHNORM              f0 = eps; inputs (x [N, C, ...], gamma [C], beta [C]): the
 *                          statistics of each channel over every dim but 1 (biased var)
 *   BATCHNORM_BWD_X        f0 = eps; inputs (dy, x, gamma) -> dx   (made by grad_nn.c)
 *   BATCHNORM_BWD_GAMMA    f0 = eps; inputs (dy, x) -> dgamma [C]  (made by grad_nn.c)
 *   SOFTMAX_CE             f0 = label smoothing, i0 = ignore_index;
 *                          inputs (logits [..., C], labels [...]) -> scalar
 *   SOFTMAX_CE_BWD         same attrs; inputs (logits, labels, dloss) -> dlogits
 *   RAND_UNIFORM           f0 = lo, f1 = hi, i0 = seed
 *   RAND_NORMAL            f0 = mean, f1 = std, i0 = seed
 *   RAND_BERNOULLI         f0 = p, i0 = seed
 * Random values depend only on (seed, program run count, element index), so
 * every backend draws the same numbers and each run draws fresh ones. */
#include <math.h>

#include "ops/op_util.h"

/* ---- softmax / log_softmax ---- */
static asg_tensor *softmax_like(asg_op op, asg_tensor *x, int axis) {
  const char *name = asg__op_name(op);
  asg_graph *g = asg__graph_of(name, 1, &x);
  char b1[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, name, x)) return NULL;
  int a;
  if (!asg__norm_axis(axis, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, name, "axis %d out of range for %s (rank %d)", axis,
                     SHP(x->shape, b1), x->shape.ndim);
  asg_tensor *y = asg__node(g, op, x->dtype, x->shape, 1, &x);
  if (y) y->attr.i[0] = a;
  return y;
}

asg_tensor *asg_softmax(asg_tensor *x, int axis) { return softmax_like(ASG_OP_SOFTMAX, x, axis); }
asg_tensor *asg_log_softmax(asg_tensor *x, int axis) {
  return softmax_like(ASG_OP_LOG_SOFTMAX, x, axis);
}

/* ---- layernorm ---- */
/* gamma/beta must be [C] (x's dim caxis) with x's dtype; NULL becomes a
 * fill so that the op always has three inputs (kernels and gradients see one
 * form). */
static asg_tensor *norm_param(asg_graph *g, const char *name, asg_tensor *x, int caxis,
                              asg_tensor *p, const char *what, double dflt) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF];
  int64_t C = x->shape.dims[caxis];
  if (!p) return asg_fill(g, x->dtype, ASG_SHAPE(C), dflt);
  if (p->dtype != x->dtype)
    return asg__fail(g, ASG_ERR_DTYPE, name, "%s is %s, x is %s", what, asg_dtype_name(p->dtype),
                     asg_dtype_name(x->dtype));
  if (p->shape.ndim != 1 || p->shape.dims[0] != C)
    return asg__fail(g, ASG_ERR_SHAPE, name, "%s %s does not match x %s: expected [%s]", what,
                     SHP(p->shape, b1), SHP(x->shape, b2), DIM(C, b3));
  return p;
}

/* layernorm (channels: the last dim) and batchnorm (channels: dim 1). */
static asg_tensor *norm_op(asg_op op, asg_tensor *x, asg_tensor *gamma, asg_tensor *beta,
                           double eps) {
  const char *name = asg__op_name(op);
  /* gamma/beta are optional; those given must be live tensors of x's graph */
  asg_tensor *all[3] = {x, NULL, NULL};
  int n = 1;
  if (gamma) all[n++] = gamma;
  if (beta) all[n++] = beta;
  asg_graph *g = asg__graph_of(name, n, all);
  char b1[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, name, x)) return NULL;
  bool bn = op == ASG_OP_BATCHNORM;
  if (!bn && x->shape.ndim < 1)
    return asg__fail(g, ASG_ERR_SHAPE, name, "x must have rank >= 1, got a scalar");
  if (bn && x->shape.ndim < 2)
    return asg__fail(g, ASG_ERR_SHAPE, name, "x %s must be [N, C] or [N, C, ...]",
                     SHP(x->shape, b1));
  if (!(eps >= 0) || isinf(eps))
    return asg__fail(g, ASG_ERR_INVALID, name, "eps must be finite and >= 0, got %g", eps);
  int caxis = bn ? 1 : x->shape.ndim - 1;
  asg_tensor *in[3] = {x, norm_param(g, name, x, caxis, gamma, "gamma", 1.0), NULL};
  if (!in[1]) return NULL;
  in[2] = norm_param(g, name, x, caxis, beta, "beta", 0.0);
  if (!in[2]) return NULL;
  asg_tensor *y = asg__node(g, op, x->dtype, x->shape, 3, in);
  if (y) y->attr.f[0] = eps;
  return y;
}

asg_tensor *asg_layernorm(asg_tensor *x, asg_tensor *gamma, asg_tensor *beta, double eps) {
  return norm_op(ASG_OP_LAYERNORM, x, gamma, beta, eps);
}

asg_tensor *asg_batchnorm(asg_tensor *x, asg_tensor *gamma, asg_tensor *beta, double eps) {
  return norm_op(ASG_OP_BATCHNORM, x, gamma, beta, eps);
}

/* ---- rmsnorm ---- */
/* The checks of layernorm (float x of rank >= 1, eps finite and >= 0,
 * weight [C] of x's dtype or NULL for ones); the op always has two inputs. */
asg_tensor *asg_rmsnorm(asg_tensor *x, asg_tensor *weight, double eps) {
  const char *name = "rmsnorm";
  asg_tensor *all[2] = {x, weight};
  asg_graph *g = asg__graph_of(name, weight ? 2 : 1, all);
  if (!g || !asg__need_float(g, name, x)) return NULL;
  if (x->shape.ndim < 1)
    return asg__fail(g, ASG_ERR_SHAPE, name, "x must have rank >= 1 ([..., C]), got a scalar");
  if (!(eps >= 0) || isinf(eps))
    return asg__fail(g, ASG_ERR_INVALID, name, "eps must be finite and >= 0, got %g", eps);
  asg_tensor *in[2] = {x, norm_param(g, name, x, x->shape.ndim - 1, weight, "weight", 1.0)};
  if (!in[1]) return NULL;
  asg_tensor *y = asg__node(g, ASG_OP_RMSNORM, x->dtype, x->shape, 2, in);
  if (y) y->attr.f[0] = eps;
  return y;
}

/* ---- rope ---- */
/* x [..., D] (D a constant, even) of f32/f64; cos and sin of x's dtype in
 * any shapes that broadcast to x's (the output has x's shape). */
asg_tensor *asg_rope(asg_tensor *x, asg_tensor *cs, asg_tensor *sn) {
  const char *name = "rope";
  asg_tensor *in[3] = {x, cs, sn};
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  asg_graph *g = asg__graph_of(name, 3, in);
  if (!g || !asg__need_float(g, name, x)) return NULL;
  for (int k = 1; k < 3; k++)
    if (in[k]->dtype != x->dtype)
      return asg__fail(g, ASG_ERR_DTYPE, name, "%s is %s, x is %s (cast it)",
                       k == 1 ? "cos" : "sin", asg_dtype_name(in[k]->dtype),
                       asg_dtype_name(x->dtype));
  const int nd = x->shape.ndim;
  if (nd < 1)
    return asg__fail(g, ASG_ERR_SHAPE, name, "x must have rank >= 1 ([..., D]), got a scalar");
  const int64_t D = x->shape.dims[nd - 1];
  if (asg__dim_is_sym(D))
    return asg__fail(g, ASG_ERR_SHAPE, name, "the last dim of x %s must be a constant",
                     SHP(x->shape, b1));
  if (D % 2)
    return asg__fail(
        g, ASG_ERR_SHAPE, name,
        "the last dim of x %s must be even (rotate_half splits it in halves), got %lld",
        SHP(x->shape, b1), (long long)D);
  for (int k = 1; k < 3; k++) {
    asg_shape o;
    if (!asg__broadcast_shapes(in[k]->shape, x->shape, &o) || !asg_shape_equal(o, x->shape))
      return asg__fail(g, ASG_ERR_SHAPE, name, "%s %s does not broadcast to x %s",
                       k == 1 ? "cos" : "sin", SHP(in[k]->shape, b2), SHP(x->shape, b1));
  }
  return asg__node(g, ASG_OP_ROPE, x->dtype, x->shape, 3, in);
}

/* ---- softmax cross-entropy ---- */
/* The shape of the labels is checked when building, their values when
 * running: a label outside [0, C) that is not ignore_index fails the run,
 * unless the program is unchecked (asg_compile_opts.unchecked_indices); then
 * its row is left out like an ignored one (zero gradient). */
asg_tensor *asg_softmax_cross_entropy(asg_tensor *logits, asg_tensor *labels,
                                      double label_smoothing, int64_t ignore_index) {
  const char *name = "softmax_cross_entropy";
  asg_tensor *in[2] = {logits, labels};
  asg_graph *g = asg__graph_of(name, 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, name, logits)) return NULL;
  if (labels->dtype != ASG_I32 && labels->dtype != ASG_I64)
    return asg__fail(g, ASG_ERR_DTYPE, name, "labels must be i32 or i64 class indices, got %s",
                     asg_dtype_name(labels->dtype));
  if (logits->shape.ndim < 1)
    return asg__fail(g, ASG_ERR_SHAPE, name, "logits must have rank >= 1 ([..., C]), got a scalar");
  bool ok = labels->shape.ndim == logits->shape.ndim - 1;
  for (int d = 0; ok && d < labels->shape.ndim; d++)
    ok = labels->shape.dims[d] == logits->shape.dims[d];
  if (!ok)
    return asg__fail(g, ASG_ERR_SHAPE, name,
                     "labels %s do not match logits %s: expected logits' shape without the "
                     "class dim",
                     SHP(labels->shape, b1), SHP(logits->shape, b2));
  if (!(label_smoothing >= 0 && label_smoothing < 1))
    return asg__fail(g, ASG_ERR_INVALID, name, "label_smoothing must be in [0, 1), got %g",
                     label_smoothing);
  asg_tensor *y = asg__node(g, ASG_OP_SOFTMAX_CE, logits->dtype, ASG_SCALAR, 2, in);
  if (y) {
    y->attr.f[0] = label_smoothing;
    y->attr.i[0] = ignore_index;
  }
  return y;
}

/* ---- random sources ---- */
static asg_tensor *rand_source(asg_op op, asg_graph *g, asg_dtype dt, asg_shape shape, double f0,
                               double f1, uint64_t seed) {
  const char *name = asg__op_name(op);
  char b1[ASG_SHAPE_BUF];
  if (!g || g->magic != ASG_GRAPH_MAGIC) {
    asg__error(ASG_ERR_INVALID, "%s: graph is NULL or not a graph", name);
    return NULL;
  }
  if (g->status != ASG_OK) return NULL;
  bool int_ok = op == ASG_OP_RAND_BERNOULLI; /* a 0/1 mask is fine as an integer */
  if (!(dt == ASG_F32 || dt == ASG_F64 || (int_ok && (dt == ASG_I32 || dt == ASG_I64))))
    return asg__fail(g, ASG_ERR_DTYPE, name, "dtype %s not supported (f32/f64%s)",
                     (unsigned)dt < ASG_DTYPE_COUNT ? asg_dtype_name(dt) : "?",
                     int_ok ? "/i32/i64" : "");
  if (shape.ndim < 0 || shape.ndim > ASG_MAX_DIMS)
    return asg__fail(g, ASG_ERR_SHAPE, name, "rank %d out of range 0..%d", shape.ndim,
                     ASG_MAX_DIMS);
  for (int i = 0; i < shape.ndim; i++) /* symbolic dims are checked by asg__node */
    if (shape.dims[i] <= 0 && !asg__dim_is_sym(shape.dims[i]))
      return asg__fail(g, ASG_ERR_SHAPE, name, "shape %s has a non-positive dim", SHP(shape, b1));
  asg_tensor *y = asg__node(g, op, dt, shape, 0, NULL);
  if (y) {
    y->attr.f[0] = f0;
    y->attr.f[1] = f1;
    y->attr.i[0] = (int64_t)seed;
  }
  return y;
}

asg_tensor *asg_rand_uniform(asg_graph *g, asg_dtype dt, asg_shape shape, double lo, double hi,
                             uint64_t seed) {
  if (g && g->magic == ASG_GRAPH_MAGIC && g->status == ASG_OK &&
      !(isfinite(lo) && isfinite(hi) && lo <= hi))
    return asg__fail(g, ASG_ERR_INVALID, "rand_uniform", "needs finite lo <= hi, got [%g, %g)", lo,
                     hi);
  return rand_source(ASG_OP_RAND_UNIFORM, g, dt, shape, lo, hi, seed);
}

asg_tensor *asg_rand_normal(asg_graph *g, asg_dtype dt, asg_shape shape, double mean, double std,
                            uint64_t seed) {
  if (g && g->magic == ASG_GRAPH_MAGIC && g->status == ASG_OK &&
      !(isfinite(mean) && isfinite(std) && std >= 0))
    return asg__fail(g, ASG_ERR_INVALID, "rand_normal",
                     "needs a finite mean and std >= 0, got mean %g std %g", mean, std);
  return rand_source(ASG_OP_RAND_NORMAL, g, dt, shape, mean, std, seed);
}

asg_tensor *asg_rand_bernoulli(asg_graph *g, asg_dtype dt, asg_shape shape, double p,
                               uint64_t seed) {
  if (g && g->magic == ASG_GRAPH_MAGIC && g->status == ASG_OK && !(p >= 0 && p <= 1))
    return asg__fail(g, ASG_ERR_INVALID, "rand_bernoulli", "p must be in [0, 1], got %g", p);
  return rand_source(ASG_OP_RAND_BERNOULLI, g, dt, shape, p, 0, seed);
}

/* x * bernoulli(1 - p) / (1 - p): the mask is a fresh draw at every run
 * (it is keyed by the run count), and the gradient flows through the mul. */
asg_tensor *asg_dropout(asg_tensor *x, double p, uint64_t seed) {
  asg_graph *g = asg__graph_of("dropout", 1, &x);
  if (!g || !asg__need_float(g, "dropout", x)) return NULL;
  if (!(p >= 0 && p < 1))
    return asg__fail(g, ASG_ERR_INVALID, "dropout", "p must be in [0, 1), got %g", p);
  if (p == 0) return x;
  asg_tensor *mask = asg_rand_bernoulli(g, x->dtype, x->shape, 1 - p, seed);
  return asg_mul(x, asg_mul_scalar(mask, 1.0 / (1.0 - p)));
}
