/* Shared by the Fashion-MNIST examples: option parsing, loading, the
 * training loop with a progress bar, and test-set evaluation. Header-only so
 * that each example stays one file plus this. */
#ifndef ASG_EXAMPLE_FMNIST_H
#define ASG_EXAMPLE_FMNIST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <time.h>

#include "asg/asg.h"
#include "opts.h"

typedef struct fmnist_opts {
  int epochs, batch, eval_batch, limit, threads;
  double lr, min_accuracy;
  const char *dir, *backend;
  const char *logdir; /* TensorBoard event files go there (NULL: none) */
} fmnist_opts;

#ifndef FMNIST_DATA_ONLY
static void fmnist_usage(const char *prog, const fmnist_opts *o) {
  printf("usage: %s [--epochs N (%d)] [--batch B (%d)] [--eval-batch B (%d)] [--lr LR (%g)]\n"
         "       [--limit N (all)] [--data DIR (%s)] [--threads T (all CPUs)]\n"
         "       [--min-accuracy A (0)] [--backend cpu|cuda|vulkan (cpu)]\n"
         "       [--logdir DIR (none): TensorBoard logs: loss, lr, accuracy, examples/s,\n"
         "        parameter histograms per epoch]\n"
         "The evaluation program has a symbolic batch: every test image is counted,\n"
         "the last partial batch included.\n",
         prog, o->epochs, o->batch, o->eval_batch, o->lr, o->dir);
}

/* --epochs --batch --eval-batch --lr --limit --threads --data --min-accuracy
 * --backend --logdir (getopt_long); 0 = ok, 1 = --help printed, -1 = bad usage. */
static int fmnist_parse(int argc, char **argv, fmnist_opts *o) {
  static const struct option lo[] = {{"epochs", required_argument, 0, 'e'},
                                     {"batch", required_argument, 0, 'b'},
                                     {"eval-batch", required_argument, 0, 'E'},
                                     {"lr", required_argument, 0, 'l'},
                                     {"limit", required_argument, 0, 'n'},
                                     {"threads", required_argument, 0, 't'},
                                     {"data", required_argument, 0, 'd'},
                                     {"min-accuracy", required_argument, 0, 'm'},
                                     {"backend", required_argument, 0, 'B'},
                                     {"logdir", required_argument, 0, 'L'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  int c, bad = 0;
  optind = 1;
  while (!bad && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'e': bad = opt_int("epochs", optarg, 1, 1000000, &o->epochs); break;
    case 'b': bad = opt_int("batch", optarg, 1, 1 << 24, &o->batch); break;
    case 'E': bad = opt_int("eval-batch", optarg, 1, 1 << 24, &o->eval_batch); break;
    case 'l': bad = opt_double("lr", optarg, 0, &o->lr); break;
    case 'n': bad = opt_int("limit", optarg, 0, 1 << 30, &o->limit); break;
    case 't': bad = opt_int("threads", optarg, 0, 4096, &o->threads); break;
    case 'd': o->dir = optarg; break;
    case 'm': bad = opt_double("min-accuracy", optarg, 0, &o->min_accuracy); break;
    case 'B': o->backend = optarg; break;
    case 'L': o->logdir = optarg; break;
    case 'h': fmnist_usage(argv[0], o); return 1;
    default: bad = -1; /* getopt_long said why */
    }
  }
  if (!bad && optind < argc) {
    fprintf(stderr, "unexpected argument '%s' (--help lists the options)\n", argv[optind]);
    bad = -1;
  }
  return bad ? -1 : 0;
}

#endif

typedef struct fmnist {
  asg_host_tensor xtr, ytr, xte, yte; /* images [N,28,28] f32 scaled, labels i32 */
  int64_t ntrain, ntest;
} fmnist;

static int fmnist_load(const fmnist_opts *o, float mean, float std, fmnist *d) {
  const char *files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  asg_host_tensor *dst[4] = {&d->xtr, &d->ytr, &d->xte, &d->yte};
  for (int i = 0; i < 4; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", o->dir, files[i]);
    if (asg_idx_read(path, i % 2 ? ASG_I32 : ASG_F32, dst[i]) != ASG_OK) {
      fprintf(stderr, "%s\n(install the dataset: apt-get install dataset-fashion-mnist)\n",
              asg_last_error());
      return -1;
    }
  }
  for (int k = 0; k < 4; k += 2) { /* pixels to [0,1], then standardized */
    float *x = dst[k]->data;
    for (int64_t i = 0, n = asg_shape_numel(dst[k]->shape); i < n; i++)
      x[i] = (x[i] / 255.0f - mean) / std;
  }
  d->ntrain = d->xtr.shape.dims[0];
  d->ntest = d->xte.shape.dims[0];
  if (o->limit > 0 && o->limit < d->ntrain) d->ntrain = o->limit;
  return 0;
}

static void fmnist_free(fmnist *d) {
  asg_host_tensor_free(&d->xtr), asg_host_tensor_free(&d->ytr);
  asg_host_tensor_free(&d->xte), asg_host_tensor_free(&d->yte);
}

static double fmnist_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* FMNIST_DATA_ONLY: an example with its own options and loop takes only
 * the loading and the clock above. */
#ifndef FMNIST_DATA_ONLY
/* One epoch of `train` (inputs "x" [B,...], "y" [B]); returns the mean loss
 * or a negative value on error. With tb, logs each step's loss and lr. */
static double fmnist_epoch(asg_program *train, asg_tensor *loss, const fmnist *d, asg_batcher *bt,
                           int batch, const asg_lr_schedule *lr, int64_t *t, const char *label,
                           asg_tblog *tb, asg_comm *comm) {
  int64_t *idx = malloc(sizeof *idx * (size_t)batch);
  float *bx = malloc(sizeof(float) * 784 * (size_t)batch);
  int32_t *by = malloc(sizeof(int32_t) * (size_t)batch);
  int64_t nb = asg_batcher_batches_per_epoch(bt), step = 0, k;
  const int world = asg_comm_size(comm);
  /* rank 0 shows progress (in examples over all ranks) */
  asg_progress *pr = asg_comm_rank(comm) == 0 ? asg_progress_new(label, nb, nb / 4) : NULL;
  double sum = 0;
  while ((k = asg_batcher_next(bt, idx)) > 0) {
    asg_host_gather_rows(&d->xtr, idx, k, bx);
    asg_host_gather_rows(&d->ytr, idx, k, by);
    asg_program_feed(train, "x", bx, sizeof(float) * 784 * (size_t)batch);
    asg_program_feed(train, "y", by, sizeof(int32_t) * (size_t)batch);
    asg_optim_schedule(train, lr, (*t)++);
    if (asg_program_run(train) != ASG_OK) {
      fprintf(stderr, "run: %s\n", asg_last_error());
      sum = -1;
      break;
    }
    double l = asg_program_scalar(train, loss);
    sum += l;
    step++;
    if (tb) {
      asg_tblog_scalar(tb, "train/loss", *t, l);
      asg_tblog_scalar(tb, "train/lr", *t, asg_lr_schedule_at(lr, *t - 1)); /* this step's */
      asg_optim_stats os;
      if (asg_optim_get_stats(train, &os) == ASG_OK && !isnan(os.grad_norm))
        asg_tblog_scalar(tb, "train/grad_norm", *t, os.grad_norm);
    }
    if (pr) asg_progress_update(pr, step, sum / (double)step, k * world);
  }
  if (pr) asg_progress_free(pr);
  free(idx), free(bx), free(by);
  if (sum < 0) return -1;
  double mean = sum / (double)(step ? step : 1); /* this rank's; averaged over the ranks */
  return asg_comm_allreduce(comm, &mean, 1, ASG_F64, ASG_COMM_MEAN) ? -1 : mean;
}

/* Accuracy of `eval` (input "x" [batch,...] with a symbolic batch -> pred
 * [batch] I64) over the whole test set, in batches of at most eb: the last,
 * partial batch is fed as is (its size binds the symbol) and runs on its own
 * specialization of the same program. */
static double fmnist_accuracy(asg_program *eval, asg_tensor *pred, const fmnist *d, int eb) {
  int64_t *pb = malloc(sizeof *pb * (size_t)eb), correct = 0, seen = 0;
  const int64_t row = asg_shape_numel(d->xte.shape) / d->ntest; /* floats per image */
  for (int64_t s = 0; s < d->ntest; s += eb) {
    int64_t k = d->ntest - s < eb ? d->ntest - s : eb;
    asg_shape ps;
    /* feed's size gives the batch (the input's only symbol) */
    if (asg_program_feed(eval, "x", (float *)d->xte.data + s * row,
                         sizeof(float) * (size_t)(row * k)) != ASG_OK ||
        asg_program_run(eval) != ASG_OK || asg_program_output_shape(eval, pred, &ps) != ASG_OK ||
        asg_program_fetch(eval, pred, pb, sizeof *pb * (size_t)ps.dims[0]) != ASG_OK) {
      fprintf(stderr, "eval: %s\n", asg_last_error());
      free(pb);
      return -1;
    }
    for (int64_t i = 0; i < ps.dims[0]; i++)
      correct += pb[i] == ((int32_t *)d->yte.data)[s + i];
    seen += ps.dims[0];
  }
  free(pb);
  return seen == d->ntest ? (double)correct / (double)seen : -1;
}

/* Trains for o->epochs with a cosine-decayed learning rate, evaluating after
 * each epoch; returns the exit code
 * (1 when the final accuracy is below o->min_accuracy). */
static int fmnist_run(asg_program *train, asg_tensor *loss, asg_program *eval, asg_tensor *pred,
                      int eb, const fmnist *d, const fmnist_opts *o, asg_tblog *tb,
                      asg_comm *comm) {
  /* with several ranks each takes its share of every epoch (o->batch per rank) */
  const int rank = asg_comm_rank(comm), world = asg_comm_size(comm);
  asg_batcher *bt = asg_batcher_new_sharded(d->ntrain, o->batch, true, true, 42, rank, world);
  double acc = 0, t0 = fmnist_seconds();
  int64_t t = 0, total = (int64_t)o->epochs * asg_batcher_batches_per_epoch(bt);
  asg_lr_schedule lr = asg_lr_cosine(o->lr, total, o->lr * 0.02);
  for (int ep = 1; ep <= o->epochs; ep++) {
    char label[32];
    snprintf(label, sizeof label, "epoch %d/%d", ep, o->epochs);
    double te = fmnist_seconds();
    double l = fmnist_epoch(train, loss, d, bt, o->batch, &lr, &t, label, tb, comm);
    te = fmnist_seconds() - te;
    if (l < 0) {
      asg_batcher_free(bt);
      return 1;
    }
    acc = fmnist_accuracy(eval, pred, d, eb); /* every rank holds the same parameters */
    if (acc < 0) {
      asg_batcher_free(bt);
      return 1;
    }
    if (rank == 0)
      printf("epoch %d: train loss %.4f  test accuracy %.2f%%  (%.1f s)\n", ep, l, 100 * acc,
             fmnist_seconds() - t0);
    if (tb) { /* at the step count, so that the curves line up with train/loss */
      asg_tblog_scalar(tb, "test/accuracy", t, acc);
      asg_tblog_scalar(tb, "train/epoch_loss", t, l);
      asg_tblog_scalar(tb, "train/examples_per_s", t,
                       (double)(asg_batcher_batches_per_epoch(bt) * o->batch * world) / te);
      if (asg_tblog_variables(tb, train, t) || asg_tblog_flush(tb))
        fprintf(stderr, "logdir: %s\n", asg_last_error());
    }
  }
  asg_batcher_free(bt);
  if (rank == 0)
    printf("final test accuracy: %.2f%% (all %lld test images)\n", 100 * acc, (long long)d->ntest);
  if (acc < o->min_accuracy) {
    fprintf(stderr, "accuracy %.4f is below the required %.4f\n", acc, o->min_accuracy);
    return 1;
  }
  return 0;
}

/* Builds the model for a batch: x [B, ...] input named "x" -> logits [B, 10].
 * B is a constant or a symbolic dim (asg_dim). */
typedef asg_tensor *(*fmnist_model)(asg_graph *g, int64_t batch, asg_tensor **x);

/* The whole program: parse options (defaults in o), load and standardize
 * the data, compile the Adam train step (a static program: the training
 * batch never changes) and an evaluation program (a second graph from the
 * same builder, training mode off, a symbolic batch, sharing the
 * variables), train and report. Returns the exit code. */
static int fmnist_main(int argc, char **argv, fmnist_opts o, float mean, float std,
                       const char *title, fmnist_model build) {
  fmnist d;
  int prc = fmnist_parse(argc, argv, &o);
  if (prc) return prc > 0 ? 0 : 2;
  /* under mpirun -np N: data-parallel over N processes (docs/distributed.md);
   * launched alone: a world of one */
  asg_comm *comm = NULL;
  if (asg_comm_init(NULL, &comm)) {
    fprintf(stderr, "%s\n", asg_last_error());
    return 2;
  }
  if (fmnist_load(&o, mean, std, &d)) {
    asg_comm_free(comm);
    return 2;
  }
  const int eb = o.eval_batch, rank = asg_comm_rank(comm);
  if (asg_comm_size(comm) > 1 && rank == 0)
    printf("data-parallel: %d processes (%s), batch %d each\n", asg_comm_size(comm),
           asg_comm_kind(comm), o.batch);
  if (rank == 0)
    printf("Fashion-MNIST %s: %lld train, %lld test images; Adam lr %g, batch %d; eval batches of "
           "up to %d (%lld full + %s)\n",
           title, (long long)d.ntrain, (long long)d.ntest, o.lr, o.batch, eb,
           (long long)(d.ntest / eb), d.ntest % eb ? "a partial one" : "none partial");
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 1);
  asg_tensor *x, *logits = build(g, o.batch, &x);
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(o.batch));
  asg_tensor *loss = asg_softmax_cross_entropy(logits, y, 0.0, -100);
  asg_compile_opts opts = {.backend = o.backend, .num_threads = o.threads, .comm = comm};
  asg_optim adam = asg_adam(o.lr);
  adam.track_grad_norm = o.logdir != NULL; /* logged as train/grad_norm */
  asg_program *train = asg_compile_train(g, loss, adam, 0, NULL, &opts);
  opts.comm = NULL; /* evaluation has no collectives */

  asg_graph *ge = asg_graph_new();
  asg_graph_set_training(ge, false);
  asg_tensor *xe, *pred = asg_argmax(build(ge, asg_dim(ge, "batch", 0), &xe), 1, false);
  opts.share_variables = train;
  asg_program *eval = train ? asg_compile(ge, 1, &pred, &opts) : NULL;
  int rc = 1;
  asg_tblog *tb = o.logdir && rank == 0 ? asg_tblog_open(o.logdir) : NULL; /* rank 0 logs */
  if (o.logdir && rank == 0 && !tb) {
    fprintf(stderr, "logdir: %s\n", asg_last_error());
  } else if (!train || !eval) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
  } else {
    if (tb) printf("TensorBoard log: %s\n", asg_tblog_path(tb));
    if (rank == 0)
      printf("train step: %d kernels, %.1f MB activations\n", asg_program_step_count(train),
             asg_program_peak_memory(train) / 1e6);
    rc = fmnist_run(train, loss, eval, pred, eb, &d, &o, tb, comm);
    if (rank == 0)
      printf("eval: one program over a symbolic batch, %d specialization(s) cached\n",
             asg_program_specialization_count(eval));
  }
  if (asg_tblog_close(tb)) fprintf(stderr, "logdir: %s\n", asg_last_error());
  asg_program_free(eval), asg_program_free(train);
  asg_graph_free(ge), asg_graph_free(g);
  fmnist_free(&d);
  asg_comm_free(comm);
  return rc;
}

#endif /* FMNIST_DATA_ONLY */

#endif
