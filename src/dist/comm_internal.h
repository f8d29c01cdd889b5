/* The communicator's inside (asg/dist.h): what programs and backends use.
 *
 * Host collectives: buffers in host memory, send == recv for in place.
 * They wait at most the communicator's timeout; after a timeout (or any
 * transport error) the communicator is broken and every later call fails
 * at once. `what` names the caller in errors ("scope/all_reduce"). */
#ifndef ASG_DIST_COMM_INTERNAL_H
#define ASG_DIST_COMM_INTERNAL_H

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg__mpi asg__mpi; /* comm_mpi.c */
typedef struct asg__tcp asg__tcp; /* comm_tcp.c */

struct asg_comm {
  int rank, size, local_rank;
  const char *kind; /* "single", "mpi", "rendezvous" */
  double timeout_s;
  bool broken;
  asg__mpi *mpi; /* "mpi" */
  asg__tcp *tcp; /* "rendezvous" */
  /* The NCCL communicator made by the CUDA backend for this world (one per
   * communicator; cuda_collective.cu), its CUDA device and destructor. */
  void *nccl;
  int nccl_device;
  void (*nccl_free)(void *nccl);
};

/* Bytes per element of dt for the collectives (F32, F64, I32, I64, BF16,
 * F16). */
asg_status asg__comm_allreduce(asg_comm *c, const void *send, void *recv, int64_t n, asg_dtype dt,
                               asg_comm_op op, const char *what);
asg_status asg__comm_bcast(asg_comm *c, void *buf, size_t bytes, int root, const char *what);
/* recv holds size blocks of `bytes` each, rank r's at r * bytes. */
asg_status asg__comm_allgather(asg_comm *c, const void *send, void *recv, size_t bytes,
                               const char *what);
/* send holds size blocks of n elements; recv gets block `rank` of the
 * reduction (sum or mean). */
asg_status asg__comm_reduce_scatter(asg_comm *c, const void *send, void *recv, int64_t n,
                                    asg_dtype dt, asg_comm_op op, const char *what);

/* The broken state's error, or OK (for callers that start their own
 * transport, e.g. NCCL). */
asg_status asg__comm_usable(asg_comm *c, const char *what);
/* Marks c broken and returns an ASG_ERR_BACKEND error naming what. */
asg_status asg__comm_fail(asg_comm *c, const char *what, const char *fmt, ...);

/* Divides n elements of dt by the world size in place (means). */
void asg__comm_scale_mean(asg_comm *c, void *buf, int64_t n, asg_dtype dt);

/* comm_tcp.c: the torchrun-style rendezvous: rank 0 listens on port, the
 * others connect to host:port; host-side bcast, all-reduce (f32, f64, i32,
 * i64) and barrier over that star. */
asg_status asg__tcp_open(asg_comm *c, const char *host, const char *port);
void asg__tcp_close(asg_comm *c);
asg_status asg__tcp_bcast(asg_comm *c, void *buf, size_t bytes, int root, const char *what);
asg_status asg__tcp_allreduce(asg_comm *c, void *buf, int64_t n, asg_dtype dt, asg_comm_op op,
                              const char *what);
asg_status asg__tcp_barrier(asg_comm *c, const char *what);

#ifdef ASG_HAVE_MPI
/* comm_mpi.c: joins the MPI job (initializing MPI unless the caller did). */
asg_status asg__mpi_open(asg_comm *c);
void asg__mpi_close(asg_comm *c);
asg_status asg__mpi_allreduce(asg_comm *c, const void *send, void *recv, int64_t n, asg_dtype dt,
                              asg_comm_op op, const char *what);
asg_status asg__mpi_bcast(asg_comm *c, void *buf, size_t bytes, int root, const char *what);
asg_status asg__mpi_allgather(asg_comm *c, const void *send, void *recv, size_t bytes,
                              const char *what);
asg_status asg__mpi_reduce_scatter(asg_comm *c, const void *send, void *recv, int64_t n,
                                   asg_dtype dt, asg_comm_op op, const char *what);
asg_status asg__mpi_barrier(asg_comm *c, const char *what);
#endif

#ifdef __cplusplus
}
#endif
#endif
