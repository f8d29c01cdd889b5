/* What the optimizer (src/optim) tells a program it compiled: internal. */
#ifndef ASG_RUNTIME_PROGRAM_INTERNAL_H
#define ASG_RUNTIME_PROGRAM_INTERNAL_H

#include "asg/program.h"

typedef struct asg__optim_info {
  /* > 0: the non-finite guard is on; asg_program_run fails once the
   * variable "optim/skip_streak" reaches this count. */
  int64_t max_skips;
  /* Floor of the dynamic loss scale (0 without loss scaling). */
  double loss_scale_min;
} asg__optim_info;

void asg__program_set_optim_info(asg_program *p, const asg__optim_info *info);
/* All zero for programs not made by asg_compile_train. */
const asg__optim_info *asg__program_optim_info(const asg_program *p);

#endif
