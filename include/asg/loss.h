/* Loss functions: graph builders made of public ops, with PyTorch's
 * semantics. Each returns a scalar (reduction MEAN or SUM) or the
 * elementwise/per-row losses (NONE); errors go to the graph like any op.
 *
 * Conventions: input and target have equal shapes unless stated otherwise;
 * classification losses take class scores in the LAST dim ([..., C]) and
 * integer labels [...] (I32/I64). */
#ifndef ASG_LOSS_H
#define ASG_LOSS_H

#include "asg/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum asg_reduction {
  ASG_REDUCE_MEAN = 0, /* mean over elements (over non-ignored rows for CE/NLL) */
  ASG_REDUCE_SUM,      /* sum */
  ASG_REDUCE_NONE,     /* no reduction: the loss per element (per row for CE/NLL) */
  ASG_REDUCE_BATCHMEAN /* KL divergence only: sum / input.shape[0] */
} asg_reduction;

/* (input - target)^2 */
ASG_API asg_tensor *asg_mse_loss(asg_tensor *input, asg_tensor *target, asg_reduction r);
/* |input - target| */
ASG_API asg_tensor *asg_l1_loss(asg_tensor *input, asg_tensor *target, asg_reduction r);
/* d = input - target: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta
 * (beta >= 0; beta == 0 is the L1 loss). */
ASG_API asg_tensor *asg_smooth_l1_loss(asg_tensor *input, asg_tensor *target, double beta,
                                       asg_reduction r);
/* d = input - target: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)
 * (delta > 0). */
ASG_API asg_tensor *asg_huber_loss(asg_tensor *input, asg_tensor *target, double delta,
                                   asg_reduction r);

/* Softmax cross-entropy of logits [..., C] against labels [...]:
 * per row (1 - s) * -log p[label] + s * mean_c(-log p[c]) with s the label
 * smoothing in [0, 1); rows whose label is ignore_index give 0 and are left
 * out of the mean (PyTorch's default ignore_index is -100); the MEAN of no
 * rows (all ignored) is NaN with a zero gradient, as in PyTorch. A label
 * outside [0, C) that is not ignore_index fails the run (PyTorch raises
 * too) unless the program is compiled with asg_compile_opts
 * .unchecked_indices, which leaves such rows out like ignored ones. MEAN
 * uses the fused asg_softmax_cross_entropy op. Class weights:
 * asg_cross_entropy_loss_weighted. */
ASG_API asg_tensor *asg_cross_entropy_loss(asg_tensor *logits, asg_tensor *labels,
                                           double label_smoothing, int64_t ignore_index,
                                           asg_reduction r);
/* asg_cross_entropy_loss with PyTorch's per-class `weight` [C] (logits'
 * dtype; NULL = unweighted): per row
 * (1 - s) w[label] -log p[label] + s/C sum_c w[c] -log p[c], and MEAN is
 * PyTorch's weighted mean, sum of the rows / sum of w[label] over the
 * non-ignored rows. */
ASG_API asg_tensor *asg_cross_entropy_loss_weighted(asg_tensor *logits, asg_tensor *labels,
                                                    asg_tensor *weight, double label_smoothing,
                                                    int64_t ignore_index, asg_reduction r);
/* Negative log-likelihood of log-probabilities [..., C] at labels [...]:
 * -logp[label], 0 for ignore_index rows (left out of the mean; the MEAN of
 * no rows is NaN). Labels outside [0, C) are handled as by
 * asg_cross_entropy_loss (an error when running, unless unchecked). */
ASG_API asg_tensor *asg_nll_loss(asg_tensor *logp, asg_tensor *labels, int64_t ignore_index,
                                 asg_reduction r);
/* asg_nll_loss with per-class weight [C] (may be NULL): -w[label] logp[label],
 * MEAN = sum / sum of w[label] over non-ignored rows (PyTorch's). */
ASG_API asg_tensor *asg_nll_loss_weighted(asg_tensor *logp, asg_tensor *labels, asg_tensor *weight,
                                          int64_t ignore_index, asg_reduction r);
/* Binary cross-entropy on probabilities p in [0, 1]:
 * -(y log p + (1 - y) log(1 - p)), each log clamped to >= -100.
 * weight (broadcast to p, may be NULL) rescales each element. */
ASG_API asg_tensor *asg_bce_loss(asg_tensor *p, asg_tensor *target, asg_tensor *weight,
                                 asg_reduction r);
/* Binary cross-entropy on logits x, stable for any x:
 * (1 - y) x + w_y (log(1 + exp(-|x|)) + max(-x, 0)), w_y = 1 + (pos_weight - 1) y,
 * which is max(x, 0) - x y + log(1 + exp(-|x|)) without pos_weight.
 * pos_weight (broadcast to x, typically [C]) may be NULL. */
ASG_API asg_tensor *asg_bce_with_logits_loss(asg_tensor *x, asg_tensor *target,
                                             asg_tensor *pos_weight, asg_reduction r);
/* KL divergence with input = log q and target = p (or log p if log_target):
 * p (log p - log q) per element, 0 where p == 0. Reductions MEAN (over all
 * elements, as PyTorch's default), BATCHMEAN (the mathematically correct
 * one), SUM, NONE. */
ASG_API asg_tensor *asg_kl_div_loss(asg_tensor *input, asg_tensor *target, bool log_target,
                                    asg_reduction r);

/* torchvision.ops.sigmoid_focal_loss on logits x with targets y in [0, 1]:
 * bce_with_logits(x, y) (1 - p_t)^gamma alpha_t, p = sigmoid(x),
 * p_t = p y + (1 - p)(1 - y), alpha_t = alpha y + (1 - alpha)(1 - y).
 * torchvision's defaults are alpha = 0.25, gamma = 2 (and reduction NONE);
 * alpha < 0 leaves alpha_t out; gamma >= 0, alpha <= 1. */
ASG_API asg_tensor *asg_sigmoid_focal_loss(asg_tensor *x, asg_tensor *target, double alpha,
                                           double gamma, asg_reduction r);

/* Targets of the margin and embedding losses below hold 1 or -1, in the
 * input's float dtype or I32/I64. */

/* PyTorch's HingeEmbeddingLoss (default margin 1): x where y == 1,
 * max(0, margin - x) where y == -1 (both terms for other target values). */
ASG_API asg_tensor *asg_hinge_embedding_loss(asg_tensor *x, asg_tensor *target, double margin,
                                             asg_reduction r);
/* PyTorch's MultiMarginLoss, the multi-class hinge (p = 1) and squared hinge
 * (p = 2) on scores [..., C] and labels [...] (I32/I64): per row
 * sum_{c != y} w[y] max(0, margin - x[y] + x[c])^p / C; defaults p = 1,
 * margin = 1; weight [C] may be NULL. MEAN is the plain mean over rows.
 * Labels outside [0, C) fail the run (as for cross-entropy). */
ASG_API asg_tensor *asg_multi_margin_loss(asg_tensor *x, asg_tensor *labels, int p, double margin,
                                          asg_tensor *weight, asg_reduction r);
/* PyTorch's MarginRankingLoss (default margin 0), equal shapes:
 * max(0, -y (x1 - x2) + margin). */
ASG_API asg_tensor *asg_margin_ranking_loss(asg_tensor *x1, asg_tensor *x2, asg_tensor *target,
                                            double margin, asg_reduction r);
/* PyTorch's CosineEmbeddingLoss (default margin 0, in [-1, 1]) on x1, x2
 * [..., D] and target [...]: with cos = x1.x2 / sqrt((|x1|^2 + 1e-12)
 * (|x2|^2 + 1e-12)), 1 - cos where y == 1, max(0, cos - margin) where
 * y == -1, 0 for other target values. */
ASG_API asg_tensor *asg_cosine_embedding_loss(asg_tensor *x1, asg_tensor *x2, asg_tensor *target,
                                              double margin, asg_reduction r);
/* PyTorch's TripletMarginLoss on anchor, positive, negative [..., D]
 * (defaults margin 1, p 2, eps 1e-6, swap false): per row
 * max(0, d(a, pos) - d(a, neg) + margin) with d(u, v) = ||u - v + eps||_p
 * over the last dim (p > 0, INFINITY for the max norm); swap uses
 * min(d(a, neg), d(pos, neg)) as the negative distance. margin > 0. */
ASG_API asg_tensor *asg_triplet_margin_loss(asg_tensor *anchor, asg_tensor *positive,
                                            asg_tensor *negative, double margin, double p,
                                            double eps, bool swap, asg_reduction r);

#ifdef __cplusplus
}
#endif
#endif
