/* One compiled program, any batch size: the batch is a symbolic dim
 * (asg_dim), the program is compiled once and run on batches of 1, 7 and 32;
 * each new size is specialized once (docs/symbolic.md).
 *
 *   symbolic_batch [--backend cpu|cuda|vulkan] [--help]
 *
 * Checks that every batch gives the same probabilities for the same rows
 * (exit 1 otherwise) and that a batch above the declared bound is refused
 * while the program stays usable. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "asg/asg.h"
#include "common/opts.h"

enum { IN = 4, OUT = 3, MAXB = 64 };

/* Row r of every batch: the same 4 features, whatever the batch size. */
static void fill(float *x, int64_t rows) {
  for (int64_t r = 0; r < rows; r++)
    for (int j = 0; j < IN; j++)
      x[r * IN + j] = sinf((float)(r * IN + j));
}

int main(int argc, char **argv) {
  const char *backend;
  int orc = opt_backend_only(
      argc, argv, "One program over a symbolic batch, run on batches of 1, 7 and 32.", &backend);
  if (orc) return orc > 0 ? 0 : 2;
  if (!asg_backend_available(backend)) {
    printf("backend %s unavailable: %s\n", backend, asg_last_error());
    return 77;
  }
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 3);
  int64_t batch = asg_dim(g, "batch", MAXB); /* symbolic, at most 64 */
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(batch, IN));
  asg_layer *l[] = {asg_nn_linear(g, "fc1", IN, 16), asg_nn_activation(g, "act", ASG_ACT_TANH),
                    asg_nn_linear(g, "fc2", 16, OUT)};
  asg_tensor *probs = asg_softmax(asg_layer_apply(asg_nn_sequential(g, "mlp", 3, l), x), 1);
  char buf[64];
  printf("graph: x %s -> probs %s\n", asg_graph_shape_str(g, asg_tensor_shape(x), buf, sizeof buf),
         asg_graph_shape_str(g, asg_tensor_shape(probs), buf + 32, 32));

  asg_compile_opts opts = {.backend = backend};
  asg_program *p = asg_compile(g, 1, &probs, &opts);
  const char *name = "batch";
  int64_t b32 = 32;
  size_t peak = 0;
  if (!p || asg_program_peak_memory_for(p, 1, &name, &b32, &peak) != ASG_OK ||
      asg_program_prepare(p, 1, &name, &b32) != ASG_OK) { /* batch 32 built ahead */
    fprintf(stderr, "compile: %s\n", asg_last_error());
    return 1;
  }
  printf("compiled once; batch 32 prepared ahead (%zu bytes of activations)\n", peak);

  float xs[MAXB * IN], ps[MAXB * OUT], first[OUT];
  fill(xs, MAXB);
  const int64_t sizes[] = {1, 7, 32, 7};
  int rc = 0;
  for (int k = 0; k < 4; k++) {
    asg_shape s;
    if (asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(sizes[k], IN), xs) != ASG_OK ||
        asg_program_run(p) != ASG_OK || asg_program_output_shape(p, probs, &s) != ASG_OK ||
        asg_program_fetch(p, probs, ps, sizeof(float) * (size_t)asg_shape_numel(s)) != ASG_OK) {
      fprintf(stderr, "batch %lld: %s\n", (long long)sizes[k], asg_last_error());
      return 1;
    }
    if (k == 0) memcpy(first, ps, sizeof first);
    for (int j = 0; j < OUT; j++) /* row 0 is the same input in every batch */
      if (fabsf(ps[j] - first[j]) > 1e-5f) rc = 1;
    printf("batch %2lld: output shape %s, row 0 probs %.4f %.4f %.4f\n", (long long)sizes[k],
           asg_shape_str(s, buf, sizeof buf), ps[0], ps[1], ps[2]);
  }
  /* above the bound: refused with a message naming the symbol; p stays usable */
  if (asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(MAXB + 1, IN), xs) == ASG_OK &&
      asg_program_run(p) == ASG_OK) {
    fprintf(stderr, "a batch of %d was not refused\n", MAXB + 1);
    rc = 1;
  } else {
    printf("batch %d refused: %s\n", MAXB + 1, asg_last_error());
  }
  printf("%d specializations cached (batches 1, 7 and 32)\n", asg_program_specialization_count(p));
  if (rc) fprintf(stderr, "row 0 differs between batch sizes\n");
  asg_program_free(p);
  asg_graph_free(g);
  return rc;
}
