/* The CUDA executor (cuda_exec.c) and the planners it runs at program
 * creation, each in its own file: multi-tensor Adam groups
 * (cuda_plan_adam.c), kept forward statistics (cuda_plan_stats.c), GEMM epilogues
 * (cuda_plan_epi.c), shared 16-bit operand copies (cuda_plan_half.c) and collectives on a second
 * stream (cuda_plan_comm.c). A planner reads the resolved plan and decides which steps a kernel of
 * another step computes; the executor launches accordingly. Private to the CUDA backend. */
#ifndef ASG_CUDA_EXEC_H
#define ASG_CUDA_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/cuda/cuda.h"
#include "runtime/backend.h"
#include "runtime/layout.h"

/* The backend's kernel table, filled when a device is opened
 * (cuda_backend.c). */
const asg_cuda_kernel *asg_cuda_kernels(void);
asg_status asg_cuda_err(cudaError_t e, const char *what);

/* ---- the executor (runtime/backend.h's exec_* entries) ---- */
asg_status asg_cuda_exec_create(void *dev, const asg_plan *plan, const asg_buffers *bufs,
                                void **exec);
void asg_cuda_exec_destroy(void *e);
asg_status asg_cuda_exec_run(void *e, uint64_t run);
const asg_plan *asg_cuda_exec_profile(void *e, asg__prof *prof);

/* ---- multi-tensor Adam (cuda_plan_adam.c) ---- */
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

/* Groups the optimizer's update triples (f zeroed first; ASG_CUDA_FUSE_ADAM=0: none). */
asg_status asg_cuda_adam_plan(const asg_resolved *r, adam_fusion *f);
void asg_cuda_adam_free(adam_fusion *f);

/* ---- forward statistics (cuda_plan_stats.c) ---- */
typedef struct stats_pairs {
  void **out;      /* per step: where it writes its statistics (or NULL) */
  const void **in; /* per step: where it reads them (or NULL) */
  void **bufs;     /* device buffers, one per forward step */
  int n_bufs;
} stats_pairs;

asg_status asg_cuda_stats_plan(const asg_resolved *r, stats_pairs *p);
void asg_cuda_stats_free(stats_pairs *p);
/* ---- GEMM epilogues (cuda_plan_epi.c) ---- */
typedef struct epi_plan {
  int *bgrad;  /* per matmul: the sum step whose output it also writes (-1: none) */
  int *ln_add; /* per layernorm: the add step it computes first (-1: none) */
  char *skip;  /* per step: computed by a product's epilogue */
} epi_plan;

asg_status asg_cuda_epi_plan(const asg_resolved *r, epi_plan *e);
/* Drops the bias gradients the products' .prepare could not take on. */
void asg_cuda_epi_settle(const asg_resolved *r, void *const *state, epi_plan *e);
void asg_cuda_epi_free(epi_plan *e);

/* ---- shared 16-bit operand copies (cuda_plan_half.c) ---- */
typedef struct half_copies {
  void *base;          /* device block of every shared copy */
  size_t *off;         /* per step and operand (2 i + j): offset in base */
  unsigned char *mode; /* per step and operand: ASG_CUDA_HALF_* */
  size_t *out_off;     /* per step: 1 + offset of the copy it writes instead of its output */
  int copies, reads;   /* shared copies and the operand reads they serve (profile) */
  int produced;        /* copies their producer writes */
  size_t bytes;
} half_copies;

asg_status asg_cuda_half_plan(const asg_resolved *r, void *const *state, asg_cuda_fusion *ew,
                              const char *folded, half_copies *h);
void asg_cuda_half_free(half_copies *h);

/* ---- collectives beside the compute (cuda_plan_comm.c) ---- */
typedef struct comm_overlap {
  int *slot;     /* per step: its event pair (a collective on the second stream), or -1 */
  int *join_off; /* n + 2 offsets into joins: the waits before step i (i = n: the end) */
  int *joins;    /* event pairs whose "done" the compute stream waits for */
  int n_slots;
} comm_overlap;
/* Steps whose work another step does: a GEMM's epilogue add/activation,
 * bias gradient, operand column sums, the residual add a layernorm
 * computes. (Further outputs, plan.h, are a step's own.) */
enum { ASG_CUDA_PARTNERS = 3 };
/* quiet[i]: step i launches nothing at its turn; partner[i * 3 + k]: the
 * steps whose output step i also writes (-1: none). Nothing to do (o
 * zeroed) for a plan without collectives. */
asg_status asg_cuda_comm_plan(const asg_resolved *r, const char *quiet, const int *partner,
                              comm_overlap *o);
void asg_cuda_comm_free(comm_overlap *o);

/* ---- shared by the planners ---- */
/* Copies that do nothing because their output is their input (views,
 * in-place assigns): they neither write nor, really, read. */
static inline bool noop_step(const asg_resolved *r, int i) {
  const asg_step *s = &r->plan.steps[i];
  return ((s->op == ASG_OP_RESHAPE || s->op == ASG_OP_STOP_GRADIENT) && r->out[i] == r->in[i][0]) ||
         (s->op == ASG_OP_ASSIGN && r->out[i] == r->in[i][1]);
}

/* Bytes step i writes. */
static inline asg_cuda_range written_range(const asg_resolved *r, int i) {
  return noop_step(r, i) ? (asg_cuda_range){0, 0} : asg_cuda_out_range(r, i);
}

/* Whether step i writes any byte of x: its output or a further output
 * (plan.h's aux). */
static inline bool step_writes(const asg_resolved *r, int i, asg_cuda_range x) {
  if (asg_cuda_overlap(written_range(r, i), x)) return true;
  const asg_step *s = &r->plan.steps[i];
  for (int k = 0; k < s->n_aux; k++) {
    const uintptr_t p = (uintptr_t)r->aux[(size_t)i * ASG_MAX_AUX + k];
    if (asg_cuda_overlap((asg_cuda_range){p, p + asg__tdesc_bytes(&s->aux[k].out)}, x)) return true;
  }
  return false;
}

static inline bool same_desc(const asg_tdesc *a, const asg_tdesc *b) {
  return a->dtype == b->dtype && asg_shape_equal(a->shape, b->shape);
}

#endif
