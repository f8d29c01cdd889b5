/* Allocation-failure sweep: fails the Nth allocation made by the library,
 * for every N, over building, compiling, training, evaluating, saving and
 * loading a small conv + MLP model with Adam (and a batcher).
 *
 * The test links the static library with the linker's --wrap for malloc,
 * calloc, realloc, aligned_alloc, posix_memalign, strdup and strndup
 * (tests/alloc/CMakeLists.txt), so that only the library's allocations are
 * counted. Each N runs in a forked child with a time limit; it must end in a
 * clean error (a failed status or NULL, ASG_ERR_OOM, with a message) or in
 * the uninjected run's exact results, and must not crash, hang, leak (under
 * LeakSanitizer) or leave temporary files. The sweep ends at the first N
 * whose run finishes without reaching its injected failure. A failing N is
 * reported with the stage it was in and the call stack of the allocation
 * that failed.
 *
 *   test_alloc_sweep [FIRST_N [LAST_N]]   (environment:
 *   ASG_ALLOC_SWEEP_TIMEOUT seconds per N, default 10) */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---- the wrapped allocator ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

/* With a sanitizer runtime, names file:line of a code address. */
void __sanitizer_symbolize_pc(void *pc, const char *fmt, char *buf, size_t n) __attribute__((weak));

enum { MAX_FRAMES = 32, MAX_LOSSES = 4 };

/* Written by a child, read by the parent (a MAP_SHARED mapping). */
typedef struct shared {
  long allocs; /* allocations counted */
  int hit;     /* the injected failure happened */
  int n_frames;
  void *frames[MAX_FRAMES]; /* call stack of the failed allocation */
  char stage[64];           /* what the child was doing */
  int status;               /* the scenario's status */
  char msg[256];            /* and its message */
  /* results of a run that succeeded */
  double losses[MAX_LOSSES];
  double eval_sum;
  int64_t loaded_step;
  long loaded_tensors;
} shared;

static shared *sh;
static bool armed; /* counting (in a child, during the scenario) */
static atomic_long counter;
static long fail_at; /* 0: never */

/* Counts one allocation; true if it is the one to fail. */
static bool inject(void) {
  if (!armed) return false;
  long k = atomic_fetch_add(&counter, 1) + 1;
  sh->allocs = k;
  if (k != fail_at) return false;
  sh->hit = 1;
  sh->n_frames = backtrace(sh->frames, MAX_FRAMES);
  return true;
}

void *__wrap_malloc(size_t n) { return inject() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t k, size_t n) { return inject() ? NULL : __real_calloc(k, n); }
void *__wrap_realloc(void *p, size_t n) { return inject() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t a, size_t n) {
  return inject() ? NULL : __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
  return inject() ? ENOMEM : __real_posix_memalign(p, a, n);
}
char *__wrap_strdup(const char *s) { return inject() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return inject() ? NULL : __real_strndup(s, n); }

/* ---- the scenario (run in a child) ---- */

enum { B = 4, C = 3, HW = 5, CH = 2, HID = 8 };
static const char *dir;

typedef struct handles {
  asg_graph *g;
  asg_program *train, *eval;
  asg_batcher *batcher;
  asg_safetensors *st;
  asg_host_tensor t;
} handles;

static void release(handles *h) {
  asg_host_tensor_free(&h->t);
  asg_safetensors_close(h->st);
  asg_batcher_free(h->batcher);
  asg_program_free(h->eval);
  asg_program_free(h->train);
  asg_graph_free(h->g);
  *h = (handles){0};
}

static void stage(const char *s) { snprintf(sh->stage, sizeof sh->stage, "%s", s); }

/* conv 1->2 (3x3, same) -> relu -> flatten -> linear 50->8 -> relu ->
 * linear 8->3, cross-entropy, Adam; an eval program shares the variables. */
static asg_status build(handles *h, asg_tensor **loss, asg_tensor **logits) {
  stage("build");
  if (!(h->g = asg_graph_new())) return ASG_ERR_OOM;
  asg_graph *g = h->g;
  asg_graph_set_seed(g, 3);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(B, 1, HW, HW));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(B));
  asg_conv_params same = {.padding = {1, 1}};
  asg_layer *layers[] = {asg_nn_conv2d(g, "conv", 1, CH, 3, 3, same, true),
                         asg_nn_activation(g, "relu1", ASG_ACT_RELU),
                         asg_nn_flatten(g, "flat", 1),
                         asg_nn_linear(g, "fc1", CH * HW * HW, HID),
                         asg_nn_activation(g, "relu2", ASG_ACT_RELU),
                         asg_nn_linear(g, "fc2", HID, C)};
  asg_layer *net = asg_nn_sequential(g, "net", 6, layers);
  *logits = asg_layer_apply(net, x);
  *loss = asg_cross_entropy_loss(*logits, y, 0, -100, ASG_REDUCE_MEAN);
  if (asg_graph_status(g) != ASG_OK) return asg_graph_status(g);
  stage("compile_train");
  asg_compile_opts o = {.num_threads = 1};
  if (!(h->train = asg_compile_train(g, *loss, asg_adam(0.01), 0, NULL, &o))) return ASG_ERR_OOM;
  stage("compile_eval");
  asg_compile_opts oe = {.num_threads = 1, .share_variables = h->train};
  if (!(h->eval = asg_compile(g, 1, logits, &oe))) return ASG_ERR_OOM;
  return ASG_OK;
}

/* Feeds x, and the labels y when the program has them (the eval one not). */
static asg_status feed(asg_program *p, int64_t step, bool labels) {
  float x[B * HW * HW];
  int32_t y[B];
  for (int i = 0; i < B * HW * HW; i++)
    x[i] = (float)((i * 7 + step * 3) % 13) / 6.0f - 1.0f;
  for (int i = 0; i < B; i++)
    y[i] = (int32_t)((i + step) % C);
  asg_status st = asg_program_feed(p, "x", x, sizeof x);
  return st || !labels ? st : asg_program_feed(p, "y", y, sizeof y);
}

static asg_status train_step(handles *h, asg_tensor *loss, int64_t step, double *out) {
  asg_status st = feed(h->train, step, true);
  if (!st) st = asg_program_run(h->train);
  if (!st) *out = asg_program_scalar(h->train, loss);
  return st;
}

#define TRY(expr)                                                                                  \
  do {                                                                                             \
    asg_status st_ = (expr);                                                                       \
    if (st_ != ASG_OK) return st_;                                                                 \
  } while (0)

/* Returns the first failure's status (ASG_ERR_OOM where a constructor
 * returned NULL: its message says why). */
static asg_status scenario(handles *h) {
  asg_tensor *loss = NULL, *logits = NULL;
  TRY(build(h, &loss, &logits));
  stage("batcher");
  if (!(h->batcher = asg_batcher_new(10, B, true, false, 5))) return ASG_ERR_OOM;
  int64_t idx[B];
  if (asg_batcher_next(h->batcher, idx) != B) return ASG_ERR_INVALID;
  stage("train");
  TRY(train_step(h, loss, 0, &sh->losses[0]));
  TRY(train_step(h, loss, 1, &sh->losses[1]));
  stage("eval");
  float out[B * C];
  TRY(feed(h->eval, 7, false));
  TRY(asg_program_run(h->eval));
  TRY(asg_program_fetch(h->eval, logits, out, sizeof out));
  sh->eval_sum = 0;
  for (int i = 0; i < B * C; i++)
    sh->eval_sum += out[i] * (i + 1);
  stage("save_variables");
  TRY(asg_program_save_variables(h->train, tu_path(dir, "model.safetensors"), ASG_VARS_MODEL));
  stage("checkpoint_save");
  TRY(asg_checkpoint_save(h->train, tu_path(dir, "step2.ckpt"), 2));
  stage("train");
  TRY(train_step(h, loss, 2, &sh->losses[2])); /* moves away from the checkpoint */
  stage("checkpoint_load");
  TRY(asg_checkpoint_load(h->train, tu_path(dir, "step2.ckpt"), &sh->loaded_step));
  stage("load_variables");
  TRY(asg_program_load_variables(h->eval, tu_path(dir, "model.safetensors"), true));
  stage("train_after_load");
  TRY(train_step(h, loss, 2, &sh->losses[3])); /* repeats step 2 exactly */
  stage("safetensors_read");
  if (!(h->st = asg_safetensors_open(tu_path(dir, "model.safetensors")))) return ASG_ERR_OOM;
  sh->loaded_tensors = 0;
  for (int i = 0; i < asg_safetensors_count(h->st); i++) {
    TRY(asg_safetensors_read_host(h->st, i, ASG_F64, &h->t));
    asg_host_tensor_free(&h->t);
    sh->loaded_tensors++;
  }
  stage("done");
  return ASG_OK;
}

/* Child exit codes besides 0 (the run behaved). */
enum {
  X_NO_MESSAGE = 10, /* failed without a message */
  X_NOT_OOM,         /* an injected failure reported as another error */
  X_SPURIOUS,        /* failed although nothing was injected */
  X_WRONG            /* succeeded with other results than the clean run */
};

static shared reference; /* the clean run's results (inherited by children) */

static bool same_results(const shared *a, const shared *b) {
  return memcmp(a->losses, b->losses, sizeof a->losses) == 0 && a->eval_sum == b->eval_sum &&
         a->loaded_step == b->loaded_step && a->loaded_tensors == b->loaded_tensors;
}

/* ASG_ALLOC_SWEEP_SELFTEST=leak|crash|hang makes every run whose failure
 * was injected misbehave after the scenario: the harness must report it
 * (ctest checks that it does). */
static void *volatile sink;
static void selftest(void) {
  const char *how = getenv("ASG_ALLOC_SWEEP_SELFTEST");
  if (!how || !sh->hit) return;
  if (strcmp(how, "leak") == 0) {
    sink = __real_malloc(64);
    sink = NULL;
  } else if (strcmp(how, "crash") == 0) {
    raise(SIGSEGV);
  } else if (strcmp(how, "hang") == 0) {
    for (;;)
      pause();
  }
}

static int child(long n) {
  fail_at = n;
  handles h = {0};
  asg_clear_error();
  armed = true;
  asg_status st = scenario(&h);
  snprintf(sh->msg, sizeof sh->msg, "%s", st ? asg_last_error() : "");
  release(&h);
  armed = false;
  selftest();
  sh->status = (int)st;
  if (st != ASG_OK) {
    if (!sh->msg[0]) return X_NO_MESSAGE;
    if (!sh->hit) return X_SPURIOUS;
    return st == ASG_ERR_OOM ? 0 : X_NOT_OOM;
  }
  return sh->hit && !same_results(sh, &reference) ? X_WRONG : 0;
}

/* ---- the parent ---- */

static void print_frames(const shared *s) {
  printf("  the failed allocation was made at:\n");
  for (int i = 1; i < s->n_frames; i++) { /* frame 0 is inject() */
    char buf[512] = "";
    if (__sanitizer_symbolize_pc) /* the return address minus 1 lies in the call */
      __sanitizer_symbolize_pc((char *)s->frames[i] - 1, "%p %F %L", buf, sizeof buf);
    if (buf[0]) {
      printf("    #%d %s\n", i, buf);
    } else {
      fflush(stdout);
      backtrace_symbols_fd(&s->frames[i], 1, STDOUT_FILENO);
    }
  }
}

/* Removes the files of dir; returns how many were save temporaries. */
static int clean_dir(void) {
  int tmp = 0;
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    if (strstr(e->d_name, ".tmp.")) {
      printf("  left behind: %s\n", e->d_name);
      tmp++;
    }
    unlink(tu_path(dir, e->d_name));
  }
  if (d) closedir(d);
  return tmp;
}

/* Runs the scenario failing allocation n (0: none) in a child; returns a
 * description of what went wrong, or NULL if the run behaved. */
static const char *run_one(long n, int timeout) {
  memset(sh, 0, sizeof *sh);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    alarm((unsigned)timeout);
    exit(child(n)); /* exit, not _exit: LeakSanitizer checks at exit */
  }
  int ws;
  while (waitpid(pid, &ws, 0) < 0)
    if (errno != EINTR) return "waitpid failed";
  static char what[128];
  const char *bad = NULL;
  if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM) {
    snprintf(what, sizeof what, "hang: killed after %d s", timeout);
    bad = what;
  } else if (WIFSIGNALED(ws)) {
    snprintf(what, sizeof what, "crash: signal %d (%s)", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
    bad = what;
  } else {
    switch (WEXITSTATUS(ws)) {
    case 0: break;
    case X_NO_MESSAGE: bad = "failed without a message in asg_last_error()"; break;
    case X_NOT_OOM: bad = "the failed allocation was reported as another error"; break;
    case X_SPURIOUS: bad = "failed although no allocation was failed"; break;
    case X_WRONG: bad = "succeeded with results that differ from the clean run"; break;
    case 23: bad = "leak (LeakSanitizer)"; break;
    default:
      snprintf(what, sizeof what, "exit code %d (a sanitizer report?)", WEXITSTATUS(ws));
      bad = what;
    }
  }
  if (clean_dir() && !bad) bad = "a save left its temporary file behind";
  return bad;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  long first = argc > 1 ? atol(argv[1]) : 1, last = argc > 2 ? atol(argv[2]) : -1;
  const char *env = getenv("ASG_ALLOC_SWEEP_TIMEOUT");
  int timeout = env && atoi(env) > 0 ? atoi(env) : 10;
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  dir = tu_tmpdir_create("asg_alloc_sweep");
  if (sh == MAP_FAILED || !dir) {
    printf("setup failed\n");
    return 1;
  }
  double t0 = now();
  const char *bad = run_one(0, timeout * 5);
  reference = *sh;
  TU_CHECK(!bad && reference.status == ASG_OK && !reference.hit, "clean run: %s (stage %s: %s)",
           bad ? bad : "ok", reference.stage, reference.msg);
  TU_CHECK(reference.losses[3] == reference.losses[2] && reference.loaded_step == 2,
           "checkpoint resume: loss %.9g vs %.9g, step %lld", reference.losses[3],
           reference.losses[2], (long long)reference.loaded_step);
  printf("clean run: %ld allocations, %.2f s (%s)\n", reference.allocs, now() - t0,
         __sanitizer_symbolize_pc ? "sanitizers on: leaks and memory errors are checked"
                                  : "no sanitizers: crashes, hangs and errors only");
  if (tu_fail) return tu_finish();
  if (last < 0) last = reference.allocs + 10; /* the end is the first N never reached */
  long n, errors = 0, recovered = 0, failures = 0;
  bool complete = false;
  for (n = first; n <= last && failures < 10; n++) {
    bad = run_one(n, timeout);
    if (bad) {
      failures++;
      printf("FAIL N=%ld: %s, in stage \"%s\"\n", n, bad, sh->stage);
      if (sh->msg[0]) printf("  message: %s\n", sh->msg);
      if (sh->hit) print_frames(sh);
      printf("  rerun alone: %s %ld %ld\n", argv[0], n, n);
    } else if (!sh->hit) {
      complete = true; /* the whole run made fewer than n allocations */
      break;
    } else if (sh->status != ASG_OK) {
      errors++;
    } else {
      recovered++;
    }
  }
  tu_fail += (int)failures;
  if (argc <= 2)
    TU_CHECK(complete || failures, "N=%ld..%ld: every run reached its injected failure", first,
             last);
  printf("N=%ld..%ld: %ld clean errors, %ld runs unaffected, %ld failures; %.1f s\n", first, n - 1,
         errors, recovered, failures, now() - t0);
  tu_tmpdir_remove(dir);
  return tu_finish();
}
