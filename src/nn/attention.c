/* Attention and transformer layers, built from public ops only.
 *
 * mha: children q_proj (Linear d -> d), k_proj and v_proj (Linear d ->
 *   Hkv * Dh, Hkv = n_kv_heads, Dh = d / heads), out_proj (Linear d -> d),
 *   named "<name>.q_proj", ...; or with fused_qkv qkv_proj (Linear d ->
 *   (heads + 2 Hkv) * Dh, rows q, k, v) and out_proj (two children: that is
 *   how mha_apply tells). Settings:
 *   i[0] = d_model, i[1] = heads, i[2] = causal, i[3] = asg_posenc,
 *   i[4] = dropout applications so far, i[5] = Hkv, i[6] = the k/v input
 *   width (d_model; kv_dim for cross-attention), i[7] = 1 for
 *   cross-attention; f[0] = attention dropout, f[1] = RoPE base. The scores
 *   go through the fused attention op (with the padding mask as its key
 *   mask) unless ALiBi or active attention dropout must act on them (then
 *   they are materialized).
 * cross_attention: the same four children and settings, k_proj and v_proj
 *   Linear kv_dim -> Hkv * Dh; applied with asg_cross_attention_apply (its
 *   asg_layer_apply entry only reports that).
 * feedforward: children fc1, act, fc2 and (dropout > 0) dropout, in order.
 * transformer_block: children ln1, attn, ln2, ffn and (dropout > 0) drop1
 *   (dropout on the attention output before the residual add).
 * posenc: i[0] = kind, i[1] = max_len, i[2] = d_model; learned: weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/symbol.h"
#include "nn/layer.h"

/* Additive mask value: exp() of it underflows to exactly 0 after softmax's
 * max subtraction, yet it stays finite so a fully padded row gives a uniform
 * distribution rather than NaN. */
#define MASK_NEG (-1e9)

/* Applies a child layer under its own scope (not nested in the parent's,
 * as sequential does), so errors read "blk.attn.q_proj/linear: ...". */
static asg_tensor *child(asg_layer *parent, asg_layer *c, asg_tensor *x, asg_tensor *mask) {
  asg_scope_pop(parent->g);
  asg_tensor *y = asg_layer_apply_masked(c, x, mask);
  asg_scope_push(parent->g, parent->name);
  return y;
}

static asg_layer *add_child(asg_layer *parent, asg_layer *c) {
  if (c) parent->children[parent->n_children++] = c;
  return c;
}

/* A constant of dtype dt from doubles (built in f64, cast if dt is not). */
static asg_tensor *konst(asg_graph *g, asg_dtype dt, asg_shape s, double *v) {
  int64_t n = asg_shape_numel(s);
  if (dt == ASG_F64) return asg_constant(g, dt, s, v);
  if (dt == ASG_F32) {
    float *f = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!f) return asg_graph_fail(g, ASG_ERR_OOM, "constant", "out of memory");
    for (int64_t i = 0; i < n; i++)
      f[i] = (float)v[i];
    asg_tensor *t = asg_constant(g, dt, s, f);
    free(f);
    return t;
  }
  return asg_cast(asg_constant(g, ASG_F64, s, v), dt);
}

static double *dbuf(asg_graph *g, int64_t n) {
  double *v = calloc((size_t)(n ? n : 1), sizeof(double));
  if (!v) asg_graph_fail(g, ASG_ERR_OOM, "attention", "out of memory");
  return v;
}

/* Tables over the positions of a symbolic length T (RoPE angles, masks)
 * are built for T's largest value and sliced to T when the graph runs:
 * the bound of T (a symbol declared with max) or cap. 0 and g failed when
 * T has no bound. */
static int64_t table_len(asg_graph *g, int64_t T, int64_t cap, const char *what) {
  if (!asg__dim_is_sym(T)) return T;
  int k = asg__dim_as_sym(g, T);
  int64_t max = k >= 0 ? asg__sym_max(g, k) : 0;
  if (cap > 0 && (max == 0 || max > cap)) max = cap;
  if (max > 0) return max;
  char b[96];
  asg_graph_fail(g, ASG_ERR_SHAPE, what,
                 "sequence length %s has no upper bound: declare it with one (asg_dim(g, name, "
                 "max)) so that the position table can be built",
                 asg__dim_str(g, T, b, sizeof b));
  return 0;
}

/* The first T rows (axis a) of a table built for Tmax rows. */
static asg_tensor *first_rows(asg_tensor *t, int a, int64_t T, int64_t Tmax) {
  return T == Tmax ? t : asg__slice_dims(t, a, 0, T, 1);
}

static asg_tensor *as_dtype(asg_tensor *p, asg_tensor *x) {
  if (!p || asg_tensor_dtype(p) == asg_tensor_dtype(x)) return p;
  return asg_cast(p, asg_tensor_dtype(x));
}

/* ---- multi-head attention ---- */

/* RoPE, half-split convention (GPT-NeoX / Hugging Face LLaMA): feature i is
 * paired with i + Dh/2 and the pair rotated by t * base^(-2i/Dh):
 *   y = x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1]. */
static asg_tensor *rope(asg_graph *g, asg_tensor *x, int64_t Tx, int64_t Dh, double base) {
  int64_t half = Dh / 2, T = table_len(g, Tx, 0, "rope");
  if (T < 1) return NULL;
  double *c = dbuf(g, T * Dh), *s = dbuf(g, T * Dh);
  asg_tensor *ct = NULL, *st = NULL;
  if (c && s) {
    for (int64_t t = 0; t < T; t++)
      for (int64_t i = 0; i < Dh; i++) {
        double ang = (double)t * pow(base, -2.0 * (double)(i % half) / (double)Dh);
        c[t * Dh + i] = cos(ang);
        s[t * Dh + i] = sin(ang);
      }
    ct = first_rows(konst(g, asg_tensor_dtype(x), ASG_SHAPE(T, Dh), c), 0, Tx, T);
    st = first_rows(konst(g, asg_tensor_dtype(x), ASG_SHAPE(T, Dh), s), 0, Tx, T);
  }
  free(c);
  free(s);
  if (!ct || !st) return NULL;
  asg_tensor *rot[2] = {asg_neg(asg_slice(x, -1, half, Dh, 1)), asg_slice(x, -1, 0, half, 1)};
  if (!rot[0] || !rot[1]) return NULL;
  return asg_add(asg_mul(x, ct), asg_mul(asg_concat(rot, 2, -1), st));
}

/* Causal mask and/or ALiBi as one additive constant [Hb, T, T]. ALiBi slope
 * of head h (0-based) is 2^(-8(h+1)/H) and the bias -slope*|i-j| (equal to
 * the paper's -slope*(i-j) on the causal triangle; symmetric otherwise). */
static asg_tensor *score_bias(asg_graph *g, asg_dtype dt, int64_t H, int64_t Tx, bool causal,
                              bool alibi) {
  int64_t Hb = alibi ? H : 1, T = table_len(g, Tx, 0, "attention");
  if (T < 1) return NULL;
  double *v = dbuf(g, Hb * T * T);
  if (!v) return NULL;
  for (int64_t h = 0; h < Hb; h++) {
    double slope = alibi ? pow(2.0, -8.0 * (double)(h + 1) / (double)H) : 0;
    for (int64_t i = 0; i < T; i++)
      for (int64_t j = 0; j < T; j++)
        v[(h * T + i) * T + j] = (causal && j > i) ? MASK_NEG : -slope * (double)llabs(i - j);
  }
  asg_tensor *t = konst(g, dt, ASG_SHAPE(Hb, T, T), v);
  free(v);
  return first_rows(first_rows(t, 1, Tx, T), 2, Tx, T);
}

/* [B, T, D] -> [B, H, T, Dh] */
static asg_tensor *split_heads(asg_tensor *t, int64_t B, int64_t T, int64_t H, int64_t Dh) {
  static const int perm[4] = {0, 2, 1, 3};
  return asg_permute(asg_reshape(t, ASG_SHAPE(B, T, H, Dh)), perm);
}

/* Hugging Face's repeat_kv: [B, Hkv, T, Dh] -> [B, Hkv*G, T, Dh], kv head j
 * copied to heads j*G .. j*G+G-1. Only the fused causal path needs it. */
static asg_tensor *repeat_kv(asg_tensor *t, int64_t B, int64_t Hkv, int64_t G, int64_t T,
                             int64_t Dh) {
  asg_tensor *e = asg_reshape(t, ASG_SHAPE(B, Hkv, 1, T, Dh));
  return asg_reshape(asg_broadcast_to(e, ASG_SHAPE(B, Hkv, G, T, Dh)),
                     ASG_SHAPE(B, Hkv * G, T, Dh));
}

/* Attention of q [B, H, Tq, Dh] over k, v [B, Hkv, Tk, Dh] (query head h
 * reads kv head h / G, G = H / Hkv), keys a key mask [B, Tk] or NULL;
 * returns the heads merged, [B, Tq, D], before out_proj. The G query heads
 * of a kv head are consecutive, so q [B, H, Tq, Dh] reshapes to
 * [B, Hkv, G*Tq, Dh]: G*Tq query rows against one kv head, no copy of k or
 * v. The fused op's causal mask is aligned on the row index, which is only
 * right for G = 1, so the fused causal GQA case repeats k and v instead. */
static asg_tensor *attend(asg_layer *l, asg_tensor *q, asg_tensor *k, asg_tensor *v,
                          asg_tensor *keys, int64_t B, int64_t Tq, int64_t Tk) {
  static const int perm[4] = {0, 2, 1, 3};
  asg_graph *g = l->g;
  int64_t D = l->i[0], H = l->i[1], Hkv = l->i[5], G = H / Hkv, Dh = D / H;
  int64_t GTq = asg_dim_mul(g, G, Tq);
  bool causal = l->i[2] != 0;
  asg_posenc pos = (asg_posenc)l->i[3];
  asg_dtype dt = asg_tensor_dtype(q);
  double scale = 1.0 / sqrt((double)Dh);
  bool drop = l->f[0] > 0 && asg_graph_is_training(g);
  asg_tensor *av; /* [B, H, Tq, Dh] */
  if (pos != ASG_POS_ALIBI && !drop && (dt == ASG_F32 || dt == ASG_F64)) {
    /* only the causal and padding masks act on the scores: the fused op
     * never stores the [B, H, Tq, Tk] scores or probabilities */
    if (G > 1 && !causal) {
      av = asg_attention_masked(asg_reshape(q, ASG_SHAPE(B, Hkv, GTq, Dh)), k, v, keys, scale,
                                false);
      av = asg_reshape(av, ASG_SHAPE(B, H, Tq, Dh));
    } else {
      if (G > 1) {
        k = repeat_kv(k, B, Hkv, G, Tk, Dh);
        v = repeat_kv(v, B, Hkv, G, Tk, Dh);
      }
      av = asg_attention_masked(q, k, v, keys, scale, causal);
    }
  } else {
    /* scale q ([.., Tq, Dh]) rather than the scores ([.., Tq, Tk]) */
    asg_tensor *qs = asg_mul_scalar(q, scale);
    if (G > 1) qs = asg_reshape(qs, ASG_SHAPE(B, Hkv, GTq, Dh));
    asg_tensor *s = asg_matmul_t(qs, k, false, true);
    if (G > 1) s = asg_reshape(s, ASG_SHAPE(B, H, Tq, Tk));
    if (causal || pos == ASG_POS_ALIBI) /* self-attention only: Tq == Tk */
      s = asg_add(s, score_bias(g, dt, H, Tq, causal, pos == ASG_POS_ALIBI));
    if (keys) /* 1 keep -> 0, 0 pad -> MASK_NEG; [B, 1, 1, Tk] broadcasts over heads, queries */
      s = asg_add(s, asg_reshape(asg_mul_scalar(asg_add_scalar(keys, -1.0), -MASK_NEG),
                                 ASG_SHAPE(B, 1, 1, Tk)));
    asg_tensor *a = asg_softmax(s, -1);
    if (drop)
      a = asg_dropout(a, l->f[0], asg__layer_seed(l) + 0x9e3779b97f4a7c15ull * (uint64_t)l->i[4]++);
    if (G > 1) a = asg_reshape(a, ASG_SHAPE(B, Hkv, GTq, Tk));
    av = asg_matmul(a, v);
    if (G > 1) av = asg_reshape(av, ASG_SHAPE(B, H, Tq, Dh));
  }
  return asg_reshape(asg_permute(av, perm), ASG_SHAPE(B, Tq, D));
}

/* Checks a key mask [B, T] over the positions of x (the input, or the
 * context of cross-attention) and returns it in x's dtype (*out stays NULL
 * without a mask); false (graph failed) on a bad shape. */
static bool key_mask(asg_layer *l, asg_tensor *mask, asg_tensor *x, int64_t B, int64_t T,
                     const char *what, asg_tensor **out) {
  char b1[96], b2[96], b3[96];
  *out = NULL;
  if (!mask) return true;
  asg_graph *g = l->g;
  asg_shape ms = asg_tensor_shape(mask);
  if (ms.ndim != 2 || ms.dims[0] != B || ms.dims[1] != T) {
    asg_graph_fail(
        g, ASG_ERR_SHAPE, l->i[7] ? "cross_attention" : "mha",
        "%s %s must be [B, T] = %s for %s %s", what, asg_graph_shape_str(g, ms, b1, sizeof b1),
        asg_graph_shape_str(g, ASG_SHAPE(B, T), b3, sizeof b3), l->i[7] ? "context" : "input",
        asg_graph_shape_str(g, asg_tensor_shape(x), b2, sizeof b2));
    return false;
  }
  *out = as_dtype(mask, x);
  return *out != NULL;
}

/* x must be [B, T, dim] of a float dtype, and of like's dtype if like is
 * not NULL (the context of cross-attention against the queries' input). */
static bool check_seq(asg_layer *l, asg_tensor *x, int64_t dim, asg_tensor *like,
                      const char *what) {
  char b1[96];
  asg_graph *g = l->g;
  const char *op = l->i[7] ? "cross_attention" : "mha";
  asg_shape xs = asg_tensor_shape(x);
  if (xs.ndim != 3 || xs.dims[2] != dim) {
    asg_graph_fail(g, ASG_ERR_SHAPE, op, "%s %s must be [B, T, %lld]", what,
                   asg_graph_shape_str(g, xs, b1, sizeof b1), (long long)dim);
    return false;
  }
  asg_dtype xd = asg_tensor_dtype(x);
  if (!asg_dtype_is_float(xd)) {
    asg_graph_fail(g, ASG_ERR_DTYPE, op, "%s must be floating point, got %s", what,
                   asg_dtype_name(xd));
    return false;
  }
  if (like && xd != asg_tensor_dtype(like)) {
    asg_graph_fail(g, ASG_ERR_DTYPE, op, "%s is %s but the input is %s: cast one", what,
                   asg_dtype_name(xd), asg_dtype_name(asg_tensor_dtype(like)));
    return false;
  }
  return true;
}

static asg_tensor *mha_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  asg_graph *g = l->g;
  int64_t D = l->i[0], H = l->i[1], Hkv = l->i[5], Dh = D / H;
  if (!check_seq(l, x, D, NULL, "input")) return NULL;
  asg_shape xs = asg_tensor_shape(x);
  int64_t B = xs.dims[0], T = xs.dims[1];
  asg_tensor *keys; /* the padding mask in x's dtype: 1 keep, 0 pad */
  if (!key_mask(l, mask, x, B, T, "padding mask", &keys)) return NULL;
  asg_layer **c = l->children;
  asg_tensor *q, *k, *v;
  if (l->n_children == 2 && Hkv == H) {
    /* fused_qkv: [B, T, 3d] -> [3, B, H, T, Dh], q, k, v are views */
    static const int p5[5] = {2, 0, 3, 1, 4};
    asg_tensor *qkv =
        asg_permute(asg_reshape(child(l, c[0], x, NULL), ASG_SHAPE(B, T, 3, H, Dh)), p5);
    asg_tensor *part[3] = {NULL, NULL, NULL};
    const int64_t ones[3] = {1, 1, 1};
    if (!qkv || asg_split(qkv, 0, 3, ones, part) != ASG_OK) return NULL;
    q = asg_reshape(part[0], ASG_SHAPE(B, H, T, Dh));
    k = asg_reshape(part[1], ASG_SHAPE(B, H, T, Dh));
    v = asg_reshape(part[2], ASG_SHAPE(B, H, T, Dh));
  } else if (l->n_children == 2) { /* fused_qkv with GQA: [B, T, (H + 2 Hkv) Dh] */
    asg_tensor *part[3] = {NULL, NULL, NULL};
    const int64_t sizes[3] = {D, Hkv * Dh, Hkv * Dh};
    asg_tensor *qkv = child(l, c[0], x, NULL);
    if (!qkv || asg_split(qkv, 2, 3, sizes, part) != ASG_OK) return NULL;
    q = split_heads(part[0], B, T, H, Dh);
    k = split_heads(part[1], B, T, Hkv, Dh);
    v = split_heads(part[2], B, T, Hkv, Dh);
  } else {
    q = split_heads(child(l, c[0], x, NULL), B, T, H, Dh);
    k = split_heads(child(l, c[1], x, NULL), B, T, Hkv, Dh);
    v = split_heads(child(l, c[2], x, NULL), B, T, Hkv, Dh);
  }
  if (!q || !k || !v) return NULL;
  if ((asg_posenc)l->i[3] == ASG_POS_ROPE) {
    q = rope(g, q, T, Dh, l->f[1]);
    k = rope(g, k, T, Dh, l->f[1]);
  }
  asg_tensor *o = attend(l, q, k, v, keys, B, T, T);
  if (!o) return NULL;
  return child(l, c[l->n_children - 1], o, NULL); /* out_proj */
}

/* asg_layer_apply on a cross-attention layer: there is no context. */
static asg_tensor *cross_apply_no_context(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)x, (void)mask;
  return asg_graph_fail(l->g, ASG_ERR_INVALID, "cross_attention",
                        "%s is a cross-attention layer: apply it with asg_cross_attention_apply "
                        "(queries, context, context mask), not asg_layer_apply",
                        l->name);
}

static asg_tensor *cross_apply(asg_layer *l, asg_tensor *x, asg_tensor *ctx, asg_tensor *mask) {
  asg_graph *g = l->g;
  int64_t D = l->i[0], H = l->i[1], Hkv = l->i[5], Dh = D / H;
  char b1[96], b2[96];
  if (!check_seq(l, x, D, NULL, "input") || !check_seq(l, ctx, l->i[6], x, "context")) return NULL;
  asg_shape xs = asg_tensor_shape(x), cs = asg_tensor_shape(ctx);
  int64_t B = xs.dims[0], Tq = xs.dims[1], Tk = cs.dims[1];
  if (cs.dims[0] != B)
    return asg_graph_fail(
        g, ASG_ERR_SHAPE, "cross_attention", "context %s and input %s have different batch sizes",
        asg_graph_shape_str(g, cs, b1, sizeof b1), asg_graph_shape_str(g, xs, b2, sizeof b2));
  asg_tensor *keys;
  if (!key_mask(l, mask, ctx, B, Tk, "context mask", &keys)) return NULL;
  asg_layer **c = l->children;
  asg_tensor *q = split_heads(child(l, c[0], x, NULL), B, Tq, H, Dh);
  asg_tensor *k = split_heads(child(l, c[1], ctx, NULL), B, Tk, Hkv, Dh);
  asg_tensor *v = split_heads(child(l, c[2], ctx, NULL), B, Tk, Hkv, Dh);
  if (!q || !k || !v) return NULL;
  asg_tensor *o = attend(l, q, k, v, keys, B, Tq, Tk);
  if (!o) return NULL;
  return child(l, c[3], o, NULL); /* out_proj */
}

asg_tensor *asg_cross_attention_apply(asg_layer *l, asg_tensor *x, asg_tensor *context,
                                      asg_tensor *context_mask) {
  if (!l || !x) return NULL; /* a failed constructor or input: the graph has the error */
  if (l->apply != cross_apply_no_context)
    return asg_graph_fail(l->g, ASG_ERR_INVALID, "cross_attention",
                          "%s is not a cross-attention layer (asg_nn_cross_attention)", l->name);
  if (!context)
    return asg_graph_fail(l->g, ASG_ERR_INVALID, "cross_attention", "%s: context is NULL", l->name);
  asg_scope_push(l->g, l->name);
  asg_tensor *y = cross_apply(l, x, context, context_mask);
  asg_scope_pop(l->g);
  return y;
}

/* Name "<parent>.<suffix>" in a stack buffer. */
static const char *sub(char *buf, size_t n, const char *parent, const char *suffix) {
  snprintf(buf, n, "%s.%s", parent, suffix);
  return buf;
}

static bool alloc_children(asg_layer *l, int n) {
  l->children = asg_graph_alloc(l->g, sizeof(asg_layer *) * (size_t)n);
  return l->children != NULL;
}

/* Validates the options shared by mha and cross-attention (what names the
 * constructor in messages) and stores the settings; false if g failed. */
static bool attn_settings(asg_layer *l, int64_t d_model, int64_t n_heads,
                          const asg_attention_opts *o, const char *what) {
  asg_graph *g = l->g;
  if (d_model < 1 || n_heads < 1 || d_model % n_heads) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                   "%s: d_model (%lld) must be a positive multiple of n_heads (%lld)", what,
                   (long long)d_model, (long long)n_heads);
    return false;
  }
  int64_t hkv = o->n_kv_heads ? o->n_kv_heads : n_heads;
  if (hkv < 1 || n_heads % hkv) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                   "%s: n_kv_heads (%lld) must be 0 (= n_heads) or a positive divisor of "
                   "n_heads (%lld)",
                   what, (long long)o->n_kv_heads, (long long)n_heads);
    return false;
  }
  if (o->kv_dim < 0) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name, "%s: kv_dim must be >= 0, got %lld", what,
                   (long long)o->kv_dim);
    return false;
  }
  if (!(o->dropout >= 0 && o->dropout < 1)) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name, "%s: dropout must be in [0, 1), got %g", what,
                   o->dropout);
    return false;
  }
  if (o->pos != ASG_POS_NONE && o->pos != ASG_POS_ROPE && o->pos != ASG_POS_ALIBI) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                   "%s: pos must be ASG_POS_NONE, ASG_POS_ROPE or ASG_POS_ALIBI (add "
                   "sinusoidal/learned encodings to the input with asg_nn_posenc)",
                   what);
    return false;
  }
  if (o->pos == ASG_POS_ROPE && (d_model / n_heads) % 2) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name, "%s: RoPE needs an even head dim, got %lld", what,
                   (long long)(d_model / n_heads));
    return false;
  }
  double base = o->rope_base != 0 ? o->rope_base : 10000.0;
  if (!(base > 0) || isinf(base)) {
    asg_graph_fail(g, ASG_ERR_INVALID, l->name, "%s: rope_base must be > 0, got %g", what, base);
    return false;
  }
  l->i[0] = d_model;
  l->i[1] = n_heads;
  l->i[2] = o->causal;
  l->i[3] = o->pos;
  l->i[5] = hkv;
  l->i[6] = o->kv_dim ? o->kv_dim : d_model;
  l->f[0] = o->dropout;
  l->f[1] = base;
  return true;
}

asg_layer *asg_nn_mha(asg_graph *g, const char *name, int64_t d_model, int64_t n_heads,
                      const asg_attention_opts *o) {
  asg_attention_opts d = {0};
  char nb[512];
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, mha_apply);
  if (!l || !attn_settings(l, d_model, n_heads, o, "mha")) return NULL;
  if (l->i[6] != d_model)
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "mha: kv_dim (%lld) is for cross-attention (asg_nn_cross_attention); self-attention "
        "needs 0 or d_model (%lld)",
        (long long)o->kv_dim, (long long)d_model);
  if (!alloc_children(l, 4)) return NULL;
  asg_linear_opts lo = {.no_bias = o->no_bias};
  const int64_t kvd = l->i[5] * (d_model / n_heads); /* n_kv_heads * head dim */
  static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  static const char *fused[2] = {"qkv_proj", "out_proj"};
  const int n = o->fused_qkv ? 2 : 4;
  for (int i = 0; i < n; i++) {
    int64_t out = d_model;
    if (o->fused_qkv && i == 0) out = d_model + 2 * kvd;
    if (!o->fused_qkv && (i == 1 || i == 2)) out = kvd;
    const char *nm = o->fused_qkv ? fused[i] : proj[i];
    if (!add_child(l, asg_nn_linear_ex(g, sub(nb, sizeof nb, l->name, nm), d_model, out, &lo)))
      return NULL;
  }
  return l;
}

asg_layer *asg_nn_cross_attention(asg_graph *g, const char *name, int64_t d_model, int64_t n_heads,
                                  const asg_attention_opts *o) {
  asg_attention_opts d = {0};
  char nb[512];
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, cross_apply_no_context);
  if (!l) return NULL;
  l->i[7] = 1; /* cross-attention, for messages */
  if (!attn_settings(l, d_model, n_heads, o, "cross_attention")) return NULL;
  if (o->causal)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "cross_attention: causal is not supported: the queries "
                                       "and the context are different sequences");
  if (o->pos != ASG_POS_NONE)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "cross_attention: pos must be ASG_POS_NONE: RoPE and "
                                       "ALiBi need queries and keys on one position axis");
  if (o->fused_qkv)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "cross_attention: fused_qkv is not supported: q is "
                                       "projected from the input, k and v from the context");
  if (!alloc_children(l, 4)) return NULL;
  asg_linear_opts lo = {.no_bias = o->no_bias};
  const int64_t kvd = l->i[5] * (d_model / n_heads), kv_in = l->i[6];
  if (!add_child(
          l, asg_nn_linear_ex(g, sub(nb, sizeof nb, l->name, "q_proj"), d_model, d_model, &lo)) ||
      !add_child(l, asg_nn_linear_ex(g, sub(nb, sizeof nb, l->name, "k_proj"), kv_in, kvd, &lo)) ||
      !add_child(l, asg_nn_linear_ex(g, sub(nb, sizeof nb, l->name, "v_proj"), kv_in, kvd, &lo)) ||
      !add_child(
          l, asg_nn_linear_ex(g, sub(nb, sizeof nb, l->name, "out_proj"), d_model, d_model, &lo)))
    return NULL;
  return l;
}

/* ---- feed-forward ---- */
static asg_tensor *seq_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  for (int i = 0; i < l->n_children && x; i++)
    x = child(l, l->children[i], x, NULL);
  return x;
}

asg_layer *asg_nn_feedforward(asg_graph *g, const char *name, int64_t d_model, int64_t hidden,
                              asg_activation act, double dropout) {
  char nb[512];
  asg_layer *l = asg__layer_new(g, name, seq_apply);
  if (!l) return NULL;
  if (!(dropout >= 0 && dropout < 1))
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "feedforward: dropout must be in [0, 1), got %g", dropout);
  if ((int)act < ASG_ACT_RELU || act > ASG_ACT_IDENTITY)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "feedforward: unknown activation %d", (int)act);
  if (!alloc_children(l, 4)) return NULL;
  if (!add_child(l, asg_nn_linear(g, sub(nb, sizeof nb, l->name, "fc1"), d_model, hidden)) ||
      !add_child(l, asg_nn_activation(g, sub(nb, sizeof nb, l->name, "act"), act)) ||
      !add_child(l, asg_nn_linear(g, sub(nb, sizeof nb, l->name, "fc2"), hidden, d_model)))
    return NULL;
  if (dropout > 0 &&
      !add_child(l, asg_nn_dropout(g, sub(nb, sizeof nb, l->name, "dropout"), dropout)))
    return NULL;
  return l;
}

/* ---- pre-LN transformer block ---- */
static asg_tensor *block_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  asg_layer **c = l->children;
  /* a block for asg_compile_opts.checkpoint_blocks (its children's scopes are "<name>.*") */
  asg_status st = asg_graph_declare_block(l->g, asg_scope_current(l->g));
  if (st) return asg_graph_fail(l->g, st, l->name, "%s", asg_last_error());
  asg_tensor *a = child(l, c[1], child(l, c[0], x, NULL), mask);
  if (l->n_children > 4) a = child(l, c[4], a, NULL);
  x = asg_add(x, a);
  if (!x) return NULL;
  return asg_add(x, child(l, c[3], child(l, c[2], x, NULL), NULL));
}

asg_layer *asg_nn_transformer_block(asg_graph *g, const char *name, int64_t d_model,
                                    int64_t n_heads, int64_t ffn_hidden,
                                    const asg_attention_opts *o, double dropout) {
  char nb[512];
  asg_layer *l = asg__layer_new(g, name, block_apply);
  if (!l) return NULL;
  if (!(dropout >= 0 && dropout < 1))
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "transformer_block: dropout must be in [0, 1), got %g",
                                       dropout);
  if (!alloc_children(l, 5)) return NULL;
  if (!add_child(l, asg_nn_layernorm(g, sub(nb, sizeof nb, l->name, "ln1"), d_model, 0)) ||
      !add_child(l, asg_nn_mha(g, sub(nb, sizeof nb, l->name, "attn"), d_model, n_heads, o)) ||
      !add_child(l, asg_nn_layernorm(g, sub(nb, sizeof nb, l->name, "ln2"), d_model, 0)) ||
      !add_child(l, asg_nn_feedforward(g, sub(nb, sizeof nb, l->name, "ffn"), d_model, ffn_hidden,
                                       ASG_ACT_GELU, dropout)))
    return NULL;
  if (dropout > 0 &&
      !add_child(l, asg_nn_dropout(g, sub(nb, sizeof nb, l->name, "drop1"), dropout)))
    return NULL;
  return l;
}

/* ---- positional encodings added to the input ---- */
static asg_tensor *posenc_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  char b1[64];
  asg_graph *g = l->g;
  asg_shape xs = asg_tensor_shape(x);
  int64_t L = l->i[1], D = l->i[2];
  if (xs.ndim < 2 || xs.dims[xs.ndim - 1] != D)
    return asg_graph_fail(g, ASG_ERR_SHAPE, "posenc", "input %s must be [..., T, %lld]",
                          asg_graph_shape_str(g, xs, b1, sizeof b1), (long long)D);
  int64_t Tx = xs.dims[xs.ndim - 2], T = table_len(g, Tx, L, "posenc");
  if (T < 1) return NULL;
  if (T > L)
    return asg_graph_fail(g, ASG_ERR_SHAPE, "posenc", "input %s has T = %lld > max_len %lld",
                          asg_graph_shape_str(g, xs, b1, sizeof b1), (long long)T, (long long)L);
  if (!asg_dtype_is_float(asg_tensor_dtype(x)))
    return asg_graph_fail(g, ASG_ERR_DTYPE, "posenc", "input must be floating point, got %s",
                          asg_dtype_name(asg_tensor_dtype(x)));
  if (l->i[0] == ASG_POS_NONE) return x;
  asg_tensor *pe;
  if (l->i[0] == ASG_POS_LEARNED) {
    pe = as_dtype(asg__slice_dims(asg_layer_param(l, "weight"), 0, 0, Tx, 1), x);
  } else {
    /* "Attention is all you need": PE[t, 2i] = sin(t / 10000^(2i/d)),
     * PE[t, 2i+1] = cos(t / 10000^(2i/d)) */
    double *v = dbuf(g, T * D);
    if (!v) return NULL;
    for (int64_t t = 0; t < T; t++)
      for (int64_t i = 0; i < D; i++) {
        double ang = (double)t / pow(10000.0, (double)(i - i % 2) / (double)D);
        v[t * D + i] = i % 2 ? cos(ang) : sin(ang);
      }
    pe = first_rows(konst(g, asg_tensor_dtype(x), ASG_SHAPE(T, D), v), 0, Tx, T);
    free(v);
  }
  return asg_add(x, pe);
}

asg_layer *asg_nn_posenc(asg_graph *g, const char *name, asg_posenc kind, int64_t max_len,
                         int64_t d_model) {
  asg_layer *l = asg__layer_new(g, name, posenc_apply);
  if (!l) return NULL;
  if (kind != ASG_POS_NONE && kind != ASG_POS_SINUSOIDAL && kind != ASG_POS_LEARNED)
    return (asg_layer *)asg_graph_fail(
        g, ASG_ERR_INVALID, l->name,
        "posenc: kind must be NONE, SINUSOIDAL or LEARNED (RoPE and ALiBi act inside attention: "
        "set asg_attention_opts.pos)");
  if (max_len < 1 || d_model < 1)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "posenc: max_len (%lld) and d_model (%lld) must be >= 1",
                                       (long long)max_len, (long long)d_model);
  l->i[0] = kind;
  l->i[1] = max_len;
  l->i[2] = d_model;
  if (kind == ASG_POS_LEARNED &&
      !asg__layer_param(l, "weight", ASG_F32, ASG_SHAPE(max_len, d_model), asg_init_normal(0, 0.02),
                        true))
    return NULL;
  return l;
}
