/* The CPU backend's direct f32 convolution kernels (stride 1, no im2col:
 * src/backends/cpu/cpu_conv_direct*.c): the forward, the input gradient
 * (and conv_transpose2d) run as the forward of the flipped weights, and the
 * weight gradient with the output channels in the vector lanes. Shapes
 * around their edges: 288 taps (past the forward's old 256 limit), tap and
 * output counts that are not multiples of the tiles, groups, dilation,
 * padding larger than the kernel (the input gradient then takes im2col),
 * a batch whose weight gradient runs in two blocks of images, and a
 * transposed convolution with output padding; and one stride-2 case, whose
 * im2col + GEMM weight gradient sums fixed blocks of images. Each case:
 *  - y = conv2d(x, w) and the gradients of sum(y * r) against float64
 *    loops written here (|d| <= 1e-5 of the sum of |terms|);
 *  - the same bits on 1, 2 and 3 threads;
 *  - the same bits at every SIMD level: the test runs itself again with
 *    ASG_CPU_SIMD=none and =avx2 and compares every output byte for byte. */
#define _POSIX_C_SOURCE 200809L /* setenv, fork */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef struct cfg {
  const char *name;
  int N, C, H, W, O, KH, KW;
  asg_conv_params p;
  int transpose; /* conv_transpose2d: x [N, C, H, W], w [C, O/G, KH, KW] */
} cfg;

static int P(int v, int dflt) { return v ? v : dflt; }

/* Products y[n, o, yh, yw] += x[n, c, xh, xw] w[...] of the convolution (or
 * of the transposed one), each given to fn once. */
typedef struct geo {
  int N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, G, op_h, op_w;
} geo;

static geo geo_of(const cfg *c) {
  geo g = {.N = c->N,
           .C = c->C,
           .H = c->H,
           .W = c->W,
           .O = c->O,
           .KH = c->KH,
           .KW = c->KW,
           .sh = P(c->p.stride[0], 1),
           .sw = P(c->p.stride[1], 1),
           .ph = c->p.padding[0],
           .pw = c->p.padding[1],
           .dh = P(c->p.dilation[0], 1),
           .dw = P(c->p.dilation[1], 1),
           .G = P(c->p.groups, 1),
           .op_h = c->p.output_padding[0],
           .op_w = c->p.output_padding[1]};
  if (c->transpose) {
    g.OH = (c->H - 1) * g.sh - 2 * g.ph + g.dh * (c->KH - 1) + g.op_h + 1;
    g.OW = (c->W - 1) * g.sw - 2 * g.pw + g.dw * (c->KW - 1) + g.op_w + 1;
  } else {
    g.OH = (c->H + 2 * g.ph - g.dh * (c->KH - 1) - 1) / g.sh + 1;
    g.OW = (c->W + 2 * g.pw - g.dw * (c->KW - 1) - 1) / g.sw + 1;
  }
  return g;
}

/* want y, dx, dw (loss = sum(y * r)) and the sums of |terms| */
static void reference(const cfg *c, const geo *g, const double *x, const double *w, const double *r,
                      double *y, double *ym, double *dx, double *dxm, double *dw, double *dwm) {
  const int Cg = g->C / g->G, Og = g->O / g->G;
  for (int n = 0; n < g->N; n++)
    for (int o = 0; o < g->O; o++) {
      const int gi = o / Og;
      for (int ci = 0; ci < Cg; ci++)
        for (int kh = 0; kh < g->KH; kh++)
          for (int kw = 0; kw < g->KW; kw++) {
            const int c_ = gi * Cg + ci;
            /* conv: w [O, Cg, KH, KW]; transpose: w [C, Og, KH, KW] */
            const long wi = c->transpose ? (((long)c_ * Og + o % Og) * g->KH + kh) * g->KW + kw
                                         : (((long)o * Cg + ci) * g->KH + kh) * g->KW + kw;
            for (int a = 0; a < (c->transpose ? g->H : g->OH); a++)
              for (int b = 0; b < (c->transpose ? g->W : g->OW); b++) {
                /* conv: output (a, b) reads input (a sh - ph + kh dh, ...);
                 * transpose: input (a, b) adds into output (a sh - ph + kh dh, ...) */
                const int ih = a * g->sh - g->ph + kh * g->dh, iw = b * g->sw - g->pw + kw * g->dw;
                const int lim_h = c->transpose ? g->OH : g->H, lim_w = c->transpose ? g->OW : g->W;
                if (ih < 0 || ih >= lim_h || iw < 0 || iw >= lim_w) continue;
                long xi, yi;
                if (c->transpose)
                  xi = (((long)n * g->C + c_) * g->H + a) * g->W + b,
                  yi = (((long)n * g->O + o) * g->OH + ih) * g->OW + iw;
                else
                  xi = (((long)n * g->C + c_) * g->H + ih) * g->W + iw,
                  yi = (((long)n * g->O + o) * g->OH + a) * g->OW + b;
                y[yi] += x[xi] * w[wi], ym[yi] += fabs(x[xi] * w[wi]);
                dx[xi] += r[yi] * w[wi], dxm[xi] += fabs(r[yi] * w[wi]);
                dw[wi] += r[yi] * x[xi], dwm[wi] += fabs(r[yi] * x[xi]);
              }
          }
    }
}

static int close_mag(const char *what, const double *got, const double *want, const double *mag,
                     long n) {
  for (long i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= 1e-5 * mag[i] + 1e-30)) {
      printf("  %s: element %ld: got %.9g want %.9g (mag %.3g)\n", what, i, got[i], want[i],
             mag[i]);
      return 0;
    }
  return 1;
}

static double *rnd(unsigned long long seed, long n, int to_float) {
  double *v = malloc(sizeof(double) * (size_t)n);
  tu_rand(seed, v, n, -1, 1);
  for (long i = 0; to_float && i < n; i++)
    v[i] = (float)v[i];
  return v;
}

static void run_case(const cfg *c) {
  const geo g = geo_of(c);
  const int Cg = g.C / g.G, Og = g.O / g.G;
  asg_shape xs = ASG_SHAPE(g.N, g.C, g.H, g.W), ys = ASG_SHAPE(g.N, g.O, g.OH, g.OW);
  asg_shape ws = c->transpose ? ASG_SHAPE(g.C, Og, g.KH, g.KW) : ASG_SHAPE(g.O, Cg, g.KH, g.KW);
  const long nx = (long)asg_shape_numel(xs), nw = (long)asg_shape_numel(ws),
             ny = (long)asg_shape_numel(ys);
  double *x = rnd(31, nx, 1), *w = rnd(32, nw, 1), *r = rnd(33, ny, 1);
  double *want[3] = {calloc((size_t)ny, 8), calloc((size_t)nx, 8), calloc((size_t)nw, 8)};
  double *mag[3] = {calloc((size_t)ny, 8), calloc((size_t)nx, 8), calloc((size_t)nw, 8)};
  reference(c, &g, x, w, r, want[0], mag[0], want[1], mag[1], want[2], mag[2]);
  const long len[3] = {ny, nx, nw};
  double *first[3] = {malloc(8 * (size_t)ny), malloc(8 * (size_t)nx), malloc(8 * (size_t)nw)};
  double *got[3] = {malloc(8 * (size_t)ny), malloc(8 * (size_t)nx), malloc(8 * (size_t)nw)};
  const int threads[3] = {1, 2, 3};
  for (int ti = 0; ti < 3; ti++) {
    asg_graph *gr = asg_graph_new();
    asg_tensor *vx = tu_constant(gr, ASG_F32, xs, x), *vw = tu_constant(gr, ASG_F32, ws, w);
    asg_tensor *y =
        c->transpose ? asg_conv_transpose2d(vx, vw, NULL, c->p) : asg_conv2d(vx, vw, NULL, c->p);
    asg_tensor *loss = asg_sum(asg_mul(y, tu_constant(gr, ASG_F32, ys, r)), ASG_ALL_AXES, false);
    asg_tensor *wrt[2] = {vx, vw}, *grads[2] = {NULL, NULL};
    int ok = y && asg_grad(loss, 2, wrt, grads) == ASG_OK;
    asg_tensor *outs[3] = {y, grads[0], grads[1]};
    asg_compile_opts o = {.backend = "cpu", .num_threads = threads[ti]};
    asg_program *p = ok ? asg_compile(gr, 3, outs, &o) : NULL;
    ok = p && asg_program_run(p) == ASG_OK;
    for (int k = 0; ok && k < 3; k++)
      ok = tu_fetch(p, outs[k], got[k]) == ASG_OK;
    TU_CHECK(ok, "%s: runs on %d threads (%s)", c->name, threads[ti], asg_last_error());
    for (int k = 0; ok && k < 3; k++) {
      static const char *what[3] = {"y", "dx", "dw"};
      if (ti == 0) {
        TU_CHECK(close_mag(what[k], got[k], want[k], mag[k], len[k]), "%s: %s", c->name, what[k]);
        memcpy(first[k], got[k], 8 * (size_t)len[k]);
        tu_dump(got[k], len[k]);
      } else {
        TU_CHECK(memcmp(first[k], got[k], 8 * (size_t)len[k]) == 0,
                 "%s: %s on %d threads has the bits of 1 thread", c->name, what[k], threads[ti]);
      }
    }
    asg_program_free(p);
    asg_graph_free(gr);
  }
  for (int k = 0; k < 3; k++)
    free(want[k]), free(mag[k]), free(first[k]), free(got[k]);
  free(x), free(w), free(r);
}

static void run_all(void) {
  const cfg cases[] = {
      {"32->64 3x3 pad 1 (288 taps)", 4, 32, 14, 14, 64, 3, 3, {{0}, {1, 1}, {0}, 0, {0}}, 0},
      {"13->20 3x3 dilation (1,2)", 3, 13, 9, 11, 20, 3, 3, {{0}, {1, 2}, {1, 2}, 0, {0}}, 0},
      {"groups 2, 16->24 3x3", 3, 16, 10, 9, 24, 3, 3, {{0}, {1, 0}, {2, 1}, 2, {0}}, 0},
      {"padding past the kernel", 2, 8, 6, 7, 5, 3, 3, {{0}, {3, 2}, {0}, 0, {0}}, 0},
      {"1x1 pad 1, two blocks of images", 96, 64, 16, 16, 4, 1, 1, {{0}, {1, 1}, {0}, 0, {0}}, 0},
      /* stride 2: im2col + GEMM, the weight gradient in fixed partial sums */
      {"stride 2 (im2col)", 16, 8, 16, 16, 32, 3, 3, {{2, 2}, {1, 1}, {0}, 0, {0}}, 0},
      {"transpose 6->16 dilation 2 output padding 1",
       2,
       6,
       5,
       5,
       16,
       3,
       3,
       {{0}, {0}, {2, 2}, 0, {1, 1}},
       1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    run_case(&cases[i]);
}

int main(int argc, char **argv) { return tu_simd_main(argc, argv, run_all); }
