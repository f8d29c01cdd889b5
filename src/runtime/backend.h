/* The backend interface: a table of functions. The runtime schedules and
 * plans memory; a backend allocates, copies and executes. */
#ifndef ASG_RUNTIME_BACKEND_H
#define ASG_RUNTIME_BACKEND_H

#include "runtime/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Base addresses (backend handles) of every buffer a plan refers to. */
typedef struct asg_buffers {
  void *arena;
  void **vars;
  void **consts;
  void **inputs;
} asg_buffers;

/* The profile a program records (runtime/profile.c): backends report each
 * step's time into it with asg__prof_step. */
typedef struct asg__prof asg__prof;

typedef struct asg_backend {
  const char *name;
  bool (*available)(void);
  /* Whether op has a kernel here (the completeness test walks this). */
  bool (*supports)(asg_op op);
  asg_status (*device_open)(int num_threads, void **dev);
  void (*device_close)(void *dev);
  asg_status (*buffer_alloc)(void *dev, size_t bytes, void **buf);
  void (*buffer_free)(void *dev, void *buf);
  asg_status (*buffer_write)(void *dev, void *buf, size_t off, const void *src, size_t n);
  asg_status (*buffer_read)(void *dev, void *buf, size_t off, void *dst, size_t n);
  /* Prepares kernels for every step (all allocation happens here). */
  asg_status (*exec_create)(void *dev, const asg_plan *plan, const asg_buffers *bufs, void **exec);
  void (*exec_destroy)(void *exec);
  /* Runs the whole plan once; run is the program's run count (RNG key). */
  asg_status (*exec_run)(void *exec, uint64_t run);
  /* Writes one line on the device into buf (asg_backend_device). */
  void (*describe)(char *buf, size_t n);
  /* Optional (NULL: not counted): the buffers buffer_alloc made on dev that
   * buffer_free has not freed yet, and their bytes as allocated (rounded up
   * to the backend's alignment). Backends may count their own internal
   * buffers too (docs/backends.md says which). Called, like buffer_alloc and
   * buffer_free, with the store lock held (runtime/program.c). */
  void (*memory_stats)(void *dev, size_t *live_buffers, size_t *live_bytes);
  /* Optional (NULL: no profiler): from the next run on, report every step's
   * time of each completed run into prof with asg__prof_step (prof NULL:
   * stop). Returns the exec's plan (labels, shapes), or NULL when this exec
   * cannot time its steps (GPU code compiled without ASG_PLAN_PROFILE). */
  const asg_plan *(*exec_profile)(void *exec, asg__prof *prof);
} asg_backend;

/* ---- out-of-range indices ----
 * gather (embedding), scatter_add, one_hot, softmax cross-entropy (and its
 * backward) and cache_write (its position) read indices from tensors.
 * Kernels never index with a value outside its range (they give zeros /
 * leave the row out; cache_write writes nothing when checked) and, unless the
 * plan has ASG_PLAN_UNCHECKED_INDEX, the error is reported: the CPU backend
 * scans a step's indices before running it (asg__index_check_host); GPU kernels record the first
 * faulting step and a bad value in a fixed device record laid out as asg_index_fault (step1 set by
 * a compare-and-swap from 0, then value), which the backend reads after the run, resets and turns
 * into asg__index_error. */
typedef struct asg_index_fault {
  uint32_t step1; /* 1 + index of the step that saw a bad index; 0: none */
  uint32_t pad;
  int64_t value; /* one bad index (label) that step saw */
} asg_index_fault;

/* Whether step s reads indices that are checked (the ops above). */
bool asg__step_checks_index(const asg_step *s);
/* Whether v is outside the valid range of step s's indices (for softmax
 * CE: a label that is neither ignore_index nor in [0, C)). */
bool asg__index_bad(const asg_step *s, int64_t v);
/* The error of step s seeing bad index v: "<scope/op>: index v out of range
 * [0, n) ..." (ASG_ERR_INVALID). */
asg_status asg__index_error(const asg_step *s, int64_t v);
/* Scans the index input of step s (in: the step's input addresses, in host
 * memory) and returns asg__index_error for its first bad index, else OK. */
asg_status asg__index_check_host(const asg_step *s, const void *const *in);

/* A backend's copy of a plan whose buffer references are resolved to
 * addresses: out[i] and in[i][j] for step i. */
typedef struct asg_resolved {
  asg_plan plan;
  void **out;
  const void ***in;
  /* step i's further outputs (plan.h): aux[i * ASG_MAX_AUX + k] the address
   * of aux step k's output, aux_in[...] its inputs' */
  void **aux;
  const void ***aux_in;
} asg_resolved;
asg_status asg__resolve_plan(const asg_plan *src, const asg_buffers *bufs, asg_resolved *r);
void asg__resolved_free(asg_resolved *r);

/* Prints the time per op kind (op_ms, op_calls indexed by asg_op, summed
 * over `runs` profiled runs) to stderr; nothing when runs is 0. unit names
 * what op_calls counts ("launches", "steps"). */
void asg__profile_report(const char *backend, const char *unit, const double *op_ms,
                         const int64_t *op_calls, int runs);

/* With ASG_PROFILE=2 (asg__profile_level() == 2), also prints the `top`
 * slowest steps of the plan (step_ms summed over `runs` runs) with their
 * labels and shapes: which GEMM or kernel a profile's time is in. */
int asg__profile_level(void);
void asg__profile_steps(const char *backend, const asg_plan *plan, const double *step_ms, int runs,
                        int top);

/* The time of step `step` in the run being recorded: it started start_ms
 * after the run's first step and took dur_ms (calls for one step add up). */
void asg__prof_step(asg__prof *prof, int step, double start_ms, double dur_ms);
/* Monotonic clock in milliseconds (the CPU backend's step timer). */
double asg__prof_now_ms(void);
/* The program's side (runtime/program.c): starts recording into *slot
 * (made for exec's plan if NULL; an error if the backend cannot time it),
 * the bracket of each run (memory_stats of dev read at the end, under the
 * store lock), and the report of ASG_PROFILE when the program is freed
 * (before exec_destroy). */
asg_status asg__prof_start(asg__prof **slot, const asg_backend *be, void *exec, int level);
void asg__prof_run_begin(asg__prof *prof);
void asg__prof_run_end(asg__prof *prof, asg_status st, const asg_backend *be, void *dev);
void asg__prof_free(asg__prof *prof);

/* NULL (with an error set) if no such backend is compiled in. */
const asg_backend *asg__backend_find(const char *name);
extern const asg_backend asg__backend_cpu;
extern const asg_backend asg__backend_cuda;   /* when built with ASG_HAVE_CUDA */
extern const asg_backend asg__backend_vulkan; /* when built with ASG_HAVE_VULKAN */

#ifdef __cplusplus
}
#endif

#endif
