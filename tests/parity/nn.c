/* Parity cases: layer norm, rms norm, rope, batch norm, softmax cross-entropy (and its edges:
 * labels out of range, every label ignored, large logits), and the fused attention, plain and with
 * a key mask. */
#include "parity.h"

/* ---------------------------------------------------------------- nn ops */

void cases_layernorm(void) {
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(5, 7, 33);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s gamma,beta [33]", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *gm = pc_in(&pc, dt, ASG_SHAPE(33), 0.5, 1.5);
      asg_tensor *bt = pc_in(&pc, dt, ASG_SHAPE(33), -1, 1);
      pc_out(&pc, asg_layernorm(x, gm, bt, 1e-5), "y");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(257, 300);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s gamma [300]", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *gm = pc_in(&pc, dt, ASG_SHAPE(300), 0.5, 1.5);
      pc_out(&pc, asg_layernorm(x, gm, NULL, 1e-5), "y");
      pc_finish(&pc);
    }
    /* CUDA computes dx and dgamma in one pass for rows of <= 1024 columns
     * (K = 24 and 32 values a lane; more rows than its 2048 warps; and wider
     * rows, which take the two kernels) */
    static const int64_t wide[3][2] = {{40, 768}, {4100, 1000}, {3, 1025}};
    for (int w = 0; w < 3; w++) {
      pcase pc;
      asg_shape s = ASG_SHAPE(wide[w][0], wide[w][1]);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s gamma,beta", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *gm = pc_in(&pc, dt, ASG_SHAPE(wide[w][1]), 0.5, 1.5);
      asg_tensor *bt = pc_in(&pc, dt, ASG_SHAPE(wide[w][1]), -1, 1);
      pc_out(&pc, asg_layernorm(x, gm, bt, 1e-5), "y");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(9, 17);
      pc_begin(&pc, C_ACCUM, "layernorm %s %s no affine eps 1e-3", dtn(dt), shp(s));
      pc_out(&pc, asg_layernorm(pc_in(&pc, dt, s, -2, 3), NULL, NULL, 1e-3), "y");
      pc_finish(&pc);
    }
  }
}

/* rmsnorm: rows narrower and wider than a warp's or work group's share,
 * wider than kWarpRowsMaxC (CUDA's block-per-row kernel), rank 1, no
 * weight; the gradient (generic ops) comes with pc_finish */
void cases_rmsnorm(void) {
  static const int64_t sh[][3] = {
      {5, 7, 33}, {257, 300, 0}, {40, 768, 0}, {3, 5000, 0}, {17, 0, 0}};
  static const int rk[] = {3, 2, 2, 2, 1};
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    for (int k = 0; k < (int)(sizeof rk / sizeof rk[0]); k++) {
      asg_shape s = {rk[k], {0}};
      for (int i = 0; i < rk[k]; i++)
        s.dims[i] = sh[k][i];
      int64_t C = s.dims[rk[k] - 1];
      bool nw = k == 4; /* no weight, a larger eps */
      pcase pc;
      pc_begin(&pc, C_ACCUM, "rmsnorm %s %s%s", dtn(dt), shp(s), nw ? " no weight eps 1e-3" : "");
      asg_tensor *x = pc_in(&pc, dt, s, -2, 3);
      asg_tensor *w = nw ? NULL : pc_in(&pc, dt, ASG_SHAPE(C), 0.5, 1.5);
      pc_out(&pc, asg_rmsnorm(x, w, nw ? 1e-3 : 1e-6), "y");
      pc_finish(&pc);
    }
  }
}

/* rope: x [B,H,T,D] with [T,D] tables and with [B,1,T,D] tables (D = 64,
 * Llama's head size), an odd T with a D that is not a multiple of 4 and a
 * sine table broadcast over D, and rank 2 with a cos of rank 1; gradients
 * of x and of both tables (summed over the broadcast dims) come with
 * pc_finish */
void cases_rope(void) {
  static const struct {
    asg_shape x, c, s;
  } rc[] = {{{4, {2, 4, 5, 64}}, {2, {5, 64}}, {2, {5, 64}}},
            {{4, {2, 4, 5, 64}}, {4, {2, 1, 5, 64}}, {4, {2, 1, 5, 64}}},
            {{4, {1, 3, 7, 6}}, {2, {7, 6}}, {4, {1, 1, 7, 1}}},
            {{2, {3, 10}}, {1, {10}}, {2, {3, 10}}}};
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof rc / sizeof rc[0]; k++) {
      asg_dtype dt = FDT[d];
      pcase pc;
      pc_begin(&pc, C_ELEM, "rope %s x%s cos%s sin%s", dtn(dt), shp(rc[k].x), shp(rc[k].c),
               shp(rc[k].s));
      pc.gcls = C_ACCUM; /* the tables' gradients sum over broadcast dims */
      asg_tensor *x = pc_in(&pc, dt, rc[k].x, -2, 2);
      asg_tensor *c = pc_in(&pc, dt, rc[k].c, -1, 1), *s = pc_in(&pc, dt, rc[k].s, -1, 1);
      pc_out(&pc, asg_rope(x, c, s), "y");
      pc_finish(&pc);
    }
}

/* batchnorm: channels of runs shorter and longer than a GPU block, [N, C]
 * (runs of one), and no affine; the last three have channels of more
 * values than one Vulkan work group takes (split, partial sums merged) */
void cases_batchnorm(void) {
  static const int64_t sh[][4] = {{8, 5, 6, 7},    {64, 12, 0, 0},  {3, 4, 1000, 0}, {2, 3, 1, 1},
                                  {300, 40, 0, 0}, {3, 4, 3000, 0}, {300, 8, 4, 0}};
  static const int rk[] = {4, 2, 3, 4, 2, 3, 3};
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    for (int k = 0; k < (int)(sizeof rk / sizeof rk[0]); k++) {
      asg_shape s = {rk[k], {0}};
      for (int i = 0; i < rk[k]; i++)
        s.dims[i] = sh[k][i];
      int64_t C = s.dims[1];
      pcase pc;
      pc_begin(&pc, C_ACCUM, "batchnorm %s %s%s", dtn(dt), shp(s), k == 3 ? " no affine" : "");
      asg_tensor *x = pc_in(&pc, dt, s, -2, 4);
      asg_tensor *gm = k == 3 ? NULL : pc_in(&pc, dt, ASG_SHAPE(C), 0.5, 1.5);
      asg_tensor *bt = k == 3 ? NULL : pc_in(&pc, dt, ASG_SHAPE(C), -1, 1);
      pc_out(&pc, asg_batchnorm(x, gm, bt, 1e-5), "y");
      pc_finish(&pc);
    }
  }
}

void cases_softmax_ce(void) {
  for (int d = 0; d < 2; d++)
    for (int it = 0; it < 2; it++) {
      static const struct {
        int rows, classes;
        double smooth;
        int64_t ignore;
      } cf[] = {{37, 11, 0.1, -100},
                {29, 5, 0.0, 2},
                {257, 301, 0.05, -1},
                /* rows of four-element vectors: a warp a row, a block a row */
                {64, 1000, 0.1, -100},
                {16, 5000, 0.0, 3}};
      for (size_t k = 0; k < sizeof cf / sizeof cf[0]; k++) {
        pcase pc;
        asg_shape sl = ASG_SHAPE(cf[k].rows, cf[k].classes);
        pc_begin(&pc, C_ACCUM, "softmax_cross_entropy %s labels %s %s smoothing=%g ignore=%lld",
                 dtn(FDT[d]), dtn(IDT[it]), shp(sl), cf[k].smooth, (long long)cf[k].ignore);
        asg_tensor *logits = pc_in(&pc, FDT[d], sl, -4, 4);
        long n = cf[k].rows;
        double *lab = rv(n, 0, cf[k].classes, true);
        for (long i = 0; i < n; i += 7)
          lab[i] = (double)cf[k].ignore; /* some ignored rows */
        asg_tensor *labels = pc_in_vals(&pc, IDT[it], ASG_SHAPE(cf[k].rows), lab);
        free(lab);
        pc_out(&pc, asg_softmax_cross_entropy(logits, labels, cf[k].smooth, cf[k].ignore), "loss");
        pc_finish(&pc);
      }
    }
}

/* Softmax CE and log_softmax / softmax at the edges: labels out of range
 * (unchecked: rows left out), every label ignored (loss NaN, gradient 0),
 * and large logits (f64 near +-1e12, f32 ties near +-3e37), whose results
 * the kernels compute as (x - max) - log(sum exp(x - max)). */
void cases_ce_edges(void) {
  for (int d = 0; d < 2; d++) {
    const asg_dtype dt = FDT[d];
    const bool f64 = dt == ASG_F64;
    pcase pc;
    asg_shape sl = ASG_SHAPE(33, 10);
    pc_begin(&pc, C_ACCUM, "softmax_cross_entropy %s labels out of range (unchecked)", dtn(dt));
    pc.unchecked = true;
    asg_tensor *logits = pc_in(&pc, dt, sl, -4, 4);
    asg_tensor *labels = pc_in(&pc, ASG_I64, ASG_SHAPE(33), -3, 13);
    pc_out(&pc, asg_softmax_cross_entropy(logits, labels, 0.1, -100), "loss");
    pc_finish(&pc);

    pc_begin(&pc, C_ACCUM, "softmax_cross_entropy %s every label ignored (NaN)", dtn(dt));
    logits = pc_in(&pc, dt, ASG_SHAPE(6, 5), -4, 4);
    double ign[6] = {-100, -100, -100, -100, -100, -100};
    labels = pc_in_vals(&pc, ASG_I32, ASG_SHAPE(6), ign);
    pc_out(&pc, asg_softmax_cross_entropy(logits, labels, 0.1, -100), "loss");
    pc_finish(&pc);

    /* large logits: f64 offsets of +-1e12 (x - max stays exact), f32 rows
     * of ties at +-3e37 and one ulp below */
    const long R = 40, C = 37;
    double *v = rv(R * C, 0, f64 ? 8 : 2, !f64);
    for (long i = 0; i < R * C; i++) {
      const double big = (i / C) % 2 ? -1 : 1;
      v[i] = f64 ? big * 1e12 + v[i] : (double)(float)(big * 3e37) * (1 - v[i] * 0x1p-23);
    }
    pc_begin(&pc, C_ACCUM, "log_softmax, softmax, softmax_cross_entropy %s of large logits",
             dtn(dt));
    logits = pc_in_vals(&pc, dt, ASG_SHAPE(R, C), v);
    free(v);
    labels = pc_in(&pc, ASG_I32, ASG_SHAPE(R), 0, (double)C);
    pc_out(&pc, asg_log_softmax(logits, -1), "log_softmax");
    pc_out(&pc, asg_softmax(logits, -1), "softmax");
    pc_out(&pc, asg_softmax_cross_entropy(logits, labels, 0.1, -100), "ce");
    pc_finish(&pc);
  }
}

/* ------------------------------------------------------- fused attention */

/* attention(q, k, v): forward and, through the harness's loss, dq (the
 * attention_bwd_q node itself) and dk, dv (slices of attention_bwd_kv's
 * packed output), both fed by attention_lse. Those two are inputs of the
 * compared gradients only, out of the suite's reach, so they are recorded
 * by name once a case ran them. The program under test takes the lse from
 * the forward step (an aux output, src/passes/fuse_stats.c): one step fewer
 * than the unfused reference's. */
void cases_attention(void) {
  const struct {
    asg_shape q, kv;
    double scale;
    bool causal;
  } cf[] = {
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35355339059327373, false},
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35355339059327373, true},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.6, false},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.6, true}, /* keys 5..8 unseen: dk = dv = 0 */
      {ASG_SHAPE(3, 9, 5), ASG_SHAPE(3, 4, 5), 1.3, true}, /* rows 3..8 see every key */
      {ASG_SHAPE(7, 3), ASG_SHAPE(7, 3), 1.0, false},      /* no leading dims */
      {ASG_SHAPE(1, 2, 70, 64), ASG_SHAPE(1, 2, 70, 64), 0.125, true}, /* > one 64-row tile */
      {ASG_SHAPE(2, 1, 33, 32), ASG_SHAPE(2, 1, 97, 32), 0.2, false},
      {ASG_SHAPE(2, 10, 16), ASG_SHAPE(2, 80, 16), 0.3, true},           /* keys 10..79 unseen */
      {ASG_SHAPE(1, 2, 200, 64), ASG_SHAPE(1, 2, 200, 64), 0.125, true}, /* > one 128 tile */
      /* decode steps: a few query rows over many keys (split over the keys) */
      {ASG_SHAPE(2, 3, 1, 64), ASG_SHAPE(2, 3, 300, 64), 0.125, false},
      {ASG_SHAPE(2, 2, 3, 40), ASG_SHAPE(2, 2, 129, 40), 0.2, true},
      {ASG_SHAPE(1, 2, 8, 128), ASG_SHAPE(1, 2, 260, 128), 0.09, false},
      {ASG_SHAPE(3, 2, 6), ASG_SHAPE(3, 50, 6), 0.4, false}, /* D % 4 != 0 */
  };
  static const char *const ops[] = {"attention_lse", "attention_bwd_kv"};
  for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++)
    for (int d = 0; d < 2; d++) {
      pcase pc;
      pc_begin(&pc, C_ACCUM, "attention %s q%s kv%s scale=%g causal=%d", dtn(FDT[d]), shp(cf[c].q),
               shp(cf[c].kv), cf[c].scale, cf[c].causal);
      asg_tensor *q = pc_in(&pc, FDT[d], cf[c].q, -1.5, 1.5);
      asg_tensor *k = pc_in(&pc, FDT[d], cf[c].kv, -1.5, 1.5);
      asg_tensor *v = pc_in(&pc, FDT[d], cf[c].kv, -2, 2);
      pc_out(&pc, asg_attention(q, k, v, cf[c].scale, cf[c].causal), "o");
      pc.fused = "aux";
      pc_finish(&pc);
    }
  for (int k = 0; k < 2; k++)
    for (int i = 0; i < g_n_ops && i < 256; i++)
      if (!g_covered[i] && strcmp(asg_op_name(i), ops[k]) == 0) {
        g_covered[i] = true;
        snprintf(g_first_case[i], sizeof g_first_case[i], "%s", "attention (gradients)");
      }
}

/* attention_masked: a key mask [L..., Tk] (L... leading dims of q) of 0/1
 * with some keys hidden; "empty" hides every key of mask row 1 (those
 * queries output zero and take no gradient). Forward and gradients through
 * the harness, as above. */
void cases_attention_masked(void) {
  const struct {
    asg_shape q, kv, m;
    double scale;
    bool causal, empty, tail; /* tail: keys past Tk / 2 hidden (a cache not filled yet) */
  } cf[] = {
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 13), 0.35, false, false, false},
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13), 0.35, true, false,
       false},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), ASG_SHAPE(2, 9), 0.6, false, true, false},
      {ASG_SHAPE(1, 2, 70, 64), ASG_SHAPE(1, 2, 70, 64), ASG_SHAPE(1, 70), 0.125, true, false,
       false},
      {ASG_SHAPE(2, 2, 33, 32), ASG_SHAPE(2, 2, 97, 32), ASG_SHAPE(2, 97), 0.2, false, true, false},
      /* a decode step over a KV cache: 3 query rows (grouped heads), 333 keys */
      {ASG_SHAPE(2, 2, 3, 64), ASG_SHAPE(2, 2, 333, 64), ASG_SHAPE(2, 333), 0.125, false, true,
       false},
      {ASG_SHAPE(2, 4, 1, 64), ASG_SHAPE(2, 4, 600, 64), ASG_SHAPE(2, 600), 0.125, false, false,
       true},
  };
  for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++)
    for (int d = 0; d < 2; d++) {
      pcase pc;
      pc_begin(&pc, C_ACCUM, "attention_masked %s q%s kv%s mask%s causal=%d%s", dtn(FDT[d]),
               shp(cf[c].q), shp(cf[c].kv), shp(cf[c].m), cf[c].causal,
               cf[c].empty ? " (a row hides every key)" : "");
      asg_tensor *q = pc_in(&pc, FDT[d], cf[c].q, -1.5, 1.5);
      asg_tensor *k = pc_in(&pc, FDT[d], cf[c].kv, -1.5, 1.5);
      asg_tensor *v = pc_in(&pc, FDT[d], cf[c].kv, -2, 2);
      const long nm = numel(cf[c].m), tk = cf[c].m.dims[cf[c].m.ndim - 1];
      double *mv = malloc(sizeof *mv * (size_t)nm);
      for (long i = 0; mv && i < nm; i++) /* key 0 of each row hidden too, now and then */
        mv[i] = (cf[c].empty && i / tk == 1) || (cf[c].tail && i % tk >= tk / 2) ||
                        (i * 3 + i / tk * 5) % 4 == 0
                    ? 0
                    : 1;
      asg_tensor *m = mv ? pc_in_vals(&pc, FDT[d], cf[c].m, mv) : NULL;
      free(mv);
      pc_out(&pc, asg_attention_masked(q, k, v, m, cf[c].scale, cf[c].causal), "o");
      pc_finish(&pc);
    }
}
