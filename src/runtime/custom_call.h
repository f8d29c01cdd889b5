/* Custom ops on the backends' side: a plan step of ASG_OP_CUSTOM turned
 * into a call of the user's kernel (include/asg/custom.h), and the errors of
 * a backend that cannot run one. */
#ifndef ASG_RUNTIME_CUSTOM_CALL_H
#define ASG_RUNTIME_CUSTOM_CALL_H

#include "runtime/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum asg_custom_target { ASG_CUSTOM_ON_CPU = 0, ASG_CUSTOM_ON_CUDA = 1 } asg_custom_target;

/* Checks at compile time that step s can run on `on`: its op is registered
 * and has a kernel for that target; else ASG_ERR_UNSUPPORTED naming the op
 * and the step ("cuda: fc/custom: custom op 'swish' has no CUDA kernel ..."). */
asg_status asg__custom_check(const asg_step *s, asg_custom_target on);
/* The refusal of a backend that runs no custom op (Vulkan): names the op. */
asg_status asg__custom_refuse(const asg_step *s, const char *backend, const char *device);
/* Scratch bytes step s asks for (asg_custom_desc.workspace; 0 without). */
size_t asg__custom_ws(const asg_step *s);
/* Runs the kernel of step s for `on` over in[0..n_in) and out (addresses in
 * that target's memory) with ws (asg__custom_ws bytes) and the CUDA stream
 * (NULL on the CPU). A kernel's failure becomes ASG_ERR_BACKEND naming the
 * backend, the step and the op, with the kernel's message. */
asg_status asg__custom_run(const asg_step *s, asg_custom_target on, const void *const *in,
                           void *out, void *ws, void *stream);

#ifdef __cplusplus
}
#endif
#endif
