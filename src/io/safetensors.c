/* safetensors: lazy reading through mmap with full validation of the
 * header, and atomic writing (temp file, fsync, rename, fsync directory).
 * Written from the format description: u64 LE header size N, N bytes of
 * JSON, then the data section that data_offsets index into. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "io/io_internal.h"

/* Same bound as the reference implementation: a header is metadata, not data. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct st_entry {
  char *name;
  asg_dtype dtype;
  asg_shape shape;
  uint64_t begin, end; /* relative to the data section */
} st_entry;

struct asg_safetensors {
  char *path;
  unsigned char *map;
  size_t size;
  uint64_t data_start; /* 8 + N */
  int n;
  st_entry *e;
  int *by_name; /* entry indices sorted by name, for binary search */
  int n_meta;
  char **mkey, **mval;
};

static bool host_little_endian(void) {
  uint16_t x = 1;
  unsigned char c;
  memcpy(&c, &x, 1);
  return c == 1;
}

static const struct {
  const char *name;
  asg_dtype dt;
} st_dtypes[] = {{"F32", ASG_F32},   {"F64", ASG_F64}, {"F16", ASG_F16},
                 {"BF16", ASG_BF16}, {"I32", ASG_I32}, {"I64", ASG_I64}};

/* Dtypes of the format that ASG has no type for. */
static const char *const st_other_dtypes[] = {"BOOL", "U8",      "I8",      "I16",     "U16",
                                              "U32",  "U64",     "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                              "F4",   "F6_E2M3", "F6_E3M2", "C64"};

static const char *st_dtype_name(asg_dtype dt) {
  for (size_t k = 0; k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
    if (st_dtypes[k].dt == dt) return st_dtypes[k].name;
  return "?";
}

/* ---- reading ---- */

void asg_safetensors_close(asg_safetensors *f) {
  if (!f) return;
  if (f->map) munmap(f->map, f->size);
  for (int i = 0; i < f->n; i++)
    free(f->e[i].name);
  for (int i = 0; i < f->n_meta; i++) {
    free(f->mkey[i]);
    free(f->mval[i]);
  }
  free(f->e);
  free(f->by_name);
  free(f->mkey);
  free(f->mval);
  free(f->path);
  free(f);
}

static asg_status ferr(const asg_safetensors *f, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static asg_status ferr(const asg_safetensors *f, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return asg__error(ASG_ERR_FORMAT, "safetensors '%s': %s", f->path, msg);
}

/* qsort keys carry what they compare: no global state, so concurrent opens
 * and writes on different threads are safe. */
typedef struct name_key {
  const char *name;
  int idx;
} name_key;
typedef struct off_key {
  uint64_t begin;
  int idx;
} off_key;

static int cmp_name_key(const void *a, const void *b) {
  return strcmp(((const name_key *)a)->name, ((const name_key *)b)->name);
}

static int cmp_off_key(const void *a, const void *b) {
  uint64_t x = ((const off_key *)a)->begin, y = ((const off_key *)b)->begin;
  return x < y ? -1 : x > y;
}

/* A non-negative integer no larger than max, from a JSON value. */
static bool get_uint(const asg_jval *v, uint64_t max, uint64_t *out) {
  if (v->type != ASG_J_NUM || !v->is_int || v->i < 0 || (uint64_t)v->i > max) return false;
  *out = (uint64_t)v->i;
  return true;
}

static const asg_jval *obj_get(const asg_jval *o, const char *key) {
  for (int k = 0; k < o->n; k++)
    if (strcmp(o->keys[k], key) == 0) return &o->items[k];
  return NULL;
}

static asg_status parse_entry(asg_safetensors *f, const char *name, const asg_jval *v,
                              st_entry *e) {
  uint64_t data_len = f->size - f->data_start;
  if (v->type != ASG_J_OBJ) return ferr(f, "tensor \"%.200s\": entry is not an object", name);
  const asg_jval *jd = obj_get(v, "dtype"), *js = obj_get(v, "shape"),
                 *jo = obj_get(v, "data_offsets");
  if (!jd || !js || !jo)
    return ferr(f, "tensor \"%.200s\": missing \"%s\"", name,
                !jd   ? "dtype"
                : !js ? "shape"
                      : "data_offsets");
  if (jd->type != ASG_J_STR) return ferr(f, "tensor \"%.200s\": dtype is not a string", name);
  bool found = false;
  for (size_t k = 0; k < sizeof st_dtypes / sizeof st_dtypes[0]; k++)
    if (strcmp(jd->s, st_dtypes[k].name) == 0) e->dtype = st_dtypes[k].dt, found = true;
  if (!found) {
    for (size_t k = 0; k < sizeof st_other_dtypes / sizeof st_other_dtypes[0]; k++)
      if (strcmp(jd->s, st_other_dtypes[k]) == 0)
        return asg__error(ASG_ERR_UNSUPPORTED,
                          "safetensors '%s': tensor \"%.200s\" has dtype %s, which ASG does not "
                          "support (F32, F64, F16, BF16, I32, I64)",
                          f->path, name, jd->s);
    return ferr(f, "tensor \"%.200s\": unknown dtype \"%.40s\"", name, jd->s);
  }
  if (js->type != ASG_J_ARR) return ferr(f, "tensor \"%.200s\": shape is not an array", name);
  if (js->n > ASG_MAX_DIMS)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "safetensors '%s': tensor \"%.200s\" has %d dims, ASG supports at most %d",
                      f->path, name, js->n, ASG_MAX_DIMS);
  e->shape.ndim = js->n;
  for (int d = 0; d < js->n; d++) {
    uint64_t dim;
    const asg_jval *jv = &js->items[d];
    if (!get_uint(jv, (uint64_t)INT64_MAX, &dim))
      return ferr(f, "tensor \"%.200s\": shape[%d] is not a non-negative integer%s", name, d,
                  jv->type == ASG_J_NUM && jv->is_int && jv->i < 0 ? " (negative)" : "");
    e->shape.dims[d] = (int64_t)dim;
  }
  size_t es = asg_dtype_size(e->dtype);
  int64_t n_el;
  char why[300];
  if (!asg__shape_check(e->shape, es, &n_el, why, sizeof why)) /* even when a dim is 0 */
    return ferr(f, "tensor \"%.200s\": %s", name, why);
  uint64_t numel = (uint64_t)n_el;
  if (numel > data_len / es)
    return ferr(f, "tensor \"%.200s\": shape needs more bytes than the data section holds (%llu)",
                name, (unsigned long long)data_len);
  if (jo->type != ASG_J_ARR || jo->n != 2)
    return ferr(f, "tensor \"%.200s\": data_offsets is not an array of 2 integers", name);
  if (!get_uint(&jo->items[0], UINT64_MAX, &e->begin) ||
      !get_uint(&jo->items[1], UINT64_MAX, &e->end))
    return ferr(f, "tensor \"%.200s\": data_offsets are not non-negative integers", name);
  if (e->begin > e->end)
    return ferr(f, "tensor \"%.200s\": data_offsets [%llu, %llu] end before they begin", name,
                (unsigned long long)e->begin, (unsigned long long)e->end);
  if (e->end > data_len)
    return ferr(f,
                "tensor \"%.200s\": data_offsets [%llu, %llu] run past the data section "
                "(%llu bytes; file truncated?)",
                name, (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)data_len);
  if (e->end - e->begin != numel * es) {
    char b[128];
    return ferr(f,
                "tensor \"%.200s\": %s %s needs %llu bytes but data_offsets [%llu, %llu] span %llu",
                name, jd->s, asg_shape_str(e->shape, b, sizeof b), (unsigned long long)(numel * es),
                (unsigned long long)e->begin, (unsigned long long)e->end,
                (unsigned long long)(e->end - e->begin));
  }
  return ASG_OK;
}

static asg_status parse_header(asg_safetensors *f) {
  const char *hdr = (const char *)f->map + 8;
  size_t hlen = (size_t)(f->data_start - 8);
  char jerr[256];
  asg_jval root;
  if (!asg__json_parse(hdr, hlen, &root, jerr, sizeof jerr))
    return strcmp(jerr, ASG_JSON_OOM) == 0
               ? asg__error(ASG_ERR_OOM, "safetensors '%s': out of memory", f->path)
               : ferr(f, "header is not valid JSON: %s", jerr);
  asg_status st = ASG_OK;
  if (root.type != ASG_J_OBJ) st = ferr(f, "header is not a JSON object");
  int nt = 0;
  for (int k = 0; !st && k < root.n; k++)
    nt += strcmp(root.keys[k], "__metadata__") != 0;
  if (!st) {
    f->e = calloc((size_t)nt + 1, sizeof *f->e);
    f->by_name = calloc((size_t)nt + 1, sizeof *f->by_name);
    if (!f->e || !f->by_name)
      st = asg__error(ASG_ERR_OOM, "safetensors '%s': out of memory", f->path);
  }
  for (int k = 0; !st && k < root.n; k++) {
    const asg_jval *v = &root.items[k];
    if (strcmp(root.keys[k], "__metadata__") == 0) {
      if (v->type != ASG_J_OBJ) {
        st = ferr(f, "__metadata__ is not an object");
        break;
      }
      f->mkey = calloc((size_t)v->n + 1, sizeof *f->mkey);
      f->mval = calloc((size_t)v->n + 1, sizeof *f->mval);
      if (!f->mkey || !f->mval) {
        st = asg__error(ASG_ERR_OOM, "safetensors '%s': out of memory", f->path);
        break;
      }
      for (int m = 0; m < v->n && !st; m++) {
        if (v->items[m].type != ASG_J_STR) {
          st = ferr(f, "__metadata__ value of \"%.200s\" is not a string", v->keys[m]);
          break;
        }
        f->mkey[m] = root.items[k].keys[m]; /* take ownership from the JSON tree */
        f->mval[m] = v->items[m].s;
        root.items[k].keys[m] = NULL;
        root.items[k].items[m].s = NULL;
        f->n_meta = m + 1;
      }
      continue;
    }
    st_entry *e = &f->e[f->n];
    st = parse_entry(f, root.keys[k], v, e);
    if (!st) {
      e->name = root.keys[k];
      root.keys[k] = NULL;
      f->n++;
    }
  }
  asg__json_free(&root);
  if (st) return st;
  /* names are unique (the JSON parser rejects duplicate keys); index them */
  name_key *nk = malloc(((size_t)f->n + 1) * sizeof *nk);
  off_key *ord = malloc(((size_t)f->n + 1) * sizeof *ord);
  if (!nk || !ord) {
    free(nk);
    free(ord);
    return asg__error(ASG_ERR_OOM, "safetensors '%s': out of memory", f->path);
  }
  for (int i = 0; i < f->n; i++)
    nk[i] = (name_key){f->e[i].name, i};
  qsort(nk, (size_t)f->n, sizeof *nk, cmp_name_key);
  for (int i = 0; i < f->n; i++)
    f->by_name[i] = nk[i].idx;
  free(nk);
  /* no two non-empty tensors may share bytes, whatever their order */
  int m = 0;
  for (int i = 0; i < f->n; i++)
    if (f->e[i].end > f->e[i].begin) ord[m++] = (off_key){f->e[i].begin, i};
  qsort(ord, (size_t)m, sizeof *ord, cmp_off_key);
  for (int k = 1; k < m && !st; k++) {
    const st_entry *a = &f->e[ord[k - 1].idx], *b = &f->e[ord[k].idx];
    if (b->begin < a->end)
      st = ferr(f, "tensors \"%.200s\" [%llu, %llu] and \"%.200s\" [%llu, %llu] overlap", a->name,
                (unsigned long long)a->begin, (unsigned long long)a->end, b->name,
                (unsigned long long)b->begin, (unsigned long long)b->end);
  }
  free(ord);
  return st;
}

asg_status asg__safetensors_open(const char *path, asg_safetensors **out) {
  *out = NULL;
  if (!path) return asg__error(ASG_ERR_INVALID, "asg_safetensors_open: path is NULL");
  if (!host_little_endian())
    return asg__error(ASG_ERR_UNSUPPORTED, "safetensors '%s': big-endian hosts are not supported",
                      path);
  asg_safetensors *f = calloc(1, sizeof *f);
  if (!f || !(f->path = asg__strdup(path))) {
    free(f);
    return asg__error(ASG_ERR_OOM, "safetensors '%s': out of memory", path);
  }
  asg_status st;
  int fd = asg__open_regular(path, "safetensors", &st); /* never blocks on a FIFO */
  if (fd < 0) {
    asg_safetensors_close(f);
    return st;
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0)
    st = asg__error(ASG_ERR_IO, "safetensors '%s': cannot stat: %s", path, strerror(errno));
  else if (sb.st_size < 8)
    st =
        ferr(f, "file is %lld bytes, shorter than the 8-byte header length", (long long)sb.st_size);
  else if ((uint64_t)sb.st_size > SIZE_MAX)
    st = asg__error(ASG_ERR_UNSUPPORTED, "safetensors '%s': file too large to map", path);
  if (!st) {
    f->size = (size_t)sb.st_size;
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
      st = asg__error(ASG_ERR_IO, "safetensors '%s': mmap failed: %s", path, strerror(errno));
    else
      f->map = m;
  }
  close(fd); /* the mapping stays valid */
  if (!st) {
    uint64_t n = 0;
    for (int k = 7; k >= 0; k--)
      n = (n << 8) | f->map[k];
    if (n > ST_MAX_HEADER)
      st = ferr(f, "header length %llu is larger than the %llu-byte limit", (unsigned long long)n,
                (unsigned long long)ST_MAX_HEADER);
    else if (n > f->size - 8)
      st = ferr(f, "header length %llu runs past the end of the file (%zu bytes)",
                (unsigned long long)n, f->size);
    else if (n < 2)
      st = ferr(f, "header length %llu is too small for a JSON object", (unsigned long long)n);
    else
      f->data_start = 8 + n;
  }
  if (!st) st = parse_header(f);
  if (st) {
    asg_safetensors_close(f);
    return st;
  }
  *out = f;
  return ASG_OK;
}

asg_safetensors *asg_safetensors_open(const char *path) {
  asg_safetensors *f;
  return asg__safetensors_open(path, &f) ? NULL : f;
}

int asg_safetensors_count(const asg_safetensors *f) { return f ? f->n : 0; }

asg_status asg_safetensors_info_at(const asg_safetensors *f, int i, asg_safetensors_info *info) {
  if (!f || !info) return asg__error(ASG_ERR_INVALID, "asg_safetensors_info_at: NULL argument");
  if (i < 0 || i >= f->n)
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_info_at: index %d out of range [0, %d)", i,
                      f->n);
  const st_entry *e = &f->e[i];
  info->name = e->name;
  info->dtype = e->dtype;
  info->shape = e->shape;
  info->nbytes = (size_t)(e->end - e->begin);
  info->offset = f->data_start + e->begin;
  return ASG_OK;
}

int asg_safetensors_find(const asg_safetensors *f, const char *name) {
  if (!f || !name) return -1;
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(f->e[f->by_name[mid]].name, name);
    if (c == 0) return f->by_name[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

const void *asg_safetensors_data(const asg_safetensors *f, int i, size_t *nbytes) {
  if (!f || i < 0 || i >= f->n) {
    asg__error(ASG_ERR_INVALID, "asg_safetensors_data: index %d out of range", i);
    return NULL;
  }
  if (nbytes) *nbytes = (size_t)(f->e[i].end - f->e[i].begin);
  return f->map + f->data_start + f->e[i].begin;
}

asg_status asg_safetensors_read(const asg_safetensors *f, int i, asg_dtype dt, void *dst,
                                size_t nbytes) {
  if (!f || (!dst && nbytes))
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_read: NULL argument");
  if (i < 0 || i >= f->n)
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_read: index %d out of range [0, %d)", i,
                      f->n);
  if (!asg__dtype_valid((int)dt))
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_read: invalid dtype %d", (int)dt);
  const st_entry *e = &f->e[i];
  int64_t n_el;
  char why[300];
  if (!asg__shape_check(e->shape, asg_dtype_size(dt), &n_el, why, sizeof why))
    return asg__error(ASG_ERR_SHAPE, "asg_safetensors_read: \"%.200s\" as %s: %s", e->name,
                      asg_dtype_name(dt), why);
  size_t numel = (size_t)n_el, want = numel * asg_dtype_size(dt);
  if (nbytes != want) {
    char b[128];
    return asg__error(
        ASG_ERR_SHAPE, "asg_safetensors_read: \"%.200s\" as %s %s is %zu bytes, buffer is %zu",
        e->name, asg_dtype_name(dt), asg_shape_str(e->shape, b, sizeof b), want, nbytes);
  }
  asg_status st = asg_convert(f->map + f->data_start + e->begin, e->dtype, dst, dt, numel);
  if (st) {
    char msg[600];
    snprintf(msg, sizeof msg, "%s", asg_last_error());
    return asg__error(st, "safetensors '%s': tensor \"%.200s\": %s", f->path, e->name, msg);
  }
  return ASG_OK;
}

asg_status asg_safetensors_read_host(const asg_safetensors *f, int i, asg_dtype dt,
                                     asg_host_tensor *out) {
  if (!out) return asg__error(ASG_ERR_INVALID, "asg_safetensors_read_host: out is NULL");
  *out = (asg_host_tensor){0};
  if (!f || i < 0 || i >= f->n)
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_read_host: index %d out of range", i);
  if (!asg__dtype_valid((int)dt))
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_read_host: invalid dtype %d", (int)dt);
  int64_t numel;
  char why[300];
  if (!asg__shape_check(f->e[i].shape, asg_dtype_size(dt), &numel, why, sizeof why))
    return asg__error(ASG_ERR_SHAPE, "asg_safetensors_read_host: \"%.200s\" as %s: %s",
                      f->e[i].name, asg_dtype_name(dt), why);
  size_t nbytes = (size_t)numel * asg_dtype_size(dt);
  void *d = malloc(nbytes ? nbytes : 1);
  if (!d)
    return asg__error(ASG_ERR_OOM, "asg_safetensors_read_host: out of memory (%zu bytes)", nbytes);
  asg_status st = asg_safetensors_read(f, i, dt, d, nbytes);
  if (st) {
    free(d);
    return st;
  }
  *out = (asg_host_tensor){dt, f->e[i].shape, d};
  return ASG_OK;
}

const char *asg_safetensors_metadata(const asg_safetensors *f, const char *key) {
  if (!f || !key) return NULL;
  for (int i = 0; i < f->n_meta; i++)
    if (strcmp(f->mkey[i], key) == 0) return f->mval[i];
  return NULL;
}

int asg_safetensors_metadata_count(const asg_safetensors *f) { return f ? f->n_meta : 0; }

asg_status asg_safetensors_metadata_at(const asg_safetensors *f, int i, const char **key,
                                       const char **value) {
  if (!f || i < 0 || i >= f->n_meta)
    return asg__error(ASG_ERR_INVALID, "asg_safetensors_metadata_at: index %d out of range", i);
  if (key) *key = f->mkey[i];
  if (value) *value = f->mval[i];
  return ASG_OK;
}

/* ---- writing ---- */

asg_status asg__write_all(int fd, const void *buf, size_t n, const char *tmp) {
  const unsigned char *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return asg__error(ASG_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  return ASG_OK;
}

asg_status asg__fsync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  if (!slash)
    dir = asg__strdup(".");
  else if (slash == path)
    dir = asg__strdup("/");
  else {
    dir = malloc((size_t)(slash - path) + 1);
    if (dir) {
      memcpy(dir, path, (size_t)(slash - path));
      dir[slash - path] = '\0';
    }
  }
  if (!dir) return asg__error(ASG_ERR_OOM, "out of memory");
  int fd = open(dir, O_RDONLY);
  asg_status st = ASG_OK;
  if (fd < 0) {
    st = asg__error(ASG_ERR_IO, "cannot open directory '%s' to sync it: %s", dir, strerror(errno));
  } else {
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) /* some filesystems refuse dir fsync */
      st = asg__error(ASG_ERR_IO, "cannot sync directory '%s': %s", dir, strerror(errno));
    close(fd);
  }
  free(dir);
  return st;
}

static asg_status check_name(const char *path, const char *what, const char *s) {
  if (!s) return asg__error(ASG_ERR_INVALID, "safetensors write '%s': %s is NULL", path, what);
  if (!asg__utf8_valid((const unsigned char *)s, strlen(s)))
    return asg__error(ASG_ERR_INVALID, "safetensors write '%s': %s is not valid UTF-8", path, what);
  return ASG_OK;
}

/* Checks that strs[0..n) (stride apart) are unique; reports the first duplicate. */
static asg_status check_unique(const char *path, const char *what, const char *const *strs, int n,
                               int stride) {
  if (n < 2) return ASG_OK;
  name_key *k = malloc((size_t)n * sizeof *k);
  if (!k) return asg__error(ASG_ERR_OOM, "safetensors write '%s': out of memory", path);
  for (int i = 0; i < n; i++)
    k[i] = (name_key){strs[(size_t)i * (size_t)stride], i};
  qsort(k, (size_t)n, sizeof *k, cmp_name_key);
  asg_status st = ASG_OK;
  for (int i = 1; i < n && !st; i++)
    if (strcmp(k[i - 1].name, k[i].name) == 0)
      st = asg__error(ASG_ERR_INVALID, "safetensors write '%s': duplicate %s \"%.200s\"", path,
                      what, k[i].name);
  free(k);
  return st;
}

asg_status asg__safetensors_write(const char *path, int n, const char *const *names,
                                  const asg_host_tensor *t, const asg_dtype *fdt, int n_meta,
                                  const char *const *meta, asg_st_fetch fetch, void *ctx) {
  if (!path) return asg__error(ASG_ERR_INVALID, "asg_safetensors_write: path is NULL");
  if (!host_little_endian())
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "safetensors write '%s': big-endian hosts are not supported", path);
  if (n < 0 || n_meta < 0 || (n > 0 && (!names || !t)) || (n_meta > 0 && !meta))
    return asg__error(ASG_ERR_INVALID, "safetensors write '%s': bad counts or NULL arrays", path);
  asg_status st = ASG_OK;
  size_t max_bytes = 0;
  uint64_t total = 0;
  for (int i = 0; i < n && !st; i++) {
    st = check_name(path, "a tensor name", names[i]);
    if (st) break;
    if (strcmp(names[i], "__metadata__") == 0)
      return asg__error(ASG_ERR_INVALID, "safetensors write '%s': \"__metadata__\" is reserved",
                        path);
    asg_dtype sd = t[i].dtype, dd = fdt ? fdt[i] : sd;
    if (!asg__dtype_valid((int)sd) || !asg__dtype_valid((int)dd))
      return asg__error(ASG_ERR_INVALID,
                        "safetensors write '%s': tensor \"%.200s\" has an invalid dtype", path,
                        names[i]);
    if (asg__dtype_is_int(sd) != asg__dtype_is_int(dd))
      return asg__error(ASG_ERR_DTYPE,
                        "safetensors write '%s': tensor \"%.200s\": cannot store %s as %s", path,
                        names[i], asg_dtype_name(sd), asg_dtype_name(dd));
    int64_t n_el;
    char why[300];
    size_t big = asg_dtype_size(sd) > asg_dtype_size(dd) ? asg_dtype_size(sd) : asg_dtype_size(dd);
    if (!asg__shape_check(t[i].shape, big, &n_el, why, sizeof why))
      return asg__error(ASG_ERR_INVALID, "safetensors write '%s': tensor \"%.200s\": %s", path,
                        names[i], why);
    uint64_t numel = (uint64_t)n_el;
    if (numel && !t[i].data && !fetch)
      return asg__error(ASG_ERR_INVALID, "safetensors write '%s': tensor \"%.200s\" has no data",
                        path, names[i]);
    uint64_t sb = numel * asg_dtype_size(sd); /* <= ASG__MAX_TENSOR_BYTES: fits size_t */
    if (!t[i].data && sb > max_bytes) max_bytes = (size_t)sb;
    /* the data section's length, so that offsets cannot wrap */
    if (numel * asg_dtype_size(dd) > UINT64_MAX / 2 - total)
      return asg__error(ASG_ERR_INVALID, "safetensors write '%s': tensors too large in total",
                        path);
    total += numel * asg_dtype_size(dd);
  }
  for (int i = 0; i < 2 * n_meta && !st; i++)
    st = check_name(path, i % 2 ? "a metadata value" : "a metadata key", meta[i]);
  if (!st) st = check_unique(path, "tensor name", names, n, 1);
  if (!st) st = check_unique(path, "metadata key", meta, n_meta, 2);
  if (st) return st;

  /* data order: 8-byte dtypes, then 4, then 2 (stable), so each tensor is
   * aligned to its element size once the data section starts at 8k */
  int *ord = malloc(((size_t)n + 1) * sizeof *ord);
  uint64_t *off = malloc(((size_t)n + 1) * sizeof *off);
  asg_sbuf h = {0};
  unsigned char *scratch = NULL, *conv = NULL;
  char *tmp = NULL;
  int fd = -1;
  if (!ord || !off) {
    st = asg__error(ASG_ERR_OOM, "safetensors write '%s': out of memory", path);
    goto done;
  }
  int m = 0;
  for (size_t sz = 8; sz >= 2; sz /= 2)
    for (int i = 0; i < n; i++)
      if (asg_dtype_size(fdt ? fdt[i] : t[i].dtype) == sz) ord[m++] = i;
  uint64_t pos = 0;
  for (int k = 0; k < m; k++) {
    int i = ord[k];
    off[i] = pos;
    pos += (uint64_t)asg_shape_numel(t[i].shape) * asg_dtype_size(fdt ? fdt[i] : t[i].dtype);
  }

  asg__sb_puts(&h, "{");
  if (n_meta > 0) {
    asg__sb_puts(&h, "\"__metadata__\":{");
    for (int k = 0; k < n_meta; k++) {
      if (k) asg__sb_puts(&h, ",");
      asg__sb_json_str(&h, meta[2 * k]);
      asg__sb_puts(&h, ":");
      asg__sb_json_str(&h, meta[2 * k + 1]);
    }
    asg__sb_puts(&h, "}");
  }
  for (int i = 0; i < n; i++) {
    asg_dtype dd = fdt ? fdt[i] : t[i].dtype;
    if (i || n_meta > 0) asg__sb_puts(&h, ",");
    asg__sb_json_str(&h, names[i]);
    asg__sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(dd));
    for (int d = 0; d < t[i].shape.ndim; d++)
      asg__sb_printf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape.dims[d]);
    uint64_t nb = (uint64_t)asg_shape_numel(t[i].shape) * asg_dtype_size(dd);
    asg__sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off[i],
                   (unsigned long long)(off[i] + nb));
  }
  asg__sb_puts(&h, "}");
  /* pad in one append: a loop until the length is right never ends once
   * the buffer has failed to grow */
  asg__sb_putn(&h, "       ", (8 - (8 + h.len) % 8) % 8);
  if (h.oom) {
    st = asg__error(ASG_ERR_OOM, "safetensors write '%s': out of memory", path);
    goto done;
  }
  if (max_bytes) scratch = malloc(max_bytes);
  enum { CHUNK = 1 << 14 }; /* elements converted per write */
  conv = malloc(CHUNK * 8);
  if ((max_bytes && !scratch) || !conv) {
    st = asg__error(ASG_ERR_OOM, "safetensors write '%s': out of memory", path);
    goto done;
  }

  st = asg__temp_create(path, &fd, &tmp); /* also removes stale temporaries of path */
  if (st) goto done;
  (void)fchmod(fd, 0644); /* mkstemp makes 0600; a weights file is normally readable */
  unsigned char len8[8];
  for (int k = 0; k < 8; k++)
    len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
  st = asg__write_all(fd, len8, 8, tmp);
  if (!st) st = asg__write_all(fd, h.s, h.len, tmp);
  for (int k = 0; k < m && !st; k++) {
    int i = ord[k];
    asg_dtype sd = t[i].dtype, dd = fdt ? fdt[i] : sd;
    size_t numel = (size_t)asg_shape_numel(t[i].shape), ss = asg_dtype_size(sd);
    if (!numel) continue;
    const unsigned char *src = t[i].data;
    if (!src) {
      st = fetch(ctx, i, scratch, numel * ss);
      if (st) break;
      src = scratch;
    }
    if (sd == dd) {
      st = asg__write_all(fd, src, numel * ss, tmp);
      continue;
    }
    for (size_t j = 0; j < numel && !st; j += CHUNK) {
      size_t c = numel - j < CHUNK ? numel - j : CHUNK;
      st = asg_convert(src + j * ss, sd, conv, dd, c);
      if (!st) st = asg__write_all(fd, conv, c * asg_dtype_size(dd), tmp);
    }
  }
  if (!st && fsync(fd) != 0)
    st = asg__error(ASG_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
  if (close(fd) != 0 && !st)
    st = asg__error(ASG_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
  fd = -1;
  if (!st && rename(tmp, path) != 0)
    st = asg__error(ASG_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
  if (!st) {
    free(tmp);
    tmp = NULL; /* renamed: nothing to clean up */
    st = asg__fsync_dir(path);
  }
done:
  if (fd >= 0) close(fd);
  if (tmp) {
    unlink(tmp);
    free(tmp);
  }
  free(ord);
  free(off);
  free(scratch);
  free(conv);
  asg__sb_free(&h);
  return st;
}

asg_status asg_safetensors_write_as(const char *path, int n, const char *const *names,
                                    const asg_host_tensor *tensors, const asg_dtype *file_dtypes,
                                    int n_meta, const char *const *meta) {
  return asg__safetensors_write(path, n, names, tensors, file_dtypes, n_meta, meta, NULL, NULL);
}

asg_status asg_safetensors_write(const char *path, int n, const char *const *names,
                                 const asg_host_tensor *tensors, int n_meta,
                                 const char *const *meta) {
  return asg__safetensors_write(path, n, names, tensors, NULL, n_meta, meta, NULL, NULL);
}
