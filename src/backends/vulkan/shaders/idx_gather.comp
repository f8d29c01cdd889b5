#version 460
// gather: x [outer, n, len] units, idx [m] (i32 or i64) -> y [outer, m, len];
// y[o, j] = x[o, idx[j]], zeros where idx[j] is outside [0, n) (reported to
// fault, fault.glsl). Consecutive
// invocations take consecutive units of a row: an embedding lookup [V,C] by
// [B,T] reads whole contiguous rows.
#include "common.glsl"
#include "fault.glsl"
#if defined(U_128)
layout(buffer_reference, std430, buffer_reference_align = 16) buffer BufU { uvec4 v[]; };
#define UZERO uvec4(0)
#elif defined(U_64)
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufU { uvec2 v[]; };
#define UZERO uvec2(0)
#else
#define BufU BufU32
#define UZERO 0u
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, src, idx, fault;
  uint total, m, n, len;
  int idx64;
  uint step1;
};
void main() {
  Params p = Params(push.params);
  BufU y = BufU(p.dst), x = BufU(p.src);
  uint m = p.m, n = p.n, len = p.len;
  bool i64 = p.idx64 != 0;
  GRID_LOOP(e, p.total) {
    uint k = e % len, r = e / len;
    uint j = r % m, o = r / m;
    int64_t i = i64 ? BufI64(p.idx).v[j] : int64_t(BufI32(p.idx).v[j]);
    bool ok = i >= 0 && i < int64_t(n);
    y.v[e] = ok ? x.v[(o * n + uint(i)) * len + k] : UZERO;
    if (!ok && k == 0u) report_index(p.fault, p.step1, i);
  }
}
