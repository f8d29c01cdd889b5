/* The torchrun-style rendezvous (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
 * rank 0 listens on MASTER_PORT, every other rank connects to it. The star
 * carries the host-side control collectives (the NCCL unique id, barriers,
 * metrics, the first broadcast of the parameters); tensors in programs go
 * through NCCL (CUDA). Every wait is bounded by the communicator's timeout.
 * Messages are raw bytes in the ranks' own byte order (one machine type per
 * job, as NCCL and MPI assume). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dist/comm_internal.h"

struct asg__tcp {
  int *fd; /* rank 0: fd[r] for rank r (fd[0] unused); others: fd[0] to rank 0 */
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static bool wait_fd(int fd, short events, double deadline) {
  for (;;) {
    double left = deadline - now_s();
    if (left <= 0) return false;
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, left > 1 ? 1000 : (int)(left * 1000) + 1);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

static asg_status io_all(asg_comm *c, int fd, void *buf, size_t n, bool send_it, const char *what) {
  const double deadline = now_s() + c->timeout_s;
  char *p = buf;
  while (n > 0) {
    if (!wait_fd(fd, send_it ? POLLOUT : POLLIN, deadline))
      return asg__comm_fail(c, what,
                            "timed out after %.0f s waiting for the other ranks (one died or "
                            "hangs?); ASG_COMM_TIMEOUT sets the limit",
                            c->timeout_s);
    ssize_t k = send_it ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
    if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
      return asg__comm_fail(c, what, "the connection to a rank was lost (%s)",
                            k == 0 ? "closed" : strerror(errno));
    if (k > 0) p += k, n -= (size_t)k;
  }
  return ASG_OK;
}

static int connect_to(const char *host, const char *port, double deadline) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
  while (now_s() < deadline) { /* rank 0 may not listen yet: retry */
    if (getaddrinfo(host, port, &hints, &ai) == 0) {
      for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
          freeaddrinfo(ai);
          return fd;
        }
        close(fd);
      }
      freeaddrinfo(ai);
    }
    nanosleep(&(struct timespec){0, 50000000}, NULL);
  }
  return -1;
}

static void close_all(asg_comm *c) {
  asg__tcp *t = c->tcp;
  if (!t) return;
  for (int r = 0; r < c->size; r++)
    if (t->fd[r] >= 0) close(t->fd[r]);
  free(t->fd);
  free(t);
  c->tcp = NULL;
}

asg_status asg__tcp_open(asg_comm *c, const char *host, const char *port) {
  const char *what = "asg_comm_init (rendezvous)";
  asg__tcp *t = calloc(1, sizeof *t);
  if (t) t->fd = malloc(sizeof *t->fd * (size_t)c->size);
  if (!t || !t->fd) {
    free(t);
    return asg__error(ASG_ERR_OOM, "%s: out of memory", what);
  }
  for (int r = 0; r < c->size; r++)
    t->fd[r] = -1;
  c->tcp = t;
  const double deadline = now_s() + c->timeout_s;
  const int one = 1;
  if (c->rank == 0) {
    struct addrinfo hints = {.ai_family = AF_INET,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    int ls = -1;
    if (getaddrinfo(NULL, port, &hints, &ai) == 0) {
      ls = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (ls >= 0) setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (ls >= 0 && (bind(ls, ai->ai_addr, ai->ai_addrlen) || listen(ls, c->size))) {
        close(ls);
        ls = -1;
      }
      freeaddrinfo(ai);
    }
    if (ls < 0) {
      close_all(c);
      return asg__error(ASG_ERR_BACKEND, "%s: rank 0 cannot listen on port %s: %s", what, port,
                        strerror(errno));
    }
    for (int got = 1; got < c->size;) {
      if (!wait_fd(ls, POLLIN, deadline)) {
        close(ls);
        close_all(c);
        return asg__error(ASG_ERR_BACKEND,
                          "%s: timed out after %.0f s: %d of %d ranks connected to port %s", what,
                          c->timeout_s, got, c->size, port);
      }
      int fd = accept(ls, NULL, NULL);
      int32_t r = -1;
      if (fd < 0) continue;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (io_all(c, fd, &r, sizeof r, false, what) || r <= 0 || r >= c->size || t->fd[r] >= 0) {
        c->broken = false; /* a stray connection is not a broken job */
        close(fd);
        continue;
      }
      t->fd[r] = fd;
      got++;
    }
    close(ls);
  } else {
    int fd = connect_to(host, port, deadline);
    int32_t r = c->rank;
    if (fd < 0) {
      close_all(c);
      return asg__error(ASG_ERR_BACKEND,
                        "%s: rank %d cannot reach rank 0 at %s:%s within %.0f s (MASTER_ADDR, "
                        "MASTER_PORT)",
                        what, c->rank, host, port, c->timeout_s);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    t->fd[0] = fd;
    asg_status st = io_all(c, fd, &r, sizeof r, true, what);
    if (st) {
      close_all(c);
      return st;
    }
  }
  return ASG_OK;
}

void asg__tcp_close(asg_comm *c) { close_all(c); }

asg_status asg__tcp_barrier(asg_comm *c, const char *what) {
  int32_t one = 1;
  return asg__tcp_allreduce(c, &one, 1, ASG_I32, ASG_COMM_SUM, what);
}

/* rank 0 gathers every rank's `bytes` into all (size blocks), in rank order */
static asg_status gather0(asg_comm *c, const void *mine, void *all, size_t bytes,
                          const char *what) {
  asg__tcp *t = c->tcp;
  if (c->rank != 0) return io_all(c, t->fd[0], (void *)mine, bytes, true, what);
  if (all != mine) memmove(all, mine, bytes);
  for (int r = 1; r < c->size; r++) {
    asg_status st = io_all(c, t->fd[r], (char *)all + (size_t)r * bytes, bytes, false, what);
    if (st) return st;
  }
  return ASG_OK;
}

/* rank 0 sends buf to every rank */
static asg_status scatter_same(asg_comm *c, void *buf, size_t bytes, const char *what) {
  asg__tcp *t = c->tcp;
  if (c->rank != 0) return io_all(c, t->fd[0], buf, bytes, false, what);
  for (int r = 1; r < c->size; r++) {
    asg_status st = io_all(c, t->fd[r], buf, bytes, true, what);
    if (st) return st;
  }
  return ASG_OK;
}

asg_status asg__tcp_bcast(asg_comm *c, void *buf, size_t bytes, int root, const char *what) {
  asg__tcp *t = c->tcp;
  asg_status st = ASG_OK;
  if (root != 0) { /* root's bytes reach rank 0 first */
    if (c->rank == root) st = io_all(c, t->fd[0], buf, bytes, true, what);
    if (c->rank == 0) st = io_all(c, t->fd[root], buf, bytes, false, what);
  }
  return st ? st : scatter_same(c, buf, bytes, what);
}

static double pick(double a, double b, asg_comm_op op) {
  return op == ASG_COMM_MAX ? (a > b ? a : b) : op == ASG_COMM_MIN ? (a < b ? a : b) : a + b;
}

/* dst[i] = dst[i] op src[i] for n elements of dt (f32, f64, i32, i64) */
static void reduce_into(void *dst, const void *src, int64_t n, asg_dtype dt, asg_comm_op op) {
  for (int64_t i = 0; i < n; i++)
    switch (dt) {
    case ASG_F32:
      ((float *)dst)[i] = (float)pick(((float *)dst)[i], ((const float *)src)[i], op);
      break;
    case ASG_F64:
      ((double *)dst)[i] = pick(((double *)dst)[i], ((const double *)src)[i], op);
      break;
    case ASG_I32:
      ((int32_t *)dst)[i] = (int32_t)pick(((int32_t *)dst)[i], ((const int32_t *)src)[i], op);
      break;
    default: { /* i64: exact */
      int64_t x = ((int64_t *)dst)[i], y = ((const int64_t *)src)[i];
      ((int64_t *)dst)[i] = op == ASG_COMM_MAX   ? (x > y ? x : y)
                            : op == ASG_COMM_MIN ? (x < y ? x : y)
                                                 : x + y;
    }
    }
}

/* op over the ranks of n elements of dt into buf (in place): reduced on rank
 * 0 in rank order, then sent back. */
asg_status asg__tcp_allreduce(asg_comm *c, void *buf, int64_t n, asg_dtype dt, asg_comm_op op,
                              const char *what) {
  const size_t bytes = (size_t)n * asg_dtype_size(dt);
  if (dt == ASG_BF16 || dt == ASG_F16)
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: 16-bit host reductions over the rendezvous", what);
  char *all = c->rank == 0 ? malloc(bytes * (size_t)c->size + 1) : NULL;
  if (c->rank == 0 && !all) return asg__error(ASG_ERR_OOM, "%s: out of memory", what);
  asg_status st = gather0(c, buf, c->rank == 0 ? all : NULL, bytes, what);
  for (int r = 1; !st && c->rank == 0 && r < c->size; r++)
    reduce_into(buf, all + (size_t)r * bytes, n, dt, op);
  free(all);
  return st ? st : scatter_same(c, buf, bytes, what);
}
