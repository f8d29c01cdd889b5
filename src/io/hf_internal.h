/* Internal helpers of the Hugging Face layout files (src/io/hf_*.c). */
#ifndef ASG_HF_INTERNAL_H
#define ASG_HF_INTERNAL_H

#include "asg/hf.h"
#include "io/io_internal.h"

/* Reads a whole regular file (at most max_bytes) into a malloc'd buffer
 * with a NUL after the last byte; who prefixes the messages. */
asg_status asg__hf_read_text(const char *path, const char *who, size_t max_bytes, char **text,
                             size_t *len);
/* Reads and parses a JSON file; *root must be freed with asg__json_free. */
asg_status asg__hf_read_json(const char *path, const char *who, asg_jval *root);
/* Item `key` of object o (NULL if absent or o is not an object). */
const asg_jval *asg__hf_obj_get(const asg_jval *o, const char *key);
/* Whether path is a directory. */
bool asg__hf_is_dir(const char *path);
/* "dir/name", malloc'd (NULL when out of memory). */
char *asg__hf_join(const char *dir, const char *name);

/* ---- rules (src/io/hf_rules.c) ---- */
/* The runs that the '*' of a pattern matched, in order. */
typedef struct hf_caps {
  const char *s[ASG_HF_MAX_STARS];
  size_t n[ASG_HF_MAX_STARS];
  int count;
} hf_caps;
/* name matches pat ('*': a non-empty run without '.'); caps may be NULL. */
bool asg__hf_match(const char *pat, const char *name, hf_caps *caps);
/* pat with its i-th '*' replaced by capture i; malloc'd (NULL: out of memory). */
char *asg__hf_subst(const char *pat, const hf_caps *caps);
/* Shell-style match: '*' matches any run, '.' and empty runs included. */
bool asg__hf_glob(const char *pat, const char *s);
/* name matches one of the n exclude patterns. */
bool asg__hf_excluded(const char *const *ex, int n, const char *name);
/* Checks rules and exclude lists as asg/hf.h describes (ASG_ERR_INVALID). */
asg_status asg__hf_check_rules(const asg_hf_rule *r, int n, const char *const *ex, int n_ex,
                               const char *fn);
/* The variable's shape for a file tensor of shape `file` (cut into `split`
 * parts along axis when split > 1, then transposed); false with the reason. */
bool asg__hf_part_shape(asg_shape file, int split, int axis, bool transpose, asg_shape *out,
                        char *why, size_t why_len);
/* Copies part `part` of `whole` (shape, elements of es bytes) into dst /
 * copies src into that part of whole. */
void asg__hf_cut(const void *whole, asg_shape shape, size_t es, int split, int axis, int part,
                 void *dst);
void asg__hf_paste(void *whole, asg_shape shape, size_t es, int split, int axis, int part,
                   const void *src);
/* dst [cols, rows] = transpose of src [rows, cols]. */
void asg__hf_transpose(const void *src, size_t rows, size_t cols, size_t es, void *dst);

#endif
