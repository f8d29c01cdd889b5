#version 460
// cache_write: cache [outer, tmax, inner] (dst aliases it), value
// [outer, t, inner] in 4-byte (or 8-byte, -DU_64) elements:
// dst[o, pos + j] = value[o, j] (src/backends/cpu/cpu_shape.c). pos is read
// here (i32 or i64). Checked programs (fault != 0): a pos outside
// [0, tmax - t] writes nothing and is reported (fault.glsl), as the CPU
// stops before the step; unchecked: the rows that land in [0, tmax).
#include "common.glsl"
#include "fault.glsl"
#if defined(U_64)
#define BufU BufU64
#else
#define BufU BufU32
#endif
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, src, pos_, fault;
  int64_t t, tmax;
  uint total, inner;
  int pos64;
  uint step1;
};
void main() {
  Params p = Params(push.params);
  int64_t pos = p.pos64 != 0 ? BufI64(p.pos_).v[0] : int64_t(BufI32(p.pos_).v[0]);
  if (pos < 0 || pos > p.tmax - p.t) {
    if (p.fault != 0ul) {
      if (gl_GlobalInvocationID.x == 0u) report_index(p.fault, p.step1, pos);
      return;
    }
    if (pos >= p.tmax || pos <= -p.t) return; // no row lands (pos + j cannot overflow)
  }
  BufU y = BufU(p.dst), v = BufU(p.src);
  uint t = uint(p.t), tmax = uint(p.tmax), inner = p.inner;
  GRID_LOOP(e, p.total) {
    uint k = e % inner, r = e / inner;
    uint j = r % t, o = r / t;
    int64_t row = pos + int64_t(j);
    if (row >= 0 && row < p.tmax) y.v[(o * tmax + uint(row)) * inner + k] = v.v[e];
  }
}
