/* Optimizers: a tiny least-squares model trained a few steps by a compiled
 * train program; after every step its parameters are compared with a
 * float64 host implementation of PyTorch's update formulas written here
 * (SGD/Adam/AdamW with and without AMSGrad/RMSprop/Adagrad, and Lion's and
 * LAMB's papers; clipping, parameter groups, lr changes between runs). Gradient accumulation is
 * checked against one big batch; schedules against closed forms. Tolerances: F64 programs 1e-12
 * relative, F32 programs 1e-6 relative + 1e-7 absolute (parameters are O(1)). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define NB 6 /* batch rows */
#define DI 2
#define DO 3
#define NW (DI * DO)
#define STEPS 6

static double X[NB * DI], Y[NB * DO], W0[NW], B0[DO];

typedef struct model {
  asg_graph *g;
  asg_tensor *w, *b, *loss;
} model;

/* loss = mean((x W + b - y)^2) over a batch of nb rows */
static model build(asg_dtype dt, int nb) {
  model m;
  m.g = asg_graph_new();
  float wf[NW], bf[DO];
  for (int i = 0; i < NW; i++)
    wf[i] = (float)W0[i];
  for (int i = 0; i < DO; i++)
    bf[i] = (float)B0[i];
  const void *wd = dt == ASG_F64 ? (const void *)W0 : (const void *)wf;
  const void *bd = dt == ASG_F64 ? (const void *)B0 : (const void *)bf;
  asg_tensor *x = asg_input(m.g, "x", dt, ASG_SHAPE(nb, DI));
  asg_tensor *y = asg_input(m.g, "y", dt, ASG_SHAPE(nb, DO));
  m.w = asg_variable(m.g, "w", dt, ASG_SHAPE(DI, DO), asg_init_data(wd));
  m.b = asg_variable(m.g, "b", dt, ASG_SHAPE(DO), asg_init_data(bd));
  asg_tensor *e = asg_sub(asg_add(asg_matmul(x, m.w), m.b), y);
  m.loss = asg_mean(asg_mul(e, e), ASG_ALL_AXES, false);
  return m;
}

static void feed(asg_program *p, asg_dtype dt, int row0, int nb) {
  double *xd = X + row0 * DI, *yd = Y + row0 * DO;
  if (dt == ASG_F64) {
    asg_program_feed(p, "x", xd, sizeof(double) * (size_t)(nb * DI));
    asg_program_feed(p, "y", yd, sizeof(double) * (size_t)(nb * DO));
    return;
  }
  float xf[NB * DI], yf[NB * DO];
  for (int i = 0; i < nb * DI; i++)
    xf[i] = (float)xd[i];
  for (int i = 0; i < nb * DO; i++)
    yf[i] = (float)yd[i];
  asg_program_feed(p, "x", xf, sizeof(float) * (size_t)(nb * DI));
  asg_program_feed(p, "y", yf, sizeof(float) * (size_t)(nb * DO));
}

static void get(asg_program *p, asg_dtype dt, const char *name, double *out, int n) {
  if (dt == ASG_F64) {
    asg_program_get_variable(p, name, out, sizeof(double) * (size_t)n);
    return;
  }
  float f[NW];
  asg_program_get_variable(p, name, f, sizeof(float) * (size_t)n);
  for (int i = 0; i < n; i++)
    out[i] = f[i];
}

/* ---- float64 reference (PyTorch formulas) ---- */
typedef struct ref_param {
  int n;
  double p[NW], mom[NW], m[NW], v[NW], sq[NW], ga[NW], vmax[NW], acc[NW];
  double lr_scale, wd;
} ref_param;

typedef struct ref {
  asg_optim o;
  ref_param w, b;
  int step;
} ref;

static void ref_grads(const ref *r, double *gw, double *gb) {
  memset(gw, 0, sizeof(double) * NW);
  memset(gb, 0, sizeof(double) * DO);
  for (int i = 0; i < NB; i++)
    for (int j = 0; j < DO; j++) {
      double z = r->b.p[j];
      for (int k = 0; k < DI; k++)
        z += X[i * DI + k] * r->w.p[k * DO + j];
      double d = 2 * (z - Y[i * DO + j]) / (NB * DO);
      gb[j] += d;
      for (int k = 0; k < DI; k++)
        gw[k * DO + j] += X[i * DI + k] * d;
    }
}

/* LAMB (You et al. 2020): Adam's bias-corrected moments, r = m^ / (sqrt(v^)
 * + eps) + wd p, p -= lr trust r with trust = ||p|| / ||r|| (1 if either
 * norm is 0), norms over the whole parameter. */
static void ref_lamb_step(const asg_optim *o, ref_param *q, const double *g, double lr, int step) {
  double r[NW], pn = 0, rn = 0;
  const double bc1 = 1 - pow(o->beta1, step), bc2 = 1 - pow(o->beta2, step);
  for (int i = 0; i < q->n; i++) {
    q->m[i] = o->beta1 * q->m[i] + (1 - o->beta1) * g[i];
    q->v[i] = o->beta2 * q->v[i] + (1 - o->beta2) * g[i] * g[i];
    r[i] = q->m[i] / bc1 / (sqrt(q->v[i] / bc2) + o->eps) + q->wd * q->p[i];
    pn += q->p[i] * q->p[i], rn += r[i] * r[i];
  }
  const double trust = pn > 0 && rn > 0 ? sqrt(pn) / sqrt(rn) : 1;
  for (int i = 0; i < q->n; i++)
    q->p[i] -= lr * trust * r[i];
}

static double sgn(double x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }

static void ref_param_step(const asg_optim *o, ref_param *q, double *g, double lr, int step) {
  double wd = q->wd;
  lr *= q->lr_scale;
  if (o->kind == ASG_OPTIM_LAMB) {
    ref_lamb_step(o, q, g, lr, step);
    return;
  }
  for (int i = 0; i < q->n; i++) {
    double gi = g[i], *p = &q->p[i];
    if (wd != 0 && o->kind != ASG_OPTIM_ADAMW && o->kind != ASG_OPTIM_LION) gi += wd * *p;
    if (o->kind == ASG_OPTIM_SGD) {
      if (o->momentum != 0) {
        q->mom[i] = step == 1 ? gi : o->momentum * q->mom[i] + (1 - o->dampening) * gi;
        gi = o->nesterov ? gi + o->momentum * q->mom[i] : q->mom[i];
      }
      *p -= lr * gi;
    } else if (o->kind == ASG_OPTIM_RMSPROP) {
      q->sq[i] = o->alpha * q->sq[i] + (1 - o->alpha) * gi * gi;
      double avg;
      if (o->centered) {
        q->ga[i] = o->alpha * q->ga[i] + (1 - o->alpha) * gi;
        avg = sqrt(q->sq[i] - q->ga[i] * q->ga[i]) + o->eps;
      } else {
        avg = sqrt(q->sq[i]) + o->eps;
      }
      if (o->momentum > 0) {
        q->mom[i] = o->momentum * q->mom[i] + gi / avg;
        *p -= lr * q->mom[i];
      } else {
        *p -= lr * gi / avg;
      }
    } else if (o->kind == ASG_OPTIM_ADAGRAD) { /* torch.optim.Adagrad */
      if (step == 1) q->acc[i] = o->initial_accumulator_value;
      double clr = lr / (1 + (step - 1) * o->lr_decay);
      q->acc[i] += gi * gi;
      *p -= clr * gi / (sqrt(q->acc[i]) + o->eps);
    } else if (o->kind == ASG_OPTIM_LION) { /* Chen et al. 2023 / lion-pytorch */
      *p *= 1 - lr * wd;
      *p -= lr * sgn(o->beta1 * q->m[i] + (1 - o->beta1) * gi);
      q->m[i] = o->beta2 * q->m[i] + (1 - o->beta2) * gi;
    } else {
      if (o->kind == ASG_OPTIM_ADAMW) *p *= 1 - lr * wd;
      q->m[i] = o->beta1 * q->m[i] + (1 - o->beta1) * gi;
      q->v[i] = o->beta2 * q->v[i] + (1 - o->beta2) * gi * gi;
      double bc1 = 1 - pow(o->beta1, step), bc2 = 1 - pow(o->beta2, step);
      if (o->amsgrad) q->vmax[i] = fmax(q->vmax[i], q->v[i]); /* max_exp_avg_sq */
      double denom = sqrt(o->amsgrad ? q->vmax[i] : q->v[i]) / sqrt(bc2) + o->eps;
      *p -= lr / bc1 * q->m[i] / denom;
    }
  }
}

static void ref_step(ref *r, double lr) {
  double gw[NW], gb[DO];
  ref_grads(r, gw, gb);
  const asg_optim *o = &r->o;
  if (o->clip_value > 0) {
    for (int i = 0; i < NW; i++)
      gw[i] = fmin(fmax(gw[i], -o->clip_value), o->clip_value);
    for (int i = 0; i < DO; i++)
      gb[i] = fmin(fmax(gb[i], -o->clip_value), o->clip_value);
  }
  if (o->clip_norm > 0) { /* torch.nn.utils.clip_grad_norm_ */
    double s = 0;
    for (int i = 0; i < NW; i++)
      s += gw[i] * gw[i];
    for (int i = 0; i < DO; i++)
      s += gb[i] * gb[i];
    double coef = o->clip_norm / (sqrt(s) + 1e-6);
    if (coef > 1) coef = 1;
    for (int i = 0; i < NW; i++)
      gw[i] *= coef;
    for (int i = 0; i < DO; i++)
      gb[i] *= coef;
  }
  r->step++;
  ref_param_step(o, &r->w, gw, lr, r->step);
  ref_param_step(o, &r->b, gb, lr, r->step);
}

typedef struct cfg {
  const char *name;
  asg_optim o;
  /* group for b (lr scale, wd) when use_group */
  bool use_group;
  double b_lr_scale, b_wd;
} cfg;

static void run_cfg(const cfg *c, asg_dtype dt) {
  model m = build(dt, NB);
  asg_optim o = c->o;
  asg_param_group grp = {
      .n_params = 1, .params = &m.b, .lr_scale = c->b_lr_scale, .weight_decay = c->b_wd};
  if (c->use_group) o.n_groups = 1, o.groups = &grp;
  asg_program *p = asg_compile_train(m.g, m.loss, o, 0, NULL, NULL);
  TU_CHECK(p != NULL, "%s: compile: %s", c->name, asg_last_error());
  if (!p) {
    asg_graph_free(m.g);
    return;
  }
  ref r = {.o = c->o,
           .w = {.n = NW, .lr_scale = 1, .wd = c->o.weight_decay},
           .b = {.n = DO, .lr_scale = 1, .wd = c->o.weight_decay}};
  memcpy(r.w.p, W0, sizeof W0);
  memcpy(r.b.p, B0, sizeof B0);
  if (c->o.no_decay_1d) r.b.wd = 0;
  if (c->use_group) r.b.lr_scale = c->b_lr_scale, r.b.wd = c->b_wd;
  double tol = dt == ASG_F64 ? 1e-12 : 1e-6, atol = dt == ASG_F64 ? 1e-14 : 1e-7;
  double lr = c->o.lr;
  feed(p, dt, 0, NB);
  int ok = 1;
  for (int s = 0; s < STEPS && ok; s++) {
    if (s == 3) { /* a new lr takes effect at the next run, same program */
      lr *= 0.3;
      TU_CHECK(asg_optim_set_lr(p, lr) == ASG_OK, "%s: set_lr: %s", c->name, asg_last_error());
      TU_CHECK(fabs(asg_optim_get_lr(p) - lr) <= 1e-7 * lr, "%s: get_lr", c->name);
    }
    TU_CHECK(asg_program_run(p) == ASG_OK, "%s: run: %s", c->name, asg_last_error());
    ref_step(&r, lr);
    double w[NW], b[DO];
    get(p, dt, "w", w, NW);
    get(p, dt, "b", b, DO);
    char what[96];
    snprintf(what, sizeof what, "%s %s step %d w", c->name, asg_dtype_name(dt), s + 1);
    ok = tu_close(what, w, r.w.p, NW, atol, tol);
    snprintf(what, sizeof what, "%s %s step %d b", c->name, asg_dtype_name(dt), s + 1);
    ok = ok && tu_close(what, b, r.b.p, DO, atol, tol);
  }
  TU_CHECK(ok, "%s %s: parameters follow the reference", c->name, asg_dtype_name(dt));
  /* the update really moved the parameters */
  TU_CHECK(fabs(r.w.p[0] - W0[0]) > 1e-4, "%s: parameters moved", c->name);
  asg_program_free(p);
  asg_graph_free(m.g);
}

static void test_optimizers(void) {
  asg_optim sgd_m = asg_sgd(0.1, 0.9);
  asg_optim sgd_d = asg_sgd(0.1, 0.9);
  sgd_d.dampening = 0.3, sgd_d.weight_decay = 0.01;
  asg_optim sgd_n = asg_sgd(0.05, 0.9);
  sgd_n.nesterov = true, sgd_n.weight_decay = 0.05;
  asg_optim adam_wd = asg_adam(0.02);
  adam_wd.weight_decay = 0.1;
  asg_optim adam_b = asg_adam(0.01);
  adam_b.beta1 = 0.5, adam_b.beta2 = 0.9, adam_b.eps = 1e-3;
  asg_optim rms_c = asg_rmsprop(0.01);
  rms_c.centered = true, rms_c.momentum = 0.5, rms_c.weight_decay = 0.01;
  asg_optim rms_m = asg_rmsprop(0.01);
  rms_m.alpha = 0.9, rms_m.momentum = 0.8;
  asg_optim adam_clip = asg_adam(0.05);
  adam_clip.clip_norm = 0.5;
  asg_optim sgd_clipv = asg_sgd(0.1, 0.5);
  sgd_clipv.clip_value = 0.05;
  asg_optim sgd_clipn = asg_sgd(0.1, 0);
  sgd_clipn.clip_norm = 1e3; /* above the norm: no scaling */
  asg_optim adamw_nd = asg_adamw(0.02, 0.2);
  adamw_nd.no_decay_1d = true;
  asg_optim sgd_grp = asg_sgd(0.1, 0.9);
  sgd_grp.weight_decay = 0.1;
  asg_optim adamw_grp = asg_adamw(0.02, 0.2);
  asg_optim ams = asg_adam(0.02), amsw = asg_adamw(0.02, 0.2);
  ams.amsgrad = true, ams.weight_decay = 0.1, ams.beta2 = 0.9;
  amsw.amsgrad = true, amsw.beta2 = 0.6; /* v falls within 6 steps: the max matters */
  asg_optim ada = asg_adagrad(0.1);
  ada.lr_decay = 0.2, ada.initial_accumulator_value = 0.1, ada.weight_decay = 0.05;
  ada.eps = 1e-4;
  asg_optim lion_b = asg_lion(0.01, 0.5);
  lion_b.beta1 = 0.8, lion_b.beta2 = 0.95;
  asg_optim lion_o = asg_lion(0.4, 0.1); /* overshoots: m and g disagree, beta1 matters */
  lion_o.beta1 = 0.3;
  asg_optim lamb_c = asg_lamb(0.02, 0.1);
  lamb_c.clip_norm = 0.5, lamb_c.eps = 1e-4;
  asg_optim lamb_nd = asg_lamb(0.02, 0.1);
  lamb_nd.no_decay_1d = true;
  const cfg cfgs[] = {
      {"adam_amsgrad_wd", ams, false, 0, 0},
      {"adamw_amsgrad_group", amsw, true, 2.0, 0.05},
      {"adagrad", asg_adagrad(0.1), false, 0, 0},
      {"adagrad_decay_init_wd", ada, false, 0, 0},
      {"adagrad_group", ada, true, 0.5, 0.2},
      {"lion", asg_lion(0.01, 0), false, 0, 0},
      {"lion_betas_wd", lion_b, false, 0, 0},
      {"lion_group", lion_b, true, 2.0, 0},
      {"lion_oscillating", lion_o, false, 0, 0},
      {"lamb", asg_lamb(0.02, 0), false, 0, 0},
      {"lamb_wd_clip_eps", lamb_c, false, 0, 0},
      {"lamb_no_decay_1d", lamb_nd, false, 0, 0},
      {"lamb_group", lamb_c, true, 3.0, 0.01},
      {"sgd", asg_sgd(0.1, 0), false, 0, 0},
      {"sgd_momentum", sgd_m, false, 0, 0},
      {"sgd_dampening_wd", sgd_d, false, 0, 0},
      {"sgd_nesterov_wd", sgd_n, false, 0, 0},
      {"adam", asg_adam(0.01), false, 0, 0},
      {"adam_wd", adam_wd, false, 0, 0},
      {"adam_betas_eps", adam_b, false, 0, 0},
      {"adamw", asg_adamw(0.02, 0.2), false, 0, 0},
      {"rmsprop", asg_rmsprop(0.01), false, 0, 0},
      {"rmsprop_centered_momentum_wd", rms_c, false, 0, 0},
      {"rmsprop_alpha_momentum", rms_m, false, 0, 0},
      {"adam_clip_norm", adam_clip, false, 0, 0},
      {"sgd_clip_value", sgd_clipv, false, 0, 0},
      {"sgd_clip_norm_inactive", sgd_clipn, false, 0, 0},
      {"adamw_no_decay_1d", adamw_nd, false, 0, 0},
      {"sgd_group", sgd_grp, true, 0.5, 0},
      {"adamw_group", adamw_grp, true, 3.0, 0.05},
  };
  for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
    run_cfg(&cfgs[i], ASG_F64);
    run_cfg(&cfgs[i], ASG_F32);
  }
}

/* Clip-norm actually clips here: check the first SGD step directly,
 * p1 = p0 - lr * g * max_norm / (||g|| + 1e-6). */
static void test_clip_norm_active(void) {
  model m = build(ASG_F64, NB);
  asg_optim o = asg_sgd(1.0, 0);
  o.clip_norm = 0.01;
  asg_program *p = asg_compile_train(m.g, m.loss, o, 0, NULL, NULL);
  ref r = {.o = asg_sgd(1.0, 0), .w = {.n = NW}, .b = {.n = DO}};
  memcpy(r.w.p, W0, sizeof W0);
  memcpy(r.b.p, B0, sizeof B0);
  double gw[NW], gb[DO], s = 0, w[NW];
  ref_grads(&r, gw, gb);
  for (int i = 0; i < NW; i++)
    s += gw[i] * gw[i];
  for (int i = 0; i < DO; i++)
    s += gb[i] * gb[i];
  TU_CHECK(sqrt(s) > 0.1, "test premise: gradient norm %g well above 0.01", sqrt(s));
  double want[NW];
  for (int i = 0; i < NW; i++)
    want[i] = W0[i] - gw[i] * 0.01 / (sqrt(s) + 1e-6);
  feed(p, ASG_F64, 0, NB);
  asg_program_run(p);
  get(p, ASG_F64, "w", w, NW);
  TU_CHECK(tu_close("clip_norm active", w, want, NW, 1e-14, 1e-12), "clip by norm: first step");
  asg_optim_stats st;
  TU_CHECK(asg_optim_get_stats(p, &st) == ASG_OK && fabs(st.grad_norm - sqrt(s)) < 1e-12,
           "grad_norm %g, want the unclipped norm %g", st.grad_norm, sqrt(s));
  asg_program_free(p);
  asg_graph_free(m.g);
  /* track_grad_norm without clipping: the norm of the step's gradients; NaN
   * when not asked for */
  m = build(ASG_F64, NB);
  o = asg_sgd(1.0, 0);
  p = asg_compile_train(m.g, m.loss, o, 0, NULL, NULL);
  TU_CHECK(asg_optim_get_stats(p, &st) == ASG_OK && isnan(st.grad_norm), "untracked norm %g",
           st.grad_norm);
  asg_program_free(p);
  o.track_grad_norm = true;
  p = asg_compile_train(m.g, m.loss, o, 0, NULL, NULL);
  TU_CHECK(asg_optim_get_stats(p, &st) == ASG_OK && st.grad_norm == 0, "norm before a step %g",
           st.grad_norm);
  feed(p, ASG_F64, 0, NB);
  asg_program_run(p);
  TU_CHECK(asg_optim_get_stats(p, &st) == ASG_OK && fabs(st.grad_norm - sqrt(s)) < 1e-12,
           "tracked grad_norm %g, want %g", st.grad_norm, sqrt(s));
  asg_program_free(p);
  asg_graph_free(m.g);
}

/* k runs over k micro-batches == 1 run over their concatenation. */
static void test_accumulation(asg_optim o, const char *name) {
  const int k = 3, b = NB / 3;
  model big = build(ASG_F32, NB), small = build(ASG_F32, b);
  asg_program *pb = asg_compile_train(big.g, big.loss, o, 0, NULL, NULL);
  o.accum_steps = k;
  asg_program *ps = asg_compile_train(small.g, small.loss, o, 0, NULL, NULL);
  TU_CHECK(pb && ps, "%s: compile: %s", name, asg_last_error());
  if (!pb || !ps) return;
  feed(pb, ASG_F32, 0, NB);
  int ok = 1;
  for (int step = 0; step < 3 && ok; step++) {
    double before[NW], w[NW], wb[NW], bs[DO], bb[DO];
    get(ps, ASG_F32, "w", before, NW);
    for (int j = 0; j < k; j++) {
      feed(ps, ASG_F32, j * b, b);
      asg_program_run(ps);
      get(ps, ASG_F32, "w", w, NW);
      if (j < k - 1) /* micro-steps leave the parameters alone */
        ok = ok && tu_close("accum: between steps", w, before, NW, 0, 0);
    }
    asg_program_run(pb);
    get(pb, ASG_F32, "w", wb, NW);
    get(pb, ASG_F32, "b", bb, DO);
    get(ps, ASG_F32, "b", bs, DO);
    ok = ok && tu_close("accum w", w, wb, NW, 1e-6, 1e-6) &&
         tu_close("accum b", bs, bb, DO, 1e-6, 1e-6);
    ok = ok && fabs(w[0] - before[0]) > 1e-5;
  }
  TU_CHECK(ok, "%s: accumulation over %d micro-batches equals the big batch", name, k);
  asg_program_free(pb);
  asg_program_free(ps);
  asg_graph_free(big.g);
  asg_graph_free(small.g);
}

/* Dynamic loss scaling: with a power-of-two scale and finite gradients the
 * steps equal unscaled training bit for bit (scaling by 2^k is exact); a run
 * with an inf in its gradients changes no parameter or state and halves the
 * scale; after scale_window finite runs the scale doubles. */
static void test_loss_scaling(void) {
  asg_optim o = asg_adamw(0.01, 0.1);
  model plain = build(ASG_F32, NB), sc = build(ASG_F32, NB);
  asg_program *pp = asg_compile_train(plain.g, plain.loss, o, 0, NULL, NULL);
  o.loss_scale = 1024;
  o.scale_window = 2;
  asg_program *ps = asg_compile_train(sc.g, sc.loss, o, 0, NULL, NULL);
  TU_CHECK(pp && ps, "loss scaling: compile: %s", asg_last_error());
  if (!pp || !ps) return;
  feed(pp, ASG_F32, 0, NB);
  feed(ps, ASG_F32, 0, NB);
  double wp[NW], ws[NW], w0[NW], s = 0, step = 0;
  float fs = 0, fstep = 0, fgood = 0;
  int ok = 1;
  for (int r = 0; r < 3; r++) {
    asg_program_run(pp);
    asg_program_run(ps);
    get(pp, ASG_F32, "w", wp, NW);
    get(ps, ASG_F32, "w", ws, NW);
    ok = ok && tu_close("loss-scaled w", ws, wp, NW, 0, 0);
  }
  TU_CHECK(ok, "loss scale 1024: 3 Adam steps identical to unscaled training");
  asg_program_get_variable(ps, "optim/loss_scale", &fs, sizeof fs);
  s = fs;
  TU_CHECK(s == 2048, "loss scale doubled after scale_window = 2 finite steps (got %g)", s);
  /* an inf in the input: inf gradients */
  float xf[NB * DI], yf[NB * DO];
  for (int i = 0; i < NB * DI; i++)
    xf[i] = (float)X[i];
  for (int i = 0; i < NB * DO; i++)
    yf[i] = (float)Y[i];
  xf[3] = INFINITY;
  asg_program_feed(ps, "x", xf, sizeof xf);
  asg_program_feed(ps, "y", yf, sizeof yf);
  get(ps, ASG_F32, "w", w0, NW);
  asg_program_get_variable(ps, "optim/step", &fstep, sizeof fstep);
  step = fstep;
  asg_program_run(ps);
  get(ps, ASG_F32, "w", ws, NW);
  asg_program_get_variable(ps, "optim/loss_scale", &fs, sizeof fs);
  asg_program_get_variable(ps, "optim/good_steps", &fgood, sizeof fgood);
  float fstep2 = 0;
  asg_program_get_variable(ps, "optim/step", &fstep2, sizeof fstep2);
  TU_CHECK(tu_close("skipped step", ws, w0, NW, 0, 0) && fstep2 == step && fs == 1024 && fgood == 0,
           "non-finite gradients: parameters and step count kept (%g -> %g), scale halved to %g",
           step, (double)fstep2, (double)fs);
  /* finite again: training resumes */
  feed(ps, ASG_F32, 0, NB);
  asg_program_run(ps);
  get(ps, ASG_F32, "w", ws, NW);
  TU_CHECK(fabs(ws[0] - w0[0]) > 1e-6, "finite gradients after a skipped step: training resumes");
  o.accum_steps = 2;
  model bad = build(ASG_F32, NB);
  asg_program *pb = asg_compile_train(bad.g, bad.loss, o, 0, NULL, NULL);
  TU_CHECK(!pb && strstr(asg_last_error(), "loss_scale"),
           "loss_scale with accum_steps > 1 is refused: %s", asg_last_error());
  asg_program_free(pb);
  asg_program_free(pp);
  asg_program_free(ps);
  asg_graph_free(plain.g);
  asg_graph_free(sc.g);
  asg_graph_free(bad.g);
}

/* The fused Adam/AdamW update ops give bit-identical parameters to the same
 * step written with separate graph ops in the order optim.c used before it
 * fused them (one rounding per op): b gets its own group (lr scale, wd). */
static asg_tensor *k_(asg_graph *g, asg_dtype dt, double v) { return asg_scalar(g, dt, v); }

static void test_fused_matches_ops(asg_optim o, const char *name, asg_dtype dt) {
  model fa = build(dt, NB), sep = build(dt, NB);
  asg_param_group grp = {.n_params = 1, .params = &fa.b, .lr_scale = 3.0, .weight_decay = 0.05};
  o.n_groups = 1, o.groups = &grp;
  asg_program *pa = asg_compile_train(fa.g, fa.loss, o, 0, NULL, NULL);
  /* the same step by hand */
  asg_graph *g = sep.g;
  asg_tensor *params[2] = {sep.w, sep.b}, *grads[2], *outs[16];
  int n_out = 0;
  asg_status st = asg_grad(sep.loss, 2, params, grads);
  outs[n_out++] = sep.loss;
  asg_tensor *lr = asg_variable(g, "lr", dt, ASG_SCALAR, asg_init_constant(o.lr));
  asg_tensor *c1 = asg_variable(g, "c1", dt, ASG_SCALAR, asg_init_zeros());
  asg_tensor *c2 = asg_variable(g, "c2", dt, ASG_SCALAR, asg_init_zeros());
  asg_tensor *bc1 = asg_add_scalar(asg_mul_scalar(c1, o.beta1), 1 - o.beta1);
  asg_tensor *bc2 = asg_add_scalar(asg_mul_scalar(c2, o.beta2), 1 - o.beta2);
  outs[n_out++] = asg_assign(c1, bc1);
  outs[n_out++] = asg_assign(c2, bc2);
  for (int i = 0; i < 2; i++) {
    asg_tensor *p = params[i], *gr = grads[i];
    double wd = i == 1 ? grp.weight_decay : o.weight_decay;
    asg_tensor *lr_s = i == 1 ? asg_mul(lr, k_(g, dt, grp.lr_scale)) : lr;
    char nm_m[16], nm_v[16];
    snprintf(nm_m, sizeof nm_m, "m%d", i);
    snprintf(nm_v, sizeof nm_v, "v%d", i);
    asg_tensor *m = asg_variable(g, nm_m, dt, asg_tensor_shape(p), asg_init_zeros());
    asg_tensor *v = asg_variable(g, nm_v, dt, asg_tensor_shape(p), asg_init_zeros());
    asg_variable_set_trainable(m, false);
    asg_variable_set_trainable(v, false);
    if (wd != 0 && o.kind != ASG_OPTIM_ADAMW) gr = asg_add(gr, asg_mul_scalar(p, wd));
    asg_tensor *pd = p;
    if (o.kind == ASG_OPTIM_ADAMW && wd != 0)
      pd = asg_mul(p, asg_sub(k_(g, dt, 1), asg_mul(lr_s, k_(g, dt, wd))));
    asg_tensor *nm = asg_add(asg_mul_scalar(m, o.beta1), asg_mul_scalar(gr, 1 - o.beta1));
    asg_tensor *nv =
        asg_add(asg_mul_scalar(v, o.beta2), asg_mul_scalar(asg_mul(gr, gr), 1 - o.beta2));
    asg_tensor *denom = asg_add_scalar(asg_div(asg_sqrt(nv), asg_sqrt(bc2)), o.eps);
    asg_tensor *pn = asg_sub(pd, asg_mul(asg_div(lr_s, bc1), asg_div(nm, denom)));
    outs[n_out++] = asg_assign(m, nm);
    outs[n_out++] = asg_assign(v, nv);
    outs[n_out++] = asg_assign(p, pn);
  }
  asg_program *pb = st ? NULL : asg_compile(g, n_out, outs, NULL);
  TU_CHECK(pa && pb, "%s: compile: %s", name, asg_last_error());
  int ok = pa && pb;
  feed(pa, dt, 0, NB);
  feed(pb, dt, 0, NB);
  for (int s = 0; s < STEPS && ok; s++) {
    asg_program_run(pa);
    asg_program_run(pb);
    double wa[NW], wb[NW], ba[DO], bb[DO];
    get(pa, dt, "w", wa, NW);
    get(pb, dt, "w", wb, NW);
    get(pa, dt, "b", ba, DO);
    get(pb, dt, "b", bb, DO);
    ok = tu_close("fused w", wa, wb, NW, 0, 0) && tu_close("fused b", ba, bb, DO, 0, 0);
  }
  TU_CHECK(ok, "%s %s: fused update == separate ops, bit for bit, %d steps", name,
           asg_dtype_name(dt), STEPS);
  asg_program_free(pa);
  asg_program_free(pb);
  asg_graph_free(fa.g);
  asg_graph_free(sep.g);
}

/* Registered graph updates run in the train program. */
static void test_graph_updates(void) {
  model m = build(ASG_F32, NB);
  asg_tensor *cnt = asg_variable(m.g, "count", ASG_F32, ASG_SCALAR, asg_init_zeros());
  asg_variable_set_trainable(cnt, false);
  asg_graph_add_update(m.g, asg_assign(cnt, asg_add_scalar(cnt, 1)));
  asg_program *p = asg_compile_train(m.g, m.loss, asg_sgd(0.1, 0), 0, NULL, NULL);
  feed(p, ASG_F32, 0, NB);
  float c = 0;
  for (int i = 0; i < 3; i++)
    asg_program_run(p);
  asg_program_get_variable(p, "count", &c, sizeof c);
  TU_CHECK(c == 3.0f, "registered update ran 3 times, count %g", (double)c);
  asg_program_free(p);
  asg_graph_free(m.g);
}

static void test_no_decay_helper(void) {
  model m = build(ASG_F32, NB);
  asg_tensor *buf[8];
  asg_param_group grp = asg_param_group_no_decay(m.g, buf, 8);
  TU_CHECK(grp.n_params == 1 && grp.params[0] == m.b && grp.weight_decay == 0 && grp.lr_scale == 1,
           "no-decay group holds exactly b (n %d)", grp.n_params);
  /* one SGD step with a large decay: b must follow the wd = 0 reference, w the wd = 0.5 one */
  asg_optim o = asg_sgd(0.1, 0);
  o.weight_decay = 0.5;
  o.n_groups = 1, o.groups = &grp;
  asg_program *p = asg_compile_train(m.g, m.loss, o, 0, NULL, NULL);
  ref r = {
      .o = o, .w = {.n = NW, .lr_scale = 1, .wd = 0.5}, .b = {.n = DO, .lr_scale = 1, .wd = 0}};
  r.o.n_groups = 0;
  memcpy(r.w.p, W0, sizeof W0);
  memcpy(r.b.p, B0, sizeof B0);
  feed(p, ASG_F32, 0, NB);
  asg_program_run(p);
  ref_step(&r, 0.1);
  double b[DO], w[NW];
  get(p, ASG_F32, "b", b, DO);
  get(p, ASG_F32, "w", w, NW);
  TU_CHECK(tu_close("no-decay b", b, r.b.p, DO, 2e-7, 2e-6) &&
               tu_close("decayed w", w, r.w.p, NW, 2e-7, 2e-6),
           "no-decay group: b undecayed, w decayed");
  asg_program_free(p);
  asg_graph_free(m.g);
}

static void test_schedules(void) {
  const double PI = 3.14159265358979323846;
  asg_lr_schedule s = asg_lr_step(0.1, 3, 0.5);
  double got[10], want[10];
  for (int t = 0; t < 10; t++)
    got[t] = asg_lr_schedule_at(&s, t), want[t] = 0.1 * pow(0.5, t / 3);
  TU_CHECK(tu_close("step", got, want, 10, 0, 1e-15), "step schedule");
  s = asg_lr_exponential(0.2, 0.9);
  for (int t = 0; t < 10; t++)
    got[t] = asg_lr_schedule_at(&s, t), want[t] = 0.2 * pow(0.9, t);
  TU_CHECK(tu_close("exp", got, want, 10, 0, 1e-14), "exponential schedule");
  s = asg_lr_cosine(1.0, 8, 0.1);
  for (int t = 0; t < 10; t++) {
    int tt = t > 8 ? 8 : t;
    got[t] = asg_lr_schedule_at(&s, t), want[t] = 0.1 + 0.9 * 0.5 * (1 + cos(PI * tt / 8));
  }
  TU_CHECK(tu_close("cosine", got, want, 10, 1e-15, 1e-14), "cosine schedule");
  TU_CHECK(got[0] == 1.0 && fabs(got[8] - 0.1) < 1e-15 && fabs(got[4] - 0.55) < 1e-15,
           "cosine ends");
  s = asg_lr_warmup_cosine(1.0, 4, 10, 0.0);
  for (int t = 0; t < 10; t++) {
    got[t] = asg_lr_schedule_at(&s, t);
    want[t] = t < 4 ? t / 4.0 : 0.5 * (1 + cos(PI * (t - 4) / 6.0));
  }
  TU_CHECK(tu_close("warmup_cosine", got, want, 10, 1e-15, 1e-14), "warmup + cosine schedule");
  s.total_steps = 0;
  TU_CHECK(isnan(asg_lr_schedule_at(&s, 1)), "bad schedule gives NaN");

  /* a schedule applied per step through the program, no recompiling */
  model m = build(ASG_F64, NB);
  asg_program *p = asg_compile_train(m.g, m.loss, asg_sgd(123, 0), 0, NULL, NULL);
  ref r = {.o = asg_sgd(0, 0), .w = {.n = NW, .lr_scale = 1}, .b = {.n = DO, .lr_scale = 1}};
  memcpy(r.w.p, W0, sizeof W0);
  memcpy(r.b.p, B0, sizeof B0);
  s = asg_lr_exponential(0.2, 0.5);
  feed(p, ASG_F64, 0, NB);
  int ok = 1;
  for (int t = 0; t < 4; t++) {
    TU_CHECK(asg_optim_schedule(p, &s, t) == ASG_OK, "asg_optim_schedule: %s", asg_last_error());
    asg_program_run(p);
    ref_step(&r, 0.2 * pow(0.5, t));
    double w[NW];
    get(p, ASG_F64, "w", w, NW);
    ok = ok && tu_close("scheduled sgd", w, r.w.p, NW, 1e-14, 1e-12);
  }
  TU_CHECK(ok, "scheduled lr drives the program");
  asg_program_free(p);
  asg_graph_free(m.g);
}

/* Two train programs from one graph: the second reuses the optimizer's
 * state variables and starts from the initial values like the first. */
static void test_recompile(void) {
  model m = build(ASG_F64, NB);
  asg_program *p1 = asg_compile_train(m.g, m.loss, asg_adam(0.01), 0, NULL, NULL);
  asg_program *p2 = asg_compile_train(m.g, m.loss, asg_adam(0.02), 0, NULL, NULL);
  TU_CHECK(p1 && p2, "compile twice: %s", asg_last_error());
  if (p1 && p2) {
    double w1[NW], w2[NW], lr2 = asg_optim_get_lr(p2);
    feed(p1, ASG_F64, 0, NB);
    feed(p2, ASG_F64, 0, NB);
    asg_optim_set_lr(p2, 0.01);
    asg_program_run(p1), asg_program_run(p1);
    asg_program_run(p2), asg_program_run(p2);
    get(p1, ASG_F64, "w", w1, NW);
    get(p2, ASG_F64, "w", w2, NW);
    TU_CHECK(lr2 == 0.02 && tu_close("recompiled", w2, w1, NW, 0, 0),
             "second program from one graph");
  }
  asg_program_free(p1);
  asg_program_free(p2);
  asg_graph_free(m.g);
}

static void test_errors(void) {
  model m = build(ASG_F32, NB);
  asg_optim o = asg_adam(-1);
  TU_CHECK(asg_compile_train(m.g, m.loss, o, 0, NULL, NULL) == NULL &&
               strstr(asg_last_error(), "optim") && strstr(asg_last_error(), "lr"),
           "negative lr refused: %s", asg_last_error());
  o = asg_sgd(0.1, 0);
  o.nesterov = true;
  TU_CHECK(asg_compile_train(m.g, m.loss, o, 0, NULL, NULL) == NULL &&
               strstr(asg_last_error(), "nesterov"),
           "nesterov without momentum refused: %s", asg_last_error());
  o = asg_adam(0.1);
  o.beta2 = 1.0;
  TU_CHECK(asg_compile_train(m.g, m.loss, o, 0, NULL, NULL) == NULL &&
               strstr(asg_last_error(), "betas"),
           "beta2 = 1 refused: %s", asg_last_error());
  struct {
    asg_optim o;
    const char *want;
  } bad[7] = {{asg_sgd(0.1, 0.9), "amsgrad"},     {asg_adam(0.1), "Adagrad's"},
              {asg_adagrad(0.1), "lr_decay"},     {asg_adagrad(0.1), "initial_accumulator_value"},
              {asg_lion(0.1, 0), "Lion's betas"}, {asg_lamb(0.1, 0), "eps"},
              {asg_lamb(0.1, 0), "betas"}};
  bad[0].o.amsgrad = true;
  bad[1].o.lr_decay = 0.1;
  bad[2].o.lr_decay = -1;
  bad[3].o.initial_accumulator_value = NAN;
  bad[4].o.beta1 = 1.5;
  bad[5].o.eps = 0;
  bad[6].o.beta2 = 1;
  for (int i = 0; i < 7; i++)
    TU_CHECK(asg_compile_train(m.g, m.loss, bad[i].o, 0, NULL, NULL) == NULL &&
                 strstr(asg_last_error(), bad[i].want),
             "bad setting %d refused naming %s: %s", i, bad[i].want, asg_last_error());
  asg_optim lion1 = asg_lion(0.1, 0); /* Lion allows beta = 1 (lion-pytorch) */
  lion1.beta1 = 1;
  asg_program *pl = asg_compile_train(m.g, m.loss, lion1, 0, NULL, NULL);
  TU_CHECK(pl != NULL, "Lion with beta1 = 1 builds: %s", asg_last_error());
  asg_program_free(pl);
  asg_tensor *ups[2];
  int nu = -1;
  TU_CHECK(asg_optim_build(m.loss, asg_adam(0.1), 0, NULL, ups, 2, &nu) != ASG_OK && nu == 0 &&
               strstr(asg_last_error(), "fit"),
           "update buffer too small: %s", asg_last_error());
  asg_tensor *out = asg_matmul(m.w, m.w); /* [2,3] x [2,3]: graph error */
  TU_CHECK(out == NULL && asg_compile_train(m.g, m.loss, asg_sgd(0.1, 0), 0, NULL, NULL) == NULL,
           "failed graph refused");
  asg_graph_free(m.g);
  /* set_lr on a program without optim/lr */
  asg_graph *g = asg_graph_new();
  asg_tensor *v = asg_variable(g, "v", ASG_F32, ASG_SHAPE(2), asg_init_zeros());
  asg_tensor *y = asg_mul_scalar(v, 2);
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(asg_optim_set_lr(p, 0.1) == ASG_ERR_NOT_FOUND && strstr(asg_last_error(), "optim/lr"),
           "set_lr without optim/lr: %s", asg_last_error());
  TU_CHECK(isnan(asg_optim_get_lr(p)), "get_lr without optim/lr is NaN");
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  tu_rand(1, X, NB * DI, -1, 1);
  tu_rand(2, Y, NB * DO, -1, 1);
  tu_rand(3, W0, NW, -1, 1);
  tu_rand(4, B0, DO, -0.5, 0.5);
  test_optimizers();
  test_clip_norm_active();
  asg_optim a = asg_adamw(0.01, 0.1);
  a.clip_norm = 0.5;
  test_accumulation(a, "adamw+clip");
  asg_optim sg = asg_sgd(0.1, 0.9);
  sg.dampening = 0.2, sg.weight_decay = 0.01;
  test_accumulation(sg, "sgd momentum dampening");
  asg_optim rm = asg_rmsprop(0.01);
  rm.centered = true, rm.momentum = 0.3;
  test_accumulation(rm, "rmsprop centered");
  /* the new optimizers compose with accumulation and clipping */
  asg_optim acc_opts[4] = {asg_adagrad(0.1), asg_lion(0.01, 0.1), asg_lamb(0.02, 0.1),
                           asg_adamw(0.01, 0.1)};
  acc_opts[0].lr_decay = 0.1, acc_opts[3].amsgrad = true;
  const char *acc_names[4] = {"adagrad+clip", "lion+clip", "lamb+clip", "adamw amsgrad+clip"};
  for (int i = 0; i < 4; i++) {
    acc_opts[i].clip_norm = 0.3;
    test_accumulation(acc_opts[i], acc_names[i]);
  }
  asg_optim fa = asg_adam(0.02), fw = asg_adamw(0.02, 0.2);
  fa.weight_decay = 0.1, fa.beta1 = 0.8, fa.eps = 1e-4;
  for (int i = 0; i < 2; i++) {
    asg_dtype dt = i ? ASG_F32 : ASG_F64;
    test_fused_matches_ops(asg_adam(0.01), "adam", dt);
    test_fused_matches_ops(fa, "adam L2 wd", dt);
    test_fused_matches_ops(fw, "adamw", dt);
  }
  test_loss_scaling();
  test_graph_updates();
  test_no_decay_helper();
  test_schedules();
  test_recompile();
  test_errors();
  return tu_finish();
}
