/* Custom ops (include/asg/custom.h): the registry and the node constructor.
 *
 * The registry is a fixed table of ASG_CUSTOM_MAX_OPS entries guarded by a
 * mutex. Entries are written once, before the count that publishes them is
 * raised, and never move or go away, so a handle (a pointer into the table)
 * and a node's registry id stay valid for the life of the process. Lookups
 * by id take the lock too: they are rare (node construction, one per step at
 * compile time and per kernel call) and the lock keeps them obviously
 * race-free. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/checks.h"
#include "ops/op_custom.h"
#include "ops/op_util.h"

static asg_custom_op reg[ASG_CUSTOM_MAX_OPS];
static int n_reg;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

static bool name_ok(const char *s) {
  size_t n = 0;
  for (; s[n]; n++)
    if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
          (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '.') ||
        n + 1 >= ASG_CUSTOM_NAME_MAX)
      return false;
  return n > 0;
}

static int find_locked(const char *name) {
  for (int i = 0; i < n_reg; i++)
    if (strcmp(reg[i].name, name) == 0) return i;
  return -1;
}

asg_status asg_custom_register(const asg_custom_desc *d, const asg_custom_op **op) {
  if (op) *op = NULL;
  if (!d || !op)
    return asg__error(ASG_ERR_INVALID, "asg_custom_register: NULL descriptor or handle");
  if (!d->name || !name_ok(d->name))
    return asg__error(ASG_ERR_INVALID,
                      "asg_custom_register: name '%.80s' is not 1..%d characters of "
                      "[A-Za-z0-9_.]",
                      d->name ? d->name : "(null)", ASG_CUSTOM_NAME_MAX - 1);
  const char *nm = d->name;
  if (d->n_inputs < 0 || d->n_inputs > ASG_CUSTOM_MAX_INPUTS)
    return asg__error(ASG_ERR_INVALID, "asg_custom_register: '%s': n_inputs %d is not in [0, %d]",
                      nm, d->n_inputs, ASG_CUSTOM_MAX_INPUTS);
  if (!d->shape || !d->cpu)
    return asg__error(ASG_ERR_INVALID,
                      "asg_custom_register: '%s': the %s function is NULL (a shape function and "
                      "a CPU kernel are required)",
                      nm, !d->shape ? "shape" : "CPU kernel");
  asg_status st = ASG_OK;
  pthread_mutex_lock(&reg_lock);
  if (find_locked(nm) >= 0) {
    st = asg__error(ASG_ERR_INVALID,
                    "asg_custom_register: an op named '%s' is already registered (names are "
                    "unique per process; asg_custom_find returns it)",
                    nm);
  } else if (n_reg == ASG_CUSTOM_MAX_OPS) {
    st = asg__error(ASG_ERR_INVALID, "asg_custom_register: '%s': the registry is full (%d ops)", nm,
                    ASG_CUSTOM_MAX_OPS);
  } else {
    asg_custom_op *e = &reg[n_reg];
    e->d = *d;
    snprintf(e->name, sizeof e->name, "%s", nm);
    e->d.name = e->name;
    e->id = n_reg;
    *op = e;
    n_reg++; /* publishes the entry (under the lock) */
  }
  pthread_mutex_unlock(&reg_lock);
  return st;
}

const asg_custom_op *asg_custom_find(const char *name) {
  if (!name) return asg__error(ASG_ERR_INVALID, "asg_custom_find: NULL name"), NULL;
  pthread_mutex_lock(&reg_lock);
  int i = find_locked(name);
  pthread_mutex_unlock(&reg_lock);
  if (i < 0) asg__error(ASG_ERR_NOT_FOUND, "asg_custom_find: no custom op named '%.80s'", name);
  return i < 0 ? NULL : &reg[i];
}

/* op when it is a registered entry of the table, else NULL. */
static const asg_custom_op *checked(const asg_custom_op *op) {
  const uintptr_t at = (uintptr_t)op, base = (uintptr_t)reg;
  if (!op || at < base || (at - base) % sizeof *reg != 0) return NULL;
  const size_t idx = (at - base) / sizeof *reg;
  pthread_mutex_lock(&reg_lock);
  bool ok = idx < (size_t)n_reg;
  pthread_mutex_unlock(&reg_lock);
  return ok ? op : NULL;
}

const char *asg_custom_name(const asg_custom_op *op) {
  if (!checked(op)) return asg__error(ASG_ERR_INVALID, "asg_custom_name: not a custom op"), NULL;
  return op->name;
}

const asg_custom_op *asg__custom_get(const asg_attrs *a) {
  const int64_t id = a->i[0];
  pthread_mutex_lock(&reg_lock);
  bool ok = id >= 0 && id < n_reg;
  pthread_mutex_unlock(&reg_lock);
  return ok ? &reg[id] : NULL;
}

const asg_custom_op *asg_custom_of(const asg_tensor *t) {
  if (!asg__tensor_ok(t) || t->op != ASG_OP_CUSTOM) return NULL;
  return asg__custom_get(&t->attr);
}

void asg__custom_sig(const asg_custom_op *op, const asg_attrs *a, int n_in,
                     const asg_dtype *in_dtype, const asg_shape *in_shape, asg_custom_sig *sig) {
  memset(sig, 0, sizeof *sig);
  sig->op = op;
  sig->n_in = n_in < ASG_CUSTOM_MAX_INPUTS ? n_in : ASG_CUSTOM_MAX_INPUTS;
  for (int i = 0; i < sig->n_in; i++) {
    sig->in_dtype[i] = in_dtype[i];
    sig->in_shape[i] = in_shape[i];
  }
  sig->n_attr = (int)(a->i[1] < ASG_CUSTOM_MAX_ATTRS ? a->i[1] : ASG_CUSTOM_MAX_ATTRS);
  for (int k = 0; k < sig->n_attr; k++)
    sig->attr[k] = a->f[k];
  sig->user = op->d.user;
}

/* "f32 [2,3], i32 [4]": the operands, for the shape function's errors. */
static void operands_str(const asg_custom_sig *s, char *buf, size_t n) {
  size_t k = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->n_in && k < n; i++) {
    char b[ASG_SHAPE_BUF];
    int w = snprintf(buf + k, n - k, "%s%s %s", i ? ", " : "", asg_dtype_name(s->in_dtype[i]),
                     asg_shape_str(s->in_shape[i], b, sizeof b));
    if (w < 0) break;
    k += (size_t)w;
  }
}

asg_tensor *asg_custom_ex(asg_graph *g, const asg_custom_op *op, asg_tensor *const *in, int n,
                          const double *attr, int n_attr) {
  if (!g || g->magic != ASG_GRAPH_MAGIC)
    return asg__error(ASG_ERR_INVALID, "asg_custom: graph is NULL or not a graph"), NULL;
  if (g->status != ASG_OK) return asg__error(g->status, "%s", g->err), NULL; /* poisoned */
  if (n < 0 || n > ASG_CUSTOM_MAX_INPUTS || (n > 0 && !in))
    return asg__fail(g, ASG_ERR_INVALID, "custom", "%d inputs given (NULL list or not in [0, %d])",
                     n, ASG_CUSTOM_MAX_INPUTS);
  if (!checked(op))
    return asg__fail(g, ASG_ERR_INVALID, "custom",
                     "the op is not a handle from asg_custom_register");
  char what[ASG_CUSTOM_NAME_MAX + 16];
  snprintf(what, sizeof what, "custom op '%s'", op->name);
  for (int i = 0; i < n; i++) /* on a healthy graph, a caller's mistake */
    if (!in[i]) return asg__fail(g, ASG_ERR_INVALID, what, "input %d is NULL", i);
  if (n > 0) {
    asg_graph *gi = asg__graph_of(what, n, in);
    if (!gi) return NULL; /* a NULL or poisoned input: message set */
    if (gi != g) return asg__fail(g, ASG_ERR_INVALID, what, "the inputs belong to another graph");
  }
  if (n != op->d.n_inputs)
    return asg__fail(g, ASG_ERR_INVALID, what, "takes %d input%s, got %d", op->d.n_inputs,
                     op->d.n_inputs == 1 ? "" : "s", n);
  if (n_attr < 0 || n_attr > ASG_CUSTOM_MAX_ATTRS || (n_attr > 0 && !attr))
    return asg__fail(g, ASG_ERR_INVALID, what, "%d attributes given (NULL list or not in [0, %d])",
                     n_attr, ASG_CUSTOM_MAX_ATTRS);
  asg_dtype dts[ASG_CUSTOM_MAX_INPUTS];
  asg_shape shs[ASG_CUSTOM_MAX_INPUTS];
  for (int i = 0; i < n; i++) {
    char b[ASG_SHAPE_BUF];
    if (!asg__shape_is_static(in[i]->shape))
      return asg__fail(g, ASG_ERR_UNSUPPORTED, what,
                       "input %d has the symbolic shape %s: custom ops take static shapes (the "
                       "shape function sees numbers)",
                       i, SHP(in[i]->shape, b));
    dts[i] = in[i]->dtype;
    shs[i] = in[i]->shape;
  }
  asg_attrs a;
  memset(&a, 0, sizeof a);
  a.i[0] = op->id;
  a.i[1] = n_attr;
  for (int k = 0; k < n_attr; k++)
    a.f[k] = attr[k];
  asg_custom_sig sig;
  asg__custom_sig(op, &a, n, dts, shs, &sig);
  asg_dtype dt = ASG_F32;
  asg_shape s = ASG_SCALAR;
  char msg[256] = "", ops[512];
  if (op->d.shape(&sig, &dt, &s, msg, sizeof msg) != 0) {
    msg[sizeof msg - 1] = '\0'; /* whatever the callback left */
    operands_str(&sig, ops, sizeof ops);
    return asg__fail(g, ASG_ERR_SHAPE, what, "%s (inputs: %s)",
                     msg[0] ? msg : "the shape function refused the inputs", n ? ops : "none");
  }
  char why[200];
  if ((unsigned)dt >= ASG_DTYPE_COUNT)
    return asg__fail(g, ASG_ERR_DTYPE, what, "the shape function gave the unknown dtype %d",
                     (int)dt);
  if (!asg__shape_check(s, asg_dtype_size(dt), NULL, why, sizeof why))
    return asg__fail(g, ASG_ERR_SHAPE, what, "the shape function gave a bad shape: %s", why);
  asg_tensor *t = asg__node(g, ASG_OP_CUSTOM, dt, s, n, in);
  if (t) t->attr = a;
  return t;
}

asg_tensor *asg_custom(asg_graph *g, const asg_custom_op *op, asg_tensor *const *in, int n) {
  return asg_custom_ex(g, op, in, n, NULL, 0);
}
