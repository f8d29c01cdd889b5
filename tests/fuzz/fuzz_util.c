/* Scratch file and the checkpoint target's model (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile unsigned fuzz_sink;

static char scratch[512];
static int scratch_fd = -1;

static void remove_scratch(void) {
  if (scratch_fd >= 0) unlink(scratch);
}

const char *fuzz_file(const uint8_t *data, size_t size) {
  if (scratch_fd < 0) {
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/asg_fuzz_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    scratch_fd = mkstemp(scratch);
    if (scratch_fd < 0) return NULL;
    atexit(remove_scratch);
  }
  if (ftruncate(scratch_fd, 0) != 0) return NULL;
  for (size_t done = 0; done < size;) {
    ssize_t k = pwrite(scratch_fd, data + done, size - done, (off_t)done);
    if (k <= 0) return NULL;
    done += (size_t)k;
  }
  return scratch;
}

asg_program *fuzz_model(asg_graph **g, asg_tensor **loss) {
  *g = asg_graph_new();
  asg_graph_set_seed(*g, 7);
  asg_tensor *x = asg_input(*g, "x", ASG_F32, ASG_SHAPE(4, 6));
  asg_tensor *y = asg_input(*g, "y", ASG_I32, ASG_SHAPE(4));
  asg_layer *layers[] = {asg_nn_linear(*g, "fc1", 6, 5), asg_nn_batchnorm(*g, "bn", 5, 0, 0),
                         asg_nn_activation(*g, "relu", ASG_ACT_RELU),
                         asg_nn_linear(*g, "fc2", 5, 3)};
  asg_layer *net = asg_nn_sequential(*g, "net", 4, layers);
  *loss = asg_cross_entropy_loss(asg_layer_apply(net, x), y, 0, -100, ASG_REDUCE_MEAN);
  asg_compile_opts o = {.num_threads = 1};
  asg_program *p = asg_compile_train(*g, *loss, asg_adam(0.01), 0, NULL, &o);
  if (!p) fprintf(stderr, "fuzz_model: %s\n", asg_last_error());
  return p;
}

asg_status fuzz_model_feed(asg_program *p) {
  float x[4 * 6];
  int32_t y[4] = {0, 2, 1, 2};
  for (int i = 0; i < 4 * 6; i++)
    x[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
  asg_status st = asg_program_feed(p, "x", x, sizeof x);
  return st ? st : asg_program_feed(p, "y", y, sizeof y);
}
