/* The CUDA backend: device buffers, the dispatch table and the executor.
 * A run enqueues every step on one stream; from the second run on the whole
 * step is replayed as a captured CUDA graph (set ASG_CUDA_GRAPH=0 to launch
 * kernel by kernel). Runs do not synchronize: reading a buffer does.
 * ASG_PROFILE=1 times every step with CUDA events (launch by launch, with a
 * synchronization per run; the first run is not counted) and prints the time
 * per op kind when the program is freed; ASG_PROFILE=2 adds the slowest
 * steps with their shapes. The optimizer's Adam updates of many parameters run as one
 * kernel (multi-tensor apply, below); ASG_CUDA_FUSE_ADAM=0 launches them one
 * by one. Chains of elementwise steps run as one kernel each (cuda_fuse.c;
 * ASG_CUDA_FUSE=0 launches every step alone). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda.h"
#include "dist/comm_internal.h"
#include "runtime/backend.h"
#include "runtime/layout.h"

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
  asg_cuda_register_sample(table);
  asg_cuda_register_collective(table);
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
  return e == cudaSuccess ? ASG_OK : cuda_err(e, "memset");
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
    return e == cudaSuccess ? ASG_OK : cuda_err(e, "upload");
  }
  /* ordered after queued work that may read the old contents */
  e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? ASG_OK : cuda_err(e, "upload");
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
  return e == cudaSuccess ? ASG_OK : cuda_err(e, "download");
}

/* ---- multi-tensor Adam: grouping the optimizer's update steps ----
 * Each parameter's update is a triple of steps m' = adam_moment(m, g),
 * v' = adam_moment2(v, g), p' = adam_param(p, m', v', lr, bc1, bc2). Triples
 * of one (T, S) dtype pair are grouped; a group runs as one kernel at the
 * position of its last step (an adam_param) and its other steps launch
 * nothing. Moving a grouped step s later past a step X is safe when X
 * reads nothing s writes and writes nothing s reads or writes: each step X
 * between a group's first and last step is checked so against the grouped
 * steps before X, and the triples of a group against each other (they run
 * in one kernel). Any two steps whose order changes are then independent,
 * also when groups of different dtype pairs interleave (a grouped step
 * that moves past a step of another group was checked against it there). */
enum { FUSE_RUN = 0, FUSE_SKIP = 1, FUSE_LAUNCH = 2 };

typedef struct adam_group {
  int first, n;   /* entries of the table */
  int64_t blocks; /* grid size (0: every tensor is empty) */
  asg_dtype t, s;
} adam_group;

typedef struct adam_fusion {
  signed char *role; /* per step: FUSE_RUN / FUSE_SKIP / FUSE_LAUNCH */
  int *group;        /* per FUSE_LAUNCH step: its group */
  adam_group *groups;
  int n_groups;
  asg_cuda_adam_tensor *tab; /* host table, the groups' entries one after another */
  int n_tab;
} adam_fusion;

typedef asg_cuda_range brange;

typedef struct branges {
  brange *r;
  int n, cap;
} branges;

static bool br_push(branges *s, const void *p, size_t bytes) {
  if (!bytes) return true; /* empty ranges conflict with nothing */
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 16;
    brange *nr = realloc(s->r, sizeof *nr * (size_t)cap);
    if (!nr) return false;
    s->r = nr;
    s->cap = cap;
  }
  s->r[s->n++] = (brange){(uintptr_t)p, (uintptr_t)p + bytes};
  return true;
}

static bool br_hit(const branges *s, brange x) {
  for (int i = 0; i < s->n; i++)
    if (asg_cuda_overlap(s->r[i], x)) return true;
  return false;
}

static bool br_hits(const branges *a, const branges *b) {
  for (int i = 0; i < a->n; i++)
    if (br_hit(b, a->r[i])) return true;
  return false;
}

static bool br_append(branges *d, const branges *s) {
  for (int i = 0; i < s->n; i++)
    if (!br_push(d, (const void *)s->r[i].lo, s->r[i].hi - s->r[i].lo)) return false;
  return true;
}

/* The bytes step i reads and writes. */
static bool step_ranges(const asg_resolved *r, int i, branges *rd, branges *wr) {
  const asg_step *s = &r->plan.steps[i];
  for (int j = 0; j < s->n_in; j++)
    if (!br_push(rd, r->in[i][j], asg__tdesc_bytes(&s->in[j]))) return false;
  return br_push(wr, r->out[i], asg__tdesc_bytes(&s->out));
}

typedef struct adam_triple {
  int a, b, q; /* adam_moment, adam_moment2, adam_param steps */
} adam_triple;

static bool is_float(asg_dtype d) { return d == ASG_F32 || d == ASG_F64; }

/* Whether triple t is well formed and can run as one elementwise pass:
 * dtypes, sizes, the same g for both moments, and aliasing within it (an
 * output may only be the very buffer of the input it replaces: m' of m, v'
 * of v, p' of p; nothing else the triple reads may touch its outputs). */
static bool triple_ok(const asg_resolved *r, adam_triple t) {
  const asg_step *a = &r->plan.steps[t.a], *b = &r->plan.steps[t.b], *q = &r->plan.steps[t.q];
  if (a->n_in != 2 || b->n_in != 2 || q->n_in != 6) return false;
  const asg_dtype T = q->out.dtype, S = q->in[3].dtype;
  if (!is_float(T) || !is_float(S)) return false;
  const int64_t n = asg_shape_numel(q->out.shape);
  const asg_tdesc *el[] = {&a->out,   &a->in[0], &a->in[1], &b->out,  &b->in[0],
                           &b->in[1], &q->in[0], &q->in[1], &q->in[2]};
  for (size_t k = 0; k < sizeof el / sizeof *el; k++)
    if (el[k]->dtype != T || asg_shape_numel(el[k]->shape) != n) return false;
  for (int k = 3; k < 6; k++)
    if (q->in[k].dtype != S || asg_shape_numel(q->in[k].shape) != 1) return false;
  if (r->in[t.a][1] != r->in[t.b][1] || r->in[t.q][1] != r->out[t.a] ||
      r->in[t.q][2] != r->out[t.b])
    return false;
  const size_t bytes = (size_t)n * asg_dtype_size(T), sb = asg_dtype_size(S);
  if (!bytes) return true;
  const brange w[3] = {{(uintptr_t)r->out[t.a], (uintptr_t)r->out[t.a] + bytes},
                       {(uintptr_t)r->out[t.b], (uintptr_t)r->out[t.b] + bytes},
                       {(uintptr_t)r->out[t.q], (uintptr_t)r->out[t.q] + bytes}};
  /* m, v, p: each may be exactly its own output and must not touch the others */
  const void *own[3] = {r->in[t.a][0], r->in[t.b][0], r->in[t.q][0]};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++) {
      const uintptr_t lo = (uintptr_t)own[i];
      const bool hit = w[k].lo < lo + bytes && lo < w[k].hi;
      if (i == k ? hit && lo != w[k].lo : hit) return false;
      if (i < k && w[i].lo < w[k].hi && w[k].lo < w[i].hi) return false; /* outputs disjoint */
    }
  /* g and the scalars touch no output */
  const brange other[4] = {{(uintptr_t)r->in[t.a][1], (uintptr_t)r->in[t.a][1] + bytes},
                           {(uintptr_t)r->in[t.q][3], (uintptr_t)r->in[t.q][3] + sb},
                           {(uintptr_t)r->in[t.q][4], (uintptr_t)r->in[t.q][4] + sb},
                           {(uintptr_t)r->in[t.q][5], (uintptr_t)r->in[t.q][5] + sb}};
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < 3; k++)
      if (w[k].lo < other[i].hi && other[i].lo < w[k].hi) return false;
  return true;
}

/* A group being built: its triples and the bytes its steps read and write. */
typedef struct open_group {
  adam_triple *t;
  int n, cap;
  int last; /* position of the last step so far */
  branges rd, wr;
} open_group;

static void og_free(open_group *g) {
  free(g->t);
  free(g->rd.r), free(g->wr.r);
}

/* Tries to add triple t, whose steps all come after g->last, to g (an empty
 * g: g->last just before the triple's first step). Each step X after
 * g->last and before t.q that is not t's is checked against every grouped
 * step that comes before X: the group's and t's earlier ones (the steps
 * after X keep their order with X). Returns 1 if added, 0 if t cannot be,
 * -1 when out of memory. */
static int og_extend(const asg_resolved *r, open_group *g, adam_triple t) {
  branges trd = {0}, twr = {0}, prd = {0}, pwr = {0}, xrd = {0}, xwr = {0};
  int res = -1;
  if (!step_ranges(r, t.a, &trd, &twr) || !step_ranges(r, t.b, &trd, &twr) ||
      !step_ranges(r, t.q, &trd, &twr))
    goto out;
  res = 0;
  /* t against the triples already grouped (they run in the same kernel) */
  if (br_hits(&twr, &g->wr) || br_hits(&twr, &g->rd) || br_hits(&trd, &g->wr)) goto out;
  for (int i = g->last + 1; i < t.q; i++) {
    if (i == t.a || i == t.b) { /* prd, pwr: t's steps before the next X */
      if (!step_ranges(r, i, &prd, &pwr)) {
        res = -1;
        goto out;
      }
      continue;
    }
    xrd.n = xwr.n = 0;
    if (!step_ranges(r, i, &xrd, &xwr)) {
      res = -1;
      goto out;
    }
    if (br_hits(&xrd, &g->wr) || br_hits(&xrd, &pwr) || br_hits(&xwr, &g->wr) ||
        br_hits(&xwr, &pwr) || br_hits(&xwr, &g->rd) || br_hits(&xwr, &prd))
      goto out;
  }
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 8;
    adam_triple *nt = realloc(g->t, sizeof *nt * (size_t)cap);
    if (!nt) {
      res = -1;
      goto out;
    }
    g->t = nt;
    g->cap = cap;
  }
  if (!br_append(&g->rd, &trd) || !br_append(&g->wr, &twr)) {
    res = -1;
    goto out;
  }
  g->t[g->n++] = t;
  g->last = t.q;
  res = 1;
out:
  free(trd.r), free(twr.r), free(prd.r), free(pwr.r), free(xrd.r), free(xwr.r);
  return res;
}

static void fusion_free(adam_fusion *f) {
  free(f->role), free(f->group), free(f->groups), free(f->tab);
  memset(f, 0, sizeof *f);
}

/* Emits open group g (if any) as a launch. */
static bool fusion_emit(const asg_resolved *r, adam_fusion *f, open_group *g) {
  if (!g->n) return true;
  adam_group *ng = realloc(f->groups, sizeof *ng * (size_t)(f->n_groups + 1));
  if (!ng) return false;
  f->groups = ng;
  asg_cuda_adam_tensor *nt = realloc(f->tab, sizeof *nt * (size_t)(f->n_tab + g->n));
  if (!nt) return false;
  f->tab = nt;
  adam_group *gr = &f->groups[f->n_groups];
  const asg_step *q0 = &r->plan.steps[g->t[0].q];
  *gr = (adam_group){f->n_tab, 0, 0, q0->out.dtype, q0->in[3].dtype};
  for (int k = 0; k < g->n; k++) {
    const adam_triple t = g->t[k];
    const asg_step *a = &r->plan.steps[t.a], *b = &r->plan.steps[t.b], *q = &r->plan.steps[t.q];
    const int64_t n = asg_shape_numel(q->out.shape);
    if (n <= 0) continue; /* nothing to do, as the separate kernels */
    f->tab[gr->first + gr->n++] = (asg_cuda_adam_tensor){
        .m_out = r->out[t.a],
        .v_out = r->out[t.b],
        .p_out = r->out[t.q],
        .m = r->in[t.a][0],
        .v = r->in[t.b][0],
        .p = r->in[t.q][0],
        .g = r->in[t.a][1],
        .lr = r->in[t.q][3],
        .bc1 = r->in[t.q][4],
        .bc2 = r->in[t.q][5],
        .beta1 = a->attr.f[0],
        .one_m1 = a->attr.f[1],
        .beta2 = b->attr.f[0],
        .one_m2 = b->attr.f[1],
        .eps = q->attr.f[0],
        .wd = q->attr.f[1],
        .n = n,
    };
  }
  gr->blocks = asg_cuda_adam_layout(f->tab + gr->first, gr->n, gr->t);
  if (gr->blocks > 0x7fffffff) { /* beyond one grid: leave the steps alone */
    g->n = 0;
    return true;
  }
  f->n_tab += gr->n;
  for (int k = 0; k < g->n; k++)
    f->role[g->t[k].a] = f->role[g->t[k].b] = f->role[g->t[k].q] = FUSE_SKIP;
  f->role[g->last] = FUSE_LAUNCH;
  f->group[g->last] = f->n_groups++;
  g->n = 0;
  return true;
}

/* Finds the Adam triples of the plan and groups them (see above). */
static asg_status adam_fuse_plan(const asg_resolved *r, adam_fusion *f) {
  const int n = r->plan.n_steps;
  memset(f, 0, sizeof *f);
  f->role = calloc((size_t)n + 1, 1);
  f->group = calloc((size_t)n + 1, sizeof *f->group);
  char *used = calloc((size_t)n + 1, 1);
  open_group og[4] = {{0}}; /* by (T, S): f32/f64 x f32/f64 */
  asg_status st = ASG_OK;
  if (!f->role || !f->group || !used) goto oom;
  for (int q = 0; q < n; q++) {
    const asg_step *s = &r->plan.steps[q];
    if (s->op != ASG_OP_ADAM_PARAM || s->n_in != 6) continue;
    /* the latest moment steps before q that wrote its inputs 1 and 2 */
    adam_triple t = {-1, -1, q};
    for (int i = q - 1; i >= 0 && (t.a < 0 || t.b < 0); i--) {
      const asg_op op = r->plan.steps[i].op;
      if (t.a < 0 && op == ASG_OP_ADAM_MOMENT && r->out[i] == r->in[q][1]) t.a = i;
      if (t.b < 0 && op == ASG_OP_ADAM_MOMENT2 && r->out[i] == r->in[q][2]) t.b = i;
    }
    if (t.a < 0 || t.b < 0 || used[t.a] || used[t.b] || !triple_ok(r, t)) continue;
    const int c = (s->out.dtype == ASG_F64) * 2 + (s->in[3].dtype == ASG_F64);
    open_group *g = &og[c];
    const int first = t.a < t.b ? t.a : t.b;
    int res = 0;
    if (g->n && first > g->last) res = og_extend(r, g, t);
    if (res == 0) { /* close the group, start one with t */
      if (!fusion_emit(r, f, g)) goto oom;
      g->n = g->rd.n = g->wr.n = 0;
      g->last = first - 1;
      res = og_extend(r, g, t);
    }
    if (res < 0) goto oom;
    if (res > 0) used[t.a] = used[t.b] = 1;
  }
  for (int c = 0; c < 4; c++)
    if (!fusion_emit(r, f, &og[c])) goto oom;
  goto done;
oom:
  st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
  fusion_free(f);
done:
  for (int c = 0; c < 4; c++)
    og_free(&og[c]);
  free(used);
  return st;
}

/* ---- forward statistics kept for a later step (asg_cuda_call.stats_*) ----
 * Backward steps recompute what their forward step computed over the same
 * inputs: the softmax CE's and attention's row log-sum-exp (for GPT-2's
 * [8192, 50304] logits a whole pass over 1.6 GB), layernorm's row mean and
 * 1/std. When step j has such a forward step i with the same inputs (the
 * bytes, dtypes and shapes), attributes, and no step between them writes
 * those inputs, i keeps the statistics in a buffer and j reads them. */
typedef struct stats_pairs {
  void **out;      /* per step: where it writes its statistics (or NULL) */
  const void **in; /* per step: where it reads them (or NULL) */
  void **bufs;     /* device buffers, one per forward step */
  int n_bufs;
} stats_pairs;

typedef struct stats_rule {
  asg_op fwd, reader;
  int n_match;
  int match[2][2]; /* (forward input, reader input) that must be the same tensor */
} stats_rule;

static const stats_rule stats_rules[] = {
    {ASG_OP_SOFTMAX_CE, ASG_OP_SOFTMAX_CE_BWD, 2, {{0, 0}, {1, 1}}},    /* logits, labels */
    {ASG_OP_ATTENTION, ASG_OP_ATTENTION_LSE, 2, {{0, 0}, {1, 1}}},      /* q, k */
    {ASG_OP_LAYERNORM, ASG_OP_LAYERNORM_BWD_X, 1, {{0, 1}, {0, 0}}},    /* x */
    {ASG_OP_LAYERNORM, ASG_OP_LAYERNORM_BWD_GAMMA, 1, {{0, 1}, {0, 0}}} /* x */
};

/* Bytes of the statistics of forward step f: per row of its first input
 * (CE: the max and the log of the sum of exp(x - max), then the count of
 * rows taken; layernorm: mean and 1/std; as doubles), attention: the lse
 * tensor itself (the reader's output). 0: nothing to keep. */
static size_t stats_bytes(const asg_step *f, const asg_step *reader) {
  if (f->op == ASG_OP_ATTENTION) return asg__tdesc_bytes(&reader->out);
  const asg_shape sh = f->in[0].shape;
  const int64_t C = sh.ndim ? sh.dims[sh.ndim - 1] : 0;
  if (C <= 0) return 0;
  const size_t rows = (size_t)(asg_shape_numel(sh) / C);
  return (f->op == ASG_OP_LAYERNORM ? 2 * rows : 2 * rows + 1) * sizeof(double); /* CE: + count */
}

/* Copies that do nothing because their output is their input (views,
 * in-place assigns): they neither write nor, really, read. */
static bool noop_step(const asg_resolved *r, int i) {
  const asg_step *s = &r->plan.steps[i];
  return ((s->op == ASG_OP_RESHAPE || s->op == ASG_OP_STOP_GRADIENT) && r->out[i] == r->in[i][0]) ||
         (s->op == ASG_OP_ASSIGN && r->out[i] == r->in[i][1]);
}

/* Bytes step i writes. */
static asg_cuda_range written_range(const asg_resolved *r, int i) {
  return noop_step(r, i) ? (asg_cuda_range){0, 0} : asg_cuda_out_range(r, i);
}

static bool same_desc(const asg_tdesc *a, const asg_tdesc *b) {
  return a->dtype == b->dtype && asg_shape_equal(a->shape, b->shape);
}

/* Step i is step j's forward under rule u. */
static bool stats_partner(const asg_resolved *r, const stats_rule *u, int i, int j) {
  const asg_step *f = &r->plan.steps[i], *b = &r->plan.steps[j];
  if (f->op != u->fwd || f->attr.f[0] != b->attr.f[0] || f->attr.i[0] != b->attr.i[0] ||
      f->out.dtype != b->out.dtype)
    return false;
  for (int m = 0; m < u->n_match; m++) {
    const int fi = u->match[m][0], bi = u->match[m][1];
    if (fi >= f->n_in || bi >= b->n_in || r->in[i][fi] != r->in[j][bi] ||
        !same_desc(&f->in[fi], &b->in[bi]))
      return false;
    for (int k = i + 1; k < j; k++)
      if (asg_cuda_overlap(written_range(r, k), asg_cuda_in_range(r, i, fi))) return false;
  }
  if (u->fwd == ASG_OP_ATTENTION) { /* the same key mask (the last input), or none on both */
    const bool mf = f->n_in > 3, mb = b->n_in > 2;
    if (mf != mb) return false;
    if (mf && (r->in[i][3] != r->in[j][2] || !same_desc(&f->in[3], &b->in[2]))) return false;
    for (int k = i + 1; mf && k < j; k++)
      if (asg_cuda_overlap(written_range(r, k), asg_cuda_in_range(r, i, 3))) return false;
  }
  return true;
}

static void stats_free(stats_pairs *p) {
  for (int i = 0; i < p->n_bufs; i++)
    cudaFree(p->bufs[i]);
  free(p->bufs), free(p->out), free(p->in);
  memset(p, 0, sizeof *p);
}

static asg_status stats_plan(const asg_resolved *r, stats_pairs *p) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_KEEP_STATS");
  if (env && env[0] == '0') return ASG_OK;
  p->out = calloc((size_t)n + 1, sizeof *p->out);
  p->in = calloc((size_t)n + 1, sizeof *p->in);
  p->bufs = calloc((size_t)n + 1, sizeof *p->bufs);
  if (!p->out || !p->in || !p->bufs) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  for (int j = 0; j < n; j++) {
    const stats_rule *u = NULL;
    for (size_t k = 0; k < sizeof stats_rules / sizeof *stats_rules; k++)
      if (stats_rules[k].reader == r->plan.steps[j].op) u = &stats_rules[k];
    if (!u) continue;
    for (int i = j - 1; i >= 0; i--) {
      if (!stats_partner(r, u, i, j)) continue;
      const size_t bytes = stats_bytes(&r->plan.steps[i], &r->plan.steps[j]);
      if (!bytes) break;
      if (!p->out[i]) { /* the first reader of step i allocates its buffer */
        if (cudaMalloc(&p->bufs[p->n_bufs], bytes) != cudaSuccess) {
          cudaGetLastError();
          return asg__error(ASG_ERR_OOM, "cuda: cannot allocate %zu bytes of kept statistics",
                            bytes);
        }
        p->out[i] = p->bufs[p->n_bufs++];
      }
      p->in[j] = p->out[i];
      break;
    }
  }
  return ASG_OK;
}

/* ---- layernorm backward in one pass ----
 * layernorm_bwd_x(dy, x, gamma) and layernorm_bwd_gamma(dy, x) read the same
 * two [R, C] tensors; when both are in the plan, the first computes the
 * second's result too (cuda_nn.cu, ln_bwd_xg_kernel) and the second launches
 * nothing; so does a sum of dy over every axis but the last (the layer's
 * beta gradient), when there is one. Their outputs are then written when
 * the first runs, so no step from the first to each of them may write dy or
 * x, or read or write that output's bytes. ASG_CUDA_FUSE_LN=0 turns it off. */
enum { LN_XG_MAX_C = 1024, LN_XG_WINDOW = 8 };

/* Step j's output may be written at step i's turn, and its first nin
 * inputs read there. */
static bool ln_early_ok(const asg_resolved *r, int i, int j, int nin) {
  const asg_cuda_range o = asg_cuda_out_range(r, j);
  for (int k = i; k < j; k++) {
    const asg_cuda_range w = written_range(r, k);
    if (asg_cuda_overlap(w, o)) return false;
    for (int m = 0; m < nin && k > i; m++)
      if (asg_cuda_overlap(w, asg_cuda_in_range(r, j, m))) return false;
    for (int m = 0; m < r->plan.steps[k].n_in && !noop_step(r, k); m++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, k, m), o)) return false;
  }
  return true;
}

/* smem_max: the device's shared memory a block may opt in to; the one-pass
 * kernel stages [2][8][C] values of the dtype there (cuda_nn.cu). */
static bool ln_partner(const asg_resolved *r, int i, int j, size_t smem_max) {
  const asg_step *a = &r->plan.steps[i], *b = &r->plan.steps[j];
  if (a->op != ASG_OP_LAYERNORM_BWD_X || b->op != ASG_OP_LAYERNORM_BWD_GAMMA ||
      a->attr.f[0] != b->attr.f[0] || a->out.dtype != b->out.dtype ||
      (a->out.dtype != ASG_F32 && a->out.dtype != ASG_F64))
    return false;
  for (int m = 0; m < 2; m++)
    if (r->in[i][m] != r->in[j][m] || !same_desc(&a->in[m], &b->in[m])) return false;
  const asg_shape sh = a->in[1].shape;
  const int64_t C = sh.ndim ? sh.dims[sh.ndim - 1] : 0;
  if (C < 1 || C > LN_XG_MAX_C || asg_shape_numel(sh) == 0 ||
      16 * (size_t)C * asg_dtype_size(a->out.dtype) + 1024 > smem_max)
    return false;
  return ln_early_ok(r, i, j, 2);
}

/* Step j sums layernorm_bwd_x step i's dy over every axis but the last. */
static bool ln_beta_partner(const asg_resolved *r, int i, int j) {
  const asg_step *a = &r->plan.steps[i], *b = &r->plan.steps[j];
  const int nd = a->in[0].shape.ndim;
  if (b->op != ASG_OP_SUM || r->in[j][0] != r->in[i][0] || !same_desc(&a->in[0], &b->in[0]) ||
      b->out.dtype != a->out.dtype || b->attr.i[0] != ((int64_t)1 << (nd - 1)) - 1 ||
      asg_shape_numel(b->out.shape) != a->in[0].shape.dims[nd - 1])
    return false;
  return ln_early_ok(r, i, j, 1);
}

/* partner[i]: the layernorm_bwd_gamma step that step i also computes (-1:
 * none), beta[i]: the sum step (-1: none); skip[j]: step j was computed by
 * its partner. late1/late2 (may be NULL): per step, >= 0 where a fold reads
 * its inputs late (the residual add + layernorm, the row dot products): no
 * pair spans one. folded (may be NULL): steps already folded elsewhere. */
static asg_status ln_pair_plan(const asg_resolved *r, size_t smem_max, const int *late1,
                               const int *late2, const char *folded, int **partner, int **beta,
                               char **skip) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_FUSE_LN");
  if (env && env[0] == '0') return ASG_OK;
  int *p = malloc(sizeof(int) * ((size_t)n + 1)), *bt = malloc(sizeof(int) * ((size_t)n + 1));
  char *sk = calloc((size_t)n + 1, 1);
  if (!p || !bt || !sk) {
    free(p), free(bt), free(sk);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  for (int i = 0; i < n; i++) {
    p[i] = bt[i] = -1;
    if (r->plan.steps[i].op != ASG_OP_LAYERNORM_BWD_X) continue;
    for (int j = i + 1; j < n && j <= i + LN_XG_WINDOW; j++) {
      if (late1 && (late1[j] >= 0 || (late2 && late2[j] >= 0))) break; /* a fold reads late */
      if (sk[j] || (folded && folded[j])) continue;
      if (p[i] < 0 && ln_partner(r, i, j, smem_max)) {
        p[i] = j;
        sk[j] = 1;
      } else if (bt[i] < 0 && ln_beta_partner(r, i, j)) {
        bt[i] = j;
        sk[j] = 1;
      }
    }
    if (p[i] < 0 && bt[i] >= 0) sk[bt[i]] = 0, bt[i] = -1; /* the sum rides on the pair only */
  }
  *partner = p;
  *beta = bt;
  *skip = sk;
  return ASG_OK;
}

/* ---- GEMM epilogues ----
 * matmul(a, w) -> add(., bias [N]) [-> relu | gelu_tanh] over f32: when the
 * product's output is read by the add alone (and the add's by the
 * activation alone), the GEMM adds the bias and applies the activation in
 * its epilogue (cuBLASLt; a small kernel after the GEMM where cuBLASLt
 * cannot) and writes the last step's output, and the add and activation
 * launch nothing. That output is then written at the product's turn, so no
 * step in between may read or write it or write the bias, and the product's
 * operands may not share its bytes. ASG_CUDA_EPILOGUE=0 turns it off. */
typedef struct epi_plan {
  int *end;          /* per matmul: the step whose output it writes (-1: none) */
  signed char *act;  /* per matmul: ASG_CUDA_EPI_* */
  const void **bias; /* per matmul: the bias */
  int *bgrad;        /* per matmul: the sum step whose output it also writes (-1: none) */
  int *ln_add;       /* per layernorm: the add step it computes first (-1: none) */
  int *rowdot;       /* per sum: the mul step whose products it sums (-1: none) */
  char *skip;        /* per step: computed by a product's epilogue */
} epi_plan;

static void epi_free(epi_plan *e) {
  free(e->end), free(e->act), free(e->bias), free(e->bgrad), free(e->ln_add), free(e->rowdot);
  free(e->skip);
  memset(e, 0, sizeof *e);
}

/* The one step reading step i's output (an arena value no one fetches)
 * before it is overwritten, reading it through one operand that is exactly
 * that output; -1 when none, several, or a view reads it. */
static int sole_reader(const asg_resolved *r, int i) {
  const asg_step *s = &r->plan.steps[i];
  if (s->keep || s->out_buf.kind != ASG_BUF_ARENA) return -1;
  const asg_cuda_range o = asg_cuda_out_range(r, i);
  int who = -1;
  for (int k = i + 1; k < r->plan.n_steps; k++) {
    for (int m = 0; m < r->plan.steps[k].n_in; m++) {
      const asg_cuda_range in = asg_cuda_in_range(r, k, m);
      if (!asg_cuda_overlap(in, o)) continue;
      if (who >= 0 || noop_step(r, k) || in.lo != o.lo || in.hi != o.hi) return -1;
      who = k;
    }
    if (asg_cuda_overlap(written_range(r, k), o)) break; /* later reads see new values */
  }
  return who;
}

/* Step j adds a bias [N] to step i's [.., N] output: the bias operand, or -1. */
static int bias_operand(const asg_resolved *r, int i, int j) {
  const asg_step *m = &r->plan.steps[i], *a = &r->plan.steps[j];
  if (a->op != ASG_OP_ADD || a->n_in != 2 || !same_desc(&a->out, &m->out)) return -1;
  const int b = r->in[j][0] == r->out[i] && same_desc(&a->in[0], &m->out)   ? 1
                : r->in[j][1] == r->out[i] && same_desc(&a->in[1], &m->out) ? 0
                                                                            : -1;
  const int nd = m->out.shape.ndim;
  if (b < 0 || a->in[b].dtype != ASG_F32 || a->in[b].shape.ndim != 1 ||
      a->in[b].shape.dims[0] != m->out.shape.dims[nd - 1] || (uintptr_t)r->in[j][b] % 16)
    return -1;
  return b;
}

/* Sum step s over all but the last axis of a [.., C] f32 tensor (a bias
 * gradient): the nearby product a^T b (a [R, C], the same bytes) that can
 * compute it in its epilogue, or -1. Its output is then written at the
 * product's turn, so between the two no step may write a or touch that
 * output, which may not share bytes with the product's. taken[]: products
 * already given a sum. */
enum { BGRAD_WINDOW = 24 };

static int bgrad_partner(const asg_resolved *r, int s, const int *taken) {
  const asg_step *u = &r->plan.steps[s];
  /* 16-bit products would sum the converted operand: the sum stays f32 */
  if (u->op != ASG_OP_SUM || (r->plan.flags & (ASG_PLAN_BF16 | ASG_PLAN_F16))) return -1;
  const int nd = u->in[0].shape.ndim;
  if (u->out.dtype != ASG_F32 || u->in[0].dtype != ASG_F32 || nd < 2 ||
      u->attr.i[0] != ((int64_t)1 << (nd - 1)) - 1 || asg_shape_numel(u->out.shape) == 0 ||
      (uintptr_t)r->out[s] % 16 || u->out_buf.kind != ASG_BUF_ARENA)
    return -1;
  const asg_cuda_range x = asg_cuda_in_range(r, s, 0), o = asg_cuda_out_range(r, s);
  for (int d = 1; d <= BGRAD_WINDOW; d++)
    for (int sg = -1; sg <= 1; sg += 2) {
      const int i = s + sg * d;
      if (i < 0 || i >= r->plan.n_steps || taken[i] >= 0) continue;
      const asg_step *m = &r->plan.steps[i];
      if (m->op != ASG_OP_MATMUL || m->out.dtype != ASG_F32 || !m->attr.i[0] || m->attr.i[1] ||
          m->in[0].shape.ndim != 2 || m->in[1].shape.ndim != 2 ||
          m->in[0].shape.dims[1] != u->in[0].shape.dims[nd - 1])
        continue;
      const asg_cuda_range a = asg_cuda_in_range(r, i, 0);
      if (a.lo != x.lo || a.hi != x.hi || asg_cuda_overlap(asg_cuda_out_range(r, i), o) ||
          asg_cuda_overlap(asg_cuda_in_range(r, i, 1), o) || asg_cuda_overlap(a, o))
        continue;
      const int lo = i < s ? i : s, hi = i < s ? s : i;
      bool ok = true;
      for (int t = lo + 1; ok && t < hi; t++) {
        const asg_cuda_range w = written_range(r, t);
        ok = !asg_cuda_overlap(w, o) && !asg_cuda_overlap(w, x);
        for (int q = 0; ok && q < r->plan.steps[t].n_in && !noop_step(r, t); q++)
          ok = !asg_cuda_overlap(asg_cuda_in_range(r, t, q), o);
      }
      if (ok) return i;
    }
  return -1;
}

/* Residual add + layernorm: layernorm step l whose input x was last written
 * by an add of two tensors of x's shape (f32 or f64, an arena value): the
 * layernorm computes the add first (cuda_nn.cu) and the add launches
 * nothing. x is then written at the layernorm's turn, so no step in between
 * may read or write x or write the addends, which may not share x's bytes.
 * Returns the add step or -1; skip[]: steps already folded elsewhere. */
static int add_ln_partner(const asg_resolved *r, int l, const epi_plan *e) {
  const char *skip = e->skip;
  const asg_step *u = &r->plan.steps[l];
  if (u->op != ASG_OP_LAYERNORM || (u->out.dtype != ASG_F32 && u->out.dtype != ASG_F64)) return -1;
  const asg_cuda_range x = asg_cuda_in_range(r, l, 0);
  int a = l - 1;
  while (a >= 0 && !asg_cuda_overlap(written_range(r, a), x))
    a--;
  if (a < 0 || skip[a]) return -1;
  const asg_step *s = &r->plan.steps[a];
  const asg_cuda_range o = asg_cuda_out_range(r, a);
  if (s->op != ASG_OP_ADD || s->n_in != 2 || o.lo != x.lo || o.hi != x.hi || s->keep ||
      s->out_buf.kind != ASG_BUF_ARENA || !same_desc(&s->out, &u->in[0]) ||
      !same_desc(&s->in[0], &s->out) || !same_desc(&s->in[1], &s->out))
    return -1;
  /* nor the layernorm's output, written while they are read, unless exactly
   * (each row is read whole before its output row is written) */
  const asg_cuda_range y = asg_cuda_out_range(r, l);
  for (int m = 0; m < 2; m++) {
    const asg_cuda_range in = asg_cuda_in_range(r, a, m);
    if (asg_cuda_overlap(in, x) || (asg_cuda_overlap(in, y) && (in.lo != y.lo || in.hi != y.hi)))
      return -1;
  }
  for (int t = a + 1; t < l; t++) {
    if (e->end[t] >= 0 || e->bgrad[t] >= 0) return -1; /* writes early what this reads late */
    const asg_cuda_range w = written_range(r, t);
    if (asg_cuda_overlap(w, x) || asg_cuda_overlap(w, asg_cuda_in_range(r, a, 0)) ||
        asg_cuda_overlap(w, asg_cuda_in_range(r, a, 1)))
      return -1;
    for (int q = 0; q < r->plan.steps[t].n_in && !noop_step(r, t); q++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, t, q), x)) return -1;
  }
  return a;
}

/* Row dot products (attention's delta = sum(do * o) over D): sum step s
 * over the last axis only (f32) whose input is the output of a mul of two
 * tensors of that shape that only the sum reads: the sum multiplies as it
 * reads (cuda_reduce.cu) and the mul launches nothing. The factors are then
 * read at the sum's turn, so no step in between may write them. Returns the
 * mul step or -1; skip[]: steps already folded elsewhere. */
static int rowdot_partner(const asg_resolved *r, int s, const epi_plan *e) {
  const char *skip = e->skip;
  const asg_step *u = &r->plan.steps[s];
  if (u->op != ASG_OP_SUM || u->out.dtype != ASG_F32 || u->in[0].dtype != ASG_F32 ||
      u->in[0].shape.ndim < 1 || u->attr.i[0] != (int64_t)1 << (u->in[0].shape.ndim - 1) ||
      asg_shape_numel(u->in[0].shape) == 0)
    return -1;
  const asg_cuda_range x = asg_cuda_in_range(r, s, 0);
  int m = s - 1;
  while (m >= 0 && !asg_cuda_overlap(written_range(r, m), x))
    m--;
  if (m < 0 || skip[m] || sole_reader(r, m) != s) return -1;
  const asg_step *p = &r->plan.steps[m];
  const asg_cuda_range o = asg_cuda_out_range(r, m);
  if (p->op != ASG_OP_MUL || p->n_in != 2 || o.lo != x.lo || o.hi != x.hi ||
      !same_desc(&p->out, &u->in[0]) || !same_desc(&p->in[0], &p->out) ||
      !same_desc(&p->in[1], &p->out))
    return -1;
  const asg_cuda_range o2 = asg_cuda_out_range(r, s); /* written while the factors are read */
  if (asg_cuda_overlap(o2, asg_cuda_in_range(r, m, 0)) ||
      asg_cuda_overlap(o2, asg_cuda_in_range(r, m, 1)))
    return -1;
  for (int t = m + 1; t < s; t++) {
    if (e->end[t] >= 0 || e->bgrad[t] >= 0 || e->ln_add[t] >= 0) return -1; /* moved writes */
    const asg_cuda_range w = written_range(r, t);
    if (asg_cuda_overlap(w, asg_cuda_in_range(r, m, 0)) ||
        asg_cuda_overlap(w, asg_cuda_in_range(r, m, 1)))
      return -1;
  }
  return m;
}

static asg_status epi_plan_make(const asg_resolved *r, epi_plan *e) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_EPILOGUE");
  if (env && env[0] == '0') return ASG_OK;
  e->end = malloc(sizeof *e->end * ((size_t)n + 1));
  e->act = calloc((size_t)n + 1, 1);
  e->bias = calloc((size_t)n + 1, sizeof *e->bias);
  e->skip = calloc((size_t)n + 1, 1);
  e->bgrad = malloc(sizeof *e->bgrad * ((size_t)n + 1));
  e->ln_add = malloc(sizeof *e->ln_add * ((size_t)n + 1));
  e->rowdot = malloc(sizeof *e->rowdot * ((size_t)n + 1));
  if (!e->end || !e->act || !e->bias || !e->skip || !e->bgrad || !e->ln_add || !e->rowdot) {
    epi_free(e);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  for (int i = 0; i < n; i++)
    e->bgrad[i] = e->ln_add[i] = e->rowdot[i] = -1;
  for (int i = 0; i < n; i++) {
    e->end[i] = -1;
    const asg_step *m = &r->plan.steps[i];
    /* linear layers: [.., K] x [K, N] or x [N, K]^T, one tall GEMM */
    if (m->op != ASG_OP_MATMUL || m->out.dtype != ASG_F32 || m->attr.i[0] ||
        m->in[1].shape.ndim != 2 || m->out.shape.ndim < 2 || asg_shape_numel(m->out.shape) == 0)
      continue;
    const int j = sole_reader(r, i);
    const int b = j >= 0 ? bias_operand(r, i, j) : -1;
    if (b < 0) continue;
    int end = j, act = ASG_CUDA_EPI_BIAS;
    const int k = sole_reader(r, j);
    if (k >= 0) {
      const asg_step *f = &r->plan.steps[k];
      const int fa = f->op == ASG_OP_RELU        ? ASG_CUDA_EPI_RELU
                     : f->op == ASG_OP_GELU_TANH ? ASG_CUDA_EPI_GELU_TANH
                                                 : 0;
      if (fa && same_desc(&f->out, &m->out)) end = k, act = fa;
    }
    const asg_cuda_range o = asg_cuda_out_range(r, end), bias = asg_cuda_in_range(r, j, b);
    bool ok = !asg_cuda_overlap(asg_cuda_in_range(r, i, 0), o) &&
              !asg_cuda_overlap(asg_cuda_in_range(r, i, 1), o) && !asg_cuda_overlap(bias, o);
    for (int t = 0; ok && t < j; t++) /* a bias computed in the arena: not folded */
      ok = !(asg_cuda_overlap(written_range(r, t), bias) &&
             r->plan.steps[t].out_buf.kind == ASG_BUF_ARENA);
    for (int t = i + 1; ok && t < end; t++) {
      if (t == j) continue;
      const asg_cuda_range w = written_range(r, t);
      ok = !asg_cuda_overlap(w, o) && !asg_cuda_overlap(w, bias);
      for (int q = 0; ok && q < r->plan.steps[t].n_in; q++)
        ok = !asg_cuda_overlap(asg_cuda_in_range(r, t, q), o);
    }
    if (!ok) continue;
    e->end[i] = end;
    e->act[i] = (signed char)act;
    e->bias[i] = r->in[j][b];
    e->skip[j] = 1;
    e->skip[end] = 1;
  }
  const char *bg = getenv("ASG_CUDA_BGRAD");
  for (int i = 0; i < n && !(bg && bg[0] == '0'); i++) {
    const int k = bgrad_partner(r, i, e->bgrad);
    if (k >= 0) e->bgrad[k] = i, e->skip[i] = 1;
  }
  const char *la = getenv("ASG_CUDA_ADD_LN");
  for (int i = 0; i < n && !(la && la[0] == '0'); i++) {
    const int a = add_ln_partner(r, i, e);
    if (a >= 0) e->ln_add[i] = a, e->skip[a] = 1;
  }
  for (int i = 0; i < n; i++) {
    const int m = rowdot_partner(r, i, e);
    if (m >= 0) e->rowdot[i] = m, e->skip[m] = 1;
  }
  return ASG_OK;
}

/* After the products' .prepare: a sum whose product could not take it runs. */
static void epi_settle(const asg_resolved *r, void *const *state, epi_plan *e) {
  for (int i = 0; e->bgrad && i < r->plan.n_steps; i++)
    if (e->bgrad[i] >= 0 && !asg_cuda_mm_bgrad(state[i]))
      e->skip[e->bgrad[i]] = 0, e->bgrad[i] = -1;
}

/* ---- shared 16-bit operand copies (bf16_matmul / fp16_matmul) ----
 * A product converts its f32 operands to bf16/fp16 before multiplying.
 * Many tensors feed several products (a layer's input feeds its forward
 * product and its weight gradient, an output gradient both backward
 * products, a weight its forward and its input-gradient product), so each
 * tensor read by two or more products is converted once, by the first,
 * into a copy the later ones read, as long as no step in between writes the
 * tensor's bytes. Copies live in one device block laid out by liveness
 * (first to last reader); without the memory for it, every product
 * converts into the workspace as before. */
typedef struct half_copies {
  void *base;          /* device block of every shared copy */
  size_t *off;         /* per step and operand (2 i + j): offset in base */
  unsigned char *mode; /* per step and operand: ASG_CUDA_HALF_* */
  size_t *out_off;     /* per step: 1 + offset of the copy it writes instead of its output */
  int copies, reads;   /* shared copies and the operand reads they serve (profile) */
  int produced;        /* copies their producer writes */
  size_t bytes;
} half_copies;

typedef struct hc_copy {
  asg_cuda_range src;
  int first, last, uses;
  int end;          /* the step that overwrites the tensor (n: none) */
  int producer;     /* the step that writes the copy instead of the tensor (-1: none) */
  int chain, store; /* ... a fused chain's launch: its store writes the copy */
  size_t bytes, off;
  bool valid;
} hc_copy;

typedef struct hc_block {
  size_t off, size;
} hc_block;

/* A copy gets memory when two or more products read it or its producer
 * writes it; otherwise its one product converts into the workspace. */
static bool hc_shared(const hc_copy *c) { return c->uses >= 2 || c->producer >= 0; }

/* Free list kept sorted by offset, neighbours merged. */
static bool hc_release(hc_block **fl, int *n, int *cap, size_t off, size_t size) {
  if (*n == *cap) {
    int nc = *cap ? 2 * *cap : 16;
    hc_block *nb = realloc(*fl, sizeof *nb * (size_t)nc);
    if (!nb) return false;
    *fl = nb, *cap = nc;
  }
  int at = 0;
  while (at < *n && (*fl)[at].off < off)
    at++;
  memmove(*fl + at + 1, *fl + at, sizeof **fl * (size_t)(*n - at));
  (*fl)[at] = (hc_block){off, size};
  (*n)++;
  for (int i = *n - 1; i > 0; i--) /* merge adjacent blocks */
    if ((*fl)[i - 1].off + (*fl)[i - 1].size == (*fl)[i].off) {
      (*fl)[i - 1].size += (*fl)[i].size;
      memmove(*fl + i, *fl + i + 1, sizeof **fl * (size_t)(*n - i - 1));
      (*n)--;
    }
  return true;
}

static void half_free(half_copies *h) {
  if (h->base) cudaFree(h->base);
  free(h->off), free(h->mode), free(h->out_off);
  memset(h, 0, sizeof *h);
}

/* The step that can write copy k itself instead of its f32 tensor, or -1:
 * the tensor's last writer before the first product, a step of a kind that
 * can (the softmax CE backward, layernorm, permute, a unary op, or a fused elementwise
 * chain storing it: its launch step, *chain and *store set; not a step
 * folded into another launch, folded[]), an arena value
 * that is not a program output, and every step that reads the tensor before
 * it is overwritten a product reading copy k (so no one needs the f32
 * values; steps of the chain read it from registers). */
static int half_producer(const asg_resolved *r, const asg_cuda_fusion *ew, const char *folded,
                         const hc_copy *cp, int k, const int *use, int *chain, int *store) {
  const hc_copy *c = &cp[k];
  *chain = *store = -1;
  int w = c->first - 1;
  while (w >= 0 && !asg_cuda_overlap(written_range(r, w), c->src))
    w--;
  if (w < 0 || (folded && folded[w])) return -1; /* a step another launch computes writes f32 */
  const asg_step *s = &r->plan.steps[w];
  const asg_cuda_range o = asg_cuda_out_range(r, w);
  bool can = s->op == ASG_OP_SOFTMAX_CE_BWD || s->op == ASG_OP_LAYERNORM ||
             (s->op == ASG_OP_PERMUTE && asg_shape_numel(s->out.shape) < INT32_MAX) ||
             (asg__is_unary(s->op) && s->in[0].dtype == ASG_F32 &&
              asg_shape_equal(s->in[0].shape, s->out.shape));
  int producer = w, from = w + 1, ch = -1, st = -1;
  if (ew->role && ew->role[w] != 0) { /* in a chain: written by its launch */
    int l = w, first, last;
    while (l < r->plan.n_steps && ew->role[l] != 2)
      l++;
    const int j =
        l < r->plan.n_steps ? asg_cuda_chain_store(ew, ew->group[l], c->src.lo, &first, &last) : -1;
    if (j < 0) return -1;
    can = true, producer = l, from = last + 1, ch = ew->group[l], st = j;
  }
  if (!can || s->keep || s->out_buf.kind != ASG_BUF_ARENA || s->out.dtype != ASG_F32 ||
      o.lo != c->src.lo || o.hi != c->src.hi)
    return -1;
  for (int i = from; i <= c->end && i < r->plan.n_steps; i++) /* the overwriting step too */
    for (int j = 0; j < r->plan.steps[i].n_in && !noop_step(r, i); j++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, i, j), c->src) && (j > 1 || use[2 * i + j] != k))
        return -1;
  *chain = ch, *store = st;
  return producer;
}

/* Plans the copies of a resolved plan whose products' .prepare states are
 * state[] (those that convert: asg_cuda_mm_low). */
static asg_status half_plan(const asg_resolved *r, void *const *state, asg_cuda_fusion *ew,
                            const char *folded, half_copies *h) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_SHARE_HALF");
  if ((env && env[0] == '0') || !(r->plan.flags & (ASG_PLAN_BF16 | ASG_PLAN_F16))) return ASG_OK;
  hc_copy *cp = calloc(2 * (size_t)n + 1, sizeof *cp);
  int *use = malloc(sizeof(int) * (2 * (size_t)n + 1));
  int *active = malloc(sizeof(int) * (2 * (size_t)n + 1));
  int *order = malloc(sizeof(int) * (2 * (size_t)n + 1));
  hc_block *fl = NULL;
  int ncp = 0, nfl = 0, cap = 0, nact = 0;
  asg_status st = ASG_OK;
  h->off = calloc(2 * (size_t)n + 1, sizeof *h->off);
  h->mode = calloc(2 * (size_t)n + 1, 1);
  h->out_off = calloc((size_t)n + 1, sizeof *h->out_off);
  if (!cp || !use || !active || !order || !h->off || !h->mode || !h->out_off) {
    st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    use[2 * i] = use[2 * i + 1] = -1;
    if (r->plan.steps[i].op == ASG_OP_MATMUL && asg_cuda_mm_low(state[i]) != ASG_F32)
      for (int j = 0; j < 2; j++) {
        const asg_cuda_range a = asg_cuda_in_range(r, i, j);
        int k = 0;
        while (k < ncp && !(cp[k].valid && cp[k].src.lo == a.lo && cp[k].src.hi == a.hi))
          k++;
        if (k == ncp) {
          const size_t bytes = (size_t)asg_shape_numel(r->plan.steps[i].in[j].shape) * 2;
          cp[ncp++] = (hc_copy){a, i, i, 0, n, -1, -1, -1, (bytes + 255) & ~(size_t)255, 0, true};
        }
        cp[k].last = i;
        cp[k].uses++;
        use[2 * i + j] = k;
      }
    const asg_cuda_range o = written_range(r, i); /* the step's writes end copies */
    for (int k = 0; k < ncp; k++)
      if (cp[k].valid && asg_cuda_overlap(o, cp[k].src)) cp[k].valid = false, cp[k].end = i;
  }
  for (int k = 0; k < ncp; k++)
    cp[k].producer = half_producer(r, ew, folded, cp, k, use, &cp[k].chain, &cp[k].store);
  /* offsets of the copies read more than once (or written by their
   * producer), in order of the first step that writes them */
  int nord = 0;
  for (int k = 0; k < ncp; k++) {
    if (!hc_shared(&cp[k])) continue;
    if (cp[k].producer >= 0) cp[k].first = cp[k].producer; /* live from its writer on */
    int at = nord++;
    while (at > 0 && cp[order[at - 1]].first > cp[k].first) /* insertion: a stable sort */
      order[at] = order[at - 1], at--;
    order[at] = k;
  }
  size_t top = 0;
  for (int oi = 0; oi < nord; oi++) {
    const int k = order[oi];
    for (int a = 0; a < nact; a++) /* copies whose last reader ran before this one is made */
      if (cp[active[a]].last < cp[k].first) {
        if (!hc_release(&fl, &nfl, &cap, cp[active[a]].off, cp[active[a]].bytes)) {
          st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
          goto done;
        }
        active[a--] = active[--nact];
      }
    int best = -1;
    for (int b = 0; b < nfl; b++)
      if (fl[b].size >= cp[k].bytes && (best < 0 || fl[b].size < fl[best].size)) best = b;
    if (best >= 0) {
      cp[k].off = fl[best].off;
      fl[best].off += cp[k].bytes, fl[best].size -= cp[k].bytes;
    } else {
      cp[k].off = top;
      top += cp[k].bytes;
    }
    active[nact++] = k;
  }
  if (top && cudaMalloc(&h->base, top) != cudaSuccess) {
    cudaGetLastError(); /* no room: every product converts into the workspace */
    h->base = NULL;
    goto done;
  }
  for (int k = 0; h->base && k < ncp; k++) {
    if (!hc_shared(&cp[k])) continue;
    h->copies++, h->reads += cp[k].uses;
    if (cp[k].producer >= 0 && cp[k].chain >= 0)
      asg_cuda_chain_half(ew, cp[k].chain, cp[k].store, (char *)h->base + cp[k].off,
                          r->plan.flags & ASG_PLAN_BF16);
    else if (cp[k].producer >= 0)
      h->out_off[cp[k].producer] = cp[k].off + 1; /* 0: none */
    h->produced += cp[k].producer >= 0;
  }
  h->bytes = h->base ? top : 0;
  for (int i = 0; h->base && i < 2 * n; i++) {
    const int k = use[i];
    if (k < 0 || !hc_shared(&cp[k])) continue;
    h->off[i] = cp[k].off;
    h->mode[i] = cp[k].producer < 0 && i / 2 == cp[k].first && (i % 2 == 0 || use[i - 1] != k)
                     ? ASG_CUDA_HALF_MAKE
                     : ASG_CUDA_HALF_READY;
  }
done:
  free(cp), free(use), free(active), free(order), free(fl);
  return st;
}

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
  bool use_graph, tf32, bf16, fp16;
  bool random;        /* some step draws random numbers (reads the run count) */
  adam_fusion fuse;   /* multi-tensor Adam launches (ASG_CUDA_FUSE_ADAM=0: none) */
  asg_cuda_fusion ew; /* fused elementwise chains (ASG_CUDA_FUSE=0: none) */
  stats_pairs stats;  /* forward statistics kept for later steps (ASG_CUDA_KEEP_STATS=0: none) */
  half_copies half;   /* shared 16-bit operand copies (ASG_CUDA_SHARE_HALF=0: none) */
  int *ln_partner;    /* per step: the layernorm_bwd_gamma it also computes, or -1 */
  int *ln_beta;       /* per step: the sum of dy it also computes, or -1 */
  int *colsum;        /* per matmul: the sum step its operand conversion computes, or -1 */
  signed char *colsum_op; /* ... of that operand */
  char *cs_skip;          /* per step: computed by a product's operand conversion */
  int *lh;                /* per step: 16-bit logits: the product writing them (on it and
                             on its softmax CE readers), else -1 */
  epi_plan epi;           /* GEMM epilogues (ASG_CUDA_EPILOGUE=0: none) */
  char *ln_skip;          /* per step: computed by its layernorm_bwd_x partner */
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

static void cuda_exec_destroy(void *e) {
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
  if (x->graph_exec) cudaGraphExecDestroy(x->graph_exec);
  if (x->graph) cudaGraphDestroy(x->graph);
  for (int i = 0; x->state && i < x->r.plan.n_steps; i++)
    if (x->state[i]) table[x->r.plan.steps[i].op].release(x->state[i]);
  free(x->state);
  asg__resolved_free(&x->r);
  fusion_free(&x->fuse);
  asg_cuda_fusion_free(&x->ew);
  stats_free(&x->stats);
  half_free(&x->half);
  free(x->ln_partner);
  free(x->ln_beta);
  free(x->colsum), free(x->colsum_op), free(x->cs_skip), free(x->lh);
  epi_free(&x->epi);
  free(x->ln_skip);
  if (x->adam_dev) cudaFree(x->adam_dev);
  if (x->ws) cudaFree(x->ws);
  if (x->run_dev) cudaFree(x->run_dev);
  if (x->fault) cudaFree(x->fault);
  if (x->fault_host) cudaFreeHost(x->fault_host);
  if (x->finite) cudaFree(x->finite);
  if (x->finite_host) cudaFreeHost(x->finite_host);
  free(x);
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
      .stats_out = x->stats.out ? x->stats.out[i] : NULL,
      .stats_in = x->stats.in ? x->stats.in[i] : NULL,
      .half = {x->half.base ? (char *)x->half.base + x->half.off[2 * i] : NULL,
               x->half.base ? (char *)x->half.base + x->half.off[2 * i + 1] : NULL},
      .half_mode = {x->half.base ? x->half.mode[2 * i] : 0,
                    x->half.base ? x->half.mode[2 * i + 1] : 0},
      .half_out =
          x->half.base && x->half.out_off[i] ? (char *)x->half.base + x->half.out_off[i] - 1 : NULL,
      .fused_out = x->ln_partner && x->ln_partner[i] >= 0 ? x->r.out[x->ln_partner[i]] : NULL,
      .fused_out2 = x->ln_beta && x->ln_beta[i] >= 0 ? x->r.out[x->ln_beta[i]] : NULL,
      .colsum_out = x->colsum && x->colsum[i] >= 0 ? x->r.out[x->colsum[i]] : NULL,
      .colsum_op = x->colsum_op ? x->colsum_op[i] : 0,
      .out_half = x->lh && x->lh[i] == i,
      .in_half = x->lh && x->lh[i] >= 0 && x->lh[i] != i,
      .epi_bias = x->epi.end && x->epi.end[i] >= 0 ? x->epi.bias[i] : NULL,
      .epi_out = x->epi.end && x->epi.end[i] >= 0 ? x->r.out[x->epi.end[i]] : NULL,
      .epi_act = x->epi.end && x->epi.end[i] >= 0 ? x->epi.act[i] : 0,
      .bgrad_out = x->epi.bgrad && x->epi.bgrad[i] >= 0 ? x->r.out[x->epi.bgrad[i]] : NULL,
      .ln_add = {x->epi.ln_add && x->epi.ln_add[i] >= 0 ? x->r.in[x->epi.ln_add[i]][0] : NULL,
                 x->epi.ln_add && x->epi.ln_add[i] >= 0 ? x->r.in[x->epi.ln_add[i]][1] : NULL},
      .rowdot = {x->epi.rowdot && x->epi.rowdot[i] >= 0 ? x->r.in[x->epi.rowdot[i]][0] : NULL,
                 x->epi.rowdot && x->epi.rowdot[i] >= 0 ? x->r.in[x->epi.rowdot[i]][1] : NULL},
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
         !(x->epi.skip && x->epi.skip[t]) && !(x->epi.end && x->epi.end[t] >= 0) &&
         !(x->epi.bgrad && x->epi.bgrad[t] >= 0) && !(x->epi.ln_add && x->epi.ln_add[t] >= 0) &&
         !(x->epi.rowdot && x->epi.rowdot[t] >= 0) && !(x->ln_partner && x->ln_partner[t] >= 0) &&
         !(x->ln_skip && x->ln_skip[t]);
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
      if (m->op != ASG_OP_MATMUL || !plain_step(x, i) || !x->state ||
          asg_cuda_mm_low(x->state[i]) == ASG_F32)
        continue;
      int j = -1;
      for (int q = 0; q < 2 && j < 0; q++) {
        const asg_cuda_range a = asg_cuda_in_range(r, i, q);
        const asg_shape as = m->in[q].shape;
        const bool converts = !x->half.mode || x->half.mode[2 * i + q] != ASG_CUDA_HALF_READY;
        if (a.lo == g.lo && a.hi == g.hi && converts && as.dims[as.ndim - 1] == C) j = q;
      }
      if (j < 0 || asg_cuda_overlap(asg_cuda_out_range(r, i), o) ||
          asg_cuda_overlap(asg_cuda_in_range(r, i, 1 - j), o))
        continue;
      const int lo = i < s ? i : s, hi = i < s ? s : i;
      bool ok = true;
      for (int t = lo + 1; ok && t < hi; t++) {
        const asg_cuda_range w = written_range(r, t);
        ok = plain_step(x, t) && !asg_cuda_overlap(w, o) && !asg_cuda_overlap(w, g);
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
      if (asg_cuda_overlap(written_range(r, t), o)) break; /* overwritten: no later reader */
    }
    if (!ok || !readers) continue;
    x->lh[m] = m;
    for (int t = m + 1; t < n; t++) {
      if (r->plan.steps[t].n_in && !noop_step(r, t) &&
          asg_cuda_overlap(asg_cuda_in_range(r, t, 0), o))
        x->lh[t] = m;
      if (asg_cuda_overlap(written_range(r, t), o)) break;
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

static asg_status cuda_exec_create(void *dev, const asg_plan *plan, const asg_buffers *bufs,
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
    if (!table[s->op].run && coll)
      st = asg__error(ASG_ERR_UNSUPPORTED,
                      "cuda: %s: this build of ASG has no NCCL (built without NCCL), so CUDA "
                      "programs cannot run collectives; install NCCL and rebuild, or compile "
                      "for the CPU",
                      s->label);
    else if (!table[s->op].run)
      st = asg__error(ASG_ERR_UNSUPPORTED, "cuda: no kernel for %s", s->label);
    else if (table[s->op].ws) {
      size_t w = table[s->op].ws(s, plan->flags);
      if (w > ws) ws = w;
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
  if (!st && !(fuse && fuse[0] == '0')) st = adam_fuse_plan(&x->r, &x->fuse);
  if (!st) st = epi_plan_make(&x->r, &x->epi);
  if (!st) st = asg_cuda_fuse_plan(&x->r, x->epi.skip, &x->ew);
  if (!st) st = stats_plan(&x->r, &x->stats);
  int optin = 0; /* shared memory a block may opt in to (the one-pass layernorm backward) */
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, x->ctx->device) !=
      cudaSuccess) {
    cudaGetLastError();
    optin = 48 << 10;
  }
  if (!st)
    st = ln_pair_plan(&x->r, (size_t)optin, x->epi.ln_add, x->epi.rowdot, x->epi.skip,
                      &x->ln_partner, &x->ln_beta, &x->ln_skip);
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
    if (!table[s->op].prepare) continue;
    asg_cuda_call c = step_call(x, i);
    st = table[s->op].prepare(&c, &x->state[i]);
  }
  if (!st) epi_settle(&x->r, x->state, &x->epi);
  if (!st) lh_settle(x);
  if (!st) st = half_plan(&x->r, x->state, &x->ew, x->epi.skip, &x->half);
  if (!st) st = colsum_plan(x);
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
    asg_cuda_call c = step_call(x, i);
    if (x->ev) cudaEventRecord(x->ev[i], x->ctx->stream);
    const int role = x->fuse.role ? x->fuse.role[i] : FUSE_RUN;
    const int ew = x->ew.role ? x->ew.role[i] : FUSE_RUN;
    if (role == FUSE_SKIP || ew == FUSE_SKIP) continue; /* done by a later launch */
    if (x->ln_skip && x->ln_skip[i]) continue;          /* done by its layernorm_bwd_x */
    if (x->cs_skip && x->cs_skip[i]) continue;          /* done by an operand conversion */
    if (x->epi.skip && x->epi.skip[i]) continue;        /* done by a GEMM's epilogue */
    asg_status st;
    if (ew == FUSE_LAUNCH) {
      st = asg_cuda_fused_run(&c, &x->ew, x->ew.group[i]);
    } else if (role == FUSE_LAUNCH) {
      const adam_group *g = &x->fuse.groups[x->fuse.group[i]];
      st = asg_cuda_adam_multi(&c, x->adam_dev + g->first, g->n, g->blocks, g->t, g->s);
    } else {
      st = table[s->op].run(&c);
    }
    if (st) return st;
    /* anomaly mode: steps whose own output is stored at their turn (not
     * 16-bit logits or a GEMM with an epilogue); a fused chain's inner
     * values are not stored, so its inputs are not inspected */
    if (x->finite && !(x->lh && x->lh[i] >= 0) && !(x->epi.end && x->epi.end[i] >= 0))
      asg_cuda_check_finite(s, x->r.out[i],
                            ew == FUSE_LAUNCH ? NULL : (const void *const *)x->r.in[i],
                            (unsigned)i + 1, x->finite, x->ctx->stream);
  }
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
      if (role != FUSE_SKIP && !(x->ln_skip && x->ln_skip[i]) && !(x->epi.skip && x->epi.skip[i]) &&
          !(x->cs_skip && x->cs_skip[i]))
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
  if (ce != cudaSuccess) return cuda_err(ce, "reading the check_finite record");
  const asg_finite_fault f = *x->finite_host;
  if (f.step1 == 0) return ASG_OK;
  ce = cudaMemsetAsync(x->finite, 0, sizeof *x->finite, st);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
  if (ce != cudaSuccess) return cuda_err(ce, "resetting the check_finite record");
  const int i = (int)f.step1 - 1; /* a fused chain's launch scanned no inputs */
  const bool ins = !(i < x->r.plan.n_steps && x->ew.role && x->ew.role[i] == FUSE_LAUNCH);
  return asg__finite_report(&x->r.plan, &f, run, ins);
}

static asg_status cuda_exec_run(void *e, uint64_t run) {
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
  if (ce != cudaSuccess) return cuda_err(ce, "reading the index check");
  const asg_index_fault f = *x->fault_host;
  if (f.step1 == 0) return as; /* OK, or check_finite's error */
  ce = cudaMemsetAsync(x->fault, 0, sizeof *x->fault, st);
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(st);
  if (ce != cudaSuccess) return cuda_err(ce, "resetting the index check");
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

/* Profiles only with the events exec_create made (ASG_PLAN_PROFILE). */
static const asg_plan *cuda_exec_profile(void *e, asg__prof *prof) {
  cuda_exec *x = e;
  if (!x->ev) return NULL;
  x->prof = prof;
  return &x->r.plan;
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
    "cuda",        cuda_available,    cuda_supports,     cuda_open,
    cuda_close,    cuda_alloc,        cuda_free,         cuda_write,
    cuda_read,     cuda_exec_create,  cuda_exec_destroy, cuda_exec_run,
    cuda_describe, cuda_memory_stats, cuda_exec_profile,
};
