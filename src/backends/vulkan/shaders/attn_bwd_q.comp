#version 460
// Attention backward for q, f32, D <= DMAX (32, 64 or 128):
//   q, do [NB,Tq,D], k, v [NB,Tk,D], lse, delta [NB,Tq] -> dq [NB,Tq,D]
//   dq_i = scale * sum_j p_ij (do_i.v_j - delta_i) k_j,  p_ij = exp(s_ij - lse_i)
// Layout as attn_fwd.comp: one work group per (batch, tile of ROWS queries),
// L = DMAX/32 lanes per query row, K/V tiles of BK keys in shared memory;
// p is recomputed from lse (no running max). Causal: key tiles past the
// group's last query are never loaded, chunks past a row's diagonal skipped.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"

#define L (DMAX / 32)
#define ROWS 64
#define NT (ROWS * L)
#define BK (2048 / DMAX)
#define NC (DMAX / 4)
#define SUB 8 // keys per unrolled step
#define LOG2E 1.4426950408889634
layout(local_size_x = NT) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t q, k, v, dout, lse, delta, out_;
  uint64_t scale_d_;
  float scale;
  uint NB, Tq, Tk, D, causal, mode;
};

shared vec4 ks[BK * NC];
shared vec4 vs[BK * NC];

float lane_sum(float x) {
#if L >= 2
  x += subgroupShuffleXor(x, 1u);
#endif
#if L >= 4
  x += subgroupShuffleXor(x, 2u);
#endif
  return x;
}

vec4 load4(BufF32 b, uint off, uint d0, uint D) {
  vec4 r = vec4(0.0);
  [[unroll]] for (uint e = 0u; e < 4u; e++)
    if (d0 + e < D) r[e] = b.v[off + d0 + e];
  return r;
}

void main() {
  Params p = Params(push.params);
  BufF32 qb = BufF32(p.q), kb = BufF32(p.k), vb = BufF32(p.v), dob = BufF32(p.dout);
  // lanes of a row are adjacent invocations of one subgroup (shuffle partners)
  uint lid = gl_LocalInvocationID.x, me = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
  uint lane = me % L, row = me / L;
  uint NB = p.NB, Tq = p.Tq, Tk = p.Tk, D = p.D;
  bool causal = p.causal != 0u;
  float sl2 = p.scale * float(LOG2E);
  uint ntiles = (Tq + ROWS - 1u) / ROWS;
  for (uint b = gl_WorkGroupID.y; b < NB; b += gl_NumWorkGroups.y)
    for (uint tx = gl_WorkGroupID.x; tx < ntiles; tx += gl_NumWorkGroups.x) {
      uint q0 = (ntiles - 1u - tx) * ROWS; // the longest causal rows first
      uint i = q0 + row;
      vec4 qr[8], dr[8], acc[8];
      float lse2 = 0.0, del = 0.0;
      [[unroll]] for (uint t = 0u; t < 8u; t++) {
        uint off = (b * Tq + i) * D, d0 = 4u * (lane + L * t);
        qr[t] = i < Tq ? load4(qb, off, d0, D) : vec4(0.0);
        dr[t] = i < Tq ? load4(dob, off, d0, D) : vec4(0.0);
        acc[t] = vec4(0.0);
      }
      if (i < Tq) {
        lse2 = BufF32(p.lse).v[b * Tq + i] * float(LOG2E);
        del = BufF32(p.delta).v[b * Tq + i];
      }
      uint jend = causal ? min(Tk, min(Tq, q0 + ROWS)) : Tk;
      uint jrow = causal ? min(Tk, i + 1u) : Tk;
      for (uint j0 = 0u; j0 < jend; j0 += BK) {
        barrier();
        for (uint e = lid; e < BK * DMAX; e += NT) {
          uint r = e / DMAX, d = e % DMAX, j = j0 + r;
          bool ok = j < Tk && d < D;
          uint g = (b * Tk + j) * D + d;
          ks[e / 4u][e % 4u] = ok ? kb.v[g] : 0.0;
          vs[e / 4u][e % 4u] = ok ? vb.v[g] : 0.0;
        }
        barrier();
        for (uint s0 = 0u; s0 < BK; s0 += SUB) {
          uint jt = j0 + s0;
          if (jt >= jrow) break; // uniform over the row's lanes
          [[unroll]] for (uint u = 0u; u < SUB; u++) {
            uint base = (s0 + u) * NC + lane;
            float s = 0.0, dp = 0.0;
            [[unroll]] for (uint t = 0u; t < 8u; t++) {
              s += dot(qr[t], ks[base + L * t]);
              dp += dot(dr[t], vs[base + L * t]);
            }
            s = lane_sum(s);
            dp = lane_sum(dp);
            float pr = jt + u < jrow ? exp2(s * sl2 - lse2) : 0.0;
            float ds = pr * (dp - del);
            [[unroll]] for (uint t = 0u; t < 8u; t++) acc[t] += ds * ks[base + L * t];
          }
        }
      }
      if (i < Tq) {
        BufF32 ob = BufF32(p.out_);
        uint off = (b * Tq + i) * D;
        [[unroll]] for (uint t = 0u; t < 8u; t++) {
          uint d0 = 4u * (lane + L * t);
          [[unroll]] for (uint e = 0u; e < 4u; e++)
            if (d0 + e < D) ob.v[off + d0 + e] = acc[t][e] * p.scale;
        }
      }
    }
}
