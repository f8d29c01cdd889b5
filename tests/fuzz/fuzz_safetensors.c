/* Fuzz target: safetensors files (header JSON, dtypes, shapes, offsets,
 * metadata). Opens the input and reads everything an opened file offers:
 * every tensor in its own dtype and converted, and all metadata. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static void read_all(const asg_safetensors *f) {
  int n = asg_safetensors_count(f);
  for (int i = 0; i < n; i++) {
    asg_safetensors_info info;
    if (asg_safetensors_info_at(f, i, &info) != ASG_OK) abort(); /* i is in range */
    if (asg_safetensors_find(f, info.name) != i) abort();
    size_t nbytes = 0;
    const unsigned char *raw = asg_safetensors_data(f, i, &nbytes);
    if (!raw || nbytes != info.nbytes) abort();
    unsigned sum = 0; /* touches every byte: ASan checks the bounds */
    for (size_t k = 0; k < nbytes; k++)
      sum += raw[k];
    fuzz_sink = sum;
    asg_dtype dts[] = {info.dtype, ASG_F32, ASG_F64, ASG_I64};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
      asg_host_tensor t = {0};
      if (asg_safetensors_read_host(f, i, dts[d], &t) == ASG_OK) {
        if (!asg_shape_equal(t.shape, info.shape) || t.dtype != dts[d]) abort();
        asg_host_tensor_free(&t);
      }
    }
  }
  int m = asg_safetensors_metadata_count(f);
  for (int i = 0; i < m; i++) {
    const char *k = NULL, *v = NULL;
    if (asg_safetensors_metadata_at(f, i, &k, &v) != ASG_OK || !k || !v) abort();
    const char *again = asg_safetensors_metadata(f, k);
    if (!again || strcmp(again, v) != 0) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  if (!path) return 0;
  asg_safetensors *f = asg_safetensors_open(path);
  if (!f) {
    if (!asg_last_error()[0]) abort(); /* every failure leaves a message */
    return 0;
  }
  read_all(f);
  asg_safetensors_close(f);
  return 0;
}
