/* Optimizers as graph: the update of every parameter is more nodes (assign
 * ops on variables), so forward, backward and update compile into one
 * program. All optimizer state lives in frozen variables named after the
 * parameter ("<param>.<state>") or "optim/..." (readable and writable with
 * asg_program_get/set_variable, e.g. for checkpoints):
 *   optim/lr           learning rate (F32, or F64 when a parameter is F64);
 *                      change it between runs with asg_optim_set_lr
 *   optim/step         number of updates applied (Adam, AdamW, LAMB, SGD with
 *                      dampening, Adagrad with lr_decay)
 *   optim/accum_count  micro-batches accumulated so far (accum_steps > 1)
 *   optim/loss_scale, optim/good_steps
 *                      dynamic loss scaling (loss_scale > 0)
 *   optim/skipped_steps, optim/skip_streak
 *                      non-finite guard (skip_nonfinite): runs skipped in
 *                      all, and in a row up to the last run
 *   optim/grad_norm    global gradient norm of the last step (clip_norm > 0 or
 *                      track_grad_norm)
 *   optim/bias_correction1, optim/bias_correction2
 *                      Adam's and LAMB's 1 - beta^step, kept by a
 *                      recurrence for F32 accuracy
 *   <p>.momentum, <p>.adam_m, <p>.adam_v, <p>.adam_max_v (amsgrad),
 *   <p>.square_avg, <p>.grad_avg, <p>.adagrad_sum, <p>.lion_m, <p>.grad_acc
 *                      per-parameter state (LAMB's moments are adam_m/adam_v)
 * Update formulas are PyTorch's (torch.optim.SGD/Adam/AdamW/RMSprop/Adagrad,
 * non-foreach, maximize off); Lion's are the paper's (Chen et al. 2023, as
 * the lion-pytorch package), LAMB's the paper's (You et al. 2020, Adam
 * moments with bias correction; see ASG_OPTIM_LAMB). */
#ifndef ASG_OPTIM_H
#define ASG_OPTIM_H

#include "asg/metrics.h" /* asg_monitor_mode */
#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum asg_optim_kind {
  ASG_OPTIM_SGD = 0,
  ASG_OPTIM_ADAM,
  ASG_OPTIM_ADAMW,
  ASG_OPTIM_RMSPROP,
  /* sum += g^2; p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(sum) + eps);
   * L2 weight decay in g (torch.optim.Adagrad) */
  ASG_OPTIM_ADAGRAD,
  /* p *= 1 - lr wd; p -= lr sign(beta1 m + (1 - beta1) g);
   * m = beta2 m + (1 - beta2) g (decoupled decay; sign(0) = 0) */
  ASG_OPTIM_LION,
  /* Adam moments m, v with bias correction; per parameter
   * r = (m / bc1) / (sqrt(v / bc2) + eps) + wd p, trust = ||p|| / ||r||
   * (1 when either norm is 0), p -= lr trust r. Norms are over the whole
   * parameter (with ZeRO-1 summed over the shards). */
  ASG_OPTIM_LAMB
} asg_optim_kind;

/* A parameter group: its members get lr * lr_scale and this weight decay
 * instead of the optimizer's. A parameter belongs to the first group that
 * lists it in params or whose name starts with prefix (prefix may be NULL);
 * parameters in no group use the optimizer's settings. Names are the
 * variables' names, e.g. "enc.weight" for layer "enc" (name scopes are not
 * part of them): prefix "enc." selects that layer. A prefix that matches no
 * trained parameter is an error (a typo would otherwise change nothing).
 * Pointers must stay valid until the optimizer is built (asg_compile_train
 * returns). */
typedef struct asg_param_group {
  int n_params;
  asg_tensor *const *params;
  const char *prefix;
  double lr_scale;
  double weight_decay;
} asg_param_group;

typedef struct asg_optim {
  asg_optim_kind kind;
  double lr;
  double momentum;     /* SGD, RMSprop */
  double dampening;    /* SGD */
  bool nesterov;       /* SGD */
  double beta1, beta2; /* Adam, AdamW, LAMB: in [0, 1); Lion: in [0, 1] */
  double eps;          /* Adam, AdamW, RMSprop, Adagrad, LAMB */
  /* Adam, AdamW: AMSGrad, the denominator uses the running maximum of the
   * second moment (state <p>.adam_max_v), as PyTorch's amsgrad=True */
  bool amsgrad;
  double lr_decay;                  /* Adagrad: lr / (1 + (t - 1) lr_decay) at step t */
  double initial_accumulator_value; /* Adagrad: initial <p>.adagrad_sum */
  double alpha;                     /* RMSprop smoothing constant */
  bool centered;                    /* RMSprop: normalize by the gradient's variance */
  /* SGD/Adam/RMSprop/Adagrad: L2 term wd * p added to the gradient;
   * AdamW, Lion: decoupled, p *= 1 - lr * wd before the step; LAMB: wd * p
   * added to the update before the trust ratio. */
  double weight_decay;
  bool no_decay_1d; /* parameters with ndim <= 1 (biases, norm weights) get no decay */
  /* Clipping of the gradient used by the step (after accumulation):
   * clip_value > 0 clamps each element to [-clip_value, clip_value], then
   * clip_norm > 0 scales all gradients by min(1, clip_norm / (norm + 1e-6))
   * with norm the global L2 norm over every parameter's gradient. */
  double clip_value;
  double clip_norm;
  /* Keep the global L2 norm of the gradients of the last step taken (after
   * accumulation and clip_value, before clip_norm's scaling) in the variable
   * "optim/grad_norm", read by asg_optim_get_stats (always on with
   * clip_norm > 0). Costs one pass over the gradients. */
  bool track_grad_norm;
  /* accum_steps > 1: each run adds its gradients to accumulators; every
   * accum_steps-th run steps with their mean and resets them (runs in
   * between leave parameters and optimizer state unchanged). The step is
   * identical to one run over the concatenated micro-batches when the loss
   * is a mean over equal-sized micro-batches. */
  int accum_steps;
  /* Dynamic loss scaling (for low-precision products, e.g.
   * asg_compile_opts.fp16_matmul, whose small gradients would flush to
   * zero): loss_scale > 0 differentiates loss * S instead of loss, with S
   * the variable "optim/loss_scale" (initially loss_scale), and divides the
   * gradients by S before clipping and the update. A run whose gradients
   * hold an inf or NaN changes no parameter and no optimizer state (the step
   * count included) and halves S; after scale_window finite runs in a row S
   * doubles ("optim/good_steps" counts them). As torch.amp.GradScaler
   * (init 65536, window 2000). scale_window 0 means 2000. Not combined with
   * accum_steps > 1. S never falls below loss_scale_min (0 means 1): at the
   * floor, runs that still overflow are skipped without lowering S
   * (asg_optim_get_stats reports the scale and whether it is at the floor;
   * with skip_nonfinite such a stall ends in an error). */
  double loss_scale;
  int scale_window;
  double loss_scale_min;
  /* Non-finite guard (opt-in; off, the step has no extra work): a run whose
   * gradients hold an inf or NaN changes no parameter, no optimizer state
   * (step count, moments, accumulators included) and no registered update
   * (asg_graph_add_update, e.g. batch-norm statistics). The check and the
   * gating are part of the step's graph, so every backend does them. The
   * runs skipped are counted ("optim/skipped_steps", "optim/skip_streak";
   * asg_optim_get_stats), and asg_program_run fails once max_skips runs in a
   * row were skipped (0 means 25); the failing run itself has already run,
   * skipped. Costs one pass over the gradients and a 4-byte read (a device
   * synchronization) per run. */
  bool skip_nonfinite;
  int max_skips;
  int n_groups;
  const asg_param_group *groups;
} asg_optim;

/* PyTorch defaults for everything not given. */
ASG_API asg_optim asg_sgd(double lr, double momentum);
ASG_API asg_optim asg_adam(double lr);                       /* betas 0.9, 0.999, eps 1e-8 */
ASG_API asg_optim asg_adamw(double lr, double weight_decay); /* same betas and eps */
ASG_API asg_optim asg_rmsprop(double lr);                    /* alpha 0.99, eps 1e-8 */
ASG_API asg_optim asg_adagrad(double lr); /* lr_decay 0, initial_accumulator_value 0, eps 1e-10 */
ASG_API asg_optim asg_lion(double lr, double weight_decay); /* betas 0.9, 0.99 */
ASG_API asg_optim asg_lamb(double lr, double weight_decay); /* betas 0.9, 0.999, eps 1e-6 */

/* A group of g's trainable variables with ndim <= 1 (biases, norm weights)
 * with weight decay 0 and lr scale 1; the members are written to out (room
 * for max; asg_graph_variable_count(g) always suffices). */
ASG_API asg_param_group asg_param_group_no_decay(asg_graph *g, asg_tensor **out, int max);

/* Adds gradients and updates for params (n_params == 0: every trainable
 * variable of loss's graph; an error when there is none). Writes up to max
 * assign nodes into updates and their number into *n_updates. The
 * hyper-parameters are checked here: lr, weight decays, lr scales,
 * clipping and loss scales finite and >= 0, momentum and dampening finite
 * and >= 0, betas in [0, 1) (Lion: [0, 1]), alpha in [0, 1], eps > 0
 * (Adam, AdamW, RMSprop, Adagrad, LAMB), lr_decay and
 * initial_accumulator_value finite and >= 0 (and only for Adagrad), amsgrad
 * only for Adam and AdamW, max_skips >= 0. The guard's error after max_skips (see
 * skip_nonfinite) is raised by programs made with asg_compile_train. */
ASG_API asg_status asg_optim_build(asg_tensor *loss, asg_optim opt, int n_params,
                                   asg_tensor *const *params, asg_tensor **updates, int max,
                                   int *n_updates);

/* One program for the whole step: loss (output 0), the extra outputs, the
 * gradients and updates of every trainable variable, and the graph's
 * registered updates (asg_graph_add_update). Fails (NULL) when the graph
 * has no trainable variable. */
ASG_API asg_program *asg_compile_train(asg_graph *g, asg_tensor *loss, asg_optim opt, int n_extra,
                                       asg_tensor *const *extra, const asg_compile_opts *opts);
/* Sets/gets the base learning rate ("optim/lr") of a program made by
 * asg_compile_train; takes effect at the next run, no recompiling. lr must
 * be finite and >= 0 (ASG_ERR_INVALID otherwise, nothing changed). */
ASG_API asg_status asg_optim_set_lr(asg_program *p, double lr);
ASG_API double asg_optim_get_lr(asg_program *p); /* NaN and an error if absent */

/* Numerical state of a program made by asg_compile_train, after its last
 * run. */
typedef struct asg_optim_stats {
  double loss_scale;        /* the dynamic loss scale S now; 0 without loss scaling */
  bool loss_scale_at_floor; /* S is at loss_scale_min: overflows no longer lower it */
  int64_t skipped_steps;    /* runs skipped for non-finite gradients (skip_nonfinite; else 0) */
  int64_t skip_streak;      /* of those, the run of skips ending at the last run */
  double grad_norm;         /* global gradient norm of the last step taken (clip_norm > 0 or
                               track_grad_norm; 0 before the first step, NaN without either) */
} asg_optim_stats;
ASG_API asg_status asg_optim_get_stats(asg_program *p, asg_optim_stats *out);

/* ---- learning-rate schedules, evaluated on the host per step ---- */
typedef enum asg_lr_kind {
  ASG_LR_CONSTANT = 0,
  ASG_LR_STEP,          /* base * gamma^floor(t / step_size) (StepLR) */
  ASG_LR_EXPONENTIAL,   /* base * gamma^t (ExponentialLR) */
  ASG_LR_COSINE,        /* min + (base - min)(1 + cos(pi t / total)) / 2, t clamped
                           to total (CosineAnnealingLR with T_max = total) */
  ASG_LR_WARMUP_COSINE, /* t < warmup: base (start + (1 - start) t / warmup);
                          then cosine from base to min over total - warmup */
  ASG_LR_ONE_CYCLE      /* PyTorch's OneCycleLR with max_lr = base: from base /
                           div_factor up to base over the first pct_start of
                           total_steps, then down to base / div_factor /
                           final_div_factor at t = total_steps - 1 (cosine or
                           linear annealing; three_phase as PyTorch's). Only
                           the lr: momentum is not cycled (cycle_momentum off).
                           Defined for t <= total_steps, as PyTorch. */
} asg_lr_kind;

typedef struct asg_lr_schedule {
  asg_lr_kind kind;
  double base_lr;
  double gamma;            /* STEP, EXPONENTIAL */
  int64_t step_size;       /* STEP */
  int64_t total_steps;     /* COSINE, WARMUP_COSINE, ONE_CYCLE */
  double min_lr;           /* COSINE, WARMUP_COSINE */
  int64_t warmup_steps;    /* WARMUP_COSINE */
  double warmup_start;     /* WARMUP_COSINE: lr factor at t = 0 (default 0) */
  double pct_start;        /* ONE_CYCLE: in [0, 1] (0.3) */
  double div_factor;       /* ONE_CYCLE: > 0 (25) */
  double final_div_factor; /* ONE_CYCLE: > 0 (1e4) */
  bool three_phase;        /* ONE_CYCLE: back to base / div_factor, then down (false) */
  bool linear_anneal;      /* ONE_CYCLE: linear instead of cosine annealing (false) */
} asg_lr_schedule;

ASG_API asg_lr_schedule asg_lr_constant(double base);
ASG_API asg_lr_schedule asg_lr_step(double base, int64_t step_size, double gamma);
ASG_API asg_lr_schedule asg_lr_exponential(double base, double gamma);
ASG_API asg_lr_schedule asg_lr_cosine(double base, int64_t total_steps, double min_lr);
ASG_API asg_lr_schedule asg_lr_warmup_cosine(double base, int64_t warmup_steps, int64_t total_steps,
                                             double min_lr);
/* PyTorch's defaults: pct_start 0.3, div_factor 25, final_div_factor 1e4 */
ASG_API asg_lr_schedule asg_lr_one_cycle(double max_lr, int64_t total_steps);
/* The learning rate for step t (0-based count of updates done); NaN for a
 * bad schedule (step_size or total_steps < 1, warmup > total, ONE_CYCLE
 * settings out of range or t > total_steps, a phase of length 0) and where the
 * formula gives no valid lr (negative, NaN or infinite: e.g. a negative
 * base or min_lr, gamma < 0). */
ASG_API double asg_lr_schedule_at(const asg_lr_schedule *s, int64_t t);
/* asg_optim_set_lr(p, asg_lr_schedule_at(s, t)); an error naming the step
 * and the value when the schedule gives no valid lr there. */
ASG_API asg_status asg_optim_schedule(asg_program *p, const asg_lr_schedule *s, int64_t t);

/* ---- reduce-on-plateau: lr from a metric, stateful (PyTorch's
 * ReduceLROnPlateau). Call asg_plateau_step once per evaluation (e.g. per
 * epoch) with the validation metric. A metric better than the best so far
 * (MIN: < best (1 - threshold), or < best - threshold with threshold_abs;
 * MAX: > best (1 + threshold), > best + threshold) resets the count of bad
 * evaluations, any other (NaN included) adds one; during the cooldown after
 * a reduction the count stays 0. When the count exceeds patience, lr becomes
 * max(lr factor, min_lr) (unchanged when that moves it by eps or less), the
 * count restarts and the cooldown begins. The lr is the program's base lr:
 * parameter groups keep their lr_scale. */

typedef struct asg_plateau_opts {
  asg_monitor_mode mode;
  double factor;      /* in [0, 1) (0.1) */
  int patience;       /* >= 0 (10) */
  double threshold;   /* finite, >= 0 (1e-4) */
  bool threshold_abs; /* absolute instead of relative threshold (false) */
  int cooldown;       /* >= 0 (0) */
  double min_lr;      /* finite, >= 0 (0) */
  double eps;         /* finite, >= 0 (1e-8) */
} asg_plateau_opts;

typedef struct asg_plateau asg_plateau;

/* PyTorch's defaults (listed above) for mode. */
ASG_API asg_plateau_opts asg_plateau_defaults(asg_monitor_mode mode);
/* Starts at lr (finite, >= 0). opts NULL: asg_plateau_defaults(MIN). NULL and
 * an error naming the setting for a bad option. */
ASG_API asg_plateau *asg_plateau_new(double lr, const asg_plateau_opts *opts);
ASG_API void asg_plateau_free(asg_plateau *pl);
/* Takes one evaluation's metric; returns the lr to use from now on (NaN and
 * an error for pl NULL). */
ASG_API double asg_plateau_step(asg_plateau *pl, double metric);
/* asg_plateau_step, then asg_optim_set_lr(p, that lr). */
ASG_API asg_status asg_optim_plateau(asg_program *p, asg_plateau *pl, double metric);
/* The state, e.g. to save with a checkpoint and restore into a new object
 * made with the same options. */
typedef struct asg_plateau_state {
  double lr, best;   /* best is +-inf before the first metric */
  int bad_epochs;    /* evaluations since the last improvement */
  int cooldown_left; /* evaluations of cooldown left */
} asg_plateau_state;
ASG_API asg_status asg_plateau_get_state(const asg_plateau *pl, asg_plateau_state *out);
ASG_API asg_status asg_plateau_set_state(asg_plateau *pl, const asg_plateau_state *st);

#ifdef __cplusplus
}
#endif
#endif
