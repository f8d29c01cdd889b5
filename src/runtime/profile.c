/* The profiler (include/asg/profile.h): the record backends report step
 * times into, its aggregation by op and by name scope, the report of
 * ASG_PROFILE, and the per-op / per-step tables the GPU backends print. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "runtime/profile_internal.h"

void asg__profile_report(const char *backend, const char *unit, const double *op_ms,
                         const int64_t *op_calls, int runs) {
  double total = 0;
  int order[ASG_OP_COUNT], n = 0;
  if (runs <= 0) return;
  for (int i = 0; i < ASG_OP_COUNT; i++)
    if (op_calls[i]) order[n++] = i, total += op_ms[i];
  for (int i = 1; i < n; i++) /* by time, descending */
    for (int j = i; j > 0 && op_ms[order[j]] > op_ms[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  fprintf(stderr, "asg profile (%s): %d runs, %.3f ms per run\n", backend, runs, total / runs);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "  %-28s %9.3f ms/run %6.1f%%  %lld %s/run\n", asg__op_name((asg_op)order[i]),
            op_ms[order[i]] / runs, 100 * op_ms[order[i]] / (total > 0 ? total : 1),
            (long long)(op_calls[order[i]] / runs), unit);
}

int asg__profile_level(void) {
  const char *e = getenv("ASG_PROFILE");
  return e && e[0] && e[0] != '0' ? atoi(e) > 1 ? 2 : 1 : 0;
}

void asg__prof_tdesc_str(const asg_tdesc *d, char *buf, size_t n) {
  char sh[96];
  snprintf(buf, n, "%s%s", asg_dtype_name(d->dtype), asg_shape_str(d->shape, sh, sizeof sh));
}

typedef struct step_sig {
  char sig[512];
  double ms;
  int count, first;
} step_sig;

void asg__profile_steps(const char *backend, const asg_plan *plan, const double *step_ms, int runs,
                        int top) {
  if (runs <= 0 || asg__profile_level() < 2 || plan->n_steps <= 0) return;
  /* steps of one op with the same shapes and integer attributes (the
   * transposes of a matmul) are one line */
  step_sig *g = calloc((size_t)plan->n_steps, sizeof *g);
  if (!g) return;
  int n = 0;
  for (int i = 0; i < plan->n_steps; i++) {
    const asg_step *s = &plan->steps[i];
    char sig[512], o[128], a[128] = "", b[128] = "";
    asg__prof_tdesc_str(&s->out, o, sizeof o);
    if (s->n_in > 0) asg__prof_tdesc_str(&s->in[0], a, sizeof a);
    if (s->n_in > 1) asg__prof_tdesc_str(&s->in[1], b, sizeof b);
    snprintf(sig, sizeof sig, "%-26s %s <- %s %s%s (i %lld %lld)", asg__op_name(s->op), o, a, b,
             s->n_in > 2 ? " ..." : "", (long long)s->attr.i[0], (long long)s->attr.i[1]);
    int k = 0;
    while (k < n && strcmp(g[k].sig, sig) != 0)
      k++;
    if (k == n) {
      memcpy(g[n].sig, sig, sizeof sig);
      g[n++].first = i;
    }
    g[k].ms += step_ms[i];
    g[k].count++;
  }
  for (int i = 1; i < n; i++) /* by time, descending */
    for (int j = i; j > 0 && g[j].ms > g[j - 1].ms; j--) {
      step_sig t = g[j];
      g[j] = g[j - 1];
      g[j - 1] = t;
    }
  fprintf(stderr, "asg profile (%s): slowest kinds of step (ms per run, steps per run, first)\n",
          backend);
  for (int k = 0; k < top && k < n; k++)
    fprintf(stderr, "  %8.3f ms %4d x  #%-5d %s\n", g[k].ms / runs, g[k].count, g[k].first,
            g[k].sig);
  free(g);
}

/* ---- the record ---- */

double asg__prof_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* The name scope of a step: its label without the op ("scope/op", or
 * "scope/assign (copy of 'v')" for an assign's snapshot). */
static void step_scope(const asg_step *s, char *out, size_t n) {
  const char *l = s->label, *op = asg__op_name(s->op), *copy = strstr(l, "assign (copy of '");
  size_t len = strlen(l), ol = strlen(op), k = 0;
  if (copy)
    k = (size_t)(copy - l);
  else if (len > ol && strcmp(l + len - ol, op) == 0 && l[len - ol - 1] == '/')
    k = len - ol;
  else if (strrchr(l, '/')) /* a label cut short: up to its last '/' */
    k = (size_t)(strrchr(l, '/') - l) + 1;
  if (k) k--; /* the '/' before the op */
  if (k >= n) k = n - 1;
  memcpy(out, l, k);
  out[k] = '\0';
}

static void prof_clear_run(asg__prof *p) {
  for (int i = 0; i < p->n; i++)
    p->cur_start[i] = -1, p->cur_dur[i] = 0;
  p->reported = false;
}

static asg__prof *prof_new(const asg_backend *be, void *exec, int level) {
  const asg_plan *plan = be->exec_profile ? be->exec_profile(exec, NULL) : NULL;
  if (!plan) {
    asg__error(ASG_ERR_UNSUPPORTED,
               "profile: backend '%s' %s: enable profiling when compiling "
               "(asg_compile_opts.profile or ASG_PROFILE=1)",
               be->name,
               be->exec_profile ? "times steps only in programs compiled for profiling"
                                : "has no profiler");
    return NULL;
  }
  asg__prof *p = calloc(1, sizeof *p);
  size_t n = (size_t)plan->n_steps + 1;
  if (p) {
    p->cur_start = calloc(n, sizeof(double));
    p->cur_dur = calloc(n, sizeof(double));
    p->sum_ms = calloc(n, sizeof(double));
    p->last_ms = calloc(n, sizeof(double));
    p->tr_start = calloc(n * ASG_PROF_TRACE_RUNS, sizeof(double));
    p->tr_dur = calloc(n * ASG_PROF_TRACE_RUNS, sizeof(double));
    p->scope = calloc(n, sizeof *p->scope);
  }
  if (!p || !p->cur_start || !p->cur_dur || !p->sum_ms || !p->last_ms || !p->tr_start ||
      !p->tr_dur || !p->scope) {
    asg__prof_free(p);
    asg__error(ASG_ERR_OOM, "profile: out of memory for %d steps", plan->n_steps);
    return NULL;
  }
  p->be = be;
  p->exec = exec;
  p->plan = plan;
  p->n = plan->n_steps;
  p->level = level;
  p->epoch = asg__prof_now_ms();
  for (int i = 0; i < p->n; i++)
    step_scope(&plan->steps[i], p->scope[i], sizeof p->scope[i]);
  prof_clear_run(p);
  return p;
}

static asg_status prof_fill(asg__prof *p, asg_profile *out);

static void prof_free_views(asg__prof *p) {
  free(p->steps);
  free(p->ops);
  free(p->scopes);
  free(p->scope_names);
  p->steps = NULL, p->ops = p->scopes = NULL, p->scope_names = NULL;
}

void asg__prof_free(asg__prof *p) {
  if (!p) return;
  if (p->runs && asg__profile_level()) { /* ASG_PROFILE's report */
    asg_profile r;
    if (prof_fill(p, &r) == ASG_OK) asg_profile_print(&r, stderr, 20);
    if (p->level > 1 && !strcmp(p->be->name, "cpu")) /* the GPU backends print their own */
      asg__profile_steps("cpu", p->plan, p->sum_ms, (int)p->runs, 40);
  }
  if (p->be && p->be->exec_profile) p->be->exec_profile(p->exec, NULL);
  prof_free_views(p);
  free(p->cur_start);
  free(p->cur_dur);
  free(p->sum_ms);
  free(p->last_ms);
  free(p->tr_start);
  free(p->tr_dur);
  free(p->scope);
  free(p);
}

void asg__prof_step(asg__prof *p, int step, double start_ms, double dur_ms) {
  if (!p || step < 0 || step >= p->n) return;
  if (p->cur_start[step] < 0 || start_ms < p->cur_start[step]) p->cur_start[step] = start_ms;
  p->cur_dur[step] += dur_ms > 0 ? dur_ms : 0;
  p->reported = true;
}

void asg__prof_run_begin(asg__prof *p) {
  if (p->on) p->run_t0 = asg__prof_now_ms() - p->epoch;
}

void asg__prof_run_end(asg__prof *p, asg_status st, const asg_backend *be, void *dev) {
  if (!p->on) return;
  const double wall = asg__prof_now_ms() - p->epoch - p->run_t0;
  if (st == ASG_OK && p->reported) {
    const int k = p->tr_next;
    double *ts = p->tr_start + (size_t)k * (size_t)p->n, *td = p->tr_dur + (size_t)k * (size_t)p->n;
    for (int i = 0; i < p->n; i++) {
      p->sum_ms[i] += p->cur_dur[i];
      p->last_ms[i] = p->cur_dur[i];
      ts[i] = p->cur_start[i];
      td[i] = p->cur_dur[i];
    }
    p->tr_t0[k] = p->run_t0;
    p->tr_wall[k] = wall;
    p->tr_run[k] = p->runs;
    p->tr_next = (k + 1) % ASG_PROF_TRACE_RUNS;
    if (p->tr_count < ASG_PROF_TRACE_RUNS) p->tr_count++;
    p->runs++;
    p->run_ms += wall;
    if (be->memory_stats) {
      size_t nb = 0, bytes = 0;
      be->memory_stats(dev, &nb, &bytes);
      if (bytes > p->dev_peak) p->dev_peak = bytes;
    }
  }
  prof_clear_run(p);
}

asg_status asg__prof_start(asg__prof **slot, const asg_backend *be, void *exec, int level) {
  if (!*slot && !(*slot = prof_new(be, exec, level))) return asg__last_status();
  (*slot)->level = level;
  be->exec_profile(exec, *slot);
  (*slot)->on = true;
  return ASG_OK;
}

/* ---- aggregation ---- */

static int cmp_ms_desc(const void *a, const void *b) {
  const double x = ((const asg_profile_group *)a)->ms, y = ((const asg_profile_group *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Path order: a scope right before its inner scopes ('/' sorts first). */
static int cmp_path(const void *a, const void *b) {
  const unsigned char *x = (const unsigned char *)((const asg_profile_group *)a)->name,
                      *y = (const unsigned char *)((const asg_profile_group *)b)->name;
  for (;; x++, y++) {
    int cx = *x == '/' ? 1 : *x ? *x + 1 : 0, cy = *y == '/' ? 1 : *y ? *y + 1 : 0;
    if (cx != cy || !cx) return cx - cy;
  }
}

/* The scope group named by the first len bytes of path, added if new. */
static asg_profile_group *scope_group(asg__prof *p, int *n, const char *path, size_t len) {
  for (int k = 0; k < *n; k++)
    if (strlen(p->scope_names[k]) == len && !memcmp(p->scope_names[k], path, len))
      return &p->scopes[k];
  asg_profile_group *g = &p->scopes[*n];
  memcpy(p->scope_names[*n], path, len);
  p->scope_names[*n][len] = '\0';
  int depth = len > 0;
  for (size_t i = 0; i < len; i++)
    depth += path[i] == '/';
  *g = (asg_profile_group){p->scope_names[*n], depth, 0, 0, 0};
  (*n)++;
  return g;
}

static asg_status prof_fill(asg__prof *p, asg_profile *out) {
  if (!p->runs)
    return asg__error(ASG_ERR_INVALID,
                      "asg_program_profile_get: no profiled run completed yet (profiling is %s)",
                      p->on ? "on" : "off");
  prof_free_views(p);
  int max_groups = 1; /* the top level, then every prefix of every step's scope */
  for (int i = 0; i < p->n; i++)
    for (const char *c = p->scope[i]; *c; c++)
      max_groups += *c == '/' || !c[1];
  p->steps = calloc((size_t)p->n + 1, sizeof *p->steps);
  p->ops = calloc(ASG_OP_COUNT, sizeof *p->ops);
  p->scopes = calloc((size_t)max_groups, sizeof *p->scopes);
  p->scope_names = calloc((size_t)max_groups, sizeof *p->scope_names);
  if (!p->steps || !p->ops || !p->scopes || !p->scope_names) {
    prof_free_views(p);
    return asg__error(ASG_ERR_OOM, "asg_program_profile_get: out of memory");
  }
  const double runs = (double)p->runs;
  double total = 0;
  int n_scopes = 0;
  for (int i = 0; i < p->n; i++) {
    const asg_step *s = &p->plan->steps[i];
    const double ms = p->sum_ms[i] / runs;
    p->steps[i] = (asg_profile_step){s->label, asg__op_name(s->op), p->scope[i], s->node_id,
                                     ms,       p->last_ms[i]};
    total += ms;
    asg_profile_group *o = &p->ops[s->op];
    o->name = asg__op_name(s->op);
    o->steps++;
    o->ms += ms;
    o->self_ms += ms;
    /* the step counts in its scope and every outer one (the top level too) */
    const char *sc = p->scope[i];
    const size_t len = strlen(sc);
    scope_group(p, &n_scopes, sc, 0)->ms += ms;
    for (size_t k = 1; k <= len; k++)
      if (k == len || sc[k] == '/') scope_group(p, &n_scopes, sc, k)->ms += ms;
    asg_profile_group *own = scope_group(p, &n_scopes, sc, len);
    own->self_ms += ms;
    own->steps++;
  }
  int n_ops = 0;
  for (int op = 0; op < ASG_OP_COUNT; op++)
    if (p->ops[op].steps) p->ops[n_ops++] = p->ops[op];
  qsort(p->ops, (size_t)n_ops, sizeof *p->ops, cmp_ms_desc);
  qsort(p->scopes, (size_t)n_scopes, sizeof *p->scopes, cmp_path);
  *out = (asg_profile){p->be->name, p->level, p->runs,  p->run_ms / runs, total, p->n, p->steps,
                       n_ops,       p->ops,   n_scopes, p->scopes,        0,     0,    p->dev_peak};
  return ASG_OK;
}

/* ---- the public calls ---- */

static asg_status prof_of(asg_program *p, const char *fn, asg__prof **prof) {
  const asg_backend *be;
  void *exec;
  if (!p) return asg__error(ASG_ERR_INVALID, "%s: program is NULL", fn);
  asg__prof **slot = asg__program_prof_slot(p, &be, &exec);
  if (!slot) return asg__last_status();
  if (!*slot)
    return asg__error(ASG_ERR_INVALID,
                      "%s: the program was not profiled (asg_program_profile_start, "
                      "asg_compile_opts.profile or ASG_PROFILE=1)",
                      fn);
  *prof = *slot;
  return ASG_OK;
}

asg_status asg_program_profile_start(asg_program *p, int level) {
  const asg_backend *be;
  void *exec;
  if (!p) return asg__error(ASG_ERR_INVALID, "asg_program_profile_start: program is NULL");
  if (level < 1 || level > 2)
    return asg__error(ASG_ERR_INVALID, "asg_program_profile_start: level is %d; give 1 or 2",
                      level);
  asg__prof **slot = asg__program_prof_slot(p, &be, &exec);
  return slot ? asg__prof_start(slot, be, exec, level) : asg__last_status();
}

asg_status asg_program_profile_stop(asg_program *p) {
  asg__prof *prof = NULL;
  asg_status st = prof_of(p, "asg_program_profile_stop", &prof);
  if (st) return st;
  prof->be->exec_profile(prof->exec, NULL); /* back to the untimed run */
  prof->on = false;
  return ASG_OK;
}

asg_status asg_program_profile_reset(asg_program *p) {
  asg__prof *prof = NULL;
  asg_status st = prof_of(p, "asg_program_profile_reset", &prof);
  if (st) return st;
  prof_free_views(prof);
  for (int i = 0; i < prof->n; i++)
    prof->sum_ms[i] = prof->last_ms[i] = 0;
  prof->runs = 0;
  prof->run_ms = 0;
  prof->dev_peak = 0;
  prof->tr_count = prof->tr_next = 0;
  prof_clear_run(prof);
  return ASG_OK;
}

asg_status asg_program_profile_get(asg_program *p, asg_profile *out) {
  asg__prof *prof = NULL;
  asg_status st = prof_of(p, "asg_program_profile_get", &prof);
  if (!st && !out) st = asg__error(ASG_ERR_INVALID, "asg_program_profile_get: out is NULL");
  if (!st) st = prof_fill(prof, out);
  if (st) return st;
  out->arena_bytes = asg_program_peak_memory(p);
  out->persistent_bytes = asg_program_persistent_memory(p);
  return ASG_OK;
}

/* ---- the tables ---- */

static double mib(size_t b) { return (double)b / (1 << 20); }

asg_status asg_profile_print(const asg_profile *r, FILE *f, int top) {
  if (!r || !f) return asg__error(ASG_ERR_INVALID, "asg_profile_print: NULL argument");
  if (top <= 0) top = 20;
  const double tot = r->steps_ms > 0 ? r->steps_ms : 1;
  fprintf(f, "asg profile (%s): %llu runs, %.3f ms per run, steps %.3f ms\n", r->backend,
          (unsigned long long)r->runs, r->run_ms, r->steps_ms);
  /* the report at free knows no program: its arena / persistent bytes are 0 */
  if (r->arena_bytes || r->persistent_bytes)
    fprintf(f, "memory: arena %.2f MiB, persistent %.2f MiB, ", mib(r->arena_bytes),
            mib(r->persistent_bytes));
  else
    fprintf(f, "memory: ");
  if (r->device_peak_bytes)
    fprintf(f, "device peak %.2f MiB\n", mib(r->device_peak_bytes));
  else
    fprintf(f, "device peak not counted\n");
  fprintf(f, "by op:\n");
  for (int i = 0; i < r->n_ops; i++)
    fprintf(f, "  %-28s %9.3f ms %6.1f%% %5d steps\n", r->ops[i].name, r->ops[i].ms,
            100 * r->ops[i].ms / tot, r->ops[i].steps);
  fprintf(f, "by scope (with inner scopes; self: its own steps):\n");
  for (int i = 0; i < r->n_scopes; i++) {
    const asg_profile_group *g = &r->scopes[i];
    fprintf(f, "  %-40s %9.3f ms %6.1f%%  self %9.3f ms %5d steps\n",
            g->name[0] ? g->name : "(all)", g->ms, 100 * g->ms / tot, g->self_ms, g->steps);
  }
  int *order = malloc(sizeof *order * ((size_t)r->n_steps + 1));
  if (!order) return asg__error(ASG_ERR_OOM, "asg_profile_print: out of memory");
  for (int i = 0; i < r->n_steps; i++)
    order[i] = i;
  for (int i = 1; i < r->n_steps; i++) /* by time, descending (stable) */
    for (int j = i; j > 0 && r->steps[order[j]].ms > r->steps[order[j - 1]].ms; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  fprintf(f, "slowest steps:\n");
  for (int k = 0; k < top && k < r->n_steps; k++)
    fprintf(f, "  #%-5d %9.3f ms %6.1f%%  %s\n", order[k], r->steps[order[k]].ms,
            100 * r->steps[order[k]].ms / tot, r->steps[order[k]].name);
  free(order);
  return ASG_OK;
}
