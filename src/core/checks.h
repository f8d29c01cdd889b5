/* Checks on what enters the library from outside: shapes (graph nodes,
 * files, host tensors), size arithmetic on caller-given counts, and files
 * opened by path. Internal; every layer may include it. */
#ifndef ASG_CORE_CHECKS_H
#define ASG_CORE_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asg/core.h"

/* The largest tensor the library accepts: 2^48 bytes (256 TiB), or SIZE_MAX
 * where size_t is narrower. Far above any real memory, and small enough that
 * sums of many tensor sizes (memory plans, file offsets) cannot overflow. */
#define ASG__MAX_TENSOR_BYTES                                                                      \
  ((uint64_t)SIZE_MAX < ((uint64_t)1 << 48) ? (uint64_t)SIZE_MAX : ((uint64_t)1 << 48))

/* The one check of a shape: rank in [0, ASG_MAX_DIMS], no negative dim, and
 * the product of the non-zero dims times elem_size at most
 * ASG__MAX_TENSOR_BYTES (so a zero dim cannot hide an overflowing product).
 * On success returns true and the element count in *numel (may be NULL);
 * otherwise false and a reason ("dim 1 is -3", ...) in why[0..why_len). */
bool asg__shape_check(asg_shape s, size_t elem_size, int64_t *numel, char *why, size_t why_len);
/* The same check for a node of graph g: a dim may also be a symbolic
 * expression id of g (core/symbol.h); the size limit then applies to the
 * constant dims only (binding checks cover the rest) and *numel is -1. */
struct asg_graph;
bool asg__shape_check_g(const struct asg_graph *g, asg_shape s, size_t elem_size, int64_t *numel,
                        char *why, size_t why_len);

/* Overflow-checked arithmetic on non-negative int64 values (caller-given
 * counts, sizes and offsets); false when the result does not fit. */
static inline bool asg__mul_i64(int64_t a, int64_t b, int64_t *r) {
  if (a < 0 || b < 0 || (a && b > INT64_MAX / a)) return false;
  *r = a * b;
  return true;
}
static inline bool asg__add_i64(int64_t a, int64_t b, int64_t *r) {
  if (a < 0 || b < 0 || a > INT64_MAX - b) return false;
  *r = a + b;
  return true;
}
/* n items of size bytes, within ASG__MAX_TENSOR_BYTES; false otherwise. */
static inline bool asg__array_bytes(int64_t n, size_t size, size_t *bytes) {
  if (n < 0 || (size && (uint64_t)n > ASG__MAX_TENSOR_BYTES / size)) return false;
  *bytes = (size_t)n * size;
  return true;
}

/* Opens path for reading only if it is a regular file, without blocking on
 * a FIFO or a device: returns the descriptor (blocking mode, close-on-exec),
 * or -1 with the message "<who>: cannot open '<path>': ..." or "<who>:
 * '<path>' is not a regular file (a FIFO)" set, and *status (may be NULL)
 * ASG_ERR_IO. Every loader goes through here. */
int asg__open_regular(const char *path, const char *who, asg_status *status);

#endif
