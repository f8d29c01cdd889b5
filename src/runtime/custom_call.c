/* Custom ops on the backends' side (runtime/custom_call.h). */
#include <stdio.h>

#include "ops/op_custom.h"
#include "runtime/custom_call.h"

static const char *const target_name[2] = {"cpu", "cuda"};

/* The signature of step s (operands from the plan, attributes copied). */
static void step_sig(const asg_step *s, const asg_custom_op *op, asg_custom_sig *sig) {
  asg_dtype dts[ASG_CUSTOM_MAX_INPUTS];
  asg_shape shs[ASG_CUSTOM_MAX_INPUTS];
  const int n = s->n_in < ASG_CUSTOM_MAX_INPUTS ? s->n_in : ASG_CUSTOM_MAX_INPUTS;
  for (int j = 0; j < n; j++) {
    dts[j] = s->in[j].dtype;
    shs[j] = s->in[j].shape;
  }
  asg__custom_sig(op, &s->attr, n, dts, shs, sig);
}

asg_status asg__custom_check(const asg_step *s, asg_custom_target on) {
  const asg_custom_op *op = asg__custom_get(&s->attr);
  if (!op || s->n_in > ASG_CUSTOM_MAX_INPUTS)
    return asg__error(ASG_ERR_INVALID, "%s: %s: not a node of a registered custom op",
                      target_name[on], s->label);
  if (on == ASG_CUSTOM_ON_CUDA && !op->d.cuda)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "cuda: %s: custom op '%s' has no CUDA kernel (asg_custom_desc.cuda is "
                      "NULL); give its descriptor one, or compile the program for the CPU",
                      s->label, op->name);
  return ASG_OK;
}

asg_status asg__custom_refuse(const asg_step *s, const char *backend, const char *device) {
  const asg_custom_op *op = asg__custom_get(&s->attr);
  return asg__error(ASG_ERR_UNSUPPORTED,
                    "%s: %s: custom op '%s' has no %s kernel (custom ops run on the CPU, and on "
                    "CUDA with a CUDA kernel); compile the program for the CPU",
                    backend, s->label, op ? op->name : "?", device);
}

size_t asg__custom_ws(const asg_step *s) {
  const asg_custom_op *op = asg__custom_get(&s->attr);
  if (!op || !op->d.workspace || s->n_in > ASG_CUSTOM_MAX_INPUTS) return 0;
  asg_custom_sig sig;
  step_sig(s, op, &sig);
  return op->d.workspace(&sig);
}

asg_status asg__custom_run(const asg_step *s, asg_custom_target on, const void *const *in,
                           void *out, void *ws, void *stream) {
  asg_status st = asg__custom_check(s, on);
  if (st) return st;
  const asg_custom_op *op = asg__custom_get(&s->attr);
  asg_custom_sig sig;
  step_sig(s, op, &sig);
  char msg[256] = "";
  const size_t ws_bytes = op->d.workspace ? op->d.workspace(&sig) : 0;
  const asg_custom_call c = {&sig,         in,           out,
                             s->out.dtype, s->out.shape, ws_bytes ? ws : NULL,
                             ws_bytes,     stream,       target_name[on],
                             msg,          sizeof msg};
  const int rc = on == ASG_CUSTOM_ON_CUDA ? op->d.cuda(&c) : op->d.cpu(&c);
  if (rc == 0) return ASG_OK;
  msg[sizeof msg - 1] = '\0'; /* whatever the kernel left */
  if (!msg[0]) snprintf(msg, sizeof msg, "the kernel failed (returned %d)", rc);
  return asg__error(ASG_ERR_BACKEND, "%s: %s: custom op '%s': %s", target_name[on], s->label,
                    op->name, msg);
}
