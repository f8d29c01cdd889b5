#version 460
// Attention for any D (f64, and f32 past the tiled kernels' D <= 128, and
// every op with a key mask): one work group per output row, grid-strided;
// scores in T, m_exp/m_log. Keys the mask hides are skipped; a query that
// sees no key gets lse = -inf and a zero output.
//   mode 0 ATTENTION     row (b,i): lse by a per-thread online softmax + tree
//                        reduction, then o_i = sum_j p_ij v_j by key chunks
//   mode 1 ATTENTION_LSE row (b,i): the lse part only -> lse [NB,Tq]
//   mode 2 ATTENTION_BWD_Q  row (b,i): dq_i = sum_j scale p_ij (dp_ij - delta_i) k_j
//   mode 3 ATTENTION_BWD_KV row (b,j): dk_j, dv_j -> dkv [2,NB,Tk,D]
// Chunks of NT keys (queries): each thread computes one p (ds) into shared
// memory, then threads over d accumulate p * row into the output row, which
// serves as the accumulator (each element owned by one thread).
#include "common.glsl"
#include "math64.glsl"

#define NT 128
layout(local_size_x = NT) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t q, k, v, dout, lse, delta, out_;
#if defined(T_F64)
  double scale;
#else
  uint64_t scale_d_;
#endif
  float scale_f;
  uint NB, Tq, Tk, D, causal, mode;
  uint64_t mask; // key mask [NB / G, Tk] (0: none), read by this kernel only
  uint G;
};

shared T sa[NT], sb[NT];

T dot_rows(BufT x, uint xo, BufT y, uint yo, uint D) {
  T s = T(0);
  for (uint d = 0u; d < D; d++) s += x.v[xo + d] * y.v[yo + d];
  return s;
}

void main() {
  Params p = Params(push.params);
  BufT qb = BufT(p.q), kb = BufT(p.k), vb = BufT(p.v), dob = BufT(p.dout), ob = BufT(p.out_);
  uint lid = gl_LocalInvocationID.x;
  uint NB = p.NB, Tq = p.Tq, Tk = p.Tk, D = p.D, mode = p.mode;
  bool causal = p.causal != 0u;
#if defined(T_F64)
  T scale = p.scale;
#else
  T scale = p.scale_f;
#endif
  T ninf = -m_exp(T(1000)); // -inf in T
  bool masked = p.mask != uint64_t(0);
  BufT mb = BufT(p.mask);
  uint G = max(p.G, 1u);
  uint rows = NB * (mode == 3u ? Tk : Tq);
  for (uint r = gl_WorkGroupID.x; r < rows; r += gl_NumWorkGroups.x) {
    if (mode == 3u) { // r = (b, j)
      uint b = r / Tk, j = r % Tk, ko = r * D, half_ = NB * Tk * D;
      // a key the mask hides gets no gradient: no query tile is visited
      uint istart = masked && mb.v[(b / G) * Tk + j] == T(0) ? Tq : causal ? j : 0u;
      for (uint i0 = istart; i0 < Tq; i0 += NT) {
        uint i = i0 + lid, qr = b * Tq + i;
        T pr = T(0), ds = T(0);
        if (i < Tq) {
          pr = m_exp(dot_rows(qb, qr * D, kb, ko, D) * scale - BufT(p.lse).v[qr]);
          ds = scale * pr * (dot_rows(dob, qr * D, vb, ko, D) - BufT(p.delta).v[qr]);
        }
        sa[lid] = pr;
        sb[lid] = ds;
        barrier();
        uint n = min(uint(NT), Tq - i0), qo = (b * Tq + i0) * D;
        for (uint d = lid; d < D; d += NT) {
          T adk = T(0), adv = T(0);
          for (uint u = 0u; u < n; u++) {
            adv += sa[u] * dob.v[qo + u * D + d];
            adk += sb[u] * qb.v[qo + u * D + d];
          }
          bool first = i0 == istart;
          ob.v[ko + d] = (first ? T(0) : ob.v[ko + d]) + adk;
          ob.v[half_ + ko + d] = (first ? T(0) : ob.v[half_ + ko + d]) + adv;
        }
        barrier();
      }
      if (istart >= Tq) // causal keys past the last query: no gradient
        for (uint d = lid; d < D; d += NT) {
          ob.v[ko + d] = T(0);
          ob.v[half_ + ko + d] = T(0);
        }
      continue;
    }
    uint b = r / Tq, i = r % Tq, qo = r * D, mo = (b / G) * Tk;
    uint jend = causal ? min(Tk, i + 1u) : Tk;
    T lse;
    if (mode == 2u) {
      lse = BufT(p.lse).v[r];
    } else { // online softmax per thread, then (max, sum) pairs merged
      T m = ninf, l = T(0);
      for (uint j = lid; j < jend; j += NT) {
        if (masked && mb.v[mo + j] == T(0)) continue;
        T s = dot_rows(qb, qo, kb, (b * Tk + j) * D, D) * scale;
        if (s > m) {
          l = l * m_exp(m - s) + T(1);
          m = s;
        } else {
          l += m_exp(s - m);
        }
      }
      sa[lid] = m;
      sb[lid] = l;
      barrier();
      for (uint h = NT / 2u; h > 0u; h >>= 1) {
        if (lid < h) {
          T m1 = sa[lid], m2 = sa[lid + h], mx = max(m1, m2);
          if (mx != ninf) {
            sb[lid] = sb[lid] * m_exp(m1 - mx) + sb[lid + h] * m_exp(m2 - mx);
            sa[lid] = mx;
          }
        }
        barrier();
      }
      lse = sa[0] == ninf ? ninf : sa[0] + m_log(sb[0]); // no visible key: -inf
      barrier();
      if (mode == 1u) {
        if (lid == 0u) ob.v[r] = lse;
        continue;
      }
      if (p.lse != 0ul && lid == 0u) BufT(p.lse).v[r] = lse; // mode 0's further output
    }
    T del = mode == 2u ? BufT(p.delta).v[r] : T(0);
    BufT src = mode == 2u ? kb : vb; // the rows that p (ds) weighs
    for (uint j0 = 0u; j0 < jend; j0 += NT) {
      uint j = j0 + lid, ko = (b * Tk + j) * D;
      T w = T(0);
      if (j < jend && !(masked && mb.v[mo + j] == T(0))) {
        T pr = m_exp(dot_rows(qb, qo, kb, ko, D) * scale - lse);
        w = mode == 2u ? scale * pr * (dot_rows(dob, qo, vb, ko, D) - del) : pr;
      }
      sa[lid] = w;
      barrier();
      uint n = min(uint(NT), jend - j0), so = (b * Tk + j0) * D;
      for (uint d = lid; d < D; d += NT) {
        T acc = T(0);
        for (uint u = 0u; u < n; u++) acc += sa[u] * src.v[so + u * D + d];
        ob.v[qo + d] = (j0 == 0u ? T(0) : ob.v[qo + d]) + acc;
      }
      barrier();
    }
  }
}
