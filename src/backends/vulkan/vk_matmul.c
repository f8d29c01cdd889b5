/* Vulkan kernels of the matmul family: batched GEMM with broadcast batch dims
 * and either operand transposed (attr.i[0] / attr.i[1]), f32 and f64, on
 * tiled shared-memory GEMMs (f32: shaders/mm_gemm_v.comp, variants chosen by
 * shape and alignment in gemm_pick, split-K with a deterministic summing
 * pass for few output tiles and a long K; f64: shaders/mm_gemm.comp). Shapes map as in
 * cuda_matmul.cu's MmPlan: [.., M, K] x [K, N] is one tall GEMM over all
 * batch rows; otherwise the output's batch index is decomposed over its
 * batch dims with per-operand strides (0 where an operand broadcasts).
 * With allow_tf32 on a device with NV cooperative matrices, f32 GEMMs run
 * on tensor cores instead (shaders/mm_coop.comp: fp16 products, fp32 sums,
 * same parameters); otherwise products are full FP32. */
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

/* Mirrors mm_gemm.comp's Params. */
typedef struct mm_params {
  uint64_t a, b, c;
  int32_t M, N, K, lda, ldb, ta, tb, nbatch, nbd, amat, bmat;
  int32_t bdims[8], abst[8], bbst[8];
  int32_t S, KC; /* mm_gemm_v.comp only: K splits, K per split */
} mm_params;

/* Mirrors Params of mm_gemm_splitk.comp. */
typedef struct mm_sum_params {
  uint64_t c, ws;
  int32_t n, S;
} mm_sum_params;

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

/* The fp32 SIMT GEMMs of matmul.list: tile bm x bn, slice depth bk, tm x tm
 * per invocation, vec-wide global loads (4: operands aligned), nbuf shared
 * slices; split: mm_gemm_v.comp, which takes a split-K. mm_gemm_f32 and
 * mm_gemm64_f32 are the first generation (mm_gemm.comp), kept to compare.
 *
 * Environment (read when a program is compiled, for measurements):
 *   ASG_VK_GEMM=<name>     forces that f32 variant wherever it applies (vec 4:
 *                          aligned operands; fits the device's shared memory
 *                          and work group size); elsewhere the usual choice.
 *   ASG_VK_GEMM_SPLIT=<S>  forces S K-splits (1: none) instead of the rule in
 *                          gemm_split (read by mm_ws too, so it must not change
 *                          between compile and run of one program). */
typedef struct gemm_variant {
  const char *name;
  int bm, bn, bk, tm, vec, nbuf;
  bool split;
} gemm_variant;
static const gemm_variant k_gemm[] = {
    {"mm_gv128_f32", 128, 128, 16, 8, 4, 2, true},
    {"mm_gv128s_f32", 128, 128, 16, 8, 4, 1, true},
    {"mm_gv128k8_f32", 128, 128, 8, 8, 4, 2, true},
    {"mm_gv128x64_f32", 128, 64, 16, 8, 4, 2, true},
    {"mm_gv64x128_f32", 64, 128, 16, 8, 4, 2, true},
    {"mm_gv64_f32", 64, 64, 16, 8, 4, 2, true},
    {"mm_gv64t4_f32", 64, 64, 16, 4, 4, 2, true},
    {"mm_gv128_1_f32", 128, 128, 8, 8, 1, 2, true},
    {"mm_gv64_1_f32", 64, 64, 16, 8, 1, 2, true},
    {"mm_gemm_f32", 128, 128, 8, 8, 1, 1, false},
    {"mm_gemm64_f32", 64, 64, 8, 4, 1, 1, false},
};
#define GEMM_N (sizeof k_gemm / sizeof *k_gemm)

/* Work groups that fill a large GPU: two per SM of an H200 (132 SMs); fewer
 * 128x128 tiles than this take smaller tiles or split K. */
#define GEMM_WAVE 264
#define SPLIT_KMIN 512 /* K per split at least (unless forced) */
#define SPLIT_MAX 16

static const gemm_variant *gemm_find(const char *name) {
  for (size_t i = 0; i < GEMM_N; i++)
    if (!strcmp(k_gemm[i].name, name)) return &k_gemm[i];
  return NULL;
}

/* Shared bytes (rows padded by one vector of tm/2) and invocations. */
static size_t gemm_shared(const gemm_variant *v) {
  int vw = v->tm / 2;
  return (size_t)v->nbuf * (size_t)v->bk * (size_t)(v->bm + vw + v->bn + vw) * 4;
}

static bool gemm_fits(const asg_vk_call *c, const gemm_variant *v, bool v4) {
  const asg_vk_caps *k = &c->ctx->caps;
  uint32_t nt = (uint32_t)((v->bm / v->tm) * (v->bn / v->tm));
  return (v->vec == 1 || v4) && gemm_shared(v) <= k->shared_bytes && nt <= k->max_invocations;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* K splits of an f32 GEMM, from its shape only (mm_ws and mm_record must
 * agree): enough 128x128 groups to fill a large GPU when the output has few
 * tiles and K is long (weight gradients: [768,768] summed over 8192 rows).
 * *kc: K per split, a multiple of 16 (every variant's BK divides it). */
static int gemm_split(const mm_params *p, int32_t *kc) {
  int64_t K = p->K, outn = (int64_t)p->M * p->N * p->nbatch, S = 1;
  int64_t tiles = cdiv(p->M, 128) * cdiv(p->N, 128) * p->nbatch;
  *kc = p->K;
  if (outn <= 0 || K <= 0) return 1;
  const char *e = getenv("ASG_VK_GEMM_SPLIT");
  if (e && *e) {
    S = atoi(e);
    if (S > K / 16) S = K / 16;
  } else if (tiles < GEMM_WAVE) {
    S = cdiv(GEMM_WAVE, tiles);
    if (S > K / SPLIT_KMIN) S = K / SPLIT_KMIN;
    if (S > SPLIT_MAX) S = SPLIT_MAX;
  }
  if (S > (((int64_t)1 << 31) - 1) / outn) S = (((int64_t)1 << 31) - 1) / outn;
  if (S < 2) return 1;
  int64_t KC = cdiv(cdiv(K, S), 16) * 16; /* whole slices; recount S: none empty */
  S = cdiv(K, KC);
  if (S < 2) return 1;
  *kc = (int32_t)KC;
  return (int)S;
}

static size_t mm_ws(const asg_step *s) {
  if (s->out.dtype != ASG_F32) return 0;
  mm_params p;
  int32_t kc;
  mm_plan(s, &p);
  int S = gemm_split(&p, &kc);
  return S > 1 ? (size_t)S * (size_t)p.M * (size_t)p.N * (size_t)p.nbatch * sizeof(float) : 0;
}

/* The variant for this GEMM. Aligned operands (16-byte loads and stores):
 * 128x128 when there are GEMM_WAVE such tiles (with the K splits), else
 * 128x64 / 64x128 when that many, else 64x64; on a CPU driver always
 * 128x128 (bigger tiles are faster there). Unaligned: the scalar-load
 * variants, 128x128 or 64x64 by the same count. The first that fits the
 * device. */
static const gemm_variant *gemm_pick(const asg_vk_call *c, const mm_params *p, bool v4, int S) {
  int64_t z = (int64_t)p->nbatch * S;
  int64_t t128 = cdiv(p->M, 128) * cdiv(p->N, 128) * z;
  int64_t tmn = cdiv(p->M, 128) * cdiv(p->N, 64) * z, tnm = cdiv(p->M, 64) * cdiv(p->N, 128) * z;
  bool big = t128 >= GEMM_WAVE || c->ctx->caps.type == VK_PHYSICAL_DEVICE_TYPE_CPU;
  const char *order[6];
  int n = 0;
  /* Small unsplit products (the MLP's [128,784]x[784,512]: a few dozen 64x64
   * tiles) run faster on the first-generation 64x64 kernel (4x4 per
   * invocation, 256 invocations: more threads per tile) than on the 8x8
   * ones: 0.397 vs 0.530 ms for the MLP step on the H200. */
  if (!big && S == 1 && tmn < GEMM_WAVE && tnm < GEMM_WAVE) order[n++] = "mm_gemm64_f32";
  if (v4) {
    if (big) {
      order[n++] = "mm_gv128_f32";
      order[n++] = "mm_gv128s_f32";
    } else if (tmn >= GEMM_WAVE || tnm >= GEMM_WAVE) {
      order[n++] = tmn >= tnm ? "mm_gv128x64_f32" : "mm_gv64x128_f32";
    }
    order[n++] = "mm_gv64_f32";
  } else if (big) {
    order[n++] = "mm_gv128_1_f32";
  }
  order[n++] = "mm_gv64_1_f32";
  for (int i = 0; i < n; i++) {
    const gemm_variant *v = gemm_find(order[i]);
    if (v && gemm_fits(c, v, v4)) return v;
  }
  return gemm_find("mm_gemm64_f32"); /* 4.2 KiB, 256 invocations */
}

static asg_status gemm_record(const asg_vk_call *c, mm_params *p) {
  const uint32_t *mg = c->ctx->caps.max_groups;
  int32_t kc;
  int S = gemm_split(p, &kc);
  bool v4 = p->lda % 4 == 0 && p->ldb % 4 == 0 && p->N % 4 == 0 && p->a % 16 == 0 &&
            p->b % 16 == 0 && p->c % 16 == 0 && (S < 2 || c->ws % 16 == 0);
  const gemm_variant *v = NULL;
  const char *force = getenv("ASG_VK_GEMM");
  if (force && *force && (v = gemm_find(force)) && !gemm_fits(c, v, v4)) v = NULL;
  if (!v) v = gemm_pick(c, p, v4, S);
  if (!v->split) S = 1;
  p->S = S;
  p->KC = S > 1 ? kc : p->K;
  uint64_t out = p->c;
  if (S > 1) p->c = c->ws; /* partials [S, nbatch, M, N] */
  asg_status st =
      asg_vk_dispatch(c, v->name, p, sizeof *p, cap(cdiv(p->N, v->bn), mg[0]),
                      cap(cdiv(p->M, v->bm), mg[1]), cap((int64_t)p->nbatch * S, mg[2]));
  if (st || S < 2) return st;
  asg_vk_barrier(c);
  int64_t n = (int64_t)p->M * p->N * p->nbatch;
  mm_sum_params q = {out, c->ws, (int32_t)n, S};
  return asg_vk_dispatch(c, "mm_gemm_splitk_f32", &q, sizeof q, asg_vk_groups(c, n, 256), 1, 1);
}

/* Mirrors Params of conv_bias_act.comp, which matmul_bias_act's epilogue
 * runs with O = N and OHW = 1 (the bias along the last dim). */
typedef struct mm_bias_act_params {
  uint64_t out, bias;
  int32_t n, O, OHW, act;
  uint64_t res; /* the residual [..., M, N] (asg__mba_res), or 0 */
} mm_bias_act_params;

static asg_status mm_product(const asg_vk_call *c);

/* matmul, and matmul_bias_act (src/passes/fuse_linear.c): the product, then
 * y = act(y + bias [N]) (+ r) in one pass over it (act 1: ReLU; without a
 * bias only + r: asg__mba_bias/_res). */
static asg_status mm_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  asg_status st = mm_product(c);
  const int64_t n = asg_shape_numel(s->out.shape);
  if (st || s->op != ASG_OP_MATMUL_BIAS_ACT || n == 0) return st;
  if (n > INT32_MAX)
    return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: more than 2^31 elements", s->label);
  asg_vk_barrier(c);
  const int bi = asg__mba_bias(s), ri = asg__mba_res(s);
  mm_bias_act_params b = {c->out,
                          bi >= 0 ? c->in[bi] : 0,
                          (int32_t)n,
                          (int32_t)s->out.shape.dims[s->out.shape.ndim - 1],
                          1,
                          (int32_t)s->attr.i[2],
                          ri >= 0 ? c->in[ri] : 0};
  char name[32];
  if ((st = asg_vk_variant(c, "conv_bias_act", s->out.dtype, name, sizeof name))) return st;
  return asg_vk_dispatch(c, name, &b, sizeof b, asg_vk_groups(c, n, 256), 1, 1);
}

static asg_status mm_product(const asg_vk_call *c) {
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
  if (dt == ASG_F32) return gemm_record(c, &p);
  /* f64: 64x64 (shared memory and registers) */
  char buf[32];
  asg_status st = asg_vk_variant(c, "mm_gemm", dt, buf, sizeof buf); /* f64 capability check */
  if (st) return st;
  return asg_vk_dispatch(c, "mm_gemm_f64", &p, sizeof p, cap(((int64_t)p.N + 63) / 64, mg[0]),
                         cap(((int64_t)p.M + 63) / 64, mg[1]), cap(p.nbatch, mg[2]));
}

void asg_vk_register_matmul(asg_vk_kernel *t) {
  t[ASG_OP_MATMUL].record = mm_record;
  t[ASG_OP_MATMUL].ws = mm_ws;
  t[ASG_OP_MATMUL_BIAS_ACT].record = mm_record;
  t[ASG_OP_MATMUL_BIAS_ACT].ws = mm_ws;
}
