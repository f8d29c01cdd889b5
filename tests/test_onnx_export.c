/* ONNX export through the public API: an MLP, a small CNN and a graph with a
 * symbolic batch are exported, imported back with asg_onnx_import and run;
 * their outputs must equal the original program's. Node names carry the
 * name scopes, variable values come from the program when one is given, and
 * unsupported / malformed cases give clear errors.
 *
 * With ASG_ONNX_EXPORT_DIR set, the models, their input and the expected
 * outputs are left there (manifest.txt) for tests/onnx/check_export.py,
 * which runs onnx.checker and onnxruntime on them. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#define MAXV 256

static const char *dir;
static FILE *manifest;

static bool onnx_built(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2));
  asg_status st = asg_onnx_export(g, 1, &x, tu_path(dir, "probe.onnx"), NULL);
  asg_graph_free(g);
  return !(st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "built without ONNX"));
}

/* Feeds x (shape xs) to p, runs it and fetches n[i] floats of outs[i]
 * into res (one after the other). */
static bool run_f32(asg_program *p, asg_shape xs, const float *x, int no, asg_tensor *const *outs,
                    const long *n, float *res) {
  if (!p) return false;
  if (asg_program_feed_tensor(p, "x", ASG_F32, xs, x) || asg_program_run(p)) return false;
  for (int i = 0; i < no; i++) {
    if (asg_program_fetch(p, outs[i], res, sizeof(float) * (size_t)n[i])) return false;
    res += n[i];
  }
  return true;
}

static void write_bin(const char *model, const char *name, const void *data, size_t bytes) {
  char f[128];
  snprintf(f, sizeof f, "%s.%s.bin", model, name);
  tu_write_file(tu_path(dir, f), data, bytes);
}

static void manifest_line(const char *kind, const char *name, asg_shape s) {
  if (!manifest) return;
  fprintf(manifest, "%s %s f32", kind, name);
  for (int i = 0; i < s.ndim; i++)
    fprintf(manifest, " %lld", (long long)s.dims[i]);
  fprintf(manifest, "\n");
}

/* Exports outs of g (values of p when given), imports the file into a new
 * graph, runs both with x and compares; records the case for Python.
 * oshape[i]: the concrete shape of output i for this x. */
static void round_trip(const char *name, int opset, asg_graph *g, asg_program *p, int no,
                       asg_tensor **outs, const asg_shape *oshape, asg_shape xs, const float *x,
                       const float *want) {
  char file[64];
  snprintf(file, sizeof file, "%s.onnx", name);
  const char *path = tu_path(dir, file);
  asg_onnx_export_opts o = {.program = p, .opset = opset};
  asg_status st = asg_onnx_export(g, no, outs, path, &o);
  TU_CHECK(st == ASG_OK, "%s: export: %s", name, asg_last_error());
  if (st) return;
  long n[4], total = 0;
  for (int i = 0; i < no; i++)
    total += n[i] = (long)asg_shape_numel(oshape[i]);
  asg_graph *g2 = asg_graph_new();
  asg_onnx_model *m = NULL;
  st = asg_onnx_import(g2, path, NULL, &m);
  TU_CHECK(st == ASG_OK, "%s: import: %s", name, asg_last_error());
  if (!st) {
    TU_CHECK(asg_onnx_model_opset(m) == (opset ? opset : 18), "%s: opset %lld", name,
             (long long)asg_onnx_model_opset(m));
    TU_CHECK(asg_onnx_model_input_count(m) == 1 && !strcmp(asg_onnx_model_input_name(m, 0), "x"),
             "%s: inputs", name);
    TU_CHECK(asg_onnx_model_output_count(m) == no, "%s: %d outputs", name,
             asg_onnx_model_output_count(m));
    asg_tensor *o2[4];
    for (int i = 0; i < no; i++) {
      char want_name[32];
      snprintf(want_name, sizeof want_name, "output%d", i);
      o2[i] = asg_onnx_model_output(m, i);
      TU_CHECK(!strcmp(asg_onnx_model_output_name(m, i), want_name), "%s: output name %s", name,
               asg_onnx_model_output_name(m, i));
    }
    asg_program *p2 = asg_compile(g2, no, o2, NULL);
    float got[MAXV];
    bool ran = run_f32(p2, xs, x, no, o2, n, got);
    TU_CHECK(ran, "%s: imported model: %s", name, asg_last_error());
    if (ran) {
      double a[MAXV], b[MAXV];
      for (long i = 0; i < total; i++)
        a[i] = got[i], b[i] = want[i];
      TU_CHECK(tu_close(name, a, b, total, 1e-5, 1e-4), "%s: re-imported outputs differ", name);
    }
    asg_program_free(p2);
  }
  asg_onnx_model_free(m);
  asg_graph_free(g2);
  if (manifest) { /* the case for check_export.py */
    fprintf(manifest, "model %s\n", name);
    manifest_line("input", "x", xs);
    write_bin(name, "x", x, sizeof(float) * (size_t)asg_shape_numel(xs));
    for (int i = 0; i < no; i++) {
      char on[32];
      snprintf(on, sizeof on, "output%d", i);
      manifest_line("output", on, oshape[i]);
      write_bin(name, on, want, sizeof(float) * (size_t)n[i]);
      want += n[i];
    }
  }
}

static void x_of(float *x, long n) {
  for (long i = 0; i < n; i++)
    x[i] = (float)(0.37 * (double)((i * 7) % 11) - 1.5);
}

/* Whether path's bytes contain s (node names are stored verbatim). */
static bool file_has(const char *path, const char *s) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, f), k = strlen(s);
  fclose(f);
  for (size_t i = 0; i + k <= n; i++)
    if (!memcmp(buf + i, s, k)) return true;
  return false;
}

static void test_mlp(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(4, 3);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_scope_push(g, "mlp");
  asg_scope_push(g, "fc1");
  asg_tensor *w1 = asg_variable(g, "fc1.w", ASG_F32, ASG_SHAPE(3, 8), asg_init_normal(0, 0.7));
  asg_tensor *b1 = asg_variable(g, "fc1.b", ASG_F32, ASG_SHAPE(8), asg_init_uniform(-0.5, 0.5));
  asg_tensor *h = asg_relu(asg_add(asg_matmul(x, w1), b1));
  asg_scope_pop(g);
  asg_scope_push(g, "fc2");
  asg_tensor *w2 = asg_variable(g, "fc2.w", ASG_F32, ASG_SHAPE(4, 8), asg_init_normal(0, 0.7));
  asg_tensor *b2 = asg_variable(g, "fc2.b", ASG_F32, ASG_SHAPE(4), asg_init_zeros());
  h = asg_add(asg_matmul_t(h, w2, false, true), b2);
  asg_scope_pop(g);
  asg_tensor *ln = asg_variable(g, "ln.g", ASG_F32, ASG_SHAPE(4), asg_init_ones());
  h = asg_layernorm(h, ln, NULL, 1e-5);
  asg_scope_pop(g);
  asg_tensor *outs[2] = {asg_softmax(asg_gelu(h), -1), asg_log_softmax(asg_silu(h), 0)};
  TU_CHECK(outs[0] && outs[1], "mlp: build: %s", asg_graph_error(g));
  asg_shape os[2] = {ASG_SHAPE(4, 4), ASG_SHAPE(4, 4)};
  float xv[12], fresh[32], trained[32];
  long n[2] = {16, 16};
  x_of(xv, 12);
  /* values of a fresh program, then of one whose fc2.b was changed */
  asg_program *p0 = asg_compile(g, 2, outs, NULL);
  TU_CHECK(run_f32(p0, xs, xv, 2, outs, n, fresh), "mlp: run: %s", asg_last_error());
  asg_program *p = asg_compile(g, 2, outs, NULL);
  const double b2v[4] = {0.4, -0.3, 0.9, 0.05};
  TU_CHECK(tu_set_var(p, "fc2.b", b2v) == ASG_OK, "mlp: set fc2.b");
  TU_CHECK(run_f32(p, xs, xv, 2, outs, n, trained), "mlp: run: %s", asg_last_error());
  bool differ = false;
  for (int i = 0; i < 32; i++)
    differ |= fabsf(fresh[i] - trained[i]) > 1e-3f;
  TU_CHECK(differ, "mlp: changing fc2.b changes nothing");
  round_trip("mlp", 0, g, p, 2, outs, os, xs, xv, trained);
  round_trip("mlp_init", 0, g, NULL, 2, outs, os, xs, xv, fresh);
  round_trip("mlp21", 21, g, p, 2, outs, os, xs, xv, trained); /* the newest opset allowed */
  const char *path = tu_path(dir, "mlp.onnx");
  TU_CHECK(file_has(path, "mlp/fc1/matmul_") && file_has(path, "mlp/fc2/matmul_") &&
               file_has(path, "mlp/layernorm_") && file_has(path, "fc2.b"),
           "mlp: node names lack the name scopes");
  asg_program_free(p0);
  asg_program_free(p);
  asg_graph_free(g);
}

static void test_cnn(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(2, 1, 8, 8);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_tensor *w =
      asg_variable(g, "conv.w", ASG_F32, ASG_SHAPE(4, 1, 3, 3), asg_init_normal(0, 0.5));
  asg_tensor *b = asg_variable(g, "conv.b", ASG_F32, ASG_SHAPE(4), asg_init_uniform(-0.2, 0.2));
  asg_tensor *wt = asg_variable(g, "up.w", ASG_F32, ASG_SHAPE(4, 2, 2, 2), asg_init_normal(0, 0.5));
  asg_tensor *fc = asg_variable(g, "fc.w", ASG_F32, ASG_SHAPE(2, 3), asg_init_normal(0, 0.5));
  asg_tensor *h = asg_relu(asg_conv2d(x, w, b, (asg_conv_params){.padding = {1, 1}}));
  h = asg_max_pool2d(h, (asg_pool_params){.kernel = {2, 2}}); /* 4x4 */
  h = asg_avg_pool2d(
      h, (asg_pool_params){.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 1}}); /* 5x5 */
  h = asg_conv_transpose2d(h, wt, NULL, (asg_conv_params){.stride = {2, 2}, .padding = {1, 1}});
  h = asg_adaptive_avg_pool2d(h, 1, 1);
  h = asg_reshape(h, ASG_SHAPE(2, 2));
  asg_tensor *y = asg_log_softmax(asg_matmul(h, fc), 1);
  TU_CHECK(y != NULL, "cnn: build: %s", asg_graph_error(g));
  asg_shape os = ASG_SHAPE(2, 3);
  float xv[128], want[6];
  long n = 6;
  x_of(xv, 128);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(run_f32(p, xs, xv, 1, &y, &n, want), "cnn: run: %s", asg_last_error());
  round_trip("cnn", 0, g, p, 1, &y, &os, xs, xv, want);
  asg_program_free(p);
  asg_graph_free(g);
}

/* Pooling options (dilations, ceil_mode, count_include_pad 0 and 1), with
 * ceil-mode windows past the padded input. */
static void test_pool_options(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(2, 1, 8, 8);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_pool_params mp = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}};
  mp.dilation[0] = mp.dilation[1] = 2, mp.ceil_mode = true;
  asg_tensor *m = asg_max_pool2d(x, mp); /* 4x4 */
  asg_pool_params ap = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true};
  asg_tensor *y[2] = {asg_avg_pool2d(m, ap), NULL}; /* 3x3, the last window past the padding */
  ap.exclude_pad = true;
  y[1] = asg_avg_pool2d(m, ap);
  TU_CHECK(y[0] && y[1], "pool options: build: %s", asg_graph_error(g));
  asg_shape os[2] = {ASG_SHAPE(2, 1, 3, 3), ASG_SHAPE(2, 1, 3, 3)};
  float xv[128], want[36];
  long n[2] = {18, 18};
  x_of(xv, 128);
  asg_program *p = asg_compile(g, 2, y, NULL);
  TU_CHECK(run_f32(p, xs, xv, 2, y, n, want), "pool options: run: %s", asg_last_error());
  round_trip("pool_options", 0, g, p, 2, y, os, xs, xv, want);
  asg_program_free(p);
  asg_graph_free(g);
}

/* asg_batchnorm (the batch's statistics) as ONNX reductions and arithmetic. */
static void test_batchnorm(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(2, 4, 3, 3);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_tensor *gm = asg_variable(g, "bn.w", ASG_F32, ASG_SHAPE(4), asg_init_uniform(0.5, 1.5));
  asg_tensor *bt = asg_variable(g, "bn.b", ASG_F32, ASG_SHAPE(4), asg_init_uniform(-1, 1));
  asg_tensor *y = asg_batchnorm(x, gm, bt, 1e-3);
  TU_CHECK(y != NULL, "batchnorm: build: %s", asg_graph_error(g));
  float xv[72], want[72];
  long n = 72;
  x_of(xv, 72);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(run_f32(p, xs, xv, 1, &y, &n, want), "batchnorm: run: %s", asg_last_error());
  round_trip("batchnorm", 0, g, p, 1, &y, &xs, xs, xv, want);
  asg_program_free(p);
  asg_graph_free(g);
}

/* gelu's gradient ops (as a training graph has them) as ONNX arithmetic,
 * one of them with a broadcast dy. */
static void test_gelu_bwd(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(3, 5);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_tensor *x3 = asg_mul_scalar(x, 3.0); /* both tails */
  asg_tensor *dy = asg_sum(asg_tanh(x), ASG_AXES(0), false);
  asg_tensor *y[2] = {asg_gelu_bwd(asg_sin(x), x3), asg_gelu_tanh_bwd(dy, x3)};
  TU_CHECK(y[0] && y[1], "gelu_bwd: build: %s", asg_graph_error(g));
  asg_shape os[2] = {xs, xs};
  float xv[15], want[30];
  long n[2] = {15, 15};
  x_of(xv, 15);
  asg_program *p = asg_compile(g, 2, y, NULL);
  TU_CHECK(run_f32(p, xs, xv, 2, y, n, want), "gelu_bwd: run: %s", asg_last_error());
  round_trip("gelu_bwd", 0, g, p, 2, y, os, xs, xv, want);
  asg_program_free(p);
  asg_graph_free(g);
}

/* A batch dim "B": exported as dim_param, symbolic again after import. */
static void test_symbolic(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "B", 16);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 6));
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(6, 4), asg_init_normal(0, 0.6));
  asg_tensor *h = asg_tanh(asg_matmul(x, w)); /* [B,4] */
  asg_tensor *r = asg_reshape(asg_permute(asg_reshape(h, ASG_SHAPE(B, 2, 2)), (int[]){0, 2, 1}),
                              ASG_SHAPE(B, 4));
  asg_tensor *c = asg_concat((asg_tensor *[]){h, r}, 2, 1); /* [B,8] */
  asg_tensor *s = asg_slice(c, 1, 1, 7, 2);                 /* [B,3] */
  asg_tensor *zero = asg_scalar(g, ASG_F32, 0.0);
  s = asg_where(asg_gt(s, zero), asg_sigmoid(s), asg_mul_scalar(asg_gelu_tanh(s), 0.5));
  const int64_t idx[2] = {2, 0};
  s = asg_gather(s, asg_constant(g, ASG_I64, ASG_SHAPE(2), idx), 1); /* [B,2] */
  asg_tensor *am = asg_cast(asg_argmax(c, 1, true), ASG_F32);        /* [B,1] */
  asg_tensor *y = asg_add(asg_sub(s, asg_mean(s, ASG_AXES(1), true)), am);
  y = asg_add(y, asg_rsqrt(asg_add_scalar(asg_var(c, ASG_AXES(1), 1, true), 1.0)));
  y = asg_clamp(asg_pow_scalar(asg_add_scalar(asg_abs(y), 0.5), 1.5), 0.0, 4.0);
  TU_CHECK(y != NULL, "sym: build: %s", asg_graph_error(g));
  asg_shape xs = ASG_SHAPE(3, 6), os = ASG_SHAPE(3, 2);
  float xv[18], want[6];
  long n = 6;
  x_of(xv, 18);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(run_f32(p, xs, xv, 1, &y, &n, want), "sym: run: %s", asg_last_error());
  round_trip("sym", 0, g, p, 1, &y, &os, xs, xv, want);
  round_trip("sym17", 17, g, p, 1, &y, &os, xs, xv, want); /* Reduce* axes as attributes */
  asg_graph *g2 = asg_graph_new();
  asg_onnx_model *m = NULL;
  if (asg_onnx_import(g2, tu_path(dir, "sym.onnx"), NULL, &m) == ASG_OK) {
    char buf[64];
    asg_graph_shape_str(g2, asg_tensor_shape(asg_onnx_model_input(m, 0)), buf, sizeof buf);
    TU_CHECK(!strcmp(buf, "[B,6]"), "sym: imported input is %s, want [B,6]", buf);
  }
  asg_onnx_model_free(m);
  asg_graph_free(g2);
  asg_program_free(p);
  asg_graph_free(g);
}

static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3));
  asg_scope_push(g, "head");
  asg_tensor *y = asg_add(x, asg_rand_uniform(g, ASG_F32, ASG_SHAPE(2, 3), 0, 1, 7));
  asg_scope_pop(g);
  const char *path = tu_path(dir, "bad.onnx");
  asg_status st = asg_onnx_export(g, 1, &y, path, NULL);
  TU_CHECK(st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "head/rand_uniform_") &&
               tu_contains(asg_last_error(), "no ONNX mapping"),
           "unsupported op: %d %s", st, asg_last_error());
  asg_tensor *ok = asg_exp(x);
  st = asg_onnx_export(g, 1, &ok, "/nonexistent-asg-dir/m.onnx", NULL);
  TU_CHECK(st == ASG_ERR_IO && tu_contains(asg_last_error(), "/nonexistent-asg-dir/m.onnx"),
           "unwritable path: %d %s", st, asg_last_error());
  st = asg_onnx_export(g, 0, &ok, path, NULL);
  TU_CHECK(st == ASG_ERR_INVALID, "no outputs: %d", st);
  asg_tensor *nul = NULL;
  st = asg_onnx_export(g, 1, &nul, path, NULL);
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(asg_last_error(), "output 0"), "NULL output: %s",
           asg_last_error());
  const char *names[1] = {"x"};
  asg_onnx_export_opts o = {.output_names = names};
  st = asg_onnx_export(g, 1, &ok, path, &o);
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(asg_last_error(), "'x'"), "name clash: %s",
           asg_last_error());
  o = (asg_onnx_export_opts){.opset = 12};
  st = asg_onnx_export(g, 1, &ok, path, &o);
  TU_CHECK(st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "opset 12"), "opset: %s",
           asg_last_error());
  asg_graph *g2 = asg_graph_new(); /* a variable the program does not hold */
  asg_tensor *v = asg_variable(g2, "v", ASG_F32, ASG_SHAPE(2), asg_init_ones());
  asg_tensor *x2 = asg_input(g2, "x", ASG_F32, ASG_SHAPE(2));
  asg_tensor *y2 = asg_mul(x2, v);
  asg_program *p = asg_compile(g, 1, &ok, NULL);
  o = (asg_onnx_export_opts){.program = p};
  st = asg_onnx_export(g2, 1, &y2, path, &o);
  TU_CHECK(st != ASG_OK && tu_contains(asg_last_error(), "variable 'v'"), "missing variable: %s",
           asg_last_error());
  asg_program_free(p);
  asg_matmul(x, x); /* [2,3] x [2,3]: the graph now carries an error */
  st = asg_onnx_export(g, 1, &ok, path, NULL);
  TU_CHECK(st == ASG_ERR_GRAPH && tu_contains(asg_last_error(), "matmul"), "graph error: %s",
           asg_last_error());
  st = asg_onnx_export(g2, 1, &x, path, NULL);
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(asg_last_error(), "not a tensor of this graph"),
           "foreign output: %s", asg_last_error());
  asg_graph_free(g2);
  asg_graph_free(g);
}

int main(void) {
  const char *env = getenv("ASG_ONNX_EXPORT_DIR");
  bool keep = env && *env;
  dir = keep ? env : tu_tmpdir_create("asg_onnx_export");
  if (!dir) {
    printf("cannot create a temporary folder\n");
    return 1;
  }
  if (!onnx_built()) {
    printf("built without ONNX: skipped\n");
    if (!keep) tu_tmpdir_remove(dir);
    return TU_SKIP;
  }
  if (keep) {
    mkdir(dir, 0755); /* may exist already */
    manifest = fopen(tu_path(dir, "manifest.txt"), "w");
    TU_CHECK(manifest != NULL, "cannot write %s", tu_path(dir, "manifest.txt"));
    printf("exported models in %s\n", dir);
  }
  test_mlp();
  test_cnn();
  test_pool_options();
  test_batchnorm();
  test_gelu_bwd();
  test_symbolic();
  test_errors();
  if (manifest) fclose(manifest);
  if (!keep) tu_tmpdir_remove(dir);
  return tu_finish();
}
