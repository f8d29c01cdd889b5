/* Language-model configs: from a Hugging Face config.json, checks, and the
 * checkpoint name rules of each family. */
#include <string.h>

#include "asg/lm.h"
#include "core/internal.h"

static int64_t get_int(const asg_hf_config *h, const char *key, int64_t dflt) {
  int64_t v;
  return asg_hf_config_int(h, key, &v) ? v : dflt;
}

static double get_float(const asg_hf_config *h, const char *key, double dflt) {
  double v;
  return asg_hf_config_float(h, key, &v) ? v : dflt;
}

static bool get_bool(const asg_hf_config *h, const char *key, bool dflt) {
  bool v;
  return asg_hf_config_bool(h, key, &v) ? v : dflt;
}

static asg_status gpt2_config(const asg_hf_config *h, const char *path, asg_lm_config *c) {
  const char *act = asg_hf_config_str(h, "activation_function");
  if (act && strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh"))
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "%s: activation_function \"%s\" (GPT-2 models: gelu_new)", path, act);
  if (get_bool(h, "scale_attn_by_inverse_layer_idx", false) ||
      get_bool(h, "reorder_and_upcast_attn", false) || !get_bool(h, "scale_attn_weights", true))
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "%s: scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn / "
                      "scale_attn_weights=false are not supported",
                      path);
  c->arch = ASG_LM_GPT2;
  c->vocab_size = get_int(h, "vocab_size", 50257);
  c->n_layer = get_int(h, "n_layer", 12);
  c->d_model = get_int(h, "n_embd", 768);
  c->n_head = get_int(h, "n_head", 12);
  c->n_kv_head = c->n_head;
  c->d_ff = get_int(h, "n_inner", 0);
  c->max_pos = get_int(h, "n_positions", 1024);
  c->norm_eps = get_float(h, "layer_norm_epsilon", 1e-5);
  c->tie_embeddings = true;
  c->bos_id = (int32_t)get_int(h, "bos_token_id", -1);
  c->eos_id = (int32_t)get_int(h, "eos_token_id", -1);
  return ASG_OK;
}

static asg_status llama_config(const asg_hf_config *h, const char *path, asg_lm_config *c) {
  const char *act = asg_hf_config_str(h, "hidden_act");
  if (act && strcmp(act, "silu"))
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" (Llama models: silu)", path, act);
  /* transformers < 5: rope_theta and rope_scaling; 5: rope_parameters */
  const char *rt = asg_hf_config_str(h, "rope_parameters.rope_type");
  if (asg_hf_config_str(h, "rope_scaling.type") || asg_hf_config_str(h, "rope_scaling.rope_type") ||
      (rt && strcmp(rt, "default")))
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: rope scaling (%s) is not supported", path,
                      rt ? rt : "rope_scaling");
  int64_t window;
  if (asg_hf_config_int(h, "sliding_window", &window) && get_bool(h, "use_sliding_window", true))
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: sliding_window attention is not supported", path);
  c->arch = ASG_LM_LLAMA;
  c->vocab_size = get_int(h, "vocab_size", 32000);
  c->n_layer = get_int(h, "num_hidden_layers", 32);
  c->d_model = get_int(h, "hidden_size", 4096);
  c->n_head = get_int(h, "num_attention_heads", 32);
  c->n_kv_head = get_int(h, "num_key_value_heads", c->n_head);
  c->head_dim = get_int(h, "head_dim", 0);
  c->d_ff = get_int(h, "intermediate_size", 11008);
  c->max_pos = get_int(h, "max_position_embeddings", 2048);
  c->norm_eps = get_float(h, "rms_norm_eps", 1e-6);
  c->rope_base = get_float(h, "rope_parameters.rope_theta", get_float(h, "rope_theta", 10000.0));
  c->tie_embeddings = get_bool(h, "tie_word_embeddings", false);
  c->attn_bias = get_bool(h, "attention_bias", false);
  c->mlp_bias = get_bool(h, "mlp_bias", false);
  c->bos_id = (int32_t)get_int(h, "bos_token_id", -1);
  c->eos_id = (int32_t)get_int(h, "eos_token_id", -1);
  return ASG_OK;
}

asg_status asg_lm_config_load(const char *path, asg_lm_config *c) {
  if (!path || !c) return asg__error(ASG_ERR_INVALID, "asg_lm_config_load: NULL argument");
  asg_hf_config *h = asg_hf_config_load(path);
  if (!h) return asg__last_status();
  asg_lm_config t;
  memset(&t, 0, sizeof t);
  const char *type = asg_hf_config_str(h, "model_type");
  asg_status st;
  if (!type)
    st = asg__error(ASG_ERR_FORMAT, "%s: config has no model_type", path);
  else if (!strcmp(type, "gpt2"))
    st = gpt2_config(h, path, &t);
  else if (!strcmp(type, "llama") || !strcmp(type, "mistral"))
    st = llama_config(h, path, &t);
  else
    st = asg__error(ASG_ERR_UNSUPPORTED, "%s: model_type \"%s\" (supported: gpt2, llama, mistral)",
                    path, type);
  asg_hf_config_free(h);
  if (st == ASG_OK) st = asg_lm_config_check(&t);
  if (st == ASG_OK) *c = t;
  return st;
}

asg_status asg_lm_config_check(const asg_lm_config *c) {
  if (!c) return asg__error(ASG_ERR_INVALID, "asg_lm_config_check: NULL config");
  if (c->arch != ASG_LM_GPT2 && c->arch != ASG_LM_LLAMA)
    return asg__error(ASG_ERR_INVALID, "lm config: arch %d is not ASG_LM_GPT2 or ASG_LM_LLAMA",
                      (int)c->arch);
  const struct {
    const char *name;
    int64_t v, max;
  } sz[] = {{"vocab_size", c->vocab_size, INT32_MAX}, {"n_layer", c->n_layer, 4096},
            {"d_model", c->d_model, 1 << 20},         {"n_head", c->n_head, 4096},
            {"n_kv_head", c->n_kv_head, 4096},        {"max_pos", c->max_pos, 1 << 24}};
  for (size_t i = 0; i < sizeof sz / sizeof *sz; i++)
    if (sz[i].v < 1 || sz[i].v > sz[i].max)
      return asg__error(ASG_ERR_INVALID, "lm config: %s = %lld must be in [1, %lld]", sz[i].name,
                        (long long)sz[i].v, (long long)sz[i].max);
  if (c->n_head % c->n_kv_head)
    return asg__error(ASG_ERR_INVALID, "lm config: n_head %lld is not a multiple of n_kv_head %lld",
                      (long long)c->n_head, (long long)c->n_kv_head);
  if (c->head_dim < 0 || c->d_ff < 0 || (c->head_dim == 0 && c->d_model % c->n_head))
    return asg__error(
        ASG_ERR_INVALID, "lm config: head_dim %lld / d_ff %lld invalid (d_model %lld, n_head %lld)",
        (long long)c->head_dim, (long long)c->d_ff, (long long)c->d_model, (long long)c->n_head);
  if (c->arch == ASG_LM_GPT2 && c->n_kv_head != c->n_head)
    return asg__error(ASG_ERR_INVALID, "lm config: GPT-2 has n_kv_head = n_head");
  if (c->arch == ASG_LM_GPT2 && c->head_dim && c->head_dim * c->n_head != c->d_model)
    return asg__error(ASG_ERR_INVALID, "lm config: GPT-2 has head_dim * n_head = d_model");
  int64_t dh = c->head_dim ? c->head_dim : c->d_model / c->n_head;
  if (c->arch == ASG_LM_LLAMA && (dh % 2 || !(c->rope_base > 1.0)))
    return asg__error(ASG_ERR_INVALID,
                      "lm config: rotary positions need an even head_dim (%lld) and rope_base > 1 "
                      "(%g)",
                      (long long)dh, c->rope_base);
  if (c->arch == ASG_LM_LLAMA && c->d_ff < 1)
    return asg__error(ASG_ERR_INVALID, "lm config: Llama needs d_ff >= 1");
  if (!(c->norm_eps > 0) || c->norm_eps > 1)
    return asg__error(ASG_ERR_INVALID, "lm config: norm_eps %g must be in (0, 1]", c->norm_eps);
  return ASG_OK;
}

/* Names after the "transformer." prefix that GPT2LMHeadModel writes (the
 * original OpenAI checkpoints have none; loads strip it). Conv1D weights
 * are [in, out] in the file. */
static const asg_hf_rule gpt2_rules[] = {
    {.from = "h.*.attn.c_attn.weight", .to = "h.*.attn.c_attn.weight", .transpose = true},
    {.from = "h.*.attn.c_proj.weight", .to = "h.*.attn.c_proj.weight", .transpose = true},
    {.from = "h.*.mlp.c_fc.weight", .to = "h.*.mlp.c_fc.weight", .transpose = true},
    {.from = "h.*.mlp.c_proj.weight", .to = "h.*.mlp.c_proj.weight", .transpose = true},
    {.from = "h.*.attn.bias", .to = NULL},        /* causal-mask buffers */
    {.from = "h.*.attn.masked_bias", .to = NULL}, /* of older checkpoints */
    {.from = "lm_head.weight", .to = NULL},       /* tied to wte */
};

const asg_hf_rule *asg_lm_hf_rules(asg_lm_arch arch, int *n) {
  if (arch == ASG_LM_GPT2) {
    if (n) *n = (int)(sizeof gpt2_rules / sizeof *gpt2_rules);
    return gpt2_rules;
  }
  if (n) *n = 0; /* Llama: the checkpoint names are the variables' names */
  return NULL;
}
