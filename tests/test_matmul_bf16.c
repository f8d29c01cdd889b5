/* bf16 products on the CPU (asg_compile_opts.bf16_matmul): where the CPU
 * has them (the device description names them), every product of at least
 * 9 rows rounds its operands to bf16 (nearest even) and sums in f32, so it
 * must match a float64 product of the bf16-rounded operands (|d| <= 1e-6
 * sum_k |a_ik b_kj|) and differ from the f32 product; elsewhere the option
 * is ignored and the f32 product is checked. Shapes: the four transpose
 * combinations, batched, broadcast and tall ([B,T,K] x [K,N]) products,
 * sizes split over threads, the linear layer's fused bias + ReLU (+ a
 * residual), skinny products (M <= 8: f32); and training: a small MLP's
 * losses over 30 Adam steps with bf16 products track the f32 run. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static bool g_bf16; /* the CPU runs bf16 products */

static double round_bf16(double x) { return asg_bf16_to_f32(asg_f32_to_bf16((float)x)); }

/* y = op(A) op(B) [+ bias, relu] for A [nb?, M, K] (ta: [.., K, M]), B [K, N]
 * or [nb, K, N] (tb: [.., N, K]) in float64 from operands as the kernel
 * sees them (f32, then bf16 when rb), with mag = sum |a b|. */
static void reference(int nb, bool bbatch, int64_t M, int64_t K, int64_t N, bool ta, bool tb,
                      const double *a, const double *b, const double *bias, bool rb, double *y,
                      double *mag) {
  for (int q = 0; q < nb; q++)
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double s = 0, m = 0;
        for (int64_t k = 0; k < K; k++) {
          double av = a[q * M * K + (ta ? k * M + i : i * K + k)];
          double bv = b[(bbatch ? q * K * N : 0) + (tb ? j * K + k : k * N + j)];
          if (rb) av = round_bf16(av), bv = round_bf16(bv);
          s += av * bv, m += fabs(av * bv);
        }
        if (bias) s = s + (float)bias[j], s = s > 0 ? s : 0;
        y[(q * M + i) * N + j] = s, mag[(q * M + i) * N + j] = m + (bias ? fabs(bias[j]) : 0);
      }
}

static int run_prog(asg_graph *g, asg_tensor *y, bool bf16, double *out) {
  asg_compile_opts o = {.bf16_matmul = bf16};
  asg_program *p = asg_compile(g, 1, &y, &o);
  if (!p) return printf("  compile: %s\n", asg_last_error()), -1;
  int rc = asg_program_run(p) == ASG_OK && tu_fetch(p, y, out) == ASG_OK ? 0 : -1;
  asg_program_free(p);
  return rc;
}

/* One product (nb batch items of A; B batched too when bbatch), optionally
 * as a linear layer's fused matmul + bias + ReLU (tb, 2-D A). */
static void check(int nb, bool bbatch, int64_t M, int64_t K, int64_t N, bool ta, bool tb,
                  bool linear) {
  const int64_t na = nb * M * K, nbv = (bbatch ? nb : 1) * K * N, no = nb * M * N;
  double *a = malloc(sizeof(double) * (size_t)na), *b = malloc(sizeof(double) * (size_t)nbv);
  double *got = malloc(sizeof(double) * (size_t)no), *want = malloc(sizeof(double) * (size_t)no);
  double *wf = malloc(sizeof(double) * (size_t)no), *mag = malloc(sizeof(double) * (size_t)no);
  double bias[512];
  tu_rand((unsigned long long)(na + 5 * nbv), a, na, -1, 1);
  tu_rand((unsigned long long)(3 * na + nbv), b, nbv, -1, 1);
  tu_rand(99, bias, N, -0.5, 0.5);
  for (int64_t i = 0; i < na; i++)
    a[i] = (float)a[i];
  for (int64_t i = 0; i < nbv; i++)
    b[i] = (float)b[i];
  asg_graph *g = asg_graph_new();
  asg_shape sa = nb > 1 ? ASG_SHAPE(nb, ta ? K : M, ta ? M : K) : ASG_SHAPE(ta ? K : M, ta ? M : K);
  asg_shape sb = bbatch ? ASG_SHAPE(nb, tb ? N : K, tb ? K : N) : ASG_SHAPE(tb ? N : K, tb ? K : N);
  asg_tensor *at = tu_constant(g, ASG_F32, sa, a), *bt = tu_constant(g, ASG_F32, sb, b);
  asg_tensor *y = asg_matmul_t(at, bt, ta, tb);
  if (linear) y = asg_relu(asg_add(y, tu_constant(g, ASG_F32, ASG_SHAPE(N), bias)));
  const bool rounds = g_bf16 && M > 8;
  reference(nb, bbatch, M, K, N, ta, tb, a, b, linear ? bias : NULL, rounds, want, mag);
  reference(nb, bbatch, M, K, N, ta, tb, a, b, linear ? bias : NULL, false, wf, mag);
  char what[128];
  snprintf(what, sizeof what, "bf16 matmul %dx[%lld,%lld]%s x %s[%lld,%lld]%s%s", nb, (long long)M,
           (long long)K, ta ? "^T" : "", bbatch ? "batched " : "", (long long)K, (long long)N,
           tb ? "^T" : "", linear ? " + bias, relu" : "");
  int ok = run_prog(g, y, true, got) == 0;
  int64_t bad = -1, differs = 0;
  for (int64_t i = 0; ok && i < no; i++) {
    if (bad < 0 && !(fabs(got[i] - want[i]) <= 1e-6 * mag[i] + 1e-30)) bad = i;
    differs += got[i] != (float)wf[i] && fabs(got[i] - wf[i]) > 1e-6 * mag[i];
  }
  if (bad >= 0)
    printf("  %s: [%lld] got %.9g want %.9g\n", what, (long long)bad, got[bad], want[bad]);
  /* rounding to bf16 (8-bit mantissas) moves some result by far more than f32 sums do */
  TU_CHECK(ok && bad < 0 && (rounds ? differs > 0 : differs == 0), "%s (%lld differ from f32)",
           what, (long long)differs);
  asg_graph_free(g);
  free(a), free(b), free(got), free(want), free(wf), free(mag);
}

/* ---- training: an MLP's losses with bf16 products track f32's ---- */
static double *train_losses(bool bf16, int steps) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(64, 32));
  asg_tensor *lab = asg_input(g, "y", ASG_I32, ASG_SHAPE(64));
  asg_tensor *h = x;
  const int64_t widths[] = {32, 96, 96, 10};
  for (int l = 0; l < 3; l++) {
    char n[16];
    snprintf(n, sizeof n, "w%d", l);
    asg_tensor *w = asg_variable(g, n, ASG_F32, ASG_SHAPE(widths[l + 1], widths[l]),
                                 asg_init_normal(0, 1.0 / sqrt((double)widths[l])));
    snprintf(n, sizeof n, "b%d", l);
    asg_tensor *bb = asg_variable(g, n, ASG_F32, ASG_SHAPE(widths[l + 1]), asg_init_zeros());
    h = asg_add(asg_matmul_t(h, w, false, true), bb);
    if (l < 2) h = asg_relu(h);
  }
  asg_tensor *loss = asg_softmax_cross_entropy(h, lab, 0, -100);
  asg_compile_opts o = {.bf16_matmul = bf16};
  asg_program *p = asg_compile_train(g, loss, asg_adam(1e-2), 0, NULL, &o);
  double *ls = calloc((size_t)steps, sizeof *ls), xv[64 * 32];
  int32_t yv[64];
  tu_rand(5, xv, 64 * 32, -1, 1);
  for (int i = 0; i < 64; i++) /* a learnable rule: the class of the largest of 10 inputs */
    for (int c = 0, best = 0; c < 10; c++)
      if (xv[i * 32 + c] > xv[i * 32 + best] || c == 0) yv[i] = c, best = c;
  int ok = p && tu_feed(p, "x", ASG_F32, xv, 64 * 32) == ASG_OK &&
           asg_program_feed(p, "y", yv, sizeof yv) == ASG_OK;
  for (int s = 0; ok && s < steps; s++)
    ok = asg_program_run(p) == ASG_OK && tu_fetch(p, loss, &ls[s]) == ASG_OK;
  if (!ok) printf("  train (bf16 %d): %s\n", bf16, asg_last_error()), free(ls), ls = NULL;
  asg_program_free(p);
  asg_graph_free(g);
  return ls;
}

static void training(void) {
  enum { S = 30 };
  double *f = train_losses(false, S), *h = train_losses(true, S);
  int ok = f && h;
  double worst = 0;
  int same = 0; /* steps whose losses agree to the bit: all of them when the option is ignored */
  for (int s = 0; ok && s < S; s++)
    worst = fmax(worst, fabs(h[s] - f[s]) / fmax(f[s], 1e-3)), same += h[s] == f[s];
  TU_CHECK(ok && (g_bf16 ? same < S : same == S), "bf16 training: %d of %d losses as f32's", same,
           S);
  /* bf16 operands move each product by ~4e-3 relative: the losses stay within 5% of f32's
   * (relative) while both fall */
  TU_CHECK(ok && worst <= 0.05 && h[S - 1] < 0.5 * h[0],
           "bf16 training tracks f32: worst %.4f, "
           "loss %.4f -> %.4f (f32 %.4f -> %.4f)",
           worst, ok ? h[0] : 0, ok ? h[S - 1] : 0, ok ? f[0] : 0, ok ? f[S - 1] : 0);
  free(f), free(h);
}

int main(void) {
  const char *dev = asg_backend_device("cpu");
  g_bf16 = dev && strstr(dev, "bf16 products") != NULL;
  printf("cpu: %s (bf16 products %s)\n", dev ? dev : "?", g_bf16 ? "on" : "off: f32 expected");
  for (int t = 0; t < 4; t++) {
    const bool ta = t & 1, tb = t & 2;
    check(1, false, 5, 7, 3, ta, tb, false);
    check(1, false, 37, 70, 45, ta, tb, false);
    check(1, false, 256, 300, 200, ta, tb, false);
    check(3, true, 40, 33, 50, ta, tb, false);
    check(3, false, 40, 33, 50, ta, tb, false);
  }
  check(4, false, 64, 96, 80, false, false, false);  /* [B,T,K] x [K,N]: one tall product */
  check(1, false, 300, 128, 200, false, true, true); /* a linear layer: matmul_bias_act */
  for (int64_t M = 1; M <= 9; M++)                   /* skinny rows: f32 up to 8 */
    check(1, false, M, 77, 300, false, true, false);
  training();
  return tu_finish();
}
