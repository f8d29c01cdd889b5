#version 460
// out[i] = in[i] over n 32-bit words (copies of any dtype; buffers never
// partially overlap in a plan).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in_;
  int64_t n;
};
void main() {
  Params p = Params(push.params);
  BufU32 o = BufU32(p.out_), a = BufU32(p.in_);
  GRID_LOOP(i, p.n) o.v[i] = a.v[i];
}
