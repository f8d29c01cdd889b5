/* CSV of numbers into a host tensor. One pass over the text: fields of a
 * row are collected (unquoted in place into a scratch buffer), then the row
 * becomes a header or numbers. Numbers parse in the C locale whatever the
 * program's locale is (uselocale on this thread only). */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "core/internal.h"

#define WHO "asg_csv_read"
#define MAX_FIELD 1024

void asg_csv_free(asg_csv *c) {
  if (!c) return;
  if (c->names)
    for (int64_t i = 0; i < c->cols; i++)
      free(c->names[i]);
  free(c->names);
  asg_host_tensor_free(&c->data);
  memset(c, 0, sizeof *c);
}

typedef struct parser {
  const char *p, *end, *name;
  char delim;
  int64_t line; /* of the character at p */
  /* the fields of the current row, NUL-separated in buf */
  char *buf;
  size_t blen, bcap;
  size_t *off; /* field starts in buf */
  size_t fcap;
  int64_t nf;
  /* output */
  asg_dtype dt;
  size_t es;
  unsigned char *vals;
  size_t vlen, vcap; /* bytes */
} parser;

static bool grow(void **a, size_t *cap, size_t need, size_t es) {
  if (need <= *cap) return true;
  size_t n = *cap ? *cap : 16;
  while (n < need)
    n *= 2;
  if (n > SIZE_MAX / es) return false;
  void *q = realloc(*a, n * es);
  if (!q) return false;
  *a = q;
  *cap = n;
  return true;
}

static asg_status oom(const parser *ps) {
  return asg__error(ASG_ERR_OOM, WHO ": '%s': out of memory", ps->name);
}

/* Reads one row's fields; *eof when no row was left. Blank and comment
 * lines are skipped. */
static asg_status read_row(parser *ps, char comment, bool *eof, int64_t *row_line) {
  for (;;) { /* skip blank and comment lines */
    const char *q = ps->p;
    while (q < ps->end && (*q == ' ' || (*q == '\t' && ps->delim != '\t')))
      q++;
    if (q < ps->end && *q == '\r' && q + 1 < ps->end && q[1] == '\n') q++;
    if (q < ps->end && *q == '\n') {
      ps->p = q + 1;
      ps->line++;
      continue;
    }
    if (comment && ps->p < ps->end && *ps->p == comment) {
      const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
      ps->p = nl ? nl + 1 : ps->end;
      ps->line++;
      continue;
    }
    if (q == ps->end) {
      ps->p = q;
      *eof = true;
      return ASG_OK;
    }
    break;
  }
  *eof = false;
  *row_line = ps->line;
  ps->nf = 0;
  ps->blen = 0;
  for (;;) { /* one field */
    if (!grow((void **)&ps->off, &ps->fcap, (size_t)ps->nf + 1, sizeof *ps->off)) return oom(ps);
    ps->off[ps->nf++] = ps->blen;
    size_t start = ps->blen, last = ps->blen; /* last: end of the text, without trailing blanks */
    while (ps->p < ps->end && (*ps->p == ' ' || (*ps->p == '\t' && ps->delim != '\t')))
      ps->p++;
    bool quoted = ps->p < ps->end && *ps->p == '"';
    if (quoted) {
      int64_t qline = ps->line;
      ps->p++;
      for (;;) {
        if (ps->p >= ps->end)
          return asg__error(ASG_ERR_FORMAT,
                            WHO ": '%s': line %lld, column %lld: unterminated quote", ps->name,
                            (long long)qline, (long long)ps->nf);
        char ch = *ps->p++;
        if (ch == '"') {
          if (ps->p < ps->end && *ps->p == '"')
            ps->p++; /* "" is a quote */
          else
            break;
        }
        if (ch == '\n') ps->line++;
        if (!ch) goto nul;
        if (ps->blen - start >= MAX_FIELD) goto too_long;
        if (!grow((void **)&ps->buf, &ps->bcap, ps->blen + 2, 1)) return oom(ps);
        ps->buf[ps->blen++] = ch;
      }
      last = ps->blen;
      while (ps->p < ps->end && (*ps->p == ' ' || (*ps->p == '\t' && ps->delim != '\t')))
        ps->p++;
    } else {
      while (ps->p < ps->end && *ps->p != ps->delim && *ps->p != '\n' &&
             !(*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n')) {
        char ch = *ps->p++;
        if (!ch) goto nul;
        if (ps->blen - start >= MAX_FIELD) goto too_long;
        if (!grow((void **)&ps->buf, &ps->bcap, ps->blen + 2, 1)) return oom(ps);
        ps->buf[ps->blen++] = ch;
        if (ch != ' ' && !(ch == '\t' && ps->delim != '\t')) last = ps->blen;
      }
    }
    if (!grow((void **)&ps->buf, &ps->bcap, ps->blen + 1, 1)) return oom(ps);
    ps->blen = last;
    ps->buf[ps->blen++] = '\0';
    if (ps->p < ps->end && *ps->p == ps->delim) {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == '\r') ps->p++;
    if (ps->p < ps->end && *ps->p == '\n') {
      ps->p++;
      ps->line++;
      return ASG_OK;
    }
    if (ps->p >= ps->end) return ASG_OK;
    return asg__error(ASG_ERR_FORMAT,
                      WHO ": '%s': line %lld, column %lld: text after the closing quote", ps->name,
                      (long long)ps->line, (long long)ps->nf);
  }
nul:
  return asg__error(ASG_ERR_FORMAT, WHO ": '%s': line %lld, column %lld: a NUL byte", ps->name,
                    (long long)ps->line, (long long)ps->nf);
too_long:
  return asg__error(ASG_ERR_FORMAT,
                    WHO ": '%s': line %lld, column %lld: a field longer than %d bytes", ps->name,
                    (long long)ps->line, (long long)ps->nf, MAX_FIELD);
}

/* s as a number of dtype dt into out; false if it is not one. */
static bool parse_num(const char *s, asg_dtype dt, void *out) {
  if (!*s) return false;
  char *e;
  errno = 0;
  if (dt == ASG_F32 || dt == ASG_F64) {
    double v = strtod(s, &e);
    if (*e) return false;
    if (dt == ASG_F64)
      memcpy(out, &v, 8);
    else {
      float f = (float)v; /* out of range gives an infinity, as numpy */
      memcpy(out, &f, 4);
    }
    return true;
  }
  long long v = strtoll(s, &e, 10);
  if (*e || errno == ERANGE) return false;
  if (dt == ASG_I32) {
    if (v < INT32_MIN || v > INT32_MAX) return false;
    int32_t i = (int32_t)v;
    memcpy(out, &i, 4);
  } else {
    int64_t i = v;
    memcpy(out, &i, 8);
  }
  return true;
}

static asg_status parse_all(parser *ps, const asg_csv_options *opt, asg_csv *out) {
  asg_csv_header hdr = opt ? opt->header : ASG_CSV_HEADER_AUTO;
  char comment = opt ? opt->comment : 0;
  int64_t rows = 0, cols = -1;
  bool first = true;
  for (;;) {
    bool eof;
    int64_t line = 0;
    asg_status st = read_row(ps, comment, &eof, &line);
    if (st) return st;
    if (eof) break;
    if (cols < 0) cols = ps->nf;
    if (ps->nf != cols)
      return asg__error(ASG_ERR_FORMAT, WHO ": '%s': line %lld has %lld fields, the first row %lld",
                        ps->name, (long long)line, (long long)ps->nf, (long long)cols);
    if (first) {
      first = false;
      bool is_header = hdr == ASG_CSV_HEADER_PRESENT;
      if (hdr == ASG_CSV_HEADER_AUTO) {
        double scratch;
        for (int64_t k = 0; k < ps->nf && !is_header; k++) {
          const char *f = ps->buf + ps->off[k];
          is_header = *f && !parse_num(f, ASG_F64, &scratch);
        }
      }
      if (is_header) {
        out->names = calloc((size_t)cols, sizeof *out->names);
        if (!out->names) return oom(ps);
        out->cols = cols;
        for (int64_t k = 0; k < cols; k++)
          if (!(out->names[k] = asg__strdup(ps->buf + ps->off[k]))) return oom(ps);
        continue;
      }
    }
    if (!grow((void **)&ps->vals, &ps->vcap, ps->vlen + (size_t)cols * ps->es, 1)) return oom(ps);
    for (int64_t k = 0; k < cols; k++) {
      const char *f = ps->buf + ps->off[k];
      if (parse_num(f, ps->dt, ps->vals + ps->vlen)) {
        ps->vlen += ps->es;
        continue;
      }
      char col[300];
      if (out->names)
        snprintf(col, sizeof col, "%lld ('%.200s')", (long long)k + 1, out->names[k]);
      else
        snprintf(col, sizeof col, "%lld", (long long)k + 1);
      if (!*f)
        return asg__error(ASG_ERR_FORMAT, WHO ": '%s': line %lld, column %s: missing value",
                          ps->name, (long long)line, col);
      return asg__error(ASG_ERR_FORMAT, WHO ": '%s': line %lld, column %s: '%.100s' is not %s",
                        ps->name, (long long)line, col, f,
                        ps->dt == ASG_I32   ? "an int32"
                        : ps->dt == ASG_I64 ? "an int64"
                                            : "a number");
    }
    rows++;
  }
  if (cols < 0) return asg__error(ASG_ERR_FORMAT, WHO ": '%s' holds no rows", ps->name);
  out->cols = cols;
  asg_shape s = {2, {rows, cols}};
  char why[200];
  if (!asg__shape_check(s, ps->es, NULL, why, sizeof why))
    return asg__error(ASG_ERR_FORMAT, WHO ": '%s': %s", ps->name, why);
  out->data.dtype = ps->dt;
  out->data.shape = s;
  out->data.data = ps->vals ? ps->vals : malloc(1);
  if (!out->data.data) return oom(ps);
  ps->vals = NULL;
  return ASG_OK;
}

asg_status asg_csv_parse(const char *text, size_t len, const char *name, const asg_csv_options *opt,
                         asg_csv *out) {
  if (!out || (!text && len)) return asg__error(ASG_ERR_INVALID, WHO ": NULL argument");
  memset(out, 0, sizeof *out);
  parser ps = {.p = text, .end = text + len, .name = name ? name : "<text>", .line = 1};
  ps.delim = opt && opt->delimiter ? opt->delimiter : ',';
  ps.dt = opt ? opt->dtype : ASG_F32;
  if (ps.delim == ' ' || ps.delim == '"' || ps.delim == '\r' || ps.delim == '\n' ||
      (opt && opt->comment && opt->comment == ps.delim))
    return asg__error(ASG_ERR_INVALID, WHO ": '%s': delimiter %d cannot be used", ps.name,
                      ps.delim);
  if (ps.dt != ASG_F32 && ps.dt != ASG_F64 && ps.dt != ASG_I32 && ps.dt != ASG_I64)
    return asg__error(ASG_ERR_DTYPE, WHO ": '%s': dtype must be F32, F64, I32 or I64", ps.name);
  if (opt && (unsigned)opt->header > ASG_CSV_HEADER_PRESENT)
    return asg__error(ASG_ERR_INVALID, WHO ": '%s': bad header option %d", ps.name,
                      (int)opt->header);
  ps.es = asg_dtype_size(ps.dt);
  locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
  if (!c) return asg__error(ASG_ERR_OOM, WHO ": cannot create the C locale");
  locale_t old = uselocale(c);
  asg_status st = parse_all(&ps, opt, out);
  uselocale(old);
  freelocale(c);
  free(ps.buf);
  free(ps.off);
  free(ps.vals);
  if (st) asg_csv_free(out);
  return st;
}

asg_status asg_csv_read(const char *path, const asg_csv_options *opt, asg_csv *out) {
  if (!path || !out) return asg__error(ASG_ERR_INVALID, WHO ": NULL argument");
  memset(out, 0, sizeof *out);
  size_t limit = opt && opt->max_bytes ? opt->max_bytes : (size_t)1 << 30;
  if (limit > SIZE_MAX / 2) limit = SIZE_MAX / 2;
  asg_status st;
  int fd = asg__open_regular(path, WHO, &st);
  if (fd < 0) return st;
  char *text = NULL;
  size_t n = 0, cap = 0;
  for (;;) { /* grows with what is read (a file may change size under us) */
    if (n == cap && !grow((void **)&text, &cap, n + 1, 1)) {
      st = asg__error(ASG_ERR_OOM, WHO ": '%s': out of memory", path);
      break;
    }
    size_t want = cap - n < limit + 1 - n ? cap - n : limit + 1 - n;
    ssize_t r = read(fd, text + n, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      st = asg__error(ASG_ERR_IO, WHO ": cannot read '%s': %s", path, strerror(errno));
      break;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n > limit) {
      st = asg__error(ASG_ERR_FORMAT, WHO ": '%s' is larger than %zu bytes (max_bytes)", path,
                      limit);
      break;
    }
  }
  close(fd);
  if (!st) st = asg_csv_parse(text, n, path, opt, out);
  free(text);
  return st;
}
