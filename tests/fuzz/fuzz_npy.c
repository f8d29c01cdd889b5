/* Fuzz target: NumPy files. The same bytes are read as a .npy file and as
 * a .npz archive (zip directory, zip64 records, deflate, CRC, each
 * member's .npy header). */
#include <stdlib.h>

#include "fuzz.h"

static void touch(const asg_host_tensor *t) {
  int64_t n = asg_shape_numel(t->shape);
  if (n < 0 || !t->data) abort();
  unsigned sum = 0; /* every byte: ASan checks the size */
  for (size_t k = 0; k < (size_t)n * asg_dtype_size(t->dtype); k++)
    sum += ((const unsigned char *)t->data)[k];
  fuzz_sink = sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  if (!path) return 0;
  asg_host_tensor t;
  asg_clear_error();
  if (asg_npy_read(path, &t) == ASG_OK) {
    touch(&t);
    asg_host_tensor_free(&t);
  } else if (t.data || !asg_last_error()[0]) {
    abort(); /* out left empty, message set */
  }
  asg_npz z;
  asg_clear_error();
  if (asg_npz_read(path, &z) == ASG_OK) {
    for (int i = 0; i < z.n; i++) {
      touch(&z.arrays[i]);
      if (asg_npz_find(&z, z.names[i]) != i) abort(); /* names are unique */
    }
    asg_npz_free(&z);
  } else if (z.n || z.arrays || !asg_last_error()[0]) {
    abort();
  }
  return 0;
}
