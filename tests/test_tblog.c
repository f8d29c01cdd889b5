/* TensorBoard event files (asg/logs.h): the file name, the record framing
 * with both CRC-32Cs (recomputed here bit by bit), the Event / Summary /
 * HistogramProto fields (decoded here), errors (bad folders, a full file
 * through RLIMIT_FSIZE), parameter histograms of a program, and, when
 * python3 has the `tensorboard` package (ASG_PYTHON names another
 * interpreter), the same files read back by tensorboard's own readers
 * (tests/tblog/read_events.py); without it that part is skipped, unless
 * ASG_REQUIRE_TENSORBOARD is set (CI), which makes it a failure. */
#define _XOPEN_SOURCE 700 /* clock_gettime, gethostname, setrlimit */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---- an independent CRC-32C and protobuf reader ---- */

static uint32_t crc32c_bitwise(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int b = 0; b < 8; b++)
      c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
  }
  return c ^ 0xffffffffu;
}

static uint32_t masked(const uint8_t *p, size_t n) {
  uint32_t c = crc32c_bitwise(p, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

static uint64_t le(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* One field of a message: its wire type, and its value (varint, fixed) or
 * its bytes (length-delimited). */
typedef struct pb_field {
  int wt;
  uint64_t v;
  const uint8_t *p;
  size_t n;
} pb_field;

/* The last occurrence of `field` in msg (0 if absent, -1 if malformed). */
static int pb_find(const uint8_t *msg, size_t n, int field, pb_field *out) {
  int found = 0;
  for (size_t i = 0; i < n;) {
    uint64_t key = 0, v = 0;
    for (int s = 0; i < n; s += 7) {
      key |= (uint64_t)(msg[i] & 0x7f) << s;
      if (!(msg[i++] & 0x80)) break;
    }
    pb_field f = {(int)(key & 7), 0, NULL, 0};
    if (f.wt == 0 || f.wt == 2) {
      for (int s = 0; i < n; s += 7) {
        v |= (uint64_t)(msg[i] & 0x7f) << s;
        if (!(msg[i++] & 0x80)) break;
      }
      f.v = v;
      if (f.wt == 2) {
        if (v > n - i) return -1;
        f.p = msg + i, f.n = (size_t)v, i += (size_t)v;
      }
    } else if (f.wt == 1 || f.wt == 5) {
      int b = f.wt == 1 ? 8 : 4;
      if (n - i < (size_t)b) return -1;
      f.v = le(msg + i, b), i += (size_t)b;
    } else {
      return -1;
    }
    if ((int)(key >> 3) == field) *out = f, found = 1;
  }
  return found;
}

static double as_double(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static uint32_t float_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

/* ---- what the test logs, and how it reads the file back ---- */

typedef struct expect {
  const char *tag;
  int64_t step;
  bool histo;
  uint32_t bits; /* scalar */
  double stats[5];
  int k;
  double limit[32], count[32];
} expect;

static uint8_t *read_all(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
  *n = b ? fread(b, 1, (size_t)sz, f) : 0;
  fclose(f);
  return b;
}

/* Checks the records of path against e[0..ne) (after the version record),
 * with wall times in [t0, t1]. Returns the number of records. */
static int check_file(const char *path, const expect *e, int ne, double t0, double t1) {
  size_t n = 0, i = 0;
  uint8_t *b = read_all(path, &n);
  TU_CHECK(b != NULL, "cannot read %s", path);
  int rec = 0;
  while (b && i < n) {
    if (n - i < 12) {
      TU_CHECK(0, "record %d: %zu bytes left, a header needs 12", rec, n - i);
      break;
    }
    uint64_t len = le(b + i, 8);
    TU_CHECK((uint32_t)le(b + i + 8, 4) == masked(b + i, 8), "record %d: header crc", rec);
    if (len > n - i - 12 || n - i - 12 - len < 4) {
      TU_CHECK(0, "record %d: length %llu past the end", rec, (unsigned long long)len);
      break;
    }
    const uint8_t *d = b + i + 12;
    TU_CHECK((uint32_t)le(d + len, 4) == masked(d, (size_t)len), "record %d: data crc", rec);
    i += 12 + (size_t)len + 4;
    pb_field wt, step, f;
    TU_CHECK(pb_find(d, (size_t)len, 1, &wt) == 1 && wt.wt == 1 && as_double(wt.v) >= t0 - 1 &&
                 as_double(wt.v) <= t1 + 1,
             "record %d: wall_time %f not in [%f, %f]", rec, as_double(wt.v), t0, t1);
    int has_step = pb_find(d, (size_t)len, 2, &step);
    if (rec == 0) {
      TU_CHECK(pb_find(d, (size_t)len, 3, &f) == 1 && f.wt == 2 && f.n == 13 &&
                   memcmp(f.p, "brain.Event:2", 13) == 0,
               "first record: file_version");
      rec++;
      continue;
    }
    if (rec > ne) {
      TU_CHECK(0, "record %d: more records than logged (%d)", rec, ne);
      rec++;
      continue;
    }
    const expect *x = &e[rec - 1];
    TU_CHECK(has_step == 1 && (int64_t)step.v == x->step, "record %d: step %lld, want %lld", rec,
             (long long)step.v, (long long)x->step);
    pb_field sum, val, tag, sv, h;
    int ok = pb_find(d, (size_t)len, 5, &sum) == 1 && pb_find(sum.p, sum.n, 1, &val) == 1 &&
             pb_find(val.p, val.n, 1, &tag) == 1;
    TU_CHECK(ok && tag.n == strlen(x->tag) && memcmp(tag.p, x->tag, tag.n) == 0,
             "record %d: tag, want %s", rec, x->tag);
    if (!ok) {
      rec++;
      continue;
    }
    if (!x->histo) {
      TU_CHECK(pb_find(val.p, val.n, 2, &sv) == 1 && sv.wt == 5 && (uint32_t)sv.v == x->bits,
               "record %d (%s@%lld): simple_value bits %08x, want %08x", rec, x->tag,
               (long long)x->step, (unsigned)sv.v, (unsigned)x->bits);
    } else if (pb_find(val.p, val.n, 5, &h) != 1) {
      TU_CHECK(0, "record %d: no histo", rec);
    } else {
      for (int s = 0; s < 5; s++) {
        TU_CHECK(pb_find(h.p, h.n, s + 1, &f) == 1 && f.wt == 1 && as_double(f.v) == x->stats[s],
                 "record %d (%s): histogram field %d = %.17g, want %.17g", rec, x->tag, s + 1,
                 as_double(f.v), x->stats[s]);
      }
      for (int fld = 6; fld <= 7; fld++) {
        const double *want = fld == 6 ? x->limit : x->count;
        bool good = pb_find(h.p, h.n, fld, &f) == 1 && f.wt == 2 && f.n == 8 * (size_t)x->k;
        for (int k = 0; good && k < x->k; k++)
          good = as_double(le(f.p + 8 * k, 8)) == want[k];
        TU_CHECK(good, "record %d (%s): packed field %d (%d doubles expected)", rec, x->tag, fld,
                 x->k);
      }
    }
    rec++;
  }
  TU_CHECK(i == n, "file ends inside a record (%zu of %zu bytes)", i, n);
  TU_CHECK(rec == ne + 1, "%d records, want %d", rec, ne + 1);
  free(b);
  return rec;
}

/* Statistics of the finite values, and buckets per ASG_TBLOG_BUCKETS equal
 * widths, counted here with exact arithmetic on data chosen for it. */
static void stats_of(const double *v, int n, double *st) {
  st[0] = INFINITY, st[1] = -INFINITY, st[2] = st[3] = st[4] = 0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(v[i])) continue;
    st[0] = fmin(st[0], v[i]), st[1] = fmax(st[1], v[i]);
    st[2] += 1, st[3] += v[i], st[4] += v[i] * v[i];
  }
}

static bool python_reader(char *py, size_t n) {
  const char *env = getenv("ASG_PYTHON");
  snprintf(py, n, "%s", env && env[0] ? env : "python3");
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "%s -c 'import tensorboard' >/dev/null 2>&1", py);
  return system(cmd) == 0;
}

static void run_python(const char *path, const char *dir, const expect *e, int ne) {
  char py[512];
  if (!python_reader(py, sizeof py)) {
    TU_CHECK(!getenv("ASG_REQUIRE_TENSORBOARD"),
             "ASG_REQUIRE_TENSORBOARD is set, but %s cannot "
             "import tensorboard",
             py);
    printf("note: python3 with the tensorboard package not found (pip install tensorboard, or "
           "set ASG_PYTHON): tensorboard's readers not run\n");
    return;
  }
  const char *exp_path = tu_path(dir, "expected.txt");
  FILE *f = fopen(exp_path, "w");
  TU_CHECK(f != NULL, "cannot write %s", exp_path);
  if (!f) return;
  for (int i = 0; i < ne; i++) {
    if (!e[i].histo) {
      fprintf(f, "scalar %s %lld %08x\n", e[i].tag, (long long)e[i].step, (unsigned)e[i].bits);
      continue;
    }
    fprintf(f, "histo %s %lld", e[i].tag, (long long)e[i].step);
    for (int s = 0; s < 5; s++)
      fprintf(f, " %.17g", e[i].stats[s]);
    fprintf(f, " %d", e[i].k);
    for (int k = 0; k < e[i].k; k++)
      fprintf(f, " %.17g", e[i].limit[k]);
    for (int k = 0; k < e[i].k; k++)
      fprintf(f, " %.17g", e[i].count[k]);
    fprintf(f, "\n");
  }
  fclose(f);
  char script[1024], cmd[4096];
  snprintf(script, sizeof script, "%s", __FILE__);
  char *slash = strrchr(script, '/');
  if (slash)
    snprintf(slash, sizeof script - (size_t)(slash - script), "/tblog/read_events.py");
  else
    snprintf(script, sizeof script, "tblog/read_events.py");
  snprintf(cmd, sizeof cmd, "%s '%s' '%s' '%s'", py, script, path, exp_path);
  fflush(stdout);
  int rc = system(cmd);
  TU_CHECK(rc == 0, "tensorboard's readers disagree (%s): status %d", cmd, rc);
  unlink(exp_path);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static expect scalar(const char *tag, int64_t step, double v) {
  expect e = {.tag = tag, .step = step, .bits = float_bits((float)v)};
  return e;
}

static void test_round_trip(const char *tmp) {
  char logdir[1200];
  snprintf(logdir, sizeof logdir, "%s/runs/exp1", tmp); /* two levels to create */
  double t0 = now_s();
  long long s0 = (long long)time(NULL);
  asg_tblog *w = asg_tblog_open(logdir);
  long long s1 = (long long)time(NULL);
  TU_CHECK(w != NULL, "open %s: %s", logdir, asg_last_error());
  if (!w) return;
  /* the name: events.out.tfevents.<time>.<host>.<pid>.<n> */
  const char *path = asg_tblog_path(w);
  char prefix[1300];
  snprintf(prefix, sizeof prefix, "%s/events.out.tfevents.", logdir);
  TU_CHECK(strncmp(path, prefix, strlen(prefix)) == 0, "path %s", path);
  const char *rest = path + strlen(prefix);
  char *end;
  long long secs = strtoll(rest, &end, 10);
  const char *last = strrchr(path, '.');
  const char *pid_dot = last;
  while (pid_dot > end && pid_dot[-1] != '.')
    pid_dot--;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  TU_CHECK(secs >= s0 && secs <= s1 && *end == '.', "time in %s", path);
  TU_CHECK(strtol(pid_dot, NULL, 10) == (long)getpid() && strcmp(last, ".0") == 0,
           "pid and counter in %s (pid %ld)", path, (long)getpid());
  TU_CHECK(!host[0] ||
               (strncmp(end + 1, host, strlen(host)) == 0 && end + 1 + strlen(host) + 1 == pid_dot),
           "host %s in %s", host, path);

  expect e[16];
  int ne = 0;
  const struct {
    const char *tag;
    int64_t step;
    double v;
  } sc[] = {{"train/loss", 0, 2.5},       {"train/loss", 1, 1.25},
            {"train/loss", 2, 0.0},       {"train/loss", 3, NAN},
            {"train/lr", 0, 1e-3},        {"train/lr", 1, -3.0e38},
            {"odd/steps", -5, -1.5},      {"odd/steps", (int64_t)1 << 40, 1e30},
            {"odd/steps", INT64_MAX, 0.1}};
  for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
    TU_CHECK(asg_tblog_scalar(w, sc[i].tag, sc[i].step, sc[i].v) == ASG_OK, "scalar %s: %s",
             sc[i].tag, asg_last_error());
    e[ne++] = scalar(sc[i].tag, sc[i].step, sc[i].v);
  }

  /* 0, 0.5, ..., 30 and three non-finite values: min 0, max 30, buckets of
   * width 1 ([k, k + 1), the last one [29, 30]) */
  float ramp[64];
  double rampd[64];
  int nr = 0;
  for (int i = 0; i <= 60; i++)
    ramp[nr++] = (float)i * 0.5f;
  ramp[nr++] = NAN, ramp[nr++] = INFINITY, ramp[nr++] = -INFINITY;
  for (int i = 0; i < nr; i++)
    rampd[i] = ramp[i];
  TU_CHECK(ASG_TBLOG_BUCKETS == 30, "the test's data assume 30 buckets");
  expect *h = &e[ne++];
  *h = (expect){.tag = "hist/ramp", .step = 7, .histo = true, .k = 30};
  stats_of(rampd, nr, h->stats);
  for (int k = 0; k < 30; k++)
    h->limit[k] = k + 1, h->count[k] = k < 29 ? 2 : 3;
  TU_CHECK(asg_tblog_histogram(w, "hist/ramp", 7, ramp, (size_t)nr) == ASG_OK, "histo: %s",
           asg_last_error());
  /* all equal: one bucket ending at the value */
  float same[5] = {2.5f, 2.5f, 2.5f, 2.5f, 2.5f};
  double samed[5] = {2.5, 2.5, 2.5, 2.5, 2.5};
  h = &e[ne++];
  *h = (expect){.tag = "hist/same", .step = 8, .histo = true, .k = 1};
  stats_of(samed, 5, h->stats);
  h->limit[0] = 2.5, h->count[0] = 5;
  TU_CHECK(asg_tblog_histogram(w, "hist/same", 8, same, 5) == ASG_OK, "histo: %s",
           asg_last_error());

  /* refused calls write nothing */
  float nan3[3] = {NAN, NAN, INFINITY};
  asg_clear_error();
  TU_CHECK(asg_tblog_histogram(w, "hist/nan", 9, nan3, 3) == ASG_ERR_INVALID &&
               tu_contains(asg_last_error(), "hist/nan"),
           "all non-finite: %s", asg_last_error());
  TU_CHECK(asg_tblog_histogram(w, "hist/empty", 9, ramp, 0) == ASG_ERR_INVALID, "no values");
  TU_CHECK(asg_tblog_histogram(w, "hist/null", 9, NULL, 4) == ASG_ERR_INVALID, "NULL values");
  TU_CHECK(asg_tblog_scalar(w, "", 0, 1) == ASG_ERR_INVALID, "empty tag");
  TU_CHECK(asg_tblog_scalar(w, NULL, 0, 1) == ASG_ERR_INVALID, "NULL tag");
  TU_CHECK(asg_tblog_scalar(NULL, "a", 0, 1) == ASG_ERR_INVALID, "NULL writer");
  TU_CHECK(asg_tblog_flush(w) == ASG_OK, "flush: %s", asg_last_error());
  /* flushed data is in the file while the writer is open */
  size_t n0 = 0;
  uint8_t *b0 = read_all(path, &n0);
  TU_CHECK(n0 > 500, "after flush the file holds %zu bytes", n0);
  free(b0);
  char saved[1400];
  snprintf(saved, sizeof saved, "%s", path);
  TU_CHECK(asg_tblog_close(w) == ASG_OK, "close: %s", asg_last_error());
  check_file(saved, e, ne, t0, now_s());
  run_python(saved, logdir, e, ne);
  unlink(saved);
  rmdir(logdir);
  snprintf(logdir, sizeof logdir, "%s/runs", tmp);
  rmdir(logdir);
}

static void test_open_errors(const char *tmp) {
  asg_clear_error();
  TU_CHECK(!asg_tblog_open(NULL) && asg_last_error()[0], "NULL logdir");
  TU_CHECK(!asg_tblog_open("") && asg_last_error()[0], "empty logdir");
  const char *file = tu_path(tmp, "plain_file");
  tu_write_file(file, "x", 1);
  asg_clear_error();
  TU_CHECK(!asg_tblog_open(file) && tu_contains(asg_last_error(), "plain_file"),
           "logdir is a file: %s", asg_last_error());
  char sub[1400];
  snprintf(sub, sizeof sub, "%s/below", file);
  asg_clear_error();
  TU_CHECK(!asg_tblog_open(sub) && tu_contains(asg_last_error(), "plain_file"),
           "logdir below a file: %s", asg_last_error());
  unlink(file);
  TU_CHECK(asg_tblog_close(NULL) == ASG_OK, "close(NULL)");
  TU_CHECK(asg_tblog_flush(NULL) == ASG_ERR_INVALID, "flush(NULL)");
  TU_CHECK(asg_tblog_path(NULL) == NULL, "path(NULL)");
  TU_CHECK(asg_tblog_variables(NULL, NULL, 0) == ASG_ERR_INVALID, "variables(NULL)");

  /* two writers on one folder: two files */
  asg_tblog *a = asg_tblog_open(tmp), *b = asg_tblog_open(tmp);
  TU_CHECK(a && b && strcmp(asg_tblog_path(a), asg_tblog_path(b)) != 0, "two writers, two files");
  TU_CHECK(asg_tblog_variables(a, NULL, 0) == ASG_ERR_INVALID, "variables of a NULL program");
  TU_CHECK(asg_tblog_close(a) == ASG_OK && asg_tblog_close(b) == ASG_OK, "close both");
  tu_tmpdir_remove(tmp); /* the files; the test makes it again */
  mkdir(tmp, 0700);
}

/* A file size limit makes writes fail (EFBIG): the failure comes back as
 * ASG_ERR_IO naming the file, and sticks. */
static void test_write_error(const char *tmp) {
  struct rlimit old;
  if (getrlimit(RLIMIT_FSIZE, &old) != 0) return;
  asg_tblog *w = asg_tblog_open(tmp);
  TU_CHECK(w != NULL, "open: %s", asg_last_error());
  if (!w) return;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 1000;
  setrlimit(RLIMIT_FSIZE, &lim);
  float v[100];
  for (int i = 0; i < 100; i++)
    v[i] = (float)i;
  asg_status first = ASG_OK;
  int calls = 0;
  for (; calls < 200 && first == ASG_OK; calls++) {
    first = asg_tblog_histogram(w, "h", calls, v, 100);
    if (!first && calls % 10 == 9) first = asg_tblog_flush(w);
  }
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", asg_last_error());
  TU_CHECK(first == ASG_ERR_IO && tu_contains(msg, "events.out.tfevents"),
           "write past the limit: status %d after %d calls: %s", first, calls, msg);
  asg_clear_error();
  TU_CHECK(asg_tblog_scalar(w, "after", 0, 1) == ASG_ERR_IO &&
               tu_contains(asg_last_error(), "earl"),
           "sticky: %s", asg_last_error());
  TU_CHECK(asg_tblog_flush(w) == ASG_ERR_IO, "flush after failure");
  TU_CHECK(asg_tblog_close(w) == ASG_ERR_IO, "close after failure");
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, prev);
  tu_tmpdir_remove(tmp);
  mkdir(tmp, 0700);
}

/* asg_tblog_variables: the parameters and the batch-norm statistics, not
 * the optimizer's state; values as asg_program_get_variable reads them. */
static void test_variables(const char *tmp) {
  asg_graph *g = asg_graph_new();
  asg_graph_set_seed(g, 3);
  asg_tensor *x = asg_input(g, "x", ASG_F32, ASG_SHAPE(4, 3));
  asg_tensor *y = asg_input(g, "y", ASG_F32, ASG_SHAPE(4, 2));
  asg_layer *fc = asg_nn_linear(g, "fc", 3, 2), *bn = asg_nn_batchnorm(g, "bn", 2, 0, 0);
  asg_tensor *loss = asg_mse_loss(asg_layer_apply(bn, asg_layer_apply(fc, x)), y, ASG_REDUCE_MEAN);
  asg_program *p = asg_compile_train(g, loss, asg_adam(0.1), 0, NULL, NULL);
  TU_CHECK(p != NULL, "compile: %s", asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  double xv[12], yv[8];
  tu_rand(1, xv, 12, -1, 1), tu_rand(2, yv, 8, -1, 1);
  tu_feed(p, "x", ASG_F32, xv, 12), tu_feed(p, "y", ASG_F32, yv, 8);
  TU_CHECK(asg_program_run(p) == ASG_OK, "run: %s", asg_last_error());
  const char *names[6] = {asg_tensor_name(asg_layer_param(fc, "weight")),
                          asg_tensor_name(asg_layer_param(fc, "bias")),
                          asg_tensor_name(asg_layer_param(bn, "weight")),
                          asg_tensor_name(asg_layer_param(bn, "bias")),
                          asg_tensor_name(asg_layer_param(bn, "running_mean")),
                          asg_tensor_name(asg_layer_param(bn, "running_var"))};
  asg_tblog *w = asg_tblog_open(tmp);
  TU_CHECK(w != NULL, "open: %s", asg_last_error());
  if (!w) {
    asg_program_free(p), asg_graph_free(g);
    return;
  }
  TU_CHECK(asg_tblog_variables(w, p, 1) == ASG_OK, "variables: %s", asg_last_error());
  char path[1400];
  snprintf(path, sizeof path, "%s", asg_tblog_path(w));
  TU_CHECK(asg_tblog_close(w) == ASG_OK, "close: %s", asg_last_error());
  /* the file holds one histogram per name above, in the program's order:
   * find each by decoding, then compare its statistics */
  size_t n = 0, i = 0;
  uint8_t *b = read_all(path, &n);
  int found[6] = {0}, others = 0, rec = 0;
  char tags[6][128];
  for (int k = 0; k < 6; k++)
    snprintf(tags[k], sizeof tags[k], "params/%s", names[k] ? names[k] : "?");
  while (b && n - i >= 16) {
    uint64_t len = le(b + i, 8);
    if (len > n - i - 16) break;
    const uint8_t *d = b + i + 12;
    i += 16 + (size_t)len;
    pb_field sum, val, tag, h, f;
    if (rec++ == 0) continue;
    if (pb_find(d, (size_t)len, 5, &sum) != 1 || pb_find(sum.p, sum.n, 1, &val) != 1 ||
        pb_find(val.p, val.n, 1, &tag) != 1 || pb_find(val.p, val.n, 5, &h) != 1) {
      others++;
      continue;
    }
    int k = 0;
    while (k < 6 && !(strlen(tags[k]) == tag.n && memcmp(tags[k], tag.p, tag.n) == 0))
      k++;
    if (k == 6) {
      printf("unexpected tag %.*s\n", (int)tag.n, (const char *)tag.p);
      others++;
      continue;
    }
    found[k]++;
    double v[8], st[5];
    long m = tu_get_var(p, names[k], v);
    stats_of(v, (int)m, st);
    for (int s = 0; s < 5; s++)
      TU_CHECK(pb_find(h.p, h.n, s + 1, &f) == 1 && as_double(f.v) == st[s],
               "%s field %d: %.17g, want %.17g", tags[k], s + 1, as_double(f.v), st[s]);
  }
  TU_CHECK(i == n && others == 0, "records: %d not parameter histograms, %zu of %zu bytes", others,
           i, n);
  for (int k = 0; k < 6; k++)
    TU_CHECK(found[k] == 1, "%s logged %d times", tags[k], found[k]);
  free(b);
  unlink(path);
  asg_program_free(p);
  asg_graph_free(g);
}

int main(void) {
  /* the reference check value of CRC-32C */
  TU_CHECK(crc32c_bitwise((const uint8_t *)"123456789", 9) == 0xe3069283u, "crc32c check value");
  const char *t = tu_tmpdir_create("asg_test_tblog");
  if (!t) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", t);
  test_round_trip(tmp);
  test_open_errors(tmp);
  test_write_error(tmp);
  test_variables(tmp);
  tu_tmpdir_remove(tmp);
  return tu_finish();
}
