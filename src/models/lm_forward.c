/* The GPT-2 and Llama forward passes, with or without a KV cache.
 *
 * Variables carry the Hugging Face checkpoint names (GPT-2's without the
 * "transformer." prefix, as in the original checkpoints; loads strip it and
 * saves add it back, lm_generate.c); linear weights are
 * [out, in] as torch.nn.Linear stores them (GPT-2's Conv1D [in, out] is
 * transposed by the load rules). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lm_internal.h"

/* The variable `name`, made on first use and found afterwards (the prefill,
 * decode and full-sequence passes of one graph share their weights). */
static asg_tensor *param(asg_graph *g, asg_dtype dt, asg_shape s, asg_init init, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));
static asg_tensor *param(asg_graph *g, asg_dtype dt, asg_shape s, asg_init init, const char *fmt,
                         ...) {
  char name[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  asg_tensor *v = asg_graph_find(g, name);
  if (!v) return asg_variable(g, name, dt, s, init);
  if (!asg_shape_equal(asg_tensor_shape(v), s) || asg_tensor_dtype(v) != dt)
    return asg_graph_fail(g, ASG_ERR_SHAPE, "lm", "variable '%s' exists with another shape", name);
  return v;
}

typedef struct lm {
  asg_graph *g;
  const asg_lm_config *c;
  asg_dtype dt;
  int64_t B, T, N, Dh, rows;
  bool zero; /* zero initializers */
} lm;

/* N(0, 0.02) as transformers initializes; zeros for a generator, whose
 * weights a checkpoint provides (drawing them would only cost time). */
static asg_init w_init(bool zero) { return zero ? asg_init_zeros() : asg_init_normal(0, 0.02); }

/* x [N, in] W^T + b, W = "<name>.weight" [out, in] */
static asg_tensor *linear(lm *m, asg_tensor *x, int64_t in, int64_t out, bool bias,
                          const char *name) {
  asg_tensor *w = param(m->g, m->dt, ASG_SHAPE(out, in), w_init(m->zero), "%s.weight", name);
  asg_tensor *y = asg_matmul_t(x, w, false, true);
  if (bias) y = asg_add(y, param(m->g, m->dt, ASG_SHAPE(out), asg_init_zeros(), "%s.bias", name));
  return y;
}

static asg_tensor *norm(lm *m, asg_tensor *x, const char *name) {
  int64_t D = m->c->d_model;
  asg_tensor *w = param(m->g, m->dt, ASG_SHAPE(D), asg_init_ones(), "%s.weight", name);
  if (m->c->arch == ASG_LM_GPT2)
    return asg_layernorm(x, w, param(m->g, m->dt, ASG_SHAPE(D), asg_init_zeros(), "%s.bias", name),
                         m->c->norm_eps);
  return asg_rmsnorm(x, w, m->c->norm_eps); /* x / sqrt(mean(x^2) + eps) * w */
}

/* cos or sin of t * base^(-2i/Dh) for the first `rows` positions, [rows, Dh]
 * with each frequency twice (the half-split convention of HF Llama). */
static asg_tensor *rope_table(lm *m, bool sine) {
  int64_t Dh = m->Dh, half = Dh / 2, R = m->rows;
  size_t n = (size_t)(R * Dh);
  void *buf = malloc(n * asg_dtype_size(m->dt));
  float *inv = malloc(sizeof(float) * (size_t)half);
  if (!buf || !inv) {
    free(buf), free(inv);
    return asg_graph_fail(m->g, ASG_ERR_OOM, "lm", "rope table: out of memory");
  }
  /* as transformers: inverse frequencies and angles in float32 */
  for (int64_t i = 0; i < half; i++)
    inv[i] = (float)(1.0 / pow(m->c->rope_base, (double)(2 * i) / (double)Dh));
  for (int64_t t = 0; t < R; t++)
    for (int64_t i = 0; i < Dh; i++) {
      float ang = (float)t * inv[i % half];
      double v = sine ? sin((double)ang) : cos((double)ang);
      if (m->dt == ASG_F64)
        ((double *)buf)[t * Dh + i] = v;
      else
        ((float *)buf)[t * Dh + i] = (float)v;
    }
  asg_tensor *k = asg_constant(m->g, m->dt, ASG_SHAPE(R, Dh), buf);
  free(buf);
  free(inv);
  return k;
}

/* Position-dependent rows of a table [rows, C]: [B, T, C] at the positions,
 * or the first T rows [T, C] when positions is NULL. */
static asg_tensor *rows_at(lm *m, asg_tensor *table, asg_tensor *positions) {
  if (positions) return asg_embedding(table, positions);
  return asg__slice_dims(table, 0, 0, m->T, 1);
}

/* y = x * cos + rotate_half(x) * sin, one op; x [B, H, T, Dh], cs/sn
 * [T, Dh] or [B, 1, T, Dh] (broadcast over heads) */
static asg_tensor *rope(lm *m, asg_tensor *x, asg_tensor *cs, asg_tensor *sn) {
  (void)m;
  return asg_rope(x, cs, sn);
}

/* [N, H*Dh] -> [B, H, T, Dh] */
static asg_tensor *heads(lm *m, asg_tensor *t, int64_t H) {
  static const int perm[4] = {0, 2, 1, 3};
  return asg_permute(asg_reshape(t, ASG_SHAPE(m->B, m->T, H, m->Dh)), perm);
}

/* [B, Hkv, T, Dh] -> [B, Hkv * G, T, Dh], kv head j serving query heads jG .. jG+G-1 */
static asg_tensor *repeat_kv(lm *m, asg_tensor *t, int64_t Hkv, int64_t G) {
  if (G == 1) return t;
  asg_tensor *u = asg_reshape(t, ASG_SHAPE(m->B, Hkv, 1, m->T, m->Dh));
  u = asg_broadcast_to(u, ASG_SHAPE(m->B, Hkv, G, m->T, m->Dh));
  return asg_reshape(u, ASG_SHAPE(m->B, Hkv * G, m->T, m->Dh));
}

static asg_tensor *cache_var(lm *m, asg__lm_cache *kc, int l, char which) {
  asg_tensor *v = param(m->g, m->dt, ASG_SHAPE(kc->batch, m->c->n_kv_head, kc->len, m->Dh),
                        asg_init_zeros(), "cache.%d.%c", l, which);
  if (v) asg_variable_set_trainable(v, false);
  return v;
}

static asg_tensor *attention(lm *m, int l, asg_tensor *h, asg_tensor *cs, asg_tensor *sn,
                             asg_tensor *mask, asg__lm_cache *kc) {
  static const int perm[4] = {0, 2, 1, 3};
  const asg_lm_config *c = m->c;
  int64_t H = c->n_head, Hkv = c->n_kv_head, G = H / Hkv, D = c->d_model, Dh = m->Dh;
  char name[128];
  asg_tensor *q, *k, *v;
  if (c->arch == ASG_LM_GPT2) { /* fused c_attn: [N, 3D] -> [3, B, H, T, Dh] */
    static const int p5[5] = {2, 0, 3, 1, 4};
    snprintf(name, sizeof name, "h.%d.attn.c_attn", l);
    asg_tensor *qkv = linear(m, h, D, 3 * D, true, name);
    qkv = asg_permute(asg_reshape(qkv, ASG_SHAPE(m->B, m->T, 3, H, Dh)), p5);
    asg_tensor *part[3] = {NULL, NULL, NULL};
    const int64_t ones[3] = {1, 1, 1};
    if (!qkv || asg_split(qkv, 0, 3, ones, part) != ASG_OK) return NULL;
    q = asg_reshape(part[0], ASG_SHAPE(m->B, H, m->T, Dh));
    k = asg_reshape(part[1], ASG_SHAPE(m->B, H, m->T, Dh));
    v = asg_reshape(part[2], ASG_SHAPE(m->B, H, m->T, Dh));
  } else {
    snprintf(name, sizeof name, "model.layers.%d.self_attn.q_proj", l);
    q = heads(m, linear(m, h, D, H * Dh, c->attn_bias, name), H);
    snprintf(name, sizeof name, "model.layers.%d.self_attn.k_proj", l);
    k = heads(m, linear(m, h, D, Hkv * Dh, c->attn_bias, name), Hkv);
    snprintf(name, sizeof name, "model.layers.%d.self_attn.v_proj", l);
    v = heads(m, linear(m, h, D, Hkv * Dh, c->attn_bias, name), Hkv);
    q = rope(m, q, cs, sn);
    k = rope(m, k, cs, sn);
  }
  if (!q || !k || !v) return NULL;
  double scale = 1.0 / sqrt((double)Dh);
  asg_tensor *o;
  if (kc) {
    asg_tensor *kw = asg_cache_write(cache_var(m, kc, l, 'k'), k, kc->pos, 2);
    asg_tensor *vw = asg_cache_write(cache_var(m, kc, l, 'v'), v, kc->pos, 2);
    if (!kw || !vw) return NULL;
    if (kc->writes) {
      kc->writes[2 * l] = kw;
      kc->writes[2 * l + 1] = vw;
    }
    if (kc->decode) {
      /* T = 1: the G query heads of a kv head attend to its cache rows as
       * G queries ([B, Hkv, G, Dh]): no copy of the cache per query head */
      asg_tensor *qg = asg_reshape(q, ASG_SHAPE(m->B, Hkv, G, Dh));
      o = asg_reshape(asg_attention_masked(qg, kw, vw, mask, scale, false),
                      ASG_SHAPE(m->B, H, 1, Dh));
      goto out;
    }
  }
  o = asg_attention_masked(q, repeat_kv(m, k, Hkv, G), repeat_kv(m, v, Hkv, G), mask, scale, true);
out:
  o = asg_reshape(asg_permute(o, perm), ASG_SHAPE(m->N, H * Dh));
  if (c->arch == ASG_LM_GPT2) {
    snprintf(name, sizeof name, "h.%d.attn.c_proj", l);
    return linear(m, o, D, D, true, name);
  }
  snprintf(name, sizeof name, "model.layers.%d.self_attn.o_proj", l);
  return linear(m, o, H * Dh, D, c->attn_bias, name);
}

static asg_tensor *mlp(lm *m, int l, asg_tensor *h) {
  const asg_lm_config *c = m->c;
  int64_t D = c->d_model, F = c->d_ff ? c->d_ff : 4 * D;
  char n1[128], n2[128], n3[128];
  if (c->arch == ASG_LM_GPT2) {
    snprintf(n1, sizeof n1, "h.%d.mlp.c_fc", l);
    snprintf(n2, sizeof n2, "h.%d.mlp.c_proj", l);
    return linear(m, asg_gelu_tanh(linear(m, h, D, F, true, n1)), F, D, true, n2);
  }
  snprintf(n1, sizeof n1, "model.layers.%d.mlp.gate_proj", l);
  snprintf(n2, sizeof n2, "model.layers.%d.mlp.up_proj", l);
  snprintf(n3, sizeof n3, "model.layers.%d.mlp.down_proj", l);
  asg_tensor *a =
      asg_mul(asg_silu(linear(m, h, D, F, c->mlp_bias, n1)), linear(m, h, D, F, c->mlp_bias, n2));
  return linear(m, a, F, D, c->mlp_bias, n3);
}

asg_tensor *asg__lm_hidden(asg_graph *g, const asg_lm_config *c, asg_dtype dt,
                           const asg_lm_inputs *in, asg__lm_cache *kc) {
  char b1[96];
  if (!g) return NULL;
  if (asg_lm_config_check(c) != ASG_OK)
    return asg_graph_fail(g, ASG_ERR_INVALID, "lm", "%s", asg_last_error());
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg_graph_fail(g, ASG_ERR_DTYPE, "lm", "dtype must be f32 or f64, got %s",
                          asg_dtype_name(dt));
  if (!in || !in->tokens) return asg_graph_fail(g, ASG_ERR_INVALID, "lm", "no tokens input");
  asg_shape ts = asg_tensor_shape(in->tokens);
  if (ts.ndim != 2 ||
      (asg_tensor_dtype(in->tokens) != ASG_I32 && asg_tensor_dtype(in->tokens) != ASG_I64))
    return asg_graph_fail(g, ASG_ERR_SHAPE, "lm", "tokens %s %s must be [B, T] of i32 or i64",
                          asg_graph_shape_str(g, ts, b1, sizeof b1),
                          asg_dtype_name(asg_tensor_dtype(in->tokens)));
  lm m = {.g = g, .c = c, .dt = dt, .B = ts.dims[0], .T = ts.dims[1]};
  m.N = asg_dim_mul(g, m.B, m.T);
  m.Dh = c->head_dim ? c->head_dim : c->d_model / c->n_head;
  m.rows = kc ? kc->len : c->max_pos;
  m.zero = kc != NULL;
  if (m.rows > c->max_pos) m.rows = c->max_pos;
  int64_t D = c->d_model;
  asg_tensor *mask = in->key_mask;
  if (mask && asg_tensor_dtype(mask) != dt) mask = asg_cast(mask, dt);
  bool gpt2 = c->arch == ASG_LM_GPT2;
  asg_tensor *x = asg_embedding(param(g, dt, ASG_SHAPE(c->vocab_size, D), w_init(m.zero), "%s",
                                      gpt2 ? "wte.weight" : "model.embed_tokens.weight"),
                                in->tokens);
  asg_tensor *cs = NULL, *sn = NULL;
  if (gpt2) {
    asg_tensor *wpe = param(g, dt, ASG_SHAPE(c->max_pos, D), w_init(m.zero), "wpe.weight");
    x = asg_add(x, rows_at(&m, wpe, in->positions));
  } else { /* [B, 1, T, Dh] or [T, Dh]: broadcast over heads */
    cs = rows_at(&m, rope_table(&m, false), in->positions);
    sn = rows_at(&m, rope_table(&m, true), in->positions);
    if (in->positions) {
      cs = asg_unsqueeze(cs, 1);
      sn = asg_unsqueeze(sn, 1);
    }
  }
  x = asg_reshape(x, ASG_SHAPE(m.N, D));
  char n1[128], n2[128];
  for (int l = 0; l < (int)c->n_layer && x; l++) {
    snprintf(n1, sizeof n1, gpt2 ? "h.%d.ln_1" : "model.layers.%d.input_layernorm", l);
    snprintf(n2, sizeof n2, gpt2 ? "h.%d.ln_2" : "model.layers.%d.post_attention_layernorm", l);
    /* name scopes as the checkpoint's modules: "h.3/attn", "layers.3/mlp"
     * (error messages, profiles and the graph viewer group by them) */
    char sc[32];
    snprintf(sc, sizeof sc, gpt2 ? "h.%d" : "layers.%d", l);
    asg_scope_push(g, sc);
    asg_graph_declare_block(g, asg_scope_current(g)); /* asg_compile_opts.checkpoint_blocks */
    asg_scope_push(g, "attn");
    x = asg_add(x, attention(&m, l, norm(&m, x, n1), cs, sn, mask, kc));
    asg_scope_pop(g);
    asg_scope_push(g, "mlp");
    x = asg_add(x, mlp(&m, l, norm(&m, x, n2)));
    asg_scope_pop(g);
    asg_scope_pop(g);
  }
  x = norm(&m, x, gpt2 ? "ln_f" : "model.norm");
  return asg_reshape(x, ASG_SHAPE(m.B, m.T, D));
}

asg_tensor *asg__lm_head(asg_graph *g, const asg_lm_config *c, asg_dtype dt, asg_tensor *h,
                         bool zero_init) {
  int64_t V = c->vocab_size, D = c->d_model;
  const char *name = c->arch == ASG_LM_GPT2 ? "wte.weight"
                     : c->tie_embeddings    ? "model.embed_tokens.weight"
                                            : "lm_head.weight";
  if (!g || !h) return NULL;
  asg_scope_push(g, "lm_head");
  asg_tensor *w = param(g, dt, ASG_SHAPE(V, D), w_init(zero_init), "%s", name), *y;
  asg_shape hs = asg_tensor_shape(h);
  if (hs.ndim == 2) {
    y = asg_matmul_t(h, w, false, true);
  } else {
    asg_shape ys = hs;
    ys.dims[ys.ndim - 1] = V;
    y = asg_reshape(asg_matmul_t(asg_reshape(h, ASG_SHAPE(-1, D)), w, false, true), ys);
  }
  asg_scope_pop(g);
  return y;
}

asg_tensor *asg_lm_forward(asg_graph *g, const asg_lm_config *c, asg_dtype dt,
                           const asg_lm_inputs *in) {
  return asg__lm_head(g, c, dt, asg__lm_hidden(g, c, dt, in, NULL), false);
}
