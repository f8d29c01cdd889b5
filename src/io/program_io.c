/* A program's variables in safetensors files: model weights by name (with
 * dtype conversion and precise mismatch reports) and training checkpoints
 * (all variables + step + run count, for bit-exact resumption). Uses only
 * the public program API, so it works for every backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Must follow the names src/optim/optim.c gives its state variables. */
static const char *const optim_suffixes[] = {".adam_m",     ".adam_v",   ".momentum",
                                             ".square_avg", ".grad_avg", ".grad_acc"};

bool asg_is_optimizer_state(const char *name) {
  if (!name) return false;
  if (strncmp(name, "optim/", 6) == 0) return true;
  for (size_t k = 0; k < sizeof optim_suffixes / sizeof optim_suffixes[0]; k++)
    if (ends_with(name, optim_suffixes[k])) return true;
  return false;
}

/* ---- saving ---- */
typedef struct save_ctx {
  asg_program *p;
  const char **names;
} save_ctx;

static asg_status fetch_var(void *ctx, int i, void *dst, size_t nbytes) {
  save_ctx *c = ctx;
  return asg_program_get_variable(c->p, c->names[i], dst, nbytes);
}

static asg_status save_vars(asg_program *p, const char *path, asg_var_filter filter, int n_meta,
                            const char *const *meta, const char *fn) {
  if (!p || !path) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  if (filter != ASG_VARS_ALL && filter != ASG_VARS_MODEL)
    return asg__error(ASG_ERR_INVALID, "%s: unknown filter %d", fn, (int)filter);
  int nv = asg_program_variable_count(p), n = 0;
  const char **names = malloc(((size_t)nv + 1) * sizeof *names);
  asg_host_tensor *t = malloc(((size_t)nv + 1) * sizeof *t);
  asg_status st = names && t ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  for (int i = 0; i < nv && !st; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    st = asg_program_variable_info(p, i, &name, &dt, &sh);
    if (st || (filter == ASG_VARS_MODEL && asg_is_optimizer_state(name))) continue;
    names[n] = name;
    t[n++] = (asg_host_tensor){dt, sh, NULL}; /* data streamed by fetch_var */
  }
  save_ctx c = {p, names};
  if (!st) st = asg__safetensors_write(path, n, names, t, NULL, n_meta, meta, fetch_var, &c);
  free(names);
  free(t);
  return st;
}

asg_status asg_program_save_variables(asg_program *p, const char *path, asg_var_filter filter) {
  return save_vars(p, path, filter, 0, NULL, "asg_program_save_variables");
}

/* ---- loading ---- */
typedef enum { LOAD_MODEL, LOAD_CHECKPOINT } load_mode;

/* Appends "'name'" (or "'name' detail") to a comma-separated list. */
static void list_add(asg_sbuf *b, int *count, const char *name, const char *detail) {
  asg__sb_printf(b, "%s'%s'%s%s", (*count)++ ? ", " : "", name, detail ? " " : "",
                 detail ? detail : "");
}

static asg_status load_vars(asg_program *p, const char *path, asg_safetensors *f, bool strict,
                            load_mode mode, const char *fn) {
  int nv = asg_program_variable_count(p), nf = asg_safetensors_count(f);
  int *match = malloc(((size_t)nv + 1) * sizeof *match);
  bool *used = calloc((size_t)nf + 1, sizeof *used);
  asg_sbuf missing = {0}, unexpected = {0}, bad = {0};
  int n_missing = 0, n_unexpected = 0, n_bad = 0;
  size_t scratch_bytes = 0;
  asg_status st = match && used ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  for (int i = 0; i < nv && !st; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    match[i] = -1;
    st = asg_program_variable_info(p, i, &name, &dt, &sh);
    if (st) break;
    int j = asg_safetensors_find(f, name);
    if (j < 0) {
      if (strict && !(mode == LOAD_MODEL && asg_is_optimizer_state(name)))
        list_add(&missing, &n_missing, name, NULL);
      continue;
    }
    used[j] = true;
    asg_safetensors_info fi;
    asg_safetensors_info_at(f, j, &fi);
    char b1[128], b2[128], detail[300];
    if (!asg_shape_equal(fi.shape, sh)) {
      snprintf(detail, sizeof detail, "is %s %s in the file but %s %s in the program",
               asg_dtype_name(fi.dtype), asg_shape_str(fi.shape, b1, sizeof b1), asg_dtype_name(dt),
               asg_shape_str(sh, b2, sizeof b2));
      list_add(&bad, &n_bad, name, detail);
      continue;
    }
    if (asg__dtype_is_int(fi.dtype) != asg__dtype_is_int(dt)) {
      snprintf(detail, sizeof detail,
               "is %s in the file but %s in the program (no float/integer conversion)",
               asg_dtype_name(fi.dtype), asg_dtype_name(dt));
      list_add(&bad, &n_bad, name, detail);
      continue;
    }
    match[i] = j;
    size_t vb = (size_t)asg_shape_numel(sh) * asg_dtype_size(dt);
    if (fi.dtype != dt && vb > scratch_bytes) scratch_bytes = vb;
  }
  if (!st && strict)
    for (int j = 0; j < nf; j++)
      if (!used[j]) {
        asg_safetensors_info fi;
        asg_safetensors_info_at(f, j, &fi);
        list_add(&unexpected, &n_unexpected, fi.name, NULL);
      }
  if (!st && (n_missing || n_unexpected || n_bad)) {
    asg_sbuf msg = {0};
    asg__sb_printf(&msg, "%s: '%s' does not match the program:", fn, path);
    if (n_missing) asg__sb_printf(&msg, " missing (%d): %s;", n_missing, missing.s);
    if (n_unexpected) asg__sb_printf(&msg, " unexpected (%d): %s;", n_unexpected, unexpected.s);
    if (n_bad) asg__sb_printf(&msg, " mis-shaped (%d): %s;", n_bad, bad.s);
    if (msg.len) msg.s[--msg.len] = '\0'; /* the last ';' */
    st = asg__error(n_bad ? ASG_ERR_SHAPE : ASG_ERR_NOT_FOUND, "%s",
                    msg.oom ? "out of memory composing the mismatch report" : msg.s);
    asg__sb_free(&msg);
  }
  /* everything checked: now write (nothing was changed if we failed above) */
  void *scratch = NULL;
  if (!st && scratch_bytes && !(scratch = malloc(scratch_bytes)))
    st = asg__error(ASG_ERR_OOM, "%s: out of memory (%zu bytes)", fn, scratch_bytes);
  for (int i = 0; i < nv && !st; i++) {
    if (match[i] < 0) continue;
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    asg_safetensors_info fi;
    asg_program_variable_info(p, i, &name, &dt, &sh);
    asg_safetensors_info_at(f, match[i], &fi);
    size_t vb = (size_t)asg_shape_numel(sh) * asg_dtype_size(dt);
    if (fi.dtype == dt) { /* straight from the mapping */
      st = asg_program_set_variable(p, name, asg_safetensors_data(f, match[i], NULL), vb);
    } else {
      st = asg_safetensors_read(f, match[i], dt, scratch, vb);
      if (!st) st = asg_program_set_variable(p, name, scratch, vb);
    }
  }
  free(scratch);
  free(match);
  free(used);
  asg__sb_free(&missing);
  asg__sb_free(&unexpected);
  asg__sb_free(&bad);
  return st;
}

asg_status asg_program_load_variables(asg_program *p, const char *path, bool strict) {
  if (!p || !path) return asg__error(ASG_ERR_INVALID, "asg_program_load_variables: NULL argument");
  asg_safetensors *f;
  asg_status st = asg__safetensors_open(path, &f);
  if (st) return st;
  st = load_vars(p, path, f, strict, LOAD_MODEL, "asg_program_load_variables");
  asg_safetensors_close(f);
  return st;
}

/* ---- training checkpoints ---- */
#define CKPT_FORMAT "asg-checkpoint"

asg_status asg_checkpoint_save(asg_program *p, const char *path, int64_t step) {
  if (!p || !path) return asg__error(ASG_ERR_INVALID, "asg_checkpoint_save: NULL argument");
  char ver[24], stp[24], runs[24];
  snprintf(ver, sizeof ver, "%d", ASG_CHECKPOINT_VERSION);
  snprintf(stp, sizeof stp, "%lld", (long long)step);
  snprintf(runs, sizeof runs, "%llu", (unsigned long long)asg_program_run_count(p));
  const char *meta[] = {"format",         CKPT_FORMAT,
                        "format_version", ver,
                        "step",           stp,
                        "run_count",      runs,
                        "asg_version",    ASG_VERSION_STRING,
                        "backend",        asg_program_backend(p)};
  return save_vars(p, path, ASG_VARS_ALL, (int)(sizeof meta / sizeof meta[0] / 2), meta,
                   "asg_checkpoint_save");
}

/* A decimal integer filling the whole string (optional '-' when neg_ok). */
static bool parse_dec(const char *s, bool neg_ok, uint64_t max, bool *neg, uint64_t *out) {
  *neg = false;
  if (!s) return false;
  if (*s == '-' && neg_ok) *neg = true, s++;
  if (!*s) return false;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    unsigned d = (unsigned)(*s - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

asg_status asg_checkpoint_load(asg_program *p, const char *path, int64_t *step) {
  if (!p || !path) return asg__error(ASG_ERR_INVALID, "asg_checkpoint_load: NULL argument");
  asg_safetensors *f;
  asg_status st = asg__safetensors_open(path, &f);
  if (st) return st;
  const char *fmt = asg_safetensors_metadata(f, "format");
  const char *ver = asg_safetensors_metadata(f, "format_version");
  bool neg = false;
  uint64_t v = 0, runs = 0, s = 0;
  if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
    st = asg__error(
        ASG_ERR_FORMAT,
        "asg_checkpoint_load: '%s' is not an ASG checkpoint (metadata \"format\" is %s%s%s; "
        "use asg_program_load_variables for weight files)",
        path, fmt ? "\"" : "", fmt ? fmt : "absent", fmt ? "\"" : "");
  else if (!parse_dec(ver, false, UINT32_MAX, &neg, &v) || v == 0)
    st = asg__error(ASG_ERR_FORMAT, "asg_checkpoint_load: '%s': bad format_version", path);
  else if (v > ASG_CHECKPOINT_VERSION)
    st = asg__error(ASG_ERR_UNSUPPORTED,
                    "asg_checkpoint_load: '%s' has checkpoint format version %llu; this ASG reads "
                    "up to %d",
                    path, (unsigned long long)v, ASG_CHECKPOINT_VERSION);
  else if (!parse_dec(asg_safetensors_metadata(f, "run_count"), false, UINT64_MAX, &neg, &runs))
    st = asg__error(ASG_ERR_FORMAT, "asg_checkpoint_load: '%s': bad or absent run_count", path);
  else if (!parse_dec(asg_safetensors_metadata(f, "step"), true, (uint64_t)INT64_MAX, &neg, &s))
    st = asg__error(ASG_ERR_FORMAT, "asg_checkpoint_load: '%s': bad or absent step", path);
  if (!st) st = load_vars(p, path, f, true, LOAD_CHECKPOINT, "asg_checkpoint_load");
  asg_safetensors_close(f);
  if (st) return st;
  asg_program_set_run_count(p, runs); /* the random streams continue where they stopped */
  if (step) *step = neg ? -(int64_t)s : (int64_t)s;
  return ASG_OK;
}
