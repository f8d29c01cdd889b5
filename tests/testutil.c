#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int tu_pass, tu_fail;

int tu_finish(void) {
  printf("%d passed, %d failed\n", tu_pass, tu_fail);
  return tu_fail ? 1 : 0;
}

void tu_rand(unsigned long long seed, double *out, long n, double lo, double hi) {
  unsigned long long s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (long i = 0; i < n; i++) {
    s ^= s >> 33;
    s *= 0xff51afd7ed558ccdull;
    s ^= s >> 33;
    s += 0x9e3779b97f4a7c15ull;
    out[i] = lo + (hi - lo) * ((double)(s >> 11) / 9007199254740992.0);
  }
}

int tu_close(const char *what, const double *got, const double *want, long n, double atol,
             double rtol) {
  for (long i = 0; i < n; i++) {
    double d = fabs(got[i] - want[i]);
    if (!(d <= atol + rtol * fabs(want[i])) && !(isnan(got[i]) && isnan(want[i]))) {
      printf("  %s: element %ld: got %.10g want %.10g\n", what, i, got[i], want[i]);
      return 0;
    }
  }
  return 1;
}

void tu_to_double(asg_dtype dt, const void *src, double *dst, long n) {
  for (long i = 0; i < n; i++) {
    switch (dt) {
    case ASG_F32: dst[i] = ((const float *)src)[i]; break;
    case ASG_F64: dst[i] = ((const double *)src)[i]; break;
    case ASG_I32: dst[i] = ((const int32_t *)src)[i]; break;
    case ASG_I64: dst[i] = (double)((const int64_t *)src)[i]; break;
    default: dst[i] = NAN;
    }
  }
}

void tu_from_double(asg_dtype dt, const double *src, void *dst, long n) {
  for (long i = 0; i < n; i++) {
    switch (dt) {
    case ASG_F32: ((float *)dst)[i] = (float)src[i]; break;
    case ASG_F64: ((double *)dst)[i] = src[i]; break;
    case ASG_I32: ((int32_t *)dst)[i] = (int32_t)src[i]; break;
    case ASG_I64: ((int64_t *)dst)[i] = (int64_t)src[i]; break;
    default: break;
    }
  }
}

asg_tensor *tu_constant(asg_graph *g, asg_dtype dt, asg_shape s, const double *v) {
  long n = (long)asg_shape_numel(s);
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  tu_from_double(dt, v, buf, n);
  asg_tensor *t = asg_constant(g, dt, s, buf);
  free(buf);
  return t;
}

int tu_fetch(asg_program *p, asg_tensor *t, double *out) {
  long n = (long)asg_shape_numel(asg_tensor_shape(t));
  asg_dtype dt = asg_tensor_dtype(t);
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  int rc = asg_program_fetch(p, t, buf, (size_t)n * asg_dtype_size(dt));
  if (rc == ASG_OK) tu_to_double(dt, buf, out, n);
  free(buf);
  return rc;
}

/* Index of variable `name` in p (its dtype and shape), or -1. */
static int find_var(asg_program *p, const char *name, asg_dtype *dt, asg_shape *s) {
  for (int i = 0; i < asg_program_variable_count(p); i++) {
    const char *nm;
    asg_program_variable_info(p, i, &nm, dt, s);
    if (!strcmp(nm, name)) return i;
  }
  return -1;
}

long tu_get_var(asg_program *p, const char *name, double *v) {
  asg_dtype dt;
  asg_shape s;
  if (find_var(p, name, &dt, &s) < 0) return -1;
  long n = (long)asg_shape_numel(s);
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  asg_program_get_variable(p, name, buf, (size_t)n * asg_dtype_size(dt));
  tu_to_double(dt, buf, v, n);
  free(buf);
  return n;
}

int tu_set_var(asg_program *p, const char *name, const double *v) {
  asg_dtype dt;
  asg_shape s;
  if (find_var(p, name, &dt, &s) < 0) return -1;
  long n = (long)asg_shape_numel(s);
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  tu_from_double(dt, v, buf, n);
  int rc = asg_program_set_variable(p, name, buf, (size_t)n * asg_dtype_size(dt));
  free(buf);
  return rc;
}

int tu_feed(asg_program *p, const char *name, asg_dtype dt, const double *v, long n) {
  void *buf = malloc((size_t)(n ? n : 1) * 8);
  tu_from_double(dt, v, buf, n);
  int rc = asg_program_feed(p, name, buf, (size_t)n * asg_dtype_size(dt));
  free(buf);
  return rc;
}

bool tu_contains(const char *s, const char *sub) { return s && strstr(s, sub); }

void tu_write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return;
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

const char *tu_tmpdir_create(const char *prefix) {
  static char dir[512];
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
  return mkdtemp(dir);
}

void tu_tmpdir_remove(const char *dir) {
  DIR *d = opendir(dir);
  for (struct dirent *de; d && (de = readdir(d));)
    if (de->d_name[0] != '.') unlink(tu_path(dir, de->d_name));
  if (d) closedir(d);
  rmdir(dir);
}

const char *tu_path(const char *dir, const char *name) {
  static char buf[8][1400];
  static int k;
  k = (k + 1) % 8;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

int tu_eval(asg_graph *g, asg_tensor *y, double *out) {
  if (!y) {
    printf("  eval: graph error: %s\n", asg_graph_error(g));
    return -1;
  }
  asg_program *p = asg_compile(g, 1, &y, NULL);
  if (!p) {
    printf("  eval: compile failed: %s\n", asg_last_error());
    return -1;
  }
  int rc = -1;
  if (asg_program_run(p) == ASG_OK && tu_fetch(p, y, out) == ASG_OK)
    rc = 0;
  else
    printf("  eval: run failed: %s\n", asg_last_error());
  asg_program_free(p);
  return rc;
}

int tu_gradcheck(const char *name, int n, const asg_shape *shapes, tu_build_fn build, void *ctx,
                 const tu_gc_opts *opts) {
  tu_gc_opts o = {-1, 1, 1e-6, 1e-6, NULL};
  if (opts) {
    o = *opts;
    if (o.lo == 0 && o.hi == 0) o.lo = -1, o.hi = 1;
    if (o.eps == 0) o.eps = 1e-6;
    if (o.tol == 0) o.tol = 1e-6;
  }
  int bad = 0;
  asg_graph *g = asg_graph_new();
  asg_tensor *xs[8], *grads[8];
  double *vals[8];
  char vname[8][16];
  for (int i = 0; i < n; i++) {
    long m = (long)asg_shape_numel(shapes[i]);
    vals[i] = malloc(sizeof(double) * (size_t)(m ? m : 1));
    if (o.data && o.data[i])
      memcpy(vals[i], o.data[i], sizeof(double) * (size_t)m);
    else
      tu_rand(1234 + (unsigned)i * 77, vals[i], m, o.lo, o.hi);
    snprintf(vname[i], sizeof vname[i], "x%d", i);
    xs[i] = asg_variable(g, vname[i], ASG_F64, shapes[i], asg_init_data(vals[i]));
  }
  asg_tensor *y = build(g, xs, ctx);
  asg_program *p = NULL;
  if (!y) {
    printf("FAIL gradcheck %s: build failed: %s\n", name, asg_graph_error(g));
    bad = 1;
    goto out;
  }
  {
    long ny = (long)asg_shape_numel(asg_tensor_shape(y));
    double *r = malloc(sizeof(double) * (size_t)ny);
    tu_rand(99, r, ny, 0.5, 1.5);
    asg_tensor *w = asg_constant(g, ASG_F64, asg_tensor_shape(y), r);
    free(r);
    asg_tensor *loss = asg_sum(asg_mul(asg_cast(y, ASG_F64), w), ASG_ALL_AXES, false);
    if (asg_grad(loss, n, xs, grads) != ASG_OK) {
      printf("FAIL gradcheck %s: asg_grad: %s\n", name, asg_last_error());
      bad = 1;
      goto out;
    }
    asg_tensor *outs[9];
    outs[0] = loss;
    for (int i = 0; i < n; i++)
      outs[i + 1] = grads[i];
    p = asg_compile(g, n + 1, outs, NULL);
    if (p) asg_program_set_run_count(p, 0);
    if (!p || asg_program_run(p) != ASG_OK) {
      printf("FAIL gradcheck %s: compile/run: %s\n", name, asg_last_error());
      bad = 1;
      goto out;
    }
    for (int i = 0; i < n && !bad; i++) {
      long m = (long)asg_shape_numel(shapes[i]);
      double *an = malloc(sizeof(double) * (size_t)m);
      asg_program_fetch(p, grads[i], an, sizeof(double) * (size_t)m);
      for (long j = 0; j < m; j++) {
        double keep = vals[i][j];
        vals[i][j] = keep + o.eps;
        asg_program_set_variable(p, vname[i], vals[i], sizeof(double) * (size_t)m);
        asg_program_set_run_count(p, 0);
        asg_program_run(p);
        double lp = asg_program_scalar(p, loss);
        vals[i][j] = keep - o.eps;
        asg_program_set_variable(p, vname[i], vals[i], sizeof(double) * (size_t)m);
        asg_program_set_run_count(p, 0);
        asg_program_run(p);
        double lm = asg_program_scalar(p, loss);
        vals[i][j] = keep;
        asg_program_set_variable(p, vname[i], vals[i], sizeof(double) * (size_t)m);
        double num = (lp - lm) / (2 * o.eps);
        double scale = fabs(num) > 1 ? fabs(num) : 1;
        if (!(fabs(an[j] - num) <= o.tol * scale * 10 + 1e-7)) {
          printf("FAIL gradcheck %s: d/dx%d[%ld]: analytic %.10g numeric %.10g\n", name, i, j,
                 an[j], num);
          bad++;
          break;
        }
      }
      free(an);
    }
  }
out:
  asg_program_free(p);
  asg_graph_free(g);
  for (int i = 0; i < n; i++)
    free(vals[i]);
  if (bad)
    tu_fail++;
  else
    tu_pass++;
  return bad;
}

/* ---- the same bits at every SIMD level ---- */
static double *g_dump;
static long g_ndump, g_cap;

void tu_dump(const double *v, long n) {
  if (g_ndump + n > g_cap) {
    g_cap = (g_ndump + n) * 2;
    g_dump = realloc(g_dump, sizeof(double) * (size_t)g_cap);
  }
  memcpy(g_dump + g_ndump, v, sizeof(double) * (size_t)n);
  g_ndump += n;
}

/* Runs self with ASG_CPU_SIMD=level and "--dump FILE"; compares the file
 * with this process's values. */
static void same_at_level(const char *self, const char *level) {
  const char *dir = tu_tmpdir_create("asg_simd");
  if (!dir) return;
  const char *file = tu_path(dir, "out.bin");
  pid_t pid = fork();
  if (pid == 0) {
    setenv("ASG_CPU_SIMD", level, 1);
    execl(self, self, "--dump", file, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  FILE *f = fopen(file, "rb");
  double *o = malloc(sizeof(double) * (size_t)(g_ndump + 1));
  long n = f ? (long)fread(o, sizeof(double), (size_t)g_ndump + 1, f) : -1;
  if (f) fclose(f);
  int same = WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == g_ndump;
  for (long i = 0; same && i < n; i++) {
    same = isnan(o[i]) ? isnan(g_dump[i]) != 0 : memcmp(&o[i], &g_dump[i], sizeof(double)) == 0;
    if (!same) printf("  value %ld: %.9g at %s, %.9g here\n", i, o[i], level, g_dump[i]);
  }
  TU_CHECK(same, "ASG_CPU_SIMD=%s gives the same bits as the default level (%ld of %ld values)",
           level, n, g_ndump);
  free(o);
  tu_tmpdir_remove(dir);
}

int tu_simd_main(int argc, char **argv, void (*run_all)(void)) {
  run_all();
  if (argc == 3 && !strcmp(argv[1], "--dump")) {
    tu_write_file(argv[2], g_dump, sizeof(double) * (size_t)g_ndump);
  } else {
    same_at_level(argv[0], "none");
    same_at_level(argv[0], "avx2");
  }
  free(g_dump);
  g_dump = NULL, g_ndump = g_cap = 0;
  return tu_finish();
}

/* ---- broadcasting for references ---- */
long tu_bcast_index(asg_shape in, asg_shape out, long o) {
  long idx = 0, stride = 1;
  for (int d = out.ndim - 1; d >= 0; d--) {
    long i = o % out.dims[d];
    o /= (long)out.dims[d];
    int id = in.ndim - out.ndim + d;
    if (id >= 0) {
      if (in.dims[id] != 1) idx += i * stride;
      stride *= (long)in.dims[id];
    }
  }
  return idx;
}

asg_shape tu_bcast_shape(asg_shape a, asg_shape b) {
  asg_shape r = {a.ndim > b.ndim ? a.ndim : b.ndim, {0}};
  for (int i = 0; i < r.ndim; i++) {
    int ia = a.ndim - r.ndim + i, ib = b.ndim - r.ndim + i;
    int64_t da = ia >= 0 ? a.dims[ia] : 1, db = ib >= 0 ? b.dims[ib] : 1;
    r.dims[i] = da == 1 ? db : da;
  }
  return r;
}

void tu_onnx_roundtrip(asg_graph *g, asg_tensor *y, const double *xv, long n, double rtol,
                       double atol, const char *what) {
  const char *dir = tu_tmpdir_create("asg_onnx_rt");
  double *want = calloc((size_t)n, sizeof(double)), *got = calloc((size_t)n, sizeof(double));
  if (!dir || !want || !got) {
    TU_CHECK(0, "%s: out of memory or no temporary folder", what);
    free(want), free(got);
    if (dir) tu_tmpdir_remove(dir);
    return;
  }
  const char *path = tu_path(dir, "model.onnx");
  asg_program *p = asg_compile(g, 1, &y, NULL);
  TU_CHECK(p && tu_feed(p, "x", ASG_F32, xv, n) == 0 && asg_program_run(p) == ASG_OK &&
               tu_fetch(p, y, want) == 0,
           "%s: source program: %s", what, asg_last_error());
  asg_onnx_export_opts o = {.program = p};
  asg_status st = asg_onnx_export(g, 1, &y, path, &o);
  if (st == ASG_ERR_UNSUPPORTED && tu_contains(asg_last_error(), "built without ONNX")) {
    printf("%s: built without ONNX: export not checked\n", what);
  } else {
    TU_CHECK(st == ASG_OK, "%s: onnx export: %s", what, asg_last_error());
    asg_graph *g2 = asg_graph_new();
    asg_onnx_model *m = NULL;
    asg_program *p2 = NULL;
    if (!st && asg_onnx_import(g2, path, NULL, &m) == ASG_OK) {
      asg_tensor *o2 = asg_onnx_model_output(m, 0);
      p2 = asg_compile(g2, 1, &o2, NULL);
      TU_CHECK(p2 && tu_feed(p2, "x", ASG_F32, xv, n) == 0 && asg_program_run(p2) == ASG_OK &&
                   tu_fetch(p2, o2, got) == 0 && tu_close(what, got, want, n, rtol, atol),
               "%s: onnx round trip: %s", what, asg_last_error());
    } else {
      TU_CHECK(0, "%s: onnx import: %s", what, asg_last_error());
    }
    asg_program_free(p2);
    asg_onnx_model_free(m);
    asg_graph_free(g2);
  }
  asg_program_free(p);
  free(want), free(got);
  tu_tmpdir_remove(dir);
}
