/* NumPy .npy files: the header is a Python dict literal,
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * after "\x93NUMPY", a version and a little-endian header length; the
 * array's bytes follow in C order. Parsed as untrusted input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "io/npy_internal.h"

#define FMT(...) asg__error(ASG_ERR_FORMAT, __VA_ARGS__)

/* ---- the header dict ---- */

typedef struct cursor {
  const char *s, *end;
} cursor;

static void skip_ws(cursor *c) {
  while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
    c->s++;
}
static bool eat(cursor *c, char ch) {
  skip_ws(c);
  if (c->s < c->end && *c->s == ch) return c->s++, true;
  return false;
}
/* A quoted string without escapes into out (capacity cap). */
static bool read_str(cursor *c, char *out, size_t cap) {
  skip_ws(c);
  if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return false;
  char q = *c->s++;
  size_t n = 0;
  while (c->s < c->end && *c->s != q) {
    if (*c->s == '\\' || n + 1 >= cap) return false;
    out[n++] = *c->s++;
  }
  if (c->s >= c->end) return false;
  c->s++;
  out[n] = '\0';
  return true;
}
static bool read_word(cursor *c, const char *w) {
  skip_ws(c);
  size_t n = strlen(w);
  if ((size_t)(c->end - c->s) < n || memcmp(c->s, w, n) != 0) return false;
  c->s += n;
  return true;
}
/* (d0, d1, ...) with an optional trailing comma; Python 2's "3L" taken. */
static bool read_shape(cursor *c, asg_shape *sh, char *why, size_t wl) {
  if (!eat(c, '(')) return snprintf(why, wl, "'shape' is not a tuple"), false;
  sh->ndim = 0;
  for (;;) {
    if (eat(c, ')')) return true;
    skip_ws(c);
    if (c->s >= c->end || *c->s < '0' || *c->s > '9')
      return snprintf(why, wl, "'shape' holds something other than a non-negative integer"), false;
    int64_t v = 0;
    while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
      if (v > ((int64_t)1 << 50)) return snprintf(why, wl, "a dimension is too large"), false;
      v = v * 10 + (*c->s++ - '0');
    }
    if (c->s < c->end && *c->s == 'L') c->s++;
    if (sh->ndim == ASG_MAX_DIMS)
      return snprintf(why, wl, "'shape' has more than %d dimensions", ASG_MAX_DIMS), false;
    sh->dims[sh->ndim++] = v;
    if (eat(c, ',')) continue;
    if (eat(c, ')')) return true;
    return snprintf(why, wl, "'shape' is not a tuple of integers"), false;
  }
}

static asg_status parse_descr(const char *d, asg__npy_info *info, const char *who,
                              const char *name) {
  char order = d[0];
  if (order != '<' && order != '>' && order != '|' && order != '=')
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: '%s': dtype '%s' is not supported", who, name, d);
  char kind = d[1];
  int size = 0;
  if (d[1] && d[2] >= '1' && d[2] <= '9' && !d[3]) size = d[2] - '0';
  static const struct {
    char kind;
    int size;
    asg_dtype dt;
  } tab[] = {{'f', 4, ASG_F32}, {'f', 8, ASG_F64}, {'f', 2, ASG_F32}, {'i', 4, ASG_I32},
             {'i', 8, ASG_I64}, {'i', 1, ASG_I32}, {'i', 2, ASG_I32}, {'u', 1, ASG_I32},
             {'u', 2, ASG_I32}, {'u', 4, ASG_I64}, {'u', 8, ASG_I64}, {'b', 1, ASG_I32}};
  for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++)
    if (tab[k].kind == kind && tab[k].size == size) {
      info->kind = kind;
      info->size = size;
      info->dt = tab[k].dt;
      info->swap = order == '>' && size > 1;
      return ASG_OK;
    }
  return asg__error(ASG_ERR_UNSUPPORTED,
                    "%s: '%s': dtype '%s' is not supported (f2, f4, f8, i1, i2, i4, i8, u1, u2, "
                    "u4, u8 and b1 are)",
                    who, name, d);
}

asg_status asg__npy_parse(const unsigned char *buf, size_t len, const char *who, const char *name,
                          asg__npy_info *info) {
  memset(info, 0, sizeof *info);
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    return FMT("%s: '%s' is not a .npy file (no \\x93NUMPY magic)", who, name);
  int major = buf[6];
  size_t hlen, pre;
  if (major == 1) {
    hlen = (size_t)asg__get_le(buf + 8, 2);
    pre = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) return FMT("%s: '%s' is truncated in its header", who, name);
    hlen = (size_t)asg__get_le(buf + 8, 4);
    pre = 12;
  } else {
    return asg__error(ASG_ERR_UNSUPPORTED, "%s: '%s': .npy format version %d.%d is not supported",
                      who, name, major, buf[7]);
  }
  if (hlen > ASG__NPY_MAX_HEADER)
    return FMT("%s: '%s': header of %zu bytes (at most %d)", who, name, hlen, ASG__NPY_MAX_HEADER);
  if (len - pre < hlen) return FMT("%s: '%s' is truncated in its header", who, name);
  cursor c = {(const char *)buf + pre, (const char *)buf + pre + hlen};
  char why[160] = "", key[32], descr[32] = "";
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  if (!eat(&c, '{')) {
    snprintf(why, sizeof why, "it does not start with '{'");
    goto bad;
  }
  while (!eat(&c, '}')) {
    if (!read_str(&c, key, sizeof key) || !eat(&c, ':')) {
      snprintf(why, sizeof why, "expected a quoted key and ':'");
      goto bad;
    }
    if (!strcmp(key, "descr") && !have_descr) {
      skip_ws(&c);
      if (c.s < c.end && *c.s == '[')
        return asg__error(ASG_ERR_UNSUPPORTED, "%s: '%s': structured dtypes are not supported", who,
                          name);
      if (!read_str(&c, descr, sizeof descr)) {
        snprintf(why, sizeof why, "'descr' is not a short string");
        goto bad;
      }
      have_descr = true;
    } else if (!strcmp(key, "fortran_order") && !have_order) {
      if (read_word(&c, "True"))
        fortran = true;
      else if (!read_word(&c, "False")) {
        snprintf(why, sizeof why, "'fortran_order' is neither True nor False");
        goto bad;
      }
      have_order = true;
    } else if (!strcmp(key, "shape") && !have_shape) {
      if (!read_shape(&c, &info->shape, why, sizeof why)) goto bad;
      have_shape = true;
    } else {
      snprintf(why, sizeof why, "unexpected or repeated key '%s'", key);
      goto bad;
    }
    if (!eat(&c, ',')) {
      if (eat(&c, '}')) break;
      snprintf(why, sizeof why, "expected ',' or '}'");
      goto bad;
    }
  }
  skip_ws(&c);
  if (c.s != c.end) {
    snprintf(why, sizeof why, "bytes after the closing '}'");
    goto bad;
  }
  if (!have_descr || !have_order || !have_shape) {
    snprintf(why, sizeof why, "it lacks '%s'",
             !have_descr   ? "descr"
             : !have_order ? "fortran_order"
                           : "shape");
    goto bad;
  }
  asg_status st = parse_descr(descr, info, who, name);
  if (st) return st;
  if (fortran && info->shape.ndim > 1) {
    int64_t big = 0; /* a Fortran-order array with one non-1 dim is laid out as C order */
    for (int i = 0; i < info->shape.ndim; i++)
      big += info->shape.dims[i] > 1;
    if (big > 1)
      return asg__error(ASG_ERR_UNSUPPORTED,
                        "%s: '%s' is in Fortran order; save it in C order "
                        "(np.save(f, np.ascontiguousarray(a)))",
                        who, name);
  }
  size_t es =
      asg_dtype_size(info->dt) > (size_t)info->size ? asg_dtype_size(info->dt) : (size_t)info->size;
  char sw[200];
  if (!asg__shape_check(info->shape, es, &info->numel, sw, sizeof sw))
    return FMT("%s: '%s': %s", who, name, sw);
  info->data_off = pre + hlen;
  info->nbytes = (size_t)info->numel * (size_t)info->size;
  return ASG_OK;
bad:
  return FMT("%s: '%s': malformed .npy header: %s", who, name, why);
}

asg_status asg__npy_convert(const asg__npy_info *in, const unsigned char *src, void *dst,
                            const char *who, const char *name) {
  size_t n = (size_t)in->numel, es = (size_t)in->size;
  if (!in->swap && (size_t)in->size == asg_dtype_size(in->dt) && in->kind != 'u') {
    memcpy(dst, src, n * es); /* f4, f8, i4, i8 as they are */
    return ASG_OK;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char b[8];
    for (size_t k = 0; k < es; k++) /* to little-endian */
      b[k] = src[i * es + (in->swap ? es - 1 - k : k)];
    uint64_t u = asg__get_le(b, (int)es);
    switch (in->dt) {
    case ASG_F32: {
      float f;
      if (es == 2)
        f = asg_f16_to_f32((uint16_t)u);
      else
        memcpy(&f, b, 4);
      ((float *)dst)[i] = f;
      break;
    }
    case ASG_F64: memcpy((double *)dst + i, b, 8); break;
    case ASG_I32: {
      int32_t v;
      if (in->kind == 'u' || in->kind == 'b')
        v = (int32_t)u; /* u1, u2, b1 fit */
      else if (es == 1)
        v = (int8_t)u;
      else if (es == 2)
        v = (int16_t)u;
      else
        memcpy(&v, b, 4);
      ((int32_t *)dst)[i] = v;
      break;
    }
    default: { /* I64 from i8, u4 or u8 */
      if (in->kind == 'u' && es == 8 && u > (uint64_t)INT64_MAX)
        return FMT("%s: '%s': element %zu is %llu, which int64 cannot hold", who, name, i,
                   (unsigned long long)u);
      int64_t v;
      if (in->kind == 'u')
        v = (int64_t)u;
      else
        memcpy(&v, b, 8);
      ((int64_t *)dst)[i] = v;
      break;
    }
    }
  }
  return ASG_OK;
}

static const char *descr_of(asg_dtype dt) {
  switch (dt) {
  case ASG_F32: return "<f4";
  case ASG_F64: return "<f8";
  case ASG_I32: return "<i4";
  case ASG_I64: return "<i8";
  case ASG_F16: return "<f2";
  default: return NULL;
  }
}

asg_status asg__npy_check_write(const asg_host_tensor *t, const char *who, const char *name,
                                size_t *nbytes) {
  if (!t) return asg__error(ASG_ERR_INVALID, "%s: '%s': NULL tensor", who, name);
  if ((unsigned)t->dtype >= ASG_DTYPE_COUNT || !descr_of(t->dtype))
    return asg__error(ASG_ERR_DTYPE, "%s: '%s': %s has no NumPy dtype (f32, f64, i32, i64, f16 do)",
                      who, name,
                      (unsigned)t->dtype < ASG_DTYPE_COUNT ? asg_dtype_name(t->dtype) : "?");
  int64_t n;
  char why[200];
  if (!asg__shape_check(t->shape, asg_dtype_size(t->dtype), &n, why, sizeof why))
    return asg__error(ASG_ERR_SHAPE, "%s: '%s': %s", who, name, why);
  if (n > 0 && !t->data) return asg__error(ASG_ERR_INVALID, "%s: '%s': NULL data", who, name);
  *nbytes = (size_t)n * asg_dtype_size(t->dtype);
  return ASG_OK;
}

size_t asg__npy_header(const asg_host_tensor *t, char *buf) {
  char dict[200];
  int m = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   descr_of(t->dtype));
  for (int i = 0; i < t->shape.ndim; i++)
    m += snprintf(dict + m, sizeof dict - (size_t)m, i ? ", %lld" : "%lld",
                  (long long)t->shape.dims[i]);
  m += snprintf(dict + m, sizeof dict - (size_t)m, "%s), }", t->shape.ndim == 1 ? "," : "");
  /* 10 bytes of preamble + dict + spaces + '\n': a multiple of 64 */
  size_t total = ((size_t)10 + (size_t)m + 1 + 63) / 64 * 64, hlen = total - 10;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  asg__put_le((unsigned char *)buf + 8, hlen, 2);
  memcpy(buf + 10, dict, (size_t)m);
  memset(buf + 10 + m, ' ', hlen - (size_t)m - 1);
  buf[total - 1] = '\n';
  return total;
}

uint32_t asg__crc32(uint32_t crc, const void *buf, size_t n) {
  uint32_t table[256]; /* built per call (cheap next to any member): no shared state */
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++)
      c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  const unsigned char *p = buf;
  crc = ~crc;
  for (size_t i = 0; i < n; i++)
    crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

/* ---- files ---- */

static asg_status read_full(int fd, void *buf, size_t n, size_t *got, const char *path) {
  *got = 0;
  while (*got < n) {
    ssize_t r =
        read(fd, (char *)buf + *got, n - *got > ((size_t)1 << 30) ? (size_t)1 << 30 : n - *got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0)
      return asg__error(ASG_ERR_IO, "asg_npy_read: cannot read '%s': %s", path, strerror(errno));
    if (r == 0) break;
    *got += (size_t)r;
  }
  return ASG_OK;
}

asg_status asg_npy_read(const char *path, asg_host_tensor *out) {
  static const char *who = "asg_npy_read";
  if (!path || !out) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", who);
  memset(out, 0, sizeof *out);
  asg_status st;
  int fd = asg__open_regular(path, who, &st);
  if (fd < 0) return st;
  unsigned char *hdr = NULL, *raw = NULL;
  void *data = NULL;
  struct stat sb;
  size_t got, fsize;
  unsigned char pre[12];
  asg__npy_info info;
  bool direct = false;
  if (fstat(fd, &sb) != 0) {
    st = asg__error(ASG_ERR_IO, "%s: cannot stat '%s': %s", who, path, strerror(errno));
    goto done;
  }
  fsize = (size_t)sb.st_size;
  if ((st = read_full(fd, pre, sizeof pre, &got, path))) goto done;
  if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0 || pre[6] < 1 || pre[6] > 3) {
    st = asg__npy_parse(pre, got, who, path, &info); /* its message says what is wrong */
    goto done;
  }
  /* the header is read once its length is known and checked */
  size_t pl = pre[6] == 1 ? 10 : 12,
         hlen = got < pl ? 0 : (size_t)asg__get_le(pre + 8, (int)pl - 8);
  if (got < pl || hlen > ASG__NPY_MAX_HEADER || pl + hlen > fsize || pl + hlen < got) {
    st = hlen > ASG__NPY_MAX_HEADER
             ? FMT("%s: '%s': header of %zu bytes (at most %d)", who, path, hlen,
                   ASG__NPY_MAX_HEADER)
             : FMT("%s: '%s' is truncated or malformed in its header", who, path);
    goto done;
  }
  size_t hl = pl + hlen, more = 0;
  hdr = malloc(hl);
  if (!hdr) {
    st = asg__error(ASG_ERR_OOM, "%s: '%s': out of memory", who, path);
    goto done;
  }
  memcpy(hdr, pre, got);
  if ((st = read_full(fd, hdr + got, hl - got, &more, path))) goto done;
  if ((st = asg__npy_parse(hdr, got + more, who, path, &info))) goto done;
  if (fsize - hl < info.nbytes) {
    st = FMT("%s: '%s' is truncated: its header promises %zu bytes of data, the file holds %zu",
             who, path, info.nbytes, fsize - hl);
    goto done;
  }
  size_t ob = (size_t)info.numel * asg_dtype_size(info.dt);
  data = malloc(ob ? ob : 1);
  direct = !info.swap && (size_t)info.size == asg_dtype_size(info.dt) && info.kind != 'u';
  raw = direct ? data : malloc(info.nbytes ? info.nbytes : 1);
  if (!data || !raw) {
    st = asg__error(ASG_ERR_OOM, "%s: '%s' needs %zu bytes: out of memory", who, path, ob);
    goto done;
  }
  if ((st = read_full(fd, raw, info.nbytes, &more, path))) goto done;
  if (more < info.nbytes) { /* the file shrank under us */
    st = FMT("%s: '%s' is truncated", who, path);
    goto done;
  }
  if (!direct && (st = asg__npy_convert(&info, raw, data, who, path))) goto done;
  out->dtype = info.dt;
  out->shape = info.shape;
  out->data = data;
  data = NULL;
done:
  if (!direct) free(raw);
  free(data);
  free(hdr);
  close(fd);
  return st;
}

asg_status asg_npy_write(const char *path, const asg_host_tensor *t) {
  static const char *who = "asg_npy_write";
  if (!path) return asg__error(ASG_ERR_INVALID, "%s: NULL path", who);
  size_t nbytes = 0;
  asg_status st = asg__npy_check_write(t, who, path, &nbytes);
  if (st) return st;
  char hdr[256];
  size_t hl = asg__npy_header(t, hdr);
  asg__afile f;
  if ((st = asg__afile_open(&f, path))) return st;
  asg__afile_write(&f, hdr, hl);
  asg__afile_write(&f, t->data, nbytes);
  return asg__afile_close(&f, false);
}
