/* The profile record shared by profile.c (recording, aggregation) and
 * trace.c (Chrome trace export): internal. */
#ifndef ASG_RUNTIME_PROFILE_INTERNAL_H
#define ASG_RUNTIME_PROFILE_INTERNAL_H

#include "asg/profile.h"
#include "runtime/backend.h"

enum { ASG_PROF_TRACE_RUNS = 4 }; /* runs kept for the trace */

struct asg__prof {
  const asg_backend *be;
  void *exec;
  const asg_plan *plan; /* the exec's (labels, shapes); lives as long as it */
  int n, level;
  bool on;                     /* recording */
  double epoch;                /* asg__prof_now_ms() at creation: trace time 0 */
  double run_t0;               /* start of the run being recorded, ms since epoch */
  bool reported;               /* the backend reported a step of this run */
  double *cur_start, *cur_dur; /* this run, ms (start < 0: not reported) */
  uint64_t runs;
  double run_ms;   /* sum of the runs' wall times */
  double *sum_ms;  /* per step, over runs */
  double *last_ms; /* per step, last run */
  size_t dev_peak;
  /* the last runs (ring): start, wall time, and their steps' start / dur */
  int tr_count, tr_next;
  double tr_t0[ASG_PROF_TRACE_RUNS], tr_wall[ASG_PROF_TRACE_RUNS];
  uint64_t tr_run[ASG_PROF_TRACE_RUNS];
  double *tr_start, *tr_dur; /* ASG_PROF_TRACE_RUNS * n */
  char (*scope)[96];         /* per step: its name scope */
  /* what asg_program_profile_get hands out */
  asg_profile_step *steps;
  asg_profile_group *ops, *scopes;
  char (*scope_names)[96];
};

/* p's profile slot, backend and exec (a symbolic program's: those of the
 * last run's specialization; NULL with an error set if none). */
asg__prof **asg__program_prof_slot(asg_program *p, const asg_backend **be, void **exec);
/* "f32[64,512]" */
void asg__prof_tdesc_str(const asg_tdesc *d, char *buf, size_t n);

#endif
