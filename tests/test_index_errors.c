/* Index-family ops (permute, transpose, slice, concat, split, gather,
 * embedding, scatter_add, one_hot): the graph-building errors, each naming
 * the op (the forward and gradient checks are in test_index.c). */
#include <stdio.h>
#include <string.h>

#include "asg/asg.h"
#include "testutil.h"

/* The graph carries an error naming op; r must be NULL. */
static void expect_err(asg_graph *g, const void *r, const char *op, const char *what) {
  const char *e = asg_graph_error(g);
  TU_CHECK(r == NULL && e && strstr(e, op), "%s: expected a '%s' error, got %s", what, op,
           e ? e : "(none)");
  if (e) printf("  ok: %s -> %s\n", what, e);
}

static void test_errors(void) {
  asg_graph *g;
  asg_tensor *x, *r;
#define FRESH() (g = asg_graph_new(), x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 4)))
  FRESH();
  int dup[3] = {0, 0, 1};
  r = asg_permute(x, dup);
  expect_err(g, r, "permute", "duplicate perm");
  asg_graph_free(g);
  FRESH();
  int oor[3] = {0, 1, 3};
  r = asg_permute(x, oor);
  expect_err(g, r, "permute", "perm out of range");
  asg_graph_free(g);
  FRESH();
  r = asg_transpose(x, 0, 3);
  expect_err(g, r, "transpose", "transpose axis");
  asg_graph_free(g);
  FRESH();
  r = asg_slice(x, 3, 0, 1, 1);
  expect_err(g, r, "slice", "slice axis");
  asg_graph_free(g);
  FRESH();
  r = asg_slice(x, 1, 0, 2, 0);
  expect_err(g, r, "slice", "slice step 0");
  asg_graph_free(g);
  FRESH();
  r = asg_slice(x, 1, 2, 1, 1);
  expect_err(g, r, "slice", "empty slice");
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *b = asg_input(g, "b", ASG_F32, ASG_SHAPE(2, 4, 4));
    asg_tensor *xs[2] = {x, b};
    r = asg_concat(xs, 2, 2);
    expect_err(g, r, "concat", "concat shape mismatch");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *b = asg_input(g, "b", ASG_F32, ASG_SHAPE(2, 3));
    asg_tensor *xs[2] = {x, b};
    r = asg_concat(xs, 2, 0);
    expect_err(g, r, "concat", "concat rank mismatch");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *b = asg_input(g, "b", ASG_F64, ASG_SHAPE(2, 3, 4));
    asg_tensor *xs[2] = {x, b};
    r = asg_concat(xs, 2, 0);
    expect_err(g, r, "concat", "concat dtype mismatch");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *xs[2] = {x, x};
    r = asg_concat(xs, 2, -4);
    expect_err(g, r, "concat", "concat axis");
  }
  asg_graph_free(g);
  r = asg_concat(NULL, 0, 0);
  TU_CHECK(r == NULL && strstr(asg_last_error(), "concat"), "concat of nothing");
  FRESH();
  {
    asg_tensor *parts[2] = {x, x};
    int64_t sizes[2] = {1, 1};
    asg_status st = asg_split(x, 1, 2, sizes, parts);
    TU_CHECK(st != ASG_OK && parts[0] == NULL && parts[1] == NULL,
             "split sizes not summing: status");
    expect_err(g, NULL, "split", "split sizes not summing");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *parts[2];
    int64_t sizes[2] = {0, 3};
    TU_CHECK(asg_split(x, 1, 2, sizes, parts) != ASG_OK, "split zero size: status");
    expect_err(g, NULL, "split", "split zero size");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_F32, ASG_SHAPE(3));
    r = asg_gather(x, idx, 0);
    expect_err(g, r, "gather", "gather float idx");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_I32, ASG_SHAPE(3));
    r = asg_gather(x, idx, 3);
    expect_err(g, r, "gather", "gather axis");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_I32, ASG_SHAPE(2, 2, 2, 2, 2, 2, 2));
    r = asg_gather(x, idx, 0);
    expect_err(g, r, "gather", "gather rank too big");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_I64, ASG_SHAPE(3));
    r = asg_embedding(x, idx);
    expect_err(g, r, "embedding", "embedding 3-D table");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_F64, ASG_SHAPE(3));
    asg_tensor *t = asg_input(g, "t", ASG_F32, ASG_SHAPE(5, 2));
    r = asg_embedding(t, idx);
    expect_err(g, r, "embedding", "embedding float idx");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_I32, ASG_SHAPE(5));
    asg_tensor *src = asg_input(g, "s", ASG_F32, ASG_SHAPE(2, 4, 4));
    r = asg_scatter_add(x, idx, src, 1);
    expect_err(g, r, "scatter_add", "scatter_add src shape");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_F32, ASG_SHAPE(3));
    asg_tensor *src = asg_input(g, "s", ASG_F32, ASG_SHAPE(2, 3, 4));
    r = asg_scatter_add(x, idx, src, 1);
    expect_err(g, r, "scatter_add", "scatter_add float idx");
  }
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_I32, ASG_SHAPE(3));
    asg_tensor *src = asg_input(g, "s", ASG_F64, ASG_SHAPE(2, 3, 4));
    r = asg_scatter_add(x, idx, src, 1);
    expect_err(g, r, "scatter_add", "scatter_add dtype mismatch");
  }
  asg_graph_free(g);
  FRESH();
  r = asg_one_hot(x, 4, ASG_F32);
  expect_err(g, r, "one_hot", "one_hot float idx");
  asg_graph_free(g);
  FRESH();
  {
    asg_tensor *idx = asg_input(g, "i", ASG_I32, ASG_SHAPE(3));
    r = asg_one_hot(idx, 0, ASG_F32);
    expect_err(g, r, "one_hot", "one_hot depth 0");
  }
  asg_graph_free(g);
  /* a poisoned input propagates without a new error */
  FRESH();
  {
    int dup2[3] = {1, 1, 0};
    r = asg_slice(asg_permute(x, dup2), 0, 0, 1, 1);
    expect_err(g, r, "permute", "poison propagates");
  }
  asg_graph_free(g);
#undef FRESH
}

int main(void) {
  test_errors();
  return tu_finish();
}
