#version 460
// upsample (UP_FWD) and its gradient (UP_BWD) of x [planes, H, W] <-> y
// [planes, OH, OW], one invocation per written element; maps, weights and
// gather order as the CPU reference (src/runtime/resample.h,
// src/backends/cpu/cpu_resample.c). 'nearest' indices are float32 (as
// PyTorch) in both variants; linear coordinates are in T. `precise` keeps
// the compiler from contracting them into FMAs (the CPU rounds each step).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in0;
  int planes, H, W, OH, OW, mode, align;
  float rn[2], rf[2];
  uint rd[4]; // the f64 linear ratios' bits (h lo, h hi, w lo, w hi)
};

Params p;
bool al;

int near_src(float r, int o, int in_) {
  precise float v = float(o) * r;
  return min(int(floor(v)), in_ - 1);
}

// The smallest o in [0, on] whose nearest source is >= t (on if none).
int near_first(float r, int t, int in_, int on) {
  if (t <= 0) return 0;
  if (t >= in_) return on;
  float e = r > 0.0 ? ceil(float(t) / r) : float(on);
  int o = e < float(on) ? int(e) : on;
  while (o > 0 && near_src(r, o - 1, in_) >= t)
    o--;
  while (o < on && near_src(r, o, in_) < t)
    o++;
  return o;
}

struct Taps {
  int i0, i1;
  T l0, l1;
};

Taps lin_taps(T r, int o, int in_) {
  Taps t;
  precise T real = al ? r * T(o) : r * (T(o) + T(0.5)) - T(0.5);
  if (!al && real < T(0)) real = T(0);
  t.i0 = min(int(real), in_ - 1);
  precise T l1 = real - T(t.i0);
  t.l1 = clamp(l1, T(0), T(1));
  t.l0 = T(1) - t.l1;
  t.i1 = t.i0 + (t.i0 < in_ - 1 ? 1 : 0);
  return t;
}

// The smallest o in [0, on] whose linear i0 is >= t (on if none).
int lin_first(T r, int t, int in_, int on) {
  if (t <= 0) return 0;
  if (t >= in_) return on;
  T e = r > T(0) ? ceil(al ? T(t) / r : (T(t) + T(0.5)) / r - T(0.5)) : T(on);
  int o = e <= T(0) ? 0 : e < T(on) ? int(e) : on;
  while (o > 0 && lin_taps(r, o - 1, in_).i0 >= t)
    o--;
  while (o < on && lin_taps(r, o, in_).i0 < t)
    o++;
  return o;
}

T lin_weight(T r, int o, int i, int in_) {
  Taps t = lin_taps(r, o, in_);
  return (t.i0 == i ? t.l0 : T(0)) + (t.i1 == i ? t.l1 : T(0));
}

void main() {
  p = Params(push.params);
  al = p.align != 0;
  BufT o = BufT(p.out_), a = BufT(p.in0);
  const bool near = p.mode == 0;
#if defined(T_F64)
  const T rh = packDouble2x32(uvec2(p.rd[0], p.rd[1])), rw = packDouble2x32(uvec2(p.rd[2], p.rd[3]));
#else
  const T rh = p.rf[0], rw = p.rf[1];
#endif
#if defined(UP_FWD)
  GRID_LOOP(i, p.planes * p.OH * p.OW) {
    int q = int(i), ow = q % p.OW, t = q / p.OW, oh = t % p.OH, pl = t / p.OH;
    int base = pl * p.H * p.W;
    if (near) {
      o.v[q] = a.v[base + near_src(p.rn[0], oh, p.H) * p.W + near_src(p.rn[1], ow, p.W)];
      continue;
    }
    Taps th = lin_taps(rh, oh, p.H), tw = lin_taps(rw, ow, p.W);
    int r0 = base + th.i0 * p.W, r1 = base + th.i1 * p.W;
    o.v[q] = th.l0 * (tw.l0 * a.v[r0 + tw.i0] + tw.l1 * a.v[r0 + tw.i1]) +
             th.l1 * (tw.l0 * a.v[r1 + tw.i0] + tw.l1 * a.v[r1 + tw.i1]);
  }
#else
  GRID_LOOP(i, p.planes * p.H * p.W) {
    int q = int(i), iw = q % p.W, t = q / p.W, ih = t % p.H, pl = t / p.H;
    int base = pl * p.OH * p.OW;
    int hlo = near ? near_first(p.rn[0], ih, p.H, p.OH) : lin_first(rh, ih - 1, p.H, p.OH);
    int hhi = near ? near_first(p.rn[0], ih + 1, p.H, p.OH) : lin_first(rh, ih + 1, p.H, p.OH);
    int wlo = near ? near_first(p.rn[1], iw, p.W, p.OW) : lin_first(rw, iw - 1, p.W, p.OW);
    int whi = near ? near_first(p.rn[1], iw + 1, p.W, p.OW) : lin_first(rw, iw + 1, p.W, p.OW);
    T acc = T(0);
    for (int oh = hlo; oh < hhi; oh++) {
      int g = base + oh * p.OW;
      T s = T(0);
      if (near) {
        for (int ow = wlo; ow < whi; ow++)
          s += a.v[g + ow];
        acc += s;
        continue;
      }
      for (int ow = wlo; ow < whi; ow++)
        s += lin_weight(rw, ow, iw, p.W) * a.v[g + ow];
      acc += lin_weight(rh, oh, ih, p.H) * s;
    }
    o.v[q] = acc;
  }
#endif
}
