/* Small test harness: checks, random data, evaluation and gradient checks
 * through the public API only. */
#ifndef ASG_TESTUTIL_H
#define ASG_TESTUTIL_H

#include <math.h>
#include <stdio.h>

#include "asg/asg.h"

extern int tu_pass, tu_fail;

#define TU_CHECK(cond, ...)                                                                        \
  do {                                                                                             \
    if (cond) {                                                                                    \
      tu_pass++;                                                                                   \
    } else {                                                                                       \
      tu_fail++;                                                                                   \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                  \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
    }                                                                                              \
  } while (0)

/* Prints "N passed, N failed" and returns the process exit code. */
int tu_finish(void);
/* Exit code that ctest reports as skipped. */
#define TU_SKIP 77

/* Deterministic uniform numbers in [lo, hi). */
void tu_rand(unsigned long long seed, double *out, long n, double lo, double hi);
/* |a-b| <= atol + rtol*|b| for all i; prints the first mismatch. */
int tu_close(const char *what, const double *got, const double *want, long n, double atol,
             double rtol);

/* Compiles {y} on the CPU, runs it once, converts y to doubles in out
 * (numel(y) elements). Returns 0 on success. */
int tu_eval(asg_graph *g, asg_tensor *y, double *out);

/* Gradient check of build(xs) in float64: variables xs[i] of shapes[i] with
 * values from data[i] (or uniform in [lo, hi) if data is NULL or data[i] is
 * NULL); loss = sum(y * r) for a fixed random r. Compares asg_grad with
 * central differences. Returns the number of mismatches (0 = pass). */
typedef asg_tensor *(*tu_build_fn)(asg_graph *g, asg_tensor **xs, void *ctx);
typedef struct tu_gc_opts {
  double lo, hi; /* init range (default -1, 1) */
  double eps;    /* default 1e-6 */
  double tol;    /* default 1e-6, relative to max(1, |numeric|) */
  const double *const *data;
} tu_gc_opts;
int tu_gradcheck(const char *name, int n, const asg_shape *shapes, tu_build_fn build, void *ctx,
                 const tu_gc_opts *opts);

#endif
