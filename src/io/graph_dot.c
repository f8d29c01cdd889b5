/* asg_graph_write_dot: the graph as Graphviz DOT. Name scopes (as drawn:
 * viz_internal.h) become nested clusters, edges carry the producer's dtype
 * and shape, fill colours tell the parts of a training step apart. */
#include <stdio.h>

#include "core/symbol.h"
#include "io/viz_internal.h"

static const char *const fill[] = {"#cfe2ff", "#ffd8a8", "#c3f0c8",
                                   "#e9ecef", "#fff3bf", "#ffffff"};

/* DOT string body: quotes and backslashes escaped, newlines as \n. */
static void dot_str(asg_sbuf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') asg__sb_putn(b, "\\", 1);
    if (*s == '\n') {
      asg__sb_puts(b, "\\n");
      continue;
    }
    asg__sb_putn(b, s, 1);
  }
}

/* Orders scopes component by component ('/' below every other byte), so
 * that a scope's descendants directly follow it. */
static int scope_cmp(const char *a, const char *b) {
  for (;; a++, b++) {
    unsigned ca = *a == '/' ? 1u : (unsigned char)*a, cb = *b == '/' ? 1u : (unsigned char)*b;
    if (ca != cb || !ca) return ca < cb ? -1 : ca > cb;
  }
}

static _Thread_local char **tl_scopes; /* what node_cmp sorts by (no qsort_r in C11) */
static int node_cmp(const void *x, const void *y) {
  int a = *(const int *)x, b = *(const int *)y;
  int c = scope_cmp(tl_scopes[a], tl_scopes[b]);
  return c ? c : (a > b) - (a < b);
}

/* Length of s cut to its first depth components (depth 0: all). */
static size_t cut(const char *s, int depth) {
  size_t i = 0;
  for (int d = 0; s[i]; i++)
    if (s[i] == '/' && depth > 0 && ++d == depth) break;
  return i;
}

/* Number of whole components a and b (cut to la, lb bytes) share. */
static int common_depth(const char *a, size_t la, const char *b, size_t lb) {
  int d = 0;
  size_t i = 0;
  for (;; i++) {
    bool ea = i == la || a[i] == '/', eb = i == lb || b[i] == '/';
    if (ea || eb) {
      if (!(ea && eb)) return d;
      if (i > 0) d++;
      if (i == la || i == lb) return d;
      continue;
    }
    if (a[i] != b[i]) return d;
  }
}

static int depth_of(const char *s, size_t l) {
  if (!l) return 0;
  int d = 1;
  for (size_t i = 0; i < l; i++)
    d += s[i] == '/';
  return d;
}

asg_status asg_graph_write_dot(const asg_graph *g, const char *path, const asg_viz_opts *o) {
  static const char fn[] = "asg_graph_write_dot";
  asg_status st = asg__viz_check_graph(g, path, fn);
  if (st) return st;
  const asg_viz_opts opt = o ? *o : (asg_viz_opts){0};
  if (opt.dot_max_depth < 0)
    return asg__error(ASG_ERR_INVALID, "%s: dot_max_depth is %d; give 0 (all) or more", fn,
                      opt.dot_max_depth);
  asg__viz_model m;
  if ((st = asg__viz_model_build(g, &m))) return st;
  const int n = m.n;
  int *order = malloc(sizeof *order * ((size_t)n + 1));
  if (!order) {
    asg__viz_model_free(&m);
    return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
  }
  for (int i = 0; i < n; i++)
    order[i] = i;
  tl_scopes = m.scope;
  qsort(order, (size_t)n, sizeof *order, node_cmp);

  asg_sbuf b = {0};
  char sh[256];
  asg__sb_puts(&b, "digraph \"");
  dot_str(&b, opt.title ? opt.title : "ASG graph");
  asg__sb_puts(&b,
               "\" {\n  graph [rankdir=TB, fontname=\"Helvetica\", compound=true];\n"
               "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", "
               "fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=8, color=\"#555555\"];\n"
               "  // fill: forward #cfe2ff, backward #ffd8a8, optimizer #c3f0c8, input "
               "#e9ecef, variable #fff3bf, constant #ffffff\n");
  const char *open = ""; /* the scope whose clusters are open now */
  size_t open_len = 0;
  int open_depth = 0, cluster = 0;
  for (int k = 0; k < n; k++) {
    const asg_tensor *t = g->nodes[order[k]];
    const char *s = m.scope[t->id];
    size_t len = cut(s, opt.dot_max_depth);
    int keep = common_depth(open, open_len, s, len), want = depth_of(s, len);
    for (; open_depth > keep; open_depth--)
      asg__sb_printf(&b, "%*s}\n", 2 * open_depth, "");
    while (open_depth < want) { /* open the clusters of the next components */
      size_t st0 = 0, i = 0;
      for (int d = 0; i < len; i++)
        if (s[i] == '/' && ++d == open_depth + 1) break;
      for (size_t j = i; j > 0; j--)
        if (s[j - 1] == '/') {
          st0 = j;
          break;
        }
      open_depth++;
      asg__sb_printf(&b, "%*ssubgraph \"cluster_%d\" {\n%*slabel=\"", 2 * open_depth, "", cluster++,
                     2 * open_depth + 2, "");
      char comp[ASG_SCOPE_MAX];
      snprintf(comp, sizeof comp, "%.*s", (int)(i - st0), s + st0);
      dot_str(&b, comp);
      asg__sb_puts(&b, "\"; style=\"rounded\"; color=\"#868e96\"; tooltip=\"");
      snprintf(comp, sizeof comp, "%.*s", (int)i, s);
      dot_str(&b, comp);
      asg__sb_puts(&b, "\";\n");
    }
    open = s;
    open_len = len;
    const asg__viz_part p = m.part[t->id];
    asg__sb_printf(&b, "%*sn%d [label=\"", 2 * open_depth + 2, "", t->id);
    dot_str(&b, asg__viz_label(t));
    if (t->name && t->name[0] && t->op != ASG_OP_INPUT && t->op != ASG_OP_VARIABLE)
      asg__sb_printf(&b, "\\n(%s)", asg__op_name(t->op));
    if (t->n_in == 0) { /* leaves: their shape (edges show the rest) */
      asg__sb_printf(&b, "\\n%s ", asg_dtype_name(t->dtype));
      dot_str(&b, asg__shape_str_g(g, t->shape, sh, sizeof sh));
    }
    asg__sb_printf(&b, "\", fillcolor=\"%s\"%s, tooltip=\"#%d %s\"];\n", fill[p],
                   t->op == ASG_OP_VARIABLE ? ", shape=cylinder"
                   : t->op == ASG_OP_INPUT  ? ", shape=invhouse"
                   : p == ASG_VIZ_CONST     ? ", shape=note"
                                            : "",
                   t->id, asg__viz_part_name(p));
  }
  for (; open_depth > 0; open_depth--)
    asg__sb_printf(&b, "%*s}\n", 2 * open_depth, "");
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[i];
    for (int k = 0; k < t->n_in; k++) {
      const asg_tensor *in = t->in[k];
      asg__sb_printf(&b, "  n%d -> n%d [label=\"%s ", in->id, t->id, asg_dtype_name(in->dtype));
      dot_str(&b, asg__shape_str_g(g, in->shape, sh, sizeof sh));
      asg__sb_puts(&b, "\"];\n");
    }
  }
  asg__sb_puts(&b, "}\n");
  st = asg__viz_write_file(path, &b, fn);
  asg__sb_free(&b);
  free(order);
  asg__viz_model_free(&m);
  return st;
}
