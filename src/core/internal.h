/* Internal core: the graph IR, the op table enum, errors, arena, RNG.
 * Not installed; every layer of the library may include it. */
#ifndef ASG_CORE_INTERNAL_H
#define ASG_CORE_INTERNAL_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- op table ---- */
typedef enum asg_op {
#define ASG_OP(id, name, arity, flags) ASG_OP_##id,
#include "ops/ops.def"
#undef ASG_OP
  ASG_OP_COUNT
} asg_op;

enum {
  ASG_OPF_ELEM = 1 << 0,
  ASG_OPF_REDUCE = 1 << 1,
  ASG_OPF_SOURCE = 1 << 2,
  ASG_OPF_NODIFF = 1 << 3,
  ASG_OPF_BWD = 1 << 4,
  ASG_OPF_VIEW = 1 << 5,
  ASG_OPF_ASSIGN = 1 << 6,
  ASG_OPF_RANDOM = 1 << 7,
  ASG_OPF_COLL = 1 << 8,
  ASG_OPF_FUSED = 1 << 9
};

typedef struct asg_op_info {
  const char *name;
  int arity;
  unsigned flags;
} asg_op_info;

extern const asg_op_info asg__op_info[ASG_OP_COUNT];
const char *asg__op_name(asg_op op);

/* ---- attributes ----
 * Per-op meaning of f[] and i[] is documented where the op is built
 * (src/ops/). Reductions keep an axis bitmask in i[0]. */
typedef struct asg_attrs {
  double f[4];
  int64_t i[16];
} asg_attrs;

/* An aux node (ops.def AUX: a further output of in[0]'s step) keeps the op
 * that would compute it alone in i[ASG_AUX_OP], over in[1..] with its
 * attributes in the other slots, and which output it is (from 1) in
 * i[ASG_AUX_SLOT] (src/passes/fuse.c). */
enum { ASG_AUX_OP = 14, ASG_AUX_SLOT = 15 };

#define ASG_NODE_MAGIC 0x41534731u  /* "ASG1" */
#define ASG_GRAPH_MAGIC 0x47524148u /* "GRAH" */

struct asg_tensor {
  uint32_t magic;
  int id; /* index in graph->nodes; creation order is a topological order */
  asg_graph *graph;
  asg_op op;
  asg_dtype dtype;
  asg_shape shape;
  int n_in;
  asg_tensor **in;
  asg_attrs attr;
  const char *name;  /* inputs and variables */
  const char *scope; /* name scope that made the node ("" at top level) */
  void *data;        /* CONSTANT: numel * dtype bytes */
  asg_init init;     /* VARIABLE */
  bool frozen;       /* VARIABLE: not trained (optimizer state, statistics) */
  /* made by asg_grad / asg_vjp: 1 + id of the node whose gradient it
   * computes (0: a forward node); graph export draws it there */
  int grad_of;
};

/* Bump allocator: nodes, names and constants live until the graph dies. */
typedef struct asg_arena_block asg_arena_block;
typedef struct asg_arena {
  asg_arena_block *head;
} asg_arena;
void *asg__arena_alloc(asg_arena *a, size_t bytes);
char *asg__arena_strdup(asg_arena *a, const char *s);
void asg__arena_free(asg_arena *a);

#define ASG_SCOPE_MAX 512
#define ASG_SCOPE_DEPTH 32

/* A scope marked for recomputation (asg_graph_checkpoint_scope) and/or
 * declared a block by a layer (asg_graph_declare_block); src/passes/remat.c. */
typedef struct asg_scope_mark {
  const char *scope; /* in the graph's arena */
  bool checkpoint, block;
} asg_scope_mark;

struct asg_graph {
  uint32_t magic;
  asg_arena arena;
  asg_tensor **nodes;
  int n_nodes, cap_nodes;
  asg_status status;
  char err[1280];
  char scope[ASG_SCOPE_MAX];
  int scope_len[ASG_SCOPE_DEPTH];
  int scope_depth;
  uint64_t seed;
  bool eval_mode;
  asg_tensor **updates;
  int n_updates, cap_updates;
  struct asg_symtab *sym; /* symbolic dims (core/symbol.c); NULL until one is declared */
  asg_scope_mark *marks;  /* in the arena (regrown there); passes/remat.c */
  int n_marks, cap_marks;
  bool remat_blocks; /* set while asg_compile_train builds with checkpoint_blocks */
};

/* ---- errors ---- */
/* A malloc'd copy of s (NULL when out of memory). */
static inline char *asg__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = (char *)malloc(n); /* the cast: .cu files include this header too */
  if (d) memcpy(d, s, n);
  return d;
}

/* Sets the thread-local message; returns s for `return asg__error(...)`. */
asg_status asg__error(asg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The status of the last asg__error on this thread (for callers of a
 * function that returns NULL on failure, such as asg_compile). */
asg_status asg__last_status(void);
/* Records the graph's first error ("scope/op: message") and the thread-local
 * message; returns NULL (the poisoned tensor). */
asg_tensor *asg__fail(asg_graph *g, asg_status s, const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---- node construction ---- */
/* Returns the graph shared by n inputs, or NULL if any is NULL/poisoned
 * (setting an error on the graph when one is known) or they mix graphs. */
asg_graph *asg__graph_of(const char *op, int n, asg_tensor *const *in);
/* Appends a node; inputs must already be validated with asg__graph_of. */
asg_tensor *asg__node(asg_graph *g, asg_op op, asg_dtype dt, asg_shape shape, int n_in,
                      asg_tensor *const *in);
bool asg__tensor_ok(const asg_tensor *t);

/* ---- internal op constructors (ops without a public constructor) ---- */
/* Gradient of a slice: zeros of xshape with dy placed at the slice. */
asg_tensor *asg__slice_bwd(asg_tensor *dy, asg_shape xshape, int axis, int64_t start, int64_t step);
/* Slice of count elements from start (dims >= 0 or symbolic, no clamping);
 * that it lies in the axis is checked now or when the symbols are bound. */
asg_tensor *asg__slice_dims(asg_tensor *x, int axis, int64_t start, int64_t count, int64_t step);

/* Conv-family backward nodes (src/ops/op_conv.c): attributes copied from the
 * forward node, output shapes given. */
asg_tensor *asg__conv2d_shaped(asg_tensor *x, asg_tensor *w, asg_shape ys, const asg_attrs *a);
asg_tensor *asg__conv2d_bwd_input(asg_tensor *dy, asg_tensor *w, asg_shape xs, const asg_attrs *a);
asg_tensor *asg__conv2d_bwd_weight(asg_tensor *dy, asg_tensor *x, asg_shape ws, const asg_attrs *a);
asg_tensor *asg__pool_bwd(asg_op op, asg_tensor *dy, asg_tensor *x, const asg_attrs *a);

/* Fused optimizer updates (src/ops/op_optim.c; formulas there): Adam's
 * moments m beta + g (1 - beta), v beta + g^2 (1 - beta), and the new
 * parameter from p, the new moments and the scalars lr, bc1, bc2. */
asg_tensor *asg__adam_moment(asg_tensor *m, asg_tensor *g, double beta);
asg_tensor *asg__adam_moment2(asg_tensor *v, asg_tensor *g, double beta);
asg_tensor *asg__adam_param(asg_tensor *p, asg_tensor *m, asg_tensor *v, asg_tensor *lr,
                            asg_tensor *bc1, asg_tensor *bc2, double eps, double wd);

/* all_reduce that reduces only on runs where gate (one element) is nonzero
 * and passes x through elsewhere (src/ops/op_collective.c). */
asg_tensor *asg__all_reduce_gated(asg_tensor *x, asg_comm_op op, asg_tensor *gate);

/* Fused attention (src/ops/op_attention.c; contract there): the row
 * logsumexp lse [..., Tq] of the scaled (masked) scores, and the backward
 * ops dq [..., Tq, D] and dkv [2, ..., Tk, D] (dk, dv) from do = dL/do,
 * lse and delta = sum(do * o, last axis). scale/causal and the key mask
 * (NULL: none) as the forward. */
asg_tensor *asg__attention_lse(asg_tensor *q, asg_tensor *k, asg_tensor *mask, double scale,
                               bool causal);
asg_tensor *asg__attention_bwd_q(asg_tensor *q, asg_tensor *k, asg_tensor *v, asg_tensor *dout,
                                 asg_tensor *lse, asg_tensor *delta, asg_tensor *mask, double scale,
                                 bool causal);
asg_tensor *asg__attention_bwd_kv(asg_tensor *q, asg_tensor *k, asg_tensor *v, asg_tensor *dout,
                                  asg_tensor *lse, asg_tensor *delta, asg_tensor *mask,
                                  double scale, bool causal);

/* ---- shapes ---- */
/* Broadcast a and b into out; false if incompatible. */
bool asg__broadcast_shapes(asg_shape a, asg_shape b, asg_shape *out);
/* Normalizes axis into [0, ndim); false if out of range. */
bool asg__norm_axis(int axis, int ndim, int *out);
/* Row-major strides in elements. */
void asg__strides(asg_shape s, int64_t *strides);

/* ---- counter-based RNG (identical on every backend) ---- */
static inline uint64_t asg__mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
/* 64 random bits for element `counter` of stream `key`. */
static inline uint64_t asg__rng_bits(uint64_t key, uint64_t counter) {
  return asg__mix64(asg__mix64(key) ^ (counter * 0xd1b54a32d192ed03ull));
}
/* Uniform in [0, 1) with 53 bits. */
static inline double asg__rng_uniform(uint64_t key, uint64_t counter) {
  return (double)(asg__rng_bits(key, counter) >> 11) * (1.0 / 9007199254740992.0);
}
/* Standard normal (Box-Muller on two counters). */
double asg__rng_normal(uint64_t key, uint64_t counter);
/* The key of a random node: its seed mixed with the program's run count. */
static inline uint64_t asg__rng_key(uint64_t seed, uint64_t run) {
  return asg__mix64(seed ^ asg__mix64(run + 0x632be59bd9b4e019ull));
}
uint64_t asg__hash_str(const char *s);

#ifdef __cplusplus
}
#endif

#endif
