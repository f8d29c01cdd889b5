/* norm_matmul (src/passes/fuse_norm.c; inputs: runtime/layout.h) as its two
 * steps: the norm of x [..., M, K] into the workspace, then the product
 * reading it there, each with this backend's own kernel. */
#include "backends/cpu/cpu.h"
#include "runtime/layout.h"

static const asg_cpu_kernel *k_tab; /* the backend's table (set at registration) */

static size_t max_ws(const asg_step *s, int nthreads) {
  return k_tab[s->op].ws ? k_tab[s->op].ws(s, nthreads) : 0;
}

static size_t nm_ws(const asg_step *s, int nthreads) {
  asg_norm_matmul_views v;
  asg__norm_matmul_views(s, &v);
  const size_t a = max_ws(&v.norm, nthreads), b = max_ws(&v.prod, nthreads);
  return asg__norm_matmul_x_bytes(s) + (a > b ? a : b);
}

static asg_status nm_run(const asg_cpu_call *c) {
  asg_norm_matmul_views v;
  asg__norm_matmul_views(c->s, &v);
  char *xn = c->ws, *rest = xn + asg__norm_matmul_x_bytes(c->s);
  const void *nin[3] = {c->in[0], c->in[v.first_param],
                        v.norm.n_in > 2 ? c->in[v.first_param + 1] : NULL};
  asg_cpu_call nc = *c;
  nc.s = &v.norm, nc.in = nin, nc.out = xn, nc.ws = rest;
  asg_status st = k_tab[v.norm.op].run(&nc);
  if (st) return st;
  const void *pin[8];
  for (int k = 0; k < v.prod.n_in; k++)
    pin[k] = c->in[k];
  pin[0] = xn;
  asg_cpu_call pc = *c;
  pc.s = &v.prod, pc.in = pin, pc.ws = rest;
  return k_tab[v.prod.op].run(&pc);
}

/* After the norms' and products' families (their entries are read here). */
void asg_cpu_register_norm_matmul(asg_cpu_kernel *t) {
  k_tab = t;
  t[ASG_OP_NORM_MATMUL].run = nm_run;
  t[ASG_OP_NORM_MATMUL].ws = nm_ws;
}
