/* Parity cases: convolutions (plain, grouped, dilated, transposed, with the
 * fused bias + activation), pooling (max, average, adaptive; dilation, ceil
 * mode, exclude_pad), pad and upsample. */
#include "parity.h"

typedef struct convcfg {
  int N, C, H, W, O, KH, KW;
  asg_conv_params p;
  bool bias;
} convcfg;

void cases_conv(void) {
  static const convcfg cf[] = {
      {2, 3, 11, 13, 5, 3, 3, {.padding = {1, 1}}, true},
      {2,
       4,
       12,
       10,
       6,
       3,
       2,
       {.stride = {2, 1}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2},
       false},
      {1, 3, 9, 7, 4, 1, 1, {.stride = {1, 2}}, true},
      {4, 8, 17, 19, 16, 3, 3, {.padding = {1, 1}}, true},
  };
  /* relu 1: relu(conv2d + bias), one conv2d_bias_act step with its ReLU;
   * relu 0 with a bias: conv2d_bias_act without (against the unfused CPU) */
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof cf / sizeof cf[0]; k++)
      for (int relu = 0; relu < 2; relu++) {
        const convcfg *c = &cf[k];
        const bool bias = relu || c->bias;
        int G = c->p.groups ? c->p.groups : 1;
        asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W),
                  ws = ASG_SHAPE(c->O, c->C / G, c->KH, c->KW);
        pcase pc;
        if (relu)
          pc_begin(&pc, C_ACCUM, "relu(conv2d + bias) %s x%s w%s", dtn(FDT[d]), shp(xs), shp(ws));
        else
          pc_begin(&pc, C_ACCUM, "conv2d %s x%s w%s s=%d,%d p=%d,%d d=%d,%d g=%d bias=%d",
                   dtn(FDT[d]), shp(xs), shp(ws), c->p.stride[0], c->p.stride[1], c->p.padding[0],
                   c->p.padding[1], c->p.dilation[0], c->p.dilation[1], c->p.groups, c->bias);
        asg_tensor *x = pc_in(&pc, FDT[d], xs, -1, 1), *w = pc_in(&pc, FDT[d], ws, -1, 1);
        asg_tensor *b = bias ? pc_in(&pc, FDT[d], ASG_SHAPE(c->O), -1, 1) : NULL;
        asg_tensor *y = asg_conv2d(x, w, b, c->p);
        pc_out(&pc, relu ? asg_relu(y) : y, "y");
        pc.fused = bias ? "conv2d_bias_act" : NULL;
        pc_finish(&pc);
      }
  /* transposed convolution (its gradients: conv2d and conv2d_bwd_weight) */
  static const convcfg ct[] = {
      {2, 4, 5, 6, 6, 3, 3, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}}, true},
      {1, 4, 7, 5, 6, 2, 3, {.stride = {1, 2}, .groups = 2, .dilation = {2, 1}}, false},
  };
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof ct / sizeof ct[0]; k++) {
      const convcfg *c = &ct[k];
      int G = c->p.groups ? c->p.groups : 1;
      asg_shape xs = ASG_SHAPE(c->N, c->C, c->H, c->W),
                ws = ASG_SHAPE(c->C, c->O / G, c->KH, c->KW);
      pcase pc;
      pc_begin(&pc, C_ACCUM, "conv_transpose2d %s x%s w%s s=%d,%d p=%d,%d op=%d,%d g=%d bias=%d",
               dtn(FDT[d]), shp(xs), shp(ws), c->p.stride[0], c->p.stride[1], c->p.padding[0],
               c->p.padding[1], c->p.output_padding[0], c->p.output_padding[1], c->p.groups,
               c->bias);
      asg_tensor *x = pc_in(&pc, FDT[d], xs, -1, 1), *w = pc_in(&pc, FDT[d], ws, -1, 1);
      asg_tensor *b = c->bias ? pc_in(&pc, FDT[d], ASG_SHAPE(c->O), -1, 1) : NULL;
      pc_out(&pc, asg_conv_transpose2d(x, w, b, c->p), "y");
      pc_finish(&pc);
    }
}

void cases_pool(void) {
  static const asg_pool_params pp[] = {
      {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
      {.kernel = {2, 2}, .stride = {0, 0}, .padding = {0, 0}},
      {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 0}},
  };
  asg_shape s = ASG_SHAPE(2, 3, 11, 13);
  for (int d = 0; d < 2; d++) {
    for (size_t k = 0; k < sizeof pp / sizeof pp[0]; k++)
      for (int avg = 0; avg < 2; avg++) {
        pcase pc;
        pc_begin(&pc, avg ? C_ACCUM : C_EXACT, "%s %s %s k=%d,%d s=%d,%d p=%d,%d",
                 avg ? "avg_pool2d" : "max_pool2d", dtn(FDT[d]), shp(s), pp[k].kernel[0],
                 pp[k].kernel[1], pp[k].stride[0], pp[k].stride[1], pp[k].padding[0],
                 pp[k].padding[1]);
        pc.gcls = C_ACCUM;
        asg_tensor *x = pc_in(&pc, FDT[d], s, -2, 2);
        pc_out(&pc, avg ? asg_avg_pool2d(x, pp[k]) : asg_max_pool2d(x, pp[k]), "y");
        pc_finish(&pc);
      }
    static const int ao[][2] = {{4, 5}, {3, 3}, {11, 13}, {1, 1}};
    for (size_t k = 0; k < sizeof ao / sizeof ao[0]; k++) {
      pcase pc;
      pc_begin(&pc, C_ACCUM, "adaptive_avg_pool2d %s %s -> %dx%d", dtn(FDT[d]), shp(s), ao[k][0],
               ao[k][1]);
      pc_out(&pc, asg_adaptive_avg_pool2d(pc_in(&pc, FDT[d], s, -2, 2), ao[k][0], ao[k][1]), "y");
      pc_finish(&pc);
    }
    /* multi-block max pool */
    pcase pc;
    asg_shape sb = ASG_SHAPE(4, 16, 33, 31);
    pc_begin(&pc, C_EXACT, "max_pool2d %s %s k=2,2", dtn(FDT[d]), shp(sb));
    pc.gcls = C_ACCUM;
    pc_out(&pc, asg_max_pool2d(pc_in(&pc, FDT[d], sb, -2, 2), pp[1]), "y");
    pc_finish(&pc);
    /* pooling options: dilation (max), ceil mode (windows past the padded
     * input, the last one dropped when it would start in the padding),
     * exclude_pad (avg) */
    static const struct {
      bool avg;
      asg_pool_params p;
    } po[] = {
        {false, {{3, 3}, {2, 2}, {1, 1}, {2, 2}, true, false}},
        {false, {{2, 3}, {3, 1}, {1, 1}, {3, 2}, false, false}},
        {false, {{2, 2}, {2, 2}, {1, 1}, {0, 0}, true, false}},
        {true, {{3, 2}, {2, 3}, {1, 0}, {0, 0}, true, false}},
        {true, {{4, 3}, {3, 2}, {2, 1}, {0, 0}, true, true}},
        {true, {{3, 2}, {2, 3}, {1, 0}, {0, 0}, false, true}},
    };
    for (size_t k = 0; k < sizeof po / sizeof po[0]; k++) {
      const asg_pool_params *q = &po[k].p;
      pcase pc;
      pc_begin(&pc, po[k].avg ? C_ACCUM : C_EXACT,
               "%s %s %s k=%d,%d s=%d,%d p=%d,%d d=%d,%d ceil=%d exclude_pad=%d",
               po[k].avg ? "avg_pool2d" : "max_pool2d", dtn(FDT[d]), shp(s), q->kernel[0],
               q->kernel[1], q->stride[0], q->stride[1], q->padding[0], q->padding[1],
               q->dilation[0], q->dilation[1], q->ceil_mode, q->exclude_pad);
      pc.gcls = C_ACCUM;
      asg_tensor *x = pc_in(&pc, FDT[d], s, -2, 2);
      pc_out(&pc, po[k].avg ? asg_avg_pool2d(x, *q) : asg_max_pool2d(x, *q), "y");
      pc_finish(&pc);
    }
  }
}

/* pad, upsample */
/* pad (constant, reflect, replicate; crops; leading dims merged or not) and
 * upsample (nearest, bilinear both alignments, 1-D, sizes and scales, up
 * and down): data movement is exact, interpolation and gradients accum. */
void cases_resample(void) {
  static const struct {
    int n;
    int64_t pads[6];
  } P[] = {{2, {3, 2}}, {4, {1, 2, 2, 1}}, {6, {2, 1, 0, 3, 1, 1}}, {4, {-1, 3, 2, -2}}};
  asg_shape s = ASG_SHAPE(2, 3, 5, 7);
  for (int d = 0; d < 2; d++) {
    for (size_t k = 0; k < sizeof P / sizeof P[0]; k++)
      for (int m = 0; m < 3; m++) {
        pcase pc;
        pc_begin(&pc, C_EXACT, "pad %s %s mode=%d pads[%d]", dtn(FDT[d]), shp(s), m, P[k].n);
        pc.gcls = C_ACCUM;
        pc_out(&pc, asg_pad(pc_in(&pc, FDT[d], s, -2, 2), P[k].pads, P[k].n, (asg_pad_mode)m, 0.5),
               "y");
        pc_finish(&pc);
      }
    /* more than one workgroup / thread block */
    pcase pc;
    asg_shape sb = ASG_SHAPE(4, 16, 33, 31);
    const int64_t pb[4] = {2, 1, 1, 3};
    pc_begin(&pc, C_EXACT, "pad reflect %s %s", dtn(FDT[d]), shp(sb));
    pc.gcls = C_ACCUM;
    pc_out(&pc, asg_pad(pc_in(&pc, FDT[d], sb, -2, 2), pb, 4, ASG_PAD_REFLECT, 0), "y");
    pc_finish(&pc);
  }
  const struct {
    const char *what;
    asg_shape xs;
    asg_upsample_params p;
  } U[] = {
      {"nearest x2", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {2, 2}}},
      {"nearest 5x7->3x11", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_NEAREST, false, {3, 11}, {0, 0}}},
      {"nearest scale 1.5,0.6",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_NEAREST, false, {0, 0}, {1.5, 0.6}}},
      {"bilinear 5x7->9x13", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_LINEAR, false, {9, 13}, {0, 0}}},
      {"bilinear align 5x7->9x13",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_LINEAR, true, {9, 13}, {0, 0}}},
      {"bilinear 5x7->3x4", ASG_SHAPE(2, 3, 5, 7), {ASG_UPSAMPLE_LINEAR, false, {3, 4}, {0, 0}}},
      {"bilinear align 5x7->1x4",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_LINEAR, true, {1, 4}, {0, 0}}},
      {"bilinear scale 2.5,1.3",
       ASG_SHAPE(2, 3, 5, 7),
       {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2.5, 1.3}}},
      {"linear 1-d", ASG_SHAPE(2, 3, 9), {ASG_UPSAMPLE_LINEAR, false, {20}, {0}}},
      {"nearest 1-d", ASG_SHAPE(2, 3, 9), {ASG_UPSAMPLE_NEAREST, false, {0}, {3}}},
      {"bilinear x2 (many blocks)",
       ASG_SHAPE(4, 16, 33, 31),
       {ASG_UPSAMPLE_LINEAR, false, {0, 0}, {2, 2}}},
  };
  for (int d = 0; d < 2; d++)
    for (size_t k = 0; k < sizeof U / sizeof U[0]; k++) {
      pcase pc;
      bool near = U[k].p.mode == ASG_UPSAMPLE_NEAREST;
      pc_begin(&pc, near ? C_EXACT : C_ACCUM, "upsample %s %s %s", U[k].what, dtn(FDT[d]),
               shp(U[k].xs));
      pc.gcls = C_ACCUM;
      pc_out(&pc, asg_upsample(pc_in(&pc, FDT[d], U[k].xs, -2, 2), U[k].p), "y");
      pc_finish(&pc);
    }
}
