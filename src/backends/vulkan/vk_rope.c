/* Vulkan kernel of rope (shaders/rope.comp; contract: src/ops/op_nn.c,
 * reference: src/backends/cpu/cpu_rope.c): one invocation per pair of
 * elements (k, k + D/2) of a row, the tables' rows found through
 * asg__rope_plan (runtime/layout.h), as on the CPU. */
#include <stdint.h>
#include <string.h>

#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

typedef struct rope_params { /* shaders/rope.comp */
  uint64_t x, cs, sn, out;
  uint32_t n, h, nd, lc, ls, pad;
  uint32_t dim[ASG_MAX_DIMS];
  uint32_t st[2][ASG_MAX_DIMS];
} rope_params;

static asg_status rope_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  if (s->out.dtype != ASG_F32 && s->out.dtype != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->out.dtype));
  char name[32];
  asg_status st = asg_vk_variant(c, "rope", s->out.dtype, name, sizeof name);
  if (st) return st;
  const int64_t numel = asg_shape_numel(s->out.shape);
  if (numel >= INT32_MAX) /* the shader's 32-bit index math; tables are never larger than x */
    return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: %lld elements (at most 2^31 - 1)", s->label,
                      (long long)numel);
  asg_rope_plan pl;
  asg__rope_plan(&pl, s);
  if (pl.rows == 0 || pl.D == 0) return ASG_OK;
  rope_params p;
  memset(&p, 0, sizeof p);
  p.x = c->in[0], p.cs = c->in[1], p.sn = c->in[2], p.out = c->out;
  p.n = (uint32_t)(pl.rows * (pl.D / 2));
  p.h = (uint32_t)(pl.D / 2);
  p.nd = (uint32_t)pl.nd;
  p.lc = (uint32_t)pl.last[0];
  p.ls = (uint32_t)pl.last[1];
  for (int d = 0; d < pl.nd; d++) {
    p.dim[d] = (uint32_t)pl.dims[d];
    p.st[0][d] = (uint32_t)pl.st[0][d];
    p.st[1][d] = (uint32_t)pl.st[1][d];
  }
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

void asg_vk_register_rope(asg_vk_kernel *t) { t[ASG_OP_ROPE].record = rope_record; }
