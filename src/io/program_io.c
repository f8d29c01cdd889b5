/* A program's variables in safetensors files: model weights by name (with
 * dtype conversion and precise mismatch reports) and training checkpoints
 * (all variables + step + run count, for bit-exact resumption). Uses only
 * the public program API, so it works for every backend. */
#include <math.h>
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
  const asg_dtype *dtypes;
  bool require_finite;
  const char *fn, *path;
} save_ctx;

/* Index of the first NaN or infinity among n elements of dt, or -1. */
static int64_t first_nonfinite(asg_dtype dt, const void *data, size_t n) {
  const unsigned char *b = data;
  for (size_t i = 0; i < n; i++) {
    bool bad = false;
    switch (dt) {
    case ASG_F32: {
      float v;
      memcpy(&v, b + 4 * i, 4);
      bad = !isfinite(v);
      break;
    }
    case ASG_F64: {
      double v;
      memcpy(&v, b + 8 * i, 8);
      bad = !isfinite(v);
      break;
    }
    case ASG_F16:
    case ASG_BF16: { /* exponent all ones: infinity or NaN */
      uint16_t h;
      memcpy(&h, b + 2 * i, 2);
      uint16_t e = dt == ASG_F16 ? 0x7c00 : 0x7f80;
      bad = (h & e) == e;
      break;
    }
    default: return -1; /* integers are always finite */
    }
    if (bad) return (int64_t)i;
  }
  return -1;
}

/* Streams variable i into dst; with require_finite, refuses NaN/Inf before
 * any byte of it reaches the file (the writer then drops its temporary, so
 * the previous file stays). */
static asg_status fetch_var(void *ctx, int i, void *dst, size_t nbytes) {
  save_ctx *c = ctx;
  asg_status st = asg_program_get_variable(c->p, c->names[i], dst, nbytes);
  if (st || !c->require_finite) return st;
  size_t es = asg_dtype_size(c->dtypes[i]);
  int64_t bad = es ? first_nonfinite(c->dtypes[i], dst, nbytes / es) : -1;
  if (bad < 0) return ASG_OK;
  double v = NAN;
  if (c->dtypes[i] == ASG_F32 || c->dtypes[i] == ASG_F64)
    asg_convert((const char *)dst + (size_t)bad * es, c->dtypes[i], &v, ASG_F64, 1);
  return asg__error(ASG_ERR_INVALID,
                    "%s: variable '%.200s' holds %s at element %lld; nothing was saved ('%s' is "
                    "unchanged)",
                    c->fn, c->names[i],
                    isnan(v) ? "NaN"
                    : v > 0  ? "+Inf"
                             : "-Inf",
                    (long long)bad, c->path);
}

static asg_status save_vars(asg_program *p, const char *path, asg_var_filter filter, int n_meta,
                            const char *const *meta, const asg_save_options *opt, const char *fn) {
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
  asg_dtype *dts = malloc(((size_t)n + 1) * sizeof *dts);
  if (!st && !dts) st = asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  for (int i = 0; i < n && !st; i++)
    dts[i] = t[i].dtype;
  save_ctx c = {p, names, dts, opt && opt->require_finite, fn, path};
  if (!st) st = asg__safetensors_write(path, n, names, t, NULL, n_meta, meta, fetch_var, &c);
  free(names);
  free(t);
  free(dts);
  return st;
}

asg_status asg_program_save_variables(asg_program *p, const char *path, asg_var_filter filter) {
  return save_vars(p, path, filter, 0, NULL, NULL, "asg_program_save_variables");
}

asg_status asg_program_save_variables_ex(asg_program *p, const char *path, asg_var_filter filter,
                                         const asg_save_options *opt) {
  return save_vars(p, path, filter, 0, NULL, opt, "asg_program_save_variables");
}

/* ---- loading ---- */
typedef enum { LOAD_MODEL, LOAD_CHECKPOINT } load_mode;

/* Mismatch reports (asg_name_list, io_internal.h): items are kept whole
 * (each at most ITEM_MAX bytes) and summarized when the report is composed
 * ("'a', 'b' and 74 more") so that the whole report fits the error message
 * (asg_last_error() holds 1.5 KB). */
enum { ITEM_MAX = 300, MSG_MAX = 1400, LIST_RESERVE = 120, PATH_SHOWN = 200 };
typedef asg_name_list name_list;

void asg__names_add(name_list *l, const char *name, const char *detail) {
  char item[ITEM_MAX + 1];
  int len = snprintf(item, sizeof item, "'%s'%s%s", name, detail ? " " : "", detail ? detail : "");
  if (len >= (int)sizeof item) memcpy(item + sizeof item - 4, "...", 4); /* a huge name */
  asg__sb_putn(&l->items, item, strlen(item) + 1);
  l->count++;
}

/* Appends " <what> (count): 'a', 'b' and N more;" when the list is not
 * empty, keeping the report within MSG_MAX less `reserve` bytes (room for
 * the lists still to come). */
void asg__names_put(asg_sbuf *msg, const char *what, const name_list *l, size_t reserve) {
  if (!l->count) return;
  asg__sb_printf(msg, " %s (%d): ", what, l->count);
  size_t limit = MSG_MAX - reserve - 24; /* 24: " and 2147483647 more;" */
  const char *it = l->items.s;
  int shown = 0;
  for (; shown < l->count && it; shown++) {
    size_t n = strlen(it), sep = shown ? 2 : 0;
    if (msg->len + sep + n > limit && shown) break;
    if (msg->len + sep + n > limit) n = limit > msg->len ? limit - msg->len : 0; /* first: cut */
    if (sep) asg__sb_puts(msg, ", ");
    asg__sb_putn(msg, it, n);
    it += strlen(it) + 1;
  }
  if (shown < l->count) asg__sb_printf(msg, " and %d more", l->count - shown);
  asg__sb_puts(msg, ";");
}

size_t asg__names_reserve(const name_list *const *later, int n) {
  size_t r = 0;
  for (int k = 0; k < n; k++)
    r += later[k]->count ? LIST_RESERVE : 0;
  return r;
}

/* A path for a message: its last PATH_SHOWN bytes when longer. */
static const char *short_path(const char *path, const char **ellipsis) {
  size_t n = strlen(path);
  *ellipsis = n > PATH_SHOWN ? "..." : "";
  return n > PATH_SHOWN ? path + n - PATH_SHOWN : path;
}

/* A batch norm's "<layer>.num_batches_tracked" (i64 scalar). Files saved
 * before ASG kept it lack it: a strict load sets it to 0, as PyTorch loads
 * such state dicts, instead of calling it missing. Eval programs never read
 * it (so lack it): the file's is not "unexpected" there. */
static bool is_batch_count(const char *name, asg_dtype dt, asg_shape sh) {
  static const char suf[] = ".num_batches_tracked";
  size_t n = strlen(name), k = sizeof suf - 1;
  return dt == ASG_I64 && sh.ndim == 0 && n > k && strcmp(name + n - k, suf) == 0;
}

static asg_status load_vars(asg_program *p, const char *path, asg_safetensors *f, bool strict,
                            load_mode mode, const char *fn, int *n_loaded) {
  int nv = asg_program_variable_count(p), nf = asg_safetensors_count(f), n_match = 0;
  int *match = malloc(((size_t)nv + 1) * sizeof *match);
  bool *used = calloc((size_t)nf + 1, sizeof *used);
  name_list missing = {0}, unexpected = {0}, bad = {0};
  size_t scratch_bytes = 0;
  bool has_optim = false; /* a program without optimizer state ignores the file's */
  const char *ell, *spath = short_path(path, &ell);
  asg_status st = match && used ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  for (int i = 0; i < nv && !st; i++) {
    const char *name;
    if (!asg_program_variable_info(p, i, &name, NULL, NULL) && asg_is_optimizer_state(name))
      has_optim = true;
  }
  for (int i = 0; i < nv && !st; i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    match[i] = -1;
    st = asg_program_variable_info(p, i, &name, &dt, &sh);
    if (st) break;
    int j = asg_safetensors_find(f, name);
    if (j < 0) {
      if (strict && is_batch_count(name, dt, sh))
        match[i] = -2; /* set to 0 below */
      else if (strict && !(mode == LOAD_MODEL && asg_is_optimizer_state(name)))
        asg__names_add(&missing, name, NULL);
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
      asg__names_add(&bad, name, detail);
      continue;
    }
    if (asg__dtype_is_int(fi.dtype) != asg__dtype_is_int(dt)) {
      snprintf(detail, sizeof detail,
               "is %s in the file but %s in the program (no float/integer conversion)",
               asg_dtype_name(fi.dtype), asg_dtype_name(dt));
      asg__names_add(&bad, name, detail);
      continue;
    }
    match[i] = j;
    n_match++;
    size_t vb = (size_t)asg_shape_numel(sh) * asg_dtype_size(dt);
    if (fi.dtype != dt && vb > scratch_bytes) scratch_bytes = vb;
  }
  if (!st && strict)
    for (int j = 0; j < nf; j++) {
      asg_safetensors_info fi;
      asg_safetensors_info_at(f, j, &fi);
      if (!used[j] && (has_optim || !asg_is_optimizer_state(fi.name)) &&
          !is_batch_count(fi.name, fi.dtype, fi.shape))
        asg__names_add(&unexpected, fi.name, NULL);
    }
  if (!st && (missing.count || unexpected.count || bad.count)) {
    asg_sbuf msg = {0};
    asg__sb_printf(&msg, "%s: '%s%s' does not match the program:", fn, ell, spath);
    const name_list *later[2] = {&unexpected, &bad};
    asg__names_put(&msg, "missing", &missing, asg__names_reserve(later, 2));
    asg__names_put(&msg, "unexpected", &unexpected, asg__names_reserve(later + 1, 1));
    asg__names_put(&msg, "mis-shaped", &bad, 0);
    if (msg.len) msg.s[--msg.len] = '\0'; /* the last ';' */
    st = asg__error(bad.count ? ASG_ERR_SHAPE : ASG_ERR_NOT_FOUND, "%s",
                    msg.oom ? "out of memory composing the mismatch report" : msg.s);
    asg__sb_free(&msg);
  }
  if (!st && n_match == 0 && nv > 0) { /* a non-strict load that would do nothing */
    name_list file = {0}, prog = {0};
    for (int j = 0; j < nf; j++) {
      asg_safetensors_info fi;
      asg_safetensors_info_at(f, j, &fi);
      asg__names_add(&file, fi.name, NULL);
    }
    for (int i = 0; i < nv; i++) {
      const char *name;
      if (!asg_program_variable_info(p, i, &name, NULL, NULL)) asg__names_add(&prog, name, NULL);
    }
    asg_sbuf msg = {0};
    asg__sb_printf(&msg, "%s: no tensor of '%s%s' matches a variable of the program by name;", fn,
                   ell, spath);
    const name_list *later[1] = {&prog};
    asg__names_put(&msg, "file tensors", &file, asg__names_reserve(later, 1));
    asg__names_put(&msg, "program variables", &prog, 0);
    if (msg.len) msg.s[--msg.len] = '\0';
    st = asg__error(ASG_ERR_NOT_FOUND, "%s", msg.oom ? "no tensor matches the program" : msg.s);
    asg__sb_free(&msg);
    asg__sb_free(&file.items);
    asg__sb_free(&prog.items);
  }
  /* everything checked: now write (nothing was changed if we failed above) */
  void *scratch = NULL;
  if (!st && scratch_bytes && !(scratch = malloc(scratch_bytes)))
    st = asg__error(ASG_ERR_OOM, "%s: out of memory (%zu bytes)", fn, scratch_bytes);
  for (int i = 0; i < nv && !st; i++) {
    if (match[i] == -2) {
      const char *name;
      int64_t zero = 0;
      asg_program_variable_info(p, i, &name, NULL, NULL);
      st = asg_program_set_variable(p, name, &zero, sizeof zero);
      continue;
    }
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
  if (!st && n_loaded) *n_loaded = n_match;
  free(scratch);
  free(match);
  free(used);
  asg__sb_free(&missing.items);
  asg__sb_free(&unexpected.items);
  asg__sb_free(&bad.items);
  return st;
}

asg_status asg_program_load_variables_ex(asg_program *p, const char *path, bool strict,
                                         int *n_loaded) {
  if (n_loaded) *n_loaded = 0;
  if (!p || !path) return asg__error(ASG_ERR_INVALID, "asg_program_load_variables: NULL argument");
  asg_safetensors *f;
  asg_status st = asg__safetensors_open(path, &f);
  if (st) return st;
  st = load_vars(p, path, f, strict, LOAD_MODEL, "asg_program_load_variables", n_loaded);
  asg_safetensors_close(f);
  return st;
}

asg_status asg_program_load_variables(asg_program *p, const char *path, bool strict) {
  return asg_program_load_variables_ex(p, path, strict, NULL);
}

/* ---- training checkpoints ---- */
#define CKPT_FORMAT "asg-checkpoint"

asg_status asg_checkpoint_save(asg_program *p, const char *path, int64_t step) {
  return asg_checkpoint_save_ex(p, path, step, NULL);
}

asg_status asg_checkpoint_save_ex(asg_program *p, const char *path, int64_t step,
                                  const asg_save_options *opt) {
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
  return save_vars(p, path, ASG_VARS_ALL, (int)(sizeof meta / sizeof meta[0] / 2), meta, opt,
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
  if (!st) st = load_vars(p, path, f, true, LOAD_CHECKPOINT, "asg_checkpoint_load", NULL);
  asg_safetensors_close(f);
  if (st) return st;
  asg_program_set_run_count(p, runs); /* the random streams continue where they stopped */
  if (step) *step = neg ? -(int64_t)s : (int64_t)s;
  return ASG_OK;
}
