/* Shared by the CPU convolution files: the geometry of a step and the
 * direct (no im2col) kernels. Attribute layout: src/ops/op_conv.c. */
#ifndef ASG_CPU_CONV_H
#define ASG_CPU_CONV_H

#include <stdbool.h>
#include <stdint.h>

#include "backends/cpu/cpu_pool.h"

/* Geometry of the forward convolution that a step describes:
 * x [N,C,H,W] * w [O,C/G,KH,KW] -> y [N,O,OH,OW]. */
typedef struct cgeo {
  int64_t N, C, H, W, O, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, G;
  int64_t Cg, Og, CKK, OHW, HW; /* per group */
  bool direct;                  /* 1x1 kernel, stride 1, no padding: the columns are x itself */
} cgeo;

/* Direct convolution (cpu_conv_direct.c): f32, stride 1, 9..1152 taps,
 * no im2col and no GEMM call. The forward kernel also runs a conv's input
 * gradient (and conv_transpose2d) as the forward conv of dy with the
 * flipped, transposed weights (cpu_conv.c builds that geometry); the
 * weight gradient has a kernel of its own. */
#define CONV_DIRECT_MAX_TAPS 1152
bool asg_cpu_conv_direct_ok(const cgeo *g);
/* Floats of the packed weights (shared by all images) and of one thread's
 * buffers. */
int64_t asg_cpu_conv_direct_wpack(const cgeo *g);
int64_t asg_cpu_conv_direct_ws(const cgeo *g);
/* w [O,Cg,KH,KW] -> wp, the layout the kernel reads; with flip, g is the
 * transposed geometry of an input gradient and w the conv's weights. */
void asg_cpu_conv_direct_pack(const cgeo *g, const float *w, bool flip, float *wp);
/* Image n of x [N,C,H,W] -> y [N,O,OH,OW] with packed weights wp and one
 * thread's buffers ws; with bias [O] (else NULL), y = act(y + bias[o])
 * (act 1: ReLU) as the outputs are stored. */
void asg_cpu_conv_direct_image(const cgeo *g, const float *x, const float *wp, float *y, int64_t n,
                               float *ws, const float *bias, int act);

/* The padded image the kernels read: xp [Cg, Hp, Wp], Hp = OH + (KH-1)dh,
 * Wp = OW + (KW-1)dw, x's group channels at (ph, pw) and zeros around;
 * output (oh, ow) of tap t = (c, kh, kw) reads xp [oh*Wp + ow + off[t]].
 * Floats of xp with its slack (reads past the last row); xg [Cg, H, W] ->
 * xp; off [CKK]. */
int64_t asg_cpu_conv_direct_xp(const cgeo *g);
void asg_cpu_conv_direct_pad(const cgeo *g, const float *xg, float *xp);
void asg_cpu_conv_direct_offsets(const cgeo *g, int64_t *off);

/* Direct weight gradient (cpu_conv_direct_bw.c): floats of its
 * workspace, and dw [O, Cg, KH, KW] of dy [N,O,OH,OW] and x [N,C,H,W] with
 * nthreads threads of pool. The result does not depend on the threads. */
int64_t asg_cpu_conv_direct_bw_ws(const cgeo *g);
void asg_cpu_conv_direct_bw(const cgeo *g, const float *x, const float *dy, float *dw, float *ws,
                            asg_cpu_pool *pool, int nthreads);

#endif
