#version 460
// Attention backward for k and v, f32, D <= DMAX (32, 64 or 128):
//   q, do [NB,Tq,D], k, v [NB,Tk,D], lse, delta [NB,Tq] -> dkv [2,NB,Tk,D]
//   dk_j = scale * sum_i p_ij (do_i.v_j - delta_i) q_i,  dv_j = sum_i p_ij do_i
// The transpose of attn_bwd_q.comp: one work group per (batch, tile of ROWS
// keys), L = DMAX/32 lanes per key row (k, v, dk, dv of its 32 dims in
// registers), Q/dO tiles of BQ queries (with their lse, delta) in shared
// memory. Causal: query tiles start at the group's first key (earlier
// queries see none of its keys), chunks before a row's diagonal are skipped.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"

#define L (DMAX / 32)
#define ROWS 64
#define NT (ROWS * L)
#define BQ (2048 / DMAX)
#define NC (DMAX / 4)
#define SUB 8
#define LOG2E 1.4426950408889634
layout(local_size_x = NT) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t q, k, v, dout, lse, delta, out_;
  uint64_t scale_d_;
  float scale;
  uint NB, Tq, Tk, D, causal, mode;
};

shared vec4 qs[BQ * NC];
shared vec4 dos[BQ * NC];
shared float lse2s[BQ], dels[BQ];

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
  BufF32 lb = BufF32(p.lse), deb = BufF32(p.delta);
  // lanes of a row are adjacent invocations of one subgroup (shuffle partners)
  uint lid = gl_LocalInvocationID.x, me = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
  uint lane = me % L, row = me / L;
  uint NB = p.NB, Tq = p.Tq, Tk = p.Tk, D = p.D;
  bool causal = p.causal != 0u;
  float sl2 = p.scale * float(LOG2E);
  uint ntiles = (Tk + ROWS - 1u) / ROWS;
  for (uint b = gl_WorkGroupID.y; b < NB; b += gl_NumWorkGroups.y)
    for (uint k0 = gl_WorkGroupID.x * ROWS; k0 < Tk; k0 += gl_NumWorkGroups.x * ROWS) {
      uint j = k0 + row;
      vec4 kr[8], vr[8], dk[8], dv[8];
      [[unroll]] for (uint t = 0u; t < 8u; t++) {
        uint off = (b * Tk + j) * D, d0 = 4u * (lane + L * t);
        kr[t] = j < Tk ? load4(kb, off, d0, D) : vec4(0.0);
        vr[t] = j < Tk ? load4(vb, off, d0, D) : vec4(0.0);
        dk[t] = vec4(0.0);
        dv[t] = vec4(0.0);
      }
      uint istart = causal ? k0 : 0u; // first query any row of the tile sees
      uint irow = causal ? j : 0u;    // first query this row sees
      for (uint i0 = istart; i0 < Tq; i0 += BQ) {
        barrier();
        for (uint e = lid; e < BQ * DMAX; e += NT) {
          uint r = e / DMAX, d = e % DMAX, i = i0 + r;
          bool ok = i < Tq && d < D;
          uint g = (b * Tq + i) * D + d;
          qs[e / 4u][e % 4u] = ok ? qb.v[g] : 0.0;
          dos[e / 4u][e % 4u] = ok ? dob.v[g] : 0.0;
        }
        for (uint r = lid; r < BQ; r += NT) {
          bool ok = i0 + r < Tq;
          lse2s[r] = ok ? lb.v[b * Tq + i0 + r] * float(LOG2E) : 0.0;
          dels[r] = ok ? deb.v[b * Tq + i0 + r] : 0.0;
        }
        barrier();
        for (uint s0 = 0u; s0 < BQ; s0 += SUB) {
          uint it = i0 + s0;
          if (it >= Tq) break;
          if (it + SUB <= irow) continue; // uniform over the row's lanes
          [[unroll]] for (uint u = 0u; u < SUB; u++) {
            uint base = (s0 + u) * NC + lane;
            float s = 0.0, dp = 0.0;
            [[unroll]] for (uint t = 0u; t < 8u; t++) {
              s += dot(kr[t], qs[base + L * t]);
              dp += dot(vr[t], dos[base + L * t]);
            }
            s = lane_sum(s);
            dp = lane_sum(dp);
            uint i = it + u;
            float pr = i >= irow && i < Tq ? exp2(s * sl2 - lse2s[s0 + u]) : 0.0;
            float ds = pr * (dp - dels[s0 + u]);
            [[unroll]] for (uint t = 0u; t < 8u; t++) {
              dv[t] += pr * dos[base + L * t];
              dk[t] += ds * qs[base + L * t];
            }
          }
        }
      }
      if (j < Tk) {
        BufF32 ob = BufF32(p.out_);
        uint off = (b * Tk + j) * D, half_ = NB * Tk * D;
        [[unroll]] for (uint t = 0u; t < 8u; t++) {
          uint d0 = 4u * (lane + L * t);
          [[unroll]] for (uint e = 0u; e < 4u; e++)
            if (d0 + e < D) {
              ob.v[off + d0 + e] = dk[t][e] * p.scale;
              ob.v[half_ + off + d0 + e] = dv[t][e];
            }
        }
      }
    }
}
