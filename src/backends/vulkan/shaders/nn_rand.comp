#version 460
// Random sources: a port of the counter-based RNG of core/internal.h
// (asg__mix64, asg__rng_*) and core/init.c (asg__rng_normal). Element i
// draws from counter i of key(seed, run count), the run count read on the
// device (the command buffer is recorded once and resubmitted each run).
// The arithmetic the CPU rounds step by step is `precise` (no FMA fusion).
//   out [n]; op 0: uniform [f0, f1); 1: normal(f0, f1); 2: bernoulli(f0)
// Bernoulli compares the 53 integer bits of u with thr = ceil(f0 * 2^53)
// (exactly u < f0), so it needs no doubles. NO_F64 (f32 on devices without
// shaderFloat64) approximates the uniform and the normal in float.
#include "common.glsl"
#if T_IS_FLOAT
#include "math64.glsl"
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, run, seed, thr;
#if defined(NO_F64) || !T_IS_FLOAT
  uint64_t f0_, f1_; // doubles of the C struct, unused here
#else
  double f0, f1;
#endif
  float f0_f, f1_f;
  uint n, op;
};

uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ul;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ul;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebul;
  return z ^ (z >> 31);
}
// the 53 high bits of asg__rng_bits(key, counter): u = bits53 * 2^-53
uint64_t bits53(uint64_t mkey, uint64_t counter) {
  return mix64(mkey ^ (counter * 0xd1b54a32d192ed03ul)) >> 11;
}

#if T_IS_FLOAT && !defined(NO_F64)
double rng_uniform(uint64_t mkey, uint64_t c) {
  return double(bits53(mkey, c)) * (1.0lf / 9007199254740992.0lf);
}
// asg__rng_normal: Box-Muller on counters 2c, 2c+1
double rng_normal(uint64_t mkey, uint64_t c) {
  double u1 = rng_uniform(mkey, 2ul * c), u2 = rng_uniform(mkey, 2ul * c + 1ul);
  if (u1 < 1e-300lf) u1 = 1e-300lf;
  precise double l = -2.0lf * m_log(u1);
  precise double a = 6.283185307179586lf * u2;
  precise double z = sqrt(l) * m_cos(a);
  return z;
}
#endif

void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.out_);
  uint64_t mkey = mix64(mix64(p.seed ^ mix64(BufU64(p.run).v[0] + 0x632be59bd9b4e019ul)));
  GRID_LOOP(i, p.n) {
    uint64_t c = uint64_t(i);
#if T_IS_FLOAT
    if (p.op == 0u) {
#if defined(NO_F64)
      float u = float(bits53(mkey, c)) * (1.0 / 9007199254740992.0);
      precise float v = p.f0_f + (p.f1_f - p.f0_f) * u;
      if (v >= p.f1_f && p.f1_f > p.f0_f) {
        uint b = floatBitsToUint(v);
        v = uintBitsToFloat(v > 0.0 ? b - 1u : (v < 0.0 ? b + 1u : 0x80000001u));
      }
      o.v[i] = v;
#else
      precise double d = p.f0 + (p.f1 - p.f0) * rng_uniform(mkey, c);
      T v = T(d);
      if (double(v) >= p.f1 && p.f1 > p.f0) { // round-up to hi: step toward lo
#if defined(T_F64)
        uint64_t b = packUint2x32(unpackDouble2x32(v));
        b = v > 0.0lf ? b - 1ul : (v < 0.0lf ? b + 1ul : 0x8000000000000001ul);
        v = packDouble2x32(unpackUint2x32(b));
#else
        uint b = floatBitsToUint(v);
        v = uintBitsToFloat(v > 0.0 ? b - 1u : (v < 0.0 ? b + 1u : 0x80000001u));
#endif
      }
      o.v[i] = v;
#endif
      continue;
    }
    if (p.op == 1u) {
#if defined(NO_F64)
      // float with full relative precision: log(u1) through 1 - u1 (exact in
      // integers) near 1, the angle reduced to [-pi, pi] in integers
      const float s53 = 1.0 / 9007199254740992.0;
      uint64_t b1 = bits53(mkey, 2ul * c), b2 = bits53(mkey, 2ul * c + 1ul);
      float l = b1 >= (1ul << 52) ? m_log1p(-float((1ul << 53) - b1) * s53)
                                  : m_log(max(float(b1) * s53, 1e-38));
      int64_t w = b2 < (1ul << 52) ? int64_t(b2) : int64_t(b2) - int64_t(1ul << 53);
      float z = sqrt(-2.0 * l) * m_cos(6.2831853 * (float(w) * s53));
      o.v[i] = p.f0_f + p.f1_f * z;
#else
      precise double d = p.f0 + p.f1 * rng_normal(mkey, c);
      o.v[i] = T(d);
#endif
      continue;
    }
#endif
    o.v[i] = bits53(mkey, c) < p.thr ? T(1) : T(0);
  }
}
