/* nn and random ops: softmax, log_softmax, layernorm, softmax cross-entropy,
 * rand_uniform/normal/bernoulli, dropout. Forward results against float64
 * loops written here, gradients by central differences, RNG by statistics
 * and determinism, and the error paths. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- helpers ---- */
/* Fetches output t of a program that has run, as doubles. */
static void fetch(asg_program *p, asg_tensor *t, double *out) {
  if (tu_fetch(p, t, out) != ASG_OK) {
    printf("  fetch failed: %s\n", asg_last_error());
    for (long i = 0; i < (long)asg_shape_numel(asg_tensor_shape(t)); i++)
      out[i] = NAN;
  }
}

/* Compiles outs, runs once, fetches each into dst[i]. Returns 0 on success. */
static int run_all(asg_graph *g, int n, asg_tensor **outs, double **dst) {
  for (int i = 0; i < n; i++)
    if (!outs[i]) {
      printf("  build failed: %s\n", asg_graph_error(g));
      return -1;
    }
  asg_program *p = asg_compile(g, n, outs, NULL);
  if (!p || asg_program_run(p) != ASG_OK) {
    printf("  compile/run failed: %s\n", asg_last_error());
    asg_program_free(p);
    return -1;
  }
  for (int i = 0; i < n; i++)
    fetch(p, outs[i], dst[i]);
  asg_program_free(p);
  return 0;
}

/* The reference view of an axis: x [outer, n, inner]. */
static void split_axis(asg_shape s, int axis, long *outer, long *n, long *inner) {
  *outer = *inner = 1;
  for (int d = 0; d < axis; d++)
    *outer *= (long)s.dims[d];
  *n = (long)s.dims[axis];
  for (int d = axis + 1; d < s.ndim; d++)
    *inner *= (long)s.dims[d];
}

static void ref_softmax(const double *x, double *y, asg_shape s, int axis, int lg) {
  long outer, n, inner;
  split_axis(s, axis, &outer, &n, &inner);
  for (long o = 0; o < outer; o++)
    for (long i = 0; i < inner; i++) {
      const double *xl = x + o * n * inner + i;
      double *yl = y + o * n * inner + i;
      double m = -INFINITY, sum = 0;
      for (long j = 0; j < n; j++)
        m = fmax(m, xl[j * inner]);
      for (long j = 0; j < n; j++)
        sum += exp(xl[j * inner] - m);
      for (long j = 0; j < n; j++)
        yl[j * inner] = lg ? xl[j * inner] - m - log(sum) : exp(xl[j * inner] - m) / sum;
    }
}

static int has_error(asg_graph *g, asg_tensor *y, const char *what) {
  const char *e = asg_graph_error(g);
  int ok = y == NULL && e && strstr(e, what);
  if (!ok) printf("  expected an error naming '%s', got %s\n", what, e ? e : "(none)");
  return ok;
}

/* ---- softmax / log_softmax forward ---- */
static void test_softmax_forward(void) {
  asg_shape s = ASG_SHAPE(3, 4, 5);
  double x[60], want[60], got[60];
  tu_rand(1, x, 60, -3, 3);
  for (int lg = 0; lg < 2; lg++)
    for (int a = -1; a < 3; a++) {
      for (int dt = 0; dt < 2; dt++) {
        asg_dtype d = dt ? ASG_F32 : ASG_F64;
        asg_graph *g = asg_graph_new();
        asg_tensor *xt = tu_constant(g, d, s, x);
        asg_tensor *y = lg ? asg_log_softmax(xt, a) : asg_softmax(xt, a);
        ref_softmax(x, want, s, a < 0 ? a + 3 : a, lg);
        int ok = tu_eval(g, y, got) == 0 && tu_close(lg ? "log_softmax" : "softmax", got, want, 60,
                                                     dt ? 1e-6 : 1e-13, dt ? 1e-5 : 1e-12);
        TU_CHECK(ok, "%s axis %d %s", lg ? "log_softmax" : "softmax", a, dt ? "f32" : "f64");
        asg_graph_free(g);
      }
    }
  /* stability: huge logits (exp would overflow without the max shift) */
  double big[60];
  for (int i = 0; i < 60; i++)
    big[i] = x[i] * 400 + (i % 2 ? 1000 : -1000);
  for (int lg = 0; lg < 2; lg++)
    for (int a = 0; a < 3; a++)
      for (int dt = 0; dt < 2; dt++) {
        asg_graph *g = asg_graph_new();
        asg_tensor *xt = tu_constant(g, dt ? ASG_F32 : ASG_F64, s, big);
        asg_tensor *y = lg ? asg_log_softmax(xt, a) : asg_softmax(xt, a);
        double xr[60];
        for (int i = 0; i < 60; i++)
          xr[i] = dt ? (double)(float)big[i] : big[i];
        ref_softmax(xr, want, s, a, lg);
        int ok = tu_eval(g, y, got) == 0;
        for (int i = 0; ok && i < 60; i++)
          ok = isfinite(got[i]);
        ok = ok && tu_close("stable", got, want, 60, dt ? 1e-5 : 1e-12, dt ? 1e-5 : 1e-12);
        TU_CHECK(ok, "large-magnitude %s axis %d %s", lg ? "log_softmax" : "softmax", a,
                 dt ? "f32" : "f64");
        asg_graph_free(g);
      }
  /* sizes above the parallel threshold, last axis and a strided axis */
  {
    asg_shape bs = ASG_SHAPE(64, 1024);
    long n = 64 * 1024;
    double *bx = malloc(sizeof(double) * (size_t)n), *bw = malloc(sizeof(double) * (size_t)n),
           *bg = malloc(sizeof(double) * (size_t)n);
    tu_rand(5, bx, n, -8, 8);
    for (int a = 0; a < 2; a++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *y = asg_softmax(tu_constant(g, ASG_F32, bs, bx), a);
      double *xr = malloc(sizeof(double) * (size_t)n);
      for (long i = 0; i < n; i++)
        xr[i] = (double)(float)bx[i];
      ref_softmax(xr, bw, bs, a, 0);
      free(xr);
      TU_CHECK(tu_eval(g, y, bg) == 0 && tu_close("big softmax", bg, bw, n, 1e-7, 1e-5),
               "softmax [64,1024] f32 axis %d", a);
      asg_graph_free(g);
    }
    free(bx), free(bw), free(bg);
  }
}

/* ---- layernorm forward ---- */
static void ref_layernorm(const double *x, const double *gm, const double *bt, double *y, long R,
                          long C, double eps) {
  for (long r = 0; r < R; r++) {
    double m = 0, v = 0;
    for (long j = 0; j < C; j++)
      m += x[r * C + j];
    m /= (double)C;
    for (long j = 0; j < C; j++)
      v += (x[r * C + j] - m) * (x[r * C + j] - m);
    v /= (double)C;
    for (long j = 0; j < C; j++)
      y[r * C + j] = (x[r * C + j] - m) / sqrt(v + eps) * (gm ? gm[j] : 1) + (bt ? bt[j] : 0);
  }
}

static void test_layernorm_forward(void) {
  asg_shape s = ASG_SHAPE(2, 3, 7);
  double x[42], gm[7], bt[7], want[42], got[42];
  tu_rand(2, x, 42, -2, 3);
  tu_rand(3, gm, 7, 0.5, 1.5);
  tu_rand(4, bt, 7, -1, 1);
  for (int dt = 0; dt < 2; dt++)
    for (int affine = 0; affine < 2; affine++) {
      asg_dtype d = dt ? ASG_F32 : ASG_F64;
      asg_graph *g = asg_graph_new();
      asg_tensor *gt = affine ? tu_constant(g, d, ASG_SHAPE(7), gm) : NULL;
      asg_tensor *btt = affine ? tu_constant(g, d, ASG_SHAPE(7), bt) : NULL;
      asg_tensor *y = asg_layernorm(tu_constant(g, d, s, x), gt, btt, 1e-5);
      double xr[42];
      for (int i = 0; i < 42; i++)
        xr[i] = dt ? (double)(float)x[i] : x[i];
      double gr[7], br[7];
      for (int i = 0; i < 7; i++) {
        gr[i] = dt ? (double)(float)gm[i] : gm[i];
        br[i] = dt ? (double)(float)bt[i] : bt[i];
      }
      ref_layernorm(xr, affine ? gr : NULL, affine ? br : NULL, want, 6, 7, 1e-5);
      TU_CHECK(tu_eval(g, y, got) == 0 &&
                   tu_close("layernorm", got, want, 42, dt ? 1e-5 : 1e-12, dt ? 1e-5 : 1e-12),
               "layernorm %s %s", dt ? "f32" : "f64", affine ? "affine" : "no affine");
      asg_graph_free(g);
    }
}

/* Gradients of a larger layernorm (several column blocks, parallel rows)
 * against the closed forms: dgamma = sum_r w xhat, dbeta = sum_r w,
 * dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = w gamma. */
static void test_layernorm_backward_big(void) {
  const long R = 300, C = 130;
  double *x = malloc(sizeof(double) * (size_t)(R * C)),
         *w = malloc(sizeof(double) * (size_t)(R * C));
  double gm[130], bt[130];
  tu_rand(11, x, R * C, -2, 2);
  tu_rand(12, w, R * C, -1, 1);
  tu_rand(13, gm, C, 0.5, 1.5);
  tu_rand(14, bt, C, -1, 1);
  asg_graph *g = asg_graph_new();
  asg_tensor *xv = asg_variable(g, "x", ASG_F64, ASG_SHAPE(R, C), asg_init_data(x));
  asg_tensor *gv = asg_variable(g, "gamma", ASG_F64, ASG_SHAPE(C), asg_init_data(gm));
  asg_tensor *bv = asg_variable(g, "beta", ASG_F64, ASG_SHAPE(C), asg_init_data(bt));
  asg_tensor *y = asg_layernorm(xv, gv, bv, 1e-5);
  asg_tensor *loss =
      asg_sum(asg_mul(y, asg_constant(g, ASG_F64, ASG_SHAPE(R, C), w)), ASG_ALL_AXES, false);
  asg_tensor *wrt[3] = {xv, gv, bv}, *gr[3] = {NULL, NULL, NULL};
  TU_CHECK(asg_grad(loss, 3, wrt, gr) == ASG_OK, "layernorm grad: %s", asg_last_error());
  double *dx = malloc(sizeof(double) * (size_t)(R * C)), dg[130], db[130];
  double *dst[3] = {dx, dg, db};
  if (run_all(g, 3, gr, dst) == 0) {
    double *wdx = malloc(sizeof(double) * (size_t)(R * C)), wdg[130] = {0}, wdb[130] = {0};
    for (long r = 0; r < R; r++) {
      const double *xr = x + r * C, *wr = w + r * C;
      double m = 0, v = 0, sg = 0, sgx = 0;
      for (long j = 0; j < C; j++)
        m += xr[j];
      m /= (double)C;
      for (long j = 0; j < C; j++)
        v += (xr[j] - m) * (xr[j] - m);
      double rstd = 1 / sqrt(v / (double)C + 1e-5);
      for (long j = 0; j < C; j++) {
        double xh = (xr[j] - m) * rstd;
        wdg[j] += wr[j] * xh;
        wdb[j] += wr[j];
        sg += wr[j] * gm[j];
        sgx += wr[j] * gm[j] * xh;
      }
      for (long j = 0; j < C; j++) {
        double xh = (xr[j] - m) * rstd;
        wdx[r * C + j] = rstd * (wr[j] * gm[j] - sg / (double)C - xh * sgx / (double)C);
      }
    }
    TU_CHECK(tu_close("dx", dx, wdx, R * C, 1e-10, 1e-9), "layernorm dx [300,130]");
    TU_CHECK(tu_close("dgamma", dg, wdg, C, 1e-10, 1e-9), "layernorm dgamma [300,130]");
    TU_CHECK(tu_close("dbeta", db, wdb, C, 1e-10, 1e-9), "layernorm dbeta [300,130]");
    free(wdx);
  } else {
    TU_CHECK(0, "layernorm backward program");
  }
  free(dx), free(x), free(w);
  asg_graph_free(g);
}

/* ---- softmax cross-entropy forward ---- */
static double ref_ce(const double *x, const int64_t *lab, long R, long C, double ls, int64_t ign) {
  double total = 0;
  long count = 0;
  for (long r = 0; r < R; r++) {
    int64_t l = lab[r];
    if (l == ign || l < 0 || l >= C) continue; /* out of range: left out, as documented */
    const double *xr = x + r * C;
    double m = -INFINITY, s = 0, mean_logp = 0;
    for (long j = 0; j < C; j++)
      m = fmax(m, xr[j]);
    for (long j = 0; j < C; j++)
      s += exp(xr[j] - m);
    double lse = m + log(s);
    for (long j = 0; j < C; j++)
      mean_logp += (xr[j] - lse) / (double)C;
    total += (1 - ls) * (lse - xr[l]) - ls * mean_logp;
    count++;
  }
  return count ? total / (double)count : 0;
}

static void test_ce_forward(void) {
  const long R = 6, C = 5;
  double x[30];
  tu_rand(21, x, 30, -3, 3);
  int64_t lab[6] = {0, 4, -100, 2, 3, 1}; /* -100 ignored (out of range: test_misuse_kernels) */
  const double lss[2] = {0, 0.1};
  for (int li = 0; li < 2; li++)
    for (int ldt = 0; ldt < 2; ldt++)
      for (int dt = 0; dt < 2; dt++) {
        asg_graph *g = asg_graph_new();
        asg_tensor *lt;
        if (ldt) {
          lt = asg_constant(g, ASG_I64, ASG_SHAPE(2, 3), lab);
        } else {
          int32_t l32[6];
          for (int i = 0; i < 6; i++)
            l32[i] = (int32_t)lab[i];
          lt = asg_constant(g, ASG_I32, ASG_SHAPE(2, 3), l32);
        }
        asg_tensor *loss = asg_softmax_cross_entropy(
            tu_constant(g, dt ? ASG_F32 : ASG_F64, ASG_SHAPE(2, 3, 5), x), lt, lss[li], -100);
        double xr[30];
        for (int i = 0; i < 30; i++)
          xr[i] = dt ? (double)(float)x[i] : x[i];
        double want = ref_ce(xr, lab, R, C, lss[li], -100), got = NAN;
        TU_CHECK(tu_eval(g, loss, &got) == 0 && fabs(got - want) <= (dt ? 1e-5 : 1e-12),
                 "ce ls=%g labels %s logits %s: got %.10g want %.10g", lss[li], ldt ? "i64" : "i32",
                 dt ? "f32" : "f64", got, want);
        asg_graph_free(g);
      }
  /* large logits stay finite */
  {
    double bx[30];
    for (int i = 0; i < 30; i++)
      bx[i] = x[i] * 500;
    int64_t l2[6] = {0, 1, 2, 3, 4, 0};
    asg_graph *g = asg_graph_new();
    asg_tensor *loss =
        asg_softmax_cross_entropy(tu_constant(g, ASG_F64, ASG_SHAPE(6, 5), bx),
                                  asg_constant(g, ASG_I64, ASG_SHAPE(6), l2), 0.2, -1);
    double want = ref_ce(bx, l2, 6, 5, 0.2, -1), got = NAN;
    TU_CHECK(tu_eval(g, loss, &got) == 0 && isfinite(got) && fabs(got - want) <= 1e-9 * fabs(want),
             "ce large logits: got %g want %g", got, want);
    asg_graph_free(g);
  }
  /* every row ignored: loss NaN (PyTorch's empty mean) and a zero gradient */
  {
    int64_t ign[3] = {-100, -100, -100};
    asg_graph *g = asg_graph_new();
    asg_tensor *lg = asg_variable(g, "logits", ASG_F64, ASG_SHAPE(3, 5), asg_init_data(x));
    asg_tensor *loss =
        asg_softmax_cross_entropy(lg, asg_constant(g, ASG_I64, ASG_SHAPE(3), ign), 0.1, -100);
    asg_tensor *d = NULL;
    TU_CHECK(asg_grad(loss, 1, &lg, &d) == ASG_OK, "ce grad: %s", asg_last_error());
    double l = NAN, dd[15];
    double *dst[2] = {&l, dd};
    asg_tensor *outs[2] = {loss, d};
    int ok = run_all(g, 2, outs, dst) == 0 && isnan(l);
    for (int i = 0; ok && i < 15; i++)
      ok = dd[i] == 0;
    TU_CHECK(ok, "ce with all rows ignored: loss %g", l);
    asg_graph_free(g);
  }
}

/* ---- gradient checks ---- */
typedef struct gc_ctx {
  int axis;
  double ls;
} gc_ctx;

static asg_tensor *b_softmax(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_softmax(xs[0], ((gc_ctx *)ctx)->axis);
}
static asg_tensor *b_log_softmax(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_log_softmax(xs[0], ((gc_ctx *)ctx)->axis);
}
/* Second order: the function checked is itself a gradient. */
static asg_tensor *b_grad_of(asg_graph *g, asg_tensor *x, asg_tensor *y) {
  double w[24];
  tu_rand(31, w, 24, -1, 1);
  asg_tensor *l = asg_sum(asg_mul(asg_mul(y, y), asg_constant(g, ASG_F64, asg_tensor_shape(y), w)),
                          ASG_ALL_AXES, false);
  asg_tensor *d = NULL;
  return asg_grad(l, 1, &x, &d) == ASG_OK ? d : NULL;
}
static asg_tensor *b_softmax_2nd(asg_graph *g, asg_tensor **xs, void *ctx) {
  return b_grad_of(g, xs[0], asg_softmax(xs[0], ((gc_ctx *)ctx)->axis));
}
static asg_tensor *b_log_softmax_2nd(asg_graph *g, asg_tensor **xs, void *ctx) {
  return b_grad_of(g, xs[0], asg_log_softmax(xs[0], ((gc_ctx *)ctx)->axis));
}
static asg_tensor *b_layernorm(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  return asg_layernorm(xs[0], xs[1], xs[2], 1e-5);
}
static asg_tensor *b_layernorm_plain(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  return asg_layernorm(xs[0], NULL, NULL, 1e-3);
}
static asg_tensor *b_ce(asg_graph *g, asg_tensor **xs, void *ctx) {
  int64_t lab[6] = {1, -100, 4, 0, 2, 3}; /* one ignored */
  return asg_softmax_cross_entropy(xs[0], asg_constant(g, ASG_I64, ASG_SHAPE(2, 3), lab),
                                   ((gc_ctx *)ctx)->ls, -100);
}

static void test_gradchecks(void) {
  asg_shape s = ASG_SHAPE(2, 3, 4);
  for (int a = 0; a < 3; a++) {
    gc_ctx c = {a, 0};
    char nm[64];
    snprintf(nm, sizeof nm, "softmax axis %d", a);
    tu_gradcheck(nm, 1, &s, b_softmax, &c, NULL);
    snprintf(nm, sizeof nm, "log_softmax axis %d", a);
    tu_gradcheck(nm, 1, &s, b_log_softmax, &c, NULL);
  }
  gc_ctx last = {-1, 0}, mid = {1, 0};
  tu_gc_opts o2 = {-1, 1, 1e-5, 1e-5, NULL};
  tu_gradcheck("softmax second order", 1, &s, b_softmax_2nd, &last, &o2);
  tu_gradcheck("log_softmax second order", 1, &s, b_log_softmax_2nd, &mid, &o2);
  asg_shape ls[3] = {ASG_SHAPE(2, 3, 5), ASG_SHAPE(5), ASG_SHAPE(5)};
  tu_gc_opts o = {-2, 2, 1e-6, 1e-6, NULL};
  tu_gradcheck("layernorm x, gamma, beta", 3, ls, b_layernorm, NULL, &o);
  asg_shape l1 = ASG_SHAPE(4, 6);
  tu_gradcheck("layernorm no affine", 1, &l1, b_layernorm_plain, NULL, &o);
  asg_shape cs = ASG_SHAPE(2, 3, 5);
  gc_ctx c0 = {0, 0}, c1 = {0, 0.15};
  tu_gradcheck("softmax_cross_entropy", 1, &cs, b_ce, &c0, &o);
  tu_gradcheck("softmax_cross_entropy smoothed", 1, &cs, b_ce, &c1, &o);
}

/* ---- random ---- */
static void stats(const double *v, long n, double *mean, double *var) {
  double m = 0, q = 0;
  for (long i = 0; i < n; i++)
    m += v[i];
  m /= (double)n;
  for (long i = 0; i < n; i++)
    q += (v[i] - m) * (v[i] - m);
  *mean = m;
  *var = q / (double)(n - 1);
}

static void test_random(void) {
  const long N = 100000;
  double *v = malloc(sizeof(double) * (size_t)N), *v2 = malloc(sizeof(double) * (size_t)N);
  double m, var;
  /* uniform [2, 5): mean 3.5, var 0.75; bounds ~5 standard errors */
  for (int dt = 0; dt < 2; dt++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *u = asg_rand_uniform(g, dt ? ASG_F32 : ASG_F64, ASG_SHAPE(N), 2, 5, 42);
    int ok = tu_eval(g, u, v) == 0;
    for (long i = 0; ok && i < N; i++)
      ok = v[i] >= 2 && v[i] < 5;
    stats(v, N, &m, &var);
    TU_CHECK(ok && fabs(m - 3.5) < 0.014 && fabs(var - 0.75) < 0.011,
             "uniform %s: in range %d, mean %g var %g", dt ? "f32" : "f64", ok, m, var);
    asg_graph_free(g);
  }
  /* normal(1, 2) */
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *z = asg_rand_normal(g, ASG_F64, ASG_SHAPE(N), 1, 2, 7);
    int ok = tu_eval(g, z, v) == 0;
    stats(v, N, &m, &var);
    TU_CHECK(ok && fabs(m - 1) < 0.035 && fabs(sqrt(var) - 2) < 0.025, "normal: mean %g std %g", m,
             sqrt(var));
    asg_graph_free(g);
  }
  /* bernoulli(0.3), float and integer masks */
  for (int dt = 0; dt < 2; dt++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *b = asg_rand_bernoulli(g, dt ? ASG_I32 : ASG_F32, ASG_SHAPE(N), 0.3, 9);
    int ok = tu_eval(g, b, v) == 0;
    for (long i = 0; ok && i < N; i++)
      ok = v[i] == 0 || v[i] == 1;
    stats(v, N, &m, &var);
    TU_CHECK(ok && fabs(m - 0.3) < 0.008, "bernoulli %s: 0/1 %d rate %g", dt ? "i32" : "f32", ok,
             m);
    asg_graph_free(g);
  }
  /* determinism: same seed and run count => same values; next run differs;
   * another program (and another dtype) with the same seed agrees */
  {
    const long n = 1000;
    asg_graph *g = asg_graph_new();
    asg_tensor *u = asg_rand_uniform(g, ASG_F64, ASG_SHAPE(n), -1, 1, 123);
    asg_tensor *u2 = asg_rand_uniform(g, ASG_F64, ASG_SHAPE(n), -1, 1, 124);
    asg_tensor *uf = asg_rand_uniform(g, ASG_F32, ASG_SHAPE(n), -1, 1, 123);
    asg_program *p = asg_compile(g, 1, &u, NULL);
    asg_program *q = asg_compile(g, 2, (asg_tensor *[]){u2, uf}, NULL);
    double *a = malloc(sizeof(double) * n), *b = malloc(sizeof(double) * n),
           *c = malloc(sizeof(double) * n), *d = malloc(sizeof(double) * n);
    int ok = p && q;
    if (ok) {
      asg_program_set_run_count(p, 5);
      asg_program_run(p);
      fetch(p, u, a);
      asg_program_set_run_count(p, 5);
      asg_program_run(p);
      fetch(p, u, b);
      TU_CHECK(memcmp(a, b, sizeof(double) * n) == 0, "same seed and run count => same values");
      TU_CHECK(asg_program_run_count(p) == 6, "run count advanced to %llu",
               (unsigned long long)asg_program_run_count(p));
      asg_program_run(p); /* run 6: a fresh draw */
      fetch(p, u, c);
      long same = 0;
      for (long i = 0; i < n; i++)
        same += a[i] == c[i];
      TU_CHECK(same < 5, "next run draws new values (%ld equal)", same);
      asg_program_set_run_count(q, 5);
      asg_program_run(q);
      fetch(q, u2, c);
      fetch(q, uf, d);
      same = 0;
      for (long i = 0; i < n; i++)
        same += a[i] == c[i];
      TU_CHECK(same < 5, "another seed draws other values (%ld equal)", same);
      TU_CHECK(tu_close("f32 vs f64 stream", d, a, n, 1e-7, 0), "f32 and f64 draw the same stream");
    } else {
      TU_CHECK(0, "compile: %s", asg_last_error());
    }
    asg_program_free(p);
    asg_program_free(q);
    free(a), free(b), free(c), free(d);
    asg_graph_free(g);
  }
  /* dropout: values are 0 or 1/(1-p), E[out] = x, and the gradient uses the
   * same mask as the forward pass */
  {
    const double p = 0.25;
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(N), asg_init_ones());
    asg_tensor *y = asg_dropout(x, p, 77);
    asg_tensor *d = NULL;
    TU_CHECK(asg_grad(asg_sum(y, ASG_ALL_AXES, false), 1, &x, &d) == ASG_OK, "dropout grad");
    double *dst[2] = {v, v2};
    asg_tensor *outs[2] = {y, d};
    int ok = run_all(g, 2, outs, dst) == 0;
    long zeros = 0;
    for (long i = 0; ok && i < N; i++) {
      ok = (v[i] == 0 || fabs(v[i] - 1 / (1 - p)) < 1e-12) && v2[i] == v[i];
      zeros += v[i] == 0;
    }
    stats(v, N, &m, &var);
    TU_CHECK(ok && fabs(m - 1) < 0.01 && fabs((double)zeros / (double)N - p) < 0.008,
             "dropout: values ok %d mean %g drop rate %g", ok, m, (double)zeros / (double)N);
    TU_CHECK(asg_dropout(x, 0, 1) == x, "dropout p=0 is the identity");
    asg_graph_free(g);
  }
  free(v), free(v2);
}

/* ---- error paths ---- */
static void test_errors(void) {
  asg_graph *g;
  asg_tensor *y;
#define FRESH() (g = asg_graph_new())
#define X(...) asg_input(g, "x", ASG_F32, ASG_SHAPE(__VA_ARGS__))
  FRESH();
  y = asg_softmax(X(2, 3, 4), 3);
  TU_CHECK(has_error(g, y, "softmax"), "softmax bad axis");
  asg_graph_free(g);
  FRESH();
  y = asg_log_softmax(X(2, 3), -3);
  TU_CHECK(has_error(g, y, "log_softmax"), "log_softmax bad axis");
  asg_graph_free(g);
  FRESH();
  y = asg_softmax(asg_input(g, "i", ASG_I32, ASG_SHAPE(4)), 0);
  TU_CHECK(has_error(g, y, "softmax"), "softmax of integers");
  asg_graph_free(g);
  FRESH();
  y = asg_layernorm(X(2, 5), asg_input(g, "gm", ASG_F32, ASG_SHAPE(4)), NULL, 1e-5);
  TU_CHECK(has_error(g, y, "layernorm") && strstr(asg_graph_error(g), "[4]"),
           "layernorm gamma shape mismatch");
  asg_graph_free(g);
  FRESH();
  y = asg_layernorm(X(2, 5), NULL, asg_input(g, "bt", ASG_F64, ASG_SHAPE(5)), 1e-5);
  TU_CHECK(has_error(g, y, "layernorm"), "layernorm beta dtype mismatch");
  asg_graph_free(g);
  FRESH();
  y = asg_layernorm(X(2, 5), NULL, NULL, -1);
  TU_CHECK(has_error(g, y, "layernorm"), "layernorm negative eps");
  asg_graph_free(g);
  FRESH();
  y = asg_softmax_cross_entropy(X(2, 5), asg_input(g, "l", ASG_I64, ASG_SHAPE(3)), 0, -100);
  TU_CHECK(has_error(g, y, "softmax_cross_entropy") && strstr(asg_graph_error(g), "[2,5]"),
           "ce labels shape mismatch");
  asg_graph_free(g);
  FRESH();
  y = asg_softmax_cross_entropy(X(2, 5), asg_input(g, "l", ASG_F32, ASG_SHAPE(2)), 0, -100);
  TU_CHECK(has_error(g, y, "softmax_cross_entropy"), "ce float labels");
  asg_graph_free(g);
  FRESH();
  y = asg_softmax_cross_entropy(X(2, 5), asg_input(g, "l", ASG_I32, ASG_SHAPE(2)), 1.0, -100);
  TU_CHECK(has_error(g, y, "softmax_cross_entropy"), "ce label smoothing 1");
  asg_graph_free(g);
  FRESH();
  y = asg_rand_uniform(g, ASG_F32, ASG_SHAPE(3), 2, 1, 0);
  TU_CHECK(has_error(g, y, "rand_uniform"), "uniform lo > hi");
  asg_graph_free(g);
  FRESH();
  y = asg_rand_normal(g, ASG_I32, ASG_SHAPE(3), 0, 1, 0);
  TU_CHECK(has_error(g, y, "rand_normal"), "normal of integers");
  asg_graph_free(g);
  FRESH();
  y = asg_rand_bernoulli(g, ASG_F32, ASG_SHAPE(3, 0), 0.5, 0);
  TU_CHECK(has_error(g, y, "rand_bernoulli"), "bernoulli bad shape");
  asg_graph_free(g);
  FRESH();
  y = asg_rand_bernoulli(g, ASG_F32, ASG_SHAPE(3), 1.5, 0);
  TU_CHECK(has_error(g, y, "rand_bernoulli"), "bernoulli p > 1");
  asg_graph_free(g);
  FRESH();
  y = asg_dropout(X(4), 1.0, 0);
  TU_CHECK(has_error(g, y, "dropout"), "dropout p = 1");
  asg_graph_free(g);
  FRESH();
  y = asg_dropout(X(4), -0.1, 0);
  TU_CHECK(has_error(g, y, "dropout"), "dropout p < 0");
  asg_graph_free(g);
  TU_CHECK(asg_rand_uniform(NULL, ASG_F32, ASG_SHAPE(3), 0, 1, 0) == NULL, "NULL graph");
#undef FRESH
#undef X
}

int main(void) {
  test_softmax_forward();
  test_layernorm_forward();
  test_layernorm_backward_big();
  test_ce_forward();
  test_gradchecks();
  test_random();
  test_errors();
  return tu_finish();
}
