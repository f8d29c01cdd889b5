/* Seeded shuffling batcher: a Fisher-Yates permutation per epoch, drawn
 * from the counter-based RNG so epochs are reproducible from the seed. */
#include <stdlib.h>

#include "core/internal.h"

struct asg_batcher {
  int64_t n, batch, pos, epoch;
  bool shuffle, drop_last;
  uint64_t seed;
  int64_t *perm;
};

static void reshuffle(asg_batcher *b) {
  for (int64_t i = 0; i < b->n; i++) b->perm[i] = i;
  if (!b->shuffle) return;
  uint64_t key = asg__rng_key(b->seed, (uint64_t)b->epoch);
  for (int64_t i = b->n - 1; i > 0; i--) {
    int64_t j = (int64_t)(asg__rng_bits(key, (uint64_t)i) % (uint64_t)(i + 1));
    int64_t t = b->perm[i];
    b->perm[i] = b->perm[j];
    b->perm[j] = t;
  }
}

asg_batcher *asg_batcher_new(int64_t n, int64_t batch, bool shuffle, bool drop_last,
                             uint64_t seed) {
  if (n <= 0 || batch <= 0 || (drop_last && batch > n)) {
    asg__error(ASG_ERR_INVALID, "asg_batcher_new: %lld items cannot make batches of %lld",
               (long long)n, (long long)batch);
    return NULL;
  }
  asg_batcher *b = calloc(1, sizeof *b);
  if (b) b->perm = malloc(sizeof *b->perm * (size_t)n);
  if (!b || !b->perm) {
    free(b);
    asg__error(ASG_ERR_OOM, "asg_batcher_new: out of memory");
    return NULL;
  }
  b->n = n, b->batch = batch, b->shuffle = shuffle, b->drop_last = drop_last, b->seed = seed;
  reshuffle(b);
  return b;
}

void asg_batcher_free(asg_batcher *b) {
  if (!b) return;
  free(b->perm);
  free(b);
}

int64_t asg_batcher_next(asg_batcher *b, int64_t *idx) {
  if (!b || !idx) return 0;
  int64_t left = b->n - b->pos;
  if (left <= 0 || (b->drop_last && left < b->batch)) {
    b->epoch++;
    b->pos = 0;
    reshuffle(b);
    return 0;
  }
  int64_t k = left < b->batch ? left : b->batch;
  for (int64_t i = 0; i < k; i++) idx[i] = b->perm[b->pos + i];
  b->pos += k;
  return k;
}

int64_t asg_batcher_batches_per_epoch(const asg_batcher *b) {
  if (!b) return 0;
  return b->drop_last ? b->n / b->batch : (b->n + b->batch - 1) / b->batch;
}
int64_t asg_batcher_epoch(const asg_batcher *b) { return b ? b->epoch : 0; }
