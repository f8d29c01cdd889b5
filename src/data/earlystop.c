/* Early stopping on a monitored value (Keras / Lightning semantics). */
#include <math.h>

#include "asg/metrics.h"

bool asg_monitor_improves(asg_monitor_mode mode, double min_delta, double value, double best) {
  if (!isfinite(value)) return false;
  if (isnan(best)) return true; /* nothing recorded yet */
  double d = fabs(min_delta);
  return mode == ASG_MODE_MAX ? value > best + d : value < best - d;
}

void asg_early_stopping_init(asg_early_stopping *e, asg_monitor_mode mode, int64_t patience,
                             double min_delta) {
  if (!e) return;
  *e = (asg_early_stopping){.mode = mode == ASG_MODE_MAX ? ASG_MODE_MAX : ASG_MODE_MIN,
                            .patience = patience > 0 ? patience : 0,
                            .min_delta = isfinite(min_delta) ? fabs(min_delta) : 0,
                            .best = NAN,
                            .best_step = -1};
}

bool asg_early_stopping_update(asg_early_stopping *e, double value, int64_t step) {
  if (!e) return false;
  e->count++;
  e->improved = false;
  if (e->stopped) return true;
  if (!isfinite(value)) return e->stopped = true;
  if (asg_monitor_improves(e->mode, e->min_delta, value, e->best)) {
    e->best = value;
    e->best_step = step;
    e->wait = 0;
    e->improved = true;
    return false;
  }
  if (++e->wait >= e->patience) e->stopped = true; /* Keras and Lightning: wait >= patience */
  return e->stopped;
}
