/* What the CPU attention kernels share (cpu_attention.c: the op entry,
 * f64; cpu_attention_f32.c: f32 in lanes). Contract: src/ops/op_attention.c. */
#ifndef ASG_CPU_ATTENTION_H
#define ASG_CPU_ATTENTION_H

#include "backends/cpu/cpu.h"

/* Query rows (forward, lse, bwd_q) or keys (bwd_kv) of one work unit. */
#define ASG_ATT_BLK 64

typedef struct att_dims {
  int64_t NB, Tq, Tk, D; /* NB: product of the leading dims */
  bool causal;
  int mask;  /* input index of the key mask, or -1 */
  int64_t G; /* heads per mask row */
} att_dims;

/* Keys visible to query i: j < n_keys (causal: j <= i). */
static inline int64_t att_n_keys(const att_dims *a, int64_t i) {
  return a->causal && i + 1 < a->Tk ? i + 1 : a->Tk;
}

/* Workspace bytes of one thread of the f32 kernels of op. */
size_t asg_cpu_attention_f32_ws(const att_dims *a, asg_op op);
/* Units [lo, hi) of the step, in the thread workspace ws (64-byte aligned,
 * asg_cpu_attention_f32_ws bytes): a unit is ASG_ATT_BLK query rows (keys
 * for bwd_kv) of one of the NB heads. */
void asg_cpu_attention_f32(const asg_cpu_call *c, const att_dims *a, int64_t lo, int64_t hi,
                           float *ws);

#endif
