/* Vulkan kernels of the conv family: conv2d (forward, input and weight
 * gradients, transpose; conv2d_bias_act adds shaders/conv_bias_act.comp) as implicit GEMMs with
 * shared-memory tiles (shaders/conv_gemm.comp), and max/avg/adaptive-avg pooling with their
 * gradients (shaders/pool_2d.comp). Every output element is written by one
 * invocation (gradients gather), so results need no atomics and no zero
 * fill; GEMMs with few output tiles and a long K split K over work groups
 * and sum the partials from a workspace in a second pass (deterministic).
 * Reference semantics: src/backends/cpu/cpu_conv.c; attribute layout:
 * src/ops/op_conv.c. */
#include <string.h>

#include "backends/vulkan/vk.h"

/* Mirrors Params of conv_gemm.comp. The forward convolution the step
 * describes: x [N,C,H,W] * w [O,Cg,KH,KW] -> y [N,O,OH,OW]. */
typedef struct conv_params {
  uint64_t out, in0, in1, ws;
  int32_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, G;
  int32_t Cg, Og, KK, CKK, OHW, HW;
  int32_t M, NC, K;    /* per-group GEMM: C[M,NC] = A[M,K] B[K,NC] */
  int32_t S, KC, OUTN; /* K splits, K per split, output elements */
} conv_params;

/* Mirrors Params of conv_splitk.comp. */
typedef struct splitk_params {
  uint64_t out, ws;
  int32_t n, S;
} splitk_params;

/* Mirrors Params of conv_bias_act.comp. */
typedef struct bias_act_params {
  uint64_t out, bias;
  int32_t n, O, OHW, act;
  uint64_t res; /* 0: none (matmul_bias_act's residual) */
} bias_act_params;

/* Split-K: a GEMM with few output tiles but a long K (the weight gradient:
 * [Cout, Cin*KH*KW] summed over N*OH*OW) would run on a handful of work
 * groups looping over K. Aim for about SPLIT_TARGET groups in all, each
 * summing at least SPLIT_KMIN of K; the partial tiles go to the workspace
 * and a second dispatch adds them in a fixed order. */
#define CONV_TILE 64 /* BM = BN of conv_gemm.comp */
#define CONV_BK 16
#define SPLIT_TARGET 512
#define SPLIT_KMIN 256

/* Fills the shape fields, GEMM sizes and split of p (not the addresses);
 * base gets the shader's name without the dtype suffix. */
static asg_status conv_setup(const asg_step *s, conv_params *p, const char **base) {
  const asg_shape *xs, *ws, *ys;
  switch (s->op) {
  case ASG_OP_CONV2D:
  case ASG_OP_CONV2D_BIAS_ACT:
    xs = &s->in[0].shape, ws = &s->in[1].shape, ys = &s->out.shape, *base = "conv_fwd";
    break;
  case ASG_OP_CONV2D_BWD_WEIGHT:
    ys = &s->in[0].shape, xs = &s->in[1].shape, ws = &s->out.shape, *base = "conv_bwdw";
    break;
  default: /* BWD_INPUT, CONV_TRANSPOSE2D: in0 is the conv output (gradient) */
    ys = &s->in[0].shape, ws = &s->in[1].shape, xs = &s->out.shape, *base = "conv_bwdi";
    break;
  }
  memset(p, 0, sizeof *p);
  p->N = (int32_t)xs->dims[0], p->C = (int32_t)xs->dims[1];
  p->H = (int32_t)xs->dims[2], p->W = (int32_t)xs->dims[3];
  p->O = (int32_t)ys->dims[1], p->OH = (int32_t)ys->dims[2], p->OW = (int32_t)ys->dims[3];
  p->KH = (int32_t)ws->dims[2], p->KW = (int32_t)ws->dims[3];
  p->sh = s->attr.i[0], p->sw = s->attr.i[1], p->ph = s->attr.i[2], p->pw = s->attr.i[3];
  p->dh = s->attr.i[4], p->dw = s->attr.i[5], p->G = s->attr.i[6];
  if (p->G < 1 || p->sh < 1 || p->sw < 1)
    return asg__error(ASG_ERR_INVALID, "vulkan: %s: bad conv attributes", s->label);
  p->Cg = p->C / p->G, p->Og = p->O / p->G;
  p->KK = p->KH * p->KW, p->CKK = p->Cg * p->KK;
  p->OHW = p->OH * p->OW, p->HW = p->H * p->W;
  /* GEMM sizes (each < 2^31: bounded by a tensor's element count) */
  int64_t M, NC, K;
  switch (s->op) {
  case ASG_OP_CONV2D:
  case ASG_OP_CONV2D_BIAS_ACT: M = p->Og, NC = (int64_t)p->N * p->OHW, K = p->CKK; break;
  case ASG_OP_CONV2D_BWD_WEIGHT: M = p->Og, NC = p->CKK, K = (int64_t)p->N * p->OHW; break;
  default: M = p->Cg, NC = (int64_t)p->N * p->HW, K = (int64_t)p->Og * p->KK; break;
  }
  p->M = (int32_t)M, p->NC = (int32_t)NC, p->K = (int32_t)K;
  int64_t outn = asg_shape_numel(s->out.shape);
  p->OUTN = (int32_t)outn;
  int64_t tiles = (M + CONV_TILE - 1) / CONV_TILE * ((NC + CONV_TILE - 1) / CONV_TILE) * p->G;
  int64_t S = tiles > 0 ? (SPLIT_TARGET + tiles - 1) / tiles : 1;
  if (S > K / SPLIT_KMIN) S = K / SPLIT_KMIN;
  if (outn > 0 && S > (((int64_t)1 << 31) - 1) / outn) S = (((int64_t)1 << 31) - 1) / outn;
  int64_t KC = K;
  if (S >= 2) {
    /* chunks of whole BK steps; recount S so that none is empty */
    KC = ((K + S - 1) / S + CONV_BK - 1) / CONV_BK * CONV_BK;
    S = (K + KC - 1) / KC;
  }
  if (S < 2) S = 1, KC = K;
  p->S = (int32_t)S, p->KC = (int32_t)KC;
  return ASG_OK;
}

static size_t conv_ws(const asg_step *s) {
  conv_params p;
  const char *base;
  if (conv_setup(s, &p, &base) || p.S < 2) return 0;
  return (size_t)p.S * (size_t)p.OUTN * asg_dtype_size(s->out.dtype);
}

static asg_status conv_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  char name[32];
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype not supported", s->label);
  conv_params p;
  const char *base;
  asg_status st = conv_setup(s, &p, &base);
  if (!st) st = asg_vk_variant(c, base, dt, name, sizeof name);
  if (st) return st;
  p.out = c->out, p.in0 = c->in[0], p.in1 = c->in[1], p.ws = p.S > 1 ? c->ws : 0;
  /* 64x64 tiles over (NC, M), one group per (group, K split) on z; the
   * shader loops over what exceeds the device's group counts */
  const uint32_t *mg = c->ctx->caps.max_groups;
  int64_t gx = ((int64_t)p.NC + CONV_TILE - 1) / CONV_TILE;
  int64_t gy = ((int64_t)p.M + CONV_TILE - 1) / CONV_TILE, gz = (int64_t)p.G * p.S;
  if (gx > mg[0]) gx = mg[0];
  if (gy > mg[1]) gy = mg[1];
  if (gz > mg[2]) gz = mg[2];
  if (gx < 1) gx = 1;
  if (gy < 1) gy = 1;
  st = asg_vk_dispatch(c, name, &p, sizeof p, (uint32_t)gx, (uint32_t)gy, (uint32_t)gz);
  if (!st && p.S >= 2) {
    asg_vk_barrier(c);
    splitk_params q = {c->out, c->ws, p.OUTN, p.S};
    if ((st = asg_vk_variant(c, "conv_splitk", dt, name, sizeof name))) return st;
    st = asg_vk_dispatch(c, name, &q, sizeof q, asg_vk_groups(c, p.OUTN, 256), 1, 1);
  }
  if (st || s->op != ASG_OP_CONV2D_BIAS_ACT || p.OUTN == 0) return st;
  asg_vk_barrier(c); /* conv2d_bias_act: the bias and ReLU over the finished output */
  bias_act_params b = {c->out, c->in[2], p.OUTN, p.O, p.OHW, (int32_t)s->attr.i[9], 0};
  if ((st = asg_vk_variant(c, "conv_bias_act", dt, name, sizeof name))) return st;
  return asg_vk_dispatch(c, name, &b, sizeof b, asg_vk_groups(c, p.OUTN, 256), 1, 1);
}

/* Mirrors Params of pool_2d.comp: x [N,C,H,W] -> y [N,C,OH,OW] (for the
 * BWD ops x is the output). */
typedef struct pool_params {
  uint64_t out, in0, in1;
  int32_t planes, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  int32_t excl; /* avg: divide by the window's input cells (exclude_pad) */
} pool_params;

static asg_status pool_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const char *base;
  bool bwd = true;
  switch (s->op) {
  case ASG_OP_MAXPOOL2D: base = "pool_max", bwd = false; break;
  case ASG_OP_MAXPOOL2D_BWD: base = "pool_max_bwd"; break;
  case ASG_OP_AVGPOOL2D: base = "pool_avg", bwd = false; break;
  case ASG_OP_AVGPOOL2D_BWD: base = "pool_avg_bwd"; break;
  case ASG_OP_ADAPTIVE_AVGPOOL2D: base = "pool_adaptive", bwd = false; break;
  default: base = "pool_adaptive_bwd"; break;
  }
  char name[32];
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype not supported", s->label);
  asg_status st = asg_vk_variant(c, base, dt, name, sizeof name);
  if (st) return st;
  const asg_shape *xs = bwd ? &s->out.shape : &s->in[0].shape;
  const asg_shape *ys = bwd ? &s->in[0].shape : &s->out.shape;
  pool_params p = {0};
  p.out = c->out, p.in0 = c->in[0], p.in1 = s->n_in > 1 ? c->in[1] : 0;
  p.planes = (int32_t)(xs->dims[0] * xs->dims[1]);
  p.H = (int32_t)xs->dims[2], p.W = (int32_t)xs->dims[3];
  p.OH = (int32_t)ys->dims[2], p.OW = (int32_t)ys->dims[3];
  p.KH = s->attr.i[0], p.KW = s->attr.i[1], p.sh = s->attr.i[2], p.sw = s->attr.i[3];
  p.ph = s->attr.i[4], p.pw = s->attr.i[5];
  p.dh = s->attr.i[6] > 1 ? s->attr.i[6] : 1, p.dw = s->attr.i[7] > 1 ? s->attr.i[7] : 1;
  p.excl = s->attr.i[9] != 0;
  bool adaptive = s->op == ASG_OP_ADAPTIVE_AVGPOOL2D || s->op == ASG_OP_ADAPTIVE_AVGPOOL2D_BWD;
  if (!adaptive && (p.sh < 1 || p.sw < 1))
    return asg__error(ASG_ERR_INVALID, "vulkan: %s: bad pool attributes", s->label);
  /* one invocation per written element: y for the forward ops, dx for the
   * gradients (which gather, and write zeros where no window reaches) */
  int64_t n = (int64_t)p.planes * (bwd ? (int64_t)p.H * p.W : (int64_t)p.OH * p.OW);
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, n, 256), 1, 1);
}

void asg_vk_register_conv(asg_vk_kernel *t) {
  static const asg_op convs[] = {ASG_OP_CONV2D, ASG_OP_CONV2D_BIAS_ACT, ASG_OP_CONV2D_BWD_INPUT,
                                 ASG_OP_CONV2D_BWD_WEIGHT, ASG_OP_CONV_TRANSPOSE2D};
  static const asg_op pools[] = {ASG_OP_MAXPOOL2D,          ASG_OP_MAXPOOL2D_BWD,
                                 ASG_OP_AVGPOOL2D,          ASG_OP_AVGPOOL2D_BWD,
                                 ASG_OP_ADAPTIVE_AVGPOOL2D, ASG_OP_ADAPTIVE_AVGPOOL2D_BWD};
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++)
    t[convs[i]].record = conv_record, t[convs[i]].ws = conv_ws;
  for (size_t i = 0; i < sizeof pools / sizeof *pools; i++)
    t[pools[i]].record = pool_record;
}
