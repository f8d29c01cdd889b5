/* Loading a checkpoint in the Hugging Face layout into a program's
 * variables: one model.safetensors or the shards of an index, mapped by
 * rules (asg/hf.h). Everything is checked before the first variable is
 * written, like asg_program_load_variables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/hf_internal.h"

#define FN "asg_hf_load"
#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

/* ---- the checkpoint: its files and the tensors it lists ---- */
typedef struct ck_tensor {
  const char *name; /* the file's (or the index's) string */
  asg_safetensors *f;
  int idx;
} ck_tensor;

typedef struct ckpt {
  const char *path; /* as given, for messages */
  asg_safetensors **files;
  int n_files;
  ck_tensor *t;
  int n;
  asg_jval index; /* holds the names of an index's tensors */
} ckpt;

static void ckpt_free(ckpt *c) {
  for (int i = 0; i < c->n_files; i++)
    asg_safetensors_close(c->files[i]);
  free(c->files);
  free(c->t);
  asg__json_free(&c->index);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

static bool is_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static asg_status open_single(ckpt *c, const char *file) {
  c->files = malloc(sizeof *c->files);
  if (!c->files) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  asg_status st = asg__safetensors_open(file, &c->files[0]);
  if (st) return st;
  c->n_files = 1;
  asg_safetensors *f = c->files[0];
  c->n = asg_safetensors_count(f);
  c->t = malloc(((size_t)c->n + 1) * sizeof *c->t);
  if (!c->t) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  for (int i = 0; i < c->n; i++) {
    asg_safetensors_info fi;
    asg_safetensors_info_at(f, i, &fi);
    c->t[i] = (ck_tensor){fi.name, f, i};
  }
  return ASG_OK;
}

/* A shard name from an index: a relative path that stays in the folder. */
static bool shard_name_ok(const char *s) {
  if (!*s || *s == '/') return false;
  for (const char *p = s; *p;) { /* no ".." component */
    size_t n = strcspn(p, "/");
    if (n == 2 && p[0] == '.' && p[1] == '.') return false;
    p += n + (p[n] == '/');
  }
  return true;
}

static asg_status open_index(ckpt *c, const char *index_path) {
  asg_status st = asg__hf_read_json(index_path, FN, &c->index);
  if (st) return st;
  const asg_jval *wm = asg__hf_obj_get(&c->index, "weight_map");
  if (!wm || wm->type != ASG_J_OBJ)
    return asg__error(ASG_ERR_FORMAT, "%s: index '%s' has no \"weight_map\" object", FN,
                      index_path);
  char *dir = malloc(strlen(index_path) + 2);
  if (!dir) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  const char *slash = strrchr(index_path, '/');
  size_t dl = slash ? (size_t)(slash - index_path) + 1 : 0;
  memcpy(dir, index_path, dl);
  dir[dl] = '\0';
  c->files = malloc(((size_t)wm->n + 1) * sizeof *c->files);
  const char **fname = malloc(((size_t)wm->n + 1) * sizeof *fname);
  c->t = malloc(((size_t)wm->n + 1) * sizeof *c->t);
  if (!c->files || !fname || !c->t) st = asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  for (int k = 0; k < wm->n && !st; k++) {
    const char *name = wm->keys[k];
    const asg_jval *v = &wm->items[k];
    if (v->type != ASG_J_STR || !shard_name_ok(v->s)) {
      st = asg__error(ASG_ERR_FORMAT,
                      "%s: index '%s': \"%.200s\" maps to %s, not a shard file in the folder", FN,
                      index_path, name, v->type == ASG_J_STR ? v->s : "a non-string");
      break;
    }
    int fi = 0;
    while (fi < c->n_files && strcmp(fname[fi], v->s) != 0)
      fi++;
    if (fi == c->n_files) { /* a shard not seen yet */
      char *sp = dl ? asg__hf_join(dir, v->s) : NULL;
      const char *shard = dl ? sp : v->s;
      if (!shard) {
        st = asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
        break;
      }
      if (!is_file(shard))
        st = asg__error(ASG_ERR_FORMAT,
                        "%s: index '%s' puts \"%.200s\" in shard '%s', which is not a file", FN,
                        index_path, name, shard);
      else
        st = asg__safetensors_open(shard, &c->files[fi]);
      free(sp);
      if (st) break;
      fname[fi] = v->s;
      c->n_files++;
    }
    int idx = asg_safetensors_find(c->files[fi], name);
    if (idx < 0) {
      st = asg__error(ASG_ERR_FORMAT,
                      "%s: index '%s' puts \"%.200s\" in shard '%s', which does not hold it", FN,
                      index_path, name, v->s);
      break;
    }
    c->t[c->n++] = (ck_tensor){name, c->files[fi], idx};
  }
  free(fname);
  free(dir);
  return st;
}

static asg_status ckpt_open(ckpt *c, const char *path) {
  *c = (ckpt){.path = path};
  if (!asg__hf_is_dir(path))
    return ends_with(path, ".json") ? open_index(c, path) : open_single(c, path);
  char *single = asg__hf_join(path, SINGLE_NAME), *index = asg__hf_join(path, INDEX_NAME);
  asg_status st;
  if (!single || !index)
    st = asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  else if (is_file(single)) /* transformers prefers it too */
    st = open_single(c, single);
  else if (is_file(index))
    st = open_index(c, index);
  else
    st = asg__error(ASG_ERR_IO, "%s: folder '%s' holds neither %s nor %s", FN, path, SINGLE_NAME,
                    INDEX_NAME);
  free(single);
  free(index);
  return st;
}

/* ---- the plan: which part of which tensor goes to which variable ---- */
typedef struct assign {
  int var, src;          /* variable index, checkpoint tensor index */
  int split, axis, part; /* split <= 1: the whole tensor */
  bool transpose;
} assign;

typedef struct var_info {
  const char *name;
  asg_dtype dt;
  asg_shape sh;
} var_info;

typedef struct name_idx {
  const char *name;
  int idx;
} name_idx;

typedef struct loader {
  asg_program *p;
  const asg_hf_load_opts *o;
  ckpt ck;
  var_info *v;
  int nv;
  name_idx *by_name; /* variables sorted by name */
  int *src_of;       /* variable -> index in a[] or -1 */
  assign *a;
  int na, cap;
  asg_name_list missing, unexpected, bad, twice;
  asg_hf_load_stats stats;
} loader;

static int cmp_name_idx(const void *x, const void *y) {
  return strcmp(((const name_idx *)x)->name, ((const name_idx *)y)->name);
}

static int find_var(const loader *L, const char *name) {
  int lo = 0, hi = L->nv - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(L->by_name[mid].name, name);
    if (c == 0) return L->by_name[mid].idx;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid - 1;
  }
  return -1;
}

/* Checks one target of checkpoint tensor src and records it. */
static asg_status add_target(loader *L, int src, const char *var_name, int split, int axis,
                             int part, bool transpose) {
  const ck_tensor *t = &L->ck.t[src];
  char detail[1024], b1[128], b2[128], b3[128], why[300], via[300] = "";
  if (split > 1)
    snprintf(via, sizeof via, "part %d of %d along axis %d%s -> '%.200s'", part, split, axis,
             transpose ? ", transposed," : "", var_name);
  else if (transpose || strcmp(var_name, t->name) != 0)
    snprintf(via, sizeof via, "%s-> '%.200s'", transpose ? "transposed " : "", var_name);
  int vi = find_var(L, var_name);
  if (vi < 0) {
    if (L->o->strict) asg__names_add(&L->unexpected, t->name, via[0] ? via : NULL);
    L->stats.unexpected++;
    return ASG_OK;
  }
  if (L->src_of[vi] >= 0) {
    snprintf(detail, sizeof detail, "is provided by both '%.200s' and '%.200s'",
             L->ck.t[L->a[L->src_of[vi]].src].name, t->name);
    asg__names_add(&L->twice, var_name, detail);
    return ASG_OK;
  }
  asg_safetensors_info fi;
  asg_safetensors_info_at(t->f, t->idx, &fi);
  const var_info *v = &L->v[vi];
  asg_shape sh;
  bool ok = asg__hf_part_shape(fi.shape, split, axis, transpose, &sh, why, sizeof why);
  L->src_of[vi] = -2; /* provided (even when mis-shaped): not missing */
  if (!ok || !asg_shape_equal(sh, v->sh)) {
    if (ok)
      snprintf(why, sizeof why, "gives %s but the variable is %s", asg_shape_str(sh, b1, sizeof b1),
               asg_shape_str(v->sh, b2, sizeof b2));
    snprintf(detail, sizeof detail, "%s%s(%s %s in the checkpoint): %s", via, via[0] ? " " : "",
             asg_dtype_name(fi.dtype), asg_shape_str(fi.shape, b3, sizeof b3), why);
    asg__names_add(&L->bad, t->name, detail);
    return ASG_OK;
  }
  if (asg__dtype_is_int(fi.dtype) != asg__dtype_is_int(v->dt)) {
    snprintf(detail, sizeof detail, "%s%sis %s in the checkpoint but %s in the program", via,
             via[0] ? " " : "", asg_dtype_name(fi.dtype), asg_dtype_name(v->dt));
    asg__names_add(&L->bad, t->name, detail);
    return ASG_OK;
  }
  if (L->na == L->cap) {
    int nc = L->cap ? 2 * L->cap : 64;
    assign *na = realloc(L->a, (size_t)nc * sizeof *na);
    if (!na) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
    L->a = na;
    L->cap = nc;
  }
  L->src_of[vi] = L->na;
  L->a[L->na++] = (assign){vi, src, split, axis, part, transpose};
  return ASG_OK;
}

/* The targets of checkpoint tensor src, by the rules. */
static asg_status map_tensor(loader *L, int src) {
  const asg_hf_load_opts *o = L->o;
  const char *name = L->ck.t[src].name;
  for (int k = 0; k < o->n_strip_prefixes; k++) {
    const char *px = o->strip_prefixes[k];
    if (px && *px && strncmp(name, px, strlen(px)) == 0) {
      name += strlen(px);
      break;
    }
  }
  hf_caps caps;
  int r = 0;
  while (r < o->n_rules && !asg__hf_match(o->rules[r].from, name, &caps))
    r++;
  if (r == o->n_rules) return add_target(L, src, name, 0, 0, 0, false);
  const asg_hf_rule *rule = &o->rules[r];
  asg_status st = ASG_OK;
  bool any = false;
  for (int k = r; k < o->n_rules && !st; k++) {
    const asg_hf_rule *q = &o->rules[k];
    if (k != r && (rule->split <= 1 || strcmp(q->from, rule->from) != 0)) continue;
    if (!q->to) continue;
    char *var = asg__hf_subst(q->to, &caps);
    if (!var) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
    st = add_target(L, src, var, q->split, q->split_axis, q->part, q->transpose);
    any = true;
    free(var);
  }
  if (!any) L->stats.ignored++;
  return st;
}

/* Composes the mismatch report (ASG_OK when there is nothing to report). */
static asg_status report(loader *L) {
  if (!L->missing.count && !L->unexpected.count && !L->bad.count && !L->twice.count) return ASG_OK;
  asg_sbuf msg = {0};
  size_t n = strlen(L->ck.path);
  asg__sb_printf(&msg, "%s: '%s%s' does not match the program:", FN, n > 200 ? "..." : "",
                 n > 200 ? L->ck.path + n - 200 : L->ck.path);
  const asg_name_list *later[3] = {&L->unexpected, &L->bad, &L->twice};
  asg__names_put(&msg, "missing", &L->missing, asg__names_reserve(later, 3));
  asg__names_put(&msg, "unexpected", &L->unexpected, asg__names_reserve(later + 1, 2));
  asg__names_put(&msg, "mis-shaped", &L->bad, asg__names_reserve(later + 2, 1));
  asg__names_put(&msg, "provided twice", &L->twice, 0);
  if (msg.len) msg.s[--msg.len] = '\0'; /* the last ';' */
  asg_status st = L->bad.count     ? ASG_ERR_SHAPE
                  : L->twice.count ? ASG_ERR_INVALID
                                   : ASG_ERR_NOT_FOUND;
  st = asg__error(st, "%s", msg.oom ? "out of memory composing the mismatch report" : msg.s);
  asg__sb_free(&msg);
  return st;
}

static size_t var_bytes(const var_info *v) {
  return (size_t)asg_shape_numel(v->sh) * asg_dtype_size(v->dt);
}

/* Writes every planned variable: each checkpoint tensor is converted once
 * (into `whole`), then each of its parts is cut out and transposed. */
static asg_status write_all_vars(loader *L) {
  size_t whole_bytes = 0, part_bytes = 0;
  for (int k = 0; k < L->na; k++) {
    const assign *a = &L->a[k];
    const var_info *v = &L->v[a->var];
    asg_safetensors_info fi;
    asg_safetensors_info_at(L->ck.t[a->src].f, L->ck.t[a->src].idx, &fi);
    size_t wb = (size_t)asg_shape_numel(fi.shape) * asg_dtype_size(v->dt);
    if (fi.dtype != v->dt && wb > whole_bytes) whole_bytes = wb;
    if ((a->split > 1 || a->transpose) && var_bytes(v) > part_bytes) part_bytes = var_bytes(v);
  }
  char *whole = whole_bytes ? malloc(whole_bytes) : NULL;
  char *part = part_bytes ? malloc(2 * part_bytes) : NULL;
  asg_status st = ASG_OK;
  if ((whole_bytes && !whole) || (part_bytes && !part))
    st = asg__error(ASG_ERR_OOM, "%s: out of memory (%zu bytes of scratch)", FN,
                    whole_bytes + 2 * part_bytes);
  for (int k = 0; k < L->na && !st; k++) {
    const assign *a = &L->a[k];
    const var_info *v = &L->v[a->var];
    const ck_tensor *t = &L->ck.t[a->src];
    asg_safetensors_info fi;
    asg_safetensors_info_at(t->f, t->idx, &fi);
    const char *src = asg_safetensors_data(t->f, t->idx, NULL);
    if (fi.dtype != v->dt) {
      /* convert once per checkpoint tensor: its parts follow in a[] */
      if (k == 0 || L->a[k - 1].src != a->src)
        st = asg_safetensors_read(t->f, t->idx, v->dt, whole,
                                  (size_t)asg_shape_numel(fi.shape) * asg_dtype_size(v->dt));
      src = whole;
    }
    size_t es = asg_dtype_size(v->dt);
    if (!st && a->split > 1) {
      asg__hf_cut(src, fi.shape, es, a->split, a->axis, a->part, part);
      src = part;
    }
    if (!st && a->transpose) {
      asg_shape ps; /* the shape before transposing */
      char why[8];
      asg__hf_part_shape(fi.shape, a->split, a->axis, false, &ps, why, sizeof why);
      char *dst = src == part ? part + part_bytes : part;
      asg__hf_transpose(src, (size_t)ps.dims[0], (size_t)ps.dims[1], es, dst);
      src = dst;
    }
    if (!st) st = asg_program_set_variable(L->p, v->name, src, var_bytes(v));
  }
  free(whole);
  free(part);
  return st;
}

/* I64 -> I32 is the one conversion that can fail: try it before writing. */
static asg_status check_narrowing(loader *L) {
  asg_status st = ASG_OK;
  for (int k = 0; k < L->na && !st; k++) {
    const assign *a = &L->a[k];
    const ck_tensor *t = &L->ck.t[a->src];
    asg_safetensors_info fi;
    asg_safetensors_info_at(t->f, t->idx, &fi);
    if (!(fi.dtype == ASG_I64 && L->v[a->var].dt == ASG_I32)) continue;
    size_t nb = (size_t)asg_shape_numel(fi.shape) * 4;
    void *tmp = malloc(nb ? nb : 1);
    if (!tmp) return asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
    st = asg_safetensors_read(t->f, t->idx, ASG_I32, tmp, nb);
    free(tmp);
  }
  return st;
}

asg_status asg_hf_load(asg_program *p, const char *path, const asg_hf_load_opts *opts,
                       asg_hf_load_stats *stats) {
  if (stats) *stats = (asg_hf_load_stats){0};
  if (!p || !path) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", FN);
  asg_hf_load_opts none = {0};
  const asg_hf_load_opts *o = opts ? opts : &none;
  if (o->n_strip_prefixes < 0 || (o->n_strip_prefixes > 0 && !o->strip_prefixes))
    return asg__error(ASG_ERR_INVALID, "%s: bad strip_prefixes", FN);
  asg_status st = asg__hf_check_rules(o->rules, o->n_rules, o->exclude, o->n_exclude, FN);
  if (st) return st;
  loader L = {.p = p, .o = o};
  st = ckpt_open(&L.ck, path);
  L.nv = asg_program_variable_count(p);
  if (!st) {
    L.v = malloc(((size_t)L.nv + 1) * sizeof *L.v);
    L.by_name = malloc(((size_t)L.nv + 1) * sizeof *L.by_name);
    L.src_of = malloc(((size_t)L.nv + 1) * sizeof *L.src_of);
    if (!L.v || !L.by_name || !L.src_of) st = asg__error(ASG_ERR_OOM, "%s: out of memory", FN);
  }
  for (int i = 0; i < L.nv && !st; i++) {
    st = asg_program_variable_info(p, i, &L.v[i].name, &L.v[i].dt, &L.v[i].sh);
    L.by_name[i] = (name_idx){L.v[i].name, i};
    L.src_of[i] = -1;
  }
  if (!st) qsort(L.by_name, (size_t)L.nv, sizeof *L.by_name, cmp_name_idx);
  for (int j = 0; j < L.ck.n && !st; j++)
    st = map_tensor(&L, j);
  int required = 0;
  for (int i = 0; i < L.nv && !st; i++) {
    if (asg_is_optimizer_state(L.v[i].name) ||
        asg__hf_excluded(o->exclude, o->n_exclude, L.v[i].name))
      continue;
    required++;
    if (L.src_of[i] != -1) continue;
    L.stats.missing++;
    if (o->strict) asg__names_add(&L.missing, L.v[i].name, NULL);
  }
  if (!st) st = report(&L);
  if (!st && L.na == 0 && required > 0)
    st = asg__error(ASG_ERR_NOT_FOUND,
                    "%s: no tensor of '%s' (%d, e.g. '%.200s') maps to a variable of the program "
                    "(%d, e.g. '%.200s'); check the rules and strip_prefixes",
                    FN, path, L.ck.n, L.ck.n ? L.ck.t[0].name : "", L.nv, L.by_name[0].name);
  if (!st) st = check_narrowing(&L);
  if (!st) st = write_all_vars(&L); /* everything checked: nothing was changed before */
  if (!st) {
    L.stats.loaded = L.na;
    if (stats) *stats = L.stats;
  }
  ckpt_free(&L.ck);
  free(L.v);
  free(L.by_name);
  free(L.src_of);
  free(L.a);
  asg__sb_free(&L.missing.items);
  asg__sb_free(&L.unexpected.items);
  asg__sb_free(&L.bad.items);
  asg__sb_free(&L.twice.items);
  return st;
}
