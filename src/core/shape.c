/* dtypes, shapes and broadcasting. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

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
  int64_t n = 1;
  for (int i = 0; i < s.ndim; i++)
    n *= s.dims[i];
  return n;
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
  int64_t st = 1;
  for (int i = s.ndim - 1; i >= 0; i--) {
    strides[i] = st;
    st *= s.dims[i];
  }
}
