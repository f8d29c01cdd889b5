/* Sharded batchers for data-parallel training (asg_batcher_new_sharded):
 * PyTorch DistributedSampler's assignment on fixed examples, and for
 * worlds 1..4 over many sizes, with and without shuffling and drop_last:
 * equal batch counts on every rank, every example covered each epoch, the
 * union over ranks of batch s against a single batcher of batch * world,
 * epochs reshuffled as asg_batcher_new reshuffles them; bad arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { MAXN = 64, MAXW = 4, EPOCHS = 3 };

static bool has(const char *s, const char *sub) { return s && strstr(s, sub); }

/* One epoch of b: the items in order, the batch sizes; returns the number
 * of batches (the epoch ends at the 0 that asg_batcher_next returns). */
static int64_t epoch_of(asg_batcher *b, int64_t *items, int64_t *n_items, int64_t *sizes,
                        int64_t max_batches) {
  int64_t nb = 0, k, idx[MAXN];
  *n_items = 0;
  while ((k = asg_batcher_next(b, idx)) > 0) {
    if (nb < max_batches) sizes[nb] = k;
    nb++;
    for (int64_t i = 0; i < k && *n_items < 4 * MAXN; i++)
      items[(*n_items)++] = idx[i];
    if (nb > 4 * MAXN) break; /* an epoch that never ends */
  }
  return nb;
}

/* DistributedSampler(range(n), num_replicas=W, rank=r, shuffle=False,
 * drop_last=d) written out (checked against torch 2.x). */
static void test_fixed(void) {
  static const struct {
    int64_t n;
    int world;
    bool drop;
    int64_t want[4][4];
    int len; /* items per rank */
  } t[] = {
      {5, 2, false, {{0, 2, 4}, {1, 3, 0}}, 3},
      {5, 2, true, {{0, 2}, {1, 3}}, 2},
      {2, 4, false, {{0}, {1}, {0}, {1}}, 1},
      {1, 3, false, {{0}, {0}, {0}}, 1},
      {7, 3, false, {{0, 3, 6}, {1, 4, 0}, {2, 5, 1}}, 3},
      {7, 3, true, {{0, 3}, {1, 4}, {2, 5}}, 2},
  };
  for (size_t c = 0; c < sizeof t / sizeof t[0]; c++)
    for (int r = 0; r < t[c].world; r++) {
      /* one batch holding the rank's whole share, then batches of 2 */
      for (int bs = 0; bs < 2; bs++) {
        const int64_t batch = bs ? 2 : t[c].len;
        asg_batcher *b = asg_batcher_new_sharded(t[c].n, batch, false, t[c].drop, 1, r, t[c].world);
        int64_t items[4 * MAXN], n_items = 0, sizes[4 * MAXN];
        int64_t nb = b ? epoch_of(b, items, &n_items, sizes, 4 * MAXN) : -1;
        const int64_t want_nb = t[c].drop ? t[c].len / batch : (t[c].len + batch - 1) / batch;
        const int64_t want_items = t[c].drop ? want_nb * batch : t[c].len;
        bool ok = b && nb == want_nb && n_items == want_items &&
                  asg_batcher_batches_per_epoch(b) == want_nb;
        for (int64_t i = 0; ok && i < n_items; i++)
          ok = items[i] == t[c].want[r][i];
        TU_CHECK(ok, "n %lld world %d rank %d drop_last %d batch %lld: %lld batches (%lld), %s",
                 (long long)t[c].n, t[c].world, r, t[c].drop, (long long)batch, (long long)nb,
                 (long long)want_nb, b ? "wrong items" : asg_last_error());
        asg_batcher_free(b);
      }
    }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Every rank of one configuration over EPOCHS epochs. */
static void check_config(int64_t n, int64_t batch, bool shuffle, bool drop, int world) {
  char what[128];
  snprintf(what, sizeof what, "n %lld batch %lld world %d shuffle %d drop_last %d", (long long)n,
           (long long)batch, world, shuffle, drop);
  const uint64_t seed = 1000 + (uint64_t)n;
  /* the rank's share and batches, from the definition */
  const int64_t m = drop ? n / world : (n + world - 1) / world;
  if (drop && batch > m) { /* no full batch on a rank */
    asg_clear_error();
    asg_batcher *b = asg_batcher_new_sharded(n, batch, shuffle, drop, seed, 0, world);
    TU_CHECK(!b && has(asg_last_error(), "asg_batcher_new_sharded"), "%s: refused: %s", what,
             asg_last_error());
    asg_batcher_free(b);
    return;
  }
  const int64_t want_nb = drop ? m / batch : (m + batch - 1) / batch;
  asg_batcher *rk[MAXW] = {NULL};
  for (int r = 0; r < world; r++)
    rk[r] = asg_batcher_new_sharded(n, batch, shuffle, drop, seed, r, world);
  /* the permutations: a single-process batcher yielding one epoch a batch */
  asg_batcher *whole = asg_batcher_new(n, n, shuffle, false, seed);
  /* a single process with batch * world, for the union property */
  const bool union_holds = drop || n % (batch * world) == 0;
  asg_batcher *single = asg_batcher_new(n, batch * world, shuffle, drop, seed);
  bool ok = whole && single;
  for (int r = 0; r < world; r++) {
    ok = ok && rk[r];
    if (rk[r] && asg_batcher_batches_per_epoch(rk[r]) != want_nb) {
      TU_CHECK(0, "%s: rank %d: %lld batches per epoch, want %lld", what, r,
               (long long)asg_batcher_batches_per_epoch(rk[r]), (long long)want_nb);
      ok = false;
    }
  }
  TU_CHECK(ok, "%s: batchers made: %s", what, asg_last_error());
  int64_t first[MAXN] = {0};
  bool reshuffled = false;
  for (int e = 0; ok && e < EPOCHS; e++) {
    int64_t perm[MAXN], idx[MAXN], tmp[MAXN];
    ok = asg_batcher_next(whole, perm) == n && asg_batcher_next(whole, idx) == 0;
    TU_CHECK(ok, "%s: reference permutation of epoch %d", what, e);
    if (!ok) break;
    if (e == 0)
      memcpy(first, perm, sizeof first);
    else if (memcmp(first, perm, sizeof(int64_t) * (size_t)n))
      reshuffled = true;
    static int64_t items[MAXW][4 * MAXN], sizes[MAXW][4 * MAXN];
    int64_t n_items[MAXW], nb[MAXW], seen[MAXN] = {0};
    for (int r = 0; r < world; r++) {
      nb[r] = epoch_of(rk[r], items[r], &n_items[r], sizes[r], 4 * MAXN);
      TU_CHECK(nb[r] == want_nb && asg_batcher_epoch(rk[r]) == e + 1,
               "%s: epoch %d rank %d: %lld batches, want %lld (the same on every rank)", what, e, r,
               (long long)nb[r], (long long)want_nb);
      /* rank r's items: positions r, r + world, ... of the permutation,
       * repeated from its start past its end */
      bool pos_ok = nb[r] == want_nb;
      for (int64_t j = 0; pos_ok && j < n_items[r]; j++)
        pos_ok = items[r][j] == perm[(r + world * j) % n];
      TU_CHECK(pos_ok, "%s: epoch %d rank %d: not positions rank + world * j", what, e, r);
      for (int64_t j = 0; j < n_items[r]; j++)
        seen[items[r][j]]++;
      for (int64_t s = 0; s < nb[r] && s < 4 * MAXN; s++)
        if (sizes[r][s] != (s + 1 < want_nb || drop || m % batch == 0 ? batch : m % batch))
          TU_CHECK(0, "%s: epoch %d rank %d batch %lld has %lld items", what, e, r, (long long)s,
                   (long long)sizes[r][s]);
    }
    /* coverage: each example once (drop_last: at most once); padding
     * repeats ceil(n / world) * world - n examples once more */
    int64_t missing = 0, twice = 0;
    for (int64_t i = 0; i < n; i++) {
      missing += seen[i] == 0;
      twice += seen[i] > 1 ? seen[i] - 1 : 0;
    }
    if (drop)
      TU_CHECK(twice == 0, "%s: epoch %d: %lld repeats with drop_last", what, e, (long long)twice);
    else
      TU_CHECK(missing == 0 && twice == m * world - n,
               "%s: epoch %d: %lld examples missing, %lld repeats (want 0, %lld)", what, e,
               (long long)missing, (long long)twice, (long long)(m * world - n));
    /* batch s over all ranks == batch s of one process with batch * world */
    if (union_holds) {
      int64_t k, s = 0;
      bool u_ok = true;
      while ((k = asg_batcher_next(single, idx)) > 0) {
        int64_t t = 0;
        for (int r = 0; r < world && s < nb[r]; r++)
          for (int64_t j = 0; j < sizes[r][s]; j++)
            tmp[t++] = items[r][s * batch + j];
        qsort(idx, (size_t)k, sizeof *idx, cmp_i64);
        qsort(tmp, (size_t)t, sizeof *tmp, cmp_i64);
        u_ok = u_ok && t == k && !memcmp(idx, tmp, sizeof(int64_t) * (size_t)k);
        s++;
      }
      TU_CHECK(u_ok && s == want_nb, "%s: epoch %d: union over ranks of each batch (%lld vs %lld)",
               what, e, (long long)s, (long long)want_nb);
    }
  }
  if (shuffle && n >= 5) TU_CHECK(reshuffled, "%s: epochs reshuffled", what);
  for (int r = 0; r < world; r++)
    asg_batcher_free(rk[r]);
  asg_batcher_free(whole);
  asg_batcher_free(single);
}

static void test_properties(void) {
  static const int64_t ns[] = {1, 2, 3, 5, 7, 12, 13, 24, 31, 48};
  for (int world = 1; world <= MAXW; world++)
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
      for (int64_t batch = 1; batch <= 4; batch++)
        for (int f = 0; f < 4; f++)
          check_config(ns[i], batch, f & 1, f & 2, world);
}

/* World of one: exactly asg_batcher_new. */
static void test_world_one(void) {
  asg_batcher *a = asg_batcher_new(29, 4, true, false, 9);
  asg_batcher *b = asg_batcher_new_sharded(29, 4, true, false, 9, 0, 1);
  int64_t x[4], y[4], ka, kb;
  bool same = a && b;
  for (int i = 0; same && i < 3 * 9; i++) { /* three epochs of 8 batches and the end */
    ka = asg_batcher_next(a, x);
    kb = asg_batcher_next(b, y);
    same = ka == kb && !memcmp(x, y, sizeof(int64_t) * (size_t)ka);
  }
  TU_CHECK(same, "world 1 yields what asg_batcher_new yields");
  asg_batcher_free(a), asg_batcher_free(b);
}

static void test_bad(void) {
  static const struct {
    int64_t n, batch;
    bool drop;
    int rank, world;
    const char *want;
  } t[] = {
      {10, 2, false, 0, 0, "world of 0"},     {10, 2, false, -1, 2, "rank -1"},
      {10, 2, false, 2, 2, "rank 2"},         {10, 0, false, 0, 2, "batches of 0"},
      {10, -3, false, 0, 2, "batches of -3"}, {0, 2, false, 0, 2, "0 items"},
      {3, 1, true, 0, 4, "per rank"},         {10, 3, true, 1, 4, "per rank"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    asg_clear_error();
    asg_batcher *b =
        asg_batcher_new_sharded(t[i].n, t[i].batch, true, t[i].drop, 1, t[i].rank, t[i].world);
    TU_CHECK(!b && has(asg_last_error(), "asg_batcher_new_sharded") &&
                 has(asg_last_error(), t[i].want),
             "case %zu refused naming '%s': %s", i, t[i].want, asg_last_error());
    asg_batcher_free(b);
  }
  /* drop_last with exactly batch items per rank is fine: one batch each */
  asg_batcher *b = asg_batcher_new_sharded(8, 2, true, true, 1, 3, 4);
  TU_CHECK(b && asg_batcher_batches_per_epoch(b) == 1, "8 items, 4 ranks, batch 2: %s",
           asg_last_error());
  asg_batcher_free(b);
  TU_CHECK(asg_batcher_next(NULL, NULL) == 0 && asg_batcher_batches_per_epoch(NULL) == 0,
           "NULL batcher");
}

int main(void) {
  test_fixed();
  test_world_one();
  test_properties();
  test_bad();
  return tu_finish();
}
