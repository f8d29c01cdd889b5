/* Fashion-MNIST with a small CNN (conv-bn-relu-pool x2, dropout, two linear
 * layers) trained by Adam on the CPU.
 *
 *   fashion_mnist_cnn [--epochs N] [--batch B] [--lr LR] [--limit N]
 *                     [--eval-batch B] [--data DIR] [--threads T]
 *                     [--min-accuracy A] [--help]
 *                     [--backend cpu|cuda|vulkan] [--logdir DIR]
 *
 * The same builder makes the training graph and, with training mode off, the
 * evaluation graph (dropout off, batch norm on running statistics) over a
 * symbolic batch, so that one evaluation program counts every test image
 * (the last, partial batch included); it shares the training program's
 * variables. */
#include "common/fmnist.h"

static asg_tensor *build(asg_graph *g, int64_t batch, asg_tensor **x_out) {
  asg_conv_params same = {.padding = {1, 1}};
  asg_pool_params pool = {.kernel = {2, 2}};
  asg_layer *layers[] = {
      asg_nn_conv2d(g, "conv1", 1, 32, 3, 3, same, false),
      asg_nn_batchnorm(g, "bn1", 32, 0, 0),
      asg_nn_activation(g, "relu1", ASG_ACT_RELU),
      asg_nn_maxpool2d(g, "pool1", pool),
      asg_nn_conv2d(g, "conv2", 32, 64, 3, 3, same, false),
      asg_nn_batchnorm(g, "bn2", 64, 0, 0),
      asg_nn_activation(g, "relu2", ASG_ACT_RELU),
      asg_nn_maxpool2d(g, "pool2", pool),
      asg_nn_flatten(g, "flatten", 1),
      asg_nn_dropout(g, "drop1", 0.25),
      asg_nn_linear(g, "fc1", 64 * 7 * 7, 128),
      asg_nn_activation(g, "relu3", ASG_ACT_RELU),
      asg_nn_dropout(g, "drop2", 0.25),
      asg_nn_linear(g, "fc2", 128, 10),
  };
  asg_layer *net = asg_nn_sequential(g, "net", (int)(sizeof layers / sizeof layers[0]), layers);
  *x_out = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, 1, 28, 28));
  return asg_layer_apply(net, *x_out);
}

int main(int argc, char **argv) {
  fmnist_opts o = {.epochs = 5,
                   .batch = 64,
                   .eval_batch = 500,
                   .lr = 1e-3,
                   .dir = "/usr/share/datasets/fashion-mnist"};
  return fmnist_main(argc, argv, o, 0.2860f, 0.3530f, "CNN", build);
}
