/* The graph IR: arena, nodes, scopes, inputs, constants and variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checks.h"
#include "core/internal.h"
#include "core/symbol.h"

const asg_op_info asg__op_info[ASG_OP_COUNT] = {
#define ASG_OP(id, nm, ar, fl) [ASG_OP_##id] = {nm, ar, ASG__FLAGS(fl)},
#define ELEM ASG_OPF_ELEM
#define REDUCE ASG_OPF_REDUCE
#define SOURCE ASG_OPF_SOURCE
#define NODIFF ASG_OPF_NODIFF
#define BWD ASG_OPF_BWD
#define VIEW ASG_OPF_VIEW
#define ASSIGN ASG_OPF_ASSIGN
#define RANDOM ASG_OPF_RANDOM
#define COLL ASG_OPF_COLL
#define FUSED ASG_OPF_FUSED
#define ASG__FLAGS(f) (unsigned)(f)
#include "ops/ops.def"
#undef ASG_OP
};

const char *asg__op_name(asg_op op) {
  return (unsigned)op < ASG_OP_COUNT ? asg__op_info[op].name : "?";
}

/* ---- arena ---- */
struct asg_arena_block {
  asg_arena_block *next;
  size_t used, cap;
  _Alignas(64) unsigned char data[];
};

void *asg__arena_alloc(asg_arena *a, size_t bytes) {
  bytes = (bytes + 63) & ~(size_t)63;
  asg_arena_block *b = a->head;
  if (!b || b->cap - b->used < bytes) {
    size_t cap = bytes > 65536 ? bytes : 65536;
    b = malloc(sizeof *b + cap);
    if (!b) return NULL;
    b->next = a->head;
    b->used = 0;
    b->cap = cap;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += bytes;
  return p;
}

char *asg__arena_strdup(asg_arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *d = asg__arena_alloc(a, n);
  if (d) memcpy(d, s, n);
  return d;
}

void asg__arena_free(asg_arena *a) {
  asg_arena_block *b = a->head;
  while (b) {
    asg_arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
}

/* ---- graph ---- */
asg_graph *asg_graph_new(void) {
  asg_graph *g = calloc(1, sizeof *g);
  if (!g) {
    asg__error(ASG_ERR_OOM, "asg_graph_new: out of memory");
    return NULL;
  }
  g->magic = ASG_GRAPH_MAGIC;
  g->seed = 0x5eed;
  return g;
}

/* Freeing twice or using the graph or its tensors afterwards is undefined
 * (graph.h): nothing is marked for later calls to inspect. */
void asg_graph_free(asg_graph *g) {
  if (!g) return;
  asg__arena_free(&g->arena);
  asg__sym_free(g);
  free(g->nodes);
  free(g->updates);
  free(g);
}

const char *asg_graph_error(const asg_graph *g) {
  if (!g) return "graph is NULL";
  return g->status == ASG_OK ? NULL : g->err;
}

asg_status asg_graph_status(const asg_graph *g) { return g ? g->status : ASG_ERR_INVALID; }
void asg_graph_set_seed(asg_graph *g, uint64_t seed) {
  if (g) g->seed = seed;
}
int asg_graph_node_count(const asg_graph *g) { return g ? g->n_nodes : 0; }

void asg_scope_push(asg_graph *g, const char *name) {
  if (!g || !name) return;
  if (g->scope_depth >= ASG_SCOPE_DEPTH) {
    asg__fail(g, ASG_ERR_INVALID, "scope", "scopes nested deeper than %d", ASG_SCOPE_DEPTH);
    return;
  }
  size_t len = strlen(g->scope);
  g->scope_len[g->scope_depth++] = (int)len;
  if (len + strlen(name) + 2 >= ASG_SCOPE_MAX) {
    asg__fail(g, ASG_ERR_INVALID, "scope", "scope name too long");
    return;
  }
  if (len) g->scope[len++] = '/';
  strcpy(g->scope + len, name);
}

void asg_scope_pop(asg_graph *g) {
  if (!g || g->scope_depth == 0) return;
  g->scope[g->scope_len[--g->scope_depth]] = '\0';
}

const char *asg_scope_current(const asg_graph *g) { return g ? g->scope : ""; }

/* ---- nodes ---- */
bool asg__tensor_ok(const asg_tensor *t) {
  return t && t->magic == ASG_NODE_MAGIC && t->graph && t->graph->magic == ASG_GRAPH_MAGIC;
}

asg_graph *asg__graph_of(const char *op, int n, asg_tensor *const *in) {
  asg_graph *g = NULL;
  int bad = -1;
  for (int i = 0; i < n; i++) {
    if (!in[i]) {
      if (bad < 0) bad = i;
      continue;
    }
    if (in[i]->magic != ASG_NODE_MAGIC) {
      asg__error(ASG_ERR_INVALID, "%s: input %d is not a tensor", op, i);
      return NULL;
    }
    if (!g)
      g = in[i]->graph;
    else if (in[i]->graph != g)
      return asg__fail(g, ASG_ERR_INVALID, op, "input %d belongs to another graph", i), NULL;
  }
  if (bad >= 0) {
    /* A NULL input is either fallout of an earlier error (keep that one) or
     * a caller mistake we report now. */
    if (g && g->status == ASG_OK)
      asg__fail(g, ASG_ERR_INVALID, op, "input %d is NULL", bad);
    else if (!g)
      asg__error(ASG_ERR_INVALID, "%s: input is NULL", op);
    return NULL;
  }
  if (g && g->status != ASG_OK) return NULL; /* poisoned graph: stop building */
  return g;
}

asg_tensor *asg__node(asg_graph *g, asg_op op, asg_dtype dt, asg_shape shape, int n_in,
                      asg_tensor *const *in) {
  if (!g || g->status != ASG_OK) return NULL;
  /* every node's shape passes here: later size arithmetic (kernels, the
   * memory plan) relies on it not overflowing */
  char why[300];
  if ((unsigned)dt >= ASG_DTYPE_COUNT)
    return asg__fail(g, ASG_ERR_DTYPE, asg__op_name(op), "unknown dtype %d", (int)dt);
  if (!asg__shape_check_g(g, shape, asg_dtype_size(dt), NULL, why, sizeof why))
    return asg__fail(g, ASG_ERR_SHAPE, asg__op_name(op), "%s", why);
  /* a symbolic dim that can be < 1 (a difference, a floor) is checked
   * when the symbols are bound: no node has an empty dim */
  for (int i = 0; i < shape.ndim; i++)
    if (asg__dim_is_sym(shape.dims[i]) &&
        !asg__dim_require_ge(g, shape.dims[i], 1, asg__op_name(op), NULL))
      return NULL;
  for (int i = shape.ndim; i < ASG_MAX_DIMS; i++)
    shape.dims[i] = 0;
  if (g->n_nodes == g->cap_nodes) {
    int cap = g->cap_nodes ? g->cap_nodes * 2 : 256;
    asg_tensor **nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
    if (!nn) return asg__fail(g, ASG_ERR_OOM, asg__op_name(op), "out of memory");
    g->nodes = nn;
    g->cap_nodes = cap;
  }
  asg_tensor *t = asg__arena_alloc(&g->arena, sizeof *t);
  asg_tensor **ins = n_in ? asg__arena_alloc(&g->arena, sizeof(asg_tensor *) * (size_t)n_in) : NULL;
  char *scope = asg__arena_strdup(&g->arena, g->scope);
  if (!t || (n_in && !ins) || !scope)
    return asg__fail(g, ASG_ERR_OOM, asg__op_name(op), "out of memory");
  memset(t, 0, sizeof *t);
  t->magic = ASG_NODE_MAGIC;
  t->id = g->n_nodes;
  t->graph = g;
  t->op = op;
  t->dtype = dt;
  t->shape = shape;
  t->n_in = n_in;
  t->in = ins;
  for (int i = 0; i < n_in; i++)
    ins[i] = in[i];
  t->scope = scope;
  g->nodes[g->n_nodes++] = t;
  return t;
}

/* ---- introspection ---- */
asg_graph *asg_tensor_graph(const asg_tensor *t) { return asg__tensor_ok(t) ? t->graph : NULL; }
asg_shape asg_tensor_shape(const asg_tensor *t) {
  return asg__tensor_ok(t) ? t->shape : (asg_shape){-1, {0}};
}
asg_dtype asg_tensor_dtype(const asg_tensor *t) {
  return asg__tensor_ok(t) ? t->dtype : ASG_DTYPE_COUNT;
}
const char *asg_tensor_name(const asg_tensor *t) { return asg__tensor_ok(t) ? t->name : NULL; }
const char *asg_tensor_scope(const asg_tensor *t) { return asg__tensor_ok(t) ? t->scope : NULL; }
const char *asg_tensor_op_name(const asg_tensor *t) {
  return asg__tensor_ok(t) ? asg__op_name(t->op) : NULL;
}

/* ---- leaves ---- */
/* Leaves have no empty dims; sizes are checked by asg__node (which leaves
 * also go through before any data is copied). Inputs and fills may have
 * symbolic dims of g; variables and constants (whose data is fixed) not. */
static bool valid_shape_sym(asg_graph *g, const char *op, asg_shape s, bool sym_ok) {
  char buf[128];
  if (s.ndim < 0 || s.ndim > ASG_MAX_DIMS) {
    asg__fail(g, ASG_ERR_SHAPE, op, "rank %d out of range 0..%d", s.ndim, ASG_MAX_DIMS);
    return false;
  }
  for (int i = 0; i < s.ndim; i++) {
    if (asg__dim_is_sym(s.dims[i]) && asg__dim_valid(g, s.dims[i])) {
      if (sym_ok) continue;
      asg__fail(g, ASG_ERR_SHAPE, op,
                "shape %s has a symbolic dim: %ss need constant shapes (inputs and fills may "
                "be symbolic)",
                asg__shape_str_g(g, s, buf, sizeof buf), op);
      return false;
    }
    if (s.dims[i] <= 0) {
      asg__fail(g, ASG_ERR_SHAPE, op, "shape %s has a non-positive dim%s",
                asg__shape_str_g(g, s, buf, sizeof buf),
                asg__dim_is_sym(s.dims[i]) ? " (not a symbolic dim of this graph)" : "");
      return false;
    }
  }
  return true;
}
static bool valid_shape(asg_graph *g, const char *op, asg_shape s) {
  return valid_shape_sym(g, op, s, true);
}

static bool usable(asg_graph *g, const char *op) {
  if (!g || g->magic != ASG_GRAPH_MAGIC) {
    asg__error(ASG_ERR_INVALID, "%s: graph is NULL or not a graph", op);
    return false;
  }
  return g->status == ASG_OK;
}

static bool check_dtype(asg_graph *g, const char *op, asg_dtype dt) {
  if ((unsigned)dt >= ASG_DTYPE_COUNT) {
    asg__fail(g, ASG_ERR_DTYPE, op, "unknown dtype %d", (int)dt);
    return false;
  }
  return true;
}

asg_tensor *asg_graph_find(const asg_graph *g, const char *name) {
  if (!g || !name || g->magic != ASG_GRAPH_MAGIC) return NULL;
  for (int i = 0; i < g->n_nodes; i++) {
    asg_tensor *t = g->nodes[i];
    if ((t->op == ASG_OP_INPUT || t->op == ASG_OP_VARIABLE) && strcmp(t->name, name) == 0) return t;
  }
  return NULL;
}

static asg_tensor *named_leaf(asg_graph *g, asg_op op, const char *name, asg_dtype dt,
                              asg_shape shape) {
  const char *opn = asg__op_name(op);
  if (!usable(g, opn) || !check_dtype(g, opn, dt) ||
      !valid_shape_sym(g, opn, shape, op == ASG_OP_INPUT))
    return NULL;
  if (!name || !name[0]) return asg__fail(g, ASG_ERR_INVALID, opn, "a name is required");
  if (asg_graph_find(g, name))
    return asg__fail(g, ASG_ERR_INVALID, opn, "name '%s' is already used", name);
  asg_tensor *t = asg__node(g, op, dt, shape, 0, NULL);
  if (!t) return NULL;
  t->name = asg__arena_strdup(&g->arena, name);
  if (!t->name) return asg__fail(g, ASG_ERR_OOM, opn, "out of memory");
  return t;
}

asg_tensor *asg_input(asg_graph *g, const char *name, asg_dtype dt, asg_shape shape) {
  return named_leaf(g, ASG_OP_INPUT, name, dt, shape);
}

asg_tensor *asg_variable(asg_graph *g, const char *name, asg_dtype dt, asg_shape shape,
                         asg_init init) {
  if (usable(g, "variable") && init.kind == ASG_INIT_DATA && !init.data)
    return asg__fail(g, ASG_ERR_INVALID, "variable", "'%s': data initializer without data",
                     name ? name : "?");
  asg_tensor *t = named_leaf(g, ASG_OP_VARIABLE, name, dt, shape);
  if (!t) return NULL;
  if (init.seed == 0) init.seed = asg__mix64(g->seed ^ asg__hash_str(name));
  if (init.kind == ASG_INIT_DATA) { /* copy: the caller's buffer may go away */
    size_t bytes = (size_t)asg_shape_numel(shape) * asg_dtype_size(dt);
    void *d = asg__arena_alloc(&g->arena, bytes ? bytes : 1);
    if (!d) return asg__fail(g, ASG_ERR_OOM, "variable", "out of memory");
    memcpy(d, init.data, bytes);
    init.data = d;
  }
  t->init = init;
  return t;
}

asg_tensor *asg_constant(asg_graph *g, asg_dtype dt, asg_shape shape, const void *data) {
  if (!usable(g, "constant") || !check_dtype(g, "constant", dt) ||
      !valid_shape_sym(g, "constant", shape, false))
    return NULL;
  if (!data) return asg__fail(g, ASG_ERR_INVALID, "constant", "data is NULL");
  asg_tensor *t = asg__node(g, ASG_OP_CONSTANT, dt, shape, 0, NULL); /* checks the size */
  if (!t) return NULL;
  size_t bytes = (size_t)asg_shape_numel(shape) * asg_dtype_size(dt);
  void *d = asg__arena_alloc(&g->arena, bytes ? bytes : 1);
  if (!d) return asg__fail(g, ASG_ERR_OOM, "constant", "out of memory");
  memcpy(d, data, bytes);
  t->data = d;
  return t;
}

asg_tensor *asg_fill(asg_graph *g, asg_dtype dt, asg_shape shape, double value) {
  if (!usable(g, "fill") || !check_dtype(g, "fill", dt) || !valid_shape(g, "fill", shape))
    return NULL;
  asg_tensor *t = asg__node(g, ASG_OP_FILL, dt, shape, 0, NULL);
  if (t) t->attr.f[0] = value;
  return t;
}

asg_tensor *asg_scalar(asg_graph *g, asg_dtype dt, double value) {
  return asg_fill(g, dt, ASG_SCALAR, value);
}

int asg_graph_variable_count(const asg_graph *g) {
  int n = 0;
  if (!g) return 0;
  for (int i = 0; i < g->n_nodes; i++)
    n += g->nodes[i]->op == ASG_OP_VARIABLE;
  return n;
}

asg_tensor *asg_graph_variable(const asg_graph *g, int k) {
  if (!g) return NULL;
  for (int i = 0; i < g->n_nodes; i++)
    if (g->nodes[i]->op == ASG_OP_VARIABLE && k-- == 0) return g->nodes[i];
  return NULL;
}

/* ---- public view of the op table ---- */
int asg_op_count(void) { return ASG_OP_COUNT; }
const char *asg_op_name(int op) {
  return op >= 0 && op < ASG_OP_COUNT ? asg__op_info[op].name : NULL;
}
int asg_op_arity(int op) { return op >= 0 && op < ASG_OP_COUNT ? asg__op_info[op].arity : 0; }
static unsigned op_flags(int op) {
  return op >= 0 && op < ASG_OP_COUNT ? asg__op_info[op].flags : 0;
}
bool asg_op_is_nondifferentiable(int op) { return op_flags(op) & ASG_OPF_NODIFF; }
bool asg_op_is_backward(int op) { return op_flags(op) & ASG_OPF_BWD; }
bool asg_op_is_source(int op) { return op_flags(op) & ASG_OPF_SOURCE; }
bool asg_op_is_fused(int op) { return op_flags(op) & ASG_OPF_FUSED; }

void asg_variable_set_trainable(asg_tensor *v, bool trainable) {
  if (asg__tensor_ok(v) && v->op == ASG_OP_VARIABLE) v->frozen = !trainable;
}
bool asg_variable_is_trainable(const asg_tensor *v) {
  return asg__tensor_ok(v) && v->op == ASG_OP_VARIABLE && !v->frozen &&
         asg_dtype_is_float(v->dtype);
}

void asg_graph_set_training(asg_graph *g, bool training) {
  if (g) g->eval_mode = !training;
}
bool asg_graph_is_training(const asg_graph *g) { return g && !g->eval_mode; }

asg_status asg_graph_add_update(asg_graph *g, asg_tensor *a) {
  if (!g || !asg__tensor_ok(a) || a->graph != g || a->op != ASG_OP_ASSIGN)
    return asg__error(ASG_ERR_INVALID, "asg_graph_add_update: not an assign node of this graph");
  if (g->n_updates == g->cap_updates) {
    int cap = g->cap_updates ? 2 * g->cap_updates : 16;
    asg_tensor **u = realloc(g->updates, sizeof *u * (size_t)cap);
    if (!u) return asg__error(ASG_ERR_OOM, "asg_graph_add_update: out of memory");
    g->updates = u;
    g->cap_updates = cap;
  }
  g->updates[g->n_updates++] = a;
  return ASG_OK;
}
int asg_graph_update_count(const asg_graph *g) { return g ? g->n_updates : 0; }
asg_tensor *asg_graph_update(const asg_graph *g, int i) {
  return g && i >= 0 && i < g->n_updates ? g->updates[i] : NULL;
}

void *asg_graph_alloc(asg_graph *g, size_t bytes) {
  if (!g || g->magic != ASG_GRAPH_MAGIC) return NULL;
  void *p = asg__arena_alloc(&g->arena, bytes ? bytes : 1);
  if (p)
    memset(p, 0, bytes);
  else
    asg__fail(g, ASG_ERR_OOM, "alloc", "out of memory");
  return p;
}
