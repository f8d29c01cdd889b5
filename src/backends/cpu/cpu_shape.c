/* CPU shape kernels: broadcast_to, fill, assign, cache_write. */
#include <string.h>

#include "backends/cpu/cpu.h"
#include "runtime/layout.h"

/* broadcast_to: input strides per output dim (0 where broadcast). */
typedef struct bto_job {
  const asg_cpu_call *c;
  int64_t ist[ASG_MAX_DIMS];
  int64_t inner;
} bto_job;

/* Rows [lo, hi) of out [rows, inner] = x[broadcast index]; each row copied
 * or splatted. */
static void broadcast_to_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const bto_job *j = ctx;
  const asg_shape os = j->c->s->out.shape;
  const size_t es = asg_dtype_size(j->c->s->out.dtype);
  const int64_t inner = j->inner, istr = os.ndim ? j->ist[os.ndim - 1] : 0;
  for (int64_t r = lo; r < hi; r++) {
    int64_t off = 0, q = r;
    for (int d = os.ndim - 2; d >= 0; d--) {
      off += (q % os.dims[d]) * j->ist[d];
      q /= os.dims[d];
    }
    char *o = (char *)j->c->out + (size_t)(r * inner) * es;
    const char *x = (const char *)j->c->in[0] + (size_t)off * es;
    if (istr == 1) {
      memcpy(o, x, (size_t)inner * es);
    } else if (es == 4) { /* splat by width: a memcpy call per element was 1-2 ns each */
      uint32_t v;
      memcpy(&v, x, 4);
      for (int64_t i = 0; i < inner; i++)
        ((uint32_t *)o)[i] = v;
    } else if (es == 8) {
      uint64_t v;
      memcpy(&v, x, 8);
      for (int64_t i = 0; i < inner; i++)
        ((uint64_t *)o)[i] = v;
    } else {
      for (int64_t i = 0; i < inner; i++)
        memcpy(o + (size_t)i * es, x, es);
    }
  }
}

static asg_status broadcast_to_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  asg_shape os = s->out.shape, is = s->in[0].shape;
  bto_job j = {.c = c};
  int64_t st = 1;
  for (int d = os.ndim - 1; d >= 0; d--) {
    int id = is.ndim - (os.ndim - d);
    j.ist[d] = (id >= 0 && is.dims[id] != 1) ? st : 0;
    if (id >= 0) st *= is.dims[id];
  }
  j.inner = os.ndim ? os.dims[os.ndim - 1] : 1;
  int64_t rows = asg_shape_numel(os) / (j.inner ? j.inner : 1);
  asg_cpu_parallel_for(c->pool, asg_cpu_threads_for(c, rows * j.inner, rows), rows,
                       broadcast_to_range, &j);
  return ASG_OK;
}

static asg_status fill_kernel(const asg_cpu_call *c) {
  int64_t n = asg_shape_numel(c->s->out.shape);
  double v = c->s->attr.f[0];
  switch (c->s->out.dtype) {
  case ASG_F32:
    for (int64_t i = 0; i < n; i++)
      ((float *)c->out)[i] = (float)v;
    break;
  case ASG_F64:
    for (int64_t i = 0; i < n; i++)
      ((double *)c->out)[i] = v;
    break;
  case ASG_I32:
    for (int64_t i = 0; i < n; i++)
      ((int32_t *)c->out)[i] = (int32_t)v;
    break;
  case ASG_I64:
    for (int64_t i = 0; i < n; i++)
      ((int64_t *)c->out)[i] = (int64_t)v;
    break;
  default: return asg__error(ASG_ERR_DTYPE, "cpu: fill: dtype not supported");
  }
  return ASG_OK;
}

/* out aliases the variable; copy the new value in. */
static asg_status assign_kernel(const asg_cpu_call *c) {
  if (c->out != c->in[1])
    memmove(c->out, c->in[1],
            (size_t)asg_shape_numel(c->s->out.shape) * asg_dtype_size(c->s->out.dtype));
  return ASG_OK;
}

/* cache_write: cache [outer, Tmax, inner], value [outer, T, inner]; rows
 * [pos, pos + T) of out (the variable itself) get value's rows. Rows outside
 * [0, Tmax) are skipped (only reached unchecked: cpu_backend.c checks pos
 * first). */
static asg_status cache_write_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  const int a = (int)s->attr.i[0];
  const size_t es = asg_dtype_size(s->out.dtype);
  const int64_t tmax = s->out.shape.dims[a], t = s->in[1].shape.dims[a];
  const int64_t pos = s->in[2].dtype == ASG_I32 ? (int64_t) * (const int32_t *)c->in[2]
                                                : *(const int64_t *)c->in[2];
  int64_t outer, inner;
  asg__split_axis(s->out.shape, a, &outer, &inner);
  if (c->out != c->in[0]) /* the plan aliases them; a copy keeps other rows otherwise */
    memmove(c->out, c->in[0], (size_t)asg_shape_numel(s->out.shape) * es);
  if (pos >= tmax || pos <= -t) return ASG_OK; /* no row lands (no overflow of pos + j) */
  const int64_t lo = pos < 0 ? -pos : 0, hi = tmax - pos < t ? tmax - pos : t; /* rows j */
  const size_t rb = (size_t)inner * es;
  for (int64_t o = 0; o < outer; o++)
    memmove((char *)c->out + (size_t)(o * tmax + pos + lo) * rb,
            (const char *)c->in[1] + (size_t)(o * t + lo) * rb, (size_t)(hi - lo) * rb);
  return ASG_OK;
}

void asg_cpu_register_shape(asg_cpu_kernel *t) {
  t[ASG_OP_CACHE_WRITE].run = cache_write_kernel;
  t[ASG_OP_BROADCAST_TO].run = broadcast_to_kernel;
  t[ASG_OP_FILL].run = fill_kernel;
  t[ASG_OP_ASSIGN].run = assign_kernel;
}
