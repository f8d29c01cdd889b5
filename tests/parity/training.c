/* Parity cases: whole training steps (MLP, CNN, transformer block; Adam,
 * AdamW and the fused update ops), losses of each step and every variable
 * after the last one. */
#include "parity.h"

/* --------------------------------------------------------- training steps */

typedef struct model {
  asg_graph *g;
  asg_tensor *loss;
  int n_in;
  asg_tensor *in[4];
  int classes[4]; /* integer inputs: labels in [0, classes) */
} model;

typedef void (*model_fn)(model *m, double p);

static asg_tensor *model_in(model *m, const char *name, asg_dtype dt, asg_shape s, int classes) {
  asg_tensor *t = asg_input(m->g, name, dt, s);
  if (m->n_in < 4) {
    m->in[m->n_in] = t;
    m->classes[m->n_in++] = classes;
  }
  return t;
}

/* Linear(20, 33) - ReLU - Linear(33, 7), softmax cross-entropy. */
static void build_mlp(model *m, double p) {
  (void)p;
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F32, ASG_SHAPE(37, 20), 0);
  asg_tensor *y = model_in(m, "y", ASG_I32, ASG_SHAPE(37), 7);
  asg_tensor *h = asg_relu(asg_layer_apply(asg_nn_linear(g, "fc1", 20, 33), x));
  asg_tensor *logits = asg_layer_apply(asg_nn_linear(g, "fc2", 33, 7), h);
  m->loss = asg_softmax_cross_entropy(logits, y, 0, -100);
}

/* conv(3->6, 3x3, pad 1, no bias) - batchnorm - relu - maxpool 2 - flatten -
 * linear(150, 5). A conv bias before batch norm would have an analytically
 * zero gradient: pure rounding noise, which Adam normalizes to steps of
 * +-lr that differ between any two backends (see cases_train). */
static void build_cnn(model *m, double p) {
  (void)p;
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F32, ASG_SHAPE(4, 3, 11, 11), 0);
  asg_tensor *y = model_in(m, "y", ASG_I64, ASG_SHAPE(4), 5);
  asg_conv_params cp = {.padding = {1, 1}};
  asg_pool_params pp = {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}};
  asg_tensor *h = asg_layer_apply(asg_nn_conv2d(g, "conv1", 3, 6, 3, 3, cp, false), x);
  h = asg_layer_apply(asg_nn_batchnorm(g, "bn1", 6, 0, 0), h);
  h = asg_relu(h);
  h = asg_layer_apply(asg_nn_maxpool2d(g, "pool", pp), h);
  h = asg_layer_apply(asg_nn_flatten(g, "flat", 1), h);
  asg_tensor *logits = asg_layer_apply(asg_nn_linear(g, "fc", 150, 5), h);
  m->loss = asg_softmax_cross_entropy(logits, y, 0, -100);
}

/* Pre-LN transformer block (causal attention, dropout p) on [2,8,16], MSE.
 * The attention projections have no bias: the key bias's gradient is
 * analytically zero (softmax ignores a per-query constant; see
 * cases_train); the feed-forward layers keep theirs. */
static void transformer(model *m, double p, bool fused_qkv) {
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F32, ASG_SHAPE(2, 8, 16), 0);
  asg_tensor *t = model_in(m, "t", ASG_F32, ASG_SHAPE(2, 8, 16), 0);
  asg_attention_opts o = {0};
  o.causal = true;
  o.dropout = p;
  o.no_bias = true;
  o.fused_qkv = fused_qkv;
  asg_tensor *y = asg_layer_apply(asg_nn_transformer_block(g, "blk", 16, 4, 32, &o, p), x);
  m->loss = asg_mse_loss(y, t, ASG_REDUCE_MEAN);
}
static void build_transformer(model *m, double p) { transformer(m, p, false); }
/* q, k, v from one projection: split into views, gradients joined by a concat */
static void build_transformer_fused(model *m, double p) { transformer(m, p, true); }

static void train_case(const char *title, model_fn build, double p, asg_optim opt, int steps) {
  model m[2];
  asg_program *prog[2] = {NULL, NULL};
  char msg[512] = "";
  int ok = 1;
  for (int i = 0; i < 2; i++) {
    memset(&m[i], 0, sizeof m[i]);
    m[i].g = asg_graph_new();
    asg_graph_set_seed(m[i].g, 2024);
    build(&m[i], p);
    if (!m[i].loss && ok) {
      snprintf(msg, sizeof msg, "build: %s", asg_graph_error(m[i].g));
      ok = 0;
    }
    if (ok) {
      asg_compile_opts o = {0};
      o.backend = i ? g_backend : "cpu";
      o.num_threads = i ? dut_threads() : 0;
      prog[i] = asg_compile_train(m[i].g, m[i].loss, opt, 0, NULL, &o);
      if (!prog[i]) {
        snprintf(msg, sizeof msg, "compile_train on %s: %s", o.backend, asg_last_error());
        ok = 0;
      }
    }
  }
  for (int step = 0; step < steps && ok; step++) {
    for (int j = 0; j < m[0].n_in && ok; j++) {
      asg_tensor *t = m[0].in[j];
      asg_dtype dt = asg_tensor_dtype(t);
      long n = numel(asg_tensor_shape(t));
      double *v = m[0].classes[j] ? rv(n, 0, m[0].classes[j], true) : rv(n, -1, 1, false);
      void *b = to_dtype(dt, v, n);
      size_t bytes = (size_t)n * asg_dtype_size(dt);
      if (asg_program_feed(prog[0], asg_tensor_name(t), b, bytes) != ASG_OK ||
          asg_program_feed(prog[1], asg_tensor_name(t), b, bytes) != ASG_OK) {
        snprintf(msg, sizeof msg, "feed %s: %s", asg_tensor_name(t), asg_last_error());
        ok = 0;
      }
      free(v), free(b);
    }
    if (!ok) break;
    if (asg_program_run(prog[0]) != ASG_OK || asg_program_run(prog[1]) != ASG_OK) {
      snprintf(msg, sizeof msg, "step %d: run: %s", step, asg_last_error());
      ok = 0;
      break;
    }
    double want = asg_program_scalar(prog[0], m[0].loss);
    double got = asg_program_scalar(prog[1], m[1].loss);
    char what[32];
    snprintf(what, sizeof what, "step %d loss", step);
    ok = cmp_vals(what, ASG_F32, C_ELEM, &got, &want, 1, msg, sizeof msg);
    if (ok && !isfinite(want)) {
      snprintf(msg, sizeof msg, "step %d: loss is %g on cpu", step, want);
      ok = 0;
    }
  }
  if (ok) {
    int nv = asg_program_variable_count(prog[0]);
    if (nv != asg_program_variable_count(prog[1])) {
      snprintf(msg, sizeof msg, "variable count %d on cpu, %d on %s", nv,
               asg_program_variable_count(prog[1]), g_backend);
      ok = 0;
    }
    for (int i = 0; i < nv && ok; i++) {
      const char *name = NULL;
      asg_program_variable_info(prog[0], i, &name, NULL, NULL);
      ok = cmp_variable(prog[0], prog[1], name, C_ELEM, msg, sizeof msg);
    }
  }
  report(title, ok, msg);
  for (int i = 0; i < 2; i++) {
    asg_program_free(prog[i]);
    asg_graph_free(m[i].g);
  }
}

/* Adam divides the first moment by the root of the second, so a parameter
 * whose gradient is analytically zero but numerically rounding noise moves
 * by about +-lr per step in a direction that depends on the summation order:
 * the models hold no such parameter (a conv bias before batch norm, an
 * attention key bias), otherwise every parameter is compared. */
void cases_train(void) {
  train_case("train MLP Linear(20,33)-ReLU-Linear(33,7) + softmax CE, Adam, 3 steps", build_mlp, 0,
             asg_adam(1e-2), 3);
  train_case("train CNN conv(no bias)-batchnorm-relu-maxpool-flatten-linear, Adam, 3 steps",
             build_cnn, 0, asg_adam(1e-2), 3);
  train_case("train pre-LN transformer block [2,8,16] causal (no qkvo bias), dropout 0, MSE, Adam, "
             "3 steps",
             build_transformer, 0, asg_adam(1e-3), 3);
  train_case("train pre-LN transformer block [2,8,16] causal (no qkvo bias), dropout 0.1, MSE, "
             "Adam, 3 steps",
             build_transformer, 0.1, asg_adam(1e-3), 3);
  train_case("train pre-LN transformer block [2,8,16] causal, fused_qkv (no bias), dropout 0, MSE, "
             "Adam, 3 steps",
             build_transformer_fused, 0, asg_adam(1e-3), 3);
}

/* f64 and f32 parameters in one model (tanh(x W1) cast(W2), MSE, all f64
 * activations): the optimizer's per-step scalars are then f64 and are
 * rounded to each parameter's dtype inside the fused update. */
static void build_mixed(model *m, double p) {
  (void)p;
  asg_graph *g = m->g;
  asg_tensor *x = model_in(m, "x", ASG_F64, ASG_SHAPE(9, 5), 0);
  asg_tensor *t = model_in(m, "t", ASG_F64, ASG_SHAPE(9, 3), 0);
  asg_tensor *w1 = asg_variable(g, "w1", ASG_F64, ASG_SHAPE(5, 4), asg_init_uniform(-0.8, 0.8));
  asg_tensor *w2 = asg_variable(g, "w2", ASG_F32, ASG_SHAPE(4, 3), asg_init_uniform(-0.8, 0.8));
  asg_tensor *y = asg_matmul(asg_tanh(asg_matmul(x, w1)), asg_cast(w2, ASG_F64));
  m->loss = asg_mse_loss(y, t, ASG_REDUCE_MEAN);
}

/* Adam and AdamW steps are built of the fused update ops (adam_moment,
 * adam_moment2, adam_param: src/optim/optim.c builds every Adam/AdamW
 * parameter update with them, and nothing else does), so these training
 * steps are their parity cases: every parameter and both moments are
 * compared after the last step. The ops sit inside the optimizer's graph,
 * out of the suite's reach, so they are recorded by name here. */
void cases_optim(void) {
  static const char *const ops[] = {"adam_moment", "adam_moment2", "adam_param"};
  g_cur_case = "train MLP, AdamW (fused Adam updates), 3 steps";
  train_case(g_cur_case, build_mlp, 0, asg_adamw(1e-2, 0.1), 3);
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < g_n_ops && i < 256; i++)
      if (!g_covered[i] && strcmp(asg_op_name(i), ops[k]) == 0) {
        g_covered[i] = true;
        snprintf(g_first_case[i], sizeof g_first_case[i], "%s", g_cur_case);
      }
  asg_optim adamw = asg_adamw(2e-2, 0.05);
  adamw.beta1 = 0.8, adamw.beta2 = 0.95, adamw.eps = 1e-6;
  train_case("train f64+f32 parameters (f64 step scalars), AdamW, 4 steps", build_mixed, 0, adamw,
             4);
  asg_optim adam = asg_adam(2e-2);
  adam.weight_decay = 0.01; /* L2: added to the gradient before the fused moments */
  adam.accum_steps = 2;     /* the fused values gated by the accumulation flag */
  train_case("train f64+f32 parameters, Adam with L2 weight decay, 2-run accumulation, 6 runs",
             build_mixed, 0, adam, 6);
}
