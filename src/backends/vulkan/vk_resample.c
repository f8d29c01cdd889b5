/* Vulkan kernels of pad, pad_bwd (shaders/pad.comp), upsample and
 * upsample_bwd (shaders/upsample.comp): one invocation per written element,
 * gradients gathered (no atomics). Geometry: runtime/resample.h; the
 * reference is src/backends/cpu/cpu_resample.c. The shaders index in 32
 * bits, so larger steps are refused here. */
#include <stdint.h>
#include <string.h>

#include "backends/vulkan/vk.h"
#include "runtime/resample.h"

static asg_status too_big(const asg_step *s) {
  return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: more than 2^31 - 1 elements (or a pad)",
                    s->label);
}

/* Mirrors Params of pad.comp. */
typedef struct pad_params {
  uint64_t out, in0;
  int32_t n, nd, mode;
  uint32_t vlo, vhi;
  int32_t od[8], id[8], before[8];
} pad_params;

static asg_status pad_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  char name[32];
  asg_status st = asg_vk_variant(c, s->op == ASG_OP_PAD ? "pad" : "pad_bwd", dt, name, sizeof name);
  if (st) return st;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  asg_pad_plan pl;
  asg__pad_plan(&pl, s);
  if (pl.n_out >= INT32_MAX || pl.n_in >= INT32_MAX) return too_big(s);
  pad_params p;
  memset(&p, 0, sizeof p);
  p.out = c->out, p.in0 = c->in[0];
  p.n = (int32_t)(s->op == ASG_OP_PAD ? pl.n_out : pl.n_in);
  p.nd = pl.nd, p.mode = pl.mode;
  if (dt == ASG_F32) {
    float v = (float)pl.value;
    memcpy(&p.vlo, &v, 4);
  } else {
    uint64_t b;
    memcpy(&b, &pl.value, 8);
    p.vlo = (uint32_t)b, p.vhi = (uint32_t)(b >> 32);
  }
  for (int d = 0; d < pl.nd; d++) {
    if (pl.before[d] >= INT32_MAX || pl.before[d] <= -INT32_MAX) return too_big(s);
    p.od[d] = (int32_t)pl.out[d], p.id[d] = (int32_t)pl.in[d], p.before[d] = (int32_t)pl.before[d];
  }
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

/* Mirrors Params of upsample.comp. */
typedef struct up_params {
  uint64_t out, in0;
  int32_t planes, H, W, OH, OW, mode, align;
  float rn[2], rf[2];
  uint32_t rd[4];
} up_params;

static asg_status upsample_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  const bool fwd = s->op == ASG_OP_UPSAMPLE;
  char name[32];
  asg_status st = asg_vk_variant(c, fwd ? "upsample" : "upsample_bwd", dt, name, sizeof name);
  if (st) return st;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  asg_upsample_plan u;
  asg__upsample_plan(&u, s);
  const int64_t nx = u.planes * u.H * u.W, ny = u.planes * u.OH * u.OW;
  if (nx >= INT32_MAX || ny >= INT32_MAX) return too_big(s);
  up_params p;
  memset(&p, 0, sizeof p);
  p.out = c->out, p.in0 = c->in[0];
  p.planes = (int32_t)u.planes, p.H = (int32_t)u.H, p.W = (int32_t)u.W;
  p.OH = (int32_t)u.OH, p.OW = (int32_t)u.OW, p.mode = u.mode, p.align = u.align;
  for (int k = 0; k < 2; k++) {
    uint64_t b;
    memcpy(&b, &u.rd[k], 8);
    p.rn[k] = u.rn[k], p.rf[k] = u.rf[k];
    p.rd[2 * k] = (uint32_t)b, p.rd[2 * k + 1] = (uint32_t)(b >> 32);
  }
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, fwd ? ny : nx, 256), 1, 1);
}

void asg_vk_register_resample(asg_vk_kernel *t) {
  t[ASG_OP_PAD].record = pad_record;
  t[ASG_OP_PAD_BWD].record = pad_record;
  t[ASG_OP_UPSAMPLE].record = upsample_record;
  t[ASG_OP_UPSAMPLE_BWD].record = upsample_record;
}
