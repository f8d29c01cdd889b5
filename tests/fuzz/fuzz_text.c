/* Fuzz target: text corpora (asg_text_load) and the window sampler
 * (asg_text_batch) with ranges and context lengths taken from the input's
 * first bytes, extreme values included. */
#include <math.h>
#include <stdlib.h>

#include "fuzz.h"

static int64_t pick(uint8_t b, int64_t n) {
  switch (b % 8) {
  case 0: return 0;
  case 1: return 1;
  case 2: return n - 1;
  case 3: return n;
  case 4: return n + 1;
  case 5: return INT64_MAX;
  case 6: return -1;
  default: return b / 8;
  }
}

static void batches(const asg_text *t, const uint8_t *data, size_t size) {
  uint8_t b[5] = {0};
  for (size_t i = 0; i < 5 && i < size; i++)
    b[i] = data[i];
  int64_t begin = pick(b[0], t->n), end = pick(b[1], t->n);
  int64_t batch = 1 + b[2] % 3, ctx = pick(b[3], t->n);
  if (b[4] & 1) ctx = 1 + b[4] % 9; /* mostly valid windows */
  if (ctx < 1 || ctx > t->n) {      /* no window fits: the call must fail, writing nothing */
    int32_t x[1], y[1];
    if (asg_text_batch(t, begin, end, 1, ctx, 1, 0, x, y) == ASG_OK) abort();
    return;
  }
  size_t cells = (size_t)(batch * ctx); /* ctx <= n, the input's size */
  int32_t *x = malloc(cells * sizeof *x), *y = malloc(cells * sizeof *y);
  if (x && y && asg_text_batch(t, begin, end, batch, ctx, b[4], 3, x, y) == ASG_OK)
    for (int64_t i = 0; i < batch * ctx; i++) {
      if (x[i] < 0 || x[i] >= t->vocab_size || y[i] < 0 || y[i] >= t->vocab_size) abort();
      if (i % ctx && x[i] != y[i - 1]) abort(); /* y is x shifted by one */
    }
  free(x);
  free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_file(data, size);
  if (!path) return 0;
  asg_text t;
  if (asg_text_load(&path, 1, &t) != ASG_OK) {
    if (!asg_last_error()[0]) abort();
    return 0;
  }
  if (t.n != (int64_t)size || t.vocab_size < 0 || t.vocab_size > 256) abort();
  for (int64_t i = 0; i < t.n; i++)
    if (t.chars[t.tokens[i]] != data[i]) abort(); /* tokens decode to the bytes */
  double h = asg_text_unigram_entropy(&t, 0, t.n);
  if (t.n > 0 && !(h >= 0 && h <= log(256.0) + 1e-9)) abort();
  batches(&t, data, size);
  asg_text_free(&t);
  return 0;
}
