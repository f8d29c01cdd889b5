/* The CPU backend's thread pool through the public API: results that do not
 * depend on num_threads, identical results from programs with the same
 * count, programs created and freed in a loop (every worker joined), and
 * programs run from two threads at once, each with its own pool or sharing
 * one through share_variables. How the pool behaves under load is measured
 * by bench/load_collapse.sh (timings are not assertions). */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define B 128
#define NX (B * 3 * 12 * 12)
#define NSTEPS 3
#define NOUT (288 * 64 + 216)

static float xdata[NX], w1d[8 * 3 * 3 * 3], w2d[288 * 64], w3d[64 * 10];
static int32_t labels[B];

static void make_data(void) {
  static double tmp[NX];
  tu_rand(1, tmp, NX, -1, 1);
  for (long i = 0; i < NX; i++)
    xdata[i] = (float)tmp[i];
  tu_rand(2, tmp, 216, -0.3, 0.3);
  for (long i = 0; i < 216; i++)
    w1d[i] = (float)tmp[i];
  tu_rand(3, tmp, 288 * 64, -0.1, 0.1);
  for (long i = 0; i < 288 * 64; i++)
    w2d[i] = (float)tmp[i];
  tu_rand(4, tmp, 640, -0.2, 0.2);
  for (long i = 0; i < 640; i++)
    w3d[i] = (float)tmp[i];
  for (int i = 0; i < B; i++)
    labels[i] = (i * 7) % 10;
}

/* A small CNN train step large enough that every kind of kernel splits:
 * conv (image blocks and partial weight gradients), max-pool, matmul,
 * layernorm, softmax cross-entropy, Adam. */
static asg_program *cnn_train(int threads) {
  asg_graph *g = asg_graph_new();
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 3, 12, 12));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(B));
  asg_tensor *w1 = asg_variable(g, "w1", ASG_F32, ASG_SHAPE(8, 3, 3, 3), asg_init_data(w1d));
  asg_tensor *w2 = asg_variable(g, "w2", ASG_F32, ASG_SHAPE(288, 64), asg_init_data(w2d));
  asg_tensor *w3 = asg_variable(g, "w3", ASG_F32, ASG_SHAPE(64, 10), asg_init_data(w3d));
  asg_tensor *gm = asg_variable(g, "gamma", ASG_F32, ASG_SHAPE(64), asg_init_ones());
  asg_tensor *bt = asg_variable(g, "beta", ASG_F32, ASG_SHAPE(64), asg_init_zeros());
  asg_tensor *h = asg_relu(asg_conv2d(x, w1, NULL, (asg_conv_params){.padding = {1, 1}}));
  h = asg_max_pool2d(h, (asg_pool_params){.kernel = {2, 2}});
  h = asg_reshape(h, ASG_SHAPE(B, 288));
  h = asg_relu(asg_layernorm(asg_matmul(h, w2), gm, bt, 1e-5));
  asg_tensor *loss = asg_softmax_cross_entropy(asg_matmul(h, w3), y, 0.1, -100);
  asg_compile_opts o = {.num_threads = threads};
  asg_program *p = asg_compile_train(g, loss, asg_adam(1e-2), 0, NULL, &o);
  asg_graph_free(g);
  return p;
}

/* Runs NSTEPS steps; the variables w2 and w1 go to out (NOUT floats). */
static int train_steps(asg_program *p, float *out) {
  for (int s = 0; s < NSTEPS; s++) {
    if (asg_program_feed(p, "x", xdata, sizeof xdata) ||
        asg_program_feed(p, "y", labels, sizeof labels) || asg_program_run(p))
      return 1;
  }
  if (asg_program_get_variable(p, "w2", out, sizeof w2d)) return 1;
  return asg_program_get_variable(p, "w1", out + 288 * 64, sizeof w1d);
}

static float ref[8][NOUT];
static const int counts[5] = {1, 2, 3, 4, 8};

/* Two programs with the same thread count agree bit for bit; different
 * counts agree to rounding (the conv weight gradient adds one partial per
 * image block, and BLAS may round a row block differently). */
static void test_thread_counts(void) {
  static float again[NOUT];
  for (int k = 0; k < 5; k++) {
    asg_program *a = cnn_train(counts[k]), *b = cnn_train(counts[k]);
    TU_CHECK(a && b, "compile with %d threads: %s", counts[k], asg_last_error());
    if (a && b) {
      TU_CHECK(!train_steps(a, ref[k]) && !train_steps(b, again), "train %d threads: %s", counts[k],
               asg_last_error());
      TU_CHECK(!memcmp(ref[k], again, sizeof again), "%d threads: two programs differ", counts[k]);
    }
    asg_program_free(a);
    asg_program_free(b);
  }
  for (int k = 1; k < 5; k++) {
    double worst = 0;
    for (int i = 0; i < NOUT; i++) {
      double d = fabs((double)ref[k][i] - ref[0][i]) / (fabs(ref[0][i]) + 1e-3);
      if (d > worst) worst = d;
    }
    TU_CHECK(worst < 1e-3, "%d threads vs 1: relative difference %g", counts[k], worst);
  }
}

/* Ops whose result is independent of the thread count by construction:
 * broadcasting, reductions, softmax, layernorm, attention (fixed blocks,
 * one GEMM per block), permute, concat, gather. */
static asg_tensor *fwd_outputs(asg_graph *g, asg_tensor **outs) {
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(64, 1024));
  asg_tensor *gm = asg_variable(g, "gamma", ASG_F32, ASG_SHAPE(1024), asg_init_uniform(0.5, 1.5));
  asg_tensor *bt = asg_variable(g, "beta", ASG_F32, ASG_SHAPE(1024), asg_init_uniform(-1, 1));
  outs[0] = asg_log_softmax(x, 1);
  outs[1] = asg_layernorm(x, gm, bt, 1e-5);
  outs[2] = asg_sum(asg_mul(asg_add(x, bt), x), ASG_AXES(0), false);
  asg_tensor *q = asg_reshape(x, ASG_SHAPE(8, 4, 64, 32));
  outs[3] = asg_attention(q, q, q, 0.17, true);
  outs[4] = asg_permute(asg_reshape(x, ASG_SHAPE(64, 32, 32)), (const int[]){2, 0, 1});
  asg_tensor *parts[2] = {x, outs[1]};
  outs[5] = asg_concat(parts, 2, 0);
  int32_t idx[512];
  for (int i = 0; i < 512; i++)
    idx[i] = (i * 37) % 1024;
  asg_tensor *it = asg_constant(g, ASG_I32, ASG_SHAPE(512), idx);
  outs[6] = asg_gather(x, it, 1);
  return x;
}
#define NFWD 7
static const long fwd_n[NFWD] = {65536, 65536, 1024, 65536, 65536, 131072, 32768};

static int fwd_run(asg_program *p, asg_tensor *const *outs, const float *in, float **res) {
  if (asg_program_feed(p, "x", in, sizeof(float) * 65536) || asg_program_run(p)) return 1;
  for (int i = 0; i < NFWD; i++)
    if (asg_program_fetch(p, outs[i], res[i], sizeof(float) * (size_t)fwd_n[i])) return 1;
  return 0;
}

static float *fwd_alloc(void) {
  long n = 0;
  for (int i = 0; i < NFWD; i++)
    n += fwd_n[i];
  return calloc((size_t)n, sizeof(float));
}
static void fwd_split(float *buf, float **res) {
  for (int i = 0; i < NFWD; i++) {
    res[i] = buf;
    buf += fwd_n[i];
  }
}

static float fwd_in[65536];

static void test_fwd_bitwise(void) {
  float *want = fwd_alloc(), *got = fwd_alloc(), *rw[NFWD], *rg[NFWD];
  fwd_split(want, rw);
  fwd_split(got, rg);
  for (int k = 0; k < 5; k++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *outs[NFWD];
    fwd_outputs(g, outs);
    asg_compile_opts o = {.num_threads = counts[k]};
    asg_program *p = asg_compile(g, NFWD, outs, &o);
    TU_CHECK(p != NULL, "forward program, %d threads: %s", counts[k], asg_last_error());
    if (p) {
      TU_CHECK(!fwd_run(p, outs, fwd_in, k ? rg : rw), "run: %s", asg_last_error());
      for (int i = 0; k && i < NFWD; i++)
        TU_CHECK(!memcmp(rw[i], rg[i], sizeof(float) * (size_t)fwd_n[i]),
                 "output %d with %d threads differs from 1 thread", i, counts[k]);
    }
    asg_program_free(p);
    asg_graph_free(g);
  }
  free(want);
  free(got);
}

/* Threads of this process (Linux: /proc/self/task), -1 if unknown. */
static int task_count(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Each program starts its workers and joins them when freed. */
static void test_no_thread_leak(void) {
  int before = task_count();
  for (int i = 0; i < 40; i++) {
    asg_graph *g = asg_graph_new();
    asg_tensor *outs[NFWD];
    fwd_outputs(g, outs);
    asg_compile_opts o = {.num_threads = 4};
    asg_program *p = asg_compile(g, 1, outs, &o);
    TU_CHECK(p && asg_program_feed(p, "x", fwd_in, sizeof fwd_in) == ASG_OK &&
                 asg_program_run(p) == ASG_OK,
             "program %d: %s", i, asg_last_error());
    if (before > 0 && i == 0)
      TU_CHECK(task_count() == before + 3, "4 threads: %d tasks, want %d", task_count(),
               before + 3);
    asg_program_free(p);
    asg_graph_free(g);
  }
  if (before > 0)
    TU_CHECK(task_count() == before, "threads after 40 programs: %d, before: %d", task_count(),
             before);
}

/* ---- two programs on two threads at once ---- */
typedef struct job {
  int threads;
  float out[NOUT];
  int failed;
} job;

static void *train_job(void *arg) {
  job *j = arg;
  asg_program *p = cnn_train(j->threads);
  j->failed = !p || train_steps(p, j->out);
  asg_program_free(p);
  return NULL;
}

static void test_concurrent_programs(void) {
  job a = {.threads = 2}, b = {.threads = 4};
  pthread_t ta, tb;
  bool ok_a = !pthread_create(&ta, NULL, train_job, &a);
  bool ok_b = !pthread_create(&tb, NULL, train_job, &b);
  TU_CHECK(ok_a && ok_b, "pthread_create");
  if (ok_a) pthread_join(ta, NULL);
  if (ok_b) pthread_join(tb, NULL);
  if (!ok_a || !ok_b) return;
  TU_CHECK(!a.failed && !b.failed, "concurrent programs failed");
  TU_CHECK(!memcmp(a.out, ref[1], sizeof a.out), "2 threads, run beside another program: differs");
  TU_CHECK(!memcmp(b.out, ref[3], sizeof b.out), "4 threads, run beside another program: differs");
}

/* Programs sharing variables share the device and its pool: while one runs
 * a parallel loop, the other's loops run on its own thread (same results). */
typedef struct fwd_job {
  asg_program *p;
  asg_tensor **outs;
  const float *in;
  float *res[NFWD], *buf;
  int failed;
} fwd_job;

static void *fwd_job_run(void *arg) {
  fwd_job *j = arg;
  for (int r = 0; r < 20 && !j->failed; r++)
    j->failed = fwd_run(j->p, j->outs, j->in, j->res);
  return NULL;
}

static void test_shared_pool(void) {
  static float in2[65536];
  for (int i = 0; i < 65536; i++)
    in2[i] = fwd_in[(i * 7) % 65536] * 0.5f;
  asg_graph *g = asg_graph_new();
  asg_tensor *outs[NFWD];
  fwd_outputs(g, outs);
  asg_compile_opts o = {.num_threads = 2};
  asg_program *p1 = asg_compile(g, NFWD, outs, &o);
  o.share_variables = p1;
  asg_program *p2 = p1 ? asg_compile(g, NFWD, outs, &o) : NULL;
  TU_CHECK(p1 && p2, "shared programs: %s", asg_last_error());
  if (p1 && p2) {
    fwd_job want[2] = {{p1, outs, fwd_in, {0}, fwd_alloc(), 0},
                       {p2, outs, in2, {0}, fwd_alloc(), 0}};
    fwd_job got[2] = {{p1, outs, fwd_in, {0}, fwd_alloc(), 0},
                      {p2, outs, in2, {0}, fwd_alloc(), 0}};
    for (int i = 0; i < 2; i++) {
      fwd_split(want[i].buf, want[i].res);
      fwd_split(got[i].buf, got[i].res);
      want[i].failed = fwd_run(want[i].p, outs, want[i].in, want[i].res); /* one at a time */
    }
    pthread_t t[2];
    bool started[2];
    for (int i = 0; i < 2; i++) {
      started[i] = !pthread_create(&t[i], NULL, fwd_job_run, &got[i]);
      TU_CHECK(started[i], "pthread_create");
      got[i].failed |= !started[i];
    }
    for (int i = 0; i < 2; i++)
      if (started[i]) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
      TU_CHECK(!want[i].failed && !got[i].failed, "shared program %d failed", i);
      for (int k = 0; k < NFWD; k++)
        TU_CHECK(!memcmp(want[i].res[k], got[i].res[k], sizeof(float) * (size_t)fwd_n[k]),
                 "shared program %d, output %d: concurrent run differs", i, k);
      free(want[i].buf);
      free(got[i].buf);
    }
  }
  asg_program_free(p2);
  asg_program_free(p1);
  asg_graph_free(g);
}

/* Products split into blocks of rows and of columns: with more threads than
 * 16-row blocks ([128, 128] = A^T B over 512 rows, a weight gradient, on 16
 * threads; [136, 130] on 32) each block is split along the other axis too.
 * Against double loops over the same floats; also with a fused bias + ReLU. */
static void product_blocks(int M, int N) {
  enum { K = 512, MAX = 136 };
  static float a[K * MAX], b[K * MAX], bias[MAX], got[MAX * MAX];
  static double tmp[K * MAX];
  tu_rand(11, tmp, K * M, -1, 1);
  for (int i = 0; i < K * M; i++)
    a[i] = (float)tmp[i];
  tu_rand(12, tmp, K * N, -1, 1);
  for (int i = 0; i < K * N; i++)
    b[i] = (float)tmp[i];
  tu_rand(13, tmp, N, -1, 1);
  for (int i = 0; i < N; i++)
    bias[i] = (float)tmp[i];
  const int threads[] = {1, 3, 16, 32};
  for (int ti = 0; ti < 4; ti++)
    for (int act = 0; act < 2; act++) {
      asg_graph *g = asg_graph_new();
      asg_tensor *ta = asg_variable(g, "a", ASG_F32, ASG_SHAPE(K, M), asg_init_data(a));
      asg_tensor *tb = asg_variable(g, "b", ASG_F32, ASG_SHAPE(K, N), asg_init_data(b));
      asg_tensor *y = asg_matmul_t(ta, tb, true, false);
      if (act) y = asg_relu(asg_add(y, asg_constant(g, ASG_F32, ASG_SHAPE(N), bias)));
      asg_compile_opts o = {.num_threads = threads[ti]};
      asg_program *p = asg_compile(g, 1, &y, &o);
      bool ok = p && asg_program_run(p) == ASG_OK &&
                asg_program_fetch(p, y, got, sizeof(float) * (size_t)(M * N)) == ASG_OK;
      long bad = -1;
      for (int i = 0; ok && i < M && bad < 0; i++)
        for (int j = 0; j < N && bad < 0; j++) {
          double s = 0, mag = 0;
          for (int k = 0; k < K; k++)
            s += (double)a[k * M + i] * b[k * N + j],
                mag += fabs((double)a[k * M + i] * b[k * N + j]);
          if (act) s = s + bias[j] > 0 ? s + bias[j] : 0, mag += fabs(bias[j]);
          if (!(fabs(got[i * N + j] - s) <= 1e-5 * mag)) bad = i * N + j;
        }
      if (bad >= 0) printf("  element %ld: got %g\n", bad, got[bad]);
      TU_CHECK(ok && bad < 0, "a^T b [%d, %d] over %d rows%s on %d threads", M, N, K,
               act ? " + bias, relu" : "", threads[ti]);
      asg_program_free(p);
      asg_graph_free(g);
    }
}

static void test_product_blocks(void) {
  product_blocks(128, 128);
  product_blocks(136, 130);
}

int main(void) {
  make_data();
  static double tmp[65536];
  tu_rand(5, tmp, 65536, -3, 3);
  for (int i = 0; i < 65536; i++)
    fwd_in[i] = (float)tmp[i];
  test_thread_counts();
  test_fwd_bitwise();
  test_no_thread_leak();
  test_concurrent_programs();
  test_shared_pool();
  test_product_blocks();
  return tu_finish();
}
