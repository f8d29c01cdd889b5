/* Gradient rules: one per differentiable op, registered per family. */
#ifndef ASG_GRAD_H
#define ASG_GRAD_H

#include "core/internal.h"

/* Given node y and the gradient dy of y's shape, sets dx[i] to the gradient
 * for input i where need[i] (NULL leaves it zero). dx[i] may have y's
 * broadcast shape: the engine sums it down to the input's shape. Errors go
 * to the graph (sticky) like any op construction. */
typedef void (*asg_grad_rule)(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx);

void asg_grad_register_elementwise(asg_grad_rule *t);
void asg_grad_register_reduce(asg_grad_rule *t);
void asg_grad_register_matmul(asg_grad_rule *t);
void asg_grad_register_shape(asg_grad_rule *t);
void asg_grad_register_index(asg_grad_rule *t);
void asg_grad_register_sort(asg_grad_rule *t);
void asg_grad_register_nn(asg_grad_rule *t);
void asg_grad_register_conv(asg_grad_rule *t);
void asg_grad_register_attention(asg_grad_rule *t);
void asg_grad_register_collective(asg_grad_rule *t);
void asg_grad_register_custom(asg_grad_rule *t);
void asg_grad_register_resample(asg_grad_rule *t);

/* Sums x over broadcast dims so it has shape s. */
asg_tensor *asg__sum_to(asg_tensor *x, asg_shape s);
/* The rule table (filled on first use). */
const asg_grad_rule *asg__grad_rules(void);

#endif
