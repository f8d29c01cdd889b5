/* Shared by the language-model files: the forward pass with a KV cache. */
#ifndef ASG_LM_INTERNAL_H
#define ASG_LM_INTERNAL_H

#include "asg/asg.h"
#include "core/internal.h"

/* Cached attention. Layer l's keys and values live in the variables
 * "cache.<l>.k" / "cache.<l>.v" [batch, n_kv_head, len, head_dim]; each step
 * writes its T new rows at `pos` (asg_cache_write).
 *  prefill (decode false): attention over the step's own keys, causal, with
 *    the inputs' key_mask [B, T] (left padding); pos is 0.
 *  decode (true, T = 1): attention over the whole cache after the write, not
 *    causal, with key_mask [B, len] marking the rows written so far. */
typedef struct asg__lm_cache {
  asg_tensor *pos; /* I32 [1] */
  int64_t batch, len;
  bool decode;
  asg_tensor **writes; /* out: 2 * n_layer cache writes (outputs of a prefill) */
} asg__lm_cache;

/* The final normalized hidden states [B, T, d_model]. cache may be NULL;
 * with a cache (a generator, whose weights are loaded) new variables start
 * at zero instead of random. */
asg_tensor *asg__lm_hidden(asg_graph *g, const asg_lm_config *c, asg_dtype dt,
                           const asg_lm_inputs *in, asg__lm_cache *cache);
/* Logits [..., V] of hidden states [..., d_model]. */
asg_tensor *asg__lm_head(asg_graph *g, const asg_lm_config *c, asg_dtype dt, asg_tensor *h,
                         bool zero_init);

#endif
