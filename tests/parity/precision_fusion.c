/* Parity cases under precision flags (allow_tf32, bf16_matmul, fp16_matmul)
 * and for the fusions a backend may make (GEMM epilogues, residual add +
 * layernorm, 16-bit operand copies written by their producers, row dot
 * products): each output within a tolerance of its own scale. */
#include "parity.h"

/* allow_tf32: f32 products may use TF32 tensor cores on CUDA (10-bit
 * mantissas, ~1e-3 relative); bf16_matmul: bf16 operands (8-bit mantissas,
 * ~4e-3); fp16_matmul: fp16 operands (10-bit); on the CPU the flags change
 * nothing. The result must still agree with the CPU's fp32 within 1e-2
 * (TF32, fp16) or 2e-2 (bf16) of the scale. */
void case_fast_matmul(int mode) { /* 0 TF32, 1 bf16, 2 fp16 operands */
  const bool bf16 = mode == 1;
  asg_graph *g = asg_graph_new();
  double *va = rv(192 * 320, -1, 1, false), *vb = rv(320 * 160, -1, 1, false);
  float *fa = to_dtype(ASG_F32, va, 192 * 320), *fb = to_dtype(ASG_F32, vb, 320 * 160);
  asg_tensor *a = asg_constant(g, ASG_F32, ASG_SHAPE(192, 320), fa);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(320, 160), fb);
  asg_tensor *y = asg_matmul(a, b);
  asg_compile_opts o = {.backend = "cpu"};
  asg_program *ref = asg_compile(g, 1, &y, &o);
  o.backend = g_backend;
  o.allow_tf32 = mode == 0;
  o.bf16_matmul = bf16;
  o.fp16_matmul = mode == 2;
  asg_program *dut = asg_compile(g, 1, &y, &o);
  double *r = malloc(sizeof *r * 192 * 160), *d = malloc(sizeof *d * 192 * 160);
  float *buf = malloc(sizeof *buf * 192 * 160);
  int ok = ref && dut && !asg_program_run(ref) && !asg_program_run(dut);
  double worst = 0, scale = 1;
  if (ok) {
    asg_program_fetch(ref, y, buf, sizeof *buf * 192 * 160);
    tu_to_double(ASG_F32, buf, r, 192 * 160);
    asg_program_fetch(dut, y, buf, sizeof *buf * 192 * 160);
    tu_to_double(ASG_F32, buf, d, 192 * 160);
    for (long i = 0; i < 192 * 160; i++)
      scale = fmax(scale, fabs(r[i]));
    for (long i = 0; i < 192 * 160; i++)
      worst = fmax(worst, fabs(r[i] - d[i]));
  }
  char msg[128];
  snprintf(msg, sizeof msg, "max err %.3g of scale %.3g", worst, scale);
  /* bf16 operands: 8-bit mantissas, relative rounding 2^-9 per operand */
  report(mode == 1   ? "matmul f32 bf16_matmul [192,320]x[320,160]"
         : mode == 2 ? "matmul f32 fp16_matmul [192,320]x[320,160]"
                     : "matmul f32 allow_tf32 [192,320]x[320,160]",
         ok && worst <= (bf16 ? 2e-2 : 1e-2) * scale, msg);
  free(va), free(vb), free(fa), free(fb), free(r), free(d), free(buf);
  asg_program_free(ref), asg_program_free(dut);
  asg_graph_free(g);
}

/* Compiles outs on the CPU and, with opt's precision flags, on the backend
 * under test (run twice: the second replays a captured graph); passes when
 * each output is within tol of its own largest magnitude of the CPU's. */
static void cmp_flagged(asg_graph *g, int n, asg_tensor *const *outs, asg_compile_opts opt,
                        double tol, const char *name) {
  opt.backend = "cpu";
  asg_program *ref = asg_compile(g, n, outs, &opt);
  opt.backend = g_backend;
  asg_program *dut = asg_compile(g, n, outs, &opt);
  int ok = ref && dut && !asg_program_run(ref) && !asg_program_run(dut) && !asg_program_run(dut);
  double worst = 0;
  for (int t = 0; ok && t < n; t++) {
    const long m = (long)asg_shape_numel(asg_tensor_shape(outs[t]));
    float *a = malloc(sizeof *a * (size_t)m), *b = malloc(sizeof *b * (size_t)m);
    ok = a && b && !asg_program_fetch(ref, outs[t], a, sizeof *a * (size_t)m) &&
         !asg_program_fetch(dut, outs[t], b, sizeof *b * (size_t)m);
    double scale = 1e-12, err = 0;
    for (long i = 0; ok && i < m; i++)
      scale = fmax(scale, fabs(a[i]));
    for (long i = 0; ok && i < m; i++)
      err = fmax(err, fabs((double)a[i] - b[i]) / scale);
    worst = fmax(worst, err);
    free(a), free(b);
  }
  char msg[96];
  snprintf(msg, sizeof msg, "max err %.3g of each output's scale", worst);
  report(name, ok && worst <= tol, msg);
  asg_program_free(ref), asg_program_free(dut);
}

/* A single output with bf16_matmul on the backend under test. */
static void bf16_vs_cpu(asg_graph *g, asg_tensor *out, double tol, const char *name) {
  cmp_flagged(g, 1, &out, (asg_compile_opts){.bf16_matmul = true}, tol, name);
}

/* out[0] and the gradients of loss with respect to wrt[0..n) (into
 * out[1..n]) under opt against the CPU. */
static void grads_vs_cpu(asg_graph *g, asg_tensor *loss, int n, asg_tensor **wrt, asg_tensor **out,
                         asg_compile_opts opt, double tol, const char *name) {
  if (asg_grad(loss, n, wrt, out + 1) == ASG_OK)
    cmp_flagged(g, n + 1, out, opt, tol, name);
  else
    report(name, 0, asg_last_error());
}

/* fp16 (with fp16) or bf16 products. */
static asg_compile_opts half_opts(bool fp16) {
  return (asg_compile_opts){.bf16_matmul = !fp16, .fp16_matmul = fp16};
}

/* bf16_matmul with operands shared by several products (each converted
 * once into a copy the later products read) and intermediates of one size,
 * so the arena hands a dead operand's bytes to a new value that a later
 * product reads: a copy that outlived its tensor would give that product
 * the old values. r feeds two products; s = p * q and u = s * p take freed
 * [64,64] blocks and feed products with the weights shared throughout. */
void case_shared_half(void) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(64 * 96, -1, 1, false), *vw = rv(96 * 64, -0.3, 0.3, false);
  double *va = rv(64 * 64, -0.3, 0.3, false), *vb = rv(64 * 64, -0.3, 0.3, false);
  float *fx = to_dtype(ASG_F32, vx, 64 * 96), *fw = to_dtype(ASG_F32, vw, 96 * 64);
  float *fa = to_dtype(ASG_F32, va, 64 * 64), *fb = to_dtype(ASG_F32, vb, 64 * 64);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(64, 96), fx);
  asg_tensor *w1 = asg_constant(g, ASG_F32, ASG_SHAPE(96, 64), fw);
  asg_tensor *wa = asg_constant(g, ASG_F32, ASG_SHAPE(64, 64), fa);
  asg_tensor *wb = asg_constant(g, ASG_F32, ASG_SHAPE(64, 64), fb);
  asg_tensor *r = asg_relu(asg_matmul(x, w1));
  asg_tensor *pp = asg_matmul(r, wa), *q = asg_matmul(r, wb);
  asg_tensor *sq = asg_mul(pp, q);
  asg_tensor *t1 = asg_matmul(sq, wa), *t2 = asg_matmul(sq, wb);
  asg_tensor *u = asg_mul(t1, t2);
  asg_tensor *y = asg_add(asg_matmul(u, wa), asg_matmul(asg_relu(u), wb));
  /* five products deep in bf16: a few bf16 roundings of the scale */
  bf16_vs_cpu(g, y, 5e-2, "bf16_matmul operands shared by products, arena blocks reused");
  free(vx), free(vw), free(va), free(vb), free(fx), free(fw), free(fa), free(fb);
  asg_graph_free(g);
}

/* bf16_matmul / fp16_matmul: the gradient of softmax CE logits feeds only
 * the two products of the logits' gradient, so the CE backward writes it
 * straight into their 16-bit operand copy (no f32 logits gradient). Both
 * gradients must agree with the CPU's f32 within the 16-bit tolerance, and
 * the ignored rows (label -1) must contribute nothing. */
void case_ce_half(int fp16) {
  asg_graph *g = asg_graph_new();
  /* 36 classes: the vector kernel (four per load); 37: the scalar one */
  const int R = 48, K = 40, C = fp16 ? 37 : 36;
  double *vx = rv(R * K, -1, 1, false), *vw = rv(K * C, -0.5, 0.5, false);
  double *vl = rv(R, 0, C, true);
  for (int i = 0; i < R; i += 5)
    vl[i] = -1; /* ignored rows */
  float *fx = to_dtype(ASG_F32, vx, R * K), *fw = to_dtype(ASG_F32, vw, K * C);
  int32_t *il = to_dtype(ASG_I32, vl, R);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(R, K), fx);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(K, C), fw);
  asg_tensor *lab = asg_constant(g, ASG_I32, ASG_SHAPE(R), il);
  asg_tensor *loss = asg_softmax_cross_entropy(asg_matmul(x, w), lab, 0.05, -1);
  asg_tensor *wrt[2] = {x, w}, *gr[3] = {NULL, NULL, loss};
  asg_compile_opts opt = {.bf16_matmul = !fp16, .fp16_matmul = fp16};
  const char *name =
      fp16 ? "softmax CE gradient into fp16 product operands, 37 classes (dx, dw, loss)"
           : "softmax CE gradient into bf16 product operands, 36 classes (dx, dw, loss)";
  if (asg_grad(loss, 2, wrt, gr) == ASG_OK) /* dx, dw, loss */
    cmp_flagged(g, 3, gr, opt, 2e-2, name);
  else
    report(name, 0, asg_last_error());
  free(vx), free(vw), free(vl), free(fx), free(fw), free(il);
  asg_graph_free(g);
}

/* bf16_matmul: a layernorm output read only by products is written as
 * their bf16 operand copy (variant 0); read also by a sum (variant 1) it
 * stays f32 as well. Outputs against the CPU's f32. */
void case_ln_half(int variant) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(40 * 64, -2, 2, false), *vg = rv(64, 0.5, 1.5, false);
  double *vb = rv(64, -0.5, 0.5, false), *vw = rv(64 * 48, -0.3, 0.3, false);
  float *fx = to_dtype(ASG_F32, vx, 40 * 64), *fg = to_dtype(ASG_F32, vg, 64);
  float *fb = to_dtype(ASG_F32, vb, 64), *fw = to_dtype(ASG_F32, vw, 64 * 48);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(40, 64), fx);
  asg_tensor *gm = asg_constant(g, ASG_F32, ASG_SHAPE(64), fg);
  asg_tensor *bt = asg_constant(g, ASG_F32, ASG_SHAPE(64), fb);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(64, 48), fw);
  asg_tensor *y = asg_layernorm(x, gm, bt, 1e-5);
  asg_tensor *out = asg_add(asg_matmul(y, w), asg_matmul(asg_mul_scalar(x, 0.5), w));
  out = asg_sub(out, asg_matmul(y, asg_mul_scalar(w, 0.25)));
  if (variant) out = asg_add(out, asg_sum(y, ASG_AXES(1), true));
  bf16_vs_cpu(g, out, 2e-2,
              variant ? "layernorm output read by bf16 products and a sum"
                      : "layernorm output read only by bf16 products");
  free(vx), free(vg), free(vb), free(vw), free(fx), free(fg), free(fb), free(fw);
  asg_graph_free(g);
}

/* bf16_matmul: a permute read only by products writes their bf16 operand
 * copy; perm (1,0,2) keeps the last dim (16-byte pieces), (0,2,1) moves it
 * (single elements). Outputs against the CPU's f32. */
void case_perm_half(int variant) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(8 * 12 * 16, -1, 1, false), *vw = rv(16 * 24, -0.5, 0.5, false);
  float *fx = to_dtype(ASG_F32, vx, 8 * 12 * 16), *fw = to_dtype(ASG_F32, vw, 16 * 24);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(8, 12, 16), fx);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(16, 24), fw);
  static const int p102[] = {1, 0, 2}, p021[] = {0, 2, 1};
  asg_tensor *px =
      variant ? asg_permute(asg_reshape(x, ASG_SHAPE(8, 16, 12)), p021) : asg_permute(x, p102);
  asg_tensor *m = asg_reshape(px, ASG_SHAPE(96, 16));
  asg_tensor *out = asg_add(asg_matmul(m, w), asg_matmul(m, asg_mul_scalar(w, -0.5)));
  bf16_vs_cpu(g, out, 2e-2,
              variant ? "permute (0,2,1) read only by bf16 products"
                      : "permute (1,0,2) read only by bf16 products");
  free(vx), free(vw), free(fx), free(fw);
  asg_graph_free(g);
}

/* The fused attention under allow_tf32 (TF32 tensor cores on CUDA),
 * bf16_matmul and fp16_matmul (16-bit tensor-core operands, fp32 sums and
 * softmax): output and dq, dk, dv of sum(o * w) against the CPU's f32, each
 * within tol of its own largest magnitude. D = 32, 64, 128 (the tensor-core
 * widths), tiles with ragged ends, Tq != Tk, causal and not, with key masks
 * (some rows seeing no key: zero outputs and gradients). */
void case_fast_attention(int mode) { /* 0 TF32, 1 bf16, 2 fp16 */
  const struct {
    asg_shape q, kv;
    bool causal;
    int mask; /* key mask [B, Tk]: 0 none, 1 some keys hidden, 2 also every key of row 1 */
  } cf[] = {
      {ASG_SHAPE(1, 2, 200, 64), ASG_SHAPE(1, 2, 200, 64), true, 0},
      {ASG_SHAPE(2, 3, 50, 64), ASG_SHAPE(2, 3, 120, 64), false, 0},
      {ASG_SHAPE(2, 1, 33, 32), ASG_SHAPE(2, 1, 97, 32), true, 0},
      {ASG_SHAPE(1, 2, 70, 128), ASG_SHAPE(1, 2, 70, 128), true, 0},
      {ASG_SHAPE(1, 2, 200, 64), ASG_SHAPE(1, 2, 200, 64), true, 1},
      {ASG_SHAPE(2, 3, 50, 64), ASG_SHAPE(2, 3, 120, 64), false, 2},
      {ASG_SHAPE(2, 1, 33, 32), ASG_SHAPE(2, 1, 97, 32), true, 2},
  };
  static const char *const mname[] = {"allow_tf32", "bf16_matmul", "fp16_matmul"};
  /* 10-bit mantissas (TF32, fp16) or 8 (bf16): an H200 measured at most
   * 6.4e-4 and 4.4e-3 over these cases (2026-11-30) */
  const double tol = mode == 1 ? 1.5e-2 : 3e-3;
  for (size_t c = 0; c < sizeof cf / sizeof cf[0]; c++) {
    asg_graph *g = asg_graph_new();
    const long nq = (long)asg_shape_numel(cf[c].q), nk = (long)asg_shape_numel(cf[c].kv);
    double *v[4] = {rv(nq, -1.5, 1.5, false), rv(nk, -1.5, 1.5, false), rv(nk, -2, 2, false),
                    rv(nq, -1, 1, false)};
    float *f[4];
    asg_tensor *x[4];
    for (int i = 0; i < 4; i++) {
      f[i] = to_dtype(ASG_F32, v[i], i == 0 || i == 3 ? nq : nk);
      x[i] = asg_constant(g, ASG_F32, i == 0 || i == 3 ? cf[c].q : cf[c].kv, f[i]);
    }
    const int D = (int)cf[c].q.dims[cf[c].q.ndim - 1];
    asg_tensor *km = NULL;
    float *fm = NULL;
    if (cf[c].mask) { /* key 0 of row 0 hidden: its first queries see nothing when causal */
      const long B = cf[c].q.dims[0], Tk = cf[c].kv.dims[2];
      fm = malloc(sizeof *fm * (size_t)(B * Tk));
      for (long i = 0; fm && i < B * Tk; i++)
        fm[i] = (cf[c].mask == 2 && i / Tk == 1) || i % 5 == 0 || i % 7 == 3 ? 0.f : 1.f;
      km = fm ? asg_constant(g, ASG_F32, ASG_SHAPE(B, Tk), fm) : NULL;
    }
    asg_tensor *o = asg_attention_masked(x[0], x[1], x[2], km, 1.0 / sqrt((double)D), cf[c].causal);
    asg_tensor *loss = asg_sum(asg_mul(o, x[3]), ASG_AXES(0, 1, 2, 3), false);
    asg_tensor *out[4] = {o, NULL, NULL, NULL};
    asg_compile_opts opt = {
        .allow_tf32 = mode == 0, .bf16_matmul = mode == 1, .fp16_matmul = mode == 2};
    char name[160];
    snprintf(name, sizeof name, "attention %s q%s kv%s causal=%d%s (o, dq, dk, dv)", mname[mode],
             shp(cf[c].q), shp(cf[c].kv), cf[c].causal,
             cf[c].mask == 2 ? " key mask, a row hidden"
             : cf[c].mask    ? " key mask"
                             : "");
    if (asg_grad(loss, 3, x, out + 1) == ASG_OK)
      cmp_flagged(g, 4, out, opt, tol, name);
    else
      report(name, 0, asg_last_error());
    for (int i = 0; i < 4; i++)
      free(v[i]), free(f[i]);
    free(fm);
    asg_graph_free(g);
  }
}

/* Linear layers whose bias add (and ReLU / tanh GELU) a backend may fold
 * into the product's epilogue (CUDA: docs/backends.md): forward values and
 * gradients against the CPU. 0: relu(x W^T + b), trained (the ReLU's
 * gradient reads its output); 1: gelu_tanh(x W + b), forward only; 2: the
 * same trained (the GELU's gradient reads its input, so only the bias can
 * fold); 3: b + x W over [2,35,48] (bias first); 4: x W + b also read by
 * another product (nothing folds); 5: x W^T + b with bf16 products (no
 * ReLU: a 16-bit rounding may flip its mask where x W^T + b is near 0);
 * 6, 7: relu / gelu_tanh(x W + b) read by a bf16 product, forward only (the
 * folded activation's output is that product's operand). */
void case_epilogue(int variant) {
  const int R = 70, K = 48, N = 40;
  asg_graph *g = asg_graph_new();
  double *vx = rv(R * K, -1, 1, false), *vw = rv(N * K, -0.4, 0.4, false);
  double *vb = rv(N, -0.5, 0.5, false), *vu = rv(R * N, -1, 1, false);
  float *fx = to_dtype(ASG_F32, vx, R * K), *fw = to_dtype(ASG_F32, vw, N * K);
  float *fb = to_dtype(ASG_F32, vb, N), *fu = to_dtype(ASG_F32, vu, R * N);
  asg_tensor *x =
      asg_constant(g, ASG_F32, variant == 3 ? ASG_SHAPE(2, R / 2, K) : ASG_SHAPE(R, K), fx);
  const bool tw = variant == 0 || variant == 5; /* Linear's [N, K] weight */
  asg_tensor *w = asg_constant(g, ASG_F32, tw ? ASG_SHAPE(N, K) : ASG_SHAPE(K, N), fw);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(N), fb);
  asg_tensor *u = asg_constant(g, ASG_F32, ASG_SHAPE(R, N), fu);
  asg_tensor *mm = asg_matmul_t(x, w, false, tw);
  asg_tensor *y = variant == 3 ? asg_add(b, mm) : asg_add(mm, b);
  if (variant == 0) y = asg_relu(y);
  if (variant == 1 || variant == 2) y = asg_gelu_tanh(y);
  if (variant == 3) y = asg_reshape(y, ASG_SHAPE(R, N));
  if (variant == 4) y = asg_add(y, asg_matmul(mm, asg_constant(g, ASG_F32, ASG_SHAPE(N, N), fu)));
  if (variant >= 6) /* [R, N] x [N, N] */
    y = asg_matmul(variant == 6 ? asg_relu(y) : asg_gelu_tanh(y),
                   asg_constant(g, ASG_F32, ASG_SHAPE(N, N), fu));
  static const char *const name[] = {
      "linear + bias + relu folded: values and gradients",
      "linear + bias + gelu_tanh folded: forward",
      "linear + bias (+ gelu_tanh after): values and gradients",
      "bias + batched linear [2,35,48]: values and gradients",
      "linear + bias with the product read twice: values and gradients",
      "linear + bias folded, bf16 products: values and gradients",
      "linear + bias + relu into a bf16 product: forward",
      "linear + bias + gelu_tanh into a bf16 product: forward"};
  asg_tensor *out[5] = {y, NULL, NULL, NULL, NULL};
  int n = 1;
  if (variant != 1 && variant < 6) {
    asg_tensor *loss = asg_sum(asg_mul(y, u), ASG_AXES(0, 1), false);
    asg_tensor *wrt[4] = {x, w, b};
    n = asg_grad(loss, 3, wrt, out + 1) == ASG_OK ? 4 : 0;
  }
  asg_compile_opts opt = {.bf16_matmul = variant >= 5};
  if (n)
    cmp_flagged(g, n, out, opt, variant >= 5 ? 2e-2 : 1e-4, name[variant]);
  else
    report(name[variant], 0, asg_last_error());
  free(vx), free(vw), free(vb), free(vu), free(fx), free(fw), free(fb), free(fu);
  asg_graph_free(g);
}

/* Residual add + layernorm, which a backend may run as one kernel (CUDA:
 * docs/backends.md): h = x + r, y = layernorm(h), out = y W + h (the sum is
 * read again after the layernorm, as a residual stream is), values and
 * gradients against the CPU. 1: a step between the add and the layernorm
 * reads h (nothing folds); 2: rows of 1100 (a block per row); 3: bf16
 * products (the layernorm then writes their 16-bit copy). */
void case_add_ln(int variant) {
  const int R = 48, C = variant == 2 ? 1100 : 64;
  asg_graph *g = asg_graph_new();
  double *vx = rv(R * C, -2, 2, false), *vr = rv(R * C, -1, 1, false);
  double *vg = rv(C, 0.5, 1.5, false), *vb = rv(C, -0.5, 0.5, false);
  double *vw = rv(C * C, -0.2, 0.2, false), *vu = rv(R * C, -1, 1, false);
  float *fx = to_dtype(ASG_F32, vx, R * C), *fr = to_dtype(ASG_F32, vr, R * C);
  float *fg = to_dtype(ASG_F32, vg, C), *fb = to_dtype(ASG_F32, vb, C);
  float *fw = to_dtype(ASG_F32, vw, C * C), *fu = to_dtype(ASG_F32, vu, R * C);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(R, C), fx);
  asg_tensor *rr = asg_constant(g, ASG_F32, ASG_SHAPE(R, C), fr);
  asg_tensor *gm = asg_constant(g, ASG_F32, ASG_SHAPE(C), fg);
  asg_tensor *bt = asg_constant(g, ASG_F32, ASG_SHAPE(C), fb);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(C, C), fw);
  asg_tensor *u = asg_constant(g, ASG_F32, ASG_SHAPE(R, C), fu);
  asg_tensor *h = asg_add(x, rr);
  asg_tensor *pre = variant == 1 ? asg_mul_scalar(h, 2.0) : NULL;
  asg_tensor *y = asg_layernorm(h, gm, bt, 1e-5);
  asg_tensor *out = asg_add(asg_matmul(y, w), h);
  if (pre) out = asg_add(out, pre);
  asg_tensor *loss = asg_sum(asg_mul(out, u), ASG_AXES(0, 1), false);
  asg_tensor *wrt[4] = {x, rr, gm, bt}, *outs[5] = {out, NULL, NULL, NULL, NULL};
  static const char *const name[] = {
      "residual add + layernorm [48,64]: values and gradients",
      "residual add read before its layernorm: values and gradients",
      "residual add + layernorm [48,1100]: values and gradients",
      "residual add + layernorm, bf16 products: values and gradients"};
  asg_compile_opts opt = {.bf16_matmul = variant == 3};
  if (asg_grad(loss, 4, wrt, outs + 1) == ASG_OK)
    cmp_flagged(g, 5, outs, opt, variant == 3 ? 2e-2 : 1e-4, name[variant]);
  else
    report(name[variant], 0, asg_last_error());
  free(vx), free(vr), free(vg), free(vb), free(vw), free(vu);
  free(fx), free(fr), free(fg), free(fb), free(fw), free(fu);
  asg_graph_free(g);
}

/* bf16_matmul: a unary op (0) or a fused elementwise chain (1) whose
 * output only products read writes their bf16 operand copy instead of f32;
 * read also by a sum (2) it stays f32. Outputs against the CPU's f32. */
void case_unary_half(int variant) {
  asg_graph *g = asg_graph_new();
  double *vx = rv(64 * 48, -2, 2, false), *vw = rv(48 * 40, -0.5, 0.5, false);
  float *fx = to_dtype(ASG_F32, vx, 64 * 48), *fw = to_dtype(ASG_F32, vw, 48 * 40);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(64, 48), fx);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(48, 40), fw);
  asg_tensor *h = asg_mul_scalar(x, 1.5); /* an arena value (not the constant) */
  asg_tensor *u = asg_gelu(h);
  if (variant == 1) u = asg_add_scalar(asg_mul(u, asg_sigmoid(h)), 0.25);
  asg_tensor *out = asg_add(asg_matmul(u, w), asg_matmul(u, asg_mul_scalar(w, -0.75)));
  if (variant == 2) out = asg_add(out, asg_sum(u, ASG_AXES(1), true));
  bf16_vs_cpu(g, out, 2e-2,
              variant == 0   ? "gelu output read only by bf16 products"
              : variant == 1 ? "fused chain output read only by bf16 products"
                             : "gelu output read by bf16 products and a sum");
  free(vx), free(vw), free(fx), free(fw);
  asg_graph_free(g);
}

/* A language-model head under 16-bit products: logits = h W^T [R, V] read
 * only by the softmax CE (and its backward), which a backend may keep as
 * 16 bits (CUDA: docs/backends.md). 0: bf16, label smoothing 0.1 and
 * ignored rows; 1: fp16; 2: bf16 with the logits also read by a sum (they
 * stay f32). Loss and gradients of h and W against the CPU's f32. */
void case_half_logits(int variant) {
  const int R = 96, K = 64, V = 1000;
  asg_graph *g = asg_graph_new();
  double *vh = rv(R * K, -1, 1, false), *vw = rv(V * K, -0.3, 0.3, false);
  double *vl = rv(R, 0, V, true);
  for (int i = 0; i < R; i += 9)
    vl[i] = -100; /* ignored rows */
  float *fh = to_dtype(ASG_F32, vh, R * K), *fw = to_dtype(ASG_F32, vw, V * K);
  int32_t *il = malloc(sizeof *il * R);
  for (int i = 0; i < R; i++)
    il[i] = (int32_t)vl[i];
  asg_tensor *h = asg_constant(g, ASG_F32, ASG_SHAPE(R, K), fh);
  asg_tensor *w = asg_constant(g, ASG_F32, ASG_SHAPE(V, K), fw);
  asg_tensor *lab = asg_constant(g, ASG_I32, ASG_SHAPE(R), il);
  asg_tensor *logits = asg_matmul_t(h, w, false, true);
  asg_tensor *loss = asg_softmax_cross_entropy(logits, lab, variant == 1 ? 0.0 : 0.1, -100);
  if (variant == 2)
    loss = asg_add(loss, asg_mul_scalar(asg_sum(logits, ASG_AXES(0, 1), false), 1e-4));
  asg_tensor *wrt[2] = {h, w}, *out[3] = {loss};
  static const char *const name[] = {
      "linear head + softmax CE, bf16 products: loss and gradients",
      "linear head + softmax CE, fp16 products: loss and gradients",
      "linear head + softmax CE + a sum of the logits, bf16 products: loss and gradients"};
  grads_vs_cpu(g, loss, 2, wrt, out, half_opts(variant == 1), 2e-2, name[variant]);
  free(vh), free(vw), free(vl), free(fh), free(fw), free(il);
  asg_graph_free(g);
}

/* Two trained linear layers with biases under 16-bit products: the first
 * layer's output gradient dh is converted for the products dW1 = dh^T x and
 * dx = dh W1, and its rows are summed for db1, which a backend may do while
 * converting (CUDA: docs/backends.md). 0: bf16, [300, 64]; 1: fp16; 2: bf16,
 * [1000, 68] (many row chunks, 17 column quads). Values and gradients
 * against the CPU's f32. */
void case_colsum(int variant) {
  const int R = variant == 2 ? 1000 : 300, K = 48, H = variant == 2 ? 68 : 64, N = 40;
  asg_graph *g = asg_graph_new();
  double *v[6] = {rv(R * K, -1, 1, false), rv(H * K, -0.3, 0.3, false),
                  rv(H, -0.5, 0.5, false), rv(N * H, -0.3, 0.3, false),
                  rv(N, -0.5, 0.5, false), rv(R * N, -1, 1, false)};
  const int64_t cnt[6] = {R * K, H * K, H, N * H, N, R * N};
  float *f[6];
  for (int k = 0; k < 6; k++)
    f[k] = to_dtype(ASG_F32, v[k], cnt[k]);
  asg_tensor *x = asg_constant(g, ASG_F32, ASG_SHAPE(R, K), f[0]);
  asg_tensor *w1 = asg_constant(g, ASG_F32, ASG_SHAPE(H, K), f[1]);
  asg_tensor *b1 = asg_constant(g, ASG_F32, ASG_SHAPE(H), f[2]);
  asg_tensor *w2 = asg_constant(g, ASG_F32, ASG_SHAPE(N, H), f[3]);
  asg_tensor *b2 = asg_constant(g, ASG_F32, ASG_SHAPE(N), f[4]);
  asg_tensor *u = asg_constant(g, ASG_F32, ASG_SHAPE(R, N), f[5]);
  asg_tensor *h = asg_gelu(asg_add(asg_matmul_t(x, w1, false, true), b1));
  asg_tensor *y = asg_add(asg_matmul_t(h, w2, false, true), b2);
  asg_tensor *loss = asg_sum(asg_mul(y, u), ASG_AXES(0, 1), false);
  asg_tensor *wrt[5] = {x, w1, b1, w2, b2}, *out[6] = {y};
  static const char *const name[] = {
      "two linear layers, bias gradients, bf16 products: values and gradients",
      "two linear layers, bias gradients, fp16 products: values and gradients",
      "two linear layers [1000,68], bias gradients, bf16 products: values and gradients"};
  grads_vs_cpu(g, loss, 5, wrt, out, half_opts(variant == 1), 2e-2, name[variant]);
  for (int k = 0; k < 6; k++)
    free(v[k]), free(f[k]);
  asg_graph_free(g);
}

/* Row dot products sum(a * b, last axis), computed in one pass (the rowdot
 * op of src/passes/fuse_rowdot.c) when only the sum reads the products:
 * 0 the products read by the sum alone, 1 also by another op. */
void case_rowdot(int variant) {
  asg_graph *g = asg_graph_new();
  double *va = rv(3 * 5 * 70, -2, 2, false), *vb = rv(3 * 5 * 70, -2, 2, false);
  float *fa = to_dtype(ASG_F32, va, 3 * 5 * 70), *fb = to_dtype(ASG_F32, vb, 3 * 5 * 70);
  asg_tensor *a = asg_constant(g, ASG_F32, ASG_SHAPE(3, 5, 70), fa);
  asg_tensor *b = asg_constant(g, ASG_F32, ASG_SHAPE(3, 5, 70), fb);
  asg_tensor *ab = asg_mul(asg_mul_scalar(a, 1.25), b);
  asg_tensor *out[2] = {asg_sum(ab, ASG_AXES(-1), false), NULL};
  if (variant) out[1] = asg_sum(ab, ASG_AXES(0), false);
  cmp_flagged(g, variant ? 2 : 1, out, (asg_compile_opts){0}, 1e-5,
              variant ? "sum(a * b) over the last axis, products read twice"
                      : "sum(a * b) over the last axis");
  if (!variant) { /* the row-dot rule made the rowdot op: one step fewer than unfused */
    asg_program *fz = compile_on(g, 1, out, g_backend, 0, false, NULL, false);
    asg_program *un = compile_on(g, 1, out, g_backend, 0, false, NULL, true);
    if (fz && un && asg_program_step_count(fz) < asg_program_step_count(un)) mark_name("rowdot");
    asg_program_free(fz), asg_program_free(un);
  }
  free(va), free(vb), free(fa), free(fb);
  asg_graph_free(g);
}
