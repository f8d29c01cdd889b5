/* `asg profile`: profiles the training step of a built-in model (the MLP
 * and CNN of bench/bench_common.c) on random data and prints the profiler's
 * tables (asg/profile.h); --trace writes the Chrome / Perfetto trace. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "bench_common.h"

static const char usage[] =
    "usage: asg profile [--model mlp|cnn] [--backend cpu|cuda|vulkan] [--steps N]\n"
    "                   [--batch N] [--top N] [--trace FILE]\n"
    "  profiles N training steps (default 10, after one warm-up step) of a built-in\n"
    "  model (default mlp: 784-512-512-10; cnn: the Fashion-MNIST CNN) on random\n"
    "  data, batch 64 by default, backend cpu by default; prints the time per op,\n"
    "  per name scope and the `top` slowest steps (default 20); --trace writes the\n"
    "  last runs as Chrome trace JSON for chrome://tracing or ui.perfetto.dev\n";

static int positive(const char *opt, const char *v, int *out) {
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 1 || n > 1000000) {
    fprintf(stderr, "asg profile: %s needs a positive count, got '%s'\n", opt, v);
    return 0;
  }
  *out = (int)n;
  return 1;
}

int asg_cmd_profile(int argc, char **argv) {
  static const struct option lo[] = {
      {"model", required_argument, NULL, 'm'}, {"backend", required_argument, NULL, 'b'},
      {"steps", required_argument, NULL, 's'}, {"batch", required_argument, NULL, 'n'},
      {"top", required_argument, NULL, 't'},   {"trace", required_argument, NULL, 'o'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
  const char *model = "mlp", *backend = "cpu", *trace = NULL;
  int steps = 10, batch = 64, top = 20, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'b': backend = optarg; break;
    case 'o': trace = optarg; break;
    case 's':
      if (!positive("--steps", optarg, &steps)) return 2;
      break;
    case 'n':
      if (!positive("--batch", optarg, &batch)) return 2;
      break;
    case 't':
      if (!positive("--top", optarg, &top)) return 2;
      break;
    case 'h': printf("%s", usage); return 0;
    default: fprintf(stderr, "%s", usage); return 2;
    }
  }
  if (optind < argc || (strcmp(model, "mlp") && strcmp(model, "cnn"))) {
    fprintf(stderr, "asg profile: %s '%s'\n%s",
            optind < argc ? "unexpected argument" : "unknown model",
            optind < argc ? argv[optind] : model, usage);
    return 2;
  }
  const bool cnn = !strcmp(model, "cnn");
  asg_graph *g = asg_graph_new();
  asg_tensor *x =
      asg_input(g, "x", ASG_F32, cnn ? ASG_SHAPE(batch, 1, 28, 28) : ASG_SHAPE(batch, 784));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(batch));
  asg_tensor *logits = cnn ? bench_cnn_logits(g, x) : bench_mlp_logits(g, x);
  asg_tensor *loss = asg_cross_entropy_loss(logits, y, 0, -100, ASG_REDUCE_MEAN);
  /* compiled for profiling: CUDA and Vulkan build their step timers then */
  asg_compile_opts o = {.backend = backend, .profile = 1};
  asg_program *p = asg_compile_train(g, loss, asg_adam(1e-3), 0, NULL, &o);
  asg_graph_free(g);
  if (!p) {
    fprintf(stderr, "asg profile: %s\n", asg_last_error());
    return 1;
  }
  const size_t nx = (size_t)batch * 784;
  float *xv = malloc(nx * sizeof *xv);
  int32_t *yv = malloc((size_t)batch * sizeof *yv);
  int rc = xv && yv ? 0 : 1;
  unsigned s = 12345;
  for (size_t i = 0; !rc && i < nx; i++) {
    s = s * 1664525u + 1013904223u;
    xv[i] = (float)(s >> 8) / (float)(1u << 24);
  }
  for (int i = 0; !rc && i < batch; i++)
    yv[i] = i % 10;
  asg_profile r;
  if (!rc && (asg_program_feed(p, "x", xv, nx * sizeof *xv) ||
              asg_program_feed(p, "y", yv, (size_t)batch * sizeof *yv) || asg_program_run(p) ||
              asg_program_profile_reset(p))) /* the warm-up run is not counted */
    rc = 1;
  for (int i = 0; !rc && i < steps; i++)
    if (asg_program_run(p)) rc = 1;
  if (!rc && asg_program_profile_get(p, &r)) rc = 1;
  if (!rc) {
    printf("model %s, batch %d, %s (%s)\n", model, batch, backend,
           asg_backend_device(backend) ? asg_backend_device(backend) : "?");
    asg_profile_print(&r, stdout, top);
  }
  if (!rc && trace) {
    if (asg_program_profile_write_trace(p, trace))
      rc = 1;
    else
      printf("trace: %s (open in chrome://tracing or ui.perfetto.dev)\n", trace);
  }
  if (rc) fprintf(stderr, "asg profile: %s\n", asg_last_error());
  free(xv);
  free(yv);
  asg_program_free(p);
  return rc;
}
