/* Fashion-MNIST with a small CNN (conv-bn-relu-pool x2, dropout, two linear
 * layers) trained by Adam on the CPU.
 *
 *   fashion_mnist_cnn [--epochs N] [--batch B] [--lr LR] [--limit N]
 *                     [--data DIR] [--threads T]
 *
 * The same builder makes the training graph and, with training mode off, the
 * evaluation graph (dropout off, batch norm on running statistics); the
 * evaluation program shares the training program's variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "asg/nn.h"

static asg_tensor *build(asg_graph *g, int batch, asg_tensor **x_out) {
  asg_conv_params same = {.padding = {1, 1}};
  asg_pool_params pool = {.kernel = {2, 2}};
  asg_layer *layers[] = {
      asg_nn_conv2d(g, "conv1", 1, 32, 3, 3, same, false),
      asg_nn_batchnorm(g, "bn1", 32, 0, 0),
      asg_nn_activation(g, "relu1", ASG_ACT_RELU),
      asg_nn_maxpool2d(g, "pool1", pool),
      asg_nn_conv2d(g, "conv2", 32, 64, 3, 3, same, false),
      asg_nn_batchnorm(g, "bn2", 64, 0, 0),
      asg_nn_activation(g, "relu2", ASG_ACT_RELU),
      asg_nn_maxpool2d(g, "pool2", pool),
      asg_nn_flatten(g, "flatten", 1),
      asg_nn_dropout(g, "drop1", 0.25),
      asg_nn_linear(g, "fc1", 64 * 7 * 7, 128),
      asg_nn_activation(g, "relu3", ASG_ACT_RELU),
      asg_nn_dropout(g, "drop2", 0.25),
      asg_nn_linear(g, "fc2", 128, 10),
  };
  asg_layer *net = asg_nn_sequential(g, "net", (int)(sizeof layers / sizeof layers[0]), layers);
  *x_out = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, 1, 28, 28));
  return asg_layer_apply(net, *x_out);
}

static int load(const char *dir, const char *name, asg_dtype dt, asg_host_tensor *t) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (asg_idx_read(path, dt, t) != ASG_OK) {
    fprintf(stderr, "%s\n(install the dataset: apt-get install dataset-fashion-mnist)\n",
            asg_last_error());
    return -1;
  }
  return 0;
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  int epochs = 3, batch = 64, limit = 0, threads = 0;
  double lr = 1e-3;
  const char *dir = "/usr/share/datasets/fashion-mnist";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--epochs")) epochs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--lr")) lr = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--limit")) limit = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--data")) dir = argv[i + 1];
    else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  asg_host_tensor xtr, ytr, xte, yte;
  if (load(dir, "train-images-idx3-ubyte.gz", ASG_F32, &xtr) ||
      load(dir, "train-labels-idx1-ubyte.gz", ASG_I32, &ytr) ||
      load(dir, "t10k-images-idx3-ubyte.gz", ASG_F32, &xte) ||
      load(dir, "t10k-labels-idx1-ubyte.gz", ASG_I32, &yte))
    return 1;
  /* scale to [0,1] and normalize with the dataset's mean/std */
  for (int64_t i = 0, n = asg_shape_numel(xtr.shape); i < n; i++)
    ((float *)xtr.data)[i] = (((float *)xtr.data)[i] / 255.0f - 0.2860f) / 0.3530f;
  for (int64_t i = 0, n = asg_shape_numel(xte.shape); i < n; i++)
    ((float *)xte.data)[i] = (((float *)xte.data)[i] / 255.0f - 0.2860f) / 0.3530f;
  int64_t ntrain = xtr.shape.dims[0], ntest = xte.shape.dims[0];
  if (limit > 0 && limit < ntrain) ntrain = limit;
  printf("Fashion-MNIST CNN: %lld train, %lld test images, Adam lr %g, batch %d\n",
         (long long)ntrain, (long long)ntest, lr, batch);

  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 1);
  asg_tensor *x;
  asg_tensor *logits = build(g, batch, &x);
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(batch));
  asg_tensor *loss = asg_softmax_cross_entropy(logits, y, 0.0, -100);
  asg_compile_opts opts = {.num_threads = threads};
  asg_program *train = asg_compile_train(g, loss, asg_adam(lr), 0, NULL, &opts);
  if (!train) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  const int eb = 500;
  asg_graph *ge = asg_graph_new();
  asg_graph_set_training(ge, false);
  asg_tensor *xe;
  asg_tensor *pred = asg_argmax(build(ge, eb, &xe), 1, false);
  asg_compile_opts eopts = {.share_variables = train, .num_threads = threads};
  asg_program *eval = asg_compile(ge, 1, &pred, &eopts);
  if (!eval) {
    fprintf(stderr, "compile eval: %s\n", asg_last_error());
    return 1;
  }
  printf("train step: %d kernels, %.1f MB activations\n", asg_program_step_count(train),
         asg_program_peak_memory(train) / 1e6);

  asg_batcher *bt = asg_batcher_new(ntrain, batch, true, true, 42);
  int64_t *idx = malloc(sizeof *idx * (size_t)batch);
  float *bx = malloc(sizeof(float) * 784 * (size_t)batch);
  int32_t *by = malloc(sizeof(int32_t) * (size_t)batch);
  int64_t *pb = malloc(sizeof(int64_t) * (size_t)eb);
  double acc = 0, t0 = seconds();
  for (int ep = 1; ep <= epochs; ep++) {
    int64_t nb = asg_batcher_batches_per_epoch(bt), step = 0, k;
    char label[32];
    snprintf(label, sizeof label, "epoch %d/%d", ep, epochs);
    asg_progress *pr = asg_progress_new(label, nb, nb / 4);
    double sum = 0;
    while ((k = asg_batcher_next(bt, idx)) > 0) {
      asg_host_gather_rows(&xtr, idx, k, bx);
      asg_host_gather_rows(&ytr, idx, k, by);
      asg_program_feed(train, "x", bx, sizeof(float) * 784 * (size_t)batch);
      asg_program_feed(train, "y", by, sizeof(int32_t) * (size_t)batch);
      if (asg_program_run(train) != ASG_OK) {
        fprintf(stderr, "run: %s\n", asg_last_error());
        return 1;
      }
      sum += asg_program_scalar(train, loss);
      step++;
      asg_progress_update(pr, step, sum / (double)step, k);
    }
    asg_progress_free(pr);
    int64_t correct = 0;
    for (int64_t s = 0; s + eb <= ntest; s += eb) {
      asg_program_feed(eval, "x", (float *)xte.data + s * 784, sizeof(float) * 784 * (size_t)eb);
      asg_program_run(eval);
      asg_program_fetch(eval, pred, pb, sizeof(int64_t) * (size_t)eb);
      for (int i = 0; i < eb; i++) correct += pb[i] == ((int32_t *)yte.data)[s + i];
    }
    acc = (double)correct / (double)(ntest / eb * eb);
    printf("epoch %d: train loss %.4f  test accuracy %.2f%%  (%.1f s)\n", ep,
           sum / (double)(step ? step : 1), 100 * acc, seconds() - t0);
  }
  printf("final test accuracy: %.2f%%\n", 100 * acc);
  free(idx), free(bx), free(by), free(pb);
  asg_batcher_free(bt);
  asg_program_free(eval);
  asg_program_free(train);
  asg_graph_free(ge);
  asg_graph_free(g);
  asg_host_tensor_free(&xtr), asg_host_tensor_free(&ytr);
  asg_host_tensor_free(&xte), asg_host_tensor_free(&yte);
  return 0;
}
