/* The profile as Chrome trace event JSON (the "JSON Object Format" that
 * chrome://tracing and ui.perfetto.dev read): one complete ("X") event per
 * run and one per step of it, nested on one thread, microseconds since the
 * profile started. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/profile_internal.h"

/* s as a JSON string (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
    if (*c == '"' || *c == '\\')
      fprintf(f, "\\%c", *c);
    else if (*c < 0x20)
      fprintf(f, "\\u%04x", *c);
    else
      fputc(*c, f);
  }
  fputc('"', f);
}

/* The steps of one run in order of start (a backend may report them out of
 * order); unreported steps (start < 0) go last and are skipped. */
static _Thread_local const double *sort_start; /* qsort has no context argument */
static int cmp_start(const void *a, const void *b) {
  const double x = sort_start[*(const int *)a], y = sort_start[*(const int *)b];
  if ((x < 0) != (y < 0)) return x < 0 ? 1 : -1;
  return x < y ? -1 : x > y ? 1 : *(const int *)a - *(const int *)b;
}

static void step_event(FILE *f, const asg__prof *p, int i, double ts_us, double dur_us,
                       uint64_t run) {
  const asg_step *s = &p->plan->steps[i];
  char d[128];
  fprintf(f, ",\n{\"name\":");
  json_str(f, s->label);
  fprintf(f, ",\"cat\":");
  json_str(f, asg__op_name(s->op));
  fprintf(f,
          ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":1,\"tid\":1,\"args\":{\"scope\":", ts_us,
          dur_us);
  json_str(f, p->scope[i]);
  asg__prof_tdesc_str(&s->out, d, sizeof d);
  fprintf(f, ",\"step\":%d,\"node\":%d,\"run\":%llu,\"out\":", i, s->node_id,
          (unsigned long long)run);
  json_str(f, d);
  fprintf(f, ",\"in\":[");
  for (int j = 0; j < s->n_in; j++) {
    asg__prof_tdesc_str(&s->in[j], d, sizeof d);
    if (j) fputc(',', f);
    json_str(f, d);
  }
  fprintf(f, "]}}");
}

asg_status asg_program_profile_write_trace(asg_program *p, const char *path) {
  asg__prof *prof = NULL;
  const asg_backend *be;
  void *exec;
  if (!p || !path)
    return asg__error(ASG_ERR_INVALID, "asg_program_profile_write_trace: NULL argument");
  asg__prof **slot = asg__program_prof_slot(p, &be, &exec);
  if (!slot) return asg__last_status();
  prof = *slot;
  if (!prof || !prof->tr_count)
    return asg__error(ASG_ERR_INVALID,
                      "asg_program_profile_write_trace: %s (asg_program_profile_start, "
                      "asg_compile_opts.profile or ASG_PROFILE=1, then run it)",
                      prof ? "no profiled run completed yet" : "the program was not profiled");
  int *order = malloc(sizeof *order * ((size_t)prof->n + 1));
  FILE *f = order ? fopen(path, "w") : NULL;
  if (!f) {
    free(order);
    return order ? asg__error(ASG_ERR_IO, "asg_program_profile_write_trace: cannot write %s: %s",
                              path, strerror(errno))
                 : asg__error(ASG_ERR_OOM, "asg_program_profile_write_trace: out of memory");
  }
  fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n"
             "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,\"args\":{\"name\":");
  char pname[64];
  snprintf(pname, sizeof pname, "asg %s program", prof->be->name);
  json_str(f, pname);
  fprintf(f, "}},\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":1,"
             "\"args\":{\"name\":\"steps\"}}");
  /* the oldest kept run first: timestamps grow along the file */
  const int first = (prof->tr_next - prof->tr_count + ASG_PROF_TRACE_RUNS) % ASG_PROF_TRACE_RUNS;
  for (int r = 0; r < prof->tr_count; r++) {
    const int k = (first + r) % ASG_PROF_TRACE_RUNS;
    const double *st = prof->tr_start + (size_t)k * (size_t)prof->n;
    const double *du = prof->tr_dur + (size_t)k * (size_t)prof->n;
    const double t0 = prof->tr_t0[k] * 1e3;
    fprintf(f,
            ",\n{\"name\":\"run %llu\",\"cat\":\"run\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,"
            "\"pid\":1,\"tid\":1,\"args\":{\"steps\":%d}}",
            (unsigned long long)prof->tr_run[k], t0, prof->tr_wall[k] * 1e3, prof->n);
    for (int i = 0; i < prof->n; i++)
      order[i] = i;
    sort_start = st;
    qsort(order, (size_t)prof->n, sizeof *order, cmp_start);
    for (int j = 0; j < prof->n && st[order[j]] >= 0; j++)
      step_event(f, prof, order[j], t0 + st[order[j]] * 1e3, du[order[j]] * 1e3, prof->tr_run[k]);
  }
  fprintf(f, "\n]}\n");
  free(order);
  const bool bad = ferror(f) != 0;
  if (fclose(f) != 0 || bad)
    return asg__error(ASG_ERR_IO, "asg_program_profile_write_trace: error writing %s", path);
  return ASG_OK;
}
