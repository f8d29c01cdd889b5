/* CPU kernels of the fused attention ops (contract: src/ops/op_attention.c),
 * the reference the GPU backends are compared with.
 *
 * f32 runs its own kernels in SIMD lanes (cpu_attention_f32.c). f64 goes in
 * blocks of ASG_ATT_BLK query rows (forward, lse, bwd_q) or keys (bwd_kv)
 * of one batch entry: the block's scores [BLK, Tk] (or [BLK, Tq]) come from
 * one GEMM into the thread's workspace, the softmax-like row work is plain
 * loops, and the products with v, k, q, do are GEMMs again
 * (cpu_attention_tmpl.h). So the memory is O(BLK * T) per thread, not
 * O(Tq * Tk). Everything accumulates in the dtype; the blocks are fixed and
 * each GEMM is single-threaded, so results do not depend on the thread
 * count. A key mask (the ops' optional last input) hides keys from the
 * softmax; a query that sees no key gets o = 0 and lse = -inf. */
#include <math.h>
#include <string.h>

#include "backends/cpu/cpu_attention.h"
#include "runtime/layout.h"

static att_dims dims_of(const asg_step *s) {
  asg_shape q = s->in[0].shape, k = s->in[1].shape;
  att_dims a = {
      1, q.dims[q.ndim - 2], k.dims[k.ndim - 2], q.dims[q.ndim - 1], s->attr.i[0] != 0, -1, 1};
  for (int d = 0; d < q.ndim - 2; d++)
    a.NB *= q.dims[d];
  a.mask = asg__attention_mask(s, &a.G);
  return a;
}

/* Per thread: f32, asg_cpu_attention_f32_ws; f64, two [BLK, max(Tq, Tk)]
 * buffers. */
static size_t att_ws_thread(const asg_step *s) {
  att_dims a = dims_of(s);
  if (s->out.dtype == ASG_F32) return asg_cpu_attention_f32_ws(&a, s->op);
  int64_t T = a.Tq > a.Tk ? a.Tq : a.Tk;
  return 2 * ASG_ATT_BLK * (size_t)T * sizeof(double);
}

static size_t att_ws(const asg_step *s, int nthreads) {
  return (size_t)(nthreads > 0 ? nthreads : 1) * att_ws_thread(s);
}

/* fwd, bwd_q, bwd_kv in f64 (cpu_attention_tmpl.h) */
#define SUF f64
#define T double
#define EXP exp
#define LOG log
#define GEMM asg_cpu_dgemm
#include "backends/cpu/cpu_attention_tmpl.h"

typedef struct att_job {
  const asg_cpu_call *c;
  att_dims a;
  size_t ws; /* workspace bytes per thread */
} att_job;

/* Units [lo, hi) of the step, as thread tid (its workspace slice). */
static void att_range(void *ctx, int64_t lo, int64_t hi, int tid) {
  const att_job *j = ctx;
  const asg_cpu_call *c = j->c;
  if (c->s->out.dtype == ASG_F32) {
    asg_cpu_attention_f32(c, &j->a, lo, hi, (float *)((char *)c->ws + (size_t)tid * j->ws));
    return;
  }
  switch (c->s->op) {
  case ASG_OP_ATTENTION:
  case ASG_OP_ATTENTION_LSE:
    fwd_f64(c, &j->a, c->s->op == ASG_OP_ATTENTION_LSE, lo, hi, tid);
    break;
  case ASG_OP_ATTENTION_BWD_Q: bwd_q_f64(c, &j->a, lo, hi, tid); break;
  default: bwd_kv_f64(c, &j->a, lo, hi, tid); break;
  }
}

static asg_status attention_kernel(const asg_cpu_call *c) {
  const asg_step *s = c->s;
  asg_dtype dt = s->out.dtype;
  if (dt != ASG_F32 && dt != ASG_F64)
    return asg__error(ASG_ERR_DTYPE, "cpu: %s: dtype not supported", s->label);
  att_job j = {c, dims_of(s), att_ws_thread(s)};
  if (j.a.NB == 0) return ASG_OK;
  int64_t units =
      j.a.NB *
      (((s->op == ASG_OP_ATTENTION_BWD_KV ? j.a.Tk : j.a.Tq) + ASG_ATT_BLK - 1) / ASG_ATT_BLK);
  int nt = asg_cpu_threads_for(c, j.a.NB * j.a.Tq * j.a.Tk * j.a.D, units);
  asg_cpu_parallel_for(c->pool, nt, units, att_range, &j);
  return ASG_OK;
}

/* the forward writes its rows' lse as its further output (fuse_stats.c) */
static bool attention_aux(asg_op a) { return a == ASG_OP_ATTENTION_LSE; }

void asg_cpu_register_attention(asg_cpu_kernel *t) {
  static const asg_op ops[4] = {ASG_OP_ATTENTION, ASG_OP_ATTENTION_LSE, ASG_OP_ATTENTION_BWD_Q,
                                ASG_OP_ATTENTION_BWD_KV};
  for (int i = 0; i < 4; i++) {
    t[ops[i]].run = attention_kernel;
    t[ops[i]].ws = att_ws;
  }
  t[ASG_OP_ATTENTION].writes_aux = attention_aux;
}
