#version 460
// Convolutions as implicit GEMMs, one per group and K split (work group z),
// with 64x64 output tiles over 16-deep slices of K staged in shared memory;
// each of the 64 invocations owns an 8x8 block (rows ty*4 + [0,4) and
// 32 + ty*4 + [0,4), columns likewise). The operands are read straight from
// the tensors (no im2col buffer) and every output element is written once
// (per K split): no atomics.
//   CONV_FWD  x [N,C,H,W], w [O,Cg,KH,KW] -> y [N,O,OH,OW]:
//             C[m=o, j=(n,oh,ow)] = sum_{k=(c,kh,kw)} w[o,k] * x(window)
//   CONV_BWDI dy [N,O,OH,OW], w -> dx [N,C,H,W] (also conv_transpose2d):
//             C[m=c, j=(n,h,w)] = sum_{k=(o,kh,kw)} w[o,c,kh,kw] * dy(positions reading h,w)
//   CONV_BWDW dy, x [N,C,H,W] -> dw [O,Cg,KH,KW]:
//             C[m=o, j=(c,kh,kw)] = sum_{k=(n,oh,ow)} dy[n,o,oh,ow] * x(window)
// Split-K (S > 1, for outputs with too few tiles to fill a GPU): work group
// z = g*S + sp sums only k in [sp*KC, sp*KC + KC) and writes its partial
// output to ws[sp][...] (same index as out); conv_splitk.comp then adds the
// S partials in a fixed order (deterministic, no atomics).
// An invocation loads the same tile-relative k positions at every K step,
// so it keeps them as mixed-radix digits advanced by BK (no integer division
// in the K loop: divisions are slow on every device, scalarized on CPUs).
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require
#define WG 64         // invocations per work group, 8 x 8
#define LD (1024 / WG) // elements of each 64x16 operand tile one invocation loads
layout(local_size_x = WG) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, in0, in1, ws;
  int N, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, G;
  int Cg, Og, KK, CKK, OHW, HW;
  int M, NC, K; // GEMM sizes of one group: C[M,NC] = A[M,K] B[K,NC]
  int S, KC, OUTN; // K splits, K per split (multiple of BK), output elements
};

#define BM 64
#define BN 64
#define BK 16
#if defined(T_F64)
#define T4 dvec4
#else
#define T4 vec4
#endif
// k-major tiles of 4-vectors: an invocation reads 4 vectors per k for 64 fmas
// (CPU drivers pay per memory access, not per element)
shared T4 As[BK][BM / 4];
shared T4 Bs[BK][BN / 4];

// k as digits (hi, mid, lo) of radices (-, R1, R2): (c|o, kh, kw) or (n, oh, ow)
ivec3 digits(int k, int R1, int R2) {
  R1 = max(R1, 1), R2 = max(R2, 1); // empty dims: K = 0, the digits go unused
  int hi = k / (R1 * R2), r = k - hi * R1 * R2, mid = r / R2;
  return ivec3(hi, mid, r - mid * R2);
}
// d += s (s from digits(BK, ...)): each digit carries at most once
ivec3 advance(ivec3 d, ivec3 s, int R1, int R2) {
  d.z += s.z;
  if (d.z >= R2) d.z -= R2, d.y++;
  d.y += s.y;
  if (d.y >= R1) d.y -= R1, d.x++;
  d.x += s.x;
  return d;
}

#if defined(CONV_BWDI)
// t / s for 0 <= t < 2^22 without an integer division (s >= 1)
int small_div(int t, int s, float rs) {
  if (t >= (1 << 22)) return t / s;
  int q = int(float(t) * rs);
  if (q * s > t) q--;
  else if ((q + 1) * s <= t) q++;
  return q;
}
#endif

void main() {
  Params p = Params(push.params);
  BufT in0 = BufT(p.in0), in1 = BufT(p.in1);
  int t = int(gl_LocalInvocationIndex), tx = t % 8, ty = t / 8;
  int tm_n = (p.M + BM - 1) / BM, tn_n = (p.NC + BN - 1) / BN;
  // Tile-relative positions this invocation loads: A at (am + AS*i, ak),
  // B at (bk0 + BS*i, bn) or, for the weight gradient, (ak, am + AS*i).
  int ak = t % BK, am = t / BK;
#define AS (WG / BK)
  int bn = t % BN, bk0 = t / BN;
#define BS (WG / BN)
#if defined(CONV_BWDW)
  int R1 = p.OH, R2 = p.OW; // k = (n, oh, ow)
#else
  int R1 = p.KH, R2 = p.KW; // k = (c|o, kh, kw)
#endif
  R1 = max(R1, 1), R2 = max(R2, 1);
  ivec3 kstep = digits(BK, R1, R2);
#if !defined(CONV_BWDW)
  float rsh = 1.0 / float(p.sh), rsw = 1.0 / float(p.sw);
#endif
  int S = max(p.S, 1);

  // Loops are uniform over the work group (barriers inside are legal).
  for (int z = int(gl_WorkGroupID.z); z < p.G * S; z += int(gl_NumWorkGroups.z)) {
    int g = z / S, sp = z - g * S;
    int kbeg = sp * p.KC, kend = min(p.K, kbeg + p.KC);
    // partial sums go to the workspace, at offset ob, when K is split
    BufT dst = BufT(S > 1 ? p.ws : p.out_);
    int ob = S > 1 ? sp * p.OUTN : 0;
    // per tile (the K loop restarts there): digits of the loaded k positions
    ivec3 ka0 = digits(kbeg + ak, R1, R2);
#if !defined(CONV_BWDW)
    ivec3 kb0[LD];
    [[unroll]] for (int i = 0; i < LD; i++)
      kb0[i] = digits(kbeg + bk0 + BS * i, R1, R2);
#endif
    for (int tm = int(gl_WorkGroupID.y); tm < tm_n; tm += int(gl_NumWorkGroups.y))
      for (int tn = int(gl_WorkGroupID.x); tn < tn_n; tn += int(gl_NumWorkGroups.x)) {
        int m0 = tm * BM, n0 = tn * BN;
        // column decode, once per tile
#if defined(CONV_FWD)
        int j = n0 + bn, n = j / p.OHW, q = j - n * p.OHW, oh = q / p.OW;
        bool jok = j < p.NC;
        int hb = oh * p.sh - p.ph, wb = (q - oh * p.OW) * p.sw - p.pw;
        int xb = (n * p.C + g * p.Cg) * p.HW;
#elif defined(CONV_BWDI)
        int j = n0 + bn, n = j / p.HW, q = j - n * p.HW, h = q / p.W;
        bool jok = j < p.NC;
        int th0 = h + p.ph, tw0 = q - h * p.W + p.pw;
        int yb = (n * p.O + g * p.Og) * p.OHW;
#else
        int jc[LD], jh[LD], jw[LD];
        bool jok[LD];
        [[unroll]] for (int i = 0; i < LD; i++) {
          int j = n0 + am + AS * i, c = j / p.KK, r = j - c * p.KK, kh = r / p.KW;
          jok[i] = j < p.NC;
          jc[i] = (g * p.Cg + c) * p.H, jh[i] = kh * p.dh - p.ph, jw[i] = (r - kh * p.KW) * p.dw - p.pw;
        }
#endif
        ivec3 ka = ka0;
#if !defined(CONV_BWDW)
        ivec3 kb[LD] = kb0;
#endif
        // rows ty*4 + [0,4) and 32 + ty*4 + [0,4); columns likewise with tx
        T4 acc[8][2];
        [[unroll]] for (int i = 0; i < 8; i++)
          acc[i][0] = acc[i][1] = T4(0);
        for (int k0 = kbeg; k0 < kend; k0 += BK) {
          // A tile [BM x BK], k fastest across invocations
          bool kaok = k0 + ak < kend;
          [[unroll]] for (int i = 0; i < LD; i++) {
            int m = m0 + am + AS * i;
            T v = T(0);
            if (kaok && m < p.M) {
#if defined(CONV_FWD)
              v = in1.v[(g * p.Og + m) * p.CKK + k0 + ak];
#elif defined(CONV_BWDI)
              v = in1.v[((g * p.Og + ka.x) * p.Cg + m) * p.KK + ka.y * p.KW + ka.z];
#else
              v = in0.v[(ka.x * p.O + g * p.Og + m) * p.OHW + ka.y * p.OW + ka.z];
#endif
            }
            As[ak][(am + AS * i) >> 2][(am + AS * i) & 3] = v;
          }
          // B tile [BK x BN]
          [[unroll]] for (int i = 0; i < LD; i++) {
            T v = T(0);
#if defined(CONV_FWD)
            int h = hb + kb[i].y * p.dh, w = wb + kb[i].z * p.dw;
            if (jok && k0 + bk0 + BS * i < kend && h >= 0 && h < p.H && w >= 0 && w < p.W)
              v = in0.v[xb + (kb[i].x * p.H + h) * p.W + w];
            Bs[bk0 + BS * i][bn >> 2][bn & 3] = v;
#elif defined(CONV_BWDI)
            int th = th0 - kb[i].y * p.dh, tw = tw0 - kb[i].z * p.dw;
            if (jok && k0 + bk0 + BS * i < kend && th >= 0 && tw >= 0) {
              int oh = small_div(th, p.sh, rsh), ow = small_div(tw, p.sw, rsw);
              if (oh * p.sh == th && ow * p.sw == tw && oh < p.OH && ow < p.OW)
                v = in0.v[yb + kb[i].x * p.OHW + oh * p.OW + ow];
            }
            Bs[bk0 + BS * i][bn >> 2][bn & 3] = v;
#else
            int h = ka.y * p.sh + jh[i], w = ka.z * p.sw + jw[i];
            if (jok[i] && kaok && h >= 0 && h < p.H && w >= 0 && w < p.W)
              v = in1.v[((ka.x * p.C * p.H) + jc[i] + h) * p.W + w];
            Bs[ak][(am + AS * i) >> 2][(am + AS * i) & 3] = v;
#endif
          }
          ka = advance(ka, kstep, R1, R2);
#if !defined(CONV_BWDW)
          [[unroll]] for (int i = 0; i < LD; i++)
            kb[i] = advance(kb[i], kstep, R1, R2);
#endif
          barrier();
          [[unroll]] for (int kk = 0; kk < BK; kk++) {
            T4 a0 = As[kk][ty], a1 = As[kk][ty + 8], b0 = Bs[kk][tx], b1 = Bs[kk][tx + 8];
            [[unroll]] for (int r = 0; r < 4; r++) {
              acc[r][0] += a0[r] * b0, acc[r][1] += a0[r] * b1;
              acc[r + 4][0] += a1[r] * b0, acc[r + 4][1] += a1[r] * b1;
            }
          }
          barrier();
        }
        // store C [M x NC] of group g
        [[unroll]] for (int i = 0; i < 8; i++) {
          int m = m0 + (i >> 2) * 32 + ty * 4 + (i & 3);
          if (m >= p.M) continue;
          [[unroll]] for (int jj = 0; jj < 8; jj++) {
            int j = n0 + (jj >> 2) * 32 + tx * 4 + (jj & 3);
            if (j >= p.NC) continue;
            T v = acc[i][jj >> 2][jj & 3];
#if defined(CONV_FWD)
            int n = j / p.OHW;
            dst.v[ob + (n * p.O + g * p.Og + m) * p.OHW + j - n * p.OHW] = v;
#elif defined(CONV_BWDI)
            int n = j / p.HW;
            dst.v[ob + (n * p.C + g * p.Cg + m) * p.HW + j - n * p.HW] = v;
#else
            dst.v[ob + (g * p.Og + m) * p.CKK + j] = v;
#endif
          }
        }
      }
  }
}
