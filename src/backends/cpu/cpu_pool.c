/* The CPU backend's thread pool (contract: cpu_pool.h).
 *
 * Why not OpenMP: its threads spin while they wait, at the end of every
 * parallel loop and for the next one (libgomp: 300000 polls by default).
 * On a machine where other processes hold the cores, the spinning threads
 * take the time slices that the thread doing the work needs: one epoch of
 * the MLP example took 5-20x longer with the default thread count than
 * with one thread (bench/RESULTS.md). Here a waiting thread spins for at
 * most SPIN_NS, then sleeps on a condition variable, so the scheduler runs
 * whichever thread has work.
 *
 * Protocol. The caller writes the job (fn, ctx, n) and the number of
 * workers that take part (pending), then publishes a ticket (generation and
 * thread count in one atomic word, release). A worker that sees a new
 * ticket (acquire) and is among the first nt - 1 workers runs its range and
 * decrements pending (release); the caller runs range 0 and waits for
 * pending to reach 0 (acquire) before it returns, so the job fields are
 * never rewritten while a worker reads them. Workers whose index is beyond
 * the job's thread count only record the ticket. Sleeping and waking go
 * through one mutex, so no wake-up is lost. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "backends/cpu/cpu_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* How long a waiting thread polls before it sleeps: long enough to cover
 * the gap between two loops of a step on an idle machine, short enough
 * that a busy machine loses little to it. */
#define SPIN_NS 30000
/* More threads than this are refused (the ticket keeps the count in 32 bits
 * and nobody has that many cores). */
#define MAX_THREADS 4096

typedef struct worker {
  asg_cpu_pool *pool;
  int tid;
} worker;

struct asg_cpu_pool {
  int nthreads; /* caller included */
  int nworkers; /* started */
  pthread_t *threads;
  worker *args;
  pthread_mutex_t mu;
  pthread_cond_t wake;         /* workers: a new ticket or stop */
  pthread_cond_t done;         /* caller: pending reached 0 */
  atomic_uint_fast64_t ticket; /* generation << 32 | thread count */
  atomic_int pending;          /* workers still running the job */
  atomic_bool busy;            /* a caller owns the pool */
  bool stop;                   /* under mu */
  /* the job, written by the owner of busy while no worker runs */
  asg_cpu_range_fn fn;
  void *ctx;
  int64_t n;
};

int asg_cpu_default_threads(void) {
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n > MAX_THREADS ? MAX_THREADS : n;
  }
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Range of thread t of nt over [0, n): the first n % nt ranges are one longer. */
static void range_of(int64_t n, int nt, int t, int64_t *lo, int64_t *hi) {
  int64_t q = n / nt, r = n % nt;
  *lo = t * q + (t < r ? t : r);
  *hi = *lo + q + (t < r ? 1 : 0);
}

/* How a waiting thread polls before it sleeps. Spinning for SPIN_NS, then
 * sleeping, measured best both with and without competing load; a
 * sched_yield phase in between (up to 200 us) made loaded epochs up to 6x
 * slower, one thread yielding to a busy process for whole time slices. */
typedef struct backoff {
  unsigned n;
  int64_t start;
} backoff;

/* One poll; false once the thread should sleep. */
static bool backoff_step(backoff *b) {
  if (++b->n < 64) {
    cpu_relax();
    return true;
  }
  int64_t now = now_ns();
  if (!b->start) b->start = now;
  if (now - b->start >= SPIN_NS) return false;
  cpu_relax();
  return true;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  asg_cpu_pool *p = w->pool;
  uint64_t seen = 0; /* the ticket before any job, even if this thread starts late */
  for (;;) {
    uint64_t t;
    backoff b = {0, 0};
    while ((t = atomic_load_explicit(&p->ticket, memory_order_acquire)) == seen && backoff_step(&b))
      ;
    if (t == seen) {
      pthread_mutex_lock(&p->mu);
      while (!p->stop && (t = atomic_load_explicit(&p->ticket, memory_order_acquire)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
      bool stop = p->stop;
      pthread_mutex_unlock(&p->mu);
      if (stop) return NULL;
    }
    seen = t;
    int nt = (int)(t & 0xffffffffu);
    if (w->tid >= nt) continue;
    int64_t lo, hi;
    range_of(p->n, nt, w->tid, &lo, &hi);
    p->fn(p->ctx, lo, hi, w->tid);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

void asg_cpu_pool_free(asg_cpu_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nworkers; i++)
    pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->wake);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p->args);
  free(p);
}

asg_status asg_cpu_pool_new(int nthreads, asg_cpu_pool **out) {
  *out = NULL;
  if (nthreads < 1 || nthreads > MAX_THREADS)
    return asg__error(ASG_ERR_INVALID, "cpu: %d threads asked (1 to %d)", nthreads, MAX_THREADS);
  asg_cpu_pool *p = calloc(1, sizeof *p);
  if (!p) return asg__error(ASG_ERR_OOM, "cpu: out of memory");
  p->nthreads = nthreads;
  atomic_init(&p->ticket, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->busy, false);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  int nw = nthreads - 1;
  p->threads = calloc((size_t)nw + 1, sizeof *p->threads);
  p->args = calloc((size_t)nw + 1, sizeof *p->args);
  if (!p->threads || !p->args) {
    asg_cpu_pool_free(p);
    return asg__error(ASG_ERR_OOM, "cpu: out of memory");
  }
  for (int i = 0; i < nw; i++) {
    p->args[i] = (worker){p, i + 1};
    int rc = pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]);
    if (rc) {
      asg_cpu_pool_free(p);
      return asg__error(ASG_ERR_OOM, "cpu: cannot start thread %d of %d (error %d)", i + 2,
                        nthreads, rc);
    }
    p->nworkers++;
  }
  *out = p;
  return ASG_OK;
}

int asg_cpu_pool_threads(const asg_cpu_pool *p) { return p ? p->nthreads : 1; }

void asg_cpu_parallel_for(asg_cpu_pool *p, int nt, int64_t n, asg_cpu_range_fn fn, void *ctx) {
  if (n <= 0) return;
  if (p && nt > p->nthreads) nt = p->nthreads;
  if (nt > n) nt = (int)n;
  bool owner = false;
  if (p && nt > 1) owner = !atomic_exchange_explicit(&p->busy, true, memory_order_acquire);
  if (!owner) {
    fn(ctx, 0, n, 0);
    return;
  }
  p->fn = fn, p->ctx = ctx, p->n = n;
  atomic_store_explicit(&p->pending, nt - 1, memory_order_relaxed);
  uint64_t gen = (atomic_load_explicit(&p->ticket, memory_order_relaxed) >> 32) + 1;
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&p->ticket, gen << 32 | (uint64_t)nt, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);

  int64_t lo, hi;
  range_of(n, nt, 0, &lo, &hi);
  fn(ctx, lo, hi, 0);

  backoff b = {0, 0};
  while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && backoff_step(&b))
    ;
  if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
    pthread_mutex_lock(&p->mu);
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
      pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  }
  atomic_store_explicit(&p->busy, false, memory_order_release);
}
