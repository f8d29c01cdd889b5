/* Silent wrong results inside kernels, on one backend:
 *  - indices out of range (gather/embedding, scatter_add, one_hot,
 *    cross-entropy labels) fail the run with a message naming the op, the
 *    value and the range, and the next good run works again (CUDA graph
 *    replays included); with asg_compile_opts.unchecked_indices they give
 *    the documented zeros / left-out rows instead;
 *  - cross-entropy over rows that are all ignored is NaN (as asg_nll_loss
 *    and PyTorch) with a zero gradient;
 *  - log_softmax and softmax cross-entropy keep their precision for large
 *    logits ((x - max) - log sum, not x - (max + log sum)).
 * Expected values are computed here in float64.
 *
 * Usage: test_misuse_kernels [BACKEND] (default cpu; 77 = skipped when the
 * backend has no device). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *g_backend = "cpu";

static asg_program *compile(asg_graph *g, int n, asg_tensor **outs, bool unchecked) {
  asg_compile_opts o = {0};
  o.backend = g_backend;
  o.unchecked_indices = unchecked;
  asg_program *p = asg_compile(g, n, outs, &o);
  TU_CHECK(p != NULL, "compile on %s: %s", g_backend, asg_last_error());
  return p;
}

/* The run failed with ASG_ERR_INVALID and a message holding every string. */
static void expect_fail(asg_program *p, const char *what, const char *s1, const char *s2,
                        const char *s3) {
  asg_clear_error();
  asg_status st = asg_program_run(p);
  const char *e = asg_last_error();
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(e, s1) && tu_contains(e, s2) && tu_contains(e, s3),
           "%s on %s: status %d, message '%s' (want '%s', '%s', '%s')", what, g_backend, (int)st, e,
           s1, s2, s3);
}

static void expect_ok(asg_program *p, const char *what) {
  asg_status st = asg_program_run(p);
  TU_CHECK(st == ASG_OK, "%s on %s: %s", what, g_backend, asg_last_error());
}

/* ---- out-of-range indices: errors ---- */

static void test_embedding(asg_dtype it) {
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_input(g, "w", ASG_F32, ASG_SHAPE(5, 3));
  asg_tensor *idx = asg_input(g, "idx", it, ASG_SHAPE(4));
  asg_scope_push(g, "emb");
  asg_tensor *y = asg_embedding(w, idx);
  asg_scope_pop(g);
  asg_program *p = compile(g, 1, &y, false);
  double wv[15], good[4] = {0, 4, 2, 1}, bad[4] = {0, 5, 2, 1}, neg[4] = {3, 3, -1, 0}, got[12];
  for (int i = 0; i < 15; i++)
    wv[i] = i + 1;
  if (p && !tu_feed(p, "w", ASG_F32, wv, 15) && !tu_feed(p, "idx", it, good, 4)) {
    for (int r = 0; r < 3; r++) /* the second run is captured as a CUDA graph, the third replays */
      expect_ok(p, "embedding, good indices");
    TU_CHECK(tu_fetch(p, y, got) == 0 && got[3] == 13 && got[11] == 6, "embedding rows");
    tu_feed(p, "idx", it, bad, 4);
    expect_fail(p, "embedding index 5 of 5 rows", "emb/gather", "index 5", "[0, 5)");
    tu_feed(p, "idx", it, good, 4);
    expect_ok(p, "embedding, good indices after a failed run");
    tu_feed(p, "idx", it, neg, 4);
    expect_fail(p, "embedding index -1", "emb/gather", "index -1", "[0, 5)");
    expect_fail(p, "embedding index -1, again", "emb/gather", "index -1", "unchecked_indices");
  }
  asg_program_free(p);
  asg_graph_free(g);
}

static void test_gather_scatter_one_hot(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(4, 2));
  asg_tensor *i1 = asg_input(g, "i1", ASG_I64, ASG_SHAPE(3));
  asg_tensor *src = asg_input(g, "src", ASG_F64, ASG_SHAPE(3, 2));
  asg_tensor *outs[3] = {asg_gather(x, i1, 1), asg_scatter_add(x, i1, src, 0),
                         asg_one_hot(i1, 2, ASG_F32)};
  double xv[8] = {0}, sv[6] = {0}, ok[3] = {0, 1, 1};
  const char *ops[3] = {"gather", "scatter_add", "one_hot"};
  for (int k = 0; k < 3; k++) {
    asg_program *p = compile(g, 1, &outs[k], false);
    if (!p) continue;
    tu_feed(p, "x", ASG_F64, xv, 8);
    tu_feed(p, "i1", ASG_I64, ok, 3);
    if (k == 1) tu_feed(p, "src", ASG_F64, sv, 6);
    expect_ok(p, ops[k]);
    double bad[3] = {0, 1, k == 1 ? 4 : 2}; /* scatter_add: rows [0, 4); others: [0, 2) */
    tu_feed(p, "i1", ASG_I64, bad, 3);
    char val[32], range[32];
    snprintf(val, sizeof val, "index %d", (int)bad[2]);
    snprintf(range, sizeof range, "[0, %d)", k == 1 ? 4 : 2);
    expect_fail(p, ops[k], ops[k], val, range);
    asg_program_free(p);
  }
  asg_graph_free(g);
}

/* The fused mean and the NONE / SUM reductions (log_softmax + one_hot). */
static void test_ce_labels(asg_dtype lt) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 3));
  asg_tensor *lab = asg_input(g, "lab", lt, ASG_SHAPE(4));
  asg_scope_push(g, "head");
  asg_tensor *losses[3] = {asg_cross_entropy_loss(x, lab, 0.1, -100, ASG_REDUCE_MEAN),
                           asg_cross_entropy_loss(x, lab, 0, -100, ASG_REDUCE_NONE),
                           asg_nll_loss(asg_log_softmax(x, -1), lab, -100, ASG_REDUCE_SUM)};
  asg_scope_pop(g);
  const char *names[3] = {"cross_entropy mean", "cross_entropy none", "nll sum"};
  const char *ops[3] = {"head/softmax_cross_entropy", "head/one_hot", "head/one_hot"};
  double xv[12], good[4] = {0, 2, -100, 1}, bad[4] = {0, 3, -100, 1}, neg[4] = {-7, 0, 0, 0};
  tu_rand(5, xv, 12, -2, 2);
  for (int k = 0; k < 3; k++) {
    asg_program *p = compile(g, 1, &losses[k], false);
    if (!p) continue;
    tu_feed(p, "x", ASG_F32, xv, 12);
    tu_feed(p, "lab", lt, good, 4); /* ignore_index -100 is not an error */
    expect_ok(p, names[k]);
    tu_feed(p, "lab", lt, bad, 4);
    expect_fail(p, names[k], ops[k], k ? "index 3" : "label 3", "[0, 3)");
    tu_feed(p, "lab", lt, neg, 4);
    expect_fail(p, names[k], ops[k], k ? "index -7" : "label -7", "[0, 3)");
    tu_feed(p, "lab", lt, good, 4);
    expect_ok(p, names[k]);
    asg_program_free(p);
  }
  asg_graph_free(g);
}

/* A training step: the error comes from the run, the step after it works. */
static void test_train_step(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(8, 4));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(8));
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(4, 3), asg_init_constant(0.1));
  asg_tensor *loss = asg_softmax_cross_entropy(asg_matmul(x, w), y, 0, -100);
  asg_compile_opts o = {0};
  o.backend = g_backend;
  asg_program *p = asg_compile_train(g, loss, asg_sgd(0.1, 0.9), 0, NULL, &o);
  TU_CHECK(p != NULL, "compile_train on %s: %s", g_backend, asg_last_error());
  double xv[32], good[8] = {0, 1, 2, 0, 1, 2, 0, 1}, bad[8] = {0, 1, 2, 0, 1, 2, 0, 30};
  tu_rand(9, xv, 32, -1, 1);
  if (p && !tu_feed(p, "x", ASG_F32, xv, 32)) {
    tu_feed(p, "y", ASG_I32, good, 8);
    for (int r = 0; r < 3; r++)
      expect_ok(p, "train step");
    tu_feed(p, "y", ASG_I32, bad, 8);
    expect_fail(p, "train step, label 30", "softmax_cross_entropy", "label 30", "[0, 3)");
    tu_feed(p, "y", ASG_I32, good, 8);
    expect_ok(p, "train step after the failed one");
    double l = asg_program_scalar(p, loss);
    TU_CHECK(isfinite(l) && l > 0 && l < 2, "loss after recovery %g", l);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---- unchecked_indices: the documented zeros / left-out rows ---- */

static void test_unchecked(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_input(g, "w", ASG_F64, ASG_SHAPE(3, 2));
  asg_tensor *idx = asg_input(g, "idx", ASG_I32, ASG_SHAPE(3));
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(3, 3));
  asg_tensor *outs[3] = {asg_embedding(w, idx), asg_one_hot(idx, 3, ASG_F64),
                         asg_softmax_cross_entropy(x, idx, 0, -100)};
  asg_program *p = compile(g, 3, outs, true);
  double wv[6] = {1, 2, 3, 4, 5, 6}, iv[3] = {2, 7, -1}, xv[9] = {1, 2, 3, 0, 0, 0, 5, 1, 1};
  double e[6], oh[9], ce = NAN;
  if (p && !tu_feed(p, "w", ASG_F64, wv, 6) && !tu_feed(p, "idx", ASG_I32, iv, 3) &&
      !tu_feed(p, "x", ASG_F64, xv, 9)) {
    expect_ok(p, "unchecked run with bad indices");
    TU_CHECK(tu_fetch(p, outs[0], e) == 0 && e[0] == 5 && e[1] == 6 && e[2] == 0 && e[3] == 0 &&
                 e[4] == 0 && e[5] == 0,
             "unchecked embedding: zero rows");
    TU_CHECK(tu_fetch(p, outs[1], oh) == 0 && oh[2] == 1 && oh[0] + oh[1] == 0 &&
                 oh[3] + oh[4] + oh[5] + oh[6] + oh[7] + oh[8] == 0,
             "unchecked one_hot: all-zero rows");
    /* only row 0 (label 2) counts: lse(1, 2, 3) - 3 */
    double want = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3;
    TU_CHECK(tu_fetch(p, outs[2], &ce) == 0 && fabs(ce - want) < 1e-12,
             "unchecked cross-entropy leaves rows out: %.15g want %.15g", ce, want);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---- every label ignored: NaN, as asg_nll_loss and PyTorch ---- */

static void test_all_ignored(double smoothing) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(3, 4));
  asg_tensor *lab = asg_input(g, "lab", ASG_I64, ASG_SHAPE(3));
  asg_tensor *loss[3] = {asg_softmax_cross_entropy(x, lab, smoothing, -100),
                         asg_cross_entropy_loss(x, lab, smoothing, -100, ASG_REDUCE_MEAN),
                         asg_nll_loss(asg_log_softmax(x, -1), lab, -100, ASG_REDUCE_MEAN)};
  const char *names[3] = {"softmax_cross_entropy", "cross_entropy_loss", "nll_loss"};
  double xv[12], all[3] = {-100, -100, -100}, gv[12];
  tu_rand(3, xv, 12, -2, 2);
  for (int k = 0; k < 3; k++) {
    asg_tensor *dx = NULL;
    if (asg_grad(loss[k], 1, &x, &dx) != ASG_OK) {
      TU_CHECK(0, "asg_grad %s: %s", names[k], asg_last_error());
      continue;
    }
    asg_tensor *outs[2] = {loss[k], dx};
    asg_program *p = compile(g, 2, outs, false);
    if (!p || tu_feed(p, "x", ASG_F32, xv, 12) || tu_feed(p, "lab", ASG_I64, all, 3)) {
      asg_program_free(p);
      continue;
    }
    expect_ok(p, names[k]);
    double l = asg_program_scalar(p, loss[k]);
    TU_CHECK(isnan(l), "%s smoothing %g, every label ignored, on %s: %g, want NaN", names[k],
             smoothing, g_backend, l);
    int zero = tu_fetch(p, dx, gv) == 0;
    for (int i = 0; i < 12; i++)
      zero = zero && gv[i] == 0;
    TU_CHECK(zero, "%s smoothing %g, every label ignored, on %s: gradient not zero (%g ...)",
             names[k], smoothing, g_backend, gv[0]);
    asg_program_free(p);
  }
  asg_graph_free(g);
}

/* ---- large logits ---- */

/* log_softmax of row x (n values) in float64: (x - m) - log(sum exp(x - m)). */
static void ref_log_softmax(const double *x, int n, double *y) {
  double m = x[0], s = 0;
  for (int j = 1; j < n; j++)
    m = x[j] > m ? x[j] : m;
  for (int j = 0; j < n; j++)
    s += exp(x[j] - m);
  for (int j = 0; j < n; j++)
    y[j] = (x[j] - m) - log(s);
}

/* Rows of logits near 1e12 (f64: steps of 0.5 are exact there) and of
 * 3e37 (f32); labels, smoothing; log_softmax, the CE loss and its
 * gradient against float64 references. */
static void test_large_logits(asg_dtype dt) {
  const bool f64 = dt == ASG_F64;
  const int R = 2, C = 4;
  double xv[8], lp[8];
  for (int j = 0; j < C; j++) {
    xv[j] = f64 ? 1e12 + 0.5 * j : 3e37; /* f32: equal logits, p = 1/4 */
    xv[C + j] = f64 ? -1e12 - j : -3e37;
  }
  double lab[2] = {1, 3}, ls = 0.1;
  for (int r = 0; r < R; r++)
    ref_log_softmax(xv + r * C, C, lp + r * C);
  double want = 0, dwant[8];
  for (int r = 0; r < R; r++) {
    double mean = 0;
    for (int j = 0; j < C; j++)
      mean += lp[r * C + j] / C;
    want += (-(1 - ls) * lp[r * C + (int)lab[r]] - ls * mean) / R;
    for (int j = 0; j < C; j++)
      dwant[r * C + j] = (exp(lp[r * C + j]) - ls / C - (j == (int)lab[r] ? 1 - ls : 0)) / R;
  }
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(2, 4));
  asg_tensor *l = asg_input(g, "lab", ASG_I32, ASG_SHAPE(2));
  asg_tensor *y = asg_log_softmax(x, -1), *loss = asg_softmax_cross_entropy(x, l, ls, -100);
  asg_tensor *rows = asg_cross_entropy_loss(x, l, 0, -100, ASG_REDUCE_NONE), *dx = NULL;
  if (asg_grad(loss, 1, &x, &dx) != ASG_OK) {
    TU_CHECK(0, "asg_grad: %s", asg_last_error());
    asg_graph_free(g);
    return;
  }
  asg_tensor *outs[4] = {y, loss, dx, rows};
  asg_program *p = compile(g, 4, outs, false);
  double got[8], gl = NAN, gd[8], gr[2];
  const double tol = f64 ? 1e-13 : 2e-6;
  if (p && !tu_feed(p, "x", dt, xv, 8) && !tu_feed(p, "lab", ASG_I32, lab, 2)) {
    expect_ok(p, "large logits");
    char what[64];
    snprintf(what, sizeof what, "%s log_softmax of large logits on %s", asg_dtype_name(dt),
             g_backend);
    TU_CHECK(tu_fetch(p, y, got) == 0 && tu_close(what, got, lp, 8, tol, tol), "%s", what);
    gl = asg_program_scalar(p, loss);
    TU_CHECK(fabs(gl - want) <= tol * (1 + fabs(want)),
             "%s softmax CE of large logits on %s: %.15g want %.15g", asg_dtype_name(dt), g_backend,
             gl, want);
    snprintf(what, sizeof what, "%s CE gradient of large logits on %s", asg_dtype_name(dt),
             g_backend);
    TU_CHECK(tu_fetch(p, dx, gd) == 0 && tu_close(what, gd, dwant, 8, tol, tol), "%s", what);
    double rw[2] = {-lp[(int)lab[0]], -lp[C + (int)lab[1]]};
    snprintf(what, sizeof what, "%s CE rows (NONE) of large logits on %s", asg_dtype_name(dt),
             g_backend);
    TU_CHECK(tu_fetch(p, rows, gr) == 0 && tu_close(what, gr, rw, 2, tol, tol), "%s", what);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

int main(int argc, char **argv) {
  if (argc > 1) g_backend = argv[1];
  if (!asg_backend_available(g_backend)) {
    printf("SKIPPED: backend '%s' not available: %s\n", g_backend, asg_last_error());
    return TU_SKIP;
  }
  test_embedding(ASG_I32);
  test_embedding(ASG_I64);
  test_gather_scatter_one_hot();
  test_ce_labels(ASG_I32);
  test_ce_labels(ASG_I64);
  test_train_step();
  test_unchecked();
  test_all_ignored(0);
  test_all_ignored(0.1);
  test_large_logits(ASG_F64);
  test_large_logits(ASG_F32);
  return tu_finish();
}
