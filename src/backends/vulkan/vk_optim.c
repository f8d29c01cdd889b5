/* Vulkan kernels of the fused optimizer updates (adam_moment, adam_moment2,
 * adam_param; formulas and order of operations in src/ops/op_optim.c, as the
 * CPU reference and CUDA compute them). The shaders mark every operation
 * precise (no FMA contraction). adam_param reads its per-step scalars (lr,
 * bias corrections) on the device, so a recorded command buffer stays valid
 * when they change; they are computed in their own dtype S and rounded to
 * the parameter's dtype T, as the former scalar ops did. */
#include <stdio.h>

#include <string.h>

#include "backends/vulkan/vk.h"

static asg_status dtype_error(const asg_vk_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

static bool is_float(asg_dtype dt) { return dt == ASG_F32 || dt == ASG_F64; }

/* [n] o = m * beta + g * (1 - beta); MOMENT2: v * beta + (g * g) * (1 - beta) */
static asg_status moment_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (!is_float(dt)) return dtype_error(c, dt);
  for (int k = 0; k < 2; k++)
    if (s->in[k].dtype != dt) return dtype_error(c, s->in[k].dtype);
  char name[32];
  asg_status st = asg_vk_variant(c, "opt_moment", dt, name, sizeof name);
  if (st) return st;
  int64_t n = asg_shape_numel(s->out.shape);
  if (n <= 0) return ASG_OK;
  /* the f64 fields are read only by the f64 variant; f32 takes them rounded */
  struct {
    uint64_t o, m, g;
    double beta, one_m;
    float beta_f, one_m_f;
    uint32_t n;
    int32_t second;
  } p = {c->out,
         c->in[0],
         c->in[1],
         s->attr.f[0],
         s->attr.f[1],
         (float)s->attr.f[0],
         (float)s->attr.f[1],
         (uint32_t)n,
         s->op == ASG_OP_ADAM_MOMENT2};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, n, 256), 1, 1);
}

/* (p, m, v [n] of T; lr, bc1, bc2 one element of S) -> the new parameter */
static asg_status param_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, sdt = s->in[3].dtype;
  if (!is_float(dt)) return dtype_error(c, dt);
  for (int k = 0; k < 3; k++)
    if (s->in[k].dtype != dt) return dtype_error(c, s->in[k].dtype);
  if (!is_float(sdt)) return dtype_error(c, sdt);
  for (int k = 4; k < 6; k++)
    if (s->in[k].dtype != sdt) return dtype_error(c, s->in[k].dtype);
  char base[32], name[40];
  asg_status st = asg_vk_variant(c, "opt_param", dt, base, sizeof base);
  if (!st) st = asg_vk_variant(c, base, sdt, name, sizeof name);
  if (st) return st;
  /* f32/f32 with f64 hardware: exact f32 division and sqrt (opt_param.comp) */
  if (dt == ASG_F32 && sdt == ASG_F32 && c->ctx->caps.f64) strcat(name, "_x");
  int64_t n = asg_shape_numel(s->out.shape);
  if (n <= 0) return ASG_OK;
  double eps = s->attr.f[0], wd = s->attr.f[1];
  struct {
    uint64_t o, p, m, v, lr, bc1, bc2;
    double eps, wd;
    float eps_f, wd_f;
    uint32_t n;
    int32_t decay;
  } p = {c->out, c->in[0], c->in[1],   c->in[2],  c->in[3],    c->in[4], c->in[5],
         eps,    wd,       (float)eps, (float)wd, (uint32_t)n, wd != 0};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, n, 256), 1, 1);
}

void asg_vk_register_optim(asg_vk_kernel *t) {
  t[ASG_OP_ADAM_MOMENT].record = moment_record;
  t[ASG_OP_ADAM_MOMENT2].record = moment_record;
  t[ASG_OP_ADAM_PARAM].record = param_record;
}
