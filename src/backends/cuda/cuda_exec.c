/* The CUDA executor: a program's steps enqueued on one stream, as the
 * planners of cuda_exec.h decided; from the second run on the whole step is
 * replayed as a captured CUDA graph (ASG_CUDA_GRAPH=0 launches kernel by
 * kernel). Runs do not synchronize: reading a buffer does. ASG_PROFILE=1
 * times every step with CUDA events (a synchronization per run; the first
 * run is not counted) and prints the time per op kind when the program is
 * freed; ASG_PROFILE=2 adds the slowest steps with their shapes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"
#include "dist/comm_internal.h"

typedef struct cuda_exec {
  asg_cuda_ctx *ctx;
  asg_resolved r; /* the plan with addresses */
  int n_ev;       /* events created (profiling) */
  void *ws;
  void **state;      /* per step: what its kernel's .prepare made */
  uint64_t *run_dev; /* device copy of the run count, incremented by each run */
  uint64_t next_run; /* what run_dev holds when no one reset the count */
  cudaGraph_t graph;
  cudaGraphExec_t graph_exec;
  int runs;
  int coll; /* the first collective step (its label names run-level NCCL errors), or -1 */
  /* collectives on comm_stream beside the compute (ASG_CUDA_COMM_OVERLAP=0:
   * on the compute stream); coll_ev: per slot its fork and done events */
  comm_overlap comm;
  cudaStream_t comm_stream;
  cudaEvent_t *coll_ev;
  int n_coll_ev;
  bool use_graph, tf32, bf16, fp16;
  bool random;        /* some step draws random numbers (reads the run count) */
  adam_fusion fuse;   /* multi-tensor Adam launches (ASG_CUDA_FUSE_ADAM=0: none) */
  asg_cuda_fusion ew; /* fused elementwise chains (ASG_CUDA_FUSE=0: none) */
  stats_pairs stats;  /* forward statistics kept for later steps (ASG_CUDA_KEEP_STATS=0: none) */
  half_copies half;   /* shared 16-bit operand copies (ASG_CUDA_SHARE_HALF=0: none) */
  unsigned char *aux_own; /* per step: bit k set when its kernel writes its further
                             output k (plan.h); the others run as their own ops */
  int *colsum;            /* per matmul: the sum step its operand conversion computes, or -1 */
  signed char *colsum_op; /* ... of that operand */
  char *cs_skip;          /* per step: computed by a product's operand conversion */
  int *lh;                /* per step: 16-bit logits: the product writing them (on it and
                             on its softmax CE readers), else -1 */
  epi_plan epi;           /* GEMM epilogues (ASG_CUDA_EPILOGUE=0: none) */
  int *cw_pair;           /* per cache_write: the later one it launches with, or -1 */
  char *cw_skip;          /* per step: launched by the cache_write before it */
  double ew_ms;           /* profile of the fused chains */
  int64_t ew_calls;
  asg_cuda_adam_tensor *adam_dev; /* device copy of fuse.tab */
  asg_index_fault *fault;         /* out-of-range indices (runtime/backend.h), or NULL */
  asg_index_fault *fault_host;    /* pinned copy read after each run */
  asg_finite_fault *finite;       /* anomaly mode's record (runtime/inspect.h), or NULL */
  asg_finite_fault *finite_host;  /* pinned copy read after each run */
  /* profiling (ASG_PROFILE=1) */
  cudaEvent_t *ev; /* n_steps + 1 events */
  double op_ms[ASG_OP_COUNT];
  int64_t op_calls[ASG_OP_COUNT];
  double *step_ms; /* per step (ASG_PROFILE=2) */
  int prof_runs;
  asg__prof *prof; /* the program's profile (runtime/backend.h), or NULL */
} cuda_exec;

void asg_cuda_exec_destroy(void *e) {
  cuda_exec *x = e;
  if (!x) return;
  if (x->ctx && x->ctx->stream) cudaStreamSynchronize(x->ctx->stream);
  if (x->ev && asg__profile_level()) { /* ASG_PROFILE's report (not for opts.profile alone) */
    asg__profile_report("cuda", "launches", x->op_ms, x->op_calls, x->prof_runs);
    if (x->prof_runs && x->ew_calls)
      fprintf(stderr,
              "  (of which fused elementwise chains: %.3f ms/run, %lld launches/run for %d steps;"
              " compiled in %.0f ms)\n",
              x->ew_ms / x->prof_runs, (long long)(x->ew_calls / x->prof_runs), x->ew.fused_steps,
              x->ew.compile_ms);
    if (x->half.copies)
      fprintf(stderr,
              "  (16-bit operand copies: %d for %d product operands, %d written by their "
              "producer, %.1f MiB)\n",
              x->half.copies, x->half.reads, x->half.produced, (double)x->half.bytes / (1 << 20));
    asg__profile_steps("cuda", &x->r.plan, x->step_ms, x->prof_runs, 40);
  }
  if (x->ev) {
    for (int i = 0; i < x->n_ev; i++)
      cudaEventDestroy(x->ev[i]);
    free(x->ev);
  }
  free(x->step_ms);
  if (x->comm_stream) cudaStreamSynchronize(x->comm_stream);
  /* the graph first: its nodes name the collectives' events */
  if (x->graph_exec) cudaGraphExecDestroy(x->graph_exec);
  if (x->graph) cudaGraphDestroy(x->graph);
  for (int i = 0; i < x->n_coll_ev; i++)
    cudaEventDestroy(x->coll_ev[i]);
  free(x->coll_ev);
  if (x->comm_stream) cudaStreamDestroy(x->comm_stream);
  asg_cuda_comm_free(&x->comm);
  for (int i = 0; x->state && i < x->r.plan.n_steps; i++)
    if (x->state[i]) asg_cuda_kernels()[x->r.plan.steps[i].op].release(x->state[i]);
  free(x->state);
  asg__resolved_free(&x->r);
  asg_cuda_adam_free(&x->fuse);
  asg_cuda_fusion_free(&x->ew);
  asg_cuda_stats_free(&x->stats);
  asg_cuda_half_free(&x->half);
  free(x->aux_own);
  free(x->colsum), free(x->colsum_op), free(x->cs_skip), free(x->lh);
  asg_cuda_epi_free(&x->epi);
  free(x->cw_pair), free(x->cw_skip);
  if (x->adam_dev) cudaFree(x->adam_dev);
  if (x->ws) cudaFree(x->ws);
  if (x->run_dev) cudaFree(x->run_dev);
  if (x->fault) cudaFree(x->fault);
  if (x->fault_host) cudaFreeHost(x->fault_host);
  if (x->finite) cudaFree(x->finite);
  if (x->finite_host) cudaFreeHost(x->finite_host);
  free(x);
}

/* ---- further outputs (plan.h's aux; src/passes/fuse_stats.c) ----
 * A step's kernel writes its further outputs where it can: attention its
 * lse (as it does for a kept-statistics reader), layernorm_bwd_x the gamma
 * and beta gradients in one pass over dy and x (cuda_layernorm.cu, rows of
 * up to 1024 columns that fit its shared memory; ASG_CUDA_FUSE_LN=0: not).
 * The others run right after it as their own ops (aux_run). */
static asg_status aux_plan(cuda_exec *x, size_t smem_max) {
  const int n = x->r.plan.n_steps;
  const char *env = getenv("ASG_CUDA_FUSE_LN");
  const bool ln = !(env && env[0] == '0');
  if (!(x->aux_own = calloc((size_t)n + 1, 1)))
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int i = 0; i < n; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    int gamma = -1;
    for (int k = 0; k < s->n_aux; k++)
      if (s->aux[k].op == ASG_OP_LAYERNORM_BWD_GAMMA) gamma = k;
    for (int k = 0; k < s->n_aux; k++) {
      const asg_op a = s->aux[k].op;
      const bool own =
          (s->op == ASG_OP_ATTENTION && a == ASG_OP_ATTENTION_LSE) ||
          (s->op == ASG_OP_LAYERNORM_BWD_X && ln && gamma >= 0 && asg_cuda_ln_xg_ok(s, smem_max) &&
           (a == ASG_OP_LAYERNORM_BWD_GAMMA || a == ASG_OP_SUM));
      if (own) x->aux_own[i] |= (unsigned char)(1u << k);
    }
  }
  return ASG_OK;
}

/* Where step i's kernel writes its further output of op a, or NULL. */
static void *own_aux(const cuda_exec *x, int i, asg_op a) {
  const asg_step *s = &x->r.plan.steps[i];
  for (int k = 0; k < s->n_aux; k++)
    if (s->aux[k].op == a && x->aux_own && (x->aux_own[i] >> k & 1))
      return x->r.aux[(size_t)i * ASG_MAX_AUX + k];
  return NULL;
}

/* Step i's further outputs its kernel did not write, each by its own op. */
static asg_status aux_run(const cuda_exec *x, int i, const asg_cuda_call *c) {
  const asg_step *s = &x->r.plan.steps[i];
  asg_status st = ASG_OK;
  for (int k = 0; k < s->n_aux && !st; k++) {
    if (x->aux_own && (x->aux_own[i] >> k & 1)) continue;
    const size_t a = (size_t)i * ASG_MAX_AUX + k;
    const asg_cuda_call u = {.s = &s->aux[k],
                             .out = x->r.aux[a],
                             .in = x->r.aux_in[a],
                             .ws = c->ws,
                             .run = c->run,
                             .ctx = c->ctx,
                             .tf32 = c->tf32,
                             .bf16 = c->bf16,
                             .fp16 = c->fp16};
    st = asg_cuda_kernels()[u.s->op].run(&u);
  }
  return st;
}

/* Where step i writes statistics a later step reads: the attention's lse
 * as its further output, or a kept buffer. */
static void *step_stats_out(const cuda_exec *x, int i) {
  void *lse = own_aux(x, i, ASG_OP_ATTENTION_LSE);
  if (lse) return lse;
  return x->stats.out ? x->stats.out[i] : NULL;
}

/* The call of step i (its state once .prepare made it). */
static asg_cuda_call step_call(const cuda_exec *x, int i) {
  return (asg_cuda_call){
      .s = &x->r.plan.steps[i],
      .out = x->r.out[i],
      .in = x->r.in[i],
      .ws = x->ws,
      .run = x->run_dev,
      .ctx = x->ctx,
      .tf32 = x->tf32,
      .bf16 = x->bf16,
      .fp16 = x->fp16,
      .state = x->state ? x->state[i] : NULL,
      .stats_out = step_stats_out(x, i),
      .stats_in = x->stats.in ? x->stats.in[i] : NULL,
      .half = {x->half.base ? (char *)x->half.base + x->half.off[2 * i] : NULL,
               x->half.base ? (char *)x->half.base + x->half.off[2 * i + 1] : NULL},
      .half_mode = {x->half.base ? x->half.mode[2 * i] : 0,
                    x->half.base ? x->half.mode[2 * i + 1] : 0},
      .half_out =
          x->half.base && x->half.out_off[i] ? (char *)x->half.base + x->half.out_off[i] - 1 : NULL,
      .fused_out = own_aux(x, i, ASG_OP_LAYERNORM_BWD_GAMMA),
      .fused_out2 = own_aux(x, i, ASG_OP_SUM),
      .colsum_out = x->colsum && x->colsum[i] >= 0 ? x->r.out[x->colsum[i]] : NULL,
      .colsum_op = x->colsum_op ? x->colsum_op[i] : 0,
      .out_half = x->lh && x->lh[i] == i,
      .in_half = x->lh && x->lh[i] >= 0 && x->lh[i] != i,
      .bgrad_out = x->epi.bgrad && x->epi.bgrad[i] >= 0 ? x->r.out[x->epi.bgrad[i]] : NULL,
      .ln_add = {x->epi.ln_add && x->epi.ln_add[i] >= 0 ? x->r.in[x->epi.ln_add[i]][0] : NULL,
                 x->epi.ln_add && x->epi.ln_add[i] >= 0 ? x->r.in[x->epi.ln_add[i]][1] : NULL},
      .fault = x->fault,
      .step1 = (unsigned)i + 1,
      .comm = x->r.plan.comm};
}

/* ---- bias gradients while converting product operands ----
 * With bf16 / fp16 products, a linear layer's output gradient g [R, C] (f32)
 * is converted to 16 bits for the products that read it, and a sum step
 * adds its rows (the bias gradient). The product that converts g also takes
 * the column sums of the f32 values as it reads them (cuda_matmul.cu) and
 * the sum step launches nothing. The sum's output is then written at the
 * product's turn: no step in between may read or write it or write g, and
 * none may be a fold that reads or writes at another step's turn.
 * ASG_CUDA_COLSUM=0 turns it off. */
enum { COLSUM_WINDOW = 24 };

/* Whether step t computes at its own turn what it reads and writes. */
static bool plain_step(const cuda_exec *x, int t) {
  return !(x->ew.role && x->ew.role[t]) && !(x->fuse.role && x->fuse.role[t]) &&
         !(x->epi.skip && x->epi.skip[t]) && !(x->epi.bgrad && x->epi.bgrad[t] >= 0) &&
         !(x->epi.ln_add && x->epi.ln_add[t] >= 0) &&
         !(x->cw_pair && (x->cw_pair[t] >= 0 || x->cw_skip[t]));
}

/* The product (and in *op its operand) that converts sum step s's input and
 * can compute the sum, or -1. */
static int colsum_partner(const cuda_exec *x, int s, const int *taken, int *op) {
  const asg_resolved *r = &x->r;
  const asg_step *u = &r->plan.steps[s];
  const int nd = u->in[0].shape.ndim;
  if (u->op != ASG_OP_SUM || !plain_step(x, s) || u->out.dtype != ASG_F32 ||
      u->in[0].dtype != ASG_F32 || nd < 1 || u->attr.i[0] != ((int64_t)1 << (nd - 1)) - 1)
    return -1;
  const int64_t C = u->in[0].shape.dims[nd - 1];
  const asg_cuda_range g = asg_cuda_in_range(r, s, 0), o = asg_cuda_out_range(r, s);
  if (C % 4 || asg_shape_numel(u->out.shape) != C || asg_shape_numel(u->in[0].shape) == 0 ||
      g.lo % 16 || asg_cuda_overlap(g, o))
    return -1;
  for (int d = 1; d <= COLSUM_WINDOW; d++)
    for (int sg = -1; sg <= 1; sg += 2) {
      const int i = s + sg * d;
      if (i < 0 || i >= r->plan.n_steps || taken[i] >= 0) continue;
      const asg_step *m = &r->plan.steps[i];
      if (!asg_cuda_is_product(m->op) || !plain_step(x, i) || !x->state ||
          asg_cuda_mm_low(x->state[i]) == ASG_F32)
        continue;
      int j = -1;
      for (int q = 0; q < 2 && j < 0; q++) {
        const asg_cuda_range a = asg_cuda_in_range(r, i, q);
        const asg_shape as = m->in[q].shape;
        const bool converts = !x->half.mode || x->half.mode[2 * i + q] != ASG_CUDA_HALF_READY;
        if (a.lo == g.lo && a.hi == g.hi && converts && as.dims[as.ndim - 1] == C) j = q;
      }
      bool clash = j < 0 || asg_cuda_overlap(asg_cuda_out_range(r, i), o);
      for (int q = 0; !clash && q < m->n_in; q++) /* the other operands, bias, residual */
        clash = q != j && asg_cuda_overlap(asg_cuda_in_range(r, i, q), o);
      if (clash) continue;
      const int lo = i < s ? i : s, hi = i < s ? s : i;
      bool ok = true;
      for (int t = lo + 1; ok && t < hi; t++) {
        ok = plain_step(x, t) && !step_writes(r, t, o) && !step_writes(r, t, g);
        for (int q = 0; ok && q < r->plan.steps[t].n_in && !noop_step(r, t); q++)
          ok = !asg_cuda_overlap(asg_cuda_in_range(r, t, q), o);
      }
      if (ok) {
        *op = j;
        return i;
      }
    }
  return -1;
}

static asg_status colsum_plan(cuda_exec *x) {
  const int n = x->r.plan.n_steps;
  const char *env = getenv("ASG_CUDA_COLSUM");
  if ((env && env[0] == '0') || !(x->bf16 || x->fp16)) return ASG_OK;
  x->colsum = malloc(sizeof(int) * ((size_t)n + 1));
  x->colsum_op = calloc((size_t)n + 1, 1);
  x->cs_skip = calloc((size_t)n + 1, 1);
  if (!x->colsum || !x->colsum_op || !x->cs_skip)
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int i = 0; i < n; i++)
    x->colsum[i] = -1;
  for (int s = 0; s < n; s++) {
    int op = 0;
    const int i = colsum_partner(x, s, x->colsum, &op);
    if (i < 0) continue;
    x->colsum[i] = s;
    x->colsum_op[i] = (signed char)op;
    x->cs_skip[s] = 1;
  }
  return ASG_OK;
}

/* ---- 16-bit logits ----
 * With bf16 / fp16 products, a product whose output (f32 [R, C]) only
 * softmax CE steps read (the forward and its backward, as a language
 * model's head) writes it as 16 bits in the first half of its own bytes, and
 * they read that (PyTorch's autocast keeps such logits in bf16 too). The
 * softmax, log-sum-exp and loss stay f32. ASG_CUDA_HALF_LOGITS=0 turns it
 * off. Planned before the products' .prepare (the GEMM's output type);
 * lh_settle drops what a product's plan could not honour. */
static asg_status lh_plan(cuda_exec *x) {
  const asg_resolved *r = &x->r;
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_HALF_LOGITS");
  if ((env && env[0] == '0') || !(x->bf16 || x->fp16)) return ASG_OK;
  if (!(x->lh = malloc(sizeof(int) * ((size_t)n + 1))))
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int i = 0; i < n; i++)
    x->lh[i] = -1;
  for (int m = 0; m < n; m++) {
    const asg_step *s = &r->plan.steps[m];
    const asg_shape os = s->out.shape;
    if (s->op != ASG_OP_MATMUL || s->out.dtype != ASG_F32 || s->keep ||
        s->out_buf.kind != ASG_BUF_ARENA || os.ndim < 1 || os.dims[os.ndim - 1] % 4 ||
        asg_shape_numel(os) == 0 || (uintptr_t)r->out[m] % 16 || !plain_step(x, m))
      continue;
    const asg_cuda_range o = asg_cuda_out_range(r, m);
    int readers = 0;
    bool ok = true;
    for (int t = m + 1; ok && t < n; t++) {
      const asg_step *u = &r->plan.steps[t];
      for (int j = 0; ok && j < u->n_in && !noop_step(r, t); j++) {
        const asg_cuda_range a = asg_cuda_in_range(r, t, j);
        if (!asg_cuda_overlap(a, o)) continue;
        const asg_shape cs = u->in[0].shape; /* the CE's rows: 16-bit quads */
        ok = (u->op == ASG_OP_SOFTMAX_CE || u->op == ASG_OP_SOFTMAX_CE_BWD) && j == 0 &&
             a.lo == o.lo && a.hi == o.hi && u->in[0].dtype == ASG_F32 && cs.ndim >= 1 &&
             cs.dims[cs.ndim - 1] % 4 == 0 &&
             (u->op == ASG_OP_SOFTMAX_CE || (uintptr_t)r->out[t] % 16 == 0) && plain_step(x, t);
        readers += ok;
      }
      if (step_writes(r, t, o)) break; /* overwritten: no later reader */
    }
    if (!ok || !readers) continue;
    x->lh[m] = m;
    for (int t = m + 1; t < n; t++) {
      if (r->plan.steps[t].n_in && !noop_step(r, t) &&
          asg_cuda_overlap(asg_cuda_in_range(r, t, 0), o))
        x->lh[t] = m;
      if (step_writes(r, t, o)) break;
    }
  }
  return ASG_OK;
}

/* Products whose plan writes f32 after all (cuBLASLt declined): their
 * readers read f32. */
static void lh_settle(cuda_exec *x) {
  for (int i = 0; x->lh && i < x->r.plan.n_steps; i++)
    if (x->lh[i] >= 0 && !asg_cuda_mm_out_half(x->state[x->lh[i]])) x->lh[i] = -1;
}

/* Collectives on a second stream (cuda_plan_comm.c), unless
 * ASG_CUDA_COMM_OVERLAP=0, profiled (the per-step events time one stream) or
 * in anomaly mode (each step's output is inspected right after it on the
 * compute stream). GPU runs (2026-12-07, H100, a world of one): the
 * collective and NCCL suites and test_parity pass with it on and off. */
static asg_status comm_plan(cuda_exec *x) {
  const char *env = getenv("ASG_CUDA_COMM_OVERLAP");
  const int n = x->r.plan.n_steps;
  if (x->coll < 0 || x->ev || x->finite || (env && env[0] == '0')) return ASG_OK;
  char *quiet = calloc((size_t)n + 1, 1);
  int *partner = malloc(sizeof *partner * ((size_t)n * ASG_CUDA_PARTNERS + 1));
  if (!quiet || !partner) {
    free(quiet), free(partner);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  for (int i = 0; i < n; i++) {
    quiet[i] = (x->fuse.role && x->fuse.role[i] == FUSE_SKIP) ||
               (x->ew.role && x->ew.role[i] == FUSE_SKIP) || (x->cs_skip && x->cs_skip[i]) ||
               (x->epi.skip && x->epi.skip[i]);
    const int pk[ASG_CUDA_PARTNERS] = {x->epi.bgrad ? x->epi.bgrad[i] : -1,
                                       x->colsum ? x->colsum[i] : -1,
                                       x->epi.ln_add ? x->epi.ln_add[i] : -1};
    memcpy(partner + (size_t)i * ASG_CUDA_PARTNERS, pk, sizeof pk);
  }
  asg_status st = asg_cuda_comm_plan(&x->r, quiet, partner, &x->comm);
  free(quiet), free(partner);
  if (st || !x->comm.n_slots) return st;
  if (cudaStreamCreateWithFlags(&x->comm_stream, cudaStreamNonBlocking) != cudaSuccess ||
      !(x->coll_ev = calloc((size_t)x->comm.n_slots * 2, sizeof *x->coll_ev))) {
    cudaGetLastError();
    return asg__error(ASG_ERR_BACKEND, "cuda: cannot create the collectives' stream");
  }
  for (; x->n_coll_ev < 2 * x->comm.n_slots; x->n_coll_ev++)
    if (cudaEventCreateWithFlags(&x->coll_ev[x->n_coll_ev], cudaEventDisableTiming) !=
        cudaSuccess) {
      cudaGetLastError();
      return asg__error(ASG_ERR_BACKEND, "cuda: cannot create the collectives' events");
    }
  return ASG_OK;
}

/* Before step i (i = n: at the end of the run) the compute stream waits for
 * the collectives the plan joins there. */
static void comm_join(const cuda_exec *x, int i) {
  if (!x->comm_stream) return;
  for (int k = x->comm.join_off[i]; k < x->comm.join_off[i + 1]; k++)
    cudaStreamWaitEvent(x->ctx->stream, x->coll_ev[2 * x->comm.joins[k] + 1], 0);
}

/* A run that stops before step i: the compute stream takes back every
 * collective forked so far (a stream capture must end joined); returns st. */
static asg_status comm_abandon(const cuda_exec *x, int i, asg_status st) {
  for (int j = 0; x->comm_stream && j < i; j++)
    if (x->comm.slot[j] >= 0)
      cudaStreamWaitEvent(x->ctx->stream, x->coll_ev[2 * x->comm.slot[j] + 1], 0);
  return st;
}

/* Collective step i on the second stream, after everything the compute
 * stream has queued. */
static asg_status comm_run(cuda_exec *x, int i, asg_cuda_call *c) {
  const int k = x->comm.slot[i];
  asg_cuda_ctx on = *x->ctx; /* the same device, the other stream */
  on.stream = x->comm_stream;
  c->ctx = &on;
  cudaEventRecord(x->coll_ev[2 * k], x->ctx->stream);
  cudaStreamWaitEvent(x->comm_stream, x->coll_ev[2 * k], 0);
  asg_status st = asg_cuda_kernels()[c->s->op].run(c);
  cudaEventRecord(x->coll_ev[2 * k + 1], x->comm_stream);
  c->ctx = x->ctx;
  return st;
}

/* ---- cache writes in pairs ----
 * A decode step writes each layer's new k and v rows into their caches:
 * two tiny kernels in a row, each a launch and a ramp in the step's chain.
 * Cache write i launches together with cache write j when j is the next
 * step after i that does anything (only no-op views between, so j's inputs
 * are ready at i's turn), each writes its cache in place (out aliases the
 * variable), and neither reads nor writes what the other writes. Not with
 * collectives or anomaly checks (they look at each step's own turn).
 * ASG_CUDA_CW_PAIR=0: off. */
static asg_status cw_pair_plan(cuda_exec *x) {
  const char *env = getenv("ASG_CUDA_CW_PAIR");
  const asg_resolved *r = &x->r;
  const int n = r->plan.n_steps;
  if ((env && env[0] == '0') || x->coll >= 0 || x->finite) return ASG_OK;
  x->cw_pair = malloc(sizeof *x->cw_pair * ((size_t)n + 1));
  x->cw_skip = calloc((size_t)n + 1, 1);
  if (!x->cw_pair || !x->cw_skip) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int i = 0; i < n; i++)
    x->cw_pair[i] = -1;
  for (int i = 0; i < n; i++) {
    const asg_step *a = &r->plan.steps[i];
    if (a->op != ASG_OP_CACHE_WRITE || x->cw_skip[i] || !plain_step(x, i) ||
        r->out[i] != r->in[i][0])
      continue;
    int j = i + 1;
    while (j < n && noop_step(r, j))
      j++;
    if (j >= n || !asg_cuda_cache_write_pairable(a, &r->plan.steps[j]) || !plain_step(x, j) ||
        r->out[j] != r->in[j][0])
      continue;
    const asg_cuda_range wi = written_range(r, i), wj = written_range(r, j);
    bool ok = !asg_cuda_overlap(wi, wj);
    for (int k = 1; k < 3 && ok; k++)
      ok = !asg_cuda_overlap(wi, asg_cuda_in_range(r, j, k)) &&
           !asg_cuda_overlap(wj, asg_cuda_in_range(r, i, k));
    if (!ok) continue;
    x->cw_pair[i] = j;
    x->cw_skip[j] = 1;
  }
  return ASG_OK;
}

asg_status asg_cuda_exec_create(void *dev, const asg_plan *plan, const asg_buffers *bufs,
                                void **exec) {
  cuda_exec *x = calloc(1, sizeof *x);
  if (!x) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  x->ctx = dev;
  const char *env = getenv("ASG_CUDA_GRAPH");
  x->use_graph = !(env && env[0] == '0');
  x->tf32 = plan->flags & (ASG_PLAN_TF32 | ASG_PLAN_BF16 | ASG_PLAN_F16);
  x->bf16 = plan->flags & ASG_PLAN_BF16;
  x->fp16 = !x->bf16 && (plan->flags & ASG_PLAN_F16);
  asg_status st = asg__resolve_plan(plan, bufs, &x->r);
  int n = x->r.plan.n_steps;
  size_t ws = 0;
  x->coll = -1;
  for (int i = 0; i < n && !st; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    if (asg__op_info[s->op].flags & ASG_OPF_RANDOM) x->random = true;
    const bool coll = asg__op_info[s->op].flags & ASG_OPF_COLL;
    if (coll && x->coll < 0) x->coll = i;
    if (!asg_cuda_kernels()[s->op].run && coll)
      st = asg__error(ASG_ERR_UNSUPPORTED,
                      "cuda: %s: this build of ASG has no NCCL (built without NCCL), so CUDA "
                      "programs cannot run collectives; install NCCL and rebuild, or compile "
                      "for the CPU",
                      s->label);
    else if (!asg_cuda_kernels()[s->op].run)
      st = asg__error(ASG_ERR_UNSUPPORTED, "cuda: no kernel for %s", s->label);
    for (int k = -1; k < s->n_aux && !st; k++) { /* its workspace, its aux steps' */
      const asg_step *u = k < 0 ? s : &s->aux[k];
      const asg_cuda_kernel *kn = &asg_cuda_kernels()[u->op];
      if (k >= 0 && (!kn->run || kn->prepare))
        st = asg__error(ASG_ERR_UNSUPPORTED, "cuda: no plain kernel for %s", u->label);
      else if (kn->ws && kn->ws(u, plan->flags) > ws)
        ws = kn->ws(u, plan->flags);
    }
  }
  if (!st &&
      (asg__profile_level() || (plan->flags & ASG_PLAN_PROFILE))) { /* per-step events, no graph */
    x->use_graph = false;
    x->ev = calloc((size_t)n + 1, sizeof *x->ev);
    x->step_ms = calloc((size_t)n + 1, sizeof *x->step_ms);
    if (!x->ev || !x->step_ms) st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
    for (; !st && x->n_ev <= n; x->n_ev++)
      if (cudaEventCreate(&x->ev[x->n_ev]) != cudaSuccess)
        st = asg__error(ASG_ERR_BACKEND, "cuda: cannot create profiling events");
  }
  const char *fuse = getenv("ASG_CUDA_FUSE_ADAM");
  if (!st && !(fuse && fuse[0] == '0')) st = asg_cuda_adam_plan(&x->r, &x->fuse);
  if (!st) st = asg_cuda_epi_plan(&x->r, &x->epi);
  if (!st) st = asg_cuda_fuse_plan(&x->r, x->epi.skip, &x->ew);
  if (!st) st = asg_cuda_stats_plan(&x->r, &x->stats);
  int optin = 0; /* shared memory a block may opt in to (the one-pass layernorm backward) */
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, x->ctx->device) !=
      cudaSuccess) {
    cudaGetLastError();
    optin = 48 << 10;
  }
  if (!st) st = aux_plan(x, (size_t)optin);
  cudaError_t e = cudaSuccess;
  if (!st && x->fuse.n_tab) { /* the groups' table, written once */
    const size_t tb = sizeof *x->adam_dev * (size_t)x->fuse.n_tab;
    e = cudaMalloc((void **)&x->adam_dev, tb);
    if (e == cudaSuccess) e = cudaMemcpy(x->adam_dev, x->fuse.tab, tb, cudaMemcpyHostToDevice);
  }
  bool check = false; /* a fault record when some step reads checked indices */
  for (int i = 0; i < n && !(plan->flags & ASG_PLAN_UNCHECKED_INDEX); i++)
    check = check || asg__step_checks_index(&x->r.plan.steps[i]);
  if (!st && e == cudaSuccess && (plan->flags & ASG_PLAN_CHECK_FINITE)) {
    e = cudaMalloc((void **)&x->finite, sizeof *x->finite);
    if (e == cudaSuccess) e = cudaMemset(x->finite, 0, sizeof *x->finite);
    if (e == cudaSuccess) e = cudaMallocHost((void **)&x->finite_host, sizeof *x->finite_host);
  }
  if (!st && e == cudaSuccess && check) {
    e = cudaMalloc((void **)&x->fault, sizeof *x->fault);
    if (e == cudaSuccess) e = cudaMemset(x->fault, 0, sizeof *x->fault);
    if (e == cudaSuccess) e = cudaMallocHost((void **)&x->fault_host, sizeof *x->fault_host);
  }
  if (!st && e == cudaSuccess) e = cudaMalloc((void **)&x->run_dev, sizeof(uint64_t));
  if (!st && e == cudaSuccess) e = cudaMemset(x->run_dev, 0, sizeof(uint64_t));
  if (!st && e == cudaSuccess && ws) e = cudaMalloc(&x->ws, (ws + 255) & ~(size_t)255);
  if (!st && e != cudaSuccess) {
    cudaGetLastError();
    st = asg__error(ASG_ERR_OOM, "cuda: cannot allocate the program's workspace (%s)",
                    cudaGetErrorString(e));
  }
  if (!st) st = lh_plan(x);
  if (!st && !(x->state = calloc((size_t)n + 1, sizeof *x->state)))
    st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int i = 0; i < n && !st; i++) { /* per-step plans (GEMM algorithms) */
    const asg_step *s = &x->r.plan.steps[i];
    if (!asg_cuda_kernels()[s->op].prepare) continue;
    asg_cuda_call c = step_call(x, i);
    st = asg_cuda_kernels()[s->op].prepare(&c, &x->state[i]);
  }
  if (!st) asg_cuda_epi_settle(&x->r, x->state, &x->epi);
  if (!st) lh_settle(x);
  if (!st) st = asg_cuda_half_plan(&x->r, x->state, &x->ew, x->epi.skip, &x->half);
  if (!st) st = colsum_plan(x);
  if (!st) st = comm_plan(x);
  if (!st) st = cw_pair_plan(x);
  if (st) {
    asg_cuda_exec_destroy(x);
    return st;
  }
  *exec = x;
  return ASG_OK;
}

static asg_status enqueue_all(cuda_exec *x) {
  for (int i = 0; i < x->r.plan.n_steps; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    asg_cuda_call c = step_call(x, i);
    if (x->ev) cudaEventRecord(x->ev[i], x->ctx->stream);
    comm_join(x, i);
    if (x->comm_stream && x->comm.slot[i] >= 0) {
      asg_status cs = comm_run(x, i, &c);
      if (cs) return comm_abandon(x, i + 1, cs);
      continue;
    }
    const int role = x->fuse.role ? x->fuse.role[i] : FUSE_RUN;
    const int ew = x->ew.role ? x->ew.role[i] : FUSE_RUN;
    if (role == FUSE_SKIP || ew == FUSE_SKIP) continue; /* done by a later launch */
    if (x->cs_skip && x->cs_skip[i]) continue;          /* done by an operand conversion */
    if (x->epi.skip && x->epi.skip[i]) continue;        /* done by a GEMM's epilogue */
    if (x->cw_skip && x->cw_skip[i]) continue;          /* launched with the cache write before */
    asg_status st;
    if (x->cw_pair && x->cw_pair[i] >= 0) {
      const asg_cuda_call cj = step_call(x, x->cw_pair[i]);
      st = asg_cuda_cache_write_pair(&c, &cj);
    } else if (ew == FUSE_LAUNCH) {
      st = asg_cuda_fused_run(&c, &x->ew, x->ew.group[i]);
    } else if (role == FUSE_LAUNCH) {
      const adam_group *g = &x->fuse.groups[x->fuse.group[i]];
      st = asg_cuda_adam_multi(&c, x->adam_dev + g->first, g->n, g->blocks, g->t, g->s);
    } else {
      st = asg_cuda_kernels()[s->op].run(&c);
      if (!st) st = aux_run(x, i, &c);
    }
    if (st) return comm_abandon(x, i, st);
    /* anomaly mode: steps whose own output is stored at their turn (not
     * 16-bit logits); a fused chain's inner values are not stored, so its
     * inputs are not inspected */
    if (x->finite && !(x->lh && x->lh[i] >= 0))
      asg_cuda_check_finite(s, x->r.out[i],
                            ew == FUSE_LAUNCH ? NULL : (const void *const *)x->r.in[i],
                            (unsigned)i + 1, x->finite, x->ctx->stream);
  }
  comm_join(x, x->r.plan.n_steps);  /* every collective is done at the end */
  if (x->ev && x->r.plan.n_steps) { /* attribute each interval to its step's op */
    cudaEventRecord(x->ev[x->r.plan.n_steps], x->ctx->stream);
    cudaEventSynchronize(x->ev[x->r.plan.n_steps]);
    /* the first run loads kernel modules lazily: not counted */
    double at = 0; /* ms from the run's first event */
    for (int i = 0; x->runs > 0 && i < x->r.plan.n_steps; i++) {
      float ms = 0;
      cudaEventElapsedTime(&ms, x->ev[i], x->ev[i + 1]);
      if (x->prof) asg__prof_step(x->prof, i, at, ms);
      at += ms;
      const int role = x->fuse.role ? x->fuse.role[i] : FUSE_RUN;
      const int ew = x->ew.role ? x->ew.role[i] : FUSE_RUN;
      if (ew != FUSE_RUN) { /* a chain's time is at its launch; listed apart */
        x->ew_ms += ms;
        x->ew_calls += ew == FUSE_LAUNCH;
        x->step_ms[i] += ms;
        continue;
      }
      /* a fused Adam launch counts as one adam_param; its other steps launch nothing */
      const asg_op op = role == FUSE_RUN ? x->r.plan.steps[i].op : ASG_OP_ADAM_PARAM;
      x->op_ms[op] += ms;
      x->step_ms[i] += ms;
      if (role != FUSE_SKIP && !(x->epi.skip && x->epi.skip[i]) && !(x->cs_skip && x->cs_skip[i]) &&
          !(x->cw_skip && x->cw_skip[i]))
        x->op_calls[op]++;
    }
    x->prof_runs += x->runs > 0;
  }
  if (x->random) asg_cuda_increment(x->run_dev, x->ctx->stream); /* only RNG kernels read it */
  return cudaGetLastError() == cudaSuccess ? ASG_OK
                                           : asg__error(ASG_ERR_BACKEND, "cuda: run count update");
}

static asg_status launch_run(cuda_exec *x, uint64_t run);

/* Runs the plan; with a fault record, waits for the run and reads the
 * record (one 16-byte copy): an out-of-range index fails the run, and the
 * record is reset for the next one (the graph keeps its address). */
/* Anomaly mode: waits for the run and reads the record; a non-finite value
 * fails the run, and the record is reset for the next one. */
static asg_status finite_take(cuda_exec *x, uint64_t run) {
  cudaStream_t st = x->ctx->stream;
  cudaError_t ce =
      cudaMemcpyAsync(x->finite_host, x->finite, sizeof *x->finite, cudaMemcpyDeviceToHost, st);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
  if (ce != cudaSuccess) return asg_cuda_err(ce, "reading the check_finite record");
  const asg_finite_fault f = *x->finite_host;
  if (f.step1 == 0) return ASG_OK;
  ce = cudaMemsetAsync(x->finite, 0, sizeof *x->finite, st);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
  if (ce != cudaSuccess) return asg_cuda_err(ce, "resetting the check_finite record");
  const int i = (int)f.step1 - 1; /* a fused chain's launch scanned no inputs */
  const bool ins = !(i < x->r.plan.n_steps && x->ew.role && x->ew.role[i] == FUSE_LAUNCH);
  return asg__finite_report(&x->r.plan, &f, run, ins);
}

asg_status asg_cuda_exec_run(void *e, uint64_t run) {
  cuda_exec *x = e;
  const char *coll = x->coll >= 0 ? x->r.plan.steps[x->coll].label : NULL;
  /* a broken communicator's NCCL side may be gone: launch nothing on it */
  asg_status as = coll ? asg__comm_usable(x->r.plan.comm, coll) : ASG_OK;
  if (as) return as;
  as = launch_run(x, run);
  if (!as && coll) as = asg_cuda_coll_after_run(x->r.plan.comm, coll);
  if (!as && x->finite) as = finite_take(x, run); /* an index error below wins */
  if ((as && as != ASG_ERR_NUMERIC) || !x->fault) return as;
  cudaStream_t st = x->ctx->stream;
  cudaError_t ce =
      cudaMemcpyAsync(x->fault_host, x->fault, sizeof *x->fault, cudaMemcpyDeviceToHost, st);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
  if (ce != cudaSuccess) return asg_cuda_err(ce, "reading the index check");
  const asg_index_fault f = *x->fault_host;
  if (f.step1 == 0) return as; /* OK, or check_finite's error */
  ce = cudaMemsetAsync(x->fault, 0, sizeof *x->fault, st);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
  if (ce != cudaSuccess) return asg_cuda_err(ce, "resetting the index check");
  if (f.step1 > (uint32_t)x->r.plan.n_steps)
    return asg__error(ASG_ERR_BACKEND, "cuda: index check names step %u of %d", f.step1,
                      x->r.plan.n_steps);
  return asg__index_error(&x->r.plan.steps[f.step1 - 1], f.value);
}

static asg_status launch_run(cuda_exec *x, uint64_t run) {
  cudaStream_t st = x->ctx->stream;
  cudaError_t ce;
  if (run != x->next_run) { /* the count was reset (checkpoint, tests): upload it */
    ce = cudaMemcpyAsync(x->run_dev, &run, sizeof run, cudaMemcpyHostToDevice, st);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
    if (ce != cudaSuccess) return asg_cuda_err(ce, "run count upload");
  }
  x->next_run = run + 1;
  if (x->graph_exec) {
    ce = cudaGraphLaunch(x->graph_exec, st);
    return ce == cudaSuccess ? ASG_OK : asg_cuda_err(ce, "graph launch");
  }
  if (x->use_graph && x->runs >= 1 && x->r.plan.n_steps > 0) {
    /* capture the second run (the first warmed up cuBLAS) and replay it */
    ce = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    if (ce == cudaSuccess) {
      asg_status as = enqueue_all(x);
      cudaGraph_t g = NULL;
      ce = cudaStreamEndCapture(st, &g);
      if (as != ASG_OK) {
        if (g) cudaGraphDestroy(g);
        return as;
      }
      if (ce == cudaSuccess) ce = cudaGraphInstantiate(&x->graph_exec, g, 0);
      if (ce == cudaSuccess) {
        x->graph = g;
        x->runs++;
        ce = cudaGraphLaunch(x->graph_exec, st);
        return ce == cudaSuccess ? ASG_OK : asg_cuda_err(ce, "graph launch");
      }
      if (g) cudaGraphDestroy(g);
    }
    cudaGetLastError(); /* capture unsupported here: fall back to launches */
    x->use_graph = false;
  }
  asg_status as = enqueue_all(x);
  if (as == ASG_OK) x->runs++;
  return as;
}

/* Profiles only with the events exec_create made (ASG_PLAN_PROFILE). */
const asg_plan *asg_cuda_exec_profile(void *e, asg__prof *prof) {
  cuda_exec *x = e;
  if (!x->ev) return NULL;
  x->prof = prof;
  return &x->r.plan;
}
