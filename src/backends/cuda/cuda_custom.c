/* Custom ops (include/asg/custom.h) on CUDA: the user's CUDA kernel is
 * handed the program's stream and enqueues its work there. It is called for
 * the runs that launch step by step and for the one that is captured into
 * the program's CUDA graph; replays do not call it (include/asg/custom.h
 * says what the callback may do). An op without a CUDA kernel is refused
 * when the program is created (.prepare), naming the op. */
#include "backends/cuda/cuda.h"
#include "runtime/custom_call.h"

static asg_status custom_run(const asg_cuda_call *c) {
  asg_status st =
      asg__custom_run(c->s, ASG_CUSTOM_ON_CUDA, c->in, c->out, c->ws, (void *)c->ctx->stream);
  return st ? st : asg_cuda_check(c); /* a launch error of the user's kernel */
}

static size_t custom_ws(const asg_step *s, unsigned plan_flags) {
  (void)plan_flags;
  return asg__custom_ws(s);
}

static asg_status custom_prepare(const asg_cuda_call *c, void **state) {
  *state = NULL;
  return asg__custom_check(c->s, ASG_CUSTOM_ON_CUDA);
}

void asg_cuda_register_custom(asg_cuda_kernel *t) {
  t[ASG_OP_CUSTOM] = (asg_cuda_kernel){custom_run, custom_ws, custom_prepare, NULL};
}
