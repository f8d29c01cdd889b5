/* Training-step benchmark: median time of one compiled train step (forward,
 * backward, Adam update) for the models compared with PyTorch in
 * bench/torch_train.py. Usage: bench_train [cpu|cuda|vulkan] [steps]
 * Prints one line per model: "model <name> backend <b> ms <median> ...": ms is
 * a step followed by reading the loss (a host sync), pipe_ms the time per
 * step of steps run back to back, each feeding a new batch, with one read
 * of the loss at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "bench_common.h"

/* MLP 784-512-512-10, batch 128 (the CUDA issue's MLP benchmark). */
static asg_tensor *mlp(asg_graph *g, int *batch, int64_t *xn) {
  *batch = 128;
  *xn = 784;
  return bench_mlp_logits(g, asg_input(g, "x", ASG_F32, ASG_SHAPE(128, 784)));
}

/* The Fashion-MNIST example CNN, batch 64. */
static asg_tensor *cnn(asg_graph *g, int *batch, int64_t *xn) {
  *batch = 64;
  *xn = 784;
  return bench_cnn_logits(g, asg_input(g, "x", ASG_F32, ASG_SHAPE(64, 1, 28, 28)));
}

static int bench(const char *name, asg_tensor *(*build)(asg_graph *, int *, int64_t *),
                 const char *backend, int steps) {
  asg_graph *g = asg_graph_new();
  int batch;
  int64_t xn;
  asg_tensor *logits = build(g, &batch, &xn);
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(batch));
  asg_tensor *loss = asg_softmax_cross_entropy(logits, y, 0, -100);
  asg_compile_opts o = {.backend = backend};
  asg_program *p = asg_compile_train(g, loss, asg_adam(1e-3), 0, NULL, &o);
  if (!p) {
    fprintf(stderr, "%s: %s\n", name, asg_last_error());
    return 1;
  }
  float *x = malloc(sizeof *x * (size_t)(batch * xn));
  int32_t *lab = malloc(sizeof *lab * (size_t)batch);
  for (int64_t i = 0; i < batch * xn; i++)
    x[i] = (float)((i * 7919) % 1000) / 1000.0f;
  for (int i = 0; i < batch; i++)
    lab[i] = i % 10;
  asg_program_feed(p, "x", x, sizeof *x * (size_t)(batch * xn));
  asg_program_feed(p, "y", lab, sizeof *lab * (size_t)batch);
  double *t = malloc(sizeof *t * (size_t)steps);
  for (int i = 0; i < 5; i++)
    asg_program_run(p);        /* warm-up (CUDA graph capture, caches) */
  asg_program_scalar(p, loss); /* synchronizes */
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
    x[0] = (float)i;
    asg_program_feed(p, "x", x, sizeof *x * (size_t)(batch * xn));
    asg_program_run(p);
  }
  asg_program_scalar(p, loss);
  const double pipe = (bench_now() - t0) / steps;
  printf("model %s backend %s ms %.3f min_ms %.3f pipe_ms %.3f kernels %d loss %.4f\n", name,
         backend, 1e3 * t[steps / 2], 1e3 * t[0], 1e3 * pipe, asg_program_step_count(p),
         asg_program_scalar(p, loss));
  free(x), free(lab), free(t);
  asg_program_free(p);
  asg_graph_free(g);
  return 0;
}

int main(int argc, char **argv) {
  const char *backend = argc > 1 ? argv[1] : "cpu";
  int steps = argc > 2 ? atoi(argv[2]) : 50;
  if (!asg_backend_available(backend)) {
    printf("backend %s unavailable: %s\n", backend, asg_last_error());
    return 77;
  }
  return bench("mlp", mlp, backend, steps) | bench("cnn", cnn, backend, steps);
}
