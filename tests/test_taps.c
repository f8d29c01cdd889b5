/* Tensor taps (asg_compile_opts.taps / tap_names, asg_program_fetch_tap)
 * and the CPU node callback: a tapped hidden activation equals the value
 * computed here in doubles although later steps of the same size could have
 * reused its buffer; fetching an untapped node names it and says to tap it;
 * the callback sees every step in order and the right values for one node.
 * Usage: test_taps [cpu|vulkan|cuda] (default cpu). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";

enum { R = 3, K = 4, C = 5 };
static double xv[R * K], wv[K * C], bv[C];

typedef struct net {
  asg_graph *g;
  asg_tensor *x, *mm, *h, *y;
} net;

/* h = relu(x @ w + b) in scope "layer1"; then three more [R, C] values
 * (each could take h's block once h is dead) and y = sum of the last. */
static net build(void) {
  net n;
  n.g = asg_graph_new();
  n.x = asg_input(n.g, "x", ASG_F32, ASG_SHAPE(R, K));
  asg_tensor *w = tu_constant(n.g, ASG_F32, ASG_SHAPE(K, C), wv);
  asg_tensor *b = tu_constant(n.g, ASG_F32, ASG_SHAPE(C), bv);
  asg_scope_push(n.g, "layer1");
  n.mm = asg_matmul(n.x, w);
  n.h = asg_relu(asg_add(n.mm, b));
  asg_scope_pop(n.g);
  asg_tensor *t = asg_mul_scalar(asg_add_scalar(n.h, -0.5), 3.0);
  t = asg_mul(asg_relu(t), asg_relu(asg_add_scalar(t, 1.0)));
  n.y = asg_sum(t, ASG_ALL_AXES, false);
  return n;
}

/* The hidden activation computed here. */
static void hidden_ref(double *h) {
  for (int i = 0; i < R; i++)
    for (int j = 0; j < C; j++) {
      double s = bv[j];
      for (int k = 0; k < K; k++)
        s += xv[i * K + k] * wv[k * C + j];
      h[i * C + j] = s > 0 ? s : 0;
    }
}

static asg_compile_opts opts(void) {
  asg_compile_opts o = {0};
  o.backend = backend;
  o.num_threads = 1;
  return o;
}

static void test_taps(void) {
  net n = build();
  double want[R * C], got[R * C];
  hidden_ref(want);
  asg_compile_opts o = opts();
  asg_program *plain = asg_compile(n.g, 1, &n.y, &o);
  TU_CHECK(plain != NULL, "compile: %s", asg_last_error());
  o.n_taps = 1;
  o.taps = &n.h;
  const char *names[] = {"layer1/relu"};
  o.n_tap_names = 1;
  o.tap_names = names;
  asg_program *p = asg_compile(n.g, 1, &n.y, &o);
  TU_CHECK(p != NULL, "compile with taps: %s", asg_last_error());
  if (!p || !plain) {
    asg_program_free(p), asg_program_free(plain);
    asg_graph_free(n.g);
    return;
  }
  TU_CHECK(asg_program_peak_memory(p) >= asg_program_peak_memory(plain),
           "a tap keeps its buffer: %zu >= %zu", asg_program_peak_memory(p),
           asg_program_peak_memory(plain));
  tu_feed(p, "x", ASG_F32, xv, R * K);
  TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
  TU_CHECK(tu_fetch(p, n.h, got) == ASG_OK, "fetch tap: %s", asg_last_error());
  tu_close("tapped h", got, want, R * C, 1e-5, 1e-5);
  float f[R * C];
  TU_CHECK(asg_program_fetch_tap(p, "layer1/relu", f, sizeof f) == ASG_OK, "fetch_tap: %s",
           asg_last_error());
  for (int i = 0; i < R * C; i++)
    got[i] = f[i];
  tu_close("tap by name", got, want, R * C, 1e-5, 1e-5);
  asg_shape sh;
  TU_CHECK(asg_program_output_shape(p, n.h, &sh) == ASG_OK && sh.ndim == 2 && sh.dims[0] == R &&
               sh.dims[1] == C,
           "tap shape");
  /* not tapped: the error names the node and says to tap it */
  asg_status st = asg_program_fetch(p, n.mm, f, sizeof f);
  const char *e = asg_last_error();
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(e, "layer1/matmul") && tu_contains(e, "tap"),
           "untapped fetch: %d %s", st, e);
  st = asg_program_fetch(plain, n.h, f, sizeof f);
  e = asg_last_error();
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(e, "layer1/relu") && tu_contains(e, "tap"),
           "untapped in plain program: %d %s", st, e);
  st = asg_program_fetch_tap(p, "nope", f, sizeof f);
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(asg_last_error(), "nope"), "unknown tap: %s",
           asg_last_error());
  asg_program_free(p);
  asg_program_free(plain);
  /* tap names that match no node, or several */
  o = opts();
  const char *bad[] = {"layer1/nothing"};
  o.n_tap_names = 1;
  o.tap_names = bad;
  p = asg_compile(n.g, 1, &n.y, &o);
  TU_CHECK(!p && tu_contains(asg_last_error(), "layer1/nothing"), "no such node: %s",
           asg_last_error());
  asg_program_free(p);
  const char *amb[] = {"relu"}; /* the two top-level relus */
  o.tap_names = amb;
  p = asg_compile(n.g, 1, &n.y, &o);
  TU_CHECK(!p && tu_contains(asg_last_error(), "matches 2 nodes"), "ambiguous: %s",
           asg_last_error());
  asg_program_free(p);
  asg_graph_free(n.g);
}

typedef struct seen {
  int calls, last_step, order_ok;
  const asg_tensor *node; /* the node whose values are copied */
  int h_calls;
  double h[R * C];
  asg_dtype h_dt;
  asg_shape h_shape;
} seen;

static void on_node(const asg_node_info *in, void *ctx) {
  seen *s = ctx;
  if (in->step != s->last_step + 1) s->order_ok = 0;
  s->last_step = in->step;
  s->calls++;
  if (in->tensor == s->node) {
    s->h_calls++;
    s->h_dt = in->dtype;
    s->h_shape = in->shape;
    tu_to_double(in->dtype, in->data, s->h, R * C);
  }
}

static void test_callback(void) {
  net n = build();
  asg_compile_opts o = opts();
  asg_program *p = asg_compile(n.g, 1, &n.y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(n.g);
    return;
  }
  seen s = {0, -1, 1, n.h, 0, {0}, ASG_F32, {0}};
  asg_status st = asg_program_set_node_callback(p, on_node, &s);
  if (strcmp(backend, "cpu") != 0) {
    TU_CHECK(st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "cpu"),
             "callback is CPU-only: %s", asg_last_error());
  } else {
    TU_CHECK(st == ASG_OK, "set callback: %s", asg_last_error());
    tu_feed(p, "x", ASG_F32, xv, R * K);
    TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
    TU_CHECK(s.calls == asg_program_step_count(p) && s.order_ok,
             "every step in order: %d calls, %d steps", s.calls, asg_program_step_count(p));
    TU_CHECK(s.h_calls == 1 && s.h_dt == ASG_F32 && s.h_shape.ndim == 2 && s.h_shape.dims[0] == R &&
                 s.h_shape.dims[1] == C,
             "h seen once with its dtype and shape (%d)", s.h_calls);
    double want[R * C];
    hidden_ref(want);
    tu_close("callback h", s.h, want, R * C, 1e-5, 1e-5);
    TU_CHECK(asg_program_set_node_callback(p, NULL, NULL) == ASG_OK, "remove");
    s.calls = 0;
    TU_CHECK(asg_program_run(p) == ASG_OK && s.calls == 0, "removed: %d calls", s.calls);
  }
  asg_program_free(p);
  asg_graph_free(n.g);
}

/* Symbolic graphs refuse taps (their specializations are other graphs). */
static void test_symbolic(void) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 8);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 2));
  asg_tensor *h = asg_relu(x);
  asg_tensor *y = asg_sum(h, ASG_ALL_AXES, false);
  asg_compile_opts o = opts();
  o.n_taps = 1;
  o.taps = &h;
  asg_program *p = asg_compile(g, 1, &y, &o);
  TU_CHECK(!p && tu_contains(asg_last_error(), "symbolic"), "symbolic taps: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("backend %s not available: skipped\n", backend);
    return TU_SKIP;
  }
  tu_rand(1, xv, R * K, -1, 1);
  tu_rand(2, wv, K * C, -1, 1);
  tu_rand(3, bv, C, -0.5, 0.5);
  test_taps();
  test_callback();
  test_symbolic();
  return tu_finish();
}
