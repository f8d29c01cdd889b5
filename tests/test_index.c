/* Index-family ops: permute, transpose, slice, concat, split, gather,
 * embedding, scatter_add, one_hot. Forward against plain-loop float64
 * references, gradients by central differences (error paths:
 * test_index_errors.c). */
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "testutil.h"

static const asg_dtype DTYPES[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};

/* Integer-valued data, exact in every dtype. */
static double *iota_data(long n, unsigned seed) {
  double *v = malloc(sizeof(double) * (size_t)n);
  tu_rand(seed, v, n, -1000, 1000);
  for (long i = 0; i < n; i++)
    v[i] = floor(v[i]);
  return v;
}

static long numel(asg_shape s) { return (long)asg_shape_numel(s); }

/* flat index -> coordinates */
static void coords(asg_shape s, long f, long *co) {
  for (int d = s.ndim - 1; d >= 0; d--) {
    co[d] = f % s.dims[d];
    f /= s.dims[d];
  }
}
static long flat(asg_shape s, const long *co) {
  long f = 0;
  for (int d = 0; d < s.ndim; d++)
    f = f * s.dims[d] + co[d];
  return f;
}

/* y[c] = x[c permuted back] */
static void ref_permute(const double *x, asg_shape xs, const int *perm, double *y) {
  asg_shape ys = xs;
  for (int d = 0; d < xs.ndim; d++)
    ys.dims[d] = xs.dims[perm[d]];
  long co[8] = {0}, ci[8] = {0};
  for (long f = 0; f < numel(ys); f++) {
    coords(ys, f, co);
    for (int d = 0; d < xs.ndim; d++)
      ci[perm[d]] = co[d];
    y[f] = x[flat(xs, ci)];
  }
}

/* NumPy take along axis with the listed indices (out of range -> 0); the
 * result shape is xs with dims[axis] = k (idx taken as 1-D). */
static void ref_take(const double *x, asg_shape xs, int axis, const long *idx, long k, double *y) {
  asg_shape ys = xs;
  ys.dims[axis] = k;
  long co[8] = {0};
  for (long f = 0; f < numel(ys); f++) {
    coords(ys, f, co);
    long i = idx[co[axis]];
    if (i < 0 || i >= xs.dims[axis]) {
      y[f] = 0;
      continue;
    }
    co[axis] = i;
    y[f] = x[flat(xs, co)];
  }
}

/* ---------------- forward ---------------- */

static void test_permute_fwd(void) {
  struct {
    asg_shape s;
    int perm[4];
  } cases[] = {
      {ASG_SHAPE(2, 3, 4, 5), {0, 2, 3, 1}},
      {ASG_SHAPE(2, 3, 4, 5), {3, 2, 1, 0}},
      {ASG_SHAPE(2, 3, 4, 5), {1, 0, 2, 3}},
      {ASG_SHAPE(2, 3, 4, 5), {0, 1, 3, 2}},
      {ASG_SHAPE(2, 3, 4, 5), {2, 3, 0, 1}},
      {ASG_SHAPE(1, 5, 1, 7), {3, 1, 2, 0}},
      {ASG_SHAPE(4, 100, 100), {0, 2, 1}},
      {ASG_SHAPE(40, 30, 40), {1, 0, 2}},
      {ASG_SHAPE(3, 37, 45), {2, 1, 0}},
      /* only size-1 axes move: the same bytes, built as a reshape (a view) */
      {ASG_SHAPE(1, 5, 1, 7), {1, 0, 2, 3}},
      {ASG_SHAPE(2, 1, 3, 1), {1, 0, 3, 2}},
      {ASG_SHAPE(1, 1, 3, 64), {0, 2, 1, 3}},
  };
  const size_t first_view = 9; /* the cases from here on */
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    asg_shape s = cases[c].s;
    long n = numel(s);
    double *x = iota_data(n, 11 + (unsigned)c), *want = malloc(sizeof(double) * (size_t)n),
           *got = malloc(sizeof(double) * (size_t)n);
    ref_permute(x, s, cases[c].perm, want);
    for (int t = 0; t < 4; t++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *y = asg_permute(tu_constant(g, DTYPES[t], s, x), cases[c].perm);
      int ok = tu_eval(g, y, got) == 0;
      char what[64];
      snprintf(what, sizeof what, "permute case %zu %s", c, asg_dtype_name(DTYPES[t]));
      TU_CHECK(ok && tu_close(what, got, want, n, 0, 0), "%s", what);
      const char *op = asg_tensor_op_name(y);
      TU_CHECK(op && !strcmp(op, c >= first_view ? "reshape" : "permute"), "%s: built as %s", what,
               op ? op : "(null)");
      asg_graph_free(g);
    }
    free(x), free(want), free(got);
  }
  /* negative perm entries count from the end; transpose with a negative axis */
  {
    asg_shape s = ASG_SHAPE(3, 4, 5);
    double x[60], want[60], got[60];
    for (int i = 0; i < 60; i++)
      x[i] = i;
    int p[3] = {2, 1, 0};
    ref_permute(x, s, p, want);
    asg_graph *g = asg_graph_new();
    asg_tensor *xt = tu_constant(g, ASG_F64, s, x);
    int pn[3] = {-1, 1, -3};
    TU_CHECK(tu_eval(g, asg_permute(xt, pn), got) == 0 &&
                 tu_close("permute neg", got, want, 60, 0, 0),
             "permute with negative axes");
    TU_CHECK(tu_eval(g, asg_transpose(xt, 0, -1), got) == 0 &&
                 tu_close("transpose", got, want, 60, 0, 0),
             "transpose(0,-1)");
    asg_tensor *tr = asg_transpose(xt, 1, 2);
    asg_shape ts = asg_tensor_shape(tr);
    TU_CHECK(ts.ndim == 3 && ts.dims[0] == 3 && ts.dims[1] == 5 && ts.dims[2] == 4,
             "transpose shape");
    asg_graph_free(g);
  }
}

static void test_slice_fwd(void) {
  struct {
    int axis;
    long start, stop, step;
    long nsel;
    long sel[8]; /* the indices Python would select (hand-written) */
  } cases[] = {
      {0, 1, 3, 1, 1, {1}},      {1, 0, 4, 2, 2, {0, 2}},    {1, -3, 100, 1, 3, {1, 2, 3}},
      {-1, 1, -1, 2, 2, {1, 3}}, {2, -100, 5, 3, 2, {0, 3}}, {-2, 3, 4, 5, 1, {3}},
      {2, 4, 5, 1, 1, {4}},      {0, -1, 2, 1, 1, {1}},
  };
  asg_shape s = ASG_SHAPE(2, 4, 5);
  long n = numel(s);
  double *x = iota_data(n, 5);
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int a = cases[c].axis < 0 ? cases[c].axis + 3 : cases[c].axis;
    asg_shape ys = s;
    ys.dims[a] = cases[c].nsel;
    double want[40], got[40];
    ref_take(x, s, a, cases[c].sel, cases[c].nsel, want);
    for (int t = 0; t < 4; t++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *y = asg_slice(tu_constant(g, DTYPES[t], s, x), cases[c].axis, cases[c].start,
                                cases[c].stop, cases[c].step);
      asg_shape gs = asg_tensor_shape(y);
      char what[64];
      snprintf(what, sizeof what, "slice case %zu %s", c, asg_dtype_name(DTYPES[t]));
      TU_CHECK(y && asg_shape_equal(gs, ys), "%s: shape", what);
      TU_CHECK(y && tu_eval(g, y, got) == 0 && tu_close(what, got, want, numel(ys), 0, 0), "%s",
               what);
      asg_graph_free(g);
    }
  }
  free(x);
  /* a big strided slice (parallel path) */
  {
    asg_shape bs = ASG_SHAPE(3, 300, 70);
    long bn = numel(bs);
    double *bx = iota_data(bn, 8);
    long sel[100];
    for (int i = 0; i < 100; i++)
      sel[i] = 2 + 3 * i;
    asg_shape ys = ASG_SHAPE(3, 100, 70);
    double *want = malloc(sizeof(double) * (size_t)numel(ys)),
           *got = malloc(sizeof(double) * (size_t)numel(ys));
    ref_take(bx, bs, 1, sel, 100, want);
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_slice(tu_constant(g, ASG_F32, bs, bx), 1, 2, 300, 3);
    TU_CHECK(tu_eval(g, y, got) == 0 && tu_close("big slice", got, want, numel(ys), 0, 0),
             "big slice");
    asg_graph_free(g);
    free(bx), free(want), free(got);
  }
}

/* Compiles and runs outputs o0, o1 of g once, fetches them into got0, got1;
 * returns the program's peak (arena) memory, 0 on failure. */
static size_t run_two(asg_graph *g, asg_tensor *o0, asg_tensor *o1, double *got0, double *got1,
                      const char *what) {
  asg_tensor *outs[2] = {o0, o1};
  asg_program *p = asg_compile(g, 2, outs, NULL);
  size_t peak = 0;
  TU_CHECK(p && asg_program_run(p) == ASG_OK, "%s: %s", what, asg_last_error());
  if (p) {
    peak = asg_program_peak_memory(p);
    TU_CHECK(tu_fetch(p, o0, got0) == ASG_OK && tu_fetch(p, o1, got1) == ASG_OK, "%s: fetch", what);
    asg_program_free(p);
  }
  return peak;
}

/* Contiguous slices of computed values are views into their source: right
 * values for views of views, views read by later steps and views as program
 * outputs, next to the slices that must still copy (a start not on a 64-byte
 * boundary, a stride, a leading axis of size > 1); and the view costs no
 * arena block (peak memory below the copying twin's). */
static size_t slice_views_case(int rows, double *want_y, double *got_y, double *got_a) {
  asg_shape s = ASG_SHAPE(2, 4, rows); /* rows 16: a [1, 4, 16] half is 256 bytes */
  double *x = iota_data(numel(s), 11);
  asg_graph *g = asg_graph_new();
  asg_tensor *h = asg_mul_scalar(tu_constant(g, ASG_F32, s, x), 3.0);
  asg_tensor *a = asg_slice(h, 0, 1, 2, 1); /* second half */
  asg_tensor *b = asg_slice(a, 1, 2, 4, 1); /* its rows 2, 3 */
  asg_tensor *c = asg_slice(asg_reshape(b, ASG_SHAPE(2 * rows)), 0, 3, 2 * rows, 1);
  asg_tensor *d = asg_slice(h, 2, 0, rows, 2); /* strided: a copy */
  asg_tensor *e = asg_slice(h, 1, 1, 2, 1);    /* [2, 1, rows]: a copy */
  asg_tensor *y =
      asg_add(asg_sum(c, ASG_ALL_AXES, false),
              asg_add(asg_sum(d, ASG_ALL_AXES, false), asg_sum(e, ASG_ALL_AXES, false)));
  const size_t peak = run_two(g, a, y, got_a, got_y, "slice views");
  /* the same sums by hand */
  double sc = 0, sd = 0, se = 0;
  for (int i = 3; i < 2 * rows; i++)
    sc += 3 * x[1 * 4 * rows + 2 * rows + i];
  for (int r = 0; r < 8; r++)
    for (int j = 0; j < rows; j += 2)
      sd += 3 * x[r * rows + j];
  for (int b0 = 0; b0 < 2; b0++)
    for (int i = 0; i < rows; i++)
      se += 3 * x[b0 * 4 * rows + rows + i];
  want_y[0] = sc + sd + se;
  free(x);
  asg_graph_free(g);
  return peak;
}

static void test_slice_views(void) {
  double want_y[1], got_y[1], got_a[64], got_a2[60];
  size_t view_peak = slice_views_case(16, want_y, got_y, got_a);
  TU_CHECK(tu_close("slice views: sums", got_y, want_y, 1, 1e-3, 1e-5), "slice views: sums");
  double *x = iota_data(128, 11), want_a[64];
  for (int i = 0; i < 64; i++)
    want_a[i] = 3 * x[64 + i];
  TU_CHECK(tu_close("slice views: output view", got_a, want_a, 64, 1e-5, 1e-6), "output view");
  free(x);
  /* rows 15: the half starts at byte 240, so it is copied */
  size_t copy_peak = slice_views_case(15, want_y, got_y, got_a2);
  TU_CHECK(tu_close("slice copies: sums", got_y, want_y, 1, 1e-3, 1e-5), "slice copies: sums");
  TU_CHECK(view_peak > 0 && view_peak < copy_peak,
           "a view needs no block of its own: peak %zu (view) vs %zu (copy)", view_peak, copy_peak);
}

/* A concat of contiguous pieces whose inputs are computed values gets them
 * produced in place inside its block (no copy): right values when two
 * pieces are slices of one larger value ([2, n] split in two and joined
 * behind a third piece) and are also read elsewhere and output. With those
 * two pieces swapped they cannot both sit where the value has them, so the
 * concat copies: same graph otherwise, and a higher peak memory. */
static size_t concat_place_case(bool swap, double *got) {
  double xv[128];
  for (int i = 0; i < 128; i++)
    xv[i] = 0.25 * i - 7;
  asg_graph *g = asg_graph_new();
  asg_tensor *x = tu_constant(g, ASG_F32, ASG_SHAPE(2, 64), xv);
  asg_tensor *two = asg_mul_scalar(x, 2.0);                                      /* [2, 64] */
  asg_tensor *lo = asg_slice(two, 0, 0, 1, 1), *hi = asg_slice(two, 0, 1, 2, 1); /* views */
  asg_tensor *q = asg_add_scalar(asg_slice(x, 0, 0, 1, 1), 1.0);
  asg_tensor *parts[3] = {q, swap ? hi : lo, swap ? lo : hi};
  asg_tensor *c = asg_concat(parts, 3, 0); /* [3, 64] */
  asg_tensor *y = asg_add(asg_mul_scalar(c, 10.0), asg_sum(lo, ASG_ALL_AXES, false));
  const size_t peak = run_two(g, y, hi, got, got + 192, "concat placement");
  asg_graph_free(g);
  return peak;
}

static void test_concat_placement(void) {
  double got[256], want[256], sum_lo = 0;
  size_t peak[2];
  for (int i = 0; i < 64; i++)
    sum_lo += 2 * (0.25 * i - 7);
  for (int swap = 0; swap < 2; swap++) {
    for (int r = 0; r < 3; r++)
      for (int i = 0; i < 64; i++) {
        double x0 = 0.25 * i - 7, x1 = 0.25 * (64 + i) - 7;
        double v = r == 0 ? x0 + 1 : (r == 1) != (swap == 1) ? 2 * x0 : 2 * x1;
        want[r * 64 + i] = 10 * v + sum_lo;
      }
    for (int i = 0; i < 64; i++)
      want[192 + i] = 2 * (0.25 * (64 + i) - 7);
    peak[swap] = concat_place_case(swap, got);
    TU_CHECK(tu_close(swap ? "concat copied" : "concat placed", got, want, 256, 1e-4, 1e-6),
             "concat placement values (swap %d)", swap);
  }
  TU_CHECK(peak[0] > 0 && peak[0] < peak[1],
           "placed pieces need no blocks: peak %zu (placed) vs %zu (copied)", peak[0], peak[1]);
}

static void test_concat_split_fwd(void) {
  asg_shape base = ASG_SHAPE(2, 3, 4);
  for (int axis = -3; axis < 3; axis++) {
    int a = axis < 0 ? axis + 3 : axis;
    long len[3] = {1, 3, 2};
    asg_shape sh[3];
    double *xv[3];
    for (int k = 0; k < 3; k++) {
      sh[k] = base;
      sh[k].dims[a] = len[k];
      xv[k] = iota_data(numel(sh[k]), 20 + (unsigned)k);
    }
    asg_shape ys = base;
    ys.dims[a] = 6;
    long ny = numel(ys);
    double want[200], got[200];
    long co[8] = {0};
    for (long f = 0; f < ny; f++) { /* find which input holds output coord */
      coords(ys, f, co);
      int k = 0;
      long at = co[a];
      while (at >= len[k])
        at -= len[k++];
      co[a] = at;
      want[f] = xv[k][flat(sh[k], co)];
    }
    for (int t = 0; t < 4; t++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *xs[3];
      for (int k = 0; k < 3; k++)
        xs[k] = tu_constant(g, DTYPES[t], sh[k], xv[k]);
      asg_tensor *y = asg_concat(xs, 3, axis);
      char what[64];
      snprintf(what, sizeof what, "concat axis %d %s", axis, asg_dtype_name(DTYPES[t]));
      TU_CHECK(y && asg_shape_equal(asg_tensor_shape(y), ys), "%s: shape", what);
      TU_CHECK(tu_eval(g, y, got) == 0 && tu_close(what, got, want, ny, 0, 0), "%s", what);
      /* split undoes it */
      asg_tensor *parts[3];
      int64_t sizes[3] = {len[0], len[1], len[2]};
      TU_CHECK(asg_split(y, axis, 3, sizes, parts) == ASG_OK, "split axis %d", axis);
      for (int k = 0; k < 3; k++) {
        snprintf(what, sizeof what, "split axis %d part %d %s", axis, k, asg_dtype_name(DTYPES[t]));
        TU_CHECK(parts[k] && asg_shape_equal(asg_tensor_shape(parts[k]), sh[k]), "%s: shape", what);
        TU_CHECK(tu_eval(g, parts[k], got) == 0 && tu_close(what, got, xv[k], numel(sh[k]), 0, 0),
                 "%s", what);
      }
      asg_graph_free(g);
    }
    for (int k = 0; k < 3; k++)
      free(xv[k]);
  }
}

/* Like tu_eval, in a program compiled with unchecked_indices: out-of-range
 * indices then give the documented zeros / skipped rows instead of failing
 * the run. */
static int eval_unchecked(asg_graph *g, asg_tensor *y, double *out) {
  asg_compile_opts o = {0};
  o.unchecked_indices = true;
  asg_program *p = asg_compile(g, 1, &y, &o);
  int st = !p || asg_program_run(p) != ASG_OK || tu_fetch(p, y, out) != 0;
  asg_program_free(p);
  return st;
}

static void test_gather_fwd(void) {
  asg_shape xs = ASG_SHAPE(3, 5, 4);
  long n = numel(xs);
  double *x = iota_data(n, 31);
  /* idx [2,3] with repeats and out-of-range values (unchecked: zeros) */
  double idxv[6] = {4, 0, -1, 2, 5, 4};
  long idxl[6] = {4, 0, -1, 2, 5, 4};
  for (int axis = -3; axis < 3; axis++) {
    int a = axis < 0 ? axis + 3 : axis;
    asg_shape flat_s = xs;
    flat_s.dims[a] = 6;
    double want[200], got[200];
    ref_take(x, xs, a, idxl, 6, want);
    /* expected shape: x[:a] + [2,3] + x[a+1:] */
    asg_shape ys = {0, {0}};
    for (int d = 0; d < a; d++)
      ys.dims[ys.ndim++] = xs.dims[d];
    ys.dims[ys.ndim++] = 2;
    ys.dims[ys.ndim++] = 3;
    for (int d = a + 1; d < 3; d++)
      ys.dims[ys.ndim++] = xs.dims[d];
    for (int t = 0; t < 4; t++) {
      for (int it = 0; it < 2; it++) {
        asg_graph *g = asg_graph_new();
        asg_tensor *idx = tu_constant(g, it ? ASG_I64 : ASG_I32, ASG_SHAPE(2, 3), idxv);
        asg_tensor *y = asg_gather(tu_constant(g, DTYPES[t], xs, x), idx, axis);
        char what[80];
        snprintf(what, sizeof what, "gather axis %d %s idx %s", axis, asg_dtype_name(DTYPES[t]),
                 it ? "i64" : "i32");
        TU_CHECK(y && asg_shape_equal(asg_tensor_shape(y), ys), "%s: shape", what);
        TU_CHECK(eval_unchecked(g, y, got) == 0 && tu_close(what, got, want, numel(flat_s), 0, 0),
                 "%s", what);
        /* checked (the default): the run fails naming the op and the index */
        TU_CHECK(tu_eval(g, y, got) != 0 && tu_contains(asg_last_error(), "gather: index") &&
                     tu_contains(asg_last_error(), "out of range"),
                 "%s: checked run: %s", what, asg_last_error());
        asg_graph_free(g);
      }
    }
  }
  /* scalar index drops the axis */
  {
    asg_graph *g = asg_graph_new();
    double two = 2, want[12], got[12];
    long sel = 2;
    ref_take(x, xs, 1, &sel, 1, want);
    asg_tensor *y =
        asg_gather(tu_constant(g, ASG_F64, xs, x), tu_constant(g, ASG_I64, ASG_SCALAR, &two), 1);
    asg_shape ys = asg_tensor_shape(y);
    TU_CHECK(ys.ndim == 2 && ys.dims[0] == 3 && ys.dims[1] == 4, "gather scalar idx shape");
    TU_CHECK(tu_eval(g, y, got) == 0 && tu_close("gather scalar", got, want, 12, 0, 0),
             "gather scalar idx");
    asg_graph_free(g);
  }
  /* embedding = rows of the table */
  {
    asg_graph *g = asg_graph_new();
    double table[24], want[6 * 4], got[24];
    for (int i = 0; i < 24; i++)
      table[i] = i * 0.5 - 3;
    double ids[6] = {5, 0, 3, 3, 1, 2};
    long idl[6] = {5, 0, 3, 3, 1, 2};
    ref_take(table, ASG_SHAPE(6, 4), 0, idl, 6, want);
    asg_tensor *y = asg_embedding(tu_constant(g, ASG_F32, ASG_SHAPE(6, 4), table),
                                  tu_constant(g, ASG_I64, ASG_SHAPE(2, 3), ids));
    asg_shape ys = asg_tensor_shape(y);
    TU_CHECK(ys.ndim == 3 && ys.dims[0] == 2 && ys.dims[1] == 3 && ys.dims[2] == 4,
             "embedding shape");
    TU_CHECK(tu_eval(g, y, got) == 0 && tu_close("embedding", got, want, 24, 0, 0), "embedding");
    asg_graph_free(g);
  }
  free(x);
}

/* out = x; out[.., idx[j], ..] += src[.., j, ..] in j order; idx 1-D here. */
static void ref_scatter(const double *x, asg_shape xs, int a, const long *idx, long m,
                        const double *src, double *out) {
  long n = numel(xs), co[8] = {0};
  memcpy(out, x, sizeof(double) * (size_t)n);
  asg_shape ss = xs;
  ss.dims[a] = m;
  for (long f = 0; f < numel(ss); f++) {
    coords(ss, f, co);
    long i = idx[co[a]];
    if (i < 0 || i >= xs.dims[a]) continue;
    co[a] = i;
    out[flat(xs, co)] += src[f];
  }
}

static void test_scatter_add_fwd(void) {
  asg_shape xs = ASG_SHAPE(3, 5, 2);
  double idxv[4] = {1, 4, 1, 7};
  long idxl[4] = {1, 4, 1, 7};
  for (int axis = -3; axis < 3; axis++) {
    int a = axis < 0 ? axis + 3 : axis;
    asg_shape ss = xs;
    ss.dims[a] = 4;
    double *x = iota_data(numel(xs), 41), *src = iota_data(numel(ss), 42);
    double want[64], got[64];
    ref_scatter(x, xs, a, idxl, 4, src, want);
    for (int t = 0; t < 4; t++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *y = asg_scatter_add(tu_constant(g, DTYPES[t], xs, x),
                                      tu_constant(g, t % 2 ? ASG_I64 : ASG_I32, ASG_SHAPE(4), idxv),
                                      tu_constant(g, DTYPES[t], ss, src), axis);
      char what[64];
      snprintf(what, sizeof what, "scatter_add axis %d %s", axis, asg_dtype_name(DTYPES[t]));
      TU_CHECK(y && asg_shape_equal(asg_tensor_shape(y), xs), "%s: shape", what);
      TU_CHECK(eval_unchecked(g, y, got) == 0 && tu_close(what, got, want, numel(xs), 0, 0), "%s",
               what);
      TU_CHECK(tu_eval(g, y, got) != 0 && tu_contains(asg_last_error(), "scatter_add: index "),
               "%s: checked run: %s", what, asg_last_error());
      asg_graph_free(g);
    }
    free(x), free(src);
  }
  /* large, outer = 1 (the per-target-range parallel path), many duplicates:
   * f64 result must match the sequential reference exactly */
  {
    asg_shape bx = ASG_SHAPE(1, 200, 200);
    long m = 600;
    asg_shape bs = ASG_SHAPE(1, 600, 200);
    double *x = malloc(sizeof(double) * 40000), *src = malloc(sizeof(double) * 120000),
           *idv = malloc(sizeof(double) * (size_t)m), *want = malloc(sizeof(double) * 40000),
           *got = malloc(sizeof(double) * 40000);
    long *idl = malloc(sizeof(long) * (size_t)m);
    tu_rand(1, x, 40000, -1, 1);
    tu_rand(2, src, 120000, -1, 1);
    tu_rand(3, idv, m, -10, 210);
    for (long j = 0; j < m; j++)
      idv[j] = floor(idv[j]), idl[j] = (long)idv[j];
    ref_scatter(x, bx, 1, idl, m, src, want);
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_scatter_add(tu_constant(g, ASG_F64, bx, x),
                                    tu_constant(g, ASG_I64, ASG_SHAPE(600), idv),
                                    tu_constant(g, ASG_F64, bs, src), 1);
    TU_CHECK(eval_unchecked(g, y, got) == 0 && tu_close("big scatter_add", got, want, 40000, 0, 0),
             "big scatter_add");
    asg_graph_free(g);
    free(x), free(src), free(idv), free(want), free(got), free(idl);
  }
}

static void test_one_hot_fwd(void) {
  double idxv[6] = {0, 3, 2, -1, 4, 1};
  for (int t = 0; t < 4; t++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *y =
        asg_one_hot(tu_constant(g, t % 2 ? ASG_I32 : ASG_I64, ASG_SHAPE(2, 3), idxv), 4, DTYPES[t]);
    double want[24] = {0}, got[24];
    for (int r = 0; r < 6; r++)
      if (idxv[r] >= 0 && idxv[r] < 4) want[r * 4 + (int)idxv[r]] = 1;
    asg_shape ys = asg_tensor_shape(y);
    TU_CHECK(y && asg_tensor_dtype(y) == DTYPES[t] && ys.ndim == 3 && ys.dims[2] == 4,
             "one_hot shape/dtype");
    TU_CHECK(eval_unchecked(g, y, got) == 0 && tu_close("one_hot", got, want, 24, 0, 0),
             "one_hot %s", asg_dtype_name(DTYPES[t]));
    TU_CHECK(tu_eval(g, y, got) != 0 && tu_contains(asg_last_error(), "one_hot: index -1") &&
                 tu_contains(asg_last_error(), "[0, 4)"),
             "one_hot %s checked: %s", asg_dtype_name(DTYPES[t]), asg_last_error());
    asg_graph_free(g);
  }
}

/* ---------------- gradients ---------------- */

static asg_tensor *b_permute(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g, (void)ctx;
  int p[4] = {2, 0, 3, 1};
  return asg_permute(x[0], p);
}
static asg_tensor *b_transpose(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g, (void)ctx;
  return asg_mul(asg_transpose(x[0], -1, 1), asg_transpose(x[0], 1, 2)); /* nonlinear use */
}
static asg_tensor *b_slice(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g, (void)ctx;
  asg_tensor *a = asg_slice(x[0], 1, -4, 5, 2); /* rows 1, 3 */
  asg_tensor *b = asg_slice(x[0], -1, 0, 4, 3); /* cols 0, 3 */
  asg_tensor *parts[2] = {asg_reshape(a, ASG_SHAPE(2, 8)),
                          asg_reshape(asg_mul(b, b), ASG_SHAPE(2, 10))};
  return asg_concat(parts, 2, 1);
}
/* slice_bwd's own gradient: y = vjp of a slice wrt its input, driven by x1 */
static asg_tensor *b_slice_bwd(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g, (void)ctx;
  asg_tensor *s = asg_slice(x[0], 2, 1, 5, 2), *dx = NULL;
  if (asg_vjp(s, x[1], 1, &x[0], &dx) != ASG_OK) return NULL;
  return asg_mul(dx, dx);
}
static asg_tensor *b_concat(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g;
  int axis = *(int *)ctx;
  asg_tensor *xs[3] = {x[0], asg_mul(x[1], x[1]), x[2]};
  return asg_concat(xs, 3, axis);
}
static asg_tensor *b_split(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g, (void)ctx;
  asg_tensor *p[3];
  int64_t sizes[3] = {2, 1, 2};
  if (asg_split(x[0], 1, 3, sizes, p) != ASG_OK) return NULL;
  return asg_add(asg_mul(p[0], p[2]), p[1]);
}
/* Slices whose gradients are joined (gaps between them, two axes) or summed
 * (overlapping). */
static asg_tensor *b_slice_pieces(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)g;
  const bool overlap = *(const bool *)ctx;
  asg_tensor *a = asg_slice(x[0], 1, 0, 2, 1);                             /* cols 0-1 */
  asg_tensor *b = asg_slice(x[0], 1, overlap ? 1 : 4, overlap ? 3 : 6, 1); /* 4-5 or 1-2 */
  asg_tensor *d = asg_slice(x[0], 0, 1, 3, 1);                             /* rows 1-2 */
  asg_tensor *e = asg_slice(x[0], 0, 3, 4, 1);                             /* row 3 */
  return asg_add(asg_sum(asg_mul(a, b), ASG_ALL_AXES, false),
                 asg_sum(asg_mul(asg_mul(d, d), e), ASG_ALL_AXES, false));
}
static asg_tensor *b_gather(asg_graph *g, asg_tensor **x, void *ctx) {
  int axis = *(int *)ctx;
  double iv[5] = {2, 0, 2, 1, 0}; /* repeats */
  asg_tensor *idx = tu_constant(g, ASG_I32, ASG_SHAPE(5), iv);
  return asg_gather(asg_mul(x[0], x[0]), idx, axis);
}
static asg_tensor *b_scatter(asg_graph *g, asg_tensor **x, void *ctx) {
  int axis = *(int *)ctx;
  double iv[4] = {1, 0, 1, 0}; /* repeats */
  asg_tensor *idx = tu_constant(g, ASG_I64, ASG_SHAPE(4), iv);
  asg_tensor *y = asg_scatter_add(x[0], idx, x[1], axis);
  return asg_mul(y, y);
}
static asg_tensor *b_embedding(asg_graph *g, asg_tensor **x, void *ctx) {
  (void)ctx;
  double iv[6] = {3, 0, 3, 1, 1, 1};
  asg_tensor *idx = tu_constant(g, ASG_I64, ASG_SHAPE(2, 3), iv);
  asg_tensor *e = asg_embedding(x[0], idx);
  return asg_mul(e, e);
}

static void test_grads(void) {
  asg_shape s4 = ASG_SHAPE(2, 3, 4, 2);
  tu_gradcheck("permute", 1, &s4, b_permute, NULL, NULL);
  asg_shape s3 = ASG_SHAPE(2, 3, 3);
  tu_gradcheck("transpose", 1, &s3, b_transpose, NULL, NULL);
  asg_shape sl = ASG_SHAPE(2, 5, 4);
  tu_gradcheck("slice", 1, &sl, b_slice, NULL, NULL);
  asg_shape sb[2] = {ASG_SHAPE(2, 3, 6), ASG_SHAPE(2, 3, 2)};
  tu_gradcheck("slice_bwd", 2, sb, b_slice_bwd, NULL, NULL);
  for (int axis = -1; axis < 3; axis++) {
    int a = axis < 0 ? axis + 3 : axis;
    asg_shape cs[3];
    for (int k = 0; k < 3; k++) {
      cs[k] = ASG_SHAPE(2, 3, 2);
      cs[k].dims[a] = k + 1;
    }
    char name[32];
    snprintf(name, sizeof name, "concat axis %d", axis);
    tu_gradcheck(name, 3, cs, b_concat, &axis, NULL);
  }
  asg_shape sp = ASG_SHAPE(3, 5);
  tu_gradcheck("split", 1, &sp, b_split, NULL, NULL);
  asg_shape pieces = ASG_SHAPE(4, 6);
  bool overlap = false;
  tu_gradcheck("slice pieces with gaps", 1, &pieces, b_slice_pieces, &overlap, NULL);
  overlap = true;
  tu_gradcheck("overlapping slice pieces", 1, &pieces, b_slice_pieces, &overlap, NULL);
  { /* the gradient of a split input is one concat of the parts' gradients */
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F32, sp, asg_init_zeros()), *dx = NULL;
    asg_tensor *loss = asg_sum(b_split(g, &x, NULL), ASG_ALL_AXES, false);
    TU_CHECK(asg_grad(loss, 1, &x, &dx) == ASG_OK && dx &&
                 strcmp(asg_tensor_op_name(dx), "concat") == 0,
             "split gradient is a concat (got %s)", dx ? asg_tensor_op_name(dx) : "none");
    asg_graph_free(g);
  }
  { /* 150 one-row slices (an RNN's time steps): one concat, value k in row k */
    enum { T = 150 };
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(T, 2), asg_init_zeros()), *dx = NULL;
    asg_tensor *loss = NULL;
    for (int k = 0; k < T; k++) {
      asg_tensor *r = asg_mul_scalar(asg_slice(x, 0, k, k + 1, 1), (double)k);
      loss =
          loss ? asg_add(loss, asg_sum(r, ASG_ALL_AXES, false)) : asg_sum(r, ASG_ALL_AXES, false);
    }
    TU_CHECK(
        asg_grad(loss, 1, &x, &dx) == ASG_OK && dx && strcmp(asg_tensor_op_name(dx), "concat") == 0,
        "150 slices: the gradient is one concat (got %s)", dx ? asg_tensor_op_name(dx) : "none");
    double got[2 * T], want[2 * T];
    for (int i = 0; i < 2 * T; i++)
      want[i] = i / 2;
    TU_CHECK(dx && tu_eval(g, dx, got) == 0 && tu_close("150 slices", got, want, 2 * T, 0, 0),
             "150 slices: gradient values");
    asg_graph_free(g);
  }
  for (int axis = -2; axis < 2; axis++) {
    asg_shape gs = ASG_SHAPE(3, 4);
    char name[32];
    snprintf(name, sizeof name, "gather axis %d", axis);
    tu_gradcheck(name, 1, &gs, b_gather, &axis, NULL);
  }
  for (int axis = 0; axis < 3; axis++) {
    asg_shape ss[2] = {ASG_SHAPE(2, 3, 3), ASG_SHAPE(2, 3, 3)};
    ss[1].dims[axis] = 4;
    char name[32];
    snprintf(name, sizeof name, "scatter_add axis %d", axis);
    tu_gradcheck(name, 2, ss, b_scatter, &axis, NULL);
  }
  asg_shape es = ASG_SHAPE(4, 3);
  tu_gradcheck("embedding", 1, &es, b_embedding, NULL, NULL);
}

int main(void) {
  test_permute_fwd();
  test_slice_fwd();
  test_slice_views();
  test_concat_placement();
  test_concat_split_fwd();
  test_gather_fwd();
  test_scatter_add_fwd();
  test_one_hot_fwd();
  test_grads();
  return tu_finish();
}
