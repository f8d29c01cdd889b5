#version 460
// Batched f32 GEMM on tensor cores (VK_NV_cooperative_matrix), for programs
// compiled with allow_tf32: c[b] [M, N] = op(a[b]) [M, K] x op(b[b]) [K, N]
// with fp16 products and fp32 sums (~1e-3 relative, like TF32; inputs beyond
// fp16's range, |x| > 65504, overflow). Same Params, batching and transposes
// as mm_gemm.comp (see there); the host picks this shader only on devices with
// fp16 16x16x16 -> fp32 subgroup matrices and a subgroup size of 32.
//
// A work group of NSG subgroups computes a BM x BN tile of c; subgroup s owns
// a WM x WN region of it as (WM/16) x (WN/16) fp32 accumulator fragments. The
// K loop stages BK-deep slices of op(a) and op(b) in shared memory as fp16,
// each in its STORED orientation (a: [m][k], or [k][m] when transposed; b:
// [k][n], or [n][k]), so that global loads and shared stores are both
// contiguous (VEC-wide vectors when the host has checked alignment), and the
// fragment loads pick row- or column-major to match. Rows are padded by 8
// halves (16 bytes): the 16-byte row segments of a fragment load fall in
// different banks. The next slice is loaded into registers while the current
// one is multiplied. c goes out fragment by fragment through a per-subgroup
// 16x16 shared scratch, with guarded, row-contiguous stores (any M, N).
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#ifndef BM
#define BM 128
#define BN 128
#define BK 32
#define WM 64
#define WN 32
#define VEC 1
#endif

#define SG 32                         // subgroup size (the host checks it)
#define NSG ((BM / WM) * (BN / WN))   // subgroups per work group
#define NT (NSG * SG)                 // invocations per work group
#define FM (WM / 16)                  // accumulator fragments per subgroup, along m
#define FN (WN / 16)                  // along n
#define PAD 8                         // halves of padding per shared row
#define ALOAD (BM * BK / VEC / NT)    // VT items per invocation per slice of a
#define BLOAD (BN * BK / VEC / NT)
#define SA_SIZE ((BM * (BK + PAD)) > (BK * (BM + PAD)) ? (BM * (BK + PAD)) : (BK * (BM + PAD)))
#define SB_SIZE ((BN * (BK + PAD)) > (BK * (BN + PAD)) ? (BN * (BK + PAD)) : (BK * (BN + PAD)))
layout(local_size_x = NT) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t a_, b_, c_;
  int M, N, K, lda, ldb, ta, tb, nbatch, nbd, amat, bmat;
  int bdims[8];
  int abst[8];
  int bbst[8];
};
layout(buffer_reference, std430, buffer_reference_align = 16) readonly buffer BufV4 { vec4 v[]; };
#if VEC == 4
#define VT vec4
#define BufL BufV4
#define COMP(x, j) x[j]
#elif VEC == 1
#define VT float
#define BufL BufF32
#define COMP(x, j) x
#else
#error "VEC must be 1 or 4"
#endif
#define FRAG16 fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>
#define FRAG32 fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>

shared float16_t As[SA_SIZE];
shared float16_t Bs[SB_SIZE];
shared float Cs[NSG * 256];

// An R x C tile (origin (r0, c0)) of a row-major matrix with leading dim ld at
// element offset base, rows < nr and columns < nc (zero beyond), into
// registers regs; VEC == 4 needs nc, ld and base to be multiples of 4.
#define LOAD_TILE(regs, NREG, buf, base, ld, r0, c0, nr, nc, R, C)                                \
  [[unroll]] for (int l = 0; l < NREG; l++) {                                                     \
    int e = int(tid) + l * NT, r = e / ((C) / VEC), cc = (e % ((C) / VEC)) * VEC;                  \
    int gr = (r0) + r, gc = (c0) + cc;                                                             \
    regs[l] = gr < (nr) && gc < (nc) ? buf.v[((base) + gr * (ld) + gc) / VEC] : VT(0);            \
  }
// The registers of LOAD_TILE into shared S as fp16, row stride C + PAD.
#define STORE_TILE(regs, NREG, S, R, C)                                                            \
  [[unroll]] for (int l = 0; l < NREG; l++) {                                                     \
    int e = int(tid) + l * NT, r = e / ((C) / VEC), cc = (e % ((C) / VEC)) * VEC;                  \
    [[unroll]] for (int j = 0; j < VEC; j++)                                                       \
      S[r * ((C) + PAD) + cc + j] = float16_t(COMP(regs[l], j));                                   \
  }

void main() {
  Params p = Params(push.params);
  BufL A = BufL(p.a_), B = BufL(p.b_);
  BufF32 C = BufF32(p.c_);
  const uint tid = gl_LocalInvocationID.x, lane = gl_SubgroupInvocationID, sg = gl_SubgroupID;
  const int wm = int(sg / (BN / WN)) * WM, wn = int(sg % (BN / WN)) * WN;
  const int M = p.M, N = p.N, K = p.K, lda = p.lda, ldb = p.ldb;
  const bool ta = p.ta != 0, tb = p.tb != 0;
  const uint tilesM = (uint(M) + BM - 1) / BM, tilesN = (uint(N) + BN - 1) / BN;
  for (uint z = gl_WorkGroupID.z; z < uint(p.nbatch); z += gl_NumWorkGroups.z) {
    int r = int(z), ao = 0, bo = 0;
    for (int d = p.nbd - 1; d >= 0; d--) {
      int q = r / p.bdims[d], i = r - q * p.bdims[d];
      ao += i * p.abst[d];
      bo += i * p.bbst[d];
      r = q;
    }
    ao *= p.amat;
    bo *= p.bmat;
    int co = int(z) * M * N;
    for (uint by = gl_WorkGroupID.y; by < tilesM; by += gl_NumWorkGroups.y) {
      for (uint bx = gl_WorkGroupID.x; bx < tilesN; bx += gl_NumWorkGroups.x) {
        const int m0 = int(by) * BM, n0 = int(bx) * BN;
        FRAG32 acc[FM][FN];
        [[unroll]] for (int i = 0; i < FM; i++)
          [[unroll]] for (int j = 0; j < FN; j++) acc[i][j] = FRAG32(0.0);
        VT ra[ALOAD], rb[BLOAD];
        // slice [k0, k0 + BK) of op(a) and op(b), stored orientation
#define LOAD_SLICE(k0)                                                                             \
  if (ta) {                                                                                        \
    LOAD_TILE(ra, ALOAD, A, ao, lda, k0, m0, K, M, BK, BM)                                         \
  } else {                                                                                         \
    LOAD_TILE(ra, ALOAD, A, ao, lda, m0, k0, M, K, BM, BK)                                         \
  }                                                                                                \
  if (tb) {                                                                                        \
    LOAD_TILE(rb, BLOAD, B, bo, ldb, n0, k0, N, K, BN, BK)                                         \
  } else {                                                                                         \
    LOAD_TILE(rb, BLOAD, B, bo, ldb, k0, n0, K, N, BK, BN)                                         \
  }
        LOAD_SLICE(0)
        for (int k0 = 0; k0 < K; k0 += BK) {
          if (ta) {
            STORE_TILE(ra, ALOAD, As, BK, BM)
          } else {
            STORE_TILE(ra, ALOAD, As, BM, BK)
          }
          if (tb) {
            STORE_TILE(rb, BLOAD, Bs, BN, BK)
          } else {
            STORE_TILE(rb, BLOAD, Bs, BK, BN)
          }
          barrier();
          if (k0 + BK < K) {
            LOAD_SLICE(k0 + BK) // global loads in flight during the products below
          }
          [[unroll]] for (int kk = 0; kk < BK; kk += 16) {
            FRAG16 fa[FM], fb[FN];
            [[unroll]] for (int i = 0; i < FM; i++) {
              if (ta) // As[k][m]: element (m, k) at k * (BM + PAD) + m
                coopMatLoadNV(fa[i], As, uint(kk * (BM + PAD) + wm + i * 16),
                              uint(BM + PAD), true);
              else // As[m][k]
                coopMatLoadNV(fa[i], As, uint((wm + i * 16) * (BK + PAD) + kk),
                              uint(BK + PAD), false);
            }
            [[unroll]] for (int j = 0; j < FN; j++) {
              if (tb) // Bs[n][k]: element (k, n) at n * (BK + PAD) + k
                coopMatLoadNV(fb[j], Bs, uint((wn + j * 16) * (BK + PAD) + kk),
                              uint(BK + PAD), true);
              else // Bs[k][n]
                coopMatLoadNV(fb[j], Bs, uint(kk * (BN + PAD) + wn + j * 16),
                              uint(BN + PAD), false);
            }
            [[unroll]] for (int i = 0; i < FM; i++)
              [[unroll]] for (int j = 0; j < FN; j++) acc[i][j] = coopMatMulAddNV(fa[i], fb[j], acc[i][j]);
          }
          barrier();
        }
        // c: each fragment through the subgroup's scratch, guarded stores
        [[unroll]] for (int i = 0; i < FM; i++) {
          [[unroll]] for (int j = 0; j < FN; j++) {
            coopMatStoreNV(acc[i][j], Cs, sg * 256, 16u, false);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            [[unroll]] for (uint t = 0; t < 256 / SG; t++) {
              uint l = lane + t * SG;
              int m = m0 + wm + i * 16 + int(l / 16), n = n0 + wn + j * 16 + int(l % 16);
              if (m < M && n < N) C.v[co + m * N + n] = Cs[sg * 256 + l];
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier(); // the scratch is rewritten by the next fragment
          }
        }
      }
    }
  }
}
