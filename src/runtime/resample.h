/* Geometry of the pad and upsample steps (attributes: src/ops/op_resample.c),
 * shared by every backend so that they read a step the same way. Header-only
 * (C and CUDA C++); the kernels implement the per-element maps below in
 * their own language, with the same arithmetic:
 *
 * pad, output coordinate o of a dim -> input coordinate c = o - before, then
 *   constant: outside [0, in) reads the value; reflect: c < 0 -> -c,
 *   c >= in -> 2 (in - 1) - c; replicate: clamp to [0, in - 1].
 *   pad_bwd gathers: dx[c] sums dy over the outputs whose map gives c, in
 *   increasing output order per dim (the last dim innermost).
 *
 * upsample, per spatial dim (in -> out, ratio r below):
 *   nearest: src(o) = min(floor((float)o * rn), in - 1) in float32 on every
 *     backend and dtype, as PyTorch's 'nearest';
 *   linear: real = align ? r o : max(r (o + 0.5) - 0.5, 0) in the dtype's
 *     precision; i0 = min((int)real, in - 1); i1 = i0 + (i0 < in - 1);
 *     l1 = clamp(real - i0, 0, 1), l0 = 1 - l1 (PyTorch's
 *     area_pixel_compute_source_index and guard_index_and_lambda);
 *     y = lh0 (lw0 x[h0,w0] + lw1 x[h0,w1]) + lh1 (lw0 x[h1,w0] + lw1 x[h1,w1]).
 *   The weight of input i in output o is w(o, i) = [i0 == i] l0 + [i1 == i] l1
 *   (nearest: [src(o) == i]). upsample_bwd gathers per input element:
 *   dx[ih, iw] = sum_oh w(oh, ih) sum_ow w(ow, iw) dy[oh, ow], over the
 *   outputs o in [first(i - 1), first(i + 1)) (linear) or [first(i),
 *   first(i + 1)) (nearest), where first(t) is the smallest o whose i0 (or
 *   src) is >= t (out if none): the maps are nondecreasing in o. */
#ifndef ASG_RUNTIME_RESAMPLE_H
#define ASG_RUNTIME_RESAMPLE_H

#include "runtime/plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output [out] <- input [in], both nd dims: x's leading dims that are not
 * padded merge into one (dim 0, before 0). For pad_bwd, "out" is still dy (the padded
 * side) and "in" is dx. */
typedef struct asg_pad_plan {
  int nd;
  int mode; /* asg_pad_mode */
  double value;
  int64_t out[ASG_MAX_DIMS], in[ASG_MAX_DIMS], before[ASG_MAX_DIMS];
  int64_t n_out, n_in; /* element counts */
} asg_pad_plan;

static inline void asg__pad_plan(asg_pad_plan *p, const asg_step *s) {
  const bool bwd = s->op == ASG_OP_PAD_BWD;
  const asg_shape *xs = bwd ? &s->out.shape : &s->in[0].shape;
  const asg_shape *ys = bwd ? &s->in[0].shape : &s->out.shape;
  int f = 0; /* first padded dim */
  while (f < xs->ndim - 1 && !s->attr.i[2 * f] && !s->attr.i[2 * f + 1])
    f++;
  const int lead = f > 0; /* dims before f merge into one unpadded dim */
  p->nd = xs->ndim - f + lead;
  p->mode = (int)s->attr.f[1];
  p->value = s->attr.f[0];
  p->n_out = p->n_in = 1;
  if (lead) {
    p->out[0] = p->in[0] = 1, p->before[0] = 0;
    for (int d = 0; d < f; d++)
      p->out[0] *= ys->dims[d], p->in[0] *= xs->dims[d];
  }
  for (int d = f; d < xs->ndim; d++) {
    p->out[lead + d - f] = ys->dims[d], p->in[lead + d - f] = xs->dims[d];
    p->before[lead + d - f] = s->attr.i[2 * d];
  }
  if (p->nd == 0) { /* a scalar (never padded): one element */
    p->nd = 1, p->out[0] = p->in[0] = 1, p->before[0] = 0;
  }
  for (int d = 0; d < p->nd; d++)
    p->n_out *= p->out[d], p->n_in *= p->in[d];
}

/* x [planes, H, W] -> y [planes, OH, OW]; [N,C,L] is H = OH = 1. For
 * upsample_bwd x is the output (dx). Ratios per spatial dim (h, w): rn for
 * nearest (float32), rf / rd for linear in f32 / f64, as PyTorch's
 * compute_scales_value and area_pixel_compute_scale. */
typedef struct asg_upsample_plan {
  int64_t planes, H, W, OH, OW;
  int mode, align;
  float rn[2], rf[2];
  double rd[2];
} asg_upsample_plan;

static inline void asg__upsample_ratios(asg_upsample_plan *p, int k, int64_t in, int64_t out,
                                        double scale) {
  /* nearest: PyTorch copies when out == in and halves when out == 2 in,
   * which floor(o * 1) and floor(o * 0.5) reproduce */
  p->rn[k] = out == in       ? 1.0f
             : out == 2 * in ? 0.5f
             : scale > 0     ? (float)(1.0 / scale)
                             : (float)in / (float)out;
  if (p->align) {
    p->rf[k] = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
    p->rd[k] = out > 1 ? (double)(in - 1) / (double)(out - 1) : 0.0;
  } else {
    p->rf[k] = scale > 0 ? (float)(1.0 / scale) : (float)in / (float)out;
    p->rd[k] = scale > 0 ? 1.0 / scale : (double)in / (double)out;
  }
}

static inline void asg__upsample_plan(asg_upsample_plan *p, const asg_step *s) {
  const bool bwd = s->op == ASG_OP_UPSAMPLE_BWD;
  const asg_shape *xs = bwd ? &s->out.shape : &s->in[0].shape;
  const asg_shape *ys = bwd ? &s->in[0].shape : &s->out.shape;
  const bool two = xs->ndim == 4;
  p->planes = xs->dims[0] * xs->dims[1];
  p->H = two ? xs->dims[2] : 1, p->OH = two ? ys->dims[2] : 1;
  p->W = xs->dims[xs->ndim - 1], p->OW = ys->dims[ys->ndim - 1];
  p->mode = (int)s->attr.i[0];
  p->align = (int)s->attr.i[1];
  asg__upsample_ratios(p, 0, p->H, p->OH, two ? s->attr.f[0] : 0);
  asg__upsample_ratios(p, 1, p->W, p->OW, two ? s->attr.f[1] : s->attr.f[0]);
}

#ifdef __cplusplus
}
#endif

#endif
