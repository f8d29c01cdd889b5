#version 460
// out[i] = value (converted like a C cast from double).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_;
  int64_t n;
  double value;
};
void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.out_);
  T v = T(p.value);
  GRID_LOOP(i, p.n) o.v[i] = v;
}
