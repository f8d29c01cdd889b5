/* Vulkan kernels of the elementwise family. */
#include "backends/vulkan/vk.h"

/* Copies n bytes (a multiple of 4) from src to dst unless they coincide. */
static asg_status copy_bytes(const asg_vk_call *c, uint64_t dst, uint64_t src, size_t n) {
  struct {
    uint64_t out, in;
    int64_t n;
  } p = {dst, src, (int64_t)(n / 4)};
  if (dst == src || !n) return ASG_OK;
  return asg_vk_dispatch(c, "util_copy", &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

static asg_status fill_record(const asg_vk_call *c) {
  char name[32];
  asg_status st = asg_vk_variant(c, "fill", c->s->out.dtype, name, sizeof name);
  struct {
    uint64_t out;
    int64_t n;
    double v;
  } p = {c->out, asg_shape_numel(c->s->out.shape), c->s->attr.f[0]};
  return st ? st : asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.n, 256), 1, 1);
}

static asg_status assign_record(const asg_vk_call *c) {
  return copy_bytes(c, c->out, c->in[1], asg__tdesc_bytes(&c->s->out));
}

void asg_vk_register_elementwise(asg_vk_kernel *t) {
  t[ASG_OP_FILL].record = fill_record;
  t[ASG_OP_ASSIGN].record = assign_record;
}
