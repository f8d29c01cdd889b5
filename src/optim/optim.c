/* Optimizers built as graph updates (SGD with momentum/Nesterov, Adam,
 * AdamW). State variables are frozen so they are never trained themselves. */
#include <stdio.h>
#include <stdlib.h>

#include "core/internal.h"

asg_optim asg_sgd(double lr, double momentum) {
  return (asg_optim){.kind = ASG_OPTIM_SGD, .lr = lr, .momentum = momentum};
}
asg_optim asg_adam(double lr) {
  return (asg_optim){.kind = ASG_OPTIM_ADAM, .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}
asg_optim asg_adamw(double lr, double wd) {
  asg_optim o = asg_adam(lr);
  o.kind = ASG_OPTIM_ADAMW;
  o.weight_decay = wd;
  return o;
}

static asg_tensor *state(asg_graph *g, asg_tensor *p, const char *suffix) {
  char name[512];
  snprintf(name, sizeof name, "%s.%s", p->name, suffix);
  asg_tensor *v = asg_variable(g, name, p->dtype, p->shape, asg_init_zeros());
  asg_variable_set_trainable(v, false);
  return v;
}

static asg_tensor *scalar_var(asg_graph *g, const char *name, double v) {
  asg_tensor *t = asg_variable(g, name, ASG_F32, ASG_SCALAR, asg_init_constant(v));
  asg_variable_set_trainable(t, false);
  return t;
}

asg_status asg_optim_build(asg_tensor *loss, asg_optim o, int n, asg_tensor *const *params,
                           asg_tensor **updates, int max, int *n_updates) {
  asg_graph *g = asg__graph_of("optim", 1, &loss);
  if (!g) return asg__error(ASG_ERR_INVALID, "optim: loss is NULL or its graph has an error");
  if (!updates || !n_updates) return asg__error(ASG_ERR_INVALID, "optim: NULL output arguments");
  asg_tensor **ps = NULL;
  if (n == 0) { /* every trainable variable that exists now */
    ps = malloc(sizeof *ps * (size_t)(g->n_nodes + 1));
    if (!ps) return asg__error(ASG_ERR_OOM, "optim: out of memory");
    for (int i = 0; i < g->n_nodes; i++)
      if (asg_variable_is_trainable(g->nodes[i])) ps[n++] = g->nodes[i];
    params = ps;
  }
  asg_tensor **grads = malloc(sizeof *grads * (size_t)(n + 1));
  asg_status st = grads ? ASG_OK : asg__error(ASG_ERR_OOM, "optim: out of memory");
  int k = 0;
  if (!st && n > max) st = asg__error(ASG_ERR_INVALID, "optim: %d updates do not fit in %d", n, max);
  if (!st) st = asg_grad(loss, n, params, grads);
  if (!st) {
    asg_tensor *lr = scalar_var(g, "optim/lr", o.lr), *t = NULL, *bc1 = NULL, *bc2 = NULL;
    if (o.kind != ASG_OPTIM_SGD) { /* step count and bias corrections 1 - beta^t */
      asg_tensor *step = scalar_var(g, "optim/step", 0);
      t = asg_add_scalar(step, 1);
      updates[k++] = asg_assign(step, t);
      bc1 = asg_sub(asg_scalar(g, ASG_F32, 1), asg_pow(asg_scalar(g, ASG_F32, o.beta1), t));
      bc2 = asg_sub(asg_scalar(g, ASG_F32, 1), asg_pow(asg_scalar(g, ASG_F32, o.beta2), t));
      if (n + 1 > max) st = asg__error(ASG_ERR_INVALID, "optim: %d updates do not fit in %d", n + 1, max);
    }
    for (int i = 0; i < n && !st; i++) {
      asg_tensor *p = params[i], *gr = grads[i];
      asg_tensor *lr_p = asg_cast(lr, p->dtype);
      if (o.weight_decay != 0 && o.kind != ASG_OPTIM_ADAMW)
        gr = asg_add(gr, asg_mul_scalar(p, o.weight_decay));
      asg_tensor *delta;
      if (o.kind == ASG_OPTIM_SGD) {
        delta = gr;
        if (o.momentum != 0) {
          asg_tensor *buf = state(g, p, "momentum");
          asg_tensor *nb = asg_add(asg_mul_scalar(buf, o.momentum), gr);
          updates[k++] = asg_assign(buf, nb);
          delta = o.nesterov ? asg_add(gr, asg_mul_scalar(nb, o.momentum)) : nb;
          if (k + n - i > max) st = asg__error(ASG_ERR_INVALID, "optim: updates do not fit in %d", max);
        }
      } else {
        asg_tensor *m = state(g, p, "adam_m"), *v = state(g, p, "adam_v");
        asg_tensor *nm = asg_add(asg_mul_scalar(m, o.beta1), asg_mul_scalar(gr, 1 - o.beta1));
        asg_tensor *nv = asg_add(asg_mul_scalar(v, o.beta2), asg_mul_scalar(asg_mul(gr, gr), 1 - o.beta2));
        updates[k++] = asg_assign(m, nm);
        updates[k++] = asg_assign(v, nv);
        asg_tensor *mhat = asg_div(nm, asg_cast(bc1, p->dtype));
        asg_tensor *vhat = asg_div(nv, asg_cast(bc2, p->dtype));
        delta = asg_div(mhat, asg_add_scalar(asg_sqrt(vhat), o.eps));
        if (o.kind == ASG_OPTIM_ADAMW && o.weight_decay != 0)
          delta = asg_add(delta, asg_mul_scalar(p, o.weight_decay));
        if (k + n - i > max) st = asg__error(ASG_ERR_INVALID, "optim: updates do not fit in %d", max);
      }
      if (!st) updates[k++] = asg_assign(p, asg_sub(p, asg_mul(lr_p, delta)));
    }
  }
  if (!st && g->status) st = asg__error(g->status, "optim: %s", g->err);
  *n_updates = st ? 0 : k;
  free(ps);
  free(grads);
  return st;
}

asg_program *asg_compile_train(asg_graph *g, asg_tensor *loss, asg_optim opt, int n_extra,
                               asg_tensor *const *extra, const asg_compile_opts *opts) {
  if (!g || !loss) {
    asg__error(ASG_ERR_INVALID, "asg_compile_train: NULL graph or loss");
    return NULL;
  }
  int cap = 3 * g->n_nodes + 8 + g->n_updates; /* <= 3 updates per variable, the step */
  asg_tensor **outs = malloc(sizeof *outs * (size_t)(cap + n_extra + 1));
  if (!outs) {
    asg__error(ASG_ERR_OOM, "asg_compile_train: out of memory");
    return NULL;
  }
  outs[0] = loss;
  for (int i = 0; i < n_extra; i++) outs[1 + i] = extra[i];
  int nu = 0;
  asg_program *p = NULL;
  if (asg_optim_build(loss, opt, 0, NULL, outs + 1 + n_extra, cap, &nu) == ASG_OK) {
    for (int i = 0; i < g->n_updates; i++) outs[1 + n_extra + nu++] = g->updates[i];
    p = asg_compile(g, 1 + n_extra + nu, outs, opts);
  }
  free(outs);
  return p;
}

asg_status asg_optim_set_lr(asg_program *p, double lr) {
  float v = (float)lr;
  return asg_program_set_variable(p, "optim/lr", &v, sizeof v);
}
