/* asg_einsum through the public API: each spec against a float64 reference
 * written here (a loop over every assignment of the letters: no matmul,
 * no permute), in f64 and f32; central-difference gradients; the build
 * errors (each names the spec and the letter). */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Reference: parses spec (same grammar, explicit or implicit output) and
 * sums products over all letter values. dims: size of each letter by
 * ASCII code. Returns the output's element count, -1 on a spec it cannot
 * read. */
static long ref_einsum(const char *spec, int n, const asg_shape *shapes, double *const *xs,
                       double *out) {
  char terms[3][16] = {{0}};
  int t = 0, len = 0;
  bool arrow = false;
  for (const char *c = spec; *c; c++) {
    if (*c == ' ') continue;
    if (*c == ',')
      t++, len = 0;
    else if (*c == '-' && c[1] == '>')
      t = 2, len = 0, arrow = true, c++;
    else
      terms[t][len++] = *c;
  }
  long dim[128] = {0};
  int count[128] = {0};
  for (int k = 0; k < n; k++)
    for (int d = 0; terms[k][d]; d++)
      dim[(int)terms[k][d]] = shapes[k].dims[d], count[(int)terms[k][d]]++;
  if (!arrow) { /* letters used once, in ASCII order */
    int m = 0;
    for (int c = 0; c < 128; c++)
      if (count[c] == 1) terms[2][m++] = (char)c;
  }
  int letters[52], nl = 0;
  for (int c = 0; c < 128; c++)
    if (count[c]) letters[nl++] = c;
  long nout = 1;
  for (int d = 0; terms[2][d]; d++)
    nout *= dim[(int)terms[2][d]];
  memset(out, 0, sizeof(double) * (size_t)nout);
  long val[128] = {0};
  for (;;) {
    double prod = 1;
    for (int k = 0; k < n; k++) {
      long at = 0;
      for (int d = 0; terms[k][d]; d++)
        at = at * dim[(int)terms[k][d]] + val[(int)terms[k][d]];
      prod *= xs[k][at];
    }
    long at = 0;
    for (int d = 0; terms[2][d]; d++)
      at = at * dim[(int)terms[2][d]] + val[(int)terms[2][d]];
    out[at] += prod;
    int l = nl - 1; /* next assignment (odometer) */
    while (l >= 0 && ++val[letters[l]] == dim[letters[l]])
      val[letters[l--]] = 0;
    if (l < 0) break;
  }
  return nout;
}

typedef struct ecase {
  const char *spec;
  int n;
  asg_shape s[2];
} ecase;

/* shapes as {ndim, {dims}}: ASG_SHAPE is a compound literal */
static const ecase CASES[] = {
    {"ij,jk->ik", 2, {{2, {3, 4}}, {2, {4, 5}}}},
    {"bij,bjk->bik", 2, {{3, {2, 3, 4}}, {3, {2, 4, 5}}}},
    {"bhqd,bhkd->bhqk", 2, {{4, {2, 3, 4, 5}}, {4, {2, 3, 6, 5}}}},
    {"i,j->ij", 2, {{1, {3}}, {1, {4}}}},
    {"ij,kl->ijkl", 2, {{2, {2, 3}}, {2, {4, 2}}}},
    {"ij,ij->ij", 2, {{2, {3, 4}}, {2, {3, 4}}}},
    {"ij,ij->", 2, {{2, {3, 4}}, {2, {3, 4}}}},
    {"i,i->", 2, {{1, {7}}, {1, {7}}}},
    {"ab,b->a", 2, {{2, {3, 4}}, {1, {4}}}},
    {"ij,jk->k", 2, {{2, {3, 4}}, {2, {4, 5}}}},
    {"ijk,jil->kl", 2, {{3, {2, 3, 4}}, {3, {3, 2, 5}}}},
    {"abc,cd->dba", 2, {{3, {2, 3, 4}}, {2, {4, 5}}}},
    {"bi,bj->bji", 2, {{2, {2, 3}}, {2, {2, 4}}}},
    {"xay,yaz->azx", 2, {{3, {2, 3, 4}}, {3, {4, 3, 2}}}},
    {"ij,jk", 2, {{2, {3, 4}}, {2, {4, 5}}}},
    {"ba,ca", 2, {{2, {3, 4}}, {2, {2, 4}}}},
    {"Ab,bC->CA", 2, {{2, {3, 4}}, {2, {4, 2}}}},
    {" i j , j k -> i k ", 2, {{2, {2, 3}}, {2, {3, 2}}}},
    {"ij->ji", 1, {{2, {3, 4}}}},
    {"ij->j", 1, {{2, {3, 4}}}},
    {"ij->", 1, {{2, {3, 4}}}},
    {"ijk->kij", 1, {{3, {2, 3, 4}}}},
    {"ijk->ki", 1, {{3, {2, 3, 4}}}},
    {"ji", 1, {{2, {3, 4}}}},
    {"ij->ij", 1, {{2, {3, 4}}}},
};
#define NCASES ((int)(sizeof CASES / sizeof CASES[0]))

static void test_values(asg_dtype dt) {
  for (int c = 0; c < NCASES; c++) {
    const ecase *e = &CASES[c];
    asg_graph *g = asg_graph_new();
    asg_tensor *xs[2];
    double *v[2] = {NULL, NULL};
    for (int k = 0; k < e->n; k++) {
      const long n = (long)asg_shape_numel(e->s[k]);
      v[k] = malloc(sizeof(double) * (size_t)n);
      tu_rand(31u * (unsigned)c + (unsigned)k, v[k], n, -1, 1);
      if (dt == ASG_F32)
        for (long i = 0; i < n; i++)
          v[k][i] = (float)v[k][i];
      xs[k] = tu_constant(g, dt, e->s[k], v[k]);
    }
    double want[256], got[256];
    const long n = ref_einsum(e->spec, e->n, e->s, v, want);
    asg_tensor *y = asg_einsum(e->spec, e->n, xs);
    if (!y) {
      TU_CHECK(0, "%s: %s", e->spec, asg_graph_error(g));
    } else {
      TU_CHECK((long)asg_shape_numel(asg_tensor_shape(y)) == n, "%s: %ld elements, want %ld",
               e->spec, (long)asg_shape_numel(asg_tensor_shape(y)), n);
      if (tu_eval(g, y, got) == 0) {
        char what[96];
        snprintf(what, sizeof what, "einsum %s %s", e->spec, asg_dtype_name(dt));
        const double tol = dt == ASG_F32 ? 1e-5 : 1e-12;
        TU_CHECK(tu_close(what, got, want, n, tol, tol), "%s", what);
      } else {
        TU_CHECK(0, "%s: eval: %s", e->spec, asg_last_error());
      }
    }
    free(v[0]), free(v[1]);
    asg_graph_free(g);
  }
}

/* The output shape of a few specs, letter by letter. */
static void test_shapes(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *a = asg_input(g, "a", ASG_F32, ASG_SHAPE(2, 3, 4));
  asg_tensor *b = asg_input(g, "b", ASG_F32, ASG_SHAPE(4, 5));
  asg_tensor *ab[2] = {a, b};
  asg_shape s = asg_tensor_shape(asg_einsum("abc,cd->dba", 2, ab));
  TU_CHECK(s.ndim == 3 && s.dims[0] == 5 && s.dims[1] == 3 && s.dims[2] == 2, "abc,cd->dba shape");
  s = asg_tensor_shape(asg_einsum("abc,cd->", 2, ab));
  TU_CHECK(s.ndim == 0, "abc,cd-> is a scalar");
  s = asg_tensor_shape(asg_einsum("cab", 1, &a)); /* implicit: a, b, c order */
  TU_CHECK(s.ndim == 3 && s.dims[0] == 3 && s.dims[1] == 4 && s.dims[2] == 2, "cab implicit");
  asg_graph_free(g);
}

static asg_tensor *b_einsum(asg_graph *g, asg_tensor **xs, void *ctx) {
  (void)g;
  const ecase *e = ctx;
  return asg_einsum(e->spec, e->n, xs);
}

static void test_grads(void) {
  for (int c = 0; c < NCASES; c++) {
    const ecase *e = &CASES[c];
    TU_CHECK(tu_gradcheck(e->spec, e->n, e->s, b_einsum, (void *)e, NULL) == 0, "gradient of %s",
             e->spec);
  }
}

static void expect(const char *spec, int n, asg_shape s0, asg_shape s1, asg_dtype dt1,
                   const char *sub) {
  asg_graph *g = asg_graph_new();
  asg_tensor *xs[3] = {asg_input(g, "a", ASG_F32, s0), asg_input(g, "b", dt1, s1),
                       asg_input(g, "c", ASG_F32, s1)};
  asg_tensor *y = asg_einsum(spec, n, xs);
  const char *e = asg_graph_error(g);
  TU_CHECK(!y && tu_contains(e, "einsum") && (!spec || tu_contains(e, spec)) && tu_contains(e, sub),
           "einsum \"%s\": want an error with \"%s\", got \"%s\"", spec ? spec : "(null)", sub,
           e ? e : "(none)");
  asg_graph_free(g);
}

static void test_errors(void) {
  const asg_shape m34 = ASG_SHAPE(3, 4), m45 = ASG_SHAPE(4, 5), m55 = ASG_SHAPE(5, 5);
  expect("ij,j1->i", 2, m34, m45, ASG_F32, "'1' is not a letter");
  expect("...ij,jk->ik", 2, m34, m45, ASG_F32, "\"...\" is not supported");
  expect("ij->i", 2, m34, m45, ASG_F32, "1 operand(s) but 2 tensor(s)");
  expect("ij,jk,kl->il", 2, m34, m45, ASG_F32, "3 operand(s) but 2");
  expect("ijk,jk->ik", 2, m34, m45, ASG_F32, "operand 0 has 3 letter(s) but is [3,4]");
  expect("ii->i", 1, m55, m55, ASG_F32, "letter 'i' appears twice in operand 0");
  expect("ij,jj->i", 2, m34, m55, ASG_F32, "letter 'j' appears twice in operand 1");
  expect("ij,kj->ik", 2, m34, m45, ASG_F32, "letter 'j' is 4 in operand 0 [3,4] but 5");
  expect("ij,jk->iz", 2, m34, m45, ASG_F32, "output letter 'z' is in no operand");
  expect("ij,jk->ii", 2, m34, m45, ASG_F32, "output letter 'i' appears twice");
  expect("ij,jk->i-", 2, m34, m45, ASG_F32, "'-' in the output is not a letter");
  expect("ij,jk->ik", 2, m34, m45, ASG_F64, "operands are f32 and f64");
  expect(NULL, 2, m34, m45, ASG_F32, "spec is NULL");
  /* 3 operands: no graph error (nothing is built), the thread's message */
  asg_graph *g = asg_graph_new();
  asg_tensor *xs[3] = {asg_input(g, "a", ASG_F32, m34), asg_input(g, "b", ASG_F32, m34),
                       asg_input(g, "c", ASG_F32, m34)};
  TU_CHECK(!asg_einsum("ij,ij,ij->ij", 3, xs) && tu_contains(asg_last_error(), "1 or 2 operands"),
           "3 operands: %s", asg_last_error());
  asg_graph_free(g);
}

int main(void) {
  test_values(ASG_F64);
  test_values(ASG_F32);
  test_shapes();
  test_grads();
  test_errors();
  return tu_finish();
}
