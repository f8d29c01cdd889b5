/* CPU kernels of the index family: permute, slice, slice_bwd, concat,
 * gather, scatter_add, one_hot. Data movement is dtype-generic (bytes of the
 * element size); only scatter_add and one_hot do arithmetic per dtype.
 * Every kernel writes all of its output (arena buffers are reused).
 * Out-of-range indices never index: gather gives zeros, scatter_add skips
 * them, one_hot gives an all-zero row. Unless the program is unchecked,
 * cpu_backend.c scans a step's indices first and fails the run instead. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "backends/cpu/cpu_simd.h"
#include "runtime/layout.h"

static inline int64_t idx_at(const void *p, asg_dtype dt, int64_t i) {
  return dt == ASG_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

static int threads_for(const asg_cpu_call *c, int64_t elems) {
  return elems >= ASG_CPU_PAR_MIN ? c->nthreads : 1;
}

/* n records of rb bytes: dst[i * ds] = src[i * ss] (strides in records).
 * Inlined with a constant rb, the memcpy compiles to plain moves. */
ASG_ALWAYS_INLINE void copy_recs_of(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n,
                                    int64_t rb) {
  for (int64_t i = 0; i < n; i++)
    memcpy(dst + i * ds * rb, src + i * ss * rb, (size_t)rb);
}
static void copy_recs(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t rb) {
  if (ds == 1 && ss == 1) {
    memcpy(dst, src, (size_t)n * rb);
    return;
  }
  switch (rb) {
  case 1: copy_recs_of(dst, ds, src, ss, n, 1); break;
  case 2: copy_recs_of(dst, ds, src, ss, n, 2); break;
  case 4: copy_recs_of(dst, ds, src, ss, n, 4); break;
  case 8: copy_recs_of(dst, ds, src, ss, n, 8); break;
  case 16: copy_recs_of(dst, ds, src, ss, n, 16); break;
  default:
    for (int64_t i = 0; i < n; i++)
      memcpy(dst + (size_t)(i * ds) * rb, src + (size_t)(i * ss) * rb, rb);
  }
}

/* ---- permute ----
 * The permutation is first simplified (asg__permute_plan, runtime/layout.h):
 * size-1 dims are dropped and input dims that stay adjacent and in order are
 * merged, so e.g. [N,C,H,W] -> [N,H,W,C] becomes a batch of 2-D transposes
 * [C,HW] -> [HW,C]. Then:
 *   - last input dim stays last: copy contiguous rows with memcpy;
 *   - otherwise: banded 2-D transpose of (input dim that goes last) x
 *     (input's last dim), batched over the remaining dims. */

/* One band of the 2-D transpose: out[i + j*osq] = in[i*isp + j] for rows
 * i0..i1 (at most PERM_BAND) and all j. Walking j outside and the short
 * band inside writes contiguous runs and streams PERM_BAND input rows; it
 * measured 3x faster than 32x32 square tiles on power-of-two strides, which
 * make the tile's rows collide in the same cache sets. */
ASG_ALWAYS_INLINE void band_of(char *dst, const char *src, int64_t i0, int64_t i1, int64_t nj,
                               int64_t isp, int64_t osq, size_t es) {
  for (int64_t j = 0; j < nj; j++) {
    char *dr = dst + (size_t)(j * osq) * es;
    const char *sr = src + (size_t)j * es;
    for (int64_t i = i0; i < i1; i++)
      memcpy(dr + (size_t)i * es, sr + (size_t)(i * isp) * es, es);
  }
}
/* band_of with the element sizes of the dtypes as constants (plain moves). */
static void band(char *dst, const char *src, int64_t i0, int64_t i1, int64_t nj, int64_t isp,
                 int64_t osq, size_t es) {
  switch (es) {
  case 1: band_of(dst, src, i0, i1, nj, isp, osq, 1); break;
  case 2: band_of(dst, src, i0, i1, nj, isp, osq, 2); break;
  case 4: band_of(dst, src, i0, i1, nj, isp, osq, 4); break;
  case 8: band_of(dst, src, i0, i1, nj, isp, osq, 8); break;
  default: band_of(dst, src, i0, i1, nj, isp, osq, es);
  }
}

#define PERM_BAND 8

/* A permute step: the simplified plan and the loop's split. */
typedef struct perm_job {
  const asg_cpu_call *c;
  asg_permute_plan p;
  size_t es;
  int64_t rows, nch;               /* contiguous rows: rows in nch chunks */
  int P, nb;                       /* banded transpose: the band's input dim, batch dims */
  int64_t NI, NJ, isp, osq, nband; /* the 2-D transpose */
  int64_t bd[ASG_MAX_DIMS], bis[ASG_MAX_DIMS], bos[ASG_MAX_DIMS]; /* batch dims, in/out strides */
} perm_job;

/* Chunks [lo, hi) of output rows when the last input dim stays last: an
 * odometer walks the rows of `inner` elements. */
static void perm_rows_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const perm_job *j = ctx;
  const int nd = j->p.nd;
  const int64_t *od = j->p.od, *oist = j->p.oist;
  const int64_t inner = od[nd - 1], rows = j->rows, nch = j->nch;
  const size_t es = j->es, rb = (size_t)inner * es;
  const char *x = j->c->in[0];
  char *y = j->c->out;
  for (int64_t ch = lo; ch < hi; ch++) {
    int64_t r0 = ch * rows / nch, r1 = (ch + 1) * rows / nch, q = r0, off = 0;
    int64_t co[ASG_MAX_DIMS];
    for (int k = nd - 2; k >= 0; k--) {
      co[k] = q % od[k];
      q /= od[k];
      off += co[k] * oist[k];
    }
    for (int64_t r = r0; r < r1; r++) {
      memcpy(y + (size_t)r * rb, x + (size_t)off * es, rb);
      for (int k = nd - 2; k >= 0; k--) {
        off += oist[k];
        if (++co[k] < od[k]) break;
        off -= co[k] * oist[k];
        co[k] = 0;
      }
    }
  }
}

/* Units [lo, hi) of the banded transpose: (batch entry, band of PERM_BAND rows). */
static void perm_band_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const perm_job *j = ctx;
  const size_t es = j->es;
  const char *x = j->c->in[0];
  char *y = j->c->out;
  for (int64_t u = lo; u < hi; u++) {
    int64_t b = u / j->nband, i0 = (u % j->nband) * PERM_BAND, io = 0, oo = 0;
    for (int k = j->nb - 1; k >= 0; k--) {
      int64_t co = b % j->bd[k];
      b /= j->bd[k];
      io += co * j->bis[k];
      oo += co * j->bos[k];
    }
    band(y + (size_t)oo * es, x + (size_t)io * es, i0,
         i0 + PERM_BAND < j->NI ? i0 + PERM_BAND : j->NI, j->NJ, j->isp, j->osq, es);
  }
}

/* x [d0..dn] -> y [d_perm0..d_permn] */
static asg_status permute_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  perm_job j = {.c = c, .es = asg_dtype_size(s->out.dtype)};
  int64_t total = asg_shape_numel(s->out.shape);
  asg__permute_plan(&j.p, s->in[0].shape, s->attr.i);
  if (j.p.nd <= 1) { /* only size-1 axes moved */
    memcpy(c->out, c->in[0], (size_t)total * j.es);
    return ASG_OK;
  }
  const int nd = j.p.nd;
  const int nt = threads_for(c, total);

  if (j.p.pm[nd - 1] == nd - 1) {
    j.rows = total / j.p.od[nd - 1];
    j.nch = nt > 1 ? (j.rows < 8 * nt ? j.rows : 8 * nt) : 1;
    asg_cpu_parallel_for(c->pool, nt, j.nch, perm_rows_range, &j);
    return ASG_OK;
  }

  /* rows: input dim P (goes last in the output), cols: input dim L (last) */
  int L = nd - 1;
  j.P = j.p.pm[nd - 1];
  j.NI = j.p.dims[j.P], j.NJ = j.p.dims[L], j.isp = j.p.ist[j.P], j.osq = j.p.ost[j.p.inv[L]];
  int64_t nbatch = 1;
  for (int d = 0; d < nd; d++) {
    if (d == j.P || d == L) continue;
    j.bd[j.nb] = j.p.dims[d], j.bis[j.nb] = j.p.ist[d], j.bos[j.nb] = j.p.ost[j.p.inv[d]];
    nbatch *= j.p.dims[d];
    j.nb++;
  }
  j.nband = (j.NI + PERM_BAND - 1) / PERM_BAND;
  asg_cpu_parallel_for(c->pool, nt, nbatch * j.nband, perm_band_range, &j);
  return ASG_OK;
}

/* ---- slice / slice_bwd ----
 * x [outer, n, inner] -> y [outer, count, inner], y[o, j] = x[o, start + j*step].
 * Work units are (outer row, chunk of the sliced axis). */
static int64_t chunks_for(int nt, int64_t outer, int64_t len) {
  if (nt <= 1 || outer >= nt) return 1;
  return len < 4 * nt ? len : 4 * nt;
}

/* A slice, slice_bwd or scatter_add step over [outer, n, inner]. */
typedef struct axis_job {
  const asg_cpu_call *c;
  int64_t start, step, count; /* the slice */
  int64_t outer, n, inner, nch;
  size_t rb; /* bytes of a record (inner elements) */
  int64_t m; /* scatter_add: indices */
} axis_job;

/* Units [lo, hi) of slice: (outer row, chunk of the count output records). */
static void slice_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const axis_job *j = ctx;
  const char *x = j->c->in[0];
  char *y = j->c->out;
  const int64_t count = j->count, nch = j->nch, n = j->n, start = j->start, step = j->step;
  const size_t rb = j->rb;
  for (int64_t u = lo; u < hi; u++) {
    int64_t o = u / nch, ch = u % nch;
    int64_t j0 = ch * count / nch, j1 = (ch + 1) * count / nch;
    copy_recs(y + (size_t)(o * count + j0) * rb, 1, x + (size_t)(o * n + start + j0 * step) * rb,
              step, j1 - j0, rb);
  }
}

static asg_status slice_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  axis_job j = {.c = c, .start = s->attr.i[1], .step = s->attr.i[2], .count = s->attr.i[3]};
  j.n = s->in[0].shape.dims[a];
  asg__split_axis(s->in[0].shape, a, &j.outer, &j.inner);
  j.rb = (size_t)j.inner * asg_dtype_size(s->out.dtype);
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  j.nch = chunks_for(nt, j.outer, j.count);
  asg_cpu_parallel_for(c->pool, nt, j.outer * j.nch, slice_range, &j);
  return ASG_OK;
}

/* Units [lo, hi) of slice_bwd: (outer row, chunk of the n dx records). */
static void slice_bwd_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const axis_job *j = ctx;
  const char *dy = j->c->in[0];
  char *dx = j->c->out;
  const int64_t count = j->count, nch = j->nch, n = j->n, start = j->start, step = j->step;
  const size_t rb = j->rb;
  for (int64_t u = lo; u < hi; u++) {
    int64_t o = u / nch, ch = u % nch;
    int64_t i0 = ch * n / nch, i1 = (ch + 1) * n / nch; /* rows of dx owned here */
    memset(dx + (size_t)(o * n + i0) * rb, 0, (size_t)(i1 - i0) * rb);
    /* slice elements j with i0 <= start + j*step < i1 */
    int64_t j0 = i0 <= start ? 0 : (i0 - start + step - 1) / step;
    int64_t j1 = i1 <= start ? 0 : (i1 - start + step - 1) / step;
    if (j1 > count) j1 = count;
    if (j1 > j0)
      copy_recs(dx + (size_t)(o * n + start + j0 * step) * rb, step,
                dy + (size_t)(o * count + j0) * rb, 1, j1 - j0, rb);
  }
}

/* dy [outer, count, inner] -> dx [outer, n, inner]: zeros, dy at the slice. */
static asg_status slice_bwd_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  axis_job j = {.c = c, .start = s->attr.i[1], .step = s->attr.i[2], .count = s->attr.i[3]};
  j.n = s->out.shape.dims[a];
  asg__split_axis(s->out.shape, a, &j.outer, &j.inner);
  j.rb = (size_t)j.inner * asg_dtype_size(s->out.dtype);
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  j.nch = chunks_for(nt, j.outer, j.n);
  asg_cpu_parallel_for(c->pool, nt, j.outer * j.nch, slice_bwd_range, &j);
  return ASG_OK;
}

/* ---- concat ----
 * xs[k] [outer, n_k, inner] -> y [outer, sum n_k, inner]; units (outer, k). */
typedef struct concat_job {
  const asg_cpu_call *c;
  int64_t inner;
  size_t es, orb; /* element and output row bytes */
} concat_job;

static void concat_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const concat_job *j = ctx;
  const asg_step *s = j->c->s;
  const int a = (int)s->attr.i[0], nin = s->n_in;
  const int64_t inner = j->inner;
  const size_t es = j->es;
  for (int64_t u = lo; u < hi; u++) {
    int64_t o = u / nin;
    int k = (int)(u % nin);
    int64_t before = 0; /* offset of input k along the axis */
    for (int t = 0; t < k; t++)
      before += s->in[t].shape.dims[a];
    size_t rb = (size_t)(s->in[k].shape.dims[a] * inner) * es;
    memcpy((char *)j->c->out + (size_t)o * j->orb + (size_t)(before * inner) * es,
           (const char *)j->c->in[k] + (size_t)o * rb, rb);
  }
}

static asg_status concat_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  int64_t outer;
  concat_job j = {.c = c, .es = asg_dtype_size(s->out.dtype)};
  asg__split_axis(s->out.shape, a, &outer, &j.inner);
  j.orb = (size_t)(s->out.shape.dims[a] * j.inner) * j.es;
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  asg_cpu_parallel_for(c->pool, nt, outer * s->n_in, concat_range, &j);
  return ASG_OK;
}

/* ---- gather ----
 * x [outer, n, inner], idx [m] -> y [outer, m, inner]; y[o, j] = x[o, idx[j]]
 * or zeros when idx[j] is outside [0, n). */
/* Output rows [lo, hi) of [outer * m]. */
static void gather_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const axis_job *j = ctx;
  const char *x = j->c->in[0];
  const void *idx = j->c->in[1];
  asg_dtype it = j->c->s->in[1].dtype;
  char *y = j->c->out;
  const int64_t m = j->m, n = j->n;
  const size_t rb = j->rb;
  for (int64_t r = lo; r < hi; r++) {
    int64_t o = r / m, i = idx_at(idx, it, r % m);
    if (i >= 0 && i < n)
      memcpy(y + (size_t)r * rb, x + (size_t)(o * n + i) * rb, rb);
    else
      memset(y + (size_t)r * rb, 0, rb);
  }
}

static asg_status gather_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  axis_job j = {.c = c, .n = s->in[0].shape.dims[a], .m = asg_shape_numel(s->in[1].shape)};
  asg__split_axis(s->in[0].shape, a, &j.outer, &j.inner);
  j.rb = (size_t)j.inner * asg_dtype_size(s->out.dtype);
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  asg_cpu_parallel_for(c->pool, nt, j.outer * j.m, gather_range, &j);
  return ASG_OK;
}

/* ---- scatter_add ----
 * x [outer, n, inner], idx [m], src [outer, m, inner] -> y = x, then
 * y[o, idx[j]] += src[o, j] for j = 0..m-1 in order. Deterministic: a work
 * unit owns a range of target rows of one outer slice and scans all of idx,
 * so each element's additions happen in j order whatever the thread count.
 * Per type: cpu_scatter_tmpl.h. */
#define SUF f32
#define T float
#include "backends/cpu/cpu_scatter_tmpl.h"
#define SUF f64
#define T double
#include "backends/cpu/cpu_scatter_tmpl.h"
#define SUF i32
#define T int32_t
#include "backends/cpu/cpu_scatter_tmpl.h"
#define SUF i64
#define T int64_t
#include "backends/cpu/cpu_scatter_tmpl.h"

static void scatter_add_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const axis_job *jb = ctx;
  switch (jb->c->s->out.dtype) {
  case ASG_F32: scatter_add_f32(jb, lo, hi); break;
  case ASG_F64: scatter_add_f64(jb, lo, hi); break;
  case ASG_I32: scatter_add_i32(jb, lo, hi); break;
  default: scatter_add_i64(jb, lo, hi); break;
  }
}

static asg_status scatter_add_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  axis_job j = {.c = c, .n = s->in[0].shape.dims[a], .m = asg_shape_numel(s->in[1].shape)};
  asg__split_axis(s->in[0].shape, a, &j.outer, &j.inner);
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  j.rb = (size_t)j.inner * asg_dtype_size(dt);
  int nt = threads_for(c, asg_shape_numel(s->out.shape) + asg_shape_numel(s->in[2].shape));
  j.nch = chunks_for(nt, j.outer, j.n);
  asg_cpu_parallel_for(c->pool, nt, j.outer * j.nch, scatter_add_range, &j);
  return ASG_OK;
}

/* ---- one_hot ----
 * idx [m] -> y [m, depth]: 1 at idx, 0 elsewhere (all 0 when out of range). */
typedef struct one_hot_job {
  const asg_cpu_call *c;
  const void *one; /* 1 in the output dtype */
} one_hot_job;

/* Rows [lo, hi) of y (already zero): the 1s. */
static void one_hot_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const one_hot_job *j = ctx;
  const asg_step *s = j->c->s;
  const int64_t depth = s->attr.i[0];
  const asg_dtype it = s->in[0].dtype;
  const size_t es = asg_dtype_size(s->out.dtype);
  const void *idx = j->c->in[0];
  char *y = j->c->out;
  for (int64_t r = lo; r < hi; r++) {
    int64_t i = idx_at(idx, it, r);
    if (i >= 0 && i < depth) memcpy(y + (size_t)(r * depth + i) * es, j->one, es);
  }
}

static asg_status one_hot_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int64_t depth = s->attr.i[0], m = asg_shape_numel(s->in[0].shape);
  asg_dtype dt = s->out.dtype;
  size_t es = asg_dtype_size(dt);
  float f1 = 1.0f;
  double d1 = 1.0;
  int32_t i1 = 1;
  int64_t l1 = 1;
  one_hot_job j = {c, dt == ASG_F32   ? (const void *)&f1
                      : dt == ASG_F64 ? (const void *)&d1
                      : dt == ASG_I32 ? (const void *)&i1
                                      : (const void *)&l1};
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  memset(c->out, 0, (size_t)(m * depth) * es); /* all-zero bits are 0 in every dtype here */
  asg_cpu_parallel_for(c->pool, threads_for(c, m * depth), m, one_hot_range, &j);
  return ASG_OK;
}

void asg_cpu_register_index(asg_cpu_kernel *t) {
  t[ASG_OP_PERMUTE].run = permute_kernel;
  t[ASG_OP_SLICE].run = slice_kernel;
  t[ASG_OP_SLICE_BWD].run = slice_bwd_kernel;
  t[ASG_OP_CONCAT].run = concat_kernel;
  t[ASG_OP_GATHER].run = gather_kernel;
  t[ASG_OP_SCATTER_ADD].run = scatter_add_kernel;
  t[ASG_OP_ONE_HOT].run = one_hot_kernel;
}
