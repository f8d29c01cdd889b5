/* A denoising U-Net autoencoder on Fashion-MNIST: the clean image is the
 * target, the input is the image plus Gaussian noise. Two levels down
 * (max pooling), two up (nearest and bilinear upsampling), skip connections
 * by channel concatenation, group norm, reflect padding before every 3x3
 * convolution, trained by Adam with the mean squared error.
 *
 *   fashion_mnist_unet [--epochs N] [--batch B] [--lr LR] [--noise S]
 *                      [--limit N] [--test N] [--data DIR] [--threads T]
 *                      [--backend cpu|cuda|vulkan] [--min-gain DB] [--help]
 *
 * Reports, on the test images (noise drawn once with a fixed seed), the
 * PSNR of the noisy input and of the network's output against the clean
 * image; --min-gain makes the exit code 1 when the gain is below that. */
#define FMNIST_DATA_ONLY
#include "common/fmnist.h"

typedef struct unet_opts {
  int epochs, batch, limit, test, threads;
  double lr, noise, min_gain;
  const char *dir, *backend;
} unet_opts;

static void usage(const char *prog, const unet_opts *o) {
  printf("usage: %s [--epochs N (%d)] [--batch B (%d)] [--lr LR (%g)] [--noise S (%g)]\n"
         "       [--limit N (all train images)] [--test N (%d)] [--data DIR (%s)]\n"
         "       [--threads T (all CPUs)] [--backend cpu|cuda|vulkan (cpu)]\n"
         "       [--min-gain DB (0): fail unless the test PSNR gain reaches DB]\n"
         "Denoising U-Net: pixels in [0,1] plus N(0, S^2) noise in, clean image out.\n",
         prog, o->epochs, o->batch, o->lr, o->noise, o->test, o->dir);
}

static int parse(int argc, char **argv, unet_opts *o) {
  static const struct option lo[] = {
      {"epochs", required_argument, 0, 'e'},  {"batch", required_argument, 0, 'b'},
      {"lr", required_argument, 0, 'l'},      {"noise", required_argument, 0, 's'},
      {"limit", required_argument, 0, 'n'},   {"test", required_argument, 0, 'T'},
      {"data", required_argument, 0, 'd'},    {"threads", required_argument, 0, 't'},
      {"backend", required_argument, 0, 'B'}, {"min-gain", required_argument, 0, 'm'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int c, bad = 0;
  while (!bad && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'e': bad = opt_int("epochs", optarg, 1, 1000000, &o->epochs); break;
    case 'b': bad = opt_int("batch", optarg, 1, 1 << 20, &o->batch); break;
    case 'l': bad = opt_double("lr", optarg, 0, &o->lr); break;
    case 's': bad = opt_double("noise", optarg, 0, &o->noise); break;
    case 'n': bad = opt_int("limit", optarg, 0, 1 << 30, &o->limit); break;
    case 'T': bad = opt_int("test", optarg, 1, 1 << 30, &o->test); break;
    case 'd': o->dir = optarg; break;
    case 't': bad = opt_int("threads", optarg, 0, 4096, &o->threads); break;
    case 'B': o->backend = optarg; break;
    case 'm': bad = opt_double("min-gain", optarg, -1e9, &o->min_gain); break;
    case 'h': usage(argv[0], o); return 1;
    default: bad = -1; /* getopt_long said why */
    }
  }
  if (!bad && optind < argc) {
    fprintf(stderr, "unexpected argument '%s' (--help lists the options)\n", argv[optind]);
    bad = -1;
  }
  return bad ? -1 : 0;
}

/* 3x3 convolution after a reflect pad of 1 (the border is mirrored, not
 * zero), group norm, ReLU: [B, cin, H, W] -> [B, cout, H, W]. */
static asg_tensor *block(asg_graph *g, const char *name, asg_tensor *x, int64_t cin, int64_t cout) {
  char n1[64], n2[64], n3[64];
  snprintf(n1, sizeof n1, "%s.conv", name);
  snprintf(n2, sizeof n2, "%s.norm", name);
  snprintf(n3, sizeof n3, "%s.relu", name);
  const int64_t pads[4] = {1, 1, 1, 1};
  asg_conv_params valid = {{0}, {0}, {0}, 0, {0}};
  x = asg_pad(x, pads, 4, ASG_PAD_REFLECT, 0);
  x = asg_layer_apply(asg_nn_conv2d(g, n1, cin, cout, 3, 3, valid, true), x);
  x = asg_layer_apply(asg_nn_groupnorm(g, n2, cout / 4, cout, NULL), x);
  return asg_layer_apply(asg_nn_activation(g, n3, ASG_ACT_RELU), x);
}

static asg_tensor *cat2(asg_tensor *a, asg_tensor *b) {
  asg_tensor *xs[2] = {a, b};
  return asg_concat(xs, 2, 1);
}

/* noisy [B,1,28,28] -> denoised [B,1,28,28]; B a constant or a symbol. */
static asg_tensor *unet(asg_graph *g, asg_tensor *x) {
  asg_pool_params pool = {.kernel = {2, 2}};
  asg_upsample_params nearest = {.mode = ASG_UPSAMPLE_NEAREST, .scale = {2, 2}};
  asg_upsample_params bilinear = {.mode = ASG_UPSAMPLE_LINEAR, .scale = {2, 2}};
  asg_conv_params one = {{0}, {0}, {0}, 0, {0}};
  asg_tensor *e1 = block(g, "enc1", x, 1, 16);                         /* [B,16,28,28] */
  asg_tensor *e2 = block(g, "enc2", asg_max_pool2d(e1, pool), 16, 32); /* [B,32,14,14] */
  asg_tensor *mid = block(g, "mid", asg_max_pool2d(e2, pool), 32, 32); /* [B,32,7,7] */
  asg_tensor *d2 = block(g, "dec2", cat2(asg_upsample(mid, nearest), e2), 64, 32);
  asg_tensor *d1 = block(g, "dec1", cat2(asg_upsample(d2, bilinear), e1), 48, 16);
  /* a 1x1 head, plus the input: the network predicts the correction */
  asg_tensor *head = asg_layer_apply(asg_nn_conv2d(g, "head", 16, 1, 1, 1, one, true), d1);
  return asg_add(head, x);
}

/* Standard normal draws (Box-Muller over a 64-bit LCG): the test noise is
 * the same in every run. */
static double normal(uint64_t *s) {
  double u[2];
  for (int k = 0; k < 2; k++) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    u[k] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
  }
  return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static void add_noise(const float *clean, float *noisy, int64_t n, double sigma, uint64_t *s) {
  for (int64_t i = 0; i < n; i++)
    noisy[i] = clean[i] + (float)(sigma * normal(s));
}

/* PSNR in dB of images in [0,1] from their mean squared error. */
static double psnr(double mse) { return 10.0 * log10(1.0 / (mse > 1e-12 ? mse : 1e-12)); }

/* Mean squared error over the first n test images of the noisy input and
 * of eval's output (a symbolic batch: the last batch may be partial). */
static int evaluate(asg_program *eval, asg_tensor *out, const fmnist *d, int64_t n, double sigma,
                    int eb, double *mse_in, double *mse_out) {
  float *noisy = malloc(sizeof(float) * 784 * (size_t)eb), *y = malloc(sizeof(float) * 784 * eb);
  uint64_t seed = 12345;
  double si = 0, so = 0;
  int rc = 0;
  for (int64_t s = 0; s < n && !rc; s += eb) {
    int64_t k = n - s < eb ? n - s : eb;
    const float *clean = (const float *)d->xte.data + s * 784;
    add_noise(clean, noisy, k * 784, sigma, &seed);
    if (asg_program_feed(eval, "x", noisy, sizeof(float) * 784 * (size_t)k) != ASG_OK ||
        asg_program_run(eval) != ASG_OK ||
        asg_program_fetch(eval, out, y, sizeof(float) * 784 * (size_t)k) != ASG_OK) {
      fprintf(stderr, "eval: %s\n", asg_last_error());
      rc = -1;
      break;
    }
    for (int64_t i = 0; i < k * 784; i++) {
      double a = noisy[i] - clean[i], b = y[i] - clean[i];
      si += a * a, so += b * b;
    }
  }
  free(noisy), free(y);
  *mse_in = si / (double)(n * 784);
  *mse_out = so / (double)(n * 784);
  return rc;
}

static int train_loop(asg_program *train, asg_tensor *loss, asg_program *eval, asg_tensor *out,
                      const fmnist *d, const unet_opts *o) {
  asg_batcher *bt = asg_batcher_new(d->ntrain, o->batch, true, true, 7);
  const int64_t nb = asg_batcher_batches_per_epoch(bt),
                ntest = o->test < d->ntest ? o->test : d->ntest;
  asg_lr_schedule lr = asg_lr_cosine(o->lr, (int64_t)o->epochs * nb, o->lr * 0.05);
  int64_t *idx = malloc(sizeof *idx * (size_t)o->batch), t = 0, k;
  float *clean = malloc(sizeof(float) * 784 * (size_t)o->batch);
  float *noisy = malloc(sizeof(float) * 784 * (size_t)o->batch);
  uint64_t seed = 1;
  double t0 = fmnist_seconds(), gain = 0;
  int rc = 0;
  for (int ep = 1; ep <= o->epochs && !rc; ep++) {
    char label[32];
    snprintf(label, sizeof label, "epoch %d/%d", ep, o->epochs);
    asg_progress *pr = asg_progress_new(label, nb, nb / 4);
    double sum = 0;
    int64_t step = 0;
    while ((k = asg_batcher_next(bt, idx)) > 0) {
      asg_host_gather_rows(&d->xtr, idx, k, clean);
      add_noise(clean, noisy, k * 784, o->noise, &seed);
      asg_program_feed(train, "x", noisy, sizeof(float) * 784 * (size_t)o->batch);
      asg_program_feed(train, "target", clean, sizeof(float) * 784 * (size_t)o->batch);
      asg_optim_schedule(train, &lr, t++);
      if (asg_program_run(train) != ASG_OK) {
        fprintf(stderr, "run: %s\n", asg_last_error());
        rc = 1;
        break;
      }
      sum += asg_program_scalar(train, loss);
      step++;
      asg_progress_update(pr, step, sum / (double)step, k);
    }
    asg_progress_free(pr);
    double mi, mo;
    if (rc || evaluate(eval, out, d, ntest, o->noise, 500, &mi, &mo)) {
      rc = 1;
      break;
    }
    gain = psnr(mo) - psnr(mi);
    printf("epoch %d: train mse %.5f  test PSNR noisy %.2f dB -> denoised %.2f dB (+%.2f dB)  "
           "(%.1f s)\n",
           ep, sum / (double)(step ? step : 1), psnr(mi), psnr(mo), gain, fmnist_seconds() - t0);
  }
  free(idx), free(clean), free(noisy);
  asg_batcher_free(bt);
  if (!rc && gain < o->min_gain) {
    fprintf(stderr, "PSNR gain %.2f dB is below the required %.2f dB\n", gain, o->min_gain);
    rc = 1;
  }
  return rc;
}

int main(int argc, char **argv) {
  unet_opts o = {.epochs = 3,
                 .batch = 32,
                 .lr = 2e-3,
                 .noise = 0.3,
                 .test = 2000,
                 .dir = "/usr/share/datasets/fashion-mnist",
                 .backend = "cpu"};
  int prc = parse(argc, argv, &o);
  if (prc) return prc > 0 ? 0 : 2;
  fmnist d;
  fmnist_opts fo = {.dir = o.dir, .limit = o.limit};
  if (fmnist_load(&fo, 0.0f, 1.0f, &d)) return 2; /* pixels in [0, 1] */
  printf("Fashion-MNIST denoising U-Net: %lld train images, noise sigma %g; Adam lr %g, batch %d\n",
         (long long)d.ntrain, o.noise, o.lr, o.batch);

  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 1);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(o.batch, 1, 28, 28));
  asg_tensor *target = asg_input(g, "target", ASG_F32, ASG_SHAPE(o.batch, 1, 28, 28));
  asg_tensor *loss = asg_mse_loss(unet(g, x), target, ASG_REDUCE_MEAN);
  asg_compile_opts opts = {.backend = o.backend, .num_threads = o.threads};
  asg_program *train = asg_compile_train(g, loss, asg_adam(o.lr), 0, NULL, &opts);

  /* evaluation: the same builder over a symbolic batch, sharing the variables */
  asg_graph *ge = asg_graph_new();
  asg_graph_set_training(ge, false);
  asg_tensor *xe = asg_input(ge, "x", ASG_F32, ASG_SHAPE(asg_dim(ge, "batch", 0), 1, 28, 28));
  asg_tensor *out = unet(ge, xe);
  opts.share_variables = train;
  asg_program *eval = train ? asg_compile(ge, 1, &out, &opts) : NULL;
  int rc = 1;
  if (!train || !eval) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
  } else {
    printf("train step: %d kernels, %.1f MB activations\n", asg_program_step_count(train),
           asg_program_peak_memory(train) / 1e6);
    rc = train_loop(train, loss, eval, out, &d, &o);
  }
  asg_program_free(eval), asg_program_free(train);
  asg_graph_free(ge), asg_graph_free(g);
  fmnist_free(&d);
  return rc;
}
