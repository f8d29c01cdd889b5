/* The parity harness (tests/test_parity.c describes the suite): coverage
 * marking, deterministic values, the pcase builder that compiles one graph on
 * the CPU and on the backend under test and compares every output within
 * its class's tolerance, and the report lines. */
#include <stdarg.h>

#include "parity.h"

const char *g_backend = "cpu";
bool g_covered[256];
char g_first_case[256][200]; /* the first case that showed each op */
const char *g_cur_case = "";
int g_n_ops;
static unsigned long long g_seed = 1;

const asg_dtype FDT[2] = {ASG_F32, ASG_F64};
const asg_dtype IDT[2] = {ASG_I32, ASG_I64};

/* ---------------------------------------------------------------- coverage */

void mark_name(const char *name) {
  for (int i = 0; i < g_n_ops && i < 256; i++)
    if (!g_covered[i] && strcmp(asg_op_name(i), name) == 0) {
      g_covered[i] = true;
      snprintf(g_first_case[i], sizeof g_first_case[i], "%s", g_cur_case);
    }
}

asg_tensor *mark(asg_tensor *t) {
  const char *name = t ? asg_tensor_op_name(t) : NULL;
  if (name) mark_name(name);
  return t;
}

/* ------------------------------------------------------------------ values */

long numel(asg_shape s) { return (long)asg_shape_numel(s); }

const char *shp(asg_shape s) {
  static char buf[8][64];
  static int k;
  k = (k + 1) % 8;
  return asg_shape_str(s, buf[k], sizeof buf[k]);
}

const char *dtn(asg_dtype dt) { return asg_dtype_name(dt); }

void *to_dtype(asg_dtype dt, const double *v, long n) {
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  tu_from_double(dt, v, buf, n);
  return buf;
}

/* n deterministic values in [lo, hi); integer = floor'ed. */
double *rv(long n, double lo, double hi, bool integer) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  tu_rand(g_seed++ * 7919ull, v, n, lo, hi);
  if (integer)
    for (long i = 0; i < n; i++)
      v[i] = floor(v[i]);
  return v;
}

void pc_begin(pcase *pc, tclass cls, const char *fmt, ...) {
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
asg_tensor *pc_in_vals(pcase *pc, asg_dtype dt, asg_shape s, const double *v) {
  if (pc->n_in >= MAXIN) return NULL;
  int k = pc->n_in++;
  snprintf(pc->in_name[k], sizeof pc->in_name[k], "x%d", k);
  pc->in_data[k] = to_dtype(dt, v, numel(s));
  pc->in_bytes[k] = (size_t)numel(s) * asg_dtype_size(dt);
  pc->in_t[k] = mark(asg_input(pc->g, pc->in_name[k], dt, s));
  return pc->in_t[k];
}

/* An input of random values in [lo, hi) (integers floor'ed). */
asg_tensor *pc_in(pcase *pc, asg_dtype dt, asg_shape s, double lo, double hi) {
  double *v = rv(numel(s), lo, hi, !asg_dtype_is_float(dt));
  asg_tensor *t = pc_in_vals(pc, dt, s, v);
  free(v);
  return t;
}

/* Integer-valued floats (or ints) in [lo, hi): ties for comparisons. */
asg_tensor *pc_in_int(pcase *pc, asg_dtype dt, asg_shape s, double lo, double hi) {
  double *v = rv(numel(s), lo, hi, true);
  asg_tensor *t = pc_in_vals(pc, dt, s, v);
  free(v);
  return t;
}

void pc_out_ex(pcase *pc, asg_tensor *t, const char *label, tclass cls, bool cmp) {
  if (pc->n_out >= MAXOUT) return;
  int k = pc->n_out++;
  pc->out[k] = mark(t);
  snprintf(pc->out_label[k], sizeof pc->out_label[k], "%s", label);
  pc->out_cls[k] = cls;
  pc->out_cmp[k] = cmp;
}
void pc_out(pcase *pc, asg_tensor *t, const char *label) { pc_out_ex(pc, t, label, pc->cls, true); }

/* Threshold for |a - b| (see the header of tests/test_parity.c). */
static double thresh(asg_dtype dt, tclass cls, double b, double S) {
  if (!asg_dtype_is_float(dt) || cls == C_EXACT) return 0;
  double ab = fabs(b);
  if (cls == C_RNG) return 1e-6 * (1 + ab);
  if (dt == ASG_F64) return cls == C_ACCUM ? 1e-10 * S + 1e-10 * ab : 1e-12 + 1e-10 * ab;
  return cls == C_ACCUM ? 1e-4 * S + 1e-4 * ab : 1e-5 + 1e-4 * ab;
}

/* Compares n values; on mismatch writes a message and returns 0. */
int cmp_vals(const char *what, asg_dtype dt, tclass cls, const double *got, const double *want,
             long n, char *msg, size_t msz) {
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

/* Reads n values of dt from both programs (t: an output, else the variable
 * `name`) and compares them. */
static int cmp_read(asg_program *ref, asg_program *dut, const asg_tensor *t, const char *name,
                    asg_dtype dt, long n, const char *what, tclass cls, char *msg, size_t msz) {
  size_t bytes = (size_t)n * asg_dtype_size(dt);
  void *ba = malloc(bytes ? bytes : 1), *bb = malloc(bytes ? bytes : 1);
  double *a = malloc(sizeof(double) * (size_t)(n ? n : 1));
  double *b = malloc(sizeof(double) * (size_t)(n ? n : 1));
  int ok = 0;
  asg_status sr =
      t ? asg_program_fetch(ref, t, bb, bytes) : asg_program_get_variable(ref, name, bb, bytes);
  asg_status sd = sr  ? ASG_OK
                  : t ? asg_program_fetch(dut, t, ba, bytes)
                      : asg_program_get_variable(dut, name, ba, bytes);
  if (sr) {
    snprintf(msg, msz, "%s: read from cpu: %s", what, asg_last_error());
  } else if (sd) {
    snprintf(msg, msz, "%s: read from %s: %s", what, g_backend, asg_last_error());
  } else {
    tu_to_double(dt, ba, a, n);
    tu_to_double(dt, bb, b, n);
    ok = cmp_vals(what, dt, cls, a, b, n, msg, msz);
  }
  free(ba), free(bb), free(a), free(b);
  return ok;
}

/* Fetches t from both programs and compares. */
int cmp_output(asg_program *ref, asg_program *dut, asg_tensor *t, const char *label, tclass cls,
               char *msg, size_t msz) {
  return cmp_read(ref, dut, t, NULL, asg_tensor_dtype(t), numel(asg_tensor_shape(t)), label, cls,
                  msg, msz);
}

int cmp_variable(asg_program *ref, asg_program *dut, const char *name, tclass cls, char *msg,
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
  char what[96];
  snprintf(what, sizeof what, "variable %s", name);
  return cmp_read(ref, dut, NULL, name, dt, numel(s), what, cls, msg, msz);
}

/* ASG_PARITY_FILTER=text: report only the checks whose title contains text
 * (for working on one family; the coverage check is then skipped).
 * ASG_PARITY_VERBOSE=1: passing checks print their measured error as well. */
const char *g_filter;

void report(const char *title, int ok, const char *msg) {
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

asg_program *compile_on(asg_graph *g, int n, asg_tensor *const *outs, const char *be, int threads,
                        bool unchecked, asg_comm *comm, bool no_fusion) {
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
asg_comm *g_comm;

/* The backend under test: on the CPU itself, a single-threaded program
 * (the reference uses all threads). */
int dut_threads(void) { return strcmp(g_backend, "cpu") == 0 ? 1 : 0; }

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

void pc_finish(pcase *pc) {
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

/* The comparison itself: known differences pass or fail as the header says. */
void check_harness(void) {
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
