#version 460
// adam_param: the new parameter from p, m, v [n] of T and the per-step
// scalars lr, bc1, bc2 (one element each, dtype S), read on the device:
//   step = lr / bc1, sbc2 = sqrt(bc2), dec = 1 - lr * wd   (in S, then T)
//   o = (wd != 0 ? p * dec : p) - step * (m / (sqrt(v) / sbc2 + eps))
// One rounding per operation (precise: no FMA contraction).
#include "common.glsl"
#if defined(S_F64)
#define S double
#define BufS BufF64
#else
#define S float
#define BufS BufF32
#endif
#if defined(T_F64) || defined(S_F64) || defined(EXACT_F64)
#define HAS_F64 1
#endif
// f32 division and sqrt are not correctly rounded on every GPU (Vulkan
// allows 2.5 ulp; NVIDIA's are approximate): where doubles exist, do them in
// f64 and round once, which gives exactly the IEEE f32 result (53 >= 2*24+2
// bits make the double rounding innocuous), so parameters match the CPU.
#if defined(T_F32) && defined(HAS_F64)
#define TDIV(a, b) float(double(a) / double(b))
#define TSQRT(a) float(sqrt(double(a)))
#else
#define TDIV(a, b) ((a) / (b))
#define TSQRT(a) sqrt(a)
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t o, p, m, v, lr, bc1, bc2;
#if defined(HAS_F64)
  double eps, wd;
#else
  uint64_t eps_d, wd_d; // the f64 values, unread (no Float64 needed)
#endif
  float eps_f, wd_f;
  uint n;
  int decay;
};
void main() {
  Params q = Params(push.params);
  S lr = BufS(q.lr).v[0], bc1 = BufS(q.bc1).v[0], bc2 = BufS(q.bc2).v[0];
#if defined(S_F64)
  S wd = q.wd;
#else
  S wd = q.wd_f;
#endif
#if defined(T_F64)
  T eps = q.eps;
#else
  T eps = q.eps_f;
#endif
  precise S s_step = lr / bc1;
  precise S s_sbc2 = sqrt(bc2);
  precise S s_lw = lr * wd;
  precise S s_dec = S(1) - s_lw;
  T step = T(s_step), sbc2 = T(s_sbc2), dec = T(s_dec);
  bool decay = q.decay != 0;
  BufT o = BufT(q.o), p = BufT(q.p), m = BufT(q.m), v = BufT(q.v);
  GRID_LOOP(i, q.n) {
    T pi = p.v[i];
    precise T pd = decay ? pi * dec : pi;
    precise T sv = TSQRT(v.v[i]);
    precise T den = TDIV(sv, sbc2) + eps;
    precise T qq = TDIV(m.v[i], den);
    precise T sq = step * qq;
    precise T r = pd - sq;
    o.v[i] = r;
  }
}
