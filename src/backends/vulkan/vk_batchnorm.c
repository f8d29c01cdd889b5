/* Vulkan kernels of batch norm with the batch's statistics: BATCHNORM,
 * BATCHNORM_BWD_X, BATCHNORM_BWD_GAMMA (src/ops/op_nn.c; reference:
 * src/backends/cpu/cpu_batchnorm_tmpl.h), the passes of
 * shaders/batchnorm.comp.
 *
 * x is [N, C, S]; each channel's M = N * S values are split into P chunks,
 * one work group per chunk and group of channel slots:
 *   P = 1 (small channels): one dispatch per op; the group computes the
 *     statistics (and for the backward ops the sums of dy) and writes its
 *     output from values still in cache;
 *   P > 1 (large channels, e.g. [64, 32, 112, 112]): partial statistics per
 *     chunk into the workspace (Welford), then for the backward ops partial
 *     sums of dy, then the output pass; each pass merges the channel's
 *     partials in a fixed order, so every group of a channel uses the same
 *     statistics and results are deterministic.
 * Sums in the element type (f32 kernels need no shaderFloat64). The
 * statistics are recomputed by each op, as on the CPU. */
#include "backends/vulkan/vk.h"

/* How the channels are split (a function of the shape only: the workspace
 * size and the recording agree). */
typedef struct bn_plan {
  int64_t N, C, S, M;
  uint32_t cw; /* channel slots per group */
  uint32_t P;  /* chunks per channel */
  uint32_t L;  /* values per chunk */
} bn_plan;

static bn_plan bn_plan_of(const asg_step *s) {
  asg_shape xs = s->in[s->op == ASG_OP_BATCHNORM ? 0 : 1].shape; /* [N, C, ...] */
  bn_plan p = {xs.dims[0], xs.dims[1], 1, 0, 1, 1, 0};
  for (int d = 2; d < xs.ndim; d++)
    p.S *= xs.dims[d];
  p.M = p.N * p.S;
  if (p.M == 0) p.N = 0, p.S = 1; /* no values (the shader divides by S) */
  /* runs shorter than 32: several channels a group, so that a warp's reads
   * stay contiguous (for [N, C], 32 neighbouring channels of a row) */
  while (p.cw < 32 && p.cw * 2 * p.S <= 32 && p.cw < p.C)
    p.cw *= 2;
  /* at most 32 values a thread; once split, chunks of at least 8 values a
   * thread and about 1024 groups in all, enough to fill a large GPU */
  int64_t E = p.M * p.cw, CG = (p.C + p.cw - 1) / p.cw, P = (E + 8191) / 8192;
  if (P > 1 && CG > 0) {
    int64_t fill = (1024 + CG - 1) / CG, most = (E + 2047) / 2048;
    fill = fill < most ? fill : most;
    if (fill > P) P = fill;
  }
  if (P > 1024) P = 1024;
  if (P < 1) P = 1;
  int64_t L = (p.M + P - 1) / P;
  p.P = (uint32_t)(L > 0 ? (p.M + L - 1) / L : 1); /* no empty chunk */
  p.L = (uint32_t)L;
  return p;
}

/* part [C, P, 3] and dpart [C, P, 3] in the element type; none for P = 1 */
static size_t bn_ws(const asg_step *s) {
  bn_plan p = bn_plan_of(s);
  if (p.P == 1) return 0;
  return (size_t)p.C * p.P * 6 * asg_dtype_size(s->out.dtype);
}

typedef struct bn_params { /* batchnorm.comp */
  uint64_t x, dy, gamma, beta, out, ws;
  double eps;
  float eps_f;
  uint32_t N, C, S, P, L, CW, mode;
} bn_params;

static asg_status bn_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype not supported", s->label);
  bn_plan pl = bn_plan_of(s);
  if (pl.C == 0 || (pl.M == 0 && s->op != ASG_OP_BATCHNORM_BWD_GAMMA)) return ASG_OK; /* empty */
  if (pl.M * pl.C >= INT32_MAX) /* the shader's index math is 32-bit */
    return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: more than 2^31 - 1 elements", s->label);
  char stats[32], dsum[32], apply[32];
  asg_status st = asg_vk_variant(c, "bn_stats", dt, stats, sizeof stats);
  if (!st) st = asg_vk_variant(c, "bn_dsum", dt, dsum, sizeof dsum);
  if (!st) st = asg_vk_variant(c, "bn_apply", dt, apply, sizeof apply);
  if (st) return st;
  double eps = s->attr.f[0];
  bn_params p = {.out = c->out,
                 .ws = c->ws,
                 .eps = eps,
                 .eps_f = (float)eps,
                 .N = (uint32_t)pl.N,
                 .C = (uint32_t)pl.C,
                 .S = (uint32_t)pl.S,
                 .P = pl.P,
                 .L = pl.L,
                 .CW = pl.cw};
  switch (s->op) {
  case ASG_OP_BATCHNORM: /* x, gamma, beta */
    p.x = c->in[0], p.gamma = c->in[1], p.beta = c->in[2], p.mode = 0;
    break;
  case ASG_OP_BATCHNORM_BWD_X: /* dy, x, gamma */
    p.dy = c->in[0], p.x = c->in[1], p.gamma = c->in[2], p.mode = 1;
    break;
  default: /* BATCHNORM_BWD_GAMMA: dy, x */ p.dy = c->in[0], p.x = c->in[1], p.mode = 2; break;
  }
  int64_t CG = (pl.C + pl.cw - 1) / pl.cw;
  uint32_t gy = (uint32_t)(CG < 65535 ? CG : 65535), gx = p.mode == 2 ? 1 : pl.P;
  if (gy > c->ctx->caps.max_groups[1]) gy = c->ctx->caps.max_groups[1];
  if (pl.P > 1) { /* partial statistics, then (backward) partial sums of dy */
    st = asg_vk_dispatch(c, stats, &p, sizeof p, pl.P, gy, 1);
    if (st) return st;
    asg_vk_barrier(c);
    if (p.mode != 0) {
      st = asg_vk_dispatch(c, dsum, &p, sizeof p, pl.P, gy, 1);
      if (st) return st;
      asg_vk_barrier(c);
    }
  }
  return asg_vk_dispatch(c, apply, &p, sizeof p, gx, gy, 1);
}

void asg_vk_register_batchnorm(asg_vk_kernel *t) {
  static const asg_op ops[] = {ASG_OP_BATCHNORM, ASG_OP_BATCHNORM_BWD_X,
                               ASG_OP_BATCHNORM_BWD_GAMMA};
  for (int i = 0; i < 3; i++) {
    t[ops[i]].record = bn_record;
    t[ops[i]].ws = bn_ws;
  }
}
