/* Gradient rules of the index family. Each is built from ops that have
 * gradient rules themselves, so they can be differentiated again:
 * permute <-> inverse permute, slice <-> slice_bwd, gather <-> scatter_add. */
#include "autograd/grad.h"
#include "core/symbol.h"

static void g_permute(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  int inv[ASG_MAX_DIMS];
  for (int d = 0; d < y->shape.ndim; d++)
    inv[y->attr.i[d]] = d;
  dx[0] = asg_permute(dy, inv);
}

static void g_slice(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  dx[0] = asg__slice_bwd(dy, y->in[0]->shape, (int)y->attr.i[0], y->attr.i[1], y->attr.i[2]);
}

/* slice_bwd is linear and its adjoint is the slice it came from. */
static void g_slice_bwd(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  (void)need;
  int64_t start = y->attr.i[1], step = y->attr.i[2], count = y->attr.i[3];
  if (asg__dim_is_sym(start) || asg__dim_is_sym(count))
    dx[0] = asg__slice_dims(dy, (int)y->attr.i[0], start, count, step);
  else
    dx[0] = asg_slice(dy, (int)y->attr.i[0], start, start + (count - 1) * step + 1, step);
}

static void g_concat(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  int a = (int)y->attr.i[0];
  int64_t at = 0;
  bool sym = asg__dim_is_sym(y->shape.dims[a]); /* then pieces start at sums */
  for (int k = 0; k < y->n_in; k++) {
    int64_t len = y->in[k]->shape.dims[a];
    if (need[k])
      dx[k] = sym ? asg__slice_dims(dy, a, at, len, 1) : asg_slice(dy, a, at, at + len, 1);
    at = sym ? asg__dim_add(y->graph, at, len) : at + len;
  }
}

static void g_gather(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  asg_tensor *x = y->in[0];
  if (need[0])
    dx[0] = asg_scatter_add(asg_fill(x->graph, x->dtype, x->shape, 0.0), y->in[1], dy,
                            (int)y->attr.i[0]);
}

static void g_scatter_add(asg_tensor *y, asg_tensor *dy, const bool *need, asg_tensor **dx) {
  if (need[0]) dx[0] = dy;
  if (need[2]) dx[2] = asg_gather(dy, y->in[1], (int)y->attr.i[0]);
}

void asg_grad_register_index(asg_grad_rule *t) {
  t[ASG_OP_PERMUTE] = g_permute;
  t[ASG_OP_SLICE] = g_slice;
  t[ASG_OP_SLICE_BWD] = g_slice_bwd;
  t[ASG_OP_CONCAT] = g_concat;
  t[ASG_OP_GATHER] = g_gather;
  t[ASG_OP_SCATTER_ADD] = g_scatter_add;
}
