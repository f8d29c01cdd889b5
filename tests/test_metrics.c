/* Metrics on host arrays against small hand-computed cases. */
#include <string.h>

#include "testutil.h"

/* 5 samples, 3 classes. Row maxima: 1, 0, 2, 2 (tie 0/2 -> 0), 1. */
static const float S[5 * 3] = {
    0.1f, 0.7f, 0.2f, /* pred 1, target 1 */
    0.5f, 0.3f, 0.2f, /* pred 0, target 1 */
    0.0f, 0.1f, 0.9f, /* pred 2, target 2 */
    0.4f, 0.2f, 0.4f, /* pred 0 (first max), target 2 */
    0.2f, 0.5f, 0.3f, /* pred 1, target 0 */
};
static const int32_t T32[5] = {1, 1, 2, 2, 0};

static void test_accuracy(void) {
  int64_t pred[5];
  TU_CHECK(asg_metric_argmax(S, ASG_F32, 5, 3, pred) == ASG_OK, "argmax");
  const int64_t want_pred[5] = {1, 0, 2, 0, 1};
  TU_CHECK(memcmp(pred, want_pred, sizeof pred) == 0, "argmax values (first max on ties)");
  /* correct: rows 0, 2 -> 2/5 */
  TU_CHECK(asg_metric_accuracy(pred, ASG_I64, T32, ASG_I32, 5) == 0.4, "accuracy 2/5");
  /* top-2: row0 yes, row1 target 1 (0.3) rank 1 yes, row2 yes, row3 target 2 (0.4
   * ties with class 0, lower index first) rank 1 yes, row4 target 0 (0.2) rank 2 no */
  TU_CHECK(asg_metric_topk_accuracy(S, ASG_F32, 5, 3, T32, ASG_I32, 2) == 0.8, "top-2 4/5");
  TU_CHECK(asg_metric_topk_accuracy(S, ASG_F32, 5, 3, T32, ASG_I32, 1) == 0.4, "top-1 = accuracy");
  TU_CHECK(asg_metric_topk_accuracy(S, ASG_F32, 5, 3, T32, ASG_I32, 3) == 1.0, "top-3 = 1");
  double sd[5 * 3];
  for (int i = 0; i < 15; i++)
    sd[i] = S[i];
  int64_t t64[5] = {1, 1, 2, 2, 7}; /* out-of-range target counts as wrong */
  TU_CHECK(asg_metric_topk_accuracy(sd, ASG_F64, 5, 3, t64, ASG_I64, 3) == 0.8,
           "top-3 f64, bad label");
  TU_CHECK(isnan(asg_metric_accuracy(pred, ASG_F32, T32, ASG_I32, 5)) &&
               strstr(asg_last_error(), "asg_metric_accuracy"),
           "float labels refused: %s", asg_last_error());
  TU_CHECK(isnan(asg_metric_topk_accuracy(S, ASG_F32, 5, 3, T32, ASG_I32, 0)), "k = 0 refused");
}

static void test_confusion_prf(void) {
  const int64_t pred[5] = {1, 0, 2, 0, 1};
  int64_t cm[9];
  TU_CHECK(asg_metric_confusion(pred, ASG_I64, T32, ASG_I32, 5, 3, cm) == ASG_OK, "confusion");
  /* rows = target, cols = prediction */
  const int64_t want[9] = {0, 1, 0,  /* target 0 predicted 1 */
                           1, 1, 0,  /* target 1: predicted 0 once, 1 once */
                           1, 0, 1}; /* target 2: 0 once, 2 once */
  TU_CHECK(memcmp(cm, want, sizeof cm) == 0, "confusion values");
  asg_prf per[3], mac;
  TU_CHECK(asg_metric_prf(cm, 3, per, &mac) == ASG_OK, "prf");
  /* class 0: tp 0, predicted 2, actual 1 -> p 0, r 0, f1 0
   * class 1: tp 1, predicted 2, actual 2 -> p .5, r .5, f1 .5
   * class 2: tp 1, predicted 1, actual 2 -> p 1, r .5, f1 2/3 */
  double got[9] = {per[0].precision, per[0].recall, per[0].f1,
                   per[1].precision, per[1].recall, per[1].f1,
                   per[2].precision, per[2].recall, per[2].f1};
  double exp9[9] = {0, 0, 0, 0.5, 0.5, 0.5, 1, 0.5, 2.0 / 3};
  TU_CHECK(tu_close("prf per class", got, exp9, 9, 1e-15, 0), "per-class precision/recall/f1");
  TU_CHECK(per[0].support == 1 && per[1].support == 2 && per[2].support == 2, "support");
  double m3[3] = {mac.precision, mac.recall, mac.f1}, w3[3] = {0.5, 1.0 / 3, (0.5 + 2.0 / 3) / 3};
  TU_CHECK(tu_close("macro", m3, w3, 3, 1e-15, 0) && mac.support == 5, "macro averages");
  /* a class absent from targets and predictions is left out of the macro */
  int64_t cm4[16] = {0};
  for (int t = 0; t < 3; t++)
    for (int p = 0; p < 3; p++)
      cm4[t * 4 + p] = cm[t * 3 + p];
  asg_prf mac4;
  asg_metric_prf(cm4, 4, NULL, &mac4);
  TU_CHECK(fabs(mac4.f1 - mac.f1) < 1e-15, "absent class ignored by macro");
  const int64_t badp[2] = {0, 3};
  TU_CHECK(asg_metric_confusion(badp, ASG_I64, T32, ASG_I32, 2, 3, cm) == ASG_ERR_INVALID &&
               strstr(asg_last_error(), "prediction 3"),
           "out-of-range label refused: %s", asg_last_error());
}

static void test_running_mean(void) {
  asg_running_mean m = {0};
  TU_CHECK(isnan(asg_running_mean_value(&m)), "empty mean is NaN");
  asg_running_mean_update(&m, 2.0, 1);
  asg_running_mean_update(&m, 4.0, 3);   /* (2 + 12) / 4 */
  asg_running_mean_update(&m, 100.0, 0); /* ignored */
  TU_CHECK(fabs(asg_running_mean_value(&m) - 3.5) < 1e-15 && m.count == 2, "weighted mean 3.5");
  asg_running_mean_reset(&m);
  for (int i = 1; i <= 100; i++)
    asg_running_mean_update(&m, i, 1);
  TU_CHECK(fabs(asg_running_mean_value(&m) - 50.5) < 1e-12, "mean of 1..100");
}

int main(void) {
  test_accuracy();
  test_confusion_prf();
  test_running_mean();
  return tu_finish();
}
