/* The compiler's fusion pass (src/passes/fuse.c) through the public
 * API: matmul + bias [+ relu] compile to one matmul_bias_act step (below,
 * check_linear), and relu(conv2d(x, w, b)) and conv2d(x, w, b) compile to one
 * conv2d_bias_act step (fewer steps than with asg_compile_opts.no_fusion)
 * and give the values of direct loops written here, the same bits as the
 * unfused CPU program, in f32 (the direct kernel and im2col + GEMM) and
 * f64, forward and with gradients, for a symbolic batch; a conv2d or add
 * that something else reads is left alone, and the graph is not changed.
 * sum(a * b) over the last axis becomes one rowdot step (check_rowdot).
 * Further outputs: attention's backward takes its lse from the forward
 * step (check_stats), the layernorm backward's gamma and beta gradients come
 * from its dx step (check_ln_pair), and a batch norm's step gives the
 * batch mean and variance, its dx step the gamma and beta gradients
 * (check_bn_stats).
 * Usage: test_fusion [cpu|cuda|vulkan] (default cpu; the fused program runs
 * there, the unfused reference on the CPU; 77 when the backend has no
 * device). With ASG_FUSE_CONV=0 / ASG_FUSE_LINEAR=0 / ASG_FUSE_RESIDUAL=0 /
 * ASG_FUSE_STATS=0 / ASG_FUSE_ROWDOT=0 set,
 * the same checks expect no step of that rule fused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *g_backend = "cpu";
/* ASG_FUSE_CONV=0 / ASG_FUSE_LINEAR=0 in the environment: that rule fuses nothing */
static bool g_off, g_off_linear, g_off_stats, g_off_rowdot;

typedef struct fcase {
  const char *name;
  int N, C, H, W, O, K, stride, pad, groups;
} fcase;

static int64_t out_hw(const fcase *c, int64_t in) {
  return (in + 2 * c->pad - c->K) / c->stride + 1;
}

/* y[n,o,p] = act(b[o] + sum w[o,c,kh,kw] x[n,g*Cg+c, ...]) in double */
static void ref(const fcase *c, const double *x, const double *w, const double *b, bool relu,
                double *y) {
  const int64_t OH = out_hw(c, c->H), OW = out_hw(c, c->W), Cg = c->C / c->groups,
                Og = c->O / c->groups;
  for (int64_t n = 0; n < c->N; n++)
    for (int64_t o = 0; o < c->O; o++)
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          double s = b[o];
          for (int64_t ci = 0; ci < Cg; ci++)
            for (int64_t kh = 0; kh < c->K; kh++)
              for (int64_t kw = 0; kw < c->K; kw++) {
                int64_t ih = oh * c->stride - c->pad + kh, iw = ow * c->stride - c->pad + kw;
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                int64_t ch = (o / Og) * Cg + ci;
                s += w[((o * Cg + ci) * c->K + kh) * c->K + kw] *
                     x[((n * c->C + ch) * c->H + ih) * c->W + iw];
              }
          y[((n * c->O + o) * OH + oh) * OW + ow] = relu && s < 0 ? 0 : s;
        }
}

static asg_program *compile(asg_graph *g, int n, asg_tensor *const *outs, const char *be,
                            bool no_fusion) {
  asg_compile_opts o = {0};
  o.backend = be;
  o.no_fusion = no_fusion;
  asg_program *p = asg_compile(g, n, outs, &o);
  TU_CHECK(p, "compile on %s (no_fusion %d): %s", be, no_fusion, asg_last_error());
  return p;
}

/* Runs p on x, w, b (and r when given); fetches outs into out[k]. */
static bool run(asg_program *p, asg_dtype dt, const fcase *c, const double *x, const double *w,
                const double *b, const double *r, int n, asg_tensor *const *outs, double **out) {
  const long nx = (long)c->N * c->C * c->H * c->W,
             nw = (long)c->O * (c->C / c->groups) * c->K * c->K;
  const long ny = (long)c->N * c->O * out_hw(c, c->H) * out_hw(c, c->W);
  bool ok =
      !tu_feed(p, "x", dt, x, nx) && !tu_feed(p, "w", dt, w, nw) && !tu_feed(p, "b", dt, b, c->O);
  if (ok && r) ok = !tu_feed(p, "r", dt, r, ny);
  if (ok) ok = asg_program_run(p) == ASG_OK;
  for (int k = 0; k < n && ok; k++)
    ok = !tu_fetch(p, outs[k], out[k]);
  TU_CHECK(ok, "run on %s: %s", asg_program_backend(p), asg_last_error());
  return ok;
}

static long numel(asg_tensor *t) { return (long)asg_shape_numel(asg_tensor_shape(t)); }

static bool same(const double *a, const double *b, long n) {
  for (long i = 0; i < n; i++)
    if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return false;
  return true;
}

/* relu?(conv2d(x, w, b)) [+ the conv2d itself as a second output] [+ the
 * gradients of sum(y * r) in x, w, b]: the fused program on g_backend
 * against loops (forward) and the unfused CPU program (all outputs). */
static void check(const fcase *c, asg_dtype dt, bool relu, bool conv_out, bool grads) {
  const int64_t OH = out_hw(c, c->H), OW = out_hw(c, c->W);
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W), ys = ASG_SHAPE(c->N, c->O, OH, OW);
  asg_tensor *x = asg_input(g, "x", dt, xs);
  asg_tensor *w = asg_input(g, "w", dt, ASG_SHAPE(c->O, c->C / c->groups, c->K, c->K));
  asg_tensor *b = asg_input(g, "b", dt, ASG_SHAPE(c->O));
  asg_conv_params cp = {
      .stride = {c->stride, c->stride}, .padding = {c->pad, c->pad}, .groups = c->groups};
  asg_tensor *z = asg_conv2d(x, w, NULL, cp);
  asg_tensor *y = asg_add(z, asg_reshape(b, ASG_SHAPE(1, c->O, 1, 1))); /* asg_conv2d's bias */
  if (relu) y = asg_relu(y);
  asg_tensor *outs[5] = {y};
  int n = 1;
  if (conv_out) outs[n++] = z;
  if (grads) {
    asg_tensor *r = asg_input(g, "r", dt, ys), *wrt[3] = {x, w, b};
    asg_tensor *loss = asg_sum(asg_mul(y, r), ASG_ALL_AXES, false);
    TU_CHECK(asg_grad(loss, 3, wrt, outs + n) == ASG_OK, "%s: asg_grad", c->name);
    n += 3;
  }
  const int nodes = asg_graph_node_count(g);
  asg_program *fz = compile(g, n, outs, g_backend, false), *un = compile(g, n, outs, "cpu", true);
  TU_CHECK(asg_graph_node_count(g) == nodes &&
               !strcmp(asg_tensor_op_name(y), relu ? "relu" : "add"),
           "%s: the graph is unchanged by compile", c->name);
  const long nx = numel(x), nw = numel(w), ny = numel(y);
  double *xv = malloc(sizeof(double) * (size_t)nx), *wv = malloc(sizeof(double) * (size_t)nw);
  double bv[64], *rv = malloc(sizeof(double) * (size_t)ny),
                 *want = malloc(sizeof(double) * (size_t)ny);
  tu_rand(1, xv, nx, -1, 1), tu_rand(2, wv, nw, -1, 1), tu_rand(3, bv, c->O, -1, 1);
  tu_rand(4, rv, ny, 0.5, 1.5);
  double *got[5], *ug[5];
  for (int k = 0; k < n; k++) {
    got[k] = calloc((size_t)numel(outs[k]), sizeof(double));
    ug[k] = calloc((size_t)numel(outs[k]), sizeof(double));
  }
  if (fz && un && run(fz, dt, c, xv, wv, bv, grads ? rv : NULL, n, outs, got) &&
      run(un, dt, c, xv, wv, bv, grads ? rv : NULL, n, outs, ug)) {
    const char *dn = asg_dtype_name(dt);
    /* conv_out keeps the conv2d (read by an output) and so its add: nothing fused */
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    TU_CHECK(conv_out || g_off ? sf == su : sf < su, "%s %s relu %d: %d steps fused, %d unfused",
             c->name, dn, relu, sf, su);
    ref(c, xv, wv, bv, relu, want);
    TU_CHECK(tu_close(c->name, got[0], want, ny, dt == ASG_F32 ? 1e-5 : 1e-12, 1e-5),
             "%s %s relu %d: y against loops", c->name, dn, relu);
    const bool cpu = !strcmp(g_backend, "cpu");
    for (int k = 0; k < n; k++) {
      const long m = numel(outs[k]);
      if (cpu) /* the fused kernel adds and clamps as the steps it replaced */
        TU_CHECK(same(got[k], ug[k], m), "%s %s relu %d: output %d is the unfused bits", c->name,
                 dn, relu, k);
      else
        TU_CHECK(tu_close(c->name, got[k], ug[k], m, dt == ASG_F32 ? 1e-4 : 1e-10, 1e-4),
                 "%s %s relu %d: output %d on %s against the unfused CPU", c->name, dn, relu, k,
                 g_backend);
    }
  }
  for (int k = 0; k < n; k++)
    free(got[k]), free(ug[k]);
  free(xv), free(wv), free(rv), free(want);
  asg_program_free(fz), asg_program_free(un);
  asg_graph_free(g);
}

/* A symbolic batch: every specialization is fused, and runs right. */
static void check_symbolic(asg_dtype dt) {
  asg_graph *g = asg_graph_new();
  int64_t B = asg_dim(g, "batch", 0);
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(B, 2, 9, 9));
  asg_tensor *w = asg_input(g, "w", dt, ASG_SHAPE(4, 2, 3, 3));
  asg_tensor *b = asg_input(g, "b", dt, ASG_SHAPE(4));
  asg_tensor *y = asg_relu(asg_conv2d(x, w, b, (asg_conv_params){.padding = {1, 1}}));
  asg_program *fz = compile(g, 1, &y, g_backend, false);
  for (int n = 1; fz && n <= 5; n += 4) {
    const fcase c = {"symbolic", n, 2, 9, 9, 4, 3, 1, 1, 1};
    double xv[5 * 2 * 81], wv[72], bv[4], got[5 * 4 * 81], want[5 * 4 * 81], raw[5 * 4 * 81];
    tu_rand(5, xv, n * 162, -1, 1), tu_rand(6, wv, 72, -1, 1), tu_rand(7, bv, 4, -1, 1);
    bool ok = !tu_feed(fz, "x", dt, xv, n * 162) && !tu_feed(fz, "w", dt, wv, 72) &&
              !tu_feed(fz, "b", dt, bv, 4) && asg_program_run(fz) == ASG_OK &&
              asg_program_fetch(fz, y, raw, (size_t)n * 324 * asg_dtype_size(dt)) == ASG_OK;
    tu_to_double(dt, raw, got, n * 324); /* (tu_fetch needs a static shape) */
    TU_CHECK(ok, "symbolic batch %d: %s", n, asg_last_error());
    ref(&c, xv, wv, bv, true, want);
    if (ok)
      TU_CHECK(tu_close("symbolic", got, want, n * 324, dt == ASG_F32 ? 1e-5 : 1e-12, 1e-5),
               "symbolic batch %d (%s)", n, asg_dtype_name(dt));
  }
  asg_program_free(fz);
  asg_graph_free(g);
}

/* One input of a fused/unfused program pair; name NULL: not fed. */
typedef struct feed {
  const char *name;
  const double *v;
  long n;
} feed;

/* Feeds both programs (the fused one on g_backend, the unfused CPU one),
 * runs them and fetches outs into got[k] / ug[k] (allocated here, freed by
 * free_pair); false on any failure. */
static bool run_pair(asg_program *fz, asg_program *un, asg_dtype dt, const feed *f, int nf, int n,
                     asg_tensor *const *outs, double **got, double **ug) {
  for (int k = 0; k < n; k++) {
    got[k] = calloc((size_t)numel(outs[k]), sizeof(double));
    ug[k] = calloc((size_t)numel(outs[k]), sizeof(double));
  }
  asg_program *ps[2] = {fz, un};
  double **res[2] = {got, ug};
  bool ok = fz && un;
  for (int q = 0; q < 2 && ok; q++) {
    for (int i = 0; i < nf && ok; i++)
      ok = !f[i].name || !tu_feed(ps[q], f[i].name, dt, f[i].v, f[i].n);
    ok = ok && asg_program_run(ps[q]) == ASG_OK;
    for (int k = 0; k < n && ok; k++)
      ok = !tu_fetch(ps[q], outs[k], res[q][k]);
  }
  return ok;
}

/* Every output of the fused program against the unfused CPU one: the same
 * bits on the CPU, else within the GPU tolerances. */
static void compare_pair(const char *what, asg_dtype dt, int n, asg_tensor *const *outs,
                         double **got, double **ug) {
  for (int k = 0; k < n; k++) {
    const long m = numel(outs[k]);
    if (!strcmp(g_backend, "cpu"))
      TU_CHECK(same(got[k], ug[k], m), "%s: output %d is the unfused bits", what, k);
    else
      TU_CHECK(tu_close(what, got[k], ug[k], m, dt == ASG_F32 ? 1e-4 : 1e-10, 1e-4),
               "%s: output %d against the unfused CPU", what, k);
  }
}

/* Frees what run_pair fetched, both programs and the graph. */
static void free_pair(int n, double **got, double **ug, asg_program *fz, asg_program *un,
                      asg_graph *g) {
  for (int k = 0; k < n; k++)
    free(got[k]), free(ug[k]);
  asg_program_free(fz), asg_program_free(un);
  asg_graph_free(g);
}

/* act(a b + bias) (act 0 none, 1 relu, 2 gelu_tanh) [+ gradients]: one
 * matmul_bias_act step (src/passes/fuse_linear.c) against the unfused CPU
 * program (the same bits on the CPU) and double loops (forward); the product
 * also read elsewhere fuses nothing. */
static void check_linear(asg_dtype dt, bool tb, int act, bool batched, bool mm_out, bool grads) {
  const int64_t B = batched ? 3 : 1, M = 37, K = 20, N = 33;
  asg_graph *g = asg_graph_new();
  asg_shape as = batched ? ASG_SHAPE(B, M, K) : ASG_SHAPE(M, K);
  asg_tensor *a = asg_input(g, "a", dt, as);
  asg_tensor *w = asg_input(g, "w", dt, tb ? ASG_SHAPE(N, K) : ASG_SHAPE(K, N));
  asg_tensor *b = asg_input(g, "b", dt, ASG_SHAPE(N));
  asg_tensor *mm = asg_matmul_t(a, w, false, tb), *y = asg_add(mm, b);
  if (act == 1) y = asg_relu(y);
  if (act == 2) y = asg_gelu_tanh(y);
  asg_tensor *outs[5] = {y};
  int n = 1;
  if (mm_out) outs[n++] = mm;
  asg_tensor *r = asg_input(g, "r", dt, asg_tensor_shape(y)), *wrt[3] = {a, w, b};
  if (grads) {
    asg_tensor *loss = asg_sum(asg_mul(y, r), ASG_ALL_AXES, false);
    TU_CHECK(asg_grad(loss, 3, wrt, outs + n) == ASG_OK, "linear: asg_grad");
    n += 3;
  }
  asg_program *fz = compile(g, n, outs, g_backend, false), *un = compile(g, n, outs, "cpu", true);
  const long na = B * M * K, nw = K * N, ny = B * M * N;
  double *av = malloc(sizeof(double) * (size_t)na), wv[20 * 33], bv[33], *want, *got[5], *ug[5];
  double *rv = malloc(sizeof(double) * (size_t)ny);
  want = malloc(sizeof(double) * (size_t)ny);
  tu_rand(11, av, na, -1, 1), tu_rand(12, wv, nw, -1, 1), tu_rand(13, bv, N, -1, 1);
  tu_rand(14, rv, ny, 0.5, 1.5);
  const feed f[4] = {{"a", av, na}, {"w", wv, nw}, {"b", bv, N}, {grads ? "r" : NULL, rv, ny}};
  const bool ok = run_pair(fz, un, dt, f, 4, n, outs, got, ug);
  char what[96];
  snprintf(what, sizeof what, "linear %s tb %d act %d batched %d mm_out %d grads %d",
           asg_dtype_name(dt), tb, act, batched, mm_out, grads);
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (ok) {
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    TU_CHECK(mm_out || g_off_linear ? sf == su : sf < su, "%s: %d steps fused, %d unfused", what,
             sf, su);
    for (int64_t i = 0; i < B * M; i++)
      for (int64_t j = 0; j < N; j++) {
        double v = bv[j];
        for (int64_t k = 0; k < K; k++)
          v += av[i * K + k] * (tb ? wv[j * K + k] : wv[k * N + j]);
        want[i * N + j] =
            act == 1   ? (v < 0 ? 0 : v)
            : act == 2 ? 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                       : v;
      }
    TU_CHECK(tu_close(what, got[0], want, ny, dt == ASG_F32 ? 1e-5 : 1e-12, 1e-5),
             "%s: y against loops", what);
    compare_pair(what, dt, n, outs, got, ug);
  }
  free(av), free(rv), free(want);
  free_pair(n, got, ug, fz, un, g);
}

/* (a w^T + bias) + r (+ the gradients of a, w, bias and r): the residual
 * folds into the matmul_bias_act step as its input 3 (fuse.c), one step
 * fewer than the product with its bias alone, unless ASG_FUSE_RESIDUAL=0;
 * without a bias, a w^T + r is one step (i3 = 1); M = 3 rows (CUDA: the
 * skinny-product kernel) or 37. */
static void check_residual(asg_dtype dt, int64_t M, bool grads, bool bias) {
  const int64_t K = 24, N = 19;
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_input(g, "a", dt, ASG_SHAPE(M, K));
  asg_tensor *w = asg_input(g, "w", dt, ASG_SHAPE(N, K));
  asg_tensor *b = asg_input(g, "b", dt, ASG_SHAPE(N));
  asg_tensor *r = asg_input(g, "r", dt, ASG_SHAPE(M, N)),
             *u = asg_input(g, "u", dt, ASG_SHAPE(M, N));
  asg_tensor *mm = asg_matmul_t(a, w, false, true);
  asg_tensor *y = asg_add(r, bias ? asg_add(mm, b) : mm);
  asg_tensor *outs[5] = {y}, *wrt[4] = {a, w, r, b};
  int n = 1;
  if (grads) {
    const int nw = bias ? 4 : 3;
    TU_CHECK(asg_grad(asg_sum(asg_mul(y, u), ASG_ALL_AXES, false), nw, wrt, outs + 1) == ASG_OK,
             "residual: asg_grad");
    n = 1 + nw;
  }
  asg_program *fz = compile(g, n, outs, g_backend, false), *un = compile(g, n, outs, "cpu", true);
  double av[37 * 24], wv[19 * 24], bv[19], rv[37 * 19], uv[37 * 19], want[37 * 19];
  double *got[5], *ug[5];
  tu_rand(21, av, M * K, -1, 1), tu_rand(22, wv, N * K, -1, 1), tu_rand(23, bv, N, -1, 1);
  tu_rand(24, rv, M * N, -2, 2), tu_rand(25, uv, M * N, 0.5, 1.5);
  const feed f[5] = {{"a", av, M * K},
                     {"w", wv, N * K},
                     {bias ? "b" : NULL, bv, N},
                     {"r", rv, M * N},
                     {grads ? "u" : NULL, uv, M * N}};
  const bool ok = run_pair(fz, un, dt, f, 5, n, outs, got, ug);
  char what[96];
  snprintf(what, sizeof what, "residual %s M %lld grads %d bias %d", asg_dtype_name(dt),
           (long long)M, grads, bias);
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (ok) {
    const char *e = getenv("ASG_FUSE_RESIDUAL");
    const bool off = e && !strcmp(e, "0");
    const int folded = g_off_linear ? 0 : (bias ? 1 : 0) + !off; /* steps saved */
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    TU_CHECK(sf == su - folded, "%s: %d steps fused, %d unfused (%d folded expected)", what, sf, su,
             folded);
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double v = bias ? bv[j] : 0;
        for (int64_t k = 0; k < K; k++)
          v += av[i * K + k] * wv[j * K + k];
        want[i * N + j] = v + rv[i * N + j];
      }
    TU_CHECK(tu_close(what, got[0], want, M * N, dt == ASG_F32 ? 1e-5 : 1e-12, 1e-5),
             "%s: y against loops", what);
    compare_pair(what, dt, n, outs, got, ug);
  }
  free_pair(n, got, ug, fz, un, g);
}

/* attention(q, k, v [, mask]) and the gradients of q, k, v: the backward's
 * attention_lse becomes the forward step's aux output (fuse_stats.c), one
 * step fewer than the unfused program, with the same bits on the CPU (a row
 * that sees no key: lse -inf, no gradient), unless ASG_FUSE_STATS=0. */
static void check_stats(asg_dtype dt, bool causal, bool masked) {
  const int64_t B = 2, H = 3, T = 9, D = 8;
  asg_graph *g = asg_graph_new();
  asg_tensor *q = asg_input(g, "q", dt, ASG_SHAPE(B, H, T, D));
  asg_tensor *k = asg_input(g, "k", dt, ASG_SHAPE(B, H, T, D));
  asg_tensor *v = asg_input(g, "v", dt, ASG_SHAPE(B, H, T, D));
  asg_tensor *m = asg_input(g, "m", dt, ASG_SHAPE(B, T));
  asg_tensor *r = asg_input(g, "r", dt, ASG_SHAPE(B, H, T, D));
  asg_tensor *o =
      masked ? asg_attention_masked(q, k, v, m, 0.3, causal) : asg_attention(q, k, v, 0.3, causal);
  asg_tensor *outs[4] = {o}, *wrt[3] = {q, k, v};
  asg_tensor *loss = asg_sum(asg_mul(o, r), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(loss, 3, wrt, outs + 1) == ASG_OK, "stats: asg_grad");
  asg_program *fz = compile(g, 4, outs, g_backend, false), *un = compile(g, 4, outs, "cpu", true);
  const long n = B * H * T * D;
  double *x = malloc(sizeof(double) * (size_t)(4 * n)), mv[2 * 9], *got[4], *ug[4];
  tu_rand(21, x, 4 * n, -1.5, 1.5);
  for (int i = 0; i < B * T; i++) /* row 1 sees no key; row 0 some */
    mv[i] = i >= T || i % 3 == 1 ? 0 : 1;
  const feed f[5] = {{"q", x, n},
                     {"k", x + n, n},
                     {"v", x + 2 * n, n},
                     {"r", x + 3 * n, n},
                     {masked ? "m" : NULL, mv, B * T}};
  const bool ok = run_pair(fz, un, dt, f, 5, 4, outs, got, ug);
  char what[96];
  snprintf(what, sizeof what, "attention stats %s causal %d masked %d", asg_dtype_name(dt), causal,
           masked);
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (ok) {
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    /* the lse (stats rule) and delta = sum(do * o) (row-dot rule) */
    TU_CHECK(sf == su - !g_off_stats - !g_off_rowdot, "%s: %d steps with the passes, %d without",
             what, sf, su);
    compare_pair(what, dt, 4, outs, got, ug);
  }
  free(x);
  free_pair(4, got, ug, fz, un, g);
}

/* layernorm(x, gamma, beta) [B, T, C] with the gradients of gamma and beta
 * (and of x when gx): with x's gradient, the gamma gradient and the beta
 * sum become further outputs of the layernorm_bwd_x step (fuse_stats.c):
 * two steps fewer, the same values (y and dx the unfused bits; the CPU and
 * CUDA sum the two gradients in their own one pass); without it nothing
 * takes them. */
static void check_ln_pair(asg_dtype dt, bool gx, int64_t C, int64_t T) {
  const int64_t B = 3;
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(B, T, C));
  asg_tensor *gm = asg_input(g, "g", dt, ASG_SHAPE(C)), *bt = asg_input(g, "b", dt, ASG_SHAPE(C));
  asg_tensor *r = asg_input(g, "r", dt, ASG_SHAPE(B, T, C));
  asg_tensor *y = asg_layernorm(x, gm, bt, 1e-5);
  asg_tensor *outs[4] = {y}, *wrt[3] = {gm, bt, x};
  asg_tensor *loss = asg_sum(asg_mul(y, r), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(loss, gx ? 3 : 2, wrt, outs + 1) == ASG_OK, "ln pair: asg_grad");
  const int n = gx ? 4 : 3;
  asg_program *fz = compile(g, n, outs, g_backend, false), *un = compile(g, n, outs, "cpu", true);
  const long nx = B * T * C;
  double *v = malloc(sizeof(double) * (size_t)(2 * nx + 2 * C)), *got[4], *ug[4];
  tu_rand(31, v, 2 * nx + 2 * C, -1.5, 1.5);
  const feed f[4] = {
      {"x", v, nx}, {"r", v + nx, nx}, {"g", v + 2 * nx, C}, {"b", v + 2 * nx + C, C}};
  const bool ok = run_pair(fz, un, dt, f, 4, n, outs, got, ug);
  char what[96];
  snprintf(what, sizeof what, "layernorm pair %s dx %d C %lld", asg_dtype_name(dt), gx,
           (long long)C);
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (ok) {
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    TU_CHECK(g_off_stats || !gx ? sf == su : sf == su - 2, "%s: %d steps with the pass, %d without",
             what, sf, su);
    /* y, dx: the unfused bits; the gamma and beta gradients: summed over row
     * blocks of 32 from the dx pass's statistics on the CPU (not the bits) */
    if (strcmp(g_backend, "cpu") != 0 || g_off_stats || !gx) {
      compare_pair(what, dt, n, outs, got, ug);
    } else {
      compare_pair(what, dt, 1, outs, got, ug);
      compare_pair(what, dt, 1, outs + 3, got + 3, ug + 3); /* dx */
      for (int k = 1; k < 3; k++)
        TU_CHECK(tu_close(what, got[k], ug[k], C, dt == ASG_F32 ? 1e-5 : 1e-12, 1e-6),
                 "%s: output %d against the unfused CPU", what, k);
    }
  }
  free(v);
  free_pair(n, got, ug, fz, un, g);
}

/* y = batchnorm(x, gamma, beta) over [N, C, H, W], then the batch mean and
 * biased variance over every axis but the channels (what the batch-norm
 * layer's running statistics read) and the gradients: the statistics come
 * from the batchnorm step, the gamma and beta gradients from its dx step
 * (two steps fewer each). y, dx and the gamma gradient are the unfused bits
 * on the CPU; mean, var and the beta gradient are summed in another order
 * there (rtol 1e-6); against double loops too. A mean built before the
 * batchnorm (or over other axes) stays its own step. */
static void check_bn_stats(asg_dtype dt, bool gx, bool before, bool flat) {
  /* flat: [N, C] (a 1-d batch norm: its beta gradient, a sum over axis 0, is also what a
   * layernorm's would be) */
  const int64_t N = flat ? 24 : 3, C = 5, H = flat ? 1 : 4, W = flat ? 1 : 6, M = N * H * W,
                nx = N * C * H * W;
  const asg_shape xs = flat ? ASG_SHAPE(N, C) : ASG_SHAPE(N, C, H, W);
  const asg_axes ax = flat ? ASG_AXES(0) : ASG_AXES(0, 2, 3);
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", dt, xs);
  asg_tensor *gm = asg_input(g, "g", dt, ASG_SHAPE(C)), *bt = asg_input(g, "b", dt, ASG_SHAPE(C));
  asg_tensor *r = asg_input(g, "r", dt, xs);
  asg_tensor *early = before ? asg_mean(x, ax, false) : NULL;
  asg_tensor *y = asg_batchnorm(x, gm, bt, 1e-5);
  asg_tensor *mean = before ? early : asg_mean(x, ax, false);
  asg_tensor *var = asg_var(x, ax, 0, false);
  asg_tensor *outs[6] = {y, mean, var}, *wrt[3] = {gm, bt, x};
  asg_tensor *loss = asg_sum(asg_mul(y, r), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(loss, gx ? 3 : 2, wrt, outs + 3) == ASG_OK, "bn stats: asg_grad");
  const int n = gx ? 6 : 5;
  asg_program *fz = compile(g, n, outs, g_backend, false), *un = compile(g, n, outs, "cpu", true);
  double *v = malloc(sizeof(double) * (size_t)(2 * nx + 2 * C)), *got[6], *ug[6];
  tu_rand(53, v, 2 * nx + 2 * C, -1.5, 1.5);
  const feed f[4] = {
      {"x", v, nx}, {"r", v + nx, nx}, {"g", v + 2 * nx, C}, {"b", v + 2 * nx + C, C}};
  const bool ok = run_pair(fz, un, dt, f, 4, n, outs, got, ug);
  char what[96];
  snprintf(what, sizeof what, "batchnorm stats %s dx %d mean first %d flat %d", asg_dtype_name(dt),
           gx, before, flat);
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (ok) {
    /* fewer steps: var (and mean unless built first); with dx the gamma and beta gradients */
    const int want = g_off_stats ? 0 : (before ? 1 : 2) + (gx ? 2 : 0);
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    TU_CHECK(sf == su - want, "%s: %d steps with the pass, %d without (want %d fewer)", what, sf,
             su, want);
    const double tol = dt == ASG_F32 ? 1e-5 : 1e-12;
    compare_pair(what, dt, 1, outs, got, ug);                     /* y */
    if (gx) compare_pair(what, dt, 1, outs + 5, got + 5, ug + 5); /* dx */
    compare_pair(what, dt, 1, outs + 3, got + 3, ug + 3);         /* the gamma gradient */
    const int near[3] = {1, 2, 4};                                /* mean, var, beta gradient */
    for (int k = 0; k < 3; k++)
      TU_CHECK(tu_close(what, got[near[k]], ug[near[k]], C, tol, 1e-6),
               "%s: output %d against the unfused CPU", what, near[k]);
    /* against double loops: the mean, the biased variance and sum(r) per channel */
    double wm[8], wv[8], wb[8];
    for (int64_t c = 0; c < C; c++) {
      double s = 0, q = 0, sb = 0;
      for (int64_t i = 0; i < N; i++)
        for (int64_t p = 0; p < H * W; p++) {
          const int64_t at = (i * C + c) * H * W + p;
          s += dt == ASG_F32 ? (float)v[at] : v[at];
          sb += dt == ASG_F32 ? (float)v[nx + at] : v[nx + at];
        }
      for (int64_t i = 0; i < N; i++)
        for (int64_t p = 0; p < H * W; p++) {
          const double d =
              (dt == ASG_F32 ? (float)v[(i * C + c) * H * W + p] : v[(i * C + c) * H * W + p]) -
              s / (double)M;
          q += d * d;
        }
      wm[c] = s / (double)M, wv[c] = q / (double)M, wb[c] = sb;
    }
    TU_CHECK(tu_close(what, got[1], wm, C, tol, 1e-5) && tu_close(what, got[2], wv, C, tol, 1e-5) &&
                 tu_close(what, got[4], wb, C, tol, 1e-5),
             "%s: mean, var, beta gradient against double loops", what);
  }
  free(v);
  free_pair(n, got, ug, fz, un, g);
}

/* sum(a * b) over the last axis [+ the gradients of a and b]: one rowdot
 * step (fuse_rowdot.c), the unfused bits on the CPU, against double loops;
 * rows of C = 5 (in order) and 70 (in lanes); with the products also
 * read elsewhere (prod_out) nothing fuses. */
static void check_rowdot(asg_dtype dt, int64_t C, bool prod_out, bool grads) {
  const int64_t R = 6;
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_input(g, "a", dt, ASG_SHAPE(2, 3, C)),
             *b = asg_input(g, "b", dt, ASG_SHAPE(2, 3, C));
  asg_tensor *p = asg_mul(a, b), *y = asg_sum(p, ASG_AXES(-1), false);
  asg_tensor *outs[4] = {y}, *wrt[2] = {a, b};
  int n = 1;
  if (prod_out) outs[n++] = p;
  if (grads) {
    asg_tensor *loss = asg_sum(asg_mul(y, y), ASG_ALL_AXES, false);
    TU_CHECK(asg_grad(loss, 2, wrt, outs + n) == ASG_OK, "rowdot: asg_grad");
    n += 2;
  }
  asg_program *fz = compile(g, n, outs, g_backend, false), *un = compile(g, n, outs, "cpu", true);
  double *v = malloc(sizeof(double) * (size_t)(2 * R * C)), want[6], *got[4], *ug[4];
  tu_rand(41, v, 2 * R * C, -2, 2);
  const feed f[2] = {{"a", v, R * C}, {"b", v + R * C, R * C}};
  const bool ok = run_pair(fz, un, dt, f, 2, n, outs, got, ug);
  char what[96];
  snprintf(what, sizeof what, "rowdot %s C %lld prod_out %d grads %d", asg_dtype_name(dt),
           (long long)C, prod_out, grads);
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (ok) {
    const int sf = asg_program_step_count(fz), su = asg_program_step_count(un);
    TU_CHECK(prod_out || g_off_rowdot ? sf == su : sf == su - 1, "%s: %d steps fused, %d unfused",
             what, sf, su);
    for (int64_t r = 0; r < R; r++) {
      want[r] = 0;
      for (int64_t j = 0; j < C; j++)
        want[r] += v[r * C + j] * v[R * C + r * C + j];
    }
    TU_CHECK(tu_close(what, got[0], want, R, dt == ASG_F32 ? 1e-5 : 1e-12, 1e-5),
             "%s: y against loops", what);
    compare_pair(what, dt, n, outs, got, ug);
  }
  free(v);
  free_pair(n, got, ug, fz, un, g);
}

int main(int argc, char **argv) {
  if (argc > 1) g_backend = argv[1];
  const char *env = getenv("ASG_FUSE_CONV"), *env_l = getenv("ASG_FUSE_LINEAR");
  const char *env_s = getenv("ASG_FUSE_STATS"), *env_r = getenv("ASG_FUSE_ROWDOT");
  g_off = env && !strcmp(env, "0");
  g_off_linear = env_l && !strcmp(env_l, "0");
  g_off_stats = env_s && !strcmp(env_s, "0");
  g_off_rowdot = env_r && !strcmp(env_r, "0");
  if (!asg_backend_available(g_backend)) {
    printf("backend %s not available: skipped\n", g_backend);
    return TU_SKIP;
  }
  static const fcase cases[] = {
      /* f32 stride 1, 9 taps and 72 taps: the CPU's direct kernel */
      {"1->8 3x3", 3, 1, 12, 11, 8, 3, 1, 1, 1},
      {"8->16 3x3", 2, 8, 9, 10, 16, 3, 1, 1, 1},
      /* im2col + GEMM: stride 2, groups, a 1x1 kernel, more images than threads */
      {"stride 2 groups 2", 3, 4, 11, 9, 6, 3, 2, 1, 2},
      {"1x1", 5, 6, 5, 4, 3, 1, 1, 0, 1},
  };
  const asg_dtype dts[2] = {ASG_F32, ASG_F64};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    for (int d = 0; d < 2; d++) {
      check(&cases[i], dts[d], true, false, false);
      check(&cases[i], dts[d], false, false, false);
      check(&cases[i], dts[d], true, true, false);
      check(&cases[i], dts[d], true, false, true);
    }
  check_symbolic(ASG_F32);
  check_symbolic(ASG_F64);
  for (int d = 0; d < 2; d++)
    for (int v = 0; v < 7; v++) /* (tb, act, batched, mm_out, grads); gelu_tanh: f32 folds it */
      check_linear(dts[d], v != 2, v == 1 ? 0 : v >= 5 ? 2 : 1, v == 2, v == 4, v != 6);
  for (int d = 0; d < 2; d++)
    for (int v = 0; v < 8; v++)
      check_residual(dts[d], v & 1 ? 37 : 3, v & 2, v < 4);
  for (int d = 0; d < 2; d++)
    for (int v = 0; v < 4; v++)
      check_stats(dts[d], v & 1, v & 2);
  for (int d = 0; d < 2; d++)
    for (int v = 0; v < 8;
         v++) /* C 24 (one-pass on CUDA), 1100 (too wide for it); 15 or 150 rows */
      check_ln_pair(dts[d], v & 1, v & 2 ? 1100 : 24, v & 4 ? 50 : 5);
  for (int d = 0; d < 2; d++)
    for (int v = 0; v < 6; v++)
      check_rowdot(dts[d], v & 1 ? 70 : 5, v == 2, v >= 3);
  for (int d = 0; d < 2; d++)
    for (int v = 0; v < 8; v++)
      check_bn_stats(dts[d], v & 1, v & 2, v & 4);
  return tu_finish();
}
