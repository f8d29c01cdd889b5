/* Internal pieces of the ONNX importer: the parsed file (protobuf-c), the
 * value table of an import, tensor decoding, and the operator table. */
#ifndef ASG_ONNX_INTERNAL_H
#define ASG_ONNX_INTERNAL_H

#include "asg/onnx.h"
#include "core/internal.h"
#include "onnx.pb-c.h"

/* Bounds on untrusted files (besides those in asg_onnx_import_opts). */
#define ONNX_MAX_NAME 4096      /* bytes of a name */
#define ONNX_MAX_IO 100000      /* graph inputs / outputs / initializers */
#define ONNX_MAX_NODE_IO 4096   /* inputs / outputs of one node */
#define ONNX_MAX_ATTR_INTS 4096 /* elements of an ints / floats attribute */
#define ONNX_FOLD_MAX 4096      /* elements of a value folded at import time */

/* ONNX TensorProto data types. */
enum {
  ONNX_FLOAT = 1,
  ONNX_UINT8 = 2,
  ONNX_INT8 = 3,
  ONNX_UINT16 = 4,
  ONNX_INT16 = 5,
  ONNX_INT32 = 6,
  ONNX_INT64 = 7,
  ONNX_STRING = 8,
  ONNX_BOOL = 9,
  ONNX_FLOAT16 = 10,
  ONNX_DOUBLE = 11,
  ONNX_UINT32 = 12,
  ONNX_UINT64 = 13,
  ONNX_BFLOAT16 = 16,
  ONNX_FLOAT8E4M3FN = 17,
  ONNX_FLOAT8E4M3FNUZ = 18,
  ONNX_FLOAT8E5M2 = 19,
  ONNX_FLOAT8E5M2FNUZ = 20,
  ONNX_UINT4 = 21,
  ONNX_INT4 = 22,
  ONNX_FLOAT4E2M1 = 23,
  ONNX_FLOAT8E8M0 = 24,
  ONNX_UINT2 = 25,
  ONNX_INT2 = 26
};

/* One named value while importing: its node, and its elements on the host
 * when known at import time (initializers, Constant, Shape of static
 * shapes, small integer arithmetic on those). is_bool marks ONNX bool
 * values (held as I32 0/1 or as a comparison mask of the operands' dtype). */
typedef struct onnx_val {
  char *name;
  asg_tensor *t;
  bool has_host, is_bool;
  bool from_var;     /* depends on a variable: never folded into a constant */
  uint64_t sym;      /* elements of host that are symbolic dims (onnx_symbolic.c) */
  int32_t onnx_type; /* the ONNX element type when known (inputs, initializers, Cast), else 0 */
  bool empty_input;  /* a graph input with a dim of 0: host only, usable for its type and shape */
  asg_host_tensor host;
} onnx_val;

typedef struct onnx_ctx {
  asg_graph *g;
  asg_onnx_import_opts o;
  int64_t opset;
  char *dir; /* the model's folder, for external data */
  onnx_val *vals;
  int nvals, cap;
  uint64_t tensor_bytes;
  const Onnx__NodeProto *node; /* the node being imported, for messages */
  int node_index;
  asg_tensor *iota; /* the ramp that a symbolic Range slices (onnx_symbolic.c) */
} onnx_ctx;

/* ---- onnx_load.c ---- */
/* Reads and parses the file (at most max_bytes). */
asg_status onnx__read_model(const char *path, uint64_t max_bytes, const char *who,
                            Onnx__ModelProto **out);
/* Opset of the default domain ("" or "ai.onnx"), 0 if none. */
int64_t onnx__default_opset(const Onnx__ModelProto *m);
/* ONNX element type -> ASG dtype; false if ASG has none. */
bool onnx__dtype(int32_t onnx_type, asg_dtype *dt, bool *is_bool);
const char *onnx__type_name(int32_t onnx_type);
/* Decodes an initializer / Constant value (raw, typed or external data) into
 * a host tensor (malloc'd data). what names it in messages. */
/* ConstantOfShape's "value" attribute: its dtype and value (F32 0 when
 * absent); an error naming the node for a value of more than one element. */
asg_status onnx__fill_value(onnx_ctx *c, const Onnx__NodeProto *n, asg_dtype *dt, double *val,
                            bool *is_bool);
asg_status onnx__tensor_host(onnx_ctx *c, const Onnx__TensorProto *tp, const char *what,
                             asg_host_tensor *out, bool *is_bool);

/* ---- onnx_import.c ---- */
onnx_val *onnx__find(onnx_ctx *c, const char *name);
/* Error about the current node: "node 'n' (Op, opset 17): ..." */
asg_status onnx__node_error(onnx_ctx *c, asg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The error of a constructor that returned NULL: the graph's message, or
 * (no graph error: a NULL input) an empty input, which ASG cannot hold. */
asg_status onnx__build_error(onnx_ctx *c);
/* Evaluates v now when it is small and static (its inputs known at import):
 * sets v->host. import_node does it when all a node's inputs are known. */
asg_status onnx__fold(onnx_ctx *c, onnx_val *v);
/* Attributes of the current node. */
const Onnx__AttributeProto *onnx__attr(const Onnx__NodeProto *n, const char *name);
int64_t onnx__attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt);
double onnx__attr_float(const Onnx__NodeProto *n, const char *name, double dflt);
const char *onnx__attr_str(const Onnx__NodeProto *n, const char *name, const char *dflt);
/* The ints of an attribute (count in *n, NULL and 0 if absent). */
const int64_t *onnx__attr_ints(const Onnx__NodeProto *n, const char *name, size_t *cnt);
/* The elements of a value known at import time as int64 (n <= max);
 * ASG_ERR_UNSUPPORTED naming the input if it is not known. */
asg_status onnx__host_ints(onnx_ctx *c, const onnx_val *v, const char *what, int64_t *out, int max,
                           int *n);

/* ---- onnx_ops.c ---- */
/* Builds a node's outputs from its inputs (in[i] NULL for an omitted
 * optional input); sets out[k].t (and host / is_bool when known). */
typedef asg_status (*onnx_op_fn)(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin,
                                 onnx_val *out, int nout);
/* The entry for op_type, or NULL; *since (may be NULL) gets the first
 * opset whose semantics the entry implements (0 when there is no entry). */
onnx_op_fn onnx__find_op(const char *op_type, int *since);
/* onnx_symbolic.c: runs fn, or evaluates the node at import when it works
 * on shape values with symbolic dims (Shape of a dynamic axis, ...). */
asg_status onnx__sym_node(onnx_ctx *c, const Onnx__NodeProto *n, onnx_op_fn fn, onnx_val **in,
                          int nin, onnx_val *out, int nout);
/* Axes from the "axes" attribute (older opsets) or the axes input (newer). */
asg_status onnx__get_axes(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val *inp, int64_t *ax,
                          int *k);
int onnx__cmp_desc(const void *a, const void *b); /* qsort of ints, largest first */

/* Helpers of the op files (onnx_ops.c, onnx_ops_nn.c). */
#define IN(i) (nin > (i) && in[i] ? in[i] : NULL)
#define T(i) (IN(i) ? in[i]->t : NULL)
#define ONNX_OP(name)                                                                              \
  asg_status name(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin, onnx_val *out,    \
                  int nout)
#define UNUSED (void)c, (void)n, (void)in, (void)nin, (void)out, (void)nout
#define NEED(k)                                                                                    \
  do {                                                                                             \
    for (int i_ = 0; i_ < (k); i_++)                                                               \
      if (!IN(i_)) return onnx__node_error(c, ASG_ERR_FORMAT, "input %d is missing", i_);          \
  } while (0)
#define UNSUP(...) return onnx__node_error(c, ASG_ERR_UNSUPPORTED, __VA_ARGS__)
/* Graph errors of the constructors end the import with the graph's message. */
#define DONE(t_)                                                                                   \
  do {                                                                                             \
    out[0].t = (t_);                                                                               \
    if (!out[0].t) return onnx__build_error(c);                                                    \
    return ASG_OK;                                                                                 \
  } while (0)

/* onnx_ops_shape.c: shapes, indexing, constants. */
/* Sets o to a known I64 value of k elements ([k], or a scalar). */
asg_status onnx__host_result(onnx_ctx *c, onnx_val *o, const int64_t *v, int k, bool scalar);
/* v is known at import, integer, of rank <= 1. */
bool onnx__small_int(const onnx_val *v);
ONNX_OP(onnx__op_reshape);
ONNX_OP(onnx__op_flatten);
ONNX_OP(onnx__op_transpose);
ONNX_OP(onnx__op_squeeze);
ONNX_OP(onnx__op_unsqueeze);
ONNX_OP(onnx__op_concat);
ONNX_OP(onnx__op_slice);
ONNX_OP(onnx__op_gather);
ONNX_OP(onnx__op_split);
ONNX_OP(onnx__op_expand);
ONNX_OP(onnx__op_shape);
ONNX_OP(onnx__op_size);
ONNX_OP(onnx__op_constant);
ONNX_OP(onnx__op_constant_of_shape);
ONNX_OP(onnx__op_range);

/* onnx_ops_more.c: a constant of dt [s] from numel(s) doubles, converted at import. */
asg_tensor *onnx__const_of(onnx_ctx *c, asg_dtype dt, asg_shape s, const double *v);

/* onnx_ops_nn.c: convolution, pooling, normalization, reductions. */
/* x with `before` and `after` elements of value v added along axis. */
asg_tensor *onnx__pad_axis(asg_tensor *x, int axis, int64_t before, int64_t after, double v);
ONNX_OP(onnx__op_conv);
ONNX_OP(onnx__op_conv_transpose);
ONNX_OP(onnx__op_max_pool);
ONNX_OP(onnx__op_avg_pool);
ONNX_OP(onnx__op_global_avg_pool);
ONNX_OP(onnx__op_global_max_pool);
ONNX_OP(onnx__op_batch_norm);
ONNX_OP(onnx__op_layer_norm);
ONNX_OP(onnx__op_reduce_sum);
ONNX_OP(onnx__op_reduce_mean);
ONNX_OP(onnx__op_reduce_max);
ONNX_OP(onnx__op_reduce_min);
ONNX_OP(onnx__op_reduce_l1);
ONNX_OP(onnx__op_reduce_l2);
ONNX_OP(onnx__op_reduce_sum_square);
ONNX_OP(onnx__op_reduce_log_sum);
ONNX_OP(onnx__op_reduce_log_sum_exp);
ONNX_OP(onnx__op_instance_norm);
ONNX_OP(onnx__op_group_norm);
ONNX_OP(onnx__op_rms_norm);
ONNX_OP(onnx__op_lp_norm);
ONNX_OP(onnx__op_mvn);
/* onnx_ops_more.c: attention, padding and rearrangements. */
ONNX_OP(onnx__op_attention);
ONNX_OP(onnx__op_pad);
ONNX_OP(onnx__op_trilu);
ONNX_OP(onnx__op_cumsum);
ONNX_OP(onnx__op_tile);
ONNX_OP(onnx__op_depth_to_space);
ONNX_OP(onnx__op_space_to_depth);
ONNX_OP(onnx__op_hardmax);
ONNX_OP(onnx__op_one_hot);
/* onnx_ops_cast.c: Cast, CastLike (the narrow types held in wider ones). */
ONNX_OP(onnx__op_cast);
ONNX_OP(onnx__op_cast_like);
/* onnx_ops_resample.c: Resize (nearest / linear) on asg_upsample. */
ONNX_OP(onnx__op_resize);

#endif
