/* `asg graph`: builds one of the example models and writes its graph as
 * Graphviz DOT or as the HTML viewer (asg/viz.h). The MLP and CNN are the
 * benchmarks' (bench/bench_common.c), GPT-2 too (bench/gpt2_model.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "asg_cmd.h"
#include "bench_common.h"
#include "gpt2_model.h"

static const char usage[] =
    "usage: asg graph --model NAME [options] -o FILE.dot|FILE.html\n"
    "  -m, --model NAME    mlp, cnn, gpt2-small (GPT-2 124M) or char_gpt\n"
    "  -o, --output FILE   .dot (Graphviz) or .html (the viewer); required\n"
    "  -t, --train         the whole training step: loss, gradients, AdamW update\n"
    "                      (default: the forward pass and loss only)\n"
    "  -b, --batch N       batch size (default 8; GPT models: 1)\n"
    "  -T, --ctx N         GPT models: sequence length (default 64)\n"
    "      --plan          .html: compile on the CPU and add the memory plan\n"
    "                      (allocates and initializes the variables)\n"
    "      --profile JSON  .html: attach per-node times (format: asg/viz.h)\n"
    "      --depth N       .dot: draw scopes at most N deep as clusters (default 0: all)\n"
    "  -h, --help          this help\n";

typedef struct model {
  asg_graph *g;
  asg_tensor *loss;
} model;

/* The benchmarks' GPT-2 (bench/gpt2_model.c: nn layers, so each block is a
 * name scope) and its next-token loss. */
static asg_tensor *gpt_loss(asg_graph *g, const gpt2_cfg *c) {
  const int64_t B = c->batch, T = c->ctx;
  asg_tensor *tok = asg_input(g, "tokens", ASG_I32, ASG_SHAPE(B, T));
  asg_tensor *tgt = asg_input(g, "targets", ASG_I32, ASG_SHAPE(B * T));
  asg_layer *wte = NULL;
  asg_tensor *logits = gpt2_logits(g, c, tok, &wte);
  asg_scope_push(g, "loss");
  asg_tensor *l = asg_cross_entropy_loss(asg_reshape(logits, ASG_SHAPE(B * T, c->vocab)), tgt, 0,
                                         -100, ASG_REDUCE_MEAN);
  asg_scope_pop(g);
  return l;
}

static int build(model *m, const char *name, int64_t B, int64_t T) {
  asg_graph *g = m->g = asg_graph_new();
  if (!g) return 1;
  if (!strcmp(name, "mlp") || !strcmp(name, "cnn")) {
    const bool mlp = name[0] == 'm';
    asg_tensor *x = asg_input(g, "x", ASG_F32, mlp ? ASG_SHAPE(B, 784) : ASG_SHAPE(B, 1, 28, 28));
    asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(B));
    asg_tensor *logits = mlp ? bench_mlp_logits(g, x) : bench_cnn_logits(g, x);
    asg_scope_push(g, "loss");
    m->loss = asg_cross_entropy_loss(logits, y, 0, -100, ASG_REDUCE_MEAN);
    asg_scope_pop(g);
  } else if (!strcmp(name, "gpt2-small") || !strcmp(name, "char_gpt")) {
    const bool big = name[0] == 'g'; /* GPT-2 124M, or the char_gpt example's default */
    gpt2_cfg c = {.batch = (int)B,
                  .ctx = (int)T,
                  .layers = big ? 12 : 4,
                  .dim = big ? 768 : 128,
                  .heads = big ? 12 : 4,
                  .vocab = big ? 50257 : 96};
    if (T > 1024) {
      fprintf(stderr, "asg graph: --ctx %lld is more than the model's 1024 positions\n",
              (long long)T);
      return 2;
    }
    m->loss = gpt_loss(g, &c);
  } else {
    fprintf(stderr, "asg graph: unknown model '%s' (mlp, cnn, gpt2-small, char_gpt)\n", name);
    return 2;
  }
  if (asg_graph_error(g)) {
    fprintf(stderr, "asg graph: building %s: %s\n", name, asg_graph_error(g));
    return 1;
  }
  return 0;
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0, k;
  char *s = malloc(cap);
  while (s && (k = fread(s + n, 1, cap - n - 1, f)) > 0) {
    n += k;
    if (cap - n < 2) {
      char *t = realloc(s, cap *= 2);
      if (!t) free(s);
      s = t;
    }
  }
  fclose(f);
  if (s) s[n] = '\0';
  return s;
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

static bool parse_count(const char *s, const char *opt, int64_t *out) {
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || v < 1 || v > 1 << 20) {
    fprintf(stderr, "asg graph: %s needs a count from 1 to %d, not '%s'\n", opt, 1 << 20, s);
    return false;
  }
  *out = v;
  return true;
}

int asg_cmd_graph(int argc, char **argv) {
  enum { OPT_PLAN = 256, OPT_PROFILE, OPT_DEPTH };
  static const struct option lo[] = {{"model", required_argument, 0, 'm'},
                                     {"output", required_argument, 0, 'o'},
                                     {"train", no_argument, 0, 't'},
                                     {"batch", required_argument, 0, 'b'},
                                     {"ctx", required_argument, 0, 'T'},
                                     {"plan", no_argument, 0, OPT_PLAN},
                                     {"profile", required_argument, 0, OPT_PROFILE},
                                     {"depth", required_argument, 0, OPT_DEPTH},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  const char *name = NULL, *out = NULL, *prof_path = NULL;
  bool train = false, plan = false;
  int64_t B = 0, T = 64, depth = 0;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "m:o:tb:T:h", lo, NULL)) != -1) {
    switch (c) {
    case 'm': name = optarg; break;
    case 'o': out = optarg; break;
    case 't': train = true; break;
    case 'b':
      if (!parse_count(optarg, "--batch", &B)) return 2;
      break;
    case 'T':
      if (!parse_count(optarg, "--ctx", &T)) return 2;
      break;
    case OPT_PLAN: plan = true; break;
    case OPT_PROFILE: prof_path = optarg; break;
    case OPT_DEPTH:
      if (!parse_count(optarg, "--depth", &depth)) return 2;
      break;
    case 'h': printf("%s", usage); return 0;
    default: fprintf(stderr, "%s", usage); return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr,
            "asg graph: unexpected argument '%s' (programs are not saved as graphs: "
            "use --model)\n%s",
            argv[optind], usage);
    return 2;
  }
  const bool html = out && ends_with(out, ".html"), dot = out && ends_with(out, ".dot");
  if (!name || !out || (!html && !dot)) {
    fprintf(stderr, "asg graph: %s\n%s",
            !name  ? "--model is required"
            : !out ? "-o FILE is required"
                   : "the output must end in .dot or .html",
            usage);
    return 2;
  }
  if (dot && (plan || prof_path)) {
    fprintf(stderr, "asg graph: --plan and --profile are for .html output\n");
    return 2;
  }
  if (!B) B = !strcmp(name, "gpt2-small") || !strcmp(name, "char_gpt") ? 1 : 8;
  model m = {0};
  int rc = build(&m, name, B, T);
  char *prof = NULL;
  asg_tensor *updates[1024];
  int n_up = 0;
  asg_program *p = NULL;
  if (!rc && train &&
      asg_optim_build(m.loss, asg_adamw(3e-4, 0.1), 0, NULL, updates, 1024, &n_up) != ASG_OK) {
    fprintf(stderr, "asg graph: the training step: %s\n", asg_last_error());
    rc = 1;
  }
  if (!rc && prof_path && !(prof = read_text(prof_path))) {
    fprintf(stderr, "asg graph: cannot read %s\n", prof_path);
    rc = 1;
  }
  if (!rc && plan) {
    asg_tensor *outs[1025];
    outs[0] = m.loss;
    memcpy(outs + 1, updates, sizeof *updates * (size_t)n_up);
    p = asg_compile(m.g, 1 + n_up, outs, NULL);
    if (!p) {
      fprintf(stderr, "asg graph: compiling: %s\n", asg_last_error());
      rc = 1;
    }
  }
  if (!rc) {
    char title[128];
    snprintf(title, sizeof title, "%s %s (batch %lld)", name, train ? "training step" : "forward",
             (long long)B);
    asg_viz_opts o = {.title = title, .profile_json = prof, .dot_max_depth = (int)depth};
    asg_status st = dot ? asg_graph_write_dot(m.g, out, &o)
                    : p ? asg_program_write_html(p, m.g, out, &o)
                        : asg_graph_write_html(m.g, out, &o);
    if (st) {
      fprintf(stderr, "asg graph: %s\n", asg_last_error());
      rc = 1;
    } else {
      printf("wrote %s: %d nodes\n", out, asg_graph_node_count(m.g));
    }
  }
  asg_program_free(p);
  asg_graph_free(m.g);
  free(prof);
  return rc;
}
