/* Optimizers built as graph updates: SGD (momentum, dampening, Nesterov),
 * Adam, AdamW (AMSGrad), RMSprop (momentum, centered), Adagrad, Lion, LAMB,
 * with parameter groups, gradient clipping and gradient accumulation. This
 * file builds what is common (gradients, accumulation, loss scaling, the
 * guard, clipping, data parallelism, ZeRO-1); optim_rules.c each
 * optimizer's update. State variables are frozen so they are never trained
 * themselves.
 *
 * Per-step scalars (lr, bias corrections, clip scale, the accumulation flag)
 * are computed in the graph in the "scalar dtype": F64 when any parameter is
 * F64, else F32, and cast to each parameter's dtype where used. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "runtime/program_internal.h"
#include "optim/optim_internal.h"
#include "passes/passes.h"

enum { DEFAULT_MAX_SKIPS = 25 };

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
asg_optim asg_rmsprop(double lr) {
  return (asg_optim){.kind = ASG_OPTIM_RMSPROP, .lr = lr, .alpha = 0.99, .eps = 1e-8};
}
asg_optim asg_adagrad(double lr) {
  return (asg_optim){.kind = ASG_OPTIM_ADAGRAD, .lr = lr, .eps = 1e-10};
}
asg_optim asg_lion(double lr, double wd) {
  return (asg_optim){
      .kind = ASG_OPTIM_LION, .lr = lr, .beta1 = 0.9, .beta2 = 0.99, .weight_decay = wd};
}
asg_optim asg_lamb(double lr, double wd) {
  return (asg_optim){.kind = ASG_OPTIM_LAMB,
                     .lr = lr,
                     .beta1 = 0.9,
                     .beta2 = 0.999,
                     .eps = 1e-6,
                     .weight_decay = wd};
}

asg_param_group asg_param_group_no_decay(asg_graph *g, asg_tensor **out, int max) {
  int n = 0;
  if (g && out)
    for (int i = 0; i < g->n_nodes && n < max; i++) {
      asg_tensor *t = g->nodes[i];
      if (asg_variable_is_trainable(t) && t->shape.ndim <= 1) out[n++] = t;
    }
  return (asg_param_group){.n_params = n, .params = out, .lr_scale = 1, .weight_decay = 0};
}

static void push(builder *b, asg_tensor *u) {
  if (b->st) return;
  if (b->n_ups == b->cap_ups) {
    int cap = b->cap_ups ? 2 * b->cap_ups : 64;
    asg_tensor **nu = realloc(b->ups, sizeof *nu * (size_t)cap);
    if (!nu) {
      b->st = asg__error(ASG_ERR_OOM, "optim: out of memory");
      return;
    }
    b->ups = nu;
    b->cap_ups = cap;
  }
  b->ups[b->n_ups++] = u;
}

asg_tensor *asg__optim_state_var(builder *b, const char *name, asg_dtype dt, asg_shape shape,
                                 double init) {
  asg_tensor *v = asg_graph_find(b->g, name);
  if (v && v->op == ASG_OP_VARIABLE && v->dtype == dt && asg_shape_equal(v->shape, shape)) {
    v->init = asg_init_constant(init);
    return v;
  }
  v = asg_variable(b->g, name, dt, shape, asg_init_constant(init));
  if (v) asg_variable_set_trainable(v, false);
  return v;
}

asg_tensor *asg__optim_param_state(builder *b, asg_tensor *p, const char *suffix, asg_tensor *like,
                                   double init) {
  char name[512];
  snprintf(name, sizeof name, "%s.%s", p->name, suffix);
  return asg__optim_state_var(b, name, p->dtype, like->shape, init);
}

void asg__optim_update(builder *b, asg_tensor *var, asg_tensor *value) {
  if (b->flag) value = asg_where(asg_cast(b->flag, var->dtype), value, var);
  push(b, asg_assign(var, value));
}

static bool nonneg(double v) { return isfinite(v) && v >= 0; }

/* The floor of the dynamic loss scale: loss_scale_min, by default 1 (or the
 * initial scale when that is smaller). */
static double scale_floor(const asg_optim *o) {
  if (o->loss_scale_min > 0) return o->loss_scale_min;
  return o->loss_scale < 1 ? o->loss_scale : 1;
}

static asg_status check_opts(const asg_optim *o) {
  const bool adam = o->kind == ASG_OPTIM_ADAM || o->kind == ASG_OPTIM_ADAMW;
  const bool betas = adam || o->kind == ASG_OPTIM_LAMB;
  const bool eps_used = betas || o->kind == ASG_OPTIM_RMSPROP || o->kind == ASG_OPTIM_ADAGRAD;
  const bool adagrad = o->kind == ASG_OPTIM_ADAGRAD;
  char why[256] = "";
#define BAD(...) snprintf(why, sizeof why, __VA_ARGS__)
  if (o->kind < ASG_OPTIM_SGD || o->kind > ASG_OPTIM_LAMB)
    BAD("unknown optimizer kind %d", (int)o->kind);
  else if (!nonneg(o->lr))
    BAD("lr is %g; it must be finite and >= 0", o->lr);
  else if (!nonneg(o->momentum))
    BAD("momentum is %g; it must be finite and >= 0", o->momentum);
  else if (!isfinite(o->dampening))
    BAD("dampening is %g; it must be finite", o->dampening);
  else if (!nonneg(o->weight_decay))
    BAD("weight_decay is %g; it must be finite and >= 0", o->weight_decay);
  else if (eps_used && !(isfinite(o->eps) && o->eps > 0))
    BAD("eps is %g; it must be finite and > 0", o->eps);
  else if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
    BAD("nesterov needs momentum > 0 and dampening 0");
  else if (betas && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1))
    BAD("betas are (%g, %g); both must be in [0, 1)", o->beta1, o->beta2);
  else if (o->kind == ASG_OPTIM_LION &&
           !(o->beta1 >= 0 && o->beta1 <= 1 && o->beta2 >= 0 && o->beta2 <= 1))
    BAD("Lion's betas are (%g, %g); both must be in [0, 1]", o->beta1, o->beta2);
  else if (o->amsgrad && !adam)
    BAD("amsgrad is an option of Adam and AdamW only");
  else if (!adagrad && (o->lr_decay != 0 || o->initial_accumulator_value != 0))
    BAD("lr_decay (%g) and initial_accumulator_value (%g) are Adagrad's; they must be 0 for "
        "other optimizers",
        o->lr_decay, o->initial_accumulator_value);
  else if (!nonneg(o->lr_decay))
    BAD("lr_decay is %g; it must be finite and >= 0", o->lr_decay);
  else if (!nonneg(o->initial_accumulator_value))
    BAD("initial_accumulator_value is %g; it must be finite and >= 0",
        o->initial_accumulator_value);
  else if (o->kind == ASG_OPTIM_RMSPROP && !(o->alpha >= 0 && o->alpha <= 1))
    BAD("alpha is %g; it must be in [0, 1]", o->alpha);
  else if (!nonneg(o->clip_value) || !nonneg(o->clip_norm))
    BAD("clip_value %g and clip_norm %g must be finite and >= 0", o->clip_value, o->clip_norm);
  else if (o->accum_steps < 0)
    BAD("accum_steps is %d; it must be >= 0", o->accum_steps);
  else if (!nonneg(o->loss_scale) || o->scale_window < 0)
    BAD("loss_scale %g must be finite and >= 0, scale_window %d >= 0", o->loss_scale,
        o->scale_window);
  else if (!nonneg(o->loss_scale_min) || (o->loss_scale > 0 && o->loss_scale_min > o->loss_scale))
    BAD("loss_scale_min is %g; it must be finite, >= 0 and <= loss_scale (%g)", o->loss_scale_min,
        o->loss_scale);
  else if (o->loss_scale > 0 && o->accum_steps > 1)
    BAD("loss_scale does not combine with accum_steps > 1");
  else if (o->max_skips < 0)
    BAD("max_skips is %d; it must be >= 0 (0 means %d)", o->max_skips, DEFAULT_MAX_SKIPS);
  else if (o->n_groups < 0 || (o->n_groups > 0 && !o->groups))
    BAD("n_groups > 0 needs groups");
  for (int i = 0; !why[0] && i < o->n_groups; i++) {
    const asg_param_group *gr = &o->groups[i];
    if (gr->n_params < 0 || (gr->n_params > 0 && !gr->params))
      BAD("parameter group %d: n_params %d without params", i, gr->n_params);
    else if (!nonneg(gr->lr_scale) || !nonneg(gr->weight_decay))
      BAD("parameter group %d: lr_scale %g and weight_decay %g must be finite and >= 0", i,
          gr->lr_scale, gr->weight_decay);
  }
#undef BAD
  return why[0] ? asg__error(ASG_ERR_INVALID, "optim: %s", why) : ASG_OK;
}

/* Every group prefix must select some parameter: a prefix written after a
 * scope ("encoder/") rather than a variable name ("enc.") would otherwise
 * silently leave the group empty. */
static asg_status check_prefixes(const asg_optim *o, int n, asg_tensor *const *params) {
  for (int i = 0; i < o->n_groups; i++) {
    const char *pre = o->groups[i].prefix;
    if (!pre) continue;
    bool hit = false;
    for (int j = 0; j < n && !hit; j++)
      hit = params[j]->name && strncmp(params[j]->name, pre, strlen(pre)) == 0;
    if (!hit)
      return asg__error(ASG_ERR_NOT_FOUND,
                        "optim: parameter group %d: prefix '%s' matches no trained parameter "
                        "(names are variable names such as '%s'; name scopes are not part of "
                        "them)",
                        i, pre, n > 0 && params[0]->name ? params[0]->name : "fc1.weight");
  }
  return ASG_OK;
}

/* 1 (scalar dtype) when every gradient is finite, else 0: sum(g * 0) is 0
 * for finite g and NaN as soon as one element is inf or NaN. */
static asg_tensor *all_finite(builder *b, int n, asg_tensor *const *grads) {
  asg_tensor *bad = NULL;
  for (int i = 0; i < n; i++) {
    asg_tensor *z = asg_cast(asg_sum(asg_mul_scalar(grads[i], 0), ASG_ALL_AXES, false), b->sdt);
    bad = bad ? asg_add(bad, z) : z;
  }
  /* with accumulation under data parallelism the gradients checked are each
   * rank's own: every rank must take the same decision */
  if (b->world > 1 && (b->o.accum_steps > 1 || b->zero)) bad = asg_all_reduce(bad, ASG_COMM_SUM);
  return asg_eq(bad, asg__optim_k(b, 0));
}

/* Data parallelism: replaces grads[0..n) by their mean over the ranks, in
 * buckets of about b->bucket_bytes (one all-reduce per bucket: flattened,
 * concatenated, reduced, sliced back). Buckets are filled from the last
 * parameter, whose gradient the backward pass makes first. gate (NULL: every
 * run) limits the reduction to runs where it is nonzero. */
static void reduce_grads(builder *b, int n, asg_tensor **grads, asg_tensor *gate) {
  asg_tensor **flat = malloc(sizeof *flat * (size_t)(n + 1));
  if (!flat) {
    b->st = asg__error(ASG_ERR_OOM, "optim: out of memory");
    return;
  }
  for (int end = n; end > 0;) { /* bucket [start, end) */
    const asg_dtype dt = grads[end - 1]->dtype;
    size_t bytes = 0;
    int start = end;
    while (start > 0 && grads[start - 1]->dtype == dt && (start == end || bytes < b->bucket_bytes))
      bytes += (size_t)asg_shape_numel(grads[--start]->shape) * asg_dtype_size(dt);
    if (end - start == 1) {
      grads[start] = asg__all_reduce_gated(grads[start], ASG_COMM_MEAN, gate);
    } else {
      for (int i = start; i < end; i++)
        flat[i - start] = asg_reshape(grads[i], ASG_SHAPE(asg_shape_numel(grads[i]->shape)));
      asg_tensor *r = asg__all_reduce_gated(asg_concat(flat, end - start, 0), ASG_COMM_MEAN, gate);
      int64_t off = 0;
      for (int i = start; i < end; i++) {
        const int64_t m = asg_shape_numel(grads[i]->shape);
        grads[i] = asg_reshape(asg_slice(r, 0, off, off + m, 1), grads[i]->shape);
        off += m;
      }
    }
    end = start;
  }
  free(flat);
}

/* ZeRO-1: each parameter, flattened and padded with zeros to world * s
 * elements (s = ceil(numel / world)), is split into world shards of s; rank
 * r keeps the optimizer state of shard r only. */
static int64_t shard_len(const builder *b, const asg_tensor *x) {
  const int64_t n = asg_shape_numel(x->shape);
  return (n + b->world - 1) / b->world;
}

/* x flattened, [lo, hi) of it, then zeros up to s elements */
static asg_tensor *padded_piece(builder *b, asg_tensor *x, int64_t lo, int64_t s) {
  const int64_t n = asg_shape_numel(x->shape), hi = lo + s < n ? lo + s : n;
  if (lo >= n) return asg_fill(b->g, x->dtype, ASG_SHAPE(s), 0);
  asg_tensor *flat = asg_reshape(x, ASG_SHAPE(n));
  asg_tensor *piece = lo == 0 && hi == n ? flat : asg_slice(flat, 0, lo, hi, 1);
  if (hi - lo == s) return piece;
  asg_tensor *parts[2] = {piece, asg_fill(b->g, x->dtype, ASG_SHAPE(s - (hi - lo)), 0)};
  return asg_concat(parts, 2, 0);
}

/* this rank's shard [s] of the mean over ranks of gradient g */
static asg_tensor *scatter_grad(builder *b, asg_tensor *g) {
  const int64_t s = shard_len(b, g);
  return asg_reduce_scatter(padded_piece(b, g, 0, s * b->world), b->world, ASG_COMM_MEAN);
}

/* the whole parameter p from every rank's new shard [s] */
static asg_tensor *gather_param(builder *b, asg_tensor *shard, asg_tensor *p) {
  const int64_t n = asg_shape_numel(p->shape);
  asg_tensor *all = asg_all_gather(shard, b->world);
  if (shard_len(b, p) * b->world > n) all = asg_slice(all, 0, 0, n, 1);
  return asg_reshape(all, p->shape);
}

/* Builds every update into b->ups. */
static asg_status build(builder *b, asg_tensor *loss, int n, asg_tensor *const *params) {
  asg_graph *g = asg__graph_of("optim", 1, &loss);
  if (!g) return asg__error(ASG_ERR_INVALID, "optim: loss is NULL or its graph has an error");
  asg_status st = check_opts(&b->o);
  if (st) return st;
  b->g = g;
  asg_tensor **ps = NULL, **grads = NULL;
  if (n == 0) { /* every trainable variable that exists now */
    ps = malloc(sizeof *ps * (size_t)(g->n_nodes + 1));
    if (!ps) return asg__error(ASG_ERR_OOM, "optim: out of memory");
    for (int i = 0; i < g->n_nodes; i++)
      if (asg_variable_is_trainable(g->nodes[i])) ps[n++] = g->nodes[i];
    params = ps;
    if (n == 0) {
      free(ps);
      return asg__error(ASG_ERR_INVALID,
                        "optim: the graph has no trainable variable (every variable is frozen "
                        "or not a float, or none was created before the optimizer was built)");
    }
  }
  b->sdt = ASG_F32;
  for (int i = 0; i < n && !st; i++) {
    asg_tensor *p = params[i];
    if (!asg__tensor_ok(p) || p->graph != g || p->op != ASG_OP_VARIABLE ||
        (p->dtype != ASG_F32 && p->dtype != ASG_F64))
      st = asg__error(ASG_ERR_INVALID,
                      "optim: parameter %d is not an F32/F64 variable of the loss's graph", i);
    else if (p->dtype == ASG_F64)
      b->sdt = ASG_F64;
  }
  if (!st) st = check_prefixes(&b->o, n, params);
  grads = malloc(sizeof *grads * (size_t)(n + 1));
  if (!st && !grads) st = asg__error(ASG_ERR_OOM, "optim: out of memory");
  const asg_optim *o = &b->o;
  asg_tensor *scale = NULL; /* dynamic loss scaling: differentiate loss * S */
  if (!st && n > 0 && o->loss_scale > 0) {
    asg_scope_push(g, "optim");
    scale = asg__optim_state_var(b, "optim/loss_scale", b->sdt, ASG_SCALAR, o->loss_scale);
    asg_scope_pop(g);
    if (!b->st) st = asg_grad(asg_mul(loss, asg__optim_as(scale, loss)), n, params, grads);
  } else if (!st && n > 0) {
    st = asg_grad(loss, n, params, grads);
  }
  if (!st) st = b->st;
  if (st || n == 0) goto out;

  asg_scope_push(g, "optim");
  /* k: micro-batches per step; with data parallelism and k == 1 the ranks'
   * gradients are averaged here, else their accumulated sums on the k-th run */
  const int k = o->accum_steps > 1 ? o->accum_steps : 1;
  if (b->world > 1 && (k == 1 || b->zero)) {
    asg_scope_push(g, "data_parallel");
    if (b->zero) /* each rank gets its shard of the mean (every micro-step) */
      for (int i = 0; i < n; i++)
        grads[i] = scatter_grad(b, grads[i]);
    else
      reduce_grads(b, n, grads, NULL);
    asg_scope_pop(g);
  }
  asg_tensor *lr = asg__optim_state_var(b, "optim/lr", b->sdt, ASG_SCALAR, o->lr);
  asg_tensor *fin = NULL; /* 1: every gradient is finite */
  if (scale) {            /* unscale; step only when finite; adjust S, never below its floor */
    asg_tensor *inv = asg_div(asg__optim_k(b, 1), scale);
    for (int i = 0; i < n; i++)
      grads[i] = asg_mul(grads[i], asg__optim_as(inv, grads[i]));
    fin = b->flag = all_finite(b, n, grads);
    asg_tensor *good = asg__optim_state_var(b, "optim/good_steps", b->sdt, ASG_SCALAR, 0);
    asg_tensor *g1 = asg_add_scalar(good, 1);
    asg_tensor *grow = asg_ge(g1, asg__optim_k(b, o->scale_window > 0 ? o->scale_window : 2000));
    asg_tensor *ok = asg_where(grow, asg_mul_scalar(scale, 2), scale);
    asg_tensor *low = asg_maximum(asg_mul_scalar(scale, 0.5), asg__optim_k(b, scale_floor(o)));
    push(b, asg_assign(scale, asg_where(b->flag, ok, low)));
    push(b, asg_assign(good, asg_where(b->flag, asg_where(grow, asg__optim_k(b, 0), g1),
                                       asg__optim_k(b, 0))));
  }
  if (o->skip_nonfinite) { /* the guard: gate every update on fin; count the skips */
    if (!fin) fin = b->flag = all_finite(b, n, grads);
    b->fin = fin;
    asg_tensor *skipped = asg__optim_state_var(b, "optim/skipped_steps", b->sdt, ASG_SCALAR, 0);
    asg_tensor *streak = asg__optim_state_var(b, "optim/skip_streak", b->sdt, ASG_SCALAR, 0);
    push(b, asg_assign(skipped, asg_add(skipped, asg_sub(asg__optim_k(b, 1), fin))));
    push(b, asg_assign(streak, asg_where(fin, asg__optim_k(b, 0), asg_add_scalar(streak, 1))));
  }
  /* accumulation: count runs; the k-th steps with the mean and resets */
  if (k > 1) {
    asg_tensor *cnt = asg__optim_state_var(b, "optim/accum_count", b->sdt, ASG_SCALAR, 0);
    asg_tensor *c1 = asg_add_scalar(cnt, 1);
    asg_tensor *last = asg_ge(c1, asg__optim_k(b, k)); /* the k-th run: step and reset */
    b->flag = fin ? asg_mul(last, fin) : last;
    asg_tensor *nc = asg_where(last, asg__optim_k(b, 0), c1);
    push(b, asg_assign(cnt, fin ? asg_where(fin, nc, cnt) : nc));
    for (int i = 0; i < n; i++) {
      asg_tensor *acc = asg__optim_param_state(b, params[i], "grad_acc", grads[i], 0);
      asg_tensor *sum = asg_add(acc, grads[i]);
      asg_tensor *na = asg_where(asg_cast(last, acc->dtype), asg_scalar(g, acc->dtype, 0), sum);
      if (fin) na = asg_where(asg_cast(fin, acc->dtype), na, acc); /* a skipped run adds nothing */
      push(b, asg_assign(acc, na));
      grads[i] = sum;
    }
    if (b->world > 1 && !b->zero) { /* the ranks' sums, averaged on the k-th run only */
      asg_scope_push(g, "data_parallel");
      reduce_grads(b, n, grads, last);
      asg_scope_pop(g);
    }
    for (int i = 0; i < n; i++)
      grads[i] = asg_mul_scalar(grads[i], 1.0 / k);
  }
  if (o->clip_value > 0)
    for (int i = 0; i < n; i++)
      grads[i] = asg_clamp(grads[i], -o->clip_value, o->clip_value);
  if (o->clip_norm > 0 || o->track_grad_norm) { /* the global L2 norm of the gradients */
    asg_tensor *sq = NULL;
    for (int i = 0; i < n; i++) {
      asg_tensor *s = asg_cast(asg_sum(asg_mul(grads[i], grads[i]), ASG_ALL_AXES, false), b->sdt);
      sq = sq ? asg_add(sq, s) : s;
    }
    if (b->zero) sq = asg_all_reduce(sq, ASG_COMM_SUM); /* the shards' squares */
    asg_tensor *norm = asg_sqrt(sq);
    asg__optim_update(b, asg__optim_state_var(b, "optim/grad_norm", b->sdt, ASG_SCALAR, 0), norm);
    if (o->clip_norm > 0) { /* scale = min(1, max_norm / (||g|| + 1e-6)) */
      asg_tensor *scale = asg_minimum(
          asg__optim_k(b, 1), asg_div(asg__optim_k(b, o->clip_norm), asg_add_scalar(norm, 1e-6)));
      for (int i = 0; i < n; i++)
        grads[i] = asg_mul(grads[i], asg__optim_as(scale, grads[i]));
    }
  }
  /* t: the number of the step being taken (1-based) */
  asg_tensor *t = NULL;
  if (asg__optim_needs_step(o)) {
    asg_tensor *step = asg__optim_state_var(b, "optim/step", b->sdt, ASG_SCALAR, 0);
    asg_tensor *t1 = asg_add_scalar(step, 1);
    push(b, asg_assign(step, b->flag ? asg_add(step, b->flag) : t1));
    t = t1;
  }
  if (asg__optim_needs_bias_correction(o)) { /* 1 - beta^t by the recurrence bc' = (1 - beta) + beta
                                              * bc: no cancellation in F32, unlike 1 - pow(beta, t)
                                              * (0.999^1 alone would be off by 1e-5 relative) */
    asg_tensor *c1 = asg__optim_state_var(b, "optim/bias_correction1", b->sdt, ASG_SCALAR, 0);
    asg_tensor *c2 = asg__optim_state_var(b, "optim/bias_correction2", b->sdt, ASG_SCALAR, 0);
    b->bc1 = asg_add_scalar(asg_mul_scalar(c1, o->beta1), 1 - o->beta1);
    b->bc2 = asg_add_scalar(asg_mul_scalar(c2, o->beta2), 1 - o->beta2);
    asg__optim_update(b, c1, b->bc1);
    asg__optim_update(b, c2, b->bc2);
  }
  for (int i = 0; i < n; i++) {
    asg_tensor *p = params[i];
    asg_tensor *pv = b->zero ? padded_piece(b, p, b->rank * shard_len(b, p), shard_len(b, p)) : p;
    asg_tensor *pn = asg__optim_step_param(b, p, pv, grads[i], lr, t);
    if (pn) asg__optim_update(b, p, b->zero ? gather_param(b, pn, p) : pn);
  }
  asg_scope_pop(g);
  if (!b->st && g->status) b->st = asg__error(g->status, "optim: %s", g->err);
  st = b->st;
out:
  free(ps);
  free(grads);
  return st;
}

asg_status asg_optim_build(asg_tensor *loss, asg_optim o, int n, asg_tensor *const *params,
                           asg_tensor **updates, int max, int *n_updates) {
  if (n_updates) *n_updates = 0;
  if (!updates || !n_updates) return asg__error(ASG_ERR_INVALID, "optim: NULL output arguments");
  if (n < 0 || (n > 0 && !params)) return asg__error(ASG_ERR_INVALID, "optim: bad parameter list");
  builder b = {.o = o};
  asg_status st = build(&b, loss, n, params);
  if (!st && b.n_ups > max)
    st = asg__error(ASG_ERR_INVALID, "optim: %d updates do not fit in %d", b.n_ups, max);
  if (!st) {
    memcpy(updates, b.ups, sizeof *updates * (size_t)b.n_ups);
    *n_updates = b.n_ups;
  }
  free(b.ups);
  return st;
}

/* A registered update (assign(var, value), e.g. batch-norm statistics)
 * gated by the guard: a run with non-finite gradients keeps var. */
static asg_tensor *guarded_update(builder *b, asg_tensor *u) {
  if (!u || u->op != ASG_OP_ASSIGN) return u;
  asg_tensor *var = u->in[0];
  asg_scope_push(b->g, "optim");
  asg_tensor *r = asg_assign(var, asg_where(asg_cast(b->fin, var->dtype), u->in[1], var));
  asg_scope_pop(b->g);
  return r;
}

asg_program *asg_compile_train(asg_graph *g, asg_tensor *loss, asg_optim opt, int n_extra,
                               asg_tensor *const *extra, const asg_compile_opts *opts) {
  if (!g || !loss || n_extra < 0 || (n_extra > 0 && !extra)) {
    asg__error(ASG_ERR_INVALID, "asg_compile_train: NULL graph or loss, or bad extra outputs");
    return NULL;
  }
  if (asg_tensor_graph(loss) != g) {
    asg__error(ASG_ERR_INVALID, "asg_compile_train: loss belongs to another graph");
    return NULL;
  }
  builder b = {.o = opt};
  if (opts && opts->comm) {
    b.world = asg_comm_size(opts->comm);
    b.rank = asg_comm_rank(opts->comm);
    b.bucket_bytes = opts->comm_bucket_bytes ? opts->comm_bucket_bytes : (size_t)25 << 20;
    b.zero = opts->shard_optimizer_state && b.world > 1;
  }
  /* checkpoint_blocks: the gradient built now recomputes every declared block */
  if (opts && opts->checkpoint_blocks && g->status == ASG_OK && !asg__remat_has_blocks(g)) {
    asg__error(ASG_ERR_INVALID, "asg_compile_train: checkpoint_blocks is set but the graph "
                                "declares no block (asg_graph_declare_block; mark scopes with "
                                "asg_graph_checkpoint_scope instead)");
    return NULL;
  }
  g->remat_blocks = opts && opts->checkpoint_blocks;
  asg_status bst = build(&b, loss, 0, NULL);
  g->remat_blocks = false;
  if (bst) {
    free(b.ups);
    return NULL;
  }
  int n_out = 1 + n_extra + b.n_ups + g->n_updates;
  asg_tensor **outs = malloc(sizeof *outs * (size_t)n_out);
  asg_program *p = NULL;
  if (outs) {
    int k = 0;
    outs[k++] = loss;
    for (int i = 0; i < n_extra; i++)
      outs[k++] = extra[i];
    for (int i = 0; i < b.n_ups; i++)
      outs[k++] = b.ups[i];
    for (int i = 0; i < g->n_updates; i++)
      outs[k++] = b.fin ? guarded_update(&b, g->updates[i]) : g->updates[i];
    p = asg_compile(g, n_out, outs, opts); /* refuses a graph failed by guarded_update */
  } else {
    asg__error(ASG_ERR_OOM, "asg_compile_train: out of memory");
  }
  if (p) {
    asg__optim_info info = {0};
    if (opt.skip_nonfinite) info.max_skips = opt.max_skips > 0 ? opt.max_skips : DEFAULT_MAX_SKIPS;
    if (opt.loss_scale > 0) info.loss_scale_min = scale_floor(&opt);
    asg__program_set_optim_info(p, &info);
    /* data parallelism starts from rank 0's parameters */
    if (b.world > 1 && asg_comm_broadcast_variables(opts->comm, p, 0)) {
      asg_program_free(p);
      p = NULL;
    }
  }
  free(outs);
  free(b.ups);
  return p;
}

static asg_status lr_slot(asg_program *p, asg_dtype *dt) {
  int n = asg_program_variable_count(p);
  for (int i = 0; i < n; i++) {
    const char *name;
    if (asg_program_variable_info(p, i, &name, dt, NULL) == ASG_OK && strcmp(name, "optim/lr") == 0)
      return ASG_OK;
  }
  return asg__error(ASG_ERR_NOT_FOUND, "optim: program has no variable 'optim/lr' (not made by "
                                       "asg_compile_train?)");
}

asg_status asg_optim_set_lr(asg_program *p, double lr) {
  if (!nonneg(lr))
    return asg__error(ASG_ERR_INVALID,
                      "asg_optim_set_lr: lr is %g; it must be finite and >= 0 (lr unchanged)", lr);
  asg_dtype dt;
  asg_status st = lr_slot(p, &dt);
  if (st) return st;
  if (dt == ASG_F64) return asg_program_set_variable(p, "optim/lr", &lr, sizeof lr);
  float v = (float)lr;
  return asg_program_set_variable(p, "optim/lr", &v, sizeof v);
}

double asg_optim_get_lr(asg_program *p) {
  asg_dtype dt;
  if (lr_slot(p, &dt)) return NAN;
  if (dt == ASG_F64) {
    double v;
    return asg_program_get_variable(p, "optim/lr", &v, sizeof v) ? NAN : v;
  }
  float v;
  return asg_program_get_variable(p, "optim/lr", &v, sizeof v) ? NAN : (double)v;
}

/* A scalar state variable as a double; false if the program has none. */
static bool read_scalar(asg_program *p, const char *name, double *v) {
  int n = asg_program_variable_count(p);
  for (int i = 0; i < n; i++) {
    const char *nm;
    asg_dtype dt;
    if (asg_program_variable_info(p, i, &nm, &dt, NULL) || strcmp(nm, name) != 0) continue;
    if (dt == ASG_F64) return asg_program_get_variable(p, name, v, sizeof *v) == ASG_OK;
    float f;
    if (dt != ASG_F32 || asg_program_get_variable(p, name, &f, sizeof f)) return false;
    *v = f;
    return true;
  }
  return false;
}

asg_status asg_optim_get_stats(asg_program *p, asg_optim_stats *out) {
  if (!p || !out) return asg__error(ASG_ERR_INVALID, "asg_optim_get_stats: NULL argument");
  asg_dtype dt;
  asg_status st = lr_slot(p, &dt);
  if (st) return st;
  const asg__optim_info *info = asg__program_optim_info(p);
  double scale = 0, skipped = 0, streak = 0, norm = NAN;
  *out = (asg_optim_stats){0};
  out->grad_norm = read_scalar(p, "optim/grad_norm", &norm) ? norm : NAN;
  if (read_scalar(p, "optim/loss_scale", &scale)) {
    out->loss_scale = scale;
    /* F32 rounding of the floor: within a relative 1e-6 */
    out->loss_scale_at_floor =
        info->loss_scale_min > 0 && scale <= info->loss_scale_min * (1 + 1e-6);
  }
  if (read_scalar(p, "optim/skipped_steps", &skipped) && isfinite(skipped))
    out->skipped_steps = (int64_t)skipped;
  if (read_scalar(p, "optim/skip_streak", &streak) && isfinite(streak))
    out->skip_streak = (int64_t)streak;
  return ASG_OK;
}
