/* Misuse with sizes: shapes whose element or byte counts overflow, op
 * arguments at the ends of int64, and host-side helpers given huge or empty
 * sizes. Each must be a clean error (or the right answer), never an
 * overflow, a crash or a wrong shape. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define P2(k) ((int64_t)1 << (k))

/* A fresh graph per case: graph errors are sticky. */
#define SHAPE_FAIL(g, expr, what)                                                                  \
  do {                                                                                             \
    asg_clear_error();                                                                             \
    asg_tensor *r_ = (expr);                                                                       \
    TU_CHECK(r_ == NULL && asg_graph_status(g) == ASG_ERR_SHAPE && asg_last_error()[0],            \
             "%s: got %s, status %d: %s", what, r_ ? "a tensor" : "NULL", asg_graph_status(g),     \
             asg_graph_error(g) ? asg_graph_error(g) : "(no error)");                              \
  } while (0)

static void test_leaves(void) {
  static const float data[4] = {1, 2, 3, 4};
  asg_graph *g = asg_graph_new();
  SHAPE_FAIL(g, asg_input(g, "x", ASG_F32, ASG_SHAPE(P2(40), P2(40))), "input [2^40,2^40]");
  TU_CHECK(tu_contains(asg_graph_error(g), "input"), "names the op: %s", asg_graph_error(g));
  asg_graph_free(g);
  g = asg_graph_new();
  SHAPE_FAIL(g, asg_variable(g, "v", ASG_F32, ASG_SHAPE(P2(61), 2), asg_init_zeros()),
             "variable [2^61,2]");
  asg_graph_free(g);
  g = asg_graph_new();
  /* the byte count (2^62 * 4) wraps to 0 in size_t: nothing would be copied */
  SHAPE_FAIL(g, asg_constant(g, ASG_F32, ASG_SHAPE(P2(61), 2), data), "constant [2^61,2]");
  asg_graph_free(g);
  g = asg_graph_new();
  SHAPE_FAIL(g, asg_fill(g, ASG_F64, ASG_SHAPE(P2(30), P2(30), P2(30)), 1.0), "fill 2^90");
  asg_graph_free(g);
  g = asg_graph_new();
  SHAPE_FAIL(g, asg_rand_uniform(g, ASG_F32, ASG_SHAPE(INT64_MAX), 0, 1, 1), "rand [INT64_MAX]");
  asg_graph_free(g);
  /* the limit itself: 2^48 bytes pass, one element more does not */
  g = asg_graph_new();
  TU_CHECK(asg_input(g, "x", ASG_F32, ASG_SHAPE(P2(23), P2(23))) != NULL, "input of 2^48 bytes: %s",
           asg_last_error());
  SHAPE_FAIL(g, asg_input(g, "y", ASG_F32, ASG_SHAPE(P2(46) + 1)), "input of 2^48 + 4 bytes");
  asg_graph_free(g);
}

static void test_ops(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4));
  /* (2^62 + 1) * 4 wraps to 4: the reshape would be "valid" */
  SHAPE_FAIL(g, asg_reshape(x, ASG_SHAPE(P2(62) + 1, 4)), "reshape to [2^62+1,4]");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4));
  SHAPE_FAIL(g, asg_reshape(x, ASG_SHAPE(-1, P2(62), 4)), "reshape to [-1,2^62,4]");
  asg_graph_free(g);

  g = asg_graph_new();
  asg_tensor *idx = asg_input(g, "i", ASG_I32, ASG_SHAPE(8));
  SHAPE_FAIL(g, asg_one_hot(idx, P2(62), ASG_F32), "one_hot depth 2^62");
  asg_graph_free(g);

  /* inputs fine, the product is not: caught where every node is made */
  g = asg_graph_new();
  asg_tensor *a = asg_input(g, "a", ASG_F32, ASG_SHAPE(P2(30), 1));
  asg_tensor *b = asg_input(g, "b", ASG_F32, ASG_SHAPE(1, P2(30)));
  SHAPE_FAIL(g, asg_matmul(a, b), "matmul [2^30,1] x [1,2^30]");
  asg_graph_free(g);
  g = asg_graph_new();
  a = asg_input(g, "a", ASG_F32, ASG_SHAPE(P2(24), 1));
  b = asg_input(g, "b", ASG_F32, ASG_SHAPE(P2(24)));
  SHAPE_FAIL(g, asg_add(a, b), "broadcast [2^24,1] + [2^24]");
  asg_graph_free(g);
  g = asg_graph_new();
  a = asg_input(g, "a", ASG_F32, ASG_SHAPE(P2(45) + 1));
  SHAPE_FAIL(g, asg_cast(a, ASG_F64), "cast of 2^47 + 4 bytes to f64 (2^48 + 8 bytes)");
  asg_graph_free(g);

  /* conv: a dilated kernel extent of (2^31 - 1) * (2^33 - 1) + 1 wraps */
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(1, 1, 8, 8));
  asg_tensor *w = asg_input(g, "w", ASG_F32, ASG_SHAPE(1, 1, P2(33), 1));
  asg_conv_params cp = {{1, 1}, {0, 0}, {INT32_MAX, 1}, 1, {0, 0}};
  SHAPE_FAIL(g, asg_conv2d(x, w, NULL, cp), "conv2d dilation INT32_MAX, kernel 2^33");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(1, 1, P2(33), 1));
  w = asg_input(g, "w", ASG_F32, ASG_SHAPE(1, 1, 2, 1));
  asg_conv_params tp = {{INT32_MAX, 1}, {0, 0}, {1, 1}, 1, {0, 0}};
  SHAPE_FAIL(g, asg_conv_transpose2d(x, w, NULL, tp), "conv_transpose2d stride INT32_MAX");
  asg_graph_free(g);
}

/* slice with bounds and steps at the ends of int64: Python semantics, no
 * overflow (hi - lo + step - 1 used to wrap for step = INT64_MAX). */
static void test_slice_extremes(void) {
  double xv[10];
  for (int i = 0; i < 10; i++)
    xv[i] = i + 1;
  struct {
    int64_t start, stop, step, want_first, want_n;
  } cases[] = {
      {INT64_MIN, INT64_MAX, INT64_MAX, 1, 1},
      {3, INT64_MAX, INT64_MAX, 4, 1},
      {INT64_MIN, INT64_MAX, 1, 1, 10},
      {-2, INT64_MAX, 1, 9, 2},
      {INT64_MIN, 5, 3, 1, 2},
      {0, INT64_MAX, INT64_MAX - 1, 1, 1},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = tu_constant(g, ASG_F64, ASG_SHAPE(10), xv);
    asg_tensor *y = asg_slice(x, 0, cases[c].start, cases[c].stop, cases[c].step);
    asg_shape s = asg_tensor_shape(y);
    double out[10] = {0};
    bool ok = y && s.ndim == 1 && s.dims[0] == cases[c].want_n;
    if (ok) ok = tu_eval(g, asg_add(y, asg_scalar(g, ASG_F64, 0)), out) == 0;
    TU_CHECK(ok && out[0] == (double)cases[c].want_first, "slice[%lld:%lld:%lld]: %s, first %g: %s",
             (long long)cases[c].start, (long long)cases[c].stop, (long long)cases[c].step,
             y ? "built" : "NULL", out[0], asg_last_error());
    asg_graph_free(g);
  }
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(10));
  SHAPE_FAIL(g, asg_slice(x, 0, INT64_MIN, INT64_MIN, 1), "slice[MIN:MIN] is empty");
  asg_graph_free(g);
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(10));
  asg_clear_error();
  TU_CHECK(asg_slice(x, 0, 0, 10, INT64_MIN) == NULL && asg_graph_status(g) == ASG_ERR_INVALID,
           "step INT64_MIN refused");
  asg_graph_free(g);

  /* split sizes whose sum wraps to the axis length (2 * INT64_MAX + 12 = 10
   * mod 2^64) */
  g = asg_graph_new();
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(10));
  int64_t sizes[3] = {INT64_MAX, INT64_MAX, 12};
  asg_tensor *parts[3];
  TU_CHECK(asg_split(x, 0, 3, sizes, parts) == ASG_ERR_SHAPE && parts[0] == NULL,
           "split sizes summing past int64: %s", asg_last_error());
  asg_graph_free(g);
}

static void test_batcher(void) {
  int64_t idx[4] = {0, 1, 2, 3};
  /* (2^61 + 1) * 8 bytes wraps to 8 */
  asg_clear_error();
  asg_batcher *b = asg_batcher_new(P2(61) + 1, 4, true, false, 1);
  TU_CHECK(b == NULL && asg_last_error()[0], "batcher of 2^61+1 items refused");
  asg_batcher_free(b);
  b = asg_batcher_new(INT64_MAX, 4, false, false, 1);
  TU_CHECK(b == NULL, "batcher of INT64_MAX items refused");
  asg_batcher_free(b);
  b = asg_batcher_new_subset(idx, P2(61) + 1, 4, true, false, 1);
  TU_CHECK(b == NULL && asg_last_error()[0], "subset batcher of 2^61+1 items refused");
  asg_batcher_free(b);
  /* a batch larger than the data: one partial batch (n + batch - 1 wrapped) */
  b = asg_batcher_new(10, INT64_MAX, false, false, 1);
  TU_CHECK(b && asg_batcher_batches_per_epoch(b) == 1, "10 items, batch INT64_MAX: %lld batches",
           b ? (long long)asg_batcher_batches_per_epoch(b) : -1LL);
  asg_batcher_free(b);
  int64_t tr[4], va[4], ntr, nva;
  TU_CHECK(asg_train_val_split(P2(61) + 1, 0.5, 1, tr, &ntr, va, &nva) != ASG_OK,
           "split of 2^61+1 items refused");
}

static void test_host_rows(void) {
  float dummy[4] = {0};
  int64_t i0 = 0;
  /* [0, 2]: no rows; the row size used to be numel / dims[0] = 0 / 0 */
  asg_host_tensor empty = {ASG_F32, ASG_SHAPE(0, 2), dummy};
  TU_CHECK(asg_host_gather_rows(&empty, &i0, 0, dummy) == ASG_OK, "no rows gathered: %s",
           asg_last_error());
  TU_CHECK(asg_host_gather_rows(&empty, &i0, 1, dummy) == ASG_ERR_INVALID,
           "row 0 of an empty tensor is out of range");
  /* a zero dim does not hide an overflowing product of the others */
  asg_host_tensor huge = {ASG_F32, ASG_SHAPE(2, P2(40), P2(40)), dummy};
  TU_CHECK(asg_host_gather_rows(&huge, &i0, 1, dummy) == ASG_ERR_SHAPE, "[2,2^40,2^40] refused");
  asg_host_tensor hz = {ASG_F32, ASG_SHAPE(0, P2(40), P2(40)), dummy};
  TU_CHECK(asg_host_gather_rows(&hz, &i0, 0, dummy) == ASG_ERR_SHAPE, "[0,2^40,2^40] refused");
  asg_host_tensor neg = {ASG_F32, ASG_SHAPE(2, -1), dummy};
  TU_CHECK(asg_host_gather_rows(&neg, &i0, 1, dummy) == ASG_ERR_SHAPE, "[2,-1] refused");
  /* a normal gather still works */
  float src[6] = {1, 2, 3, 4, 5, 6}, dst[4] = {0};
  int64_t rows[2] = {2, 0};
  asg_host_tensor t = {ASG_F32, ASG_SHAPE(3, 2), src};
  TU_CHECK(asg_host_gather_rows(&t, rows, 2, dst) == ASG_OK && dst[0] == 5 && dst[1] == 6 &&
               dst[2] == 1 && dst[3] == 2,
           "gather rows 2, 0");
}

static void test_numel(void) {
  TU_CHECK(asg_shape_numel(ASG_SHAPE(2, 3, 4)) == 24, "numel [2,3,4]");
  TU_CHECK(asg_shape_numel(ASG_SHAPE(P2(32), P2(31), 0)) == 0, "numel with a zero dim");
  TU_CHECK(asg_shape_numel(ASG_SHAPE(P2(32), P2(32))) == -1, "numel overflowing int64 is -1");
  TU_CHECK(asg_shape_numel(ASG_SHAPE(3, -2)) == -1, "numel of a negative dim is -1");
  asg_shape bad = {9, {1, 1, 1, 1, 1, 1, 1, 1}};
  TU_CHECK(asg_shape_numel(bad) == -1, "numel of rank 9 is -1");
}

int main(void) {
  test_leaves();
  test_ops();
  test_slice_extremes();
  test_batcher();
  test_host_rows();
  test_numel();
  return tu_finish();
}
