/* Gradients of symbolic graphs (issue 17): one float64 program computing a
 * loss and its gradients (asg_grad) over a symbolic batch (and sequence
 * length) runs at several bindings; at each, every gradient matches central
 * differences of the loss computed through the same program (variables
 * perturbed with asg_program_set_variable), the loss equals, bitwise on the
 * CPU with one thread, a static program's built for that shape, and so do
 * the gradients (to rounding). A divisor fixed while building (a mean over the batch that
 * divides by the first binding's size) fails here. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_VARS 12
#define MAX_INS 3
#define H 1e-6     /* central difference step */
#define PER_VAR 10 /* elements checked per variable */
#define ATOL 1e-8  /* f64: truncation O(H^2), rounding ~1e-16 / H */
#define RTOL 1e-6

enum { MLP, CE, ATTN, CONV_BN, VAR_KL, N_KINDS };
static const char *kind_name[N_KINDS] = {"mlp_mean", "softmax_ce", "ln_attention", "conv_bn_pool",
                                         "var_kl"};

typedef struct model {
  asg_graph *g;
  asg_tensor *loss;
  int n_wrt, n_in;
  asg_tensor *wrt[MAX_VARS], *grads[MAX_VARS];
  const char *in_name[MAX_INS];
  asg_dtype in_dt[MAX_INS];
  asg_shape in_shape[MAX_INS]; /* concrete, for the binding (b, t) */
  int in_classes[MAX_INS];     /* integer inputs: labels in [0, n); float: 0 */
} model;

static asg_tensor *var(model *m, const char *name, asg_shape s) {
  asg_tensor *v = asg_variable(m->g, name, ASG_F64, s, asg_init_uniform(-0.7, 0.7));
  m->wrt[m->n_wrt++] = v;
  return v;
}

static asg_tensor *input(model *m, const char *name, asg_dtype dt, asg_shape sym, asg_shape real,
                         int classes) {
  m->in_name[m->n_in] = name;
  m->in_dt[m->n_in] = dt;
  m->in_shape[m->n_in] = real;
  m->in_classes[m->n_in++] = classes;
  return asg_input(m->g, name, dt, sym);
}

/* x W + b with W [in, out] (b may be omitted). */
static asg_tensor *dense(model *m, const char *name, asg_tensor *x, int64_t in, int64_t out,
                         bool bias) {
  char n[64];
  snprintf(n, sizeof n, "%s.w", name);
  asg_tensor *y = asg_matmul(x, var(m, n, ASG_SHAPE(in, out)));
  if (!bias) return y;
  snprintf(n, sizeof n, "%s.b", name);
  return asg_add(y, var(m, n, ASG_SHAPE(out)));
}

/* The model of kind; symbolic: batch (and seq) are symbols, else the
 * constants b and t. in_shape gets the concrete shapes for (b, t). */
static void build(model *m, int kind, bool symbolic, int64_t b, int64_t t) {
  memset(m, 0, sizeof *m);
  asg_graph *g = m->g = asg_graph_new();
  asg_graph_set_training(g, true);
  int64_t B = symbolic ? asg_dim(g, "batch", 16) : b;
  int64_t T = symbolic ? asg_dim(g, "seq", 16) : t;
  if (kind == MLP) { /* mean over the batch, directly and through mean-squared error */
    asg_tensor *x = input(m, "x", ASG_F64, ASG_SHAPE(B, 6), ASG_SHAPE(b, 6), 0);
    asg_tensor *y = input(m, "y", ASG_F64, ASG_SHAPE(B, 3), ASG_SHAPE(b, 3), 0);
    asg_tensor *h = asg_tanh(dense(m, "fc1", x, 6, 5, true));
    asg_tensor *o = dense(m, "fc2", h, 5, 3, true);
    asg_tensor *d = asg_sub(o, y);
    asg_tensor *col = asg_mean(asg_mul(o, o), ASG_AXES(0), false); /* [3], divides by batch */
    m->loss = asg_add(asg_mean(asg_mul(d, d), ASG_ALL_AXES, false),
                      asg_sum(asg_mul_scalar(col, 0.5), ASG_ALL_AXES, false));
  } else if (kind == CE) {
    asg_tensor *x = input(m, "x", ASG_F64, ASG_SHAPE(B, 6), ASG_SHAPE(b, 6), 0);
    asg_tensor *lab = input(m, "labels", ASG_I32, ASG_SHAPE(B), ASG_SHAPE(b), 4);
    asg_tensor *logits = dense(m, "fc", asg_tanh(dense(m, "in", x, 6, 5, true)), 5, 4, true);
    m->loss = asg_add(asg_cross_entropy_loss(logits, lab, 0.1, -100, ASG_REDUCE_MEAN),
                      asg_nll_loss(asg_log_softmax(logits, 1), lab, -100, ASG_REDUCE_MEAN));
  } else if (kind == ATTN) { /* pre-LN causal attention block, then token cross-entropy */
    asg_tensor *x = input(m, "x", ASG_F64, ASG_SHAPE(B, T, 8), ASG_SHAPE(b, t, 8), 0);
    asg_tensor *lab = input(m, "labels", ASG_I32, ASG_SHAPE(B, T), ASG_SHAPE(b, t), 5);
    asg_tensor *ln =
        asg_layernorm(x, var(m, "ln.g", ASG_SHAPE(8)), var(m, "ln.b", ASG_SHAPE(8)), 1e-5);
    asg_tensor *qkv = dense(m, "qkv", ln, 8, 24, true), *part[3];
    asg_split(qkv, 2, 3, (const int64_t[]){8, 8, 8}, part);
    for (int i = 0; i < 3; i++)
      part[i] = asg_transpose(asg_reshape(part[i], ASG_SHAPE(B, T, 2, 4)), 1, 2);
    asg_tensor *o = asg_attention(part[0], part[1], part[2], 0.5, true); /* [B, 2, T, 4] */
    o = asg_reshape(asg_transpose(o, 1, 2), ASG_SHAPE(B, T, 8));
    asg_tensor *y = asg_add(x, dense(m, "out", o, 8, 8, false));
    asg_tensor *logits = dense(m, "head", y, 8, 5, false);
    m->loss = asg_cross_entropy_loss(logits, lab, 0.0, -100, ASG_REDUCE_MEAN);
  } else if (kind == CONV_BN) { /* batch norm statistics over the symbolic batch */
    asg_tensor *x = input(m, "x", ASG_F64, ASG_SHAPE(B, 1, 6, 6), ASG_SHAPE(b, 1, 6, 6), 0);
    asg_tensor *lab = input(m, "labels", ASG_I32, ASG_SHAPE(B), ASG_SHAPE(b), 4);
    asg_tensor *h =
        asg_conv2d(x, var(m, "conv.w", ASG_SHAPE(3, 1, 3, 3)), var(m, "conv.b", ASG_SHAPE(3)),
                   (asg_conv_params){.padding = {1, 1}});
    /* f32 weight and bias, cast to x's f64: not differentiated here */
    h = asg_layer_apply(asg_nn_batchnorm(g, "bn", 3, 0.1, 1e-5), h);
    h = asg_avg_pool2d(asg_tanh(h), (asg_pool_params){.kernel = {2, 2}}); /* [B, 3, 3, 3] */
    h = asg_reshape(h, ASG_SHAPE(B, 27));
    m->loss =
        asg_cross_entropy_loss(dense(m, "fc", h, 27, 4, true), lab, 0.0, -100, ASG_REDUCE_MEAN);
  } else { /* unbiased variance over the batch and KL divergence, batchmean */
    asg_tensor *x = input(m, "x", ASG_F64, ASG_SHAPE(B, 5), ASG_SHAPE(b, 5), 0);
    asg_tensor *p = input(m, "p", ASG_F64, ASG_SHAPE(B, 4), ASG_SHAPE(b, 4), 0);
    asg_tensor *h = dense(m, "fc", x, 5, 4, true);
    asg_tensor *v = asg_sum(asg_var(h, ASG_AXES(0), 1, false), ASG_ALL_AXES, false);
    m->loss = asg_add(v, asg_kl_div_loss(asg_log_softmax(h, 1), p, false, ASG_REDUCE_BATCHMEAN));
  }
  TU_CHECK(asg_graph_status(g) == ASG_OK, "%s: build: %s", kind_name[kind], asg_last_error());
  TU_CHECK(asg_grad(m->loss, m->n_wrt, m->wrt, m->grads) == ASG_OK, "%s: grad: %s", kind_name[kind],
           asg_last_error());
}

static asg_program *compile(model *m) {
  asg_tensor *outs[MAX_VARS + 1] = {m->loss};
  memcpy(outs + 1, m->grads, sizeof *outs * (size_t)m->n_wrt);
  asg_compile_opts o = {0};
  o.backend = "cpu";
  o.num_threads = 1;
  asg_program *p = asg_compile(m->g, m->n_wrt + 1, outs, &o);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  return p;
}

static size_t var_numel(const model *m, int i) {
  return (size_t)asg_shape_numel(asg_tensor_shape(m->wrt[i]));
}

/* Feeds m's inputs (shapes for the binding in m->in_shape) with data from
 * seed: floats in [-1, 1) (rows of "p" normalized to probabilities), labels
 * in [0, classes). */
static void feed(asg_program *p, const model *m, unsigned long long seed) {
  for (int i = 0; i < m->n_in; i++) {
    long n = (long)asg_shape_numel(m->in_shape[i]);
    double *d = malloc(sizeof *d * (size_t)n);
    void *buf = malloc(8 * (size_t)n);
    tu_rand(seed + (unsigned long long)i, d, n, m->in_classes[i] ? 0 : -1,
            m->in_classes[i] ? m->in_classes[i] : 1);
    if (strcmp(m->in_name[i], "p") == 0) {
      int64_t c = m->in_shape[i].dims[1];
      for (long r = 0; r < n / c; r++) {
        double s = 0;
        for (int64_t j = 0; j < c; j++)
          s += d[r * c + j] = d[r * c + j] + 1.5; /* positive */
        for (int64_t j = 0; j < c; j++)
          d[r * c + j] /= s;
      }
    }
    tu_from_double(m->in_dt[i], d, buf, n);
    asg_status st = asg_program_feed_tensor(p, m->in_name[i], m->in_dt[i], m->in_shape[i], buf);
    TU_CHECK(st == ASG_OK, "feed %s: %s", m->in_name[i], asg_last_error());
    free(d);
    free(buf);
  }
}

static double loss_of(asg_program *p, const model *m) {
  double l = NAN;
  asg_status st = asg_program_run(p);
  if (st == ASG_OK) st = asg_program_fetch(p, m->loss, &l, sizeof l);
  TU_CHECK(st == ASG_OK, "run: %s", asg_last_error());
  return l;
}

/* Copies the variables of the graph of m from src into dst. */
static void copy_vars(asg_program *src, asg_program *dst) {
  for (int i = 0; i < asg_program_variable_count(src); i++) {
    const char *name;
    asg_dtype dt;
    asg_shape sh;
    asg_program_variable_info(src, i, &name, &dt, &sh);
    size_t bytes = (size_t)asg_shape_numel(sh) * asg_dtype_size(dt);
    void *buf = malloc(bytes);
    TU_CHECK(asg_program_get_variable(src, name, buf, bytes) == ASG_OK &&
                 asg_program_set_variable(dst, name, buf, bytes) == ASG_OK,
             "copy %s: %s", name, asg_last_error());
    free(buf);
  }
}

/* At binding (b, t): loss and gradients of the symbolic program p (of sym)
 * equal a static program's, and the gradients match central differences. */
static void check_binding(int kind, model *sym, asg_program *p, int64_t b, int64_t t) {
  model st;
  build(&st, kind, false, b, t);
  memcpy(sym->in_shape, st.in_shape, sizeof st.in_shape);
  asg_program *q = compile(&st);
  if (!q) {
    asg_graph_free(st.g);
    return;
  }
  unsigned long long seed = (unsigned long long)(1000 * kind + 10 * b + t);
  copy_vars(p, q); /* before running: batch norm's running statistics move */
  feed(p, sym, seed);
  feed(q, &st, seed);
  double ls = loss_of(p, sym), lq = loss_of(q, &st);
  /* kl_div's batchmean divides by the bound batch when running where a
   * static graph multiplies by 1/b: equal to one rounding there */
  bool same = kind == VAR_KL ? fabs(ls - lq) <= 4e-16 * fabs(lq) : memcmp(&ls, &lq, sizeof ls) == 0;
  TU_CHECK(same && ls == ls, "%s b=%lld t=%lld: symbolic loss %.17g, static %.17g", kind_name[kind],
           (long long)b, (long long)t, ls, lq);
  asg_shape ls_shape;
  TU_CHECK(asg_program_output_shape(p, sym->loss, &ls_shape) == ASG_OK && ls_shape.ndim == 0,
           "loss shape");
  double *ga[MAX_VARS]; /* every gradient, before any perturbed run */
  for (int i = 0; i < sym->n_wrt; i++) {
    size_t n = var_numel(sym, i);
    double *gq = malloc(sizeof *gq * n);
    const char *name = asg_tensor_name(sym->wrt[i]);
    ga[i] = malloc(sizeof *ga[i] * n);
    TU_CHECK(asg_program_fetch(p, sym->grads[i], ga[i], sizeof *gq * n) == ASG_OK &&
                 asg_program_fetch(q, st.grads[i], gq, sizeof *gq * n) == ASG_OK,
             "fetch grad %s: %s", name, asg_last_error());
    /* equal to rounding: a mean over a symbolic dim divides by its count
     * when running, where a static program multiplies by 1/n */
    TU_CHECK(tu_close(name, ga[i], gq, (long)n, 1e-15, 1e-12),
             "%s b=%lld t=%lld: grad %s differs from static", kind_name[kind], (long long)b,
             (long long)t, name);
    free(gq);
  }
  for (int i = 0; i < sym->n_wrt; i++) {
    size_t n = var_numel(sym, i);
    double *v = malloc(sizeof *v * n);
    const char *name = asg_tensor_name(sym->wrt[i]);
    TU_CHECK(tu_get_var(p, name, v) == (long)n, "get %s", name);
    size_t stride = n > PER_VAR ? n / PER_VAR : 1;
    for (size_t j = (size_t)(b + t) % stride; j < n; j += stride) {
      double keep = v[j];
      v[j] = keep + H;
      tu_set_var(p, name, v);
      double lp = loss_of(p, sym);
      v[j] = keep - H;
      tu_set_var(p, name, v);
      double lm = loss_of(p, sym);
      v[j] = keep;
      tu_set_var(p, name, v);
      double num = (lp - lm) / (2 * H);
      if (fabs(num - ga[i][j]) > ATOL + RTOL * fabs(num)) {
        TU_CHECK(false, "%s b=%lld t=%lld: d loss / d %s[%zu] = %.12g, central difference %.12g",
                 kind_name[kind], (long long)b, (long long)t, name, j, ga[i][j], num);
        break;
      }
      tu_pass++;
    }
    free(ga[i]);
    free(v);
  }
  asg_program_free(q);
  asg_graph_free(st.g);
}

int main(void) {
  /* (batch, seq) bindings, revisiting the first after the others */
  static const int64_t bind[][2] = {{2, 3}, {5, 7}, {3, 1}, {2, 3}};
  for (int kind = 0; kind < N_KINDS; kind++) {
    model m;
    build(&m, kind, true, 1, 1);
    asg_program *p = compile(&m);
    if (p) {
      for (size_t k = 0; k < sizeof bind / sizeof bind[0]; k++)
        check_binding(kind, &m, p, bind[k][0], bind[k][1]);
      TU_CHECK(asg_program_specialization_count(p) == 3, "%s: %d specializations", kind_name[kind],
               asg_program_specialization_count(p));
    }
    asg_program_free(p);
    asg_graph_free(m.g);
  }
  return tu_finish();
}
