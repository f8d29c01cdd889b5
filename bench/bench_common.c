/* What the benchmarks share (bench_common.h). */
#include "bench_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bench_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, bench_cmp);
  return t[n / 2];
}

asg_tensor *bench_mlp_logits(asg_graph *g, asg_tensor *x) {
  asg_layer *l[] = {asg_nn_linear(g, "fc1", 784, 512), asg_nn_activation(g, "r1", ASG_ACT_RELU),
                    asg_nn_linear(g, "fc2", 512, 512), asg_nn_activation(g, "r2", ASG_ACT_RELU),
                    asg_nn_linear(g, "fc3", 512, 10)};
  return asg_layer_apply(asg_nn_sequential(g, "mlp", 5, l), x);
}

asg_tensor *bench_cnn_logits(asg_graph *g, asg_tensor *x) {
  asg_conv_params same = {.padding = {1, 1}};
  asg_pool_params pool = {.kernel = {2, 2}};
  asg_layer *l[] = {asg_nn_conv2d(g, "conv1", 1, 32, 3, 3, same, false),
                    asg_nn_batchnorm(g, "bn1", 32, 0, 0),
                    asg_nn_activation(g, "relu1", ASG_ACT_RELU),
                    asg_nn_maxpool2d(g, "pool1", pool),
                    asg_nn_conv2d(g, "conv2", 32, 64, 3, 3, same, false),
                    asg_nn_batchnorm(g, "bn2", 64, 0, 0),
                    asg_nn_activation(g, "relu2", ASG_ACT_RELU),
                    asg_nn_maxpool2d(g, "pool2", pool),
                    asg_nn_flatten(g, "flatten", 1),
                    asg_nn_linear(g, "fc1", 64 * 7 * 7, 128),
                    asg_nn_activation(g, "relu3", ASG_ACT_RELU),
                    asg_nn_linear(g, "fc2", 128, 10)};
  return asg_layer_apply(asg_nn_sequential(g, "cnn", 12, l), x);
}

asg_tensor *bench_gpt_logits(asg_graph *g, asg_tensor *tokens) {
  asg_attention_opts ao = {.causal = true};
  asg_tensor *h =
      asg_layer_apply(asg_nn_embedding(g, "wte", BENCH_GPT_VOCAB, BENCH_GPT_DIM), tokens);
  h = asg_layer_apply(asg_nn_posenc(g, "wpe", ASG_POS_LEARNED, BENCH_GPT_CTX, BENCH_GPT_DIM), h);
  for (int i = 0; i < BENCH_GPT_LAYERS; i++) {
    char name[32];
    snprintf(name, sizeof name, "block%d", i);
    h = asg_layer_apply(asg_nn_transformer_block(g, name, BENCH_GPT_DIM, BENCH_GPT_HEADS,
                                                 4 * BENCH_GPT_DIM, &ao, 0.0),
                        h);
  }
  h = asg_layer_apply(asg_nn_layernorm(g, "ln_f", BENCH_GPT_DIM, 0), h);
  return asg_layer_apply(asg_nn_linear(g, "head", BENCH_GPT_DIM, BENCH_GPT_VOCAB), h);
}
