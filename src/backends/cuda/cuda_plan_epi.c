/* Planner: GEMM epilogues (bias gradient), residual add before layernorm
 * (cuda_exec.h). (Row dot products are the rowdot op now:
 * src/passes/fuse_rowdot.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"

/* ---- GEMM epilogues ----
 * A linear layer's bias and activation come with the product itself: the
 * fusion pass makes matmul_bias_act (src/passes/fuse_linear.c), which
 * cuda_matmul.cu runs with cuBLASLt's epilogue. Planned here, over the
 * resolved plan: a bias gradient out of a nearby product's BGRADB epilogue,
 * a residual add into the layernorm after it. A folded step's output is
 * then written at its partner's turn, so no step in between may read or
 * write it or write its inputs. ASG_CUDA_EPILOGUE=0 turns these off. */
void asg_cuda_epi_free(epi_plan *e) {
  free(e->bgrad), free(e->ln_add);
  free(e->skip);
  memset(e, 0, sizeof *e);
}

/* Sum step s over all but the last axis of a [.., C] f32 tensor (a bias
 * gradient): the nearby product a^T b (a [R, C], the same bytes) that can
 * compute it in its epilogue, or -1. Its output is then written at the
 * product's turn, so between the two no step may write a or touch that
 * output, which may not share bytes with the product's. taken[]: products
 * already given a sum. */
enum { BGRAD_WINDOW = 24 };

static int bgrad_partner(const asg_resolved *r, int s, const int *taken) {
  const asg_step *u = &r->plan.steps[s];
  /* 16-bit products would sum the converted operand: the sum stays f32 */
  if (u->op != ASG_OP_SUM || (r->plan.flags & (ASG_PLAN_BF16 | ASG_PLAN_F16))) return -1;
  const int nd = u->in[0].shape.ndim;
  if (u->out.dtype != ASG_F32 || u->in[0].dtype != ASG_F32 || nd < 2 ||
      u->attr.i[0] != ((int64_t)1 << (nd - 1)) - 1 || asg_shape_numel(u->out.shape) == 0 ||
      (uintptr_t)r->out[s] % 16 || u->out_buf.kind != ASG_BUF_ARENA)
    return -1;
  const asg_cuda_range x = asg_cuda_in_range(r, s, 0), o = asg_cuda_out_range(r, s);
  for (int d = 1; d <= BGRAD_WINDOW; d++)
    for (int sg = -1; sg <= 1; sg += 2) {
      const int i = s + sg * d;
      if (i < 0 || i >= r->plan.n_steps || taken[i] >= 0) continue;
      const asg_step *m = &r->plan.steps[i];
      if (m->op != ASG_OP_MATMUL || m->out.dtype != ASG_F32 || !m->attr.i[0] || m->attr.i[1] ||
          m->in[0].shape.ndim != 2 || m->in[1].shape.ndim != 2 ||
          m->in[0].shape.dims[1] != u->in[0].shape.dims[nd - 1])
        continue;
      const asg_cuda_range a = asg_cuda_in_range(r, i, 0);
      if (a.lo != x.lo || a.hi != x.hi || asg_cuda_overlap(asg_cuda_out_range(r, i), o) ||
          asg_cuda_overlap(asg_cuda_in_range(r, i, 1), o) || asg_cuda_overlap(a, o))
        continue;
      const int lo = i < s ? i : s, hi = i < s ? s : i;
      bool ok = true;
      for (int t = lo + 1; ok && t < hi; t++) {
        ok = !step_writes(r, t, o) && !step_writes(r, t, x);
        for (int q = 0; ok && q < r->plan.steps[t].n_in && !noop_step(r, t); q++)
          ok = !asg_cuda_overlap(asg_cuda_in_range(r, t, q), o);
      }
      if (ok) return i;
    }
  return -1;
}

/* Residual add + layernorm: layernorm step l whose input x was last written
 * by an add of two tensors of x's shape (f32 or f64, an arena value): the
 * layernorm computes the add first (cuda_layernorm.cu) and the add launches
 * nothing. x is then written at the layernorm's turn, so no step in between
 * may read or write x or write the addends, which may not share x's bytes.
 * Returns the add step or -1; skip[]: steps already folded elsewhere. */
static int add_ln_partner(const asg_resolved *r, int l, const epi_plan *e) {
  const char *skip = e->skip;
  const asg_step *u = &r->plan.steps[l];
  if (u->op != ASG_OP_LAYERNORM || (u->out.dtype != ASG_F32 && u->out.dtype != ASG_F64)) return -1;
  const asg_cuda_range x = asg_cuda_in_range(r, l, 0);
  int a = l - 1;
  while (a >= 0 && !step_writes(r, a, x))
    a--;
  if (a < 0 || skip[a]) return -1;
  const asg_step *s = &r->plan.steps[a];
  const asg_cuda_range o = asg_cuda_out_range(r, a);
  if (s->op != ASG_OP_ADD || s->n_in != 2 || o.lo != x.lo || o.hi != x.hi || s->keep ||
      s->out_buf.kind != ASG_BUF_ARENA || !same_desc(&s->out, &u->in[0]) ||
      !same_desc(&s->in[0], &s->out) || !same_desc(&s->in[1], &s->out))
    return -1;
  /* nor the layernorm's output, written while they are read, unless exactly
   * (each row is read whole before its output row is written) */
  const asg_cuda_range y = asg_cuda_out_range(r, l);
  for (int m = 0; m < 2; m++) {
    const asg_cuda_range in = asg_cuda_in_range(r, a, m);
    if (asg_cuda_overlap(in, x) || (asg_cuda_overlap(in, y) && (in.lo != y.lo || in.hi != y.hi)))
      return -1;
  }
  for (int t = a + 1; t < l; t++) {
    if (e->bgrad[t] >= 0) return -1; /* writes early what this reads late */
    if (step_writes(r, t, x) || step_writes(r, t, asg_cuda_in_range(r, a, 0)) ||
        step_writes(r, t, asg_cuda_in_range(r, a, 1)))
      return -1;
    for (int q = 0; q < r->plan.steps[t].n_in && !noop_step(r, t); q++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, t, q), x)) return -1;
  }
  return a;
}

asg_status asg_cuda_epi_plan(const asg_resolved *r, epi_plan *e) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_EPILOGUE");
  if (env && env[0] == '0') return ASG_OK;
  e->skip = calloc((size_t)n + 1, 1);
  e->bgrad = malloc(sizeof *e->bgrad * ((size_t)n + 1));
  e->ln_add = malloc(sizeof *e->ln_add * ((size_t)n + 1));
  if (!e->skip || !e->bgrad || !e->ln_add) {
    asg_cuda_epi_free(e);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  for (int i = 0; i < n; i++)
    e->bgrad[i] = e->ln_add[i] = -1;
  const char *bg = getenv("ASG_CUDA_BGRAD");
  for (int i = 0; i < n && !(bg && bg[0] == '0'); i++) {
    const int k = bgrad_partner(r, i, e->bgrad);
    if (k >= 0) e->bgrad[k] = i, e->skip[i] = 1;
  }
  const char *la = getenv("ASG_CUDA_ADD_LN");
  for (int i = 0; i < n && !(la && la[0] == '0'); i++) {
    const int a = add_ln_partner(r, i, e);
    if (a >= 0) e->ln_add[i] = a, e->skip[a] = 1;
  }
  return ASG_OK;
}

/* After the products' .prepare: a sum whose product could not take it runs. */
void asg_cuda_epi_settle(const asg_resolved *r, void *const *state, epi_plan *e) {
  for (int i = 0; e->bgrad && i < r->plan.n_steps; i++)
    if (e->bgrad[i] >= 0 && !asg_cuda_mm_bgrad(state[i]))
      e->skip[e->bgrad[i]] = 0, e->bgrad[i] = -1;
}
