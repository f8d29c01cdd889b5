/* The CPU backend's thread pool: one per CPU device, created with the
 * program's thread count. A job is a loop [0, n) split into nt fixed
 * contiguous ranges, one per thread; the calling thread runs range 0 and
 * the workers the others. Workers spin briefly and then sleep (a condition
 * variable), so that threads waiting at the end of a job never keep a core
 * that another process, or one of our own threads, needs. */
#ifndef ASG_CPU_POOL_H
#define ASG_CPU_POOL_H

#include <stdint.h>

#include "core/internal.h"

typedef struct asg_cpu_pool asg_cpu_pool;

/* Runs iterations [lo, hi) of a job as thread tid (0 <= tid < nt). */
typedef void (*asg_cpu_range_fn)(void *ctx, int64_t lo, int64_t hi, int tid);

/* Threads the CPU backend uses by default: the CPUs this process may run on
 * (its affinity mask), else the online CPUs. */
int asg_cpu_default_threads(void);

/* A pool of nthreads threads in all: the caller and nthreads - 1 workers. */
asg_status asg_cpu_pool_new(int nthreads, asg_cpu_pool **pool);
/* Joins the workers (NULL: nothing). */
void asg_cpu_pool_free(asg_cpu_pool *pool);
/* Threads of the pool, caller included (NULL: 1). */
int asg_cpu_pool_threads(const asg_cpu_pool *pool);

/* fn over [0, n) on min(nt, n, pool threads) threads, thread t taking the
 * t-th of equal contiguous ranges; the call returns when all are done.
 * Runs fn(ctx, 0, n, 0) on the calling thread when that is one thread, when
 * pool is NULL, or when the pool is already running a job (a nested call,
 * or another thread's): kernels must give the same results either way. */
void asg_cpu_parallel_for(asg_cpu_pool *pool, int nt, int64_t n, asg_cpu_range_fn fn, void *ctx);

#endif
