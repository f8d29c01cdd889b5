/* 1-D convolutions: asg_conv1d / asg_conv_transpose1d (ops.h) and the
 * asg_nn_conv1d / asg_nn_conv_transpose1d layers (nn.h).
 * - forward against float64 loops written here (a direct convolution and a
 *   scatter-form transpose convolution) over strides, paddings, dilations,
 *   groups and output paddings, f64 1e-12;
 * - central-difference gradients of x, w and bias in float64;
 * - a symbolic batch and length (one program, two sizes);
 * - layers: PyTorch's parameter names, layouts and init bounds, f32 and f64
 *   parameters, no_bias, f16/bf16 refused;
 * - a PyTorch model (Conv1d, GroupNorm, BatchNorm1d with
 *   num_batches_tracked, ConvTranspose1d, InstanceNorm1d) loaded from its
 *   state_dict (tests/fixtures/make_torch_norm_conv1d.py) and run in f64
 *   against PyTorch's f64 output, 1e-10;
 * - bad ranks, channels, groups and kernels name the layer or op. */
#include <stdlib.h>
#include <string.h>

#include "asg/io.h"
#include "asg/nn.h"
#include "testutil.h"

static char fixdir[1024];

static int P(int v, int dflt) { return v ? v : dflt; }

typedef struct cfg {
  int N, C, L, O, K;
  asg_conv1d_params p;
  bool transpose, bias;
} cfg;

static long out_len(const cfg *c) {
  int s = P(c->p.stride, 1), d = P(c->p.dilation, 1), pad = c->p.padding;
  if (c->transpose)
    return (long)(c->L - 1) * s - 2 * pad + d * (c->K - 1) + c->p.output_padding + 1;
  return (c->L + 2 * pad - d * (c->K - 1) - 1) / s + 1;
}

static long w_numel(const cfg *c) {
  int G = P(c->p.groups, 1);
  return c->transpose ? (long)c->C * (c->O / G) * c->K : (long)c->O * (c->C / G) * c->K;
}

/* conv1d: y[n,o,t] = b[o] + sum_{c in o's group, k} x[n, c, t*s - p + k*d] w[o, c', k].
 * transpose: x[n,i,t] w[i,oc,k] adds to y[n, g*Og + oc, t*s - p + k*d]. */
static void ref(const cfg *c, const double *x, const double *w, const double *b, double *y) {
  int s = P(c->p.stride, 1), d = P(c->p.dilation, 1), G = P(c->p.groups, 1), pad = c->p.padding;
  long OL = out_len(c);
  int Cg = c->C / G, Og = c->O / G;
  for (int n = 0; n < c->N; n++)
    for (int o = 0; o < c->O; o++)
      for (long t = 0; t < OL; t++)
        y[((long)n * c->O + o) * OL + t] = b ? b[o] : 0;
  for (int n = 0; n < c->N; n++) {
    if (!c->transpose) {
      for (int o = 0; o < c->O; o++)
        for (long t = 0; t < OL; t++) {
          double acc = 0;
          int gi = o / Og;
          for (int cc = 0; cc < Cg; cc++)
            for (int k = 0; k < c->K; k++) {
              long pos = t * s - pad + (long)k * d;
              if (pos < 0 || pos >= c->L) continue;
              acc += x[((long)n * c->C + gi * Cg + cc) * c->L + pos] *
                     w[((long)o * Cg + cc) * c->K + k];
            }
          y[((long)n * c->O + o) * OL + t] += acc;
        }
    } else {
      for (int i = 0; i < c->C; i++)
        for (long t = 0; t < c->L; t++)
          for (int oc = 0; oc < Og; oc++)
            for (int k = 0; k < c->K; k++) {
              long pos = t * s - pad + (long)k * d;
              if (pos < 0 || pos >= OL) continue;
              int o = (i / Cg) * Og + oc;
              y[((long)n * c->O + o) * OL + pos] +=
                  x[((long)n * c->C + i) * c->L + t] * w[((long)i * Og + oc) * c->K + k];
            }
    }
  }
}

static asg_shape w_shape(const cfg *c) {
  int G = P(c->p.groups, 1);
  return c->transpose ? ASG_SHAPE(c->C, c->O / G, c->K) : ASG_SHAPE(c->O, c->C / G, c->K);
}

static asg_tensor *apply_fn(const cfg *c, asg_tensor *x, asg_tensor *w, asg_tensor *b) {
  return c->transpose ? asg_conv_transpose1d(x, w, b, c->p) : asg_conv1d(x, w, b, c->p);
}

static const cfg CASES[] = {
    {2, 4, 9, 6, 3, {0}, false, true},
    {2, 4, 9, 6, 3, {.stride = 2, .padding = 1, .groups = 2}, false, true},
    {1, 4, 10, 6, 3, {.stride = 1, .padding = 2, .dilation = 2, .groups = 2}, false, false},
    {2, 3, 11, 2, 4, {.stride = 3}, false, true},
    {2, 4, 5, 6, 3, {0}, true, true},
    {2, 4, 5, 6, 3, {.stride = 2, .padding = 1, .output_padding = 1, .groups = 2}, true, true},
    {1, 2, 4, 3, 2, {.stride = 3, .padding = 1, .dilation = 2, .output_padding = 2}, true, false},
    {2, 4, 6, 4, 3, {.stride = 2, .groups = 4}, true, true},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

static void test_forward(void) {
  for (int ci = 0; ci < N_CASES; ci++) {
    const cfg *c = &CASES[ci];
    long nx = (long)c->N * c->C * c->L, nw = w_numel(c), ny = (long)c->N * c->O * out_len(c);
    double *x = malloc(sizeof(double) * (size_t)nx), *w = malloc(sizeof(double) * (size_t)nw), b[8],
           *y = malloc(sizeof(double) * (size_t)ny), *want = malloc(sizeof(double) * (size_t)ny);
    tu_rand(10 + (unsigned)ci, x, nx, -1, 1);
    tu_rand(30 + (unsigned)ci, w, nw, -1, 1);
    tu_rand(50 + (unsigned)ci, b, c->O, -1, 1);
    ref(c, x, w, c->bias ? b : NULL, want);
    for (int f64 = 0; f64 < 2; f64++) {
      asg_dtype dt = f64 ? ASG_F64 : ASG_F32;
      asg_graph *g = asg_graph_new();
      asg_tensor *yt = apply_fn(c, tu_constant(g, dt, ASG_SHAPE(c->N, c->C, c->L), x),
                                tu_constant(g, dt, w_shape(c), w),
                                c->bias ? tu_constant(g, dt, ASG_SHAPE(c->O), b) : NULL);
      TU_CHECK(yt && asg_shape_equal(asg_tensor_shape(yt), ASG_SHAPE(c->N, c->O, out_len(c))) &&
                   asg_tensor_dtype(yt) == dt,
               "case %d: output shape [%d,%d,%ld]: %s", ci, c->N, c->O, out_len(c),
               asg_graph_error(g) ? asg_graph_error(g) : "");
      if (yt && tu_eval(g, yt, y) == 0) {
        double tol = f64 ? 1e-12 : 1e-5;
        TU_CHECK(tu_close(c->transpose ? "conv_transpose1d" : "conv1d", y, want, ny, tol, tol),
                 "case %d (%s) %s forward", ci, c->transpose ? "transpose" : "conv",
                 f64 ? "f64" : "f32");
      } else {
        TU_CHECK(0, "case %d evaluates", ci);
      }
      asg_graph_free(g);
    }
    free(x);
    free(w);
    free(y);
    free(want);
  }
}

static asg_tensor *build_conv(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const cfg *c = ctx;
  return apply_fn(c, xs[0], xs[1], c->bias ? xs[2] : NULL);
}

static void test_grads(void) {
  const int pick[] = {1, 2, 5, 6};
  for (int k = 0; k < 4; k++) {
    const cfg *c = &CASES[pick[k]];
    asg_shape shapes[3] = {ASG_SHAPE(c->N, c->C, c->L), w_shape(c), ASG_SHAPE(c->O)};
    char name[48];
    snprintf(name, sizeof name, "%s case %d", c->transpose ? "conv_transpose1d" : "conv1d",
             pick[k]);
    TU_CHECK(tu_gradcheck(name, c->bias ? 3 : 2, shapes, build_conv, (void *)c, NULL) == 0,
             "%s: gradients of x, w%s by central differences", name, c->bias ? ", bias" : "");
  }
}

/* A symbolic batch and length: one program per case, fed two sizes. */
static void test_symbolic(void) {
  const int pick[] = {1, 5};
  for (int k = 0; k < 2; k++) {
    cfg c = CASES[pick[k]];
    asg_graph *g = asg_graph_new();
    int64_t B = asg_dim(g, "batch", 0), L = asg_dim(g, "len", 0);
    long nw = w_numel(&c);
    double w[256], b[8];
    tu_rand(90, w, nw, -1, 1);
    tu_rand(91, b, c.O, -1, 1);
    asg_tensor *yt = apply_fn(&c, asg_input(g, "x", ASG_F64, ASG_SHAPE(B, c.C, L)),
                              tu_constant(g, ASG_F64, w_shape(&c), w),
                              tu_constant(g, ASG_F64, ASG_SHAPE(c.O), b));
    asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
    TU_CHECK(p != NULL, "case %d with symbolic [batch, C, len] compiles: %s", pick[k],
             p ? "" : asg_graph_error(g));
    for (int r = 0; r < 2 && p; r++) {
      c.N = 1 + 2 * r;
      c.L = 7 + 3 * r;
      long nx = (long)c.N * c.C * c.L, ny = (long)c.N * c.O * out_len(&c);
      double x[256], y[512], want[512];
      tu_rand(92 + (unsigned)r, x, nx, -1, 1);
      ref(&c, x, w, b, want);
      asg_status st = asg_program_feed_tensor(p, "x", ASG_F64, ASG_SHAPE(c.N, c.C, c.L), x);
      if (!st) st = asg_program_run(p);
      if (!st) st = asg_program_fetch(p, yt, y, sizeof(double) * (size_t)ny);
      TU_CHECK(!st && tu_close("symbolic", y, want, ny, 1e-12, 1e-12),
               "case %d symbolic run with N=%d L=%d: %s", pick[k], c.N, c.L,
               st ? asg_last_error() : "");
    }
    asg_program_free(p);
    asg_graph_free(g);
  }
}

/* ---- layers ---- */
static void test_layers(void) {
  for (int ci = 0; ci < N_CASES; ci++) {
    const cfg *c = &CASES[ci];
    for (int f64 = 0; f64 < 2; f64++) {
      asg_dtype dt = f64 ? ASG_F64 : ASG_F32;
      asg_graph *g = asg_graph_new();
      asg_conv_opts o = {.no_bias = !c->bias, .dtype = dt};
      asg_layer *l = c->transpose ? asg_nn_conv_transpose1d(g, "cv", c->C, c->O, c->K, c->p, &o)
                                  : asg_nn_conv1d(g, "cv", c->C, c->O, c->K, c->p, &o);
      asg_tensor *wv = asg_graph_find(g, "cv.weight"), *bv = asg_graph_find(g, "cv.bias");
      TU_CHECK(wv && asg_shape_equal(asg_tensor_shape(wv), w_shape(c)) &&
                   asg_tensor_dtype(wv) == dt && (c->bias ? bv != NULL : bv == NULL) &&
                   (!bv || asg_tensor_dtype(bv) == dt),
               "case %d: cv.weight %s, cv.bias %s, %s", ci,
               c->transpose ? "[in, out/groups, k]" : "[out, in/groups, k]",
               c->bias ? "[out]" : "absent", f64 ? "f64" : "f32");
      long nx = (long)c->N * c->C * c->L, nw = w_numel(c), ny = (long)c->N * c->O * out_len(c);
      double *x = malloc(sizeof(double) * (size_t)nx), *w = malloc(sizeof(double) * (size_t)nw),
             b[8] = {0}, *y = malloc(sizeof(double) * (size_t)ny),
             *want = malloc(sizeof(double) * (size_t)ny);
      tu_rand(70 + (unsigned)ci, x, nx, -1, 1);
      /* activations f64 so that f32 parameters are checked exactly (cast to f64) */
      asg_tensor *yt = asg_layer_apply(l, tu_constant(g, ASG_F64, ASG_SHAPE(c->N, c->C, c->L), x));
      asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
      TU_CHECK(p && asg_program_run(p) == ASG_OK, "case %d layer runs: %s", ci,
               p ? asg_last_error() : asg_graph_error(g));
      if (p) {
        tu_get_var(p, "cv.weight", w);
        if (c->bias) tu_get_var(p, "cv.bias", b);
        /* PyTorch: U(+-1/sqrt(fan_in)), fan_in = weight dims[1] * k, for w and b */
        double bound = 1 / sqrt((double)asg_tensor_shape(wv).dims[1] * c->K), mx = 0;
        for (long i = 0; i < nw; i++)
          mx = fabs(w[i]) > mx ? fabs(w[i]) : mx;
        for (int i = 0; i < c->O; i++)
          mx = fabs(b[i]) > mx ? fabs(b[i]) : mx;
        TU_CHECK(mx <= bound && mx > 0.3 * bound, "case %d init within U(+-%g): max |v| %g", ci,
                 bound, mx);
        ref(c, x, w, c->bias ? b : NULL, want);
        tu_fetch(p, yt, y);
        TU_CHECK(tu_close("layer", y, want, ny, 1e-12, 1e-12), "case %d layer forward (%s params)",
                 ci, f64 ? "f64" : "f32");
      }
      asg_program_free(p);
      free(x);
      free(w);
      free(y);
      free(want);
      asg_graph_free(g);
    }
  }
}

static void expect_error(asg_graph *g, const void *result, const char *what, const char *s1,
                         const char *s2) {
  const char *e = asg_graph_error(g);
  TU_CHECK(!result && tu_contains(e, s1) && (!s2 || tu_contains(e, s2)), "%s: %s", what,
           e ? e : "(no error)");
}

static void test_errors(void) {
  asg_conv1d_params p0 = {0}, pg2 = {.groups = 2};
  asg_graph *g = asg_graph_new();
  expect_error(g, asg_nn_conv1d(g, "c5", 5, 6, 3, pg2, NULL), "in channels not divisible", "c5",
               "divisible by groups=2");
  asg_graph_free(g);
  g = asg_graph_new();
  expect_error(g, asg_nn_conv_transpose1d(g, "t7", 4, 7, 3, pg2, NULL),
               "out channels not divisible", "t7", "divisible by groups=2");
  asg_graph_free(g);
  g = asg_graph_new();
  expect_error(g, asg_nn_conv1d(g, "k0", 4, 6, 0, p0, NULL), "kernel 0", "k0", "kernel 0");
  asg_graph_free(g);
  const asg_dtype bad[3] = {ASG_F16, ASG_BF16, ASG_I32};
  for (int i = 0; i < 3; i++) {
    g = asg_graph_new();
    asg_conv_opts o = {.dtype = bad[i]};
    expect_error(g, asg_nn_conv1d(g, "h", 4, 6, 3, p0, &o), "dtype refused", "h",
                 asg_dtype_name(bad[i]));
    asg_graph_free(g);
    g = asg_graph_new();
    expect_error(g, asg_nn_conv2d_ex(g, "h2", 4, 6, 3, 3, (asg_conv_params){0}, &o),
                 "conv2d dtype refused", "h2", "f32 or f64");
    asg_graph_free(g);
  }
  /* a layer applied to a rank-4 input */
  g = asg_graph_new();
  asg_layer *l = asg_nn_conv1d(g, "cv1", 4, 6, 3, p0, NULL);
  expect_error(g, asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 1, 9))),
               "layer rank", "cv1", "[2,4,1,9]");
  asg_graph_free(g);
  g = asg_graph_new();
  l = asg_nn_conv1d(g, "cv2", 4, 6, 3, p0, NULL);
  expect_error(g, asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 9))),
               "layer channels", "cv2", "[2,3,9]");
  asg_graph_free(g);
  /* functional: rank, channels vs weight, kernel longer than the input */
  g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 9));
  expect_error(g, asg_conv1d(x, asg_input(g, "w", ASG_F32, ASG_SHAPE(6, 4)), NULL, p0),
               "weight rank", "conv1d", "rank 3");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 9));
  expect_error(g, asg_conv1d(x, asg_input(g, "w", ASG_F32, ASG_SHAPE(6, 3, 3)), NULL, p0),
               "channel mismatch", "conv1d", "channels");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 2));
  expect_error(g, asg_conv1d(x, asg_input(g, "w", ASG_F32, ASG_SHAPE(6, 4, 3)), NULL, p0),
               "kernel longer than input", "conv1d", "larger than");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 5));
  asg_conv1d_params bad_op = {.stride = 2, .output_padding = 2};
  expect_error(
      g, asg_conv_transpose1d(x, asg_input(g, "w", ASG_F32, ASG_SHAPE(4, 3, 3)), NULL, bad_op),
      "output_padding >= stride", "conv_transpose1d", "output_padding");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 9));
  expect_error(g, asg_conv1d(x, NULL, NULL, p0), "NULL weight", "conv1d", "required");
  asg_graph_free(g);
}

/* ---- a PyTorch model's state_dict ---- */
static void test_torch(void) {
  char sd_path[1100], io_path[1100];
  snprintf(sd_path, sizeof sd_path, "%s/torch_norm_conv1d.safetensors", fixdir);
  snprintf(io_path, sizeof io_path, "%s/torch_norm_conv1d_io.safetensors", fixdir);
  asg_safetensors *io = asg_safetensors_open(io_path);
  TU_CHECK(io != NULL, "open %s: %s", io_path, asg_last_error());
  if (!io) return;
  double x[2 * 4 * 11], want[2 * 4 * 12], y[2 * 4 * 12];
  int ix = asg_safetensors_find(io, "x"), iy = asg_safetensors_find(io, "y");
  TU_CHECK(ix >= 0 && iy >= 0 && asg_safetensors_read(io, ix, ASG_F64, x, sizeof x) == ASG_OK &&
               asg_safetensors_read(io, iy, ASG_F64, want, sizeof want) == ASG_OK,
           "read x [2,4,11] and y [2,4,12]: %s", asg_last_error());
  asg_safetensors_close(io);
  /* eval: the output against PyTorch's; training (the updates compiled in):
   * num_batches_tracked, which eval programs do not read, loads too */
  for (int train = 0; train < 2; train++) {
    asg_graph *g = asg_graph_new();
    asg_graph_set_training(g, train);
    /* the model of make_torch_norm_conv1d.py, parameters f32 (cast to the f64 activations) */
    asg_layer *layers[] = {
        asg_nn_conv1d(g, "c1", 4, 6, 3,
                      (asg_conv1d_params){.stride = 2, .padding = 2, .dilation = 2, .groups = 2},
                      NULL),
        asg_nn_groupnorm(g, "gn", 3, 6, NULL),
        asg_nn_batchnorm(g, "bn", 6, 0, 0),
        asg_nn_activation(g, "relu", ASG_ACT_RELU),
        asg_nn_conv_transpose1d(
            g, "ct", 6, 4, 3,
            (asg_conv1d_params){.stride = 2, .padding = 1, .output_padding = 1, .groups = 2}, NULL),
        asg_nn_instancenorm(g, "inorm", 4, &(asg_instancenorm_opts){.affine = true})};
    asg_layer *net = asg_nn_sequential(g, "net", 6, layers);
    asg_tensor *outs[4] = {asg_layer_apply(net, tu_constant(g, ASG_F64, ASG_SHAPE(2, 4, 11), x))};
    int n_out = 1;
    for (int i = 0; i < asg_graph_update_count(g) && n_out < 4; i++)
      outs[n_out++] = asg_graph_update(g, i);
    asg_program *p = outs[0] ? asg_compile(g, n_out, outs, NULL) : NULL;
    TU_CHECK(p != NULL && n_out == (train ? 4 : 1), "torch model compiles (%s): %s",
             train ? "train" : "eval", p ? "" : asg_graph_error(g));
    if (p) {
      int n = 0;
      asg_status st = asg_program_load_variables_ex(p, sd_path, true, &n);
      TU_CHECK(st == ASG_OK && n == (train ? 13 : 12),
               "PyTorch state_dict loads strictly (%s: %d tensors): %s", train ? "train" : "eval",
               n, st ? asg_last_error() : "");
      if (train) {
        double nbt = -1;
        tu_get_var(p, "bn.num_batches_tracked", &nbt);
        TU_CHECK(nbt == 3, "bn.num_batches_tracked from the file: %g (want 3)", nbt);
        asg_program_run(p);
        tu_get_var(p, "bn.num_batches_tracked", &nbt);
        TU_CHECK(nbt == 4, "one training run counts one batch: %g (want 4)", nbt);
      } else {
        TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
        tu_fetch(p, outs[0], y);
        TU_CHECK(tu_close("torch model", y, want, 2 * 4 * 12, 1e-10, 1e-10),
                 "Conv1d-GroupNorm-BatchNorm1d-ReLU-ConvTranspose1d-InstanceNorm1d equals "
                 "PyTorch (f64)");
      }
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
}

int main(void) {
  const char *env = getenv("ASG_FIXTURES"); /* tests/fixtures elsewhere (a device run) */
  if (env) {
    snprintf(fixdir, sizeof fixdir, "%s", env);
  } else { /* tests/fixtures next to this source file */
    snprintf(fixdir, sizeof fixdir, "%s", __FILE__);
    char *slash = strrchr(fixdir, '/');
    if (slash)
      snprintf(slash, sizeof fixdir - (size_t)(slash - fixdir), "/fixtures");
    else
      snprintf(fixdir, sizeof fixdir, "fixtures");
  }
  test_forward();
  test_grads();
  test_symbolic();
  test_layers();
  test_errors();
  test_torch();
  return tu_finish();
}
