/* Graph-to-graph passes. They rewrite or extend a graph with ordinary
 * nodes, know nothing of programs or backends, and are called by the layers
 * above them (autograd, runtime). One file per pass. */
#ifndef ASG_PASSES_H
#define ASG_PASSES_H

#include "core/internal.h"

/* ---- rematerialization (gradient checkpointing), remat.c ----
 * Used by asg_vjp while it walks the forward nodes in reverse: a gradient
 * rule of a node inside a checkpointed scope is given the node's recomputed
 * copy instead of the node, so the backward reads copies made at that point
 * of the walk (creation order is the schedule: after the backward of every
 * later node) and the forward values die after their forward readers. */
typedef struct asg_remat asg_remat;

/* State for one gradient over the forward nodes with ids < n; *out NULL
 * when no node of them is in a checkpointed scope (nothing to do). */
asg_status asg__remat_begin(asg_graph *g, int n, asg_remat **out);
/* The node a gradient rule should read for t: t itself outside checkpointed
 * scopes (and for leaves, assigns and collectives), else its copy, made on
 * first use together with the copies of the nodes of its scope it depends
 * on (inputs from outside the scope are read as they are). r may be NULL.
 * NULL when building a copy failed (the graph has the error). */
asg_tensor *asg__remat_node(asg_remat *r, asg_tensor *t);
void asg__remat_end(asg_remat *r); /* NULL is ignored */
/* Whether a layer declared a block in g (asg_graph_declare_block): what
 * asg_compile_opts.checkpoint_blocks recomputes when g->remat_blocks is set
 * (by asg_compile_train while it builds the gradient). */
bool asg__remat_has_blocks(const asg_graph *g);

/* ---- fusion into fused ops, fuse.c (rules: fuse_conv.c, fuse_linear.c) ----
 * Run by compile (runtime/compile.c) on the graph it is about to schedule,
 * after autograd: fused ops (ops.def flag FUSED) need no gradient rule.
 * asg__fuse_begin points g->nodes at a copy of the node table in which
 * each fused node has the id of the node it replaces, so the nodes between
 * become unread and are not compiled; asg__fuse_end restores g's own table
 * (compile adds no nodes in between). Rules, each matched at an add whose
 * other readers leave it alone, with an optional relu after it (read by
 * nothing else) folded in as act 1 (f32 linear: or gelu_tanh, act 2):
 *   conv2d + per-channel bias [O] -> conv2d_bias_act  (ASG_FUSE_CONV=0: off)
 *   matmul + bias [N]             -> matmul_bias_act  (ASG_FUSE_LINEAR=0: off)
 *   ... without an activation, then + r of the output's shape (the residual
 *   stream after a projection) -> matmul_bias_act with r as its input 3,
 *   added last; matmul + r without a bias -> matmul_bias_act (a, w, r),
 *   attr i3 = 1                   (ASG_FUSE_RESIDUAL=0: off)
 * Nothing is fused where no node, no output in outs, reads what lies
 * between. sum(a * b) over the last axis, the products read by nothing
 * else -> rowdot(a, b) (ASG_FUSE_ROWDOT=0: off). Then values another step
 * computes anyway become its further
 * outputs (aux nodes: attention_lse -> the attention's log-sum-exp; the
 * layernorm and batch-norm gamma and beta gradients -> the *_bwd_x step's;
 * a batch norm's batch mean and variance -> its forward step's;
 * ASG_FUSE_STATS=0: off). *out NULL when nothing was fused. */
typedef struct asg_fusion asg_fusion;
asg_status asg__fuse_begin(asg_graph *g, int n_out, asg_tensor *const *outs, asg_fusion **out);
void asg__fuse_end(asg_graph *g, asg_fusion *f); /* NULL is ignored */

/* What a rule sees: readers[i] counts the nodes reading node i (an output
 * counts 2), reader[i] is one of them. */
typedef struct asg_fuse_view {
  asg_graph *g;
  int *readers, *reader;
} asg_fuse_view;
/* A rule's fused node: op, inputs, attributes; act goes to attr.i[act_attr]
 * (0: none, 1: relu, 2: gelu_tanh where the rule sets gelu_tanh). */
typedef struct asg_fuse_match {
  const asg_tensor *main; /* the node whose scope the fused one takes (profiles) */
  asg_op op;
  int n_in;
  asg_tensor *in[4];
  asg_attrs attr;
  int act_attr;
  bool gelu_tanh;
  bool no_act; /* no activation after it (the residual form: it is added last) */
} asg_fuse_match;
bool asg__fuse_conv_match(const asg_fuse_view *v, asg_tensor *add, asg_fuse_match *m);
bool asg__fuse_linear_match(const asg_fuse_view *v, asg_tensor *add, asg_fuse_match *m);
/* Row dot products (fuse_rowdot.c, ASG_FUSE_ROWDOT=0: off), matched at a sum. */
bool asg__fuse_rowdot_match(const asg_fuse_view *v, asg_tensor *sum, asg_fuse_match *m);
/* Further-output rules (fuse_stats.c, ASG_FUSE_STATS=0: off): the step
 * whose further output t can be (*slot: which, from 1), or NULL. used[i]:
 * bit k set when node i already gives further output k. fuse.c then swaps
 * in aux(host, t's inputs) for t. */
asg_tensor *asg__fuse_stats_match(const asg_fuse_view *v, const asg_tensor *t,
                                  const unsigned char *used, int *slot);

#endif
