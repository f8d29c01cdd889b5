/* Anomaly mode (asg_compile_opts.check_finite, ASG_CHECK_FINITE): a NaN
 * injected into an MLP train step (log of a negative input fed at run 3) is
 * reported at the step that made it, naming its scope/op, the element, the
 * value and the run; with the mode off the same run returns ASG_OK as
 * before. Usage: test_anomaly [cpu|vulkan|cuda] (default cpu). */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";

typedef struct mlp {
  asg_graph *g;
  asg_tensor *x, *target, *loss;
} mlp;

/* loss = mse(fc2(relu(fc1(log(x)))), target), log in scope "feat". */
static mlp build(void) {
  mlp m;
  m.g = asg_graph_new();
  m.x = asg_input(m.g, "x", ASG_F32, ASG_SHAPE(4, 3));
  m.target = asg_input(m.g, "target", ASG_F32, ASG_SHAPE(4, 2));
  asg_scope_push(m.g, "feat");
  asg_tensor *f = asg_log(m.x);
  asg_scope_pop(m.g);
  asg_tensor *h = asg_relu(asg_layer_apply(asg_nn_linear(m.g, "fc1", 3, 5), f));
  asg_tensor *y = asg_layer_apply(asg_nn_linear(m.g, "fc2", 5, 2), h);
  m.loss = asg_mse_loss(y, m.target, ASG_REDUCE_MEAN);
  return m;
}

static asg_program *compile(mlp *m, int mode) {
  asg_compile_opts o = {0};
  o.backend = backend;
  o.num_threads = 1;
  o.check_finite = mode;
  return asg_compile_train(m->g, m->loss, asg_sgd(0.1, 0.0), 0, NULL, &o);
}

/* x for run r (1-based): positive, except run 3 where x[5] = bad. */
static void feed_run(asg_program *p, int r, double bad) {
  double x[12], t[8];
  tu_rand(100 + (unsigned)r, x, 12, 0.5, 2.0);
  tu_rand(200 + (unsigned)r, t, 8, -1.0, 1.0);
  if (r == 3) x[5] = bad;
  tu_feed(p, "x", ASG_F32, x, 12);
  tu_feed(p, "target", ASG_F32, t, 8);
}

/* Runs 1..3; returns the status of run 3 (runs 1 and 2 must pass). */
static asg_status three_runs(asg_program *p, double bad) {
  for (int r = 1; r <= 2; r++) {
    feed_run(p, r, 0);
    asg_status st = asg_program_run(p);
    TU_CHECK(st == ASG_OK, "run %d: %s", r, asg_last_error());
  }
  feed_run(p, 3, bad);
  return asg_program_run(p);
}

/* Raw copies of every variable of p (save), written back (restore). */
typedef struct saved {
  int n;
  void *data[16];
  size_t bytes[16];
} saved;

static void save_vars(asg_program *p, saved *s) {
  s->n = asg_program_variable_count(p);
  if (s->n > 16) s->n = 16;
  for (int i = 0; i < s->n; i++) {
    asg_dtype dt;
    asg_shape sh;
    const char *name;
    asg_program_variable_info(p, i, &name, &dt, &sh);
    s->bytes[i] = (size_t)asg_shape_numel(sh) * asg_dtype_size(dt);
    s->data[i] = malloc(s->bytes[i] ? s->bytes[i] : 1);
    if (s->data[i]) asg_program_get_variable(p, name, s->data[i], s->bytes[i]);
  }
}

static void restore_vars(asg_program *p, saved *s) {
  for (int i = 0; i < s->n; i++) {
    const char *name;
    asg_program_variable_info(p, i, &name, NULL, NULL);
    if (s->data[i]) asg_program_set_variable(p, name, s->data[i], s->bytes[i]);
    free(s->data[i]);
  }
}

static void test_step_mode(void) {
  mlp m = build();
  asg_program *p = compile(&m, ASG_CHECK_FINITE_STEP);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(m.g);
    return;
  }
  double w_before[15], w_after[15];
  saved init;
  save_vars(p, &init);
  asg_status st = three_runs(p, -1.0); /* log(-1) = nan at element 5 */
  const char *e = asg_last_error();
  TU_CHECK(st == ASG_ERR_NUMERIC, "run 3: status %d (%s)", st, e);
  TU_CHECK(tu_contains(e, "feat/log"), "names the node: %s", e);
  TU_CHECK(tu_contains(e, "run 3"), "names the run: %s", e);
  TU_CHECK(tu_contains(e, "element 5 = nan") || tu_contains(e, "element 5 = -nan"),
           "names the element and value: %s", e);
  TU_CHECK(tu_contains(e, "[4, 3]") || tu_contains(e, "[4,3]"), "names the shape: %s", e);
  TU_CHECK(tu_contains(e, "from finite inputs"), "made, not propagated: %s", e);
  TU_CHECK(asg_program_run_count(p) == 2, "failed run not counted: %llu",
           (unsigned long long)asg_program_run_count(p));
  if (strcmp(backend, "cpu") == 0) {
    /* the CPU stopped at the log: no update ran (documented) */
    tu_get_var(p, "fc1.weight", w_before);
    feed_run(p, 3, -1.0);
    TU_CHECK(asg_program_run(p) == ASG_ERR_NUMERIC, "again: %s", asg_last_error());
    tu_get_var(p, "fc1.weight", w_after);
    TU_CHECK(memcmp(w_before, w_after, sizeof w_before) == 0, "variables untouched on cpu");
  }
  /* a NaN fed in x: the log propagates it from its input */
  feed_run(p, 3, NAN);
  st = asg_program_run(p);
  e = asg_last_error();
  TU_CHECK(st == ASG_ERR_NUMERIC, "fed nan: status %d (%s)", st, e);
  TU_CHECK(tu_contains(e, "feat/log") && tu_contains(e, "input 0") &&
               tu_contains(e, "a fed input") && tu_contains(e, "propagated"),
           "names the input that already held it: %s", e);
  /* finite data again: the program runs on (from the initial variables:
   * the GPUs finished the faulting runs, updates included) */
  restore_vars(p, &init);
  feed_run(p, 4, 0);
  TU_CHECK(asg_program_run(p) == ASG_OK, "finite run after a fault: %s", asg_last_error());
  TU_CHECK(asg_program_run_count(p) == 3, "count %llu",
           (unsigned long long)asg_program_run_count(p));
  asg_program_free(p);
  asg_graph_free(m.g);
}

static void test_off_and_run_mode(void) {
  mlp m = build();
  asg_program *p = compile(&m, ASG_CHECK_FINITE_OFF);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    asg_status st = three_runs(p, -1.0);
    TU_CHECK(st == ASG_OK, "off: run 3 is ASG_OK as before (%s)", asg_last_error());
    /* relu maps nan to 0: the loss looks fine, the weights are ruined */
    double w[15];
    TU_CHECK(tu_get_var(p, "fc1.weight", w) == 15, "fc1.weight");
    bool any_nan = false;
    for (int i = 0; i < 15; i++)
      any_nan = any_nan || isnan(w[i]);
    TU_CHECK(any_nan, "off: nan reached fc1/weight silently");
    asg_program_free(p);
  }
  p = compile(&m, ASG_CHECK_FINITE_RUN);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    asg_status st = three_runs(p, -1.0);
    const char *e = asg_last_error();
    TU_CHECK(st == ASG_ERR_NUMERIC, "run mode: status %d (%s)", st, e);
    TU_CHECK(tu_contains(e, "after run 3") && tu_contains(e, "output") &&
                 tu_contains(e, "ASG_CHECK_FINITE=2"),
             "run mode names the output and the run: %s", e);
    asg_program_free(p);
  }
  asg_compile_opts o = {0};
  o.backend = backend;
  o.check_finite = 7;
  p = asg_compile(m.g, 1, &m.loss, &o);
  TU_CHECK(!p && tu_contains(asg_last_error(), "check_finite is 7"), "bad mode refused: %s",
           asg_last_error());
  asg_program_free(p);
  asg_graph_free(m.g);
}

/* ASG_CHECK_FINITE=2 turns the step mode on for a program compiled without it. */
static void test_env(void) {
  setenv("ASG_CHECK_FINITE", "2", 1);
  mlp m = build();
  asg_program *p = compile(&m, ASG_CHECK_FINITE_OFF);
  unsetenv("ASG_CHECK_FINITE");
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    asg_status st = three_runs(p, -1.0);
    TU_CHECK(st == ASG_ERR_NUMERIC && tu_contains(asg_last_error(), "feat/log"),
             "env: status %d (%s)", st, asg_last_error());
    asg_program_free(p);
  }
  asg_graph_free(m.g);
}

/* sqrt(-1) inside a layer scope, in the forward of an eval program: the
 * output [2, 2] made by "blk/inner/sqrt" at element 3 (a product reads it,
 * so that on CUDA the sqrt ends its fused elementwise chain). */
static void test_scope(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 2));
  asg_scope_push(g, "blk");
  asg_scope_push(g, "inner");
  asg_tensor *s = asg_sqrt(asg_add_scalar(x, -1.0));
  asg_scope_pop(g);
  asg_scope_pop(g);
  const double wv[4] = {1, 2, 3, 4};
  asg_tensor *y = asg_matmul(s, tu_constant(g, ASG_F32, ASG_SHAPE(2, 2), wv));
  asg_compile_opts o = {0};
  o.backend = backend;
  o.check_finite = ASG_CHECK_FINITE_STEP;
  asg_program *p = asg_compile(g, 1, &y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    const double v[4] = {1, 2, 5, 0};
    tu_feed(p, "x", ASG_F32, v, 4);
    asg_status st = asg_program_run(p);
    const char *e = asg_last_error();
    TU_CHECK(st == ASG_ERR_NUMERIC && tu_contains(e, "blk/inner/sqrt") &&
                 tu_contains(e, "element 3") && tu_contains(e, "run 1"),
             "sqrt: status %d (%s)", st, e);
    asg_program_free(p);
  }
  asg_graph_free(g);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("backend %s not available: skipped\n", backend);
    return TU_SKIP;
  }
  unsetenv("ASG_CHECK_FINITE");
  test_step_mode();
  test_off_and_run_mode();
  test_env();
  test_scope();
  return tu_finish();
}
