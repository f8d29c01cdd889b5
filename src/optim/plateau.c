/* Reduce-on-plateau: a host-side state machine over a metric, PyTorch's
 * ReduceLROnPlateau (torch.optim.lr_scheduler) for one lr. The program's lr
 * is a variable, so applying it is one write (asg_optim_plateau). */
#include <math.h>
#include <stdlib.h>

#include "core/internal.h"

struct asg_plateau {
  asg_plateau_opts o;
  asg_plateau_state s;
};

asg_plateau_opts asg_plateau_defaults(asg_monitor_mode mode) {
  return (asg_plateau_opts){
      .mode = mode, .factor = 0.1, .patience = 10, .threshold = 1e-4, .min_lr = 0, .eps = 1e-8};
}

static bool nonneg(double v) { return isfinite(v) && v >= 0; }

static double worst(const asg_plateau_opts *o) {
  return o->mode == ASG_MODE_MIN ? INFINITY : -INFINITY;
}

asg_plateau *asg_plateau_new(double lr, const asg_plateau_opts *opts) {
  asg_plateau_opts o = opts ? *opts : asg_plateau_defaults(ASG_MODE_MIN);
  const char *bad = NULL;
  double val = 0;
  if (o.mode != ASG_MODE_MIN && o.mode != ASG_MODE_MAX)
    bad = "mode", val = o.mode;
  else if (!(o.factor >= 0 && o.factor < 1))
    bad = "factor (must be in [0, 1))", val = o.factor;
  else if (o.patience < 0)
    bad = "patience (must be >= 0)", val = o.patience;
  else if (!nonneg(o.threshold))
    bad = "threshold (must be finite, >= 0)", val = o.threshold;
  else if (o.cooldown < 0)
    bad = "cooldown (must be >= 0)", val = o.cooldown;
  else if (!nonneg(o.min_lr))
    bad = "min_lr (must be finite, >= 0)", val = o.min_lr;
  else if (!nonneg(o.eps))
    bad = "eps (must be finite, >= 0)", val = o.eps;
  else if (!nonneg(lr))
    bad = "lr (must be finite, >= 0)", val = lr;
  if (bad) {
    asg__error(ASG_ERR_INVALID, "asg_plateau_new: bad %s: %g", bad, val);
    return NULL;
  }
  asg_plateau *pl = malloc(sizeof *pl);
  if (!pl) {
    asg__error(ASG_ERR_OOM, "asg_plateau_new: out of memory");
    return NULL;
  }
  pl->o = o;
  pl->s = (asg_plateau_state){.lr = lr, .best = worst(&o)};
  return pl;
}

void asg_plateau_free(asg_plateau *pl) { free(pl); }

/* PyTorch's _is_better; false for a NaN metric */
static bool better(const asg_plateau_opts *o, double a, double best) {
  if (o->mode == ASG_MODE_MIN)
    return o->threshold_abs ? a < best - o->threshold : a < best * (1 - o->threshold);
  return o->threshold_abs ? a > best + o->threshold : a > best * (1 + o->threshold);
}

double asg_plateau_step(asg_plateau *pl, double metric) {
  if (!pl) {
    asg__error(ASG_ERR_INVALID, "asg_plateau_step: NULL plateau");
    return NAN;
  }
  asg_plateau_state *s = &pl->s;
  if (better(&pl->o, metric, s->best)) {
    s->best = metric;
    s->bad_epochs = 0;
  } else {
    s->bad_epochs++;
  }
  if (s->cooldown_left > 0) { /* bad evaluations in the cooldown do not count */
    s->cooldown_left--;
    s->bad_epochs = 0;
  }
  if (s->bad_epochs > pl->o.patience) {
    double lr = fmax(s->lr * pl->o.factor, pl->o.min_lr);
    if (s->lr - lr > pl->o.eps) s->lr = lr;
    s->cooldown_left = pl->o.cooldown;
    s->bad_epochs = 0;
  }
  return s->lr;
}

asg_status asg_optim_plateau(asg_program *p, asg_plateau *pl, double metric) {
  if (!p || !pl) return asg__error(ASG_ERR_INVALID, "asg_optim_plateau: NULL argument");
  return asg_optim_set_lr(p, asg_plateau_step(pl, metric));
}

asg_status asg_plateau_get_state(const asg_plateau *pl, asg_plateau_state *out) {
  if (!pl || !out) return asg__error(ASG_ERR_INVALID, "asg_plateau_get_state: NULL argument");
  *out = pl->s;
  return ASG_OK;
}

asg_status asg_plateau_set_state(asg_plateau *pl, const asg_plateau_state *st) {
  if (!pl || !st) return asg__error(ASG_ERR_INVALID, "asg_plateau_set_state: NULL argument");
  if (!nonneg(st->lr) || isnan(st->best) || st->bad_epochs < 0 || st->cooldown_left < 0)
    return asg__error(ASG_ERR_INVALID,
                      "asg_plateau_set_state: bad state (lr %g, best %g, bad_epochs %d, "
                      "cooldown_left %d)",
                      st->lr, st->best, st->bad_epochs, st->cooldown_left);
  pl->s = *st;
  return ASG_OK;
}
