/* Training utilities: regression metrics, the exponential moving average,
 * early stopping and the checkpoint manager, against hand-computed cases. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static void test_regression(void) {
  const double p[4] = {1, 2, 3, 4};
  const float t[4] = {1, 3, 2, 6}; /* errors 0, -1, 1, -2; mean of t = 3 */
  TU_CHECK(asg_metric_mae(p, ASG_F64, t, ASG_F32, 4) == 1.0, "mae");
  TU_CHECK(fabs(asg_metric_rmse(p, ASG_F64, t, ASG_F32, 4) - sqrt(1.5)) < 1e-15, "rmse");
  /* SS_res 6, SS_tot 4 + 0 + 1 + 9 = 14 */
  TU_CHECK(fabs(asg_metric_r2(p, ASG_F64, t, ASG_F32, 4) - 8.0 / 14.0) < 1e-15, "r2 %g",
           asg_metric_r2(p, ASG_F64, t, ASG_F32, 4));
  TU_CHECK(asg_metric_r2(t, ASG_F32, t, ASG_F32, 4) == 1.0, "r2 of a perfect fit");
  const double c[2] = {2, 2}, q[2] = {1, 2};
  TU_CHECK(asg_metric_r2(c, ASG_F64, c, ASG_F64, 2) == 1.0 &&
               asg_metric_r2(q, ASG_F64, c, ASG_F64, 2) == 0.0,
           "r2 with constant targets (scikit-learn)");
  /* the mean as prediction scores 0 */
  const double m[4] = {3, 3, 3, 3};
  TU_CHECK(fabs(asg_metric_r2(m, ASG_F64, t, ASG_F32, 4)) < 1e-15, "r2 of the mean");
  asg_clear_error();
  TU_CHECK(isnan(asg_metric_mae(p, ASG_I32, t, ASG_F32, 4)) &&
               tu_contains(asg_last_error(), "asg_metric_mae"),
           "dtype error");
  TU_CHECK(isnan(asg_metric_rmse(p, ASG_F64, t, ASG_F32, 0)), "n = 0");
  TU_CHECK(isnan(asg_metric_r2(NULL, ASG_F64, t, ASG_F32, 4)), "NULL");
}

static void test_ema(void) {
  asg_ema e;
  asg_ema_init(&e, 0.5);
  TU_CHECK(isnan(asg_ema_value(&e)), "empty");
  asg_ema_update(&e, 4);
  TU_CHECK(asg_ema_value(&e) == 4, "first value is x itself (debiased)");
  asg_ema_update(&e, NAN); /* ignored */
  asg_ema_update(&e, 8);
  /* (0.5 * 0.5 * 4 + 0.5 * 8) / (1 - 0.25) */
  TU_CHECK(fabs(asg_ema_value(&e) - 5.0 / 0.75) < 1e-15 && e.count == 2, "second %g",
           asg_ema_value(&e));
  asg_ema_init(&e, 1.5); /* out of range: the default */
  TU_CHECK(e.decay == 0.98, "default decay");
}

static void test_early_stopping(void) {
  asg_early_stopping es;
  asg_early_stopping_init(&es, ASG_MODE_MIN, 2, 0.1);
  const double v[5] = {1.0, 0.95, 0.85, 0.86, 0.84};
  const bool want[5] = {false, false, false, false, true};
  for (int i = 0; i < 5; i++)
    TU_CHECK(asg_early_stopping_update(&es, v[i], 10 * i) == want[i], "min step %d", i);
  TU_CHECK(es.best == 0.85 && es.best_step == 20 && es.stopped && es.wait == 2, "min best %g @%lld",
           es.best, (long long)es.best_step);
  asg_early_stopping_init(&es, ASG_MODE_MAX, 0, 0);
  TU_CHECK(!asg_early_stopping_update(&es, 0.5, 1) && es.improved, "max first");
  TU_CHECK(!asg_early_stopping_update(&es, 0.6, 2) && es.improved, "max improves");
  TU_CHECK(asg_early_stopping_update(&es, 0.6, 3) && !es.improved,
           "patience 0: an equal value stops");
  asg_early_stopping_init(&es, ASG_MODE_MIN, 5, 0);
  asg_early_stopping_update(&es, 1, 1);
  TU_CHECK(asg_early_stopping_update(&es, NAN, 2) && es.best == 1, "NaN stops at once");
  TU_CHECK(asg_monitor_improves(ASG_MODE_MIN, 0, 1, NAN) &&
               !asg_monitor_improves(ASG_MODE_MIN, 0, INFINITY, NAN),
           "monitor rule");
}

/* ---- checkpoint manager ---- */

typedef struct model {
  asg_graph *g;
  asg_program *p;
} model;

static model build(void) {
  model m = {asg_graph_new(), NULL};
  asg_tensor *w = asg_variable(m.g, "w", ASG_F32, ASG_SHAPE(3), asg_init_zeros());
  asg_tensor *loss = asg_mean(asg_mul(w, w), ASG_ALL_AXES, false);
  m.p = asg_compile_train(m.g, loss, asg_adam(0.1), 0, NULL, NULL);
  if (!m.p) printf("build: %s\n", asg_last_error());
  return m;
}

static void set_w(model *m, double v) {
  double w[3] = {v, v, v};
  tu_set_var(m->p, "w", w);
}
static double get_w(model *m) {
  double w[3] = {-1, -1, -1};
  tu_get_var(m->p, "w", w);
  return w[0];
}

static int count_files(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 &&
         strstr(e->d_name, ".safetensors") != NULL;
  if (d) closedir(d);
  return n;
}

static bool steps_are(asg_ckpt_manager *cm, const int64_t *want, int n) {
  if (asg_ckpt_manager_count(cm) != n) return false;
  for (int i = 0; i < n; i++) {
    int64_t s = -1;
    if (asg_ckpt_manager_info(cm, i, &s, NULL, NULL) || s != want[i]) return false;
  }
  return true;
}

static void test_manager(void) {
  const char *root = tu_tmpdir_create("asg_test_ckptm");
  if (!root) return;
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/run", root); /* created by open */
  model m = build();
  if (!m.p) return;
  asg_ckpt_manager_options o = {.keep_last = 2, .keep_best = true, .mode = ASG_MODE_MIN};
  asg_ckpt_manager *cm = asg_ckpt_manager_open(dir, &o);
  TU_CHECK(cm != NULL, "open: %s", asg_last_error());
  if (!cm) return;
  int64_t s = -1;
  TU_CHECK(asg_ckpt_manager_restore_latest(cm, m.p, &s) == ASG_ERR_NOT_FOUND, "empty: latest");
  const double metric[5] = {0.5, 0.2, 0.4, 0.3, 0.6};
  for (int i = 0; i < 5; i++) {
    set_w(&m, i + 1);
    TU_CHECK(asg_ckpt_manager_save(cm, m.p, i + 1, metric[i]) == ASG_OK, "save %d: %s", i + 1,
             asg_last_error());
  }
  /* the last two (4, 5) and the best (2, metric 0.2), in save order */
  const int64_t want1[3] = {2, 4, 5};
  TU_CHECK(steps_are(cm, want1, 3), "kept 2, 4, 5 (count %d)", asg_ckpt_manager_count(cm));
  TU_CHECK(count_files(dir, "ckpt-") == 3, "3 files on disk, not %d", count_files(dir, "ckpt-"));
  TU_CHECK(asg_ckpt_manager_best(cm) == 0, "best index");
  const char *path = NULL;
  double mt = 0;
  asg_ckpt_manager_info(cm, 1, &s, &mt, &path);
  TU_CHECK(mt == 0.3 && path && tu_contains(path, "/ckpt-00000004.safetensors") &&
               access(path, R_OK) == 0,
           "info: %s %g", path ? path : "(null)", mt);
  set_w(&m, 0);
  TU_CHECK(asg_ckpt_manager_restore_best(cm, m.p, &s) == ASG_OK && s == 2 && get_w(&m) == 2,
           "restore best: step %lld w %g", (long long)s, get_w(&m));
  TU_CHECK(asg_ckpt_manager_restore_latest(cm, m.p, &s) == ASG_OK && s == 5 && get_w(&m) == 5,
           "restore latest");
  asg_ckpt_manager_free(cm);

  /* a new manager reads the manifest; a stray file of an interrupted save
   * goes at the next save, other files stay */
  tu_write_file(tu_path(dir, "ckpt-00000099.safetensors"), "junk", 4);
  tu_write_file(tu_path(dir, "notes.txt"), "keep", 4);
  cm = asg_ckpt_manager_open(dir, &o);
  TU_CHECK(cm && steps_are(cm, want1, 3), "reopened: %s", asg_last_error());
  if (!cm) return;
  set_w(&m, 6);
  TU_CHECK(asg_ckpt_manager_save(cm, m.p, 6, 0.1) == ASG_OK, "save 6");
  const int64_t want2[2] = {5, 6};
  TU_CHECK(steps_are(cm, want2, 2), "kept 5, 6");
  TU_CHECK(count_files(dir, "ckpt-") == 2 && access(tu_path(dir, "notes.txt"), R_OK) == 0,
           "old best and the stray file removed, notes kept");
  /* the same step again replaces it; NaN is no best */
  set_w(&m, 7);
  TU_CHECK(asg_ckpt_manager_save(cm, m.p, 6, NAN) == ASG_OK, "resave 6");
  TU_CHECK(steps_are(cm, want2, 2) && asg_ckpt_manager_best(cm) == 0,
           "replaced: 5 (0.6) is now the only metric");
  set_w(&m, 0);
  TU_CHECK(asg_ckpt_manager_restore_latest(cm, m.p, &s) == ASG_OK && s == 6 && get_w(&m) == 7,
           "replaced step restored");
  asg_ckpt_manager_free(cm);

  /* a failed save (non-finite state refused) changes nothing */
  asg_save_options so = {.require_finite = true};
  asg_ckpt_manager_options of = {.keep_last = 1, .save = &so};
  cm = asg_ckpt_manager_open(dir, &of);
  set_w(&m, NAN);
  TU_CHECK(cm && asg_ckpt_manager_save(cm, m.p, 8, 0.0) == ASG_ERR_INVALID, "NaN state refused: %s",
           asg_last_error());
  TU_CHECK(cm && steps_are(cm, want2, 2) && count_files(dir, "ckpt-") == 2,
           "the list and files are unchanged");
  asg_ckpt_manager_free(cm);
  cm = asg_ckpt_manager_open(dir, NULL);
  TU_CHECK(cm && steps_are(cm, want2, 2), "the manifest is unchanged");
  asg_ckpt_manager_free(cm);

  /* MAX mode, keep everything, its own prefix, no metric at all */
  asg_ckpt_manager_options o2 = {.keep_last = -1, .mode = ASG_MODE_MAX, .prefix = "model"};
  cm = asg_ckpt_manager_open(dir, &o2);
  TU_CHECK(cm && asg_ckpt_manager_count(cm) == 0, "second prefix");
  for (int i = 0; i < 4 && cm; i++)
    asg_ckpt_manager_save(cm, m.p, 100 * i, NAN);
  TU_CHECK(cm && asg_ckpt_manager_count(cm) == 4 && count_files(dir, "model-") == 4 &&
               count_files(dir, "ckpt-") == 2,
           "keep_last < 0 keeps all; prefixes apart");
  TU_CHECK(cm && asg_ckpt_manager_restore_best(cm, m.p, &s) == ASG_ERR_NOT_FOUND,
           "no metric: no best: %s", asg_last_error());
  asg_ckpt_manager_free(cm);

  /* malformed manifests and bad arguments */
  const char *bad[] = {"{",
                       "{\"format\": \"x\", \"checkpoints\": []}",
                       "{\"format\": \"asg-checkpoints\"}",
                       "{\"format\": \"asg-checkpoints\", \"checkpoints\": [{\"step\": -1}]}",
                       "{\"format\": \"asg-checkpoints\", \"checkpoints\": [{\"step\": 1}, "
                       "{\"step\": 1}]}",
                       "{\"format\": \"asg-checkpoints\", \"checkpoints\": [{\"step\": 1, "
                       "\"metric\": \"abc\"}]}"};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    tu_write_file(tu_path(dir, "m3.json"), bad[k], strlen(bad[k]));
    asg_ckpt_manager_options o3 = {.prefix = "m3"};
    asg_ckpt_manager *x = asg_ckpt_manager_open(dir, &o3);
    TU_CHECK(!x && tu_contains(asg_last_error(), "manifest"), "bad manifest %zu: %s", k,
             asg_last_error());
    asg_ckpt_manager_free(x);
  }
  asg_ckpt_manager_options o4 = {.prefix = "../up"};
  TU_CHECK(!asg_ckpt_manager_open(dir, &o4), "prefix with '/'");
  tu_write_file(tu_path(root, "file"), "x", 1);
  TU_CHECK(!asg_ckpt_manager_open(tu_path(root, "file"), NULL), "a file is no directory: %s",
           asg_last_error());
  asg_program_free(m.p);
  asg_graph_free(m.g);
  tu_tmpdir_remove(dir);
  tu_tmpdir_remove(root);
}

int main(void) {
  test_regression();
  test_ema();
  test_early_stopping();
  test_manager();
  return tu_finish();
}
