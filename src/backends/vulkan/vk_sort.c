/* Vulkan kernels of argsort and cumsum (shaders/sort_argsort.comp,
 * shaders/sort_cumsum.comp; semantics: src/backends/cpu/cpu_sort.c): one
 * workgroup per row. argsort sorts rows of up to 1024 entries in shared
 * memory; longer rows select the top k first, or rank by counting (see
 * argsort_record). */
#include <stdint.h>

#include "backends/vulkan/vk.h"

/* outer, n, inner of the step's input along its axis; error past the
 * shaders' 32-bit index math. */
static asg_status rows_of(const asg_vk_call *c, int64_t *rows, int64_t *n, int64_t *inner) {
  const asg_step *s = c->s;
  const asg_shape xs = s->in[0].shape;
  const int a = (int)s->attr.i[0];
  int64_t outer = 1;
  *inner = 1;
  for (int d = 0; d < a; d++)
    outer *= xs.dims[d];
  for (int d = a + 1; d < xs.ndim; d++)
    *inner *= xs.dims[d];
  *n = xs.dims[a];
  *rows = outer * *inner;
  if (asg_shape_numel(xs) >= INT32_MAX)
    return asg__error(ASG_ERR_UNSUPPORTED, "vulkan: %s: %lld elements (at most 2^31 - 1)", s->label,
                      (long long)asg_shape_numel(xs));
  return ASG_OK;
}

/* Rows of up to kLim entries sort in shared memory; so do the top k <= kLim
 * of longer rows (after a selection pass); other rows (k > kLim) rank every
 * entry by counting, one invocation per entry (shaders/sort_rank.comp). */
enum { kLim = 1024 };

static bool n_gt_lim(const asg_vk_call *c) {
  return c->s->in[0].shape.dims[c->s->attr.i[0]] > kLim;
}

static asg_status argsort_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  char name[32];
  int64_t rows, n, inner;
  const int64_t k = s->out.shape.dims[s->attr.i[0]];
  const bool rank = n_gt_lim(c) && k > kLim;
  asg_status st =
      asg_vk_variant(c, rank ? "sort_rank" : "sort_argsort", s->in[0].dtype, name, sizeof name);
  if (!st) st = rows_of(c, &rows, &n, &inner);
  if (st) return st;
  struct { /* shaders/sort_argsort.comp, shaders/sort_rank.comp */
    uint64_t x, y;
    int32_t rows, n, k, inner, desc;
  } p = {c->in[0],   c->out,         (int32_t)rows,    (int32_t)n,
         (int32_t)k, (int32_t)inner, s->attr.i[1] != 0};
  if (rank && (n + 255) / 256 > 65535)
    return asg__error(ASG_ERR_UNSUPPORTED,
                      "vulkan: %s: the top %lld of rows of %lld entries (at most 2^24 entries "
                      "when k > %d)",
                      s->label, (long long)k, (long long)n, kLim);
  if (rank) /* workgroups: 256 entries of a row x rows (grid-stride) */
    return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, n, 256),
                           asg_vk_groups(c, rows, 1), 1);
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, rows, 1), 1, 1);
}

static asg_status cumsum_record(const asg_vk_call *c) {
  const asg_step *s = c->s;
  char name[32];
  int64_t rows, n, inner;
  asg_status st = asg_vk_variant(c, "sort_cumsum", s->out.dtype, name, sizeof name);
  if (!st) st = rows_of(c, &rows, &n, &inner);
  if (st) return st;
  struct { /* shaders/sort_cumsum.comp */
    uint64_t x, y;
    int32_t rows, n, inner, excl, rev;
  } p = {c->in[0],          c->out,           (int32_t)rows, (int32_t)n, (int32_t)inner,
         s->attr.i[1] != 0, s->attr.i[2] != 0};
  return asg_vk_dispatch(c, name, &p, sizeof p, asg_vk_groups(c, rows, 1), 1, 1);
}

void asg_vk_register_sort(asg_vk_kernel *t) {
  t[ASG_OP_ARGSORT].record = argsort_record;
  t[ASG_OP_CUMSUM].record = cumsum_record;
}
