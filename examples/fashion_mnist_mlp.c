/* Fashion-MNIST with a 784-512-256-10 MLP trained by Adam on the CPU.
 *
 *   fashion_mnist_mlp [--epochs N] [--batch B] [--lr LR] [--limit N]
 *                     [--eval-batch B] [--data DIR] [--threads T]
 *                     [--min-accuracy A] [--help]
 *                     [--backend cpu|cuda|vulkan] [--logdir DIR]
 *
 * The train step (forward, backward, Adam update) is one compiled program.
 * The evaluation program comes from the same builder in a second graph
 * (training mode off) over a symbolic batch (asg_dim): one program evaluates
 * batches of 1000 and any last, partial batch (--eval-batch 384: 26 of 384
 * and one of 16), so every test image counts. It shares the train program's
 * variables. */
#include "common/fmnist.h"

/* x [B, 784] -> logits [B, 10] */
static asg_tensor *mlp(asg_graph *g, int64_t batch, asg_tensor **x) {
  asg_layer *layers[] = {
      asg_nn_linear(g, "fc1", 784, 512), asg_nn_activation(g, "relu1", ASG_ACT_RELU),
      asg_nn_linear(g, "fc2", 512, 256), asg_nn_activation(g, "relu2", ASG_ACT_RELU),
      asg_nn_linear(g, "fc3", 256, 10),
  };
  *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, 784));
  return asg_layer_apply(asg_nn_sequential(g, "mlp", 5, layers), *x);
}

int main(int argc, char **argv) {
  fmnist_opts o = {.epochs = 10,
                   .batch = 128,
                   .eval_batch = 1000,
                   .lr = 1e-3,
                   .dir = "/usr/share/datasets/fashion-mnist"};
  return fmnist_main(argc, argv, o, 0.0f, 1.0f, "MLP 784-512-256-10", mlp);
}
