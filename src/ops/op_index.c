/* Index-family constructors: permute/transpose, slice (+ its backward),
 * concat, split, gather/embedding, scatter_add, one_hot.
 *
 * Attributes (y->attr):
 *   PERMUTE      i[d] = input axis that becomes output axis d (d < ndim)
 *   SLICE        i0 = axis, i1 = first index taken (normalized, >= 0),
 *                i2 = step (>= 1), i3 = number of elements taken (>= 1)
 *   SLICE_BWD    same as SLICE; its input is dy (the slice's shape) and its
 *                output the sliced tensor's shape, zero outside the slice
 *   CONCAT       i0 = axis (normalized); inputs in order
 *   GATHER       i0 = axis; inputs (x, idx)
 *   SCATTER_ADD  i0 = axis; inputs (x, idx, src)
 *   ONE_HOT      i0 = depth
 *
 * Index tensors are I32 or I64. Their values are checked when running: an
 * index outside [0, dim) (negative ones included) fails the run, unless the
 * program is unchecked (asg_compile_opts.unchecked_indices); then it
 * gathers zeros, is ignored by scatter_add and gives an all-zero row in
 * one_hot (runtime/backend.h). Empty results (a slice that selects nothing, a zero split
 * size) are rejected: graph leaves have no zero-size dims either. */
#include <stdio.h>

#include "core/checks.h"
#include "ops/op_util.h"

static bool is_index_dtype(asg_dtype dt) { return dt == ASG_I32 || dt == ASG_I64; }
static bool is_math_dtype(asg_dtype dt) {
  return dt == ASG_F32 || dt == ASG_F64 || dt == ASG_I32 || dt == ASG_I64;
}

/* ---- permute / transpose ---- */

static asg_tensor *permute_named(const char *name, asg_tensor *x, const int *perm) {
  asg_graph *g = asg__graph_of(name, 1, &x);
  char b1[ASG_SHAPE_BUF];
  if (!g) return NULL;
  int nd = x->shape.ndim;
  if (!perm && nd > 0) return asg__fail(g, ASG_ERR_INVALID, name, "perm is NULL");
  bool seen[ASG_MAX_DIMS] = {false};
  bool identity = true;
  asg_shape s = {nd, {0}};
  for (int d = 0; d < nd; d++) {
    int p = perm[d];
    if (p < 0) p += nd; /* negative axes count from the end */
    if (p < 0 || p >= nd || seen[p]) {
      char pb[64];
      int len = 0;
      for (int k = 0; k < nd && len < (int)sizeof pb - 12; k++)
        len += snprintf(pb + len, sizeof pb - (size_t)len, k ? ",%d" : "%d", perm[k]);
      return asg__fail(g, ASG_ERR_INVALID, name, "(%s) is not a permutation of the %d axes of %s",
                       nd ? pb : "", nd, SHP(x->shape, b1));
    }
    seen[p] = true;
    identity = identity && p == d;
    s.dims[d] = x->shape.dims[p];
  }
  if (identity) return x;
  /* Only axes of size 1 move (the other axes keep their order): the same
   * bytes in the same order, a view instead of a copy (a decode step's
   * [B, T, H, D] -> [B, H, T, D] at T = 1). */
  int last = -1;
  bool same_order = true;
  for (int d = 0; d < nd && same_order; d++) {
    int p = perm[d] < 0 ? perm[d] + nd : perm[d];
    if (x->shape.dims[p] == 1) continue;
    same_order = p > last;
    last = p;
  }
  if (same_order) return asg_reshape(x, s);
  asg_tensor *y = asg__node(g, ASG_OP_PERMUTE, x->dtype, s, 1, &x);
  if (y)
    for (int d = 0; d < nd; d++)
      y->attr.i[d] = perm[d] < 0 ? perm[d] + nd : perm[d];
  return y;
}

asg_tensor *asg_permute(asg_tensor *x, const int *perm) {
  return permute_named("permute", x, perm);
}

asg_tensor *asg_transpose(asg_tensor *x, int axis0, int axis1) {
  asg_graph *g = asg__graph_of("transpose", 1, &x);
  int a, b;
  if (!g) return NULL;
  int nd = x->shape.ndim;
  if (!asg__norm_axis(axis0, nd, &a) || !asg__norm_axis(axis1, nd, &b))
    return asg__fail(g, ASG_ERR_INVALID, "transpose", "axes (%d,%d) out of range for rank %d",
                     axis0, axis1, nd);
  int perm[ASG_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    perm[d] = d;
  perm[a] = b;
  perm[b] = a;
  return permute_named("transpose", x, perm);
}

/* ---- slice ---- */

static asg_tensor *slice_node(asg_graph *g, asg_op op, asg_tensor *in, asg_shape out, int axis,
                              int64_t start, int64_t step, int64_t count) {
  asg_tensor *y = asg__node(g, op, in->dtype, out, 1, &in);
  if (y) {
    y->attr.i[0] = axis;
    y->attr.i[1] = start;
    y->attr.i[2] = step;
    y->attr.i[3] = count;
  }
  return y;
}

/* Registers "the slice [start, start + (count-1) step] lies in an axis of
 * n" for symbolic operands, or checks it now for constants. */
static bool slice_fits(asg_graph *g, const char *op, asg_shape xs, int a, int64_t start,
                       int64_t count, int64_t step) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF], m[4 * ASG_SHAPE_BUF];
  int64_t n = xs.dims[a];
  int64_t end = asg__dim_add(g, start, asg__dim_mul(g, asg__dim_sub(g, count, 1), step));
  end = asg__dim_add(g, end, 1);
  if (g->status != ASG_OK) return false;
  snprintf(m, sizeof m, "slice of %s elements from %s with step %lld must lie in axis %d of %s",
           DIM(count, b1), DIM(start, b2), (long long)step, a, SHP(xs, b3));
  if (n >= 0 && end >= 0) {
    if (end <= n) return true;
    asg__fail(g, ASG_ERR_SHAPE, op, "%s", m);
    return false;
  }
  return asg__dim_require_ge(g, asg__dim_sub(g, n, end), 0, op, m);
}

/* A slice of symbolic axis n: no clamping (a binding decides where n
 * lies), so the bounds are taken as given: negative from the end,
 * INT64_MAX the end; "selects something within the axis" is a constraint. */
static asg_tensor *slice_sym(asg_graph *g, asg_tensor *x, int a, int64_t start, int64_t stop,
                             int64_t step) {
  char b1[ASG_SHAPE_BUF];
  int64_t n = x->shape.dims[a];
  if (start < -((int64_t)1 << 48) || (stop < -((int64_t)1 << 48)))
    return asg__fail(g, ASG_ERR_SHAPE, "slice", "bounds [%lld:%lld] out of range for %s",
                     (long long)start, (long long)stop, SHP(x->shape, b1));
  int64_t lo = start >= 0 ? start : asg__dim_sub(g, n, -start);
  int64_t hi = stop == INT64_MAX ? n : stop >= 0 ? stop : asg__dim_sub(g, n, -stop);
  if (g->status != ASG_OK) return NULL;
  if (lo >= 0 && hi >= 0 && hi <= lo)
    return asg__fail(g, ASG_ERR_SHAPE, "slice",
                     "[%lld:%lld:%lld] selects nothing from axis %d of %s (empty tensors are not "
                     "supported)",
                     (long long)start, (long long)stop, (long long)step, a, SHP(x->shape, b1));
  int64_t diff = asg__dim_sub(g, hi, lo);
  if (g->status != ASG_OK) return NULL;
  if (!asg__dim_require_ge(g, diff, 1, "slice", "the slice selects nothing") ||
      (lo != start && !asg__dim_require_ge(g, lo, 0, "slice", "start before the axis")))
    return NULL;
  int64_t count = asg__dim_floordiv(g, asg__dim_add(g, diff, step - 1), step);
  if (g->status != ASG_OK || !slice_fits(g, "slice", x->shape, a, lo, count, step)) return NULL;
  if (lo == 0 && count == n) return x; /* whole axis, step 1 */
  asg_shape s = x->shape;
  s.dims[a] = count;
  return slice_node(g, ASG_OP_SLICE, x, s, a, lo, step, count);
}

asg_tensor *asg__slice_dims(asg_tensor *x, int axis, int64_t start, int64_t count, int64_t step) {
  asg_graph *g = asg__graph_of("slice", 1, &x);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  int a;
  if (!g) return NULL;
  if (!asg__norm_axis(axis, x->shape.ndim, &a) || step < 1 || !asg__dim_valid(g, start) ||
      !asg__dim_valid(g, count) || count == 0)
    return asg__fail(g, ASG_ERR_INVALID, "slice", "bad slice (axis %d, start %s, count %s) of %s",
                     axis, DIM(start, b1), DIM(count, b2), SHP(x->shape, b2));
  if (!slice_fits(g, "slice", x->shape, a, start, count, step)) return NULL;
  if (start == 0 && count == x->shape.dims[a] && step == 1) return x;
  asg_shape s = x->shape;
  s.dims[a] = count;
  return slice_node(g, ASG_OP_SLICE, x, s, a, start, step, count);
}

asg_tensor *asg_slice(asg_tensor *x, int axis, int64_t start, int64_t stop, int64_t step) {
  asg_graph *g = asg__graph_of("slice", 1, &x);
  char b1[ASG_SHAPE_BUF];
  int a;
  if (!g) return NULL;
  if (!asg__norm_axis(axis, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, "slice", "axis %d out of range for %s", axis,
                     SHP(x->shape, b1));
  if (step < 1)
    return asg__fail(g, ASG_ERR_INVALID, "slice", "step must be >= 1, got %lld", (long long)step);
  int64_t n = x->shape.dims[a], lo = start, hi = stop;
  if (asg__dim_is_sym(n)) return slice_sym(g, x, a, start, stop, step);
  /* Python clamping for a positive step; any int64 bound is fine (a negative
   * one plus n >= 0 cannot overflow) */
  if (lo < 0) lo += n;
  if (hi < 0) hi += n;
  lo = lo < 0 ? 0 : lo > n ? n : lo;
  hi = hi < 0 ? 0 : hi > n ? n : hi;
  /* ceil((hi - lo) / step) without forming hi - lo + step, which can overflow */
  int64_t count = hi > lo ? (hi - lo - 1) / step + 1 : 0;
  if (count == 0)
    return asg__fail(
        g, ASG_ERR_SHAPE, "slice",
        "[%lld:%lld:%lld] selects nothing from axis %d of %s (empty tensors are not supported)",
        (long long)start, (long long)stop, (long long)step, a, SHP(x->shape, b1));
  if (count == n) return x; /* whole axis, step 1 */
  asg_shape s = x->shape;
  s.dims[a] = count;
  return slice_node(g, ASG_OP_SLICE, x, s, a, lo, step, count);
}

asg_tensor *asg__slice_bwd(asg_tensor *dy, asg_shape xshape, int axis, int64_t start,
                           int64_t step) {
  asg_graph *g = asg__graph_of("slice_bwd", 1, &dy);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!g) return NULL;
  asg_shape want = xshape;
  int64_t count = axis >= 0 && axis < xshape.ndim ? dy->shape.dims[axis] : 0;
  if (axis >= 0 && axis < xshape.ndim) want.dims[axis] = count;
  if (axis >= 0 && axis < xshape.ndim &&
      (asg__dim_is_sym(count) || asg__dim_is_sym(start) || asg__dim_is_sym(xshape.dims[axis]))) {
    if (!asg_shape_equal(want, dy->shape) || step < 1 || !asg__dim_valid(g, start))
      return asg__fail(g, ASG_ERR_SHAPE, "slice_bwd", "gradient %s does not fit a slice of %s",
                       SHP(dy->shape, b1), SHP(xshape, b2));
    if (!slice_fits(g, "slice_bwd", xshape, axis, start, count, step)) return NULL;
    return slice_node(g, ASG_OP_SLICE_BWD, dy, xshape, axis, start, step, count);
  }
  if (axis < 0 || axis >= xshape.ndim || !asg_shape_equal(want, dy->shape) || start < 0 ||
      step < 1 || count < 1 || start >= xshape.dims[axis] ||
      count - 1 > (xshape.dims[axis] - 1 - start) / step) /* last index past the axis */
    return asg__fail(g, ASG_ERR_SHAPE, "slice_bwd", "gradient %s does not fit a slice of %s",
                     SHP(dy->shape, b1), SHP(xshape, b2));
  return slice_node(g, ASG_OP_SLICE_BWD, dy, xshape, axis, start, step, count);
}

/* ---- concat / split ---- */

asg_tensor *asg_concat(asg_tensor *const *xs, int n, int axis) {
  if (n < 1 || !xs) { /* no tensor to find the graph through */
    asg__error(ASG_ERR_INVALID, "concat: needs at least one input, got %d", n);
    return NULL;
  }
  asg_graph *g = asg__graph_of("concat", n, xs);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  int a;
  if (!g) return NULL;
  asg_shape s = xs[0]->shape;
  if (!asg__norm_axis(axis, s.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, "concat", "axis %d out of range for %s", axis, SHP(s, b1));
  for (int k = 1; k < n; k++) {
    asg_shape t = xs[k]->shape;
    if (xs[k]->dtype != xs[0]->dtype)
      return asg__fail(g, ASG_ERR_DTYPE, "concat", "input %d is %s, input 0 is %s", k,
                       asg_dtype_name(xs[k]->dtype), asg_dtype_name(xs[0]->dtype));
    bool ok = t.ndim == s.ndim;
    for (int d = 0; ok && d < s.ndim; d++)
      ok = d == a || t.dims[d] == xs[0]->shape.dims[d];
    if (!ok)
      return asg__fail(g, ASG_ERR_SHAPE, "concat",
                       "input %d %s does not match input 0 %s outside axis %d", k, SHP(t, b1),
                       SHP(xs[0]->shape, b2), a);
    if (asg__dim_is_sym(s.dims[a]) || asg__dim_is_sym(t.dims[a])) {
      s.dims[a] = asg__dim_add(g, s.dims[a], t.dims[a]);
      if (g->status != ASG_OK) return NULL;
    } else if (!asg__add_i64(s.dims[a], t.dims[a], &s.dims[a]))
      return asg__fail(g, ASG_ERR_SHAPE, "concat", "axis %d of the result overflows int64", a);
  }
  if (n == 1) return xs[0];
  asg_tensor *y = asg__node(g, ASG_OP_CONCAT, xs[0]->dtype, s, n, xs);
  if (y) y->attr.i[0] = a;
  return y;
}

asg_status asg_split(asg_tensor *x, int axis, int n, const int64_t *sizes, asg_tensor **out) {
  asg_graph *g = asg__graph_of("split", 1, &x);
  char b1[ASG_SHAPE_BUF];
  int a;
  if (out)
    for (int k = 0; k < n; k++)
      out[k] = NULL;
  if (!g) return asg__tensor_ok(x) && x->graph->status ? x->graph->status : ASG_ERR_INVALID;
  if (n < 1 || !sizes || !out) {
    asg__fail(g, ASG_ERR_INVALID, "split", "needs n >= 1 pieces with sizes and outputs (n = %d)",
              n);
    return g->status;
  }
  if (!asg__norm_axis(axis, x->shape.ndim, &a)) {
    asg__fail(g, ASG_ERR_INVALID, "split", "axis %d out of range for %s", axis, SHP(x->shape, b1));
    return g->status;
  }
  int64_t total = 0;
  char b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF];
  bool sym = false;
  for (int k = 0; k < n; k++) {
    if (asg__dim_is_sym(sizes[k]) && asg__dim_valid(g, sizes[k])) { /* a symbolic piece */
      sym = true;
      total = asg__dim_add(g, total, sizes[k]);
      if (g->status != ASG_OK) return g->status;
      continue;
    }
    if (sizes[k] < 1) {
      asg__fail(g, ASG_ERR_SHAPE, "split", "size %d is %lld; sizes must be >= 1", k,
                (long long)sizes[k]);
      return g->status;
    }
    if (asg__dim_is_sym(total)) {
      total = asg__dim_add(g, total, sizes[k]);
      if (g->status != ASG_OK) return g->status;
    } else if (!asg__add_i64(total, sizes[k], &total)) {
      asg__fail(g, ASG_ERR_SHAPE, "split", "sizes sum past int64 (size %d is %lld)", k,
                (long long)sizes[k]);
      return g->status;
    }
  }
  if (total != x->shape.dims[a]) {
    asg__fail(g, ASG_ERR_SHAPE, "split", "sizes sum to %s but axis %d of %s is %s", DIM(total, b2),
              a, SHP(x->shape, b1), DIM(x->shape.dims[a], b3));
    return g->status;
  }
  sym = sym || asg__dim_is_sym(total);
  int64_t at = 0;
  for (int k = 0; k < n; k++) {
    out[k] = sym ? asg__slice_dims(x, a, at, sizes[k], 1) : asg_slice(x, a, at, at + sizes[k], 1);
    at = sym ? asg__dim_add(g, at, sizes[k]) : at + sizes[k];
    if (!out[k]) {
      for (int j = 0; j <= k; j++)
        out[j] = NULL;
      return g->status ? g->status : ASG_ERR_INVALID;
    }
  }
  return ASG_OK;
}

/* ---- gather / embedding / scatter_add / one_hot ---- */

static bool check_idx(asg_graph *g, const char *name, const asg_tensor *idx) {
  if (is_index_dtype(idx->dtype)) return true;
  asg__fail(g, ASG_ERR_DTYPE, name, "indices must be i32 or i64, got %s",
            asg_dtype_name(idx->dtype));
  return false;
}

/* x.shape[:axis] + idx.shape + x.shape[axis+1:]; false if the rank is too big. */
static bool take_shape(asg_shape x, asg_shape idx, int a, asg_shape *out) {
  int nd = x.ndim - 1 + idx.ndim;
  if (nd > ASG_MAX_DIMS) return false;
  asg_shape s = {nd, {0}};
  int k = 0;
  for (int d = 0; d < a; d++)
    s.dims[k++] = x.dims[d];
  for (int d = 0; d < idx.ndim; d++)
    s.dims[k++] = idx.dims[d];
  for (int d = a + 1; d < x.ndim; d++)
    s.dims[k++] = x.dims[d];
  *out = s;
  return true;
}

static asg_tensor *gather_named(const char *name, asg_tensor *x, asg_tensor *idx, int axis) {
  asg_tensor *in[2] = {x, idx};
  asg_graph *g = asg__graph_of(name, 2, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  asg_shape s;
  int a;
  if (!g || !check_idx(g, name, idx)) return NULL;
  if (!asg__norm_axis(axis, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, name, "axis %d out of range for %s", axis,
                     SHP(x->shape, b1));
  if (!take_shape(x->shape, idx->shape, a, &s))
    return asg__fail(g, ASG_ERR_SHAPE, name, "result of taking %s from %s has rank > %d",
                     SHP(idx->shape, b1), SHP(x->shape, b2), ASG_MAX_DIMS);
  asg_tensor *y = asg__node(g, ASG_OP_GATHER, x->dtype, s, 2, in);
  if (y) y->attr.i[0] = a;
  return y;
}

asg_tensor *asg_gather(asg_tensor *x, asg_tensor *idx, int axis) {
  return gather_named("gather", x, idx, axis);
}

asg_tensor *asg_embedding(asg_tensor *table, asg_tensor *idx) {
  asg_tensor *in[2] = {table, idx};
  asg_graph *g = asg__graph_of("embedding", 2, in);
  char b1[ASG_SHAPE_BUF];
  if (!g) return NULL;
  if (table->shape.ndim != 2)
    return asg__fail(g, ASG_ERR_SHAPE, "embedding", "table must be [V, D], got %s",
                     SHP(table->shape, b1));
  return gather_named("embedding", table, idx, 0);
}

asg_tensor *asg_scatter_add(asg_tensor *x, asg_tensor *idx, asg_tensor *src, int axis) {
  asg_tensor *in[3] = {x, idx, src};
  asg_graph *g = asg__graph_of("scatter_add", 3, in);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF];
  asg_shape want;
  int a;
  if (!g || !check_idx(g, "scatter_add", idx) || !asg__same_dtype(g, "scatter_add", x, src))
    return NULL;
  if (!is_math_dtype(x->dtype))
    return asg__fail(g, ASG_ERR_DTYPE, "scatter_add", "dtype %s not supported",
                     asg_dtype_name(x->dtype));
  if (!asg__norm_axis(axis, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, "scatter_add", "axis %d out of range for %s", axis,
                     SHP(x->shape, b1));
  if (!take_shape(x->shape, idx->shape, a, &want) || !asg_shape_equal(want, src->shape))
    return asg__fail(
        g, ASG_ERR_SHAPE, "scatter_add",
        "src %s must be x.shape[:axis] + idx.shape + x.shape[axis+1:] for x %s, idx %s, axis %d",
        SHP(src->shape, b1), SHP(x->shape, b2), SHP(idx->shape, b3), a);
  asg_tensor *y = asg__node(g, ASG_OP_SCATTER_ADD, x->dtype, x->shape, 3, in);
  if (y) y->attr.i[0] = a;
  return y;
}

asg_tensor *asg_one_hot(asg_tensor *idx, int64_t depth, asg_dtype dt) {
  asg_graph *g = asg__graph_of("one_hot", 1, &idx);
  char b1[ASG_SHAPE_BUF];
  if (!g || !check_idx(g, "one_hot", idx)) return NULL;
  if (depth < 1)
    return asg__fail(g, ASG_ERR_INVALID, "one_hot", "depth must be a constant >= 1, got %s",
                     DIM(depth, b1));
  if ((unsigned)dt >= ASG_DTYPE_COUNT || !is_math_dtype(dt))
    return asg__fail(g, ASG_ERR_DTYPE, "one_hot", "output dtype must be f32, f64, i32 or i64");
  if (idx->shape.ndim >= ASG_MAX_DIMS)
    return asg__fail(g, ASG_ERR_SHAPE, "one_hot", "indices %s leave no room for the depth axis",
                     SHP(idx->shape, b1));
  asg_shape s = idx->shape;
  s.dims[s.ndim++] = depth;
  asg_tensor *y = asg__node(g, ASG_OP_ONE_HOT, dt, s, 1, &idx);
  if (y) y->attr.i[0] = depth;
  return y;
}
