/* Planners: forward statistics kept for their backward readers, and
 * layernorm backward steps paired with their gamma/beta gradients
 * (cuda_exec.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"

/* ---- forward statistics kept for a later step (asg_cuda_call.stats_*) ----
 * Backward steps recompute what their forward step computed over the same
 * inputs: the softmax CE's row log-sum-exp (for GPT-2's [8192, 50304]
 * logits a whole pass over 1.6 GB), layernorm's row mean and 1/std. When
 * step j has such a forward step i with the same inputs (the bytes, dtypes
 * and shapes), attributes, and no step between them writes those inputs, i
 * keeps the statistics in a buffer and j reads them. (Attention's lse is a
 * graph pass's aux output for every backend: src/passes/fuse_stats.c.) */
typedef struct stats_rule {
  asg_op fwd, reader;
  int n_match;
  int match[2][2]; /* (forward input, reader input) that must be the same tensor */
} stats_rule;

static const stats_rule stats_rules[] = {
    {ASG_OP_SOFTMAX_CE, ASG_OP_SOFTMAX_CE_BWD, 2, {{0, 0}, {1, 1}}},    /* logits, labels */
    {ASG_OP_LAYERNORM, ASG_OP_LAYERNORM_BWD_X, 1, {{0, 1}, {0, 0}}},    /* x */
    {ASG_OP_LAYERNORM, ASG_OP_LAYERNORM_BWD_GAMMA, 1, {{0, 1}, {0, 0}}} /* x */
};

/* Bytes of the statistics of forward step f: per row of its first input
 * (CE: the max and the log of the sum of exp(x - max), then the count of
 * rows taken; layernorm: mean and 1/std; as doubles). 0: nothing to keep. */
static size_t stats_bytes(const asg_step *f) {
  const asg_shape sh = f->in[0].shape;
  const int64_t C = sh.ndim ? sh.dims[sh.ndim - 1] : 0;
  if (C <= 0) return 0;
  const size_t rows = (size_t)(asg_shape_numel(sh) / C);
  return (f->op == ASG_OP_LAYERNORM ? 2 * rows : 2 * rows + 1) * sizeof(double); /* CE: + count */
}

/* Step i is step j's forward under rule u. */
static bool stats_partner(const asg_resolved *r, const stats_rule *u, int i, int j) {
  const asg_step *f = &r->plan.steps[i], *b = &r->plan.steps[j];
  if (f->op != u->fwd || f->attr.f[0] != b->attr.f[0] || f->attr.i[0] != b->attr.i[0] ||
      f->out.dtype != b->out.dtype)
    return false;
  for (int m = 0; m < u->n_match; m++) {
    const int fi = u->match[m][0], bi = u->match[m][1];
    if (fi >= f->n_in || bi >= b->n_in || r->in[i][fi] != r->in[j][bi] ||
        !same_desc(&f->in[fi], &b->in[bi]))
      return false;
    for (int k = i + 1; k < j; k++)
      if (step_writes(r, k, asg_cuda_in_range(r, i, fi))) return false;
  }
  return true;
}

void asg_cuda_stats_free(stats_pairs *p) {
  for (int i = 0; i < p->n_bufs; i++)
    cudaFree(p->bufs[i]);
  free(p->bufs), free(p->out), free(p->in);
  memset(p, 0, sizeof *p);
}

asg_status asg_cuda_stats_plan(const asg_resolved *r, stats_pairs *p) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_KEEP_STATS");
  if (env && env[0] == '0') return ASG_OK;
  p->out = calloc((size_t)n + 1, sizeof *p->out);
  p->in = calloc((size_t)n + 1, sizeof *p->in);
  p->bufs = calloc((size_t)n + 1, sizeof *p->bufs);
  if (!p->out || !p->in || !p->bufs) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int j = 0; j < n; j++) {
    const stats_rule *u = NULL;
    for (size_t k = 0; k < sizeof stats_rules / sizeof *stats_rules; k++)
      if (stats_rules[k].reader == r->plan.steps[j].op) u = &stats_rules[k];
    if (!u) continue;
    for (int i = j - 1; i >= 0; i--) {
      if (!stats_partner(r, u, i, j)) continue;
      const size_t bytes = stats_bytes(&r->plan.steps[i]);
      if (!bytes) break;
      if (!p->out[i]) { /* the first reader of step i allocates its buffer */
        if (cudaMalloc(&p->bufs[p->n_bufs], bytes) != cudaSuccess) {
          cudaGetLastError();
          return asg__error(ASG_ERR_OOM, "cuda: cannot allocate %zu bytes of kept statistics",
                            bytes);
        }
        p->out[i] = p->bufs[p->n_bufs++];
      }
      p->in[j] = p->out[i];
      break;
    }
  }
  return ASG_OK;
}

/* ---- layernorm backward in one pass ----
 * layernorm_bwd_x(dy, x, gamma) and layernorm_bwd_gamma(dy, x) read the same
 * two [R, C] tensors; when both are in the plan, the first computes the
 * second's result too (cuda_layernorm.cu, ln_bwd_xg_kernel) and the second launches
 * nothing; so does a sum of dy over every axis but the last (the layer's
 * beta gradient), when there is one. Their outputs are then written when
 * the first runs, so no step from the first to each of them may write dy or
 * x, or read or write that output's bytes. ASG_CUDA_FUSE_LN=0 turns it off. */
enum { LN_XG_MAX_C = 1024, LN_XG_WINDOW = 8 };

/* Step j's output may be written at step i's turn, and its first nin
 * inputs read there. */
static bool ln_early_ok(const asg_resolved *r, int i, int j, int nin) {
  const asg_cuda_range o = asg_cuda_out_range(r, j);
  for (int k = i; k < j; k++) {
    if (step_writes(r, k, o)) return false;
    for (int m = 0; m < nin && k > i; m++)
      if (step_writes(r, k, asg_cuda_in_range(r, j, m))) return false;
    for (int m = 0; m < r->plan.steps[k].n_in && !noop_step(r, k); m++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, k, m), o)) return false;
  }
  return true;
}

/* smem_max: the device's shared memory a block may opt in to; the one-pass
 * kernel stages [2][8][C] values of the dtype there (cuda_layernorm.cu). */
static bool ln_partner(const asg_resolved *r, int i, int j, size_t smem_max) {
  const asg_step *a = &r->plan.steps[i], *b = &r->plan.steps[j];
  if (a->op != ASG_OP_LAYERNORM_BWD_X || b->op != ASG_OP_LAYERNORM_BWD_GAMMA ||
      a->attr.f[0] != b->attr.f[0] || a->out.dtype != b->out.dtype ||
      (a->out.dtype != ASG_F32 && a->out.dtype != ASG_F64))
    return false;
  for (int m = 0; m < 2; m++)
    if (r->in[i][m] != r->in[j][m] || !same_desc(&a->in[m], &b->in[m])) return false;
  const asg_shape sh = a->in[1].shape;
  const int64_t C = sh.ndim ? sh.dims[sh.ndim - 1] : 0;
  if (C < 1 || C > LN_XG_MAX_C || asg_shape_numel(sh) == 0 ||
      16 * (size_t)C * asg_dtype_size(a->out.dtype) + 1024 > smem_max)
    return false;
  return ln_early_ok(r, i, j, 2);
}

/* Step j sums layernorm_bwd_x step i's dy over every axis but the last. */
static bool ln_beta_partner(const asg_resolved *r, int i, int j) {
  const asg_step *a = &r->plan.steps[i], *b = &r->plan.steps[j];
  const int nd = a->in[0].shape.ndim;
  if (b->op != ASG_OP_SUM || r->in[j][0] != r->in[i][0] || !same_desc(&a->in[0], &b->in[0]) ||
      b->out.dtype != a->out.dtype || b->attr.i[0] != ((int64_t)1 << (nd - 1)) - 1 ||
      asg_shape_numel(b->out.shape) != a->in[0].shape.dims[nd - 1])
    return false;
  return ln_early_ok(r, i, j, 1);
}

/* partner[i]: the layernorm_bwd_gamma step that step i also computes (-1:
 * none), beta[i]: the sum step (-1: none); skip[j]: step j was computed by
 * its partner. late1/late2 (may be NULL): per step, >= 0 where a fold reads
 * its inputs late (the residual add + layernorm, the row dot products): no
 * pair spans one. folded (may be NULL): steps already folded elsewhere. */
asg_status asg_cuda_ln_pair_plan(const asg_resolved *r, size_t smem_max, const int *late1,
                                 const int *late2, const char *folded, int **partner, int **beta,
                                 char **skip) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_FUSE_LN");
  if (env && env[0] == '0') return ASG_OK;
  int *p = malloc(sizeof(int) * ((size_t)n + 1)), *bt = malloc(sizeof(int) * ((size_t)n + 1));
  char *sk = calloc((size_t)n + 1, 1);
  if (!p || !bt || !sk) {
    free(p), free(bt), free(sk);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  for (int i = 0; i < n; i++) {
    p[i] = bt[i] = -1;
    if (r->plan.steps[i].op != ASG_OP_LAYERNORM_BWD_X) continue;
    for (int j = i + 1; j < n && j <= i + LN_XG_WINDOW; j++) {
      if (late1 && (late1[j] >= 0 || (late2 && late2[j] >= 0))) break; /* a fold reads late */
      if (sk[j] || (folded && folded[j])) continue;
      if (p[i] < 0 && ln_partner(r, i, j, smem_max)) {
        p[i] = j;
        sk[j] = 1;
      } else if (bt[i] < 0 && ln_beta_partner(r, i, j)) {
        bt[i] = j;
        sk[j] = 1;
      }
    }
    if (p[i] < 0 && bt[i] >= 0) sk[bt[i]] = 0, bt[i] = -1; /* the sum rides on the pair only */
  }
  *partner = p;
  *beta = bt;
  *skip = sk;
  return ASG_OK;
}
