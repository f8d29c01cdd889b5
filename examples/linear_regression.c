/* Linear regression on noisy synthetic data: y = X w* + b* + noise with 8
 * features, fitted by SGD with momentum and a step learning-rate schedule
 * (the rate changes between runs without recompiling). Prints the recovered
 * weights next to the true ones. */
#include <math.h>
#include <stdio.h>

#include "asg/asg.h"
#include "common/opts.h"

enum { N = 256, D = 8 };

int main(int argc, char **argv) {
  const char *backend;
  int rc = opt_backend_only(
      argc, argv, "Fits a linear model with SGD momentum and a step learning-rate schedule.",
      &backend);
  if (rc) return rc > 0 ? 0 : 2;
  static float X[N * D], Y[N];
  const float w_true[D] = {1.5f, -2.0f, 0.5f, 0.0f, 3.0f, -1.0f, 0.25f, 2.0f}, b_true = 0.7f;
  unsigned long long s = 42;
  for (int i = 0; i < N; i++) { /* features U(-1,1), noise N(0, 0.05^2) via sum of uniforms */
    float y = b_true, noise = 0;
    for (int j = 0; j < D; j++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      X[i * D + j] = (float)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
      y += X[i * D + j] * w_true[j];
    }
    for (int k = 0; k < 12; k++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      noise += (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
    }
    Y[i] = y + 0.05f * noise;
  }
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(N, D));
  asg_tensor *y = asg_input(g, "y", ASG_F32, ASG_SHAPE(N));
  asg_layer *lin = asg_nn_linear(g, "lin", D, 1);
  asg_tensor *pred = asg_reshape(asg_layer_apply(lin, x), ASG_SHAPE(N));
  asg_tensor *loss = asg_mse_loss(pred, y, ASG_REDUCE_MEAN);
  asg_compile_opts opts = {.backend = backend};
  asg_program *step = asg_compile_train(g, loss, asg_sgd(0.1, 0.9), 0, NULL, &opts);
  if (!step) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  asg_program_feed(step, "x", X, sizeof X);
  asg_program_feed(step, "y", Y, sizeof Y);
  asg_lr_schedule sched = asg_lr_step(0.1, 100, 0.3);
  for (int t = 0; t < 300; t++) {
    asg_optim_schedule(step, &sched, t);
    asg_program_run(step);
    if (t % 50 == 0)
      printf("step %3d  lr %.4f  loss %.6f\n", t, asg_lr_schedule_at(&sched, t),
             asg_program_scalar(step, loss));
  }
  float w[D], b;
  asg_program_get_variable(step, "lin.weight", w, sizeof w);
  asg_program_get_variable(step, "lin.bias", &b, sizeof b);
  double err = fabs(b - b_true);
  printf("feature  true     fitted\n");
  for (int j = 0; j < D; j++) {
    printf("w[%d]    %6.3f   %6.3f\n", j, w_true[j], w[j]);
    err = fmax(err, fabs(w[j] - w_true[j]));
  }
  printf("bias     %6.3f   %6.3f\nmax abs error %.4f\n", b_true, b, err);
  asg_program_free(step);
  asg_graph_free(g);
  return err < 0.02 ? 0 : 1;
}
