/* ONNX import: the model's graph becomes ASG nodes. Inputs become
 * asg_input (dynamic axes become asg_dim), initializers variables or
 * constants, each node goes through the operator table (onnx_ops.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/onnx.h"
#include "core/internal.h"

#ifndef ASG_HAVE_ONNX
static asg_status no_onnx(void) {
  return asg__error(ASG_ERR_UNSUPPORTED,
                    "onnx: ASG was built without ONNX (protoc-c or "
                    "libprotobuf-c not found, or -DASG_WITH_ONNX=OFF; docs/onnx.md)");
}
asg_status asg_onnx_import(asg_graph *g, const char *path, const asg_onnx_import_opts *o,
                           asg_onnx_model **out) {
  (void)g, (void)path, (void)o;
  if (out) *out = NULL;
  return no_onnx();
}
void asg_onnx_model_free(asg_onnx_model *m) { (void)m; }
int64_t asg_onnx_model_opset(const asg_onnx_model *m) { return (void)m, 0; }
int asg_onnx_model_input_count(const asg_onnx_model *m) { return (void)m, 0; }
asg_tensor *asg_onnx_model_input(const asg_onnx_model *m, int i) { return (void)m, (void)i, NULL; }
const char *asg_onnx_model_input_name(const asg_onnx_model *m, int i) {
  return (void)m, (void)i, NULL;
}
int asg_onnx_model_output_count(const asg_onnx_model *m) { return (void)m, 0; }
asg_tensor *asg_onnx_model_output(const asg_onnx_model *m, int i) { return (void)m, (void)i, NULL; }
const char *asg_onnx_model_output_name(const asg_onnx_model *m, int i) {
  return (void)m, (void)i, NULL;
}
asg_tensor *asg_onnx_model_find(const asg_onnx_model *m, const char *name) {
  return (void)m, (void)name, NULL;
}
asg_status asg_onnx_describe(const char *path, char **text) {
  (void)path;
  if (text) *text = NULL;
  return no_onnx();
}
bool asg_onnx_op_supported(const char *op_type, int64_t opset) {
  return (void)op_type, (void)opset, false;
}
#else
#include "io/onnx_internal.h"

#define ONNX_MIN_OPSET 1  /* per operator: onnx_ops.c says from which opset */
#define ONNX_MAX_OPSET 28 /* the newest of onnx 1.23 */

struct asg_onnx_model {
  onnx_ctx c; /* keeps the value table for asg_onnx_model_find */
  int64_t opset;
  int n_in, n_out;
  int *in_idx, *out_idx; /* into c.vals */
};

onnx_val *onnx__find(onnx_ctx *c, const char *name) {
  for (int i = c->nvals - 1; i >= 0; i--) /* later definitions shadow (subgraph-free files) */
    if (!strcmp(c->vals[i].name, name)) return &c->vals[i];
  return NULL;
}

static onnx_val *add_val(onnx_ctx *c, const char *name) {
  if (c->nvals == c->cap) {
    int cap = c->cap ? 2 * c->cap : 64;
    onnx_val *v = realloc(c->vals, (size_t)cap * sizeof *v);
    if (!v) return NULL;
    c->vals = v, c->cap = cap;
  }
  onnx_val *v = &c->vals[c->nvals];
  memset(v, 0, sizeof *v);
  v->name = asg__strdup(name);
  if (!v->name) return NULL;
  c->nvals++;
  return v;
}

asg_status onnx__node_error(onnx_ctx *c, asg_status s, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const Onnx__NodeProto *n = c->node;
  const char *gerr = asg_graph_error(c->g);
  return asg__error(s, "onnx import: node %d '%s' (%s, opset %lld): %s%s%s", c->node_index,
                    n && n->name ? n->name : "", n && n->op_type ? n->op_type : "?",
                    (long long)c->opset, msg, gerr ? ": " : "", gerr ? gerr : "");
}

asg_status onnx__build_error(onnx_ctx *c) {
  if (asg_graph_status(c->g)) return onnx__node_error(c, ASG_ERR_GRAPH, "building failed");
  return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "an input is empty (ASG has no empty tensors)");
}

const Onnx__AttributeProto *onnx__attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i] && n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
      return n->attribute[i];
  return NULL;
}
int64_t onnx__attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = onnx__attr(n, name);
  return a && a->has_i ? a->i : dflt;
}
double onnx__attr_float(const Onnx__NodeProto *n, const char *name, double dflt) {
  const Onnx__AttributeProto *a = onnx__attr(n, name);
  return a && a->has_f ? a->f : dflt;
}
const char *onnx__attr_str(const Onnx__NodeProto *n, const char *name, const char *dflt) {
  static _Thread_local char buf[256];
  const Onnx__AttributeProto *a = onnx__attr(n, name);
  if (!a || !a->has_s) return dflt;
  size_t k = a->s.len < sizeof buf - 1 ? a->s.len : sizeof buf - 1;
  memcpy(buf, a->s.data, k);
  buf[k] = 0;
  return buf;
}
const int64_t *onnx__attr_ints(const Onnx__NodeProto *n, const char *name, size_t *cnt) {
  const Onnx__AttributeProto *a = onnx__attr(n, name);
  *cnt = a ? a->n_ints : 0;
  return a && a->n_ints ? a->ints : NULL;
}

asg_status onnx__host_ints(onnx_ctx *c, const onnx_val *v, const char *what, int64_t *out, int max,
                           int *n) {
  if (!v || !v->has_host)
    return onnx__node_error(c, ASG_ERR_UNSUPPORTED,
                            "input '%s' (%s) must be known at import time (an initializer or "
                            "Constant)",
                            v ? v->name : "", what);
  int64_t k = asg_shape_numel(v->host.shape);
  if (k < 0 || k > max)
    return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "input '%s' (%s) has %lld values, at most %d",
                            v->name, what, (long long)k, max);
  for (int64_t i = 0; i < k; i++) {
    switch (v->host.dtype) {
    case ASG_I64: out[i] = ((const int64_t *)v->host.data)[i]; break;
    case ASG_I32: out[i] = ((const int32_t *)v->host.data)[i]; break;
    case ASG_F32: out[i] = (int64_t)((const float *)v->host.data)[i]; break;
    default: out[i] = (int64_t)((const double *)v->host.data)[i]; break;
    }
  }
  *n = (int)k;
  return ASG_OK;
}

/* A name usable as asg_dim: identifier characters only. */
static void dim_name(const char *src, char *dst, size_t n) {
  size_t k = 0;
  if (!(src[0] == '_' || (src[0] >= 'A' && src[0] <= 'Z') || (src[0] >= 'a' && src[0] <= 'z')))
    dst[k++] = '_';
  for (const char *s = src; *s && k + 1 < n; s++) {
    char ch = *s;
    bool ok = ch == '_' || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= 'a' && ch <= 'z');
    dst[k++] = ok ? ch : '_';
  }
  dst[k] = 0;
}

static asg_status import_input(onnx_ctx *c, const Onnx__ValueInfoProto *vi, onnx_val *v) {
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return asg__error(ASG_ERR_UNSUPPORTED, "onnx import: input '%s' is not a tensor", vi->name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  asg_dtype dt;
  v->onnx_type = tt->elem_type;
  if (!onnx__dtype(tt->elem_type, &dt, &v->is_bool))
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "onnx import: input '%s': element type %s is not "
                      "supported",
                      vi->name, onnx__type_name(tt->elem_type));
  if (!tt->shape)
    return asg__error(ASG_ERR_UNSUPPORTED, "onnx import: input '%s' has no shape (rank unknown)",
                      vi->name);
  if (tt->shape->n_dim > ASG_MAX_DIMS)
    return asg__error(ASG_ERR_UNSUPPORTED, "onnx import: input '%s': rank %zu is more than %d",
                      vi->name, tt->shape->n_dim, ASG_MAX_DIMS);
  asg_shape s = {(int)tt->shape->n_dim, {0}};
  for (size_t i = 0; i < tt->shape->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
    if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
      if (d->dim_value < 0)
        return asg__error(ASG_ERR_FORMAT, "onnx import: input '%s': dim %zu is %lld", vi->name, i,
                          (long long)d->dim_value);
      s.dims[i] = d->dim_value;
      continue;
    }
    char nm[128], gen[160];
    if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
        d->dim_param && d->dim_param[0])
      dim_name(d->dim_param, nm, sizeof nm);
    else {
      snprintf(gen, sizeof gen, "%s_dim%zu", vi->name, i);
      dim_name(gen, nm, sizeof nm);
    }
    s.dims[i] = asg_dim(c->g, nm, 0);
    if (s.dims[i] == -1)
      return asg__error(ASG_ERR_GRAPH, "onnx import: input '%s': %s", vi->name,
                        asg_graph_error(c->g));
  }
  for (int i = 0; i < s.ndim; i++) {
    if (s.dims[i] || !tt->shape->dim[i] ||
        tt->shape->dim[i]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
      continue;
    /* No elements: the value is known (ASG has no empty tensors, so it is no
     * program input); ops that read only its type or shape can use it. */
    for (int k = 0; k < s.ndim; k++)
      if (asg_dim_is_symbolic(s.dims[k]))
        return asg__error(ASG_ERR_UNSUPPORTED,
                          "onnx import: input '%s': dim %d is 0 and dim %d is symbolic (ASG "
                          "has no empty tensors)",
                          vi->name, i, k);
    v->host = (asg_host_tensor){dt, s, malloc(1)};
    if (!v->host.data) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
    v->has_host = v->empty_input = true;
    return ASG_OK;
  }
  if (!asg_dim_is_symbolic(s.dims[0]) && s.ndim && asg_shape_numel(s) < 0)
    return asg__error(ASG_ERR_FORMAT, "onnx import: input '%s': shape too large", vi->name);
  v->t = asg_input(c->g, vi->name, dt, s);
  if (!v->t)
    return asg__error(ASG_ERR_GRAPH, "onnx import: input '%s': %s", vi->name,
                      asg_graph_error(c->g));
  return ASG_OK;
}

static asg_status const_val(onnx_ctx *c, onnx_val *v, const asg_host_tensor *h) {
  v->host = *h;
  v->has_host = true;
  if (asg_shape_numel(h->shape) == 0) return ASG_OK; /* ASG has no empty tensors: host only */
  v->t = asg_constant(c->g, h->dtype, h->shape, h->data);
  if (!v->t)
    return asg__error(ASG_ERR_GRAPH, "onnx import: '%s': %s", v->name, asg_graph_error(c->g));
  return ASG_OK;
}

static asg_status import_initializer(onnx_ctx *c, const Onnx__TensorProto *tp, onnx_val *v) {
  char what[ONNX_MAX_NAME + 32];
  snprintf(what, sizeof what, "initializer '%s'", v->name);
  asg_host_tensor h;
  v->onnx_type = tp->data_type;
  asg_status st = onnx__tensor_host(c, tp, what, &h, &v->is_bool);
  if (st) return st;
  if (c->o.initializers_as_constants || !asg_dtype_is_float(h.dtype) || !h.shape.ndim)
    return const_val(c, v, &h);
  const char *pre = c->o.variable_prefix ? c->o.variable_prefix : "";
  size_t n = strlen(pre) + strlen(v->name) + 1;
  char *vn = malloc(n);
  if (!vn) {
    free(h.data);
    return asg__error(ASG_ERR_OOM, "onnx import: no memory");
  }
  snprintf(vn, n, "%s%s", pre, v->name);
  v->t = asg_variable(c->g, vn, h.dtype, h.shape, asg_init_data(h.data));
  free(vn);
  v->host = h; /* kept: ops that read shapes from initializers see the values */
  v->has_host = true;
  v->from_var = true;
  if (!v->t) return asg__error(ASG_ERR_GRAPH, "onnx import: %s: %s", what, asg_graph_error(c->g));
  return ASG_OK;
}

static bool name_ok(const char *s) { return s && strlen(s) <= ONNX_MAX_NAME; }

/* A small value computed from known values only (shape arithmetic such as
 * Shape -> Gather -> Concat -> Reshape) is evaluated now, on the CPU, so
 * that ops needing it at import time (shapes, axes) can read it. Values
 * that depend on variables are never folded (gradients must reach them). */
asg_status onnx__fold(onnx_ctx *c, onnx_val *v) {
  if (!v->t || v->has_host) return ASG_OK;
  asg_shape s = asg_tensor_shape(v->t);
  int64_t k = asg_shape_numel(s);
  for (int i = 0; i < s.ndim; i++)
    if (asg_dim_is_symbolic(s.dims[i])) return ASG_OK;
  if (k <= 0 || k > ONNX_FOLD_MAX) return ASG_OK;
  asg_dtype dt = asg_tensor_dtype(v->t);
  size_t bytes = (size_t)k * asg_dtype_size(dt);
  void *d = malloc(bytes);
  if (!d) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  asg_compile_opts o = {0};
  o.num_threads = 1;
  asg_program *p = asg_compile(c->g, 1, &v->t, &o);
  asg_status st = p ? asg_program_run(p) : ASG_ERR_GRAPH;
  if (!st) st = asg_program_fetch(p, v->t, d, bytes);
  asg_program_free(p);
  if (st) { /* not foldable (e.g. an index out of range): left to run time */
    free(d);
    asg_clear_error();
    return ASG_OK;
  }
  v->host = (asg_host_tensor){dt, s, d};
  v->has_host = true;
  /* later folds and the compiled model start from the value, not the chain */
  asg_tensor *k_ = asg_constant(c->g, dt, s, d);
  if (!k_) return onnx__build_error(c);
  v->t = k_;
  return ASG_OK;
}

static asg_status import_node(onnx_ctx *c, const Onnx__NodeProto *n) {
  c->node = n;
  if (!n->op_type || !name_ok(n->op_type)) return onnx__node_error(c, ASG_ERR_FORMAT, "no op_type");
  if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
    return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "operator domain '%s' is not supported",
                            n->domain);
  if (n->n_input > ONNX_MAX_NODE_IO || n->n_output > ONNX_MAX_NODE_IO || !n->n_output)
    return onnx__node_error(c, ASG_ERR_FORMAT, "%zu inputs and %zu outputs", n->n_input,
                            n->n_output);
  int since = 0;
  onnx_op_fn fn = onnx__find_op(n->op_type, &since);
  if (!fn) return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "operator not supported by ASG");
  if (c->opset < since)
    return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "ASG implements %s as of opset %d", n->op_type,
                            since);
  onnx_val *in[ONNX_MAX_NODE_IO];
  for (size_t i = 0; i < n->n_input; i++) {
    const char *nm = n->input[i];
    in[i] = NULL;
    if (!nm || !nm[0]) continue; /* omitted optional input */
    if (!name_ok(nm)) return onnx__node_error(c, ASG_ERR_FORMAT, "input name too long");
    in[i] = onnx__find(c, nm);
    if (!in[i])
      return onnx__node_error(c, ASG_ERR_FORMAT,
                              "input '%s' is not defined before it is used "
                              "(missing initializer or unsorted graph)",
                              nm);
    bool type_or_shape = !strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size") ||
                         (!strcmp(n->op_type, "CastLike") && i == 1);
    if (in[i]->empty_input && !type_or_shape)
      return onnx__node_error(c, ASG_ERR_UNSUPPORTED,
                              "input '%s' is empty (ASG has no empty tensors)", nm);
  }
  onnx_val outs[8];
  int nout = (int)n->n_output;
  if (nout > 8) return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "%d outputs", nout);
  memset(outs, 0, sizeof outs);
  /* in[] points into c->vals: copy the pointed values' addresses stay valid
   * because outputs are appended only after fn returns */
  asg_status st = onnx__sym_node(c, n, fn, in, (int)n->n_input, outs, nout);
  if (!st)
    for (int k = 0; k < nout; k++)
      if (n->output[k] && n->output[k][0] && !outs[k].t && !outs[k].has_host)
        st = onnx__node_error(c, ASG_ERR_UNSUPPORTED, "output %d not produced", k);
  bool from_var = false, all_known = n->n_input > 0;
  for (size_t i = 0; i < n->n_input; i++) {
    from_var = from_var || (in[i] && in[i]->from_var);
    all_known = all_known && (!in[i] || in[i]->has_host);
  }
  for (int k = 0; k < nout; k++) {
    /* a value the op knew at import (Shape, shape arithmetic) is no function of
     * a variable's values: later shape arithmetic on it may fold */
    outs[k].from_var = from_var && !outs[k].has_host;
    if (!st && all_known && !from_var) st = onnx__fold(c, &outs[k]);
  }
  for (int k = 0; k < nout; k++) {
    const char *nm = n->output[k];
    if (st || !nm || !nm[0] || !name_ok(nm)) {
      if (outs[k].has_host) free(outs[k].host.data);
      continue;
    }
    onnx_val *v = add_val(c, nm);
    if (!v) {
      if (outs[k].has_host) free(outs[k].host.data);
      st = asg__error(ASG_ERR_OOM, "onnx import: no memory");
      continue;
    }
    char *keep = v->name;
    *v = outs[k];
    v->name = keep;
  }
  return st;
}

static void ctx_free(onnx_ctx *c) {
  for (int i = 0; i < c->nvals; i++) {
    free(c->vals[i].name);
    if (c->vals[i].has_host) free(c->vals[i].host.data);
  }
  free(c->vals);
  free(c->dir);
}

void asg_onnx_model_free(asg_onnx_model *m) {
  if (!m) return;
  ctx_free(&m->c);
  free(m->in_idx);
  free(m->out_idx);
  free(m);
}

static char *dir_of(const char *path) {
  const char *sl = strrchr(path, '/');
  if (!sl) return asg__strdup(".");
  size_t n = sl == path ? 1 : (size_t)(sl - path);
  char *d = malloc(n + 1);
  if (d) memcpy(d, path, n), d[n] = 0;
  return d;
}

static asg_status build(asg_onnx_model *m, const Onnx__ModelProto *mp) {
  onnx_ctx *c = &m->c;
  const Onnx__GraphProto *gp = mp->graph;
  if (gp->n_input > ONNX_MAX_IO || gp->n_output > ONNX_MAX_IO || gp->n_initializer > ONNX_MAX_IO)
    return asg__error(ASG_ERR_FORMAT, "onnx import: too many inputs, outputs or initializers");
  if ((int64_t)gp->n_node > c->o.max_nodes)
    return asg__error(ASG_ERR_FORMAT, "onnx import: %zu nodes, more than the limit of %lld",
                      gp->n_node, (long long)c->o.max_nodes);
  m->in_idx = malloc((gp->n_input + 1) * sizeof(int));
  m->out_idx = malloc((gp->n_output + 1) * sizeof(int));
  if (!m->in_idx || !m->out_idx) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
  for (size_t i = 0; i < gp->n_initializer; i++) {
    const Onnx__TensorProto *tp = gp->initializer[i];
    if (!tp || !name_ok(tp->name) || !tp->name[0])
      return asg__error(ASG_ERR_FORMAT, "onnx import: initializer %zu has no usable name", i);
    onnx_val *v = add_val(c, tp->name);
    if (!v) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
    asg_status st = import_initializer(c, tp, v);
    if (st) return st;
  }
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    if (!vi || !name_ok(vi->name) || !vi->name[0])
      return asg__error(ASG_ERR_FORMAT, "onnx import: graph input %zu has no usable name", i);
    if (onnx__find(c, vi->name)) continue; /* an initializer (its default value) */
    onnx_val *v = add_val(c, vi->name);
    if (!v) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
    const asg_onnx_const_input *ci = NULL;
    for (int k = 0; k < c->o.n_const_inputs; k++)
      if (c->o.const_inputs[k].name && !strcmp(c->o.const_inputs[k].name, vi->name))
        ci = &c->o.const_inputs[k];
    asg_status st;
    if (ci) {
      asg_host_tensor h = ci->value;
      int64_t k = asg_shape_numel(h.shape);
      size_t bytes = k < 0 ? 0 : (size_t)k * asg_dtype_size(h.dtype);
      if (k < 0 || h.dtype > ASG_I64 || (!h.data && bytes))
        return asg__error(ASG_ERR_INVALID, "onnx import: const input '%s': bad value", vi->name);
      void *d = malloc(bytes ? bytes : 1);
      if (!d) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
      if (bytes) memcpy(d, h.data, bytes);
      h.data = d;
      const Onnx__TypeProto *tp = vi->type;
      v->onnx_type = tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type
                         ? tp->tensor_type->elem_type
                         : 0;
      v->is_bool = v->onnx_type == ONNX_BOOL;
      st = const_val(c, v, &h);
    } else {
      st = import_input(c, vi, v);
      if (v->t) m->in_idx[m->n_in++] = c->nvals - 1; /* not an empty one */
    }
    if (st) return st;
  }
  for (size_t i = 0; i < gp->n_node; i++) {
    c->node_index = (int)i;
    if (!gp->node[i]) return asg__error(ASG_ERR_FORMAT, "onnx import: node %zu is empty", i);
    asg_status st = import_node(c, gp->node[i]);
    if (st) return st;
  }
  c->node = NULL;
  for (int i = 0; i < c->nvals; i++) /* the graph holds copies: drop the host values */
    if (c->vals[i].has_host) {
      free(c->vals[i].host.data);
      c->vals[i].host.data = NULL;
      c->vals[i].has_host = false;
    }
  for (size_t i = 0; i < gp->n_output; i++) {
    const Onnx__ValueInfoProto *vi = gp->output[i];
    onnx_val *v = vi && name_ok(vi->name) ? onnx__find(c, vi->name) : NULL;
    if (!v)
      return asg__error(ASG_ERR_FORMAT, "onnx import: graph output '%s' is never computed",
                        vi && vi->name ? vi->name : "");
    if (!v->t)
      return asg__error(ASG_ERR_UNSUPPORTED,
                        "onnx import: graph output '%s' is empty (ASG has "
                        "no empty tensors)",
                        vi->name);
    m->out_idx[m->n_out++] = (int)(v - c->vals);
  }
  return ASG_OK;
}

asg_status asg_onnx_import(asg_graph *g, const char *path, const asg_onnx_import_opts *o,
                           asg_onnx_model **out) {
  if (out) *out = NULL;
  if (!g || !path || !out)
    return asg__error(ASG_ERR_INVALID, "onnx import: graph, path and out must not be NULL");
  if (asg_graph_status(g))
    return asg__error(ASG_ERR_GRAPH, "onnx import: the graph has failed: %s", asg_graph_error(g));
  asg_onnx_model *m = calloc(1, sizeof *m);
  if (!m) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
  onnx_ctx *c = &m->c;
  c->g = g;
  if (o) c->o = *o;
  if (!c->o.max_file_bytes) c->o.max_file_bytes = 4ull << 30;
  if (!c->o.max_tensor_bytes) c->o.max_tensor_bytes = 64ull << 30;
  if (!c->o.max_nodes) c->o.max_nodes = 1000000;
  c->dir = dir_of(path);
  Onnx__ModelProto *mp = NULL;
  asg_status st = c->dir ? onnx__read_model(path, c->o.max_file_bytes, "onnx import", &mp)
                         : asg__error(ASG_ERR_OOM, "onnx import: no memory");
  if (!st) {
    c->opset = m->opset = onnx__default_opset(mp);
    if (m->opset < ONNX_MIN_OPSET || m->opset > ONNX_MAX_OPSET)
      st = asg__error(ASG_ERR_UNSUPPORTED,
                      "onnx import: '%s' imports opset %lld of the default "
                      "domain; ASG reads opsets %d to %d",
                      path, (long long)m->opset, ONNX_MIN_OPSET, ONNX_MAX_OPSET);
  }
  if (!st) st = build(m, mp);
  if (mp) onnx__model_proto__free_unpacked(mp, NULL);
  if (st) {
    asg_onnx_model_free(m);
    return st;
  }
  *out = m;
  return ASG_OK;
}

int64_t asg_onnx_model_opset(const asg_onnx_model *m) { return m ? m->opset : 0; }
int asg_onnx_model_input_count(const asg_onnx_model *m) { return m ? m->n_in : 0; }
int asg_onnx_model_output_count(const asg_onnx_model *m) { return m ? m->n_out : 0; }
asg_tensor *asg_onnx_model_input(const asg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->n_in ? m->c.vals[m->in_idx[i]].t : NULL;
}
const char *asg_onnx_model_input_name(const asg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->n_in ? m->c.vals[m->in_idx[i]].name : NULL;
}
asg_tensor *asg_onnx_model_output(const asg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->n_out ? m->c.vals[m->out_idx[i]].t : NULL;
}
const char *asg_onnx_model_output_name(const asg_onnx_model *m, int i) {
  return m && i >= 0 && i < m->n_out ? m->c.vals[m->out_idx[i]].name : NULL;
}
asg_tensor *asg_onnx_model_find(const asg_onnx_model *m, const char *name) {
  if (!m || !name) return NULL;
  onnx_val *v = onnx__find((onnx_ctx *)&m->c, name);
  return v ? v->t : NULL;
}

bool asg_onnx_op_supported(const char *op_type, int64_t opset) {
  int since = 0;
  return op_type && onnx__find_op(op_type, &since) && opset >= since && opset <= ONNX_MAX_OPSET;
}
#endif
