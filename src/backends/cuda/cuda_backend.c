/* The CUDA backend: device buffers, the dispatch table and the executor.
 * A run enqueues every step on one stream; from the second run on the whole
 * step is replayed as a captured CUDA graph (set ASG_CUDA_GRAPH=0 to launch
 * kernel by kernel). Runs do not synchronize: reading a buffer does.
 * ASG_PROFILE=1 times every step with CUDA events (launch by launch, with a
 * synchronization per run) and prints the time per op kind when the program
 * is freed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda.h"
#include "runtime/backend.h"

static asg_cuda_kernel table[ASG_OP_COUNT];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_fill(void) {
  asg_cuda_register_elementwise(table);
  asg_cuda_register_reduce(table);
  asg_cuda_register_matmul(table);
  asg_cuda_register_index(table);
  asg_cuda_register_nn(table);
  asg_cuda_register_conv(table);
  asg_cuda_register_optim(table);
  asg_cuda_register_attention(table);
}

static asg_status cuda_err(cudaError_t e, const char *what) {
  return asg__error(ASG_ERR_BACKEND, "cuda: %s: %s", what, cudaGetErrorString(e));
}

asg_status asg_cuda_check(const asg_cuda_call *c) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return ASG_OK;
  return asg__error(ASG_ERR_BACKEND, "cuda: %s: %s", c->s->label, cudaGetErrorString(e));
}

static bool cuda_available(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError(); /* clear the sticky "no device" error */
    asg__error(ASG_ERR_UNSUPPORTED, "cuda: no usable CUDA device (%s)",
               e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
    return false;
  }
  return true;
}

static bool cuda_supports(asg_op op) {
  pthread_once(&table_once, table_fill);
  if (op == ASG_OP_INPUT || op == ASG_OP_CONSTANT || op == ASG_OP_VARIABLE) return true;
  return (unsigned)op < ASG_OP_COUNT && table[op].run != NULL;
}

static void cuda_close(void *dev) {
  asg_cuda_ctx *c = dev;
  if (!c) return;
  if (c->blas_ws) cudaFree(c->blas_ws);
  if (c->lt) cublasLtDestroy(c->lt);
  if (c->blas) cublasDestroy(c->blas);
  if (c->stream) cudaStreamDestroy(c->stream);
  free(c);
}

static asg_status cuda_open(int nthreads, void **dev) {
  (void)nthreads;
  pthread_once(&table_once, table_fill);
  asg_cuda_ctx *c = calloc(1, sizeof *c);
  if (!c) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  const char *env = getenv("ASG_CUDA_DEVICE");
  c->device = env ? atoi(env) : 0;
  cudaError_t e = cudaSetDevice(c->device);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, c->device);
  c->blas_ws_bytes = 32u << 20;
  if (e == cudaSuccess) e = cudaMalloc(&c->blas_ws, c->blas_ws_bytes);
  if (e != cudaSuccess) {
    cuda_close(c);
    return cuda_err(e, "opening the device");
  }
  if (cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS ||
      cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS ||
      cublasSetStream(c->blas, c->stream) != CUBLAS_STATUS_SUCCESS ||
      cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_bytes) != CUBLAS_STATUS_SUCCESS) {
    cuda_close(c);
    return asg__error(ASG_ERR_BACKEND, "cuda: cannot initialize cuBLAS");
  }
  *dev = c;
  return ASG_OK;
}

static asg_status cuda_alloc(void *dev, size_t bytes, void **buf) {
  (void)dev;
  bytes = (bytes + 255) & ~(size_t)255;
  cudaError_t e = cudaMalloc(buf, bytes ? bytes : 256);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *buf = NULL;
    return asg__error(ASG_ERR_OOM, "cuda: cannot allocate %zu bytes of device memory (%s)", bytes,
                      cudaGetErrorString(e));
  }
  e = cudaMemset(*buf, 0, bytes ? bytes : 256);
  return e == cudaSuccess ? ASG_OK : cuda_err(e, "memset");
}

static void cuda_free(void *dev, void *buf) {
  (void)dev;
  if (buf) cudaFree(buf);
}

static asg_status cuda_write(void *dev, void *buf, size_t off, const void *src, size_t n) {
  asg_cuda_ctx *c = dev;
  if (!n) return ASG_OK;
  /* ordered after queued work that may read the old contents */
  cudaError_t e = cudaMemcpyAsync((char *)buf + off, src, n, cudaMemcpyHostToDevice, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? ASG_OK : cuda_err(e, "upload");
}

static asg_status cuda_read(void *dev, void *buf, size_t off, void *dst, size_t n) {
  asg_cuda_ctx *c = dev;
  if (!n) return ASG_OK;
  cudaError_t e = cudaMemcpyAsync(dst, (char *)buf + off, n, cudaMemcpyDeviceToHost, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? ASG_OK : cuda_err(e, "download");
}

typedef struct cuda_exec {
  asg_cuda_ctx *ctx;
  asg_resolved r; /* the plan with addresses */
  int n_ev;       /* events created (profiling) */
  void *ws;
  uint64_t *run_dev; /* device copy of the run count, incremented by each run */
  uint64_t next_run; /* what run_dev holds when no one reset the count */
  cudaGraph_t graph;
  cudaGraphExec_t graph_exec;
  int runs;
  bool use_graph, tf32;
  /* profiling (ASG_PROFILE=1) */
  cudaEvent_t *ev; /* n_steps + 1 events */
  double op_ms[ASG_OP_COUNT];
  int64_t op_calls[ASG_OP_COUNT];
  int prof_runs;
} cuda_exec;

static void profile_report(const cuda_exec *x) {
  double total = 0;
  int order[ASG_OP_COUNT], n = 0;
  for (int i = 0; i < ASG_OP_COUNT; i++)
    if (x->op_calls[i]) order[n++] = i, total += x->op_ms[i];
  for (int i = 1; i < n; i++) /* by time, descending */
    for (int j = i; j > 0 && x->op_ms[order[j]] > x->op_ms[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  fprintf(stderr, "asg profile (cuda): %d runs, %.3f ms of kernels per run\n", x->prof_runs,
          x->prof_runs ? total / x->prof_runs : 0);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "  %-28s %9.3f ms/run %6.1f%%  %lld launches/run\n",
            asg__op_name((asg_op)order[i]), x->op_ms[order[i]] / x->prof_runs,
            100 * x->op_ms[order[i]] / (total > 0 ? total : 1),
            (long long)(x->op_calls[order[i]] / x->prof_runs));
}

static void cuda_exec_destroy(void *e) {
  cuda_exec *x = e;
  if (!x) return;
  if (x->ctx && x->ctx->stream) cudaStreamSynchronize(x->ctx->stream);
  if (x->ev) {
    if (x->prof_runs) profile_report(x);
    for (int i = 0; i < x->n_ev; i++)
      cudaEventDestroy(x->ev[i]);
    free(x->ev);
  }
  if (x->graph_exec) cudaGraphExecDestroy(x->graph_exec);
  if (x->graph) cudaGraphDestroy(x->graph);
  asg__resolved_free(&x->r);
  if (x->ws) cudaFree(x->ws);
  if (x->run_dev) cudaFree(x->run_dev);
  free(x);
}

static asg_status cuda_exec_create(void *dev, const asg_plan *plan, const asg_buffers *bufs,
                                   void **exec) {
  cuda_exec *x = calloc(1, sizeof *x);
  if (!x) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  x->ctx = dev;
  const char *env = getenv("ASG_CUDA_GRAPH"), *prof = getenv("ASG_PROFILE");
  x->use_graph = !(env && env[0] == '0');
  x->tf32 = plan->flags & ASG_PLAN_TF32;
  asg_status st = asg__resolve_plan(plan, bufs, &x->r);
  int n = x->r.plan.n_steps;
  size_t ws = 0;
  for (int i = 0; i < n && !st; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    if (!table[s->op].run)
      st = asg__error(ASG_ERR_UNSUPPORTED, "cuda: no kernel for %s", s->label);
    else if (table[s->op].ws) {
      size_t w = table[s->op].ws(s);
      if (w > ws) ws = w;
    }
  }
  if (!st && prof && prof[0] && prof[0] != '0') { /* per-step events, no graph */
    x->use_graph = false;
    x->ev = calloc((size_t)n + 1, sizeof *x->ev);
    if (!x->ev) st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
    for (; !st && x->n_ev <= n; x->n_ev++)
      if (cudaEventCreate(&x->ev[x->n_ev]) != cudaSuccess)
        st = asg__error(ASG_ERR_BACKEND, "cuda: cannot create profiling events");
  }
  cudaError_t e = cudaSuccess;
  if (!st) e = cudaMalloc((void **)&x->run_dev, sizeof(uint64_t));
  if (!st && e == cudaSuccess) e = cudaMemset(x->run_dev, 0, sizeof(uint64_t));
  if (!st && e == cudaSuccess && ws) e = cudaMalloc(&x->ws, (ws + 255) & ~(size_t)255);
  if (!st && e != cudaSuccess) {
    cudaGetLastError();
    st = asg__error(ASG_ERR_OOM, "cuda: cannot allocate the program's workspace (%s)",
                    cudaGetErrorString(e));
  }
  if (st) {
    cuda_exec_destroy(x);
    return st;
  }
  *exec = x;
  return ASG_OK;
}

static asg_status enqueue_all(cuda_exec *x) {
  for (int i = 0; i < x->r.plan.n_steps; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    asg_cuda_call c = {s, x->r.out[i], x->r.in[i], x->ws, x->run_dev, x->ctx, x->tf32};
    if (x->ev) cudaEventRecord(x->ev[i], x->ctx->stream);
    asg_status st = table[s->op].run(&c);
    if (st) return st;
  }
  if (x->ev && x->r.plan.n_steps) { /* attribute each interval to its step's op */
    cudaEventRecord(x->ev[x->r.plan.n_steps], x->ctx->stream);
    cudaEventSynchronize(x->ev[x->r.plan.n_steps]);
    for (int i = 0; i < x->r.plan.n_steps; i++) {
      float ms = 0;
      cudaEventElapsedTime(&ms, x->ev[i], x->ev[i + 1]);
      x->op_ms[x->r.plan.steps[i].op] += ms;
      x->op_calls[x->r.plan.steps[i].op]++;
    }
    x->prof_runs++;
  }
  asg_cuda_increment(x->run_dev, x->ctx->stream);
  return cudaGetLastError() == cudaSuccess ? ASG_OK
                                           : asg__error(ASG_ERR_BACKEND, "cuda: run count update");
}

static asg_status cuda_exec_run(void *e, uint64_t run) {
  cuda_exec *x = e;
  cudaStream_t st = x->ctx->stream;
  cudaError_t ce;
  if (run != x->next_run) { /* the count was reset (checkpoint, tests): upload it */
    ce = cudaMemcpyAsync(x->run_dev, &run, sizeof run, cudaMemcpyHostToDevice, st);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
    if (ce != cudaSuccess) return cuda_err(ce, "run count upload");
  }
  x->next_run = run + 1;
  if (x->graph_exec) {
    ce = cudaGraphLaunch(x->graph_exec, st);
    return ce == cudaSuccess ? ASG_OK : cuda_err(ce, "graph launch");
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
        return ce == cudaSuccess ? ASG_OK : cuda_err(ce, "graph launch");
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

static void cuda_describe(char *buf, size_t n) {
  const char *env = getenv("ASG_CUDA_DEVICE");
  int dev = env ? atoi(env) : 0;
  struct cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
    cudaGetLastError();
    snprintf(buf, n, "CUDA device %d", dev);
    return;
  }
  snprintf(buf, n, "%s: compute capability %d.%d, %d SMs, %.1f GiB", p.name, p.major, p.minor,
           p.multiProcessorCount, (double)p.totalGlobalMem / (1 << 30));
}

const asg_backend asg__backend_cuda = {
    "cuda",        cuda_available,   cuda_supports,     cuda_open,
    cuda_close,    cuda_alloc,       cuda_free,         cuda_write,
    cuda_read,     cuda_exec_create, cuda_exec_destroy, cuda_exec_run,
    cuda_describe,
};
