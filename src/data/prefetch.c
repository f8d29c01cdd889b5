/* Background prefetch: one worker thread fills a ring of `depth` buffers
 * ahead of the consumer. Slots [tail, head) are filled and waiting; the
 * consumer holds slot tail - 1 between two next() calls; the worker writes
 * slot head while fewer than depth slots are in use. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/data.h"
#include "core/internal.h"

struct asg_prefetcher {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* any change of head, tail, held, stop */
  asg_prefetch_fn fill;
  void *ctx;
  size_t bytes;
  int depth;
  unsigned char **bufs;
  int64_t head, tail; /* batches filled / taken */
  bool held;          /* the consumer holds slot (tail - 1) % depth */
  bool stop, done;    /* stop: free() asked; done: the worker finished */
  asg_status status;  /* the worker's error, after its batches */
  char msg[512];
};

static void *worker(void *arg) {
  asg_prefetcher *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->stop && p->head - p->tail + p->held >= p->depth)
      pthread_cond_wait(&p->cv, &p->mu);
    if (p->stop) break;
    int64_t i = p->head;
    unsigned char *buf = p->bufs[i % p->depth];
    pthread_mutex_unlock(&p->mu); /* fill runs unlocked: the slot is the worker's alone */
    bool end = false;
    asg_clear_error();
    asg_status st = p->fill(p->ctx, i, buf, p->bytes, &end);
    pthread_mutex_lock(&p->mu);
    if (st != ASG_OK) {
      const char *m = asg_last_error();
      if (m && *m)
        snprintf(p->msg, sizeof p->msg, "%s", m);
      else
        snprintf(p->msg, sizeof p->msg, "asg_prefetch: fill failed on batch %lld (status %d)",
                 (long long)i, (int)st);
      p->status = st;
      break;
    }
    if (end) break;
    p->head++;
    pthread_cond_broadcast(&p->cv);
  }
  p->done = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

asg_prefetcher *asg_prefetch_new(size_t bytes, int depth, asg_prefetch_fn fill, void *ctx) {
  if (!fill || !bytes || depth < 0 || depth > 64) {
    asg__error(ASG_ERR_INVALID,
               "asg_prefetch_new: bytes %zu, depth %d, fill %s: need bytes > 0, "
               "depth 0..64 and a fill function",
               bytes, depth, fill ? "set" : "NULL");
    return NULL;
  }
  if (!depth) depth = 2;
  asg_prefetcher *p = calloc(1, sizeof *p);
  if (p) p->bufs = calloc((size_t)depth, sizeof *p->bufs);
  for (int k = 0; p && p->bufs && k < depth; k++)
    if (!(p->bufs[k] = malloc(bytes))) break;
  bool ok = p && p->bufs && p->bufs[depth - 1];
  if (ok) {
    p->fill = fill;
    p->ctx = ctx;
    p->bytes = bytes;
    p->depth = depth;
    ok = pthread_mutex_init(&p->mu, NULL) == 0;
    if (ok && pthread_cond_init(&p->cv, NULL) != 0) {
      pthread_mutex_destroy(&p->mu);
      ok = false;
    }
    if (!ok) asg__error(ASG_ERR_OOM, "asg_prefetch_new: cannot create a mutex");
    if (ok && pthread_create(&p->thread, NULL, worker, p) != 0) {
      pthread_cond_destroy(&p->cv);
      pthread_mutex_destroy(&p->mu);
      asg__error(ASG_ERR_IO, "asg_prefetch_new: cannot start the worker thread");
      ok = false;
    }
  } else {
    asg__error(ASG_ERR_OOM, "asg_prefetch_new: %d buffers of %zu bytes: out of memory", depth,
               bytes);
  }
  if (ok) return p;
  if (p && p->bufs)
    for (int k = 0; k < depth; k++)
      free(p->bufs[k]);
  if (p) free(p->bufs);
  free(p);
  return NULL;
}

asg_status asg_prefetch_next(asg_prefetcher *p, const void **buf, int64_t *index) {
  if (!p || !buf) return asg__error(ASG_ERR_INVALID, "asg_prefetch_next: NULL argument");
  *buf = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->held) { /* the caller is done with the batch it held */
    p->held = false;
    pthread_cond_broadcast(&p->cv);
  }
  while (p->tail == p->head && !p->done)
    pthread_cond_wait(&p->cv, &p->mu);
  asg_status st = ASG_OK;
  if (p->tail < p->head) {
    *buf = p->bufs[p->tail % p->depth];
    if (index) *index = p->tail;
    p->tail++;
    p->held = true;
    pthread_cond_broadcast(&p->cv);
  } else if (p->status) {
    st = asg__error(p->status, "%s", p->msg);
  }
  pthread_mutex_unlock(&p->mu);
  return st;
}

void asg_prefetch_free(asg_prefetcher *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  for (int k = 0; k < p->depth; k++)
    free(p->bufs[k]);
  free(p->bufs);
  free(p);
}
