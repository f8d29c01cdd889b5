/* Each optimizer's update of one parameter, as graph ops (built by
 * optim.c once the gradient is accumulated, unscaled and clipped). Every
 * state update goes through asg__optim_update, so accumulation, loss
 * scaling and the non-finite guard gate it; every state variable comes from
 * asg__optim_param_state with pv, so ZeRO-1 keeps only this rank's shard.
 * Formulas: PyTorch's single-tensor implementations (SGD, Adam, AdamW with
 * amsgrad, RMSprop, Adagrad), Lion's and LAMB's papers. */
#include <math.h>
#include <string.h>

#include "optim/optim_internal.h"

#define K(v) asg__optim_k(b, (v))
#define AS(s, like) asg__optim_as((s), (like))

static bool in_group(const asg_param_group *gr, const asg_tensor *p) {
  for (int i = 0; i < gr->n_params; i++)
    if (gr->params && gr->params[i] == p) return true;
  return gr->prefix && p->name && strncmp(p->name, gr->prefix, strlen(gr->prefix)) == 0;
}

static void group_of(const asg_optim *o, const asg_tensor *p, double *lr_scale, double *wd) {
  for (int i = 0; i < o->n_groups; i++)
    if (in_group(&o->groups[i], p)) {
      *lr_scale = o->groups[i].lr_scale;
      *wd = o->groups[i].weight_decay;
      return;
    }
  *lr_scale = 1;
  *wd = o->no_decay_1d && p->shape.ndim <= 1 ? 0 : o->weight_decay;
}

bool asg__optim_needs_bias_correction(const asg_optim *o) {
  return o->kind == ASG_OPTIM_ADAM || o->kind == ASG_OPTIM_ADAMW || o->kind == ASG_OPTIM_LAMB;
}

bool asg__optim_needs_step(const asg_optim *o) {
  return asg__optim_needs_bias_correction(o) ||
         (o->kind == ASG_OPTIM_SGD && o->momentum != 0 && o->dampening != 0) ||
         (o->kind == ASG_OPTIM_ADAGRAD && o->lr_decay != 0);
}

static asg_tensor *sgd(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr, asg_tensor *lr,
                       asg_tensor *t) {
  const asg_optim *o = &b->o;
  asg_tensor *d = gr;
  if (o->momentum != 0) {
    asg_tensor *buf = asg__optim_param_state(b, p, "momentum", pv, 0);
    asg_tensor *gd = gr; /* first step: buf = g; then buf = m buf + (1 - dampening) g */
    if (o->dampening != 0)
      gd = asg_mul(
          gr,
          AS(asg_sub(K(1), asg_mul(K(o->dampening), asg_minimum(asg_add_scalar(t, -1), K(1)))), p));
    asg_tensor *nb = asg_add(asg_mul_scalar(buf, o->momentum), gd);
    asg__optim_update(b, buf, nb);
    d = o->nesterov ? asg_add(gr, asg_mul_scalar(nb, o->momentum)) : nb;
  }
  return asg_sub(pv, asg_mul(AS(lr, pv), d));
}

/* Adam's new moments m' (state "adam_m") and v' ("adam_v") of gradient gr,
 * assigned to their state (Adam, AdamW and LAMB share them). */
static void adam_moments(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr, asg_tensor **nm,
                         asg_tensor **nv) {
  asg_tensor *m = asg__optim_param_state(b, p, "adam_m", pv, 0);
  asg_tensor *v = asg__optim_param_state(b, p, "adam_v", pv, 0);
  *nm = asg__adam_moment(m, gr, b->o.beta1);
  *nv = asg__adam_moment2(v, gr, b->o.beta2);
  asg__optim_update(b, m, *nm);
  asg__optim_update(b, v, *nv);
}

/* three fused kernels (src/ops/op_optim.c), the same arithmetic as
 * m' = m b1 + g (1 - b1), v' = v b2 + g^2 (1 - b2),
 * p' = p (1 - lr wd) - (lr / bc1) m' / (sqrt(v') / sqrt(bc2) + eps)
 * with 1 - lr wd only for AdamW (Adam's L2 is in g); AMSGrad divides by
 * sqrt(max(vmax, v')) instead */
static asg_tensor *adam(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr, asg_tensor *lr,
                        double wd) {
  const asg_optim *o = &b->o;
  asg_tensor *nm, *nv;
  adam_moments(b, p, pv, gr, &nm, &nv);
  if (o->amsgrad) {
    asg_tensor *vmax = asg__optim_param_state(b, p, "adam_max_v", pv, 0);
    nv = asg_maximum(vmax, nv);
    asg__optim_update(b, vmax, nv);
  }
  return asg__adam_param(pv, nm, nv, lr, b->bc1, b->bc2, o->eps,
                         o->kind == ASG_OPTIM_ADAMW ? wd : 0);
}

static asg_tensor *rmsprop(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr,
                           asg_tensor *lr) {
  const asg_optim *o = &b->o;
  asg_tensor *sq = asg__optim_param_state(b, p, "square_avg", pv, 0);
  asg_tensor *nsq =
      asg_add(asg_mul_scalar(sq, o->alpha), asg_mul_scalar(asg_mul(gr, gr), 1 - o->alpha));
  asg__optim_update(b, sq, nsq);
  asg_tensor *var = nsq;
  if (o->centered) {
    asg_tensor *ga = asg__optim_param_state(b, p, "grad_avg", pv, 0);
    asg_tensor *nga = asg_add(asg_mul_scalar(ga, o->alpha), asg_mul_scalar(gr, 1 - o->alpha));
    asg__optim_update(b, ga, nga);
    var = asg_sub(nsq, asg_mul(nga, nga));
  }
  asg_tensor *d = asg_div(gr, asg_add_scalar(asg_sqrt(var), o->eps));
  if (o->momentum > 0) {
    asg_tensor *buf = asg__optim_param_state(b, p, "momentum", pv, 0);
    d = asg_add(asg_mul_scalar(buf, o->momentum), d);
    asg__optim_update(b, buf, d);
  }
  return asg_sub(pv, asg_mul(AS(lr, pv), d));
}

/* sum' = sum + g^2; p' = p - clr g / (sqrt(sum') + eps) with
 * clr = lr / (1 + (t - 1) lr_decay) */
static asg_tensor *adagrad(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr,
                           asg_tensor *lr, asg_tensor *t) {
  const asg_optim *o = &b->o;
  asg_tensor *sum = asg__optim_param_state(b, p, "adagrad_sum", pv, o->initial_accumulator_value);
  asg_tensor *ns = asg_add(sum, asg_mul(gr, gr));
  asg__optim_update(b, sum, ns);
  asg_tensor *clr = lr;
  if (o->lr_decay != 0)
    clr = asg_div(lr, asg_add_scalar(asg_mul_scalar(asg_add_scalar(t, -1), o->lr_decay), 1));
  asg_tensor *d = asg_div(gr, asg_add_scalar(asg_sqrt(ns), o->eps));
  return asg_sub(pv, asg_mul(AS(clr, pv), d));
}

/* p' = p (1 - lr wd) - lr sign(b1 m + (1 - b1) g); m' = b2 m + (1 - b2) g */
static asg_tensor *lion(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr, asg_tensor *lr,
                        double wd) {
  const asg_optim *o = &b->o;
  asg_tensor *m = asg__optim_param_state(b, p, "lion_m", pv, 0);
  asg_tensor *dir = asg_sign(asg__adam_moment(m, gr, o->beta1));
  asg__optim_update(b, m, asg__adam_moment(m, gr, o->beta2));
  asg_tensor *pd = pv;
  if (wd != 0) pd = asg_mul(pv, AS(asg_sub(K(1), asg_mul_scalar(lr, wd)), pv));
  return asg_sub(pd, asg_mul(AS(lr, pv), dir));
}

/* the squared L2 norm of x (with ZeRO-1 x is a shard: summed over the
 * ranks; the zero padding adds nothing) */
static asg_tensor *sq_norm(builder *b, asg_tensor *x) {
  asg_tensor *s = asg_sum(asg_mul(x, x), ASG_ALL_AXES, false);
  return b->zero ? asg_all_reduce(s, ASG_COMM_SUM) : s;
}

/* Adam's moments and bias corrections; r = m^ / (sqrt(v^) + eps) + wd p;
 * p' = p - lr trust r with trust = ||p|| / ||r||, 1 when either is 0 */
static asg_tensor *lamb(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr, asg_tensor *lr,
                        double wd) {
  const asg_optim *o = &b->o;
  asg_tensor *nm, *nv;
  adam_moments(b, p, pv, gr, &nm, &nv);
  asg_tensor *mh = asg_div(nm, AS(b->bc1, pv)), *vh = asg_div(nv, AS(b->bc2, pv));
  asg_tensor *r = asg_div(mh, asg_add_scalar(asg_sqrt(vh), o->eps));
  if (wd != 0) r = asg_add(r, asg_mul_scalar(pv, wd));
  asg_tensor *pn2 = sq_norm(b, pv), *rn2 = sq_norm(b, r);
  /* min(pn2, rn2) > 0: both nonzero (a product could underflow) */
  asg_tensor *ok = asg_gt(asg_minimum(pn2, rn2), asg_scalar(b->g, pv->dtype, 0));
  asg_tensor *trust = asg_where(ok, asg_sqrt(asg_div(pn2, rn2)), asg_scalar(b->g, pv->dtype, 1));
  return asg_sub(pv, asg_mul(asg_mul(AS(lr, pv), trust), r));
}

asg_tensor *asg__optim_step_param(builder *b, asg_tensor *p, asg_tensor *pv, asg_tensor *gr,
                                  asg_tensor *lr, asg_tensor *t) {
  const asg_optim *o = &b->o;
  double lr_scale, wd;
  group_of(o, p, &lr_scale, &wd);
  asg_tensor *lr_s = lr_scale == 1 ? lr : asg_mul(lr, K(lr_scale));
  /* L2 decay in the gradient; AdamW and Lion decay p, LAMB the update */
  const bool decoupled =
      o->kind == ASG_OPTIM_ADAMW || o->kind == ASG_OPTIM_LION || o->kind == ASG_OPTIM_LAMB;
  if (wd != 0 && !decoupled) gr = asg_add(gr, asg_mul_scalar(pv, wd));
  switch (o->kind) {
  case ASG_OPTIM_SGD: return sgd(b, p, pv, gr, lr_s, t);
  case ASG_OPTIM_ADAM:
  case ASG_OPTIM_ADAMW: return adam(b, p, pv, gr, lr_s, wd);
  case ASG_OPTIM_RMSPROP: return rmsprop(b, p, pv, gr, lr_s);
  case ASG_OPTIM_ADAGRAD: return adagrad(b, p, pv, gr, lr_s, t);
  case ASG_OPTIM_LION: return lion(b, p, pv, gr, lr_s, wd);
  case ASG_OPTIM_LAMB: return lamb(b, p, pv, gr, lr_s, wd);
  }
  return NULL;
}
