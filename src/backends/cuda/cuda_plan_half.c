/* Planner: 16-bit operand copies shared between products (cuda_exec.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cuda/cuda_exec.h"

/* ---- shared 16-bit operand copies (bf16_matmul / fp16_matmul) ----
 * A product converts its f32 operands to bf16/fp16 before multiplying.
 * Many tensors feed several products (a layer's input feeds its forward
 * product and its weight gradient, an output gradient both backward
 * products, a weight its forward and its input-gradient product), so each
 * tensor read by two or more products is converted once, by the first,
 * into a copy the later ones read, as long as no step in between writes the
 * tensor's bytes. Copies live in one device block laid out by liveness
 * (first to last reader); without the memory for it, every product
 * converts into the workspace as before. */
typedef struct hc_copy {
  asg_cuda_range src;
  int first, last, uses;
  int end;          /* the step that overwrites the tensor (n: none) */
  int producer;     /* the step that writes the copy instead of the tensor (-1: none) */
  int chain, store; /* ... a fused chain's launch: its store writes the copy */
  size_t bytes, off;
  bool valid;
} hc_copy;

typedef struct hc_block {
  size_t off, size;
} hc_block;

/* A copy gets memory when two or more products read it or its producer
 * writes it; otherwise its one product converts into the workspace. */
static bool hc_shared(const hc_copy *c) { return c->uses >= 2 || c->producer >= 0; }

/* Free list kept sorted by offset, neighbours merged. */
static bool hc_release(hc_block **fl, int *n, int *cap, size_t off, size_t size) {
  if (*n == *cap) {
    int nc = *cap ? 2 * *cap : 16;
    hc_block *nb = realloc(*fl, sizeof *nb * (size_t)nc);
    if (!nb) return false;
    *fl = nb, *cap = nc;
  }
  int at = 0;
  while (at < *n && (*fl)[at].off < off)
    at++;
  memmove(*fl + at + 1, *fl + at, sizeof **fl * (size_t)(*n - at));
  (*fl)[at] = (hc_block){off, size};
  (*n)++;
  for (int i = *n - 1; i > 0; i--) /* merge adjacent blocks */
    if ((*fl)[i - 1].off + (*fl)[i - 1].size == (*fl)[i].off) {
      (*fl)[i - 1].size += (*fl)[i].size;
      memmove(*fl + i, *fl + i + 1, sizeof **fl * (size_t)(*n - i - 1));
      (*n)--;
    }
  return true;
}

void asg_cuda_half_free(half_copies *h) {
  if (h->base) cudaFree(h->base);
  free(h->off), free(h->mode), free(h->out_off);
  memset(h, 0, sizeof *h);
}

/* The step that can write copy k itself instead of its f32 tensor, or -1:
 * the tensor's last writer before the first product, a step of a kind that
 * can (the softmax CE backward, layernorm, permute, a unary op, or a fused elementwise
 * chain storing it: its launch step, *chain and *store set; not a step
 * folded into another launch, folded[]), an arena value
 * that is not a program output, and every step that reads the tensor before
 * it is overwritten a product reading copy k (so no one needs the f32
 * values; steps of the chain read it from registers). */
static int half_producer(const asg_resolved *r, const asg_cuda_fusion *ew, const char *folded,
                         const hc_copy *cp, int k, const int *use, int *chain, int *store) {
  const hc_copy *c = &cp[k];
  *chain = *store = -1;
  int w = c->first - 1;
  while (w >= 0 && !step_writes(r, w, c->src))
    w--;
  if (w < 0 || (folded && folded[w])) return -1; /* a step another launch computes writes f32 */
  const asg_step *s = &r->plan.steps[w];
  const asg_cuda_range o = asg_cuda_out_range(r, w);
  bool can = s->op == ASG_OP_SOFTMAX_CE_BWD || s->op == ASG_OP_LAYERNORM ||
             (s->op == ASG_OP_PERMUTE && asg_shape_numel(s->out.shape) < INT32_MAX) ||
             (asg__is_unary(s->op) && s->in[0].dtype == ASG_F32 &&
              asg_shape_equal(s->in[0].shape, s->out.shape));
  int producer = w, from = w + 1, ch = -1, st = -1;
  if (ew->role && ew->role[w] != 0) { /* in a chain: written by its launch */
    int l = w, first, last;
    while (l < r->plan.n_steps && ew->role[l] != 2)
      l++;
    const int j =
        l < r->plan.n_steps ? asg_cuda_chain_store(ew, ew->group[l], c->src.lo, &first, &last) : -1;
    if (j < 0) return -1;
    can = true, producer = l, from = last + 1, ch = ew->group[l], st = j;
  }
  if (!can || s->keep || s->out_buf.kind != ASG_BUF_ARENA || s->out.dtype != ASG_F32 ||
      o.lo != c->src.lo || o.hi != c->src.hi)
    return -1;
  for (int i = from; i <= c->end && i < r->plan.n_steps; i++) /* the overwriting step too */
    for (int j = 0; j < r->plan.steps[i].n_in && !noop_step(r, i); j++)
      if (asg_cuda_overlap(asg_cuda_in_range(r, i, j), c->src) && (j > 1 || use[2 * i + j] != k))
        return -1;
  *chain = ch, *store = st;
  return producer;
}

/* Plans the copies of a resolved plan whose products' .prepare states are
 * state[] (those that convert: asg_cuda_mm_low). */
asg_status asg_cuda_half_plan(const asg_resolved *r, void *const *state, asg_cuda_fusion *ew,
                              const char *folded, half_copies *h) {
  const int n = r->plan.n_steps;
  const char *env = getenv("ASG_CUDA_SHARE_HALF");
  if ((env && env[0] == '0') || !(r->plan.flags & (ASG_PLAN_BF16 | ASG_PLAN_F16))) return ASG_OK;
  hc_copy *cp = calloc(2 * (size_t)n + 1, sizeof *cp);
  int *use = malloc(sizeof(int) * (2 * (size_t)n + 1));
  int *active = malloc(sizeof(int) * (2 * (size_t)n + 1));
  int *order = malloc(sizeof(int) * (2 * (size_t)n + 1));
  hc_block *fl = NULL;
  int ncp = 0, nfl = 0, cap = 0, nact = 0;
  asg_status st = ASG_OK;
  h->off = calloc(2 * (size_t)n + 1, sizeof *h->off);
  h->mode = calloc(2 * (size_t)n + 1, 1);
  h->out_off = calloc((size_t)n + 1, sizeof *h->out_off);
  if (!cp || !use || !active || !order || !h->off || !h->mode || !h->out_off) {
    st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    use[2 * i] = use[2 * i + 1] = -1;
    if (asg_cuda_is_product(r->plan.steps[i].op) && asg_cuda_mm_low(state[i]) != ASG_F32)
      for (int j = 0; j < 2; j++) {
        const asg_cuda_range a = asg_cuda_in_range(r, i, j);
        int k = 0;
        while (k < ncp && !(cp[k].valid && cp[k].src.lo == a.lo && cp[k].src.hi == a.hi))
          k++;
        if (k == ncp) {
          const size_t bytes = (size_t)asg_shape_numel(r->plan.steps[i].in[j].shape) * 2;
          cp[ncp++] = (hc_copy){a, i, i, 0, n, -1, -1, -1, (bytes + 255) & ~(size_t)255, 0, true};
        }
        cp[k].last = i;
        cp[k].uses++;
        use[2 * i + j] = k;
      }
    for (int k = 0; k < ncp; k++) /* the step's writes end copies */
      if (cp[k].valid && step_writes(r, i, cp[k].src)) cp[k].valid = false, cp[k].end = i;
  }
  for (int k = 0; k < ncp; k++)
    cp[k].producer = half_producer(r, ew, folded, cp, k, use, &cp[k].chain, &cp[k].store);
  /* offsets of the copies read more than once (or written by their
   * producer), in order of the first step that writes them */
  int nord = 0;
  for (int k = 0; k < ncp; k++) {
    if (!hc_shared(&cp[k])) continue;
    if (cp[k].producer >= 0) cp[k].first = cp[k].producer; /* live from its writer on */
    int at = nord++;
    while (at > 0 && cp[order[at - 1]].first > cp[k].first) /* insertion: a stable sort */
      order[at] = order[at - 1], at--;
    order[at] = k;
  }
  size_t top = 0;
  for (int oi = 0; oi < nord; oi++) {
    const int k = order[oi];
    for (int a = 0; a < nact; a++) /* copies whose last reader ran before this one is made */
      if (cp[active[a]].last < cp[k].first) {
        if (!hc_release(&fl, &nfl, &cap, cp[active[a]].off, cp[active[a]].bytes)) {
          st = asg__error(ASG_ERR_OOM, "cuda: out of memory");
          goto done;
        }
        active[a--] = active[--nact];
      }
    int best = -1;
    for (int b = 0; b < nfl; b++)
      if (fl[b].size >= cp[k].bytes && (best < 0 || fl[b].size < fl[best].size)) best = b;
    if (best >= 0) {
      cp[k].off = fl[best].off;
      fl[best].off += cp[k].bytes, fl[best].size -= cp[k].bytes;
    } else {
      cp[k].off = top;
      top += cp[k].bytes;
    }
    active[nact++] = k;
  }
  if (top && cudaMalloc(&h->base, top) != cudaSuccess) {
    cudaGetLastError(); /* no room: every product converts into the workspace */
    h->base = NULL;
    goto done;
  }
  for (int k = 0; h->base && k < ncp; k++) {
    if (!hc_shared(&cp[k])) continue;
    h->copies++, h->reads += cp[k].uses;
    if (cp[k].producer >= 0 && cp[k].chain >= 0)
      asg_cuda_chain_half(ew, cp[k].chain, cp[k].store, (char *)h->base + cp[k].off,
                          r->plan.flags & ASG_PLAN_BF16);
    else if (cp[k].producer >= 0)
      h->out_off[cp[k].producer] = cp[k].off + 1; /* 0: none */
    h->produced += cp[k].producer >= 0;
  }
  h->bytes = h->base ? top : 0;
  for (int i = 0; h->base && i < 2 * n; i++) {
    const int k = use[i];
    if (k < 0 || !hc_shared(&cp[k])) continue;
    h->off[i] = cp[k].off;
    h->mode[i] = cp[k].producer < 0 && i / 2 == cp[k].first && (i % 2 == 0 || use[i - 1] != k)
                     ? ASG_CUDA_HALF_MAKE
                     : ASG_CUDA_HALF_READY;
  }
done:
  free(cp), free(use), free(active), free(order), free(fl);
  return st;
}
