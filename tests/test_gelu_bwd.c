/* gelu_bwd(dy, x) = dy gelu'(x) and gelu_tanh_bwd(dy, x) = dy gelu_tanh'(x):
 *  - values against float64 loops written here (gelu' from erf and exp,
 *    gelu_tanh' from tanh), f32 and f64, same shapes (short, and threaded
 *    with several work chunks) and NumPy broadcasting either way round;
 *  - the gradients of gelu and gelu_tanh are these ops (one node);
 *  - central-difference checks in f64 of the ops' own gradient rules (both
 *    operands, broadcast), of the mixed second derivatives, and of the second
 *    and third derivatives of gelu and gelu_tanh through them;
 *  - dtype and shape errors.
 * Tolerances (|got - want| <= atol + rtol |want|): f64 1e-14 + 1e-12;
 * f32 1e-6 |dy| + 5e-7 |want| (float erf/exp: an absolute error of a few
 * 1e-7 in gelu', scaled by dy). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define SQRT2 1.4142135623730950488
#define PI 3.14159265358979323846

static double d_gelu(double x) {
  return 0.5 * (1 + erf(x / SQRT2)) + x * exp(-0.5 * x * x) / sqrt(2 * PI);
}
static double d_gelu_tanh(double x) {
  const double a = sqrt(2 / PI), c = 0.044715;
  double t = tanh(a * (x + c * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * a * (1 + 3 * c * x * x);
}

typedef struct bwop {
  const char *name;
  asg_tensor *(*f)(asg_tensor *, asg_tensor *);
  asg_tensor *(*fwd)(asg_tensor *);
  double (*d)(double);
} bwop;
static const bwop OPS[2] = {{"gelu_bwd", asg_gelu_bwd, asg_gelu, d_gelu},
                            {"gelu_tanh_bwd", asg_gelu_tanh_bwd, asg_gelu_tanh, d_gelu_tanh}};

static double as_dt(asg_dtype dt, double v) { return dt == ASG_F32 ? (double)(float)v : v; }

/* op(dy [sg], x [sx]) against the double loop; x over [-6, 6] (both tails),
 * with 0, +-1 and large |x| among the first values. */
static void check_values(const bwop *op, asg_dtype dt, asg_shape sg, asg_shape sx) {
  asg_shape so = tu_bcast_shape(sg, sx);
  long ng = (long)asg_shape_numel(sg), nx = (long)asg_shape_numel(sx),
       no = (long)asg_shape_numel(so);
  double *g = malloc(sizeof(double) * (size_t)ng), *x = malloc(sizeof(double) * (size_t)nx);
  double *got = malloc(sizeof(double) * (size_t)no), *want = malloc(sizeof(double) * (size_t)no);
  tu_rand(11 + (unsigned long long)ng, g, ng, -2, 2);
  tu_rand(23 + (unsigned long long)nx, x, nx, -6, 6);
  const double edge[] = {0, 1, -1, 30, -30, -9.5};
  for (long i = 0; i < nx && i < 6; i++)
    x[i] = edge[i];
  int bad = 0;
  for (long o = 0; o < no; o++) {
    double gv = as_dt(dt, g[tu_bcast_index(sg, so, o)]);
    want[o] = gv * op->d(as_dt(dt, x[tu_bcast_index(sx, so, o)]));
  }
  asg_graph *gr = asg_graph_new();
  asg_tensor *y = op->f(tu_constant(gr, dt, sg, g), tu_constant(gr, dt, sx, x));
  char what[160], s1[64], s2[64];
  snprintf(what, sizeof what, "%s %s %s x %s", op->name, asg_dtype_name(dt),
           asg_shape_str(sg, s1, sizeof s1), asg_shape_str(sx, s2, sizeof s2));
  bool ok = y && asg_shape_equal(asg_tensor_shape(y), so) && asg_tensor_dtype(y) == dt &&
            tu_eval(gr, y, got) == 0;
  TU_CHECK(ok, "%s: built and ran: %s", what, asg_graph_error(gr));
  for (long o = 0; ok && o < no; o++) {
    double gv = fabs(as_dt(dt, g[tu_bcast_index(sg, so, o)]));
    double tol = dt == ASG_F32 ? 1e-6 * gv + 5e-7 * fabs(want[o]) : 1e-14 + 1e-12 * fabs(want[o]);
    if (!(fabs(got[o] - want[o]) <= tol) && bad++ < 3)
      printf("  %s [%ld]: got %.9g want %.9g\n", what, o, got[o], want[o]);
  }
  TU_CHECK(ok && !bad, "%s: %d of %ld values off", what, bad, no);
  asg_graph_free(gr);
  free(g), free(x), free(got), free(want);
}

/* asg_grad of gelu / gelu_tanh is the one op, reading the upstream
 * gradient and gelu's input. */
static void check_rule_uses_op(void) {
  for (int k = 0; k < 2; k++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F32, ASG_SHAPE(4, 8), asg_init_normal(0, 1));
    asg_tensor *r = asg_input(g, "r", ASG_F32, ASG_SHAPE(4, 8)), *gx = NULL;
    asg_tensor *loss = asg_sum(asg_mul(OPS[k].fwd(x), r), ASG_ALL_AXES, false);
    TU_CHECK(asg_grad(loss, 1, &x, &gx) == ASG_OK && gx, "%s: grad", OPS[k].name);
    const char *op = gx ? asg_tensor_op_name(gx) : "(none)";
    TU_CHECK(!strcmp(op, OPS[k].name), "gradient of %s is a %s node, want %s",
             k ? "gelu_tanh" : "gelu", op, OPS[k].name);
    asg_graph_free(g);
  }
}

static void check_errors(void) {
  for (int k = 0; k < 2; k++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *xi = asg_input(g, "xi", ASG_I32, ASG_SHAPE(3));
    TU_CHECK(OPS[k].f(xi, xi) == NULL && tu_contains(asg_graph_error(g), OPS[k].name) &&
                 tu_contains(asg_graph_error(g), "float"),
             "%s of i32: %s", OPS[k].name, asg_graph_error(g));
    asg_graph_free(g);
    g = asg_graph_new();
    asg_tensor *a = asg_input(g, "a", ASG_F32, ASG_SHAPE(3)),
               *b = asg_input(g, "b", ASG_F64, ASG_SHAPE(3));
    TU_CHECK(OPS[k].f(a, b) == NULL && tu_contains(asg_graph_error(g), "dtypes differ"),
             "%s f32 x f64: %s", OPS[k].name, asg_graph_error(g));
    asg_graph_free(g);
    g = asg_graph_new();
    a = asg_input(g, "a", ASG_F32, ASG_SHAPE(2, 3));
    b = asg_input(g, "b", ASG_F32, ASG_SHAPE(4));
    TU_CHECK(OPS[k].f(a, b) == NULL && tu_contains(asg_graph_error(g), "do not broadcast"),
             "%s [2,3] x [4]: %s", OPS[k].name, asg_graph_error(g));
    asg_graph_free(g);
  }
}

/* ---- gradient checks (tu_gradcheck: f64 variables, central differences) ---- */
static asg_tensor *gb_op(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return ((const bwop *)ctx)->f(xs[0], xs[1]);
}
/* d/d(dy) and d/dx of sum(op(dy, x)): the op's rule differentiated again */
static asg_tensor *gb_op_second(asg_graph *g, asg_tensor **xs, void *ctx, int which) {
  (void)g;
  asg_tensor *gr[2] = {NULL, NULL};
  asg_tensor *l = asg_sum(((const bwop *)ctx)->f(xs[0], xs[1]), ASG_ALL_AXES, false);
  return asg_grad(l, 2, xs, gr) == ASG_OK ? gr[which] : NULL;
}
static asg_tensor *gb_op_second_dy(asg_graph *g, asg_tensor **xs, void *ctx) {
  return gb_op_second(g, xs, ctx, 0);
}
static asg_tensor *gb_op_second_x(asg_graph *g, asg_tensor **xs, void *ctx) {
  return gb_op_second(g, xs, ctx, 1);
}
/* gelu'' (checked against differences of gelu') and gelu''' */
static asg_tensor *gb_d2(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  asg_tensor *gr = NULL;
  asg_tensor *l = asg_sum(((const bwop *)ctx)->fwd(xs[0]), ASG_ALL_AXES, false);
  return asg_grad(l, 1, xs, &gr) == ASG_OK ? gr : NULL;
}
static asg_tensor *gb_d3(asg_graph *g, asg_tensor **xs, void *ctx) {
  asg_tensor *g1 = gb_d2(g, xs, ctx), *g2 = NULL;
  if (!g1) return NULL;
  return asg_grad(asg_sum(g1, ASG_ALL_AXES, false), 1, xs, &g2) == ASG_OK ? g2 : NULL;
}

static void check_gradients(void) {
  const asg_shape pairs[][2] = {{ASG_SHAPE(3, 4), ASG_SHAPE(3, 4)},
                                {ASG_SHAPE(2, 3), ASG_SHAPE(3)},
                                {ASG_SHAPE(3), ASG_SHAPE(2, 3)},
                                {ASG_SHAPE(2, 1, 4), ASG_SHAPE(3, 1)}};
  const tu_gc_opts o = {-3, 3, 0, 0, NULL};
  for (int k = 0; k < 2; k++) {
    void *ctx = (void *)&OPS[k];
    for (int p = 0; p < 4; p++) {
      char name[96], s1[32], s2[32];
      snprintf(name, sizeof name, "%s %s x %s", OPS[k].name,
               asg_shape_str(pairs[p][0], s1, sizeof s1),
               asg_shape_str(pairs[p][1], s2, sizeof s2));
      tu_gradcheck(name, 2, pairs[p], gb_op, ctx, &o);
    }
    char name[96];
    snprintf(name, sizeof name, "d2 %s (d/d dy)", OPS[k].name);
    tu_gradcheck(name, 2, pairs[1], gb_op_second_dy, ctx, &o);
    snprintf(name, sizeof name, "d2 %s (d/dx)", OPS[k].name);
    tu_gradcheck(name, 2, pairs[1], gb_op_second_x, ctx, &o);
    snprintf(name, sizeof name, "gelu%s'' through %s", k ? "_tanh" : "", OPS[k].name);
    tu_gradcheck(name, 1, (asg_shape[]){ASG_SHAPE(2, 5)}, gb_d2, ctx, &o);
    snprintf(name, sizeof name, "gelu%s''' through %s", k ? "_tanh" : "", OPS[k].name);
    tu_gradcheck(name, 1, (asg_shape[]){ASG_SHAPE(2, 5)}, gb_d3, ctx, &o);
  }
}

int main(void) {
  const asg_dtype fdt[2] = {ASG_F32, ASG_F64};
  const asg_shape pats[][2] = {
      {ASG_SHAPE(257), ASG_SHAPE(257)},         {ASG_SHAPE(2, 3, 4), ASG_SHAPE(4)},
      {ASG_SHAPE(2, 1, 4), ASG_SHAPE(3, 1)},    {ASG_SCALAR, ASG_SHAPE(5)},
      {ASG_SHAPE(3, 1, 5), ASG_SHAPE(1, 4, 1)}, {ASG_SHAPE(4, 5), ASG_SHAPE(4, 5)},
  };
  for (int k = 0; k < 2; k++) {
    for (int d = 0; d < 2; d++)
      for (size_t p = 0; p < sizeof pats / sizeof pats[0]; p++) {
        check_values(&OPS[k], fdt[d], pats[p][0], pats[p][1]);
        check_values(&OPS[k], fdt[d], pats[p][1], pats[p][0]); /* swapped */
      }
    /* threaded, several work chunks: same shape and a broadcast row */
    check_values(&OPS[k], ASG_F32, ASG_SHAPE(120001), ASG_SHAPE(120001));
    check_values(&OPS[k], ASG_F64, ASG_SHAPE(3, 40000), ASG_SHAPE(3, 40000));
    check_values(&OPS[k], ASG_F32, ASG_SHAPE(3, 40000), ASG_SHAPE(40000));
  }
  check_rule_uses_op();
  check_errors();
  check_gradients();
  return tu_finish();
}
