/* Convolution and pooling constructors (NCHW, PyTorch semantics).
 *
 * Attributes of CONV2D, CONV2D_BWD_INPUT, CONV2D_BWD_WEIGHT and
 * CONV_TRANSPOSE2D (all describe the same forward convolution geometry):
 *   i0, i1  stride (h, w)       >= 1
 *   i2, i3  padding (h, w)      >= 0
 *   i4, i5  dilation (h, w)     >= 1
 *   i6      groups              >= 1
 *   i7, i8  output_padding (h, w), CONV_TRANSPOSE2D only (0 elsewhere)
 * Inputs and node shapes:
 *   CONV2D(x [N,C,H,W], w [O,C/G,KH,KW])        -> y  [N,O,OH,OW]
 *   CONV2D_BWD_INPUT(dy [N,O,OH,OW], w)          -> dx [N,C,H,W]  (x's shape)
 *   CONV2D_BWD_WEIGHT(dy [N,O,OH,OW], x)         -> dw [O,C/G,KH,KW] (w's shape)
 *   CONV_TRANSPOSE2D(x [N,Ci,H,W], w [Ci,Co/G,KH,KW]) -> y [N,Co,OH,OW]; this is
 *     CONV2D_BWD_INPUT with x in dy's place, so kernels share one code path.
 * Kernels take every size from the shapes, never from the output-size
 * formula, so a CONV2D node may be given a smaller output than the formula
 * (the gradient of conv_transpose2d with output_padding needs that).
 *
 * Attributes of MAXPOOL2D, MAXPOOL2D_BWD, AVGPOOL2D, AVGPOOL2D_BWD:
 *   i0, i1 kernel (h, w)     >= 1
 *   i2, i3 stride            >= 1
 *   i4, i5 padding           0 <= padding <= kernel / 2
 *   i6, i7 dilation          >= 1 (1 for the avg ops)
 *   i8     ceil_mode         0 / 1 (already in the output shape; kept for export)
 *   i9     exclude_pad       avg: 1 divides by the input elements in the window,
 *                            0 by the window clipped to the padded input
 *   MAXPOOL2D_BWD(dy, x) and AVGPOOL2D_BWD(dy) have x's shape. Window (oh, ow)
 *   starts at (oh s - pad) and has taps every dilation; kernels take its
 *   count from the output shape (ceil mode adds a partial last window).
 * ADAPTIVE_AVGPOOL2D and its BWD(dy) have no attributes: the bins follow
 * from the input and output shapes (start floor(i*H/OH), end ceil((i+1)*H/OH)). */
#include <stdio.h>
#include <string.h>

#include "core/checks.h"
#include "ops/op_util.h"

static void conv_attrs(asg_attrs *a, const asg_conv_params *p) {
  for (int k = 0; k < 2; k++) {
    a->i[0 + k] = p->stride[k] ? p->stride[k] : 1;
    a->i[2 + k] = p->padding[k];
    a->i[4 + k] = p->dilation[k] ? p->dilation[k] : 1;
    a->i[7 + k] = p->output_padding[k];
  }
  a->i[6] = p->groups ? p->groups : 1;
}

/* Common checks of x, w (rank, dtype, params); fills the attributes. */
static bool conv_common(asg_graph *g, const char *op, asg_tensor *x, asg_tensor *w,
                        const asg_conv_params *p, asg_attrs *a) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  if (!asg__same_dtype(g, op, x, w) || !asg__need_float(g, op, x)) return false;
  if (x->shape.ndim != 4 || w->shape.ndim != 4) {
    asg__fail(g, ASG_ERR_SHAPE, op, "input %s and weight %s must both have rank 4 (NCHW)",
              SHP(x->shape, b1), SHP(w->shape, b2));
    return false;
  }
  memset(a, 0, sizeof *a);
  conv_attrs(a, p);
  for (int k = 0; k < 2; k++) {
    if (a->i[0 + k] < 1 || a->i[4 + k] < 1 || a->i[2 + k] < 0) {
      asg__fail(g, ASG_ERR_INVALID, op,
                "stride (%lld,%lld) and dilation (%lld,%lld) must be >= 1, padding (%lld,%lld) "
                ">= 0",
                (long long)a->i[0], (long long)a->i[1], (long long)a->i[4], (long long)a->i[5],
                (long long)a->i[2], (long long)a->i[3]);
      return false;
    }
  }
  if (a->i[6] < 1) {
    asg__fail(g, ASG_ERR_INVALID, op, "groups must be >= 1, got %d", p->groups);
    return false;
  }
  if (!asg__shape_is_static(w->shape)) {
    asg__fail(g, ASG_ERR_SHAPE, op, "weight %s must have a constant shape", SHP(w->shape, b2));
    return false;
  }
  for (int d = 0; d < 4; d++) {
    if (w->shape.dims[d] < 1 ||
        (d > 0 && x->shape.dims[d] < 1 && !asg__dim_is_sym(x->shape.dims[d]))) {
      asg__fail(g, ASG_ERR_SHAPE, op, "empty dims in input %s or weight %s", SHP(x->shape, b1),
                SHP(w->shape, b2));
      return false;
    }
  }
  return true;
}

/* Output size floor((in - ext) / s) + 1 of a window of extent ext over a
 * symbolic padded size in; "in >= ext" becomes a constraint. 0 on error. */
static int64_t sym_out(asg_graph *g, const char *op, asg_shape xs, int k, int64_t pad, int64_t ext,
                       int64_t s) {
  char b1[ASG_SHAPE_BUF], m[2 * ASG_SHAPE_BUF];
  int64_t in = asg__dim_add(g, xs.dims[2 + k], 2 * pad);
  int64_t room = asg__dim_sub(g, in, ext);
  if (g->status != ASG_OK) return 0;
  snprintf(m, sizeof m, "window extent %lld larger than padded input axis %d of %s (padding %lld)",
           (long long)ext, 2 + k, SHP(xs, b1), (long long)pad);
  if (!asg__dim_require_ge(g, room, 0, op, m)) return 0;
  int64_t o = asg__dim_add(g, asg__dim_floordiv(g, room, s), 1);
  return g->status == ASG_OK ? o : 0;
}

static bool bias_ok(asg_graph *g, const char *op, asg_tensor *bias, asg_tensor *x, int64_t cout) {
  char b1[ASG_SHAPE_BUF];
  if (!asg__same_dtype(g, op, x, bias)) return false;
  if (bias->shape.ndim != 1 || bias->shape.dims[0] != cout) {
    asg__fail(g, ASG_ERR_SHAPE, op, "bias %s must be [%lld] (one per output channel)",
              SHP(bias->shape, b1), (long long)cout);
    return false;
  }
  return true;
}

static asg_tensor *add_bias(asg_tensor *y, asg_tensor *bias, int64_t cout) {
  return bias ? asg_add(y, asg_reshape(bias, ASG_SHAPE(1, cout, 1, 1))) : y;
}

asg_tensor *asg_conv2d(asg_tensor *x, asg_tensor *w, asg_tensor *bias, asg_conv_params p) {
  asg_tensor *in3[3] = {x, w, bias};
  asg_graph *g = asg__graph_of("conv2d", bias ? 3 : 2, in3);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  asg_attrs a;
  if (!g || !conv_common(g, "conv2d", x, w, &p, &a)) return NULL;
  int64_t G = a.i[6], C = x->shape.dims[1], O = w->shape.dims[0], wc;
  char b3[ASG_SHAPE_BUF];
  if (!asg__mul_i64(w->shape.dims[1], G, &wc) || wc != C)
    return asg__fail(g, ASG_ERR_SHAPE, "conv2d",
                     "input %s has %s channels, weight %s expects %lld*groups (groups=%lld)",
                     SHP(x->shape, b1), DIM(C, b3), SHP(w->shape, b2), (long long)w->shape.dims[1],
                     (long long)G);
  if (O % G)
    return asg__fail(g, ASG_ERR_SHAPE, "conv2d",
                     "weight %s: %lld output channels not divisible by groups=%lld",
                     SHP(w->shape, b2), (long long)O, (long long)G);
  if (bias && !bias_ok(g, "conv2d", bias, x, O)) return NULL;
  asg_shape ys = ASG_SHAPE(x->shape.dims[0], O, 0, 0);
  for (int k = 0; k < 2; k++) {
    /* dims are at most 2^48 and the parameters ints, so only the dilated
     * extent can overflow */
    int64_t in = x->shape.dims[2 + k] + 2 * a.i[2 + k], ext;
    bool ok = asg__mul_i64(a.i[4 + k], w->shape.dims[2 + k] - 1, &ext); /* dilated kernel */
    ext = ok ? ext + 1 : INT64_MAX;
    if (asg__dim_is_sym(x->shape.dims[2 + k])) {
      if (!ok) return asg__fail(g, ASG_ERR_SHAPE, "conv2d", "dilated kernel overflows int64");
      if (!(ys.dims[2 + k] = sym_out(g, "conv2d", x->shape, k, a.i[2 + k], ext, a.i[k])))
        return NULL;
      continue;
    }
    if (ext > in)
      return asg__fail(g, ASG_ERR_SHAPE, "conv2d",
                       "kernel %s (dilated extent %lld) larger than padded input %s (%lld with "
                       "padding %lld)",
                       SHP(w->shape, b2), (long long)ext, SHP(x->shape, b1), (long long)in,
                       (long long)a.i[2 + k]);
    ys.dims[2 + k] = (in - ext) / a.i[k] + 1;
  }
  asg_tensor *in[2] = {x, w};
  asg_tensor *y = asg__node(g, ASG_OP_CONV2D, x->dtype, ys, 2, in);
  if (!y) return NULL;
  y->attr = a;
  return add_bias(y, bias, O);
}

asg_tensor *asg_conv_transpose2d(asg_tensor *x, asg_tensor *w, asg_tensor *bias,
                                 asg_conv_params p) {
  asg_tensor *in3[3] = {x, w, bias};
  asg_graph *g = asg__graph_of("conv_transpose2d", bias ? 3 : 2, in3);
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  asg_attrs a;
  if (!g || !conv_common(g, "conv_transpose2d", x, w, &p, &a)) return NULL;
  int64_t G = a.i[6], C = x->shape.dims[1];
  char b3[ASG_SHAPE_BUF];
  if (w->shape.dims[0] != C)
    return asg__fail(g, ASG_ERR_SHAPE, "conv_transpose2d",
                     "input %s has %s channels, weight %s expects %lld (weight is "
                     "[Cin, Cout/groups, KH, KW])",
                     SHP(x->shape, b1), DIM(C, b3), SHP(w->shape, b2), (long long)w->shape.dims[0]);
  if (C % G)
    return asg__fail(g, ASG_ERR_SHAPE, "conv_transpose2d",
                     "input %s: %lld channels not divisible by groups=%lld", SHP(x->shape, b1),
                     (long long)C, (long long)G);
  int64_t O;
  if (!asg__mul_i64(w->shape.dims[1], G, &O))
    return asg__fail(g, ASG_ERR_SHAPE, "conv_transpose2d",
                     "weight %s with groups=%lld has more output channels than fit in int64",
                     SHP(w->shape, b2), (long long)G);
  if (bias && !bias_ok(g, "conv_transpose2d", bias, x, O)) return NULL;
  asg_shape ys = ASG_SHAPE(x->shape.dims[0], O, 0, 0);
  for (int k = 0; k < 2; k++) {
    int64_t s = a.i[k], pad = a.i[2 + k], d = a.i[4 + k], op = a.i[7 + k];
    if (op < 0 || (op >= s && op >= d))
      return asg__fail(g, ASG_ERR_INVALID, "conv_transpose2d",
                       "output_padding (%d,%d) must be >= 0 and smaller than stride (%lld,%lld) "
                       "or dilation (%lld,%lld)",
                       p.output_padding[0], p.output_padding[1], (long long)a.i[0],
                       (long long)a.i[1], (long long)a.i[4], (long long)a.i[5]);
    /* (H - 1) s - 2 pad + d (K - 1) + op + 1, with the products checked */
    int64_t hs, dk, o = -1;
    if (asg__dim_is_sym(x->shape.dims[2 + k])) { /* H s + rest; the node's dim is >= 1 */
      if (!asg__mul_i64(d, w->shape.dims[2 + k] - 1, &dk))
        return asg__fail(g, ASG_ERR_SHAPE, "conv_transpose2d", "dilated kernel overflows int64");
      int64_t rest = dk + op + 1 - s - 2 * pad; /* ints and a checked product: no overflow */
      o = asg__dim_mul(g, x->shape.dims[2 + k], s);
      o = rest >= 0 ? asg__dim_add(g, o, rest) : asg__dim_sub(g, o, -rest);
      if (g->status != ASG_OK) return NULL;
      ys.dims[2 + k] = o;
      continue;
    }
    if (!asg__mul_i64(x->shape.dims[2 + k] - 1, s, &hs) ||
        !asg__mul_i64(d, w->shape.dims[2 + k] - 1, &dk) || !asg__add_i64(hs, dk, &o) ||
        !asg__add_i64(o, op + 1, &o))
      return asg__fail(g, ASG_ERR_SHAPE, "conv_transpose2d",
                       "input %s with weight %s, stride and dilation give an output size past "
                       "int64",
                       SHP(x->shape, b1), SHP(w->shape, b2));
    o -= 2 * pad;
    if (o < 1)
      return asg__fail(g, ASG_ERR_SHAPE, "conv_transpose2d",
                       "input %s with weight %s and padding (%lld,%lld) gives output size %lld "
                       "< 1",
                       SHP(x->shape, b1), SHP(w->shape, b2), (long long)a.i[2], (long long)a.i[3],
                       (long long)o);
    ys.dims[2 + k] = o;
  }
  asg_tensor *in[2] = {x, w};
  asg_tensor *y = asg__node(g, ASG_OP_CONV_TRANSPOSE2D, x->dtype, ys, 2, in);
  if (!y) return NULL;
  y->attr = a;
  return add_bias(y, bias, O);
}

/* ---- internal constructors for gradient rules (src/autograd/grad_conv.c);
 * shapes were validated when the forward node was built. ---- */
static asg_tensor *node2(asg_op op, asg_tensor *a, asg_tensor *b, asg_shape s,
                         const asg_attrs *at) {
  asg_tensor *in[2] = {a, b};
  int n = b ? 2 : 1;
  asg_graph *g = asg__graph_of(asg__op_name(op), n, in);
  if (!g) return NULL;
  asg_tensor *y = asg__node(g, op, a->dtype, s, n, in);
  if (y) y->attr = *at;
  return y;
}

/* CONV2D with a given output shape (at most the formula's size). */
asg_tensor *asg__conv2d_shaped(asg_tensor *x, asg_tensor *w, asg_shape ys, const asg_attrs *a) {
  asg_attrs c = *a;
  c.i[7] = c.i[8] = 0;
  return node2(ASG_OP_CONV2D, x, w, ys, &c);
}
asg_tensor *asg__conv2d_bwd_input(asg_tensor *dy, asg_tensor *w, asg_shape xs, const asg_attrs *a) {
  return node2(ASG_OP_CONV2D_BWD_INPUT, dy, w, xs, a);
}
asg_tensor *asg__conv2d_bwd_weight(asg_tensor *dy, asg_tensor *x, asg_shape ws,
                                   const asg_attrs *a) {
  return node2(ASG_OP_CONV2D_BWD_WEIGHT, dy, x, ws, a);
}
/* MAXPOOL2D_BWD(dy, x); AVGPOOL2D_BWD(dy) and ADAPTIVE_AVGPOOL2D_BWD(dy)
 * take x only for its shape. */
asg_tensor *asg__pool_bwd(asg_op op, asg_tensor *dy, asg_tensor *x, const asg_attrs *a) {
  if (!x) return NULL;
  return node2(op, dy, op == ASG_OP_MAXPOOL2D_BWD ? x : NULL, x->shape, a);
}

/* ---- pooling ---- */
/* Output size of one pooled axis as PyTorch's pooling_output_shape: floor
 * (or ceil) of (in + 2 pad - ext) / s, plus 1; in ceil mode a last window
 * that would start in the right padding is dropped. < 1: no window fits. */
static int64_t pool_out(int64_t in, int64_t pad, int64_t ext, int64_t s, bool ceil_mode) {
  int64_t room = in + 2 * pad - ext + (ceil_mode ? s - 1 : 0);
  if (room < 0) return 0;
  int64_t o = room / s + 1;
  if (ceil_mode && (o - 1) * s >= in + pad) o--;
  return o;
}

static asg_tensor *pool(asg_op op, const char *name, asg_tensor *x, asg_pool_params p) {
  asg_graph *g = asg__graph_of(name, 1, &x);
  char b1[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, name, x)) return NULL;
  if (x->shape.ndim != 4)
    return asg__fail(g, ASG_ERR_SHAPE, name, "input %s must have rank 4 (NCHW)", SHP(x->shape, b1));
  bool is_max = op == ASG_OP_MAXPOOL2D;
  asg_attrs a;
  memset(&a, 0, sizeof a);
  asg_shape ys = x->shape;
  for (int k = 0; k < 2; k++) {
    int64_t K = p.kernel[k], s = p.stride[k] ? p.stride[k] : K, pad = p.padding[k];
    int64_t d = p.dilation[k] ? p.dilation[k] : 1;
    if (K < 1 || s < 1 || pad < 0 || d < 1)
      return asg__fail(g, ASG_ERR_INVALID, name,
                       "kernel (%d,%d), stride (%d,%d) and dilation (%d,%d) must be >= 1, "
                       "padding (%d,%d) >= 0",
                       p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.dilation[0],
                       p.dilation[1], p.padding[0], p.padding[1]);
    if (!is_max && d != 1)
      return asg__fail(g, ASG_ERR_INVALID, name,
                       "dilation (%d,%d): average pooling takes no dilation (PyTorch's has none)",
                       p.dilation[0], p.dilation[1]);
    if (pad * 2 > K) /* PyTorch's rule; else a window could lie wholly in the padding */
      return asg__fail(g, ASG_ERR_INVALID, name,
                       "padding (%d,%d) must be at most half the kernel (%d,%d)", p.padding[0],
                       p.padding[1], p.kernel[0], p.kernel[1]);
    int64_t ext = d * (K - 1) + 1, dim = x->shape.dims[2 + k]; /* ints: no overflow */
    a.i[0 + k] = K;
    a.i[2 + k] = s;
    a.i[4 + k] = pad;
    a.i[6 + k] = d;
    if (asg__dim_is_sym(dim)) {
      /* ceil mode is floor mode over s - 1 more cells when no window can
       * start in the right padding: (in + 2 pad - ext + s - 1) <= in + pad - 1 */
      if (p.ceil_mode && s + pad > ext)
        return asg__fail(g, ASG_ERR_SHAPE, name,
                         "ceil_mode on symbolic axis %d of %s needs stride <= dilated kernel - "
                         "padding (stride %lld, extent %lld, padding %lld)",
                         2 + k, SHP(x->shape, b1), (long long)s, (long long)ext, (long long)pad);
      if (!(ys.dims[2 + k] =
                sym_out(g, name, x->shape, k, pad, p.ceil_mode ? ext - s + 1 : ext, s)))
        return NULL;
      continue;
    }
    if ((ys.dims[2 + k] = pool_out(dim, pad, ext, s, p.ceil_mode)) < 1)
      return asg__fail(g, ASG_ERR_SHAPE, name,
                       "kernel (%d,%d) with dilation (%lld,%lld) larger than padded input %s "
                       "(padding (%d,%d))",
                       p.kernel[0], p.kernel[1], (long long)(p.dilation[0] ? p.dilation[0] : 1),
                       (long long)(p.dilation[1] ? p.dilation[1] : 1), SHP(x->shape, b1),
                       p.padding[0], p.padding[1]);
  }
  if (is_max && p.exclude_pad)
    return asg__fail(g, ASG_ERR_INVALID, name,
                     "exclude_pad applies to average pooling only (max pooling pads with -inf)");
  a.i[8] = p.ceil_mode;
  a.i[9] = p.exclude_pad;
  asg_tensor *y = asg__node(g, op, x->dtype, ys, 1, &x);
  if (y) y->attr = a;
  return y;
}

asg_tensor *asg_max_pool2d(asg_tensor *x, asg_pool_params p) {
  return pool(ASG_OP_MAXPOOL2D, "max_pool2d", x, p);
}
asg_tensor *asg_avg_pool2d(asg_tensor *x, asg_pool_params p) {
  return pool(ASG_OP_AVGPOOL2D, "avg_pool2d", x, p);
}

asg_tensor *asg_adaptive_avg_pool2d(asg_tensor *x, int out_h, int out_w) {
  asg_graph *g = asg__graph_of("adaptive_avg_pool2d", 1, &x);
  char b1[ASG_SHAPE_BUF];
  if (!g || !asg__need_float(g, "adaptive_avg_pool2d", x)) return NULL;
  if (x->shape.ndim != 4)
    return asg__fail(g, ASG_ERR_SHAPE, "adaptive_avg_pool2d", "input %s must have rank 4 (NCHW)",
                     SHP(x->shape, b1));
  if (out_h < 1 || out_w < 1 || (x->shape.dims[2] < 1 && !asg__dim_is_sym(x->shape.dims[2])) ||
      (x->shape.dims[3] < 1 && !asg__dim_is_sym(x->shape.dims[3])))
    return asg__fail(g, ASG_ERR_INVALID, "adaptive_avg_pool2d",
                     "output size (%d,%d) must be >= 1 and input %s non-empty", out_h, out_w,
                     SHP(x->shape, b1));
  asg_shape ys = x->shape;
  ys.dims[2] = out_h;
  ys.dims[3] = out_w;
  return asg__node(g, ASG_OP_ADAPTIVE_AVGPOOL2D, x->dtype, ys, 1, &x);
}
