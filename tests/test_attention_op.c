/* The fused attention op asg_attention (and asg_attention_masked, against
 * the same composition with -1e9 on the hidden keys) on the CPU: forward
 * output and the
 * gradients w.r.t. q, k and v (through its backward ops) against the same
 * computation composed from existing ops (matmul_t, mul_scalar, a causal
 * -1e9 mask, softmax, matmul) in one graph, causal and not, Tq != Tk, with
 * and without leading dims; a gradient check in f64; the error paths.
 * Tolerances: f32 2e-5 of the tensor's scale + 1e-5 relative (both sides
 * round in f32, in different orders); f64 1e-12 of the scale. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct acfg {
  asg_shape q, kv; /* [..., Tq, D] and [..., Tk, D] */
  double scale;
  bool causal;
  bool masked; /* a key mask [q's first leading dim, Tk] ([Tk] for rank 2) */
} acfg;

/* The key mask of a config: some keys hidden, key 0 of every row visible
 * (so every query sees a key and the -1e9 composition agrees). */
static asg_tensor *key_mask(asg_graph *g, asg_dtype dt, asg_shape q, asg_shape kv, asg_shape *ms) {
  const int64_t Tk = kv.dims[kv.ndim - 2], rows = q.ndim > 2 ? q.dims[0] : 1;
  *ms = q.ndim > 2 ? ASG_SHAPE(rows, Tk) : ASG_SHAPE(Tk);
  double *m = malloc(sizeof(double) * (size_t)(rows * Tk));
  for (int64_t r = 0; m && r < rows; r++)
    for (int64_t j = 0; j < Tk; j++)
      m[r * Tk + j] = j == 0 || (r * 3 + j) % 3 != 0 ? 1 : 0;
  asg_tensor *t = m ? tu_constant(g, dt, *ms, m) : NULL;
  free(m);
  return t;
}

/* softmax(q k^T scale + mask) v from separate ops: the reference; a key
 * mask km (or NULL) adds -1e9 where it is 0, broadcast over the rows it
 * covers. */
static asg_tensor *composed(asg_tensor *q, asg_tensor *k, asg_tensor *v, double scale, bool causal,
                            asg_tensor *km) {
  asg_tensor *s = asg_mul_scalar(asg_matmul_t(q, k, false, true), scale); /* [..., Tq, Tk] */
  if (km) {
    asg_shape ss = asg_tensor_shape(s), ms = asg_tensor_shape(km), bs = ss;
    for (int d = 0; d < bs.ndim; d++) /* [m0, 1, ..., 1, Tk] */
      bs.dims[d] = d < ms.ndim - 1 ? ms.dims[d] : d == bs.ndim - 1 ? ss.dims[d] : 1;
    s = asg_add(s, asg_reshape(asg_mul_scalar(asg_add_scalar(km, -1.0), 1e9), bs));
  }
  if (causal) {
    asg_shape qs = asg_tensor_shape(q), ks = asg_tensor_shape(k);
    int64_t Tq = qs.dims[qs.ndim - 2], Tk = ks.dims[ks.ndim - 2];
    double *m = malloc(sizeof(double) * (size_t)(Tq * Tk));
    for (int64_t i = 0; i < Tq; i++)
      for (int64_t j = 0; j < Tk; j++)
        m[i * Tk + j] = j <= i ? 0 : -1e9;
    s = asg_add(s, tu_constant(asg_tensor_graph(q), asg_tensor_dtype(q), ASG_SHAPE(Tq, Tk), m));
    free(m);
  }
  return asg_matmul(asg_softmax(s, -1), v);
}

static double scale_of(const double *v, long n) {
  double s = 1;
  for (long i = 0; i < n; i++)
    s = fmax(s, fabs(v[i]));
  return s;
}

/* o and dL/d{q,k,v} (L = sum(o * r)) of the fused op and the composition,
 * computed in one program from the same inputs, compared. */
static void check_against_composed(const acfg *c, asg_dtype dt) {
  char title[160], b1[64], b2[64];
  snprintf(title, sizeof title, "attention%s %s q%s kv%s scale %g causal %d",
           c->masked ? "_masked" : "", asg_dtype_name(dt), asg_shape_str(c->q, b1, sizeof b1),
           asg_shape_str(c->kv, b2, sizeof b2), c->scale, c->causal);
  asg_graph *g = asg_graph_new();
  long nq = (long)asg_shape_numel(c->q), nkv = (long)asg_shape_numel(c->kv);
  double *vals[3], *r = malloc(sizeof(double) * (size_t)nq);
  long n[3] = {nq, nkv, nkv};
  const char *names[3] = {"q", "k", "v"};
  asg_tensor *in[3];
  for (int i = 0; i < 3; i++) {
    vals[i] = malloc(sizeof(double) * (size_t)n[i]);
    tu_rand(11 + (unsigned)i, vals[i], n[i], -1.5, 1.5);
    in[i] = asg_input(g, names[i], dt, i ? c->kv : c->q);
  }
  tu_rand(7, r, nq, 0.5, 1.5);
  asg_tensor *w = tu_constant(g, dt, c->q, r);
  asg_shape ms;
  asg_tensor *km = c->masked ? key_mask(g, dt, c->q, c->kv, &ms) : NULL;
  asg_tensor *o[2] = {asg_attention_masked(in[0], in[1], in[2], km, c->scale, c->causal),
                      composed(in[0], in[1], in[2], c->scale, c->causal, km)};
  asg_tensor *outs[8];
  bool ok = o[0] && o[1];
  for (int f = 0; f < 2 && ok; f++) {
    outs[f * 4] = o[f];
    asg_tensor *loss = asg_sum(asg_mul(o[f], w), ASG_ALL_AXES, false);
    ok = asg_grad(loss, 3, in, outs + f * 4 + 1) == ASG_OK;
  }
  asg_program *p = ok ? asg_compile(g, 8, outs, NULL) : NULL;
  for (int i = 0; i < 3 && p; i++)
    ok = ok && tu_feed(p, names[i], dt, vals[i], n[i]) == ASG_OK;
  ok = ok && p && asg_program_run(p) == ASG_OK;
  if (!ok) printf("  %s: build/run failed: %s / %s\n", title, asg_graph_error(g), asg_last_error());
  const char *what[4] = {"o", "dq", "dk", "dv"};
  long len[4] = {nq, nq, nkv, nkv};
  for (int t = 0; t < 4 && ok; t++) {
    double *got = malloc(sizeof(double) * (size_t)len[t]);
    double *want = malloc(sizeof(double) * (size_t)len[t]);
    tu_fetch(p, outs[t], got);
    tu_fetch(p, outs[4 + t], want);
    double S = scale_of(want, len[t]);
    char lab[200];
    snprintf(lab, sizeof lab, "%s %s", title, what[t]);
    ok = dt == ASG_F32 ? tu_close(lab, got, want, len[t], 2e-5 * S, 1e-5)
                       : tu_close(lab, got, want, len[t], 1e-12 * S, 1e-12);
    free(got), free(want);
  }
  TU_CHECK(ok, "%s", title);
  asg_program_free(p);
  asg_graph_free(g);
  for (int i = 0; i < 3; i++)
    free(vals[i]);
  free(r);
}

static void test_against_composed(void) {
  const acfg cf[] = {
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35355339059327373, false, false},
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35355339059327373, true, false},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.4, false, false},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.4, true,
       false}, /* keys 5..8 unseen: dk = dv = 0 */
      {ASG_SHAPE(3, 9, 5), ASG_SHAPE(3, 4, 5), 1.3, true, false}, /* rows 3..8 see every key */
      {ASG_SHAPE(7, 3), ASG_SHAPE(7, 3), 1.0, true, false},       /* no leading dims */
      {ASG_SHAPE(1, 2, 70, 16), ASG_SHAPE(1, 2, 70, 16), 0.25, true, false},
      {ASG_SHAPE(1, 1, 1, 4), ASG_SHAPE(1, 1, 6, 4), 0.5, false, false}, /* one query */
      {ASG_SHAPE(2, 10, 8), ASG_SHAPE(2, 80, 8), 0.5, true, false},      /* keys 10..79 unseen */
      {ASG_SHAPE(2, 150, 8), ASG_SHAPE(2, 130, 8), 0.5, false, false},   /* several blocks */
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35, false, true},
      {ASG_SHAPE(2, 3, 13, 8), ASG_SHAPE(2, 3, 13, 8), 0.35, true, true},
      {ASG_SHAPE(2, 5, 8), ASG_SHAPE(2, 9, 8), 0.4, false, true},
      {ASG_SHAPE(7, 3), ASG_SHAPE(7, 3), 1.0, true, true},
      {ASG_SHAPE(2, 150, 8), ASG_SHAPE(2, 130, 8), 0.5, false, true},
  };
  for (size_t i = 0; i < sizeof cf / sizeof cf[0]; i++) {
    check_against_composed(&cf[i], ASG_F32);
    check_against_composed(&cf[i], ASG_F64);
  }
}

/* ---- gradient check (f64, central differences) ---- */
static asg_tensor *b_attention(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  return asg_attention(xs[0], xs[1], xs[2], 0.7, *(bool *)ctx);
}

static asg_tensor *b_attention_masked(asg_graph *g, asg_tensor **xs, void *ctx) {
  static const double m[10] = {1, 0, 1, 1, 0, 0, 1, 1, 0, 1}; /* [2, 5] */
  return asg_attention_masked(xs[0], xs[1], xs[2], tu_constant(g, ASG_F64, ASG_SHAPE(2, 5), m), 0.7,
                              *(bool *)ctx);
}

static void test_gradcheck(void) {
  asg_shape s[3] = {ASG_SHAPE(2, 3, 4), ASG_SHAPE(2, 5, 4), ASG_SHAPE(2, 5, 4)};
  bool causal = false, causal1 = true;
  tu_gradcheck("attention q, k, v", 3, s, b_attention, &causal, NULL);
  tu_gradcheck("attention causal q, k, v", 3, s, b_attention, &causal1, NULL);
  /* causal: query 0 of batch 1 sees no key (its key 0 is hidden) */
  tu_gradcheck("attention_masked q, k, v", 3, s, b_attention_masked, &causal, NULL);
  tu_gradcheck("attention_masked causal q, k, v", 3, s, b_attention_masked, &causal1, NULL);
  asg_shape sq[3] = {ASG_SHAPE(6, 3), ASG_SHAPE(6, 3), ASG_SHAPE(6, 3)};
  tu_gradcheck("attention causal rank 2", 3, sq, b_attention, &causal1, NULL);
}

/* The gradient goes through attention's backward ops, which have no rule of
 * their own: a second derivative fails with a clear message. */
static void test_second_order(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *q = asg_input(g, "q", ASG_F64, ASG_SHAPE(2, 3, 4));
  asg_tensor *loss = asg_sum(asg_attention(q, q, q, 0.5, true), ASG_ALL_AXES, false);
  asg_tensor *dq, *d2;
  int ok = asg_grad(loss, 1, &q, &dq) == ASG_OK;
  ok = ok && asg_grad(asg_sum(dq, ASG_ALL_AXES, false), 1, &q, &d2) != ASG_OK;
  const char *e = asg_graph_error(g);
  TU_CHECK(ok && e && strstr(e, "attention_bwd"), "second-order gradient error: %s",
           e ? e : "(none)");
  asg_graph_free(g);
}

/* ---- errors ---- */
static void expect_error(const char *what, asg_dtype dq, asg_shape sq, asg_dtype dk, asg_shape sk,
                         asg_dtype dv, asg_shape sv, double scale, const char *needle) {
  asg_graph *g = asg_graph_new();
  asg_tensor *y = asg_attention(asg_input(g, "q", dq, sq), asg_input(g, "k", dk, sk),
                                asg_input(g, "v", dv, sv), scale, false);
  const char *e = asg_graph_error(g);
  TU_CHECK(!y && e && strstr(e, "attention") && strstr(e, needle),
           "%s: expected an error naming '%s', got %s", what, needle, e ? e : "(none)");
  asg_graph_free(g);
}

static void test_errors(void) {
  asg_shape a = ASG_SHAPE(2, 5, 8), b = ASG_SHAPE(2, 7, 8);
  expect_error("D differs", ASG_F32, a, ASG_F32, ASG_SHAPE(2, 7, 4), ASG_F32, ASG_SHAPE(2, 7, 4),
               0.5, "does not match q");
  expect_error("leading dims differ", ASG_F32, a, ASG_F32, ASG_SHAPE(3, 7, 8), ASG_F32,
               ASG_SHAPE(3, 7, 8), 0.5, "same leading dims");
  expect_error("rank differs", ASG_F32, a, ASG_F32, ASG_SHAPE(7, 8), ASG_F32, ASG_SHAPE(7, 8), 0.5,
               "does not match q");
  expect_error("v differs from k", ASG_F32, a, ASG_F32, b, ASG_F32, ASG_SHAPE(2, 6, 8), 0.5,
               "v [2,6,8] does not match k");
  expect_error("dtypes differ", ASG_F32, a, ASG_F64, b, ASG_F32, b, 0.5, "dtypes differ");
  expect_error("v dtype differs", ASG_F64, a, ASG_F64, b, ASG_F32, b, 0.5, "dtypes differ");
  expect_error("integer", ASG_I32, a, ASG_I32, b, ASG_I32, b, 0.5, "float");
  expect_error("rank 1", ASG_F32, ASG_SHAPE(8), ASG_F32, ASG_SHAPE(8), ASG_F32, ASG_SHAPE(8), 0.5,
               "rank >= 2");
  expect_error("scale NaN", ASG_F32, a, ASG_F32, b, ASG_F32, b, NAN, "scale must be finite");
  expect_error("scale inf", ASG_F32, a, ASG_F32, b, ASG_F32, b, INFINITY, "scale must be finite");
  /* NULL and a poisoned input propagate (no crash, no new message needed) */
  TU_CHECK(asg_attention(NULL, NULL, NULL, 1, false) == NULL, "NULL inputs give NULL");
  /* key masks: [L..., Tk] with L... leading dims of q, q's dtype */
  const struct {
    asg_shape m;
    asg_dtype dt;
    const char *what, *needle;
  } mk[] = {{ASG_SHAPE(2, 5), ASG_F32, "mask Tk differs", "key mask [2,5] does not fit"},
            {ASG_SHAPE(3, 7), ASG_F32, "mask rows differ", "key mask [3,7] does not fit"},
            {ASG_SHAPE(2, 1, 7), ASG_F32, "mask too deep", "does not fit"},
            {ASG_SHAPE(2, 7), ASG_F64, "mask dtype", "dtypes differ"}};
  for (size_t i = 0; i < sizeof mk / sizeof mk[0]; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *q = asg_input(g, "q", ASG_F32, a), *k = asg_input(g, "k", ASG_F32, b);
    asg_tensor *y = asg_attention_masked(q, k, k, asg_input(g, "m", mk[i].dt, mk[i].m), 0.5, 0);
    const char *e = asg_graph_error(g);
    TU_CHECK(!y && e && strstr(e, mk[i].needle), "%s: %s", mk[i].what, e ? e : "(no error)");
    asg_graph_free(g);
  }
}

/* A query that sees no key (every key hidden, or causal with key 0 hidden)
 * outputs zeros and gets no gradient; the other rows are untouched. */
static void test_masked_empty(void) {
  asg_graph *g = asg_graph_new();
  double vq[2 * 3 * 4], vk[2 * 4 * 4], m[8] = {0, 0, 0, 0, 0, 1, 1, 1}; /* batch 0: all hidden */
  tu_rand(3, vq, 24, -1, 1);
  tu_rand(4, vk, 32, -1, 1);
  asg_tensor *q = tu_constant(g, ASG_F64, ASG_SHAPE(2, 3, 4), vq);
  asg_tensor *k = tu_constant(g, ASG_F64, ASG_SHAPE(2, 4, 4), vk);
  asg_tensor *km = tu_constant(g, ASG_F64, ASG_SHAPE(2, 4), m);
  asg_tensor *o = asg_attention_masked(q, k, k, km, 0.5, true); /* batch 1 query 0: none */
  asg_tensor *wrt[2] = {q, k}, *out[3] = {o, NULL, NULL};
  bool ok = o && asg_grad(asg_sum(o, ASG_ALL_AXES, false), 2, wrt, out + 1) == ASG_OK;
  asg_program *p = ok ? asg_compile(g, 3, out, NULL) : NULL;
  double got[24], dq[24], dk[32];
  ok = p && !asg_program_run(p) && !tu_fetch(p, o, got) && !tu_fetch(p, out[1], dq) &&
       !tu_fetch(p, out[2], dk);
  bool zero = ok, rest = ok;
  for (int i = 0; ok && i < 24; i++) {
    const bool empty = i < 12 || (i >= 12 && i < 16); /* batch 0, and batch 1 query 0 */
    if (empty) zero = zero && got[i] == 0 && dq[i] == 0;
    if (!empty) rest = rest && got[i] != 0 && isfinite(got[i]);
  }
  for (int i = 0; ok && i < 16; i++) /* batch 0's keys: no query sees them */
    zero = zero && dk[i] == 0;
  TU_CHECK(ok && zero && rest, "attention_masked: queries that see no key give 0 (%s)",
           ok ? "values" : asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  test_against_composed();
  test_gradcheck();
  test_second_order();
  test_errors();
  test_masked_empty();
  return tu_finish();
}
