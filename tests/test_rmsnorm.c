/* asg_rmsnorm, the one-op RMS normalization over the last dim, on the CPU:
 * - forward, dx and dweight in f32 and f64 against double loops written
 *   here (y = x / sqrt(mean x^2 + eps) * w and its textbook gradient), on
 *   ranks 1 to 3, C = 1, rows shorter and longer than a SIMD register, and
 *   a NULL weight;
 * - tu_gradcheck (central differences in f64) of x and weight, and of the
 *   gradient itself (the rule is made of generic ops: differentiable again);
 * - the layer asg_nn_rmsnorm builds the op, with the same values;
 * - ONNX export (decomposed into arithmetic) imported back gives the values;
 * - building errors (rank 0, dtypes, weight shape, eps) name the problem.
 * The Llama builder's use is checked against transformers in test_hf_models;
 * every backend against the CPU in test_parity. Tolerances: f64 1e-12,
 * f32 2e-5 (on O(1) values). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "testutil.h"

/* y and the gradients of loss = sum(y * r): dx [R,C], dw [C], for x [R,C]
 * (w NULL: ones). */
static void ref_rms(const double *x, const double *w, const double *r, long R, long C, double eps,
                    double *y, double *dx, double *dw) {
  for (long j = 0; j < C; j++)
    dw[j] = 0;
  for (long i = 0; i < R; i++) {
    const double *xr = x + i * C, *rr = r + i * C;
    double q = 0;
    for (long j = 0; j < C; j++)
      q += xr[j] * xr[j];
    double rs = 1 / sqrt(q / (double)C + eps), gx = 0;
    for (long j = 0; j < C; j++) {
      double wj = w ? w[j] : 1;
      y[i * C + j] = xr[j] * rs * wj;
      dw[j] += rr[j] * xr[j] * rs;
      gx += rr[j] * wj * xr[j];
    }
    /* d/dx_k of sum_j r_j w_j x_j rs = r_k w_k rs - x_k rs^3 / C * sum_j r_j w_j x_j */
    for (long j = 0; j < C; j++)
      dx[i * C + j] = rr[j] * (w ? w[j] : 1) * rs - xr[j] * rs * rs * rs / (double)C * gx;
  }
}

/* v rounded to float. The volatile keeps the rounding: gcc 12.2 at -O3
 * drops it for the last 2 of 6 elements of `v[j] = (float)v[j]` (seen while
 * writing this test, also through a float buffer). */
static void round_f32(double *v, long n) {
  for (long i = 0; i < n; i++) {
    volatile float f = (float)v[i];
    v[i] = f;
  }
}

static void check_case(asg_dtype dt, asg_shape xs, bool affine, double eps) {
  long C = (long)xs.dims[xs.ndim - 1], n = (long)asg_shape_numel(xs), R = n / C;
  double *x = malloc(sizeof(double) * n), *r = malloc(sizeof(double) * n);
  double *y = malloc(sizeof(double) * n), *dx = malloc(sizeof(double) * n);
  double *wy = malloc(sizeof(double) * n), *wdx = malloc(sizeof(double) * n);
  double *w = malloc(sizeof(double) * C), *dw = malloc(sizeof(double) * C);
  double *wdw = malloc(sizeof(double) * C);
  tu_rand(1 + (unsigned)n, x, n, -2, 3); /* a non-zero mean: RMS is not the std */
  tu_rand(2 + (unsigned)n, r, n, -1, 1);
  tu_rand(3, w, C, 0.5, 1.5);
  if (dt == ASG_F32) { /* the reference sees the values the f32 program sees */
    round_f32(x, n);
    round_f32(r, n);
    round_f32(w, C);
  }
  ref_rms(x, affine ? w : NULL, r, R, C, eps, wy, wdx, wdw);

  asg_graph *g = asg_graph_new();
  asg_tensor *xv = asg_variable(g, "x", dt, xs, asg_init_zeros());
  asg_tensor *wv = asg_variable(g, "w", dt, ASG_SHAPE(C), asg_init_ones());
  asg_tensor *yt = asg_rmsnorm(xv, affine ? wv : NULL, eps);
  TU_CHECK(yt && !strcmp(asg_tensor_op_name(yt), "rmsnorm"), "one rmsnorm op: %s",
           asg_graph_error(g));
  asg_tensor *loss = asg_sum(asg_mul(yt, tu_constant(g, dt, xs, r)), ASG_ALL_AXES, false);
  asg_tensor *wrt[2] = {xv, wv}, *d[2] = {NULL, NULL};
  TU_CHECK(asg_grad(loss, affine ? 2 : 1, wrt, d) == ASG_OK, "grad: %s", asg_graph_error(g));
  asg_tensor *outs[3] = {yt, d[0], d[1]};
  asg_program *p = asg_compile(g, affine ? 3 : 2, outs, NULL);
  TU_CHECK(p, "compile: %s", asg_last_error());
  char what[96];
  snprintf(what, sizeof what, "rmsnorm %s rank %d R=%ld C=%ld%s", dt == ASG_F32 ? "f32" : "f64",
           xs.ndim, R, C, affine ? "" : " no weight");
  double tol = dt == ASG_F32 ? 2e-5 : 1e-12;
  if (p && tu_set_var(p, "x", x) == 0 && (!affine || tu_set_var(p, "w", w) == 0)) {
    TU_CHECK(asg_program_run(p) == ASG_OK, "%s run: %s", what, asg_last_error());
    TU_CHECK(tu_fetch(p, yt, y) == 0 && tu_close(what, y, wy, n, tol, tol), "%s: y", what);
    TU_CHECK(tu_fetch(p, d[0], dx) == 0 && tu_close(what, dx, wdx, n, tol, tol), "%s: dx", what);
    if (affine)
      TU_CHECK(tu_fetch(p, d[1], dw) == 0 && tu_close(what, dw, wdw, C, tol * (double)R, tol),
               "%s: dweight", what);
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(r), free(y), free(dx), free(wy), free(wdx), free(w), free(dw), free(wdw);
}

static asg_tensor *build_rms(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  return asg_rmsnorm(xs[0], xs[1], 1e-3);
}

/* The gradient w.r.t. x of sum(rmsnorm(x, w) * c) for a fixed c: checking
 * its own gradient checks the second derivative of the op. */
static asg_tensor *build_rms_grad(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  double c[12];
  tu_rand(11, c, 12, -1, 1);
  asg_tensor *y = asg_rmsnorm(xs[0], xs[1], 1e-3);
  asg_tensor *loss =
      asg_sum(asg_mul(y, tu_constant(g, ASG_F64, ASG_SHAPE(3, 4), c)), ASG_ALL_AXES, false);
  asg_tensor *dx = NULL;
  return asg_grad(loss, 1, &xs[0], &dx) == ASG_OK ? dx : NULL;
}

static void test_gradcheck(void) {
  asg_shape sh[2] = {ASG_SHAPE(3, 4, 5), ASG_SHAPE(5)};
  TU_CHECK(tu_gradcheck("rmsnorm [3,4,5]", 2, sh, build_rms, NULL, NULL) == 0, "gradient check");
  asg_shape sh1[2] = {ASG_SHAPE(6), ASG_SHAPE(6)};
  TU_CHECK(tu_gradcheck("rmsnorm [6]", 2, sh1, build_rms, NULL, NULL) == 0, "rank 1");
  asg_shape sh2[2] = {ASG_SHAPE(3, 4), ASG_SHAPE(4)};
  tu_gc_opts o = {.tol = 1e-5};
  TU_CHECK(tu_gradcheck("rmsnorm second derivative", 2, sh2, build_rms_grad, NULL, &o) == 0,
           "second derivative");
}

/* The layer: the op (not a chain) with the layer's eps, its f32 weight cast
 * to an f64 input, and the reference's values. */
static void test_layer(void) {
  asg_graph *g = asg_graph_new();
  double x[4 * 6], r[4 * 6] = {0}, y[4 * 6], want[4 * 6], dx[4 * 6], dw[6];
  tu_rand(21, x, 24, -2, 2);
  asg_tensor *xt = tu_constant(g, ASG_F64, ASG_SHAPE(4, 6), x);
  asg_tensor *yt = asg_layer_apply(asg_nn_rmsnorm(g, "rms", 6, 1e-4), xt);
  TU_CHECK(yt && !strcmp(asg_tensor_op_name(yt), "rmsnorm"), "layer builds the op: %s",
           yt ? asg_tensor_op_name(yt) : asg_graph_error(g));
  asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
  double w[6];
  tu_rand(22, w, 6, 0.5, 1.5);
  round_f32(w, 6); /* an f32 parameter */
  ref_rms(x, w, r, 4, 6, 1e-4, want, dx, dw);
  TU_CHECK(p && tu_set_var(p, "rms.weight", w) == 0 && asg_program_run(p) == ASG_OK &&
               tu_fetch(p, yt, y) == 0 && tu_close("layer", y, want, 24, 1e-12, 1e-12),
           "layer values: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

/* Exported as ONNX arithmetic and imported back: the same values. */
static void test_onnx(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(3, 8);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(8), asg_init_uniform(0.5, 1.5));
  asg_tensor *y = asg_rmsnorm(x, w, 1e-5);
  double xv[24];
  tu_rand(31, xv, 24, -3, 3);
  tu_onnx_roundtrip(g, y, xv, 24, 1e-6, 1e-5, "onnx");
  asg_graph_free(g);
}

static void expect_err(asg_graph *g, asg_tensor *t, const char *sub) {
  const char *e = asg_graph_error(g);
  TU_CHECK(!t && e && tu_contains(e, "rmsnorm") && tu_contains(e, sub),
           "want an rmsnorm error naming '%s', got %s", sub, e ? e : "(none)");
}

static void test_errors(void) {
  struct {
    int k;
    const char *sub;
  } cs[] = {{0, "scalar"},       {1, "f32/f64"},        {2, "weight [4] does not match"},
            {3, "weight [3,1]"}, {4, "weight is f64"},  {5, "eps"},
            {6, "eps"},          {7, "input 0 is NULL"}};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3)), *t = NULL;
    asg_tensor *w3 = asg_input(g, "w", ASG_F32, ASG_SHAPE(3));
    switch (cs[i].k) {
    case 0: t = asg_rmsnorm(asg_input(g, "s", ASG_F32, ASG_SCALAR), NULL, 1e-5); break;
    case 1: t = asg_rmsnorm(asg_input(g, "i", ASG_I32, ASG_SHAPE(2, 3)), NULL, 1e-5); break;
    case 2: t = asg_rmsnorm(x, asg_input(g, "w4", ASG_F32, ASG_SHAPE(4)), 1e-5); break;
    case 3: t = asg_rmsnorm(x, asg_input(g, "w31", ASG_F32, ASG_SHAPE(3, 1)), 1e-5); break;
    case 4: t = asg_rmsnorm(x, asg_input(g, "w64", ASG_F64, ASG_SHAPE(3)), 1e-5); break;
    case 5: t = asg_rmsnorm(x, w3, -1e-6); break;
    case 6: t = asg_rmsnorm(x, w3, INFINITY); break;
    default: t = asg_rmsnorm(NULL, w3, 1e-5); break;
    }
    expect_err(g, t, cs[i].sub);
    /* the graph stays failed: later ops return NULL */
    TU_CHECK(asg_rmsnorm(x, w3, 1e-5) == NULL, "case %d: a failed graph stays failed", cs[i].k);
    asg_graph_free(g);
  }
  TU_CHECK(asg_rmsnorm(NULL, NULL, 1e-5) == NULL && tu_contains(asg_last_error(), "rmsnorm"),
           "NULL x: %s", asg_last_error());
}

int main(void) {
  static const int64_t shapes[][3] = {{7, 0, 0}, {5, 1, 0}, {3, 37, 0}, {2, 3, 33}, {2, 2, 300}};
  static const int ranks[] = {1, 2, 2, 3, 3};
  for (int dti = 0; dti < 2; dti++)
    for (size_t k = 0; k < sizeof ranks / sizeof ranks[0]; k++) {
      asg_shape s = {ranks[k], {0}};
      for (int d = 0; d < ranks[k]; d++)
        s.dims[d] = shapes[k][d];
      check_case(dti ? ASG_F64 : ASG_F32, s, true, 1e-5);
      if (k == 2) check_case(dti ? ASG_F64 : ASG_F32, s, false, 0.1);
    }
  test_gradcheck();
  test_layer();
  test_onnx();
  test_errors();
  return tu_finish();
}
