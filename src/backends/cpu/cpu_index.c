/* CPU kernels of the index family: permute, slice, slice_bwd, concat,
 * gather, scatter_add, one_hot. Data movement is dtype-generic (bytes of the
 * element size); only scatter_add and one_hot do arithmetic per dtype.
 * Every kernel writes all of its output (arena buffers are reused). */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "runtime/layout.h"

static inline int64_t idx_at(const void *p, asg_dtype dt, int64_t i) {
  return dt == ASG_I32 ? (int64_t)((const int32_t *)p)[i] : ((const int64_t *)p)[i];
}

static int threads_for(const asg_cpu_call *c, int64_t elems) {
  return elems >= ASG_CPU_PAR_MIN ? c->nthreads : 1;
}

/* n records of rb bytes: dst[i * ds] = src[i * ss] (strides in records).
 * Fixed-size memcpy compiles to plain moves. */
#define COPY_RECS(RB)                                                                              \
  for (int64_t i = 0; i < n; i++)                                                                  \
    memcpy(dst + i * ds * (RB), src + i * ss * (RB), (RB));
static void copy_recs(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t rb) {
  if (ds == 1 && ss == 1) {
    memcpy(dst, src, (size_t)n * rb);
    return;
  }
  switch (rb) {
  case 1: COPY_RECS(1) break;
  case 2: COPY_RECS(2) break;
  case 4: COPY_RECS(4) break;
  case 8: COPY_RECS(8) break;
  case 16: COPY_RECS(16) break;
  default:
    for (int64_t i = 0; i < n; i++)
      memcpy(dst + (size_t)(i * ds) * rb, src + (size_t)(i * ss) * rb, rb);
  }
}
#undef COPY_RECS

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
#define BAND(ES)                                                                                   \
  for (int64_t j = 0; j < nj; j++) {                                                               \
    char *dr = dst + (size_t)(j * osq) * (ES);                                                     \
    const char *sr = src + (size_t)j * (ES);                                                       \
    for (int64_t i = i0; i < i1; i++)                                                              \
      memcpy(dr + (size_t)i * (ES), sr + (size_t)(i * isp) * (ES), (ES));                          \
  }
static void band(char *dst, const char *src, int64_t i0, int64_t i1, int64_t nj, int64_t isp,
                 int64_t osq, size_t es) {
  switch (es) {
  case 1: BAND(1) break;
  case 2: BAND(2) break;
  case 4: BAND(4) break;
  case 8: BAND(8) break;
  default: BAND(es)
  }
}
#undef BAND

#define PERM_BAND 8

/* x [d0..dn] -> y [d_perm0..d_permn] */
static asg_status permute_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  size_t es = asg_dtype_size(s->out.dtype);
  int64_t total = asg_shape_numel(s->out.shape);
  const char *x = c->in[0];
  char *y = c->out;
  asg_permute_plan p;
  asg__permute_plan(&p, s->in[0].shape, s->attr.i);
  if (p.nd <= 1) { /* only size-1 axes moved */
    memcpy(y, x, (size_t)total * es);
    return ASG_OK;
  }
  int nd = p.nd;
  const int *inv = p.inv;
  const int64_t *ist = p.ist, *ost = p.ost, *od = p.od, *oist = p.oist;
  int nt = threads_for(c, total);

  if (p.pm[nd - 1] == nd - 1) {
    /* contiguous rows of `inner` elements; an odometer walks the output rows */
    int64_t inner = od[nd - 1], rows = total / inner;
    size_t rb = (size_t)inner * es;
    int64_t nch = nt > 1 ? (rows < 8 * nt ? rows : 8 * nt) : 1;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t ch = 0; ch < nch; ch++) {
      int64_t r0 = ch * rows / nch, r1 = (ch + 1) * rows / nch, q = r0, off = 0;
      int64_t co[ASG_MAX_DIMS];
      for (int j = nd - 2; j >= 0; j--) {
        co[j] = q % od[j];
        q /= od[j];
        off += co[j] * oist[j];
      }
      for (int64_t r = r0; r < r1; r++) {
        memcpy(y + (size_t)r * rb, x + (size_t)off * es, rb);
        for (int j = nd - 2; j >= 0; j--) {
          off += oist[j];
          if (++co[j] < od[j]) break;
          off -= co[j] * oist[j];
          co[j] = 0;
        }
      }
    }
    return ASG_OK;
  }

  /* rows: input dim P (goes last in the output), cols: input dim L (last) */
  int P = p.pm[nd - 1], L = nd - 1;
  int64_t NI = p.dims[P], NJ = p.dims[L], isp = ist[P], osq = ost[inv[L]];
  int nb = 0;
  int64_t bd[ASG_MAX_DIMS], bis[ASG_MAX_DIMS], bos[ASG_MAX_DIMS], nbatch = 1;
  for (int d = 0; d < nd; d++) {
    if (d == P || d == L) continue;
    bd[nb] = p.dims[d], bis[nb] = ist[d], bos[nb] = ost[inv[d]];
    nbatch *= p.dims[d];
    nb++;
  }
  int64_t nband = (NI + PERM_BAND - 1) / PERM_BAND, units = nbatch * nband;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t u = 0; u < units; u++) {
    int64_t b = u / nband, i0 = (u % nband) * PERM_BAND, io = 0, oo = 0;
    for (int k = nb - 1; k >= 0; k--) {
      int64_t co = b % bd[k];
      b /= bd[k];
      io += co * bis[k];
      oo += co * bos[k];
    }
    band(y + (size_t)oo * es, x + (size_t)io * es, i0, i0 + PERM_BAND < NI ? i0 + PERM_BAND : NI,
         NJ, isp, osq, es);
  }
  return ASG_OK;
}

/* ---- slice / slice_bwd ----
 * x [outer, n, inner] -> y [outer, count, inner], y[o, j] = x[o, start + j*step].
 * Work units are (outer row, chunk of the sliced axis). */
static int64_t chunks_for(int nt, int64_t outer, int64_t len) {
  if (nt <= 1 || outer >= nt) return 1;
  return len < 4 * nt ? len : 4 * nt;
}

static asg_status slice_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  int64_t start = s->attr.i[1], step = s->attr.i[2], count = s->attr.i[3], outer, inner;
  int64_t n = s->in[0].shape.dims[a];
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  size_t rb = (size_t)inner * asg_dtype_size(s->out.dtype);
  const char *x = c->in[0];
  char *y = c->out;
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  int64_t nch = chunks_for(nt, outer, count), units = outer * nch;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t u = 0; u < units; u++) {
    int64_t o = u / nch, ch = u % nch;
    int64_t j0 = ch * count / nch, j1 = (ch + 1) * count / nch;
    copy_recs(y + (size_t)(o * count + j0) * rb, 1, x + (size_t)(o * n + start + j0 * step) * rb,
              step, j1 - j0, rb);
  }
  return ASG_OK;
}

/* dy [outer, count, inner] -> dx [outer, n, inner]: zeros, dy at the slice. */
static asg_status slice_bwd_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  int64_t start = s->attr.i[1], step = s->attr.i[2], count = s->attr.i[3], outer, inner;
  int64_t n = s->out.shape.dims[a];
  asg__split_axis(s->out.shape, a, &outer, &inner);
  size_t rb = (size_t)inner * asg_dtype_size(s->out.dtype);
  const char *dy = c->in[0];
  char *dx = c->out;
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  int64_t nch = chunks_for(nt, outer, n), units = outer * nch;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t u = 0; u < units; u++) {
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
  return ASG_OK;
}

/* ---- concat ----
 * xs[k] [outer, n_k, inner] -> y [outer, sum n_k, inner]; units (outer, k). */
static asg_status concat_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0], nin = s->n_in;
  int64_t outer, inner;
  asg__split_axis(s->out.shape, a, &outer, &inner);
  size_t es = asg_dtype_size(s->out.dtype), orb = (size_t)(s->out.shape.dims[a] * inner) * es;
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
  int64_t units = outer * nin;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t u = 0; u < units; u++) {
    int64_t o = u / nin;
    int k = (int)(u % nin);
    int64_t before = 0; /* offset of input k along the axis */
    for (int t = 0; t < k; t++)
      before += s->in[t].shape.dims[a];
    size_t rb = (size_t)(s->in[k].shape.dims[a] * inner) * es;
    memcpy((char *)c->out + (size_t)o * orb + (size_t)(before * inner) * es,
           (const char *)c->in[k] + (size_t)o * rb, rb);
  }
  return ASG_OK;
}

/* ---- gather ----
 * x [outer, n, inner], idx [m] -> y [outer, m, inner]; y[o, j] = x[o, idx[j]]
 * or zeros when idx[j] is outside [0, n). */
static asg_status gather_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->in[0].shape.dims[a], m = asg_shape_numel(s->in[1].shape);
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  size_t rb = (size_t)inner * asg_dtype_size(s->out.dtype);
  const char *x = c->in[0];
  const void *idx = c->in[1];
  asg_dtype it = s->in[1].dtype;
  char *y = c->out;
  int64_t rows = outer * m;
  int nt = threads_for(c, asg_shape_numel(s->out.shape));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    int64_t o = r / m, i = idx_at(idx, it, r % m);
    if (i >= 0 && i < n)
      memcpy(y + (size_t)r * rb, x + (size_t)(o * n + i) * rb, rb);
    else
      memset(y + (size_t)r * rb, 0, rb);
  }
  return ASG_OK;
}

/* ---- scatter_add ----
 * x [outer, n, inner], idx [m], src [outer, m, inner] -> y = x, then
 * y[o, idx[j]] += src[o, j] for j = 0..m-1 in order. Deterministic: a work
 * unit owns a range of target rows of one outer slice and scans all of idx,
 * so each element's additions happen in j order whatever the thread count. */
#define SCATTER_ROWS(T)                                                                            \
  {                                                                                                \
    for (int64_t j = 0; j < m; j++) {                                                              \
      int64_t i = idx_at(idx, it, j);                                                              \
      if (i < i0 || i >= i1) continue;                                                             \
      T *dr = (T *)c->out + (o * n + i) * inner;                                                   \
      const T *sr = (const T *)c->in[2] + (o * m + j) * inner;                                     \
      for (int64_t k = 0; k < inner; k++)                                                          \
        dr[k] += sr[k];                                                                            \
    }                                                                                              \
  }
static asg_status scatter_add_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->in[0].shape.dims[a], m = asg_shape_numel(s->in[1].shape);
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  asg_dtype dt = s->out.dtype, it = s->in[1].dtype;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  size_t rb = (size_t)inner * asg_dtype_size(dt);
  const void *idx = c->in[1];
  int nt = threads_for(c, asg_shape_numel(s->out.shape) + asg_shape_numel(s->in[2].shape));
  int64_t nch = chunks_for(nt, outer, n), units = outer * nch;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t u = 0; u < units; u++) {
    int64_t o = u / nch, ch = u % nch;
    int64_t i0 = ch * n / nch, i1 = (ch + 1) * n / nch;
    memcpy((char *)c->out + (size_t)(o * n + i0) * rb,
           (const char *)c->in[0] + (size_t)(o * n + i0) * rb, (size_t)(i1 - i0) * rb);
    switch (dt) {
    case ASG_F32: SCATTER_ROWS(float) break;
    case ASG_F64: SCATTER_ROWS(double) break;
    case ASG_I32: SCATTER_ROWS(int32_t) break;
    default: SCATTER_ROWS(int64_t) break;
    }
  }
  return ASG_OK;
}
#undef SCATTER_ROWS

/* ---- one_hot ----
 * idx [m] -> y [m, depth]: 1 at idx, 0 elsewhere (all 0 when out of range). */
static asg_status one_hot_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  int64_t depth = s->attr.i[0], m = asg_shape_numel(s->in[0].shape);
  asg_dtype dt = s->out.dtype, it = s->in[0].dtype;
  size_t es = asg_dtype_size(dt);
  const void *idx = c->in[0];
  char *y = c->out;
  float f1 = 1.0f;
  double d1 = 1.0;
  int32_t i1 = 1;
  int64_t l1 = 1;
  const void *one = dt == ASG_F32   ? (const void *)&f1
                    : dt == ASG_F64 ? (const void *)&d1
                    : dt == ASG_I32 ? (const void *)&i1
                                    : (const void *)&l1;
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  memset(y, 0, (size_t)(m * depth) * es); /* all-zero bits are 0 in every dtype here */
  int nt = threads_for(c, m * depth);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < m; r++) {
    int64_t i = idx_at(idx, it, r);
    if (i >= 0 && i < depth) memcpy(y + (size_t)(r * depth + i) * es, one, es);
  }
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
