/* Vulkan kernels of the matmul family: batched GEMM with broadcast batch dims
 * and either operand transposed (attr.i[0] / attr.i[1]), f32 and f64, on a
 * tiled shared-memory GEMM (shaders/mm_gemm.comp). Shapes map as in
 * cuda_matmul.cu's MmPlan: [.., M, K] x [K, N] is one tall GEMM over all
 * batch rows; otherwise the output's batch index is decomposed over its
 * batch dims with per-operand strides (0 where an operand broadcasts).
 * With allow_tf32 on a device with NV cooperative matrices, f32 GEMMs run
 * on tensor cores instead (shaders/mm_coop.comp: fp16 products, fp32 sums,
 * same parameters); otherwise products are full FP32. */
#include <string.h>

#include "backends/vulkan/vk.h"

/* Mirrors mm_gemm.comp's Params. */
typedef struct mm_params {
  uint64_t a, b, c;
  int32_t M, N, K, lda, ldb, ta, tb, nbatch, nbd, amat, bmat;
  int32_t bdims[8], abst[8], bbst[8];
} mm_params;

static void mm_plan(const asg_step *s, mm_params *p) {
  asg_shape as = s->in[0].shape, bs = s->in[1].shape, os = s->out.shape;
  int ra = as.ndim, rb = bs.ndim, ro = os.ndim;
  memset(p, 0, sizeof *p);
  p->ta = s->attr.i[0] != 0;
  p->tb = s->attr.i[1] != 0;
  int64_t M = os.dims[ro - 2], N = os.dims[ro - 1], K = as.dims[ra - (p->ta ? 2 : 1)];
  int64_t nbatch = 1, nb_a = 1, nb_b = 1;
  for (int i = 0; i < ro - 2; i++)
    nbatch *= os.dims[i];
  for (int i = 0; i < ra - 2; i++)
    nb_a *= as.dims[i];
  for (int i = 0; i < rb - 2; i++)
    nb_b *= bs.dims[i];
  p->N = (int32_t)N;
  p->K = (int32_t)K;
  p->lda = (int32_t)as.dims[ra - 1];
  p->ldb = (int32_t)bs.dims[rb - 1];
  p->amat = (int32_t)(as.dims[ra - 1] * as.dims[ra - 2]);
  p->bmat = (int32_t)(bs.dims[rb - 1] * bs.dims[rb - 2]);
  if (nb_b == 1 && !p->ta && nb_a == nbatch) { /* the batch rows of a: one tall matrix */
    p->M = (int32_t)(nbatch * M);
    p->nbatch = 1;
    return;
  }
  p->M = (int32_t)M;
  p->nbatch = (int32_t)nbatch;
  if ((nb_a == 1 || nb_a == nbatch) && (nb_b == 1 || nb_b == nbatch)) {
    /* same element count: the output's linear batch index addresses both */
    p->nbd = 1;
    p->bdims[0] = (int32_t)nbatch;
    p->abst[0] = nb_a == 1 ? 0 : 1;
    p->bbst[0] = nb_b == 1 ? 0 : 1;
    return;
  }
  p->nbd = ro - 2;
  int64_t st = 1;
  for (int d = p->nbd - 1; d >= 0; d--) {
    p->bdims[d] = (int32_t)os.dims[d];
    int id = ra - 2 - (p->nbd - d);
    p->abst[d] = (int32_t)((id >= 0 && as.dims[id] != 1) ? st : 0);
    if (id >= 0) st *= as.dims[id];
  }
  st = 1;
  for (int d = p->nbd - 1; d >= 0; d--) {
    int id = rb - 2 - (p->nbd - d);
    p->bbst[d] = (int32_t)((id >= 0 && bs.dims[id] != 1) ? st : 0);
    if (id >= 0) st *= bs.dims[id];
  }
}

static uint32_t cap(int64_t n, uint32_t max) { return n < (int64_t)max ? (uint32_t)n : max; }

/* The mm_coop.comp variants of matmul.list: tile bm x bn, slice depth bk,
 * nsg subgroups of 32, vec-wide global loads. On an H200 (f32 inputs, fp32
 * sums): 128x128 with 64x64 per subgroup ~75 TFLOP/s at 4096^3 (the fp32
 * GEMM: 13-27); unaligned operands take the scalar-load variants. */
typedef struct coop_variant {
  const char *name;
  int bm, bn, bk, nsg, vec;
} coop_variant;
static const coop_variant k_coop[] = {
    {"mm_coopw4_f32", 128, 128, 32, 4, 4},
    {"mm_coop_f32", 128, 128, 32, 8, 1},
    {"mm_coop644_f32", 64, 64, 32, 4, 4},
    {"mm_coop64_f32", 64, 64, 32, 4, 1},
};

/* Shared bytes of a variant: the fp16 a and b slices (padded rows, either
 * orientation) and a 16x16 fp32 scratch per subgroup. */
static size_t coop_shared(const coop_variant *v) {
  int pad = 8, a1 = v->bm * (v->bk + pad), a2 = v->bk * (v->bm + pad);
  int b1 = v->bn * (v->bk + pad), b2 = v->bk * (v->bn + pad);
  return (size_t)2 * ((a1 > a2 ? a1 : a2) + (b1 > b2 ? b1 : b2)) + (size_t)v->nsg * 256 * 4;
}

/* The tensor-core variant for this GEMM, NULL when the device or the
 * operands do not allow one (then the fp32 GEMM runs). */
static const coop_variant *coop_pick(const asg_vk_call *c, const mm_params *p) {
  const asg_vk_caps *k = &c->ctx->caps;
  if (!c->tf32 || !k->coop_matrix_nv || k->subgroup_size != 32) return NULL;
  /* 16-byte loads: leading dims (the contiguous extents) and bases aligned */
  bool v4 = p->lda % 4 == 0 && p->ldb % 4 == 0 && p->a % 16 == 0 && p->b % 16 == 0;
  /* 128x128 tiles when there are enough of them to fill a large GPU */
  int64_t t128 = ((int64_t)p->M + 127) / 128 * (((int64_t)p->N + 127) / 128) * p->nbatch;
  const coop_variant *v = &k_coop[(t128 >= 256 ? 0 : 2) + (v4 ? 0 : 1)];
  if (coop_shared(v) > k->shared_bytes || (uint32_t)v->nsg * 32 > k->max_invocations) return NULL;
  return v;
}

static asg_status mm_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if ((dt != ASG_F32 && dt != ASG_F64) || s->in[0].dtype != dt || s->in[1].dtype != dt)
    return asg__error(ASG_ERR_DTYPE, "vulkan: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  mm_params p;
  mm_plan(s, &p);
  p.a = c->in[0];
  p.b = c->in[1];
  p.c = c->out;
  if (p.M == 0 || p.N == 0 || p.nbatch == 0) return ASG_OK;
  const uint32_t *mg = c->ctx->caps.max_groups;
  const coop_variant *cv = dt == ASG_F32 ? coop_pick(c, &p) : NULL;
  if (cv)
    return asg_vk_dispatch(c, cv->name, &p, sizeof p,
                           cap(((int64_t)p.N + cv->bn - 1) / cv->bn, mg[0]),
                           cap(((int64_t)p.M + cv->bm - 1) / cv->bm, mg[1]), cap(p.nbatch, mg[2]));
  /* f32: 128x128 tiles when there are enough of them to fill a large GPU
   * (or on a CPU driver, where bigger tiles are always faster), else 64x64;
   * f64: 64x64 (shared memory and registers) */
  int64_t t128 = ((int64_t)p.M + 127) / 128 * (((int64_t)p.N + 127) / 128) * p.nbatch;
  bool cpu = c->ctx->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
  int tile = dt == ASG_F32 && (t128 >= 256 || cpu) ? 128 : 64;
  const char *name = dt == ASG_F64 ? "mm_gemm_f64" : tile == 128 ? "mm_gemm_f32" : "mm_gemm64_f32";
  char buf[32];
  asg_status st = asg_vk_variant(c, "mm_gemm", dt, buf, sizeof buf); /* f64 capability check */
  if (st) return st;
  return asg_vk_dispatch(c, name, &p, sizeof p, cap(((int64_t)p.N + tile - 1) / tile, mg[0]),
                         cap(((int64_t)p.M + tile - 1) / tile, mg[1]), cap(p.nbatch, mg[2]));
}

void asg_vk_register_matmul(asg_vk_kernel *t) { t[ASG_OP_MATMUL].record = mm_record; }
