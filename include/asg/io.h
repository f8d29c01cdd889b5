/* Files: safetensors (read lazily through mmap, written atomically),
 * saving/loading a program's variables by name, and training checkpoints.
 *
 * safetensors layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
 *    ..., "__metadata__": {"key": "value"}}
 * then the raw little-endian data; offsets are relative to the data section.
 * Dtypes F32, F64, F16, BF16, I32 and I64 are supported. Every malformed file
 * gives ASG_ERR_FORMAT with a message naming the file and the problem.
 *
 * Writes go to "path.tmp.<pid>.XXXXXX" in the same directory (pid: the
 * writing process), are fsync'ed, then renamed over path (and the directory
 * fsync'ed): a crash leaves either the old file or the new one, never a torn
 * one. A writer killed mid-save leaves its temporary behind; the next write
 * of the same path removes the temporaries of that path whose process is
 * gone (never those of a live process, nor of other paths).
 *
 * Every reader opens only regular files (a FIFO, device or directory is
 * ASG_ERR_IO at once, without blocking) and checks every shape once: dims
 * >= 0 and at most 2^48 bytes a tensor (see asg_shape_numel).
 *
 * Thread-safety: an open asg_safetensors may be read from several threads;
 * the program functions follow the program's rule (one thread at a time). */
#ifndef ASG_IO_H
#define ASG_IO_H

#include "asg/data.h"
#include "asg/metrics.h"
#include "asg/program.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- half precision conversions (host) ----
 * f32 -> f16/bf16 rounds to nearest, ties to even; overflow gives inf, NaN
 * stays NaN (quiet). f16/bf16 -> f32 is exact. */
ASG_API uint16_t asg_f32_to_f16(float x);
ASG_API float asg_f16_to_f32(uint16_t h);
ASG_API uint16_t asg_f32_to_bf16(float x);
ASG_API float asg_bf16_to_f32(uint16_t h);

/* Converts n elements from sdt to ddt (src and dst must not overlap; either
 * may be unaligned). Float types convert among themselves (each result
 * correctly rounded once, even f64 -> f16), integer types among themselves
 * (ASG_ERR_DTYPE if an I64 value does not fit in I32); float <-> integer is
 * ASG_ERR_DTYPE. */
ASG_API asg_status asg_convert(const void *src, asg_dtype sdt, void *dst, asg_dtype ddt, size_t n);

/* ---- reading ---- */
typedef struct asg_safetensors asg_safetensors;

typedef struct asg_safetensors_info {
  const char *name; /* valid until close */
  asg_dtype dtype;
  asg_shape shape;
  size_t nbytes;   /* numel * dtype size */
  uint64_t offset; /* from the start of the file */
} asg_safetensors_info;

/* Maps and validates the file. NULL on error (asg_last_error() says why:
 * ASG_ERR_IO for open/mmap failures, ASG_ERR_FORMAT for malformed files,
 * ASG_ERR_UNSUPPORTED for valid but unsupported dtypes such as "BOOL"). */
ASG_API asg_safetensors *asg_safetensors_open(const char *path);
ASG_API void asg_safetensors_close(asg_safetensors *f);
/* Tensors in header order. */
ASG_API int asg_safetensors_count(const asg_safetensors *f);
ASG_API asg_status asg_safetensors_info_at(const asg_safetensors *f, int i,
                                           asg_safetensors_info *info);
/* Index of the named tensor, -1 if absent (no error set). */
ASG_API int asg_safetensors_find(const asg_safetensors *f, const char *name);
/* Pointer to tensor i's bytes inside the mapping (valid until close;
 * little-endian; may be unaligned in files from other writers, so read it
 * with memcpy or use asg_safetensors_read). NULL if i is out of range. */
ASG_API const void *asg_safetensors_data(const asg_safetensors *f, int i, size_t *nbytes);
/* Copies tensor i into dst (nbytes must be numel * size of dt), converting
 * to dt as asg_convert does. */
ASG_API asg_status asg_safetensors_read(const asg_safetensors *f, int i, asg_dtype dt, void *dst,
                                        size_t nbytes);
/* Reads tensor i into a new host tensor of dtype dt (free with
 * asg_host_tensor_free). */
ASG_API asg_status asg_safetensors_read_host(const asg_safetensors *f, int i, asg_dtype dt,
                                             asg_host_tensor *out);
/* "__metadata__" entries: value of key (NULL if absent), or by index. */
ASG_API const char *asg_safetensors_metadata(const asg_safetensors *f, const char *key);
ASG_API int asg_safetensors_metadata_count(const asg_safetensors *f);
ASG_API asg_status asg_safetensors_metadata_at(const asg_safetensors *f, int i, const char **key,
                                               const char **value);

/* ---- writing ----
 * n tensors named names[i] (unique, valid UTF-8, not "__metadata__") with
 * data tensors[i]; meta holds n_meta (key, value) pairs as 2*n_meta strings
 * (meta may be NULL when n_meta is 0). Data is laid out contiguously, 8-byte
 * dtypes first, after a header padded with spaces to a multiple of 8, so
 * every tensor is aligned to its element size in the file. */
ASG_API asg_status asg_safetensors_write(const char *path, int n, const char *const *names,
                                         const asg_host_tensor *tensors, int n_meta,
                                         const char *const *meta);
/* As asg_safetensors_write, storing tensor i as file_dtypes[i] (e.g. F32 data
 * written as F16 or BF16, rounded to nearest even). file_dtypes may be NULL. */
ASG_API asg_status asg_safetensors_write_as(const char *path, int n, const char *const *names,
                                            const asg_host_tensor *tensors,
                                            const asg_dtype *file_dtypes, int n_meta,
                                            const char *const *meta);

/* ---- program variables ---- */
typedef enum asg_var_filter {
  ASG_VARS_ALL = 0,  /* every variable: parameters, statistics, optimizer state */
  ASG_VARS_MODEL = 1 /* everything but optimizer state: what a model file holds */
} asg_var_filter;

/* True for names the optimizers give their state: "optim/..." (lr, step,
 * bias corrections, accumulation count) and "<param>.<state>" with state
 * adam_m, adam_v, momentum, square_avg, grad_avg or grad_acc. */
ASG_API bool asg_is_optimizer_state(const char *name);

/* Saves the program's variables (their own dtypes) to a safetensors file. */
ASG_API asg_status asg_program_save_variables(asg_program *p, const char *path,
                                              asg_var_filter filter);

/* Options of the _ex save functions; a zeroed struct (or NULL) gives the
 * plain functions' behaviour. */
typedef struct asg_save_options {
  /* Refuse to save state that holds NaN or an infinity (float variables):
   * ASG_ERR_INVALID naming the first such variable and element, and the file
   * at path is left exactly as it was. */
  bool require_finite;
} asg_save_options;
ASG_API asg_status asg_program_save_variables_ex(asg_program *p, const char *path,
                                                 asg_var_filter filter,
                                                 const asg_save_options *opt);
/* Loads tensors by name into the program's variables, converting dtype
 * where needed (e.g. an F16, BF16 or F64 file into F32 variables). Nothing is
 * written unless the whole file checks out. A shape (or float/integer kind)
 * mismatch is always an error; with strict, so are file tensors the program
 * lacks (unexpected) and program variables the file lacks (missing), except
 * optimizer state, which a model file need not hold, and a batch norm's
 * "<layer>.num_batches_tracked" (i64 scalar): a file without it sets it to 0
 * (files from before ASG kept it), and a program without it (an eval
 * program never reads it) ignores the file's (asg_nn_batchnorm_ex). The
 * error message names
 * every offending tensor (ASG_ERR_SHAPE for shape/dtype, else
 * ASG_ERR_NOT_FOUND; long lists are summarized as "'a', 'b' and 74 more").
 * A file's optimizer state is not "unexpected" for a program that has none
 * (a training checkpoint loads strictly into an inference program). A load
 * that matches no variable at all (non-strict, names all different) is
 * ASG_ERR_NOT_FOUND naming both sides, unless the program has no variables. */
ASG_API asg_status asg_program_load_variables(asg_program *p, const char *path, bool strict);
/* As asg_program_load_variables; *n_loaded (may be NULL) receives the number
 * of variables written (0 on error). */
ASG_API asg_status asg_program_load_variables_ex(asg_program *p, const char *path, bool strict,
                                                 int *n_loaded);

/* ---- training checkpoints ----
 * Every variable (parameters and optimizer state) plus metadata: format
 * "asg-checkpoint", format version, step and the program's run count (the
 * state of its random streams). Loading restores all of them exactly (any
 * missing, unexpected or mis-shaped variable is an error and nothing is
 * changed); training then continues bit for bit as if never interrupted.
 * A program without optimizer state (an inference program) loads a training
 * checkpoint too: the optimizer state in the file is skipped. */
#define ASG_CHECKPOINT_VERSION 1
ASG_API asg_status asg_checkpoint_save(asg_program *p, const char *path, int64_t step);
/* asg_checkpoint_save with options (opt may be NULL). */
ASG_API asg_status asg_checkpoint_save_ex(asg_program *p, const char *path, int64_t step,
                                          const asg_save_options *opt);
/* step may be NULL. */
ASG_API asg_status asg_checkpoint_load(asg_program *p, const char *path, int64_t *step);

/* ---- NumPy .npy and .npz (src/io/npy.c, src/io/npz.c) ----
 * .npy: format versions 1.0, 2.0 and 3.0, C order (a Fortran-order array is
 * ASG_ERR_UNSUPPORTED: save it with np.ascontiguousarray), either byte
 * order. dtypes read: f4 -> F32, f8 -> F64, i4 -> I32, i8 -> I64 as they
 * are; f2 -> F32 (exact); i1, u1, i2, u2, b1 -> I32 and u4 -> I64 (exact);
 * u8 -> I64 when every value fits (else ASG_ERR_FORMAT naming the element).
 * Others (complex, strings, objects, structured) are ASG_ERR_UNSUPPORTED
 * naming the dtype. A 0-d array has rank 0; an empty one has data of 1 byte.
 * Input is untrusted: headers over 64 KiB, shapes over ASG_MAX_DIMS dims or
 * 2^48 bytes, truncated data and malformed headers are ASG_ERR_FORMAT naming
 * the file (and member); memory never exceeds what the data needs.
 *
 * .npz (np.savez / np.savez_compressed): a zip of .npy members, stored or
 * deflated (deflate needs a build with zlib, else ASG_ERR_UNSUPPORTED),
 * zip64 records read; CRC-32 checked. Encrypted members, other compression
 * methods and members not named "*.npy" are refused. Array names are the
 * member names without ".npy", as np.load gives them.
 *
 * Writes are atomic (as safetensors above): F32 '<f4', F64 '<f8', I32 '<i4',
 * I64 '<i8', F16 '<f2' (BF16 has no NumPy dtype: ASG_ERR_DTYPE); .npy
 * version 1.0 with the header padded to 64 bytes; .npz members stored (not
 * compressed), at most 4 GiB in all (ASG_ERR_UNSUPPORTED beyond). */
ASG_API asg_status asg_npy_read(const char *path, asg_host_tensor *out);
ASG_API asg_status asg_npy_write(const char *path, const asg_host_tensor *t);

typedef struct asg_npz {
  int n;
  char **names;            /* n names */
  asg_host_tensor *arrays; /* n arrays */
} asg_npz;
/* Reads every member (out is zeroed on error). Free with asg_npz_free. */
ASG_API asg_status asg_npz_read(const char *path, asg_npz *out);
ASG_API void asg_npz_free(asg_npz *z);
/* Index of the array named name, -1 if absent (no error set). */
ASG_API int asg_npz_find(const asg_npz *z, const char *name);
/* n arrays named names[i] (unique, non-empty, no NUL; ".npy" is appended). */
ASG_API asg_status asg_npz_write(const char *path, int n, const char *const *names,
                                 const asg_host_tensor *arrays);

/* ---- checkpoint manager (src/io/ckpt_manager.c) ----
 * A directory of training checkpoints (asg_checkpoint_save) that keeps the
 * last K and the best by a metric, like TensorFlow's CheckpointManager and
 * Lightning's ModelCheckpoint(save_top_k=1, save_last):
 *
 *   asg_ckpt_manager_options o = {.keep_last = 3, .keep_best = true};
 *   asg_ckpt_manager *m = asg_ckpt_manager_open("runs/a", &o);
 *   ... asg_ckpt_manager_save(m, prog, step, val_loss); ...
 *   asg_ckpt_manager_restore_best(m, prog, &step);
 *
 * Files are "<dir>/<prefix>-<step, 8 digits or more>.safetensors"; the
 * manifest "<dir>/<prefix>.json" lists them in save order with their
 * metrics. A save writes the checkpoint (atomically), then the manifest
 * (atomically), then removes the files the manifest no longer lists
 * (including "<prefix>-<digits>.safetensors" files an interrupted save
 * left): a crash at any point leaves a manifest whose files all exist.
 * Saving a step already listed replaces it. One manager per directory and
 * prefix at a time (it owns those names). */
typedef struct asg_ckpt_manager_options {
  int keep_last;                /* the most recent saves kept; 0: 3; < 0: all */
  bool keep_best;               /* also keep the best by metric (even if older) */
  asg_monitor_mode mode;        /* of the metric: MIN (default) or MAX */
  const char *prefix;           /* NULL: "ckpt" (letters, digits, '_', '.', '-'; at most 64) */
  const asg_save_options *save; /* for asg_checkpoint_save_ex; may be NULL */
} asg_ckpt_manager_options;
typedef struct asg_ckpt_manager asg_ckpt_manager;
/* Creates dir if it is missing (one level) and reads its manifest if there
 * is one (ASG_ERR_FORMAT if it is malformed). opt may be NULL. NULL on
 * error. */
ASG_API asg_ckpt_manager *asg_ckpt_manager_open(const char *dir,
                                                const asg_ckpt_manager_options *opt);
ASG_API void asg_ckpt_manager_free(asg_ckpt_manager *m);
/* Saves p at step (>= 0) with metric (NaN: none; such a checkpoint is never
 * the best). */
ASG_API asg_status asg_ckpt_manager_save(asg_ckpt_manager *m, asg_program *p, int64_t step,
                                         double metric);
/* Checkpoints kept, in save order (i = count - 1 the latest). path is valid
 * until the next call on m; any output may be NULL. */
ASG_API int asg_ckpt_manager_count(const asg_ckpt_manager *m);
ASG_API asg_status asg_ckpt_manager_info(const asg_ckpt_manager *m, int i, int64_t *step,
                                         double *metric, const char **path);
/* Index of the best checkpoint (strictly better wins; the earlier on ties);
 * -1 if none has a metric. */
ASG_API int asg_ckpt_manager_best(const asg_ckpt_manager *m);
/* Loads the latest / the best checkpoint into p (asg_checkpoint_load);
 * ASG_ERR_NOT_FOUND when there is none. step may be NULL. */
ASG_API asg_status asg_ckpt_manager_restore_latest(asg_ckpt_manager *m, asg_program *p,
                                                   int64_t *step);
ASG_API asg_status asg_ckpt_manager_restore_best(asg_ckpt_manager *m, asg_program *p,
                                                 int64_t *step);

#ifdef __cplusplus
}
#endif
#endif
