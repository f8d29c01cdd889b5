/* The pooling kernels for one element type, included by cpu_pooling.c
 * once per type with T (the type) and SUF (its name suffix) defined; they
 * are undefined at the end. No include guard: it is meant to be included
 * more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Flat index in the plane of the window's first maximum (-1: none). */
static int64_t ASG_CAT(argmax, SUF)(const pgeo *p, const T *x, int64_t oh, int64_t ow) {
  int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw, bi = -1;
  if (p->KH == 2 && p->KW == 2 && p->dh == 1 && p->dw == 1 && h0 >= 0 && w0 >= 0 && h0 + 1 < p->H &&
      w0 + 1 < p->W) {
    /* the common 2x2 window inside the plane: same rule, no bound checks */
    int64_t i0 = h0 * p->W + w0, idx[4] = {i0, i0 + 1, i0 + p->W, i0 + p->W + 1};
    T b = x[i0];
    bi = i0;
    for (int k = 1; k < 4; k++) {
      T v = x[idx[k]];
      if (v > b || (v != v && b == b)) b = v, bi = idx[k];
    }
    return bi;
  }
  T best = -INFINITY;
  int64_t khl, khh, kwl, kwh; /* the taps inside the plane (row-major order) */
  pool_taps(h0, p->KH, p->dh, p->H, &khl, &khh);
  pool_taps(w0, p->KW, p->dw, p->W, &kwl, &kwh);
  for (int64_t kh = khl; kh < khh; kh++)
    for (int64_t kw = kwl; kw < kwh; kw++) {
      int64_t i = (h0 + kh * p->dh) * p->W + w0 + kw * p->dw;
      T v = x[i];
      if (bi < 0 || v > best || (v != v && best == best)) best = v, bi = i;
    }
  return bi;
}
/* x [N,C,H,W] -> y [N,C,OH,OW] */
static void ASG_CAT(maxpool, SUF)(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  for (int64_t pl = lo; pl < hi; pl++) {
    const T *x = (const T *)c->in[0] + pl * p->H * p->W;
    T *y = (T *)c->out + pl * p->OH * p->OW;
    for (int64_t oh = 0; oh < p->OH; oh++)
      for (int64_t ow = 0; ow < p->OW; ow++) {
        int64_t i = ASG_CAT(argmax, SUF)(p, x, oh, ow);
        y[oh * p->OW + ow] = i < 0 ? (T)-INFINITY : x[i];
      }
  }
}
/* dy [N,C,OH,OW], x [N,C,H,W] -> dx [N,C,H,W] */
static void ASG_CAT(maxpool_bwd, SUF)(const asg_cpu_call *c, const pgeo *p, int64_t lo,
                                      int64_t hi) {
  for (int64_t pl = lo; pl < hi; pl++) {
    const T *x = (const T *)c->in[1] + pl * p->H * p->W;
    const T *dy = (const T *)c->in[0] + pl * p->OH * p->OW;
    T *dx = (T *)c->out + pl * p->H * p->W;
    memset(dx, 0, sizeof(T) * (size_t)(p->H * p->W));
    for (int64_t oh = 0; oh < p->OH; oh++)
      for (int64_t ow = 0; ow < p->OW; ow++) {
        int64_t i = ASG_CAT(argmax, SUF)(p, x, oh, ow);
        if (i >= 0) dx[i] += dy[oh * p->OW + ow];
      }
  }
}
/* 1 / the divisor of window (oh, ow); full: 1 / (KH*KW), the common case.
 * 0 for a window without cells (PyTorch writes 0 there). */
static inline T ASG_CAT(avg_inv, SUF)(const pgeo *p, int64_t oh, int64_t ow, T full) {
  int64_t div = avg_divisor(p, oh, ow);
  return div == p->KH * p->KW ? full : div > 0 ? (T)(1.0 / (double)div) : (T)0;
}
/* x [N,C,H,W] -> y [N,C,OH,OW]; padding counts as zeros (divisor: avg_divisor) */
static void ASG_CAT(avgpool, SUF)(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  const T full = (T)(1.0 / (double)(p->KH * p->KW));
  for (int64_t pl = lo; pl < hi; pl++) {
    const T *x = (const T *)c->in[0] + pl * p->H * p->W;
    T *y = (T *)c->out + pl * p->OH * p->OW;
    for (int64_t oh = 0; oh < p->OH; oh++)
      for (int64_t ow = 0; ow < p->OW; ow++) {
        int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;
        T s = 0;
        for (int64_t h = h0 < 0 ? 0 : h0; h < h0 + p->KH && h < p->H; h++)
          for (int64_t w = w0 < 0 ? 0 : w0; w < w0 + p->KW && w < p->W; w++)
            s += x[h * p->W + w];
        y[oh * p->OW + ow] = s * ASG_CAT(avg_inv, SUF)(p, oh, ow, full);
      }
  }
}
/* dy [N,C,OH,OW] -> dx [N,C,H,W] */
static void ASG_CAT(avgpool_bwd, SUF)(const asg_cpu_call *c, const pgeo *p, int64_t lo,
                                      int64_t hi) {
  const T full = (T)(1.0 / (double)(p->KH * p->KW));
  for (int64_t pl = lo; pl < hi; pl++) {
    const T *dy = (const T *)c->in[0] + pl * p->OH * p->OW;
    T *dx = (T *)c->out + pl * p->H * p->W;
    memset(dx, 0, sizeof(T) * (size_t)(p->H * p->W));
    for (int64_t oh = 0; oh < p->OH; oh++)
      for (int64_t ow = 0; ow < p->OW; ow++) {
        int64_t h0 = oh * p->sh - p->ph, w0 = ow * p->sw - p->pw;
        T g = dy[oh * p->OW + ow] * ASG_CAT(avg_inv, SUF)(p, oh, ow, full);
        for (int64_t h = h0 < 0 ? 0 : h0; h < h0 + p->KH && h < p->H; h++)
          for (int64_t w = w0 < 0 ? 0 : w0; w < w0 + p->KW && w < p->W; w++)
            dx[h * p->W + w] += g;
      }
  }
}
/* x [N,C,H,W] -> y [N,C,OH,OW], PyTorch bins */
static void ASG_CAT(adaptive, SUF)(const asg_cpu_call *c, const pgeo *p, int64_t lo, int64_t hi) {
  for (int64_t pl = lo; pl < hi; pl++) {
    const T *x = (const T *)c->in[0] + pl * p->H * p->W;
    T *y = (T *)c->out + pl * p->OH * p->OW;
    for (int64_t oh = 0; oh < p->OH; oh++) {
      int64_t hs = oh * p->H / p->OH, he = ((oh + 1) * p->H + p->OH - 1) / p->OH;
      for (int64_t ow = 0; ow < p->OW; ow++) {
        int64_t ws = ow * p->W / p->OW, we = ((ow + 1) * p->W + p->OW - 1) / p->OW;
        T s = 0;
        for (int64_t h = hs; h < he; h++)
          for (int64_t w = ws; w < we; w++)
            s += x[h * p->W + w];
        y[oh * p->OW + ow] = s / (T)((he - hs) * (we - ws));
      }
    }
  }
}
/* dy [N,C,OH,OW] -> dx [N,C,H,W] */
static void ASG_CAT(adaptive_bwd, SUF)(const asg_cpu_call *c, const pgeo *p, int64_t lo,
                                       int64_t hi) {
  for (int64_t pl = lo; pl < hi; pl++) {
    const T *dy = (const T *)c->in[0] + pl * p->OH * p->OW;
    T *dx = (T *)c->out + pl * p->H * p->W;
    memset(dx, 0, sizeof(T) * (size_t)(p->H * p->W));
    for (int64_t oh = 0; oh < p->OH; oh++) {
      int64_t hs = oh * p->H / p->OH, he = ((oh + 1) * p->H + p->OH - 1) / p->OH;
      for (int64_t ow = 0; ow < p->OW; ow++) {
        int64_t ws = ow * p->W / p->OW, we = ((ow + 1) * p->W + p->OW - 1) / p->OW;
        T g = dy[oh * p->OW + ow] / (T)((he - hs) * (we - ws));
        for (int64_t h = hs; h < he; h++)
          for (int64_t w = ws; w < we; w++)
            dx[h * p->W + w] += g;
      }
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef T
#undef SUF
