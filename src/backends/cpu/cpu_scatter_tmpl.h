/* The scatter_add kernel for one element type, included by cpu_index.c
 * once per type with SUF and T defined; they are undefined at the end. No
 * include guard: it is meant to be included more than once. */
#define ASG_CAT_(a, b) a##_##b
#define ASG_CAT(a, b) ASG_CAT_(a, b)

/* Units [lo, hi): (outer slice o, chunk of its n target rows [i0, i1)) of
 * y [outer, n, inner]: the chunk's rows of x, then y[o, idx[j]] +=
 * src[o, j] for every j of idx [m] that lands there, in j order. */
static void ASG_CAT(scatter_add, SUF)(const axis_job *jb, int64_t lo, int64_t hi) {
  const asg_cpu_call *c = jb->c;
  const asg_dtype it = c->s->in[1].dtype;
  const void *idx = c->in[1];
  const int64_t n = jb->n, m = jb->m, inner = jb->inner, nch = jb->nch;
  const size_t rb = jb->rb;
  for (int64_t u = lo; u < hi; u++) {
    int64_t o = u / nch, ch = u % nch;
    int64_t i0 = ch * n / nch, i1 = (ch + 1) * n / nch;
    memcpy((char *)c->out + (size_t)(o * n + i0) * rb,
           (const char *)c->in[0] + (size_t)(o * n + i0) * rb, (size_t)(i1 - i0) * rb);
    for (int64_t j = 0; j < m; j++) {
      int64_t i = idx_at(idx, it, j);
      if (i < i0 || i >= i1) continue;
      T *dr = (T *)c->out + (o * n + i) * inner;
      const T *sr = (const T *)c->in[2] + (o * m + j) * inner;
      for (int64_t k = 0; k < inner; k++)
        dr[k] += sr[k];
    }
  }
}

#undef ASG_CAT
#undef ASG_CAT_
#undef SUF
#undef T
