/* Shared by the optimizer builder (optim.c: gradients, accumulation,
 * clipping, data parallelism, ZeRO-1) and the per-optimizer update rules
 * (optim_rules.c). */
#ifndef ASG_OPTIM_INTERNAL_H
#define ASG_OPTIM_INTERNAL_H

#include "core/internal.h"

typedef struct builder {
  asg_graph *g;
  asg_optim o;
  int world;             /* data parallelism: ranks whose gradients are averaged (1: none) */
  size_t bucket_bytes;   /* ... in all-reduces of about this many bytes */
  bool zero;             /* ZeRO-1: optimizer state sharded over the ranks */
  int rank;              /* this process's rank (ZeRO-1 shards) */
  asg_dtype sdt;         /* scalar dtype */
  asg_tensor *flag;      /* 1 on runs that step (accumulation, loss scaling, guard), else NULL */
  asg_tensor *fin;       /* guard: 1 when every gradient is finite, else NULL */
  asg_tensor *bc1, *bc2; /* Adam, LAMB: this step's bias corrections 1 - beta^t */
  asg_tensor **ups;      /* assign nodes */
  int n_ups, cap_ups;
  asg_status st;
} builder;

/* A frozen state variable; reused when a previous build made it. */
asg_tensor *asg__optim_state_var(builder *b, const char *name, asg_dtype dt, asg_shape shape,
                                 double init);
/* State "<p>.<suffix>" of parameter p, filled with init: p's shape, or with
 * ZeRO-1 this rank's shard's (the shape of `like`, the value or gradient it
 * goes with). */
asg_tensor *asg__optim_param_state(builder *b, asg_tensor *p, const char *suffix, asg_tensor *like,
                                   double init);
/* Assigns value to var; only on stepping runs when b->flag is set
 * (accumulation, loss scaling, the guard). */
void asg__optim_update(builder *b, asg_tensor *var, asg_tensor *value);
/* One parameter's new value from its (accumulated, clipped) gradient gr: pv
 * is p's value (with ZeRO-1 this rank's shard of it, and gr the same
 * shard's); lr the base lr, t the 1-based step number (NULL unless
 * asg__optim_needs_step). NULL on error. */
asg_tensor *asg__optim_step_param(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr,
                                  asg_tensor *lr, asg_tensor *t);
/* The rule uses the step number t / Adam's bias corrections b->bc1, b->bc2. */
bool asg__optim_needs_step(const asg_optim *o);
bool asg__optim_needs_bias_correction(const asg_optim *o);

/* A scalar of the scalar dtype, and a scalar cast to like's dtype. */
static inline asg_tensor *asg__optim_k(builder *b, double v) { return asg_scalar(b->g, b->sdt, v); }
static inline asg_tensor *asg__optim_as(asg_tensor *scalar, asg_tensor *like) {
  return asg_cast(scalar, like->dtype);
}

#endif
