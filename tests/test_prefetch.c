/* Background prefetch: batches arrive in order with the right contents,
 * the worker never writes the buffer the caller holds, errors arrive after
 * the batches filled before them, and freeing at any point stops the
 * worker. Runs under ThreadSanitizer in CI (the library's pthread_create
 * starts the worker; .ci/run picks the tests that name pthread_create). */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "testutil.h"

enum { N = 64, ELEMS = 256 };

typedef struct src {
  int64_t n;       /* batches before the end; -1: never ends */
  int64_t fail_at; /* status error at this batch; -1: none */
  int calls;       /* fill calls (worker thread only until joined) */
} src;

static asg_status fill(void *ctx, int64_t i, void *buf, size_t bytes, bool *end) {
  src *s = ctx;
  s->calls++;
  if (s->fail_at == i) {
    char msg[64];
    snprintf(msg, sizeof msg, "source broke at batch %lld", (long long)i);
    /* a failing library call sets the message on the worker's thread
     * ("cannot open '<msg>'"); next() must carry it to the caller's */
    asg_host_tensor t;
    return asg_npy_read(msg, &t);
  }
  if (s->n >= 0 && i >= s->n) {
    *end = true;
    return ASG_OK;
  }
  int64_t *v = buf;
  for (size_t k = 0; k < bytes / sizeof *v; k++)
    v[k] = i * 1000 + (int64_t)k;
  return ASG_OK;
}

static void test_order(int depth) {
  src s = {N, -1, 0};
  asg_prefetcher *p = asg_prefetch_new(ELEMS * sizeof(int64_t), depth, fill, &s);
  TU_CHECK(p != NULL, "new depth %d: %s", depth, asg_last_error());
  if (!p) return;
  int64_t got = 0, idx = -1;
  const void *buf;
  bool ok = true;
  while (asg_prefetch_next(p, &buf, &idx) == ASG_OK && buf) {
    const int64_t *v = buf;
    /* read the whole batch slowly-ish: a worker writing it would show */
    for (int k = 0; k < ELEMS; k++)
      ok = ok && v[k] == got * 1000 + k;
    ok = ok && idx == got;
    got++;
  }
  TU_CHECK(ok && got == N, "depth %d: %lld batches in order (ok %d)", depth, (long long)got, ok);
  TU_CHECK(asg_prefetch_next(p, &buf, &idx) == ASG_OK && buf == NULL, "end is sticky");
  asg_prefetch_free(p);
  TU_CHECK(s.calls == N + 1, "fill called %d times (N + the end)", s.calls);
}

static void test_error(void) {
  src s = {-1, 5, 0};
  asg_prefetcher *p = asg_prefetch_new(64, 3, fill, &s);
  TU_CHECK(p != NULL, "new");
  if (!p) return;
  const void *buf;
  int64_t idx, got = 0;
  asg_status st;
  while ((st = asg_prefetch_next(p, &buf, &idx)) == ASG_OK && buf)
    got++;
  TU_CHECK(got == 5 && st == ASG_ERR_IO, "5 batches then the error (got %lld, status %d)",
           (long long)got, (int)st);
  TU_CHECK(tu_contains(asg_last_error(), "source broke at batch 5"),
           "the worker's message on the caller's thread: '%s'", asg_last_error());
  TU_CHECK(asg_prefetch_next(p, &buf, &idx) == ASG_ERR_IO && !buf, "the error stays");
  asg_prefetch_free(p);
}

static void test_early_free(void) {
  /* an endless source freed while the worker waits for room, and one freed
   * before anything was taken */
  for (int k = 0; k < 20; k++) {
    src s = {-1, -1, 0};
    asg_prefetcher *p = asg_prefetch_new(1024, 2, fill, &s);
    const void *buf;
    if (p && k % 2) asg_prefetch_next(p, &buf, NULL);
    asg_prefetch_free(p);
    TU_CHECK(p != NULL, "new %d", k);
  }
  asg_prefetch_free(NULL);
}

static void test_args(void) {
  TU_CHECK(!asg_prefetch_new(0, 2, fill, NULL) && tu_contains(asg_last_error(), "bytes 0"),
           "bytes 0");
  TU_CHECK(!asg_prefetch_new(8, 65, fill, NULL), "depth 65");
  TU_CHECK(!asg_prefetch_new(8, 2, NULL, NULL), "no fill");
  const void *buf;
  TU_CHECK(asg_prefetch_next(NULL, &buf, NULL) == ASG_ERR_INVALID, "NULL prefetcher");
}

int main(void) {
  test_order(0);
  test_order(1);
  test_order(4);
  test_error();
  test_early_free();
  test_args();
  return tu_finish();
}
