/* Internal helpers shared by the io files: a small JSON parser, a growable
 * string, and the safetensors writer with a fetch callback (so programs can
 * stream variables without copying them all to the host first). */
#ifndef ASG_IO_INTERNAL_H
#define ASG_IO_INTERNAL_H

#include "asg/io.h"
#include "core/internal.h"

bool asg__dtype_is_int(asg_dtype dt);
bool asg__dtype_valid(int dt);

/* ---- growable string ---- */
typedef struct asg_sbuf {
  char *s;
  size_t len, cap;
  bool oom;
} asg_sbuf;
void asg__sb_putn(asg_sbuf *b, const char *s, size_t n);
void asg__sb_puts(asg_sbuf *b, const char *s);
void asg__sb_printf(asg_sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s as a JSON string literal (quotes and escapes). */
void asg__sb_json_str(asg_sbuf *b, const char *s);
void asg__sb_free(asg_sbuf *b);

/* ---- mismatch reports (src/io/program_io.c) ----
 * A list of tensor names, each with an optional detail ("'a' is f32 [2]
 * ..."), composed into one error message that always fits. */
typedef struct asg_name_list {
  asg_sbuf items; /* NUL-separated */
  int count;
} asg_name_list;
void asg__names_add(asg_name_list *l, const char *name, const char *detail);
/* Appends " <what> (count): 'a', 'b' and N more;" when l is not empty,
 * leaving `reserve` bytes of the message for the lists still to come. */
void asg__names_put(asg_sbuf *msg, const char *what, const asg_name_list *l, size_t reserve);
/* The reserve that the n non-empty lists of later[] need. */
size_t asg__names_reserve(const asg_name_list *const *later, int n);

/* ---- JSON ---- */
typedef enum asg_jtype {
  ASG_J_NULL,
  ASG_J_BOOL,
  ASG_J_NUM,
  ASG_J_STR,
  ASG_J_ARR,
  ASG_J_OBJ
} asg_jtype;

typedef struct asg_jval asg_jval;
struct asg_jval {
  asg_jtype type;
  bool b;      /* BOOL */
  bool is_int; /* NUM: an integer literal that fits in int64 */
  int64_t i;   /* NUM when is_int */
  char *s;     /* STR: decoded UTF-8 without NUL bytes, NUL-terminated */
  int n;       /* ARR/OBJ: number of items */
  asg_jval *items;
  char **keys; /* OBJ: keys[k] names items[k]; unique */
  size_t pos;  /* byte offset in the text, for messages */
};

/* Parses text[0..len) as one JSON value followed only by whitespace.
 * On error returns false with a message in err (exactly ASG_JSON_OOM when an
 * allocation failed). Free with asg__json_free. */
#define ASG_JSON_OOM "out of memory"
bool asg__json_parse(const char *text, size_t len, asg_jval *out, char *err, size_t errlen);
void asg__json_free(asg_jval *v);
/* Validates UTF-8 (no overlong forms, surrogates or code points > 0x10FFFF). */
bool asg__utf8_valid(const unsigned char *s, size_t n);

/* ---- safetensors ---- */
/* asg_safetensors_open that also returns the status. */
asg_status asg__safetensors_open(const char *path, asg_safetensors **out);

/* Creates "<path>.tmp.<pid>.XXXXXX" (src/io/tempfile.c) after removing the
 * stale temporaries of path (same pattern, pid of a process that is gone);
 * gives the descriptor in *fd and the malloc'd name in *tmp. */
asg_status asg__temp_create(const char *path, int *fd, char **tmp);

/* Writes all n bytes to fd (tmp names the file in messages). */
asg_status asg__write_all(int fd, const void *buf, size_t n, const char *tmp);
/* fsyncs the directory holding path (after a rename into it). */
asg_status asg__fsync_dir(const char *path);

/* Fills dst (nbytes) with the data of tensor i when tensors[i].data is NULL. */
typedef asg_status (*asg_st_fetch)(void *ctx, int i, void *dst, size_t nbytes);
asg_status asg__safetensors_write(const char *path, int n, const char *const *names,
                                  const asg_host_tensor *tensors, const asg_dtype *file_dtypes,
                                  int n_meta, const char *const *meta, asg_st_fetch fetch,
                                  void *ctx);

#endif
