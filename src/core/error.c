/* Thread-local error messages and sticky graph errors. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

static _Thread_local char tl_err[1536];
static _Thread_local asg_status tl_status;

const char *asg_last_error(void) { return tl_err; }
void asg_clear_error(void) {
  tl_err[0] = '\0';
  tl_status = ASG_OK;
}
asg_status asg__last_status(void) { return tl_status; }

const char *asg_status_string(asg_status s) {
  switch (s) {
  case ASG_OK: return "ok";
  case ASG_ERR_INVALID: return "invalid argument";
  case ASG_ERR_SHAPE: return "shape mismatch";
  case ASG_ERR_DTYPE: return "dtype mismatch";
  case ASG_ERR_NOT_FOUND: return "not found";
  case ASG_ERR_OOM: return "out of memory";
  case ASG_ERR_IO: return "i/o error";
  case ASG_ERR_FORMAT: return "malformed data";
  case ASG_ERR_UNSUPPORTED: return "unsupported";
  case ASG_ERR_BACKEND: return "backend error";
  case ASG_ERR_GRAPH: return "graph has an error";
  case ASG_ERR_NUMERIC: return "non-finite value";
  }
  return "unknown status";
}

asg_status asg__error(asg_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tl_err, sizeof tl_err, fmt, ap);
  va_end(ap);
  tl_status = s;
  return s;
}

static asg_tensor *vfail(asg_graph *g, asg_status s, const char *op, const char *fmt, va_list ap) {
  char msg[600];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (!g) {
    asg__error(s, "%s: %s", op, msg);
    return NULL;
  }
  if (g->status == ASG_OK) { /* keep the first error: later ones are fallout */
    g->status = s;
    int n = g->scope[0] ? snprintf(g->err, sizeof g->err, "%s/%s: %s", g->scope, op, msg)
                        : snprintf(g->err, sizeof g->err, "%s: %s", op, msg);
    (void)n; /* truncation is fine: the message stays NUL-terminated */
  }
  asg__error(s, "%s", g->err);
  return NULL;
}

asg_tensor *asg__fail(asg_graph *g, asg_status s, const char *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(g, s, op, fmt, ap);
  va_end(ap);
  return NULL;
}

asg_tensor *asg_graph_fail(asg_graph *g, asg_status s, const char *what, const char *fmt, ...) {
  va_list ap;
  if (g && g->magic != ASG_GRAPH_MAGIC) g = NULL;
  va_start(ap, fmt);
  vfail(g, s ? s : ASG_ERR_INVALID, what ? what : "error", fmt, ap);
  va_end(ap);
  return NULL;
}
