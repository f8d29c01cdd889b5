/* Planner: forward statistics kept for their backward readers
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
