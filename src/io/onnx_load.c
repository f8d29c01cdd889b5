/* ONNX files: reading and parsing (protobuf-c), limits, and the decoding of
 * tensors (raw, typed and external data). The file is untrusted: every
 * count, size and offset is checked before it is used. */
#ifdef ASG_HAVE_ONNX
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "io/onnx_internal.h"

/* Reads the whole regular file at path (at most max bytes). */
static asg_status read_file(const char *path, uint64_t max, const char *who, uint8_t **data,
                            size_t *len) {
  asg_status st;
  int fd = asg__open_regular(path, who, &st);
  if (fd < 0) return st;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    close(fd);
    return asg__error(ASG_ERR_IO, "%s: cannot stat '%s': %s", who, path, strerror(errno));
  }
  if ((uint64_t)sb.st_size > max) {
    close(fd);
    return asg__error(ASG_ERR_FORMAT, "%s: '%s' is %lld bytes, more than the limit of %llu", who,
                      path, (long long)sb.st_size, (unsigned long long)max);
  }
  size_t n = (size_t)sb.st_size;
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) {
    close(fd);
    return asg__error(ASG_ERR_OOM, "%s: no memory for %zu bytes of '%s'", who, n, path);
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      free(buf);
      close(fd);
      return asg__error(ASG_ERR_IO, "%s: cannot read '%s'", who, path);
    }
    got += (size_t)r;
  }
  close(fd);
  *data = buf;
  *len = n;
  return ASG_OK;
}

/* protobuf-c unpacks nested messages recursively, so a file of nested
 * graphs (attributes holding graphs holding nodes ...) or nested types could
 * exhaust the stack. This walk follows only the fields through which ONNX
 * messages nest and bounds the depth; everything else is parsed (and
 * checked) by protobuf-c. */
enum { K_MODEL, K_TRAIN, K_GRAPH, K_NODE, K_ATTR, K_FUNC, K_VINFO, K_TYPE, K_TYPE_INNER };
#define ONNX_MAX_DEPTH 48

static int child_kind(int kind, uint64_t field) {
  switch (kind) {
  case K_MODEL: return field == 7 ? K_GRAPH : field == 20 ? K_TRAIN : field == 25 ? K_FUNC : -1;
  case K_TRAIN: return field == 1 || field == 2 ? K_GRAPH : -1;
  case K_GRAPH: return field == 1 ? K_NODE : field >= 11 && field <= 13 ? K_VINFO : -1;
  case K_NODE: return field == 5 ? K_ATTR : -1;
  case K_ATTR:
    return field == 6 || field == 11 ? K_GRAPH : field == 14 || field == 15 ? K_TYPE : -1;
  case K_FUNC: return field == 7 ? K_NODE : field == 11 ? K_ATTR : field == 12 ? K_VINFO : -1;
  case K_VINFO: return field == 2 ? K_TYPE : -1;
  case K_TYPE: return field == 4 || field == 5 || field == 9 ? K_TYPE_INNER : -1;
  case K_TYPE_INNER: return field == 1 || field == 2 ? K_TYPE : -1; /* elem / value type */
  default: return -1;
  }
}

static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int sh = 0; sh < 64 && *p < end; sh += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << sh;
    if (!(b & 0x80)) return true;
  }
  return false;
}

/* false if the nesting is deeper than ONNX_MAX_DEPTH; malformed bytes are
 * left to protobuf-c (true). */
static bool depth_ok(const uint8_t *p, const uint8_t *end, int kind, int depth) {
  if (depth > ONNX_MAX_DEPTH) return false;
  while (p < end) {
    uint64_t tag, len;
    if (!varint(&p, end, &tag)) return true;
    switch (tag & 7) {
    case 0:
      if (!varint(&p, end, &len)) return true;
      break;
    case 1:
      if (end - p < 8) return true;
      p += 8;
      break;
    case 5:
      if (end - p < 4) return true;
      p += 4;
      break;
    case 2: {
      if (!varint(&p, end, &len) || len > (uint64_t)(end - p)) return true;
      int ck = child_kind(kind, tag >> 3);
      if (ck >= 0 && !depth_ok(p, p + len, ck, depth + 1)) return false;
      p += len;
      break;
    }
    default: return true; /* groups and bad wire types: protobuf-c refuses them */
    }
  }
  return true;
}

asg_status onnx__read_model(const char *path, uint64_t max_bytes, const char *who,
                            Onnx__ModelProto **out) {
  *out = NULL;
  uint8_t *buf = NULL;
  size_t len = 0;
  asg_status st = read_file(path, max_bytes, who, &buf, &len);
  if (st) return st;
  if (!depth_ok(buf, buf + len, K_MODEL, 0)) {
    free(buf);
    return asg__error(ASG_ERR_FORMAT, "%s: '%s' nests graphs or types more than %d deep", who, path,
                      ONNX_MAX_DEPTH);
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
  free(buf);
  if (!m)
    return asg__error(ASG_ERR_FORMAT, "%s: '%s' is not a valid ONNX model (protobuf parse failed)",
                      who, path);
  if (!m->graph) {
    onnx__model_proto__free_unpacked(m, NULL);
    return asg__error(ASG_ERR_FORMAT, "%s: '%s' has no graph", who, path);
  }
  *out = m;
  return ASG_OK;
}

int64_t onnx__default_opset(const Onnx__ModelProto *m) {
  for (size_t i = 0; i < m->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = m->opset_import[i];
    if (o && (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")))
      return o->has_version ? o->version : 0;
  }
  return 0;
}

bool onnx__dtype(int32_t t, asg_dtype *dt, bool *is_bool) {
  *is_bool = t == ONNX_BOOL;
  switch (t) {
  case ONNX_FLOAT: *dt = ASG_F32; return true;
  case ONNX_DOUBLE: *dt = ASG_F64; return true;
  case ONNX_INT32:
  case ONNX_INT16:
  case ONNX_INT8:
  case ONNX_UINT8:
  case ONNX_UINT16:
  case ONNX_BOOL: *dt = ASG_I32; return true;
  case ONNX_INT64:
  case ONNX_UINT32:
  case ONNX_UINT64: *dt = ASG_I64; return true; /* uint64: values below 2^63 only */
  case ONNX_FLOAT16:
  case ONNX_BFLOAT16:
  case ONNX_FLOAT8E4M3FN:
  case ONNX_FLOAT8E4M3FNUZ:
  case ONNX_FLOAT8E5M2:
  case ONNX_FLOAT8E5M2FNUZ:
  case ONNX_FLOAT8E8M0:
  case ONNX_FLOAT4E2M1: *dt = ASG_F32; return true; /* their values, held exactly in F32 */
  case ONNX_INT4:
  case ONNX_UINT4:
  case ONNX_INT2:
  case ONNX_UINT2: *dt = ASG_I32; return true;
  default: return false;
  }
}

const char *onnx__type_name(int32_t t) {
  static const char *names[] = {
      "undefined",      "float",    "uint8",        "int8",           "uint16",
      "int16",          "int32",    "int64",        "string",         "bool",
      "float16",        "double",   "uint32",       "uint64",         "complex64",
      "complex128",     "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
      "float8e5m2fnuz", "uint4",    "int4",         "float4e2m1",     "float8e8m0",
      "uint2",          "int2"};
  if (t >= 0 && t < (int32_t)(sizeof names / sizeof names[0])) return names[t];
  return "an unknown type";
}

/* Bytes of one element in raw_data, 0 for types without a fixed size. */
static size_t raw_size(int32_t t) {
  switch (t) {
  case ONNX_FLOAT:
  case ONNX_INT32:
  case ONNX_UINT32: return 4;
  case ONNX_DOUBLE:
  case ONNX_INT64:
  case ONNX_UINT64: return 8;
  case ONNX_INT16:
  case ONNX_UINT16:
  case ONNX_FLOAT16:
  case ONNX_BFLOAT16: return 2;
  case ONNX_INT8:
  case ONNX_UINT8:
  case ONNX_BOOL:
  case ONNX_FLOAT8E4M3FN:
  case ONNX_FLOAT8E4M3FNUZ:
  case ONNX_FLOAT8E5M2:
  case ONNX_FLOAT8E5M2FNUZ:
  case ONNX_FLOAT8E8M0: return 1; /* the packed 4- and 2-bit types are not read */
  default: return 0;
  }
}

/* The value of an 8-bit float of ONNX type t (bits b): E4M3FN has NaN at
 * S.1111.111 and no infinities, the FNUZ types NaN at 0x80 and no -0,
 * E5M2 is IEEE-like. */
static double float8_value(int32_t t, unsigned b) {
  bool e5 = t == ONNX_FLOAT8E5M2 || t == ONNX_FLOAT8E5M2FNUZ;
  bool uz = t == ONNX_FLOAT8E4M3FNUZ || t == ONNX_FLOAT8E5M2FNUZ;
  int mb = e5 ? 2 : 3, bias = (e5 ? 15 : 7) + (uz ? 1 : 0);
  unsigned e = (b >> mb) & (e5 ? 31u : 15u), m = b & ((1u << mb) - 1);
  double sign = (b & 0x80) ? -1 : 1;
  if (uz && b == 0x80) return NAN;
  if (t == ONNX_FLOAT8E4M3FN && (b & 0x7f) == 0x7f) return NAN;
  if (t == ONNX_FLOAT8E5M2 && e == 31) return m ? NAN : sign * INFINITY;
  if (!e) return sign * ldexp(m, 1 - bias - mb);
  return sign * ldexp((double)((1u << mb) | m), (int)e - bias - mb);
}

/* Stores the element at p (little-endian bytes of ONNX type t) as element i
 * of dst (of dt). */
static void put_raw(void *dst, asg_dtype dt, int64_t i, const uint8_t *p, int32_t t) {
  int64_t v = 0;
  double d = 0;
  bool is_f = false;
  switch (t) {
  case ONNX_FLOAT: {
    float f;
    memcpy(&f, p, 4);
    d = f, is_f = true;
    break;
  }
  case ONNX_DOUBLE: memcpy(&d, p, 8), is_f = true; break;
  case ONNX_INT32: {
    int32_t x;
    memcpy(&x, p, 4);
    v = x;
    break;
  }
  case ONNX_UINT32: {
    uint32_t x;
    memcpy(&x, p, 4);
    v = x;
    break;
  }
  case ONNX_INT64:
  case ONNX_UINT64: memcpy(&v, p, 8); break;
  case ONNX_INT16: {
    int16_t x;
    memcpy(&x, p, 2);
    v = x;
    break;
  }
  case ONNX_UINT16: {
    uint16_t x;
    memcpy(&x, p, 2);
    v = x;
    break;
  }
  case ONNX_FLOAT16:
  case ONNX_BFLOAT16: {
    uint16_t h;
    memcpy(&h, p, 2);
    d = t == ONNX_FLOAT16 ? asg_f16_to_f32(h) : asg_bf16_to_f32(h), is_f = true;
    break;
  }
  case ONNX_FLOAT8E4M3FN:
  case ONNX_FLOAT8E4M3FNUZ:
  case ONNX_FLOAT8E5M2:
  case ONNX_FLOAT8E5M2FNUZ: d = float8_value(t, p[0]), is_f = true; break;
  case ONNX_FLOAT8E8M0: d = p[0] == 0xff ? NAN : ldexp(1, p[0] - 127), is_f = true; break;
  case ONNX_INT8: v = (int8_t)p[0]; break;
  case ONNX_UINT8: v = p[0]; break;
  case ONNX_BOOL: v = p[0] != 0; break;
  default: break;
  }
  switch (dt) {
  case ASG_F32: ((float *)dst)[i] = (float)(is_f ? d : (double)v); break;
  case ASG_F64: ((double *)dst)[i] = is_f ? d : (double)v; break;
  case ASG_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
  case ASG_I64: ((int64_t *)dst)[i] = v; break;
  default: break;
  }
}

/* A location inside dir: relative, no "..", no escape through links. */
static asg_status external_path(const char *dir, const char *loc, const char *what, char **out) {
  if (!loc || !loc[0] || loc[0] == '/' || strlen(loc) > ONNX_MAX_NAME)
    return asg__error(ASG_ERR_FORMAT,
                      "onnx import: %s: external data location '%s' is not a "
                      "relative path",
                      what, loc ? loc : "");
  for (const char *s = loc; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 2 && s[0] == '.' && s[1] == '.')
      return asg__error(ASG_ERR_FORMAT,
                        "onnx import: %s: external data location '%s' leaves "
                        "the model's folder",
                        what, loc);
    s += n + (e ? 1 : 0);
  }
  size_t n = strlen(dir) + strlen(loc) + 2;
  char *full = malloc(n);
  if (!full) return asg__error(ASG_ERR_OOM, "onnx import: no memory");
  snprintf(full, n, "%s/%s", dir, loc);
  char *rd = realpath(dir, NULL), *rf = realpath(full, NULL);
  bool inside = rd && rf && !strncmp(rf, rd, strlen(rd)) && rf[strlen(rd)] == '/';
  free(rd);
  free(rf);
  if (!inside) {
    free(full);
    return asg__error(ASG_ERR_FORMAT,
                      "onnx import: %s: external data '%s' is missing or outside "
                      "the model's folder '%s'",
                      what, loc, dir);
  }
  *out = full;
  return ASG_OK;
}

static asg_status read_external(onnx_ctx *c, const Onnx__TensorProto *tp, const char *what,
                                size_t want, uint8_t **data) {
  const char *loc = NULL;
  int64_t off = 0, len = -1;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[i];
    if (!e || !e->key || !e->value) continue;
    char *end = NULL;
    if (!strcmp(e->key, "location"))
      loc = e->value;
    else if (!strcmp(e->key, "offset") || !strcmp(e->key, "length")) {
      errno = 0;
      long long v = strtoll(e->value, &end, 10);
      if (errno || end == e->value || *end || v < 0)
        return asg__error(ASG_ERR_FORMAT,
                          "onnx import: %s: external data %s '%s' is not a "
                          "byte count",
                          what, e->key, e->value);
      if (!strcmp(e->key, "offset"))
        off = v;
      else
        len = v;
    }
  }
  if (len >= 0 && (uint64_t)len != want)
    return asg__error(ASG_ERR_FORMAT,
                      "onnx import: %s: external data length %lld, the shape "
                      "needs %zu bytes",
                      what, (long long)len, want);
  char *full = NULL;
  asg_status st = external_path(c->dir, loc, what, &full);
  if (st) return st;
  int fd = asg__open_regular(full, "onnx import", &st);
  if (fd < 0) {
    free(full);
    return st;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < (uint64_t)off ||
      (uint64_t)sb.st_size - (uint64_t)off < want) {
    close(fd);
    st = asg__error(ASG_ERR_FORMAT,
                    "onnx import: %s: external file '%s' is too short for %zu "
                    "bytes at offset %lld",
                    what, full, want, (long long)off);
    free(full);
    return st;
  }
  uint8_t *buf = malloc(want ? want : 1);
  size_t got = 0;
  while (buf && got < want) {
    ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + (int64_t)got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (!buf || got < want) {
    free(buf);
    st =
        asg__error(buf ? ASG_ERR_IO : ASG_ERR_OOM, "onnx import: %s: cannot read '%s'", what, full);
    free(full);
    return st;
  }
  free(full);
  *data = buf;
  return ASG_OK;
}

asg_status onnx__tensor_host(onnx_ctx *c, const Onnx__TensorProto *tp, const char *what,
                             asg_host_tensor *out, bool *is_bool) {
  memset(out, 0, sizeof *out);
  int32_t t = tp->data_type;
  asg_dtype dt;
  if (!onnx__dtype(t, &dt, is_bool) || !raw_size(t))
    return asg__error(ASG_ERR_UNSUPPORTED, "onnx import: %s: element type %s is not supported",
                      what, onnx__type_name(t));
  if (tp->n_dims > ASG_MAX_DIMS)
    return asg__error(ASG_ERR_UNSUPPORTED, "onnx import: %s: rank %zu is more than %d", what,
                      tp->n_dims, ASG_MAX_DIMS);
  asg_shape s = {(int)tp->n_dims, {0}};
  for (size_t i = 0; i < tp->n_dims; i++)
    s.dims[i] = tp->dims[i];
  int64_t numel = asg_shape_numel(s);
  if (numel < 0)
    return asg__error(ASG_ERR_FORMAT, "onnx import: %s: bad shape (negative or too large dims)",
                      what);
  uint64_t bytes = (uint64_t)numel * asg_dtype_size(dt);
  uint64_t max = c->o.max_tensor_bytes;
  if (bytes > max || c->tensor_bytes + bytes > max)
    return asg__error(ASG_ERR_FORMAT,
                      "onnx import: %s: tensor data beyond the limit of %llu "
                      "bytes",
                      what, (unsigned long long)max);
  size_t rs = raw_size(t), want = (size_t)numel * rs;
  void *dst = malloc(bytes ? bytes : 1);
  if (!dst)
    return asg__error(ASG_ERR_OOM, "onnx import: %s: no memory for %llu bytes", what,
                      (unsigned long long)bytes);
  asg_status st = ASG_OK;
  uint8_t *ext = NULL;
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    st = read_external(c, tp, what, want, &ext);
    if (!st)
      for (int64_t i = 0; i < numel; i++)
        put_raw(dst, dt, i, ext + (size_t)i * rs, t);
    free(ext);
  } else if (tp->has_raw_data) {
    if (tp->raw_data.len != want)
      st = asg__error(ASG_ERR_FORMAT,
                      "onnx import: %s: raw_data has %zu bytes, the shape needs "
                      "%zu",
                      what, tp->raw_data.len, want);
    else
      for (int64_t i = 0; i < numel; i++)
        put_raw(dst, dt, i, tp->raw_data.data + (size_t)i * rs, t);
  } else {
    /* typed fields: the one that matches the element type */
    size_t have = t == ONNX_FLOAT                        ? tp->n_float_data
                  : t == ONNX_DOUBLE                     ? tp->n_double_data
                  : t == ONNX_INT64                      ? tp->n_int64_data
                  : t == ONNX_UINT32 || t == ONNX_UINT64 ? tp->n_uint64_data
                                                         : tp->n_int32_data;
    if (have != (size_t)numel)
      st = asg__error(ASG_ERR_FORMAT, "onnx import: %s: %zu values for a shape of %lld elements",
                      what, have, (long long)numel);
    for (int64_t i = 0; !st && i < numel; i++) {
      double d = 0;
      int64_t v = 0;
      bool is_f = t == ONNX_FLOAT || t == ONNX_DOUBLE;
      if (rs <= 2 && asg_dtype_is_float(dt)) { /* 16- and 8-bit floats: their bits in int32_data */
        uint8_t bits[2] = {(uint8_t)tp->int32_data[i], (uint8_t)(tp->int32_data[i] >> 8)};
        put_raw(dst, dt, i, bits, t);
        continue;
      }
      if (t == ONNX_FLOAT)
        d = tp->float_data[i];
      else if (t == ONNX_DOUBLE)
        d = tp->double_data[i];
      else if (t == ONNX_INT64)
        v = tp->int64_data[i];
      else if (t == ONNX_UINT32 || t == ONNX_UINT64)
        v = (int64_t)tp->uint64_data[i];
      else
        v = t == ONNX_BOOL ? tp->int32_data[i] != 0 : tp->int32_data[i];
      if (dt == ASG_F32)
        ((float *)dst)[i] = (float)(is_f ? d : (double)v);
      else if (dt == ASG_F64)
        ((double *)dst)[i] = is_f ? d : (double)v;
      else if (dt == ASG_I32)
        ((int32_t *)dst)[i] = (int32_t)v;
      else
        ((int64_t *)dst)[i] = v;
    }
  }
  for (int64_t i = 0; !st && t == ONNX_UINT64 && i < numel; i++)
    if (((const int64_t *)dst)[i] < 0) /* held as I64: only values below 2^63 */
      st = asg__error(ASG_ERR_UNSUPPORTED,
                      "onnx import: %s: uint64 value %llu at %lld is above 2^63-1 (ASG holds "
                      "uint64 as int64)",
                      what, (unsigned long long)((const int64_t *)dst)[i], (long long)i);
  if (st) {
    free(dst);
    return st;
  }
  c->tensor_bytes += bytes;
  out->dtype = dt;
  out->shape = s;
  out->data = dst;
  return ASG_OK;
}
#endif
