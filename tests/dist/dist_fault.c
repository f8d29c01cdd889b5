/* A rank that dies or hangs mid-run (tests/dist/fault.sh runs this under
 * mpirun -np 2 with a short ASG_COMM_TIMEOUT).
 *   dist_fault train DIR hang|die   rank 0 saves DIR/ckpt.safetensors after
 *       every step; at step 3 rank 1 stops itself (SIGSTOP) or dies
 *       (SIGKILL). Rank 0 reports how its next run failed and exits 3.
 *   dist_fault check DIR            one process loads the checkpoint and
 *       prints its step (exit 0 when it loads and holds finite values). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"

enum { B = 8, IN = 4, OUT = 2 };

static asg_program *build(asg_graph *g, asg_comm *c) {
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, IN));
  asg_tensor *t = asg_input(g, "t", ASG_F32, ASG_SHAPE(B, OUT));
  asg_layer *l = asg_nn_linear(g, "fc", IN, OUT);
  asg_tensor *loss = asg_mse_loss(asg_layer_apply(l, x), t, ASG_REDUCE_MEAN);
  asg_compile_opts o = {.comm = c};
  return asg_compile_train(g, loss, asg_sgd(0.1, 0), 0, NULL, &o);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int check(const char *path) {
  asg_graph *g = asg_graph_new();
  asg_program *p = build(g, NULL);
  int64_t step = -1;
  float w[IN * OUT];
  int ok = p && asg_checkpoint_load(p, path, &step) == ASG_OK &&
           asg_program_get_variable(p, "fc.weight", w, sizeof w) == ASG_OK;
  for (int i = 0; ok && i < IN * OUT; i++)
    ok = isfinite(w[i]);
  if (ok)
    printf("checkpoint loads: step %lld\n", (long long)step);
  else
    printf("checkpoint: %s\n", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
  return ok ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc != 4 && !(argc == 3 && !strcmp(argv[1], "check"))) {
    fprintf(stderr, "usage: dist_fault train DIR hang|die | check DIR\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/ckpt.safetensors", argv[2]);
  if (!strcmp(argv[1], "check")) return check(path);
  asg_comm *c = NULL;
  if (asg_comm_init(NULL, &c)) {
    fprintf(stderr, "asg_comm_init: %s\n", asg_last_error());
    return 1;
  }
  const int rank = asg_comm_rank(c);
  asg_graph *g = asg_graph_new();
  asg_program *p = build(g, c);
  if (!p) {
    fprintf(stderr, "rank %d: compile: %s\n", rank, asg_last_error());
    return 1;
  }
  float x[B * IN], t[B * OUT];
  for (int i = 0; i < B * IN; i++)
    x[i] = (float)sin(i + rank);
  for (int i = 0; i < B * OUT; i++)
    t[i] = (float)cos(i);
  for (int step = 1; step <= 1000; step++) {
    if (rank == 1 && step == 3) raise(!strcmp(argv[3], "hang") ? SIGSTOP : SIGKILL);
    asg_program_feed(p, "x", x, sizeof x);
    asg_program_feed(p, "t", t, sizeof t);
    const double t0 = now_s();
    if (asg_program_run(p) != ASG_OK) {
      printf("rank %d: step %d failed after %.1f s: %s\n", rank, step, now_s() - t0,
             asg_last_error());
      fflush(stdout);
      return 3; /* no MPI_Finalize: the launcher ends the job */
    }
    if (rank == 0 && asg_checkpoint_save(p, path, step) != ASG_OK) {
      printf("rank 0: save: %s\n", asg_last_error());
      return 1;
    }
  }
  printf("rank %d: never failed\n", rank);
  return 1;
}
