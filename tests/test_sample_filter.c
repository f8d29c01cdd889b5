/* asg_sample_filter against a sort-based host reference written here (top-k
 * then top-p as Hugging Face's warpers, ties at a threshold kept): random
 * rows, rows full of ties, k and p at and past their edges, -inf / +inf
 * entries, NaN rows, V not a power of two and V = 50257, one program fed
 * many settings, and the build errors.
 * Usage: test_sample_filter [cpu|cuda|vulkan] (default cpu). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const char *backend = "cpu";

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Reference for one row x[V] into y (p scaled by pscale): sort, threshold
 * values by walking the sorted row, keep x >= both thresholds. */
static void ref_row(const double *x, double *y, long V, long long k, double p) {
  for (long i = 0; i < V; i++)
    if (isnan(x[i])) {
      for (long j = 0; j < V; j++)
        y[j] = NAN;
      return;
    }
  double *s = malloc(sizeof(double) * (size_t)V);
  memcpy(s, x, sizeof(double) * (size_t)V);
  qsort(s, (size_t)V, sizeof *s, cmp_desc);
  double tk = s[V - 1], tp = -INFINITY;
  if (k > 0 && k < V) tk = s[k - 1];
  long n = 0; /* the top-k entries are s[0..n) */
  while (n < V && s[n] >= tk)
    n++;
  const double m = s[0];
  if (!(p > 0)) {
    tp = m;
  } else if (p < 1) {
    double z = 0, cum = 0;
    for (long i = 0; i < n; i++)
      z += s[i] == m ? 1 : exp(s[i] - m);
    tp = s[n - 1];
    for (long i = 0; i < n; i++) {
      cum += s[i] == m ? 1 : exp(s[i] - m);
      if (cum >= p * z) {
        tp = s[i];
        break;
      }
    }
  }
  const double t = tk > tp ? tk : tp;
  for (long i = 0; i < V; i++)
    y[i] = x[i] >= t ? x[i] : -INFINITY;
  free(s);
}

static bool row_equal(const double *a, const double *b, long V) {
  for (long i = 0; i < V; i++)
    if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return false;
  return true;
}

/* A program over logits [rows, V] of dt with top_k of kdt, top_p of pdt. */
typedef struct sf_prog {
  asg_graph *g;
  asg_tensor *y;
  asg_program *p;
  asg_dtype dt, kdt, pdt;
  long rows, V;
} sf_prog;

static bool sf_open(sf_prog *s, asg_dtype dt, long rows, long V, asg_dtype kdt, bool kscalar,
                    asg_dtype pdt) {
  memset(s, 0, sizeof *s);
  s->dt = dt, s->kdt = kdt, s->pdt = pdt, s->rows = rows, s->V = V;
  s->g = asg_graph_new();
  asg_tensor *x = asg_input(s->g, "x", dt, ASG_SHAPE(rows, V));
  asg_tensor *k = asg_input(s->g, "k", kdt, kscalar ? ASG_SCALAR : ASG_SHAPE(1));
  asg_tensor *p = asg_input(s->g, "p", pdt, ASG_SHAPE(1));
  s->y = asg_sample_filter(x, k, p);
  asg_compile_opts o = {0};
  o.backend = backend;
  s->p = s->y ? asg_compile(s->g, 1, &s->y, &o) : NULL;
  TU_CHECK(s->p != NULL, "compile %s [%ld, %ld]: %s", asg_dtype_name(dt), rows, V,
           s->y ? asg_last_error() : asg_graph_error(s->g));
  return s->p != NULL;
}

static void sf_close(sf_prog *s) {
  asg_program_free(s->p);
  asg_graph_free(s->g);
}

/* Whether got (a row of the program) is the top-k then top-p filter of x
 * for some p' within relative eps of p (0 < p < 1): got is x on {x >= t}
 * within the top-k entries and -inf elsewhere, for a row value t whose
 * entries >= t hold mass >= p' Z and whose entries > t hold less. Sums of
 * another order (tree reductions, f32 on Vulkan) may place the crossing
 * differently where it lies within rounding of p; nothing else may differ. */
static bool near_top_p(const double *x, const double *got, long V, long long k, double p,
                       double eps) {
  double *s = malloc(sizeof(double) * (size_t)V);
  memcpy(s, x, sizeof(double) * (size_t)V);
  qsort(s, (size_t)V, sizeof *s, cmp_desc);
  const double tk = k > 0 && k < V ? s[k - 1] : s[V - 1], m = s[0];
  free(s);
  double t = INFINITY, z = 0, ge = 0, gt = 0;
  for (long i = 0; i < V; i++) {
    if (got[i] != x[i] && got[i] != -INFINITY) return false;
    if (got[i] == x[i] && x[i] > -INFINITY && x[i] < t) t = x[i];
  }
  if (t == INFINITY && m < INFINITY) t = m; /* only -inf entries kept: an all -inf row */
  for (long i = 0; i < V; i++) {
    const bool in_k = x[i] >= tk, want = in_k && x[i] >= t;
    if (want != (got[i] == x[i]) && x[i] > -INFINITY) return false;
    const double w = !in_k ? 0 : x[i] == m ? 1 : exp(x[i] - m);
    z += w;
    ge += x[i] >= t ? w : 0;
    gt += x[i] > t ? w : 0;
  }
  return ge >= p * (1 - eps) * z && gt < p * (1 + eps) * z;
}

/* Runs x with (k, p) and compares every row with the reference (exactly,
 * or by near_top_p for 0 < p < 1). */
static void sf_check(sf_prog *s, const double *x0, long long k, double p, const char *what) {
  const long n = s->rows * s->V;
  double *got = malloc(sizeof(double) * (size_t)n), *want = malloc(sizeof(double) * (size_t)n);
  double *x = malloc(sizeof(double) * (size_t)n); /* the values the program holds */
  for (long i = 0; i < n; i++)
    x[i] = s->dt == ASG_F32 ? (double)(float)x0[i] : x0[i];
  const double kd = (double)k;
  bool ok = tu_feed(s->p, "x", s->dt, x, n) == ASG_OK &&
            tu_feed(s->p, "k", s->kdt, &kd, 1) == ASG_OK &&
            tu_feed(s->p, "p", s->pdt, &p, 1) == ASG_OK && asg_program_run(s->p) == ASG_OK &&
            tu_fetch(s->p, s->y, got) == ASG_OK;
  TU_CHECK(ok, "%s: run: %s", what, asg_last_error());
  if (s->pdt == ASG_F32) p = (float)p;
  for (long r = 0; r < s->rows && ok; r++) {
    const double *xr = x + r * s->V, *gr = got + r * s->V;
    ref_row(xr, want + r * s->V, s->V, k, p);
    bool same = row_equal(gr, want + r * s->V, s->V);
    if (!same && p > 0 && p < 1) {
      bool has_nan = false;
      for (long i = 0; i < s->V; i++)
        has_nan = has_nan || isnan(xr[i]);
      same = !has_nan && near_top_p(xr, gr, s->V, k, p, 1e-4);
    }
    long kept = 0, want_kept = 0;
    for (long i = 0; i < s->V; i++) {
      kept += gr[i] > -INFINITY;
      want_kept += want[r * s->V + i] > -INFINITY;
    }
    TU_CHECK(same, "%s: row %ld differs (kept %ld, reference %ld)", what, r, kept, want_kept);
    ok = same;
  }
  free(got), free(want), free(x);
}

/* Rows of uniform values in [lo, hi) (floored: ties), x[rows * V]. */
static double *rows_of(long n, unsigned long long seed, double lo, double hi, bool ties) {
  double *x = malloc(sizeof(double) * (size_t)n);
  tu_rand(seed, x, n, lo, hi);
  for (long i = 0; i < n && ties; i++)
    x[i] = floor(x[i]);
  return x;
}

static const struct {
  long long k;
  double p;
} settings[] = {{0, 1},    {5, 1},     {0, 0.9},    {5, 0.5},   {1, 0.9},  {-3, 0.3},
                {37, 0.7}, {36, 0.99}, {100, 0.95}, {10, 0},    {10, -1},  {0, 1.5},
                {3, NAN},  {2, 0.01},  {0, 0.5},    {7, 0.999}, {0, 1e-9}, {1, 1}};
enum { N_SET = sizeof settings / sizeof settings[0] };

static void test_random(asg_dtype dt, asg_dtype kdt, bool kscalar, asg_dtype pdt) {
  sf_prog s;
  const long rows = 6, V = 37;
  if (!sf_open(&s, dt, rows, V, kdt, kscalar, pdt)) {
    sf_close(&s);
    return;
  }
  double *x = rows_of(rows * V, 11, -4, 4, false), *t = rows_of(rows * V, 12, -3, 3, true);
  /* special rows of the tied data: -inf entries, an all -inf row, +inf
   * entries, a NaN, all equal */
  for (long i = 0; i < V; i += 3)
    t[i] = -INFINITY;
  for (long i = 0; i < V; i++)
    t[V + i] = -INFINITY;
  t[2 * V + 4] = t[2 * V + 9] = INFINITY;
  t[3 * V + 20] = NAN;
  for (long i = 0; i < V; i++)
    t[4 * V + i] = 1.5;
  for (int k = 0; k < N_SET; k++) {
    char what[128];
    snprintf(what, sizeof what, "%s k=%lld (%s) p=%g (%s) random", asg_dtype_name(dt),
             settings[k].k, asg_dtype_name(kdt), settings[k].p, asg_dtype_name(pdt));
    sf_check(&s, x, settings[k].k, settings[k].p, what);
    snprintf(what, sizeof what, "%s k=%lld p=%g ties/inf/nan", asg_dtype_name(dt), settings[k].k,
             settings[k].p);
    sf_check(&s, t, settings[k].k, settings[k].p, what);
  }
  free(x), free(t);
  sf_close(&s);
}

/* GPT-2's vocabulary: logits ~ N(0, 3)-like spread, a few rows. */
static void test_vocab(void) {
  sf_prog s;
  const long rows = 3, V = 50257;
  if (!sf_open(&s, ASG_F32, rows, V, ASG_I64, false, ASG_F32)) {
    sf_close(&s);
    return;
  }
  double *x = rows_of(rows * V, 21, 0, 1, false), *u = rows_of(rows * V, 22, 0, 1, false);
  for (long i = 0; i < rows * V; i++) /* Box-Muller, sd 3 */
    x[i] = (float)(3 * sqrt(-2 * log(1 - x[i])) * cos(6.283185307179586 * u[i]));
  x[V + 17] = -INFINITY;
  const struct {
    long long k;
    double p;
  } vs[] = {{50, 1}, {0, 0.9}, {50, 0.9}, {0, 0.5}, {1, 1}, {1000, 0.95}, {50256, 0.99}};
  for (int k = 0; k < 7; k++) {
    char what[96];
    snprintf(what, sizeof what, "V=50257 k=%lld p=%g", vs[k].k, vs[k].p);
    sf_check(&s, x, vs[k].k, vs[k].p, what);
  }
  free(x), free(u);
  sf_close(&s);
}

static void test_build_errors(void) {
  const struct {
    asg_dtype xdt, kdt, pdt;
    asg_shape ks;
    const char *want;
  } bad[] = {
      {ASG_I32, ASG_I32, ASG_F32, ASG_SHAPE(1), "logits must be f32 or f64"},
      {ASG_F32, ASG_F32, ASG_F32, ASG_SHAPE(1), "top_k must be i32 or i64"},
      {ASG_F32, ASG_I32, ASG_I32, ASG_SHAPE(1), "top_p must be f32"},
      {ASG_F32, ASG_I32, ASG_F64, ASG_SHAPE(1), "top_p must be f32"},
      {ASG_F32, ASG_I32, ASG_F32, ASG_SHAPE(2), "one element"},
  };
  for (int k = 0; k < 5; k++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *x = asg_input(g, "x", bad[k].xdt, ASG_SHAPE(2, 5));
    asg_tensor *tk = asg_input(g, "k", bad[k].kdt, bad[k].ks);
    asg_tensor *tp = asg_input(g, "p", bad[k].pdt, ASG_SCALAR);
    TU_CHECK(asg_sample_filter(x, tk, tp) == NULL && tu_contains(asg_graph_error(g), bad[k].want),
             "bad case %d: '%s', want '%s'", k, asg_graph_error(g), bad[k].want);
    asg_graph_free(g);
  }
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (!asg_backend_available(backend)) {
    printf("SKIPPED: backend %s unavailable\n", backend);
    return TU_SKIP;
  }
  test_random(ASG_F32, ASG_I32, false, ASG_F32);
  test_random(ASG_F32, ASG_I64, true, ASG_F32);
  test_random(ASG_F64, ASG_I64, false, ASG_F64);
  test_random(ASG_F64, ASG_I32, true, ASG_F32);
  test_vocab();
  test_build_errors();
  return tu_finish();
}
