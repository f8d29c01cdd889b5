/* Weights streamed into L2 ahead of the skinny products that read them
 * (cuda_exec.h). A decode step is a chain of small kernels: a product
 * (cuda_gemv.cu) reads its weights once from memory, and the kernels between
 * two products (norms, cache writes, attention) read little, so the memory
 * idles there. Each product therefore also prefetches the weights of the
 * products after it, up to a window past the end of its own, each byte once:
 * with the products' weights laid end to end in schedule order (the stream),
 * product i takes [max(end_i, reached), end_i + window) where reached is how
 * far the products before it went. The window (ASG_CUDA_PREFETCH_MB, default
 * 16 MiB; 0: off) bounds what waits in L2 (50 MiB on an H100) besides the
 * product's own weights. A prefetch is a hint: it never changes a result. */
#include <stdlib.h>

#include "backends/cuda/cuda_exec.h"

static uint64_t window_bytes(void) {
  const char *e = getenv("ASG_CUDA_PREFETCH_MB");
  if (!e || !*e) return (uint64_t)16 << 20;
  char *end;
  const long mb = strtol(e, &end, 10);
  return *end || mb <= 0 ? 0 : (uint64_t)mb << 20;
}

asg_status asg_cuda_prefetch_plan(const asg_resolved *r, const char *is_gemv, asg_cuda_pf **out) {
  *out = NULL;
  const uint64_t window = window_bytes();
  const int n = r->plan.n_steps;
  int count = 0;
  for (int i = 0; i < n; i++)
    count += is_gemv[i] != 0;
  if (!window || count < 2) return ASG_OK;
  int *prod = malloc(sizeof *prod * (size_t)count);    /* the products' steps, in order */
  uint64_t *off = malloc(sizeof *off * (size_t)count); /* where each W starts in the stream */
  asg_cuda_pf *pf = calloc((size_t)n, sizeof *pf);
  if (!prod || !off || !pf) {
    free(prod), free(off), free(pf);
    return asg__error(ASG_ERR_OOM, "cuda: out of memory");
  }
  uint64_t total = 0;
  for (int i = 0, k = 0; i < n; i++)
    if (is_gemv[i]) {
      prod[k] = i, off[k++] = total;
      total += asg__tdesc_bytes(&r->plan.steps[i].in[1]);
    }
  uint64_t reached = 0;
  for (int k = 0; k + 1 < count; k++) {
    const uint64_t end = off[k + 1]; /* of product k's own weights */
    uint64_t lo = end > reached ? end : reached;
    const uint64_t hi = end + window < total ? end + window : total;
    asg_cuda_pf *p = &pf[prod[k]];
    for (int j = k + 1; j < count && lo < hi && p->n < ASG_CUDA_PF_MAX; j++) {
      const uint64_t wend = j + 1 < count ? off[j + 1] : total;
      if (wend <= lo) continue;
      const uint64_t take = (hi < wend ? hi : wend) - lo;
      p->p[p->n] = (const char *)r->in[prod[j]][1] + (lo - off[j]);
      p->bytes[p->n++] = take;
      lo += take;
    }
    if (lo > reached) reached = lo;
  }
  free(prod), free(off);
  *out = pf;
  return ASG_OK;
}
