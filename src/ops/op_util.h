/* Helpers shared by the op constructors. */
#ifndef ASG_OP_UTIL_H
#define ASG_OP_UTIL_H

#include "core/internal.h"
#include "core/symbol.h"

/* "[2,3]" ("[batch,3]" with symbolic dims of the graph g in scope) into a
 * caller buffer; for error messages. */
#define ASG_SHAPE_BUF 160
#define SHP(s, buf) asg__shape_str_g((g), (s), (buf), sizeof(buf))
/* One dim as text ("784", "batch*seq"), same rules. */
#define DIM(d, buf) asg__dim_str((g), (d), (buf), sizeof(buf))

/* Fails the graph unless x's dtype is floating point. */
bool asg__need_float(asg_graph *g, const char *op, const asg_tensor *x);
/* Fails the graph unless a and b have one dtype. */
bool asg__same_dtype(asg_graph *g, const char *op, const asg_tensor *a, const asg_tensor *b);
/* Axis set -> bitmask (0 axes = all); fails the graph on a bad axis. */
bool asg__axes_mask(asg_graph *g, const char *op, asg_axes axes, int ndim, int64_t *mask);
/* Shape after reducing mask (kept as 1s with keepdim). */
asg_shape asg__reduced_shape(asg_shape s, int64_t mask, bool keepdim);
/* The element count prod(dims[0..n)) for divisors (means, unbiased
 * variances): *konst gets the product of the constant dims; the result is
 * NULL when every dim is constant, else a scalar tensor of dtype dt holding
 * the product of the symbolic dims at run time (a sum of ones per dim, so
 * no divisor is baked from a symbolic dim when building). */
asg_tensor *asg__count_tensor(asg_graph *g, asg_dtype dt, const int64_t *dims, int n,
                              double *konst);

#endif
