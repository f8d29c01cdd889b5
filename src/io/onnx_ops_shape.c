/* ONNX operators that rearrange or describe tensors: Reshape, Flatten,
 * Transpose, (Un)Squeeze, Concat, Slice, Gather, Split, Expand, Shape,
 * Size, Constant, ConstantOfShape, Range. Small integer values (shapes) stay
 * known at import time so that later Reshapes can read them. */
#ifdef ASG_HAVE_ONNX
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/onnx_internal.h"

static int rank(const asg_tensor *t) { return asg_tensor_shape(t).ndim; }

/* A known I64 value of the given dims (for Shape and friends). */
asg_status onnx__host_result(onnx_ctx *c, onnx_val *o, const int64_t *v, int k, bool scalar) {
  asg_host_tensor h = {ASG_I64, scalar ? ASG_SCALAR : ASG_SHAPE(k), malloc(8 * (size_t)(k + 1))};
  if (!h.data) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  memcpy(h.data, v, 8 * (size_t)k);
  o->host = h;
  o->has_host = true;
  if (!k) return ASG_OK; /* empty: known on the host only (e.g. the shape of a scalar) */
  o->t = asg_constant(c->g, ASG_I64, h.shape, h.data);
  if (!o->t) return onnx__build_error(c);
  return ASG_OK;
}
bool onnx__small_int(const onnx_val *v) {
  return v && v->has_host && !asg_dtype_is_float(v->host.dtype) && v->host.shape.ndim <= 1;
}

/* ---- shapes ---- */
ONNX_OP(onnx__op_reshape) {
  UNUSED;
  NEED(2);
  int64_t v[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__host_ints(c, in[1], "shape", v, ASG_MAX_DIMS, &k);
  if (st) return st;
  asg_shape xs = asg_tensor_shape(T(0)), s = {k, {0}};
  bool allowzero = onnx__attr_int(n, "allowzero", 0) != 0;
  for (int i = 0; i < k; i++) {
    s.dims[i] = v[i];
    if (v[i] == 0 && !allowzero) {
      if (i >= xs.ndim) return onnx__node_error(c, ASG_ERR_SHAPE, "shape[%d] = 0 copies no dim", i);
      s.dims[i] = xs.dims[i];
    } else if (v[i] < -1)
      return onnx__node_error(c, ASG_ERR_SHAPE, "shape[%d] = %lld", i, (long long)v[i]);
  }
  DONE(asg_reshape(T(0), s));
}

ONNX_OP(onnx__op_flatten) {
  UNUSED;
  NEED(1);
  asg_shape s = asg_tensor_shape(T(0));
  int axis = (int)onnx__attr_int(n, "axis", 1);
  if (axis < -s.ndim || axis > s.ndim) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += s.ndim;
  int64_t a = 1, b = 1;
  for (int i = 0; i < s.ndim; i++) {
    int64_t *p = i < axis ? &a : &b;
    *p = asg_dim_mul(c->g, *p, s.dims[i]);
  }
  DONE(asg_reshape(T(0), ASG_SHAPE(a, b)));
}

ONNX_OP(onnx__op_transpose) {
  UNUSED;
  NEED(1);
  int r = rank(T(0)), perm[ASG_MAX_DIMS];
  size_t k;
  const int64_t *p = onnx__attr_ints(n, "perm", &k);
  if (p && (int)k != r) return onnx__node_error(c, ASG_ERR_FORMAT, "perm has %zu values", k);
  for (int i = 0; i < r; i++) {
    int64_t a = p ? p[i] : r - 1 - i;
    if (a < -r || a >= r)
      return onnx__node_error(c, ASG_ERR_FORMAT, "perm value %lld", (long long)a);
    perm[i] = (int)(a < 0 ? a + r : a);
  }
  DONE(asg_permute(T(0), perm));
}

/* Axes from the attribute (older opsets) or the input (newer). */
asg_status onnx__get_axes(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val *inp, int64_t *ax,
                          int *k) {
  size_t cnt;
  const int64_t *a = onnx__attr_ints(n, "axes", &cnt);
  *k = 0;
  if (a) {
    if (cnt > ASG_MAX_DIMS) return onnx__node_error(c, ASG_ERR_FORMAT, "%zu axes", cnt);
    memcpy(ax, a, cnt * 8);
    *k = (int)cnt;
    return ASG_OK;
  }
  if (inp) return onnx__host_ints(c, inp, "axes", ax, ASG_MAX_DIMS, k);
  return ASG_OK;
}

int onnx__cmp_desc(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x < y) - (x > y);
}

ONNX_OP(onnx__op_squeeze) {
  UNUSED;
  NEED(1);
  int64_t ax[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__get_axes(c, n, IN(1), ax, &k);
  if (st) return st;
  asg_shape s = asg_tensor_shape(T(0));
  int a[ASG_MAX_DIMS], m = 0;
  if (!k)
    for (int i = 0; i < s.ndim; i++)
      if (s.dims[i] == 1) a[m++] = i;
  for (int i = 0; i < k; i++) {
    if (ax[i] < -s.ndim || ax[i] >= s.ndim)
      return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)ax[i]);
    a[m++] = (int)(ax[i] < 0 ? ax[i] + s.ndim : ax[i]);
  }
  qsort(a, (size_t)m, sizeof a[0], onnx__cmp_desc);
  asg_tensor *y = T(0);
  for (int i = 0; i < m; i++)
    y = asg_squeeze(y, a[i]);
  DONE(y);
}

ONNX_OP(onnx__op_unsqueeze) {
  UNUSED;
  NEED(1);
  int64_t ax[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__get_axes(c, n, IN(1), ax, &k);
  if (st) return st;
  int r = rank(T(0)) + k, a[ASG_MAX_DIMS];
  if (r > ASG_MAX_DIMS) UNSUP("rank %d", r);
  for (int i = 0; i < k; i++) {
    if (ax[i] < -r || ax[i] >= r)
      return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)ax[i]);
    a[i] = (int)(ax[i] < 0 ? ax[i] + r : ax[i]);
  }
  qsort(a, (size_t)k, sizeof a[0], onnx__cmp_desc);
  asg_tensor *y = T(0);
  for (int i = k - 1; i >= 0; i--)
    y = asg_unsqueeze(y, a[i]); /* ascending */
  DONE(y);
}

ONNX_OP(onnx__op_concat) {
  UNUSED;
  if (nin < 1 || nin > 1024) return onnx__node_error(c, ASG_ERR_FORMAT, "%d inputs", nin);
  asg_tensor *xs[1024];
  for (int i = 0; i < nin; i++) {
    if (!in[i]) return onnx__node_error(c, ASG_ERR_FORMAT, "input %d is missing", i);
    xs[i] = in[i]->t;
  }
  int axis = (int)onnx__attr_int(n, "axis", 0);
  bool fold = axis == 0 || axis == -1;
  int64_t v[64];
  int total = 0;
  for (int i = 0; i < nin && fold; i++) {
    int k;
    fold = onnx__small_int(in[i]) && in[i]->host.shape.ndim == 1 &&
           onnx__host_ints(c, in[i], "input", v + total, 64 - total, &k) == ASG_OK;
    total += fold ? k : 0;
  }
  asg_clear_error();
  if (fold) return onnx__host_result(c, out, v, total, false);
  DONE(asg_concat(xs, nin, axis));
}

/* Indices start, start+step, ... of a Python-style slice of a dim d (step != 0). */
static int64_t slice_indices(int64_t d, int64_t st, int64_t en, int64_t step, int64_t *idx,
                             int64_t max) {
  if (step > 0) {
    st = st < 0 ? st + d : st, en = en < 0 ? en + d : en;
    st = st < 0 ? 0 : st > d ? d : st;
    en = en < 0 ? 0 : en > d ? d : en;
  } else {
    st = st < 0 ? st + d : st, en = en < 0 ? en + d : en;
    st = st < -1 ? -1 : st > d - 1 ? d - 1 : st;
    en = en < -1 ? -1 : en > d - 1 ? d - 1 : en;
  }
  int64_t k = 0;
  for (int64_t i = st; (step > 0 ? i < en : i > en) && k < max; i += step)
    idx[k++] = i;
  return k;
}

ONNX_OP(onnx__op_slice) {
  UNUSED;
  NEED(3);
  int64_t st_[ASG_MAX_DIMS], en[ASG_MAX_DIMS], ax[ASG_MAX_DIMS], sp[ASG_MAX_DIMS];
  int k, k2, k3 = 0, k4 = 0;
  asg_status st = onnx__host_ints(c, in[1], "starts", st_, ASG_MAX_DIMS, &k);
  if (!st) st = onnx__host_ints(c, in[2], "ends", en, ASG_MAX_DIMS, &k2);
  if (!st && IN(3)) st = onnx__host_ints(c, in[3], "axes", ax, ASG_MAX_DIMS, &k3);
  if (!st && IN(4)) st = onnx__host_ints(c, in[4], "steps", sp, ASG_MAX_DIMS, &k4);
  if (st) return st;
  if (k2 != k || (IN(3) && k3 != k) || (IN(4) && k4 != k))
    return onnx__node_error(c, ASG_ERR_FORMAT, "starts, ends, axes and steps differ in length");
  asg_tensor *y = T(0);
  int r = rank(y);
  for (int i = 0; i < k; i++) {
    int64_t a = IN(3) ? ax[i] : i, step = IN(4) ? sp[i] : 1;
    if (a < -r || a >= r) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)a);
    if (step == 0) return onnx__node_error(c, ASG_ERR_FORMAT, "step 0");
    int ai = (int)(a < 0 ? a + r : a);
    int64_t d = asg_tensor_shape(y).dims[ai], s0 = st_[i], e0 = en[i];
    if (asg_dim_is_symbolic(d)) {
      if (step < 0 || s0 < 0 || e0 < 0) UNSUP("negative start, end or step on a symbolic dim");
      y = asg_slice(y, ai, s0, e0 > INT32_MAX ? INT32_MAX : e0, step);
      continue;
    }
    if (step > 0) {
      s0 = s0 < 0 ? s0 + d : s0, e0 = e0 < 0 ? e0 + d : e0;
      s0 = s0 < 0 ? 0 : s0 > d ? d : s0;
      e0 = e0 < 0 ? 0 : e0 > d ? d : e0;
      if (e0 <= s0) UNSUP("an empty slice (ASG has no empty tensors)");
      y = asg_slice(y, ai, s0, e0, step);
      continue;
    }
    /* negative steps: a gather of the indices (static dims) */
    if (d > (1 << 24)) UNSUP("negative step over %lld elements", (long long)d);
    int64_t *idx = malloc(8 * (size_t)(d + 1));
    if (!idx) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    int64_t m = slice_indices(d, s0, e0, step, idx, d);
    if (!m) {
      free(idx);
      UNSUP("an empty slice (ASG has no empty tensors)");
    }
    asg_tensor *it = asg_constant(c->g, ASG_I64, ASG_SHAPE(m), idx);
    free(idx);
    y = asg_gather(y, it, ai);
  }
  DONE(y);
}

ONNX_OP(onnx__op_gather) {
  UNUSED;
  NEED(2);
  int axis = (int)onnx__attr_int(n, "axis", 0);
  asg_tensor *idx = T(1);
  asg_shape xs = asg_tensor_shape(T(0));
  if (axis < -xs.ndim || axis >= xs.ndim)
    return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += xs.ndim;
  if (in[1]->has_host && !asg_dim_is_symbolic(xs.dims[axis])) { /* negative indices count back */
    int64_t k = asg_shape_numel(in[1]->host.shape);
    int64_t *v = malloc(8 * (size_t)(k + 1));
    if (!v) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    for (int64_t i = 0; i < k; i++) {
      v[i] = in[1]->host.dtype == ASG_I64 ? ((int64_t *)in[1]->host.data)[i]
                                          : ((int32_t *)in[1]->host.data)[i];
      if (v[i] < 0) v[i] += xs.dims[axis];
    }
    if (onnx__small_int(in[0]) && xs.ndim == 1) { /* shape arithmetic stays known */
      int64_t dv[64], res[64];
      int m;
      if (k <= 64 && onnx__host_ints(c, in[0], "data", dv, 64, &m) == ASG_OK) {
        bool ok = true;
        for (int64_t i = 0; i < k; i++)
          ok = ok && v[i] >= 0 && v[i] < m, res[i % 64] = ok ? dv[v[i]] : 0;
        if (ok) {
          asg_status st = onnx__host_result(c, out, res, (int)k, in[1]->host.shape.ndim == 0);
          free(v);
          return st;
        }
      }
      asg_clear_error();
    }
    idx = asg_constant(c->g, ASG_I64, in[1]->host.shape, v);
    free(v);
  }
  DONE(asg_gather(T(0), idx, axis));
}

ONNX_OP(onnx__op_split) {
  UNUSED;
  NEED(1);
  asg_shape s = asg_tensor_shape(T(0));
  int axis = (int)onnx__attr_int(n, "axis", 0);
  if (axis < -s.ndim || axis >= s.ndim) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += s.ndim;
  int64_t sz[8], d = s.dims[axis];
  int k = 0;
  size_t na;
  const int64_t *sa = onnx__attr_ints(n, "split", &na); /* opsets before 13 */
  if (sa) {
    if ((int)na != nout)
      return onnx__node_error(c, ASG_ERR_FORMAT, "split has %zu sizes, %d outputs", na, nout);
    for (k = 0; k < nout; k++)
      sz[k] = sa[k];
  } else if (IN(1)) {
    asg_status st = onnx__host_ints(c, in[1], "split", sz, 8, &k);
    if (st) return st;
    if (k != nout)
      return onnx__node_error(c, ASG_ERR_FORMAT, "split has %d sizes, %d outputs", k, nout);
  } else {
    if (asg_dim_is_symbolic(d)) UNSUP("equal split of a symbolic dim");
    int64_t each = (d + nout - 1) / nout;
    for (k = 0; k < nout; k++)
      sz[k] = k < nout - 1 ? each : d - each * (nout - 1);
    if (sz[nout - 1] < 0) UNSUP("dim %lld in %d pieces", (long long)d, nout);
  }
  for (int i = 0; i < nout; i++)
    if (sz[i] == 0) UNSUP("an empty piece (ASG has no empty tensors)");
  asg_tensor *parts[8];
  if (asg_split(T(0), axis, nout, sz, parts))
    return onnx__node_error(c, ASG_ERR_SHAPE, "%s", asg_last_error());
  for (int i = 0; i < nout; i++)
    out[i].t = parts[i];
  return ASG_OK;
}

ONNX_OP(onnx__op_expand) {
  UNUSED;
  NEED(2);
  int64_t v[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__host_ints(c, in[1], "shape", v, ASG_MAX_DIMS, &k);
  if (st) return st;
  asg_shape xs = asg_tensor_shape(T(0));
  int r = k > xs.ndim ? k : xs.ndim;
  asg_shape s = {r, {0}};
  for (int i = 0; i < r; i++) { /* bidirectional: 1 in the shape keeps x's dim */
    int64_t a = i - (r - xs.ndim) >= 0 ? xs.dims[i - (r - xs.ndim)] : 1;
    int64_t b = i - (r - k) >= 0 ? v[i - (r - k)] : 1;
    s.dims[i] = b == 1 ? a : b;
  }
  DONE(asg_broadcast_to(T(0), s));
}

ONNX_OP(onnx__op_shape) {
  UNUSED;
  NEED(1);
  asg_shape s = T(0) ? asg_tensor_shape(T(0)) : in[0]->host.shape; /* an empty value: host only */
  int64_t lo = onnx__attr_int(n, "start", 0), hi = onnx__attr_int(n, "end", s.ndim);
  if (lo < 0) lo += s.ndim;
  if (hi < 0) hi += s.ndim;
  lo = lo < 0 ? 0 : lo > s.ndim ? s.ndim : lo;
  hi = hi < lo ? lo : hi > s.ndim ? s.ndim : hi;
  for (int64_t i = lo; i < hi; i++)
    if (asg_dim_is_symbolic(s.dims[i])) UNSUP("Shape of a symbolic dim");
  return onnx__host_result(c, out, s.dims + lo, (int)(hi - lo), false);
}

ONNX_OP(onnx__op_size) {
  UNUSED;
  NEED(1);
  int64_t k = asg_shape_numel(T(0) ? asg_tensor_shape(T(0)) : in[0]->host.shape);
  if (k < 0) UNSUP("Size of a symbolic shape");
  return onnx__host_result(c, out, &k, 1, true);
}

ONNX_OP(onnx__op_constant) {
  UNUSED;
  const Onnx__AttributeProto *a = n->n_attribute == 1 ? n->attribute[0] : NULL;
  if (!a || !a->name) return onnx__node_error(c, ASG_ERR_FORMAT, "needs exactly one attribute");
  asg_host_tensor h = {0};
  if (!strcmp(a->name, "value") && a->t) {
    asg_status st = onnx__tensor_host(c, a->t, "value", &h, &out[0].is_bool);
    if (st) return onnx__node_error(c, st, "%s", asg_last_error());
    out[0].onnx_type = a->t->data_type;
  } else if (!strcmp(a->name, "value_float") || !strcmp(a->name, "value_floats")) {
    size_t k = a->has_f ? 1 : a->n_floats;
    h = (asg_host_tensor){ASG_F32, a->has_f ? ASG_SCALAR : ASG_SHAPE((int64_t)k),
                          malloc(4 * k + 4)};
    if (!h.data) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    if (a->has_f)
      ((float *)h.data)[0] = a->f;
    else if (k)
      memcpy(h.data, a->floats, 4 * k);
  } else if (!strcmp(a->name, "value_int") || !strcmp(a->name, "value_ints")) {
    size_t k = a->has_i ? 1 : a->n_ints;
    if (k > ONNX_MAX_ATTR_INTS) return onnx__node_error(c, ASG_ERR_FORMAT, "%zu ints", k);
    int64_t *v = a->has_i ? &((Onnx__AttributeProto *)a)->i : a->ints;
    return onnx__host_result(c, out, v, (int)k, a->has_i);
  } else
    UNSUP("attribute '%s'", a->name);
  out[0].host = h;
  out[0].has_host = true;
  if (asg_shape_numel(h.shape) == 0) return ASG_OK; /* empty: known on the host only */
  out[0].t = asg_constant(c->g, h.dtype, h.shape, h.data);
  if (!out[0].t) return onnx__build_error(c);
  return ASG_OK;
}

asg_status onnx__fill_value(onnx_ctx *c, const Onnx__NodeProto *n, asg_dtype *dt, double *val,
                            bool *is_bool) {
  const Onnx__AttributeProto *a = onnx__attr(n, "value");
  asg_host_tensor h = {ASG_F32, ASG_SCALAR, NULL};
  *dt = ASG_F32, *val = 0;
  if (!a || !a->t) return ASG_OK;
  asg_status st = onnx__tensor_host(c, a->t, "value", &h, is_bool);
  if (st) return onnx__node_error(c, st, "%s", asg_last_error());
  if (asg_shape_numel(h.shape) != 1) {
    free(h.data);
    return onnx__node_error(c, ASG_ERR_FORMAT, "value must have one element");
  }
  *dt = h.dtype;
  *val = h.dtype == ASG_F32   ? ((float *)h.data)[0]
         : h.dtype == ASG_F64 ? ((double *)h.data)[0]
         : h.dtype == ASG_I32 ? ((int32_t *)h.data)[0]
                              : (double)((int64_t *)h.data)[0];
  free(h.data);
  return ASG_OK;
}

ONNX_OP(onnx__op_constant_of_shape) {
  UNUSED;
  NEED(1);
  int64_t v[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__host_ints(c, in[0], "shape", v, ASG_MAX_DIMS, &k);
  if (st) return st;
  asg_shape s = {k, {0}};
  for (int i = 0; i < k; i++) {
    if (v[i] < 0) return onnx__node_error(c, ASG_ERR_SHAPE, "shape[%d] = %lld", i, (long long)v[i]);
    if (!v[i]) UNSUP("an empty result (ASG has no empty tensors)");
    s.dims[i] = v[i];
  }
  asg_dtype dt;
  double val;
  st = onnx__fill_value(c, n, &dt, &val, &out[0].is_bool);
  if (st) return st;
  DONE(asg_fill(c->g, dt, s, val));
}

ONNX_OP(onnx__op_range) {
  UNUSED;
  NEED(3);
  for (int i = 0; i < 3; i++)
    if (!in[i]->has_host)
      UNSUP("input '%s' must be known at import time (an initializer or Constant)", in[i]->name);
  asg_dtype dt = in[0]->host.dtype;
  double a[3];
  for (int i = 0; i < 3; i++) {
    asg_host_tensor *h = &in[i]->host;
    a[i] = h->dtype == ASG_F32   ? ((float *)h->data)[0]
           : h->dtype == ASG_F64 ? ((double *)h->data)[0]
           : h->dtype == ASG_I32 ? ((int32_t *)h->data)[0]
                                 : (double)((int64_t *)h->data)[0];
  }
  if (a[2] == 0 || !isfinite(a[0]) || !isfinite(a[1]) || !isfinite(a[2]))
    UNSUP("delta 0 or not finite");
  double cnt = ceil((a[1] - a[0]) / a[2]);
  int64_t k = cnt > 0 ? (int64_t)cnt : 0;
  if (k > 1 << 24) UNSUP("%lld elements", (long long)k);
  double *v = malloc(8 * (size_t)(k + 1));
  if (!v) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  for (int64_t i = 0; i < k; i++)
    v[i] = a[0] + (double)i * a[2];
  asg_tensor *t = asg_constant(c->g, ASG_F64, ASG_SHAPE(k), v);
  free(v);
  DONE(asg_cast(t, dt));
}

#endif
