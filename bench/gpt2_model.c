/* GPT-2 as in bench/gpt2.c's header comment (see gpt2_model.h). */
#include "gpt2_model.h"

#include <stdio.h>
#include <stdlib.h>

#include "asg/nn.h"

asg_tensor *gpt2_logits(asg_graph *g, const gpt2_cfg *c, asg_tensor *tokens, asg_layer **wte_out) {
  /* attention dropout 0; q, k, v from one projection, as PyTorch's model (qkv Linear) */
  asg_attention_opts ao = {.causal = true, .fused_qkv = true};
  asg_layer *wte = asg_nn_embedding(g, "wte", c->vocab, c->dim);
  *wte_out = wte;
  asg_tensor *h = asg_layer_apply(wte, tokens);
  h = asg_layer_apply(asg_nn_posenc(g, "wpe", ASG_POS_LEARNED, c->ctx, c->dim), h);
  for (int i = 0; i < c->layers; i++) {
    char name[32];
    snprintf(name, sizeof name, "h%d", i);
    /* MLP activation: exact GELU (erf), see bench/gpt2.c */
    h = asg_layer_apply(
        asg_nn_transformer_block(g, name, c->dim, c->heads, 4 * (int64_t)c->dim, &ao, 0.0), h);
  }
  h = asg_layer_apply(asg_nn_layernorm(g, "ln_f", c->dim, 0), h);
  /* tied head: [B, T, d] x [V, d]^T */
  return asg_matmul_t(h, asg_layer_param(wte, "weight"), false, true);
}

uint64_t gpt2_rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

asg_status gpt2_init_wte(asg_program *p, const gpt2_cfg *c, uint64_t seed) {
  size_t wn = (size_t)c->vocab * (size_t)c->dim;
  float *w = malloc(sizeof *w * wn);
  if (!w) return ASG_ERR_OOM;
  asg_status st =
      asg_init_fill(asg_init_normal(0, 0.02), ASG_F32, ASG_SHAPE(c->vocab, c->dim), seed, w);
  if (st == ASG_OK) st = asg_program_set_variable(p, "wte.weight", w, sizeof *w * wn);
  free(w);
  return st;
}
