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

/* Parameter dtypes: every layer with parameters takes f32 (the default) or
 * f64 through its options' dtype. f16 and bf16 are refused (ASG_ERR_DTYPE
 * naming the layer): the ops compute in f32/f64 only, and F16/BF16 weight
 * files load into f32 variables (asg_program_load_variables converts).
 * Parameters are cast to the activations' dtype when they differ. */

/* ---- convolutions (PyTorch layouts and default init) ---- */
typedef struct asg_conv_opts {
  bool no_bias;
  asg_dtype dtype; /* of weight and bias; 0 = ASG_F32 */
} asg_conv_opts;
/* W [out, in/groups, kh, kw], bias [out]. */
ASG_API asg_layer *asg_nn_conv2d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                 int kh, int kw, asg_conv_params p, bool bias);
/* W [in, out/groups, kh, kw], bias [out]. */
ASG_API asg_layer *asg_nn_conv_transpose2d(asg_graph *g, const char *name, int64_t in_ch,
                                           int64_t out_ch, int kh, int kw, asg_conv_params p,
                                           bool bias);
/* The same with options (o may be NULL: bias, f32). */
ASG_API asg_layer *asg_nn_conv2d_ex(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                    int kh, int kw, asg_conv_params p, const asg_conv_opts *o);
ASG_API asg_layer *asg_nn_conv_transpose2d_ex(asg_graph *g, const char *name, int64_t in_ch,
                                              int64_t out_ch, int kh, int kw, asg_conv_params p,
                                              const asg_conv_opts *o);
/* PyTorch's Conv1d on [N, in, L] -> [N, out, OL]: W [out, in/groups, k],
 * bias [out] (o may be NULL: bias, f32). Runs asg_conv1d. */
ASG_API asg_layer *asg_nn_conv1d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                 int k, asg_conv1d_params p, const asg_conv_opts *o);
/* PyTorch's ConvTranspose1d: W [in, out/groups, k], bias [out]. */
ASG_API asg_layer *asg_nn_conv_transpose1d(asg_graph *g, const char *name, int64_t in_ch,
                                           int64_t out_ch, int k, asg_conv1d_params p,
                                           const asg_conv_opts *o);
/* PyTorch's Conv3d / ConvTranspose3d on [N, in, D, H, W]: W [out, in/groups,
 * k[0], k[1], k[2]] (transposed: [in, out/groups, ...]), bias [out] (o may
 * be NULL: bias, f32). Runs asg_conv3d / asg_conv_transpose3d. */
ASG_API asg_layer *asg_nn_conv3d(asg_graph *g, const char *name, int64_t in_ch, int64_t out_ch,
                                 const int k[3], asg_conv3d_params p, const asg_conv_opts *o);
ASG_API asg_layer *asg_nn_conv_transpose3d(asg_graph *g, const char *name, int64_t in_ch,
                                           int64_t out_ch, const int k[3], asg_conv3d_params p,
                                           const asg_conv_opts *o);

/* ---- normalization ---- */
typedef struct asg_batchnorm_opts {
  double momentum; /* 0 means 0.1 (must stay 0 with cumulative) */
  double eps;      /* 0 means 1e-5 */
  bool cumulative; /* PyTorch's momentum=None: the running statistics are the
                      plain average over the batches so far (factor
                      1/num_batches_tracked) */
  bool no_affine;  /* PyTorch's affine=False: no weight, bias */
  asg_dtype dtype; /* of weight, bias and running statistics; 0 = ASG_F32 */
} asg_batchnorm_opts;
/* Batch norm over [N, C] or [N, C, ...]: weight, bias [C]; frozen
 * running_mean, running_var [C] and num_batches_tracked (i64 scalar, as
 * PyTorch names it), which training graphs update through
 * asg_graph_add_update: count + 1, stats = (1-m) stats + m batch with m the
 * momentum or 1/(count + 1) (cumulative). Loading a file without
 * "<name>.num_batches_tracked" (saved before it existed) sets it to 0. */
ASG_API asg_layer *asg_nn_batchnorm_ex(asg_graph *g, const char *name, int64_t channels,
                                       const asg_batchnorm_opts *o);
/* asg_nn_batchnorm_ex with {momentum, eps}: momentum 0 means 0.1, eps 0
 * means 1e-5. */
ASG_API asg_layer *asg_nn_batchnorm(asg_graph *g, const char *name, int64_t channels,
                                    double momentum, double eps);
typedef struct asg_norm_opts {
  double eps;      /* 0: the layer's default */
  asg_dtype dtype; /* of the parameters; 0 = ASG_F32 */
} asg_norm_opts;
/* Over the last dim; eps 0 means 1e-5. */
ASG_API asg_layer *asg_nn_layernorm(asg_graph *g, const char *name, int64_t dim, double eps);
ASG_API asg_layer *asg_nn_layernorm_ex(asg_graph *g, const char *name, int64_t dim,
                                       const asg_norm_opts *o);
/* x * rsqrt(mean(x^2) + eps) * weight over the last dim; eps 0 means 1e-6. */
ASG_API asg_layer *asg_nn_rmsnorm(asg_graph *g, const char *name, int64_t dim, double eps);
ASG_API asg_layer *asg_nn_rmsnorm_ex(asg_graph *g, const char *name, int64_t dim,
                                     const asg_norm_opts *o);
typedef struct asg_groupnorm_opts {
  double eps;      /* 0 means 1e-5 */
  bool no_affine;  /* PyTorch's affine=False: no weight, bias */
  asg_dtype dtype; /* 0 = ASG_F32 */
} asg_groupnorm_opts;
/* PyTorch's GroupNorm(num_groups, channels) on [N, C, ...] (rank >= 2):
 * each sample's C channels split into num_groups groups (which must divide
 * C), each normalized over its channels and positions with the biased
 * variance, then * weight [C] (= 1) + bias [C] (= 0). o may be NULL. */
ASG_API asg_layer *asg_nn_groupnorm(asg_graph *g, const char *name, int64_t num_groups,
                                    int64_t channels, const asg_groupnorm_opts *o);
typedef struct asg_instancenorm_opts {
  double eps;      /* 0 means 1e-5 */
  bool affine;     /* PyTorch's affine=True: weight [C] (= 1), bias [C] (= 0) */
  asg_dtype dtype; /* 0 = ASG_F32 */
} asg_instancenorm_opts;
/* PyTorch's InstanceNorm1d/2d/3d (track_running_stats=False, the default;
 * running statistics are not supported) on [N, C, L], [N, C, H, W] or
 * [N, C, D, H, W]: each sample's channel normalized over its positions
 * (more than one). Unbatched [C, ...] inputs are not accepted. */
ASG_API asg_layer *asg_nn_instancenorm(asg_graph *g, const char *name, int64_t channels,
                                       const asg_instancenorm_opts *o);

/* ---- embedding ---- */
typedef struct asg_embedding_opts {
  asg_dtype dtype; /* of the table; 0 = ASG_F32 */
} asg_embedding_opts;
/* weight [num, dim] ~ N(0, 1); apply takes integer indices [...] -> [..., dim]
 * of the table's dtype. */
ASG_API asg_layer *asg_nn_embedding(asg_graph *g, const char *name, int64_t num, int64_t dim);
ASG_API asg_layer *asg_nn_embedding_ex(asg_graph *g, const char *name, int64_t num, int64_t dim,
                                       const asg_embedding_opts *o);

/* ---- other layers ---- */
ASG_API asg_layer *asg_nn_dropout(asg_graph *g, const char *name, double p);
ASG_API asg_layer *asg_nn_maxpool2d(asg_graph *g, const char *name, asg_pool_params p);
ASG_API asg_layer *asg_nn_avgpool2d(asg_graph *g, const char *name, asg_pool_params p);
ASG_API asg_layer *asg_nn_adaptive_avgpool2d(asg_graph *g, const char *name, int oh, int ow);
ASG_API asg_layer *asg_nn_flatten(asg_graph *g, const char *name, int start_axis);
/* asg_upsample with fixed settings (PyTorch's nn.Upsample). */
ASG_API asg_layer *asg_nn_upsample(asg_graph *g, const char *name, asg_upsample_params p);
/* asg_pad with fixed pads (n values, copied), mode and value (PyTorch's
 * nn.ConstantPad2d / ReflectionPad2d / ReplicationPad2d and their kin). */
ASG_API asg_layer *asg_nn_pad(asg_graph *g, const char *name, const int64_t *pads, int n,
                              asg_pad_mode mode, double value);

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

/* ---- recurrent layers (docs/layers.md) ---- */
typedef struct asg_rnn_opts {
  int num_layers;     /* stacked layers; 0 means 1 (with biases at most 16, 8 bidirectional) */
  bool bidirectional; /* a backward direction per layer: parameters "..._reverse" */
  bool batch_first;   /* x [B, T, in] and output [B, T, D*H]; else [T, B, in] */
  bool no_bias;       /* PyTorch's bias=False */
  double dropout;     /* on every layer's output but the last, training graphs only */
  asg_dtype dtype;    /* parameters' dtype; 0 = ASG_F32 */
} asg_rnn_opts;
/* PyTorch's nn.LSTM and nn.GRU: equations, gate order (LSTM i, f, g, o; GRU
 * r, z, n with r applied to (h W_hn^T + b_hn)) and parameters per layer k
 * "<name>.weight_ih_l<k>" [G*H, in] (in = D*H above layer 0),
 * ".weight_hh_l<k>" [G*H, H], ".bias_ih_l<k>", ".bias_hh_l<k>" [G*H], and
 * "..._reverse" for the backward direction (G = 4 LSTM, 3 GRU; D = 2
 * bidirectional, else 1), all ~ U(+-1/sqrt(H)). The graph is unrolled over
 * the sequence length T, which must be a constant (the batch may be
 * symbolic): O(T * layers * D) nodes. asg_layer_apply returns the output
 * sequence with zero initial states. */
ASG_API asg_layer *asg_nn_lstm(asg_graph *g, const char *name, int64_t input_size,
                               int64_t hidden_size, const asg_rnn_opts *o);
ASG_API asg_layer *asg_nn_gru(asg_graph *g, const char *name, int64_t input_size,
                              int64_t hidden_size, const asg_rnn_opts *o);
/* Runs an LSTM or GRU layer on x ([T, B, in], batch_first [B, T, in], or
 * unbatched [T, in]) from initial states h0 and (LSTM only) c0, each
 * [L*D, B, H] ([L*D, H] unbatched) of x's dtype or NULL for zeros. Returns
 * the last layer's states at every step, [T, B, D*H] (batch_first
 * [B, T, D*H]; the forward direction's H features first); *h_n and *c_n (may
 * be NULL; *c_n is set to NULL for a GRU) receive the final states
 * [L*D, B, H] (the backward direction's after its step at t = 0). */
ASG_API asg_tensor *asg_rnn_apply(asg_layer *l, asg_tensor *x, asg_tensor *h0, asg_tensor *c0,
                                  asg_tensor **h_n, asg_tensor **c_n);

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
