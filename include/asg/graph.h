/* The symbolic graph: inputs, constants, variables, name scopes, errors.
 *
 * Building never returns a status: the first error (shape mismatch, bad
 * argument, ...) is stored in the graph, the failing constructor returns NULL
 * (a poisoned tensor) and every later constructor given NULL returns NULL.
 * asg_graph_error() tells what went wrong; compile refuses a failed graph. */
#ifndef ASG_GRAPH_H
#define ASG_GRAPH_H

#include "asg/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_graph asg_graph;
typedef struct asg_tensor asg_tensor; /* a node; owned by its graph */

/* Lifetime: a graph and its tensors are valid from asg_graph_new until
 * asg_graph_free (programs compiled from it stay valid after). Using a
 * freed graph or any of its tensors, or freeing a graph twice, is undefined
 * behaviour, as with free(): no call detects it. NULL, a tensor of another
 * live graph, or a live object of the wrong kind (a tensor cast to a graph)
 * is reported as an error. */
ASG_API asg_graph *asg_graph_new(void);
ASG_API void asg_graph_free(asg_graph *g); /* NULL is ignored */

/* NULL while the graph is sound, else the first error's message. */
ASG_API const char *asg_graph_error(const asg_graph *g);
ASG_API asg_status asg_graph_status(const asg_graph *g);
/* Seed for variable initializers that do not give their own. */
ASG_API void asg_graph_set_seed(asg_graph *g, uint64_t seed);

/* Records an error on the graph as an op constructor would ("scope/what:
 * message"; the first error sticks) and returns NULL, the poisoned tensor.
 * For layers and user extensions that validate their own arguments. */
ASG_API asg_tensor *asg_graph_fail(asg_graph *g, asg_status s, const char *what, const char *fmt,
                                   ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Training mode (default true): layers read it while building, e.g.
 * dropout is the identity and batch norm uses running statistics when
 * false. Build the same model code into a second graph for evaluation. */
ASG_API void asg_graph_set_training(asg_graph *g, bool training);
ASG_API bool asg_graph_is_training(const asg_graph *g);

/* Side-effect updates (assign nodes such as batch-norm running statistics)
 * that every training program compiled from the graph must run. */
ASG_API asg_status asg_graph_add_update(asg_graph *g, asg_tensor *assign_node);
ASG_API int asg_graph_update_count(const asg_graph *g);
ASG_API asg_tensor *asg_graph_update(const asg_graph *g, int i);

/* Name scopes: nodes made between push and pop remember "outer/inner". */
ASG_API void asg_scope_push(asg_graph *g, const char *name);
ASG_API void asg_scope_pop(asg_graph *g);
ASG_API const char *asg_scope_current(const asg_graph *g);

/* Tensor introspection. */
ASG_API asg_graph *asg_tensor_graph(const asg_tensor *t);
ASG_API asg_shape asg_tensor_shape(const asg_tensor *t);
ASG_API asg_dtype asg_tensor_dtype(const asg_tensor *t);
ASG_API const char *asg_tensor_name(const asg_tensor *t); /* NULL if none */
ASG_API const char *asg_tensor_scope(const asg_tensor *t);
ASG_API const char *asg_tensor_op_name(const asg_tensor *t);
ASG_API int asg_graph_node_count(const asg_graph *g);

/* Symbolic dimensions. asg_dim declares (or finds) a named dimension of g,
 * e.g. "batch" or "seq", and returns its dim value: use it in input shapes
 * (ASG_SHAPE(asg_dim(g, "batch", 0), 784)) and in reshape targets. max > 0
 * bounds the values it may be bound to (0: unbounded; a later declaration
 * may add the bound but not change it). Names are identifiers
 * ([A-Za-z_][A-Za-z0-9_]*). Returns -1 and fails g on a bad name or bound.
 * Symbolic dim values are negative (<= -2) and meaningful only in their
 * graph; shape rules carry them through every op as expressions (sums,
 * products, floor divisions), and two dims that must agree agree when they
 * are the same expression (B*T and T*B are). A mismatch that does not depend
 * on the bound values fails while building, naming the op and the shapes
 * ([batch,784]); one that does (a slice past a symbolic length, a reshape
 * that must divide) is checked when the symbols are bound. Inputs, fills and
 * random sources may have symbolic shapes; variables and constants may not. */
ASG_API int64_t asg_dim(asg_graph *g, const char *name, int64_t max);
ASG_API bool asg_dim_is_symbolic(int64_t d);
/* a*b, a+b, a-b of two dims of g (constants fold): for reshape targets such
 * as ASG_SHAPE(asg_dim_mul(g, B, T), C). -1 and g failed on error (a dim that
 * is not g's; a - b < 0 for constants). */
ASG_API int64_t asg_dim_mul(asg_graph *g, int64_t a, int64_t b);
ASG_API int64_t asg_dim_add(asg_graph *g, int64_t a, int64_t b);
ASG_API int64_t asg_dim_sub(asg_graph *g, int64_t a, int64_t b);
/* s as text with symbolic dims by name: "[batch,784]", "[2*seq+1]". */
ASG_API char *asg_graph_shape_str(const asg_graph *g, asg_shape s, char *buf, size_t n);

/* A value fed at every run. Names are unique per graph. */
ASG_API asg_tensor *asg_input(asg_graph *g, const char *name, asg_dtype dt, asg_shape shape);
/* A constant; data (numel * dtype size bytes) is copied. */
ASG_API asg_tensor *asg_constant(asg_graph *g, asg_dtype dt, asg_shape shape, const void *data);
/* A constant filled with one value. */
ASG_API asg_tensor *asg_fill(asg_graph *g, asg_dtype dt, asg_shape shape, double value);
ASG_API asg_tensor *asg_scalar(asg_graph *g, asg_dtype dt, double value);

/* Initializers for variables. fan_in/fan_out are taken from the shape the
 * way PyTorch does ([out, in, k...]: fan_in = in*k..., fan_out = out*k...). */
typedef enum asg_init_kind {
  ASG_INIT_ZEROS = 0,
  ASG_INIT_ONES,
  ASG_INIT_CONSTANT,        /* a */
  ASG_INIT_UNIFORM,         /* U(a, b) */
  ASG_INIT_NORMAL,          /* N(a, b^2) */
  ASG_INIT_TRUNC_NORMAL,    /* N(a, b^2) truncated to a +- 2b */
  ASG_INIT_XAVIER_UNIFORM,  /* gain a (0 means 1) */
  ASG_INIT_XAVIER_NORMAL,   /* gain a (0 means 1) */
  ASG_INIT_KAIMING_UNIFORM, /* negative slope a, fan_in mode */
  ASG_INIT_KAIMING_NORMAL,  /* negative slope a, fan_in mode */
  ASG_INIT_DATA             /* copy of data (numel * dtype size bytes) */
} asg_init_kind;

typedef struct asg_init {
  asg_init_kind kind;
  double a, b;
  uint64_t seed; /* 0: derived from the graph seed and the variable name */
  const void *data;
} asg_init;

#define ASG_INIT(kind_, ...) ((asg_init){.kind = (kind_), __VA_ARGS__})
ASG_API asg_init asg_init_zeros(void);
ASG_API asg_init asg_init_ones(void);
ASG_API asg_init asg_init_constant(double v);
ASG_API asg_init asg_init_uniform(double lo, double hi);
ASG_API asg_init asg_init_normal(double mean, double std);
ASG_API asg_init asg_init_trunc_normal(double mean, double std);
ASG_API asg_init asg_init_xavier_uniform(double gain);
ASG_API asg_init asg_init_xavier_normal(double gain);
ASG_API asg_init asg_init_kaiming_uniform(double neg_slope);
ASG_API asg_init asg_init_kaiming_normal(double neg_slope);
ASG_API asg_init asg_init_data(const void *data);

/* Fills dst (numel elements of dt) as init would: deterministic given the
 * seed. Used by programs; public so users can reproduce values. */
ASG_API asg_status asg_init_fill(asg_init init, asg_dtype dt, asg_shape shape, uint64_t seed,
                                 void *dst);

/* A persistent, named variable (parameter or optimizer state). Its value
 * lives in the program and survives runs. Names are unique per graph. */
ASG_API asg_tensor *asg_variable(asg_graph *g, const char *name, asg_dtype dt, asg_shape shape,
                                 asg_init init);
/* Trainable variables are those an optimizer updates (default: all float
 * variables). Optimizer state and running statistics are frozen. */
ASG_API void asg_variable_set_trainable(asg_tensor *var, bool trainable);
ASG_API bool asg_variable_is_trainable(const asg_tensor *var);
/* Finds a variable or input by name (NULL if absent; no error set). */
ASG_API asg_tensor *asg_graph_find(const asg_graph *g, const char *name);
ASG_API int asg_graph_variable_count(const asg_graph *g);
ASG_API asg_tensor *asg_graph_variable(const asg_graph *g, int i);

#ifdef __cplusplus
}
#endif
#endif
