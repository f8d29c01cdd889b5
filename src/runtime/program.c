/* Programs: compiled plan + buffers on one backend; feed, run, fetch. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"
#include "runtime/compile.h"
#include "runtime/inspect.h"
#include "core/symbol.h"
#include "runtime/profile_internal.h"
#include "runtime/program_internal.h"
#include "runtime/symbolic.h"

/* Variables live in a store that programs of one graph may share. The
 * store's lock (recursive) is held by every call that touches the store or
 * its device: a run, feeds and fetches, variable get/set, compiling a
 * program onto it and freeing one. Programs sharing a store may therefore
 * be used from different threads (one thread per program): their runs take
 * turns instead of racing on the variables. */
typedef struct asg_varstore {
  pthread_mutex_t lock;
  int refs;
  const asg_backend *be;
  void *dev;
  int n, cap;
  char **names;
  asg_tdesc *desc;
  void **bufs;
} asg_varstore;

typedef struct out_entry {
  const void *key; /* tensor pointer value: compared, never dereferenced */
  asg_buf_ref buf;
  asg_tdesc desc;
} out_entry;

struct asg_program {
  const asg_backend *be;
  asg_varstore *vs;
  void *arena;
  void **var_bufs, **const_bufs, **input_bufs;
  int n_vars, n_consts, n_inputs;
  char **input_names;
  asg_tdesc *input_desc;
  bool *fed; /* input i was fed since compile */
  out_entry *outs;
  int n_outs;
  void *exec;
  uint64_t runs;
  size_t arena_bytes, persistent_bytes;
  int n_steps;
  asg__optim_info optim;    /* set by asg_compile_train */
  int streak_slot;          /* store slot of the guard's skip counter, or -1 */
  asg__symprog *sym;        /* a symbolic program (symbolic.c), else NULL */
  asg__prof *prof;          /* the profiler (profile.c), or NULL */
  asg__inspect *insp;       /* taps, anomaly mode, node callback (inspect.c) */
  asg__plan_info plan_info; /* for graph export (plan_info.c) */
};

const asg_backend *asg__backend_find(const char *name) {
  if (!name || strcmp(name, "cpu") == 0) return &asg__backend_cpu;
#ifdef ASG_HAVE_CUDA
  if (strcmp(name, "cuda") == 0) return &asg__backend_cuda;
#endif
#ifdef ASG_HAVE_VULKAN
  if (strcmp(name, "vulkan") == 0) return &asg__backend_vulkan;
#endif
  if (strcmp(name, "cuda") == 0 || strcmp(name, "vulkan") == 0) {
    asg__error(ASG_ERR_UNSUPPORTED, "backend '%s' is not compiled into this build of ASG", name);
    return NULL;
  }
  asg__error(ASG_ERR_NOT_FOUND, "unknown backend '%s' (known: cpu, cuda, vulkan)", name);
  return NULL;
}

bool asg_backend_available(const char *name) {
  const asg_backend *be = asg__backend_find(name);
  return be && be->available();
}

static void store_lock(asg_varstore *vs) {
  if (vs) pthread_mutex_lock(&vs->lock);
}
static void store_unlock(asg_varstore *vs) {
  if (vs) pthread_mutex_unlock(&vs->lock);
}

static asg_varstore *store_new(void) {
  asg_varstore *vs = calloc(1, sizeof *vs);
  pthread_mutexattr_t a;
  bool ok = vs && pthread_mutexattr_init(&a) == 0;
  if (ok) {
    ok = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE) == 0 &&
         pthread_mutex_init(&vs->lock, &a) == 0;
    pthread_mutexattr_destroy(&a);
  }
  if (!ok) {
    free(vs);
    asg__error(ASG_ERR_OOM, "asg_compile: cannot create the variable store");
    return NULL;
  }
  vs->refs = 1;
  return vs;
}

static void store_release(asg_varstore *vs) {
  if (!vs) return;
  store_lock(vs);
  int left = --vs->refs;
  store_unlock(vs);
  if (left > 0) return;
  for (int i = 0; i < vs->n; i++) {
    if (vs->bufs[i]) vs->be->buffer_free(vs->dev, vs->bufs[i]);
    free(vs->names[i]);
  }
  free(vs->names);
  free(vs->desc);
  free(vs->bufs);
  if (vs->dev) vs->be->device_close(vs->dev);
  pthread_mutex_destroy(&vs->lock);
  free(vs);
}

static int store_find(const asg_varstore *vs, const char *name) {
  for (int i = 0; i < vs->n; i++)
    if (strcmp(vs->names[i], name) == 0) return i;
  return -1;
}

/* Finds or creates (and initializes) the store slot of variable t. */
static asg_status store_get(asg_varstore *vs, const asg_tensor *t, int *slot) {
  char b1[96], b2[96];
  int i = store_find(vs, t->name);
  if (i >= 0) {
    if (vs->desc[i].dtype != t->dtype || !asg_shape_equal(vs->desc[i].shape, t->shape))
      return asg__error(ASG_ERR_SHAPE, "variable '%s': shared store has %s %s, graph has %s %s",
                        t->name, asg_dtype_name(vs->desc[i].dtype),
                        asg_shape_str(vs->desc[i].shape, b1, sizeof b1), asg_dtype_name(t->dtype),
                        asg_shape_str(t->shape, b2, sizeof b2));
    *slot = i;
    return ASG_OK;
  }
  if (vs->n == vs->cap) {
    int cap = vs->cap ? vs->cap * 2 : 32;
    char **nn = realloc(vs->names, (size_t)cap * sizeof *nn);
    if (nn) vs->names = nn;
    asg_tdesc *nd = realloc(vs->desc, (size_t)cap * sizeof *nd);
    if (nd) vs->desc = nd;
    void **nb = realloc(vs->bufs, (size_t)cap * sizeof *nb);
    if (nb) vs->bufs = nb;
    if (!nn || !nd || !nb) return asg__error(ASG_ERR_OOM, "compile: out of memory");
    vs->cap = cap;
  }
  size_t bytes = (size_t)asg_shape_numel(t->shape) * asg_dtype_size(t->dtype);
  void *host = malloc(bytes ? bytes : 1);
  char *name = malloc(strlen(t->name) + 1);
  void *buf = NULL;
  asg_status st = host && name ? ASG_OK : asg__error(ASG_ERR_OOM, "compile: out of memory");
  if (!st) st = asg_init_fill(t->init, t->dtype, t->shape, 0, host);
  if (!st) st = vs->be->buffer_alloc(vs->dev, bytes, &buf);
  if (!st) st = vs->be->buffer_write(vs->dev, buf, 0, host, bytes);
  free(host);
  if (st) {
    if (buf) vs->be->buffer_free(vs->dev, buf);
    free(name);
    return st;
  }
  strcpy(name, t->name);
  vs->names[vs->n] = name;
  vs->desc[vs->n] = (asg_tdesc){t->dtype, t->shape};
  vs->bufs[vs->n] = buf;
  *slot = vs->n++;
  return ASG_OK;
}

/* Also frees partly built programs (a failed compile): any array may be
 * NULL while its count is already set. */
void asg_program_free(asg_program *p) {
  if (!p) return;
  asg__symp_free(p->sym);  /* its specializations, before the store they share */
  store_lock(p->vs);       /* the device may be shared with a program running elsewhere */
  asg__prof_free(p->prof); /* reads the exec's plan */
  if (p->exec) p->be->exec_destroy(p->exec);
  void *dev = p->vs ? p->vs->dev : NULL;
  for (int i = 0; p->const_bufs && i < p->n_consts; i++)
    if (p->const_bufs[i]) p->be->buffer_free(dev, p->const_bufs[i]);
  for (int i = 0; i < p->n_inputs; i++) {
    if (p->input_bufs && p->input_bufs[i]) p->be->buffer_free(dev, p->input_bufs[i]);
    if (p->input_names) free(p->input_names[i]);
  }
  if (p->arena) p->be->buffer_free(dev, p->arena);
  store_unlock(p->vs);
  free(p->var_bufs);
  free(p->const_bufs);
  free(p->input_bufs);
  free(p->input_names);
  free(p->input_desc);
  free(p->fed);
  free(p->outs);
  asg__inspect_free(p->insp);
  store_release(p->vs);
  free(p->plan_info.nodes);
  free(p);
}

const asg__plan_info *asg__program_plan_info(const asg_program *p) {
  return p && !p->sym && p->plan_info.nodes ? &p->plan_info : NULL;
}

static asg_status alloc_leaf(asg_program *p, const asg_tensor *t, void **buf, bool upload) {
  size_t bytes = (size_t)asg_shape_numel(t->shape) * asg_dtype_size(t->dtype);
  asg_status st = p->be->buffer_alloc(p->vs->dev, bytes, buf);
  if (!st && upload && t->op == ASG_OP_FILL) { /* a folded fill: its value, once */
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    st = asg_init_fill(asg_init_constant(t->attr.f[0]), t->dtype, t->shape, 0, host);
    if (!st) st = p->be->buffer_write(p->vs->dev, *buf, 0, host, bytes);
    free(host);
  } else if (!st && upload) {
    st = p->be->buffer_write(p->vs->dev, *buf, 0, t->data, bytes);
  }
  if (!st) p->persistent_bytes += bytes;
  return st;
}

/* asg__collective_check over the nodes the outputs need. */
static asg_status check_collectives(asg_graph *g, int n_out, asg_tensor *const *outs,
                                    asg_comm *comm, const char *backend) {
  char *need = calloc((size_t)g->n_nodes + 1, 1);
  if (!need) return asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
  asg__mark_needed(g, n_out, outs, need);
  asg_status st = asg__collective_check(g, need, comm, backend);
  free(need);
  return st;
}

asg_program *asg_compile(asg_graph *g, int n_out, asg_tensor *const *outs,
                         const asg_compile_opts *opts) {
  asg_compile_opts o = {0};
  if (opts) o = *opts;
  if (!g || g->magic != ASG_GRAPH_MAGIC) {
    asg__error(ASG_ERR_INVALID, "asg_compile: graph is NULL or not a graph");
    return NULL;
  }
  if (g->status != ASG_OK) {
    asg__error(ASG_ERR_GRAPH, "asg_compile: the graph has an error: %s", g->err);
    return NULL;
  }
  if (n_out <= 0 || !outs) {
    asg__error(ASG_ERR_INVALID, "asg_compile: no outputs given");
    return NULL;
  }
  for (int i = 0; i < n_out; i++)
    if (!outs[i] || outs[i]->magic != ASG_NODE_MAGIC || outs[i]->graph != g) {
      asg__error(ASG_ERR_INVALID, "asg_compile: output %d is NULL or not a tensor of this graph",
                 i);
      return NULL;
    }
  if (o.num_threads < 0) {
    asg__error(ASG_ERR_INVALID,
               "asg_compile: num_threads is %d; give a count >= 1, or 0 for the default",
               o.num_threads);
    return NULL;
  }
  const asg_backend *be = asg__backend_find(o.backend);
  if (!be) return NULL;
  if (!be->available()) {
    asg__error(ASG_ERR_UNSUPPORTED, "asg_compile: backend '%s' has no usable device", be->name);
    return NULL;
  }
  if (o.share_variables && o.share_variables->be != be) {
    asg__error(ASG_ERR_INVALID, "asg_compile: cannot share variables across backends (%s, %s)",
               o.share_variables->be->name, be->name);
    return NULL;
  }
  if (check_collectives(g, n_out, outs, o.comm, be->name)) return NULL;
  if (asg__graph_has_symbols(g))
    return asg__inspect_symbolic(&o) ? NULL : asg__symp_compile(g, n_out, outs, &o, be);
  /* taps are compiled as extra outputs: kept to the end of the run */
  asg__inspect *insp = NULL;
  asg_tensor *const *all = outs;
  int n_all = n_out;
  if (asg__inspect_new(g, n_out, outs, &o, &insp, &all, &n_all)) return NULL;
  asg_compiled c;
  if (asg__compile_graph(g, n_all, all, !o.no_fusion, &c)) {
    asg__inspect_free(insp);
    return NULL;
  }
  asg_program *p = calloc(1, sizeof *p);
  asg_status st = p ? ASG_OK : asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
  if (st) {
    asg__inspect_free(insp);
    goto fail;
  }
  p->insp = insp;
  p->be = be;
  p->streak_slot = -1;
  if (o.share_variables) {
    p->vs = o.share_variables->vs;
    store_lock(p->vs); /* held until the program is complete (or freed) */
    p->vs->refs++;
  } else {
    p->vs = store_new();
    if (!p->vs) {
      st = ASG_ERR_OOM;
      goto fail;
    }
    store_lock(p->vs);
    p->vs->be = be;
    st = be->device_open(o.num_threads, &p->vs->dev);
    if (st) goto fail;
  }
  p->n_vars = c.n_vars;
  p->n_consts = c.n_consts;
  p->n_inputs = c.n_inputs;
  p->var_bufs = calloc((size_t)c.n_vars + 1, sizeof(void *));
  p->const_bufs = calloc((size_t)c.n_consts + 1, sizeof(void *));
  p->input_bufs = calloc((size_t)c.n_inputs + 1, sizeof(void *));
  p->input_names = calloc((size_t)c.n_inputs + 1, sizeof(char *));
  p->input_desc = calloc((size_t)c.n_inputs + 1, sizeof(asg_tdesc));
  p->fed = calloc((size_t)c.n_inputs + 1, sizeof(bool));
  p->outs = calloc((size_t)(n_all + c.n_vars + c.n_inputs) + 1, sizeof(out_entry));
  if (!p->var_bufs || !p->const_bufs || !p->input_bufs || !p->input_names || !p->input_desc ||
      !p->fed || !p->outs) {
    st = asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    goto fail;
  }
  for (int i = 0; i < c.n_vars && !st; i++) {
    int slot = 0;
    st = store_get(p->vs, c.vars[i], &slot);
    if (!st) p->var_bufs[i] = p->vs->bufs[slot];
  }
  for (int i = 0; i < c.n_consts && !st; i++)
    st = alloc_leaf(p, c.consts[i], &p->const_bufs[i], true);
  for (int i = 0; i < c.n_inputs && !st; i++) {
    st = alloc_leaf(p, c.inputs[i], &p->input_bufs[i], false);
    p->input_desc[i] = (asg_tdesc){c.inputs[i]->dtype, c.inputs[i]->shape};
    p->input_names[i] = malloc(strlen(c.inputs[i]->name) + 1);
    if (!st && !p->input_names[i]) st = asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    if (!st) strcpy(p->input_names[i], c.inputs[i]->name);
  }
  if (st) goto fail;
  /* fetchable tensors: outputs and taps, then variables and inputs of this plan */
  for (int i = 0; i < n_all; i++)
    p->outs[p->n_outs++] =
        (out_entry){all[i], c.node_buf[all[i]->id], (asg_tdesc){all[i]->dtype, all[i]->shape}};
  for (int i = 0; i < c.n_vars; i++)
    p->outs[p->n_outs++] = (out_entry){c.vars[i], c.node_buf[c.vars[i]->id],
                                       (asg_tdesc){c.vars[i]->dtype, c.vars[i]->shape}};
  for (int i = 0; i < c.n_inputs; i++)
    p->outs[p->n_outs++] = (out_entry){c.inputs[i], c.node_buf[c.inputs[i]->id],
                                       (asg_tdesc){c.inputs[i]->dtype, c.inputs[i]->shape}};
  p->arena_bytes = c.plan.arena_bytes;
  p->n_steps = c.plan.n_steps;
  st = asg__plan_info_build(g, &c, &p->plan_info);
  if (st) goto fail;
  st = be->buffer_alloc(p->vs->dev, c.plan.arena_bytes, &p->arena);
  if (st) goto fail;
  asg_buffers bufs = {p->arena, p->var_bufs, p->const_bufs, p->input_bufs};
  if (o.allow_tf32) c.plan.flags |= ASG_PLAN_TF32;
  if (o.bf16_matmul) c.plan.flags |= ASG_PLAN_BF16;
  if (o.fp16_matmul) c.plan.flags |= ASG_PLAN_F16;
  if (o.unchecked_indices) c.plan.flags |= ASG_PLAN_UNCHECKED_INDEX;
  if (asg__inspect_mode(insp) == ASG_CHECK_FINITE_STEP) c.plan.flags |= ASG_PLAN_CHECK_FINITE;
  const int prof_level = o.profile > 0 ? o.profile : asg__profile_level();
  if (prof_level) c.plan.flags |= ASG_PLAN_PROFILE;
  c.plan.comm = o.comm;
  st = be->exec_create(p->vs->dev, &c.plan, &bufs, &p->exec);
  /* a device without timers: an error for opts.profile, nothing for ASG_PROFILE */
  if (!st && prof_level && asg__prof_start(&p->prof, be, p->exec, prof_level > 1 ? 2 : 1) &&
      o.profile > 0)
    st = asg__last_status();
  if (st) goto fail;
  asg__compiled_free(&c);
  store_unlock(p->vs);
  return p;
fail:
  asg__compiled_free(&c);
  if (p) store_unlock(p->vs);
  asg_program_free(p);
  return NULL;
}

static int input_index(const asg_program *p, const char *name) {
  for (int i = 0; i < p->n_inputs; i++)
    if (strcmp(p->input_names[i], name) == 0) return i;
  return -1;
}

/* The index of input name, or a not-found error for fn. */
static asg_status find_input(const asg_program *p, const char *name, const char *fn, int *i) {
  *i = input_index(p, name);
  if (*i >= 0) return ASG_OK;
  return asg__error(ASG_ERR_NOT_FOUND,
                    "%s: program has no input named '%s' (inputs that the compiled outputs do "
                    "not depend on are not part of the program)",
                    fn, name);
}

asg_status asg_program_feed(asg_program *p, const char *name, const void *data, size_t nbytes) {
  if (!p || !name || !data) return asg__error(ASG_ERR_INVALID, "asg_program_feed: NULL argument");
  if (p->sym) return asg__symp_feed(p, p->sym, name, data, nbytes);
  int i;
  asg_status fs = find_input(p, name, "asg_program_feed", &i);
  if (fs) return fs;
  size_t want = asg__tdesc_bytes(&p->input_desc[i]);
  if (nbytes != want) {
    char b[96];
    return asg__error(ASG_ERR_SHAPE, "asg_program_feed: input '%s' is %s %s = %zu bytes, got %zu",
                      name, asg_dtype_name(p->input_desc[i].dtype),
                      asg_shape_str(p->input_desc[i].shape, b, sizeof b), want, nbytes);
  }
  store_lock(p->vs);
  asg_status st = p->be->buffer_write(p->vs->dev, p->input_bufs[i], 0, data, nbytes);
  store_unlock(p->vs);
  if (!st) p->fed[i] = true;
  return st;
}

asg_status asg_program_feed_tensor(asg_program *p, const char *name, asg_dtype dt, asg_shape shape,
                                   const void *data) {
  if (!p || !name || !data)
    return asg__error(ASG_ERR_INVALID, "asg_program_feed_tensor: NULL argument");
  if (p->sym) return asg__symp_feed_tensor(p, p->sym, name, dt, shape, data);
  int i;
  asg_status fs = find_input(p, name, "asg_program_feed_tensor", &i);
  if (fs) return fs;
  const asg_tdesc *d = &p->input_desc[i];
  char b1[96], b2[96];
  if (shape.ndim < 0 || shape.ndim > ASG_MAX_DIMS)
    return asg__error(ASG_ERR_SHAPE, "asg_program_feed_tensor: input '%s': rank %d given", name,
                      shape.ndim);
  if (dt != d->dtype || !asg_shape_equal(shape, d->shape))
    return asg__error(dt != d->dtype ? ASG_ERR_DTYPE : ASG_ERR_SHAPE,
                      "asg_program_feed_tensor: input '%s' is %s %s, got %s %s", name,
                      asg_dtype_name(d->dtype), asg_shape_str(d->shape, b1, sizeof b1),
                      asg_dtype_name(dt), asg_shape_str(shape, b2, sizeof b2));
  return asg_program_feed(p, name, data, asg__tdesc_bytes(d));
}

/* Every input must have been fed since compile: an unfed input buffer holds
 * whatever the allocator gave it. Names up to 4 of them. */
static asg_status check_fed(const asg_program *p) {
  int n = 0;
  char list[400] = "";
  size_t k = 0;
  for (int i = 0; i < p->n_inputs; i++) {
    if (p->fed[i]) continue;
    if (n < 4 && k < sizeof list)
      k += (size_t)snprintf(list + k, sizeof list - k, "%s'%.80s'", n ? ", " : "",
                            p->input_names[i]);
    n++;
  }
  if (!n) return ASG_OK;
  return asg__error(ASG_ERR_INVALID,
                    "asg_program_run: %d input%s never fed: %s%s (feed every input with "
                    "asg_program_feed before the first run)",
                    n, n == 1 ? " was" : "s were", list, n > 4 ? ", ..." : "");
}

/* The non-finite guard (asg_compile_train): fails once the counter of runs
 * skipped in a row reaches the limit. Called with the store locked. */
static asg_status check_skips(asg_program *p) {
  asg_varstore *vs = p->vs;
  unsigned char v[8];
  asg_dtype dt = vs->desc[p->streak_slot].dtype;
  asg_status st = p->be->buffer_read(vs->dev, vs->bufs[p->streak_slot], 0, v, asg_dtype_size(dt));
  if (st) return st;
  double streak;
  if (dt == ASG_F64) {
    memcpy(&streak, v, 8);
  } else {
    float f;
    memcpy(&f, v, 4);
    streak = f;
  }
  if (!(streak >= (double)p->optim.max_skips)) return ASG_OK;
  return asg__error(ASG_ERR_INVALID,
                    "asg_program_run: the last %.0f runs had non-finite gradients (inf or NaN) and "
                    "changed nothing (asg_optim.skip_nonfinite, limit max_skips = %lld): check the "
                    "inputs, the learning rate and the loss; asg_optim_get_stats tells the "
                    "counts and the loss scale",
                    streak, (long long)p->optim.max_skips);
}

static const out_entry *find_out(const asg_program *p, const asg_tensor *t);
static void *base_of(const asg_program *p, asg_buf_ref r);

/* Anomaly mode after the run (ASG_CHECK_FINITE_RUN): reads back each float
 * output, tap and variable of the plan; the first non-finite element fails
 * the run. Called with the store locked. */
static asg_status check_finite_run(asg_program *p) {
  const int n_vars_at = p->n_outs - p->n_inputs - p->n_vars; /* outputs and taps come first */
  void *host = NULL;
  size_t cap = 0;
  asg_status st = ASG_OK;
  for (int i = 0; i < p->n_outs - p->n_inputs && !st; i++) {
    const out_entry *e = &p->outs[i];
    if (!asg__dtype_is_float(e->desc.dtype) || find_out(p, e->key) != e) continue;
    const size_t n = asg__tdesc_bytes(&e->desc);
    if (n > cap) {
      void *nh = realloc(host, n);
      if (!nh) {
        st = asg__error(ASG_ERR_OOM, "asg_program_run: out of memory (check_finite)");
        break;
      }
      host = nh, cap = n;
    }
    st = p->be->buffer_read(p->vs->dev, base_of(p, e->buf), e->buf.offset, host, n);
    double v = 0;
    const int64_t k =
        st ? -1 : asg__first_nonfinite(e->desc.dtype, host, asg_shape_numel(e->desc.shape), &v);
    if (k < 0) continue;
    char sh[96];
    const char *lab = asg__inspect_label(p->insp, e->key);
    st = asg__error(ASG_ERR_NUMERIC,
                    "asg_program_run: non-finite value (check_finite) after run %llu: %s '%s' "
                    "(%s %s) holds %g at element %lld; check_finite = ASG_CHECK_FINITE_STEP "
                    "(ASG_CHECK_FINITE=2) finds the step that made it",
                    (unsigned long long)p->runs + 1, i < n_vars_at ? "output" : "variable",
                    lab ? lab : "?", asg_dtype_name(e->desc.dtype),
                    asg_shape_str(e->desc.shape, sh, sizeof sh), v, (long long)k);
  }
  free(host);
  return st;
}

asg_status asg_program_run(asg_program *p) {
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_run: program is NULL");
  if (p->sym) return asg__symp_run(p, p->sym);
  asg_status st = check_fed(p);
  if (st) return st;
  store_lock(p->vs); /* variables may be shared with a program on another thread */
  if (p->prof) asg__prof_run_begin(p->prof);
  st = p->be->exec_run(p->exec, p->runs);
  if (p->prof) asg__prof_run_end(p->prof, st, p->be, p->vs->dev);
  if (!st && asg__inspect_mode(p->insp) == ASG_CHECK_FINITE_RUN) st = check_finite_run(p);
  if (!st) p->runs++;
  if (!st && p->streak_slot >= 0) st = check_skips(p);
  store_unlock(p->vs);
  return st;
}

void asg__program_set_optim_info(asg_program *p, const asg__optim_info *info) {
  p->optim = *info;
  if (p->sym) asg__symp_set_optim_info(p->sym, info); /* the specializations run the guard */
  store_lock(p->vs);
  p->streak_slot = info->max_skips > 0 ? store_find(p->vs, "optim/skip_streak") : -1;
  store_unlock(p->vs);
}

const asg__optim_info *asg__program_optim_info(const asg_program *p) { return &p->optim; }

static const out_entry *find_out(const asg_program *p, const asg_tensor *t) {
  for (int i = 0; i < p->n_outs; i++)
    if (p->outs[i].key == (const void *)t) return &p->outs[i];
  return NULL;
}

static void *base_of(const asg_program *p, asg_buf_ref r) {
  switch (r.kind) {
  case ASG_BUF_ARENA: return p->arena;
  case ASG_BUF_VAR: return p->var_bufs[r.index];
  case ASG_BUF_CONST: return p->const_bufs[r.index];
  case ASG_BUF_INPUT: return p->input_bufs[r.index];
  }
  return NULL;
}

asg_status asg_program_fetch(asg_program *p, const asg_tensor *t, void *dst, size_t nbytes) {
  if (!p || !t || !dst) return asg__error(ASG_ERR_INVALID, "asg_program_fetch: NULL argument");
  if (p->sym) return asg__symp_fetch(p->sym, p, t, dst, nbytes);
  const out_entry *e = find_out(p, t);
  if (!e) return asg__inspect_not_found(p->insp, t, "asg_program_fetch");
  size_t want = asg__tdesc_bytes(&e->desc);
  if (nbytes != want)
    return asg__error(ASG_ERR_SHAPE, "asg_program_fetch: output is %zu bytes, buffer is %zu", want,
                      nbytes);
  store_lock(p->vs);
  asg_status st = p->be->buffer_read(p->vs->dev, base_of(p, e->buf), e->buf.offset, dst, nbytes);
  store_unlock(p->vs);
  return st;
}

asg_status asg_program_fetch_tap(asg_program *p, const char *name, void *dst, size_t nbytes) {
  if (!p || !name || !dst)
    return asg__error(ASG_ERR_INVALID, "asg_program_fetch_tap: NULL argument");
  const void *key = asg__inspect_tap(p->insp, name, "asg_program_fetch_tap");
  return key ? asg_program_fetch(p, key, dst, nbytes) : asg__last_status();
}

asg_status asg_program_set_node_callback(asg_program *p, asg_node_callback fn, void *ctx) {
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_set_node_callback: program is NULL");
  if (p->be != &asg__backend_cpu || p->sym)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "asg_program_set_node_callback: node callbacks need a static program on the "
                      "cpu backend (this one is %s%s); taps (asg_compile_opts.taps) work on every "
                      "backend",
                      p->sym ? "symbolic, on " : "", p->be->name);
  asg__inspect_set_callback(p->insp, fn, ctx);
  store_lock(p->vs);
  asg__cpu_set_hook(p->exec, fn ? asg__inspect_hook : NULL, p->insp);
  store_unlock(p->vs);
  return ASG_OK;
}

double asg_program_scalar(asg_program *p, const asg_tensor *t) {
  if (!p || !t) {
    asg__error(ASG_ERR_INVALID, "asg_program_scalar: NULL argument");
    return NAN;
  }
  if (p->sym) return asg__symp_scalar(p->sym, t);
  const out_entry *e = find_out(p, t);
  if (!e) {
    asg__inspect_not_found(p->insp, t, "asg_program_scalar");
    return NAN;
  }
  unsigned char v[8];
  size_t sz = asg_dtype_size(e->desc.dtype);
  if (sz > sizeof v) {
    asg__error(ASG_ERR_DTYPE, "asg_program_scalar: dtype %s", asg_dtype_name(e->desc.dtype));
    return NAN;
  }
  store_lock(p->vs);
  asg_status st = p->be->buffer_read(p->vs->dev, base_of(p, e->buf), e->buf.offset, v, sz);
  store_unlock(p->vs);
  if (st) return NAN;
  switch (e->desc.dtype) {
  case ASG_F32: {
    float f;
    memcpy(&f, v, 4);
    return f;
  }
  case ASG_F64: {
    double d;
    memcpy(&d, v, 8);
    return d;
  }
  case ASG_I32: {
    int32_t x;
    memcpy(&x, v, 4);
    return x;
  }
  case ASG_I64: {
    int64_t x;
    memcpy(&x, v, 8);
    return (double)x;
  }
  default: asg__error(ASG_ERR_DTYPE, "asg_program_scalar: dtype %s", asg_dtype_name(e->desc.dtype));
  }
  return NAN;
}

static asg_status var_slot(const asg_program *p, const char *name, size_t nbytes, const char *fn,
                           int *slot) {
  if (!p || !name) return asg__error(ASG_ERR_INVALID, "%s: NULL argument", fn);
  int i = store_find(p->vs, name);
  if (i < 0) return asg__error(ASG_ERR_NOT_FOUND, "%s: no variable named '%s'", fn, name);
  size_t want = asg__tdesc_bytes(&p->vs->desc[i]);
  if (nbytes != want)
    return asg__error(ASG_ERR_SHAPE, "%s: variable '%s' is %zu bytes, buffer is %zu", fn, name,
                      want, nbytes);
  *slot = i;
  return ASG_OK;
}

asg_status asg_program_get_variable(asg_program *p, const char *name, void *dst, size_t nbytes) {
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_get_variable: NULL argument");
  store_lock(p->vs);
  int i;
  asg_status st = var_slot(p, name, nbytes, "asg_program_get_variable", &i);
  if (!st && !dst) st = asg__error(ASG_ERR_INVALID, "asg_program_get_variable: dst is NULL");
  if (!st) st = p->be->buffer_read(p->vs->dev, p->vs->bufs[i], 0, dst, nbytes);
  store_unlock(p->vs);
  return st;
}

asg_status asg_program_set_variable(asg_program *p, const char *name, const void *src,
                                    size_t nbytes) {
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_set_variable: NULL argument");
  store_lock(p->vs);
  int i;
  asg_status st = var_slot(p, name, nbytes, "asg_program_set_variable", &i);
  if (!st && !src) st = asg__error(ASG_ERR_INVALID, "asg_program_set_variable: src is NULL");
  if (!st) st = p->be->buffer_write(p->vs->dev, p->vs->bufs[i], 0, src, nbytes);
  store_unlock(p->vs);
  return st;
}

int asg_program_variable_count(const asg_program *p) {
  if (!p) return 0;
  store_lock(p->vs);
  int n = p->vs->n;
  store_unlock(p->vs);
  return n;
}

asg_status asg_program_variable_info(const asg_program *p, int i, const char **name, asg_dtype *dt,
                                     asg_shape *shape) {
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_variable_info: program is NULL");
  asg_status st = ASG_OK;
  store_lock(p->vs);
  if (i < 0 || i >= p->vs->n) {
    st = asg__error(ASG_ERR_INVALID, "asg_program_variable_info: index %d out of range", i);
  } else {
    if (name) *name = p->vs->names[i]; /* never moves: the store only grows */
    if (dt) *dt = p->vs->desc[i].dtype;
    if (shape) *shape = p->vs->desc[i].shape;
  }
  store_unlock(p->vs);
  return st;
}

/* A symbolic program reports its current specialization (0 before any). */
size_t asg_program_peak_memory(const asg_program *p) {
  if (p && p->sym) return asg_program_peak_memory(asg__symp_current(p->sym));
  return p ? p->arena_bytes : 0;
}
size_t asg_program_persistent_memory(const asg_program *p) {
  if (!p) return 0;
  if (p->sym && asg__symp_current(p->sym))
    return asg_program_persistent_memory(asg__symp_current(p->sym));
  size_t n = p->persistent_bytes;
  store_lock(p->vs);
  for (int i = 0; i < p->vs->n; i++)
    n += asg__tdesc_bytes(&p->vs->desc[i]);
  store_unlock(p->vs);
  return n;
}
int asg_program_step_count(const asg_program *p) {
  if (p && p->sym) return asg_program_step_count(asg__symp_current(p->sym));
  return p ? p->n_steps : 0;
}
uint64_t asg_program_run_count(const asg_program *p) { return p ? p->runs : 0; }
void asg_program_set_run_count(asg_program *p, uint64_t n) {
  if (p) p->runs = n;
}
const char *asg_program_backend(const asg_program *p) { return p ? p->be->name : NULL; }

asg_status asg_program_device_memory(const asg_program *p, size_t *buffers, size_t *bytes) {
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_device_memory: program is NULL");
  if (!p->be->memory_stats)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "asg_program_device_memory: backend '%s' does not count its buffers",
                      p->be->name);
  size_t n = 0, b = 0;
  store_lock(p->vs); /* programs sharing the device allocate under this lock */
  p->be->memory_stats(p->vs->dev, &n, &b);
  store_unlock(p->vs);
  if (buffers) *buffers = n;
  if (bytes) *bytes = b;
  return ASG_OK;
}

/* ---- for symbolic programs (symbolic.h) ---- */
asg_program *asg__program_shell(const asg_backend *be, const asg_compile_opts *o,
                                asg__symprog *sym) {
  asg_program *p = calloc(1, sizeof *p);
  if (!p) {
    asg__symp_free(sym);
    asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
    return NULL;
  }
  p->be = be;
  p->streak_slot = -1;
  p->sym = sym;
  if (o->share_variables) {
    p->vs = o->share_variables->vs;
    store_lock(p->vs);
    p->vs->refs++;
    store_unlock(p->vs);
    return p;
  }
  p->vs = store_new();
  asg_status st = p->vs ? ASG_OK : ASG_ERR_OOM;
  if (!st) {
    p->vs->be = be;
    st = be->device_open(o->num_threads, &p->vs->dev);
  }
  if (st) {
    asg_program_free(p);
    return NULL;
  }
  return p;
}

asg_status asg__program_add_variable(asg_program *p, const asg_tensor *t) {
  int slot;
  store_lock(p->vs);
  asg_status st = store_get(p->vs, t, &slot);
  store_unlock(p->vs);
  return st;
}

size_t asg__program_own_bytes(const asg_program *p) { return p->arena_bytes + p->persistent_bytes; }

asg__symprog *asg__program_sym(const asg_program *p) { return p->sym; }

asg_status asg__program_out_shape(const asg_program *p, const asg_tensor *t, asg_shape *shape) {
  const out_entry *e = find_out(p, t);
  if (!e) return asg__inspect_not_found(p->insp, t, "asg_program_output_shape");
  *shape = e->desc.shape;
  return ASG_OK;
}

bool asg_backend_supports_op(const char *backend, int op) {
  const asg_backend *be = asg__backend_find(backend);
  return be && op >= 0 && op < ASG_OP_COUNT && be->supports((asg_op)op);
}

bool asg_backend_compiled(const char *name) { return asg__backend_find(name) != NULL; }

const char *asg_backend_device(const char *name) {
  static _Thread_local char buf[512];
  const asg_backend *be = asg__backend_find(name);
  if (!be || !be->available()) return NULL;
  be->describe(buf, sizeof buf);
  return buf;
}

asg__prof **asg__program_prof_slot(asg_program *p, const asg_backend **be, void **exec) {
  if (p->sym && !(p = asg__symp_current(p->sym))) {
    asg__error(ASG_ERR_INVALID, "profile: the symbolic program has not run yet");
    return NULL;
  }
  *be = p->be;
  *exec = p->exec;
  return &p->prof;
}
