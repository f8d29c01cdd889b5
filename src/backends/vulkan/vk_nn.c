/* Vulkan kernels of the nn family: layernorm (+ its two backward ops),
 * rmsnorm, softmax cross-entropy (+ its backward op) and the random sources.
 * Reference semantics: src/backends/cpu/cpu_nn.c and cpu_random.c (ported
 * from the CUDA kernels of cuda_layernorm.cu and cuda_xent.cu). Statistics accumulate in the
 * element type (f32: float, so f32 kernels need no shaderFloat64; f64: double); every reduction has
 * a fixed order (no atomics), so results are deterministic run to run. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk.h"

static int64_t prod_dims(asg_shape s, int from, int to) {
  int64_t n = 1;
  for (int d = from; d < to; d++)
    n *= s.dims[d];
  return n;
}

static asg_status dtype_error(const asg_vk_call *c) {
  return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype not supported", c->s->label);
}

/* Threads per row of the row kernels: a power of two in [8, 256], about 4
 * elements per thread (narrow rows pack several rows into one group). */
static uint32_t row_threads(int64_t C) {
  uint32_t t = 8;
  while (t < 256 && (int64_t)t * 4 < C)
    t *= 2;
  return t;
}

static uint32_t row_groups(const asg_vk_call *c, int64_t R, uint32_t tpr) {
  return asg_vk_groups(c, R, 256 / tpr);
}

/* out[0..n) = 0 */
static asg_status zero_fill(const asg_vk_call *c, asg_dtype dt, int64_t n) {
  char name[32];
  asg_status st = asg_vk_variant(c, "fill", dt, name, sizeof name);
  struct {
    uint64_t out;
    int64_t n;
    double v;
  } p = {c->out, n, 0.0};
  return st ? st : asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, n, 256), 1, 1);
}

/* ---- layernorm ---- */

/* x is input 0 for LAYERNORM, input 1 for the backward ops. */
static void ln_dims(const asg_step *s, int64_t *R, int64_t *C) {
  asg_shape sh = s->in[s->op == ASG_OP_LAYERNORM ? 0 : 1].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = prod_dims(sh, 0, sh.ndim - 1);
}

/* Row chunks of the dgamma reduction: a function of R only (deterministic). */
static int64_t ln_g_chunks(int64_t R) {
  int64_t p = (R + 63) / 64;
  if (p > 1024) p = 1024;
  return p < 1 ? 1 : p;
}

/* mean [R], rstd [R], part [P, C] (8 bytes each at most) */
static size_t ln_bwd_g_ws(const asg_step *s) {
  int64_t R, C;
  ln_dims(s, &R, &C);
  return ((size_t)R * 2 + (size_t)ln_g_chunks(R) * (size_t)C) * sizeof(double);
}

typedef struct ln_rows_params { /* nn_ln_rows.comp */
  uint64_t x, a, b, out, ws;
  double eps;
  float eps_f;
  uint32_t R, C, tpr, mode;
} ln_rows_params;

typedef struct ln_gpart_params { /* nn_ln_gpart.comp */
  uint64_t dy, x, stats, part;
  uint32_t R, C, rows_per;
} ln_gpart_params;

typedef struct ln_gfinal_params { /* nn_ln_gfinal.comp */
  uint64_t part, out;
  uint32_t P, C;
} ln_gfinal_params;

static asg_status layernorm_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  int64_t R, C;
  ln_dims(s, &R, &C);
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  if (C == 0) return ASG_OK;
  if (R == 0) /* dgamma of an empty batch is zero */
    return s->op == ASG_OP_LAYERNORM_BWD_GAMMA ? zero_fill(c, dt, C) : ASG_OK;
  char rows[32], gpart[32], gfinal[32];
  asg_status st = asg_vk_variant(c, "nn_ln_rows", dt, rows, sizeof rows);
  if (!st) st = asg_vk_variant(c, "nn_ln_gpart", dt, gpart, sizeof gpart);
  if (!st) st = asg_vk_variant(c, "nn_ln_gfinal", dt, gfinal, sizeof gfinal);
  if (st) return st;
  uint32_t tpr = row_threads(C), g = row_groups(c, R, tpr);
  double eps = s->attr.f[0];
  ln_rows_params p = {0, 0, 0, c->out, c->ws, eps, (float)eps, (uint32_t)R, (uint32_t)C, tpr, 0};
  switch (s->op) {
  case ASG_OP_LAYERNORM: /* x, gamma, beta */
    p.x = c->in[0], p.a = c->in[1], p.b = c->in[2], p.mode = 0;
    return asg_vk_dispatch(c, rows, &p, sizeof p, g, 1, 1);
  case ASG_OP_LAYERNORM_BWD_X: /* dy, x, gamma */
    p.x = c->in[1], p.a = c->in[0], p.b = c->in[2], p.mode = 1;
    return asg_vk_dispatch(c, rows, &p, sizeof p, g, 1, 1);
  default: break;
  }
  /* LAYERNORM_BWD_GAMMA(dy, x): row stats, then column partials over row
   * chunks, then the chunks summed in order */
  size_t esz = asg_dtype_size(dt);
  uint64_t stats = c->ws, part = c->ws + 2 * (uint64_t)R * esz;
  p.x = c->in[1], p.mode = 2;
  st = asg_vk_dispatch(c, rows, &p, sizeof p, g, 1, 1);
  if (st) return st;
  asg_vk_barrier(c);
  int64_t P = ln_g_chunks(R), rows_per = (R + P - 1) / P, tiles = (C + 31) / 32;
  uint32_t gx = (uint32_t)(tiles < 65535 ? tiles : 65535);
  if (gx > c->ctx->caps.max_groups[0]) gx = c->ctx->caps.max_groups[0];
  ln_gpart_params q = {c->in[0],    c->in[1],          stats, part, (uint32_t)R,
                       (uint32_t)C, (uint32_t)rows_per};
  st = asg_vk_dispatch(c, gpart, &q, sizeof q, gx, (uint32_t)P, 1);
  if (st) return st;
  asg_vk_barrier(c);
  ln_gfinal_params f = {part, c->out, (uint32_t)P, (uint32_t)C};
  return asg_vk_dispatch(c, gfinal, &f, sizeof f, asg_vk_groups(c, C, 256), 1, 1);
}

/* ---- rmsnorm ---- */

typedef struct rms_rows_params { /* nn_rms_rows.comp */
  uint64_t x, w, out;
  double eps;
  float eps_f;
  uint32_t R, C, tpr;
} rms_rows_params;

/* x [R,C] (leading dims flattened), w [C] -> y [R,C]: one dispatch of the
 * row kernel (layernorm's geometry) */
static asg_status rmsnorm_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_shape sh = s->in[0].shape;
  int64_t C = sh.dims[sh.ndim - 1], R = prod_dims(sh, 0, sh.ndim - 1);
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64) return dtype_error(c);
  if (R == 0 || C == 0) return ASG_OK;
  char name[32];
  asg_status st = asg_vk_variant(c, "nn_rms_rows", dt, name, sizeof name);
  if (st) return st;
  uint32_t tpr = row_threads(C);
  double eps = s->attr.f[0];
  rms_rows_params p = {c->in[0], c->in[1], c->out, eps, (float)eps, (uint32_t)R, (uint32_t)C, tpr};
  return asg_vk_dispatch(c, name, &p, sizeof p, row_groups(c, R, tpr), 1, 1);
}

/* ---- softmax cross-entropy ---- */

static void ce_dims(const asg_step *s, int64_t *R, int64_t *C) {
  asg_shape sh = s->in[0].shape;
  *C = sh.dims[sh.ndim - 1];
  *R = prod_dims(sh, 0, sh.ndim - 1);
}

/* forward: row losses [R]; backward: the count of rows in the loss */
static size_t ce_ws(const asg_step *s) {
  int64_t R, C;
  ce_dims(s, &R, &C);
  return s->op == ASG_OP_SOFTMAX_CE ? (size_t)(R > 0 ? R : 1) * sizeof(double) : sizeof(double);
}

typedef struct ce_rows_params { /* nn_ce_rows.comp */
  uint64_t x, lab, dloss, out, ws, fault;
  int64_t ign;
  double ls;
  float ls_f;
  uint32_t R, C, tpr, mode, lab64, step1;
} ce_rows_params;

typedef struct ce_total_params { /* nn_ce_total.comp */
  uint64_t lab, out, ws;
  int64_t ign;
  uint32_t R, C, mode, lab64;
} ce_total_params;

static asg_status ce_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  int64_t R, C;
  ce_dims(s, &R, &C);
  asg_dtype dt = s->in[0].dtype, ldt = s->in[1].dtype;
  if ((dt != ASG_F32 && dt != ASG_F64) || (ldt != ASG_I32 && ldt != ASG_I64)) return dtype_error(c);
  bool fwd = s->op == ASG_OP_SOFTMAX_CE;
  if (R == 0 || C == 0) /* no rows (graphs have none): loss 0, no gradient */
    return fwd ? zero_fill(c, dt, 1) : ASG_OK;
  char rows[32], total[32];
  asg_status st = asg_vk_variant(c, "nn_ce_rows", dt, rows, sizeof rows);
  if (!st) st = asg_vk_variant(c, "nn_ce_total", dt, total, sizeof total);
  if (st) return st;
  uint32_t tpr = row_threads(C), g = row_groups(c, R, tpr), lab64 = ldt == ASG_I64;
  double ls = s->attr.f[0];
  ce_rows_params p = {c->in[0],      c->in[1], 0,         c->out,      c->ws,       c->fault,
                      s->attr.i[0],  ls,       (float)ls, (uint32_t)R, (uint32_t)C, tpr,
                      fwd ? 0u : 1u, lab64,    c->step1};
  ce_total_params t = {c->in[1],    c->out,      c->ws,         s->attr.i[0],
                       (uint32_t)R, (uint32_t)C, fwd ? 0u : 1u, lab64};
  if (fwd) { /* row losses, then their mean over the counted rows */
    st = asg_vk_dispatch(c, rows, &p, sizeof p, g, 1, 1);
    if (st) return st;
    asg_vk_barrier(c);
    return asg_vk_dispatch(c, total, &t, sizeof t, 1, 1, 1);
  }
  p.dloss = c->in[2]; /* the count, then dlogits */
  st = asg_vk_dispatch(c, total, &t, sizeof t, 1, 1, 1);
  if (st) return st;
  asg_vk_barrier(c);
  return asg_vk_dispatch(c, rows, &p, sizeof p, g, 1, 1);
}

/* ---- random sources ---- */

typedef struct rand_params { /* nn_rand.comp */
  uint64_t out, run, seed, thr;
  double f0, f1;
  float f0_f, f1_f;
  uint32_t n, op;
} rand_params;

/* out [any shape]: element i from counter i of key(seed, run count) */
static asg_status rand_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  int64_t n = asg_shape_numel(s->out.shape);
  asg_dtype dt = s->out.dtype;
  const char *sfx = asg_vk_suffix(dt);
  if (!sfx || (dt == ASG_F64 && !c->ctx->caps.f64)) return dtype_error(c);
  bool lite = dt == ASG_F32 && !c->ctx->caps.f64; /* float-only approximation */
  char name[32];
  snprintf(name, sizeof name, "nn_rand%s%s", sfx, lite ? "_nof64" : "");
  double f0 = s->attr.f[0], f1 = s->attr.f[1];
  /* bernoulli: u < f0 <=> (bits >> 11) < ceil(f0 * 2^53), exactly */
  uint64_t thr = 0;
  if (f0 >= 1)
    thr = (uint64_t)1 << 53;
  else if (f0 > 0)
    thr = (uint64_t)ceil(f0 * 9007199254740992.0);
  uint32_t op = s->op == ASG_OP_RAND_UNIFORM ? 0 : s->op == ASG_OP_RAND_NORMAL ? 1 : 2;
  if (!asg_dtype_is_float(dt) && op != 2) return dtype_error(c);
  rand_params p = {c->out,      c->run, (uint64_t)s->attr.i[0], thr, f0, f1, (float)f0, (float)f1,
                   (uint32_t)n, op};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, n, 256), 1, 1);
}

void asg_vk_register_nn(asg_vk_kernel *t) {
  t[ASG_OP_LAYERNORM].record = layernorm_record;
  t[ASG_OP_LAYERNORM_BWD_X].record = layernorm_record;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].record = layernorm_record;
  t[ASG_OP_LAYERNORM_BWD_GAMMA].ws = ln_bwd_g_ws;
  t[ASG_OP_RMSNORM].record = rmsnorm_record;
  t[ASG_OP_SOFTMAX_CE].record = ce_record;
  t[ASG_OP_SOFTMAX_CE].ws = ce_ws;
  t[ASG_OP_SOFTMAX_CE_BWD].record = ce_record;
  t[ASG_OP_SOFTMAX_CE_BWD].ws = ce_ws;
  t[ASG_OP_RAND_UNIFORM].record = rand_record;
  t[ASG_OP_RAND_NORMAL].record = rand_record;
  t[ASG_OP_RAND_BERNOULLI].record = rand_record;
}
