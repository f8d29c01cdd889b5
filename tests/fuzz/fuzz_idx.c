/* Fuzz target: IDX files (header, dims, value types; gzip-compressed input
 * goes through zlib). Read into every supported dtype. */
#include <stdlib.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  if (!path) return 0;
  asg_dtype dts[] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
    asg_host_tensor t = {0};
    asg_clear_error();
    if (asg_idx_read(path, dts[d], &t) != ASG_OK) {
      if (t.data || !asg_last_error()[0]) abort(); /* out left empty, message set */
      continue;
    }
    int64_t n = asg_shape_numel(t.shape);
    if (t.dtype != dts[d] || n < 0 || (n > 0 && !t.data)) abort();
    unsigned sum = 0; /* touches every byte: ASan checks the size */
    for (size_t k = 0; k < (size_t)n * asg_dtype_size(t.dtype); k++)
      sum += ((const unsigned char *)t.data)[k];
    fuzz_sink = sum;
    asg_host_tensor_free(&t);
  }
  return 0;
}
