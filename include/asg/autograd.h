/* Graph-to-graph reverse-mode differentiation. */
#ifndef ASG_AUTOGRAD_H
#define ASG_AUTOGRAD_H

#include "asg/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Adds to loss's graph the nodes computing d(loss)/d(wrt[i]) for each i and
 * stores them in grads[i] (same shape and dtype as wrt[i]). loss must hold
 * one element. A wrt that loss does not depend on gets zeros. The result is
 * ordinary graph, so it can be differentiated again. */
ASG_API asg_status asg_grad(asg_tensor *loss, int n, asg_tensor *const *wrt, asg_tensor **grads);

/* Same with an explicit upstream gradient dloss (loss's shape): a
 * vector-Jacobian product. */
ASG_API asg_status asg_vjp(asg_tensor *y, asg_tensor *dy, int n, asg_tensor *const *wrt,
                           asg_tensor **grads);

/* Gradient checkpointing (docs/training.md): gradients built after this
 * call (asg_grad, asg_vjp, asg_compile_train) do not keep the forward values
 * made inside `scope`; they recompute them from the scope's inputs (which
 * are kept) just before the scope's backward, after the backward of
 * everything built later. Less activation memory (asg_program_peak_memory)
 * for about one more forward pass of the scope. A node is inside when its
 * scope is `scope` or begins with it followed by '/' (a nested scope) or
 * '.' (a child layer of asg/nn.h, named "<parent>.<child>"): "h.3" covers
 * "h.3/attn" and "h.3.ln_1" but not "h.30". Random ops recomputed draw the
 * same values (same seed, same run); assigns, collectives and leaves are
 * never recomputed. Mark a scope after building it: ASG_ERR_NOT_FOUND (and
 * the graph's top-level scopes in the message) when no node is inside it,
 * ASG_ERR_INVALID for NULL or "". Nested marks: the outermost wins. Default:
 * nothing is recomputed. */
ASG_API asg_status asg_graph_checkpoint_scope(asg_graph *g, const char *scope);
/* Declares `scope` a block of the model: asg_compile_opts.checkpoint_blocks
 * recomputes every declared block as if each were passed to
 * asg_graph_checkpoint_scope. asg_nn_transformer_block and asg_lm_forward
 * declare theirs (the layer's scope, "h.3"); call it for blocks of your own.
 * The scope need not exist yet. */
ASG_API asg_status asg_graph_declare_block(asg_graph *g, const char *scope);

#ifdef __cplusplus
}
#endif
#endif
