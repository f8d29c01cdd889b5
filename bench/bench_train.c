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

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* MLP 784-512-512-10, batch 128 (the CUDA issue's MLP benchmark). */
static asg_tensor *mlp(asg_graph *g, int *batch, int64_t *xn) {
  *batch = 128;
  *xn = 784;
  asg_layer *l[] = {asg_nn_linear(g, "fc1", 784, 512), asg_nn_activation(g, "r1", ASG_ACT_RELU),
                    asg_nn_linear(g, "fc2", 512, 512), asg_nn_activation(g, "r2", ASG_ACT_RELU),
                    asg_nn_linear(g, "fc3", 512, 10)};
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(128, 784));
  return asg_layer_apply(asg_nn_sequential(g, "mlp", 5, l), x);
}

/* The Fashion-MNIST example CNN, batch 64. */
static asg_tensor *cnn(asg_graph *g, int *batch, int64_t *xn) {
  *batch = 64;
  *xn = 784;
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
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(64, 1, 28, 28));
  return asg_layer_apply(asg_nn_sequential(g, "cnn", 12, l), x);
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
    double t0 = now();
    asg_program_run(p);
    asg_program_scalar(p, loss); /* includes the device sync, as a training loop would */
    t[i] = now() - t0;
  }
  qsort(t, (size_t)steps, sizeof *t, cmp);
  /* pipelined: each step feeds a new batch, the loss is read once at the end */
  double t0 = now();
  for (int i = 0; i < steps; i++) {
    x[0] = (float)i;
    asg_program_feed(p, "x", x, sizeof *x * (size_t)(batch * xn));
    asg_program_run(p);
  }
  asg_program_scalar(p, loss);
  const double pipe = (now() - t0) / steps;
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
