/* Fuzz target: ONNX models (protobuf, tensors, shapes, attributes, the
 * operator mapping). Imports the input into a fresh graph with small limits
 * and describes it; every failure must leave a message. The seeds are
 * small models made by tests/onnx/make_models.py and a few node cases. */
#include <stdlib.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  if (!path) return 0;
  asg_graph *g = asg_graph_new();
  if (!g) return 0;
  asg_onnx_import_opts o = {0};
  o.max_tensor_bytes = 1 << 22; /* small: the fuzzer looks for bugs, not big models */
  o.max_nodes = 4096;
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, path, &o, &m);
  if (st != ASG_OK) {
    if (!asg_last_error()[0] || m) abort(); /* every failure leaves a message, no model */
  } else {
    int n = asg_onnx_model_output_count(m);
    for (int i = 0; i < n; i++)
      if (!asg_onnx_model_output(m, i) || !asg_onnx_model_output_name(m, i)) abort();
    for (int i = 0; i < asg_onnx_model_input_count(m); i++)
      if (!asg_onnx_model_input(m, i)) abort();
  }
  asg_onnx_model_free(m);
  asg_graph_free(g);
  char *text = NULL;
  if (asg_onnx_describe(path, &text) == ASG_OK) {
    if (!text) abort();
    free(text);
  } else if (!asg_last_error()[0] || text) {
    abort();
  }
  return 0;
}
