/* Layout planning shared by the backends (see layout.h). */
#include "runtime/layout.h"

#include <string.h>

void asg__split_axis(asg_shape s, int a, int64_t *outer, int64_t *inner) {
  int64_t o = 1, in = 1;
  for (int d = 0; d < a; d++)
    o *= s.dims[d];
  for (int d = a + 1; d < s.ndim; d++)
    in *= s.dims[d];
  *outer = o;
  *inner = in;
}

void asg__reduce_plan(asg_reduce_plan *p, asg_shape s, int64_t mask) {
  int64_t st[ASG_MAX_DIMS];
  asg__strides(s, st);
  p->nk = p->nr = 0;
  p->nout = p->nred = 1;
  int last = -1; /* kind of the previous non-unit dim: 0 kept, 1 reduced */
  for (int d = 0; d < s.ndim; d++) {
    if (s.dims[d] == 1) continue;
    int red = (int)((mask >> d) & 1);
    int64_t *dims = red ? p->rd : p->kd, *strd = red ? p->rs : p->ks;
    int *n = red ? &p->nr : &p->nk;
    if (last == red && *n > 0 && strd[*n - 1] == st[d] * s.dims[d]) {
      dims[*n - 1] *= s.dims[d];
      strd[*n - 1] = st[d];
    } else {
      dims[*n] = s.dims[d];
      strd[*n] = st[d];
      (*n)++;
    }
    last = red;
    if (red)
      p->nred *= s.dims[d];
    else
      p->nout *= s.dims[d];
  }
  if (p->nr == 0) { /* reducing only size-1 dims */
    p->rd[0] = 1;
    p->rs[0] = 0;
    p->nr = 1;
  }
}

void asg__permute_plan(asg_permute_plan *p, asg_shape in, const int64_t *perm) {
  memset(p, 0, sizeof *p);
  int map[ASG_MAX_DIMS], k = 0, m = 0;
  for (int d = 0; d < in.ndim; d++) {
    map[d] = in.dims[d] == 1 ? -1 : k;
    if (in.dims[d] != 1) p->dims[k++] = in.dims[d];
  }
  for (int d = 0; d < in.ndim; d++)
    if (map[perm[d]] >= 0) p->pm[m++] = map[perm[d]];
  p->nd = k;
  for (bool merged = true; merged;) {
    merged = false;
    for (int j = 0; j + 1 < p->nd; j++) {
      int a = p->pm[j];
      if (p->pm[j + 1] != a + 1) continue;
      /* input dims a, a+1 are adjacent in the output too: one dim */
      p->dims[a] *= p->dims[a + 1];
      for (int t = a + 1; t + 1 < p->nd; t++)
        p->dims[t] = p->dims[t + 1];
      for (int t = j + 1; t + 1 < p->nd; t++)
        p->pm[t] = p->pm[t + 1];
      p->nd--;
      for (int t = 0; t < p->nd; t++)
        if (p->pm[t] > a) p->pm[t]--;
      merged = true;
      break;
    }
  }
  int nd = p->nd;
  if (nd == 0) return;
  p->ist[nd - 1] = 1;
  for (int d = nd - 2; d >= 0; d--)
    p->ist[d] = p->ist[d + 1] * p->dims[d + 1];
  for (int j = 0; j < nd; j++) {
    p->od[j] = p->dims[p->pm[j]];
    p->oist[j] = p->ist[p->pm[j]];
    p->inv[p->pm[j]] = j;
  }
  p->ost[nd - 1] = 1;
  for (int j = nd - 2; j >= 0; j--)
    p->ost[j] = p->ost[j + 1] * p->od[j + 1];
}

void asg__broadcast_plan(asg_bcast_plan *b, asg_shape o, const asg_tdesc *in, int n_in) {
  b->nd = 0;
  for (int d = 0; d < o.ndim; d++) {
    int64_t st[ASG_BCAST_MAX_IN] = {0, 0, 0};
    for (int k = 0; k < n_in; k++) {
      const asg_shape is = in[k].shape;
      const int id = is.ndim - o.ndim + d;
      int64_t stride = 1;
      for (int j = is.ndim - 1; j > id && j >= 0; j--)
        stride *= is.dims[j];
      st[k] = (id < 0 || is.dims[id] == 1) ? 0 : stride;
    }
    if (o.dims[d] == 1) continue; /* size-1 dims carry no iteration */
    const int m = b->nd - 1;
    bool merge = m >= 0;
    for (int k = 0; k < n_in && merge; k++)
      merge = b->st[k][m] == st[k] * o.dims[d];
    if (merge) {
      b->dims[m] *= o.dims[d];
      for (int k = 0; k < ASG_BCAST_MAX_IN; k++)
        b->st[k][m] = st[k];
    } else {
      b->dims[b->nd] = o.dims[d];
      for (int k = 0; k < ASG_BCAST_MAX_IN; k++)
        b->st[k][b->nd] = st[k];
      b->nd++;
    }
  }
  if (b->nd == 0) { /* scalar output */
    b->nd = 1;
    b->dims[0] = 1;
    for (int k = 0; k < ASG_BCAST_MAX_IN; k++)
      b->st[k][0] = 0;
  }
}

/* The last dim dropped (rank 0 stays rank 0). */
static asg_shape rows_of(asg_shape s) {
  if (s.ndim > 0) s.dims[--s.ndim] = 0;
  return s;
}

void asg__rope_plan(asg_rope_plan *p, const asg_step *s) {
  const asg_shape xs = s->in[0].shape;
  asg_tdesc t[2];
  int64_t width[2];
  memset(p, 0, sizeof *p);
  p->D = xs.ndim ? xs.dims[xs.ndim - 1] : 1;
  for (int k = 0; k < 2; k++) {
    const asg_shape ts = s->in[1 + k].shape;
    width[k] = ts.ndim ? ts.dims[ts.ndim - 1] : 1;
    t[k].dtype = s->in[1 + k].dtype;
    t[k].shape = rows_of(ts);
    p->last[k] = width[k] == p->D ? 1 : 0; /* else 1: broadcast over D */
  }
  const asg_shape rs = rows_of(xs);
  asg_bcast_plan b;
  asg__broadcast_plan(&b, rs, t, 2);
  p->rows = asg_shape_numel(rs);
  p->nd = b.nd;
  for (int d = 0; d < b.nd; d++) {
    p->dims[d] = b.dims[d];
    for (int k = 0; k < 2; k++)
      p->st[k][d] = b.st[k][d] * width[k];
  }
}

asg_fastdiv asg__fastdiv(uint32_t d) {
  uint32_t l = 0;
  while (l < 32 && ((uint64_t)1 << l) < d)
    l++;
  const uint64_t m = (((uint64_t)1 << 32) * (((uint64_t)1 << l) - d)) / d + 1;
  asg_fastdiv f = {d, (uint32_t)m, l};
  return f;
}

const asg_op asg__unary_ops[ASG__N_UNARY_OPS] = {
    ASG_OP_NEG,       ASG_OP_ABS,     ASG_OP_SIGN, ASG_OP_EXP,        ASG_OP_LOG,
    ASG_OP_SQRT,      ASG_OP_RSQRT,   ASG_OP_SIN,  ASG_OP_COS,        ASG_OP_TANH,
    ASG_OP_ERF,       ASG_OP_SIGMOID, ASG_OP_RELU, ASG_OP_LEAKY_RELU, ASG_OP_GELU,
    ASG_OP_GELU_TANH, ASG_OP_SILU,    ASG_OP_ELU,  ASG_OP_SOFTPLUS,   ASG_OP_CLAMP};

const asg_op asg__broadcast_ops[ASG__N_BROADCAST_OPS] = {
    ASG_OP_ADD,     ASG_OP_SUB,   ASG_OP_MUL,      ASG_OP_DIV,          ASG_OP_POW, ASG_OP_MAXIMUM,
    ASG_OP_MINIMUM, ASG_OP_EQ,    ASG_OP_NE,       ASG_OP_LT,           ASG_OP_LE,  ASG_OP_GT,
    ASG_OP_GE,      ASG_OP_WHERE, ASG_OP_GELU_BWD, ASG_OP_GELU_TANH_BWD};

bool asg__is_unary(asg_op op) {
  for (int k = 0; k < ASG__N_UNARY_OPS; k++)
    if (asg__unary_ops[k] == op) return true;
  return false;
}

int asg__mba_bias(const asg_step *s) { return s->attr.i[3] ? -1 : 2; }

int asg__mba_res(const asg_step *s) { return s->n_in > (s->attr.i[3] ? 2 : 3) ? s->n_in - 1 : -1; }

int asg__attention_mask(const asg_step *s, int64_t *heads) {
  const int base = s->op == ASG_OP_ATTENTION       ? 3
                   : s->op == ASG_OP_ATTENTION_LSE ? 2
                                                   : 6; /* the backward ops */
  *heads = 1;
  if (s->n_in <= base) return -1;
  const asg_shape q = s->in[0].shape, k = s->in[1].shape;
  int64_t nb = 1;
  for (int d = 0; d < q.ndim - 2; d++)
    nb *= q.dims[d];
  const int64_t tk = k.dims[k.ndim - 2], rows = tk ? asg_shape_numel(s->in[base].shape) / tk : 0;
  if (rows > 0) *heads = nb / rows;
  return base;
}
