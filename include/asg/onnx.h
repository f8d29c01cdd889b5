/* ONNX import (docs/onnx.md): an .onnx file becomes nodes of an ASG graph.
 *
 * Graph inputs become asg_input (a dynamic axis with a dim_param becomes
 * asg_dim of that name; one without becomes a generated name such as
 * "x_dim0"), initializers become named variables (trainable when float) or
 * constants, and the model's outputs are returned by name. Models of the
 * default domain up to opset 28 (the newest of onnx 1.23) are read; each
 * operator from the opset whose semantics ASG implements (docs/onnx.md;
 * older forms where they differ, e.g. Softmax before opset 13). Shapes,
 * axes and other inputs that ASG needs while building (Reshape's shape,
 * Slice's starts) must be known at import: initializers, Constant, or
 * values computed from those (they are evaluated on the CPU at import,
 * never from variables). An operator ASG cannot express, or an
 * attribute value it does not support, is ASG_ERR_UNSUPPORTED naming the
 * node, its op type and the opset. The file is untrusted: sizes and counts
 * are bounded and checked (ASG_ERR_FORMAT). External data (data_location
 * EXTERNAL) is read from files relative to the model's folder; locations
 * that leave that folder are refused.
 *
 * Built without protobuf-c (no ASG_HAVE_ONNX) every call returns
 * ASG_ERR_UNSUPPORTED ("built without ONNX"). */
#ifndef ASG_ONNX_H
#define ASG_ONNX_H

#include "asg/data.h"
#include "asg/graph.h"
#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An input to freeze at import time: its value is a constant of the graph
 * (e.g. the shape input of a Reshape, which must be known when building). */
typedef struct asg_onnx_const_input {
  const char *name;
  asg_host_tensor value; /* F32, F64, I32 or I64; copied */
} asg_onnx_const_input;

typedef struct asg_onnx_import_opts {
  /* Initializers become constants instead of (trainable) variables. */
  bool initializers_as_constants;
  /* Prefix of the variables made from initializers ("" or NULL: none). */
  const char *variable_prefix;
  /* Inputs given a fixed value (n_const_inputs entries). */
  int n_const_inputs;
  const asg_onnx_const_input *const_inputs;
  /* Bounds on the file (0: the defaults, 4 GiB model file, 64 GiB of tensor
   * data in all, 1,000,000 nodes). */
  uint64_t max_file_bytes;
  uint64_t max_tensor_bytes;
  int64_t max_nodes;
} asg_onnx_import_opts;

/* What an import made; owned by the caller (asg_onnx_model_free). The
 * tensors belong to the graph and live as long as it does. */
typedef struct asg_onnx_model asg_onnx_model;

/* Imports the model at path into g. o may be NULL. On error *out is NULL,
 * the message names the node / tensor / file, and g may hold some of the
 * model's nodes (free it). */
ASG_API asg_status asg_onnx_import(asg_graph *g, const char *path, const asg_onnx_import_opts *o,
                                   asg_onnx_model **out);
ASG_API void asg_onnx_model_free(asg_onnx_model *m); /* NULL is ignored */

/* The opset of the default ONNX domain the model imports. */
ASG_API int64_t asg_onnx_model_opset(const asg_onnx_model *m);
/* Graph inputs that are fed at run time (initializers and frozen inputs are
 * not counted), in the file's order. */
ASG_API int asg_onnx_model_input_count(const asg_onnx_model *m);
ASG_API asg_tensor *asg_onnx_model_input(const asg_onnx_model *m, int i);
ASG_API const char *asg_onnx_model_input_name(const asg_onnx_model *m, int i);
/* The model's outputs, in the file's order. */
ASG_API int asg_onnx_model_output_count(const asg_onnx_model *m);
ASG_API asg_tensor *asg_onnx_model_output(const asg_onnx_model *m, int i);
ASG_API const char *asg_onnx_model_output_name(const asg_onnx_model *m, int i);
/* Any value of the model by its ONNX name (NULL if none). */
ASG_API asg_tensor *asg_onnx_model_find(const asg_onnx_model *m, const char *name);

/* A readable summary of the file without building a graph: IR version,
 * opsets, inputs and outputs with types and shapes, the operator histogram
 * and the operators the importer does not support. *text is malloc'd (free
 * it with free()). */
ASG_API asg_status asg_onnx_describe(const char *path, char **text);
/* Whether the importer maps an operator of the default domain at opset. */
ASG_API bool asg_onnx_op_supported(const char *op_type, int64_t opset);

/* ---- export (src/io/onnx_export.c) ----
 * The nodes that outputs depend on become an ONNX model of the default
 * domain. Inputs become graph inputs (symbolic dims as dim_param, named by
 * the dim's text: "B", "B*2"); variables become initializers of the same
 * name; constants and fills become initializers; every other node maps to
 * ONNX nodes named "scope/op_id" after the node's name scope (helper nodes
 * of one ASG node are named under it). Each output is an Identity node
 * named output_names[i] (default "output0", "output1", ...). Mapped: the
 * elementwise, comparison (Equal.. then Cast to the mask's dtype) and
 * activation ops (gelu, gelu_tanh, silu, softplus, rsqrt decomposed),
 * cast, where, matmul (Transpose + MatMul for transposed operands),
 * reshape, permute, slice, concat, broadcast_to (Expand), gather /
 * embedding, one_hot, sum/mean/max/min/var/argmax, softmax, log_softmax,
 * layernorm (LayerNormalization), conv2d, conv_transpose2d, max/avg pools
 * and adaptive average pooling to 1x1 or an exact divisor. Any other op
 * (attention, losses, random ops, backward and optimizer ops, state
 * updates) is ASG_ERR_UNSUPPORTED naming the node ("scope/op_id"); so are
 * shapes ONNX cannot say from the graph's symbols (a reshape introducing
 * two new symbolic dims, a fill of symbolic shape). */
typedef struct asg_onnx_export_opts {
  /* Variable values are read from this program (asg_program_get_variable:
   * e.g. after training). NULL: the values a fresh program starts from
   * (asg_init_fill of each variable's init, seed 0, as asg_compile does). */
  asg_program *program;
  /* n_outputs names of the model's outputs (NULL: "output<i>"); each must
   * be new (not an input or variable name). */
  const char *const *output_names;
  int opset;              /* 17 to 21; 0: 18 */
  const char *graph_name; /* NULL: "asg" */
} asg_onnx_export_opts;

/* Writes the model of outputs to path. o may be NULL. The graph must carry
 * no error (ASG_ERR_GRAPH); a node without a mapping is ASG_ERR_UNSUPPORTED
 * naming it; a file that cannot be written is ASG_ERR_IO. Built without
 * protobuf-c it returns ASG_ERR_UNSUPPORTED. */
ASG_API asg_status asg_onnx_export(asg_graph *g, int n_outputs, asg_tensor *const *outputs,
                                   const char *path, const asg_onnx_export_opts *o);

#ifdef __cplusplus
}
#endif
#endif
