/* Parity cases: reductions (and softmax, argmax), matmul, shape ops
 * (reshape, permute, slice, concat/split, broadcast_to), indexing (gather,
 * scatter_add, one_hot), sampling filters, sort, topk and cumsum. */
#include "parity.h"

/* -------------------------------------------------------------- reductions */

enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_VAR, R_ARGMAX, R_SOFTMAX, R_LOGSOFTMAX, R_COUNT };
static const char *const RNAME[R_COUNT] = {"sum", "mean",   "max",     "min",
                                           "var", "argmax", "softmax", "log_softmax"};

static asg_tensor *apply_reduce(int k, asg_tensor *x, asg_axes ax, bool keep) {
  switch (k) {
  case R_SUM: return asg_sum(x, ax, keep);
  case R_MEAN: return asg_mean(x, ax, keep);
  case R_MAX: return asg_max(x, ax, keep);
  case R_MIN: return asg_min(x, ax, keep);
  case R_VAR: return asg_var(x, ax, 1, keep);
  case R_ARGMAX: return asg_argmax(x, ax.axis[0], keep);
  case R_SOFTMAX: return asg_softmax(x, ax.axis[0]);
  default: return asg_log_softmax(x, ax.axis[0]);
  }
}

static const char *axes_str(asg_axes ax) {
  static char buf[4][40];
  static int j;
  j = (j + 1) % 4;
  if (ax.n == 0) return "all";
  int o = 0;
  for (int i = 0; i < ax.n; i++)
    o += snprintf(buf[j] + o, sizeof buf[j] - (size_t)o, "%s%d", i ? "," : "(", ax.axis[i]);
  snprintf(buf[j] + o, sizeof buf[j] - (size_t)o, ")");
  return buf[j];
}

static void one_reduce(int k, asg_dtype dt, asg_shape s, asg_axes ax, bool keep) {
  pcase pc;
  bool exact = k == R_ARGMAX || k == R_MAX || k == R_MIN || !asg_dtype_is_float(dt);
  pc_begin(&pc, exact ? C_EXACT : C_ACCUM, "%s %s %s axes=%s keepdim=%d", RNAME[k], dtn(dt), shp(s),
           axes_str(ax), keep);
  asg_tensor *x = asg_dtype_is_float(dt) ? pc_in(&pc, dt, s, -3, 3) : pc_in(&pc, dt, s, -500, 500);
  pc_out(&pc, apply_reduce(k, x, ax, keep), "y");
  pc_finish(&pc);
}

void cases_reduce(void) {
  asg_shape big = ASG_SHAPE(257, 300), small = ASG_SHAPE(6, 7, 9);
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    for (int k = 0; k < R_COUNT; k++) {
      one_reduce(k, dt, big, ASG_AXES(1), false);
      one_reduce(k, dt, big, ASG_AXES(0), false);
      if (k == R_ARGMAX || k == R_SOFTMAX || k == R_LOGSOFTMAX) {
        one_reduce(k, dt, small, ASG_AXES(1), k == R_ARGMAX);
        one_reduce(k, dt, small, ASG_AXES(-1), false);
      } else {
        one_reduce(k, dt, small, ASG_AXES(0, 2), true);
        one_reduce(k, dt, small, ASG_ALL_AXES, false);
      }
    }
    one_reduce(R_SUM, dt, big, ASG_ALL_AXES, false);
    /* [R, C] -> [C] in four-column vectors and chunks of rows; short rows
     * (8 threads a row) of 64 and 100 elements */
    for (int k = 0; k <= R_ARGMAX; k++) {
      one_reduce(k, dt, ASG_SHAPE(2048, 96), ASG_AXES(0), false);
      one_reduce(k, dt, ASG_SHAPE(300, 64), ASG_AXES(1), false);
      one_reduce(k, dt, ASG_SHAPE(40, 100), ASG_AXES(-1), false);
    }
  }
  for (size_t j = 0; j < 3; j++) /* integer four-column vectors */
    one_reduce((int[]){R_SUM, R_MAX, R_ARGMAX}[j], ASG_I32, ASG_SHAPE(600, 8), ASG_AXES(0), false);
  /* integer reductions */
  asg_shape si = ASG_SHAPE(37, 23);
  static const int ik[] = {R_SUM, R_MAX, R_MIN, R_ARGMAX};
  for (int d = 0; d < 2; d++)
    for (size_t j = 0; j < sizeof ik / sizeof ik[0]; j++) {
      one_reduce(ik[j], IDT[d], si, ASG_AXES(0), false);
      if (ik[j] != R_ARGMAX)
        one_reduce(ik[j], IDT[d], si, ASG_ALL_AXES, false);
      else
        one_reduce(ik[j], IDT[d], si, ASG_AXES(1), true);
    }
  /* argmax with ties: the first maximum */
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    asg_shape s = ASG_SHAPE(19, 27);
    pcase pc;
    pc_begin(&pc, C_EXACT, "argmax ties %s %s axes=(1)", dtn(dt), shp(s));
    pc_out(&pc, asg_argmax(pc_in_int(&pc, dt, s, 0, 3), 1, false), "y");
    pc_finish(&pc);
  }
}

/* ------------------------------------------------------------------ matmul */

static void one_matmul(asg_dtype dt, asg_shape sa, asg_shape sb, bool ta, bool tb) {
  pcase pc;
  pc_begin(&pc, C_ACCUM, "matmul %s %sx%s ta=%d tb=%d", dtn(dt), shp(sa), shp(sb), ta, tb);
  asg_tensor *a = pc_in(&pc, dt, sa, -1, 1), *b = pc_in(&pc, dt, sb, -1, 1);
  pc_out(&pc, asg_matmul_t(a, b, ta, tb), "y");
  pc_finish(&pc);
}

void cases_matmul(void) {
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    one_matmul(dt, ASG_SHAPE(3, 5, 7), ASG_SHAPE(7, 4), false, false);
    one_matmul(dt, ASG_SHAPE(3, 5, 7), ASG_SHAPE(4, 7), false, true);
    one_matmul(dt, ASG_SHAPE(3, 7, 5), ASG_SHAPE(7, 4), true, false);
    one_matmul(dt, ASG_SHAPE(3, 7, 5), ASG_SHAPE(3, 4, 7), true, true);
    one_matmul(dt, ASG_SHAPE(2, 1, 5, 7), ASG_SHAPE(3, 7, 4), false, false);
    one_matmul(dt, ASG_SHAPE(1, 9), ASG_SHAPE(9, 1), false, false);
    one_matmul(dt, ASG_SHAPE(65, 129), ASG_SHAPE(129, 67), false, false);
    one_matmul(dt, ASG_SHAPE(129, 65), ASG_SHAPE(67, 129), true, true);
    /* a few rows times W^T (CUDA: the skinny-product kernel, cuda_gemv.cu):
     * K a multiple of 4 or not, N not a multiple of its 4 rows a block */
    one_matmul(dt, ASG_SHAPE(1, 1, 96), ASG_SHAPE(67, 96), false, true);
    one_matmul(dt, ASG_SHAPE(8, 257), ASG_SHAPE(33, 257), false, true);
    one_matmul(dt, ASG_SHAPE(2, 3, 1040), ASG_SHAPE(130, 1040), false, true);
    /* N large enough that a block takes 4 rows of W (3070 on 132 SMs) or 2
     * (767), the last block short */
    one_matmul(dt, ASG_SHAPE(1, 64), ASG_SHAPE(3070, 64), false, true);
    one_matmul(dt, ASG_SHAPE(3, 99), ASG_SHAPE(767, 99), false, true);
  }
  /* relu?(a b + bias): one matmul_bias_act step (src/passes/fuse_linear.c), a
   * batched [3,5,7] x [7,4] and a broadcast batch, against the unfused CPU */
  static const struct {
    asg_shape a, b;
    bool tb;
    int act; /* 0 none, 1 relu, 2 gelu_tanh */
  } lc[] = {{{2, {70, 48}}, {2, {40, 48}}, true, 1},
            {{3, {3, 5, 7}}, {2, {7, 4}}, false, 0},
            {{4, {2, 1, 5, 7}}, {3, {3, 7, 4}}, false, 1},
            {{2, {1, 768}}, {2, {50, 768}}, true, 2}, /* decode-step shapes */
            {{3, {1, 5, 300}}, {2, {21, 300}}, true, 1},
            {{2, {8, 130}}, {2, {9, 130}}, true, 0}};
  static const char *const act_name[] = {"id", "relu", "gelu_tanh"};
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof lc / sizeof lc[0]; k++) {
      asg_dtype dt = FDT[d];
      int64_t N = lc[k].tb ? lc[k].b.dims[0] : lc[k].b.dims[lc[k].b.ndim - 1];
      pcase pc;
      pc_begin(&pc, C_ACCUM, "%s(matmul + bias) %s a%s b%s%s", act_name[lc[k].act], dtn(dt),
               shp(lc[k].a), shp(lc[k].b), lc[k].tb ? "^T" : "");
      asg_tensor *a = pc_in(&pc, dt, lc[k].a, -1, 1), *b = pc_in(&pc, dt, lc[k].b, -1, 1);
      asg_tensor *y =
          asg_add(asg_matmul_t(a, b, false, lc[k].tb), pc_in(&pc, dt, ASG_SHAPE(N), -0.5, 0.5));
      pc_out(&pc, lc[k].act == 1 ? asg_relu(y) : lc[k].act == 2 ? asg_gelu_tanh(y) : y, "y");
      pc.fused = "matmul_bias_act";
      pc_finish(&pc);
    }
  /* (a w^T + bias) + r: the residual folded in as input 3 (fuse.c); a few
   * rows (CUDA: cuda_gemv.cu) and many (cuBLASLt's C operand), r on either
   * side of the add */
  static const struct {
    asg_shape a;
    int64_t N;
    bool r_first, bias;
  } rc[] = {{{2, {1, 96}}, 40, false, true},
            {{3, {2, 3, 64}}, 33, true, true},
            {{2, {70, 48}}, 36, false, true},
            {{2, {1, 96}}, 40, true, false},
            {{2, {70, 48}}, 36, false, false}};
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof rc / sizeof rc[0]; k++) {
      asg_dtype dt = FDT[d];
      const int64_t K = rc[k].a.dims[rc[k].a.ndim - 1];
      asg_shape ys = rc[k].a;
      ys.dims[ys.ndim - 1] = rc[k].N;
      pcase pc;
      pc_begin(&pc, C_ACCUM, "matmul%s + residual %s a%s N=%lld", rc[k].bias ? " + bias" : "",
               dtn(dt), shp(rc[k].a), (long long)rc[k].N);
      asg_tensor *a = pc_in(&pc, dt, rc[k].a, -1, 1);
      asg_tensor *w = pc_in(&pc, dt, ASG_SHAPE(rc[k].N, K), -0.3, 0.3);
      asg_tensor *b = rc[k].bias ? pc_in(&pc, dt, ASG_SHAPE(rc[k].N), -0.5, 0.5) : NULL;
      asg_tensor *r = pc_in(&pc, dt, ys, -2, 2);
      asg_tensor *y = asg_matmul_t(a, w, false, true);
      if (b) y = asg_add(y, b);
      pc_out(&pc, rc[k].r_first ? asg_add(r, y) : asg_add(y, r), "y");
      pc.fused = "matmul_bias_act";
      pc_finish(&pc);
    }
  /* three products of one x, one after the other (a Llama layer's q, k, v
   * when decoding): rows 1, 5 and 3, the second with a bias, K not a
   * multiple of 4 once */
  static const struct {
    asg_shape x;
    int64_t N[3];
  } qc[] = {
      {{2, {1, 64}}, {64, 32, 32}}, {{3, {5, 1, 48}}, {96, 24, 40}}, {{2, {3, 30}}, {7, 33, 5}}};
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof qc / sizeof qc[0]; k++) {
      asg_dtype dt = FDT[d];
      const int64_t K = qc[k].x.dims[qc[k].x.ndim - 1];
      pcase pc;
      pc_begin(&pc, C_ACCUM, "q, k, v products of one x %s x%s", dtn(dt), shp(qc[k].x));
      asg_tensor *x = pc_in(&pc, dt, qc[k].x, -1, 1);
      for (int r = 0; r < 3; r++) {
        asg_tensor *y =
            asg_matmul_t(x, pc_in(&pc, dt, ASG_SHAPE(qc[k].N[r], K), -0.3, 0.3), false, true);
        if (r == 1) y = asg_add(y, pc_in(&pc, dt, ASG_SHAPE(qc[k].N[r]), -0.5, 0.5));
        pc_out(&pc, y, r == 0 ? "q" : r == 1 ? "k" : "v");
      }
      pc_finish(&pc);
    }
}

/* ------------------------------------------------------------------- shape */

void cases_shape(void) {
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    bool fl = t < 2;
    tclass c = C_EXACT;
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(6, 35);
      pc_begin(&pc, c, "reshape %s %s->[5,7,6]", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -9, 9);
      pc_out(&pc, asg_reshape(x, ASG_SHAPE(5, 7, -1)), "y");
      pc_out(&pc, asg_flatten(asg_reshape(x, ASG_SHAPE(2, 3, 35)), 1), "flatten");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(3, 4, 5, 7);
      static const int perm[4] = {2, 0, 3, 1};
      pc_begin(&pc, c, "permute %s %s perm=(2,0,3,1); transpose(0,2)", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -9, 9);
      pc_out(&pc, asg_permute(x, perm), "permute");
      pc_out(&pc, asg_transpose(x, 0, 2), "transpose");
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(7, 23, 5);
      pc_begin(&pc, c, "slice %s %s axis1 1:-2:3, axis0 -4:, axis2 0:5:2", dtn(dt), shp(s));
      asg_tensor *x = pc_in(&pc, dt, s, -9, 9);
      pc_out(&pc, asg_slice(x, 1, 1, -2, 3), "slice1");
      pc_out(&pc, asg_slice(x, 0, -4, 100, 1), "slice0");
      pc_out(&pc, asg_slice(x, 2, 0, 5, 2), "slice2");
      pc_finish(&pc);
      if (fl) {
        /* multi-block slice and its slice_bwd */
        pcase pb;
        asg_shape sl = ASG_SHAPE(211, 347);
        pc_begin(&pb, c, "slice %s %s axis1 3:-5:2", dtn(dt), shp(sl));
        pc_out(&pb, asg_slice(pc_in(&pb, dt, sl, -1, 1), 1, 3, -5, 2), "y");
        pc_finish(&pb);
      }
    }
    {
      pcase pc;
      asg_shape s0 = ASG_SHAPE(4, 3, 5), s1 = ASG_SHAPE(4, 1, 5), s2 = ASG_SHAPE(4, 6, 5);
      pc_begin(&pc, c, "concat %s %s,%s,%s axis=1, axis=-3; split", dtn(dt), shp(s0), shp(s1),
               shp(s2));
      asg_tensor *xs[3] = {pc_in(&pc, dt, s0, -9, 9), pc_in(&pc, dt, s1, -9, 9),
                           pc_in(&pc, dt, s2, -9, 9)};
      asg_tensor *y = asg_concat(xs, 3, 1);
      pc_out(&pc, y, "concat");
      asg_tensor *ys[2] = {xs[0], xs[0]};
      pc_out(&pc, asg_concat(ys, 2, -3), "concat axis=-3");
      asg_tensor *parts[2] = {NULL, NULL};
      static const int64_t sizes[2] = {4, 6};
      if (y && asg_split(y, 1, 2, sizes, parts) == ASG_OK) {
        pc_out(&pc, parts[0], "split0");
        pc_out(&pc, parts[1], "split1");
      } else {
        pc_out(&pc, NULL, "split");
      }
      pc_finish(&pc);
    }
    {
      pcase pc;
      asg_shape s = ASG_SHAPE(1, 5, 1);
      pc_begin(&pc, c, "broadcast_to %s %s->[4,5,6]", dtn(dt), shp(s));
      pc.gcls = C_ACCUM;
      pc_out(&pc, asg_broadcast_to(pc_in(&pc, dt, s, -9, 9), ASG_SHAPE(4, 5, 6)), "y");
      pc_finish(&pc);
    }
  }
}

/* ---------------------------------------------------------------- indexing */

void cases_index(void) {
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    for (int it = 0; it < 2; it++) {
      asg_dtype idt = IDT[it];
      /* gather along axis 0 and 1 (duplicates and out-of-range indices:
       * unchecked, they gather zeros) */
      pcase pc;
      asg_shape sx = ASG_SHAPE(13, 7, 3), si = ASG_SHAPE(4, 5);
      pc_begin(&pc, C_EXACT, "gather %s idx %s %s[%s] axis 0,1 (unchecked)", dtn(dt), dtn(idt),
               shp(sx), shp(si));
      pc.gcls = C_ACCUM; /* gradient: scatter_add accumulation */
      pc.unchecked = true;
      asg_tensor *x = pc_in(&pc, dt, sx, -9, 9);
      asg_tensor *i0 = pc_in(&pc, idt, si, -1, 14);
      asg_tensor *i1 = pc_in(&pc, idt, ASG_SHAPE(11), -2, 9);
      pc_out(&pc, asg_gather(x, i0, 0), "gather0");
      pc_out(&pc, asg_gather(x, i1, 1), "gather1");
      pc_out(&pc, asg_embedding(asg_reshape(x, ASG_SHAPE(13, 21)), i0), "embedding");
      pc_finish(&pc);
    }
    for (int it = 0; it < 2; it++) {
      asg_dtype idt = IDT[it];
      /* scatter_add with duplicate indices, along axis 0 and -1 */
      pcase pc;
      asg_shape sx = ASG_SHAPE(9, 6);
      pc_begin(&pc, asg_dtype_is_float(dt) ? C_ACCUM : C_EXACT,
               "scatter_add %s idx %s x%s idx[11] axis 0,1 (unchecked)", dtn(dt), dtn(idt),
               shp(sx));
      pc.unchecked = true; /* index -1 on axis 0: skipped */
      asg_tensor *x = pc_in(&pc, dt, sx, -9, 9);
      asg_tensor *i0 = pc_in(&pc, idt, ASG_SHAPE(11), -1, 10);
      asg_tensor *s0 = pc_in(&pc, dt, ASG_SHAPE(11, 6), -9, 9);
      asg_tensor *i1 = pc_in(&pc, idt, ASG_SHAPE(11), 0, 6);
      asg_tensor *s1 = pc_in(&pc, dt, ASG_SHAPE(9, 11), -9, 9);
      pc_out(&pc, asg_scatter_add(x, i0, s0, 0), "scatter0");
      pc_out(&pc, asg_scatter_add(x, i1, s1, -1), "scatter1");
      pc_finish(&pc);
    }
  }
  /* multi-block gather / its scatter_add gradient */
  for (int d = 0; d < 2; d++) {
    pcase pc;
    asg_shape sx = ASG_SHAPE(301, 233), si = ASG_SHAPE(517);
    pc_begin(&pc, C_EXACT, "gather %s idx i64 %s[%s] axis 0", dtn(FDT[d]), shp(sx), shp(si));
    pc.gcls = C_ACCUM;
    asg_tensor *x = pc_in(&pc, FDT[d], sx, -1, 1);
    pc_out(&pc, asg_gather(x, pc_in(&pc, ASG_I64, si, 0, 301), 0), "y");
    pc_finish(&pc);
  }
  /* one_hot: every output dtype, both index dtypes; unchecked with
   * out-of-range rows (all zero), then checked with indices in range */
  for (int k = 0; k < 4; k++) {
    const int it = k % 2;
    const bool unchecked = k < 2;
    pcase pc;
    asg_shape si = ASG_SHAPE(5, 7);
    pc_begin(&pc, C_EXACT, "one_hot idx %s %s depth 9 -> f32,f64,i32,i64%s", dtn(IDT[it]), shp(si),
             unchecked ? " (unchecked)" : "");
    pc.unchecked = unchecked;
    asg_tensor *idx = pc_in(&pc, IDT[it], si, unchecked ? -1 : 0, unchecked ? 11 : 9);
    pc_out(&pc, asg_one_hot(idx, 9, ASG_F32), "f32");
    pc_out(&pc, asg_one_hot(idx, 9, ASG_F64), "f64");
    pc_out(&pc, asg_one_hot(idx, 9, ASG_I32), "i32");
    pc_out(&pc, asg_one_hot(idx, 9, ASG_I64), "i64");
    pc_finish(&pc);
  }
}

/* sample_filter: top-k then top-p of fed rows (distinct values, and integer
 * ties), settings fed as tensors. */
void cases_sample(void) {
  const struct { double k, p; } set[] = {{5, 1}, {0, 0.8}, {6, 0.5}, {0, 0}};
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < 4; k++)
      for (int ties = 0; ties < 2; ties++) {
        asg_shape s = ASG_SHAPE(4, 37);
        pcase pc;
        pc_begin(&pc, C_EXACT, "sample_filter %s %s k=%g p=%g%s", dtn(FDT[d]), shp(s), set[k].k,
                 set[k].p, ties ? " (ties)" : "");
        pc.no_grad = true;
        asg_tensor *x = ties ? pc_in_int(&pc, FDT[d], s, -4, 4) : pc_in(&pc, FDT[d], s, -4, 4);
        asg_tensor *tk = pc_in_vals(&pc, IDT[k % 2], ASG_SHAPE(1), &set[k].k);
        asg_tensor *tp = pc_in_vals(&pc, d ? FDT[d] : ASG_F32, ASG_SCALAR, &set[k].p);
        pc_out(&pc, asg_sample_filter(x, tk, tp), "sample_filter");
        pc_finish(&pc);
      }
}

/* sort, argsort, topk, cumsum: indices and values exact (ties from integer
 * values keep index order on every backend), rows below and above the GPU
 * kernels' shared-memory sizes; cumsum sums in another order: accum. */
void cases_sort(void) {
  const asg_dtype dts[4] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64};
  const struct {
    long o, n, i, k;
  } rs[4] = {{3, 37, 2, 37}, {2, 300, 1, 5}, {2, 3000, 1, 3000}, {1, 5000, 1, 40}};
  for (int d = 0; d < 4; d++)
    for (int r = 0; r < 4; r++) {
      const asg_shape s = ASG_SHAPE(rs[r].o, rs[r].n, rs[r].i);
      const bool desc = (d + r) % 2;
      pcase pc;
      pc_begin(&pc, C_EXACT, "argsort, sort, topk %ld %s %s %s", rs[r].k, desc ? "desc" : "asc",
               dtn(dts[d]), shp(s));
      asg_tensor *x = r % 2 ? pc_in(&pc, dts[d], s, -1000, 1000) : pc_in_int(&pc, dts[d], s, -4, 4);
      asg_tensor *v = NULL, *ix = NULL;
      asg_topk(x, rs[r].k, 1, desc, &v, &ix);
      pc_out(&pc, asg_argsort(x, 1, desc), "argsort");
      pc_out(&pc, asg_sort(x, -2, !desc), "sort");
      pc_out(&pc, v, "topk values");
      pc_out(&pc, ix, "topk indices");
      pc_finish(&pc);
    }
  for (int d = 0; d < 4; d++)
    for (int f = 0; f < 4; f++) {
      const asg_shape s = f % 2 ? ASG_SHAPE(3, 700) : ASG_SHAPE(5, 4, 3);
      pcase pc;
      pc_begin(&pc, C_ACCUM, "cumsum%s%s %s %s", f & 1 ? " exclusive" : "", f & 2 ? " reverse" : "",
               dtn(dts[d]), shp(s));
      asg_tensor *x = pc_in(&pc, dts[d], s, -50, 50);
      pc_out(&pc, asg_cumsum(x, f % 2 ? -1 : 1, f & 1, f & 2), "cumsum");
      pc_finish(&pc);
    }
}
