/* Symbolic programs: the symbols are bound from the shapes fed (or by
 * asg_program_bind); each binding runs an ordinary static program compiled
 * from a specialized copy of the graph (src/core/specialize.c), kept in a
 * small LRU cache. Every specialization shares the shell's variable store,
 * so the variables exist once and survive eviction.
 *
 * Inputs: a feed records the concrete shape and writes the data straight
 * into the specialization its binding selects when that one is cached and
 * the binding is already complete (the steady state: no extra copy);
 * otherwise it keeps a host copy until the run. Each feed gets a version, and
 * each specialization remembers the version of every input it holds, so a
 * run on another specialization gets the input's last value (from the host
 * copy, or read back from the specialization that holds it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/checks.h"
#include "core/specialize.h"
#include "core/symbol.h"
#include "runtime/compile.h"
#include "runtime/symbolic.h"

#define DEFAULT_MAX_SPECS 8

typedef struct sym_input {
  int id;
  const char *name; /* in the master graph */
  asg_dtype dtype;
  asg_shape sym_shape; /* declared, with symbolic dims */
  asg_shape shape;     /* last fed (valid when ver > 0) */
  uint64_t time;       /* clock of the last feed */
  uint64_t ver;        /* data version: feeds so far */
  void *host;          /* host copy, valid when host_ver == ver */
  size_t host_cap;
  uint64_t host_ver;
} sym_input;

typedef struct sym_spec {
  int64_t *values;   /* the binding */
  asg_program *prog; /* static */
  const void **keys; /* per node id: the clone's tensor (compared, never dereferenced) */
  uint64_t *in_ver;  /* per input: the data version this program holds */
  size_t bytes;
  uint64_t used; /* LRU tick */
} sym_spec;

struct asg__symprog {
  asg_graph *g; /* private symbolic copy of the user's graph */
  int n_nodes, n_out, n_syms, n_in;
  int *out_ids;
  const void **user_keys; /* per node id: the user's tensor (compared only) */
  char *need;             /* nodes the outputs depend on */
  char *used;             /* per symbol: some needed dim depends on it */
  asg_compile_opts opts;
  sym_input *in;
  int64_t *bind_val; /* asg_program_bind values (-1: none) */
  uint64_t *bind_time;
  uint64_t clock, last_run; /* feed clock; its value at the last run */
  sym_spec **specs;
  int n_specs, max_specs;
  size_t max_bytes;
  uint64_t tick;
  sym_spec *cur; /* the last run's */
  asg__optim_info optim;
  bool has_optim;
};

/* ---- specializations ---- */

static void spec_free(sym_spec *sp) {
  if (!sp) return;
  asg_program_free(sp->prog);
  free(sp->values);
  free(sp->keys);
  free(sp->in_ver);
  free(sp);
}

static bool grow_host(sym_input *in, size_t bytes) {
  if (bytes <= in->host_cap && in->host) return true;
  void *h = realloc(in->host, bytes ? bytes : 1);
  if (!h) return false;
  in->host = h;
  in->host_cap = bytes;
  return true;
}

static size_t input_bytes(const sym_input *in) {
  return (size_t)asg_shape_numel(in->shape) * asg_dtype_size(in->dtype);
}

/* Before sp goes away: inputs whose last value only sp holds are read back. */
static asg_status save_inputs(asg__symprog *s, sym_spec *sp) {
  for (int i = 0; i < s->n_in; i++) {
    sym_input *in = &s->in[i];
    if (!in->ver || sp->in_ver[i] != in->ver || in->host_ver == in->ver) continue;
    bool elsewhere = false;
    for (int k = 0; k < s->n_specs && !elsewhere; k++)
      elsewhere = s->specs[k] != sp && s->specs[k]->in_ver[i] == in->ver;
    if (elsewhere) continue;
    size_t bytes = input_bytes(in);
    if (!grow_host(in, bytes)) return asg__error(ASG_ERR_OOM, "asg_program_run: out of memory");
    asg_status st = asg_program_fetch(sp->prog, sp->keys[in->id], in->host, bytes);
    if (st) return st;
    in->host_ver = in->ver;
  }
  return ASG_OK;
}

static void evict(asg__symprog *s, int k) {
  sym_spec *sp = s->specs[k];
  save_inputs(s, sp); /* on failure the input is reported unfed at its next run */
  if (s->cur == sp) s->cur = NULL;
  s->specs[k] = s->specs[--s->n_specs];
  spec_free(sp);
}

/* Evicts least recently used specializations (never keep) until the cache
 * fits its count and byte bounds. */
static void trim(asg__symprog *s, const sym_spec *keep) {
  for (;;) {
    size_t total = 0;
    for (int k = 0; k < s->n_specs; k++)
      total += s->specs[k]->bytes;
    if (s->n_specs <= s->max_specs && (!s->max_bytes || total <= s->max_bytes)) return;
    int victim = -1;
    for (int k = 0; k < s->n_specs; k++)
      if (s->specs[k] != keep && (victim < 0 || s->specs[k]->used < s->specs[victim]->used))
        victim = k;
    if (victim < 0) return; /* keep alone is over the bound: it stays */
    evict(s, victim);
  }
}

static sym_spec *spec_find(const asg__symprog *s, const int64_t *values) {
  for (int k = 0; k < s->n_specs; k++)
    if (memcmp(s->specs[k]->values, values, sizeof *values * (size_t)s->n_syms) == 0)
      return s->specs[k];
  return NULL;
}

/* The specialization of values (checked), from the cache or built now. */
static asg_status spec_get(asg_program *p, asg__symprog *s, const int64_t *values, sym_spec **out) {
  sym_spec *sp = spec_find(s, values);
  if (sp) {
    sp->used = ++s->tick;
    *out = sp;
    return ASG_OK;
  }
  asg_status st;
  asg_graph *c = asg__graph_specialize(s->g, values, s->need, &st);
  if (!c) return st;
  asg_tensor **outs = malloc(sizeof *outs * (size_t)s->n_out);
  sp = calloc(1, sizeof *sp);
  if (sp) {
    sp->values = malloc(sizeof *values * ((size_t)s->n_syms + 1));
    sp->keys = malloc(sizeof *sp->keys * (size_t)s->n_nodes);
    sp->in_ver = calloc((size_t)s->n_in + 1, sizeof *sp->in_ver);
  }
  sym_spec **specs = realloc(s->specs, sizeof *specs * ((size_t)s->n_specs + 1));
  if (specs) s->specs = specs;
  if (!outs || !sp || !sp->values || !sp->keys || !sp->in_ver || !specs) {
    st = asg__error(ASG_ERR_OOM, "asg_program_run: out of memory");
    goto done;
  }
  for (int i = 0; i < s->n_out; i++)
    outs[i] = c->nodes[s->out_ids[i]];
  asg_compile_opts o = s->opts;
  o.share_variables = p;
  sp->prog = asg_compile(c, s->n_out, outs, &o);
  if (!sp->prog) {
    st = asg__last_status(); /* asg_compile's status and message stay */
    if (!st) st = ASG_ERR_INVALID;
    goto done;
  }
  if (s->has_optim) asg__program_set_optim_info(sp->prog, &s->optim);
  memcpy(sp->values, values, sizeof *values * (size_t)s->n_syms);
  for (int i = 0; i < s->n_nodes; i++)
    sp->keys[i] = c->nodes[i];
  sp->bytes = asg__program_own_bytes(sp->prog);
  sp->used = ++s->tick;
  s->specs[s->n_specs++] = sp;
  trim(s, sp);
  *out = sp;
  sp = NULL;
done:
  spec_free(sp);
  free(outs);
  asg_graph_free(c);
  return st;
}

/* ---- bindings ---- */

/* The value of symbol k in input in's fed shape, or -1 if in does not
 * carry k as a dim of its own. */
static int64_t carried(const asg__symprog *s, const sym_input *in, int k) {
  for (int j = 0; j < in->sym_shape.ndim; j++)
    if (asg__dim_as_sym(s->g, in->sym_shape.dims[j]) == k) return in->shape.dims[j];
  return -1;
}

static char *binding_str(const asg__symprog *s, const int64_t *v, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->n_syms && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, "%s%s=%lld", i ? ", " : "", asg__sym_name(s->g, i),
                          (long long)v[i]);
  return buf;
}

/* The binding of the next run, from the fed shapes and asg_program_bind:
 * a value given since the last run wins; every fed input must agree with it
 * (else it has to be fed again). quiet: no message (a feed trying to write
 * straight into a specialization). */
static asg_status resolve(const asg__symprog *s, int64_t *v, bool quiet, const char *fn) {
  for (int k = 0; k < s->n_syms; k++) {
    int64_t val = -1;
    const char *src = NULL;
    if (!s->used[k]) { /* nothing compiled depends on it */
      v[k] = s->bind_val[k] >= 0 ? s->bind_val[k] : 1;
      continue;
    }
    for (int i = 0; i < s->n_in && val < 0; i++) {
      const sym_input *in = &s->in[i];
      if (in->ver && in->time > s->last_run && (val = carried(s, in, k)) >= 0) src = in->name;
    }
    if (val < 0 && s->bind_val[k] >= 0 && s->bind_time[k] > s->last_run) val = s->bind_val[k];
    for (int i = 0; i < s->n_in && val < 0; i++) /* nothing new: any earlier feed */
      if (s->in[i].ver && (val = carried(s, &s->in[i], k)) >= 0) src = s->in[i].name;
    if (val < 0) val = s->bind_val[k];
    if (val < 0) {
      if (quiet) return ASG_ERR_INVALID;
      return asg__error(ASG_ERR_INVALID,
                        "%s: symbol '%s' has no value: feed an input that carries it as a dim, "
                        "or bind it with asg_program_bind",
                        fn, asg__sym_name(s->g, k));
    }
    for (int i = 0; i < s->n_in; i++) {
      const sym_input *in = &s->in[i];
      int64_t w = in->ver ? carried(s, in, k) : -1;
      if (w < 0 || w == val) continue;
      if (quiet) return ASG_ERR_SHAPE;
      return asg__error(ASG_ERR_SHAPE,
                        "%s: symbol '%s' is %lld (%s%s%s) but input '%s' was fed earlier with "
                        "%s = %lld: feed '%s' again",
                        fn, asg__sym_name(s->g, k), (long long)val, src ? "input '" : "bound",
                        src ? src : "", src ? "'" : "", in->name, asg__sym_name(s->g, k),
                        (long long)w, in->name);
    }
    v[k] = val;
  }
  for (int i = 0; i < s->n_in; i++) {
    const sym_input *in = &s->in[i];
    if (!in->ver) {
      if (quiet) return ASG_ERR_INVALID;
      return asg__error(ASG_ERR_INVALID,
                        "%s: input '%s' was never fed (feed every input with asg_program_feed "
                        "before the first run)",
                        fn, in->name);
    }
  }
  asg_status st = asg__binding_check(s->g, v);
  if (st) return st;
  for (int i = 0; i < s->n_in; i++) { /* dims that are expressions (2*seq, ...) */
    const sym_input *in = &s->in[i];
    asg_shape want = asg__shape_eval(s->g, in->sym_shape, v, &st);
    if (st) return st;
    if (asg_shape_equal(want, in->shape)) continue;
    if (quiet) return ASG_ERR_SHAPE;
    char b1[128], b2[128], b3[256];
    return asg__error(ASG_ERR_SHAPE, "%s: input '%s' was fed %s, but %s makes it %s (%s)", fn,
                      in->name, asg_shape_str(in->shape, b1, sizeof b1),
                      binding_str(s, v, b3, sizeof b3), asg_shape_str(want, b2, sizeof b2),
                      asg__shape_str_g(s->g, in->sym_shape, b3, sizeof b3));
  }
  return ASG_OK;
}

/* A value for symbol k from a feed or bind: at least 1 and within its bound. */
static asg_status check_value(const asg__symprog *s, int k, int64_t v, const char *fn,
                              const char *what) {
  int64_t max = asg__sym_max(s->g, k);
  if (v >= 1 && (max <= 0 || v <= max)) return ASG_OK;
  if (v < 1)
    return asg__error(ASG_ERR_SHAPE, "%s: %s gives symbol '%s' the value %lld; it must be >= 1", fn,
                      what, asg__sym_name(s->g, k), (long long)v);
  return asg__error(ASG_ERR_SHAPE,
                    "%s: %s gives symbol '%s' the value %lld, above its declared bound %lld", fn,
                    what, asg__sym_name(s->g, k), (long long)v, (long long)max);
}

/* A value for symbol k that disagrees with one given since the last run
 * (by another input than skip, or bound unless rebind: a bind replaces the
 * previous one, so a bad bound value can be corrected) is an error naming
 * both. */
static asg_status check_fresh(const asg__symprog *s, int k, int64_t v, int skip, bool rebind,
                              const char *fn, const char *what) {
  for (int i = 0; i < s->n_in; i++) {
    const sym_input *in = &s->in[i];
    int64_t w = i != skip && in->ver && in->time > s->last_run ? carried(s, in, k) : -1;
    if (w >= 0 && w != v)
      return asg__error(ASG_ERR_SHAPE,
                        "%s: %s gives symbol '%s' the value %lld, but input '%s' fed since the "
                        "last run has %s = %lld",
                        fn, what, asg__sym_name(s->g, k), (long long)v, in->name,
                        asg__sym_name(s->g, k), (long long)w);
  }
  if (!rebind && s->bind_val[k] >= 0 && s->bind_time[k] > s->last_run && s->bind_val[k] != v)
    return asg__error(ASG_ERR_SHAPE,
                      "%s: %s gives symbol '%s' the value %lld, but asg_program_bind set it to "
                      "%lld since the last run",
                      fn, what, asg__sym_name(s->g, k), (long long)v, (long long)s->bind_val[k]);
  return ASG_OK;
}

static int input_find(const asg__symprog *s, const char *name) {
  for (int i = 0; i < s->n_in; i++)
    if (strcmp(s->in[i].name, name) == 0) return i;
  return -1;
}

static asg_status no_input(const char *fn, const char *name) {
  return asg__error(ASG_ERR_NOT_FOUND,
                    "%s: program has no input named '%s' (inputs that the compiled outputs do not "
                    "depend on are not part of the program)",
                    fn, name);
}

/* Records a feed of input i with a concrete shape (checked) and stores the
 * data: into the specialization of the binding when it is complete and
 * cached, else as a host copy. */
static asg_status feed_shaped(asg__symprog *s, int i, asg_shape shape, const void *data,
                              const char *fn) {
  sym_input *in = &s->in[i];
  char b1[128], b2[128], what[160];
  snprintf(what, sizeof what, "input '%s'", in->name);
  for (int j = 0; j < shape.ndim; j++) {
    int64_t d = in->sym_shape.dims[j];
    int k = asg__dim_as_sym(s->g, d);
    asg_status st = ASG_OK;
    if (k >= 0) {
      st = check_value(s, k, shape.dims[j], fn, what);
      if (!st) st = check_fresh(s, k, shape.dims[j], i, false, fn, what);
      for (int q = 0; q < j && !st; q++) /* [n, n]: one value */
        if (asg__dim_as_sym(s->g, in->sym_shape.dims[q]) == k && shape.dims[q] != shape.dims[j])
          st = asg__error(ASG_ERR_SHAPE, "%s: input '%s' is %s, got %s: symbol '%s' differs", fn,
                          in->name, asg__shape_str_g(s->g, in->sym_shape, b1, sizeof b1),
                          asg_shape_str(shape, b2, sizeof b2), asg__sym_name(s->g, k));
    } else if (!asg__dim_is_sym(d) ? shape.dims[j] != d : shape.dims[j] < 1) {
      st = asg__error(ASG_ERR_SHAPE, "%s: input '%s' is %s, got %s", fn, in->name,
                      asg__shape_str_g(s->g, in->sym_shape, b1, sizeof b1),
                      asg_shape_str(shape, b2, sizeof b2));
    }
    if (st) return st;
  }
  char why[96];
  if (!asg__shape_check(shape, asg_dtype_size(in->dtype), NULL, why, sizeof why))
    return asg__error(ASG_ERR_SHAPE, "%s: input '%s' fed %s: %s", fn, in->name,
                      asg_shape_str(shape, b2, sizeof b2), why);
  int64_t *v = malloc(sizeof *v * ((size_t)s->n_syms + 1));
  if (!v) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  asg_shape old_shape = in->shape; /* restored if the data cannot be kept */
  uint64_t old_time = in->time;
  in->shape = shape;
  in->time = ++s->clock;
  in->ver++;
  size_t bytes = input_bytes(in);
  sym_spec *sp = resolve(s, v, true, fn) == ASG_OK ? spec_find(s, v) : NULL;
  free(v);
  if (sp && asg_program_feed(sp->prog, in->name, data, bytes) == ASG_OK) {
    sp->in_ver[i] = in->ver;
    return ASG_OK;
  }
  if (!grow_host(in, bytes)) { /* the previous value (and its shape) stays */
    in->ver--;
    in->shape = old_shape;
    in->time = old_time;
    return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  }
  memcpy(in->host, data, bytes);
  in->host_ver = in->ver;
  return ASG_OK;
}

asg_status asg__symp_feed_tensor(asg_program *p, asg__symprog *s, const char *name, asg_dtype dt,
                                 asg_shape shape, const void *data) {
  (void)p;
  const char *fn = "asg_program_feed_tensor";
  if (!name || !data) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  int i = input_find(s, name);
  if (i < 0) return no_input(fn, name);
  const sym_input *in = &s->in[i];
  char b1[128], b2[128];
  if (dt != in->dtype || shape.ndim != in->sym_shape.ndim || asg_shape_numel(shape) < 0)
    return asg__error(dt != in->dtype ? ASG_ERR_DTYPE : ASG_ERR_SHAPE,
                      "%s: input '%s' is %s %s, got %s %s", fn, name, asg_dtype_name(in->dtype),
                      asg__shape_str_g(s->g, in->sym_shape, b1, sizeof b1), asg_dtype_name(dt),
                      shape.ndim >= 0 && shape.ndim <= ASG_MAX_DIMS
                          ? asg_shape_str(shape, b2, sizeof b2)
                          : "(bad rank)");
  return feed_shaped(s, i, shape, data, fn);
}

/* feed without a shape: every dim is known (constant, or a symbol with a
 * value given since the last run or bound) but at most one lone symbol,
 * which nbytes then gives. */
asg_status asg__symp_feed(asg_program *p, asg__symprog *s, const char *name, const void *data,
                          size_t nbytes) {
  (void)p;
  const char *fn = "asg_program_feed";
  if (!name || !data) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  int i = input_find(s, name);
  if (i < 0) return no_input(fn, name);
  const sym_input *in = &s->in[i];
  asg_shape shape = in->sym_shape;
  int unknown = -1, n_unknown = 0;
  uint64_t known = asg_dtype_size(in->dtype);
  for (int j = 0; j < shape.ndim; j++) {
    int64_t d = shape.dims[j];
    int k = asg__dim_as_sym(s->g, d);
    if (k >= 0) {
      d = -1;
      for (int q = 0; q < s->n_in && d < 0; q++)
        if (q != i && s->in[q].ver && s->in[q].time > s->last_run) d = carried(s, &s->in[q], k);
      if (d < 0) d = s->bind_val[k];
    } else if (asg__dim_is_sym(d)) {
      d = -2; /* an expression: never from nbytes */
    }
    if (d >= 0) {
      shape.dims[j] = d;
      known *= (uint64_t)d;
    } else {
      unknown = d == -1 ? j : -2;
      n_unknown++;
    }
  }
  char b1[128];
  if (n_unknown == 1 && unknown >= 0 && known > 0 && nbytes % known == 0 && nbytes > 0) {
    shape.dims[unknown] = (int64_t)(nbytes / known);
  } else if (n_unknown == 1 && unknown >= 0) {
    return asg__error(ASG_ERR_SHAPE,
                      "%s: input '%s' is %s %s: %zu bytes is not a whole number of rows "
                      "(%llu bytes each)",
                      fn, name, asg_dtype_name(in->dtype),
                      asg__shape_str_g(s->g, in->sym_shape, b1, sizeof b1), nbytes,
                      (unsigned long long)known);
  } else if (n_unknown > 0) {
    return asg__error(ASG_ERR_SHAPE,
                      "%s: input '%s' is %s %s: its size does not tell the value of more than one "
                      "symbolic dim; use asg_program_feed_tensor with the shape",
                      fn, name, asg_dtype_name(in->dtype),
                      asg__shape_str_g(s->g, in->sym_shape, b1, sizeof b1));
  } else if (known != nbytes) {
    char b2[128];
    return asg__error(ASG_ERR_SHAPE, "%s: input '%s' is %s %s = %llu bytes now, got %zu", fn, name,
                      asg_dtype_name(in->dtype), asg_shape_str(shape, b2, sizeof b2),
                      (unsigned long long)known, nbytes);
  }
  return feed_shaped(s, i, shape, data, fn);
}

/* Every input's last value into sp. */
static asg_status load_inputs(asg__symprog *s, sym_spec *sp) {
  for (int i = 0; i < s->n_in; i++) {
    sym_input *in = &s->in[i];
    if (sp->in_ver[i] == in->ver) continue;
    size_t bytes = input_bytes(in);
    asg_status st = ASG_OK;
    if (in->host_ver != in->ver) { /* another specialization holds it */
      sym_spec *from = NULL;
      for (int k = 0; k < s->n_specs && !from; k++)
        if (s->specs[k]->in_ver[i] == in->ver) from = s->specs[k];
      if (!from)
        return asg__error(ASG_ERR_INVALID,
                          "asg_program_run: input '%s' lost its value; feed it again", in->name);
      if (!grow_host(in, bytes)) return asg__error(ASG_ERR_OOM, "asg_program_run: out of memory");
      st = asg_program_fetch(from->prog, from->keys[in->id], in->host, bytes);
      if (st) return st;
      in->host_ver = in->ver;
    }
    st = asg_program_feed(sp->prog, in->name, in->host, bytes);
    if (st) return st;
    sp->in_ver[i] = in->ver;
  }
  return ASG_OK;
}

asg_status asg__symp_run(asg_program *p, asg__symprog *s) {
  int64_t *v = malloc(sizeof *v * ((size_t)s->n_syms + 1));
  if (!v) return asg__error(ASG_ERR_OOM, "asg_program_run: out of memory");
  sym_spec *sp = NULL;
  asg_status st = resolve(s, v, false, "asg_program_run");
  if (!st) st = spec_get(p, s, v, &sp);
  free(v);
  if (!st) st = load_inputs(s, sp);
  if (st) return st;
  uint64_t runs = asg_program_run_count(p);
  asg_program_set_run_count(sp->prog, runs); /* random ops continue the one stream */
  s->cur = sp;
  st = asg_program_run(sp->prog);
  if (st) return st;
  asg_program_set_run_count(p, runs + 1);
  s->last_run = s->clock;
  return ASG_OK;
}

/* ---- fetch ---- */

static int node_of(const asg__symprog *s, const asg_tensor *t) {
  for (int i = 0; i < s->n_out; i++)
    if (s->user_keys[s->out_ids[i]] == (const void *)t) return s->out_ids[i];
  for (int i = 0; i < s->n_nodes; i++)
    if (s->need[i] && s->user_keys[i] == (const void *)t) return i;
  return -1;
}

/* The static program and key of t for the last run. */
static asg_status current_key(const asg__symprog *s, const asg_tensor *t, const char *fn,
                              const void **key, int *id) {
  *id = t ? node_of(s, t) : -1;
  if (*id < 0)
    return asg__error(ASG_ERR_NOT_FOUND,
                      "%s: tensor is not an output, variable or input of this program", fn);
  if (!s->cur)
    return asg__error(ASG_ERR_INVALID,
                      "%s: the program has not run with a binding of its symbols yet (or that "
                      "specialization was evicted from the cache): run it first",
                      fn);
  *key = s->cur->keys[*id];
  return ASG_OK;
}

asg_status asg__symp_fetch(asg__symprog *s, asg_program *p, const asg_tensor *t, void *dst,
                           size_t nbytes) {
  const char *fn = "asg_program_fetch";
  if (!t || !dst) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  int id = node_of(s, t);
  if (id >= 0 && s->g->nodes[id]->op == ASG_OP_VARIABLE) /* no run needed */
    return asg_program_get_variable(p, s->g->nodes[id]->name, dst, nbytes);
  const void *key = NULL;
  asg_status st = current_key(s, t, fn, &key, &id);
  if (st) return st;
  const asg_tensor *n = s->g->nodes[id];
  asg_shape sh = asg__shape_eval(s->g, n->shape, s->cur->values, &st);
  if (st) return st;
  size_t want = (size_t)asg_shape_numel(sh) * asg_dtype_size(n->dtype);
  if (nbytes != want) {
    char b1[128], b2[128];
    return asg__error(ASG_ERR_SHAPE,
                      "%s: output is %s %s = %s now (%zu bytes), buffer is %zu bytes", fn,
                      asg_dtype_name(n->dtype), asg__shape_str_g(s->g, n->shape, b1, sizeof b1),
                      asg_shape_str(sh, b2, sizeof b2), want, nbytes);
  }
  return asg_program_fetch(s->cur->prog, key, dst, nbytes);
}

double asg__symp_scalar(asg__symprog *s, const asg_tensor *t) {
  const void *key = NULL;
  int id;
  if (current_key(s, t, "asg_program_scalar", &key, &id)) return NAN;
  return asg_program_scalar(s->cur->prog, key);
}

asg_program *asg__symp_current(const asg__symprog *s) { return s->cur ? s->cur->prog : NULL; }

void asg__symp_set_optim_info(asg__symprog *s, const asg__optim_info *info) {
  s->optim = *info;
  s->has_optim = true;
  for (int k = 0; k < s->n_specs; k++)
    asg__program_set_optim_info(s->specs[k]->prog, info);
}

/* ---- compile and free ---- */

/* Symbols that some compiled dim depends on: its value changes when the
 * symbol's does (under arbitrary values, 7 for the others and 13 for it).
 * The others need no value (a declared symbol the outputs do not use). */
static bool mark_used(asg__symprog *s) {
  int S = s->n_syms;
  int64_t *base = malloc(sizeof *base * ((size_t)S + 1)),
          *pert = malloc(sizeof *pert * ((size_t)S + 1));
  if (!base || !pert) {
    free(base);
    free(pert);
    return false;
  }
  for (int k = 0; k < S; k++)
    base[k] = 7;
  for (int k = 0; k < S; k++) {
    memcpy(pert, base, sizeof *base * (size_t)S);
    pert[k] = 13;
    for (int i = 0; i < s->n_nodes && !s->used[k]; i++) {
      const asg_tensor *t = s->g->nodes[i];
      if (!s->need[i]) continue;
      int64_t d[ASG_MAX_DIMS + 16];
      int n = 0;
      for (int j = 0; j < t->shape.ndim; j++)
        d[n++] = t->shape.dims[j];
      uint32_t mask = asg__op_dim_attrs(t->op);
      for (int j = 0; j < 16; j++)
        if (mask & (1u << j)) d[n++] = t->attr.i[j];
      for (int j = 0; j < n && !s->used[k]; j++)
        if (asg__dim_is_sym(d[j]))
          s->used[k] = asg__dim_eval(s->g, d[j], base) != asg__dim_eval(s->g, d[j], pert);
    }
  }
  free(base);
  free(pert);
  asg_clear_error(); /* evaluations that went negative */
  return true;
}

void asg__symp_free(asg__symprog *s) {
  if (!s) return;
  for (int k = 0; k < s->n_specs; k++)
    spec_free(s->specs[k]);
  for (int i = 0; i < s->n_in; i++)
    free(s->in[i].host);
  free(s->specs);
  free(s->in);
  free(s->bind_val);
  free(s->bind_time);
  free(s->out_ids);
  free(s->user_keys);
  free(s->need);
  free(s->used);
  asg_graph_free(s->g);
  free(s);
}

asg_program *asg__symp_compile(asg_graph *g, int n_out, asg_tensor *const *outs,
                               const asg_compile_opts *o, const asg_backend *be) {
  if (o->max_specializations < 0) {
    asg__error(ASG_ERR_INVALID,
               "asg_compile: max_specializations is %d; give a count >= 1, or 0 for the default",
               o->max_specializations);
    return NULL;
  }
  asg__symprog *s = calloc(1, sizeof *s);
  if (!s) {
    asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    return NULL;
  }
  int N = g->n_nodes, S = asg__sym_count(g);
  s->n_nodes = N;
  s->n_out = n_out;
  s->n_syms = S;
  s->opts = *o;
  s->opts.share_variables = NULL;
  s->max_specs = o->max_specializations ? o->max_specializations : DEFAULT_MAX_SPECS;
  s->max_bytes = o->max_specialization_bytes;
  s->out_ids = malloc(sizeof *s->out_ids * (size_t)n_out);
  s->user_keys = malloc(sizeof *s->user_keys * ((size_t)N + 1));
  s->need = calloc((size_t)N + 1, 1);
  s->used = calloc((size_t)S + 1, 1);
  s->in = calloc((size_t)N + 1, sizeof *s->in);
  s->bind_val = malloc(sizeof *s->bind_val * ((size_t)S + 1));
  s->bind_time = calloc((size_t)S + 1, sizeof *s->bind_time);
  asg_status st;
  s->g = asg__graph_specialize(g, NULL, NULL, &st);
  if (!s->out_ids || !s->user_keys || !s->need || !s->used || !s->in || !s->bind_val ||
      !s->bind_time || !s->g) {
    if (s->g) asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    asg__symp_free(s);
    return NULL;
  }
  for (int k = 0; k < S; k++)
    s->bind_val[k] = -1;
  for (int i = 0; i < N; i++)
    s->user_keys[i] = g->nodes[i];
  for (int i = 0; i < n_out; i++)
    s->out_ids[i] = outs[i]->id;
  asg__mark_needed(g, n_out, outs, s->need); /* what asg__compile_graph will compile */
  if (asg__cache_write_check(g, s->need)) {  /* refused now, not at the first run */
    asg__symp_free(s);
    return NULL;
  }
  if (!mark_used(s)) {
    asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    asg__symp_free(s);
    return NULL;
  }
  for (int i = 0; i < N; i++) {
    const asg_tensor *t = s->g->nodes[i];
    if (s->need[i] && t->op == ASG_OP_INPUT)
      s->in[s->n_in++] =
          (sym_input){.id = i, .name = t->name, .dtype = t->dtype, .sym_shape = t->shape};
  }
  asg_program *p = asg__program_shell(be, o, s);
  if (!p) return NULL;
  /* every variable exists from the start: get/set, save/load and the
   * optimizer's calls work before the first run */
  for (int i = 0; i < N; i++) {
    if (!s->need[i] || s->g->nodes[i]->op != ASG_OP_VARIABLE) continue;
    if (asg__program_add_variable(p, s->g->nodes[i])) {
      asg_program_free(p);
      return NULL;
    }
  }
  return p;
}

/* ---- public calls for symbolic programs (static ones: no symbols) ---- */

/* The full binding given by names/values: every symbol once, each value
 * checked; the whole binding checked against the graph's constraints. */
static asg_status binding_of(const asg__symprog *s, int n, const char *const *names,
                             const int64_t *values, bool complete, int64_t *v, const char *fn) {
  if (n < 0 || (n > 0 && (!names || !values)))
    return asg__error(ASG_ERR_INVALID, "%s: bad name/value arrays (n = %d)", fn, n);
  for (int k = 0; k < s->n_syms; k++)
    v[k] = -1;
  for (int i = 0; i < n; i++) {
    int k = names[i] ? asg__sym_find(s->g, names[i]) : -1;
    if (k < 0)
      return asg__error(ASG_ERR_NOT_FOUND, "%s: the graph has no symbolic dim named '%s'", fn,
                        names[i] ? names[i] : "(NULL)");
    if (v[k] >= 0 && v[k] != values[i])
      return asg__error(ASG_ERR_INVALID, "%s: symbol '%s' given twice (%lld and %lld)", fn,
                        names[i], (long long)v[k], (long long)values[i]);
    asg_status st = check_value(s, k, values[i], fn, "the binding");
    if (st) return st;
    v[k] = values[i];
  }
  if (!complete) return ASG_OK;
  for (int k = 0; k < s->n_syms; k++)
    if (v[k] < 0 && !s->used[k]) v[k] = s->bind_val[k] >= 0 ? s->bind_val[k] : 1;
  for (int k = 0; k < s->n_syms; k++)
    if (v[k] < 0)
      return asg__error(ASG_ERR_INVALID,
                        "%s: symbol '%s' has no value (a binding gives every "
                        "symbol the compiled outputs depend on)",
                        fn, asg__sym_name(s->g, k));
  return asg__binding_check(s->g, v);
}

static asg_status static_only(int n, const char *fn) {
  if (n == 0) return ASG_OK;
  return asg__error(ASG_ERR_INVALID,
                    "%s: the program has no symbolic dims (its graph declared "
                    "none with asg_dim)",
                    fn);
}

asg_status asg_program_bind(asg_program *p, int n, const char *const *names,
                            const int64_t *values) {
  const char *fn = "asg_program_bind";
  if (!p) return asg__error(ASG_ERR_INVALID, "%s: program is NULL", fn);
  asg__symprog *s = asg__program_sym(p);
  if (!s) return static_only(n, fn);
  int64_t *v = malloc(sizeof *v * ((size_t)s->n_syms + 1));
  if (!v) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  asg_status st = binding_of(s, n, names, values, false, v, fn);
  for (int k = 0; k < s->n_syms && !st; k++)
    if (v[k] >= 0) st = check_fresh(s, k, v[k], -1, true, fn, "asg_program_bind");
  for (int k = 0; k < s->n_syms && !st; k++)
    if (v[k] >= 0) {
      s->bind_val[k] = v[k];
      s->bind_time[k] = ++s->clock;
    }
  free(v);
  return st;
}

asg_status asg_program_prepare(asg_program *p, int n, const char *const *names,
                               const int64_t *values) {
  const char *fn = "asg_program_prepare";
  if (!p) return asg__error(ASG_ERR_INVALID, "%s: program is NULL", fn);
  asg__symprog *s = asg__program_sym(p);
  if (!s) return static_only(n, fn);
  int64_t *v = malloc(sizeof *v * ((size_t)s->n_syms + 1));
  if (!v) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  sym_spec *sp;
  asg_status st = binding_of(s, n, names, values, true, v, fn);
  if (!st) st = spec_get(p, s, v, &sp);
  free(v);
  return st;
}

asg_status asg_program_peak_memory_for(asg_program *p, int n, const char *const *names,
                                       const int64_t *values, size_t *bytes) {
  const char *fn = "asg_program_peak_memory_for";
  if (!p || !bytes) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  asg__symprog *s = asg__program_sym(p);
  if (!s) {
    asg_status st = static_only(n, fn);
    if (!st) *bytes = asg_program_peak_memory(p);
    return st;
  }
  int64_t *v = malloc(sizeof *v * ((size_t)s->n_syms + 1));
  if (!v) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  asg_status st = binding_of(s, n, names, values, true, v, fn);
  sym_spec *sp = st ? NULL : spec_find(s, v);
  if (sp) {
    *bytes = asg_program_peak_memory(sp->prog);
  } else if (!st) { /* plan only: no device memory, nothing cached */
    asg_graph *c = asg__graph_specialize(s->g, v, s->need, &st);
    asg_tensor **outs = c ? malloc(sizeof *outs * (size_t)s->n_out) : NULL;
    if (c && !outs) st = asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
    if (outs) {
      for (int i = 0; i < s->n_out; i++)
        outs[i] = c->nodes[s->out_ids[i]];
      asg_compiled cc;
      st = asg__compile_graph(c, s->n_out, outs, !s->opts.no_fusion, &cc);
      if (!st) *bytes = cc.plan.arena_bytes;
      asg__compiled_free(&cc);
    }
    free(outs);
    asg_graph_free(c);
  }
  free(v);
  return st;
}

asg_status asg_program_output_shape(asg_program *p, const asg_tensor *t, asg_shape *shape) {
  const char *fn = "asg_program_output_shape";
  if (!p || !t || !shape) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  asg__symprog *s = asg__program_sym(p);
  if (!s) return asg__program_out_shape(p, t, shape);
  int id = node_of(s, t);
  if (id < 0)
    return asg__error(ASG_ERR_NOT_FOUND,
                      "%s: tensor is not an output, variable or input of this program", fn);
  int64_t *v = malloc(sizeof *v * ((size_t)s->n_syms + 1));
  if (!v) return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  asg_status st = ASG_OK;
  if (s->cur) /* what a fetch gives now */
    memcpy(v, s->cur->values, sizeof *v * (size_t)s->n_syms);
  else
    st = resolve(s, v, false, fn); /* before the first run: the binding fed so far */
  if (!st) *shape = asg__shape_eval(s->g, s->g->nodes[id]->shape, v, &st);
  free(v);
  return st;
}

int asg_program_specialization_count(const asg_program *p) {
  asg__symprog *s = p ? asg__program_sym(p) : NULL;
  return s ? s->n_specs : 0;
}

size_t asg_program_specialization_bytes(const asg_program *p) {
  asg__symprog *s = p ? asg__program_sym(p) : NULL;
  size_t n = 0;
  for (int k = 0; s && k < s->n_specs; k++)
    n += s->specs[k]->bytes;
  return n;
}
