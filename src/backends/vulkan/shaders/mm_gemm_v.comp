#version 460
// Batched f32/f64 GEMM, second generation (see mm_gemm.comp for the Params,
// batching and transposes, which are the same): c[b] [M, N] = op(a[b]) [M, K]
// x op(b[b]) [K, N], with optional split-K.
//
// A work group of NT = (BM/TM)(BN/TN) invocations computes a BM x BN tile of
// c from BK-deep slices of op(a) and op(b) staged in shared memory k-major
// (As[k][m], Bs[k][n], as vectors of VW = TM/2). Each invocation owns a
// TM x TN micro-tile as 2 x 2 quadrants of VW x VW spaced BM/2 (BN/2) apart:
// per k it reads two vectors of As and two of Bs whose neighbours are read by
// neighbouring invocations (no bank conflicts) for TM*TN fmas.
//
// Global loads: each operand is read in its STORED orientation, VEC elements
// (1, or 4 when the host has checked that lda / ldb, the base addresses and
// the matrix strides are multiples of 4) along its contiguous dim, so that
// neighbouring invocations read neighbouring addresses; vectors along m / n
// go to shared memory whole, vectors along k as VEC component stores (rows
// padded by PADV vectors so that those spread over banks). The next slice is
// loaded into registers while the current one is multiplied; with DBUF the
// shared slices are double-buffered (one barrier per slice instead of two).
//
// Split-K: z enumerates (split s, batch b) as s * nbatch + b; split s sums k
// in [s*KC, min(K, (s+1)*KC)) and writes c + s * nbatch*M*N (the host points
// c at a workspace and sums the S partials in mm_gemm_splitk.comp). S = 1:
// plain GEMM. Edges: zero-filled loads, guarded stores (vec4 stores when VEC
// == 4 and VW == 4: N is then a multiple of 4).
#include "common.glsl"
#extension GL_EXT_control_flow_attributes : require
#ifndef BM
#define BM 128
#define BN 128
#define BK 16
#define TM 8
#define TN 8
#define VEC 4
#define DBUF 1
#endif
#if TM != TN
#error "TM == TN"
#endif
#define TXN (BN / TN)   // invocations along n
#define TYM (BM / TM)   // along m
#define VW (TM / 2)     // vector width of the shared tiles
#define PADV 1          // vectors of padding per shared row
#define NT (TXN * TYM)  // invocations per group
#define NBUF (DBUF != 0 ? 2 : 1)
#define ALOAD (BM * BK / VEC / NT) // VEC-vectors per invocation per slice of a
#define BLOAD (BN * BK / VEC / NT)
#if ALOAD * VEC * NT != BM * BK || BLOAD * VEC * NT != BN * BK
#error "tile sizes must be multiples of the loads"
#endif
layout(local_size_x = NT) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t a_, b_, c_;
  int M, N, K, lda, ldb, ta, tb, nbatch, nbd, amat, bmat;
  int bdims[8];
  int abst[8];
  int bbst[8];
  int S, KC; // K splits, K per split (a multiple of BK)
};

#if defined(T_F64)
#define VT4 dvec4
#define VT2 dvec2
layout(buffer_reference, std430, buffer_reference_align = 32) buffer BufV4 { dvec4 v[]; };
#else
#define VT4 vec4
#define VT2 vec2
layout(buffer_reference, std430, buffer_reference_align = 16) buffer BufV4 { vec4 v[]; };
#endif
#if VW == 4
#define VT VT4
#elif VW == 2
#define VT VT2
#else
#error "TM must be 4 or 8"
#endif
#if VEC == 4
#define LT VT4
#define BufL BufV4
#define COMP(x, j) x[j]
#elif VEC == 1
#define LT T
#define BufL BufT
#define COMP(x, j) x
#else
#error "VEC must be 1 or 4"
#endif
#define ASTRIDE (BM / VW + PADV)
#define BSTRIDE (BN / VW + PADV)
shared VT As[NBUF * BK * ASTRIDE];
shared VT Bs[NBUF * BK * BSTRIDE];

// Slice [k0, k0 + BK) of a stored matrix into registers: rows x cols of the
// stored layout (leading dim ld, element offset base), tile origin (r0, c0),
// bounds (nr, nc), tile extent R x C, VEC-vectors along the columns.
#define LOAD(regs, NREG, buf, base, ld, r0, c0, nr, nc, R, C)                                    \
  [[unroll]] for (int l = 0; l < NREG; l++) {                                                     \
    int e = int(tid) + l * NT, r = e / ((C) / VEC), cc = (e % ((C) / VEC)) * VEC;                  \
    int gr = (r0) + r, gc = (c0) + cc;                                                             \
    regs[l] = gr < (nr) && gc < (nc) ? buf.v[((base) + gr * (ld) + gc) / VEC] : LT(0);            \
  }

// Registers of a slice into shared buffer sb: stored as [k][mn] (kmajor: the
// vectors run along mn, one store each) or as [mn][k] (vectors along k:
// VEC component stores).
#define STORE(S_, STRIDE, regs, NREG, sb, kmajor, EXT)                                           \
  [[unroll]] for (int l = 0; l < NREG; l++) {                                                     \
    int e = int(tid) + l * NT;                                                                     \
    if (kmajor) {                                                                                  \
      int kk = e / ((EXT) / VEC), x = (e % ((EXT) / VEC)) * VEC;                                   \
      int o = ((sb) * BK + kk) * STRIDE + x / VW;                                                  \
      STORE_ROW(S_, o, x, regs[l]);                                                                \
    } else {                                                                                       \
      int x = e / (BK / VEC), kk = (e % (BK / VEC)) * VEC;                                         \
      [[unroll]] for (int j = 0; j < VEC; j++)                                                     \
        S_[((sb) * BK + kk + j) * STRIDE + x / VW][x % VW] = COMP(regs[l], j);                     \
    }                                                                                              \
  }
#if VEC == 4 && VW == 4
#define STORE_ROW(S_, o, x, v) S_[o] = v
#elif VEC == 4 && VW == 2
#define STORE_ROW(S_, o, x, v)                                                                     \
  S_[o] = VT2(v.xy);                                                                               \
  S_[(o) + 1] = VT2(v.zw)
#else
#define STORE_ROW(S_, o, x, v) S_[o][(x) % VW] = v
#endif

void main() {
  Params p = Params(push.params);
  BufL A = BufL(p.a_), B = BufL(p.b_);
  const uint tid = gl_LocalInvocationID.x, tx = tid % TXN, ty = tid / TXN;
  const int M = p.M, N = p.N, K = p.K, lda = p.lda, ldb = p.ldb, S = max(p.S, 1), KC = p.KC;
  const bool ta = p.ta != 0, tb = p.tb != 0;
  const uint tilesM = (uint(M) + BM - 1) / BM, tilesN = (uint(N) + BN - 1) / BN;
  const uint nz = uint(p.nbatch) * uint(S);
  for (uint z = gl_WorkGroupID.z; z < nz; z += gl_NumWorkGroups.z) {
    uint zb = z % uint(p.nbatch), zs = z / uint(p.nbatch);
    int r = int(zb), ao = 0, bo = 0;
    for (int d = p.nbd - 1; d >= 0; d--) {
      int q = r / p.bdims[d], i = r - q * p.bdims[d];
      ao += i * p.abst[d];
      bo += i * p.bbst[d];
      r = q;
    }
    ao *= p.amat;
    bo *= p.bmat;
    const int co = int(z) * M * N; // split s of batch b: (s * nbatch + b) * M * N
    const int kbeg = S > 1 ? int(zs) * KC : 0, kend = S > 1 ? min(K, kbeg + KC) : K;
    for (uint by = gl_WorkGroupID.y; by < tilesM; by += gl_NumWorkGroups.y) {
      for (uint bx = gl_WorkGroupID.x; bx < tilesN; bx += gl_NumWorkGroups.x) {
        const int m0 = int(by) * BM, n0 = int(bx) * BN;
        T acc[TM][TN];
        [[unroll]] for (int i = 0; i < TM; i++)
          [[unroll]] for (int j = 0; j < TN; j++) acc[i][j] = T(0);
        LT ra[ALOAD], rb[BLOAD];
        // a stored [M, K] (k contiguous) or, transposed, [K, M]; b [K, N] or [N, K];
        // k bounded by kend (a multiple of 4 when VEC == 4: K and KC are)
#define LOAD_SLICE(k0)                                                                             \
  if (ta) {                                                                                        \
    LOAD(ra, ALOAD, A, ao, lda, k0, m0, kend, M, BK, BM)                                           \
  } else {                                                                                         \
    LOAD(ra, ALOAD, A, ao, lda, m0, k0, M, kend, BM, BK)                                           \
  }                                                                                                \
  if (tb) {                                                                                        \
    LOAD(rb, BLOAD, B, bo, ldb, n0, k0, N, kend, BN, BK)                                           \
  } else {                                                                                         \
    LOAD(rb, BLOAD, B, bo, ldb, k0, n0, kend, N, BK, BN)                                           \
  }
#define STORE_SLICE(sb)                                                                            \
  STORE(As, ASTRIDE, ra, ALOAD, sb, ta, BM)                                                        \
  STORE(Bs, BSTRIDE, rb, BLOAD, sb, !tb, BN)
#define COMPUTE(sb)                                                                                \
  [[unroll]] for (int kk = 0; kk < BK; kk++) {                                                     \
    int ka = ((sb) * BK + kk) * ASTRIDE, kb = ((sb) * BK + kk) * BSTRIDE;                          \
    VT a0 = As[ka + ty], a1 = As[ka + ty + TYM], b0 = Bs[kb + tx], b1 = Bs[kb + tx + TXN];         \
    [[unroll]] for (int i = 0; i < VW; i++) {                                                      \
      [[unroll]] for (int j = 0; j < VW; j++) {                                                    \
        acc[i][j] = fma(a0[i], b0[j], acc[i][j]);                                                  \
        acc[i][j + VW] = fma(a0[i], b1[j], acc[i][j + VW]);                                        \
        acc[i + VW][j] = fma(a1[i], b0[j], acc[i + VW][j]);                                        \
        acc[i + VW][j + VW] = fma(a1[i], b1[j], acc[i + VW][j + VW]);                              \
      }                                                                                            \
    }                                                                                              \
  }
        LOAD_SLICE(kbeg)
#if DBUF
        STORE_SLICE(0)
        barrier();
        int cur = 0;
        for (int k0 = kbeg; k0 < kend; k0 += BK) {
          const bool more = k0 + BK < kend;
          if (more) {
            LOAD_SLICE(k0 + BK) // global loads in flight during the fmas below
          }
          COMPUTE(cur)
          if (more) {
            STORE_SLICE(cur ^ 1) // the other buffer: last read before the previous barrier
          }
          barrier();
          cur ^= 1;
        }
#else
        for (int k0 = kbeg; k0 < kend; k0 += BK) {
          STORE_SLICE(0)
          barrier();
          if (k0 + BK < kend) {
            LOAD_SLICE(k0 + BK)
          }
          COMPUTE(0)
          barrier();
        }
#endif
#if VEC == 4 && VW == 4
        BufV4 C4 = BufV4(p.c_);
        [[unroll]] for (int i = 0; i < TM; i++) {
          int m = m0 + (i < VW ? int(ty) * VW + i : BM / 2 + int(ty) * VW + i - VW);
          [[unroll]] for (int h = 0; h < 2; h++) {
            int n = n0 + h * (BN / 2) + int(tx) * VW;
            if (m < M && n < N)
              C4.v[(co + m * N + n) / 4] =
                  VT4(acc[i][h * VW], acc[i][h * VW + 1], acc[i][h * VW + 2], acc[i][h * VW + 3]);
          }
        }
#else
        BufT C = BufT(p.c_);
        [[unroll]] for (int i = 0; i < TM; i++) {
          int m = m0 + (i < VW ? int(ty) * VW + i : BM / 2 + int(ty) * VW + i - VW);
          [[unroll]] for (int j = 0; j < TN; j++) {
            int n = n0 + (j < VW ? int(tx) * VW + j : BN / 2 + int(tx) * VW + j - VW);
            if (m < M && n < N) C.v[co + m * N + n] = acc[i][j];
          }
        }
#endif
      }
    }
  }
}
