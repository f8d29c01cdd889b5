/* Fuzz target: CSV of numbers. The first byte picks the options
 * (delimiter, header mode, dtype, comment); the rest is the text, parsed
 * from memory and, once, from a file. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const char delims[4] = {',', ';', '\t', '|'};
  static const asg_dtype dts[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  asg_csv_options o = {.delimiter = delims[data[0] & 3],
                       .header = (asg_csv_header)((data[0] >> 2) % 3),
                       .dtype = dts[(data[0] >> 4) & 3],
                       .comment = (data[0] & 0x40) ? '#' : 0};
  asg_csv c;
  asg_clear_error();
  asg_status st = asg_csv_parse((const char *)data + 1, size - 1, "fuzz.csv", &o, &c);
  if (st == ASG_OK) {
    int64_t n = asg_shape_numel(c.data.shape);
    if (c.data.shape.ndim != 2 || c.data.shape.dims[1] != c.cols || !c.data.data || n < 0) abort();
    unsigned sum = 0;
    for (size_t k = 0; k < (size_t)n * asg_dtype_size(c.data.dtype); k++)
      sum += ((const unsigned char *)c.data.data)[k];
    for (int64_t i = 0; c.names && i < c.cols; i++)
      sum += (unsigned)strlen(c.names[i]);
    fuzz_sink = sum;
    asg_csv_free(&c);
  } else if (c.data.data || c.names || !asg_last_error()[0]) {
    abort();
  }
  if (data[0] & 0x80) { /* the file reader agrees with the text parser */
    const char *path = fuzz_file(data + 1, size - 1);
    if (!path) return 0;
    asg_csv f;
    asg_status fs = asg_csv_read(path, &o, &f);
    if (fs != st) abort();
    asg_csv_free(&f);
  }
  return 0;
}
