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
 * optimizer state, which a model file need not hold. The error message names
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

#ifdef __cplusplus
}
#endif
#endif
