/* ONNX import through the public API: the committed models of
 * tests/onnx/make_models.py (expected outputs from NumPy) imported, run and
 * compared; a training step through an imported model; a symbolic batch;
 * external data; malformed files giving clear errors. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifndef ASG_ONNX_MODELS
#define ASG_ONNX_MODELS "tests/onnx/models"
#endif

static const char *model(const char *name) { return tu_path(ASG_ONNX_MODELS, name); }

static int read_expected(const char *name, double *v, int max) {
  FILE *f = fopen(model(name), "r");
  int n = 0;
  if (!f) return -1;
  while (n < max && fscanf(f, "%lf", &v[n]) == 1)
    n++;
  fclose(f);
  return n;
}

static void x_of(double *x, long n) {
  for (long i = 0; i < n; i++)
    x[i] = 0.1 * (double)(i % 7) - 0.3;
}

/* Imports name.onnx, feeds x of the given shape, compares y with name.expected. */
static void check_model(const char *name, asg_shape xs) {
  char file[64], exp[64];
  snprintf(file, sizeof file, "%s.onnx", name);
  snprintf(exp, sizeof exp, "%s.expected", name);
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, model(file), NULL, &m);
  TU_CHECK(st == ASG_OK, "%s: import: %s", name, asg_last_error());
  if (st) {
    asg_graph_free(g);
    return;
  }
  int64_t want_opset = strcmp(name, "softmax11") ? 17 : 11;
  TU_CHECK(asg_onnx_model_opset(m) == want_opset, "%s: opset %lld", name,
           (long long)asg_onnx_model_opset(m));
  TU_CHECK(asg_onnx_model_output_count(m) == 1 && !strcmp(asg_onnx_model_output_name(m, 0), "y"),
           "%s: outputs", name);
  asg_tensor *y = asg_onnx_model_output(m, 0);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(p != NULL, "%s: compile: %s", name, asg_last_error());
  double x[64], want[64], got[64];
  long nx = (long)asg_shape_numel(xs);
  x_of(x, nx);
  float xf[64];
  for (long i = 0; i < nx; i++)
    xf[i] = (float)x[i];
  int n = read_expected(exp, want, 64);
  TU_CHECK(n > 0, "%s: expected values", name);
  if (p && n > 0) {
    st = asg_program_feed_tensor(p, "x", ASG_F32, xs, xf);
    TU_CHECK(st == ASG_OK, "%s: feed: %s", name, asg_last_error());
    st = asg_program_run(p);
    TU_CHECK(st == ASG_OK, "%s: run: %s", name, asg_last_error());
    if (!st) {
      float yf[64]; /* f32 outputs; n values (the shape may be symbolic) */
      st = asg_program_fetch(p, y, yf, sizeof(float) * (size_t)n);
      TU_CHECK(st == ASG_OK, "%s: fetch: %s", name, asg_last_error());
      for (int i = 0; i < n; i++)
        got[i] = yf[i];
      TU_CHECK(tu_close(name, got, want, n, 1e-5, 1e-4), "%s: outputs differ from NumPy", name);
    }
  }
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
}

/* Imports models/file into a new graph (*g); NULL (graph freed, failure
 * counted) when the import fails. */
static asg_onnx_model *import_model(const char *file, asg_graph **g) {
  asg_onnx_model *m = NULL;
  *g = asg_graph_new();
  if (asg_onnx_import(*g, model(file), NULL, &m) == ASG_OK) return m;
  TU_CHECK(0, "%s: import: %s", file, asg_last_error());
  asg_graph_free(*g);
  return NULL;
}

/* The imported MLP's initializers are trainable variables: one SGD step
 * changes them (gradients flow through Gemm / Relu). */
static void train_step(void) {
  asg_graph *g;
  asg_onnx_model *m = import_model("mlp.onnx", &g);
  if (!m) return;
  asg_tensor *w1 = asg_graph_find(g, "w1");
  TU_CHECK(w1 && asg_variable_is_trainable(w1), "w1 is a trainable variable");
  asg_tensor *y = asg_onnx_model_output(m, 0);
  asg_tensor *loss = asg_mean(asg_mul(y, y), ASG_ALL_AXES, false);
  asg_program *p = asg_compile_train(g, loss, asg_sgd(0.1, 0), 0, NULL, NULL);
  TU_CHECK(p != NULL, "compile_train: %s", asg_last_error());
  if (p) {
    double before[6], after[6], x[8];
    x_of(x, 8);
    TU_CHECK(tu_get_var(p, "w2", before) == 6, "w2 has 6 values");
    double w1b[12];
    tu_get_var(p, "w1", w1b);
    double w1_0 = w1b[0], w1_5 = w1b[5];
    tu_feed(p, "x", ASG_F32, x, 8);
    TU_CHECK(asg_program_run(p) == ASG_OK, "train run: %s", asg_last_error());
    tu_get_var(p, "w2", after);
    double d = 0;
    for (int i = 0; i < 6; i++)
      d += fabs(after[i] - before[i]);
    TU_CHECK(d > 1e-6, "one step changed w2 (sum |dw| = %g)", d);
    double w1a[12];
    TU_CHECK(tu_get_var(p, "w1", w1a) == 12, "w1 has 12 values");
    TU_CHECK(fabs(w1a[0] - w1_0) > 1e-7 || fabs(w1a[5] - w1_5) > 1e-7, "w1 changed too");
  }
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
}

/* The dynamic axis "batch" is a symbolic dim: one program runs batch 5 and 2. */
static void symbolic_batch(void) {
  asg_graph *g;
  asg_onnx_model *m = import_model("dynamic.onnx", &g);
  if (!m) return;
  asg_tensor *x = asg_onnx_model_input(m, 0);
  char buf[64];
  asg_graph_shape_str(g, asg_tensor_shape(x), buf, sizeof buf);
  TU_CHECK(!strcmp(buf, "[batch,3]"), "input shape %s", buf);
  asg_tensor *y = asg_onnx_model_output(m, 0);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  double want[10], got[10];
  read_expected("dynamic.expected", want, 10);
  float xf[15];
  double xd[15];
  x_of(xd, 15);
  for (int i = 0; i < 15; i++)
    xf[i] = (float)xd[i];
  int batches[2] = {5, 2};
  for (int k = 0; k < 2 && p; k++) {
    asg_status st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(batches[k], 3), xf);
    st = st ? st : asg_program_run(p);
    TU_CHECK(st == ASG_OK, "batch %d: %s", batches[k], asg_last_error());
    if (!st) { /* the rows of batch 2 are the first rows of batch 5 */
      float out[10];
      asg_program_fetch(p, y, out, sizeof(float) * 2 * (size_t)batches[k]);
      for (int i = 0; i < 2 * batches[k]; i++)
        got[i] = out[i];
      TU_CHECK(tu_close("dynamic", got, want, 2 * batches[k], 1e-5, 1e-4), "batch %d", batches[k]);
    }
  }
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
}

/* A cubic Resize (on interpolation matrices: asg_upsample has no cubic mode)
 * over a dynamic batch: batch 3 against onnx.reference, then batch 1 (the
 * first image's values) from the same program. */
static void resize_symbolic(void) {
  enum { N = 3, IN = 2 * 5 * 6, OUT = 2 * 10 * 9 };
  asg_graph *g;
  asg_onnx_model *m = import_model("resize_cubic.onnx", &g);
  if (!m) return;
  asg_tensor *y = asg_onnx_model_output(m, 0);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  static double want[N * OUT], got[N * OUT], xd[N * IN];
  static float xf[N * IN], out[N * OUT];
  TU_CHECK(read_expected("resize_cubic.expected", want, N * OUT) == N * OUT, "expected values");
  x_of(xd, N * IN);
  for (int i = 0; i < N * IN; i++)
    xf[i] = (float)xd[i];
  const int batches[2] = {N, 1};
  for (int k = 0; k < 2 && p; k++) {
    asg_status st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(batches[k], 2, 5, 6), xf);
    st = st ? st : asg_program_run(p);
    st = st ? st : asg_program_fetch(p, y, out, sizeof(float) * OUT * (size_t)batches[k]);
    TU_CHECK(st == ASG_OK, "resize batch %d: %s", batches[k], asg_last_error());
    for (int i = 0; !st && i < OUT * batches[k]; i++)
      got[i] = out[i];
    if (!st)
      TU_CHECK(tu_close("resize_cubic", got, want, OUT * batches[k], 1e-5, 1e-4),
               "cubic resize, batch %d, against onnx.reference", batches[k]);
  }
  TU_CHECK(p != NULL, "resize_cubic compile: %s", asg_last_error());
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
}

static void expect_error(const char *what, const char *path, asg_status want, const char *sub) {
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = (asg_onnx_model *)1;
  asg_status st = asg_onnx_import(g, path, NULL, &m);
  TU_CHECK(st == want && m == NULL && tu_contains(asg_last_error(), sub),
           "%s: status %d (want %d), message '%s' (want '%s')", what, st, want, asg_last_error(),
           sub);
  asg_graph_free(g);
}

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char *b = malloc(1 << 16);
  *n = b ? fread(b, 1, 1 << 16, f) : 0;
  fclose(f);
  return b;
}

/* Wraps buf[0..*n) as field `field` of a message: tag, length, bytes. */
static void wrap(unsigned char *buf, size_t *n, int field) {
  unsigned char head[16];
  size_t h = 0, len = *n;
  head[h++] = (unsigned char)(field << 3 | 2);
  do {
    head[h++] = (unsigned char)((len & 0x7f) | (len > 0x7f ? 0x80 : 0));
    len >>= 7;
  } while (len);
  memmove(buf + h, buf, *n);
  memcpy(buf, head, h);
  *n += h;
}

/* Graphs nested through attributes 2,000 deep: refused before protobuf-c
 * (whose recursive unpacking would otherwise run out of stack). */
static void deep_nesting(const char *dir) {
  size_t cap = 1 << 20, n = 0;
  unsigned char *buf = calloc(cap, 1);
  if (!buf) return;
  for (int level = 0; level < 2000 && n + 64 < cap; level++) {
    wrap(buf, &n, 6); /* AttributeProto.g */
    wrap(buf, &n, 5); /* NodeProto.attribute */
    wrap(buf, &n, 1); /* GraphProto.node */
  }
  wrap(buf, &n, 7); /* ModelProto.graph */
  tu_write_file(tu_path(dir, "deep.onnx"), buf, n);
  free(buf);
  expect_error("deep nesting", tu_path(dir, "deep.onnx"), ASG_ERR_FORMAT, "deep");
  char *text = NULL;
  TU_CHECK(asg_onnx_describe(tu_path(dir, "deep.onnx"), &text) == ASG_ERR_FORMAT && !text,
           "describe refuses deep nesting too: %s", asg_last_error());
}

static void malformed(void) {
  const char *dir = tu_tmpdir_create("asg_onnx");
  if (!dir) return;
  size_t n = 0;
  unsigned char *b = slurp(model("mlp.onnx"), &n);
  TU_CHECK(b && n > 100, "read mlp.onnx");
  if (!b) return;
  tu_write_file(tu_path(dir, "trunc.onnx"), b, n / 2);
  expect_error("truncated", tu_path(dir, "trunc.onnx"), ASG_ERR_FORMAT, "not a valid ONNX");
  unsigned char junk[64];
  for (int i = 0; i < 64; i++)
    junk[i] = (unsigned char)(i * 37 + 11);
  tu_write_file(tu_path(dir, "junk.onnx"), junk, sizeof junk);
  expect_error("junk", tu_path(dir, "junk.onnx"), ASG_ERR_FORMAT, "junk.onnx");
  expect_error("missing file", tu_path(dir, "none.onnx"), ASG_ERR_IO, "none.onnx");
  /* a missing initializer: rename "w2" in the file so the node's input dangles */
  unsigned char *c = malloc(n);
  memcpy(c, b, n);
  for (size_t i = 0; i + 2 <= n; i++)
    if (i > 1 && c[i - 2] == 0x42 && c[i - 1] == 2 && c[i] == 'w' && c[i + 1] == '2')
      c[i + 1] = '9'; /* TensorProto.name (field 8): the initializer, not the node's input */
  tu_write_file(tu_path(dir, "missing.onnx"), c, n);
  expect_error("missing initializer", tu_path(dir, "missing.onnx"), ASG_ERR_FORMAT, "'w2'");
  free(c);
  /* wrong wire type: ir_version (field 1, a varint) sent as bytes */
  static const unsigned char wire[] = {0x0a, 0x02, 0x08, 0x01};
  tu_write_file(tu_path(dir, "wire.onnx"), wire, sizeof wire);
  expect_error("wrong field type", tu_path(dir, "wire.onnx"), ASG_ERR_FORMAT, "not a valid ONNX");
  deep_nesting(dir);
  free(b);
  tu_tmpdir_remove(dir);
  expect_error("huge dims", model("bad_huge.onnx"), ASG_ERR_FORMAT, "initializer 'h'");
  expect_error("new opset", model("bad_opset.onnx"), ASG_ERR_UNSUPPORTED, "opset 99");
  expect_error("Gelu before opset 20", model("bad_old_gelu.onnx"), ASG_ERR_UNSUPPORTED,
               "'g1' (Gelu, opset 17): ASG implements Gelu as of opset 20");
  expect_error("unsupported op", model("bad_op.onnx"), ASG_ERR_UNSUPPORTED,
               "'nms1' (NonMaxSuppression, opset 17)");
  expect_error("path escape", model("bad_escape.onnx"), ASG_ERR_FORMAT,
               "leaves the model's folder");
}

/* asg_onnx_describe: inputs with symbolic dims, the op histogram, gaps. */
static void describe(void) {
  char *text = NULL;
  asg_status st = asg_onnx_describe(model("dynamic.onnx"), &text);
  TU_CHECK(st == ASG_OK && text, "describe: %s", asg_last_error());
  TU_CHECK(tu_contains(text, "x: float [batch,3]") && tu_contains(text, "ai.onnx:17") &&
               tu_contains(text, "MatMul") && tu_contains(text, "not supported by ASG: none"),
           "describe text:\n%s", text ? text : "");
  free(text);
  text = NULL;
  st = asg_onnx_describe(model("bad_op.onnx"), &text);
  TU_CHECK(st == ASG_OK && tu_contains(text, "not supported by ASG: NonMaxSuppression"),
           "describe lists the missing operator:\n%s", text ? text : "");
  free(text);
  TU_CHECK(asg_onnx_op_supported("Conv", 17) && !asg_onnx_op_supported("Gelu", 17) &&
               !asg_onnx_op_supported("NonMaxSuppression", 17),
           "asg_onnx_op_supported");
}

int main(void) {
  asg_graph *probe = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(probe, model("mlp.onnx"), NULL, &m);
  asg_graph_free(probe);
  asg_onnx_model_free(m);
  if (st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "built without ONNX")) {
    printf("SKIPPED: %s\n", asg_last_error());
    return TU_SKIP;
  }
  check_model("mlp", ASG_SHAPE(2, 4));
  check_model("cnn", ASG_SHAPE(1, 1, 4, 4));
  check_model("external", ASG_SHAPE(2, 3));
  check_model("folded", ASG_SHAPE(2, 6));       /* symbolic batch, shape folded at import */
  check_model("softmax11", ASG_SHAPE(2, 2, 3)); /* axis semantics of opset 11 */
  train_step();
  symbolic_batch();
  resize_symbolic();
  describe();
  malformed();
  return tu_finish();
}
