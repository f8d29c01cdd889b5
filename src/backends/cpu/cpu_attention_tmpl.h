/* The GEMM-based attention kernels (forward, query and key/value gradients) for one element type,
 * included by cpu_attention.c with SUF, T, EXP, LOG, GEMM defined (undefined at the end); f64 uses
 * them, f32 has its own kernels in lanes (cpu_attention_f32.c).
 * No include guard: it is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* ATTENTION (o; its lse too as its further output when the statistics pass
 * gave it one) and ATTENTION_LSE (lse), one block of queries per task:
 * S = scale Q K^T over the block's visible keys, softmax rows, O = P V. */
static void ASG_CAT(fwd, SUF)(const asg_cpu_call *c, const att_dims *a, bool lse_only, int64_t lo,
                              int64_t hi, int tid) {
  const T *q = c->in[0], *k = c->in[1], *v = lse_only ? NULL : c->in[2];
  T *out = c->out;
  /* an ATTENTION step's further output is its lse (src/passes/fuse_stats.c) */
  T *lse = lse_only ? out : c->s->n_aux ? (T *)c->aux[0] : NULL; /* [.., Tq] */
  const T sc = (T)c->s->attr.f[0];
  const int64_t Tq = a->Tq, Tk = a->Tk, D = a->D, nbq = (Tq + ASG_ATT_BLK - 1) / ASG_ATT_BLK;
  const int64_t ldw = 2 * ASG_ATT_BLK * (Tq > Tk ? Tq : Tk);
  for (int64_t u = lo; u < hi; u++) {
    int64_t b = u / nbq, i0 = (u % nbq) * ASG_ATT_BLK,
            nq = Tq - i0 < ASG_ATT_BLK ? Tq - i0 : ASG_ATT_BLK;
    int64_t nkb = att_n_keys(a, i0 + nq - 1); /* the block's last row sees the most keys */
    const T *qb = q + (b * Tq + i0) * D, *kb = k + b * Tk * D;
    const T *mr = a->mask >= 0 ? (const T *)c->in[a->mask] + (b / a->G) * Tk : NULL;
    /* keys past the mask's last visible one are never read (a KV cache
     * filled up to its current length costs that length, not its size) */
    while (mr && nkb > 0 && mr[nkb - 1] == 0)
      nkb--;
    if (nkb == 0) { /* no visible key in the block: o = 0, lse = -inf */
      for (int64_t r = 0; r < nq; r++) {
        if (lse) lse[b * Tq + i0 + r] = -(T)INFINITY;
        if (!lse_only)
          for (int64_t d = 0; d < D; d++)
            out[(b * Tq + i0 + r) * D + d] = 0;
      }
      continue;
    }
    T *S = (T *)c->ws + tid * ldw; /* [nq, nkb] */
    GEMM(false, true, nq, nkb, D, sc, qb, D, kb, D, 0, S, nkb, NULL);
    for (int64_t r = 0; r < nq; r++) {
      T *row = S + r * nkb;
      int64_t nk = att_n_keys(a, i0 + r) < nkb ? att_n_keys(a, i0 + r) : nkb, first = 0;
      while (mr && first < nk && mr[first] == 0) /* keys the mask hides */
        first++;
      if (first == nk) { /* no visible key: o = 0, lse = -inf */
        for (int64_t j = 0; j < nkb; j++)
          row[j] = 0;
        if (lse) lse[b * Tq + i0 + r] = -(T)INFINITY;
        continue;
      }
      T m = row[first], l = 0;
      for (int64_t j = first + 1; j < nk; j++)
        if ((!mr || mr[j] != 0) && (row[j] > m || row[j] != row[j])) m = row[j];
      for (int64_t j = 0; j < nk; j++) {
        row[j] = !mr || mr[j] != 0 ? EXP(row[j] - m) : 0;
        l += row[j];
      }
      if (lse) lse[b * Tq + i0 + r] = m + LOG(l);
      if (lse_only) continue;
      T inv = (T)1 / l;
      for (int64_t j = 0; j < nk; j++)
        row[j] *= inv;
      for (int64_t j = nk; j < nkb; j++) /* causal */
        row[j] = 0;
    }
    if (!lse_only)
      GEMM(false, false, nq, D, nkb, 1, S, nkb, v + b * Tk * D, D, 0, out + (b * Tq + i0) * D, D,
           NULL);
  }
}
/* ATTENTION_BWD_Q, one block of queries per task: P = exp(scale Q K^T - lse),
 * dP = dO V^T, dS = P (dP - delta), dQ = scale dS K. */
static void ASG_CAT(bwd_q, SUF)(const asg_cpu_call *c, const att_dims *a, int64_t lo, int64_t hi,
                                int tid) {
  const T *q = c->in[0], *k = c->in[1], *v = c->in[2], *dO = c->in[3], *lse = c->in[4],
          *dl = c->in[5];
  const T sc = (T)c->s->attr.f[0];
  const int64_t Tq = a->Tq, Tk = a->Tk, D = a->D, nbq = (Tq + ASG_ATT_BLK - 1) / ASG_ATT_BLK;
  const int64_t ldw = 2 * ASG_ATT_BLK * (Tq > Tk ? Tq : Tk);
  for (int64_t u = lo; u < hi; u++) {
    int64_t b = u / nbq, i0 = (u % nbq) * ASG_ATT_BLK,
            nq = Tq - i0 < ASG_ATT_BLK ? Tq - i0 : ASG_ATT_BLK;
    int64_t nkb = att_n_keys(a, i0 + nq - 1), r0 = b * Tq + i0;
    const T *kb = k + b * Tk * D;
    T *P = (T *)c->ws + tid * ldw, *dP = P + ASG_ATT_BLK * nkb; /* [nq, nkb] each */
    GEMM(false, true, nq, nkb, D, sc, q + r0 * D, D, kb, D, 0, P, nkb, NULL);
    GEMM(false, true, nq, nkb, D, 1, dO + r0 * D, D, v + b * Tk * D, D, 0, dP, nkb, NULL);
    const T *mr = a->mask >= 0 ? (const T *)c->in[a->mask] + (b / a->G) * Tk : NULL;
    for (int64_t r = 0; r < nq; r++) {
      T *pr = P + r * nkb, *dpr = dP + r * nkb, li = lse[r0 + r], di = dl[r0 + r];
      int64_t nk = att_n_keys(a, i0 + r);
      for (int64_t j = 0; j < nk; j++) /* dS */
        pr[j] = !mr || mr[j] != 0 ? EXP(pr[j] - li) * (dpr[j] - di) : 0;
      for (int64_t j = nk; j < nkb; j++)
        pr[j] = 0;
    }
    GEMM(false, false, nq, D, nkb, sc, P, nkb, kb, D, 0, (T *)c->out + r0 * D, D, NULL);
  }
}
/* ATTENTION_BWD_KV, one block of keys per task, over the queries that see
 * any of them (causal: i >= j0): P^T = exp(scale K Q^T - lse), dV = P^T dO,
 * dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK = scale dS^T Q. */
static void ASG_CAT(bwd_kv, SUF)(const asg_cpu_call *c, const att_dims *a, int64_t lo, int64_t hi,
                                 int tid) {
  const T *q = c->in[0], *k = c->in[1], *v = c->in[2], *dO = c->in[3], *lse = c->in[4],
          *dl = c->in[5];
  const T sc = (T)c->s->attr.f[0];
  const int64_t Tq = a->Tq, Tk = a->Tk, D = a->D, nbk = (Tk + ASG_ATT_BLK - 1) / ASG_ATT_BLK;
  const int64_t ldw = 2 * ASG_ATT_BLK * (Tq > Tk ? Tq : Tk);
  T *dk = c->out, *dv = (T *)c->out + a->NB * Tk * D; /* dkv [2, NB, Tk, D] */
  for (int64_t u = lo; u < hi; u++) {
    int64_t b = u / nbk, j0 = (u % nbk) * ASG_ATT_BLK,
            nk = Tk - j0 < ASG_ATT_BLK ? Tk - j0 : ASG_ATT_BLK;
    int64_t ilo = a->causal ? j0 : 0, nqv = Tq - ilo, c0 = b * Tk + j0, r0 = b * Tq + ilo;
    if (nqv <= 0) { /* no query sees these keys */
      memset(dk + c0 * D, 0, sizeof(T) * (size_t)(nk * D));
      memset(dv + c0 * D, 0, sizeof(T) * (size_t)(nk * D));
      continue;
    }
    T *P = (T *)c->ws + tid * ldw, *dP = P + ASG_ATT_BLK * nqv; /* [nk, nqv] each */
    GEMM(false, true, nk, nqv, D, sc, k + c0 * D, D, q + r0 * D, D, 0, P, nqv, NULL);
    GEMM(false, true, nk, nqv, D, 1, v + c0 * D, D, dO + r0 * D, D, 0, dP, nqv, NULL);
    const T *mr = a->mask >= 0 ? (const T *)c->in[a->mask] + (b / a->G) * Tk : NULL;
    for (int64_t jj = 0; jj < nk; jj++) {
      T *pr = P + jj * nqv, *dpr = dP + jj * nqv;
      const bool shown = !mr || mr[j0 + jj] != 0;
      for (int64_t ii = 0; ii < nqv; ii++) {
        bool vis = shown && (!a->causal || j0 + jj <= ilo + ii);
        pr[ii] = vis ? EXP(pr[ii] - lse[r0 + ii]) : 0;
        dpr[ii] = pr[ii] * (dpr[ii] - dl[r0 + ii]); /* dS^T */
      }
    }
    GEMM(false, false, nk, D, nqv, 1, P, nqv, dO + r0 * D, D, 0, dv + c0 * D, D, NULL);
    GEMM(false, false, nk, D, nqv, sc, dP, nqv, q + r0 * D, D, 0, dk + c0 * D, D, NULL);
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
#undef EXP
#undef LOG
#undef GEMM
