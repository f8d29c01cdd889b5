/* Data on the host: IDX files (MNIST format, gzip or plain), seeded
 * shuffling batches, metrics. */
#ifndef ASG_DATA_H
#define ASG_DATA_H

#include "asg/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A dense array in host memory, owned by whoever filled it. */
typedef struct asg_host_tensor {
  asg_dtype dtype;
  asg_shape shape;
  void *data;
} asg_host_tensor;

ASG_API void asg_host_tensor_free(asg_host_tensor *t);

/* Reads an IDX file (optionally gzip-compressed) converting its values to
 * dt (F32, F64, I32 or I64). Malformed or truncated files give
 * ASG_ERR_FORMAT and leave out empty; memory grows with the data actually
 * read, never with what the header claims. Float values read as I32/I64 are
 * truncated toward zero; NaN, infinities and values outside the integer
 * type's range are ASG_ERR_FORMAT naming the element. A path that is not a
 * regular file (FIFO, directory, device) is ASG_ERR_IO, without blocking. */
ASG_API asg_status asg_idx_read(const char *path, asg_dtype dt, asg_host_tensor *out);

/* Copies rows idx[0..n) of src (rows = first dim) into dst, contiguously.
 * src's shape is checked like every shape (ASG_ERR_SHAPE if invalid); an
 * empty src (first dim 0) gathers nothing. */
ASG_API asg_status asg_host_gather_rows(const asg_host_tensor *src, const int64_t *idx, int64_t n,
                                        void *dst);

/* Batches of indices over [0, n); reshuffled every epoch from seed. n may
 * be at most 2^45 (its index array must fit 2^48 bytes): larger is NULL with
 * ASG_ERR_INVALID. */
typedef struct asg_batcher asg_batcher;
ASG_API asg_batcher *asg_batcher_new(int64_t n, int64_t batch, bool shuffle, bool drop_last,
                                     uint64_t seed);
ASG_API void asg_batcher_free(asg_batcher *b);
/* Fills idx (capacity batch) and returns the batch's size; returns 0 at
 * the end of an epoch (the next call starts a new one). */
ASG_API int64_t asg_batcher_next(asg_batcher *b, int64_t *idx);
ASG_API int64_t asg_batcher_batches_per_epoch(const asg_batcher *b);
/* Data-parallel training: rank's share of every epoch, for world ranks
 * (asg/dist.h: asg_comm_rank, asg_comm_size). Each epoch's permutation of
 * [0, n) is the one asg_batcher_new draws (the same seed, and so the same
 * permutation, on every rank). Like PyTorch's DistributedSampler, it is
 * made a multiple of world long: with drop_last false by repeating it from
 * its start (every example is seen each epoch, a few twice; with n < world
 * some of them by several ranks), with drop_last true by dropping its tail
 * (fewer than world examples). Rank takes the items at positions rank,
 * rank + world, rank + 2 world, ... and yields them in batches of `batch`,
 * the last one smaller unless drop_last. Every rank yields the same number
 * of batches per epoch, ceil(n / world) or floor(n / world) items in
 * batches (collectives need every rank to run the same steps), and the
 * union over ranks of batch s is batch s of asg_batcher_new(n,
 * batch * world, shuffle, drop_last, seed) when n is a multiple of
 * batch * world (with drop_last, for every n). world < 1, rank outside
 * [0, world), batch < 1, n < 1, or drop_last with fewer than batch items
 * per rank: NULL with ASG_ERR_INVALID. */
ASG_API asg_batcher *asg_batcher_new_sharded(int64_t n, int64_t batch, bool shuffle, bool drop_last,
                                             uint64_t seed, int rank, int world);
/* A batcher over a subset: yields items of idx[0..n) (copied). */
ASG_API asg_batcher *asg_batcher_new_subset(const int64_t *idx, int64_t n, int64_t batch,
                                            bool shuffle, bool drop_last, uint64_t seed);
/* Seeded random train/validation split of [0, n): the first
 * n - round(n * val_fraction) items of a permutation go to train_idx, the
 * rest to val_idx (arrays of n entries each; counts returned). */
ASG_API asg_status asg_train_val_split(int64_t n, double val_fraction, uint64_t seed,
                                       int64_t *train_idx, int64_t *n_train, int64_t *val_idx,
                                       int64_t *n_val);
ASG_API int64_t asg_batcher_epoch(const asg_batcher *b);

/* A character-level (byte-level) text corpus: the vocabulary is the set of
 * bytes that occur, tokens are their indices. */
typedef struct asg_text {
  int vocab_size;
  unsigned char chars[256]; /* token -> byte */
  int16_t index[256];       /* byte -> token, -1 if absent */
  int32_t *tokens;
  int64_t n;
} asg_text;

/* Reads and concatenates files (a path naming a directory reads its regular
 * files in name order, skipping "*.dat" indexes and symbolic links). A path
 * that is neither a directory nor a regular file (a FIFO) is ASG_ERR_IO. */
ASG_API asg_status asg_text_load(const char *const *paths, int n_paths, asg_text *out);
ASG_API void asg_text_free(asg_text *t);
/* Entropy in nats of the unigram distribution of tokens [begin, end). */
ASG_API double asg_text_unigram_entropy(const asg_text *t, int64_t begin, int64_t end);
/* Fills x and y [batch, ctx] with random windows from tokens [begin, end):
 * y is x shifted by one. Deterministic in (seed, step). ASG_ERR_INVALID if
 * the range holds fewer than ctx + 1 tokens or batch * ctx overflows. */
ASG_API asg_status asg_text_batch(const asg_text *t, int64_t begin, int64_t end, int64_t batch,
                                  int64_t ctx, uint64_t seed, uint64_t step, int32_t *x,
                                  int32_t *y);

/* Progress of a long run: a one-line bar (step, loss, throughput, ETA)
 * redrawn in place on a terminal; a plain line every `every` steps (and at
 * the end) when stdout is not a terminal. */
typedef struct asg_progress asg_progress;
ASG_API asg_progress *asg_progress_new(const char *label, int64_t total_steps, int64_t every);
/* items: samples (or tokens) processed in this step, for throughput. */
ASG_API void asg_progress_update(asg_progress *p, int64_t step, double loss, int64_t items);
ASG_API void asg_progress_free(asg_progress *p); /* ends the line */

#ifdef __cplusplus
}
#endif
#endif
