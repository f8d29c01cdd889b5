/* Graph copies for symbolic programs (src/runtime/symbolic.c): internal. */
#ifndef ASG_CORE_SPECIALIZE_H
#define ASG_CORE_SPECIALIZE_H

#include "core/internal.h"

/* Copies g node by node, so that every node keeps its id; updates, the seed
 * and the eval mode come along.
 * - values == NULL: a symbolic copy (dims verbatim, g's symbols, expressions
 *   and constraints copied) that owns its names, scopes and data: it outlives
 *   g. The copy of a symbolic program's graph.
 * - otherwise a static graph: every dim of a shape and every dim attribute
 *   (asg__op_dim_attrs) evaluated under values (value of symbol k). It
 *   borrows names, scopes and constant data from g, so it must not outlive
 *   g. need (may be NULL: all) marks the nodes whose shapes must evaluate;
 *   the others become scalars (never compiled).
 * NULL, an error set and its status in *st on failure. */
asg_graph *asg__graph_specialize(const asg_graph *g, const int64_t *values, const char *need,
                                 asg_status *st);

#endif
