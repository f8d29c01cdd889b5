/* LSTM and GRU layers (src/nn/recurrent.c) through the public API:
 *  - outputs and final states against PyTorch (tests/fixtures/rnn, made by
 *    tests/fixtures/rnn/make.py: nn.LSTM / nn.GRU state_dicts loaded
 *    strictly by name, PyTorch's results in float64), 1 and 2 layers,
 *    bidirectional, batch_first both ways, with and without h0/c0, no bias,
 *    unbatched input, 70 and 130 steps (one slice per step), a symbolic
 *    batch, inter-layer dropout in eval graphs;
 *  - central-difference gradient checks in float64 of every parameter,
 *    input and initial state (with and without initial states, 70 steps);
 *  - a training step's constants grow linearly with the sequence length;
 *  - construction and application errors naming the layer;
 *  - a few Adam steps on a tiny sequence task lower the loss.
 * Tolerances: f64 runs 1e-12 (the weights are the same f32 numbers PyTorch
 * used); f32 runs 2e-6 absolute. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asg/nn.h"
#include "testutil.h"

enum { I = 3, H = 5 };

typedef struct rcase {
  const char *name;
  bool lstm;
  int layers;
  bool bi, bf, bias, h0, batched;
  int T, B;
} rcase;

/* the cases of tests/fixtures/rnn/make.py, in its order */
static const rcase cases[] = {
    {"lstm_1", true, 1, false, false, true, false, true, 4, 2},
    {"lstm_2bi_bf_h0", true, 2, true, true, true, true, true, 4, 2},
    {"lstm_2_h0", true, 2, false, false, true, true, true, 4, 2},
    {"lstm_bi_bf", true, 1, true, true, true, false, true, 4, 2},
    {"lstm_nobias_unbatched_h0", true, 1, false, false, false, true, false, 4, 2},
    {"gru_1", false, 1, false, false, true, false, true, 4, 2},
    {"gru_2bi_bf_h0", false, 2, true, true, true, true, true, 4, 2},
    {"gru_2_h0", false, 2, false, false, true, true, true, 4, 2},
    {"gru_bi", false, 1, true, false, true, false, true, 4, 2},
    {"gru_nobias_unbatched_bf_h0", false, 1, false, true, false, true, false, 4, 2},
    {"gru_long_bi_bf", false, 1, true, true, true, false, true, 130, 1},
    {"lstm_long_h0", true, 1, false, false, true, true, true, 70, 1},
};

static char fixdir[1024];

static const char *fpath(const char *name) {
  static char buf[1200];
  snprintf(buf, sizeof buf, "%s/rnn/%s", fixdir, name);
  return buf;
}

static asg_layer *make_rnn(asg_graph *g, const rcase *c, double dropout, asg_dtype pdt) {
  asg_rnn_opts o = {.num_layers = c->layers,
                    .bidirectional = c->bi,
                    .batch_first = c->bf,
                    .no_bias = !c->bias,
                    .dropout = dropout,
                    .dtype = pdt};
  return c->lstm ? asg_nn_lstm(g, "rnn", I, H, &o) : asg_nn_gru(g, "rnn", I, H, &o);
}

/* Reads "<case>.<what>" of io.safetensors as doubles; returns its element
 * count, -1 if absent. */
static long io_read(asg_safetensors *io, const rcase *c, const char *what, double *dst, long cap) {
  char key[96];
  snprintf(key, sizeof key, "%s.%s", c->name, what);
  int i = asg_safetensors_find(io, key);
  asg_safetensors_info info;
  if (i < 0 || asg_safetensors_info_at(io, i, &info) != ASG_OK) return -1;
  long n = (long)asg_shape_numel(info.shape);
  if (n > cap || asg_safetensors_read(io, i, ASG_F64, dst, sizeof(double) * (size_t)n) != ASG_OK)
    return -1;
  return n;
}

/* tu_fetch for outputs of symbolic shape: n elements, as doubles. */
static void fetch_n(asg_program *p, asg_tensor *t, long n, double *out) {
  asg_dtype dt = asg_tensor_dtype(t);
  void *buf = malloc((size_t)n * 8);
  if (buf && asg_program_fetch(p, t, buf, (size_t)n * asg_dtype_size(dt)) == ASG_OK)
    tu_to_double(dt, buf, out, n);
  else
    TU_CHECK(false, "fetch: %s", asg_last_error());
  free(buf);
}

/* Feeds n doubles as dtype dt with shape s (binds symbolic dims). */
static asg_status feed_n(asg_program *p, const char *name, asg_dtype dt, asg_shape s,
                         const double *v) {
  long n = (long)asg_shape_numel(s);
  void *buf = malloc((size_t)n * 8);
  if (!buf) return ASG_ERR_OOM;
  tu_from_double(dt, v, buf, n);
  asg_status st = asg_program_feed_tensor(p, name, dt, s, buf);
  free(buf);
  return st;
}

/* Runs one fixture case with activations of dtype dt (f32 parameters cast
 * to it); the batch is a constant or a symbolic dim. */
static void run_case(asg_safetensors *io, const rcase *c, asg_dtype dt, bool symbolic,
                     double dropout) {
  char what[160], w2[200];
  snprintf(what, sizeof what, "%s %s%s%s", c->name, asg_dtype_name(dt),
           symbolic ? " symbolic batch" : "", dropout > 0 ? " dropout (eval)" : "");
  const int D = c->bi ? 2 : 1, LD = c->layers * D, T = c->T, B = c->B;
  const long cap = (long)T * B * 2 * H + 16 * B * H; /* the largest tensor of the case */
  double *buf = malloc(sizeof(double) * (size_t)cap * 9);
  if (!buf) return;
  double *x = buf, *h0 = x + cap, *c0 = h0 + cap, *y = c0 + cap, *hn = y + cap, *cn = hn + cap;
  double *gy = cn + cap, *ghn = gy + cap, *gcn = ghn + cap;
  long nx = io_read(io, c, "x", x, cap), ny = io_read(io, c, "y", y, cap);
  long nh = io_read(io, c, "hn", hn, cap), nc = c->lstm ? io_read(io, c, "cn", cn, cap) : 0;
  bool has_h0 = io_read(io, c, "h0", h0, cap) > 0;
  bool has_c0 = c->lstm && io_read(io, c, "c0", c0, cap) > 0;
  TU_CHECK(nx > 0 && ny > 0 && nh > 0 && nc >= 0 && has_h0 == c->h0 && has_c0 == (c->lstm && c->h0),
           "%s: fixture tensors", what);
  asg_graph *g = asg_graph_new();
  if (dropout > 0) asg_graph_set_training(g, false);
  int64_t b = symbolic ? asg_dim(g, "batch", 0) : B;
  asg_shape xs = !c->batched ? ASG_SHAPE(T, I) : c->bf ? ASG_SHAPE(b, T, I) : ASG_SHAPE(T, b, I);
  asg_shape ss = c->batched ? ASG_SHAPE(LD, b, H) : ASG_SHAPE(LD, H);
  asg_tensor *xi = asg_input(g, "x", dt, xs);
  asg_tensor *h0i = c->h0 ? asg_input(g, "h0", dt, ss) : NULL;
  asg_tensor *c0i = has_c0 ? asg_input(g, "c0", dt, ss) : NULL;
  asg_layer *l = make_rnn(g, c, dropout, ASG_F32);
  asg_tensor *hno, *cno, *yo = asg_rnn_apply(l, xi, h0i, c0i, &hno, c->lstm ? &cno : NULL);
  asg_tensor *outs[3] = {yo, hno, c->lstm ? cno : NULL};
  TU_CHECK(yo && hno && (!c->lstm || cno), "%s: build: %s", what, asg_graph_error(g));
  asg_program *p = yo && nx > 0 && ny > 0 && nh > 0 && nc >= 0
                       ? asg_compile(g, c->lstm ? 3 : 2, outs, NULL)
                       : NULL;
  TU_CHECK(!yo || p, "%s: compile: %s", what, asg_last_error());
  if (p) {
    char sd[96];
    snprintf(sd, sizeof sd, "%s.safetensors", c->name);
    asg_status st = asg_program_load_variables(p, fpath(sd), true); /* strict: names match */
    TU_CHECK(st == ASG_OK, "%s: load PyTorch state_dict: %s", what, asg_last_error());
    if (c->batched) xs.dims[c->bf ? 0 : 1] = B, ss.dims[1] = B; /* binds the batch */
    st = st ? st : feed_n(p, "x", dt, xs, x);
    if (c->h0) st = st ? st : feed_n(p, "h0", dt, ss, h0);
    if (has_c0) st = st ? st : feed_n(p, "c0", dt, ss, c0);
    st = st ? st : asg_program_run(p);
    TU_CHECK(st == ASG_OK, "%s: run: %s", what, asg_last_error());
    if (st == ASG_OK) {
      double tol = dt == ASG_F64 ? 1e-12 : 2e-6;
      fetch_n(p, yo, ny, gy);
      fetch_n(p, hno, nh, ghn);
      snprintf(w2, sizeof w2, "%s: output", what);
      TU_CHECK(tu_close(w2, gy, y, ny, tol, 0), "%s: output vs PyTorch", what);
      snprintf(w2, sizeof w2, "%s: h_n", what);
      TU_CHECK(tu_close(w2, ghn, hn, nh, tol, 0), "%s: h_n vs PyTorch", what);
      if (c->lstm) {
        fetch_n(p, cno, nc, gcn);
        snprintf(w2, sizeof w2, "%s: c_n", what);
        TU_CHECK(tu_close(w2, gcn, cn, nc, tol, 0), "%s: c_n vs PyTorch", what);
      }
    }
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(buf);
}

static void test_vs_torch(void) {
  asg_safetensors *io = asg_safetensors_open(fpath("io.safetensors"));
  TU_CHECK(io != NULL, "open %s: %s", fpath("io.safetensors"), asg_last_error());
  if (!io) return;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    run_case(io, &cases[k], ASG_F64, false, 0);
    run_case(io, &cases[k], ASG_F32, false, 0);
  }
  run_case(io, &cases[1], ASG_F32, true, 0); /* lstm_2bi_bf_h0 */
  run_case(io, &cases[7], ASG_F32, true, 0); /* gru_2_h0 */
  run_case(io, &cases[2], ASG_F64, false, 0.5);
  asg_safetensors_close(io);
}

/* Parameter names, shapes, dtype and the init bound U(+-1/sqrt(H)). */
static void test_params(void) {
  asg_graph *g = asg_graph_new();
  asg_rnn_opts o = {.num_layers = 2, .bidirectional = true, .dtype = ASG_F64};
  asg_layer *l = asg_nn_lstm(g, "enc", 3, 16, &o);
  struct {
    const char *name;
    asg_shape s;
  } want[] = {{"weight_ih_l0", ASG_SHAPE(64, 3)},
              {"weight_hh_l0", ASG_SHAPE(64, 16)},
              {"bias_ih_l0", ASG_SHAPE(64)},
              {"bias_hh_l0_reverse", ASG_SHAPE(64)},
              {"weight_ih_l1", ASG_SHAPE(64, 32)},
              {"weight_ih_l1_reverse", ASG_SHAPE(64, 32)},
              {"weight_hh_l1_reverse", ASG_SHAPE(64, 16)}};
  for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
    asg_tensor *p = asg_layer_param(l, want[k].name);
    TU_CHECK(p && asg_shape_equal(asg_tensor_shape(p), want[k].s) && asg_tensor_dtype(p) == ASG_F64,
             "enc.%s: shape/dtype", want[k].name);
  }
  TU_CHECK(asg_graph_variable_count(g) == 16, "16 parameters, got %d", asg_graph_variable_count(g));
  TU_CHECK(asg_graph_find(g, "enc.weight_hh_l1_reverse") != NULL, "full variable name");
  asg_layer *gr = asg_nn_gru(g, "dec", 4, 9, &(asg_rnn_opts){.no_bias = true});
  TU_CHECK(asg_layer_param(gr, "weight_ih_l0") &&
               asg_shape_equal(asg_tensor_shape(asg_layer_param(gr, "weight_ih_l0")),
                               ASG_SHAPE(27, 4)) &&
               !asg_layer_param(gr, "bias_ih_l0"),
           "GRU without bias: weight_ih_l0 [27, 4] and no bias");
  /* more parameters than other layers have: 3 bidirectional layers, 24 */
  asg_layer *deep =
      asg_nn_gru(g, "deep", 4, 6, &(asg_rnn_opts){.num_layers = 3, .bidirectional = true});
  asg_tensor *last = asg_layer_param(deep, "bias_hh_l2_reverse");
  TU_CHECK(last && asg_shape_equal(asg_tensor_shape(last), ASG_SHAPE(18)) &&
               asg_graph_variable_count(g) == 16 + 2 + 24,
           "3-layer bidirectional GRU: 24 parameters, bias_hh_l2_reverse [18]: %s",
           asg_graph_error(g));
  asg_tensor *w = asg_layer_param(l, "weight_hh_l0");
  asg_program *p = w ? asg_compile(g, 1, &w, NULL) : NULL;
  TU_CHECK(p && asg_program_run(p) == ASG_OK, "compile params: %s", asg_last_error());
  if (p) {
    double v[64 * 16], mx = 0;
    tu_get_var(p, "enc.weight_hh_l0", v);
    for (int i = 0; i < 64 * 16; i++)
      mx = fabs(v[i]) > mx ? fabs(v[i]) : mx;
    TU_CHECK(mx <= 0.25 && mx > 0.2, "init within U(+-1/sqrt(16)): max |w| %g", mx);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* Every variable of g (float64) against central differences of
 * loss = sum(y r1) + sum(h_n r2) [+ sum(c_n r3)]. */
static void gradcheck_case(const char *what, const rcase *c) {
  asg_graph *g = asg_graph_new();
  int D = c->bi ? 2 : 1, LD = c->layers * D, t = c->T, b = c->B, in = 2, hid = 3;
  long cap = (long)t * b * D * hid + LD * b * hid + t * b * in;
  double *vx = malloc(sizeof(double) * (size_t)cap * 3), *vs = vx + cap, *r = vs + cap;
  tu_rand(11, vx, t * b * in, -1, 1);
  asg_shape xs = !c->batched ? ASG_SHAPE(t, in) : c->bf ? ASG_SHAPE(b, t, in) : ASG_SHAPE(t, b, in);
  asg_shape ss = c->batched ? ASG_SHAPE(LD, b, hid) : ASG_SHAPE(LD, hid);
  asg_tensor *x = asg_variable(g, "x", ASG_F64, xs, asg_init_data(vx));
  tu_rand(12, vs, LD * b * hid, -1, 1);
  asg_tensor *h0 = c->h0 ? asg_variable(g, "h0", ASG_F64, ss, asg_init_data(vs)) : NULL;
  tu_rand(13, vs, LD * b * hid, -1, 1);
  asg_tensor *c0 = c->h0 && c->lstm ? asg_variable(g, "c0", ASG_F64, ss, asg_init_data(vs)) : NULL;
  asg_rnn_opts o = {.num_layers = c->layers,
                    .bidirectional = c->bi,
                    .batch_first = c->bf,
                    .no_bias = !c->bias,
                    .dtype = ASG_F64};
  asg_layer *l = c->lstm ? asg_nn_lstm(g, "rnn", in, hid, &o) : asg_nn_gru(g, "rnn", in, hid, &o);
  asg_tensor *hn, *cn = NULL, *y = asg_rnn_apply(l, x, h0, c0, &hn, &cn);
  asg_tensor *parts[3] = {y, hn, cn}, *loss = NULL;
  for (int k = 0; k < 3 && y; k++) {
    if (!parts[k]) continue;
    asg_shape s = asg_tensor_shape(parts[k]);
    tu_rand(20 + (unsigned)k, r, (long)asg_shape_numel(s), 0.5, 1.5);
    asg_tensor *term =
        asg_sum(asg_mul(parts[k], tu_constant(g, ASG_F64, s, r)), ASG_ALL_AXES, false);
    loss = loss ? asg_add(loss, term) : term;
  }
  int nv = asg_graph_variable_count(g);
  asg_tensor *wrt[64], *gr[64], *outs[65];
  for (int i = 0; i < nv && i < 64; i++)
    wrt[i] = asg_graph_variable(g, i);
  asg_program *p = NULL;
  int bad = !loss || nv > 64 || asg_grad(loss, nv, wrt, gr) != ASG_OK;
  if (!bad) {
    outs[0] = loss;
    memcpy(outs + 1, gr, sizeof(asg_tensor *) * (size_t)nv);
    p = asg_compile(g, nv + 1, outs, NULL);
    bad = !p || asg_program_run(p) != ASG_OK;
  }
  if (bad) printf("FAIL gradcheck %s: %s / %s\n", what, asg_graph_error(g), asg_last_error());
  long checked = 0;
  double *ans[64] = {0}; /* analytic gradients of the unperturbed run */
  for (int i = 0; i < nv && !bad; i++) {
    ans[i] = malloc(sizeof(double) * (size_t)asg_shape_numel(asg_tensor_shape(wrt[i])));
    tu_fetch(p, gr[i], ans[i]);
  }
  for (int i = 0; i < nv && !bad; i++) {
    const char *name = asg_tensor_name(wrt[i]);
    long m = (long)asg_shape_numel(asg_tensor_shape(wrt[i]));
    double *v = malloc(sizeof(double) * (size_t)m), *an = ans[i];
    tu_get_var(p, name, v);
    for (long j = 0; j < m && !bad; j++) {
      double keep = v[j], eps = 1e-6;
      v[j] = keep + eps;
      tu_set_var(p, name, v);
      asg_program_run(p);
      double lp = asg_program_scalar(p, loss);
      v[j] = keep - eps;
      tu_set_var(p, name, v);
      asg_program_run(p);
      double lm = asg_program_scalar(p, loss);
      v[j] = keep;
      tu_set_var(p, name, v);
      double num = (lp - lm) / (2 * eps);
      if (!(fabs(an[j] - num) <= 1e-6 * (fabs(num) > 1 ? fabs(num) : 1))) {
        printf("FAIL gradcheck %s: d/d%s[%ld]: analytic %.10g numeric %.10g\n", what, name, j,
               an[j], num);
        bad = 1;
      }
      checked++;
    }
    free(v);
  }
  for (int i = 0; i < nv && i < 64; i++)
    free(ans[i]);
  free(vx);
  TU_CHECK(!bad && checked > 0, "gradcheck %s (%ld elements)", what, checked);
  asg_program_free(p);
  asg_graph_free(g);
}

static void test_grads(void) {
  /* name, lstm, layers, bi, bf, bias, h0, batched, T, B */
  rcase g1 = {"", true, 2, true, true, true, true, true, 3, 2};
  rcase g2 = {"", true, 1, false, false, true, false, true, 3, 2};
  rcase g3 = {"", false, 2, true, false, true, true, true, 3, 2};
  rcase g4 = {"", false, 1, false, true, false, false, true, 3, 2};
  rcase g5 = {"", false, 1, false, false, true, true, false, 3, 1};
  rcase g6 = {"", false, 1, false, false, true, true, true, 70, 1}; /* sliced in chunks */
  gradcheck_case("lstm 2 layers bidirectional batch_first h0 c0", &g1);
  gradcheck_case("lstm 1 layer zero states", &g2);
  gradcheck_case("gru 2 layers bidirectional h0", &g3);
  gradcheck_case("gru no bias zero state batch_first", &g4);
  gradcheck_case("gru unbatched h0", &g5);
  gradcheck_case("gru 70 steps", &g6);
}

/* A training step's constants and variables grow linearly with T (only
 * the input x does): the step slices' gradients are joined into concats,
 * never zero-padded to the whole sequence (O(T^2) bytes). */
static size_t train_persistent(bool lstm, int t) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(t, 2, 3));
  asg_rnn_opts o = {.bidirectional = true};
  asg_layer *l = lstm ? asg_nn_lstm(g, "rnn", 3, 4, &o) : asg_nn_gru(g, "rnn", 3, 4, &o);
  asg_tensor *loss = asg_sum(asg_layer_apply(l, x), ASG_ALL_AXES, false);
  asg_program *p = loss ? asg_compile_train(g, loss, asg_adam(1e-3), 0, NULL, NULL) : NULL;
  size_t bytes = p ? asg_program_persistent_memory(p) : 0;
  TU_CHECK(p != NULL, "compile %d steps: %s", t, asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
  return bytes;
}

static void test_long_sequence_memory(void) {
  for (int lstm = 0; lstm < 2; lstm++) {
    size_t a = train_persistent(lstm, 100), b = train_persistent(lstm, 200);
    size_t c = train_persistent(lstm, 300);
    TU_CHECK(a > 0 && b > a && c - b == b - a,
             "%s persistent bytes linear in T: %zu, %zu, %zu at T = 100, 200, 300",
             lstm ? "lstm" : "gru", a, b, c);
  }
}

/* Builds into a fresh graph; the graph's error must contain sub. */
typedef asg_tensor *(*build_fn)(asg_graph *g);
static void expect_error(const char *what, build_fn f, const char *sub) {
  asg_graph *g = asg_graph_new();
  asg_tensor *y = f(g);
  const char *e = asg_graph_error(g);
  TU_CHECK(!y && tu_contains(e, sub), "%s: want an error containing '%s', got '%s'", what, sub,
           e ? e : "(none)");
  asg_graph_free(g);
}

static asg_tensor *lstm_on(asg_graph *g, asg_shape xs, asg_tensor *h0, asg_tensor *c0) {
  asg_layer *l = asg_nn_lstm(g, "enc", 3, 5, &(asg_rnn_opts){.num_layers = 2});
  asg_tensor *hn;
  return asg_rnn_apply(l, asg_input(g, "x", ASG_F32, xs), h0, c0, &hn, NULL);
}
static asg_tensor *e_rank1(asg_graph *g) { return lstm_on(g, ASG_SHAPE(3), NULL, NULL); }
static asg_tensor *e_rank4(asg_graph *g) { return lstm_on(g, ASG_SHAPE(4, 2, 3, 1), NULL, NULL); }
static asg_tensor *e_insize(asg_graph *g) { return lstm_on(g, ASG_SHAPE(4, 2, 7), NULL, NULL); }
static asg_tensor *e_h0(asg_graph *g) {
  return lstm_on(g, ASG_SHAPE(4, 2, 3), asg_input(g, "h0", ASG_F32, ASG_SHAPE(1, 2, 5)), NULL);
}
static asg_tensor *e_c0(asg_graph *g) {
  return lstm_on(g, ASG_SHAPE(4, 2, 3), NULL, asg_input(g, "c0", ASG_F32, ASG_SHAPE(2, 3, 5)));
}
static asg_tensor *e_h0_dtype(asg_graph *g) {
  return lstm_on(g, ASG_SHAPE(4, 2, 3), asg_input(g, "h0", ASG_F64, ASG_SHAPE(2, 2, 5)), NULL);
}
static asg_tensor *e_int_input(asg_graph *g) {
  asg_layer *l = asg_nn_gru(g, "dec", 3, 5, NULL);
  return asg_layer_apply(l, asg_input(g, "x", ASG_I32, ASG_SHAPE(4, 2, 3)));
}
static asg_tensor *e_gru_c0(asg_graph *g) {
  asg_layer *l = asg_nn_gru(g, "dec", 3, 5, NULL);
  asg_tensor *s = asg_input(g, "s", ASG_F32, ASG_SHAPE(1, 2, 5));
  return asg_rnn_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 2, 3)), s, s, NULL, NULL);
}
static asg_tensor *e_symbolic_t(asg_graph *g) {
  int64_t t = asg_dim(g, "seq", 64);
  asg_layer *l = asg_nn_gru(g, "dec", 3, 5, &(asg_rnn_opts){.batch_first = true});
  return asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(2, t, 3)));
}
static asg_tensor *e_hidden0(asg_graph *g) {
  return asg_layer_apply(asg_nn_lstm(g, "enc", 3, 0, NULL),
                         asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 2, 3)));
}
static asg_tensor *e_input0(asg_graph *g) { return (asg_tensor *)asg_nn_gru(g, "dec", 0, 5, NULL); }
static asg_tensor *e_layers(asg_graph *g) {
  return (asg_tensor *)asg_nn_lstm(g, "enc", 3, 5,
                                   &(asg_rnn_opts){.num_layers = 9, .bidirectional = true});
}
static asg_tensor *e_layers_neg(asg_graph *g) {
  return (asg_tensor *)asg_nn_gru(g, "dec", 3, 5, &(asg_rnn_opts){.num_layers = -1});
}
static asg_tensor *e_dropout(asg_graph *g) {
  return (asg_tensor *)asg_nn_gru(g, "dec", 3, 5, &(asg_rnn_opts){.dropout = 1.0});
}
static asg_tensor *e_dtype(asg_graph *g) {
  return (asg_tensor *)asg_nn_lstm(g, "enc", 3, 5, &(asg_rnn_opts){.dtype = ASG_I32});
}
static asg_tensor *e_not_rnn(asg_graph *g) {
  asg_layer *l = asg_nn_linear(g, "fc", 3, 5);
  return asg_rnn_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 2, 3)), NULL, NULL, NULL, NULL);
}

static void test_errors(void) {
  expect_error("rank 1", e_rank1, "enc/lstm: input [3]: expected [seq, batch, features]");
  expect_error("rank 4", e_rank4, "enc/lstm: input [4,2,3,1]");
  expect_error("input size", e_insize,
               "enc/lstm: input [4,2,7]: the last dim must be the layer's "
               "input size 3");
  expect_error("h0 shape", e_h0, "enc/lstm: h0 [1,2,5]: expected [2,2,5]");
  expect_error("c0 shape", e_c0, "enc/lstm: c0 [2,3,5]: expected [2,2,5]");
  expect_error("h0 dtype", e_h0_dtype, "h0 is f64 but the input is f32");
  expect_error("integer input", e_int_input, "dec/gru: input must be floating point");
  expect_error("gru c0", e_gru_c0, "a GRU has no cell state");
  expect_error("symbolic seq", e_symbolic_t, "the sequence length must be a constant");
  expect_error("hidden 0", e_hidden0, "enc: lstm: input size (3) and hidden size (0) must be >= 1");
  expect_error("input 0", e_input0, "dec: gru: input size (0)");
  expect_error("too many layers", e_layers, "num_layers 9 out of range [1, 8]");
  expect_error("negative layers", e_layers_neg, "num_layers -1 out of range");
  expect_error("dropout 1", e_dropout, "dropout 1 outside [0, 1)");
  expect_error("int params", e_dtype, "enc: lstm: parameters must be");
  expect_error("not an rnn", e_not_rnn, "fc: asg_rnn_apply needs an LSTM or GRU layer");
  /* NULL layer or input: nothing to report on, no crash; outputs cleared */
  asg_tensor *hn = (asg_tensor *)1, *cn = (asg_tensor *)1;
  TU_CHECK(!asg_rnn_apply(NULL, NULL, NULL, NULL, &hn, &cn) && !hn && !cn, "NULL layer");
}

/* Training: a GRU + linear head learns to output, at every step, the input
 * of the step before (a one-step memory); 60 Adam steps must cut the MSE
 * at least in half. Training dropout between layers must also change the
 * output from the eval graph's. */
static void test_training(void) {
  enum { TB = 8, TT = 6 };
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 3);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(TB, TT, 1));
  asg_tensor *tgt = asg_input(g, "y", ASG_F32, ASG_SHAPE(TB, TT, 1));
  asg_layer *rnn =
      asg_nn_gru(g, "gru", 1, 8, &(asg_rnn_opts){.batch_first = true, .num_layers = 2});
  asg_tensor *pred = asg_layer_apply(asg_nn_linear(g, "head", 8, 1), asg_layer_apply(rnn, x));
  asg_tensor *loss = asg_mse_loss(pred, tgt, ASG_REDUCE_MEAN);
  asg_program *p = loss ? asg_compile_train(g, loss, asg_adam(2e-2), 0, NULL, NULL) : NULL;
  TU_CHECK(p != NULL, "compile train: %s / %s", asg_graph_error(g), asg_last_error());
  double first = 0, last = 0;
  for (int s = 0; p && s < 60; s++) {
    double xv[TB * TT], yv[TB * TT];
    tu_rand(100 + (unsigned)s, xv, TB * TT, -1, 1);
    for (int b = 0; b < TB; b++)
      for (int t = 0; t < TT; t++)
        yv[b * TT + t] = t ? xv[b * TT + t - 1] : 0;
    tu_feed(p, "x", ASG_F32, xv, TB * TT);
    tu_feed(p, "y", ASG_F32, yv, TB * TT);
    if (asg_program_run(p) != ASG_OK) {
      TU_CHECK(false, "train run: %s", asg_last_error());
      break;
    }
    double l = asg_program_scalar(p, loss);
    if (s == 0) first = l;
    last = l;
  }
  printf("gru one-step memory: loss %.4f -> %.4f\n", first, last);
  TU_CHECK(p && last < 0.5 * first, "training lowers the loss: %g -> %g", first, last);
  asg_program_free(p);
  asg_graph_free(g);

  /* dropout acts in training graphs only (eval matches PyTorch above) */
  double out[2][4 * 2 * 5];
  for (int train = 0; train < 2; train++) {
    asg_graph *gd = asg_graph_new();
    asg_graph_set_training(gd, train);
    asg_layer *l = asg_nn_lstm(gd, "enc", 3, 5, &(asg_rnn_opts){.num_layers = 2, .dropout = 0.5});
    double xv[4 * 2 * 3];
    tu_rand(5, xv, 24, -1, 1);
    asg_tensor *y = asg_layer_apply(l, tu_constant(gd, ASG_F32, ASG_SHAPE(4, 2, 3), xv));
    TU_CHECK(y && tu_eval(gd, y, out[train]) == 0, "dropout graph %d: %s", train,
             asg_graph_error(gd));
    asg_graph_free(gd);
  }
  int differ = 0;
  for (int i = 0; i < 40; i++)
    differ += out[0][i] != out[1][i];
  TU_CHECK(differ > 0, "training dropout changes the output");
}

int main(void) {
  const char *env = getenv("ASG_FIXTURES");
  if (env) {
    snprintf(fixdir, sizeof fixdir, "%s", env);
  } else { /* tests/fixtures next to this source file */
    snprintf(fixdir, sizeof fixdir, "%s", __FILE__);
    char *slash = strrchr(fixdir, '/');
    if (slash)
      snprintf(slash, sizeof fixdir - (size_t)(slash - fixdir), "/fixtures");
    else
      snprintf(fixdir, sizeof fixdir, "fixtures");
  }
  test_params();
  test_vs_torch();
  test_grads();
  test_long_sequence_memory();
  test_errors();
  test_training();
  return tu_finish();
}
