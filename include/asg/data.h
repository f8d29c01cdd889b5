/* Data on the host: IDX files (MNIST format, gzip or plain), seeded
 * shuffling batches, CSV tables, background prefetching (NumPy files and
 * the checkpoint manager are in asg/io.h; metrics in asg/metrics.h). */
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

/* ---- CSV of numbers (src/data/csv.c) ----
 * Reads a table of numeric columns into data [rows, cols] of dtype F32
 * (default), F64, I32 or I64, with the column names when it has a header.
 * Fields are trimmed of spaces and tabs and may be quoted ("1.5"; a header
 * name "a,b" with "" for a quote); lines end in LF or CRLF; blank lines are
 * skipped. Numbers are C-locale decimals (strtod's syntax with '.', and
 * nan / inf for floats); integers are exact and must fit the dtype. Every
 * problem is ASG_ERR_FORMAT naming the file, line (1-based) and column
 * (1-based, and its name): an empty field (a missing value), text that is
 * not a number, a row with another number of fields, an unterminated quote,
 * a NUL byte.
 * Input is untrusted: fields longer than 1024 bytes and files larger than
 * max_bytes are refused; memory grows with the data read. */
typedef enum asg_csv_header {
  ASG_CSV_HEADER_AUTO = 0, /* the first row is a header if a field of it is not a number */
  ASG_CSV_HEADER_NONE = 1,
  ASG_CSV_HEADER_PRESENT = 2
} asg_csv_header;
typedef struct asg_csv_options {
  char delimiter;        /* 0: ','; also '\t', ';', '|' ... (not a space, '"', CR or LF) */
  asg_csv_header header; /* 0: AUTO */
  asg_dtype dtype;       /* 0: F32 */
  char comment;          /* lines starting with it are skipped; 0: none */
  size_t max_bytes;      /* 0: 1 GiB */
} asg_csv_options;
typedef struct asg_csv {
  asg_host_tensor data; /* [rows, cols]; rows may be 0 (a header alone) */
  int64_t cols;
  char **names; /* cols names when there was a header, else NULL */
} asg_csv;
/* opt may be NULL (all defaults). out is zeroed on error. */
ASG_API asg_status asg_csv_read(const char *path, const asg_csv_options *opt, asg_csv *out);
/* Parses text[0..len) the same way (name labels messages; may be NULL). */
ASG_API asg_status asg_csv_parse(const char *text, size_t len, const char *name,
                                 const asg_csv_options *opt, asg_csv *out);
ASG_API void asg_csv_free(asg_csv *c);

/* ---- background prefetch (src/data/prefetch.c) ----
 * A thread that fills the next batches while the caller trains on the
 * current one (PyTorch's DataLoader prefetching, one worker):
 *
 *   asg_prefetcher *pf = asg_prefetch_new(bytes, 2, fill, ctx);
 *   const void *buf; int64_t i;
 *   while (asg_prefetch_next(pf, &buf, &i) == ASG_OK && buf) { ...use buf... }
 *   asg_prefetch_free(pf);
 *
 * fill(ctx, i, buf, bytes, &end) runs on the worker thread for i = 0, 1,
 * 2, ... in order, one call at a time, and writes batch i into buf (bytes
 * long); it sets *end = true instead when there is no batch i (buf is then
 * ignored). It must not touch what the caller's thread uses meanwhile
 * (e.g. share only read-only data, and an asg_batcher used only by fill).
 * A status other than ASG_OK stops the worker; asg_prefetch_next returns
 * that status, with fill's message (asg_last_error() of the worker, or a
 * generic one), after the batches filled before it. depth buffers are
 * allocated (0: 2, double buffering; at most 64): the worker runs up to
 * depth - 1 batches ahead of the one the caller holds. */
typedef asg_status (*asg_prefetch_fn)(void *ctx, int64_t index, void *buf, size_t bytes, bool *end);
typedef struct asg_prefetcher asg_prefetcher;
/* NULL with ASG_ERR_INVALID (bytes 0, depth outside 0..64, no fill),
 * ASG_ERR_OOM, or ASG_ERR_IO when the thread cannot start. */
ASG_API asg_prefetcher *asg_prefetch_new(size_t bytes, int depth, asg_prefetch_fn fill, void *ctx);
/* Waits for the next batch: *buf (valid until the next call of next or
 * free) and its index (index may be NULL). At the end of the data, ASG_OK
 * with *buf = NULL, and again on every later call. */
ASG_API asg_status asg_prefetch_next(asg_prefetcher *p, const void **buf, int64_t *index);
/* Stops the worker (after the fill call in progress returns) and frees
 * everything. Safe at any point, NULL included. */
ASG_API void asg_prefetch_free(asg_prefetcher *p);

#ifdef __cplusplus
}
#endif
#endif
