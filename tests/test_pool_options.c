/* Pooling options (asg_pool_params.dilation, ceil_mode, exclude_pad) with
 * PyTorch's semantics: forward and input gradient against float64 loops
 * written here from PyTorch's definition (pooling_output_shape and the CPU
 * kernels of max_pool2d / avg_pool2d), in f32 and f64; values printed by
 * PyTorch; central-difference gradients in float64; ceil mode on a
 * symbolic axis; the layers; and the parameters PyTorch refuses. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- reference ---- */
static int dflt(int v, int d) { return v ? v : d; }

/* PyTorch's pooling_output_shape: div_rtn (rounds down) and, in ceil mode,
 * no window starting in the right padding. */
static long ref_out(long in, int K, int s, int pad, int d, bool ceil_mode) {
  long num = in + 2 * pad - (long)d * (K - 1) - 1 + (ceil_mode ? s - 1 : 0);
  long o = (long)floor((double)num / s) + 1;
  if (ceil_mode && (o - 1) * s >= in + pad) o--;
  return o;
}

typedef struct geo {
  int N, C, H, W;
  long OH, OW;
  int KH, KW, sh, sw, ph, pw, dh, dw;
} geo;

static geo geo_of(int N, int C, int H, int W, asg_pool_params p) {
  geo g = {N,
           C,
           H,
           W,
           0,
           0,
           p.kernel[0],
           p.kernel[1],
           dflt(p.stride[0], p.kernel[0]),
           dflt(p.stride[1], p.kernel[1]),
           p.padding[0],
           p.padding[1],
           dflt(p.dilation[0], 1),
           dflt(p.dilation[1], 1)};
  g.OH = ref_out(H, g.KH, g.sh, g.ph, g.dh, p.ceil_mode);
  g.OW = ref_out(W, g.KW, g.sw, g.pw, g.dw, p.ceil_mode);
  return g;
}

/* y = pool(x); dx = the gradient of sum(y * r). Max: the first maximum of
 * the taps inside the input (row-major), -inf and no gradient without one.
 * Avg (PyTorch's avg_pool2d): the window clipped to the padded input gives
 * pool_size; the divisor is pool_size, or with exclude_pad the window's
 * cells inside the input. */
static void ref_pool(bool is_max, const geo *g, bool exclude_pad, const double *x, const double *r,
                     double *y, double *dx) {
  memset(dx, 0, sizeof(double) * (size_t)g->N * g->C * g->H * g->W);
  for (long pl = 0; pl < (long)g->N * g->C; pl++)
    for (long oh = 0; oh < g->OH; oh++)
      for (long ow = 0; ow < g->OW; ow++) {
        const double *xp = x + pl * g->H * g->W;
        double *dxp = dx + pl * g->H * g->W, rv = r[(pl * g->OH + oh) * g->OW + ow], out;
        long hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
        if (is_max) {
          long best = -1;
          for (int kh = 0; kh < g->KH; kh++)
            for (int kw = 0; kw < g->KW; kw++) {
              long ih = hs + (long)kh * g->dh, iw = ws + (long)kw * g->dw;
              if (ih < 0 || ih >= g->H || iw < 0 || iw >= g->W) continue;
              if (best < 0 || xp[ih * g->W + iw] > xp[best]) best = ih * g->W + iw;
            }
          out = best < 0 ? -INFINITY : xp[best];
          if (best >= 0) dxp[best] += rv;
        } else {
          long he = hs + g->KH < g->H + g->ph ? hs + g->KH : g->H + g->ph;
          long we = ws + g->KW < g->W + g->pw ? ws + g->KW : g->W + g->pw;
          long pool_size = (he - hs) * (we - ws);
          long h0 = hs > 0 ? hs : 0, w0 = ws > 0 ? ws : 0;
          long h1 = he < g->H ? he : g->H, w1 = we < g->W ? we : g->W;
          double div = (double)(exclude_pad ? (h1 - h0) * (w1 - w0) : pool_size), s = 0;
          for (long ih = h0; ih < h1; ih++)
            for (long iw = w0; iw < w1; iw++)
              s += xp[ih * g->W + iw], dxp[ih * g->W + iw] += rv / div;
          out = s / div;
        }
        y[(pl * g->OH + oh) * g->OW + ow] = out;
      }
}

/* tu_close, with equal infinities equal (a max window without input cells
 * is -inf). */
static int close_inf(const char *what, double *got, const double *want, long n, double tol) {
  for (long i = 0; i < n; i++)
    if (isinf(want[i]) && got[i] == want[i]) got[i] = 0;
  double *w = malloc(8 * (size_t)n);
  for (long i = 0; i < n; i++)
    w[i] = isinf(want[i]) ? 0 : want[i];
  int ok = tu_close(what, got, w, n, tol, tol);
  free(w);
  return ok;
}

/* Forward and input gradient of one configuration in dtype dt. */
static void check_case(const char *name, bool is_max, int N, int C, int H, int W, asg_pool_params p,
                       asg_dtype dt) {
  geo gm = geo_of(N, C, H, W, p);
  long nx = (long)N * C * H * W, ny = (long)N * C * gm.OH * gm.OW;
  double *x = malloc(8 * (size_t)nx), *r = malloc(8 * (size_t)ny), *y = malloc(8 * (size_t)ny);
  double *dx = malloc(8 * (size_t)nx), *got = malloc(8 * (size_t)ny), *gdx = malloc(8 * (size_t)nx);
  tu_rand(7, x, nx, -1, 1);
  tu_rand(8, r, ny, -1, 1);
  if (dt == ASG_F32) /* the reference sees the values the kernel sees (ties included) */
    for (long i = 0; i < nx; i++)
      x[i] = (double)(float)x[i];
  ref_pool(is_max, &gm, p.exclude_pad, x, r, y, dx);
  asg_graph *g = asg_graph_new();
  asg_shape xs = ASG_SHAPE(N, C, H, W), ys = ASG_SHAPE(N, C, gm.OH, gm.OW);
  asg_tensor *xt = tu_constant(g, dt, xs, x);
  asg_tensor *yt = is_max ? asg_max_pool2d(xt, p) : asg_avg_pool2d(xt, p);
  bool shape_ok = yt && asg_shape_equal(asg_tensor_shape(yt), ys);
  TU_CHECK(shape_ok, "%s (%s): shape, want [%d,%d,%ld,%ld] (%s)", name, asg_dtype_name(dt), N, C,
           gm.OH, gm.OW, asg_graph_error(g) ? asg_graph_error(g) : "wrong size");
  if (shape_ok) {
    asg_tensor *loss = asg_sum(asg_mul(yt, tu_constant(g, dt, ys, r)), ASG_ALL_AXES, false);
    asg_tensor *gx = NULL;
    bool ok = asg_grad(loss, 1, &xt, &gx) == ASG_OK && tu_eval(g, yt, got) == 0 &&
              tu_eval(g, gx, gdx) == 0;
    double tol = dt == ASG_F32 ? 1e-5 : 1e-13;
    TU_CHECK(ok && close_inf(name, got, y, ny, tol), "%s (%s): forward", name, asg_dtype_name(dt));
    TU_CHECK(ok && tu_close(name, gdx, dx, nx, tol, tol), "%s (%s): input gradient", name,
             asg_dtype_name(dt));
  }
  asg_graph_free(g);
  free(x), free(r), free(y), free(dx), free(got), free(gdx);
}

static asg_pool_params PP(int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                          bool ceil_mode, bool exclude_pad) {
  asg_pool_params p = {{kh, kw}, {sh, sw}, {ph, pw}, {dh, dw}, ceil_mode, exclude_pad};
  return p;
}

static void sweep(void) {
  static const struct {
    const char *name;
    bool is_max;
    int H, W;
    asg_pool_params p;
  } cases[] = {
      {"max ceil k3 s2 p1", true, 7, 8, {{3, 3}, {2, 2}, {1, 1}, {0}, true, false}},
      {"max ceil k2 s2 p1 (last window dropped)",
       true,
       5,
       5,
       {{2, 2}, {2, 2}, {1, 1}, {0}, true, false}},
      {"max ceil k2 s2 odd (no 2x2 fast path)",
       true,
       7,
       9,
       {{2, 2}, {2, 2}, {0}, {0}, true, false}},
      {"max ceil input smaller than kernel", true, 1, 3, {{2, 2}, {2, 2}, {0}, {0}, true, false}},
      {"max dilation 2 k2 s2 (no 2x2 fast path)",
       true,
       8,
       8,
       {{2, 2}, {2, 2}, {0}, {2, 2}, false, false}},
      {"max dilation (2,3) k3 s1 p1", true, 9, 10, {{3, 3}, {1, 1}, {1, 1}, {2, 3}, false, false}},
      {"max dilation 2 ceil k3 s2 p1", true, 8, 7, {{3, 3}, {2, 2}, {1, 1}, {2, 2}, true, false}},
      {"max dilation 3 k2 s3 p1 ceil", true, 10, 11, {{2, 2}, {3, 3}, {1, 1}, {3, 3}, true, false}},
      {"max dilation 2 p1 window in the padding",
       true,
       1,
       1,
       {{2, 2}, {1, 1}, {1, 1}, {2, 2}, false, false}},
      {"avg ceil include k3 s2 p1", false, 7, 8, {{3, 3}, {2, 2}, {1, 1}, {0}, true, false}},
      {"avg ceil exclude k3 s2 p1", false, 7, 8, {{3, 3}, {2, 2}, {1, 1}, {0}, true, true}},
      {"avg exclude k3 s1 p1", false, 6, 5, {{3, 3}, {1, 1}, {1, 1}, {0}, false, true}},
      {"avg ceil k(3,2) s(2,3) p(1,0)", false, 6, 6, {{3, 2}, {2, 3}, {1, 0}, {0}, true, false}},
      {"avg ceil exclude k(2,4) s(3,3) p(1,2)",
       false,
       8,
       9,
       {{2, 4}, {3, 3}, {1, 2}, {0}, true, true}},
      {"avg ceil k2 s2 odd", false, 7, 9, {{2, 2}, {2, 2}, {0}, {0}, true, false}},
      {"avg plain k3 s2 p1", false, 7, 8, {{3, 3}, {2, 2}, {1, 1}, {0}, false, false}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    check_case(cases[i].name, cases[i].is_max, 2, 3, cases[i].H, cases[i].W, cases[i].p, ASG_F64);
    check_case(cases[i].name, cases[i].is_max, 2, 3, cases[i].H, cases[i].W, cases[i].p, ASG_F32);
  }
  /* enough planes that the CPU kernels split them over threads */
  check_case("max ceil dilation parallel", true, 4, 16, 27, 27, PP(3, 3, 2, 2, 1, 1, 2, 2, 1, 0),
             ASG_F32);
  check_case("avg ceil exclude parallel", false, 4, 16, 27, 27, PP(3, 3, 2, 2, 1, 1, 0, 0, 1, 1),
             ASG_F32);
}

/* ---- values printed by PyTorch 2.x (/work/venv), input
 * X(h, w) = [((i * 37) % 61) / 8 - 3 for i in range(h * w)] as [1,1,h,w]:
 *   import torch, torch.nn.functional as F
 *   def X(h, w): return torch.tensor([((i*37) % 61) / 8.0 - 3 for i in
 *       range(h*w)], dtype=torch.float64).reshape(1, 1, h, w)
 *   A = F.max_pool2d(X(5, 6), (3, 2), stride=2, padding=1, ceil_mode=True)
 *   B = F.max_pool2d(X(7, 6), (2, 3), stride=(2, 1), padding=1, dilation=2)
 *   C = F.avg_pool2d(X(5, 6), 3, stride=2, padding=1, ceil_mode=True,
 *                    count_include_pad=True)
 *   D = (the same with count_include_pad=False)
 *   E = F.avg_pool2d(X(6, 6), (3, 2), stride=(2, 3), padding=(1, 0),
 *                    ceil_mode=True, count_include_pad=True)
 *   F_ = F.max_pool2d(X(6, 7), 3, stride=2, padding=1, dilation=2, ceil_mode=True)
 *   G = F.max_pool2d(X(5, 5), 2, stride=2, padding=1, ceil_mode=True)
 *   Eg: x = X(6, 6).requires_grad_(); y = (E's pool of x);
 *       (y * torch.arange(1., y.numel() + 1).reshape(y.shape)).sum().backward(); x.grad */
static const double LA[] = {1.875, 3.5, 3.25, 2.125, 4.0, 3.75, 2.625, 4.25, 4.0, 2.875, 4.5, 4.25};
static const double LB[] = {0.5,   3.5, 2.125, 3.5,  2.625, 4.0,  4.25,  3.5,
                            3.125, 4.0, 4.25,  1.75, 3.125, 1.75, 3.125, 1.75};
static const double LC[] = {-0.06944444444444445,
                            0.7083333333333334,
                            0.09722222222222222,
                            -0.10416666666666667,
                            0.9583333333333334,
                            0.75,
                            0.6805555555555556,
                            0.9583333333333334,
                            0.5,
                            0.2916666666666667,
                            1.375,
                            0.9583333333333334};
static const double LD[] = {-0.15625,
                            1.0625,
                            0.14583333333333334,
                            -0.3125,
                            1.4375,
                            0.75,
                            0.6805555555555556,
                            1.9166666666666667,
                            1.125,
                            0.4375,
                            2.0625,
                            2.875};
static const double LE[] = {-0.10416666666666667, 0.25,    1.4375,  0.0625, 1.0208333333333333,
                            0.9166666666666666,   0.40625, -0.28125};
static const double LF[] = {3.5, 3.5, 2.875, 3.5, 3.5, 2.875, 3.375, 3.375, 2.875};
static const double LG[] = {-3.0, 1.625, 3.25, -2.5, 2.125, 3.75, -2.0, 2.625, 4.25};
static const double LEG[] = {0.16666666666666666,
                             0.16666666666666666,
                             0.0,
                             0.3333333333333333,
                             0.3333333333333333,
                             0.0,
                             0.6666666666666666,
                             0.6666666666666666,
                             0.0,
                             1.0,
                             1.0,
                             0.0,
                             0.5,
                             0.5,
                             0.0,
                             0.6666666666666666,
                             0.6666666666666666,
                             0.0,
                             1.3333333333333335,
                             1.3333333333333335,
                             0.0,
                             1.6666666666666665,
                             1.6666666666666665,
                             0.0,
                             0.8333333333333334,
                             0.8333333333333334,
                             0.0,
                             1.0,
                             1.0,
                             0.0,
                             2.5833333333333335,
                             2.5833333333333335,
                             0.0,
                             3.0,
                             3.0,
                             0.0};

static asg_tensor *X(asg_graph *g, asg_dtype dt, int h, int w) {
  double v[64];
  for (int i = 0; i < h * w; i++)
    v[i] = ((i * 37) % 61) / 8.0 - 3;
  return tu_constant(g, dt, ASG_SHAPE(1, 1, h, w), v);
}

static void literal(const char *name, bool is_max, int h, int w, asg_pool_params p, int oh, int ow,
                    const double *want, asg_dtype dt) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = X(g, dt, h, w), *y = is_max ? asg_max_pool2d(x, p) : asg_avg_pool2d(x, p);
  double got[64];
  bool ok =
      y && asg_shape_equal(asg_tensor_shape(y), ASG_SHAPE(1, 1, oh, ow)) && tu_eval(g, y, got) == 0;
  double tol = dt == ASG_F32 ? 1e-6 : 1e-15;
  TU_CHECK(ok && tu_close(name, got, want, (long)oh * ow, tol, tol),
           "PyTorch %s (%s): [1,1,%d,%d] (%s)", name, asg_dtype_name(dt), oh, ow,
           asg_graph_error(g) ? asg_graph_error(g) : "values");
  asg_graph_free(g);
}

static void literals(void) {
  for (int k = 0; k < 2; k++) {
    asg_dtype dt = k ? ASG_F32 : ASG_F64;
    literal("A", true, 5, 6, PP(3, 2, 2, 2, 1, 1, 0, 0, 1, 0), 3, 4, LA, dt);
    literal("B", true, 7, 6, PP(2, 3, 2, 1, 1, 1, 2, 2, 0, 0), 4, 4, LB, dt);
    literal("C", false, 5, 6, PP(3, 3, 2, 2, 1, 1, 0, 0, 1, 0), 3, 4, LC, dt);
    literal("D", false, 5, 6, PP(3, 3, 2, 2, 1, 1, 0, 0, 1, 1), 3, 4, LD, dt);
    literal("E", false, 6, 6, PP(3, 2, 2, 3, 1, 0, 0, 0, 1, 0), 4, 2, LE, dt);
    literal("F", true, 6, 7, PP(3, 3, 2, 2, 1, 1, 2, 2, 1, 0), 3, 3, LF, dt);
    literal("G", true, 5, 5, PP(2, 2, 2, 2, 1, 1, 0, 0, 1, 0), 3, 3, LG, dt);
  }
  /* E's input gradient for dy = 1, 2, ..., 8 */
  asg_graph *g = asg_graph_new();
  asg_tensor *x = X(g, ASG_F64, 6, 6);
  asg_tensor *y = asg_avg_pool2d(x, PP(3, 2, 2, 3, 1, 0, 0, 0, 1, 0));
  double rv[8] = {1, 2, 3, 4, 5, 6, 7, 8}, got[36];
  asg_tensor *loss =
      asg_sum(asg_mul(y, tu_constant(g, ASG_F64, ASG_SHAPE(1, 1, 4, 2), rv)), ASG_ALL_AXES, false);
  asg_tensor *gx = NULL;
  bool ok = asg_grad(loss, 1, &x, &gx) == ASG_OK && tu_eval(g, gx, got) == 0;
  TU_CHECK(ok && tu_close("Eg", got, LEG, 36, 1e-15, 1e-15), "PyTorch E: input gradient");
  asg_graph_free(g);
}

/* ---- central differences (float64) ---- */
typedef struct gctx {
  bool is_max;
  asg_pool_params p;
} gctx;
static asg_tensor *b_pool(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const gctx *c = ctx;
  return c->is_max ? asg_max_pool2d(xs[0], c->p) : asg_avg_pool2d(xs[0], c->p);
}

static void gradchecks(void) {
  /* max: distinct values (a shuffled ramp), so no difference step crosses
   * an argmax change */
  double xv[2 * 2 * 7 * 6];
  long n = 2 * 2 * 7 * 6;
  for (long i = 0; i < n; i++)
    xv[i] = (double)((i * 59) % n) * 0.01;
  const double *data[1] = {xv};
  tu_gc_opts o = {0, 0, 1e-6, 1e-6, data};
  asg_shape sh[1] = {ASG_SHAPE(2, 2, 7, 6)};
  gctx m1 = {true, PP(3, 2, 2, 2, 1, 1, 2, 1, 1, 0)};
  tu_gradcheck("max_pool2d ceil dilation (2,1) p1", 1, sh, b_pool, &m1, &o);
  gctx m2 = {true, PP(2, 3, 3, 2, 1, 1, 3, 2, 0, 0)};
  tu_gradcheck("max_pool2d dilation (3,2) s(3,2) p1", 1, sh, b_pool, &m2, &o);
  gctx a1 = {false, PP(3, 3, 2, 2, 1, 1, 0, 0, 1, 0)};
  tu_gradcheck("avg_pool2d ceil include p1", 1, sh, b_pool, &a1, NULL);
  gctx a2 = {false, PP(3, 2, 2, 3, 1, 1, 0, 0, 1, 1)};
  tu_gradcheck("avg_pool2d ceil exclude p1", 1, sh, b_pool, &a2, NULL);
}

/* ---- ceil mode on a symbolic axis: same sizes and values as static ---- */
static void symbolic(void) {
  asg_pool_params p = PP(3, 2, 2, 2, 1, 0, 0, 0, 1, 0); /* H: s + pad <= kernel */
  for (int H = 4; H <= 7; H++) {
    asg_graph *g = asg_graph_new();
    int64_t h = asg_dim(g, "h", 16);
    asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(1, 2, h, 7));
    asg_tensor *y = asg_avg_pool2d(x, p);
    asg_program *pr = y ? asg_compile(g, 1, &y, NULL) : NULL;
    geo gm = geo_of(1, 2, H, 7, p);
    double xv[2 * 7 * 7], r[2 * 4 * 4], want[2 * 4 * 4], dx[2 * 7 * 7], got[2 * 4 * 4];
    tu_rand(3, xv, 2 * H * 7, -1, 1);
    memset(r, 0, sizeof r);
    ref_pool(false, &gm, false, xv, r, want, dx);
    asg_shape ys = {0};
    bool ok = pr && tu_feed(pr, "x", ASG_F64, xv, 2L * H * 7) == 0 && asg_program_run(pr) == 0 &&
              asg_program_output_shape(pr, y, &ys) == 0 &&
              asg_shape_equal(ys, ASG_SHAPE(1, 2, gm.OH, gm.OW)) &&
              asg_program_fetch(pr, y, got, sizeof(double) * 2 * (size_t)(gm.OH * gm.OW)) == 0;
    TU_CHECK(ok && tu_close("symbolic", got, want, 2 * gm.OH * gm.OW, 1e-14, 1e-14),
             "avg_pool2d ceil on symbolic h = %d: [1,2,%ld,%ld] (%s)", H, gm.OH, gm.OW,
             asg_graph_error(g) ? asg_graph_error(g) : asg_last_error());
    asg_program_free(pr);
    asg_graph_free(g);
  }
  /* a window might start in the right padding: not expressible, refused */
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(1, 2, asg_dim(g, "h", 0), 7));
  asg_tensor *y = asg_max_pool2d(x, PP(2, 2, 2, 2, 1, 1, 0, 0, 1, 0));
  TU_CHECK(!y && tu_contains(asg_graph_error(g), "ceil_mode on symbolic axis"),
           "ceil mode with stride + padding > kernel on a symbolic axis: %s",
           asg_graph_error(g) ? asg_graph_error(g) : "(accepted)");
  asg_graph_free(g);
}

/* ---- layers pass the options through ---- */
static void layers(void) {
  asg_graph *g = asg_graph_new();
  asg_layer *l = asg_nn_avgpool2d(g, "pool", PP(3, 3, 2, 2, 1, 1, 0, 0, 1, 1));
  asg_layer *m = asg_nn_maxpool2d(g, "mpool", PP(2, 2, 2, 2, 1, 1, 0, 0, 1, 0));
  asg_tensor *y = asg_layer_apply(l, X(g, ASG_F64, 5, 6));
  asg_tensor *z = asg_layer_apply(m, X(g, ASG_F64, 5, 5));
  double got[12], got2[9];
  bool ok = y && z && tu_eval(g, y, got) == 0 && tu_eval(g, z, got2) == 0;
  TU_CHECK(ok && tu_close("layer", got, LD, 12, 1e-15, 1e-15) &&
               tu_close("layer", got2, LG, 9, 1e-15, 1e-15),
           "asg_nn_avgpool2d / asg_nn_maxpool2d with ceil_mode, exclude_pad (%s)",
           asg_graph_error(g) ? asg_graph_error(g) : "values");
  asg_graph_free(g);
}

/* ---- what PyTorch refuses ---- */
static void errors(void) {
  static const struct {
    const char *what, *needle;
    bool is_max;
    int H, W;
    asg_pool_params p;
  } bad[] = {
      {"avg with dilation", "no dilation", false, 6, 6, {{2, 2}, {0}, {0}, {2, 1}, false, false}},
      {"max with exclude_pad", "exclude_pad", true, 6, 6, {{2, 2}, {0}, {0}, {0}, false, true}},
      {"negative dilation", "dilation", true, 6, 6, {{2, 2}, {0}, {0}, {-1, 1}, false, false}},
      {"padding > kernel/2 with dilation",
       "half the kernel",
       true,
       9,
       9,
       {{3, 3}, {1, 1}, {2, 2}, {2, 2}, false, false}},
      {"dilated kernel past the input",
       "larger than padded input",
       true,
       4,
       4,
       {{3, 3}, {1, 1}, {1, 1}, {3, 3}, false, false}},
      {"ceil: kernel past the input by more than a stride",
       "larger than padded input",
       true,
       1,
       4,
       {{3, 3}, {1, 1}, {0}, {0}, true, false}},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(1, 1, bad[i].H, bad[i].W));
    asg_tensor *y = bad[i].is_max ? asg_max_pool2d(x, bad[i].p) : asg_avg_pool2d(x, bad[i].p);
    const char *e = asg_graph_error(g), *op = bad[i].is_max ? "max_pool2d" : "avg_pool2d";
    TU_CHECK(!y && tu_contains(e, op) && tu_contains(e, bad[i].needle),
             "%s: expected an error naming %s and '%s', got %s", bad[i].what, op, bad[i].needle,
             e ? e : "(none)");
    asg_graph_free(g);
  }
}

int main(void) {
  sweep();
  literals();
  gradchecks();
  symbolic();
  layers();
  errors();
  return tu_finish();
}
