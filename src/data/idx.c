/* IDX reader (the MNIST file format): magic 0 0 type ndim, big-endian
 * dims, then the values. gzip is read through zlib when built with it. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#ifdef ASG_HAVE_ZLIB
#include <zlib.h>
#else
#include <stdio.h>
#endif

void asg_host_tensor_free(asg_host_tensor *t) {
  if (!t) return;
  free(t->data);
  t->data = NULL;
}

#ifdef ASG_HAVE_ZLIB
typedef gzFile stream;
static stream s_open(const char *p) { return gzopen(p, "rb"); }
static size_t s_read(stream s, void *b, size_t n) {
  size_t got = 0;
  while (got < n) { /* gzread takes unsigned counts */
    unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
    int r = gzread(s, (char *)b + got, chunk);
    if (r <= 0) break;
    got += (size_t)r;
  }
  return got;
}
static void s_close(stream s) { gzclose(s); }
#else
typedef FILE *stream;
static stream s_open(const char *p) { return fopen(p, "rb"); }
static size_t s_read(stream s, void *b, size_t n) { return fread(b, 1, n, s); }
static void s_close(stream s) { fclose(s); }
#endif

static double get_val(const unsigned char *p, int type) {
  switch (type) {
  case 0x08: return p[0];
  case 0x09: return (signed char)p[0];
  case 0x0B: return (int16_t)(p[0] << 8 | p[1]);
  case 0x0C:
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
  case 0x0D: {
    uint32_t u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    float f;
    memcpy(&f, &u, 4);
    return f;
  }
  case 0x0E: {
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
      u = u << 8 | p[i];
    double d;
    memcpy(&d, &u, 8);
    return d;
  }
  }
  return 0;
}

static int type_size(int t) {
  switch (t) {
  case 0x08:
  case 0x09: return 1;
  case 0x0B: return 2;
  case 0x0C:
  case 0x0D: return 4;
  case 0x0E: return 8;
  }
  return 0;
}

asg_status asg_idx_read(const char *path, asg_dtype dt, asg_host_tensor *out) {
  if (!path || !out) return asg__error(ASG_ERR_INVALID, "asg_idx_read: NULL argument");
  memset(out, 0, sizeof *out);
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "asg_idx_read: cannot convert to %s", asg_dtype_name(dt));
  stream s = s_open(path);
  if (!s) return asg__error(ASG_ERR_IO, "asg_idx_read: cannot open '%s'", path);
  unsigned char hdr[4], dimb[4 * ASG_MAX_DIMS];
  asg_status st = ASG_OK;
  unsigned char *raw = NULL;
  void *data = NULL;
  asg_shape shape = {0, {0}};
  int ts = 0;
  if (s_read(s, hdr, 4) != 4 || hdr[0] || hdr[1] || !(ts = type_size(hdr[2])) || hdr[3] == 0 ||
      hdr[3] > ASG_MAX_DIMS) {
    st = asg__error(ASG_ERR_FORMAT, "asg_idx_read: '%s' is not an IDX file (bad header)", path);
    goto done;
  }
  shape.ndim = hdr[3];
  if (s_read(s, dimb, 4 * (size_t)shape.ndim) != 4 * (size_t)shape.ndim) {
    st = asg__error(ASG_ERR_FORMAT, "asg_idx_read: '%s' is truncated in its header", path);
    goto done;
  }
  int64_t n = 1;
  for (int i = 0; i < shape.ndim; i++) {
    const unsigned char *b = dimb + 4 * i;
    shape.dims[i] =
        (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    if (shape.dims[i] <= 0 || shape.dims[i] > ((int64_t)1 << 40) / n) {
      st = asg__error(ASG_ERR_FORMAT, "asg_idx_read: '%s' has a bad dimension", path);
      goto done;
    }
    n *= shape.dims[i];
  }
  raw = malloc((size_t)n * (size_t)ts);
  data = malloc((size_t)n * asg_dtype_size(dt));
  if (!raw || !data) {
    st = asg__error(ASG_ERR_OOM, "asg_idx_read: '%s' needs %lld elements: out of memory", path,
                    (long long)n);
    goto done;
  }
  if (s_read(s, raw, (size_t)n * (size_t)ts) != (size_t)n * (size_t)ts) {
    st = asg__error(ASG_ERR_FORMAT, "asg_idx_read: '%s' is truncated (expected %lld values)", path,
                    (long long)n);
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    double v = get_val(raw + i * ts, hdr[2]);
    switch (dt) {
    case ASG_F32: ((float *)data)[i] = (float)v; break;
    case ASG_F64: ((double *)data)[i] = v; break;
    case ASG_I32: ((int32_t *)data)[i] = (int32_t)v; break;
    default: ((int64_t *)data)[i] = (int64_t)v; break;
    }
  }
  out->dtype = dt;
  out->shape = shape;
  out->data = data;
  data = NULL;
done:
  s_close(s);
  free(raw);
  free(data);
  return st;
}

asg_status asg_host_gather_rows(const asg_host_tensor *src, const int64_t *idx, int64_t n,
                                void *dst) {
  if (!src || !src->data || !idx || !dst || src->shape.ndim < 1)
    return asg__error(ASG_ERR_INVALID, "asg_host_gather_rows: bad argument");
  size_t row =
      asg_dtype_size(src->dtype) * (size_t)(asg_shape_numel(src->shape) / src->shape.dims[0]);
  for (int64_t i = 0; i < n; i++) {
    if (idx[i] < 0 || idx[i] >= src->shape.dims[0])
      return asg__error(ASG_ERR_INVALID, "asg_host_gather_rows: index %lld out of range [0,%lld)",
                        (long long)idx[i], (long long)src->shape.dims[0]);
    memcpy((char *)dst + (size_t)i * row, (const char *)src->data + (size_t)idx[i] * row, row);
  }
  return ASG_OK;
}
