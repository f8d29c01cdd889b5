/* Fuzz target: loading variables and checkpoints into a compiled program
 * (name matching, shapes, dtype conversion, checkpoint metadata). The input
 * is loaded strictly, non-strictly and as a checkpoint into one small
 * training program (fuzz.h); a load that succeeds is followed by a training
 * step on the loaded values. */
#include <stdlib.h>

#include "fuzz.h"

static asg_program *prog;

static void after(asg_status st) {
  if (st != ASG_OK) {
    if (!asg_last_error()[0]) abort(); /* every failure leaves a message */
    return;
  }
  if (fuzz_model_feed(prog) != ASG_OK || asg_program_run(prog) != ASG_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!prog) {
    asg_graph *g;
    asg_tensor *loss;
    prog = fuzz_model(&g, &loss);
    asg_graph_free(g);
    if (!prog) abort();
  }
  const char *path = fuzz_file(data, size);
  if (!path) return 0;
  asg_clear_error();
  after(asg_program_load_variables(prog, path, true));
  asg_clear_error();
  after(asg_program_load_variables(prog, path, false));
  int64_t step = 0;
  asg_clear_error();
  after(asg_checkpoint_load(prog, path, &step));
  return 0;
}
