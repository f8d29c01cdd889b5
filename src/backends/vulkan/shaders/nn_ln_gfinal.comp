#version 460
// part [P,C] (A) -> dgamma [C]: the row chunks summed in order.
#include "common.glsl"
layout(local_size_x = 256) in;
#if defined(T_F64)
#define A double
#define BufA BufF64
#else
#define A float
#define BufA BufF32
#endif
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t part, out_;
  uint P, C;
};

void main() {
  Params p = Params(push.params);
  BufA part = BufA(p.part);
  BufT o = BufT(p.out_);
  GRID_LOOP(j, p.C) {
    A s = A(0);
    for (uint k = 0u; k < p.P; k++)
      s += part.v[k * p.C + j];
    o.v[j] = T(s);
  }
}
