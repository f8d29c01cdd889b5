#version 460
// Batched 2-D transpose through a shared tile, per batch b:
// x [NI, NJ] (row stride isp) -> y [NJ, NI] (row stride osq). 32x8 threads,
// a 32x33 tile (the pad column avoids bank conflicts): loads run along j,
// stores along i, both coalesced. Batch offsets from the remaining dims
// (bd, with input/output strides bis/bos). Loop bounds depend only on the
// work group, so every invocation reaches each barrier.
#include "common.glsl"
#if defined(U_64)
#define E uvec2
layout(buffer_reference, std430, buffer_reference_align = 8) buffer BufE { uvec2 v[]; };
#else
#define E uint
#define BufE BufU32
#endif
layout(local_size_x = 32, local_size_y = 8) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t dst, src;
  uint ni, nj, isp, osq, nbatch;
  int nb;
  uint bd[8], bis[8], bos[8];
};
shared E tile[32][33];
void main() {
  Params p = Params(push.params);
  BufE y = BufE(p.dst), x = BufE(p.src);
  uint ni = p.ni, nj = p.nj, isp = p.isp, osq = p.osq;
  uint tiles_i = (ni + 31) / 32, tiles_j = (nj + 31) / 32;
  uint tx = gl_LocalInvocationID.x, ty = gl_LocalInvocationID.y;
  for (uint b = gl_WorkGroupID.z; b < p.nbatch; b += gl_NumWorkGroups.z) {
    uint r = b, io = 0, oo = 0;
    for (int k = p.nb - 1; k >= 0; k--) {
      uint q = r / p.bd[k], co = r - q * p.bd[k];
      r = q;
      io += co * p.bis[k];
      oo += co * p.bos[k];
    }
    for (uint ti = gl_WorkGroupID.y; ti < tiles_i; ti += gl_NumWorkGroups.y) {
      for (uint tj = gl_WorkGroupID.x; tj < tiles_j; tj += gl_NumWorkGroups.x) {
        uint i0 = ti * 32, j0 = tj * 32;
        for (uint rr = ty; rr < 32; rr += 8) {
          uint i = i0 + rr, j = j0 + tx;
          if (i < ni && j < nj) tile[rr][tx] = x.v[io + i * isp + j];
        }
        memoryBarrierShared();
        barrier();
        for (uint rr = ty; rr < 32; rr += 8) {
          uint j = j0 + rr, i = i0 + tx;
          if (i < ni && j < nj) y.v[oo + j * osq + i] = tile[tx][rr];
        }
        memoryBarrierShared();
        barrier();
      }
    }
  }
}
