/* The per-op profile a backend prints when a profiled program is freed
 * (ASG_PROFILE=1): shared so that every backend reports alike. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int asg__profile_level(void) {
  const char *e = getenv("ASG_PROFILE");
  return e && e[0] && e[0] != '0' ? atoi(e) > 1 ? 2 : 1 : 0;
}

static void tdesc_str(const asg_tdesc *d, char *buf, size_t n) {
  char sh[96];
  snprintf(buf, n, "%s%s", asg_dtype_name(d->dtype), asg_shape_str(d->shape, sh, sizeof sh));
}

typedef struct step_sig {
  char sig[512];
  double ms;
  int count, first;
} step_sig;

void asg__profile_steps(const char *backend, const asg_plan *plan, const double *step_ms, int runs,
                        int top) {
  if (runs <= 0 || asg__profile_level() < 2 || plan->n_steps <= 0) return;
  /* steps of one op with the same shapes and integer attributes (the
   * transposes of a matmul) are one line */
  step_sig *g = calloc((size_t)plan->n_steps, sizeof *g);
  if (!g) return;
  int n = 0;
  for (int i = 0; i < plan->n_steps; i++) {
    const asg_step *s = &plan->steps[i];
    char sig[512], o[128], a[128] = "", b[128] = "";
    tdesc_str(&s->out, o, sizeof o);
    if (s->n_in > 0) tdesc_str(&s->in[0], a, sizeof a);
    if (s->n_in > 1) tdesc_str(&s->in[1], b, sizeof b);
    snprintf(sig, sizeof sig, "%-26s %s <- %s %s%s (i %lld %lld)", asg__op_name(s->op), o, a, b,
             s->n_in > 2 ? " ..." : "", (long long)s->attr.i[0], (long long)s->attr.i[1]);
    int k = 0;
    while (k < n && strcmp(g[k].sig, sig) != 0)
      k++;
    if (k == n) {
      memcpy(g[n].sig, sig, sizeof sig);
      g[n++].first = i;
    }
    g[k].ms += step_ms[i];
    g[k].count++;
  }
  for (int i = 1; i < n; i++) /* by time, descending */
    for (int j = i; j > 0 && g[j].ms > g[j - 1].ms; j--) {
      step_sig t = g[j];
      g[j] = g[j - 1];
      g[j - 1] = t;
    }
  fprintf(stderr, "asg profile (%s): slowest kinds of step (ms per run, steps per run, first)\n",
          backend);
  for (int k = 0; k < top && k < n; k++)
    fprintf(stderr, "  %8.3f ms %4d x  #%-5d %s\n", g[k].ms / runs, g[k].count, g[k].first,
            g[k].sig);
  free(g);
}
