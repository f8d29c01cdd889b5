/* Reductions: sum, mean, max, min, var (correction 0/1), argmax over single,
 * multiple, negative and all axes, keepdim on and off, against loop
 * references in float64; gradient checks.
 * Tolerances: f64 rtol 1e-12 atol 1e-12; f32 rtol 1e-6 atol 1e-6 (sums are
 * accumulated in double by the CPU kernel, rounded once); integers exact. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_VAR0, R_VAR1, R_ARGMAX };
static const char *RNAME[] = {"sum", "mean", "max", "min", "var0", "var1", "argmax"};

static asg_tensor *apply(int op, asg_tensor *x, asg_axes ax, bool keep) {
  switch (op) {
  case R_SUM: return asg_sum(x, ax, keep);
  case R_MEAN: return asg_mean(x, ax, keep);
  case R_MAX: return asg_max(x, ax, keep);
  case R_MIN: return asg_min(x, ax, keep);
  case R_VAR0: return asg_var(x, ax, 0, keep);
  case R_VAR1: return asg_var(x, ax, 1, keep);
  default: return asg_argmax(x, ax.axis[0], keep);
  }
}

/* Reference: mask of reduced axes (after normalizing negatives), output
 * shape, and per output element the reduction over a plain index walk. */
static int64_t axes_mask(asg_axes ax, int nd) {
  if (ax.n == 0) return ((int64_t)1 << nd) - 1;
  int64_t m = 0;
  for (int i = 0; i < ax.n; i++)
    m |= (int64_t)1 << (ax.axis[i] < 0 ? ax.axis[i] + nd : ax.axis[i]);
  return m;
}

static asg_shape out_shape(asg_shape s, int64_t m, bool keep) {
  asg_shape r = {0, {0}};
  for (int d = 0; d < s.ndim; d++)
    if (!((m >> d) & 1))
      r.dims[r.ndim++] = s.dims[d];
    else if (keep)
      r.dims[r.ndim++] = 1;
  return r;
}

/* Output (flat, keepdim-independent) index of input element i. */
static long out_index(asg_shape s, int64_t m, long i) {
  long o = 0, stride = 1;
  for (int d = s.ndim - 1; d >= 0; d--) {
    long k = i % s.dims[d];
    i /= (long)s.dims[d];
    if (!((m >> d) & 1)) {
      o += k * stride;
      stride *= (long)s.dims[d];
    }
  }
  return o;
}

/* Position of input element i within its reduced set (row-major over the
 * reduced axes): what argmax returns for a single axis. */
static long red_index(asg_shape s, int64_t m, long i) {
  long r = 0, stride = 1;
  for (int d = s.ndim - 1; d >= 0; d--) {
    long k = i % s.dims[d];
    i /= (long)s.dims[d];
    if ((m >> d) & 1) {
      r += k * stride;
      stride *= (long)s.dims[d];
    }
  }
  return r;
}

static void reference(int op, asg_shape s, int64_t m, const double *x, double *out, long nout) {
  long n = (long)asg_shape_numel(s);
  double *acc = calloc((size_t)nout, sizeof(double)), *cnt = calloc((size_t)nout, sizeof(double));
  double *best = malloc(sizeof(double) * (size_t)nout);
  long *bi = calloc((size_t)nout, sizeof(long));
  for (long o = 0; o < nout; o++)
    best[o] = NAN;
  for (long i = 0; i < n; i++) {
    long o = out_index(s, m, i);
    acc[o] += x[i];
    cnt[o] += 1;
    bool better = isnan(best[o]) || (op == R_MIN ? x[i] < best[o] : x[i] > best[o]);
    if (better) best[o] = x[i], bi[o] = red_index(s, m, i);
  }
  for (long o = 0; o < nout; o++) {
    switch (op) {
    case R_SUM: out[o] = acc[o]; break;
    case R_MEAN: out[o] = acc[o] / cnt[o]; break;
    case R_MAX:
    case R_MIN: out[o] = best[o]; break;
    case R_ARGMAX: out[o] = (double)bi[o]; break;
    default: out[o] = 0;
    }
  }
  if (op == R_VAR0 || op == R_VAR1) { /* two-pass */
    for (long i = 0; i < n; i++) {
      long o = out_index(s, m, i);
      double d = x[i] - acc[o] / cnt[o];
      out[o] += d * d;
    }
    for (long o = 0; o < nout; o++)
      out[o] /= cnt[o] - (op == R_VAR1);
  }
  free(acc), free(cnt), free(best), free(bi);
}

static void check(int op, asg_dtype dt, asg_shape s, asg_axes ax, bool keep, unsigned seed) {
  long n = (long)asg_shape_numel(s);
  double *x = malloc(sizeof(double) * (size_t)n);
  bool is_int = dt == ASG_I32 || dt == ASG_I64;
  tu_rand(seed, x, n, -4, 4);
  for (long i = 0; i < n; i++) {
    if (is_int)
      x[i] = floor(x[i] * 20);
    else if (op == R_ARGMAX)
      x[i] = round(x[i] * 2) / 2; /* ties: first index wins */
    else if (dt == ASG_F32)
      x[i] = (float)x[i];
  }
  int64_t m = axes_mask(ax, s.ndim);
  asg_shape os = out_shape(s, m, keep);
  long no = (long)asg_shape_numel(os);
  double *got = malloc(sizeof(double) * (size_t)no), *want = calloc((size_t)no, sizeof(double));
  reference(op, s, m, x, want, no);
  asg_graph *g = asg_graph_new();
  asg_tensor *y = apply(op, tu_constant(g, dt, s, x), ax, keep);
  asg_dtype odt = op == R_ARGMAX ? ASG_I64 : dt;
  char what[160], b1[64];
  int k = snprintf(what, sizeof what, "%s %s %s axes(", RNAME[op], asg_dtype_name(dt),
                   asg_shape_str(s, b1, sizeof b1));
  for (int i = 0; i < ax.n; i++)
    k += snprintf(what + k, sizeof what - (size_t)k, i ? ",%d" : "%d", ax.axis[i]);
  snprintf(what + k, sizeof what - (size_t)k, "%s) keepdim=%d", ax.n ? "" : "all", keep);
  bool shape_ok = y && asg_shape_equal(asg_tensor_shape(y), os) && asg_tensor_dtype(y) == odt;
  TU_CHECK(shape_ok, "%s: output shape/dtype", what);
  double rt = dt == ASG_F32 ? 1e-6 : dt == ASG_F64 ? 1e-12 : 0;
  if (is_int && op == R_SUM) rt = 0;
  if (shape_ok)
    TU_CHECK(tu_eval(g, y, got) == 0 && tu_close(what, got, want, no, rt, rt), "%s", what);
  asg_graph_free(g);
  free(x), free(got), free(want);
}

/* ---------------- gradients ---------------- */
typedef struct gctx {
  int op;
  asg_axes ax;
  bool keep;
} gctx;

static asg_tensor *gb(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const gctx *c = ctx;
  return apply(c->op, xs[0], c->ax, c->keep);
}

/* Second order through a reduction: d/dx sum(var(x)^2) etc. */
static asg_tensor *gb2(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const gctx *c = ctx;
  asg_tensor *r = apply(c->op, xs[0], c->ax, c->keep), *gr = NULL;
  asg_tensor *l = asg_sum(asg_mul(r, r), ASG_ALL_AXES, false);
  return asg_grad(l, 1, xs, &gr) == ASG_OK ? gr : NULL;
}

int main(void) {
  const asg_shape s3 = ASG_SHAPE(3, 4, 5), s4 = ASG_SHAPE(2, 3, 4, 5);
  const asg_axes axsets[] = {ASG_AXES(0),       ASG_AXES(1),    ASG_AXES(2),    ASG_AXES(-1),
                             ASG_AXES(-3),      ASG_AXES(0, 2), ASG_AXES(2, 0), ASG_AXES(-1, 1),
                             ASG_AXES(0, 1, 2), ASG_ALL_AXES};
  const int nax = (int)(sizeof axsets / sizeof axsets[0]);
  const asg_axes ax4[] = {ASG_AXES(1, 3), ASG_AXES(0, 3), ASG_AXES(-2, -3), ASG_AXES(0, 1, 3),
                          ASG_AXES(2)};
  const asg_dtype fdt[] = {ASG_F32, ASG_F64}, idt[] = {ASG_I32, ASG_I64};
  unsigned seed = 1;
  for (int op = R_SUM; op <= R_VAR1; op++)
    for (int keep = 0; keep < 2; keep++) {
      for (int d = 0; d < 2; d++) {
        for (int a = 0; a < nax; a++)
          check(op, fdt[d], s3, axsets[a], keep, seed++);
        for (int a = 0; a < 5; a++)
          check(op, fdt[d], s4, ax4[a], keep, seed++);
      }
      if (op == R_SUM || op == R_MAX || op == R_MIN)
        for (int d = 0; d < 2; d++) {
          for (int a = 0; a < nax; a++)
            check(op, idt[d], s3, axsets[a], keep, seed++);
          for (int a = 0; a < 5; a++)
            check(op, idt[d], s4, ax4[a], keep, seed++);
        }
    }
  /* argmax along each single axis, incl. negative; first maximum on ties */
  const asg_dtype alldt[] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  for (int d = 0; d < 4; d++)
    for (int keep = 0; keep < 2; keep++)
      for (int a = -3; a < 3; a++)
        check(R_ARGMAX, alldt[d], s3, ASG_AXES(a), keep, seed++);
  /* rank 1 and rank 0 edge shapes; size-1 dims */
  check(R_SUM, ASG_F64, ASG_SHAPE(7), ASG_AXES(0), false, 11);
  check(R_MAX, ASG_F64, ASG_SHAPE(1, 6, 1), ASG_AXES(0, 2), false, 12);
  check(R_VAR1, ASG_F64, ASG_SHAPE(4, 1, 3), ASG_AXES(1, 2), true, 13);
  check(R_MEAN, ASG_F32, ASG_SHAPE(4, 1), ASG_AXES(1), false, 14);
  check(R_ARGMAX, ASG_F32, ASG_SHAPE(5, 1), ASG_AXES(1), false, 15);
  /* threaded: many outputs, each a long or short reduction */
  check(R_SUM, ASG_F32, ASG_SHAPE(300, 400), ASG_AXES(1), false, 21);
  check(R_SUM, ASG_F32, ASG_SHAPE(300, 400), ASG_AXES(0), true, 22);
  check(R_MEAN, ASG_F64, ASG_SHAPE(50, 40, 60), ASG_AXES(0, 2), false, 23);
  check(R_VAR1, ASG_F32, ASG_SHAPE(200, 300), ASG_AXES(-1), false, 24);
  check(R_MAX, ASG_F32, ASG_SHAPE(200, 300), ASG_AXES(0), false, 25);
  check(R_ARGMAX, ASG_F64, ASG_SHAPE(200, 300), ASG_AXES(1), false, 26);
  check(R_SUM, ASG_F64, ASG_SHAPE(200000), ASG_ALL_AXES, false, 27);
  check(R_SUM, ASG_I64, ASG_SHAPE(500, 300), ASG_AXES(0), false, 28);

  /* gradients over several axis sets (random inputs: distinct for max/min) */
  const asg_axes gax[] = {ASG_AXES(0), ASG_AXES(-1), ASG_AXES(0, 2), ASG_AXES(1), ASG_ALL_AXES};
  for (int op = R_SUM; op <= R_VAR1; op++)
    for (int a = 0; a < 5; a++)
      for (int keep = 0; keep < 2; keep++) {
        gctx c = {op, gax[a], keep};
        char name[64];
        snprintf(name, sizeof name, "%s axes#%d keep=%d", RNAME[op], a, keep);
        tu_gradcheck(name, 1, (asg_shape[]){ASG_SHAPE(2, 3, 4)}, gb, &c, NULL);
      }
  /* max/min with a tie: the gradient is shared equally between the tied
   * elements (the rule's documented choice), checked directly */
  {
    double xv[4] = {1, 3, 3, 2}, got[4], want[4] = {0, 0.5, 0.5, 0};
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(4), asg_init_data(xv)), *gr = NULL;
    TU_CHECK(asg_grad(asg_max(x, ASG_ALL_AXES, false), 1, &x, &gr) == ASG_OK, "max grad");
    TU_CHECK(tu_eval(g, gr, got) == 0 && tu_close("max tie grad", got, want, 4, 0, 0),
             "max tie gradient split");
    asg_graph_free(g);
  }
  for (int op = R_SUM; op <= R_VAR1; op++) {
    gctx c = {op, ASG_AXES(1), false};
    char name[64];
    snprintf(name, sizeof name, "d2 %s", RNAME[op]);
    tu_gradcheck(name, 1, (asg_shape[]){ASG_SHAPE(3, 4)}, gb2, &c, NULL);
  }
  return tu_finish();
}
