/* Sorting and scans: argsort (the one sorting op), sort and topk built on
 * it, cumsum.
 *
 * Attributes (y->attr):
 *   ARGSORT  i0 = axis (normalized), i1 = 1 for descending order. The
 *            output (I64) has x's shape with k <= n entries along the axis:
 *            the positions of the first k elements of the row in sorted
 *            order (k = n: a full argsort).
 *   CUMSUM   i0 = axis, i1 = exclusive (y_j sums x_i for i < j instead of
 *            i <= j), i2 = reverse (sums run from the end of the axis).
 *
 * Order: ascending by value, NaN above +inf (descending: NaN first), -0
 * equal to +0; stable: equal values (every NaN equal to every other) keep
 * their index order, in both directions (torch.sort(stable=True)). So the
 * result is fully determined and every backend gives the same indices.
 *
 * Values (sort, topk) are a gather of x at the selected positions: x is
 * flattened and the flat position is idx * inner + (offset of the row),
 * with the offsets made by exclusive cumsums of ones. Their gradient is
 * therefore gather's (a scatter_add into zeros): it flows to the selected
 * positions only, and no backend needs a kernel beyond argsort and cumsum.
 * argsort itself has no gradient (NODIFF). */
#include "core/symbol.h"
#include "ops/op_util.h"

static bool sortable(asg_graph *g, const char *op, const asg_tensor *x) {
  char b1[ASG_SHAPE_BUF];
  const asg_dtype dt = x->dtype;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64) {
    asg__fail(g, ASG_ERR_DTYPE, op, "x must be f32, f64, i32 or i64, got %s", asg_dtype_name(dt));
    return false;
  }
  if (x->shape.ndim < 1) {
    asg__fail(g, ASG_ERR_SHAPE, op, "x %s must have at least one axis", SHP(x->shape, b1));
    return false;
  }
  return true;
}

/* The argsort node taking the first k of each row (all: the whole row). */
static asg_tensor *argsort_k(const char *op, asg_tensor *x, int axis, bool descending, bool all,
                             int64_t k) {
  asg_graph *g = asg__graph_of(op, 1, &x);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  int a;
  if (!g || !sortable(g, op, x)) return NULL;
  if (!asg__norm_axis(axis, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, op, "axis %d out of range for %s", axis,
                     SHP(x->shape, b1));
  asg_shape s = x->shape;
  const int64_t n = s.dims[a];
  if (!all) {
    if (k < 1) return asg__fail(g, ASG_ERR_INVALID, op, "k must be >= 1, got %lld", (long long)k);
    if (!asg__dim_is_sym(n) && k > n)
      return asg__fail(g, ASG_ERR_SHAPE, op, "k = %lld exceeds axis %d of %s (%s)", (long long)k, a,
                       SHP(x->shape, b1), DIM(n, b2));
    if (asg__dim_is_sym(n)) {
      char m[2 * ASG_SHAPE_BUF];
      snprintf(m, sizeof m, "k = %lld must not exceed axis %d of %s", (long long)k, a,
               SHP(x->shape, b1));
      if (!asg__dim_require_ge(g, asg__dim_sub(g, n, k), 0, op, m)) return NULL;
    }
    s.dims[a] = k;
  }
  asg_tensor *y = asg__node(g, ASG_OP_ARGSORT, ASG_I64, s, 1, &x);
  if (y) {
    y->attr.i[0] = a;
    y->attr.i[1] = descending;
  }
  return y;
}

/* The product of dims[0..n) as an I64 scalar tensor (set when specialized
 * if symbolic). */
static asg_tensor *dims_scalar(asg_graph *g, const int64_t *dims, int n) {
  int64_t konst;
  const int64_t sym = asg__count_dim(g, dims, n, &konst);
  if (g->status != ASG_OK) return NULL;
  return sym ? asg__dim_ratio(g, ASG_I64, sym, konst, 0, 0, 1)
             : asg_fill(g, ASG_I64, ASG_SCALAR, (double)konst);
}

/* 0, 1, 2, ... laid out in shape s (I64): an exclusive cumsum of ones. */
static asg_tensor *iota(asg_graph *g, asg_shape s) {
  asg_tensor *ones = asg_flatten(asg_fill(g, ASG_I64, s, 1.0), 0);
  return asg_reshape(asg_cumsum(ones, 0, true, false), s);
}

static bool all_one(const int64_t *dims, int n) {
  for (int i = 0; i < n; i++)
    if (dims[i] != 1) return false;
  return true;
}

/* x at idx (argsort's output, positions along axis a): gather from the
 * flattened x at idx * inner + o * n * inner + i. */
static asg_tensor *take_sorted(asg_graph *g, asg_tensor *x, asg_tensor *idx, int a) {
  const asg_shape xs = x->shape;
  const int nd = xs.ndim;
  asg_tensor *flat = idx;
  if (!all_one(xs.dims + a + 1, nd - a - 1)) {
    flat = asg_mul(flat, dims_scalar(g, xs.dims + a + 1, nd - a - 1));
    asg_shape si = xs; /* [1.., 1, inner..] */
    for (int d = 0; d <= a; d++)
      si.dims[d] = 1;
    flat = asg_add(flat, iota(g, si));
  }
  if (!all_one(xs.dims, a)) {
    asg_shape so = xs; /* [outer.., 1, 1..] */
    for (int d = a; d < nd; d++)
      so.dims[d] = 1;
    flat = asg_add(flat, asg_mul(iota(g, so), dims_scalar(g, xs.dims + a, nd - a)));
  }
  return asg_gather(asg_flatten(x, 0), flat, 0);
}

asg_tensor *asg_argsort(asg_tensor *x, int axis, bool descending) {
  return argsort_k("argsort", x, axis, descending, true, 0);
}

asg_tensor *asg_sort(asg_tensor *x, int axis, bool descending) {
  asg_tensor *idx = argsort_k("sort", x, axis, descending, true, 0);
  return idx ? take_sorted(x->graph, x, idx, (int)idx->attr.i[0]) : NULL;
}

asg_status asg_topk(asg_tensor *x, int64_t k, int axis, bool largest, asg_tensor **values,
                    asg_tensor **indices) {
  if (values) *values = NULL;
  if (indices) *indices = NULL;
  asg_tensor *idx = argsort_k("topk", x, axis, largest, false, k);
  if (!idx) return asg__tensor_ok(x) && x->graph->status ? x->graph->status : ASG_ERR_INVALID;
  asg_tensor *v = values ? take_sorted(x->graph, x, idx, (int)idx->attr.i[0]) : NULL;
  if (values && !v) return x->graph->status ? x->graph->status : ASG_ERR_INVALID;
  if (values) *values = v;
  if (indices) *indices = idx;
  return ASG_OK;
}

asg_tensor *asg_cumsum(asg_tensor *x, int axis, bool exclusive, bool reverse) {
  asg_graph *g = asg__graph_of("cumsum", 1, &x);
  char b1[ASG_SHAPE_BUF];
  int a;
  if (!g || !sortable(g, "cumsum", x)) return NULL;
  if (!asg__norm_axis(axis, x->shape.ndim, &a))
    return asg__fail(g, ASG_ERR_INVALID, "cumsum", "axis %d out of range for %s", axis,
                     SHP(x->shape, b1));
  asg_tensor *y = asg__node(g, ASG_OP_CUMSUM, x->dtype, x->shape, 1, &x);
  if (y) {
    y->attr.i[0] = a;
    y->attr.i[1] = exclusive;
    y->attr.i[2] = reverse;
  }
  return y;
}
