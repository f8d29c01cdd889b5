/* norm_matmul (src/passes/fuse_norm.c; inputs: runtime/layout.h). A skinny
 * product (a decode step's, cuda_gemv.cu) normalizes its few rows itself
 * while the weights stream in: one kernel where there were two. Otherwise
 * the two steps: the norm of x [..., M, K] into the workspace, then the
 * product reading it there, each with this backend's own kernel (and the
 * product's own plan, made here by its .prepare). */
#include <stdlib.h>

#include "backends/cuda/cuda_exec.h"

typedef struct nm_state {
  asg_norm_matmul_views v; /* the two steps (the calls point into it) */
  bool fused;              /* one skinny product normalizing its rows */
  void *prod;              /* the product's plan (its .prepare), or NULL */
} nm_state;

/* A call of view step s with c's context and none of the planners' extras. */
static asg_cuda_call view_call(const asg_cuda_call *c, const asg_step *s, const void **in,
                               void *out, void *ws) {
  return (asg_cuda_call){.s = s,
                         .out = out,
                         .in = in,
                         .ws = ws,
                         .run = c->run,
                         .ctx = c->ctx,
                         .tf32 = c->tf32,
                         .bf16 = c->bf16,
                         .fp16 = c->fp16,
                         .fault = c->fault,
                         .step1 = c->step1,
                         .comm = c->comm,
                         .pf = c->pf};
}

/* The product's call: with the norm folded in (fused: x read as it is), or
 * reading the normalized x from the workspace. */
static asg_cuda_call prod_call(const asg_cuda_call *c, const nm_state *st, bool fused,
                               const void **pin) {
  const asg_norm_matmul_views *v = &st->v;
  char *xn = c->ws;
  for (int k = 0; k < v->prod.n_in; k++)
    pin[k] = c->in[k];
  if (!fused) pin[0] = xn;
  asg_cuda_call e = view_call(c, &v->prod, pin, c->out, xn + asg__norm_matmul_x_bytes(c->s));
  e.state = fused ? NULL : st->prod;
  if (fused) {
    e.norm_kind = v->norm.op == ASG_OP_LAYERNORM ? 1 : 2;
    e.norm_gamma = c->in[v->first_param];
    e.norm_beta = e.norm_kind == 1 ? c->in[v->first_param + 1] : NULL;
    e.norm_eps = (float)c->s->attr.f[0];
  }
  return e;
}

static size_t nm_ws(const asg_step *s, unsigned flags) {
  asg_norm_matmul_views v;
  asg__norm_matmul_views(s, &v);
  const asg_cuda_kernel *t = asg_cuda_kernels();
  const size_t a = t[v.norm.op].ws ? t[v.norm.op].ws(&v.norm, flags) : 0;
  const size_t b = t[v.prod.op].ws ? t[v.prod.op].ws(&v.prod, flags) : 0;
  return asg__norm_matmul_x_bytes(s) + (a > b ? a : b);
}

static asg_status nm_prepare(const asg_cuda_call *c, void **state) {
  nm_state *st = calloc(1, sizeof *st);
  if (!st) return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  *state = st;
  asg__norm_matmul_views(c->s, &st->v);
  const void *pin[8];
  asg_cuda_call e = prod_call(c, st, true, pin);
  st->fused = c->s->out.dtype == ASG_F32 && asg_cuda_gemv_ok(&e);
  if (st->fused) return ASG_OK;
  e = prod_call(c, st, false, pin);
  const asg_cuda_kernel *k = &asg_cuda_kernels()[st->v.prod.op];
  return k->prepare ? k->prepare(&e, &st->prod) : ASG_OK;
}

static void nm_release(void *state) {
  nm_state *st = state;
  if (!st) return;
  if (st->prod) asg_cuda_kernels()[st->v.prod.op].release(st->prod);
  free(st);
}

static asg_status nm_run(const asg_cuda_call *c) {
  const nm_state *st = c->state;
  if (!st) return asg__error(ASG_ERR_BACKEND, "cuda: %s: not prepared", c->s->label);
  const asg_cuda_kernel *t = asg_cuda_kernels();
  const void *pin[8];
  if (!st->fused) {
    const asg_norm_matmul_views *v = &st->v;
    const void *nin[3] = {c->in[0], c->in[v->first_param],
                          v->norm.n_in > 2 ? c->in[v->first_param + 1] : NULL};
    char *xn = c->ws;
    asg_cuda_call n = view_call(c, &v->norm, nin, xn, xn + asg__norm_matmul_x_bytes(c->s));
    asg_status s = t[v->norm.op].run(&n);
    if (s) return s;
  }
  asg_cuda_call e = prod_call(c, st, st->fused, pin);
  return t[st->v.prod.op].run(&e);
}

bool asg_cuda_norm_matmul_fused(const void *state) {
  return state && ((const nm_state *)state)->fused;
}

void asg_cuda_register_norm_matmul(asg_cuda_kernel *t) {
  t[ASG_OP_NORM_MATMUL].run = nm_run;
  t[ASG_OP_NORM_MATMUL].ws = nm_ws;
  t[ASG_OP_NORM_MATMUL].prepare = nm_prepare;
  t[ASG_OP_NORM_MATMUL].release = nm_release;
}
