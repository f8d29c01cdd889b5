/* CPU kernels of argsort and cumsum (semantics: src/ops/op_sort.c), the
 * reference of the GPU kernels.
 *
 * A row is the n elements along the axis at one (outer, inner) position:
 * element j of row (o, i) is at o n inner + j inner + i.
 *
 * argsort: each element gets an unsigned order key that compares like the
 * values (NaN mapped to the largest key, -0 to +0's key; complemented for
 * descending); a stable bottom-up merge sort of the row's positions by key
 * then gives ties in index order. The first k positions are written. Per
 * thread workspace: the row's keys and two position buffers (24 n bytes).
 *
 * cumsum: one pass per row, f32 accumulated in double (rounded once per
 * output), f64 in double, integers in unsigned arithmetic (wrapping). */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu.h"

static inline uint64_t key_f32(float x) {
  uint32_t u;
  if (isnan(x)) return UINT32_MAX; /* above +inf's key, whatever the NaN's sign */
  if (x == 0) x = 0;               /* -0 as +0 */
  memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}
static inline uint64_t key_f64(double x) {
  uint64_t u;
  if (isnan(x)) return UINT64_MAX;
  if (x == 0) x = 0;
  memcpy(&u, &x, 8);
  return (u & 0x8000000000000000ull) ? ~u : u | 0x8000000000000000ull;
}

/* ---- argsort ---- */

typedef struct sort_job {
  const asg_cpu_call *c;
  int64_t n, k, inner;
  bool desc;
} sort_job;

/* Keys of row `base` (stride inner) of x into key[0..n). */
static void row_keys(const sort_job *j, int64_t base, uint64_t *key) {
  const void *x = j->c->in[0];
  const int64_t n = j->n, st = j->inner;
  switch (j->c->s->in[0].dtype) {
  case ASG_F32:
    for (int64_t e = 0; e < n; e++)
      key[e] = key_f32(((const float *)x)[base + e * st]);
    break;
  case ASG_F64:
    for (int64_t e = 0; e < n; e++)
      key[e] = key_f64(((const double *)x)[base + e * st]);
    break;
  case ASG_I32:
    for (int64_t e = 0; e < n; e++)
      key[e] = (uint32_t)((const int32_t *)x)[base + e * st] ^ 0x80000000u;
    break;
  default: /* I64 */
    for (int64_t e = 0; e < n; e++)
      key[e] = (uint64_t)((const int64_t *)x)[base + e * st] ^ 0x8000000000000000ull;
    break;
  }
  if (j->desc)
    for (int64_t e = 0; e < n; e++)
      key[e] = ~key[e];
}

/* Stable sort of the positions 0..n-1 by key; returns the buffer (a or b)
 * that holds the result. */
static int64_t *merge_sort(const uint64_t *key, int64_t n, int64_t *a, int64_t *b) {
  for (int64_t e = 0; e < n; e++)
    a[e] = e;
  for (int64_t w = 1; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      const int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      int64_t p = lo, q = mid, o = lo;
      while (p < mid && q < hi) /* the left run first on equal keys: stable */
        b[o++] = key[a[q]] < key[a[p]] ? a[q++] : a[p++];
      while (p < mid)
        b[o++] = a[p++];
      while (q < hi)
        b[o++] = a[q++];
    }
    int64_t *t = a;
    a = b;
    b = t;
  }
  return a;
}

static void sort_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  const sort_job *j = ctx;
  const int64_t n = j->n, k = j->k, in = j->inner;
  uint64_t *key = (uint64_t *)j->c->ws + (size_t)tid * 3 * (size_t)n;
  int64_t *a = (int64_t *)(key + n), *b = a + n;
  int64_t *y = j->c->out;
  for (int64_t r = lo; r < hi; r++) {
    const int64_t o = r / in, i = r % in;
    row_keys(j, o * n * in + i, key);
    const int64_t *pos = merge_sort(key, n, a, b);
    for (int64_t e = 0; e < k; e++)
      y[o * k * in + e * in + i] = pos[e];
  }
}

static void row_geometry(const asg_shape s, int a, int64_t *outer, int64_t *inner) {
  *outer = 1, *inner = 1;
  for (int d = 0; d < a; d++)
    *outer *= s.dims[d];
  for (int d = a + 1; d < s.ndim; d++)
    *inner *= s.dims[d];
}

static size_t argsort_ws(const asg_step *s, int nthreads) {
  return (size_t)nthreads * 3 * sizeof(uint64_t) * (size_t)s->in[0].shape.dims[s->attr.i[0]];
}

static asg_status argsort_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  const int a = (int)s->attr.i[0];
  const asg_dtype dt = s->in[0].dtype;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  sort_job j = {c, s->in[0].shape.dims[a], s->out.shape.dims[a], 1, s->attr.i[1] != 0};
  int64_t outer;
  row_geometry(s->in[0].shape, a, &outer, &j.inner);
  const int64_t rows = outer * j.inner;
  /* ~n log2 n steps per row */
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, 16 * rows * j.n, rows), rows, sort_range,
                       &j);
  return ASG_OK;
}

/* ---- cumsum ---- */

typedef struct scan_job {
  const asg_cpu_call *c;
  int64_t n, inner;
  bool excl, rev;
} scan_job;

/* The range functions per type (A: the accumulator): cpu_cumsum_tmpl.h. */
#define SUF f32
#define T float
#define A double
#include "backends/cpu/cpu_cumsum_tmpl.h"
#define SUF f64
#define T double
#define A double
#include "backends/cpu/cpu_cumsum_tmpl.h"
#define SUF i32
#define T int32_t
#define A uint32_t
#include "backends/cpu/cpu_cumsum_tmpl.h"
#define SUF i64
#define T int64_t
#define A uint64_t
#include "backends/cpu/cpu_cumsum_tmpl.h"

static asg_status cumsum_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  const int a = (int)s->attr.i[0];
  asg_cpu_range_fn fn;
  switch (s->out.dtype) {
  case ASG_F32: fn = scan_f32; break;
  case ASG_F64: fn = scan_f64; break;
  case ASG_I32: fn = scan_i32; break;
  case ASG_I64: fn = scan_i64; break;
  default:
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->out.dtype));
  }
  scan_job j = {c, s->out.shape.dims[a], 1, s->attr.i[1] != 0, s->attr.i[2] != 0};
  int64_t outer;
  row_geometry(s->out.shape, a, &outer, &j.inner);
  const int64_t rows = outer * j.inner;
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, rows * j.n, rows), rows, fn, &j);
  return ASG_OK;
}

void asg_cpu_register_sort(asg_cpu_kernel *t) {
  t[ASG_OP_ARGSORT].run = argsort_kernel;
  t[ASG_OP_ARGSORT].ws = argsort_ws;
  t[ASG_OP_CUMSUM].run = cumsum_kernel;
}
