/* The profiler: time per step (node) of a compiled program on every backend,
 * aggregated by op and by name scope, with the memory it holds, and a
 * Chrome / Perfetto trace (docs/tools.md, "Profiler").
 *
 * Enable it per program with asg_compile_opts.profile (or
 * asg_program_profile_start after compile on the CPU), or for every program
 * with the environment variable ASG_PROFILE=1 (ASG_PROFILE=2 also prints the
 * slowest kinds of step); with the variable set, a program prints its
 * profile to stderr when freed. Off, it costs one branch per run.
 *
 * CPU: each step is timed with the monotonic clock around its kernel.
 * CUDA: events around every launch (CUDA graph replay is off while
 * profiling); Vulkan: timestamp queries. On those two the timing is built
 * into the compiled program, so enable it at compile (opts.profile or
 * ASG_PROFILE); the first CUDA run (lazy module loading) is not counted.
 *
 * On a symbolic program the calls below act on the specialization of the
 * last run (compile with opts.profile to profile every specialization). */
#ifndef ASG_PROFILE_H
#define ASG_PROFILE_H

#include <stdio.h>

#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_profile_step {
  const char *name;  /* the step's label: "scope/op" */
  const char *op;    /* op name */
  const char *scope; /* name scope path ("block0/attn"), "" at top level */
  int node;          /* id of the graph node it computes */
  double ms;         /* mean time per profiled run */
  double last_ms;    /* time in the last profiled run */
} asg_profile_step;

typedef struct asg_profile_group {
  const char *name; /* op name, or scope path ("" = top level) */
  int depth;        /* scopes: number of '/'-separated parts (0 for ""); ops: 0 */
  int steps;        /* steps in the group (for scopes: directly in it) */
  double ms;        /* mean per run: ops: its steps; scopes: the scope and its inner ones */
  double self_ms;   /* scopes: steps directly in this scope; ops: = ms */
} asg_profile_group;

typedef struct asg_profile {
  const char *backend;
  int level;       /* 1, or 2 (also prints the slowest kinds of step when freed) */
  uint64_t runs;   /* profiled runs the means are over */
  double run_ms;   /* mean wall time of asg_program_run (host clock) */
  double steps_ms; /* sum of the steps' means (<= run_ms up to clock noise) */
  int n_steps;
  const asg_profile_step *steps; /* in plan (execution) order */
  int n_ops;
  const asg_profile_group *ops; /* by op, slowest first */
  int n_scopes;
  const asg_profile_group *scopes; /* every scope and its parents, in path
                                      order (a parent before its children) */
  size_t arena_bytes;              /* planned activation arena (asg_program_peak_memory) */
  size_t persistent_bytes;         /* variables, constants, inputs */
  /* Device bytes live on the program's device (asg_program_device_memory),
   * highest seen after a profiled run; 0 where the backend does not count. */
  size_t device_peak_bytes;
} asg_profile;

/* Starts (level 1 or 2) profiling p's next runs; keeps what was recorded.
 * Fails on CUDA / Vulkan for a program compiled without profiling. */
ASG_API asg_status asg_program_profile_start(asg_program *p, int level);
/* Stops recording (the data stays readable). */
ASG_API asg_status asg_program_profile_stop(asg_program *p);
/* Forgets the recorded runs (profiling stays on or off as it was). */
ASG_API asg_status asg_program_profile_reset(asg_program *p);
/* Fills *out; its arrays and strings stay valid until the next profile call
 * on p, its next run or asg_program_free. Fails (ASG_ERR_INVALID) when p
 * was never profiled or no profiled run completed yet. */
ASG_API asg_status asg_program_profile_get(asg_program *p, asg_profile *out);
/* Writes the steps of the last profiled runs (up to 4) as Chrome trace event
 * JSON ({"traceEvents": [...]}, "X" events in microseconds, one per step and
 * one per run) that chrome://tracing and ui.perfetto.dev open. */
ASG_API asg_status asg_program_profile_write_trace(asg_program *p, const char *path);
/* Prints the tables (summary, memory, by op, by scope, the `top` slowest
 * steps; top <= 0: 20) to f. */
ASG_API asg_status asg_profile_print(const asg_profile *prof, FILE *f, int top);

#ifdef __cplusplus
}
#endif
#endif
