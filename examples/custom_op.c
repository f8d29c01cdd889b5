/* A custom op from user code (include/asg/custom.h, docs/custom_ops.md):
 * swish with a learned beta, y = x * sigmoid(beta * x), registered with a
 * shape function, a CPU kernel and a gradient written with existing ops,
 * then used as the activation of a small MLP that fits y = sin(2x) + x/2.
 * beta is a trainable variable like any weight: it moves with Adam.
 *
 * The op has no CUDA kernel: compiling for CUDA (or Vulkan) is an error
 * that names it; docs/custom_ops.md shows how to add a CUDA kernel. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "asg/asg.h"
#include "common/opts.h"

enum { N = 256, H = 32 };

/* Output: x's dtype and shape. beta: one element of x's dtype (f32 here). */
static int swish_shape(const asg_custom_sig *s, asg_dtype *dt, asg_shape *sh, char *msg, size_t n) {
  if (s->in_dtype[0] != ASG_F32 || s->in_dtype[1] != ASG_F32)
    return snprintf(msg, n, "x and beta must be f32"), 1;
  if (asg_shape_numel(s->in_shape[1]) != 1) return snprintf(msg, n, "beta must be one element"), 1;
  *dt = ASG_F32;
  *sh = s->in_shape[0];
  return 0;
}

/* The CPU kernel: host pointers, every output element written. */
static int swish_cpu(const asg_custom_call *c) {
  const float *x = c->in[0], beta = *(const float *)c->in[1];
  float *y = c->out;
  for (int64_t i = 0; i < asg_shape_numel(c->out_shape); i++)
    y[i] = x[i] / (1 + expf(-beta * x[i]));
  return 0;
}

/* The gradient as more graph: with s = sigmoid(beta x),
 *   dL/dx    = dy * (s + beta x s (1 - s))
 *   dL/dbeta = dy * x^2 s (1 - s)   (x's shape: summed down to beta's) */
static int swish_grad(const asg_custom_grad_args *a, asg_tensor **din) {
  asg_tensor *x = a->in[0], *beta = a->in[1];
  asg_tensor *s = asg_sigmoid(asg_mul(beta, x));
  asg_tensor *ds = asg_mul(s, asg_add_scalar(asg_neg(s), 1.0));
  if (a->need[0]) din[0] = asg_mul(a->dout, asg_add(s, asg_mul(asg_mul(beta, x), ds)));
  if (a->need[1]) din[1] = asg_mul(a->dout, asg_mul(asg_mul(x, x), ds));
  return 0;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {{"backend", required_argument, 0, 'b'},
                                     {"steps", required_argument, 0, 's'},
                                     {"help", no_argument, 0, 'h'},
                                     {0, 0, 0, 0}};
  const char *backend = "cpu";
  int steps = 1500;
  for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
    if (c == 'b') {
      backend = optarg;
    } else if (c == 's') {
      if (opt_int("steps", optarg, 1, 1000000, &steps)) return 2;
    } else {
      if (c == 'h')
        printf("usage: %s [--backend cpu (cpu)] [--steps N (1500)]\n"
               "Registers swish with a learned beta as a custom op (CPU kernel, gradient from\n"
               "existing ops) and fits y = sin(2x) + x/2 with a 1-%d-%d-1 MLP using it.\n"
               "Exits non-zero unless the loss drops below 1%% of its first value.\n",
               argv[0], H, H);
      return c == 'h' ? 0 : 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "unexpected argument '%s' (--help lists the options)\n", argv[optind]);
    return 2;
  }

  /* 1. register the op once per process */
  const asg_custom_op *swish;
  const asg_custom_desc desc = {.name = "example.swish_beta",
                                .n_inputs = 2,
                                .shape = swish_shape,
                                .cpu = swish_cpu,
                                .grad = swish_grad};
  if (asg_custom_register(&desc, &swish) != ASG_OK) {
    fprintf(stderr, "register: %s\n", asg_last_error());
    return 1;
  }

  /* 2. data: x uniform in [-2, 2] */
  static float X[N], Y[N];
  for (int i = 0; i < N; i++) {
    X[i] = -2.0f + 4.0f * (float)i / (N - 1);
    Y[i] = sinf(2 * X[i]) + 0.5f * X[i];
  }

  /* 3. the model: linear layers with the custom activation, one beta each */
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 7);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(N, 1));
  asg_tensor *y = asg_input(g, "y", ASG_F32, ASG_SHAPE(N, 1));
  asg_layer *l1 = asg_nn_linear(g, "l1", 1, H), *l2 = asg_nn_linear(g, "l2", H, H);
  asg_layer *l3 = asg_nn_linear(g, "l3", H, 1);
  asg_tensor *b1 = asg_variable(g, "beta1", ASG_F32, ASG_SHAPE(1), asg_init_constant(1));
  asg_tensor *b2 = asg_variable(g, "beta2", ASG_F32, ASG_SHAPE(1), asg_init_constant(1));
  asg_tensor *h1[2] = {asg_layer_apply(l1, x), b1};
  asg_tensor *a1 = asg_custom(g, swish, h1, 2);
  asg_tensor *h2[2] = {asg_layer_apply(l2, a1), b2};
  asg_tensor *a2 = asg_custom(g, swish, h2, 2);
  asg_tensor *loss = asg_mse_loss(asg_layer_apply(l3, a2), y, ASG_REDUCE_MEAN);
  asg_compile_opts opts = {.backend = backend};
  asg_program *step = asg_compile_train(g, loss, asg_adam(1e-2), 0, NULL, &opts);
  if (!step) { /* e.g. --backend cuda: the op has no CUDA kernel */
    fprintf(stderr, "compile: %s\n", asg_last_error());
    asg_graph_free(g);
    return 1;
  }

  /* 4. train */
  asg_program_feed(step, "x", X, sizeof X);
  asg_program_feed(step, "y", Y, sizeof Y);
  double first = 0, last = 0;
  for (int t = 0; t < steps; t++) {
    if (asg_program_run(step) != ASG_OK) {
      fprintf(stderr, "run: %s\n", asg_last_error());
      break;
    }
    last = asg_program_scalar(step, loss);
    if (t == 0) first = last;
    if (t % (steps / 5 > 0 ? steps / 5 : 1) == 0 || t == steps - 1)
      printf("step %5d  loss %.6f\n", t, last);
  }
  float beta[2];
  asg_program_get_variable(step, "beta1", &beta[0], sizeof(float));
  asg_program_get_variable(step, "beta2", &beta[1], sizeof(float));
  printf("learned beta: %.3f %.3f (from 1)\nloss %.6f -> %.6f\n", beta[0], beta[1], first, last);
  asg_program_free(step);
  asg_graph_free(g);
  return last < 0.01 * first ? 0 : 1;
}
