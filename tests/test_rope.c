/* asg_rope, rotary position embedding as one op, on the CPU:
 * - forward, dx, dcos and dsin in f32 and f64 against double loops written
 *   here (y[i] = x[i] cos[i] - x[i+h] sin[i], y[i+h] = x[i+h] cos[i+h] +
 *   x[i] sin[i+h], h = D/2, and the gradients of sum(y * r) accumulated
 *   term by term), for x [B,H,T,D] with [T,D] and [B,1,T,D] tables (D = 64
 *   and small ones), tables of different shapes, a sine table broadcast
 *   over D, rank 1 and D = 2;
 * - tu_gradcheck (central differences in f64) of x, cos and sin, and of the
 *   gradients themselves (the rule is made of a rope and generic ops:
 *   differentiable again);
 * - ONNX export (decomposed) imported back gives the values;
 * - building errors (odd D, tables that do not broadcast to x, dtypes,
 *   rank 0, a symbolic D, NULL) name the problem and return NULL.
 * The Llama builder's use is checked against transformers in
 * test_hf_models; every backend against the CPU in test_parity.
 * Tolerances: f64 1e-12; f32 2e-6 on values of size O(1) (no sums), times
 * the number of terms summed into a table's gradient. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "testutil.h"

/* y = rope(x, c, s) and the gradients of loss = sum(y * r) for x of shape
 * xs, c of shape cs and s of shape ss (both broadcast to xs). */
static void ref_rope(asg_shape xs, asg_shape cs, asg_shape ss, const double *x, const double *c,
                     const double *s, const double *r, double *y, double *dx, double *dc,
                     double *ds) {
  long n = (long)asg_shape_numel(xs), D = (long)xs.dims[xs.ndim - 1], h = D / 2;
  memset(dx, 0, sizeof(double) * (size_t)n);
  memset(dc, 0, sizeof(double) * (size_t)asg_shape_numel(cs));
  memset(ds, 0, sizeof(double) * (size_t)asg_shape_numel(ss));
  for (long o = 0; o < n; o++) {
    long i = o % D;
    long p = i < h ? o + h : o - h; /* the partner element rotate_half reads */
    double sg = i < h ? -1 : 1;     /* rotate_half(x)[o] = sg * x[p] */
    long ci = tu_bcast_index(cs, xs, o), si = tu_bcast_index(ss, xs, o);
    y[o] = x[o] * c[ci] + sg * x[p] * s[si];
    dx[o] += r[o] * c[ci];
    dx[p] += r[o] * sg * s[si];
    dc[ci] += r[o] * x[o];
    ds[si] += r[o] * sg * x[p];
  }
}

/* v rounded to float (volatile: keeps the rounding at -O3, see test_rmsnorm.c). */
static void round_f32(double *v, long n) {
  for (long i = 0; i < n; i++) {
    volatile float f = (float)v[i];
    v[i] = f;
  }
}

static void check_case(asg_dtype dt, asg_shape xs, asg_shape cs, asg_shape ss) {
  long n = (long)asg_shape_numel(xs), nc = (long)asg_shape_numel(cs),
       ns = (long)asg_shape_numel(ss);
  double *x = malloc(sizeof(double) * n), *r = malloc(sizeof(double) * n);
  double *c = malloc(sizeof(double) * nc), *s = malloc(sizeof(double) * ns);
  double *y = malloc(sizeof(double) * n), *wy = malloc(sizeof(double) * n);
  double *dx = malloc(sizeof(double) * n), *wdx = malloc(sizeof(double) * n);
  double *dc = malloc(sizeof(double) * nc), *wdc = malloc(sizeof(double) * nc);
  double *ds = malloc(sizeof(double) * ns), *wds = malloc(sizeof(double) * ns);
  tu_rand(1 + (unsigned)n, x, n, -2, 2);
  tu_rand(2 + (unsigned)n, r, n, -1, 1);
  tu_rand(3 + (unsigned)nc, c, nc, -1, 1);
  tu_rand(4 + (unsigned)ns, s, ns, -1, 1);
  if (dt == ASG_F32) { /* the reference sees the values the f32 program sees */
    round_f32(x, n), round_f32(r, n), round_f32(c, nc), round_f32(s, ns);
  }
  ref_rope(xs, cs, ss, x, c, s, r, wy, wdx, wdc, wds);

  asg_graph *g = asg_graph_new();
  asg_tensor *xv = asg_variable(g, "x", dt, xs, asg_init_zeros());
  asg_tensor *cv = asg_variable(g, "c", dt, cs, asg_init_zeros());
  asg_tensor *sv = asg_variable(g, "s", dt, ss, asg_init_zeros());
  asg_tensor *yt = asg_rope(xv, cv, sv);
  TU_CHECK(yt && !strcmp(asg_tensor_op_name(yt), "rope") &&
               asg_shape_equal(asg_tensor_shape(yt), xs),
           "one rope op of x's shape: %s", asg_graph_error(g));
  asg_tensor *loss = asg_sum(asg_mul(yt, tu_constant(g, dt, xs, r)), ASG_ALL_AXES, false);
  asg_tensor *wrt[3] = {xv, cv, sv}, *d[3] = {NULL, NULL, NULL};
  TU_CHECK(asg_grad(loss, 3, wrt, d) == ASG_OK, "grad: %s", asg_graph_error(g));
  asg_tensor *outs[4] = {yt, d[0], d[1], d[2]};
  asg_program *p = asg_compile(g, 4, outs, NULL);
  TU_CHECK(p, "compile: %s", asg_last_error());
  char what[160], b1[64], b2[64], b3[64];
  snprintf(what, sizeof what, "rope %s x%s cos%s sin%s", dt == ASG_F32 ? "f32" : "f64",
           asg_shape_str(xs, b1, sizeof b1), asg_shape_str(cs, b2, sizeof b2),
           asg_shape_str(ss, b3, sizeof b3));
  double tol = dt == ASG_F32 ? 2e-6 : 1e-12;
  /* terms summed into one element of a table's gradient */
  double kc = (double)n / (double)nc, ks = (double)n / (double)ns;
  if (p && tu_set_var(p, "x", x) == 0 && tu_set_var(p, "c", c) == 0 && tu_set_var(p, "s", s) == 0) {
    TU_CHECK(asg_program_run(p) == ASG_OK, "%s run: %s", what, asg_last_error());
    TU_CHECK(tu_fetch(p, yt, y) == 0 && tu_close(what, y, wy, n, tol, tol), "%s: y", what);
    TU_CHECK(tu_fetch(p, d[0], dx) == 0 && tu_close(what, dx, wdx, n, tol, tol), "%s: dx", what);
    TU_CHECK(tu_fetch(p, d[1], dc) == 0 && tu_close(what, dc, wdc, nc, tol * kc, tol), "%s: dcos",
             what);
    TU_CHECK(tu_fetch(p, d[2], ds) == 0 && tu_close(what, ds, wds, ns, tol * ks, tol), "%s: dsin",
             what);
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(r), free(c), free(s), free(y), free(wy), free(dx), free(wdx);
  free(dc), free(wdc), free(ds), free(wds);
}

static asg_tensor *build_rope(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  return asg_rope(xs[0], xs[1], xs[2]);
}

/* One gradient of sum(rope(x, c, s) * w) for a fixed w (ctx: 0 dx, 1 dcos,
 * 2 dsin): checking its own gradient checks the second derivatives (dx
 * depends on c and s, dsin on x). */
static asg_tensor *build_rope_grad(asg_graph *g, asg_tensor **xs, void *ctx) {
  int which = *(const int *)ctx;
  asg_shape s = asg_tensor_shape(xs[0]);
  long n = (long)asg_shape_numel(s);
  double *w = malloc(sizeof(double) * (size_t)n);
  tu_rand(11, w, n, -1, 1);
  asg_tensor *y = asg_rope(xs[0], xs[1], xs[2]);
  asg_tensor *loss = asg_sum(asg_mul(y, tu_constant(g, ASG_F64, s, w)), ASG_ALL_AXES, false);
  free(w);
  asg_tensor *d[3] = {NULL, NULL, NULL};
  return asg_grad(loss, 3, xs, d) == ASG_OK ? d[which] : NULL;
}

static void test_gradcheck(void) {
  asg_shape a[3] = {ASG_SHAPE(2, 3, 4, 6), ASG_SHAPE(4, 6), ASG_SHAPE(2, 1, 4, 6)};
  TU_CHECK(tu_gradcheck("rope [2,3,4,6] cos [4,6] sin [2,1,4,6]", 3, a, build_rope, NULL, NULL) ==
               0,
           "gradient check");
  asg_shape b[3] = {ASG_SHAPE(3, 5, 4), ASG_SHAPE(5, 1), ASG_SHAPE(1, 5, 4)};
  TU_CHECK(tu_gradcheck("rope [3,5,4] cos [5,1] sin [1,5,4]", 3, b, build_rope, NULL, NULL) == 0,
           "gradient check, cos broadcast over D");
  asg_shape c[3] = {ASG_SHAPE(2, 3, 8), ASG_SHAPE(3, 8), ASG_SHAPE(3, 8)};
  tu_gc_opts o = {.tol = 1e-5};
  static const char *const names[3] = {"rope second derivative via dx", "via dcos", "via dsin"};
  for (int k = 0; k < 3; k++)
    TU_CHECK(tu_gradcheck(names[k], 3, c, build_rope_grad, &k, &o) == 0, "%s", names[k]);
  asg_shape e[3] = {ASG_SHAPE(2, 3, 8), ASG_SHAPE(3, 1), ASG_SHAPE(1)};
  int zero = 0;
  TU_CHECK(tu_gradcheck("rope second derivative, tables broadcast over D", 3, e, build_rope_grad,
                        &zero, &o) == 0,
           "second derivative, tables broadcast over D");
}

/* Exported as ONNX (Slice, Neg, Concat, Mul, Add) and imported back: the
 * same values. */
static void test_onnx(void) {
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(2, 3, 4, 8);
  asg_tensor *x = asg_input(g, "x", ASG_F32, xs);
  asg_tensor *c = asg_variable(g, "c", ASG_F32, ASG_SHAPE(4, 8), asg_init_uniform(-1, 1));
  asg_tensor *s = asg_variable(g, "s", ASG_F32, ASG_SHAPE(2, 1, 4, 8), asg_init_uniform(-1, 1));
  asg_tensor *y = asg_rope(x, c, s);
  double xv[192];
  tu_rand(31, xv, 192, -3, 3);
  tu_onnx_roundtrip(g, y, xv, 192, 1e-6, 1e-6, "onnx");
  asg_graph_free(g);
}

static void test_errors(void) {
  struct {
    int k;
    const char *sub;
  } cs[] = {{0, "must be even"},
            {1, "cos [4,8] does not broadcast to x [2,5,8]"},
            {2, "sin [3,5,8] does not broadcast to x [5,8]"},
            {3, "cos [5,4] does not broadcast"},
            {4, "cos is f64, x is f32"},
            {5, "sin is f64, x is f32"},
            {6, "scalar"},
            {7, "f32/f64"},
            {8, "must be a constant"},
            {9, "input 1 is NULL"}};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 5, 8)), *t = NULL;
    asg_tensor *c = asg_input(g, "c", ASG_F32, ASG_SHAPE(5, 8));
    switch (cs[i].k) {
    case 0: {
      asg_tensor *c7 = asg_input(g, "c7", ASG_F32, ASG_SHAPE(5, 7));
      t = asg_rope(asg_input(g, "x7", ASG_F32, ASG_SHAPE(2, 5, 7)), c7, c7);
      break;
    }
    case 1: t = asg_rope(x, asg_input(g, "c4", ASG_F32, ASG_SHAPE(4, 8)), c); break;
    case 2: t = asg_rope(c, c, asg_input(g, "s3", ASG_F32, ASG_SHAPE(3, 5, 8))); break;
    case 3: t = asg_rope(x, asg_input(g, "c54", ASG_F32, ASG_SHAPE(5, 4)), c); break;
    case 4: t = asg_rope(x, asg_input(g, "c64", ASG_F64, ASG_SHAPE(5, 8)), c); break;
    case 5: t = asg_rope(x, c, asg_input(g, "s64", ASG_F64, ASG_SHAPE(5, 8))); break;
    case 6: {
      asg_tensor *z = asg_input(g, "z", ASG_F32, ASG_SCALAR);
      t = asg_rope(z, z, z);
      break;
    }
    case 7: {
      asg_tensor *xi = asg_input(g, "xi", ASG_I32, ASG_SHAPE(5, 8));
      t = asg_rope(xi, xi, xi);
      break;
    }
    case 8: {
      asg_tensor *xd = asg_input(g, "xd", ASG_F32, ASG_SHAPE(2, asg_dim(g, "d", 0)));
      t = asg_rope(xd, xd, xd);
      break;
    }
    default: t = asg_rope(x, NULL, c); break;
    }
    const char *e = asg_graph_error(g);
    TU_CHECK(!t && e && tu_contains(e, "rope") && tu_contains(e, cs[i].sub),
             "case %d: want a rope error naming '%s', got %s", cs[i].k, cs[i].sub,
             e ? e : "(none)");
    /* the graph stays failed: later ops return NULL */
    TU_CHECK(asg_rope(x, c, c) == NULL, "case %d: a failed graph stays failed", cs[i].k);
    asg_graph_free(g);
  }
  TU_CHECK(asg_rope(NULL, NULL, NULL) == NULL && tu_contains(asg_last_error(), "rope"),
           "NULL x: %s", asg_last_error());
}

int main(void) {
  static const struct {
    asg_shape x, c, s;
  } cases[] = {
      {{4, {2, 3, 5, 64}}, {2, {5, 64}}, {2, {5, 64}}},             /* Llama, positions 0..T-1 */
      {{4, {2, 3, 5, 64}}, {4, {2, 1, 5, 64}}, {4, {2, 1, 5, 64}}}, /* Llama, positions fed */
      {{4, {1, 2, 7, 6}}, {2, {7, 6}}, {4, {1, 1, 7, 1}}}, /* odd T; sin broadcast over D */
      {{3, {3, 2, 10}}, {3, {3, 1, 10}}, {1, {10}}},       /* tables of other shapes */
      {{1, {4}}, {1, {4}}, {1, {1}}},                      /* rank 1 */
      {{2, {5, 2}}, {2, {5, 2}}, {2, {5, 2}}},             /* D = 2 */
  };
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
      check_case(d ? ASG_F64 : ASG_F32, cases[k].x, cases[k].c, cases[k].s);
  test_gradcheck();
  test_onnx();
  test_errors();
  return tu_finish();
}
