/* Planner: the optimizer's Adam updates grouped into multi-tensor launches
 * (cuda_exec.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"

/* ---- multi-tensor Adam: grouping the optimizer's update steps ----
 * Each parameter's update is a triple of steps m' = adam_moment(m, g),
 * v' = adam_moment2(v, g), p' = adam_param(p, m', v', lr, bc1, bc2). Triples
 * of one (T, S) dtype pair are grouped; a group runs as one kernel at the
 * position of its last step (an adam_param) and its other steps launch
 * nothing. Moving a grouped step s later past a step X is safe when X
 * reads nothing s writes and writes nothing s reads or writes: each step X
 * between a group's first and last step is checked so against the grouped
 * steps before X, and the triples of a group against each other (they run
 * in one kernel). Any two steps whose order changes are then independent,
 * also when groups of different dtype pairs interleave (a grouped step
 * that moves past a step of another group was checked against it there). */
typedef asg_cuda_range brange;

typedef struct branges {
  brange *r;
  int n, cap;
} branges;

static bool br_push(branges *s, const void *p, size_t bytes) {
  if (!bytes) return true; /* empty ranges conflict with nothing */
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    brange *nr = realloc(s->r, sizeof *nr * (size_t)cap);
    if (!nr) return false;
    s->r = nr;
    s->cap = cap;
  }
  s->r[s->n++] = (brange){(uintptr_t)p, (uintptr_t)p + bytes};
  return true;
}

static bool br_hit(const branges *s, brange x) {
  for (int i = 0; i < s->n; i++)
    if (asg_cuda_overlap(s->r[i], x)) return true;
  return false;
}

static bool br_hits(const branges *a, const branges *b) {
  for (int i = 0; i < a->n; i++)
    if (br_hit(b, a->r[i])) return true;
  return false;
}

static bool br_append(branges *d, const branges *s) {
  for (int i = 0; i < s->n; i++)
    if (!br_push(d, (const void *)s->r[i].lo, s->r[i].hi - s->r[i].lo)) return false;
  return true;
}

/* The bytes step i reads and writes. */
static bool step_ranges(const asg_resolved *r, int i, branges *rd, branges *wr) {
  const asg_step *s = &r->plan.steps[i];
  for (int j = 0; j < s->n_in; j++)
    if (!br_push(rd, r->in[i][j], asg__tdesc_bytes(&s->in[j]))) return false;
  return br_push(wr, r->out[i], asg__tdesc_bytes(&s->out));
}

typedef struct adam_triple {
  int a, b, q; /* adam_moment, adam_moment2, adam_param steps */
} adam_triple;

static bool is_float(asg_dtype d) { return d == ASG_F32 || d == ASG_F64; }

/* Whether triple t is well formed and can run as one elementwise pass:
 * dtypes, sizes, the same g for both moments, and aliasing within it (an
 * output may only be the very buffer of the input it replaces: m' of m, v'
 * of v, p' of p; nothing else the triple reads may touch its outputs). */
static bool triple_ok(const asg_resolved *r, adam_triple t) {
  const asg_step *a = &r->plan.steps[t.a], *b = &r->plan.steps[t.b], *q = &r->plan.steps[t.q];
  if (a->n_in != 2 || b->n_in != 2 || q->n_in != 6) return false;
  const asg_dtype T = q->out.dtype, S = q->in[3].dtype;
  if (!is_float(T) || !is_float(S)) return false;
  const int64_t n = asg_shape_numel(q->out.shape);
  const asg_tdesc *el[] = {&a->out,   &a->in[0], &a->in[1], &b->out,  &b->in[0],
                           &b->in[1], &q->in[0], &q->in[1], &q->in[2]};
  for (size_t k = 0; k < sizeof el / sizeof *el; k++)
    if (el[k]->dtype != T || asg_shape_numel(el[k]->shape) != n) return false;
  for (int k = 3; k < 6; k++)
    if (q->in[k].dtype != S || asg_shape_numel(q->in[k].shape) != 1) return false;
  if (r->in[t.a][1] != r->in[t.b][1] || r->in[t.q][1] != r->out[t.a] ||
      r->in[t.q][2] != r->out[t.b])
    return false;
  const size_t bytes = (size_t)n * asg_dtype_size(T), sb = asg_dtype_size(S);
  if (!bytes) return true;
  const brange w[3] = {{(uintptr_t)r->out[t.a], (uintptr_t)r->out[t.a] + bytes},
                       {(uintptr_t)r->out[t.b], (uintptr_t)r->out[t.b] + bytes},
                       {(uintptr_t)r->out[t.q], (uintptr_t)r->out[t.q] + bytes}};
  /* m, v, p: each may be exactly its own output and must not touch the others */
  const void *own[3] = {r->in[t.a][0], r->in[t.b][0], r->in[t.q][0]};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) {
      const uintptr_t lo = (uintptr_t)own[i];
      const bool hit = w[k].lo < lo + bytes && lo < w[k].hi;
      if (i == k ? hit && lo != w[k].lo : hit) return false;
      if (i < k && w[i].lo < w[k].hi && w[k].lo < w[i].hi) return false; /* outputs disjoint */
    }
  /* g and the scalars touch no output */
  const brange other[4] = {{(uintptr_t)r->in[t.a][1], (uintptr_t)r->in[t.a][1] + bytes},
                           {(uintptr_t)r->in[t.q][3], (uintptr_t)r->in[t.q][3] + sb},
                           {(uintptr_t)r->in[t.q][4], (uintptr_t)r->in[t.q][4] + sb},
                           {(uintptr_t)r->in[t.q][5], (uintptr_t)r->in[t.q][5] + sb}};
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 3; k++)
      if (w[k].lo < other[i].hi && other[i].lo < w[k].hi) return false;
  return true;
}

/* A group being built: its triples and the bytes its steps read and write. */
typedef struct open_group {
  adam_triple *t;
  int n, cap;
  int last; /* position of the last step so far */
  branges rd, wr;
} open_group;

static void og_free(open_group *g) {
  free(g->t);
  free(g->rd.r), free(g->wr.r);
}

/* Tries to add triple t, whose steps all come after g->last, to g (an empty
 * g: g->last just before the triple's first step). Each step X after
 * g->last and before t.q that is not t's is checked against every grouped
 * step that comes before X: the group's and t's earlier ones (the steps
 * after X keep their order with X). Returns 1 if added, 0 if t cannot be,
 * -1 when out of memory. */
static int og_extend(const asg_resolved *r, open_group *g, adam_triple t) {
  branges trd = {0}, twr = {0}, prd = {0}, pwr = {0}, xrd = {0}, xwr = {0};
  int res = -1;
  if (!step_ranges(r, t.a, &trd, &twr) || !step_ranges(r, t.b, &trd, &twr) ||
      !step_ranges(r, t.q, &trd, &twr))
    goto out;
  res = 0;
  /* t against the triples already grouped (they run in the same kernel) */
  if (br_hits(&twr, &g->wr) || br_hits(&twr, &g->rd) || br_hits(&trd, &g->wr)) goto out;
  for (int i = g->last + 1; i < t.q; i++) {
    if (i == t.a || i == t.b) { /* prd, pwr: t's steps before the next X */
      if (!step_ranges(r, i, &prd, &pwr)) {
        res = -1;
        goto out;
      }
      continue;
    }
    xrd.n = xwr.n = 0;
    if (!step_ranges(r, i, &xrd, &xwr)) {
      res = -1;
      goto out;
    }
    if (br_hits(&xrd, &g->wr) || br_hits(&xrd, &pwr) || br_hits(&xwr, &g->wr) ||
        br_hits(&xwr, &pwr) || br_hits(&xwr, &g->rd) || br_hits(&xwr, &prd))
      goto out;
  }
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 8;
    adam_triple *nt = realloc(g->t, sizeof *nt * (size_t)cap);
    if (!nt) {
      res = -1;
      goto out;
    }
    g->t = nt;
    g->cap = cap;
  }
  if (!br_append(&g->rd, &trd) || !br_append(&g->wr, &twr)) {
    res = -1;
    goto out;
  }
  g->t[g->n++] = t;
  g->last = t.q;
  res = 1;
out:
  free(trd.r), free(twr.r), free(prd.r), free(pwr.r), free(xrd.r), free(xwr.r);
  return res;
}

void asg_cuda_adam_free(adam_fusion *f) {
  free(f->role), free(f->group), free(f->groups), free(f->tab);
  memset(f, 0, sizeof *f);
}

/* Emits open group g (if any) as a launch. */
static bool fusion_emit(const asg_resolved *r, adam_fusion *f, open_group *g) {
  if (!g->n) return true;
  adam_group *ng = realloc(f->groups, sizeof *ng * (size_t)(f->n_groups + 1));
  if (!ng) return false;
  f->groups = ng;
  asg_cuda_adam_tensor *nt = realloc(f->tab, sizeof *nt * (size_t)(f->n_tab + g->n));
  if (!nt) return false;
  f->tab = nt;
  adam_group *gr = &f->groups[f->n_groups];
  const asg_step *q0 = &r->plan.steps[g->t[0].q];
  *gr = (adam_group){f->n_tab, 0, 0, q0->out.dtype, q0->in[3].dtype};
  for (int k = 0; k < g->n; k++) {
    const adam_triple t = g->t[k];
    const asg_step *a = &r->plan.steps[t.a], *b = &r->plan.steps[t.b], *q = &r->plan.steps[t.q];
    const int64_t n = asg_shape_numel(q->out.shape);
    if (n <= 0) continue; /* nothing to do, as the separate kernels */
    f->tab[gr->first + gr->n++] = (asg_cuda_adam_tensor){
        .m_out = r->out[t.a],
        .v_out = r->out[t.b],
        .p_out = r->out[t.q],
        .m = r->in[t.a][0],
        .v = r->in[t.b][0],
        .p = r->in[t.q][0],
        .g = r->in[t.a][1],
        .lr = r->in[t.q][3],
        .bc1 = r->in[t.q][4],
        .bc2 = r->in[t.q][5],
        .beta1 = a->attr.f[0],
        .one_m1 = a->attr.f[1],
        .beta2 = b->attr.f[0],
        .one_m2 = b->attr.f[1],
        .eps = q->attr.f[0],
        .wd = q->attr.f[1],
        .n = n,
    };
  }
  gr->blocks = asg_cuda_adam_layout(f->tab + gr->first, gr->n, gr->t);
  if (gr->blocks > 0x7fffffff) { /* beyond one grid: leave the steps alone */
    g->n = 0;
    return true;
  }
  f->n_tab += gr->n;
  for (int k = 0; k < g->n; k++)
    f->role[g->t[k].a] = f->role[g->t[k].b] = f->role[g->t[k].q] = FUSE_SKIP;
  f->role[g->last] = FUSE_LAUNCH;
  f->group[g->last] = f->n_groups++;
  g->n = 0;
  return true;
}

/* Finds the Adam triples of the plan and groups them (see above). */
asg_status asg_cuda_adam_plan(const asg_resolved *r, adam_fusion *f) {
  const int n = r->plan.n_steps;
  memset(f, 0, sizeof *f);
  f->role = calloc((size_t)n + 1, 1);
  f->group = calloc((size_t)n + 1, sizeof *f->group);
  char *used = calloc((size_t)n + 1, 1);
  open_group og[4] = {{0}}; /* by (T, S): f32/f64 x f32/f64 */
  asg_status st = ASG_OK;
  if (!f->role || !f->group || !used) goto oom;
  for (int q = 0; q < n; q++) {
    const asg_step *s = &r->plan.steps[q];
    if (s->op != ASG_OP_ADAM_PARAM || s->n_in != 6) continue;
    /* the latest moment steps before q that wrote its inputs 1 and 2 */
    adam_triple t = {-1, -1, q};
    for (int i = q - 1; i >= 0 && (t.a < 0 || t.b < 0); i--) {
      const asg_op op = r->plan.steps[i].op;
      if (t.a < 0 && op == ASG_OP_ADAM_MOMENT && r->out[i] == r->in[q][1]) t.a = i;
      if (t.b < 0 && op == ASG_OP_ADAM_MOMENT2 && r->out[i] == r->in[q][2]) t.b = i;
    }
    if (t.a < 0 || t.b < 0 || used[t.a] || used[t.b] || !triple_ok(r, t)) continue;
    const int c = (s->out.dtype == ASG_F64) * 2 + (s->in[3].dtype == ASG_F64);
    open_group *g = &og[c];
    const int first = t.a < t.b ? t.a : t.b;
    int res = 0;
    if (g->n && first > g->last) res = og_extend(r, g, t);
    if (res == 0) { /* close the group, start one with t */
      if (!fusion_emit(r, f, g)) goto oom;
      g->n = g->rd.n = g->wr.n = 0;
      g->last = first - 1;
      res = og_extend(r, g, t);
    }
    if (res < 0) goto oom;
    if (res > 0) used[t.a] = used[t.b] = 1;
  }
  for (int c = 0; c < 4; c++)
    if (!fusion_emit(r, f, &og[c])) goto oom;
  goto done;
oom:
  st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
  asg_cuda_adam_free(f);
done:
  for (int c = 0; c < 4; c++)
    og_free(&og[c]);
  free(used);
  return st;
}
