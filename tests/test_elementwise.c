/* Elementwise ops: forward against float64 libm references written here,
 * integer dtypes, casts, NumPy broadcasting (small and threaded sizes),
 * first- and second-order gradient checks.
 *
 * Tolerances (|got - want| <= atol + rtol |want|):
 *   f64: rtol 1e-12, atol 1e-14
 *   f32: rtol 1e-6,  atol 1e-6 (the atol covers cancellation in e.g.
 *        gelu(x) = 0.5 x (1 + erf(x / sqrt 2)) at negative x, where float
 *        erf's absolute error is the bound)
 *   integers: exact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define SQRT2 1.4142135623730950488
#define PI 3.14159265358979323846

static double tol_r(asg_dtype dt) { return dt == ASG_F32 ? 1e-6 : dt == ASG_F64 ? 1e-12 : 0; }
static double tol_a(asg_dtype dt) { return dt == ASG_F32 ? 1e-6 : dt == ASG_F64 ? 1e-14 : 0; }

/* The value v takes once stored in dt. */
static double as_dtype(asg_dtype dt, double v) {
  switch (dt) {
  case ASG_F32: return (float)v;
  case ASG_I32: return (int32_t)v;
  case ASG_I64: return (double)(int64_t)v;
  default: return v;
  }
}

/* ---------------- unary ---------------- */
typedef asg_tensor *(*un_fn)(asg_tensor *);
static double r_neg(double x) { return -x; }
static double r_sign(double x) { return (x > 0) - (x < 0); }
static double r_rsqrt(double x) { return 1 / sqrt(x); }
static double r_sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double r_relu(double x) { return x > 0 ? x : 0; }
static double r_leaky(double x) { return x > 0 ? x : 0.1 * x; }
static double r_gelu(double x) { return 0.5 * x * (1 + erf(x / SQRT2)); }
static double r_gelu_tanh(double x) {
  return 0.5 * x * (1 + tanh(sqrt(2 / PI) * (x + 0.044715 * x * x * x)));
}
static double r_silu(double x) { return x / (1 + exp(-x)); }
static double r_elu(double x) { return x > 0 ? x : 1.3 * (exp(x) - 1); }
static double r_softplus(double x) { return 2 * x > 3 ? x : log1p(exp(2 * x)) / 2; }
static double r_clamp(double x) { return x < -0.5 ? -0.5 : x > 0.7 ? 0.7 : x; }
static double r_id(double x) { return x; }

static asg_tensor *u_leaky(asg_tensor *x) { return asg_leaky_relu(x, 0.1); }
static asg_tensor *u_elu(asg_tensor *x) { return asg_elu(x, 1.3); }
static asg_tensor *u_softplus(asg_tensor *x) { return asg_softplus(x, 2.0, 3.0); }
static asg_tensor *u_clamp(asg_tensor *x) { return asg_clamp(x, -0.5, 0.7); }

typedef struct unop {
  const char *name;
  un_fn f;
  double (*ref)(double);
  double lo, hi; /* forward / gradcheck input range */
  bool grad;     /* differentiable: gradcheck it */
} unop;

static const unop UNOPS[] = {
    {"neg", asg_neg, r_neg, -3, 3, true},
    {"abs", asg_abs, fabs, -3, 3, true},
    {"sign", asg_sign, r_sign, -3, 3, false},
    {"exp", asg_exp, exp, -3, 3, true},
    {"log", asg_log, log, 0.1, 5, true},
    {"sqrt", asg_sqrt, sqrt, 0.1, 5, true},
    {"rsqrt", asg_rsqrt, r_rsqrt, 0.1, 5, true},
    {"sin", asg_sin, sin, -4, 4, true},
    {"cos", asg_cos, cos, -4, 4, true},
    {"tanh", asg_tanh, tanh, -3, 3, true},
    {"erf", asg_erf, erf, -3, 3, true},
    {"sigmoid", asg_sigmoid, r_sigmoid, -8, 8, true},
    {"relu", asg_relu, r_relu, -3, 3, true},
    {"leaky_relu", u_leaky, r_leaky, -3, 3, true},
    {"gelu", asg_gelu, r_gelu, -3, 3, true},
    {"gelu_tanh", asg_gelu_tanh, r_gelu_tanh, -3, 3, true},
    {"silu", asg_silu, r_silu, -6, 6, true},
    {"elu", u_elu, r_elu, -3, 3, true},
    {"softplus", u_softplus, r_softplus, -3, 3, true}, /* linear above x = 1.5 */
    {"clamp", u_clamp, r_clamp, -1.5, 1.5, true},
    {"stop_gradient", asg_stop_gradient, r_id, -3, 3, false},
};
#define N_UNOPS (int)(sizeof UNOPS / sizeof UNOPS[0])

/* y = f(const x) evaluated in dt, compared with ref on x rounded to dt. */
static void check_unary(const unop *u, asg_dtype dt, long n) {
  double *x = malloc(sizeof(double) * (size_t)n), *got = malloc(sizeof(double) * (size_t)n),
         *want = malloc(sizeof(double) * (size_t)n);
  tu_rand(7 + (unsigned long long)n, x, n, u->lo, u->hi);
  if (u->lo < 0 && n >= 3) x[0] = 0, x[1] = 1, x[2] = -1; /* kinks and sign */
  for (long i = 0; i < n; i++)
    want[i] = u->ref(as_dtype(dt, x[i]));
  if (dt == ASG_F32)
    for (long i = 0; i < n; i++)
      want[i] = (float)want[i];
  asg_graph *g = asg_graph_new();
  asg_tensor *y = u->f(tu_constant(g, dt, ASG_SHAPE(n), x));
  int ok = y && asg_tensor_dtype(y) == dt && tu_eval(g, y, got) == 0;
  char what[64];
  snprintf(what, sizeof what, "%s %s n=%ld", u->name, asg_dtype_name(dt), n);
  TU_CHECK(ok && tu_close(what, got, want, n, tol_a(dt), tol_r(dt)), "%s forward", what);
  asg_graph_free(g);
  free(x), free(got), free(want);
}

/* neg/abs/sign/relu/clamp on integers: exact. */
static void check_unary_int(void) {
  static const double xs[] = {-7, -3, -1, 0, 1, 2, 5, 9, -100, 100};
  const int n = 10;
  const asg_dtype dts[] = {ASG_I32, ASG_I64};
  struct {
    const char *name;
    un_fn f;
    double (*ref)(double);
  } ops[] = {{"neg", asg_neg, r_neg},
             {"abs", asg_abs, fabs},
             {"sign", asg_sign, r_sign},
             {"relu", asg_relu, r_relu},
             {"clamp", NULL, NULL}};
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < 5; k++) {
      double got[10], want[10];
      asg_graph *g = asg_graph_new();
      asg_tensor *x = tu_constant(g, dts[d], ASG_SHAPE(n), xs), *y;
      if (ops[k].f) {
        y = ops[k].f(x);
        for (int i = 0; i < n; i++)
          want[i] = ops[k].ref(xs[i]);
      } else { /* integer clamp bounds */
        y = asg_clamp(x, -3, 4);
        for (int i = 0; i < n; i++)
          want[i] = xs[i] < -3 ? -3 : xs[i] > 4 ? 4 : xs[i];
      }
      int ok = y && asg_tensor_dtype(y) == dts[d] && tu_eval(g, y, got) == 0;
      TU_CHECK(ok && tu_close(ops[k].name, got, want, n, 0, 0), "%s on %s", ops[k].name,
               asg_dtype_name(dts[d]));
      asg_graph_free(g);
    }
}

/* Every pair of f32/f64/i32/i64: floats truncate toward zero into ints. */
static void check_cast(void) {
  static const double fx[] = {-3.75, -1.0, -0.5, 0.0, 0.25, 2.5, 7.9, 1e6 + 0.5, -123456.0};
  static const double ix[] = {-3, -1, 0, 1, 2, 7, 1000000, -123456, 65537};
  const int n = 9;
  const asg_dtype dts[] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  for (int a = 0; a < 4; a++)
    for (int b = 0; b < 4; b++) {
      const double *src = a < 2 ? fx : ix;
      double got[9], want[9];
      for (int i = 0; i < n; i++) {
        double v = as_dtype(dts[a], src[i]);
        want[i] = dts[b] == ASG_F32 ? (float)v : dts[b] >= ASG_I32 ? trunc(v) : v;
      }
      asg_graph *g = asg_graph_new();
      asg_tensor *y = asg_cast(tu_constant(g, dts[a], ASG_SHAPE(n), src), dts[b]);
      int ok = y && asg_tensor_dtype(y) == dts[b] && tu_eval(g, y, got) == 0;
      TU_CHECK(ok && tu_close("cast", got, want, n, 0, 0), "cast %s -> %s", asg_dtype_name(dts[a]),
               asg_dtype_name(dts[b]));
      asg_graph_free(g);
    }
}

/* ---------------- binary ---------------- */
typedef asg_tensor *(*bin_fn)(asg_tensor *, asg_tensor *);
static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_max(double a, double b) { return a > b ? a : b; }
static double r_min(double a, double b) { return a < b ? a : b; }
static double r_eq(double a, double b) { return a == b; }
static double r_ne(double a, double b) { return a != b; }
static double r_lt(double a, double b) { return a < b; }
static double r_le(double a, double b) { return a <= b; }
static double r_gt(double a, double b) { return a > b; }
static double r_ge(double a, double b) { return a >= b; }

typedef struct binop {
  const char *name;
  bin_fn f;
  double (*ref)(double, double);
  bool int_ok;
} binop;
static const binop BINOPS[] = {
    {"add", asg_add, r_add, true},
    {"sub", asg_sub, r_sub, true},
    {"mul", asg_mul, r_mul, true},
    {"div", asg_div, r_div, true},
    {"pow", asg_pow, pow, false},
    {"maximum", asg_maximum, r_max, true},
    {"minimum", asg_minimum, r_min, true},
    {"eq", asg_eq, r_eq, true},
    {"ne", asg_ne, r_ne, true},
    {"lt", asg_lt, r_lt, true},
    {"le", asg_le, r_le, true},
    {"gt", asg_gt, r_gt, true},
    {"ge", asg_ge, r_ge, true},
};
#define N_BINOPS (int)(sizeof BINOPS / sizeof BINOPS[0])

/* Operand data for op on dtype dt: quantized so that comparisons see ties;
 * pow gets a positive base, div a nonzero float divisor. */
static void bin_data(const binop *op, asg_dtype dt, int which, double *v, long n) {
  tu_rand(100 + (unsigned)which * 31 + (unsigned long long)n, v, n, -3, 3);
  bool is_int = dt == ASG_I32 || dt == ASG_I64;
  for (long i = 0; i < n; i++) {
    if (is_int)
      v[i] = floor(v[i] * 3); /* -9..8, includes 0 divisors */
    else
      v[i] = round(v[i] * 4) / 4; /* steps of 0.25: ties */
    if (!is_int && strcmp(op->name, "pow") == 0) v[i] = which == 0 ? fabs(v[i]) + 0.25 : v[i] / 2;
    if (!is_int && strcmp(op->name, "div") == 0 && which == 1 && v[i] == 0) v[i] = 0.75;
  }
}

/* Integer division as the library defines it: C truncation, x/0 = 0. */
static double r_idiv(double a, double b) { return b == 0 ? 0 : trunc(a / b); }

static void check_binary(const binop *op, asg_dtype dt, asg_shape sa, asg_shape sb) {
  asg_shape so = tu_bcast_shape(sa, sb);
  long na = (long)asg_shape_numel(sa), nb = (long)asg_shape_numel(sb),
       no = (long)asg_shape_numel(so);
  double *a = malloc(sizeof(double) * (size_t)na), *b = malloc(sizeof(double) * (size_t)nb);
  double *got = malloc(sizeof(double) * (size_t)no), *want = malloc(sizeof(double) * (size_t)no);
  bin_data(op, dt, 0, a, na);
  bin_data(op, dt, 1, b, nb);
  bool is_int = dt == ASG_I32 || dt == ASG_I64;
  for (long o = 0; o < no; o++) {
    double x = as_dtype(dt, a[tu_bcast_index(sa, so, o)]),
           y = as_dtype(dt, b[tu_bcast_index(sb, so, o)]);
    want[o] = is_int && op->ref == r_div ? r_idiv(x, y) : op->ref(x, y);
    want[o] = as_dtype(dt, want[o]);
  }
  asg_graph *g = asg_graph_new();
  asg_tensor *y = op->f(tu_constant(g, dt, sa, a), tu_constant(g, dt, sb, b));
  char what[128], s1[64], s2[64];
  snprintf(what, sizeof what, "%s %s %s x %s", op->name, asg_dtype_name(dt),
           asg_shape_str(sa, s1, sizeof s1), asg_shape_str(sb, s2, sizeof s2));
  int ok = y && asg_shape_equal(asg_tensor_shape(y), so) && asg_tensor_dtype(y) == dt &&
           tu_eval(g, y, got) == 0;
  TU_CHECK(ok && tu_close(what, got, want, no, tol_a(dt), tol_r(dt)), "%s", what);
  asg_graph_free(g);
  free(a), free(b), free(got), free(want);
}

static void check_where(asg_dtype dt, asg_shape sc, asg_shape sa, asg_shape sb) {
  asg_shape so = tu_bcast_shape(tu_bcast_shape(sc, sa), sb);
  long nc = (long)asg_shape_numel(sc), na = (long)asg_shape_numel(sa),
       nb = (long)asg_shape_numel(sb), no = (long)asg_shape_numel(so);
  double *c = malloc(sizeof(double) * (size_t)nc), *a = malloc(sizeof(double) * (size_t)na),
         *b = malloc(sizeof(double) * (size_t)nb), *got = malloc(sizeof(double) * (size_t)no),
         *want = malloc(sizeof(double) * (size_t)no);
  tu_rand(5, c, nc, -1, 1);
  for (long i = 0; i < nc; i++)
    c[i] = c[i] > 0 ? (i % 3 ? 1 : -2) : 0; /* any nonzero is true */
  tu_rand(6, a, na, -9, 9);
  tu_rand(8, b, nb, -9, 9);
  for (long i = 0; i < na; i++)
    a[i] = floor(a[i]);
  for (long i = 0; i < nb; i++)
    b[i] = floor(b[i]);
  for (long o = 0; o < no; o++)
    want[o] = c[tu_bcast_index(sc, so, o)] != 0 ? a[tu_bcast_index(sa, so, o)]
                                                : b[tu_bcast_index(sb, so, o)];
  asg_graph *g = asg_graph_new();
  asg_tensor *y =
      asg_where(tu_constant(g, dt, sc, c), tu_constant(g, dt, sa, a), tu_constant(g, dt, sb, b));
  int ok = y && asg_shape_equal(asg_tensor_shape(y), so) && tu_eval(g, y, got) == 0;
  TU_CHECK(ok && tu_close("where", got, want, no, 0, 0), "where %s n=%ld", asg_dtype_name(dt), no);
  asg_graph_free(g);
  free(c), free(a), free(b), free(got), free(want);
}

/* Integer division edge cases: x/0 = 0 and INT_MIN/-1 wraps (no trap). */
static void check_int_div_edges(void) {
  {
    int32_t a[4] = {7, -7, INT32_MIN, INT32_MIN}, b[4] = {0, 2, -1, 0};
    int32_t out[4] = {1, 1, 1, 1};
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_div(asg_constant(g, ASG_I32, ASG_SHAPE(4), a),
                            asg_constant(g, ASG_I32, ASG_SHAPE(4), b));
    asg_program *p = y ? asg_compile(g, 1, &y, NULL) : NULL;
    int ok = p && asg_program_run(p) == ASG_OK && asg_program_fetch(p, y, out, sizeof out) == 0;
    TU_CHECK(ok && out[0] == 0 && out[1] == -3 && out[2] == INT32_MIN && out[3] == 0,
             "i32 div edges: %d %d %d %d", out[0], out[1], out[2], out[3]);
    asg_program_free(p);
    asg_graph_free(g);
  }
  {
    int64_t a[3] = {5, INT64_MIN, -9}, b[3] = {0, -1, 4}, out[3] = {1, 1, 1};
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_div(asg_constant(g, ASG_I64, ASG_SHAPE(3), a),
                            asg_constant(g, ASG_I64, ASG_SHAPE(3), b));
    asg_program *p = y ? asg_compile(g, 1, &y, NULL) : NULL;
    int ok = p && asg_program_run(p) == ASG_OK && asg_program_fetch(p, y, out, sizeof out) == 0;
    TU_CHECK(ok && out[0] == 0 && out[1] == INT64_MIN && out[2] == -2, "i64 div edges");
    asg_program_free(p);
    asg_graph_free(g);
  }
}

/* Integer overflow wraps around (two's complement, as PyTorch): add, sub,
 * mul, neg and abs at the i32 / i64 limits (UBSan reports signed overflow). */
static void check_int_wrap(void) {
  int32_t a[3] = {INT32_MAX, INT32_MIN, 65536}, b[3] = {1, 1, 65536}, o[5][3];
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_constant(g, ASG_I32, ASG_SHAPE(3), a);
  asg_tensor *y = asg_constant(g, ASG_I32, ASG_SHAPE(3), b);
  asg_tensor *outs[5] = {asg_add(x, y), asg_sub(x, y), asg_mul(x, y), asg_neg(x), asg_abs(x)};
  asg_program *p = asg_compile(g, 5, outs, NULL);
  int ok = p && asg_program_run(p) == ASG_OK;
  for (int k = 0; k < 5 && ok; k++)
    ok = asg_program_fetch(p, outs[k], o[k], sizeof o[k]) == ASG_OK;
  TU_CHECK(ok && o[0][0] == INT32_MIN && o[1][1] == INT32_MAX && o[2][2] == 0 &&
               o[3][1] == INT32_MIN && o[3][0] == -INT32_MAX && o[4][1] == INT32_MIN,
           "i32 wraps: %d %d %d %d %d", o[0][0], o[1][1], o[2][2], o[3][1], o[4][1]);
  asg_program_free(p);
  asg_graph_free(g);
  int64_t c[2] = {INT64_MAX, INT64_MIN}, d[2] = {1, 1}, q[3][2];
  g = asg_graph_new();
  x = asg_constant(g, ASG_I64, ASG_SHAPE(2), c);
  y = asg_constant(g, ASG_I64, ASG_SHAPE(2), d);
  asg_tensor *o64[3] = {asg_add(x, y), asg_sub(x, y), asg_neg(x)};
  p = asg_compile(g, 3, o64, NULL);
  ok = p && asg_program_run(p) == ASG_OK;
  for (int k = 0; k < 3 && ok; k++)
    ok = asg_program_fetch(p, o64[k], q[k], sizeof q[k]) == ASG_OK;
  TU_CHECK(ok && q[0][0] == INT64_MIN && q[1][1] == INT64_MAX && q[2][1] == INT64_MIN, "i64 wraps");
  asg_program_free(p);
  asg_graph_free(g);
}

/* Scalar conveniences take x's dtype. */
static void check_scalar_helpers(void) {
  double x[6] = {0.5, 1, 1.5, 2, 2.5, 3}, got[6], want[6];
  asg_graph *g = asg_graph_new();
  asg_tensor *t = tu_constant(g, ASG_F64, ASG_SHAPE(2, 3), x);
  asg_tensor *y = asg_pow_scalar(asg_mul_scalar(asg_add_scalar(t, 1.5), -2.0), 2.0);
  for (int i = 0; i < 6; i++)
    want[i] = pow((x[i] + 1.5) * -2.0, 2.0);
  TU_CHECK(y && tu_eval(g, y, got) == 0 && tu_close("scalar helpers", got, want, 6, 1e-14, 1e-12),
           "add/mul/pow_scalar");
  asg_graph_free(g);
}

/* Rank-0 tensors and size-1 dims everywhere. */
static void check_rank0(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_scalar(g, ASG_F64, 2.0), *b = asg_scalar(g, ASG_F64, -3.0);
  double got[3], want[3] = {-6, 5, 2};
  asg_tensor *y = asg_mul(a, b);
  TU_CHECK(y && asg_tensor_shape(y).ndim == 0 && tu_eval(g, y, got) == 0 && got[0] == want[0],
           "scalar * scalar");
  y = asg_sub(asg_exp(asg_log(a)), b);
  TU_CHECK(y && tu_eval(g, y, got) == 0 && fabs(got[0] - want[1]) < 1e-14, "scalar unary chain");
  y = asg_add(asg_fill(g, ASG_F64, ASG_SHAPE(1, 3), 1), asg_fill(g, ASG_F64, ASG_SHAPE(1, 1), 1));
  TU_CHECK(y && asg_shape_equal(asg_tensor_shape(y), ASG_SHAPE(1, 3)) && tu_eval(g, y, got) == 0 &&
               got[0] == 2 && got[2] == 2,
           "[1,3] + [1,1]");
  y = asg_sum(a, ASG_ALL_AXES, false);
  TU_CHECK(y && tu_eval(g, y, got) == 0 && got[0] == 2, "sum of a scalar");
  asg_graph_free(g);
}

/* ---------------- gradients ---------------- */
static asg_tensor *gb_unary(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return ((const unop *)ctx)->f(xs[0]);
}

static asg_tensor *gb_binary(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return ((const binop *)ctx)->f(xs[0], xs[1]);
}

/* where(cond const [2,1,3], a [2,3] , b [3]) */
static asg_tensor *gb_where(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)ctx;
  double c[6] = {1, 0, 1, 0, 0, 1};
  return asg_where(asg_constant(g, ASG_F64, ASG_SHAPE(2, 1, 3), c), xs[0], xs[1]);
}

/* Second order: the gradient of sum(f(x)) is the output being checked, so
 * tu_gradcheck compares the Hessian-vector product with differences of the
 * first gradient. */
static asg_tensor *gb_second_unary(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  asg_tensor *gr = NULL;
  asg_tensor *l = asg_sum(((const unop *)ctx)->f(xs[0]), ASG_ALL_AXES, false);
  return asg_grad(l, 1, xs, &gr) == ASG_OK ? gr : NULL;
}

/* Mixed second derivatives of a binary op: d/dx0 sum(f(x0, x1)) checked
 * against both x0 and x1. */
static asg_tensor *gb_second_binary(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  asg_tensor *gr = NULL;
  asg_tensor *l = asg_sum(((const binop *)ctx)->f(xs[0], xs[1]), ASG_ALL_AXES, false);
  return asg_grad(l, 1, xs, &gr) == ASG_OK ? gr : NULL;
}

/* Gradient wrt the second operand too (x1 broadcast). */
static asg_tensor *gb_second_binary_b(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  asg_tensor *gr[2] = {NULL, NULL};
  asg_tensor *l = asg_sum(((const binop *)ctx)->f(xs[0], xs[1]), ASG_ALL_AXES, false);
  return asg_grad(l, 2, xs, gr) == ASG_OK ? gr[1] : NULL;
}

/* Composite: third order in a chain. g = d/dx sum(tanh(x)^2 * exp(x)). */
static asg_tensor *gb_second_chain(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  asg_tensor *t = asg_tanh(xs[0]), *gr = NULL;
  asg_tensor *l = asg_sum(asg_mul(asg_mul(t, t), asg_exp(xs[0])), ASG_ALL_AXES, false);
  return asg_grad(l, 1, xs, &gr) == ASG_OK ? gr : NULL;
}

static void check_gradients(void) {
  for (int i = 0; i < N_UNOPS; i++) {
    if (!UNOPS[i].grad) continue;
    tu_gc_opts o = {UNOPS[i].lo, UNOPS[i].hi, 0, 0, NULL};
    tu_gradcheck(UNOPS[i].name, 1, (asg_shape[]){ASG_SHAPE(3, 4)}, gb_unary, (void *)&UNOPS[i], &o);
  }
  /* softplus around its threshold: half the inputs on the linear side */
  {
    double d[8] = {-1.2, -0.3, 0.1, 0.6, 1.2, 1.6, 2.0, 3.1};
    const double *data[1] = {d};
    tu_gc_opts o = {0, 0, 0, 0, data};
    tu_gradcheck("softplus threshold", 1, (asg_shape[]){ASG_SHAPE(8)}, gb_unary, (void *)&UNOPS[18],
                 &o);
  }
  /* binary ops with broadcasting: [2,3] op [3], [2,1,4] op [3,1], scalar */
  const asg_shape pairs[][2] = {{ASG_SHAPE(2, 3), ASG_SHAPE(3)},
                                {ASG_SHAPE(2, 1, 4), ASG_SHAPE(3, 1)},
                                {ASG_SCALAR, ASG_SHAPE(2, 2)},
                                {ASG_SHAPE(3, 2), ASG_SHAPE(3, 2)}};
  for (int k = 0; k < 7; k++) { /* add sub mul div pow maximum minimum */
    const binop *op = &BINOPS[k];
    bool positive = k == 3 || k == 4; /* div, pow: keep away from 0 */
    for (int p = 0; p < 4; p++) {
      char name[64], s1[32], s2[32];
      snprintf(name, sizeof name, "%s %s x %s", op->name, asg_shape_str(pairs[p][0], s1, sizeof s1),
               asg_shape_str(pairs[p][1], s2, sizeof s2));
      tu_gc_opts o = {positive ? 0.5 : -1, positive ? 2 : 1, 0, 0, NULL};
      tu_gradcheck(name, 2, pairs[p], gb_binary, (void *)op, &o);
    }
  }
  tu_gradcheck("where", 2, (asg_shape[]){ASG_SHAPE(2, 3), ASG_SHAPE(3)}, gb_where, NULL, NULL);

  /* second order */
  const int second[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18};
  for (size_t i = 0; i < sizeof second / sizeof second[0]; i++) {
    const unop *u = &UNOPS[second[i]];
    char name[64];
    snprintf(name, sizeof name, "d2 %s", u->name);
    tu_gc_opts o = {u->lo > 0 ? u->lo : -2, u->lo > 0 ? u->hi : 2, 0, 0, NULL};
    tu_gradcheck(name, 1, (asg_shape[]){ASG_SHAPE(2, 3)}, gb_second_unary, (void *)u, &o);
  }
  for (int k = 0; k < 5; k++) { /* add sub mul div pow */
    char name[64];
    tu_gc_opts o = {0.5, 2, 0, 0, NULL};
    snprintf(name, sizeof name, "d2 %s (d/da)", BINOPS[k].name);
    tu_gradcheck(name, 2, (asg_shape[]){ASG_SHAPE(2, 3), ASG_SHAPE(3)}, gb_second_binary,
                 (void *)&BINOPS[k], &o);
    snprintf(name, sizeof name, "d2 %s (d/db)", BINOPS[k].name);
    tu_gradcheck(name, 2, (asg_shape[]){ASG_SHAPE(2, 3), ASG_SHAPE(3)}, gb_second_binary_b,
                 (void *)&BINOPS[k], &o);
  }
  tu_gradcheck("d2 tanh^2 * exp", 1, (asg_shape[]){ASG_SHAPE(5)}, gb_second_chain, NULL,
               &(tu_gc_opts){-1, 1, 0, 0, NULL});
}

/* cast passes the gradient through (converted back); stop_gradient blocks it. */
static void check_cast_stop_grad(void) {
  double xv[3] = {0.5, -1.25, 2}, got[3], want[3];
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(3), asg_init_data(xv)), *gr = NULL;
  asg_tensor *l = asg_sum(asg_mul_scalar(asg_cast(x, ASG_F32), 3.0), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(l, 1, &x, &gr) == ASG_OK && asg_tensor_dtype(gr) == ASG_F64, "cast grad dtype");
  for (int i = 0; i < 3; i++)
    want[i] = 3;
  TU_CHECK(tu_eval(g, gr, got) == 0 && tu_close("cast grad", got, want, 3, 0, 0), "cast grad");
  asg_tensor *l2 = asg_sum(asg_mul(asg_stop_gradient(x), x), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(l2, 1, &x, &gr) == ASG_OK, "stop_gradient grad");
  TU_CHECK(tu_eval(g, gr, got) == 0 && tu_close("stop_gradient grad", got, xv, 3, 0, 0),
           "d/dx sum(stop(x) x) = x");
  /* integer casts carry no gradient: the float input gets zeros */
  asg_tensor *l3 = asg_sum(asg_cast(asg_cast(x, ASG_I32), ASG_F64), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(l3, 1, &x, &gr) == ASG_OK, "int cast grad");
  for (int i = 0; i < 3; i++)
    want[i] = 0;
  TU_CHECK(tu_eval(g, gr, got) == 0 && tu_close("int cast grad", got, want, 3, 0, 0),
           "gradient through an int cast is zero");
  asg_graph_free(g);
}

/* The gradient engine: explicit upstream gradient (vjp), an intermediate
 * as wrt, an unreachable wrt (zeros), the same wrt twice. */
static void check_engine(void) {
  double xv[3] = {0.5, -1, 2}, dyv[3] = {1, 2, 3}, got[3], want[3];
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(3), asg_init_data(xv));
  asg_tensor *z = asg_variable(g, "z", ASG_F32, ASG_SHAPE(2, 2), asg_init_ones());
  asg_tensor *y = asg_mul(x, x), *gr[3] = {NULL, NULL, NULL};
  TU_CHECK(asg_vjp(y, asg_constant(g, ASG_F64, ASG_SHAPE(3), dyv), 1, &x, gr) == ASG_OK, "vjp");
  for (int i = 0; i < 3; i++)
    want[i] = 2 * xv[i] * dyv[i];
  TU_CHECK(tu_eval(g, gr[0], got) == 0 && tu_close("vjp", got, want, 3, 1e-15, 0), "vjp value");
  asg_tensor *h = asg_mul_scalar(x, 2);
  asg_tensor *l = asg_sum(asg_mul(h, h), ASG_ALL_AXES, false);
  asg_tensor *wrt[3] = {h, z, x};
  TU_CHECK(asg_grad(l, 3, wrt, gr) == ASG_OK, "grad wrt intermediate");
  for (int i = 0; i < 3; i++)
    want[i] = 4 * xv[i];
  TU_CHECK(tu_eval(g, gr[0], got) == 0 && tu_close("d/dh", got, want, 3, 1e-15, 0), "d/dh = 2h");
  for (int i = 0; i < 3; i++)
    want[i] = 8 * xv[i];
  TU_CHECK(tu_eval(g, gr[2], got) == 0 && tu_close("d/dx", got, want, 3, 1e-15, 0), "d/dx = 8x");
  double zg[4], zeros[4] = {0, 0, 0, 0};
  TU_CHECK(gr[1] && asg_shape_equal(asg_tensor_shape(gr[1]), ASG_SHAPE(2, 2)) &&
               asg_tensor_dtype(gr[1]) == ASG_F32 && tu_eval(g, gr[1], zg) == 0 &&
               tu_close("unreachable", zg, zeros, 4, 0, 0),
           "unreachable wrt gets zeros of its shape and dtype");
  asg_tensor *twice[2] = {x, x};
  TU_CHECK(asg_grad(l, 2, twice, gr) == ASG_OK, "same wrt twice");
  double got2[3];
  TU_CHECK(tu_eval(g, gr[0], got) == 0 && tu_eval(g, gr[1], got2) == 0 &&
               tu_close("twice", got, got2, 3, 0, 0) && tu_close("twice", got, want, 3, 1e-15, 0),
           "same wrt twice: same gradient");
  asg_graph_free(g);
}

int main(void) {
  const asg_dtype fdt[] = {ASG_F32, ASG_F64};
  for (int i = 0; i < N_UNOPS; i++)
    for (int d = 0; d < 2; d++)
      check_unary(&UNOPS[i], fdt[d], 257);
  /* threaded path: > ASG_CPU_PAR_MIN and several chunks */
  for (int i = 0; i < N_UNOPS; i++)
    check_unary(&UNOPS[i], ASG_F32, 120001);
  check_unary(&UNOPS[3], ASG_F64, 100003);
  check_unary_int();
  check_cast();

  const asg_shape pats[][2] = {
      {ASG_SHAPE(2, 3, 4), ASG_SHAPE(4)},
      {ASG_SHAPE(2, 1, 4), ASG_SHAPE(3, 1)},
      {ASG_SCALAR, ASG_SHAPE(5)},
      {ASG_SHAPE(1), ASG_SHAPE(2, 3)},
      {ASG_SHAPE(4, 5), ASG_SHAPE(4, 5)},
      {ASG_SHAPE(3, 1, 5), ASG_SHAPE(1, 4, 1)},
      {ASG_SHAPE(2, 3, 1, 2), ASG_SHAPE(3, 4, 1)},
  };
  const int npats = (int)(sizeof pats / sizeof pats[0]);
  const asg_dtype alldt[] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  for (int k = 0; k < N_BINOPS; k++)
    for (int d = 0; d < 4; d++) {
      if (d >= 2 && !BINOPS[k].int_ok) continue;
      for (int p = 0; p < npats; p++) {
        check_binary(&BINOPS[k], alldt[d], pats[p][0], pats[p][1]);
        check_binary(&BINOPS[k], alldt[d], pats[p][1], pats[p][0]); /* swapped */
      }
    }
  /* large: threaded broadcasting, rows longer than one work chunk, many short rows */
  const asg_shape big[][2] = {{ASG_SHAPE(300, 400), ASG_SHAPE(400)},
                              {ASG_SHAPE(3, 1), ASG_SHAPE(1, 50000)},
                              {ASG_SHAPE(2, 70001), ASG_SHAPE(2, 1)},
                              {ASG_SHAPE(40000, 3), ASG_SHAPE(40000, 1)}};
  for (int p = 0; p < 4; p++) {
    check_binary(&BINOPS[0], ASG_F32, big[p][0], big[p][1]);
    check_binary(&BINOPS[2], ASG_F64, big[p][0], big[p][1]);
    check_binary(&BINOPS[9], ASG_F32, big[p][1], big[p][0]);
  }
  check_binary(&BINOPS[3], ASG_I32, ASG_SHAPE(300, 400), ASG_SHAPE(300, 1));
  check_int_div_edges();
  check_int_wrap();
  check_scalar_helpers();
  check_rank0();
  for (int d = 0; d < 4; d++) {
    check_where(alldt[d], ASG_SHAPE(2, 1, 4), ASG_SHAPE(3, 1), ASG_SCALAR);
    check_where(alldt[d], ASG_SHAPE(4), ASG_SHAPE(2, 3, 4), ASG_SHAPE(3, 4));
  }
  check_where(ASG_F32, ASG_SHAPE(300, 1), ASG_SHAPE(400), ASG_SHAPE(300, 400));

  check_gradients();
  check_cast_stop_grad();
  check_engine();
  return tu_finish();
}
