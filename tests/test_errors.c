/* Bad input everywhere: every error gives an error status or NULL with a
 * non-empty asg_last_error(), graph errors are sticky and name the scope,
 * the op and the shapes, and the process keeps running. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The call failed (cond) and left a message. */
#define EXPECT_ERR(cond, ...)                                                                      \
  do {                                                                                             \
    bool ok_ = (cond);                                                                             \
    TU_CHECK(ok_ &&asg_last_error()[0] != '\0', __VA_ARGS__);                                      \
  } while (0)

/* A fresh graph, an op that fails, and the graph error naming op. */
#define GRAPH_FAIL(expr, opname, what)                                                             \
  do {                                                                                             \
    asg_clear_error();                                                                             \
    asg_tensor *r_ = (expr);                                                                       \
    TU_CHECK(r_ == NULL && asg_graph_status(g) != ASG_OK &&                                        \
                 tu_contains(asg_graph_error(g), opname) && asg_last_error()[0],                   \
             "%s: got %s / '%s'", what, r_ ? "a tensor" : "NULL",                                  \
             asg_graph_error(g) ? asg_graph_error(g) : "(no graph error)");                        \
  } while (0)

static void test_scope_message_sticky(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(128, 512));
  asg_scope_push(g, "net");
  asg_scope_push(g, "fc2");
  TU_CHECK(strcmp(asg_scope_current(g), "net/fc2") == 0, "scope %s", asg_scope_current(g));
  asg_tensor *w = asg_variable(g, "fc2/w", ASG_F32, ASG_SHAPE(256, 10), asg_init_zeros());
  TU_CHECK(w && strcmp(asg_tensor_scope(w), "net/fc2") == 0, "node remembers its scope");
  asg_clear_error();
  asg_tensor *y = asg_matmul(x, w);
  const char *e = asg_graph_error(g);
  TU_CHECK(y == NULL, "mismatched matmul returns NULL");
  TU_CHECK(asg_graph_status(g) == ASG_ERR_SHAPE, "status %d", asg_graph_status(g));
  TU_CHECK(tu_contains(e, "fc2/matmul") && tu_contains(e, "[128,512]") &&
               tu_contains(e, "[256,10]"),
           "message: %s", e);
  TU_CHECK(tu_contains(asg_last_error(), "fc2/matmul"), "last_error: %s", asg_last_error());
  char first[1024];
  snprintf(first, sizeof first, "%s", e ? e : "");
  asg_scope_pop(g);
  asg_scope_pop(g);
  asg_scope_pop(g); /* extra pop is harmless */
  TU_CHECK(strcmp(asg_scope_current(g), "") == 0, "scope popped");
  /* sticky: later ops (even valid ones) return NULL, the first message stays */
  TU_CHECK(asg_relu(y) == NULL, "op on a poisoned tensor");
  TU_CHECK(asg_add(x, x) == NULL, "valid op on a failed graph");
  TU_CHECK(asg_add(x, asg_fill(g, ASG_F32, ASG_SHAPE(3), 1)) == NULL, "another bad op");
  TU_CHECK(asg_input(g, "z", ASG_F32, ASG_SHAPE(2)) == NULL, "new input on a failed graph");
  TU_CHECK(strcmp(asg_graph_error(g), first) == 0, "first message kept: %s", asg_graph_error(g));
  /* compile refuses the graph with that message */
  asg_clear_error();
  asg_tensor *outs[1] = {x};
  asg_program *p = asg_compile(g, 1, outs, NULL);
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), "fc2/matmul") &&
               tu_contains(asg_last_error(), "[256,10]"),
           "compile of a failed graph: %s", asg_last_error());
  asg_tensor *gr = NULL;
  EXPECT_ERR(asg_grad(y, 1, &x, &gr) != ASG_OK, "grad on a failed graph");
  asg_graph_free(g);
}

static void test_graph_errors(void) {
  asg_graph *g;
#define FRESH() (g = asg_graph_new())
  /* dtype mismatch */
  FRESH();
  GRAPH_FAIL(asg_add(asg_fill(g, ASG_F32, ASG_SHAPE(2), 1), asg_fill(g, ASG_F64, ASG_SHAPE(2), 1)),
             "add", "f32 + f64");
  TU_CHECK(asg_graph_status(g) == ASG_ERR_DTYPE && tu_contains(asg_graph_error(g), "f32") &&
               tu_contains(asg_graph_error(g), "f64"),
           "dtype message: %s", asg_graph_error(g));
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_matmul(asg_fill(g, ASG_F32, ASG_SHAPE(2, 2), 1),
                        asg_fill(g, ASG_F64, ASG_SHAPE(2, 2), 1)),
             "matmul", "matmul f32 x f64");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_where(asg_fill(g, ASG_I32, ASG_SHAPE(2), 1), asg_fill(g, ASG_F32, ASG_SHAPE(2), 1),
                       asg_fill(g, ASG_F32, ASG_SHAPE(2), 1)),
             "where", "where with int condition on floats");
  asg_graph_free(g);
  /* float-only ops on integers */
  struct {
    const char *name;
    asg_tensor *(*f)(asg_tensor *);
  } fonly[] = {{"exp", asg_exp},
               {"log", asg_log},
               {"sqrt", asg_sqrt},
               {"rsqrt", asg_rsqrt},
               {"sin", asg_sin},
               {"cos", asg_cos},
               {"tanh", asg_tanh},
               {"erf", asg_erf},
               {"sigmoid", asg_sigmoid},
               {"gelu", asg_gelu},
               {"gelu_tanh", asg_gelu_tanh},
               {"silu", asg_silu}};
  for (size_t i = 0; i < sizeof fonly / sizeof fonly[0]; i++)
    for (int d = ASG_I32; d <= ASG_I64; d++) {
      FRESH();
      char what[64];
      snprintf(what, sizeof what, "%s on %s", fonly[i].name, asg_dtype_name((asg_dtype)d));
      GRAPH_FAIL(fonly[i].f(asg_fill(g, (asg_dtype)d, ASG_SHAPE(3), 1)), fonly[i].name, what);
      TU_CHECK(asg_graph_status(g) == ASG_ERR_DTYPE, "%s: status", what);
      asg_graph_free(g);
    }
  FRESH();
  GRAPH_FAIL(asg_mean(asg_fill(g, ASG_I32, ASG_SHAPE(3), 1), ASG_ALL_AXES, false), "mean",
             "mean i32");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_var(asg_fill(g, ASG_I64, ASG_SHAPE(3), 1), ASG_ALL_AXES, 0, false), "var",
             "var i64");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_pow(asg_fill(g, ASG_I32, ASG_SHAPE(3), 1), asg_fill(g, ASG_I32, ASG_SHAPE(3), 2)),
             "pow", "pow i32");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_matmul(asg_fill(g, ASG_I32, ASG_SHAPE(2, 2), 1),
                        asg_fill(g, ASG_I32, ASG_SHAPE(2, 2), 1)),
             "matmul", "matmul i32");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_elu(asg_fill(g, ASG_I32, ASG_SHAPE(2), 1), 1.0), "elu", "elu i32");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_cast(asg_fill(g, ASG_F32, ASG_SHAPE(2), 1), ASG_BF16), "cast", "cast to bf16");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_cast(asg_fill(g, ASG_F32, ASG_SHAPE(2), 1), (asg_dtype)99), "cast",
             "cast to bad dtype");
  asg_graph_free(g);

  /* shapes */
  FRESH();
  GRAPH_FAIL(
      asg_add(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), asg_fill(g, ASG_F32, ASG_SHAPE(4), 1)),
      "add", "[2,3] + [4]");
  TU_CHECK(tu_contains(asg_graph_error(g), "[2,3]") && tu_contains(asg_graph_error(g), "[4]"),
           "shapes in message");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(
      asg_matmul(asg_fill(g, ASG_F32, ASG_SHAPE(3), 1), asg_fill(g, ASG_F32, ASG_SHAPE(3, 2), 1)),
      "matmul", "matmul of a vector");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_matmul(asg_fill(g, ASG_F32, ASG_SHAPE(2, 2, 3), 1),
                        asg_fill(g, ASG_F32, ASG_SHAPE(3, 3, 2), 1)),
             "matmul", "matmul batch mismatch");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_matmul_t(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1),
                          asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), false, false),
             "matmul", "matmul_t inner mismatch");
  TU_CHECK(tu_contains(asg_graph_error(g), "[2,3]"), "%s", asg_graph_error(g));
  asg_graph_free(g);
  /* reshape */
  FRESH();
  GRAPH_FAIL(asg_reshape(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_SHAPE(4, 2)), "reshape",
             "6 -> 8");
  TU_CHECK(tu_contains(asg_graph_error(g), "[2,3]") && tu_contains(asg_graph_error(g), "[4,2]"),
           "%s", asg_graph_error(g));
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_reshape(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_SHAPE(-1, -1)), "reshape",
             "two -1");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_reshape(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_SHAPE(-1, 4)), "reshape",
             "-1 not exact");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_reshape(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_SHAPE(0, 6)), "reshape",
             "zero dim");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_squeeze(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), 0), "squeeze", "squeeze non-1");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_unsqueeze(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), 4), "unsqueeze",
             "unsqueeze axis");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_broadcast_to(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_SHAPE(3, 3)),
             "broadcast_to", "broadcast_to");
  asg_graph_free(g);
  /* reductions */
  FRESH();
  GRAPH_FAIL(asg_sum(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_AXES(2), false), "sum",
             "axis 2 of rank 2");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_max(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_AXES(-3), false), "max",
             "axis -3");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_sum(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), ASG_AXES(1, -1), false), "sum",
             "axis twice");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_argmax(asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 1), 5, false), "argmax",
             "argmax axis");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_var(asg_fill(g, ASG_F32, ASG_SHAPE(1, 3), 1), ASG_AXES(0), 1, false), "var",
             "var no dof");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_var(asg_fill(g, ASG_F32, ASG_SHAPE(4, 3), 1), ASG_AXES(0), -1, false), "var",
             "negative correction");
  asg_graph_free(g);
  /* bad attributes */
  FRESH();
  GRAPH_FAIL(asg_clamp(asg_fill(g, ASG_F32, ASG_SHAPE(2), 1), 1, -1), "clamp", "clamp lo > hi");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_softplus(asg_fill(g, ASG_F32, ASG_SHAPE(2), 1), 0, 20), "softplus",
             "softplus beta 0");
  asg_graph_free(g);
  /* assign */
  FRESH();
  GRAPH_FAIL(
      asg_assign(asg_fill(g, ASG_F32, ASG_SHAPE(2), 1), asg_fill(g, ASG_F32, ASG_SHAPE(2), 1)),
      "assign", "assign to a non-variable");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_assign(asg_variable(g, "v", ASG_F32, ASG_SHAPE(2), asg_init_zeros()),
                        asg_fill(g, ASG_F32, ASG_SHAPE(3), 1)),
             "assign", "assign shape");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_assign(asg_variable(g, "v", ASG_F32, ASG_SHAPE(2), asg_init_zeros()),
                        asg_fill(g, ASG_F64, ASG_SHAPE(2), 1)),
             "assign", "assign dtype");
  asg_graph_free(g);
  /* leaves */
  FRESH();
  asg_input(g, "x", ASG_F32, ASG_SHAPE(2));
  GRAPH_FAIL(asg_input(g, "x", ASG_F32, ASG_SHAPE(2)), "x", "duplicate input");
  asg_graph_free(g);
  FRESH();
  asg_variable(g, "w", ASG_F32, ASG_SHAPE(2), asg_init_zeros());
  GRAPH_FAIL(asg_variable(g, "w", ASG_F32, ASG_SHAPE(3), asg_init_zeros()), "w",
             "duplicate variable");
  asg_graph_free(g);
  FRESH();
  asg_input(g, "w", ASG_F32, ASG_SHAPE(2));
  GRAPH_FAIL(asg_variable(g, "w", ASG_F32, ASG_SHAPE(2), asg_init_zeros()), "w",
             "variable named like an input");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_input(g, NULL, ASG_F32, ASG_SHAPE(2)), "input", "input without a name");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 0)), "input", "zero dim input");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_input(g, "x", ASG_F32, ASG_SHAPE(2, -3)), "input", "negative dim input");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_input(g, "x", (asg_dtype)42, ASG_SHAPE(2)), "input", "bad dtype");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_input(g, "x", ASG_F32, ((asg_shape){9, {1}})), "input", "rank 9");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_constant(g, ASG_F32, ASG_SHAPE(2), NULL), "constant", "constant without data");
  asg_graph_free(g);
  FRESH();
  GRAPH_FAIL(asg_variable(g, "w", ASG_F32, ASG_SHAPE(2), asg_init_data(NULL)), "variable",
             "data init without data");
  asg_graph_free(g);
  /* two live graphs */
  {
    asg_graph *g1 = asg_graph_new(), *g2 = asg_graph_new();
    asg_tensor *a = asg_fill(g1, ASG_F32, ASG_SHAPE(2), 1),
               *b = asg_fill(g2, ASG_F32, ASG_SHAPE(2), 1);
    asg_clear_error();
    TU_CHECK(asg_add(a, b) == NULL && tu_contains(asg_last_error(), "graph"), "mixing graphs: %s",
             asg_last_error());
    TU_CHECK(asg_graph_status(g1) != ASG_OK, "the first operand's graph carries the error");
    asg_graph_free(g1);
    asg_graph_free(g2);
  }
  /* gradients */
  FRESH();
  {
    asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(3), asg_init_ones()), *gr = NULL;
    asg_clear_error();
    asg_status st = asg_grad(asg_mul(x, x), 1, &x, &gr);
    TU_CHECK(st != ASG_OK && gr == NULL && tu_contains(asg_last_error(), "loss") &&
                 tu_contains(asg_last_error(), "[3]"),
             "grad of a non-scalar: %s", asg_last_error());
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *x = asg_variable(g, "x", ASG_I32, ASG_SHAPE(1), asg_init_ones()), *gr = NULL;
    EXPECT_ERR(asg_grad(asg_sum(x, ASG_ALL_AXES, false), 1, &x, &gr) != ASG_OK,
               "grad of an int loss");
  }
  asg_graph_free(g);
  {
    asg_graph *g1 = asg_graph_new(), *g2 = asg_graph_new();
    asg_tensor *x1 = asg_variable(g1, "x", ASG_F64, ASG_SHAPE(1), asg_init_ones());
    asg_tensor *x2 = asg_variable(g2, "x", ASG_F64, ASG_SHAPE(1), asg_init_ones()), *gr = NULL;
    EXPECT_ERR(asg_grad(asg_sum(x1, ASG_ALL_AXES, false), 1, &x2, &gr) != ASG_OK,
               "grad wrt another graph's tensor");
    asg_graph_free(g1);
    asg_graph_free(g2);
  }
#undef FRESH
}

/* NULL arguments: no crash, an error. */
static void test_nulls(void) {
  asg_clear_error();
  TU_CHECK(asg_relu(NULL) == NULL && asg_last_error()[0], "relu(NULL)");
  asg_clear_error();
  TU_CHECK(asg_add(NULL, NULL) == NULL && asg_last_error()[0], "add(NULL, NULL)");
  TU_CHECK(asg_matmul(NULL, NULL) == NULL, "matmul(NULL, NULL)");
  TU_CHECK(asg_where(NULL, NULL, NULL) == NULL, "where(NULL...)");
  TU_CHECK(asg_sum(NULL, ASG_ALL_AXES, false) == NULL, "sum(NULL)");
  TU_CHECK(asg_argmax(NULL, 0, false) == NULL, "argmax(NULL)");
  TU_CHECK(asg_var(NULL, ASG_ALL_AXES, 0, false) == NULL, "var(NULL)");
  TU_CHECK(asg_cast(NULL, ASG_F32) == NULL, "cast(NULL)");
  TU_CHECK(asg_clamp(NULL, 0, 1) == NULL, "clamp(NULL)");
  TU_CHECK(asg_softplus(NULL, 1, 20) == NULL, "softplus(NULL)");
  TU_CHECK(asg_reshape(NULL, ASG_SHAPE(1)) == NULL, "reshape(NULL)");
  TU_CHECK(asg_broadcast_to(NULL, ASG_SHAPE(1)) == NULL, "broadcast_to(NULL)");
  TU_CHECK(asg_squeeze(NULL, 0) == NULL && asg_unsqueeze(NULL, 0) == NULL &&
               asg_flatten(NULL, 0) == NULL,
           "squeeze/unsqueeze/flatten(NULL)");
  TU_CHECK(asg_assign(NULL, NULL) == NULL, "assign(NULL)");
  TU_CHECK(asg_stop_gradient(NULL) == NULL, "stop_gradient(NULL)");
  TU_CHECK(asg_add_scalar(NULL, 1) == NULL && asg_mul_scalar(NULL, 1) == NULL &&
               asg_pow_scalar(NULL, 2) == NULL,
           "scalar helpers (NULL)");
  asg_clear_error();
  TU_CHECK(asg_input(NULL, "x", ASG_F32, ASG_SHAPE(1)) == NULL && asg_last_error()[0],
           "input(NULL graph)");
  TU_CHECK(asg_variable(NULL, "x", ASG_F32, ASG_SHAPE(1), asg_init_zeros()) == NULL,
           "variable(NULL graph)");
  TU_CHECK(asg_variable(NULL, NULL, ASG_F32, ASG_SHAPE(1), asg_init_data(NULL)) == NULL,
           "variable(NULL, NULL)");
  TU_CHECK(asg_constant(NULL, ASG_F32, ASG_SHAPE(1), NULL) == NULL, "constant(NULL graph)");
  TU_CHECK(asg_fill(NULL, ASG_F32, ASG_SHAPE(1), 0) == NULL, "fill(NULL graph)");
  TU_CHECK(asg_scalar(NULL, ASG_F32, 0) == NULL, "scalar(NULL graph)");
  asg_graph_free(NULL);
  asg_scope_push(NULL, "a");
  asg_scope_pop(NULL);
  asg_graph_set_seed(NULL, 1);
  TU_CHECK(asg_graph_error(NULL) != NULL && asg_graph_status(NULL) != ASG_OK, "graph_error(NULL)");
  TU_CHECK(asg_graph_find(NULL, "x") == NULL && asg_graph_node_count(NULL) == 0,
           "graph introspection(NULL)");
  TU_CHECK(asg_graph_variable_count(NULL) == 0 && asg_graph_variable(NULL, 0) == NULL,
           "variables(NULL)");
  TU_CHECK(asg_tensor_shape(NULL).ndim < 0 && asg_tensor_dtype(NULL) == ASG_DTYPE_COUNT,
           "tensor_shape(NULL)");
  TU_CHECK(asg_tensor_name(NULL) == NULL && asg_tensor_op_name(NULL) == NULL &&
               asg_tensor_graph(NULL) == NULL,
           "tensor introspection(NULL)");
  asg_variable_set_trainable(NULL, true);
  TU_CHECK(!asg_variable_is_trainable(NULL), "is_trainable(NULL)");
  asg_clear_error();
  TU_CHECK(asg_init_fill(asg_init_zeros(), ASG_F32, ASG_SHAPE(2), 0, NULL) != ASG_OK &&
               asg_last_error()[0],
           "init_fill(NULL dst)");
  {
    float buf[2];
    EXPECT_ERR(asg_init_fill(asg_init_data(NULL), ASG_F32, ASG_SHAPE(2), 0, buf) != ASG_OK,
               "init_fill(data NULL)");
    EXPECT_ERR(asg_init_fill(asg_init_zeros(), ASG_BF16, ASG_SHAPE(2), 0, buf) != ASG_OK,
               "init_fill(bf16)");
    asg_init bad = asg_init_zeros();
    bad.kind = (asg_init_kind)99;
    EXPECT_ERR(asg_init_fill(bad, ASG_F32, ASG_SHAPE(2), 0, buf) != ASG_OK, "init_fill(bad kind)");
  }
  asg_tensor *gr = NULL;
  asg_clear_error();
  EXPECT_ERR(asg_grad(NULL, 0, NULL, NULL) != ASG_OK, "grad(NULL)");
  EXPECT_ERR(asg_vjp(NULL, NULL, 0, NULL, NULL) != ASG_OK, "vjp(NULL)");
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(1), asg_init_ones());
    asg_tensor *l = asg_sum(x, ASG_ALL_AXES, false);
    asg_clear_error();
    EXPECT_ERR(asg_grad(l, 1, NULL, &gr) != ASG_OK, "grad(wrt NULL)");
    EXPECT_ERR(asg_grad(l, -1, &x, &gr) != ASG_OK, "grad(n < 0)");
    asg_tensor *nul = NULL;
    asg_clear_error();
    EXPECT_ERR(asg_grad(l, 1, &nul, &gr) != ASG_OK, "grad(wrt[0] NULL)");
    asg_graph_free(g);
  }
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_fill(g, ASG_F32, ASG_SHAPE(2), 1);
    asg_clear_error();
    TU_CHECK(asg_add(x, NULL) == NULL && asg_graph_status(g) != ASG_OK &&
                 tu_contains(asg_graph_error(g), "add"),
             "add(x, NULL) fails x's graph: %s", asg_graph_error(g));
    asg_graph_free(g);
  }
  /* programs */
  asg_clear_error();
  TU_CHECK(asg_compile(NULL, 0, NULL, NULL) == NULL && asg_last_error()[0], "compile(NULL)");
  asg_program_free(NULL);
  EXPECT_ERR(asg_program_run(NULL) != ASG_OK, "run(NULL)");
  EXPECT_ERR(asg_program_feed(NULL, "x", "", 1) != ASG_OK, "feed(NULL)");
  EXPECT_ERR(asg_program_fetch(NULL, NULL, NULL, 0) != ASG_OK, "fetch(NULL)");
  asg_clear_error();
  TU_CHECK(isnan(asg_program_scalar(NULL, NULL)) && asg_last_error()[0], "scalar(NULL)");
  EXPECT_ERR(asg_program_get_variable(NULL, "w", NULL, 0) != ASG_OK, "get_variable(NULL)");
  EXPECT_ERR(asg_program_set_variable(NULL, "w", NULL, 0) != ASG_OK, "set_variable(NULL)");
  EXPECT_ERR(asg_program_variable_info(NULL, 0, NULL, NULL, NULL) != ASG_OK, "variable_info(NULL)");
  TU_CHECK(asg_program_variable_count(NULL) == 0 && asg_program_peak_memory(NULL) == 0 &&
               asg_program_persistent_memory(NULL) == 0 && asg_program_step_count(NULL) == 0 &&
               asg_program_run_count(NULL) == 0 && asg_program_backend(NULL) == NULL,
           "program introspection(NULL)");
  asg_program_set_run_count(NULL, 3);
  TU_CHECK(!asg_backend_available(NULL) || asg_backend_available("cpu"), "backend_available(NULL)");
  TU_CHECK(!asg_backend_supports_op("nope", 0) && !asg_backend_supports_op("cpu", -1) &&
               !asg_backend_supports_op("cpu", asg_op_count()),
           "backend_supports_op bad args");
  TU_CHECK(asg_op_name(-5) == NULL && asg_op_arity(9999) == 0, "op table bad index");
  TU_CHECK(asg_status_string((asg_status)1234) != NULL, "status_string(bad)");
  TU_CHECK(strcmp(asg_dtype_name((asg_dtype)77), "?") == 0 && asg_dtype_size((asg_dtype)77) == 0,
           "dtype bad");
  {
    char b[4];
    asg_shape_str(ASG_SHAPE(1000, 2000), b, sizeof b); /* truncates, stays terminated */
    TU_CHECK(strlen(b) < sizeof b, "shape_str truncation");
    TU_CHECK(asg_shape_str(ASG_SHAPE(1), NULL, 0) == NULL, "shape_str(NULL)");
  }
}

/* Program-level errors: feed/fetch/variables/backends/outputs. */
static void test_program_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3));
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(3), asg_init_ones());
  asg_tensor *h = asg_mul(x, w);
  asg_tensor *y = asg_relu(h);
  asg_tensor *unused = asg_input(g, "unused", ASG_F32, ASG_SHAPE(1));
  (void)unused;
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  float xv[6] = {1, 2, 3, 4, 5, 6}, out[6], wv[3];
  asg_clear_error();
  asg_status st = asg_program_feed(p, "nope", xv, sizeof xv);
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(asg_last_error(), "nope"), "feed unknown: %s",
           asg_last_error());
  EXPECT_ERR(asg_program_feed(p, "unused", xv, 4) != ASG_OK,
             "feed an input the program does not use");
  asg_clear_error();
  st = asg_program_feed(p, "x", xv, sizeof xv - 4);
  TU_CHECK(st == ASG_ERR_SHAPE && tu_contains(asg_last_error(), "x") &&
               tu_contains(asg_last_error(), "[2,3]"),
           "feed size: %s", asg_last_error());
  EXPECT_ERR(asg_program_feed(p, NULL, xv, sizeof xv) != ASG_OK, "feed(name NULL)");
  EXPECT_ERR(asg_program_feed(p, "x", NULL, sizeof xv) != ASG_OK, "feed(data NULL)");
  TU_CHECK(asg_program_feed(p, "x", xv, sizeof xv) == ASG_OK, "good feed");
  TU_CHECK(asg_program_run(p) == ASG_OK, "run");
  asg_clear_error();
  EXPECT_ERR(asg_program_fetch(p, y, out, sizeof out + 1) == ASG_ERR_SHAPE, "fetch size");
  EXPECT_ERR(asg_program_fetch(p, y, NULL, sizeof out) != ASG_OK, "fetch(dst NULL)");
  asg_clear_error();
  EXPECT_ERR(asg_program_fetch(p, h, out, sizeof out) == ASG_ERR_NOT_FOUND, "fetch a non-output");
  asg_clear_error();
  TU_CHECK(isnan(asg_program_scalar(p, h)) && asg_last_error()[0], "scalar of a non-output");
  TU_CHECK(asg_program_fetch(p, y, out, sizeof out) == ASG_OK && out[5] == 6, "good fetch");
  asg_clear_error();
  EXPECT_ERR(asg_program_get_variable(p, "w", wv, sizeof wv - 1) == ASG_ERR_SHAPE,
             "get_variable size");
  EXPECT_ERR(asg_program_set_variable(p, "w", wv, sizeof wv + 4) == ASG_ERR_SHAPE,
             "set_variable size");
  asg_clear_error();
  st = asg_program_get_variable(p, "nope", wv, sizeof wv);
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(asg_last_error(), "nope"), "get unknown: %s",
           asg_last_error());
  EXPECT_ERR(asg_program_set_variable(p, "nope", wv, sizeof wv) == ASG_ERR_NOT_FOUND,
             "set unknown");
  EXPECT_ERR(asg_program_get_variable(p, NULL, wv, sizeof wv) != ASG_OK, "get_variable(name NULL)");
  EXPECT_ERR(asg_program_get_variable(p, "w", NULL, sizeof wv) != ASG_OK, "get_variable(dst NULL)");
  EXPECT_ERR(asg_program_set_variable(p, "w", NULL, sizeof wv) != ASG_OK, "set_variable(src NULL)");
  EXPECT_ERR(asg_program_variable_info(p, 5, NULL, NULL, NULL) != ASG_OK,
             "variable_info out of range");
  EXPECT_ERR(asg_program_variable_info(p, -1, NULL, NULL, NULL) != ASG_OK, "variable_info(-1)");
  TU_CHECK(asg_program_get_variable(p, "w", wv, sizeof wv) == ASG_OK && wv[0] == 1, "good get");
  /* the program still works after all that */
  TU_CHECK(asg_program_run(p) == ASG_OK && asg_program_fetch(p, y, out, sizeof out) == ASG_OK &&
               out[0] == 1,
           "program usable after errors");
  asg_program_free(p);

  /* compile argument errors */
  asg_clear_error();
  TU_CHECK(asg_compile(g, 0, &y, NULL) == NULL && asg_last_error()[0], "compile with 0 outputs");
  TU_CHECK(asg_compile(g, 1, NULL, NULL) == NULL, "compile(outputs NULL)");
  asg_tensor *nul[2] = {y, NULL};
  asg_clear_error();
  TU_CHECK(asg_compile(g, 2, nul, NULL) == NULL && asg_last_error()[0],
           "compile with a NULL output");
  asg_compile_opts o = {.backend = "tpu"};
  asg_clear_error();
  TU_CHECK(asg_compile(g, 1, &y, &o) == NULL && tu_contains(asg_last_error(), "tpu"),
           "unknown backend: %s", asg_last_error());
  TU_CHECK(!asg_backend_available("tpu"), "tpu not available");
  if (!asg_backend_available("cuda")) {
    o.backend = "cuda";
    asg_clear_error();
    TU_CHECK(asg_compile(g, 1, &y, &o) == NULL && tu_contains(asg_last_error(), "cuda"),
             "cuda absent: %s", asg_last_error());
  }
  o.backend = "cpu";
  p = asg_compile(g, 1, &y, &o);
  TU_CHECK(p != NULL && asg_graph_status(g) == ASG_OK, "refused compiles leave the graph usable");
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  test_scope_message_sticky();
  test_graph_errors();
  test_nulls();
  test_program_errors();
  return tu_finish();
}
