/* Checkpoint manager: a directory of checkpoints listed by a manifest,
 *   {"format": "asg-checkpoints", "version": 1, "mode": "min",
 *    "checkpoints": [{"step": 100, "metric": "0.25"}, ...]}
 * (metrics as "%.17g" strings, "" for none: the JSON reader keeps integers
 * only). File names follow from the prefix and step alone, so a manifest
 * cannot point outside the directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checks.h"
#include "io/atomic_file.h"

#define WHO "asg_ckpt_manager"
#define MAX_MANIFEST ((size_t)16 << 20)

typedef struct ckpt {
  int64_t step;
  double metric; /* NaN: none */
} ckpt;

struct asg_ckpt_manager {
  char *dir, *prefix, *manifest;
  int keep_last;
  bool keep_best;
  asg_monitor_mode mode;
  asg_save_options save;
  bool has_save;
  ckpt *list;
  int n;
  char path[4200]; /* asg_ckpt_manager_info's path */
};

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *s = malloc(a + b + 2);
  if (s) snprintf(s, a + b + 2, "%s/%s", dir, name);
  return s;
}

static void file_name(const asg_ckpt_manager *m, int64_t step, char *buf, size_t n) {
  snprintf(buf, n, "%s/%s-%08lld.safetensors", m->dir, m->prefix, (long long)step);
}

/* The step in "<prefix>-<digits>.safetensors", -1 otherwise. */
static int64_t step_of(const asg_ckpt_manager *m, const char *name) {
  size_t pl = strlen(m->prefix);
  if (strncmp(name, m->prefix, pl) != 0 || name[pl] != '-') return -1;
  const char *p = name + pl + 1;
  int64_t v = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    if (digits >= 18) return -1;
    v = v * 10 + (*p - '0');
  }
  return digits >= 8 && !strcmp(p, ".safetensors") ? v : -1;
}

static int best_of(const asg_ckpt_manager *m, const ckpt *l, int n) {
  int b = -1;
  for (int i = 0; i < n; i++)
    if (!isnan(l[i].metric) &&
        (b < 0 || asg_monitor_improves(m->mode, 0, l[i].metric, l[b].metric)))
      b = i;
  return b;
}

static asg_status load_manifest(asg_ckpt_manager *m) {
  struct stat sb;
  if (stat(m->manifest, &sb) != 0 && errno == ENOENT) return ASG_OK; /* a new directory */
  asg_status st;
  int fd = asg__open_regular(m->manifest, WHO, &st);
  if (fd < 0) return st;
  char *text = NULL;
  size_t len = 0;
  if (fstat(fd, &sb) != 0 || (size_t)sb.st_size > MAX_MANIFEST) {
    close(fd);
    return asg__error(ASG_ERR_FORMAT, WHO ": manifest '%s' is larger than %zu bytes", m->manifest,
                      MAX_MANIFEST);
  }
  text = malloc((size_t)sb.st_size + 1);
  if (!text) {
    close(fd);
    return asg__error(ASG_ERR_OOM, WHO ": out of memory");
  }
  for (ssize_t r; len < (size_t)sb.st_size; len += (size_t)r)
    if ((r = read(fd, text + len, (size_t)sb.st_size - len)) <= 0) break;
  close(fd);
  asg_jval v;
  char err[200];
  if (!asg__json_parse(text, len, &v, err, sizeof err)) {
    free(text);
    return asg__error(ASG_ERR_FORMAT, WHO ": manifest '%s': %s", m->manifest, err);
  }
  free(text);
  const char *why = NULL;
  const asg_jval *list = NULL;
  bool fmt_ok = false;
  for (int k = 0; v.type == ASG_J_OBJ && k < v.n; k++) {
    if (!strcmp(v.keys[k], "format"))
      fmt_ok = v.items[k].type == ASG_J_STR && !strcmp(v.items[k].s, "asg-checkpoints");
    else if (!strcmp(v.keys[k], "checkpoints"))
      list = &v.items[k];
  }
  if (!fmt_ok)
    why = "it is not an asg checkpoint manifest";
  else if (!list || list->type != ASG_J_ARR)
    why = "no \"checkpoints\" array";
  if (!why && list->n > 0 && !(m->list = calloc((size_t)list->n, sizeof *m->list)))
    why = "out of memory";
  for (int i = 0; !why && i < list->n; i++) {
    const asg_jval *e = &list->items[i];
    int64_t step = -1;
    double metric = NAN;
    for (int k = 0; e->type == ASG_J_OBJ && k < e->n; k++) {
      const asg_jval *x = &e->items[k];
      if (!strcmp(e->keys[k], "step") && x->type == ASG_J_NUM && x->is_int && x->i >= 0)
        step = x->i;
      else if (!strcmp(e->keys[k], "metric") && x->type == ASG_J_STR && x->s[0]) {
        char *end;
        metric = strtod(x->s, &end);
        if (*end) step = -2;
      }
    }
    for (int j = 0; j < m->n; j++)
      if (m->list[j].step == step) step = -3;
    if (step < 0)
      why = step == -3 ? "a step is listed twice" : "an entry lacks a valid step or metric";
    else
      m->list[m->n++] = (ckpt){step, metric};
  }
  asg__json_free(&v);
  if (why) return asg__error(ASG_ERR_FORMAT, WHO ": manifest '%s': %s", m->manifest, why);
  return ASG_OK;
}

asg_ckpt_manager *asg_ckpt_manager_open(const char *dir, const asg_ckpt_manager_options *opt) {
  const char *prefix = opt && opt->prefix ? opt->prefix : "ckpt";
  size_t pl = strlen(prefix);
  bool ok = pl > 0 && pl <= 64;
  for (size_t i = 0; i < pl; i++) {
    char c = prefix[i];
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-');
  }
  if (!dir || !*dir || strlen(dir) > 4000 || !ok || (opt && (unsigned)opt->mode > ASG_MODE_MAX)) {
    asg__error(ASG_ERR_INVALID,
               WHO ": bad directory or prefix '%s' (letters, digits, '_', '.', "
                   "'-'; at most 64) or mode",
               prefix);
    return NULL;
  }
  struct stat sb;
  if (mkdir(dir, 0755) != 0 && !(errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))) {
    asg__error(ASG_ERR_IO, WHO ": cannot create directory '%s': %s", dir,
               errno == EEXIST ? "a file of that name exists" : strerror(errno));
    return NULL;
  }
  asg_ckpt_manager *m = calloc(1, sizeof *m);
  char mname[80];
  snprintf(mname, sizeof mname, "%s.json", prefix);
  if (m) {
    m->dir = asg__strdup(dir);
    m->prefix = asg__strdup(prefix);
    m->manifest = join(dir, mname);
  }
  if (!m || !m->dir || !m->prefix || !m->manifest) {
    asg__error(ASG_ERR_OOM, WHO ": out of memory");
    asg_ckpt_manager_free(m);
    return NULL;
  }
  m->keep_last = opt && opt->keep_last ? opt->keep_last : 3;
  m->keep_best = opt && opt->keep_best;
  m->mode = opt ? opt->mode : ASG_MODE_MIN;
  if (opt && opt->save) {
    m->save = *opt->save;
    m->has_save = true;
  }
  if (load_manifest(m)) {
    asg_ckpt_manager_free(m);
    return NULL;
  }
  return m;
}

void asg_ckpt_manager_free(asg_ckpt_manager *m) {
  if (!m) return;
  free(m->dir);
  free(m->prefix);
  free(m->manifest);
  free(m->list);
  free(m);
}

static asg_status write_manifest(const asg_ckpt_manager *m, const ckpt *l, int n) {
  asg_sbuf b = {0};
  asg__sb_printf(&b,
                 "{\"format\": \"asg-checkpoints\", \"version\": 1, \"mode\": \"%s\",\n"
                 " \"checkpoints\": [",
                 m->mode == ASG_MODE_MAX ? "max" : "min");
  for (int i = 0; i < n; i++) {
    char metric[40] = "";
    if (!isnan(l[i].metric)) snprintf(metric, sizeof metric, "%.17g", l[i].metric);
    asg__sb_printf(&b, "%s\n  {\"step\": %lld, \"metric\": \"%s\"}", i ? "," : "",
                   (long long)l[i].step, metric);
  }
  asg__sb_puts(&b, "\n ]}\n");
  if (b.oom) {
    asg__sb_free(&b);
    return asg__error(ASG_ERR_OOM, WHO ": out of memory");
  }
  asg__afile f;
  asg_status st = asg__afile_open(&f, m->manifest);
  asg__afile_write(&f, b.s, b.len);
  asg_status cst = asg__afile_close(&f, st != ASG_OK);
  asg__sb_free(&b);
  return st ? st : cst;
}

/* Removes "<prefix>-<digits>.safetensors" files that l does not list. */
static void remove_unlisted(const asg_ckpt_manager *m, const ckpt *l, int n) {
  DIR *d = opendir(m->dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    int64_t s = step_of(m, e->d_name);
    if (s < 0) continue;
    bool listed = false;
    for (int i = 0; i < n && !listed; i++)
      listed = l[i].step == s;
    struct stat sb;
    if (!listed && fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(sb.st_mode))
      (void)unlinkat(dirfd(d), e->d_name, 0);
  }
  closedir(d);
}

asg_status asg_ckpt_manager_save(asg_ckpt_manager *m, asg_program *p, int64_t step, double metric) {
  if (!m || !p || step < 0)
    return asg__error(ASG_ERR_INVALID, WHO ": NULL manager or program, or step %lld < 0",
                      (long long)step);
  if (!isfinite(metric)) metric = NAN; /* an infinity is no best either */
  char path[4200];
  file_name(m, step, path, sizeof path);
  asg_status st = asg_checkpoint_save_ex(p, path, step, m->has_save ? &m->save : NULL);
  if (st) return st;
  /* the new list: the old one without this step, then this step */
  ckpt *l = malloc(((size_t)m->n + 1) * sizeof *l);
  if (!l) return asg__error(ASG_ERR_OOM, WHO ": out of memory");
  int n = 0;
  for (int i = 0; i < m->n; i++)
    if (m->list[i].step != step) l[n++] = m->list[i];
  l[n++] = (ckpt){step, metric};
  int best = m->keep_best ? best_of(m, l, n) : -1, kept = 0;
  for (int i = 0; i < n; i++) /* keep the last K and the best, in order */
    if (m->keep_last < 0 || i >= n - m->keep_last || i == best) l[kept++] = l[i];
  st = write_manifest(m, l, kept);
  if (st) {
    free(l);
    return st;
  }
  free(m->list);
  m->list = l;
  m->n = kept;
  remove_unlisted(m, l, kept);
  return ASG_OK;
}

int asg_ckpt_manager_count(const asg_ckpt_manager *m) { return m ? m->n : 0; }

int asg_ckpt_manager_best(const asg_ckpt_manager *m) { return m ? best_of(m, m->list, m->n) : -1; }

asg_status asg_ckpt_manager_info(const asg_ckpt_manager *m, int i, int64_t *step, double *metric,
                                 const char **path) {
  if (!m || i < 0 || i >= m->n)
    return asg__error(ASG_ERR_INVALID, WHO ": no checkpoint %d (%d kept)", i, m ? m->n : 0);
  if (step) *step = m->list[i].step;
  if (metric) *metric = m->list[i].metric;
  if (path) {
    asg_ckpt_manager *mm = (asg_ckpt_manager *)m; /* the path buffer is scratch */
    file_name(m, m->list[i].step, mm->path, sizeof mm->path);
    *path = mm->path;
  }
  return ASG_OK;
}

static asg_status restore(asg_ckpt_manager *m, asg_program *p, int i, int64_t *step,
                          const char *which) {
  if (!m || !p) return asg__error(ASG_ERR_INVALID, WHO ": NULL manager or program");
  if (i < 0)
    return asg__error(ASG_ERR_NOT_FOUND, WHO ": '%s' holds no %s checkpoint", m->dir, which);
  char path[4200];
  file_name(m, m->list[i].step, path, sizeof path);
  int64_t got = -1;
  asg_status st = asg_checkpoint_load(p, path, &got);
  if (st) return st;
  if (got != m->list[i].step)
    return asg__error(ASG_ERR_FORMAT, WHO ": '%s' holds step %lld, the manifest says %lld", path,
                      (long long)got, (long long)m->list[i].step);
  if (step) *step = got;
  return ASG_OK;
}

asg_status asg_ckpt_manager_restore_latest(asg_ckpt_manager *m, asg_program *p, int64_t *step) {
  return restore(m, p, m ? m->n - 1 : -1, step, "");
}

asg_status asg_ckpt_manager_restore_best(asg_ckpt_manager *m, asg_program *p, int64_t *step) {
  return restore(m, p, asg_ckpt_manager_best(m), step, "best (with a metric)");
}
