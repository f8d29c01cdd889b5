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

#ifdef __cplusplus
}
#endif
#endif
