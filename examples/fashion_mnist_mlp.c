/* Fashion-MNIST with a 784-512-256-10 MLP trained by Adam on the CPU.
 *
 *   fashion_mnist_mlp [--epochs N] [--batch B] [--lr LR] [--limit N]
 *                     [--data DIR] [--threads T] [--min-accuracy A]
 *                     [--backend cpu|cuda|vulkan]
 *
 * The train step (forward, backward, Adam update) is one compiled program.
 * The evaluation program comes from the same builder in a second graph
 * (batch 1000, training mode off) and shares the train program's variables. */
#include "common/fmnist.h"

/* x [B, 784] -> logits [B, 10] */
static asg_tensor *mlp(asg_graph *g, int batch, asg_tensor **x) {
  asg_layer *layers[] = {
      asg_nn_linear(g, "fc1", 784, 512), asg_nn_activation(g, "relu1", ASG_ACT_RELU),
      asg_nn_linear(g, "fc2", 512, 256), asg_nn_activation(g, "relu2", ASG_ACT_RELU),
      asg_nn_linear(g, "fc3", 256, 10),
  };
  *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, 784));
  return asg_layer_apply(asg_nn_sequential(g, "mlp", 5, layers), *x);
}

int main(int argc, char **argv) {
  fmnist_opts o = {
      .epochs = 10, .batch = 128, .lr = 1e-3, .dir = "/usr/share/datasets/fashion-mnist"};
  fmnist d;
  if (fmnist_parse(argc, argv, &o) || fmnist_load(&o, 0.0f, 1.0f, &d)) return 2;
  printf("Fashion-MNIST: %lld train, %lld test images; MLP 784-512-256-10, Adam lr %g, batch %d\n",
         (long long)d.ntrain, (long long)d.ntest, o.lr, o.batch);

  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 1);
  asg_tensor *x, *logits = mlp(g, o.batch, &x);
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(o.batch));
  asg_tensor *loss = asg_softmax_cross_entropy(logits, y, 0.0, -100);
  asg_compile_opts opts = {.backend = o.backend, .num_threads = o.threads};
  asg_program *train = asg_compile_train(g, loss, asg_adam(o.lr), 0, NULL, &opts);

  const int eb = 1000;
  asg_graph *ge = asg_graph_new();
  asg_graph_set_training(ge, false);
  asg_tensor *xe, *pred = asg_argmax(mlp(ge, eb, &xe), 1, false);
  asg_compile_opts eopts = {
      .backend = o.backend, .share_variables = train, .num_threads = o.threads};
  asg_program *eval = train ? asg_compile(ge, 1, &pred, &eopts) : NULL;
  if (!train || !eval) {
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  printf("train step: %d kernels, %.1f MB activations\n", asg_program_step_count(train),
         asg_program_peak_memory(train) / 1e6);
  int rc = fmnist_run(train, loss, eval, pred, eb, &d, &o);
  asg_program_free(eval), asg_program_free(train);
  asg_graph_free(ge), asg_graph_free(g);
  fmnist_free(&d);
  return rc;
}
