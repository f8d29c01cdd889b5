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

/* ---- regression metrics ----
 * pred and target are n (>= 1) values of F32 or F64 each (dtypes may
 * differ); sums run in double. NaN with ASG_ERR_INVALID / ASG_ERR_DTYPE
 * set on bad arguments; NaN inputs give NaN (no error). */
/* Mean absolute error: mean |pred - target|. */
ASG_API double asg_metric_mae(const void *pred, asg_dtype pred_dt, const void *target,
                              asg_dtype target_dt, int64_t n);
/* Root mean squared error: sqrt(mean (pred - target)^2). */
ASG_API double asg_metric_rmse(const void *pred, asg_dtype pred_dt, const void *target,
                               asg_dtype target_dt, int64_t n);
/* Coefficient of determination 1 - SS_res / SS_tot (scikit-learn's r2_score
 * for one output): 1 for a perfect fit, 0 for predicting the mean, negative
 * when worse. With constant targets (SS_tot = 0) it is 1 if the fit is
 * perfect, else 0 (as scikit-learn). */
ASG_API double asg_metric_r2(const void *pred, asg_dtype pred_dt, const void *target,
                             asg_dtype target_dt, int64_t n);

/* Exponential moving average (e.g. a smoothed loss for logging):
 *   asg_ema e; asg_ema_init(&e, 0.98); asg_ema_update(&e, loss);
 * value = decay * value + (1 - decay) * x, started at 0 and debiased by
 * 1 - decay^count (as Adam's moments and TensorBoard's smoothing), so the
 * first value is x itself. decay in [0, 1); others are taken as 0.98. */
typedef struct asg_ema {
  double decay, value, correction; /* correction = 1 - decay^count */
  int64_t count;
} asg_ema;
ASG_API void asg_ema_init(asg_ema *e, double decay);
/* Non-finite x is ignored (a NaN loss does not poison the average). */
ASG_API void asg_ema_update(asg_ema *e, double x);
/* The debiased average (NaN before the first update). */
ASG_API double asg_ema_value(const asg_ema *e);

/* ---- early stopping (src/data/earlystop.c) ----
 * Keras' EarlyStopping / PyTorch Lightning's: after every evaluation,
 *   if (asg_early_stopping_update(&es, val_loss, step)) break;
 * A value improves when it is below best - min_delta (mode MIN) or above
 * best + min_delta (MAX); the first finite value always improves. After `patience`
 * evaluations in a row without improvement, update returns true (stop).
 * A non-finite value (NaN, an infinity) stops at once, as Lightning's
 * check_finite: the run diverged. `improved` tells after each update
 * whether this value became the best (the moment to save a best model). */
typedef enum asg_monitor_mode { ASG_MODE_MIN = 0, ASG_MODE_MAX = 1 } asg_monitor_mode;
typedef struct asg_early_stopping {
  asg_monitor_mode mode;
  int64_t patience;  /* >= 0; 0 stops at the first evaluation that does not improve */
  double min_delta;  /* >= 0 (its absolute value is used) */
  double best;       /* NaN before the first update */
  int64_t best_step; /* step of best; -1 before the first update */
  int64_t wait;      /* evaluations since the best */
  int64_t count;     /* updates so far */
  bool improved;     /* the last update set a new best */
  bool stopped;      /* update returned true; further updates keep returning true */
} asg_early_stopping;
/* patience < 0 is taken as 0. */
ASG_API void asg_early_stopping_init(asg_early_stopping *e, asg_monitor_mode mode, int64_t patience,
                                     double min_delta);
/* Records value at step; true when training should stop. */
ASG_API bool asg_early_stopping_update(asg_early_stopping *e, double value, int64_t step);
/* True when value would improve on best (mode, min_delta): the one rule
 * that early stopping and the checkpoint manager's keep_best share. A NaN
 * best means none yet (any finite value improves); a non-finite value
 * never improves. */
ASG_API bool asg_monitor_improves(asg_monitor_mode mode, double min_delta, double value,
                                  double best);

#ifdef __cplusplus
}
#endif
#endif
