/* Custom ops (include/asg/custom.h) on the CPU: the user's CPU kernel runs
 * on the thread that runs the program, over host buffers. */
#include "backends/cpu/cpu.h"
#include "runtime/custom_call.h"

static asg_status custom_run(const asg_cpu_call *c) {
  return asg__custom_run(c->s, ASG_CUSTOM_ON_CPU, c->in, c->out, c->ws, NULL);
}

static size_t custom_ws(const asg_step *s, int nthreads) {
  (void)nthreads;
  return asg__custom_ws(s);
}

void asg_cpu_register_custom(asg_cpu_kernel *t) {
  t[ASG_OP_CUSTOM] = (asg_cpu_kernel){.run = custom_run, .ws = custom_ws};
}
