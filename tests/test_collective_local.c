/* Collective ops in a world of one (asg_comm_init without a launcher) on one
 * backend: all_reduce (sum, mean, max, min) is the identity, broadcast,
 * all_gather and reduce_scatter copy; programs that mix ordinary steps
 * before, between and after collectives (on Vulkan each collective splits
 * the recorded program into segments with a host step between them), run
 * twice, with the profiler and with anomaly mode on; and the compile errors
 * (no communicator, a world size the communicator does not have).
 * Expected values are written here. The gated all_reduce of data-parallel
 * accumulation is internal (no public builder): test_dist covers it.
 * Usage: test_collective_local [cpu|cuda|vulkan] (default cpu). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";
static asg_comm *comm;

static asg_program *compile_n(asg_graph *g, int n, asg_tensor *const *ys, int profile,
                              int check_finite) {
  asg_compile_opts o = {0};
  o.backend = backend;
  o.comm = comm;
  o.profile = profile;
  o.check_finite = check_finite;
  asg_program *p = asg_compile(g, n, ys, &o);
  TU_CHECK(p != NULL, "compile on %s: %s", backend, asg_last_error());
  return p;
}

/* Runs p on x (fed as "x") and compares output y with want exactly. */
static void run_check(asg_program *p, asg_dtype dt, const double *x, long nx, asg_tensor *y,
                      const double *want, long n, const char *what) {
  double *got = calloc((size_t)n, sizeof *got);
  if (!p || tu_feed(p, "x", dt, x, nx) || asg_program_run(p) != ASG_OK || tu_fetch(p, y, got))
    TU_CHECK(0, "%s on %s: %s", what, backend, asg_last_error());
  else
    TU_CHECK(tu_close(what, got, want, n, 0, 0), "%s on %s", what, backend);
  free(got);
}

/* y = op(x) on [5]: the identity in a world of one. */
static void test_all_reduce(asg_dtype dt, asg_comm_op op) {
  static const double xf[5] = {1.5, -2, 3.25, 0, 7}, xi[5] = {3, -1, 4, 1, -5};
  const double *x = asg_dtype_is_float(dt) ? xf : xi;
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_all_reduce(asg_input(g, "x", dt, ASG_SHAPE(5)), op);
  TU_CHECK(y != NULL, "all_reduce: %s", asg_graph_error(g));
  asg_program *p = y ? compile_n(g, 1, &y, 0, 0) : NULL;
  char what[64];
  snprintf(what, sizeof what, "all_reduce %s op %d", asg_dtype_name(dt), (int)op);
  run_check(p, dt, x, 5, y, x, 5, what);
  asg_program_free(p);
  asg_graph_free(g);
}

/* An odd, larger size (a staging buffer of 280 KB on Vulkan). */
static void test_all_reduce_large(void) {
  const long n = 70001;
  double *x = malloc(sizeof *x * (size_t)n);
  for (long i = 0; i < n; i++)
    x[i] = (double)(i % 17) - 8;
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_all_reduce(asg_input(g, "x", ASG_F32, ASG_SHAPE(n)), ASG_COMM_SUM);
  asg_program *p = y ? compile_n(g, 1, &y, 0, 0) : NULL;
  run_check(p, ASG_F32, x, n, y, x, n, "all_reduce f32 [70001]");
  asg_program_free(p);
  asg_graph_free(g);
  free(x);
}

/* broadcast and all_gather of x [2, 3]; reduce_scatter (sum, mean) of x
 * [4, 2] (the same 6 + 2 values), all copies in a world of one. */
static void test_copies(asg_dtype dt) {
  static const double x6[6] = {1, -2, 3, 4, -5, 6}, x8[8] = {1, -2, 3, 4, -5, 6, 0, 9};
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_input(g, "x", dt, ASG_SHAPE(2, 3));
  asg_tensor *b = asg_input(g, "x8", dt, ASG_SHAPE(4, 2));
  asg_tensor *ys[4] = {asg_broadcast(a, 0), asg_all_gather(a, 1),
                       asg_reduce_scatter(b, 1, ASG_COMM_SUM),
                       asg_dtype_is_float(dt) ? asg_reduce_scatter(b, 1, ASG_COMM_MEAN)
                                              : asg_reduce_scatter(b, 1, ASG_COMM_SUM)};
  TU_CHECK(ys[0] && ys[1] && ys[2] && ys[3], "build: %s", asg_graph_error(g));
  asg_program *p = ys[3] ? compile_n(g, 4, ys, 0, 0) : NULL;
  if (p && tu_feed(p, "x8", dt, x8, 8) != ASG_OK) TU_CHECK(0, "feed x8: %s", asg_last_error());
  const char *names[4] = {"broadcast", "all_gather", "reduce_scatter sum",
                          asg_dtype_is_float(dt) ? "reduce_scatter mean" : "reduce_scatter sum"};
  for (int i = 0; i < 4; i++) {
    char what[64];
    snprintf(what, sizeof what, "%s %s", names[i], asg_dtype_name(dt));
    /* each run_check runs the program again: the outputs stay the same */
    run_check(p, dt, x6, 6, ys[i], i < 2 ? x6 : x8, i < 2 ? 6 : 8, what);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* Collectives between ordinary steps, and two in a row at the end:
 *   y = all_reduce(2 x) + 1                 = 2 x + 1
 *   z = reduce_scatter(3 y, mean) - x       = 5 x + 3
 *   w = all_gather(all_reduce(z, max))      = z
 * run twice with different x, plain, profiled and in anomaly mode. */
static void test_mixed(int profile, int check_finite) {
  static const double x1[6] = {1, -2, 0.5, 3, -1.5, 4}, x2[6] = {0, 1, 2, -3, 10, 0.25};
  static const double y1[6] = {3, -3, 2, 7, -2, 9}, z1[6] = {8, -7, 5.5, 18, -4.5, 23};
  static const double y2[6] = {1, 3, 5, -5, 21, 1.5}, z2[6] = {3, 8, 13, -12, 53, 4.25};
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3));
  asg_tensor *y = asg_add_scalar(asg_all_reduce(asg_mul_scalar(x, 2), ASG_COMM_SUM), 1);
  asg_tensor *z = asg_sub(asg_reduce_scatter(asg_mul_scalar(y, 3), 1, ASG_COMM_MEAN), x);
  asg_tensor *w = asg_all_gather(asg_all_reduce(z, ASG_COMM_MAX), 1);
  asg_tensor *ys[3] = {y, z, w};
  TU_CHECK(w != NULL, "build: %s", asg_graph_error(g));
  asg_program *p = w ? compile_n(g, 3, ys, profile, check_finite) : NULL;
  char what[96];
  for (int r = 0; r < 2; r++) {
    const double *xr = r ? x2 : x1, *yr = r ? y2 : y1, *zr = r ? z2 : z1;
    snprintf(what, sizeof what, "mixed y run %d (profile %d, check_finite %d)", r, profile,
             check_finite);
    run_check(p, ASG_F32, xr, 6, y, yr, 6, what);
    double got[6] = {0};
    bool ok = p && !tu_fetch(p, z, got);
    TU_CHECK(ok && tu_close("mixed z", got, zr, 6, 0, 0), "mixed z run %d on %s", r, backend);
    ok = p && !tu_fetch(p, w, got);
    TU_CHECK(ok && tu_close("mixed w", got, zr, 6, 0, 0), "mixed w run %d on %s", r, backend);
  }
  if (p && profile) { /* the profile lists every collective step */
    asg_profile prof;
    int n_coll = 0;
    asg_status st = asg_program_profile_get(p, &prof);
    TU_CHECK(st == ASG_OK, "profile_get: %s", asg_last_error());
    for (int i = 0; !st && i < prof.n_steps; i++) {
      const char *op = prof.steps[i].op;
      if (!strcmp(op, "all_reduce") || !strcmp(op, "reduce_scatter") || !strcmp(op, "all_gather"))
        n_coll += prof.steps[i].ms >= 0;
    }
    /* CUDA does not count the first run (docs/tools.md) */
    const uint64_t runs = strcmp(backend, "cuda") ? 2 : 1;
    TU_CHECK(st || (n_coll == 4 && prof.runs == runs), "profile: %d collective steps, %llu runs",
             n_coll, (unsigned long long)prof.runs);
  }
  asg_program_free(p);
  asg_graph_free(g);
}

/* The schedule moves a collective (and the steps only it reads) to right
 * after the steps it depends on (runtime/compile.c): gradients all-reduced
 * after the whole backward pass, as the data-parallel optimizer builds them,
 * run each as soon as its gradient exists. Three layers; the last layer's
 * weight gradient is ready first, so its bucket's all_reduce must come
 * before the backward pass's last product (without the move, every
 * all_reduce follows every product). Values are checked too: the identity
 * in a world of one. */
static void test_schedule(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 8)), *h = x, *w[3], *gw[3];
  for (int l = 0; l < 3; l++) {
    char name[8];
    snprintf(name, sizeof name, "w%d", l);
    w[l] = asg_variable(g, name, ASG_F32, ASG_SHAPE(8, 8), asg_init_uniform(-0.5, 0.5));
    h = asg_tanh(asg_matmul(h, w[l]));
  }
  asg_tensor *loss = asg_sum(asg_mul(h, h), ASG_ALL_AXES, false);
  TU_CHECK(asg_grad(loss, 3, w, gw) == ASG_OK, "grad: %s", asg_graph_error(g));
  asg_tensor *red[3];
  for (int l = 0; l < 3; l++) { /* as a bucket: scale, flatten, all_reduce */
    char sc[16];
    snprintf(sc, sizeof sc, "bucket%d", l);
    asg_scope_push(g, sc);
    asg_tensor *flat = asg_reshape(asg_mul(gw[l], asg_scalar(g, ASG_F32, 0.5)), ASG_SHAPE(64));
    red[l] = asg_all_reduce(flat, ASG_COMM_SUM);
    asg_scope_pop(g);
  }
  asg_program *p = compile_n(g, 3, red, 1, 0);
  double xv[32];
  for (int i = 0; i < 32; i++)
    xv[i] = 0.1 * (i % 7) - 0.3;
  /* two runs: the CUDA backend does not count a program's first run */
  if (p && !tu_feed(p, "x", ASG_F32, xv, 32) && asg_program_run(p) == ASG_OK &&
      asg_program_run(p) == ASG_OK) {
    asg_profile prof;
    int at_red[3] = {-1, -1, -1}, last_mm = -1;
    asg_status ps = asg_program_profile_get(p, &prof);
    TU_CHECK(ps == ASG_OK, "profile on %s: %s", backend, asg_last_error());
    if (ps == ASG_OK)
      for (int i = 0; i < prof.n_steps; i++) {
        int l;
        if (!strcmp(prof.steps[i].op, "matmul")) last_mm = i;
        if (!strcmp(prof.steps[i].op, "all_reduce") &&
            sscanf(prof.steps[i].scope, "bucket%d", &l) == 1 && l >= 0 && l < 3)
          at_red[l] = i;
      }
    TU_CHECK(at_red[2] >= 0 && at_red[2] < last_mm,
             "the last layer's all_reduce (step %d) runs before the backward pass's last product "
             "(step %d) on %s",
             at_red[2], last_mm, backend);
    TU_CHECK(at_red[0] > at_red[1] && at_red[1] > at_red[2],
             "buckets all-reduced as their gradients come: steps %d, %d, %d", at_red[0], at_red[1],
             at_red[2]);
    /* values from a program without the profiler: on CUDA its collectives
     * run on the second stream, the second run from the captured graph */
    asg_tensor *all[6] = {red[0], red[1], red[2], gw[0], gw[1], gw[2]};
    asg_program *q = compile_n(g, 6, all, 0, 0);
    for (int run = 0; q && run < 2; run++) {
      for (int i = 0; i < 32; i++)
        xv[i] = 0.1 * ((i + run) % 7) - 0.3;
      if (tu_feed(q, "x", ASG_F32, xv, 32) || asg_program_run(q) != ASG_OK) {
        TU_CHECK(0, "schedule run %d on %s: %s", run, backend, asg_last_error());
        break;
      }
      for (int l = 0; l < 3; l++) {
        double a[64], b[64];
        TU_CHECK(tu_fetch(q, red[l], a) == 0 && tu_fetch(q, gw[l], b) == 0, "fetch: %s",
                 asg_last_error());
        for (int i = 0; i < 64; i++)
          b[i] *= 0.5; /* exact in binary */
        TU_CHECK(tu_close("reduced", a, b, 64, 0, 0),
                 "run %d: all_reduce of 0.5 x layer %d's gradient on %s", run, l, backend);
      }
    }
    asg_program_free(q);
  } else {
    TU_CHECK(0, "schedule run on %s: %s", backend, asg_last_error());
  }
  asg_program_free(p);
  asg_graph_free(g);
}

static void test_errors(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3));
  asg_tensor *y = asg_add_scalar(asg_all_reduce(x, ASG_COMM_SUM), 1);
  asg_compile_opts o = {0};
  o.backend = backend;
  asg_clear_error();
  asg_program *p = asg_compile(g, 1, &y, &o); /* no communicator */
  TU_CHECK(p == NULL && tu_contains(asg_last_error(), "communicator"),
           "a collective without a communicator: %s", p ? "compiled" : asg_last_error());
  asg_program_free(p);
  asg_tensor *a = asg_all_gather(x, 2); /* built for a world of 2 */
  o.comm = comm;
  asg_clear_error();
  p = a ? asg_compile(g, 1, &a, &o) : NULL;
  TU_CHECK(a && p == NULL && tu_contains(asg_last_error(), "world"),
           "all_gather for 2 ranks with a communicator of 1: %s",
           p ? "compiled" : asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  if (asg_comm_init(NULL, &comm) != ASG_OK) {
    printf("FAIL: asg_comm_init: %s\n", asg_last_error());
    return 1;
  }
  if (asg_comm_size(comm) != 1) { /* launched under mpirun: test_dist is the test there */
    printf("SKIPPED: a world of %d, not 1\n", asg_comm_size(comm));
    asg_comm_free(comm);
    return TU_SKIP;
  }
  static const asg_comm_op ops[4] = {ASG_COMM_SUM, ASG_COMM_MEAN, ASG_COMM_MAX, ASG_COMM_MIN};
  for (int i = 0; i < 4; i++)
    test_all_reduce(ASG_F32, ops[i]);
  for (int i = 0; i < 4; i++)
    if (ops[i] != ASG_COMM_MEAN) { /* a mean needs floats */
      test_all_reduce(ASG_I32, ops[i]);
      test_all_reduce(ASG_I64, ops[i]);
    }
  test_all_reduce_large();
  test_copies(ASG_F32);
  test_copies(ASG_I32);
  test_mixed(0, ASG_CHECK_FINITE_OFF);
  test_mixed(1, ASG_CHECK_FINITE_OFF);
  test_mixed(0, ASG_CHECK_FINITE_STEP);
  test_schedule();
  test_errors();
  asg_comm_free(comm);
  return tu_finish();
}
