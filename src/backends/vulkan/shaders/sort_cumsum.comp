#version 460
// cumsum of x [outer, n, inner] along n (semantics: src/ops/op_sort.c; CPU
// reference: src/backends/cpu/cpu_sort.c). One workgroup per row (grid-
// stride over rows, uniform), 256 invocations: the row in chunks of 256, each
// scanned in shared memory (Hillis-Steele: log2 256 levels of sums), plus
// the sum of the chunks before it, carried with Kahan compensation. So f32
// sums stay in f32 (no double on devices without it) with an error of a
// few ulps of the partial sums. Integers wrap (the compensation stays 0).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x_, y_;
  int rows, n, inner, excl, rev;
};

shared T sh[256];

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x_), y = BufT(p.y_);
  const uint n = uint(p.n), inner = uint(p.inner), tid = gl_LocalInvocationID.x;
  for (uint r = gl_WorkGroupID.x; r < uint(p.rows); r += gl_NumWorkGroups.x) { // uniform
    const uint b = (r / inner) * n * inner + r % inner;
    precise T carry = T(0), comp = T(0); // running sum of earlier chunks, Kahan term
    for (uint base = 0u; base < n; base += 256u) {
      const uint e = base + tid;
      const uint at = b + (p.rev != 0 ? n - 1u - min(e, n - 1u) : e) * inner;
      const T v = e < n ? x.v[at] : T(0);
      sh[tid] = v;
      barrier();
      for (uint s = 1u; s < 256u; s <<= 1) { // inclusive scan
        const T add = tid >= s ? sh[tid - s] : T(0);
        barrier();
        sh[tid] += add;
        barrier();
      }
      const T part = p.excl != 0 ? (tid > 0u ? sh[tid - 1u] : T(0)) : sh[tid];
      precise T res = carry + (part - comp);
      if (e < n) y.v[at] = res;
      precise T t = sh[255] - comp; // carry += chunk total, compensated
      precise T s2 = carry + t;
      comp = (s2 - carry) - t;
      carry = s2;
      barrier();
    }
  }
}
