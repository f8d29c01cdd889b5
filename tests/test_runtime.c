/* Runtime: variables across runs, assign semantics, shared variable stores,
 * initializers, the memory planner, outputs, run counts, lifetimes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int fetch_d(asg_program *p, asg_tensor *t, double *out, long n) {
  return asg_program_fetch(p, t, out, sizeof(double) * (size_t)n) == ASG_OK;
}

/* Variables keep their value between runs; get/set by name. */
static void test_persist(void) {
  double w0[3] = {1, 2, 3}, w[3], y[3];
  asg_graph *g = asg_graph_new();
  asg_tensor *wv = asg_variable(g, "w", ASG_F64, ASG_SHAPE(3), asg_init_data(w0));
  asg_tensor *yv = asg_mul_scalar(wv, 10); /* reads the pre-step value */
  asg_tensor *up = asg_assign(wv, asg_add_scalar(wv, 1));
  asg_tensor *outs[2] = {yv, up};
  asg_program *p = asg_compile(g, 2, outs, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) goto out;
  TU_CHECK(asg_program_run_count(p) == 0, "fresh run count");
  for (int r = 0; r < 3; r++)
    TU_CHECK(asg_program_run(p) == ASG_OK, "run %d", r);
  TU_CHECK(asg_program_run_count(p) == 3, "run count %llu",
           (unsigned long long)asg_program_run_count(p));
  TU_CHECK(asg_program_get_variable(p, "w", w, sizeof w) == ASG_OK, "get_variable");
  TU_CHECK(w[0] == 4 && w[1] == 5 && w[2] == 6, "w after 3 runs: %g %g %g", w[0], w[1], w[2]);
  TU_CHECK(fetch_d(p, yv, y, 3) && y[0] == 30 && y[2] == 50,
           "read in last step saw w before the step: %g", y[0]);
  TU_CHECK(fetch_d(p, up, y, 3) && y[0] == 4, "assign output is the new value");
  TU_CHECK(fetch_d(p, wv, y, 3) && y[1] == 5, "variable fetchable");
  double nw[3] = {-1, 0, 1};
  TU_CHECK(asg_program_set_variable(p, "w", nw, sizeof nw) == ASG_OK, "set_variable");
  asg_program_run(p);
  asg_program_get_variable(p, "w", w, sizeof w);
  TU_CHECK(w[0] == 0 && w[1] == 1 && w[2] == 2, "set then run: %g %g %g", w[0], w[1], w[2]);
  TU_CHECK(fetch_d(p, yv, y, 3) && y[0] == -10, "read saw the value that was set");
  asg_program_set_run_count(p, 42);
  asg_program_run(p);
  TU_CHECK(asg_program_run_count(p) == 43, "set_run_count");
  TU_CHECK(asg_program_variable_count(p) == 1, "variable count");
  const char *name = NULL;
  asg_dtype dt = ASG_F32;
  asg_shape sh = ASG_SCALAR;
  TU_CHECK(asg_program_variable_info(p, 0, &name, &dt, &sh) == ASG_OK && name &&
               strcmp(name, "w") == 0 && dt == ASG_F64 && asg_shape_equal(sh, ASG_SHAPE(3)),
           "variable_info");
  TU_CHECK(strcmp(asg_program_backend(p), "cpu") == 0, "backend name");
  TU_CHECK(asg_program_persistent_memory(p) >= sizeof w, "persistent memory counts variables");
out:
  asg_program_free(p);
  asg_graph_free(g);
}

/* All reads in a step see the pre-step values: assign(a, b) + assign(b, a)
 * swaps, a 3-cycle rotates, views of assigned variables read old values. */
static void test_assign_semantics(void) {
  double a0[2] = {1, 2}, b0[2] = {3, 4}, c0[2] = {5, 6}, v[2];
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *a = asg_variable(g, "a", ASG_F64, ASG_SHAPE(2), asg_init_data(a0));
    asg_tensor *b = asg_variable(g, "b", ASG_F64, ASG_SHAPE(2), asg_init_data(b0));
    asg_tensor *outs[2] = {asg_assign(a, b), asg_assign(b, a)};
    asg_program *p = asg_compile(g, 2, outs, NULL);
    TU_CHECK(p && asg_program_run(p) == ASG_OK, "swap compile/run: %s", asg_last_error());
    asg_program_get_variable(p, "a", v, sizeof v);
    TU_CHECK(v[0] == 3 && v[1] == 4, "swap: a = %g %g (want 3 4)", v[0], v[1]);
    asg_program_get_variable(p, "b", v, sizeof v);
    TU_CHECK(v[0] == 1 && v[1] == 2, "swap: b = %g %g (want 1 2)", v[0], v[1]);
    asg_program_run(p); /* swapping twice restores */
    asg_program_get_variable(p, "a", v, sizeof v);
    TU_CHECK(v[0] == 1 && v[1] == 2, "swap twice: a = %g %g", v[0], v[1]);
    asg_program_free(p);
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *a = asg_variable(g, "a", ASG_F64, ASG_SHAPE(2), asg_init_data(a0));
    asg_tensor *b = asg_variable(g, "b", ASG_F64, ASG_SHAPE(2), asg_init_data(b0));
    asg_tensor *c = asg_variable(g, "c", ASG_F64, ASG_SHAPE(2), asg_init_data(c0));
    /* a <- b, b <- c (through a view), c <- a + 0 (computed) */
    asg_tensor *view = asg_reshape(asg_reshape(c, ASG_SHAPE(1, 2)), ASG_SHAPE(2));
    asg_tensor *outs[4] = {asg_assign(a, b), asg_assign(b, asg_stop_gradient(view)),
                           asg_assign(c, asg_add_scalar(a, 0)), NULL};
    asg_tensor *old_a = asg_reshape(a, ASG_SHAPE(2, 1)); /* a view read as an output */
    outs[3] = old_a;
    asg_program *p = asg_compile(g, 4, outs, NULL);
    TU_CHECK(p && asg_program_run(p) == ASG_OK, "rotate compile/run: %s", asg_last_error());
    double va[2], vb[2], vc[2], vo[2];
    asg_program_get_variable(p, "a", va, sizeof va);
    asg_program_get_variable(p, "b", vb, sizeof vb);
    asg_program_get_variable(p, "c", vc, sizeof vc);
    TU_CHECK(va[0] == 3 && vb[0] == 5 && vc[0] == 1 && va[1] == 4 && vb[1] == 6 && vc[1] == 2,
             "rotate: a=%g b=%g c=%g (want 3 5 1)", va[0], vb[0], vc[0]);
    TU_CHECK(fetch_d(p, old_a, vo, 2) && vo[0] == 1 && vo[1] == 2,
             "view of an assigned variable read as output sees the old value: %g %g", vo[0], vo[1]);
    asg_program_free(p);
    asg_graph_free(g);
  }
  { /* the same variable assigned twice in one program is refused */
    asg_graph *g = asg_graph_new();
    asg_tensor *a = asg_variable(g, "a", ASG_F64, ASG_SHAPE(2), asg_init_data(a0));
    asg_tensor *outs[2] = {asg_assign(a, asg_add_scalar(a, 1)),
                           asg_assign(a, asg_add_scalar(a, 2))};
    asg_clear_error();
    asg_program *p = asg_compile(g, 2, outs, NULL);
    TU_CHECK(p == NULL && strstr(asg_last_error(), "'a'") && strstr(asg_last_error(), "twice"),
             "double assign refused: %s", asg_last_error());
    asg_program_free(p);
    /* one at a time is fine */
    p = asg_compile(g, 1, outs, NULL);
    TU_CHECK(p && asg_program_run(p) == ASG_OK, "single assign compiles");
    asg_program_get_variable(p, "a", v, sizeof v);
    TU_CHECK(v[0] == 2, "a + 1 = %g", v[0]);
    asg_program_free(p);
    asg_graph_free(g);
  }
}

/* Two programs of one graph share variable storage. */
static void test_share(void) {
  double w0[2] = {1, 1}, v[2], y[2];
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_variable(g, "w", ASG_F64, ASG_SHAPE(2), asg_init_data(w0));
  asg_tensor *up = asg_assign(w, asg_mul_scalar(w, 2));
  asg_tensor *ev = asg_add_scalar(w, 0.5);
  asg_program *train = asg_compile(g, 1, &up, NULL);
  asg_compile_opts o = {.share_variables = train};
  asg_program *eval = asg_compile(g, 1, &ev, &o);
  asg_program *lone = asg_compile(g, 1, &ev, NULL); /* own store */
  TU_CHECK(train && eval && lone, "compile: %s", asg_last_error());
  if (!train || !eval || !lone) goto out;
  asg_program_run(train);
  asg_program_run(train);
  asg_program_run(eval);
  asg_program_run(lone);
  TU_CHECK(fetch_d(eval, ev, y, 2) && y[0] == 4.5, "eval sees train's updates: %g", y[0]);
  TU_CHECK(fetch_d(lone, ev, y, 2) && y[0] == 1.5, "unshared program has its own w: %g", y[0]);
  double nw[2] = {10, 20};
  asg_program_set_variable(eval, "w", nw, sizeof nw);
  asg_program_get_variable(train, "w", v, sizeof v);
  TU_CHECK(v[0] == 10 && v[1] == 20, "train sees eval's write: %g", v[0]);
  asg_program_free(train); /* the store lives on while eval holds it */
  train = NULL;
  asg_program_run(eval);
  TU_CHECK(fetch_d(eval, ev, y, 2) && y[1] == 20.5, "shared store outlives its first program");
  { /* a variable of the same name but another shape cannot share */
    asg_graph *g2 = asg_graph_new();
    asg_tensor *w2 = asg_variable(g2, "w", ASG_F64, ASG_SHAPE(3), asg_init_zeros());
    asg_tensor *y2 = asg_add_scalar(w2, 1);
    asg_compile_opts o2 = {.share_variables = eval};
    asg_clear_error();
    asg_program *bad = asg_compile(g2, 1, &y2, &o2);
    TU_CHECK(bad == NULL && asg_last_error()[0], "share with mismatched variable refused");
    asg_program_free(bad);
    asg_graph_free(g2);
  }
out:
  asg_program_free(train);
  asg_program_free(eval);
  asg_program_free(lone);
  asg_graph_free(g);
}

/* Values a variable starts with in a program. */
static int var_values(asg_init init, asg_dtype dt, asg_shape s, uint64_t graph_seed,
                      const char *name, void *dst) {
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, graph_seed);
  asg_tensor *v = asg_variable(g, name, dt, s, init);
  asg_tensor *y = asg_neg(v);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  int ok = p && asg_program_get_variable(p, name, dst,
                                         (size_t)asg_shape_numel(s) * asg_dtype_size(dt)) == ASG_OK;
  asg_program_free(p);
  asg_graph_free(g);
  return ok;
}

static void stats(const double *x, long n, double *mean, double *var) {
  double s = 0, q = 0;
  for (long i = 0; i < n; i++)
    s += x[i];
  *mean = s / (double)n;
  for (long i = 0; i < n; i++)
    q += (x[i] - *mean) * (x[i] - *mean);
  *var = q / (double)n;
}

static void test_init(void) {
  const asg_shape s = ASG_SHAPE(256, 512); /* fan_in 512, fan_out 256 */
  const long n = 256 * 512;
  double *a = malloc(sizeof(double) * (size_t)n), *b = malloc(sizeof(double) * (size_t)n);
  /* explicit seed: same seed, same values; asg_init_fill reproduces them */
  asg_init in = asg_init_normal(0.5, 2.0);
  in.seed = 77;
  TU_CHECK(var_values(in, ASG_F64, s, 1, "p", a) && var_values(in, ASG_F64, s, 2, "q", b),
           "normal var");
  TU_CHECK(memcmp(a, b, sizeof(double) * (size_t)n) == 0, "same explicit seed, same values");
  TU_CHECK(asg_init_fill(in, ASG_F64, s, 0, b) == ASG_OK &&
               memcmp(a, b, sizeof(double) * (size_t)n) == 0,
           "asg_init_fill matches the program");
  asg_init in2 = in;
  in2.seed = 78;
  asg_init_fill(in2, ASG_F64, s, 0, b);
  TU_CHECK(memcmp(a, b, sizeof(double) * (size_t)n) != 0, "another seed, other values");
  /* seed 0: derived from the graph seed and the name */
  asg_init k = asg_init_kaiming_normal(0);
  var_values(k, ASG_F64, s, 5, "w", a);
  var_values(k, ASG_F64, s, 5, "w", b);
  TU_CHECK(memcmp(a, b, sizeof(double) * (size_t)n) == 0, "same graph seed + name: same values");
  var_values(k, ASG_F64, s, 6, "w", b);
  TU_CHECK(memcmp(a, b, sizeof(double) * (size_t)n) != 0, "other graph seed: other values");
  var_values(k, ASG_F64, s, 5, "w2", b);
  TU_CHECK(memcmp(a, b, sizeof(double) * (size_t)n) != 0, "other name: other values");
  { /* f32 program values equal the f32 fill */
    float *fa = malloc(sizeof(float) * (size_t)n), *fb = malloc(sizeof(float) * (size_t)n);
    asg_init u = asg_init_uniform(-2, 3);
    u.seed = 9;
    var_values(u, ASG_F32, s, 1, "u", fa);
    asg_init_fill(u, ASG_F32, s, 123, fb);
    TU_CHECK(memcmp(fa, fb, sizeof(float) * (size_t)n) == 0, "f32 init_fill matches program");
    free(fa), free(fb);
  }
  /* statistics: variance within 3% (~8 sigma for 131072 samples) */
  struct {
    const char *name;
    asg_init init;
    asg_shape shape;
    double mean, var;
  } cases[] = {
      {"kaiming_normal", asg_init_kaiming_normal(0), s, 0, 2.0 / 512},
      {"kaiming_uniform", asg_init_kaiming_uniform(0), s, 0, 2.0 / 512},
      {"kaiming_normal slope 0.2", asg_init_kaiming_normal(0.2), s, 0, 2.0 / (1.04 * 512)},
      {"kaiming_uniform conv", asg_init_kaiming_uniform(0), ASG_SHAPE(64, 32, 8, 8), 0,
       2.0 / (32 * 64)},
      {"xavier_uniform", asg_init_xavier_uniform(0), s, 0, 2.0 / (512 + 256)},
      {"xavier_normal gain 2", asg_init_xavier_normal(2), s, 0, 4 * 2.0 / (512 + 256)},
      {"xavier_uniform conv", asg_init_xavier_uniform(0), ASG_SHAPE(64, 32, 8, 8), 0,
       2.0 / (32 * 64 + 64 * 64)},
      {"uniform", asg_init_uniform(-1, 3), s, 1, 16.0 / 12},
      {"normal", asg_init_normal(-2, 0.5), s, -2, 0.25},
      {"trunc_normal", asg_init_trunc_normal(1, 2), s, 1,
       4 * 0.7737413}, /* var of N(0,1) cut at 2 */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    long m = (long)asg_shape_numel(cases[c].shape);
    double *x = malloc(sizeof(double) * (size_t)m), mean, var;
    TU_CHECK(var_values(cases[c].init, ASG_F64, cases[c].shape, 3, "v", x), "%s", cases[c].name);
    stats(x, m, &mean, &var);
    double sd = sqrt(cases[c].var);
    TU_CHECK(fabs(mean - cases[c].mean) < 0.02 * sd + 1e-12 + 8 * sd / sqrt((double)m),
             "%s mean %g want %g", cases[c].name, mean, cases[c].mean);
    TU_CHECK(fabs(var / cases[c].var - 1) < 0.03, "%s variance %g want %g", cases[c].name, var,
             cases[c].var);
    if (cases[c].init.kind == ASG_INIT_TRUNC_NORMAL || cases[c].init.kind == ASG_INIT_UNIFORM) {
      double lo = 1e300, hi = -1e300;
      for (long i = 0; i < m; i++)
        lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
      bool in_range =
          cases[c].init.kind == ASG_INIT_UNIFORM ? lo >= -1 && hi < 3 : lo >= 1 - 4 && hi <= 1 + 4;
      TU_CHECK(in_range, "%s range [%g, %g]", cases[c].name, lo, hi);
    }
    free(x);
  }
  /* constants and integer variables */
  {
    int32_t iv[4];
    TU_CHECK(var_values(asg_init_constant(7), ASG_I32, ASG_SHAPE(4), 1, "i", iv) && iv[0] == 7 &&
                 iv[3] == 7,
             "constant i32 init");
    double ov[3];
    TU_CHECK(var_values(asg_init_ones(), ASG_F64, ASG_SHAPE(3), 1, "o", ov) && ov[2] == 1, "ones");
  }
  free(a), free(b);
}

/* A chain of 20 elementwise ops on [1000,1000] f32 needs two arena buffers. */
static void test_planner(void) {
  const long n = 1000 * 1000;
  const size_t mb4 = (size_t)n * 4;
  float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
  for (long i = 0; i < n; i++)
    x[i] = (float)((i % 1000) - 500) / 250.0f;
  asg_graph *g = asg_graph_new();
  asg_tensor *in = asg_input(g, "x", ASG_F32, ASG_SHAPE(1000, 1000)), *h = in;
  for (int i = 0; i < 20; i++)
    h = i % 2 ? asg_neg(h) : asg_abs(h);
  asg_program *p = asg_compile(g, 1, &h, NULL);
  TU_CHECK(p != NULL, "chain compile: %s", asg_last_error());
  if (p) {
    size_t peak = asg_program_peak_memory(p);
    TU_CHECK(peak <= 3 * mb4 && peak >= mb4, "chain of 20 ops: peak %zu bytes (<= 3 x %zu)", peak,
             mb4);
    TU_CHECK(asg_program_step_count(p) == 20, "20 steps, got %d", asg_program_step_count(p));
    TU_CHECK(asg_program_feed(p, "x", x, sizeof(float) * (size_t)n) == ASG_OK, "feed");
    TU_CHECK(asg_program_run(p) == ASG_OK, "run");
    TU_CHECK(asg_program_fetch(p, h, y, sizeof(float) * (size_t)n) == ASG_OK, "fetch");
    long bad = 0; /* neg(abs(...)) last: -|x| */
    for (long i = 0; i < n; i++)
      bad += y[i] != -fabsf(x[i]);
    TU_CHECK(bad == 0, "chain result: %ld wrong", bad);
  }
  asg_program_free(p);
  asg_graph_free(g);

  /* Several outputs from along a chain and a diamond stay intact. */
  g = asg_graph_new();
  in = asg_input(g, "x", ASG_F32, ASG_SHAPE(1000, 1000));
  asg_tensor *a = asg_mul_scalar(in, 2); /* 2x */
  asg_tensor *b = asg_add_scalar(a, 1);  /* 2x+1 */
  asg_tensor *c = asg_mul(b, b);         /* (2x+1)^2 */
  asg_tensor *d = asg_sub(c, a);         /* (2x+1)^2 - 2x */
  asg_tensor *e = asg_neg(d);
  asg_tensor *f = asg_add(e, b); /* -(2x+1)^2 + 4x + 1 */
  asg_tensor *outs[3] = {f, b, d};
  p = asg_compile(g, 3, outs, NULL);
  TU_CHECK(p != NULL, "diamond compile: %s", asg_last_error());
  if (p) {
    asg_program_feed(p, "x", x, sizeof(float) * (size_t)n);
    asg_program_run(p);
    float *yb = malloc(sizeof(float) * (size_t)n), *yd = malloc(sizeof(float) * (size_t)n);
    asg_program_fetch(p, f, y, sizeof(float) * (size_t)n);
    asg_program_fetch(p, b, yb, sizeof(float) * (size_t)n);
    asg_program_fetch(p, d, yd, sizeof(float) * (size_t)n);
    long bad = 0;
    for (long i = 0; i < n; i++) {
      float a_ = x[i] * 2, b_ = a_ + 1, c_ = b_ * b_, d_ = c_ - a_, f_ = -d_ + b_;
      bad += y[i] != f_ || yb[i] != b_ || yd[i] != d_;
    }
    TU_CHECK(bad == 0, "outputs intact after the run: %ld wrong", bad);
    size_t peak = asg_program_peak_memory(p);
    TU_CHECK(peak <= 5 * mb4, "diamond peak %zu", peak);
    free(yb), free(yd);
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(y);
}

/* A random DAG of 300 elementwise ops, views and reductions with several
 * outputs, checked against the same computation done here in doubles: the
 * memory planner must never hand out a buffer that is still to be read. */
static void test_random_dag(void) {
  enum { NN = 300, W = 64 };
  static double ref[NN][W];
  asg_tensor *node[NN];
  double r[4];
  asg_graph *g = asg_graph_new();
  double x0[W];
  tu_rand(3, x0, W, -1, 1);
  node[0] = asg_constant(g, ASG_F64, ASG_SHAPE(W), x0);
  memcpy(ref[0], x0, sizeof x0);
  unsigned long long seed = 11;
  for (int i = 1; i < NN; i++) {
    tu_rand(seed++, r, 4, 0, 1);
    int a = (int)(r[0] * i), b = (int)(r[1] * i), op = (int)(r[2] * 7);
    if (r[3] < 0.5) a = i - 1; /* mostly chains, with long-range reads */
    switch (op) {
    case 0:
      node[i] = asg_add(node[a], node[b]);
      for (int k = 0; k < W; k++)
        ref[i][k] = ref[a][k] + ref[b][k];
      break;
    case 1:
      node[i] = asg_mul(node[a], asg_tanh(node[b]));
      for (int k = 0; k < W; k++)
        ref[i][k] = ref[a][k] * tanh(ref[b][k]);
      break;
    case 2:
      node[i] = asg_sub(node[a], node[b]);
      for (int k = 0; k < W; k++)
        ref[i][k] = ref[a][k] - ref[b][k];
      break;
    case 3: /* views */
      node[i] = asg_reshape(asg_stop_gradient(asg_reshape(node[a], ASG_SHAPE(8, 8))), ASG_SHAPE(W));
      memcpy(ref[i], ref[a], sizeof ref[i]);
      break;
    case 4:
      node[i] = asg_maximum(node[a], asg_neg(node[b]));
      for (int k = 0; k < W; k++)
        ref[i][k] = fmax(ref[a][k], -ref[b][k]);
      break;
    case 5: { /* row sums broadcast back: [8,8] -> [8,1] -> [8,8] */
      asg_tensor *m = asg_reshape(node[a], ASG_SHAPE(8, 8));
      node[i] = asg_reshape(asg_sub(m, asg_mean(m, ASG_AXES(1), true)), ASG_SHAPE(W));
      for (int row = 0; row < 8; row++) {
        double mean = 0;
        for (int k = 0; k < 8; k++)
          mean += ref[a][row * 8 + k] / 8;
        for (int k = 0; k < 8; k++)
          ref[i][row * 8 + k] = ref[a][row * 8 + k] - mean;
      }
      break;
    }
    default:
      node[i] = asg_mul_scalar(asg_sin(node[a]), 1.5);
      for (int k = 0; k < W; k++)
        ref[i][k] = 1.5 * sin(ref[a][k]);
    }
  }
  asg_tensor *outs[6] = {node[NN - 1], node[40], node[100], node[150], node[NN - 2], node[7]};
  asg_program *p = asg_compile(g, 6, outs, NULL);
  TU_CHECK(p && asg_program_run(p) == ASG_OK, "random dag compile/run: %s", asg_last_error());
  const int ids[6] = {NN - 1, 40, 100, 150, NN - 2, 7};
  for (int o = 0; p && o < 6; o++) {
    double got[W];
    char what[32];
    snprintf(what, sizeof what, "dag node %d", ids[o]);
    TU_CHECK(fetch_d(p, outs[o], got, W) && tu_close(what, got, ref[ids[o]], W, 1e-12, 1e-12), "%s",
             what);
  }
  TU_CHECK(p && asg_program_peak_memory(p) < (size_t)NN * W * 8 / 4,
           "planner reuses memory in the dag (peak %zu)", p ? asg_program_peak_memory(p) : 0);
  asg_program_free(p);
  asg_graph_free(g);
}

/* Same results with 1 thread and with all threads (no racy sums). */
static void test_threads_deterministic(void) {
  const long n = 300 * 400;
  float *x = malloc(sizeof(float) * (size_t)n);
  for (long i = 0; i < n; i++)
    x[i] = (float)sin((double)i);
  float r[2][300 + 1];
  for (int t = 0; t < 2; t++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *in = asg_constant(g, ASG_F32, ASG_SHAPE(300, 400), x);
    asg_tensor *s = asg_sum(asg_tanh(in), ASG_AXES(1), false);
    asg_tensor *all = asg_sum(in, ASG_ALL_AXES, false);
    asg_tensor *outs[2] = {s, all};
    asg_compile_opts o = {.num_threads = t ? 0 : 1};
    asg_program *p = asg_compile(g, 2, outs, &o);
    TU_CHECK(p && asg_program_run(p) == ASG_OK, "compile/run threads=%d", o.num_threads);
    if (p) {
      asg_program_fetch(p, s, r[t], sizeof(float) * 300);
      asg_program_fetch(p, all, &r[t][300], sizeof(float));
    }
    asg_program_free(p);
    asg_graph_free(g);
  }
  TU_CHECK(memcmp(r[0], r[1], sizeof r[0]) == 0, "1 thread and all threads agree bitwise");
  free(x);
}

/* Lifetimes: a program outlives its graph; outputs of another graph are
 * refused. */
static void test_lifetimes(void) {
  double w0[2] = {1, 2}, v[2];
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(2));
  asg_tensor *w = asg_variable(g, "w", ASG_F64, ASG_SHAPE(2), asg_init_data(w0));
  asg_tensor *up = asg_assign(w, asg_add(w, x));
  asg_program *p = asg_compile(g, 1, &up, NULL);
  asg_graph_free(g); /* the program owns everything it needs */
  TU_CHECK(p != NULL, "compile");
  if (p) {
    double xv[2] = {10, 20};
    TU_CHECK(asg_program_feed(p, "x", xv, sizeof xv) == ASG_OK, "feed after graph free");
    TU_CHECK(asg_program_run(p) == ASG_OK, "run after graph free");
    asg_program_get_variable(p, "w", v, sizeof v);
    TU_CHECK(v[0] == 11 && v[1] == 22, "w = %g %g", v[0], v[1]);
  }
  asg_program_free(p);

  asg_graph *g1 = asg_graph_new(), *g2 = asg_graph_new();
  asg_tensor *t1 = asg_neg(asg_fill(g1, ASG_F32, ASG_SHAPE(2), 1));
  asg_tensor *t2 = asg_neg(asg_fill(g2, ASG_F32, ASG_SHAPE(2), 1));
  asg_clear_error();
  asg_program *q = asg_compile(g1, 1, &t2, NULL);
  TU_CHECK(q == NULL && asg_last_error()[0], "output of another graph refused");
  asg_tensor *both[2] = {t1, t2};
  q = asg_compile(g1, 2, both, NULL);
  TU_CHECK(q == NULL, "mixed outputs refused");
  TU_CHECK(asg_graph_status(g1) == ASG_OK && asg_graph_status(g2) == ASG_OK,
           "a refused compile does not poison the graphs");
  q = asg_compile(g1, 1, &t1, NULL); /* and the graph still compiles */
  TU_CHECK(q && asg_program_run(q) == ASG_OK, "compile after refusal");
  asg_program_free(q);
  asg_graph_free(g1);
  asg_graph_free(g2);
}

/* Compiling twice gives independent programs; fetching an input or variable
 * of the program works; an output that is a source node works. */
static void test_outputs(void) {
  double xv[3] = {1, 2, 3}, got[3];
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(3));
  asg_tensor *c = asg_constant(g, ASG_F64, ASG_SHAPE(3), xv);
  asg_tensor *y = asg_add(x, c);
  asg_tensor *outs[3] = {y, c, x};
  asg_program *p = asg_compile(g, 3, outs, NULL);
  TU_CHECK(p != NULL, "compile");
  if (p) {
    asg_program_feed(p, "x", xv, sizeof xv);
    asg_program_run(p);
    TU_CHECK(fetch_d(p, c, got, 3) && got[2] == 3, "constant as output");
    TU_CHECK(fetch_d(p, x, got, 3) && got[1] == 2, "input as output");
    TU_CHECK(fetch_d(p, y, got, 3) && got[0] == 2 && got[2] == 6, "sum");
    TU_CHECK(asg_program_scalar(p, y) == 2, "scalar of first element");
  }
  asg_program_free(p);
  /* a program with no steps (its output is a variable), duplicate outputs */
  asg_tensor *w = asg_variable(g, "w", ASG_F64, ASG_SHAPE(3), asg_init_data(xv));
  asg_tensor *dup[3] = {w, y, y};
  p = asg_compile(g, 1, &w, NULL);
  TU_CHECK(p && asg_program_step_count(p) == 0 && asg_program_run(p) == ASG_OK &&
               fetch_d(p, w, got, 3) && got[1] == 2,
           "program without steps");
  asg_program_free(p);
  p = asg_compile(g, 3, dup, NULL);
  TU_CHECK(p != NULL, "duplicate outputs compile");
  if (p) {
    asg_program_feed(p, "x", xv, sizeof xv);
    TU_CHECK(asg_program_run(p) == ASG_OK && fetch_d(p, y, got, 3) && got[2] == 6,
             "duplicate outputs");
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* In-place assigns: an update written straight into the variable must not
 * be seen by reads scheduled after it, and the result must not change. */
static void test_inplace_assign(void) {
  asg_graph *g = asg_graph_new();
  float w0[4] = {1, 2, 3, 4};
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(4), asg_init_data(w0));
  asg_tensor *v = asg_variable(g, "v", ASG_F32, ASG_SHAPE(4), asg_init_data(w0));
  asg_tensor *upd = asg_add_scalar(w, 10); /* w + 10 */
  asg_tensor *late = asg_mul_scalar(w, 3); /* made after upd: reads the old w */
  asg_tensor *vu = asg_mul(asg_add_scalar(v, 1), asg_scalar(g, ASG_F32, 2)); /* (v + 1) * 2 */
  asg_tensor *outs[4] = {asg_assign(w, upd), late, asg_assign(v, vu), upd};
  asg_program *p = asg_compile(g, 4, outs, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  float got[4], u[4];
  for (int run = 0; run < 2 && p; run++) {
    float wb[4], vb[4];
    asg_program_get_variable(p, "w", wb, sizeof wb);
    asg_program_get_variable(p, "v", vb, sizeof vb);
    TU_CHECK(asg_program_run(p) == ASG_OK, "run");
    asg_program_fetch(p, late, got, sizeof got);
    asg_program_fetch(p, upd, u, sizeof u);
    float wn[4], vn[4];
    asg_program_get_variable(p, "w", wn, sizeof wn);
    asg_program_get_variable(p, "v", vn, sizeof vn);
    int ok = 1;
    for (int i = 0; i < 4; i++)
      ok &= got[i] == 3 * wb[i] && wn[i] == wb[i] + 10 && u[i] == wn[i] && vn[i] == (vb[i] + 1) * 2;
    TU_CHECK(ok, "run %d: in-place updates kept the step's semantics", run);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  test_inplace_assign();
  test_persist();
  test_assign_semantics();
  test_share();
  test_init();
  test_planner();
  test_random_dag();
  test_threads_deterministic();
  test_lifetimes();
  test_outputs();
  return tu_finish();
}
