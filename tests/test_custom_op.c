/* Custom ops (include/asg/custom.h) through the public API: forward against
 * a float64 reference written here, gradients by central differences (a
 * gradient built from existing ops, and one that is a custom backward op),
 * attributes, workspace, an op without inputs, training a tiny model through
 * a custom op, and the errors: registration (duplicate, bad name, NULL
 * callbacks), construction (input count, shape function message with the op
 * name, symbolic inputs, bad handles), differentiation (no gradient
 * function, a gradient of the wrong shape), run time (a failing kernel),
 * backends (CUDA without a CUDA kernel, Vulkan; each where available), ONNX
 * export, and registration from several threads at once. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The call failed (cond) and the message holds sub. */
#define EXPECT_MSG(cond, sub, what)                                                                \
  TU_CHECK((cond) && tu_contains(asg_last_error(), sub), "%s: '%s'", what, asg_last_error())

static long numel(asg_shape s) { return (long)asg_shape_numel(s); }

/* ---- swish with a learned beta: y = x sigmoid(beta x), beta one element ---- */

static int swish_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg, size_t n) {
  if ((s->in_dtype[0] != ASG_F32 && s->in_dtype[0] != ASG_F64) || s->in_dtype[1] != s->in_dtype[0])
    return snprintf(msg, n, "x and beta must be f32 or f64, of one dtype"), 1;
  if (numel(s->in_shape[1]) != 1)
    return snprintf(msg, n, "beta must have one element, it is %ld", numel(s->in_shape[1])), 1;
  *dt = s->in_dtype[0];
  *sh = s->in_shape[0];
  return 0;
}

static int swish_cpu(const asg_custom_call *c) {
  const long n = numel(c->out_shape);
  if (c->out_dtype == ASG_F64) {
    const double *x = c->in[0], b = *(const double *)c->in[1];
    double *y = c->out;
    for (long i = 0; i < n; i++)
      y[i] = x[i] / (1 + exp(-b * x[i]));
  } else {
    const float *x = c->in[0], b = *(const float *)c->in[1];
    float *y = c->out;
    for (long i = 0; i < n; i++)
      y[i] = x[i] / (1 + expf(-b * x[i]));
  }
  return 0;
}

/* s = sigmoid(beta x): dx = dy (s + beta x s (1 - s)), dbeta = dy x^2 s (1 - s)
 * (of x's shape: the engine sums it down to beta's [1]) */
static int swish_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  asg_tensor *x = a->in[0], *beta = a->in[1];
  asg_tensor *s = asg_sigmoid(asg_mul(beta, x));
  asg_tensor *ds = asg_mul(s, asg_add_scalar(asg_neg(s), 1.0)); /* s (1 - s) */
  if (a->need[0]) din[0] = asg_mul(a->dout, asg_add(s, asg_mul(asg_mul(beta, x), ds)));
  if (a->need[1]) din[1] = asg_mul(a->dout, asg_mul(asg_mul(x, x), ds));
  return 0;
}

static const asg_custom_op *g_swish, *g_cube, *g_cube_bwd, *g_affine, *g_iota, *g_fail, *g_nograd,
    *g_badgrad, *g_ws;

/* ---- cube with a custom backward op: y = x^3, dx = cube_bwd(x, dy) = 3 x^2 dy ---- */

static int same_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg, size_t n) {
  for (int i = 1; i < s->n_in; i++)
    if (!asg_shape_equal(s->in_shape[i], s->in_shape[0]) || s->in_dtype[i] != s->in_dtype[0])
      return snprintf(msg, n, "input %d differs from input 0", i), 1;
  if (s->in_dtype[0] != ASG_F64) return snprintf(msg, n, "f64 only"), 1;
  *dt = s->in_dtype[0];
  *sh = s->in_shape[0];
  return 0;
}

static int cube_cpu(const asg_custom_call *c) {
  const double *x = c->in[0];
  double *y = c->out;
  for (long i = 0; i < numel(c->out_shape); i++)
    y[i] = x[i] * x[i] * x[i];
  return 0;
}

static int cube_bwd_cpu(const asg_custom_call *c) {
  const double *x = c->in[0], *dy = c->in[1];
  double *dx = c->out;
  for (long i = 0; i < numel(c->out_shape); i++)
    dx[i] = 3 * x[i] * x[i] * dy[i];
  return 0;
}

static int cube_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  asg_tensor *in[2] = {a->in[0], a->dout};
  din[0] = asg_custom(a->graph, g_cube_bwd, in, 2);
  return 0;
}

/* ---- affine with attributes: y = attr0 x + attr1 ---- */

static int affine_cpu(const asg_custom_call *c) {
  const double *x = c->in[0];
  double *y = c->out;
  for (long i = 0; i < numel(c->out_shape); i++)
    y[i] = c->sig->attr[0] * x[i] + c->sig->attr[1];
  return 0;
}

static int affine_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  din[0] = asg_mul_scalar(a->dout, a->sig->attr[0]);
  return 0;
}

/* ---- no inputs: iota of attr0 elements (f64) ---- */

static int iota_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg, size_t n) {
  if (s->n_attr != 1 || !(s->attr[0] >= 1)) return snprintf(msg, n, "one attribute n >= 1"), 1;
  *dt = ASG_F64;
  *sh = ASG_SHAPE((int64_t)s->attr[0]);
  return 0;
}

static int iota_cpu(const asg_custom_call *c) {
  double *y = c->out;
  for (long i = 0; i < numel(c->out_shape); i++)
    y[i] = (double)i;
  return 0;
}

/* ---- a kernel that fails; ops without / with a wrong gradient ---- */

static int fail_cpu(const asg_custom_call *c) {
  snprintf(c->msg, c->msg_size, "the device caught fire");
  return 1;
}

static int badgrad_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  din[0] = asg_sum(a->dout, ASG_ALL_AXES, false); /* a scalar for a [5] input */
  return 0;
}

/* ---- workspace: reverses x through scratch memory of x's size ---- */

static size_t ws_bytes(const asg_custom_sig *s) {
  return (size_t)numel(s->in_shape[0]) * sizeof(double);
}

static int ws_cpu(const asg_custom_call *c) {
  const long n = numel(c->out_shape);
  if (!c->workspace || c->workspace_bytes != (size_t)n * sizeof(double))
    return snprintf(c->msg, c->msg_size, "workspace %p of %zu bytes", c->workspace,
                    c->workspace_bytes),
           1;
  double *t = c->workspace, *y = c->out;
  const double *x = c->in[0];
  for (long i = 0; i < n; i++)
    t[n - 1 - i] = x[i];
  memcpy(y, t, (size_t)n * sizeof(double));
  return 0;
}

static void register_all(void) {
  const asg_custom_desc d[] = {
      {.name = "t.swish_beta",
       .n_inputs = 2,
       .shape = swish_shape,
       .cpu = swish_cpu,
       .grad = swish_grad},
      {.name = "t.cube", .n_inputs = 1, .shape = same_shape, .cpu = cube_cpu, .grad = cube_grad},
      {.name = "t.cube_bwd", .n_inputs = 2, .shape = same_shape, .cpu = cube_bwd_cpu},
      {.name = "t.affine",
       .n_inputs = 1,
       .shape = same_shape,
       .cpu = affine_cpu,
       .grad = affine_grad},
      {.name = "t.iota", .n_inputs = 0, .shape = iota_shape, .cpu = iota_cpu},
      {.name = "t.fail", .n_inputs = 1, .shape = same_shape, .cpu = fail_cpu},
      {.name = "t.nograd", .n_inputs = 1, .shape = same_shape, .cpu = cube_cpu},
      {.name = "t.badgrad",
       .n_inputs = 1,
       .shape = same_shape,
       .cpu = cube_cpu,
       .grad = badgrad_grad},
      {.name = "t.ws_reverse",
       .n_inputs = 1,
       .shape = same_shape,
       .cpu = ws_cpu,
       .workspace = ws_bytes},
  };
  const asg_custom_op **h[] = {&g_swish, &g_cube,   &g_cube_bwd, &g_affine, &g_iota,
                               &g_fail,  &g_nograd, &g_badgrad,  &g_ws};
  for (int i = 0; i < 9; i++)
    TU_CHECK(asg_custom_register(&d[i], h[i]) == ASG_OK && *h[i], "register %s: %s", d[i].name,
             asg_last_error());
}

/* ------------------------------------------------------------------ forward */

static void test_forward(void) {
  enum { N = 37 };
  double xv[N], bv[1] = {0.75};
  tu_rand(5, xv, N, -4, 4);
  for (int d = 0; d < 2; d++) {
    const asg_dtype dt = d ? ASG_F64 : ASG_F32;
    asg_graph *g = asg_graph_new();
    asg_tensor *in[2] = {tu_constant(g, dt, ASG_SHAPE(N), xv),
                         tu_constant(g, dt, ASG_SHAPE(1), bv)};
    asg_tensor *y = asg_custom(g, g_swish, in, 2);
    TU_CHECK(y && asg_tensor_dtype(y) == dt && asg_shape_equal(asg_tensor_shape(y), ASG_SHAPE(N)),
             "swish node: %s", asg_graph_error(g));
    TU_CHECK(asg_custom_of(y) == g_swish && strcmp(asg_tensor_op_name(y), "custom") == 0,
             "asg_custom_of / op name");
    double got[N], want[N];
    for (int i = 0; i < N; i++) { /* the float64 reference */
      const double x = dt == ASG_F32 ? (double)(float)xv[i] : xv[i];
      want[i] = x / (1 + exp(-0.75 * x));
    }
    TU_CHECK(tu_eval(g, y, got) == 0, "swish eval: %s", asg_last_error());
    tu_close(d ? "swish f64" : "swish f32", got, want, N, d ? 1e-14 : 1e-6, d ? 1e-13 : 1e-6);
    asg_graph_free(g);
  }
  /* attributes, an op without inputs, and workspace */
  asg_graph *g = asg_graph_new();
  double x5[5] = {1, -2, 3.5, 0, 7}, got[5];
  asg_tensor *x = tu_constant(g, ASG_F64, ASG_SHAPE(5), x5);
  const double at[2] = {-2.5, 0.25}, n5 = 5;
  asg_tensor *ya = asg_custom_ex(g, g_affine, &x, 1, at, 2);
  TU_CHECK(tu_eval(g, ya, got) == 0 && got[0] == -2.25 && got[1] == 5.25 && got[2] == -8.5 &&
               got[3] == 0.25 && got[4] == -17.25,
           "affine: %g %g %g %g %g", got[0], got[1], got[2], got[3], got[4]);
  asg_tensor *yi = asg_custom_ex(g, g_iota, NULL, 0, &n5, 1);
  TU_CHECK(yi && tu_eval(g, yi, got) == 0 && got[0] == 0 && got[4] == 4, "iota: %s",
           asg_last_error());
  asg_tensor *yw = asg_custom(g, g_ws, &x, 1);
  TU_CHECK(yw && tu_eval(g, yw, got) == 0 && got[0] == 7 && got[2] == 3.5 && got[4] == 1,
           "workspace reverse: %s", asg_last_error());
  /* a custom op feeding built-in ops and another custom op */
  asg_tensor *c = asg_custom(g, g_cube, &x, 1);
  asg_tensor *z = asg_sum(asg_custom_ex(g, g_affine, &c, 1, at, 2), ASG_ALL_AXES, false);
  double want = 0;
  for (int i = 0; i < 5; i++)
    want += -2.5 * x5[i] * x5[i] * x5[i] + 0.25;
  TU_CHECK(z && tu_eval(g, z, got) == 0 && fabs(got[0] - want) < 1e-12, "chain %g vs %g", got[0],
           want);
  asg_graph_free(g);
}

/* ---------------------------------------------------------------- gradients */

static asg_tensor *build_swish(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  asg_tensor *in[2] = {xs[0], xs[1]};
  return asg_custom(g, g_swish, in, 2);
}

static asg_tensor *build_cube(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  asg_tensor *y = asg_custom(g, g_cube, &xs[0], 1);
  return asg_mul(y, xs[1]); /* the custom op's output read by a built-in op */
}

static asg_tensor *build_affine(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  const double at[2] = {1.75, -3};
  return asg_custom_ex(g, g_affine, &xs[0], 1, at, 2);
}

static void test_gradients(void) {
  asg_shape sw[2] = {ASG_SHAPE(4, 6), ASG_SHAPE(1)};
  TU_CHECK(tu_gradcheck("swish_beta (composition)", 2, sw, build_swish, NULL, NULL) == 0,
           "swish gradcheck");
  asg_shape cs[2] = {ASG_SHAPE(3, 5), ASG_SHAPE(3, 5)};
  TU_CHECK(tu_gradcheck("cube (custom backward op)", 2, cs, build_cube, NULL, NULL) == 0,
           "cube gradcheck");
  asg_shape as[1] = {ASG_SHAPE(7)};
  TU_CHECK(tu_gradcheck("affine (attributes)", 1, as, build_affine, NULL, NULL) == 0,
           "affine gradcheck");
  /* the gradient of cube is a node of the custom backward op */
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(3), asg_init_ones());
  asg_tensor *dx = NULL;
  asg_tensor *loss = asg_sum(asg_custom(g, g_cube, &x, 1), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(loss, 1, &x, &dx) == ASG_OK && asg_custom_of(dx) == g_cube_bwd,
           "dx is a t.cube_bwd node: %s", dx ? asg_tensor_op_name(dx) : asg_last_error());
  asg_graph_free(g);
}

/* ----------------------------------------------------------------- training */

/* Fits y = x sigmoid(1.5 x) scaled by w: pred = w * swish(x; beta) with beta
 * and w learned from beta = 0.2, w = 0.5. */
static void test_training(void) {
  enum { B = 64 };
  double xv[B], yv[B];
  tu_rand(11, xv, B, -3, 3);
  for (int i = 0; i < B; i++)
    yv[i] = 2.0 * xv[i] / (1 + exp(-1.5 * xv[i]));
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B));
  asg_tensor *y = asg_input(g, "y", ASG_F32, ASG_SHAPE(B));
  asg_tensor *beta = asg_variable(g, "beta", ASG_F32, ASG_SHAPE(1), asg_init_constant(0.2));
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(1), asg_init_constant(0.5));
  asg_tensor *in[2] = {x, beta};
  asg_tensor *pred = asg_mul(w, asg_custom(g, g_swish, in, 2));
  asg_tensor *err = asg_sub(pred, y);
  asg_tensor *loss = asg_mean(asg_mul(err, err), ASG_ALL_AXES, false);
  asg_program *p = asg_compile_train(g, loss, asg_adam(0.05), 0, NULL, NULL);
  TU_CHECK(p != NULL, "compile_train: %s", asg_last_error());
  if (p) {
    tu_feed(p, "x", ASG_F32, xv, B);
    tu_feed(p, "y", ASG_F32, yv, B);
    double first = 0, last = 0;
    for (int t = 0; t < 300; t++) {
      TU_CHECK(asg_program_run(p) == ASG_OK, "run %d: %s", t, asg_last_error());
      last = asg_program_scalar(p, loss);
      if (t == 0) first = last;
    }
    double bv[1] = {0};
    tu_get_var(p, "beta", bv);
    printf("training: loss %.5f -> %.6f, beta 0.2 -> %.4f (target 1.5)\n", first, last, bv[0]);
    TU_CHECK(last < 0.01 * first, "loss %g -> %g did not drop 100x", first, last);
    TU_CHECK(fabs(bv[0] - 1.5) < 0.15, "beta learned %g, want 1.5", bv[0]);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* ------------------------------------------------------------------- errors */

static void test_register_errors(void) {
  const asg_custom_op *h = (const asg_custom_op *)&h; /* must be reset to NULL */
  asg_custom_desc d = {
      .name = "t.swish_beta", .n_inputs = 2, .shape = swish_shape, .cpu = swish_cpu};
  EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID && h == NULL,
             "'t.swish_beta' is already registered", "duplicate name");
  d.name = "t.new";
  d.cpu = NULL;
  EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID && !h, "CPU kernel", "NULL cpu kernel");
  d.cpu = swish_cpu;
  d.shape = NULL;
  EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID && !h, "shape", "NULL shape fn");
  d.shape = swish_shape;
  d.n_inputs = ASG_CUSTOM_MAX_INPUTS + 1;
  EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID, "n_inputs 9", "too many inputs");
  d.n_inputs = -1;
  EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID, "n_inputs -1", "negative inputs");
  d.n_inputs = 2;
  const char *bad[] = {"", "has space", "x/y",
                       "a123456789012345678901234567890123456789012345678901234567890123"};
  for (int i = 0; i < 4; i++) {
    d.name = bad[i];
    EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID, "is not 1..63", bad[i]);
  }
  d.name = NULL;
  EXPECT_MSG(asg_custom_register(&d, &h) == ASG_ERR_INVALID, "name", "NULL name");
  EXPECT_MSG(asg_custom_register(NULL, &h) == ASG_ERR_INVALID, "NULL", "NULL descriptor");
  d.name = "t.new";
  EXPECT_MSG(asg_custom_register(&d, NULL) == ASG_ERR_INVALID, "NULL", "NULL handle out");
  /* none of these registered anything */
  asg_clear_error();
  TU_CHECK(asg_custom_find("t.new") == NULL && tu_contains(asg_last_error(), "t.new"),
           "find of an unregistered name: %s", asg_last_error());
  TU_CHECK(asg_custom_find("t.cube") == g_cube && strcmp(asg_custom_name(g_cube), "t.cube") == 0,
           "find / name");
  TU_CHECK(asg_custom_name((const asg_custom_op *)&d) == NULL, "name of a non-handle");
}

static void test_build_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_scope_push(g, "act");
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(8));
  asg_tensor *b3 = asg_input(g, "b", ASG_F32, ASG_SHAPE(3));
  asg_tensor *in[2] = {x, b3};
  /* the shape function's message, with the scope, the op name and the inputs */
  TU_CHECK(asg_custom(g, g_swish, in, 2) == NULL, "bad beta accepted");
  const char *e = asg_graph_error(g);
  TU_CHECK(tu_contains(e, "act/custom op 't.swish_beta': beta must have one element, it is 3") &&
               tu_contains(e, "f32 [8], f32 [3]") && asg_graph_status(g) == ASG_ERR_SHAPE,
           "shape message: %s", e);
  TU_CHECK(tu_contains(asg_last_error(), "beta must have one element"), "last error: %s",
           asg_last_error());
  TU_CHECK(asg_custom(g, g_cube, &x, 1) == NULL, "sticky: a failed graph builds nothing");
  asg_graph_free(g);

  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F64, ASG_SHAPE(8));
  in[0] = in[1] = x;
  TU_CHECK(asg_custom(g, g_swish, in, 1) == NULL &&
               tu_contains(asg_graph_error(g), "custom op 't.swish_beta': takes 2 inputs, got 1"),
           "input count: %s", asg_graph_error(g));
  asg_graph_free(g);

  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F64, ASG_SHAPE(8));
  const double at[5] = {0};
  TU_CHECK(asg_custom_ex(g, g_affine, &x, 1, at, 5) == NULL &&
               tu_contains(asg_graph_error(g), "5 attributes"),
           "attribute count: %s", asg_graph_error(g));
  asg_graph_free(g);

  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F64, ASG_SHAPE(8));
  TU_CHECK(asg_custom(g, (const asg_custom_op *)x, &x, 1) == NULL &&
               tu_contains(asg_graph_error(g), "not a handle from asg_custom_register"),
           "bad handle: %s", asg_graph_error(g));
  asg_graph_free(g);

  g = asg_graph_new();
  asg_graph *g2 = asg_graph_new();
  x = asg_input(g, "x", ASG_F64, ASG_SHAPE(8));
  TU_CHECK(asg_custom(g2, g_cube, &x, 1) == NULL &&
               tu_contains(asg_graph_error(g2), "another graph"),
           "inputs of another graph: %s", asg_graph_error(g2));
  TU_CHECK(asg_custom(NULL, g_cube, &x, 1) == NULL && asg_last_error()[0], "NULL graph");
  asg_tensor *nul = NULL;
  TU_CHECK(asg_custom(g, g_cube, &nul, 1) == NULL && tu_contains(asg_graph_error(g), "NULL"),
           "NULL input: %s", asg_graph_error(g));
  asg_graph_free(g);
  asg_graph_free(g2);

  /* symbolic inputs are refused at once, naming the op and the shape */
  g = asg_graph_new();
  int64_t batch = asg_dim(g, "batch", 0);
  x = asg_input(g, "x", ASG_F64, ASG_SHAPE(batch, 4));
  TU_CHECK(asg_custom(g, g_cube, &x, 1) == NULL &&
               tu_contains(asg_graph_error(g), "custom op 't.cube': input 0 has the symbolic "
                                               "shape [batch,4]"),
           "symbolic: %s", asg_graph_error(g));
  asg_graph_free(g);
  /* ... but a custom op over static shapes compiles in a graph with symbols */
  g = asg_graph_new();
  batch = asg_dim(g, "batch", 0);
  asg_tensor *xs = asg_input(g, "xs", ASG_F64, ASG_SHAPE(batch, 3));
  asg_tensor *v = asg_variable(g, "v", ASG_F64, ASG_SHAPE(3), asg_init_constant(2));
  asg_tensor *yv = asg_add(xs, asg_custom(g, g_cube, &v, 1));
  asg_program *p = yv ? asg_compile(g, 1, &yv, NULL) : NULL;
  double xin[6] = {1, 2, 3, 4, 5, 6}, out[6] = {0};
  TU_CHECK(p && asg_program_feed_tensor(p, "xs", ASG_F64, ASG_SHAPE(2, 3), xin) == ASG_OK &&
               asg_program_run(p) == ASG_OK &&
               asg_program_fetch(p, yv, out, sizeof out) == ASG_OK && out[0] == 9 && out[5] == 14,
           "custom op in a symbolic program: %s (%g %g)", asg_last_error(), out[0], out[5]);
  asg_program_free(p);
  asg_graph_free(g);
}

static void test_grad_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(5), asg_init_ones());
  asg_tensor *loss = asg_sum(asg_custom(g, g_nograd, &x, 1), ASG_ALL_AXES, false), *dx;
  TU_CHECK(asg_grad(loss, 1, &x, &dx) != ASG_OK &&
               tu_contains(asg_graph_error(g), "grad of custom op 't.nograd'") &&
               tu_contains(asg_graph_error(g), "no gradient function"),
           "no grad: %s", asg_graph_error(g));
  asg_graph_free(g);
  /* cut with stop_gradient, the same op is fine */
  g = asg_graph_new();
  x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(5), asg_init_ones());
  asg_tensor *xs = asg_stop_gradient(x);
  loss = asg_add(asg_sum(asg_custom(g, g_nograd, &xs, 1), ASG_ALL_AXES, false),
                 asg_sum(x, ASG_ALL_AXES, false));
  TU_CHECK(asg_grad(loss, 1, &x, &dx) == ASG_OK, "stop_gradient around it: %s", asg_last_error());
  asg_graph_free(g);

  g = asg_graph_new();
  x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(5), asg_init_ones());
  loss = asg_sum(asg_custom(g, g_badgrad, &x, 1), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(loss, 1, &x, &dx) != ASG_OK &&
               tu_contains(asg_graph_error(g), "grad of custom op 't.badgrad': the gradient of "
                                               "input 0 is f64 []; the input is f64 [5]"),
           "wrong grad shape: %s", asg_graph_error(g));
  asg_graph_free(g);
}

static void test_run_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_scope_push(g, "blk");
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(4));
  asg_tensor *y = asg_custom(g, g_fail, &x, 1);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  double v[4] = {0};
  if (p) {
    tu_feed(p, "x", ASG_F64, v, 4);
    asg_status st = asg_program_run(p);
    TU_CHECK(st == ASG_ERR_BACKEND &&
                 tu_contains(asg_last_error(),
                             "cpu: blk/custom: custom op 't.fail': the device caught fire"),
             "failing kernel: %d %s", st, asg_last_error());
    TU_CHECK(asg_program_run(p) == ASG_ERR_BACKEND, "fails again, no crash");
  }
  asg_program_free(p);
  /* backends: CUDA without a CUDA kernel, Vulkan (no custom kernels) */
  const char *dev[2] = {"cuda", "vulkan"},
             *want[2] = {"has no CUDA kernel", "has no Vulkan kernel"};
  for (int b = 0; b < 2; b++) {
    if (!asg_backend_available(dev[b])) {
      printf("(%s not available: its refusal is not checked here)\n", dev[b]);
      continue;
    }
    asg_compile_opts o = {.backend = dev[b]};
    asg_clear_error();
    p = asg_compile(g, 1, &y, &o);
    TU_CHECK(p == NULL && tu_contains(asg_last_error(), "custom op 't.fail'") &&
                 tu_contains(asg_last_error(), want[b]),
             "%s refusal: %s", dev[b], asg_last_error());
    asg_program_free(p);
  }
  /* ONNX export refuses, naming the op */
  const char *dir = tu_tmpdir_create("asg_custom");
  asg_clear_error();
  asg_status st = dir ? asg_onnx_export(g, 1, &y, tu_path(dir, "m.onnx"), NULL) : ASG_ERR_IO;
  if (st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "protobuf"))
    printf("(built without ONNX: export refusal not checked)\n");
  else
    TU_CHECK(st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "custom op 't.fail'"),
             "onnx export: %d %s", st, asg_last_error());
  if (dir) tu_tmpdir_remove(dir);
  asg_graph_free(g);
}

/* -------------------------------------------------------------- threads */

enum { THREADS = 8 };
static int thr_ok[THREADS], thr_race[THREADS];

static void *thr_register(void *arg) {
  const int k = (int)(intptr_t)arg;
  char name[32];
  snprintf(name, sizeof name, "t.thr%d", k);
  asg_custom_desc d = {.name = name, .n_inputs = 1, .shape = same_shape, .cpu = cube_cpu};
  const asg_custom_op *h = NULL;
  thr_ok[k] = asg_custom_register(&d, &h) == ASG_OK && h && asg_custom_find(name) == h;
  d.name = "t.race"; /* every thread tries; exactly one may win */
  thr_race[k] = asg_custom_register(&d, &h) == ASG_OK;
  return NULL;
}

static void test_threads(void) {
  pthread_t t[THREADS];
  for (int k = 0; k < THREADS; k++)
    pthread_create(&t[k], NULL, thr_register, (void *)(intptr_t)k);
  int ok = 0, won = 0;
  for (int k = 0; k < THREADS; k++) {
    pthread_join(t[k], NULL);
    ok += thr_ok[k];
    won += thr_race[k];
  }
  TU_CHECK(ok == THREADS && won == 1, "threads: %d/%d registered, %d won the race", ok, THREADS,
           won);
}

int main(void) {
  register_all();
  test_forward();
  test_gradients();
  test_training();
  test_register_errors();
  test_build_errors();
  test_grad_errors();
  test_run_errors();
  test_threads();
  return tu_finish();
}
