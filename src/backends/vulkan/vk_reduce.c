/* Vulkan kernels of the reduce family: sum, mean, max, min, var, argmax over
 * any axis set, and softmax / log_softmax along one axis. Semantics follow
 * the CPU reference (cpu_reduce.c, cpu_nn.c); the strategy follows
 * cuda_reduce.cu (shaders/red_reduce.comp, red_softmax.comp):
 *  - the input dims are coalesced into runs of kept and reduced axes
 *    (asg__reduce_plan, runtime/layout.h);
 *  - "rows" when the innermost reduced run is contiguous and long (a group
 *    of g lanes per output reads neighbouring elements), else "cols" (the
 *    innermost dim is kept: neighbouring invocations take neighbouring
 *    outputs, BY lanes per output share its reduced set);
 *  - with too few outputs to fill the device, each output's reduced set is
 *    cut into S chunks whose partials go to the workspace, joined by a
 *    second dispatch (phase 1) in chunk order: results are deterministic.
 * Float sums accumulate in the element type (tree order; parity allows the
 * reordering), integer sums wrap exactly as the CPU's int64 sum cast back. */
#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

/* Mirrors red_reduce.comp's Params. */
typedef struct red_params {
  uint64_t x, out, part;
  int32_t nk, nr;
  int32_t kd[8], ks[8], rd[8], rs[8];
  int32_t nout, nred, g, rows, S, chunk, mode, corr, phase;
  uint64_t y; /* mode 2 (rowdot): the second factor */
} red_params;

/* The reduced axes: rowdot (src/passes/fuse_rowdot.c) sums x * y over the last. */
static int64_t red_mask(const asg_step *s) {
  return s->op == ASG_OP_ROWDOT ? (int64_t)1 << (s->in[0].shape.ndim - 1) : s->attr.i[0];
}

typedef struct geom {
  bool rows; /* the innermost reduced run is contiguous (and >= 16 long) */
  int g;     /* lanes per output: rows 32 / 256, cols 1 / 8 */
  int S;     /* chunks per output (> 1: partials in the workspace) */
} geom;

static geom geom_of(const asg_reduce_plan *p) {
  geom r;
  r.rows = p->rs[p->nr - 1] == 1 && p->rd[p->nr - 1] >= 16;
  if (r.rows)
    r.g = p->nred <= 1024 ? 32 : 256;
  else
    r.g = p->nred >= 64 ? 8 : 1;
  int64_t per_group = 256 / r.g, groups = (p->nout + per_group - 1) / per_group;
  r.S = 1;
  /* too few groups to fill a large GPU: split long reductions */
  if (groups < 1024 && p->nred >= 8192) {
    int64_t s = (2048 + groups - 1) / groups;
    if (s > p->nred / 2048) s = p->nred / 2048; /* keep chunks long */
    if (s > 1024) s = 1024;
    if (s >= 2) r.S = (int)s;
  }
  return r;
}

static size_t reduce_ws(const asg_step *s) {
  asg_reduce_plan p;
  asg__reduce_plan(&p, s->in[0].shape, red_mask(s));
  if (p.nout <= 0) return 0;
  geom g = geom_of(&p);
  return g.S > 1 ? (size_t)p.nout * (size_t)g.S * 24 : 0; /* three 8-byte slots per partial */
}

static asg_status reduce_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->in[0].dtype;
  asg_reduce_plan p;
  asg__reduce_plan(&p, s->in[0].shape, red_mask(s));
  if (p.nout <= 0) return ASG_OK;
  const char *base;
  int mode = 0;
  switch (s->op) {
  case ASG_OP_SUM: base = "red_sum"; break;
  case ASG_OP_MEAN: base = "red_sum", mode = 1; break;
  case ASG_OP_MAX: base = "red_max"; break;
  case ASG_OP_MIN: base = "red_min"; break;
  case ASG_OP_ARGMAX: base = "red_max", mode = 1; break;
  case ASG_OP_VAR: base = "red_var"; break;
  case ASG_OP_ROWDOT: base = "red_sum", mode = 2; break;
  default: return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: not a reduction", s->label);
  }
  if ((s->op == ASG_OP_MEAN || s->op == ASG_OP_VAR || s->op == ASG_OP_ROWDOT) && dt != ASG_F32 &&
      dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  char name[32];
  asg_status st = asg_vk_variant(c, base, dt, name, sizeof name);
  if (st) return st;
  geom g = geom_of(&p);
  red_params q = {0};
  q.x = c->in[0];
  q.out = c->out;
  q.part = g.S > 1 ? c->ws : 0;
  q.nk = p.nk;
  q.nr = p.nr;
  for (int d = 0; d < p.nk; d++)
    q.kd[d] = (int32_t)p.kd[d], q.ks[d] = (int32_t)p.ks[d];
  for (int d = 0; d < p.nr; d++)
    q.rd[d] = (int32_t)p.rd[d], q.rs[d] = (int32_t)p.rs[d];
  q.nout = (int32_t)p.nout;
  q.nred = (int32_t)p.nred;
  q.g = g.g;
  q.rows = g.rows;
  q.S = g.S;
  q.chunk = (int32_t)((p.nred + g.S - 1) / g.S);
  q.mode = mode;
  q.corr = s->op == ASG_OP_VAR ? (int32_t)s->attr.i[2] : 0;
  q.y = s->op == ASG_OP_ROWDOT ? c->in[1] : 0;
  int64_t per_group = 256 / g.g;
  st = asg_vk_dispatch(c, name, &q, sizeof q,
                       asg_vk_groups(c, (p.nout + per_group - 1) / per_group * g.S, 1), 1, 1);
  if (st || g.S == 1) return st;
  asg_vk_barrier(c);
  q.phase = 1;
  return asg_vk_dispatch(c, name, &q, sizeof q, asg_vk_groups(c, p.nout, 256), 1, 1);
}

/* Mirrors red_softmax.comp's Params. */
typedef struct sm_params {
  uint64_t x, y;
  int32_t outer, n, inner, g, rows;
} sm_params;

static asg_status softmax_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_shape sh = s->in[0].shape;
  int a = (int)s->attr.i[0];
  if (a < 0 || a >= sh.ndim)
    return asg__error(ASG_ERR_INVALID, "vulkan: %s: axis %d out of range", s->label, a);
  int64_t outer = 1, inner = 1, n = sh.dims[a];
  for (int d = 0; d < a; d++)
    outer *= sh.dims[d];
  for (int d = a + 1; d < sh.ndim; d++)
    inner *= sh.dims[d];
  if (outer * n * inner == 0) return ASG_OK;
  asg_dtype dt = s->in[0].dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  char name[32];
  asg_status st = asg_vk_variant(c, s->op == ASG_OP_LOG_SOFTMAX ? "red_logsoftmax" : "red_softmax",
                                 dt, name, sizeof name);
  if (st) return st;
  sm_params q = {c->in[0], c->out, (int32_t)outer, (int32_t)n, (int32_t)inner, 32, inner == 1};
  uint32_t groups;
  if (inner == 1) {
    q.g = n <= 1024 ? 32 : 256;
    int64_t rpg = 256 / q.g;
    groups = asg_vk_groups(c, (outer + rpg - 1) / rpg, 1);
  } else {
    groups = asg_vk_groups(c, outer * inner, 256);
  }
  return asg_vk_dispatch(c, name, &q, sizeof q, groups, 1, 1);
}

void asg_vk_register_reduce(asg_vk_kernel *t) {
  static const asg_op red[] = {ASG_OP_SUM, ASG_OP_MEAN,   ASG_OP_MAX,   ASG_OP_MIN,
                               ASG_OP_VAR, ASG_OP_ARGMAX, ASG_OP_ROWDOT};
  for (size_t i = 0; i < sizeof red / sizeof red[0]; i++) {
    t[red[i]].record = reduce_record;
    t[red[i]].ws = reduce_ws;
  }
  t[ASG_OP_SOFTMAX].record = softmax_record;
  t[ASG_OP_LOG_SOFTMAX].record = softmax_record;
}
