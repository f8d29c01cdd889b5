#version 460
// scatter_add (the copy y = x is a separate dispatch before this one):
// y [outer, n, inner] += src [outer, m, inner] at rows idx [m] (i32 or i64);
// out-of-range indices are ignored (and reported to fault). One invocation per src element with an
// atomic add: floats by compare-and-swap loops on their bit patterns (no
// float atomics assumed), so f32/f64 duplicates add in arbitrary order.
#if defined(T_F64) || defined(T_I64)
#extension GL_EXT_shader_atomic_int64 : require
#endif
#include "common.glsl"
#include "fault.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, idx, src, fault;
  uint total, m, n, inner;
  int idx64;
  uint step1;
};
void main() {
  Params p = Params(push.params);
  uint m = p.m, n = p.n, inner = p.inner;
  bool i64 = p.idx64 != 0;
  BufT s = BufT(p.src);
  GRID_LOOP(e, p.total) {
    uint k = e % inner, r = e / inner;
    uint j = r % m, o = r / m;
    int64_t i = i64 ? BufI64(p.idx).v[j] : int64_t(BufI32(p.idx).v[j]);
    if (i < 0 || i >= int64_t(n)) {
      if (k == 0u) report_index(p.fault, p.step1, i);
      continue;
    }
    uint t = (o * n + uint(i)) * inner + k;
    T v = s.v[e];
#if defined(T_F32)
    BufU32 y = BufU32(p.dst);
    uint old = y.v[t];
    for (;;) {
      uint prev = atomicCompSwap(y.v[t], old, floatBitsToUint(uintBitsToFloat(old) + v));
      if (prev == old) break;
      old = prev;
    }
#elif defined(T_F64)
    BufU64 y = BufU64(p.dst);
    uint64_t old = y.v[t];
    for (;;) {
      uint64_t prev =
          atomicCompSwap(y.v[t], old, doubleBitsToUint64(uint64BitsToDouble(old) + v));
      if (prev == old) break;
      old = prev;
    }
#else
    atomicAdd(BufT(p.dst).v[t], v);
#endif
  }
}
