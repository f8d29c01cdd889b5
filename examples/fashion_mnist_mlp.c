/* Fashion-MNIST with a 784-512-256-10 MLP trained by Adam on the CPU.
 *
 *   fashion_mnist_mlp [--epochs N] [--batch B] [--lr LR] [--limit N]
 *                     [--data DIR] [--threads T]
 *
 * The train step (forward, backward, Adam update) is one compiled program;
 * the evaluation program is compiled from a second graph (batch 1000) and
 * shares the train program's variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"

typedef struct model {
  asg_tensor *x, *y, *logits;
} model;

static asg_tensor *dense(asg_graph *g, const char *name, asg_tensor *x, int in, int out) {
  char wn[64], bn[64];
  snprintf(wn, sizeof wn, "%s.weight", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  asg_tensor *w = asg_variable(g, wn, ASG_F32, ASG_SHAPE(out, in), asg_init_kaiming_uniform(2.236));
  asg_tensor *b = asg_variable(g, bn, ASG_F32, ASG_SHAPE(out), asg_init_zeros());
  asg_scope_push(g, name);
  asg_tensor *h = asg_add(asg_matmul_t(x, w, false, true), b); /* x [B,in] w^T [in,out] */
  asg_scope_pop(g);
  return h;
}

static model build(asg_graph *g, int batch) {
  model m;
  m.x = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, 784));
  m.y = asg_input(g, "y", ASG_I32, ASG_SHAPE(batch));
  asg_tensor *h = asg_relu(dense(g, "fc1", m.x, 784, 512));
  h = asg_relu(dense(g, "fc2", h, 512, 256));
  m.logits = dense(g, "fc3", h, 256, 10);
  return m;
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
  int epochs = 5, batch = 128, limit = 0, threads = 0;
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
  for (int64_t i = 0, n = asg_shape_numel(xtr.shape); i < n; i++) ((float *)xtr.data)[i] /= 255.0f;
  for (int64_t i = 0, n = asg_shape_numel(xte.shape); i < n; i++) ((float *)xte.data)[i] /= 255.0f;
  int64_t ntrain = xtr.shape.dims[0], ntest = xte.shape.dims[0];
  if (limit > 0 && limit < ntrain) ntrain = limit;
  printf("Fashion-MNIST: %lld train, %lld test images; MLP 784-512-256-10, Adam lr %g, batch %d\n",
         (long long)ntrain, (long long)ntest, lr, batch);

  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 1);
  model m = build(g, batch);
  asg_tensor *loss = asg_softmax_cross_entropy(m.logits, m.y, 0.0, -100);
  asg_compile_opts opts = {.num_threads = threads};
  asg_program *train = asg_compile_train(g, loss, asg_adam(lr), 0, NULL, &opts);
  if (!train) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  const int eb = 1000; /* evaluation batch: 10000 test images = 10 batches */
  asg_graph *ge = asg_graph_new();
  model me = build(ge, eb);
  asg_tensor *pred = asg_argmax(me.logits, 1, false);
  asg_compile_opts eopts = {.share_variables = train, .num_threads = threads};
  asg_program *eval = asg_compile(ge, 1, &pred, &eopts);
  if (!eval) {
    fprintf(stderr, "compile eval: %s\n", asg_last_error());
    return 1;
  }
  printf("train step: %d kernels, %.1f MB activations; eval: %d kernels\n",
         asg_program_step_count(train), asg_program_peak_memory(train) / 1e6,
         asg_program_step_count(eval));

  asg_batcher *bt = asg_batcher_new(ntrain, batch, true, true, 42);
  int64_t *idx = malloc(sizeof *idx * (size_t)eb);
  float *bx = malloc(sizeof(float) * 784 * (size_t)eb);
  int32_t *by = malloc(sizeof(int32_t) * (size_t)eb);
  int64_t *pb = malloc(sizeof(int64_t) * (size_t)eb);
  double acc = 0, t0 = seconds();
  for (int ep = 1; ep <= epochs; ep++) {
    int64_t nb = asg_batcher_batches_per_epoch(bt), step = 0;
    char label[32];
    snprintf(label, sizeof label, "epoch %d/%d", ep, epochs);
    asg_progress *pr = asg_progress_new(label, nb, nb / 4);
    double sum = 0;
    int64_t k;
    while ((k = asg_batcher_next(bt, idx)) > 0) {
      asg_host_gather_rows(&xtr, idx, k, bx);
      asg_host_gather_rows(&ytr, idx, k, by);
      asg_program_feed(train, "x", bx, sizeof(float) * 784 * (size_t)batch);
      asg_program_feed(train, "y", by, sizeof(int32_t) * (size_t)batch);
      if (asg_program_run(train) != ASG_OK) {
        fprintf(stderr, "run: %s\n", asg_last_error());
        return 1;
      }
      double l = asg_program_scalar(train, loss);
      sum += l;
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
