/* Declarative layers. A constructor takes the graph, a name and the
 * layer's dimensions, registers its parameters with the graph as variables
 * named "<name>.<param>" (shape, dtype, initializer: PyTorch's defaults and
 * layouts, so PyTorch state dicts load by name), and returns a handle owned
 * by the graph. Applying a layer adds nodes under the name scope <name>, so
 * build errors read "fc2/matmul: ...". Layers read the graph's training
 * mode (asg_graph_set_training) when applied: dropout is the identity and
 * batch norm uses its running statistics in eval graphs. */
#ifndef ASG_NN_H
#define ASG_NN_H

#include "asg/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_layer asg_layer;

/* ---- every layer ---- */
ASG_API asg_tensor *asg_layer_apply(asg_layer *l, asg_tensor *x);
/* Attention layers and blocks take an optional padding mask [B, T] (1 keep,
 * 0 pad, in the activations' dtype); other layers ignore it. */
ASG_API asg_tensor *asg_layer_apply_masked(asg_layer *l, asg_tensor *x, asg_tensor *mask);
/* A parameter by its short name ("weight", "bias", "running_mean", ...). */
ASG_API asg_tensor *asg_layer_param(const asg_layer *l, const char *short_name);
ASG_API const char *asg_layer_name(const asg_layer *l);
/* Memory owned by the graph (freed with it), for layer implementations. */
ASG_API void *asg_graph_alloc(asg_graph *g, size_t bytes);

/* ---- basic layers ---- */
typedef struct asg_linear_opts {
  bool no_bias;
  asg_dtype dtype;      /* 0 = ASG_F32 */
  const asg_init *init; /* weight initializer; NULL = PyTorch default */
} asg_linear_opts;
/* y = x W^T + b, W [out, in]; x [..., in]. */
ASG_API asg_layer *asg_nn_linear(asg_graph *g, const char *name, int64_t in, int64_t out);
ASG_API asg_layer *asg_nn_linear_ex(asg_graph *g, const char *name, int64_t in, int64_t out,
                                    const asg_linear_opts *o);

/* W [out, in/groups, kh, kw], bias [out]. */
ASG_API asg_layer *asg_nn_conv2d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                 int kh, int kw, asg_conv_params p, bool bias);
/* W [in, out/groups, kh, kw], bias [out]. */
ASG_API asg_layer *asg_nn_conv_transpose2d(asg_graph *g, const char *name, int64_t in_ch,
                                           int64_t out_ch, int kh, int kw, asg_conv_params p,
                                           bool bias);

/* Batch norm over [N, C] or [N, C, ...]: weight, bias, running_mean,
 * running_var (frozen; updated with momentum in training graphs through
 * asg_graph_add_update). momentum 0 means 0.1, eps 0 means 1e-5. */
ASG_API asg_layer *asg_nn_batchnorm(asg_graph *g, const char *name, int64_t channels,
                                    double momentum, double eps);
/* Over the last dim; eps 0 means 1e-5. */
ASG_API asg_layer *asg_nn_layernorm(asg_graph *g, const char *name, int64_t dim, double eps);
/* x * rsqrt(mean(x^2) + eps) * weight over the last dim; eps 0 means 1e-6. */
ASG_API asg_layer *asg_nn_rmsnorm(asg_graph *g, const char *name, int64_t dim, double eps);
/* weight [num, dim] ~ N(0, 1); apply takes integer indices [...] -> [..., dim]. */
ASG_API asg_layer *asg_nn_embedding(asg_graph *g, const char *name, int64_t num, int64_t dim);
ASG_API asg_layer *asg_nn_dropout(asg_graph *g, const char *name, double p);
ASG_API asg_layer *asg_nn_maxpool2d(asg_graph *g, const char *name, asg_pool_params p);
ASG_API asg_layer *asg_nn_avgpool2d(asg_graph *g, const char *name, asg_pool_params p);
ASG_API asg_layer *asg_nn_adaptive_avgpool2d(asg_graph *g, const char *name, int oh, int ow);
ASG_API asg_layer *asg_nn_flatten(asg_graph *g, const char *name, int start_axis);

typedef enum asg_activation {
  ASG_ACT_RELU = 0,
  ASG_ACT_GELU,
  ASG_ACT_GELU_TANH,
  ASG_ACT_TANH,
  ASG_ACT_SIGMOID,
  ASG_ACT_SILU,
  ASG_ACT_IDENTITY
} asg_activation;
ASG_API asg_layer *asg_nn_activation(asg_graph *g, const char *name, asg_activation act);
/* Applies layers in order (the handles stay owned by the graph). */
ASG_API asg_layer *asg_nn_sequential(asg_graph *g, const char *name, int n,
                                     asg_layer *const *layers);

/* ---- attention and transformers ---- */
typedef enum asg_posenc {
  ASG_POS_NONE = 0,
  ASG_POS_SINUSOIDAL, /* added to the input of a model (see asg_nn_posenc) */
  ASG_POS_LEARNED,
  ASG_POS_ROPE, /* rotary, applied to q and k inside attention */
  ASG_POS_ALIBI /* linear biases on attention scores */
} asg_posenc;

typedef struct asg_attention_opts {
  bool causal;
  double dropout;     /* on attention weights, training graphs only */
  bool no_bias;       /* projections without bias */
  asg_posenc pos;     /* ASG_POS_ROPE or ASG_POS_ALIBI act inside attention */
  double rope_base;   /* 0 means 10000 */
  bool fused_qkv;     /* one "<name>.qkv_proj" Linear(d, (H + 2 Hkv) Dh) (q, k, v rows in
                         that order, as GPT-2's c_attn: Linear(d, 3d) without GQA) instead
                         of q_proj, k_proj, v_proj: one product each way, and the split's
                         gradient is one concat. Self-attention only */
  int64_t n_kv_heads; /* 0 = n_heads; fewer = grouped-query attention (1 = multi-query):
                         must divide n_heads; k_proj and v_proj are Linear(in, Hkv * Dh)
                         and kv head j serves query heads j*G .. j*G+G-1, G = H / Hkv
                         (Hugging Face's repeat_kv order) */
  int64_t kv_dim;     /* cross-attention: the context's width (0 = d_model); mha: 0 */
} asg_attention_opts;

/* Multi-head self-attention on x [B, T, d_model]: q/k/v/out projections
 * ("<name>.q_proj", ..., or "<name>.qkv_proj" and "<name>.out_proj" with
 * fused_qkv), H = n_heads heads of Dh = d_model / n_heads, Hkv = n_kv_heads
 * key/value heads. Apply with asg_layer_apply_masked (padding mask [B, T]). */
ASG_API asg_layer *asg_nn_mha(asg_graph *g, const char *name, int64_t d_model, int64_t n_heads,
                              const asg_attention_opts *o);
/* Cross-attention: queries from x [B, Tq, d_model], keys and values from a
 * context [B, Tk, kv_dim] (an encoder's output, say); parameters
 * "<name>.q_proj" Linear(d_model, d_model), ".k_proj" and ".v_proj"
 * Linear(kv_dim, Hkv * Dh), ".out_proj" Linear(d_model, d_model). Not
 * causal; no RoPE/ALiBi; no fused_qkv (each is an error). */
ASG_API asg_layer *asg_nn_cross_attention(asg_graph *g, const char *name, int64_t d_model,
                                          int64_t n_heads, const asg_attention_opts *o);
/* Applies a cross-attention layer: x [B, Tq, d_model], context
 * [B, Tk, kv_dim] of x's dtype, optional context_mask [B, Tk] (1 keep, 0 pad,
 * over the context's positions) -> [B, Tq, d_model]. asg_layer_apply on such
 * a layer is an error (it has no context). */
ASG_API asg_tensor *asg_cross_attention_apply(asg_layer *l, asg_tensor *x, asg_tensor *context,
                                              asg_tensor *context_mask);
/* Linear(d, hidden) -> activation -> Linear(hidden, d) -> dropout. */
ASG_API asg_layer *asg_nn_feedforward(asg_graph *g, const char *name, int64_t d_model,
                                      int64_t hidden, asg_activation act, double dropout);
/* Pre-LN block: x + attn(ln1(x)), then + ffn(ln2(x)). */
ASG_API asg_layer *asg_nn_transformer_block(asg_graph *g, const char *name, int64_t d_model,
                                            int64_t n_heads, int64_t ffn_hidden,
                                            const asg_attention_opts *o, double dropout);
/* Adds positional information to x [B, T, d]: sinusoidal (a constant) or
 * learned ("<name>.weight" [max_len, d]). */
ASG_API asg_layer *asg_nn_posenc(asg_graph *g, const char *name, asg_posenc kind, int64_t max_len,
                                 int64_t d_model);

#ifdef __cplusplus
}
#endif
#endif
