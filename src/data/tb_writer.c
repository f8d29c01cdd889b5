/* TensorBoard event files (include/asg/logs.h): a hand-written encoder for
 * the few protobuf messages used (field numbers from tensorboard's
 * compat/proto event.proto, summary.proto, histogram.proto) and the
 * TFRecord framing with masked CRC-32C. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "asg/logs.h"
#include "core/internal.h"

#define AUTO_FLUSH_SECONDS 10.0

struct asg_tblog {
  FILE *f;
  char *path;
  asg_status failed; /* sticky: the first write error */
  double last_flush; /* monotonic seconds */
  unsigned char *buf;
  size_t len, cap;
  float *vals; /* asg_tblog_variables: one variable at a time */
  size_t vals_cap;
};

/* ---- CRC-32C (Castagnoli, reflected 0x82f63b78), four bits at a time ---- */

static const uint32_t crc_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75};

static uint32_t crc32c(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    c = (c >> 4) ^ crc_nibble[c & 15];
    c = (c >> 4) ^ crc_nibble[c & 15];
  }
  return ~c;
}

static uint32_t masked_crc(const unsigned char *p, size_t n) {
  uint32_t c = crc32c(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- protobuf encoding into w->buf ---- */

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_FIXED32 = 5 };

static bool reserve(asg_tblog *w, size_t more) {
  if (w->len + more <= w->cap) return true;
  size_t cap = w->cap ? w->cap : 256;
  while (cap < w->len + more)
    cap *= 2;
  unsigned char *b = realloc(w->buf, cap);
  if (!b) return false;
  w->buf = b, w->cap = cap;
  return true;
}

/* Appends without checking room: callers reserve first. */
static void put_le(asg_tblog *w, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++)
    w->buf[w->len++] = (unsigned char)(v >> (8 * i));
}

static int varint_size(uint64_t v) {
  int k = 1;
  while (v >= 0x80)
    v >>= 7, k++;
  return k;
}

static void put_varint(asg_tblog *w, uint64_t v) {
  while (v >= 0x80)
    w->buf[w->len++] = (unsigned char)(v | 0x80), v >>= 7;
  w->buf[w->len++] = (unsigned char)v;
}

static bool put_key(asg_tblog *w, int field, int wt) {
  if (!reserve(w, 10 + 8)) return false; /* the key and any fixed value after it */
  put_varint(w, (uint64_t)field << 3 | (uint64_t)wt);
  return true;
}

static bool put_double(asg_tblog *w, int field, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  if (!put_key(w, field, WT_FIXED64)) return false;
  put_le(w, bits, 8);
  return true;
}

static bool put_float(asg_tblog *w, int field, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  if (!put_key(w, field, WT_FIXED32)) return false;
  put_le(w, bits, 4);
  return true;
}

/* int64 fields are varints of the two's complement (10 bytes if negative). */
static bool put_int64(asg_tblog *w, int field, int64_t v) {
  if (!put_key(w, field, WT_VARINT) || !reserve(w, 10)) return false;
  put_varint(w, (uint64_t)v);
  return true;
}

static bool put_bytes(asg_tblog *w, int field, const void *p, size_t n) {
  if (!put_key(w, field, WT_LEN) || !reserve(w, 10 + n)) return false;
  put_varint(w, n);
  memcpy(w->buf + w->len, p, n);
  w->len += n;
  return true;
}

/* A nested message or packed field: begin_len writes the key and returns
 * where the contents start; end_len moves them right to make room for
 * their length's varint. */
static bool begin_len(asg_tblog *w, int field, size_t *start) {
  if (!put_key(w, field, WT_LEN)) return false;
  *start = w->len;
  return true;
}

static bool end_len(asg_tblog *w, size_t start) {
  size_t n = w->len - start;
  int k = varint_size(n);
  if (!reserve(w, (size_t)k)) return false;
  memmove(w->buf + start + k, w->buf + start, n);
  w->len = start;
  put_varint(w, n);
  w->len = start + (size_t)k + n;
  return true;
}

/* ---- records ---- */

static double wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double monotonic(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static asg_status earlier_failure(const asg_tblog *w) {
  return asg__error(w->failed,
                    "tblog %s: an earlier write failed; the file may end in a partial "
                    "record",
                    w->path);
}

static asg_status write_failed(asg_tblog *w, const char *what, int err) {
  w->failed = ASG_ERR_IO;
  return asg__error(ASG_ERR_IO, "tblog %s: %s failed: %s", w->path, what,
                    err ? strerror(err) : "unknown error");
}

static asg_status do_flush(asg_tblog *w) {
  errno = 0;
  if (fflush(w->f) != 0) return write_failed(w, "flush", errno);
  w->last_flush = monotonic();
  return ASG_OK;
}

/* Frames the Event in w->buf[0..len) as one record and writes it. */
static asg_status write_record(asg_tblog *w) {
  unsigned char head[12], tail[4];
  uint64_t n = w->len;
  for (int i = 0; i < 8; i++)
    head[i] = (unsigned char)(n >> (8 * i));
  uint32_t hc = masked_crc(head, 8), dc = masked_crc(w->buf, w->len);
  for (int i = 0; i < 4; i++) {
    head[8 + i] = (unsigned char)(hc >> (8 * i));
    tail[i] = (unsigned char)(dc >> (8 * i));
  }
  errno = 0;
  if (fwrite(head, 1, sizeof head, w->f) != sizeof head ||
      fwrite(w->buf, 1, w->len, w->f) != w->len ||
      fwrite(tail, 1, sizeof tail, w->f) != sizeof tail)
    return write_failed(w, "write", errno);
  if (monotonic() - w->last_flush >= AUTO_FLUSH_SECONDS) return do_flush(w);
  return ASG_OK;
}

/* Starts an Event (wall_time 1, step 2) in w->buf. */
static bool event_begin(asg_tblog *w, int64_t step) {
  w->len = 0;
  return put_double(w, 1, wall_time()) && put_int64(w, 2, step);
}

static asg_status check_args(const asg_tblog *w, const char *tag, const char *fn) {
  if (!w) return asg__error(ASG_ERR_INVALID, "%s: NULL writer", fn);
  if (w->failed) return earlier_failure(w);
  if (!tag || !tag[0]) return asg__error(ASG_ERR_INVALID, "%s: empty tag (%s)", fn, w->path);
  return ASG_OK;
}

static asg_status oom(const asg_tblog *w, const char *tag) {
  return asg__error(ASG_ERR_OOM, "tblog %s: out of memory encoding '%s'", w->path, tag);
}

asg_status asg_tblog_scalar(asg_tblog *w, const char *tag, int64_t step, double value) {
  asg_status s = check_args(w, tag, "asg_tblog_scalar");
  if (s) return s;
  size_t summary, val;
  /* Event.summary 5 { Summary.value 1 { tag 1, simple_value 2 } }; the
   * value is written even when 0: simple_value is a oneof member */
  bool ok = event_begin(w, step) && begin_len(w, 5, &summary) && begin_len(w, 1, &val) &&
            put_bytes(w, 1, tag, strlen(tag)) && put_float(w, 2, (float)value) && end_len(w, val) &&
            end_len(w, summary);
  return ok ? write_record(w) : oom(w, tag);
}

/* Summary statistics and bucket counts of the finite values (F32 or F64). */
typedef struct histo {
  double min, max, num, sum, sum_sq;
  double limit[ASG_TBLOG_BUCKETS], count[ASG_TBLOG_BUCKETS];
  int buckets;
} histo;

static double value_at(const void *v, bool f64, size_t i) {
  return f64 ? ((const double *)v)[i] : (double)((const float *)v)[i];
}

static bool histo_make(const void *v, bool f64, size_t n, histo *h) {
  memset(h, 0, sizeof *h);
  h->min = INFINITY, h->max = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    double x = value_at(v, f64, i);
    if (!isfinite(x)) continue;
    h->min = x < h->min ? x : h->min;
    h->max = x > h->max ? x : h->max;
    h->num += 1, h->sum += x, h->sum_sq += x * x;
  }
  if (h->num == 0) return false;
  double range = h->max - h->min;
  if (!(range > 0) || !isfinite(range)) { /* one value, or a span beyond double */
    h->buckets = 1, h->limit[0] = h->max, h->count[0] = h->num;
    return true;
  }
  /* bucket k holds [min + k w, min + (k + 1) w), the last one closed */
  const int b = ASG_TBLOG_BUCKETS;
  h->buckets = b;
  for (int k = 0; k < b; k++)
    h->limit[k] = h->min + range * (double)(k + 1) / b;
  h->limit[b - 1] = h->max;
  for (size_t i = 0; i < n; i++) {
    double x = value_at(v, f64, i);
    if (!isfinite(x)) continue;
    int k = (int)((x - h->min) / range * b);
    h->count[k < 0 ? 0 : k >= b ? b - 1 : k] += 1;
  }
  return true;
}

static asg_status write_histo(asg_tblog *w, const char *tag, int64_t step, const histo *h) {
  size_t summary, val, hp, packed;
  /* Value { tag 1, histo 5 { min 1, max 2, num 3, sum 4, sum_squares 5,
   * bucket_limit 6 [packed], bucket 7 [packed] } } */
  bool ok = event_begin(w, step) && begin_len(w, 5, &summary) && begin_len(w, 1, &val) &&
            put_bytes(w, 1, tag, strlen(tag)) && begin_len(w, 5, &hp) && put_double(w, 1, h->min) &&
            put_double(w, 2, h->max) && put_double(w, 3, h->num) && put_double(w, 4, h->sum) &&
            put_double(w, 5, h->sum_sq);
  for (int field = 6; ok && field <= 7; field++) {
    const double *a = field == 6 ? h->limit : h->count;
    ok = begin_len(w, field, &packed) && reserve(w, 8 * (size_t)h->buckets);
    for (int k = 0; ok && k < h->buckets; k++) {
      uint64_t bits;
      memcpy(&bits, &a[k], sizeof bits);
      put_le(w, bits, 8);
    }
    ok = ok && end_len(w, packed);
  }
  ok = ok && end_len(w, hp) && end_len(w, val) && end_len(w, summary);
  return ok ? write_record(w) : oom(w, tag);
}

asg_status asg_tblog_histogram(asg_tblog *w, const char *tag, int64_t step, const float *v,
                               size_t n) {
  asg_status s = check_args(w, tag, "asg_tblog_histogram");
  if (s) return s;
  if (!v && n)
    return asg__error(ASG_ERR_INVALID, "asg_tblog_histogram: '%s': NULL values (%zu)", tag, n);
  histo h;
  if (!histo_make(v, false, n, &h))
    return asg__error(ASG_ERR_INVALID,
                      "tblog %s: histogram '%s' at step %lld: no finite value "
                      "among %zu",
                      w->path, tag, (long long)step, n);
  return write_histo(w, tag, step, &h);
}

/* The optimizer's per-parameter states ("<param>.<state>", asg/optim.h). */
static bool optimizer_state(const char *name) {
  static const char *const states[] = {"momentum", "adam_m",   "adam_v", "square_avg",
                                       "grad_avg", "grad_acc", NULL};
  if (strncmp(name, "optim/", 6) == 0) return true;
  const char *dot = strrchr(name, '.');
  if (!dot) return false;
  for (int i = 0; states[i]; i++)
    if (strcmp(dot + 1, states[i]) == 0) return true;
  return false;
}

asg_status asg_tblog_variables(asg_tblog *w, asg_program *p, int64_t step) {
  if (!w) return asg__error(ASG_ERR_INVALID, "asg_tblog_variables: NULL writer");
  if (w->failed) return earlier_failure(w);
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_tblog_variables: NULL program (%s)", w->path);
  for (int i = 0, nv = asg_program_variable_count(p); i < nv; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape shape;
    asg_status s = asg_program_variable_info(p, i, &name, &dt, &shape);
    if (s) return s;
    if ((dt != ASG_F32 && dt != ASG_F64) || optimizer_state(name)) continue;
    int64_t numel = asg_shape_numel(shape);
    if (numel <= 0) continue;
    size_t bytes = (size_t)numel * asg_dtype_size(dt);
    if (bytes > w->vals_cap) {
      float *b = realloc(w->vals, bytes);
      if (!b) return asg__error(ASG_ERR_OOM, "tblog %s: out of memory reading '%s'", w->path, name);
      w->vals = b, w->vals_cap = bytes;
    }
    if ((s = asg_program_get_variable(p, name, w->vals, bytes))) return s;
    char tag[512];
    snprintf(tag, sizeof tag, "params/%s", name);
    histo h;
    if (!histo_make(w->vals, dt == ASG_F64, (size_t)numel, &h)) continue; /* all non-finite */
    if ((s = write_histo(w, tag, step, &h))) return s;
  }
  return ASG_OK;
}

/* ---- opening and closing ---- */

/* mkdir -p: each missing component of dir is made; the last must end up a
 * folder. */
static asg_status make_dirs(const char *dir) {
  char *p = asg__strdup(dir);
  if (!p) return asg__error(ASG_ERR_OOM, "tblog: out of memory (logdir %s)", dir);
  asg_status s = ASG_OK;
  for (char *q = p + 1;; q++) {
    if (*q != '/' && *q != '\0') continue;
    char c = *q;
    *q = '\0';
    struct stat st;
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      s = asg__error(ASG_ERR_IO, "tblog: cannot create folder %s: %s", p, strerror(errno));
      break;
    }
    if (c == '\0' && (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))) {
      s = asg__error(ASG_ERR_IO, "tblog: logdir %s is not a folder", dir);
      break;
    }
    *q = c;
    if (c == '\0') break;
  }
  free(p);
  return s;
}

asg_tblog *asg_tblog_open(const char *logdir) {
  if (!logdir || !logdir[0]) {
    asg__error(ASG_ERR_INVALID, "asg_tblog_open: %s logdir", logdir ? "empty" : "NULL");
    return NULL;
  }
  if (make_dirs(logdir)) return NULL;
  asg_tblog *w = calloc(1, sizeof *w);
  char host[256] = "localhost";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0]) snprintf(host, sizeof host, "localhost");
  for (char *c = host; *c; c++) /* no separators in the file name */
    if (*c == '/') *c = '_';
  long long now = (long long)time(NULL);
  size_t cap = strlen(logdir) + strlen(host) + 96;
  if (w) w->path = malloc(cap);
  if (!w || !w->path) {
    free(w);
    asg__error(ASG_ERR_OOM, "tblog: out of memory opening %s", logdir);
    return NULL;
  }
  /* "x": never reuse a file another writer made in the same second */
  for (int n = 0; n < 1000 && !w->f; n++) {
    snprintf(w->path, cap, "%s/events.out.tfevents.%lld.%s.%ld.%d", logdir, now, host,
             (long)getpid(), n);
    errno = 0;
    w->f = fopen(w->path, "wbx");
    if (!w->f && errno != EEXIST) break;
  }
  if (!w->f) {
    asg__error(ASG_ERR_IO, "tblog: cannot create %s: %s", w->path,
               errno ? strerror(errno) : "unknown error");
    free(w->path), free(w);
    return NULL;
  }
  w->last_flush = monotonic();
  static const char version[] = "brain.Event:2";
  asg_status s = event_begin(w, 0) && put_bytes(w, 3, version, sizeof version - 1)
                     ? write_record(w)
                     : oom(w, "file_version");
  if (!s) s = do_flush(w);
  if (s) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", asg_last_error());
    asg_tblog_close(w);
    asg__error(s, "%s", msg);
    return NULL;
  }
  return w;
}

const char *asg_tblog_path(const asg_tblog *w) {
  if (!w) asg__error(ASG_ERR_INVALID, "asg_tblog_path: NULL writer");
  return w ? w->path : NULL;
}

asg_status asg_tblog_flush(asg_tblog *w) {
  if (!w) return asg__error(ASG_ERR_INVALID, "asg_tblog_flush: NULL writer");
  if (w->failed) return earlier_failure(w);
  return do_flush(w);
}

asg_status asg_tblog_close(asg_tblog *w) {
  if (!w) return ASG_OK;
  asg_status s = w->failed ? earlier_failure(w) : do_flush(w);
  errno = 0;
  if (fclose(w->f) != 0 && !s)
    s = asg__error(ASG_ERR_IO, "tblog %s: close failed: %s", w->path,
                   errno ? strerror(errno) : "unknown error");
  free(w->path), free(w->buf), free(w->vals), free(w);
  return s;
}
