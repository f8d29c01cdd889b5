/* Vulkan kernels of the index family: permute, slice, slice_bwd, concat,
 * gather, scatter_add, one_hot (semantics: src/backends/cpu/cpu_index.c).
 * Data movement is dtype-generic: shaders move "units" of 4, 8 or 16 bytes,
 * the widest dividing every byte length, stride and address involved (rows
 * of 4 floats move as one 16-byte load). Only scatter_add and one_hot do
 * arithmetic per dtype. Every kernel writes all of its output (arena
 * buffers are reused). Index math in the shaders is 32-bit: every offset
 * stays inside a tensor of fewer than 2^31 elements (and units are at least
 * one element). */
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

static asg_status bad_dtype(const asg_vk_call *c, asg_dtype dt) {
  return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", c->s->label,
                    asg_dtype_name(dt));
}

/* Element sizes the shaders move (no 16-bit storage is assumed). */
static asg_status check_movable(const asg_vk_call *c, asg_dtype dt) {
  size_t es = asg_dtype_size(dt);
  if (es != 4 && es != 8) return bad_dtype(c, dt);
  if (dt == ASG_F64 && !c->ctx->caps.f64) return bad_dtype(c, dt);
  return ASG_OK;
}

/* widest unit (<= 16 bytes, >= the element size) dividing every value */
static size_t unit_for(size_t es, const uint64_t *vals, int n) {
  size_t u = 16;
  for (; u > es; u /= 2) {
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
      ok = vals[i] % u == 0;
    if (ok) break;
  }
  return u;
}

static const char *unit_sfx(size_t u) { return u == 16 ? "_u128" : u == 8 ? "_u64" : "_u32"; }

/* ---- strided record copy (slice, concat, plain copies) ----
 * [outer, cnt, len] in bytes: dst[o*d_o + j*d_j + k] = src[o*s_o + j*s_j + k]. */
static asg_status copy3(const asg_vk_call *c, uint64_t dst, uint64_t src, int64_t outer,
                        int64_t cnt, int64_t len_b, int64_t d_o_b, int64_t d_j_b, int64_t s_o_b,
                        int64_t s_j_b, size_t es) {
  int64_t total_b = outer * cnt * len_b;
  if (total_b == 0) return ASG_OK;
  uint64_t vals[7] = {dst,
                      src,
                      (uint64_t)len_b,
                      (uint64_t)d_o_b,
                      (uint64_t)d_j_b,
                      (uint64_t)s_o_b,
                      (uint64_t)s_j_b};
  size_t u = unit_for(es, vals, 7);
  int64_t U = (int64_t)u;
  struct {
    uint64_t dst, src;
    uint32_t total, cnt, len, d_o, d_j, s_o, s_j;
  } p = {dst,
         src,
         (uint32_t)(total_b / U),
         (uint32_t)cnt,
         (uint32_t)(len_b / U),
         (uint32_t)(d_o_b / U),
         (uint32_t)(d_j_b / U),
         (uint32_t)(s_o_b / U),
         (uint32_t)(s_j_b / U)};
  char name[32];
  snprintf(name, sizeof name, "idx_copy3%s", unit_sfx(u));
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.total, 256), 1, 1);
}

/* ---- permute ----
 * The permutation is simplified first (asg__permute_plan, runtime/layout.h):
 * size-1 dims are dropped and input dims that stay adjacent and in order are
 * merged (e.g. [N,C,H,W] -> [N,H,W,C] is a batch of [C, HW] -> [HW, C]
 * transposes). Then:
 *   - the input's last dim moves and both sides of that 2-D transpose have
 *     >= 16 elements: tiled transpose through shared memory, batched over
 *     the other dims (last-two-dims swaps, NCHW <-> NHWC, ...);
 *   - otherwise one invocation per output unit walks the input strides
 *     (writes coalesced); when the last dim stays last (e.g. [B,T,H,D] ->
 *     [B,H,T,D]) reads are contiguous along it too, in wide units. */
static uint32_t cap_groups(const asg_vk_call *c, int axis, int64_t n) {
  int64_t cap = c->ctx->caps.max_groups[axis];
  if (cap > 65535) cap = 65535;
  return (uint32_t)(n < cap ? n : cap);
}

static asg_status permute_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  asg_status st = check_movable(c, dt);
  if (st) return st;
  size_t es = asg_dtype_size(dt);
  int64_t total = asg_shape_numel(s->out.shape);
  if (total == 0) return ASG_OK;
  asg_permute_plan p;
  asg__permute_plan(&p, s->in[0].shape, s->attr.i);
  if (p.nd <= 1) /* only size-1 axes moved: a plain copy */
    return copy3(c, c->out, c->in[0], 1, 1, total * (int64_t)es, 0, 0, 0, 0, es);
  int nd = p.nd;
  const int *inv = p.inv;
  const int64_t *ist = p.ist, *ost = p.ost;
  int64_t *od = p.od, *oist = p.oist; /* rescaled below for wide units */

  if (p.pm[nd - 1] != nd - 1) {
    /* rows i: input dim P (goes last in the output); columns j: input's last dim L */
    int P = p.pm[nd - 1], L = nd - 1;
    int64_t NI = p.dims[P], NJ = p.dims[L];
    if (NI >= 16 && NJ >= 16) {
      struct {
        uint64_t dst, src;
        uint32_t ni, nj, isp, osq, nbatch;
        int32_t nb;
        uint32_t bd[8], bis[8], bos[8];
      } t;
      memset(&t, 0, sizeof t);
      int64_t nbatch = 1;
      for (int d = 0; d < nd; d++) {
        if (d == P || d == L) continue;
        t.bd[t.nb] = (uint32_t)p.dims[d];
        t.bis[t.nb] = (uint32_t)ist[d];
        t.bos[t.nb] = (uint32_t)ost[inv[d]];
        nbatch *= p.dims[d];
        t.nb++;
      }
      t.dst = c->out;
      t.src = c->in[0];
      t.ni = (uint32_t)NI;
      t.nj = (uint32_t)NJ;
      t.isp = (uint32_t)ist[P];
      t.osq = (uint32_t)ost[inv[L]];
      t.nbatch = (uint32_t)nbatch;
      return asg_vk_dispatch(c, es == 8 ? "idx_transpose_u64" : "idx_transpose_u32", &t, sizeof t,
                             cap_groups(c, 0, (NJ + 31) / 32), cap_groups(c, 1, (NI + 31) / 32),
                             cap_groups(c, 2, nbatch));
    }
  }
  size_t u = es;
  if (p.pm[nd - 1] == nd - 1) {
    /* the last dim stays last: move its rows in wide units */
    uint64_t vals[3] = {c->out, c->in[0], (uint64_t)(p.dims[nd - 1] * (int64_t)es)};
    u = unit_for(es, vals, 3);
    int64_t f = (int64_t)(u / es);
    total /= f;
    od[nd - 1] /= f;
    for (int j = 0; j < nd - 1; j++)
      oist[j] /= f; /* multiples of the row length */
  }
  struct {
    uint64_t dst, src;
    uint32_t total;
    int32_t nd;
    uint32_t od[8], oist[8];
  } g;
  memset(&g, 0, sizeof g);
  g.dst = c->out;
  g.src = c->in[0];
  g.total = (uint32_t)total;
  g.nd = nd;
  for (int j = 0; j < nd; j++) {
    g.od[j] = (uint32_t)od[j];
    g.oist[j] = (uint32_t)oist[j];
  }
  char name[32];
  snprintf(name, sizeof name, "idx_permute%s", unit_sfx(u));
  return asg_vk_dispatch(c, name, &g, sizeof g, asg_vk_groups(c, total, 256), 1, 1);
}

/* ---- slice / slice_bwd ---- */

/* x [outer, n, inner] -> y [outer, count, inner], y[o, j] = x[o, start + j*step] */
static asg_status slice_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  asg_status st = check_movable(c, dt);
  if (st) return st;
  int a = (int)s->attr.i[0];
  int64_t start = s->attr.i[1], step = s->attr.i[2], count = s->attr.i[3], outer, inner;
  int64_t n = s->in[0].shape.dims[a];
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  int64_t es = (int64_t)asg_dtype_size(dt), rb = inner * es;
  uint64_t src = c->in[0] + (uint64_t)(start * rb);
  if (step == 1) /* one contiguous block per outer row */
    return copy3(c, c->out, src, outer, 1, count * rb, count * rb, 0, n * rb, 0, (size_t)es);
  return copy3(c, c->out, src, outer, count, rb, count * rb, rb, n * rb, step * rb, (size_t)es);
}

/* dy [outer, count, inner] -> dx [outer, n, inner]: zeros, dy at the slice;
 * one dispatch writes every element of dx. */
static asg_status slice_bwd_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  asg_status st = check_movable(c, dt);
  if (st) return st;
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->out.shape.dims[a];
  asg__split_axis(s->out.shape, a, &outer, &inner);
  size_t es = asg_dtype_size(dt);
  uint64_t vals[3] = {c->out, c->in[0], (uint64_t)inner * es};
  size_t u = unit_for(es, vals, 3);
  int64_t len = inner * (int64_t)es / (int64_t)u;
  struct {
    uint64_t dst, src;
    uint32_t total, n, len, start, step, count;
  } p = {c->out,
         c->in[0],
         (uint32_t)(outer * n * len),
         (uint32_t)n,
         (uint32_t)len,
         (uint32_t)s->attr.i[1],
         (uint32_t)s->attr.i[2],
         (uint32_t)s->attr.i[3]};
  if (p.total == 0) return ASG_OK;
  char name[32];
  snprintf(name, sizeof name, "idx_slice_bwd%s", unit_sfx(u));
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.total, 256), 1, 1);
}

/* ---- concat ----
 * xs[k] [outer, n_k, inner] -> y [outer, sum n_k, inner]; one dispatch per
 * input writing its slab (disjoint: no barriers between them). */
static asg_status concat_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  asg_status st = check_movable(c, dt);
  if (st) return st;
  int a = (int)s->attr.i[0];
  int64_t outer, inner;
  asg__split_axis(s->out.shape, a, &outer, &inner);
  int64_t es = (int64_t)asg_dtype_size(dt), orb = s->out.shape.dims[a] * inner * es, before = 0;
  for (int k = 0; k < s->n_in && !st; k++) {
    if (s->in[k].dtype != dt) return bad_dtype(c, s->in[k].dtype);
    int64_t rb = s->in[k].shape.dims[a] * inner * es; /* one outer row of input k */
    st = copy3(c, c->out + (uint64_t)before, c->in[k], outer, 1, rb, orb, 0, rb, 0, (size_t)es);
    before += rb;
  }
  return st;
}

/* ---- gather ----
 * x [outer, n, inner], idx [m] -> y [outer, m, inner]; y[o, j] = x[o, idx[j]],
 * zeros where idx[j] is outside [0, n) (reported to c->fault, as by every
 * kernel here that reads indices). */
static asg_status gather_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, it = s->in[1].dtype;
  asg_status st = check_movable(c, dt);
  if (st) return st;
  if (it != ASG_I32 && it != ASG_I64) return bad_dtype(c, it);
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->in[0].shape.dims[a], m = asg_shape_numel(s->in[1].shape);
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  size_t es = asg_dtype_size(dt);
  uint64_t vals[3] = {c->out, c->in[0], (uint64_t)inner * es};
  size_t u = unit_for(es, vals, 3);
  int64_t len = inner * (int64_t)es / (int64_t)u;
  struct {
    uint64_t dst, src, idx, fault;
    uint32_t total, m, n, len;
    int32_t idx64;
    uint32_t step1;
  } p = {c->out,      c->in[0],    c->in[1],      c->fault,      (uint32_t)(outer * m * len),
         (uint32_t)m, (uint32_t)n, (uint32_t)len, it == ASG_I64, c->step1};
  if (p.total == 0) return ASG_OK;
  char name[32];
  snprintf(name, sizeof name, "idx_gather%s", unit_sfx(u));
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.total, 256), 1, 1);
}

/* ---- scatter_add ----
 * x [outer, n, inner], idx [m], src [outer, m, inner] -> y = x, then
 * y[o, idx[j]] += src[o, j]; out-of-range idx[j] are ignored. With atomics
 * (f32/f64 by compare-and-swap) the order of the additions to one element
 * (duplicate indices) is arbitrary, so floats may differ from the CPU by
 * rounding; integers are exact. Devices without 64-bit buffer atomics use a
 * scan kernel for f64/i64 (deterministic, slower). */
static asg_status scatter_add_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, it = s->in[1].dtype;
  if (it != ASG_I32 && it != ASG_I64) return bad_dtype(c, it);
  if (s->in[0].dtype != dt || s->in[2].dtype != dt) return bad_dtype(c, s->in[2].dtype);
  char name[32];
  asg_status st = asg_vk_variant(c, "idx_scatter", dt, name, sizeof name);
  if (st) return st;
  int a = (int)s->attr.i[0];
  int64_t outer, inner, n = s->in[0].shape.dims[a], m = asg_shape_numel(s->in[1].shape);
  asg__split_axis(s->in[0].shape, a, &outer, &inner);
  int64_t es = (int64_t)asg_dtype_size(dt);
  if (es == 8 && !c->ctx->caps.int64_atomics) {
    struct {
      uint64_t dst, x, idx, src, fault;
      uint32_t total, m, n, inner;
      int32_t idx64;
      uint32_t step1;
    } p = {c->out,        c->in[0],    c->in[1],
           c->in[2],      c->fault,    (uint32_t)(outer * n * inner),
           (uint32_t)m,   (uint32_t)n, (uint32_t)inner,
           it == ASG_I64, c->step1};
    if (p.total == 0) return ASG_OK;
    snprintf(name, sizeof name, "idx_scatter_scan%s", asg_vk_suffix(dt));
    return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.total, 256), 1, 1);
  }
  if (c->out != c->in[0]) {
    st = copy3(c, c->out, c->in[0], 1, 1, outer * n * inner * es, 0, 0, 0, 0, (size_t)es);
    if (st) return st;
    asg_vk_barrier(c); /* the adds read-modify-write the copy */
  }
  struct {
    uint64_t dst, idx, src, fault;
    uint32_t total, m, n, inner;
    int32_t idx64;
    uint32_t step1;
  } p = {c->out,      c->in[1],    c->in[2],        c->fault,      (uint32_t)(outer * m * inner),
         (uint32_t)m, (uint32_t)n, (uint32_t)inner, it == ASG_I64, c->step1};
  if (p.total == 0) return ASG_OK;
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, p.total, 256), 1, 1);
}

/* ---- one_hot ----
 * idx [m] -> y [m, depth]: 1 at idx, 0 elsewhere (all 0 when out of range) */
static asg_status one_hot_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype, it = s->in[0].dtype;
  if (it != ASG_I32 && it != ASG_I64) return bad_dtype(c, it);
  char name[32];
  asg_status st = asg_vk_variant(c, "idx_one_hot", dt, name, sizeof name);
  if (st) return st;
  int64_t depth = s->attr.i[0], total = asg_shape_numel(s->out.shape);
  if (total == 0 || depth < 1) return ASG_OK;
  struct {
    uint64_t dst, idx, fault;
    uint32_t total, depth;
    int32_t idx64;
    uint32_t step1;
  } p = {c->out, c->in[0], c->fault, (uint32_t)total, (uint32_t)depth, it == ASG_I64, c->step1};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, total, 256), 1, 1);
}

void asg_vk_register_index(asg_vk_kernel *t) {
  t[ASG_OP_PERMUTE].record = permute_record;
  t[ASG_OP_SLICE].record = slice_record;
  t[ASG_OP_SLICE_BWD].record = slice_bwd_record;
  t[ASG_OP_CONCAT].record = concat_record;
  t[ASG_OP_GATHER].record = gather_record;
  t[ASG_OP_SCATTER_ADD].record = scatter_add_record;
  t[ASG_OP_ONE_HOT].record = one_hot_record;
}
