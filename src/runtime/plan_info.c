/* What a static program remembers of its memory plan for graph export
 * (asg_program_write_html): per graph node, where its value lives, the step
 * that makes it and the last step that reads it. */
#include "runtime/compile.h"
#include "runtime/program_internal.h"

asg_status asg__plan_info_build(const asg_graph *g, const asg_compiled *c, asg__plan_info *out) {
  *out = (asg__plan_info){0};
  const int n = c->n_nodes;
  asg__plan_node *v = calloc((size_t)n + 1, sizeof *v);
  if (!v) return asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
  for (int i = 0; i < n; i++) {
    v[i].op = (int)g->nodes[i]->op;
    v[i].kind = c->node_has_buf[i] ? (int)c->node_buf[i].kind : -1;
    v[i].index = c->node_buf[i].index;
    v[i].offset = c->node_buf[i].offset;
    v[i].step = v[i].last = -1;
    const asg_tensor *t = g->nodes[i];
    v[i].bytes = (size_t)asg_shape_numel(t->shape) * asg_dtype_size(t->dtype);
  }
  int *stack = malloc(sizeof *stack * ((size_t)n + 1));
  if (!stack) {
    free(v);
    return asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
  }
  for (int k = 0; k < c->plan.n_steps; k++) {
    const asg_step *s = &c->plan.steps[k];
    if (s->node_id < 0 || s->node_id >= n) continue;
    const asg_tensor *t = g->nodes[s->node_id];
    const bool fused = asg__op_info[s->op].flags & ASG_OPF_FUSED;
    if (s->op != t->op && !fused) continue; /* the copy an assign snapshots first */
    v[t->id].step = k;
    if (s->keep) v[t->id].kept = true;
    int top = 0;
    for (int j = 0; j < t->n_in; j++)
      stack[top++] = t->in[j]->id;
    while (top > 0) { /* a fused step reads the values below the nodes it replaced */
      const int i = stack[--top];
      if (!fused || c->node_has_buf[i]) {
        v[i].last = k;
        continue;
      }
      for (int j = 0; j < g->nodes[i]->n_in && top < n; j++)
        stack[top++] = g->nodes[i]->in[j]->id;
    }
  }
  free(stack);
  /* a view's readers keep its source's storage alive */
  for (int i = n - 1; i >= 0; i--) {
    const asg_tensor *t = g->nodes[i];
    if ((asg__op_info[t->op].flags & ASG_OPF_VIEW) && t->n_in && v[i].last > v[t->in[0]->id].last)
      v[t->in[0]->id].last = v[i].last;
  }
  *out = (asg__plan_info){n, c->plan.n_steps, c->plan.arena_bytes, v};
  return ASG_OK;
}
