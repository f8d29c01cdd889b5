/* Matmul: 2-D, batched, broadcast batch dims, [B,T,K] x [K,N], all four
 * transpose combinations, f32 and f64, against a float64 triple loop;
 * sizes large enough for BLAS and threads; skinny products (M <= 8, the
 * CPU's GEMV-like kernel); gradient checks (first and
 * second order).
 * Tolerance: |got - want| <= tol * sum_k |a_ik b_kj| (+ tiny atol), with
 * tol = 1e-6 for f32 (K-term float sums) and 1e-13 for f64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Offset of the matrix for output batch index bi in an operand with
 * batch dims bs (broadcast against the output's batch dims os). */
static long batch_off(asg_shape bs, int nbs, asg_shape os, int nos, long bi) {
  long off = 0, stride = 1;
  for (int d = nos - 1; d >= 0; d--) {
    long i = bi % os.dims[d];
    bi /= (long)os.dims[d];
    int id = nbs - nos + d;
    if (id >= 0) {
      if (bs.dims[id] != 1) off += i * stride;
      stride *= (long)bs.dims[id];
    }
  }
  return off;
}

/* C[.., M, N] = op(A) op(B) in float64 plus the magnitude sum for the
 * error bound. */
static void reference(asg_shape sa, const double *A, asg_shape sb, const double *B, bool ta,
                      bool tb, asg_shape so, double *C, double *mag) {
  int ra = sa.ndim, rb = sb.ndim, ro = so.ndim;
  long M = (long)so.dims[ro - 2], N = (long)so.dims[ro - 1];
  long K = (long)sa.dims[ra - (ta ? 2 : 1)];
  long acols = (long)sa.dims[ra - 1], bcols = (long)sb.dims[rb - 1];
  long nbatch = 1;
  for (int i = 0; i < ro - 2; i++)
    nbatch *= (long)so.dims[i];
  for (long bi = 0; bi < nbatch; bi++) {
    const double *a = A + batch_off(sa, ra - 2, so, ro - 2, bi) * M * K;
    const double *b = B + batch_off(sb, rb - 2, so, ro - 2, bi) * K * N;
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) {
        double s = 0, m = 0;
        for (long k = 0; k < K; k++) {
          double x = ta ? a[k * acols + i] : a[i * acols + k];
          double y = tb ? b[j * bcols + k] : b[k * bcols + j];
          s += x * y;
          m += fabs(x * y);
        }
        C[bi * M * N + i * N + j] = s;
        mag[bi * M * N + i * N + j] = m;
      }
  }
}

static void check(asg_dtype dt, asg_shape sa, asg_shape sb, bool ta, bool tb,
                  asg_shape want_shape) {
  long na = (long)asg_shape_numel(sa), nb = (long)asg_shape_numel(sb);
  long no = (long)asg_shape_numel(want_shape);
  double *a = malloc(sizeof(double) * (size_t)na), *b = malloc(sizeof(double) * (size_t)nb);
  double *got = malloc(sizeof(double) * (size_t)no), *want = malloc(sizeof(double) * (size_t)no),
         *mag = malloc(sizeof(double) * (size_t)no);
  tu_rand((unsigned long long)(na + 3 * nb), a, na, -1, 1);
  tu_rand((unsigned long long)(7 * na + nb), b, nb, -1, 1);
  if (dt == ASG_F32) { /* the reference sees the values the kernel sees */
    for (long i = 0; i < na; i++)
      a[i] = (float)a[i];
    for (long i = 0; i < nb; i++)
      b[i] = (float)b[i];
  }
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_matmul_t(tu_constant(g, dt, sa, a), tu_constant(g, dt, sb, b), ta, tb);
  char what[160], s1[64], s2[64], s3[64];
  snprintf(what, sizeof what, "matmul %s %s%s x %s%s -> %s", asg_dtype_name(dt),
           asg_shape_str(sa, s1, sizeof s1), ta ? "^T" : "", asg_shape_str(sb, s2, sizeof s2),
           tb ? "^T" : "", asg_shape_str(want_shape, s3, sizeof s3));
  bool shape_ok =
      y && asg_shape_equal(asg_tensor_shape(y), want_shape) && asg_tensor_dtype(y) == dt;
  TU_CHECK(shape_ok, "%s: shape", what);
  if (shape_ok) {
    reference(sa, a, sb, b, ta, tb, want_shape, want, mag);
    int ok = tu_eval(g, y, got) == 0;
    double tol = dt == ASG_F32 ? 1e-6 : 1e-13;
    long bad = -1;
    for (long i = 0; ok && i < no && bad < 0; i++)
      if (!(fabs(got[i] - want[i]) <= tol * mag[i] + 1e-30)) bad = i;
    if (bad >= 0)
      printf("  %s: element %ld: got %.12g want %.12g\n", what, bad, got[bad], want[bad]);
    TU_CHECK(ok && bad < 0, "%s", what);
  }
  asg_graph_free(g);
  free(a), free(b), free(got), free(want), free(mag);
}

/* Shapes of A/B stored for op(A) [.., M, K], op(B) [.., K, N]. */
static asg_shape mat(asg_shape batch, int64_t r, int64_t c, bool t) {
  asg_shape s = batch;
  s.dims[s.ndim++] = t ? c : r;
  s.dims[s.ndim++] = t ? r : c;
  return s;
}

static void check_all_t(asg_dtype dt, asg_shape ba, asg_shape bb, asg_shape bo, int64_t M,
                        int64_t K, int64_t N) {
  for (int t = 0; t < 4; t++) {
    bool ta = t & 1, tb = t & 2;
    check(dt, mat(ba, M, K, ta), mat(bb, K, N, tb), ta, tb, mat(bo, M, N, false));
  }
}

/* ---------------- gradients ---------------- */
typedef struct mctx {
  bool ta, tb;
} mctx;

static asg_tensor *gb(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const mctx *c = ctx;
  return asg_matmul_t(xs[0], xs[1], c->ta, c->tb);
}

/* Second order: g = d/dA sum(tanh(op(A) op(B))); checked against A and B. */
static asg_tensor *gb2(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const mctx *c = ctx;
  asg_tensor *gr[2] = {NULL, NULL};
  asg_tensor *l = asg_sum(asg_tanh(asg_matmul_t(xs[0], xs[1], c->ta, c->tb)), ASG_ALL_AXES, false);
  return asg_grad(l, 2, xs, gr) == ASG_OK ? gr[0] : NULL;
}
static asg_tensor *gb2b(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const mctx *c = ctx;
  asg_tensor *gr[2] = {NULL, NULL};
  asg_tensor *y = asg_matmul_t(xs[0], xs[1], c->ta, c->tb);
  asg_tensor *l = asg_sum(asg_mul(y, y), ASG_ALL_AXES, false);
  return asg_grad(l, 2, xs, gr) == ASG_OK ? gr[1] : NULL;
}

int main(void) {
  const asg_dtype dts[] = {ASG_F32, ASG_F64};
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = dts[d];
    /* 2-D, odd sizes, vectors as matrices */
    check_all_t(dt, ASG_SCALAR, ASG_SCALAR, ASG_SCALAR, 5, 7, 3);
    check_all_t(dt, ASG_SCALAR, ASG_SCALAR, ASG_SCALAR, 1, 9, 1);
    check_all_t(dt, ASG_SCALAR, ASG_SCALAR, ASG_SCALAR, 6, 1, 4);
    /* batched [B,M,K] x [B,K,N] */
    check_all_t(dt, ASG_SHAPE(3), ASG_SHAPE(3), ASG_SHAPE(3), 4, 5, 6);
    /* broadcast batch dims [2,1,M,K] x [3,K,N] -> [2,3,M,N] */
    check_all_t(dt, ASG_SHAPE(2, 1), ASG_SHAPE(3), ASG_SHAPE(2, 3), 4, 5, 3);
    check_all_t(dt, ASG_SHAPE(1, 3), ASG_SHAPE(2, 1), ASG_SHAPE(2, 3), 2, 3, 4);
    /* [B,T,K] x [K,N] (one tall GEMM) and [M,K] x [B,K,N] */
    check_all_t(dt, ASG_SHAPE(2, 3), ASG_SCALAR, ASG_SHAPE(2, 3), 5, 4, 6);
    check_all_t(dt, ASG_SCALAR, ASG_SHAPE(4), ASG_SHAPE(4), 3, 5, 2);
    check_all_t(dt, ASG_SHAPE(3), ASG_SHAPE(1), ASG_SHAPE(3), 4, 2, 5);
    /* large enough for BLAS / threads */
    check_all_t(dt, ASG_SCALAR, ASG_SCALAR, ASG_SCALAR, 256, 300, 200);
    check(dt, ASG_SHAPE(4, 64, 96), ASG_SHAPE(96, 80), false, false, ASG_SHAPE(4, 64, 80));
    check(dt, ASG_SHAPE(3, 70, 50), ASG_SHAPE(3, 60, 50), false, true, ASG_SHAPE(3, 70, 60));
    /* skinny x W^T (a decode step: M = batch rows, K = width): every M up to
     * past the skinny kernel's 8, K below, at and past its 32 lanes, N split
     * over threads */
    for (int64_t M = 1; M <= 9; M++) {
      check(dt, ASG_SHAPE(M, 77), ASG_SHAPE(300, 77), false, true, ASG_SHAPE(M, 300));
      check(dt, ASG_SHAPE(M, 32), ASG_SHAPE(5, 32), false, true, ASG_SHAPE(M, 5));
      check(dt, ASG_SHAPE(M, 17), ASG_SHAPE(700, 17), false, true, ASG_SHAPE(M, 700));
    }
    check(dt, ASG_SHAPE(2, 1, 768), ASG_SHAPE(2304, 768), false, true, ASG_SHAPE(2, 1, 2304));
  }

  const asg_shape gshapes[][2] = {
      {ASG_SHAPE(3, 4), ASG_SHAPE(4, 2)},          {ASG_SHAPE(2, 3, 4), ASG_SHAPE(2, 4, 2)},
      {ASG_SHAPE(2, 1, 3, 4), ASG_SHAPE(3, 4, 2)}, {ASG_SHAPE(2, 3, 4), ASG_SHAPE(4, 2)},
      {ASG_SHAPE(3, 4), ASG_SHAPE(2, 4, 2)},       {ASG_SHAPE(2, 2, 3, 4), ASG_SHAPE(4, 2)},
  };
  /* cases 3 and 5 take the weight-gradient path (one GEMM over the batch rows) */
  for (int s = 0; s < 6; s++)
    for (int t = 0; t < 4; t++) {
      mctx c = {t & 1, (t & 2) != 0};
      asg_shape sh[2] = {gshapes[s][0], gshapes[s][1]};
      /* transpose the stored operands so that op(A) op(B) keeps the shapes */
      int ra = sh[0].ndim, rb = sh[1].ndim;
      int64_t tmp;
      if (c.ta)
        tmp = sh[0].dims[ra - 1], sh[0].dims[ra - 1] = sh[0].dims[ra - 2], sh[0].dims[ra - 2] = tmp;
      if (c.tb)
        tmp = sh[1].dims[rb - 1], sh[1].dims[rb - 1] = sh[1].dims[rb - 2], sh[1].dims[rb - 2] = tmp;
      char name[64];
      snprintf(name, sizeof name, "matmul case %d ta=%d tb=%d", s, c.ta, c.tb);
      tu_gradcheck(name, 2, sh, gb, &c, NULL);
      if (s == 0 || s == 2 || s == 5) {
        snprintf(name, sizeof name, "d2 matmul case %d ta=%d tb=%d (dA)", s, c.ta, c.tb);
        tu_gradcheck(name, 2, sh, gb2, &c, NULL);
        snprintf(name, sizeof name, "d2 matmul case %d ta=%d tb=%d (dB)", s, c.ta, c.tb);
        tu_gradcheck(name, 2, sh, gb2b, &c, NULL);
      }
    }
  return tu_finish();
}
