/* Planner: collectives beside the compute (cuda_exec.h), on by default
 * (ASG_CUDA_COMM_OVERLAP=0 turns it off: see comm_plan in cuda_exec.c).
 *
 * A collective (NCCL) runs on the executor's second stream: the compute
 * stream records an event the second stream waits for (so the collective
 * sees every step before it), and the collective records one when done.
 * A later step waits for that event only when it touches the collective's
 * bytes: it reads what the collective writes, or writes what it reads or
 * writes. Everything else runs on meanwhile, so with the schedule's early
 * collectives (runtime/compile.c) a data-parallel gradient bucket travels
 * while the backward pass goes on. What a step touches here: its inputs and
 * output, those of the steps whose work it does (partners: a GEMM's
 * epilogue, a fused launch's members), and, conservatively, those of every
 * step before it that launched nothing (its work is done by some later
 * launch). Every collective is waited for at the end of the run.
 * Collectives keep their order on the one second stream. */
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"

typedef struct ranges {
  asg_cuda_range *r;
  int n, cap;
} ranges;

static bool push(ranges *s, const void *p, size_t bytes) {
  if (!bytes) return true; /* empty: conflicts with nothing */
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    asg_cuda_range *nr = realloc(s->r, sizeof *nr * (size_t)cap);
    if (!nr) return false;
    s->r = nr, s->cap = cap;
  }
  s->r[s->n++] = (asg_cuda_range){(uintptr_t)p, (uintptr_t)p + bytes};
  return true;
}

/* Step i's inputs into rd, its outputs (further ones too) into wr. */
static bool step_touch(const asg_resolved *r, int i, ranges *rd, ranges *wr) {
  const asg_step *s = &r->plan.steps[i];
  for (int j = 0; j < s->n_in; j++)
    if (!push(rd, r->in[i][j], asg__tdesc_bytes(&s->in[j]))) return false;
  for (int k = 0; k < s->n_aux; k++)
    if (!push(wr, r->aux[(size_t)i * ASG_MAX_AUX + k], asg__tdesc_bytes(&s->aux[k].out)))
      return false;
  return push(wr, r->out[i], asg__tdesc_bytes(&s->out));
}

static bool hits(const ranges *a, const ranges *b) {
  for (int i = 0; i < a->n; i++)
    for (int j = 0; j < b->n; j++)
      if (asg_cuda_overlap(a->r[i], b->r[j])) return true;
  return false;
}

/* A pending collective: its event pair and the bytes it reads and writes. */
typedef struct pending {
  int slot;
  ranges rd, wr;
} pending;

void asg_cuda_comm_free(comm_overlap *o) {
  free(o->slot), free(o->join_off), free(o->joins);
  memset(o, 0, sizeof *o);
}

asg_status asg_cuda_comm_plan(const asg_resolved *r, const char *quiet, const int *partner,
                              comm_overlap *o) {
  const int n = r->plan.n_steps;
  memset(o, 0, sizeof *o);
  int n_coll = 0;
  for (int i = 0; i < n; i++)
    n_coll += (asg__op_info[r->plan.steps[i].op].flags & ASG_OPF_COLL) != 0;
  if (!n_coll) return ASG_OK;
  o->slot = malloc(sizeof *o->slot * (size_t)n);
  o->join_off = calloc((size_t)n + 2, sizeof *o->join_off);
  o->joins = malloc(sizeof *o->joins * (size_t)n_coll); /* each collective is joined once */
  pending *p = calloc((size_t)n_coll, sizeof *p);
  ranges drd = {0}, dwr = {0}, trd = {0}, twr = {0}; /* quiet steps so far; this step */
  int np = 0, nj = 0;
  bool ok = o->slot && o->join_off && o->joins && p;
  for (int i = 0; ok && i <= n; i++) {
    o->join_off[i] = nj;
    if (i < n && (asg__op_info[r->plan.steps[i].op].flags & ASG_OPF_COLL)) {
      o->slot[i] = o->n_slots;
      p[np] = (pending){.slot = o->n_slots++}; /* fresh ranges (a joined entry moved away) */
      ok = step_touch(r, i, &p[np].rd, &p[np].wr);
      np++;
      continue;
    }
    if (i < n) {
      o->slot[i] = -1;
      if (quiet[i]) { /* launches nothing now: its work comes with a later launch */
        ok = step_touch(r, i, &drd, &dwr);
        continue;
      }
      trd.n = twr.n = 0;
      ok = step_touch(r, i, &trd, &twr);
      for (int k = 0; ok && k < ASG_CUDA_PARTNERS; k++)
        if (partner[i * ASG_CUDA_PARTNERS + k] >= 0)
          ok = step_touch(r, partner[i * ASG_CUDA_PARTNERS + k], &trd, &twr);
    }
    for (int k = 0; ok && k < np;) {
      /* the end waits for all; a step for the ones whose bytes it touches */
      bool wait = i == n || hits(&twr, &p[k].rd) || hits(&twr, &p[k].wr) || hits(&trd, &p[k].wr) ||
                  hits(&dwr, &p[k].rd) || hits(&dwr, &p[k].wr) || hits(&drd, &p[k].wr);
      if (!wait) {
        k++;
        continue;
      }
      o->joins[nj++] = p[k].slot;
      free(p[k].rd.r), free(p[k].wr.r);
      p[k] = p[--np];
      p[np] = (pending){0}; /* its ranges now belong to p[k] */
    }
  }
  if (ok) o->join_off[n + 1] = nj;
  for (int k = 0; k < np; k++)
    free(p[k].rd.r), free(p[k].wr.r);
  free(p), free(drd.r), free(dwr.r), free(trd.r), free(twr.r);
  if (!ok) {
    asg_cuda_comm_free(o);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  return ASG_OK;
}
