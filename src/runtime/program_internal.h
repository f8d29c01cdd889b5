/* What the optimizer (src/optim) tells a program it compiled: internal. */
#ifndef ASG_RUNTIME_PROGRAM_INTERNAL_H
#define ASG_RUNTIME_PROGRAM_INTERNAL_H

#include "asg/program.h"

typedef struct asg__optim_info {
  /* > 0: the non-finite guard is on; asg_program_run fails once the
   * variable "optim/skip_streak" reaches this count. */
  int64_t max_skips;
  /* Floor of the dynamic loss scale (0 without loss scaling). */
  double loss_scale_min;
} asg__optim_info;

void asg__program_set_optim_info(asg_program *p, const asg__optim_info *info);
/* All zero for programs not made by asg_compile_train. */
const asg__optim_info *asg__program_optim_info(const asg_program *p);

/* The memory plan of a static program per graph node, kept for graph
 * export (src/runtime/plan_info.c; read by src/io/graph_html.c). */
typedef struct asg__plan_node {
  int op;        /* the node's op: export checks the graph is the one compiled */
  int kind;      /* asg_buf_kind, or -1: no buffer */
  int index;     /* variable / constant / input number */
  size_t offset; /* bytes into that buffer (the arena for ASG_BUF_ARENA) */
  size_t bytes;
  int step;  /* the step that computes it, -1 for leaves */
  int last;  /* the last step that reads it, -1 if none */
  bool kept; /* read after the run (an output) */
} asg__plan_node;
typedef struct asg__plan_info {
  int n_nodes, n_steps;
  size_t arena_bytes;
  asg__plan_node *nodes; /* n_nodes, indexed by node id */
} asg__plan_info;
struct asg_compiled;
asg_status asg__plan_info_build(const asg_graph *g, const struct asg_compiled *c,
                                asg__plan_info *out);
/* NULL for symbolic programs (their plans belong to specialized graphs). */
const asg__plan_info *asg__program_plan_info(const asg_program *p);

#endif
