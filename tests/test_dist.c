/* Data parallelism and collectives across processes (asg/dist.h). Run under
 * `mpirun -np N` (tests/CMakeLists.txt registers N = 2 and 3) and alone (a
 * world of one). Expected values are computed here from the formulas that
 * define each rank's data, never by the library:
 *  - every collective op, f32/f64/i32/i64, odd sizes, against sums/maxima
 *    over ranks computed in double;
 *  - the host collectives (asg_comm_allreduce/broadcast/barrier);
 *  - data-parallel training: N ranks, each on its 1/N of every batch, reach
 *    the parameters of one process on the whole batch (relative 2e-5 in f32,
 *    the reduction order differing), for SGD with momentum and AdamW, with
 *    gradient accumulation, global-norm clipping, dynamic loss scaling, the
 *    non-finite guard, a symbolic batch and ZeRO-1 (whose per-rank
 *    checkpoints resume exactly); and parameters start from rank 0's even
 *    when ranks initialize differently. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static int R, W;                    /* this rank, world size */
static const char *BACKEND = "cpu"; /* argv[1]: collectives on CUDA (NCCL) or Vulkan too */

/* rank r's element i: integers (exact in every dtype), differing per rank */
static double val(int r, long i) { return (double)((i * 7 + r * 13) % 29) - 11; }

static asg_program *compile(asg_graph *g, asg_tensor *y, asg_comm *c) {
  asg_compile_opts o = {.backend = BACKEND, .comm = c};
  asg_program *p = asg_compile(g, 1, &y, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  return p;
}

static void check_all_reduce(asg_comm *c, asg_dtype dt, long n, asg_comm_op op) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(n));
  asg_tensor *y = asg_all_reduce(x, op);
  asg_program *p = compile(g, y, c);
  double *in = malloc(sizeof *in * (size_t)n), *want = malloc(sizeof *want * (size_t)n),
         *got = malloc(sizeof *got * (size_t)n);
  for (long i = 0; i < n; i++) {
    in[i] = val(R, i);
    double a = val(0, i);
    for (int r = 1; r < W; r++) {
      double v = val(r, i);
      a = op == ASG_COMM_MAX ? fmax(a, v) : op == ASG_COMM_MIN ? fmin(a, v) : a + v;
    }
    want[i] = op == ASG_COMM_MEAN ? a / W : a;
  }
  if (p && !tu_feed(p, "x", dt, in, n) && asg_program_run(p) == ASG_OK && !tu_fetch(p, y, got))
    TU_CHECK(tu_close("all_reduce", got, want, n, dt == ASG_F32 ? 1e-6 : 1e-12, 1e-6),
             "all_reduce %s n=%ld op=%d", asg_dtype_name(dt), n, (int)op);
  else
    TU_CHECK(0, "all_reduce %s n=%ld: %s", asg_dtype_name(dt), n, asg_last_error());
  free(in), free(want), free(got);
  asg_program_free(p);
  asg_graph_free(g);
}

/* broadcast from the last rank, all_gather and reduce_scatter of [rows, 3] */
static void check_others(asg_comm *c, asg_dtype dt, long rows) {
  const long n = rows * 3;
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", dt, ASG_SHAPE(rows, 3));
  asg_tensor *xw = asg_input(g, "xw", dt, ASG_SHAPE(W * rows, 3));
  asg_tensor *outs[3] = {asg_broadcast(x, W - 1), asg_all_gather(x, W),
                         asg_reduce_scatter(xw, W, ASG_COMM_SUM)};
  asg_compile_opts o = {.backend = BACKEND, .comm = c};
  asg_program *p = asg_compile(g, 3, outs, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  double *in = malloc(sizeof(double) * (size_t)n * W),
         *got = malloc(sizeof(double) * (size_t)n * W),
         *want = malloc(sizeof(double) * (size_t)n * W);
  for (long i = 0; i < n * W; i++)
    in[i] = val(R, i);
  if (!p || tu_feed(p, "x", dt, in, n) || tu_feed(p, "xw", dt, in, n * W) ||
      asg_program_run(p) != ASG_OK) {
    TU_CHECK(0, "collectives %s: %s", asg_dtype_name(dt), asg_last_error());
  } else {
    for (long i = 0; i < n; i++)
      want[i] = val(W - 1, i);
    TU_CHECK(!tu_fetch(p, outs[0], got) && tu_close("broadcast", got, want, n, 0, 0),
             "broadcast %s rows=%ld", asg_dtype_name(dt), rows);
    for (int r = 0; r < W; r++)
      for (long i = 0; i < n; i++)
        want[r * n + i] = val(r, i);
    TU_CHECK(!tu_fetch(p, outs[1], got) && tu_close("all_gather", got, want, n * W, 0, 0),
             "all_gather %s rows=%ld", asg_dtype_name(dt), rows);
    for (long i = 0; i < n; i++) { /* block R of the sum over ranks */
      want[i] = 0;
      for (int r = 0; r < W; r++)
        want[i] += val(r, R * n + i);
    }
    TU_CHECK(!tu_fetch(p, outs[2], got) && tu_close("reduce_scatter", got, want, n, 1e-6, 1e-6),
             "reduce_scatter %s rows=%ld", asg_dtype_name(dt), rows);
  }
  free(in), free(got), free(want);
  asg_program_free(p);
  asg_graph_free(g);
}

static void check_host(asg_comm *c) {
  double v[3] = {R + 1.0, -R, 0.5};
  TU_CHECK(asg_comm_allreduce(c, v, 3, ASG_F64, ASG_COMM_SUM) == ASG_OK &&
               v[0] == W * (W + 1) / 2.0 && v[1] == -W * (W - 1) / 2.0 && v[2] == 0.5 * W,
           "host all-reduce: %g %g %g", v[0], v[1], v[2]);
  int32_t m = R * 10;
  TU_CHECK(asg_comm_allreduce(c, &m, 1, ASG_I32, ASG_COMM_MAX) == ASG_OK && m == (W - 1) * 10,
           "host max %d", m);
  char msg[16] = "";
  if (R == 0) strcpy(msg, "from rank 0");
  TU_CHECK(asg_comm_broadcast(c, msg, sizeof msg, 0) == ASG_OK && !strcmp(msg, "from rank 0"),
           "host broadcast '%s'", msg);
  TU_CHECK(asg_comm_barrier(c) == ASG_OK, "barrier: %s", asg_last_error());
  TU_CHECK(asg_comm_broadcast(c, msg, sizeof msg, W) == ASG_ERR_INVALID, "bad root accepted");
  TU_CHECK(asg_comm_allreduce(c, &m, 1, ASG_I32, ASG_COMM_MEAN) == ASG_ERR_DTYPE,
           "integer mean accepted");
}

/* ---- data parallelism ---- */
enum { B = 12, IN = 5, HID = 7, OUT = 3, STEPS = 4 };

typedef struct model {
  asg_graph *g;
  asg_program *p;
} model;

/* An MLP on [rows, IN] regressing [rows, OUT]; seed sets the initial values. */
static bool ZERO; /* build with ZeRO-1 (asg_compile_opts.shard_optimizer_state) */

static model build(int rows, asg_optim opt, asg_comm *c, uint64_t seed) {
  model m = {asg_graph_new(), NULL};
  asg_graph_set_seed(m.g, seed);
  if (rows == 0) rows = (int)asg_dim(m.g, "rows", 0); /* a symbolic batch */
  asg_tensor *x = asg_input(m.g, "x", ASG_F32, ASG_SHAPE(rows, IN));
  asg_tensor *t = asg_input(m.g, "t", ASG_F32, ASG_SHAPE(rows, OUT));
  asg_layer *l1 = asg_nn_linear(m.g, "l1", IN, HID), *l2 = asg_nn_linear(m.g, "l2", HID, OUT);
  asg_tensor *y = asg_layer_apply(l2, asg_tanh(asg_layer_apply(l1, x)));
  asg_tensor *loss = asg_mse_loss(y, t, ASG_REDUCE_MEAN);
  asg_compile_opts o = {.backend = BACKEND,
                        .comm = c,
                        .comm_bucket_bytes = 64, /* several buckets */
                        .shard_optimizer_state = ZERO};
  m.p = asg_compile_train(m.g, loss, opt, 0, NULL, &o);
  TU_CHECK(m.p != NULL, "compile_train: %s", asg_last_error());
  return m;
}

static void data(int step, int row, double *x, double *t) {
  for (int j = 0; j < IN; j++)
    x[j] = sin(0.7 * step + 1.3 * row + 0.9 * j);
  for (int j = 0; j < OUT; j++)
    t[j] = cos(0.4 * step + 0.5 * row - 1.1 * j);
}

/* Feeds rows [first, first + rows) of micro-batch `step` and runs. */
static int run_rows(model *m, int step, int first, int rows) {
  double x[B * IN], t[B * OUT];
  for (int r = 0; r < rows; r++)
    data(step, first + r, x + r * IN, t + r * OUT);
  if (tu_feed(m->p, "x", ASG_F32, x, (long)rows * IN) ||
      tu_feed(m->p, "t", ASG_F32, t, (long)rows * OUT))
    return 1;
  return asg_program_run(m->p) != ASG_OK;
}

static void check_dp(asg_comm *c, const char *what, asg_optim opt, bool symbolic) {
  const int k = opt.accum_steps > 1 ? opt.accum_steps : 1;
  const int rows = B / W;
  /* ranks start from different values: the broadcast must make them equal */
  model dp = build(symbolic ? 0 : rows, opt, c, 100 + (uint64_t)R);
  model ref = build(B, opt, NULL, 100); /* rank 0's initial values, whole batch */
  if (!dp.p || !ref.p) goto out;
  for (int s = 0; s < STEPS * k; s++) {
    if (run_rows(&dp, s, R * rows, rows) || run_rows(&ref, s, 0, B)) {
      TU_CHECK(0, "%s: run %d: %s", what, s, asg_last_error());
      goto out;
    }
  }
  const char *names[] = {"l1.weight", "l1.bias", "l2.weight", "l2.bias"};
  for (int i = 0; i < 4; i++) {
    double a[IN * HID], b[IN * HID];
    long n = tu_get_var(dp.p, names[i], a);
    TU_CHECK(n > 0 && tu_get_var(ref.p, names[i], b) == n &&
                 tu_close(names[i], a, b, n, 2e-6, 2e-5),
             "%s: %s differs from one process on the whole batch (world %d)", what, names[i], W);
  }
out:
  asg_program_free(dp.p), asg_program_free(ref.p);
  asg_graph_free(dp.g), asg_graph_free(ref.g);
}

/* ZeRO-1 checkpoints are per rank: each saves its file (its shard of the
 * optimizer state), a fresh program loads it and continues exactly as the
 * original does. */
static void check_zero_checkpoint(asg_comm *c) {
  const int rows = B / W;
  const char *dir = tu_tmpdir_create("asg_test_dist");
  char path[512];
  snprintf(path, sizeof path, "%s/ckpt.rank%d.safetensors", dir, R);
  ZERO = true;
  model a = build(rows, asg_adamw(0.01, 0.1), c, 5), b = build(rows, asg_adamw(0.01, 0.1), c, 6);
  ZERO = false;
  int64_t step = 0;
  bool ok = a.p && b.p;
  for (int s = 0; ok && s < 3; s++)
    ok = !run_rows(&a, s, R * rows, rows);
  ok = ok && asg_checkpoint_save(a.p, path, 3) == ASG_OK &&
       asg_checkpoint_load(b.p, path, &step) == ASG_OK && step == 3;
  TU_CHECK(ok, "zero-1 checkpoint save/load: %s", asg_last_error());
  for (int s = 3; ok && s < 5; s++)
    ok = !run_rows(&a, s, R * rows, rows) && !run_rows(&b, s, R * rows, rows);
  double wa[IN * HID], wb[IN * HID];
  TU_CHECK(ok && tu_get_var(a.p, "l1.weight", wa) == IN * HID &&
               tu_get_var(b.p, "l1.weight", wb) == IN * HID &&
               /* bitwise on the CPU; GPU programs may pick other GEMM algorithms */
               tu_close("resumed", wb, wa, IN * HID, 0, strcmp(BACKEND, "cpu") ? 1e-5 : 0),
           "zero-1: a resumed rank does not continue as the original");
  asg_program_free(a.p), asg_program_free(b.p);
  asg_graph_free(a.g), asg_graph_free(b.g);
  tu_tmpdir_remove(dir);
}

int main(int argc, char **argv) {
  if (argc > 1) BACKEND = argv[1];
  if (!asg_backend_available(BACKEND)) {
    printf("backend %s not available: skipped\n", BACKEND);
    return TU_SKIP;
  }
  asg_comm *c = NULL;
  if (asg_comm_init(NULL, &c) != ASG_OK) {
    printf("asg_comm_init: %s\n", asg_last_error());
    return 1;
  }
  R = asg_comm_rank(c), W = asg_comm_size(c);
  printf("rank %d of %d (%s), local rank %d\n", R, W, asg_comm_kind(c), asg_comm_local_rank(c));
  TU_CHECK(B % W == 0 || W > B, "world %d does not divide the batch %d", W, B);
  const asg_dtype dts[] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  const long sizes[] = {1, 7, 1000};
  for (int d = 0; d < 4; d++)
    for (int s = 0; s < 3; s++)
      for (int op = ASG_COMM_SUM; op <= ASG_COMM_MIN; op++)
        if (op != ASG_COMM_MEAN || d < 2) check_all_reduce(c, dts[d], sizes[s], (asg_comm_op)op);
  for (int d = 0; d < 4; d++) {
    check_others(c, dts[d], 1);
    check_others(c, dts[d], 5);
  }
  check_host(c);
  if (B % W == 0) {
    asg_optim sgd = asg_sgd(0.1, 0.9);
    check_dp(c, "sgd momentum", sgd, false);
    check_dp(c, "sgd momentum, symbolic batch", sgd, true);
    asg_optim adamw = asg_adamw(0.01, 0.1);
    check_dp(c, "adamw", adamw, false);
    adamw.accum_steps = 3;
    adamw.clip_norm = 0.05;
    check_dp(c, "adamw accum 3 clip", adamw, false);
    sgd.accum_steps = 2;
    sgd.skip_nonfinite = true;
    check_dp(c, "sgd accum 2 guard", sgd, false);
    adamw.accum_steps = 1;
    adamw.skip_nonfinite = true;
    check_dp(c, "adamw clip guard", adamw, false);
    asg_optim scaled = asg_adamw(0.01, 0.1); /* dynamic loss scaling, same on every rank */
    scaled.loss_scale = 1024;
    scaled.clip_norm = 0.05;
    check_dp(c, "adamw loss scale clip", scaled, false);
    asg_optim lamb = asg_lamb(0.01, 0.1), ada = asg_adagrad(0.05);
    ada.initial_accumulator_value = 0.1;
    check_dp(c, "lamb", lamb, false);
    ZERO = true; /* the same steps with the optimizer state sharded */
    check_dp(c, "zero-1 lamb (norms over shards)", lamb, false);
    check_dp(c, "zero-1 adagrad", ada, false);
    check_dp(c, "zero-1 adamw clip guard", adamw, false);
    adamw.accum_steps = 3;
    adamw.skip_nonfinite = false;
    check_dp(c, "zero-1 adamw accum 3 clip", adamw, false);
    check_dp(c, "zero-1 sgd momentum", asg_sgd(0.1, 0.9), false);
    ZERO = false;
    check_zero_checkpoint(c);
  }
  asg_comm_free(c);
  return tu_finish();
}
