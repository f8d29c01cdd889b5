/* Threads: independent programs on several threads give the results they
 * give alone (also with bf16_matmul, whose CPU products share oneDNN
 * primitives between threads), and the shared-variables pattern (a training program on one
 * thread, an evaluation program sharing its variables on another) never
 * lets the evaluation see half an update. Meant to run under
 * ThreadSanitizer too (CI builds it with -fsanitize=thread). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- independent programs ---- */
enum { NB = 8, DI = 5, DH = 16, DO = 3, STEPS = 12, NTHREADS = 4 };

/* A two-layer MLP trained with Adam for STEPS runs on fixed data; the first
 * layer's weight after training goes to out. 0 on success. Two CPU threads
 * per program: each device's own workers run too. */
static int train_mlp(uint64_t seed, bool bf16, float *out) {
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, seed);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(NB, DI));
  asg_tensor *y = asg_input(g, "y", ASG_F32, ASG_SHAPE(NB, DO));
  asg_layer *l1 = asg_nn_linear(g, "l1", DI, DH), *l2 = asg_nn_linear(g, "l2", DH, DO);
  asg_tensor *pred = asg_layer_apply(l2, asg_tanh(asg_layer_apply(l1, x)));
  asg_tensor *loss = asg_mse_loss(pred, y, ASG_REDUCE_MEAN);
  asg_compile_opts co = {.num_threads = 2, .bf16_matmul = bf16};
  asg_program *p = asg_compile_train(g, loss, asg_adam(0.01), 0, NULL, &co);
  int rc = 1;
  if (p) {
    double xd[NB * DI], yd[NB * DO];
    float xf[NB * DI], yf[NB * DO];
    tu_rand(seed, xd, NB * DI, -1, 1);
    tu_rand(seed + 1, yd, NB * DO, -1, 1);
    for (int i = 0; i < NB * DI; i++)
      xf[i] = (float)xd[i];
    for (int i = 0; i < NB * DO; i++)
      yf[i] = (float)yd[i];
    rc = asg_program_feed(p, "x", xf, sizeof xf) || asg_program_feed(p, "y", yf, sizeof yf);
    for (int s = 0; s < STEPS && !rc; s++)
      rc = asg_program_run(p) != ASG_OK;
    if (!rc) rc = asg_program_get_variable(p, "l1.weight", out, DH * DI * sizeof(float)) != ASG_OK;
  }
  asg_program_free(p);
  asg_graph_free(g);
  return rc;
}

typedef struct indep_job {
  uint64_t seed;
  bool bf16;
  float w[DH * DI];
  int rc;
  char err[256];
} indep_job;

static void *indep_thread(void *arg) {
  indep_job *j = arg;
  for (int rep = 0; rep < 3 && !j->rc; rep++) /* build, compile, train, free, again */
    j->rc = train_mlp(j->seed, j->bf16, j->w);
  if (j->rc) snprintf(j->err, sizeof j->err, "%s", asg_last_error());
  return NULL;
}

static void test_independent(bool bf16) {
  indep_job jobs[NTHREADS];
  float want[NTHREADS][DH * DI];
  for (int t = 0; t < NTHREADS; t++) { /* alone, first */
    memset(&jobs[t], 0, sizeof jobs[t]);
    jobs[t].seed = 100 + 17 * (uint64_t)(t % 2); /* two threads per model */
    jobs[t].bf16 = bf16;
    TU_CHECK(train_mlp(jobs[t].seed, bf16, want[t]) == 0, "reference run %d: %s", t,
             asg_last_error());
  }
  pthread_t th[NTHREADS];
  int started = 0;
  for (int t = 0; t < NTHREADS; t++)
    started += pthread_create(&th[t], NULL, indep_thread, &jobs[t]) == 0;
  TU_CHECK(started == NTHREADS, "threads started: %d", started);
  for (int t = 0; t < started; t++)
    pthread_join(th[t], NULL);
  for (int t = 0; t < started; t++)
    TU_CHECK(jobs[t].rc == 0 && memcmp(jobs[t].w, want[t], sizeof want[t]) == 0,
             "thread %d%s: same weights as alone (rc %d %s)", t, bf16 ? " (bf16)" : "", jobs[t].rc,
             jobs[t].err);
}

/* ---- shared variables: train on one thread, evaluate on another ----
 * w [N] and c [1] start at 0; the loss -(sum(w * x) + sum(c)) with x = 1
 * has gradient -1 for every element, so each SGD step (lr 1) adds exactly 1
 * to all of them, in separate update ops. The evaluation reads w and c:
 * every element of w must equal c (a read during a step would mix steps),
 * the value never decreases between evaluations, and ends at TRAIN_STEPS. */
enum { N = 4096, TRAIN_STEPS = 60, EVAL_MIN = 20 };

typedef struct shared_job {
  asg_graph *g;
  asg_program *train, *eval;
  asg_tensor *ev; /* eval output: concat of w and c */
  int rc, bad, evals;
  double last;
  char terr[256], eerr[256]; /* one per thread */
  _Atomic int train_done;
} shared_job;

static void *train_thread(void *arg) {
  shared_job *j = arg;
  for (int s = 0; s < TRAIN_STEPS && !j->rc; s++)
    if (asg_program_run(j->train) != ASG_OK) {
      j->rc = 1;
      snprintf(j->terr, sizeof j->terr, "train: %s", asg_last_error());
    }
  j->train_done = 1;
  return NULL;
}

static void *eval_thread(void *arg) {
  shared_job *j = arg;
  /* compile the eval program here, onto the store the train thread uses */
  asg_compile_opts co = {.share_variables = j->train};
  j->eval = asg_compile(j->g, 1, &j->ev, &co);
  if (!j->eval) {
    snprintf(j->eerr, sizeof j->eerr, "eval compile: %s", asg_last_error());
    j->bad++;
    return NULL;
  }
  float *v = malloc(sizeof(float) * (N + 1));
  float one = 1;
  j->last = -1;
  asg_program_feed(j->eval, "scale", &one, sizeof one);
  while (v) {
    int done = j->train_done; /* read before the run: the last run sees the final state */
    if (asg_program_run(j->eval) != ASG_OK ||
        asg_program_fetch(j->eval, j->ev, v, sizeof(float) * (N + 1)) != ASG_OK) {
      snprintf(j->eerr, sizeof j->eerr, "eval: %s", asg_last_error());
      j->bad++;
      break;
    }
    double c = v[N];
    int torn = 0;
    for (int i = 0; i < N; i++)
      torn += v[i] != c;
    if (torn || c < j->last || c != floor(c)) {
      if (!j->bad)
        snprintf(j->eerr, sizeof j->eerr, "c %g, last %g, %d elements differ", c, j->last, torn);
      j->bad++;
    }
    /* a variable read directly after the run is at least as new */
    float cv = 0;
    asg_program_get_variable(j->eval, "c", &cv, sizeof cv);
    if (cv < c) j->bad++;
    j->last = c;
    j->evals++;
    if (done && j->evals >= EVAL_MIN) break;
  }
  free(v);
  return NULL;
}

static void test_shared_train_eval(void) {
  shared_job j = {0};
  j.g = asg_graph_new();
  asg_tensor *x = asg_input(j.g, "x", ASG_F32, ASG_SHAPE(N));
  asg_tensor *w = asg_variable(j.g, "w", ASG_F32, ASG_SHAPE(N), asg_init_zeros());
  asg_tensor *c = asg_variable(j.g, "c", ASG_F32, ASG_SHAPE(1), asg_init_zeros());
  asg_tensor *loss = asg_neg(
      asg_add(asg_sum(asg_mul(w, x), ASG_ALL_AXES, false), asg_sum(c, ASG_ALL_AXES, false)));
  asg_tensor *scale = asg_input(j.g, "scale", ASG_F32, ASG_SHAPE(1));
  asg_tensor *parts[2] = {asg_mul(w, asg_broadcast_to(scale, ASG_SHAPE(N))), asg_mul(c, scale)};
  j.ev = asg_concat(parts, 2, 0);
  asg_compile_opts co = {.num_threads = 2};
  j.train = asg_compile_train(j.g, loss, asg_sgd(1, 0), 0, NULL, &co);
  TU_CHECK(j.train != NULL && j.ev != NULL, "compile train: %s", asg_last_error());
  if (!j.train) {
    asg_graph_free(j.g);
    return;
  }
  static float ones[N];
  for (int i = 0; i < N; i++)
    ones[i] = 1;
  asg_program_feed(j.train, "x", ones, sizeof ones);
  pthread_t a, b;
  int ok_b = pthread_create(&b, NULL, eval_thread, &j) == 0;
  int ok_a = pthread_create(&a, NULL, train_thread, &j) == 0;
  TU_CHECK(ok_a && ok_b, "threads started");
  if (ok_a) pthread_join(a, NULL);
  if (ok_b) pthread_join(b, NULL);
  TU_CHECK(j.rc == 0 && j.bad == 0, "eval never saw a torn or decreasing state (%d evals): %s %s",
           j.evals, j.terr, j.eerr);
  TU_CHECK(j.last == TRAIN_STEPS, "the last eval saw all %d steps: %g", TRAIN_STEPS, j.last);
  static float wv[N];
  TU_CHECK(asg_program_get_variable(j.train, "w", wv, sizeof wv) == ASG_OK &&
               wv[0] == TRAIN_STEPS && wv[N - 1] == TRAIN_STEPS,
           "w after training: %g", (double)wv[0]);
  asg_program_free(j.eval);
  asg_program_free(j.train);
  asg_graph_free(j.g);
}

/* Three programs on one store run and are freed on three threads: the
 * store's reference count and the device are under its lock. */
typedef struct free_job {
  asg_program *p;
  int rc;
} free_job;

static void *run_then_free(void *arg) {
  free_job *f = arg;
  for (int r = 0; r < 50 && !f->rc; r++)
    f->rc = asg_program_run(f->p) != ASG_OK;
  asg_program_free(f->p);
  return NULL;
}

static void test_free_concurrently(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_variable(g, "w", ASG_F64, ASG_SHAPE(64), asg_init_ones());
  asg_tensor *y1 = asg_assign(w, asg_add_scalar(w, 1));
  asg_tensor *y2 = asg_mul_scalar(w, 2);
  asg_program *p1 = asg_compile(g, 1, &y1, NULL);
  asg_compile_opts co = {.share_variables = p1};
  asg_program *p2 = asg_compile(g, 1, &y2, &co);
  asg_program *p3 = asg_compile(g, 1, &y2, &co);
  TU_CHECK(p1 && p2 && p3, "compile: %s", asg_last_error());
  if (!p1 || !p2 || !p3) {
    asg_program_free(p1), asg_program_free(p2), asg_program_free(p3);
    asg_graph_free(g);
    return;
  }
  free_job jobs[3] = {{p1, 0}, {p2, 0}, {p3, 0}};
  pthread_t th[3];
  int started = 0;
  for (int t = 0; t < 3; t++)
    started += pthread_create(&th[t], NULL, run_then_free, &jobs[t]) == 0;
  for (int t = 0; t < started; t++)
    pthread_join(th[t], NULL);
  TU_CHECK(started == 3 && !jobs[0].rc && !jobs[1].rc && !jobs[2].rc,
           "three programs on one store ran and were freed on three threads");
  asg_graph_free(g);
}

int main(void) {
  if (!asg_backend_available("cpu")) return TU_SKIP;
  test_independent(false);
  test_independent(true);
  test_shared_train_eval();
  test_free_concurrently();
  return tu_finish();
}
