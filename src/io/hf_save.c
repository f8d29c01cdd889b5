/* Saving a program's variables in the Hugging Face layout: the inverse of
 * the load rules (asg/hf.h), one model.safetensors or shards with
 * model.safetensors.index.json as transformers writes them. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/hf_internal.h"

#define FN "asg_hf_save"
#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define SHARD_GLOB "model-*-of-*.safetensors"

/* One variable on its way out. */
typedef struct out_var {
  const char *var;
  asg_dtype dt;
  asg_shape sh; /* the variable's */
  char *name;   /* its checkpoint tensor's name (prefix included) */
  const asg_hf_rule *rule;
  hf_caps caps; /* the rule's captures (point into var) */
  int order;    /* variable index: output follows the program's order */
} out_var;

/* One checkpoint tensor: 1 variable, or `split` of them (parts[k]: part k). */
typedef struct out_tensor {
  const char *name;
  asg_dtype dt, fdt;
  asg_shape sh; /* in the file */
  out_var **parts;
  int split, axis;
  int shard;
} out_tensor;

typedef struct saver {
  asg_program *p;
  out_tensor *t;
  int nt;
  char *scratch; /* 2 * the largest variable, for the parts */
  size_t part_bytes;
  const int *shard_items; /* the tensors of the shard being written */
} saver;

static int cmp_out_name(const void *x, const void *y) {
  const out_var *a = *(const out_var *const *)x, *b = *(const out_var *const *)y;
  int c = strcmp(a->name, b->name);
  return c ? c : a->order - b->order;
}

static int cmp_tensor_order(const void *x, const void *y) {
  const out_tensor *a = x, *b = y;
  int oa = a->parts[0]->order, ob = b->parts[0]->order;
  for (int k = 1; k < a->split; k++)
    oa = a->parts[k]->order < oa ? a->parts[k]->order : oa;
  for (int k = 1; k < b->split; k++)
    ob = b->parts[k]->order < ob ? b->parts[k]->order : ob;
  return oa - ob;
}

/* Names variable v's checkpoint tensor: the first rule whose `to` matches. */
static asg_status name_var(const asg_hf_save_opts *o, out_var *v) {
  v->rule = NULL;
  for (int r = 0; r < o->n_rules && !v->rule; r++)
    if (o->rules[r].to && asg__hf_match(o->rules[r].to, v->var, &v->caps)) v->rule = &o->rules[r];
  char *base = v->rule ? asg__hf_subst(v->rule->from, &v->caps) : NULL;
  const char *b = v->rule ? base : v->var, *px = o->prefix ? o->prefix : "";
  v->name = b ? malloc(strlen(px) + strlen(b) + 1) : NULL;
  if (v->name) {
    memcpy(v->name, px, strlen(px));
    memcpy(v->name + strlen(px), b, strlen(b) + 1);
  }
  free(base);
  return v->name ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
}

/* The name of the variable that part `part` of v's split would come from. */
static char *part_var_name(const asg_hf_save_opts *o, const out_var *v, int part) {
  for (int r = 0; r < o->n_rules; r++) {
    const asg_hf_rule *q = &o->rules[r];
    if (q->to && q->part == part && strcmp(q->from, v->rule->from) == 0)
      return asg__hf_subst(q->to, &v->caps);
  }
  return NULL;
}

/* Builds tensor t from the variables g[0..n) that share one name. */
static asg_status make_tensor(const asg_hf_save_opts *o, out_var **g, int n, out_tensor *t) {
  const out_var *v0 = g[0];
  int split = v0->rule && v0->rule->split > 1 ? v0->rule->split : 1;
  *t = (out_tensor){.name = v0->name, .dt = v0->dt, .split = split};
  if (split == 1 && n > 1)
    return asg__error(ASG_ERR_INVALID,
                      "%s: variables '%.200s' and '%.200s' both map to checkpoint tensor '%.200s'",
                      FN, g[0]->var, g[1]->var, v0->name);
  t->parts = calloc((size_t)split, sizeof *t->parts);
  if (!t->parts) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  for (int k = 0; k < n; k++) {
    const asg_hf_rule *r = g[k]->rule;
    int part = split == 1                                                       ? 0
               : r && r->split == split && strcmp(r->from, v0->rule->from) == 0 ? r->part
                                                                                : -1;
    if (part < 0)
      return asg__error(ASG_ERR_INVALID,
                        "%s: variables '%.200s' and '%.200s' both map to checkpoint tensor "
                        "'%.200s' but are not parts of one split",
                        FN, v0->var, g[k]->var, v0->name);
    if (t->parts[part])
      return asg__error(ASG_ERR_INVALID,
                        "%s: variables '%.200s' and '%.200s' both map to part %d of checkpoint "
                        "tensor '%.200s'",
                        FN, t->parts[part]->var, g[k]->var, part, v0->name);
    t->parts[part] = g[k];
  }
  for (int k = 0; k < split; k++) {
    if (t->parts[k]) continue;
    char *want = part_var_name(o, v0, k);
    asg_status st =
        want ? asg__error(ASG_ERR_NOT_FOUND,
                          "%s: checkpoint tensor '%.200s' is saved whole, but part %d of %d, "
                          "variable '%.200s', is missing (or excluded)",
                          FN, v0->name, k, split, want)
             : asg__error(ASG_ERR_INVALID,
                          "%s: checkpoint tensor '%.200s': no rule takes part %d of %d of '%.200s'",
                          FN, v0->name, k, split, v0->rule->from);
    free(want);
    return st;
  }
  /* every part in the file's orientation: one shape, one dtype */
  asg_shape ps = {0};
  for (int k = 0; k < split; k++) {
    const out_var *v = t->parts[k];
    asg_shape s = v->sh;
    char b1[128], b2[128];
    if (v->rule && v->rule->transpose) {
      if (s.ndim != 2)
        return asg__error(ASG_ERR_SHAPE, "%s: variable '%.200s' is %s, not 2-D: cannot transpose",
                          FN, v->var, asg_shape_str(s, b1, sizeof b1));
      int64_t d = s.dims[0];
      s.dims[0] = s.dims[1];
      s.dims[1] = d;
    }
    if (v->dt != t->dt)
      return asg__error(ASG_ERR_DTYPE,
                        "%s: parts of checkpoint tensor '%.200s' differ in dtype: '%.200s' is "
                        "%s, '%.200s' is %s",
                        FN, t->name, t->parts[0]->var, asg_dtype_name(t->dt), v->var,
                        asg_dtype_name(v->dt));
    if (k > 0 && !asg_shape_equal(s, ps))
      return asg__error(ASG_ERR_SHAPE,
                        "%s: parts of checkpoint tensor '%.200s' differ in shape: '%.200s' gives "
                        "%s, '%.200s' gives %s",
                        FN, t->name, t->parts[0]->var, asg_shape_str(ps, b1, sizeof b1), v->var,
                        asg_shape_str(s, b2, sizeof b2));
    ps = s;
  }
  t->sh = ps;
  if (split > 1) {
    t->axis = v0->rule->split_axis;
    char b[128];
    if (t->axis >= ps.ndim)
      return asg__error(ASG_ERR_SHAPE,
                        "%s: checkpoint tensor '%.200s': parts %s have no axis %d to join along",
                        FN, t->name, asg_shape_str(ps, b, sizeof b), t->axis);
    if (ps.dims[t->axis] > INT64_MAX / split)
      return asg__error(ASG_ERR_SHAPE, "%s: checkpoint tensor '%.200s' is too large", FN, t->name);
    t->sh.dims[t->axis] *= split;
  }
  t->fdt = o->convert && asg_dtype_is_float(t->dt) ? o->dtype : t->dt;
  return ASG_OK;
}

/* The writer's callback: tensor i of the shard, into dst in file layout
 * (the variable dtype; the writer converts to the file dtype). */
static asg_status fetch(void *ctx, int i, void *dst, size_t nbytes) {
  saver *S = ctx;
  const out_tensor *t = &S->t[S->shard_items[i]];
  const out_var *v0 = t->parts[0];
  bool tr = v0->rule && v0->rule->transpose;
  if (t->split == 1 && !tr) return asg_program_get_variable(S->p, v0->var, dst, nbytes);
  size_t es = asg_dtype_size(t->dt);
  for (int k = 0; k < t->split; k++) {
    const out_var *v = t->parts[k];
    size_t vb = (size_t)asg_shape_numel(v->sh) * es;
    char *a = S->scratch, *b = S->scratch + S->part_bytes;
    asg_status st = asg_program_get_variable(S->p, v->var, a, vb);
    if (st) return st;
    if (v->rule && v->rule->transpose) { /* variable [b, a] -> file [a, b] */
      asg__hf_transpose(a, (size_t)v->sh.dims[0], (size_t)v->sh.dims[1], es,
                        t->split == 1 ? dst : b);
      a = b;
    }
    if (t->split > 1) asg__hf_paste(dst, t->sh, es, t->split, t->axis, k, a);
  }
  return ASG_OK;
}

static asg_status write_shard(saver *S, const char *path, const int *items, int n) {
  const char **names = malloc(((size_t)n + 1) * sizeof *names);
  asg_host_tensor *ht = malloc(((size_t)n + 1) * sizeof *ht);
  asg_dtype *fdt = malloc(((size_t)n + 1) * sizeof *fdt);
  asg_status st = names && ht && fdt ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  for (int k = 0; k < n && !st; k++) {
    const out_tensor *t = &S->t[items[k]];
    names[k] = t->name;
    ht[k] = (asg_host_tensor){t->dt, t->sh, NULL}; /* streamed by fetch */
    fdt[k] = t->fdt;
  }
  const char *meta[2] = {"format", "pt"}; /* what transformers writes and expects */
  S->shard_items = items;
  if (!st) st = asg__safetensors_write(path, n, names, ht, fdt, 1, meta, fetch, S);
  free(names);
  free(ht);
  free(fdt);
  return st;
}

typedef struct name_shard {
  const char *name;
  int shard;
} name_shard;

static int cmp_name_shard(const void *a, const void *b) {
  return strcmp(((const name_shard *)a)->name, ((const name_shard *)b)->name);
}

/* The index, as transformers writes it (sorted keys, 2-space indent). */
static asg_status write_index(saver *S, const char *dir, char **shard_names, uint64_t total) {
  name_shard *by_name = malloc(((size_t)S->nt + 1) * sizeof *by_name);
  if (!by_name) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  for (int k = 0; k < S->nt; k++)
    by_name[k] = (name_shard){S->t[k].name, S->t[k].shard};
  qsort(by_name, (size_t)S->nt, sizeof *by_name, cmp_name_shard);
  asg_sbuf b = {0};
  asg__sb_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
                 (unsigned long long)total);
  for (int k = 0; k < S->nt; k++) {
    asg__sb_puts(&b, k ? ",\n    " : "\n    ");
    asg__sb_json_str(&b, by_name[k].name);
    asg__sb_puts(&b, ": ");
    asg__sb_json_str(&b, shard_names[by_name[k].shard]);
  }
  asg__sb_puts(&b, "\n  }\n}\n");
  free(by_name);
  char *path = asg__hf_join(dir, INDEX_NAME), *tmp = NULL;
  int fd = -1;
  asg_status st = b.oom || !path ? asg__error(ASG_ERR_OOM, "%s: out of memory", FN) : ASG_OK;
  if (!st) st = asg__temp_create(path, &fd, &tmp);
  if (!st) {
    (void)fchmod(fd, 0644);
    st = asg__write_all(fd, b.s, b.len, tmp);
    if (!st && fsync(fd) != 0)
      st = asg__error(ASG_ERR_IO, "cannot sync '%s': %s", tmp, strerror(errno));
    if (close(fd) != 0 && !st)
      st = asg__error(ASG_ERR_IO, "cannot close '%s': %s", tmp, strerror(errno));
    if (!st && rename(tmp, path) != 0)
      st = asg__error(ASG_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (st) unlink(tmp);
    if (!st) st = asg__fsync_dir(path);
  }
  free(tmp);
  free(path);
  asg__sb_free(&b);
  return st;
}

/* Removes what an earlier save left that the new files do not replace. */
static void remove_stale(const char *dir, bool sharded, char **shard_names, int n_shards) {
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    const char *nm = e->d_name;
    bool stale = strcmp(nm, sharded ? SINGLE_NAME : INDEX_NAME) == 0;
    if (!stale && asg__hf_glob(SHARD_GLOB, nm)) {
      stale = true;
      for (int k = 0; k < n_shards && stale; k++)
        stale = strcmp(nm, shard_names[k]) != 0;
    }
    char *p = stale ? asg__hf_join(dir, nm) : NULL;
    if (p) unlink(p);
    free(p);
  }
  closedir(d);
}

static asg_status ensure_dir(const char *dir) {
  if (mkdir(dir, 0755) == 0 || (errno == EEXIST && asg__hf_is_dir(dir))) return ASG_OK;
  return asg__error(ASG_ERR_IO, "%s: cannot create the folder '%s': %s", FN, dir,
                    errno == EEXIST ? "a file of that name exists" : strerror(errno));
}

static asg_status write_files(saver *S, const char *dir, size_t shard_bytes) {
  int n_shards = 0;
  uint64_t total = 0, cur = 0;
  for (int k = 0; k < S->nt; k++) { /* greedy, in order, as transformers shards */
    out_tensor *t = &S->t[k];
    uint64_t nb = (uint64_t)asg_shape_numel(t->sh) * asg_dtype_size(t->fdt);
    if (n_shards == 0 || (shard_bytes && cur > 0 && cur + nb > shard_bytes)) n_shards++, cur = 0;
    t->shard = n_shards - 1;
    cur += nb;
    total += nb;
  }
  if (n_shards == 0) n_shards = 1; /* no variables: one empty file */
  if (!shard_bytes) n_shards = 1;
  char **shard_names = calloc((size_t)n_shards, sizeof *shard_names);
  int *items = malloc(((size_t)S->nt + 1) * sizeof *items);
  asg_status st = shard_names && items ? ASG_OK : asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  for (int s = 0; s < n_shards && !st; s++) {
    char nm[64];
    if (shard_bytes)
      snprintf(nm, sizeof nm, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
    else
      snprintf(nm, sizeof nm, "%s", SINGLE_NAME);
    shard_names[s] = malloc(strlen(nm) + 1);
    char *path = shard_names[s] ? asg__hf_join(dir, nm) : NULL;
    if (!path) {
      st = asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
      break;
    }
    memcpy(shard_names[s], nm, strlen(nm) + 1);
    int n = 0;
    for (int k = 0; k < S->nt; k++)
      if (S->t[k].shard == s || !shard_bytes) items[n++] = k;
    st = write_shard(S, path, items, n);
    free(path);
  }
  if (!st && shard_bytes) st = write_index(S, dir, shard_names, total);
  if (!st) remove_stale(dir, shard_bytes != 0, shard_names, n_shards);
  for (int s = 0; s < n_shards && shard_names; s++)
    free(shard_names[s]);
  free(shard_names);
  free(items);
  return st;
}

asg_status asg_hf_save(asg_program *p, const char *dir, const asg_hf_save_opts *opts) {
  if (!p || !dir) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", FN);
  asg_hf_save_opts none = {0};
  const asg_hf_save_opts *o = opts ? opts : &none;
  asg_status st = asg__hf_check_rules(o->rules, o->n_rules, o->exclude, o->n_exclude, FN);
  if (st) return st;
  if (o->convert && (!asg__dtype_valid((int)o->dtype) || !asg_dtype_is_float(o->dtype)))
    return asg__error(ASG_ERR_INVALID, "%s: dtype %d is not a float dtype (F32, F64, F16, BF16)",
                      FN, (int)o->dtype);
  int nv = asg_program_variable_count(p), n = 0;
  out_var *v = calloc((size_t)nv + 1, sizeof *v);
  out_var **sorted = malloc(((size_t)nv + 1) * sizeof *sorted);
  saver S = {.p = p};
  S.t = calloc((size_t)nv + 1, sizeof *S.t);
  if (!v || !sorted || !S.t) st = asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  size_t largest = 0;
  for (int i = 0; i < nv && !st; i++) {
    out_var *x = &v[n];
    st = asg_program_variable_info(p, i, &x->var, &x->dt, &x->sh);
    if (st || asg_is_optimizer_state(x->var) || asg__hf_excluded(o->exclude, o->n_exclude, x->var))
      continue;
    x->order = i;
    st = name_var(o, x);
    size_t vb = (size_t)asg_shape_numel(x->sh) * asg_dtype_size(x->dt);
    largest = vb > largest ? vb : largest;
    sorted[n] = x;
    n++;
  }
  if (!st) qsort(sorted, (size_t)n, sizeof *sorted, cmp_out_name);
  for (int i = 0; i < n && !st;) { /* group the variables of one checkpoint name */
    int j = i + 1;
    while (j < n && strcmp(sorted[j]->name, sorted[i]->name) == 0)
      j++;
    st = make_tensor(o, sorted + i, j - i, &S.t[S.nt++]);
    i = j;
  }
  if (!st) qsort(S.t, (size_t)S.nt, sizeof *S.t, cmp_tensor_order);
  S.part_bytes = largest;
  if (!st && largest && !(S.scratch = malloc(2 * largest)))
    st = asg__error(ASG_ERR_OOM, "%s: out of memory (%zu bytes)", FN, 2 * largest);
  if (!st) st = ensure_dir(dir);
  if (!st) st = write_files(&S, dir, o->shard_bytes);
  for (int k = 0; k < S.nt; k++)
    free(S.t[k].parts);
  for (int i = 0; i < n; i++)
    free(v[i].name);
  free(S.t);
  free(S.scratch);
  free(sorted);
  free(v);
  return st;
}
