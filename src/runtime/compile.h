/* Graph -> plan. */
#ifndef ASG_RUNTIME_COMPILE_H
#define ASG_RUNTIME_COMPILE_H

#include "runtime/plan.h"

typedef struct asg_compiled {
  asg_plan plan;
  asg_tensor **vars, **consts, **inputs; /* leaves in buffer-index order */
  int n_vars, n_consts, n_inputs;
  asg_buf_ref *node_buf; /* per graph node id: where its value lives */
  char *node_has_buf;
  int n_nodes;
} asg_compiled;

asg_status asg__compile_graph(asg_graph *g, int n_out, asg_tensor *const *outs, asg_compiled *c);
void asg__compiled_free(asg_compiled *c);
/* The compile-time rules of cache_write over the nodes need[] marks (those
 * the outputs depend on); also run when a symbolic program is compiled. */
asg_status asg__cache_write_check(const asg_graph *g, const char *need);

#endif
