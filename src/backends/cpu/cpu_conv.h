/* Shared by the CPU convolution files: the geometry of a step and the
 * direct (no im2col) forward kernel. Attribute layout: src/ops/op_conv.c. */
#ifndef ASG_CPU_CONV_H
#define ASG_CPU_CONV_H

#include <stdbool.h>
#include <stdint.h>

/* Geometry of the forward convolution that a step describes:
 * x [N,C,H,W] * w [O,C/G,KH,KW] -> y [N,O,OH,OW]. */
typedef struct cgeo {
  int64_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, G;
  int64_t Cg, Og, CKK, OHW, HW; /* per group */
  bool direct;                  /* 1x1 kernel, stride 1, no padding: the columns are x itself */
} cgeo;

/* Direct forward convolution (cpu_conv_direct.c): f32, stride 1, few
 * input channels per group, where one image's im2col GEMM is too small for
 * the BLAS. */
bool asg_cpu_conv_direct_ok(const cgeo *g);
/* Floats of the packed weights (shared by all images) and of one thread's
 * buffers. */
int64_t asg_cpu_conv_direct_wpack(const cgeo *g);
int64_t asg_cpu_conv_direct_ws(const cgeo *g);
/* w [O,Cg,KH,KW] -> wp, the layout the kernel reads. */
void asg_cpu_conv_direct_pack(const cgeo *g, const float *w, float *wp);
/* Image n of x [N,C,H,W] -> y [N,O,OH,OW] with packed weights wp and one
 * thread's buffers ws; with bias [O] (else NULL), y = act(y + bias[o])
 * (act 1: ReLU) as the outputs are stored. */
void asg_cpu_conv_direct_image(const cgeo *g, const float *x, const float *wp, float *y, int64_t n,
                               float *ws, const float *bias, int act);

#endif
