/* ONNX export (docs/onnx.md "Export"): the nodes that the given outputs
 * depend on become an ONNX model written with protobuf-c.
 *
 * Every ASG node maps to one or a few ONNX nodes of the default domain
 * (opset 17 to 21). Values are named after their node ("scope/op_id"),
 * inputs and variables keep their names, and the model's outputs are
 * Identity nodes named as the caller asks. Symbolic dims are written as
 * dim_param with the dim's text ("B", "B*2"). All protobuf messages are
 * allocated from a list freed once the file is written. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "asg/onnx.h"
#include "core/internal.h"

#ifdef ASG_HAVE_ONNX
#include "core/symbol.h"
#include "io/onnx_export.h"

#define EX_OPSET_DEFAULT 18
#define EX_OPSET_MIN 17
#define EX_OPSET_MAX 21

void *ex_alloc(ex *e, size_t bytes) {
  if (e->oom) return NULL;
  if (e->nmem == e->capmem) {
    size_t cap = e->capmem ? e->capmem * 2 : 256;
    void **m = realloc(e->mem, cap * sizeof *m);
    if (!m) return e->oom = true, NULL;
    e->mem = m, e->capmem = cap;
  }
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p) return e->oom = true, NULL;
  return e->mem[e->nmem++] = p;
}

char *ex_str(ex *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *s = n >= 0 ? ex_alloc(e, (size_t)n + 1) : NULL;
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

static void ex_free(ex *e) {
  for (size_t i = 0; i < e->nmem; i++)
    free(e->mem[i]);
  free(e->mem);
  free(e->nodes);
  free(e->inits);
  free(e->val);
}

static bool ex_push(ex *e, void ***arr, size_t *n, size_t *cap, void *item) {
  if (!item) return false;
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 64;
    void **a = realloc(*arr, c * sizeof *a);
    if (!a) return e->oom = true, false;
    *arr = a, *cap = c;
  }
  (*arr)[(*n)++] = item;
  return true;
}

/* "scope/op_id" of the current node (the scope is omitted at top level). */
static char *ex_node_label(ex *e, const asg_tensor *t) {
  const char *sc = t->scope ? t->scope : "";
  return ex_str(e, "%s%s%s_%d", sc, *sc ? "/" : "", asg__op_name(t->op), t->id);
}

asg_status ex_unsup(ex *e, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const asg_tensor *t = e->cur;
  const char *sc = t->scope ? t->scope : "";
  return asg__error(ASG_ERR_UNSUPPORTED, "asg_onnx_export: node '%s%s%s_%d' (%s): %s", sc,
                    *sc ? "/" : "", asg__op_name(t->op), t->id, asg__op_name(t->op), msg);
}

int32_t ex_type(asg_dtype dt) {
  switch (dt) {
  case ASG_F32: return 1;
  case ASG_F64: return 11;
  case ASG_I32: return 6;
  case ASG_I64: return 7;
  case ASG_F16: return 10;
  case ASG_BF16: return 16;
  default: return 0;
  }
}

/* ---- building ONNX nodes ---- */

/* A node of the current ASG node: op with inputs ins; its one output is
 * named out, or (out NULL) a fresh helper name. Returns the node (NULL when
 * out of memory). */
Onnx__NodeProto *ex_node(ex *e, const char *op, int nin, const char *const *ins, const char *out) {
  Onnx__NodeProto *n = ex_alloc(e, sizeof *n);
  char **in = ex_alloc(e, sizeof(char *) * (size_t)(nin ? nin : 1));
  char **o = ex_alloc(e, sizeof(char *));
  char *label = ex_node_label(e, e->cur);
  if (!n || !in || !o || !label) return NULL;
  onnx__node_proto__init(n);
  int k = e->sub++;
  n->name = k ? ex_str(e, "%s/%s_%d", label, op, k) : label;
  n->op_type = (char *)op;
  n->domain = (char *)"";
  for (int i = 0; i < nin; i++)
    in[i] = (char *)ins[i];
  n->n_input = (size_t)nin, n->input = in;
  o[0] = out ? (char *)out : ex_str(e, "%s:%d", label, k);
  n->n_output = 1, n->output = o;
  if (!n->name || !o[0] || !ex_push(e, (void ***)&e->nodes, &e->nn, &e->capn, n)) return NULL;
  return n;
}

static Onnx__AttributeProto *ex_attr(ex *e, Onnx__NodeProto *n, const char *name) {
  if (!n) return NULL;
  Onnx__AttributeProto *a = ex_alloc(e, sizeof *a);
  Onnx__AttributeProto **arr = ex_alloc(e, sizeof *arr * (n->n_attribute + 1));
  if (!a || !arr) return NULL;
  onnx__attribute_proto__init(a);
  a->name = (char *)name;
  a->has_type = 1;
  for (size_t i = 0; i < n->n_attribute; i++)
    arr[i] = n->attribute[i];
  arr[n->n_attribute++] = a;
  n->attribute = arr; /* the old array stays in the list until ex_free */
  return a;
}

void ex_attr_int(ex *e, Onnx__NodeProto *n, const char *name, int64_t v) {
  Onnx__AttributeProto *a = ex_attr(e, n, name);
  if (a) a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, a->has_i = 1, a->i = v;
}

void ex_attr_float(ex *e, Onnx__NodeProto *n, const char *name, double v) {
  Onnx__AttributeProto *a = ex_attr(e, n, name);
  if (a) a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, a->has_f = 1, a->f = (float)v;
}

void ex_attr_ints(ex *e, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v) {
  Onnx__AttributeProto *a = ex_attr(e, n, name);
  int64_t *d = ex_alloc(e, sizeof *d * (size_t)(cnt ? cnt : 1));
  if (!a || !d) return;
  if (cnt) memcpy(d, v, sizeof *d * (size_t)cnt);
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, a->n_ints = (size_t)cnt, a->ints = d;
}

/* An initializer named name (NULL: a fresh name) holding data (copied). */
const char *ex_init(ex *e, const char *name, asg_dtype dt, int ndim, const int64_t *dims,
                    const void *data) {
  Onnx__TensorProto *tp = ex_alloc(e, sizeof *tp);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++)
    n *= dims[i];
  size_t bytes = (size_t)n * asg_dtype_size(dt);
  int64_t *d = ex_alloc(e, sizeof *d * (size_t)(ndim ? ndim : 1));
  uint8_t *raw = ex_alloc(e, bytes);
  if (!tp || !d || !raw) return NULL;
  onnx__tensor_proto__init(tp);
  if (ndim) memcpy(d, dims, sizeof *d * (size_t)ndim); /* dims is NULL for scalars */
  if (bytes) memcpy(raw, data, bytes);
  tp->n_dims = (size_t)ndim, tp->dims = d;
  tp->has_data_type = 1, tp->data_type = ex_type(dt);
  tp->has_raw_data = 1, tp->raw_data.len = bytes, tp->raw_data.data = raw;
  tp->name = name ? (char *)name : ex_str(e, "const_%zu", e->ni);
  if (!tp->name || !ex_push(e, (void ***)&e->inits, &e->ni, &e->capi, tp)) return NULL;
  return tp->name;
}

const char *ex_ints(ex *e, int n, const int64_t *v) {
  int64_t dims[1] = {n};
  return ex_init(e, NULL, ASG_I64, 1, dims, v);
}

/* A rank-0 constant of dtype dt. */
const char *ex_scalar(ex *e, asg_dtype dt, double v) {
  union {
    float f;
    double d;
    int32_t i;
    int64_t l;
  } u;
  switch (dt) {
  case ASG_F32: u.f = (float)v; break;
  case ASG_F64: u.d = v; break;
  case ASG_I32:
    u.i = isnan(v) ? 0 : v <= INT32_MIN ? INT32_MIN : v >= INT32_MAX ? INT32_MAX : (int32_t)v;
    break;
  case ASG_I64:
    u.l = isnan(v) ? 0 : v <= -9.2e18 ? INT64_MIN : v >= 9.2e18 ? INT64_MAX : (int64_t)v;
    break;
  default: return NULL;
  }
  return ex_init(e, NULL, dt, 0, NULL, &u);
}

/* Shorthands for the common forms (a NULL input propagates NULL). */
const char *ex1(ex *e, const char *op, const char *a, const char *out) {
  if (!a) return NULL;
  Onnx__NodeProto *n = ex_node(e, op, 1, &a, out);
  return n ? n->output[0] : NULL;
}

const char *ex2(ex *e, const char *op, const char *a, const char *b, const char *out) {
  if (!a || !b) return NULL;
  const char *in[2] = {a, b};
  Onnx__NodeProto *n = ex_node(e, op, 2, in, out);
  return n ? n->output[0] : NULL;
}

const char *ex_cast(ex *e, const char *a, int32_t to, const char *out) {
  if (!a) return NULL;
  Onnx__NodeProto *n = ex_node(e, "Cast", 1, &a, out);
  ex_attr_int(e, n, "to", to);
  return n ? n->output[0] : NULL;
}

/* ---- shapes ---- */

static Onnx__ValueInfoProto *ex_value_info(ex *e, const char *name, asg_dtype dt, asg_shape s) {
  Onnx__ValueInfoProto *vi = ex_alloc(e, sizeof *vi);
  Onnx__TypeProto *tp = ex_alloc(e, sizeof *tp);
  Onnx__TypeProto__Tensor *tt = ex_alloc(e, sizeof *tt);
  Onnx__TensorShapeProto *sp = ex_alloc(e, sizeof *sp);
  Onnx__TensorShapeProto__Dimension **dims = ex_alloc(e, sizeof *dims * (size_t)(s.ndim + 1));
  if (!vi || !tp || !tt || !sp || !dims) return NULL;
  onnx__value_info_proto__init(vi);
  onnx__type_proto__init(tp);
  onnx__type_proto__tensor__init(tt);
  onnx__tensor_shape_proto__init(sp);
  for (int i = 0; i < s.ndim; i++) {
    Onnx__TensorShapeProto__Dimension *d = ex_alloc(e, sizeof *d);
    if (!d) return NULL;
    onnx__tensor_shape_proto__dimension__init(d);
    if (asg__dim_is_sym(s.dims[i])) {
      char buf[256];
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = ex_str(e, "%s", asg__dim_str(e->g, s.dims[i], buf, sizeof buf));
      if (!d->dim_param) return NULL;
    } else {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = s.dims[i];
    }
    dims[i] = d;
  }
  sp->n_dim = (size_t)s.ndim, sp->dim = dims;
  tt->has_elem_type = 1, tt->elem_type = ex_type(dt), tt->shape = sp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
  vi->name = (char *)name, vi->type = tp;
  return vi;
}

/* The shape operand of Reshape: static dims as they are, a symbolic dim
 * equal to the input's dim at the same position as 0 (copy), at most one
 * other symbolic dim as -1 (inferred). */
const char *ex_reshape_shape(ex *e, const asg_tensor *x, asg_shape s) {
  int64_t v[ASG_MAX_DIMS];
  int infer = 0;
  for (int i = 0; i < s.ndim; i++) {
    if (!asg__dim_is_sym(s.dims[i]))
      v[i] = s.dims[i];
    else if (i < x->shape.ndim && x->shape.dims[i] == s.dims[i])
      v[i] = 0;
    else if (!infer++)
      v[i] = -1;
    else
      return ex_unsup(e, "more than one new symbolic dimension in the target shape"), NULL;
  }
  for (int i = 0; i < s.ndim; i++) /* a 0 copies; a real 0-sized dim is not ASG's case */
    if (v[i] == 0 && !asg__dim_is_sym(s.dims[i])) return ex_unsup(e, "zero-sized dimension"), NULL;
  return ex_ints(e, s.ndim, v);
}

/* ---- sources ---- */

static asg_status ex_source(ex *e, const asg_tensor *t, const char *label) {
  asg_shape s = t->shape;
  int64_t dims[ASG_MAX_DIMS];
  for (int i = 0; i < s.ndim; i++)
    dims[i] = s.dims[i];
  if (t->op == ASG_OP_INPUT) {
    e->val[t->id] = (char *)t->name;
    return ASG_OK;
  }
  if (t->op == ASG_OP_CONSTANT) {
    e->val[t->id] = (char *)ex_init(e, label, t->dtype, s.ndim, dims, t->data);
    return ASG_OK;
  }
  if (!asg__shape_is_static(s))
    return ex_unsup(e, "a %s of symbolic shape", t->op == ASG_OP_FILL ? "fill" : "variable");
  if (t->op == ASG_OP_FILL && t->attr.i[0])
    return ex_unsup(e, "a fill computed from symbolic dimensions");
  size_t bytes = (size_t)asg_shape_numel(s) * asg_dtype_size(t->dtype);
  void *buf = malloc(bytes ? bytes : 1);
  if (!buf) return ASG_ERR_OOM;
  asg_status st;
  const char *name = label;
  if (t->op == ASG_OP_FILL) {
    st = asg_init_fill(asg_init_constant(t->attr.f[0]), t->dtype, s, 0, buf);
  } else {
    name = t->name; /* the program's values, else those it would start from */
    st = e->o.program ? asg_program_get_variable(e->o.program, t->name, buf, bytes)
                      : asg_init_fill(t->init, t->dtype, s, 0, buf);
    if (st) st = asg__error(st, "asg_onnx_export: variable '%s': %s", t->name, asg_last_error());
  }
  if (!st) {
    e->val[t->id] = (char *)ex_init(e, name, t->dtype, s.ndim, dims, buf);
    if (!e->val[t->id]) st = ASG_ERR_OOM;
  }
  free(buf);
  return st;
}

static bool ex_name_taken(ex *e, const char *name, int upto_output, char *const *outs) {
  for (size_t i = 0; i < e->ni; i++)
    if (!strcmp(e->inits[i]->name, name)) return true;
  for (int i = 0; i < e->g->n_nodes; i++)
    if (e->val[i] && !strcmp(e->val[i], name)) return true;
  for (int i = 0; i < upto_output; i++)
    if (!strcmp(outs[i], name)) return true;
  return false;
}

static asg_status ex_write(Onnx__ModelProto *m, const char *path) {
  size_t n = onnx__model_proto__get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return asg__error(ASG_ERR_OOM, "asg_onnx_export: out of memory (%zu bytes)", n);
  onnx__model_proto__pack(m, buf);
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(buf, 1, n, f) == n;
  if (f && fclose(f)) ok = false;
  free(buf);
  if (!ok) return asg__error(ASG_ERR_IO, "asg_onnx_export: cannot write '%s'", path);
  return ASG_OK;
}

static asg_status ex_run(ex *e, int n_outputs, asg_tensor *const *outputs, const char *path) {
  asg_graph *g = e->g;
  bool *need = calloc((size_t)g->n_nodes + 1, sizeof *need);
  e->val = calloc((size_t)g->n_nodes + 1, sizeof *e->val);
  char **outs = ex_alloc(e, sizeof *outs * (size_t)n_outputs);
  Onnx__ValueInfoProto **gin = ex_alloc(e, sizeof *gin * (size_t)g->n_nodes);
  Onnx__ValueInfoProto **gout = ex_alloc(e, sizeof *gout * (size_t)n_outputs);
  size_t n_gin = 0;
  asg_status st = ASG_OK;
  if (!need || !e->val || !outs || !gin || !gout) st = ASG_ERR_OOM;
  for (int i = 0; !st && i < n_outputs; i++)
    need[outputs[i]->id] = true;
  for (int i = g->n_nodes - 1; !st && i >= 0; i--)
    if (need[i])
      for (int k = 0; k < g->nodes[i]->n_in; k++)
        need[g->nodes[i]->in[k]->id] = true;
  for (int i = 0; !st && i < g->n_nodes; i++) {
    const asg_tensor *t = g->nodes[i];
    if (!need[i]) continue;
    e->cur = t, e->sub = 0;
    char *label = ex_node_label(e, t);
    if (!label)
      st = ASG_ERR_OOM;
    else if (t->op == ASG_OP_INPUT || t->op == ASG_OP_CONSTANT || t->op == ASG_OP_VARIABLE ||
             t->op == ASG_OP_FILL) {
      st = ex_source(e, t, label);
      if (!st && t->op == ASG_OP_INPUT &&
          !(gin[n_gin++] = ex_value_info(e, t->name, t->dtype, t->shape)))
        st = ASG_ERR_OOM;
    } else if (!ex_type(t->dtype))
      st = ex_unsup(e, "dtype %s has no ONNX type", asg_dtype_name(t->dtype));
    else {
      st = ex_op(e, t, label);
      e->val[i] = label;
    }
  }
  for (int i = 0; !st && i < n_outputs; i++) {
    const asg_tensor *t = outputs[i];
    const char *want = e->o.output_names ? e->o.output_names[i] : NULL;
    outs[i] = want ? ex_str(e, "%s", want) : ex_str(e, "output%d", i);
    if (!outs[i]) {
      st = ASG_ERR_OOM;
      break;
    }
    if (!*outs[i] || ex_name_taken(e, outs[i], i, outs)) {
      st = asg__error(ASG_ERR_INVALID, "asg_onnx_export: output %d: name '%s' is %s", i, outs[i],
                      *outs[i] ? "already used by another value" : "empty");
      break;
    }
    e->cur = t, e->sub = 1; /* a helper-style name under the node's label */
    Onnx__NodeProto *n = ex_node(e, "Identity", 1, (const char *const *)&e->val[t->id], outs[i]);
    if (!n || !(gout[i] = ex_value_info(e, outs[i], t->dtype, t->shape))) st = ASG_ERR_OOM;
  }
  free(need);
  if (st == ASG_ERR_OOM || (!st && e->oom))
    return asg__error(ASG_ERR_OOM, "asg_onnx_export: out of memory");
  if (st) return st;

  Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
  gp.name = (char *)(e->o.graph_name ? e->o.graph_name : "asg");
  gp.n_node = e->nn, gp.node = e->nodes;
  gp.n_initializer = e->ni, gp.initializer = e->inits;
  gp.n_input = n_gin, gp.input = gin;
  gp.n_output = (size_t)n_outputs, gp.output = gout;
  Onnx__OperatorSetIdProto ops = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsp = &ops;
  ops.domain = (char *)"", ops.has_version = 1, ops.version = e->o.opset;
  Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
  /* the IR version that introduced the opset (onnx/helper.py's table) */
  m.has_ir_version = 1, m.ir_version = e->o.opset <= 18 ? 8 : e->o.opset <= 20 ? 9 : 10;
  m.n_opset_import = 1, m.opset_import = &opsp;
  m.producer_name = (char *)"asg";
  m.graph = &gp;
  return ex_write(&m, path);
}

asg_status asg_onnx_export(asg_graph *g, int n_outputs, asg_tensor *const *outputs,
                           const char *path, const asg_onnx_export_opts *o) {
  if (!g || g->magic != ASG_GRAPH_MAGIC)
    return asg__error(ASG_ERR_INVALID, "asg_onnx_export: graph is NULL or freed");
  if (g->status != ASG_OK)
    return asg__error(ASG_ERR_GRAPH, "asg_onnx_export: the graph carries an error: %s", g->err);
  if (!path) return asg__error(ASG_ERR_INVALID, "asg_onnx_export: path is NULL");
  if (n_outputs < 1 || !outputs)
    return asg__error(ASG_ERR_INVALID, "asg_onnx_export: need at least one output, got %d",
                      n_outputs);
  for (int i = 0; i < n_outputs; i++)
    if (!outputs[i] || outputs[i]->magic != ASG_NODE_MAGIC || outputs[i]->graph != g)
      return asg__error(ASG_ERR_INVALID, "asg_onnx_export: output %d is %s", i,
                        outputs[i] ? "not a tensor of this graph" : "NULL");
  ex e;
  memset(&e, 0, sizeof e);
  e.g = g;
  if (o) e.o = *o;
  if (!e.o.opset) e.o.opset = EX_OPSET_DEFAULT;
  if (e.o.opset < EX_OPSET_MIN || e.o.opset > EX_OPSET_MAX)
    return asg__error(ASG_ERR_UNSUPPORTED, "asg_onnx_export: opset %d not in [%d, %d]", e.o.opset,
                      EX_OPSET_MIN, EX_OPSET_MAX);
  asg_status st = ex_run(&e, n_outputs, outputs, path);
  ex_free(&e);
  return st;
}

#else /* !ASG_HAVE_ONNX */

asg_status asg_onnx_export(asg_graph *g, int n_outputs, asg_tensor *const *outputs,
                           const char *path, const asg_onnx_export_opts *o) {
  (void)g, (void)n_outputs, (void)outputs, (void)path, (void)o;
  return asg__error(ASG_ERR_UNSUPPORTED, "asg_onnx_export: built without ONNX (protobuf-c)");
}

#endif
