#version 460
// conv2d_bias_act's epilogue, after the convolution (conv_gemm.comp) wrote
// y [N,O,OHW]: y = act(y + b[o]) in place, act 1: ReLU (as the add and relu
// steps the fusion pass replaced, src/passes/fuse_conv.c); also
// matmul_bias_act's, with O = N and OHW = 1 and act 2: tanh GELU
// (src/passes/fuse_linear.c), then + r[i] where it has a residual.
#include "common.glsl"
layout(local_size_x = 256) in;
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer Params {
  uint64_t out_, bias;
  int n, O, OHW, act; // n = N*O*OHW < 2^31
  uint64_t res;       // matmul_bias_act's residual [n], or 0
};
void main() {
  Params p = Params(push.params);
  BufT y = BufT(p.out_), b = BufT(p.bias), r = BufT(p.res);
  const bool has_res = p.res != 0ul, has_bias = p.bias != 0ul;
  uint O = uint(p.O), OHW = uint(p.OHW);
  GRID_LOOP(i, p.n) {
    T v = y.v[i];
    if (has_bias) { // matmul_bias_act without a bias: only the residual
      v += b.v[(i / OHW) % O];
#ifdef T_F32
      if (p.act == 2) // tanh GELU (f32 products only: the fusion pass's rule)
        v = 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
#endif
      v = p.act == 1 && !(v > T(0)) ? T(0) : v;
    }
    y.v[i] = has_res ? v + r.v[i] : v;
  }
}
