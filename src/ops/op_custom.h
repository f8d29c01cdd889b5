/* Custom ops (include/asg/custom.h): the process-wide registry. A custom
 * node is an ASG_OP_CUSTOM node whose attributes hold the registry id in
 * i[0], the attribute count in i[1] and the attributes in f[0..3]; plan
 * steps copy them, so backends find the descriptor from a step alone. */
#ifndef ASG_OPS_OP_CUSTOM_H
#define ASG_OPS_OP_CUSTOM_H

#include "asg/custom.h"
#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

struct asg_custom_op {
  asg_custom_desc d; /* d.name points at name */
  char name[ASG_CUSTOM_NAME_MAX];
  int id;
};

/* The op of a custom node's (or step's) attributes, or NULL when they name
 * no registered op. */
const asg_custom_op *asg__custom_get(const asg_attrs *a);
/* The signature of a node of op with these attributes and operands. */
void asg__custom_sig(const asg_custom_op *op, const asg_attrs *a, int n_in,
                     const asg_dtype *in_dtype, const asg_shape *in_shape, asg_custom_sig *sig);

#ifdef __cplusplus
}
#endif
#endif
