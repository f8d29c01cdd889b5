/* Pretrained transformer language models: the GPT-2 and Llama families,
 * configured from a Hugging Face config.json, with weights in the Hugging
 * Face layout (asg/hf.h), a KV cache and sampling on the device.
 *
 * Two levels:
 *  - asg_lm_forward adds a model's forward pass to a graph the caller owns
 *    (logits for every position): for fine-tuning with the training stack
 *    or for a custom program. Variables carry the checkpoint's names.
 *  - asg_lm is a ready generator: one graph, three programs sharing the
 *    weights and the cache (prefill of a whole prompt, one-token decode
 *    steps, and a full-sequence forward), and asg_lm_generate.
 *
 * Threads: an asg_lm is used by one thread at a time (its programs follow
 * program.h's rule). */
#ifndef ASG_LM_H
#define ASG_LM_H

#include "asg/hf.h"
#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum asg_lm_arch {
  ASG_LM_GPT2 = 1, /* learned positions, LayerNorm, tanh GELU MLP, tied head */
  ASG_LM_LLAMA = 2 /* RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention */
} asg_lm_arch;

typedef struct asg_lm_config {
  asg_lm_arch arch;
  int64_t vocab_size;
  int64_t n_layer;
  int64_t d_model;        /* hidden size */
  int64_t n_head;         /* query heads */
  int64_t n_kv_head;      /* key/value heads: n_head (MHA), 1 (MQA) or a divisor (GQA) */
  int64_t head_dim;       /* 0: d_model / n_head */
  int64_t d_ff;           /* MLP hidden size (GPT-2: 0 means 4 * d_model) */
  int64_t max_pos;        /* positions the model knows (GPT-2: rows of wpe) */
  double norm_eps;        /* LayerNorm / RMSNorm epsilon */
  double rope_base;       /* Llama rotary base (rope_theta) */
  bool tie_embeddings;    /* head = token embedding (GPT-2 always) */
  bool attn_bias;         /* Llama q/k/v/o biases (attention_bias) */
  bool mlp_bias;          /* Llama MLP biases (mlp_bias) */
  int32_t bos_id, eos_id; /* -1 when the config names none */
} asg_lm_config;

/* Reads config.json (a folder or the file): model_type "gpt2" or "llama"
 * (and "mistral" without sliding window; Qwen2, whose q/k/v have biases but
 * its o_proj none, is not supported).
 * Unsupported settings (rope_scaling, another activation, ...) are
 * ASG_ERR_UNSUPPORTED naming the key. */
ASG_API asg_status asg_lm_config_load(const char *path, asg_lm_config *c);
/* Checks a config (sizes >= 1, heads divide, ...): ASG_ERR_INVALID naming
 * the field. */
ASG_API asg_status asg_lm_config_check(const asg_lm_config *c);

/* The rules that map the model's checkpoint names onto asg_lm_forward's
 * variables (for asg_hf_load / asg_hf_save): GPT-2's Conv1D weights are
 * transposed, its attention buffers ignored. *n receives the count; the
 * array is static. */
ASG_API const asg_hf_rule *asg_lm_hf_rules(asg_lm_arch arch, int *n);

/* ---- the forward pass in a caller's graph ---- */
typedef struct asg_lm_inputs {
  asg_tensor *tokens;    /* [B, T] I32 token ids */
  asg_tensor *positions; /* [B, T] I32 position ids; NULL: 0 .. T-1 */
  asg_tensor *key_mask;  /* [B, T] of the model's dtype: 1 attend, 0 padding; NULL: none */
} asg_lm_inputs;

/* Adds the model (variables named as in the Hugging Face checkpoint, made
 * once per graph and reused by later calls) and returns logits [B, T, V].
 * Attention is causal. T may be a symbolic dim. dtype: ASG_F32 or ASG_F64. */
ASG_API asg_tensor *asg_lm_forward(asg_graph *g, const asg_lm_config *c, asg_dtype dt,
                                   const asg_lm_inputs *in);

/* ---- generation ---- */
typedef struct asg_lm_opts {
  const char *backend; /* "cpu" (default), "cuda", "vulkan" */
  int num_threads;     /* CPU threads (0: default) */
  int max_batch;       /* prompts generated together (0: 1) */
  int max_len;         /* cache length = prompt + generated tokens (0: config max_pos) */
  bool allow_tf32;     /* see asg_compile_opts */
} asg_lm_opts;

typedef struct asg_lm asg_lm;

/* Builds the model and compiles its programs (weights zero until loaded).
 * NULL and asg_last_error() on error. */
ASG_API asg_lm *asg_lm_new(const asg_lm_config *c, const asg_lm_opts *o);
ASG_API void asg_lm_free(asg_lm *m);
/* asg_lm_config_load + asg_lm_new + asg_lm_load_weights of a Hugging Face
 * model folder (config.json and model.safetensors or a sharded index). */
ASG_API asg_lm *asg_lm_load(const char *dir, const asg_lm_opts *o);
/* Loads the weights of a Hugging Face checkpoint (folder or file), strictly:
 * every weight must be there with its shape. */
ASG_API asg_status asg_lm_load_weights(asg_lm *m, const char *path);
/* Saves the weights in the Hugging Face layout (model.safetensors in dir;
 * o may be NULL). config.json is the caller's (copy the original). */
ASG_API asg_status asg_lm_save_weights(asg_lm *m, const char *dir, const asg_hf_save_opts *o);
ASG_API const asg_lm_config *asg_lm_get_config(const asg_lm *m);
/* The program that owns the weights (get/set variables, save, load). */
ASG_API asg_program *asg_lm_program(asg_lm *m);

typedef struct asg_sampling {
  double temperature; /* 0: greedy (argmax) */
  int top_k;          /* 0: off */
  double top_p;       /* 0 or 1: off */
  uint64_t seed;      /* same seed, same prompts, same settings: same tokens */
} asg_sampling;

/* Low level: prompts (n <= max_batch, lengths >= 1, together with the
 * tokens to come at most max_len) are left-padded and run through the
 * model at once, filling the cache; next[i] receives row i's next token
 * (sampled as s says; NULL: greedy). logits, if not NULL, receives the last
 * position's logits [n, V] (copied from the device: slow, for tests). */
ASG_API asg_status asg_lm_prefill(asg_lm *m, int n, const int32_t *const *prompts, const int *lens,
                                  const asg_sampling *s, int32_t *next, float *logits);
/* One decode step: tokens[i] is appended to row i (the n of the last
 * prefill); next and logits as for asg_lm_prefill. A row that has reached
 * max_len is ASG_ERR_INVALID. */
ASG_API asg_status asg_lm_decode(asg_lm *m, const int32_t *tokens, const asg_sampling *s,
                                 int32_t *next, float *logits);
/* Logits [1, T, V] of one sequence through the full-sequence program (no
 * cache): the reference the cached path must agree with. */
ASG_API asg_status asg_lm_logits(asg_lm *m, const int32_t *tokens, int T, float *logits);

/* Called for each generated token of row `row`; return false to stop that
 * row. */
typedef bool (*asg_lm_token_fn)(void *ctx, int row, int32_t token);

typedef struct asg_lm_request {
  int n;                         /* prompts */
  const int32_t *const *prompts; /* n arrays of lens[i] ids */
  const int *lens;
  int max_new_tokens;
  asg_sampling sampling;
  const int32_t *stop_ids; /* a row stops after emitting one of these (kept in out) */
  int n_stop;
  asg_lm_token_fn on_token; /* may be NULL */
  void *ctx;
  int32_t **out; /* NULL or n arrays of max_new_tokens ids */
  int *out_lens; /* NULL or n counts */
} asg_lm_request;

/* Prefill then decode until every row stopped or max_new_tokens. */
ASG_API asg_status asg_lm_generate(asg_lm *m, const asg_lm_request *r);

#ifdef __cplusplus
}
#endif
#endif
