/* Parity cases: elementwise unary ops and casts, binary ops (gelu_bwd and
 * gelu_tanh_bwd among them), comparisons
 * and where (broadcasting, integer and float), and chains of elementwise
 * steps that a backend may fuse into one kernel. */
#include "parity.h"

/* ------------------------------------------------------- elementwise unary */

enum {
  U_NEG,
  U_ABS,
  U_SIGN,
  U_EXP,
  U_LOG,
  U_SQRT,
  U_RSQRT,
  U_SIN,
  U_COS,
  U_TANH,
  U_ERF,
  U_SIGMOID,
  U_RELU,
  U_LEAKY,
  U_GELU,
  U_GELU_TANH,
  U_SILU,
  U_ELU,
  U_SOFTPLUS,
  U_CLAMP,
  U_COUNT
};
static const struct {
  const char *name;
  double lo, hi;
} UNARY[U_COUNT] = {
    {"neg", -2, 2},   {"abs", -2, 2},        {"sign", -2, 2},     {"exp", -3, 3},
    {"log", 0.05, 4}, {"sqrt", 0.05, 4},     {"rsqrt", 0.05, 4},  {"sin", -4, 4},
    {"cos", -4, 4},   {"tanh", -3, 3},       {"erf", -3, 3},      {"sigmoid", -6, 6},
    {"relu", -2, 2},  {"leaky_relu", -2, 2}, {"gelu", -4, 4},     {"gelu_tanh", -4, 4},
    {"silu", -5, 5},  {"elu", -3, 3},        {"softplus", -3, 3}, {"clamp", -2, 2},
};

static asg_tensor *apply_unary(int k, asg_tensor *x) {
  switch (k) {
  case U_NEG: return asg_neg(x);
  case U_ABS: return asg_abs(x);
  case U_SIGN: return asg_sign(x);
  case U_EXP: return asg_exp(x);
  case U_LOG: return asg_log(x);
  case U_SQRT: return asg_sqrt(x);
  case U_RSQRT: return asg_rsqrt(x);
  case U_SIN: return asg_sin(x);
  case U_COS: return asg_cos(x);
  case U_TANH: return asg_tanh(x);
  case U_ERF: return asg_erf(x);
  case U_SIGMOID: return asg_sigmoid(x);
  case U_RELU: return asg_relu(x);
  case U_LEAKY: return asg_leaky_relu(x, 0.07);
  case U_GELU: return asg_gelu(x);
  case U_GELU_TANH: return asg_gelu_tanh(x);
  case U_SILU: return asg_silu(x);
  case U_ELU: return asg_elu(x, 1.3);
  case U_SOFTPLUS: return asg_softplus(x, 2.0, 3.0); /* beta x > 3 for some x: linear part */
  default: return asg_clamp(x, -0.5, 0.7);
  }
}

void cases_unary(void) {
  asg_shape s = ASG_SHAPE(3, 37, 11);
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < U_COUNT; k++) {
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s", UNARY[k].name, dtn(FDT[d]), shp(s));
      pc_out(&pc, apply_unary(k, pc_in(&pc, FDT[d], s, UNARY[k].lo, UNARY[k].hi)), "y");
      pc_finish(&pc);
    }
  /* multi-block sizes */
  asg_shape big = ASG_SHAPE(70001);
  const int bigk[] = {U_GELU, U_SIGMOID, U_EXP, U_RELU};
  for (int d = 0; d < 2; d++)
    for (size_t j = 0; j < sizeof bigk / sizeof bigk[0]; j++) {
      int k = bigk[j];
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s", UNARY[k].name, dtn(FDT[d]), shp(big));
      pc_out(&pc, apply_unary(k, pc_in(&pc, FDT[d], big, UNARY[k].lo, UNARY[k].hi)), "y");
      pc_finish(&pc);
    }
  /* integer unary ops */
  for (int d = 0; d < 2; d++) {
    asg_shape si = ASG_SHAPE(7, 53);
    pcase pc;
    pc_begin(&pc, C_EXACT, "neg/abs/sign/relu/clamp %s %s", dtn(IDT[d]), shp(si));
    asg_tensor *x = pc_in(&pc, IDT[d], si, -50, 50);
    pc_out(&pc, asg_neg(x), "neg");
    pc_out(&pc, asg_abs(x), "abs");
    pc_out(&pc, asg_sign(x), "sign");
    pc_out(&pc, asg_relu(x), "relu");
    pc_out(&pc, asg_clamp(x, -7, 20), "clamp");
    pc_finish(&pc);
  }
  /* stop_gradient: y = x * stop_gradient(x), dy/dx = x */
  for (int d = 0; d < 2; d++) {
    pcase pc;
    pc_begin(&pc, C_ELEM, "stop_gradient %s %s", dtn(FDT[d]), shp(s));
    asg_tensor *x = pc_in(&pc, FDT[d], s, -2, 2);
    pc_out(&pc, asg_mul(x, mark(asg_stop_gradient(x))), "y");
    pc_finish(&pc);
  }
}

void cases_cast(void) {
  asg_shape s = ASG_SHAPE(9, 41);
  for (int d = 0; d < 2; d++) {
    asg_dtype a = FDT[d], b = FDT[1 - d];
    pcase pc;
    pc_begin(&pc, C_ELEM, "cast %s->%s %s", dtn(a), dtn(b), shp(s));
    pc_out(&pc, asg_cast(pc_in(&pc, a, s, -3, 3), b), "y");
    pc_finish(&pc);
  }
  /* float -> int (values away from integers), int -> float, int -> int */
  static const asg_dtype pairs[][2] = {{ASG_F32, ASG_I32}, {ASG_F32, ASG_I64}, {ASG_F64, ASG_I32},
                                       {ASG_F64, ASG_I64}, {ASG_I32, ASG_F32}, {ASG_I64, ASG_F64},
                                       {ASG_I32, ASG_I64}, {ASG_I64, ASG_I32}, {ASG_I32, ASG_F64},
                                       {ASG_I64, ASG_F32}};
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    asg_dtype a = pairs[k][0], b = pairs[k][1];
    pcase pc;
    pc_begin(&pc, C_EXACT, "cast %s->%s %s", dtn(a), dtn(b), shp(s));
    pc.no_grad = true;
    long n = numel(s);
    double *v = rv(n, -60, 60, true);
    if (asg_dtype_is_float(a))
      for (long i = 0; i < n; i++)
        v[i] += (i % 3 == 0) ? 0.25 : (i % 3 == 1 ? 0.75 : 0);
    pc_out(&pc, asg_cast(pc_in_vals(&pc, a, s, v), b), "y");
    free(v);
    pc_finish(&pc);
  }
}

/* ------------------------------------------------------ elementwise binary */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_COUNT };
static const char *const BNAME[B_COUNT] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};

static asg_tensor *apply_binary(int k, asg_tensor *a, asg_tensor *b) {
  switch (k) {
  case B_ADD: return asg_add(a, b);
  case B_SUB: return asg_sub(a, b);
  case B_MUL: return asg_mul(a, b);
  case B_DIV: return asg_div(a, b);
  case B_POW: return asg_pow(a, b);
  case B_MAXIMUM: return asg_maximum(a, b);
  default: return asg_minimum(a, b);
  }
}

enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_COUNT };
static const char *const CNAME[CMP_COUNT] = {"eq", "ne", "lt", "le", "gt", "ge"};
static asg_tensor *apply_cmp(int k, asg_tensor *a, asg_tensor *b) {
  switch (k) {
  case CMP_EQ: return asg_eq(a, b);
  case CMP_NE: return asg_ne(a, b);
  case CMP_LT: return asg_lt(a, b);
  case CMP_LE: return asg_le(a, b);
  case CMP_GT: return asg_gt(a, b);
  default: return asg_ge(a, b);
  }
}

void cases_binary(void) {
  asg_shape sa = ASG_SHAPE(5, 1, 13), sb = ASG_SHAPE(4, 13);
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < B_COUNT; k++) {
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s,%s", BNAME[k], dtn(FDT[d]), shp(sa), shp(sb));
      pc.gcls = C_ACCUM; /* gradients sum over the broadcast dims */
      double alo = k == B_POW ? 0.3 : -2, ahi = 2;
      double blo = (k == B_DIV) ? 0.5 : -2, bhi = 2;
      asg_tensor *a = pc_in(&pc, FDT[d], sa, alo, ahi);
      asg_tensor *b = pc_in(&pc, FDT[d], sb, blo, bhi);
      pc_out(&pc, apply_binary(k, a, b), "y");
      pc_finish(&pc);
    }
  /* gelu's gradients as ops of their own (dy, x): broadcast either way, and
   * same shapes over several blocks; x over both tails */
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < 2; k++) {
      const char *nm = k ? "gelu_tanh_bwd" : "gelu_bwd";
      asg_tensor *(*f)(asg_tensor *, asg_tensor *) = k ? asg_gelu_tanh_bwd : asg_gelu_bwd;
      const asg_shape sh[3][2] = {{sa, sb}, {sb, sa}, {ASG_SHAPE(70001), ASG_SHAPE(70001)}};
      for (int v = 0; v < 3; v++) {
        pcase pc;
        pc_begin(&pc, C_ELEM, "%s %s %s,%s", nm, dtn(FDT[d]), shp(sh[v][0]), shp(sh[v][1]));
        pc.gcls = v < 2 ? C_ACCUM : C_ELEM; /* gradients sum over broadcast dims */
        asg_tensor *dy = pc_in(&pc, FDT[d], sh[v][0], -2, 2);
        asg_tensor *x = pc_in(&pc, FDT[d], sh[v][1], -7, 7);
        pc_out(&pc, f(dy, x), "y");
        pc_finish(&pc);
      }
    }
  /* multi-block broadcast: [7,10007] + [10007] */
  asg_shape la = ASG_SHAPE(7, 10007), lb = ASG_SHAPE(10007);
  for (int d = 0; d < 2; d++) {
    static const int ks[] = {B_ADD, B_MUL};
    for (int j = 0; j < 2; j++) {
      pcase pc;
      pc_begin(&pc, C_ELEM, "%s %s %s,%s", BNAME[ks[j]], dtn(FDT[d]), shp(la), shp(lb));
      pc.gcls = C_ACCUM;
      asg_tensor *a = pc_in(&pc, FDT[d], la, -1, 1);
      asg_tensor *b = pc_in(&pc, FDT[d], lb, -1, 1);
      pc_out(&pc, apply_binary(ks[j], a, b), "y");
      pc_finish(&pc);
    }
  }
  /* scalar forms (fill nodes) */
  for (int d = 0; d < 2; d++) {
    asg_shape s = ASG_SHAPE(11, 19);
    pcase pc;
    pc_begin(&pc, C_ELEM, "add_scalar/mul_scalar/pow_scalar/fill %s %s", dtn(FDT[d]), shp(s));
    asg_tensor *x = pc_in(&pc, FDT[d], s, 0.2, 2);
    pc_out(&pc, asg_add_scalar(x, 0.75), "x+c");
    pc_out(&pc, asg_mul_scalar(x, -1.5), "x*c");
    pc_out(&pc, asg_pow_scalar(x, 2.5), "x^c");
    pc_out(&pc, asg_mul(x, mark(asg_fill(pc.g, FDT[d], ASG_SHAPE(19), 0.3))), "x*fill");
    pc_finish(&pc);
  }
  /* integer binary */
  asg_shape ia = ASG_SHAPE(6, 1, 21), ib = ASG_SHAPE(5, 21);
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < B_COUNT; k++) {
      if (k == B_POW) continue; /* float only */
      pcase pc;
      pc_begin(&pc, C_EXACT, "%s %s %s,%s", BNAME[k], dtn(IDT[d]), shp(ia), shp(ib));
      asg_tensor *a = pc_in(&pc, IDT[d], ia, -100, 100);
      long nb = numel(ib);
      double *v = rv(nb, -9, 10, true);
      for (long i = 0; i < nb; i++)
        if (v[i] == 0) v[i] = (i & 1) ? 3 : -4; /* nonzero divisors, both signs */
      asg_tensor *b = pc_in_vals(&pc, IDT[d], ib, v);
      free(v);
      pc_out(&pc, apply_binary(k, a, b), "y");
      pc_finish(&pc);
    }
  /* comparisons (frequent ties), float and integer; masks exact */
  asg_shape ca = ASG_SHAPE(9, 31), cb = ASG_SHAPE(31);
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    pcase pc;
    pc_begin(&pc, C_EXACT, "eq/ne/lt/le/gt/ge %s %s,%s", dtn(dt), shp(ca), shp(cb));
    pc.no_grad = true; /* not differentiable */
    asg_tensor *a = pc_in_int(&pc, dt, ca, 0, 4);
    asg_tensor *b = pc_in_int(&pc, dt, cb, 0, 4);
    for (int k = 0; k < CMP_COUNT; k++)
      pc_out(&pc, apply_cmp(k, a, b), CNAME[k]);
    pc_finish(&pc);
  }
  /* where: cond fed (0/1) and computed (a > b); broadcasting */
  asg_shape wc = ASG_SHAPE(6, 1, 17), wa = ASG_SHAPE(6, 5, 17), wb = ASG_SHAPE(17);
  for (int t = 0; t < 4; t++) {
    asg_dtype dt = t < 2 ? FDT[t] : IDT[t - 2];
    pcase pc;
    pc_begin(&pc, t < 2 ? C_ELEM : C_EXACT, "where %s %s,%s,%s", dtn(dt), shp(wc), shp(wa),
             shp(wb));
    pc.gcls = C_ACCUM;
    asg_tensor *c = pc_in_int(&pc, dt, wc, 0, 2);
    asg_tensor *a = pc_in(&pc, dt, wa, -20, 20);
    asg_tensor *b = pc_in(&pc, dt, wb, -20, 20);
    pc_out(&pc, asg_where(c, a, b), "where(c,a,b)");
    pc_out(&pc, asg_where(mark(asg_gt(a, b)), b, a), "where(a>b,b,a)");
    pc_finish(&pc);
  }
}

/* ------------------------------------------------- elementwise chains
 * Backends may fuse runs of elementwise steps into one kernel (CUDA). These
 * graphs put the cases a fusion must get right through the same comparison:
 * values of a chain read later by other ops and by the user, broadcasts over
 * different dims, views inside a chain, one value read twice, in-place
 * updates of a variable, chains longer than one kernel takes, and their
 * gradients (more chains). */
void cases_chains(void) {
  for (int d = 0; d < 2; d++) {
    asg_dtype dt = FDT[d];
    pcase pc;
    /* an intermediate read by a reduction and a matmul after the chain, one
     * returned to the user, a broadcast bias */
    pc_begin(&pc, C_ACCUM, "chain %s: tanh(x*a + b) feeding sum, matmul and outputs", dtn(dt));
    asg_tensor *x = pc_in(&pc, dt, ASG_SHAPE(6, 40), -2, 2);
    asg_tensor *a = pc_in(&pc, dt, ASG_SHAPE(6, 40), -2, 2);
    asg_tensor *b = pc_in(&pc, dt, ASG_SHAPE(40), -1, 1);
    asg_tensor *xa = asg_mul(x, a);
    asg_tensor *h = asg_tanh(asg_add(xa, b));
    asg_tensor *y = asg_sub(asg_mul_scalar(h, 2.0), x);
    pc_out(&pc, xa, "x*a");
    pc_out(&pc, y, "2h - x");
    pc_out(&pc, asg_sum(h, ASG_AXES(1), false), "sum h");
    pc_out(&pc, asg_matmul_t(h, y, false, true), "h y^T");
    pc_finish(&pc);

    /* broadcasts along different dims, a comparison mask, where, a value
     * read twice, and a reshape inside the chain */
    pc_begin(&pc, C_ACCUM, "chain %s: broadcasts [4,5,6] x [5,1] x [6], where, x*x, reshape",
             dtn(dt));
    x = pc_in(&pc, dt, ASG_SHAPE(4, 5, 6), -2, 2);
    asg_tensor *c5 = pc_in(&pc, dt, ASG_SHAPE(5, 1), 0.5, 1.5);
    asg_tensor *c6 = pc_in(&pc, dt, ASG_SHAPE(6), -1, 1);
    asg_tensor *t = asg_add(asg_mul(x, c5), c6);
    asg_tensor *m = asg_gt(t, asg_mul(x, x));
    asg_tensor *w = asg_where(m, asg_exp(asg_neg(t)), asg_sigmoid(t));
    asg_tensor *r = asg_reshape(w, ASG_SHAPE(20, 6));
    pc_out(&pc, asg_add(asg_mul(r, r), asg_reshape(c6, ASG_SHAPE(1, 6))), "r*r + c6");
    pc_finish(&pc);

    /* a bias add right after a product (a GEMM epilogue may do it), its
     * result read by a reduction, by a random mask, or by a product */
    for (int v = 0; v < 3; v++) {
      pc_begin(&pc, C_ACCUM, "chain %s: x W + b then %s", dtn(dt),
               v == 0   ? "sum"
               : v == 1 ? "dropout mask, sum"
                        : "matmul");
      x = pc_in(&pc, dt, ASG_SHAPE(2, 8, 64), -1, 1);
      asg_tensor *W = pc_in(&pc, dt, ASG_SHAPE(64, 16), -1, 1);
      asg_tensor *bb = pc_in(&pc, dt, ASG_SHAPE(16), -1, 1);
      asg_tensor *hb = asg_add(asg_matmul(x, W), bb);
      if (v == 1) hb = asg_mul(hb, asg_rand_bernoulli(pc.g, dt, ASG_SHAPE(2, 8, 16), 0.7, 5));
      pc_out(&pc, v == 2 ? asg_matmul_t(hb, W, false, true) : asg_sum(hb, ASG_AXES(2), false),
             "out");
      pc_finish(&pc);
    }

    /* more ops than one fused kernel takes: the chain is cut */
    pc_begin(&pc, C_ACCUM, "chain %s: 40 alternating ops", dtn(dt));
    x = pc_in(&pc, dt, ASG_SHAPE(3, 50), -1, 1);
    asg_tensor *z = x;
    for (int k = 0; k < 20; k++)
      z = asg_add(asg_mul_scalar(asg_sin(z), 0.9), x);
    pc_out(&pc, z, "z");
    pc_finish(&pc);

    /* an in-place update of a variable (its old value read, element by
     * element, in the same chain), three runs */
    pc_begin(&pc, C_ELEM, "chain %s: v <- v*0.5 + relu(x - v) (3 runs)", dtn(dt));
    pc.runs = 3;
    pc.no_grad = true;
    double *v0 = rv(60, -1, 1, false);
    void *vb = to_dtype(dt, v0, 60);
    asg_tensor *v = mark(asg_variable(pc.g, "v", dt, ASG_SHAPE(6, 10), asg_init_data(vb)));
    x = pc_in(&pc, dt, ASG_SHAPE(6, 10), -1, 1);
    asg_tensor *nv = asg_add(asg_mul_scalar(v, 0.5), asg_relu(asg_sub(x, v)));
    pc_out(&pc, asg_mul(v, x), "v*x");
    pc_out_ex(&pc, asg_assign(v, nv), "assign", pc.cls, false);
    pc.var_name[pc.n_var++] = "v";
    pc_finish(&pc);
    free(v0), free(vb);
  }
}
