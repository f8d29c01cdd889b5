/* The per-op profile a backend prints when a profiled program is freed
 * (ASG_PROFILE=1): shared so that every backend reports alike. */
#include <stdio.h>

#include "runtime/backend.h"

void asg__profile_report(const char *backend, const char *unit, const double *op_ms,
                         const int64_t *op_calls, int runs) {
  double total = 0;
  int order[ASG_OP_COUNT], n = 0;
  if (runs <= 0) return;
  for (int i = 0; i < ASG_OP_COUNT; i++)
    if (op_calls[i]) order[n++] = i, total += op_ms[i];
  for (int i = 1; i < n; i++) /* by time, descending */
    for (int j = i; j > 0 && op_ms[order[j]] > op_ms[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  fprintf(stderr, "asg profile (%s): %d runs, %.3f ms per run\n", backend, runs, total / runs);
  for (int i = 0; i < n; i++)
    fprintf(stderr, "  %-28s %9.3f ms/run %6.1f%%  %lld %s/run\n", asg__op_name((asg_op)order[i]),
            op_ms[order[i]] / runs, 100 * op_ms[order[i]] / (total > 0 ? total : 1),
            (long long)(op_calls[order[i]] / runs), unit);
}
