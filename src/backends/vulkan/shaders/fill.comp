#version 460
// out[i] = value, converted on the host like a C cast from double. The
// double travels as bits so that non-f64 variants need no Float64 support.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_;
  int64_t n;
  uint64_t dbits;
  int64_t ival;
  float fval;
};
void main() {
  Params p = Params(push.params);
  BufT o = BufT(p.out_);
#if defined(T_F64)
  T v = uint64BitsToDouble(p.dbits);
#elif defined(T_F32)
  T v = p.fval;
#else
  T v = T(p.ival);
#endif
  GRID_LOOP(i, p.n) o.v[i] = v;
}
