/* The CPU backend's vectorized f32 paths (src/backends/cpu/cpu_simd.h and
 * its users) against float64 references written here:
 *  - 2x2 / stride-2 max pooling, forward and gradient: ties go to the first
 *    maximum in row-major window order, a NaN wins, odd planes leave the
 *    last row/column with zero gradient (exact);
 *  - softmax / log_softmax rows of lengths around the 16 lanes, with -inf,
 *    large logits and a NaN row (rtol 1e-6);
 *  - softmax cross-entropy and its gradient over rows of lengths around the
 *    16 lanes, with large logits, an ignored label and a NaN row, with and
 *    without label smoothing (rtol 1e-6, gradient 1e-6 of its largest);
 *  - erf and gelu on a dense grid over [-6, 6] and at +-inf, NaN
 *    (within 3 ulp-sized steps: |d| <= 2e-7 |want| + 1e-12);
 *  - gelu_bwd and gelu_tanh_bwd (dy gelu'(x)) on a grid over [-12, 12], same
 *    shapes and a broadcast dy row (|d| <= 5e-7 (|dy| + |want|));
 *  - layernorm forward and input gradient (rtol 1e-6);
 *  - batchnorm forward and input gradient (rtol 1e-5);
 *  - sum / mean / var over the batch-norm axes (contiguous runs in lanes)
 *    and over the batch axis (blocks of columns) (rtol 1e-6);
 *  - the direct convolution with its fused bias and ReLU (rtol 1e-5);
 *  - fused attention (its f32 kernels in lanes and register tiles): output
 *    and the gradients of q, k, v (which read the row log-sum-exp), causal,
 *    with a key mask, and both, for T around the 16 lanes and past the
 *    64-row blocks, D a multiple of 16 or not; queries that see no key
 *    (o = 0, no gradient) (rtol 1e-5);
 *  - the same bits at every SIMD level: the test runs itself again with
 *    ASG_CPU_SIMD=none and =avx2 and compares every output byte for byte. */
#define _POSIX_C_SOURCE 200809L /* setenv, fork */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* y = f(x) and dx = d sum(y * r) / dx for a constant x of dtype f32. */
static int eval_with_grad(asg_graph *g, asg_tensor *x, asg_tensor *y, const double *r, double *out,
                          double *dx) {
  asg_tensor *rt = tu_constant(g, ASG_F32, asg_tensor_shape(y), r), *gx = NULL;
  asg_tensor *loss = asg_sum(asg_mul(y, rt), ASG_ALL_AXES, false);
  if (asg_grad(loss, 1, &x, &gx) != ASG_OK) return 1;
  asg_tensor *outs[2] = {y, gx};
  asg_program *p = asg_compile(g, 2, outs, NULL);
  int rc = !p || asg_program_run(p) != ASG_OK || tu_fetch(p, y, out) || tu_fetch(p, gx, dx);
  asg_program_free(p);
  return rc;
}

/* planes of H x W (odd H or W: the last row/column is in no window); W >= 33
 * runs the AVX-512 paths' full 16-window blocks and a masked partial one */
static void maxpool_2x2(int H, int W) {
  enum { N = 2, C = 3 };
  const int OH = H / 2, OW = W / 2, nx = N * C * H * W, ny = N * C * OH * OW;
  double *x = malloc(sizeof(double) * (size_t)nx), *dx = malloc(sizeof(double) * (size_t)nx);
  double *wdx = calloc((size_t)nx, sizeof(double)), *r = malloc(sizeof(double) * (size_t)ny);
  double *y = malloc(sizeof(double) * (size_t)ny), *wy = malloc(sizeof(double) * (size_t)ny);
  tu_rand(5, x, nx, -2, 2);
  for (int i = 0; i < nx; i++) /* many ties: values on a coarse grid */
    x[i] = floor(x[i] * 2) / 2;
  x[3 * W + 4] = NAN;                     /* a NaN in plane 0 */
  x[W * H + 0] = 5, x[W * H + W + 1] = 5; /* tie at the top of a window: first wins */
  x[W * H + 2 * W + 3] = -0.0, x[W * H + 2 * W + 2] = 0.0;
  tu_rand(6, r, ny, 0.5, 1.5);
  for (int pl = 0; pl < N * C; pl++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        int bi = -1;
        for (int k = 0; k < 4; k++) {
          int i = pl * H * W + (2 * oh + k / 2) * W + 2 * ow + k % 2;
          if (bi < 0 || x[i] > x[bi] || (isnan(x[i]) && !isnan(x[bi]))) bi = i;
        }
        wy[(pl * OH + oh) * OW + ow] = x[bi];
        wdx[bi] += (float)r[(pl * OH + oh) * OW + ow];
      }
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = tu_constant(g, ASG_F32, ASG_SHAPE(N, C, H, W), x);
  asg_tensor *yt = asg_max_pool2d(xt, (asg_pool_params){.kernel = {2, 2}, .stride = {2, 2}});
  int ok = yt && eval_with_grad(g, xt, yt, r, y, dx) == 0;
  TU_CHECK(ok, "max pool 2x2 [%d,%d]: %s", H, W, asg_last_error());
  if (ok) {
    int same = 1;
    for (int i = 0; i < ny; i++)
      same &= isnan(wy[i]) ? isnan(y[i]) : y[i] == wy[i] && signbit(y[i]) == signbit(wy[i]);
    TU_CHECK(same, "max pool 2x2 [%d,%d] forward: first maximum, NaN wins", H, W);
    TU_CHECK(tu_close("max pool 2x2 grad", dx, wdx, nx, 0, 0),
             "max pool 2x2 [%d,%d] gradient routed to the first maximum, zero in the odd "
             "row/column",
             H, W);
    tu_dump(y, ny), tu_dump(dx, nx);
  }
  asg_graph_free(g);
  free(x), free(dx), free(wdx), free(r), free(y), free(wy);
}

static void softmax_rows(void) {
  const int lens[] = {1, 3, 15, 16, 17, 33, 100};
  for (int li = 0; li < 7; li++)
    for (int lg = 0; lg < 2; lg++) {
      const int R = 5, n = lens[li];
      double *x = malloc(sizeof(double) * (size_t)(R * n)),
             *got = malloc(sizeof(double) * (size_t)(R * n)),
             *want = malloc(sizeof(double) * (size_t)(R * n));
      tu_rand(11 + (unsigned)n, x, R * n, -8, 8);
      for (int j = 0; j < n; j++)
        x[n + j] += 80; /* row 1: large logits */
      if (n > 2) x[2 * n + 1] = -INFINITY;
      x[4 * n + n / 2] = NAN; /* row 4: NaN everywhere */
      for (int rr = 0; rr < R; rr++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < n; j++)
          m = fmax(m, (float)x[rr * n + j]);
        for (int j = 0; j < n; j++)
          s += exp((float)x[rr * n + j] - m);
        for (int j = 0; j < n; j++) {
          double v = (float)x[rr * n + j] - m;
          want[rr * n + j] = rr == 4 ? NAN : lg ? v - log(s) : exp(v) / s;
        }
      }
      asg_graph *g = asg_graph_new();
      asg_tensor *xt = tu_constant(g, ASG_F32, ASG_SHAPE(R, n), x);
      asg_tensor *y = lg ? asg_log_softmax(xt, 1) : asg_softmax(xt, 1);
      int ok = y && tu_eval(g, y, got) == 0;
      int nan_ok = 1;
      for (int j = 0; j < n; j++)
        nan_ok &= isnan(got[4 * n + j]) != 0;
      if (ok && lg && n > 2) { /* log_softmax(-inf) = -inf (tu_close cannot compare infinities) */
        nan_ok &= isinf(got[2 * n + 1]) && got[2 * n + 1] < 0;
        got[2 * n + 1] = want[2 * n + 1] = 0;
      }
      char what[64];
      snprintf(what, sizeof what, "%s rows of %d", lg ? "log_softmax" : "softmax", n);
      TU_CHECK(ok && nan_ok && tu_close(what, got, want, 4 * n, 1e-7, 1e-6), "%s", what);
      if (ok) tu_dump(got, 4 * n);
      asg_graph_free(g);
      free(x), free(got), free(want);
    }
}

/* Softmax cross-entropy (mean over counted rows, label smoothing ls) and its
 * gradient in double, from the f32-rounded logits; a NaN anywhere in a
 * counted row makes the loss NaN. */
static double ce_ref(const double *x, const int32_t *lab, int R, int n, double ls, double *dx) {
  double total = 0;
  int count = 0;
  for (int r = 0; r < R; r++)
    count += lab[r] != -100;
  for (int r = 0; r < R; r++) {
    const double *xr = x + (size_t)r * (size_t)n;
    double m = -INFINITY, s = 0, sx = 0;
    for (int j = 0; j < n; j++)
      m = fmax(m, (float)xr[j]);
    for (int j = 0; j < n; j++)
      s += exp((float)xr[j] - m), sx += (float)xr[j] - m;
    const double lse = log(s);
    for (int j = 0; j < n; j++)
      dx[r * n + j] =
          lab[r] == -100
              ? 0
              : (exp((float)xr[j] - m - lse) - ls / n - (j == lab[r] ? 1 - ls : 0)) / count;
    if (lab[r] != -100) total += (1 - ls) * (lse - ((float)xr[lab[r]] - m)) + ls * (lse - sx / n);
  }
  return total / count;
}

static void ce_rows(void) {
  const int lens[] = {1, 3, 15, 16, 17, 33, 114};
  for (int li = 0; li < 7; li++)
    for (int sm = 0; sm < 2; sm++)
      for (int nan_row = 0; nan_row < 2; nan_row++) {
        const int R = 6, n = lens[li];
        const double ls = sm ? 0.1 : 0;
        double *x = malloc(sizeof(double) * (size_t)(R * n)),
               *got = malloc(sizeof(double) * (size_t)(R * n)),
               *want = malloc(sizeof(double) * (size_t)(R * n));
        int32_t lab[6];
        tu_rand(23 + (unsigned)n, x, R * n, -6, 6);
        for (int j = 0; j < n; j++)
          x[n + j] += 90; /* row 1: large logits */
        for (int r = 0; r < R; r++)
          lab[r] = (r * 7 + 3) % n;
        lab[3] = -100; /* row 3 is left out */
        if (nan_row) x[5 * n + n / 2] = NAN;
        const double wl = ce_ref(x, lab, R, n, ls, want);
        asg_graph *g = asg_graph_new();
        float *xf = malloc(sizeof(float) * (size_t)(R * n));
        for (int i = 0; i < R * n; i++)
          xf[i] = (float)x[i];
        asg_tensor *xt = asg_variable(g, "x", ASG_F32, ASG_SHAPE(R, n), asg_init_data(xf));
        asg_tensor *loss =
            asg_softmax_cross_entropy(xt, asg_constant(g, ASG_I32, ASG_SHAPE(R), lab), ls, -100);
        asg_tensor *d = NULL;
        double gl = 0;
        int ok = loss && asg_grad(loss, 1, &xt, &d) == ASG_OK && tu_eval(g, loss, &gl) == 0 &&
                 tu_eval(g, d, got) == 0;
        char what[80];
        snprintf(what, sizeof what, "cross-entropy rows of %d, ls %g%s", n, ls,
                 nan_row ? ", a NaN" : "");
        if (ok && nan_row) { /* the loss and the NaN row's gradient are NaN */
          ok = isnan(gl);
          for (int j = 0; j < n; j++)
            ok &= isnan(got[5 * n + j]) != 0;
          TU_CHECK(ok && tu_close(what, got, want, 5 * n, 1e-7 / R, 1e-6), "%s", what);
        } else {
          TU_CHECK(ok && fabs(gl - wl) <= 1e-6 * fabs(wl) + 1e-7 &&
                       tu_close(what, got, want, R * n, 1e-7 / R, 1e-6),
                   "%s: loss %.9g want %.9g", what, gl, wl);
        }
        if (ok) tu_dump(got, R * n), tu_dump(&gl, 1);
        asg_graph_free(g);
        free(x), free(xf), free(got), free(want);
      }
}

static void erf_gelu(void) {
  enum { N = 24003 };
  static double x[N], got[N], want[N];
  for (int i = 0; i < N - 3; i++)
    x[i] = (float)(-6 + 12.0 * i / (N - 4));
  x[N - 3] = INFINITY, x[N - 2] = -INFINITY, x[N - 1] = NAN;
  for (int gelu = 0; gelu < 2; gelu++) {
    for (int i = 0; i < N; i++)
      want[i] = gelu ? 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0))) : erf(x[i]);
    asg_graph *g = asg_graph_new();
    asg_tensor *xt = tu_constant(g, ASG_F32, ASG_SHAPE(N), x);
    asg_tensor *y = gelu ? asg_gelu(xt) : asg_erf(xt);
    int ok = y && tu_eval(g, y, got) == 0;
    /* gelu's 1 + erf cancels at negative x: erf's absolute error bounds it there */
    int good = ok && isnan(got[N - 1]);
    double worst = 0;
    for (int i = 0; ok && i < N - 1; i++) {
      if (gelu && isinf(x[i])) continue; /* inf * 0 */
      double d = fabs(got[i] - want[i]), bound = 2e-7 * fabs(want[i]) + 1e-12;
      if (gelu) bound += 6e-8 * fabs(x[i]);
      if (!(d <= bound)) good = 0;
      if (d / bound > worst) worst = d / bound;
    }
    TU_CHECK(good, "%s f32 within bound (worst %.2f of it)", gelu ? "gelu" : "erf", worst);
    if (ok) tu_dump(got, N);
    asg_graph_free(g);
  }
}

static void gelu_bwd_grid(void) {
  enum { R = 3, N = 8009 };
  static double x[R * N], dy[R * N], got[R * N];
  for (int i = 0; i < R * N; i++) {
    x[i] = (float)(-12 + 24.0 * i / (R * N - 1));
    dy[i] = (float)(0.5 + (i % 7) * 0.25);
  }
  for (int th = 0; th < 2; th++)
    for (int bc = 0; bc < 2; bc++) { /* bc: dy [N] broadcast over the rows */
      asg_graph *g = asg_graph_new();
      asg_tensor *xt = tu_constant(g, ASG_F32, ASG_SHAPE(R, N), x);
      asg_tensor *dt = tu_constant(g, ASG_F32, bc ? ASG_SHAPE(N) : ASG_SHAPE(R, N), dy);
      asg_tensor *y = th ? asg_gelu_tanh_bwd(dt, xt) : asg_gelu_bwd(dt, xt);
      int ok = y && tu_eval(g, y, got) == 0, good = ok;
      const double a = sqrt(2 / 3.14159265358979323846), c = 0.044715;
      for (int i = 0; ok && i < R * N; i++) {
        double v = x[i], d = dy[bc ? i % N : i], want;
        if (th) {
          double t = tanh(a * (v + c * v * v * v));
          want = d * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * a * (1 + 3 * c * v * v));
        } else {
          want = d * (0.5 * (1 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) * 0.3989422804014327);
        }
        if (!(fabs(got[i] - want) <= 5e-7 * (fabs(d) + fabs(want)))) good = 0;
      }
      TU_CHECK(good, "%s f32 %s within bound", th ? "gelu_tanh_bwd" : "gelu_bwd",
               bc ? "broadcast dy" : "same shapes");
      if (ok) tu_dump(got, R * N);
      asg_graph_free(g);
    }
}

static void layernorm_rows(void) {
  const int cs[] = {3, 16, 37};
  for (int k = 0; k < 3; k++) {
    const int R = 6, C = cs[k];
    double x[6 * 37], gm[37], bt[37], r[6 * 37], y[6 * 37], dx[6 * 37], wy[6 * 37], wdx[6 * 37];
    tu_rand(21 + (unsigned)C, x, R * C, -3, 3);
    tu_rand(22, gm, C, 0.5, 1.5);
    tu_rand(23, bt, C, -1, 1);
    tu_rand(24, r, R * C, -1, 1);
    for (int rr = 0; rr < R; rr++) {
      double m = 0, v = 0, sg = 0, sgx = 0;
      for (int j = 0; j < C; j++)
        m += (float)x[rr * C + j] / C;
      for (int j = 0; j < C; j++)
        v += ((float)x[rr * C + j] - m) * ((float)x[rr * C + j] - m) / C;
      double rs = 1 / sqrt(v + 1e-5);
      for (int j = 0; j < C; j++) {
        double xh = ((float)x[rr * C + j] - m) * rs, gg = (float)r[rr * C + j] * (float)gm[j];
        wy[rr * C + j] = xh * (float)gm[j] + (float)bt[j];
        sg += gg / C, sgx += gg * xh / C;
      }
      for (int j = 0; j < C; j++) {
        double xh = ((float)x[rr * C + j] - m) * rs, gg = (float)r[rr * C + j] * (float)gm[j];
        wdx[rr * C + j] = rs * (gg - sg - xh * sgx);
      }
    }
    asg_graph *g = asg_graph_new();
    asg_tensor *xt = tu_constant(g, ASG_F32, ASG_SHAPE(R, C), x);
    asg_tensor *yt = asg_layernorm(xt, tu_constant(g, ASG_F32, ASG_SHAPE(C), gm),
                                   tu_constant(g, ASG_F32, ASG_SHAPE(C), bt), 1e-5);
    int ok = yt && eval_with_grad(g, xt, yt, r, y, dx) == 0;
    TU_CHECK(ok && tu_close("layernorm", y, wy, R * C, 1e-6, 1e-6) &&
                 tu_close("layernorm dx", dx, wdx, R * C, 1e-6, 1e-5),
             "layernorm C=%d forward and input gradient", C);
    if (ok) tu_dump(y, R * C), tu_dump(dx, R * C);
    asg_graph_free(g);
  }
}

/* batchnorm (its row passes in lanes) on runs shorter, equal to and longer
 * than the 16 lanes: x, dx against double loops, and the bits per level */
static void batchnorm_rows(void) {
  const int ss[] = {5, 16, 37};
  for (int k = 0; k < 3; k++) {
    enum { N = 4, C = 3 };
    const int S = ss[k], n = N * C * S;
    double x[N * C * 37], gm[C], bt[C], r[N * C * 37], y[N * C * 37], dx[N * C * 37];
    double wy[N * C * 37], wdx[N * C * 37];
    tu_rand(31 + (unsigned)S, x, n, -3, 5);
    tu_rand(32, gm, C, 0.5, 1.5);
    tu_rand(33, bt, C, -1, 1);
    tu_rand(34, r, n, -1, 1);
    for (int i = 0; i < n; i++)
      x[i] = (float)x[i], r[i] = (float)r[i];
    for (int c = 0; c < C; c++) {
      double m = 0, v = 0, sr = 0, srx = 0, M = N * S;
      for (int b = 0; b < N; b++)
        for (int i = 0; i < S; i++)
          m += x[(b * C + c) * S + i] / M;
      for (int b = 0; b < N; b++)
        for (int i = 0; i < S; i++)
          v += (x[(b * C + c) * S + i] - m) * (x[(b * C + c) * S + i] - m) / M;
      double rs = 1 / sqrt(v + 1e-5), g = (float)gm[c];
      for (int b = 0; b < N; b++)
        for (int i = 0; i < S; i++) {
          int j = (b * C + c) * S + i;
          wy[j] = (x[j] - m) * rs * g + (float)bt[c];
          sr += r[j] / M, srx += r[j] * (x[j] - m) * rs / M;
        }
      for (int b = 0; b < N; b++)
        for (int i = 0; i < S; i++) {
          int j = (b * C + c) * S + i;
          wdx[j] = g * rs * (r[j] - sr - (x[j] - m) * rs * srx);
        }
    }
    asg_graph *gr = asg_graph_new();
    asg_tensor *xt = tu_constant(gr, ASG_F32, ASG_SHAPE(N, C, S), x);
    asg_tensor *yt = asg_batchnorm(xt, tu_constant(gr, ASG_F32, ASG_SHAPE(C), gm),
                                   tu_constant(gr, ASG_F32, ASG_SHAPE(C), bt), 1e-5);
    int ok = yt && eval_with_grad(gr, xt, yt, r, y, dx) == 0;
    TU_CHECK(ok && tu_close("batchnorm", y, wy, n, 1e-5, 1e-5) &&
                 tu_close("batchnorm dx", dx, wdx, n, 1e-5, 1e-4),
             "batchnorm S=%d forward and input gradient", S);
    if (ok) tu_dump(y, n), tu_dump(dx, n);
    asg_graph_free(gr);
  }
}

static void reductions(void) {
  /* [N,C,H,W] over (0,2,3): runs of H*W = 35 in lanes; [B,K] over 0: 70 columns */
  struct {
    asg_shape s;
    asg_axes ax;
    int kept, axis_len, inner, stride; /* output k: elements ((o * axis_len + a) * ...) */
  } cases[] = {{ASG_SHAPE(3, 4, 5, 7), ASG_AXES(0, 2, 3), 4, 3, 35, 4 * 35},
               {ASG_SHAPE(9, 70), ASG_AXES(0), 70, 9, 1, 70}};
  for (int k = 0; k < 2; k++) {
    long n = (long)asg_shape_numel(cases[k].s);
    int K = cases[k].kept, A = cases[k].axis_len, I = cases[k].inner;
    double *x = malloc(sizeof(double) * (size_t)n), got[3][70], want[3][70];
    tu_rand(41 + (unsigned)k, x, n, -2, 3);
    for (int o = 0; o < K; o++) {
      double s = 0, q = 0;
      /* element (a, o, i): a * stride + o * I + i (case 1: i is always 0) */
      for (int a = 0; a < A; a++)
        for (int i = 0; i < I; i++)
          s += (float)x[a * cases[k].stride + o * I + i];
      double m = s / (A * I);
      for (int a = 0; a < A; a++)
        for (int i = 0; i < I; i++) {
          double d = (float)x[a * cases[k].stride + o * I + i] - m;
          q += d * d;
        }
      want[0][o] = s, want[1][o] = m, want[2][o] = q / (A * I - 1);
    }
    for (int op = 0; op < 3; op++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *xt = tu_constant(g, ASG_F32, cases[k].s, x);
      asg_tensor *y = op == 0   ? asg_sum(xt, cases[k].ax, false)
                      : op == 1 ? asg_mean(xt, cases[k].ax, false)
                                : asg_var(xt, cases[k].ax, 1, false);
      int ok = y && tu_eval(g, y, got[op]) == 0;
      TU_CHECK(ok && tu_close("reduce", got[op], want[op], K, 1e-6, 1e-6), "%s case %d",
               op == 0   ? "sum"
               : op == 1 ? "mean"
                         : "var",
               k);
      if (ok) tu_dump(got[op], K);
      asg_graph_free(g);
    }
    free(x);
  }
}

/* The direct f32 convolution (stride 1, 9..1152 taps): relu(conv2d + b), one
 * fused multiply-add per tap at every level, against double loops. */
static void conv_direct(void) {
  enum { N = 2, H = 9, W = 11, O = 10 };
  for (int C = 1; C <= 8; C += 7) {
    const int nx = N * C * H * W, nw = O * C * 9, ny = N * O * H * W;
    double *x = malloc(sizeof(double) * nx), *w = malloc(sizeof(double) * nw), b[O];
    double *got = malloc(sizeof(double) * ny), *want = malloc(sizeof(double) * ny);
    tu_rand(51 + (unsigned)C, x, nx, -1, 1), tu_rand(52, w, nw, -1, 1), tu_rand(53, b, O, -1, 1);
    for (int n = 0; n < N; n++)
      for (int o = 0; o < O; o++)
        for (int i = 0; i < H * W; i++) {
          double s = (float)b[o];
          for (int c = 0; c < C; c++)
            for (int k = 0; k < 9; k++) {
              int h = i / W + k / 3 - 1, v = i % W + k % 3 - 1;
              if (h >= 0 && h < H && v >= 0 && v < W)
                s +=
                    (double)(float)w[(o * C + c) * 9 + k] * (float)x[((n * C + c) * H + h) * W + v];
            }
          want[(n * O + o) * H * W + i] = s > 0 ? s : 0;
        }
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_relu(asg_conv2d(tu_constant(g, ASG_F32, ASG_SHAPE(N, C, H, W), x),
                                        tu_constant(g, ASG_F32, ASG_SHAPE(O, C, 3, 3), w),
                                        tu_constant(g, ASG_F32, ASG_SHAPE(O), b),
                                        (asg_conv_params){.padding = {1, 1}}));
    int ok = y && tu_eval(g, y, got) == 0;
    TU_CHECK(ok && tu_close("conv", got, want, ny, 1e-5, 1e-5), "direct conv %d->%d 3x3", C, O);
    if (ok) tu_dump(got, ny);
    asg_graph_free(g);
    free(x), free(w), free(got), free(want);
  }
}

/* Fused attention q, k, v [B, H, T, D] (scale 1/sqrt(D)), optionally causal
 * and with a key mask [B, T], against double loops: o and the gradients of
 * loss = sum(o * r), which the backward kernels compute from the row
 * log-sum-exp. Mask modes: 0 none; 1 a few hidden keys, batch entry 1
 * entirely hidden (no query sees a key); 2 key 0 and a few others hidden
 * (causal: query 0 sees no key). */
static void attention_case(int T, int D, bool causal, int mask_mode) {
  enum { B = 2, H = 2 };
  const long n = (long)B * H * T * D;
  const double scale = 1 / sqrt((double)D);
  double *in[4], *want[4], *got[4], *mask = malloc(sizeof(double) * (size_t)(B * T));
  for (int i = 0; i < 4; i++) {
    in[i] = malloc(sizeof(double) * (size_t)n), want[i] = calloc((size_t)n, sizeof(double));
    got[i] = malloc(sizeof(double) * (size_t)n);
    tu_rand(61 + (unsigned)(i * 7 + T + D), in[i], n, -2, 2); /* q, k, v, r */
    for (long e = 0; e < n; e++)
      in[i][e] = (float)in[i][e];
  }
  for (int b = 0; b < B; b++)
    for (int j = 0; j < T; j++)
      mask[b * T + j] =
          mask_mode == 0 || (mask_mode == 1 && b == 1) || (j % 5 == 3) || (mask_mode == 2 && j == 0)
              ? 0
              : 1;
  if (mask_mode == 0)
    for (int j = 0; j < B * T; j++)
      mask[j] = 1;
  double *p = malloc(sizeof(double) * (size_t)(T * T)), *dp = malloc(sizeof(double) * (size_t)T);
  const double *q = in[0], *k = in[1], *v = in[2], *r = in[3];
  for (int bh = 0; bh < B * H; bh++) {
    const long o0 = (long)bh * T * D;
    const double *mr = mask + (bh / H) * T;
    for (int i = 0; i < T; i++) { /* p = softmax over the visible keys, o = p v */
      double m = -INFINITY, l = 0;
      for (int j = 0; j < T; j++) {
        double sc = 0;
        for (int d = 0; d < D; d++)
          sc += q[o0 + i * D + d] * k[o0 + j * D + d];
        p[i * T + j] = (causal && j > i) || mr[j] == 0 ? -INFINITY : (float)scale * sc;
        m = fmax(m, p[i * T + j]);
      }
      for (int j = 0; j < T; j++) {
        p[i * T + j] = m == -INFINITY ? 0 : exp(p[i * T + j] - m);
        l += p[i * T + j];
      }
      for (int j = 0; j < T; j++) {
        p[i * T + j] = l > 0 ? p[i * T + j] / l : 0;
        for (int d = 0; d < D; d++)
          want[0][o0 + i * D + d] += p[i * T + j] * v[o0 + j * D + d];
      }
    }
    for (int i = 0; i < T; i++) { /* ds = p (dp - delta); dq, dk, dv */
      double delta = 0;
      for (int d = 0; d < D; d++)
        delta += r[o0 + i * D + d] * want[0][o0 + i * D + d];
      for (int j = 0; j < T; j++) {
        dp[j] = 0;
        for (int d = 0; d < D; d++)
          dp[j] += r[o0 + i * D + d] * v[o0 + j * D + d];
      }
      for (int j = 0; j < T; j++) {
        double ds = p[i * T + j] * (dp[j] - delta);
        for (int d = 0; d < D; d++) {
          want[1][o0 + i * D + d] += (float)scale * ds * k[o0 + j * D + d];
          want[2][o0 + j * D + d] += (float)scale * ds * q[o0 + i * D + d];
          want[3][o0 + j * D + d] += p[i * T + j] * r[o0 + i * D + d];
        }
      }
    }
  }
  asg_graph *g = asg_graph_new();
  asg_shape s = ASG_SHAPE(B, H, T, D);
  asg_tensor *x[3], *gx[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++)
    x[i] = tu_constant(g, ASG_F32, s, in[i]);
  asg_tensor *mt = mask_mode ? tu_constant(g, ASG_F32, ASG_SHAPE(B, T), mask) : NULL;
  asg_tensor *o = asg_attention_masked(x[0], x[1], x[2], mt, scale, causal);
  asg_tensor *loss = asg_sum(asg_mul(o, tu_constant(g, ASG_F32, s, r)), ASG_ALL_AXES, false);
  int ok = o && asg_grad(loss, 3, x, gx) == ASG_OK;
  asg_tensor *outs[4] = {o, gx[0], gx[1], gx[2]};
  asg_program *pr = ok ? asg_compile(g, 4, outs, NULL) : NULL;
  ok = pr && asg_program_run(pr) == ASG_OK;
  for (int i = 0; ok && i < 4; i++)
    ok = tu_fetch(pr, outs[i], got[i]) == 0;
  const char *names[4] = {"o", "dq", "dk", "dv"};
  for (int i = 0; i < 4; i++) {
    char what[96];
    snprintf(what, sizeof what, "attention T=%d D=%d%s mask %d: %s", T, D, causal ? " causal" : "",
             mask_mode, names[i]);
    TU_CHECK(ok && tu_close(what, got[i], want[i], n, 1e-5, 1e-5), "%s (%s)", what,
             ok ? "values" : asg_last_error());
    if (ok) tu_dump(got[i], n);
  }
  asg_program_free(pr);
  asg_graph_free(g);
  for (int i = 0; i < 4; i++)
    free(in[i]), free(want[i]), free(got[i]);
  free(mask), free(p), free(dp);
}

static void attention(void) {
  const int ts[] = {5, 16, 37, 64, 100};
  for (int t = 0; t < 5; t++) {
    const int D = t % 2 ? 32 : 20; /* whole vectors, or padded rows */
    attention_case(ts[t], D, true, 0);
    attention_case(ts[t], D, false, 1);
    attention_case(ts[t], D, true, 2);
  }
}

static void run_all(void) {
  conv_direct();
  maxpool_2x2(7, 9);
  maxpool_2x2(4, 57);
  maxpool_2x2(6, 70);
  softmax_rows();
  ce_rows();
  erf_gelu();
  gelu_bwd_grid();
  layernorm_rows();
  batchnorm_rows();
  reductions();
  attention();
}

int main(int argc, char **argv) { return tu_simd_main(argc, argv, run_all); }
