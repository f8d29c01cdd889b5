/* Backend parity: every op of the op table on BACKEND against the CPU
 * reference, plus whole training steps.
 *
 * Usage: test_parity [BACKEND]   (default "cpu": CPU against CPU, the
 * reference with all threads against a single-threaded CPU program, as a
 * self-check of this harness). Exit 77 (skipped) when BACKEND has no usable
 * device.
 *
 * A case builds one small graph from deterministic random data fed through
 * asg_input (so no constant folding can hide a kernel), takes the op's
 * outputs and, for differentiable ops, the gradients of
 * loss = sum_k sum(y_k * r_k) (r_k fixed random in [0.5, 1.5)) w.r.t. every
 * float input via asg_grad -- which is what brings the dedicated backward ops
 * (layernorm_bwd_*, conv2d_bwd_*, *pool2d_bwd, softmax_cross_entropy_bwd,
 * slice_bwd, scatter_add from gather's gradient, ...) into the programs.
 * The SAME graph is compiled twice (opts.backend = "cpu" and = BACKEND), both
 * programs are fed the same data and run (twice or more for random and
 * stateful ops), and every output is compared elementwise.
 *
 * Coverage: every tensor the suite holds (case inputs, intermediates it
 * names, outputs and the gradient tensors asg_grad returns) is recorded by
 * asg_tensor_op_name(); the gradient rules return their backward node
 * directly when the differentiated op reads an input, so the backward ops
 * are seen there too. The suite FAILS listing every op of the table
 * (asg_op_count/asg_op_name) that no case recorded; with the environment
 * variable ASG_PARITY_COVERAGE set it prints, per op, the first case that
 * showed it.
 *
 * Tolerances (b = CPU reference value, a = BACKEND value, S = max(1, max|b|)
 * over the output tensor):
 *   integer outputs, masks of comparisons, argmax, one_hot, gather/concat/
 *   where/max/min forward of fed data      exact (a == b)
 *   collectives, on a communicator of this process alone (a world of one,
 *   where each is an identity or a copy)   exact, and the CPU's output is
 *                                           the fed input, bit for bit
 *   f32 elementwise ops ("elem")            |a-b| <= 1e-5 + 1e-4 |b|
 *      (a few hundred ulps: other libm / device intrinsics for exp, erf,
 *      tanh, pow, and FMA contraction)
 *   f32 matmul, conv, reductions, softmax, norms, pooling and gradients that
 *   sum over broadcast dims ("accum")       |a-b| <= 1e-4 S + 1e-4 |b|
 *      (summation order differs: blocked GEMM, tree reductions, atomics; the
 *      error of a reordered f32 sum scales with the magnitude of its terms,
 *      not with the result, which may cancel to ~0, hence S)
 *   f64 elem                                |a-b| <= 1e-12 + 1e-10 |b|
 *   f64 accum                               |a-b| <= 1e-10 S + 1e-10 |b|
 *   random ops (same counter-based RNG on every backend)
 *                                           |a-b| <= 1e-6 (1 + |b|)
 *   training steps (losses of each step, every variable after the last
 *   step: parameters, Adam moments, batch-norm statistics, step counters)
 *                                           |a-b| <= 1e-5 + 1e-4 |b|
 *      (the models hold no parameter whose gradient is analytically zero:
 *      Adam would turn its rounding noise into +-lr steps; see cases_train)
 * Gradients take "accum" unless the op is elementwise without broadcasting
 * (then "elem"); random ops' gradients take the random tolerance.
 * NaN must match NaN; infinities must match exactly.
 *
 * Files: this one runs the families in order and reports coverage;
 * tests/parity/harness.c holds the harness (parity.h), and one file per
 * family holds its cases (elementwise, reduce_shape_index, conv_pool, nn,
 * random_state, custom, collectives, training, precision_fusion). Values
 * come from one counter, so the order of the cases is part of the data. */
#include "parity/parity.h"

/* Whether the environment turns a compile-time fusion rule off
 * (ASG_FUSE_CONV=0, ASG_FUSE_LINEAR=0): fused ops then appear in no program. */
static bool fusion_off(void) {
  const char *v[4] = {getenv("ASG_FUSE_CONV"), getenv("ASG_FUSE_LINEAR"), getenv("ASG_FUSE_STATS"),
                      getenv("ASG_FUSE_ROWDOT")};
  for (int i = 0; i < 4; i++)
    if (v[i] && !strcmp(v[i], "0")) return true;
  return false;
}

static void check_coverage(void) {
  if (g_filter) return;
  char msg[2048] = "ops in no case:";
  size_t o = strlen(msg);
  int missing = 0;
  const bool skip_fused = fusion_off();
  for (int i = 0; i < g_n_ops; i++)
    if (!g_covered[i] && !(skip_fused && asg_op_is_fused(i))) {
      missing++;
      o += (size_t)snprintf(msg + o, o < sizeof msg ? sizeof msg - o : 0, " %s", asg_op_name(i));
      if (o >= sizeof msg) o = sizeof msg - 1;
    }
  if (getenv("ASG_PARITY_COVERAGE"))
    for (int i = 0; i < g_n_ops; i++)
      printf("  %-26s %s\n", asg_op_name(i), g_covered[i] ? g_first_case[i] : "(none)");
  char title[96];
  snprintf(title, sizeof title, "coverage: all %d ops of the table appear in some case%s", g_n_ops,
           skip_fused ? " (fused ops: fusion off)" : "");
  report(title, missing == 0, msg);
}

int main(int argc, char **argv) {
  if (argc > 1) g_backend = argv[1];
  g_filter = getenv("ASG_PARITY_FILTER");
  if (g_filter && !g_filter[0]) g_filter = NULL;
  g_n_ops = asg_op_count();
  if (g_n_ops > 256) {
    printf("FAIL: op table has %d ops, the coverage table holds 256\n", g_n_ops);
    return 1;
  }
  if (!asg_backend_available(g_backend)) {
    /* ask compile why (an unknown or unbuilt backend says so) */
    asg_clear_error();
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_neg(asg_input(g, "x", ASG_F32, ASG_SHAPE(1)));
    asg_program *p = compile_on(g, 1, &y, g_backend, 0, false, NULL, false);
    const char *why = asg_last_error();
    printf("SKIPPED: backend '%s' not available: %s\n", g_backend,
           why && why[0] ? why : "not built into this library or no usable device");
    asg_program_free(p);
    asg_graph_free(g);
    return TU_SKIP;
  }
  printf("parity: cpu (reference) vs %s%s\n", g_backend,
         dut_threads() ? " (single-threaded program)" : "");
  check_harness();
  /* the collective cases need this process alone (not under a launcher) */
  if (asg_comm_init(NULL, &g_comm) != ASG_OK || asg_comm_size(g_comm) != 1) {
    char why[256];
    snprintf(why, sizeof why, "%s", g_comm ? "launched as several ranks" : asg_last_error());
    report("communicator: a world of one for the collective cases", 0, why);
    asg_comm_free(g_comm);
    g_comm = NULL;
  }
  cases_unary();
  cases_cast();
  cases_binary();
  cases_reduce();
  cases_matmul();
  cases_shape();
  cases_index();
  cases_layernorm();
  cases_rmsnorm();
  cases_rope();
  cases_batchnorm();
  cases_conv();
  cases_pool();
  cases_resample(); /* pad, upsample */
  cases_softmax_ce();
  cases_ce_edges();
  cases_attention();
  cases_attention_masked();
  cases_random();
  cases_state();
  cases_cache_write();
  cases_sample();
  cases_custom();
  cases_sort(); /* sort, argsort, topk, cumsum */
  if (g_comm) {
    cases_collective();
    case_coll_half(ASG_BF16);
    case_coll_half(ASG_F16);
  }
  cases_chains();
  cases_train();
  cases_optim();
  case_pipelined_feeds();
  for (int mode = 0; mode < 3; mode++)
    case_fast_matmul(mode);
  for (int mode = 0; mode < 3; mode++)
    case_fast_attention(mode);
  for (int v = 0; v < 8; v++)
    case_epilogue(v);
  for (int v = 0; v < 4; v++)
    case_add_ln(v);
  case_rowdot(0);
  case_rowdot(1);
  for (int v = 0; v < 3; v++)
    case_colsum(v);
  for (int v = 0; v < 3; v++)
    case_half_logits(v);
  case_shared_half();
  case_ce_half(0);
  case_ce_half(1);
  case_ln_half(0);
  case_ln_half(1);
  case_perm_half(0);
  case_perm_half(1);
  for (int v = 0; v < 3; v++)
    case_unary_half(v);
  check_coverage();
  asg_comm_free(g_comm); /* after every program that used it */
  return tu_finish();
}
