/* IDX reader (the MNIST file format): magic 0 0 type ndim, big-endian
 * dims, then the values. gzip is read through zlib when built with it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/checks.h"
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

/* The file is opened by asg__open_regular (no FIFOs, no devices) and read
 * through zlib, which passes uncompressed files through unchanged. */
#ifdef ASG_HAVE_ZLIB
typedef gzFile stream;
static stream s_open(int fd) { return gzdopen(fd, "rb"); }
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
static stream s_open(int fd) { return fdopen(fd, "rb"); }
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

/* Reads exactly n bytes into a buffer that grows as data arrives, so a
 * header that promises more than the file holds costs no more memory than
 * the file (a gzip stream's length is only known by reading it). */
static asg_status read_data(stream s, const char *path, size_t n, unsigned char **out) {
  size_t cap = n < ((size_t)1 << 20) ? n : ((size_t)1 << 20), got = 0;
  unsigned char *buf = malloc(cap ? cap : 1);
  if (!buf) return asg__error(ASG_ERR_OOM, "asg_idx_read: '%s': out of memory", path);
  for (;;) {
    size_t r = s_read(s, buf + got, cap - got);
    got += r;
    if (got < cap || cap == n) break; /* end of the data, or all of it */
    size_t ncap = cap > n / 2 ? n : 2 * cap;
    unsigned char *nb = realloc(buf, ncap);
    if (!nb) {
      free(buf);
      return asg__error(ASG_ERR_OOM, "asg_idx_read: '%s': out of memory (%zu bytes)", path, ncap);
    }
    buf = nb;
    cap = ncap;
  }
  if (got < n) {
    free(buf);
    return asg__error(ASG_ERR_FORMAT,
                      "asg_idx_read: '%s' is truncated: its header promises %zu bytes of values, "
                      "the file holds %zu",
                      path, n, got);
  }
  *out = buf;
  return ASG_OK;
}

/* Float values into integer dtypes: truncated toward zero when in range;
 * NaN, infinities and values out of range are errors (the C conversion would
 * be undefined). */
static bool to_int(double v, asg_dtype dt, int64_t *out) {
  bool ok = dt == ASG_I32 ? v > -2147483649.0 && v < 2147483648.0
                          : v >= -9223372036854775808.0 && v < 9223372036854775808.0;
  if (ok) *out = (int64_t)v;
  return ok;
}

asg_status asg_idx_read(const char *path, asg_dtype dt, asg_host_tensor *out) {
  if (!path || !out) return asg__error(ASG_ERR_INVALID, "asg_idx_read: NULL argument");
  memset(out, 0, sizeof *out);
  if (dt != ASG_F32 && dt != ASG_F64 && dt != ASG_I32 && dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, "asg_idx_read: cannot convert to %s", asg_dtype_name(dt));
  asg_status st;
  int fd = asg__open_regular(path, "asg_idx_read", &st);
  if (fd < 0) return st;
  stream s = s_open(fd);
  if (!s) {
    close(fd);
    return asg__error(ASG_ERR_OOM, "asg_idx_read: cannot read '%s': out of memory", path);
  }
  unsigned char hdr[4], dimb[4 * ASG_MAX_DIMS];
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
  for (int i = 0; i < shape.ndim; i++) {
    const unsigned char *b = dimb + 4 * i;
    shape.dims[i] =
        (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    if (shape.dims[i] == 0) {
      st = asg__error(ASG_ERR_FORMAT, "asg_idx_read: '%s': dimension %d is 0", path, i);
      goto done;
    }
  }
  /* the one shape check, for the larger of the file's and the output's
   * element sizes */
  int64_t n;
  char why[300];
  size_t es = asg_dtype_size(dt) > (size_t)ts ? asg_dtype_size(dt) : (size_t)ts;
  if (!asg__shape_check(shape, es, &n, why, sizeof why)) {
    st = asg__error(ASG_ERR_FORMAT, "asg_idx_read: '%s': %s", path, why);
    goto done;
  }
  st = read_data(s, path, (size_t)n * (size_t)ts, &raw);
  if (st) goto done;
  data = malloc((size_t)n * asg_dtype_size(dt));
  if (!data) {
    st = asg__error(ASG_ERR_OOM, "asg_idx_read: '%s' needs %lld elements: out of memory", path,
                    (long long)n);
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    double v = get_val(raw + i * ts, hdr[2]);
    int64_t iv = 0;
    if ((dt == ASG_I32 || dt == ASG_I64) && !to_int(v, dt, &iv)) {
      st = asg__error(ASG_ERR_FORMAT,
                      "asg_idx_read: '%s': value %lld is %g, which %s cannot hold (NaN, "
                      "infinite or out of range)",
                      path, (long long)i, v, asg_dtype_name(dt));
      goto done;
    }
    switch (dt) {
    case ASG_F32: ((float *)data)[i] = (float)v; break;
    case ASG_F64: ((double *)data)[i] = v; break;
    case ASG_I32: ((int32_t *)data)[i] = (int32_t)iv; break;
    default: ((int64_t *)data)[i] = iv; break;
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
  if (!src || !src->data || (n > 0 && (!idx || !dst)) || n < 0 || src->shape.ndim < 1 ||
      asg_dtype_size(src->dtype) == 0)
    return asg__error(ASG_ERR_INVALID, "asg_host_gather_rows: bad argument");
  char why[300];
  int64_t numel;
  if (!asg__shape_check(src->shape, asg_dtype_size(src->dtype), &numel, why, sizeof why))
    return asg__error(ASG_ERR_SHAPE, "asg_host_gather_rows: %s", why);
  /* a row is the product of the trailing dims (no division: rows may be 0) */
  asg_shape rs = src->shape;
  rs.ndim--;
  for (int d = 0; d < rs.ndim; d++)
    rs.dims[d] = src->shape.dims[d + 1];
  size_t row = asg_dtype_size(src->dtype) * (size_t)asg_shape_numel(rs);
  for (int64_t i = 0; i < n; i++) {
    if (idx[i] < 0 || idx[i] >= src->shape.dims[0])
      return asg__error(ASG_ERR_INVALID, "asg_host_gather_rows: index %lld out of range [0,%lld)",
                        (long long)idx[i], (long long)src->shape.dims[0]);
    memcpy((char *)dst + (size_t)i * row, (const char *)src->data + (size_t)idx[i] * row, row);
  }
  return ASG_OK;
}
