/* Recurrent layers: LSTM and GRU with PyTorch's equations, gate order and
 * state_dict layout ("weight_ih_l0" [G*H, in], "weight_hh_l0" [G*H, H],
 * "bias_ih_l0", "bias_hh_l0", "..._reverse" for the backward direction;
 * G = 4 gates i, f, g, o for the LSTM, 3 gates r, z, n for the GRU).
 *
 * The graph is unrolled over the (constant) sequence length: per layer and
 * direction one GEMM projects every timestep's input at once, and each step
 * adds only the recurrent product h W_hh^T and the gate arithmetic, so the
 * graph has O(T * layers * directions) nodes (docs/layers.md).
 *
 * Settings: i[0] = cell (CELL_LSTM or CELL_GRU), i[1] = input size,
 * i[2] = hidden size, i[3] = layers, i[4] = directions (1 or 2),
 * i[5] = batch_first, i[6] = has biases; f[0] = dropout between layers.
 * Parameters are registered per layer, per direction, in the order
 * weight_ih, weight_hh[, bias_ih, bias_hh]. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/layer.h"

enum { CELL_LSTM = 0, CELL_GRU = 1 };

static const char *cell_name(const asg_layer *l) { return l->i[0] == CELL_LSTM ? "lstm" : "gru"; }

/* A parameter in the activations' dtype (the cast is differentiable). */
static asg_tensor *as_dtype(asg_tensor *p, asg_dtype dt) {
  if (!p || asg_tensor_dtype(p) == dt) return p;
  return asg_cast(p, dt);
}

/* One (layer, direction)'s weights as the steps use them. b_x is added to
 * the input projection of all steps at once: b_ih + b_hh for the LSTM,
 * b_ih + [b_hr, b_hz, 0] for the GRU, whose b_hn stays inside r * (...). */
typedef struct cell_w {
  asg_tensor *w_ih, *w_hh, *b_x, *b_hn;
} cell_w;

static cell_w cell_weights(asg_layer *l, int64_t layer, int dir, asg_dtype dt) {
  bool bias = l->i[6] != 0;
  int per = bias ? 4 : 2, k = (int)(layer * l->i[4] + dir) * per;
  int64_t H = l->i[2];
  cell_w w = {as_dtype(l->param[k], dt), as_dtype(l->param[k + 1], dt), NULL, NULL};
  if (!bias) return w;
  asg_tensor *b_ih = as_dtype(l->param[k + 2], dt), *b_hh = as_dtype(l->param[k + 3], dt);
  if (l->i[0] == CELL_LSTM) {
    w.b_x = asg_add(b_ih, b_hh);
  } else {
    asg_tensor *rz[2] = {asg_slice(b_hh, 0, 0, 2 * H, 1), asg_fill(l->g, dt, ASG_SHAPE(H), 0)};
    w.b_x = asg_add(b_ih, asg_concat(rz, 2, 0));
    w.b_hn = asg_slice(b_hh, 0, 2 * H, 3 * H, 1);
  }
  return w;
}

/* One LSTM step on xt [B, 4H] = x_t W_ih^T + b_ih + b_hh. *h, *c NULL are
 * zero states (the first step without h0/c0: no recurrent product). */
static void lstm_step(asg_tensor *xt, const cell_w *w, int64_t H, asg_tensor **h, asg_tensor **c) {
  asg_tensor *gates = *h ? asg_add(xt, asg_matmul_t(*h, w->w_hh, false, true)) : xt, *p[4];
  asg_split(gates, 1, 4, (const int64_t[]){H, H, H, H}, p);
  asg_tensor *i = asg_sigmoid(p[0]), *f = asg_sigmoid(p[1]), *g = asg_tanh(p[2]);
  asg_tensor *o = asg_sigmoid(p[3]), *ig = asg_mul(i, g);
  *c = *c ? asg_add(asg_mul(f, *c), ig) : ig;
  *h = asg_mul(o, asg_tanh(*c));
}

/* One GRU step on xt [B, 3H] = x_t W_ih^T + b_ih + [b_hr, b_hz, 0]:
 * r = sigmoid(x_r + h W_hr^T), z = sigmoid(x_z + h W_hz^T),
 * n = tanh(x_n + r * (h W_hn^T + b_hn)), h' = (1 - z) n + z h
 * (computed as n + z (h - n)). *h NULL is the zero state. */
static void gru_step(asg_tensor *xt, const cell_w *w, int64_t H, asg_tensor **h) {
  const int64_t sz[3] = {H, H, H};
  asg_tensor *xs[3], *hs[3] = {NULL, NULL, NULL};
  asg_split(xt, 1, 3, sz, xs);
  if (*h) asg_split(asg_matmul_t(*h, w->w_hh, false, true), 1, 3, sz, hs);
  asg_tensor *r = asg_sigmoid(hs[0] ? asg_add(xs[0], hs[0]) : xs[0]);
  asg_tensor *z = asg_sigmoid(hs[1] ? asg_add(xs[1], hs[1]) : xs[1]);
  asg_tensor *hn = hs[2] ? (w->b_hn ? asg_add(hs[2], w->b_hn) : hs[2]) : w->b_hn;
  asg_tensor *n = asg_tanh(hn ? asg_add(xs[2], asg_mul(r, hn)) : xs[2]);
  *h = asg_add(n, asg_mul(z, *h ? asg_sub(*h, n) : asg_neg(n)));
}

/* The n rows of x [n, ...] along axis 0 as [...] each (views: slices along
 * axis 0 copy nothing; autograd joins their gradients into one concat). */
static void rows_of(asg_tensor *x, int64_t n, asg_tensor **out) {
  for (int64_t s = 0; s < n; s++)
    out[s] = asg_squeeze(asg_slice(x, 0, s, s + 1, 1), 0);
}

/* Row k of a stacked state [L*D, B, H] as [B, H]; NULL stays NULL. */
static asg_tensor *state_row(asg_tensor *s, int64_t k) {
  return s ? asg_squeeze(asg_slice(s, 0, k, k + 1, 1), 0) : NULL;
}

/* One layer over x [T, B, in] (seq-first, batched); h0, c0 [L*D, B, H] or
 * NULL. Returns [T, B, D*H]; the final states go to hn[k*D + d], cn[...]. */
static asg_tensor *run_layer(asg_layer *l, int64_t k, asg_tensor *x, asg_tensor *h0, asg_tensor *c0,
                             asg_tensor **hn, asg_tensor **cn, asg_tensor **steps) {
  asg_shape xs = asg_tensor_shape(x);
  int64_t T = xs.dims[0], B = xs.dims[1], H = l->i[2], D = l->i[4];
  int64_t G = l->i[0] == CELL_LSTM ? 4 : 3;
  asg_dtype dt = asg_tensor_dtype(x);
  asg_tensor *x2 = asg_reshape(x, ASG_SHAPE(-1, xs.dims[2])), *ys[2] = {NULL, NULL};
  for (int d = 0; d < D; d++) {
    char scope[32];
    snprintf(scope, sizeof scope, "l%lld%s", (long long)k, d ? "_reverse" : "");
    asg_scope_push(l->g, scope);
    cell_w w = cell_weights(l, k, d, dt);
    /* the input projection of every step: one GEMM [T*B, in] x [in, G*H] */
    asg_tensor *xp = asg_matmul_t(x2, w.w_ih, false, true);
    if (w.b_x) xp = asg_add(xp, w.b_x);
    xp = asg_reshape(xp, ASG_SHAPE(T, B, G * H));
    asg_tensor *h = state_row(h0, k * D + d), *c = state_row(c0, k * D + d);
    rows_of(xp, T, steps); /* steps[t] = xp[t], then the state after step t */
    for (int64_t s = 0; s < T; s++) {
      int64_t t = d ? T - 1 - s : s;
      if (l->i[0] == CELL_LSTM)
        lstm_step(steps[t], &w, H, &h, &c);
      else
        gru_step(steps[t], &w, H, &h);
      steps[t] = asg_unsqueeze(h, 0);
    }
    ys[d] = asg_concat(steps, (int)T, 0);
    hn[k * D + d] = asg_unsqueeze(h, 0);
    if (cn) cn[k * D + d] = asg_unsqueeze(c, 0);
    asg_scope_pop(l->g);
  }
  return D == 2 ? asg_concat(ys, 2, 2) : ys[0];
}

static asg_tensor *rnn_fail_shape(asg_layer *l, const char *what, asg_shape got, const char *want) {
  char b[96];
  return asg_graph_fail(l->g, ASG_ERR_SHAPE, cell_name(l), "%s %s: expected %s", what,
                        asg_graph_shape_str(l->g, got, b, sizeof b), want);
}

/* Checks an initial state against [L*D, B, H] ([L*D, H] unbatched). */
static bool state_ok(asg_layer *l, const char *what, asg_tensor *s, asg_tensor *x, int64_t B,
                     bool batched) {
  char want[128], bb[48];
  int64_t LD = l->i[3] * l->i[4];
  asg_shape ss = asg_tensor_shape(s);
  asg_shape exp = batched ? ASG_SHAPE(LD, B, l->i[2]) : ASG_SHAPE(LD, l->i[2]);
  if (!asg_shape_equal(ss, exp)) {
    snprintf(want, sizeof want, "%s (layers*directions, %shidden)",
             asg_graph_shape_str(l->g, exp, bb, sizeof bb), batched ? "batch, " : "");
    rnn_fail_shape(l, what, ss, want);
    return false;
  }
  if (asg_tensor_dtype(s) != asg_tensor_dtype(x)) {
    asg_graph_fail(l->g, ASG_ERR_DTYPE, cell_name(l), "%s is %s but the input is %s", what,
                   asg_dtype_name(asg_tensor_dtype(s)), asg_dtype_name(asg_tensor_dtype(x)));
    return false;
  }
  return true;
}

static asg_tensor *rnn_forward(asg_layer *l, asg_tensor *x, asg_tensor *h0, asg_tensor *c0,
                               asg_tensor **h_n, asg_tensor **c_n) {
  char b[96];
  asg_graph *g = l->g;
  bool lstm = l->i[0] == CELL_LSTM;
  asg_shape xs = asg_tensor_shape(x);
  if (xs.ndim != 2 && xs.ndim != 3)
    return rnn_fail_shape(l, "input", xs,
                          l->i[5] ? "[batch, seq, features] or unbatched [seq, features]"
                                  : "[seq, batch, features] or unbatched [seq, features]");
  if (!asg_dtype_is_float(asg_tensor_dtype(x)))
    return asg_graph_fail(g, ASG_ERR_DTYPE, cell_name(l), "input must be floating point, got %s",
                          asg_dtype_name(asg_tensor_dtype(x)));
  bool batched = xs.ndim == 3, bf = batched && l->i[5];
  int64_t T = xs.dims[bf ? 1 : 0], B = batched ? xs.dims[bf ? 0 : 1] : 1;
  if (xs.dims[xs.ndim - 1] != l->i[1])
    return asg_graph_fail(g, ASG_ERR_SHAPE, cell_name(l),
                          "input %s: the last dim must be the layer's input size %lld",
                          asg_graph_shape_str(g, xs, b, sizeof b), (long long)l->i[1]);
  if (asg_dim_is_symbolic(T))
    return asg_graph_fail(g, ASG_ERR_SHAPE, cell_name(l),
                          "input %s: the sequence length must be a constant (the layer is "
                          "unrolled over its steps); only the batch may be symbolic",
                          asg_graph_shape_str(g, xs, b, sizeof b));
  if (c0 && !lstm)
    return asg_graph_fail(g, ASG_ERR_INVALID, cell_name(l), "a GRU has no cell state (c0)");
  if (h0 && !state_ok(l, "h0", h0, x, B, batched)) return NULL;
  if (c0 && !state_ok(l, "c0", c0, x, B, batched)) return NULL;

  /* work seq-first and batched: [T, B, in]; states [L*D, B, H] */
  if (!batched) {
    x = asg_unsqueeze(x, 1);
    if (h0) h0 = asg_unsqueeze(h0, 1);
    if (c0) c0 = asg_unsqueeze(c0, 1);
  } else if (bf) {
    x = asg_transpose(x, 0, 1);
  }
  int64_t L = l->i[3], LD = L * l->i[4];
  asg_tensor **hn = asg_graph_alloc(g, sizeof *hn * (size_t)LD);
  asg_tensor **cn = lstm ? asg_graph_alloc(g, sizeof *cn * (size_t)LD) : NULL;
  asg_tensor **steps = asg_graph_alloc(g, sizeof *steps * (size_t)T);
  if (!hn || (lstm && !cn) || !steps) return NULL;
  for (int64_t k = 0; k < L; k++) {
    x = run_layer(l, k, x, h0, c0, hn, cn, steps);
    if (k + 1 < L && l->f[0] > 0 && asg_graph_is_training(g))
      x = asg_dropout(x, l->f[0], asg__layer_seed(l) + (uint64_t)k);
  }
  asg_tensor *hs = asg_concat(hn, (int)LD, 0), *cs = lstm ? asg_concat(cn, (int)LD, 0) : NULL;
  if (!batched) {
    x = asg_squeeze(x, 1);
    hs = asg_squeeze(hs, 1);
    if (cs) cs = asg_squeeze(cs, 1);
  } else if (bf) {
    x = asg_transpose(x, 0, 1);
  }
  if (h_n) *h_n = hs;
  if (c_n) *c_n = cs;
  return x;
}

static asg_tensor *rnn_apply(asg_layer *l, asg_tensor *x, asg_tensor *mask) {
  (void)mask;
  return rnn_forward(l, x, NULL, NULL, NULL, NULL);
}

asg_tensor *asg_rnn_apply(asg_layer *l, asg_tensor *x, asg_tensor *h0, asg_tensor *c0,
                          asg_tensor **h_n, asg_tensor **c_n) {
  if (h_n) *h_n = NULL;
  if (c_n) *c_n = NULL;
  if (!l || !x) return NULL; /* a failed constructor or input: the graph has the error */
  if (l->apply != rnn_apply)
    return asg_graph_fail(l->g, ASG_ERR_INVALID, l->name,
                          "asg_rnn_apply needs an LSTM or GRU layer (asg_nn_lstm, asg_nn_gru)");
  asg_scope_push(l->g, l->name);
  asg_tensor *y = rnn_forward(l, x, h0, c0, h_n, c_n);
  asg_scope_pop(l->g);
  if (!y) {
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
  }
  return y;
}

static asg_layer *rnn_new(asg_graph *g, const char *name, int cell, int64_t in, int64_t hidden,
                          const asg_rnn_opts *o) {
  asg_rnn_opts d = {0};
  if (!o) o = &d;
  asg_layer *l = asg__layer_new(g, name, rnn_apply);
  if (!l) return NULL;
  const char *cn = cell == CELL_LSTM ? "lstm" : "gru";
  int64_t L = o->num_layers ? o->num_layers : 1, D = o->bidirectional ? 2 : 1;
  int per = o->no_bias ? 2 : 4;
  if (in < 1 || hidden < 1)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "%s: input size (%lld) and hidden size (%lld) must be >= 1",
                                       cn, (long long)in, (long long)hidden);
  if (L < 1 || L * D * per > ASG_LAYER_MAX_PARAMS)
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name,
                                       "%s: num_layers %d out of range [1, %lld]%s", cn,
                                       o->num_layers, (long long)(ASG_LAYER_MAX_PARAMS / (D * per)),
                                       D == 2 ? " for a bidirectional layer" : "");
  if (!(o->dropout >= 0 && o->dropout < 1))
    return (asg_layer *)asg_graph_fail(g, ASG_ERR_INVALID, l->name, "%s: dropout %g outside [0, 1)",
                                       cn, o->dropout);
  asg_dtype dt = o->dtype;
  if (!asg__layer_dtype_ok(l, cn, dt)) return NULL;
  l->i[0] = cell;
  l->i[1] = in;
  l->i[2] = hidden;
  l->i[3] = L;
  l->i[4] = D;
  l->i[5] = o->batch_first;
  l->i[6] = !o->no_bias;
  l->f[0] = o->dropout;
  int64_t G = cell == CELL_LSTM ? 4 : 3;
  double bound = 1.0 / sqrt((double)hidden); /* PyTorch: every parameter ~ U(+-1/sqrt(H)) */
  asg_init init = asg_init_uniform(-bound, bound);
  static const char *const kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
  for (int64_t k = 0; k < L; k++)
    for (int dir = 0; dir < D; dir++)
      for (int j = 0; j < per; j++) {
        char buf[64];
        int n =
            snprintf(buf, sizeof buf, "%s_l%lld%s", kinds[j], (long long)k, dir ? "_reverse" : "");
        char *pn = asg_graph_alloc(g, (size_t)n + 1); /* the layer keeps the pointer */
        if (!pn) return NULL;
        memcpy(pn, buf, (size_t)n + 1);
        asg_shape s = j == 0   ? ASG_SHAPE(G * hidden, k ? D * hidden : in)
                      : j == 1 ? ASG_SHAPE(G * hidden, hidden)
                               : ASG_SHAPE(G * hidden);
        if (!asg__layer_param(l, pn, dt, s, init, true)) return NULL;
      }
  return l;
}

asg_layer *asg_nn_lstm(asg_graph *g, const char *name, int64_t input_size, int64_t hidden_size,
                       const asg_rnn_opts *o) {
  return rnn_new(g, name, CELL_LSTM, input_size, hidden_size, o);
}

asg_layer *asg_nn_gru(asg_graph *g, const char *name, int64_t input_size, int64_t hidden_size,
                      const asg_rnn_opts *o) {
  return rnn_new(g, name, CELL_GRU, input_size, hidden_size, o);
}
