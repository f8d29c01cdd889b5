/* Optimizers as graph: the update of every parameter is more nodes (assign
 * ops on variables), so forward, backward and update compile into one
 * program. The learning rate is a variable ("optim/lr"): schedules change it
 * between steps without recompiling. */
#ifndef ASG_OPTIM_H
#define ASG_OPTIM_H

#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum asg_optim_kind { ASG_OPTIM_SGD = 0, ASG_OPTIM_ADAM, ASG_OPTIM_ADAMW } asg_optim_kind;

typedef struct asg_optim {
  asg_optim_kind kind;
  double lr;
  double momentum; /* SGD */
  bool nesterov;   /* SGD */
  double beta1, beta2, eps;
  double weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
} asg_optim;

ASG_API asg_optim asg_sgd(double lr, double momentum);
ASG_API asg_optim asg_adam(double lr);
ASG_API asg_optim asg_adamw(double lr, double weight_decay);

/* Adds gradients and updates for params (n_params == 0: every trainable
 * variable of loss's graph). Writes up to max assign nodes into updates and
 * their number into *n_updates. */
ASG_API asg_status asg_optim_build(asg_tensor *loss, asg_optim opt, int n_params,
                                   asg_tensor *const *params, asg_tensor **updates, int max,
                                   int *n_updates);

/* One program for the whole step: loss (output 0), the extra outputs, the
 * gradients and the updates of every trainable variable. */
ASG_API asg_program *asg_compile_train(asg_graph *g, asg_tensor *loss, asg_optim opt,
                                       int n_extra, asg_tensor *const *extra,
                                       const asg_compile_opts *opts);
/* Sets the learning rate of a program made by asg_compile_train. */
ASG_API asg_status asg_optim_set_lr(asg_program *p, double lr);

#ifdef __cplusplus
}
#endif
#endif
