/* ONNX operators built from several ASG ops: Attention (opset 23), Pad,
 * Trilu, CumSum, Tile, DepthToSpace / SpaceToDepth, Hardmax, OneHot. Index
 * and mask tables are constants made at import, so the dims they depend on
 * must be static. */
#ifdef ASG_HAVE_ONNX
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/onnx_internal.h"

static int rank(const asg_tensor *t) { return asg_tensor_shape(t).ndim; }

static bool all_static(asg_shape s) {
  for (int i = 0; i < s.ndim; i++)
    if (asg_dim_is_symbolic(s.dims[i])) return false;
  return true;
}

asg_tensor *onnx__const_of(onnx_ctx *c, asg_dtype dt, asg_shape s, const double *v) {
  if (dt == ASG_F64) return asg_constant(c->g, dt, s, v);
  /* asg_convert makes no integers of floats: those are cast by the program */
  if (!asg_dtype_is_float(dt)) return asg_cast(asg_constant(c->g, ASG_F64, s, v), dt);
  /* floats converted here, once, rather than by a cast step in every run */
  const size_t n = (size_t)asg_shape_numel(s);
  void *buf = malloc(n * asg_dtype_size(dt) + 1);
  if (!buf) return asg_graph_fail(c->g, ASG_ERR_OOM, "onnx import", "out of memory (constant)");
  asg_tensor *t =
      asg_convert(v, ASG_F64, buf, dt, n) == ASG_OK ? asg_constant(c->g, dt, s, buf) : NULL;
  free(buf);
  return t ? t
           : asg_graph_fail(c->g, ASG_ERR_DTYPE, "onnx import", "a constant of %s",
                            asg_dtype_name(dt));
}

/* Repeats each of the h heads (axis 1) r times: [B, h, ...] -> [B, h*r, ...]. */
static asg_tensor *repeat_heads(onnx_ctx *c, asg_tensor *x, int64_t h, int64_t r) {
  if (r == 1) return x;
  int64_t *idx = malloc(8 * (size_t)(h * r));
  if (!idx) return NULL;
  for (int64_t i = 0; i < h * r; i++)
    idx[i] = i / r;
  asg_tensor *y = asg_gather(x, asg_constant(c->g, ASG_I64, ASG_SHAPE(h * r), idx), 1);
  free(idx);
  return y;
}

/* [B, L, H*E] -> [B, H, L, E] */
static asg_tensor *split_heads(asg_tensor *x, int64_t h) {
  asg_shape s = asg_tensor_shape(x);
  asg_shape t = {4, {s.dims[0], s.dims[1], h, -1}};
  return asg_transpose(asg_reshape(x, t), 1, 2);
}

ONNX_OP(onnx__op_attention) {
  UNUSED;
  NEED(3);
  asg_tensor *q = T(0), *k = T(1), *v = T(2), *mask = T(3);
  int r = rank(q);
  if (r != 3 && r != 4) UNSUP("rank %d inputs", r);
  int64_t qk_mode = onnx__attr_int(n, "qk_matmul_output_mode", 0);
  bool want_qk = nout > 3 && n->output[3][0];
  if (qk_mode < 0 || qk_mode > 3) UNSUP("qk_matmul_output_mode=%lld", (long long)qk_mode);
  if ((IN(4) == NULL) != (IN(5) == NULL))
    return onnx__node_error(c, ASG_ERR_FORMAT, "past_key and past_value come together");
  /* nonpad_kv_seqlen (opset 24): keys j < len[b] of batch b are real */
  int64_t nonpad[256];
  int n_nonpad = 0;
  if (IN(6)) {
    if (IN(4)) return onnx__node_error(c, ASG_ERR_FORMAT, "nonpad_kv_seqlen with a past cache");
    asg_status st = onnx__host_ints(c, in[6], "nonpad_kv_seqlen", nonpad, 256, &n_nonpad);
    if (st) return st;
  }
  if (r == 3) {
    int64_t hq = onnx__attr_int(n, "q_num_heads", 0), hk = onnx__attr_int(n, "kv_num_heads", 0);
    if (hq < 1 || hk < 1)
      return onnx__node_error(c, ASG_ERR_FORMAT, "3-D inputs need q_num_heads and kv_num_heads");
    q = split_heads(q, hq), k = split_heads(k, hk), v = split_heads(v, hk);
  }
  asg_shape qs = asg_tensor_shape(q);
  int64_t past = 0;
  if (IN(4)) {
    past = asg_tensor_shape(T(4)).dims[2];
    asg_tensor *kk[2] = {T(4), k}, *vv[2] = {T(5), v};
    k = asg_concat(kk, 2, 2), v = asg_concat(vv, 2, 2);
  }
  if (nout > 1 && n->output[1][0]) out[1].t = k;
  if (nout > 2 && n->output[2][0]) out[2].t = v;
  asg_shape ks = asg_tensor_shape(k);
  if (!all_static(qs) || !all_static(ks)) UNSUP("symbolic dims");
  int64_t hq = qs.dims[1], hk = ks.dims[1], L = qs.dims[2], S = ks.dims[2], E = qs.dims[3];
  if (hk < 1 || hq % hk)
    return onnx__node_error(c, ASG_ERR_SHAPE, "%lld query heads for %lld key heads", (long long)hq,
                            (long long)hk);
  k = repeat_heads(c, k, hk, hq / hk), v = repeat_heads(c, v, hk, hq / hk);
  double scale = onnx__attr_float(n, "scale", 1.0 / sqrt((double)E));
  double softcap = onnx__attr_float(n, "softcap", 0);
  bool causal = onnx__attr_int(n, "is_causal", 0) != 0;
  int64_t lw = onnx__attr_int(n, "left_window_size", -1),
          rw = onnx__attr_int(n, "right_window_size", -1);
  asg_dtype dt = asg_tensor_dtype(q);
  asg_tensor *y;
  if (n_nonpad && n_nonpad != qs.dims[0])
    return onnx__node_error(c, ASG_ERR_SHAPE, "nonpad_kv_seqlen has %d values for batch %lld",
                            n_nonpad, (long long)qs.dims[0]);
  bool plain = !mask && softcap <= 0 && lw < 0 && rw < 0 && (!causal || past == 0) &&
               asg_tensor_shape(v).dims[3] == E && !want_qk && !n_nonpad;
  if (plain) {
    y = asg_attention(q, k, v, scale, causal); /* fused: no [L, S] scores kept */
  } else {
    asg_tensor *s = asg_mul_scalar(asg_matmul_t(q, k, false, true), scale);
    if (softcap > 0) s = asg_mul_scalar(asg_tanh(asg_mul_scalar(s, 1.0 / softcap)), softcap);
    if (want_qk && qk_mode <= 1) out[3].t = s; /* modes 0 and 1: before the bias (reference) */
    if (mask) {
      bool is_bool = in[3]->is_bool;
      int64_t pad = S - asg_tensor_shape(mask).dims[rank(mask) - 1];
      if (pad < 0) return onnx__node_error(c, ASG_ERR_SHAPE, "mask longer than the keys");
      mask = asg_cast(mask, dt);
      if (is_bool) /* true: attend (0), false: -inf */
        mask = asg_where(mask, asg_scalar(c->g, dt, 0), asg_scalar(c->g, dt, -INFINITY));
      mask = onnx__pad_axis(mask, rank(mask) - 1, 0, pad, -INFINITY);
      s = asg_add(s, mask);
    }
    if (causal || lw >= 0 || rw >= 0 || n_nonpad) {
      /* query i sees key j when j <= i + offset (causal), within the windows, and j < len[b];
       * offset: the past length, or len[b] - L with nonpad_kv_seqlen */
      int64_t nb = n_nonpad ? n_nonpad : 1;
      if (nb * L * S > (1 << 24))
        UNSUP("a mask of %lld x %lld x %lld", (long long)nb, (long long)L, (long long)S);
      double *b = malloc(8 * (size_t)(nb * L * S));
      if (!b) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
      for (int64_t bi = 0; bi < nb; bi++) {
        int64_t off = n_nonpad ? nonpad[bi] - L : past, len = n_nonpad ? nonpad[bi] : S;
        for (int64_t i = 0; i < L; i++)
          for (int64_t j = 0; j < S; j++) {
            int64_t diff = i + off - j;
            bool ok = (!causal || diff >= 0) && (lw < 0 || diff <= lw) && (rw < 0 || -diff <= rw) &&
                      j < len;
            b[(bi * L + i) * S + j] = ok ? 0 : -INFINITY;
          }
      }
      asg_shape bs = n_nonpad ? (asg_shape){4, {nb, 1, L, S}} : ASG_SHAPE(L, S);
      s = asg_add(s, onnx__const_of(c, dt, bs, b));
      free(b);
    }
    if (want_qk && qk_mode == 2) out[3].t = s;
    /* softmax that gives 0 (not NaN) on a fully masked row, as the reference */
    asg_tensor *mx = asg_stop_gradient(asg_max(s, ASG_AXES(-1), true));
    asg_tensor *z = asg_scalar(c->g, dt, 0);
    mx = asg_where(asg_eq(mx, asg_scalar(c->g, dt, -INFINITY)), z, mx);
    asg_tensor *e = asg_exp(asg_sub(s, mx));
    asg_tensor *sum = asg_sum(e, ASG_AXES(-1), true);
    sum = asg_add(sum, asg_eq(sum, z));
    asg_tensor *p = asg_div(e, sum);
    if (want_qk && qk_mode == 3) out[3].t = p;
    y = asg_matmul(p, v);
  }
  if (r == 3) { /* back to [B, L, H*E] */
    asg_shape ys = asg_tensor_shape(y);
    asg_shape t = {3, {ys.dims[0], ys.dims[2], -1}};
    y = asg_reshape(asg_transpose(y, 1, 2), t);
  }
  DONE(y);
}

/* Pad: constant (concat of fills), edge and reflect (gathers of index tables). */
ONNX_OP(onnx__op_pad) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  int r = s.ndim;
  int64_t pads[2 * ASG_MAX_DIMS], axes[ASG_MAX_DIMS];
  int np_, na = r;
  asg_status st = onnx__host_ints(c, in[1], "pads", pads, 2 * ASG_MAX_DIMS, &np_);
  if (st) return st;
  if (IN(3)) {
    st = onnx__host_ints(c, in[3], "axes", axes, ASG_MAX_DIMS, &na);
    if (st) return st;
  } else
    for (int i = 0; i < r; i++)
      axes[i] = i;
  if (np_ != 2 * na) return onnx__node_error(c, ASG_ERR_FORMAT, "%d pads for %d axes", np_, na);
  double value = 0;
  if (IN(2)) {
    if (!in[2]->has_host)
      UNSUP("input '%s' (constant_value) must be known at import time (an initializer or "
            "Constant)",
            in[2]->name);
    asg_host_tensor *h = &in[2]->host;
    value = h->dtype == ASG_F32   ? ((float *)h->data)[0]
            : h->dtype == ASG_F64 ? ((double *)h->data)[0]
            : h->dtype == ASG_I32 ? ((int32_t *)h->data)[0]
                                  : (double)((int64_t *)h->data)[0];
  }
  const char *mode = onnx__attr_str(n, "mode", "constant");
  bool constant = !strcmp(mode, "constant"), edge = !strcmp(mode, "edge"),
       refl = !strcmp(mode, "reflect"), wrap = !strcmp(mode, "wrap");
  if (!constant && !edge && !refl && !wrap) UNSUP("mode=%s", mode);
  for (int i = 0; i < na; i++) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i], b = pads[i], e = pads[i + na];
    if (a < 0 || a >= r)
      return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)axes[i]);
    if (!b && !e) continue;
    int64_t d = asg_tensor_shape(x).dims[a];
    if (b < 0 || e < 0) { /* negative pads crop */
      if (asg_dim_is_symbolic(d)) UNSUP("negative pads on a symbolic dim");
      int64_t lo = b < 0 ? -b : 0, hi = d - (e < 0 ? -e : 0);
      if (hi <= lo) UNSUP("an empty result (ASG has no empty tensors)");
      x = asg_slice(x, (int)a, lo, hi, 1);
      d = hi - lo, b = b < 0 ? 0 : b, e = e < 0 ? 0 : e;
      if (!b && !e) continue;
    }
    if (constant) {
      x = onnx__pad_axis(x, (int)a, b, e, value);
      continue;
    }
    if (asg_dim_is_symbolic(d) || d + b + e > (1 << 24)) UNSUP("%s padding of this dim", mode);
    if (refl && (b >= d || e >= d)) UNSUP("reflect pads as large as the dim");
    int64_t m = d + b + e, *idx = malloc(8 * (size_t)m);
    if (!idx) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
    for (int64_t j = 0; j < m; j++) {
      int64_t p = j - b;
      if (edge)
        p = p < 0 ? 0 : p >= d ? d - 1 : p;
      else if (refl)
        p = p < 0 ? -p : p >= d ? 2 * (d - 1) - p : p;
      else
        p = ((p % d) + d) % d;
      idx[j] = p;
    }
    x = asg_gather(x, asg_constant(c->g, ASG_I64, ASG_SHAPE(m), idx), (int)a);
    free(idx);
  }
  DONE(x);
}

ONNX_OP(onnx__op_trilu) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  if (s.ndim < 2) return onnx__node_error(c, ASG_ERR_SHAPE, "rank %d", s.ndim);
  int64_t R = s.dims[s.ndim - 2], C = s.dims[s.ndim - 1], kk = 0;
  if (asg_dim_is_symbolic(R) || asg_dim_is_symbolic(C) || R * C > (1 << 24))
    UNSUP("symbolic or large matrix dims");
  if (IN(1)) {
    int cnt;
    asg_status st = onnx__host_ints(c, in[1], "k", &kk, 1, &cnt);
    if (st) return st;
  }
  bool upper = onnx__attr_int(n, "upper", 1) != 0;
  double *m = malloc(8 * (size_t)(R * C));
  if (!m) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  for (int64_t i = 0; i < R; i++)
    for (int64_t j = 0; j < C; j++)
      m[i * C + j] = upper ? (j - i >= kk) : (j - i <= kk);
  asg_tensor *mk = onnx__const_of(c, asg_tensor_dtype(x), ASG_SHAPE(R, C), m);
  free(m);
  DONE(asg_where(mk, x,
                 asg_scalar(c->g, asg_tensor_dtype(x), 0))); /* keeps inf / NaN out of the zeros */
}

/* CumSum as a product with a triangular matrix along the axis. */
/* x shifted by k (0 < k < d) along axis: k zeros first (or last when rev). */
static asg_tensor *shift(asg_tensor *x, int axis, int64_t d, int64_t k, bool rev) {
  asg_tensor *kept = rev ? asg_slice(x, axis, k, d, 1) : asg_slice(x, axis, 0, d - k, 1);
  return onnx__pad_axis(kept, axis, rev ? 0 : k, rev ? k : 0, 0);
}

/* Integer cumulative sums by doubling steps (y += y shifted by 1, 2, 4,
 * ...): integer additions only, exact (wrapping as ONNX's integers do). */
static asg_tensor *int_cumsum(asg_tensor *x, int axis, int64_t d, bool excl, bool rev) {
  if (excl) {
    if (d == 1) return asg_mul(x, asg_scalar(asg_tensor_graph(x), asg_tensor_dtype(x), 0));
    x = shift(x, axis, d, 1, rev);
  }
  for (int64_t k = 1; k < d; k *= 2)
    x = asg_add(x, shift(x, axis, d, k, rev));
  return x;
}

ONNX_OP(onnx__op_cumsum) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  int64_t ax;
  int cnt;
  asg_status st = onnx__host_ints(c, in[1], "axis", &ax, 1, &cnt);
  if (st) return st;
  if (ax < -s.ndim || ax >= s.ndim)
    return onnx__node_error(c, ASG_ERR_FORMAT, "axis %lld", (long long)ax);
  if (ax < 0) ax += s.ndim;
  int64_t d = s.dims[ax];
  if (asg_dim_is_symbolic(d) || d > 4096) UNSUP("cumulative sum over this dim");
  bool excl = onnx__attr_int(n, "exclusive", 0) != 0, rev = onnx__attr_int(n, "reverse", 0) != 0;
  if (!asg_dtype_is_float(asg_tensor_dtype(x))) DONE(int_cumsum(x, (int)ax, d, excl, rev));
  double *m = malloc(8 * (size_t)(d * d));
  if (!m) return onnx__node_error(c, ASG_ERR_OOM, "no memory");
  for (int64_t i = 0; i < d; i++) /* out[j] = sum_i x[i] * m[i][j] */
    for (int64_t j = 0; j < d; j++)
      m[i * d + j] = rev ? (excl ? i > j : i >= j) : (excl ? i < j : i <= j);
  asg_tensor *tri = onnx__const_of(c, asg_tensor_dtype(x), ASG_SHAPE(d, d), m);
  free(m);
  if (s.ndim == 1) DONE(asg_squeeze(asg_matmul(asg_unsqueeze(x, 0), tri), 0));
  asg_tensor *xt = asg_transpose(x, (int)ax, s.ndim - 1);
  DONE(asg_transpose(asg_matmul(xt, tri), (int)ax, s.ndim - 1));
}

ONNX_OP(onnx__op_tile) {
  UNUSED;
  NEED(2);
  asg_tensor *x = T(0);
  int64_t rep[ASG_MAX_DIMS];
  int k;
  asg_status st = onnx__host_ints(c, in[1], "repeats", rep, ASG_MAX_DIMS, &k);
  if (st) return st;
  if (k != rank(x))
    return onnx__node_error(c, ASG_ERR_FORMAT, "%d repeats for rank %d", k, rank(x));
  for (int a = 0; a < k; a++) {
    if (rep[a] < 1) UNSUP("repeat %lld (ASG has no empty tensors)", (long long)rep[a]);
    if (rep[a] > 1024) UNSUP("repeat %lld", (long long)rep[a]);
    if (rep[a] == 1) continue;
    asg_tensor *parts[1024];
    for (int64_t i = 0; i < rep[a]; i++)
      parts[i] = x;
    x = asg_concat(parts, (int)rep[a], a);
  }
  DONE(x);
}

/* [N, C, H, W] <-> [N, C*b*b, H/b, W/b] by reshape and permute. */
static asg_status d2s(onnx_ctx *c, const Onnx__NodeProto *n, onnx_val **in, int nin, onnx_val *out,
                      bool to_space) {
  NEED(1);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  int64_t b = onnx__attr_int(n, "blocksize", 0);
  if (s.ndim != 4 || b < 1 || !all_static(s))
    UNSUP("rank %d input / blocksize %lld", s.ndim, (long long)b);
  int64_t N = s.dims[0], C = s.dims[1], H = s.dims[2], W = s.dims[3];
  if (to_space) {
    bool crd = !strcmp(onnx__attr_str(n, "mode", "DCR"), "CRD");
    if (C % (b * b))
      return onnx__node_error(c, ASG_ERR_SHAPE, "channels %lld not divisible", (long long)C);
    asg_shape t = crd ? (asg_shape){6, {N, C / (b * b), b, b, H, W}}
                      : (asg_shape){6, {N, b, b, C / (b * b), H, W}};
    int perm_crd[6] = {0, 1, 4, 2, 5, 3}, perm_dcr[6] = {0, 3, 4, 1, 5, 2};
    asg_tensor *y = asg_permute(asg_reshape(x, t), crd ? perm_crd : perm_dcr);
    DONE(asg_reshape(y, ASG_SHAPE(N, C / (b * b), H * b, W * b)));
  }
  if (H % b || W % b) return onnx__node_error(c, ASG_ERR_SHAPE, "spatial dims not divisible");
  bool crd = !strcmp(onnx__attr_str(n, "mode", "DCR"), "CRD"); /* opset 28 */
  int perm_dcr[6] = {0, 3, 5, 1, 2, 4}, perm_crd[6] = {0, 1, 3, 5, 2, 4};
  asg_tensor *y = asg_permute(asg_reshape(x, (asg_shape){6, {N, C, H / b, b, W / b, b}}),
                              crd ? perm_crd : perm_dcr);
  DONE(asg_reshape(y, ASG_SHAPE(N, C * b * b, H / b, W / b)));
}
ONNX_OP(onnx__op_depth_to_space) {
  UNUSED;
  return d2s(c, n, in, nin, out, true);
}
ONNX_OP(onnx__op_space_to_depth) {
  UNUSED;
  return d2s(c, n, in, nin, out, false);
}

ONNX_OP(onnx__op_hardmax) {
  UNUSED;
  NEED(1);
  asg_tensor *x = T(0);
  asg_shape s = asg_tensor_shape(x);
  int axis = (int)onnx__attr_int(n, "axis", -1);
  if (axis < -s.ndim || axis >= s.ndim) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += s.ndim;
  int64_t d = s.dims[axis];
  if (asg_dim_is_symbolic(d)) UNSUP("symbolic axis");
  asg_tensor *oh = asg_one_hot(asg_argmax(x, axis, false), d, asg_tensor_dtype(x));
  for (int a = s.ndim - 1; a > axis; a--)
    oh = asg_transpose(oh, a, a - 1); /* back to axis */
  DONE(oh);
}

ONNX_OP(onnx__op_one_hot) {
  UNUSED;
  NEED(3);
  int64_t depth;
  int cnt;
  asg_status st = onnx__host_ints(c, in[1], "depth", &depth, 1, &cnt);
  if (st) return st;
  if (depth < 1 || depth > (1 << 24)) UNSUP("depth %lld", (long long)depth);
  if (asg_shape_numel(asg_tensor_shape(T(2))) != 2)
    return onnx__node_error(c, ASG_ERR_SHAPE, "values must have 2 elements");
  asg_tensor *idx = T(0);
  if (asg_dtype_is_float(asg_tensor_dtype(idx))) idx = asg_cast(idx, ASG_I64);
  /* negative indices count from the end */
  asg_dtype it = asg_tensor_dtype(idx), dt = asg_tensor_dtype(T(2));
  asg_tensor *zero = asg_scalar(c->g, it, 0), *dep = asg_scalar(c->g, it, (double)depth);
  idx = asg_add(idx, asg_mul(asg_lt(idx, zero), dep));
  /* indices still outside [0, depth) give an all-off row, as ONNX says */
  asg_tensor *valid = asg_mul(asg_ge(idx, zero), asg_lt(idx, dep));
  asg_tensor *oh = asg_one_hot(asg_mul(idx, valid), depth, dt);
  oh = asg_mul(oh, asg_unsqueeze(asg_cast(valid, dt), -1));
  int axis = (int)onnx__attr_int(n, "axis", -1), r = rank(oh);
  if (axis < -r || axis >= r) return onnx__node_error(c, ASG_ERR_FORMAT, "axis %d", axis);
  if (axis < 0) axis += r;
  for (int a = r - 1; a > axis; a--)
    oh = asg_transpose(oh, a, a - 1); /* move the new axis */
  asg_tensor *off = asg_gather(T(2), asg_scalar(c->g, ASG_I64, 0), 0);
  asg_tensor *on = asg_gather(T(2), asg_scalar(c->g, ASG_I64, 1), 0);
  DONE(asg_add(off, asg_mul(oh, asg_sub(on, off))));
}
#endif
