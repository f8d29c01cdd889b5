/* Graph export (asg/viz.h): DOT and the HTML viewer of an MLP training step,
 * of a symbolic graph and of a compiled program with its memory plan.
 * With the argument "graphviz": only checks that `dot -Tsvg` parses the DOT
 * (exit 77 when Graphviz is not installed). The viewer's script is checked
 * in headless Chromium by tests/viewer/check.sh. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *dir;

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  return s;
}

/* The line of s that contains a and b (a first), or NULL. */
static bool line_with(const char *s, const char *a, const char *b) {
  for (const char *p = s; (p = strstr(p, a)); p++) {
    const char *st = p, *en = strchr(p, '\n');
    while (st > s && st[-1] != '\n')
      st--;
    if (!en) en = p + strlen(p);
    const char *q = strstr(st, b);
    if (q && q < en) return true;
  }
  return false;
}

/* The JSON object of node `name` in the viewer's data: the text from its
 * "nm" to the next node. */
static bool node_has(const char *html, const char *name, const char *what) {
  char key[160];
  snprintf(key, sizeof key, "\"nm\":\"%s\"", name);
  const char *p = strstr(html, key);
  if (!p) return false;
  const char *end = strstr(p, "},\n");
  if (!end) end = strstr(p, "}\n");
  const char *q = strstr(p, what);
  return q && end && q < end;
}

/* x -> fc1 (relu) -> fc2 -> cross-entropy, scoped by hand, plus AdamW. */
static asg_graph *mlp_step(asg_tensor **loss, int64_t batch_dim) {
  asg_graph *g = asg_graph_new();
  int64_t B = batch_dim ? batch_dim : asg_dim(g, "batch", 0);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 6));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(B));
  asg_tensor *w1 = asg_variable(g, "fc1.w", ASG_F32, ASG_SHAPE(6, 5), asg_init_normal(0, 0.1));
  asg_tensor *w2 = asg_variable(g, "fc2.w", ASG_F32, ASG_SHAPE(5, 3), asg_init_normal(0, 0.1));
  asg_scope_push(g, "net");
  asg_scope_push(g, "fc1");
  asg_tensor *h = asg_relu(asg_matmul(x, w1));
  asg_scope_pop(g);
  asg_scope_push(g, "fc2");
  asg_tensor *z = asg_matmul(h, w2);
  asg_scope_pop(g);
  asg_scope_pop(g);
  *loss = asg_cross_entropy_loss(z, y, 0, -100, ASG_REDUCE_MEAN);
  return g;
}

static void test_dot(void) {
  asg_tensor *loss, *up[16];
  int n_up = 0;
  asg_graph *g = mlp_step(&loss, 4);
  TU_CHECK(asg_optim_build(loss, asg_adamw(1e-3, 0.01), 0, NULL, up, 16, &n_up) == ASG_OK, "%s",
           asg_last_error());
  const char *path = tu_path(dir, "mlp.dot");
  asg_viz_opts o = {.title = "mlp \"step\""};
  TU_CHECK(asg_graph_write_dot(g, path, &o) == ASG_OK, "write_dot: %s", asg_last_error());
  char *s = slurp(path);
  TU_CHECK(s && !strncmp(s, "digraph \"mlp \\\"step\\\"\" {", 24), "header: %.40s", s);
  /* nested scopes are nested clusters; gradients and updates have their own */
  TU_CHECK(tu_contains(s, "label=\"net\"") && tu_contains(s, "label=\"fc1\"") &&
               tu_contains(s, "label=\"grad\"") && tu_contains(s, "label=\"optim\""),
           "clusters missing");
  const char *net = s ? strstr(s, "label=\"net\"") : NULL;
  const char *fc1 = net ? strstr(net, "label=\"fc1\"") : NULL;
  TU_CHECK(net && fc1 && !memchr(net, '}', (size_t)(fc1 - net)), "fc1 is not inside net");
  /* leaves with dtype and shape; edges with the producer's */
  TU_CHECK(line_with(s, "label=\"fc1.w\\nf32 [6,5]\"", "shape=cylinder"), "variable label");
  TU_CHECK(line_with(s, "label=\"x\\nf32 [4,6]\"", "shape=invhouse"), "input label");
  TU_CHECK(tu_contains(s, "[label=\"f32 [4,5]\"]"), "edge label of fc1's output");
  /* parts by colour: forward matmul, backward ops, optimizer updates */
  TU_CHECK(line_with(s, "label=\"matmul\"", "#cfe2ff"), "forward colour");
  TU_CHECK(line_with(s, "label=\"softmax_cross_entropy_bwd\"", "#ffd8a8"), "backward colour");
  TU_CHECK(line_with(s, "label=\"adam_param\"", "#c3f0c8"), "optimizer colour");
  TU_CHECK(line_with(s, "label=\"assign\"", "#c3f0c8"), "assign colour");
  TU_CHECK(!line_with(s, "label=\"softmax_cross_entropy_bwd\"", "#cfe2ff"), "bwd drawn as fwd");
  free(s);
  /* depth 1: only top-level clusters */
  o.dot_max_depth = 1;
  TU_CHECK(asg_graph_write_dot(g, path, &o) == ASG_OK, "%s", asg_last_error());
  s = slurp(path);
  TU_CHECK(tu_contains(s, "label=\"net\"") && !tu_contains(s, "label=\"fc1\""), "depth 1");
  free(s);
  o.dot_max_depth = -1;
  TU_CHECK(asg_graph_write_dot(g, path, &o) == ASG_ERR_INVALID &&
               tu_contains(asg_last_error(), "dot_max_depth"),
           "negative depth: %s", asg_last_error());
  TU_CHECK(asg_graph_write_dot(g, tu_path(dir, "no/such/dir.dot"), NULL) == ASG_ERR_IO &&
               tu_contains(asg_last_error(), "no/such/dir.dot"),
           "bad path: %s", asg_last_error());
  TU_CHECK(asg_graph_write_dot(NULL, path, NULL) == ASG_ERR_INVALID, "NULL graph");
  TU_CHECK(asg_graph_write_html(g, NULL, NULL) == ASG_ERR_INVALID, "NULL path");
  asg_graph_free(g);
}

static void test_symbolic(void) {
  asg_tensor *loss;
  asg_graph *g = mlp_step(&loss, 0);
  asg_tensor *w[2] = {asg_graph_find(g, "fc1.w"), asg_graph_find(g, "fc2.w")}, *dw[2];
  TU_CHECK(asg_grad(loss, 2, w, dw) == ASG_OK, "%s", asg_last_error());
  const char *dp = tu_path(dir, "sym.dot"), *hp = tu_path(dir, "sym.html");
  TU_CHECK(asg_graph_write_dot(g, dp, NULL) == ASG_OK, "%s", asg_last_error());
  TU_CHECK(asg_graph_write_html(g, hp, NULL) == ASG_OK, "%s", asg_last_error());
  char *d = slurp(dp), *h = slurp(hp);
  TU_CHECK(tu_contains(d, "label=\"x\\nf32 [batch,6]\""), "symbolic input label");
  TU_CHECK(tu_contains(d, "[label=\"f32 [batch,5]\"]"), "symbolic edge label");
  TU_CHECK(tu_contains(d, "digraph \"ASG graph\""), "default title");
  /* gradient nodes are drawn with the layer they differentiate */
  TU_CHECK(tu_contains(d, "tooltip=\"grad/net/fc2\""), "grad/net/fc2 cluster");
  TU_CHECK(node_has(h, "x", "\"sh\":\"[batch,6]\"") && node_has(h, "x", "\"by\":-1"),
           "symbolic shape and bytes in the viewer data");
  TU_CHECK(node_has(h, "fc1.w", "\"by\":120") && node_has(h, "fc1.w", "\"pt\":4") &&
               node_has(h, "fc1.w", "\"sc\":\"net/fc1\""),
           "variable drawn in its first user's scope");
  TU_CHECK(tu_contains(h, "\"sc\":\"grad/net/fc1\""), "gradient scope in the viewer data");
  TU_CHECK(tu_contains(h, "\"plan\":null") && tu_contains(h, "\"profile\":null"), "no plan");
  /* self-contained: no fetches, no external scripts or styles */
  TU_CHECK(h && !strstr(h, "http://") && !strstr(h, "https://") && !strstr(h, "src=") &&
               !strstr(h, "<link"),
           "the page refers to something outside itself");
  TU_CHECK(tu_contains(h, "#selftest=") || tu_contains(h, "selftest="), "selftest mode");
  /* a symbolic program has no single plan */
  asg_program *p = asg_compile(g, 1, &loss, NULL);
  TU_CHECK(p && asg_program_write_html(p, g, hp, NULL) == ASG_ERR_UNSUPPORTED &&
               tu_contains(asg_last_error(), "symbolic"),
           "symbolic program: %s", asg_last_error());
  asg_program_free(p);
  free(d);
  free(h);
  asg_graph_free(g);
}

static void test_program(void) {
  asg_tensor *loss;
  asg_graph *g = mlp_step(&loss, 4);
  asg_program *p = asg_compile_train(g, loss, asg_adamw(1e-3, 0.01), 0, NULL, NULL);
  TU_CHECK(p != NULL, "compile_train: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  const char *hp = tu_path(dir, "prog.html");
  /* node 0 is x (ids are creation order), node 2 fc1.w */
  asg_viz_opts o = {.title = "a <b>",
                    .profile_json = "{\"unit\":\"ms\",\"runs\":3,"
                                    "\"nodes\":{\"0\":1.5,\"2\":0.25}}"};
  TU_CHECK(asg_program_write_html(p, g, hp, &o) == ASG_OK, "%s", asg_last_error());
  char *h = slurp(hp), want[160];
  snprintf(want, sizeof want, "\"plan\":{\"backend\":\"cpu\",\"arena\":%zu,\"steps\":%d,",
           asg_program_peak_memory(p), asg_program_step_count(p));
  TU_CHECK(tu_contains(h, want), "plan summary %s", want);
  TU_CHECK(tu_contains(h, "<title>a &lt;b&gt;</title>") && tu_contains(h, "\"a \\u003cb\\u003e\""),
           "title escaped");
  TU_CHECK(tu_contains(h, "\"profile\":{\"runs\":3}"), "profile runs");
  TU_CHECK(node_has(h, "x", "\"ms\":1.5") && node_has(h, "fc1.w", "\"ms\":0.25"), "profile times");
  /* buffers: a variable is variable storage from no step; an input is input #0 */
  TU_CHECK(node_has(h, "fc1.w", "\"pl\":[1,"), "fc1.w lives in a variable");
  TU_CHECK(node_has(h, "x", "\"pl\":[3,0,0,-1,"), "x is input 0, made by no step");
  TU_CHECK(node_has(h, "fc1.w.adam_m", "\"pt\":4") && node_has(h, "fc1.w.adam_m", "\"sc\":\"optim"),
           "optimizer state drawn with the updates");
  /* activations: in the arena, made by a step and read later */
  const char *act = strstr(h, "\"op\":\"relu\"");
  const char *pl = act ? strstr(act, "\"pl\":[0,0,") : NULL;
  int step = -9, last = -9;
  size_t off = 0;
  TU_CHECK(pl && sscanf(pl, "\"pl\":[0,0,%zu,%d,%d", &off, &step, &last) == 3 && step >= 0 &&
               last > step && last < asg_program_step_count(p) && off < asg_program_peak_memory(p),
           "relu's buffer and lifetime: %zu %d %d", off, step, last);
  free(h);
  /* malformed profiles name the problem */
  const char *bad[][2] = {{"[1]", "not a JSON object"},
                          {"{\"nodes\":{\"99999\":1}}", "\"99999\""},
                          {"{\"nodes\":{\"0\":\"x\"}}", "not a number"},
                          {"{\"nodes\":{\"0\":-1}}", "not >= 0"},
                          {"{\"unit\":\"s\",\"nodes\":{}}", "\"unit\""},
                          {"{\"runs\":3}", "no \"nodes\""},
                          {"{\"nodes\":", "profile_json"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    o.profile_json = bad[i][0];
    TU_CHECK(asg_program_write_html(p, g, hp, &o) == ASG_ERR_FORMAT &&
                 tu_contains(asg_last_error(), bad[i][1]),
             "profile %s: %s", bad[i][0], asg_last_error());
  }
  /* the program must come from this graph */
  asg_graph *tiny = asg_graph_new();
  asg_input(tiny, "q", ASG_F32, ASG_SHAPE(2));
  TU_CHECK(asg_program_write_html(p, tiny, hp, NULL) == ASG_ERR_INVALID &&
               tu_contains(asg_last_error(), "not compiled from this graph"),
           "other graph: %s", asg_last_error());
  TU_CHECK(asg_program_write_html(NULL, g, hp, NULL) == ASG_ERR_INVALID, "NULL program");
  asg_graph_free(tiny);
  asg_program_free(p);
  asg_graph_free(g);
}

/* `dot -Tsvg` parses what asg_graph_write_dot writes (needs Graphviz). */
static int graphviz(void) {
  if (system("command -v dot >/dev/null 2>&1") != 0) {
    printf("SKIP: Graphviz (dot) is not installed\n");
    return TU_SKIP;
  }
  asg_tensor *loss, *up[16];
  int n_up = 0;
  for (int sym = 0; sym < 2; sym++) {
    asg_graph *g = mlp_step(&loss, sym ? 0 : 4);
    TU_CHECK(asg_optim_build(loss, asg_adam(1e-3), 0, NULL, up, 16, &n_up) == ASG_OK, "%s",
             asg_last_error());
    const char *dp = tu_path(dir, "g.dot"), *sp = tu_path(dir, "g.svg");
    TU_CHECK(asg_graph_write_dot(g, dp, NULL) == ASG_OK, "%s", asg_last_error());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s'", dp, sp);
    TU_CHECK(system(cmd) == 0, "%s failed", cmd);
    char *svg = slurp(sp);
    TU_CHECK(tu_contains(svg, "<svg") && tu_contains(svg, "adam_param"), "svg output");
    free(svg);
    asg_graph_free(g);
  }
  return tu_finish();
}

int main(int argc, char **argv) {
  dir = tu_tmpdir_create("asg_viz");
  if (!dir) return 1;
  int rc;
  if (argc > 1 && !strcmp(argv[1], "graphviz")) {
    rc = graphviz();
  } else {
    test_dot();
    test_symbolic();
    test_program();
    rc = tu_finish();
  }
  tu_tmpdir_remove(dir);
  return rc;
}
