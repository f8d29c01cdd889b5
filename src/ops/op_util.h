/* Helpers shared by the op constructors. */
#ifndef ASG_OP_UTIL_H
#define ASG_OP_UTIL_H

#include "core/internal.h"

/* "[2,3]" into a caller buffer; for error messages. */
#define ASG_SHAPE_BUF 96
#define SHP(s, buf) asg_shape_str((s), (buf), sizeof(buf))

/* Fails the graph unless x's dtype is floating point. */
bool asg__need_float(asg_graph *g, const char *op, const asg_tensor *x);
/* Fails the graph unless a and b have one dtype. */
bool asg__same_dtype(asg_graph *g, const char *op, const asg_tensor *a, const asg_tensor *b);
/* Axis set -> bitmask (0 axes = all); fails the graph on a bad axis. */
bool asg__axes_mask(asg_graph *g, const char *op, asg_axes axes, int ndim, int64_t *mask);
/* Shape after reducing mask (kept as 1s with keepdim). */
asg_shape asg__reduced_shape(asg_shape s, int64_t mask, bool keepdim);

#endif
