/* ASG core types: status codes, dtypes, shapes, errors.
 *
 * Thread-safety: error messages are thread-local; a graph or a program may be
 * used by one thread at a time; distinct graphs/programs share nothing,
 * except programs compiled with asg_compile_opts.share_variables, which may
 * run on different threads (one thread per program; asg/program.h). */
#ifndef ASG_CORE_H
#define ASG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asg/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(ASG_SHARED)
#define ASG_API __declspec(dllexport)
#elif defined(__GNUC__)
#define ASG_API __attribute__((visibility("default")))
#else
#define ASG_API
#endif

/* 0 is success; everything else is an error with a message in
 * asg_last_error(). */
typedef enum asg_status {
  ASG_OK = 0,
  ASG_ERR_INVALID = 1,     /* bad argument */
  ASG_ERR_SHAPE = 2,       /* shapes do not agree */
  ASG_ERR_DTYPE = 3,       /* dtype not allowed here */
  ASG_ERR_NOT_FOUND = 4,   /* unknown name */
  ASG_ERR_OOM = 5,         /* allocation failed */
  ASG_ERR_IO = 6,          /* file or stream error */
  ASG_ERR_FORMAT = 7,      /* malformed file */
  ASG_ERR_UNSUPPORTED = 8, /* feature or backend not available */
  ASG_ERR_BACKEND = 9,     /* device/runtime failure */
  ASG_ERR_GRAPH = 10,      /* the graph carries a build error */
  ASG_ERR_NUMERIC = 11     /* a NaN or inf found by anomaly mode (check_finite) */
} asg_status;

/* Message of the last failing call on this thread ("" if none). */
ASG_API const char *asg_last_error(void);
ASG_API void asg_clear_error(void);
ASG_API const char *asg_status_string(asg_status s);

typedef enum asg_dtype {
  ASG_F32 = 0,
  ASG_F64 = 1,
  ASG_I32 = 2,
  ASG_I64 = 3,
  ASG_BF16 = 4, /* storage type for GPU backends */
  ASG_F16 = 5,  /* storage type for GPU backends */
  ASG_DTYPE_COUNT = 6
} asg_dtype;

ASG_API size_t asg_dtype_size(asg_dtype dt);
ASG_API const char *asg_dtype_name(asg_dtype dt);
ASG_API bool asg_dtype_is_float(asg_dtype dt);

#define ASG_MAX_DIMS 8

/* A shape is a small value. ASG_SHAPE(128, 784) builds one in place;
 * ASG_SCALAR is the rank-0 shape. */
typedef struct asg_shape {
  int ndim;
  int64_t dims[ASG_MAX_DIMS];
} asg_shape;

#define ASG__NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
#define ASG__NARGS(...) ASG__NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define ASG_SHAPE(...) ((asg_shape){ASG__NARGS(__VA_ARGS__), {__VA_ARGS__}})
#define ASG_SCALAR ((asg_shape){0, {0}})

/* Element count; -1 if s is not a shape (rank outside 0..ASG_MAX_DIMS, a
 * negative dim) or the count overflows int64. Every shape that enters the
 * library (graph nodes, files, host tensors) is checked once: dims >= 0 and
 * the product of the non-zero dims times the dtype size at most 2^48 bytes
 * (256 TiB); larger shapes are refused with ASG_ERR_SHAPE (graphs) or
 * ASG_ERR_FORMAT (files). */
ASG_API int64_t asg_shape_numel(asg_shape s);
ASG_API bool asg_shape_equal(asg_shape a, asg_shape b);
/* Writes "[2,3,4]" into buf (always NUL-terminated); returns buf. */
ASG_API char *asg_shape_str(asg_shape s, char *buf, size_t n);

/* A set of axes for reductions. ASG_AXES(0, 2); ASG_ALL_AXES reduces all. */
typedef struct asg_axes {
  int n;
  int axis[ASG_MAX_DIMS];
} asg_axes;
#define ASG_AXES(...) ((asg_axes){ASG__NARGS(__VA_ARGS__), {__VA_ARGS__}})
#define ASG_ALL_AXES ((asg_axes){0, {0}})

#ifdef __cplusplus
}
#endif
#endif
