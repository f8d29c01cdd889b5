/* Losses: forward against float64 loop references written here (PyTorch's
 * formulas), every reduction, gradient checks by central differences, and
 * bad-input errors. Forward tolerance 1e-12 (f64 graphs). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum {
  L_MSE,
  L_L1,
  L_SMOOTH,
  L_SMOOTH0,
  L_HUBER,
  L_BCE,
  L_BCE_W,
  L_BCEL,
  L_BCEL_PW,
  L_KL,
  L_KL_LOG
};
static const char *LNAME[] = {"mse",           "l1",     "smooth_l1",       "smooth_l1_beta0",
                              "huber",         "bce",    "bce_w",           "bce_logits",
                              "bce_logits_pw", "kl_div", "kl_div_logtarget"};
#define R 2
#define C 3
#define N (R * C)

static const double PW[C] = {0.5, 2.0, 3.0};  /* pos_weight [C] */
static const double BW[C] = {1.5, 0.25, 1.0}; /* bce weight [C] */

static asg_tensor *pair_loss(int kind, asg_tensor *x, asg_tensor *y, asg_reduction r) {
  asg_graph *g = asg_tensor_graph(x);
  switch (kind) {
  case L_MSE: return asg_mse_loss(x, y, r);
  case L_L1: return asg_l1_loss(x, y, r);
  case L_SMOOTH: return asg_smooth_l1_loss(x, y, 0.6, r);
  case L_SMOOTH0: return asg_smooth_l1_loss(x, y, 0.0, r);
  case L_HUBER: return asg_huber_loss(x, y, 0.7, r);
  case L_BCE: return asg_bce_loss(x, y, NULL, r);
  case L_BCE_W: return asg_bce_loss(x, y, asg_constant(g, ASG_F64, ASG_SHAPE(C), BW), r);
  case L_BCEL: return asg_bce_with_logits_loss(x, y, NULL, r);
  case L_BCEL_PW:
    return asg_bce_with_logits_loss(x, y, asg_constant(g, ASG_F64, ASG_SHAPE(C), PW), r);
  case L_KL: return asg_kl_div_loss(x, y, false, r);
  default: return asg_kl_div_loss(x, y, true, r);
  }
}

static double sigm(double z) { return 1 / (1 + exp(-z)); }
static double clamped_log(double v) {
  double l = log(v);
  return l < -100 ? -100 : l;
}

/* Pointwise reference loss of element i. */
static double ref_point(int kind, double x, double y, int i) {
  double d = x - y, a = fabs(d);
  switch (kind) {
  case L_MSE: return d * d;
  case L_L1: return a;
  case L_SMOOTH: return a < 0.6 ? 0.5 * d * d / 0.6 : a - 0.3;
  case L_SMOOTH0: return a;
  case L_HUBER: return a < 0.7 ? 0.5 * d * d : 0.7 * (a - 0.35);
  case L_BCE: return -(y * clamped_log(x) + (1 - y) * clamped_log(1 - x));
  case L_BCE_W: return -BW[i % C] * (y * clamped_log(x) + (1 - y) * clamped_log(1 - x));
  /* naive logs of sigmoids: independent of the stable form (moderate x only) */
  case L_BCEL: return -(y * log(sigm(x)) + (1 - y) * log(1 - sigm(x)));
  case L_BCEL_PW: return -(PW[i % C] * y * log(sigm(x)) + (1 - y) * log(1 - sigm(x)));
  case L_KL: return y > 0 ? y * (log(y) - x) : 0;
  default: return exp(y) * (y - x);
  }
}

typedef struct gc_ctx {
  int kind;
  asg_reduction r;
} gc_ctx;

static asg_tensor *gc_pair(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  gc_ctx *c = ctx;
  return pair_loss(c->kind, xs[0], xs[1], c->r);
}

static void test_pairs(void) {
  double x[N], y[N];
  for (int kind = L_MSE; kind <= L_KL_LOG; kind++) {
    tu_rand(10 + (unsigned)kind, x, N, -1.5, 1.5);
    tu_rand(20 + (unsigned)kind, y, N, -1.5, 1.5);
    if (kind == L_BCE || kind == L_BCE_W) { /* probabilities, soft targets, the clamped ends */
      tu_rand(30, x, N, 0.05, 0.95);
      tu_rand(31, y, N, 0, 1);
      x[0] = 0, y[0] = 1; /* log 0 clamped: loss 100 */
      x[1] = 1, y[1] = 0.25;
    }
    if (kind == L_KL) { /* log q and p with a zero entry */
      for (int i = 0; i < N; i++)
        y[i] = fabs(y[i]) / 3, x[i] = log(0.1 + fabs(x[i]) / 3);
      y[2] = 0;
    }
    for (int r = ASG_REDUCE_MEAN; r <= ASG_REDUCE_BATCHMEAN; r++) {
      if (r == ASG_REDUCE_BATCHMEAN && kind < L_KL) continue;
      asg_graph *g = asg_graph_new();
      asg_tensor *xt = asg_constant(g, ASG_F64, ASG_SHAPE(R, C), x);
      asg_tensor *yt = asg_constant(g, ASG_F64, ASG_SHAPE(R, C), y);
      asg_tensor *l = pair_loss(kind, xt, yt, (asg_reduction)r);
      double got[N], want[N], s = 0;
      for (int i = 0; i < N; i++)
        s += want[i] = ref_point(kind, x[i], y[i], i);
      int n = N;
      if (r == ASG_REDUCE_MEAN) want[0] = s / N, n = 1;
      if (r == ASG_REDUCE_SUM) want[0] = s, n = 1;
      if (r == ASG_REDUCE_BATCHMEAN) want[0] = s / R, n = 1;
      bool ok = l && tu_eval(g, l, got) == 0;
      TU_CHECK(ok && asg_shape_numel(asg_tensor_shape(l)) == n, "%s r%d: build/eval/shape: %s",
               LNAME[kind], r, asg_graph_error(g) ? asg_graph_error(g) : "");
      if (ok)
        TU_CHECK(tu_close(LNAME[kind], got, want, n, 1e-12, 1e-12), "%s r%d forward", LNAME[kind],
                 r);
      asg_graph_free(g);
    }
  }
  /* gradients (mean and none; sum is mean times a constant) */
  for (int kind = L_MSE; kind <= L_KL_LOG; kind++) {
    for (int r = ASG_REDUCE_MEAN; r <= ASG_REDUCE_NONE; r += 2) {
      gc_ctx c = {kind, (asg_reduction)r};
      tu_gc_opts o = {.lo = -1.5, .hi = 1.5};
      if (kind == L_BCE || kind == L_BCE_W || kind == L_KL) o.lo = 0.1, o.hi = 0.9;
      char name[64];
      snprintf(name, sizeof name, "%s r%d", LNAME[kind], r);
      asg_shape sh[2] = {ASG_SHAPE(R, C), ASG_SHAPE(R, C)};
      tu_gradcheck(name, 2, sh, gc_pair, &c, &o);
    }
  }
}

/* BCE with logits at large |x|: the stable form must not overflow. */
static void test_bce_logits_extreme(void) {
  double x[4] = {60, -60, 60, -60}, y[4] = {0, 1, 1, 0};
  double pw[1] = {2};
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = asg_constant(g, ASG_F32, ASG_SHAPE(4), (float[]){60, -60, 60, -60});
  asg_tensor *yt = asg_constant(g, ASG_F32, ASG_SHAPE(4), (float[]){0, 1, 1, 0});
  asg_tensor *pt = asg_constant(g, ASG_F32, ASG_SHAPE(1), (float[]){2});
  double got[4], want[4];
  /* exact: loss = softplus(x) - x y scaled; for |x| = 60 exp(-60) ~ 1e-26 vanishes */
  for (int i = 0; i < 4; i++) {
    double lw = 1 + (pw[0] - 1) * y[i];
    want[i] = (1 - y[i]) * x[i] + lw * (x[i] < 0 ? -x[i] : 0);
  }
  TU_CHECK(tu_eval(g, asg_bce_with_logits_loss(xt, yt, pt, ASG_REDUCE_NONE), got) == 0 &&
               tu_close("bce_logits extreme", got, want, 4, 1e-5, 1e-6),
           "bce_with_logits at |x| = 60");
  asg_graph_free(g);
}

/* ---- cross-entropy and NLL ---- */
#define CR 4
#define CC 5

typedef struct ce_ctx {
  int nll;
  double s;
  int64_t ignore;
  asg_reduction r;
  int64_t lab[CR]; /* row 1 carries the ignore index */
} ce_ctx;

static asg_tensor *ce_build(asg_graph *g, asg_tensor *x, ce_ctx *c) {
  asg_tensor *lab = asg_constant(g, ASG_I64, ASG_SHAPE(CR), c->lab);
  if (c->nll) return asg_nll_loss(asg_log_softmax(x, -1), lab, c->ignore, c->r);
  return asg_cross_entropy_loss(x, lab, c->s, c->ignore, c->r);
}
static asg_tensor *gc_ce(asg_graph *g, asg_tensor **xs, void *ctx) {
  return ce_build(g, xs[0], ctx);
}

static void test_ce(void) {
  double x[CR * CC];
  tu_rand(7, x, CR * CC, -2, 2);
  const double smooth[2] = {0, 0.1};
  const int64_t ign[2] = {-100, 2};
  for (int nll = 0; nll < 2; nll++)
    for (int si = 0; si < 2; si++)
      for (int ii = 0; ii < 2; ii++)
        for (int r = ASG_REDUCE_MEAN; r <= ASG_REDUCE_NONE; r++) {
          if (nll && si) continue;
          ce_ctx c = {nll, smooth[si], ign[ii], (asg_reduction)r, {1, ign[ii], 4, 0}};
          /* reference: log-softmax by logsumexp, per-row loss */
          double row[CR], tot = 0, cnt = 0;
          for (int i = 0; i < CR; i++) {
            double mx = -INFINITY, se = 0, sl = 0;
            for (int j = 0; j < CC; j++)
              mx = fmax(mx, x[i * CC + j]);
            for (int j = 0; j < CC; j++)
              se += exp(x[i * CC + j] - mx);
            double lse = mx + log(se);
            for (int j = 0; j < CC; j++)
              sl += x[i * CC + j] - lse;
            int64_t t = c.lab[i];
            if (t == c.ignore) {
              row[i] = 0;
              continue;
            }
            row[i] = -(1 - c.s) * (x[i * CC + t] - lse) - c.s * sl / CC;
            tot += row[i];
            cnt++;
          }
          double want[CR], got[CR];
          int n = 1;
          if (r == ASG_REDUCE_NONE)
            memcpy(want, row, sizeof row), n = CR;
          else
            want[0] = r == ASG_REDUCE_SUM ? tot : tot / cnt;
          asg_graph *g = asg_graph_new();
          asg_tensor *xt = asg_constant(g, ASG_F64, ASG_SHAPE(CR, CC), x);
          asg_tensor *l = ce_build(g, xt, &c);
          char name[80];
          snprintf(name, sizeof name, "%s s%g ign%lld r%d", nll ? "nll" : "ce", c.s,
                   (long long)c.ignore, r);
          bool ok = l && tu_eval(g, l, got) == 0;
          TU_CHECK(ok, "%s: build/eval: %s", name, asg_graph_error(g) ? asg_graph_error(g) : "");
          if (ok) TU_CHECK(tu_close(name, got, want, n, 1e-12, 1e-12), "%s forward", name);
          asg_graph_free(g);
          asg_shape sh[1] = {ASG_SHAPE(CR, CC)};
          tu_gradcheck(name, 1, sh, gc_ce, &c, NULL);
        }
}

/* I32 labels give the same per-row losses as I64 ones (F32 logits). */
static void test_i32_labels(void) {
  float x[CR * CC];
  double xd[CR * CC], got[CR], want[CR];
  tu_rand(8, xd, CR * CC, -2, 2);
  for (int i = 0; i < CR * CC; i++)
    x[i] = (float)xd[i];
  const int32_t l32[CR] = {0, 3, -100, 4};
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = asg_constant(g, ASG_F32, ASG_SHAPE(CR, CC), x);
  asg_tensor *lt = asg_constant(g, ASG_I32, ASG_SHAPE(CR), l32);
  for (int i = 0; i < CR; i++) {
    double mx = -INFINITY, se = 0;
    for (int j = 0; j < CC; j++)
      mx = fmax(mx, (double)x[i * CC + j]);
    for (int j = 0; j < CC; j++)
      se += exp((double)x[i * CC + j] - mx);
    want[i] = l32[i] < 0 ? 0 : mx + log(se) - (double)x[i * CC + l32[i]];
  }
  TU_CHECK(tu_eval(g, asg_cross_entropy_loss(xt, lt, 0, -100, ASG_REDUCE_NONE), got) == 0 &&
               tu_close("ce i32 none", got, want, CR, 1e-6, 1e-6),
           "cross-entropy with I32 labels, F32 logits");
  double mean = (want[0] + want[1] + want[3]) / 3;
  TU_CHECK(tu_eval(g, asg_cross_entropy_loss(xt, lt, 0, -100, ASG_REDUCE_MEAN), got) == 0 &&
               tu_close("ce i32 mean", got, &mean, 1, 1e-6, 1e-6),
           "fused cross-entropy mean with I32 labels");
  asg_graph_free(g);
}

static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_fill(g, ASG_F32, ASG_SHAPE(2, 3), 0);
  asg_tensor *b = asg_fill(g, ASG_F32, ASG_SHAPE(3, 2), 0);
  TU_CHECK(asg_mse_loss(a, b, ASG_REDUCE_MEAN) == NULL && asg_graph_error(g) &&
               strstr(asg_graph_error(g), "mse_loss") && strstr(asg_graph_error(g), "[3,2]"),
           "mse shape mismatch: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
  asg_graph_free(g);

  g = asg_graph_new();
  a = asg_fill(g, ASG_F32, ASG_SHAPE(4, 5), 0);
  asg_tensor *lab = asg_fill(g, ASG_I32, ASG_SHAPE(5), 0);
  TU_CHECK(asg_cross_entropy_loss(a, lab, 0, -100, ASG_REDUCE_SUM) == NULL &&
               strstr(asg_graph_error(g), "cross_entropy_loss"),
           "ce label shape: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
  asg_graph_free(g);

  g = asg_graph_new();
  a = asg_fill(g, ASG_F32, ASG_SHAPE(4, 5), 0);
  lab = asg_fill(g, ASG_F32, ASG_SHAPE(4), 0);
  TU_CHECK(asg_nll_loss(a, lab, -100, ASG_REDUCE_MEAN) == NULL &&
               strstr(asg_graph_error(g), "nll_loss"),
           "nll float labels: %s", asg_graph_error(g) ? asg_graph_error(g) : "(none)");
  asg_graph_free(g);

  g = asg_graph_new();
  a = asg_fill(g, ASG_F32, ASG_SHAPE(4), 0);
  TU_CHECK(asg_smooth_l1_loss(a, a, -1, ASG_REDUCE_MEAN) == NULL &&
               strstr(asg_graph_error(g), "smooth_l1_loss"),
           "smooth_l1 beta < 0");
  asg_graph_free(g);

  g = asg_graph_new();
  a = asg_fill(g, ASG_F32, ASG_SHAPE(4), 0);
  TU_CHECK(asg_mse_loss(a, a, ASG_REDUCE_BATCHMEAN) == NULL &&
               strstr(asg_graph_error(g), "mse_loss"),
           "batchmean is for kl only");
  asg_graph_free(g);
}

int main(void) {
  test_pairs();
  test_bce_logits_extreme();
  test_ce();
  test_i32_labels();
  test_errors();
  return tu_finish();
}
