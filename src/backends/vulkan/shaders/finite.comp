#version 460
// Anomaly mode (check_finite = ASG_CHECK_FINITE_STEP; the record is
// asg_finite_fault in runtime/inspect.h). in1 == 0: scans a step's output
// x and, unless an earlier step claimed the record, claims it for step1 at
// the first NaN / inf. in1 > 0: scans input in1 - 1 of step step1, only when
// the record names that step. Elements are tested by their bits (exponent
// all ones), which no float optimization can drop.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x, rec;
  uint n, step1, in1;
};
layout(buffer_reference, std430, buffer_reference_align = 8) buffer FiniteRec {
  uint step1;
  uint in1;
  int64_t index;
  uint64_t bits;
  int64_t in_index;
  uint64_t in_bits;
};
void main() {
  Params p = Params(push.params);
  FiniteRec f = FiniteRec(p.rec);
  const uint claimed = atomicAdd(f.step1, 0u);
  if (p.in1 == 0u ? claimed != 0u : claimed != p.step1) return;
  GRID_LOOP(i, p.n) {
#if defined(T_F64)
    const uint lo = BufU32(p.x).v[2u * i], hi = BufU32(p.x).v[2u * i + 1u];
    if ((hi & 0x7FF00000u) != 0x7FF00000u) continue;
    const uint64_t bits = uint64_t(lo) | (uint64_t(hi) << 32);
#else
    const uint b = BufU32(p.x).v[i];
    if ((b & 0x7F800000u) != 0x7F800000u) continue;
    const uint64_t bits = uint64_t(b);
#endif
    if (p.in1 == 0u) {
      if (atomicCompSwap(f.step1, 0u, p.step1) == 0u) {
        f.index = int64_t(i);
        f.bits = bits;
      }
    } else if (atomicCompSwap(f.in1, 0u, p.in1) == 0u) {
      f.in_index = int64_t(i);
      f.in_bits = bits;
    }
    return;
  }
}
