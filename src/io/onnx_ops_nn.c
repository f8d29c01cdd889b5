/* ONNX operators over spatial and normalized axes: Conv / ConvTranspose,
 * pooling, BatchNormalization, LayerNormalization and the reductions.
 * ASG's convolutions and pools are 2-D with symmetric padding: 1-D ones get
 * a trailing axis of 1, and asymmetric / SAME / ceil-mode padding becomes
 * explicit padding (a concat with a fill) or a slice of the result. */
#ifdef ASG_HAVE_ONNX
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/onnx_internal.h"

static int rank(const asg_tensor *t) { return asg_tensor_shape(t).ndim; }

/* Spatial attributes of a node, for nsp (1 to 3) spatial axes. */
#define SP_MAX 3
typedef struct sp_attrs {
  int nsp;
  int64_t kernel[SP_MAX], stride[SP_MAX], dil[SP_MAX], pb[SP_MAX],
      pe[SP_MAX]; /* pads: begin / end */
  char auto_pad[16];
} sp_attrs;

static asg_status read_ints(onnx_ctx *c, const Onnx__NodeProto *n, const char *name, int cnt,
                            int64_t lo, int64_t *dst) {
  size_t k;
  const int64_t *v = onnx__attr_ints(n, name, &k);
  if (!v) return ASG_OK;
  if ((int)k != cnt)
    return onnx__node_error(c, ASG_ERR_FORMAT, "%s has %zu values, expected %d", name, k, cnt);
  for (int i = 0; i < cnt; i++) {
    if (v[i] < lo || v[i] > (1 << 24))
      return onnx__node_error(c, ASG_ERR_UNSUPPORTED, "%s value %lld", name, (long long)v[i]);
    dst[i] = v[i];
  }
  return ASG_OK;
}

/* Reads strides, dilations, pads, kernel_shape (kernel: from the weights
 * when given) and resolves auto_pad SAME_* from the input's static dims
 * (not for ConvTranspose, whose SAME_* the caller resolves). */
static asg_status spatial(onnx_ctx *c, const Onnx__NodeProto *n, asg_shape xs, const int64_t *wk,
                          bool transpose, sp_attrs *a) {
  int nsp = xs.ndim - 2;
  memset(a, 0, sizeof *a);
  if (nsp < 1 || nsp > SP_MAX) UNSUP("%d spatial axes", nsp);
  a->nsp = nsp;
  for (int i = 0; i < SP_MAX; i++)
    a->kernel[i] = a->stride[i] = a->dil[i] = 1;
  int64_t pads[2 * SP_MAX] = {0};
  asg_status st = read_ints(c, n, "strides", nsp, 1, a->stride);
  if (!st) st = read_ints(c, n, "dilations", nsp, 1, a->dil);
  if (!st) st = read_ints(c, n, "pads", 2 * nsp, 0, pads);
  if (!st && !wk) {
    size_t k;
    if (!onnx__attr_ints(n, "kernel_shape", &k))
      return onnx__node_error(c, ASG_ERR_FORMAT, "kernel_shape is missing");
    st = read_ints(c, n, "kernel_shape", nsp, 1, a->kernel);
  }
  if (st) return st;
  for (int i = 0; i < nsp; i++) {
    if (wk) a->kernel[i] = wk[i];
    a->pb[i] = pads[i], a->pe[i] = pads[i + nsp];
  }
  snprintf(a->auto_pad, sizeof a->auto_pad, "%s", onnx__attr_str(n, "auto_pad", "NOTSET"));
  bool same = !strcmp(a->auto_pad, "SAME_UPPER") || !strcmp(a->auto_pad, "SAME_LOWER");
  if (!same && strcmp(a->auto_pad, "NOTSET") && strcmp(a->auto_pad, "VALID"))
    UNSUP("auto_pad=%s", a->auto_pad);
  if (!strcmp(a->auto_pad, "VALID"))
    for (int i = 0; i < nsp; i++)
      a->pb[i] = a->pe[i] = 0;
  if (same && !transpose)
    for (int i = 0; i < nsp; i++) {
      int64_t in = xs.dims[2 + i];
      if (asg_dim_is_symbolic(in)) UNSUP("auto_pad=%s on a symbolic dim", a->auto_pad);
      int64_t o = (in + a->stride[i] - 1) / a->stride[i];
      int64_t tot = (o - 1) * a->stride[i] + (a->kernel[i] - 1) * a->dil[i] + 1 - in;
      if (tot < 0) tot = 0;
      bool upper = !strcmp(a->auto_pad, "SAME_UPPER");
      a->pb[i] = upper ? tot / 2 : tot - tot / 2;
      a->pe[i] = tot - a->pb[i];
    }
  return ASG_OK;
}

asg_tensor *onnx__pad_axis(asg_tensor *x, int axis, int64_t before, int64_t after, double v) {
  if (!x || (!before && !after)) return x;
  asg_tensor *parts[3];
  int k = 0;
  asg_shape s = asg_tensor_shape(x);
  asg_graph *g = asg_tensor_graph(x);
  if (before) s.dims[axis] = before, parts[k++] = asg_fill(g, asg_tensor_dtype(x), s, v);
  parts[k++] = x;
  if (after) s.dims[axis] = after, parts[k++] = asg_fill(g, asg_tensor_dtype(x), s, v);
  return asg_concat(parts, k, axis);
}

static asg_tensor *pad_all(asg_tensor *x, const sp_attrs *a, const int64_t *extra, double v) {
  for (int i = 0; i < a->nsp; i++)
    x = onnx__pad_axis(x, 2 + i, a->pb[i], a->pe[i] + (extra ? extra[i] : 0), v);
  return x;
}

static bool symmetric(const sp_attrs *a) {
  for (int i = 0; i < a->nsp; i++)
    if (a->pb[i] != a->pe[i]) return false;
  return true;
}

static asg_tensor *to_2d(asg_tensor *x, int nsp) { return nsp == 1 ? asg_unsqueeze(x, -1) : x; }
static asg_tensor *from_2d(asg_tensor *y, int nsp) { return nsp == 1 ? asg_squeeze(y, -1) : y; }

static asg_status weight_kernel(onnx_ctx *c, asg_tensor *w, int nsp, int64_t *k) {
  asg_shape ws = asg_tensor_shape(w);
  if (ws.ndim != nsp + 2)
    return onnx__node_error(c, ASG_ERR_SHAPE, "weights of rank %d for %d-D data", ws.ndim, nsp);
  for (int i = 0; i < nsp; i++) {
    k[i] = ws.dims[2 + i];
    if (asg_dim_is_symbolic(k[i])) UNSUP("symbolic kernel size");
  }
  return ASG_OK;
}

ONNX_OP(onnx__op_conv) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0), *w = T(1);
  int nsp = rank(x) - 2;
  if (nsp != 1 && nsp != 2) UNSUP("%d-D convolution (ASG has 1-D and 2-D)", nsp);
  int64_t wk[2];
  sp_attrs a;
  asg_status st = weight_kernel(c, w, nsp, wk);
  if (!st) st = spatial(c, n, asg_tensor_shape(x), wk, false, &a);
  if (st) return st;
  asg_conv_params p;
  memset(&p, 0, sizeof p);
  p.groups = (int)onnx__attr_int(n, "group", 1);
  if (p.groups < 1) return onnx__node_error(c, ASG_ERR_FORMAT, "group %d", p.groups);
  for (int i = 0; i < nsp; i++)
    p.stride[i] = (int)a.stride[i], p.dilation[i] = (int)a.dil[i];
  if (symmetric(&a))
    for (int i = 0; i < nsp; i++)
      p.padding[i] = (int)a.pb[i];
  else
    x = pad_all(x, &a, NULL, 0);
  DONE(from_2d(asg_conv2d(to_2d(x, nsp), to_2d(w, nsp), T(2), p), nsp));
}

ONNX_OP(onnx__op_conv_transpose) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0), *w = T(1);
  asg_shape xs = asg_tensor_shape(x);
  int nsp = xs.ndim - 2;
  if (nsp != 1 && nsp != 2) UNSUP("%d-D transposed convolution (ASG has 1-D and 2-D)", nsp);
  int64_t wk[2], op[2] = {0, 0}, os[2] = {0, 0};
  sp_attrs a;
  asg_status st = weight_kernel(c, w, nsp, wk);
  if (!st) st = spatial(c, n, xs, wk, true, &a);
  if (!st) st = read_ints(c, n, "output_padding", nsp, 0, op);
  bool has_os = onnx__attr(n, "output_shape") != NULL;
  if (!st && has_os) st = read_ints(c, n, "output_shape", nsp, 1, os);
  if (st) return st;
  bool same = !strncmp(a.auto_pad, "SAME", 4);
  asg_conv_params p;
  memset(&p, 0, sizeof p);
  p.groups = (int)onnx__attr_int(n, "group", 1);
  if (p.groups < 1) return onnx__node_error(c, ASG_ERR_FORMAT, "group %d", p.groups);
  int64_t full[2];
  for (int i = 0; i < nsp; i++) {
    p.stride[i] = (int)a.stride[i], p.dilation[i] = (int)a.dil[i];
    p.output_padding[i] = (int)op[i];
    int64_t in = xs.dims[2 + i];
    if (asg_dim_is_symbolic(in)) {
      if (has_os || same || a.pb[i] != a.pe[i]) UNSUP("output_shape / padding on a symbolic dim");
      continue;
    }
    full[i] = a.stride[i] * (in - 1) + op[i] + (wk[i] - 1) * a.dil[i] + 1;
    if (has_os || same) { /* pads from the wanted output size */
      int64_t want = has_os ? os[i] : in * a.stride[i];
      int64_t tot = full[i] - want;
      if (tot < 0) { /* a longer output: more output padding at the end */
        if (op[i] - tot >= a.stride[i]) UNSUP("output_shape larger than the full output");
        op[i] -= tot, p.output_padding[i] = (int)op[i], full[i] -= tot, tot = 0;
      }
      bool upper = !strcmp(a.auto_pad, "SAME_UPPER");
      a.pb[i] = upper ? tot / 2 : tot - tot / 2;
      a.pe[i] = tot - a.pb[i];
    }
  }
  bool sym = symmetric(&a);
  if (sym)
    for (int i = 0; i < nsp; i++)
      p.padding[i] = (int)a.pb[i];
  asg_tensor *y = asg_conv_transpose2d(to_2d(x, nsp), to_2d(w, nsp), T(2), p);
  for (int i = 0; !sym && i < nsp; i++) /* asymmetric pads: cut them from the full output */
    y = asg_slice(y, 2 + i, a.pb[i], full[i] - a.pe[i], 1);
  DONE(from_2d(y, nsp));
}

/* Pooling that ASG's 2-D pools cannot do (3-D, dilations, the Indices
 * output) as the max / sum over the kernel's offsets of strided slices of
 * the padded input: exact for max, the same sums for the average. o[i] is
 * the output size of spatial axis i; xp the padded input. Indices (NULL if
 * not wanted): the position of the first maximum in the unpadded input,
 * flattened over all its axes as ONNX does. */
#define POOL_MAX_OFFSETS 4096
static asg_tensor *pool_slices(onnx_ctx *c, asg_tensor *xp, const sp_attrs *a, const int64_t *o,
                               bool is_max, asg_shape xs, asg_tensor **indices) {
  int nsp = a->nsp;
  int64_t noff = 1, k[SP_MAX] = {0};
  for (int i = 0; i < nsp; i++)
    noff *= a->kernel[i];
  asg_tensor *acc = NULL, *idx = NULL;
  for (int64_t off = 0; off < noff; off++) {
    int64_t r = off;
    for (int i = nsp - 1; i >= 0; i--) /* row-major offsets: the first maximum wins ties */
      k[i] = r % a->kernel[i], r /= a->kernel[i];
    asg_tensor *p = xp;
    for (int i = 0; i < nsp; i++) {
      int64_t b = k[i] * a->dil[i];
      p = asg_slice(p, 2 + i, b, b + (o[i] - 1) * a->stride[i] + 1, a->stride[i]);
    }
    asg_tensor *pos = NULL;
    if (indices) { /* flat position within one (n, c) plane; -1 in the padding */
      asg_shape ps = {xs.ndim, {1, 1}};
      int64_t cnt = 1;
      for (int i = 0; i < nsp; i++)
        ps.dims[2 + i] = o[i], cnt *= o[i];
      int64_t *v = malloc(8 * (size_t)cnt);
      if (!v) return NULL;
      for (int64_t j = 0; j < cnt; j++) {
        int64_t rem = j, flat = 0, mul = 1;
        bool inside = true;
        for (int i = nsp - 1; i >= 0; i--) {
          int64_t oi = rem % o[i], at = oi * a->stride[i] + k[i] * a->dil[i] - a->pb[i];
          rem /= o[i];
          inside = inside && at >= 0 && at < xs.dims[2 + i];
          flat += at * mul, mul *= xs.dims[2 + i];
        }
        v[j] = inside ? flat : -1;
      }
      pos = asg_constant(c->g, ASG_I64, ps, v);
      free(v);
    }
    if (!acc) {
      acc = p, idx = pos;
    } else if (!is_max) {
      acc = asg_add(acc, p);
    } else if (indices) {
      asg_tensor *better = asg_gt(p, acc);
      acc = asg_where(better, p, acc);
      idx = asg_where(asg_cast(better, ASG_I64), asg_broadcast_to(pos, asg_tensor_shape(idx)), idx);
    } else {
      acc = asg_maximum(acc, p);
    }
  }
  if (indices) { /* plus the start of each (n, c) plane */
    int64_t plane = 1;
    for (int i = 0; i < nsp; i++)
      plane *= xs.dims[2 + i];
    asg_shape bs = {xs.ndim, {xs.dims[0], xs.dims[1]}};
    for (int i = 0; i < nsp; i++)
      bs.dims[2 + i] = 1;
    int64_t nb = xs.dims[0] * xs.dims[1];
    int64_t *v = malloc(8 * (size_t)nb);
    if (!v) return NULL;
    for (int64_t j = 0; j < nb; j++)
      v[j] = j * plane;
    *indices = asg_add(idx, asg_constant(c->g, ASG_I64, bs, v));
    free(v);
  }
  return acc;
}

/* MaxPool / AveragePool: ASG's pool (ceil_mode, count_include_pad and
 * MaxPool's dilations are its options) when it takes the padding, else
 * explicit padding, where ceil_mode adds padding at the end that an average
 * does not count. 3-D pools, AveragePool's dilations and the Indices output
 * go through pool_slices; integers are max-pooled in F64 (exact). */
static asg_status pool(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin, onnx_val *out,
                       int nout, bool is_max) {
  NEED(1);
  asg_tensor *x = T(0);
  asg_shape xs = asg_tensor_shape(x);
  int nsp = xs.ndim - 2;
  if (nsp < 1 || nsp > SP_MAX) UNSUP("%d-D pooling (ASG has 1-D to 3-D)", nsp);
  bool want_idx = is_max && nout > 1 && n->output[1] && n->output[1][0];
  asg_dtype dt = asg_tensor_dtype(x);
  if (!asg_dtype_is_float(dt)) {
    if (!is_max) UNSUP("average pooling of integers");
    x = asg_cast(x, ASG_F64);
  }
  sp_attrs a;
  asg_status st = spatial(c, n, xs, NULL, false, &a);
  if (st) return st;
  bool dilated = false;
  for (int i = 0; i < nsp; i++)
    dilated = dilated || a.dil[i] != 1;
  if (onnx__attr_int(n, "storage_order", 0)) UNSUP("storage_order=1");
  bool ceil_mode = onnx__attr_int(n, "ceil_mode", 0) != 0;
  bool include = is_max || onnx__attr_int(n, "count_include_pad", 0) != 0;
  bool sliced = nsp == 3 || (dilated && !is_max) || want_idx;
  int64_t extra[SP_MAX] = {0}, o[SP_MAX] = {0};
  bool native = symmetric(&a) && !sliced;
  for (int i = 0; i < nsp; i++) /* ASG's (and PyTorch's) limit on padding */
    native = native && 2 * a.pb[i] <= a.kernel[i];
  for (int i = 0; i < nsp; i++) {
    int64_t in_ = xs.dims[2 + i], ke = (a.kernel[i] - 1) * a.dil[i] + 1;
    int64_t span = in_ + a.pb[i] + a.pe[i] - ke;
    if (asg_dim_is_symbolic(in_)) {
      if (sliced || (ceil_mode && !native))
        UNSUP("ceil_mode, dilations or 3-D pooling on a symbolic dim");
      continue;
    }
    if (span < 0) return onnx__node_error(c, ASG_ERR_SHAPE, "kernel larger than the input");
    o[i] = span / a.stride[i] + 1;
    if (ceil_mode) {
      o[i] = (span + a.stride[i] - 1) / a.stride[i] + 1;
      if ((o[i] - 1) * a.stride[i] >= in_ + a.pb[i]) o[i]--; /* no window starting in the end pad */
      extra[i] = (o[i] - 1) * a.stride[i] + ke - (in_ + a.pb[i] + a.pe[i]);
      if (extra[i] < 0) extra[i] = 0;
    }
  }
  if (sliced) {
    int64_t noff = 1;
    for (int i = 0; i < nsp; i++)
      noff *= a.kernel[i];
    if (noff > POOL_MAX_OFFSETS) UNSUP("a pooling window of %lld cells", (long long)noff);
    if (want_idx && (asg_dim_is_symbolic(xs.dims[0]) || asg_dim_is_symbolic(xs.dims[1])))
      UNSUP("the Indices output on a symbolic batch or channel dim");
  }
  asg_pool_params p;
  memset(&p, 0, sizeof p);
  for (int i = 0; i < 2; i++) /* a 1-D pool's second axis: kernel, stride, dilation 1 */
    p.kernel[i] = (int)a.kernel[i], p.stride[i] = (int)a.stride[i], p.dilation[i] = (int)a.dil[i];
  asg_tensor *y, *idx = NULL;
  if (native) {
    for (int i = 0; i < nsp; i++)
      p.padding[i] = (int)a.pb[i];
    p.ceil_mode = ceil_mode;
    p.exclude_pad = !include;
    x = to_2d(x, nsp);
    y = from_2d(is_max ? asg_max_pool2d(x, p) : asg_avg_pool2d(x, p), nsp);
  } else if (is_max) {
    asg_tensor *xp = pad_all(x, &a, extra, -INFINITY);
    y = sliced ? pool_slices(c, xp, &a, o, true, xs, want_idx ? &idx : NULL)
               : from_2d(asg_max_pool2d(to_2d(xp, nsp), p), nsp);
    if (sliced && !y && !asg_graph_status(c->g))
      return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  } else {
    /* average over the counted cells only: pool(x padded with 0) / pool(mask) */
    asg_shape ms = xs;
    ms.dims[0] = ms.dims[1] = 1;
    asg_tensor *mask = asg_fill(c->g, asg_tensor_dtype(x), ms, 1);
    for (int i = 0; i < nsp; i++) {
      mask = onnx__pad_axis(mask, 2 + i, a.pb[i], a.pe[i], include ? 1 : 0);
      mask = onnx__pad_axis(mask, 2 + i, 0, extra[i], 0);
    }
    asg_tensor *xp = pad_all(x, &a, extra, 0);
    if (sliced) {
      y = pool_slices(c, xp, &a, o, false, xs, NULL);
      asg_tensor *cnt = y ? pool_slices(c, mask, &a, o, false, xs, NULL) : NULL;
      if (!cnt && !asg_graph_status(c->g)) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
      y = asg_div(y, cnt);
    } else {
      y = from_2d(asg_div(asg_avg_pool2d(to_2d(xp, nsp), p), asg_avg_pool2d(to_2d(mask, nsp), p)),
                  nsp);
    }
  }
  if (!asg_dtype_is_float(dt)) y = asg_cast(y, dt);
  if (want_idx) {
    out[1].t = idx;
    if (!idx) return onnx__build_error(c);
  }
  DONE(y);
}
ONNX_OP(onnx__op_max_pool) {
  UNUSED;
  return pool(c, n, in, nin, out, nout, true);
}
ONNX_OP(onnx__op_avg_pool) {
  UNUSED;
  return pool(c, n, in, nin, out, nout, false);
}

static asg_axes spatial_axes(int r) {
  asg_axes a = {0, {0}};
  for (int i = 2; i < r && a.n < ASG_MAX_DIMS; i++)
    a.axis[a.n++] = i;
  return a;
}
ONNX_OP(onnx__op_global_avg_pool) {
  UNUSED;
  NEED(1);
  DONE(asg_mean(T(0), spatial_axes(rank(T(0))), true));
}
ONNX_OP(onnx__op_global_max_pool) {
  UNUSED;
  NEED(1);
  DONE(asg_max(T(0), spatial_axes(rank(T(0))), true));
}

/* ---- normalization ---- */
/* v [C] reshaped to broadcast along axis 1 of a rank-r tensor. */
static asg_tensor *per_channel(asg_tensor *v, int r) {
  asg_shape s = asg_tensor_shape(v);
  asg_shape t = {r - 1, {0}};
  t.dims[0] = s.ndim ? s.dims[0] : 1;
  for (int i = 1; i < r - 1; i++)
    t.dims[i] = 1;
  return asg_reshape(v, t);
}

ONNX_OP(onnx__op_batch_norm) {
  UNUSED;
  NEED(5);
  asg_tensor *x = T(0);
  int r = rank(x);
  if (r < 2) UNSUP("rank %d input", r);
  asg_tensor *mean = per_channel(T(3), r), *var = per_channel(T(4), r);
  double eps = onnx__attr_float(n, "epsilon", 1e-5);
  if (onnx__attr_int(n, "training_mode", 0)) {
    /* the batch's statistics (population variance); outputs 1 and 2 are the
     * running ones moved by momentum toward them */
    asg_axes ax = {0, {0}};
    for (int i = 0; i < r; i++)
      if (i != 1) ax.axis[ax.n++] = i;
    asg_tensor *bm = asg_mean(x, ax, true), *bv = asg_var(x, ax, 0, true);
    double mom = onnx__attr_float(n, "momentum", 0.9);
    asg_shape cs = asg_tensor_shape(T(3));
    for (int k = 1; k < 3 && k < nout; k++) {
      asg_tensor *run = k == 1 ? T(3) : T(4), *cur = asg_reshape(k == 1 ? bm : bv, cs);
      out[k].t = asg_add(asg_mul_scalar(run, mom), asg_mul_scalar(cur, 1 - mom));
      if (!out[k].t) return onnx__build_error(c);
    }
    mean = bm, var = bv;
  }
  asg_tensor *inv = asg_rsqrt(asg_add_scalar(var, eps));
  asg_tensor *y = asg_mul(asg_sub(x, mean), asg_mul(inv, per_channel(T(1), r)));
  DONE(asg_add(y, per_channel(T(2), r)));
}

ONNX_OP(onnx__op_layer_norm) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0);
  int r = rank(x), axis = (int)onnx__attr_int(n, "axis", -1);
  if (axis < -r || axis >= r) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += r;
  double eps = onnx__attr_float(n, "epsilon", 1e-5);
  bool want_stats = nout > 1;
  if (!want_stats && axis == r - 1 && rank(T(1)) == 1 && (!IN(2) || rank(T(2)) == 1))
    DONE(asg_layernorm(x, T(1), T(2), eps));
  asg_axes ax = {0, {0}};
  for (int i = axis; i < r; i++)
    ax.axis[ax.n++] = i;
  asg_tensor *m = asg_mean(x, ax, true);
  asg_tensor *d = asg_sub(x, m);
  asg_tensor *inv = asg_rsqrt(asg_add_scalar(asg_mean(asg_mul(d, d), ax, true), eps));
  asg_tensor *y = asg_mul(asg_mul(d, inv), T(1));
  if (IN(2)) y = asg_add(y, T(2));
  if (nout > 1) out[1].t = m;
  if (nout > 2) out[2].t = inv;
  DONE(y);
}

/* (x - mean) / sqrt(var + eps) over the axes (population variance). */
static asg_tensor *standardize(asg_tensor *x, asg_axes ax, double eps) {
  asg_tensor *d = asg_sub(x, asg_mean(x, ax, true));
  return asg_mul(d, asg_rsqrt(asg_add_scalar(asg_mean(asg_mul(d, d), ax, true), eps)));
}

ONNX_OP(onnx__op_instance_norm) {
  UNUSED;
  NEED(3);
  asg_tensor *x = T(0);
  int r = rank(x);
  if (r < 3) UNSUP("rank %d input", r);
  asg_tensor *y = standardize(x, spatial_axes(r), onnx__attr_float(n, "epsilon", 1e-5));
  DONE(asg_add(asg_mul(y, per_channel(T(1), r)), per_channel(T(2), r)));
}

ONNX_OP(onnx__op_group_norm) { /* opset 21: scale and bias per channel */
  UNUSED;
  NEED(3);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  int64_t gs = onnx__attr_int(n, "num_groups", 0);
  if (s.ndim < 3 || gs < 1 || asg_dim_is_symbolic(s.dims[1]) || s.dims[1] % gs)
    UNSUP("num_groups %lld for %d-D input", (long long)gs, s.ndim);
  asg_shape gsh = {3, {s.dims[0], gs, -1}};
  asg_tensor *y =
      standardize(asg_reshape(x, gsh), ASG_AXES(2), onnx__attr_float(n, "epsilon", 1e-5));
  y = asg_reshape(y, s);
  DONE(asg_add(asg_mul(y, per_channel(T(1), s.ndim)), per_channel(T(2), s.ndim)));
}

ONNX_OP(onnx__op_rms_norm) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0);
  int r = rank(x), axis = (int)onnx__attr_int(n, "axis", -1);
  if (axis < -r || axis >= r) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += r;
  asg_axes ax = {0, {0}};
  for (int i = axis; i < r; i++)
    ax.axis[ax.n++] = i;
  double eps = onnx__attr_float(n, "epsilon", 1e-5);
  asg_tensor *ms = asg_mean(asg_mul(x, x), ax, true);
  DONE(asg_mul(asg_mul(x, asg_rsqrt(asg_add_scalar(ms, eps))), T(1)));
}

ONNX_OP(onnx__op_lp_norm) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  int64_t p = onnx__attr_int(n, "p", 2);
  int axis = (int)onnx__attr_int(n, "axis", -1);
  if (p != 1 && p != 2) UNSUP("p=%lld", (long long)p);
  asg_axes ax = {1, {axis}};
  asg_tensor *nm =
      p == 2 ? asg_sqrt(asg_sum(asg_mul(x, x), ax, true)) : asg_sum(asg_abs(x), ax, true);
  asg_tensor *z = asg_scalar(c->g, asg_tensor_dtype(x), 0);
  asg_tensor *zero = asg_eq(nm, z);
  /* 0 where the norm is 0 (as the reference), without a 0/0 */
  DONE(asg_where(zero, z, asg_div(x, asg_add(nm, zero))));
}

ONNX_OP(onnx__op_mvn) {
  UNUSED;
  NEED(1);
  size_t k;
  const int64_t *a = onnx__attr_ints(n, "axes", &k);
  asg_axes ax = ASG_AXES(0, 2, 3);
  if (a) {
    if (k > ASG_MAX_DIMS) return onnx__node_error(c, ASG_ERR_FORMAT, "%zu axes", k);
    ax.n = (int)k;
    for (size_t i = 0; i < k; i++)
      ax.axis[i] = (int)a[i];
  }
  asg_tensor *x = T(0), *d = asg_sub(x, asg_mean(x, ax, true));
  asg_tensor *sd = asg_sqrt(asg_mean(asg_mul(d, d), ax, true)); /* eps goes on the deviation */
  DONE(asg_div(d, asg_add_scalar(sd, 1e-9)));
}

/* ---- reductions ---- */
typedef asg_tensor *(*red_fn)(asg_tensor *, asg_axes, bool);
static asg_status reduce(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin,
                         onnx_val *out, red_fn f, int kind) {
  NEED(1);
  int64_t ax[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__get_axes(c, n, IN(1), ax, &k);
  if (st) return st;
  bool keep = onnx__attr_int(n, "keepdims", 1) != 0;
  asg_tensor *x = T(0);
  if (!k && onnx__attr_int(n, "noop_with_empty_axes", 0)) {
    if (kind == 1) x = asg_abs(x);
    if (kind == 2 || kind == 3) x = asg_mul(x, x);
    if (kind == 2) x = asg_sqrt(x);
    if (kind == 4) x = asg_log(x);
    DONE(x);
  }
  int r = rank(x);
  asg_axes a = {k, {0}};
  if (!k) { /* all axes */
    a.n = r;
    for (int i = 0; i < r; i++)
      a.axis[i] = i;
  }
  for (int i = 0; i < k; i++) {
    if (ax[i] < -r || ax[i] >= r)
      return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)ax[i]);
    a.axis[i] = (int)ax[i];
  }
  if (r == 0) DONE(x);
  switch (kind) {
  case 1: DONE(asg_sum(asg_abs(x), a, keep));              /* L1 */
  case 2: DONE(asg_sqrt(asg_sum(asg_mul(x, x), a, keep))); /* L2 */
  case 3: DONE(asg_sum(asg_mul(x, x), a, keep));           /* SumSquare */
  case 4: DONE(asg_log(asg_sum(x, a, keep)));              /* LogSum */
  case 5: {                                                /* LogSumExp, shifted by the max */
    asg_tensor *m = asg_stop_gradient(asg_max(x, a, true));
    asg_tensor *y = asg_add(asg_log(asg_sum(asg_exp(asg_sub(x, m)), a, true)), m);
    if (!keep) {
      int s[ASG_MAX_DIMS];
      for (int i = 0; i < a.n; i++)
        s[i] = a.axis[i] < 0 ? a.axis[i] + r : a.axis[i];
      qsort(s, (size_t)a.n, sizeof s[0], onnx__cmp_desc);
      for (int i = 0; i < a.n; i++)
        y = asg_squeeze(y, s[i]);
    }
    DONE(y);
  }
  default: DONE(f(x, a, keep));
  }
}
#define REDUCE(name, f, kind)                                                                      \
  ONNX_OP(onnx__op_##name) {                                                                       \
    UNUSED;                                                                                        \
    return reduce(c, n, in, nin, out, f, kind);                                                    \
  }
REDUCE(reduce_sum, asg_sum, 0)
REDUCE(reduce_mean, asg_mean, 0)
REDUCE(reduce_max, asg_max, 0)
REDUCE(reduce_min, asg_min, 0)
REDUCE(reduce_l1, asg_sum, 1)
REDUCE(reduce_l2, asg_sum, 2)
REDUCE(reduce_sum_square, asg_sum, 3)
REDUCE(reduce_log_sum, asg_sum, 4)
REDUCE(reduce_log_sum_exp, asg_sum, 5)
#endif
