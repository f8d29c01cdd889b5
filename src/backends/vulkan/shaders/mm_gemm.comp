#version 460
// Batched GEMM: c[b] [M, N] = op(a[b]) [M, K] x op(b[b]) [K, N], row-major,
// op = transpose when ta / tb (a stored [K, M] / b stored [N, K]); lda / ldb
// are the stored last dims. Batch b (gl_WorkGroupID.z, looping) maps to the
// operands' matrices through the output's batch dims (bdims) and per-dim
// strides in matrices (abst / bbst, 0 where an operand broadcasts).
//
// A work group of NT = (BM/TM)(BN/TN) invocations computes a BM x BN tile of
// c: a K loop over BK-deep slices of op(a) and op(b) staged in shared memory
// (k-major, As[k][m] and Bs[k][n], as vectors of VW = TM/2 elements), the
// next slice loaded into registers while the current one is used (a second
// shared buffer measured slower on NVIDIA). Each invocation accumulates a
// TM x TN micro-tile in registers: rows ty*VW + [0, VW) and BM/2 + ty*VW +
// [0, VW), columns likewise, so per k it reads two vectors of As and two of
// Bs (neighbouring invocations read neighbouring vectors: no bank conflicts)
// for TM*TN fmas, and the c stores of neighbouring invocations are
// contiguous. Tiles are loaded so that neighbouring invocations read
// neighbouring addresses of the stored layout (along k when a is not
// transposed, along m when it is; likewise for b): the transposes only change
// the load mapping. Edges are zero-filled on load and guarded on store.
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require
#ifndef BM
#define BM 128
#define BN 128
#define BK 16
#define TM 8
#define TN 8
#endif
#define TXN (BN / TN)  // invocations along n
#define TYM (BM / TM)  // along m
#define VW (TM / 2)    // vector width of the shared tiles (TM == TN)
#define PADV 1          // one vector of padding: transposed stores spread over banks
#define NT (TXN * TYM)  // invocations per group
#define ALOAD (BM * BK / NT)
#define BLOAD (BN * BK / NT)
layout(local_size_x = NT) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t a_, b_, c_;
  int M, N, K, lda, ldb, ta, tb, nbatch, nbd, amat, bmat;
  int bdims[8];
  int abst[8];
  int bbst[8];
};

#if defined(T_F64) && VW == 4
#define VT dvec4
#elif defined(T_F64) && VW == 2
#define VT dvec2
#elif VW == 4
#define VT vec4
#elif VW == 2
#define VT vec2
#else
#error "TM == TN must be 4 or 8"
#endif
shared VT As[BK][BM / VW + PADV];
shared VT Bs[BK][BN / VW + PADV];

void main() {
  Params p = Params(push.params);
  BufT A = BufT(p.a_), B = BufT(p.b_), C = BufT(p.c_);
  const uint tid = gl_LocalInvocationID.x, tx = tid % TXN, ty = tid / TXN;
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
        T acc[TM][TN];
        [[unroll]] for (int i = 0; i < TM; i++)
          [[unroll]] for (int j = 0; j < TN; j++) acc[i][j] = T(0);
        T ra[ALOAD], rb[BLOAD];
        // slice [k0, k0 + BK) of op(a) and op(b) into registers
#define LOAD_SLICE(k0)                                                                             \
  [[unroll]] for (int l = 0; l < ALOAD; l++) {                                                     \
    int e = int(tid) + l * NT, mm, kk;                                                            \
    if (ta) {                                                                                      \
      mm = e % BM;                                                                                 \
      kk = e / BM;                                                                                 \
    } else {                                                                                       \
      kk = e % BK;                                                                                 \
      mm = e / BK;                                                                                 \
    }                                                                                              \
    int gm = m0 + mm, gk = (k0) + kk;                                                              \
    ra[l] = gm < M && gk < K ? A.v[ao + (ta ? gk * lda + gm : gm * lda + gk)] : T(0);              \
  }                                                                                                \
  [[unroll]] for (int l = 0; l < BLOAD; l++) {                                                     \
    int e = int(tid) + l * NT, nn, kk;                                                            \
    if (tb) {                                                                                      \
      kk = e % BK;                                                                                 \
      nn = e / BK;                                                                                 \
    } else {                                                                                       \
      nn = e % BN;                                                                                 \
      kk = e / BN;                                                                                 \
    }                                                                                              \
    int gn = n0 + nn, gk = (k0) + kk;                                                              \
    rb[l] = gn < N && gk < K ? B.v[bo + (tb ? gn * ldb + gk : gk * ldb + gn)] : T(0);              \
  }
        LOAD_SLICE(0)
        for (int k0 = 0; k0 < K; k0 += BK) {
          [[unroll]] for (int l = 0; l < ALOAD; l++) {
            int e = int(tid) + l * NT;
            int mm = ta ? e % BM : e / BK, kk = ta ? e / BM : e % BK;
            As[kk][mm / VW][mm % VW] = ra[l];
          }
          [[unroll]] for (int l = 0; l < BLOAD; l++) {
            int e = int(tid) + l * NT;
            int nn = tb ? e / BK : e % BN, kk = tb ? e % BK : e / BN;
            Bs[kk][nn / VW][nn % VW] = rb[l];
          }
          barrier();
          if (k0 + BK < K) {
            LOAD_SLICE(k0 + BK) // global loads in flight during the fmas below
          }
          [[unroll]] for (int kk = 0; kk < BK; kk++) {
            VT a0 = As[kk][ty], a1 = As[kk][ty + TYM], b0 = Bs[kk][tx], b1 = Bs[kk][tx + TXN];
            [[unroll]] for (int i = 0; i < VW; i++) {
              [[unroll]] for (int j = 0; j < VW; j++) {
                acc[i][j] = fma(a0[i], b0[j], acc[i][j]);
                acc[i][j + VW] = fma(a0[i], b1[j], acc[i][j + VW]);
                acc[i + VW][j] = fma(a1[i], b0[j], acc[i + VW][j]);
                acc[i + VW][j + VW] = fma(a1[i], b1[j], acc[i + VW][j + VW]);
              }
            }
          }
          barrier();
        }
        [[unroll]] for (int i = 0; i < TM; i++) {
          int m = m0 + (i < VW ? int(ty) * VW + i : BM / 2 + int(ty) * VW + i - VW);
          [[unroll]] for (int j = 0; j < TN; j++) {
            int n = n0 + (j < VW ? int(tx) * VW + j : BN / 2 + int(tx) * VW + j - VW);
            if (m < M && n < N) C.v[co + m * N + n] = acc[i][j];
          }
        }
      }
    }
  }
}
