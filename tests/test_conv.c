/* Conv family: conv2d, conv_transpose2d, max/avg/adaptive-avg pooling.
 * Forward results against float64 loops written here (a direct 7-loop
 * convolution, a scatter-form transpose convolution, window loops for the
 * pools) in f32 and f64; conv gradients (via asg_grad, on shapes big enough
 * that the kernels split the batch over threads) against direct float64
 * loops; central-difference
 * gradient checks on tiny shapes; bad shapes and parameters. Run with
 * OMP_NUM_THREADS=1 too: the kernels take a serial path then.
 * Tolerances: f64 1e-12 relative to the sum of |terms|; f32 1e-5 of it. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static double *rnd(unsigned long long seed, long n) {
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  tu_rand(seed, v, n, -1, 1);
  return v;
}

/* |got - want| <= tol * mag (+ tiny) elementwise. */
static int close_mag(const char *what, const double *got, const double *want, const double *mag,
                     long n, double tol) {
  for (long i = 0; i < n; i++)
    if (!(fabs(got[i] - want[i]) <= tol * mag[i] + 1e-30)) {
      printf("  %s: element %ld: got %.12g want %.12g (mag %.3g)\n", what, i, got[i], want[i],
             mag[i]);
      return 0;
    }
  return 1;
}

typedef struct cfg {
  const char *name;
  int N, C, H, W, O, KH, KW;
  asg_conv_params p;
  int bias;
} cfg;

static int P(int v, int dflt) { return v ? v : dflt; }

static long out_size(long in, int k, int s, int pad, int d) {
  return (in + 2 * pad - d * (k - 1) - 1) / s + 1;
}

/* Direct convolution: y[n,o,oh,ow] = b[o] + sum_{c in group, kh, kw}
 * x[n,c,oh*s-p+kh*d, ow*s-p+kw*d] w[o,c,kh,kw]. */
static void ref_conv(const cfg *c, const double *x, const double *w, const double *b, double *y,
                     double *mag) {
  int sh = P(c->p.stride[0], 1), sw = P(c->p.stride[1], 1), dh = P(c->p.dilation[0], 1),
      dw = P(c->p.dilation[1], 1), G = P(c->p.groups, 1), ph = c->p.padding[0],
      pw = c->p.padding[1];
  long OH = out_size(c->H, c->KH, sh, ph, dh), OW = out_size(c->W, c->KW, sw, pw, dw);
  int Cg = c->C / G, Og = c->O / G;
  for (int n = 0; n < c->N; n++)
    for (int o = 0; o < c->O; o++)
      for (long oh = 0; oh < OH; oh++)
        for (long ow = 0; ow < OW; ow++) {
          double s = b ? b[o] : 0, m = b ? fabs(b[o]) : 0;
          int gi = o / Og;
          for (int ci = 0; ci < Cg; ci++)
            for (int kh = 0; kh < c->KH; kh++)
              for (int kw = 0; kw < c->KW; kw++) {
                long ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                double a = x[((long)(n * c->C + gi * Cg + ci) * c->H + ih) * c->W + iw];
                double bw = w[((long)(o * Cg + ci) * c->KH + kh) * c->KW + kw];
                s += a * bw;
                m += fabs(a * bw);
              }
          long i = ((long)(n * c->O + o) * OH + oh) * OW + ow;
          y[i] = s;
          mag[i] = m;
        }
}

static void test_conv_forward(const cfg *c, asg_dtype dt) {
  int sh = P(c->p.stride[0], 1), sw = P(c->p.stride[1], 1), dh = P(c->p.dilation[0], 1),
      dw = P(c->p.dilation[1], 1), G = P(c->p.groups, 1);
  long OH = out_size(c->H, c->KH, sh, c->p.padding[0], dh);
  long OW = out_size(c->W, c->KW, sw, c->p.padding[1], dw);
  asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W), ws = ASG_SHAPE(c->O, c->C / G, c->KH, c->KW);
  long nx = (long)asg_shape_numel(xs), nw = (long)asg_shape_numel(ws), ny = c->N * c->O * OH * OW;
  double *x = rnd(1, nx), *w = rnd(2, nw), *b = rnd(3, c->O);
  double *want = malloc(sizeof(double) * (size_t)ny), *mag = malloc(sizeof(double) * (size_t)ny),
         *got = malloc(sizeof(double) * (size_t)ny);
  ref_conv(c, x, w, c->bias ? b : NULL, want, mag);
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_conv2d(tu_constant(g, dt, xs, x), tu_constant(g, dt, ws, w),
                             c->bias ? tu_constant(g, dt, ASG_SHAPE(c->O), b) : NULL, c->p);
  asg_shape want_s = ASG_SHAPE(c->N, c->O, OH, OW);
  TU_CHECK(y && asg_shape_equal(asg_tensor_shape(y), want_s), "conv2d %s: shape (%s)", c->name,
           asg_graph_error(g));
  if (y && asg_shape_equal(asg_tensor_shape(y), want_s)) {
    int ok = tu_eval(g, y, got) == 0;
    TU_CHECK(ok && close_mag(c->name, got, want, mag, ny, dt == ASG_F32 ? 1e-5 : 1e-12),
             "conv2d %s (%s) forward", c->name, asg_dtype_name(dt));
  }
  asg_graph_free(g);
  free(x), free(w), free(b), free(want), free(mag), free(got);
}

/* Gradients of loss = sum(conv2d(x, w) * r) through asg_grad against direct
 * loops: dx[n,c,ih,iw] = sum r[n,o,oh,ow] w[o,c,kh,kw], dw likewise. */
static void test_conv_grads_large(const cfg *c, asg_dtype dt) {
  int sh = P(c->p.stride[0], 1), sw = P(c->p.stride[1], 1), dh = P(c->p.dilation[0], 1),
      dw = P(c->p.dilation[1], 1), G = P(c->p.groups, 1), ph = c->p.padding[0],
      pw = c->p.padding[1];
  long OH = out_size(c->H, c->KH, sh, ph, dh), OW = out_size(c->W, c->KW, sw, pw, dw);
  int Cg = c->C / G, Og = c->O / G;
  asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W), ws = ASG_SHAPE(c->O, Cg, c->KH, c->KW);
  asg_shape ys = ASG_SHAPE(c->N, c->O, OH, OW);
  long nx = (long)asg_shape_numel(xs), nw = (long)asg_shape_numel(ws),
       ny = (long)asg_shape_numel(ys);
  double *x = rnd(11, nx), *w = rnd(12, nw), *r = rnd(13, ny);
  double *dx = calloc((size_t)nx, 8), *dxm = calloc((size_t)nx, 8), *dwr = calloc((size_t)nw, 8),
         *dwm = calloc((size_t)nw, 8), *got_x = malloc(8 * (size_t)nx),
         *got_w = malloc(8 * (size_t)nw);
  for (int n = 0; n < c->N; n++)
    for (int o = 0; o < c->O; o++)
      for (long oh = 0; oh < OH; oh++)
        for (long ow = 0; ow < OW; ow++) {
          double rv = r[((long)(n * c->O + o) * OH + oh) * OW + ow];
          int gi = o / Og;
          for (int ci = 0; ci < Cg; ci++)
            for (int kh = 0; kh < c->KH; kh++)
              for (int kw = 0; kw < c->KW; kw++) {
                long ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                long xi = ((long)(n * c->C + gi * Cg + ci) * c->H + ih) * c->W + iw;
                long wi = ((long)(o * Cg + ci) * c->KH + kh) * c->KW + kw;
                dx[xi] += rv * w[wi], dxm[xi] += fabs(rv * w[wi]);
                dwr[wi] += rv * x[xi], dwm[wi] += fabs(rv * x[xi]);
              }
        }
  asg_graph *g = asg_graph_new();
  asg_tensor *vx = tu_constant(g, dt, xs, x), *vw = tu_constant(g, dt, ws, w);
  asg_tensor *loss = asg_sum(asg_mul(asg_conv2d(vx, vw, NULL, c->p), tu_constant(g, dt, ys, r)),
                             ASG_ALL_AXES, false);
  asg_tensor *wrt[2] = {vx, vw}, *gr[2] = {NULL, NULL};
  int ok = asg_grad(loss, 2, wrt, gr) == ASG_OK;
  ok = ok && tu_eval(g, gr[0], got_x) == 0 && tu_eval(g, gr[1], got_w) == 0;
  double tol = dt == ASG_F32 ? 1e-5 : 1e-12;
  TU_CHECK(ok && close_mag("dx", got_x, dx, dxm, nx, tol), "conv2d %s (%s) input gradient", c->name,
           asg_dtype_name(dt));
  TU_CHECK(ok && close_mag("dw", got_w, dwr, dwm, nw, tol), "conv2d %s (%s) weight gradient",
           c->name, asg_dtype_name(dt));
  asg_graph_free(g);
  free(x), free(w), free(r), free(dx), free(dxm), free(dwr), free(dwm), free(got_x), free(got_w);
}

/* Transpose convolution as a scatter: every x[n,ci,ih,iw] adds
 * x * w[ci,co,kh,kw] into y[n, g*Cog+co, ih*s-p+kh*d, iw*s-p+kw*d]. */
static void test_conv_transpose(const cfg *c, asg_dtype dt) {
  int sh = P(c->p.stride[0], 1), sw = P(c->p.stride[1], 1), dh = P(c->p.dilation[0], 1),
      dw = P(c->p.dilation[1], 1), G = P(c->p.groups, 1), ph = c->p.padding[0],
      pw = c->p.padding[1];
  long OH = (long)(c->H - 1) * sh - 2 * ph + dh * (c->KH - 1) + c->p.output_padding[0] + 1;
  long OW = (long)(c->W - 1) * sw - 2 * pw + dw * (c->KW - 1) + c->p.output_padding[1] + 1;
  int Cig = c->C / G, Cog = c->O / G; /* C = input channels, O = output channels */
  asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W), ws = ASG_SHAPE(c->C, Cog, c->KH, c->KW);
  long nx = (long)asg_shape_numel(xs), nw = (long)asg_shape_numel(ws), ny = c->N * c->O * OH * OW;
  double *x = rnd(21, nx), *w = rnd(22, nw), *b = rnd(23, c->O);
  double *want = calloc((size_t)ny, 8), *mag = calloc((size_t)ny, 8), *got = malloc(8 * (size_t)ny);
  for (int n = 0; n < c->N; n++)
    for (int ci = 0; ci < c->C; ci++)
      for (int ih = 0; ih < c->H; ih++)
        for (int iw = 0; iw < c->W; iw++)
          for (int co = 0; co < Cog; co++)
            for (int kh = 0; kh < c->KH; kh++)
              for (int kw = 0; kw < c->KW; kw++) {
                long oh = (long)ih * sh - ph + kh * dh, ow = (long)iw * sw - pw + kw * dw;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                long o = (ci / Cig) * Cog + co;
                double t = x[((long)(n * c->C + ci) * c->H + ih) * c->W + iw] *
                           w[((long)(ci * Cog + co) * c->KH + kh) * c->KW + kw];
                long yi = ((n * c->O + o) * OH + oh) * OW + ow;
                want[yi] += t;
                mag[yi] += fabs(t);
              }
  if (c->bias)
    for (long i = 0; i < ny; i++) {
      long o = (i / (OH * OW)) % c->O;
      want[i] += b[o];
      mag[i] += fabs(b[o]);
    }
  asg_graph *g = asg_graph_new();
  asg_tensor *y =
      asg_conv_transpose2d(tu_constant(g, dt, xs, x), tu_constant(g, dt, ws, w),
                           c->bias ? tu_constant(g, dt, ASG_SHAPE(c->O), b) : NULL, c->p);
  asg_shape want_s = ASG_SHAPE(c->N, c->O, OH, OW);
  int shape_ok = y && asg_shape_equal(asg_tensor_shape(y), want_s);
  TU_CHECK(shape_ok, "conv_transpose2d %s: shape (%s)", c->name, asg_graph_error(g));
  if (shape_ok) {
    int ok = tu_eval(g, y, got) == 0;
    TU_CHECK(ok && close_mag(c->name, got, want, mag, ny, dt == ASG_F32 ? 1e-5 : 1e-12),
             "conv_transpose2d %s (%s) forward", c->name, asg_dtype_name(dt));
  }
  asg_graph_free(g);
  free(x), free(w), free(b), free(want), free(mag), free(got);
}

/* ---- pools ---- */
enum { PMAX, PAVG };
static void ref_pool(int kind, int N, int C, int H, int W, asg_pool_params p, double *x, double *y,
                     long *OHp, long *OWp) {
  int sh = P(p.stride[0], p.kernel[0]), sw = P(p.stride[1], p.kernel[1]);
  long OH = (H + 2 * p.padding[0] - p.kernel[0]) / sh + 1;
  long OW = (W + 2 * p.padding[1] - p.kernel[1]) / sw + 1;
  *OHp = OH, *OWp = OW;
  for (int pl = 0; pl < N * C; pl++)
    for (long oh = 0; oh < OH; oh++)
      for (long ow = 0; ow < OW; ow++) {
        double m = -INFINITY, s = 0;
        for (int kh = 0; kh < p.kernel[0]; kh++)
          for (int kw = 0; kw < p.kernel[1]; kw++) {
            long ih = oh * sh - p.padding[0] + kh, iw = ow * sw - p.padding[1] + kw;
            double v = (ih < 0 || ih >= H || iw < 0 || iw >= W) ? (kind == PMAX ? -INFINITY : 0)
                                                                : x[(pl * H + ih) * W + iw];
            if (v > m) m = v;
            s += v;
          }
        y[(pl * OH + oh) * OW + ow] = kind == PMAX ? m : s / (p.kernel[0] * p.kernel[1]);
      }
}

static void test_pool(int kind, int N, int C, int H, int W, asg_pool_params p, asg_dtype dt) {
  long n = (long)N * C * H * W, OH, OW;
  double *x = rnd(31, n), *want = malloc(8 * (size_t)n), *got = malloc(8 * (size_t)n);
  ref_pool(kind, N, C, H, W, p, x, want, &OH, &OW);
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = tu_constant(g, dt, ASG_SHAPE(N, C, H, W), x);
  asg_tensor *y = kind == PMAX ? asg_max_pool2d(xt, p) : asg_avg_pool2d(xt, p);
  int shape_ok = y && asg_shape_equal(asg_tensor_shape(y), ASG_SHAPE(N, C, OH, OW));
  TU_CHECK(shape_ok, "%s pool shape (%s)", kind == PMAX ? "max" : "avg", asg_graph_error(g));
  if (shape_ok) {
    int ok = tu_eval(g, y, got) == 0;
    TU_CHECK(ok && tu_close("pool", got, want, (long)N * C * OH * OW, dt == ASG_F32 ? 1e-6 : 1e-14,
                            dt == ASG_F32 ? 1e-6 : 1e-14),
             "%s pool k(%d,%d) s(%d,%d) p(%d,%d) %s forward", kind == PMAX ? "max" : "avg",
             p.kernel[0], p.kernel[1], p.stride[0], p.stride[1], p.padding[0], p.padding[1],
             asg_dtype_name(dt));
  }
  asg_graph_free(g);
  free(x), free(want), free(got);
}

static void test_adaptive(int N, int C, int H, int W, int oh, int ow, asg_dtype dt) {
  long n = (long)N * C * H * W, no = (long)N * C * oh * ow;
  double *x = rnd(41, n), *want = malloc(8 * (size_t)no), *got = malloc(8 * (size_t)no);
  for (int pl = 0; pl < N * C; pl++)
    for (int i = 0; i < oh; i++)
      for (int j = 0; j < ow; j++) {
        int hs = (int)floor((double)i * H / oh), he = (int)ceil((double)(i + 1) * H / oh);
        int ws = (int)floor((double)j * W / ow), we = (int)ceil((double)(j + 1) * W / ow);
        double s = 0;
        for (int h = hs; h < he; h++)
          for (int w = ws; w < we; w++)
            s += x[((long)pl * H + h) * W + w];
        want[((long)pl * oh + i) * ow + j] = s / ((he - hs) * (we - ws));
      }
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_adaptive_avg_pool2d(tu_constant(g, dt, ASG_SHAPE(N, C, H, W), x), oh, ow);
  int ok =
      y && asg_shape_equal(asg_tensor_shape(y), ASG_SHAPE(N, C, oh, ow)) && tu_eval(g, y, got) == 0;
  TU_CHECK(ok && tu_close("adaptive", got, want, no, 1e-6, dt == ASG_F32 ? 1e-6 : 1e-14),
           "adaptive_avg_pool2d %dx%d -> %dx%d (%s)", H, W, oh, ow, asg_dtype_name(dt));
  asg_graph_free(g);
  free(x), free(want), free(got);
}

/* ---- gradient checks ---- */
static const asg_conv_params NOCONV = {{0, 0}, {0, 0}, {0, 0}, 0, {0, 0}};
typedef struct gctx {
  asg_conv_params p;
  asg_pool_params pp;
  int oh, ow;
} gctx;

static asg_tensor *b_conv(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_conv2d(xs[0], xs[1], NULL, ((gctx *)ctx)->p);
}
static asg_tensor *b_conv_bias(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_conv2d(xs[0], xs[1], xs[2], ((gctx *)ctx)->p);
}
static asg_tensor *b_convt(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_conv_transpose2d(xs[0], xs[1], NULL, ((gctx *)ctx)->p);
}
static asg_tensor *b_convt_bias(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_conv_transpose2d(xs[0], xs[1], xs[2], ((gctx *)ctx)->p);
}
static asg_tensor *b_max(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_max_pool2d(xs[0], ((gctx *)ctx)->pp);
}
static asg_tensor *b_avg(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_avg_pool2d(xs[0], ((gctx *)ctx)->pp);
}
static asg_tensor *b_adaptive(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_adaptive_avg_pool2d(xs[0], ((gctx *)ctx)->oh, ((gctx *)ctx)->ow);
}
/* conv -> relu -> max pool -> conv_transpose: the rules compose. */
static asg_tensor *b_chain(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g, (void)ctx;
  asg_conv_params p = {{1, 1}, {1, 1}, {0, 0}, 0, {0, 0}};
  asg_tensor *h = asg_relu(asg_conv2d(xs[0], xs[1], NULL, p));
  asg_pool_params pp = {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}};
  asg_conv_params pt = {{2, 2}, {0, 0}, {0, 0}, 0, {1, 1}};
  return asg_conv_transpose2d(asg_max_pool2d(h, pp), xs[2], NULL, pt);
}

static void gradchecks(void) {
  struct {
    const char *name;
    asg_shape x, w;
    asg_conv_params p;
  } convs[] = {
      {"plain 3x3", ASG_SHAPE(2, 2, 5, 5), ASG_SHAPE(3, 2, 3, 3), {{0}, {0}, {0}, 0, {0}}},
      {"stride2 pad1", ASG_SHAPE(2, 2, 5, 6), ASG_SHAPE(2, 2, 3, 3), {{2, 2}, {1, 1}, {0}, 0, {0}}},
      {"dilation2 pad2",
       ASG_SHAPE(1, 2, 6, 5),
       ASG_SHAPE(2, 2, 3, 2),
       {{1, 1}, {2, 1}, {2, 2}, 0, {0}}},
      {"groups2", ASG_SHAPE(2, 4, 4, 4), ASG_SHAPE(4, 2, 2, 3), {{1, 2}, {1, 0}, {0}, 2, {0}}},
      {"depthwise s2",
       ASG_SHAPE(1, 3, 5, 5),
       ASG_SHAPE(3, 1, 3, 3),
       {{2, 2}, {1, 1}, {1, 1}, 3, {0}}},
  };
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
    gctx ctx = {convs[i].p, {.kernel = {0}, .stride = {0}, .padding = {0}}, 0, 0};
    asg_shape sh[3] = {convs[i].x, convs[i].w, ASG_SHAPE(convs[i].w.dims[0])};
    char nm[64];
    snprintf(nm, sizeof nm, "conv2d %s", convs[i].name);
    tu_gradcheck(nm, 2, sh, b_conv, &ctx, NULL);
  }
  {
    gctx ctx = {
        {{1, 2}, {1, 1}, {1, 1}, 1, {0, 0}}, {.kernel = {0}, .stride = {0}, .padding = {0}}, 0, 0};
    asg_shape sh[3] = {ASG_SHAPE(2, 3, 4, 5), ASG_SHAPE(2, 3, 3, 3), ASG_SHAPE(2)};
    tu_gradcheck("conv2d bias", 3, sh, b_conv_bias, &ctx, NULL);
  }
  struct {
    const char *name;
    asg_shape x, w;
    asg_conv_params p;
  } convts[] = {
      {"plain", ASG_SHAPE(2, 2, 3, 3), ASG_SHAPE(2, 3, 3, 3), {{0}, {0}, {0}, 0, {0}}},
      {"s2 p1 op1", ASG_SHAPE(1, 2, 3, 4), ASG_SHAPE(2, 2, 3, 3), {{2, 2}, {1, 1}, {0}, 0, {1, 0}}},
      {"groups2 d2", ASG_SHAPE(2, 4, 3, 3), ASG_SHAPE(4, 1, 2, 2), {{1, 1}, {0}, {2, 2}, 2, {0}}},
      /* output_padding >= stride, allowed by dilation: dx is a cut conv2d */
      {"op<dilation",
       ASG_SHAPE(1, 2, 3, 3),
       ASG_SHAPE(2, 2, 2, 2),
       {{1, 1}, {0}, {2, 2}, 0, {1, 1}}},
  };
  for (size_t i = 0; i < sizeof convts / sizeof *convts; i++) {
    gctx ctx = {convts[i].p, {.kernel = {0}, .stride = {0}, .padding = {0}}, 0, 0};
    asg_shape sh[2] = {convts[i].x, convts[i].w};
    char nm[64];
    snprintf(nm, sizeof nm, "conv_transpose2d %s", convts[i].name);
    tu_gradcheck(nm, 2, sh, b_convt, &ctx, NULL);
  }
  {
    gctx ctx = {
        {{2, 1}, {0}, {0}, 1, {1, 0}}, {.kernel = {0}, .stride = {0}, .padding = {0}}, 0, 0};
    asg_shape sh[3] = {ASG_SHAPE(1, 2, 3, 3), ASG_SHAPE(2, 3, 2, 2), ASG_SHAPE(3)};
    tu_gradcheck("conv_transpose2d bias", 3, sh, b_convt_bias, &ctx, NULL);
  }
  /* max pool: distinct values (a shuffled ramp) so no window has a tie and
   * no difference step crosses an argmax change */
  {
    double xv[2 * 2 * 5 * 5];
    long n = 100;
    for (long i = 0; i < n; i++)
      xv[i] = (double)((i * 37) % n) * 0.01;
    const double *data[1] = {xv};
    tu_gc_opts o = {0, 0, 1e-6, 1e-6, data};
    asg_shape sh[1] = {ASG_SHAPE(2, 2, 5, 5)};
    gctx c1 = {NOCONV, {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}}, 0, 0};
    tu_gradcheck("max_pool2d k2", 1, sh, b_max, &c1, &o);
    gctx c2 = {NOCONV, {.kernel = {3, 3}, .stride = {2, 1}, .padding = {1, 1}}, 0, 0};
    tu_gradcheck("max_pool2d k3 s(2,1) p1", 1, sh, b_max, &c2, &o);
  }
  {
    asg_shape sh[1] = {ASG_SHAPE(2, 2, 5, 5)};
    gctx c1 = {NOCONV, {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}}, 0, 0};
    tu_gradcheck("avg_pool2d k2", 1, sh, b_avg, &c1, NULL);
    gctx c2 = {NOCONV, {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}}, 0, 0};
    tu_gradcheck("avg_pool2d k(3,2) s(2,1) p1", 1, sh, b_avg, &c2, NULL);
    gctx c3 = {NOCONV, {.kernel = {0}, .stride = {0}, .padding = {0}}, 3, 2};
    tu_gradcheck("adaptive_avg_pool2d 5x5->3x2", 1, sh, b_adaptive, &c3, NULL);
    gctx c4 = {NOCONV, {.kernel = {0}, .stride = {0}, .padding = {0}}, 7, 4};
    tu_gradcheck("adaptive_avg_pool2d 5x5->7x4", 1, sh, b_adaptive, &c4, NULL);
  }
  {
    asg_shape sh[3] = {ASG_SHAPE(1, 2, 4, 4), ASG_SHAPE(3, 2, 3, 3), ASG_SHAPE(3, 2, 2, 2)};
    tu_gradcheck("conv->relu->maxpool->conv_transpose", 3, sh, b_chain, NULL, NULL);
  }
}

/* ---- errors ---- */
static void expect_error(asg_graph *g, asg_tensor *y, const char *op, const char *what) {
  const char *e = asg_graph_error(g);
  TU_CHECK(y == NULL && e && strstr(e, op), "%s: expected an error naming %s, got %s", what, op,
           e ? e : "(none)");
  if (e && strstr(e, op) && getenv("ASG_TEST_VERBOSE")) printf("  %s -> %s\n", what, e);
}

static void errors(void) {
  asg_conv_params p0 = {{0}, {0}, {0}, 0, {0}};
  struct {
    const char *what, *op;
    asg_shape x, w, b;
    asg_conv_params p;
    int transpose;
  } cases[] = {
      {"rank 3 input", "conv2d", ASG_SHAPE(3, 8, 8), ASG_SHAPE(4, 3, 3, 3), {0, {0}}, p0, 0},
      {"channel mismatch", "conv2d", ASG_SHAPE(2, 3, 8, 8), ASG_SHAPE(4, 2, 3, 3), {0, {0}}, p0, 0},
      {"groups channels",
       "conv2d",
       ASG_SHAPE(2, 4, 8, 8),
       ASG_SHAPE(4, 4, 3, 3),
       {0, {0}},
       {{0}, {0}, {0}, 2, {0}},
       0},
      {"cout % groups",
       "conv2d",
       ASG_SHAPE(2, 4, 8, 8),
       ASG_SHAPE(3, 2, 3, 3),
       {0, {0}},
       {{0}, {0}, {0}, 2, {0}},
       0},
      {"kernel too large", "conv2d", ASG_SHAPE(1, 1, 4, 4), ASG_SHAPE(1, 1, 5, 5), {0, {0}}, p0, 0},
      {"dilated kernel too large",
       "conv2d",
       ASG_SHAPE(1, 1, 4, 4),
       ASG_SHAPE(1, 1, 3, 3),
       {0, {0}},
       {{0}, {0}, {2, 2}, 0, {0}},
       0},
      {"negative stride",
       "conv2d",
       ASG_SHAPE(1, 1, 4, 4),
       ASG_SHAPE(1, 1, 3, 3),
       {0, {0}},
       {{-1, 1}, {0}, {0}, 0, {0}},
       0},
      {"negative padding",
       "conv2d",
       ASG_SHAPE(1, 1, 4, 4),
       ASG_SHAPE(1, 1, 3, 3),
       {0, {0}},
       {{0}, {-1, 0}, {0}, 0, {0}},
       0},
      {"bad bias", "conv2d", ASG_SHAPE(1, 2, 4, 4), ASG_SHAPE(3, 2, 3, 3), ASG_SHAPE(2), p0, 0},
      {"transpose channels",
       "conv_transpose2d",
       ASG_SHAPE(1, 3, 4, 4),
       ASG_SHAPE(2, 3, 3, 3),
       {0, {0}},
       p0,
       1},
      {"transpose output_padding",
       "conv_transpose2d",
       ASG_SHAPE(1, 2, 4, 4),
       ASG_SHAPE(2, 3, 3, 3),
       {0, {0}},
       {{2, 2}, {0}, {0}, 0, {2, 0}},
       1},
      {"transpose groups",
       "conv_transpose2d",
       ASG_SHAPE(1, 3, 4, 4),
       ASG_SHAPE(3, 1, 3, 3),
       {0, {0}},
       {{0}, {0}, {0}, 2, {0}},
       1},
      {"transpose empty output",
       "conv_transpose2d",
       ASG_SHAPE(1, 1, 1, 1),
       ASG_SHAPE(1, 1, 1, 1),
       {0, {0}},
       {{0}, {1, 1}, {0}, 0, {0}},
       1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, cases[i].x);
    asg_tensor *w = asg_input(g, "w", ASG_F32, cases[i].w);
    asg_tensor *b = cases[i].b.ndim ? asg_input(g, "b", ASG_F32, cases[i].b) : NULL;
    asg_tensor *y = cases[i].transpose ? asg_conv_transpose2d(x, w, b, cases[i].p)
                                       : asg_conv2d(x, w, b, cases[i].p);
    expect_error(g, y, cases[i].op, cases[i].what);
    asg_graph_free(g);
  }
  { /* dtype mismatch and integer input */
    asg_graph *g = asg_graph_new();
    asg_tensor *y = asg_conv2d(asg_input(g, "x", ASG_F32, ASG_SHAPE(1, 1, 4, 4)),
                               asg_input(g, "w", ASG_F64, ASG_SHAPE(1, 1, 3, 3)), NULL, p0);
    expect_error(g, y, "conv2d", "dtype mismatch");
    asg_graph_free(g);
    g = asg_graph_new();
    y = asg_max_pool2d(asg_input(g, "x", ASG_I32, ASG_SHAPE(1, 1, 4, 4)),
                       (asg_pool_params){.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}});
    expect_error(g, y, "max_pool2d", "integer pool");
    asg_graph_free(g);
  }
  struct {
    const char *what;
    asg_shape x;
    asg_pool_params p;
  } pools[] = {
      {"pool rank 3", ASG_SHAPE(1, 4, 4), {.kernel = {2, 2}, .stride = {0}, .padding = {0}}},
      {"pool kernel 0", ASG_SHAPE(1, 1, 4, 4), {.kernel = {0, 2}, .stride = {0}, .padding = {0}}},
      {"pool kernel too large",
       ASG_SHAPE(1, 1, 4, 4),
       {.kernel = {5, 5}, .stride = {0}, .padding = {0}}},
      {"pool padding > kernel/2",
       ASG_SHAPE(1, 1, 4, 4),
       {.kernel = {2, 2}, .stride = {0}, .padding = {2, 0}}},
  };
  for (size_t i = 0; i < sizeof pools / sizeof *pools; i++)
    for (int k = 0; k < 2; k++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *x = asg_input(g, "x", ASG_F32, pools[i].x);
      asg_tensor *y = k ? asg_avg_pool2d(x, pools[i].p) : asg_max_pool2d(x, pools[i].p);
      expect_error(g, y, k ? "avg_pool2d" : "max_pool2d", pools[i].what);
      asg_graph_free(g);
    }
  {
    asg_graph *g = asg_graph_new();
    asg_tensor *y =
        asg_adaptive_avg_pool2d(asg_input(g, "x", ASG_F32, ASG_SHAPE(1, 1, 4, 4)), 0, 2);
    expect_error(g, y, "adaptive_avg_pool2d", "adaptive output 0");
    asg_graph_free(g);
    g = asg_graph_new();
    y = asg_adaptive_avg_pool2d(asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 4)), 2, 2);
    expect_error(g, y, "adaptive_avg_pool2d", "adaptive rank 2");
    asg_graph_free(g);
  }
  { /* second-order through a backward op is refused with a clear message */
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_variable(g, "x", ASG_F64, ASG_SHAPE(1, 1, 4, 4), asg_init_zeros());
    asg_tensor *w = asg_variable(g, "w", ASG_F64, ASG_SHAPE(1, 1, 3, 3), asg_init_zeros());
    asg_tensor *l = asg_sum(asg_conv2d(x, w, NULL, p0), ASG_ALL_AXES, false);
    asg_tensor *gx = NULL, *ggx = NULL;
    asg_status s1 = asg_grad(l, 1, &x, &gx);
    asg_status s2 = asg_grad(asg_sum(asg_mul(gx, gx), ASG_ALL_AXES, false), 1, &w, &ggx);
    const char *e = asg_graph_error(g);
    TU_CHECK(s1 == ASG_OK && s2 != ASG_OK && e && strstr(e, "conv2d_bwd_input"),
             "double backward: %s", e ? e : "(none)");
    asg_graph_free(g);
  }
}

int main(void) {
  const cfg convs[] = {
      {"plain", 2, 3, 7, 6, 4, 3, 3, {{0}, {0}, {0}, 0, {0}}, 0},
      {"stride2", 2, 3, 9, 8, 5, 3, 3, {{2, 2}, {0}, {0}, 0, {0}}, 1},
      {"padding1", 2, 3, 6, 6, 4, 3, 3, {{1, 1}, {1, 1}, {0}, 0, {0}}, 1},
      {"dilation2", 1, 2, 9, 9, 3, 3, 3, {{1, 1}, {1, 2}, {2, 2}, 0, {0}}, 0},
      {"groups2", 2, 4, 6, 7, 6, 3, 2, {{1, 1}, {1, 0}, {0}, 2, {0}}, 1},
      {"depthwise", 2, 5, 7, 7, 5, 3, 3, {{2, 1}, {1, 1}, {0}, 5, {0}}, 1},
      {"depthwise x2", 1, 3, 6, 6, 6, 3, 3, {{1, 1}, {1, 1}, {0}, 3, {0}}, 0},
      {"non-square", 2, 3, 8, 10, 4, 2, 5, {{2, 3}, {1, 2}, {1, 2}, 0, {0}}, 1},
      {"1x1", 3, 8, 5, 5, 6, 1, 1, {{0}, {0}, {0}, 0, {0}}, 1},
      {"1x1 stride2", 2, 4, 5, 6, 3, 1, 1, {{2, 2}, {0}, {0}, 0, {0}}, 0},
      {"kernel = padded input", 1, 2, 3, 3, 2, 5, 5, {{0}, {1, 1}, {0}, 0, {0}}, 1},
      {"mnist-ish", 16, 8, 14, 14, 16, 3, 3, {{1, 1}, {1, 1}, {0}, 0, {0}}, 1},
  };
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
    test_conv_forward(&convs[i], ASG_F64);
    test_conv_forward(&convs[i], ASG_F32);
  }
  /* (the f32 stride-1 cases above with 16..256 taps run the direct kernel
   * of cpu_conv_direct.c, the others im2col + GEMM) enough work that the
   * kernels split the batch over threads (weight gradient partials per
   * block), odd batch sizes, a 1x1 direct case */
  const cfg big[] = {
      {"big", 9, 1, 120, 120, 2, 3, 3, {{1, 1}, {1, 1}, {0}, 0, {0}}, 0},
      {"big 1x1", 6, 16, 40, 40, 8, 1, 1, {{0}, {0}, {0}, 0, {0}}, 0},
      {"big groups s2", 5, 4, 90, 90, 4, 3, 3, {{2, 1}, {1, 1}, {1, 2}, 2, {0}}, 0},
  };
  for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
    test_conv_forward(&big[i], ASG_F64);
    test_conv_grads_large(&big[i], ASG_F64);
    test_conv_grads_large(&big[i], ASG_F32);
  }
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++)
    if (i % 3 == 0 || i == 4 || i == 7 || i == 8 || i == 11)
      test_conv_grads_large(&convs[i], ASG_F64);

  const cfg tconvs[] = {
      {"plain", 2, 3, 4, 5, 2, 3, 3, {{0}, {0}, {0}, 0, {0}}, 0},
      {"s2 p1 op1", 2, 3, 4, 4, 4, 3, 3, {{2, 2}, {1, 1}, {0}, 0, {1, 1}}, 1},
      {"groups2 dilation2", 1, 4, 5, 4, 6, 3, 2, {{1, 2}, {1, 0}, {2, 1}, 2, {0, 1}}, 1},
      {"depthwise s3", 2, 3, 3, 3, 3, 2, 2, {{3, 3}, {0}, {0}, 3, {2, 0}}, 0},
      {"op < dilation", 1, 2, 4, 4, 3, 3, 3, {{1, 1}, {0}, {2, 2}, 0, {1, 1}}, 0},
      {"non-square", 2, 2, 3, 5, 3, 2, 4, {{2, 1}, {0, 1}, {1, 2}, 0, {1, 0}}, 1},
  };
  for (size_t i = 0; i < sizeof tconvs / sizeof *tconvs; i++) {
    test_conv_transpose(&tconvs[i], ASG_F64);
    test_conv_transpose(&tconvs[i], ASG_F32);
  }

  const asg_pool_params pps[] = {
      {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}},
      {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
      {.kernel = {3, 2}, .stride = {1, 2}, .padding = {1, 0}},
      {.kernel = {2, 3}, .stride = {1, 1}, .padding = {0, 1}},
      {.kernel = {4, 4}, .stride = {3, 3}, .padding = {2, 2}},
  };
  for (size_t i = 0; i < sizeof pps / sizeof *pps; i++)
    for (int k = 0; k < 2; k++) {
      test_pool(k, 2, 3, 7, 8, pps[i], ASG_F64);
      test_pool(k, 2, 3, 7, 8, pps[i], ASG_F32);
    }
  test_pool(PMAX, 4, 16, 28, 28, pps[0], ASG_F32); /* parallel planes */
  test_pool(PAVG, 4, 16, 28, 28, pps[1], ASG_F32);
  test_adaptive(2, 3, 5, 5, 3, 3, ASG_F64);
  test_adaptive(2, 3, 7, 10, 3, 4, ASG_F32);
  test_adaptive(1, 2, 4, 6, 1, 1, ASG_F64);
  test_adaptive(1, 2, 3, 2, 5, 4, ASG_F64); /* output larger than input */
  test_adaptive(4, 16, 28, 28, 7, 7, ASG_F32);

  gradchecks();
  errors();
  return tu_finish();
}
