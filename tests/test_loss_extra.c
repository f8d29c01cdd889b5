/* Class-weighted cross-entropy / NLL, focal, hinge, margin and embedding
 * losses: forward against float64 loop references written here (PyTorch's
 * and torchvision's formulas), every reduction, gradients by central
 * differences, a few values from PyTorch itself (tests/fixtures/losses/
 * make.py), and bad arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define RR 4 /* rows */
#define DD 5 /* features / classes */
#define NN (RR * DD)

enum { K_WCE, K_WNLL, K_FOCAL, K_HINGE, K_MMARGIN, K_RANK, K_COS, K_TRIPLET };

/* One case: the loss, its parameters, its reduction. */
typedef struct lc {
  int kind;
  double a, b, c; /* margin / alpha / smoothing / p, gamma, eps */
  int flag;       /* weight present, int targets, swap */
  int64_t ignore;
  asg_reduction r;
} lc;

/* The data of the current kind: float inputs, targets (+-1 or labels) and
 * class weights. */
static double X[3][NN], T[NN], W[DD];

static int n_inputs(int kind) {
  switch (kind) {
  case K_HINGE: return 1;
  case K_TRIPLET: return 3;
  case K_WCE:
  case K_WNLL:
  case K_MMARGIN: return 1; /* + the weight, as a second input */
  default: return 2;
  }
}
static bool row_loss(int kind) { return kind != K_FOCAL && kind != K_HINGE && kind != K_RANK; }

/* Builds the loss on inputs xs (constants or gradcheck variables); xs[n]
 * is the weight for the class losses when c->flag. */
static asg_tensor *build(asg_graph *g, asg_tensor **xs, void *ctx) {
  const lc *c = ctx;
  asg_dtype tdt = c->flag ? ASG_I64 : ASG_F64; /* targets of +-1 */
  asg_tensor *lab = tu_constant(g, ASG_I64, ASG_SHAPE(RR), T);
  asg_tensor *w = c->flag ? xs[1] : NULL;
  switch (c->kind) {
  case K_WCE: return asg_cross_entropy_loss_weighted(xs[0], lab, w, c->a, c->ignore, c->r);
  case K_WNLL: return asg_nll_loss_weighted(asg_log_softmax(xs[0], -1), lab, w, c->ignore, c->r);
  case K_FOCAL: return asg_sigmoid_focal_loss(xs[0], xs[1], c->a, c->b, c->r);
  case K_HINGE:
    return asg_hinge_embedding_loss(xs[0], tu_constant(g, tdt, ASG_SHAPE(RR, DD), T), c->a, c->r);
  case K_MMARGIN: return asg_multi_margin_loss(xs[0], lab, (int)c->b, c->a, w, c->r);
  case K_RANK:
    return asg_margin_ranking_loss(xs[0], xs[1], tu_constant(g, tdt, ASG_SHAPE(RR, DD), T), c->a,
                                   c->r);
  case K_COS:
    return asg_cosine_embedding_loss(xs[0], xs[1], tu_constant(g, tdt, ASG_SHAPE(RR), T), c->a,
                                     c->r);
  default: return asg_triplet_margin_loss(xs[0], xs[1], xs[2], c->a, c->b, c->c, c->flag, c->r);
  }
}

static double relu(double v) { return v > 0 ? v : 0; }
static double sigm(double z) { return 1 / (1 + exp(-z)); }
static double pnorm(const double *u, const double *v, double p, double eps) {
  double s = 0;
  for (int j = 0; j < DD; j++) {
    double d = fabs(u[j] - v[j] + eps);
    s = isinf(p) ? fmax(s, d) : s + pow(d, p);
  }
  return isinf(p) ? s : pow(s, 1 / p);
}

/* Reference per-element (or per-row) losses into out; returns their count
 * and sets *den to the divisor of the mean. */
static int reference(const lc *c, double *out, double *den) {
  *den = 0;
  if (!row_loss(c->kind)) {
    for (int i = 0; i < NN; i++) {
      double x = X[0][i], y = X[1][i], t = T[i];
      if (c->kind == K_FOCAL) { /* naive logs of sigmoids: moderate x only */
        double p = sigm(x), ce = -(y * log(p) + (1 - y) * log(1 - p));
        double pt = p * y + (1 - p) * (1 - y);
        out[i] = ce * pow(1 - pt, c->b);
        if (c->a >= 0) out[i] *= c->a * y + (1 - c->a) * (1 - y);
      } else if (c->kind == K_HINGE) {
        out[i] = t == 1 ? x : t == -1 ? relu(c->a - x) : x + relu(c->a - x);
      } else { /* ranking */
        out[i] = relu(-t * (x - y) + c->a);
      }
    }
    *den = NN;
    return NN;
  }
  for (int i = 0; i < RR; i++) {
    const double *x = X[0] + i * DD, *x2 = X[1] + i * DD, *x3 = X[2] + i * DD;
    int64_t y = (int64_t)T[i];
    double wy = c->flag && y >= 0 && y < DD ? W[y] : 1;
    if (c->kind == K_WCE || c->kind == K_WNLL) {
      if (y == c->ignore) {
        out[i] = 0;
        continue;
      }
      double mx = -INFINITY, se = 0, sm = 0;
      for (int j = 0; j < DD; j++)
        mx = fmax(mx, x[j]);
      for (int j = 0; j < DD; j++)
        se += exp(x[j] - mx);
      double lse = mx + log(se);
      for (int j = 0; j < DD; j++)
        sm += (c->flag ? W[j] : 1) * (lse - x[j]);
      out[i] = (1 - c->a) * wy * (lse - x[y]) + c->a / DD * sm;
      *den += wy;
    } else if (c->kind == K_MMARGIN) {
      double s = 0;
      for (int j = 0; j < DD; j++)
        if (j != y) s += wy * pow(relu(c->a - x[y] + x[j]), c->b);
      out[i] = s / DD;
      *den += 1;
    } else if (c->kind == K_COS) {
      double d = 0, m1 = 1e-12, m2 = 1e-12;
      for (int j = 0; j < DD; j++)
        d += x[j] * x2[j], m1 += x[j] * x[j], m2 += x2[j] * x2[j];
      double cs = d / sqrt(m1 * m2);
      out[i] = T[i] == 1 ? 1 - cs : T[i] == -1 ? relu(cs - c->a) : 0;
      *den += 1;
    } else { /* triplet */
      double dp = pnorm(x, x2, c->b, c->c), dn = pnorm(x, x3, c->b, c->c);
      if (c->flag) dn = fmin(dn, pnorm(x2, x3, c->b, c->c));
      out[i] = relu(dp - dn + c->a);
      *den += 1;
    }
  }
  return RR;
}

/* Fills X, T, W for a kind (seeded by it). */
static void make_data(int kind) {
  for (int i = 0; i < 3; i++)
    tu_rand(100 + 10 * (unsigned)kind + (unsigned)i, X[i], NN, -2, 2);
  tu_rand(200 + (unsigned)kind, W, DD, 0.2, 2);
  double u[NN];
  tu_rand(300 + (unsigned)kind, u, NN, 0, 1);
  for (int i = 0; i < NN; i++)
    T[i] = u[i] < 0.5 ? 1 : -1;
  if (kind == K_FOCAL) { /* soft targets and hard ones */
    tu_rand(400, X[1], NN, 0, 1);
    X[1][0] = 0, X[1][1] = 1;
  }
  if (kind == K_HINGE || kind == K_COS) T[3] = 0; /* neither 1 nor -1 */
  if (kind == K_WCE || kind == K_WNLL || kind == K_MMARGIN) {
    const double lab[RR] = {1, 2, 4, 0};
    memcpy(T, lab, sizeof lab);
  }
  if (kind == K_COS) /* a near-parallel pair: cos close to 1 */
    for (int j = 0; j < DD; j++)
      X[1][DD + j] = 0.5 * X[0][DD + j] + 0.01 * X[1][DD + j];
}

static void run_case(const char *name, const lc *c) {
  int ni = n_inputs(c->kind) +
           ((c->kind == K_WCE || c->kind == K_WNLL || c->kind == K_MMARGIN) && c->flag);
  asg_shape sh[3] = {ASG_SHAPE(RR, DD), ASG_SHAPE(RR, DD), ASG_SHAPE(RR, DD)};
  const double *data[3] = {X[0], X[1], X[2]};
  if (ni == 2 && (c->kind == K_WCE || c->kind == K_WNLL || c->kind == K_MMARGIN))
    sh[1] = ASG_SHAPE(DD), data[1] = W;
  /* forward */
  double want[NN], got[NN], den;
  int n = reference(c, want, &den);
  if (c->r != ASG_REDUCE_NONE) {
    double s = 0;
    for (int i = 0; i < n; i++)
      s += want[i];
    want[0] = c->r == ASG_REDUCE_SUM ? s : s / den;
    n = 1;
  }
  asg_graph *g = asg_graph_new();
  asg_tensor *xs[3];
  for (int i = 0; i < ni; i++)
    xs[i] = asg_constant(g, ASG_F64, sh[i], data[i]);
  asg_tensor *l = build(g, xs, (void *)c);
  bool ok = l && tu_eval(g, l, got) == 0;
  TU_CHECK(ok && asg_shape_numel(asg_tensor_shape(l)) == n, "%s: build/eval/shape: %s", name,
           asg_graph_error(g) ? asg_graph_error(g) : "");
  if (ok) TU_CHECK(tu_close(name, got, want, n, 1e-12, 1e-12), "%s forward", name);
  asg_graph_free(g);
  /* gradients of every float input (sum is mean times a constant) */
  if (c->r == ASG_REDUCE_SUM) return;
  tu_gc_opts o = {.data = data};
  TU_CHECK(tu_gradcheck(name, ni, sh, build, (void *)c, &o) == 0, "%s gradient", name);
}

static void run_kind(int kind, const char *kname, const lc *cases, int nc) {
  make_data(kind);
  for (int i = 0; i < nc; i++)
    for (int r = ASG_REDUCE_MEAN; r <= ASG_REDUCE_NONE; r++) {
      lc c = cases[i];
      c.kind = kind, c.r = (asg_reduction)r;
      char name[128];
      snprintf(name, sizeof name, "%s a%g b%g c%g f%d ign%lld r%d", kname, c.a, c.b, c.c, c.flag,
               (long long)c.ignore, r);
      run_case(name, &c);
    }
}

static void test_all(void) {
  /* CE: smoothing a, weight flag, ignore (label 2 is row 1's) */
  const lc ce[] = {{.a = 0, .flag = 1, .ignore = -100},
                   {.a = 0.1, .flag = 1, .ignore = -100},
                   {.a = 0.1, .flag = 1, .ignore = 2},
                   {.a = 0.2, .flag = 0, .ignore = 2}};
  run_kind(K_WCE, "ce_weighted", ce, 4);
  const lc nll[] = {{.flag = 1, .ignore = -100}, {.flag = 1, .ignore = 2}};
  run_kind(K_WNLL, "nll_weighted", nll, 2);
  /* focal: alpha a, gamma b (torchvision's default 0.25, 2) */
  const lc fo[] = {{.a = 0.25, .b = 2}, {.a = -1, .b = 0}, {.a = 0.6, .b = 1.5}, {.a = 1, .b = 1}};
  run_kind(K_FOCAL, "focal", fo, 4);
  /* hinge embedding: margin a, int targets flag */
  const lc he[] = {{.a = 1}, {.a = 0.5, .flag = 1}};
  run_kind(K_HINGE, "hinge_embedding", he, 2);
  /* multi margin: margin a, p b, weight flag */
  const lc mm[] = {{.a = 1, .b = 1},
                   {.a = 1, .b = 2},
                   {.a = 0.7, .b = 1, .flag = 1},
                   {.a = 1.5, .b = 2, .flag = 1}};
  run_kind(K_MMARGIN, "multi_margin", mm, 4);
  const lc mr[] = {{.a = 0}, {.a = 0.3, .flag = 1}};
  run_kind(K_RANK, "margin_ranking", mr, 2);
  const lc co[] = {{.a = 0}, {.a = 0.2, .flag = 1}, {.a = -0.5}};
  run_kind(K_COS, "cosine_embedding", co, 3);
  /* triplet: margin a, p b, eps c, swap flag */
  const lc tr[] = {{.a = 1, .b = 2, .c = 1e-6},
                   {.a = 0.5, .b = 1, .c = 1e-6, .flag = 1},
                   {.a = 1, .b = 3, .c = 0},
                   {.a = 2, .b = INFINITY, .c = 1e-6, .flag = 1}};
  run_kind(K_TRIPLET, "triplet", tr, 4);
}

/* The per-class weighted mean is sum(w[y] l) / sum(w[y]), not a plain
 * mean: an exact small case (logits all equal, so -log p = log C). */
static void test_weighted_mean_by_hand(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_fill(g, ASG_F64, ASG_SHAPE(3, 4), 0);
  asg_tensor *lab = asg_constant(g, ASG_I32, ASG_SHAPE(3), (int32_t[]){0, 3, 3});
  asg_tensor *w = asg_constant(g, ASG_F64, ASG_SHAPE(4), (double[]){1, 0, 0, 3});
  double got, want = log(4.0); /* (1 + 3 + 3) log 4 / (1 + 3 + 3) */
  TU_CHECK(tu_eval(g, asg_cross_entropy_loss_weighted(x, lab, w, 0, -100, ASG_REDUCE_MEAN), &got) ==
                   0 &&
               fabs(got - want) < 1e-12,
           "weighted mean of equal losses is that loss: %g", got);
  asg_graph_free(g);
}

/* Values printed by PyTorch (torchvision's formula for focal)
 * (tests/fixtures/losses/make.py): a check independent of the references
 * above, in F32. */
static void test_torch_values(void) {
  const float x1[6] = {0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 1.5f};
  const float x2[6] = {-0.3f, 0.8f, 1.1f, -1.2f, 0.4f, 0.9f};
  const float x3[6] = {1.0f, 0.2f, -0.6f, 0.7f, -1.4f, 0.1f};
  const float yb[6] = {0, 1, 1, 0, 1, 0};
  const float ys[2] = {1, -1};
  const int64_t lab[2] = {2, 0};
  const float w[3] = {0.5f, 2.0f, 1.0f};
  /* from make.py */
  const double want[] = {0.9273651242256165, 0.2731349766254425, 0.421875,
                         1.4166666269302368, 0.7932488322257996, 1.140371322631836,
                         0.5416666865348816};
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_constant(g, ASG_F32, ASG_SHAPE(2, 3), x1);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(2, 3), x2);
  asg_tensor *c = asg_constant(g, ASG_F32, ASG_SHAPE(2, 3), x3);
  asg_tensor *t = asg_constant(g, ASG_F32, ASG_SHAPE(2), ys);
  asg_tensor *l = asg_constant(g, ASG_I64, ASG_SHAPE(2), lab);
  asg_tensor *wt = asg_constant(g, ASG_F32, ASG_SHAPE(3), w);
  asg_tensor *outs[] = {
      asg_cross_entropy_loss_weighted(a, l, wt, 0.1, -100, ASG_REDUCE_MEAN),
      asg_sigmoid_focal_loss(a, asg_constant(g, ASG_F32, ASG_SHAPE(2, 3), yb), 0.25, 2,
                             ASG_REDUCE_MEAN),
      asg_multi_margin_loss(a, l, 2, 1, wt, ASG_REDUCE_MEAN),
      asg_hinge_embedding_loss(
          a, asg_constant(g, ASG_F32, ASG_SHAPE(2, 3), (float[]){1, -1, 1, -1, -1, 1}), 1,
          ASG_REDUCE_MEAN),
      asg_cosine_embedding_loss(a, b, t, 0.1, ASG_REDUCE_SUM),
      asg_triplet_margin_loss(a, b, c, 1, 2, 1e-6, true, ASG_REDUCE_MEAN),
      asg_margin_ranking_loss(
          a, b, asg_constant(g, ASG_F32, ASG_SHAPE(2, 3), (float[]){1, -1, -1, 1, 1, -1}), 0.2,
          ASG_REDUCE_MEAN),
  };
  for (int i = 0; i < (int)(sizeof outs / sizeof *outs); i++) {
    double got;
    char what[32];
    snprintf(what, sizeof what, "torch value %d", i);
    TU_CHECK(outs[i] && tu_eval(g, outs[i], &got) == 0 &&
                 tu_close(what, &got, &want[i], 1, 1e-6, 1e-5),
             "%s: %s", what, asg_graph_error(g) ? asg_graph_error(g) : "");
  }
  asg_graph_free(g);
}

static void test_errors(void) {
  struct {
    int which;
    const char *op, *frag;
  } cases[] = {
      {0, "cross_entropy_loss", "weight [4]"},
      {1, "cross_entropy_loss", "f64"},
      {2, "sigmoid_focal_loss", "gamma"},
      {3, "sigmoid_focal_loss", "alpha"},
      {4, "hinge_embedding_loss", "target [3,2]"},
      {5, "hinge_embedding_loss", "target is f64"},
      {6, "multi_margin_loss", "p must be 1 or 2"},
      {7, "multi_margin_loss", "labels"},
      {8, "margin_ranking_loss", "input2 [3,2]"},
      {9, "cosine_embedding_loss", "margin"},
      {10, "cosine_embedding_loss", "target [2,3]"},
      {11, "triplet_margin_loss", "margin"},
      {12, "triplet_margin_loss", "negative [2,4]"},
      {13, "triplet_margin_loss", "eps"},
      {14, "nll_loss", "weight"},
      {15, "margin_ranking_loss", "reduction"},
      {16, "triplet_margin_loss", "p must be > 0"},
      {17, "cosine_embedding_loss", "scalar"},
  };
  for (int i = 0; i < (int)(sizeof cases / sizeof *cases); i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 0);
    asg_tensor *xt = asg_fill(g, ASG_F32, ASG_SHAPE(3, 2), 0);
    asg_tensor *lab = asg_fill(g, ASG_I64, ASG_SHAPE(2), 0);
    asg_tensor *t1 = asg_fill(g, ASG_F32, ASG_SHAPE(2), 1);
    asg_tensor *r = NULL;
    const asg_reduction M = ASG_REDUCE_MEAN;
    switch (cases[i].which) {
    case 0:
      r = asg_cross_entropy_loss_weighted(x, lab, asg_fill(g, ASG_F32, ASG_SHAPE(4), 1), 0, -100,
                                          M);
      break;
    case 1:
      r = asg_cross_entropy_loss_weighted(x, lab, asg_fill(g, ASG_F64, ASG_SHAPE(3), 1), 0, -100,
                                          M);
      break;
    case 2: r = asg_sigmoid_focal_loss(x, x, 0.25, -1, M); break;
    case 3: r = asg_sigmoid_focal_loss(x, x, 1.5, 2, M); break;
    case 4: r = asg_hinge_embedding_loss(x, xt, 1, M); break;
    case 5: r = asg_hinge_embedding_loss(x, asg_fill(g, ASG_F64, ASG_SHAPE(2, 3), 1), 1, M); break;
    case 6: r = asg_multi_margin_loss(x, lab, 3, 1, NULL, M); break;
    case 7: r = asg_multi_margin_loss(x, t1, 1, 1, NULL, M); break;
    case 8: r = asg_margin_ranking_loss(x, xt, x, 0, M); break;
    case 9: r = asg_cosine_embedding_loss(x, x, t1, 1.5, M); break;
    case 10: r = asg_cosine_embedding_loss(x, x, x, 0, M); break;
    case 11: r = asg_triplet_margin_loss(x, x, x, -1, 2, 1e-6, false, M); break;
    case 12:
      r = asg_triplet_margin_loss(x, x, asg_fill(g, ASG_F32, ASG_SHAPE(2, 4), 0), 1, 2, 1e-6, false,
                                  M);
      break;
    case 13: r = asg_triplet_margin_loss(x, x, x, 1, 2, -1, false, M); break;
    case 14:
      r = asg_nll_loss_weighted(x, lab, asg_fill(g, ASG_F32, ASG_SHAPE(3, 1), 1), -100, M);
      break;
    case 15: r = asg_margin_ranking_loss(x, x, x, 0, ASG_REDUCE_BATCHMEAN); break;
    case 16: r = asg_triplet_margin_loss(x, x, x, 1, 0, 1e-6, false, M); break;
    default: {
      asg_tensor *s = asg_scalar(g, ASG_F32, 1);
      r = asg_cosine_embedding_loss(s, s, s, 0, M);
    }
    }
    const char *e = asg_graph_error(g);
    TU_CHECK(r == NULL && tu_contains(e, cases[i].op) && tu_contains(e, cases[i].frag),
             "error case %d: want '%s' / '%s', got %s", cases[i].which, cases[i].op, cases[i].frag,
             e ? e : "(none)");
    asg_graph_free(g);
  }
}

/* A multi-margin label outside [0, C) fails the run, as cross-entropy's. */
static void test_mm_label_range(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 0.5);
  asg_tensor *lab = asg_constant(g, ASG_I64, ASG_SHAPE(2), (int64_t[]){1, 3});
  double v;
  TU_CHECK(tu_eval(g, asg_multi_margin_loss(x, lab, 1, 1, NULL, ASG_REDUCE_MEAN), &v) != 0 &&
               tu_contains(asg_last_error(), "index 3 out of range"),
           "multi_margin label 3 of 3 classes must fail the run: %s", asg_last_error());
  asg_graph_free(g);
}

int main(void) {
  test_all();
  test_weighted_mean_by_hand();
  test_torch_values();
  test_errors();
  test_mm_label_range();
  return tu_finish();
}
