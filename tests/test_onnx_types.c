/* ONNX element types that ASG holds in a wider dtype (docs/onnx.md):
 * tests/onnx/models/cast_f16.onnx (tests/onnx/make_type_models.py) has a
 * float16 input, a float16 initializer and a Cast to float16. The input
 * becomes an F32 input, the initializer a variable with its float16
 * values, the Cast rounds to float16 (ties to even, overflow to inf) and
 * its gradient is the identity. The values below are worked out by hand. */
#include <math.h>

#include "testutil.h"

#ifndef ASG_ONNX_MODELS
#define ASG_ONNX_MODELS "tests/onnx/models"
#endif

int main(void) {
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  asg_status st = asg_onnx_import(g, tu_path(ASG_ONNX_MODELS, "cast_f16.onnx"), NULL, &m);
  if (st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "built without ONNX")) {
    printf("SKIPPED: %s\n", asg_last_error());
    asg_graph_free(g);
    return TU_SKIP;
  }
  TU_CHECK(st == ASG_OK, "import: %s", asg_last_error());
  if (st) {
    asg_graph_free(g);
    return tu_finish();
  }
  asg_tensor *x = asg_onnx_model_input(m, 0), *y = asg_onnx_model_output(m, 0);
  asg_tensor *w = asg_onnx_model_find(m, "w");
  TU_CHECK(x && asg_tensor_dtype(x) == ASG_F32, "the float16 input is an F32 input");
  TU_CHECK(w && asg_tensor_dtype(w) == ASG_F32, "the float16 initializer is F32");
  /* loss = y[0] + y[1] + y[2]: through the Cast, d loss / d w = x there */
  asg_tensor *loss = asg_sum(asg_slice(y, 0, 0, 3, 1), (asg_axes){0, {0}}, false);
  asg_tensor *gw = NULL;
  st = asg_grad(loss, 1, &w, &gw);
  TU_CHECK(st == ASG_OK && gw, "grad: %s", asg_last_error());
  asg_tensor *outs[2] = {y, gw};
  asg_program *p = st ? NULL : asg_compile(g, 2, outs, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  /* float16 values, widened exactly as a caller does */
  const float xv[4] = {1.0f + 0x1p-10f, 3.0f, 1000.5f, 60000.0f};
  uint16_t xh[4];
  float xf[4];
  for (int i = 0; i < 4; i++)
    xh[i] = asg_f32_to_f16(xv[i]);
  TU_CHECK(asg_convert(xh, ASG_F16, xf, ASG_F32, 4) == ASG_OK, "convert");
  if (p) {
    float got[4], dw[4];
    st = asg_program_feed_tensor(p, "x", ASG_F32, ASG_SHAPE(4), xf);
    if (!st) st = asg_program_run(p);
    if (!st) st = asg_program_fetch(p, y, got, sizeof got);
    if (!st) st = asg_program_fetch(p, gw, dw, sizeof dw);
    TU_CHECK(st == ASG_OK, "run: %s", asg_last_error());
    /* w = float16 {1 + 2^-10, 1/3 -> 0.333251953125, 1.5, 2}; x * w:
     * 1 + 2^-9 + 2^-20 -> 1 + 2^-9; 1 - 2^-12 is a tie -> 1 (even);
     * 1500.75 -> 1501 (spacing 1); 120000 -> inf (beyond 65504) */
    const float want[4] = {1.0f + 0x1p-9f, 1.0f, 1501.0f, INFINITY};
    for (int i = 0; !st && i < 4; i++)
      TU_CHECK(got[i] == want[i], "y[%d] = %.10g, want %.10g", i, got[i], want[i]);
    const float want_dw[4] = {xv[0], xv[1], xv[2], 0};
    for (int i = 0; !st && i < 4; i++)
      TU_CHECK(dw[i] == want_dw[i], "dloss/dw[%d] = %.10g, want %.10g", i, dw[i], want_dw[i]);
  }
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
  return tu_finish();
}
