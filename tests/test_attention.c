/* Attention layers (src/nn/attention.c): multi-head attention against a
 * naive float64 reference (per head, per query loops) for several batch
 * sizes, lengths and head counts, with causal and padding masks, RoPE
 * (reference as a complex rotation of feature pairs (i, i + Dh/2)) and
 * ALiBi; causality and padding by perturbing the inputs that must not
 * matter; gradient checks; transformer block and positional encodings
 * against references; error messages; and a tiny 2-block transformer that
 * learns to reverse sequences with Adam.
 * Tolerances: f64 activations 1e-10 (parameters are f32 values, exact in
 * f64); f32 activations 2e-5. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asg/nn.h"
#include "testutil.h"

/* ---- helpers ---- */
static const char *err(asg_graph *g) { return asg_graph_error(g) ? asg_graph_error(g) : "(none)"; }

/* ---- the naive reference ---- */
typedef struct cfg {
  int B, T, D, H;
  bool causal;
  asg_posenc pos;
  double base;
  bool pad; /* padding mask: the last (b % 2 + 1) positions of odd batches padded... see mask_of */
} cfg;

/* mask[b, t]: batch b has its last b positions padded (keeps at least 1) */
static void mask_of(const cfg *c, double *m) {
  for (int b = 0; b < c->B; b++)
    for (int t = 0; t < c->T; t++)
      m[b * c->T + t] = (!c->pad || t < c->T - b || t == 0) ? 1 : 0;
}

static void proj(const double *x, const double *w, const double *b, double *y, int N, int D) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < D; o++) {
      double s = b ? b[o] : 0;
      for (int i = 0; i < D; i++)
        s += x[n * D + i] * w[o * D + i];
      y[n * D + o] = s;
    }
}

/* rotate pairs (d, d + Dh/2) of one head vector at position t */
static void ref_rope(double *v, int Dh, int t, double base) {
  int half = Dh / 2;
  for (int d = 0; d < half; d++) {
    double a = t * pow(base, -2.0 * d / Dh), x0 = v[d], x1 = v[d + half];
    v[d] = x0 * cos(a) - x1 * sin(a);
    v[d + half] = x1 * cos(a) + x0 * sin(a);
  }
}

/* W[0..3] = q, k, v, out weights [D, D]; bs[0..3] biases [D] */
static void ref_mha(const cfg *c, const double *x, double *const *W, double *const *bs,
                    double *out) {
  int B = c->B, T = c->T, D = c->D, H = c->H, Dh = D / H, N = B * T;
  double *q = malloc(sizeof(double) * (size_t)(N * D)),
         *k = malloc(sizeof(double) * (size_t)(N * D));
  double *v = malloc(sizeof(double) * (size_t)(N * D)),
         *o = malloc(sizeof(double) * (size_t)(N * D));
  double *m = malloc(sizeof(double) * (size_t)N), *p = malloc(sizeof(double) * (size_t)T);
  mask_of(c, m);
  proj(x, W[0], bs[0], q, N, D);
  proj(x, W[1], bs[1], k, N, D);
  proj(x, W[2], bs[2], v, N, D);
  if (c->pos == ASG_POS_ROPE)
    for (int n = 0; n < N; n++)
      for (int h = 0; h < H; h++) {
        ref_rope(q + n * D + h * Dh, Dh, n % T, c->base);
        ref_rope(k + n * D + h * Dh, Dh, n % T, c->base);
      }
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      double slope = pow(2.0, -8.0 * (h + 1) / H);
      for (int i = 0; i < T; i++) {
        double mx = -1e300, z = 0;
        for (int j = 0; j < T; j++) {
          bool allowed = !(c->causal && j > i) && m[b * T + j] != 0;
          double s = 0;
          for (int d = 0; d < Dh; d++)
            s += q[(b * T + i) * D + h * Dh + d] * k[(b * T + j) * D + h * Dh + d];
          s /= sqrt((double)Dh);
          if (c->pos == ASG_POS_ALIBI) s -= slope * fabs((double)(i - j));
          p[j] = allowed ? s : -INFINITY;
          if (allowed) mx = fmax(mx, s);
        }
        for (int j = 0; j < T; j++)
          z += p[j] = exp(p[j] - mx);
        for (int d = 0; d < Dh; d++) {
          double s = 0;
          for (int j = 0; j < T; j++)
            s += p[j] / z * v[(b * T + j) * D + h * Dh + d];
          o[(b * T + i) * D + h * Dh + d] = s;
        }
      }
    }
  proj(o, W[3], bs[3], out, N, D);
  free(q), free(k), free(v), free(o), free(m), free(p);
}

typedef struct mha_params {
  double *W[4], *b[4];
} mha_params;

static void get_mha_params(asg_program *p, const char *name, int D, mha_params *mp) {
  static const char *pr[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  char nb[128];
  for (int i = 0; i < 4; i++) {
    mp->W[i] = malloc(sizeof(double) * (size_t)(D * D));
    mp->b[i] = malloc(sizeof(double) * (size_t)D);
    snprintf(nb, sizeof nb, "%s.%s.weight", name, pr[i]);
    tu_get_var(p, nb, mp->W[i]);
    snprintf(nb, sizeof nb, "%s.%s.bias", name, pr[i]);
    if (tu_get_var(p, nb, mp->b[i]) < 0) {
      free(mp->b[i]);
      mp->b[i] = NULL;
    }
  }
}

static void free_mha_params(mha_params *mp) {
  for (int i = 0; i < 4; i++)
    free(mp->W[i]), free(mp->b[i]);
}

/* Builds mha on an input "x" (and a constant mask), compiles it. */
static asg_program *build_mha(const cfg *c, asg_dtype dt, double dropout, bool training,
                              asg_graph **gout, asg_tensor **yout) {
  asg_graph *g = asg_graph_new();
  asg_graph_set_training(g, training);
  asg_attention_opts o = {
      .causal = c->causal, .pos = c->pos, .rope_base = c->base, .dropout = dropout};
  asg_layer *l = asg_nn_mha(g, "attn", c->D, c->H, &o);
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(c->B, c->T, c->D)), *mask = NULL;
  if (c->pad) {
    double *m = malloc(sizeof(double) * (size_t)(c->B * c->T));
    mask_of(c, m);
    mask = tu_constant(g, dt, ASG_SHAPE(c->B, c->T), m);
    free(m);
  }
  asg_tensor *y = asg_layer_apply_masked(l, x, mask);
  asg_program *p = y ? asg_compile(g, 1, &y, NULL) : NULL;
  if (!p) printf("  build_mha: %s / %s\n", err(g), asg_last_error());
  *gout = g;
  *yout = y;
  return p;
}

static void test_mha_forward(void) {
  static const cfg cases[] = {
      {2, 4, 8, 2, false, ASG_POS_NONE, 0, false},  {2, 4, 8, 2, true, ASG_POS_NONE, 0, false},
      {3, 5, 8, 4, false, ASG_POS_NONE, 0, true},   {3, 5, 8, 4, true, ASG_POS_NONE, 0, true},
      {2, 4, 8, 2, true, ASG_POS_ROPE, 100, false}, {2, 5, 12, 3, false, ASG_POS_ROPE, 0, true},
      {2, 4, 8, 4, true, ASG_POS_ALIBI, 0, false},  {2, 4, 8, 4, false, ASG_POS_ALIBI, 0, true},
      {1, 1, 4, 1, true, ASG_POS_NONE, 0, false},   {3, 2, 12, 3, false, ASG_POS_NONE, 0, false},
      {1, 7, 6, 3, true, ASG_POS_ALIBI, 0, false},
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    cfg c = cases[ci];
    if (c.base == 0) c.base = 10000;
    for (int f32 = 0; f32 < 2; f32++) {
      asg_dtype dt = f32 ? ASG_F32 : ASG_F64;
      long n = (long)c.B * c.T * c.D;
      double *x = malloc(sizeof(double) * (size_t)n), *y = malloc(sizeof(double) * (size_t)n),
             *want = malloc(sizeof(double) * (size_t)n);
      tu_rand(100 + ci, x, n, -1.5, 1.5);
      if (f32)
        for (long i = 0; i < n; i++)
          x[i] = (float)x[i];
      asg_graph *g;
      asg_tensor *yt;
      asg_program *p = build_mha(&c, dt, 0, true, &g, &yt);
      TU_CHECK(p != NULL, "mha case %zu compiles", ci);
      if (p) {
        tu_feed(p, "x", dt, x, n);
        asg_program_run(p);
        tu_fetch(p, yt, y);
        mha_params mp;
        get_mha_params(p, "attn", c.D, &mp);
        ref_mha(&c, x, mp.W, mp.b, want);
        free_mha_params(&mp);
        TU_CHECK(tu_close("mha", y, want, n, f32 ? 2e-5 : 1e-10, f32 ? 2e-5 : 1e-10),
                 "mha case %zu (B%d T%d D%d H%d causal %d pos %d pad %d) %s", ci, c.B, c.T, c.D,
                 c.H, c.causal, (int)c.pos, c.pad, f32 ? "f32" : "f64");
        asg_program_free(p);
      }
      asg_graph_free(g);
      free(x), free(y), free(want);
    }
  }
}

/* Outputs at positions <= i must not change when positions > i change
 * (causal), and unpadded outputs must not change when padded inputs do. */
static void test_mha_independence(void) {
  for (int mode = 0; mode < 2; mode++) {
    cfg c = {2, 6, 8, 2, mode == 0, mode == 0 ? ASG_POS_ROPE : ASG_POS_NONE, 10000, mode == 1};
    long n = (long)c.B * c.T * c.D;
    double x[96], x2[96], y[96], y2[96], m[12];
    tu_rand(7, x, n, -1, 1);
    memcpy(x2, x, sizeof x);
    mask_of(&c, m);
    int cut = 2; /* causal: perturb positions > cut */
    for (int b = 0; b < c.B; b++)
      for (int t = 0; t < c.T; t++)
        for (int d = 0; d < c.D; d++)
          if (mode == 0 ? t > cut : m[b * c.T + t] == 0)
            x2[(b * c.T + t) * c.D + d] += 3.0 * (d % 3 - 1) + 0.5;
    asg_graph *g;
    asg_tensor *yt;
    asg_program *p = build_mha(&c, ASG_F64, 0, true, &g, &yt);
    TU_CHECK(p != NULL, "mha independence compiles");
    if (p) {
      tu_feed(p, "x", ASG_F64, x, n);
      asg_program_run(p);
      tu_fetch(p, yt, y);
      tu_feed(p, "x", ASG_F64, x2, n);
      asg_program_run(p);
      tu_fetch(p, yt, y2);
      int same = 1, changed = 0;
      for (int b = 0; b < c.B; b++)
        for (int t = 0; t < c.T; t++)
          for (int d = 0; d < c.D; d++) {
            long k = (b * c.T + t) * c.D + d;
            bool must_keep = mode == 0 ? t <= cut : m[b * c.T + t] != 0;
            if (must_keep)
              same &= fabs(y[k] - y2[k]) < 1e-12;
            else
              changed |= fabs(y[k] - y2[k]) > 1e-6;
          }
      TU_CHECK(same && changed, "%s: kept outputs unchanged (%d), perturbed ones changed (%d)",
               mode == 0 ? "causal (RoPE)" : "padding mask", same, changed);
      asg_program_free(p);
    }
    asg_graph_free(g);
  }
}

/* ---- gradients ---- */
typedef struct gc_ctx {
  cfg c;
} gc_ctx;

static asg_tensor *build_mha_gc(asg_graph *g, asg_tensor **xs, void *ctx) {
  const cfg *c = &((gc_ctx *)ctx)->c;
  asg_attention_opts o = {.causal = c->causal, .pos = c->pos};
  asg_tensor *mask = NULL;
  if (c->pad) {
    double m[64];
    mask_of(c, m);
    mask = tu_constant(g, ASG_F64, ASG_SHAPE(c->B, c->T), m);
  }
  return asg_layer_apply_masked(asg_nn_mha(g, "attn", c->D, c->H, &o), xs[0], mask);
}

static void test_mha_grads(void) {
  static const cfg cases[] = {{2, 3, 4, 2, true, ASG_POS_NONE, 0, true},
                              {1, 3, 4, 2, false, ASG_POS_ROPE, 0, false},
                              {2, 3, 4, 2, true, ASG_POS_ALIBI, 0, false}};
  for (int i = 0; i < 3; i++) {
    gc_ctx ctx = {cases[i]};
    asg_shape s = ASG_SHAPE(cases[i].B, cases[i].T, cases[i].D);
    char nm[32];
    snprintf(nm, sizeof nm, "mha d/dx case %d", i);
    tu_gradcheck(nm, 1, &s, build_mha_gc, &ctx, NULL);
  }
  /* parameter gradients (f32 parameters, f64 activations): d/dW by
   * central differences on the program's variables */
  asg_graph *g = asg_graph_new();
  double x[2 * 3 * 4], r[24];
  tu_rand(8, x, 24, -1, 1);
  tu_rand(9, r, 24, 0.5, 1.5);
  asg_attention_opts o = {.causal = true};
  asg_tensor *y = asg_layer_apply(asg_nn_mha(g, "attn", 4, 2, &o),
                                  tu_constant(g, ASG_F64, ASG_SHAPE(2, 3, 4), x));
  asg_tensor *loss =
      asg_sum(asg_mul(y, tu_constant(g, ASG_F64, ASG_SHAPE(2, 3, 4), r)), ASG_ALL_AXES, false);
  const char *names[3] = {"attn.q_proj.weight", "attn.v_proj.bias", "attn.out_proj.weight"};
  asg_tensor *wrt[3], *gr[3], *outs[4] = {loss};
  for (int i = 0; i < 3; i++)
    wrt[i] = asg_graph_find(g, names[i]);
  int bad = asg_grad(loss, 3, wrt, gr) != ASG_OK;
  for (int i = 0; i < 3; i++)
    outs[i + 1] = gr[i];
  asg_program *p = bad ? NULL : asg_compile(g, 4, outs, NULL);
  bad |= !p || asg_program_run(p) != ASG_OK;
  double an3[3][16]; /* analytic gradients of the unperturbed run */
  for (int i = 0; i < 3 && !bad; i++)
    tu_fetch(p, gr[i], an3[i]);
  for (int i = 0; i < 3 && !bad; i++) {
    long m = (long)asg_shape_numel(asg_tensor_shape(wrt[i]));
    double v[16], *an = an3[i];
    tu_get_var(p, names[i], v);
    for (long j = 0; j < m && !bad; j++) {
      double keep = v[j], hp, hm, lp, lm;
      v[j] = keep + 1e-3;
      hp = (float)v[j];
      tu_set_var(p, names[i], v);
      asg_program_run(p);
      lp = asg_program_scalar(p, loss);
      v[j] = keep - 1e-3;
      hm = (float)v[j];
      tu_set_var(p, names[i], v);
      asg_program_run(p);
      lm = asg_program_scalar(p, loss);
      v[j] = keep;
      tu_set_var(p, names[i], v);
      double num = (lp - lm) / (hp - hm);
      if (!(fabs(num - an[j]) <= 2e-5 * fmax(1, fabs(num)))) {
        printf("  d/d%s[%ld]: analytic %.10g numeric %.10g\n", names[i], j, an[j], num);
        bad = 1;
      }
    }
  }
  TU_CHECK(!bad, "mha parameter gradients (q_proj.weight, v_proj.bias, out_proj.weight)");
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---- fused_qkv: one qkv_proj holding q_proj, k_proj, v_proj stacked by
 * rows computes what the three do, forward and gradients ---- */
typedef struct mha_run {
  asg_graph *g;
  asg_program *p;
  asg_tensor *y, *dx, *dw[4]; /* gradients of the projection weights */
} mha_run;

static void mha_build(mha_run *m, bool fused, const double *x, const double *r) {
  m->g = asg_graph_new();
  asg_attention_opts o = {.causal = true, .fused_qkv = fused};
  asg_tensor *xt = asg_variable(m->g, "x", ASG_F64, ASG_SHAPE(2, 5, 8), asg_init_data(x));
  m->y = asg_layer_apply(asg_nn_mha(m->g, "attn", 8, 2, &o), xt);
  asg_tensor *loss = asg_sum(asg_mul(m->y, tu_constant(m->g, ASG_F64, ASG_SHAPE(2, 5, 8), r)),
                             ASG_ALL_AXES, false);
  static const char *sep[4] = {"attn.q_proj.weight", "attn.k_proj.weight", "attn.v_proj.weight",
                               "attn.out_proj.weight"};
  static const char *fus[2] = {"attn.qkv_proj.weight", "attn.out_proj.weight"};
  asg_tensor *wrt[5] = {xt}, *gr[5] = {NULL};
  const int n = fused ? 2 : 4;
  for (int i = 0; i < n; i++)
    wrt[i + 1] = asg_graph_find(m->g, fused ? fus[i] : sep[i]);
  m->p = NULL;
  if (asg_grad(loss, n + 1, wrt, gr) != ASG_OK) return;
  m->dx = gr[0];
  asg_tensor *outs[6] = {m->y, m->dx};
  for (int i = 0; i < n; i++)
    outs[i + 2] = m->dw[i] = gr[i + 1];
  m->p = asg_compile(m->g, n + 2, outs, NULL);
}

static void test_mha_fused_qkv(void) {
  double x[80], r[80];
  tu_rand(21, x, 80, -1, 1);
  tu_rand(22, r, 80, 0.5, 1.5);
  mha_run a, b;
  mha_build(&a, false, x, r);
  mha_build(&b, true, x, r);
  TU_CHECK(a.p && b.p, "fused_qkv: compile: %s", asg_last_error());
  if (!a.p || !b.p) return;
  TU_CHECK(asg_graph_find(b.g, "attn.q_proj.weight") == NULL &&
               asg_shape_equal(asg_tensor_shape(asg_graph_find(b.g, "attn.qkv_proj.bias")),
                               ASG_SHAPE(24)),
           "fused_qkv: one qkv_proj [24, 8] + [24]");
  /* b's qkv_proj = a's q, k, v projections stacked (rows are outputs) */
  double w[3 * 64], bias[24], o[64];
  static const char *pr[3] = {"q_proj", "k_proj", "v_proj"};
  for (int i = 0; i < 3; i++) {
    char nm[64];
    snprintf(nm, sizeof nm, "attn.%s.weight", pr[i]);
    tu_get_var(a.p, nm, w + 64 * i);
    snprintf(nm, sizeof nm, "attn.%s.bias", pr[i]);
    tu_get_var(a.p, nm, bias + 8 * i);
  }
  tu_set_var(b.p, "attn.qkv_proj.weight", w);
  tu_set_var(b.p, "attn.qkv_proj.bias", bias);
  tu_get_var(a.p, "attn.out_proj.weight", o);
  tu_set_var(b.p, "attn.out_proj.weight", o);
  tu_get_var(a.p, "attn.out_proj.bias", o);
  tu_set_var(b.p, "attn.out_proj.bias", o);
  TU_CHECK(asg_program_run(a.p) == ASG_OK && asg_program_run(b.p) == ASG_OK, "fused_qkv: run");
  double ya[80], yb[80], dxa[80], dxb[80], dwa[4 * 64], dwb[4 * 64];
  tu_fetch(a.p, a.y, ya);
  tu_fetch(b.p, b.y, yb);
  tu_fetch(a.p, a.dx, dxa);
  tu_fetch(b.p, b.dx, dxb);
  for (int i = 0; i < 4; i++)
    tu_fetch(a.p, a.dw[i], dwa + 64 * i);
  tu_fetch(b.p, b.dw[0], dwb);
  tu_fetch(b.p, b.dw[1], dwb + 192);
  TU_CHECK(tu_close("fused_qkv: y", yb, ya, 80, 1e-6, 1e-5), "fused_qkv: same output");
  TU_CHECK(tu_close("fused_qkv: dx", dxb, dxa, 80, 1e-6, 1e-5), "fused_qkv: same dx");
  TU_CHECK(tu_close("fused_qkv: dW", dwb, dwa, 256, 1e-6, 1e-5),
           "fused_qkv: qkv_proj gradient = q, k, v gradients stacked; same out_proj gradient");
  asg_program_free(a.p), asg_program_free(b.p);
  asg_graph_free(a.g), asg_graph_free(b.g);
}

/* ---- dropout on attention weights: training graphs only ---- */
static void test_mha_dropout(void) {
  cfg c = {2, 5, 8, 2, false, ASG_POS_NONE, 10000, false};
  long n = 80;
  double x[80], ye[80], yt2[80], want[80];
  tu_rand(3, x, n, -1, 1);
  int ok = 1;
  for (int train = 0; train < 2; train++) {
    asg_graph *g;
    asg_tensor *yt;
    asg_program *p = build_mha(&c, ASG_F64, 0.5, train, &g, &yt);
    if (!p) {
      ok = 0;
      asg_graph_free(g);
      continue;
    }
    tu_feed(p, "x", ASG_F64, x, n);
    asg_program_run(p);
    tu_fetch(p, yt, train ? yt2 : ye);
    if (!train) {
      mha_params mp;
      get_mha_params(p, "attn", c.D, &mp);
      ref_mha(&c, x, mp.W, mp.b, want);
      free_mha_params(&mp);
    }
    asg_program_free(p);
    asg_graph_free(g);
  }
  /* both graphs initialize identical parameters (same default seed and names) */
  TU_CHECK(ok && tu_close("mha eval", ye, want, n, 1e-10, 1e-10),
           "eval mha ignores attention dropout");
  int differ = 0;
  for (long i = 0; i < n; i++)
    differ |= fabs(ye[i] - yt2[i]) > 1e-6;
  TU_CHECK(ok && differ, "training mha applies attention dropout");
}

/* ---- transformer block, feedforward ---- */
static void ref_ln(const double *x, const double *w, const double *b, double *y, int N, int D) {
  for (int r = 0; r < N; r++) {
    double m = 0, v = 0;
    for (int i = 0; i < D; i++)
      m += x[r * D + i] / D;
    for (int i = 0; i < D; i++)
      v += (x[r * D + i] - m) * (x[r * D + i] - m) / D;
    for (int i = 0; i < D; i++)
      y[r * D + i] = (x[r * D + i] - m) / sqrt(v + 1e-5) * w[i] + b[i];
  }
}

static void test_block(void) {
  enum { B = 2, T = 4, D = 8, H = 2, F = 12, N = B * T };
  asg_graph *g = asg_graph_new();
  asg_attention_opts o = {.causal = true};
  asg_layer *blk = asg_nn_transformer_block(g, "blk", D, H, F, &o, 0);
  double x[N * D], y[N * D];
  tu_rand(55, x, N * D, -1, 1);
  asg_tensor *yt = asg_layer_apply(blk, tu_constant(g, ASG_F64, ASG_SHAPE(B, T, D), x));
  static const struct {
    const char *name;
    asg_shape s;
  } want_params[] = {{"blk.ln1.weight", {1, {D}}},
                     {"blk.ln1.bias", {1, {D}}},
                     {"blk.attn.q_proj.weight", {2, {D, D}}},
                     {"blk.attn.out_proj.bias", {1, {D}}},
                     {"blk.ln2.weight", {1, {D}}},
                     {"blk.ffn.fc1.weight", {2, {F, D}}},
                     {"blk.ffn.fc1.bias", {1, {F}}},
                     {"blk.ffn.fc2.weight", {2, {D, F}}}};
  int names_ok = asg_graph_variable_count(g) == 16;
  for (size_t i = 0; i < sizeof want_params / sizeof want_params[0]; i++) {
    asg_tensor *v = asg_graph_find(g, want_params[i].name);
    names_ok &= v && asg_shape_equal(asg_tensor_shape(v), want_params[i].s);
  }
  TU_CHECK(names_ok, "transformer block registers 16 parameters by PyTorch-style names");
  asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
  TU_CHECK(p != NULL, "block compiles: %s", err(g));
  if (p) {
    /* non-trivial layer-norm parameters */
    double w1[D], b1[D], w2[D], b2[D], f1w[F * D], f1b[F], f2w[D * F], f2b[D];
    tu_rand(60, w1, D, 0.5, 1.5), tu_rand(61, b1, D, -0.5, 0.5);
    tu_rand(62, w2, D, 0.5, 1.5), tu_rand(63, b2, D, -0.5, 0.5);
    for (int i = 0; i < D; i++)
      w1[i] = (float)w1[i], b1[i] = (float)b1[i], w2[i] = (float)w2[i], b2[i] = (float)b2[i];
    tu_set_var(p, "blk.ln1.weight", w1), tu_set_var(p, "blk.ln1.bias", b1);
    tu_set_var(p, "blk.ln2.weight", w2), tu_set_var(p, "blk.ln2.bias", b2);
    asg_program_run(p);
    tu_fetch(p, yt, y);
    mha_params mp;
    get_mha_params(p, "blk.attn", D, &mp);
    tu_get_var(p, "blk.ffn.fc1.weight", f1w), tu_get_var(p, "blk.ffn.fc1.bias", f1b);
    tu_get_var(p, "blk.ffn.fc2.weight", f2w), tu_get_var(p, "blk.ffn.fc2.bias", f2b);
    double h[N * D], a[N * D], x1[N * D], want[N * D], hid[N * F];
    cfg c = {B, T, D, H, true, ASG_POS_NONE, 10000, false};
    ref_ln(x, w1, b1, h, N, D);
    ref_mha(&c, h, mp.W, mp.b, a);
    for (int i = 0; i < N * D; i++)
      x1[i] = x[i] + a[i];
    ref_ln(x1, w2, b2, h, N, D);
    for (int r = 0; r < N; r++)
      for (int j = 0; j < F; j++) {
        double s = f1b[j];
        for (int i = 0; i < D; i++)
          s += h[r * D + i] * f1w[j * D + i];
        hid[r * F + j] = 0.5 * s * (1 + erf(s / sqrt(2.0))); /* GELU (erf) */
      }
    for (int r = 0; r < N; r++)
      for (int i = 0; i < D; i++) {
        double s = f2b[i];
        for (int j = 0; j < F; j++)
          s += hid[r * F + j] * f2w[i * F + j];
        want[r * D + i] = x1[r * D + i] + s;
      }
    free_mha_params(&mp);
    TU_CHECK(tu_close("block", y, want, N * D, 1e-10, 1e-10),
             "pre-LN transformer block vs reference");
    asg_program_free(p);
  }
  asg_graph_free(g);
}

/* ---- positional encodings ---- */
static void test_posenc(void) {
  enum { B = 2, T = 5, D = 6 };
  double x[B * T * D], y[B * T * D], want[B * T * D], w[8 * D];
  tu_rand(70, x, B * T * D, -1, 1);
  for (int learned = 0; learned < 2; learned++) {
    asg_graph *g = asg_graph_new();
    asg_layer *pe = asg_nn_posenc(g, "pos", learned ? ASG_POS_LEARNED : ASG_POS_SINUSOIDAL, 8, D);
    asg_tensor *yt = asg_layer_apply(pe, tu_constant(g, ASG_F64, ASG_SHAPE(B, T, D), x));
    TU_CHECK(learned ? (asg_graph_find(g, "pos.weight") &&
                        asg_shape_equal(asg_tensor_shape(asg_graph_find(g, "pos.weight")),
                                        ASG_SHAPE(8, D)))
                     : asg_graph_variable_count(g) == 0,
             "posenc parameters (%s)", learned ? "learned [max_len, d]" : "sinusoidal: none");
    asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
    TU_CHECK(p != NULL, "posenc compiles: %s", err(g));
    if (p) {
      asg_program_run(p);
      tu_fetch(p, yt, y);
      if (learned) tu_get_var(p, "pos.weight", w);
      for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
          for (int i = 0; i < D; i++) {
            double ang = t / pow(10000.0, 2.0 * (i / 2) / D);
            double pv = learned ? w[t * D + i] : (i % 2 ? cos(ang) : sin(ang));
            want[(b * T + t) * D + i] = x[(b * T + t) * D + i] + pv;
          }
      TU_CHECK(tu_close("posenc", y, want, B * T * D, 1e-10, 1e-10), "posenc %s",
               learned ? "learned" : "sinusoidal");
      if (learned) {
        double q = 0;
        for (int i = 0; i < 8 * D; i++)
          q += w[i] * w[i] / (8 * D);
        TU_CHECK(sqrt(q) > 0.01 && sqrt(q) < 0.03, "learned posenc init std ~0.02 (%g)", sqrt(q));
      }
      asg_program_free(p);
    }
    TU_CHECK(!asg_layer_apply(pe, asg_input(g, "long", ASG_F32, ASG_SHAPE(1, 9, D))) &&
                 tu_contains(asg_graph_error(g), "pos") &&
                 tu_contains(asg_graph_error(g), "max_len"),
             "T > max_len error: %s", err(g));
    asg_graph_free(g);
  }
}

/* ---- errors ---- */
static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  TU_CHECK(!asg_nn_mha(g, "att3", 10, 3, NULL) && tu_contains(asg_graph_error(g), "att3") &&
               tu_contains(asg_graph_error(g), "10") && tu_contains(asg_graph_error(g), "3"),
           "d_model %% n_heads error: %s", err(g));
  asg_graph_free(g);
  g = asg_graph_new();
  asg_layer *l = asg_nn_mha(g, "att4", 8, 2, NULL);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 8));
  TU_CHECK(!asg_layer_apply_masked(l, x, asg_input(g, "m", ASG_F32, ASG_SHAPE(2, 4))) &&
               tu_contains(asg_graph_error(g), "att4") && tu_contains(asg_graph_error(g), "[2,4]"),
           "mask shape error: %s", err(g));
  asg_graph_free(g);
  g = asg_graph_new();
  l = asg_nn_mha(g, "att5", 8, 2, NULL);
  TU_CHECK(!asg_layer_apply(l, asg_input(g, "x", ASG_F32, ASG_SHAPE(3, 6))) &&
               tu_contains(asg_graph_error(g), "att5") && tu_contains(asg_graph_error(g), "[3,6]"),
           "mha input rank error: %s", err(g));
  asg_graph_free(g);
  g = asg_graph_new();
  asg_attention_opts o = {.pos = ASG_POS_ROPE};
  TU_CHECK(!asg_nn_mha(g, "att6", 9, 3, &o) && tu_contains(asg_graph_error(g), "att6"),
           "RoPE odd head dim error: %s", err(g));
  asg_graph_free(g);
  g = asg_graph_new();
  asg_layer *blk = asg_nn_transformer_block(g, "b0", 8, 2, 16, NULL, 0);
  TU_CHECK(!asg_layer_apply(blk, asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 6))) &&
               tu_contains(asg_graph_error(g), "b0.ln1") &&
               tu_contains(asg_graph_error(g), "[2,3,6]"),
           "block error names the sublayer: %s", err(g));
  asg_graph_free(g);
}

/* ---- end to end: reverse sequences ---- */
static void test_train_reverse(void) {
  enum { B = 32, T = 6, V = 8, D = 32, H = 4, F = 64, STEPS = 100 };
  double tok[B * T], lab[B * T];
  tu_rand(90, tok, B * T, 0, V);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      tok[b * T + t] = floor(tok[b * T + t]);
      lab[b * T + (T - 1 - t)] = tok[b * T + t];
    }
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 5);
  asg_tensor *x = asg_layer_apply(asg_nn_embedding(g, "emb", V, D),
                                  tu_constant(g, ASG_I64, ASG_SHAPE(B, T), tok));
  x = asg_layer_apply(asg_nn_posenc(g, "pos", ASG_POS_LEARNED, 8, D), x);
  x = asg_layer_apply(asg_nn_transformer_block(g, "h0", D, H, F, NULL, 0), x);
  x = asg_layer_apply(asg_nn_transformer_block(g, "h1", D, H, F, NULL, 0), x);
  x = asg_layer_apply(asg_nn_layernorm(g, "ln_f", D, 0), x);
  asg_tensor *logits = asg_layer_apply(asg_nn_linear(g, "head", D, V), x);
  asg_tensor *loss =
      asg_softmax_cross_entropy(logits, tu_constant(g, ASG_I64, ASG_SHAPE(B, T), lab), 0, -100);
  asg_program *p = loss ? asg_compile_train(g, loss, asg_adam(3e-3), 0, NULL, NULL) : NULL;
  TU_CHECK(p != NULL, "transformer compiles for training: %s / %s", err(g), asg_last_error());
  if (p) {
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) {
      asg_program_run(p);
      last = asg_program_scalar(p, loss);
      if (s == 0) first = last;
    }
    printf("  reverse task: loss %.4f -> %.4f after %d Adam steps\n", first, last, STEPS);
    TU_CHECK(first > 1.5 && last < 0.1 * first && last < 0.2,
             "2-block transformer learns to reverse: %g -> %g", first, last);
    asg_program_free(p);
  }
  asg_graph_free(g);
}

int main(void) {
  test_mha_forward();
  test_mha_independence();
  test_mha_grads();
  test_mha_fused_qkv();
  test_mha_dropout();
  test_block();
  test_posenc();
  test_errors();
  test_train_reverse();
  return tu_finish();
}
