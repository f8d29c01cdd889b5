/* ONNX Resize on asg_upsample: [N,C,L] and [N,C,H,W] inputs whose batch and
 * channel dims stay, with
 *   mode=nearest, coordinate_transformation_mode=asymmetric, nearest_mode=floor
 *     (PyTorch's 'nearest': src = floor(dst / scale));
 *   mode=linear, coordinate_transformation_mode=half_pixel or align_corners
 *     (PyTorch's (bi)linear with align_corners false / true; half_pixel's
 *     coordinates outside the input read its edge, as PyTorch's clamp).
 * Scales or sizes must be known at import. Anything else (cubic, other
 * coordinate modes, antialias, keep_aspect_ratio_policy other than stretch)
 * is ASG_ERR_UNSUPPORTED. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/onnx_internal.h"

/* An optional input that is absent or empty (ONNX writes "" or an empty
 * tensor for the one of scales / sizes not given). */
static bool given(const onnx_val *v) {
  return v && !(v->has_host && asg_shape_numel(v->host.shape) == 0);
}

ONNX_OP(onnx__op_resize) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  const asg_shape s = asg_tensor_shape(x);
  const int r = s.ndim;
  if (r != 3 && r != 4) UNSUP("a rank-%d input (ASG resizes [N,C,L] and [N,C,H,W])", r);
  /* onnx__attr_str returns one buffer: copy each string */
  char mode[32], ctm[32], nm[32];
  snprintf(mode, sizeof mode, "%s", onnx__attr_str(n, "mode", "nearest"));
  snprintf(ctm, sizeof ctm, "%s",
           onnx__attr_str(n, "coordinate_transformation_mode", "half_pixel"));
  snprintf(nm, sizeof nm, "%s", onnx__attr_str(n, "nearest_mode", "round_prefer_floor"));
  if (onnx__attr_int(n, "antialias", 0)) UNSUP("antialias=1");
  if (strcmp(onnx__attr_str(n, "keep_aspect_ratio_policy", "stretch"), "stretch"))
    UNSUP("keep_aspect_ratio_policy other than stretch");
  asg_upsample_params p;
  memset(&p, 0, sizeof p);
  if (!strcmp(mode, "nearest")) {
    if (strcmp(ctm, "asymmetric") || strcmp(nm, "floor"))
      UNSUP("nearest with coordinate_transformation_mode=%s, nearest_mode=%s (ASG: asymmetric, "
            "floor)",
            ctm, nm);
    p.mode = ASG_UPSAMPLE_NEAREST;
  } else if (!strcmp(mode, "linear")) {
    if (strcmp(ctm, "half_pixel") && strcmp(ctm, "align_corners"))
      UNSUP("linear with coordinate_transformation_mode=%s (ASG: half_pixel, align_corners)", ctm);
    p.mode = ASG_UPSAMPLE_LINEAR;
    p.align_corners = !strcmp(ctm, "align_corners");
  } else {
    UNSUP("mode=%s", mode);
  }
  /* per-axis scale (or size) over every axis of x; axes (opset 18) names
   * the axes that scales / sizes list, the others keep their size */
  int64_t axes[ASG_MAX_DIMS];
  size_t na = 0;
  const int64_t *ax = onnx__attr_ints(n, "axes", &na);
  if (na > (size_t)r) return onnx__node_error(c, ASG_ERR_FORMAT, "%zu axes for rank %d", na, r);
  for (int i = 0; i < (ax ? (int)na : r); i++) {
    axes[i] = ax ? (ax[i] < 0 ? ax[i] + r : ax[i]) : i;
    if (axes[i] < 0 || axes[i] >= r)
      return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)ax[i]);
  }
  const int k = ax ? (int)na : r;
  double scale[ASG_MAX_DIMS];
  int64_t size[ASG_MAX_DIMS];
  for (int d = 0; d < r; d++)
    scale[d] = 1, size[d] = s.dims[d];
  const bool by_scale = given(IN(2)), by_size = given(IN(3));
  if (by_scale == by_size)
    return onnx__node_error(c, ASG_ERR_FORMAT, "give one of scales and sizes");
  if (by_size) {
    int64_t v[ASG_MAX_DIMS];
    int cnt;
    asg_status st = onnx__host_ints(c, in[3], "sizes", v, ASG_MAX_DIMS, &cnt);
    if (st) return st;
    if (cnt != k) return onnx__node_error(c, ASG_ERR_FORMAT, "%d sizes for %d axes", cnt, k);
    for (int i = 0; i < k; i++)
      size[axes[i]] = v[i];
  } else {
    const onnx_val *sv = in[2];
    if (!sv->has_host) UNSUP("input '%s' (scales) must be known at import time", sv->name);
    const asg_host_tensor *h = &sv->host;
    if ((h->dtype != ASG_F32 && h->dtype != ASG_F64) || asg_shape_numel(h->shape) != k)
      return onnx__node_error(c, ASG_ERR_FORMAT, "scales: %lld %s values for %d axes",
                              (long long)asg_shape_numel(h->shape), asg_dtype_name(h->dtype), k);
    for (int i = 0; i < k; i++)
      scale[axes[i]] =
          h->dtype == ASG_F32 ? ((const float *)h->data)[i] : ((const double *)h->data)[i];
  }
  for (int d = 0; d < 2; d++)
    if (scale[d] != 1 || size[d] != s.dims[d]) UNSUP("resizing dim %d (batch or channels)", d);
  for (int d = 2; d < r; d++) {
    /* ONNX aligns corners on the unrounded size in * scale, ASG (as
     * PyTorch) on the output size */
    if (by_scale && p.align_corners &&
        (asg_dim_is_symbolic(s.dims[d]) ||
         floor((double)s.dims[d] * scale[d]) != (double)s.dims[d] * scale[d]))
      UNSUP("align_corners with a scale that gives a fractional size (give sizes)");
    if (by_size)
      p.size[d - 2] = size[d];
    else
      p.scale[d - 2] = scale[d];
  }
  DONE(asg_upsample(x, p));
}
