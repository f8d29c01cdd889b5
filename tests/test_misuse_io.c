/* Misuse of the loaders and savers: FIFOs and directories given as files,
 * headers that promise more than the file holds, values that do not fit,
 * shapes whose byte counts overflow, allocation failure while saving, stale
 * temporaries after a killed save, loads that match nothing, reports too
 * long for one message, and saving non-finite state on request. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Address-space limits (RLIMIT_AS) break sanitizers' shadow memory. */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifndef HAVE_ASAN
#define HAVE_ASAN 0
#endif

static const char *tmpdir;
static const char *tpath(const char *name) { return tu_path(tmpdir, name); }

static bool exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

static int count_temps(void) {
  int n = 0;
  DIR *d = opendir(tmpdir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    n += strstr(e->d_name, ".tmp.") != NULL;
  if (d) closedir(d);
  return n;
}

/* Runs fn in a child whose address space may grow by at most extra bytes
 * beyond what it holds now, killed after 20 s (a hang fails instead of
 * blocking the suite). Returns the child's exit code, or 128 + signal. */
static int run_limited(int (*fn)(void), size_t extra) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    alarm(20);
    long pages = 0, pagesz = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld", &pages) != 1) _exit(90);
    fclose(f);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)pagesz + extra;
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(91);
    _exit(fn());
  }
  int ws = 0;
  if (waitpid(pid, &ws, 0) != pid) return -1;
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

/* ---- FIFOs and directories: refused at once, never a blocked open ---- */
static void test_not_regular(void) {
  const char *fifo = tpath("pipe");
  if (mkfifo(fifo, 0600) != 0) {
    printf("  mkfifo failed: FIFO cases skipped\n");
    return;
  }
  alarm(30); /* a regression hangs in open(): fail by SIGALRM instead */
  asg_clear_error();
  TU_CHECK(asg_safetensors_open(fifo) == NULL && tu_contains(asg_last_error(), "FIFO"),
           "safetensors open of a FIFO: %s", asg_last_error());
  asg_host_tensor h;
  TU_CHECK(asg_idx_read(fifo, ASG_F32, &h) == ASG_ERR_IO && tu_contains(asg_last_error(), "FIFO"),
           "IDX read of a FIFO: %s", asg_last_error());
  const char *paths[1] = {fifo};
  asg_text txt;
  TU_CHECK(asg_text_load(paths, 1, &txt) == ASG_ERR_IO && tu_contains(asg_last_error(), "FIFO"),
           "text load of a FIFO: %s", asg_last_error());
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(2), asg_init_zeros());
  asg_program *p = asg_compile(g, 1, &w, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (p) {
    TU_CHECK(asg_program_load_variables(p, fifo, false) == ASG_ERR_IO,
             "load_variables from a FIFO: %s", asg_last_error());
    TU_CHECK(asg_checkpoint_load(p, fifo, NULL) == ASG_ERR_IO, "checkpoint load from a FIFO: %s",
             asg_last_error());
  }
  asg_program_free(p);
  asg_graph_free(g);
  alarm(0);
  unlink(fifo);
  /* a directory is refused too, with its kind named */
  TU_CHECK(asg_safetensors_open(tmpdir) == NULL && tu_contains(asg_last_error(), "directory"),
           "safetensors open of a directory: %s", asg_last_error());
  TU_CHECK(asg_idx_read(tmpdir, ASG_F32, &h) == ASG_ERR_IO, "IDX read of a directory: %s",
           asg_last_error());
}

/* ---- safetensors: a zero dim must not hide an overflowing product ---- */
static void write_st(const char *path, const char *json) {
  size_t n = strlen(json);
  unsigned char buf[512];
  for (int k = 0; k < 8; k++)
    buf[k] = (unsigned char)((uint64_t)n >> (8 * k));
  memcpy(buf + 8, json, n);
  tu_write_file(path, buf, 8 + n);
}

static void test_safetensors_shapes(void) {
  const char *path = tpath("zero.safetensors");
  write_st(path, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,2147483648,0],"
                 "\"data_offsets\":[0,0]}}");
  asg_clear_error();
  asg_safetensors *f = asg_safetensors_open(path);
  TU_CHECK(f == NULL && tu_contains(asg_last_error(), "\"t\""),
           "[2^32, 2^31, 0] refused at open: %s", asg_last_error());
  asg_safetensors_close(f);
  /* an empty tensor with sane dims still loads */
  write_st(path, "{\"t\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,0]}}");
  f = asg_safetensors_open(path);
  asg_host_tensor h = {0};
  TU_CHECK(f && asg_safetensors_read_host(f, 0, ASG_F64, &h) == ASG_OK && h.shape.ndim == 2 &&
               h.shape.dims[1] == 0,
           "[3, 0] reads: %s", asg_last_error());
  asg_host_tensor_free(&h);
  asg_safetensors_close(f);
  /* writing a host tensor whose shape overflows is refused before any file exists */
  float d = 0;
  asg_host_tensor big = {ASG_F32, ASG_SHAPE(0, (int64_t)1 << 62, 8), &d};
  const char *name = "big";
  const char *out = tpath("big.safetensors");
  TU_CHECK(asg_safetensors_write(out, 1, &name, &big, 0, NULL) == ASG_ERR_INVALID && !exists(out),
           "write of [0, 2^62, 8] refused: %s", asg_last_error());
}

/* ---- IDX: headers that lie, values that do not fit ---- */
static const char *idx_liar;

static int idx_liar_read(void) {
  asg_host_tensor h;
  return asg_idx_read(idx_liar, ASG_F32, &h) == ASG_ERR_FORMAT ? 0 : 1;
}

static void write_idx_f32(const char *path, const float *v, int n) {
  unsigned char buf[64];
  unsigned char hdr[8] = {0, 0, 0x0D, 1, 0, 0, 0, (unsigned char)n};
  memcpy(buf, hdr, 8);
  for (int i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    for (int k = 0; k < 4; k++)
      buf[8 + 4 * i + k] = (unsigned char)(u >> (24 - 8 * k));
  }
  tu_write_file(path, buf, 8 + 4 * (size_t)n);
}

static void test_idx(void) {
  /* 12 bytes claiming 2^32 - 1 bytes of values: truncated, found without
   * allocating 4 GB first */
  idx_liar = tpath("liar.idx");
  unsigned char liar[12] = {0, 0, 0x08, 1, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
  tu_write_file(idx_liar, liar, sizeof liar);
  asg_host_tensor h;
  TU_CHECK(asg_idx_read(idx_liar, ASG_F32, &h) == ASG_ERR_FORMAT &&
               tu_contains(asg_last_error(), "truncated"),
           "lying header: %s", asg_last_error());
  if (!HAVE_ASAN) {
    int rc = run_limited(idx_liar_read, (size_t)256 << 20);
    TU_CHECK(rc == 0, "lying header within a 256 MB address-space budget: child %d", rc);
  }
  /* four dims of 2^32 - 1: more than the size limit */
  unsigned char huge[20] = {0,    0,    0x08, 4,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  tu_write_file(tpath("huge.idx"), huge, sizeof huge);
  TU_CHECK(asg_idx_read(tpath("huge.idx"), ASG_F32, &h) == ASG_ERR_FORMAT, "huge dims: %s",
           asg_last_error());

  /* float -> integer: NaN, infinities and out-of-range values are errors */
  const char *fp = tpath("f.idx");
  const float nanv[2] = {1.5f, NAN};
  write_idx_f32(fp, nanv, 2);
  TU_CHECK(asg_idx_read(fp, ASG_I32, &h) == ASG_ERR_FORMAT && tu_contains(asg_last_error(), "nan"),
           "NaN into i32: %s", asg_last_error());
  TU_CHECK(asg_idx_read(fp, ASG_I64, &h) == ASG_ERR_FORMAT, "NaN into i64: %s", asg_last_error());
  const float infv[1] = {-INFINITY};
  write_idx_f32(fp, infv, 1);
  TU_CHECK(asg_idx_read(fp, ASG_I64, &h) == ASG_ERR_FORMAT, "-inf into i64");
  const float big[2] = {3e9f, -2.75f};
  write_idx_f32(fp, big, 2);
  TU_CHECK(asg_idx_read(fp, ASG_I32, &h) == ASG_ERR_FORMAT, "3e9 into i32: %s", asg_last_error());
  TU_CHECK(asg_idx_read(fp, ASG_I64, &h) == ASG_OK && ((int64_t *)h.data)[0] == 3000000000LL &&
               ((int64_t *)h.data)[1] == -2,
           "3e9 and -2.75 into i64 (truncated toward zero): %s", asg_last_error());
  asg_host_tensor_free(&h);
  const float edge[2] = {2147483520.0f, -2147483648.0f}; /* largest f32 below 2^31, -2^31 */
  write_idx_f32(fp, edge, 2);
  TU_CHECK(asg_idx_read(fp, ASG_I32, &h) == ASG_OK && ((int32_t *)h.data)[0] == 2147483520 &&
               ((int32_t *)h.data)[1] == INT32_MIN,
           "i32 range ends: %s", asg_last_error());
  asg_host_tensor_free(&h);
}

/* ---- text batches with a context at the end of int64 ---- */
static void test_text_batch(void) {
  const char *tp = tpath("corpus.txt");
  tu_write_file(tp, "hello world, hello text", 23);
  const char *paths[1] = {tp};
  asg_text t;
  if (asg_text_load(paths, 1, &t) != ASG_OK) {
    TU_CHECK(0, "text load: %s", asg_last_error());
    return;
  }
  int32_t x[16], y[16];
  TU_CHECK(asg_text_batch(&t, 0, t.n, 1, INT64_MAX, 1, 0, x, y) == ASG_ERR_INVALID,
           "context INT64_MAX refused");
  TU_CHECK(asg_text_batch(&t, 0, t.n, 1, INT64_MAX - 1, 1, 0, x, y) == ASG_ERR_INVALID,
           "context INT64_MAX - 1 refused");
  TU_CHECK(asg_text_batch(&t, 0, t.n, 2, 8, 1, 0, x, y) == ASG_OK && y[0] == x[1] && y[8] == x[9],
           "a normal batch: %s", asg_last_error());
  asg_text_free(&t);
}

/* ---- allocation failure while composing a header: no endless padding ---- */
static int pad_oom_child(void) {
  size_t n = (size_t)1 << 20; /* a 1 MB tensor name: its header cannot grow */
  char *name = malloc(n + 1);
  if (!name) return 92;
  memset(name, 'a', n);
  name[n] = '\0';
  float v = 1;
  asg_host_tensor t = {ASG_F32, ASG_SHAPE(1), &v};
  const char *names[1] = {name};
  /* small blocks freed back: the writer's own small allocations succeed */
  void *warm[64];
  for (int i = 0; i < 64; i++)
    warm[i] = malloc(1000);
  for (int i = 63; i >= 0; i--)
    free(warm[i]);
  struct rlimit rl;
  long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f || fscanf(f, "%ld", &pages) != 1) return 93;
  fclose(f);
  rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
  if (setrlimit(RLIMIT_AS, &rl) != 0) return 94; /* no more address space from here */
  asg_status st = asg_safetensors_write(tpath("oom.safetensors"), 1, names, &t, 0, NULL);
  return st == ASG_ERR_OOM ? 0 : 1;
}

static void test_pad_oom(void) {
  if (HAVE_ASAN) {
    printf("  allocation-failure padding case skipped under ASan (needs RLIMIT_AS)\n");
    return;
  }
  int rc = run_limited(pad_oom_child, (size_t)64 << 20);
  TU_CHECK(rc == 0,
           "save whose header cannot grow returns ASG_ERR_OOM (child %d; %d = SIGALRM: "
           "a hang)",
           rc, 128 + SIGALRM);
}

/* ---- stale temporaries of a killed save ---- */
static void test_stale_temps(void) {
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  if (dead < 0 || waitpid(dead, NULL, 0) != dead) {
    TU_CHECK(0, "fork");
    return;
  }
  char stale[64], live[64], other[64], old[64], odd[64];
  snprintf(stale, sizeof stale, "m.safetensors.tmp.%ld.AbC123", (long)dead);
  snprintf(live, sizeof live, "m.safetensors.tmp.%ld.XyZ789", (long)getppid());
  snprintf(other, sizeof other, "other.safetensors.tmp.%ld.QqQ111", (long)dead);
  snprintf(old, sizeof old, "m.safetensors.tmp.AbCdEf");
  snprintf(odd, sizeof odd, "m.safetensors.tmp.%ld.toolong", (long)dead);
  const char *all[5] = {stale, live, other, old, odd};
  for (int i = 0; i < 5; i++)
    tu_write_file(tpath(all[i]), "x", 1);
  float v[2] = {1, 2};
  asg_host_tensor t = {ASG_F32, ASG_SHAPE(2), v};
  const char *name = "v";
  TU_CHECK(asg_safetensors_write(tpath("m.safetensors"), 1, &name, &t, 0, NULL) == ASG_OK,
           "save: %s", asg_last_error());
  TU_CHECK(!exists(tpath(stale)), "stale temporary of the target (dead pid) removed");
  TU_CHECK(exists(tpath(live)), "temporary of a live process kept");
  TU_CHECK(exists(tpath(other)), "temporary of another target kept");
  TU_CHECK(exists(tpath(old)) && exists(tpath(odd)), "names not of the pattern kept");
  for (int i = 0; i < 5; i++)
    unlink(tpath(all[i]));
  TU_CHECK(count_temps() == 0, "no temporaries left");
}

/* ---- loads that match nothing; reports too long for one message ---- */
static asg_program *program_of(asg_graph *g, int n, const char *fmt) {
  asg_tensor *sum = NULL;
  for (int i = 0; i < n; i++) {
    char name[160];
    snprintf(name, sizeof name, fmt, i);
    asg_tensor *v = asg_variable(g, name, ASG_F32, ASG_SHAPE(2), asg_init_zeros());
    sum = sum ? asg_add(sum, v) : v;
  }
  asg_program *p = asg_compile(g, 1, &sum, NULL);
  if (!p) printf("  compile: %s\n", asg_last_error());
  return p;
}

static void test_load_matches(void) {
  asg_graph *g = asg_graph_new();
  asg_program *p = program_of(g, 2, "w%d");
  if (!p) return;
  float v[2] = {7, 8};
  asg_host_tensor t[2] = {{ASG_F32, ASG_SHAPE(2), v}, {ASG_F32, ASG_SHAPE(2), v}};
  const char *other[2] = {"x", "y"};
  const char *path = tpath("other.safetensors");
  asg_safetensors_write(path, 2, other, t, 0, NULL);
  asg_clear_error();
  asg_status st = asg_program_load_variables(p, path, false);
  const char *m = asg_last_error();
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(m, "'x'") && tu_contains(m, "'w0'"),
           "non-strict load matching nothing: %d %s", st, m);
  int nl = -1;
  TU_CHECK(asg_program_load_variables_ex(p, path, false, &nl) == ASG_ERR_NOT_FOUND && nl == 0,
           "_ex reports 0 loaded");
  const char *some[2] = {"w1", "y"};
  asg_safetensors_write(path, 2, some, t, 0, NULL);
  float got[2] = {0};
  TU_CHECK(asg_program_load_variables_ex(p, path, false, &nl) == ASG_OK && nl == 1,
           "non-strict partial load: %d loaded: %s", nl, asg_last_error());
  asg_program_get_variable(p, "w1", got, sizeof got);
  TU_CHECK(got[0] == 7 && got[1] == 8, "w1 loaded");
  TU_CHECK(asg_program_load_variables_ex(p, path, true, &nl) == ASG_ERR_NOT_FOUND && nl == 0,
           "strict load of the same file fails: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);

  /* 100 long names missing and one unexpected: the report is summarized
   * and whole (it used to be cut at 1.5 KB, mid-name) */
  g = asg_graph_new();
  p = program_of(g, 100, "encoder.layer_%03d.attention.output.dense.weight_with_a_long_name");
  if (!p) return;
  const char *one = "unexpected_tensor";
  asg_safetensors_write(path, 1, &one, t, 0, NULL);
  st = asg_program_load_variables(p, path, true);
  m = asg_last_error();
  size_t len = strlen(m);
  TU_CHECK(st == ASG_ERR_NOT_FOUND && tu_contains(m, "missing (100)") && tu_contains(m, " more") &&
               tu_contains(m, "unexpected (1): 'unexpected_tensor'") && len < 1500 &&
               m[len - 1] == '\'',
           "summarized report (%zu bytes): %s", len, m);
  asg_program_free(p);
  asg_graph_free(g);
}

/* ---- saving refuses non-finite state on request ---- */
static void test_require_finite(void) {
  asg_graph *g = asg_graph_new();
  asg_tensor *w = asg_variable(g, "w", ASG_F32, ASG_SHAPE(3), asg_init_zeros());
  asg_tensor *k = asg_variable(g, "k", ASG_I32, ASG_SHAPE(2), asg_init_zeros());
  asg_tensor *outs[2] = {w, k};
  asg_program *p = asg_compile(g, 2, outs, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) return;
  const char *mf = tpath("finite.safetensors"), *cf = tpath("finite.ckpt");
  asg_save_options opt = {true};
  TU_CHECK(asg_program_save_variables_ex(p, mf, ASG_VARS_ALL, &opt) == ASG_OK &&
               asg_checkpoint_save_ex(p, cf, 1, &opt) == ASG_OK,
           "finite state saves: %s", asg_last_error());
  float bad[3] = {1, NAN, 3};
  asg_program_set_variable(p, "w", bad, sizeof bad);
  asg_status st = asg_program_save_variables_ex(p, mf, ASG_VARS_ALL, &opt);
  const char *m = asg_last_error();
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(m, "'w'") && tu_contains(m, "NaN") &&
               tu_contains(m, "element 1"),
           "NaN refused: %s", m);
  float inf[3] = {1, 2, -INFINITY};
  asg_program_set_variable(p, "w", inf, sizeof inf);
  st = asg_checkpoint_save_ex(p, cf, 2, &opt);
  TU_CHECK(st == ASG_ERR_INVALID && tu_contains(asg_last_error(), "-Inf"),
           "checkpoint with -Inf refused: %s", asg_last_error());
  /* the earlier files are intact, nothing is left behind */
  asg_safetensors *f = asg_safetensors_open(mf);
  float back[3] = {9, 9, 9};
  TU_CHECK(f &&
               asg_safetensors_read(f, asg_safetensors_find(f, "w"), ASG_F32, back, sizeof back) ==
                   ASG_OK &&
               back[0] == 0 && back[1] == 0 && back[2] == 0,
           "previous weights file intact");
  asg_safetensors_close(f);
  f = asg_safetensors_open(cf);
  const char *step = f ? asg_safetensors_metadata(f, "step") : NULL;
  TU_CHECK(step && strcmp(step, "1") == 0, "previous checkpoint intact (step %s)",
           step ? step : "?");
  asg_safetensors_close(f);
  TU_CHECK(count_temps() == 0, "no temporaries left");
  /* without the option the state saves as it is */
  TU_CHECK(asg_program_save_variables(p, mf, ASG_VARS_ALL) == ASG_OK &&
               asg_program_save_variables_ex(p, mf, ASG_VARS_ALL, NULL) == ASG_OK,
           "default save keeps non-finite values: %s", asg_last_error());
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  tmpdir = tu_tmpdir_create("asg_test_misuse_io");
  if (!tmpdir) return 1;
  test_not_regular();
  test_safetensors_shapes();
  test_idx();
  test_text_batch();
  test_pad_oom();
  test_stale_temps();
  test_load_matches();
  test_require_finite();
  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
