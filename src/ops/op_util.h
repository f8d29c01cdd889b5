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
/* Divisors (means, unbiased variances) over dims that may be symbolic.
 * asg__count_dim: the product of dims[0..n) as *konst (the constant dims)
 * times the returned dim (the symbolic dims' product; 0 when every dim is
 * constant). asg__dim_ratio: a scalar fill of dtype dt whose value,
 * (a d + b) / (c d + e) computed in double, is set when the graph is
 * specialized (d evaluated); so `x * ratio` specializes to exactly the
 * graph that `asg_mul_scalar(x, value)` builds for a static shape, and no
 * divisor is baked from a symbolic dim while building. */
int64_t asg__count_dim(asg_graph *g, const int64_t *dims, int n, int64_t *konst);
asg_tensor *asg__dim_ratio(asg_graph *g, asg_dtype dt, int64_t d, int64_t a, int64_t b, int64_t c,
                           int64_t e);

#endif
