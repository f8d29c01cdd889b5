/* The CPU backend: host buffers, the dispatch table and the executor. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu.h"
#include "runtime/backend.h"
#include "runtime/inspect.h"

static asg_cpu_kernel table[ASG_OP_COUNT];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

/* The table is filled once (thread-safe); kernels are pure functions. */
static void table_fill(void) {
  asg_cpu_register_elementwise(table);
  asg_cpu_register_reduce(table);
  asg_cpu_register_matmul(table);
  asg_cpu_register_shape(table);
  asg_cpu_register_index(table);
  asg_cpu_register_nn(table);
  asg_cpu_register_ce(table);
  asg_cpu_register_rope(table);
  asg_cpu_register_batchnorm(table);
  asg_cpu_register_conv(table);
  asg_cpu_register_pooling(table);
  asg_cpu_register_random(table);
  asg_cpu_register_optim(table);
  asg_cpu_register_attention(table);
  asg_cpu_register_sample(table);
  asg_cpu_register_sort(table);
  asg_cpu_register_collective(table);
  asg_cpu_register_resample(table);
  asg_cpu_register_custom(table);
  asg_cpu_blas_init();
}
static void table_init(void) { pthread_once(&table_once, table_fill); }

static bool cpu_available(void) { return true; }
static bool cpu_supports(asg_op op) {
  table_init();
  if (op == ASG_OP_INPUT || op == ASG_OP_CONSTANT || op == ASG_OP_VARIABLE) return true;
  return (unsigned)op < ASG_OP_COUNT && table[op].run != NULL;
}

/* The device owns the thread pool: programs sharing variables share it
 * (asg_cpu_parallel_for runs a second concurrent caller's loops inline). */
typedef struct cpu_dev {
  int nthreads;
  asg_cpu_pool *pool;
  /* Live buffers of cpu_alloc and their bytes: updated under the store
   * lock, which every alloc and free on a shared device holds. */
  size_t live_buffers, live_bytes;
} cpu_dev;

static asg_status cpu_open(int nthreads, void **dev) {
  table_init();
  cpu_dev *d = malloc(sizeof *d);
  if (!d) return asg__error(ASG_ERR_OOM, "cpu: out of memory");
  d->nthreads = nthreads > 0 ? nthreads : asg_cpu_default_threads();
  d->live_buffers = d->live_bytes = 0;
  asg_status st = asg_cpu_pool_new(d->nthreads, &d->pool);
  if (st) {
    free(d);
    return st;
  }
  *dev = d;
  return ASG_OK;
}
static void cpu_close(void *dev) {
  cpu_dev *d = dev;
  if (d) asg_cpu_pool_free(d->pool);
  free(d);
}

/* A buffer follows a header of CPU_HDR bytes that holds its size, so that
 * cpu_free knows how many bytes it gives back. */
enum { CPU_HDR = 64 };
static asg_status cpu_alloc(void *dev, size_t bytes, void **buf) {
  cpu_dev *d = dev;
  *buf = NULL;
  if (bytes > SIZE_MAX - 2 * CPU_HDR)
    return asg__error(ASG_ERR_OOM, "cpu: cannot allocate %zu bytes", bytes);
  bytes = bytes ? (bytes + 63) & ~(size_t)63 : 64;
  char *base = aligned_alloc(64, CPU_HDR + bytes);
  if (!base) return asg__error(ASG_ERR_OOM, "cpu: cannot allocate %zu bytes", bytes);
  memcpy(base, &bytes, sizeof bytes);
  memset(base + CPU_HDR, 0, bytes);
  d->live_buffers++;
  d->live_bytes += bytes;
  *buf = base + CPU_HDR;
  return ASG_OK;
}
static void cpu_free(void *dev, void *buf) {
  cpu_dev *d = dev;
  if (!buf) return;
  char *base = (char *)buf - CPU_HDR;
  size_t bytes;
  memcpy(&bytes, base, sizeof bytes);
  d->live_buffers--;
  d->live_bytes -= bytes;
  free(base);
}
static void cpu_memory_stats(void *dev, size_t *live_buffers, size_t *live_bytes) {
  const cpu_dev *d = dev;
  *live_buffers = d->live_buffers;
  *live_bytes = d->live_bytes;
}
static asg_status cpu_write(void *dev, void *buf, size_t off, const void *src, size_t n) {
  (void)dev;
  if (n) memcpy((char *)buf + off, src, n);
  return ASG_OK;
}
static asg_status cpu_read(void *dev, void *buf, size_t off, void *dst, size_t n) {
  (void)dev;
  if (n) memcpy(dst, (char *)buf + off, n);
  return ASG_OK;
}

typedef struct cpu_exec {
  asg_resolved r;
  void *ws;
  asg_cpu_pool *pool;
  int nthreads;
  bool check_index; /* scan index inputs first (runtime/backend.h) */
  /* anomaly mode and the node callback (runtime/inspect.h): runs take
   * cpu_run_inspected while either is on */
  bool inspect, check_finite;
  asg_step_hook hook;
  void *hook_ctx;
  asg__prof *prof; /* profiling: runs take cpu_run_inspected, which times steps */
  bool bf16;       /* bf16 products (asg_cpu_call.bf16) */
} cpu_exec;

static void cpu_exec_destroy(void *e) {
  cpu_exec *x = e;
  if (!x) return;
  asg__resolved_free(&x->r);
  free(x->ws);
  free(x);
}

static asg_status cpu_exec_create(void *dev, const asg_plan *plan, const asg_buffers *bufs,
                                  void **exec) {
  cpu_dev *d = dev;
  cpu_exec *x = calloc(1, sizeof *x);
  if (!x) return asg__error(ASG_ERR_OOM, "cpu: out of memory");
  x->pool = d->pool;
  x->nthreads = d->nthreads;
  x->check_index = !(plan->flags & ASG_PLAN_UNCHECKED_INDEX);
  x->bf16 = (plan->flags & ASG_PLAN_BF16) && asg_cpu_bf16_ready();
  x->inspect = x->check_finite = (plan->flags & ASG_PLAN_CHECK_FINITE) != 0;
  asg_status st = asg__resolve_plan(plan, bufs, &x->r);
  size_t ws = 0;
  for (int i = 0; i < x->r.plan.n_steps && !st; i++)
    for (int k = -1; k < x->r.plan.steps[i].n_aux && !st; k++) { /* the step, its aux steps */
      const asg_step *s = k < 0 ? &x->r.plan.steps[i] : &x->r.plan.steps[i].aux[k];
      if (!table[s->op].run)
        st = asg__error(ASG_ERR_UNSUPPORTED, "cpu: no kernel for %s", s->label);
      else {
        size_t w = table[s->op].ws ? table[s->op].ws(s, d->nthreads) : 0;
        const size_t wb = x->bf16 ? asg_cpu_matmul_bf16_ws(s) : 0;
        if (wb > w) w = wb;
        if (w > ws) ws = w;
      }
    }
  if (!st && ws && !(x->ws = aligned_alloc(64, (ws + 63) & ~(size_t)63)))
    st = asg__error(ASG_ERR_OOM, "cpu: cannot allocate %zu bytes of workspace", ws);
  if (st) {
    cpu_exec_destroy(x);
    return st;
  }
  *exec = x;
  return ASG_OK;
}

void asg__cpu_set_hook(void *exec, asg_step_hook fn, void *ctx) {
  cpu_exec *x = exec;
  x->hook = fn;
  x->hook_ctx = ctx;
  x->inspect = x->check_finite || fn;
}

static asg_cpu_call step_call(const cpu_exec *x, int i, uint64_t run) {
  return (asg_cpu_call){.s = &x->r.plan.steps[i],
                        .out = x->r.out[i],
                        .in = x->r.in[i],
                        .ws = x->ws,
                        .run = run,
                        .pool = x->pool,
                        .nthreads = x->nthreads,
                        .comm = x->r.plan.comm,
                        .aux = x->r.aux + (size_t)i * ASG_MAX_AUX,
                        .bf16 = x->bf16};
}

/* Step i: its kernel, then the further outputs that kernel does not write,
 * each by its own op's kernel. */
static asg_status run_step(const cpu_exec *x, int i, uint64_t run) {
  const asg_step *s = &x->r.plan.steps[i];
  asg_cpu_call c = step_call(x, i, run);
  asg_status st = table[s->op].run(&c);
  for (int k = 0; k < s->n_aux && !st; k++) {
    if (table[s->op].writes_aux && table[s->op].writes_aux(s->aux[k].op)) continue;
    const size_t a = (size_t)i * ASG_MAX_AUX + k;
    asg_cpu_call u = c;
    u.s = &s->aux[k];
    u.out = x->r.aux[a];
    u.in = x->r.aux_in[a];
    u.aux = NULL;
    st = table[u.s->op].run(&u);
  }
  return st;
}

/* The run loop with anomaly mode, a node callback or the profiler: after
 * each step, the hook sees its output, then a non-finite value in it stops
 * the run; the profiler times each step's index check and kernel. */
static asg_status cpu_run_inspected(cpu_exec *x, uint64_t run) {
  const double t0 = x->prof ? asg__prof_now_ms() : 0;
  for (int i = 0; i < x->r.plan.n_steps; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    const double t = x->prof ? asg__prof_now_ms() : 0;
    asg_status st =
        x->check_index && asg__step_checks_index(s) ? asg__index_check_host(s, x->r.in[i]) : ASG_OK;
    if (!st) st = run_step(x, i, run);
    if (x->prof) asg__prof_step(x->prof, i, t - t0, asg__prof_now_ms() - t);
    if (!st && x->hook) x->hook(x->hook_ctx, i, s, x->r.out[i], run);
    if (!st && x->check_finite)
      st = asg__finite_check_host(s, x->r.out[i], (const void *const *)x->r.in[i], run);
    if (st) return st;
  }
  return ASG_OK;
}

static asg_status cpu_exec_run(void *e, uint64_t run) {
  cpu_exec *x = e;
  if (x->inspect || x->prof) return cpu_run_inspected(x, run);
  for (int i = 0; i < x->r.plan.n_steps; i++) {
    const asg_step *s = &x->r.plan.steps[i];
    asg_status st =
        x->check_index && asg__step_checks_index(s) ? asg__index_check_host(s, x->r.in[i]) : ASG_OK;
    if (!st) st = run_step(x, i, run);
    if (st) return st;
  }
  return ASG_OK;
}

static const asg_plan *cpu_exec_profile(void *e, asg__prof *prof) {
  cpu_exec *x = e;
  x->prof = prof;
  return &x->r.plan;
}

static void cpu_describe(char *buf, size_t n) {
  table_init(); /* finds the GEMM libraries */
  snprintf(buf, n, "host CPU: %d threads, GEMM %s%s", asg_cpu_default_threads(),
           asg_cpu_gemm_name(), asg_cpu_bf16_ready() ? ", bf16 products (oneDNN)" : "");
}

const asg_backend asg__backend_cpu = {
    "cpu",        cpu_available,    cpu_supports,     cpu_open,
    cpu_close,    cpu_alloc,        cpu_free,         cpu_write,
    cpu_read,     cpu_exec_create,  cpu_exec_destroy, cpu_exec_run,
    cpu_describe, cpu_memory_stats, cpu_exec_profile,
};
