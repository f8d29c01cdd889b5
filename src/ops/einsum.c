/* einsum for one or two operands, built from existing ops when the graph is
 * built (so every backend and the gradient come with them):
 *
 *   one operand:  sum over the letters not in the output, then permute;
 *   two operands: each operand first sums its own letters that are neither
 *     in the other operand nor in the output; the rest fall in four groups:
 *       batch (both operands and output), contracted K (both, not output),
 *       M (first operand and output), N (second operand and output).
 *     With K empty the result is a broadcasting mul of [batch, M, 1..] and
 *     [batch, 1.., N]; otherwise a matmul of [batch, prod M, prod K] and
 *     [batch, prod K, prod N], reshaped to [batch, M, N]. A final permute
 *     puts the letters in the output's order.
 *
 * Letters are a-z and A-Z; spaces are ignored; "->output" is optional
 * (implicit output: the letters that occur once, in ASCII order, as NumPy).
 * No "..." and no letter twice in one operand (traces, diagonals). Errors
 * name the spec and the letter. */
#include <ctype.h>
#include <stdio.h>

#include "core/symbol.h"
#include "ops/op_util.h"

#define NL 52 /* letters */
#define SPEC_MAX 128

static int letter_id(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
  return -1;
}
static char letter_ch(int id) { return (char)(id < 26 ? 'a' + id : 'A' + id - 26); }

typedef struct es_spec {
  int n;                               /* operands */
  int nterm[2], term[2][ASG_MAX_DIMS]; /* letter ids of each operand's axes */
  int nout, out[ASG_MAX_DIMS];
  int64_t dim[NL]; /* size of each letter */
  int count[NL];   /* occurrences in the operands */
  int in_op[NL];   /* bit k: letter in operand k */
  bool in_out[NL];
} es_spec;

/* Parses spec (spaces removed) for xs; fails g naming spec on error. */
static bool es_parse(asg_graph *g, const char *spec, int n, asg_tensor *const *xs, es_spec *p) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF], b3[ASG_SHAPE_BUF], b4[ASG_SHAPE_BUF];
  char s[SPEC_MAX];
  size_t len = 0;
  for (const char *c = spec; *c; c++) {
    if (isspace((unsigned char)*c)) continue;
    if (len + 1 >= sizeof s) {
      asg__fail(g, ASG_ERR_INVALID, "einsum", "spec \"%.40s...\" is longer than %d characters",
                spec, SPEC_MAX - 1);
      return false;
    }
    s[len++] = *c;
  }
  s[len] = 0;
  memset(p, 0, sizeof *p);
  p->n = n;
  const char *arrow = strstr(s, "->");
  const size_t lhs = arrow ? (size_t)(arrow - s) : len;
  int k = 0, m = 0;
  for (size_t i = 0; i <= lhs; i++) {
    if (i == lhs || s[i] == ',') {
      if (k >= n) {
        k++;
        continue; /* counted for the error below */
      }
      p->nterm[k++] = m;
      m = 0;
      continue;
    }
    const int id = letter_id(s[i]);
    if (id < 0) {
      asg__fail(g, ASG_ERR_INVALID, "einsum", "spec \"%s\": '%c' is not a letter%s", spec, s[i],
                s[i] == '.' ? " (\"...\" is not supported)" : "");
      return false;
    }
    if (k < n) {
      if (m >= ASG_MAX_DIMS) {
        asg__fail(g, ASG_ERR_INVALID, "einsum", "spec \"%s\": operand %d has more than %d letters",
                  spec, k, ASG_MAX_DIMS);
        return false;
      }
      p->term[k][m++] = id;
    }
  }
  if (k != n) {
    asg__fail(g, ASG_ERR_INVALID, "einsum", "spec \"%s\" has %d operand(s) but %d tensor(s) given",
              spec, k, n);
    return false;
  }
  for (int t = 0; t < n; t++) {
    const asg_shape xs_t = xs[t]->shape;
    if (p->nterm[t] != xs_t.ndim) {
      asg__fail(g, ASG_ERR_SHAPE, "einsum", "spec \"%s\": operand %d has %d letter(s) but is %s",
                spec, t, p->nterm[t], SHP(xs_t, b1));
      return false;
    }
    int seen[NL] = {0};
    for (int d = 0; d < p->nterm[t]; d++)
      if (seen[p->term[t][d]]++) {
        asg__fail(g, ASG_ERR_INVALID, "einsum",
                  "spec \"%s\": letter '%c' appears twice in operand %d (traces and diagonals "
                  "are not supported)",
                  spec, letter_ch(p->term[t][d]), t);
        return false;
      }
  }
  for (int t = 0; t < n; t++) {
    const asg_shape xs_t = xs[t]->shape;
    for (int d = 0; d < p->nterm[t]; d++) {
      const int id = p->term[t][d];
      if (p->in_op[id] && p->dim[id] != xs_t.dims[d]) { /* seen in operand 0, now in 1 */
        asg__fail(g, ASG_ERR_SHAPE, "einsum",
                  "spec \"%s\": letter '%c' is %s in operand 0 %s but %s in operand 1 %s", spec,
                  letter_ch(id), DIM(p->dim[id], b1), SHP(xs[0]->shape, b2), DIM(xs_t.dims[d], b3),
                  SHP(xs_t, b4));
        return false;
      }
      p->in_op[id] |= 1 << t;
      p->dim[id] = xs_t.dims[d];
      p->count[id]++;
    }
  }
  if (arrow) {
    for (const char *c = arrow + 2; *c; c++) {
      const int id = letter_id(*c);
      if (id < 0) {
        asg__fail(g, ASG_ERR_INVALID, "einsum", "spec \"%s\": '%c' in the output is not a letter",
                  spec, *c);
        return false;
      }
      if (!p->in_op[id] || p->in_out[id]) {
        asg__fail(g, ASG_ERR_INVALID, "einsum", "spec \"%s\": output letter '%c' %s", spec, *c,
                  p->in_out[id] ? "appears twice" : "is in no operand");
        return false;
      }
      p->in_out[id] = true;
      p->out[p->nout++] = id;
    }
  } else { /* implicit: letters used once, in ASCII order (A-Z before a-z) */
    for (int id = 26; id < NL; id++)
      if (p->count[id] == 1) p->in_out[id] = true, p->out[p->nout++] = id;
    for (int id = 0; id < 26; id++)
      if (p->count[id] == 1) p->in_out[id] = true, p->out[p->nout++] = id;
  }
  return true;
}

/* Sums x (axes labelled ids[0..*n)) over the letters `drop` says, removing
 * them from ids. */
static asg_tensor *sum_letters(asg_tensor *x, int *ids, int *n, const bool *drop) {
  asg_axes ax = {0};
  int keep = 0;
  for (int d = 0; d < *n; d++) {
    if (drop[ids[d]])
      ax.axis[ax.n++] = d;
    else
      ids[keep++] = ids[d];
  }
  if (!ax.n) return x;
  *n = keep;
  if (keep == 0) return asg_sum(x, ASG_ALL_AXES, false);
  return asg_sum(x, ax, false);
}

/* Permutes x (axes labelled ids) so that its axes follow order[0..n). */
static asg_tensor *permute_to(asg_tensor *x, const int *ids, const int *order, int n) {
  int perm[ASG_MAX_DIMS];
  for (int d = 0; d < n; d++)
    for (int e = 0; e < n; e++)
      if (ids[e] == order[d]) perm[d] = e;
  return n > 1 ? asg_permute(x, perm) : x;
}

/* Product of the sizes of letters ids[0..n) (1 for none). */
static int64_t dims_of(asg_graph *g, const es_spec *p, const int *ids, int n) {
  int64_t r = 1;
  for (int d = 0; d < n; d++)
    r = asg__dim_mul(g, r, p->dim[ids[d]]);
  return r;
}

static asg_shape shape_of(const es_spec *p, const int *ids, int n) {
  asg_shape s = {n, {0}};
  for (int d = 0; d < n; d++)
    s.dims[d] = p->dim[ids[d]];
  return s;
}

static asg_tensor *einsum2(asg_graph *g, const char *spec, es_spec *p, asg_tensor *a,
                           asg_tensor *b) {
  char b1[ASG_SHAPE_BUF], b2[ASG_SHAPE_BUF];
  int ia[ASG_MAX_DIMS], ib[ASG_MAX_DIMS], na = p->nterm[0], nb = p->nterm[1];
  memcpy(ia, p->term[0], sizeof ia);
  memcpy(ib, p->term[1], sizeof ib);
  bool only[2][NL] = {{false}}; /* summed first: in one operand, not the output */
  for (int id = 0; id < NL; id++) {
    only[0][id] = p->in_op[id] == 1 && !p->in_out[id];
    only[1][id] = p->in_op[id] == 2 && !p->in_out[id];
  }
  a = sum_letters(a, ia, &na, only[0]);
  b = sum_letters(b, ib, &nb, only[1]);
  /* groups in the operands' own order */
  int bat[ASG_MAX_DIMS], M[ASG_MAX_DIMS], K[ASG_MAX_DIMS], N[ASG_MAX_DIMS];
  int nbat = 0, nm = 0, nk = 0, nn = 0;
  for (int d = 0; d < na; d++) {
    const int id = ia[d];
    if (p->in_op[id] != 3)
      M[nm++] = id;
    else if (p->in_out[id])
      bat[nbat++] = id;
    else
      K[nk++] = id;
  }
  for (int d = 0; d < nb; d++)
    if (p->in_op[ib[d]] != 3) N[nn++] = ib[d];
  if (nbat + nm + nn > ASG_MAX_DIMS || nbat + 2 > ASG_MAX_DIMS)
    return asg__fail(g, ASG_ERR_SHAPE, "einsum", "spec \"%s\": too many axes for %s and %s", spec,
                     SHP(a->shape, b1), SHP(b->shape, b2));
  int ord[ASG_MAX_DIMS], res[ASG_MAX_DIMS], nres = 0; /* res: the result's letters */
  asg_tensor *y;
  if (nk == 0) { /* outer / elementwise product: broadcast mul */
    int n = 0;
    memcpy(ord, bat, sizeof(int) * (size_t)nbat), n = nbat;
    memcpy(ord + n, M, sizeof(int) * (size_t)nm);
    asg_tensor *at = permute_to(a, ia, ord, na);
    memcpy(ord + n, N, sizeof(int) * (size_t)nn);
    asg_tensor *bt = permute_to(b, ib, ord, nb);
    asg_shape sa = shape_of(p, bat, nbat), sb = sa;
    for (int d = 0; d < nm; d++)
      sa.dims[sa.ndim++] = p->dim[M[d]], sb.dims[sb.ndim++] = 1;
    for (int d = 0; d < nn; d++)
      sa.dims[sa.ndim++] = 1, sb.dims[sb.ndim++] = p->dim[N[d]];
    y = asg_mul(asg_reshape(at, sa), asg_reshape(bt, sb));
  } else {
    memcpy(ord, bat, sizeof(int) * (size_t)nbat);
    memcpy(ord + nbat, M, sizeof(int) * (size_t)nm);
    memcpy(ord + nbat + nm, K, sizeof(int) * (size_t)nk);
    asg_tensor *at = permute_to(a, ia, ord, na);
    memcpy(ord + nbat, K, sizeof(int) * (size_t)nk);
    memcpy(ord + nbat + nk, N, sizeof(int) * (size_t)nn);
    asg_tensor *bt = permute_to(b, ib, ord, nb);
    asg_shape sa = shape_of(p, bat, nbat), sb = sa;
    sa.dims[sa.ndim++] = dims_of(g, p, M, nm);
    sa.dims[sa.ndim++] = dims_of(g, p, K, nk);
    sb.dims[sb.ndim++] = dims_of(g, p, K, nk);
    sb.dims[sb.ndim++] = dims_of(g, p, N, nn);
    if (g->status != ASG_OK) return NULL;
    y = asg_matmul(asg_reshape(at, sa), asg_reshape(bt, sb));
    asg_shape sy = shape_of(p, bat, nbat);
    for (int d = 0; d < nm; d++)
      sy.dims[sy.ndim++] = p->dim[M[d]];
    for (int d = 0; d < nn; d++)
      sy.dims[sy.ndim++] = p->dim[N[d]];
    y = asg_reshape(y, sy); /* [] when every letter is contracted */
  }
  memcpy(res, bat, sizeof(int) * (size_t)nbat), nres = nbat;
  memcpy(res + nres, M, sizeof(int) * (size_t)nm), nres += nm;
  memcpy(res + nres, N, sizeof(int) * (size_t)nn), nres += nn;
  return y ? permute_to(y, res, p->out, nres) : NULL;
}

asg_tensor *asg_einsum(const char *spec, int n, asg_tensor *const *xs) {
  if (n < 1 || n > 2 || !xs) {
    asg__error(ASG_ERR_INVALID, "einsum: takes 1 or 2 operands, got %d", xs ? n : 0);
    return NULL;
  }
  asg_graph *g = asg__graph_of("einsum", n, xs);
  if (!g) return NULL;
  if (!spec) return asg__fail(g, ASG_ERR_INVALID, "einsum", "spec is NULL");
  es_spec p;
  if (!es_parse(g, spec, n, xs, &p)) return NULL;
  if (n == 2 && xs[0]->dtype != xs[1]->dtype)
    return asg__fail(g, ASG_ERR_DTYPE, "einsum", "spec \"%s\": operands are %s and %s", spec,
                     asg_dtype_name(xs[0]->dtype), asg_dtype_name(xs[1]->dtype));
  if (n == 2) return einsum2(g, spec, &p, xs[0], xs[1]);
  int ids[ASG_MAX_DIMS], nid = p.nterm[0];
  memcpy(ids, p.term[0], sizeof ids);
  bool drop[NL];
  for (int id = 0; id < NL; id++)
    drop[id] = !p.in_out[id];
  asg_tensor *y = sum_letters(xs[0], ids, &nid, drop);
  return y ? permute_to(y, ids, p.out, nid) : NULL;
}
