/* ONNX Resize. Two ways:
 * - on asg_upsample (its CUDA and Vulkan kernels) for [N,C,L] and
 *   [N,C,H,W] inputs whose batch and channel dims stay, with
 *     mode=nearest, coordinate_transformation_mode=asymmetric,
 *       nearest_mode=floor (PyTorch's 'nearest': src = floor(dst / scale));
 *     mode=linear, coordinate_transformation_mode=half_pixel or
 *       align_corners (PyTorch's (bi)linear with align_corners false / true;
 *       half_pixel's coordinates outside the input read its edge);
 * - otherwise, for float inputs whose resized dims (and the dims after
 *   them) are known at import, as one product per resized axis with a
 *   constant interpolation matrix M [out, in] (plus, for
 *   tf_crop_and_resize, the extrapolation value where a row reads outside
 *   the input): every mode (nearest with each nearest_mode, linear, cubic
 *   with cubic_coeff_a and exclude_outside), every coordinate
 *   transformation, antialias and keep_aspect_ratio_policy, with the
 *   weights of the ONNX reference implementation (neighbours chosen and
 *   edges clamped as it does). An axis costs in * out multiply-adds per
 *   output row: fine for images, not for long sequences.
 * Scales or sizes (and roi) must be known at import. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/onnx_internal.h"

/* An optional input that is absent or empty (ONNX writes "" or an empty
 * tensor for the one of scales / sizes not given). */
static bool given(const onnx_val *v) {
  return v && !(v->has_host && asg_shape_numel(v->host.shape) == 0);
}

/* The resize of one axis, as the reference computes it. */
typedef struct rs_axis {
  int mode; /* 0 nearest, 1 linear, 2 cubic */
  const char *ctm;
  int nearest;    /* 0 round_prefer_floor, 1 round_prefer_ceil, 2 floor, 3 ceil (nms below) */
  double A;       /* cubic_coeff_a */
  bool exclude;   /* exclude_outside */
  bool antialias; /* linear and cubic: a wider filter when downscaling */
  double extrap;  /* tf_crop_and_resize: the value outside the roi */
} rs_axis;

/* The weights of the neighbours of a point at `ratio` in (0, 1] past its
 * left neighbour; returns how many (at most RS_TAPS). */
#define RS_TAPS 64
static int rs_coeffs(const rs_axis *o, double ratio, double scale, double *w) {
  if (o->mode == 0) { /* the left or right neighbour */
    const bool right = ratio == floor(ratio) ? true
                       : o->nearest == 0     ? ratio > 0.5
                       : o->nearest == 1     ? ratio >= 0.5
                                             : o->nearest == 3;
    w[0] = !right, w[1] = right;
    return 2;
  }
  if (!o->antialias) {
    if (o->mode == 1) {
      w[0] = 1 - ratio, w[1] = ratio;
      return 2;
    }
    const double A = o->A, t = ratio, u = 1 - ratio;
    w[0] = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
    w[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
    w[2] = ((A + 2) * u - (A + 3)) * u * u + 1;
    w[3] = ((A * (u + 1) - 5 * A) * (u + 1) + 8 * A) * (u + 1) - 4 * A;
    return 4;
  }
  /* antialias: the filter stretched by 1/scale (downscaling only) */
  const double sc = scale < 1 ? scale : 1;
  const double st = floor((o->mode == 1 ? -1 : -2) / sc) + 1;
  if (!(st > -RS_TAPS)) return -1; /* (before the cast: a tiny scale overflows int) */
  const int start = (int)st, n = 2 - 2 * start;
  if (n < 1 || n > RS_TAPS) return -1;
  double sum = 0;
  for (int k = 0; k < n; k++) {
    const double x = fabs(sc * (start + k - ratio));
    double v;
    if (o->mode == 1)
      v = 1 - x < 0 ? 0 : 1 - x > 1 ? 1 : 1 - x;
    else if (x <= 1)
      v = (o->A + 2) * x * x * x - (o->A + 3) * x * x + 1;
    else if (x < 2)
      v = o->A * x * x * x - 5 * o->A * x * x + 8 * o->A * x - 4 * o->A;
    else
      v = 0;
    w[k] = v, sum += v;
  }
  for (int k = 0; k < n; k++)
    w[k] /= sum;
  return n;
}

/* M [out, in] and c [out] (the extrapolation value where a row reads
 * outside the roi [roi[0], roi[1]], else 0) of one axis: y = M x + c.
 * *extrap: some row does. 0 when the filter is too wide (RS_TAPS). */
static int rs_matrix(const rs_axis *o, int64_t in, int64_t out, double scale, const double *roi,
                     double *M, double *cv, bool *extrap) {
  const double ow = scale * (double)in; /* the unrounded output size */
  memset(M, 0, sizeof *M * (size_t)(out * in));
  *extrap = false;
  for (int64_t y = 0; y < out; y++) {
    double x;
    cv[y] = 0;
    if (!strcmp(o->ctm, "align_corners")) {
      x = ow == 1 ? 0 : (double)y * (double)(in - 1) / (ow - 1);
    } else if (!strcmp(o->ctm, "asymmetric")) {
      x = (double)y / scale;
    } else if (!strcmp(o->ctm, "tf_crop_and_resize")) {
      x = ow == 1 ? (roi[1] - roi[0]) * (double)(in - 1) / 2
                  : (double)y * (roi[1] - roi[0]) * (double)(in - 1) / (ow - 1);
      x += roi[0] * (double)(in - 1);
      if (x < 0 || x > (double)(in - 1)) {
        cv[y] = o->extrap, *extrap = true;
        continue;
      }
    } else if (!strcmp(o->ctm, "pytorch_half_pixel")) {
      x = ow == 1 ? -0.5 : ((double)y + 0.5) / scale - 0.5;
    } else if (!strcmp(o->ctm, "half_pixel_symmetric")) {
      const double adj = (double)out / ow, center = (double)in / 2;
      x = center * (1 - adj) + ((double)y + 0.5) / scale - 0.5;
    } else { /* half_pixel */
      x = ((double)y + 0.5) / scale - 0.5;
    }
    const double xi = floor(x), ratio = x == xi ? 1 : x - xi;
    double w[RS_TAPS];
    const int n = rs_coeffs(o, ratio, scale, w);
    if (n < 1) return 0;
    /* the n neighbours nearest x, ties to the smaller index (as the
     * reference's edge-padded search) */
    const int pad = (n + 1) / 2;
    const double xp = x + pad, p = floor(xp), frac = xp - p;
    const int64_t start = (int64_t)p +
                          (n % 2 == 0 ? (frac == 0 ? -(n / 2) : -(n / 2) + 1)
                                      : (frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1)) -
                          pad;
    if (o->exclude) {
      double sum = 0;
      for (int k = 0; k < n; k++) {
        if (start + k < 0 || start + k >= in) w[k] = 0;
        sum += w[k];
      }
      for (int k = 0; k < n && sum != 0; k++)
        w[k] /= sum;
    }
    for (int k = 0; k < n; k++) { /* edge padding: clamped indices */
      const int64_t i = start + k < 0 ? 0 : start + k >= in ? in - 1 : start + k;
      M[y * in + i] += w[k];
    }
  }
  return 1;
}

/* x resized along axis a to `out` by M (and c): one product. */
static asg_tensor *rs_apply(onnx_ctx *c, asg_tensor *x, int a, int64_t out, const double *M,
                            const double *cv, bool extrap) {
  const asg_shape s = asg_tensor_shape(x);
  const asg_dtype dt = asg_tensor_dtype(x);
  const int64_t in = s.dims[a];
  asg_tensor *y;
  if (a == s.ndim - 1) { /* [..., in] x M^T [in, out] */
    asg_tensor *m = onnx__const_of(c, dt, ASG_SHAPE(out, in), M);
    y = asg_matmul_t(x, m, false, true);
    if (extrap) y = asg_add(y, onnx__const_of(c, dt, ASG_SHAPE(out), cv));
    return y;
  }
  int64_t post = 1;
  for (int d = a + 1; d < s.ndim; d++)
    post *= s.dims[d];
  asg_shape s3 = s, so = s;
  s3.ndim = a + 2, s3.dims[a] = in, s3.dims[a + 1] = post; /* [..., in, post] */
  so.dims[a] = out;
  asg_tensor *m = onnx__const_of(c, dt, ASG_SHAPE(out, in), M);
  y = asg_matmul(m, asg_reshape(x, s3)); /* M [out, in] x [..., in, post] */
  if (extrap) y = asg_add(y, onnx__const_of(c, dt, ASG_SHAPE(out, 1), cv));
  return asg_reshape(y, so);
}

ONNX_OP(onnx__op_resize) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  const asg_shape s = asg_tensor_shape(x);
  const int r = s.ndim;
  /* onnx__attr_str returns one buffer: copy each string */
  char mode[32], ctm[32], nm[32], keep[32];
  snprintf(mode, sizeof mode, "%s", onnx__attr_str(n, "mode", "nearest"));
  snprintf(ctm, sizeof ctm, "%s",
           onnx__attr_str(n, "coordinate_transformation_mode", "half_pixel"));
  snprintf(nm, sizeof nm, "%s", onnx__attr_str(n, "nearest_mode", "round_prefer_floor"));
  snprintf(keep, sizeof keep, "%s", onnx__attr_str(n, "keep_aspect_ratio_policy", "stretch"));
  static const char *const ctms[] = {"half_pixel",    "half_pixel_symmetric",
                                     "asymmetric",    "pytorch_half_pixel",
                                     "align_corners", "tf_crop_and_resize"};
  static const char *const nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  bool ok_ctm = false, ok_nm = false;
  int nmi = 0; /* rs_axis.nearest */
  for (size_t i = 0; i < sizeof ctms / sizeof *ctms; i++)
    ok_ctm |= !strcmp(ctm, ctms[i]);
  for (int i = 0; i < (int)(sizeof nms / sizeof *nms); i++)
    if (!strcmp(nm, nms[i])) ok_nm = true, nmi = i;
  const int mi = !strcmp(mode, "nearest")  ? 0
                 : !strcmp(mode, "linear") ? 1
                 : !strcmp(mode, "cubic")  ? 2
                                           : -1;
  if (mi < 0 || !ok_ctm || !ok_nm)
    return onnx__node_error(c, ASG_ERR_FORMAT,
                            "mode=%s, coordinate_transformation_mode=%s, nearest_mode=%s", mode,
                            ctm, nm);
  const bool antialias = onnx__attr_int(n, "antialias", 0) != 0;
  if (antialias && mi == 0)
    return onnx__node_error(c, ASG_ERR_FORMAT, "antialias with mode=nearest");
  if (strcmp(keep, "stretch") && strcmp(keep, "not_larger") && strcmp(keep, "not_smaller"))
    return onnx__node_error(c, ASG_ERR_FORMAT, "keep_aspect_ratio_policy=%s", keep);
  /* axes (opset 18) names the axes that scales / sizes / roi list */
  int64_t axes[ASG_MAX_DIMS];
  size_t na = 0;
  const int64_t *ax = onnx__attr_ints(n, "axes", &na);
  if (na > (size_t)r) return onnx__node_error(c, ASG_ERR_FORMAT, "%zu axes for rank %d", na, r);
  int k = ax ? (int)na : r;
  bool seen[ASG_MAX_DIMS] = {false};
  for (int i = 0; i < k; i++) {
    axes[i] = ax ? (ax[i] < 0 ? ax[i] + r : ax[i]) : i;
    if (axes[i] < 0 || axes[i] >= r || seen[axes[i]])
      return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)(ax ? ax[i] : i));
    seen[axes[i]] = true;
  }
  double scale[ASG_MAX_DIMS], roi[2 * ASG_MAX_DIMS];
  int64_t size[ASG_MAX_DIMS];
  for (int d = 0; d < r; d++)
    scale[d] = 1, size[d] = s.dims[d], roi[d] = 0, roi[r + d] = 1;
  const bool by_scale = given(IN(2)), by_size = given(IN(3));
  if (by_scale == by_size)
    return onnx__node_error(c, ASG_ERR_FORMAT, "give one of scales and sizes");
  if (!strcmp(ctm, "tf_crop_and_resize")) { /* roi: [starts of the axes, ends] */
    const onnx_val *rv = IN(1);
    if (!given(rv)) return onnx__node_error(c, ASG_ERR_FORMAT, "tf_crop_and_resize without roi");
    if (!rv->has_host) UNSUP("input '%s' (roi) must be known at import time", rv->name);
    const asg_host_tensor *h = &rv->host;
    if ((h->dtype != ASG_F32 && h->dtype != ASG_F64) || asg_shape_numel(h->shape) != 2 * k)
      return onnx__node_error(c, ASG_ERR_FORMAT, "roi: %lld values for %d axes",
                              (long long)asg_shape_numel(h->shape), k);
    for (int i = 0; i < 2 * k; i++)
      roi[(i < k ? 0 : r) + axes[i % k]] =
          h->dtype == ASG_F32 ? ((const float *)h->data)[i] : ((const double *)h->data)[i];
  }
  if (by_size) {
    int64_t v[ASG_MAX_DIMS];
    int cnt;
    asg_status st = onnx__host_ints(c, in[3], "sizes", v, ASG_MAX_DIMS, &cnt);
    if (st) return st;
    if (cnt != k) return onnx__node_error(c, ASG_ERR_FORMAT, "%d sizes for %d axes", cnt, k);
    for (int i = 0; i < k; i++) {
      if (v[i] < 1) UNSUP("an empty result (ASG has no empty tensors)");
      size[axes[i]] = v[i];
    }
  } else {
    const onnx_val *sv = in[2];
    if (!sv->has_host) UNSUP("input '%s' (scales) must be known at import time", sv->name);
    const asg_host_tensor *h = &sv->host;
    if ((h->dtype != ASG_F32 && h->dtype != ASG_F64) || asg_shape_numel(h->shape) != k)
      return onnx__node_error(c, ASG_ERR_FORMAT, "scales: %lld %s values for %d axes",
                              (long long)asg_shape_numel(h->shape), asg_dtype_name(h->dtype), k);
    for (int i = 0; i < k; i++) {
      const double v =
          h->dtype == ASG_F32 ? ((const float *)h->data)[i] : ((const double *)h->data)[i];
      if (!(v > 0) || !isfinite(v)) return onnx__node_error(c, ASG_ERR_FORMAT, "scale %g", v);
      scale[axes[i]] = v;
    }
  }
  /* the native path: asg_upsample's modes on the spatial dims of [N,C,L] / [N,C,H,W] */
  bool native = (r == 3 || r == 4) && !antialias && !strcmp(keep, "stretch") &&
                ((mi == 0 && !strcmp(ctm, "asymmetric") && !strcmp(nm, "floor")) ||
                 (mi == 1 && (!strcmp(ctm, "half_pixel") || !strcmp(ctm, "align_corners"))));
  for (int d = 0; d < 2 && native; d++)
    native = scale[d] == 1 && size[d] == s.dims[d];
  asg_upsample_params p;
  memset(&p, 0, sizeof p);
  p.mode = mi == 0 ? ASG_UPSAMPLE_NEAREST : ASG_UPSAMPLE_LINEAR;
  p.align_corners = !strcmp(ctm, "align_corners");
  for (int d = 2; d < r && native; d++) {
    /* ONNX aligns corners on the unrounded size in * scale, ASG (as
     * PyTorch) on the output size: the matrices below when they differ */
    if (by_scale && p.align_corners &&
        (asg_dim_is_symbolic(s.dims[d]) ||
         floor((double)s.dims[d] * scale[d]) != (double)s.dims[d] * scale[d]))
      native = false;
    if (by_size)
      p.size[d - 2] = size[d];
    else
      p.scale[d - 2] = scale[d];
  }
  if (native) DONE(asg_upsample(x, p));

  /* every other resize: per-axis interpolation matrices (sizes and scales
   * as the reference derives them) */
  const asg_dtype dt = asg_tensor_dtype(x);
  if (dt != ASG_F32 && dt != ASG_F64) UNSUP("resizing %s values (ASG: float)", asg_dtype_name(dt));
  /* a symbolic axis stays as it is (scale 1, whole roi); a resized one and
   * the axes after it must be known (the product reshapes over them) */
  int kk = 0;
  for (int i = 0; i < k; i++) {
    const int d = (int)axes[i];
    const bool keep_axis = by_scale && scale[d] == 1 && roi[d] == 0 && roi[r + d] == 1;
    if (asg_dim_is_symbolic(s.dims[d]) && keep_axis) continue;
    for (int e = d; e < r; e++)
      if (asg_dim_is_symbolic(s.dims[e]))
        UNSUP("mode=%s, coordinate_transformation_mode=%s resizing dim %d with dim %d symbolic "
              "(ASG resizes those on the upsample op: nearest asymmetric floor, linear "
              "half_pixel or align_corners, of [N,C,L] or [N,C,H,W])",
              mode, ctm, d, e);
    axes[kk++] = d;
  }
  k = kk; /* the axes resized below */
  /* (only the listed axes: the others, maybe symbolic, keep their size) */
  if (by_size) {
    for (int i = 0; i < k; i++)
      scale[axes[i]] = (double)size[axes[i]] / (double)s.dims[axes[i]];
    if (strcmp(keep, "stretch") &&
        k > 0) { /* one scale for the listed axes, sizes rounded half up */
      double sc = scale[axes[0]];
      for (int i = 1; i < k; i++)
        sc = !strcmp(keep, "not_larger") ? fmin(sc, scale[axes[i]]) : fmax(sc, scale[axes[i]]);
      for (int i = 0; i < k; i++) {
        scale[axes[i]] = sc;
        const double v = sc * (double)s.dims[axes[i]] + 0.5;
        if (!(v < 4e9)) return onnx__node_error(c, ASG_ERR_FORMAT, "sizes: output too large");
        size[axes[i]] = (int64_t)v;
        if (size[axes[i]] < 1) UNSUP("an empty result (ASG has no empty tensors)");
      }
    }
  } else {
    for (int i = 0; i < k; i++) {
      const int d = (int)axes[i];
      const double v = scale[d] * (double)s.dims[d];
      if (!(v < 4e9))
        return onnx__node_error(c, ASG_ERR_FORMAT, "scale %g: output too large", scale[d]);
      size[d] = (int64_t)v;
      if (size[d] < 1) UNSUP("an empty result (ASG has no empty tensors)");
    }
  }
  const rs_axis o = {mi,
                     ctm,
                     nmi,
                     onnx__attr_float(n, "cubic_coeff_a", -0.75),
                     onnx__attr_int(n, "exclude_outside", 0) != 0,
                     antialias,
                     onnx__attr_float(n, "extrapolation_value", 0.0)};
  asg_tensor *y = x;
  for (int i = 0; i < k && y; i++) {
    const int d = (int)axes[i];
    const int64_t in_d = s.dims[d], out_d = size[d];
    if (fabs(scale[d] - 1) <= 1e-9 && out_d == in_d && fabs(roi[d]) <= 1e-9 &&
        fabs(roi[r + d] - 1) <= 1e-9)
      continue; /* the identity (as the reference skips it) */
    if ((double)in_d * (double)out_d > 64e6)
      UNSUP("resizing dim %d from %lld to %lld by an interpolation matrix (over 64M weights)", d,
            (long long)in_d, (long long)out_d);
    double *M = malloc(sizeof *M * (size_t)(in_d * out_d)),
           *cv = malloc(sizeof *cv * (size_t)out_d);
    const double rr[2] = {roi[d], roi[r + d]}; /* this axis's start and end */
    bool extrap = false;
    const int built = !M || !cv ? -1 : rs_matrix(&o, in_d, out_d, scale[d], rr, M, cv, &extrap);
    if (built == 1) y = rs_apply(c, y, d, out_d, M, cv, extrap);
    free(M), free(cv);
    if (built < 0) return onnx__node_error(c, ASG_ERR_OOM, "out of memory (resize weights)");
    if (!built) UNSUP("antialias at scale %g: a filter of more than %d taps", scale[d], RS_TAPS);
  }
  DONE(y);
}
