/* Symbolic dimensions (issue 17): named symbols, hash-consed integer
 * polynomial expressions over them, and the constraints that ops register
 * for what can only be checked once the symbols are bound.
 *
 * A dim value d in asg_shape.dims[] is a constant when d >= 0, reshape's
 * "infer" when d == -1 (an argument only, never a node's dim) and the
 * expression with id -2 - d of the graph's expression table when d <= -2.
 * Expressions are kept in canonical form (terms sorted, coefficients merged,
 * zero terms dropped) and interned, so two equal expressions have one id and
 * shape equality stays an integer compare. An expression that reduces to a
 * constant is that constant. Atoms are the named symbols and floor divisions
 * floordiv(expr, c), c > 0, that do not divide exactly. */
#ifndef ASG_CORE_SYMBOL_H
#define ASG_CORE_SYMBOL_H

#include <stddef.h>

#include "core/internal.h"

static inline bool asg__dim_is_sym(int64_t d) { return d <= -2; }
/* No symbolic dim in s. */
bool asg__shape_is_static(asg_shape s);
/* Any symbol declared on g. */
bool asg__graph_has_symbols(const asg_graph *g);
/* Symbols declared, ids 0..n-1 in declaration order. */
int asg__sym_count(const asg_graph *g);
const char *asg__sym_name(const asg_graph *g, int k);
int64_t asg__sym_max(const asg_graph *g, int k);         /* 0: unbounded */
int asg__sym_find(const asg_graph *g, const char *name); /* -1 if none */
/* If d is exactly one symbol (coefficient 1, no other term), its index, else -1. */
int asg__dim_as_sym(const asg_graph *g, int64_t d);
/* d is a constant >= 0 or an expression id of g. */
bool asg__dim_valid(const asg_graph *g, int64_t d);
/* Value of d under values[k] (the value of symbol k); d >= 0 returns d.
 * -1 and the thread-local error if the result (or a part of it) is negative
 * or overflows. */
int64_t asg__dim_eval(const asg_graph *g, int64_t d, const int64_t *values);
asg_shape asg__shape_eval(const asg_graph *g, asg_shape s, const int64_t *values, asg_status *st);
/* Checks the bound (max) of every symbol, then every registered constraint;
 * the error names the symbol(s), the value(s) and the op label. */
asg_status asg__binding_check(const asg_graph *g, const int64_t *values);
/* Bitmask of the attr.i[] slots of op that hold dims (may be symbolic) and
 * must be evaluated when a graph is specialized. */
uint32_t asg__op_dim_attrs(asg_op op);

/* Symbolic arithmetic for shape rules. Constants fold; an error (degree or
 * size limit, division that is not exact) fails g and returns 0. A result
 * with a negative coefficient is constrained to be >= 0 when it becomes a
 * node's dim (asg__node). */
int64_t asg__dim_add(asg_graph *g, int64_t a, int64_t b);
int64_t asg__dim_sub(asg_graph *g, int64_t a, int64_t b);
int64_t asg__dim_mul(asg_graph *g, int64_t a, int64_t b);
/* a / b, exact. When only a binding can tell (b a constant that does not
 * divide a symbolically) registers "a % b == 0" for op and returns the
 * quotient as a floordiv atom. */
int64_t asg__dim_div_exact(asg_graph *g, int64_t a, int64_t b, const char *op);
/* floor(a / c) for a constant c > 0 (a >= 0). */
int64_t asg__dim_floordiv(asg_graph *g, int64_t a, int64_t c);
/* Product of the dims of s as one dim. */
int64_t asg__shape_numel_dim(asg_graph *g, asg_shape s);

/* Constraints, checked by asg__binding_check: "d >= c" and "d % c == 0"
 * (c > 0). op names the op (the label is "scope/op" of the current scope);
 * msg (may be NULL) says why, e.g. "slice [0:8] needs seq >= 8". A
 * constraint that holds for every binding is not registered; one that never
 * holds fails g now. Return false when g failed. */
bool asg__dim_require_ge(asg_graph *g, int64_t d, int64_t c, const char *op, const char *msg);
bool asg__dim_require_mod(asg_graph *g, int64_t d, int64_t c, const char *op, const char *msg);

/* "batch", "2*batch*seq+1", "floor(seq/2)", "784". */
char *asg__dim_str(const asg_graph *g, int64_t d, char *buf, size_t n);
/* "[batch,784]"; g may be NULL (then symbolic dims print as "?<id>"). */
char *asg__shape_str_g(const asg_graph *g, asg_shape s, char *buf, size_t n);

/* Graph lifetime (src/core/graph.c). */
void asg__sym_free(asg_graph *g);
/* Replaces dst's symbols, expressions and constraints by a deep copy of
 * src's (same ids), for a clone of src that keeps its symbolic dims. */
asg_status asg__sym_copy(asg_graph *dst, const asg_graph *src);

#endif
