/* Seeing a graph: export as Graphviz DOT or as one self-contained HTML page
 * (docs/tools.md, "Graph viewer").
 *
 * Both exports show every node of the graph with its op, name, shape
 * (symbolic dims by name, as asg_graph_shape_str writes them) and dtype;
 * name scopes are nested boxes (DOT clusters; collapsible in the viewer) and
 * colours tell the parts of a training step apart:
 *   forward    nodes built by the user and the layers (blue)
 *   backward   nodes made by asg_grad / asg_vjp and dedicated backward ops
 *              (orange)
 *   optimizer  nodes in the "optim" scope, assign ops and updates of
 *              "optim/" variables (green)
 *   leaves     inputs (grey), variables (yellow), constants (white)
 *
 * The HTML file has its scripts and styles inline and fetches nothing, so it
 * opens offline in any browser. Opening it with the URL fragment
 * "#selftest=NODE" (a node's name, or "scope/op#id" as the viewer labels
 * it) expands the scope holding that node, searches for it, and writes
 * "VIEWER-SELFTEST PASS ..." or "VIEWER-SELFTEST FAIL ..." into the page
 * (element id "selftest"): a check a headless browser can make. */
#ifndef ASG_VIZ_H
#define ASG_VIZ_H

#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_viz_opts {
  /* Page / graph title (NULL: "ASG graph"). */
  const char *title;
  /* Per-node times to show in the HTML viewer (NULL: none), as JSON text:
   *   {"unit": "ms", "runs": 10, "nodes": {"<node id>": 0.125, ...}}
   * "nodes" maps a node id (the decimal index of the node in its graph,
   * which is its creation order and the id the viewer shows as "#id") to
   * its mean time per run in milliseconds; "unit" (only "ms") and "runs"
   * are optional. The viewer sums the times per name scope. A malformed
   * blob is an error naming the offending key. DOT ignores it. */
  const char *profile_json;
  /* DOT only: draw each name scope nested at most this deep as a cluster
   * (0: every level). */
  int dot_max_depth;
} asg_viz_opts;

/* Writes g as Graphviz DOT to path ("dot -Tsvg path" renders it). o may be
 * NULL. A graph with an error is written as far as it was built. */
ASG_API asg_status asg_graph_write_dot(const asg_graph *g, const char *path, const asg_viz_opts *o);

/* Writes g as one self-contained HTML page (the viewer) to path. o may be
 * NULL. */
ASG_API asg_status asg_graph_write_html(const asg_graph *g, const char *path,
                                        const asg_viz_opts *o);

/* The same for a program compiled from g (asg_compile, asg_compile_train;
 * g must be the graph it was compiled from, possibly grown since), adding
 * its memory plan to the side panel: each node's buffer (the activation
 * arena at a byte offset, or a variable, constant or input), its bytes, and
 * its lifetime in steps (the step that computes it to the last step that
 * reads it), plus the arena size and the step count. Nodes the program does
 * not run are drawn faded. Symbolic programs have no single plan:
 * ASG_ERR_UNSUPPORTED (export the graph instead). */
ASG_API asg_status asg_program_write_html(const asg_program *p, const asg_graph *g,
                                          const char *path, const asg_viz_opts *o);

#ifdef __cplusplus
}
#endif
#endif
