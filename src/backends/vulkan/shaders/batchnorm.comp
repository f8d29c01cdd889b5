#version 460
// Batch norm with the batch's statistics (vk_batchnorm.c; reference:
// src/backends/cpu/cpu_batchnorm_tmpl.h). x is [N, C, S] (S: the dims after
// the channels, 1 for [N, C]); channel ch holds M = N * S values, value
// m = n * S + s at element (n * C + ch) * S + s.
//
// A work group of 256 threads covers CW channel slots (a power of two, > 1
// only for runs shorter than 32, so that neighbouring threads still read
// neighbouring elements) times chunk pc = group x of their values,
// m in [pc * L, min((pc + 1) * L, M)): thread lid is slot lid % CW, lane
// lid / CW of TPC = 256 / CW lanes striding over m. Channel groups
// grid-stride over group y. Sums in A (f32: float, f64: double), per thread
// then a fixed-order tree over the lanes: deterministic.
//   PASS 0 (stats): x -> part[ch, pc] = (count, mean, M2) (Welford)
//   PASS 1 (dsum):  dy, x -> dpart[ch, pc] = (sum dy, sum dy * (x - mean), sum (x - mean))
//   PASS 2 (apply): mode 0: y = (x - mean) * rstd * gamma + beta
//                   mode 1: dx = gamma * rstd * (dy - sdy / M - (x - mean) * rstd^2 * sdyx / M)
//                   mode 2: dgamma[ch] = sdyx * rstd (group x 0 only)
// Passes 1 and 2 first merge the channel's P partials (every group of a
// channel the same way, so all see the same statistics). With P = 1 (one
// group a channel) pass 2 alone does everything from x and dy itself.
// sdyx = sum dy * (x - mean) - sum dy * sum (x - mean) / M: the second term
// takes out the rounding of mean (a few ulps, times sum dy, would otherwise
// dominate the f32 error of large channels: the corrected two-pass method).
#include "common.glsl"
layout(local_size_x = 256) in;
#if defined(T_F64)
#define A double
#define BufA BufF64
#define A_BYTES 8u
#else
#define A float
#define BufA BufF32
#define A_BYTES 4u
#endif
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x, dy, gamma, beta, out_, ws; // ws: part [C, P, 3] then dpart [C, P, 3] (A)
#if defined(T_F64)
  double eps;
#else
  uint64_t eps_d_; // double eps of the C struct (no doubles in f32 shaders)
#endif
  float eps_f;
  uint N, C, S, P, L, CW, mode;
};

shared A sh_n[256], sh_a[256], sh_b[256];                  // per thread: (n, mean, M2) or 3 sums
shared A ch_mean[32], ch_rstd[32], ch_sdy[32], ch_sdyx[32]; // per channel slot

// This thread's place and the shape (set once by main).
uint lid, cl, lane, tpc, cw, C, S, CS, P, M, ss, di;

// Visits this thread's values of chunk [m0, m1) of channel ch (m = m0 + lane,
// then + tpc): i is the element index, stepped without divisions (di and ss:
// tpc values ahead is tpc / S runs and tpc % S elements further).
#define CHUNK_LOOP(i)                                                                              \
  for (uint m_ = m0 + lane, s_ = m_ % S, i = (m_ / S * C + ch) * S + s_; m_ < m1;                  \
       m_ += tpc, i += di, s_ += ss, i += s_ >= S ? CS - S : 0u, s_ -= s_ >= S ? S : 0u)

// (n, mean, q) += (nb, mb, qb): Welford states merged (Chan et al.); an
// empty side leaves the other unchanged.
void wmerge(inout A n, inout A mean, inout A q, A nb, A mb, A qb) {
  if (nb == A(0)) return;
  A t = n + nb, d = mb - mean, f = nb / t;
  mean += d * f;
  q += qb + d * d * n * f;
  n = t;
}

// Tree over the lanes of each channel slot (thread lid = lane * cw + cl):
// slot cl's lane 0 ends with the merged (welford) or summed sh_*. Called
// by every thread (barriers).
void lanes_reduce(bool welford) {
  barrier();
  for (uint h = tpc >> 1; h > 0u; h >>= 1) {
    if (lane < h) {
      uint o = lid + h * cw;
      if (welford) {
        A n = sh_n[lid], a = sh_a[lid], b = sh_b[lid];
        wmerge(n, a, b, sh_n[o], sh_a[o], sh_b[o]);
        sh_n[lid] = n;
        sh_a[lid] = a;
        sh_b[lid] = b;
      } else {
        sh_n[lid] += sh_n[o];
        sh_a[lid] += sh_a[o];
        sh_b[lid] += sh_b[o];
      }
    }
    barrier();
  }
}

// Welford state of chunk [m0, m1) of channel ch into sh_*[cl].
void chunk_stats(BufT x, uint ch, uint m0, uint m1) {
  A n = A(0), mean = A(0), q = A(0);
  CHUNK_LOOP(i) {
    A v = A(x.v[i]);
    n += A(1);
    A d = v - mean;
    mean += d / n;
    q += d * (v - mean);
  }
  sh_n[lid] = n;
  sh_a[lid] = mean;
  sh_b[lid] = q;
  lanes_reduce(true);
}

// The channel's P partial Welford states merged into sh_*[cl].
void merged_stats(BufA part, uint ch, bool ok) {
  A n = A(0), mean = A(0), q = A(0);
  if (ok)
    for (uint j = lane; j < P; j += tpc) {
      uint o = (ch * P + j) * 3u;
      wmerge(n, mean, q, part.v[o], part.v[o + 1u], part.v[o + 2u]);
    }
  sh_n[lid] = n;
  sh_a[lid] = mean;
  sh_b[lid] = q;
  lanes_reduce(true);
}

// ch_mean, ch_rstd of every slot from sh_*[cl] (the whole channel's state).
void set_stats(A eps) {
  if (lane == 0u) {
    ch_mean[cl] = sh_a[cl];
    ch_rstd[cl] = A(1) / sqrt(sh_b[cl] / A(M) + eps);
  }
  barrier();
}

// sum dy, sum dy * (x - mean) and sum (x - mean) over chunk [m0, m1) of
// channel ch into sh_a/b/n[cl].
void chunk_dsum(BufT dy, BufT x, uint ch, uint m0, uint m1, A mean) {
  A a = A(0), b = A(0), e = A(0);
  CHUNK_LOOP(i) {
    A g = A(dy.v[i]), d = A(x.v[i]) - mean;
    a += g;
    b += g * d;
    e += d;
  }
  sh_a[lid] = a;
  sh_b[lid] = b;
  sh_n[lid] = e;
  lanes_reduce(false);
}

// The channel's P partial sums added into sh_a/b/n[cl].
void merged_dsum(BufA dpart, uint ch, bool ok) {
  A a = A(0), b = A(0), e = A(0);
  if (ok)
    for (uint j = lane; j < P; j += tpc) {
      uint o = (ch * P + j) * 3u;
      a += dpart.v[o];
      b += dpart.v[o + 1u];
      e += dpart.v[o + 2u];
    }
  sh_a[lid] = a;
  sh_b[lid] = b;
  sh_n[lid] = e;
  lanes_reduce(false);
}

void main() {
  Params p = Params(push.params);
  lid = gl_LocalInvocationID.x;
  cw = p.CW;
  tpc = 256u / cw;
  cl = lid & (cw - 1u);
  lane = lid / cw;
  C = p.C;
  S = p.S;
  CS = C * S;
  P = p.P;
  M = p.N * S;
  uint sn = tpc / S;
  ss = tpc - sn * S;
  di = sn * CS + ss;
#if defined(T_F64)
  A eps = p.eps;
#else
  A eps = p.eps_f;
#endif
  BufT x = BufT(p.x), dy = BufT(p.dy), gamma = BufT(p.gamma), beta = BufT(p.beta);
  BufT o = BufT(p.out_);
  BufA part = BufA(p.ws), dpart = BufA(p.ws + uint64_t(C) * uint64_t(P) * uint64_t(3u * A_BYTES));
  uint pc = gl_WorkGroupID.x, CG = (C + cw - 1u) / cw;
  // the loop bound is uniform over the group: every thread reaches the barriers
  for (uint cg = gl_WorkGroupID.y; cg < CG; cg += gl_NumWorkGroups.y) {
    uint ch = cg * cw + cl;
    bool ok = ch < C;
    uint m0 = min(pc * p.L, M), m1 = ok ? min(m0 + p.L, M) : m0;
#if PASS == 0
    chunk_stats(x, ch, m0, m1);
    if (lane == 0u && ok) {
      uint w = (ch * P + pc) * 3u;
      part.v[w] = sh_n[cl];
      part.v[w + 1u] = sh_a[cl];
      part.v[w + 2u] = sh_b[cl];
    }
#elif PASS == 1
    merged_stats(part, ch, ok);
    set_stats(eps);
    chunk_dsum(dy, x, ch, m0, m1, ch_mean[cl]);
    if (lane == 0u && ok) {
      uint w = (ch * P + pc) * 3u;
      dpart.v[w] = sh_a[cl];
      dpart.v[w + 1u] = sh_b[cl];
      dpart.v[w + 2u] = sh_n[cl];
    }
#else
    uint mode = p.mode;
    if (P == 1u)
      chunk_stats(x, ch, m0, m1);
    else
      merged_stats(part, ch, ok);
    set_stats(eps);
    A mean = ch_mean[cl], rstd = ch_rstd[cl];
    if (mode == 0u) {
      if (ok) {
        A k = rstd * A(gamma.v[ch]), b = A(beta.v[ch]);
        CHUNK_LOOP(i) o.v[i] = T((A(x.v[i]) - mean) * k + b);
      }
    } else {
      if (P == 1u)
        chunk_dsum(dy, x, ch, m0, m1, mean);
      else
        merged_dsum(dpart, ch, ok);
      if (lane == 0u) {
        ch_sdy[cl] = sh_a[cl];
        ch_sdyx[cl] = M == 0u ? A(0) : sh_b[cl] - sh_a[cl] * (sh_n[cl] / A(M));
      }
      barrier();
      A sdy = ch_sdy[cl], sdyx = ch_sdyx[cl];
      if (mode == 2u) {
        if (lane == 0u && ok) o.v[ch] = T(M == 0u ? A(0) : sdyx * rstd); // empty batch: 0
      } else if (ok) {
        A k = A(gamma.v[ch]) * rstd, mdy = sdy / A(M), cx = rstd * rstd * sdyx / A(M);
        CHUNK_LOOP(i) o.v[i] = T(k * (A(dy.v[i]) - mdy - (A(x.v[i]) - mean) * cx));
      }
    }
#endif
    barrier(); // the next channel group reuses the shared arrays
  }
}
