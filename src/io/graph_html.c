/* asg_graph_write_html / asg_program_write_html: the graph viewer, one
 * self-contained HTML page. The page is the viewer's CSS and script
 * (src/io/viewer/, embedded at build time as asg__viewer_css/js) and the
 * graph as JSON in a <script type="application/json"> element:
 *   {"title", "parts": [part names], "plan": null | {"backend", "arena",
 *    "steps", "kinds": [buffer kind names]}, "profile": null | {"runs"},
 *    "nodes": [{"id", "op", "nm" (name or null), "sc" (drawn scope),
 *               "rs" (real scope), "sh" (shape), "dt", "by" (bytes, -1 if
 *               symbolic), "in": [ids], "pt" (part), "ms" (profile time),
 *               "pl": [kind, index, offset, step, last, kept] (plan)}]} */
#include <math.h>
#include <stdio.h>

#include "core/symbol.h"
#include "io/viz_internal.h"
#include "runtime/program_internal.h"

extern const char asg__viewer_css[];
extern const char asg__viewer_js[];

/* A JSON string that is also safe inside a <script> element: '<', '>' and
 * '&' escaped. */
static void json_str(asg_sbuf *b, const char *s) {
  asg__sb_putn(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      asg__sb_putn(b, e, 2);
    } else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
      asg__sb_printf(b, "\\u%04x", *p);
    } else {
      asg__sb_putn(b, (const char *)p, 1);
    }
  }
  asg__sb_putn(b, "\"", 1);
}

static void html_text(asg_sbuf *b, const char *s) {
  for (; *s; s++)
    switch (*s) {
    case '<': asg__sb_puts(b, "&lt;"); break;
    case '>': asg__sb_puts(b, "&gt;"); break;
    case '&': asg__sb_puts(b, "&amp;"); break;
    default: asg__sb_putn(b, s, 1);
    }
}

/* Reads the profile blob (asg_viz_opts.profile_json) into ms[] (NaN: no
 * time) and *runs. */
static asg_status read_profile(const char *text, int n, double *ms, int64_t *runs, const char *fn) {
  asg_jval v;
  char err[160];
  if (!asg__json_parse(text, strlen(text), &v, err, sizeof err))
    return asg__error(ASG_ERR_FORMAT, "%s: profile_json: %s", fn, err);
  asg_status st = ASG_OK;
  const asg_jval *nodes = NULL;
  if (v.type != ASG_J_OBJ)
    st = asg__error(ASG_ERR_FORMAT, "%s: profile_json is not a JSON object", fn);
  for (int k = 0; !st && k < v.n; k++) {
    const asg_jval *it = &v.items[k];
    if (!strcmp(v.keys[k], "nodes") && it->type == ASG_J_OBJ)
      nodes = it;
    else if (!strcmp(v.keys[k], "runs") && it->type == ASG_J_NUM && it->is_int && it->i >= 0)
      *runs = it->i;
    else if (!strcmp(v.keys[k], "unit") && it->type == ASG_J_STR && !strcmp(it->s, "ms"))
      continue;
    else if (!strcmp(v.keys[k], "nodes") || !strcmp(v.keys[k], "runs") ||
             !strcmp(v.keys[k], "unit"))
      st = asg__error(ASG_ERR_FORMAT, "%s: profile_json: \"%s\" must be %s", fn, v.keys[k],
                      !strcmp(v.keys[k], "nodes")  ? "an object of node id: ms"
                      : !strcmp(v.keys[k], "runs") ? "a count >= 0"
                                                   : "\"ms\"");
  }
  if (!st && !nodes)
    st = asg__error(ASG_ERR_FORMAT, "%s: profile_json has no \"nodes\" object", fn);
  for (int k = 0; !st && k < nodes->n; k++) {
    const char *key = nodes->keys[k];
    char *end = NULL;
    long id = strtol(key, &end, 10);
    const asg_jval *it = &nodes->items[k];
    if (!key[0] || *end || id < 0 || id >= n)
      st = asg__error(ASG_ERR_FORMAT,
                      "%s: profile_json: node \"%s\" is not a node id of the graph (0..%d)", fn,
                      key, n - 1);
    else if (it->type != ASG_J_NUM)
      st = asg__error(ASG_ERR_FORMAT, "%s: profile_json: node \"%s\": the time is not a number", fn,
                      key);
    else {
      /* the parser keeps integers exact; read the literal back for the rest */
      double x = it->is_int ? (double)it->i : strtod(text + it->pos, NULL);
      if (!isfinite(x) || x < 0)
        st = asg__error(ASG_ERR_FORMAT, "%s: profile_json: node \"%s\": time %g ms is not >= 0", fn,
                        key, x);
      ms[id] = x;
    }
  }
  asg__json_free(&v);
  return st;
}

static asg_status write_html(const asg_graph *g, const asg__plan_info *plan, const char *backend,
                             const char *path, const asg_viz_opts *o, const char *fn) {
  const asg_viz_opts opt = o ? *o : (asg_viz_opts){0};
  asg__viz_model m;
  asg_status st = asg__viz_model_build(g, &m);
  if (st) return st;
  const int n = m.n;
  double *ms = NULL;
  int64_t runs = 0;
  if (opt.profile_json) {
    ms = malloc(sizeof *ms * ((size_t)n + 1));
    if (!ms) {
      asg__viz_model_free(&m);
      return asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
    }
    for (int i = 0; i < n; i++)
      ms[i] = NAN;
    if ((st = read_profile(opt.profile_json, n, ms, &runs, fn))) {
      free(ms);
      asg__viz_model_free(&m);
      return st;
    }
  }
  const char *title = opt.title ? opt.title : "ASG graph";
  asg_sbuf b = {0};
  char sh[256];
  asg__sb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
  html_text(&b, title);
  asg__sb_puts(&b, "</title>\n<style>\n");
  asg__sb_puts(&b, asg__viewer_css);
  asg__sb_puts(&b,
               "</style>\n</head>\n<body>\n<script type=\"application/json\" id=\"asg-data\">\n");
  asg__sb_puts(&b, "{\"title\":");
  json_str(&b, title);
  asg__sb_puts(&b, ",\"parts\":[");
  for (int p = 0; p <= ASG_VIZ_CONST; p++)
    asg__sb_printf(&b, "%s\"%s\"", p ? "," : "", asg__viz_part_name((asg__viz_part)p));
  asg__sb_puts(&b, "],\"plan\":");
  if (plan)
    asg__sb_printf(&b,
                   "{\"backend\":\"%s\",\"arena\":%zu,\"steps\":%d,"
                   "\"kinds\":[\"arena\",\"variable\",\"constant\",\"input\"]}",
                   backend, plan->arena_bytes, plan->n_steps);
  else
    asg__sb_puts(&b, "null");
  if (ms)
    asg__sb_printf(&b, ",\"profile\":{\"runs\":%lld}", (long long)runs);
  else
    asg__sb_puts(&b, ",\"profile\":null");
  asg__sb_puts(&b, ",\"nodes\":[\n");
  for (int i = 0; i < n; i++) {
    const asg_tensor *t = g->nodes[i];
    bool sym = false;
    for (int d = 0; d < t->shape.ndim; d++)
      sym = sym || t->shape.dims[d] < 0;
    asg__sb_printf(&b, "%s{\"id\":%d,\"op\":\"%s\",\"nm\":", i ? ",\n" : "", i,
                   asg__op_name(t->op));
    if (t->name)
      json_str(&b, t->name);
    else
      asg__sb_puts(&b, "null");
    asg__sb_puts(&b, ",\"sc\":");
    json_str(&b, m.scope[i]);
    asg__sb_puts(&b, ",\"rs\":");
    json_str(&b, t->scope);
    asg__sb_puts(&b, ",\"sh\":");
    json_str(&b, asg__shape_str_g(g, t->shape, sh, sizeof sh));
    asg__sb_printf(&b, ",\"dt\":\"%s\",\"by\":%lld,\"pt\":%d,\"in\":[", asg_dtype_name(t->dtype),
                   sym ? -1LL
                       : (long long)asg_shape_numel(t->shape) * (long long)asg_dtype_size(t->dtype),
                   (int)m.part[i]);
    for (int k = 0; k < t->n_in; k++)
      asg__sb_printf(&b, "%s%d", k ? "," : "", t->in[k]->id);
    asg__sb_puts(&b, "]");
    if (ms && !isnan(ms[i])) asg__sb_printf(&b, ",\"ms\":%.6g", ms[i]);
    if (plan && i < plan->n_nodes) {
      const asg__plan_node *pn = &plan->nodes[i];
      asg__sb_printf(&b, ",\"pl\":[%d,%d,%zu,%d,%d,%d]", pn->kind, pn->index, pn->offset, pn->step,
                     pn->last, pn->kept ? 1 : 0);
    }
    asg__sb_puts(&b, "}");
  }
  asg__sb_puts(&b, "\n]}\n</script>\n<script>\n");
  asg__sb_puts(&b, asg__viewer_js);
  asg__sb_puts(&b, "</script>\n</body></html>\n");
  st = asg__viz_write_file(path, &b, fn);
  asg__sb_free(&b);
  free(ms);
  asg__viz_model_free(&m);
  return st;
}

asg_status asg_graph_write_html(const asg_graph *g, const char *path, const asg_viz_opts *o) {
  asg_status st = asg__viz_check_graph(g, path, "asg_graph_write_html");
  return st ? st : write_html(g, NULL, NULL, path, o, "asg_graph_write_html");
}

asg_status asg_program_write_html(const asg_program *p, const asg_graph *g, const char *path,
                                  const asg_viz_opts *o) {
  static const char fn[] = "asg_program_write_html";
  asg_status st = asg__viz_check_graph(g, path, fn);
  if (st) return st;
  if (!p) return asg__error(ASG_ERR_INVALID, "%s: the program is NULL", fn);
  const asg__plan_info *plan = asg__program_plan_info(p);
  if (!plan)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "%s: a symbolic program has one plan per binding, none to show; export the "
                      "graph with asg_graph_write_html",
                      fn);
  bool same = plan->n_nodes <= g->n_nodes;
  for (int i = 0; same && i < plan->n_nodes; i++)
    same = plan->nodes[i].op == (int)g->nodes[i]->op;
  if (!same)
    return asg__error(ASG_ERR_INVALID, "%s: the program was not compiled from this graph", fn);
  return write_html(g, plan, asg_program_backend(p), path, o, fn);
}
