/* Many processes, one training run: a communicator, collective ops and
 * data-parallel training (docs/distributed.md).
 *
 * A communicator joins the processes a launcher started: under mpirun /
 * mpiexec (Open MPI, MPICH: the MPI environment), or torchrun-style with
 * RANK, WORLD_SIZE (and LOCAL_RANK) set, or alone (world size 1). CPU
 * programs reduce through MPI; CUDA programs through NCCL (its unique id
 * passed over MPI). A program gets the communicator through
 * asg_compile_opts.comm; collective ops in a program compiled without one
 * are a compile error.
 *
 * Collectives are collective: every rank must compile the same programs
 * and run them the same number of times, in the same order. A collective
 * that waits longer than the communicator's timeout for the other ranks
 * fails with ASG_ERR_BACKEND naming the op (a rank that died or hangs never
 * makes the others hang forever); the communicator is then broken: every
 * later collective fails at once, and the process should save nothing more
 * and exit (asg_comm_free does not wait for the lost ranks).
 *
 * Threads: a communicator is used by one thread at a time (the programs
 * that use it run on that thread). */
#ifndef ASG_DIST_H
#define ASG_DIST_H

#include "asg/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_comm asg_comm;
typedef struct asg_program asg_program;

typedef struct asg_comm_opts {
  /* Seconds a collective may wait for the other ranks before it fails;
   * 0 means the environment's ASG_COMM_TIMEOUT, else 300. */
  double timeout_s;
} asg_comm_opts;

/* Joins the job this process was launched into (see above); opts may be
 * NULL. Without a launcher's environment the world is this process alone
 * (rank 0 of 1). ASG_ERR_UNSUPPORTED when the environment names several
 * processes and this build has no MPI (or, torchrun-style, when the
 * rendezvous cannot be reached); the error says which. */
ASG_API asg_status asg_comm_init(const asg_comm_opts *opts, asg_comm **out);
/* Ends this process's part (MPI_Finalize when asg_comm_init started MPI and
 * the communicator is not broken). Programs compiled with c must be freed
 * first. NULL is ignored. */
ASG_API void asg_comm_free(asg_comm *c);

ASG_API int asg_comm_rank(const asg_comm *c);       /* 0 .. size-1 (0 for NULL) */
ASG_API int asg_comm_size(const asg_comm *c);       /* 1 for NULL */
ASG_API int asg_comm_local_rank(const asg_comm *c); /* rank on this machine (GPU choice) */
/* "single", "mpi" or "rendezvous" (how the processes found each other). */
ASG_API const char *asg_comm_kind(const asg_comm *c);

typedef enum asg_comm_op {
  ASG_COMM_SUM = 0,
  ASG_COMM_MEAN, /* sum / world size */
  ASG_COMM_MAX,
  ASG_COMM_MIN
} asg_comm_op;

/* Host-memory collectives (metrics, losses, flags), in place: n elements of
 * dt (F32, F64, I32, I64). */
ASG_API asg_status asg_comm_allreduce(asg_comm *c, void *buf, int64_t n, asg_dtype dt,
                                      asg_comm_op op);
ASG_API asg_status asg_comm_broadcast(asg_comm *c, void *buf, size_t bytes, int root);
ASG_API asg_status asg_comm_barrier(asg_comm *c);

/* Copies every variable of p from rank root to the other ranks (the start
 * of data-parallel training: asg_compile_train does it for programs with
 * opts.comm; call it again after a rank-0-only load). */
ASG_API asg_status asg_comm_broadcast_variables(asg_comm *c, asg_program *p, int root);

/* ---- collective ops (graph nodes; run on the program's communicator) ----
 * all_reduce: every rank gets op over the ranks' x (same shape everywhere).
 * broadcast: every rank gets root's x.
 * all_gather: [d0, ...] on each rank -> [world * d0, ...], rank r's block
 *   at rows [r d0, (r + 1) d0).
 * reduce_scatter: [world * d0, ...] -> [d0, ...]: rank r gets block r of
 *   the sum (or mean) over ranks.
 * world is the communicator size the graph is built for (asg_comm_size);
 * compiling with a communicator of another size is an error. Gradients:
 * all_reduce sum/mean -> all_reduce of the same kind; all_gather ->
 * reduce_scatter sum; reduce_scatter -> all_gather (scaled for mean);
 * broadcast and all_reduce max/min have none. */
ASG_API asg_tensor *asg_all_reduce(asg_tensor *x, asg_comm_op op);
ASG_API asg_tensor *asg_broadcast(asg_tensor *x, int root);
ASG_API asg_tensor *asg_all_gather(asg_tensor *x, int world);
ASG_API asg_tensor *asg_reduce_scatter(asg_tensor *x, int world, asg_comm_op op);

#ifdef __cplusplus
}
#endif
#endif
