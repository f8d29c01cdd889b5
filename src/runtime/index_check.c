/* Out-of-range indices found by the kernels while running (runtime/backend.h):
 * which steps read indices, their valid range and the error message, shared
 * by every backend so that the message is the same everywhere. */
#include <inttypes.h>

#include "runtime/backend.h"

bool asg__step_checks_index(const asg_step *s) {
  switch (s->op) {
  case ASG_OP_GATHER:
  case ASG_OP_SCATTER_ADD:
  case ASG_OP_ONE_HOT:
  case ASG_OP_SOFTMAX_CE:
  case ASG_OP_SOFTMAX_CE_BWD:
  case ASG_OP_CACHE_WRITE: return true;
  default: return false;
  }
}

/* Valid indices are [0, *n); for softmax CE also *ignore (when has_ignore). */
static void index_range(const asg_step *s, int64_t *n, bool *has_ignore, int64_t *ignore) {
  *has_ignore = false;
  *ignore = 0;
  switch (s->op) {
  case ASG_OP_GATHER:
  case ASG_OP_SCATTER_ADD: *n = s->in[0].shape.dims[s->attr.i[0]]; break;
  case ASG_OP_ONE_HOT: *n = s->attr.i[0]; break;
  case ASG_OP_CACHE_WRITE: /* pos: the T rows from pos fit in the Tmax of the axis */
    *n = s->in[0].shape.dims[s->attr.i[0]] - s->in[1].shape.dims[s->attr.i[0]] + 1;
    break;
  default: { /* softmax CE and its backward: logits [..., C] */
    asg_shape sh = s->in[0].shape;
    *n = sh.ndim ? sh.dims[sh.ndim - 1] : 0;
    *has_ignore = true;
    *ignore = s->attr.i[0];
  }
  }
}

bool asg__index_bad(const asg_step *s, int64_t v) {
  int64_t n, ign;
  bool has_ign;
  index_range(s, &n, &has_ign, &ign);
  return !(has_ign && v == ign) && (v < 0 || v >= n);
}

asg_status asg__index_check_host(const asg_step *s, const void *const *in) {
  const int k = s->op == ASG_OP_ONE_HOT ? 0 : s->op == ASG_OP_CACHE_WRITE ? 2 : 1; /* indices */
  const asg_dtype dt = s->in[k].dtype;
  const int64_t n = asg_shape_numel(s->in[k].shape);
  if (dt != ASG_I32 && dt != ASG_I64) return ASG_OK; /* the kernel refuses it */
  for (int64_t i = 0; i < n; i++) {
    int64_t v = dt == ASG_I32 ? (int64_t)((const int32_t *)in[k])[i] : ((const int64_t *)in[k])[i];
    if (asg__index_bad(s, v)) return asg__index_error(s, v);
  }
  return ASG_OK;
}

asg_status asg__index_error(const asg_step *s, int64_t v) {
  int64_t n, ign;
  bool has_ign;
  index_range(s, &n, &has_ign, &ign);
  if (s->op == ASG_OP_CACHE_WRITE) {
    const int a = (int)s->attr.i[0];
    return asg__error(ASG_ERR_INVALID,
                      "asg_program_run: %s: position %" PRId64 " with %" PRId64
                      " rows out of range: pos must lie in [0, %" PRId64 "] (axis %d of %" PRId64
                      "); asg_compile_opts.unchecked_indices skips rows outside it instead",
                      s->label, v, s->in[1].shape.dims[a], n - 1, a, s->in[0].shape.dims[a]);
  }
  if (has_ign)
    return asg__error(ASG_ERR_INVALID,
                      "asg_program_run: %s: label %" PRId64 " out of range [0, %" PRId64
                      ") and not ignore_index (%" PRId64
                      "); asg_compile_opts.unchecked_indices leaves such rows out instead",
                      s->label, v, n, ign);
  return asg__error(ASG_ERR_INVALID,
                    "asg_program_run: %s: index %" PRId64 " out of range [0, %" PRId64
                    "); asg_compile_opts.unchecked_indices %s instead",
                    s->label, v, n,
                    s->op == ASG_OP_GATHER        ? "gathers zeros"
                    : s->op == ASG_OP_SCATTER_ADD ? "skips such indices"
                                                  : "gives all-zero rows");
}
