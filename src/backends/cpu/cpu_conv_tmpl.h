/* The im2col convolution kernels for one element type, included by
 * cpu_conv.c once per type with T (the type), SUF (its name suffix) and
 * GEMM (its GEMM) defined; they are undefined at the end. No include
 * guard: it is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* x: one image's group channels [Cg,H,W] -> col [CKK, OHW] */
static void ASG_CAT(im2col, SUF)(const cgeo *g, const T *x, T *col) {
  for (int64_t c = 0; c < g->Cg; c++)
    for (int64_t kh = 0; kh < g->KH; kh++)
      for (int64_t kw = 0; kw < g->KW; kw++) {
        T *row = col + ((c * g->KH + kh) * g->KW + kw) * g->OHW;
        int64_t offh = kh * g->dh - g->ph, offw = kw * g->dw - g->pw, hlo, hhi, wlo, whi;
        valid_range(g->H, g->OH, g->sh, offh, &hlo, &hhi);
        valid_range(g->W, g->OW, g->sw, offw, &wlo, &whi);
        for (int64_t oh = 0; oh < g->OH; oh++) {
          T *r = row + oh * g->OW;
          if (oh < hlo || oh >= hhi) {
            memset(r, 0, sizeof(T) * (size_t)g->OW);
            continue;
          }
          const T *xr = x + (c * g->H + oh * g->sh + offh) * g->W;
          for (int64_t ow = 0; ow < wlo; ow++)
            r[ow] = 0;
          if (g->sw == 1)
            memcpy(r + wlo, xr + (wlo + offw), sizeof(T) * (size_t)(whi - wlo));
          else
            for (int64_t ow = wlo; ow < whi; ow++)
              r[ow] = xr[ow * g->sw + offw];
          for (int64_t ow = whi; ow < g->OW; ow++)
            r[ow] = 0;
        }
      }
}

/* col [CKK, OHW] -> adds into one image's group channels [Cg,H,W] */
static void ASG_CAT(col2im, SUF)(const cgeo *g, const T *col, T *x) {
  for (int64_t c = 0; c < g->Cg; c++)
    for (int64_t kh = 0; kh < g->KH; kh++)
      for (int64_t kw = 0; kw < g->KW; kw++) {
        const T *row = col + ((c * g->KH + kh) * g->KW + kw) * g->OHW;
        int64_t offh = kh * g->dh - g->ph, offw = kw * g->dw - g->pw, hlo, hhi, wlo, whi;
        valid_range(g->H, g->OH, g->sh, offh, &hlo, &hhi);
        valid_range(g->W, g->OW, g->sw, offw, &wlo, &whi);
        for (int64_t oh = hlo; oh < hhi; oh++) {
          const T *r = row + oh * g->OW;
          T *xr = x + (c * g->H + oh * g->sh + offh) * g->W;
          for (int64_t ow = wlo; ow < whi; ow++)
            xr[ow * g->sw + offw] += r[ow];
        }
      }
}

/* conv2d_bias_act's epilogue on one image y [O,OHW] (still in cache):
 * y = act(y + b[o]), act 1: ReLU, as the add and relu steps it replaces */
static void ASG_CAT(bias_act, SUF)(T *y, const T *b, int64_t O, int64_t OHW, int act) {
  for (int64_t o = 0; o < O; o++) {
    T *r = y + o * OHW, bo = b[o];
    if (act)
      for (int64_t p = 0; p < OHW; p++) {
        T v = r[p] + bo;
        r[p] = v > 0 ? v : 0;
      }
    else
      for (int64_t p = 0; p < OHW; p++)
        r[p] += bo;
  }
}

/* Image n of x [N,C,H,W], w [O,Cg,KH,KW] -> y [N,O,OH,OW]:
 * y_ng [Og,OHW] = w_g [Og,CKK] col [CKK,OHW]; col is a buffer of CKK*OHW */
static void ASG_CAT(fwd, SUF)(const asg_cpu_call *c, const cgeo *g, int64_t n, T *buf,
                              asg_cpu_pool *gp) {
  const T *x = c->in[0], *w = c->in[1];
  T *y = c->out;
  for (int64_t gi = 0; gi < g->G; gi++) {
    const T *xg = x + (n * g->C + gi * g->Cg) * g->HW, *col = xg;
    if (!g->direct) {
      ASG_CAT(im2col, SUF)(g, xg, buf);
      col = buf;
    }
    GEMM(false, false, g->Og, g->OHW, g->CKK, 1, w + gi * g->Og * g->CKK, g->CKK, col, g->OHW, 0,
         y + (n * g->O + gi * g->Og) * g->OHW, g->OHW, gp);
  }
  if (c->s->op == ASG_OP_CONV2D_BIAS_ACT)
    ASG_CAT(bias_act, SUF)(y + n * g->O * g->OHW, c->in[2], g->O, g->OHW, (int)c->s->attr.i[9]);
}

/* Image n of dy [N,O,OH,OW], w [O,Cg,KH,KW] -> dx [N,C,H,W] (also
 * conv_transpose2d): col [CKK,OHW] = w_g^T dy_ng, scattered back by col2im */
static void ASG_CAT(bwd_input, SUF)(const asg_cpu_call *c, const cgeo *g, int64_t n, T *buf,
                                    asg_cpu_pool *gp) {
  const T *dy = c->in[0], *w = c->in[1];
  T *dx = c->out;
  for (int64_t gi = 0; gi < g->G; gi++) {
    T *dxg = dx + (n * g->C + gi * g->Cg) * g->HW;
    T *col = g->direct ? dxg : buf;
    GEMM(true, false, g->CKK, g->OHW, g->Og, 1, w + gi * g->Og * g->CKK, g->CKK,
         dy + (n * g->O + gi * g->Og) * g->OHW, g->OHW, 0, col, g->OHW, gp);
    if (!g->direct) {
      memset(dxg, 0, sizeof(T) * (size_t)(g->Cg * g->HW));
      ASG_CAT(col2im, SUF)(g, col, dxg);
    }
  }
}

/* Image n of dy [N,O,OH,OW], x [N,C,H,W] -> adds dy_ng col_ng^T into
 * part [O,Cg,KH,KW] (a block's partial of dw, or dw itself with one block) */
static void ASG_CAT(bwd_weight, SUF)(const asg_cpu_call *c, const cgeo *g, int64_t n, T *buf,
                                     T *part, asg_cpu_pool *gp) {
  const T *dy = c->in[0], *x = c->in[1];
  for (int64_t gi = 0; gi < g->G; gi++) {
    const T *xg = x + (n * g->C + gi * g->Cg) * g->HW, *col = xg;
    if (!g->direct) {
      ASG_CAT(im2col, SUF)(g, xg, buf);
      col = buf;
    }
    GEMM(false, true, g->Og, g->CKK, g->OHW, 1, dy + (n * g->O + gi * g->Og) * g->OHW, g->OHW, col,
         g->OHW, 1, part + gi * g->Og * g->CKK, g->CKK, gp);
  }
}

/* dw [i] = sum over blocks t in order of part [t, i], for i in [lo, hi) */
static void ASG_CAT(sum_parts, SUF)(const T *part, T *dw, int64_t nw, int nb, int64_t lo,
                                    int64_t hi) {
  for (int64_t i = lo; i < hi; i++) {
    T s = part[i];
    for (int t = 1; t < nb; t++)
      s += part[t * nw + i];
    dw[i] = s;
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef T
#undef SUF
#undef GEMM
