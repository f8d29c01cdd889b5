#version 460
// rope (contract: src/ops/op_nn.c; reference: src/backends/cpu/cpu_rope.c).
// One invocation per pair (row r of x [R, D], k < h = D/2) writes
//   y[r, k]     = x[r, k]     * cos[k]     - x[r, k + h] * sin[k]
//   y[r, k + h] = x[r, k + h] * cos[k + h] + x[r, k]     * sin[k + h]
// in T. Row r's cos/sin rows start at the digits of r over dim[] times
// st[0][] / st[1][] (asg__rope_plan: 0 on broadcast dims); along D the
// tables advance by lc / ls (1, or 0 when broadcast over D).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x, cs, sn, out_;
  uint n, h, nd, lc, ls, pad_; // n = R * h pairs
  uint dim[8];
  uint st[2][8];
};

void main() {
  Params p = Params(push.params);
  BufT x = BufT(p.x), c = BufT(p.cs), s = BufT(p.sn), o = BufT(p.out_);
  const uint h = p.h, lc = p.lc, ls = p.ls;
  const int nd = int(p.nd);
  GRID_LOOP(i, p.n) {
    uint r = i / h, k = i - r * h, q = r, oc = 0u, os = 0u;
    for (int d = nd - 1; d >= 0; d--) {
      uint nq = q / p.dim[d], idx = q - nq * p.dim[d];
      q = nq;
      oc += idx * p.st[0][d];
      os += idx * p.st[1][d];
    }
    uint xo = r * 2u * h + k;
    T a = x.v[xo], b = x.v[xo + h];
    o.v[xo] = a * c.v[oc + k * lc] - b * s.v[os + k * ls];
    o.v[xo + h] = b * c.v[oc + (k + h) * lc] + a * s.v[os + (k + h) * ls];
  }
}
