/* The ONNX exporter's private interface: its state and the node builders
 * shared by onnx_export.c (values, sources, the model) and
 * onnx_export_ops.c (the per-op mapping). Included only when built with
 * ONNX (protobuf-c). */
#ifndef ASG_ONNX_EXPORT_H
#define ASG_ONNX_EXPORT_H

#include "asg/onnx.h"
#include "core/internal.h"
#include "onnx.pb-c.h"

typedef struct ex {
  asg_graph *g;
  asg_onnx_export_opts o;
  void **mem; /* every allocation, freed by ex_free */
  size_t nmem, capmem;
  Onnx__NodeProto **nodes;
  size_t nn, capn;
  Onnx__TensorProto **inits;
  size_t ni, capi;
  char **val;            /* ONNX value name of each ASG node (NULL: not exported) */
  const asg_tensor *cur; /* node being exported, for names and messages */
  int sub;               /* helper nodes made for cur */
  bool oom;
} ex;

#if defined(__GNUC__)
#define EX_PRINTF __attribute__((format(printf, 2, 3)))
#else
#define EX_PRINTF
#endif

/* Memory freed with the exporter (NULL and e->oom set when out of memory). */
void *ex_alloc(ex *e, size_t bytes);
char *ex_str(ex *e, const char *fmt, ...) EX_PRINTF;
/* ASG_ERR_UNSUPPORTED naming the node being exported. */
asg_status ex_unsup(ex *e, const char *fmt, ...) EX_PRINTF;
int32_t ex_type(asg_dtype dt); /* ONNX's element type (0: none) */

/* A node of the current ASG node: op with inputs ins, its output named out
 * or (out NULL) a fresh helper name; NULL when out of memory. */
Onnx__NodeProto *ex_node(ex *e, const char *op, int nin, const char *const *ins, const char *out);
void ex_attr_int(ex *e, Onnx__NodeProto *n, const char *name, int64_t v);
void ex_attr_float(ex *e, Onnx__NodeProto *n, const char *name, double v);
void ex_attr_ints(ex *e, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v);
/* Initializers: a tensor (name NULL: a fresh one), an i64 vector, a scalar of dt. */
const char *ex_init(ex *e, const char *name, asg_dtype dt, int ndim, const int64_t *dims,
                    const void *data);
const char *ex_ints(ex *e, int n, const int64_t *v);
const char *ex_scalar(ex *e, asg_dtype dt, double v);
/* One-node shorthands; a NULL input gives NULL. */
const char *ex1(ex *e, const char *op, const char *a, const char *out);
const char *ex2(ex *e, const char *op, const char *a, const char *b, const char *out);
const char *ex_cast(ex *e, const char *a, int32_t to, const char *out);
/* The shape operand of a Reshape of x to s (symbolic dims as 0 / -1). */
const char *ex_reshape_shape(ex *e, const asg_tensor *x, asg_shape s);

/* The ONNX nodes of t (not a source), its result named out (onnx_export_ops.c). */
asg_status ex_op(ex *e, const asg_tensor *t, const char *out);

#endif
