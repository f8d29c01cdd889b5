/* Misuse of programs and optimizers that used to give silent wrong results:
 * runs with unfed inputs, untyped feeds, invalid learning rates and
 * hyper-parameters, training without trainable variables, negative thread
 * counts, parameter-group prefixes that match nothing, non-finite gradients
 * (the optional guard), the loss-scale floor, and allocation failures while
 * compiling. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- a small model: enc (linear 3->4), bn (batch norm), dec (linear 4->1) ---- */
enum { NB = 4, DI = 3, DH = 4 };

typedef struct net {
  asg_graph *g;
  asg_tensor *loss;
} net;

static net build_net(void) {
  net n = {asg_graph_new(), NULL};
  asg_tensor *x = asg_input(n.g, "x", ASG_F32, ASG_SHAPE(NB, DI));
  asg_tensor *y = asg_input(n.g, "y", ASG_F32, ASG_SHAPE(NB, 1));
  asg_layer *enc = asg_nn_linear(n.g, "enc", DI, DH);
  asg_layer *bn = asg_nn_batchnorm(n.g, "bn", DH, 0, 0);
  asg_layer *dec = asg_nn_linear(n.g, "dec", DH, 1);
  asg_tensor *h = asg_layer_apply(bn, asg_relu(asg_layer_apply(enc, x)));
  n.loss = asg_mse_loss(asg_layer_apply(dec, h), y, ASG_REDUCE_MEAN);
  return n;
}

/* Feeds x and y; x[bad] is NaN when bad >= 0. */
static void feed_net(asg_program *p, int bad) {
  float x[NB * DI], y[NB];
  for (int i = 0; i < NB * DI; i++)
    x[i] = (float)(0.25 * ((i * 7) % 11) - 1.0);
  for (int i = 0; i < NB; i++)
    y[i] = (float)(0.5 * i - 0.7);
  if (bad >= 0) x[bad] = NAN;
  asg_program_feed(p, "x", x, sizeof x);
  asg_program_feed(p, "y", y, sizeof y);
}

/* Every variable of p, concatenated as raw bytes (malloc'd; *n bytes). */
static unsigned char *snapshot(asg_program *p, size_t *n) {
  size_t total = 0;
  int nv = asg_program_variable_count(p);
  for (int i = 0; i < nv; i++) {
    asg_dtype dt;
    asg_shape s;
    asg_program_variable_info(p, i, NULL, &dt, &s);
    total += (size_t)asg_shape_numel(s) * asg_dtype_size(dt);
  }
  unsigned char *buf = malloc(total + 1), *at = buf;
  for (int i = 0; buf && i < nv; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape s;
    asg_program_variable_info(p, i, &name, &dt, &s);
    size_t b = (size_t)asg_shape_numel(s) * asg_dtype_size(dt);
    asg_program_get_variable(p, name, at, b);
    at += b;
  }
  *n = total;
  return buf;
}

/* Variables that differ between p's state now and snap (skip counters and
 * loss-scale state excluded); names the first in *first. */
static int changed_vars(asg_program *p, const unsigned char *snap, const char **first) {
  int nv = asg_program_variable_count(p), changed = 0;
  size_t at = 0;
  *first = "";
  for (int i = 0; i < nv; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape s;
    asg_program_variable_info(p, i, &name, &dt, &s);
    size_t b = (size_t)asg_shape_numel(s) * asg_dtype_size(dt);
    unsigned char *now = malloc(b + 1);
    asg_program_get_variable(p, name, now, b);
    /* the guard's counters and the loss scale's state are meant to change */
    bool counter = strcmp(name, "optim/skipped_steps") == 0 ||
                   strcmp(name, "optim/skip_streak") == 0 ||
                   strcmp(name, "optim/loss_scale") == 0 || strcmp(name, "optim/good_steps") == 0;
    if (!counter && memcmp(now, snap + at, b) != 0 && changed++ == 0) *first = name;
    free(now);
    at += b;
  }
  return changed;
}

static float get_f(asg_program *p, const char *name) {
  float v = NAN;
  asg_program_get_variable(p, name, &v, sizeof v);
  return v;
}

/* 1. Runs with inputs never fed fail and name them. */
static void test_unfed_inputs(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_input(g, "alpha", ASG_F32, ASG_SHAPE(2));
  asg_tensor *b = asg_input(g, "beta", ASG_F32, ASG_SHAPE(2));
  asg_tensor *y = asg_add(a, b);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) goto out;
  float va[2] = {1, 2}, vb[2] = {10, 20}, out[2];
  asg_clear_error();
  asg_status st = asg_program_run(p);
  TU_CHECK(st != ASG_OK && tu_contains(asg_last_error(), "'alpha'") &&
               tu_contains(asg_last_error(), "'beta'") && tu_contains(asg_last_error(), "fed"),
           "run with no input fed: %d '%s'", (int)st, asg_last_error());
  TU_CHECK(asg_program_run_count(p) == 0, "a refused run is not counted");
  asg_program_feed(p, "alpha", va, sizeof va);
  asg_clear_error();
  st = asg_program_run(p);
  TU_CHECK(st != ASG_OK && tu_contains(asg_last_error(), "'beta'") &&
               !tu_contains(asg_last_error(), "'alpha'"),
           "run with beta unfed names only beta: '%s'", asg_last_error());
  /* a failed feed does not count as fed */
  asg_program_feed(p, "beta", vb, sizeof vb - 1);
  TU_CHECK(asg_program_run(p) != ASG_OK, "a feed of the wrong size does not count");
  asg_program_feed(p, "beta", vb, sizeof vb);
  TU_CHECK(asg_program_run(p) == ASG_OK, "run once every input is fed: %s", asg_last_error());
  TU_CHECK(asg_program_fetch(p, y, out, sizeof out) == ASG_OK && out[0] == 11 && out[1] == 22,
           "result %g %g", out[0], out[1]);
  /* inputs keep their value: running again without feeding is fine; so is feeding again */
  TU_CHECK(asg_program_run(p) == ASG_OK, "second run without feeding");
  va[0] = 5;
  asg_program_feed(p, "alpha", va, sizeof va);
  TU_CHECK(asg_program_run(p) == ASG_OK && asg_program_fetch(p, y, out, sizeof out) == ASG_OK &&
               out[0] == 15,
           "feeding again: %g", out[0]);
  asg_program_free(p);
  /* a training program: its data inputs must be fed before the first step */
  net n = build_net();
  asg_graph_free(g);
  g = n.g;
  p = asg_compile_train(g, n.loss, asg_sgd(0.1, 0), 0, NULL, NULL);
  TU_CHECK(p != NULL, "compile_train: %s", asg_last_error());
  if (p) {
    asg_clear_error();
    TU_CHECK(asg_program_run(p) != ASG_OK && tu_contains(asg_last_error(), "'x'") &&
                 asg_program_run_count(p) == 0,
             "train step with nothing fed: %s", asg_last_error());
  }
out:
  asg_program_free(p);
  asg_graph_free(g);
}

/* 2. The typed feed checks dtype and shape. */
static void test_feed_tensor(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3));
  asg_tensor *y = asg_mul_scalar(x, 2);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  float v[6] = {1, 2, 3, 4, 5, 6}, out[6];
  int32_t iv[6] = {0};
  asg_clear_error();
  asg_status st = asg_program_feed_tensor(p, "x", ASG_I32, ASG_SHAPE(2, 3), iv);
  TU_CHECK(st == ASG_ERR_DTYPE && tu_contains(asg_last_error(), "'x'") &&
               tu_contains(asg_last_error(), "i32") && tu_contains(asg_last_error(), "f32"),
           "wrong dtype: %d '%s'", (int)st, asg_last_error());
  asg_clear_error();
  st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(3, 2), v); /* same byte count */
  TU_CHECK(st == ASG_ERR_SHAPE && tu_contains(asg_last_error(), "[3,2]") &&
               tu_contains(asg_last_error(), "[2,3]"),
           "wrong shape with the right size: %d '%s'", (int)st, asg_last_error());
  asg_clear_error();
  st = asg_program_feed_tensor(p, "x", ASG_F32, ((asg_shape){-1, {0}}), v);
  TU_CHECK(st != ASG_OK && asg_last_error()[0], "bad rank: %s", asg_last_error());
  st = asg_program_feed_tensor(p, "x", ASG_F32, ((asg_shape){99, {0}}), v);
  TU_CHECK(st != ASG_OK, "rank 99");
  st = asg_program_feed_tensor(p, "nope", ASG_F32, ASG_SHAPE(2, 3), v);
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(asg_last_error(), "nope"), "unknown input: %s",
           asg_last_error());
  TU_CHECK(asg_program_feed_tensor(NULL, "x", ASG_F32, ASG_SHAPE(2, 3), v) != ASG_OK &&
               asg_program_feed_tensor(p, NULL, ASG_F32, ASG_SHAPE(2, 3), v) != ASG_OK &&
               asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(2, 3), NULL) != ASG_OK,
           "NULL arguments");
  TU_CHECK(asg_program_run(p) != ASG_OK, "refused typed feeds do not count as fed");
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(2, 3), v) == ASG_OK &&
               asg_program_run(p) == ASG_OK && asg_program_fetch(p, y, out, sizeof out) == ASG_OK &&
               out[0] == 2 && out[5] == 12,
           "good typed feed: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

/* 3. Learning rates and hyper-parameters. */
static void test_lr_and_hparams(void) {
  net n = build_net();
  asg_program *p = asg_compile_train(n.g, n.loss, asg_adam(0.01), 0, NULL, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    const double bad[] = {NAN, INFINITY, -INFINITY, -1e-3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      asg_clear_error();
      asg_status st = asg_optim_set_lr(p, bad[i]);
      TU_CHECK(st == ASG_ERR_INVALID && tu_contains(asg_last_error(), "lr") &&
                   asg_optim_get_lr(p) == (double)0.01f,
               "set_lr(%g) refused, lr kept: %d '%s' lr %g", bad[i], (int)st, asg_last_error(),
               asg_optim_get_lr(p));
    }
    TU_CHECK(asg_optim_set_lr(p, 0) == ASG_OK && asg_optim_get_lr(p) == 0, "lr 0 is allowed");
    /* schedules whose formula leaves the valid range */
    asg_lr_schedule neg = asg_lr_cosine(0.1, 100, -0.5); /* goes below 0 late */
    asg_clear_error();
    TU_CHECK(asg_optim_schedule(p, &neg, 90) != ASG_OK && tu_contains(asg_last_error(), "90"),
             "cosine to a negative min_lr: %s", asg_last_error());
    TU_CHECK(isnan(asg_lr_schedule_at(&neg, 90)), "schedule_at gives NaN for a negative lr");
    TU_CHECK(asg_optim_schedule(p, &neg, 0) == ASG_OK, "the same schedule is fine at step 0");
    asg_lr_schedule alt = asg_lr_exponential(0.1, -0.5);
    TU_CHECK(asg_optim_schedule(p, &alt, 1) != ASG_OK, "gamma < 0: negative lr at step 1");
    asg_lr_schedule huge = asg_lr_exponential(1, 1e10);
    TU_CHECK(asg_optim_schedule(p, &huge, 100) != ASG_OK, "exponential overflow to inf");
    asg_program_free(p);
  }
  asg_graph_free(n.g);

  struct {
    const char *what, *needle;
    asg_optim o;
  } cases[] = {
      {"SGD lr NaN", "lr", asg_sgd(NAN, 0)},
      {"SGD lr inf", "lr", asg_sgd(INFINITY, 0)},
      {"SGD lr < 0", "lr", asg_sgd(-0.1, 0)},
      {"SGD momentum < 0", "momentum", asg_sgd(0.1, -0.9)},
      {"SGD momentum NaN", "momentum", asg_sgd(0.1, NAN)},
      {"Adam beta1 = 1", "betas", asg_adam(0.1)},
      {"Adam beta2 < 0", "betas", asg_adam(0.1)},
      {"Adam eps = 0", "eps", asg_adam(0.1)},
      {"AdamW eps < 0", "eps", asg_adamw(0.1, 0.01)},
      {"AdamW weight decay NaN", "weight_decay", asg_adamw(0.1, NAN)},
      {"RMSprop eps NaN", "eps", asg_rmsprop(0.1)},
      {"RMSprop alpha > 1", "alpha", asg_rmsprop(0.1)},
      {"clip_norm inf", "clip", asg_sgd(0.1, 0)},
      {"dampening NaN", "dampening", asg_sgd(0.1, 0.9)},
      {"max_skips < 0", "max_skips", asg_sgd(0.1, 0)},
      {"loss_scale_min above loss_scale", "loss_scale_min", asg_adam(0.1)},
  };
  cases[5].o.beta1 = 1;
  cases[6].o.beta2 = -0.1;
  cases[7].o.eps = 0;
  cases[8].o.eps = -1e-8;
  cases[10].o.eps = NAN;
  cases[11].o.alpha = 1.5;
  cases[12].o.clip_norm = INFINITY;
  cases[13].o.dampening = NAN;
  cases[14].o.max_skips = -1;
  cases[15].o.loss_scale = 8;
  cases[15].o.loss_scale_min = 16;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    net m = build_net();
    asg_clear_error();
    asg_program *q = asg_compile_train(m.g, m.loss, cases[i].o, 0, NULL, NULL);
    TU_CHECK(q == NULL && tu_contains(asg_last_error(), cases[i].needle), "%s refused: '%s'",
             cases[i].what, asg_last_error());
    asg_program_free(q);
    asg_graph_free(m.g);
  }
  { /* group settings are checked too */
    net m = build_net();
    asg_param_group gr = {.prefix = "enc.", .lr_scale = NAN};
    asg_optim o = asg_sgd(0.1, 0);
    o.n_groups = 1, o.groups = &gr;
    asg_clear_error();
    asg_program *q = asg_compile_train(m.g, m.loss, o, 0, NULL, NULL);
    TU_CHECK(q == NULL && tu_contains(asg_last_error(), "lr_scale"), "group lr_scale NaN: %s",
             asg_last_error());
    asg_program_free(q);
    asg_graph_free(m.g);
  }
}

/* 4. and 5. No trainable variable; a negative thread count. */
static void test_compile_args(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(3));
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(3), asg_init_ones());
  asg_variable_set_trainable(w, false);
  asg_tensor *loss = asg_sum(asg_mul(x, w), ASG_ALL_AXES, false);
  asg_clear_error();
  asg_program *p = asg_compile_train(g, loss, asg_sgd(0.1, 0), 0, NULL, NULL);
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), "trainable"),
           "compile_train without trainable variables: '%s'", asg_last_error());
  asg_program_free(p);
  asg_tensor *ups[4];
  int n_ups = -1;
  asg_clear_error();
  TU_CHECK(asg_optim_build(loss, asg_sgd(0.1, 0), 0, NULL, ups, 4, &n_ups) != ASG_OK &&
               tu_contains(asg_last_error(), "trainable"),
           "optim_build without trainable variables: '%s'", asg_last_error());
  asg_compile_opts o = {.num_threads = -7};
  asg_clear_error();
  p = asg_compile(g, 1, &loss, &o);
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), "num_threads") &&
               tu_contains(asg_last_error(), "-7"),
           "num_threads -7: '%s'", asg_last_error());
  asg_program_free(p);
  o.num_threads = 0; /* the default */
  p = asg_compile(g, 1, &loss, &o);
  TU_CHECK(p != NULL, "num_threads 0: %s", asg_last_error());
  asg_program_free(p);
  o.num_threads = 1;
  p = asg_compile(g, 1, &loss, &o);
  TU_CHECK(p != NULL, "num_threads 1: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

/* 6. Parameter-group prefixes are variable names: "enc." selects layer enc;
 * "encoder/" (a scope-like prefix) matches nothing and is an error. */
static void test_group_prefix(void) {
  net n = build_net();
  asg_param_group gr = {.prefix = "encoder/", .lr_scale = 0, .weight_decay = 0};
  asg_optim o = asg_sgd(0.1, 0);
  o.n_groups = 1, o.groups = &gr;
  asg_clear_error();
  asg_program *p = asg_compile_train(n.g, n.loss, o, 0, NULL, NULL);
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), "'encoder/'") &&
               tu_contains(asg_last_error(), "matches no"),
           "prefix matching nothing: '%s'", asg_last_error());
  asg_program_free(p);
  asg_graph_free(n.g);
  /* the docs' example: "enc." freezes enc (lr scale 0) while dec trains */
  n = build_net();
  gr.prefix = "enc.";
  p = asg_compile_train(n.g, n.loss, o, 0, NULL, NULL);
  TU_CHECK(p != NULL, "prefix 'enc.': %s", asg_last_error());
  if (p) {
    float e0[DH * DI], e1[DH * DI], d0 = get_f(p, "dec.bias");
    asg_program_get_variable(p, "enc.weight", e0, sizeof e0);
    feed_net(p, -1);
    TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
    asg_program_get_variable(p, "enc.weight", e1, sizeof e1);
    TU_CHECK(memcmp(e0, e1, sizeof e0) == 0 && get_f(p, "dec.bias") != d0,
             "group 'enc.' (lr scale 0) kept enc.weight; dec.bias trained");
    asg_program_free(p);
  }
  asg_graph_free(n.g);
}

/* 7a. Without the guard a NaN in the inputs reaches the parameters (the
 * reason for the guard; also shows the NaN below reaches the gradients). */
static void test_nan_without_guard(void) {
  net n = build_net();
  asg_program *p = asg_compile_train(n.g, n.loss, asg_adam(0.01), 0, NULL, NULL);
  if (p) {
    float w[DH * DI], m[DH * DI];
    int nw = 0, nm = 0;
    feed_net(p, 5);
    asg_program_run(p);
    asg_program_get_variable(p, "enc.weight", w, sizeof w);
    asg_program_get_variable(p, "enc.weight.adam_m", m, sizeof m);
    for (int i = 0; i < DH * DI; i++)
      nw += isnan(w[i]), nm += isnan(m[i]);
    TU_CHECK(nw > 0 && nm > 0,
             "no guard: NaN input poisons enc.weight (%d NaN) and its moment (%d)", nw, nm);
  }
  asg_program_free(p);
  asg_graph_free(n.g);
}

/* 7b. The guard: non-finite steps change nothing, are counted, and
 * max_skips in a row fail the run. */
static void test_guard(asg_optim o, const char *what) {
  net n = build_net();
  o.skip_nonfinite = true;
  o.max_skips = 3;
  asg_program *p = asg_compile_train(n.g, n.loss, o, 0, NULL, NULL);
  TU_CHECK(p != NULL, "%s: compile: %s", what, asg_last_error());
  if (!p) {
    asg_graph_free(n.g);
    return;
  }
  asg_optim_stats s;
  feed_net(p, -1);
  TU_CHECK(asg_program_run(p) == ASG_OK, "%s: finite step", what);
  TU_CHECK(asg_optim_get_stats(p, &s) == ASG_OK && s.skipped_steps == 0 && s.skip_streak == 0,
           "%s: no skips yet", what);
  size_t nb;
  unsigned char *snap = snapshot(p, &nb);
  const char *first;
  feed_net(p, 5);
  for (int r = 1; r <= 3; r++) {
    asg_clear_error();
    asg_status st = asg_program_run(p);
    if (r < 3)
      TU_CHECK(st == ASG_OK, "%s: skipped run %d is not an error yet: %s", what, r,
               asg_last_error());
    else
      TU_CHECK(st != ASG_OK && tu_contains(asg_last_error(), "non-finite") &&
                   tu_contains(asg_last_error(), "3"),
               "%s: the 3rd skip in a row fails the run: '%s'", what, asg_last_error());
    int c = changed_vars(p, snap, &first);
    TU_CHECK(c == 0, "%s: skipped run %d changed %d variables (first '%s')", what, r, c, first);
    TU_CHECK(asg_optim_get_stats(p, &s) == ASG_OK && s.skipped_steps == r && s.skip_streak == r,
             "%s: counts after %d skips: %lld %lld", what, r, (long long)s.skipped_steps,
             (long long)s.skip_streak);
  }
  feed_net(p, -1);
  TU_CHECK(asg_program_run(p) == ASG_OK, "%s: finite again: %s", what, asg_last_error());
  TU_CHECK(asg_optim_get_stats(p, &s) == ASG_OK && s.skipped_steps == 3 && s.skip_streak == 0,
           "%s: streak reset, total kept: %lld %lld", what, (long long)s.skipped_steps,
           (long long)s.skip_streak);
  TU_CHECK(changed_vars(p, snap, &first) > 0 && !isnan(get_f(p, "dec.bias")),
           "%s: training resumed with finite values", what);
  free(snap);
  asg_program_free(p);
  asg_graph_free(n.g);
}

/* 7c. With accumulation a skipped micro-batch adds nothing: finite, NaN,
 * finite equals finite, finite without the guard. */
static void test_guard_accumulation(void) {
  net a = build_net(), b = build_net();
  asg_optim o = asg_sgd(0.1, 0.9);
  o.accum_steps = 2;
  asg_program *plain = asg_compile_train(a.g, a.loss, o, 0, NULL, NULL);
  o.skip_nonfinite = true;
  asg_program *guarded = asg_compile_train(b.g, b.loss, o, 0, NULL, NULL);
  TU_CHECK(plain && guarded, "accumulation: compile: %s", asg_last_error());
  if (plain && guarded) {
    feed_net(plain, -1);
    asg_program_run(plain);
    asg_program_run(plain);
    feed_net(guarded, -1);
    asg_program_run(guarded);
    feed_net(guarded, 2);
    asg_program_run(guarded);
    feed_net(guarded, -1);
    asg_program_run(guarded);
    float wp[DH * DI], wg[DH * DI], w0[DH * DI];
    asg_program_get_variable(plain, "enc.weight", wp, sizeof wp);
    asg_program_get_variable(guarded, "enc.weight", wg, sizeof wg);
    int nw = 0;
    bool same = true;
    for (int i = 0; i < DH * DI; i++) {
      same = same && fabsf(wp[i] - wg[i]) <= 1e-6f * (1 + fabsf(wp[i]));
      nw += isnan(wg[i]);
    }
    net c = build_net(); /* the initial values, to see that a step was taken */
    asg_program *fresh = asg_compile_train(c.g, c.loss, o, 0, NULL, NULL);
    if (fresh) asg_program_get_variable(fresh, "enc.weight", w0, sizeof w0);
    TU_CHECK(same && nw == 0 && fresh && memcmp(w0, wg, sizeof w0) != 0,
             "accumulation: a skipped micro-batch adds nothing (enc.weight[0] %g vs %g)",
             (double)wg[0], (double)wp[0]);
    asg_program_free(fresh);
    asg_graph_free(c.g);
  }
  asg_program_free(plain);
  asg_program_free(guarded);
  asg_graph_free(a.g);
  asg_graph_free(b.g);
}

/* 7d. The dynamic loss scale never falls below its floor (default 1), and
 * the stats report the floor. */
static void test_loss_scale_floor(void) {
  for (int variant = 0; variant < 2; variant++) {
    net n = build_net();
    asg_optim o = asg_adam(0.01);
    o.loss_scale = 8;
    if (variant) o.loss_scale_min = 2;
    const double floor = variant ? 2 : 1;
    asg_program *p = asg_compile_train(n.g, n.loss, o, 0, NULL, NULL);
    TU_CHECK(p != NULL, "loss scale: compile: %s", asg_last_error());
    if (!p) {
      asg_graph_free(n.g);
      continue;
    }
    asg_optim_stats s;
    feed_net(p, -1);
    asg_program_run(p);
    TU_CHECK(asg_optim_get_stats(p, &s) == ASG_OK && s.loss_scale == 8 && !s.loss_scale_at_floor,
             "scale 8 after a finite run (%g)", s.loss_scale);
    feed_net(p, 1);
    double seen[8];
    for (int r = 0; r < 8; r++) {
      TU_CHECK(asg_program_run(p) == ASG_OK, "overflowing runs without the guard do not fail");
      asg_optim_get_stats(p, &s);
      seen[r] = s.loss_scale;
    }
    TU_CHECK(seen[0] == 4 && seen[1] == 2 && seen[7] == floor && s.loss_scale_at_floor &&
                 get_f(p, "optim/loss_scale") == (float)floor,
             "scale halves to the floor %g and stays there: %g %g .. %g (at floor %d)", floor,
             seen[0], seen[1], seen[7], (int)s.loss_scale_at_floor);
    TU_CHECK(s.skipped_steps == 0, "skips are counted only with the guard");
    feed_net(p, -1);
    asg_program_run(p);
    TU_CHECK(!isnan(get_f(p, "dec.bias")), "finite run at the floor trains");
    asg_program_free(p);
    asg_graph_free(n.g);
  }
  { /* a program without loss scaling reports scale 0 */
    net n = build_net();
    asg_program *p = asg_compile_train(n.g, n.loss, asg_sgd(0.1, 0), 0, NULL, NULL);
    asg_optim_stats s = {.loss_scale = -1};
    TU_CHECK(p && asg_optim_get_stats(p, &s) == ASG_OK && s.loss_scale == 0 &&
                 !s.loss_scale_at_floor,
             "no loss scaling: scale 0");
    TU_CHECK(asg_optim_get_stats(NULL, &s) != ASG_OK && asg_optim_get_stats(p, NULL) != ASG_OK,
             "get_stats(NULL)");
    asg_program_free(p);
    asg_graph_free(n.g);
  }
}

/* ---- 8b. allocation failures while compiling ----
 * The test replaces calloc and malloc (glibc, no sanitizer: the sanitizers
 * own the allocator) and fails the k-th allocation inside asg_compile and
 * asg_compile_train for every k until compiling succeeds: each must fail
 * cleanly (NULL and a message), including freeing the partly built
 * program. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define NO_ALLOC_HOOK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(__GLIBC__)
#define NO_ALLOC_HOOK 1
#endif

#ifndef NO_ALLOC_HOOK
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
static _Atomic long alloc_countdown = -1; /* fail when it reaches 0; < 0: never */

static bool alloc_fails(void) {
  long c = alloc_countdown;
  if (c < 0) return false;
  alloc_countdown = c - 1;
  return c == 0;
}
void *malloc(size_t n) { return alloc_fails() ? NULL : __libc_malloc(n); }
void *calloc(size_t n, size_t size) { return alloc_fails() ? NULL : __libc_calloc(n, size); }

static void test_compile_alloc_failures(void) {
  net n = build_net();
  asg_tensor *outs[1] = {n.loss};
  int k, bad = 0;
  for (k = 0; k < 100000; k++) {
    asg_clear_error();
    alloc_countdown = k;
    asg_program *p = asg_compile(n.g, 1, outs, NULL);
    bool failed = alloc_countdown < 0;
    alloc_countdown = -1;
    if (p) {
      asg_program_free(p);
      if (!failed) break; /* every allocation succeeded: done */
      continue;           /* the failed allocation was optional */
    }
    if (!asg_last_error()[0]) bad++;
  }
  TU_CHECK(bad == 0 && k > 10, "compile: %d allocation failures, %d without a message", k, bad);
  asg_graph_free(n.g);
  bad = 0;
  for (k = 0; k < 100000; k++) {
    net m = build_net(); /* a failed optimizer build leaves its error on the graph */
    asg_clear_error();
    alloc_countdown = k;
    asg_program *p = asg_compile_train(m.g, m.loss, asg_adam(0.01), 0, NULL, NULL);
    bool failed = alloc_countdown < 0;
    alloc_countdown = -1;
    asg_graph_free(m.g);
    if (p) {
      asg_program_free(p);
      if (!failed) break;
      continue;
    }
    if (!asg_last_error()[0]) bad++;
  }
  TU_CHECK(bad == 0 && k > 10, "compile_train: %d allocation failures, %d without a message", k,
           bad);
}
#else
static void test_compile_alloc_failures(void) {
  printf("allocation-failure sweep skipped (sanitizer or not glibc)\n");
}
#endif

int main(void) {
  test_unfed_inputs();
  test_feed_tensor();
  test_lr_and_hparams();
  test_compile_args();
  test_group_prefix();
  test_nan_without_guard();
  test_guard(asg_adam(0.01), "Adam");
  test_guard(asg_adamw(0.01, 0.1), "AdamW");
  test_guard(asg_sgd(0.05, 0.9), "SGD momentum");
  test_guard(asg_rmsprop(0.01), "RMSprop");
  {
    asg_optim o = asg_adam(0.01);
    o.loss_scale = 1024;
    test_guard(o, "Adam + loss scaling");
  }
  test_guard_accumulation();
  test_loss_scale_floor();
  test_compile_alloc_failures();
  return tu_finish();
}
