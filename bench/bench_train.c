/* Training-step benchmark: median time of one compiled train step (forward,
 * backward, optimizer update) for the models compared with PyTorch in
 * bench/torch_train.py: the MLP, the Fashion-MNIST CNN (Adam 1e-3) and the
 * char-level GPT of examples/char_gpt.c (AdamW 2e-3, weight decay 0.01,
 * dropout 0 here; random token ids and targets in [0, 114), fixed per run).
 * Usage: bench_train [cpu|cuda|vulkan] [steps] [mlp|cnn|gpt|all] [f32|bf16]
 * (the third argument runs one model only, default all; the fourth sets
 * asg_compile_opts.bf16_matmul, default f32).
 * Prints per model a line "# params <name> <count> loss0 <loss>" (trainable
 * parameters, loss of the first step) and "model <name> backend <b> ms
 * <median> ...": ms is a step followed by reading the loss (a host sync),
 * pipe_ms the time per step of steps run back to back, each feeding a new
 * batch, with one read of the loss at the end. With ASG_PROFILE set, the
 * profile leaves out the first five runs (warm-up). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "bench_common.h"

typedef struct model {
  const char *name;
  asg_dtype xdt;    /* F32 pixels or I32 token ids */
  asg_shape xs, ys; /* input "x" and targets "y" */
  int classes;      /* targets in [0, classes) */
  asg_optim opt;
  asg_tensor *(*logits)(asg_graph *g, asg_tensor *x);
} model;

/* MLP 784-512-512-10, batch 128 (the CUDA issue's MLP benchmark). */
static model mlp(void) {
  return (model){.name = "mlp",
                 .xdt = ASG_F32,
                 .xs = ASG_SHAPE(128, 784),
                 .ys = ASG_SHAPE(128),
                 .classes = 10,
                 .opt = asg_adam(1e-3),
                 .logits = bench_mlp_logits};
}

/* The Fashion-MNIST example CNN, batch 64. */
static model cnn(void) {
  return (model){.name = "cnn",
                 .xdt = ASG_F32,
                 .xs = ASG_SHAPE(64, 1, 28, 28),
                 .ys = ASG_SHAPE(64),
                 .classes = 10,
                 .opt = asg_adam(1e-3),
                 .logits = bench_cnn_logits};
}

/* The char_gpt example's model and optimizer (constant lr: the example's
 * schedule only sets it per step), batch 16 x context 64. */
static model gpt(void) {
  return (model){.name = "gpt",
                 .xdt = ASG_I32,
                 .xs = ASG_SHAPE(BENCH_GPT_BATCH, BENCH_GPT_CTX),
                 .ys = ASG_SHAPE(BENCH_GPT_BATCH, BENCH_GPT_CTX),
                 .classes = BENCH_GPT_VOCAB,
                 .opt = asg_adamw(2e-3, 0.01),
                 .logits = bench_gpt_logits};
}

/* Trainable elements of g's variables (what torch's parameters() counts). */
static int64_t param_count(const asg_graph *g) {
  int64_t n = 0;
  for (int i = 0; i < asg_graph_variable_count(g); i++) {
    asg_tensor *v = asg_graph_variable(g, i);
    if (asg_variable_is_trainable(v)) n += asg_shape_numel(asg_tensor_shape(v));
  }
  return n;
}

static int bench(const model *m, const char *backend, int steps, bool bf16) {
  asg_graph *g = asg_graph_new();
  asg_tensor *logits = m->logits(g, asg_input(g, "x", m->xdt, m->xs));
  asg_tensor *y = asg_input(g, "y", ASG_I32, m->ys);
  asg_tensor *loss = asg_softmax_cross_entropy(logits, y, 0, -100);
  const int64_t nparams = param_count(g);
  asg_compile_opts o = {.backend = backend, .bf16_matmul = bf16};
  asg_program *p = asg_compile_train(g, loss, m->opt, 0, NULL, &o);
  if (!p) {
    fprintf(stderr, "%s: %s\n", m->name, asg_last_error());
    asg_graph_free(g);
    return 1;
  }
  const int64_t xn = asg_shape_numel(m->xs), yn = asg_shape_numel(m->ys);
  const size_t xbytes = (size_t)xn * (m->xdt == ASG_I32 ? sizeof(int32_t) : sizeof(float));
  float *xf = malloc(sizeof *xf * (size_t)xn);
  int32_t *xi = malloc(sizeof *xi * (size_t)xn), *lab = malloc(sizeof *lab * (size_t)yn);
  void *x = m->xdt == ASG_I32 ? (void *)xi : (void *)xf;
  unsigned long long rng = 12345; /* token ids and their targets: uniform, fixed per run */
  for (int64_t i = 0; i < xn; i++) {
    xf[i] = (float)((i * 7919) % 1000) / 1000.0f;
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    xi[i] = (int32_t)((rng >> 33) % (unsigned long long)m->classes);
  }
  for (int64_t i = 0; i < yn; i++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    lab[i] = m->xdt == ASG_I32 ? (int32_t)((rng >> 33) % (unsigned long long)m->classes)
                               : (int32_t)(i % m->classes);
  }
  asg_program_feed(p, "x", x, xbytes);
  asg_program_feed(p, "y", lab, sizeof *lab * (size_t)yn);
  double *t = malloc(sizeof *t * (size_t)steps);
  asg_program_run(p);
  printf("# params %s %lld loss0 %.4f\n", m->name, (long long)nparams, asg_program_scalar(p, loss));
  for (int i = 0; i < 4; i++)
    asg_program_run(p);         /* warm-up (CUDA graph capture, caches, oneDNN's JIT) */
  asg_program_scalar(p, loss);  /* synchronizes */
  asg_program_profile_reset(p); /* under ASG_PROFILE: the timed steps only (else a no-op) */
  for (int i = 0; i < steps; i++) {
    double t0 = bench_now();
    asg_program_run(p);
    asg_program_scalar(p, loss); /* includes the device sync, as a training loop would */
    t[i] = bench_now() - t0;
  }
  qsort(t, (size_t)steps, sizeof *t, bench_cmp);
  /* pipelined: each step feeds a new batch, the loss is read once at the end */
  double t0 = bench_now();
  for (int i = 0; i < steps; i++) {
    xf[0] = (float)i;
    xi[0] = i % m->classes;
    asg_program_feed(p, "x", x, xbytes);
    asg_program_run(p);
  }
  asg_program_scalar(p, loss);
  const double pipe = (bench_now() - t0) / steps;
  printf("model %s backend %s ms %.3f min_ms %.3f pipe_ms %.3f kernels %d loss %.4f\n", m->name,
         backend, 1e3 * t[steps / 2], 1e3 * t[0], 1e3 * pipe, asg_program_step_count(p),
         asg_program_scalar(p, loss));
  free(xf), free(xi), free(lab), free(t);
  asg_program_free(p);
  asg_graph_free(g);
  return 0;
}

int main(int argc, char **argv) {
  const char *backend = argc > 1 ? argv[1] : "cpu";
  int steps = argc > 2 ? atoi(argv[2]) : 50;
  const char *only = argc > 3 ? argv[3] : "all", *prec = argc > 4 ? argv[4] : "f32";
  const model models[] = {mlp(), cnn(), gpt()};
  const int n = (int)(sizeof models / sizeof models[0]);
  int found = !strcmp(only, "all"), rc = 0;
  if (steps < 1) {
    fprintf(stderr, "steps must be >= 1, got %s\n", argv[2]);
    return 2;
  }
  for (int i = 0; i < n; i++)
    found |= !strcmp(only, models[i].name);
  if (!found) {
    fprintf(stderr, "unknown model %s (mlp, cnn, gpt or all)\n", only);
    return 2;
  }
  if (strcmp(prec, "f32") && strcmp(prec, "bf16")) {
    fprintf(stderr, "unknown precision %s (f32 or bf16)\n", prec);
    return 2;
  }
  if (!asg_backend_available(backend)) {
    printf("backend %s unavailable: %s\n", backend, asg_last_error());
    return 77;
  }
  for (int i = 0; i < n; i++)
    if (!strcmp(only, "all") || !strcmp(only, models[i].name))
      rc |= bench(&models[i], backend, steps, !strcmp(prec, "bf16"));
  return rc;
}
