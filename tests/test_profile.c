/* The profiler through the public API (asg/profile.h): per-step times of a
 * CPU train step, their aggregation by op and by name scope, memory, the
 * Chrome trace JSON, and the errors of programs that were not profiled. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { B = 8, IN = 16, HID = 32, OUT = 4 };

/* block0/{fc1, relu, fc2}, then the loss at the top level. */
static asg_program *mlp_step(int profile) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, IN));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(B));
  asg_scope_push(g, "block0");
  asg_layer *l[] = {asg_nn_linear(g, "fc1", IN, HID), asg_nn_activation(g, "relu", ASG_ACT_RELU),
                    asg_nn_linear(g, "fc2", HID, OUT)};
  asg_tensor *logits = asg_layer_apply(l[2], asg_layer_apply(l[1], asg_layer_apply(l[0], x)));
  asg_scope_pop(g);
  asg_tensor *loss = asg_cross_entropy_loss(logits, y, 0, -100, ASG_REDUCE_MEAN);
  asg_compile_opts o = {.backend = "cpu", .num_threads = 1, .profile = profile};
  asg_program *p = asg_compile_train(g, loss, asg_adam(1e-3), 0, NULL, &o);
  asg_graph_free(g);
  if (!p) return NULL;
  double xv[B * IN], yv[B];
  tu_rand(1, xv, B * IN, -1, 1);
  for (int i = 0; i < B; i++)
    yv[i] = i % OUT;
  tu_feed(p, "x", ASG_F32, xv, B * IN);
  tu_feed(p, "y", ASG_I32, yv, B);
  return p;
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-9 + 1e-9 * fabs(b); }

/* Whether scope s is inside (or is) scope outer. */
static bool within(const char *s, const char *outer) {
  size_t n = strlen(outer);
  return n == 0 || (strncmp(s, outer, n) == 0 && (s[n] == '\0' || s[n] == '/'));
}

static void check_tables(asg_program *p, const asg_profile *r, uint64_t runs) {
  TU_CHECK(r->runs == runs, "runs %llu, want %llu", (unsigned long long)r->runs,
           (unsigned long long)runs);
  TU_CHECK(!strcmp(r->backend, "cpu"), "backend %s", r->backend);
  TU_CHECK(r->n_steps == asg_program_step_count(p) && r->n_steps > 0, "%d steps, program has %d",
           r->n_steps, asg_program_step_count(p));
  double sum = 0;
  int bad = 0;
  for (int i = 0; i < r->n_steps; i++) {
    const asg_profile_step *s = &r->steps[i];
    bad += !(s->ms >= 0 && s->last_ms >= 0) || !s->name || !s->op || !s->scope;
    /* the label is "scope/op..." */
    if (s->scope[0]) bad += strncmp(s->name, s->scope, strlen(s->scope)) != 0;
    sum += s->ms;
  }
  TU_CHECK(bad == 0, "%d steps with a negative time or a bad name / scope", bad);
  TU_CHECK(near(r->steps_ms, sum) && sum > 0, "steps_ms %g, sum of steps %g", r->steps_ms, sum);
  /* steps run inside asg_program_run: their sum cannot exceed its wall time
   * (up to clock granularity) */
  TU_CHECK(r->steps_ms <= r->run_ms * 1.01 + 0.01, "steps %g ms > run %g ms", r->steps_ms,
           r->run_ms);
  /* by op: each group is the sum of its steps; slowest first */
  double op_sum = 0;
  int op_bad = 0;
  for (int k = 0; k < r->n_ops; k++) {
    double ms = 0;
    int n = 0;
    for (int i = 0; i < r->n_steps; i++)
      if (!strcmp(r->steps[i].op, r->ops[k].name)) ms += r->steps[i].ms, n++;
    op_bad += !near(r->ops[k].ms, ms) || r->ops[k].steps != n;
    if (k) op_bad += r->ops[k].ms > r->ops[k - 1].ms;
    op_sum += r->ops[k].ms;
  }
  TU_CHECK(op_bad == 0 && near(op_sum, sum), "by op: %d groups disagree with their steps", op_bad);
  TU_CHECK(r->n_ops >= 4, "%d ops (matmul, relu, the loss, adam...)", r->n_ops);
  /* by scope: inclusive = steps inside; self = steps directly in it */
  double self_sum = 0;
  int sc_bad = 0, fc1 = -1, block = -1, top = -1;
  for (int k = 0; k < r->n_scopes; k++) {
    const asg_profile_group *gr = &r->scopes[k];
    double ms = 0, self = 0;
    int n = 0;
    for (int i = 0; i < r->n_steps; i++) {
      if (within(r->steps[i].scope, gr->name)) ms += r->steps[i].ms;
      if (!strcmp(r->steps[i].scope, gr->name)) self += r->steps[i].ms, n++;
    }
    sc_bad += !near(gr->ms, ms) || !near(gr->self_ms, self) || gr->steps != n;
    self_sum += gr->self_ms;
    if (k && within(r->scopes[k - 1].name, gr->name) && strcmp(r->scopes[k - 1].name, gr->name))
      sc_bad++; /* a child listed before its parent */
    if (!strcmp(gr->name, "block0/fc1")) fc1 = k;
    if (!strcmp(gr->name, "block0")) block = k;
    if (!gr->name[0]) top = k;
  }
  TU_CHECK(sc_bad == 0 && near(self_sum, sum), "by scope: %d groups disagree with their steps",
           sc_bad);
  TU_CHECK(fc1 >= 0 && block >= 0 && top >= 0, "scopes block0 %d, block0/fc1 %d, top %d", block,
           fc1, top);
  if (fc1 >= 0 && block >= 0 && top >= 0) {
    TU_CHECK(r->scopes[fc1].depth == 2 && r->scopes[block].depth == 1 && r->scopes[top].depth == 0,
             "depths %d %d %d", r->scopes[top].depth, r->scopes[block].depth, r->scopes[fc1].depth);
    TU_CHECK(r->scopes[block].ms >= r->scopes[fc1].ms && r->scopes[fc1].steps > 0 &&
                 near(r->scopes[top].ms, sum),
             "block0 %g ms, block0/fc1 %g ms (%d steps), all %g ms", r->scopes[block].ms,
             r->scopes[fc1].ms, r->scopes[fc1].steps, r->scopes[top].ms);
  }
  /* memory */
  size_t dev = 0;
  asg_program_device_memory(p, NULL, &dev);
  TU_CHECK(r->arena_bytes == asg_program_peak_memory(p) &&
               r->persistent_bytes == asg_program_persistent_memory(p) && r->persistent_bytes > 0,
           "arena %zu / %zu, persistent %zu / %zu", r->arena_bytes, asg_program_peak_memory(p),
           r->persistent_bytes, asg_program_persistent_memory(p));
  TU_CHECK(r->device_peak_bytes >= r->arena_bytes + r->persistent_bytes &&
               r->device_peak_bytes <= dev,
           "device peak %zu, arena + persistent %zu, live now %zu", r->device_peak_bytes,
           r->arena_bytes + r->persistent_bytes, dev);
}

/* Counts occurrences of needle in the file. */
static int count_in_file(const char *path, const char *needle) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  int c = 0;
  for (const char *s = strstr(buf, needle); s; s = strstr(s + 1, needle))
    c++;
  return c;
}

/* The trace event format's rules, checked by Python's JSON parser. */
static const char *check_py =
    "import json,sys\n"
    "d=json.load(open(sys.argv[1]))\n"
    "ev=d['traceEvents']\n"
    "last={}\n"
    "runs=[]\n"
    "n=0\n"
    "for e in ev:\n"
    "  if e['ph']=='M': continue\n"
    "  assert e['ph']=='X', e\n"
    "  for k in ('name','cat','ph','ts','dur','pid','tid','args'): assert k in e, (k, e)\n"
    "  assert e['dur']>=0 and e['ts']>=0, e\n"
    "  key=(e['pid'],e['tid'])\n"
    "  assert e['ts']>=last.get(key,0), ('not monotonic', e)\n"
    "  last[key]=e['ts']\n"
    "  if e['cat']=='run': runs.append(e); continue\n"
    "  r=runs[-1]\n"
    "  assert r['ts']<=e['ts'] and e['ts']+e['dur']<=r['ts']+r['dur']+0.002, ('outside its run', "
    "e, r)\n"
    "  assert 'scope' in e['args'] and 'out' in e['args'], e\n"
    "  n+=1\n"
    "assert n==int(sys.argv[2])*len(runs) and len(runs)==int(sys.argv[3]), (n, len(runs))\n";

static void check_trace(asg_program *p, int n_steps, int runs_kept) {
  char dir[1024];
  const char *d = tu_tmpdir_create("asg_test_profile");
  TU_CHECK(d != NULL, "temporary folder");
  if (!d) return;
  snprintf(dir, sizeof dir, "%s", d);
  const char *path = tu_path(dir, "trace.json"), *py = tu_path(dir, "check.py");
  TU_CHECK(asg_program_profile_write_trace(p, path) == ASG_OK, "write_trace: %s", asg_last_error());
  int x = count_in_file(path, "\"ph\":\"X\"");
  TU_CHECK(x == (n_steps + 1) * runs_kept, "%d X events, want %d", x, (n_steps + 1) * runs_kept);
  if (system("python3 -c 'import json' 2>/dev/null") == 0) {
    tu_write_file(py, check_py, strlen(check_py));
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "python3 %s %s %d %d", py, path, n_steps, runs_kept);
    TU_CHECK(system(cmd) == 0, "the trace fails the checker: %s", cmd);
  } else {
    printf("python3 not found: trace JSON checked by counting only\n");
  }
  tu_tmpdir_remove(dir);
}

int main(void) {
  unsetenv("ASG_PROFILE"); /* the default must be off */
  asg_program *p = mlp_step(0);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) return tu_finish();
  asg_profile r;

  /* off by default: nothing recorded, and the calls say so */
  TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_ERR_INVALID &&
               strstr(asg_last_error(), "not profiled"),
           "get on an unprofiled program: %s", asg_last_error());
  TU_CHECK(asg_program_profile_write_trace(p, "/tmp/asg_never_written.json") == ASG_ERR_INVALID &&
               strstr(asg_last_error(), "not profiled"),
           "trace of an unprofiled program: %s", asg_last_error());
  TU_CHECK(asg_program_profile_stop(p) == ASG_ERR_INVALID, "stop before start");
  TU_CHECK(asg_program_profile_start(p, 3) == ASG_ERR_INVALID, "level 3");
  TU_CHECK(asg_program_profile_start(NULL, 1) == ASG_ERR_INVALID, "NULL program");
  TU_CHECK(asg_program_profile_get(NULL, &r) == ASG_ERR_INVALID, "get NULL");

  /* started after compile: no run yet -> an error, then 3 runs */
  TU_CHECK(asg_program_profile_start(p, 1) == ASG_OK, "start: %s", asg_last_error());
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_ERR_INVALID &&
               strstr(asg_last_error(), "no profiled run"),
           "get before a profiled run: %s", asg_last_error());
  for (int i = 0; i < 3; i++)
    TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_OK, "get: %s", asg_last_error());
  check_tables(p, &r, 3);
  check_trace(p, r.n_steps, 3);
  asg_profile_print(&r, stdout, 5);

  /* 6 runs: the trace keeps the last 4 */
  for (int i = 0; i < 3; i++)
    asg_program_run(p);
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_OK, "get: %s", asg_last_error());
  check_tables(p, &r, 6);
  check_trace(p, r.n_steps, 4);

  /* stop: runs are no longer recorded; the data stays */
  TU_CHECK(asg_program_profile_stop(p) == ASG_OK, "stop: %s", asg_last_error());
  asg_program_run(p);
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_OK && r.runs == 6, "after stop: %llu runs",
           (unsigned long long)r.runs);
  /* reset: forgotten */
  TU_CHECK(asg_program_profile_reset(p) == ASG_OK, "reset: %s", asg_last_error());
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_ERR_INVALID, "get after reset");
  TU_CHECK(asg_program_profile_start(p, 2) == ASG_OK, "restart: %s", asg_last_error());
  asg_program_run(p);
  TU_CHECK(asg_program_profile_get(p, &r) == ASG_OK && r.runs == 1 && r.level == 2,
           "after reset and a run: %llu runs, level %d", (unsigned long long)r.runs, r.level);
  asg_program_free(p);

  /* asg_compile_opts.profile: on from the first run */
  p = mlp_step(1);
  TU_CHECK(p && asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
  TU_CHECK(p && asg_program_profile_get(p, &r) == ASG_OK, "get: %s", asg_last_error());
  if (p && r.runs == 1) check_tables(p, &r, 1);
  asg_program_free(p);
  return tu_finish();
}
