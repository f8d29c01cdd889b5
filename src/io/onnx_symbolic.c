/* Shape arithmetic on symbolic dims at ONNX import (docs/onnx.md).
 *
 * Exporters write shape-dependent code as ONNX ops: torch's x.view(x.size(0),
 * -1) becomes Shape -> Gather -> Unsqueeze -> Concat -> Reshape, and with a
 * dynamic batch or sequence axis the Shape reads a symbolic dim. Such values
 * are kept at import as small int64 vectors whose elements may be ASG dim
 * expressions (onnx_val.sym marks which), and the ops on them are evaluated
 * here with the graph's dim arithmetic. Reshape, Expand, ConstantOfShape,
 * Slice and Range then build with symbolic shapes, so one program runs any
 * batch or sequence length. Every such value also has a run-time tensor
 * (a symbolic element is the sum of a fill of that many ones) for ops that
 * use it as data. An op this file does not evaluate sees these inputs as
 * run-time tensors only, never their host values. */
#ifdef ASG_HAVE_ONNX
#include <stdlib.h>
#include <string.h>

#include "core/symbol.h"
#include "io/onnx_internal.h"

#define SYM_MAX 64 /* elements of a value with symbolic elements (bits of onnx_val.sym) */
/* Length of the ramp that Range with a symbolic count slices (a longer one
 * fails when the dims are bound, naming the slice). */
#define SYM_RANGE_MAX 65536

/* A value known at import: k int64 elements (symbolic ones marked in *mask). */
typedef struct symv {
  int64_t v[SYM_MAX];
  uint64_t mask;
  int k;
  bool scalar;
} symv;

static bool get(onnx_ctx *c, const onnx_val *x, symv *s) {
  if (!onnx__small_int(x)) return false;
  int64_t k = asg_shape_numel(x->host.shape);
  if (k > SYM_MAX || onnx__host_ints(c, x, "value", s->v, SYM_MAX, &s->k)) {
    asg_clear_error();
    return false;
  }
  s->mask = x->sym;
  s->scalar = x->host.shape.ndim == 0;
  return true;
}

static bool is_sym(const symv *s, int i) { return i < SYM_MAX && (s->mask >> i & 1); }

/* The run-time I64 tensor of s: constants as they are, a symbolic dim d as
 * sum(fill([d], 1)). */
static asg_tensor *runtime(onnx_ctx *c, const symv *s) {
  asg_tensor *parts[SYM_MAX];
  for (int i = 0; i < s->k; i++) {
    if (!is_sym(s, i)) {
      parts[i] = asg_constant(c->g, ASG_I64, ASG_SHAPE(1), &s->v[i]);
      continue;
    }
    asg_tensor *ones = asg_fill(c->g, ASG_I64, ASG_SHAPE(s->v[i]), 1);
    parts[i] = asg_reshape(asg_sum(ones, ASG_ALL_AXES, false), ASG_SHAPE(1));
  }
  asg_tensor *t = s->k == 1 ? parts[0] : asg_concat(parts, s->k, 0);
  return s->scalar ? asg_reshape(t, ASG_SCALAR) : t;
}

/* Sets o to s: the host value (symbolic elements marked) and its tensor. */
static asg_status put(onnx_ctx *c, onnx_val *o, const symv *s) {
  uint64_t mask = 0;
  for (int i = 0; i < s->k; i++)
    if (is_sym(s, i) && asg__dim_is_sym(s->v[i])) mask |= (uint64_t)1 << i;
  if (!mask) return onnx__host_result(c, o, s->v, s->k, s->scalar);
  asg_host_tensor h = {ASG_I64, s->scalar ? ASG_SCALAR : ASG_SHAPE(s->k),
                       malloc(8 * (size_t)(s->k + 1))};
  if (!h.data) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  memcpy(h.data, s->v, 8 * (size_t)s->k);
  symv t = *s;
  t.mask = mask;
  o->t = runtime(c, &t);
  o->host = h;
  o->has_host = true;
  o->sym = mask;
  if (!o->t) return onnx__build_error(c);
  return ASG_OK;
}

static bool is_op(const Onnx__NodeProto *n, const char *op) { return !strcmp(n->op_type, op); }

/* Shape of a tensor with symbolic dims. */
static asg_status shape_of(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val *x, onnx_val *o,
                           bool *done) {
  asg_shape s = asg_tensor_shape(x->t);
  int64_t lo = onnx__attr_int(n, "start", 0), hi = onnx__attr_int(n, "end", s.ndim);
  if (lo < 0) lo += s.ndim;
  if (hi < 0) hi += s.ndim;
  lo = lo < 0 ? 0 : lo > s.ndim ? s.ndim : lo;
  hi = hi < lo ? lo : hi > s.ndim ? s.ndim : hi;
  symv r = {.k = (int)(hi - lo)};
  for (int64_t i = lo; i < hi; i++) {
    r.v[i - lo] = s.dims[i];
    if (asg__dim_is_sym(s.dims[i])) r.mask |= (uint64_t)1 << (i - lo);
  }
  if (!r.mask) return ASG_OK; /* static: onnx_ops_shape.c */
  *done = true;
  return put(c, o, &r);
}

/* a op b for two elements (symbolic or not); false when not expressible. */
static bool arith(onnx_ctx *c, char op, int64_t a, bool sa, int64_t b, bool sb, int64_t *r,
                  bool *sr) {
  *sr = sa || sb;
  if (!*sr) {
    switch (op) {
    case '+': *r = a + b; return true;
    case '-': *r = a - b; return true;
    case '*': *r = a * b; return true;
    default:
      if (b == 0) return false;
      *r = a / b; /* ONNX integer Div truncates */
      return true;
    }
  }
  /* symbolic dims are >= 0; constants must be too for the dim arithmetic */
  if ((!sa && a < 0) || (!sb && b < 0)) return false;
  switch (op) {
  case '+': *r = asg__dim_add(c->g, a, b); break;
  case '-': *r = asg__dim_sub(c->g, a, b); break;
  case '*': *r = asg__dim_mul(c->g, a, b); break;
  default:
    if (sb || b == 0) return false;
    *r = asg__dim_floordiv(c->g, a, b);
    break;
  }
  if (asg_graph_status(c->g)) return false;
  *sr = asg__dim_is_sym(*r);
  return true;
}

static asg_status elementwise(onnx_ctx *c, char op, const symv *a, const symv *b, onnx_val *o,
                              bool *done) {
  if (a->k != b->k && a->k != 1 && b->k != 1) return ASG_OK;
  symv r = {.k = a->k > b->k ? a->k : b->k, .scalar = a->scalar && b->scalar};
  for (int i = 0; i < r.k; i++) {
    int ia = a->k == 1 ? 0 : i, ib = b->k == 1 ? 0 : i;
    bool s;
    if (!arith(c, op, a->v[ia], is_sym(a, ia), b->v[ib], is_sym(b, ib), &r.v[i], &s)) {
      if (asg_graph_status(c->g)) return onnx__build_error(c);
      return ASG_OK;
    }
    if (s) r.mask |= (uint64_t)1 << i;
  }
  *done = true;
  return put(c, o, &r);
}

/* A dim of a shape argument: symbolic elements as they are, others >= 0
 * (0 and -1 are handled by the caller). */
static asg_status to_shape(onnx_ctx *c, const symv *s, asg_shape *out) {
  if (s->k > ASG_MAX_DIMS) return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "rank %d", s->k);
  out->ndim = s->k;
  for (int i = 0; i < s->k; i++)
    out->dims[i] = s->v[i];
  return ASG_OK;
}

static asg_status reshape(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val *x, const symv *s,
                          onnx_val *o) {
  asg_shape xs = asg_tensor_shape(x->t), t;
  asg_status st = to_shape(c, s, &t);
  if (st) return st;
  bool allowzero = onnx__attr_int(n, "allowzero", 0) != 0;
  for (int i = 0; i < s->k; i++) {
    if (is_sym(s, i)) continue;
    if (s->v[i] == 0 && !allowzero) {
      if (i >= xs.ndim) return onnx__node_error(c, ASG_ERR_SHAPE, "shape[%d] = 0 copies no dim", i);
      t.dims[i] = xs.dims[i];
    } else if (s->v[i] < -1)
      return onnx__node_error(c, ASG_ERR_SHAPE, "shape[%d] = %lld", i, (long long)s->v[i]);
  }
  o->t = asg_reshape(x->t, t);
  return o->t ? ASG_OK : onnx__build_error(c);
}

static asg_status expand(onnx_ctx *c, onnx_val *x, const symv *s, onnx_val *o) {
  asg_shape xs = asg_tensor_shape(x->t);
  if (s->k > ASG_MAX_DIMS) return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "rank %d", s->k);
  int r = s->k > xs.ndim ? s->k : xs.ndim;
  asg_shape t = {r, {0}};
  for (int i = 0; i < r; i++) { /* bidirectional: a 1 in the shape keeps x's dim */
    int ix = i - (r - xs.ndim), is = i - (r - s->k);
    int64_t a = ix >= 0 ? xs.dims[ix] : 1, b = is >= 0 ? s->v[is] : 1;
    t.dims[i] = is >= 0 && !is_sym(s, is) && b == 1 ? a : b;
  }
  o->t = asg_broadcast_to(x->t, t);
  return o->t ? ASG_OK : onnx__build_error(c);
}

static asg_status constant_of_shape(onnx_ctx *c, const Onnx__NodeProto *n, const symv *s,
                                    onnx_val *o) {
  asg_shape t;
  asg_status st = to_shape(c, s, &t);
  if (st) return st;
  for (int i = 0; i < s->k; i++)
    if (!is_sym(s, i) && s->v[i] <= 0)
      return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "shape[%d] = %lld", i, (long long)s->v[i]);
  asg_dtype dt;
  double val;
  st = onnx__fill_value(c, n, &dt, &val, &o->is_bool);
  if (st) return st;
  o->t = asg_fill(c->g, dt, t, val);
  return o->t ? ASG_OK : onnx__build_error(c);
}

/* Range(start, limit, 1) with a symbolic count: a slice of a ramp. */
static asg_status range(onnx_ctx *c, onnx_val **in, onnx_val *o) {
  symv a[3];
  for (int i = 0; i < 3; i++)
    if (!get(c, in[i], &a[i]) || a[i].k != 1)
      return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "input %d must be known at import time", i);
  if (is_sym(&a[0], 0) || is_sym(&a[2], 0) || a[2].v[0] != 1 || a[0].v[0] < 0)
    return onnx__node_error(c, ASG_ERR_UNSUPPORTED,
                            "a symbolic Range needs a constant start >= 0 and delta 1");
  int64_t cnt = asg__dim_sub(c->g, a[1].v[0], a[0].v[0]);
  if (asg_graph_status(c->g)) return onnx__build_error(c);
  if (!c->iota) {
    int32_t *r = malloc(4 * SYM_RANGE_MAX);
    if (!r) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    for (int i = 0; i < SYM_RANGE_MAX; i++)
      r[i] = i;
    c->iota = asg_constant(c->g, ASG_I32, ASG_SHAPE(SYM_RANGE_MAX), r);
    free(r);
    if (!c->iota) return onnx__build_error(c);
  }
  asg_tensor *t = asg__slice_dims(c->iota, 0, a[0].v[0], cnt, 1);
  o->t = t ? asg_cast(t, in[0]->host.dtype) : NULL;
  return o->t ? ASG_OK : onnx__build_error(c);
}

/* Slice of a tensor with symbolic starts or ends (step 1). */
static asg_status slice(onnx_ctx *c, onnx_val **in, int nin, onnx_val *o, bool *done) {
  symv st, en, ax, sp;
  if (!get(c, in[1], &st) || !get(c, in[2], &en) || st.k != en.k) return ASG_OK;
  if (nin > 3 && in[3] && (!get(c, in[3], &ax) || ax.mask || ax.k != st.k)) return ASG_OK;
  if (nin > 4 && in[4] && (!get(c, in[4], &sp) || sp.mask || sp.k != st.k)) return ASG_OK;
  *done = true;
  asg_tensor *y = in[0]->t;
  int r = asg_tensor_shape(y).ndim;
  for (int i = 0; i < st.k; i++) {
    int64_t a = nin > 3 && in[3] ? ax.v[i] : i, step = nin > 4 && in[4] ? sp.v[i] : 1;
    if (a < -r || a >= r) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)a);
    int ai = (int)(a < 0 ? a + r : a);
    int64_t d = asg_tensor_shape(y).dims[ai], s0 = st.v[i], e0 = en.v[i];
    if (!is_sym(&st, i) && !is_sym(&en, i)) {
      y = asg_slice(y, ai, s0, e0, step);
      if (!y) return onnx__build_error(c);
      continue;
    }
    if (step != 1) UNSUP("a step other than 1 with a symbolic start or end");
    /* symbolic bounds are >= 0; constant ones count back as usual */
    if (!is_sym(&st, i) && s0 < 0) s0 = asg__dim_add(c->g, d, s0 < -(1 << 30) ? 0 : s0);
    if (!is_sym(&en, i) && (e0 >= INT32_MAX || (!asg__dim_is_sym(d) && e0 > d)))
      e0 = d;
    else if (!is_sym(&en, i) && e0 < 0) {
      if (!asg__dim_is_sym(d) && -e0 > d) UNSUP("an empty slice (ASG has no empty tensors)");
      e0 = asg__dim_sub(c->g, d, -e0);
    }
    int64_t cnt = asg__dim_sub(c->g, e0, s0);
    if (asg_graph_status(c->g)) return onnx__build_error(c);
    y = asg__slice_dims(y, ai, s0, cnt, 1);
    if (!y) return onnx__build_error(c);
  }
  o->t = y;
  return ASG_OK;
}

/* Ops on (or making) values with symbolic elements; *done when handled. */
static asg_status eval(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin, onnx_val *out,
                       bool *done) {
  onnx_val *x = nin > 0 ? in[0] : NULL;
  if (is_op(n, "Shape")) return x && x->t ? shape_of(c, n, x, out, done) : ASG_OK;
  symv a, b;
  if (is_op(n, "Identity") || is_op(n, "Squeeze") || is_op(n, "Unsqueeze") || is_op(n, "Cast")) {
    if (!x || !x->sym || !get(c, x, &a)) return ASG_OK;
    if (is_op(n, "Cast")) {
      int64_t to = onnx__attr_int(n, "to", 0);
      if (to != ONNX_INT64 && to != ONNX_INT32) return ASG_OK;
    } else if (is_op(n, "Squeeze")) {
      if (a.k != 1) return ASG_OK;
      a.scalar = true;
    } else if (is_op(n, "Unsqueeze")) {
      if (!a.scalar) return ASG_OK;
      a.scalar = false;
    }
    *done = true;
    return put(c, out, &a);
  }
  if (is_op(n, "Gather")) {
    if (nin < 2 || !x || !x->sym || !get(c, x, &a) || a.scalar || !get(c, in[1], &b) || b.mask)
      return ASG_OK;
    symv r = {.k = b.k, .scalar = b.scalar};
    for (int i = 0; i < b.k; i++) {
      int64_t j = b.v[i] < 0 ? b.v[i] + a.k : b.v[i];
      if (j < 0 || j >= a.k) return onnx__node_error(c, ASG_ERR_FORMAT, "index %lld", (long long)j);
      r.v[i] = a.v[j];
      if (is_sym(&a, (int)j)) r.mask |= (uint64_t)1 << i;
    }
    *done = true;
    return put(c, out, &r);
  }
  if (is_op(n, "Concat")) {
    bool any = false;
    symv r = {0};
    for (int i = 0; i < nin; i++) {
      if (!in[i] || !get(c, in[i], &a) || a.scalar || r.k + a.k > SYM_MAX) return ASG_OK;
      for (int j = 0; j < a.k; j++) {
        r.v[r.k] = a.v[j];
        if (is_sym(&a, j)) r.mask |= (uint64_t)1 << r.k, any = true;
        r.k++;
      }
    }
    if (!any) return ASG_OK;
    *done = true;
    return put(c, out, &r);
  }
  static const char *ar[] = {"Add", "Sub", "Mul", "Div"};
  for (int i = 0; i < 4; i++)
    if (is_op(n, ar[i])) {
      if (nin != 2 || !in[0] || !in[1] || !(in[0]->sym || in[1]->sym) || !get(c, in[0], &a) ||
          !get(c, in[1], &b))
        return ASG_OK;
      return elementwise(c, "+-*/"[i], &a, &b, out, done);
    }
  if (is_op(n, "Slice") && x && x->sym && nin >= 3) { /* of a shape value, constant bounds */
    symv s0, e0, ax = {.k = 1}, sp = {.k = 1, .v = {1}};
    if (!get(c, x, &a) || a.scalar || !get(c, in[1], &s0) || !get(c, in[2], &e0) || s0.mask ||
        e0.mask || s0.k != 1 || e0.k != 1 || (nin > 3 && in[3] && !get(c, in[3], &ax)) ||
        (nin > 4 && in[4] && !get(c, in[4], &sp)) || ax.k != 1 || ax.mask || sp.k != 1 || sp.mask ||
        (ax.v[0] != 0 && ax.v[0] != -1) || sp.v[0] == 0)
      return ASG_OK;
    int64_t lo = s0.v[0], hi = e0.v[0], step = sp.v[0], d = a.k;
    lo = lo < 0 ? lo + d : lo, hi = hi < 0 ? hi + d : hi; /* Python's clamping */
    if (step > 0)
      lo = lo < 0 ? 0 : lo > d ? d : lo, hi = hi < 0 ? 0 : hi > d ? d : hi;
    else
      lo = lo < -1 ? -1 : lo > d - 1 ? d - 1 : lo, hi = hi < -1 ? -1 : hi > d - 1 ? d - 1 : hi;
    symv r = {0};
    for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
      r.v[r.k] = a.v[i];
      if (is_sym(&a, (int)i)) r.mask |= (uint64_t)1 << r.k;
      r.k++;
    }
    *done = true;
    return put(c, out, &r);
  }
  if (is_op(n, "Reshape") && nin == 2 && x && x->sym && get(c, x, &a) && get(c, in[1], &b) &&
      !b.mask && ((b.k == 0 && a.k == 1) || (b.k == 1 && (b.v[0] == -1 || b.v[0] == a.k)))) {
    a.scalar = b.k == 0; /* [k], or a one-element value as a scalar */
    *done = true;
    return put(c, out, &a);
  }
  if (is_op(n, "Equal") && nin == 2 && in[0] && in[1] && (in[0]->sym || in[1]->sym) &&
      get(c, in[0], &a) && get(c, in[1], &b) && (a.k == b.k || a.k == 1 || b.k == 1)) {
    /* symbolic dims are >= 0: never equal to a negative constant */
    symv r = {.k = a.k > b.k ? a.k : b.k, .scalar = a.scalar && b.scalar};
    for (int i = 0; i < r.k; i++) {
      int ia = a.k == 1 ? 0 : i, ib = b.k == 1 ? 0 : i;
      bool sa = is_sym(&a, ia), sb = is_sym(&b, ib);
      int64_t va = a.v[ia], vb = b.v[ib];
      if ((sa && sb) || (!sa && !sb))
        r.v[i] = va == vb; /* expressions are interned: equal ids are equal dims */
      else if ((sa ? vb : va) < 0)
        r.v[i] = 0;
      else
        return ASG_OK; /* depends on the binding: a run-time comparison */
      if (sa && sb && va != vb) return ASG_OK;
    }
    *done = true;
    out->is_bool = true;
    return put(c, out, &r);
  }
  if (is_op(n, "Where") && nin == 3 && in[0] && in[1] && in[2] && (in[1]->sym || in[2]->sym)) {
    symv w;
    if (!get(c, in[0], &w) || w.mask || !get(c, in[1], &a) || !get(c, in[2], &b)) return ASG_OK;
    symv r = {.k = w.k, .scalar = w.scalar && a.scalar && b.scalar};
    r.k = r.k > a.k ? r.k : a.k, r.k = r.k > b.k ? r.k : b.k;
    if ((w.k != r.k && w.k != 1) || (a.k != r.k && a.k != 1) || (b.k != r.k && b.k != 1))
      return ASG_OK;
    for (int i = 0; i < r.k; i++) {
      const symv *p = w.v[w.k == 1 ? 0 : i] ? &a : &b;
      int j = p->k == 1 ? 0 : i;
      r.v[i] = p->v[j];
      if (is_sym(p, j)) r.mask |= (uint64_t)1 << i;
    }
    *done = true;
    return put(c, out, &r);
  }
  /* consumers of a symbolic shape argument */
  if (is_op(n, "Reshape") && nin == 2 && x && in[1] && in[1]->sym && get(c, in[1], &a))
    return *done = true, reshape(c, n, x, &a, out);
  if (is_op(n, "Expand") && nin == 2 && x && in[1] && in[1]->sym && get(c, in[1], &a))
    return *done = true, expand(c, x, &a, out);
  if (is_op(n, "ConstantOfShape") && x && x->sym && get(c, x, &a))
    return *done = true, constant_of_shape(c, n, &a, out);
  if (is_op(n, "Range") && nin == 3 && in[0] && in[1] && in[2] &&
      (in[0]->sym || in[1]->sym || in[2]->sym))
    return *done = true, range(c, in, out);
  if (is_op(n, "Slice") && nin >= 3 && x && in[1] && in[2] && (in[1]->sym || in[2]->sym))
    return slice(c, in, nin, out, done);
  return ASG_OK;
}

/* Runs fn; values with symbolic elements are passed as run-time tensors only
 * (their host elements are dim ids, not numbers). */
asg_status onnx__sym_node(onnx_ctx *c, const Onnx__NodeProto *n, onnx_op_fn fn, onnx_val **in,
                          int nin, onnx_val *out, int nout) {
  bool done = false, any = false;
  asg_status st = eval(c, n, in, nin, out, &done);
  if (st || done) return st;
  for (int i = 0; i < nin; i++)
    any = any || (in[i] && in[i]->sym);
  if (!any) return fn(c, n, in, nin, out, nout);
  onnx_val *copy = malloc(sizeof *copy * (size_t)nin);
  onnx_val **ptr = malloc(sizeof *ptr * (size_t)nin);
  if (!copy || !ptr) {
    free(copy), free(ptr);
    return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  }
  for (int i = 0; i < nin; i++) {
    ptr[i] = in[i];
    if (in[i] && in[i]->sym) {
      copy[i] = *in[i];
      copy[i].has_host = false, copy[i].sym = 0;
      ptr[i] = &copy[i];
    }
  }
  st = fn(c, n, ptr, nin, out, nout);
  free(copy), free(ptr);
  return st;
}
#else
typedef int onnx_symbolic_unused; /* ISO C: no empty translation unit */
#endif
