/* sort, argsort, topk and cumsum through the public API:
 *   - hand rows with ties, NaN, +-inf and -0/+0 against PyTorch's values
 *     (literals below, from the snippet beside them);
 *   - random tensors (many ties, NaNs, every axis, k from 1 to n, f32/f64/
 *     i32/i64, rows of 1 to 70000 entries: the GPU kernels' shared-memory
 *     sort, their selection path and their long-row fallback) against a
 *     host reference written here (qsort of (key, index) pairs);
 *   - cumsum (inclusive/exclusive, forward/reverse) against double sums,
 *     and the accuracy of a long f32 cumsum;
 *   - central-difference gradients in float64 (sort, topk values, cumsum);
 *   - a symbolic batch; build errors.
 * Usage: test_sort [cpu|cuda|vulkan] (default cpu). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";

/* Runs the outputs of g on the backend with x fed as input "x"; fetches
 * each into got[k] (numel doubles). Returns 0 on success. */
static int run_outs(asg_graph *g, int n, asg_tensor *const *outs, asg_dtype dt, const double *x,
                    long nx, double **got) {
  for (int k = 0; k < n; k++)
    if (!outs[k]) {
      printf("build: %s\n", asg_graph_error(g));
      return -1;
    }
  asg_compile_opts o = {0};
  o.backend = backend;
  asg_program *p = asg_compile(g, n, outs, &o);
  int rc = p ? 0 : -1;
  if (!rc && x) rc = tu_feed(p, "x", dt, x, nx);
  if (!rc) rc = asg_program_run(p);
  for (int k = 0; k < n && !rc; k++)
    rc = tu_fetch(p, outs[k], got[k]);
  if (rc) printf("run on %s: %s\n", backend, asg_last_error());
  asg_program_free(p);
  return rc;
}

static bool same(const double *a, const double *b, long n) {
  for (long i = 0; i < n; i++) {
    if (isnan(a[i]) && isnan(b[i])) continue;
    if (a[i] != b[i] || signbit(a[i]) != signbit(b[i])) return false;
  }
  return true;
}

/* ------------------------------------------------------------ hand cases */

/* PyTorch 2.x, float64:
 *   x = torch.tensor([[3, 1, nan, 2, 1, 0.0, -0.0, inf, -inf, 2],
 *                     [5, 5, 5, -1, nan, nan, 0, 7, -2, 5]], dtype=torch.float64)
 *   torch.sort(x, dim=1, descending=d, stable=True)
 * topk = the first k of those (torch.topk may order ties otherwise). */
static const double HX[20] = {3, 1, NAN, 2,  1,   0.0, -0.0, INFINITY, -INFINITY, 2,
                              5, 5, 5,   -1, NAN, NAN, 0,    7,        -2,        5};
static const double ASC_V[20] = {-INFINITY, 0.0, -0.0, 1, 1, 2, 2, 3, INFINITY, NAN,
                                 -2,        -1,  0,    5, 5, 5, 5, 7, NAN,      NAN};
static const double ASC_I[20] = {8, 5, 6, 1, 4, 3, 9, 0, 7, 2, 8, 3, 6, 0, 1, 2, 9, 7, 4, 5};
static const double DESC_V[20] = {NAN, INFINITY, 3, 2, 2, 1, 1, 0.0, -0.0, -INFINITY,
                                  NAN, NAN,      7, 5, 5, 5, 5, 0,   -1,   -2};
static const double DESC_I[20] = {2, 7, 0, 3, 9, 1, 4, 5, 6, 8, 4, 5, 7, 0, 1, 2, 9, 6, 3, 8};

static void test_hand(asg_dtype dt) {
  for (int desc = 0; desc < 2; desc++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(2, 10));
    asg_tensor *tv = NULL, *ti = NULL, *bv = NULL;
    asg_tensor *outs[5] = {asg_sort(x, -1, desc), asg_argsort(x, 1, desc), NULL, NULL, NULL};
    asg_status st = asg_topk(x, 4, 1, desc, &tv, &ti);
    TU_CHECK(st == ASG_OK, "topk: %s", asg_graph_error(g));
    asg_topk(x, 3, -1, desc, &bv, NULL); /* values only */
    outs[2] = tv, outs[3] = ti, outs[4] = bv;
    double v[20], i[20], kv[8], ki[8], k3[6];
    double *got[5] = {v, i, kv, ki, k3};
    if (run_outs(g, 5, outs, dt, HX, 20, got) == 0) {
      const double *wv = desc ? DESC_V : ASC_V, *wi = desc ? DESC_I : ASC_I;
      double wkv[8], wki[8], wk3[6];
      for (int r = 0; r < 2; r++) {
        memcpy(wkv + 4 * r, wv + 10 * r, 4 * sizeof(double));
        memcpy(wki + 4 * r, wi + 10 * r, 4 * sizeof(double));
        memcpy(wk3 + 3 * r, wv + 10 * r, 3 * sizeof(double));
      }
      const char *nm = asg_dtype_name(dt), *dn = desc ? "descending" : "ascending";
      TU_CHECK(same(v, wv, 20), "%s sort %s: values", nm, dn);
      TU_CHECK(same(i, wi, 20), "%s argsort %s: indices", nm, dn);
      TU_CHECK(same(kv, wkv, 8) && same(ki, wki, 8), "%s topk 4 %s", nm,
               desc ? "largest" : "smallest");
      TU_CHECK(same(k3, wk3, 6), "%s topk 3 values only", nm);
      TU_CHECK(asg_tensor_dtype(ti) == ASG_I64 && asg_tensor_dtype(outs[1]) == ASG_I64,
               "indices are i64");
    }
    asg_graph_free(g);
  }
}

/* PyTorch: y = [[[4,1],[2,2],[9,-3]], [[0,5],[0,5],[-1,6]]]
 *   torch.sort(y, dim=1, stable=True), torch.cumsum(y, dim=1) */
static void test_axis_middle(asg_dtype dt) {
  const double y[12] = {4, 1, 2, 2, 9, -3, 0, 5, 0, 5, -1, 6};
  const double sv[12] = {2, -3, 4, 1, 9, 2, -1, 5, 0, 5, 0, 6};
  const double si[12] = {1, 2, 0, 0, 2, 1, 2, 0, 0, 1, 1, 2};
  const double cs[12] = {4, 1, 6, 3, 15, 0, 0, 5, 0, 10, -1, 16};
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(2, 3, 2));
  asg_tensor *outs[3] = {asg_sort(x, 1, false), asg_argsort(x, -2, false), asg_cumsum(x, 1, 0, 0)};
  double a[12], b[12], c[12];
  double *got[3] = {a, b, c};
  if (run_outs(g, 3, outs, dt, y, 12, got) == 0) {
    TU_CHECK(same(a, sv, 12), "%s sort along the middle axis", asg_dtype_name(dt));
    TU_CHECK(same(b, si, 12), "%s argsort along the middle axis", asg_dtype_name(dt));
    TU_CHECK(same(c, cs, 12), "%s cumsum along the middle axis", asg_dtype_name(dt));
  }
  asg_graph_free(g);
}

/* ------------------------------------------------------ random vs reference */

typedef struct kv {
  double v;
  long i;
} kv;
static int g_desc;
/* NaN above everything, equal values by index (both directions). */
static int kv_cmp(const void *pa, const void *pb) {
  const kv *a = pa, *b = pb;
  const bool na = isnan(a->v), nb = isnan(b->v);
  int c = na || nb ? (na && nb ? 0 : na ? 1 : -1) : (a->v < b->v ? -1 : a->v > b->v ? 1 : 0);
  if (g_desc) c = -c;
  return c ? c : (a->i < b->i ? -1 : 1);
}

/* Reference argsort/values of x [outer, n, inner] (first k) in idx, val. */
static void ref_sort(const double *x, long outer, long n, long inner, long k, bool desc,
                     double *idx, double *val) {
  kv *row = malloc(sizeof(kv) * (size_t)n);
  g_desc = desc;
  for (long o = 0; o < outer; o++)
    for (long i = 0; i < inner; i++) {
      for (long e = 0; e < n; e++)
        row[e] = (kv){x[(o * n + e) * inner + i], e};
      qsort(row, (size_t)n, sizeof *row, kv_cmp);
      for (long e = 0; e < k; e++) {
        idx[(o * k + e) * inner + i] = (double)row[e].i;
        val[(o * k + e) * inner + i] = row[e].v;
      }
    }
  free(row);
}

/* One random case: x [outer, n, inner] of dt (values in a range of `span`
 * integers when ties, else continuous; NaN at every `nan_every`-th entry of
 * float tensors), sorted along axis 1, topk k. */
static void random_case(asg_dtype dt, long outer, long n, long inner, long k, bool desc, bool ties,
                        long nan_every, unsigned long long seed) {
  const long nx = outer * n * inner, ny = outer * k * inner;
  double *x = malloc(sizeof(double) * (size_t)nx);
  tu_rand(seed, x, nx, -50, 50);
  const bool fl = dt == ASG_F32 || dt == ASG_F64;
  for (long i = 0; i < nx; i++) {
    if (ties || !fl) x[i] = floor(ties ? x[i] / 25 : x[i] * 1000);
    if (dt == ASG_F32) x[i] = (float)x[i];
    if (fl && nan_every && i % nan_every == 3) x[i] = NAN;
  }
  double *wi = malloc(sizeof(double) * (size_t)ny), *wv = malloc(sizeof(double) * (size_t)ny);
  double *gi = malloc(sizeof(double) * (size_t)ny), *gv = malloc(sizeof(double) * (size_t)ny);
  ref_sort(x, outer, n, inner, k, desc, wi, wv);
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = asg_input(g, "x", dt, ASG_SHAPE(outer, n, inner)), *v = NULL, *ix = NULL;
  if (k == n) {
    v = asg_sort(xt, 1, desc);
    ix = asg_argsort(xt, 1, desc);
  } else {
    asg_topk(xt, k, 1, desc, &v, &ix);
  }
  asg_tensor *outs[2] = {v, ix};
  double *got[2] = {gv, gi};
  if (run_outs(g, 2, outs, dt, x, nx, got) == 0)
    TU_CHECK(same(gi, wi, ny) && same(gv, wv, ny), "%s [%ld,%ld,%ld] %s k=%ld%s%s: %s",
             asg_dtype_name(dt), outer, n, inner, desc ? "desc" : "asc", k, ties ? " ties" : "",
             nan_every ? " NaN" : "", same(gi, wi, ny) ? "values differ" : "indices differ");
  asg_graph_free(g);
  free(x), free(wi), free(wv), free(gi), free(gv);
}

static void test_random(void) {
  const asg_dtype dts[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  unsigned long long seed = 100;
  for (int d = 0; d < 4; d++)
    for (int desc = 0; desc < 2; desc++) {
      random_case(dts[d], 3, 37, 1, 37, desc, false, 0, seed++);
      random_case(dts[d], 2, 33, 3, 5, desc, true, 7, seed++);
      random_case(dts[d], 1, 1, 4, 1, desc, false, 0, seed++);
      random_case(dts[d], 2, 1000, 1, 1000, desc, true, 11, seed++);
      random_case(dts[d], 1, 2048, 2, 7, desc, false, 0, seed++);
    }
  /* GPU paths: rows past the shared-memory sort (2049 .. 70000 entries),
   * top-k small (selection) and large, heavy ties, NaNs */
  random_case(ASG_F32, 2, 5000, 1, 5000, true, false, 0, seed++);
  random_case(ASG_F32, 3, 50257, 1, 50, true, false, 0, seed++);
  random_case(ASG_F32, 1, 60000, 1, 3000, false, true, 0, seed++);
  random_case(ASG_F64, 2, 4099, 2, 20, true, true, 13, seed++);
  random_case(ASG_F32, 1, 9000, 1, 9000, false, true, 5, seed++);
  random_case(ASG_I64, 2, 3000, 1, 1, true, true, 0, seed++);
}

/* ---------------------------------------------------------------- cumsum */

static void test_cumsum(asg_dtype dt) {
  const long outer = 3, n = 300, inner = 2, nx = outer * n * inner;
  double *x = malloc(sizeof(double) * (size_t)nx), *want = malloc(sizeof(double) * (size_t)nx);
  double *got = malloc(sizeof(double) * (size_t)nx);
  tu_rand(7, x, nx, -3, 3);
  const bool fl = dt == ASG_F32 || dt == ASG_F64;
  for (long i = 0; i < nx; i++)
    x[i] = fl ? (dt == ASG_F32 ? (float)x[i] : x[i]) : floor(x[i] * 100);
  for (int excl = 0; excl < 2; excl++)
    for (int rev = 0; rev < 2; rev++) {
      for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
          double acc = 0;
          for (long e0 = 0; e0 < n; e0++) {
            const long e = rev ? n - 1 - e0 : e0, at = (o * n + e) * inner + i;
            if (!excl) acc += x[at];
            want[at] = dt == ASG_F32 ? (float)acc : acc;
            if (excl) acc += x[at];
          }
        }
      asg_graph *g = asg_graph_new();
      asg_tensor *y = asg_cumsum(asg_input(g, "x", dt, ASG_SHAPE(outer, n, inner)), 1, excl, rev);
      if (run_outs(g, 1, &y, dt, x, nx, &got) == 0) {
        char what[96];
        snprintf(what, sizeof what, "cumsum %s%s%s", asg_dtype_name(dt), excl ? " exclusive" : "",
                 rev ? " reverse" : "");
        /* the CPU sums in double, so f32 is within an ulp of the partial
         * sums' size (< 1000); GPU sums in another order: a few ulps more */
        const double tol = dt == ASG_F32 ? 1e-4 : dt == ASG_F64 ? 1e-12 : 0;
        TU_CHECK(tu_close(what, got, want, nx, tol, 0), "%s", what);
      }
      asg_graph_free(g);
    }
  free(x), free(want), free(got);
}

/* 10^6 f32 copies of 0.1: a float accumulator drifts by ~1% (the sum grows
 * past where 0.1 is many ulps); a careful sum stays within 1e-5. */
static void test_cumsum_accuracy(void) {
  const long n = 1000000;
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_cumsum(asg_fill(g, ASG_F32, ASG_SHAPE(n), 0.1), 0, false, false);
  double *got = malloc(sizeof(double) * (size_t)n);
  if (run_outs(g, 1, &y, ASG_F32, NULL, 0, &got) == 0) {
    const double want = (double)n * (double)0.1f;
    TU_CHECK(fabs(got[n - 1] - want) <= 1e-5 * want, "f32 cumsum of 1e6 x 0.1: %.9g, want %.9g",
             got[n - 1], want);
    const double mid = 500000 * (double)0.1f;
    TU_CHECK(fabs(got[499999] - mid) <= 1e-5 * mid, "f32 cumsum at 5e5: %.9g, want %.9g",
             got[499999], mid);
  }
  free(got);
  asg_graph_free(g);
}

/* ------------------------------------------------------------- gradients */

typedef struct gcase {
  int kind, axis, flag1, flag2;
} gcase;

static asg_tensor *b_grad(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const gcase *c = ctx;
  asg_tensor *v = NULL;
  switch (c->kind) {
  case 0: return asg_sort(xs[0], c->axis, c->flag1);
  case 1: asg_topk(xs[0], c->flag2, c->axis, c->flag1, &v, NULL); return asg_mul(v, v);
  default: return asg_cumsum(xs[0], c->axis, c->flag1, c->flag2);
  }
}

static void test_grads(void) {
  const asg_shape s = ASG_SHAPE(3, 5, 4);
  char name[64];
  for (int axis = -1; axis < 3; axis++)
    for (int f = 0; f < 2; f++) {
      gcase c = {0, axis, f, 0};
      snprintf(name, sizeof name, "sort axis %d %s", axis, f ? "desc" : "asc");
      TU_CHECK(tu_gradcheck(name, 1, &s, b_grad, &c, NULL) == 0, "%s", name);
      c = (gcase){1, axis, f, 2};
      snprintf(name, sizeof name, "topk 2 axis %d %s", axis, f ? "largest" : "smallest");
      TU_CHECK(tu_gradcheck(name, 1, &s, b_grad, &c, NULL) == 0, "%s", name);
      for (int r = 0; r < 2; r++) {
        c = (gcase){2, axis, f, r};
        snprintf(name, sizeof name, "cumsum axis %d%s%s", axis, f ? " exclusive" : "",
                 r ? " reverse" : "");
        TU_CHECK(tu_gradcheck(name, 1, &s, b_grad, &c, NULL) == 0, "%s", name);
      }
    }
  /* the sort's gradient is a scatter to the selected positions: topk 1 of
   * a row sends dy to its maximum only */
  asg_graph *g = asg_graph_new();
  const double xv[4] = {1, 4, -2, 3};
  asg_tensor *x = tu_constant(g, ASG_F64, ASG_SHAPE(4), xv), *v = NULL, *dx = NULL;
  asg_topk(x, 1, 0, true, &v, NULL);
  double d[4];
  if (asg_grad(asg_sum(v, ASG_ALL_AXES, false), 1, &x, &dx) == ASG_OK && tu_eval(g, dx, d) == 0)
    TU_CHECK(d[0] == 0 && d[1] == 1 && d[2] == 0 && d[3] == 0, "topk 1 gradient %g %g %g %g", d[0],
             d[1], d[2], d[3]);
  else
    TU_CHECK(0, "topk gradient: %s", asg_last_error());
  asg_graph_free(g);
}

/* -------------------------------------------------------------- symbolic */

/* tu_fetch for an output of a symbolic program (its shape from the run). */
static int fetch_sym(asg_program *p, asg_tensor *t, double *out) {
  asg_shape s;
  if (asg_program_output_shape(p, t, &s) != ASG_OK) return -1;
  const long n = (long)asg_shape_numel(s);
  const asg_dtype dt = asg_tensor_dtype(t);
  void *buf = malloc((size_t)n * 8);
  int rc = asg_program_fetch(p, t, buf, (size_t)n * asg_dtype_size(dt));
  if (rc == ASG_OK) tu_to_double(dt, buf, out, n);
  free(buf);
  return rc;
}

static void test_symbolic(void) {
  asg_graph *g = asg_graph_new();
  const int64_t B = asg_dim(g, "batch", 0), T = asg_dim(g, "seq", 0);
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(B, T, 2)), *v = NULL, *ix = NULL;
  asg_status st = asg_topk(x, 2, 1, true, &v, &ix);
  asg_tensor *outs[3] = {v, ix, asg_sort(x, 1, false)};
  asg_compile_opts o = {0};
  o.backend = backend;
  asg_program *p = st == ASG_OK && outs[2] ? asg_compile(g, 3, outs, &o) : NULL;
  TU_CHECK(p != NULL, "symbolic compile: %s",
           asg_graph_error(g) ? asg_graph_error(g) : asg_last_error());
  for (int run = 0; p && run < 2; run++) {
    const long b = run ? 3 : 2, t = run ? 5 : 4, nx = b * t * 2;
    double x0[30], wi[12], wv[12], si[30], sv[30], gv[12], gi[12], gs[30];
    tu_rand(40 + (unsigned)run, x0, nx, -1, 1);
    ref_sort(x0, b, t, 2, 2, true, wi, wv);
    ref_sort(x0, b, t, 2, t, false, si, sv);
    const asg_shape xs = ASG_SHAPE(b, t, 2);
    bool ok = asg_program_feed_tensor(p, "x", ASG_F64, xs, x0) == ASG_OK &&
              asg_program_run(p) == ASG_OK && fetch_sym(p, v, gv) == 0 &&
              fetch_sym(p, ix, gi) == 0 && fetch_sym(p, outs[2], gs) == 0;
    TU_CHECK(ok, "symbolic run [%ld,%ld,2]: %s", b, t, asg_last_error());
    if (ok)
      TU_CHECK(same(gv, wv, b * 2 * 2) && same(gi, wi, b * 2 * 2) && same(gs, sv, nx),
               "symbolic topk/sort [%ld,%ld,2]", b, t);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

static void expect_fail(asg_graph *g, const asg_tensor *t, const char *what, const char *sub1,
                        const char *sub2) {
  const char *e = asg_graph_error(g);
  TU_CHECK(!t && tu_contains(e, sub1) && tu_contains(e, sub2), "%s: got \"%s\"", what,
           e ? e : "(no error)");
}

static void test_errors(void) {
  asg_graph *g;
  asg_tensor *v, *ix;
#define FRESH(dt, shape) (g = asg_graph_new(), asg_input(g, "x", dt, shape))
  asg_tensor *x = FRESH(ASG_F32, ASG_SHAPE(2, 5));
  expect_fail(g, asg_sort(x, 2, false), "sort axis 2", "sort", "axis 2 out of range");
  asg_graph_free(g);
  x = FRESH(ASG_F32, ASG_SHAPE(2, 5));
  expect_fail(g, asg_argsort(x, -3, true), "argsort axis -3", "argsort", "axis -3");
  asg_graph_free(g);
  x = FRESH(ASG_F32, ASG_SHAPE(2, 5));
  TU_CHECK(asg_topk(x, 6, 1, true, &v, &ix) != ASG_OK && !v && !ix, "topk k > dim");
  expect_fail(g, NULL, "topk k > dim", "topk", "k = 6 exceeds axis 1");
  asg_graph_free(g);
  x = FRESH(ASG_F32, ASG_SHAPE(2, 5));
  TU_CHECK(asg_topk(x, 0, 1, true, &v, &ix) != ASG_OK && !v && !ix, "topk k = 0");
  expect_fail(g, NULL, "topk k = 0", "topk", "k must be >= 1, got 0");
  asg_graph_free(g);
  x = FRESH(ASG_F32, ASG_SHAPE(2, 5));
  TU_CHECK(asg_topk(x, -2, 0, false, &v, NULL) != ASG_OK, "topk k = -2");
  expect_fail(g, NULL, "topk k = -2", "topk", "got -2");
  asg_graph_free(g);
  x = FRESH(ASG_F32, ASG_SHAPE(2, 5));
  TU_CHECK(asg_topk(x, 1, 5, false, &v, NULL) != ASG_OK, "topk axis 5");
  expect_fail(g, NULL, "topk axis 5", "topk", "axis 5 out of range");
  asg_graph_free(g);
  x = FRESH(ASG_F32, ASG_SCALAR);
  expect_fail(g, asg_sort(x, 0, false), "sort of a scalar", "sort", "at least one axis");
  asg_graph_free(g);
  x = FRESH(ASG_BF16, ASG_SHAPE(4));
  expect_fail(g, asg_argsort(x, 0, false), "argsort bf16", "argsort", "bf16");
  asg_graph_free(g);
  x = FRESH(ASG_F64, ASG_SHAPE(4, 3));
  expect_fail(g, asg_cumsum(x, -3, false, false), "cumsum axis -3", "cumsum", "axis -3");
  asg_graph_free(g);
  x = FRESH(ASG_F16, ASG_SHAPE(4, 3));
  expect_fail(g, asg_cumsum(x, 0, false, false), "cumsum f16", "cumsum", "f16");
  asg_graph_free(g);
  TU_CHECK(asg_topk(NULL, 1, 0, true, &v, &ix) != ASG_OK && !v && !ix, "topk of NULL");
#undef FRESH
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  test_hand(ASG_F32);
  test_hand(ASG_F64);
  test_axis_middle(ASG_F32);
  test_axis_middle(ASG_I64);
  test_random();
  test_cumsum(ASG_F32);
  test_cumsum(ASG_F64);
  test_cumsum(ASG_I32);
  test_cumsum(ASG_I64);
  test_cumsum_accuracy();
  test_symbolic();
  if (strcmp(backend, "cpu") == 0) { /* graph-level: the same on every backend */
    test_grads();
    test_errors();
  }
  return tu_finish();
}
