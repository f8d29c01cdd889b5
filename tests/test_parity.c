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
 * NaN must match NaN; infinities must match exactly. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *g_backend = "cpu";
static bool g_covered[256];
static char g_first_case[256][200]; /* the first case that showed each op */
static const char *g_cur_case = "";
static int g_n_ops;
static unsigned long long g_seed = 1;

static const asg_dtype FDT[2] = {ASG_F32, ASG_F64};
static const asg_dtype IDT[2] = {ASG_I32, ASG_I64};

/* ---------------------------------------------------------------- coverage */

static void mark_name(const char *name) {
  for (int i = 0; i < g_n_ops && i < 256; i++)
    if (!g_covered[i] && strcmp(asg_op_name(i), name) == 0) {
      g_covered[i] = true;
      snprintf(g_first_case[i], sizeof g_first_case[i], "%s", g_cur_case);
    }
}

static asg_tensor *mark(asg_tensor *t) {
  const char *name = t ? asg_tensor_op_name(t) : NULL;
  if (name) mark_name(name);
  return t;
}

/* ------------------------------------------------------------------ values */

static long numel(asg_shape s) { return (long)asg_shape_numel(s); }

static const char *shp(asg_shape s) {
  static char buf[8][64];
  static int k;
  k = (k + 1) % 8;
  return asg_shape_str(s, buf[k], sizeof buf[k]);
}

static const char *dtn(asg_dtype dt) { return asg_dtype_name(dt); }

static void *to_dtype(asg_dtype dt, const double *v, long n) {
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  tu_from_double(dt, v, buf, n);
  return buf;
}

/* n deterministic values in [lo, hi); integer = floor'ed. */
static double *rv(long n, double lo, double hi, bool integer) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  tu_rand(g_seed++ * 7919ull, v, n, lo, hi);
  if (integer)
    for (long i = 0; i < n; i++)
      v[i] = floor(v[i]);
  return v;
}

/* --------------------------------------------------------------- the cases */

typedef enum tclass { C_ELEM = 0, C_ACCUM, C_EXACT, C_RNG } tclass;

#define MAXIN 8
#define MAXOUT 32

typedef struct pcase {
  char title[200];
  asg_graph *g;
  int n_in;
  char in_name[MAXIN][16];
  void *in_data[MAXIN];
  size_t in_bytes[MAXIN];
  asg_tensor *in_t[MAXIN];
  int n_out;
  asg_tensor *out[MAXOUT];
  char out_label[MAXOUT][32];
  tclass out_cls[MAXOUT];
  bool out_cmp[MAXOUT];
  tclass cls, gcls;
  int runs;
  bool no_grad;
  bool unchecked; /* compile with unchecked_indices (out-of-range indices on purpose) */
  bool coll;      /* compile with the communicator (collective ops) */
  /* out_same[k] = i + 1: the CPU's output k must equal input i bit for bit
   * (collectives in a world of one are identities and copies) */
  int out_same[MAXOUT];
  int n_var;
  const char *var_name[4];
  const char *fused; /* the fused op (asg_op_is_fused) the compiler should make here */
} pcase;

static void pc_begin(pcase *pc, tclass cls, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void pc_begin(pcase *pc, tclass cls, const char *fmt, ...) {
  memset(pc, 0, sizeof *pc);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pc->title, sizeof pc->title, fmt, ap);
  va_end(ap);
  pc->g = asg_graph_new();
  asg_graph_set_seed(pc->g, 42);
  g_cur_case = pc->title;
  pc->cls = cls;
  pc->gcls = cls == C_ELEM ? C_ELEM : C_ACCUM;
  pc->runs = 1;
}

/* An input of the given values (converted to dt). */
static asg_tensor *pc_in_vals(pcase *pc, asg_dtype dt, asg_shape s, const double *v) {
  if (pc->n_in >= MAXIN) return NULL;
  int k = pc->n_in++;
  snprintf(pc->in_name[k], sizeof pc->in_name[k], "x%d", k);
  pc->in_data[k] = to_dtype(dt, v, numel(s));
  pc->in_bytes[k] = (size_t)numel(s) * asg_dtype_size(dt);
  pc->in_t[k] = mark(asg_input(pc->g, pc->in_name[k], dt, s));
  return pc->in_t[k];
}

/* An input of random values in [lo, hi) (integers floor'ed). */
static asg_tensor *pc_in(pcase *pc, asg_dtype dt, asg_shape s, double lo, double hi) {
  double *v = rv(numel(s), lo, hi, !asg_dtype_is_float(dt));
  asg_tensor *t = pc_in_vals(pc, dt, s, v);
  free(v);
  return t;
}

/* Integer-valued floats (or ints) in [lo, hi): ties for comparisons. */
static asg_tensor *pc_in_int(pcase *pc, asg_dtype dt, asg_shape s, double lo, double hi) {
  double *v = rv(numel(s), lo, hi, true);
  asg_tensor *t = pc_in_vals(pc, dt, s, v);
  free(v);
  return t;
}

static void pc_out_ex(pcase *pc, asg_tensor *t, const char *label, tclass cls, bool cmp) {
  if (pc->n_out >= MAXOUT) return;
  int k = pc->n_out++;
  pc->out[k] = mark(t);
  snprintf(pc->out_label[k], sizeof pc->out_label[k], "%s", label);
  pc->out_cls[k] = cls;
  pc->out_cmp[k] = cmp;
}
static void pc_out(pcase *pc, asg_tensor *t, const char *label) {
  pc_out_ex(pc, t, label, pc->cls, true);
}

/* Threshold for |a - b| (see the header). */
static double thresh(asg_dtype dt, tclass cls, double b, double S) {
  if (!asg_dtype_is_float(dt) || cls == C_EXACT) return 0;
  double ab = fabs(b);
  if (cls == C_RNG) return 1e-6 * (1 + ab);
  if (dt == ASG_F64) return cls == C_ACCUM ? 1e-10 * S + 1e-10 * ab : 1e-12 + 1e-10 * ab;
  return cls == C_ACCUM ? 1e-4 * S + 1e-4 * ab : 1e-5 + 1e-4 * ab;
}

/* Compares n values; on mismatch writes a message and returns 0. */
static int cmp_vals(const char *what, asg_dtype dt, tclass cls, const double *got,
                    const double *want, long n, char *msg, size_t msz) {
  double S = 1;
  for (long i = 0; i < n; i++)
    if (isfinite(want[i]) && fabs(want[i]) > S) S = fabs(want[i]);
  double worst = 0;
  long at = -1;
  for (long i = 0; i < n; i++) {
    if (isnan(got[i]) && isnan(want[i])) continue;
    double d = got[i] == want[i] ? 0 : fabs(got[i] - want[i]); /* equal infinities: 0 */
    if (!(d <= thresh(dt, cls, want[i], S)) || (d > 0 && !isfinite(want[i]))) {
      if (at < 0 || !(d <= worst)) {
        worst = d;
        at = i;
      }
    }
  }
  if (at < 0) return 1;
  snprintf(msg, msz, "%s: max err %.3g at index %ld (got %.10g want %.10g)", what, worst, at,
           got[at], want[at]);
  return 0;
}

/* Fetches t from both programs and compares. */
static int cmp_output(asg_program *ref, asg_program *dut, asg_tensor *t, const char *label,
                      tclass cls, char *msg, size_t msz) {
  long n = numel(asg_tensor_shape(t));
  asg_dtype dt = asg_tensor_dtype(t);
  size_t bytes = (size_t)n * asg_dtype_size(dt);
  void *ba = malloc(bytes ? bytes : 1), *bb = malloc(bytes ? bytes : 1);
  double *a = malloc(sizeof(double) * (size_t)(n ? n : 1));
  double *b = malloc(sizeof(double) * (size_t)(n ? n : 1));
  int ok = 0;
  if (asg_program_fetch(ref, t, bb, bytes) != ASG_OK) {
    snprintf(msg, msz, "%s: fetch from cpu: %s", label, asg_last_error());
  } else if (asg_program_fetch(dut, t, ba, bytes) != ASG_OK) {
    snprintf(msg, msz, "%s: fetch from %s: %s", label, g_backend, asg_last_error());
  } else {
    tu_to_double(dt, ba, a, n);
    tu_to_double(dt, bb, b, n);
    ok = cmp_vals(label, dt, cls, a, b, n, msg, msz);
  }
  free(ba), free(bb), free(a), free(b);
  return ok;
}

static int cmp_variable(asg_program *ref, asg_program *dut, const char *name, tclass cls, char *msg,
                        size_t msz) {
  int n_v = asg_program_variable_count(ref);
  asg_dtype dt = ASG_F32;
  asg_shape s = ASG_SCALAR;
  int found = 0;
  for (int i = 0; i < n_v && !found; i++) {
    const char *nm;
    if (asg_program_variable_info(ref, i, &nm, &dt, &s) == ASG_OK && strcmp(nm, name) == 0)
      found = 1;
  }
  if (!found) {
    snprintf(msg, msz, "variable %s: not in the cpu program", name);
    return 0;
  }
  long n = numel(s);
  size_t bytes = (size_t)n * asg_dtype_size(dt);
  void *ba = malloc(bytes ? bytes : 1), *bb = malloc(bytes ? bytes : 1);
  double *a = malloc(sizeof(double) * (size_t)(n ? n : 1));
  double *b = malloc(sizeof(double) * (size_t)(n ? n : 1));
  int ok = 0;
  char what[96];
  snprintf(what, sizeof what, "variable %s", name);
  if (asg_program_get_variable(ref, name, bb, bytes) != ASG_OK) {
    snprintf(msg, msz, "%s: read from cpu: %s", what, asg_last_error());
  } else if (asg_program_get_variable(dut, name, ba, bytes) != ASG_OK) {
    snprintf(msg, msz, "%s: read from %s: %s", what, g_backend, asg_last_error());
  } else {
    tu_to_double(dt, ba, a, n);
    tu_to_double(dt, bb, b, n);
    ok = cmp_vals(what, dt, cls, a, b, n, msg, msz);
  }
  free(ba), free(bb), free(a), free(b);
  return ok;
}

/* ASG_PARITY_FILTER=text: report only the checks whose title contains text
 * (for working on one family; the coverage check is then skipped).
 * ASG_PARITY_VERBOSE=1: passing checks print their measured error as well. */
static const char *g_filter;

static void report(const char *title, int ok, const char *msg) {
  if (g_filter && !strstr(title, g_filter)) return;
  if (ok) {
    tu_pass++;
    if (getenv("ASG_PARITY_VERBOSE") && msg && msg[0]) /* the measured error too */
      printf("ok   %s: %s\n", title, msg);
    else
      printf("ok   %s\n", title);
  } else {
    tu_fail++;
    printf("FAIL %s: %s\n", title, msg);
  }
}

static asg_program *compile_on(asg_graph *g, int n, asg_tensor *const *outs, const char *be,
                               int threads, bool unchecked, asg_comm *comm, bool no_fusion) {
  asg_compile_opts o = {0};
  o.backend = be;
  o.no_fusion = no_fusion;
  o.num_threads = threads;
  o.unchecked_indices = unchecked;
  o.comm = comm;
  return asg_compile(g, n, outs, &o);
}

/* The communicator of the collective cases: this process alone, a world of
 * one (asg_comm_init without a launcher's environment). */
static asg_comm *g_comm;

/* The backend under test: on the CPU itself, a single-threaded program
 * (the reference uses all threads). */
static int dut_threads(void) { return strcmp(g_backend, "cpu") == 0 ? 1 : 0; }

/* Whether the reference's output k holds input out_same[k] - 1's bytes. */
static int same_as_input(asg_program *ref, const pcase *pc, int k, char *msg, size_t msz) {
  const int i = pc->out_same[k] - 1;
  const size_t bytes = pc->in_bytes[i];
  if ((size_t)numel(asg_tensor_shape(pc->out[k])) * asg_dtype_size(asg_tensor_dtype(pc->out[k])) !=
      bytes) {
    snprintf(msg, msz, "%s: not the size of input %s", pc->out_label[k], pc->in_name[i]);
    return 0;
  }
  unsigned char *b = malloc(bytes ? bytes : 1);
  int ok = asg_program_fetch(ref, pc->out[k], b, bytes) == ASG_OK;
  if (!ok)
    snprintf(msg, msz, "%s: fetch from cpu: %s", pc->out_label[k], asg_last_error());
  else if (memcmp(b, pc->in_data[i], bytes) != 0)
    snprintf(msg, msz, "%s on cpu: not a copy of input %s", pc->out_label[k], pc->in_name[i]),
        ok = 0;
  free(b);
  return ok;
}

static void pc_finish(pcase *pc) {
  char msg[512] = "";
  int ok = 1;
  asg_program *ref = NULL, *dut = NULL;
  asg_graph *g = pc->g;
  for (int k = 0; k < pc->n_out && ok; k++)
    if (!pc->out[k]) {
      snprintf(msg, sizeof msg, "build: %s", asg_graph_error(g) ? asg_graph_error(g) : "NULL");
      ok = 0;
    }
  /* loss = sum_k sum(y_k * r_k) over the float outputs; its gradients */
  if (ok && !pc->no_grad) {
    asg_dtype ldt = ASG_F32;
    int n_float = 0, n_out0 = pc->n_out;
    for (int k = 0; k < n_out0; k++)
      if (asg_dtype_is_float(asg_tensor_dtype(pc->out[k])) && pc->out_cmp[k]) {
        n_float++;
        if (asg_tensor_dtype(pc->out[k]) == ASG_F64) ldt = ASG_F64;
      }
    asg_tensor *wrt[MAXIN];
    int n_wrt = 0;
    for (int i = 0; i < pc->n_in; i++)
      if (asg_dtype_is_float(asg_tensor_dtype(pc->in_t[i]))) wrt[n_wrt++] = pc->in_t[i];
    if (n_float && n_wrt) {
      asg_tensor *loss = NULL;
      for (int k = 0; k < n_out0; k++) {
        asg_tensor *y = pc->out[k];
        if (!asg_dtype_is_float(asg_tensor_dtype(y)) || !pc->out_cmp[k]) continue;
        asg_shape s = asg_tensor_shape(y);
        double *r = rv(numel(s), 0.5, 1.5, false);
        void *rb = to_dtype(asg_tensor_dtype(y), r, numel(s));
        asg_tensor *term = asg_sum(asg_mul(y, mark(asg_constant(g, asg_tensor_dtype(y), s, rb))),
                                   ASG_ALL_AXES, false);
        free(r), free(rb);
        term = asg_cast(term, ldt);
        loss = loss ? asg_add(loss, term) : term;
      }
      asg_tensor *grads[MAXIN];
      if (!loss || asg_grad(loss, n_wrt, wrt, grads) != ASG_OK) {
        snprintf(msg, sizeof msg, "asg_grad: %s",
                 asg_graph_error(g) ? asg_graph_error(g) : asg_last_error());
        ok = 0;
      } else {
        pc_out_ex(pc, loss, "loss", C_ACCUM, true);
        for (int i = 0; i < n_wrt; i++) {
          char lab[32];
          snprintf(lab, sizeof lab, "d/d%s", asg_tensor_name(wrt[i]));
          pc_out_ex(pc, grads[i], lab, pc->gcls, true);
        }
      }
    }
  }
  if (ok) {
    /* the reference runs the ops as built; the backend under test fuses */
    ref =
        compile_on(g, pc->n_out, pc->out, "cpu", 0, pc->unchecked, pc->coll ? g_comm : NULL, true);
    if (!ref) snprintf(msg, sizeof msg, "compile on cpu: %s", asg_last_error()), ok = 0;
  }
  if (ok) {
    dut = compile_on(g, pc->n_out, pc->out, g_backend, dut_threads(), pc->unchecked,
                     pc->coll ? g_comm : NULL, false);
    if (!dut) snprintf(msg, sizeof msg, "compile on %s: %s", g_backend, asg_last_error()), ok = 0;
  }
  /* a case built for a fusion shows its fused op when the backend's program has fewer steps */
  if (ok && pc->fused && asg_program_step_count(dut) < asg_program_step_count(ref))
    mark_name(pc->fused);
  for (int i = 0; i < pc->n_in && ok; i++) {
    if (asg_program_feed(ref, pc->in_name[i], pc->in_data[i], pc->in_bytes[i]) != ASG_OK ||
        asg_program_feed(dut, pc->in_name[i], pc->in_data[i], pc->in_bytes[i]) != ASG_OK) {
      snprintf(msg, sizeof msg, "feed %s: %s", pc->in_name[i], asg_last_error());
      ok = 0;
    }
  }
  for (int r = 0; r < pc->runs && ok; r++) {
    if (asg_program_run(ref) != ASG_OK) {
      snprintf(msg, sizeof msg, "run %d on cpu: %s", r, asg_last_error());
      ok = 0;
      break;
    }
    if (asg_program_run(dut) != ASG_OK) {
      snprintf(msg, sizeof msg, "run %d on %s: %s", r, g_backend, asg_last_error());
      ok = 0;
      break;
    }
    for (int k = 0; k < pc->n_out && ok; k++) {
      if (!pc->out_cmp[k]) continue;
      char lab[64];
      if (pc->runs > 1)
        snprintf(lab, sizeof lab, "run %d %s", r, pc->out_label[k]);
      else
        snprintf(lab, sizeof lab, "%s", pc->out_label[k]);
      ok = cmp_output(ref, dut, pc->out[k], lab, pc->out_cls[k], msg, sizeof msg);
    }
    for (int v = 0; v < pc->n_var && ok; v++)
      ok = cmp_variable(ref, dut, pc->var_name[v], pc->cls, msg, sizeof msg);
  }
  for (int k = 0; k < pc->n_out && ok; k++)
    if (pc->out_same[k]) ok = same_as_input(ref, pc, k, msg, sizeof msg);
  report(pc->title, ok, msg);
  asg_program_free(ref);
  asg_program_free(dut);
  asg_graph_free(g);
  for (int i = 0; i < pc->n_in; i++)
    free(pc->in_data[i]);
}

/* ------------------------------------------------------- elementwise unary */

enum {
  U_NEG,
  U_ABS,
  U_SIGN,
  U_EXP,
  U_LOG,
  U_SQRT,
  U_RSQRT,
  U_SIN,
  U_COS,
  U_TANH,
  U_ERF,
  U_SIGMOID,
  U_RELU,
  U_LEAKY,
  U_GELU,
  U_GELU_TANH,
  U_SILU,
  U_ELU,
  U_SOFTPLUS,
  U_CLAMP,
  U_COUNT
};
static const struct {
  const char *name;
  double lo, hi;
} UNARY[U_COUNT] = {
    {"neg", -2, 2},   {"abs", -2, 2},        {"sign", -2, 2},     {"exp", -3, 3},
    {"log", 0.05, 4}, {"sqrt", 0.05, 4},     {"rsqrt", 0.05, 4},  {"sin", -4, 4},
    {"cos", -4, 4},   {"tanh", -3, 3},       {"erf", -3, 3},      {"sigmoid", -6, 6},
    {"relu", -2, 2},  {"leaky_relu", -2, 2}, {"gelu", -4, 4},     {"gelu_tanh", -4, 4},
    {"silu", -5, 5},  {"elu", -3, 3},        {"softplus", -3, 3}, {"clamp", -2, 2},
};

static asg_tensor *apply_unary(int k, asg_tensor *x) {
  switch (k) {
  case U_NEG: return asg_neg(x);
  case U_ABS: return asg_abs(x);
  case U_SIGN: return asg_sign(x);
  case U_EXP: return asg_exp(x);
  case U_LOG: return asg_log(x);
  case U_SQRT: return asg_sqrt(x);
  case U_RSQRT: return asg_rsqrt(x);
  case U_SIN: return asg_sin(x);
  case U_COS: return asg_cos(x);
  case U_TANH: return asg_tanh(x);
  case U_ERF: return asg_erf(x);
  case U_SIGMOID: return asg_sigmoid(x);
  case U_RELU: return asg_relu(x);
  case U_LEAKY: return asg_leaky_relu(x, 0.07);
  case U_GELU: return asg_gelu(x);
  case U_GELU_TANH: return asg_gelu_tanh(x);
  case U_SILU: return asg_silu(x);
  case U_ELU: return asg_elu(x, 1.3);
  case U_SOFTPLUS: return asg_softplus(x, 2.0, 3.0); /* beta x > 3 for some x: linear part */
  default: return asg_clamp(x, -0.5, 0.7);
  }
}

static void cases_unary(void) {
  asg_shape s = ASG_SHAPE(3, 37, 11);
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < U_COUNT; k++) {
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s", UNARY[k].name, dtn(FDT[d]), shp(s));
      pc_out(&pc, apply_unary(k, pc_in(&pc, FDT[d], s, UNARY[k].lo, UNARY[k].hi)), "y");
      pc_finish(&pc);
    }
  /* multi-block sizes */
  asg_shape big = ASG_SHAPE(70001);
  const int bigk[] = {U_GELU, U_SIGMOID, U_EXP, U_RELU};
  for (int d = 0; d < 2; d++)
    for (size_t j = 0; j < sizeof bigk / sizeof bigk[0]; j++) {
      int k = bigk[j];
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s", UNARY[k].name, dtn(FDT[d]), shp(big));
      pc_out(&pc, apply_unary(k, pc_in(&pc, FDT[d], big, UNARY[k].lo, UNARY[k].hi)), "y");
      pc_finish(&pc);
    }
  /* integer unary ops */
  for (int d = 0; d < 2; d++) {
    asg_shape si = ASG_SHAPE(7, 53);
    pcase pc;
    pc_begin(&pc, C_EXACT, "neg/abs/sign/relu/clamp %s %s", dtn(IDT[d]), shp(si));
    asg_tensor *x = pc_in(&pc, IDT[d], si, -50, 50);
    pc_out(&pc, asg_neg(x), "neg");
    pc_out(&pc, asg_abs(x), "abs");
    pc_out(&pc, asg_sign(x), "sign");
    pc_out(&pc, asg_relu(x), "relu");
    pc_out(&pc, asg_clamp(x, -7, 20), "clamp");
    pc_finish(&pc);
  }
  /* stop_gradient: y = x * stop_gradient(x), dy/dx = x */
  for (int d = 0; d < 2; d++) {
    pcase pc;
    pc_begin(&pc, C_ELEM, "stop_gradient %s %s", dtn(FDT[d]), shp(s));
    asg_tensor *x = pc_in(&pc, FDT[d], s, -2, 2);
    pc_out(&pc, asg_mul(x, mark(asg_stop_gradient(x))), "y");
    pc_finish(&pc);
  }
}

static void cases_cast(void) {
  asg_shape s = ASG_SHAPE(9, 41);
  for (int d = 0; d < 2; d++) {
    asg_dtype a = FDT[d], b = FDT[1 - d];
    pcase pc;
    pc_begin(&pc, C_ELEM, "cast %s->%s %s", dtn(a), dtn(b), shp(s));
    pc_out(&pc, asg_cast(pc_in(&pc, a, s, -3, 3), b), "y");
    pc_finish(&pc);
  }
  /* float -> int (values away from integers), int -> float, int -> int */
  static const asg_dtype pairs[][2] = {{ASG_F32, ASG_I32}, {ASG_F32, ASG_I64}, {ASG_F64, ASG_I32},
                                       {ASG_F64, ASG_I64}, {ASG_I32, ASG_F32}, {ASG_I64, ASG_F64},
                                       {ASG_I32, ASG_I64}, {ASG_I64, ASG_I32}, {ASG_I32, ASG_F64},
                                       {ASG_I64, ASG_F32}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    asg_dtype a = pairs[k][0], b = pairs[k][1];
    pcase pc;
    pc_begin(&pc, C_EXACT, "cast %s->%s %s", dtn(a), dtn(b), shp(s));
    pc.no_grad = true;
    long n = numel(s);
    double *v = rv(n, -60, 60, true);
    if (asg_dtype_is_float(a))
      for (long i = 0; i < n; i++)
        v[i] += (i % 3 == 0) ? 0.25 : (i % 3 == 1 ? 0.75 : 0);
    pc_out(&pc, asg_cast(pc_in_vals(&pc, a, s, v), b), "y");
    free(v);
    pc_finish(&pc);
  }
}

/* ------------------------------------------------------ elementwise binary */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_COUNT };
static const char *const BNAME[B_COUNT] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};

static asg_tensor *apply_binary(int k, asg_tensor *a, asg_tensor *b) {
  switch (k) {
  case B_ADD: return asg_add(a, b);
  case B_SUB: return asg_sub(a, b);
  case B_MUL: return asg_mul(a, b);
  case B_DIV: return asg_div(a, b);
  case B_POW: return asg_pow(a, b);
  case B_MAXIMUM: return asg_maximum(a, b);
  default: return asg_minimum(a, b);
  }
}

enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_COUNT };
static const char *const CNAME[CMP_COUNT] = {"eq", "ne", "lt", "le", "gt", "ge"};
static asg_tensor *apply_cmp(int k, asg_tensor *a, asg_tensor *b) {
  switch (k) {
  case CMP_EQ: return asg_eq(a, b);
  case CMP_NE: return asg_ne(a, b);
  case CMP_LT: return asg_lt(a, b);
  case CMP_LE: return asg_le(a, b);
  case CMP_GT: return asg_gt(a, b);
  default: return asg_ge(a, b);
  }
}

static void cases_binary(void) {
  asg_shape sa = ASG_SHAPE(5, 1, 13), sb = ASG_SHAPE(4, 13);
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < B_COUNT; k++) {
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s,%s", BNAME[k], dtn(FDT[d]), shp(sa), shp(sb));
      pc.gcls = C_ACCUM; /* gradients sum over the broadcast dims */
      double alo = k == B_POW ? 0.3 : -2, ahi = 2;
      double blo = (k == B_DIV) ? 0.5 : -2, bhi = 2;
      asg_tensor *a = pc_in(&pc, FDT[d], sa, alo, ahi);
      asg_tensor *b = pc_in(&pc, FDT[d], sb, blo, bhi);
      pc_out(&pc, apply_binary(k, a, b), "y");
      pc_finish(&pc);
    }
  /* multi-block broadcast: [7,10007] + [10007] */
  asg_shape la = ASG_SHAPE(7, 10007), lb = ASG_SHAPE(10007);
  for (int d = 0; d < 2; d++) {
    static const int ks[] = {B_ADD, B_MUL};
    for (int j = 0; j < 2; j++) {
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s,%s", BNAME[ks[j]], dtn(FDT[d]), shp(la), shp(lb));
      pc.gcls = C_ACCUM;
      asg_tensor *a = pc_in(&pc, FDT[d], la, -1, 1);
      asg_tensor *b = pc_in(&pc, FDT[d], lb, -1, 1);
      pc_out(&pc, apply_binary(ks[j], a, b), "y");
      pc_finish(&pc);
    }
  }
  /* scalar forms (fill nodes) */
  for (int d = 0; d < 2; d++) {
    asg_shape s = ASG_SHAPE(11, 19);
    pcase pc;
    pc_begin(&pc, C_ELEM, "add_scalar/mul_scalar/pow_scalar/fill %s %s", dtn(FDT[d]), shp(s));
    asg_tensor *x = pc_in(&pc, FDT[d], s, 0.2, 2);
    pc_out(&pc, asg_add_scalar(x, 0.75), "x+c");
    pc_out(&pc, asg_mul_scalar(x, -1.5), "x*c");
    pc_out(&pc, asg_pow_scalar(x, 2.5), "x^c");
    pc_out(&pc, asg_mul(x, mark(asg_fill(pc.g, FDT[d], ASG_SHAPE(19), 0.3))), "x*fill");
    pc_finish(&pc);
  }
  /* integer binary */
  asg_shape ia = ASG_SHAPE(6, 1, 21), ib = ASG_SHAPE(5, 21);
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < B_COUNT; k++) {
      if (k == B_POW) continue; /* float only */
      pcase pc;
      pc_begin(&pc, C_EXACT, "%s %s %s,%s", BNAME[k], dtn(IDT[d]), shp(ia), shp(ib));
      asg_tensor *a = pc_in(&pc, IDT[d], ia, -100, 100);
      long nb = numel(ib);
      double *v = rv(nb, -9, 10, true);
      for (long i = 0; i < nb; i++)
        if (v[i] == 0) v[i] = (i & 1) ? 3 : -4; /* nonzero divisors, both signs */
      asg_tensor *b = pc_in_vals(&pc, IDT[d], ib, v);
      free(v);
      pc_out(&pc, apply_binary(k, a, b), "y");
      pc_finish(&pc);
    }
  /* comparisons (frequent ties), float and integer; masks exact */
  asg_shape ca = ASG_SHAPE(9, 31), cb = ASG_SHAPE(31);
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    pcase pc;
    pc_begin(&pc, C_EXACT, "eq/ne/lt/le/gt/ge %s %s,%s", dtn(dt), shp(ca), shp(cb));
    pc.no_grad = true; /* not differentiable */
    asg_tensor *a = pc_in_int(&pc, dt, ca, 0, 4);
    asg_tensor *b = pc_in_int(&pc, dt, cb, 0, 4);
    for (int k = 0; k < CMP_COUNT; k++)
      pc_out(&pc, apply_cmp(k, a, b), CNAME[k]);
    pc_finish(&pc);
  }
  /* where: cond fed (0/1) and computed (a > b); broadcasting */
  asg_shape wc = ASG_SHAPE(6, 1, 17), wa = ASG_SHAPE(6, 5, 17), wb = ASG_SHAPE(17);
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    pcase pc;
    pc_begin(&pc, t < 2 ? C_ELEM : C_EXACT, "where %s %s,%s,%s", dtn(dt), shp(wc), shp(wa),
             shp(wb));
    pc.gcls = C_ACCUM;
    asg_tensor *c = pc_in_int(&pc, dt, wc, 0, 2);
    asg_tensor *a = pc_in(&pc, dt, wa, -20, 20);
    asg_tensor *b = pc_in(&pc, dt, wb, -20, 20);
    pc_out(&pc, asg_where(c, a, b), "where(c,a,b)");
    pc_out(&pc, asg_where(mark(asg_gt(a, b)), b, a), "where(a>b,b,a)");
    pc_finish(&pc);
  }
}

/* -------------------------------------------------------------- reductions */

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_VAR, R_ARGMAX, R_SOFTMAX, R_LOGSOFTMAX, R_COUNT };
static const char *const RNAME[R_COUNT] = {"sum", "mean",   "max",     "min",
                                           "var", "argmax", "softmax", "log_softmax"};

static asg_tensor *apply_reduce(int k, asg_tensor *x, asg_axes ax, bool keep) {
  switch (k) {
  case R_SUM: return asg_sum(x, ax, keep);
  case R_MEAN: return asg_mean(x, ax, keep);
  case R_MAX: return asg_max(x, ax, keep);
  case R_MIN: return asg_min(x, ax, keep);
  case R_VAR: return asg_var(x, ax, 1, keep);
  case R_ARGMAX: return asg_argmax(x, ax.axis[0], keep);
  case R_SOFTMAX: return asg_softmax(x, ax.axis[0]);
  default: return asg_log_softmax(x, ax.axis[0]);
  }
}

static const char *axes_str(asg_axes ax) {
  static char buf[4][40];
  static int j;
  j = (j + 1) % 4;
  if (ax.n == 0) return "all";
  int o = 0;
  for (int i = 0; i < ax.n; i++)
    o += snprintf(buf[j] + o, sizeof buf[j] - (size_t)o, "%s%d", i ? "," : "(", ax.axis[i]);
  snprintf(buf[j] + o, sizeof buf[j] - (size_t)o, ")");
  return buf[j];
}

static void one_reduce(int k, asg_dtype dt, asg_shape s, asg_axes ax, bool keep) {
  pcase pc;
  bool exact = k == R_ARGMAX || k == R_MAX || k == R_MIN || !asg_dtype_is_float(dt);
  pc_begin(&pc, exact ? C_EXACT : C_ACCUM, "%s %s %s axes=%s keepdim=%d", RNAME[k], dtn(dt), shp(s),
           axes_str(ax), keep);
  asg_tensor *x = asg_dtype_is_float(dt) ? pc_in(&pc, dt, s, -3, 3) : pc_in(&pc, dt, s, -500, 500);
  pc_out(&pc, apply_reduce(k, x, ax, keep), "y");
  pc_finish(&pc);
}

static void cases_reduce(void) {
  asg_shape big = ASG_SHAPE(257, 300), small = ASG_SHAPE(6, 7, 9);
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    for (int k = 0; k < R_COUNT; k++) {
      one_reduce(k, dt, big, ASG_AXES(1), false);
      one_reduce(k, dt, big, ASG_AXES(0), false);
      if (k == R_ARGMAX || k == R_SOFTMAX || k == R_LOGSOFTMAX) {
        one_reduce(k, dt, small, ASG_AXES(1), k == R_ARGMAX);
        one_reduce(k, dt, small, ASG_AXES(-1), false);
      } else {
        one_reduce(k, dt, small, ASG_AXES(0, 2), true);
        one_reduce(k, dt, small, ASG_ALL_AXES, false);
      }
    }
    one_reduce(R_SUM, dt, big, ASG_ALL_AXES, false);
    /* [R, C] -> [C] in four-column vectors and chunks of rows; short rows
     * (8 threads a row) of 64 and 100 elements */
    for (int k = 0; k <= R_ARGMAX; k++) {
      one_reduce(k, dt, ASG_SHAPE(2048, 96), ASG_AXES(0), false);
      one_reduce(k, dt, ASG_SHAPE(300, 64), ASG_AXES(1), false);
      one_reduce(k, dt, ASG_SHAPE(40, 100), ASG_AXES(-1), false);
    }
  }
  for (size_t j = 0; j < 3; j++) /* integer four-column vectors */
    one_reduce((int[]){R_SUM, R_MAX, R_ARGMAX}[j], ASG_I32, ASG_SHAPE(600, 8), ASG_AXES(0), false);
  /* integer reductions */
  asg_shape si = ASG_SHAPE(37, 23);
  static const int ik[] = {R_SUM, R_MAX, R_MIN, R_ARGMAX};
  for (int d = 0; d < 2; d++)
    for (size_t j = 0; j < sizeof ik / sizeof ik[0]; j++) {
      one_reduce(ik[j], IDT[d], si, ASG_AXES(0), false);
      if (ik[j] != R_ARGMAX)
        one_reduce(ik[j], IDT[d], si, ASG_ALL_AXES, false);
      else
        one_reduce(ik[j], IDT[d], si, ASG_AXES(1), true);
    }
  /* argmax with ties: the first maximum */
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    asg_shape s = ASG_SHAPE(19, 27);
    pcase pc;
    pc_begin(&pc, C_EXACT, "argmax ties %s %s axes=(1)", dtn(dt), shp(s));
    pc_out(&pc, asg_argmax(pc_in_int(&pc, dt, s, 0, 3), 1, false), "y");
    pc_finish(&pc);
  }
}

/* ------------------------------------------------------------------ matmul */

static void one_matmul(asg_dtype dt, asg_shape sa, asg_shape sb, bool ta, bool tb) {
  pcase pc;
  pc_begin(&pc, C_ACCUM, "matmul %s %sx%s ta=%d tb=%d", dtn(dt), shp(sa), shp(sb), ta, tb);
  asg_tensor *a = pc_in(&pc, dt, sa, -1, 1), *b = pc_in(&pc, dt, sb, -1, 1);
  pc_out(&pc, asg_matmul_t(a, b, ta, tb), "y");
  pc_finish(&pc);
}

static void cases_matmul(void) {
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    one_matmul(dt, ASG_SHAPE(3, 5, 7), ASG_SHAPE(7, 4), false, false);
    one_matmul(dt, ASG_SHAPE(3, 5, 7), ASG_SHAPE(4, 7), false, true);
    one_matmul(dt, ASG_SHAPE(3, 7, 5), ASG_SHAPE(7, 4), true, false);
    one_matmul(dt, ASG_SHAPE(3, 7, 5), ASG_SHAPE(3, 4, 7), true, true);
    one_matmul(dt, ASG_SHAPE(2, 1, 5, 7), ASG_SHAPE(3, 7, 4), false, false);
    one_matmul(dt, ASG_SHAPE(1, 9), ASG_SHAPE(9, 1), false, false);
    one_matmul(dt, ASG_SHAPE(65, 129), ASG_SHAPE(129, 67), false, false);
    one_matmul(dt, ASG_SHAPE(129, 65), ASG_SHAPE(67, 129), true, true);
  }
}

/* ------------------------------------------------------------------- shape */

static void cases_shape(void) {
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    bool fl = t < 2;
    tclass c = C_EXACT;
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(6, 35);
      pc_begin(&pc, c, "reshape %s %s->[5,7,6]", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -9, 9);
      pc_out(&pc, asg_reshape(x, ASG_SHAPE(5, 7, -1)), "y");
      pc_out(&pc, asg_flatten(asg_reshape(x, ASG_SHAPE(2, 3, 35)), 1), "flatten");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(3, 4, 5, 7);
      static const int perm[4] = {2, 0, 3, 1};
      pc_begin(&pc, c, "permute %s %s perm=(2,0,3,1); transpose(0,2)", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -9, 9);
      pc_out(&pc, asg_permute(x, perm), "permute");
      pc_out(&pc, asg_transpose(x, 0, 2), "transpose");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(7, 23, 5);
      pc_begin(&pc, c, "slice %s %s axis1 1:-2:3, axis0 -4:, axis2 0:5:2", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -9, 9);
      pc_out(&pc, asg_slice(x, 1, 1, -2, 3), "slice1");
      pc_out(&pc, asg_slice(x, 0, -4, 100, 1), "slice0");
      pc_out(&pc, asg_slice(x, 2, 0, 5, 2), "slice2");
      pc_finish(&pc);
      if (fl) {
        /* multi-block slice and its slice_bwd */
        pcase pb;
        asg_shape sl = ASG_SHAPE(211, 347);
        pc_begin(&pb, c, "slice %s %s axis1 3:-5:2", dtn(dt), shp(sl));
        pc_out(&pb, asg_slice(pc_in(&pb, dt, sl, -1, 1), 1, 3, -5, 2), "y");
        pc_finish(&pb);
      }
    }
    {
      pcase pc;
      asg_shape s0 = ASG_SHAPE(4, 3, 5), s1 = ASG_SHAPE(4, 1, 5), s2 = ASG_SHAPE(4, 6, 5);
      pc_begin(&pc, c, "concat %s %s,%s,%s axis=1, axis=-3; split", dtn(dt), shp(s0), shp(s1),
               shp(s2));
      asg_tensor *xs[3] = {pc_in(&pc, dt, s0, -9, 9), pc_in(&pc, dt, s1, -9, 9),
                           pc_in(&pc, dt, s2, -9, 9)};
      asg_tensor *y = asg_concat(xs, 3, 1);
      pc_out(&pc, y, "concat");
      asg_tensor *ys[2] = {xs[0], xs[0]};
      pc_out(&pc, asg_concat(ys, 2, -3), "concat axis=-3");
      asg_tensor *parts[2] = {NULL, NULL};
      static const int64_t sizes[2] = {4, 6};
      if (y && asg_split(y, 1, 2, sizes, parts) == ASG_OK) {
        pc_out(&pc, parts[0], "split0");
        pc_out(&pc, parts[1], "split1");
      } else {
        pc_out(&pc, NULL, "split");
      }
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(1, 5, 1);
      pc_begin(&pc, c, "broadcast_to %s %s->[4,5,6]", dtn(dt), shp(s));
      pc.gcls = C_ACCUM;
      pc_out(&pc, asg_broadcast_to(pc_in(&pc, dt, s, -9, 9), ASG_SHAPE(4, 5, 6)), "y");
      pc_finish(&pc);
    }
  }
}

/* ---------------------------------------------------------------- indexing */

static void cases_index(void) {
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    for (int it = 0; it < 2; it++) {
      asg_dtype idt = IDT[it];
      /* gather along axis 0 and 1 (duplicates and out-of-range indices:
       * unchecked, they gather zeros) */
      pcase pc;
      asg_shape sx = ASG_SHAPE(13, 7, 3), si = ASG_SHAPE(4, 5);
      pc_begin(&pc, C_EXACT, "gather %s idx %s %s[%s] axis 0,1 (unchecked)", dtn(dt), dtn(idt),
               shp(sx), shp(si));
      pc.gcls = C_ACCUM; /* gradient: scatter_add accumulation */
      pc.unchecked = true;
      asg_tensor *x = pc_in(&pc, dt, sx, -9, 9);
      asg_tensor *i0 = pc_in(&pc, idt, si, -1, 14);
      asg_tensor *i1 = pc_in(&pc, idt, ASG_SHAPE(11), -2, 9);
      pc_out(&pc, asg_gather(x, i0, 0), "gather0");
      pc_out(&pc, asg_gather(x, i1, 1), "gather1");
      pc_out(&pc, asg_embedding(asg_reshape(x, ASG_SHAPE(13, 21)), i0), "embedding");
      pc_finish(&pc);
    }
    for (int it = 0; it < 2; it++) {
      asg_dtype idt = IDT[it];
      /* scatter_add with duplicate indices, along axis 0 and -1 */
      pcase pc;
      asg_shape sx = ASG_SHAPE(9, 6);
      pc_begin(&pc, asg_dtype_is_float(dt) ? C_ACCUM : C_EXACT,
               "scatter_add %s idx %s x%s idx[11] axis 0,1 (unchecked)", dtn(dt), dtn(idt),
               shp(sx));
      pc.unchecked = true; /* index -1 on axis 0: skipped */
      asg_tensor *x = pc_in(&pc, dt, sx, -9, 9);
      asg_tensor *i0 = pc_in(&pc, idt, ASG_SHAPE(11), -1, 10);
      asg_tensor *s0 = pc_in(&pc, dt, ASG_SHAPE(11, 6), -9, 9);
      asg_tensor *i1 = pc_in(&pc, idt, ASG_SHAPE(11), 0, 6);
      asg_tensor *s1 = pc_in(&pc, dt, ASG_SHAPE(9, 11), -9, 9);
      pc_out(&pc, asg_scatter_add(x, i0, s0, 0), "scatter0");
      pc_out(&pc, asg_scatter_add(x, i1, s1, -1), "scatter1");
      pc_finish(&pc);
    }
  }
  /* multi-block gather / its scatter_add gradient */
  for (int d = 0; d < 2; d++) {
    pcase pc;
    asg_shape sx = ASG_SHAPE(301, 233), si = ASG_SHAPE(517);
    pc_begin(&pc, C_EXACT, "gather %s idx i64 %s[%s] axis 0", dtn(FDT[d]), shp(sx), shp(si));
    pc.gcls = C_ACCUM;
    asg_tensor *x = pc_in(&pc, FDT[d], sx, -1, 1);
    pc_out(&pc, asg_gather(x, pc_in(&pc, ASG_I64, si, 0, 301), 0), "y");
    pc_finish(&pc);
  }
  /* one_hot: every output dtype, both index dtypes; unchecked with
   * out-of-range rows (all zero), then checked with indices in range */
  for (int k = 0; k < 4; k++) {
    const int it = k % 2;
    const bool unchecked = k < 2;
    pcase pc;
    asg_shape si = ASG_SHAPE(5, 7);
    pc_begin(&pc, C_EXACT, "one_hot idx %s %s depth 9 -> f32,f64,i32,i64%s", dtn(IDT[it]), shp(si),
             unchecked ? " (unchecked)" : "");
    pc.unchecked = unchecked;
    asg_tensor *idx = pc_in(&pc, IDT[it], si, unchecked ? -1 : 0, unchecked ? 11 : 9);
    pc_out(&pc, asg_one_hot(idx, 9, ASG_F32), "f32");
    pc_out(&pc, asg_one_hot(idx, 9, ASG_F64), "f64");
    pc_out(&pc, asg_one_hot(idx, 9, ASG_I32), "i32");
    pc_out(&pc, asg_one_hot(idx, 9, ASG_I64), "i64");
    pc_finish(&pc);
  }
}

/* ---------------------------------------------------------------- nn ops */

static void cases_layernorm(void) {
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(5, 7, 33);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s gamma,beta [33]", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *gm = pc_in(&pc, dt, ASG_SHAPE(33), 0.5, 1.5);
      asg_tensor *bt = pc_in(&pc, dt, ASG_SHAPE(33), -1, 1);
      pc_out(&pc, asg_layernorm(x, gm, bt, 1e-5), "y");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(257, 300);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s gamma [300]", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *gm = pc_in(&pc, dt, ASG_SHAPE(300), 0.5, 1.5);
      pc_out(&pc, asg_layernorm(x, gm, NULL, 1e-5), "y");
      pc_finish(&pc);
    }
    /* CUDA computes dx and dgamma in one pass for rows of <= 1024 columns
     * (K = 24 and 32 values a lane; more rows than its 2048 warps; and wider
     * rows, which take the two kernels) */
    static const int64_t wide[3][2] = {{40, 768}, {4100, 1000}, {3, 1025}};
    for (int w = 0; w < 3; w++) {
      pcase pc;
      asg_shape s = ASG_SHAPE(wide[w][0], wide[w][1]);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s gamma,beta", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *gm = pc_in(&pc, dt, ASG_SHAPE(wide[w][1]), 0.5, 1.5);
      asg_tensor *bt = pc_in(&pc, dt, ASG_SHAPE(wide[w][1]), -1, 1);
      pc_out(&pc, asg_layernorm(x, gm, bt, 1e-5), "y");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(9, 17);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s no affine eps 1e-3", dtn(dt), shp(s));
      pc_out(&pc, asg_layernorm(pc_in(&pc, dt, s, -2, 3), NULL, NULL, 1e-3), "y");
      pc_finish(&pc);
    }
  }
}

typedef struct convcfg {
  int N, C, H, W, O, KH, KW;
  asg_conv_params p;
  bool bias;
} convcfg;

static void cases_conv(void) {
  static const convcfg cf[] = {
      {2, 3, 11, 13, 5, 3, 3, {.padding = {1, 1}}, true},
      {2,
       4,
       12,
       10,
       6,
       3,
       2,
       {.stride = {2, 1}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2},
       false},
      {1, 3, 9, 7, 4, 1, 1, {.stride = {1, 2}}, true},
      {4, 8, 17, 19, 16, 3, 3, {.padding = {1, 1}}, true},
  };
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof cf / sizeof cf[0]; k++) {
      const convcfg *c = &cf[k];
      int G = c->p.groups ? c->p.groups : 1;
      asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W),
                ws = ASG_SHAPE(c->O, c->C / G, c->KH, c->KW);
      pcase pc;
      pc_begin(&pc, C_ACCUM, "conv2d %s x%s w%s s=%d,%d p=%d,%d d=%d,%d g=%d bias=%d", dtn(FDT[d]),
               shp(xs), shp(ws), c->p.stride[0], c->p.stride[1], c->p.padding[0], c->p.padding[1],
               c->p.dilation[0], c->p.dilation[1], c->p.groups, c->bias);
      asg_tensor *x = pc_in(&pc, FDT[d], xs, -1, 1), *w = pc_in(&pc, FDT[d], ws, -1, 1);
      asg_tensor *b = c->bias ? pc_in(&pc, FDT[d], ASG_SHAPE(c->O), -1, 1) : NULL;
      pc_out(&pc, asg_conv2d(x, w, b, c->p), "y");
      pc.fused = c->bias ? "conv2d_bias_act" : NULL;
      pc_finish(&pc);
    }
  /* relu(conv2d + bias): one conv2d_bias_act step with its ReLU, against the unfused CPU */
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof cf / sizeof cf[0]; k++) {
      const convcfg *c = &cf[k];
      int G = c->p.groups ? c->p.groups : 1;
      asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W),
                ws = ASG_SHAPE(c->O, c->C / G, c->KH, c->KW);
      pcase pc;
      pc_begin(&pc, C_ACCUM, "relu(conv2d + bias) %s x%s w%s", dtn(FDT[d]), shp(xs), shp(ws));
      asg_tensor *x = pc_in(&pc, FDT[d], xs, -1, 1), *w = pc_in(&pc, FDT[d], ws, -1, 1);
      asg_tensor *b = pc_in(&pc, FDT[d], ASG_SHAPE(c->O), -1, 1);
      pc_out(&pc, asg_relu(asg_conv2d(x, w, b, c->p)), "y");
      pc.fused = "conv2d_bias_act";
      pc_finish(&pc);
    }
  /* transposed convolution (its gradients: conv2d and conv2d_bwd_weight) */
  static const convcfg ct[] = {
      {2, 4, 5, 6, 6, 3, 3, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}}, true},
      {1, 4, 7, 5, 6, 2, 3, {.stride = {1, 2}, .groups = 2, .dilation = {2, 1}}, false},
  };
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof ct / sizeof ct[0]; k++) {
      const convcfg *c = &ct[k];
      int G = c->p.groups ? c->p.groups : 1;
      asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W),
                ws = ASG_SHAPE(c->C, c->O / G, c->KH, c->KW);
      pcase pc;
      pc_begin(&pc, C_ACCUM, "conv_transpose2d %s x%s w%s s=%d,%d p=%d,%d op=%d,%d g=%d bias=%d",
               dtn(FDT[d]), shp(xs), shp(ws), c->p.stride[0], c->p.stride[1], c->p.padding[0],
               c->p.padding[1], c->p.output_padding[0], c->p.output_padding[1], c->p.groups,
               c->bias);
      asg_tensor *x = pc_in(&pc, FDT[d], xs, -1, 1), *w = pc_in(&pc, FDT[d], ws, -1, 1);
      asg_tensor *b = c->bias ? pc_in(&pc, FDT[d], ASG_SHAPE(c->O), -1, 1) : NULL;
      pc_out(&pc, asg_conv_transpose2d(x, w, b, c->p), "y");
      pc_finish(&pc);
    }
}

static void cases_pool(void) {
  static const asg_pool_params pp[] = {
      {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
      {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}},
      {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 0}},
  };
  asg_shape s = ASG_SHAPE(2, 3, 11, 13);
  for (int d = 0; d < 2; d++) {
    for (size_t k = 0; k < sizeof pp / sizeof pp[0]; k++)
      for (int avg = 0; avg < 2; avg++) {
        pcase pc;
        pc_begin(&pc, avg ? C_ACCUM : C_EXACT, "%s %s %s k=%d,%d s=%d,%d p=%d,%d",
                 avg ? "avg_pool2d" : "max_pool2d", dtn(FDT[d]), shp(s), pp[k].kernel[0],
                 pp[k].kernel[1], pp[k].stride[0], pp[k].stride[1], pp[k].padding[0],
                 pp[k].padding[1]);
        pc.gcls = C_ACCUM;
        asg_tensor *x = pc_in(&pc, FDT[d], s, -2, 2);
        pc_out(&pc, avg ? asg_avg_pool2d(x, pp[k]) : asg_max_pool2d(x, pp[k]), "y");
        pc_finish(&pc);
      }
    static const int ao[][2] = {{4, 5}, {3, 3}, {11, 13}, {1, 1}};
    for (size_t k = 0; k < sizeof ao / sizeof ao[0]; k++) {
      pcase pc;
      pc_begin(&pc, C_ACCUM, "adaptive_avg_pool2d %s %s -> %dx%d", dtn(FDT[d]), shp(s), ao[k][0],
               ao[k][1]);
      pc_out(&pc, asg_adaptive_avg_pool2d(pc_in(&pc, FDT[d], s, -2, 2), ao[k][0], ao[k][1]), "y");
      pc_finish(&pc);
    }
    /* multi-block max pool */
    pcase pc;
    asg_shape sb = ASG_SHAPE(4, 16, 33, 31);
    pc_begin(&pc, C_EXACT, "max_pool2d %s %s k=2,2", dtn(FDT[d]), shp(sb));
    pc.gcls = C_ACCUM;
    pc_out(&pc, asg_max_pool2d(pc_in(&pc, FDT[d], sb, -2, 2), pp[1]), "y");
    pc_finish(&pc);
    /* pooling options: dilation (max), ceil mode (windows past the padded
     * input, the last one dropped when it would start in the padding),
     * exclude_pad (avg) */
    static const struct {
      bool avg;
      asg_pool_params p;
    } po[] = {
        {false, {{3, 3}, {2, 2}, {1, 1}, {2, 2}, true, false}},
        {false, {{2, 3}, {3, 1}, {1, 1}, {3, 2}, false, false}},
        {false, {{2, 2}, {2, 2}, {1, 1}, {0, 0}, true, false}},
        {true, {{3, 2}, {2, 3}, {1, 0}, {0, 0}, true, false}},
        {true, {{4, 3}, {3, 2}, {2, 1}, {0, 0}, true, true}},
        {true, {{3, 2}, {2, 3}, {1, 0}, {0, 0}, false, true}},
    };
    for (size_t k = 0; k < sizeof po / sizeof po[0]; k++) {
      const asg_pool_params *q = &po[k].p;
      pcase pc;
      pc_begin(&pc, po[k].avg ? C_ACCUM : C_EXACT,
               "%s %s %s k=%d,%d s=%d,%d p=%d,%d d=%d,%d ceil=%d exclude_pad=%d",
               po[k].avg ? "avg_pool2d" : "max_pool2d", dtn(FDT[d]), shp(s), q->kernel[0],
               q->kernel[1], q->stride[0], q->stride[1], q->padding[0], q->padding[1],
               q->dilation[0], q->dilation[1], q->ceil_mode, q->exclude_pad);
      pc.gcls = C_ACCUM;
      asg_tensor *x = pc_in(&pc, FDT[d], s, -2, 2);
      pc_out(&pc, po[k].avg ? asg_avg_pool2d(x, *q) : asg_max_pool2d(x, *q), "y");
      pc_finish(&pc);
    }
  }
}

/* pad, upsample */
/* pad (constant, reflect, replicate; crops; leading dims merged or not) and
 * upsample (nearest, bilinear both alignments, 1-D, sizes and scales, up
 * and down): data movement is exact, interpolation and gradients accum. */
static void cases_resample(void) {
  static const struct {
    int n;
    int64_t pads[6];
  } P[] = {{2, {3, 2}}, {4, {1, 2, 2, 1}}, {6, {2, 1, 0, 3, 1, 1}}, {4, {-1, 3, 2, -2}}};
  asg_shape s = ASG_SHAPE(2, 3, 5, 7);
  for (int d = 0; d < 2; d++) {
    for (size_t k = 0; k < sizeof P / sizeof P[0]; k++)
      for (int m = 0; m < 3; m++) {
        pcase pc;
        pc_begin(&pc, C_EXACT, "pad %s %s mode=%d pads[%d]", dtn(FDT[d]), shp(s), m, P[k].n);
        pc.gcls = C_ACCUM;
        pc_out(&pc, asg_pad(pc_in(&pc, FDT[d], s, -2, 2), P[k].pads, P[k].n, (asg_pad_mode)m, 0.5),
               "y");
        pc_finish(&pc);
      }
    /* more than one workgroup / thread block */
    pcase pc;
    asg_shape sb = ASG_SHAPE(4, 16, 33, 31);
    const int64_t pb[4] = {2, 1, 1, 3};
    pc_begin(&pc, C_EXACT, "pad reflect %s %s", dtn(FDT[d]), shp(sb));
    pc.gcls = C_ACCUM;
    pc_out(&pc, asg_pad(pc_in(&pc, FDT[d], sb, -2, 2), pb, 4, ASG_PAD_REFLECT, 0), "y");
    pc_finish(&pc);
  }
  const struct {
    const char *what;
    asg_shape xs;
    asg_upsample_params p;
  } U[] = {
      {"nearest x2", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {2, 2}}},
      {"nearest 5x7->3x11", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_NEAREST, false, {3, 11}, {0, 0}}},
      {"nearest scale 1.5,0.6",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {1.5, 0.6}}},
      {"bilinear 5x7->9x13", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_LINEAR, false, {9, 13}, {0, 0}}},
      {"bilinear align 5x7->9x13",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_LINEAR, true, {9, 13}, {0, 0}}},
      {"bilinear 5x7->3x4", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_LINEAR, false, {3, 4}, {0, 0}}},
      {"bilinear align 5x7->1x4",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_LINEAR, true, {1, 4}, {0, 0}}},
      {"bilinear scale 2.5,1.3",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2.5, 1.3}}},
      {"linear 1-d", ASG_SHAPE(2, 3, 9), {ASG_UPSAMPLE_LINEAR, false, {20}, {0}}},
      {"nearest 1-d", ASG_SHAPE(2, 3, 9), {ASG_UPSAMPLE_NEAREST, false, {0}, {3}}},
      {"bilinear x2 (many blocks)",
       ASG_SHAPE(4, 16, 33, 31),
       {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2, 2}}},
  };
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof U / sizeof U[0]; k++) {
      pcase pc;
      bool near = U[k].p.mode == ASG_UPSAMPLE_NEAREST;
      pc_begin(&pc, near ? C_EXACT : C_ACCUM, "upsample %s %s %s", U[k].what, dtn(FDT[d]),
               shp(U[k].xs));
      pc.gcls = C_ACCUM;
      pc_out(&pc, asg_upsample(pc_in(&pc, FDT[d], U[k].xs, -2, 2), U[k].p), "y");
      pc_finish(&pc);
    }
}

static void cases_softmax_ce(void) {
  for (int d = 0; d < 2; d++)
    for (int it = 0; it < 2; it++) {
      static const struct {
        int rows, classes;
        double smooth;
        int64_t ignore;
      } cf[] = {{37, 11, 0.1, -100},
                {29, 5, 0.0, 2},
                {257, 301, 0.05, -1},
                /* rows of four-element vectors: a warp a row, a block a row */
                {64, 1000, 0.1, -100},
                {16, 5000, 0.0, 3}};
      for (size_t k = 0; k < sizeof cf / sizeof cf[0]; k++) {
        pcase pc;
        asg_shape sl = ASG_SHAPE(cf[k].rows, cf[k].classes);
        pc_begin(&pc, C_ACCUM, "softmax_cross_entropy %s labels %s %s smoothing=%g ignore=%lld",
                 dtn(FDT[d]), dtn(IDT[it]), shp(sl), cf[k].smooth, (long long)cf[k].ignore);
        asg_tensor *logits = pc_in(&pc, FDT[d], sl, -4, 4);
        long n = cf[k].rows;
        double *lab = rv(n, 0, cf[k].classes, true);
        for (long i = 0; i < n; i += 7)
          lab[i] = (double)cf[k].ignore; /* some ignored rows */
        asg_tensor *labels = pc_in_vals(&pc, IDT[it], ASG_SHAPE(cf[k].rows), lab);
        free(lab);
        pc_out(&pc, asg_softmax_cross_entropy(logits, labels, cf[k].smooth, cf[k].ignore), "loss");
        pc_finish(&pc);
      }
    }
}

/* Softmax CE and log_softmax / softmax at the edges: labels out of range
 * (unchecked: rows left out), every label ignored (loss NaN, gradient 0),
 * and large logits (f64 near +-1e12, f32 ties near +-3e37), whose results
 * the kernels compute as (x - max) - log(sum exp(x - max)). */
static void cases_ce_edges(void) {
  for (int d = 0; d < 2; d++) {
    const asg_dtype dt = FDT[d];
    const bool f64 = dt == ASG_F64;
    pcase pc;
    asg_shape sl = ASG_SHAPE(33, 10);
    pc_begin(&pc, C_ACCUM, "softmax_cross_entropy %s labels out of range (unchecked)", dtn(dt));
    pc.unchecked = true;
    asg_tensor *logits = pc_in(&pc, dt, sl, -4, 4);
    asg_tensor *labels = pc_in(&pc, ASG_I64, ASG_SHAPE(33), -3, 13);
    pc_out(&pc, asg_softmax_cross_entropy(logits, labels, 0.1, -100), "loss");
    pc_finish(&pc);

    pc_begin(&pc, C_ACCUM, "softmax_cross_entropy %s every label ignored (NaN)", dtn(dt));
    logits = pc_in(&pc, dt, ASG_SHAPE(6, 5), -4, 4);
    double ign[6] = {-100, -100, -100, -100, -100, -100};
    labels = pc_in_vals(&pc, ASG_I32, ASG_SHAPE(6), ign);
    pc_out(&pc, asg_softmax_cross_entropy(logits, labels, 0.1, -100), "loss");
    pc_finish(&pc);

    /* large logits: f64 offsets of +-1e12 (x - max stays exact), f32 rows
     * of ties at +-3e37 and one ulp below */
    const long R = 40, C = 37;
    double *v = rv(R * C, 0, f64 ? 8 : 2, !f64);
    for (long i = 0; i < R * C; i++) {
      const double big = (i / C) % 2 ? -1 : 1;
      v[i] = f64 ? big * 1e12 + v[i] : (double)(float)(big * 3e37) * (1 - v[i] * 0x1p-23);
    }
    pc_begin(&pc, C_ACCUM, "log_softmax, softmax, softmax_cross_entropy %s of large logits",
             dtn(dt));
    logits = pc_in_vals(&pc, dt, ASG_SHAPE(R, C), v);
    free(v);
    labels = pc_in(&pc, ASG_I32, ASG_SHAPE(R), 0, (double)C);
    pc_out(&pc, asg_log_softmax(logits, -1), "log_softmax");
    pc_out(&pc, asg_softmax(logits, -1), "softmax");
    pc_out(&pc, asg_softmax_cross_entropy(logits, labels, 0.1, -100), "ce");
    pc_finish(&pc);
  }
}

/* ------------------------------------------------------- fused attention */

/* attention(q, k, v): forward and, through the harness's loss, dq (the
 * attention_bwd_q node itself) and dk, dv (slices of attention_bwd_kv's
 * packed output), both fed by attention_lse. Those two are inputs of the
 * compared gradients only, out of the suite's reach, so they are recorded
 * by name once a case ran them. */
static void cases_attention(void) {
  const struct {
    asg_shape q, kv;
    double scale;
    bool causal;
  } cf[] = {
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35355339059327373, false},
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35355339059327373, true},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.6, false},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.6, true}, /* keys 5..8 unseen: dk = dv = 0 */
      {ASG_SHAPE(3, 9, 5), ASG_SHAPE(3, 4, 5), 1.3, true}, /* rows 3..8 see every key */
      {ASG_SHAPE(7, 3), ASG_SHAPE(7, 3), 1.0, false},      /* no leading dims */
      {ASG_SHAPE(1, 2, 70, 64), ASG_SHAPE(1, 2, 70, 64), 0.125, true}, /* > one 64-row tile */
      {ASG_SHAPE(2, 1, 33, 32), ASG_SHAPE(2, 1, 97, 32), 0.2, false},
      {ASG_SHAPE(2, 10, 16), ASG_SHAPE(2, 80, 16), 0.3, true},           /* keys 10..79 unseen */
      {ASG_SHAPE(1, 2, 200, 64), ASG_SHAPE(1, 2, 200, 64), 0.125, true}, /* > one 128 tile */
      /* decode steps: a few query rows over many keys (split over the keys) */
      {ASG_SHAPE(2, 3, 1, 64), ASG_SHAPE(2, 3, 300, 64), 0.125, false},
      {ASG_SHAPE(2, 2, 3, 40), ASG_SHAPE(2, 2, 129, 40), 0.2, true},
  };
  static const char *const ops[] = {"attention_lse", "attention_bwd_kv"};
  for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++)
    for (int d = 0; d < 2; d++) {
      pcase pc;
      pc_begin(&pc, C_ACCUM, "attention %s q%s kv%s scale=%g causal=%d", dtn(FDT[d]), shp(cf[c].q),
               shp(cf[c].kv), cf[c].scale, cf[c].causal);
      asg_tensor *q = pc_in(&pc, FDT[d], cf[c].q, -1.5, 1.5);
      asg_tensor *k = pc_in(&pc, FDT[d], cf[c].kv, -1.5, 1.5);
      asg_tensor *v = pc_in(&pc, FDT[d], cf[c].kv, -2, 2);
      pc_out(&pc, asg_attention(q, k, v, cf[c].scale, cf[c].causal), "o");
      pc_finish(&pc);
    }
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < g_n_ops && i < 256; i++)
      if (!g_covered[i] && strcmp(asg_op_name(i), ops[k]) == 0) {
        g_covered[i] = true;
        snprintf(g_first_case[i], sizeof g_first_case[i], "%s", "attention (gradients)");
      }
}

/* attention_masked: a key mask [L..., Tk] (L... leading dims of q) of 0/1
 * with some keys hidden; "empty" hides every key of mask row 1 (those
 * queries output zero and take no gradient). Forward and gradients through
 * the harness, as above. */
static void cases_attention_masked(void) {
  const struct {
    asg_shape q, kv, m;
    double scale;
    bool causal, empty;
  } cf[] = {
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 13), 0.35, false, false},
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13), 0.35, true, false},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), ASG_SHAPE(2, 9), 0.6, false, true},
      {ASG_SHAPE(1, 2, 70, 64), ASG_SHAPE(1, 2, 70, 64), ASG_SHAPE(1, 70), 0.125, true, false},
      {ASG_SHAPE(2, 2, 33, 32), ASG_SHAPE(2, 2, 97, 32), ASG_SHAPE(2, 97), 0.2, false, true},
      /* a decode step over a KV cache: 3 query rows (grouped heads), 333 keys */
      {ASG_SHAPE(2, 2, 3, 64), ASG_SHAPE(2, 2, 333, 64), ASG_SHAPE(2, 333), 0.125, false, true},
  };
  for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++)
    for (int d = 0; d < 2; d++) {
      pcase pc;
      pc_begin(&pc, C_ACCUM, "attention_masked %s q%s kv%s mask%s causal=%d%s", dtn(FDT[d]),
               shp(cf[c].q), shp(cf[c].kv), shp(cf[c].m), cf[c].causal,
               cf[c].empty ? " (a row hides every key)" : "");
      asg_tensor *q = pc_in(&pc, FDT[d], cf[c].q, -1.5, 1.5);
      asg_tensor *k = pc_in(&pc, FDT[d], cf[c].kv, -1.5, 1.5);
      asg_tensor *v = pc_in(&pc, FDT[d], cf[c].kv, -2, 2);
      const long nm = numel(cf[c].m), tk = cf[c].m.dims[cf[c].m.ndim - 1];
      double *mv = malloc(sizeof *mv * (size_t)nm);
      for (long i = 0; mv && i < nm; i++) /* key 0 of each row hidden too, now and then */
        mv[i] = (cf[c].empty && i / tk == 1) || (i * 3 + i / tk * 5) % 4 == 0 ? 0 : 1;
      asg_tensor *m = mv ? pc_in_vals(&pc, FDT[d], cf[c].m, mv) : NULL;
      free(mv);
      pc_out(&pc, asg_attention_masked(q, k, v, m, cf[c].scale, cf[c].causal), "o");
      pc_finish(&pc);
    }
}

/* ----------------------------------------------------------- random, state */

static void cases_random(void) {
  asg_shape s = ASG_SHAPE(37, 29);
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    pcase pc;
    pc_begin(&pc, C_RNG, "rand_uniform/normal/bernoulli, dropout(0.3) %s %s, 2 runs", dtn(dt),
             shp(s));
    pc.runs = 2;
    pc.gcls = C_RNG;
    asg_tensor *x = pc_in(&pc, dt, s, -2, 2);
    pc_out(&pc, asg_rand_uniform(pc.g, dt, s, -0.5, 2.0, 11), "uniform");
    pc_out(&pc, asg_rand_normal(pc.g, dt, s, 0.25, 1.5, 12), "normal");
    pc_out(&pc, asg_rand_bernoulli(pc.g, dt, s, 0.3, 13), "bernoulli");
    pc_out(&pc, asg_mul(x, mark(asg_rand_uniform(pc.g, dt, s, 0, 1, 14))), "x*uniform");
    pc_out(&pc, asg_dropout(x, 0.3, 15), "dropout");
    pc_finish(&pc);
  }
  for (int it = 0; it < 2; it++) {
    pcase pc;
    asg_shape sb = ASG_SHAPE(70001);
    pc_begin(&pc, C_RNG, "rand_bernoulli %s %s, rand_uniform/normal f32 %s, 2 runs", dtn(IDT[it]),
             shp(sb), shp(sb));
    pc.runs = 2;
    pc_out(&pc, asg_rand_bernoulli(pc.g, IDT[it], sb, 0.6, 21), "bernoulli");
    pc_out(&pc, asg_rand_uniform(pc.g, ASG_F32, sb, 0, 1, 22), "uniform");
    pc_out(&pc, asg_rand_normal(pc.g, ASG_F32, sb, 0, 1, 23), "normal");
    pc_finish(&pc);
  }
}

static void cases_state(void) {
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    asg_shape s = ASG_SHAPE(5, 7);
    pcase pc;
    pc_begin(&pc, asg_dtype_is_float(dt) ? C_ELEM : C_EXACT,
             "assign %s %s: v <- (v + v) - v + x * constant (3 runs)", dtn(dt), shp(s));
    pc.runs = 3;
    pc.no_grad = true;
    double *v0 = rv(numel(s), -5, 5, true);
    void *vb = to_dtype(dt, v0, numel(s));
    asg_tensor *v = mark(asg_variable(pc.g, "v", dt, s, asg_init_data(vb)));
    asg_tensor *x = pc_in(&pc, dt, s, -5, 5);
    asg_tensor *c = mark(asg_constant(pc.g, dt, ASG_SHAPE(7), vb));
    asg_tensor *nv = asg_add(asg_sub(asg_add(v, v), v), asg_mul(x, c));
    pc_out(&pc, asg_mul(v, x), "v*x");
    pc_out_ex(&pc, asg_assign(v, nv), "assign", pc.cls, false);
    pc.var_name[pc.n_var++] = "v";
    pc_finish(&pc);
    free(v0), free(vb);
  }
}

/* cache_write: rows of a variable written at a fed position (in range, and
 * partly outside with unchecked indices), read back through the result. */
static void cases_cache_write(void) {
  for (int t = 0; t < 4; t++) {
    for (int unchecked = 0; unchecked < 2; unchecked++) {
      asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
      asg_shape cs = ASG_SHAPE(2, 6, 3), vs = ASG_SHAPE(2, 2, 3);
      pcase pc;
      pc_begin(&pc, asg_dtype_is_float(dt) ? C_ELEM : C_EXACT,
               "cache_write %s %s <- %s at pos %d along axis -2%s (2 runs)", dtn(dt), shp(cs),
               shp(vs), unchecked ? 5 : 3, unchecked ? " (unchecked: a row outside)" : "");
      pc.runs = 2;
      pc.no_grad = true;
      pc.unchecked = unchecked;
      double *c0 = rv(numel(cs), -5, 5, true);
      void *cb = to_dtype(dt, c0, numel(cs));
      asg_tensor *c = mark(asg_variable(pc.g, "c", dt, cs, asg_init_data(cb)));
      asg_tensor *v = pc_in(&pc, dt, vs, -5, 5);
      const double pos = unchecked ? 5 : 3;
      asg_tensor *ps = pc_in_vals(&pc, IDT[t % 2], ASG_SHAPE(1), &pos);
      asg_tensor *y = asg_cache_write(c, v, ps, -2);
      pc_out(&pc, y, "cache_write");
      pc_out(&pc, asg_add(y, y), "y+y");
      pc.var_name[pc.n_var++] = "c";
      pc_finish(&pc);
      free(c0), free(cb);
    }
  }
}

/* sample_filter: top-k then top-p of fed rows (distinct values, and integer
 * ties), settings fed as tensors. */
static void cases_sample(void) {
  const struct { double k, p; } set[] = {{5, 1}, {0, 0.8}, {6, 0.5}, {0, 0}};
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < 4; k++)
      for (int ties = 0; ties < 2; ties++) {
        asg_shape s = ASG_SHAPE(4, 37);
        pcase pc;
        pc_begin(&pc, C_EXACT, "sample_filter %s %s k=%g p=%g%s", dtn(FDT[d]), shp(s), set[k].k,
                 set[k].p, ties ? " (ties)" : "");
        pc.no_grad = true;
        asg_tensor *x = ties ? pc_in_int(&pc, FDT[d], s, -4, 4) : pc_in(&pc, FDT[d], s, -4, 4);
        asg_tensor *tk = pc_in_vals(&pc, IDT[k % 2], ASG_SHAPE(1), &set[k].k);
        asg_tensor *tp = pc_in_vals(&pc, d ? FDT[d] : ASG_F32, ASG_SCALAR, &set[k].p);
        pc_out(&pc, asg_sample_filter(x, tk, tp), "sample_filter");
        pc_finish(&pc);
      }
}

/* sort, argsort, topk, cumsum: indices and values exact (ties from integer
 * values keep index order on every backend), rows below and above the GPU
 * kernels' shared-memory sizes; cumsum sums in another order: accum. */
static void cases_sort(void) {
  const asg_dtype dts[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  const struct {
    long o, n, i, k;
  } rs[4] = {{3, 37, 2, 37}, {2, 300, 1, 5}, {2, 3000, 1, 3000}, {1, 5000, 1, 40}};
  for (int d = 0; d < 4; d++)
    for (int r = 0; r < 4; r++) {
      const asg_shape s = ASG_SHAPE(rs[r].o, rs[r].n, rs[r].i);
      const bool desc = (d + r) % 2;
      pcase pc;
      pc_begin(&pc, C_EXACT, "argsort, sort, topk %ld %s %s %s", rs[r].k, desc ? "desc" : "asc",
               dtn(dts[d]), shp(s));
      asg_tensor *x = r % 2 ? pc_in(&pc, dts[d], s, -1000, 1000) : pc_in_int(&pc, dts[d], s, -4, 4);
      asg_tensor *v = NULL, *ix = NULL;
      asg_topk(x, rs[r].k, 1, desc, &v, &ix);
      pc_out(&pc, asg_argsort(x, 1, desc), "argsort");
      pc_out(&pc, asg_sort(x, -2, !desc), "sort");
      pc_out(&pc, v, "topk values");
      pc_out(&pc, ix, "topk indices");
      pc_finish(&pc);
    }
  for (int d = 0; d < 4; d++)
    for (int f = 0; f < 4; f++) {
      const asg_shape s = f % 2 ? ASG_SHAPE(3, 700) : ASG_SHAPE(5, 4, 3);
      pcase pc;
      pc_begin(&pc, C_ACCUM, "cumsum%s%s %s %s", f & 1 ? " exclusive" : "", f & 2 ? " reverse" : "",
               dtn(dts[d]), shp(s));
      asg_tensor *x = pc_in(&pc, dts[d], s, -50, 50);
      pc_out(&pc, asg_cumsum(x, f % 2 ? -1 : 1, f & 1, f & 2), "cumsum");
      pc_finish(&pc);
    }
}

/* ------------------------------------------------------------ collectives
 * On g_comm, a world of one, every collective is an identity or a copy:
 * all_reduce (sum, mean, max, min) and broadcast from rank 0 give x, and so
 * do all_gather and reduce_scatter built for a world of 1. Outputs must
 * match exactly, and the CPU's must also hold the fed input's bytes;
 * gradients (all_reduce sum/mean -> all_reduce, all_gather <->
 * reduce_scatter) are compared with the CPU's as usual. 16-bit storage
 * dtypes, which the harness cannot feed: case_coll_half. */
static void coll_out(pcase *pc, asg_tensor *y, const char *label, int in) {
  pc_out(pc, y, label);
  pc->out_same[pc->n_out - 1] = in + 1;
}

static void cases_collective(void) {
  const asg_shape shapes[3] = {ASG_SHAPE(37, 5), ASG_SHAPE(1), ASG_SHAPE(3, 7, 11)};
  const asg_dtype dts[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  for (int d = 0; d < 4; d++)
    for (int k = 0; k < 3; k++) {
      const asg_dtype dt = dts[d];
      const asg_shape s = shapes[k];
      const bool fl = asg_dtype_is_float(dt); /* means need floats */
      pcase pc;
      pc_begin(&pc, C_EXACT, "all_reduce sum%s, all_gather, reduce_scatter sum%s (world 1) %s %s",
               fl ? "/mean" : "", fl ? "/mean" : "", dtn(dt), shp(s));
      pc.coll = true;
      asg_tensor *x = pc_in(&pc, dt, s, -50, 50);
      coll_out(&pc, asg_all_reduce(x, ASG_COMM_SUM), "all_reduce sum", 0);
      if (fl) coll_out(&pc, asg_all_reduce(x, ASG_COMM_MEAN), "all_reduce mean", 0);
      coll_out(&pc, asg_all_gather(x, 1), "all_gather", 0);
      coll_out(&pc, asg_reduce_scatter(x, 1, ASG_COMM_SUM), "reduce_scatter sum", 0);
      if (fl) coll_out(&pc, asg_reduce_scatter(x, 1, ASG_COMM_MEAN), "reduce_scatter mean", 0);
      pc_finish(&pc);

      pc_begin(&pc, C_EXACT, "all_reduce max/min, broadcast from rank 0 (world 1) %s %s", dtn(dt),
               shp(s));
      pc.coll = true;
      pc.no_grad = true; /* none of them has a gradient */
      x = pc_in(&pc, dt, s, -50, 50);
      coll_out(&pc, asg_all_reduce(x, ASG_COMM_MAX), "all_reduce max", 0);
      coll_out(&pc, asg_all_reduce(x, ASG_COMM_MIN), "all_reduce min", 0);
      coll_out(&pc, asg_broadcast(x, 0), "broadcast", 0);
      pc_finish(&pc);
    }
  /* multi-block sizes */
  asg_shape big = ASG_SHAPE(70001);
  pcase pc;
  pc_begin(&pc, C_EXACT,
           "all_reduce sum/max, broadcast, all_gather, reduce_scatter (world 1) f32 %s", shp(big));
  pc.coll = true;
  pc.no_grad = true;
  asg_tensor *x = pc_in(&pc, ASG_F32, big, -2, 2);
  coll_out(&pc, asg_all_reduce(x, ASG_COMM_SUM), "all_reduce sum", 0);
  coll_out(&pc, asg_all_reduce(x, ASG_COMM_MAX), "all_reduce max", 0);
  coll_out(&pc, asg_broadcast(x, 0), "broadcast", 0);
  coll_out(&pc, asg_all_gather(x, 1), "all_gather", 0);
  coll_out(&pc, asg_reduce_scatter(x, 1, ASG_COMM_MEAN), "reduce_scatter mean", 0);
  pc_finish(&pc);
  /* collectives between other ops (scheduled and memory-planned like any
   * op), read twice, and their gradients through the chain */
  for (int d = 0; d < 2; d++) {
    asg_shape s = ASG_SHAPE(6, 13);
    pc_begin(&pc, C_ELEM,
             "relu(all_reduce mean(2x)) * all_gather(x) + reduce_scatter(x - 1) (world 1) %s %s",
             dtn(FDT[d]), shp(s));
    pc.coll = true;
    x = pc_in(&pc, FDT[d], s, -2, 2);
    asg_tensor *a = mark(asg_all_reduce(asg_mul_scalar(x, 2), ASG_COMM_MEAN));
    asg_tensor *g = mark(asg_all_gather(x, 1));
    asg_tensor *r = mark(asg_reduce_scatter(asg_add_scalar(x, -1), 1, ASG_COMM_SUM));
    pc_out(&pc, asg_add(asg_mul(asg_relu(a), g), r), "y");
    pc_out(&pc, a, "all_reduce");
    pc_finish(&pc);
  }
}

/* The collectives on 16-bit storage dtypes (fed as raw bits, which the
 * pcase harness cannot do): in a world of one every output is the input,
 * bit for bit, on the CPU and on the backend under test. */
static void case_coll_half(asg_dtype dt) {
  enum { R = 19, C = 7, NY = 8 };
  char title[200];
  snprintf(title, sizeof title,
           "all_reduce sum/mean/max/min, broadcast, all_gather, reduce_scatter sum/mean "
           "(world 1) %s [19,7]: copies of the input",
           dtn(dt));
  g_cur_case = title;
  asg_graph *g = asg_graph_new();
  asg_tensor *x = mark(asg_input(g, "x", dt, ASG_SHAPE(R, C)));
  asg_tensor *y[NY] = {asg_all_reduce(x, ASG_COMM_SUM),
                       asg_all_reduce(x, ASG_COMM_MEAN),
                       asg_all_reduce(x, ASG_COMM_MAX),
                       asg_all_reduce(x, ASG_COMM_MIN),
                       asg_broadcast(x, 0),
                       asg_all_gather(x, 1),
                       asg_reduce_scatter(x, 1, ASG_COMM_SUM),
                       asg_reduce_scatter(x, 1, ASG_COMM_MEAN)};
  double *v = rv(R * C, -4, 4, false);
  uint16_t bits[R * C], got[R * C];
  for (int i = 0; i < R * C; i++)
    bits[i] = dt == ASG_BF16 ? asg_f32_to_bf16((float)v[i]) : asg_f32_to_f16((float)v[i]);
  free(v);
  char msg[512] = "";
  int ok = 1;
  for (int k = 0; k < NY && ok; k++)
    if (!mark(y[k])) snprintf(msg, sizeof msg, "build: %s", asg_graph_error(g)), ok = 0;
  asg_program *p[2] = {NULL, NULL};
  const char *be[2] = {"cpu", g_backend};
  for (int b = 0; b < 2 && ok; b++) {
    p[b] = compile_on(g, NY, y, be[b], b ? dut_threads() : 0, false, g_comm, b == 0);
    if (!p[b]) {
      snprintf(msg, sizeof msg, "compile on %s: %s", be[b], asg_last_error()), ok = 0;
    } else if (asg_program_feed(p[b], "x", bits, sizeof bits) != ASG_OK ||
               asg_program_run(p[b]) != ASG_OK) {
      snprintf(msg, sizeof msg, "feed/run on %s: %s", be[b], asg_last_error()), ok = 0;
    }
    for (int k = 0; k < NY && ok; k++) {
      memset(got, 0xff, sizeof got);
      if (asg_program_fetch(p[b], y[k], got, sizeof got) != ASG_OK)
        snprintf(msg, sizeof msg, "fetch %s from %s: %s", asg_tensor_op_name(y[k]), be[b],
                 asg_last_error()),
            ok = 0;
      else if (memcmp(got, bits, sizeof bits) != 0)
        snprintf(msg, sizeof msg, "output %d (%s) on %s: not the input's bits", k,
                 asg_tensor_op_name(y[k]), be[b]),
            ok = 0;
    }
  }
  report(title, ok, msg);
  asg_program_free(p[0]);
  asg_program_free(p[1]);
  asg_graph_free(g);
}

/* ------------------------------------------------- elementwise chains
 * Backends may fuse runs of elementwise steps into one kernel (CUDA). These
 * graphs put the cases a fusion must get right through the same comparison:
 * values of a chain read later by other ops and by the user, broadcasts over
 * different dims, views inside a chain, one value read twice, in-place
 * updates of a variable, chains longer than one kernel takes, and their
 * gradients (more chains). */
static void cases_chains(void) {
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    pcase pc;
    /* an intermediate read by a reduction and a matmul after the chain, one
     * returned to the user, a broadcast bias */
    pc_begin(&pc, C_ACCUM, "chain %s: tanh(x*a + b) feeding sum, matmul and outputs", dtn(dt));
    asg_tensor *x = pc_in(&pc, dt, ASG_SHAPE(6, 40), -2, 2);
    asg_tensor *a = pc_in(&pc, dt, ASG_SHAPE(6, 40), -2, 2);
    asg_tensor *b = pc_in(&pc, dt, ASG_SHAPE(40), -1, 1);
    asg_tensor *xa = asg_mul(x, a);
    asg_tensor *h = asg_tanh(asg_add(xa, b));
    asg_tensor *y = asg_sub(asg_mul_scalar(h, 2.0), x);
    pc_out(&pc, xa, "x*a");
    pc_out(&pc, y, "2h - x");
    pc_out(&pc, asg_sum(h, ASG_AXES(1), false), "sum h");
    pc_out(&pc, asg_matmul_t(h, y, false, true), "h y^T");
    pc_finish(&pc);

    /* broadcasts along different dims, a comparison mask, where, a value
     * read twice, and a reshape inside the chain */
    pc_begin(&pc, C_ACCUM, "chain %s: broadcasts [4,5,6] x [5,1] x [6], where, x*x, reshape",
             dtn(dt));
    x = pc_in(&pc, dt, ASG_SHAPE(4, 5, 6), -2, 2);
    asg_tensor *c5 = pc_in(&pc, dt, ASG_SHAPE(5, 1), 0.5, 1.5);
    asg_tensor *c6 = pc_in(&pc, dt, ASG_SHAPE(6), -1, 1);
    asg_tensor *t = asg_add(asg_mul(x, c5), c6);
    asg_tensor *m = asg_gt(t, asg_mul(x, x));
    asg_tensor *w = asg_where(m, asg_exp(asg_neg(t)), asg_sigmoid(t));
    asg_tensor *r = asg_reshape(w, ASG_SHAPE(20, 6));
    pc_out(&pc, asg_add(asg_mul(r, r), asg_reshape(c6, ASG_SHAPE(1, 6))), "r*r + c6");
    pc_finish(&pc);

    /* a bias add right after a product (a GEMM epilogue may do it), its
     * result read by a reduction, by a random mask, or by a product */
    for (int v = 0; v < 3; v++) {
      pc_begin(&pc, C_ACCUM, "chain %s: x W + b then %s", dtn(dt),
               v == 0   ? "sum"
               : v == 1 ? "dropout mask, sum"
                        : "matmul");
      x = pc_in(&pc, dt, ASG_SHAPE(2, 8, 64), -1, 1);
      asg_tensor *W = pc_in(&pc, dt, ASG_SHAPE(64, 16), -1, 1);
      asg_tensor *bb = pc_in(&pc, dt, ASG_SHAPE(16), -1, 1);
      asg_tensor *hb = asg_add(asg_matmul(x, W), bb);
      if (v == 1) hb = asg_mul(hb, asg_rand_bernoulli(pc.g, dt, ASG_SHAPE(2, 8, 16), 0.7, 5));
      pc_out(&pc, v == 2 ? asg_matmul_t(hb, W, false, true) : asg_sum(hb, ASG_AXES(2), false),
             "out");
      pc_finish(&pc);
    }

    /* more ops than one fused kernel takes: the chain is cut */
    pc_begin(&pc, C_ACCUM, "chain %s: 40 alternating ops", dtn(dt));
    x = pc_in(&pc, dt, ASG_SHAPE(3, 50), -1, 1);
    asg_tensor *z = x;
    for (int k = 0; k < 20; k++)
      z = asg_add(asg_mul_scalar(asg_sin(z), 0.9), x);
    pc_out(&pc, z, "z");
    pc_finish(&pc);

    /* an in-place update of a variable (its old value read, element by
     * element, in the same chain), three runs */
    pc_begin(&pc, C_ELEM, "chain %s: v <- v*0.5 + relu(x - v) (3 runs)", dtn(dt));
    pc.runs = 3;
    pc.no_grad = true;
    double *v0 = rv(60, -1, 1, false);
    void *vb = to_dtype(dt, v0, 60);
    asg_tensor *v = mark(asg_variable(pc.g, "v", dt, ASG_SHAPE(6, 10), asg_init_data(vb)));
    x = pc_in(&pc, dt, ASG_SHAPE(6, 10), -1, 1);
    asg_tensor *nv = asg_add(asg_mul_scalar(v, 0.5), asg_relu(asg_sub(x, v)));
    pc_out(&pc, asg_mul(v, x), "v*x");
    pc_out_ex(&pc, asg_assign(v, nv), "assign", pc.cls, false);
    pc.var_name[pc.n_var++] = "v";
    pc_finish(&pc);
    free(v0), free(vb);
  }
}

/* --------------------------------------------------------- training steps */

typedef struct model {
  asg_graph *g;
  asg_tensor *loss;
  int n_in;
  asg_tensor *in[4];
  int classes[4]; /* integer inputs: labels in [0, classes) */
} model;

typedef void (*model_fn)(model *m, double p);

static asg_tensor *model_in(model *m, const char *name, asg_dtype dt, asg_shape s, int classes) {
  asg_tensor *t = asg_input(m->g, name, dt, s);
  if (m->n_in < 4) {
    m->in[m->n_in] = t;
    m->classes[m->n_in++] = classes;
  }
  return t;
}

/* Linear(20, 33) - ReLU - Linear(33, 7), softmax cross-entropy. */
static void build_mlp(model *m, double p) {
  (void)p;
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F32, ASG_SHAPE(37, 20), 0);
  asg_tensor *y = model_in(m, "y", ASG_I32, ASG_SHAPE(37), 7);
  asg_tensor *h = asg_relu(asg_layer_apply(asg_nn_linear(g, "fc1", 20, 33), x));
  asg_tensor *logits = asg_layer_apply(asg_nn_linear(g, "fc2", 33, 7), h);
  m->loss = asg_softmax_cross_entropy(logits, y, 0, -100);
}

/* conv(3->6, 3x3, pad 1, no bias) - batchnorm - relu - maxpool 2 - flatten -
 * linear(150, 5). A conv bias before batch norm would have an analytically
 * zero gradient: pure rounding noise, which Adam normalizes to steps of
 * +-lr that differ between any two backends (see cases_train). */
static void build_cnn(model *m, double p) {
  (void)p;
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F32, ASG_SHAPE(4, 3, 11, 11), 0);
  asg_tensor *y = model_in(m, "y", ASG_I64, ASG_SHAPE(4), 5);
  asg_conv_params cp = {.padding = {1, 1}};
  asg_pool_params pp = {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}};
  asg_tensor *h = asg_layer_apply(asg_nn_conv2d(g, "conv1", 3, 6, 3, 3, cp, false), x);
  h = asg_layer_apply(asg_nn_batchnorm(g, "bn1", 6, 0, 0), h);
  h = asg_relu(h);
  h = asg_layer_apply(asg_nn_maxpool2d(g, "pool", pp), h);
  h = asg_layer_apply(asg_nn_flatten(g, "flat", 1), h);
  asg_tensor *logits = asg_layer_apply(asg_nn_linear(g, "fc", 150, 5), h);
  m->loss = asg_softmax_cross_entropy(logits, y, 0, -100);
}

/* Pre-LN transformer block (causal attention, dropout p) on [2,8,16], MSE.
 * The attention projections have no bias: the key bias's gradient is
 * analytically zero (softmax ignores a per-query constant; see
 * cases_train); the feed-forward layers keep theirs. */
static void transformer(model *m, double p, bool fused_qkv) {
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F32, ASG_SHAPE(2, 8, 16), 0);
  asg_tensor *t = model_in(m, "t", ASG_F32, ASG_SHAPE(2, 8, 16), 0);
  asg_attention_opts o = {0};
  o.causal = true;
  o.dropout = p;
  o.no_bias = true;
  o.fused_qkv = fused_qkv;
  asg_tensor *y = asg_layer_apply(asg_nn_transformer_block(g, "blk", 16, 4, 32, &o, p), x);
  m->loss = asg_mse_loss(y, t, ASG_REDUCE_MEAN);
}
static void build_transformer(model *m, double p) { transformer(m, p, false); }
/* q, k, v from one projection: split into views, gradients joined by a concat */
static void build_transformer_fused(model *m, double p) { transformer(m, p, true); }

static void train_case(const char *title, model_fn build, double p, asg_optim opt, int steps) {
  model m[2];
  asg_program *prog[2] = {NULL, NULL};
  char msg[512] = "";
  int ok = 1;
  for (int i = 0; i < 2; i++) {
    memset(&m[i], 0, sizeof m[i]);
    m[i].g = asg_graph_new();
    asg_graph_set_seed(m[i].g, 2024);
    build(&m[i], p);
    if (!m[i].loss && ok) {
      snprintf(msg, sizeof msg, "build: %s", asg_graph_error(m[i].g));
      ok = 0;
    }
    if (ok) {
      asg_compile_opts o = {0};
      o.backend = i ? g_backend : "cpu";
      o.num_threads = i ? dut_threads() : 0;
      prog[i] = asg_compile_train(m[i].g, m[i].loss, opt, 0, NULL, &o);
      if (!prog[i]) {
        snprintf(msg, sizeof msg, "compile_train on %s: %s", o.backend, asg_last_error());
        ok = 0;
      }
    }
  }
  for (int step = 0; step < steps && ok; step++) {
    for (int j = 0; j < m[0].n_in && ok; j++) {
      asg_tensor *t = m[0].in[j];
      asg_dtype dt = asg_tensor_dtype(t);
      long n = numel(asg_tensor_shape(t));
      double *v = m[0].classes[j] ? rv(n, 0, m[0].classes[j], true) : rv(n, -1, 1, false);
      void *b = to_dtype(dt, v, n);
      size_t bytes = (size_t)n * asg_dtype_size(dt);
      if (asg_program_feed(prog[0], asg_tensor_name(t), b, bytes) != ASG_OK ||
          asg_program_feed(prog[1], asg_tensor_name(t), b, bytes) != ASG_OK) {
        snprintf(msg, sizeof msg, "feed %s: %s", asg_tensor_name(t), asg_last_error());
        ok = 0;
      }
      free(v), free(b);
    }
    if (!ok) break;
    if (asg_program_run(prog[0]) != ASG_OK || asg_program_run(prog[1]) != ASG_OK) {
      snprintf(msg, sizeof msg, "step %d: run: %s", step, asg_last_error());
      ok = 0;
      break;
    }
    double want = asg_program_scalar(prog[0], m[0].loss);
    double got = asg_program_scalar(prog[1], m[1].loss);
    char what[32];
    snprintf(what, sizeof what, "step %d loss", step);
    ok = cmp_vals(what, ASG_F32, C_ELEM, &got, &want, 1, msg, sizeof msg);
    if (ok && !isfinite(want)) {
      snprintf(msg, sizeof msg, "step %d: loss is %g on cpu", step, want);
      ok = 0;
    }
  }
  if (ok) {
    int nv = asg_program_variable_count(prog[0]);
    if (nv != asg_program_variable_count(prog[1])) {
      snprintf(msg, sizeof msg, "variable count %d on cpu, %d on %s", nv,
               asg_program_variable_count(prog[1]), g_backend);
      ok = 0;
    }
    for (int i = 0; i < nv && ok; i++) {
      const char *name = NULL;
      asg_program_variable_info(prog[0], i, &name, NULL, NULL);
      ok = cmp_variable(prog[0], prog[1], name, C_ELEM, msg, sizeof msg);
    }
  }
  report(title, ok, msg);
  for (int i = 0; i < 2; i++) {
    asg_program_free(prog[i]);
    asg_graph_free(m[i].g);
  }
}

/* Adam divides the first moment by the root of the second, so a parameter
 * whose gradient is analytically zero but numerically rounding noise moves
 * by about +-lr per step in a direction that depends on the summation order:
 * the models hold no such parameter (a conv bias before batch norm, an
 * attention key bias), otherwise every parameter is compared. */
static void cases_train(void) {
  train_case("train MLP Linear(20,33)-ReLU-Linear(33,7) + softmax CE, Adam, 3 steps", build_mlp, 0,
             asg_adam(1e-2), 3);
  train_case("train CNN conv(no bias)-batchnorm-relu-maxpool-flatten-linear, Adam, 3 steps",
             build_cnn, 0, asg_adam(1e-2), 3);
  train_case("train pre-LN transformer block [2,8,16] causal (no qkvo bias), dropout 0, MSE, Adam, "
             "3 steps",
             build_transformer, 0, asg_adam(1e-3), 3);
  train_case("train pre-LN transformer block [2,8,16] causal (no qkvo bias), dropout 0.1, MSE, "
             "Adam, 3 steps",
             build_transformer, 0.1, asg_adam(1e-3), 3);
  train_case("train pre-LN transformer block [2,8,16] causal, fused_qkv (no bias), dropout 0, MSE, "
             "Adam, 3 steps",
             build_transformer_fused, 0, asg_adam(1e-3), 3);
}

/* f64 and f32 parameters in one model (tanh(x W1) cast(W2), MSE, all f64
 * activations): the optimizer's per-step scalars are then f64 and are
 * rounded to each parameter's dtype inside the fused update. */
static void build_mixed(model *m, double p) {
  (void)p;
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F64, ASG_SHAPE(9, 5), 0);
  asg_tensor *t = model_in(m, "t", ASG_F64, ASG_SHAPE(9, 3), 0);
  asg_tensor *w1 = asg_variable(g, "w1", ASG_F64, ASG_SHAPE(5, 4), asg_init_uniform(-0.8, 0.8));
  asg_tensor *w2 = asg_variable(g, "w2", ASG_F32, ASG_SHAPE(4, 3), asg_init_uniform(-0.8, 0.8));
  asg_tensor *y = asg_matmul(asg_tanh(asg_matmul(x, w1)), asg_cast(w2, ASG_F64));
  m->loss = asg_mse_loss(y, t, ASG_REDUCE_MEAN);
}

/* Adam and AdamW steps are built of the fused update ops (adam_moment,
 * adam_moment2, adam_param: src/optim/optim.c builds every Adam/AdamW
 * parameter update with them, and nothing else does), so these training
 * steps are their parity cases: every parameter and both moments are
 * compared after the last step. The ops sit inside the optimizer's graph,
 * out of the suite's reach, so they are recorded by name here. */
static void cases_optim(void) {
  static const char *const ops[] = {"adam_moment", "adam_moment2", "adam_param"};
  g_cur_case = "train MLP, AdamW (fused Adam updates), 3 steps";
  train_case(g_cur_case, build_mlp, 0, asg_adamw(1e-2, 0.1), 3);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < g_n_ops && i < 256; i++)
      if (!g_covered[i] && strcmp(asg_op_name(i), ops[k]) == 0) {
        g_covered[i] = true;
        snprintf(g_first_case[i], sizeof g_first_case[i], "%s", g_cur_case);
      }
  asg_optim adamw = asg_adamw(2e-2, 0.05);
  adamw.beta1 = 0.8, adamw.beta2 = 0.95, adamw.eps = 1e-6;
  train_case("train f64+f32 parameters (f64 step scalars), AdamW, 4 steps", build_mixed, 0, adamw,
             4);
  asg_optim adam = asg_adam(2e-2);
  adam.weight_decay = 0.01; /* L2: added to the gradient before the fused moments */
  adam.accum_steps = 2;     /* the fused values gated by the accumulation flag */
  train_case("train f64+f32 parameters, Adam with L2 weight decay, 2-run accumulation, 6 runs",
             build_mixed, 0, adam, 6);
}

/* ------------------------------------------------------------------- main */

/* The comparison itself: known differences pass or fail as the header says. */
static void check_harness(void) {
  static const struct {
    asg_dtype dt;
    tclass cls;
    double got, want, other; /* other: a second, equal element (sets S) */
    int pass;
  } t[] = {
      {ASG_F32, C_ELEM, 1.0 + 0.9e-4 + 1e-6, 1.0, 0.5, 1},
      {ASG_F32, C_ELEM, 1.0 + 1.2e-4, 1.0, 0.5, 0},
      {ASG_F32, C_ELEM, 0.9e-5, 0, 0.5, 1},
      {ASG_F32, C_ELEM, 1.1e-5, 0, 0.5, 0},
      {ASG_F32, C_ELEM, 1.1e-5, 0, 100, 0},
      {ASG_F32, C_ACCUM, 0.9e-4, 0, 0.5, 1},
      {ASG_F32, C_ACCUM, 1.1e-4, 0, 0.5, 0},
      {ASG_F32, C_ACCUM, 0.9e-2, 0, 100, 1},
      {ASG_F32, C_ACCUM, 1.1e-2, 0, -100, 0},
      {ASG_F64, C_ELEM, 1.0 + 1e-11, 1.0, 0.5, 1},
      {ASG_F64, C_ELEM, 1.0 + 1e-9, 1.0, 0.5, 0},
      {ASG_F64, C_ACCUM, 0.9e-8, 0, 100, 1},
      {ASG_F64, C_ACCUM, 1.1e-8, 0, 100, 0},
      {ASG_F32, C_EXACT, 1.0 + 1e-7, 1.0, 0.5, 0},
      {ASG_I64, C_ELEM, 3, 4, 0.5, 0},
      {ASG_F32, C_RNG, 2.0 + 2e-6, 2.0, 0.5, 1},
      {ASG_F32, C_RNG, 2.0 + 4e-6, 2.0, 0.5, 0},
      {ASG_F32, C_ELEM, NAN, NAN, 0.5, 1},
      {ASG_F32, C_ELEM, NAN, 1.0, 0.5, 0},
      {ASG_F32, C_ELEM, 1.0, NAN, 0.5, 0},
      {ASG_F32, C_ELEM, INFINITY, INFINITY, 0.5, 1},
      {ASG_F32, C_ELEM, -INFINITY, INFINITY, 0.5, 0},
      {ASG_F32, C_ACCUM, 1e30, INFINITY, 0.5, 0},
  };
  int bad = 0;
  char msg[256];
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    double want[2] = {t[i].want, t[i].other}, got[2] = {t[i].got, t[i].other};
    if (cmp_vals("x", t[i].dt, t[i].cls, got, want, 2, msg, sizeof msg) != t[i].pass) {
      printf("  harness: case %zu: got %.17g want %.17g: expected %s\n", i, t[i].got, t[i].want,
             t[i].pass ? "pass" : "fail");
      bad++;
    }
  }
  report("harness: tolerance checks", bad == 0, "comparison does not follow the stated tolerances");
}

static void check_coverage(void) {
  if (g_filter) return;
  char msg[2048] = "ops in no case:";
  size_t o = strlen(msg);
  int missing = 0;
  for (int i = 0; i < g_n_ops; i++)
    if (!g_covered[i]) {
      missing++;
      o += (size_t)snprintf(msg + o, o < sizeof msg ? sizeof msg - o : 0, " %s", asg_op_name(i));
      if (o >= sizeof msg) o = sizeof msg - 1;
    }
  if (getenv("ASG_PARITY_COVERAGE"))
    for (int i = 0; i < g_n_ops; i++)
      printf("  %-26s %s\n", asg_op_name(i), g_covered[i] ? g_first_case[i] : "(none)");
  char title[96];
  snprintf(title, sizeof title, "coverage: all %d ops of the table appear in some case", g_n_ops);
  report(title, missing == 0, msg);
}

/* Feeds between runs without reading anything back: a backend may upload
 * asynchronously (CUDA: double-buffered staging), so feed k + 1 must not
 * reach the input before run k has read it. v <- v * 0.5 + x over 12 runs of
 * distinct inputs (and distinct sizes of write: a second input fed every
 * other run) must match the CPU exactly. */
static void case_pipelined_feeds(void) {
  enum { N = 4096, RUNS = 12 };
  asg_graph *g = asg_graph_new();
  float *zero = calloc(N, sizeof *zero), *xs = malloc(sizeof *xs * N);
  asg_tensor *v = asg_variable(g, "v", ASG_F32, ASG_SHAPE(N), asg_init_data(zero));
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(N));
  asg_tensor *c = asg_input(g, "c", ASG_F32, ASG_SHAPE(1));
  asg_tensor *a = asg_assign(v, asg_add(asg_mul(v, c), x));
  asg_compile_opts o = {.backend = "cpu"};
  asg_program *ref = asg_compile(g, 1, &a, &o);
  o.backend = g_backend;
  asg_program *dut = asg_compile(g, 1, &a, &o);
  int ok = ref && dut;
  for (int r = 0; r < RUNS && ok; r++) {
    for (int i = 0; i < N; i++)
      xs[i] = (float)((r * 7919 + i * 104729) % 1000) / 64.0f;
    const float cv = r % 3 == 0 ? 0.5f : 0.25f;
    for (int k = 0; k < 2 && ok; k++) {
      asg_program *p = k ? dut : ref;
      ok = asg_program_feed(p, "x", xs, sizeof *xs * N) == ASG_OK &&
           (r % 2 || asg_program_feed(p, "c", &cv, sizeof cv) == ASG_OK) &&
           asg_program_run(p) == ASG_OK;
    }
  }
  float *rv_ = malloc(sizeof *rv_ * N), *dv = malloc(sizeof *dv * N);
  long bad = -1;
  if (ok)
    ok = asg_program_get_variable(ref, "v", rv_, sizeof *rv_ * N) == ASG_OK &&
         asg_program_get_variable(dut, "v", dv, sizeof *dv * N) == ASG_OK;
  for (long i = 0; ok && i < N && bad < 0; i++)
    if (rv_[i] != dv[i]) bad = i;
  char msg[160] = "";
  if (!ok)
    snprintf(msg, sizeof msg, "%s", asg_last_error());
  else if (bad >= 0)
    snprintf(msg, sizeof msg, "v[%ld]: got %.9g want %.9g", bad, dv[bad], rv_[bad]);
  report("pipelined feeds: v <- v * c + x, 12 runs, no read between runs", ok && bad < 0, msg);
  free(zero), free(xs), free(rv_), free(dv);
  asg_program_free(ref), asg_program_free(dut);
  asg_graph_free(g);
}

/* allow_tf32: f32 products may use TF32 tensor cores on CUDA (10-bit
 * mantissas, ~1e-3 relative); bf16_matmul: bf16 operands (8-bit mantissas,
 * ~4e-3); fp16_matmul: fp16 operands (10-bit); on the CPU the flags change
 * nothing. The result must still agree with the CPU's fp32 within 1e-2
 * (TF32, fp16) or 2e-2 (bf16) of the scale. */
static void case_fast_matmul(int mode) { /* 0 TF32, 1 bf16, 2 fp16 operands */
  const bool bf16 = mode == 1;
  asg_graph *g = asg_graph_new();
  double *va = rv(192 * 320, -1, 1, false), *vb = rv(320 * 160, -1, 1, false);
  float *fa = to_dtype(ASG_F32, va, 192 * 320), *fb = to_dtype(ASG_F32, vb, 320 * 160);
  asg_tensor *a = asg_constant(g, ASG_F32, ASG_SHAPE(192, 320), fa);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(320, 160), fb);
  asg_tensor *y = asg_matmul(a, b);
  asg_compile_opts o = {.backend = "cpu"};
  asg_program *ref = asg_compile(g, 1, &y, &o);
  o.backend = g_backend;
  o.allow_tf32 = mode == 0;
  o.bf16_matmul = bf16;
  o.fp16_matmul = mode == 2;
  asg_program *dut = asg_compile(g, 1, &y, &o);
  double *r = malloc(sizeof *r * 192 * 160), *d = malloc(sizeof *d * 192 * 160);
  float *buf = malloc(sizeof *buf * 192 * 160);
  int ok = ref && dut && !asg_program_run(ref) && !asg_program_run(dut);
  double worst = 0, scale = 1;
  if (ok) {
    asg_program_fetch(ref, y, buf, sizeof *buf * 192 * 160);
    tu_to_double(ASG_F32, buf, r, 192 * 160);
    asg_program_fetch(dut, y, buf, sizeof *buf * 192 * 160);
    tu_to_double(ASG_F32, buf, d, 192 * 160);
    for (long i = 0; i < 192 * 160; i++)
      scale = fmax(scale, fabs(r[i]));
    for (long i = 0; i < 192 * 160; i++)
      worst = fmax(worst, fabs(r[i] - d[i]));
  }
  char msg[128];
  snprintf(msg, sizeof msg, "max err %.3g of scale %.3g", worst, scale);
  /* bf16 operands: 8-bit mantissas, relative rounding 2^-9 per operand */
  report(mode == 1   ? "matmul f32 bf16_matmul [192,320]x[320,160]"
         : mode == 2 ? "matmul f32 fp16_matmul [192,320]x[320,160]"
                     : "matmul f32 allow_tf32 [192,320]x[320,160]",
         ok && worst <= (bf16 ? 2e-2 : 1e-2) * scale, msg);
  free(va), free(vb), free(fa), free(fb), free(r), free(d), free(buf);
  asg_program_free(ref), asg_program_free(dut);
  asg_graph_free(g);
}

/* Compiles outs on the CPU and, with opt's precision flags, on the backend
 * under test (run twice: the second replays a captured graph); passes when
 * each output is within tol of its own largest magnitude of the CPU's. */
static void cmp_flagged(asg_graph *g, int n, asg_tensor *const *outs, asg_compile_opts opt,
                        double tol, const char *name) {
  opt.backend = "cpu";
  asg_program *ref = asg_compile(g, n, outs, &opt);
  opt.backend = g_backend;
  asg_program *dut = asg_compile(g, n, outs, &opt);
  int ok = ref && dut && !asg_program_run(ref) && !asg_program_run(dut) && !asg_program_run(dut);
  double worst = 0;
  for (int t = 0; ok && t < n; t++) {
    const long m = (long)asg_shape_numel(asg_tensor_shape(outs[t]));
    float *a = malloc(sizeof *a * (size_t)m), *b = malloc(sizeof *b * (size_t)m);
    ok = a && b && !asg_program_fetch(ref, outs[t], a, sizeof *a * (size_t)m) &&
         !asg_program_fetch(dut, outs[t], b, sizeof *b * (size_t)m);
    double scale = 1e-12, err = 0;
    for (long i = 0; ok && i < m; i++)
      scale = fmax(scale, fabs(a[i]));
    for (long i = 0; ok && i < m; i++)
      err = fmax(err, fabs((double)a[i] - b[i]) / scale);
    worst = fmax(worst, err);
    free(a), free(b);
  }
  char msg[96];
  snprintf(msg, sizeof msg, "max err %.3g of each output's scale", worst);
  report(name, ok && worst <= tol, msg);
  asg_program_free(ref), asg_program_free(dut);
}

/* A single output with bf16_matmul on the backend under test. */
static void bf16_vs_cpu(asg_graph *g, asg_tensor *out, double tol, const char *name) {
  cmp_flagged(g, 1, &out, (asg_compile_opts){.bf16_matmul = true}, tol, name);
}

/* out[0] and the gradients of loss with respect to wrt[0..n) (into
 * out[1..n]) under opt against the CPU. */
static void grads_vs_cpu(asg_graph *g, asg_tensor *loss, int n, asg_tensor **wrt, asg_tensor **out,
                         asg_compile_opts opt, double tol, const char *name) {
  if (asg_grad(loss, n, wrt, out + 1) == ASG_OK)
    cmp_flagged(g, n + 1, out, opt, tol, name);
  else
    report(name, 0, asg_last_error());
}

/* fp16 (with fp16) or bf16 products. */
static asg_compile_opts half_opts(bool fp16) {
  return (asg_compile_opts){.bf16_matmul = !fp16, .fp16_matmul = fp16};
}

/* bf16_matmul with operands shared by several products (each converted
 * once into a copy the later products read) and intermediates of one size,
 * so the arena hands a dead operand's bytes to a new value that a later
 * product reads: a copy that outlived its tensor would give that product
 * the old values. r feeds two products; s = p * q and u = s * p take freed
 * [64,64] blocks and feed products with the weights shared throughout. */
static void case_shared_half(void) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(64 * 96, -1, 1, false), *vw = rv(96 * 64, -0.3, 0.3, false);
  double *va = rv(64 * 64, -0.3, 0.3, false), *vb = rv(64 * 64, -0.3, 0.3, false);
  float *fx = to_dtype(ASG_F32, vx, 64 * 96), *fw = to_dtype(ASG_F32, vw, 96 * 64);
  float *fa = to_dtype(ASG_F32, va, 64 * 64), *fb = to_dtype(ASG_F32, vb, 64 * 64);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(64, 96), fx);
  asg_tensor *w1 = asg_constant(g, ASG_F32, ASG_SHAPE(96, 64), fw);
  asg_tensor *wa = asg_constant(g, ASG_F32, ASG_SHAPE(64, 64), fa);
  asg_tensor *wb = asg_constant(g, ASG_F32, ASG_SHAPE(64, 64), fb);
  asg_tensor *r = asg_relu(asg_matmul(x, w1));
  asg_tensor *pp = asg_matmul(r, wa), *q = asg_matmul(r, wb);
  asg_tensor *sq = asg_mul(pp, q);
  asg_tensor *t1 = asg_matmul(sq, wa), *t2 = asg_matmul(sq, wb);
  asg_tensor *u = asg_mul(t1, t2);
  asg_tensor *y = asg_add(asg_matmul(u, wa), asg_matmul(asg_relu(u), wb));
  /* five products deep in bf16: a few bf16 roundings of the scale */
  bf16_vs_cpu(g, y, 5e-2, "bf16_matmul operands shared by products, arena blocks reused");
  free(vx), free(vw), free(va), free(vb), free(fx), free(fw), free(fa), free(fb);
  asg_graph_free(g);
}

/* bf16_matmul / fp16_matmul: the gradient of softmax CE logits feeds only
 * the two products of the logits' gradient, so the CE backward writes it
 * straight into their 16-bit operand copy (no f32 logits gradient). Both
 * gradients must agree with the CPU's f32 within the 16-bit tolerance, and
 * the ignored rows (label -1) must contribute nothing. */
static void case_ce_half(int fp16) {
  asg_graph *g = asg_graph_new();
  /* 36 classes: the vector kernel (four per load); 37: the scalar one */
  const int R = 48, K = 40, C = fp16 ? 37 : 36;
  double *vx = rv(R * K, -1, 1, false), *vw = rv(K * C, -0.5, 0.5, false);
  double *vl = rv(R, 0, C, true);
  for (int i = 0; i < R; i += 5)
    vl[i] = -1; /* ignored rows */
  float *fx = to_dtype(ASG_F32, vx, R * K), *fw = to_dtype(ASG_F32, vw, K * C);
  int32_t *il = to_dtype(ASG_I32, vl, R);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(R, K), fx);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(K, C), fw);
  asg_tensor *lab = asg_constant(g, ASG_I32, ASG_SHAPE(R), il);
  asg_tensor *loss = asg_softmax_cross_entropy(asg_matmul(x, w), lab, 0.05, -1);
  asg_tensor *wrt[2] = {x, w}, *gr[3] = {NULL, NULL, loss};
  asg_compile_opts opt = {.bf16_matmul = !fp16, .fp16_matmul = fp16};
  const char *name =
      fp16 ? "softmax CE gradient into fp16 product operands, 37 classes (dx, dw, loss)"
           : "softmax CE gradient into bf16 product operands, 36 classes (dx, dw, loss)";
  if (asg_grad(loss, 2, wrt, gr) == ASG_OK) /* dx, dw, loss */
    cmp_flagged(g, 3, gr, opt, 2e-2, name);
  else
    report(name, 0, asg_last_error());
  free(vx), free(vw), free(vl), free(fx), free(fw), free(il);
  asg_graph_free(g);
}

/* bf16_matmul: a layernorm output read only by products is written as
 * their bf16 operand copy (variant 0); read also by a sum (variant 1) it
 * stays f32 as well. Outputs against the CPU's f32. */
static void case_ln_half(int variant) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(40 * 64, -2, 2, false), *vg = rv(64, 0.5, 1.5, false);
  double *vb = rv(64, -0.5, 0.5, false), *vw = rv(64 * 48, -0.3, 0.3, false);
  float *fx = to_dtype(ASG_F32, vx, 40 * 64), *fg = to_dtype(ASG_F32, vg, 64);
  float *fb = to_dtype(ASG_F32, vb, 64), *fw = to_dtype(ASG_F32, vw, 64 * 48);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(40, 64), fx);
  asg_tensor *gm = asg_constant(g, ASG_F32, ASG_SHAPE(64), fg);
  asg_tensor *bt = asg_constant(g, ASG_F32, ASG_SHAPE(64), fb);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(64, 48), fw);
  asg_tensor *y = asg_layernorm(x, gm, bt, 1e-5);
  asg_tensor *out = asg_add(asg_matmul(y, w), asg_matmul(asg_mul_scalar(x, 0.5), w));
  out = asg_sub(out, asg_matmul(y, asg_mul_scalar(w, 0.25)));
  if (variant) out = asg_add(out, asg_sum(y, ASG_AXES(1), true));
  bf16_vs_cpu(g, out, 2e-2,
              variant ? "layernorm output read by bf16 products and a sum"
                      : "layernorm output read only by bf16 products");
  free(vx), free(vg), free(vb), free(vw), free(fx), free(fg), free(fb), free(fw);
  asg_graph_free(g);
}

/* bf16_matmul: a permute read only by products writes their bf16 operand
 * copy; perm (1,0,2) keeps the last dim (16-byte pieces), (0,2,1) moves it
 * (single elements). Outputs against the CPU's f32. */
static void case_perm_half(int variant) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(8 * 12 * 16, -1, 1, false), *vw = rv(16 * 24, -0.5, 0.5, false);
  float *fx = to_dtype(ASG_F32, vx, 8 * 12 * 16), *fw = to_dtype(ASG_F32, vw, 16 * 24);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(8, 12, 16), fx);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(16, 24), fw);
  static const int p102[] = {1, 0, 2}, p021[] = {0, 2, 1};
  asg_tensor *px =
      variant ? asg_permute(asg_reshape(x, ASG_SHAPE(8, 16, 12)), p021) : asg_permute(x, p102);
  asg_tensor *m = asg_reshape(px, ASG_SHAPE(96, 16));
  asg_tensor *out = asg_add(asg_matmul(m, w), asg_matmul(m, asg_mul_scalar(w, -0.5)));
  bf16_vs_cpu(g, out, 2e-2,
              variant ? "permute (0,2,1) read only by bf16 products"
                      : "permute (1,0,2) read only by bf16 products");
  free(vx), free(vw), free(fx), free(fw);
  asg_graph_free(g);
}

/* The fused attention under allow_tf32 (TF32 tensor cores on CUDA),
 * bf16_matmul and fp16_matmul (16-bit tensor-core operands, fp32 sums and
 * softmax): output and dq, dk, dv of sum(o * w) against the CPU's f32, each
 * within tol of its own largest magnitude. D = 32, 64, 128 (the tensor-core
 * widths), tiles with ragged ends, Tq != Tk, causal and not, with key masks
 * (some rows seeing no key: zero outputs and gradients). */
static void case_fast_attention(int mode) { /* 0 TF32, 1 bf16, 2 fp16 */
  const struct {
    asg_shape q, kv;
    bool causal;
    int mask; /* key mask [B, Tk]: 0 none, 1 some keys hidden, 2 also every key of row 1 */
  } cf[] = {
      {ASG_SHAPE(1, 2, 200, 64), ASG_SHAPE(1, 2, 200, 64), true, 0},
      {ASG_SHAPE(2, 3, 50, 64), ASG_SHAPE(2, 3, 120, 64), false, 0},
      {ASG_SHAPE(2, 1, 33, 32), ASG_SHAPE(2, 1, 97, 32), true, 0},
      {ASG_SHAPE(1, 2, 70, 128), ASG_SHAPE(1, 2, 70, 128), true, 0},
      {ASG_SHAPE(1, 2, 200, 64), ASG_SHAPE(1, 2, 200, 64), true, 1},
      {ASG_SHAPE(2, 3, 50, 64), ASG_SHAPE(2, 3, 120, 64), false, 2},
      {ASG_SHAPE(2, 1, 33, 32), ASG_SHAPE(2, 1, 97, 32), true, 2},
  };
  static const char *const mname[] = {"allow_tf32", "bf16_matmul", "fp16_matmul"};
  /* 10-bit mantissas (TF32, fp16) or 8 (bf16): an H200 measured at most
   * 6.4e-4 and 4.4e-3 over these cases (2026-11-30) */
  const double tol = mode == 1 ? 1.5e-2 : 3e-3;
  for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++) {
    asg_graph *g = asg_graph_new();
    const long nq = (long)asg_shape_numel(cf[c].q), nk = (long)asg_shape_numel(cf[c].kv);
    double *v[4] = {rv(nq, -1.5, 1.5, false), rv(nk, -1.5, 1.5, false), rv(nk, -2, 2, false),
                    rv(nq, -1, 1, false)};
    float *f[4];
    asg_tensor *x[4];
    for (int i = 0; i < 4; i++) {
      f[i] = to_dtype(ASG_F32, v[i], i == 0 || i == 3 ? nq : nk);
      x[i] = asg_constant(g, ASG_F32, i == 0 || i == 3 ? cf[c].q : cf[c].kv, f[i]);
    }
    const int D = (int)cf[c].q.dims[cf[c].q.ndim - 1];
    asg_tensor *km = NULL;
    float *fm = NULL;
    if (cf[c].mask) { /* key 0 of row 0 hidden: its first queries see nothing when causal */
      const long B = cf[c].q.dims[0], Tk = cf[c].kv.dims[2];
      fm = malloc(sizeof *fm * (size_t)(B * Tk));
      for (long i = 0; fm && i < B * Tk; i++)
        fm[i] = (cf[c].mask == 2 && i / Tk == 1) || i % 5 == 0 || i % 7 == 3 ? 0.f : 1.f;
      km = fm ? asg_constant(g, ASG_F32, ASG_SHAPE(B, Tk), fm) : NULL;
    }
    asg_tensor *o = asg_attention_masked(x[0], x[1], x[2], km, 1.0 / sqrt((double)D), cf[c].causal);
    asg_tensor *loss = asg_sum(asg_mul(o, x[3]), ASG_AXES(0, 1, 2, 3), false);
    asg_tensor *out[4] = {o, NULL, NULL, NULL};
    asg_compile_opts opt = {
        .allow_tf32 = mode == 0, .bf16_matmul = mode == 1, .fp16_matmul = mode == 2};
    char name[160];
    snprintf(name, sizeof name, "attention %s q%s kv%s causal=%d%s (o, dq, dk, dv)", mname[mode],
             shp(cf[c].q), shp(cf[c].kv), cf[c].causal,
             cf[c].mask == 2 ? " key mask, a row hidden"
             : cf[c].mask    ? " key mask"
                             : "");
    if (asg_grad(loss, 3, x, out + 1) == ASG_OK)
      cmp_flagged(g, 4, out, opt, tol, name);
    else
      report(name, 0, asg_last_error());
    for (int i = 0; i < 4; i++)
      free(v[i]), free(f[i]);
    free(fm);
    asg_graph_free(g);
  }
}

/* Linear layers whose bias add (and ReLU / tanh GELU) a backend may fold
 * into the product's epilogue (CUDA: docs/backends.md): forward values and
 * gradients against the CPU. 0: relu(x W^T + b), trained (the ReLU's
 * gradient reads its output); 1: gelu_tanh(x W + b), forward only; 2: the
 * same trained (the GELU's gradient reads its input, so only the bias can
 * fold); 3: b + x W over [2,35,48] (bias first); 4: x W + b also read by
 * another product (nothing folds); 5: x W^T + b with bf16 products (no
 * ReLU: a 16-bit rounding may flip its mask where x W^T + b is near 0);
 * 6, 7: relu / gelu_tanh(x W + b) read by a bf16 product, forward only (the
 * folded activation's output is that product's operand). */
static void case_epilogue(int variant) {
  const int R = 70, K = 48, N = 40;
  asg_graph *g = asg_graph_new();
  double *vx = rv(R * K, -1, 1, false), *vw = rv(N * K, -0.4, 0.4, false);
  double *vb = rv(N, -0.5, 0.5, false), *vu = rv(R * N, -1, 1, false);
  float *fx = to_dtype(ASG_F32, vx, R * K), *fw = to_dtype(ASG_F32, vw, N * K);
  float *fb = to_dtype(ASG_F32, vb, N), *fu = to_dtype(ASG_F32, vu, R * N);
  asg_tensor *x =
      asg_constant(g, ASG_F32, variant == 3 ? ASG_SHAPE(2, R / 2, K) : ASG_SHAPE(R, K), fx);
  const bool tw = variant == 0 || variant == 5; /* Linear's [N, K] weight */
  asg_tensor *w = asg_constant(g, ASG_F32, tw ? ASG_SHAPE(N, K) : ASG_SHAPE(K, N), fw);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(N), fb);
  asg_tensor *u = asg_constant(g, ASG_F32, ASG_SHAPE(R, N), fu);
  asg_tensor *mm = asg_matmul_t(x, w, false, tw);
  asg_tensor *y = variant == 3 ? asg_add(b, mm) : asg_add(mm, b);
  if (variant == 0) y = asg_relu(y);
  if (variant == 1 || variant == 2) y = asg_gelu_tanh(y);
  if (variant == 3) y = asg_reshape(y, ASG_SHAPE(R, N));
  if (variant == 4) y = asg_add(y, asg_matmul(mm, asg_constant(g, ASG_F32, ASG_SHAPE(N, N), fu)));
  if (variant >= 6) /* [R, N] x [N, N] */
    y = asg_matmul(variant == 6 ? asg_relu(y) : asg_gelu_tanh(y),
                   asg_constant(g, ASG_F32, ASG_SHAPE(N, N), fu));
  static const char *const name[] = {
      "linear + bias + relu folded: values and gradients",
      "linear + bias + gelu_tanh folded: forward",
      "linear + bias (+ gelu_tanh after): values and gradients",
      "bias + batched linear [2,35,48]: values and gradients",
      "linear + bias with the product read twice: values and gradients",
      "linear + bias folded, bf16 products: values and gradients",
      "linear + bias + relu into a bf16 product: forward",
      "linear + bias + gelu_tanh into a bf16 product: forward"};
  asg_tensor *out[5] = {y, NULL, NULL, NULL, NULL};
  int n = 1;
  if (variant != 1 && variant < 6) {
    asg_tensor *loss = asg_sum(asg_mul(y, u), ASG_AXES(0, 1), false);
    asg_tensor *wrt[4] = {x, w, b};
    n = asg_grad(loss, 3, wrt, out + 1) == ASG_OK ? 4 : 0;
  }
  asg_compile_opts opt = {.bf16_matmul = variant >= 5};
  if (n)
    cmp_flagged(g, n, out, opt, variant >= 5 ? 2e-2 : 1e-4, name[variant]);
  else
    report(name[variant], 0, asg_last_error());
  free(vx), free(vw), free(vb), free(vu), free(fx), free(fw), free(fb), free(fu);
  asg_graph_free(g);
}

/* Residual add + layernorm, which a backend may run as one kernel (CUDA:
 * docs/backends.md): h = x + r, y = layernorm(h), out = y W + h (the sum is
 * read again after the layernorm, as a residual stream is), values and
 * gradients against the CPU. 1: a step between the add and the layernorm
 * reads h (nothing folds); 2: rows of 1100 (a block per row); 3: bf16
 * products (the layernorm then writes their 16-bit copy). */
static void case_add_ln(int variant) {
  const int R = 48, C = variant == 2 ? 1100 : 64;
  asg_graph *g = asg_graph_new();
  double *vx = rv(R * C, -2, 2, false), *vr = rv(R * C, -1, 1, false);
  double *vg = rv(C, 0.5, 1.5, false), *vb = rv(C, -0.5, 0.5, false);
  double *vw = rv(C * C, -0.2, 0.2, false), *vu = rv(R * C, -1, 1, false);
  float *fx = to_dtype(ASG_F32, vx, R * C), *fr = to_dtype(ASG_F32, vr, R * C);
  float *fg = to_dtype(ASG_F32, vg, C), *fb = to_dtype(ASG_F32, vb, C);
  float *fw = to_dtype(ASG_F32, vw, C * C), *fu = to_dtype(ASG_F32, vu, R * C);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(R, C), fx);
  asg_tensor *rr = asg_constant(g, ASG_F32, ASG_SHAPE(R, C), fr);
  asg_tensor *gm = asg_constant(g, ASG_F32, ASG_SHAPE(C), fg);
  asg_tensor *bt = asg_constant(g, ASG_F32, ASG_SHAPE(C), fb);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(C, C), fw);
  asg_tensor *u = asg_constant(g, ASG_F32, ASG_SHAPE(R, C), fu);
  asg_tensor *h = asg_add(x, rr);
  asg_tensor *pre = variant == 1 ? asg_mul_scalar(h, 2.0) : NULL;
  asg_tensor *y = asg_layernorm(h, gm, bt, 1e-5);
  asg_tensor *out = asg_add(asg_matmul(y, w), h);
  if (pre) out = asg_add(out, pre);
  asg_tensor *loss = asg_sum(asg_mul(out, u), ASG_AXES(0, 1), false);
  asg_tensor *wrt[4] = {x, rr, gm, bt}, *outs[5] = {out, NULL, NULL, NULL, NULL};
  static const char *const name[] = {
      "residual add + layernorm [48,64]: values and gradients",
      "residual add read before its layernorm: values and gradients",
      "residual add + layernorm [48,1100]: values and gradients",
      "residual add + layernorm, bf16 products: values and gradients"};
  asg_compile_opts opt = {.bf16_matmul = variant == 3};
  if (asg_grad(loss, 4, wrt, outs + 1) == ASG_OK)
    cmp_flagged(g, 5, outs, opt, variant == 3 ? 2e-2 : 1e-4, name[variant]);
  else
    report(name[variant], 0, asg_last_error());
  free(vx), free(vr), free(vg), free(vb), free(vw), free(vu);
  free(fx), free(fr), free(fg), free(fb), free(fw), free(fu);
  asg_graph_free(g);
}

/* bf16_matmul: a unary op (0) or a fused elementwise chain (1) whose
 * output only products read writes their bf16 operand copy instead of f32;
 * read also by a sum (2) it stays f32. Outputs against the CPU's f32. */
static void case_unary_half(int variant) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(64 * 48, -2, 2, false), *vw = rv(48 * 40, -0.5, 0.5, false);
  float *fx = to_dtype(ASG_F32, vx, 64 * 48), *fw = to_dtype(ASG_F32, vw, 48 * 40);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(64, 48), fx);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(48, 40), fw);
  asg_tensor *h = asg_mul_scalar(x, 1.5); /* an arena value (not the constant) */
  asg_tensor *u = asg_gelu(h);
  if (variant == 1) u = asg_add_scalar(asg_mul(u, asg_sigmoid(h)), 0.25);
  asg_tensor *out = asg_add(asg_matmul(u, w), asg_matmul(u, asg_mul_scalar(w, -0.75)));
  if (variant == 2) out = asg_add(out, asg_sum(u, ASG_AXES(1), true));
  bf16_vs_cpu(g, out, 2e-2,
              variant == 0   ? "gelu output read only by bf16 products"
              : variant == 1 ? "fused chain output read only by bf16 products"
                             : "gelu output read by bf16 products and a sum");
  free(vx), free(vw), free(fx), free(fw);
  asg_graph_free(g);
}

/* A language-model head under 16-bit products: logits = h W^T [R, V] read
 * only by the softmax CE (and its backward), which a backend may keep as
 * 16 bits (CUDA: docs/backends.md). 0: bf16, label smoothing 0.1 and
 * ignored rows; 1: fp16; 2: bf16 with the logits also read by a sum (they
 * stay f32). Loss and gradients of h and W against the CPU's f32. */
static void case_half_logits(int variant) {
  const int R = 96, K = 64, V = 1000;
  asg_graph *g = asg_graph_new();
  double *vh = rv(R * K, -1, 1, false), *vw = rv(V * K, -0.3, 0.3, false);
  double *vl = rv(R, 0, V, true);
  for (int i = 0; i < R; i += 9)
    vl[i] = -100; /* ignored rows */
  float *fh = to_dtype(ASG_F32, vh, R * K), *fw = to_dtype(ASG_F32, vw, V * K);
  int32_t *il = malloc(sizeof *il * R);
  for (int i = 0; i < R; i++)
    il[i] = (int32_t)vl[i];
  asg_tensor *h = asg_constant(g, ASG_F32, ASG_SHAPE(R, K), fh);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(V, K), fw);
  asg_tensor *lab = asg_constant(g, ASG_I32, ASG_SHAPE(R), il);
  asg_tensor *logits = asg_matmul_t(h, w, false, true);
  asg_tensor *loss = asg_softmax_cross_entropy(logits, lab, variant == 1 ? 0.0 : 0.1, -100);
  if (variant == 2)
    loss = asg_add(loss, asg_mul_scalar(asg_sum(logits, ASG_AXES(0, 1), false), 1e-4));
  asg_tensor *wrt[2] = {h, w}, *out[3] = {loss};
  static const char *const name[] = {
      "linear head + softmax CE, bf16 products: loss and gradients",
      "linear head + softmax CE, fp16 products: loss and gradients",
      "linear head + softmax CE + a sum of the logits, bf16 products: loss and gradients"};
  grads_vs_cpu(g, loss, 2, wrt, out, half_opts(variant == 1), 2e-2, name[variant]);
  free(vh), free(vw), free(vl), free(fh), free(fw), free(il);
  asg_graph_free(g);
}

/* Two trained linear layers with biases under 16-bit products: the first
 * layer's output gradient dh is converted for the products dW1 = dh^T x and
 * dx = dh W1, and its rows are summed for db1, which a backend may do while
 * converting (CUDA: docs/backends.md). 0: bf16, [300, 64]; 1: fp16; 2: bf16,
 * [1000, 68] (many row chunks, 17 column quads). Values and gradients
 * against the CPU's f32. */
static void case_colsum(int variant) {
  const int R = variant == 2 ? 1000 : 300, K = 48, H = variant == 2 ? 68 : 64, N = 40;
  asg_graph *g = asg_graph_new();
  double *v[6] = {rv(R * K, -1, 1, false), rv(H * K, -0.3, 0.3, false),
                  rv(H, -0.5, 0.5, false), rv(N * H, -0.3, 0.3, false),
                  rv(N, -0.5, 0.5, false), rv(R * N, -1, 1, false)};
  const int64_t cnt[6] = {R * K, H * K, H, N * H, N, R * N};
  float *f[6];
  for (int k = 0; k < 6; k++)
    f[k] = to_dtype(ASG_F32, v[k], cnt[k]);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(R, K), f[0]);
  asg_tensor *w1 = asg_constant(g, ASG_F32, ASG_SHAPE(H, K), f[1]);
  asg_tensor *b1 = asg_constant(g, ASG_F32, ASG_SHAPE(H), f[2]);
  asg_tensor *w2 = asg_constant(g, ASG_F32, ASG_SHAPE(N, H), f[3]);
  asg_tensor *b2 = asg_constant(g, ASG_F32, ASG_SHAPE(N), f[4]);
  asg_tensor *u = asg_constant(g, ASG_F32, ASG_SHAPE(R, N), f[5]);
  asg_tensor *h = asg_gelu(asg_add(asg_matmul_t(x, w1, false, true), b1));
  asg_tensor *y = asg_add(asg_matmul_t(h, w2, false, true), b2);
  asg_tensor *loss = asg_sum(asg_mul(y, u), ASG_AXES(0, 1), false);
  asg_tensor *wrt[5] = {x, w1, b1, w2, b2}, *out[6] = {y};
  static const char *const name[] = {
      "two linear layers, bias gradients, bf16 products: values and gradients",
      "two linear layers, bias gradients, fp16 products: values and gradients",
      "two linear layers [1000,68], bias gradients, bf16 products: values and gradients"};
  grads_vs_cpu(g, loss, 5, wrt, out, half_opts(variant == 1), 2e-2, name[variant]);
  for (int k = 0; k < 6; k++)
    free(v[k]), free(f[k]);
  asg_graph_free(g);
}

/* Row dot products sum(a * b, last axis), which a backend may compute in
 * one pass when only the sum reads the products (CUDA: attention's delta):
 * 0 the products read by the sum alone, 1 also by another op. */
static void case_rowdot(int variant) {
  asg_graph *g = asg_graph_new();
  double *va = rv(3 * 5 * 70, -2, 2, false), *vb = rv(3 * 5 * 70, -2, 2, false);
  float *fa = to_dtype(ASG_F32, va, 3 * 5 * 70), *fb = to_dtype(ASG_F32, vb, 3 * 5 * 70);
  asg_tensor *a = asg_constant(g, ASG_F32, ASG_SHAPE(3, 5, 70), fa);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(3, 5, 70), fb);
  asg_tensor *ab = asg_mul(asg_mul_scalar(a, 1.25), b);
  asg_tensor *out[2] = {asg_sum(ab, ASG_AXES(-1), false), NULL};
  if (variant) out[1] = asg_sum(ab, ASG_AXES(0), false);
  cmp_flagged(g, variant ? 2 : 1, out, (asg_compile_opts){0}, 1e-5,
              variant ? "sum(a * b) over the last axis, products read twice"
                      : "sum(a * b) over the last axis");
  free(va), free(vb), free(fa), free(fb);
  asg_graph_free(g);
}

/* custom: a user-registered op (asg/custom.h) on the backend under test.
 * parity.cat2 concatenates its two inputs' elements ([n0 + n1], any shapes,
 * one dtype); its gradient is a custom backward op, parity.take (the count
 * elements of dy from start: attributes), reshaped to each input's shape.
 * The CPU kernels copy with memcpy; the CUDA kernels enqueue
 * cudaMemcpyAsync on the program's stream (found with dlsym in libcudart,
 * which the library loaded: this test is C without CUDA headers). Values
 * are copies, hence exact. A second check feeds fresh inputs before each of
 * four runs (on CUDA: launched step by step, captured into a CUDA graph,
 * replayed), so that a replay that skipped the user's kernel would show.
 * Vulkan runs no custom op: there the check is that compiling is refused
 * with an error naming the op. */
#include <dlfcn.h> /* (here to keep the custom cases in one block) */

typedef int (*parity_memcpy_async_fn)(void *dst, const void *src, size_t n, int kind, void *stream);

static parity_memcpy_async_fn parity_memcpy_async(void) {
  static parity_memcpy_async_fn fn;
  if (!fn) {
    void *self = dlopen(NULL, RTLD_NOW);
    void *sym = self ? dlsym(self, "cudaMemcpyAsync") : NULL;
    memcpy(&fn, &sym, sizeof fn); /* object to function pointer, as POSIX allows */
  }
  return fn;
}

/* Copies n bytes from src to dst on the call's device. */
static int parity_copy(const asg_custom_call *c, void *dst, const void *src, size_t n) {
  if (strcmp(c->backend, "cuda") != 0) {
    memcpy(dst, src, n);
    return 0;
  }
  parity_memcpy_async_fn cp = parity_memcpy_async();
  if (!cp) return snprintf(c->msg, c->msg_size, "cudaMemcpyAsync not found"), 1;
  const int rc = cp(dst, src, n, 3 /* cudaMemcpyDeviceToDevice */, c->stream);
  return rc ? snprintf(c->msg, c->msg_size, "cudaMemcpyAsync: error %d", rc), 1 : 0;
}

static int parity_cat2_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg,
                             size_t n) {
  if (s->in_dtype[0] != s->in_dtype[1]) return snprintf(msg, n, "dtypes differ"), 1;
  *dt = s->in_dtype[0];
  *sh = ASG_SHAPE(asg_shape_numel(s->in_shape[0]) + asg_shape_numel(s->in_shape[1]));
  return 0;
}

static int parity_cat2_run(const asg_custom_call *c) {
  const size_t es = asg_dtype_size(c->out_dtype);
  const size_t b0 = (size_t)asg_shape_numel(c->sig->in_shape[0]) * es;
  const size_t b1 = (size_t)asg_shape_numel(c->sig->in_shape[1]) * es;
  if (parity_copy(c, c->out, c->in[0], b0)) return 1;
  return parity_copy(c, (char *)c->out + b0, c->in[1], b1);
}

static int parity_take_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg,
                             size_t n) {
  const int64_t start = (int64_t)s->attr[0], count = (int64_t)s->attr[1];
  if (s->n_attr != 2 || start < 0 || count < 1 || start + count > asg_shape_numel(s->in_shape[0]))
    return snprintf(msg, n, "attributes (start, count) out of range"), 1;
  *dt = s->in_dtype[0];
  *sh = ASG_SHAPE(count);
  return 0;
}

static int parity_take_run(const asg_custom_call *c) {
  const size_t es = asg_dtype_size(c->out_dtype);
  return parity_copy(c, c->out, (const char *)c->in[0] + (size_t)c->sig->attr[0] * es,
                     (size_t)c->sig->attr[1] * es);
}

static const asg_custom_op *g_parity_cat2, *g_parity_take;

static int parity_cat2_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  double at[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    at[1] = (double)asg_shape_numel(a->sig->in_shape[k]);
    if (a->need[k])
      din[k] = asg_reshape(asg_custom_ex(a->graph, g_parity_take, &a->dout, 1, at, 2),
                           a->sig->in_shape[k]);
    at[0] += at[1];
  }
  return 0;
}

static bool parity_custom_register(void) {
  if (g_parity_cat2) return true;
  const asg_custom_desc cat = {.name = "parity.cat2",
                               .n_inputs = 2,
                               .shape = parity_cat2_shape,
                               .cpu = parity_cat2_run,
                               .cuda = parity_cat2_run,
                               .grad = parity_cat2_grad};
  const asg_custom_desc take = {.name = "parity.take",
                                .n_inputs = 1,
                                .shape = parity_take_shape,
                                .cpu = parity_take_run,
                                .cuda = parity_take_run};
  if (asg_custom_register(&take, &g_parity_take) || asg_custom_register(&cat, &g_parity_cat2)) {
    report("custom op: register", 0, asg_last_error());
    return false;
  }
  return true;
}

/* Fresh inputs before each of four runs; the output compared each time. */
static void case_custom_refeed(asg_dtype dt) {
  char title[96];
  snprintf(title, sizeof title, "custom op parity.cat2 %s: fresh inputs, 4 runs", dtn(dt));
  g_cur_case = title;
  asg_graph *g = asg_graph_new();
  asg_tensor *in[2] = {asg_input(g, "a", dt, ASG_SHAPE(9, 4)), asg_input(g, "b", dt, ASG_SHAPE(5))};
  asg_tensor *y = mark(asg_custom(g, g_parity_cat2, in, 2));
  char msg[512] = "";
  asg_program *ref = y ? compile_on(g, 1, &y, "cpu", 0, false, NULL, true) : NULL;
  asg_program *dut =
      ref ? compile_on(g, 1, &y, g_backend, dut_threads(), false, NULL, false) : NULL;
  int ok = dut != NULL;
  if (!ok) snprintf(msg, sizeof msg, "build/compile: %s", asg_last_error());
  for (int r = 0; r < 4 && ok; r++) {
    for (int k = 0; k < 2 && ok; k++) {
      const long n = numel(asg_tensor_shape(in[k]));
      double *v = rv(n, -3, 3, false);
      void *b = to_dtype(dt, v, n);
      const char *name = k ? "b" : "a";
      const size_t bytes = (size_t)n * asg_dtype_size(dt);
      ok = asg_program_feed(ref, name, b, bytes) == ASG_OK &&
           asg_program_feed(dut, name, b, bytes) == ASG_OK;
      if (!ok) snprintf(msg, sizeof msg, "feed %s: %s", name, asg_last_error());
      free(v), free(b);
    }
    if (ok && (asg_program_run(ref) != ASG_OK || asg_program_run(dut) != ASG_OK))
      snprintf(msg, sizeof msg, "run %d: %s", r, asg_last_error()), ok = 0;
    char lab[32];
    snprintf(lab, sizeof lab, "run %d", r);
    if (ok) ok = cmp_output(ref, dut, y, lab, C_EXACT, msg, sizeof msg);
  }
  report(title, ok, msg);
  asg_program_free(ref);
  asg_program_free(dut);
  asg_graph_free(g);
}

static void cases_custom(void) {
  if (!parity_custom_register()) return;
  if (strcmp(g_backend, "vulkan") == 0) { /* refused, naming the op */
    g_cur_case = "custom op on vulkan: refused";
    asg_graph *g = asg_graph_new();
    asg_tensor *in[2] = {asg_input(g, "a", ASG_F32, ASG_SHAPE(3)),
                         asg_input(g, "b", ASG_F32, ASG_SHAPE(2))};
    asg_tensor *y = mark(asg_custom(g, g_parity_cat2, in, 2));
    asg_clear_error();
    asg_program *p = y ? compile_on(g, 1, &y, "vulkan", 0, false, NULL, false) : NULL;
    report(g_cur_case,
           y && !p && strstr(asg_last_error(), "custom op 'parity.cat2' has no Vulkan kernel"),
           asg_last_error());
    asg_program_free(p);
    asg_graph_free(g);
    return;
  }
  for (int d = 0; d < 2; d++) {
    pcase pc;
    pc_begin(&pc, C_EXACT, "custom op parity.cat2 (backward: custom op parity.take) %s",
             dtn(FDT[d]));
    asg_tensor *in[2] = {pc_in(&pc, FDT[d], ASG_SHAPE(3, 5), -2, 2),
                         pc_in(&pc, FDT[d], ASG_SHAPE(7), -2, 2)};
    asg_tensor *y = asg_custom(pc.g, g_parity_cat2, in, 2);
    pc_out(&pc, y, "cat2");
    pc_out_ex(&pc, asg_tanh(y), "tanh(cat2)", C_ELEM, true); /* read by a built-in kernel */
    pc_finish(&pc);
    case_custom_refeed(FDT[d]);
  }
}
/* end custom */

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
