/* The MPI transport of communicators (built with ASG_HAVE_MPI). ASG works
 * on its own duplicate of MPI_COMM_WORLD, so its traffic never matches a
 * caller's own MPI messages. Every collective is nonblocking and polled
 * against the communicator's deadline: a rank that died or hangs makes the
 * others fail after the timeout instead of waiting forever. bf16 and f16
 * reduce through user-defined MPI ops that add in f32. */
#include <mpi.h>
#include <stdio.h>
#include <time.h>

#include "dist/comm_internal.h"

struct asg__mpi {
  MPI_Comm comm;
  bool we_initialized;   /* MPI_Finalize at close */
  MPI_Op half_ops[2][3]; /* [bf16, f16][sum, max, min] */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits for req until the communicator's deadline; polling backs off from
 * spinning to 100 us sleeps so a long wait costs no core. */
static asg_status wait_req(asg_comm *c, MPI_Request *req, const char *what) {
  const double t0 = now_s();
  for (long it = 0;; it++) {
    int done = 0;
    if (MPI_Test(req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
      return asg__comm_fail(c, what, "MPI reported an error");
    if (done) return ASG_OK;
    if (it > 2000) {
      if (now_s() - t0 > c->timeout_s)
        return asg__comm_fail(c, what,
                              "timed out after %.0f s waiting for the other ranks (one died or "
                              "hangs?); ASG_COMM_TIMEOUT sets the limit",
                              c->timeout_s);
      nanosleep(&(struct timespec){0, it > 20000 ? 100000 : 10000}, NULL);
    }
  }
}

/* bf16/f16 as 16-bit words reduced in f32 */
static float half_get(uint16_t h, bool bf) { return bf ? asg_bf16_to_f32(h) : asg_f16_to_f32(h); }
static uint16_t half_put(float f, bool bf) { return bf ? asg_f32_to_bf16(f) : asg_f32_to_f16(f); }

static void half_reduce(void *in, void *inout, int *len, bool bf, int kind) {
  const uint16_t *a = in;
  uint16_t *b = inout;
  for (int i = 0; i < *len; i++) {
    float x = half_get(a[i], bf), y = half_get(b[i], bf);
    float r = kind == 0 ? x + y : kind == 1 ? (x > y ? x : y) : (x < y ? x : y);
    b[i] = half_put(r, bf);
  }
}
/* MPI_User_function signatures, one per (type, reduction) */
static void bf16_sum(void *a, void *b, int *n, MPI_Datatype *t) {
  (void)t, half_reduce(a, b, n, true, 0);
}
static void bf16_max(void *a, void *b, int *n, MPI_Datatype *t) {
  (void)t, half_reduce(a, b, n, true, 1);
}
static void bf16_min(void *a, void *b, int *n, MPI_Datatype *t) {
  (void)t, half_reduce(a, b, n, true, 2);
}
static void f16_sum(void *a, void *b, int *n, MPI_Datatype *t) {
  (void)t, half_reduce(a, b, n, false, 0);
}
static void f16_max(void *a, void *b, int *n, MPI_Datatype *t) {
  (void)t, half_reduce(a, b, n, false, 1);
}
static void f16_min(void *a, void *b, int *n, MPI_Datatype *t) {
  (void)t, half_reduce(a, b, n, false, 2);
}

asg_status asg__mpi_open(asg_comm *c) {
  int inited = 0, provided = 0;
  MPI_Initialized(&inited);
  asg__mpi *m = calloc(1, sizeof *m);
  if (!m) return asg__error(ASG_ERR_OOM, "asg_comm_init: out of memory");
  if (!inited) {
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
      free(m);
      return asg__error(ASG_ERR_BACKEND, "asg_comm_init: MPI_Init_thread failed");
    }
    m->we_initialized = true;
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
  MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(m->comm, &c->rank);
  MPI_Comm_size(m->comm, &c->size);
  MPI_Comm node; /* the ranks on this machine: local rank */
  MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &c->local_rank);
  MPI_Comm_free(&node);
  MPI_User_function *fns[2][3] = {{bf16_sum, bf16_max, bf16_min}, {f16_sum, f16_max, f16_min}};
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 3; k++)
      MPI_Op_create(fns[i][k], 1, &m->half_ops[i][k]);
  c->mpi = m;
  return ASG_OK;
}

void asg__mpi_close(asg_comm *c) {
  asg__mpi *m = c->mpi;
  if (!c->broken) { /* a broken world may have requests in flight: leave it to exit */
    for (int i = 0; i < 2; i++)
      for (int k = 0; k < 3; k++)
        MPI_Op_free(&m->half_ops[i][k]);
    MPI_Comm_free(&m->comm);
    int fin = 0;
    MPI_Finalized(&fin);
    if (m->we_initialized && !fin) MPI_Finalize();
  }
  free(m);
  c->mpi = NULL;
}

static MPI_Datatype mpi_type(asg_dtype dt) {
  switch (dt) {
  case ASG_F32: return MPI_FLOAT;
  case ASG_F64: return MPI_DOUBLE;
  case ASG_I32: return MPI_INT32_T;
  case ASG_I64: return MPI_INT64_T;
  default: return MPI_UINT16_T; /* bf16, f16 */
  }
}

static MPI_Op mpi_op(asg__mpi *m, asg_dtype dt, asg_comm_op op) {
  int k = op == ASG_COMM_MAX ? 1 : op == ASG_COMM_MIN ? 2 : 0; /* mean: sum, then scale */
  if (dt == ASG_BF16 || dt == ASG_F16) return m->half_ops[dt == ASG_BF16 ? 0 : 1][k];
  return k == 1 ? MPI_MAX : k == 2 ? MPI_MIN : MPI_SUM;
}

/* MPI counts are int: large buffers go in chunks of at most 2^30 elements */
enum { CHUNK = 1 << 30 };

asg_status asg__mpi_allreduce(asg_comm *c, const void *send, void *recv, int64_t n, asg_dtype dt,
                              asg_comm_op op, const char *what) {
  asg__mpi *m = c->mpi;
  const size_t es = asg_dtype_size(dt);
  for (int64_t off = 0; off < n; off += CHUNK) {
    int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
    char *r = (char *)recv + (size_t)off * es;
    const void *s = send == recv ? MPI_IN_PLACE : (const char *)send + (size_t)off * es;
    MPI_Request req;
    if (MPI_Iallreduce(s, r, cnt, mpi_type(dt), mpi_op(m, dt, op), m->comm, &req) != MPI_SUCCESS)
      return asg__comm_fail(c, what, "MPI_Iallreduce failed");
    asg_status st = wait_req(c, &req, what);
    if (st) return st;
  }
  return ASG_OK;
}

asg_status asg__mpi_bcast(asg_comm *c, void *buf, size_t bytes, int root, const char *what) {
  asg__mpi *m = c->mpi;
  for (size_t off = 0; off < bytes; off += CHUNK) {
    int cnt = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
    MPI_Request req;
    if (MPI_Ibcast((char *)buf + off, cnt, MPI_BYTE, root, m->comm, &req) != MPI_SUCCESS)
      return asg__comm_fail(c, what, "MPI_Ibcast failed");
    asg_status st = wait_req(c, &req, what);
    if (st) return st;
  }
  return ASG_OK;
}

asg_status asg__mpi_allgather(asg_comm *c, const void *send, void *recv, size_t bytes,
                              const char *what) {
  asg__mpi *m = c->mpi;
  if (bytes > (size_t)CHUNK * 2 - 1)
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: all-gather blocks of 2 GiB or more per rank", what);
  if (bytes == 0) return ASG_OK;
  /* one rank's block as a count of bytes: no datatype made per run */
  const void *s = send == (char *)recv + (size_t)c->rank * bytes ? MPI_IN_PLACE : send;
  MPI_Request req;
  if (MPI_Iallgather(s, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, m->comm, &req) !=
      MPI_SUCCESS)
    return asg__comm_fail(c, what, "MPI_Iallgather failed");
  return wait_req(c, &req, what);
}

asg_status asg__mpi_reduce_scatter(asg_comm *c, const void *send, void *recv, int64_t n,
                                   asg_dtype dt, asg_comm_op op, const char *what) {
  asg__mpi *m = c->mpi;
  if (n > CHUNK)
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: reduce-scatter blocks above 2^30 elements", what);
  MPI_Request req;
  if (n == 0) return ASG_OK;
  if (MPI_Ireduce_scatter_block(send, recv, (int)n, mpi_type(dt), mpi_op(m, dt, op), m->comm,
                                &req) != MPI_SUCCESS)
    return asg__comm_fail(c, what, "MPI_Ireduce_scatter_block failed");
  return wait_req(c, &req, what);
}

asg_status asg__mpi_barrier(asg_comm *c, const char *what) {
  MPI_Request req;
  if (MPI_Ibarrier(((asg__mpi *)c->mpi)->comm, &req) != MPI_SUCCESS)
    return asg__comm_fail(c, what, "MPI_Ibarrier failed");
  return wait_req(c, &req, what);
}
