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
  return fmnist_main(argc, argv, o, 0.0f, 1.0f, 1000, "MLP 784-512-256-10", mlp);
}
