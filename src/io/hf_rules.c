/* Name rules between checkpoint tensors and program variables: pattern
 * matching with captures, substitution, rule checks, and the tensor
 * layout changes a rule asks for (cutting out a part, transposing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hf_internal.h"

static bool match_from(const char *pat, const char *s, hf_caps *c, int k) {
  for (;; pat++, s++) {
    if (*pat == '*') {
      /* one non-empty run without '.'; the shortest that lets the rest match */
      for (size_t len = 1; s[len - 1] && s[len - 1] != '.'; len++) {
        c->s[k] = s;
        c->n[k] = len;
        if (match_from(pat + 1, s + len, c, k + 1)) return true;
      }
      return false;
    }
    if (*pat != *s) return false;
    if (!*pat) {
      c->count = k;
      return true;
    }
  }
}

bool asg__hf_match(const char *pat, const char *name, hf_caps *caps) {
  hf_caps tmp;
  if (!caps) caps = &tmp;
  caps->count = 0;
  return pat && name && match_from(pat, name, caps, 0);
}

char *asg__hf_subst(const char *pat, const hf_caps *caps) {
  size_t n = 0;
  int k = 0;
  for (const char *p = pat; *p; p++)
    n += *p == '*' && k < caps->count ? caps->n[k++] : 1;
  char *out = malloc(n + 1);
  if (!out) return NULL;
  char *o = out;
  k = 0;
  for (const char *p = pat; *p; p++) {
    if (*p == '*' && k < caps->count) {
      memcpy(o, caps->s[k], caps->n[k]);
      o += caps->n[k++];
    } else {
      *o++ = *p;
    }
  }
  *o = '\0';
  return out;
}

/* Shell-style: '*' matches any run, empty and '.' included. Greedy with
 * one backtrack point: linear in practice, never exponential. */
bool asg__hf_glob(const char *pat, const char *s) {
  const char *star = NULL, *resume = NULL;
  while (*s) {
    if (*pat == '*') {
      star = pat++;
      resume = s;
    } else if (*pat == *s) {
      pat++;
      s++;
    } else if (star) {
      pat = star + 1;
      s = ++resume;
    } else {
      return false;
    }
  }
  while (*pat == '*')
    pat++;
  return !*pat;
}

bool asg__hf_excluded(const char *const *ex, int n, const char *name) {
  for (int k = 0; k < n; k++)
    if (ex[k] && asg__hf_glob(ex[k], name)) return true;
  return false;
}

static int stars(const char *s) {
  int n = 0;
  for (; *s; s++)
    n += *s == '*';
  return n;
}

asg_status asg__hf_check_rules(const asg_hf_rule *r, int n, const char *const *ex, int n_ex,
                               const char *fn) {
  if (n < 0 || (n > 0 && !r))
    return asg__error(ASG_ERR_INVALID, "%s: %d rules at %p", fn, n, (const void *)r);
  if (n_ex < 0 || (n_ex > 0 && !ex))
    return asg__error(ASG_ERR_INVALID, "%s: %d exclude patterns at %p", fn, n_ex, (const void *)ex);
  for (int i = 0; i < n; i++) {
    const asg_hf_rule *a = &r[i];
    if (!a->from) return asg__error(ASG_ERR_INVALID, "%s: rule %d has no 'from' pattern", fn, i);
    int sf = stars(a->from);
    if (sf > ASG_HF_MAX_STARS)
      return asg__error(ASG_ERR_INVALID, "%s: rule %d ('%.200s'): %d '*', at most %d", fn, i,
                        a->from, sf, ASG_HF_MAX_STARS);
    if (a->to && stars(a->to) != sf)
      return asg__error(ASG_ERR_INVALID,
                        "%s: rule %d ('%.200s' -> '%.200s'): %d '*' in 'from' but %d in 'to'", fn,
                        i, a->from, a->to, sf, stars(a->to));
    if (a->split < 0 || (a->split > 1 && (a->part < 0 || a->part >= a->split || a->split_axis < 0 ||
                                          a->split_axis >= ASG_MAX_DIMS)))
      return asg__error(ASG_ERR_INVALID,
                        "%s: rule %d ('%.200s'): split %d, part %d, split_axis %d (want split 0 "
                        "or 1, or > 1 with 0 <= part < split and 0 <= split_axis < %d)",
                        fn, i, a->from, a->split, a->part, a->split_axis, ASG_MAX_DIMS);
    for (int j = 0; j < i; j++) {
      const asg_hf_rule *b = &r[j];
      if (!b->from || strcmp(a->from, b->from) != 0) continue;
      if (a->split <= 1 || b->split <= 1 || a->split != b->split || a->split_axis != b->split_axis)
        return asg__error(ASG_ERR_INVALID,
                          "%s: rules %d and %d share 'from' '%.200s' but are not parts of one "
                          "split (split %d/%d, split_axis %d/%d)",
                          fn, j, i, a->from, b->split, a->split, b->split_axis, a->split_axis);
      if (a->part == b->part)
        return asg__error(ASG_ERR_INVALID, "%s: rules %d and %d both take part %d of '%.200s'", fn,
                          j, i, a->part, a->from);
    }
  }
  return ASG_OK;
}

bool asg__hf_part_shape(asg_shape file, int split, int axis, bool transpose, asg_shape *out,
                        char *why, size_t why_len) {
  asg_shape s = file;
  if (split > 1) {
    if (axis >= s.ndim || s.dims[axis] % split != 0) {
      char b[128];
      snprintf(why, why_len, "%s cannot be cut into %d equal parts along axis %d",
               asg_shape_str(file, b, sizeof b), split, axis);
      return false;
    }
    s.dims[axis] /= split;
  }
  if (transpose) {
    if (s.ndim != 2) {
      char b[128];
      snprintf(why, why_len, "%s is not 2-D and cannot be transposed",
               asg_shape_str(s, b, sizeof b));
      return false;
    }
    int64_t t = s.dims[0];
    s.dims[0] = s.dims[1];
    s.dims[1] = t;
  }
  *out = s;
  return true;
}

/* Block sizes of a cut along axis: outer blocks of `whole` rows of
 * `inner` elements, of which a part holds `len` rows. */
static void cut_dims(asg_shape whole, int split, int axis, size_t *outer, size_t *len,
                     size_t *inner) {
  size_t o = 1, in = 1;
  for (int d = 0; d < axis; d++)
    o *= (size_t)whole.dims[d];
  for (int d = axis + 1; d < whole.ndim; d++)
    in *= (size_t)whole.dims[d];
  *outer = o;
  *len = (size_t)whole.dims[axis] / (size_t)split;
  *inner = in;
}

void asg__hf_cut(const void *whole, asg_shape shape, size_t es, int split, int axis, int part,
                 void *dst) {
  size_t outer, len, inner;
  cut_dims(shape, split, axis, &outer, &len, &inner);
  size_t block = len * inner * es, stride = (size_t)shape.dims[axis] * inner * es;
  for (size_t o = 0; o < outer; o++)
    memcpy((char *)dst + o * block, (const char *)whole + o * stride + (size_t)part * block, block);
}

void asg__hf_paste(void *whole, asg_shape shape, size_t es, int split, int axis, int part,
                   const void *src) {
  size_t outer, len, inner;
  cut_dims(shape, split, axis, &outer, &len, &inner);
  size_t block = len * inner * es, stride = (size_t)shape.dims[axis] * inner * es;
  for (size_t o = 0; o < outer; o++)
    memcpy((char *)whole + o * stride + (size_t)part * block, (const char *)src + o * block, block);
}

/* dst [cols, rows] = src [rows, cols]^T in tiles, for the cache. */
void asg__hf_transpose(const void *src, size_t rows, size_t cols, size_t es, void *dst) {
  enum { T = 32 };
  const char *s = src;
  char *d = dst;
  for (size_t r0 = 0; r0 < rows; r0 += T)
    for (size_t c0 = 0; c0 < cols; c0 += T) {
      size_t r1 = r0 + T < rows ? r0 + T : rows, c1 = c0 + T < cols ? c0 + T : cols;
      for (size_t r = r0; r < r1; r++)
        for (size_t c = c0; c < c1; c++)
          memcpy(d + (c * rows + r) * es, s + (r * cols + c) * es, es);
    }
}
