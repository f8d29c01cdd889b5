/* Evaluation metrics on host arrays (after asg_program_fetch).
 *
 * Scores are row-major [n, c] arrays of F32 or F64; labels are I32 or I64
 * arrays of n entries; the dtype arguments say which. A predicted label is
 * the first maximum of its row (as asg_argmax). Functions returning double
 * give NaN and set asg_last_error() on bad arguments. */
#ifndef ASG_METRICS_H
#define ASG_METRICS_H

#include "asg/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Row-wise argmax of scores [n, c] into pred (n entries, I64). */
ASG_API asg_status asg_metric_argmax(const void *scores, asg_dtype score_dt, int64_t n, int64_t c,
                                     int64_t *pred);
/* Fraction of i with pred[i] == target[i] (n >= 1). */
ASG_API double asg_metric_accuracy(const void *pred, asg_dtype pred_dt, const void *target,
                                   asg_dtype target_dt, int64_t n);
/* Fraction of rows whose target is among the k best scores. Ties rank by
 * class index (the lower index first, as argmax), so k = 1 equals the
 * accuracy of the argmax. A target outside [0, c) counts as wrong. */
ASG_API double asg_metric_topk_accuracy(const void *scores, asg_dtype score_dt, int64_t n,
                                        int64_t c, const void *target, asg_dtype target_dt, int k);

/* cm[t * c + p] = number of i with target t and prediction p (rows = true
 * class, as scikit-learn). cm has c*c entries and is overwritten. A label
 * outside [0, c) is an error. */
ASG_API asg_status asg_metric_confusion(const void *pred, asg_dtype pred_dt, const void *target,
                                        asg_dtype target_dt, int64_t n, int64_t c, int64_t *cm);

typedef struct asg_prf {
  double precision, recall, f1; /* 0 where undefined (no predictions / no targets) */
  int64_t support;              /* number of targets of the class */
} asg_prf;
/* Per-class precision, recall and F1 from a confusion matrix [c, c]
 * (per_class may be NULL, else c entries) and their unweighted mean over
 * the classes that occur in targets or predictions (macro; NaN if none;
 * macro.support is the total). */
ASG_API asg_status asg_metric_prf(const int64_t *cm, int64_t c, asg_prf *per_class, asg_prf *macro);

/* Running (weighted) mean, e.g. of the loss over an epoch:
 *   asg_running_mean m = {0}; asg_running_mean_update(&m, loss, batch);
 *   printf("%g", asg_running_mean_value(&m)); */
typedef struct asg_running_mean {
  double mean, weight;
  int64_t count; /* number of updates */
} asg_running_mean;
ASG_API void asg_running_mean_reset(asg_running_mean *m);
/* Adds value with weight w (> 0; e.g. the batch size); others are ignored. */
ASG_API void asg_running_mean_update(asg_running_mean *m, double value, double w);
/* The mean so far (NaN before the first update). */
ASG_API double asg_running_mean_value(const asg_running_mean *m);

#ifdef __cplusplus
}
#endif
#endif
