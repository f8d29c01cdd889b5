/* The compiled form of a graph that backends execute: a schedule of steps
 * with their buffers already planned. Backends know nothing of the graph. */
#ifndef ASG_RUNTIME_PLAN_H
#define ASG_RUNTIME_PLAN_H

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum asg_buf_kind {
  ASG_BUF_ARENA = 0, /* offset into the program's activation arena */
  ASG_BUF_VAR,       /* persistent variable #index */
  ASG_BUF_CONST,     /* constant #index */
  ASG_BUF_INPUT      /* fed input #index */
} asg_buf_kind;

typedef struct asg_buf_ref {
  asg_buf_kind kind;
  int index;
  size_t offset; /* bytes into that buffer */
} asg_buf_ref;

enum { ASG_MAX_AUX = 2 }; /* further outputs of one step */

typedef struct asg_tdesc {
  asg_dtype dtype;
  asg_shape shape;
} asg_tdesc;

typedef struct asg_step {
  asg_op op;
  asg_attrs attr;
  asg_tdesc out;
  asg_buf_ref out_buf;
  int n_in;
  asg_tdesc *in;
  asg_buf_ref *in_buf;
  int node_id;
  /* Further outputs the step also writes (aux nodes, ops.def; made by the
   * passes in src/passes): each is given as the step that computes it on
   * its own (its op, attributes and inputs, all inputs of this step too),
   * which is what a backend without a kernel writing it runs right after
   * this step (the shared decomposition). Backends tell them apart by op. */
  int n_aux;
  struct asg_step *aux;
  bool keep;      /* the output's storage is read after the run (a program output) */
  char label[96]; /* "scope/op" for errors and profiles */
} asg_step;

/* plan flags (asg_compile_opts); UNCHECKED_INDEX: out-of-range indices are
 * not reported (asg_compile_opts.unchecked_indices, runtime/backend.h);
 * PROFILE: see asg__prof in runtime/backend.h */
enum {
  ASG_PLAN_TF32 = 1,
  ASG_PLAN_BF16 = 2,
  ASG_PLAN_F16 = 4,
  ASG_PLAN_UNCHECKED_INDEX = 8,
  ASG_PLAN_PROFILE = 16, /* GPU backends build their step timers (asg_compile_opts.profile) */
  /* each step's float output is checked for NaN / inf (asg_compile_opts.check_finite
   * = ASG_CHECK_FINITE_STEP, runtime/inspect.h) */
  ASG_PLAN_CHECK_FINITE = 32
};

typedef struct asg_plan {
  int n_steps;
  asg_step *steps;
  size_t arena_bytes;
  unsigned flags;
  asg_comm *comm; /* collectives' communicator (asg_compile_opts.comm), or NULL */
} asg_plan;

static inline size_t asg__tdesc_bytes(const asg_tdesc *d) {
  return (size_t)asg_shape_numel(d->shape) * asg_dtype_size(d->dtype);
}

#ifdef __cplusplus
}
#endif

#endif
