/* GPT-2 small (124M) training-step benchmark; bench/torch_gpt2.py is the
 * same model in PyTorch.
 *
 *   bench_gpt2 [--backend cuda] [--batch 8] [--ctx 1024] [--steps 20]
 *              [--warmup 3] [--layers 12] [--dim 768] [--heads 12]
 *              [--vocab 50304] [--precision fp32|tf32|bf16|fp16]
 *              [--peak-tflops P] [--threads N] [--seed S] [--dry-run]
 *
 * Model: token embedding wte [V, d] and learned positions wpe [T, d] (both
 * N(0, 0.02), as GPT-2), L pre-LN blocks (asg_nn_transformer_block: causal
 * multi-head attention with one qkv projection (fused_qkv) and an out
 * projection, biases, MLP d -> 4d -> d), final LayerNorm, and logits =
 * h @ wte^T (tied embeddings, no separate head). Loss: mean softmax
 * cross-entropy over [B, T, V]. One compiled program runs forward, backward
 * and AdamW (lr 6e-4, weight decay 0.1 on every parameter, PyTorch's betas
 * and eps).
 *
 * NOTE: asg_nn_transformer_block's MLP uses ASG_ACT_GELU, the exact erf form
 * of GELU, not GPT-2's tanh approximation; the PyTorch side uses nn.GELU()
 * (erf) to match. The FLOP count is the same either way.
 *
 * Attention is the fused asg_attention op (flash kernels on CUDA): scores
 * never reach memory.
 *
 * Data: random tokens and targets (fixed seed), fed once. Timing: `warmup`
 * steps, then `steps` timed steps, each asg_program_run followed by
 * asg_program_scalar(loss), which waits for the device. The median is
 * reported. MFU uses 6N + 6*L*d*T FLOPs per token (N = all parameters,
 * tied embedding counted once) against the peak of the chosen precision
 * (H100 SXM dense: fp32 67, TF32 494.5, bf16 989 TFLOP/s) unless
 * --peak-tflops is given; the 989 bf16 peak figure is printed as well.
 *
 * Prints details, then one summary line:
 *   gpt2 backend cuda precision fp32 B 8 T 1024 params 124.5M ms 812.3
 *   tok/s 10086 tflops 7.5 peak 67 mfu 0.112
 * Exit status 77: backend or precision not available. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "bench_common.h"
#include "gpt2_model.h"

static void usage(void) {
  fprintf(stderr, "usage: bench_gpt2 [--backend cuda] [--batch 8] [--ctx 1024] [--steps 20] "
                  "[--warmup 3] [--layers 12] [--dim 768] [--heads 12] [--vocab 50304] "
                  "[--precision fp32|tf32|bf16|fp16] [--peak-tflops P] [--threads N] [--seed S] "
                  "[--dry-run]\n");
}

int main(int argc, char **argv) {
  gpt2_cfg c = {.batch = 8, .ctx = 1024, .layers = 12, .dim = 768, .heads = 12, .vocab = 50304};
  int steps = 20, warmup = 3, threads = 0, dry = 0;
  double peak = 0;
  unsigned long long seed = 1234;
  const char *backend = "cuda", *prec = "fp32";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--dry-run")) {
      dry = 1;
      continue;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h") || i + 1 >= argc) {
      usage();
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(a, "--backend"))
      backend = v;
    else if (!strcmp(a, "--batch"))
      c.batch = atoi(v);
    else if (!strcmp(a, "--ctx"))
      c.ctx = atoi(v);
    else if (!strcmp(a, "--steps"))
      steps = atoi(v);
    else if (!strcmp(a, "--warmup"))
      warmup = atoi(v);
    else if (!strcmp(a, "--layers"))
      c.layers = atoi(v);
    else if (!strcmp(a, "--dim"))
      c.dim = atoi(v);
    else if (!strcmp(a, "--heads"))
      c.heads = atoi(v);
    else if (!strcmp(a, "--vocab"))
      c.vocab = atoi(v);
    else if (!strcmp(a, "--precision"))
      prec = v;
    else if (!strcmp(a, "--peak-tflops"))
      peak = atof(v);
    else if (!strcmp(a, "--threads"))
      threads = atoi(v);
    else if (!strcmp(a, "--seed"))
      seed = strtoull(v, NULL, 10);
    else {
      usage();
      return 2;
    }
  }
  if (c.batch < 1 || c.ctx < 1 || c.layers < 0 || c.dim < 1 || c.heads < 1 || c.vocab < 2 ||
      steps < 1 || warmup < 0) {
    usage();
    return 2;
  }
  bool tf32 = false, bf16 = false, fp16 = false;
  double prec_peak;
  if (!strcmp(prec, "fp32")) {
    prec_peak = 67.0;
  } else if (!strcmp(prec, "tf32")) {
    prec_peak = 494.5;
    tf32 = true; /* asg_compile_opts.allow_tf32: f32 GEMMs on TF32 tensor cores (CUDA) */
    if (strcmp(backend, "cuda") != 0) printf("note: tf32 only affects the cuda backend\n");
  } else if (!strcmp(prec, "fp16")) {
    prec_peak = 989.0;
    fp16 = true; /* fp16_matmul with dynamic loss scaling (asg_optim.loss_scale) */
    if (strcmp(backend, "cuda") != 0) printf("note: fp16 only affects the cuda backend\n");
  } else if (!strcmp(prec, "bf16")) {
    prec_peak = 989.0;
    bf16 = true; /* asg_compile_opts.bf16_matmul: bf16 GEMM operands, f32 storage (CUDA) */
    if (strcmp(backend, "cuda") != 0) printf("note: bf16 only affects the cuda backend\n");
  } else {
    usage();
    return 2;
  }
  if (peak <= 0) peak = prec_peak;
  if (!asg_backend_available(backend)) {
    printf("backend %s unavailable: %s\n", backend, asg_last_error());
    return 77;
  }

  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 7);
  asg_tensor *tok = asg_input(g, "tokens", ASG_I32, ASG_SHAPE(c.batch, c.ctx));
  asg_tensor *tgt = asg_input(g, "targets", ASG_I32, ASG_SHAPE(c.batch, c.ctx));
  asg_layer *wte;
  asg_tensor *logits = gpt2_logits(g, &c, tok, &wte);
  asg_tensor *loss = asg_softmax_cross_entropy(logits, tgt, 0.0, -100);
  if (!loss) {
    fprintf(stderr, "build: %s\n", asg_graph_error(g));
    return 1;
  }
  int64_t nparams = 0; /* trainable variables, before the optimizer adds its state */
  for (int i = 0; i < asg_graph_variable_count(g); i++) {
    asg_tensor *v = asg_graph_variable(g, i);
    if (asg_variable_is_trainable(v)) nparams += asg_shape_numel(asg_tensor_shape(v));
  }
  asg_compile_opts opts = {.backend = backend,
                           .num_threads = threads,
                           .allow_tf32 = tf32,
                           .bf16_matmul = bf16,
                           .fp16_matmul = fp16};
  double tc = bench_now();
  asg_optim optim = asg_adamw(6e-4, 0.1);
  if (fp16) optim.loss_scale = 65536; /* GradScaler's defaults */
  asg_program *p = asg_compile_train(g, loss, optim, 0, NULL, &opts);
  if (!p) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  tc = bench_now() - tc;

  /* GPT-2's initialization of the (tied) token embedding: N(0, 0.02) */
  if (gpt2_init_wte(p, &c, seed) != ASG_OK) {
    fprintf(stderr, "wte init: %s\n", asg_last_error());
    return 1;
  }

  const double GB = 1024.0 * 1024.0 * 1024.0;
  double flops_tok = 6.0 * (double)nparams + 6.0 * c.layers * (double)c.dim * c.ctx;
  printf("model: GPT-2, %d layers, d %d, %d heads, vocab %d, context %d, batch %d; MLP GELU "
         "erf form; tied embeddings; fused causal attention (flash kernels)\n",
         c.layers, c.dim, c.heads, c.vocab, c.ctx, c.batch);
  printf("params %lld (%.2fM); train step: %d kernels; activations (arena) %.2f GiB, "
         "persistent (params, AdamW state, inputs, constants) %.2f GiB; compile %.2f s\n",
         (long long)nparams, nparams / 1e6, asg_program_step_count(p),
         asg_program_peak_memory(p) / GB, asg_program_persistent_memory(p) / GB, tc);
  printf("FLOPs per token 6N + 6*L*d*T = %.4g; peaks (H100 SXM dense): fp32 67, TF32 494.5, "
         "bf16 989 TFLOP/s; MFU below vs %g (%s)\n",
         flops_tok, peak, prec);
  if (dry) {
    asg_program_free(p);
    asg_graph_free(g);
    return 0;
  }

  size_t nb = (size_t)c.batch * (size_t)c.ctx;
  int32_t *x = malloc(sizeof *x * nb), *y = malloc(sizeof *y * nb);
  double *t = malloc(sizeof *t * (size_t)steps);
  if (!x || !y || !t) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  uint64_t s = seed;
  for (size_t i = 0; i < nb; i++)
    x[i] = (int32_t)(gpt2_rng_next(&s) % (uint64_t)c.vocab);
  for (size_t i = 0; i < nb; i++)
    y[i] = (int32_t)(gpt2_rng_next(&s) % (uint64_t)c.vocab);
  if (asg_program_feed(p, "tokens", x, sizeof *x * nb) ||
      asg_program_feed(p, "targets", y, sizeof *y * nb)) {
    fprintf(stderr, "feed: %s\n", asg_last_error());
    return 1;
  }
  double first = NAN, tw = bench_now();
  for (int i = 0; i < warmup; i++) {
    if (asg_program_run(p)) {
      fprintf(stderr, "run: %s\n", asg_last_error());
      return 1;
    }
    if (i == 0) first = asg_program_scalar(p, loss);
  }
  double last = asg_program_scalar(p, loss); /* synchronizes */
  tw = bench_now() - tw;
  for (int i = 0; i < steps; i++) {
    double t0 = bench_now();
    if (asg_program_run(p)) {
      fprintf(stderr, "run: %s\n", asg_last_error());
      return 1;
    }
    last = asg_program_scalar(p, loss); /* includes the device sync, as a training loop would */
    t[i] = bench_now() - t0;
    if (warmup == 0 && i == 0) first = last;
  }
  qsort(t, (size_t)steps, sizeof *t, bench_cmp);
  double med = t[steps / 2], tps = (double)nb / med, tflops = flops_tok * tps / 1e12;
  printf("loss first step %.4f, last %.4f (ln V = %.4f); warm-up %d steps %.2f s; "
         "step ms median %.2f min %.2f max %.2f; MFU vs bf16 989: %.4f\n",
         first, last, log((double)c.vocab), warmup, tw, 1e3 * med, 1e3 * t[0], 1e3 * t[steps - 1],
         tflops / 989.0);
  printf("gpt2 backend %s precision %s B %d T %d params %.1fM ms %.1f tok/s %.0f tflops %.2f "
         "peak %g mfu %.4f\n",
         backend, prec, c.batch, c.ctx, nparams / 1e6, 1e3 * med, tps, tflops, peak, tflops / peak);
  free(x), free(y), free(t);
  asg_program_free(p);
  asg_graph_free(g);
  return 0;
}
