/* The torchrun-style rendezvous (tests/dist/rendezvous.sh starts the
 * processes with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set). Checks the
 * communicator's rank and size, its host collectives against values
 * computed here, and that CPU programs with collectives are refused (they
 * need an MPI launch). Prints "rank R ok" and exits 0, or the failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"

static int fails;
#define CHECK(c, ...)                                                                              \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fails++;                                                                                     \
      printf("rank %s: FAIL: ", getenv("RANK"));                                                   \
      printf(__VA_ARGS__);                                                                         \
      printf(" (%s)\n", asg_last_error());                                                         \
    }                                                                                              \
  } while (0)

int main(void) {
  asg_comm *c = NULL;
  if (asg_comm_init(NULL, &c) != ASG_OK) {
    printf("rank %s: asg_comm_init: %s\n", getenv("RANK"), asg_last_error());
    return 1;
  }
  const int r = asg_comm_rank(c), w = asg_comm_size(c);
  CHECK(r == atoi(getenv("RANK")) && w == atoi(getenv("WORLD_SIZE")), "rank %d size %d", r, w);
  CHECK(!strcmp(asg_comm_kind(c), "rendezvous"), "kind %s", asg_comm_kind(c));
  double d[2] = {r + 0.5, -r};
  CHECK(!asg_comm_allreduce(c, d, 2, ASG_F64, ASG_COMM_SUM) &&
            d[0] == w * (w - 1) / 2.0 + 0.5 * w && d[1] == -w * (w - 1) / 2.0,
        "f64 sum %g %g", d[0], d[1]);
  float f = (float)r;
  CHECK(!asg_comm_allreduce(c, &f, 1, ASG_F32, ASG_COMM_MEAN) && f == (float)(w - 1) / 2,
        "f32 mean %g", f);
  int64_t i = 1000000000000LL * r;
  CHECK(!asg_comm_allreduce(c, &i, 1, ASG_I64, ASG_COMM_MAX) && i == 1000000000000LL * (w - 1),
        "i64 max %lld", (long long)i);
  int32_t m = r + 7;
  CHECK(!asg_comm_allreduce(c, &m, 1, ASG_I32, ASG_COMM_MIN) && m == 7, "i32 min %d", m);
  char msg[32] = "";
  if (r == w - 1) snprintf(msg, sizeof msg, "from rank %d", r);
  char want[32];
  snprintf(want, sizeof want, "from rank %d", w - 1);
  CHECK(!asg_comm_broadcast(c, msg, sizeof msg, w - 1) && !strcmp(msg, want), "broadcast '%s'",
        msg);
  CHECK(!asg_comm_barrier(c), "barrier");
  /* CPU tensor collectives need MPI: refused when compiling, naming why */
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_all_reduce(asg_input(g, "x", ASG_F32, ASG_SHAPE(4)), ASG_COMM_SUM);
  asg_compile_opts o = {.comm = c};
  asg_program *p = asg_compile(g, 1, &y, &o);
  CHECK(!p && strstr(asg_last_error(), "MPI launch"), "a CPU all_reduce was not refused");
  asg_program_free(p);
  asg_graph_free(g);
  CHECK(!asg_comm_barrier(c), "final barrier");
  asg_comm_free(c);
  if (!fails) printf("rank %d ok\n", r);
  return fails != 0;
}
