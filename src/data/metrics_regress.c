/* Regression metrics and the exponential moving average on host arrays. */
#include <math.h>

#include "asg/metrics.h"
#include "core/internal.h"

static double value_at(const void *a, asg_dtype dt, int64_t i) {
  return dt == ASG_F32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

static bool check(const char *fn, const void *p, asg_dtype pdt, const void *t, asg_dtype tdt,
                  int64_t n) {
  if (!p || !t) return asg__error(ASG_ERR_INVALID, "%s: NULL array", fn), false;
  if ((pdt != ASG_F32 && pdt != ASG_F64) || (tdt != ASG_F32 && tdt != ASG_F64))
    return asg__error(ASG_ERR_DTYPE, "%s: arrays are %s and %s, need float32 or float64", fn,
                      asg_dtype_name(pdt), asg_dtype_name(tdt)),
           false;
  if (n < 1) return asg__error(ASG_ERR_INVALID, "%s: n = %lld", fn, (long long)n), false;
  return true;
}

double asg_metric_mae(const void *p, asg_dtype pdt, const void *t, asg_dtype tdt, int64_t n) {
  if (!check("asg_metric_mae", p, pdt, t, tdt, n)) return NAN;
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += fabs(value_at(p, pdt, i) - value_at(t, tdt, i));
  return s / (double)n;
}

double asg_metric_rmse(const void *p, asg_dtype pdt, const void *t, asg_dtype tdt, int64_t n) {
  if (!check("asg_metric_rmse", p, pdt, t, tdt, n)) return NAN;
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = value_at(p, pdt, i) - value_at(t, tdt, i);
    s += d * d;
  }
  return sqrt(s / (double)n);
}

double asg_metric_r2(const void *p, asg_dtype pdt, const void *t, asg_dtype tdt, int64_t n) {
  if (!check("asg_metric_r2", p, pdt, t, tdt, n)) return NAN;
  double mean = 0;
  for (int64_t i = 0; i < n; i++)
    mean += value_at(t, tdt, i);
  mean /= (double)n;
  double res = 0, tot = 0; /* two passes: no cancellation in sum(t^2) - n mean^2 */
  for (int64_t i = 0; i < n; i++) {
    double y = value_at(t, tdt, i), d = value_at(p, pdt, i) - y, c = y - mean;
    res += d * d;
    tot += c * c;
  }
  if (isnan(res) || isnan(tot)) return NAN;
  if (tot == 0) return res == 0 ? 1.0 : 0.0;
  return 1.0 - res / tot;
}

void asg_ema_init(asg_ema *e, double decay) {
  if (!e) return;
  if (!(decay >= 0 && decay < 1)) decay = 0.98;
  *e = (asg_ema){decay, 0, 0, 0};
}

void asg_ema_update(asg_ema *e, double x) {
  if (!e || !isfinite(x)) return;
  e->value = e->decay * e->value + (1 - e->decay) * x;
  e->correction = e->decay * e->correction + (1 - e->decay); /* 1 - decay^count */
  e->count++;
}

double asg_ema_value(const asg_ema *e) {
  return e && e->count > 0 && e->correction > 0 ? e->value / e->correction : NAN;
}
