/* Vulkan kernel of sample_filter (shaders/sample_filter.comp; semantics:
 * src/backends/cpu/cpu_sample.c): one workgroup per row. */
#include <stdint.h>

#include "backends/vulkan/vk.h"

static asg_status sample_filter_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype, kt = s->in[1].dtype, pt = s->in[2].dtype;
  char name[32];
  asg_status st = asg_vk_variant(c, "sample_filter", dt, name, sizeof name);
  if (st) return st;
  if ((dt != ASG_F32 && dt != ASG_F64) || (kt != ASG_I32 && kt != ASG_I64) ||
      (pt != ASG_F32 && pt != dt))
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtypes %s, %s, %s not supported", s->label,
                      asg_dtype_name(dt), asg_dtype_name(kt), asg_dtype_name(pt));
  const int64_t n = asg_shape_numel(s->out.shape), V = s->out.shape.dims[s->out.shape.ndim - 1];
  if (n >= INT32_MAX) /* the shader's index math is 32-bit */
    return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: %lld elements (at most 2^31 - 1)", s->label,
                      (long long)n);
  struct { /* shaders/sample_filter.comp */
    uint64_t x, y, k, p;
    int32_t rows, V, k64, p32;
  } p = {c->in[0],   c->out,        c->in[1],     c->in[2], (int32_t)(V ? n / V : 0),
         (int32_t)V, kt == ASG_I64, pt == ASG_F32};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.rows, 1), 1, 1);
}

void asg_vk_register_sample(asg_vk_kernel *t) {
  t[ASG_OP_SAMPLE_FILTER].record = sample_filter_record;
}
