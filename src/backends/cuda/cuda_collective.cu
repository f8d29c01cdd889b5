// Collective ops on CUDA, over NCCL (semantics: src/ops/op_collective.c;
// reference: src/backends/cpu/cpu_collective.c). Each asg_comm gets one
// NCCL communicator, made when the first CUDA program with a collective is
// created (.prepare): rank 0 makes the unique id, the communicator's host
// transport broadcasts it (MPI or the rendezvous; a world of one needs
// none), every rank joins on its program's device. The NCCL calls go on the
// backend's stream, so a run's collectives are captured in its CUDA graph
// like any kernel.
//
// Means are a sum and then a division by the world size in a kernel of ours,
// with the CPU's very arithmetic (asg__comm_scale_mean): ncclAvg would
// premultiply every input by 1/world rounded to the data type (inexact for
// 3 ranks, coarse in bf16). A gated all_reduce (data-parallel accumulation)
// must not read its gate on the host (runs do not synchronize): it always
// reduces into the output, and a kernel then writes x back where the gate is
// 0, so the result equals the CPU's, at the price of the transfer on the
// micro-steps that do not need it.
//
// Failures: an NCCL error names the step; system, internal and remote
// errors (a transport that failed, a peer that went away) break the
// communicator. After every run of a program with collectives the backend
// asks NCCL for an asynchronous error (asg_cuda_coll_after_run): one breaks
// the communicator and revokes the NCCL one (NCCL >= 2.28), which stops
// kernels still waiting on the lost peer. Not abort: since NCCL 2.26 an
// abort or destroy waits until every CUDA graph that captured the
// communicator is destroyed, and the programs' graphs live until the
// programs are freed, so it happens in asg_comm_free (after them). NCCL
// itself has no timeout for a collective whose peer hangs (docs/backends.md).
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backends/cuda/cuda.h"
#include "dist/comm_internal.h"

#ifdef ASG_HAVE_NCCL
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <nccl.h>

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "the CUDA collectives need NCCL >= 2.14 (configure with -DASG_WITH_NCCL=OFF to skip them)"
#endif

namespace {

constexpr int kThreads = 256;

// What asg_comm.nccl points to. owner: to know at free time whether the
// world broke (then abort: a destroy would wait for the lost ranks).
struct nccl_state {
  ncclComm_t comm;
  asg_comm *owner;
};

void nccl_state_free(void *p) {
  nccl_state *s = static_cast<nccl_state *>(p);
  if (s->owner->broken)
    ncclCommAbort(s->comm);
  else
    ncclCommDestroy(s->comm);
  free(s);
}

bool transport_failure(ncclResult_t r) {
  return r == ncclSystemError || r == ncclInternalError || r == ncclRemoteError;
}

// "<result>" or "<result> (<NCCL's last message>)", into buf
const char *nccl_text(ncclResult_t r, ncclComm_t comm, char *buf, size_t n) {
  const char *detail = ncclGetLastError(comm);
  if (detail && *detail)
    snprintf(buf, n, "%s (%s)", ncclGetErrorString(r), detail);
  else
    snprintf(buf, n, "%s", ncclGetErrorString(r));
  return buf;
}

// The error of NCCL call result r in step `what` (comm: for NCCL's detail).
asg_status nccl_error(asg_comm *w, const char *what, ncclResult_t r, ncclComm_t comm) {
  char msg[320];
  nccl_text(r, comm, msg, sizeof msg);
  if (transport_failure(r)) return asg__comm_fail(w, what, "NCCL: %s", msg);
  return asg__error(ASG_ERR_BACKEND, "%s: NCCL: %s", what, msg);
}

// Makes the NCCL communicator of w on `device` (every rank at once). What
// can fail alone comes before the exchange of the id, whose timeout then
// bounds the other ranks' wait.
asg_status nccl_create(asg_comm *w, int device, const char *what) {
  cudaError_t ce = cudaSetDevice(device);
  if (ce != cudaSuccess)
    return asg__error(ASG_ERR_BACKEND, "%s: cuda: %s", what, cudaGetErrorString(ce));
  nccl_state *s = static_cast<nccl_state *>(calloc(1, sizeof *s));
  if (!s) return asg__error(ASG_ERR_OOM, "%s: out of memory", what);
  // rank 0's id and whether it could make one: the others then fail too
  // instead of waiting in ncclCommInitRank for a rank that gave up
  struct {
    int32_t ok;
    ncclUniqueId id;
  } msg;
  memset(&msg, 0, sizeof msg);
  ncclResult_t r = ncclSuccess;
  if (w->rank == 0) {
    r = ncclGetUniqueId(&msg.id);
    msg.ok = r == ncclSuccess;
  }
  asg_status st = asg__comm_bcast(w, &msg, sizeof msg, 0, what);
  char text[320];
  if (!st && !msg.ok) {
    nccl_text(r, NULL, text, sizeof text);
    st = asg__comm_fail(w, what, "NCCL: %s", w->rank == 0 ? text : "rank 0 could not start NCCL");
  }
  if (!st) {
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 1; // calls return when done: no ncclInProgress to poll for
    r = ncclCommInitRankConfig(&s->comm, w->size, msg.id, w->rank, &cfg);
    if (r != ncclSuccess)
      st = asg__comm_fail(w, what, "NCCL: cannot create the communicator on CUDA device %d: %s",
                          device, nccl_text(r, NULL, text, sizeof text));
  }
  if (st) {
    free(s);
    return st;
  }
  s->owner = w;
  w->nccl = s;
  w->nccl_device = device;
  w->nccl_free = nccl_state_free;
  return ASG_OK;
}

ncclComm_t nccl_of(const asg_cuda_call *c) {
  return static_cast<const nccl_state *>(c->comm->nccl)->comm;
}

bool nccl_type(asg_dtype dt, ncclDataType_t *t) {
  switch (dt) {
  case ASG_F32: *t = ncclFloat32; return true;
  case ASG_F64: *t = ncclFloat64; return true;
  case ASG_I32: *t = ncclInt32; return true;
  case ASG_I64: *t = ncclInt64; return true;
  case ASG_BF16: *t = ncclBfloat16; return true;
  case ASG_F16: *t = ncclFloat16; return true;
  default: return false;
  }
}

bool nccl_op(int64_t op, ncclRedOp_t *r) {
  switch (op) {
  case ASG_COMM_SUM:
  case ASG_COMM_MEAN: *r = ncclSum; return true; // mean: scaled after (above)
  case ASG_COMM_MAX: *r = ncclMax; return true;
  case ASG_COMM_MIN: *r = ncclMin; return true;
  default: return false;
  }
}

bool overlap(const void *a, size_t an, const void *b, size_t bn) {
  const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
  return an && bn && x < y + bn && y < x + an;
}

// .prepare of every collective: the communicator's NCCL side (made on first
// use), the device, and buffers NCCL can take.
asg_status coll_prepare(const asg_cuda_call *c, void **state) {
  *state = NULL;
  const asg_step *s = c->s;
  asg_comm *w = c->comm;
  if (!w) /* runtime/program.c rejects this first */
    return asg__error(ASG_ERR_INVALID, "cuda: %s: the program has no communicator", s->label);
  asg_status st = asg__comm_usable(w, s->label);
  if (st) return st;
  ncclDataType_t t;
  if (!nccl_type(s->out.dtype, &t))
    return asg__error(ASG_ERR_DTYPE, "cuda: %s: dtype %s not supported", s->label,
                      asg_dtype_name(s->out.dtype));
  const size_t ob = asg__tdesc_bytes(&s->out), ib = asg__tdesc_bytes(&s->in[0]);
  // The planner never places an output over its input; NCCL takes exact
  // in-place buffers only (and a gated all_reduce in place would lose x).
  const bool same = c->out == c->in[0] && ob == ib;
  if (overlap(c->out, ob, c->in[0], ib) &&
      !(same && (s->op == ASG_OP_BROADCAST || (s->op == ASG_OP_ALL_REDUCE && s->n_in == 1))))
    return asg__error(ASG_ERR_BACKEND, "cuda: %s: its output overlaps its input (not supported)",
                      s->label);
  if (!w->nccl) return nccl_create(w, c->ctx->device, s->label);
  if (w->nccl_device != c->ctx->device)
    return asg__error(ASG_ERR_INVALID,
                      "cuda: %s: the communicator runs NCCL on CUDA device %d, this program is on "
                      "device %d (one device per rank)",
                      s->label, w->nccl_device, c->ctx->device);
  return ASG_OK;
}

// ---- the epilogue of reductions: the CPU's mean scaling and the gate ----
__device__ __forceinline__ float scale(float v, double inv) {
  return __double2float_rn(__dmul_rn((double)v, inv));
}
__device__ __forceinline__ double scale(double v, double inv) { return __dmul_rn(v, inv); }
__device__ __forceinline__ __nv_bfloat16 scale(__nv_bfloat16 v, double inv) {
  return __float2bfloat16_rn(scale(__bfloat162float(v), inv));
}
__device__ __forceinline__ __half scale(__half v, double inv) {
  return __float2half_rn(scale(__half2float(v), inv));
}
template <typename T> __device__ __forceinline__ T scale(T v, double) { return v; } // integers

// gate: one element of dtype gdt (I32, F32, F64), or NULL
__device__ __forceinline__ bool gate_off(const void *gate, asg_dtype gdt) {
  if (!gate) return false;
  if (gdt == ASG_I32) return *static_cast<const int32_t *>(gate) == 0;
  if (gdt == ASG_F32) return *static_cast<const float *>(gate) == 0;
  return *static_cast<const double *>(gate) == 0;
}

// out[i] = x[i] where the gate is 0, else red[i] (divided by the world size
// when mean); red may be out.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    finish_kernel(T *out, const T *red, const T *x, const void *gate, asg_dtype gdt, bool mean,
                  double inv, int64_t n) {
  const bool off = gate_off(gate, gdt);
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    out[i] = off ? x[i] : mean ? scale(red[i], inv) : red[i];
}

template <typename T>
void finish_as(void *out, const void *x, const void *gate, asg_dtype gdt, bool mean, double inv,
               int64_t n, cudaStream_t st) {
  finish_kernel<T><<<asg_cuda_blocks(n, kThreads), kThreads, 0, st>>>(
      static_cast<T *>(out), static_cast<const T *>(out), static_cast<const T *>(x), gate, gdt,
      mean, inv, n);
}

// out = gate ? (mean ? out / world : out) : x, in place over out
void finish(asg_dtype dt, void *out, const void *x, const void *gate, asg_dtype gdt, bool mean,
            double inv, int64_t n, cudaStream_t st) {
  switch (dt) {
  case ASG_F32: finish_as<float>(out, x, gate, gdt, mean, inv, n, st); break;
  case ASG_F64: finish_as<double>(out, x, gate, gdt, mean, inv, n, st); break;
  case ASG_I32: finish_as<int32_t>(out, x, gate, gdt, mean, inv, n, st); break;
  case ASG_I64: finish_as<int64_t>(out, x, gate, gdt, mean, inv, n, st); break;
  case ASG_BF16: finish_as<__nv_bfloat16>(out, x, gate, gdt, mean, inv, n, st); break;
  default: finish_as<__half>(out, x, gate, gdt, mean, inv, n, st); break;
  }
}

// all_reduce: x [n] (, gate) -> y [n]
asg_status all_reduce_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const int64_t n = asg_shape_numel(s->out.shape);
  ncclDataType_t t;
  ncclRedOp_t op;
  if (!nccl_type(s->out.dtype, &t) || !nccl_op(s->attr.i[0], &op))
    return asg__error(ASG_ERR_INVALID, "cuda: %s: dtype %s or reduction %lld not supported",
                      s->label, asg_dtype_name(s->out.dtype), (long long)s->attr.i[0]);
  if (n == 0) return ASG_OK; // every rank has the same shape: none calls NCCL
  cudaStream_t st = c->ctx->stream;
  ncclComm_t comm = nccl_of(c);
  ncclResult_t r = ncclAllReduce(c->in[0], c->out, (size_t)n, t, op, comm, st);
  if (r != ncclSuccess) return nccl_error(c->comm, s->label, r, comm);
  const bool gated = s->n_in == 2;
  const bool mean = s->attr.i[0] == ASG_COMM_MEAN && c->comm->size > 1; // as the CPU: none at 1
  if (!gated && !mean) return ASG_OK;
  finish(s->out.dtype, c->out, c->in[0], gated ? c->in[1] : NULL, gated ? s->in[1].dtype : ASG_I32,
         mean, 1.0 / c->comm->size, n, st);
  return asg_cuda_check(c);
}

// broadcast: x [n] -> y [n] = root's x (bytes: any dtype)
asg_status broadcast_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const size_t bytes = asg__tdesc_bytes(&s->out);
  if (bytes == 0) return ASG_OK;
  ncclComm_t comm = nccl_of(c);
  ncclResult_t r =
      ncclBroadcast(c->in[0], c->out, bytes, ncclUint8, (int)s->attr.i[0], comm, c->ctx->stream);
  return r == ncclSuccess ? ASG_OK : nccl_error(c->comm, s->label, r, comm);
}

// all_gather: x [d0, ...] -> y [world d0, ...], rank r's block at r d0
asg_status all_gather_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const size_t bytes = asg__tdesc_bytes(&s->in[0]);
  if (bytes == 0) return ASG_OK;
  ncclComm_t comm = nccl_of(c);
  ncclResult_t r = ncclAllGather(c->in[0], c->out, bytes, ncclUint8, comm, c->ctx->stream);
  return r == ncclSuccess ? ASG_OK : nccl_error(c->comm, s->label, r, comm);
}

// reduce_scatter: x [world d0, ...] -> y [d0, ...] = block rank of the sum (or mean)
asg_status reduce_scatter_run(const asg_cuda_call *c) {
  const asg_step *s = c->s;
  const int64_t n = asg_shape_numel(s->out.shape);
  ncclDataType_t t;
  const bool sum_or_mean = s->attr.i[1] == ASG_COMM_SUM || s->attr.i[1] == ASG_COMM_MEAN;
  if (!nccl_type(s->out.dtype, &t) || !sum_or_mean)
    return asg__error(ASG_ERR_INVALID, "cuda: %s: dtype %s or reduction %lld not supported",
                      s->label, asg_dtype_name(s->out.dtype), (long long)s->attr.i[1]);
  if (n == 0) return ASG_OK;
  cudaStream_t st = c->ctx->stream;
  ncclComm_t comm = nccl_of(c);
  ncclResult_t r = ncclReduceScatter(c->in[0], c->out, (size_t)n, t, ncclSum, comm, st);
  if (r != ncclSuccess) return nccl_error(c->comm, s->label, r, comm);
  if (s->attr.i[1] != ASG_COMM_MEAN || c->comm->size == 1) return ASG_OK;
  finish(s->out.dtype, c->out, NULL, NULL, ASG_I32, true, 1.0 / c->comm->size, n, st);
  return asg_cuda_check(c);
}

} // namespace

extern "C" void asg_cuda_register_collective(asg_cuda_kernel *t) {
  const asg_op ops[] = {ASG_OP_ALL_REDUCE, ASG_OP_BROADCAST, ASG_OP_ALL_GATHER,
                        ASG_OP_REDUCE_SCATTER};
  for (asg_op op : ops)
    t[op].prepare = coll_prepare;
  t[ASG_OP_ALL_REDUCE].run = all_reduce_run;
  t[ASG_OP_BROADCAST].run = broadcast_run;
  t[ASG_OP_ALL_GATHER].run = all_gather_run;
  t[ASG_OP_REDUCE_SCATTER].run = reduce_scatter_run;
}

extern "C" asg_status asg_cuda_coll_after_run(asg_comm *w, const char *what) {
  nccl_state *s = w ? static_cast<nccl_state *>(w->nccl) : NULL;
  if (!s) return ASG_OK;
  ncclResult_t ar = ncclSuccess;
  ncclResult_t r = ncclCommGetAsyncError(s->comm, &ar);
  if (r == ncclSuccess && (ar == ncclSuccess || ar == ncclInProgress)) return ASG_OK;
  if (r == ncclSuccess) r = ar;
  char text[320];
  nccl_text(r, s->comm, text, sizeof text);
#ifdef NCCL_REVOKE_DEFAULT
  // kernels may still wait on the lost peer: revoking stops them (the
  // stream drains); the communicator is broken, so nothing launches again
  ncclCommRevoke(s->comm, NCCL_REVOKE_DEFAULT);
#endif
  return asg__comm_fail(w, what, "NCCL reported an asynchronous error: %s", text);
}

#else // without NCCL the CUDA backend has no collectives (cuda_exec_create says so)

extern "C" void asg_cuda_register_collective(asg_cuda_kernel *t) { (void)t; }

extern "C" asg_status asg_cuda_coll_after_run(asg_comm *w, const char *what) {
  (void)w, (void)what;
  return ASG_OK;
}

#endif
