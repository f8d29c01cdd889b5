#version 460
// scatter_add without atomics (devices lacking 64-bit buffer atomics): one
// invocation per output element y [outer, n, inner] scans idx [m] and adds
// the matching src [outer, m, inner] entries in j order, as the CPU does
// (deterministic, bit-identical); it also does the copy y = x itself, so it
// works in place. Cost O(outer * n * inner * m): a fallback only. The
// invocations of output row 0 report out-of-range indices to fault.
#include "common.glsl"
#include "fault.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, x, idx, src, fault;
  uint total, m, n, inner;
  int idx64;
  uint step1;
};
void main() {
  Params p = Params(push.params);
  uint m = p.m, n = p.n, inner = p.inner;
  bool i64 = p.idx64 != 0;
  BufT y = BufT(p.dst), x = BufT(p.x), s = BufT(p.src);
  GRID_LOOP(e, p.total) {
    uint k = e % inner, r = e / inner;
    uint i = r % n, o = r / n;
    T acc = x.v[e];
    for (uint j = 0; j < m; j++) {
      int64_t ij = i64 ? BufI64(p.idx).v[j] : int64_t(BufI32(p.idx).v[j]);
      if (ij == int64_t(i)) acc += s.v[(o * m + j) * inner + k];
      if (e == 0u && (ij < 0 || ij >= int64_t(n))) report_index(p.fault, p.step1, ij);
    }
    y.v[e] = acc;
  }
}
