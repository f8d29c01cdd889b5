/* What the graph exports (graph_dot.c, graph_html.c) share: each node's part
 * of a training step and the scope it is drawn in (src/io/graph_model.c). */
#ifndef ASG_IO_VIZ_INTERNAL_H
#define ASG_IO_VIZ_INTERNAL_H

#include "asg/viz.h"
#include "io/io_internal.h"

typedef enum asg__viz_part {
  ASG_VIZ_FWD,
  ASG_VIZ_BWD,
  ASG_VIZ_OPT,
  ASG_VIZ_INPUT,
  ASG_VIZ_VAR,
  ASG_VIZ_CONST
} asg__viz_part;

typedef struct asg__viz_model {
  int n;
  asg__viz_part *part;
  /* Where a node is drawn: its own scope for forward nodes; gradient nodes
   * under "grad/<scope of the forward value they differentiate>" and
   * optimizer nodes of the "optim" scope under "optim/<scope of the
   * parameter they update>", so that a layer's backward and update are
   * boxes of their own rather than thousands of nodes at the top. */
  char **scope;
} asg__viz_model;

asg_status asg__viz_model_build(const asg_graph *g, asg__viz_model *m);
void asg__viz_model_free(asg__viz_model *m);
const char *asg__viz_part_name(asg__viz_part p);
/* The node's short label: its name (inputs, variables) or its op. */
const char *asg__viz_label(const asg_tensor *t);
/* Checks g for an export call named fn. */
asg_status asg__viz_check_graph(const asg_graph *g, const char *path, const char *fn);
/* Writes b to path (ASG_ERR_IO naming the file; ASG_ERR_OOM if b ran out). */
asg_status asg__viz_write_file(const char *path, const asg_sbuf *b, const char *fn);

#endif
