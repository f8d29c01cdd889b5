/* Vulkan kernels of the fused attention ops (contract: src/ops/op_attention.c).
 *
 * f32 with D <= 128: flash-attention-style tiled kernels (attn_fwd.comp for
 * ATTENTION and ATTENTION_LSE, attn_bwd_q.comp, attn_bwd_kv.comp), variants
 * for D <= 32, 64, 128 (DMAX; smaller D is zero-padded). A work group owns
 * 64 query (or key) rows, DMAX/32 adjacent lanes per row, and streams the
 * other side's rows through 16 KiB of shared memory; scores in fp32, softmax
 * in base 2, causal tiles above the diagonal never loaded.
 * f64, any D past 128, a key mask, or a device short of shared memory or
 * subgroup lanes: attn_row.comp, one work group per output row (simple,
 * exact for any shape), with m_exp/m_log. ATTENTION with a further output
 * (the statistics pass) writes its rows' lse there as well (Params.lse). */
#include <stdio.h>

#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

/* mirrored by the Params block of every attn_*.comp */
typedef struct attn_params {
  uint64_t q, k, v, dout, lse, delta, out;
  double scale;
  float scale_f;
  uint32_t NB, Tq, Tk, D, causal, mode;
  uint64_t mask; /* attn_row only: key mask (0: none), one row per G heads */
  uint32_t G, pad_;
} attn_params;

#define ATTN_ROWS 64            /* rows per work group of the tiled kernels */
#define ATTN_SHARED_BYTES 16896 /* the largest tiled kernel (bwd_kv, DMAX 32) */

static uint32_t cap_groups(int64_t n, uint32_t max) {
  if (n > 65535) n = 65535;
  if (n > (int64_t)max) n = max;
  return (uint32_t)(n < 1 ? 1 : n);
}

static asg_status attn_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  asg_shape qs = s->in[0].shape, ks = s->in[1].shape;
  int nd = qs.ndim;
  int64_t NB = 1;
  for (int d = 0; d < nd - 2; d++)
    NB *= qs.dims[d];
  int64_t Tq = qs.dims[nd - 2], D = qs.dims[nd - 1], Tk = ks.dims[nd - 2];
  if (NB == 0) return ASG_OK;
  int mode = s->op == ASG_OP_ATTENTION         ? 0
             : s->op == ASG_OP_ATTENTION_LSE   ? 1
             : s->op == ASG_OP_ATTENTION_BWD_Q ? 2
                                               : 3;
  bool six = mode >= 2; /* (q, k, v, do, lse, delta) */
  int64_t heads;
  const int mi = asg__attention_mask(s, &heads); /* key mask: the last input */
  const bool masked = mi >= 0;
  /* mode 0 with a further output (src/passes/fuse_stats.c): the lse too */
  const uint64_t lse = six ? c->in[4] : mode == 0 && s->n_aux ? c->aux[0] : 0;
  attn_params p = {c->in[0],
                   c->in[1],
                   mode != 1 ? c->in[2] : 0,
                   six ? c->in[3] : 0,
                   lse,
                   six ? c->in[5] : 0,
                   c->out,
                   s->attr.f[0],
                   (float)s->attr.f[0],
                   (uint32_t)NB,
                   (uint32_t)Tq,
                   (uint32_t)Tk,
                   (uint32_t)D,
                   s->attr.i[0] != 0,
                   (uint32_t)mode,
                   masked ? c->in[mi] : 0,
                   (uint32_t)heads,
                   0};
  const asg_vk_caps *cap = &c->ctx->caps;
  int dmax = D <= 32 ? 32 : D <= 64 ? 64 : 128;
  bool tiled = !masked && dt == ASG_F32 && D <= 128 && cap->shared_bytes >= ATTN_SHARED_BYTES &&
               cap->subgroup_size >= (uint32_t)(dmax / 32) && cap->max_invocations >= 256 &&
               cap->subgroup_shuffle;
  char name[40];
  if (tiled) {
    static const char *const base[4] = {"attn_fwd", "attn_lse", "attn_bwd_q", "attn_bwd_kv"};
    snprintf(name, sizeof name, "%s_d%d_f32", base[mode], dmax);
    int64_t rows = mode == 3 ? Tk : Tq;
    return asg_vk_dispatch(c, name, &p, sizeof p,
                           cap_groups((rows + ATTN_ROWS - 1) / ATTN_ROWS, cap->max_groups[0]),
                           cap_groups(NB, cap->max_groups[1]), 1);
  }
  asg_status st = asg_vk_variant(c, "attn_row", dt, name, sizeof name);
  if (st) return st;
  int64_t rows = NB * (mode == 3 ? Tk : Tq);
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, rows, 1), 1, 1);
}

void asg_vk_register_attention(asg_vk_kernel *t) {
  t[ASG_OP_ATTENTION].record = attn_record;
  t[ASG_OP_ATTENTION_LSE].record = attn_record;
  t[ASG_OP_ATTENTION_BWD_Q].record = attn_record;
  t[ASG_OP_ATTENTION_BWD_KV].record = attn_record;
}
