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
} asg_backend;

/* A backend's copy of a plan whose buffer references are resolved to
 * addresses: out[i] and in[i][j] for step i. */
typedef struct asg_resolved {
  asg_plan plan;
  void **out;
  const void ***in;
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

/* NULL (with an error set) if no such backend is compiled in. */
const asg_backend *asg__backend_find(const char *name);
extern const asg_backend asg__backend_cpu;
extern const asg_backend asg__backend_cuda;   /* when built with ASG_HAVE_CUDA */
extern const asg_backend asg__backend_vulkan; /* when built with ASG_HAVE_VULKAN */

#ifdef __cplusplus
}
#endif

#endif
