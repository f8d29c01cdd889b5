/* Communicators (asg/dist.h): which job this process belongs to, and the
 * host collectives every transport offers. MPI (comm_mpi.c) carries the
 * CPU's collectives and bootstraps NCCL (backends/cuda/cuda_collective.cu);
 * a process launched alone is a world of one, where every collective is a
 * copy. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/comm_internal.h"

enum { DEFAULT_TIMEOUT_S = 300 };

/* An environment variable as a positive integer, or 0. */
static long env_long(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) return 0;
  char *end;
  long x = strtol(v, &end, 10);
  return *end == '\0' && x > 0 ? x : 0;
}

/* The launcher's world size: MPI launchers (Open MPI, MPICH/Hydra, PMIx),
 * then torchrun-style WORLD_SIZE; 0 when none says. */
static long mpi_world(void) {
  const char *mpi_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"};
  for (size_t i = 0; i < sizeof mpi_vars / sizeof *mpi_vars; i++) {
    long n = env_long(mpi_vars[i]);
    if (n > 0) return n;
  }
  return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 1 : 0;
}

static double timeout_of(const asg_comm_opts *o) {
  if (o && o->timeout_s > 0 && isfinite(o->timeout_s)) return o->timeout_s;
  const char *v = getenv("ASG_COMM_TIMEOUT");
  if (v && *v) {
    char *end;
    double t = strtod(v, &end);
    if (*end == '\0' && t > 0 && isfinite(t)) return t;
  }
  return DEFAULT_TIMEOUT_S;
}

asg_status asg_comm_init(const asg_comm_opts *opts, asg_comm **out) {
  if (!out) return asg__error(ASG_ERR_INVALID, "asg_comm_init: NULL output");
  *out = NULL;
  if (opts && (opts->timeout_s < 0 || isnan(opts->timeout_s)))
    return asg__error(ASG_ERR_INVALID, "asg_comm_init: timeout_s is %g; it must be >= 0",
                      opts->timeout_s);
  asg_comm *c = calloc(1, sizeof *c);
  if (!c) return asg__error(ASG_ERR_OOM, "asg_comm_init: out of memory");
  c->size = 1;
  c->kind = "single";
  c->timeout_s = timeout_of(opts);
  c->nccl_device = -1;
  long mpi_n = mpi_world(), tr_n = env_long("WORLD_SIZE");
  asg_status st = ASG_OK;
  if (mpi_n > 0) {
#ifdef ASG_HAVE_MPI
    c->kind = "mpi";
    st = asg__mpi_open(c);
#else
    if (mpi_n > 1)
      st = asg__error(ASG_ERR_UNSUPPORTED,
                      "asg_comm_init: launched as one of %ld MPI processes, but this build of "
                      "ASG has no MPI (install an MPI, e.g. libopenmpi-dev, and rebuild)",
                      mpi_n);
#endif
  } else if (tr_n > 1) { /* torchrun style: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT */
    const char *r = getenv("RANK"), *host = getenv("MASTER_ADDR"), *port = getenv("MASTER_PORT");
    long rank = env_long("RANK");
    if (!r || (rank == 0 && strcmp(r, "0") != 0) || rank >= tr_n || tr_n > 1 << 20) {
      st = asg__error(ASG_ERR_INVALID,
                      "asg_comm_init: WORLD_SIZE=%ld needs RANK in [0, %ld) (RANK is '%s')", tr_n,
                      tr_n, r ? r : "unset");
    } else {
      c->kind = "rendezvous";
      c->rank = (int)rank;
      c->size = (int)tr_n;
      c->local_rank = (int)env_long("LOCAL_RANK");
      st = asg__tcp_open(c, host && *host ? host : "127.0.0.1", port && *port ? port : "29500");
    }
  }
  if (st) {
    free(c);
    return st;
  }
  *out = c;
  return ASG_OK;
}

void asg_comm_free(asg_comm *c) {
  if (!c) return;
  if (c->nccl && c->nccl_free) c->nccl_free(c->nccl);
  if (c->tcp) asg__tcp_close(c);
#ifdef ASG_HAVE_MPI
  if (c->mpi) asg__mpi_close(c);
#endif
  free(c);
}

int asg_comm_rank(const asg_comm *c) { return c ? c->rank : 0; }
int asg_comm_size(const asg_comm *c) { return c ? c->size : 1; }
int asg_comm_local_rank(const asg_comm *c) { return c ? c->local_rank : 0; }
const char *asg_comm_kind(const asg_comm *c) { return c ? c->kind : "single"; }

asg_status asg__comm_fail(asg_comm *c, const char *what, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->broken = true;
  return asg__error(ASG_ERR_BACKEND, "%s: rank %d of %d: %s (the communicator is now broken)", what,
                    c->rank, c->size, msg);
}

asg_status asg__comm_usable(asg_comm *c, const char *what) {
  if (!c) return asg__error(ASG_ERR_INVALID, "%s: NULL communicator", what);
  if (c->broken)
    return asg__error(ASG_ERR_BACKEND,
                      "%s: the communicator is broken by an earlier failed collective", what);
  return ASG_OK;
}

static asg_status rendezvous_refuses(const char *what) {
  return asg__error(ASG_ERR_UNSUPPORTED,
                    "%s: a torchrun-style rendezvous carries NCCL's bootstrap and host values "
                    "only; tensor collectives on this backend need an MPI launch (mpirun)",
                    what);
}

static bool dtype_ok(asg_dtype dt) { return dt >= ASG_F32 && dt < ASG_DTYPE_COUNT; }

void asg__comm_scale_mean(asg_comm *c, void *buf, int64_t n, asg_dtype dt) {
  const double inv = 1.0 / c->size;
  if (c->size == 1) return;
  if (dt == ASG_F32)
    for (int64_t i = 0; i < n; i++)
      ((float *)buf)[i] = (float)(((float *)buf)[i] * inv);
  else if (dt == ASG_F64)
    for (int64_t i = 0; i < n; i++)
      ((double *)buf)[i] *= inv;
  else if (dt == ASG_BF16 || dt == ASG_F16)
    for (int64_t i = 0; i < n; i++) {
      uint16_t *h = (uint16_t *)buf + i;
      *h = dt == ASG_BF16 ? asg_f32_to_bf16((float)(asg_bf16_to_f32(*h) * inv))
                          : asg_f32_to_f16((float)(asg_f16_to_f32(*h) * inv));
    }
}

asg_status asg__comm_allreduce(asg_comm *c, const void *send, void *recv, int64_t n, asg_dtype dt,
                               asg_comm_op op, const char *what) {
  asg_status st = asg__comm_usable(c, what);
  if (st) return st;
  if (!dtype_ok(dt) || n < 0 || (unsigned)op > ASG_COMM_MIN)
    return asg__error(ASG_ERR_INVALID, "%s: bad all-reduce arguments", what);
  if (send != recv && n > 0) memmove(recv, send, (size_t)n * asg_dtype_size(dt));
  if (c->size == 1 || n == 0) return ASG_OK;
  if (c->tcp)
    st = asg__tcp_allreduce(c, recv, n, dt, op, what);
  else
#ifdef ASG_HAVE_MPI
    st = asg__mpi_allreduce(c, recv, recv, n, dt, op, what);
#else
    st = asg__error(ASG_ERR_UNSUPPORTED, "%s: no MPI in this build", what);
#endif
  if (!st && op == ASG_COMM_MEAN) asg__comm_scale_mean(c, recv, n, dt); /* a sum until here */
  return st;
}

asg_status asg__comm_bcast(asg_comm *c, void *buf, size_t bytes, int root, const char *what) {
  asg_status st = asg__comm_usable(c, what);
  if (st) return st;
  if (root < 0 || root >= c->size)
    return asg__error(ASG_ERR_INVALID, "%s: root %d is not a rank of a world of %d", what, root,
                      c->size);
  if (c->size == 1 || bytes == 0) return ASG_OK;
  if (c->tcp) return asg__tcp_bcast(c, buf, bytes, root, what);
#ifdef ASG_HAVE_MPI
  return asg__mpi_bcast(c, buf, bytes, root, what);
#else
  (void)buf;
  return asg__error(ASG_ERR_UNSUPPORTED, "%s: no MPI in this build", what);
#endif
}

asg_status asg__comm_allgather(asg_comm *c, const void *send, void *recv, size_t bytes,
                               const char *what) {
  asg_status st = asg__comm_usable(c, what);
  if (st) return st;
  if (c->size == 1) {
    if (bytes && send != recv) memmove(recv, send, bytes);
    return ASG_OK;
  }
  if (c->tcp) return rendezvous_refuses(what);
#ifdef ASG_HAVE_MPI
  return asg__mpi_allgather(c, send, recv, bytes, what);
#else
  return asg__error(ASG_ERR_UNSUPPORTED, "%s: no MPI in this build", what);
#endif
}

asg_status asg__comm_reduce_scatter(asg_comm *c, const void *send, void *recv, int64_t n,
                                    asg_dtype dt, asg_comm_op op, const char *what) {
  asg_status st = asg__comm_usable(c, what);
  if (st) return st;
  if (!dtype_ok(dt) || n < 0 || (op != ASG_COMM_SUM && op != ASG_COMM_MEAN))
    return asg__error(ASG_ERR_INVALID, "%s: bad reduce-scatter arguments", what);
  if (c->size == 1) {
    if (n && send != recv) memmove(recv, send, (size_t)n * asg_dtype_size(dt));
    return ASG_OK;
  }
  if (c->tcp) return rendezvous_refuses(what);
#ifdef ASG_HAVE_MPI
  st = asg__mpi_reduce_scatter(c, send, recv, n, dt, op, what);
  if (!st && op == ASG_COMM_MEAN) asg__comm_scale_mean(c, recv, n, dt);
  return st;
#else
  return asg__error(ASG_ERR_UNSUPPORTED, "%s: no MPI in this build", what);
#endif
}

/* ---- public host collectives ---- */
asg_status asg_comm_allreduce(asg_comm *c, void *buf, int64_t n, asg_dtype dt, asg_comm_op op) {
  if (!c || (!buf && n > 0) || n < 0)
    return asg__error(ASG_ERR_INVALID, "asg_comm_allreduce: NULL communicator or buffer");
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "asg_comm_allreduce: dtype %s (f32, f64, i32, i64 only)",
                      asg_dtype_name(dt));
  if (op == ASG_COMM_MEAN && (dt == ASG_I32 || dt == ASG_I64))
    return asg__error(ASG_ERR_DTYPE, "asg_comm_allreduce: a mean needs a float dtype");
  return asg__comm_allreduce(c, buf, buf, n, dt, op, "asg_comm_allreduce");
}

asg_status asg_comm_broadcast(asg_comm *c, void *buf, size_t bytes, int root) {
  if (!c || (!buf && bytes > 0))
    return asg__error(ASG_ERR_INVALID, "asg_comm_broadcast: NULL communicator or buffer");
  return asg__comm_bcast(c, buf, bytes, root, "asg_comm_broadcast");
}

asg_status asg_comm_barrier(asg_comm *c) {
  asg_status st = asg__comm_usable(c, "asg_comm_barrier");
  if (st || c->size == 1) return st;
  if (c->tcp) return asg__tcp_barrier(c, "asg_comm_barrier");
#ifdef ASG_HAVE_MPI
  return asg__mpi_barrier(c, "asg_comm_barrier");
#else
  return asg__error(ASG_ERR_UNSUPPORTED, "asg_comm_barrier: no MPI in this build");
#endif
}

asg_status asg_comm_broadcast_variables(asg_comm *c, asg_program *p, int root) {
  const char *what = "asg_comm_broadcast_variables";
  asg_status st = asg__comm_usable(c, what);
  if (st) return st;
  if (!p) return asg__error(ASG_ERR_INVALID, "%s: NULL program", what);
  if (root < 0 || root >= c->size)
    return asg__error(ASG_ERR_INVALID, "%s: root %d is not a rank of a world of %d", what, root,
                      c->size);
  if (c->size == 1) return ASG_OK;
  int n = asg_program_variable_count(p);
  /* every rank must hold the same variables: compare the count first */
  int64_t cnt[2] = {n, -(int64_t)n};
  st = asg__comm_allreduce(c, cnt, cnt, 2, ASG_I64, ASG_COMM_MAX, what);
  if (!st && (cnt[0] != n || -cnt[1] != n))
    return asg__comm_fail(c, what, "ranks hold different numbers of variables (%d here)", n);
  void *buf = NULL;
  size_t cap = 0;
  for (int i = 0; i < n && !st; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape shape;
    st = asg_program_variable_info(p, i, &name, &dt, &shape);
    if (st) break;
    size_t bytes = (size_t)asg_shape_numel(shape) * asg_dtype_size(dt);
    if (bytes > cap) {
      void *nb = realloc(buf, bytes);
      if (!nb) {
        st = asg__error(ASG_ERR_OOM, "%s: out of memory (%zu bytes)", what, bytes);
        break;
      }
      buf = nb;
      cap = bytes;
    }
    if (c->rank == root) st = asg_program_get_variable(p, name, buf, bytes);
    if (!st) st = asg__comm_bcast(c, buf, bytes, root, what);
    if (!st && c->rank != root) st = asg_program_set_variable(p, name, buf, bytes);
  }
  free(buf);
  return st;
}
