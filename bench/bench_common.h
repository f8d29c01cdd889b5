/* What the benchmarks share: a clock, medians, and the MLP, CNN and
 * char-GPT models of bench_train (the MLP and CNN also timed by
 * bench_symbolic). */
#ifndef ASG_BENCH_COMMON_H
#define ASG_BENCH_COMMON_H

#include "asg/asg.h"

/* Seconds on a monotonic clock. */
double bench_now(void);
/* qsort comparator of doubles. */
int bench_cmp(const void *a, const void *b);
/* The median of t[0..n) (sorts t). */
double bench_median(double *t, int n);

/* Logits [B, 10] of the MLP 784-512-512-10 from x [B, 784]. */
asg_tensor *bench_mlp_logits(asg_graph *g, asg_tensor *x);
/* Logits [B, 10] of the Fashion-MNIST example's CNN from x [B, 1, 28, 28]. */
asg_tensor *bench_cnn_logits(asg_graph *g, asg_tensor *x);

/* The default model of examples/char_gpt.c: 4 pre-LN blocks, width 128, 4
 * heads, learned positions over a context of 64, GELU MLP 4x, final
 * layernorm, untied head with bias; vocabulary 114 (what the example gets
 * from its default corpus), batch 16. */
enum {
  BENCH_GPT_LAYERS = 4,
  BENCH_GPT_DIM = 128,
  BENCH_GPT_HEADS = 4,
  BENCH_GPT_CTX = 64,
  BENCH_GPT_VOCAB = 114,
  BENCH_GPT_BATCH = 16
};
/* Logits [B, T, 114] of that model from token ids [B, T] (T <= 64), built as
 * the example's gpt() but with dropout 0 (the example trains with 0.1). */
asg_tensor *bench_gpt_logits(asg_graph *g, asg_tensor *tokens);

#endif
