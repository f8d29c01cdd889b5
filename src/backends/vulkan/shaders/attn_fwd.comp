#version 460
// Flash-attention forward, f32, D <= DMAX (32, 64 or 128):
//   q [NB,Tq,D], k, v [NB,Tk,D] -> o [NB,Tq,D]        (LSE_ONLY: k only -> lse [NB,Tq])
// One work group per (batch, tile of ROWS queries); L = DMAX/32 adjacent lanes
// share a query row, lane owning the 32 dims of vec4 columns lane + L*t
// (partial dots summed by subgroup shuffles). K/V tiles of BK keys go through
// shared memory (2 * BK * DMAX floats = 16 KiB); the softmax runs online in
// base 2 per chunk of SUB keys (one rescale of the accumulator per chunk).
// Causal: key tiles past the group's last query are never loaded, chunks past
// a row's diagonal are skipped.
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#include "common.glsl"
#include "math64.glsl"

#define L (DMAX / 32)  // lanes per query row
#define ROWS 64        // queries per work group
#define NT (ROWS * L)  // threads
#define BK (2048 / DMAX) // keys per shared tile
#define NC (DMAX / 4)  // vec4 columns of a row
#define SUB 16         // keys per online-softmax step
#define LOG2E 1.4426950408889634
#define LN2 0.6931471805599453
layout(local_size_x = NT) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t q, k, v, dout, lse, delta, out_;
  uint64_t scale_d_; // the C struct's double scale (unused in f32)
  float scale;
  uint NB, Tq, Tk, D, causal, mode;
};

shared vec4 ks[BK * NC];
#ifndef LSE_ONLY
shared vec4 vs[BK * NC];
#endif

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
  BufF32 qb = BufF32(p.q), kb = BufF32(p.k), vb = BufF32(p.v);
  // lanes of a row are adjacent invocations of one subgroup (shuffle partners)
  uint lid = gl_LocalInvocationID.x, me = gl_SubgroupID * gl_SubgroupSize + gl_SubgroupInvocationID;
  uint lane = me % L, row = me / L;
  uint NB = p.NB, Tq = p.Tq, Tk = p.Tk, D = p.D;
  bool causal = p.causal != 0u;
  float sl2 = p.scale * float(LOG2E);
  float ninf = m32_inf() * -1.0;
  uint ntiles = (Tq + ROWS - 1u) / ROWS;
  for (uint b = gl_WorkGroupID.y; b < NB; b += gl_NumWorkGroups.y)
    for (uint tx = gl_WorkGroupID.x; tx < ntiles; tx += gl_NumWorkGroups.x) {
      uint q0 = (ntiles - 1u - tx) * ROWS; // the longest causal rows first
      uint i = q0 + row;
      vec4 qr[8];
      [[unroll]] for (uint t = 0u; t < 8u; t++)
        qr[t] = i < Tq ? load4(qb, (b * Tq + i) * D, 4u * (lane + L * t), D) : vec4(0.0);
      float m = ninf, l = 0.0; // running max (base 2, scaled) and sum
#ifndef LSE_ONLY
      vec4 o[8];
      [[unroll]] for (uint t = 0u; t < 8u; t++) o[t] = vec4(0.0);
#endif
      uint jend = causal ? min(Tk, min(Tq, q0 + ROWS)) : Tk; // keys any row sees
      uint jrow = causal ? min(Tk, i + 1u) : Tk;             // keys this row sees
      for (uint j0 = 0u; j0 < jend; j0 += BK) {
        barrier();
        // [BK, DMAX] tiles, zero past Tk and D; consecutive threads read consecutive floats
        for (uint e = lid; e < BK * DMAX; e += NT) {
          uint r = e / DMAX, d = e % DMAX, j = j0 + r;
          bool ok = j < Tk && d < D;
          uint g = (b * Tk + j) * D + d;
          ks[e / 4u][e % 4u] = ok ? kb.v[g] : 0.0;
#ifndef LSE_ONLY
          vs[e / 4u][e % 4u] = ok ? vb.v[g] : 0.0;
#endif
        }
        barrier();
        for (uint s0 = 0u; s0 < BK; s0 += SUB) {
          uint jt = j0 + s0;
          if (jt >= jrow) break; // uniform over the row's lanes
          float sc[SUB];
          float cmax = ninf;
          [[unroll]] for (uint u = 0u; u < SUB; u++) {
            uint base = (s0 + u) * NC + lane;
            float a = 0.0;
            [[unroll]] for (uint t = 0u; t < 8u; t++) a += dot(qr[t], ks[base + L * t]);
            a = lane_sum(a) * sl2;
            sc[u] = jt + u < jrow ? a : ninf;
            cmax = max(cmax, sc[u]);
          }
          float mn = max(m, cmax); // finite: key jt is visible
          float alpha = m == ninf ? 0.0 : exp2(m - mn);
          float ps = 0.0;
#ifndef LSE_ONLY
          [[unroll]] for (uint t = 0u; t < 8u; t++) o[t] *= alpha;
#endif
          [[unroll]] for (uint u = 0u; u < SUB; u++) {
            float pu = jt + u < jrow ? exp2(sc[u] - mn) : 0.0;
            ps += pu;
#ifndef LSE_ONLY
            uint base = (s0 + u) * NC + lane;
            [[unroll]] for (uint t = 0u; t < 8u; t++) o[t] += pu * vs[base + L * t];
#endif
          }
          l = l * alpha + ps;
          m = mn;
        }
      }
      if (i < Tq) {
#ifdef LSE_ONLY
        if (lane == 0u) BufF32(p.out_).v[b * Tq + i] = m * float(LN2) + m_log(l);
#else
        // the lse too when the step has it as a further output (0: none)
        if (lane == 0u && p.lse != 0ul) BufF32(p.lse).v[b * Tq + i] = m * float(LN2) + m_log(l);
        BufF32 ob = BufF32(p.out_);
        float inv = 1.0 / l;
        uint off = (b * Tq + i) * D;
        [[unroll]] for (uint t = 0u; t < 8u; t++) {
          uint d0 = 4u * (lane + L * t);
          [[unroll]] for (uint e = 0u; e < 4u; e++)
            if (d0 + e < D) ob.v[off + d0 + e] = o[t][e] * inv;
        }
#endif
      }
    }
}
