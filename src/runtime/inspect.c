/* Seeing inside a program: anomaly mode (the first non-finite value and the
 * step that made it), tensor taps (intermediate values kept for fetching)
 * and the CPU node callback. The backends call the non-finite helpers; the
 * program (runtime/program.c) keeps an asg__inspect per static program. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/inspect.h"

bool asg__dtype_is_float(asg_dtype dt) {
  return dt == ASG_F32 || dt == ASG_F64 || dt == ASG_BF16 || dt == ASG_F16;
}

/* A 16-bit float with all exponent bits set (expmask) is inf (mantissa 0)
 * or NaN. */
static int64_t first_bad16(const uint16_t *x, int64_t n, uint16_t expmask, double *value) {
  for (int64_t i = 0; i < n; i++)
    if ((x[i] & expmask) == expmask) {
      const bool nan = (x[i] & (uint16_t) ~(expmask | 0x8000u)) != 0;
      *value = nan ? (double)NAN : (x[i] & 0x8000u) ? -(double)INFINITY : (double)INFINITY;
      return i;
    }
  return -1;
}

int64_t asg__first_nonfinite(asg_dtype dt, const void *data, int64_t n, double *value) {
  switch (dt) {
  case ASG_F32:
    for (int64_t i = 0; i < n; i++)
      if (!isfinite(((const float *)data)[i])) {
        *value = isnan(((const float *)data)[i]) ? (double)NAN : ((const float *)data)[i];
        return i;
      }
    return -1;
  case ASG_F64:
    for (int64_t i = 0; i < n; i++)
      if (!isfinite(((const double *)data)[i])) {
        *value = isnan(((const double *)data)[i]) ? (double)NAN : ((const double *)data)[i];
        return i;
      }
    return -1;
  case ASG_F16: return first_bad16(data, n, 0x7C00u, value);
  case ASG_BF16: return first_bad16(data, n, 0x7F80u, value);
  default: return -1;
  }
}

static const char *buf_kind(asg_buf_kind k) {
  switch (k) {
  case ASG_BUF_VAR: return "a variable";
  case ASG_BUF_CONST: return "a constant";
  case ASG_BUF_INPUT: return "a fed input";
  default: return "made by an earlier step";
  }
}

/* The message: input in_j (-1: none; -2: not inspected) held in_value at
 * in_index. */
static asg_status finite_error_at(const asg_step *s, int64_t index, double value, uint64_t run,
                                  int in_j, int64_t in_index, double in_value) {
  char sh[96], why[400];
  asg_shape_str(s->out.shape, sh, sizeof sh);
  if (in_j == -2) {
    snprintf(why, sizeof why, " (its inputs were not inspected)");
  } else if (in_j < 0) {
    snprintf(why, sizeof why, ", from finite inputs: this step produced it");
  } else {
    char ish[96];
    snprintf(
        why, sizeof why,
        "; input %d (%s %s, %s) already held %g at element %" PRId64 ": this step propagated it",
        in_j, asg_dtype_name(s->in[in_j].dtype), asg_shape_str(s->in[in_j].shape, ish, sizeof ish),
        buf_kind(s->in_buf[in_j].kind), in_value, in_index);
  }
  return asg__error(ASG_ERR_NUMERIC,
                    "asg_program_run: non-finite value (check_finite) in run %" PRIu64
                    ": %s (output %s %s%s) made element %" PRId64 " = %g%s",
                    run + 1, s->label, asg_dtype_name(s->out.dtype), sh,
                    s->keep ? ", a program output" : "", index, value, why);
}

asg_status asg__finite_error(const asg_step *s, int64_t index, double value, uint64_t run,
                             const void *const *in) {
  if (!in) return finite_error_at(s, index, value, run, -2, 0, 0);
  for (int j = 0; j < s->n_in; j++) {
    if (!asg__dtype_is_float(s->in[j].dtype) || !in[j]) continue;
    double v = 0;
    int64_t k = asg__first_nonfinite(s->in[j].dtype, in[j], asg_shape_numel(s->in[j].shape), &v);
    if (k >= 0) return finite_error_at(s, index, value, run, j, k, v);
  }
  return finite_error_at(s, index, value, run, -1, 0, 0);
}

asg_status asg__finite_check_host(const asg_step *s, const void *out, const void *const *in,
                                  uint64_t run) {
  if (!asg__dtype_is_float(s->out.dtype)) return ASG_OK;
  double v = 0;
  int64_t k = asg__first_nonfinite(s->out.dtype, out, asg_shape_numel(s->out.shape), &v);
  if (k < 0) return ASG_OK;
  /* an input the step updated in place (an optimizer update of a variable)
   * holds the new values now: not inspected */
  const void **own = calloc((size_t)s->n_in + 1, sizeof *own);
  if (!own) return asg__finite_error(s, k, v, run, NULL);
  for (int j = 0; j < s->n_in; j++)
    own[j] = in[j] == out ? NULL : in[j];
  asg_status st = asg__finite_error(s, k, v, run, own);
  free(own);
  return st;
}

/* The value of a non-finite element from its bits (see asg_finite_fault). */
static double bits_value(asg_dtype dt, uint64_t bits) {
  double v = NAN;
  if (dt == ASG_F64) {
    memcpy(&v, &bits, sizeof v);
  } else if (dt == ASG_F32) {
    const uint32_t b = (uint32_t)bits;
    float f;
    memcpy(&f, &b, sizeof f);
    v = f;
  } else {
    const uint16_t b = (uint16_t)bits;
    asg__first_nonfinite(dt, &b, 1, &v);
  }
  return isnan(v) ? (double)NAN : v;
}

asg_status asg__finite_report(const asg_plan *plan, const asg_finite_fault *f, uint64_t run,
                              bool inputs_scanned) {
  if (f->step1 > (uint32_t)plan->n_steps ||
      (f->in1 && f->in1 > (uint32_t)plan->steps[f->step1 - 1].n_in))
    return asg__error(ASG_ERR_BACKEND, "check_finite: the device names step %u of %d, input %u",
                      (unsigned)f->step1, plan->n_steps, (unsigned)f->in1);
  const asg_step *s = &plan->steps[f->step1 - 1];
  const int j = inputs_scanned ? (int)f->in1 - 1 : -2;
  return finite_error_at(s, f->index, bits_value(s->out.dtype, f->bits), run, j, f->in_index,
                         j >= 0 ? bits_value(s->in[j].dtype, f->in_bits) : 0);
}

/* ---- the program's state ---- */

struct asg__inspect {
  int mode;
  int n_nodes;
  const void **keys; /* per node id: the tensor (compared, never dereferenced) */
  size_t *label_at;  /* per node id: offset of its label in pool */
  char *pool;
  asg_tensor **all; /* outputs then taps */
  int n_all, n_out;
  int n_names;
  char **tap_names;     /* asg_compile_opts.tap_names, copied */
  const void **tap_key; /* the node each names */
  asg_node_callback fn;
  void *ctx;
};

void asg__inspect_free(asg__inspect *insp) {
  if (!insp) return;
  for (int i = 0; i < insp->n_names; i++)
    free(insp->tap_names[i]);
  free(insp->tap_names);
  free(insp->tap_key);
  free(insp->keys);
  free(insp->label_at);
  free(insp->pool);
  free(insp->all);
  free(insp);
}

int asg__inspect_mode(const asg__inspect *insp) { return insp ? insp->mode : 0; }

asg_status asg__inspect_symbolic(const asg_compile_opts *o) {
  if (o->n_taps || o->n_tap_names)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "asg_compile: tensor taps need a static graph (this one has symbolic dims)");
  return ASG_OK;
}

static void node_label(const asg_tensor *t, char *b, size_t n) {
  if (t->name)
    snprintf(b, n, "%s", t->name);
  else if (t->scope && t->scope[0])
    snprintf(b, n, "%s/%s", t->scope, asg__op_name(t->op));
  else
    snprintf(b, n, "%s", asg__op_name(t->op));
}

static int find_key(const asg__inspect *insp, const void *key) {
  for (int i = 0; i < insp->n_nodes; i++)
    if (insp->keys[i] == key) return i;
  return -1;
}

const char *asg__inspect_label(const asg__inspect *insp, const void *key) {
  const int i = insp ? find_key(insp, key) : -1;
  return i < 0 ? NULL : insp->pool + insp->label_at[i];
}

/* The node that tap name names: exactly one node by name or label. */
static asg_status resolve_name(const asg__inspect *insp, const asg_graph *g, const char *name,
                               const void **key) {
  int n = 0, first = -1;
  char ids[160] = "";
  size_t k = 0;
  for (int i = 0; i < insp->n_nodes; i++) {
    if (strcmp(insp->pool + insp->label_at[i], name) != 0) continue;
    if (n < 6 && k < sizeof ids) k += (size_t)snprintf(ids + k, sizeof ids - k, " %d", i);
    if (first < 0) first = i;
    n++;
  }
  if (n == 1) {
    *key = g->nodes[first];
    return ASG_OK;
  }
  if (n == 0)
    return asg__error(ASG_ERR_NOT_FOUND,
                      "asg_compile: tap '%s' names no node of the graph (give an input or "
                      "variable name, or a \"scope/op\" label as errors print it)",
                      name);
  return asg__error(ASG_ERR_INVALID,
                    "asg_compile: tap '%s' matches %d nodes (ids%s%s); pass the tensor in "
                    "asg_compile_opts.taps instead",
                    name, n, ids, n > 6 ? " ..." : "");
}

asg_status asg__inspect_new(asg_graph *g, int n_out, asg_tensor *const *outs,
                            const asg_compile_opts *o, asg__inspect **out, asg_tensor *const **all,
                            int *n_all) {
  *out = NULL;
  int mode = o->check_finite;
  if (mode < ASG_CHECK_FINITE_OFF || mode > ASG_CHECK_FINITE_STEP)
    return asg__error(ASG_ERR_INVALID,
                      "asg_compile: check_finite is %d; give 0 (off), 1 (after each run) or 2 "
                      "(after each step)",
                      mode);
  const char *env = getenv("ASG_CHECK_FINITE");
  if (env && env[0] >= '1' && env[0] <= '2' && !env[1] && env[0] - '0' > mode) mode = env[0] - '0';
  if (o->n_taps < 0 || o->n_tap_names < 0 || (o->n_taps && !o->taps) ||
      (o->n_tap_names && !o->tap_names))
    return asg__error(ASG_ERR_INVALID,
                      "asg_compile: n_taps is %d and n_tap_names %d: counts >= 0 with their "
                      "arrays",
                      o->n_taps, o->n_tap_names);
  for (int i = 0; i < o->n_taps; i++)
    if (!o->taps[i] || o->taps[i]->magic != ASG_NODE_MAGIC || o->taps[i]->graph != g)
      return asg__error(ASG_ERR_INVALID,
                        "asg_compile: taps[%d] is NULL or not a tensor of this graph", i);
  for (int i = 0; i < o->n_tap_names; i++)
    if (!o->tap_names[i])
      return asg__error(ASG_ERR_INVALID, "asg_compile: tap_names[%d] is NULL", i);
  asg__inspect *insp = calloc(1, sizeof *insp);
  const int N = g->n_nodes;
  if (!insp) return asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
  insp->mode = mode;
  insp->n_nodes = N;
  insp->n_out = n_out;
  insp->keys = calloc((size_t)N + 1, sizeof *insp->keys);
  insp->label_at = calloc((size_t)N + 1, sizeof *insp->label_at);
  insp->all = calloc((size_t)(n_out + o->n_taps + o->n_tap_names) + 1, sizeof *insp->all);
  insp->tap_names = calloc((size_t)o->n_tap_names + 1, sizeof *insp->tap_names);
  insp->tap_key = calloc((size_t)o->n_tap_names + 1, sizeof *insp->tap_key);
  size_t cap = 0, used = 0;
  char lab[ASG_SCOPE_MAX + 64];
  asg_status st = insp->keys && insp->label_at && insp->all && insp->tap_names && insp->tap_key
                      ? ASG_OK
                      : asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
  for (int i = 0; i < N && !st; i++) { /* the node table: labels in one pool */
    node_label(g->nodes[i], lab, sizeof lab);
    const size_t len = strlen(lab) + 1;
    if (used + len > cap) {
      cap = (used + len) * 2;
      char *np = realloc(insp->pool, cap);
      if (!np) {
        st = asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
        break;
      }
      insp->pool = np;
    }
    memcpy(insp->pool + used, lab, len);
    insp->keys[i] = g->nodes[i];
    insp->label_at[i] = used;
    used += len;
  }
  for (int i = 0; i < n_out && !st; i++)
    insp->all[insp->n_all++] = outs[i];
  for (int i = 0; i < o->n_taps && !st; i++)
    insp->all[insp->n_all++] = o->taps[i];
  for (int i = 0; i < o->n_tap_names && !st; i++) {
    st = resolve_name(insp, g, o->tap_names[i], &insp->tap_key[i]);
    if (st) break;
    insp->tap_names[i] = malloc(strlen(o->tap_names[i]) + 1);
    if (!insp->tap_names[i]) {
      st = asg__error(ASG_ERR_OOM, "asg_compile: out of memory");
      break;
    }
    strcpy(insp->tap_names[i], o->tap_names[i]);
    insp->n_names = i + 1;
    insp->all[insp->n_all++] = g->nodes[find_key(insp, insp->tap_key[i])];
  }
  if (st) {
    asg__inspect_free(insp);
    return st;
  }
  *out = insp;
  *all = insp->all;
  *n_all = insp->n_all;
  return ASG_OK;
}

const void *asg__inspect_tap(const asg__inspect *insp, const char *name, const char *fn) {
  for (int i = 0; insp && i < insp->n_names; i++)
    if (strcmp(insp->tap_names[i], name) == 0) return insp->tap_key[i];
  asg__error(ASG_ERR_NOT_FOUND,
             "%s: no tap named '%s' (compile with asg_compile_opts.tap_names = {\"%s\"} to keep "
             "it)",
             fn, name, name);
  return NULL;
}

asg_status asg__inspect_not_found(const asg__inspect *insp, const void *key, const char *fn) {
  const int i = insp ? find_key(insp, key) : -1;
  if (i < 0)
    return asg__error(ASG_ERR_NOT_FOUND,
                      "%s: tensor is not a node of the graph this program was compiled from", fn);
  return asg__error(ASG_ERR_NOT_FOUND,
                    "%s: tensor '%s' (node %d) is not an output, variable, input or tap of this "
                    "program; its value is not kept after a run: tap it (asg_compile_opts.taps or "
                    "tap_names) to fetch it",
                    fn, insp->pool + insp->label_at[i], i);
}

void asg__inspect_set_callback(asg__inspect *insp, asg_node_callback fn, void *ctx) {
  insp->fn = fn;
  insp->ctx = ctx;
}

void asg__inspect_hook(void *ctx, int i, const asg_step *s, const void *out, uint64_t run) {
  const asg__inspect *insp = ctx;
  if (!insp->fn) return;
  const asg_node_info info = {i,
                              run,
                              s->node_id >= 0 && s->node_id < insp->n_nodes ? insp->keys[s->node_id]
                                                                            : NULL,
                              s->label,
                              s->out.dtype,
                              s->out.shape,
                              out};
  insp->fn(&info, insp->ctx);
}
