// CUDA kernels of the matmul family: batched GEMM with broadcast batch dims
// and either operand transposed, on cuBLAS.
//
// cuBLAS is column-major. A row-major [R, C] matrix is the column-major
// [C, R] matrix with leading dimension C, i.e. its transpose. So the
// row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: cuBLAS gets B as its first operand and A as its
// second, each with its own transpose flag and its stored last dim as the
// leading dimension, and m = N, n = M, ldc = N.
//
// The 16-bit operand copies of bf16_matmul / fp16_matmul are made by
// cuda_matmul_half.cu; skinny products run in cuda_gemv.cu.
#include "backends/cuda/cuda.h"
#include "backends/cuda/cuda_matmul_half.h"
#include "runtime/layout.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

// F32 products are full FP32 (matching the CPU within ~1e-5 relative)
// unless the program was compiled with allow_tf32 (c->tf32): then TF32
// tensor cores (much faster on Ampere/Hopper, ~1e-3 relative error).

using namespace asg_cuda_mm;

namespace {

// cuBLAS batched calls are split into pieces of at most this many matrices
// (some cuBLAS kernels put the batch on gridDim.z, limited to 65535).
constexpr int64_t kMaxBatch = 65535;

enum MmCase { MM_TALL, MM_STRIDED, MM_POINTERS };

struct MmPlan {
  MmCase kind;
  bool ta, tb;
  int64_t M, N, K;
  int64_t lda, ldb;         // stored last dims of a and b (row-major leading dims)
  int64_t nbatch;           // product of the output's batch dims
  int64_t amat, bmat;       // elements of one matrix of a / b
  int64_t astride, bstride; // elements between consecutive batch matrices (0: broadcast)
  int nbd;                  // output batch dims (MM_POINTERS)
  int64_t bdims[ASG_MAX_DIMS];
  int64_t abst[ASG_MAX_DIMS], bbst[ASG_MAX_DIMS]; // batch strides in matrices, 0 where broadcast
};

// Chooses how the step runs; the .ws function and the launcher share it.
MmPlan mm_plan(const asg_step *s) {
  MmPlan p = {};
  asg_shape as = s->in[0].shape, bs = s->in[1].shape, os = s->out.shape;
  int ra = as.ndim, rb = bs.ndim, ro = os.ndim;
  p.ta = s->attr.i[0] != 0;
  p.tb = s->attr.i[1] != 0;
  p.M = os.dims[ro - 2];
  p.N = os.dims[ro - 1];
  p.K = as.dims[ra - (p.ta ? 2 : 1)];
  p.lda = as.dims[ra - 1];
  p.ldb = bs.dims[rb - 1];
  p.amat = as.dims[ra - 1] * as.dims[ra - 2];
  p.bmat = bs.dims[rb - 1] * bs.dims[rb - 2];
  int64_t nb_a = 1, nb_b = 1;
  p.nbatch = 1;
  for (int i = 0; i < ro - 2; i++)
    p.nbatch *= os.dims[i];
  for (int i = 0; i < ra - 2; i++)
    nb_a *= as.dims[i];
  for (int i = 0; i < rb - 2; i++)
    nb_b *= bs.dims[i];
  // [.., M, K] x [K, N]: the batch rows of a are one tall [batch*M, K] matrix
  if (nb_b == 1 && !p.ta && nb_a == p.nbatch && p.nbatch * p.M <= INT32_MAX) {
    p.kind = MM_TALL;
    return p;
  }
  // Batch dims that broadcast to the output with the same element count are
  // the output's batch dims (up to size-1 dims), so the output's linear batch
  // index addresses the operand too; an operand with one matrix is reused.
  if ((nb_a == 1 || nb_a == p.nbatch) && (nb_b == 1 || nb_b == p.nbatch)) {
    p.kind = MM_STRIDED;
    p.astride = nb_a == 1 ? 0 : p.amat;
    p.bstride = nb_b == 1 ? 0 : p.bmat;
    return p;
  }
  p.kind = MM_POINTERS;
  p.nbd = ro - 2;
  int64_t st = 1;
  for (int d = p.nbd - 1; d >= 0; d--) {
    p.bdims[d] = os.dims[d];
    int id = ra - 2 - (p.nbd - d);
    p.abst[d] = (id >= 0 && as.dims[id] != 1) ? st : 0;
    if (id >= 0) st *= as.dims[id];
  }
  st = 1;
  for (int d = p.nbd - 1; d >= 0; d--) {
    int id = rb - 2 - (p.nbd - d);
    p.bbst[d] = (id >= 0 && bs.dims[id] != 1) ? st : 0;
    if (id >= 0) st *= bs.dims[id];
  }
  return p;
}

struct BatchMap {
  int nbd;
  int64_t dims[ASG_MAX_DIMS];
  int64_t ast[ASG_MAX_DIMS], bst[ASG_MAX_DIMS]; // in bytes
};

// [nbatch] pointer triples for cublasGemmBatchedEx. cuBLAS's first operand
// is our b, its second our a (see the top of the file).
__global__ void mm_pointers_kernel(const void **pa, const void **pb, void **pc, const char *a,
                                   const char *b, char *out, int64_t nbatch, int64_t cbytes,
                                   BatchMap m) {
  for (int64_t bi = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; bi < nbatch;
       bi += (int64_t)gridDim.x * blockDim.x) {
    int64_t r = bi, ao = 0, bo = 0;
    for (int d = m.nbd - 1; d >= 0; d--) {
      int64_t i = r % m.dims[d];
      r /= m.dims[d];
      ao += i * m.ast[d];
      bo += i * m.bst[d];
    }
    pa[bi] = b + bo;
    pb[bi] = a + ao;
    pc[bi] = out + bi * cbytes;
  }
}

// bf16_matmul / fp16_matmul: an f32 product on the cuBLASLt path takes
// 16-bit copies of its operands, made in the workspace by each run. The
// dtype of those copies (ASG_BF16, ASG_F16), or ASG_F32 for none.
asg_dtype low_operands(const asg_step *s, unsigned flags, const MmPlan &p) {
  if (!(flags & (ASG_PLAN_BF16 | ASG_PLAN_F16)) || s->out.dtype != ASG_F32 ||
      s->in[0].dtype != ASG_F32 || s->in[1].dtype != ASG_F32 || p.kind == MM_POINTERS)
    return ASG_F32;
  return (flags & ASG_PLAN_BF16) ? ASG_BF16 : ASG_F16;
}

size_t mm_ws(const asg_step *s, unsigned flags) {
  MmPlan p = mm_plan(s);
  if (low_operands(s, flags, p) != ASG_F32) { // the copies, then column-sum partials
    const size_t c0 = colsum_bytes(s->in[0].shape), c1 = colsum_bytes(s->in[1].shape);
    return align256((size_t)asg_shape_numel(s->in[0].shape) * 2) +
           align256((size_t)asg_shape_numel(s->in[1].shape) * 2) + (c0 > c1 ? c0 : c1);
  }
  return p.kind == MM_POINTERS ? 3 * (size_t)p.nbatch * sizeof(void *) : 0;
}

// cuBLAS data and compute types of a product of dtype dt (16-bit types sum
// in f32; f32 in TF32 when allowed); false for other dtypes.
bool mm_types(asg_dtype dt, bool tf32, cudaDataType_t *ty, cublasComputeType_t *ct) {
  switch (dt) {
  case ASG_F32:
    *ty = CUDA_R_32F, *ct = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    return true;
  case ASG_F64: *ty = CUDA_R_64F, *ct = CUBLAS_COMPUTE_64F; return true;
  case ASG_BF16: *ty = CUDA_R_16BF, *ct = CUBLAS_COMPUTE_32F; return true;
  case ASG_F16: *ty = CUDA_R_16F, *ct = CUBLAS_COMPUTE_32F; return true;
  default: return false;
  }
}

asg_status blas_err(const asg_cuda_call *c, cublasStatus_t st) {
  return asg__error(ASG_ERR_BACKEND, "cuda: %s: cuBLAS: %s", c->s->label,
                    cublasGetStatusString(st));
}

// ---- cuBLASLt path: plans made once per step, algorithms chosen by timing ----
// For single and strided-batched products (the tall [batch*M, K] x [K, N] of
// every linear layer among them) the step's .prepare builds the cuBLASLt
// descriptors and picks an algorithm: cuBLASLt's heuristic proposes up to
// kCandidates, each runs kTimed times on the step's own buffers, the fastest
// wins. Choices are cached per shape in the context, so a model's many
// layers of one shape time once. ASG_CUDA_GEMM_TUNE=0 takes the heuristic's
// first proposal (the same algorithm in every process).
constexpr int kCandidates = 8, kTimed = 3;
// Split-K variants of the heuristic's first proposals join the timing for
// products whose output is too small to fill the GPU with tiles (the MLP's
// [128, 10] logits product ran its K = 512 on 4 blocks, 27 us of a 100 us
// step): K is cut into 2..16 slices summed by cuBLASLt. At most
// kSplitTries extra candidates (kSplitBase proposals x 4 slice counts).
constexpr int kSplitBase = 3, kSplitTries = 4 * kSplitBase;

struct GemmKey {
  int64_t m, n, k, lda, ldb, ldc, batch, sa, sb, sc;
  int ta, tb, ty, ct, align, tune, epi, oh;
  bool operator==(const GemmKey &o) const {
    return m == o.m && n == o.n && k == o.k && lda == o.lda && ldb == o.ldb && ldc == o.ldc &&
           batch == o.batch && sa == o.sa && sb == o.sb && sc == o.sc && ta == o.ta && tb == o.tb &&
           ty == o.ty && ct == o.ct && align == o.align && tune == o.tune && epi == o.epi &&
           oh == o.oh;
  }
};

struct GemmChoice {
  GemmKey key;
  cublasLtMatmulAlgo_t algo;
  size_t ws;
};

struct GemmCache {
  GemmChoice *v;
  int n, cap;
};

struct LtPlan {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, lc; // cuBLAS's operands: la = our b, lb = our a
  cublasLtMatmulAlgo_t algo;
  size_t ws;
  asg_dtype low; // ASG_BF16 / ASG_F16: operands converted into the workspace first
  bool epi_lt;   // the call's epilogue (c->epi_act) runs in cuBLASLt, not in epi_kernel
  bool bgrad;    // the epilogue also writes c->bgrad_out
  bool out_half; // the output is written as `low` (c->out_half)
};

void lt_plan_free(void *state) {
  LtPlan *p = (LtPlan *)state;
  if (!p) return;
  if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
  if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
  if (p->la) cublasLtMatrixLayoutDestroy(p->la);
  if (p->op) cublasLtMatmulDescDestroy(p->op);
  free(p);
}

int align_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  return (a % 16 == 0) ? 16 : (a % 8 == 0) ? 8 : (a % 4 == 0) ? 4 : 2;
}

bool lt_layout(cublasLtMatrixLayout_t *l, cudaDataType_t ty, int64_t rows, int64_t cols, int64_t ld,
               int64_t batch, int64_t stride) {
  if (cublasLtMatrixLayoutCreate(l, ty, (uint64_t)rows, (uint64_t)cols, ld) !=
      CUBLAS_STATUS_SUCCESS)
    return false;
  if (batch <= 1) return true;
  int32_t bc = (int32_t)batch;
  return cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                          sizeof stride) == CUBLAS_STATUS_SUCCESS;
}

// ---- epilogue after the product (what cuBLASLt did not do of c's) ----
// y [rows, N] = act(y + bias [N]) + res [rows, N], in place (bias NULL:
// neither the add nor act; res NULL: none); the activations are those of
// the unary ops (cuda_elementwise.cu), GELU in its tanh form.
// (f64: matmul_bias_act's products, which cuBLASLt does not take)
template <typename T>
__global__ void epi_kernel(T *__restrict__ y, const T *__restrict__ bias, const T *__restrict__ res,
                           int64_t n, int64_t N, int act) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    T v = y[i];
    if (bias) {
      v += bias[i % N];
      if (act == ASG_CUDA_EPI_RELU) {
        v = v > T(0) ? v : T(0);
      } else if (act == ASG_CUDA_EPI_GELU_TANH) {
        const T u = T(0.7978845608028654) * (v + T(0.044715) * v * v * v);
        v = T(0.5) * v * (T(1) + tanh(u));
      }
    }
    y[i] = res ? v + res[i] : v;
  }
}

// The epilogue's bias and act (with_bias) and its residual (with_res).
asg_status epi_apply(const asg_cuda_call *c, bool with_bias, bool with_res) {
  const int64_t n = asg_shape_numel(c->s->out.shape);
  const int64_t N = c->s->out.shape.dims[c->s->out.shape.ndim - 1];
  const void *bias = with_bias ? c->epi_bias : nullptr, *res = with_res ? c->epi_res : nullptr;
  if (!bias && !res) return asg_cuda_check(c);
  if (c->s->out.dtype == ASG_F64)
    epi_kernel<double><<<asg_cuda_blocks(n, 256), 256, 0, c->ctx->stream>>>(
        (double *)c->epi_out, (const double *)bias, (const double *)res, n, N, c->epi_act);
  else
    epi_kernel<float><<<asg_cuda_blocks(n, 256), 256, 0, c->ctx->stream>>>(
        (float *)c->epi_out, (const float *)bias, (const float *)res, n, N, c->epi_act);
  return asg_cuda_check(c);
}

// Whether cuBLASLt adds c's residual as its C operand (beta = 1): before
// its epilogue's activation, so only where there is none.
bool res_in_lt(const asg_cuda_call *c) {
  return c->epi_res && (c->epi_act == 0 || c->epi_act == ASG_CUDA_EPI_BIAS);
}

// The product with algorithm algo; with 16-bit operands they are converted
// into the step's workspace first.
asg_status lt_launch(const asg_cuda_call *c, const LtPlan *p, const cublasLtMatmulAlgo_t *algo,
                     size_t ws) {
  const void *a = c->in[0], *b = c->in[1];
  if (p->low != ASG_F32) { // each operand: a shared copy (made here or before) or the workspace
    const int64_t na = asg_shape_numel(c->s->in[0].shape), nb = asg_shape_numel(c->s->in[1].shape);
    char *wa = (char *)c->ws, *wb = wa + align256((size_t)na * 2);
    void *dst[2] = {wa, wb};
    const void *src[2] = {a, b};
    const int64_t n[2] = {na, nb};
    for (int j = 0; j < 2; j++) {
      if (c->half_mode[j]) dst[j] = c->half[j];
      if (c->half_mode[j] != ASG_CUDA_HALF_READY) {
        asg_status st = c->colsum_out && c->colsum_op == j
                            ? to_half_colsum(c, p->low, j, src[j], dst[j],
                                             (double *)(wb + align256((size_t)nb * 2)))
                            : to_half(c, p->low, src[j], dst[j], n[j]);
        if (st) return st;
      }
    }
    a = dst[0], b = dst[1];
  }
  float one = 1.0f, zero = 0.0f;
  void *d = c->epi_out ? c->epi_out : c->out;
  const bool res = res_in_lt(c) && (p->epi_lt || !c->epi_act); // else added after the bias
  const void *cin = res ? c->epi_res : d;
  cublasStatus_t st =
      cublasLtMatmul(c->ctx->lt, p->op, &one, b, p->la, a, p->lb, res ? &one : &zero, cin, p->lc, d,
                     p->lc, algo, c->ctx->blas_ws, ws, c->ctx->stream);
  if (st != CUBLAS_STATUS_SUCCESS) return blas_err(c, st);
  return epi_apply(c, c->epi_act && !p->epi_lt, c->epi_res && !res);
}

// The descriptor of the product, with c's epilogue when with_epi (false:
// cuBLASLt refused it).
bool lt_desc(LtPlan *lp, const asg_cuda_call *c, cublasComputeType_t ct, cublasOperation_t opb,
             cublasOperation_t opa, bool with_epi) {
  if (lp->op) cublasLtMatmulDescDestroy(lp->op);
  lp->op = NULL;
  lp->epi_lt = false;
  if (cublasLtMatmulDescCreate(&lp->op, ct, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatmulDescSetAttribute(lp->op, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof opb) !=
          CUBLAS_STATUS_SUCCESS ||
      cublasLtMatmulDescSetAttribute(lp->op, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof opa) !=
          CUBLAS_STATUS_SUCCESS)
    return false;
  lp->bgrad = false;
  if (!with_epi || (!c->epi_act && !c->bgrad_out)) return true;
  // The bias runs along cuBLAS's rows (our N), as the epilogue adds it. The
  // bias gradient: column sums of our a, cuBLAS's second operand reduced
  // over k, one per column of cuBLAS's output (our row).
  const cublasLtEpilogue_t ep = c->bgrad_out                           ? CUBLASLT_EPILOGUE_BGRADB
                                : c->epi_act == ASG_CUDA_EPI_RELU      ? CUBLASLT_EPILOGUE_RELU_BIAS
                                : c->epi_act == ASG_CUDA_EPI_GELU_TANH ? CUBLASLT_EPILOGUE_GELU_BIAS
                                                                       : CUBLASLT_EPILOGUE_BIAS;
  const void *ptr = c->bgrad_out ? c->bgrad_out : c->epi_bias;
  const int32_t bt = CUDA_R_32F;
  const bool ok = cublasLtMatmulDescSetAttribute(lp->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep,
                                                 sizeof ep) == CUBLAS_STATUS_SUCCESS &&
                  cublasLtMatmulDescSetAttribute(lp->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ptr,
                                                 sizeof ptr) == CUBLAS_STATUS_SUCCESS &&
                  cublasLtMatmulDescSetAttribute(lp->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                                 sizeof bt) == CUBLAS_STATUS_SUCCESS;
  lp->epi_lt = ok && c->epi_act;
  lp->bgrad = ok && c->bgrad_out;
  return ok;
}

// Times one algorithm: after a warm-up and a sizing run, the minimum over
// kTimed rounds of the mean of back-to-back launches, as many as take about
// 50 us (at most 16): products of a few microseconds timed one launch at a
// time were ranked by event resolution and clock ramp: 2 to 5 of 8 processes
// ran a 5-10% slower MLP step (negative when it fails).
float lt_time(const asg_cuda_call *c, const LtPlan *p, const cublasLtMatmulAlgo_t *algo, size_t ws,
              cudaEvent_t e0, cudaEvent_t e1) {
  if (lt_launch(c, p, algo, ws) != ASG_OK) {
    asg_clear_error();
    return -1;
  }
  float best = -1;
  int reps = 1;
  for (int r = 0; r <= kTimed; r++) {
    cudaEventRecord(e0, c->ctx->stream);
    for (int j = 0; j < reps; j++)
      if (lt_launch(c, p, algo, ws) != ASG_OK) {
        asg_clear_error();
        return -1;
      }
    cudaEventRecord(e1, c->ctx->stream);
    float ms = 0;
    if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
      return -1;
    if (r == 0) { // sizing run
      reps = ms > 0.05f / 16 ? (int)(0.05f / ms) + 1 : 16;
      if (reps > 16) reps = 16;
      continue;
    }
    ms /= (float)reps;
    if (best < 0 || ms < best) best = ms;
  }
  return best;
}

bool env_off(const char *name) {
  const char *e = getenv(name);
  return e && e[0] == '0';
}

// Appends split-K variants of res[0..kSplitBase) to res (capacity nres +
// kSplitTries) for products with at most 2^22 outputs and K >= 256; each is
// checked by cuBLASLt (schemes, epilogue, workspace) before it is timed.
// Returns the new count. ASG_CUDA_SPLITK=0 keeps the heuristic's list.
int add_split_k(const asg_cuda_call *c, const LtPlan *lp, const GemmKey &key,
                cublasLtMatmulHeuristicResult_t *res, int nres, size_t wsb) {
  if (env_off("ASG_CUDA_SPLITK")) return nres;
  if (key.k < 256 || key.m * key.n * key.batch > ((int64_t)1 << 22)) return nres;
  const int base = nres < kSplitBase ? nres : kSplitBase;
  int n = nres;
  for (int i = 0; i < base; i++) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    int32_t split_ok = 0;
    uint32_t schemes = 0;
    size_t got = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(&res[i].algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &split_ok,
                                          sizeof split_ok, &got) != CUBLAS_STATUS_SUCCESS ||
        !split_ok ||
        cublasLtMatmulAlgoCapGetAttribute(&res[i].algo, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK,
                                          &schemes, sizeof schemes, &got) != CUBLAS_STATUS_SUCCESS)
      continue;
    // f32 partials reduced in a second pass where offered, else in place
    const uint32_t scheme = (schemes & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE)
                                ? (uint32_t)CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE
                            : (schemes & CUBLASLT_REDUCTION_SCHEME_INPLACE)
                                ? (uint32_t)CUBLASLT_REDUCTION_SCHEME_INPLACE
                                : 0u;
    if (!scheme) continue;
    for (int32_t split = 2; split <= 16; split *= 2) {
      if (key.k / split < 64) break;
      cublasLtMatmulAlgo_t algo = res[i].algo;
      cublasLtMatmulHeuristicResult_t v = {};
      if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split,
                                               sizeof split) != CUBLAS_STATUS_SUCCESS ||
          cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                               &scheme, sizeof scheme) != CUBLAS_STATUS_SUCCESS ||
          cublasLtMatmulAlgoCheck(c->ctx->lt, lp->op, lp->la, lp->lb, lp->lc, lp->lc, &algo, &v) !=
              CUBLAS_STATUS_SUCCESS ||
          v.workspaceSize > wsb)
        continue;
      v.algo = algo; // the checked configuration, whatever the check copied
      v.state = CUBLAS_STATUS_SUCCESS;
      res[n++] = v;
    }
  }
  return n;
}

// Plans the step on cuBLASLt into *state (left NULL when cuBLASLt cannot
// run it: the cuBLAS path does).
asg_status mm_prepare(const asg_cuda_call *c, void **state) {
  *state = NULL;
  if (asg_cuda_gemv_ok(c)) return ASG_OK; // a few rows: cuda_gemv.cu, no plan
  const asg_step *s = c->s;
  const asg_dtype dt = s->out.dtype;
  cudaDataType_t ty;
  cublasComputeType_t ct;
  if (dt == ASG_F64 || !mm_types(dt, c->tf32, &ty, &ct)) return ASG_OK; // f64: the cuBLAS path
  if (env_off("ASG_CUDA_LT") || s->in[0].dtype != dt || s->in[1].dtype != dt) return ASG_OK;
  MmPlan p = mm_plan(s);
  if (p.kind == MM_POINTERS || p.M == 0 || p.N == 0 || p.K == 0 || p.nbatch == 0) return ASG_OK;
  const asg_dtype low = low_operands(s,
                                     c->bf16   ? (unsigned)ASG_PLAN_BF16
                                     : c->fp16 ? (unsigned)ASG_PLAN_F16
                                               : 0u,
                                     p);
  const bool lowp = low != ASG_F32;
  // operands; the output keeps ty
  const cudaDataType_t tab = low == ASG_BF16 ? CUDA_R_16BF : low == ASG_F16 ? CUDA_R_16F : ty;
  if (lowp) ct = CUBLAS_COMPUTE_32F;
  if (p.kind == MM_STRIDED && p.nbatch > 1 && (p.astride == 0 || p.bstride == 0)) return ASG_OK;
  if (p.M > INT32_MAX || p.N > INT32_MAX || p.K > INT32_MAX || p.nbatch > INT32_MAX) return ASG_OK;
  const bool tall = p.kind == MM_TALL;
  const int64_t rows_a = tall ? p.nbatch * p.M : (p.ta ? p.K : p.M); // stored rows of our a
  const int64_t batch = tall ? 1 : p.nbatch;
  GemmKey key = {p.M,
                 p.N,
                 p.K,
                 p.lda,
                 p.ldb,
                 p.N,
                 batch,
                 p.astride,
                 p.bstride,
                 p.M * p.N,
                 p.ta,
                 p.tb,
                 (int)tab,
                 (int)ct,
                 0,
                 !env_off("ASG_CUDA_GEMM_TUNE"),
                 c->bgrad_out ? 4 : c->epi_act + (res_in_lt(c) ? 8 : 0),
                 0};
  key.m = tall ? p.nbatch * p.M : p.M;
  // 16-bit output (softmax CE logits): no epilogue, 16-bit operands
  const bool oh = c->out_half && lowp && !c->epi_act && !c->bgrad_out;
  key.oh = oh;
  int al = align_of(c->in[0]);
  if (align_of(c->in[1]) < al) al = align_of(c->in[1]);
  if (align_of(c->out) < al) al = align_of(c->out);
  key.align = lowp ? 16 : al; // 16-bit copies sit at 256-byte offsets of the workspace
  key.ty = (int)tab;

  LtPlan *lp = (LtPlan *)calloc(1, sizeof *lp);
  if (!lp) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  lp->low = low;
  lp->out_half = oh;
  cublasOperation_t opb = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  // column-major views (top of the file): our b [Rb, Cb] is cuBLAS's first
  // operand, col-major [Cb, Rb]; our a second; the output [M, N] is [N, M]
  const int64_t rows_b = p.tb ? p.N : p.K;
  // with the epilogue when cuBLASLt takes it (else epi_kernel runs after)
  bool ok = (lt_desc(lp, c, ct, opb, opa, true) || lt_desc(lp, c, ct, opb, opa, false)) &&
            lt_layout(&lp->la, tab, p.ldb, rows_b, p.ldb, batch, p.bstride) &&
            lt_layout(&lp->lb, tab, p.lda, rows_a, p.lda, batch, p.astride) &&
            lt_layout(&lp->lc, oh ? tab : ty, p.N, key.m, p.N, batch, p.M * p.N);
  if (!ok) { // cuBLASLt refuses the shape: the cuBLAS path runs it
    lt_plan_free(lp);
    return ASG_OK;
  }
  if (!lp->epi_lt && !lp->bgrad) key.epi = 0; // planned without an epilogue
  GemmCache *cache = (GemmCache *)c->ctx->gemm_cache;
  for (int i = 0; cache && i < cache->n; i++)
    if (cache->v[i].key == key) {
      lp->algo = cache->v[i].algo;
      lp->ws = cache->v[i].ws;
      *state = lp;
      return ASG_OK;
    }
  cublasLtMatmulPreference_t pref = NULL;
  cublasLtMatmulHeuristicResult_t res[kCandidates + kSplitTries];
  int nres = 0;
  size_t wsb = c->ctx->blas_ws_bytes;
  if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb,
                                           sizeof wsb) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatmulAlgoGetHeuristic(c->ctx->lt, lp->op, lp->la, lp->lb, lp->lc, lp->lc, pref,
                                     key.tune ? kCandidates : 1, res,
                                     &nres) != CUBLAS_STATUS_SUCCESS)
    nres = 0;
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (nres == 0 && (lp->epi_lt || lp->bgrad)) { // no algorithm with the epilogue: plan without
    lt_plan_free(lp);
    asg_cuda_call plain = *c;
    plain.epi_act = 0;
    plain.bgrad_out = NULL;
    return mm_prepare(&plain, state);
  }
  if (key.tune) nres = add_split_k(c, lp, key, res, nres, wsb);
  int best = -1;
  if (nres == 1 && res[0].state == CUBLAS_STATUS_SUCCESS) best = 0;
  if (nres > 1) {
    cudaEvent_t e0 = NULL, e1 = NULL;
    float best_ms = -1;
    if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess)
      for (int i = 0; i < nres; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > wsb) continue;
        float ms = lt_time(c, lp, &res[i].algo, res[i].workspaceSize, e0, e1);
        if (ms >= 0 && (best < 0 || ms < best_ms)) best = i, best_ms = ms;
      }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaGetLastError();
  }
  if (best < 0) {
    lt_plan_free(lp);
    return ASG_OK;
  }
  lp->algo = res[best].algo;
  lp->ws = res[best].workspaceSize;
  if (!cache) {
    cache = (GemmCache *)calloc(1, sizeof *cache);
    c->ctx->gemm_cache = cache;
  }
  if (cache && cache->n == cache->cap) {
    int cap = cache->cap ? 2 * cache->cap : 16;
    GemmChoice *nv = (GemmChoice *)realloc(cache->v, sizeof *nv * (size_t)cap);
    if (nv) cache->v = nv, cache->cap = cap;
  }
  if (cache && cache->n < cache->cap) cache->v[cache->n++] = GemmChoice{key, lp->algo, lp->ws};
  *state = lp;
  return ASG_OK;
}

asg_status mm_run(const asg_cuda_call *c) {
  if (!c->state && asg_cuda_gemv_ok(c)) return asg_cuda_gemv(c);
  if (c->state) {
    const LtPlan *lp = (const LtPlan *)c->state;
    return lt_launch(c, lp, &lp->algo, lp->ws);
  }
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  cudaDataType_t ty;
  cublasComputeType_t ct;
  float one32 = 1.0f, zero32 = 0.0f;
  double one64 = 1.0, zero64 = 0.0;
  const void *alpha = &one32, *beta = &zero32;
  if (!mm_types(dt, c->tf32, &ty, &ct))
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(dt));
  if (dt == ASG_F64) alpha = &one64, beta = &zero64;
  if (s->in[0].dtype != dt || s->in[1].dtype != dt)
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: operands must share the output dtype", s->label);
  MmPlan p = mm_plan(s);
  if (p.M == 0 || p.N == 0 || p.nbatch == 0) return ASG_OK;
  if (p.M > INT32_MAX || p.N > INT32_MAX || p.K > INT32_MAX || p.lda > INT32_MAX ||
      p.ldb > INT32_MAX)
    return asg__error(ASG_ERR_UNSUPPORTED, "cuda: %s: matrix dims exceed cuBLAS's 32-bit limit",
                      s->label);
  size_t es = asg_dtype_size(dt);
  cublasHandle_t h = c->ctx->blas;
  // host scalars (captured by value in a CUDA graph)
  cublasStatus_t st = cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
  if (st != CUBLAS_STATUS_SUCCESS) return blas_err(c, st);
  // cuBLAS operand 1 = b, operand 2 = a; op flags follow each operand's transpose
  cublasOperation_t opb = p.tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = p.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const char *A = (const char *)c->in[0], *B = (const char *)c->in[1];
  char *C = (char *)(c->epi_out ? c->epi_out : c->out);
  int m = (int)p.N, k = (int)p.K, lda = (int)p.lda, ldb = (int)p.ldb, ldc = (int)p.N;

  if (p.kind == MM_TALL) { // C[batch*M, N] = A[batch*M, K] op(B)
    st = cublasGemmEx(h, opb, CUBLAS_OP_N, m, (int)(p.nbatch * p.M), k, alpha, B, ty, ldb, A, ty,
                      lda, beta, C, ty, ldc, ct, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_err(c, st);
    return epi_apply(c, c->epi_act, c->epi_res);
  }
  int n = (int)p.M;
  if (p.kind == MM_STRIDED) {
    for (int64_t b0 = 0; b0 < p.nbatch; b0 += kMaxBatch) {
      int cnt = (int)(p.nbatch - b0 < kMaxBatch ? p.nbatch - b0 : kMaxBatch);
      st = cublasGemmStridedBatchedEx(
          h, opb, opa, m, n, k, alpha, B + (size_t)(b0 * p.bstride) * es, ty, ldb,
          (long long)p.bstride, A + (size_t)(b0 * p.astride) * es, ty, lda, (long long)p.astride,
          beta, C + (size_t)(b0 * p.M * p.N) * es, ty, ldc, (long long)(p.M * p.N), cnt, ct,
          CUBLAS_GEMM_DEFAULT);
      if (st != CUBLAS_STATUS_SUCCESS) return blas_err(c, st);
    }
    return epi_apply(c, c->epi_act, c->epi_res);
  }
  // general broadcast: pointer arrays built on the device, in the workspace
  BatchMap bm = {};
  bm.nbd = p.nbd;
  for (int d = 0; d < p.nbd; d++) {
    bm.dims[d] = p.bdims[d];
    bm.ast[d] = p.abst[d] * p.amat * (int64_t)es;
    bm.bst[d] = p.bbst[d] * p.bmat * (int64_t)es;
  }
  const void **pa = (const void **)c->ws;
  const void **pb = pa + p.nbatch;
  void **pc = (void **)(pb + p.nbatch);
  mm_pointers_kernel<<<asg_cuda_blocks(p.nbatch, 256), 256, 0, c->ctx->stream>>>(
      pa, pb, pc, A, B, C, p.nbatch, p.M * p.N * (int64_t)es, bm);
  asg_status as = asg_cuda_check(c);
  if (as) return as;
  for (int64_t b0 = 0; b0 < p.nbatch; b0 += kMaxBatch) {
    int cnt = (int)(p.nbatch - b0 < kMaxBatch ? p.nbatch - b0 : kMaxBatch);
    st = cublasGemmBatchedEx(h, opb, opa, m, n, k, alpha, pa + b0, ty, ldb, pb + b0, ty, lda, beta,
                             pc + b0, ty, ldc, cnt, ct, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) return blas_err(c, st);
  }
  return epi_apply(c, c->epi_act, c->epi_res);
}

// matmul_bias_act (made by the fusion pass, src/passes/fuse_linear.c): the
// product with its epilogue act(y + bias [N]), the call the epilogue planner
// used to make of matmul + add [+ relu] (cuBLASLt's epilogue; epi_kernel
// after the product where cuBLASLt cannot, or where the bias is not 16-byte
// aligned, which cuBLASLt's bias pointer needs).
asg_cuda_call fused_call(const asg_cuda_call *c) {
  asg_cuda_call e = *c;
  const int bi = asg__mba_bias(c->s), ri = asg__mba_res(c->s);
  e.epi_bias = bi >= 0 ? c->in[bi] : nullptr;
  e.epi_out = c->out;
  e.epi_act = bi < 0                 ? 0
              : c->s->attr.i[2] == 1 ? ASG_CUDA_EPI_RELU
              : c->s->attr.i[2] == 2 ? ASG_CUDA_EPI_GELU_TANH
                                     : ASG_CUDA_EPI_BIAS;
  e.epi_res = ri >= 0 ? c->in[ri] : nullptr;
  return e;
}

asg_status mmba_prepare(const asg_cuda_call *c, void **state) {
  asg_cuda_call e = fused_call(c);
  if (asg_cuda_gemv_ok(&e)) return mm_prepare(&e, state); // bias alignment does not matter
  if ((uintptr_t)e.epi_bias % 16) e.epi_bias = NULL, e.epi_out = NULL, e.epi_act = 0; // plain plan
  return mm_prepare(&e, state);
}

asg_status mmba_run(const asg_cuda_call *c) {
  asg_cuda_call e = fused_call(c);
  return mm_run(&e);
}

} // namespace

extern "C" void asg_cuda_register_matmul(asg_cuda_kernel *t) {
  t[ASG_OP_MATMUL].run = mm_run;
  t[ASG_OP_MATMUL].ws = mm_ws;
  t[ASG_OP_MATMUL].prepare = mm_prepare;
  t[ASG_OP_MATMUL].release = lt_plan_free;
  t[ASG_OP_MATMUL_BIAS_ACT].run = mmba_run;
  t[ASG_OP_MATMUL_BIAS_ACT].ws = mm_ws;
  t[ASG_OP_MATMUL_BIAS_ACT].prepare = mmba_prepare;
  t[ASG_OP_MATMUL_BIAS_ACT].release = lt_plan_free;
}

extern "C" bool asg_cuda_mm_bgrad(const void *state) {
  return state && ((const LtPlan *)state)->bgrad;
}

extern "C" bool asg_cuda_mm_out_half(const void *state) {
  return state && ((const LtPlan *)state)->out_half;
}

extern "C" asg_dtype asg_cuda_mm_low(const void *state) {
  return state ? ((const LtPlan *)state)->low : ASG_F32;
}

extern "C" void asg_cuda_gemm_cache_free(void *cache) {
  GemmCache *g = (GemmCache *)cache;
  if (!g) return;
  free(g->v);
  free(g);
}
