/* norm_matmul (src/passes/fuse_norm.c; inputs: runtime/layout.h) as its two
 * steps: the norm of x [..., M, K] into the workspace, a barrier, then the
 * product reading it there, each recorded by this backend's own kernel. */
#include "backends/vulkan/vk.h"
#include "runtime/layout.h"

static const asg_vk_kernel *k_tab; /* the backend's table (set at registration) */

static size_t max_ws(const asg_step *s) { return k_tab[s->op].ws ? k_tab[s->op].ws(s) : 0; }

static size_t nm_ws(const asg_step *s) {
  asg_norm_matmul_views v;
  asg__norm_matmul_views(s, &v);
  const size_t a = max_ws(&v.norm), b = max_ws(&v.prod);
  return asg__norm_matmul_x_bytes(s) + (a > b ? a : b);
}

static asg_status nm_record(const asg_vk_call *c) {
  asg_norm_matmul_views v;
  asg__norm_matmul_views(c->s, &v);
  const uint64_t xn = c->ws, rest = xn + asg__norm_matmul_x_bytes(c->s);
  const uint64_t nin[3] = {c->in[0], c->in[v.first_param],
                           v.norm.n_in > 2 ? c->in[v.first_param + 1] : 0};
  asg_vk_call nc = *c;
  nc.s = &v.norm, nc.in = nin, nc.out = xn, nc.ws = rest;
  asg_status st = k_tab[v.norm.op].record(&nc);
  if (st) return st;
  asg_vk_barrier(c);
  uint64_t pin[8];
  for (int k = 0; k < v.prod.n_in; k++)
    pin[k] = c->in[k];
  pin[0] = xn;
  asg_vk_call pc = *c;
  pc.s = &v.prod, pc.in = pin, pc.ws = rest;
  return k_tab[v.prod.op].record(&pc);
}

/* After the norms' and products' families (their entries are read here). */
void asg_vk_register_norm_matmul(asg_vk_kernel *t) {
  k_tab = t;
  t[ASG_OP_NORM_MATMUL].record = nm_record;
  t[ASG_OP_NORM_MATMUL].ws = nm_ws;
}
