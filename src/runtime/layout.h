/* Layout planning shared by every backend: pure functions of a step's shapes
 * that reduce an op to a few merged runs of dims and element strides before
 * a backend picks its kernels. No backend state, no allocation; the CPU, CUDA
 * and Vulkan backends all call these, so they agree on the plan. */
#ifndef ASG_RUNTIME_LAYOUT_H
#define ASG_RUNTIME_LAYOUT_H

#include "runtime/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* s viewed as [outer, s.dims[a], inner]: [2,3,4,5] at a = 1 is outer 2, inner 20. */
void asg__split_axis(asg_shape s, int a, int64_t *outer, int64_t *inner);

/* ---- reductions ----
 * The (contiguous) input's dims coalesced into runs of kept and reduced
 * axes: size-1 dims are dropped and neighbouring dims of the same kind
 * merge. E.g. [2,3,4,5] reducing axes {1,2} (mask 0b0110): kept kd [2,5]
 * ks [60,1], reduced rd [12] rs [5], nout 10, nred 12. Reducing only size-1
 * dims leaves one reduced run rd [1] rs [0]. */
typedef struct asg_reduce_plan {
  int nk, nr;
  int64_t kd[ASG_MAX_DIMS], ks[ASG_MAX_DIMS]; /* kept dims / input strides */
  int64_t rd[ASG_MAX_DIMS], rs[ASG_MAX_DIMS]; /* reduced dims / input strides */
  int64_t nout, nred;                         /* output elements / reduced per output */
} asg_reduce_plan;

void asg__reduce_plan(asg_reduce_plan *p, asg_shape s, int64_t mask);

/* ---- permute ----
 * Output axis j takes input axis perm[j]. Size-1 dims are dropped and input
 * dims that stay adjacent and in order merge: [N,C,H,W] with perm (0,2,3,1)
 * becomes dims [N,C,HW], pm (0,2,1), a batch of [C,HW] -> [HW,C] transposes.
 * nd <= 1: only size-1 axes moved (a plain copy). The plan is zeroed first;
 * the strides below are set for nd >= 1. */
typedef struct asg_permute_plan {
  int nd;
  int64_t dims[ASG_MAX_DIMS]; /* simplified input dims */
  int pm[ASG_MAX_DIMS];       /* output axis j takes input axis pm[j] */
  int inv[ASG_MAX_DIMS];      /* input axis d goes to output axis inv[d] */
  int64_t ist[ASG_MAX_DIMS];  /* input strides */
  int64_t od[ASG_MAX_DIMS];   /* output dims */
  int64_t ost[ASG_MAX_DIMS];  /* output strides */
  int64_t oist[ASG_MAX_DIMS]; /* input stride of each output axis */
} asg_permute_plan;

void asg__permute_plan(asg_permute_plan *p, asg_shape in, const int64_t *perm);

/* ---- broadcasting (binary ops, where, broadcast_to) ----
 * Element strides of the first n_in (<= ASG_BCAST_MAX_IN) inputs against the
 * output shape, inputs right-aligned, 0 on broadcast dims; size-1 output
 * dims are dropped and dims that stay contiguous for every operand merge.
 * E.g. out [2,3,4] = a [2,3,4] + b [4]: dims [6,4], st a (4,1), b (0,1).
 * A scalar output is dims [1] with zero strides; the strides of inputs
 * k >= n_in are 0. */
#define ASG_BCAST_MAX_IN 3

typedef struct asg_bcast_plan {
  int nd;
  int64_t dims[ASG_MAX_DIMS];
  int64_t st[ASG_BCAST_MAX_IN][ASG_MAX_DIMS];
} asg_bcast_plan;

void asg__broadcast_plan(asg_bcast_plan *b, asg_shape out, const asg_tdesc *in, int n_in);

/* ---- rope (contract: src/ops/op_nn.c) ----
 * x [..., D] as `rows` rows of D. Row r's cos (k = 0) and sin (k = 1)
 * start at sum_d idx_d(r) * st[k][d], idx_d(r) the digits of r over the
 * merged row dims `dims` (asg__broadcast_plan of x's and the tables' shapes
 * without their last dim; strides in elements of the table, 0 on broadcast
 * dims), and their element j at that start + j * last[k]: last is 1, or 0
 * for a table broadcast over D (last dim 1 or rank 0). E.g. x [2,4,5,64],
 * cos [2,1,5,64]: dims [2,4,5], st[0] (320,0,64), last[0] 1; cos [5,64]:
 * dims [8,5], st[0] (0,64). */
typedef struct asg_rope_plan {
  int64_t rows, D;
  int nd;
  int64_t dims[ASG_MAX_DIMS];
  int64_t st[2][ASG_MAX_DIMS];
  int64_t last[2];
} asg_rope_plan;

void asg__rope_plan(asg_rope_plan *p, const asg_step *s);

/* ---- 32-bit division by a constant ----
 * n / d as (mulhi(n, m) + n) >> l, the sum in 64 bits, with l = ceil(log2 d)
 * and m = floor(2^32 (2^l - d) / d) + 1 (Granlund & Montgomery): exact for
 * every n < 2^32 and 1 <= d <= 2^31. E.g. d = 3: l 2, m 0x55555556. */
typedef struct asg_fastdiv {
  uint32_t d, m, l;
} asg_fastdiv;

asg_fastdiv asg__fastdiv(uint32_t d);

/* ---- elementwise families ----
 * The ops one kernel serves on every backend: unary maps (x -> f(x; attr.f))
 * and broadcasting binary ops plus where (gelu_bwd and gelu_tanh_bwd are
 * binary ops of float dtypes only). */
enum { ASG__N_UNARY_OPS = 20, ASG__N_BROADCAST_OPS = 16 };
extern const asg_op asg__unary_ops[ASG__N_UNARY_OPS];
extern const asg_op asg__broadcast_ops[ASG__N_BROADCAST_OPS];
bool asg__is_unary(asg_op op);

/* ---- matmul_bias_act (made by src/passes/fuse.c, fuse_linear.c) ----
 * Inputs (a, w, bias [N]), or (a, w) where attr i3 = 1 (no bias), then
 * optionally a residual r of the output's shape, added last:
 * y = act(a w + bias) + r. The input index of the bias and of the
 * residual, -1 when the step has none. */
int asg__mba_bias(const asg_step *s);
int asg__mba_res(const asg_step *s);

/* ---- fused attention (contract: src/ops/op_attention.c) ----
 * The key mask of an attention step: its input index, or -1 when it has
 * none; *heads: how many consecutive heads (the flattened leading dims of
 * q) share one mask row. */
int asg__attention_mask(const asg_step *s, int64_t *heads);

#ifdef __cplusplus
}
#endif

#endif
