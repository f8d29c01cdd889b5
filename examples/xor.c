/* Learns XOR with a 2-8-1 MLP through the public API alone: build the graph,
 * derive gradients as graph, write the SGD update as assign ops, compile
 * once, run many times. */
#include <stdio.h>

#include "asg/asg.h"
#include "common/opts.h"

int main(int argc, char **argv) {
  const char *backend;
  int rc = opt_backend_only(argc, argv,
                            "Learns XOR with a 2-8-1 MLP and SGD written as assign ops.", &backend);
  if (rc) return rc > 0 ? 0 : 2;
  const float X[8] = {0, 0, 0, 1, 1, 0, 1, 1}, Y[4] = {0, 1, 1, 0};
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 42);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 2));
  asg_tensor *y = asg_input(g, "y", ASG_F32, ASG_SHAPE(4, 1));
  asg_tensor *w1 = asg_variable(g, "w1", ASG_F32, ASG_SHAPE(2, 8), asg_init_uniform(-1, 1));
  asg_tensor *b1 = asg_variable(g, "b1", ASG_F32, ASG_SHAPE(8), asg_init_zeros());
  asg_tensor *w2 = asg_variable(g, "w2", ASG_F32, ASG_SHAPE(8, 1), asg_init_uniform(-1, 1));
  asg_tensor *b2 = asg_variable(g, "b2", ASG_F32, ASG_SHAPE(1), asg_init_zeros());
  asg_tensor *h = asg_tanh(asg_add(asg_matmul(x, w1), b1));
  asg_tensor *p = asg_sigmoid(asg_add(asg_matmul(h, w2), b2));
  asg_tensor *loss = asg_mean(asg_mul(asg_sub(p, y), asg_sub(p, y)), ASG_ALL_AXES, false);
  asg_tensor *params[4] = {w1, b1, w2, b2}, *grads[4], *outs[6] = {loss, p};
  if (asg_grad(loss, 4, params, grads) != ASG_OK) {
    fprintf(stderr, "grad: %s\n", asg_last_error());
    return 1;
  }
  for (int i = 0; i < 4; i++) /* SGD: w <- w - lr * dw, as graph */
    outs[2 + i] = asg_assign(params[i], asg_sub(params[i], asg_mul_scalar(grads[i], 2.0)));
  asg_compile_opts opts = {.backend = backend};
  asg_program *step = asg_compile(g, 6, outs, &opts);
  if (!step) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  asg_program_feed(step, "x", X, sizeof X);
  asg_program_feed(step, "y", Y, sizeof Y);
  for (int it = 0; it <= 2000; it++) {
    asg_program_run(step);
    if (it % 500 == 0) printf("step %4d  loss %.5f\n", it, asg_program_scalar(step, loss));
  }
  float out[4];
  asg_program_fetch(step, p, out, sizeof out);
  int correct = 0;
  for (int i = 0; i < 4; i++) {
    printf("%g xor %g -> %.3f\n", X[2 * i], X[2 * i + 1], out[i]);
    correct += (out[i] > 0.5f) == (Y[i] > 0.5f);
  }
  printf("%d/4 correct\n", correct);
  asg_program_free(step);
  asg_graph_free(g);
  return correct == 4 ? 0 : 1;
}
