#version 460
// pad (PAD) and its gradient (PAD_BWD) over nd <= 8 dims, one invocation
// per written element; maps and gather order as the CPU reference
// (src/runtime/resample.h, src/backends/cpu/cpu_resample.c). The gradient
// gathers the readers of each input element (no atomics: deterministic).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in0;
  int n, nd, mode;
  uint vlo, vhi; // the constant's bits (f32: vlo; f64: both)
  int od[8], id[8], before[8];
};

Params p;

// Input coordinate read by output coordinate o of dim d (-1: the constant).
int pad_src(int o, int d) {
  int c = o - p.before[d], in_ = p.id[d];
  if (c >= 0 && c < in_) return c;
  if (p.mode == 0) return -1;
  if (p.mode == 1) return c < 0 ? -c : 2 * (in_ - 1) - c;
  return c < 0 ? 0 : in_ - 1;
}

void main() {
  p = Params(push.params);
  BufT o = BufT(p.out_), a = BufT(p.in0);
  const int nd = p.nd;
#if defined(PAD_FWD)
#if defined(T_F64)
  const T value = packDouble2x32(uvec2(p.vlo, p.vhi));
#else
  const T value = uintBitsToFloat(p.vlo);
#endif
  GRID_LOOP(i, p.n) {
    int rem = int(i), off = 0, stride = 1;
    bool fill = false;
    for (int d = nd - 1; d >= 0; d--) {
      int c = pad_src(rem % p.od[d], d);
      rem /= p.od[d];
      fill = fill || c < 0;
      off += c * stride;
      stride *= p.id[d];
    }
    if (fill)
      o.v[i] = value;
    else
      o.v[i] = a.v[off];
  }
#else
  // readers of input coordinate c per dim: up to 3 ranges [lo, hi), ascending
  int rlo[24], rhi[24], nr[8], k[8], oc[8], ost[8];
  ost[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--)
    ost[d] = ost[d + 1] * p.od[d + 1];
  GRID_LOOP(i, p.n) {
    int rem = int(i);
    bool none = false;
    for (int d = nd - 1; d >= 0; d--) {
      int c = rem % p.id[d], b = p.before[d], in_ = p.id[d], on = p.od[d];
      rem /= p.id[d];
      int lo3[3], hi3[3], m = 0;
      if (p.mode == 2) {
        lo3[0] = c == 0 ? 0 : c + b, hi3[0] = c == in_ - 1 ? on : c + b + 1, m = 1;
      } else {
        if (p.mode == 1 && c > 0) lo3[m] = b - c, hi3[m] = b - c + 1, m++;
        lo3[m] = c + b, hi3[m] = c + b + 1, m++;
        if (p.mode == 1 && c < in_ - 1)
          lo3[m] = b + 2 * (in_ - 1) - c, hi3[m] = lo3[m] + 1, m++;
      }
      nr[d] = 0;
      for (int j = 0; j < m; j++) {
        int l = max(lo3[j], 0), h = min(hi3[j], on);
        if (l < h) rlo[3 * d + nr[d]] = l, rhi[3 * d + nr[d]] = h, nr[d]++;
      }
      none = none || nr[d] == 0;
    }
    T acc = T(0);
    if (!none) {
      for (int d = 0; d < nd; d++)
        k[d] = 0, oc[d] = rlo[3 * d];
      for (;;) {
        int off = 0;
        for (int d = 0; d < nd; d++)
          off += oc[d] * ost[d];
        acc += a.v[off];
        int d = nd - 1;
        for (; d >= 0; d--) { // next position: innermost dim first
          if (++oc[d] < rhi[3 * d + k[d]]) break;
          if (++k[d] < nr[d]) {
            oc[d] = rlo[3 * d + k[d]];
            break;
          }
          k[d] = 0, oc[d] = rlo[3 * d];
        }
        if (d < 0) break;
      }
    }
    o.v[i] = acc;
  }
#endif
}
