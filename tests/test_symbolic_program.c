/* Symbolic programs (issue 17): one program compiled from a graph with
 * symbolic dims runs any binding and matches, bitwise on the CPU with one
 * thread, static programs built for each shape; binding errors leave it
 * usable; the specialization cache is bounded and does not grow.
 * Usage: test_symbolic_program [cpu|cuda|vulkan] (default cpu). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "testutil.h"

static const char *backend = "cpu";
static bool exact; /* bitwise comparisons (CPU, one thread) */

static asg_compile_opts opts_of(int max_specs, size_t max_bytes) {
  asg_compile_opts o = {0};
  o.backend = backend;
  o.num_threads = 1;
  o.max_specializations = max_specs;
  o.max_specialization_bytes = max_bytes;
  return o;
}

/* ---- models: built with symbolic dims (B, T from asg_dim) or constants ---- */

typedef struct model {
  asg_graph *g;
  asg_tensor *x, *target, *y, *loss;
  int64_t x_elems_per_b, y_elems_per_b; /* per unit of B (times T where used) */
} model;

enum { MLP, CONV, TRANSFORMER };

static void build(model *m, int kind, bool symbolic, int64_t b, int64_t t) {
  asg_graph *g = asg_graph_new();
  m->g = g;
  int64_t B = symbolic ? asg_dim(g, "batch", 64) : b;
  int64_t T = symbolic ? asg_dim(g, "seq", 16) : t; /* declared by all; only some use it */
  if (kind == MLP) {
    m->x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 8));
    m->target = asg_input(g, "target", ASG_F32, ASG_SHAPE(B, 4));
    asg_tensor *h = asg_relu(asg_layer_apply(asg_nn_linear(g, "fc1", 8, 16), m->x));
    m->y = asg_layer_apply(asg_nn_linear(g, "fc2", 16, 4), h);
    m->loss = asg_mse_loss(m->y, m->target, ASG_REDUCE_MEAN);
  } else if (kind == CONV) {
    m->x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 1, 8, 8));
    asg_conv_params cp = {.padding = {1, 1}};
    asg_tensor *h = asg_layer_apply(asg_nn_conv2d(g, "conv", 1, 4, 3, 3, cp, true), m->x);
    h = asg_max_pool2d(asg_relu(h), (asg_pool_params){.kernel = {2, 2}});
    h = asg_layer_apply(asg_nn_flatten(g, "flat", 1), h);
    m->y = asg_layer_apply(asg_nn_linear(g, "fc", 64, 3), h);
  } else {
    m->x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, T, 16));
    asg_attention_opts ao = {.causal = true};
    m->y = asg_layer_apply(asg_nn_transformer_block(g, "blk", 16, 2, 32, &ao, 0.0), m->x);
  }
}

static int64_t numel_of(asg_shape s) { return asg_shape_numel(s); }

/* Copies every variable of src into dst (same names). */
static void copy_vars(asg_program *src, asg_program *dst) {
  int n = asg_program_variable_count(src);
  for (int i = 0; i < n; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    asg_program_variable_info(src, i, &name, &dt, &sh);
    size_t bytes = (size_t)numel_of(sh) * asg_dtype_size(dt);
    void *buf = malloc(bytes);
    TU_CHECK(asg_program_get_variable(src, name, buf, bytes) == ASG_OK, "get %s", name);
    TU_CHECK(asg_program_set_variable(dst, name, buf, bytes) == ASG_OK, "set %s: %s", name,
             asg_last_error());
    free(buf);
  }
}

/* Every variable of a equals b's (bitwise when exact). */
static bool same_vars(asg_program *a, asg_program *b, const char *what) {
  int n = asg_program_variable_count(a);
  bool ok = n == asg_program_variable_count(b);
  for (int i = 0; i < n && ok; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    asg_program_variable_info(a, i, &name, &dt, &sh);
    long k = (long)numel_of(sh);
    double *va = malloc(sizeof *va * (size_t)(k + 1)), *vb = malloc(sizeof *vb * (size_t)(k + 1));
    ok = tu_get_var(a, name, va) == k && tu_get_var(b, name, vb) == k;
    if (ok && exact) ok = memcmp(va, vb, sizeof *va * (size_t)k) == 0;
    if (ok && !exact) ok = tu_close(name, va, vb, k, 1e-5, 1e-4);
    if (!ok) printf("  %s: variable '%s' differs\n", what, name);
    free(va);
    free(vb);
  }
  return ok;
}

static bool same_floats(const float *a, const float *b, long n) {
  if (exact) return memcmp(a, b, sizeof *a * (size_t)n) == 0;
  for (long i = 0; i < n; i++)
    if (fabsf(a[i] - b[i]) > 1e-5f + 1e-4f * fabsf(b[i])) return false;
  return true;
}

/* Feeds x (and target) of shape for (b, t) with data from seed. */
static asg_status feed_model(asg_program *p, int kind, int64_t b, int64_t t,
                             unsigned long long seed, float *xbuf, float *tbuf) {
  asg_shape xs = kind == MLP    ? ASG_SHAPE(b, 8)
                 : kind == CONV ? ASG_SHAPE(b, 1, 8, 8)
                                : ASG_SHAPE(b, t, 16);
  long nx = (long)numel_of(xs);
  double *d = malloc(sizeof *d * (size_t)nx);
  tu_rand(seed, d, nx, -1, 1);
  for (long i = 0; i < nx; i++)
    xbuf[i] = (float)d[i];
  free(d);
  asg_status st = asg_program_feed_tensor(p, "x", ASG_F32, xs, xbuf);
  if (!st && kind == MLP && tbuf) {
    double dt[4 * 64];
    tu_rand(seed + 7, dt, 4 * b, -1, 1);
    for (long i = 0; i < 4 * b; i++)
      tbuf[i] = (float)dt[i];
    st = asg_program_feed_tensor(p, "target", ASG_F32, ASG_SHAPE(b, 4), tbuf);
  }
  return st;
}

/* Forward: a random walk over bindings, each run compared with a static
 * program of that shape (variables copied from the symbolic program). */
static void test_forward(int kind, const char *what) {
  model s;
  build(&s, kind, true, 0, 0);
  TU_CHECK(asg_graph_status(s.g) == ASG_OK, "%s: graph: %s", what, asg_graph_error(s.g));
  asg_compile_opts o = opts_of(3, 0);
  asg_program *p = asg_compile(s.g, 1, &s.y, &o);
  TU_CHECK(p != NULL, "%s: compile: %s", what, asg_last_error());
  if (!p) {
    asg_graph_free(s.g);
    return;
  }
  static const int64_t bs[] = {2, 5, 1, 5, 7, 2, 3, 7, 1, 2};
  static const int64_t ts[] = {4, 4, 6, 1, 3, 6, 4, 8, 2, 4};
  float *xbuf = malloc(sizeof(float) * 64 * 16 * 64), *ya = malloc(sizeof(float) * 64 * 16 * 16),
        *yb = malloc(sizeof(float) * 64 * 16 * 16);
  for (int step = 0; step < 10; step++) {
    int64_t b = bs[step], t = kind == TRANSFORMER ? ts[step] : 1;
    asg_status st = feed_model(p, kind, b, t, 100 + (unsigned)step, xbuf, NULL);
    if (!st) st = asg_program_run(p);
    TU_CHECK(st == ASG_OK, "%s step %d (b=%lld t=%lld): %s", what, step, (long long)b, (long long)t,
             asg_last_error());
    if (st) break;
    asg_shape ys;
    TU_CHECK(asg_program_output_shape(p, s.y, &ys) == ASG_OK, "%s: output shape", what);
    long ny = (long)numel_of(ys);
    TU_CHECK(ys.dims[0] == b, "%s: output batch %lld, want %lld", what, (long long)ys.dims[0],
             (long long)b);
    TU_CHECK(asg_program_fetch(p, s.y, ya, sizeof(float) * (size_t)ny) == ASG_OK, "%s fetch: %s",
             what, asg_last_error());
    model r;
    build(&r, kind, false, b, t);
    asg_compile_opts ro = opts_of(0, 0);
    asg_program *q = asg_compile(r.g, 1, &r.y, &ro);
    TU_CHECK(q != NULL, "%s: static compile: %s", what, asg_last_error());
    if (q) {
      copy_vars(p, q);
      feed_model(q, kind, b, t, 100 + (unsigned)step, xbuf, NULL);
      TU_CHECK(asg_program_run(q) == ASG_OK, "%s static run: %s", what, asg_last_error());
      asg_program_fetch(q, r.y, yb, sizeof(float) * (size_t)ny);
      TU_CHECK(same_floats(ya, yb, ny), "%s step %d (b=%lld t=%lld): differs from static", what,
               step, (long long)b, (long long)t);
      TU_CHECK(asg_program_peak_memory(p) == asg_program_peak_memory(q),
               "%s: peak memory %zu vs static %zu", what, asg_program_peak_memory(p),
               asg_program_peak_memory(q));
    }
    asg_program_free(q);
    asg_graph_free(r.g);
    TU_CHECK(asg_program_specialization_count(p) <= 3, "%s: cache bound", what);
  }
  free(xbuf);
  free(ya);
  free(yb);
  asg_program_free(p);
  asg_graph_free(s.g);
}

/* Training with Adam: after each step every variable (parameters and the
 * optimizer's state) equals that of a static program of the step's shape
 * started from the same variables. Means over the symbolic batch divide by
 * its value. The symbolic graph is freed right after compiling. */
static void test_train(void) {
  model s;
  build(&s, MLP, true, 0, 0);
  asg_compile_opts o = opts_of(2, 0);
  asg_program *p = asg_compile_train(s.g, s.loss, asg_adam(0.01), 0, NULL, &o);
  TU_CHECK(p != NULL, "train compile: %s", asg_last_error());
  asg_tensor *loss = s.loss;
  asg_graph_free(s.g); /* the program keeps what it needs */
  if (!p) return;
  TU_CHECK(asg_program_variable_count(p) > 4, "variables exist before the first run: %d",
           asg_program_variable_count(p));
  static const int64_t bs[] = {4, 4, 9, 1, 4, 9, 3, 1};
  model st[8];
  asg_program *q[8] = {0};
  float xbuf[64 * 8], tbuf[64 * 4];
  for (int step = 0; step < 8; step++) {
    int64_t b = bs[step];
    build(&st[step], MLP, false, b, 1);
    q[step] = asg_compile_train(st[step].g, st[step].loss, asg_adam(0.01), 0, NULL, &o);
    TU_CHECK(q[step] != NULL, "static train compile: %s", asg_last_error());
    if (!q[step]) break;
    copy_vars(p, q[step]);
    asg_status r1 = feed_model(p, MLP, b, 1, 500 + (unsigned)step, xbuf, tbuf);
    if (!r1) r1 = asg_program_run(p);
    feed_model(q[step], MLP, b, 1, 500 + (unsigned)step, xbuf, tbuf);
    asg_status r2 = asg_program_run(q[step]);
    TU_CHECK(!r1 && !r2, "train step %d: %s", step, asg_last_error());
    double l1 = asg_program_scalar(p, loss), l2 = asg_program_scalar(q[step], st[step].loss);
    TU_CHECK(exact ? l1 == l2 : fabs(l1 - l2) <= 1e-5 * (1 + fabs(l2)),
             "train step %d (b=%lld): loss %.9g vs static %.9g", step, (long long)b, l1, l2);
    char what[64];
    snprintf(what, sizeof what, "train step %d (b=%lld)", step, (long long)b);
    TU_CHECK(same_vars(p, q[step], what), "%s: variables differ from static", what);
  }
  for (int i = 0; i < 8; i++) {
    asg_program_free(q[i]);
    asg_graph_free(st[i].g);
  }
  asg_program_free(p);
}

static bool err_has(const char *a, const char *b, const char *c) {
  const char *e = asg_last_error();
  return tu_contains(e, a) && (!b || tu_contains(e, b)) && (!c || tu_contains(e, c));
}

/* Bad bindings: clear errors, and the program runs afterwards. */
static void test_binding_errors(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 8), N = asg_dim(g, "n", 0);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 2));
  asg_tensor *t = asg_input(g, "t", ASG_F32, ASG_SHAPE(B, 2));
  asg_tensor *y = asg_add(x, t);
  asg_tensor *z = asg_input(g, "z", ASG_F32, ASG_SHAPE(N, 4));
  asg_scope_push(g, "pairs");
  asg_tensor *zr = asg_reshape(z, ASG_SHAPE(-1, 8)); /* needs n even */
  asg_scope_pop(g);
  asg_tensor *outs[2] = {y, zr};
  TU_CHECK(asg_graph_status(g) == ASG_OK, "graph: %s", asg_graph_error(g));
  asg_compile_opts o = opts_of(0, 0);
  asg_program *p = asg_compile(g, 2, outs, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  float a[9 * 8] = {0}, b[9 * 8] = {0}, out[16];
  for (int i = 0; i < 72; i++)
    a[i] = (float)i, b[i] = 1;
  /* above the declared bound */
  asg_status st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(9, 2), a);
  TU_CHECK(st != ASG_OK && err_has("batch", "9", "8"), "bound: %s", asg_last_error());
  /* conflicting values between the inputs of one run */
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(3, 2), a) == ASG_OK, "feed x: %s",
           asg_last_error());
  st = asg_program_feed_tensor(p, "t", ASG_F32, ASG_SHAPE(4, 2), b);
  TU_CHECK(st != ASG_OK && err_has("batch", "3", "4") && err_has("'x'", "'t'", NULL),
           "conflict: %s", asg_last_error());
  /* feed without a shape: [n, 4] from bytes works; an unknown count does not */
  TU_CHECK(asg_program_feed(p, "t", b, 3 * 2 * sizeof(float)) == ASG_OK, "feed t by bytes: %s",
           asg_last_error());
  TU_CHECK(asg_program_feed(p, "z", a, 5 * sizeof(float)) != ASG_OK && err_has("z", NULL, NULL),
           "z with a partial row: %s", asg_last_error());
  /* a value that violates a constraint: n = 3 makes [n, 4] -> [-1, 8] fail */
  TU_CHECK(asg_program_feed_tensor(p, "z", ASG_F32, ASG_SHAPE(3, 4), a) == ASG_OK, "feed z: %s",
           asg_last_error());
  st = asg_program_run(p);
  TU_CHECK(st != ASG_OK && err_has("n=3", "reshape", NULL), "constraint: %s", asg_last_error());
  TU_CHECK(asg_program_specialization_count(p) == 0, "nothing built for a bad binding");
  /* still usable: a good n */
  TU_CHECK(asg_program_feed_tensor(p, "z", ASG_F32, ASG_SHAPE(4, 4), a) == ASG_OK, "feed z: %s",
           asg_last_error());
  TU_CHECK(asg_program_run(p) == ASG_OK, "run after errors: %s", asg_last_error());
  TU_CHECK(asg_program_fetch(p, y, out, 6 * sizeof(float)) == ASG_OK, "fetch y: %s",
           asg_last_error());
  TU_CHECK(out[0] == 1 && out[5] == 6, "y = x + t: %g %g", out[0], out[5]);
  TU_CHECK(asg_program_fetch(p, y, out, 8 * sizeof(float)) != ASG_OK &&
               err_has("[3,2]", NULL, NULL),
           "fetch size of another binding: %s", asg_last_error());
  asg_shape zs;
  TU_CHECK(asg_program_output_shape(p, zr, &zs) == ASG_OK && zs.ndim == 2 && zs.dims[0] == 2 &&
               zs.dims[1] == 8,
           "zr shape");
  /* a new batch for x alone: t still holds batch 3 */
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(5, 2), a) == ASG_OK, "feed x 5");
  st = asg_program_run(p);
  TU_CHECK(st != ASG_OK && err_has("batch", "'t'", "again"), "stale input: %s", asg_last_error());
  TU_CHECK(asg_program_feed_tensor(p, "t", ASG_F32, ASG_SHAPE(5, 2), b) == ASG_OK, "feed t 5");
  TU_CHECK(asg_program_run(p) == ASG_OK, "run batch 5: %s", asg_last_error());
  TU_CHECK(asg_program_fetch(p, y, out, 10 * sizeof(float)) == ASG_OK && out[9] == 10,
           "y at batch 5");
  /* binding by name: unknown names, bounds, conflicts with a feed */
  const char *nb[1] = {"nope"};
  int64_t vb[1] = {2};
  TU_CHECK(asg_program_bind(p, 1, nb, vb) != ASG_OK && err_has("nope", NULL, NULL), "bind name");
  nb[0] = "batch";
  vb[0] = 100;
  TU_CHECK(asg_program_bind(p, 1, nb, vb) != ASG_OK && err_has("batch", "100", NULL),
           "bind bound: %s", asg_last_error());
  vb[0] = 2;
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(3, 2), a) == ASG_OK, "feed x 3");
  TU_CHECK(asg_program_bind(p, 1, nb, vb) != ASG_OK && err_has("batch", "2", "3"),
           "bind conflicts with a feed: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

/* prepare, peak_memory_for, the count and byte bounds; eviction keeps the
 * variables. */
static void test_cache(void) {
  model s;
  build(&s, MLP, true, 0, 0);
  asg_compile_opts o = opts_of(2, 0);
  asg_program *p = asg_compile(s.g, 1, &s.y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) return;
  const char *names[2] = {"batch", "seq"};
  int64_t v[2] = {3, 1};
  double w0[16 * 8], w1[16 * 8];
  TU_CHECK(tu_get_var(p, "fc1.weight", w0) == 128, "fc1.weight before any run");
  TU_CHECK(asg_program_peak_memory(p) == 0 && asg_program_step_count(p) == 0, "nothing current");
  size_t peak3 = 0;
  TU_CHECK(asg_program_peak_memory_for(p, 2, names, v, &peak3) == ASG_OK && peak3 > 0,
           "peak_memory_for: %s", asg_last_error());
  TU_CHECK(asg_program_specialization_count(p) == 0, "peak_memory_for builds nothing");
  model r;
  build(&r, MLP, false, 3, 1);
  asg_program *q = asg_compile(r.g, 1, &r.y, &o);
  TU_CHECK(q && asg_program_peak_memory(q) == peak3, "peak_memory_for %zu vs static %zu", peak3,
           asg_program_peak_memory(q));
  asg_program_free(q);
  asg_graph_free(r.g);
  TU_CHECK(asg_program_prepare(p, 0, NULL, NULL) != ASG_OK && err_has("batch", NULL, NULL),
           "prepare needs every symbol used: %s", asg_last_error());
  TU_CHECK(asg_program_prepare(p, 2, names, v) == ASG_OK, "prepare: %s", asg_last_error());
  TU_CHECK(asg_program_specialization_count(p) == 1, "one prepared");
  float x[64 * 8] = {0};
  TU_CHECK(asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(3, 8), x) == ASG_OK &&
               asg_program_bind(p, 1, names + 1, v + 1) == ASG_OK,
           "feed: %s", asg_last_error());
  asg_shape ys;
  TU_CHECK(asg_program_output_shape(p, s.y, &ys) == ASG_OK && ys.dims[0] == 3 && ys.dims[1] == 4,
           "output shape before the run: %s", asg_last_error());
  TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
  TU_CHECK(asg_program_specialization_count(p) == 1, "the prepared one was used");
  TU_CHECK(asg_program_peak_memory(p) == peak3, "peak of the current one");
  for (int64_t b = 4; b <= 6; b++) {
    v[0] = b;
    TU_CHECK(asg_program_prepare(p, 2, names, v) == ASG_OK, "prepare %lld", (long long)b);
  }
  TU_CHECK(asg_program_specialization_count(p) == 2, "count bound: %d",
           asg_program_specialization_count(p));
  TU_CHECK(tu_get_var(p, "fc1.weight", w1) == 128 && memcmp(w0, w1, sizeof w0) == 0,
           "eviction keeps the variables");
  /* the last run's specialization was evicted: fetch says so, a run rebuilds it */
  float y[64 * 4];
  TU_CHECK(asg_program_fetch(p, s.y, y, 12 * sizeof(float)) != ASG_OK && err_has("run", NULL, NULL),
           "fetch after eviction: %s", asg_last_error());
  TU_CHECK(asg_program_run(p) == ASG_OK, "rerun after eviction (input kept): %s", asg_last_error());
  TU_CHECK(asg_program_fetch(p, s.y, y, 12 * sizeof(float)) == ASG_OK, "fetch: %s",
           asg_last_error());
  asg_program_free(p);
  /* a byte bound that fits one specialization */
  o = opts_of(8, 1);
  p = asg_compile(s.g, 1, &s.y, &o);
  for (int64_t b = 1; p && b <= 4; b++) {
    v[0] = b;
    TU_CHECK(asg_program_prepare(p, 2, names, v) == ASG_OK, "prepare %lld", (long long)b);
    TU_CHECK(asg_program_specialization_count(p) == 1, "byte bound keeps one: %d",
             asg_program_specialization_count(p));
  }
  asg_program_free(p);
  asg_graph_free(s.g);
}

static size_t heap_in_use(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  return mallinfo2().uordblks;
#else
  return 0;
#endif
}

/* Thousands of alternating bindings with a cache of 2: the cache, the store,
 * the heap and the device's buffers stay bounded, and results stay right. */
static void test_many_bindings(void) {
  model s;
  build(&s, MLP, true, 0, 0);
  asg_compile_opts o = opts_of(2, 0);
  asg_program *p = asg_compile(s.g, 1, &s.y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) return;
  float x[5 * 8], y[5 * 4], ref[5][5 * 4];
  for (int i = 0; i < 40; i++)
    x[i] = (float)(i % 7) * 0.25f - 0.5f;
  int nvars = asg_program_variable_count(p);
  size_t heap0 = 0, bytes_max = 0, dev_bufs0 = 0, dev_bytes0 = 0;
  bool ok = true;
  for (int it = 0; it < 3000 && ok; it++) {
    int64_t b = 1 + (it % 3) + ((it / 3) % 2) * 2; /* 1 2 3 3 4 5 ... */
    ok = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(b, 8), x) == ASG_OK &&
         asg_program_run(p) == ASG_OK &&
         asg_program_fetch(p, s.y, y, sizeof(float) * 4 * (size_t)b) == ASG_OK;
    if (it < 6) memcpy(ref[b - 1], y, sizeof(float) * 4 * (size_t)b);
    ok = ok && memcmp(y, ref[b - 1], sizeof(float) * 4 * (size_t)b) == 0;
    ok = ok && asg_program_specialization_count(p) <= 2 && asg_program_variable_count(p) == nvars;
    if (it < 100) {
      size_t sb = asg_program_specialization_bytes(p);
      bytes_max = sb > bytes_max ? sb : bytes_max;
    } else {
      ok = ok && asg_program_specialization_bytes(p) <= bytes_max;
    }
    if (it == 100) heap0 = heap_in_use();
    /* after the first pass through the 5 bindings (the cache holds 4 and 5,
     * as it does after the last iteration) */
    if (it == 5) ok = ok && asg_program_device_memory(p, &dev_bufs0, &dev_bytes0) == ASG_OK;
  }
  TU_CHECK(ok, "3000 alternating bindings: %s", asg_last_error());
  size_t dev_bufs1 = 0, dev_bytes1 = 0;
  TU_CHECK(asg_program_device_memory(p, &dev_bufs1, &dev_bytes1) == ASG_OK && dev_bufs0 > 0,
           "device memory: %s", asg_last_error());
  TU_CHECK(dev_bufs1 == dev_bufs0 && dev_bytes1 == dev_bytes0,
           "device buffers went from %zu (%zu bytes) after the first pass to %zu (%zu bytes)",
           dev_bufs0, dev_bytes0, dev_bufs1, dev_bytes1);
  size_t heap1 = heap_in_use();
  TU_CHECK(heap1 <= heap0 + (256 << 10), "heap grew from %zu to %zu bytes", heap0, heap1);
  asg_program_free(p);
  asg_graph_free(s.g);
}

/* Device buffer counts are the device's: programs sharing variables (a
 * symbolic one included) report the same, and freeing one gives back
 * exactly what it added. */
static void test_device_memory(void) {
  model r, s;
  build(&r, MLP, false, 2, 1);
  build(&s, MLP, true, 0, 0);
  asg_compile_opts o = opts_of(2, 0);
  asg_program *p = asg_compile(r.g, 1, &r.y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) return;
  size_t n0 = 0, b0 = 0, n = 0, b = 0;
  TU_CHECK(asg_program_device_memory(p, &n0, &b0) == ASG_OK, "device memory: %s", asg_last_error());
  size_t held = asg_program_persistent_memory(p) + asg_program_peak_memory(p);
  TU_CHECK(n0 >= 2 && b0 >= held, "%zu buffers, %zu bytes; the program holds %zu", n0, b0, held);
  TU_CHECK(asg_program_device_memory(NULL, &n, &b) != ASG_OK && err_has("NULL", NULL, NULL),
           "NULL program: %s", asg_last_error());
  /* a second static program on the same variables: its own arena and inputs */
  o.share_variables = p;
  asg_program *q = asg_compile(r.g, 1, &r.loss, &o);
  TU_CHECK(q && asg_program_device_memory(q, &n, &b) == ASG_OK && n > n0 && b > b0,
           "shared program: %zu buffers, %zu bytes (before: %zu, %zu): %s", n, b, n0, b0,
           asg_last_error());
  size_t pn = 0, pb = 0;
  TU_CHECK(asg_program_device_memory(p, &pn, &pb) == ASG_OK && pn == n && pb == b,
           "both report the device");
  asg_program_free(q);
  TU_CHECK(asg_program_device_memory(p, &n, &b) == ASG_OK && n == n0 && b == b0,
           "after freeing the shared program: %zu buffers, %zu bytes, were %zu, %zu", n, b, n0, b0);
  /* a symbolic program on the same variables: the shell adds nothing, its
   * specialization does, freeing it gives that back */
  asg_program *sp = asg_compile(s.g, 1, &s.y, &o);
  TU_CHECK(sp && asg_program_device_memory(sp, &n, &b) == ASG_OK && n == n0 && b == b0,
           "symbolic shell: %zu buffers, %zu bytes, were %zu, %zu: %s", n, b, n0, b0,
           asg_last_error());
  float x[3 * 8] = {0};
  TU_CHECK(sp && asg_program_feed_tensor(sp, "x", ASG_F32, ASG_SHAPE(3, 8), x) == ASG_OK &&
               asg_program_run(sp) == ASG_OK,
           "symbolic run: %s", asg_last_error());
  TU_CHECK(sp && asg_program_device_memory(sp, &n, &b) == ASG_OK && n > n0 && b > b0,
           "specialized: %zu buffers, %zu bytes", n, b);
  asg_program_free(sp);
  TU_CHECK(asg_program_device_memory(p, &n, &b) == ASG_OK && n == n0 && b == b0,
           "after freeing the symbolic program: %zu buffers, %zu bytes, were %zu, %zu", n, b, n0,
           b0);
  asg_program_free(p);
  asg_graph_free(s.g);
  asg_graph_free(r.g);
}

/* A graph without symbols is still a static program: no cache, the new
 * calls accept only an empty binding. */
static void test_static_unchanged(void) {
  model r;
  build(&r, MLP, false, 2, 1);
  asg_compile_opts o = opts_of(0, 0);
  asg_program *q = asg_compile(r.g, 1, &r.y, &o);
  asg_shape ys;
  size_t bytes = 0;
  TU_CHECK(q && asg_program_specialization_count(q) == 0, "static: no cache");
  TU_CHECK(asg_program_output_shape(q, r.y, &ys) == ASG_OK && ys.dims[0] == 2, "static shape");
  TU_CHECK(asg_program_peak_memory_for(q, 0, NULL, NULL, &bytes) == ASG_OK &&
               bytes == asg_program_peak_memory(q),
           "static peak_memory_for");
  const char *n[1] = {"batch"};
  int64_t v[1] = {2};
  TU_CHECK(asg_program_bind(q, 1, n, v) != ASG_OK, "static: nothing to bind");
  float x[16] = {0};
  TU_CHECK(asg_program_feed_tensor(q, "x", ASG_F32, ASG_SHAPE(3, 8), x) != ASG_OK,
           "static: other shapes refused");
  asg_program_free(q);
  asg_graph_free(r.g);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  exact = strcmp(backend, "cpu") == 0;
  test_static_unchanged();
  test_forward(MLP, "mlp");
  test_forward(CONV, "conv");
  test_forward(TRANSFORMER, "transformer");
  test_train();
  test_binding_errors();
  test_cache();
  test_many_bindings();
  test_device_memory();
  return tu_finish();
}
