#version 460
// One group of 256 threads over labels [R] (and the row losses [R] (A) at ws):
//   mode 0: loss [] = sum(row) / count (NaN when no row counts, as PyTorch)
//   mode 1: count (uint, at ws) of the rows that take part in the loss
// Each thread sums a fixed strided subset, then a fixed-order tree.
#include "common.glsl"
#if defined(T_F64)
#define A double
#define BufA BufF64
#define NAN_A packDouble2x32(uvec2(0u, 0x7ff80000u))
#else
#define A float
#define BufA BufF32
#define NAN_A uintBitsToFloat(0x7fc00000u)
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t lab, out_, ws;
  int64_t ign;
  uint R, C, mode, lab64;
};

shared A sh[256];
shared uint shn[256];

void main() {
  Params p = Params(push.params);
  uint lid = gl_LocalInvocationID.x;
  BufA row = BufA(p.ws);
  A t = A(0);
  uint n = 0u;
  for (uint r = lid; r < p.R; r += 256u) {
    int64_t l = p.lab64 != 0u ? BufI64(p.lab).v[r] : int64_t(BufI32(p.lab).v[r]);
    if (l != p.ign && l >= 0 && l < int64_t(p.C)) n++;
    if (p.mode == 0u) t += row.v[r];
  }
  sh[lid] = t;
  shn[lid] = n;
  barrier();
  for (uint s = 128u; s > 0u; s >>= 1) {
    if (lid < s) {
      sh[lid] += sh[lid + s];
      shn[lid] += shn[lid + s];
    }
    barrier();
  }
  if (lid == 0u) {
    if (p.mode == 0u)
      BufT(p.out_).v[0] = T(shn[0] > 0u ? sh[0] / A(shn[0]) : NAN_A);
    else
      BufU32(p.ws).v[0] = shn[0];
  }
}
