/* A small strict JSON parser (RFC 8259) for file headers, and a growable
 * string for writing them. Input is untrusted: every byte is checked,
 * nesting depth is bounded, nothing is read past len. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

/* ---- growable string ---- */
static bool sb_reserve(asg_sbuf *b, size_t extra) {
  if (b->oom) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + extra + 1) {
    if (cap > SIZE_MAX / 2) {
      b->oom = true;
      return false;
    }
    cap *= 2;
  }
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

void asg__sb_putn(asg_sbuf *b, const char *s, size_t n) {
  if (!sb_reserve(b, n)) return;
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void asg__sb_puts(asg_sbuf *b, const char *s) { asg__sb_putn(b, s, strlen(s)); }

void asg__sb_printf(asg_sbuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !sb_reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void asg__sb_json_str(asg_sbuf *b, const char *s) {
  asg__sb_putn(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      asg__sb_putn(b, e, 2);
    } else if (*p < 0x20) {
      asg__sb_printf(b, "\\u%04x", *p);
    } else {
      asg__sb_putn(b, (const char *)p, 1); /* UTF-8 passes through (validated by callers) */
    }
  }
  asg__sb_putn(b, "\"", 1);
}

void asg__sb_free(asg_sbuf *b) {
  free(b->s);
  *b = (asg_sbuf){0};
}

/* ---- UTF-8 ---- */
/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp, min;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f, min = 0x80;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f, min = 0x800;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (len > n) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

bool asg__utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(s + i, n - i);
    if (!k) return false;
    i += k;
  }
  return true;
}

/* ---- parser ---- */
#define JSON_MAX_DEPTH 64

typedef struct jp {
  const unsigned char *s;
  size_t n, i;
  char *err;
  size_t errlen;
  bool failed;
} jp;

static bool jfail(jp *p, const char *what) {
  if (!p->failed) {
    if (p->i < p->n) {
      unsigned c = p->s[p->i];
      if (c >= 0x20 && c < 0x7f)
        snprintf(p->err, p->errlen, "%s at byte %zu (found '%c')", what, p->i, (char)c);
      else
        snprintf(p->err, p->errlen, "%s at byte %zu (found byte 0x%02x)", what, p->i, c);
    } else {
      snprintf(p->err, p->errlen, "%s at byte %zu (end of header)", what, p->i);
    }
  }
  p->failed = true;
  return false;
}

/* An allocation failed: err is exactly ASG_JSON_OOM, so that callers can
 * report ASG_ERR_OOM rather than a malformed file. */
static bool joom(jp *p) {
  if (!p->failed) snprintf(p->err, p->errlen, "%s", ASG_JSON_OOM);
  p->failed = true;
  return false;
}

static void skip_ws(jp *p) {
  while (p->i < p->n &&
         (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static bool lit(jp *p, const char *word) {
  size_t k = strlen(word);
  if (p->n - p->i < k || memcmp(p->s + p->i, word, k) != 0) return jfail(p, "invalid literal");
  p->i += k;
  return true;
}

static int hexval(unsigned c) {
  if (c >= '0' && c <= '9') return (int)(c - '0');
  if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
  return -1;
}

static bool hex4(jp *p, unsigned *out) {
  if (p->n - p->i < 4) return jfail(p, "truncated \\u escape");
  unsigned v = 0;
  for (int k = 0; k < 4; k++) {
    int h = hexval(p->s[p->i + (size_t)k]);
    if (h < 0) return jfail(p, "bad hex digit in \\u escape");
    v = v * 16 + (unsigned)h;
  }
  p->i += 4;
  *out = v;
  return true;
}

static void put_utf8(char *d, size_t *k, unsigned cp) {
  if (cp < 0x80) {
    d[(*k)++] = (char)cp;
  } else if (cp < 0x800) {
    d[(*k)++] = (char)(0xc0 | (cp >> 6));
    d[(*k)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    d[(*k)++] = (char)(0xe0 | (cp >> 12));
    d[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[(*k)++] = (char)(0x80 | (cp & 0x3f));
  } else {
    d[(*k)++] = (char)(0xf0 | (cp >> 18));
    d[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[(*k)++] = (char)(0x80 | (cp & 0x3f));
  }
}

/* At the opening quote. The decoded string is never longer than the raw
 * one, so one allocation of the raw length suffices. */
static bool parse_string(jp *p, char **out) {
  p->i++; /* opening quote */
  size_t start = p->i, end = start;
  while (end < p->n && p->s[end] != '"')
    end += (p->s[end] == '\\') ? 2 : 1;
  if (end >= p->n) {
    p->i = p->n;
    return jfail(p, "unterminated string");
  }
  char *d = malloc(end - start + 1);
  if (!d) return joom(p);
  size_t k = 0;
  while (p->i < end) {
    unsigned c = p->s[p->i];
    if (c < 0x20) {
      free(d);
      return jfail(p, "control character in string");
    }
    if (c != '\\') {
      size_t len = utf8_seq(p->s + p->i, end - p->i);
      if (!len) {
        free(d);
        return jfail(p, "invalid UTF-8 in string");
      }
      memcpy(d + k, p->s + p->i, len);
      k += len;
      p->i += len;
      continue;
    }
    p->i++;
    unsigned e = p->s[p->i++], cp;
    switch (e) {
    case '"': d[k++] = '"'; break;
    case '\\': d[k++] = '\\'; break;
    case '/': d[k++] = '/'; break;
    case 'b': d[k++] = '\b'; break;
    case 'f': d[k++] = '\f'; break;
    case 'n': d[k++] = '\n'; break;
    case 'r': d[k++] = '\r'; break;
    case 't': d[k++] = '\t'; break;
    case 'u':
      if (!hex4(p, &cp)) {
        free(d);
        return false;
      }
      if (cp >= 0xdc00 && cp <= 0xdfff) {
        free(d);
        return jfail(p, "lone low surrogate in \\u escape");
      }
      if (cp >= 0xd800 && cp <= 0xdbff) { /* needs a following low surrogate */
        unsigned lo;
        if (end - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
          free(d);
          return jfail(p, "lone high surrogate in \\u escape");
        }
        p->i += 2;
        if (!hex4(p, &lo)) {
          free(d);
          return false;
        }
        if (lo < 0xdc00 || lo > 0xdfff) {
          free(d);
          return jfail(p, "bad surrogate pair in \\u escape");
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      }
      if (cp == 0) {
        free(d);
        return jfail(p, "NUL character (\\u0000) in string");
      }
      put_utf8(d, &k, cp); /* at most 4 bytes from at least 6 raw ones */
      break;
    default:
      p->i--;
      free(d);
      return jfail(p, "invalid escape in string");
    }
    if (p->i > end) { /* an escape ran into the closing quote, e.g. "\u12" */
      free(d);
      return jfail(p, "truncated escape in string");
    }
  }
  d[k] = '\0';
  p->i = end + 1;
  *out = d;
  return true;
}

static bool parse_number(jp *p, asg_jval *v) {
  size_t i = p->i;
  bool neg = false, is_int = true, overflow = false;
  uint64_t mag = 0;
  if (i < p->n && p->s[i] == '-') neg = true, i++;
  if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') {
    p->i = i;
    return jfail(p, "invalid number");
  }
  if (p->s[i] == '0') {
    i++;
    if (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') {
      p->i = i;
      return jfail(p, "leading zero in number");
    }
  } else {
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') {
      unsigned dgt = p->s[i++] - '0';
      if (mag > (UINT64_MAX - dgt) / 10)
        overflow = true;
      else
        mag = mag * 10 + dgt;
    }
  }
  if (i < p->n && p->s[i] == '.') {
    is_int = false;
    i++;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') {
      p->i = i;
      return jfail(p, "digit expected after '.'");
    }
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
      i++;
  }
  if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
    is_int = false;
    i++;
    if (i < p->n && (p->s[i] == '+' || p->s[i] == '-')) i++;
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9') {
      p->i = i;
      return jfail(p, "digit expected in exponent");
    }
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9')
      i++;
  }
  v->type = ASG_J_NUM;
  if (is_int && !overflow && (neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= (uint64_t)INT64_MAX)) {
    v->is_int = true;
    v->i = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
  }
  p->i = i;
  return true;
}

static int key_cmp(const void *a, const void *b) {
  return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

static bool parse_value(jp *p, asg_jval *v, int depth);

static bool append_item(jp *p, asg_jval *v, int *cap, char *key) {
  if (v->n == *cap) {
    if (*cap > (1 << 28)) return jfail(p, "too many items");
    int nc = *cap ? *cap * 2 : 4;
    asg_jval *ni = realloc(v->items, (size_t)nc * sizeof *ni);
    if (ni) v->items = ni;
    if (v->type == ASG_J_OBJ) {
      char **nk = realloc(v->keys, (size_t)nc * sizeof *nk);
      if (nk) v->keys = nk;
      if (!nk) ni = NULL;
    }
    if (!ni) return joom(p);
    *cap = nc;
  }
  v->items[v->n] = (asg_jval){0};
  if (v->type == ASG_J_OBJ) v->keys[v->n] = key;
  v->n++;
  return true;
}

static bool parse_container(jp *p, asg_jval *v, int depth) {
  bool obj = p->s[p->i] == '{';
  v->type = obj ? ASG_J_OBJ : ASG_J_ARR;
  if (depth >= JSON_MAX_DEPTH) return jfail(p, "nesting too deep");
  p->i++;
  int cap = 0;
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
    p->i++;
    return true;
  }
  for (;;) {
    skip_ws(p);
    char *key = NULL;
    if (obj) {
      if (p->i >= p->n || p->s[p->i] != '"') return jfail(p, "object key (string) expected");
      if (!parse_string(p, &key)) return false;
      skip_ws(p);
      if (p->i >= p->n || p->s[p->i] != ':') {
        free(key);
        return jfail(p, "':' expected after object key");
      }
      p->i++;
      skip_ws(p);
    }
    if (!append_item(p, v, &cap, key)) {
      free(key);
      return false;
    }
    if (!parse_value(p, &v->items[v->n - 1], depth + 1)) return false;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) {
      p->i++;
      break;
    }
    return jfail(p, obj ? "',' or '}' expected" : "',' or ']' expected");
  }
  if (obj && v->n > 1) { /* duplicate keys are ambiguous: reject them (sorted, not O(n^2)) */
    char ***idx = malloc((size_t)v->n * sizeof *idx);
    if (!idx) return joom(p);
    for (int k = 0; k < v->n; k++)
      idx[k] = &v->keys[k];
    qsort(idx, (size_t)v->n, sizeof *idx, key_cmp);
    for (int k = 1; k < v->n; k++)
      if (strcmp(*idx[k - 1], *idx[k]) == 0) {
        if (!p->failed)
          snprintf(p->err, p->errlen, "duplicate key \"%.200s\" in the object at byte %zu", *idx[k],
                   v->pos);
        p->failed = true;
        free(idx);
        return false;
      }
    free(idx);
  }
  return true;
}

static bool parse_value(jp *p, asg_jval *v, int depth) {
  skip_ws(p);
  v->pos = p->i;
  if (p->i >= p->n) return jfail(p, "value expected");
  switch (p->s[p->i]) {
  case '{':
  case '[': return parse_container(p, v, depth);
  case '"': v->type = ASG_J_STR; return parse_string(p, &v->s);
  case 't':
    v->type = ASG_J_BOOL;
    v->b = true;
    return lit(p, "true");
  case 'f': v->type = ASG_J_BOOL; return lit(p, "false");
  case 'n': v->type = ASG_J_NULL; return lit(p, "null");
  default: return parse_number(p, v);
  }
}

void asg__json_free(asg_jval *v) {
  if (!v) return;
  free(v->s);
  for (int k = 0; k < v->n; k++) {
    asg__json_free(&v->items[k]);
    if (v->keys) free(v->keys[k]);
  }
  free(v->items);
  free(v->keys);
  *v = (asg_jval){0};
}

bool asg__json_parse(const char *text, size_t len, asg_jval *out, char *err, size_t errlen) {
  jp p = {(const unsigned char *)text, len, 0, err, errlen, false};
  *out = (asg_jval){0};
  if (errlen) err[0] = '\0';
  bool ok = parse_value(&p, out, 0);
  if (ok) {
    skip_ws(&p);
    if (p.i != p.n) ok = jfail(&p, "trailing characters after the JSON value");
  }
  if (!ok) asg__json_free(out);
  return ok;
}
