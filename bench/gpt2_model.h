/* The GPT-2 model of the benchmarks (bench/gpt2.c, bench/bench_symbolic.c):
 * shared so that both time the same graph. */
#ifndef ASG_BENCH_GPT2_MODEL_H
#define ASG_BENCH_GPT2_MODEL_H

#include <stdint.h>

#include "asg/asg.h"

typedef struct gpt2_cfg {
  int batch, ctx, layers, dim, heads, vocab;
} gpt2_cfg;

/* tokens [B, T] -> logits [B, T, V]; *wte_out: the embedding layer. B and T
 * may be symbolic dims (T at most c->ctx, the position table's length). */
asg_tensor *gpt2_logits(asg_graph *g, const gpt2_cfg *c, asg_tensor *tokens, asg_layer **wte_out);

/* splitmix64: the benchmarks' random tokens */
uint64_t gpt2_rng_next(uint64_t *s);

/* GPT-2's initialization of the (tied) token embedding "wte.weight":
 * N(0, 0.02) drawn from seed. With nn.Embedding's N(0, 1) the tied logits
 * would start with std sqrt(d). */
asg_status gpt2_init_wte(asg_program *p, const gpt2_cfg *c, uint64_t seed);

#endif
