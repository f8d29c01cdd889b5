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

/* fuse: run the fusion passes first (asg_compile_opts.no_fusion off). */
asg_status asg__compile_graph(asg_graph *g, int n_out, asg_tensor *const *outs, bool fuse,
                              asg_compiled *c);
void asg__compiled_free(asg_compiled *c);
/* The compile-time rules of cache_write over the nodes need[] marks (those
 * the outputs depend on); also run when a symbolic program is compiled. */
asg_status asg__cache_write_check(const asg_graph *g, const char *need);
/* Sets need[id] for the outputs and every node they depend on. */
void asg__mark_needed(const asg_graph *g, int n_out, asg_tensor *const *outs, char *need);
/* The collectives among the needed nodes must have the communicator they
 * were built for (a world size, a root inside it) and, under a torchrun-style
 * rendezvous, the CUDA backend; checked before any compile, static or
 * symbolic. */
asg_status asg__collective_check(const asg_graph *g, const char *need, asg_comm *comm,
                                 const char *backend);

#endif
