#version 460
// Pooling over the planes (n, c) of [N,C,H,W], one invocation per written
// element. Gradients gather from the output windows containing the input
// element, in the CPU's (oh, ow) order, so there are no atomics.
// Window (oh, ow) starts at (oh*sh - ph, ow*sw - pw), taps every (dh, dw).
//   POOL_MAX           x -> y [N,C,OH,OW] (first maximum of the window; NaN wins)
//   POOL_MAX_BWD       dy, x -> dx: dy of every window whose first maximum it is
//   POOL_AVG(_BWD)     padding counts as zeros; divisor as PyTorch: the window
//                      clipped to the padded input, or (excl) its input cells
//   POOL_ADAPTIVE(_BWD) PyTorch bins [floor(o*n/on), ceil((o+1)*n/on))
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in0, in1;
  int planes, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, excl;
};

Params p;

#if defined(T_F32)
#define NEG_INF uintBitsToFloat(0xff800000u)
#else
#define NEG_INF packDouble2x32(uvec2(0u, 0xfff00000u))
#endif

// Flat index in the plane of the window's first maximum (-1: none), as the CPU.
int window_argmax(BufT x, int base, int oh, int ow) {
  int h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw, bi = -1;
  T best = NEG_INF;
  for (int kh = 0; kh < p.KH; kh++) {
    int h = h0 + kh * p.dh;
    if (h < 0 || h >= p.H) continue;
    for (int kw = 0; kw < p.KW; kw++) {
      int w = w0 + kw * p.dw;
      if (w < 0 || w >= p.W) continue;
      T v = x.v[base + h * p.W + w];
      if (bi < 0 || v > best || (isnan(v) && !isnan(best))) best = v, bi = h * p.W + w;
    }
  }
  return bi;
}

// 1 / the divisor of average pooling's window (oh, ow), as the CPU.
T avg_inv(int oh, int ow) {
  int h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw, h1 = h0 + p.KH, w1 = w0 + p.KW;
  if (p.excl != 0) {
    h0 = max(h0, 0), w0 = max(w0, 0), h1 = min(h1, p.H), w1 = min(w1, p.W);
  } else {
    h1 = min(h1, p.H + p.ph), w1 = min(w1, p.W + p.pw);
  }
  int d = (h1 - h0) * (w1 - w0);
  return d > 0 ? T(1) / T(d) : T(0);
}

// Inclusive range [lo, hi] of windows (start o*s - pad, extent K) that contain
// position h, clipped to [0, On).
ivec2 windows_of(int h, int pad, int K, int s, int On) {
  int a = h + pad - K + 1;
  return ivec2(a <= 0 ? 0 : (a + s - 1) / s, min((h + pad) / s, On - 1));
}

int bin_start(int o, int n, int on) { return int(int64_t(o) * n / on); }
int bin_end(int o, int n, int on) { return int((int64_t(o + 1) * n + on - 1) / on); }

void main() {
  p = Params(push.params);
  BufT o = BufT(p.out_), a = BufT(p.in0);
  int OHW = p.OH * p.OW, HW = p.H * p.W;
#if defined(POOL_MAX) || defined(POOL_AVG) || defined(POOL_ADAPTIVE)
  GRID_LOOP(i, p.planes * OHW) {
    int q = int(i), pl = q / OHW, r = q - pl * OHW, oh = r / p.OW, ow = r - oh * p.OW;
    int base = pl * HW;
#if defined(POOL_MAX)
    int b = window_argmax(a, base, oh, ow);
    o.v[q] = b < 0 ? NEG_INF : a.v[base + b];
#elif defined(POOL_AVG)
    int h0 = oh * p.sh - p.ph, w0 = ow * p.sw - p.pw;
    T s = T(0);
    for (int h = max(h0, 0); h < h0 + p.KH && h < p.H; h++)
      for (int w = max(w0, 0); w < w0 + p.KW && w < p.W; w++)
        s += a.v[base + h * p.W + w];
    o.v[q] = s * avg_inv(oh, ow);
#else
    int hs = bin_start(oh, p.H, p.OH), he = bin_end(oh, p.H, p.OH);
    int ws = bin_start(ow, p.W, p.OW), we = bin_end(ow, p.W, p.OW);
    T s = T(0);
    for (int h = hs; h < he; h++)
      for (int w = ws; w < we; w++)
        s += a.v[base + h * p.W + w];
    o.v[q] = s / T((he - hs) * (we - ws));
#endif
  }
#else
  GRID_LOOP(i, p.planes * HW) {
    int q = int(i), pl = q / HW, r = q - pl * HW, h = r / p.W, w = r - h * p.W;
    int obase = pl * OHW;
    T acc = T(0);
#if defined(POOL_MAX_BWD)
    BufT x = BufT(p.in1);
    // windows whose dilated extent covers (h, w); window_argmax returns taps only
    ivec2 hr = windows_of(h, p.ph, (p.KH - 1) * p.dh + 1, p.sh, p.OH);
    ivec2 wr = windows_of(w, p.pw, (p.KW - 1) * p.dw + 1, p.sw, p.OW);
    for (int oh = hr.x; oh <= hr.y; oh++)
      for (int ow = wr.x; ow <= wr.y; ow++)
        if (window_argmax(x, pl * HW, oh, ow) == r) acc += a.v[obase + oh * p.OW + ow];
#elif defined(POOL_AVG_BWD)
    ivec2 hr = windows_of(h, p.ph, p.KH, p.sh, p.OH), wr = windows_of(w, p.pw, p.KW, p.sw, p.OW);
    for (int oh = hr.x; oh <= hr.y; oh++)
      for (int ow = wr.x; ow <= wr.y; ow++)
        acc += a.v[obase + oh * p.OW + ow] * avg_inv(oh, ow);
#else
    int hlo = h * p.OH / p.H, hhi = min(((h + 1) * p.OH - 1) / p.H, p.OH - 1);
    int wlo = w * p.OW / p.W, whi = min(((w + 1) * p.OW - 1) / p.W, p.OW - 1);
    for (int oh = hlo; oh <= hhi; oh++) {
      int hs = bin_start(oh, p.H, p.OH), he = bin_end(oh, p.H, p.OH);
      if (h < hs || h >= he) continue;
      for (int ow = wlo; ow <= whi; ow++) {
        int ws = bin_start(ow, p.W, p.OW), we = bin_end(ow, p.W, p.OW);
        if (w < ws || w >= we) continue;
        acc += a.v[obase + oh * p.OW + ow] / T((he - hs) * (we - ws));
      }
    }
#endif
    o.v[q] = acc;
  }
#endif
}
