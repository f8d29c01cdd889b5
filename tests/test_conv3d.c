/* conv3d and conv_transpose3d (built from the 2-D ops, src/nn/conv3d.c)
 * against float64 loops written from PyTorch's definitions, finite-
 * difference gradients, the layers (parameter shapes, init bounds) and
 * errors, through the public API. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct cfg3 {
  const char *name;
  int N, C, D, H, W, O, KD, KH, KW;
  asg_conv3d_params p;
  int bias;
} cfg3;

static int P1(int v) { return v ? v : 1; }

static double *rnd(unsigned long long seed, long n) {
  double *v = malloc(sizeof(double) * (size_t)n);
  tu_rand(seed, v, n, -1, 1);
  return v;
}

static long out_len(long in, int k, int s, int pad, int d) {
  return (in + 2 * pad - d * (k - 1) - 1) / s + 1;
}

/* y[n,o,z,h,w] = b[o] + sum_{c in group, kd, kh, kw} x[n, c, z*s-p+kd*d, ...] w[o, c, kd, kh, kw]
 */
static void ref_conv3d(const cfg3 *c, const double *x, const double *w, const double *b, double *y,
                       long OD, long OH, long OW) {
  int G = P1(c->p.groups), Cg = c->C / G, Og = c->O / G;
  int s[3] = {P1(c->p.stride[0]), P1(c->p.stride[1]), P1(c->p.stride[2])};
  int d[3] = {P1(c->p.dilation[0]), P1(c->p.dilation[1]), P1(c->p.dilation[2])};
  const int *pd = c->p.padding;
  long in[3] = {c->D, c->H, c->W};
  for (int n = 0; n < c->N; n++)
    for (int o = 0; o < c->O; o++)
      for (long z = 0; z < OD; z++)
        for (long h = 0; h < OH; h++)
          for (long q = 0; q < OW; q++) {
            double acc = b ? b[o] : 0;
            int gi = o / Og;
            for (int ci = 0; ci < Cg; ci++)
              for (int a = 0; a < c->KD; a++)
                for (int e = 0; e < c->KH; e++)
                  for (int f = 0; f < c->KW; f++) {
                    long iz = z * s[0] - pd[0] + a * d[0], ih = h * s[1] - pd[1] + e * d[1],
                         iw = q * s[2] - pd[2] + f * d[2];
                    if (iz < 0 || iz >= in[0] || ih < 0 || ih >= in[1] || iw < 0 || iw >= in[2])
                      continue;
                    long xi =
                        (((long)(n * c->C + gi * Cg + ci) * in[0] + iz) * in[1] + ih) * in[2] + iw;
                    long wi = (((long)(o * Cg + ci) * c->KD + a) * c->KH + e) * c->KW + f;
                    acc += x[xi] * w[wi];
                  }
            y[(((long)(n * c->O + o) * OD + z) * OH + h) * OW + q] = acc;
          }
}

/* The transposed convolution as a scatter: x[n, ci, i, j, k] adds
 * x * w[ci, co, a, e, f] into y[n, g*Cog + co, i*s - p + a*d, ...]. Here C is
 * the input channels and O the output channels. */
static void ref_convt3d(const cfg3 *c, const double *x, const double *w, const double *b, double *y,
                        long OD, long OH, long OW) {
  int G = P1(c->p.groups), Cig = c->C / G, Cog = c->O / G;
  int s[3] = {P1(c->p.stride[0]), P1(c->p.stride[1]), P1(c->p.stride[2])};
  int d[3] = {P1(c->p.dilation[0]), P1(c->p.dilation[1]), P1(c->p.dilation[2])};
  const int *pd = c->p.padding;
  long out[3] = {OD, OH, OW}, ny = (long)c->N * c->O * OD * OH * OW;
  for (long i = 0; i < ny; i++)
    y[i] = b ? b[(i / (OD * OH * OW)) % c->O] : 0;
  for (int n = 0; n < c->N; n++)
    for (int ci = 0; ci < c->C; ci++)
      for (long i = 0; i < c->D; i++)
        for (long j = 0; j < c->H; j++)
          for (long k = 0; k < c->W; k++) {
            double xv = x[(((long)(n * c->C + ci) * c->D + i) * c->H + j) * c->W + k];
            int gi = ci / Cig;
            for (int co = 0; co < Cog; co++)
              for (int a = 0; a < c->KD; a++)
                for (int e = 0; e < c->KH; e++)
                  for (int f = 0; f < c->KW; f++) {
                    long oz = i * s[0] - pd[0] + a * d[0], oh = j * s[1] - pd[1] + e * d[1],
                         ow = k * s[2] - pd[2] + f * d[2];
                    if (oz < 0 || oz >= out[0] || oh < 0 || oh >= out[1] || ow < 0 || ow >= out[2])
                      continue;
                    double wv = w[(((long)(ci * Cog + co) * c->KD + a) * c->KH + e) * c->KW + f];
                    y[(((long)(n * c->O + gi * Cog + co) * OD + oz) * OH + oh) * OW + ow] +=
                        xv * wv;
                  }
          }
}

static void test_forward(const cfg3 *c, asg_dtype dt, bool transpose) {
  int G = P1(c->p.groups);
  long OD, OH, OW;
  if (transpose) {
    int dims[3] = {c->D, c->H, c->W}, k[3] = {c->KD, c->KH, c->KW};
    long o[3];
    for (int j = 0; j < 3; j++)
      o[j] = (long)(dims[j] - 1) * P1(c->p.stride[j]) - 2 * c->p.padding[j] +
             (long)P1(c->p.dilation[j]) * (k[j] - 1) + c->p.output_padding[j] + 1;
    OD = o[0], OH = o[1], OW = o[2];
  } else {
    OD = out_len(c->D, c->KD, P1(c->p.stride[0]), c->p.padding[0], P1(c->p.dilation[0]));
    OH = out_len(c->H, c->KH, P1(c->p.stride[1]), c->p.padding[1], P1(c->p.dilation[1]));
    OW = out_len(c->W, c->KW, P1(c->p.stride[2]), c->p.padding[2], P1(c->p.dilation[2]));
  }
  asg_shape xs = ASG_SHAPE(c->N, c->C, c->D, c->H, c->W);
  asg_shape ws = transpose ? ASG_SHAPE(c->C, c->O / G, c->KD, c->KH, c->KW)
                           : ASG_SHAPE(c->O, c->C / G, c->KD, c->KH, c->KW);
  long nx = (long)asg_shape_numel(xs), nw = (long)asg_shape_numel(ws);
  long ny = (long)c->N * c->O * OD * OH * OW;
  double *x = rnd(1, nx), *w = rnd(2, nw), *b = rnd(3, c->O);
  double *want = malloc(sizeof(double) * (size_t)ny), *got = malloc(sizeof(double) * (size_t)ny);
  if (transpose)
    ref_convt3d(c, x, w, c->bias ? b : NULL, want, OD, OH, OW);
  else
    ref_conv3d(c, x, w, c->bias ? b : NULL, want, OD, OH, OW);
  asg_graph *g = asg_graph_new();
  asg_tensor *vx = tu_constant(g, dt, xs, x), *vw = tu_constant(g, dt, ws, w);
  asg_tensor *vb = c->bias ? tu_constant(g, dt, ASG_SHAPE(c->O), b) : NULL;
  asg_tensor *y = transpose ? asg_conv_transpose3d(vx, vw, vb, c->p) : asg_conv3d(vx, vw, vb, c->p);
  asg_shape want_s = ASG_SHAPE(c->N, c->O, OD, OH, OW);
  bool shape_ok = y && asg_shape_equal(asg_tensor_shape(y), want_s);
  TU_CHECK(shape_ok, "%s %s: shape (%s)", transpose ? "conv_transpose3d" : "conv3d", c->name,
           asg_graph_error(g) ? asg_graph_error(g) : "wrong shape");
  if (shape_ok) {
    double tol = dt == ASG_F32 ? 1e-5 : 1e-12;
    int ok = tu_eval(g, y, got) == 0 && tu_close(c->name, got, want, ny, tol, tol);
    TU_CHECK(ok, "%s %s (%s) forward", transpose ? "conv_transpose3d" : "conv3d", c->name,
             asg_dtype_name(dt));
  }
  asg_graph_free(g);
  free(x), free(w), free(b), free(want), free(got);
}

typedef struct gctx {
  asg_conv3d_params p;
  bool transpose;
} gctx;

static asg_tensor *b_conv(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const gctx *c = ctx;
  return c->transpose ? asg_conv_transpose3d(xs[0], xs[1], xs[2], c->p)
                      : asg_conv3d(xs[0], xs[1], xs[2], c->p);
}

static void gradchecks(void) {
  struct {
    const char *name;
    asg_shape x, w, b;
    gctx c;
  } cases[] = {
      {"conv3d plain",
       ASG_SHAPE(2, 2, 4, 4, 3),
       ASG_SHAPE(3, 2, 2, 2, 2),
       ASG_SHAPE(3),
       {{{0}, {0}, {0}, 0, {0}}, false}},
      {"conv3d stride2 pad1 dil",
       ASG_SHAPE(1, 2, 5, 5, 4),
       ASG_SHAPE(2, 2, 3, 2, 2),
       ASG_SHAPE(2),
       {{{2, 1, 2}, {1, 0, 1}, {1, 2, 1}, 0, {0}}, false}},
      {"conv3d groups2",
       ASG_SHAPE(1, 4, 3, 4, 4),
       ASG_SHAPE(4, 2, 2, 3, 1),
       ASG_SHAPE(4),
       {{{1, 1, 1}, {1, 1, 0}, {0}, 2, {0}}, false}},
      {"conv_transpose3d s2 op1",
       ASG_SHAPE(1, 2, 3, 3, 2),
       ASG_SHAPE(2, 3, 3, 2, 2),
       ASG_SHAPE(3),
       {{{2, 2, 1}, {1, 0, 0}, {0}, 0, {1, 1, 0}}, true}},
      {"conv_transpose3d groups2 dil2",
       ASG_SHAPE(1, 4, 2, 3, 3),
       ASG_SHAPE(4, 1, 2, 2, 2),
       ASG_SHAPE(2),
       {{{1, 1, 2}, {0, 1, 0}, {2, 1, 1}, 2, {0, 0, 1}}, true}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    asg_shape shapes[3] = {cases[i].x, cases[i].w, cases[i].b};
    int bad = tu_gradcheck(cases[i].name, 3, shapes, b_conv, &cases[i].c, NULL);
    TU_CHECK(bad == 0, "%s: %d gradient mismatches", cases[i].name, bad);
  }
}

static void layers(void) {
  asg_graph *g = asg_graph_new();
  const int k[3] = {3, 2, 2};
  asg_conv3d_params p = {.padding = {1, 0, 0}};
  asg_layer *c = asg_nn_conv3d(g, "c3", 4, 6, k, p, NULL);
  asg_layer *t = asg_nn_conv_transpose3d(g, "t3", 6, 2, k, (asg_conv3d_params){.groups = 2}, NULL);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 4, 5, 6, 6));
  asg_tensor *y = asg_layer_apply(t, asg_layer_apply(c, x));
  TU_CHECK(y && asg_shape_equal(asg_tensor_shape(y), ASG_SHAPE(2, 2, 7, 6, 6)), "layers: %s",
           asg_graph_error(g) ? asg_graph_error(g) : "shape");
  asg_tensor *wc = asg_layer_param(c, "weight"), *wt = asg_layer_param(t, "weight");
  TU_CHECK(wc && asg_shape_equal(asg_tensor_shape(wc), ASG_SHAPE(6, 4, 3, 2, 2)), "conv3d weight");
  TU_CHECK(wt && asg_shape_equal(asg_tensor_shape(wt), ASG_SHAPE(6, 1, 3, 2, 2)),
           "conv_transpose3d weight [in, out/groups, ...]");
  asg_compile_opts o = {0};
  asg_program *prog = y ? asg_compile(g, 1, &y, &o) : NULL;
  TU_CHECK(prog != NULL, "compile: %s", asg_last_error());
  if (prog) { /* PyTorch's init: U(+-1/sqrt(fan_in)), fan_in = 4 * 3*2*2 = 48 */
    double v[6 * 4 * 12];
    long n = tu_get_var(prog, "c3.weight", v);
    double bound = 1.0 / sqrt(48.0), mx = 0;
    for (long i = 0; i < n; i++)
      mx = fabs(v[i]) > mx ? fabs(v[i]) : mx;
    TU_CHECK(n == 288 && mx <= bound && mx > 0.5 * bound, "conv3d init: max |w| %g, bound %g", mx,
             bound);
  }
  asg_program_free(prog);
  /* a wrong input rank names the layer's op */
  asg_tensor *bad = asg_layer_apply(c, asg_input(g, "x4", ASG_F32, ASG_SHAPE(2, 4, 6, 6)));
  TU_CHECK(!bad && tu_contains(asg_graph_error(g), "conv3d"), "rank 4 into conv3d: %s",
           asg_graph_error(g));
  asg_graph_free(g);
}

/* A symbolic batch (and height): one program, two bindings, both against
 * the reference loops. */
static void symbolic(void) {
  const cfg3 c = {"sym", 0, 2, 4, 0, 3, 3, 2, 2, 2, {{1, 1, 1}, {1, 1, 0}, {0}, 0, {0}}, 0};
  for (int t = 0; t < 2; t++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F64,
                              ASG_SHAPE(asg_dim(g, "batch", 0), c.C, c.D, asg_dim(g, "h", 0), c.W));
    asg_shape wsh = t ? ASG_SHAPE(2, 3, 2, 2, 2) : ASG_SHAPE(3, 2, 2, 2, 2);
    double *w = rnd(5, (long)asg_shape_numel(wsh));
    asg_tensor *vw = tu_constant(g, ASG_F64, wsh, w);
    asg_tensor *y = t ? asg_conv_transpose3d(x, vw, NULL, c.p) : asg_conv3d(x, vw, NULL, c.p);
    asg_compile_opts o = {0};
    asg_program *p = y ? asg_compile(g, 1, &y, &o) : NULL;
    TU_CHECK(p != NULL, "symbolic %s: %s", t ? "conv_transpose3d" : "conv3d",
             p                    ? ""
             : asg_graph_error(g) ? asg_graph_error(g)
                                  : asg_last_error());
    for (int n = 1; p && n <= 3; n += 2) {
      cfg3 cc = c;
      cc.N = n, cc.H = 2 + n;
      if (t) cc.O = 3; /* transpose: the weight is [Cin 2, Cout 3, ...] */
      long OD, OH, OW;
      if (t) {
        OD = (cc.D - 1) - 2 + (cc.KD - 1) + 1, OH = (cc.H - 1) - 2 + (cc.KH - 1) + 1,
        OW = (cc.W - 1) + (cc.KW - 1) + 1;
      } else {
        OD = out_len(cc.D, cc.KD, 1, 1, 1), OH = out_len(cc.H, cc.KH, 1, 1, 1),
        OW = out_len(cc.W, cc.KW, 1, 0, 1);
      }
      long nx = (long)n * cc.C * cc.D * cc.H * cc.W, ny = (long)n * cc.O * OD * OH * OW;
      double *xv = rnd(6, nx), *want = malloc(sizeof(double) * (size_t)ny),
             *got = malloc(sizeof(double) * (size_t)ny);
      if (t)
        ref_convt3d(&cc, xv, w, NULL, want, OD, OH, OW);
      else
        ref_conv3d(&cc, xv, w, NULL, want, OD, OH, OW);
      asg_shape ys;
      int ok = asg_program_feed_tensor(p, "x", ASG_F64, ASG_SHAPE(n, cc.C, cc.D, cc.H, cc.W), xv) ==
                   ASG_OK &&
               asg_program_run(p) == ASG_OK && asg_program_output_shape(p, y, &ys) == ASG_OK &&
               asg_shape_equal(ys, ASG_SHAPE(n, cc.O, OD, OH, OW)) &&
               asg_program_fetch(p, y, got, sizeof(double) * (size_t)ny) == ASG_OK &&
               tu_close("symbolic", got, want, ny, 1e-12, 1e-12);
      TU_CHECK(ok, "symbolic %s, batch %d: %s", t ? "conv_transpose3d" : "conv3d", n,
               ok ? "" : asg_last_error());
      free(xv), free(want), free(got);
    }
    asg_program_free(p);
    asg_graph_free(g);
    free(w);
  }
}

static void errors(void) {
  struct {
    const char *what, *want;
    asg_shape x, w;
    asg_conv3d_params p;
    bool transpose;
  } cases[] = {
      {"rank 4",
       "rank 5",
       ASG_SHAPE(1, 2, 4, 4),
       ASG_SHAPE(2, 2, 1, 1, 1),
       {{0}, {0}, {0}, 0, {0}},
       false},
      {"channels",
       "groups",
       ASG_SHAPE(1, 3, 4, 4, 4),
       ASG_SHAPE(2, 2, 1, 1, 1),
       {{0}, {0}, {0}, 0, {0}},
       false},
      {"too deep",
       "deeper",
       ASG_SHAPE(1, 2, 2, 4, 4),
       ASG_SHAPE(2, 2, 3, 1, 1),
       {{0}, {0}, {0}, 0, {0}},
       false},
      {"negative",
       ">= 0",
       ASG_SHAPE(1, 2, 4, 4, 4),
       ASG_SHAPE(2, 2, 1, 1, 1),
       {{-1, 1, 1}, {0}, {0}, 0, {0}},
       false},
      {"output padding",
       "output_padding",
       ASG_SHAPE(1, 2, 3, 3, 3),
       ASG_SHAPE(2, 2, 1, 1, 1),
       {{1, 1, 1}, {0}, {0}, 0, {1, 0, 0}},
       true},
      {"transpose channels",
       "input channels",
       ASG_SHAPE(1, 3, 3, 3, 3),
       ASG_SHAPE(2, 2, 1, 1, 1),
       {{0}, {0}, {0}, 0, {0}},
       true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", ASG_F32, cases[i].x);
    asg_tensor *w = asg_input(g, "w", ASG_F32, cases[i].w);
    asg_tensor *y = cases[i].transpose ? asg_conv_transpose3d(x, w, NULL, cases[i].p)
                                       : asg_conv3d(x, w, NULL, cases[i].p);
    const char *e = asg_graph_error(g);
    TU_CHECK(!y && tu_contains(e, cases[i].want), "%s: %s", cases[i].what, e ? e : "(no error)");
    asg_graph_free(g);
  }
}

int main(void) {
  const cfg3 convs[] = {
      {"plain", 2, 3, 4, 5, 4, 4, 2, 3, 2, {{0}, {0}, {0}, 0, {0}}, 1},
      {"stride 2,1,2 pad 1,0,1", 1, 2, 6, 5, 6, 3, 3, 2, 3, {{2, 1, 2}, {1, 0, 1}, {0}, 0, {0}}, 0},
      {"dilation 2 depth", 2, 2, 7, 4, 4, 2, 3, 1, 2, {{1, 1, 1}, {2, 0, 0}, {2, 1, 1}, 0, {0}}, 1},
      {"groups 2", 1, 4, 3, 4, 4, 6, 2, 2, 2, {{1, 1, 1}, {1, 1, 1}, {0}, 2, {0}}, 1},
      {"depthwise KD 1", 2, 3, 3, 5, 5, 3, 1, 3, 3, {{1, 1, 1}, {0, 1, 1}, {0}, 3, {0}}, 0},
  };
  const cfg3 tconvs[] = {
      {"plain", 2, 3, 3, 3, 2, 2, 2, 2, 2, {{0}, {0}, {0}, 0, {0}}, 1},
      {"stride 2 pad 1 op 1",
       1,
       2,
       3,
       4,
       3,
       3,
       3,
       3,
       2,
       {{2, 2, 1}, {1, 1, 0}, {0}, 0, {1, 1, 0}},
       1},
      {"groups 2 dilation 2",
       1,
       4,
       2,
       3,
       3,
       2,
       2,
       2,
       2,
       {{1, 2, 1}, {0, 0, 1}, {2, 1, 2}, 2, {0}},
       0},
      {"stride 3 depth", 2, 2, 3, 2, 2, 4, 2, 1, 1, {{3, 1, 1}, {0}, {0}, 0, {2, 0, 0}}, 1},
  };
  for (size_t i = 0; i < sizeof convs / sizeof *convs; i++) {
    test_forward(&convs[i], ASG_F64, false);
    test_forward(&convs[i], ASG_F32, false);
  }
  for (size_t i = 0; i < sizeof tconvs / sizeof *tconvs; i++) {
    test_forward(&tconvs[i], ASG_F64, true);
    test_forward(&tconvs[i], ASG_F32, true);
  }
  gradchecks();
  symbolic();
  layers();
  errors();
  return tu_finish();
}
