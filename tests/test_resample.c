/* pad and upsample (asg_pad, asg_upsample) through the public API:
 *   - forward values and input gradients of loss = sum(y * r) against
 *     float64 references printed by PyTorch (the script below), in f64 and
 *     f32, on the backend named on the command line (default cpu);
 *   - central-difference gradient checks in float64 for every mode;
 *   - a symbolic spatial dim (whole scale, reflect pad on a bound dim);
 *   - build errors: rank, reflect pad too large, bad modes, sizes, scales;
 *   - ONNX Resize (nearest, asymmetric, floor) imported from a model written
 *     here, against the same PyTorch values.
 * Usage: test_resample [cpu|cuda|vulkan].
 *
 * The reference values (torch 2.x, CPU, float64) come from:
 *
 *   import torch, torch.nn.functional as F
 *   torch.set_default_dtype(torch.float64)
 *   def X(shape):  # x[i] = (7 i mod 11) - 5 + i/4
 *       i = torch.arange(torch.Size(shape).numel(), dtype=torch.float64)
 *       return ((i * 7) % 11 - 5 + 0.25 * i).reshape(shape)
 *   def R(shape):  # r[i] = 1 + (5 i mod 7) / 8
 *       i = torch.arange(torch.Size(shape).numel(), dtype=torch.float64)
 *       return (1 + ((i * 5) % 7) * 0.125).reshape(shape)
 *   def emit(name, shape, f):
 *       x = X(shape).requires_grad_(True)
 *       y = f(x)
 *       (y * R(y.shape)).sum().backward()
 *       print(name, y.flatten().tolist(), x.grad.flatten().tolist())
 *   emit("pad_const", (2, 3), lambda x: F.pad(x, (1, 2, 0, 1), value=-1.5))
 *   emit("pad_crop", (2, 5), lambda x: F.pad(x, (-1, 2, 1, -1), value=0.5))
 *   emit("pad_reflect", (1, 2, 3, 4), lambda x: F.pad(x, (3, 2, 2, 1), mode="reflect"))
 *   emit("pad_replicate", (1, 2, 3, 4), lambda x: F.pad(x, (2, 5, 3, 1), mode="replicate"))
 *   emit("pad_reflect1d", (2, 2, 5), lambda x: F.pad(x, (4, 1), mode="reflect"))
 *   emit("up_near_size", (1, 2, 2, 3), lambda x: F.interpolate(x, size=(3, 5)))
 *   emit("up_near_down", (1, 1, 5, 7), lambda x: F.interpolate(x, size=(2, 3)))
 *   emit("up_near_scale", (1, 1, 3, 3),
 *        lambda x: F.interpolate(x, scale_factor=(1.5, 2.5)))
 *   emit("up_bil", (1, 2, 2, 3), lambda x: F.interpolate(x, size=(3, 5), mode="bilinear"))
 *   emit("up_bil_ac", (1, 2, 2, 3),
 *        lambda x: F.interpolate(x, size=(4, 5), mode="bilinear", align_corners=True))
 *   emit("up_bil_down", (1, 1, 5, 7), lambda x: F.interpolate(x, size=(2, 3), mode="bilinear"))
 *   emit("up_bil_scale", (1, 1, 3, 4),
 *        lambda x: F.interpolate(x, scale_factor=(1.5, 2.0), mode="bilinear"))
 *   emit("up_lin1d", (1, 2, 4), lambda x: F.interpolate(x, size=7, mode="linear"))
 *   emit("up_lin1d_ac", (1, 2, 4),
 *        lambda x: F.interpolate(x, size=3, mode="linear", align_corners=True))
 *   emit("up_near1d", (1, 1, 4), lambda x: F.interpolate(x, size=6))
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";

/* pad_const: x [2, 3] -> y [3, 6] */
static const double pad_const_y[] = {-1.5,  -5,   2.25, -1.5, -1.5, -1.5, -1.5, 5.75, 2,
                                     -1.75, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5, -1.5};
static const double pad_const_dx[] = {1.625, 1.375, 1.125, 1, 1.625, 1.375};
/* pad_crop: x [2, 5] -> y [2, 6] */
static const double pad_crop_y[] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 2.25, -1.5, 5.75, 2, 0.5, 0.5};
static const double pad_crop_dx[] = {0, 1.25, 1, 1.625, 1.375, 0, 0, 0, 0, 0};
/* pad_reflect: x [1, 2, 3, 4] -> y [1, 2, 6, 9] */
static const double pad_reflect_y[] = {
    -2.25, 1.5,   5.25, -2,    5.25, 1.5,   -2.25, 1.5,   5.25,  1.75, 5.5,  -1.75, 2,    -1.75,
    5.5,   1.75,  5.5,  -1.75, 5.75, -1.5,  2.25,  -5,    2.25,  -1.5, 5.75, -1.5,  2.25, 1.75,
    5.5,   -1.75, 2,    -1.75, 5.5,  1.75,  5.5,   -1.75, -2.25, 1.5,  5.25, -2,    5.25, 1.5,
    -2.25, 1.5,   5.25, 1.75,  5.5,  -1.75, 2,     -1.75, 5.5,   1.75, 5.5,  -1.75, 7.75, 0.5,
    4.25,  8,     4.25, 0.5,   7.75, 0.5,   4.25,  0.75,  4.5,   8.25, 1,    8.25,  4.5,  0.75,
    4.5,   8.25,  4.75, 8.5,   1.25, 5,     1.25,  8.5,   4.75,  8.5,  1.25, 0.75,  4.5,  8.25,
    1,     8.25,  4.5,  0.75,  4.5,  8.25,  7.75,  0.5,   4.25,  8,    4.25, 0.5,   7.75, 0.5,
    4.25,  0.75,  4.5,  8.25,  1,    8.25,  4.5,   0.75,  4.5,   8.25};
static const double pad_reflect_dx[] = {1,     4.375,  4.625, 2.875, 4.125, 12.125, 12,    8.25,
                                        2.875, 8.75,   8.375, 4.875, 1.5,   4.125,  3.5,   3,
                                        3.875, 13.125, 13,    7.75,  3,     7.375,  7.875, 6};
/* pad_replicate: x [1, 2, 3, 4] -> y [1, 2, 7, 11] */
static const double pad_replicate_y[] = {
    -5,   -5,    -5,    2.25,  -1.5,  5.75,  5.75,  5.75,  5.75,  5.75,  5.75, -5,   -5,   -5,
    2.25, -1.5,  5.75,  5.75,  5.75,  5.75,  5.75,  5.75,  -5,    -5,    -5,   2.25, -1.5, 5.75,
    5.75, 5.75,  5.75,  5.75,  5.75,  -5,    -5,    -5,    2.25,  -1.5,  5.75, 5.75, 5.75, 5.75,
    5.75, 5.75,  2,     2,     2,     -1.75, 5.5,   1.75,  1.75,  1.75,  1.75, 1.75, 1.75, -2,
    -2,   -2,    5.25,  1.5,   -2.25, -2.25, -2.25, -2.25, -2.25, -2.25, -2,   -2,   -2,   5.25,
    1.5,  -2.25, -2.25, -2.25, -2.25, -2.25, -2.25, 5,     5,     5,     1.25, 8.5,  4.75, 4.75,
    4.75, 4.75,  4.75,  4.75,  5,     5,     5,     1.25,  8.5,   4.75,  4.75, 4.75, 4.75, 4.75,
    4.75, 5,     5,     5,     1.25,  8.5,   4.75,  4.75,  4.75,  4.75,  4.75, 4.75, 5,    5,
    5,    1.25,  8.5,   4.75,  4.75,  4.75,  4.75,  4.75,  4.75,  1,     1,    1,    8.25, 4.5,
    0.75, 0.75,  0.75,  0.75,  0.75,  0.75,  8,     8,     8,     4.25,  0.5,  7.75, 7.75, 7.75,
    7.75, 7.75,  7.75,  8,     8,     8,     4.25,  0.5,   7.75,  7.75,  7.75, 7.75, 7.75, 7.75};
static const double pad_replicate_dx[] = {
    16.375, 5.5, 6.25, 32.25, 4.25, 1.5, 1.25, 8.375, 8.25, 2.625, 2.125, 17.125,
    16.375, 5.5, 6.25, 32.25, 4.25, 1.5, 1.25, 8.375, 8.25, 2.625, 2.125, 17.125};
/* pad_reflect1d: x [2, 2, 5] -> y [2, 2, 10] */
static const double pad_reflect1d_y[] = {
    2,     5.75, -1.5, 2.25, -5,   2.25, -1.5, 5.75, 2,    5.75,  5.25, -2,    1.75, 5.5,
    -1.75, 5.5,  1.75, -2,   5.25, -2,   8.5,  1.25, 5,    -2.25, 1.5,  -2.25, 5,    1.25,
    8.5,   1.25, 0.75, 4.5,  8.25, 1,    4.75, 1,    8.25, 4.5,   0.75, 4.5};
static const double pad_reflect1d_dx[] = {1.75,  2.625, 2.625, 4,     2.625, 1,     2.875,
                                          2.875, 4.375, 2.875, 1.125, 3.125, 3.125, 3.875,
                                          2.25,  1.25,  2.5,   3.375, 4.25,  2.5};
/* up_near_size: x [1, 2, 2, 3] -> y [1, 2, 3, 5] */
static const double up_near_size_y[] = {
    -5,  -5,  2.25, 2.25, -1.5, -5,  -5,  2.25, 2.25, -1.5, 5.75, 5.75, 2,   2,   -1.75,
    5.5, 5.5, 1.75, 1.75, -2,   5.5, 5.5, 1.75, 1.75, -2,   5.25, 5.25, 1.5, 1.5, -2.25};
static const double up_near_size_dx[] = {5.375, 5.125, 3.125, 2.875, 2.75, 1,
                                         5.25,  5.875, 2.625, 3.25,  2.25, 1.625};
/* up_near_down: x [1, 1, 5, 7] -> y [1, 1, 2, 3] */
static const double up_near_down_y[] = {-5, -1.5, 2, 8.5, 1, 4.5};
static const double up_near_down_dx[] = {1, 0, 1.625, 0, 1.375, 0, 0,   0, 0, 0, 0, 0,
                                         0, 0, 1.125, 0, 1.75,  0, 1.5, 0, 0, 0, 0, 0,
                                         0, 0, 0,     0, 0,     0, 0,   0, 0, 0, 0};
/* up_near_scale: x [1, 1, 3, 3] -> y [1, 1, 4, 7] */
static const double up_near_scale_y[] = {-5,    -5,   -5,   2.25, 2.25, -1.5, -1.5, -5, -5, -5,
                                         2.25,  2.25, -1.5, -1.5, 5.75, 5.75, 5.75, 2,  2,  -1.75,
                                         -1.75, 5.5,  5.5,  5.5,  1.75, 1.75, -2,   -2};
static const double up_near_scale_dx[] = {8, 5.75, 5.5, 4, 2.875, 2.75, 4, 2.875, 2.75};
/* up_bil: x [1, 2, 2, 3] -> y [1, 2, 3, 5] */
static const double up_bil_y[] = {-5,
                                  -2.1000000000000005,
                                  2.25,
                                  4.9960036108132044e-16,
                                  -1.5,
                                  0.37499999999999967,
                                  1.0749999999999997,
                                  2.125,
                                  -0.12499999999999943,
                                  -1.625,
                                  5.75,
                                  4.25,
                                  2,
                                  -0.24999999999999961,
                                  -1.7499999999999998,
                                  5.5,
                                  4,
                                  1.75,
                                  -0.4999999999999995,
                                  -2,
                                  5.375,
                                  3.8749999999999996,
                                  1.625,
                                  -0.62499999999999944,
                                  -2.125,
                                  5.25,
                                  3.75,
                                  1.5,
                                  -0.74999999999999956,
                                  -2.2499999999999996};
static const double up_bil_dx[] = {3.1000000000000001,
                                   3.5500000000000003,
                                   3.5999999999999996,
                                   3.2999999999999998,
                                   3.7750000000000008,
                                   2.9249999999999994,
                                   3.375,
                                   3.6625000000000001,
                                   3.5249999999999999,
                                   3.5749999999999997,
                                   3.5374999999999996,
                                   3.1999999999999993};
/* up_bil_ac: x [1, 2, 2, 3] -> y [1, 2, 4, 5] */
static const double up_bil_ac_y[] = {-5,
                                     -1.375,
                                     2.25,
                                     0.375,
                                     -1.5,
                                     -1.4166666666666674,
                                     0.37499999999999983,
                                     2.166666666666667,
                                     0.29166666666666685,
                                     -1.5833333333333333,
                                     2.1666666666666661,
                                     2.125,
                                     2.0833333333333335,
                                     0.20833333333333343,
                                     -1.6666666666666665,
                                     5.75,
                                     3.875,
                                     2,
                                     0.125,
                                     -1.75,
                                     5.5,
                                     3.625,
                                     1.75,
                                     -0.125,
                                     -2,
                                     5.416666666666667,
                                     3.541666666666667,
                                     1.6666666666666667,
                                     -0.20833333333333334,
                                     -2.0833333333333335,
                                     5.333333333333333,
                                     3.4583333333333335,
                                     1.5833333333333333,
                                     -0.29166666666666663,
                                     -2.1666666666666665,
                                     5.25,
                                     3.375,
                                     1.5,
                                     -0.375,
                                     -2.25};
static const double up_bil_ac_dx[] = {3.895833333333333,
                                      5.375,
                                      4.3125,
                                      4.3541666666666661,
                                      5.5,
                                      4.1875,
                                      4.0625000000000009,
                                      5.4999999999999991,
                                      3.8958333333333335,
                                      3.9374999999999996,
                                      5.625,
                                      4.3541666666666661};
/* up_bil_down: x [1, 1, 5, 7] -> y [1, 1, 2, 3] */
static const double up_bil_down_y[] = {-0.60416666666666663, 2.5625, 2.9791666666666661,
                                       3.4374999999999996,   5.6875, 6.1041666666666661};
static const double up_bil_down_dx[] = {0.083333333333333315,
                                        0.16666666666666669,
                                        0,
                                        0.40625,
                                        0,
                                        0.22916666666666646,
                                        0.11458333333333354,
                                        0.24999999999999994,
                                        0.5,
                                        0,
                                        1.21875,
                                        0,
                                        0.68749999999999933,
                                        0.34375000000000061,
                                        0,
                                        0,
                                        0,
                                        0,
                                        0,
                                        0,
                                        0,
                                        0.28124999999999994,
                                        0.5625,
                                        0,
                                        1.3125,
                                        0,
                                        0.74999999999999933,
                                        0.37500000000000067,
                                        0.093749999999999972,
                                        0.18750000000000003,
                                        0,
                                        0.4375,
                                        0,
                                        0.24999999999999978,
                                        0.12500000000000022};
/* up_bil_scale: x [1, 1, 3, 4] -> y [1, 1, 4, 8] */
static const double up_bil_scale_y[] = {-5,
                                        -3.1875,
                                        0.4375,
                                        1.3125,
                                        -0.5625,
                                        0.3125,
                                        3.9375,
                                        5.75,
                                        -1.5,
                                        -1.0625,
                                        -0.18749999999999989,
                                        0.6875,
                                        1.5624999999999998,
                                        2.4374999999999996,
                                        3.3125,
                                        3.75,
                                        1.3333333333333339,
                                        0.85416666666666685,
                                        -0.10416666666666732,
                                        0.77083333333333259,
                                        3.479166666666667,
                                        3.8958333333333339,
                                        2.0208333333333344,
                                        1.0833333333333337,
                                        -1.333333333333333,
                                        0.020833333333333384,
                                        2.7291666666666665,
                                        3.6041666666666665,
                                        2.6458333333333335,
                                        1.229166666666667,
                                        -0.64583333333333315,
                                        -1.5833333333333333};
static const double up_bil_scale_dx[] = {4.03125,
                                         4.15625,
                                         4.40625,
                                         3.65625,
                                         4.151041666666667,
                                         4.421875,
                                         3.8697916666666665,
                                         4.140625,
                                         2.786458333333333,
                                         2.7968749999999996,
                                         2.598958333333333,
                                         2.6093749999999996};
/* up_lin1d: x [1, 2, 4] -> y [1, 2, 7] */
static const double up_lin1d_y[] = {-5,
                                    -2.410714285714286,
                                    1.7321428571428563,
                                    0.375,
                                    -0.98214285714285898,
                                    3.1607142857142856,
                                    5.75,
                                    2,
                                    0.66071428571428592,
                                    -1.4821428571428568,
                                    1.875,
                                    5.2321428571428577,
                                    3.0892857142857144,
                                    1.75};
static const double up_lin1d_dx[] = {2.1428571428571432, 2.4196428571428568, 2.7232142857142865,
                                     2.3392857142857135, 2.1428571428571432, 2.4196428571428568,
                                     2.7232142857142865, 2.3392857142857135};
/* up_lin1d_ac: x [1, 2, 4] -> y [1, 2, 3] */
static const double up_lin1d_ac_y[] = {-5, 0.375, 5.75, 2, 1.875, 1.75};
static const double up_lin1d_ac_dx[] = {1, 0.8125, 0.8125, 1.375, 1.125, 0.875, 0.875, 1.5};
/* up_near1d: x [1, 1, 4] -> y [1, 1, 6] */
static const double up_near1d_y[] = {-5, -5, 2.25, -1.5, -1.5, 5.75};
static const double up_near1d_dx[] = {2.625, 1.375, 2.875, 1.5};

/* ---- reference cases ---- */
typedef struct rcase {
  const char *name;
  asg_shape xs, ys;
  const double *y, *dx;
  int kind; /* 0 pad, 1 upsample */
  int64_t pads[8];
  int npads;
  asg_pad_mode mode;
  double value;
  asg_upsample_params up;
} rcase;

#define PADC(nm, xs_, ys_, m, v, n, ...)                                                           \
  {                                                                                                \
#nm, xs_, ys_, nm##_y, nm##_dx, 0, {__VA_ARGS__ }, n, m, v, { 0 }                              \
  }
#define UPC(nm, xs_, ys_, ...)                                                                     \
  { #nm, xs_, ys_, nm##_y, nm##_dx, 1, {0 }, 0, 0, 0, __VA_ARGS__ }

static asg_tensor *apply(const rcase *c, asg_tensor *x) {
  return c->kind == 0 ? asg_pad(x, c->pads, c->npads, c->mode, c->value) : asg_upsample(x, c->up);
}

static asg_program *compile1(asg_graph *g, int n, asg_tensor **outs) {
  asg_compile_opts o = {0};
  o.backend = backend;
  return asg_compile(g, n, outs, &o);
}

/* y and dL/dx (L = sum(y * r)) of a case in dt against the PyTorch values:
 * f64 to 1e-12, f32 to the f32 rounding of the inputs and sums. */
static void check_case(const rcase *c, asg_dtype dt) {
  long nx = (long)asg_shape_numel(c->xs), ny = (long)asg_shape_numel(c->ys);
  double *x = malloc(sizeof(double) * (size_t)nx), *r = malloc(sizeof(double) * (size_t)ny);
  double *y = malloc(sizeof(double) * (size_t)ny), *dx = malloc(sizeof(double) * (size_t)nx);
  for (long i = 0; i < nx; i++)
    x[i] = (double)((i * 7) % 11) - 5 + 0.25 * (double)i;
  for (long i = 0; i < ny; i++)
    r[i] = 1 + (double)((i * 5) % 7) * 0.125;
  asg_graph *g = asg_graph_new();
  asg_tensor *xt = asg_input(g, "x", dt, c->xs), *rt = asg_input(g, "r", dt, c->ys);
  asg_tensor *yt = apply(c, xt), *outs[2] = {yt, NULL};
  asg_tensor *loss = asg_sum(asg_mul(yt, rt), ASG_ALL_AXES, false);
  char what[96];
  snprintf(what, sizeof what, "%s %s on %s", c->name, asg_dtype_name(dt), backend);
  bool built = loss && asg_grad(loss, 1, &xt, &outs[1]) == ASG_OK;
  TU_CHECK(built, "%s: build: %s", what, asg_graph_error(g));
  if (built) {
    asg_shape got = asg_tensor_shape(yt);
    TU_CHECK(asg_shape_equal(got, c->ys), "%s: output shape", what);
  }
  asg_program *p = built ? compile1(g, 2, outs) : NULL;
  TU_CHECK(!built || p, "%s: compile: %s", what, asg_last_error());
  if (p) {
    bool ok = tu_feed(p, "x", dt, x, nx) == ASG_OK && tu_feed(p, "r", dt, r, ny) == ASG_OK &&
              asg_program_run(p) == ASG_OK && tu_fetch(p, outs[0], y) == ASG_OK &&
              tu_fetch(p, outs[1], dx) == ASG_OK;
    TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
    double tol = dt == ASG_F64 ? 1e-12 : 2e-5;
    if (ok) {
      char w2[128];
      snprintf(w2, sizeof w2, "%s: y", what);
      TU_CHECK(tu_close(w2, y, c->y, ny, tol, tol), "%s", w2);
      snprintf(w2, sizeof w2, "%s: dx", what);
      TU_CHECK(tu_close(w2, dx, c->dx, nx, tol, tol), "%s", w2);
    }
  }
  asg_program_free(p);
  asg_graph_free(g);
  free(x), free(r), free(y), free(dx);
}

/* ---- ONNX Resize import (nearest, asymmetric, floor: PyTorch's nearest) ----
 * A one-node model encoded here (protobuf wire format), so the test needs no
 * fixture: X [1,1,3,3] (or [1,2,2,3]) -> Resize with scales or sizes. */
typedef struct pb {
  unsigned char b[512];
  size_t n;
} pb;
static void pb_varint(pb *p, uint64_t v) {
  for (; v >= 0x80; v >>= 7)
    p->b[p->n++] = (unsigned char)(v | 0x80);
  p->b[p->n++] = (unsigned char)v;
}
static void pb_int(pb *p, int field, int64_t v) {
  pb_varint(p, (uint64_t)field << 3);
  pb_varint(p, (uint64_t)v);
}
static void pb_bytes(pb *p, int field, const void *d, size_t n) {
  pb_varint(p, (uint64_t)field << 3 | 2);
  pb_varint(p, n);
  memcpy(p->b + p->n, d, n);
  p->n += n;
}
static void pb_str(pb *p, int field, const char *s) { pb_bytes(p, field, s, strlen(s)); }
static void pb_msg(pb *p, int field, const pb *m) { pb_bytes(p, field, m->b, m->n); }

static void pb_attr(pb *node, const char *name, const char *val) {
  pb a = {{0}, 0};
  pb_str(&a, 1, name);
  pb_str(&a, 4, val);
  pb_int(&a, 20, 3); /* STRING */
  pb_msg(node, 5, &a);
}

/* ValueInfoProto of a float tensor (shape omitted when s is NULL). */
static void pb_value(pb *graph, int field, const char *name, const asg_shape *s) {
  pb v = {{0}, 0}, ty = {{0}, 0}, tt = {{0}, 0}, sh = {{0}, 0};
  pb_int(&tt, 1, 1); /* FLOAT */
  for (int d = 0; s && d < s->ndim; d++) {
    pb dim = {{0}, 0};
    pb_int(&dim, 1, s->dims[d]);
    pb_msg(&sh, 1, &dim);
  }
  if (s) pb_msg(&tt, 2, &sh);
  pb_msg(&ty, 1, &tt);
  pb_str(&v, 1, name);
  pb_msg(&v, 2, &ty);
  pb_msg(graph, field, &v);
}

/* Imports the model (scales: 4 floats, or sizes: 4 int64) and checks y. */
static void onnx_case(const char *dir, const rcase *c, bool sizes) {
  pb node = {{0}, 0}, init = {{0}, 0}, graph = {{0}, 0}, model = {{0}, 0}, opset = {{0}, 0};
  pb_str(&node, 1, "X");
  pb_str(&node, 1, "");
  if (sizes) pb_str(&node, 1, "");
  pb_str(&node, 1, "R");
  pb_str(&node, 2, "Y");
  pb_str(&node, 4, "Resize");
  pb_attr(&node, "mode", "nearest");
  pb_attr(&node, "coordinate_transformation_mode", "asymmetric");
  pb_attr(&node, "nearest_mode", "floor");
  pb_int(&init, 1, 4);
  pb_int(&init, 2, sizes ? 7 : 1); /* INT64 / FLOAT */
  pb_str(&init, 8, "R");
  if (sizes) {
    int64_t v[4] = {c->ys.dims[0], c->ys.dims[1], c->ys.dims[2], c->ys.dims[3]};
    pb_bytes(&init, 9, v, sizeof v); /* little-endian hosts only (x86-64, arm64) */
  } else {
    float v[4] = {1, 1, (float)c->up.scale[0], (float)c->up.scale[1]};
    pb_bytes(&init, 9, v, sizeof v);
  }
  pb_msg(&graph, 1, &node);
  pb_str(&graph, 2, "g");
  pb_msg(&graph, 5, &init);
  pb_value(&graph, 11, "X", &c->xs);
  pb_value(&graph, 12, "Y", NULL);
  pb_int(&opset, 2, 19);
  pb_int(&model, 1, 8);
  pb_msg(&model, 8, &opset);
  pb_msg(&model, 7, &graph);
  const char *path = tu_path(dir, "resize.onnx");
  tu_write_file(path, model.b, model.n);
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, path, NULL, &m);
  TU_CHECK(st == ASG_OK, "onnx Resize %s: import: %s", c->name, asg_last_error());
  asg_tensor *y = st == ASG_OK ? asg_onnx_model_output(m, 0) : NULL;
  long nx = (long)asg_shape_numel(c->xs), ny = (long)asg_shape_numel(c->ys);
  double x[64], got[64];
  for (long i = 0; i < nx; i++)
    x[i] = (double)((i * 7) % 11) - 5 + 0.25 * (double)i;
  asg_program *p = y ? compile1(g, 1, &y) : NULL;
  bool ok = p && tu_feed(p, "X", ASG_F32, x, nx) == ASG_OK && asg_program_run(p) == ASG_OK &&
            asg_shape_equal(asg_tensor_shape(y), c->ys) && tu_fetch(p, y, got) == ASG_OK;
  TU_CHECK(ok, "onnx Resize %s: run: %s", c->name, asg_last_error());
  if (ok) TU_CHECK(tu_close(c->name, got, c->y, ny, 0, 0), "onnx Resize %s values", c->name);
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
}

static void onnx_resize(const rcase *scaled, const rcase *sized) {
  if (!asg_onnx_op_supported("Resize", 19)) {
    printf("onnx import not built: Resize import not tested\n");
    return;
  }
  const char *dir = tu_tmpdir_create("asg_resize");
  TU_CHECK(dir != NULL, "temporary folder");
  if (!dir) return;
  onnx_case(dir, scaled, false);
  onnx_case(dir, sized, true);
  tu_tmpdir_remove(dir);
}

static void reference_cases(void) {
  const rcase CASES[] = {
      PADC(pad_const, ASG_SHAPE(2, 3), ASG_SHAPE(3, 6), ASG_PAD_CONSTANT, -1.5, 4, 1, 2, 0, 1),
      PADC(pad_crop, ASG_SHAPE(2, 5), ASG_SHAPE(2, 6), ASG_PAD_CONSTANT, 0.5, 4, -1, 2, 1, -1),
      PADC(pad_reflect, ASG_SHAPE(1, 2, 3, 4), ASG_SHAPE(1, 2, 6, 9), ASG_PAD_REFLECT, 0, 4, 3, 2,
           2, 1),
      PADC(pad_replicate, ASG_SHAPE(1, 2, 3, 4), ASG_SHAPE(1, 2, 7, 11), ASG_PAD_REPLICATE, 0, 4, 2,
           5, 3, 1),
      PADC(pad_reflect1d, ASG_SHAPE(2, 2, 5), ASG_SHAPE(2, 2, 10), ASG_PAD_REFLECT, 0, 2, 4, 1),
      UPC(up_near_size, ASG_SHAPE(1, 2, 2, 3), ASG_SHAPE(1, 2, 3, 5),
          {ASG_UPSAMPLE_NEAREST, false, {3, 5}, {0, 0}}),
      UPC(up_near_down, ASG_SHAPE(1, 1, 5, 7), ASG_SHAPE(1, 1, 2, 3),
          {ASG_UPSAMPLE_NEAREST, false, {2, 3}, {0, 0}}),
      UPC(up_near_scale, ASG_SHAPE(1, 1, 3, 3), ASG_SHAPE(1, 1, 4, 7),
          {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {1.5, 2.5}}),
      UPC(up_bil, ASG_SHAPE(1, 2, 2, 3), ASG_SHAPE(1, 2, 3, 5),
          {ASG_UPSAMPLE_LINEAR, false, {3, 5}, {0, 0}}),
      UPC(up_bil_ac, ASG_SHAPE(1, 2, 2, 3), ASG_SHAPE(1, 2, 4, 5),
          {ASG_UPSAMPLE_LINEAR, true, {4, 5}, {0, 0}}),
      UPC(up_bil_down, ASG_SHAPE(1, 1, 5, 7), ASG_SHAPE(1, 1, 2, 3),
          {ASG_UPSAMPLE_LINEAR, false, {2, 3}, {0, 0}}),
      UPC(up_bil_scale, ASG_SHAPE(1, 1, 3, 4), ASG_SHAPE(1, 1, 4, 8),
          {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {1.5, 2.0}}),
      UPC(up_lin1d, ASG_SHAPE(1, 2, 4), ASG_SHAPE(1, 2, 7), {ASG_UPSAMPLE_LINEAR, false, {7}, {0}}),
      UPC(up_lin1d_ac, ASG_SHAPE(1, 2, 4), ASG_SHAPE(1, 2, 3),
          {ASG_UPSAMPLE_LINEAR, true, {3}, {0}}),
      UPC(up_near1d, ASG_SHAPE(1, 1, 4), ASG_SHAPE(1, 1, 6),
          {ASG_UPSAMPLE_NEAREST, false, {6}, {0}}),
  };
  for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
    check_case(&CASES[k], ASG_F64);
    check_case(&CASES[k], ASG_F32);
  }
  onnx_resize(&CASES[7], &CASES[5]); /* up_near_scale, up_near_size */
}

/* ---- finite-difference gradient checks (float64, on the CPU) ---- */
typedef struct gc_ctx {
  int kind;
  int64_t pads[8];
  int npads;
  asg_pad_mode mode;
  asg_upsample_params up;
} gc_ctx;

static asg_tensor *b_op(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const gc_ctx *c = ctx;
  /* a nonlinearity after the op, so the check sees more than a linear map */
  asg_tensor *y =
      c->kind == 0 ? asg_pad(xs[0], c->pads, c->npads, c->mode, 0.75) : asg_upsample(xs[0], c->up);
  return asg_mul(y, y);
}

static void gradchecks(void) {
  const struct {
    const char *name;
    asg_shape s;
    gc_ctx c;
  } gc[] = {
      {"pad constant 2 dims", ASG_SHAPE(2, 3, 4), {0, {1, 2, 2, 0}, 4, ASG_PAD_CONSTANT, {0}}},
      {"pad constant crop", ASG_SHAPE(2, 3, 5), {0, {-2, 1, 1, -1}, 4, ASG_PAD_CONSTANT, {0}}},
      {"pad reflect 3 dims",
       ASG_SHAPE(2, 3, 4, 5),
       {0, {4, 2, 1, 3, 2, 1}, 6, ASG_PAD_REFLECT, {0}}},
      {"pad reflect crop", ASG_SHAPE(2, 3, 6), {0, {-2, 5}, 2, ASG_PAD_REFLECT, {0}}},
      {"pad replicate", ASG_SHAPE(2, 3, 4), {0, {3, 1, 0, 4}, 4, ASG_PAD_REPLICATE, {0}}},
      {"pad replicate 1 wide", ASG_SHAPE(3, 1), {0, {2, 3, 1, 1}, 4, ASG_PAD_REPLICATE, {0}}},
      {"upsample nearest x2",
       ASG_SHAPE(2, 2, 3, 4),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {2, 2}}}},
      {"upsample nearest 5x7->3x4",
       ASG_SHAPE(1, 2, 5, 7),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_NEAREST, false, {3, 4}, {0, 0}}}},
      {"upsample bilinear 3x4->7x5",
       ASG_SHAPE(1, 2, 3, 4),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_LINEAR, false, {7, 5}, {0, 0}}}},
      {"upsample bilinear down 6x7->4x3",
       ASG_SHAPE(1, 2, 6, 7),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_LINEAR, false, {4, 3}, {0, 0}}}},
      {"upsample bilinear align 3x4->5x9",
       ASG_SHAPE(1, 2, 3, 4),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_LINEAR, true, {5, 9}, {0, 0}}}},
      {"upsample bilinear scale 1.7x2.5",
       ASG_SHAPE(1, 1, 3, 4),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {1.7, 2.5}}}},
      {"upsample linear 1d align",
       ASG_SHAPE(2, 2, 5),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_LINEAR, true, {8}, {0}}}},
      {"upsample nearest 1d",
       ASG_SHAPE(2, 2, 5),
       {1, {0}, 0, 0, {ASG_UPSAMPLE_NEAREST, false, {0}, {1.6}}}},
  };
  for (size_t k = 0; k < sizeof gc / sizeof gc[0]; k++)
    TU_CHECK(tu_gradcheck(gc[k].name, 1, &gc[k].s, b_op, (void *)&gc[k].c, NULL) == 0,
             "gradcheck %s", gc[k].name);
}

/* ---- a symbolic spatial dim: same values as the static graph ---- */
static void symbolic_dims(void) {
  asg_graph *g = asg_graph_new();
  int64_t H = asg_dim(g, "h", 0);
  asg_tensor *x = asg_input(g, "x", ASG_F64, ASG_SHAPE(1, 2, H, 3));
  const int64_t pads[4] = {1, 1, 2, 1};
  asg_tensor *p = asg_pad(x, pads, 4, ASG_PAD_REFLECT, 0);
  asg_tensor *y =
      asg_upsample(p, (asg_upsample_params){ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2, 2}});
  TU_CHECK(y != NULL, "symbolic build: %s", asg_graph_error(g));
  asg_program *prog = y ? compile1(g, 1, &y) : NULL;
  TU_CHECK(!y || prog, "symbolic compile: %s", asg_last_error());
  double xv[24], got[2 * 14 * 10], want[2 * 14 * 10];
  for (int i = 0; i < 24; i++)
    xv[i] = (double)((i * 7) % 11) - 5 + 0.25 * i;
  if (prog) {
    /* h = 4: compare with the static graph */
    bool ok = tu_feed(prog, "x", ASG_F64, xv, 24) == ASG_OK && asg_program_run(prog) == ASG_OK &&
              asg_program_fetch(prog, y, got, sizeof got) == ASG_OK;
    TU_CHECK(ok, "symbolic run h=4: %s", asg_last_error());
    asg_graph *gs = asg_graph_new();
    asg_tensor *xs = tu_constant(gs, ASG_F64, ASG_SHAPE(1, 2, 4, 3), xv);
    asg_tensor *ys =
        asg_upsample(asg_pad(xs, pads, 4, ASG_PAD_REFLECT, 0),
                     (asg_upsample_params){ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2, 2}});
    TU_CHECK(ys && asg_shape_equal(asg_tensor_shape(ys), ASG_SHAPE(1, 2, 14, 10)), "static shape");
    if (ok && ys && tu_eval(gs, ys, want) == 0)
      TU_CHECK(tu_close("symbolic vs static", got, want, 2 * 14 * 10, 1e-12, 1e-12), "values");
    asg_graph_free(gs);
    /* h = 2: the reflect pad of 2 needs h >= 3 */
    ok = tu_feed(prog, "x", ASG_F64, xv, 12) == ASG_OK && asg_program_run(prog) == ASG_OK;
    TU_CHECK(!ok && tu_contains(asg_last_error(), "pad"), "h=2 must fail naming pad: %s",
             asg_last_error());
  }
  asg_program_free(prog);
  asg_graph_free(g);
}

/* ---- build errors ---- */
static void expect_fail(asg_graph *g, asg_tensor *t, const char *sub, const char *what) {
  TU_CHECK(t == NULL && asg_graph_status(g) != ASG_OK && tu_contains(asg_graph_error(g), sub),
           "%s: want an error with '%s', got '%s'", what, sub, asg_graph_error(g));
}

static void build_errors(void) {
  const struct {
    const char *what, *sub;
    asg_shape s;
    asg_dtype dt;
    int kind;
    int64_t pads[6];
    int n;
    int mode;
    asg_upsample_params up;
  } E[] = {
      {"reflect pad = dim", "smaller than the dim", ASG_SHAPE(2, 3), ASG_F32, 0, {3, 0}, 2, 1, {0}},
      {"reflect pad > dim (after)",
       "smaller than the dim",
       ASG_SHAPE(2, 3),
       ASG_F32,
       0,
       {0, 4},
       2,
       1,
       {0}},
      {"reflect on dim 0 too",
       "smaller than the dim",
       ASG_SHAPE(2, 5),
       ASG_F32,
       0,
       {1, 1, 2, 0},
       4,
       1,
       {0}},
      {"odd pad count", "pairs", ASG_SHAPE(2, 3), ASG_F32, 0, {1, 1, 1}, 3, 0, {0}},
      {"more pads than dims", "pairs", ASG_SHAPE(3), ASG_F32, 0, {1, 1, 1, 1}, 4, 0, {0}},
      {"bad pad mode", "unknown mode", ASG_SHAPE(2, 3), ASG_F32, 0, {1, 1}, 2, 7, {0}},
      {"crop to nothing", "leaves", ASG_SHAPE(2, 3), ASG_F32, 0, {-2, -1}, 2, 0, {0}},
      {"pad an int tensor", "float", ASG_SHAPE(2, 3), ASG_I32, 0, {1, 1}, 2, 0, {0}},
      {"upsample rank 2",
       "[N,C,H,W]",
       ASG_SHAPE(4, 4),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {8, 8}, {0, 0}}},
      {"upsample rank 5",
       "[N,C,H,W]",
       ASG_SHAPE(1, 1, 2, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {2, 2}}},
      {"bad upsample mode",
       "unknown mode",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {(asg_upsample_mode)5, false, {4, 4}, {0, 0}}},
      {"nearest with align_corners",
       "align_corners",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, true, {4, 4}, {0, 0}}},
      {"zero size",
       "size",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_LINEAR, false, {0, 4}, {0, 0}}},
      {"negative size",
       "size",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_LINEAR, false, {4, -4}, {0, 0}}},
      {"size and scale",
       "size",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_LINEAR, false, {4, 4}, {2, 2}}},
      {"no size, zero scale",
       "scale",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2, 0}}},
      {"negative scale",
       "scale",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {-2, 2}}},
      {"NaN scale",
       "scale",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {NAN, 2}}},
      {"scale to nothing",
       "output size 0",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {0.25, 1}}},
      {"1-d with a second size",
       "one spatial dim",
       ASG_SHAPE(1, 1, 4),
       ASG_F32,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {8, 8}, {0, 0}}},
      {"upsample an int tensor",
       "float",
       ASG_SHAPE(1, 1, 2, 2),
       ASG_I64,
       1,
       {0},
       0,
       0,
       {ASG_UPSAMPLE_NEAREST, false, {4, 4}, {0, 0}}},
  };
  for (size_t k = 0; k < sizeof E / sizeof E[0]; k++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", E[k].dt, E[k].s);
    asg_tensor *y = E[k].kind == 0 ? asg_pad(x, E[k].pads, E[k].n, (asg_pad_mode)E[k].mode, 0)
                                   : asg_upsample(x, E[k].up);
    expect_fail(g, y, E[k].sub, E[k].what);
    TU_CHECK(tu_contains(asg_graph_error(g), E[k].kind == 0 ? "pad" : "upsample"),
             "%s: the message names the op: %s", E[k].what, asg_graph_error(g));
    asg_graph_free(g);
  }
  /* zero pads are the identity; a failed input poisons */
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(2, 3));
  const int64_t z[2] = {0, 0};
  TU_CHECK(asg_pad(x, z, 2, ASG_PAD_REFLECT, 0) == x, "zero pads return x");
  TU_CHECK(asg_pad(x, NULL, 0, ASG_PAD_CONSTANT, 0) == x, "no pads return x");
  TU_CHECK(asg_pad(x, NULL, 2, ASG_PAD_CONSTANT, 0) == NULL, "NULL pads with n = 2");
  TU_CHECK(asg_pad(NULL, z, 2, ASG_PAD_CONSTANT, 0) == NULL, "NULL input");
  TU_CHECK(asg_upsample(NULL, (asg_upsample_params){0}) == NULL, "NULL input");
  asg_graph_free(g);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  reference_cases();
  gradchecks();
  symbolic_dims();
  build_errors();
  return tu_finish();
}
