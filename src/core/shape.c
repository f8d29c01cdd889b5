/* dtypes, shapes and broadcasting. */
#include <stdio.h>
#include <string.h>

#include "core/checks.h"
#include "core/internal.h"
#include "core/symbol.h"

size_t asg_dtype_size(asg_dtype dt) {
  switch (dt) {
  case ASG_F32: return 4;
  case ASG_F64: return 8;
  case ASG_I32: return 4;
  case ASG_I64: return 8;
  case ASG_BF16: return 2;
  case ASG_F16: return 2;
  default: return 0;
  }
}

const char *asg_dtype_name(asg_dtype dt) {
  static const char *names[] = {"f32", "f64", "i32", "i64", "bf16", "f16"};
  return (unsigned)dt < ASG_DTYPE_COUNT ? names[dt] : "?";
}

bool asg_dtype_is_float(asg_dtype dt) {
  return dt == ASG_F32 || dt == ASG_F64 || dt == ASG_BF16 || dt == ASG_F16;
}

int64_t asg_shape_numel(asg_shape s) {
  if (s.ndim < 0 || s.ndim > ASG_MAX_DIMS) return -1;
  bool empty = false;
  for (int i = 0; i < s.ndim; i++) {
    if (s.dims[i] < 0) return -1;
    empty = empty || s.dims[i] == 0;
  }
  if (empty) return 0; /* even when the other dims overflow: the count is 0 */
  int64_t n = 1;
  for (int i = 0; i < s.ndim; i++)
    if (!asg__mul_i64(n, s.dims[i], &n)) return -1;
  return n;
}

bool asg__shape_check(asg_shape s, size_t elem_size, int64_t *numel, char *why, size_t why_len) {
  return asg__shape_check_g(NULL, s, elem_size, numel, why, why_len);
}

bool asg__shape_check_g(const asg_graph *g, asg_shape s, size_t elem_size, int64_t *numel,
                        char *why, size_t why_len) {
  if (s.ndim < 0 || s.ndim > ASG_MAX_DIMS) {
    snprintf(why, why_len, "rank %d is out of range 0..%d", s.ndim, ASG_MAX_DIMS);
    return false;
  }
  /* the product of the non-zero dims, bounded at every step: a zero dim
   * makes the tensor empty but must not hide dims that overflow */
  const uint64_t max = ASG__MAX_TENSOR_BYTES / (elem_size ? elem_size : 1);
  uint64_t prod = 1;
  bool empty = false, sym = false;
  for (int i = 0; i < s.ndim; i++) {
    int64_t d = s.dims[i];
    if (d < 0 && g && asg__dim_is_sym(d) && asg__dim_valid(g, d)) {
      sym = true;
      continue;
    }
    if (d < 0) {
      snprintf(why, why_len, "dim %d is %lld (%s)", i, (long long)d,
               asg__dim_is_sym(d) && g ? "not a symbolic dim of this graph" : "negative");
      return false;
    }
    if (d == 0) {
      empty = true;
      continue;
    }
    if ((uint64_t)d > max / prod) {
      char b[200];
      snprintf(why, why_len,
               "%s of %zu-byte elements needs more bytes than the limit of one tensor (%llu)",
               asg__shape_str_g(g, s, b, sizeof b), elem_size,
               (unsigned long long)ASG__MAX_TENSOR_BYTES);
      return false;
    }
    prod *= (uint64_t)d;
  }
  if (numel) *numel = empty ? 0 : sym ? -1 : (int64_t)prod;
  return true;
}

bool asg_shape_equal(asg_shape a, asg_shape b) {
  if (a.ndim != b.ndim) return false;
  for (int i = 0; i < a.ndim; i++)
    if (a.dims[i] != b.dims[i]) return false;
  return true;
}

char *asg_shape_str(asg_shape s, char *buf, size_t n) {
  size_t k = 0;
  if (!buf || n == 0) return buf;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < s.ndim && k < n; i++)
    k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)s.dims[i]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

bool asg__broadcast_shapes(asg_shape a, asg_shape b, asg_shape *out) {
  asg_shape r;
  r.ndim = a.ndim > b.ndim ? a.ndim : b.ndim;
  for (int i = 0; i < r.ndim; i++) {
    int ia = a.ndim - r.ndim + i, ib = b.ndim - r.ndim + i;
    int64_t da = ia >= 0 ? a.dims[ia] : 1, db = ib >= 0 ? b.dims[ib] : 1;
    if (da != db && da != 1 && db != 1) return false;
    r.dims[i] = da == 1 ? db : da;
  }
  for (int i = r.ndim; i < ASG_MAX_DIMS; i++)
    r.dims[i] = 0;
  *out = r;
  return true;
}

bool asg__norm_axis(int axis, int ndim, int *out) {
  if (axis < 0) axis += ndim;
  if (axis < 0 || axis >= ndim) return false;
  *out = axis;
  return true;
}

void asg__strides(asg_shape s, int64_t *strides) {
  int64_t st = 1; /* shapes are checked: no product overflows */
  for (int i = s.ndim - 1; i >= 0; i--) {
    strides[i] = st;
    st *= s.dims[i];
  }
}
