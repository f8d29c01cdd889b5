/* Gradient checkpointing on the GPT-2 124M training step of bench_gpt2
 * (bench/gpt2_model.c: 12 asg_nn_transformer_block layers "h0".."h11",
 * AdamW): the planned activation arena (asg_program_peak_memory, the memory
 * plan's peak) and the step time, with checkpointing off and with every
 * block recomputed (asg_compile_opts.checkpoint_blocks).
 *
 *   bench_remat [--backend cpu] [--batch 2] [--ctx 256] [--steps 3]
 *               [--warmup 1] [--layers 12] [--dim 768] [--heads 12]
 *               [--vocab 50304] [--threads N] [--mode both|off|on]
 *               [--dry-run]
 *
 * The two programs are compiled and timed one after the other (never both
 * alive, so the second does not pay for the first's memory). Each prints
 *   remat backend cpu B 2 T 256 checkpoint off arena_MiB 1234.5
 *   persistent_MiB 1900.2 steps 1234 compile_s 0.8 ms 9876.5
 * cpu_ms 19500.2 (ms: median wall time of a step; cpu_ms: median CPU time
 * of the process per step, all threads, which a busy shared machine
 * disturbs less; both absent with --dry-run), then with both modes a
 * summary line: the on/off ratios.
 * Exit status 77: backend not available. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "bench_common.h"
#include "gpt2_model.h"

static void usage(FILE *f) {
  fprintf(f, "usage: bench_remat [--backend cpu|cuda|vulkan] [--batch B] [--ctx T] [--steps N] "
             "[--warmup N] [--layers L] [--dim D] [--heads H] [--vocab V] [--threads N] "
             "[--mode both|off|on] [--dry-run]\n");
}

typedef struct result {
  double arena_mib, ms, cpu_ms;
} result;

/* CPU seconds used by the process so far (every thread). */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Builds, compiles and times one program; false on error (printed). */
static bool run_mode(const gpt2_cfg *c, const char *backend, int threads, bool ckpt, int steps,
                     int warmup, bool dry, result *r) {
  const double MiB = 1024.0 * 1024.0;
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 7);
  asg_tensor *tok = asg_input(g, "tokens", ASG_I32, ASG_SHAPE(c->batch, c->ctx));
  asg_tensor *tgt = asg_input(g, "targets", ASG_I32, ASG_SHAPE(c->batch, c->ctx));
  asg_layer *wte;
  asg_tensor *loss = asg_softmax_cross_entropy(gpt2_logits(g, c, tok, &wte), tgt, 0.0, -100);
  if (!loss) {
    fprintf(stderr, "build: %s\n", asg_graph_error(g));
    asg_graph_free(g);
    return false;
  }
  asg_compile_opts opts = {.backend = backend, .num_threads = threads, .checkpoint_blocks = ckpt};
  double tc = bench_now();
  asg_program *p = asg_compile_train(g, loss, asg_adamw(6e-4, 0.1), 0, NULL, &opts);
  tc = bench_now() - tc;
  if (!p) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    asg_graph_free(g);
    return false;
  }
  r->arena_mib = (double)asg_program_peak_memory(p) / MiB;
  r->ms = 0;
  printf("remat backend %s B %d T %d checkpoint %s arena_MiB %.1f persistent_MiB %.1f steps %d "
         "compile_s %.2f",
         backend, c->batch, c->ctx, ckpt ? "on" : "off", r->arena_mib,
         (double)asg_program_persistent_memory(p) / MiB, asg_program_step_count(p), tc);
  bool ok = true;
  size_t nb = (size_t)c->batch * (size_t)c->ctx;
  int32_t *x = malloc(sizeof *x * nb), *y = malloc(sizeof *y * nb);
  double *t = malloc(sizeof *t * (size_t)steps), *tcpu = malloc(sizeof *tcpu * (size_t)steps);
  if (!dry && (!x || !y || !t || !tcpu)) {
    fprintf(stderr, "\nout of memory\n");
    ok = false;
  }
  if (!dry && ok) {
    uint64_t s = 1234;
    for (size_t i = 0; i < nb; i++)
      x[i] = (int32_t)(gpt2_rng_next(&s) % (uint64_t)c->vocab);
    for (size_t i = 0; i < nb; i++)
      y[i] = (int32_t)(gpt2_rng_next(&s) % (uint64_t)c->vocab);
    ok = gpt2_init_wte(p, c, 1234) == ASG_OK &&
         asg_program_feed(p, "tokens", x, sizeof *x * nb) == ASG_OK &&
         asg_program_feed(p, "targets", y, sizeof *y * nb) == ASG_OK;
    for (int i = 0; i < warmup + steps && ok; i++) {
      double t0 = bench_now(), c0 = cpu_now();
      ok = asg_program_run(p) == ASG_OK;
      double l = asg_program_scalar(p, loss); /* waits for the device */
      if (i >= warmup) {
        t[i - warmup] = bench_now() - t0;
        tcpu[i - warmup] = cpu_now() - c0;
      }
      if (i == warmup + steps - 1) printf(" loss %.4f", l);
    }
    if (!ok) fprintf(stderr, "\nrun: %s\n", asg_last_error());
    if (ok) {
      r->ms = 1e3 * bench_median(t, steps);
      r->cpu_ms = 1e3 * bench_median(tcpu, steps);
      printf(" ms %.1f cpu_ms %.1f", r->ms, r->cpu_ms);
    }
  }
  printf("\n");
  free(x), free(y), free(t), free(tcpu);
  asg_program_free(p);
  asg_graph_free(g);
  return ok;
}

int main(int argc, char **argv) {
  gpt2_cfg c = {.batch = 2, .ctx = 256, .layers = 12, .dim = 768, .heads = 12, .vocab = 50304};
  int steps = 3, warmup = 1, threads = 0, dry = 0;
  const char *backend = "cpu", *mode = "both";
  static const struct option opts[] = {
      {"backend", required_argument, 0, 'b'}, {"batch", required_argument, 0, 'B'},
      {"ctx", required_argument, 0, 'T'},     {"steps", required_argument, 0, 's'},
      {"warmup", required_argument, 0, 'w'},  {"layers", required_argument, 0, 'L'},
      {"dim", required_argument, 0, 'd'},     {"heads", required_argument, 0, 'H'},
      {"vocab", required_argument, 0, 'V'},   {"threads", required_argument, 0, 'j'},
      {"mode", required_argument, 0, 'm'},    {"dry-run", no_argument, 0, 'n'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int o;
  while ((o = getopt_long(argc, argv, "b:B:T:s:w:L:d:H:V:j:m:nh", opts, NULL)) != -1) {
    switch (o) {
    case 'b': backend = optarg; break;
    case 'B': c.batch = atoi(optarg); break;
    case 'T': c.ctx = atoi(optarg); break;
    case 's': steps = atoi(optarg); break;
    case 'w': warmup = atoi(optarg); break;
    case 'L': c.layers = atoi(optarg); break;
    case 'd': c.dim = atoi(optarg); break;
    case 'H': c.heads = atoi(optarg); break;
    case 'V': c.vocab = atoi(optarg); break;
    case 'j': threads = atoi(optarg); break;
    case 'm': mode = optarg; break;
    case 'n': dry = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  const bool off = !strcmp(mode, "both") || !strcmp(mode, "off");
  const bool on = !strcmp(mode, "both") || !strcmp(mode, "on");
  if (optind < argc || (!off && !on) || c.batch < 1 || c.ctx < 1 || c.layers < 1 || c.dim < 1 ||
      c.heads < 1 || c.dim % c.heads || c.vocab < 2 || steps < 1 || warmup < 0 || threads < 0) {
    usage(stderr);
    return 2;
  }
  if (!asg_backend_available(backend)) {
    printf("backend %s unavailable: %s\n", backend, asg_last_error());
    return 77;
  }
  printf("model: GPT-2, %d layers, d %d, %d heads, vocab %d, batch %d, context %d; AdamW; "
         "checkpoint on = asg_compile_opts.checkpoint_blocks (every block recomputed)\n",
         c.layers, c.dim, c.heads, c.vocab, c.batch, c.ctx);
  result r0 = {0, 0, 0}, r1 = {0, 0, 0};
  if (off && !run_mode(&c, backend, threads, false, steps, warmup, dry, &r0)) return 1;
  if (on && !run_mode(&c, backend, threads, true, steps, warmup, dry, &r1)) return 1;
  if (off && on) {
    printf("remat summary: arena on/off %.3f (%.1f -> %.1f MiB)", r1.arena_mib / r0.arena_mib,
           r0.arena_mib, r1.arena_mib);
    if (!dry)
      printf(", step time on/off %.3f (%.1f -> %.1f ms), CPU time on/off %.3f (%.1f -> %.1f ms)",
             r1.ms / r0.ms, r0.ms, r1.ms, r1.cpu_ms / r0.cpu_ms, r0.cpu_ms, r1.cpu_ms);
    printf("\n");
  }
  return 0;
}
