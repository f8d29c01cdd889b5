/* Anomaly mode on Vulkan (check_finite = ASG_CHECK_FINITE_STEP): after each
 * step, shaders/finite.comp scans its float output, then its float inputs,
 * into the program's record (asg_finite_fault, runtime/inspect.h), which
 * vk_backend.c reads after the run. Vulkan tensors are f32 or f64. */
#include "backends/vulkan/vk.h"
#include "runtime/inspect.h"

static asg_status check(const asg_vk_call *c, uint64_t x, const asg_tdesc *d, uint32_t in1,
                        uint64_t rec) {
  const int64_t n = asg_shape_numel(d->shape);
  if ((d->dtype != ASG_F32 && d->dtype != ASG_F64) || n <= 0) return ASG_OK;
  struct {
    uint64_t x, rec;
    uint32_t n, step1, in1, pad;
  } p = {x, rec, (uint32_t)n, c->step1, in1, 0};
  return asg_vk_dispatch(c, d->dtype == ASG_F32 ? "finite_f32" : "finite_f64", &p, sizeof p,
                         asg_vk_groups(c, n, 256), 1, 1);
}

asg_status asg_vk_check_finite(const asg_vk_call *c, uint64_t rec) {
  const asg_step *s = c->s;
  asg_vk_barrier(c); /* after the step's writes */
  asg_status st = check(c, c->out, &s->out, 0, rec);
  asg_vk_barrier(c); /* the inputs' scans read the output's claim */
  for (int j = 0; j < s->n_in && !st; j++)
    if (c->in[j] != c->out) /* an input updated in place holds the new values */
      st = check(c, c->in[j], &s->in[j], (uint32_t)j + 1, rec);
  return st;
}
