/* Fusion of elementwise chains for the CUDA backend (the kernel is in
 * cuda_elementwise.cu).
 *
 * A chain is a run of consecutive steps of the plan, each an elementwise op
 * (unary, binary, where) of one float dtype over the same number of
 * elements, or a view that aliases its input. Inside a chain a step's input
 * is either the value of an earlier step of the chain (the very byte range
 * it wrote: taken from a register) or an external tensor loaded by the
 * kernel. One thread handles one element and loads all of its inputs before
 * it stores anything, so the only overlap allowed between what a chain
 * reads from outside and what it writes is an input read element for
 * element in place of an output (both the whole iteration space). A value
 * is stored when a step after the chain reads its bytes before they are
 * written again, or when it lives in a variable or a program output.
 * Each distinct chain becomes a kernel in CUDA C++ (the ops' definitions in
 * ew_ops.cuh, then straight-line code with the broadcast index arithmetic
 * as constants), compiled once per program with NVRTC (opened at run time)
 * and launched through the driver API. ASG_CUDA_FUSE=0 turns fusion off;
 * ASG_CUDA_FUSE_DUMP=file writes the generated source. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>
#include <nvrtc.h>

#include "backends/cuda/cuda.h"
#include "runtime/backend.h"
#include "runtime/layout.h"

enum { MAX_IN = 8, MAX_OPS = 24, MAX_OUT = 4 };

/* An op of a chain: registers 0..MAX_IN-1 are the inputs, MAX_IN + k the
 * result of op k. */
typedef struct fop {
  asg_op op;
  int a, b, c;
  double f0, f1;
} fop;

/* A chain as the kernel generator sees it. */
typedef struct asg_cuda_chain {
  asg_dtype dtype;
  asg_shape shape; /* iteration space; inputs broadcast against it */
  int n_in, n_ops, n_out;
  const void *in[MAX_IN];
  asg_shape in_shape[MAX_IN];
  fop ops[MAX_OPS];
  void *out[MAX_OUT];
  int out_reg[MAX_OUT];
  int kernel;        /* index of its kernel (equal chains share one) */
  void *fn;          /* CUfunction */
  int first, last;   /* its steps in the plan */
  int half[MAX_OUT]; /* per store: 0 f32, 1 as bf16, 2 as fp16 (asg_cuda_chain_half) */
  void *half_dst[MAX_OUT];
} asg_cuda_chain;

enum { ROLE_RUN = 0, ROLE_SKIP = 1, ROLE_LAUNCH = 2 };

typedef asg_cuda_range range;

static bool same(range a, range b) { return a.lo == b.lo && a.hi == b.hi; }

static bool is_ew(asg_op op) {
  if (asg__is_unary(op)) return true;
  for (int k = 0; k < ASG__N_BROADCAST_OPS; k++)
    if (asg__broadcast_ops[k] == op) return true;
  return false;
}

/* A view whose output is its input's storage: it computes nothing. */
static bool noop_view(const asg_resolved *r, int i) {
  const asg_step *s = &r->plan.steps[i];
  return (s->op == ASG_OP_RESHAPE || s->op == ASG_OP_STOP_GRADIENT) && s->n_in == 1 &&
         r->out[i] == r->in[i][0];
}

/* A value of the chain: the bytes a step wrote and its register. */
typedef struct value {
  range rg;
  int reg;
  bool keep; /* a variable or program output: always stored */
} value;

enum { MAX_VALUES = MAX_OPS };

typedef struct chain {
  asg_cuda_chain g;
  range ext[MAX_IN];
  bool shape_fixed; /* g.shape set by a step with a broadcast input */
  int64_t n;
  value v[MAX_VALUES];
  int nv;
  int first, last, steps;
} chain;

static int find_value(const chain *c, range rg) {
  for (int k = 0; k < c->nv; k++)
    if (same(c->v[k].rg, rg)) return k;
  return -1;
}

static bool hits_value(const chain *c, range rg) {
  for (int k = 0; k < c->nv; k++)
    if (asg_cuda_overlap(c->v[k].rg, rg)) return true;
  return false;
}

/* Adds step i to c (whose steps end at i - 1); false leaves c unusable. */
static bool add_step(const asg_resolved *r, chain *c, int i) {
  const asg_step *s = &r->plan.steps[i];
  if (asg_shape_numel(s->out.shape) != c->n) return false;
  if (noop_view(r, i)) {
    if (s->out.dtype != c->g.dtype) return false;
    int k = find_value(c, asg_cuda_in_range(r, i, 0));
    if (k >= 0) {
      c->v[k].keep = c->v[k].keep || s->keep;
    } else if (hits_value(c, asg_cuda_in_range(r, i, 0))) {
      return false;
    }
    /* else a view of an external tensor: later steps load it as any input */
    c->steps++;
    c->last = i;
    return true;
  }
  if (!is_ew(s->op) || s->out.dtype != c->g.dtype || s->n_in < 1 || s->n_in > 3 ||
      c->g.n_ops == MAX_OPS)
    return false;
  int reg[3] = {0, 0, 0};
  for (int j = 0; j < s->n_in; j++) {
    if (s->in[j].dtype != c->g.dtype) return false;
    range rg = asg_cuda_in_range(r, i, j);
    int k = find_value(c, rg);
    if (k >= 0) {
      reg[j] = c->v[k].reg;
      continue;
    }
    if (hits_value(c, rg)) return false; /* part of a value, or a broadcast read of one */
    const bool full = asg_shape_numel(s->in[j].shape) == c->n;
    if (!full) { /* broadcast against this step's shape: it must be the chain's */
      if (!c->shape_fixed) {
        c->g.shape = s->out.shape;
        c->shape_fixed = true;
      } else if (!asg_shape_equal(c->g.shape, s->out.shape)) {
        return false;
      }
    }
    int e = 0;
    while (e < c->g.n_in &&
           !(same(c->ext[e], rg) && asg_shape_equal(c->g.in_shape[e], s->in[j].shape)))
      e++;
    if (e == c->g.n_in) {
      if (e == MAX_IN) return false;
      c->ext[e] = rg;
      c->g.in[e] = r->in[i][j];
      c->g.in_shape[e] = s->in[j].shape;
      c->g.n_in++;
    }
    reg[j] = e;
  }
  range o = asg_cuda_out_range(r, i);
  for (int e = 0; e < c->g.n_in; e++) /* in place over an input read element by element only */
    if (asg_cuda_overlap(c->ext[e], o) &&
        !(same(c->ext[e], o) && asg_shape_numel(c->g.in_shape[e]) == c->n))
      return false;
  int k = find_value(c, o);
  if (k < 0 && hits_value(c, o)) return false;
  if (k < 0) {
    if (c->nv == MAX_VALUES) return false;
    k = c->nv++;
  } /* else the earlier value in these bytes is overwritten: dead */
  c->g.ops[c->g.n_ops] = (fop){s->op, reg[0], reg[1], reg[2], s->attr.f[0], s->attr.f[1]};
  c->v[k] = (value){o, MAX_IN + c->g.n_ops, s->keep || s->out_buf.kind != ASG_BUF_ARENA};
  c->g.n_ops++;
  c->steps++;
  c->last = i;
  return true;
}

/* Whether a step from `from` on reads bytes of rg before they are all
 * written again. */
static bool read_later(const asg_resolved *r, range rg, int from) {
  for (int i = from; i < r->plan.n_steps; i++) {
    const asg_step *s = &r->plan.steps[i];
    for (int j = 0; j < s->n_in; j++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, i, j), rg)) return true;
    range o = asg_cuda_out_range(r, i);
    if (o.lo <= rg.lo && rg.hi <= o.hi && !noop_view(r, i)) return false;
  }
  return false;
}

static bool start_chain(const asg_resolved *r, chain *c, int i) {
  const asg_step *s = &r->plan.steps[i];
  if (noop_view(r, i) || !is_ew(s->op)) return false;
  if (s->out.dtype != ASG_F32 && s->out.dtype != ASG_F64) return false;
  memset(c, 0, sizeof *c);
  c->g.dtype = s->out.dtype;
  c->g.shape = s->out.shape;
  c->n = asg_shape_numel(s->out.shape);
  c->first = i;
  return c->n > 0 && add_step(r, c, i);
}

/* Sets the chain's stores; false when it has more than the kernel takes. */
static bool finish_chain(const asg_resolved *r, chain *c) {
  c->g.n_out = 0;
  for (int k = 0; k < c->nv; k++) {
    if (!c->v[k].keep && !read_later(r, c->v[k].rg, c->last + 1)) continue;
    if (c->g.n_out == MAX_OUT) return false;
    c->g.out[c->g.n_out] = (void *)c->v[k].rg.lo;
    c->g.out_reg[c->g.n_out++] = c->v[k].reg;
  }
  return true;
}

static int arity(asg_op op) {
  if (asg__is_unary(op)) return 1;
  return op == ASG_OP_WHERE ? 3 : 2;
}

/* ---- run-time entry points: NVRTC (dlopen) and the driver API ---- */
typedef struct jit_api {
  bool ok;
  nvrtcResult (*create)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                        const char *const *);
  nvrtcResult (*compile)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*log_size)(nvrtcProgram, size_t *);
  nvrtcResult (*log)(nvrtcProgram, char *);
  nvrtcResult (*cubin_size)(nvrtcProgram, size_t *);
  nvrtcResult (*cubin)(nvrtcProgram, char *);
  nvrtcResult (*destroy)(nvrtcProgram *);
  CUresult (*load)(CUmodule *, const void *);
  CUresult (*unload)(CUmodule);
  CUresult (*function)(CUfunction *, CUmodule, const char *);
  CUresult (*launch)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                     unsigned, CUstream, void **, void **);
  /* dependent launches (cuda_pdl.cuh) when the driver has it, else NULL */
  CUresult (*launch_ex)(const CUlaunchConfig *, CUfunction, void **, void **);
} jit_api;

static jit_api api;
static pthread_once_t api_once = PTHREAD_ONCE_INIT;

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p) api.ok = false;
  return p;
}

static void *drv(const char *name) {
  void *p = NULL;
  enum cudaDriverEntryPointQueryResult q;
  if (cudaGetDriverEntryPointByVersion(name, &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess || !p) {
    cudaGetLastError();
    api.ok = false;
  }
  return p;
}

static void api_load(void) {
  const char *names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
  void *lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++)
    lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib) return;
  api.ok = true;
  *(void **)&api.create = sym(lib, "nvrtcCreateProgram");
  *(void **)&api.compile = sym(lib, "nvrtcCompileProgram");
  *(void **)&api.log_size = sym(lib, "nvrtcGetProgramLogSize");
  *(void **)&api.log = sym(lib, "nvrtcGetProgramLog");
  *(void **)&api.cubin_size = sym(lib, "nvrtcGetCUBINSize");
  *(void **)&api.cubin = sym(lib, "nvrtcGetCUBIN");
  *(void **)&api.destroy = sym(lib, "nvrtcDestroyProgram");
  *(void **)&api.load = drv("cuModuleLoadData");
  *(void **)&api.unload = drv("cuModuleUnload");
  *(void **)&api.function = drv("cuModuleGetFunction");
  *(void **)&api.launch = drv("cuLaunchKernel");
  enum cudaDriverEntryPointQueryResult q;
  if (cudaGetDriverEntryPointByVersion("cuLaunchKernelEx", (void **)&api.launch_ex, 12000,
                                       cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess)
    api.launch_ex = NULL, cudaGetLastError();
}

/* ---- kernel generation ---- */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->oom = true;
      return;
    }
    if (b->p && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = (b->cap ? b->cap : 4096) * 2;
    while (cap <= b->n + (size_t)k)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) {
      b->oom = true;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
}

/* A double constant as C++ source, exact (inf and NaN included). */
static void put_const(sbuf *b, const char *T, double v) {
  if (v == v && v - v == 0)
    put(b, "(%s)%a", T, v);
  else {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put(b, "(%s)__longlong_as_double(0x%016llxULL)", T, (unsigned long long)bits);
  }
}

/* The body of chain g's kernel (after its name): everything but the
 * pointers is in the code, so chains that differ only in their buffers
 * (the same op sequence in every layer) share a kernel. */
static void gen_body(sbuf *b, const asg_cuda_chain *g) {
  const char *T = g->dtype == ASG_F64 ? "double" : "float";
  const int64_t n = asg_shape_numel(g->shape);
  const char *I = n <= INT32_MAX ? "unsigned" : "unsigned long long";
  /* iteration dims without size-1 dims; strides of the broadcast inputs */
  int nd = 0;
  int64_t dims[ASG_MAX_DIMS], st[MAX_IN][ASG_MAX_DIMS];
  const asg_shape S = g->shape;
  for (int d = 0; d < S.ndim; d++) {
    if (S.dims[d] == 1) continue;
    dims[nd] = S.dims[d];
    for (int k = 0; k < g->n_in; k++) {
      const asg_shape is = g->in_shape[k];
      const int id = d - (S.ndim - is.ndim); /* right-aligned */
      int64_t sk = 0;
      if (id >= 0 && is.dims[id] != 1) {
        sk = 1;
        for (int q = id + 1; q < is.ndim; q++)
          sk *= is.dims[q];
      }
      st[k][nd] = sk;
    }
    nd++;
  }
  /* merge dims where every input continues contiguously */
  int m = 0;
  for (int d = 0; d < nd; d++) {
    bool merge = m > 0;
    for (int k = 0; k < g->n_in && merge; k++)
      merge = asg_shape_numel(g->in_shape[k]) == n || st[k][m - 1] == st[k][d] * dims[d];
    if (merge) {
      dims[m - 1] *= dims[d];
      for (int k = 0; k < g->n_in; k++)
        st[k][m - 1] = st[k][d];
    } else {
      dims[m] = dims[d];
      for (int k = 0; k < g->n_in; k++)
        st[k][m] = st[k][d];
      m++;
    }
  }
  bool bcast = false;
  for (int k = 0; k < g->n_in; k++)
    bcast = bcast || asg_shape_numel(g->in_shape[k]) != n;
  put(b, "(const asg_fused_ptrs p, %s n) {\n", I);
  /* launched dependent (cuda_pdl.cuh): wait for the kernels before it first */
  put(b, "#if __CUDA_ARCH__ >= 900\n"
         "  asm volatile(\"griddepcontrol.wait;\" ::: \"memory\");\n"
         "  asm volatile(\"griddepcontrol.launch_dependents;\" ::: \"memory\");\n"
         "#endif\n");
  put(b,
      "  for (%s e = (%s)blockIdx.x * blockDim.x + threadIdx.x; e < n;"
      " e += (%s)gridDim.x * blockDim.x) {\n",
      I, I, I);
  if (bcast) {
    put(b, "    %s q = e;\n", I);
    for (int d = m - 1; d > 0; d--)
      put(b, "    const %s i%d = q %% %lldu; q /= %lldu;\n", I, d, (long long)dims[d],
          (long long)dims[d]);
    put(b, "    const %s i0 = q;\n", I);
  }
  for (int k = 0; k < g->n_in; k++) {
    put(b, "    const %s v%d = ((const %s *)p.in[%d])[", T, k, T, k);
    if (asg_shape_numel(g->in_shape[k]) == n) {
      put(b, "e");
    } else {
      bool any = false;
      for (int d = 0; d < m; d++)
        if (st[k][d]) {
          put(b, "%si%d * %lldu", any ? " + " : "", d, (long long)st[k][d]);
          any = true;
        }
      if (!any) put(b, "0");
    }
    put(b, "];\n");
  }
  for (int k = 0; k < g->n_ops; k++) {
    const fop *o = &g->ops[k];
    const char *name = asg__op_name(o->op);
    put(b, "    const %s v%d = ew_%s<%s>(", T, MAX_IN + k, name, T);
    switch (arity(o->op)) {
    case 1:
      put(b, "v%d, ", o->a);
      put_const(b, T, o->f0);
      put(b, ", ");
      put_const(b, T, o->f1);
      break;
    case 2: put(b, "v%d, v%d", o->a, o->b); break;
    default: put(b, "v%d, v%d, v%d", o->a, o->b, o->c);
    }
    put(b, ");\n");
  }
  /* f32 stores may be asked to write a product's 16-bit operand copy
   * instead (p.hk[k]: 1 bf16, 2 fp16; cvt.rn as cuda_half.cuh rounds) */
  for (int k = 0; k < g->n_out; k++)
    if (g->dtype == ASG_F32)
      put(b,
          "    if (p.hk[%d] == 0) ((float *)p.out[%d])[e] = v%d;\n"
          "    else ((unsigned short *)p.out[%d])[e] = asg_to_half(v%d, p.hk[%d]);\n",
          k, k, g->out_reg[k], k, g->out_reg[k], k);
    else
      put(b, "    ((%s *)p.out[%d])[e] = v%d;\n", T, k, g->out_reg[k]);
  put(b, "  }\n}\n");
}

typedef struct asg_fused_ptrs {
  const void *in[MAX_IN];
  void *out[MAX_OUT];
  int hk[MAX_OUT];
} asg_fused_ptrs;

extern const char asg_cuda_ew_src[];

/* Generates and compiles a kernel per distinct chain; false (error set)
 * when the toolchain is unavailable or fails. */
static bool compile_chains(asg_cuda_fusion *f) {
  pthread_once(&api_once, api_load);
  if (!api.ok) {
    asg__error(ASG_ERR_UNSUPPORTED, "cuda: NVRTC is not available: elementwise chains not fused");
    return false;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  sbuf src = {0}, body = {0};
  char **bodies = calloc((size_t)f->n_chains + 1, sizeof *bodies);
  int nk = 0;
  bool ok = bodies != NULL;
  put(&src,
      "%s\nstruct asg_fused_ptrs { const void *in[%d]; void *out[%d]; int hk[%d]; };\n"
      "__device__ __forceinline__ unsigned short asg_to_half(float v, int hk) {\n"
      "  unsigned short h;\n"
      "  if (hk == 1) asm(\"cvt.rn.bf16.f32 %%0, %%1;\" : \"=h\"(h) : \"f\"(v));\n"
      "  else asm(\"cvt.rn.f16.f32 %%0, %%1;\" : \"=h\"(h) : \"f\"(v));\n"
      "  return h;\n}\n",
      asg_cuda_ew_src, MAX_IN, MAX_OUT, MAX_OUT);
  for (int i = 0; ok && i < f->n_chains; i++) {
    body.n = 0;
    gen_body(&body, &f->chains[i]);
    ok = !body.oom;
    int k = 0;
    while (ok && k < nk && strcmp(bodies[k], body.p) != 0)
      k++;
    if (ok && k == nk) {
      ok = (bodies[nk] = strdup(body.p)) != NULL;
      if (ok)
        put(&src, "extern \"C\" __global__ void __launch_bounds__(256) asg_fused_%d%s", nk++,
            body.p);
    }
    f->chains[i].kernel = k;
  }
  ok = ok && !src.oom;
  for (int k = 0; bodies && k < nk; k++)
    free(bodies[k]);
  free(bodies);
  free(body.p);
  if (!ok) {
    free(src.p);
    asg__error(ASG_ERR_OOM, "cuda: out of memory");
    return false;
  }
  const char *dump = getenv("ASG_CUDA_FUSE_DUMP"); /* the generated source, for inspection */
  FILE *df = dump && dump[0] ? fopen(dump, "w") : NULL;
  if (df) fputs(src.p, df), fclose(df);
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  char arch[32];
  snprintf(arch, sizeof arch, "-arch=sm_%d%d", major, minor);
  const char *opts[] = {arch, "-std=c++17"};
  nvrtcProgram prog = NULL;
  char *cubin = NULL;
  CUmodule mod = NULL;
  ok = api.create(&prog, src.p, "asg_fused.cu", 0, NULL, NULL) == NVRTC_SUCCESS;
  if (ok && api.compile(prog, 2, opts) != NVRTC_SUCCESS) {
    size_t ls = 0;
    char *log = NULL;
    if (api.log_size(prog, &ls) == NVRTC_SUCCESS && (log = malloc(ls + 1)) &&
        api.log(prog, log) == NVRTC_SUCCESS)
      log[ls] = 0;
    asg__error(ASG_ERR_BACKEND, "cuda: compiling fused elementwise chains failed: %.400s",
               log ? log : "(no log)");
    free(log);
    ok = false;
  } else if (!ok) {
    asg__error(ASG_ERR_BACKEND, "cuda: NVRTC cannot create a program");
  }
  size_t cb = 0;
  if (ok && (api.cubin_size(prog, &cb) != NVRTC_SUCCESS || !(cubin = malloc(cb)) ||
             api.cubin(prog, cubin) != NVRTC_SUCCESS || api.load(&mod, cubin) != CUDA_SUCCESS)) {
    asg__error(ASG_ERR_BACKEND, "cuda: cannot load the fused elementwise kernels");
    ok = false;
  }
  for (int i = 0; ok && i < f->n_chains; i++) {
    char name[32];
    snprintf(name, sizeof name, "asg_fused_%d", f->chains[i].kernel);
    CUfunction fn = NULL;
    ok = api.function(&fn, mod, name) == CUDA_SUCCESS;
    f->chains[i].fn = fn;
    if (!ok) asg__error(ASG_ERR_BACKEND, "cuda: fused kernel %s missing", name);
  }
  if (prog) api.destroy(&prog);
  free(cubin);
  free(src.p);
  if (!ok) {
    if (mod) api.unload(mod);
    return false;
  }
  f->module = mod;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  f->compile_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
  return true;
}

asg_status asg_cuda_fused_run(const asg_cuda_call *c, const asg_cuda_fusion *f, int k) {
  const asg_cuda_chain *g = &f->chains[k];
  const int64_t n = asg_shape_numel(g->shape);
  if (n <= 0) return ASG_OK;
  asg_fused_ptrs p;
  memset(&p, 0, sizeof p);
  for (int i = 0; i < g->n_in; i++)
    p.in[i] = g->in[i];
  for (int i = 0; i < g->n_out; i++) {
    p.out[i] = g->half[i] ? g->half_dst[i] : g->out[i];
    p.hk[i] = g->half[i];
  }
  unsigned n32 = (unsigned)n;
  unsigned long long n64 = (unsigned long long)n;
  void *args[2] = {&p, n <= INT32_MAX ? (void *)&n32 : (void *)&n64};
  const unsigned blocks = asg_cuda_blocks(n, 256);
  CUresult r;
  if (api.launch_ex && c->ctx->pdl) {
    CUlaunchAttribute at;
    memset(&at, 0, sizeof at);
    at.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    at.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDimX = blocks, cfg.gridDimY = cfg.gridDimZ = 1;
    cfg.blockDimX = 256, cfg.blockDimY = cfg.blockDimZ = 1;
    cfg.hStream = (CUstream)c->ctx->stream;
    cfg.attrs = &at, cfg.numAttrs = 1;
    r = api.launch_ex(&cfg, (CUfunction)g->fn, args, NULL);
  } else {
    r = api.launch((CUfunction)g->fn, blocks, 1, 1, 256, 1, 1, 0, (CUstream)c->ctx->stream, args,
                   NULL);
  }
  if (r != CUDA_SUCCESS)
    return asg__error(ASG_ERR_BACKEND, "cuda: %s: fused kernel launch failed (%d)", c->s->label,
                      (int)r);
  return asg_cuda_check(c);
}

void asg_cuda_fusion_free(asg_cuda_fusion *f) {
  if (f->module && api.unload) api.unload((CUmodule)f->module);
  free(f->role), free(f->group), free(f->chains);
  memset(f, 0, sizeof *f);
}

static bool push_chain(asg_cuda_fusion *f, const chain *c) {
  asg_cuda_chain *nc = realloc(f->chains, sizeof *nc * (size_t)(f->n_chains + 1));
  if (!nc) return false;
  f->chains = nc;
  f->chains[f->n_chains] = c->g;
  f->chains[f->n_chains].first = c->first;
  f->chains[f->n_chains].last = c->last;
  for (int i = c->first; i < c->last; i++)
    f->role[i] = ROLE_SKIP;
  f->role[c->last] = ROLE_LAUNCH;
  f->group[c->last] = f->n_chains++;
  f->fused_steps += c->steps;
  return true;
}

asg_status asg_cuda_fuse_plan(const asg_resolved *r, const char *exclude, asg_cuda_fusion *f) {
  const int n = r->plan.n_steps;
  memset(f, 0, sizeof *f);
  const char *env = getenv("ASG_CUDA_FUSE");
  if (env && env[0] == '0') return ASG_OK;
  f->role = calloc((size_t)n + 1, 1);
  f->group = calloc((size_t)n + 1, sizeof *f->group);
  chain *c = malloc(sizeof *c), *t = malloc(sizeof *t), *best = malloc(sizeof *best);
  if (!f->role || !f->group || !c || !t || !best) goto oom;
  for (int i = 0; i < n;) {
    if ((exclude && exclude[i]) || !start_chain(r, c, i)) {
      i++;
      continue;
    }
    /* extend while the next step fits; keep the longest chain that can store
     * what it must (a shorter one when a longer one cannot) */
    int best_last = -1;
    for (int j = i + 1; j < n; j++) {
      *t = *c;
      if ((exclude && exclude[j]) || !add_step(r, t, j)) break;
      *c = *t;
      if (c->g.n_ops >= 2) {
        *t = *c;
        if (finish_chain(r, t)) *best = *t, best_last = j;
      }
    }
    if (best_last < 0) {
      i++;
      continue;
    }
    if (!push_chain(f, best)) goto oom;
    i = best_last + 1;
  }
  free(c), free(t), free(best);
  if (f->n_chains && !compile_chains(f)) { /* run every step alone */
    if (asg__profile_level()) fprintf(stderr, "asg: %s\n", asg_last_error());
    asg_clear_error();
    asg_cuda_fusion_free(f);
  }
  return ASG_OK;
oom:
  free(c), free(t), free(best);
  asg_cuda_fusion_free(f);
  return asg__error(ASG_ERR_OOM, "cuda: out of memory");
}

int asg_cuda_chain_store(const asg_cuda_fusion *f, int k, uintptr_t addr, int *first, int *last) {
  const asg_cuda_chain *g = &f->chains[k];
  *first = g->first, *last = g->last;
  if (g->dtype != ASG_F32) return -1;
  for (int j = 0; j < g->n_out; j++)
    if ((uintptr_t)g->out[j] == addr) return j;
  return -1;
}

void asg_cuda_chain_half(asg_cuda_fusion *f, int k, int j, void *dst, bool bf16) {
  f->chains[k].half[j] = bf16 ? 1 : 2;
  f->chains[k].half_dst[j] = dst;
}
