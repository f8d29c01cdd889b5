/* A character-level GPT (pre-LN transformer, causal multi-head attention)
 * trained on a real corpus on the CPU, then sampled.
 *
 *   char_gpt [--steps N] [--batch B] [--ctx T] [--layers L] [--dim D]
 *            [--heads H] [--lr LR] [--sample N] [--threads T]
 *            [--backend cpu|cuda|vulkan] [--precision f32|bf16] [--logdir DIR]
 *            [--help] [paths...]
 *
 * Training runs a static program (batch and context never change). Validation
 * and sampling run one evaluation program built on a symbolic batch and
 * sequence length (asg_dim) that shares the trained variables: validation
 * feeds [batch, ctx] windows, sampling starts from a short prompt ([1, P])
 * and grows it one character at a time up to the context, then slides it;
 * each new length is specialized once (docs/symbolic.md).
 *
 * Default corpus: the Debian package `fortunes` (/usr/share/games/fortunes).
 * Reports the unigram entropy of the corpus (nats per character) next to the
 * validation loss: a model that learned anything beyond letter frequencies
 * goes far below it. --logdir DIR writes TensorBoard logs there (loss, lr,
 * tokens/s, validation loss, parameter histograms every tenth of the run).
 * --precision bf16 multiplies with bf16 operands and f32 sums
 * (asg_compile_opts.bf16_matmul: CUDA, and CPUs with AVX512-BF16 or AMX). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "common/corpus.h"
#include "common/opts.h"
#include "asg/nn.h"

typedef struct cfg {
  int layers, dim, heads, ctx, batch, vocab;
} cfg;

/* tokens [B, T] -> logits [B, T, V]; B and T are constants or symbolic dims
 * (T at most c->ctx, the length of the learned position table). */
static asg_tensor *gpt(asg_graph *g, const cfg *c, int64_t batch, int64_t seq,
                       asg_tensor **tokens) {
  asg_attention_opts ao = {.causal = true};
  *tokens = asg_input(g, "tokens", ASG_I32, ASG_SHAPE(batch, seq));
  asg_tensor *h = asg_layer_apply(asg_nn_embedding(g, "wte", c->vocab, c->dim), *tokens);
  h = asg_layer_apply(asg_nn_posenc(g, "wpe", ASG_POS_LEARNED, c->ctx, c->dim), h);
  for (int i = 0; i < c->layers; i++) {
    char name[32];
    snprintf(name, sizeof name, "block%d", i);
    h = asg_layer_apply(asg_nn_transformer_block(g, name, c->dim, c->heads, 4 * c->dim, &ao, 0.1),
                        h);
  }
  h = asg_layer_apply(asg_nn_layernorm(g, "ln_f", c->dim, 0), h);
  return asg_layer_apply(asg_nn_linear(g, "head", c->dim, c->vocab), h);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(const char *prog, const cfg *c, int steps, int nsample, double lr) {
  printf("usage: %s [--steps N (%d)] [--batch B (%d)] [--ctx T (%d)] [--layers L (%d)]\n"
         "       [--dim D (%d)] [--heads H (%d)] [--lr LR (%g)] [--sample N (%d)]\n"
         "       [--threads T (all CPUs)] [--backend cpu|cuda|vulkan (cpu)]\n"
         "       [--precision f32|bf16 (f32): bf16 matrix-product operands]\n"
         "       [--logdir DIR (none): TensorBoard logs] [paths...]\n"
         "Corpus: the given text files, else /usr/share/games/fortunes.\n",
         prog, steps, c->batch, c->ctx, c->layers, c->dim, c->heads, lr, nsample);
}

int main(int argc, char **argv) {
  cfg c = {.layers = 4, .dim = 128, .heads = 4, .ctx = 64, .batch = 16};
  int steps = 3000, nsample = 400, threads = 0;
  double lr = 2e-3;
  const char *backend = "cpu", *logdir = NULL;
  bool bf16 = false;
  static const struct option lo[] = {
      {"steps", required_argument, 0, 's'},   {"batch", required_argument, 0, 'b'},
      {"ctx", required_argument, 0, 'c'},     {"layers", required_argument, 0, 'L'},
      {"dim", required_argument, 0, 'd'},     {"heads", required_argument, 0, 'H'},
      {"lr", required_argument, 0, 'l'},      {"sample", required_argument, 0, 'S'},
      {"threads", required_argument, 0, 't'}, {"backend", required_argument, 0, 'B'},
      {"logdir", required_argument, 0, 'g'},  {"precision", required_argument, 0, 'p'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int bad = 0;
  for (int o; !bad && (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
    switch (o) {
    case 's': bad = opt_int("steps", optarg, 1, 1 << 30, &steps); break;
    case 'b': bad = opt_int("batch", optarg, 1, 1 << 20, &c.batch); break;
    case 'c': bad = opt_int("ctx", optarg, 2, 1 << 16, &c.ctx); break;
    case 'L': bad = opt_int("layers", optarg, 1, 1024, &c.layers); break;
    case 'd': bad = opt_int("dim", optarg, 1, 1 << 16, &c.dim); break;
    case 'H': bad = opt_int("heads", optarg, 1, 1024, &c.heads); break;
    case 'l': bad = opt_double("lr", optarg, 0, &lr); break;
    case 'S': bad = opt_int("sample", optarg, 0, 1 << 20, &nsample); break;
    case 't': bad = opt_int("threads", optarg, 0, 4096, &threads); break;
    case 'B': backend = optarg; break;
    case 'g': logdir = optarg; break;
    case 'p':
      bf16 = !strcmp(optarg, "bf16");
      if (!bf16 && strcmp(optarg, "f32")) {
        fprintf(stderr, "--precision: f32 or bf16, not '%s'\n", optarg);
        bad = 1;
      }
      break;
    case 'h': usage(argv[0], &c, steps, nsample, lr); return 0;
    default: bad = -1; /* getopt_long said why */
    }
  }
  if (bad) return 2;
  asg_text text;
  int64_t split; /* train [0, split), validation [split, n) */
  double h1;
  if (corpus_load(argc, argv, optind, &text, &split, &h1)) return 1;
  c.vocab = text.vocab_size;
  printf("model: %d layers, dim %d, %d heads, context %d, batch %d\n", c.layers, c.dim, c.heads,
         c.ctx, c.batch);

  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 7);
  asg_tensor *tok, *logits = gpt(g, &c, c.batch, c.ctx, &tok);
  asg_tensor *tgt = asg_input(g, "targets", ASG_I32, ASG_SHAPE(c.batch, c.ctx));
  asg_tensor *loss = asg_softmax_cross_entropy(logits, tgt, 0.0, -100);
  asg_compile_opts opts = {.backend = backend, .num_threads = threads, .bf16_matmul = bf16};
  asg_optim adamw = asg_adamw(lr, 0.01);
  adamw.track_grad_norm = logdir != NULL; /* logged as train/grad_norm */
  asg_program *train = asg_compile_train(g, loss, adamw, 0, NULL, &opts);
  if (!train) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  /* One evaluation program (no dropout) over a symbolic batch and length,
   * sharing the parameters: validation reads the loss, sampling the logits
   * of the last position, [batch, 1, V]. */
  asg_graph *ge = asg_graph_new();
  asg_graph_set_training(ge, false);
  int64_t eb = asg_dim(ge, "batch", 0), et = asg_dim(ge, "seq", c.ctx);
  asg_tensor *etok, *elog = gpt(ge, &c, eb, et, &etok);
  asg_tensor *etgt = asg_input(ge, "targets", ASG_I32, ASG_SHAPE(eb, et));
  asg_tensor *eout[2] = {asg_softmax_cross_entropy(elog, etgt, 0.0, -100),
                         asg_slice(elog, 1, -1, INT64_MAX, 1)};
  asg_tensor *eloss = eout[0], *slog = eout[1];
  asg_compile_opts shared = {
      .backend = backend, .share_variables = train, .num_threads = threads, .bf16_matmul = bf16};
  asg_program *eval = asg_compile(ge, 2, eout, &shared);
  if (!eval) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  int64_t nparams = 0;
  for (int i = 0; i < asg_program_variable_count(train); i++) {
    const char *name;
    asg_shape s;
    asg_program_variable_info(train, i, &name, NULL, &s);
    if (!strchr(name, '/') && !strstr(name, ".adam_")) nparams += asg_shape_numel(s);
  }
  printf("%lld parameters; train step: %d kernels, %.1f MB activations\n", (long long)nparams,
         asg_program_step_count(train), asg_program_peak_memory(train) / 1e6);

  asg_tblog *tb = logdir ? asg_tblog_open(logdir) : NULL;
  if (logdir && !tb) {
    fprintf(stderr, "logdir: %s\n", asg_last_error());
    return 1;
  }
  if (tb) printf("TensorBoard log: %s\n", asg_tblog_path(tb));
  size_t nb = (size_t)c.batch * (size_t)c.ctx;
  int32_t *x = malloc(sizeof *x * nb), *y = malloc(sizeof *y * nb);
  asg_progress *pr = asg_progress_new("train", steps, steps / 10);
  double t0 = seconds(), avg = 0, val = 0, tlog = t0;
  int every = steps / 10 > 0 ? steps / 10 : 1, s_logged = 0; /* histograms, tokens/s */
  for (int s = 1; s <= steps; s++) {
    double warm = s < 100 ? s / 100.0 : 1.0; /* linear warmup, then cosine decay */
    double lr_s = lr * warm * (0.55 + 0.45 * cos(3.141592653589793 * s / steps));
    asg_optim_set_lr(train, lr_s);
    asg_text_batch(&text, 0, split, c.batch, c.ctx, 1, (uint64_t)s, x, y);
    asg_program_feed(train, "tokens", x, sizeof *x * nb);
    asg_program_feed(train, "targets", y, sizeof *y * nb);
    if (asg_program_run(train) != ASG_OK) {
      fprintf(stderr, "run: %s\n", asg_last_error());
      return 1;
    }
    double l = asg_program_scalar(train, loss);
    avg = s == 1 ? l : 0.98 * avg + 0.02 * l;
    asg_progress_update(pr, s, avg, (int64_t)nb);
    if (tb) {
      asg_tblog_scalar(tb, "train/loss", s, l);
      asg_tblog_scalar(tb, "train/lr", s, lr_s);
      asg_optim_stats os;
      if (asg_optim_get_stats(train, &os) == ASG_OK && !isnan(os.grad_norm))
        asg_tblog_scalar(tb, "train/grad_norm", s, os.grad_norm);
      if (s % every == 0 || s == steps) {
        double now = seconds();
        asg_tblog_scalar(tb, "train/tokens_per_s", s,
                         (double)(s - s_logged) * (double)nb / (now - tlog));
        if (asg_tblog_variables(tb, train, s) || asg_tblog_flush(tb))
          fprintf(stderr, "logdir: %s\n", asg_last_error());
        tlog = seconds(), s_logged = s; /* histograms not counted in tokens/s */
      }
    }
  }
  asg_progress_free(pr);
  for (int k = 0; k < 20; k++) { /* validation: 20 fixed batches */
    asg_text_batch(&text, split, text.n, c.batch, c.ctx, 99, (uint64_t)k, x, y);
    asg_shape bt = ASG_SHAPE(c.batch, c.ctx); /* binds batch and seq */
    if (asg_program_feed_tensor(eval, "tokens", ASG_I32, bt, x) != ASG_OK ||
        asg_program_feed_tensor(eval, "targets", ASG_I32, bt, y) != ASG_OK ||
        asg_program_run(eval) != ASG_OK) {
      fprintf(stderr, "validation: %s\n", asg_last_error());
      return 1;
    }
    val += asg_program_scalar(eval, eloss) / 20;
  }
  printf("validation loss %.3f nats/char vs unigram entropy %.3f (%.1f s)\n", val, h1,
         seconds() - t0);
  if (tb) asg_tblog_scalar(tb, "val/loss", steps, val);
  if (asg_tblog_close(tb)) fprintf(stderr, "logdir: %s\n", asg_last_error());

  /* sample: a prompt of P characters, grown one drawn character at a time
   * up to ctx and then slid; draws from softmax(last logits / 0.8). The
   * loss output is computed too but not read: targets only need to be
   * valid indices, the window itself serves. */
  float *last = malloc(sizeof *last * (size_t)c.vocab);
  int32_t *win = malloc(sizeof *win * (size_t)c.ctx);
  int len = c.ctx < 16 ? c.ctx : 16;
  memcpy(win, text.tokens + split, sizeof *win * (size_t)len);
  printf("--- sample (prompt of %d characters) ---\n", len);
  for (int i = 0; i < len; i++)
    putchar(text.chars[win[i]]);
  unsigned long long rng = 12345;
  for (int n = 0; n < nsample; n++) {
    asg_shape ws = ASG_SHAPE(1, len); /* batch 1, seq len */
    if (asg_program_feed_tensor(eval, "tokens", ASG_I32, ws, win) != ASG_OK ||
        asg_program_feed_tensor(eval, "targets", ASG_I32, ws, win) != ASG_OK ||
        asg_program_run(eval) != ASG_OK ||
        asg_program_fetch(eval, slog, last, sizeof *last * (size_t)c.vocab) != ASG_OK) {
      fprintf(stderr, "\nsample: %s\n", asg_last_error());
      return 1;
    }
    double mx = last[0], z = 0;
    for (int v = 1; v < c.vocab; v++)
      mx = last[v] > mx ? last[v] : mx;
    for (int v = 0; v < c.vocab; v++)
      z += exp((last[v] - mx) / 0.8);
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(rng >> 11) / 9007199254740992.0 * z, acc = 0;
    int pick = c.vocab - 1;
    for (int v = 0; v < c.vocab; v++) {
      acc += exp((last[v] - mx) / 0.8);
      if (acc >= u) {
        pick = v;
        break;
      }
    }
    if (len == c.ctx) /* full: slide */
      memmove(win, win + 1, sizeof *win * (size_t)(--len));
    win[len++] = pick;
    putchar(text.chars[pick]);
  }
  printf("\n--- end ---\n");
  printf("eval program: %d specialization(s) cached (batch x seq bindings, at most 8 kept)\n",
         asg_program_specialization_count(eval));
  free(last), free(win), free(x), free(y);
  asg_program_free(eval), asg_program_free(train);
  asg_graph_free(ge), asg_graph_free(g);
  asg_text_free(&text);
  return val < h1 ? 0 : 1;
}
