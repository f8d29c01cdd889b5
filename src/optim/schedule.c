/* Learning-rate schedules: pure host functions of the step number. The
 * program's lr is a variable, so applying one is a 4- or 8-byte write per
 * step (asg_optim_schedule), never a recompile. */
#include <math.h>

#include "core/internal.h"

#define M_PI_VALUE 3.14159265358979323846

asg_lr_schedule asg_lr_constant(double base) {
  return (asg_lr_schedule){.kind = ASG_LR_CONSTANT, .base_lr = base};
}
asg_lr_schedule asg_lr_step(double base, int64_t step_size, double gamma) {
  return (asg_lr_schedule){
      .kind = ASG_LR_STEP, .base_lr = base, .step_size = step_size, .gamma = gamma};
}
asg_lr_schedule asg_lr_exponential(double base, double gamma) {
  return (asg_lr_schedule){.kind = ASG_LR_EXPONENTIAL, .base_lr = base, .gamma = gamma};
}
asg_lr_schedule asg_lr_cosine(double base, int64_t total_steps, double min_lr) {
  return (asg_lr_schedule){
      .kind = ASG_LR_COSINE, .base_lr = base, .total_steps = total_steps, .min_lr = min_lr};
}
asg_lr_schedule asg_lr_warmup_cosine(double base, int64_t warmup_steps, int64_t total_steps,
                                     double min_lr) {
  return (asg_lr_schedule){.kind = ASG_LR_WARMUP_COSINE,
                           .base_lr = base,
                           .warmup_steps = warmup_steps,
                           .total_steps = total_steps,
                           .min_lr = min_lr};
}

asg_lr_schedule asg_lr_one_cycle(double max_lr, int64_t total_steps) {
  return (asg_lr_schedule){.kind = ASG_LR_ONE_CYCLE,
                           .base_lr = max_lr,
                           .total_steps = total_steps,
                           .pct_start = 0.3,
                           .div_factor = 25,
                           .final_div_factor = 1e4};
}

/* min + (base - min)(1 + cos(pi t / T)) / 2 with t clamped to [0, T]. */
static double cosine(double base, double min, int64_t t, int64_t T) {
  if (t < 0) t = 0;
  if (t > T) t = T;
  return min + (base - min) * 0.5 * (1 + cos(M_PI_VALUE * (double)t / (double)T));
}

/* PyTorch's OneCycleLR.get_lr at last_epoch t: phases end at fractional
 * steps (pct_start T - 1, [2 pct_start T - 2,] T - 1); within a phase the lr
 * anneals from its start to its end value with pct = (t - start) / (end -
 * start), the last phase extrapolating for t past its end. */
static double one_cycle(const asg_lr_schedule *s, int64_t t) {
  const double T = (double)s->total_steps, pct = s->pct_start;
  if (s->total_steps < 1 || t > s->total_steps || !(pct >= 0 && pct <= 1) || !(s->div_factor > 0) ||
      !(s->final_div_factor > 0))
    return NAN;
  const double top = s->base_lr, init = top / s->div_factor, low = init / s->final_div_factor;
  double ends[3], from[3], to[3];
  int n = 0;
  ends[n] = pct * T - 1, from[n] = init, to[n++] = top;
  if (s->three_phase) ends[n] = 2 * pct * T - 2, from[n] = top, to[n++] = init;
  ends[n] = T - 1, from[n] = s->three_phase ? init : top, to[n++] = low;
  double start = 0;
  for (int i = 0; i < n; i++) {
    if ((double)t <= ends[i] || i == n - 1) {
      if (ends[i] == start) return NAN; /* a phase of length 0 (PyTorch divides by 0) */
      const double f = ((double)t - start) / (ends[i] - start);
      if (s->linear_anneal) return (to[i] - from[i]) * f + from[i];
      return to[i] + (from[i] - to[i]) / 2.0 * (cos(M_PI_VALUE * f) + 1);
    }
    start = ends[i];
  }
  return NAN;
}

/* The formula's value, valid or not (NaN for a bad schedule). */
static double schedule_raw(const asg_lr_schedule *s, int64_t t) {
  if (!s || t < 0) return NAN;
  switch (s->kind) {
  case ASG_LR_CONSTANT: return s->base_lr;
  case ASG_LR_STEP:
    if (s->step_size < 1) return NAN;
    return s->base_lr * pow(s->gamma, (double)(t / s->step_size));
  case ASG_LR_EXPONENTIAL: return s->base_lr * pow(s->gamma, (double)t);
  case ASG_LR_COSINE:
    if (s->total_steps < 1) return NAN;
    return cosine(s->base_lr, s->min_lr, t, s->total_steps);
  case ASG_LR_WARMUP_COSINE: {
    int64_t w = s->warmup_steps;
    if (w < 0 || s->total_steps < 1 || w > s->total_steps) return NAN;
    if (t < w)
      return s->base_lr * (s->warmup_start + (1 - s->warmup_start) * (double)t / (double)w);
    if (s->total_steps == w) return s->base_lr;
    return cosine(s->base_lr, s->min_lr, t - w, s->total_steps - w);
  }
  case ASG_LR_ONE_CYCLE: return one_cycle(s, t);
  }
  return NAN;
}

static bool valid_lr(double lr) { return isfinite(lr) && lr >= 0; }

double asg_lr_schedule_at(const asg_lr_schedule *s, int64_t t) {
  double lr = schedule_raw(s, t);
  return valid_lr(lr) ? lr : NAN;
}

asg_status asg_optim_schedule(asg_program *p, const asg_lr_schedule *s, int64_t t) {
  double lr = schedule_raw(s, t);
  if (isnan(lr))
    return asg__error(ASG_ERR_INVALID, "asg_optim_schedule: bad schedule or step %lld",
                      (long long)t);
  if (!valid_lr(lr))
    return asg__error(ASG_ERR_INVALID,
                      "asg_optim_schedule: the schedule gives lr %g at step %lld; an lr must be "
                      "finite and >= 0 (check base_lr, min_lr and gamma)",
                      lr, (long long)t);
  return asg_optim_set_lr(p, lr);
}
