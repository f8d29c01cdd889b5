/* A backend's own copy of a plan with every buffer reference turned into an
 * address (base of the buffer + offset): the part of preparing a program
 * that every backend shares. */
#include <stdlib.h>
#include <string.h>

#include "runtime/backend.h"

static void *resolve(const asg_buffers *b, asg_buf_ref r) {
  char *base = NULL;
  switch (r.kind) {
  case ASG_BUF_ARENA: base = b->arena; break;
  case ASG_BUF_VAR: base = b->vars[r.index]; break;
  case ASG_BUF_CONST: base = b->consts[r.index]; break;
  case ASG_BUF_INPUT: base = b->inputs[r.index]; break;
  }
  return base + r.offset;
}

/* *c = *s with its own in/in_buf arrays and *in the inputs' addresses (no aux). */
static bool copy_step(asg_step *c, const asg_step *s, const asg_buffers *bufs, const void ***in) {
  *c = *s;
  c->in = NULL, c->in_buf = NULL, c->aux = NULL, c->n_aux = 0;
  *in = NULL;
  if (!s->n_in) return true;
  c->in = malloc(sizeof *c->in * (size_t)s->n_in);
  c->in_buf = malloc(sizeof *c->in_buf * (size_t)s->n_in);
  *in = malloc(sizeof(void *) * (size_t)s->n_in);
  if (!c->in || !c->in_buf || !*in) return false;
  memcpy(c->in, s->in, sizeof *c->in * (size_t)s->n_in);
  memcpy(c->in_buf, s->in_buf, sizeof *c->in_buf * (size_t)s->n_in);
  for (int j = 0; j < s->n_in; j++)
    (*in)[j] = resolve(bufs, s->in_buf[j]);
  return true;
}

static void free_step(asg_step *c) {
  free(c->in), free(c->in_buf);
  for (int k = 0; k < c->n_aux; k++)
    free(c->aux[k].in), free(c->aux[k].in_buf);
  free(c->aux);
}

void asg__resolved_free(asg_resolved *r) {
  if (!r) return;
  for (int i = 0; i < r->plan.n_steps; i++) {
    if (r->plan.steps) free_step(&r->plan.steps[i]);
    if (r->in) free((void *)r->in[i]);
    for (int k = 0; r->aux_in && k < ASG_MAX_AUX; k++)
      free((void *)r->aux_in[(size_t)i * ASG_MAX_AUX + k]);
  }
  free(r->plan.steps);
  free(r->out);
  free(r->in);
  free(r->aux);
  free(r->aux_in);
  memset(r, 0, sizeof *r);
}

asg_status asg__resolve_plan(const asg_plan *src, const asg_buffers *bufs, asg_resolved *r) {
  int n = src->n_steps;
  memset(r, 0, sizeof *r);
  r->plan.steps = calloc((size_t)n + 1, sizeof *r->plan.steps);
  r->out = calloc((size_t)n + 1, sizeof *r->out);
  r->in = calloc((size_t)n + 1, sizeof *r->in);
  r->aux = calloc(((size_t)n + 1) * ASG_MAX_AUX, sizeof *r->aux);
  r->aux_in = calloc(((size_t)n + 1) * ASG_MAX_AUX, sizeof *r->aux_in);
  r->plan.n_steps = n;
  r->plan.arena_bytes = src->arena_bytes;
  r->plan.flags = src->flags;
  r->plan.comm = src->comm;
  if (!r->plan.steps || !r->out || !r->in || !r->aux || !r->aux_in) goto oom;
  for (int i = 0; i < n; i++) {
    const asg_step *s = &src->steps[i];
    asg_step *c = &r->plan.steps[i];
    if (!copy_step(c, s, bufs, &r->in[i])) goto oom;
    r->out[i] = resolve(bufs, s->out_buf);
    if (!s->n_aux) continue;
    if (!(c->aux = calloc((size_t)s->n_aux, sizeof *c->aux))) goto oom;
    for (int k = 0; k < s->n_aux; k++) {
      const size_t a = (size_t)i * ASG_MAX_AUX + k;
      c->n_aux = k + 1;
      if (!copy_step(&c->aux[k], &s->aux[k], bufs, &r->aux_in[a])) goto oom;
      r->aux[a] = resolve(bufs, s->aux[k].out_buf);
    }
  }
  return ASG_OK;
oom:
  asg__resolved_free(r);
  return asg__error(ASG_ERR_OOM, "out of memory while preparing the program");
}
