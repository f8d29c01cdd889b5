/* Grouped-query / multi-query attention (asg_attention_opts.n_kv_heads)
 * and cross-attention (asg_nn_cross_attention) against a naive float64
 * reference written here from the documented formulas: projections, head
 * split, kv head h / G for query head h (Hugging Face's repeat_kv order),
 * RoPE (half-split pairs), ALiBi, key masks, softmax, output projection.
 * Covers self-attention with H = 4 and Hkv = 4, 2, 1, causal or not, padded,
 * RoPE, ALiBi (the materialized path), fused_qkv, symbolic lengths;
 * cross-attention with Tq != Tk and kv_dim != d_model and a context mask
 * (fused and materialized paths); gradients with respect to the inputs and
 * the projection parameters; error messages.
 * Tolerances: f64 activations 1e-10 (parameters are f32 values, exact in
 * f64); f32 activations 1e-5; parameter gradients 1e-5 (central
 * differences on the f32 parameters, f64 activations). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asg/nn.h"
#include "testutil.h"

static const char *err(asg_graph *g) { return asg_graph_error(g) ? asg_graph_error(g) : "(none)"; }

typedef struct cfg {
  int B, Tq, Tk, D, Dkv, H, Hkv;
  bool causal, pad, cross, fused;
  asg_posenc pos;
  double base;    /* RoPE base; 0 = 10000 */
  double dropout; /* attention dropout (training graphs) */
  bool sym;       /* symbolic Tq (and Tk) */
} cfg;

static double *dalloc(long n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }

/* Self-attention: Tk = Tq and the k/v input is x, of width D. */
static cfg norm_cfg(cfg c) {
  if (!c.cross) c.Tk = c.Tq, c.Dkv = c.D;
  if (c.base == 0) c.base = 10000;
  return c;
}

/* mask[b, t] over the keys: batch b has its last b positions padded (keeps
 * at least the first) */
static void mask_of(const cfg *c, double *m) {
  for (int b = 0; b < c->B; b++)
    for (int t = 0; t < c->Tk; t++)
      m[b * c->Tk + t] = (!c->pad || t < c->Tk - b || t == 0) ? 1 : 0;
}

/* y [N, out] = x [N, in] W^T + b, W [out, in] */
static void linear(const double *x, const double *w, const double *b, double *y, int N, int in,
                   int out) {
  for (int n = 0; n < N; n++)
    for (int o = 0; o < out; o++) {
      double s = b ? b[o] : 0;
      for (int i = 0; i < in; i++)
        s += x[n * in + i] * w[o * in + i];
      y[n * out + o] = s;
    }
}

/* RoPE from nn.h / docs/layers.md: y = x * cos + rotate_half(x) * sin,
 * rotate_half(x) = [-x2, x1], pair (i, i + Dh/2) at angle t * base^(-2i/Dh) */
static void ref_rope(double *v, int Dh, int t, double base) {
  int half = Dh / 2;
  for (int i = 0; i < half; i++) {
    double a = t * pow(base, -2.0 * i / Dh), x1 = v[i], x2 = v[i + half];
    v[i] = x1 * cos(a) - x2 * sin(a);
    v[i + half] = x2 * cos(a) + x1 * sin(a);
  }
}

typedef struct params {
  double *W[4], *b[4]; /* q, k, v, out; b[i] NULL without bias */
} params;

/* Reads the layer's parameters from the program (fused: splits the rows of
 * qkv_proj into q [D], k [Hkv Dh], v [Hkv Dh]). */
static void get_params(asg_program *p, const char *name, const cfg *c, params *pp) {
  static const char *pr[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  int Dh = c->D / c->H, KD = c->Hkv * Dh;
  const int rows[4] = {c->D, KD, KD, c->D}, cols[4] = {c->D, c->Dkv, c->Dkv, c->D};
  char nb[128];
  for (int i = 0; i < 4; i++) {
    pp->W[i] = dalloc((long)rows[i] * cols[i]);
    pp->b[i] = dalloc(rows[i]);
  }
  if (c->fused) {
    int R = c->D + 2 * KD;
    double *w = dalloc((long)R * c->D), *b = dalloc(R);
    snprintf(nb, sizeof nb, "%s.qkv_proj.weight", name);
    TU_CHECK(tu_get_var(p, nb, w) == (long)R * c->D, "%s is [%d, %d]", nb, R, c->D);
    snprintf(nb, sizeof nb, "%s.qkv_proj.bias", name);
    TU_CHECK(tu_get_var(p, nb, b) == R, "%s is [%d]", nb, R);
    for (int i = 0, off = 0; i < 3; off += rows[i], i++) {
      memcpy(pp->W[i], w + (long)off * c->D, sizeof(double) * (size_t)(rows[i] * c->D));
      memcpy(pp->b[i], b + off, sizeof(double) * (size_t)rows[i]);
    }
    free(w), free(b);
  }
  for (int i = c->fused ? 3 : 0; i < 4; i++) {
    snprintf(nb, sizeof nb, "%s.%s.weight", name, pr[i]);
    TU_CHECK(tu_get_var(p, nb, pp->W[i]) == (long)rows[i] * cols[i], "%s is [%d, %d]", nb, rows[i],
             cols[i]);
    snprintf(nb, sizeof nb, "%s.%s.bias", name, pr[i]);
    TU_CHECK(tu_get_var(p, nb, pp->b[i]) == rows[i], "%s is [%d]", nb, rows[i]);
  }
}

static void free_params(params *pp) {
  for (int i = 0; i < 4; i++)
    free(pp->W[i]), free(pp->b[i]);
}

/* out [B, Tq, D] from x [B, Tq, D] and ctx [B, Tk, Dkv] (= x for
 * self-attention). */
static void ref_attention(const cfg *c, const double *x, const double *ctx, const params *pp,
                          double *out) {
  int B = c->B, Tq = c->Tq, Tk = c->Tk, D = c->D, H = c->H, Hkv = c->Hkv, G = H / Hkv;
  int Dh = D / H, KD = Hkv * Dh, Nq = B * Tq, Nk = B * Tk;
  double *q = dalloc((long)Nq * D), *k = dalloc((long)Nk * KD), *v = dalloc((long)Nk * KD);
  double *o = dalloc((long)Nq * D), *m = dalloc(Nk), *p = dalloc(Tk);
  mask_of(c, m);
  linear(x, pp->W[0], pp->b[0], q, Nq, D, D);
  linear(ctx, pp->W[1], pp->b[1], k, Nk, c->Dkv, KD);
  linear(ctx, pp->W[2], pp->b[2], v, Nk, c->Dkv, KD);
  if (c->pos == ASG_POS_ROPE) {
    for (int n = 0; n < Nq; n++)
      for (int h = 0; h < H; h++)
        ref_rope(q + n * D + h * Dh, Dh, n % Tq, c->base);
    for (int n = 0; n < Nk; n++)
      for (int j = 0; j < Hkv; j++)
        ref_rope(k + n * KD + j * Dh, Dh, n % Tk, c->base);
  }
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      int j = h / G; /* the kv head of query head h */
      double slope = pow(2.0, -8.0 * (h + 1) / H);
      for (int i = 0; i < Tq; i++) {
        double mx = -INFINITY, z = 0;
        for (int t = 0; t < Tk; t++) {
          bool allowed = !(c->causal && t > i) && m[b * Tk + t] != 0;
          double s = 0;
          for (int d = 0; d < Dh; d++)
            s += q[(b * Tq + i) * D + h * Dh + d] * k[(b * Tk + t) * KD + j * Dh + d];
          s /= sqrt((double)Dh);
          if (c->pos == ASG_POS_ALIBI) s -= slope * fabs((double)(i - t));
          p[t] = allowed ? s : -INFINITY;
          if (allowed) mx = fmax(mx, s);
        }
        for (int t = 0; t < Tk; t++)
          z += p[t] = exp(p[t] - mx);
        for (int d = 0; d < Dh; d++) {
          double s = 0;
          for (int t = 0; t < Tk; t++)
            s += p[t] / z * v[(b * Tk + t) * KD + j * Dh + d];
          o[(b * Tq + i) * D + h * Dh + d] = s;
        }
      }
    }
  linear(o, pp->W[3], pp->b[3], out, Nq, D, D);
  free(q), free(k), free(v), free(o), free(m), free(p);
}

static asg_attention_opts opts_of(const cfg *c) {
  asg_attention_opts o = {.causal = c->causal,
                          .pos = c->pos,
                          .rope_base = c->base,
                          .dropout = c->dropout,
                          .fused_qkv = c->fused,
                          .n_kv_heads = c->Hkv,
                          .kv_dim = c->cross ? c->Dkv : 0};
  return o;
}

/* The layer ("attn" or "xa") applied to inputs "x", "ctx" (cross) and "m"
 * (the key mask, if padded) of dtype dt. */
static asg_tensor *build_layer(asg_graph *g, const cfg *c, asg_dtype dt) {
  asg_attention_opts o = opts_of(c);
  int64_t Tq = c->sym ? asg_dim(g, "tq", 16) : c->Tq;
  int64_t Tk = c->cross ? (c->sym ? asg_dim(g, "tk", 16) : c->Tk) : Tq;
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(c->B, Tq, c->D));
  asg_tensor *m = c->pad ? asg_input(g, "m", dt, ASG_SHAPE(c->B, Tk)) : NULL;
  if (!c->cross) return asg_layer_apply_masked(asg_nn_mha(g, "attn", c->D, c->H, &o), x, m);
  asg_tensor *ctx = asg_input(g, "ctx", dt, ASG_SHAPE(c->B, Tk, c->Dkv));
  return asg_cross_attention_apply(asg_nn_cross_attention(g, "xa", c->D, c->H, &o), x, ctx, m);
}

static void feed(asg_program *p, const char *name, asg_dtype dt, asg_shape s, const double *v) {
  long n = (long)asg_shape_numel(s);
  void *buf = malloc((size_t)n * 8);
  tu_from_double(dt, v, buf, n);
  asg_status st = asg_program_feed_tensor(p, name, dt, s, buf);
  TU_CHECK(st == ASG_OK, "feed %s: %s", name, asg_last_error());
  free(buf);
}

/* Builds, runs and compares with the reference. */
static void check_forward(const char *what, cfg c, asg_dtype dt, unsigned seed) {
  c = norm_cfg(c);
  bool f32 = dt == ASG_F32;
  long nx = (long)c.B * c.Tq * c.D, nc = (long)c.B * c.Tk * c.Dkv;
  double *x = dalloc(nx), *ctx = dalloc(nc), *m = dalloc((long)c.B * c.Tk), *y = dalloc(nx),
         *want = dalloc(nx);
  tu_rand(seed, x, nx, -1.5, 1.5);
  tu_rand(seed + 1, ctx, nc, -1.5, 1.5);
  if (f32) /* the reference sees exactly what the program is fed */
    for (long i = 0; i < nx; i++)
      x[i] = (float)x[i];
  for (long i = 0; f32 && i < nc; i++)
    ctx[i] = (float)ctx[i];
  mask_of(&c, m);
  asg_graph *g = asg_graph_new();
  asg_graph_set_training(g, c.dropout > 0);
  asg_tensor *yt = build_layer(g, &c, dt);
  asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
  TU_CHECK(p != NULL, "%s compiles: %s / %s", what, err(g), asg_last_error());
  if (p) {
    feed(p, "x", dt, ASG_SHAPE(c.B, c.Tq, c.D), x);
    if (c.cross) feed(p, "ctx", dt, ASG_SHAPE(c.B, c.Tk, c.Dkv), ctx);
    if (c.pad) feed(p, "m", dt, ASG_SHAPE(c.B, c.Tk), m);
    asg_status st = asg_program_run(p);
    void *buf = malloc((size_t)nx * 8);
    if (st == ASG_OK) st = asg_program_fetch(p, yt, buf, (size_t)nx * asg_dtype_size(dt));
    tu_to_double(dt, buf, y, nx);
    free(buf);
    params pp;
    get_params(p, c.cross ? "xa" : "attn", &c, &pp);
    ref_attention(&c, x, c.cross ? ctx : x, &pp, want);
    free_params(&pp);
    double tol = f32 ? 1e-5 : 1e-10;
    TU_CHECK(st == ASG_OK && tu_close(what, y, want, nx, tol, tol),
             "%s (B%d Tq%d Tk%d D%d Dkv%d H%d Hkv%d causal %d pad %d pos %d fused %d sym %d) %s",
             what, c.B, c.Tq, c.Tk, c.D, c.Dkv, c.H, c.Hkv, c.causal, c.pad, (int)c.pos, c.fused,
             c.sym, f32 ? "f32" : "f64");
    asg_program_free(p);
  }
  asg_graph_free(g);
  free(x), free(ctx), free(m), free(y), free(want);
}

static void test_gqa_forward(void) {
  /* B, Tq, Tk, D, Dkv, H, Hkv, causal, pad, cross, fused, pos, base, dropout, sym */
  static const cfg cases[] = {
      {2, 5, 0, 8, 0, 4, 2, false, false, false, false, ASG_POS_NONE, 0, 0, false},
      {2, 5, 0, 8, 0, 4, 2, true, false, false, false, ASG_POS_NONE, 0, 0, false},
      {3, 5, 0, 8, 0, 4, 2, false, true, false, false, ASG_POS_NONE, 0, 0, false},
      {3, 5, 0, 8, 0, 4, 2, true, true, false, false, ASG_POS_NONE, 0, 0, false},
      {2, 4, 0, 8, 0, 4, 1, false, false, false, false, ASG_POS_NONE, 0, 0, false},
      {3, 4, 0, 8, 0, 4, 1, true, true, false, false, ASG_POS_NONE, 0, 0, false},
      {3, 5, 0, 16, 0, 4, 2, true, true, false, false, ASG_POS_ROPE, 100, 0, false},
      {2, 5, 0, 16, 0, 4, 1, false, true, false, false, ASG_POS_ROPE, 0, 0, false},
      {2, 4, 0, 8, 0, 4, 2, true, false, false, false, ASG_POS_ALIBI, 0, 0, false},
      {3, 4, 0, 8, 0, 4, 1, false, true, false, false, ASG_POS_ALIBI, 0, 0, false},
      {3, 5, 0, 8, 0, 4, 4, true, true, false, false, ASG_POS_NONE, 0, 0, false},
      {2, 4, 0, 16, 0, 4, 2, true, true, false, true, ASG_POS_ROPE, 0, 0, false},
      {2, 4, 0, 8, 0, 4, 1, false, false, false, true, ASG_POS_NONE, 0, 0, false},
      {1, 1, 0, 8, 0, 4, 2, true, false, false, false, ASG_POS_NONE, 0, 0, false},
      {3, 6, 0, 16, 0, 4, 2, true, true, false, false, ASG_POS_ROPE, 0, 0, true},
      {2, 5, 0, 8, 0, 4, 1, false, true, false, false, ASG_POS_ALIBI, 0, 0, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int f32 = 0; f32 < 2; f32++)
      check_forward("gqa", cases[i], f32 ? ASG_F32 : ASG_F64, 100 + (unsigned)i);
}

static void test_cross_forward(void) {
  static const cfg cases[] = {
      {2, 3, 5, 8, 6, 4, 4, false, false, true, false, ASG_POS_NONE, 0, 0, false},
      {3, 3, 5, 8, 6, 4, 2, false, true, true, false, ASG_POS_NONE, 0, 0, false},
      {3, 4, 2, 8, 12, 4, 1, false, true, true, false, ASG_POS_NONE, 0, 0, false},
      {2, 6, 3, 8, 8, 2, 1, false, true, true, false, ASG_POS_NONE, 0, 0, false},
      {3, 1, 7, 8, 5, 4, 2, false, true, true, false, ASG_POS_NONE, 0, 0, false},
      {3, 3, 5, 8, 6, 4, 2, false, true, true, false, ASG_POS_NONE, 0, 0, true},
      /* attention dropout so small that it drops nothing in these few
       * elements: the materialized-scores path, deterministic */
      {3, 3, 5, 8, 6, 4, 2, false, true, true, false, ASG_POS_NONE, 0, 1e-12, false},
      {2, 3, 5, 8, 6, 4, 1, false, true, true, false, ASG_POS_NONE, 0, 1e-12, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int f32 = 0; f32 < 2; f32++)
      check_forward("cross", cases[i], f32 ? ASG_F32 : ASG_F64, 200 + (unsigned)i);
  cfg d = {3, 5, 0, 8, 0, 4, 2, true, true, false, false, ASG_POS_NONE, 0, 1e-12, false};
  check_forward("gqa dropout 1e-12", d, ASG_F64, 300);
}

/* Dropout with GQA in a training graph acts (and cross-attention too). */
static void test_dropout_acts(void) {
  for (int cross = 0; cross < 2; cross++) {
    cfg c = norm_cfg(
        (cfg){2, 4, 5, 8, 6, 4, 2, !cross, false, cross, false, ASG_POS_NONE, 0, 0.5, false});
    long nx = (long)c.B * c.Tq * c.D, nc = (long)c.B * c.Tk * c.Dkv;
    double *x = dalloc(nx), *ctx = dalloc(nc), *y = dalloc(nx), *want = dalloc(nx);
    tu_rand(7, x, nx, -1, 1);
    tu_rand(8, ctx, nc, -1, 1);
    asg_graph *g = asg_graph_new();
    asg_graph_set_training(g, true);
    asg_tensor *yt = build_layer(g, &c, ASG_F64);
    asg_program *p = yt ? asg_compile(g, 1, &yt, NULL) : NULL;
    TU_CHECK(p != NULL, "dropout graph compiles: %s", err(g));
    if (p) {
      feed(p, "x", ASG_F64, ASG_SHAPE(c.B, c.Tq, c.D), x);
      if (cross) feed(p, "ctx", ASG_F64, ASG_SHAPE(c.B, c.Tk, c.Dkv), ctx);
      int ok = asg_program_run(p) == ASG_OK && tu_fetch(p, yt, y) == ASG_OK;
      params pp;
      get_params(p, cross ? "xa" : "attn", &c, &pp);
      ref_attention(&c, x, cross ? ctx : x, &pp, want);
      free_params(&pp);
      int differ = 0;
      for (long i = 0; i < nx; i++)
        differ |= fabs(y[i] - want[i]) > 1e-6, ok &= isfinite(y[i]);
      TU_CHECK(ok && differ, "%s with GQA applies attention dropout in training",
               cross ? "cross-attention" : "mha");
      asg_program_free(p);
    }
    asg_graph_free(g);
    free(x), free(ctx), free(y), free(want);
  }
}

/* ---- gradients ---- */
typedef struct gc_ctx {
  cfg c;
} gc_ctx;

/* xs[0] = x, xs[1] = context (cross); f64 activations, a constant mask */
static asg_tensor *build_gc(asg_graph *g, asg_tensor **xs, void *vctx) {
  const cfg *c = &((gc_ctx *)vctx)->c;
  asg_attention_opts o = opts_of(c);
  asg_graph_set_training(g, c->dropout > 0);
  asg_tensor *m = NULL;
  if (c->pad) {
    double *mv = dalloc((long)c->B * c->Tk);
    mask_of(c, mv);
    m = tu_constant(g, ASG_F64, ASG_SHAPE(c->B, c->Tk), mv);
    free(mv);
  }
  if (!c->cross) return asg_layer_apply_masked(asg_nn_mha(g, "attn", c->D, c->H, &o), xs[0], m);
  return asg_cross_attention_apply(asg_nn_cross_attention(g, "xa", c->D, c->H, &o), xs[0], xs[1],
                                   m);
}

/* d loss / d parameter by central differences on the f32 variables (f64
 * activations) against asg_grad, for every element of the named params. */
static void param_grads(const char *what, cfg c, int n, const char *const *names) {
  c = norm_cfg(c);
  long nx = (long)c.B * c.Tq * c.D, nc = (long)c.B * c.Tk * c.Dkv;
  double *x = dalloc(nx), *ctx = dalloc(nc), *r = dalloc(nx);
  tu_rand(11, x, nx, -1, 1);
  tu_rand(12, ctx, nc, -1, 1);
  tu_rand(13, r, nx, 0.5, 1.5);
  asg_graph *g = asg_graph_new();
  asg_tensor *in[2] = {tu_constant(g, ASG_F64, ASG_SHAPE(c.B, c.Tq, c.D), x),
                       tu_constant(g, ASG_F64, ASG_SHAPE(c.B, c.Tk, c.Dkv), ctx)};
  gc_ctx gc = {c};
  asg_tensor *y = build_gc(g, in, &gc);
  asg_tensor *loss = asg_sum(asg_mul(y, tu_constant(g, ASG_F64, ASG_SHAPE(c.B, c.Tq, c.D), r)),
                             ASG_ALL_AXES, false);
  asg_tensor *wrt[8], *gr[8], *outs[9] = {loss};
  for (int i = 0; i < n; i++)
    wrt[i] = asg_graph_find(g, names[i]);
  int bad = !loss || asg_grad(loss, n, wrt, gr) != ASG_OK;
  for (int i = 0; i < n && !bad; i++)
    outs[i + 1] = gr[i];
  asg_program *p = bad ? NULL : asg_compile(g, n + 1, outs, NULL);
  bad |= !p || asg_program_run(p) != ASG_OK;
  if (bad) printf("  %s: build/run failed: %s / %s\n", what, err(g), asg_last_error());
  double *ans[8] = {NULL}; /* analytic gradients of the unperturbed run */
  for (int i = 0; i < n && !bad; i++) {
    ans[i] = dalloc((long)asg_shape_numel(asg_tensor_shape(wrt[i])));
    tu_fetch(p, gr[i], ans[i]);
  }
  for (int i = 0; i < n && !bad; i++) {
    long m = (long)asg_shape_numel(asg_tensor_shape(wrt[i]));
    double *v = dalloc(m), *an = ans[i];
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
      if (!(fabs(num - an[j]) <= 1e-5 * fmax(1, fabs(num)))) {
        printf("  %s d/d%s[%ld]: analytic %.10g numeric %.10g\n", what, names[i], j, an[j], num);
        bad = 1;
      }
    }
    free(v);
  }
  for (int i = 0; i < n; i++)
    free(ans[i]);
  TU_CHECK(!bad, "%s: parameter gradients", what);
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(ctx), free(r);
}

static void test_grads(void) {
  static const cfg cases[] = {
      /* fused causal: k and v repeated per query head */
      {2, 3, 0, 8, 0, 4, 2, true, true, false, false, ASG_POS_NONE, 0, 0, false},
      /* fused non-causal: G query rows per kv head */
      {2, 3, 0, 8, 0, 4, 1, false, true, false, false, ASG_POS_ROPE, 0, 0, false},
      /* materialized scores */
      {2, 3, 0, 8, 0, 4, 2, true, false, false, false, ASG_POS_ALIBI, 0, 0, false},
      {2, 3, 0, 8, 0, 4, 2, false, false, false, true, ASG_POS_NONE, 0, 0, false},
      {2, 3, 4, 8, 6, 4, 2, false, true, true, false, ASG_POS_NONE, 0, 0, false},
      {2, 2, 3, 4, 6, 2, 1, false, true, true, false, ASG_POS_NONE, 0, 1e-12, false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    gc_ctx ctx = {norm_cfg(cases[i])};
    const cfg *c = &ctx.c;
    asg_shape s[2] = {ASG_SHAPE(c->B, c->Tq, c->D), ASG_SHAPE(c->B, c->Tk, c->Dkv)};
    char nm[64];
    snprintf(nm, sizeof nm, "%s d/dx case %zu", c->cross ? "cross" : "gqa", i);
    TU_CHECK(tu_gradcheck(nm, c->cross ? 2 : 1, s, build_gc, &ctx, NULL) == 0, "%s", nm);
  }
  static const char *const self[] = {"attn.q_proj.weight", "attn.k_proj.weight", "attn.k_proj.bias",
                                     "attn.v_proj.weight", "attn.v_proj.bias"};
  static const char *const fused[] = {"attn.qkv_proj.weight", "attn.qkv_proj.bias"};
  static const char *const cross[] = {"xa.q_proj.weight", "xa.k_proj.weight", "xa.k_proj.bias",
                                      "xa.v_proj.weight", "xa.v_proj.bias",   "xa.out_proj.weight"};
  param_grads("gqa causal Hkv 2", cases[0], 5, self);
  param_grads("gqa non-causal Hkv 1 rope", cases[1], 5, self);
  param_grads("gqa alibi Hkv 2", cases[2], 5, self);
  param_grads("gqa fused_qkv Hkv 2", cases[3], 2, fused);
  param_grads("cross Hkv 2", cases[4], 6, cross);
}

/* ---- shapes and errors ---- */
static void test_shapes(void) {
  asg_graph *g = asg_graph_new();
  asg_attention_opts o = {.n_kv_heads = 2, .kv_dim = 6};
  asg_layer *l = asg_nn_cross_attention(g, "xa", 16, 4, &o);
  TU_CHECK(l != NULL, "cross-attention layer builds: %s", err(g));
  struct {
    const char *name;
    asg_shape s;
  } want[] = {{"xa.q_proj.weight", ASG_SHAPE(16, 16)},
              {"xa.k_proj.weight", ASG_SHAPE(8, 6)},
              {"xa.k_proj.bias", ASG_SHAPE(8)},
              {"xa.v_proj.weight", ASG_SHAPE(8, 6)},
              {"xa.out_proj.weight", ASG_SHAPE(16, 16)}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    asg_tensor *v = asg_graph_find(g, want[i].name);
    TU_CHECK(v && asg_shape_equal(asg_tensor_shape(v), want[i].s), "%s shape", want[i].name);
  }
  asg_attention_opts f = {.n_kv_heads = 1, .fused_qkv = true};
  TU_CHECK(asg_nn_mha(g, "mq", 16, 4, &f) != NULL, "fused multi-query builds: %s", err(g));
  asg_tensor *v = asg_graph_find(g, "mq.qkv_proj.weight");
  TU_CHECK(v && asg_shape_equal(asg_tensor_shape(v), ASG_SHAPE(24, 16)),
           "fused qkv_proj is [(H + 2 Hkv) Dh, d] = [24, 16]");
  asg_graph_free(g);
}

static void expect_fail(asg_graph *g, bool failed, const char *a, const char *b, const char *what) {
  TU_CHECK(failed && tu_contains(asg_graph_error(g), a) &&
               (!b || tu_contains(asg_graph_error(g), b)),
           "%s: %s", what, err(g));
}

static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_attention_opts o = {.n_kv_heads = 3};
  expect_fail(g, !asg_nn_mha(g, "g3", 8, 4, &o), "g3", "n_kv_heads (3)", "n_kv_heads 3 of 4");
  asg_graph_free(g);
  g = asg_graph_new();
  o.n_kv_heads = -2;
  expect_fail(g, !asg_nn_mha(g, "gneg", 8, 4, &o), "gneg", "n_kv_heads (-2)",
              "negative n_kv_heads");
  asg_graph_free(g);
  g = asg_graph_new();
  o.n_kv_heads = 8;
  expect_fail(g, !asg_nn_cross_attention(g, "g8", 8, 4, &o), "g8", "n_kv_heads (8)",
              "n_kv_heads > n_heads");
  asg_graph_free(g);
  g = asg_graph_new();
  o = (asg_attention_opts){.kv_dim = 6};
  expect_fail(g, !asg_nn_mha(g, "kvd", 8, 4, &o), "kvd", "kv_dim", "kv_dim on mha");
  asg_graph_free(g);
  g = asg_graph_new();
  o = (asg_attention_opts){.kv_dim = -1};
  expect_fail(g, !asg_nn_cross_attention(g, "kvn", 8, 4, &o), "kvn", "kv_dim", "negative kv_dim");
  asg_graph_free(g);
  const asg_attention_opts bad[3] = {{.causal = true}, {.pos = ASG_POS_ROPE}, {.fused_qkv = true}};
  const char *word[3] = {"causal", "pos", "fused_qkv"};
  for (int i = 0; i < 3; i++) {
    g = asg_graph_new();
    expect_fail(g, !asg_nn_cross_attention(g, "xbad", 8, 4, &bad[i]), "xbad", word[i],
                "cross-attention option refused");
    asg_graph_free(g);
  }
  /* apply errors */
  g = asg_graph_new();
  o = (asg_attention_opts){.n_kv_heads = 2, .kv_dim = 6};
  asg_layer *xa = asg_nn_cross_attention(g, "xa", 8, 4, &o);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 8));
  asg_tensor *ctx = asg_input(g, "ctx", ASG_F32, ASG_SHAPE(2, 5, 6));
  expect_fail(g, !asg_layer_apply(xa, x), "xa", "asg_cross_attention_apply",
              "asg_layer_apply on cross-attention");
  asg_graph_free(g);
  g = asg_graph_new();
  asg_layer *mha = asg_nn_mha(g, "self", 8, 4, NULL);
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 8));
  expect_fail(g, !asg_cross_attention_apply(mha, x, x, NULL), "self", "not a cross-attention",
              "cross apply on mha");
  asg_graph_free(g);
  struct {
    asg_shape ctx, mask; /* mask [0]: none */
    asg_dtype dt;
    const char *a, *b, *what;
  } ap[] = {
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(0), ASG_F32, "[2,5,8]", "6", "context width"},
      {ASG_SHAPE(3, 5, 6), ASG_SHAPE(0), ASG_F32, "[3,5,6]", "[2,3,8]", "context batch"},
      {ASG_SHAPE(2, 5, 6), ASG_SHAPE(0), ASG_F64, "context", "f64", "context dtype"},
      {ASG_SHAPE(2, 5, 6), ASG_SHAPE(2, 3), ASG_F32, "[2,3]", "[2,5]", "context mask shape"},
  };
  for (size_t i = 0; i < sizeof ap / sizeof ap[0]; i++) {
    g = asg_graph_new();
    xa = asg_nn_cross_attention(g, "xa", 8, 4, &o);
    x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 8));
    ctx = asg_input(g, "ctx", ap[i].dt, ap[i].ctx);
    asg_tensor *m = ap[i].mask.dims[0] ? asg_input(g, "m", ASG_F32, ap[i].mask) : NULL;
    expect_fail(g, !asg_cross_attention_apply(xa, x, ctx, m), ap[i].a, ap[i].b, ap[i].what);
    TU_CHECK(tu_contains(asg_graph_error(g), "xa"), "%s error names the layer: %s", ap[i].what,
             err(g));
    asg_graph_free(g);
  }
  g = asg_graph_new();
  xa = asg_nn_cross_attention(g, "xa", 8, 4, &o);
  x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3, 8));
  expect_fail(g, !asg_cross_attention_apply(xa, x, NULL, NULL), "xa", "context", "NULL context");
  asg_graph_free(g);
}

int main(void) {
  test_gqa_forward();
  test_cross_forward();
  test_dropout_acts();
  test_grads();
  test_shapes();
  test_errors();
  return tu_finish();
}
