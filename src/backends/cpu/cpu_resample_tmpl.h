/* The pad and upsample kernels for one element type, included by
 * cpu_resample.c once per type with T (the type) and SUF (its name suffix)
 * defined; they are undefined at the end. No include guard: it is meant to
 * be included more than once. Maps and gather order: runtime/resample.h. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* PAD: output rows [lo, hi) (a row: the last dim) */
static void ASG_CAT(pad_rows, SUF)(const asg_pad_plan *p, const T *x, T *y, int64_t lo,
                                   int64_t hi) {
  const int nd = p->nd, last = nd - 1;
  const int64_t L = p->out[last], IL = p->in[last];
  const T value = (T)p->value;
  for (int64_t row = lo; row < hi; row++) {
    T *yr = y + row * L;
    int64_t base = 0, rem = row, stride = 1;
    bool fill = false;
    /* the row's input offset: dims last-1 .. 0, innermost first */
    for (int d = last - 1; d >= 0; d--) {
      int64_t o = rem % p->out[d], c = pad_src(p->mode, o, p->before[d], p->in[d]);
      rem /= p->out[d];
      if (c < 0) {
        fill = true;
        break;
      }
      base += c * stride;
      stride *= p->in[d];
    }
    if (fill) {
      for (int64_t j = 0; j < L; j++)
        yr[j] = value;
      continue;
    }
    const T *xr = x + base * IL;
    for (int64_t j = 0; j < L; j++) {
      int64_t c = pad_src(p->mode, j, p->before[last], IL);
      yr[j] = c < 0 ? value : xr[c];
    }
  }
}

/* PAD_BWD: input (dx) rows [lo, hi); each element sums dy over its readers,
 * an odometer over the ranges of every dim, the last dim innermost */
static void ASG_CAT(pad_bwd_rows, SUF)(const asg_pad_plan *p, const T *dy, T *dx, int64_t lo,
                                       int64_t hi) {
  const int nd = p->nd, last = nd - 1;
  const int64_t IL = p->in[last];
  int64_t rlo[ASG_MAX_DIMS][3], rhi[ASG_MAX_DIMS][3], ost[ASG_MAX_DIMS];
  int nr[ASG_MAX_DIMS];
  ost[last] = 1;
  for (int d = last - 1; d >= 0; d--)
    ost[d] = ost[d + 1] * p->out[d + 1];
  for (int64_t row = lo; row < hi; row++) {
    T *dr = dx + row * IL;
    int64_t rem = row;
    bool none = false;
    for (int d = last - 1; d >= 0; d--) {
      int64_t c = rem % p->in[d];
      rem /= p->in[d];
      nr[d] = pad_readers(p->mode, c, p->before[d], p->in[d], p->out[d], rlo[d], rhi[d]);
      none = none || !nr[d];
    }
    for (int64_t j = 0; j < IL; j++) {
      nr[last] = pad_readers(p->mode, j, p->before[last], IL, p->out[last], rlo[last], rhi[last]);
      T acc = 0;
      if (!none && nr[last]) {
        int k[ASG_MAX_DIMS];
        int64_t o[ASG_MAX_DIMS];
        for (int d = 0; d < nd; d++)
          k[d] = 0, o[d] = rlo[d][0];
        for (;;) {
          int64_t off = 0;
          for (int d = 0; d < nd; d++)
            off += o[d] * ost[d];
          acc += dy[off];
          int d = last;
          for (; d >= 0; d--) { /* next position: innermost dim first */
            if (++o[d] < rhi[d][k[d]]) break;
            if (++k[d] < nr[d]) {
              o[d] = rlo[d][k[d]];
              break;
            }
            k[d] = 0, o[d] = rlo[d][0];
          }
          if (d < 0) break;
        }
      }
      dr[j] = acc;
    }
  }
}

/* Linear taps of output o of a dim (in elements, ratio r) */
typedef struct ASG_CAT(taps, SUF) {
  int64_t i0, i1;
  T l0, l1;
} ASG_CAT(taps, SUF);

static inline ASG_CAT(taps, SUF) ASG_CAT(lin_taps, SUF)(T r, bool align, int64_t o, int64_t in) {
  ASG_CAT(taps, SUF) t;
  T real = align ? r * (T)o : r * ((T)o + (T)0.5) - (T)0.5;
  if (!align && real < 0) real = 0;
  t.i0 = (int64_t)real;
  if (t.i0 > in - 1) t.i0 = in - 1;
  T l1 = real - (T)t.i0;
  t.l1 = l1 < 0 ? 0 : l1 > 1 ? 1 : l1;
  t.l0 = (T)1 - t.l1;
  t.i1 = t.i0 + (t.i0 < in - 1 ? 1 : 0);
  return t;
}

/* The smallest o in [0, out] whose i0 is >= t (out if none). */
static int64_t ASG_CAT(lin_first, SUF)(T r, bool align, int64_t t, int64_t in, int64_t out) {
  if (t <= 0) return 0;
  if (t >= in) return out;
  double e = r > 0 ? ceil(align ? (double)t / r : ((double)t + 0.5) / r - 0.5) : (double)out;
  int64_t o = e <= 0 ? 0 : e >= (double)out ? out : (int64_t)e;
  while (o > 0 && ASG_CAT(lin_taps, SUF)(r, align, o - 1, in).i0 >= t)
    o--;
  while (o < out && ASG_CAT(lin_taps, SUF)(r, align, o, in).i0 < t)
    o++;
  return o;
}

/* Weight of input i in output o of one dim. */
static inline T ASG_CAT(lin_weight, SUF)(T r, bool align, int64_t o, int64_t i, int64_t in) {
  ASG_CAT(taps, SUF) t = ASG_CAT(lin_taps, SUF)(r, align, o, in);
  return (t.i0 == i ? t.l0 : (T)0) + (t.i1 == i ? t.l1 : (T)0);
}

/* UPSAMPLE: output rows [lo, hi) of [planes * OH, OW] */
static void ASG_CAT(up_rows, SUF)(const asg_upsample_plan *p, const T *x, T *y, int64_t lo,
                                  int64_t hi, T rh, T rw) {
  for (int64_t row = lo; row < hi; row++) {
    int64_t pl = row / p->OH, oh = row % p->OH;
    const T *xp = x + pl * p->H * p->W;
    T *yr = y + row * p->OW;
    if (p->mode == ASG_UPSAMPLE_NEAREST) {
      const T *xr = xp + near_src(p->rn[0], oh, p->H) * p->W;
      for (int64_t ow = 0; ow < p->OW; ow++)
        yr[ow] = xr[near_src(p->rn[1], ow, p->W)];
      continue;
    }
    ASG_CAT(taps, SUF) th = ASG_CAT(lin_taps, SUF)(rh, p->align, oh, p->H);
    const T *x0 = xp + th.i0 * p->W, *x1 = xp + th.i1 * p->W;
    for (int64_t ow = 0; ow < p->OW; ow++) {
      ASG_CAT(taps, SUF) tw = ASG_CAT(lin_taps, SUF)(rw, p->align, ow, p->W);
      yr[ow] = th.l0 * (tw.l0 * x0[tw.i0] + tw.l1 * x0[tw.i1]) +
               th.l1 * (tw.l0 * x1[tw.i0] + tw.l1 * x1[tw.i1]);
    }
  }
}

/* UPSAMPLE_BWD: input rows [lo, hi) of [planes * H, W] */
static void ASG_CAT(up_bwd_rows, SUF)(const asg_upsample_plan *p, const T *dy, T *dx, int64_t lo,
                                      int64_t hi, T rh, T rw) {
  const bool near = p->mode == ASG_UPSAMPLE_NEAREST, al = p->align;
  for (int64_t row = lo; row < hi; row++) {
    int64_t pl = row / p->H, ih = row % p->H;
    const T *dyp = dy + pl * p->OH * p->OW;
    T *dr = dx + row * p->W;
    int64_t hlo = near ? near_first(p->rn[0], ih, p->H, p->OH)
                       : ASG_CAT(lin_first, SUF)(rh, al, ih - 1, p->H, p->OH);
    int64_t hhi = near ? near_first(p->rn[0], ih + 1, p->H, p->OH)
                       : ASG_CAT(lin_first, SUF)(rh, al, ih + 1, p->H, p->OH);
    for (int64_t iw = 0; iw < p->W; iw++) {
      int64_t wlo = near ? near_first(p->rn[1], iw, p->W, p->OW)
                         : ASG_CAT(lin_first, SUF)(rw, al, iw - 1, p->W, p->OW);
      int64_t whi = near ? near_first(p->rn[1], iw + 1, p->W, p->OW)
                         : ASG_CAT(lin_first, SUF)(rw, al, iw + 1, p->W, p->OW);
      T acc = 0;
      for (int64_t oh = hlo; oh < hhi; oh++) {
        const T *g = dyp + oh * p->OW;
        T s = 0;
        if (near) {
          for (int64_t ow = wlo; ow < whi; ow++)
            s += g[ow];
          acc += s;
          continue;
        }
        for (int64_t ow = wlo; ow < whi; ow++)
          s += ASG_CAT(lin_weight, SUF)(rw, al, ow, iw, p->W) * g[ow];
        acc += ASG_CAT(lin_weight, SUF)(rh, al, oh, ih, p->H) * s;
      }
      dr[iw] = acc;
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef T
#undef SUF
