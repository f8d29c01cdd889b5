/* Layers (src/nn): forward results against float64 loop references computed
 * here from the parameter values the program initialized, parameter names,
 * shapes and init bounds, train/eval behaviour (dropout, batch norm and its
 * running statistics), error messages naming the layer, and gradient checks
 * through linear and rmsnorm (inputs by tu_gradcheck, parameters by central
 * differences on the program's variables).
 * Tolerances: f64 paths 1e-10; f32 paths 1e-5 relative + 1e-5 absolute. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asg/nn.h"
#include "testutil.h"

/* ---- helpers ---- */
static asg_program *compile_run(asg_graph *g, int n, asg_tensor **outs) {
  for (int i = 0; i < n; i++)
    if (!outs[i]) {
      printf("  graph error: %s\n", asg_graph_error(g));
      return NULL;
    }
  asg_program *p = asg_compile(g, n, outs, NULL);
  if (!p || asg_program_run(p) != ASG_OK) {
    printf("  compile/run failed: %s\n", asg_last_error());
    asg_program_free(p);
    return NULL;
  }
  return p;
}

static bool shape_is(asg_tensor *t, asg_shape s) {
  return t && asg_shape_equal(asg_tensor_shape(t), s);
}

/* Gradient check of layer parameters: loss = sum(y * r) in f64; analytic
 * gradients from asg_grad against central differences taken by setting the
 * program's variables. The step actually taken is measured after rounding
 * to the variable's dtype, so f32 parameters check to ~1e-6. */
static int param_gradcheck(const char *what, asg_graph *g, asg_tensor *y, int n,
                           const char *const *names) {
  if (!y) {
    printf("FAIL param gradcheck %s: %s\n", what, asg_graph_error(g));
    tu_fail++;
    return 1;
  }
  long ny = (long)asg_shape_numel(asg_tensor_shape(y));
  double *r = malloc(sizeof(double) * (size_t)ny);
  tu_rand(7, r, ny, 0.5, 1.5);
  asg_tensor *loss =
      asg_sum(asg_mul(asg_cast(y, ASG_F64), tu_constant(g, ASG_F64, asg_tensor_shape(y), r)),
              ASG_ALL_AXES, false);
  free(r);
  asg_tensor *wrt[8], *gr[8], *outs[9];
  for (int i = 0; i < n; i++)
    wrt[i] = asg_graph_find(g, names[i]);
  int bad = 0;
  if (asg_grad(loss, n, wrt, gr) != ASG_OK) {
    printf("FAIL param gradcheck %s: %s\n", what, asg_last_error());
    tu_fail++;
    return 1;
  }
  outs[0] = loss;
  for (int i = 0; i < n; i++)
    outs[i + 1] = gr[i];
  asg_program *p = compile_run(g, n + 1, outs);
  if (!p) bad = 1;
  double *ans[8] = {0}; /* analytic gradients of the unperturbed run */
  for (int i = 0; i < n && !bad; i++) {
    ans[i] = malloc(sizeof(double) * (size_t)asg_shape_numel(asg_tensor_shape(wrt[i])));
    tu_fetch(p, gr[i], ans[i]);
  }
  for (int i = 0; i < n && !bad; i++) {
    bool f32 = asg_tensor_dtype(wrt[i]) == ASG_F32;
    double eps = f32 ? 1e-3 : 1e-6, tol = f32 ? 2e-5 : 1e-6;
    long m = (long)asg_shape_numel(asg_tensor_shape(wrt[i]));
    double *v = malloc(sizeof(double) * (size_t)m), *an = ans[i];
    tu_get_var(p, names[i], v);
    for (long j = 0; j < m && !bad; j++) {
      double keep = v[j], lp, lm, hp, hm;
      v[j] = keep + eps;
      hp = f32 ? (double)(float)v[j] : v[j];
      tu_set_var(p, names[i], v);
      asg_program_run(p);
      lp = asg_program_scalar(p, loss);
      v[j] = keep - eps;
      hm = f32 ? (double)(float)v[j] : v[j];
      tu_set_var(p, names[i], v);
      asg_program_run(p);
      lm = asg_program_scalar(p, loss);
      v[j] = keep;
      tu_set_var(p, names[i], v);
      double num = (lp - lm) / (hp - hm);
      if (!(fabs(an[j] - num) <= tol * (fabs(num) > 1 ? fabs(num) : 1))) {
        printf("FAIL param gradcheck %s: d/d%s[%ld]: analytic %.10g numeric %.10g\n", what,
               names[i], j, an[j], num);
        bad = 1;
      }
    }
    free(v);
  }
  for (int i = 0; i < n; i++)
    free(ans[i]);
  asg_program_free(p);
  if (bad)
    tu_fail++;
  else
    tu_pass++;
  return bad;
}

/* ---- linear ---- */
static void ref_linear(const double *x, const double *w, const double *b, double *y, long N,
                       long in, long out) {
  for (long n = 0; n < N; n++)
    for (long o = 0; o < out; o++) {
      double s = b ? b[o] : 0;
      for (long i = 0; i < in; i++)
        s += x[n * in + i] * w[o * in + i];
      y[n * out + o] = s;
    }
}

static void test_linear(void) {
  for (int f64 = 0; f64 < 2; f64++) {
    asg_graph *g = asg_graph_new();
    asg_dtype dt = f64 ? ASG_F64 : ASG_F32;
    double x[2 * 3 * 5], w[4 * 5], b[4], y[24], want[24];
    tu_rand(1, x, 30, -1, 1);
    asg_linear_opts o = {.dtype = dt};
    asg_layer *fc = asg_nn_linear_ex(g, "fc1", 5, 4, &o);
    asg_tensor *yt = asg_layer_apply(fc, tu_constant(g, dt, ASG_SHAPE(2, 3, 5), x));
    TU_CHECK(shape_is(yt, ASG_SHAPE(2, 3, 4)), "linear [2,3,5] -> [2,3,4]");
    asg_tensor *wv = asg_graph_find(g, "fc1.weight");
    TU_CHECK(wv && wv == asg_layer_param(fc, "weight") && shape_is(wv, ASG_SHAPE(4, 5)) &&
                 asg_tensor_dtype(wv) == dt,
             "fc1.weight registered [out,in] = [4,5]");
    TU_CHECK(shape_is(asg_graph_find(g, "fc1.bias"), ASG_SHAPE(4)), "fc1.bias [4]");
    TU_CHECK(tu_contains(asg_layer_name(fc), "fc1"), "layer name");
    asg_program *p = compile_run(g, 1, &yt);
    TU_CHECK(p != NULL, "linear compiles");
    if (!p) continue;
    tu_fetch(p, yt, y);
    tu_get_var(p, "fc1.weight", w);
    tu_get_var(p, "fc1.bias", b);
    /* PyTorch init: U(-1/sqrt(in), 1/sqrt(in)) for both */
    double bound = 1 / sqrt(5.0), mx = 0;
    bool distinct = w[0] != w[1];
    for (int i = 0; i < 20; i++)
      mx = fmax(mx, fabs(w[i]));
    for (int i = 0; i < 4; i++)
      mx = fmax(mx, fabs(b[i]));
    TU_CHECK(mx <= bound && mx > 0.3 * bound && distinct, "linear init within 1/sqrt(in): max %g",
             mx);
    ref_linear(x, w, b, want, 6, 5, 4);
    TU_CHECK(tu_close("linear", y, want, 24, f64 ? 1e-12 : 1e-5, f64 ? 1e-12 : 1e-5), "linear %s",
             f64 ? "f64" : "f32");
    asg_program_free(p);
    asg_graph_free(g);
  }
  /* no bias, custom init */
  {
    asg_graph *g = asg_graph_new();
    asg_init ones = asg_init_ones();
    asg_linear_opts o = {.no_bias = true, .init = &ones};
    asg_layer *fc = asg_nn_linear_ex(g, "nb", 3, 2, &o);
    double x[3] = {1, 2, 4}, y[2];
    asg_tensor *yt = asg_layer_apply(fc, tu_constant(g, ASG_F32, ASG_SHAPE(1, 3), x));
    TU_CHECK(asg_layer_param(fc, "bias") == NULL && asg_graph_find(g, "nb.bias") == NULL,
             "no_bias");
    TU_CHECK(tu_eval(g, yt, y) == 0 && y[0] == 7 && y[1] == 7, "no-bias linear with ones init");
    asg_graph_free(g);
  }
  /* wrong in-features: error names the layer and both shapes */
  {
    asg_graph *g = asg_graph_new();
    asg_layer *fc = asg_nn_linear(g, "fc2", 3, 4);
    asg_tensor *y = asg_layer_apply(fc, asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 5)));
    const char *e = asg_graph_error(g);
    TU_CHECK(!y && tu_contains(e, "fc2") && tu_contains(e, "[2,5]") && tu_contains(e, "[4,3]"),
             "linear error: %s", e ? e : "(none)");
    TU_CHECK(asg_layer_apply(fc, NULL) == NULL, "poisoned input stays poisoned");
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    TU_CHECK(asg_nn_linear(g, "bad", 0, 4) == NULL && tu_contains(asg_graph_error(g), "bad"),
             "linear with 0 in-features: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
    asg_graph_free(g);
  }
}

static asg_tensor *build_linear_x(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  asg_linear_opts o = {.dtype = ASG_F64};
  return asg_layer_apply(asg_nn_linear_ex(g, "fc", 4, 3, &o), xs[0]);
}

static asg_tensor *build_rmsnorm_x(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  return asg_layer_apply(asg_nn_rmsnorm(g, "rms", 5, 0), xs[0]); /* f32 weight, cast to f64 */
}

static void test_linear_rms_grads(void) {
  tu_gradcheck("linear d/dx", 1, (asg_shape[]){ASG_SHAPE(2, 3, 4)}, build_linear_x, NULL, NULL);
  tu_gradcheck("rmsnorm d/dx", 1, (asg_shape[]){ASG_SHAPE(2, 3, 5)}, build_rmsnorm_x, NULL, NULL);
  {
    asg_graph *g = asg_graph_new();
    double x[2 * 3 * 4];
    tu_rand(3, x, 24, -1, 1);
    asg_linear_opts o = {.dtype = ASG_F64};
    asg_tensor *y = asg_layer_apply(asg_nn_linear_ex(g, "fc", 4, 3, &o),
                                    tu_constant(g, ASG_F64, ASG_SHAPE(2, 3, 4), x));
    param_gradcheck("linear f64 params", g, y, 2, (const char *[]){"fc.weight", "fc.bias"});
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    double x[6 * 4];
    tu_rand(4, x, 24, -1, 1);
    /* f32 parameters, f64 activations (the layer casts): f64-accurate loss */
    asg_tensor *y =
        asg_layer_apply(asg_nn_linear(g, "fc", 4, 3), tu_constant(g, ASG_F64, ASG_SHAPE(6, 4), x));
    param_gradcheck("linear f32 params", g, y, 2, (const char *[]){"fc.weight", "fc.bias"});
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    double x[2 * 5];
    tu_rand(5, x, 10, -1, 1);
    asg_tensor *y = asg_layer_apply(asg_nn_rmsnorm(g, "rms", 5, 0),
                                    tu_constant(g, ASG_F64, ASG_SHAPE(2, 5), x));
    param_gradcheck("rmsnorm weight", g, y, 1, (const char *[]){"rms.weight"});
    asg_graph_free(g);
  }
}

/* ---- conv ---- */
static void ref_conv2d(const double *x, const double *w, const double *b, double *y, int N, int C,
                       int H, int W, int O, int KH, int KW, int s, int pd, int dl, int G, int OH,
                       int OW) {
  int cg = C / G, og = O / G;
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          double acc = b ? b[o] : 0;
          int gi = o / og;
          for (int c = 0; c < cg; c++)
            for (int kh = 0; kh < KH; kh++)
              for (int kw = 0; kw < KW; kw++) {
                int ih = oh * s - pd + kh * dl, iw = ow * s - pd + kw * dl;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                acc += x[((n * C + gi * cg + c) * H + ih) * W + iw] *
                       w[((o * cg + c) * KH + kh) * KW + kw];
              }
          y[((n * O + o) * OH + oh) * OW + ow] = acc;
        }
}

/* transposed conv: scatter each input pixel through w [C, O, KH, KW] (groups 1) */
static void ref_convt(const double *x, const double *w, const double *b, double *y, int N, int C,
                      int H, int W, int O, int K, int s, int pd, int OH, int OW) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < O; o++)
      for (int i = 0; i < OH * OW; i++)
        y[(n * O + o) * OH * OW + i] = b[o];
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      for (int ih = 0; ih < H; ih++)
        for (int iw = 0; iw < W; iw++)
          for (int o = 0; o < O; o++)
            for (int kh = 0; kh < K; kh++)
              for (int kw = 0; kw < K; kw++) {
                int oh = ih * s - pd + kh, ow = iw * s - pd + kw;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                y[((n * O + o) * OH + oh) * OW + ow] +=
                    x[((n * C + c) * H + ih) * W + iw] * w[((c * O + o) * K + kh) * K + kw];
              }
}

static void test_conv(void) {
  {
    asg_graph *g = asg_graph_new();
    double x[2 * 4 * 5 * 5], w[6 * 2 * 3 * 3], b[6], y[2 * 6 * 3 * 3], want[2 * 6 * 3 * 3];
    tu_rand(11, x, 200, -1, 1);
    asg_conv_params cp = {.stride = {2, 2}, .padding = {1, 1}, .groups = 2};
    asg_layer *cv = asg_nn_conv2d(g, "conv1", 4, 6, 3, 3, cp, true);
    asg_tensor *yt = asg_layer_apply(cv, tu_constant(g, ASG_F64, ASG_SHAPE(2, 4, 5, 5), x));
    TU_CHECK(shape_is(asg_graph_find(g, "conv1.weight"), ASG_SHAPE(6, 2, 3, 3)) &&
                 shape_is(asg_graph_find(g, "conv1.bias"), ASG_SHAPE(6)),
             "conv1 params [out, in/groups, kh, kw]");
    TU_CHECK(shape_is(yt, ASG_SHAPE(2, 6, 3, 3)), "conv2d out shape");
    asg_program *p = compile_run(g, 1, &yt);
    TU_CHECK(p != NULL, "conv2d compiles: %s", asg_graph_error(g) ? asg_graph_error(g) : "");
    if (p) {
      tu_fetch(p, yt, y);
      tu_get_var(p, "conv1.weight", w);
      tu_get_var(p, "conv1.bias", b);
      double bound = 1 / sqrt(2.0 * 9), mx = 0;
      for (int i = 0; i < 108; i++)
        mx = fmax(mx, fabs(w[i]));
      for (int i = 0; i < 6; i++)
        mx = fmax(mx, fabs(b[i]));
      TU_CHECK(mx <= bound && mx > 0.5 * bound, "conv init bound 1/sqrt(fan_in): %g", mx);
      ref_conv2d(x, w, b, want, 2, 4, 5, 5, 6, 3, 3, 2, 1, 1, 2, 3, 3);
      TU_CHECK(tu_close("conv2d", y, want, 108, 1e-10, 1e-10), "conv2d layer vs reference");
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    double x[1 * 3 * 3 * 3], w[3 * 2 * 3 * 3], b[2], y[2 * 5 * 5], want[2 * 5 * 5];
    tu_rand(12, x, 27, -1, 1);
    asg_conv_params cp = {.stride = {2, 2}, .padding = {1, 1}};
    asg_layer *cv = asg_nn_conv_transpose2d(g, "up", 3, 2, 3, 3, cp, true);
    asg_tensor *yt = asg_layer_apply(cv, tu_constant(g, ASG_F64, ASG_SHAPE(1, 3, 3, 3), x));
    TU_CHECK(shape_is(asg_graph_find(g, "up.weight"), ASG_SHAPE(3, 2, 3, 3)),
             "convT weight [in, out, kh, kw]");
    TU_CHECK(shape_is(yt, ASG_SHAPE(1, 2, 5, 5)), "conv_transpose2d out shape");
    asg_program *p = compile_run(g, 1, &yt);
    TU_CHECK(p != NULL, "conv_transpose2d compiles");
    if (p) {
      tu_fetch(p, yt, y);
      tu_get_var(p, "up.weight", w);
      tu_get_var(p, "up.bias", b);
      double bound = 1 / sqrt(2.0 * 9), mx = 0; /* fan_in from dims[1]*k*k, as PyTorch */
      for (int i = 0; i < 54; i++)
        mx = fmax(mx, fabs(w[i]));
      TU_CHECK(mx <= bound && mx > 0.5 * bound, "convT init bound: %g", mx);
      ref_convt(x, w, b, want, 1, 3, 3, 3, 2, 3, 2, 1, 5, 5);
      TU_CHECK(tu_close("conv_transpose2d", y, want, 50, 1e-10, 1e-10),
               "conv_transpose2d layer vs reference");
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    asg_layer *cv = asg_nn_conv2d(g, "c3", 3, 4, 3, 3, (asg_conv_params){0}, false);
    TU_CHECK(asg_layer_param(cv, "bias") == NULL, "conv without bias");
    asg_tensor *y = asg_layer_apply(cv, asg_input(g, "x", ASG_F32, ASG_SHAPE(1, 2, 8, 8)));
    TU_CHECK(!y && tu_contains(asg_graph_error(g), "c3") &&
                 tu_contains(asg_graph_error(g), "[1,2,8,8]"),
             "conv channel error: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
    asg_graph_free(g);
    g = asg_graph_new();
    TU_CHECK(!asg_nn_conv2d(g, "c4", 3, 4, 3, 3, (asg_conv_params){.groups = 2}, true) &&
                 tu_contains(asg_graph_error(g), "c4") && tu_contains(asg_graph_error(g), "groups"),
             "conv groups error: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
    asg_graph_free(g);
  }
}

/* ---- batch norm ---- */
/* x [N, C, S] flattened spatial; biased var normalizes, unbiased updates */
static void ref_bn_stats(const double *x, int N, int C, int S, double *mean, double *vb,
                         double *vu) {
  for (int c = 0; c < C; c++) {
    double s = 0, q = 0;
    for (int n = 0; n < N; n++)
      for (int i = 0; i < S; i++)
        s += x[(n * C + c) * S + i];
    double m = s / (N * S);
    for (int n = 0; n < N; n++)
      for (int i = 0; i < S; i++)
        q += (x[(n * C + c) * S + i] - m) * (x[(n * C + c) * S + i] - m);
    mean[c] = m;
    vb[c] = q / (N * S);
    vu[c] = q / (N * S - 1);
  }
}

static void test_batchnorm(void) {
  for (int rank4 = 0; rank4 < 2; rank4++) {
    int N = 3, C = 2, S = rank4 ? 4 : 1, n = N * C * S;
    asg_shape xs = rank4 ? ASG_SHAPE(3, 2, 2, 2) : ASG_SHAPE(3, 2);
    double x[24], y[24], want[24], mean[2], vb[2], vu[2], rm[2], rv[2];
    tu_rand(21 + (unsigned)rank4, x, n, -2, 3);
    ref_bn_stats(x, N, C, S, mean, vb, vu);
    const double gam[2] = {1.5, -0.5}, bet[2] = {0.25, 2};
    /* training graph: one run of a program with the updates among its outputs */
    asg_graph *g = asg_graph_new();
    asg_layer *bn = asg_nn_batchnorm(g, "bn", 2, 0.2, 0);
    asg_tensor *yt = asg_layer_apply(bn, tu_constant(g, ASG_F32, xs, x));
    TU_CHECK(asg_graph_update_count(g) == 3, "batchnorm registers 3 updates (with the count)");
    TU_CHECK(!asg_variable_is_trainable(asg_graph_find(g, "bn.running_mean")) &&
                 !asg_variable_is_trainable(asg_graph_find(g, "bn.running_var")) &&
                 asg_variable_is_trainable(asg_graph_find(g, "bn.weight")),
             "running stats are frozen");
    asg_tensor *outs[3] = {yt, asg_graph_update(g, 0), asg_graph_update(g, 1)};
    asg_program *p = asg_compile(g, 3, outs, NULL);
    TU_CHECK(p != NULL, "batchnorm compiles: %s", asg_last_error());
    if (p) {
      tu_set_var(p, "bn.weight", gam);
      tu_set_var(p, "bn.bias", bet);
      asg_program_run(p);
      tu_fetch(p, yt, y);
      for (int k = 0; k < n; k++) {
        int c = (k / S) % C;
        want[k] = (x[k] - mean[c]) / sqrt(vb[c] + 1e-5) * gam[c] + bet[c];
      }
      TU_CHECK(tu_close("bn train", y, want, n, 1e-5, 1e-5), "batchnorm train rank %d",
               rank4 ? 4 : 2);
      tu_get_var(p, "bn.running_mean", rm);
      tu_get_var(p, "bn.running_var", rv);
      double wm[2], wv[2];
      for (int c = 0; c < 2; c++) {
        wm[c] = 0.8 * 0 + 0.2 * mean[c];
        wv[c] = 0.8 * 1 + 0.2 * vu[c]; /* unbiased, as PyTorch */
      }
      TU_CHECK(tu_close("running_mean", rm, wm, 2, 1e-6, 1e-6) &&
                   tu_close("running_var", rv, wv, 2, 1e-6, 1e-6),
               "running stats after one run");
      asg_program_free(p);
    }
    asg_graph_free(g);

    /* eval graph: running statistics, no updates */
    g = asg_graph_new();
    asg_graph_set_training(g, false);
    bn = asg_nn_batchnorm(g, "bn", 2, 0, 1e-3);
    yt = asg_layer_apply(bn, tu_constant(g, ASG_F32, xs, x));
    TU_CHECK(asg_graph_update_count(g) == 0, "eval batchnorm registers no update");
    p = asg_compile(g, 1, &yt, NULL);
    if (p) {
      const double m2[2] = {0.5, -1}, v2[2] = {4, 0.25};
      tu_set_var(p, "bn.running_mean", m2);
      tu_set_var(p, "bn.running_var", v2);
      tu_set_var(p, "bn.weight", gam);
      tu_set_var(p, "bn.bias", bet);
      asg_program_run(p);
      tu_fetch(p, yt, y);
      for (int k = 0; k < n; k++) {
        int c = (k / S) % C;
        want[k] = (x[k] - m2[c]) / sqrt(v2[c] + 1e-3) * gam[c] + bet[c];
      }
      TU_CHECK(tu_close("bn eval", y, want, n, 1e-5, 1e-5), "batchnorm eval uses running stats");
      asg_program_free(p);
    }
    TU_CHECK(p != NULL, "eval batchnorm compiles");
    asg_graph_free(g);
  }
  /* asg_compile_train runs the registered updates (SGD lr 0 leaves params) */
  {
    double x[8];
    tu_rand(23, x, 8, -1, 1);
    asg_graph *g = asg_graph_new();
    asg_layer *bn = asg_nn_batchnorm(g, "bn", 2, 0, 0);
    asg_tensor *loss = asg_sum(asg_layer_apply(bn, tu_constant(g, ASG_F32, ASG_SHAPE(4, 2), x)),
                               ASG_ALL_AXES, false);
    asg_program *p = loss ? asg_compile_train(g, loss, asg_sgd(0, 0), 0, NULL, NULL) : NULL;
    TU_CHECK(p != NULL, "compile_train with batchnorm: %s", asg_last_error());
    if (p) {
      double mean[2], vb[2], vu[2], rm[2], rv[2], wm[2], wv[2];
      ref_bn_stats(x, 4, 2, 1, mean, vb, vu);
      asg_program_run(p);
      asg_program_run(p);
      tu_get_var(p, "bn.running_mean", rm);
      tu_get_var(p, "bn.running_var", rv);
      for (int c = 0; c < 2; c++) { /* two steps of momentum 0.1 */
        wm[c] = 0.9 * (0.1 * mean[c]) + 0.1 * mean[c];
        wv[c] = 0.9 * (0.9 + 0.1 * vu[c]) + 0.1 * vu[c];
      }
      TU_CHECK(tu_close("rm", rm, wm, 2, 1e-6, 1e-6) && tu_close("rv", rv, wv, 2, 1e-6, 1e-6),
               "compile_train updates running stats each step");
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    asg_layer *bn = asg_nn_batchnorm(g, "bn7", 3, 0, 0);
    TU_CHECK(!asg_layer_apply(bn, asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 2))) &&
                 tu_contains(asg_graph_error(g), "bn7") && tu_contains(asg_graph_error(g), "[4,2]"),
             "batchnorm channel error: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
    asg_graph_free(g);
  }
}

/* ---- layer norm, RMS norm ---- */
static void test_norms(void) {
  double x[2 * 3 * 5], y[30], want[30], w[5], b[5];
  tu_rand(31, x, 30, -2, 2);
  tu_rand(32, w, 5, 0.5, 1.5);
  tu_rand(33, b, 5, -1, 1);
  for (int rms = 0; rms < 2; rms++) {
    asg_graph *g = asg_graph_new();
    asg_layer *ln = rms ? asg_nn_rmsnorm(g, "rn", 5, 0) : asg_nn_layernorm(g, "ln", 5, 0);
    asg_tensor *yt = asg_layer_apply(ln, tu_constant(g, ASG_F64, ASG_SHAPE(2, 3, 5), x));
    TU_CHECK(shape_is(asg_layer_param(ln, "weight"), ASG_SHAPE(5)) &&
                 (rms ? asg_layer_param(ln, "bias") == NULL
                      : shape_is(asg_layer_param(ln, "bias"), ASG_SHAPE(5))),
             "%s params", rms ? "rmsnorm" : "layernorm");
    asg_program *p = compile_run(g, 1, &yt);
    TU_CHECK(p != NULL, "norm compiles");
    if (!p) continue;
    tu_set_var(p, rms ? "rn.weight" : "ln.weight", w);
    if (!rms) tu_set_var(p, "ln.bias", b);
    asg_program_run(p);
    tu_fetch(p, yt, y);
    for (int r = 0; r < 6; r++) {
      const double *xr = x + r * 5;
      double m = 0, q = 0;
      for (int i = 0; i < 5; i++)
        m += xr[i] / 5;
      for (int i = 0; i < 5; i++)
        q += (rms ? xr[i] * xr[i] : (xr[i] - m) * (xr[i] - m)) / 5;
      for (int i = 0; i < 5; i++)
        want[r * 5 + i] =
            rms ? xr[i] / sqrt(q + 1e-6) * (double)(float)w[i]
                : (xr[i] - m) / sqrt(q + 1e-5) * (double)(float)w[i] + (double)(float)b[i];
    }
    TU_CHECK(tu_close(rms ? "rmsnorm" : "layernorm", y, want, 30, 1e-10, 1e-10), "%s forward",
             rms ? "rmsnorm" : "layernorm");
    asg_program_free(p);
    TU_CHECK(!asg_layer_apply(ln, tu_constant(g, ASG_F32, ASG_SHAPE(2, 4), x)) &&
                 tu_contains(asg_graph_error(g), rms ? "rn" : "ln") &&
                 tu_contains(asg_graph_error(g), "[2,4]"),
             "norm dim error: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
    asg_graph_free(g);
  }
}

/* ---- embedding ---- */
static void test_embedding(void) {
  for (int i64 = 0; i64 < 2; i64++) {
    asg_graph *g = asg_graph_new();
    asg_layer *e = asg_nn_embedding(g, "emb", 7, 3);
    double idx[4] = {6, 0, 3, 3}, y[12], w[21], want[12];
    asg_tensor *yt =
        asg_layer_apply(e, tu_constant(g, i64 ? ASG_I64 : ASG_I32, ASG_SHAPE(2, 2), idx));
    TU_CHECK(shape_is(yt, ASG_SHAPE(2, 2, 3)) &&
                 shape_is(asg_graph_find(g, "emb.weight"), ASG_SHAPE(7, 3)),
             "embedding shapes");
    asg_program *p = compile_run(g, 1, &yt);
    TU_CHECK(p != NULL, "embedding compiles");
    if (!p) continue;
    tu_fetch(p, yt, y);
    tu_get_var(p, "emb.weight", w);
    for (int k = 0; k < 4; k++)
      for (int d = 0; d < 3; d++)
        want[k * 3 + d] = w[(int)idx[k] * 3 + d];
    TU_CHECK(tu_close("embedding", y, want, 12, 0, 0), "embedding gathers rows (%s)",
             i64 ? "i64" : "i32");
    double s = 0, q = 0; /* N(0,1) init: rough moments over 21 values */
    for (int k = 0; k < 21; k++)
      s += w[k], q += w[k] * w[k];
    TU_CHECK(fabs(s / 21) < 0.8 && q / 21 > 0.3 && q / 21 < 2.5, "embedding init ~N(0,1)");
    asg_program_free(p);
    TU_CHECK(!asg_layer_apply(e, tu_constant(g, ASG_F32, ASG_SHAPE(2), idx)) &&
                 tu_contains(asg_graph_error(g), "emb"),
             "embedding float index error: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
    asg_graph_free(g);
  }
}

/* ---- dropout, pools, flatten ---- */
static void test_dropout(void) {
  enum { N = 2000 };
  double *ones = malloc(sizeof(double) * N), *y = malloc(sizeof(double) * N),
         *y2 = malloc(sizeof(double) * N);
  for (int i = 0; i < N; i++)
    ones[i] = 1;
  for (int train = 0; train < 2; train++) {
    asg_graph *g = asg_graph_new();
    asg_graph_set_training(g, train);
    asg_layer *d = asg_nn_dropout(g, "drop", 0.25);
    asg_tensor *yt = asg_layer_apply(d, tu_constant(g, ASG_F32, ASG_SHAPE(N), ones));
    asg_program *p = compile_run(g, 1, &yt);
    TU_CHECK(p != NULL, "dropout compiles");
    if (!p) continue;
    tu_fetch(p, yt, y);
    asg_program_run(p);
    tu_fetch(p, yt, y2);
    int zeros = 0, ok = 1, same = 1;
    for (int i = 0; i < N; i++) {
      zeros += y[i] == 0;
      if (train)
        ok &= y[i] == 0 || fabs(y[i] - 1 / 0.75) < 1e-6;
      else
        ok &= y[i] == 1;
      same &= y[i] == y2[i];
    }
    if (train)
      TU_CHECK(ok && zeros > 400 && zeros < 600 && !same,
               "training dropout: values {0, 1/(1-p)}, %d/2000 zeros, fresh mask per run", zeros);
    else
      TU_CHECK(ok && same, "eval dropout is the identity");
    asg_program_free(p);
    asg_graph_free(g);
  }
  asg_graph *g = asg_graph_new();
  TU_CHECK(!asg_nn_dropout(g, "d9", 1.0) && tu_contains(asg_graph_error(g), "d9"),
           "dropout p=1 rejected");
  asg_graph_free(g);
  free(ones);
  free(y);
  free(y2);
}

static void test_pools(void) {
  double x[2 * 4 * 4], y[8], want[8];
  tu_rand(41, x, 32, -1, 1);
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = tu_constant(g, ASG_F64, ASG_SHAPE(1, 2, 4, 4), x);
  asg_tensor *mp =
      asg_layer_apply(asg_nn_maxpool2d(g, "mp", (asg_pool_params){.kernel = {2, 2}}), xt);
  asg_tensor *ap =
      asg_layer_apply(asg_nn_avgpool2d(g, "ap", (asg_pool_params){.kernel = {2, 2}}), xt);
  asg_tensor *ad = asg_layer_apply(asg_nn_adaptive_avgpool2d(g, "gap", 1, 1), xt);
  asg_tensor *fl = asg_layer_apply(asg_nn_flatten(g, "fl", 1), xt);
  TU_CHECK(shape_is(fl, ASG_SHAPE(1, 32)), "flatten [1,2,4,4] from 1 -> [1,32]");
  TU_CHECK(shape_is(mp, ASG_SHAPE(1, 2, 2, 2)) && shape_is(ad, ASG_SHAPE(1, 2, 1, 1)),
           "pool shapes");
  asg_tensor *outs[3] = {mp, ap, ad};
  asg_program *p = compile_run(g, 3, outs);
  TU_CHECK(p != NULL, "pools compile");
  if (p) {
    for (int max = 1; max >= 0; max--) {
      tu_fetch(p, max ? mp : ap, y);
      for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++)
          for (int j = 0; j < 2; j++) {
            double m = -1e300, s = 0;
            for (int a = 0; a < 2; a++)
              for (int b = 0; b < 2; b++) {
                double v = x[(c * 4 + 2 * i + a) * 4 + 2 * j + b];
                m = fmax(m, v);
                s += v / 4;
              }
            want[(c * 2 + i) * 2 + j] = max ? m : s;
          }
      TU_CHECK(tu_close(max ? "maxpool" : "avgpool", y, want, 8, 1e-12, 1e-12), "%s layer",
               max ? "maxpool" : "avgpool");
    }
    tu_fetch(p, ad, y);
    for (int c = 0; c < 2; c++) {
      want[c] = 0;
      for (int i = 0; i < 16; i++)
        want[c] += x[c * 16 + i] / 16;
    }
    TU_CHECK(tu_close("adaptive", y, want, 2, 1e-12, 1e-12), "adaptive avg pool to 1x1 = mean");
    asg_program_free(p);
  }
  asg_graph_free(g);
}

/* sequential + activation with parameters registered by name */
static void test_sequential(void) {
  asg_graph *g = asg_graph_new();
  asg_layer *ls[3] = {asg_nn_linear(g, "fc1", 4, 8), asg_nn_activation(g, "relu", ASG_ACT_RELU),
                      asg_nn_linear(g, "fc2", 8, 2)};
  asg_layer *mlp = asg_nn_sequential(g, "mlp", 3, ls);
  asg_tensor *y = asg_layer_apply(mlp, asg_input(g, "x", ASG_F32, ASG_SHAPE(5, 4)));
  TU_CHECK(shape_is(y, ASG_SHAPE(5, 2)) && asg_graph_variable_count(g) == 4 &&
               shape_is(asg_graph_find(g, "fc2.weight"), ASG_SHAPE(2, 8)),
           "sequential MLP: 4 variables, fc2.weight [2,8]");
  TU_CHECK(tu_contains(asg_tensor_scope(y), "fc2"), "output made under scope fc2: %s",
           asg_tensor_scope(y) ? asg_tensor_scope(y) : "(null)");
  asg_graph_free(g);
}

/* The layers (asg_nn_upsample, asg_nn_pad) give the ops' results; a bad
 * pad count is an error naming the layer. */
static void resample_layers(void) {
  asg_graph *g = asg_graph_new();
  double xv[2 * 3 * 4 * 5];
  tu_rand(7, xv, 120, -1, 1);
  asg_tensor *x = tu_constant(g, ASG_F64, ASG_SHAPE(2, 3, 4, 5), xv);
  asg_upsample_params up = {.mode = ASG_UPSAMPLE_LINEAR, .align_corners = true, .size = {7, 9}};
  const int64_t pads[4] = {1, 2, 2, 1};
  asg_tensor *a = asg_layer_apply(asg_nn_upsample(g, "up", up), x), *b = asg_upsample(x, up);
  asg_tensor *c = asg_layer_apply(asg_nn_pad(g, "pad", pads, 4, ASG_PAD_REFLECT, 0), x);
  asg_tensor *d = asg_pad(x, pads, 4, ASG_PAD_REFLECT, 0);
  static double ga[2 * 3 * 7 * 9], gb[2 * 3 * 7 * 9], gc[2 * 3 * 7 * 8], gd[2 * 3 * 7 * 8];
  TU_CHECK(a && c && tu_eval(g, a, ga) == 0 && tu_eval(g, b, gb) == 0 && tu_eval(g, c, gc) == 0 &&
               tu_eval(g, d, gd) == 0,
           "layers: %s", asg_graph_error(g) ? asg_graph_error(g) : asg_last_error());
  TU_CHECK(a && asg_shape_equal(asg_tensor_shape(a), ASG_SHAPE(2, 3, 7, 9)) &&
               tu_close("upsample layer", ga, gb, 378, 0, 0),
           "asg_nn_upsample gives asg_upsample's values");
  TU_CHECK(c && asg_shape_equal(asg_tensor_shape(c), ASG_SHAPE(2, 3, 7, 8)) &&
               tu_close("pad layer", gc, gd, 336, 0, 0),
           "asg_nn_pad gives asg_pad's values");
  asg_graph_free(g);
  g = asg_graph_new();
  asg_layer *bad = asg_nn_pad(g, "badpad", pads, 17, ASG_PAD_CONSTANT, 0);
  TU_CHECK(!bad && tu_contains(asg_graph_error(g), "badpad"), "17 pad values: %s",
           asg_graph_error(g) ? asg_graph_error(g) : "(no error)");
  asg_graph_free(g);
}

int main(void) {
  test_linear();
  test_linear_rms_grads();
  test_conv();
  test_batchnorm();
  test_norms();
  test_embedding();
  test_dropout();
  test_pools();
  test_sequential();
  resample_layers();
  return tu_finish();
}
