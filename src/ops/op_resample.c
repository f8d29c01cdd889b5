/* Padding and resampling constructors (PyTorch semantics): pad and upsample.
 *
 * Attributes of PAD and PAD_BWD (one layout for both):
 *   i[2d], i[2d+1]  pad before / after dim d of x (natural dim order; 0 for
 *                   dims not padded; negative crops)
 *   f[0]            the constant value (ASG_PAD_CONSTANT)
 *   f[1]            the mode (asg_pad_mode)
 *   PAD(x) -> y (every dim d: x.dims[d] + before + after)
 *   PAD_BWD(dy) -> dx of x's shape (reflect/replicate only): dx[c] is the sum
 *   of dy over the outputs that read x[c].
 * Attributes of UPSAMPLE and UPSAMPLE_BWD:
 *   i[0] mode (asg_upsample_mode), i[1] align_corners
 *   f[k] the scale factor the user gave for spatial dim k (0: sizes given)
 *   UPSAMPLE(x [N,C,H,W] or [N,C,L]) -> y [N,C,OH,OW] / [N,C,OL]
 *   UPSAMPLE_BWD(dy) -> dx of x's shape.
 * The coordinate maps that the kernels share are in runtime/resample.h. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/op_util.h"

/* Pads beyond this are refused (sums with dims stay far inside int64). */
#define PAD_LIMIT ((int64_t)1 << 40)

static const char *pad_mode_name(int m) {
  return m == ASG_PAD_CONSTANT ? "constant" : m == ASG_PAD_REFLECT ? "reflect" : "replicate";
}

/* Output dim of a padded dim d (constant or symbolic); 0 on error. */
static int64_t padded_dim(asg_graph *g, asg_shape xs, int d, int64_t b, int64_t e, int mode) {
  char b1[ASG_SHAPE_BUF], m[2 * ASG_SHAPE_BUF];
  int64_t in = xs.dims[d], sum = b + e;
  if (asg__dim_is_sym(in)) {
    int64_t o = sum >= 0 ? asg__dim_add(g, in, sum) : asg__dim_sub(g, in, -sum);
    if (g->status != ASG_OK) return 0;
    snprintf(m, sizeof m, "pad (%lld, %lld) of dim %d of %s leaves it empty", (long long)b,
             (long long)e, d, SHP(xs, b1));
    if (!asg__dim_require_ge(g, o, 1, "pad", m)) return 0;
    int64_t need = mode == ASG_PAD_REFLECT ? (b > e ? b : e) + 1 : 1;
    snprintf(m, sizeof m, "%s pad (%lld, %lld) of dim %d of %s needs the dim >= %lld",
             pad_mode_name(mode), (long long)b, (long long)e, d, SHP(xs, b1), (long long)need);
    if (!asg__dim_require_ge(g, in, need, "pad", m)) return 0;
    return o;
  }
  if (in < 1) {
    asg__fail(g, ASG_ERR_SHAPE, "pad", "%s padding of dim %d of %s: the dim is empty",
              pad_mode_name(mode), d, SHP(xs, b1));
    return 0;
  }
  if (mode == ASG_PAD_REFLECT && (b >= in || e >= in)) {
    asg__fail(g, ASG_ERR_SHAPE, "pad",
              "reflect pad (%lld, %lld) of dim %d of %s must be smaller than the dim (%lld)",
              (long long)b, (long long)e, d, SHP(xs, b1), (long long)in);
    return 0;
  }
  if (in + sum < 1) {
    asg__fail(g, ASG_ERR_SHAPE, "pad", "pad (%lld, %lld) of dim %d of %s leaves %lld elements",
              (long long)b, (long long)e, d, SHP(xs, b1), (long long)(in + sum));
    return 0;
  }
  return in + sum;
}

asg_tensor *asg_pad(asg_tensor *x, const int64_t *pads, int n, asg_pad_mode mode, double value) {
  asg_graph *g = asg__graph_of("pad", 1, &x);
  char b1[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, "pad", x)) return NULL;
  const int r = x->shape.ndim;
  if (n < 0 || n % 2 || n / 2 > r || (n && !pads))
    return asg__fail(g, ASG_ERR_INVALID, "pad",
                     "%d pads for input %s: need (before, after) pairs for at most its %d dims", n,
                     SHP(x->shape, b1), r);
  if (mode != ASG_PAD_CONSTANT && mode != ASG_PAD_REFLECT && mode != ASG_PAD_REPLICATE)
    return asg__fail(g, ASG_ERR_INVALID, "pad", "unknown mode %d (constant, reflect, replicate)",
                     (int)mode);
  asg_attrs a;
  memset(&a, 0, sizeof a);
  a.f[0] = mode == ASG_PAD_CONSTANT ? value : 0;
  a.f[1] = (double)mode;
  asg_shape ys = x->shape;
  bool any = false;
  for (int k = 0; k < n / 2; k++) {
    int d = r - 1 - k;
    int64_t b = pads[2 * k], e = pads[2 * k + 1];
    if (b <= -PAD_LIMIT || b >= PAD_LIMIT || e <= -PAD_LIMIT || e >= PAD_LIMIT)
      return asg__fail(g, ASG_ERR_INVALID, "pad", "pad (%lld, %lld) of dim %d is out of range",
                       (long long)b, (long long)e, d);
    if (!b && !e) continue;
    if (!(ys.dims[d] = padded_dim(g, x->shape, d, b, e, mode))) return NULL;
    a.i[2 * d] = b, a.i[2 * d + 1] = e;
    any = true;
  }
  if (!any) return x; /* nothing to pad: the identity */
  asg_tensor *y = asg__node(g, ASG_OP_PAD, x->dtype, ys, 1, &x);
  if (y) y->attr = a;
  return y;
}

asg_tensor *asg_upsample(asg_tensor *x, asg_upsample_params p) {
  asg_graph *g = asg__graph_of("upsample", 1, &x);
  char b1[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, "upsample", x)) return NULL;
  const int r = x->shape.ndim, ns = r - 2;
  if (r != 3 && r != 4)
    return asg__fail(g, ASG_ERR_SHAPE, "upsample", "input %s must be [N,C,H,W] or [N,C,L]",
                     SHP(x->shape, b1));
  if (p.mode != ASG_UPSAMPLE_NEAREST && p.mode != ASG_UPSAMPLE_LINEAR)
    return asg__fail(g, ASG_ERR_INVALID, "upsample", "unknown mode %d (nearest, linear)",
                     (int)p.mode);
  if (p.mode == ASG_UPSAMPLE_NEAREST && p.align_corners)
    return asg__fail(g, ASG_ERR_INVALID, "upsample",
                     "align_corners is for linear mode only (nearest has no corners to align)");
  bool sized = p.size[0] || p.size[1];
  for (int k = ns; k < 2; k++)
    if (p.size[k] || p.scale[k])
      return asg__fail(g, ASG_ERR_INVALID, "upsample",
                       "input %s has one spatial dim: size[1] and scale[1] must be 0",
                       SHP(x->shape, b1));
  asg_attrs a;
  memset(&a, 0, sizeof a);
  a.i[0] = p.mode;
  a.i[1] = p.align_corners;
  asg_shape ys = x->shape;
  for (int k = 0; k < ns; k++) {
    int64_t in = x->shape.dims[2 + k];
    if (!asg__dim_is_sym(in) && in < 1)
      return asg__fail(g, ASG_ERR_SHAPE, "upsample", "input %s has an empty spatial dim",
                       SHP(x->shape, b1));
    if (sized) {
      if (p.size[k] < 1 || p.size[k] > ((int64_t)1 << 40) || p.scale[k])
        return asg__fail(g, ASG_ERR_INVALID, "upsample",
                         "size (%lld, %lld) must be >= 1 per spatial dim (with no scale)",
                         (long long)p.size[0], (long long)p.size[1]);
      ys.dims[2 + k] = p.size[k];
      continue;
    }
    double s = p.scale[k];
    if (!(s > 0) || !isfinite(s))
      return asg__fail(g, ASG_ERR_INVALID, "upsample",
                       "scale (%g, %g) must be finite and > 0 per spatial dim (or give a size)",
                       p.scale[0], p.scale[1]);
    a.f[k] = s;
    if (asg__dim_is_sym(in)) {
      if (s != floor(s) || s > 65536)
        return asg__fail(g, ASG_ERR_SHAPE, "upsample",
                         "scale %g of symbolic dim %d of %s: only whole scales (or a size)", s,
                         2 + k, SHP(x->shape, b1));
      ys.dims[2 + k] = asg__dim_mul(g, in, (int64_t)s);
      if (g->status != ASG_OK) return NULL;
      continue;
    }
    double o = floor((double)in * s);
    if (!(o >= 1) || o > (double)((int64_t)1 << 40))
      return asg__fail(g, ASG_ERR_SHAPE, "upsample",
                       "scale %g of dim %d of %s gives output size %.0f (must be >= 1)", s, 2 + k,
                       SHP(x->shape, b1), o);
    ys.dims[2 + k] = (int64_t)o;
  }
  asg_tensor *y = asg__node(g, ASG_OP_UPSAMPLE, x->dtype, ys, 1, &x);
  if (y) y->attr = a;
  return y;
}
