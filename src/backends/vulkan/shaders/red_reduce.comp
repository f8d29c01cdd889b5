#version 460
// Reductions over any axis set (sum/mean, max/min/argmax, var). The host
// coalesces the input dims into runs of kept (kd/ks) and reduced (rd/rs)
// axes (vk_reduce.c's rplan). Output o reads x[kept_off(o) + red_off(j)],
// j = 0..nred-1 (row-major over the reduced dims: the CPU's argmax index).
// A work group of 256 holds 256/g outputs of g lanes each:
//  - rows = 1 (the innermost reduced run is contiguous): lane = tid % g, so
//    neighbouring lanes read neighbouring reduced elements;
//  - rows = 0 (the innermost dim is kept): slot = tid % TX, so neighbouring
//    invocations read neighbouring outputs' elements (coalesced columns).
// Lanes are joined by a shared-memory tree. With S > 1 each output's reduced
// set is cut into S chunks of `chunk` whose partials go to `part` (the
// workspace); phase 1 joins them in chunk order, an invocation per output.
// Kind: RED_SUM (sum; mode 1: mean; mode 2: of x * y, the rowdot op), RED_MAX / RED_MIN (mode 1: the index,
// argmax), RED_VAR (two passes per chunk, chunks joined by Chan et al.).
// Best-of joins keep the first extreme index; NaN beats numbers (the first
// NaN wins), as on the CPU.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t x_, out_, part_;
  int nk, nr;
  int kd[8];
  int ks[8];
  int rd[8];
  int rs[8];
  int nout, nred, g, rows, S, chunk, mode, corr, phase;
  uint64_t y_; // mode 2: the second factor, x's shape
};

#if defined(RED_MAX) || defined(RED_MIN)
#define RED_BEST 1
#endif

// sums of floats accumulate in T (tree order), integers wrap like the CPU's
// int64 sum cast back to T
#define ACC T

shared ACC sh_a[256];
#ifdef RED_BEST
shared int sh_i[256];
#endif

uint tid, lane, ls;

int kept_off(Params p, int o) {
  int off = 0;
  for (int d = p.nk - 1; d >= 0; d--) {
    int q = o / p.kd[d];
    off += (o - q * p.kd[d]) * p.ks[d];
    o = q;
  }
  return off;
}

int red_off(Params p, int j) {
  if (p.nr == 1) return j * p.rs[0];
  int off = 0;
  for (int d = p.nr - 1; d > 0; d--) {
    int q = j / p.rd[d];
    off += (j - q * p.rd[d]) * p.rs[d];
    j = q;
  }
  return off + j * p.rs[0];
}

#ifdef RED_BEST
bool is_nan(T v) {
#if T_IS_FLOAT
  return isnan(v);
#else
  return false;
#endif
}

// (av, ai) <- join((av, ai), (bv, bi)); index < 0: no element yet
void best_join(inout T av, inout int ai, T bv, int bi) {
  if (bi < 0) return;
  bool take;
  if (ai < 0) {
    take = true;
  } else {
    bool an = is_nan(av), bn = is_nan(bv);
    if (an != bn) {
      take = bn;
    } else {
#ifdef RED_MIN
      bool better = !an && bv < av, worse = !an && av < bv;
#else
      bool better = !an && bv > av, worse = !an && av > bv;
#endif
      take = better || (!worse && bi < ai);
    }
  }
  if (take) {
    av = bv;
    ai = bi;
  }
}

// joins the g lanes of each output; every lane gets the result
void tree_best(inout T v, inout int i) {
  sh_a[tid] = v;
  sh_i[tid] = i;
  barrier();
  for (uint s = uint(Params(push.params).g) / 2; s > 0; s >>= 1) {
    if (lane < s) {
      T av = sh_a[tid];
      int ai = sh_i[tid];
      best_join(av, ai, sh_a[tid + s * ls], sh_i[tid + s * ls]);
      sh_a[tid] = av;
      sh_i[tid] = ai;
    }
    barrier();
  }
  v = sh_a[tid - lane * ls];
  i = sh_i[tid - lane * ls];
  barrier();
}
#else
ACC tree_sum(ACC a) {
  sh_a[tid] = a;
  barrier();
  for (uint s = uint(Params(push.params).g) / 2; s > 0; s >>= 1) {
    if (lane < s) sh_a[tid] = sh_a[tid] + sh_a[tid + s * ls];
    barrier();
  }
  a = sh_a[tid - lane * ls];
  barrier();
  return a;
}
#endif

// part layout: three arrays of nout*S 8-byte slots (values, indices/means, m2)
uint64_t part_arr(Params p, int k) { return p.part_ + uint64_t(k) * uint64_t(p.nout) * uint64_t(p.S) * 8; }

void finish(Params p) {
  GRID_LOOP(ou, p.nout) {
    int o = int(ou), S = p.S;
#if defined(RED_BEST)
    BufT pv = BufT(part_arr(p, 0));
    BufI32 pi = BufI32(part_arr(p, 1));
    T v = T(0);
    int i = -1;
    for (int k = 0; k < S; k++) best_join(v, i, pv.v[o * S + k], pi.v[o * S + k]);
    if (p.mode == 1)
      BufI64(p.out_).v[o] = int64_t(i < 0 ? 0 : i);
    else
      BufT(p.out_).v[o] = i < 0 ? T(0) : v;
#elif defined(RED_VAR)
    BufI32 pc = BufI32(part_arr(p, 0));
    BufT pm = BufT(part_arr(p, 1)), pq = BufT(part_arr(p, 2));
    ACC n = ACC(0), mean = ACC(0), m2 = ACC(0);
    for (int k = 0; k < S; k++) {
      int c = pc.v[o * S + k];
      if (c == 0) continue;
      ACC cn = ACC(c), nn = n + cn, delta = pm.v[o * S + k] - mean;
      mean += delta * (cn / nn);
      m2 += pq.v[o * S + k] + delta * delta * (n * cn / nn);
      n = nn;
    }
    BufT(p.out_).v[o] = T(m2 / ACC(p.nred - p.corr));
#else
    BufT pv = BufT(part_arr(p, 0));
    ACC a = ACC(0);
    for (int k = 0; k < S; k++) a += pv.v[o * S + k];
#if T_IS_FLOAT
    if (p.mode == 1) a /= ACC(p.nred);
#endif
    BufT(p.out_).v[o] = T(a);
#endif
  }
}

void main() {
  Params p = Params(push.params);
  if (p.phase == 1) {
    finish(p);
    return;
  }
  BufT x = BufT(p.x_);
  tid = gl_LocalInvocationID.x;
  uint g = uint(p.g), TX = 256 / g;
  uint slot;
  if (p.rows != 0) {
    lane = tid % g;
    slot = tid / g;
    ls = 1;
  } else {
    lane = tid / TX;
    slot = tid % TX;
    ls = TX;
  }
  int S = p.S;
  uint units = (uint(p.nout) + TX - 1) / TX * uint(S);
  for (uint u = gl_WorkGroupID.x; u < units; u += gl_NumWorkGroups.x) { // uniform per group
    int o = int((u / uint(S)) * TX + slot), s = int(u % uint(S));
    bool live = o < p.nout;
    int j0 = s * p.chunk, j1 = min(j0 + p.chunk, p.nred);
    int jend = live ? j1 : j0; // idle lanes still join (with nothing)
    int base = live ? kept_off(p, o) : 0;
    int gi = int(g);
#if defined(RED_BEST)
    T v = T(0);
    int bi = -1;
    if (p.nr == 1) {
      int st = p.rs[0];
      for (int j = j0 + int(lane); j < jend; j += gi) best_join(v, bi, x.v[base + j * st], j);
    } else {
      for (int j = j0 + int(lane); j < jend; j += gi) best_join(v, bi, x.v[base + red_off(p, j)], j);
    }
    tree_best(v, bi);
    if (live && lane == 0) {
      if (S > 1) {
        BufT(part_arr(p, 0)).v[o * S + s] = v;
        BufI32(part_arr(p, 1)).v[o * S + s] = bi;
      } else if (p.mode == 1) {
        BufI64(p.out_).v[o] = int64_t(bi < 0 ? 0 : bi);
      } else {
        BufT(p.out_).v[o] = bi < 0 ? T(0) : v;
      }
    }
#else
    ACC a = ACC(0);
    if (p.nr == 1 && p.mode == 2) {
      BufT y = BufT(p.y_);
      int st = p.rs[0];
      for (int j = j0 + int(lane); j < jend; j += gi) a += x.v[base + j * st] * y.v[base + j * st];
    } else if (p.nr == 1) {
      int st = p.rs[0];
      for (int j = j0 + int(lane); j < jend; j += gi) a += x.v[base + j * st];
    } else {
      for (int j = j0 + int(lane); j < jend; j += gi) a += x.v[base + red_off(p, j)];
    }
    a = tree_sum(a);
#if defined(RED_VAR)
    // second pass around the chunk's mean, as the CPU computes the variance
    int cnt = max(j1 - j0, 0);
    ACC mean = cnt > 0 ? a / ACC(cnt) : ACC(0), q = ACC(0);
    for (int j = j0 + int(lane); j < jend; j += gi) {
      ACC d = x.v[base + red_off(p, j)] - mean;
      q += d * d;
    }
    q = tree_sum(q);
    if (live && lane == 0) {
      if (S > 1) {
        BufI32(part_arr(p, 0)).v[o * S + s] = cnt;
        BufT(part_arr(p, 1)).v[o * S + s] = mean;
        BufT(part_arr(p, 2)).v[o * S + s] = q;
      } else {
        BufT(p.out_).v[o] = T(q / ACC(p.nred - p.corr));
      }
    }
#else
    if (live && lane == 0) {
      if (S > 1) {
        BufT(part_arr(p, 0)).v[o * S + s] = a;
      } else {
#if T_IS_FLOAT
        if (p.mode == 1) a /= ACC(p.nred);
#endif
        BufT(p.out_).v[o] = T(a);
      }
    }
#endif
#endif
  }
}
