/* Small test harness: checks, random data, evaluation and gradient checks
 * through the public API only. */
#ifndef ASG_TESTUTIL_H
#define ASG_TESTUTIL_H

#include <math.h>
#include <stdbool.h>
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

/* ---- dtype buffers <-> doubles (F32, F64, I32, I64) ---- */

/* dst[i] = src[i] for n elements of dtype dt; NAN for other dtypes. */
void tu_to_double(asg_dtype dt, const void *src, double *dst, long n);
/* Stores n doubles as dtype dt in dst (8 bytes an element suffice); floats
 * round, integers truncate toward zero; other dtypes leave dst unwritten. */
void tu_from_double(asg_dtype dt, const double *src, void *dst, long n);
/* A constant of dtype dt and shape s holding v (converted as above). */
asg_tensor *tu_constant(asg_graph *g, asg_dtype dt, asg_shape s, const double *v);

/* ---- programs, by doubles ---- */

/* Fetches output t of a program that has run into out (numel(t) doubles).
 * Returns the status of asg_program_fetch; out is untouched on failure. */
int tu_fetch(asg_program *p, asg_tensor *t, double *out);
/* Copies variable `name` into v as doubles; returns its element count, or
 * -1 if the program has no such variable. */
long tu_get_var(asg_program *p, const char *name, double *v);
/* Sets variable `name` from numel(variable) doubles (converted to its
 * dtype); returns the status of asg_program_set_variable, or -1 if the
 * program has no such variable. */
int tu_set_var(asg_program *p, const char *name, const double *v);
/* Feeds input `name` of dtype dt with n doubles (converted); returns the
 * status of asg_program_feed. */
int tu_feed(asg_program *p, const char *name, asg_dtype dt, const double *v, long n);

/* ---- strings and files ---- */

/* s is not NULL and contains sub. */
bool tu_contains(const char *s, const char *sub);
/* Writes n bytes to path (nothing happens if it cannot be opened). */
void tu_write_file(const char *path, const void *data, size_t n);
/* Creates a fresh directory $TMPDIR/<prefix>_XXXXXX (/tmp without TMPDIR);
 * returns its path (static storage, one at a time) or NULL on failure. */
const char *tu_tmpdir_create(const char *prefix);
/* Removes the files of dir whose names do not start with '.', then dir. */
void tu_tmpdir_remove(const char *dir);
/* "dir/name" in one of 8 rotating static buffers: valid until 8 more calls. */
const char *tu_path(const char *dir, const char *name);
/* Exports y (graph g, one f32 input "x" of n values xv) to ONNX in a
 * temporary folder, imports it back and checks the imported program's
 * output against the source program's within rtol/atol (a TU_CHECK each);
 * prints a note and checks only the source where ONNX is not built. */
void tu_onnx_roundtrip(asg_graph *g, asg_tensor *y, const double *xv, long n, double rtol,
                       double atol, const char *what);

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

/* NumPy broadcasting for references: the shape of a op b, and the offset
 * in `in` (a broadcast operand) of output element o of shape out. */
asg_shape tu_bcast_shape(asg_shape a, asg_shape b);
long tu_bcast_index(asg_shape in, asg_shape out, long o);

/* The same bits at every CPU SIMD level (ASG_CPU_SIMD): a test records its
 * outputs with tu_dump while run_all runs its cases; tu_simd_main then
 * either writes them to FILE (when run as "self --dump FILE") or runs the
 * program again at ASG_CPU_SIMD=none and =avx2 and compares every value
 * byte for byte (NaNs as NaN). Returns the exit code (tu_finish). */
void tu_dump(const double *v, long n);
int tu_simd_main(int argc, char **argv, void (*run_all)(void));

#endif
