/* bf16 products on the CPU through oneDNN's matmul primitive
 * (cpu_gemm_bf16.h). A primitive is made once per product shape (its JIT
 * code generation costs milliseconds) and kept for the process in a small
 * table; blocks of one product run it concurrently from the pool's threads,
 * each with a stream and a scratchpad of its own, made once per thread (the
 * library's shared scratchpad made concurrent runs of one primitive
 * overwrite each other). */
#include "backends/cpu/cpu_gemm_bf16.h"

#include "backends/cpu/cpu_simd.h"

#include <stdlib.h>
#include <string.h>

#ifdef ASG_HAVE_DNNL
#include <dnnl.h>
#include <pthread.h>

static dnnl_engine_t engine;
static bool usable;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t tls_key; /* this thread's oneDNN state (a per_thread *) */

/* A pool thread's stream and scratchpad, made on its first bf16 product and
 * kept until the thread ends. */
typedef struct per_thread {
  dnnl_stream_t st;
  void *p;
  size_t n;
} per_thread;

static void per_thread_free(void *v) {
  per_thread *t = v;
  if (!t) return;
  if (t->st) dnnl_stream_destroy(t->st);
  free(t->p);
  free(t);
}

/* This thread's state with a scratchpad of at least n bytes (NULL: out of
 * memory or no stream). */
static per_thread *per_thread_get(size_t n) {
  per_thread *t = pthread_getspecific(tls_key);
  if (!t) {
    if (!(t = calloc(1, sizeof *t))) return NULL;
    if (dnnl_stream_create(&t->st, engine, dnnl_stream_default_flags) != dnnl_success ||
        pthread_setspecific(tls_key, t)) {
      per_thread_free(t);
      return NULL;
    }
  }
  if (t->n < n) {
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) return NULL;
    free(t->p);
    t->p = p, t->n = n;
  }
  return t;
}

static void bf16_init(void) {
  const char *e = getenv("ASG_CPU_BF16");
  if (e && e[0] == '0') return;
  /* the ISA values are cumulative bit sets: bf16 dot products from
   * avx512_core_bf16 on (AMX includes it) */
  const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa(), bf = dnnl_cpu_isa_avx512_core_bf16;
  if ((isa & bf) != bf || pthread_key_create(&tls_key, per_thread_free)) return;
  usable = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success;
}

bool asg_cpu_bf16_products(void) {
  pthread_once(&once, bf16_init);
  return usable;
}

/* ---- the primitives, by shape ---- */
typedef struct bf16_key {
  int m, n, k, lda, ldb, ldc;
  bool ta, tb;
} bf16_key;

enum { MAX_PRIMS = 256 };
typedef struct bf16_prim {
  dnnl_primitive_t prim;
  dnnl_memory_desc_t scratch_md; /* its scratchpad, scratch_bytes long */
  size_t scratch_bytes;
} bf16_prim;
static struct {
  bf16_key key;
  bf16_prim p;
} prims[MAX_PRIMS];
static int n_prims;
static pthread_mutex_t prims_lock = PTHREAD_MUTEX_INITIALIZER;

static bool same_key(const bf16_key *a, const bf16_key *b) {
  return a->m == b->m && a->n == b->n && a->k == b->k && a->lda == b->lda && a->ldb == b->ldb &&
         a->ldc == b->ldc && a->ta == b->ta && a->tb == b->tb;
}

/* The memory descriptors of a product: logical A [m, k], B [k, n], C [m, n]
 * with the strides of their row-major storage. */
static bool descs(const bf16_key *q, dnnl_memory_desc_t *a, dnnl_memory_desc_t *b,
                  dnnl_memory_desc_t *c) {
  dnnl_dims_t ad = {q->m, q->k}, bd = {q->k, q->n}, cd = {q->m, q->n};
  dnnl_dims_t as = {q->ta ? 1 : q->lda, q->ta ? q->lda : 1};
  dnnl_dims_t bs = {q->tb ? 1 : q->ldb, q->tb ? q->ldb : 1};
  dnnl_dims_t cs = {q->ldc, 1};
  return dnnl_memory_desc_init_by_strides(a, 2, ad, dnnl_bf16, as) == dnnl_success &&
         dnnl_memory_desc_init_by_strides(b, 2, bd, dnnl_bf16, bs) == dnnl_success &&
         dnnl_memory_desc_init_by_strides(c, 2, cd, dnnl_f32, cs) == dnnl_success;
}

/* The primitive for q, with a scratchpad the caller passes (user mode). */
static bool make_prim(const bf16_key *q, bf16_prim *out) {
  dnnl_memory_desc_t a, b, c;
  dnnl_matmul_desc_t md;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t pd = NULL;
  out->prim = NULL;
  if (descs(q, &a, &b, &c) && dnnl_matmul_desc_init(&md, &a, &b, NULL, &c) == dnnl_success &&
      dnnl_primitive_attr_create(&attr) == dnnl_success &&
      dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success &&
      dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) == dnnl_success) {
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd) out->scratch_md = *smd, out->scratch_bytes = dnnl_memory_desc_get_size(smd);
    if (!smd || dnnl_primitive_create(&out->prim, pd) != dnnl_success) out->prim = NULL;
  }
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return out->prim != NULL;
}

/* The primitive for q (false: none); *owned: the caller destroys it (the
 * table is full). */
static bool get_prim(const bf16_key *q, bf16_prim *out, bool *owned) {
  *owned = false;
  pthread_mutex_lock(&prims_lock);
  for (int i = 0; i < n_prims; i++)
    if (same_key(&prims[i].key, q)) {
      *out = prims[i].p;
      pthread_mutex_unlock(&prims_lock);
      return true;
    }
  /* made under the lock: the blocks of a product ask for the same shape at
   * once, and a JIT compile each would cost more than the wait */
  const bool ok = make_prim(q, out);
  if (ok && n_prims < MAX_PRIMS)
    prims[n_prims].key = *q, prims[n_prims++].p = *out;
  else
    *owned = ok;
  pthread_mutex_unlock(&prims_lock);
  return ok;
}

bool asg_cpu_bf16_gemm(bool ta, bool tb, int m, int n, int k, const uint16_t *a, int lda,
                       const uint16_t *b, int ldb, float *c, int ldc) {
  if (!asg_cpu_bf16_products()) return false;
  const bf16_key q = {m, n, k, lda, ldb, ldc, ta, tb};
  bool owned;
  bf16_prim p;
  if (!get_prim(&q, &p, &owned)) return false;
  dnnl_memory_desc_t ad, bd, cd;
  dnnl_memory_t am = NULL, bm = NULL, cm = NULL, sm = NULL;
  per_thread *t = per_thread_get(p.scratch_bytes);
  bool ok =
      t && descs(&q, &ad, &bd, &cd) &&
      dnnl_memory_create(&am, &ad, engine, (void *)a) == dnnl_success &&
      dnnl_memory_create(&bm, &bd, engine, (void *)b) == dnnl_success &&
      dnnl_memory_create(&cm, &cd, engine, c) == dnnl_success &&
      (!p.scratch_bytes || dnnl_memory_create(&sm, &p.scratch_md, engine, t->p) == dnnl_success);
  if (ok) {
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}, {DNNL_ARG_SCRATCHPAD, sm}};
    ok = dnnl_primitive_execute(p.prim, t->st, sm ? 4 : 3, args) == dnnl_success &&
         dnnl_stream_wait(t->st) == dnnl_success;
  }
  /* the memory objects only wrap the pointers (oneDNN has no way to keep one
   * across shapes); a few small allocations a block, ~0.7 us measured */
  if (am) dnnl_memory_destroy(am);
  if (bm) dnnl_memory_destroy(bm);
  if (cm) dnnl_memory_destroy(cm);
  if (sm) dnnl_memory_destroy(sm);
  if (owned) dnnl_primitive_destroy(p.prim);
  return ok;
}
#else
bool asg_cpu_bf16_products(void) { return false; }
bool asg_cpu_bf16_gemm(bool ta, bool tb, int m, int n, int k, const uint16_t *a, int lda,
                       const uint16_t *b, int ldb, float *c, int ldc) {
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)a, (void)lda, (void)b, (void)ldb, (void)c,
      (void)ldc;
  return false;
}
#endif

/* ---- f32 -> bf16 ---- */

/* y [n] = x [n] rounded to bf16, nearest even (asg_f32_to_bf16's rule),
 * branch-free so that the loop vectorizes; compiled again for AVX2 and
 * AVX-512 below. */
ASG_ALWAYS_INLINE void to_bf16(const float *x, uint16_t *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &x[i], sizeof u);
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    y[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : r); /* NaN: quiet */
  }
}
#ifdef ASG_SIMD_X86
ASG_TARGET_AVX512 static void to_bf16_avx512(const float *x, uint16_t *y, int64_t n) {
  to_bf16(x, y, n);
}
ASG_TARGET_AVX2 static void to_bf16_avx2(const float *x, uint16_t *y, int64_t n) {
  to_bf16(x, y, n);
}
#endif
static void to_bf16_any(const float *x, uint16_t *y, int64_t n) {
#ifdef ASG_SIMD_X86
  const int level = asg_cpu_simd_level();
  if (level == ASG_SIMD_AVX512)
    to_bf16_avx512(x, y, n);
  else if (level == ASG_SIMD_AVX2)
    to_bf16_avx2(x, y, n);
  else
#endif
    to_bf16(x, y, n);
}

typedef struct conv_job {
  const float *x;
  uint16_t *y;
  int64_t n, chunk;
} conv_job;

static void conv_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  (void)tid;
  const conv_job *j = ctx;
  const int64_t a = lo * j->chunk, b = hi * j->chunk < j->n ? hi * j->chunk : j->n;
  if (b > a) to_bf16_any(j->x + a, j->y + a, b - a);
}

void asg_cpu_to_bf16(const float *x, uint16_t *y, int64_t n, asg_cpu_pool *pool) {
  conv_job j = {x, y, n, 16384};
  const int64_t chunks = (n + j.chunk - 1) / j.chunk;
  asg_cpu_parallel_for(pool, n >= ASG_CPU_PAR_MIN ? asg_cpu_pool_threads(pool) : 1, chunks,
                       conv_range, &j);
}
