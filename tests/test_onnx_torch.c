/* Real models exported by torch.onnx.export (tests/onnx/make_torch_models.py:
 * a small CNN, a small transformer encoder, the tiny GPT-2 fixture) imported
 * and run at two batch sizes (and two sequence lengths) through one program
 * each (symbolic dims), compared with PyTorch's outputs; then the round trip
 * of docs/onnx.md: the imported CNN trained for a few steps (loss falls),
 * exported with asg_onnx_export and re-imported (same outputs as the trained
 * program). With ASG_ONNX_ROUNDTRIP_DIR set, the exported model, an input
 * and ASG's output are left there for tests/onnx/check_roundtrip.py
 * (onnxruntime). argv[1] picks the backend (default cpu). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifndef ASG_ONNX_MODELS
#define ASG_ONNX_MODELS "tests/onnx/models"
#endif

static const char *backend = "cpu";

static const char *model(const char *name) { return tu_path(ASG_ONNX_MODELS, name); }

/* One tensor of a .expected case (see make_torch_models.py). */
typedef struct tensor {
  char name[64];
  bool i64;
  asg_shape shape;
  long n;
  double *v;
} tensor;

typedef struct tcase {
  int nin, nout;
  tensor in[4], out[2];
} tcase;

static bool read_tensor(FILE *f, tensor *t, bool is_input) {
  char kind[8] = "f32";
  int rank;
  if (fscanf(f, "%63s", t->name) != 1) return false;
  if (is_input && fscanf(f, "%7s", kind) != 1) return false;
  if (fscanf(f, "%d", &rank) != 1 || rank < 0 || rank > ASG_MAX_DIMS) return false;
  t->i64 = !strcmp(kind, "i64");
  t->shape.ndim = rank;
  t->n = 1;
  for (int i = 0; i < rank; i++) {
    long long d;
    if (fscanf(f, "%lld", &d) != 1 || d < 1 || d > 1 << 20) return false;
    t->shape.dims[i] = d;
    t->n *= (long)d;
  }
  t->v = malloc(sizeof(double) * (size_t)t->n);
  for (long i = 0; t->v && i < t->n; i++)
    if (fscanf(f, "%lf", &t->v[i]) != 1) return false;
  return t->v != NULL;
}

/* Reads up to max cases; returns how many. */
static int read_cases(const char *name, tcase *cs, int max) {
  FILE *f = fopen(model(name), "r");
  int k = 0;
  char word[16];
  if (!f) return 0;
  while (k < max && fscanf(f, "%15s %d %d", word, &cs[k].nin, &cs[k].nout) == 3) {
    tcase *c = &cs[k];
    bool ok = !strcmp(word, "case") && c->nin >= 1 && c->nin <= 4 && c->nout >= 1 && c->nout <= 2;
    for (int i = 0; ok && i < c->nin; i++)
      ok = fscanf(f, "%15s", word) == 1 && !strcmp(word, "input") && read_tensor(f, &c->in[i], 1);
    for (int i = 0; ok && i < c->nout; i++)
      ok = fscanf(f, "%15s", word) == 1 && !strcmp(word, "output") && read_tensor(f, &c->out[i], 0);
    if (!ok) break;
    k++;
  }
  fclose(f);
  return k;
}

static void free_cases(tcase *cs, int n) {
  for (int k = 0; k < n; k++) {
    for (int i = 0; i < cs[k].nin; i++)
      free(cs[k].in[i].v);
    for (int i = 0; i < cs[k].nout; i++)
      free(cs[k].out[i].v);
  }
}

static asg_status feed(asg_program *p, const tensor *t) {
  void *buf = malloc(8 * (size_t)t->n);
  if (!buf) return ASG_ERR_OOM;
  asg_dtype dt = t->i64 ? ASG_I64 : ASG_F32;
  tu_from_double(dt, t->v, buf, t->n);
  asg_status st = asg_program_feed_tensor(p, t->name, dt, t->shape, buf);
  free(buf);
  return st;
}

/* Runs case c through p and compares output 0 with PyTorch's. */
static void check_case(const char *what, asg_program *p, asg_tensor *y, const tcase *c, double atol,
                       double rtol) {
  asg_status st = ASG_OK;
  for (int i = 0; i < c->nin && !st; i++)
    st = feed(p, &c->in[i]);
  if (!st) st = asg_program_run(p);
  TU_CHECK(st == ASG_OK, "%s: run: %s", what, asg_last_error());
  if (st) return;
  const tensor *want = &c->out[0];
  asg_shape s;
  st = asg_program_output_shape(p, y, &s);
  bool same = !st && s.ndim == want->shape.ndim;
  for (int i = 0; same && i < s.ndim; i++)
    same = s.dims[i] == want->shape.dims[i];
  TU_CHECK(same, "%s: output shape differs from PyTorch's (%s)", what, asg_last_error());
  if (!same) return;
  float *yf = malloc(sizeof(float) * (size_t)want->n);
  double *got = malloc(sizeof(double) * (size_t)want->n);
  if (yf && got && !asg_program_fetch(p, y, yf, sizeof(float) * (size_t)want->n)) {
    for (long i = 0; i < want->n; i++)
      got[i] = yf[i];
    TU_CHECK(tu_close(what, got, want->v, want->n, atol, rtol), "%s: outputs differ from PyTorch",
             what);
  } else
    TU_CHECK(0, "%s: fetch: %s", what, asg_last_error());
  free(yf);
  free(got);
}

/* f32 throughout: PyTorch and ASG sum in different orders, so outputs agree
 * to about 1e-6 relative per op; atol 1e-4 + rtol 1e-3 leaves room for the
 * deeper models and still catches any wrong operator (errors of 1e-1). */
static void check_model(const char *name) {
  char file[64], exp[64], what[256];
  snprintf(file, sizeof file, "torch_%s.onnx", name);
  snprintf(exp, sizeof exp, "torch_%s.expected", name);
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, model(file), NULL, &m);
  TU_CHECK(st == ASG_OK, "%s: import: %s", name, asg_last_error());
  tcase cs[2];
  int n = st ? 0 : read_cases(exp, cs, 2);
  TU_CHECK(st || n == 2, "%s: two cases in %s", name, exp);
  if (!st) {
    asg_tensor *y = asg_onnx_model_output(m, 0);
    asg_compile_opts o = {0};
    o.backend = backend;
    asg_program *p = asg_compile(g, 1, &y, &o);
    TU_CHECK(p != NULL, "%s: compile: %s", name, asg_last_error());
    for (int k = 0; k < n && p; k++) { /* one program, both shapes */
      char sh[64];
      asg_graph_shape_str(g, cs[k].in[0].shape, sh, sizeof sh);
      snprintf(what, sizeof what, "%s %s %s", name, cs[k].in[0].name, sh);
      check_case(what, p, y, &cs[k], 1e-4, 1e-3);
    }
    asg_program_free(p);
  }
  free_cases(cs, n);
  asg_onnx_model_free(m);
  asg_graph_free(g);
}

/* The dynamic axes are symbolic dims of the imported inputs. */
static void check_inputs(void) {
  static const struct {
    const char *file, *shape;
  } want[] = {{"torch_cnn.onnx", "[batch,1,28,28]"},
              {"torch_transformer.onnx", "[batch,seq]"},
              {"torch_gpt2.onnx", "[batch,seq]"}};
  for (int i = 0; i < 3; i++) {
    asg_graph *g = asg_graph_new();
    asg_onnx_model *m = NULL;
    char buf[64] = "";
    if (!asg_onnx_import(g, model(want[i].file), NULL, &m))
      asg_graph_shape_str(g, asg_tensor_shape(asg_onnx_model_input(m, 0)), buf, sizeof buf);
    TU_CHECK(!strcmp(buf, want[i].shape), "%s: input shape %s, want %s", want[i].file, buf,
             want[i].shape);
    asg_onnx_model_free(m);
    asg_graph_free(g);
  }
}

/* ---- the round trip: import, train, export, re-import ---- */

enum { RT_B = 16, RT_STEPS = 20 };

static void rt_data(float *x, int32_t *labels) {
  double v[RT_B * 784];
  tu_rand(7, v, RT_B * 784, -1, 1);
  for (int i = 0; i < RT_B * 784; i++)
    x[i] = (float)v[i];
  for (int i = 0; i < RT_B; i++)
    labels[i] = (int32_t)(i * 7 % 10);
}

static void write_bin(const char *dir, const char *name, const float *v, size_t n) {
  tu_write_file(tu_path(dir, name), v, sizeof(float) * n);
}

/* Runs the model at path (imported into a fresh graph) on x; y gets RT_B*10. */
static asg_status run_file(const char *path, const float *x, float *y) {
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, path, NULL, &m);
  asg_program *p = NULL;
  if (!st) {
    asg_tensor *out = asg_onnx_model_output(m, 0);
    asg_compile_opts o = {0};
    o.backend = backend;
    p = asg_compile(g, 1, &out, &o);
    st = p ? asg_program_feed_tensor(p, asg_onnx_model_input_name(m, 0), ASG_F32,
                                     ASG_SHAPE(RT_B, 1, 28, 28), x)
           : ASG_ERR_GRAPH;
    if (!st) st = asg_program_run(p);
    if (!st) st = asg_program_fetch(p, out, y, sizeof(float) * RT_B * 10);
  }
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
  return st;
}

static void roundtrip(void) {
  const char *env = getenv("ASG_ONNX_ROUNDTRIP_DIR");
  const char *dir = env && env[0] ? env : tu_tmpdir_create("asg_onnx_rt");
  if (!dir) {
    TU_CHECK(0, "no temporary folder");
    return;
  }
  char out_dir[512];
  snprintf(out_dir, sizeof out_dir, "%s", dir);
  if (env && env[0]) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", out_dir);
    TU_CHECK(system(cmd) == 0, "mkdir %s", out_dir);
  }
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, model("torch_cnn.onnx"), NULL, &m);
  TU_CHECK(st == ASG_OK, "roundtrip: import: %s", asg_last_error());
  if (st) {
    asg_graph_free(g);
    return;
  }
  /* PyTorch's parameter names are the variables' names */
  asg_tensor *w = asg_graph_find(g, "fc1.weight");
  TU_CHECK(w && asg_variable_is_trainable(w), "fc1.weight is a trainable variable");
  asg_tensor *y = asg_onnx_model_output(m, 0);
  asg_tensor *labels = asg_input(g, "labels", ASG_I32, ASG_SHAPE(asg_dim(g, "batch", 0)));
  asg_tensor *loss = asg_softmax_cross_entropy(y, labels, 0, -100);
  asg_compile_opts o = {0};
  o.backend = backend;
  asg_program *p = asg_compile_train(g, loss, asg_adam(1e-2), 0, NULL, &o);
  TU_CHECK(p != NULL, "roundtrip: compile_train: %s", asg_last_error());
  static float x[RT_B * 784];
  float y_asg[RT_B * 10], y_back[RT_B * 10];
  int32_t lab[RT_B];
  rt_data(x, lab);
  double first = 0, last = 0;
  for (int s = 0; s < RT_STEPS && p; s++) {
    float l = 0;
    st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(RT_B, 1, 28, 28), x);
    if (!st) st = asg_program_feed_tensor(p, "labels", ASG_I32, ASG_SHAPE(RT_B), lab);
    if (!st) st = asg_program_run(p);
    if (!st) st = asg_program_fetch(p, loss, &l, sizeof l);
    TU_CHECK(st == ASG_OK, "roundtrip: step %d: %s", s, asg_last_error());
    if (st) break;
    if (s == 0) first = l;
    last = l;
    if (s == 0 || s == RT_STEPS - 1) printf("train step %2d: loss %.4f\n", s + 1, l);
  }
  TU_CHECK(last < 0.5 * first, "roundtrip: loss %g -> %g after %d Adam steps", first, last,
           RT_STEPS);
  /* ASG's outputs with the trained weights (an eval program sharing them) */
  o.share_variables = p;
  asg_program *e = p ? asg_compile(g, 1, &y, &o) : NULL;
  TU_CHECK(e != NULL, "roundtrip: eval program: %s", asg_last_error());
  st = e ? asg_program_feed_tensor(e, "x", ASG_F32, ASG_SHAPE(RT_B, 1, 28, 28), x) : ASG_ERR_GRAPH;
  if (!st) st = asg_program_run(e);
  if (!st) st = asg_program_fetch(e, y, y_asg, sizeof y_asg);
  TU_CHECK(st == ASG_OK, "roundtrip: eval: %s", asg_last_error());
  /* export the forward graph with the trained values, then read it back */
  const char *path = tu_path(out_dir, "cnn_trained.onnx");
  const char *names[] = {"y"};
  asg_onnx_export_opts eo = {.program = p, .output_names = names, .opset = 17};
  asg_status xs = p ? asg_onnx_export(g, 1, &y, path, &eo) : ASG_ERR_GRAPH;
  TU_CHECK(xs == ASG_OK, "roundtrip: export: %s", asg_last_error());
  if (!st && !xs) {
    st = run_file(path, x, y_back);
    TU_CHECK(st == ASG_OK, "roundtrip: re-import: %s", asg_last_error());
    double a[RT_B * 10], b[RT_B * 10];
    for (int i = 0; i < RT_B * 10; i++)
      a[i] = y_back[i], b[i] = y_asg[i];
    if (!st)
      TU_CHECK(tu_close("re-imported", a, b, RT_B * 10, 1e-5, 1e-5),
               "roundtrip: the exported model's outputs differ from the trained program's");
    write_bin(out_dir, "cnn_trained.x.bin", x, RT_B * 784);
    write_bin(out_dir, "cnn_trained.y.bin", y_asg, RT_B * 10);
    printf("exported %s (input x [%d,1,28,28] and ASG's output y [%d,10] beside it)\n", path, RT_B,
           RT_B);
  }
  asg_program_free(e);
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
  if (!(env && env[0])) tu_tmpdir_remove(out_dir);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  asg_graph *probe = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(probe, model("torch_cnn.onnx"), NULL, &m);
  asg_graph_free(probe);
  asg_onnx_model_free(m);
  if (st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "built without ONNX")) {
    printf("SKIPPED: %s\n", asg_last_error());
    return TU_SKIP;
  }
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  check_inputs();
  check_model("cnn");
  check_model("transformer");
  check_model("gpt2");
  roundtrip();
  return tu_finish();
}
