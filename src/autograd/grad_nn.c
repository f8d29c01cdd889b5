/* Gradient rules of the nn family. */
#include "autograd/grad.h"

void asg_grad_register_nn(asg_grad_rule *t) { (void)t; }
