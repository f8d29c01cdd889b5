/* Data-parallel scaling on the CPU: the same MLP training step (AdamW) on N
 * processes, each with the same batch (weak scaling, as PyTorch DDP), against
 * one process. Run under mpirun; rank 0 prints one line:
 *   mpirun -np N bench_dist [--batch B] [--steps S] [--threads T] [--hidden H]
 * bench/dist_scaling.sh runs 1, 2, ... ranks and PyTorch DDP (gloo) on the
 * same model (bench/torch_ddp.py). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "asg/asg.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  int batch = 64, steps = 30, threads = 0, hidden = 1024, warm = 5;
  static const struct option lo[] = {{"batch", 1, 0, 'b'},   {"steps", 1, 0, 's'},
                                     {"threads", 1, 0, 't'}, {"hidden", 1, 0, 'H'},
                                     {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
  for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
    if (c == 'b')
      batch = atoi(optarg);
    else if (c == 's')
      steps = atoi(optarg);
    else if (c == 't')
      threads = atoi(optarg);
    else if (c == 'H')
      hidden = atoi(optarg);
    else {
      printf("usage: mpirun -np N %s [--batch B per rank (64)] [--steps S (30)] [--threads T "
             "(all)] [--hidden H (1024)]\n",
             argv[0]);
      return c == 'h' ? 0 : 2;
    }
  }
  if (batch < 1 || steps < 1 || hidden < 1) return 2;
  asg_comm *comm;
  if (asg_comm_init(NULL, &comm)) {
    fprintf(stderr, "%s\n", asg_last_error());
    return 1;
  }
  const int rank = asg_comm_rank(comm), world = asg_comm_size(comm);
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, 784));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(batch));
  asg_layer *ls[] = {asg_nn_linear(g, "fc1", 784, hidden), asg_nn_activation(g, "a1", ASG_ACT_RELU),
                     asg_nn_linear(g, "fc2", hidden, hidden),
                     asg_nn_activation(g, "a2", ASG_ACT_RELU), asg_nn_linear(g, "fc3", hidden, 10)};
  asg_tensor *loss = asg_softmax_cross_entropy(
      asg_layer_apply(asg_nn_sequential(g, "mlp", 5, ls), x), y, 0.0, -100);
  asg_compile_opts o = {.num_threads = threads, .comm = comm};
  asg_program *p = asg_compile_train(g, loss, asg_adamw(1e-3, 0.01), 0, NULL, &o);
  if (!p) {
    fprintf(stderr, "rank %d: %s\n", rank, asg_last_error());
    return 1;
  }
  float *bx = malloc(sizeof(float) * 784 * (size_t)batch);
  int32_t *by = malloc(sizeof(int32_t) * (size_t)batch);
  for (int i = 0; i < 784 * batch; i++)
    bx[i] = (float)((i * 37 + rank * 11) % 101) / 101.0f;
  for (int i = 0; i < batch; i++)
    by[i] = (i * 7 + rank) % 10;
  double t0 = 0;
  int rc = 0;
  for (int s = 0; s < warm + steps && !rc; s++) {
    if (s == warm) {
      asg_comm_barrier(comm);
      t0 = now_s();
    }
    asg_program_feed(p, "x", bx, sizeof(float) * 784 * (size_t)batch);
    asg_program_feed(p, "y", by, sizeof(int32_t) * (size_t)batch);
    if (asg_program_run(p)) {
      fprintf(stderr, "rank %d: %s\n", rank, asg_last_error());
      rc = 1;
    }
  }
  asg_comm_barrier(comm);
  const double dt = now_s() - t0;
  double loss_v = asg_program_scalar(p, loss);
  asg_comm_allreduce(comm, &loss_v, 1, ASG_F64, ASG_COMM_MEAN);
  if (rank == 0 && !rc)
    printf("asg ranks %d threads/rank %d batch/rank %d hidden %d: %.2f ms/step, %.0f samples/s "
           "(loss %.4f)\n",
           world, threads, batch, hidden, 1e3 * dt / steps, (double)world * batch * steps / dt,
           loss_v);
  free(bx), free(by);
  asg_program_free(p);
  asg_graph_free(g);
  asg_comm_free(comm);
  return rc;
}
