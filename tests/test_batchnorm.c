/* asg_batchnorm, the one-op batch norm with the batch's statistics, and its
 * dedicated gradient ops, on the CPU:
 * - forward, dx, dgamma and dbeta in f64 and f32 against double loops
 *   written here (the textbook formulas, per channel), on ranks 2 to 4,
 *   runs shorter and longer than the kernel's 16 lanes, NULL gamma/beta;
 * - tu_gradcheck (central differences) of x, gamma and beta in f64;
 * - a symbolic batch dim, compiled once and run at two sizes;
 * - building errors (rank, dtype, gamma/beta shape and dtype, eps).
 * The layer (asg_nn_batchnorm) is checked against PyTorch in
 * test_norms_extra and test_layers. Tolerances: f64 1e-12, f32 2e-5. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "testutil.h"

/* y, and the gradients of loss = sum(y * r): dx, dgamma, dbeta, for x
 * [N, C, S]. */
static void ref_bn(const double *x, const double *gm, const double *bt, const double *r, int N,
                   int C, int S, double eps, double *y, double *dx, double *dg, double *db) {
  double M = (double)N * S;
  for (int c = 0; c < C; c++) {
    double m = 0, v = 0;
    for (int n = 0; n < N; n++)
      for (int s = 0; s < S; s++)
        m += x[((long)n * C + c) * S + s];
    m /= M;
    for (int n = 0; n < N; n++)
      for (int s = 0; s < S; s++) {
        double d = x[((long)n * C + c) * S + s] - m;
        v += d * d;
      }
    v /= M;
    double inv = 1 / sqrt(v + eps), g = gm ? gm[c] : 1, sum_r = 0, sum_rxh = 0;
    for (int n = 0; n < N; n++)
      for (int s = 0; s < S; s++) {
        long i = ((long)n * C + c) * S + s;
        double xh = (x[i] - m) * inv;
        y[i] = xh * g + (bt ? bt[c] : 0);
        sum_r += r[i];
        sum_rxh += r[i] * xh;
      }
    dg[c] = sum_rxh;
    db[c] = sum_r;
    for (int n = 0; n < N; n++)
      for (int s = 0; s < S; s++) {
        long i = ((long)n * C + c) * S + s;
        double xh = (x[i] - m) * inv;
        dx[i] = g * inv / M * (M * r[i] - sum_r - xh * sum_rxh);
      }
  }
}

static void check_case(asg_dtype dt, asg_shape xs, bool affine) {
  int N = (int)xs.dims[0], C = (int)xs.dims[1], S = 1;
  for (int d = 2; d < xs.ndim; d++)
    S *= (int)xs.dims[d];
  long n = (long)N * C * S;
  double *x = malloc(sizeof(double) * n), *r = malloc(sizeof(double) * n);
  double *y = malloc(sizeof(double) * n), *dx = malloc(sizeof(double) * n);
  double *wy = malloc(sizeof(double) * n), *wdx = malloc(sizeof(double) * n);
  double gm[64], bt[64], dg[64], db[64], wdg[64], wdb[64];
  tu_rand(1 + (unsigned)n, x, n, -3, 5); /* an offset mean: the stats must center */
  tu_rand(2 + (unsigned)n, r, n, -1, 1);
  tu_rand(3, gm, C, 0.5, 1.5);
  tu_rand(4, bt, C, -1, 1);
  if (dt == ASG_F32) /* the reference sees the values the f32 program sees */
    for (long i = 0; i < n; i++)
      x[i] = (float)x[i], r[i] = (float)r[i];
  ref_bn(x, affine ? gm : NULL, affine ? bt : NULL, r, N, C, S, 1e-5, wy, wdx, wdg, wdb);

  asg_graph *g = asg_graph_new();
  asg_tensor *xv = asg_variable(g, "x", dt, xs, asg_init_zeros());
  asg_tensor *gv = asg_variable(g, "gamma", dt, ASG_SHAPE(C), asg_init_ones());
  asg_tensor *bv = asg_variable(g, "beta", dt, ASG_SHAPE(C), asg_init_zeros());
  asg_tensor *rt = tu_constant(g, dt, xs, r);
  asg_tensor *yt = asg_batchnorm(xv, affine ? gv : NULL, affine ? bv : NULL, 1e-5);
  asg_tensor *loss = asg_sum(asg_mul(yt, rt), ASG_ALL_AXES, false);
  asg_tensor *wrt[3] = {xv, gv, bv}, *d[3] = {NULL, NULL, NULL};
  TU_CHECK(yt && asg_grad(loss, affine ? 3 : 1, wrt, d) == ASG_OK, "build: %s", asg_graph_error(g));
  asg_tensor *outs[4] = {yt, d[0], d[1], d[2]};
  asg_program *p = asg_compile(g, affine ? 4 : 2, outs, NULL);
  TU_CHECK(p, "compile: %s", asg_last_error());
  char what[96];
  snprintf(what, sizeof what, "batchnorm %s [%d,%d,S=%d]%s", dt == ASG_F32 ? "f32" : "f64", N, C, S,
           affine ? "" : " no affine");
  double tol = dt == ASG_F32 ? 2e-5 : 1e-12;
  if (p && tu_set_var(p, "x", x) == 0 &&
      (!affine || (tu_set_var(p, "gamma", gm) == 0 && tu_set_var(p, "beta", bt) == 0))) {
    TU_CHECK(asg_program_run(p) == ASG_OK, "%s run: %s", what, asg_last_error());
    TU_CHECK(tu_fetch(p, yt, y) == 0 && tu_close(what, y, wy, n, tol, tol), "%s: y", what);
    TU_CHECK(tu_fetch(p, d[0], dx) == 0 && tu_close(what, dx, wdx, n, tol, tol), "%s: dx", what);
    if (affine) {
      TU_CHECK(tu_fetch(p, d[1], dg) == 0 && tu_close(what, dg, wdg, C, tol * S, tol), "%s: dgamma",
               what);
      TU_CHECK(tu_fetch(p, d[2], db) == 0 && tu_close(what, db, wdb, C, tol * S, tol), "%s: dbeta",
               what);
    }
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(r), free(y), free(dx), free(wy), free(wdx);
}

/* Long f32 channels (3 x 200000 values each) with a mean far from 0: the
 * sums keep their precision (chunked lanes, the mean's rounding taken out). */
static void test_long_channels(void) {
  enum { N = 2, C = 3, S = 100000 };
  const long n = (long)N * C * S;
  double *x = malloc(sizeof(double) * n), *r = malloc(sizeof(double) * n);
  double *y = malloc(sizeof(double) * n), *dx = malloc(sizeof(double) * n);
  double *wy = malloc(sizeof(double) * n), *wdx = malloc(sizeof(double) * n);
  double gm[C] = {0.7, 1.0, 1.3}, bt[C] = {0.1, -0.2, 0.3}, dg[C], db[C], wdg[C], wdb[C];
  tu_rand(41, x, n, 90, 110); /* mean ~100, std ~6: 1 - mean / x loses digits in f32 */
  tu_rand(42, r, n, -1, 1);
  for (long i = 0; i < n; i++)
    x[i] = (float)x[i], r[i] = (float)r[i];
  ref_bn(x, gm, bt, r, N, C, S, 1e-5, wy, wdx, wdg, wdb);
  asg_graph *g = asg_graph_new();
  asg_tensor *xv = asg_variable(g, "x", ASG_F32, ASG_SHAPE(N, C, S), asg_init_zeros());
  asg_tensor *bv = asg_variable(g, "beta", ASG_F32, ASG_SHAPE(C), asg_init_zeros());
  asg_tensor *gam = asg_variable(g, "gamma", ASG_F32, ASG_SHAPE(C), asg_init_ones());
  asg_tensor *yt = asg_batchnorm(xv, gam, bv, 1e-5);
  asg_tensor *loss =
      asg_sum(asg_mul(yt, tu_constant(g, ASG_F32, ASG_SHAPE(N, C, S), r)), ASG_ALL_AXES, false);
  asg_tensor *wrt[3] = {xv, gam, bv}, *d[3] = {NULL, NULL, NULL};
  TU_CHECK(yt && asg_grad(loss, 3, wrt, d) == ASG_OK, "long: build: %s", asg_graph_error(g));
  asg_tensor *outs[4] = {yt, d[0], d[1], d[2]};
  asg_program *p = asg_compile(g, 4, outs, NULL);
  if (p && !tu_set_var(p, "x", x) && !tu_set_var(p, "gamma", gm) && !tu_set_var(p, "beta", bt) &&
      asg_program_run(p) == ASG_OK && !tu_fetch(p, yt, y) && !tu_fetch(p, d[0], dx) &&
      !tu_fetch(p, d[1], dg) && !tu_fetch(p, d[2], db)) {
    double ey = 0, ex = 0, eg = 0, eb = 0;
    for (long i = 0; i < n; i++) {
      ey = fmax(ey, fabs(y[i] - wy[i]));
      ex = fmax(ex, fabs(dx[i] - wdx[i]));
    }
    for (int c = 0; c < C; c++) {
      eg = fmax(eg, fabs(dg[c] - wdg[c]));
      eb = fmax(eb, fabs(db[c] - wdb[c]));
    }
    printf("  long channels: max |error| y %.3g dx %.3g dgamma %.3g (of ~%.0f) dbeta %.3g\n", ey,
           ex, eg, fabs(wdg[0]), eb);
    /* y and dx: a few float ulp of their O(1) and O(1e-2) values; dgamma and
     * dbeta: sums of 2e5 terms of O(1) */
    TU_CHECK(ey < 2e-6 && ex < 1e-6 && eg < 2e-4 && eb < 1e-3,
             "long channels within float rounding");
  } else {
    TU_CHECK(0, "long channels: %s", asg_last_error());
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(r), free(y), free(dx), free(wy), free(wdx);
}

static asg_tensor *build_bn(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  return asg_batchnorm(xs[0], xs[1], xs[2], 1e-3);
}

static void test_gradcheck(void) {
  asg_shape sh[3] = {ASG_SHAPE(3, 4, 5), ASG_SHAPE(4), ASG_SHAPE(4)};
  TU_CHECK(tu_gradcheck("batchnorm [3,4,5]", 3, sh, build_bn, NULL, NULL) == 0, "gradient check");
  asg_shape sh2[3] = {ASG_SHAPE(6, 3), ASG_SHAPE(3), ASG_SHAPE(3)};
  TU_CHECK(tu_gradcheck("batchnorm [6,3]", 3, sh2, build_bn, NULL, NULL) == 0, "gradient check");
}

/* One program for every batch size: the statistics follow the bound N. */
static void test_symbolic(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 0);
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(B, 2, 3));
  asg_tensor *y = asg_batchnorm(x, NULL, NULL, 0);
  asg_program *p = y ? asg_compile(g, 1, &y, NULL) : NULL;
  TU_CHECK(p, "symbolic compile: %s", asg_last_error());
  for (int nb = 2; p && nb <= 5; nb += 3) {
    double xv[30], got[30], want[30], r[30] = {0}, dx[30], dg[2], db[2];
    tu_rand(7 + nb, xv, nb * 6, -2, 2);
    ref_bn(xv, NULL, NULL, r, nb, 2, 3, 0, want, dx, dg, db);
    TU_CHECK(tu_feed(p, "x", ASG_F64, xv, nb * 6) == 0 && asg_program_run(p) == ASG_OK &&
                 asg_program_fetch(p, y, got, sizeof(double) * (size_t)(nb * 6)) == ASG_OK &&
                 tu_close("symbolic", got, want, nb * 6, 1e-12, 1e-12),
             "symbolic batch %d: %s", nb, asg_last_error());
  }
  asg_program_free(p);
  asg_graph_free(g);
}

static void expect_err(asg_graph *g, asg_tensor *t, const char *sub) {
  const char *e = asg_graph_error(g);
  TU_CHECK(!t && e && tu_contains(e, sub), "want an error naming '%s', got %s", sub,
           e ? e : "(none)");
}

static void test_errors(void) {
  struct {
    int k;
    const char *sub;
  } cs[] = {{0, "[N, C]"}, {1, "float"}, {2, "gamma"},
            {3, "beta"},   {4, "eps"},   {5, "gamma is f64"}};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 3, 2)), *t = NULL;
    asg_tensor *g3 = asg_input(g, "g", ASG_F32, ASG_SHAPE(3));
    switch (cs[i].k) {
    case 0: t = asg_batchnorm(asg_input(g, "v", ASG_F32, ASG_SHAPE(5)), NULL, NULL, 1e-5); break;
    case 1: t = asg_batchnorm(asg_input(g, "i", ASG_I32, ASG_SHAPE(4, 3)), NULL, NULL, 1e-5); break;
    case 2: t = asg_batchnorm(x, asg_input(g, "g4", ASG_F32, ASG_SHAPE(4)), NULL, 1e-5); break;
    case 3: t = asg_batchnorm(x, g3, asg_input(g, "b", ASG_F32, ASG_SHAPE(3, 1)), 1e-5); break;
    case 4: t = asg_batchnorm(x, g3, NULL, -1); break;
    default: t = asg_batchnorm(x, asg_input(g, "g64", ASG_F64, ASG_SHAPE(3)), NULL, 1e-5); break;
    }
    expect_err(g, t, cs[i].sub);
    asg_graph_free(g);
  }
}

int main(void) {
  static const int64_t shapes[][4] = {
      {8, 5, 6, 7}, {16, 12, 0, 0}, {3, 4, 37, 0}, {2, 3, 1, 1}, {4, 2, 16, 0}};
  static const int ranks[] = {4, 2, 3, 4, 3};
  for (int dti = 0; dti < 2; dti++)
    for (size_t k = 0; k < sizeof ranks / sizeof ranks[0]; k++) {
      asg_shape s = {ranks[k], {0}};
      for (int d = 0; d < ranks[k]; d++)
        s.dims[d] = shapes[k][d];
      check_case(dti ? ASG_F64 : ASG_F32, s, true);
      if (k < 2) check_case(dti ? ASG_F64 : ASG_F32, s, false);
    }
  test_gradcheck();
  test_long_channels();
  test_symbolic();
  test_errors();
  return tu_finish();
}
