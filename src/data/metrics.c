/* Classification metrics and running means on host arrays. */
#include <math.h>

#include "asg/metrics.h"
#include "core/internal.h"

static bool label_dt(asg_dtype dt) { return dt == ASG_I32 || dt == ASG_I64; }
static bool score_dt(asg_dtype dt) { return dt == ASG_F32 || dt == ASG_F64; }

static int64_t label_at(const void *a, asg_dtype dt, int64_t i) {
  return dt == ASG_I32 ? (int64_t)((const int32_t *)a)[i] : ((const int64_t *)a)[i];
}
static double score_at(const void *a, asg_dtype dt, int64_t i) {
  return dt == ASG_F32 ? (double)((const float *)a)[i] : ((const double *)a)[i];
}

static asg_status check_labels(const char *fn, const void *a, asg_dtype dt) {
  if (!a) return asg__error(ASG_ERR_INVALID, "%s: NULL labels", fn);
  if (!label_dt(dt))
    return asg__error(ASG_ERR_DTYPE, "%s: labels are %s, need int32 or int64", fn,
                      asg_dtype_name(dt));
  return ASG_OK;
}
static asg_status check_scores(const char *fn, const void *a, asg_dtype dt, int64_t n, int64_t c) {
  if (!a) return asg__error(ASG_ERR_INVALID, "%s: NULL scores", fn);
  if (!score_dt(dt))
    return asg__error(ASG_ERR_DTYPE, "%s: scores are %s, need float32 or float64", fn,
                      asg_dtype_name(dt));
  if (n < 1 || c < 1)
    return asg__error(ASG_ERR_INVALID, "%s: scores [%lld,%lld] are empty", fn, (long long)n,
                      (long long)c);
  return ASG_OK;
}

asg_status asg_metric_argmax(const void *s, asg_dtype dt, int64_t n, int64_t c, int64_t *pred) {
  asg_status st = check_scores("asg_metric_argmax", s, dt, n, c);
  if (st) return st;
  if (!pred) return asg__error(ASG_ERR_INVALID, "asg_metric_argmax: NULL pred");
  for (int64_t i = 0; i < n; i++) {
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++)
      if (score_at(s, dt, i * c + j) > score_at(s, dt, i * c + best)) best = j;
    pred[i] = best;
  }
  return ASG_OK;
}

double asg_metric_accuracy(const void *pred, asg_dtype pdt, const void *target, asg_dtype tdt,
                           int64_t n) {
  if (check_labels("asg_metric_accuracy", pred, pdt) ||
      check_labels("asg_metric_accuracy", target, tdt))
    return NAN;
  if (n < 1) return asg__error(ASG_ERR_INVALID, "asg_metric_accuracy: n = %lld", (long long)n), NAN;
  int64_t ok = 0;
  for (int64_t i = 0; i < n; i++)
    ok += label_at(pred, pdt, i) == label_at(target, tdt, i);
  return (double)ok / (double)n;
}

double asg_metric_topk_accuracy(const void *s, asg_dtype sdt, int64_t n, int64_t c,
                                const void *target, asg_dtype tdt, int k) {
  if (check_scores("asg_metric_topk_accuracy", s, sdt, n, c) ||
      check_labels("asg_metric_topk_accuracy", target, tdt))
    return NAN;
  if (k < 1) return asg__error(ASG_ERR_INVALID, "asg_metric_topk_accuracy: k = %d", k), NAN;
  int64_t ok = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t t = label_at(target, tdt, i);
    if (t < 0 || t >= c) continue;
    double v = score_at(s, sdt, i * c + t);
    int64_t rank = 0; /* classes ranked before t */
    for (int64_t j = 0; j < c; j++) {
      double u = score_at(s, sdt, i * c + j);
      rank += u > v || (u == v && j < t);
    }
    ok += rank < k;
  }
  return (double)ok / (double)n;
}

asg_status asg_metric_confusion(const void *pred, asg_dtype pdt, const void *target, asg_dtype tdt,
                                int64_t n, int64_t c, int64_t *cm) {
  asg_status st = check_labels("asg_metric_confusion", pred, pdt);
  if (!st) st = check_labels("asg_metric_confusion", target, tdt);
  if (st) return st;
  if (!cm || c < 1 || n < 0)
    return asg__error(ASG_ERR_INVALID, "asg_metric_confusion: NULL matrix, c < 1 or n < 0");
  for (int64_t i = 0; i < c * c; i++)
    cm[i] = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t p = label_at(pred, pdt, i), t = label_at(target, tdt, i);
    if (p < 0 || p >= c || t < 0 || t >= c)
      return asg__error(ASG_ERR_INVALID,
                        "asg_metric_confusion: entry %lld has target %lld, prediction %lld; "
                        "classes are [0, %lld)",
                        (long long)i, (long long)t, (long long)p, (long long)c);
    cm[t * c + p]++;
  }
  return ASG_OK;
}

static double ratio(int64_t a, int64_t b) { return b ? (double)a / (double)b : 0.0; }

asg_status asg_metric_prf(const int64_t *cm, int64_t c, asg_prf *per, asg_prf *macro) {
  if (!cm || c < 1) return asg__error(ASG_ERR_INVALID, "asg_metric_prf: NULL matrix or c < 1");
  asg_prf sum = {0, 0, 0, 0};
  int64_t present = 0;
  for (int64_t k = 0; k < c; k++) {
    int64_t tp = cm[k * c + k], row = 0, col = 0;
    for (int64_t j = 0; j < c; j++) {
      row += cm[k * c + j]; /* targets of class k */
      col += cm[j * c + k]; /* predictions of class k */
    }
    asg_prf r = {ratio(tp, col), ratio(tp, row), 0, row};
    r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0;
    if (per) per[k] = r;
    if (row + col > 0) {
      present++;
      sum.precision += r.precision;
      sum.recall += r.recall;
      sum.f1 += r.f1;
    }
    sum.support += row;
  }
  if (macro) {
    double d = present ? (double)present : NAN;
    *macro = (asg_prf){sum.precision / d, sum.recall / d, sum.f1 / d, sum.support};
  }
  return ASG_OK;
}

void asg_running_mean_reset(asg_running_mean *m) {
  if (m) *m = (asg_running_mean){0, 0, 0};
}

void asg_running_mean_update(asg_running_mean *m, double v, double w) {
  if (!m || !(w > 0)) return;
  m->weight += w;
  m->mean += (v - m->mean) * (w / m->weight); /* incremental form: no large sums */
  m->count++;
}

double asg_running_mean_value(const asg_running_mean *m) {
  return m && m->weight > 0 ? m->mean : NAN;
}
