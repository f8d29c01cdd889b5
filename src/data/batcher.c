/* Seeded shuffling batcher: a Fisher-Yates permutation per epoch, drawn
 * from the counter-based RNG so epochs are reproducible from the seed.
 * A sharded batcher (data-parallel training) draws the same permutation on
 * every rank and yields positions rank, rank + world, ... of it, extended
 * cyclically (or cut) to a multiple of world as PyTorch's
 * DistributedSampler does. */
#include <stdlib.h>
#include <string.h>

#include "core/checks.h"
#include "core/internal.h"

struct asg_batcher {
  int64_t n, batch, pos, epoch;
  int64_t m;       /* items this batcher yields per epoch (n unless sharded) */
  int rank, world; /* sharded: every world-th position from rank; else 0, 1 */
  bool shuffle, drop_last;
  uint64_t seed;
  int64_t *perm;
  int64_t *items; /* subset batchers: the items; NULL means 0..n-1 */
};

/* Fisher-Yates with draws from the counter-based RNG. */
static void permute(int64_t *p, int64_t n, uint64_t key) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(asg__rng_bits(key, (uint64_t)i) % (uint64_t)(i + 1));
    int64_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
}

static void reshuffle(asg_batcher *b) {
  for (int64_t i = 0; i < b->n; i++)
    b->perm[i] = b->items ? b->items[i] : i;
  if (b->shuffle) permute(b->perm, b->n, asg__rng_key(b->seed, (uint64_t)b->epoch));
}

/* A batcher over n items yielding rank's share of world (1: all of them);
 * fn names the caller in errors. */
static asg_batcher *make(const char *fn, int64_t n, int64_t batch, bool shuffle, bool drop_last,
                         uint64_t seed, int rank, int world) {
  if (n <= 0 || batch <= 0) {
    asg__error(ASG_ERR_INVALID, "%s: %lld items cannot make batches of %lld", fn, (long long)n,
               (long long)batch);
    return NULL;
  }
  size_t bytes;
  if (!asg__array_bytes(n, sizeof(int64_t), &bytes)) { /* n * 8 would wrap */
    asg__error(ASG_ERR_INVALID, "%s: %lld items are more than an index array holds", fn,
               (long long)n);
    return NULL;
  }
  /* a rank's share: ceil(n / world) (padded) or floor(n / world) (cut) */
  const int64_t m = n / world + (!drop_last && n % world);
  if (drop_last && batch > m) {
    if (world == 1)
      asg__error(ASG_ERR_INVALID, "%s: %lld items cannot make batches of %lld", fn, (long long)n,
                 (long long)batch);
    else
      asg__error(ASG_ERR_INVALID,
                 "%s: %lld items over %d ranks leave %lld per rank, no full batch of %lld "
                 "(drop_last)",
                 fn, (long long)n, world, (long long)m, (long long)batch);
    return NULL;
  }
  asg_batcher *b = calloc(1, sizeof *b);
  if (b) b->perm = malloc(bytes);
  if (!b || !b->perm) {
    free(b);
    asg__error(ASG_ERR_OOM, "%s: out of memory", fn);
    return NULL;
  }
  b->n = n, b->batch = batch, b->shuffle = shuffle, b->drop_last = drop_last, b->seed = seed;
  b->m = m, b->rank = rank, b->world = world;
  reshuffle(b);
  return b;
}

asg_batcher *asg_batcher_new(int64_t n, int64_t batch, bool shuffle, bool drop_last,
                             uint64_t seed) {
  return make("asg_batcher_new", n, batch, shuffle, drop_last, seed, 0, 1);
}

asg_batcher *asg_batcher_new_sharded(int64_t n, int64_t batch, bool shuffle, bool drop_last,
                                     uint64_t seed, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world) {
    asg__error(ASG_ERR_INVALID, "asg_batcher_new_sharded: rank %d is not a rank of a world of %d",
               rank, world);
    return NULL;
  }
  return make("asg_batcher_new_sharded", n, batch, shuffle, drop_last, seed, rank, world);
}

void asg_batcher_free(asg_batcher *b) {
  if (!b) return;
  free(b->perm);
  free(b->items);
  free(b);
}

int64_t asg_batcher_next(asg_batcher *b, int64_t *idx) {
  if (!b || !idx) return 0;
  int64_t left = b->m - b->pos;
  if (left <= 0 || (b->drop_last && left < b->batch)) {
    b->epoch++;
    b->pos = 0;
    reshuffle(b);
    return 0;
  }
  int64_t k = left < b->batch ? left : b->batch;
  /* position rank + world * j of the permutation; past its end (padding)
   * from its start again. No overflow: world * m < n + world. */
  for (int64_t i = 0; i < k; i++)
    idx[i] = b->perm[(b->rank + b->world * (b->pos + i)) % b->n];
  b->pos += k;
  return k;
}

int64_t asg_batcher_batches_per_epoch(const asg_batcher *b) {
  if (!b) return 0;
  return b->m / b->batch + (!b->drop_last && b->m % b->batch); /* no m + batch - 1: may wrap */
}
int64_t asg_batcher_epoch(const asg_batcher *b) { return b ? b->epoch : 0; }

asg_batcher *asg_batcher_new_subset(const int64_t *idx, int64_t n, int64_t batch, bool shuffle,
                                    bool drop_last, uint64_t seed) {
  if (!idx) {
    asg__error(ASG_ERR_INVALID, "asg_batcher_new_subset: idx is NULL");
    return NULL;
  }
  asg_batcher *b = make("asg_batcher_new_subset", n, batch, shuffle, drop_last, seed, 0, 1);
  if (!b) return NULL;
  b->items = malloc(sizeof *b->items * (size_t)n); /* n checked by make */
  if (!b->items) {
    asg_batcher_free(b);
    asg__error(ASG_ERR_OOM, "asg_batcher_new_subset: out of memory");
    return NULL;
  }
  memcpy(b->items, idx, sizeof *idx * (size_t)n);
  reshuffle(b);
  return b;
}

asg_status asg_train_val_split(int64_t n, double val_fraction, uint64_t seed, int64_t *train_idx,
                               int64_t *n_train, int64_t *val_idx, int64_t *n_val) {
  size_t bytes;
  if (n <= 0 || !(val_fraction >= 0 && val_fraction <= 1) || !train_idx || !n_train || !val_idx ||
      !n_val)
    return asg__error(ASG_ERR_INVALID, "asg_train_val_split: bad arguments");
  if (!asg__array_bytes(n, sizeof(int64_t), &bytes))
    return asg__error(ASG_ERR_INVALID, "asg_train_val_split: %lld items are too many",
                      (long long)n);
  int64_t *p = malloc(bytes);
  if (!p) return asg__error(ASG_ERR_OOM, "asg_train_val_split: out of memory");
  for (int64_t i = 0; i < n; i++)
    p[i] = i;
  permute(p, n, asg__rng_key(seed, 0x5917));
  int64_t nv = (int64_t)((double)n * val_fraction + 0.5);
  *n_train = n - nv;
  *n_val = nv;
  memcpy(train_idx, p, sizeof *p * (size_t)(n - nv));
  memcpy(val_idx, p + (n - nv), sizeof *p * (size_t)nv);
  free(p);
  return ASG_OK;
}
