/* Gradient rules of the index family. */
#include "autograd/grad.h"

void asg_grad_register_index(asg_grad_rule *t) { (void)t; }
