/* A character-level recurrent language model (embedding -> LSTM or GRU ->
 * linear) trained on the same corpus and windows as char_gpt, then sampled
 * one character at a time by carrying the recurrent state.
 *
 *   char_rnn [--steps N] [--batch B] [--ctx T] [--layers L] [--hidden H]
 *            [--embed E] [--cell lstm|gru] [--lr LR] [--time S] [--sample N]
 *            [--threads T] [--backend cpu|cuda|vulkan] [--help] [paths...]
 *
 * Training runs one static program over [batch, ctx] windows from zero
 * states (the layer is unrolled over the ctx steps: docs/layers.md).
 * Validation uses an evaluation program of the same shape; sampling a third
 * program of one step ([1, 1] token, states h0/c0 in, h_n/c_n out), all
 * sharing the trained variables. --time S stops training after S seconds
 * (the learning-rate schedule still spans --steps), for comparisons at equal
 * time with char_gpt. Exits non-zero unless the validation loss ends below
 * the unigram entropy of the validation text. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "asg/nn.h"
#include "common/corpus.h"
#include "common/opts.h"

typedef struct cfg {
  int layers, hidden, embed, ctx, batch, vocab;
  bool gru;
} cfg;

/* tokens [B, T] -> logits [B, T, V]; h0/c0 [L, B, H] or NULL (zeros). */
static asg_tensor *char_model(asg_graph *g, const cfg *c, int64_t batch, int64_t seq,
                              asg_tensor *h0, asg_tensor *c0, asg_tensor **hn, asg_tensor **cn) {
  asg_rnn_opts o = {.num_layers = c->layers, .batch_first = true};
  asg_tensor *tok = asg_input(g, "tokens", ASG_I32, ASG_SHAPE(batch, seq));
  asg_tensor *e = asg_layer_apply(asg_nn_embedding(g, "embed", c->vocab, c->embed), tok);
  asg_layer *rnn = c->gru ? asg_nn_gru(g, "rnn", c->embed, c->hidden, &o)
                          : asg_nn_lstm(g, "rnn", c->embed, c->hidden, &o);
  asg_tensor *h = asg_rnn_apply(rnn, e, h0, c0, hn, cn);
  return asg_layer_apply(asg_nn_linear(g, "head", c->hidden, c->vocab), h);
}

static double seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(const char *prog, const cfg *c, int steps, int nsample, double lr) {
  printf("usage: %s [--steps N (%d)] [--batch B (%d)] [--ctx T (%d)] [--layers L (%d)]\n"
         "       [--hidden H (%d)] [--embed E (%d)] [--cell lstm|gru (lstm)] [--lr LR (%g)]\n"
         "       [--time S (none): stop training after S seconds] [--sample N (%d)]\n"
         "       [--threads T (all CPUs)] [--backend cpu|cuda|vulkan (cpu)] [paths...]\n"
         "Corpus: the given text files, else /usr/share/games/fortunes.\n",
         prog, steps, c->batch, c->ctx, c->layers, c->hidden, c->embed, lr, nsample);
}

static int fail(const char *what) {
  fprintf(stderr, "%s: %s\n", what, asg_last_error());
  return 1;
}

int main(int argc, char **argv) {
  cfg c = {.layers = 1, .hidden = 256, .embed = 64, .ctx = 64, .batch = 16}; /* char_gpt's batch */
  int steps = 3000, nsample = 400, threads = 0;
  double lr = 3e-3, tlimit = 0;
  const char *backend = "cpu";
  static const struct option lo[] = {
      {"steps", required_argument, 0, 's'},   {"batch", required_argument, 0, 'b'},
      {"ctx", required_argument, 0, 'c'},     {"layers", required_argument, 0, 'L'},
      {"hidden", required_argument, 0, 'd'},  {"embed", required_argument, 0, 'e'},
      {"cell", required_argument, 0, 'C'},    {"lr", required_argument, 0, 'l'},
      {"time", required_argument, 0, 'T'},    {"sample", required_argument, 0, 'S'},
      {"threads", required_argument, 0, 't'}, {"backend", required_argument, 0, 'B'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int bad = 0;
  for (int o; !bad && (o = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
    switch (o) {
    case 's': bad = opt_int("steps", optarg, 1, 1 << 30, &steps); break;
    case 'b': bad = opt_int("batch", optarg, 1, 1 << 20, &c.batch); break;
    case 'c': bad = opt_int("ctx", optarg, 2, 4096, &c.ctx); break;
    case 'L': bad = opt_int("layers", optarg, 1, 16, &c.layers); break;
    case 'd': bad = opt_int("hidden", optarg, 1, 1 << 16, &c.hidden); break;
    case 'e': bad = opt_int("embed", optarg, 1, 1 << 16, &c.embed); break;
    case 'C':
      c.gru = strcmp(optarg, "gru") == 0;
      if (!c.gru && strcmp(optarg, "lstm") != 0) {
        fprintf(stderr, "--cell: '%s' is not lstm or gru\n", optarg);
        bad = -1;
      }
      break;
    case 'l': bad = opt_double("lr", optarg, 0, &lr); break;
    case 'T': bad = opt_double("time", optarg, 0, &tlimit); break;
    case 'S': bad = opt_int("sample", optarg, 0, 1 << 20, &nsample); break;
    case 't': bad = opt_int("threads", optarg, 0, 4096, &threads); break;
    case 'B': backend = optarg; break;
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
  printf("model: %s, %d layer(s), hidden %d, embedding %d, context %d, batch %d\n",
         c.gru ? "GRU" : "LSTM", c.layers, c.hidden, c.embed, c.ctx, c.batch);

  double tc = seconds();
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 7);
  asg_tensor *logits = char_model(g, &c, c.batch, c.ctx, NULL, NULL, NULL, NULL);
  asg_tensor *tgt = asg_input(g, "targets", ASG_I32, ASG_SHAPE(c.batch, c.ctx));
  asg_tensor *loss = asg_softmax_cross_entropy(logits, tgt, 0.0, -100);
  asg_compile_opts opts = {.backend = backend, .num_threads = threads};
  asg_optim adam = asg_adam(lr);
  adam.clip_norm = 1.0; /* recurrent gradients can spike */
  int nodes = asg_graph_node_count(g);
  asg_program *train = asg_compile_train(g, loss, adam, 0, NULL, &opts);
  if (!train) return fail("compile");
  double t_train = seconds() - tc;

  /* validation: the same shape, no training; sampling: one step with the
   * states as inputs and outputs. Both share the trained variables. */
  asg_compile_opts shared = {.backend = backend, .share_variables = train, .num_threads = threads};
  asg_graph *ge = asg_graph_new();
  asg_graph_set_training(ge, false);
  asg_tensor *elog = char_model(ge, &c, c.batch, c.ctx, NULL, NULL, NULL, NULL);
  asg_tensor *eloss = asg_softmax_cross_entropy(
      elog, asg_input(ge, "targets", ASG_I32, ASG_SHAPE(c.batch, c.ctx)), 0.0, -100);
  asg_program *eval = asg_compile(ge, 1, &eloss, &shared);
  if (!eval) return fail("compile");
  asg_graph *gs = asg_graph_new();
  asg_graph_set_training(gs, false);
  asg_shape ss = ASG_SHAPE(c.layers, 1, c.hidden);
  asg_tensor *h0 = asg_input(gs, "h0", ASG_F32, ss);
  asg_tensor *c0 = c.gru ? NULL : asg_input(gs, "c0", ASG_F32, ss), *hn, *cn;
  asg_tensor *slog = char_model(gs, &c, 1, 1, h0, c0, &hn, c.gru ? NULL : &cn);
  asg_tensor *souts[3] = {slog, hn, c.gru ? NULL : cn};
  asg_program *smp = asg_compile(gs, c.gru ? 2 : 3, souts, &shared);
  if (!smp) return fail("compile");

  int64_t nparams = 0;
  for (int i = 0; i < asg_program_variable_count(train); i++) {
    const char *name;
    asg_shape s;
    asg_program_variable_info(train, i, &name, NULL, &s);
    if (!asg_is_optimizer_state(name)) nparams += asg_shape_numel(s);
  }
  printf("%lld parameters; train graph %d nodes before autograd, compiled in %.2f s: %d kernels, "
         "%.1f MB activations\n",
         (long long)nparams, nodes, t_train, asg_program_step_count(train),
         asg_program_peak_memory(train) / 1e6);

  size_t nb = (size_t)c.batch * (size_t)c.ctx;
  int32_t *x = malloc(sizeof *x * nb), *y = malloc(sizeof *y * nb);
  if (!x || !y) return 1;
  asg_progress *pr = asg_progress_new("train", steps, steps / 10);
  double t0 = seconds(), avg = 0, val = 0;
  int done = 0;
  for (int s = 1; s <= steps; s++) {
    double warm = s < 100 ? s / 100.0 : 1.0; /* char_gpt's schedule: warmup, cosine */
    asg_optim_set_lr(train, lr * warm * (0.55 + 0.45 * cos(3.141592653589793 * s / steps)));
    asg_text_batch(&text, 0, split, c.batch, c.ctx, 1, (uint64_t)s, x, y);
    asg_program_feed(train, "tokens", x, sizeof *x * nb);
    asg_program_feed(train, "targets", y, sizeof *y * nb);
    if (asg_program_run(train) != ASG_OK) return fail("run");
    double l = asg_program_scalar(train, loss);
    avg = s == 1 ? l : 0.98 * avg + 0.02 * l;
    asg_progress_update(pr, s, avg, (int64_t)nb);
    done = s;
    if (tlimit > 0 && seconds() - t0 >= tlimit) break;
  }
  asg_progress_free(pr);
  double ttrain = seconds() - t0;
  for (int k = 0; k < 20; k++) { /* validation: char_gpt's 20 fixed batches */
    asg_text_batch(&text, split, text.n, c.batch, c.ctx, 99, (uint64_t)k, x, y);
    asg_program_feed(eval, "tokens", x, sizeof *x * nb);
    asg_program_feed(eval, "targets", y, sizeof *y * nb);
    if (asg_program_run(eval) != ASG_OK) return fail("validation");
    val += asg_program_scalar(eval, eloss) / 20;
  }
  printf("%d steps in %.1f s (%.1f ms/step); validation loss %.3f nats/char vs unigram entropy "
         "%.3f\n",
         done, ttrain, 1e3 * ttrain / done, val, h1);

  /* sample: feed the prompt one character at a time, then draw from
   * softmax(logits / 0.8), carrying h (and c) from step to step */
  size_t ns = (size_t)c.layers * (size_t)c.hidden;
  float *hs = calloc(ns, sizeof *hs), *cs = calloc(ns, sizeof *cs);
  float *last = malloc(sizeof *last * (size_t)c.vocab);
  if (!hs || !cs || !last) return 1;
  int plen = 16;
  printf("--- sample (prompt of %d characters) ---\n", plen);
  unsigned long long rng = 12345;
  int32_t tok = text.tokens[split];
  for (int n = 0; n < plen + nsample; n++) {
    if (n < plen) tok = text.tokens[split + n];
    putchar(text.chars[tok]);
    if (asg_program_feed(smp, "tokens", &tok, sizeof tok) != ASG_OK ||
        asg_program_feed(smp, "h0", hs, sizeof *hs * ns) != ASG_OK ||
        (!c.gru && asg_program_feed(smp, "c0", cs, sizeof *cs * ns) != ASG_OK) ||
        asg_program_run(smp) != ASG_OK ||
        asg_program_fetch(smp, slog, last, sizeof *last * (size_t)c.vocab) != ASG_OK ||
        asg_program_fetch(smp, hn, hs, sizeof *hs * ns) != ASG_OK ||
        (!c.gru && asg_program_fetch(smp, cn, cs, sizeof *cs * ns) != ASG_OK))
      return fail("\nsample");
    if (n + 1 < plen) continue;
    double mx = last[0], z = 0, acc = 0;
    for (int v = 1; v < c.vocab; v++)
      mx = last[v] > mx ? last[v] : mx;
    for (int v = 0; v < c.vocab; v++)
      z += exp((last[v] - mx) / 0.8);
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(rng >> 11) / 9007199254740992.0 * z;
    tok = c.vocab - 1;
    for (int v = 0; v < c.vocab; v++) {
      acc += exp((last[v] - mx) / 0.8);
      if (acc >= u) {
        tok = v;
        break;
      }
    }
  }
  printf("\n--- end ---\n");
  free(hs), free(cs), free(last), free(x), free(y);
  asg_program_free(smp), asg_program_free(eval), asg_program_free(train);
  asg_graph_free(gs), asg_graph_free(ge), asg_graph_free(g);
  asg_text_free(&text);
  return val < h1 ? 0 : 1;
}
