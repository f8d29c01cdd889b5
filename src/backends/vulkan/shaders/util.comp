#version 460
// run count += 1 (the RNG key of the next run), at the end of every run.
#include "common.glsl"
layout(local_size_x = 1) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t counter;
};
void main() {
  Params p = Params(push.params);
  BufU64(p.counter).v[0] += 1ul;
}
