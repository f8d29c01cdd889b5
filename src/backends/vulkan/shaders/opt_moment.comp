#version 460
// adam_moment:  o = m * beta + g * one_m
// adam_moment2: o = m * beta + (g * g) * one_m
// One rounding per operation, in the order of src/ops/op_optim.c (precise:
// no FMA contraction), as the CPU reference computes it.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t o, m, g;
#if defined(T_F64)
  double beta, one_m;
#else
  uint64_t beta_d, one_m_d; // the f64 values, unread (no Float64 needed)
#endif
  float beta_f, one_m_f;
  uint n;
  int second;
};
void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.o), m = BufT(p.m), g = BufT(p.g);
#if defined(T_F64)
  T beta = p.beta, one_m = p.one_m;
#else
  T beta = p.beta_f, one_m = p.one_m_f;
#endif
  bool second = p.second != 0;
  GRID_LOOP(i, p.n) {
    T gi = g.v[i];
    precise T x = second ? gi * gi : gi;
    precise T a = m.v[i] * beta;
    precise T b = x * one_m;
    precise T r = a + b;
    o.v[i] = r;
  }
}
