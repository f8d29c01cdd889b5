#version 460
// conv2d_bias_act's epilogue, after the convolution (conv_gemm.comp) wrote
// y [N,O,OHW]: y = act(y + b[o]) in place, act 1: ReLU (as the add and relu
// steps the fusion pass replaced, src/passes/fuse_conv.c).
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, bias;
  int n, O, OHW, act; // n = N*O*OHW < 2^31
};
void main() {
  Params p = Params(push.params);
  BufT y = BufT(p.out_), b = BufT(p.bias);
  uint O = uint(p.O), OHW = uint(p.OHW);
  GRID_LOOP(i, p.n) {
    T v = y.v[i] + b.v[(i / OHW) % O];
    y.v[i] = p.act != 0 && !(v > T(0)) ? T(0) : v;
  }
}
