/* Anomaly mode (non-finite checks), tensor taps and the CPU node callback:
 * internal (runtime/inspect.c; the public side is in asg/program.h). */
#ifndef ASG_RUNTIME_INSPECT_H
#define ASG_RUNTIME_INSPECT_H

#include "asg/program.h"
#include "runtime/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- non-finite values, shared by the backends ---- */

/* The device record of step-mode checks on the GPUs, like asg_index_fault.
 * After each step, a kernel scans its float output: the first to find a
 * NaN / inf claims step1 (1 + the step) by a compare-and-swap from 0 and
 * stores one such element (index; bits: its bit pattern, an f32 or 16-bit
 * float in the low bits). Then a kernel per float input of the step scans
 * it only when step1 names that step: the first input holding a non-finite
 * value claims in1 (1 + the input) and stores one element of it. */
typedef struct asg_finite_fault {
  uint32_t step1;
  uint32_t in1;
  int64_t index;
  uint64_t bits;
  int64_t in_index;
  uint64_t in_bits;
} asg_finite_fault;

/* The error of a GPU record f (f->step1 != 0) of plan in run `run`;
 * inputs_scanned: whether that step's inputs were scanned (else the
 * message says they were not inspected). */
asg_status asg__finite_report(const asg_plan *plan, const asg_finite_fault *f, uint64_t run,
                              bool inputs_scanned);

bool asg__dtype_is_float(asg_dtype dt);
/* Index of the first NaN or inf among n elements of dt at data (*value: it
 * as a double), or -1 when all are finite (and for non-float dtypes). */
int64_t asg__first_nonfinite(asg_dtype dt, const void *data, int64_t n, double *value);
/* The ASG_ERR_NUMERIC error of step s whose output holds value at index,
 * in run `run` (the run count when it started). in: the step's inputs in
 * host memory, scanned to tell which already held a non-finite value (an
 * in[j] NULL: known finite); in NULL when they cannot be read (then the
 * message says so). */
asg_status asg__finite_error(const asg_step *s, int64_t index, double value, uint64_t run,
                             const void *const *in);
/* Checks the output of step s (host memory); OK or asg__finite_error. */
asg_status asg__finite_check_host(const asg_step *s, const void *out, const void *const *in,
                                  uint64_t run);

/* ---- CPU hooks (backends/cpu/cpu_backend.c) ---- */

/* Called after step i of a run with its output's host address. */
typedef void (*asg_step_hook)(void *ctx, int i, const asg_step *s, const void *out, uint64_t run);
/* Sets (fn NULL: removes) the hook of a CPU executor. */
void asg__cpu_set_hook(void *exec, asg_step_hook fn, void *ctx);

/* ---- a program's inspection state ---- */

typedef struct asg__inspect asg__inspect;

/* Validates opts' check_finite and taps against g and builds the state:
 * *outs / *n_outs become the outputs followed by the taps (what to
 * compile; valid while the state lives). The node table kept names nodes in
 * later errors even after g is freed. */
asg_status asg__inspect_new(asg_graph *g, int n_out, asg_tensor *const *outs,
                            const asg_compile_opts *o, asg__inspect **insp, asg_tensor *const **all,
                            int *n_all);
void asg__inspect_free(asg__inspect *insp);
/* The check_finite mode (opts raised by ASG_CHECK_FINITE). */
int asg__inspect_mode(const asg__inspect *insp);
/* Refuses taps for a symbolic graph. */
asg_status asg__inspect_symbolic(const asg_compile_opts *o);
/* "scope/op" (or the name) of node key, or NULL if not a node of the graph. */
const char *asg__inspect_label(const asg__inspect *insp, const void *key);
/* The tapped node named name, or NULL (error set, for fn). */
const void *asg__inspect_tap(const asg__inspect *insp, const char *name, const char *fn);
/* The error of fetching key, which is no output, tap, variable or input. */
asg_status asg__inspect_not_found(const asg__inspect *insp, const void *key, const char *fn);
/* The user's node callback: stored here; asg__inspect_hook is the CPU hook
 * that calls it (ctx: insp). */
void asg__inspect_set_callback(asg__inspect *insp, asg_node_callback fn, void *ctx);
void asg__inspect_hook(void *ctx, int i, const asg_step *s, const void *out, uint64_t run);

#ifdef __cplusplus
}
#endif

#endif
