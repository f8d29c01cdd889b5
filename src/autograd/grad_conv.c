/* Gradient rules of the conv family. */
#include "autograd/grad.h"

void asg_grad_register_conv(asg_grad_rule *t) { (void)t; }
