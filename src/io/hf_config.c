/* config.json of a Hugging Face model folder: typed getters over the parsed
 * JSON, with "a.b" keys for nested objects. Also the file helpers that the
 * checkpoint loader shares (reading a JSON file, joining paths). */
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "io/hf_internal.h"

/* config.json and index files are metadata: a few KB to a few MB */
#define HF_JSON_MAX ((size_t)256 << 20)

struct asg_hf_config {
  char *path;
  char *text; /* kept: non-integer numbers are parsed from it on demand */
  size_t len;
  asg_jval root;
};

/* ---- shared file helpers ---- */

asg_status asg__hf_read_text(const char *path, const char *who, size_t max_bytes, char **text,
                             size_t *len) {
  *text = NULL;
  *len = 0;
  asg_status st;
  int fd = asg__open_regular(path, who, &st);
  if (fd < 0) return st;
  size_t n = 0, cap = 4096;
  char *buf = malloc(cap + 1);
  st = buf ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory reading '%s'", who, path);
  while (!st) {
    if (n == cap) {
      if (cap >= max_bytes) {
        st = asg__error(ASG_ERR_FORMAT, "%s: '%s' is larger than %zu bytes", who, path, max_bytes);
        break;
      }
      size_t nc = cap * 2 > max_bytes ? max_bytes : cap * 2;
      char *nb = realloc(buf, nc + 1);
      if (!nb) {
        st = asg__error(ASG_ERR_OOM, "%s: out of memory reading '%s'", who, path);
        break;
      }
      buf = nb;
      cap = nc;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) st = asg__error(ASG_ERR_IO, "%s: cannot read '%s': %s", who, path, strerror(errno));
    if (r <= 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (st) {
    free(buf);
    return st;
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return ASG_OK;
}

static asg_status parse_json(const char *path, const char *who, const char *text, size_t len,
                             asg_jval *root) {
  char err[300];
  if (!asg__json_parse(text, len, root, err, sizeof err))
    return strcmp(err, ASG_JSON_OOM) == 0
               ? asg__error(ASG_ERR_OOM, "%s: out of memory parsing '%s'", who, path)
               : asg__error(ASG_ERR_FORMAT, "%s: '%s' is not valid JSON: %s", who, path, err);
  if (root->type != ASG_J_OBJ) {
    asg__json_free(root);
    return asg__error(ASG_ERR_FORMAT, "%s: '%s' does not hold a JSON object", who, path);
  }
  return ASG_OK;
}

asg_status asg__hf_read_json(const char *path, const char *who, asg_jval *root) {
  *root = (asg_jval){0};
  char *text;
  size_t len;
  asg_status st = asg__hf_read_text(path, who, HF_JSON_MAX, &text, &len);
  if (!st) st = parse_json(path, who, text, len, root);
  free(text);
  return st;
}

const asg_jval *asg__hf_obj_get(const asg_jval *o, const char *key) {
  if (!o || o->type != ASG_J_OBJ) return NULL;
  for (int k = 0; k < o->n; k++)
    if (strcmp(o->keys[k], key) == 0) return &o->items[k];
  return NULL;
}

bool asg__hf_is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

char *asg__hf_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  memcpy(s, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') s[k++] = '/';
  memcpy(s + k, name, b + 1);
  return s;
}

/* ---- config ---- */

asg_hf_config *asg_hf_config_load(const char *path) {
  const char *who = "asg_hf_config_load";
  if (!path) {
    asg__error(ASG_ERR_INVALID, "%s: path is NULL", who);
    return NULL;
  }
  asg_hf_config *c = calloc(1, sizeof *c);
  if (c) c->path = asg__hf_is_dir(path) ? asg__hf_join(path, "config.json") : asg__strdup(path);
  if (!c || !c->path) {
    free(c);
    asg__error(ASG_ERR_OOM, "%s: out of memory", who);
    return NULL;
  }
  asg_status st = asg__hf_read_text(c->path, who, HF_JSON_MAX, &c->text, &c->len);
  if (!st) st = parse_json(c->path, who, c->text, c->len, &c->root);
  if (st) {
    asg_hf_config_free(c);
    return NULL;
  }
  return c;
}

void asg_hf_config_free(asg_hf_config *c) {
  if (!c) return;
  asg__json_free(&c->root);
  free(c->text);
  free(c->path);
  free(c);
}

/* The value of key in o: the exact key first, then "a.rest" as key "a"
 * holding an object in which "rest" is looked up (each '.' in turn). */
static const asg_jval *lookup(const asg_jval *o, const char *key) {
  const asg_jval *v = asg__hf_obj_get(o, key);
  if (v) return v;
  for (const char *dot = strchr(key, '.'); dot; dot = strchr(dot + 1, '.')) {
    for (int k = 0; k < o->n; k++) {
      const char *name = o->keys[k];
      if (strlen(name) != (size_t)(dot - key) || memcmp(name, key, (size_t)(dot - key)) != 0)
        continue;
      if (o->items[k].type == ASG_J_OBJ && (v = lookup(&o->items[k], dot + 1))) return v;
    }
  }
  return NULL;
}

static const char *type_name(const asg_jval *v) {
  switch (v->type) {
  case ASG_J_NULL: return "null";
  case ASG_J_BOOL: return "a boolean";
  case ASG_J_NUM: return v->is_int ? "an integer" : "a number";
  case ASG_J_STR: return "a string";
  case ASG_J_ARR: return "a list";
  default: return "an object";
  }
}

/* The value of key if its type is `want` (ASG_J_NUM with ints_only: an
 * integer); else NULL with the reason set. */
static const asg_jval *get(const asg_hf_config *c, const char *fn, const char *key, asg_jtype want,
                           bool ints_only, const char *want_name) {
  if (!c || !key) {
    asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
    return NULL;
  }
  const asg_jval *v = lookup(&c->root, key);
  if (!v || v->type == ASG_J_NULL) {
    asg__error(ASG_ERR_NOT_FOUND, "%s: '%s' has no key \"%.200s\"%s", fn, c->path, key,
               v ? " (it is null)" : "");
    return NULL;
  }
  if (v->type != want || (ints_only && !v->is_int)) {
    asg__error(ASG_ERR_DTYPE, "%s: '%s': \"%.200s\" is %s, not %s", fn, c->path, key, type_name(v),
               want_name);
    return NULL;
  }
  return v;
}

bool asg_hf_config_has(const asg_hf_config *c, const char *key) {
  const asg_jval *v = c && key ? lookup(&c->root, key) : NULL;
  return v && v->type != ASG_J_NULL;
}

bool asg_hf_config_int(const asg_hf_config *c, const char *key, int64_t *out) {
  const asg_jval *v = get(c, "asg_hf_config_int", key, ASG_J_NUM, true, "an integer");
  if (v && out) *out = v->i;
  return v != NULL;
}

/* JSON numbers always use '.': swap it for the locale's decimal point so
 * that strtod reads them under any LC_NUMERIC. */
static double parse_double(const char *s) {
  char buf[400];
  const char *dp = localeconv()->decimal_point;
  size_t k = 0, dpn = dp && *dp ? strlen(dp) : 1;
  for (; *s && strchr("+-0123456789.eE", *s) && k + dpn < sizeof buf - 1; s++) {
    if (*s == '.' && dp && *dp) {
      memcpy(buf + k, dp, dpn);
      k += dpn;
    } else {
      buf[k++] = *s;
    }
  }
  buf[k] = '\0';
  return strtod(buf, NULL);
}

bool asg_hf_config_float(const asg_hf_config *c, const char *key, double *out) {
  const asg_jval *v = get(c, "asg_hf_config_float", key, ASG_J_NUM, false, "a number");
  if (v && out) *out = v->is_int ? (double)v->i : parse_double(c->text + v->pos);
  return v != NULL;
}

bool asg_hf_config_bool(const asg_hf_config *c, const char *key, bool *out) {
  const asg_jval *v = get(c, "asg_hf_config_bool", key, ASG_J_BOOL, false, "a boolean");
  if (v && out) *out = v->b;
  return v != NULL;
}

const char *asg_hf_config_str(const asg_hf_config *c, const char *key) {
  const asg_jval *v = get(c, "asg_hf_config_str", key, ASG_J_STR, false, "a string");
  return v ? v->s : NULL;
}

int asg_hf_config_int_list(const asg_hf_config *c, const char *key, int64_t *out, int cap) {
  const char *fn = "asg_hf_config_int_list";
  if (cap < 0 || (cap > 0 && !out)) {
    asg__error(ASG_ERR_INVALID, "%s: bad capacity %d or NULL out", fn, cap);
    return -1;
  }
  const asg_jval *v = c && key ? lookup(&c->root, key) : NULL;
  if (v && v->type == ASG_J_NUM) {
    if (!get(c, fn, key, ASG_J_NUM, true, "an integer or a list of integers")) return -1;
    if (cap > 0) out[0] = v->i;
    return 1;
  }
  if (!get(c, fn, key, ASG_J_ARR, false, "an integer or a list of integers")) return -1;
  for (int k = 0; k < v->n; k++)
    if (v->items[k].type != ASG_J_NUM || !v->items[k].is_int) {
      asg__error(ASG_ERR_DTYPE, "%s: '%s': \"%.200s\"[%d] is %s, not an integer", fn, c->path, key,
                 k, type_name(&v->items[k]));
      return -1;
    }
  for (int k = 0; k < v->n && k < cap; k++)
    out[k] = v->items[k].i;
  return v->n;
}
