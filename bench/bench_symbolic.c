/* Symbolic programs vs static ones (docs/symbolic.md), in one run:
 *
 * (a) the steady-state training step (feed inputs, run, read the loss) of a
 *     program compiled from a graph with a symbolic batch (and sequence
 *     length for GPT) against the static program of the same shape: same
 *     model, same seed, same data; the two are timed in alternation (ABBA)
 *     so that a load change on the machine hits both alike. Both medians and
 *     their ratio are printed, and both losses after the same steps (equal
 *     when the specialization computes what the static program does).
 * (b) the cost of a new binding: asg_program_prepare for `bindings` fresh
 *     bindings of the symbolic training program (clone + static compile of
 *     the specialization; median), then the first run of each (backend state
 *     built lazily, e.g. CUDA graph capture) next to the steady step. A
 *     binding beyond the cache size (--max-specs) also evicts the least
 *     recently used specialization, inside the timed prepare.
 *
 * Models: the MLP 784-512-512-10 (batch 128) and the CNN (batch 64) of
 * bench/bench_train.c with Adam, and GPT-2 (bench/gpt2_model.c, AdamW as
 * bench/gpt2.c) at a small size by default or 124M with --gpt2-full
 * (B 8, T 1024, 12 layers, d 768, vocabulary 50304).
 *
 *   bench_symbolic [--backend cpu|cuda|vulkan] [--models mlp,cnn,gpt]
 *                  [--steps N] [--warmup N] [--bindings N] [--max-specs N]
 *                  [--threads N] [--gpt-layers L] [--gpt-dim D]
 *                  [--gpt-heads H] [--gpt-ctx T] [--gpt-batch B]
 *                  [--gpt-vocab V] [--gpt2-full] [--help]
 *
 * Summary lines (one per model and part):
 *   step mlp backend cpu shape 128 static_ms 1.950 symbolic_ms 1.962 ratio 1.006
 *        min_ms 1.901/1.910 ...    (medians, their ratio, the fastest steps)
 *   bind mlp backend cpu n 5 prepare_ms 6.812 min 6.5 max 7.4 first_run_ms 2.4 ...
 * Exit status 77: backend not available. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "bench_common.h"
#include "gpt2_model.h"

typedef enum kind { MLP, CNN, GPT } kind;

typedef struct opts {
  const char *backend;
  int steps, warmup, bindings, max_specs, threads;
  bool model[3];
  gpt2_cfg gpt;
} opts;

/* One model: its static shape (batch, seq; seq 0 for none) and host data
 * for that shape (smaller bindings feed its first rows). */
typedef struct model {
  kind k;
  const char *name;
  int64_t batch, seq;
  void *x;
  int32_t *y;
} model;

static const char *in_x(const model *m) { return m->k == GPT ? "tokens" : "x"; }
static const char *in_y(const model *m) { return m->k == GPT ? "targets" : "y"; }

/* The shapes of the two inputs for batch b (and seq t). */
static asg_shape shape_x(const model *m, int64_t b, int64_t t) {
  return m->k == MLP ? ASG_SHAPE(b, 784) : m->k == CNN ? ASG_SHAPE(b, 1, 28, 28) : ASG_SHAPE(b, t);
}
static asg_shape shape_y(const model *m, int64_t b, int64_t t) {
  return m->k == GPT ? ASG_SHAPE(b, t) : ASG_SHAPE(b);
}

/* The training loss over batch dim b (and seq t): constants for the static
 * program, symbols for the symbolic one. */
static asg_tensor *build(asg_graph *g, const model *m, const opts *o, int64_t b, int64_t t) {
  asg_graph_set_seed(g, 7);
  asg_tensor *x = asg_input(g, in_x(m), m->k == GPT ? ASG_I32 : ASG_F32, shape_x(m, b, t));
  asg_tensor *y = asg_input(g, in_y(m), ASG_I32, shape_y(m, b, t)), *logits;
  if (m->k == MLP) {
    logits = bench_mlp_logits(g, x);
  } else if (m->k == CNN) { /* bench_train.c's CNN */
    logits = bench_cnn_logits(g, x);
  } else {
    asg_layer *wte;
    logits = gpt2_logits(g, &o->gpt, x, &wte);
  }
  return asg_softmax_cross_entropy(logits, y, 0.0, -100);
}

static asg_program *compile(asg_graph *g, asg_tensor *loss, const model *m, const opts *o,
                            double *ms) {
  asg_compile_opts co = {
      .backend = o->backend, .num_threads = o->threads, .max_specializations = o->max_specs};
  double t0 = bench_now();
  asg_program *p =
      asg_compile_train(g, loss, m->k == GPT ? asg_adamw(6e-4, 0.1) : asg_adam(1e-3), 0, NULL, &co);
  *ms = 1e3 * (bench_now() - t0);
  if (p && m->k == GPT && gpt2_init_wte(p, &o->gpt, 1234) != ASG_OK) {
    fprintf(stderr, "%s: wte init: %s\n", m->name, asg_last_error());
    asg_program_free(p);
    return NULL;
  }
  if (!p) fprintf(stderr, "%s: compile: %s\n", m->name, asg_last_error());
  return p;
}

/* One training step as a loop runs it: feed both inputs, run, read the loss
 * (a host sync). Returns seconds, < 0 on error. */
static double step(asg_program *p, asg_tensor *loss, const model *m, int64_t b, int64_t t,
                   double *l) {
  double t0 = bench_now();
  if (asg_program_feed_tensor(p, in_x(m), m->k == GPT ? ASG_I32 : ASG_F32, shape_x(m, b, t),
                              m->x) != ASG_OK ||
      asg_program_feed_tensor(p, in_y(m), ASG_I32, shape_y(m, b, t), m->y) != ASG_OK ||
      asg_program_run(p) != ASG_OK) {
    fprintf(stderr, "%s: step: %s\n", m->name, asg_last_error());
    return -1;
  }
  *l = asg_program_scalar(p, loss);
  return bench_now() - t0;
}

static void shape_str(const model *m, int64_t b, int64_t t, char *buf, size_t n) {
  if (m->seq)
    snprintf(buf, n, "%lldx%lld", (long long)b, (long long)t);
  else
    snprintf(buf, n, "%lld", (long long)b);
}

/* (a) and (b) for one model; 0 = ok. */
static int bench_model(const model *m, const opts *o) {
  const int64_t B = m->batch, T = m->seq;
  asg_graph *gs = asg_graph_new(), *gy = asg_graph_new();
  int64_t sb = asg_dim(gy, "batch", 0), st = T ? asg_dim(gy, "seq", T) : 0;
  asg_tensor *ls = build(gs, m, o, B, T), *ly = build(gy, m, o, sb, st);
  double cs_ms, cy_ms, first_ms, ls_v = 0, ly_v = 0;
  asg_program *ps = compile(gs, ls, m, o, &cs_ms), *py = compile(gy, ly, m, o, &cy_ms);
  int rc = 1, n = o->steps, nb = o->bindings;
  double *ts = malloc(sizeof *ts * (size_t)n), *ty = malloc(sizeof *ty * (size_t)n);
  double *tp = malloc(sizeof *tp * (size_t)nb), *tf = malloc(sizeof *tf * (size_t)nb);
  char shp[64];
  shape_str(m, B, T, shp, sizeof shp);
  if (!ps || !py || !ts || !ty || !tp || !tf) goto out;
  /* the symbolic program's first run specializes it */
  first_ms = 1e3 * step(py, ly, m, B, T, &ly_v);
  if (step(ps, ls, m, B, T, &ls_v) < 0 || first_ms < 0) goto out;
  for (int i = 1; i < o->warmup; i++)
    if (step(ps, ls, m, B, T, &ls_v) < 0 || step(py, ly, m, B, T, &ly_v) < 0) goto out;
  for (int i = 0; i < n; i++) { /* ABBA: static first on even steps, symbolic first on odd */
    asg_program *a = i % 2 ? py : ps, *b = i % 2 ? ps : py;
    double *ta = i % 2 ? ty : ts, *tb = i % 2 ? ts : ty;
    ta[i] = step(a, a == ps ? ls : ly, m, B, T, a == ps ? &ls_v : &ly_v);
    tb[i] = step(b, b == ps ? ls : ly, m, B, T, b == ps ? &ls_v : &ly_v);
    if (ta[i] < 0 || tb[i] < 0) goto out;
  }
  double ms_s = 1e3 * bench_median(ts, n), ms_y = 1e3 * bench_median(ty, n);
  printf(
      "step %s backend %s shape %s static_ms %.3f symbolic_ms %.3f ratio %.4f "
      "min_ms %.3f/%.3f loss_static %.6f loss_symbolic %.6f kernels %d/%d compile_static_ms %.1f "
      "compile_symbolic_ms %.1f first_symbolic_run_ms %.1f\n",
      m->name, o->backend, shp, ms_s, ms_y, ms_y / ms_s, 1e3 * ts[0], 1e3 * ty[0], ls_v, ly_v,
      asg_program_step_count(ps), asg_program_step_count(py), cs_ms, cy_ms, first_ms);
  fflush(stdout);
  asg_program_free(ps); /* (b) needs only the symbolic program: free the device memory */
  ps = NULL;

  /* (b) fresh bindings: one less row (or token) each time */
  for (int k = 0; k < nb; k++) {
    int64_t b = T ? B : B - 1 - k, t = T ? T - 1 - k : 0, vals[2] = {b, t};
    const char *names[2] = {"batch", "seq"};
    double t0 = bench_now();
    if (asg_program_prepare(py, T ? 2 : 1, names, vals) != ASG_OK) {
      fprintf(stderr, "%s: prepare: %s\n", m->name, asg_last_error());
      goto out;
    }
    tp[k] = 1e3 * (bench_now() - t0);
    tf[k] = 1e3 * step(py, ly, m, b, t, &ly_v);
    if (tf[k] < 0) goto out;
  }
  shape_str(m, T ? B : B - 1, T ? T - 1 : 0, shp, sizeof shp);
  char last[64];
  shape_str(m, T ? B : B - nb, T ? T - nb : 0, last, sizeof last);
  double pmed = bench_median(tp, nb), pmin = tp[0], pmax = tp[nb - 1];
  printf("bind %s backend %s n %d shapes %s..%s prepare_ms %.3f min %.3f max %.3f "
         "first_run_ms %.3f steady_step_ms %.3f cached %d (max %d)\n",
         m->name, o->backend, nb, shp, last, pmed, pmin, pmax, bench_median(tf, nb), ms_y,
         asg_program_specialization_count(py), o->max_specs ? o->max_specs : 8);
  rc = 0;
out:
  free(ts), free(ty), free(tp), free(tf);
  asg_program_free(ps), asg_program_free(py);
  asg_graph_free(gs), asg_graph_free(gy);
  return rc;
}

static void usage(FILE *f) {
  fprintf(f, "usage: bench_symbolic [options]\n"
             "  --backend cpu|cuda|vulkan  backend (cpu)\n"
             "  --models LIST              comma-separated: mlp,cnn,gpt (all)\n"
             "  --steps N                  timed steps per program (30)\n"
             "  --warmup N                 untimed steps first (3)\n"
             "  --bindings N               fresh bindings timed for the cost of a binding (5)\n"
             "  --max-specs N              the symbolic programs' cache size (0: the library's\n"
             "                             default, 8; 2 with --gpt2-full to bound device memory)\n"
             "  --threads N                CPU threads (0: all this process may use)\n"
             "  --gpt-layers L --gpt-dim D --gpt-heads H --gpt-ctx T --gpt-batch B --gpt-vocab V\n"
             "                             GPT size (2, 128, 4, 128, 4, 2048)\n"
             "  --gpt2-full                GPT-2 124M: 12 layers, d 768, 12 heads, T 1024, B 8,\n"
             "                             vocabulary 50304\n"
             "  --help                     this text\n");
}

static int parse(int argc, char **argv, opts *o) {
  static const struct option lo[] = {{"backend", required_argument, 0, 'b'},
                                     {"models", required_argument, 0, 'm'},
                                     {"steps", required_argument, 0, 's'},
                                     {"warmup", required_argument, 0, 'w'},
                                     {"bindings", required_argument, 0, 'n'},
                                     {"max-specs", required_argument, 0, 'c'},
                                     {"threads", required_argument, 0, 't'},
                                     {"gpt-layers", required_argument, 0, 'L'},
                                     {"gpt-dim", required_argument, 0, 'D'},
                                     {"gpt-heads", required_argument, 0, 'H'},
                                     {"gpt-ctx", required_argument, 0, 'T'},
                                     {"gpt-batch", required_argument, 0, 'B'},
                                     {"gpt-vocab", required_argument, 0, 'V'},
                                     {"gpt2-full", no_argument, 0, 'F'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  int c;
  bool specs_given = false, full = false;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'b': o->backend = optarg; break;
    case 'm':
      o->model[MLP] = strstr(optarg, "mlp") != NULL;
      o->model[CNN] = strstr(optarg, "cnn") != NULL;
      o->model[GPT] = strstr(optarg, "gpt") != NULL;
      break;
    case 's': o->steps = atoi(optarg); break;
    case 'w': o->warmup = atoi(optarg); break;
    case 'n': o->bindings = atoi(optarg); break;
    case 'c':
      o->max_specs = atoi(optarg);
      specs_given = true;
      break;
    case 't': o->threads = atoi(optarg); break;
    case 'L': o->gpt.layers = atoi(optarg); break;
    case 'D': o->gpt.dim = atoi(optarg); break;
    case 'H': o->gpt.heads = atoi(optarg); break;
    case 'T': o->gpt.ctx = atoi(optarg); break;
    case 'B': o->gpt.batch = atoi(optarg); break;
    case 'V': o->gpt.vocab = atoi(optarg); break;
    case 'F':
      o->gpt = (gpt2_cfg){
          .batch = 8, .ctx = 1024, .layers = 12, .dim = 768, .heads = 12, .vocab = 50304};
      full = true;
      break;
    case 'h': usage(stdout); return 1;
    default: usage(stderr); return -1;
    }
  }
  if (full && !specs_given) o->max_specs = 2; /* each B 8 x T ~1024 arena is large */
  const gpt2_cfg *g = &o->gpt;
  if (optind < argc || o->steps < 1 || o->warmup < 1 || o->bindings < 1 || o->bindings > 60 ||
      o->max_specs < 0 || g->layers < 0 || g->dim < 1 || g->heads < 1 || g->dim % g->heads ||
      g->batch < 1 || g->ctx <= o->bindings || g->vocab < 2) {
    fprintf(stderr, "bad options (steps, warmup, bindings >= 1, bindings <= 60 and < gpt-ctx, "
                    "gpt-dim a multiple of gpt-heads)\n");
    usage(stderr);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  opts o = {.backend = "cpu",
            .steps = 30,
            .warmup = 3,
            .bindings = 5,
            .model = {true, true, true},
            .gpt = {.batch = 4, .ctx = 128, .layers = 2, .dim = 128, .heads = 4, .vocab = 2048}};
  int prc = parse(argc, argv, &o);
  if (prc) return prc > 0 ? 0 : 2;
  if (!asg_backend_available(o.backend)) {
    printf("backend %s unavailable: %s\n", o.backend, asg_last_error());
    return 77;
  }
  const gpt2_cfg *g = &o.gpt;
  printf("device: %s\n", asg_backend_device(o.backend));
  printf("steps %d (alternating static/symbolic, after %d warm-up), %d fresh bindings, cache of "
         "%d; GPT: %d layers, d %d, %d heads, vocabulary %d, B %d, T %d\n",
         o.steps, o.warmup, o.bindings, o.max_specs ? o.max_specs : 8, g->layers, g->dim, g->heads,
         g->vocab, g->batch, g->ctx);
  fflush(stdout);
  /* host data for the largest shape of each model */
  size_t nx = (size_t)g->batch * (size_t)g->ctx, n_img = 128 * 784;
  float *img = malloc(sizeof *img * n_img);
  int32_t *lab = malloc(sizeof *lab * 128), *tok = malloc(sizeof *tok * nx),
          *tgt = malloc(sizeof *tgt * nx);
  if (!img || !lab || !tok || !tgt) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < n_img; i++)
    img[i] = (float)((i * 7919) % 1000) / 1000.0f;
  for (int i = 0; i < 128; i++)
    lab[i] = i % 10;
  uint64_t s = 1234;
  for (size_t i = 0; i < nx; i++)
    tok[i] = (int32_t)(gpt2_rng_next(&s) % (uint64_t)g->vocab);
  for (size_t i = 0; i < nx; i++)
    tgt[i] = (int32_t)(gpt2_rng_next(&s) % (uint64_t)g->vocab);
  const model ms[3] = {{MLP, "mlp", 128, 0, img, lab},
                       {CNN, "cnn", 64, 0, img, lab},
                       {GPT, "gpt", g->batch, g->ctx, tok, tgt}};
  int rc = 0;
  for (int i = 0; i < 3; i++)
    if (o.model[i]) rc |= bench_model(&ms[i], &o);
  free(img), free(lab), free(tok), free(tgt);
  return rc;
}
