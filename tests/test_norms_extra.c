/* Group norm, instance norm, batch norm's cumulative mode and
 * num_batches_tracked, and layer parameters in f64 (nn.h).
 * - group/instance norm forward against float64 loops written here, with
 *   f32 and f64 parameters and inputs, affine or not, ranks 2 to 4, and a
 *   symbolic batch; gradients of the input (tu_gradcheck) and of weight and
 *   bias (central differences on the program's variables) in float64;
 * - batch norm with momentum None over four steps against PyTorch's values
 *   (literals below), through a checkpoint saved after two steps and loaded
 *   into a fresh program, then an eval program loading that checkpoint;
 *   num_batches_tracked counted in momentum mode too; a checkpoint without
 *   num_batches_tracked (saved before it existed) loads and sets it to 0;
 * - f64 parameters for every norm and the embedding; f16, bf16 and integer
 *   parameter dtypes refused naming the layer;
 * - bad channels, groups, ranks and options name the layer.
 * Tolerances: f64 paths 1e-12; f32 activations 1e-5. */
#include <stdlib.h>
#include <string.h>

#include "asg/io.h"
#include "asg/nn.h"
#include "testutil.h"

static const char *tmpdir;

/* y[n, c, s] of x [N, C, S] normalized over groups of C/G channels and S
 * positions (biased variance), then * w[c] + b[c] (w, b may be NULL). */
static void ref_group(const double *x, int N, int C, int S, int G, double eps, const double *w,
                      const double *b, double *y) {
  int Cg = C / G;
  for (int n = 0; n < N; n++)
    for (int gi = 0; gi < G; gi++) {
      const double *xg = x + ((long)n * C + gi * Cg) * S;
      double m = 0, v = 0;
      for (int i = 0; i < Cg * S; i++)
        m += xg[i];
      m /= Cg * S;
      for (int i = 0; i < Cg * S; i++)
        v += (xg[i] - m) * (xg[i] - m);
      v /= Cg * S;
      for (int i = 0; i < Cg * S; i++) {
        int c = gi * Cg + i / S;
        double z = (xg[i] - m) / sqrt(v + eps);
        y[((long)n * C + gi * Cg) * S + i] = z * (w ? w[c] : 1) + (b ? b[c] : 0);
      }
    }
}

static asg_program *compile1(asg_graph *g, asg_tensor *y) {
  if (!y) {
    printf("  graph error: %s\n", asg_graph_error(g));
    return NULL;
  }
  asg_program *p = asg_compile(g, 1, &y, NULL);
  if (!p) printf("  compile: %s\n", asg_last_error());
  return p;
}

typedef struct gcase {
  int inst; /* instance norm (G = C) */
  int G, C;
  asg_shape xs; /* [N, C, ...] */
  bool affine;
} gcase;

static int spatial(asg_shape s) {
  int S = 1;
  for (int d = 2; d < s.ndim; d++)
    S *= (int)s.dims[d];
  return S;
}

static asg_layer *make_gn(asg_graph *g, const gcase *c, asg_dtype dt, double eps) {
  if (c->inst) {
    asg_instancenorm_opts o = {.eps = eps, .affine = c->affine, .dtype = dt};
    return asg_nn_instancenorm(g, "gn", c->C, &o);
  }
  asg_groupnorm_opts o = {.eps = eps, .no_affine = !c->affine, .dtype = dt};
  return asg_nn_groupnorm(g, "gn", c->G, c->C, &o);
}

static const gcase GCASES[] = {
    {0, 3, 6, {3, {2, 6, 5}}, true},       {0, 2, 4, {2, {3, 4}}, true},
    {0, 1, 4, {4, {2, 4, 2, 3}}, true},    {0, 4, 4, {4, {2, 4, 3, 2}}, false},
    {1, 3, 3, {3, {2, 3, 5}}, false},      {1, 3, 3, {4, {2, 3, 2, 3}}, true},
    {1, 2, 2, {5, {1, 2, 2, 2, 2}}, true},
};
#define N_GCASES (int)(sizeof GCASES / sizeof GCASES[0])

static void test_group_forward(void) {
  for (int ci = 0; ci < N_GCASES; ci++) {
    const gcase *c = &GCASES[ci];
    int N = (int)c->xs.dims[0], S = c->xs.ndim > 2 ? spatial(c->xs) : 1;
    long n = (long)N * c->C * S;
    double x[64], y[64], want[64], w[8], b[8];
    tu_rand(100 + (unsigned)ci, x, n, -2, 3);
    tu_rand(200 + (unsigned)ci, w, c->C, 0.5, 1.5);
    tu_rand(300 + (unsigned)ci, b, c->C, -1, 1);
    for (int pd = 0; pd < 2; pd++)     /* parameter dtype */
      for (int xd = 0; xd < 2; xd++) { /* activation dtype */
        asg_dtype pdt = pd ? ASG_F64 : ASG_F32, xdt = xd ? ASG_F64 : ASG_F32;
        double eps = ci == 1 ? 1e-3 : 0; /* 0: the 1e-5 default */
        asg_graph *g = asg_graph_new();
        asg_layer *l = make_gn(g, c, pdt, eps);
        asg_tensor *wv = asg_layer_param(l, "weight"), *bv = asg_layer_param(l, "bias");
        TU_CHECK(c->affine ? (wv && bv && asg_tensor_dtype(wv) == pdt &&
                              asg_shape_equal(asg_tensor_shape(wv), ASG_SHAPE(c->C)) &&
                              asg_graph_find(g, "gn.bias") == bv)
                           : (!wv && !bv && asg_graph_variable_count(g) == 0),
                 "case %d: %s", ci, c->affine ? "gn.weight, gn.bias [C]" : "no parameters");
        asg_tensor *yt = asg_layer_apply(l, tu_constant(g, xdt, c->xs, x));
        TU_CHECK(yt && asg_tensor_dtype(yt) == xdt && asg_shape_equal(asg_tensor_shape(yt), c->xs),
                 "case %d: output has the input's shape and dtype", ci);
        asg_program *p = compile1(g, yt);
        if (p) {
          if (c->affine) {
            tu_set_var(p, "gn.weight", w);
            tu_set_var(p, "gn.bias", b);
          }
          asg_program_run(p);
          tu_fetch(p, yt, y);
          double wr[8], br[8], xr[64]; /* the values as the program holds them */
          for (int i = 0; i < c->C; i++) {
            wr[i] = pd ? w[i] : (double)(float)w[i];
            br[i] = pd ? b[i] : (double)(float)b[i];
          }
          for (long i = 0; i < n; i++)
            xr[i] = xd ? x[i] : (double)(float)x[i];
          ref_group(xr, N, c->C, S, c->inst ? c->C : c->G, eps ? eps : 1e-5, c->affine ? wr : NULL,
                    c->affine ? br : NULL, want);
          double tol = xd ? 1e-12 : 1e-5;
          TU_CHECK(tu_close(c->inst ? "instancenorm" : "groupnorm", y, want, n, tol, tol),
                   "case %d forward (params %s, input %s)", ci, pd ? "f64" : "f32",
                   xd ? "f64" : "f32");
          asg_program_free(p);
        } else {
          TU_CHECK(0, "case %d compiles", ci);
        }
        asg_graph_free(g);
      }
  }
}

/* A symbolic batch: one program, fed batches of 2 and 3. */
static void test_group_symbolic(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 0);
  asg_layer *l = asg_nn_groupnorm(g, "gn", 2, 4, NULL);
  asg_tensor *yt = asg_layer_apply(l, asg_input(g, "x", ASG_F64, ASG_SHAPE(B, 4, 3)));
  asg_program *p = compile1(g, yt);
  TU_CHECK(p != NULL, "groupnorm with a symbolic batch compiles");
  for (int N = 2; N <= 3 && p; N++) {
    double x[36], y[36], want[36];
    tu_rand(400 + (unsigned)N, x, N * 12, -1, 1);
    asg_status st = asg_program_feed_tensor(p, "x", ASG_F64, ASG_SHAPE(N, 4, 3), x);
    if (!st) st = asg_program_run(p);
    if (!st) st = asg_program_fetch(p, yt, y, sizeof(double) * (size_t)(N * 12));
    ref_group(x, N, 4, 3, 2, 1e-5, NULL, NULL, want);
    TU_CHECK(!st && tu_close("symbolic groupnorm", y, want, N * 12, 1e-12, 1e-12),
             "symbolic batch %d: %s", N, st ? asg_last_error() : "");
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---- gradients ---- */
static asg_tensor *build_gn_x(asg_graph *g, asg_tensor **xs, void *ctx) {
  const gcase *c = ctx;
  asg_layer *l = make_gn(g, c, ASG_F64, 0);
  return asg_layer_apply(l, xs[0]);
}

/* Gradients of the layer's weight and bias (f64 variables) against central
 * differences of loss = sum(y * r) taken through the program's variables. */
static int param_gradcheck(const gcase *c, int ci) {
  asg_graph *g = asg_graph_new();
  asg_layer *l = make_gn(g, c, ASG_F64, 0);
  long nx = (long)asg_shape_numel(c->xs);
  double x[64], r[64], wv[8], bv[8];
  tu_rand(500 + (unsigned)ci, x, nx, -2, 2);
  tu_rand(600 + (unsigned)ci, r, nx, 0.5, 1.5);
  tu_rand(700 + (unsigned)ci, wv, c->C, 0.5, 1.5);
  tu_rand(800 + (unsigned)ci, bv, c->C, -1, 1);
  asg_tensor *y = asg_layer_apply(l, tu_constant(g, ASG_F64, c->xs, x));
  asg_tensor *loss = asg_sum(asg_mul(y, tu_constant(g, ASG_F64, c->xs, r)), ASG_ALL_AXES, false);
  asg_tensor *wrt[2] = {asg_layer_param(l, "weight"), asg_layer_param(l, "bias")}, *gr[2];
  const char *names[2] = {"gn.weight", "gn.bias"};
  int bad = 0;
  if (!loss || asg_grad(loss, 2, wrt, gr) != ASG_OK) {
    printf("  param gradcheck %d: %s %s\n", ci, asg_graph_error(g), asg_last_error());
    asg_graph_free(g);
    return 1;
  }
  asg_tensor *outs[3] = {loss, gr[0], gr[1]};
  asg_program *p = asg_compile(g, 3, outs, NULL);
  if (!p) {
    asg_graph_free(g);
    return 1;
  }
  tu_set_var(p, "gn.weight", wv);
  tu_set_var(p, "gn.bias", bv);
  asg_program_run(p);
  for (int k = 0; k < 2 && !bad; k++) {
    double an[8], *v = k ? bv : wv;
    tu_fetch(p, gr[k], an);
    for (int j = 0; j < c->C && !bad; j++) {
      const double eps = 1e-6, keep = v[j];
      v[j] = keep + eps;
      tu_set_var(p, names[k], v);
      asg_program_run(p);
      double lp = asg_program_scalar(p, loss);
      v[j] = keep - eps;
      tu_set_var(p, names[k], v);
      asg_program_run(p);
      double lm = asg_program_scalar(p, loss);
      v[j] = keep;
      tu_set_var(p, names[k], v);
      double num = (lp - lm) / (2 * eps);
      if (!(fabs(an[j] - num) <= 1e-6 * (fabs(num) > 1 ? fabs(num) : 1))) {
        printf("  case %d d/d%s[%d]: analytic %.10g numeric %.10g\n", ci, names[k], j, an[j], num);
        bad = 1;
      }
    }
  }
  asg_program_free(p);
  asg_graph_free(g);
  return bad;
}

static void test_group_grads(void) {
  for (int ci = 0; ci < N_GCASES; ci++) {
    const gcase *c = &GCASES[ci];
    char name[32];
    snprintf(name, sizeof name, "%s case %d", c->inst ? "instancenorm" : "groupnorm", ci);
    tu_gc_opts o = {.lo = -2, .hi = 2};
    TU_CHECK(tu_gradcheck(name, 1, &c->xs, build_gn_x, (void *)c, &o) == 0,
             "%s: input gradient by central differences", name);
    if (c->affine) TU_CHECK(param_gradcheck(c, ci) == 0, "%s: weight and bias gradients", name);
  }
}

/* ---- batch norm, momentum None (cumulative) ----
 * PyTorch (float64), printed with repr:
 *   bn = torch.nn.BatchNorm1d(3, momentum=None).double().train()
 *   bn.weight = [1.5, -0.5, 2.0]; bn.bias = [0.25, 2.0, -1.0]
 *   for s in range(4):
 *       x = [sin(0.7 i + 1.3 s) (1 + 0.5 s) + 0.1 s (i % 3) for i in range(24)] as [2, 3, 4]
 *       y = bn(x); print(bn.num_batches_tracked, bn.running_mean, bn.running_var)
 *   print(y.flatten()[:6]); bn.eval(); print(bn(x).flatten()[:6])  # x of step 4 */
static const double BN_RM[4][3] = {{0.3025498956361327, -0.3454931868177812, 0.348512902700915},
                                   {0.1191214748779569, -0.14248295191482546, 0.34360200010604214},
                                   {-0.10540956480965265, 0.19262112943458826, 0.1308701700671875},
                                   {-0.08254095008549636, 0.3467290995123992, 0.01181584484507582}};
static const double BN_RV[4][3] = {{0.4484715908011694, 0.39936225001814435, 0.39566401706542365},
                                   {0.8866745270934432, 0.8730485792319773, 0.8355031104240933},
                                   {1.0982013795080345, 1.135879970268932, 1.2173705757968345},
                                   {1.7771648873550614, 1.7329701082430826, 1.693750542310039}};
static const double BN_Y4[6] = {-1.150360293211219,  -1.532014908193685, -0.9543266422990196,
                                -0.3121242050889392, 1.8567606077414385, 1.4198017413238193};
static const double BN_EVAL[6] = {-1.591796080682977, -2.11479839502256,  -1.3231603847141797,
                                  -0.443115056424822, 1.6333273000387498, 1.0504444624133153};
static const double BN_W[3] = {1.5, -0.5, 2.0}, BN_B[3] = {0.25, 2.0, -1.0};

static void bn_input(int s, double *x) {
  for (int i = 0; i < 24; i++)
    x[i] = sin(0.7 * i + 1.3 * s) * (1 + 0.5 * s) + 0.1 * s * (i % 3);
}

/* A training program: bn (cumulative, f64) on x [2, 3, 4], SGD at lr 0. */
static asg_program *bn_train_program(asg_graph **gp, asg_tensor **yp) {
  asg_graph *g = asg_graph_new();
  asg_batchnorm_opts o = {.cumulative = true, .dtype = ASG_F64};
  asg_layer *bn = asg_nn_batchnorm_ex(g, "bn", 3, &o);
  asg_tensor *y = asg_layer_apply(bn, asg_input(g, "x", ASG_F64, ASG_SHAPE(2, 3, 4)));
  asg_tensor *loss = y ? asg_sum(y, ASG_ALL_AXES, false) : NULL;
  asg_program *p = loss ? asg_compile_train(g, loss, asg_sgd(0, 0), 1, &y, NULL) : NULL;
  if (!p) printf("  bn train program: %s %s\n", asg_graph_error(g), asg_last_error());
  *gp = g;
  *yp = y;
  return p;
}

static bool bn_step_check(asg_program *p, int s, const char *when) {
  double x[24], rm[3], rv[3], nbt = -1;
  bn_input(s, x);
  tu_feed(p, "x", ASG_F64, x, 24);
  if (asg_program_run(p) != ASG_OK) {
    printf("  run: %s\n", asg_last_error());
    return false;
  }
  tu_get_var(p, "bn.running_mean", rm);
  tu_get_var(p, "bn.running_var", rv);
  tu_get_var(p, "bn.num_batches_tracked", &nbt);
  bool ok = tu_close("running_mean", rm, BN_RM[s], 3, 1e-12, 1e-12) &&
            tu_close("running_var", rv, BN_RV[s], 3, 1e-12, 1e-12) && nbt == s + 1;
  TU_CHECK(ok, "cumulative step %d (%s): stats as PyTorch's momentum=None, count %g", s + 1, when,
           nbt);
  return ok;
}

/* Rewrites a safetensors file without the tensor `drop` (metadata kept). */
static asg_status copy_without(const char *src, const char *dst, const char *drop) {
  asg_safetensors *f = asg_safetensors_open(src);
  if (!f) return ASG_ERR_IO;
  int n = asg_safetensors_count(f), m = 0, nm = asg_safetensors_metadata_count(f);
  if (nm > 16) nm = 16;
  const char *names[16], *meta[32];
  asg_host_tensor ts[16];
  asg_status st = ASG_OK;
  for (int i = 0; i < n && i < 16 && !st; i++) {
    asg_safetensors_info info;
    asg_safetensors_info_at(f, i, &info);
    if (strcmp(info.name, drop) == 0) continue;
    names[m] = info.name;
    st = asg_safetensors_read_host(f, i, info.dtype, &ts[m]);
    if (!st) m++;
  }
  for (int i = 0; i < nm; i++)
    asg_safetensors_metadata_at(f, i, &meta[2 * i], &meta[2 * i + 1]);
  if (!st) st = asg_safetensors_write(dst, m, names, ts, nm, meta);
  for (int i = 0; i < m; i++)
    asg_host_tensor_free(&ts[i]);
  asg_safetensors_close(f);
  return st;
}

static void test_bn_cumulative(void) {
  asg_graph *g, *g2;
  asg_tensor *y, *y2;
  asg_program *p = bn_train_program(&g, &y);
  TU_CHECK(p != NULL, "cumulative batch norm compiles for training");
  if (!p) {
    asg_graph_free(g);
    return;
  }
  TU_CHECK(asg_graph_update_count(g) == 3 &&
               asg_tensor_dtype(asg_graph_find(g, "bn.num_batches_tracked")) == ASG_I64 &&
               asg_shape_equal(asg_tensor_shape(asg_graph_find(g, "bn.num_batches_tracked")),
                               ASG_SCALAR) &&
               !asg_variable_is_trainable(asg_graph_find(g, "bn.num_batches_tracked")) &&
               asg_tensor_dtype(asg_graph_find(g, "bn.running_var")) == ASG_F64,
           "bn.num_batches_tracked: frozen i64 scalar; 3 updates; f64 statistics");
  tu_set_var(p, "bn.weight", BN_W);
  tu_set_var(p, "bn.bias", BN_B);
  bn_step_check(p, 0, "fresh");
  bn_step_check(p, 1, "fresh");
  const char *ck = tu_path(tmpdir, "bn2.ckpt"), *old = tu_path(tmpdir, "bn2_old.ckpt");
  TU_CHECK(asg_checkpoint_save(p, ck, 2) == ASG_OK, "checkpoint save: %s", asg_last_error());
  /* the checkpoint continues in a fresh program: steps 3 and 4 */
  asg_program *p2 = bn_train_program(&g2, &y2);
  int64_t step = -1;
  TU_CHECK(p2 && asg_checkpoint_load(p2, ck, &step) == ASG_OK && step == 2,
           "checkpoint load into a fresh program: %s", asg_last_error());
  if (p2) {
    bn_step_check(p2, 2, "after load");
    if (bn_step_check(p2, 3, "after load")) {
      double yv[24];
      tu_fetch(p2, y2, yv);
      TU_CHECK(tu_close("y step 4", yv, BN_Y4, 6, 1e-12, 1e-12),
               "step 4 output (batch statistics) as PyTorch's");
    }
    const char *model = tu_path(tmpdir, "bn4.safetensors");
    TU_CHECK(asg_program_save_variables(p2, model, ASG_VARS_MODEL) == ASG_OK, "save model: %s",
             asg_last_error());
    /* an eval program (no num_batches_tracked: it never reads it) loads the
     * training checkpoint strictly; the output uses the running statistics */
    asg_graph *ge = asg_graph_new();
    asg_graph_set_training(ge, false);
    asg_batchnorm_opts o = {.cumulative = true, .dtype = ASG_F64};
    double x[24], ye[24];
    bn_input(3, x);
    asg_tensor *yt = asg_layer_apply(asg_nn_batchnorm_ex(ge, "bn", 3, &o),
                                     tu_constant(ge, ASG_F64, ASG_SHAPE(2, 3, 4), x));
    asg_program *pe = compile1(ge, yt);
    int nl = 0;
    TU_CHECK(pe && asg_program_load_variables_ex(pe, model, true, &nl) == ASG_OK && nl == 4,
             "eval program loads the model file strictly (%d variables): %s", nl, asg_last_error());
    if (pe && asg_program_run(pe) == ASG_OK) {
      tu_fetch(pe, yt, ye);
      TU_CHECK(tu_close("eval", ye, BN_EVAL, 6, 1e-12, 1e-12),
               "eval output with the cumulative statistics as PyTorch's");
    }
    asg_program_free(pe);
    asg_graph_free(ge);
    /* a checkpoint from before num_batches_tracked: loads, and sets it to 0
     * (PyTorch's rule for such state dicts) */
    TU_CHECK(copy_without(ck, old, "bn.num_batches_tracked") == ASG_OK, "rewrite: %s",
             asg_last_error());
    double nbt = -1, rm[3];
    TU_CHECK(asg_checkpoint_load(p2, old, &step) == ASG_OK && step == 2,
             "a checkpoint without num_batches_tracked loads: %s", asg_last_error());
    tu_get_var(p2, "bn.num_batches_tracked", &nbt);
    tu_get_var(p2, "bn.running_mean", rm);
    TU_CHECK(nbt == 0 && tu_close("old rm", rm, BN_RM[1], 3, 1e-12, 1e-12),
             "... with num_batches_tracked 0 (was 4) and the file's statistics");
    TU_CHECK(asg_program_load_variables(p2, old, true) == ASG_OK,
             "strict load_variables of it too: %s", asg_last_error());
    /* a non-strict load leaves a missing count as it is, like any variable */
    const double four = 4;
    tu_set_var(p2, "bn.num_batches_tracked", &four);
    TU_CHECK(asg_program_load_variables(p2, old, false) == ASG_OK &&
                 tu_get_var(p2, "bn.num_batches_tracked", &nbt) == 1 && nbt == 4,
             "non-strict load keeps the count: %g", nbt);
  }
  asg_program_free(p2);
  asg_graph_free(g2);
  asg_program_free(p);
  asg_graph_free(g);
}

/* momentum mode counts batches too; eval graphs register no update */
static void test_bn_count(void) {
  double x[8];
  tu_rand(41, x, 8, -1, 1);
  asg_graph *g = asg_graph_new();
  asg_batchnorm_opts o = {.momentum = 0.3, .no_affine = true};
  asg_layer *bn = asg_nn_batchnorm_ex(g, "bnm", 2, &o);
  TU_CHECK(!asg_layer_param(bn, "weight") && !asg_layer_param(bn, "bias") &&
               asg_layer_param(bn, "running_mean"),
           "no_affine: no weight, bias; running statistics kept");
  asg_tensor *y = asg_layer_apply(bn, tu_constant(g, ASG_F32, ASG_SHAPE(4, 2), x));
  /* nothing trainable: asg_compile with the registered updates as outputs */
  asg_tensor *outs[4] = {y};
  int n_out = 1;
  for (int i = 0; i < asg_graph_update_count(g) && n_out < 4; i++)
    outs[n_out++] = asg_graph_update(g, i);
  asg_program *p = y ? asg_compile(g, n_out, outs, NULL) : NULL;
  TU_CHECK(p != NULL && n_out == 4, "momentum batch norm (no affine) compiles: %s",
           asg_last_error());
  if (p) {
    double nbt = -1, rm[2], mean[2] = {0, 0}, yv[8];
    for (int r = 0; r < 3; r++)
      asg_program_run(p);
    tu_get_var(p, "bnm.num_batches_tracked", &nbt);
    tu_get_var(p, "bnm.running_mean", rm);
    for (int i = 0; i < 8; i++)
      mean[i % 2] += (double)(float)x[i] / 4;
    double k = 1 - 0.7 * 0.7 * 0.7; /* three steps of momentum 0.3 from 0 */
    TU_CHECK(nbt == 3 && fabs(rm[0] - k * mean[0]) < 1e-6 && fabs(rm[1] - k * mean[1]) < 1e-6,
             "momentum mode: count %g after 3 steps, running_mean by momentum", nbt);
    asg_program_free(p);
    /* the output is (x - mean) / sqrt(var + eps) with no affine: mean 0, var ~1 */
    p = compile1(g, y);
    if (p && asg_program_run(p) == ASG_OK && tu_fetch(p, y, yv) == ASG_OK) {
      double s = 0, q = 0;
      for (int i = 0; i < 8; i += 2)
        s += yv[i], q += yv[i] * yv[i];
      TU_CHECK(fabs(s) < 1e-5 && fabs(q / 4 - 1) < 1e-3, "no_affine output normalized");
    }
    asg_program_free(p);
  }
  asg_graph_free(g);
}

/* ---- f64 parameters: layernorm, rmsnorm, embedding, batchnorm (eval) ---- */
static void test_f64_params(void) {
  double x[12], w[4], b[4], y[12], want[12];
  tu_rand(61, x, 12, -2, 2);
  tu_rand(62, w, 4, 0.5, 1.5);
  tu_rand(63, b, 4, -1, 1);
  for (int kind = 0; kind < 2; kind++) {
    asg_graph *g = asg_graph_new();
    asg_norm_opts o = {.dtype = ASG_F64};
    asg_layer *l = kind ? asg_nn_rmsnorm_ex(g, "n", 4, &o) : asg_nn_layernorm_ex(g, "n", 4, &o);
    asg_tensor *yt = asg_layer_apply(l, tu_constant(g, ASG_F64, ASG_SHAPE(3, 4), x));
    TU_CHECK(asg_tensor_dtype(asg_graph_find(g, "n.weight")) == ASG_F64 &&
                 (kind || asg_tensor_dtype(asg_graph_find(g, "n.bias")) == ASG_F64),
             "%s_ex: f64 parameters", kind ? "rmsnorm" : "layernorm");
    asg_program *p = compile1(g, yt);
    if (p) {
      tu_set_var(p, "n.weight", w); /* not representable in f32: checks no f32 rounding */
      if (!kind) tu_set_var(p, "n.bias", b);
      asg_program_run(p);
      tu_fetch(p, yt, y);
      for (int r = 0; r < 3; r++) {
        double m = 0, q = 0;
        for (int i = 0; i < 4; i++)
          m += x[r * 4 + i] / 4;
        for (int i = 0; i < 4; i++) {
          double d = kind ? x[r * 4 + i] : x[r * 4 + i] - m;
          q += d * d / 4;
        }
        for (int i = 0; i < 4; i++)
          want[r * 4 + i] = kind ? x[r * 4 + i] / sqrt(q + 1e-6) * w[i]
                                 : (x[r * 4 + i] - m) / sqrt(q + 1e-5) * w[i] + b[i];
      }
      TU_CHECK(tu_close("f64 norm", y, want, 12, 1e-13, 1e-13), "%s with f64 parameters",
               kind ? "rmsnorm" : "layernorm");
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    asg_embedding_opts o = {.dtype = ASG_F64};
    asg_layer *e = asg_nn_embedding_ex(g, "emb", 5, 2, &o);
    const int64_t idx[3] = {4, 0, 4};
    asg_tensor *yt = asg_layer_apply(e, asg_constant(g, ASG_I64, ASG_SHAPE(3), idx));
    TU_CHECK(yt && asg_tensor_dtype(yt) == ASG_F64 &&
                 asg_tensor_dtype(asg_graph_find(g, "emb.weight")) == ASG_F64,
             "embedding_ex f64: table and rows f64");
    asg_program *p = compile1(g, yt);
    if (p) {
      double tab[10], rows[6];
      tu_rand(64, tab, 10, -1, 1);
      tu_set_var(p, "emb.weight", tab);
      asg_program_run(p);
      tu_fetch(p, yt, rows);
      const double wantr[6] = {tab[8], tab[9], tab[0], tab[1], tab[8], tab[9]};
      TU_CHECK(memcmp(rows, wantr, sizeof rows) == 0, "f64 embedding rows exact");
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
}

/* ---- dtypes the layers refuse ---- */
static void test_dtype_errors(void) {
  const asg_dtype bad[3] = {ASG_F16, ASG_BF16, ASG_I64};
  for (int i = 0; i < 3; i++) {
    asg_dtype dt = bad[i];
    for (int kind = 0; kind < 7; kind++) {
      asg_graph *g = asg_graph_new();
      asg_layer *l = NULL;
      const char *what = "";
      switch (kind) {
      case 0:
        l = asg_nn_linear_ex(g, "L0", 3, 2, &(asg_linear_opts){.dtype = dt});
        what = "linear";
        break;
      case 1:
        l = asg_nn_batchnorm_ex(g, "L1", 3, &(asg_batchnorm_opts){.dtype = dt});
        what = "batchnorm";
        break;
      case 2:
        l = asg_nn_layernorm_ex(g, "L2", 3, &(asg_norm_opts){.dtype = dt});
        what = "layernorm";
        break;
      case 3:
        l = asg_nn_rmsnorm_ex(g, "L3", 3, &(asg_norm_opts){.dtype = dt});
        what = "rmsnorm";
        break;
      case 4:
        l = asg_nn_groupnorm(g, "L4", 1, 3, &(asg_groupnorm_opts){.dtype = dt});
        what = "groupnorm";
        break;
      case 5:
        l = asg_nn_instancenorm(g, "L5", 3, &(asg_instancenorm_opts){.affine = true, .dtype = dt});
        what = "instancenorm";
        break;
      default:
        l = asg_nn_embedding_ex(g, "L6", 3, 2, &(asg_embedding_opts){.dtype = dt});
        what = "embedding";
        break;
      }
      const char *e = asg_graph_error(g);
      char lname[4] = {'L', (char)('0' + kind), 0, 0};
      TU_CHECK(!l && tu_contains(e, lname) && tu_contains(e, what) &&
                   tu_contains(e, asg_dtype_name(dt)) && tu_contains(e, "f32 or f64"),
               "%s with %s parameters refused: %s", what, asg_dtype_name(dt), e ? e : "(none)");
      asg_graph_free(g);
    }
  }
}

static void expect_fail(asg_graph *g, const void *r, const char *what, const char *s1,
                        const char *s2) {
  const char *e = asg_graph_error(g);
  TU_CHECK(!r && tu_contains(e, s1) && (!s2 || tu_contains(e, s2)), "%s: %s", what,
           e ? e : "(no error)");
}

static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  expect_fail(g, asg_nn_groupnorm(g, "gn6", 4, 6, NULL), "C not divisible by groups", "gn6",
              "divisible by num_groups");
  asg_graph_free(g);
  g = asg_graph_new();
  expect_fail(g, asg_nn_groupnorm(g, "gn0", 0, 6, NULL), "zero groups", "gn0", "groups (0)");
  asg_graph_free(g);
  g = asg_graph_new();
  expect_fail(g, asg_nn_groupnorm(g, "gne", 2, 6, &(asg_groupnorm_opts){.eps = -1}), "eps < 0",
              "gne", "eps");
  asg_graph_free(g);
  g = asg_graph_new();
  asg_layer *l = asg_nn_groupnorm(g, "gnc", 2, 6, NULL);
  expect_fail(g, asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 3))),
              "wrong channel count", "gnc", "[2,4,3]");
  asg_graph_free(g);
  g = asg_graph_new();
  l = asg_nn_groupnorm(g, "gnr", 2, 6, NULL);
  expect_fail(g, asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(6))), "rank 1", "gnr",
              "[6]");
  asg_graph_free(g);
  g = asg_graph_new();
  l = asg_nn_groupnorm(g, "gni", 2, 6, NULL);
  expect_fail(g, asg_layer_apply(l, asg_input(g, "x", ASG_I32, ASG_SHAPE(2, 6))), "integer input",
              "gni", "i32");
  asg_graph_free(g);
  g = asg_graph_new();
  l = asg_nn_instancenorm(g, "in2", 3, NULL);
  expect_fail(g, asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 3))),
              "instance norm without a spatial dim", "in2", "[4,3]");
  asg_graph_free(g);
  g = asg_graph_new();
  l = asg_nn_instancenorm(g, "in1", 3, NULL);
  expect_fail(g, asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 3, 1, 1))),
              "instance norm over one element", "in1", "one spatial element");
  asg_graph_free(g);
  g = asg_graph_new();
  expect_fail(
      g,
      asg_nn_batchnorm_ex(g, "bnc", 3, &(asg_batchnorm_opts){.cumulative = true, .momentum = 0.1}),
      "cumulative with a momentum", "bnc", "exclusive");
  asg_graph_free(g);
  g = asg_graph_new();
  expect_fail(g, asg_nn_batchnorm_ex(g, "bnm", 3, &(asg_batchnorm_opts){.momentum = 1.5}),
              "momentum > 1", "bnm", "momentum (1.5)");
  asg_graph_free(g);
}

int main(void) {
  tmpdir = tu_tmpdir_create("asg_test_norms_extra");
  if (!tmpdir) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  test_group_forward();
  test_group_symbolic();
  test_group_grads();
  test_bn_cumulative();
  test_bn_count();
  test_f64_params();
  test_dtype_errors();
  test_errors();
  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
