/* The CUDA backend: the device and its memory (buffers, uploads through a
 * copy stream, reads) and the dispatch table. Programs run in the executor
 * (cuda_exec.c) with the planners of cuda_exec.h: the optimizer's Adam
 * updates of many parameters as one kernel (ASG_CUDA_FUSE_ADAM=0 launches
 * them one by one), kept statistics, GEMM epilogues, shared 16-bit copies;
 * chains of elementwise steps run as one kernel each (cuda_fuse.c;
 * ASG_CUDA_FUSE=0 launches every step alone). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"

static asg_cuda_kernel table[ASG_OP_COUNT];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_fill(void) {
  asg_cuda_register_elementwise(table);
  asg_cuda_register_reduce(table);
  asg_cuda_register_matmul(table);
  asg_cuda_register_index(table);
  asg_cuda_register_nn(table);
  asg_cuda_register_rope(table);
  asg_cuda_register_batchnorm(table);
  asg_cuda_register_conv(table);
  asg_cuda_register_optim(table);
  asg_cuda_register_attention(table);
  asg_cuda_register_sample(table);
  asg_cuda_register_resample(table);
  asg_cuda_register_sort(table);
  asg_cuda_register_collective(table);
  asg_cuda_register_custom(table);
}

const asg_cuda_kernel *asg_cuda_kernels(void) { return table; }

asg_status asg_cuda_err(cudaError_t e, const char *what) {
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

static void staging_free(asg_cuda_ctx *c);

static void cuda_close(void *dev) {
  asg_cuda_ctx *c = dev;
  if (!c) return;
  if (c->stream) cudaStreamSynchronize(c->stream);
  staging_free(c);
  asg_cuda_gemm_cache_free(c->gemm_cache);
  if (c->blas_ws) cudaFree(c->blas_ws);
  if (c->lt) cublasLtDestroy(c->lt);
  if (c->blas) cublasDestroy(c->blas);
  if (c->stream) cudaStreamDestroy(c->stream);
  free(c->live);
  free(c);
}

/* This process's GPU: ASG_CUDA_DEVICE, else its rank on the machine as an
 * MPI launcher (Open MPI, MPICH) or torchrun sets it, modulo the GPUs (one
 * process per GPU for data-parallel training, asg/dist.h), else 0. */
static int pick_device(void) {
  const char *env = getenv("ASG_CUDA_DEVICE");
  if (env && *env) return atoi(env);
  const char *local[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "LOCAL_RANK"};
  for (size_t i = 0; i < sizeof local / sizeof *local; i++) {
    const char *v = getenv(local[i]);
    if (!v || !*v) continue;
    int r = atoi(v), n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1 || r < 0) {
      cudaGetLastError();
      return 0;
    }
    return r % n;
  }
  return 0;
}

static asg_status cuda_open(int nthreads, void **dev) {
  (void)nthreads;
  pthread_once(&table_once, table_fill);
  asg_cuda_ctx *c = calloc(1, sizeof *c);
  if (!c) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  c->device = pick_device();
  cudaError_t e = cudaSetDevice(c->device);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, c->device);
  int major = 0;
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device);
  const char *pdl = getenv("ASG_CUDA_PDL");
  c->pdl = major >= 9 && !(pdl && pdl[0] == '0');
  c->blas_ws_bytes = 32u << 20;
  if (e == cudaSuccess) e = cudaMalloc(&c->blas_ws, c->blas_ws_bytes);
  if (e != cudaSuccess) {
    cuda_close(c);
    return asg_cuda_err(e, "opening the device");
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

typedef struct asg_cuda_live {
  void *buf;
  size_t bytes;
} asg_cuda_live;

static asg_status cuda_alloc(void *dev, size_t bytes, void **buf) {
  asg_cuda_ctx *c = dev;
  bytes = (bytes + 255) & ~(size_t)255;
  if (!bytes) bytes = 256;
  if (c->n_live == c->cap_live) {
    size_t cap = c->cap_live ? 2 * c->cap_live : 64;
    asg_cuda_live *l = realloc(c->live, sizeof *l * cap);
    if (!l) {
      *buf = NULL;
      return asg__error(ASG_ERR_OOM, "cuda: out of memory");
    }
    c->live = l;
    c->cap_live = cap;
  }
  cudaError_t e = cudaMalloc(buf, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *buf = NULL;
    return asg__error(ASG_ERR_OOM, "cuda: cannot allocate %zu bytes of device memory (%s)", bytes,
                      cudaGetErrorString(e));
  }
  c->live[c->n_live++] = (asg_cuda_live){*buf, bytes};
  c->live_bytes += bytes;
  e = cudaMemset(*buf, 0, bytes);
  return e == cudaSuccess ? ASG_OK : asg_cuda_err(e, "memset");
}

static void cuda_free(void *dev, void *buf) {
  asg_cuda_ctx *c = dev;
  if (!buf) return;
  for (size_t i = c->n_live; i-- > 0;) /* newest first: specializations come and go */
    if (c->live[i].buf == buf) {
      c->live_bytes -= c->live[i].bytes;
      c->live[i] = c->live[--c->n_live];
      break;
    }
  cudaFree(buf);
}

static void cuda_memory_stats(void *dev, size_t *live_buffers, size_t *live_bytes) {
  const asg_cuda_ctx *c = dev;
  *live_buffers = c->n_live;
  *live_bytes = c->live_bytes;
}

/* ---- uploads ----
 * A write of up to kStageMax bytes is double-buffered: the data is copied
 * into one of two pinned host buffers kept for its destination, uploaded on
 * a copy stream into a device staging buffer (so the transfer overlaps the
 * step still running on the compute stream), and the compute stream copies
 * it device-to-device into place once the upload is done (ordered after the
 * queued work that reads the old contents). Feeding a step's inputs thus
 * never waits for the previous step. A buffer pair is reused two writes
 * later, after the events of its last use. Larger writes, and destinations
 * beyond kStageSlots, copy synchronously. */
enum { kStageSlots = 32 };
static const size_t kStageMax = 64u << 20;

typedef struct asg_cuda_staging {
  void *dst;
  size_t cap;
  void *host[2], *dev[2];
  cudaEvent_t up[2];   /* upload k (host[k] -> dev[k]) done */
  cudaEvent_t done[2]; /* copy dev[k] -> dst done */
  int next;
} asg_cuda_staging;

static void staging_free(asg_cuda_ctx *c) {
  for (int i = 0; i < c->n_staging; i++)
    for (int k = 0; k < 2; k++) {
      asg_cuda_staging *s = &c->staging[i];
      if (s->up[k]) cudaEventDestroy(s->up[k]);
      if (s->done[k]) cudaEventDestroy(s->done[k]);
      if (s->host[k]) cudaFreeHost(s->host[k]);
      if (s->dev[k]) cudaFree(s->dev[k]);
    }
  free(c->staging);
  c->staging = NULL;
  c->n_staging = 0;
  if (c->copy_stream) cudaStreamDestroy(c->copy_stream);
  c->copy_stream = NULL;
  if (c->bounce) cudaFreeHost(c->bounce);
  c->bounce = NULL;
}

/* The staging slot for dst with room for n bytes, or NULL (then copy
 * synchronously). */
static asg_cuda_staging *staging_for(asg_cuda_ctx *c, void *dst, size_t n) {
  if (n > kStageMax) return NULL;
  if (!c->copy_stream &&
      cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking) != cudaSuccess) {
    cudaGetLastError();
    c->copy_stream = NULL;
    return NULL;
  }
  asg_cuda_staging *s = NULL;
  for (int i = 0; i < c->n_staging && !s; i++)
    if (c->staging[i].dst == dst) s = &c->staging[i];
  if (!s) {
    if (!c->staging) c->staging = calloc(kStageSlots, sizeof *c->staging);
    if (!c->staging || c->n_staging == kStageSlots) return NULL;
    s = &c->staging[c->n_staging++];
    s->dst = dst;
    for (int k = 0; k < 2; k++)
      if (cudaEventCreateWithFlags(&s->up[k], cudaEventDisableTiming) != cudaSuccess ||
          cudaEventCreateWithFlags(&s->done[k], cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
      }
  }
  if (s->cap < n) { /* grow: wait for transfers from the old buffers first */
    for (int k = 0; k < 2; k++) {
      cudaEventSynchronize(s->up[k]);
      cudaEventSynchronize(s->done[k]);
      if (s->host[k]) cudaFreeHost(s->host[k]);
      if (s->dev[k]) cudaFree(s->dev[k]);
      s->host[k] = s->dev[k] = NULL;
    }
    s->cap = 0;
    for (int k = 0; k < 2; k++)
      if (cudaMallocHost(&s->host[k], n) != cudaSuccess ||
          cudaMalloc(&s->dev[k], n) != cudaSuccess) {
        cudaGetLastError();
        return NULL; /* no pinned or device memory to spare: synchronous copies */
      }
    s->cap = n;
  }
  return s;
}

static asg_status cuda_write(void *dev, void *buf, size_t off, const void *src, size_t n) {
  asg_cuda_ctx *c = dev;
  if (!n) return ASG_OK;
  char *dst = (char *)buf + off;
  asg_cuda_staging *s = staging_for(c, dst, n);
  cudaError_t e;
  if (s) {
    const int k = s->next;
    e = cudaEventSynchronize(s->up[k]); /* host[k]'s upload two writes ago is done */
    if (e == cudaSuccess) {
      memcpy(s->host[k], src, n);
      e = cudaStreamWaitEvent(c->copy_stream, s->done[k], 0); /* dev[k] was copied out */
    }
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(s->dev[k], s->host[k], n, cudaMemcpyHostToDevice, c->copy_stream);
    if (e == cudaSuccess) e = cudaEventRecord(s->up[k], c->copy_stream);
    if (e == cudaSuccess) e = cudaStreamWaitEvent(c->stream, s->up[k], 0);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(dst, s->dev[k], n, cudaMemcpyDeviceToDevice, c->stream);
    if (e == cudaSuccess) e = cudaEventRecord(s->done[k], c->stream);
    s->next ^= 1;
    return e == cudaSuccess ? ASG_OK : asg_cuda_err(e, "upload");
  }
  /* ordered after queued work that may read the old contents */
  e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? ASG_OK : asg_cuda_err(e, "upload");
}

/* Reads of up to kBounce bytes (losses, metrics, small outputs) go through
 * a pinned buffer: a pageable copy costs the caller several microseconds. */
static const size_t kBounce = 1u << 20;

static asg_status cuda_read(void *dev, void *buf, size_t off, void *dst, size_t n) {
  asg_cuda_ctx *c = dev;
  if (!n) return ASG_OK;
  if (n <= kBounce && !c->bounce && cudaMallocHost(&c->bounce, kBounce) != cudaSuccess) {
    cudaGetLastError();
    c->bounce = NULL;
  }
  void *to = n <= kBounce && c->bounce ? c->bounce : dst;
  cudaError_t e = cudaMemcpyAsync(to, (char *)buf + off, n, cudaMemcpyDeviceToHost, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  if (e == cudaSuccess && to != dst) memcpy(dst, to, n);
  return e == cudaSuccess ? ASG_OK : asg_cuda_err(e, "download");
}

static void cuda_describe(char *buf, size_t n) {
  int dev = pick_device();
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
    "cuda",
    cuda_available,
    cuda_supports,
    cuda_open,
    cuda_close,
    cuda_alloc,
    cuda_free,
    cuda_write,
    cuda_read,
    asg_cuda_exec_create,
    asg_cuda_exec_destroy,
    asg_cuda_exec_run,
    cuda_describe,
    cuda_memory_stats,
    asg_cuda_exec_profile,
};
