#version 460
// one_hot: idx [m] (i32 or i64) -> y [m, depth] of T: 1 at idx, 0 elsewhere
// (an all-zero row when idx is out of range, reported to fault).
#include "common.glsl"
#include "fault.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, idx, fault;
  uint total, depth;
  int idx64;
  uint step1;
};
void main() {
  Params p = Params(push.params);
  BufT y = BufT(p.dst);
  uint depth = p.depth;
  bool i64 = p.idx64 != 0;
  GRID_LOOP(e, p.total) {
    uint r = e / depth, col = e - r * depth;
    int64_t i = i64 ? BufI64(p.idx).v[r] : int64_t(BufI32(p.idx).v[r]);
    y.v[e] = i == int64_t(col) ? T(1) : T(0);
    if (col == 0u && (i < 0 || i >= int64_t(depth))) report_index(p.fault, p.step1, i);
  }
}
