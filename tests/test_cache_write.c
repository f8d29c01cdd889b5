/* asg_cache_write (a KV cache): rows of a variable written in place at a
 * position read at run time, against a host model of the cache: a
 * prefill-then-decode sequence through one program symbolic in T (both
 * specializations write the same storage), readers of the result seeing the
 * new rows, out-of-range positions failing the run naming the value,
 * unchecked programs skipping the rows outside, programs sharing variables
 * writing one storage, a k and a v cache written one after the other
 * (test_kv_pair), and the build / compile refusals.
 * Usage: test_cache_write [cpu|cuda|vulkan] (default cpu). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";

enum { B = 2, H = 3, TMAX = 8, D = 4 };
#define CACHE_N (B * H * TMAX * D)

static asg_compile_opts opts(bool unchecked) {
  asg_compile_opts o = {0};
  o.backend = backend;
  o.unchecked_indices = unchecked;
  return o;
}

/* Host model: cache[b, h, pos + t, d] = v[b, h, t, d] for rows in [0, TMAX). */
static void model_write(double *cache, const double *v, int64_t T, int64_t pos) {
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int64_t t = 0; t < T; t++) {
        int64_t r = pos + t;
        if (r < 0 || r >= TMAX) continue;
        for (int d = 0; d < D; d++)
          cache[((b * H + h) * TMAX + r) * D + d] = v[((b * H + h) * T + t) * D + d];
      }
}

static bool same(const double *a, const double *b, long n) {
  for (long i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

/* A graph with cache [B, H, TMAX, D] (f32, zeros), value [B, H, T, D] with
 * T symbolic (or tconst), pos i64 [1]; y = cache_write along axis -2 and
 * y2 = 2 * y (a reader of the result). */
typedef struct cw_graph {
  asg_graph *g;
  asg_tensor *cache, *v, *pos, *y, *y2;
} cw_graph;

static void build(cw_graph *c, int64_t tconst) {
  c->g = asg_graph_new();
  int64_t T = tconst ? tconst : asg_dim(c->g, "T", TMAX);
  c->cache =
      asg_variable(c->g, "cache", ASG_F32, ASG_SHAPE(B, H, TMAX, D), asg_init_constant(-1.0));
  c->v = asg_input(c->g, "v", ASG_F32, ASG_SHAPE(B, H, T, D));
  c->pos = asg_input(c->g, "pos", ASG_I64, ASG_SHAPE(1));
  c->y = asg_cache_write(c->cache, c->v, c->pos, -2);
  c->y2 = asg_mul_scalar(c->y, 2.0);
}

/* Feeds v (T rows of random values, rounded to f32 so the model holds
 * what the program gets) and pos, runs; returns the run status. */
static asg_status step(asg_program *p, int64_t T, int64_t pos, double *v, unsigned seed) {
  const long n = B * H * T * D;
  float *buf = malloc(sizeof(float) * (size_t)n);
  tu_rand(seed, v, n, -3, 3);
  for (long i = 0; i < n; i++) {
    buf[i] = (float)v[i];
    v[i] = buf[i];
  }
  asg_status st = asg_program_feed_tensor(p, "v", ASG_F32, ASG_SHAPE(B, H, T, D), buf);
  free(buf);
  if (!st) st = asg_program_feed(p, "pos", &pos, sizeof pos);
  if (!st) st = asg_program_run(p);
  return st;
}

/* The variable, the result and 2 * result all equal the model. */
static void check_state(asg_program *p, cw_graph *c, const double *model, const char *what) {
  double got[CACHE_N];
  TU_CHECK(tu_get_var(p, "cache", got) == CACHE_N && same(got, model, CACHE_N),
           "%s: variable differs from the model", what);
  TU_CHECK(tu_fetch(p, c->y, got) == ASG_OK && same(got, model, CACHE_N),
           "%s: result differs from the model", what);
  bool ok = tu_fetch(p, c->y2, got) == ASG_OK;
  for (long i = 0; i < CACHE_N && ok; i++)
    ok = got[i] == 2 * model[i];
  TU_CHECK(ok, "%s: reader of the result does not see the written rows", what);
}

/* Prefill (T = 5 at 0) then decode steps (T = 1 at 5, 6, 7) through one
 * symbolic program: two specializations writing one cache. */
static void test_prefill_decode(void) {
  cw_graph c;
  build(&c, 0);
  asg_compile_opts o = opts(false);
  asg_tensor *outs[2] = {c.y, c.y2};
  asg_program *p = asg_compile(c.g, 2, outs, &o);
  TU_CHECK(p != NULL, "compile symbolic: %s", asg_last_error());
  if (!p) {
    asg_graph_free(c.g);
    return;
  }
  double model[CACHE_N], v[B * H * TMAX * D];
  for (long i = 0; i < CACHE_N; i++)
    model[i] = -1;
  const int64_t seq[][2] = {{5, 0}, {1, 5}, {1, 6}, {2, 6}, {1, 7}, {3, 1}};
  for (int k = 0; k < 6; k++) {
    char what[64];
    snprintf(what, sizeof what, "T=%lld pos=%lld", (long long)seq[k][0], (long long)seq[k][1]);
    asg_status st = step(p, seq[k][0], seq[k][1], v, 100u + (unsigned)k);
    TU_CHECK(st == ASG_OK, "%s: run: %s", what, asg_last_error());
    model_write(model, v, seq[k][0], seq[k][1]);
    check_state(p, &c, model, what);
  }
  TU_CHECK(asg_program_specialization_count(p) == 4, "specializations: %d, want 4 (T = 5, 1, 2, 3)",
           asg_program_specialization_count(p));
  /* out of range: pos + T > TMAX, pos < 0; the run fails naming op and value
   * and the cache is left as it was */
  const int64_t bad[][2] = {{1, 8}, {1, -1}, {5, 4}, {1, INT64_MAX}};
  for (int k = 0; k < 4; k++) {
    asg_status st = step(p, bad[k][0], bad[k][1], v, 200u + (unsigned)k);
    char val[32];
    snprintf(val, sizeof val, "position %lld", (long long)bad[k][1]);
    TU_CHECK(st != ASG_OK && tu_contains(asg_last_error(), "cache_write") &&
                 tu_contains(asg_last_error(), val),
             "T=%lld pos=%lld: status %d, message '%s'", (long long)bad[k][0], (long long)bad[k][1],
             st, asg_last_error());
    double got[CACHE_N];
    TU_CHECK(tu_get_var(p, "cache", got) == CACHE_N && same(got, model, CACHE_N),
             "cache changed by a failed run (pos %lld)", (long long)bad[k][1]);
  }
  TU_CHECK(step(p, 1, 0, v, 300) == ASG_OK, "run after errors: %s", asg_last_error());
  model_write(model, v, 1, 0);
  check_state(p, &c, model, "after errors");
  asg_program_free(p);
  asg_graph_free(c.g);
}

/* Unchecked: rows outside [0, TMAX) are skipped, the others written. */
static void test_unchecked(void) {
  cw_graph c;
  build(&c, 0);
  asg_compile_opts o = opts(true);
  asg_tensor *outs[2] = {c.y, c.y2};
  asg_program *p = asg_compile(c.g, 2, outs, &o);
  TU_CHECK(p != NULL, "compile unchecked: %s", asg_last_error());
  if (!p) {
    asg_graph_free(c.g);
    return;
  }
  double model[CACHE_N], v[B * H * TMAX * D];
  for (long i = 0; i < CACHE_N; i++)
    model[i] = -1;
  const int64_t seq[][2] = {{5, 6}, {5, -2}, {1, 8}, {1, -1}, {8, -7}, {3, INT64_MIN}, {2, 7}};
  for (int k = 0; k < 7; k++) {
    char what[64];
    snprintf(what, sizeof what, "unchecked T=%lld pos=%lld", (long long)seq[k][0],
             (long long)seq[k][1]);
    TU_CHECK(step(p, seq[k][0], seq[k][1], v, 400u + (unsigned)k) == ASG_OK, "%s: %s", what,
             asg_last_error());
    model_write(model, v, seq[k][0], seq[k][1]);
    check_state(p, &c, model, what);
  }
  asg_program_free(p);
  asg_graph_free(c.g);
}

/* One graph, two programs with different outputs (prefill T = 3 and decode
 * T = 1 writes of one cache), the second sharing the first's variables:
 * both write the same storage. Also an i32 position of shape []. */
static void test_share_variables(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *cache = asg_variable(g, "cache", ASG_F32, ASG_SHAPE(B, H, TMAX, D), asg_init_zeros());
  asg_tensor *vp = asg_input(g, "vp", ASG_F32, ASG_SHAPE(B, H, 3, D));
  asg_tensor *vd = asg_input(g, "vd", ASG_F32, ASG_SHAPE(B, H, 1, D));
  asg_tensor *pp = asg_input(g, "pp", ASG_I32, ASG_SCALAR);
  asg_tensor *pd = asg_input(g, "pd", ASG_I32, ASG_SHAPE(1));
  asg_tensor *yp = asg_cache_write(cache, vp, pp, 2);
  asg_tensor *yd = asg_sum(asg_cache_write(cache, vd, pd, 2), ASG_ALL_AXES, false);
  asg_compile_opts o = opts(false);
  asg_program *pre = asg_compile(g, 1, &yp, &o);
  TU_CHECK(pre != NULL, "compile prefill: %s", asg_last_error());
  o.share_variables = pre;
  asg_program *dec = pre ? asg_compile(g, 1, &yd, &o) : NULL;
  TU_CHECK(dec != NULL, "compile decode: %s", asg_last_error());
  /* the result is the variable's storage: no activation buffer (or copy) */
  TU_CHECK(pre && asg_program_peak_memory(pre) == 0,
           "prefill program plans %zu activation bytes for a cache of %zu",
           pre ? asg_program_peak_memory(pre) : 0, sizeof(float) * CACHE_N);
  if (pre && dec) {
    double model[CACHE_N] = {0}, v[B * H * 3 * D];
    tu_rand(7, v, B * H * 3 * D, -2, 2);
    int32_t pos = 2;
    TU_CHECK(tu_feed(pre, "vp", ASG_F32, v, B * H * 3 * D) == ASG_OK &&
                 asg_program_feed(pre, "pp", &pos, sizeof pos) == ASG_OK &&
                 asg_program_run(pre) == ASG_OK,
             "prefill run: %s", asg_last_error());
    for (long i = 0; i < B * H * 3 * D; i++)
      v[i] = (float)v[i];
    model_write(model, v, 3, 2);
    tu_rand(8, v, B * H * D, -2, 2);
    pos = 5;
    TU_CHECK(tu_feed(dec, "vd", ASG_F32, v, B * H * D) == ASG_OK &&
                 asg_program_feed(dec, "pd", &pos, sizeof pos) == ASG_OK &&
                 asg_program_run(dec) == ASG_OK,
             "decode run: %s", asg_last_error());
    for (long i = 0; i < B * H * D; i++)
      v[i] = (float)v[i];
    model_write(model, v, 1, 5);
    double got[CACHE_N], sum = 0, want = 0;
    for (long i = 0; i < CACHE_N; i++)
      want += model[i];
    TU_CHECK(tu_fetch(dec, yd, &sum) == ASG_OK && fabs(sum - want) <= 1e-4 * (1 + fabs(want)),
             "decode sees prefill rows: sum %g, want %g", sum, want);
    TU_CHECK(tu_get_var(pre, "cache", got) == CACHE_N && same(got, model, CACHE_N),
             "shared cache differs from the model");
  }
  asg_program_free(dec);
  asg_program_free(pre);
  asg_graph_free(g);
}

/* Compiling outs (n) of a fresh graph fails with a message containing want. */
static void expect_compile_error(asg_graph *g, int n, asg_tensor **outs, const char *want,
                                 const char *what) {
  asg_compile_opts o = opts(false);
  asg_program *p = asg_compile(g, n, outs, &o);
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), want), "%s: compiled=%d, message '%s'", what,
           p != NULL, asg_last_error());
  asg_program_free(p);
}

static void test_refusals(void) {
  /* build-time */
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 8));
    asg_tensor *v = asg_input(g, "v", ASG_F32, ASG_SHAPE(2, 1));
    asg_tensor *pos = asg_input(g, "pos", ASG_I64, ASG_SHAPE(1));
    TU_CHECK(asg_cache_write(x, v, pos, 1) == NULL &&
                 tu_contains(asg_graph_error(g), "not a variable"),
             "cache not a variable: %s", asg_graph_error(g));
    asg_graph_free(g);
  }
  const struct {
    asg_shape vs, ps;
    asg_dtype vdt, pdt;
    int axis;
    const char *want;
  } bad[] = {
      {ASG_SHAPE(2, 9), ASG_SHAPE(1), ASG_F32, ASG_I64, 1, "more rows"},
      {ASG_SHAPE(3, 1), ASG_SHAPE(1), ASG_F32, ASG_I64, 1, "outside axis"},
      {ASG_SHAPE(2, 1), ASG_SHAPE(2), ASG_F32, ASG_I64, 1, "one element"},
      {ASG_SHAPE(2, 1), ASG_SHAPE(1), ASG_F32, ASG_F32, 1, "i32 or i64"},
      {ASG_SHAPE(2, 1), ASG_SHAPE(1), ASG_F64, ASG_I64, 1, "f64"},
      {ASG_SHAPE(2, 1), ASG_SHAPE(1), ASG_F32, ASG_I64, 2, "axis 2"},
  };
  for (int k = 0; k < 6; k++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *c = asg_variable(g, "c", ASG_F32, ASG_SHAPE(2, 8), asg_init_zeros());
    asg_tensor *v = asg_input(g, "v", bad[k].vdt, bad[k].vs);
    asg_tensor *pos = asg_input(g, "pos", bad[k].pdt, bad[k].ps);
    TU_CHECK(asg_cache_write(c, v, pos, bad[k].axis) == NULL &&
                 tu_contains(asg_graph_error(g), bad[k].want),
             "bad case %d: error '%s', want '%s'", k, asg_graph_error(g), bad[k].want);
    asg_graph_free(g);
  }
  /* compile-time */
  for (int k = 0; k < 5; k++) {
    asg_graph *g = asg_graph_new();
    int64_t T = k == 4 ? asg_dim(g, "T", 8) : 1;
    asg_tensor *c = asg_variable(g, "kv", ASG_F32, ASG_SHAPE(2, 8), asg_init_zeros());
    asg_tensor *v = asg_input(g, "v", ASG_F32, ASG_SHAPE(2, T));
    asg_tensor *pos = asg_input(g, "pos", ASG_I64, ASG_SHAPE(1));
    asg_tensor *early = asg_add_scalar(c, 1.0); /* made before the write: reads the old rows */
    asg_tensor *y = asg_cache_write(c, v, pos, 1);
    asg_tensor *outs[3] = {y, NULL, NULL};
    if (k == 0) {
      outs[1] = asg_assign(c, asg_mul_scalar(c, 2.0));
      expect_compile_error(g, 2, outs, "both assigned and written by cache_write", "assign+write");
    } else if (k == 1) {
      outs[1] = asg_cache_write(c, v, pos, 1);
      expect_compile_error(g, 2, outs, "two cache_write", "written twice");
    } else if (k == 2 || k == 4) { /* a raw read made after the write; symbolic: at compile */
      outs[1] = asg_add_scalar(asg_reshape(c, ASG_SHAPE(16)), 1.0);
      expect_compile_error(g, 2, outs, "reads variable 'kv' after cache_write", "raw read after");
    } else { /* raw read after the write by an assign of another variable */
      asg_tensor *o = asg_variable(g, "other", ASG_F32, ASG_SHAPE(2, 8), asg_init_zeros());
      outs[1] = asg_assign(o, c);
      expect_compile_error(g, 2, outs, "reads variable 'kv' after cache_write", "assign reads");
    }
    (void)early;
    asg_graph_free(g);
  }
  /* a read made before the write is fine and sees the old rows; the
   * gradient through cache_write is zero (not differentiable) */
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *c = asg_variable(g, "kv", ASG_F32, ASG_SHAPE(2, 4), asg_init_constant(3.0));
    asg_tensor *v = asg_input(g, "v", ASG_F32, ASG_SHAPE(2, 1));
    asg_tensor *pos = asg_input(g, "pos", ASG_I32, ASG_SHAPE(1));
    asg_tensor *early = asg_add_scalar(c, 1.0);
    asg_tensor *y = asg_cache_write(c, v, pos, 1);
    asg_tensor *gv = NULL;
    TU_CHECK(asg_grad(asg_sum(asg_mul(y, y), ASG_ALL_AXES, false), 1, &v, &gv) == ASG_OK && gv,
             "grad: %s", asg_graph_error(g));
    asg_tensor *outs[3] = {early, y, gv};
    asg_compile_opts o = opts(false);
    asg_program *p = gv ? asg_compile(g, 3, outs, &o) : NULL;
    TU_CHECK(p != NULL, "read before the write: %s", asg_last_error());
    double vv[2] = {7, 8}, e[8], yy[8], gg[2] = {1, 1};
    int32_t pp = 3;
    if (p && tu_feed(p, "v", ASG_F32, vv, 2) == ASG_OK &&
        asg_program_feed(p, "pos", &pp, sizeof pp) == ASG_OK && asg_program_run(p) == ASG_OK &&
        tu_fetch(p, early, e) == ASG_OK && tu_fetch(p, y, yy) == ASG_OK &&
        tu_fetch(p, gv, gg) == ASG_OK) {
      const double we[8] = {4, 4, 4, 4, 4, 4, 4, 4}, wy[8] = {3, 3, 3, 7, 3, 3, 3, 8};
      TU_CHECK(same(e, we, 8), "early read saw the new rows: %g %g", e[3], e[7]);
      TU_CHECK(same(yy, wy, 8), "result: %g %g", yy[3], yy[7]);
      TU_CHECK(gg[0] == 0 && gg[1] == 0, "gradient through cache_write: %g %g", gg[0], gg[1]);
    } else {
      TU_CHECK(false, "run: %s", asg_last_error());
    }
    asg_program_free(p);
    asg_graph_free(g);
  }
}

/* A decode step's k and v caches: two cache writes made one after the
 * other (CUDA launches them as one kernel, cuda_exec.c), each with its own
 * position (equal, then different), against the model; an out-of-range
 * position fails the run naming it (the first in schedule order when both
 * are) and its cache is not written. */
static void test_kv_pair(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *ck = asg_variable(g, "k", ASG_F32, ASG_SHAPE(B, H, TMAX, D), asg_init_constant(-1.0));
  asg_tensor *cv = asg_variable(g, "v", ASG_F32, ASG_SHAPE(B, H, TMAX, D), asg_init_constant(-1.0));
  asg_tensor *vk = asg_input(g, "vk", ASG_F32, ASG_SHAPE(B, H, 1, D));
  asg_tensor *vv = asg_input(g, "vv", ASG_F32, ASG_SHAPE(B, H, 1, D));
  asg_tensor *pk = asg_input(g, "pk", ASG_I32, ASG_SHAPE(1));
  asg_tensor *pv = asg_input(g, "pv", ASG_I32, ASG_SHAPE(1));
  asg_tensor *outs[2] = {asg_cache_write(ck, vk, pk, 2), asg_cache_write(cv, vv, pv, 2)};
  asg_compile_opts o = opts(false);
  asg_program *p = asg_compile(g, 2, outs, &o);
  TU_CHECK(p != NULL, "kv pair: compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  double mk[CACHE_N], mv[CACHE_N], a[B * H * D], b[B * H * D], got[CACHE_N];
  float fa[B * H * D], fb[B * H * D];
  for (long i = 0; i < CACHE_N; i++)
    mk[i] = mv[i] = -1;
  /* the bad ones: v's outside (k's written, as every backend runs them in
   * order), then both (neither written, the first named) */
  const int32_t pos[][2] = {{0, 0}, {1, 1}, {2, 5}, {7, 3}, {4, -1}, {8, 9}};
  for (int k = 0; k < 6; k++) {
    tu_rand(400u + (unsigned)k, a, B * H * D, -3, 3),
        tu_rand(500u + (unsigned)k, b, B * H * D, -3, 3);
    for (int i = 0; i < B * H * D; i++)
      fa[i] = (float)a[i], a[i] = fa[i], fb[i] = (float)b[i], b[i] = fb[i];
    asg_status st = asg_program_feed(p, "vk", fa, sizeof fa);
    if (!st) st = asg_program_feed(p, "vv", fb, sizeof fb);
    if (!st) st = asg_program_feed(p, "pk", &pos[k][0], sizeof pos[k][0]);
    if (!st) st = asg_program_feed(p, "pv", &pos[k][1], sizeof pos[k][1]);
    if (!st) st = asg_program_run(p);
    const bool bad = k >= 4;
    char val[32];
    snprintf(val, sizeof val, "position %d", k == 4 ? -1 : 8);
    if (k == 4) model_write(mk, a, 1, pos[k][0]);
    if (bad)
      TU_CHECK(st != ASG_OK && tu_contains(asg_last_error(), "cache_write") &&
                   tu_contains(asg_last_error(), val),
               "kv pair pos (%d, %d): status %d, message '%s'", pos[k][0], pos[k][1], st,
               asg_last_error());
    else {
      TU_CHECK(st == ASG_OK, "kv pair pos (%d, %d): run: %s", pos[k][0], pos[k][1],
               asg_last_error());
      model_write(mk, a, 1, pos[k][0]);
      model_write(mv, b, 1, pos[k][1]);
    }
    TU_CHECK(tu_get_var(p, "k", got) == CACHE_N && same(got, mk, CACHE_N),
             "kv pair pos (%d, %d): k cache differs from the model", pos[k][0], pos[k][1]);
    TU_CHECK(tu_get_var(p, "v", got) == CACHE_N && same(got, mv, CACHE_N),
             "kv pair pos (%d, %d): v cache differs from the model", pos[k][0], pos[k][1]);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  test_prefill_decode();
  test_unchecked();
  test_share_variables();
  test_kv_pair();
  test_refusals();
  return tu_finish();
}
