/* Progress reporting for training loops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"

struct asg_progress {
  char label[64];
  int64_t total, every, items;
  double t0, last_draw;
  bool tty, drawn;
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

asg_progress *asg_progress_new(const char *label, int64_t total, int64_t every) {
  asg_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  snprintf(p->label, sizeof p->label, "%s", label ? label : "");
  p->total = total > 0 ? total : 1;
  p->every = every > 0 ? every : (p->total / 10 > 0 ? p->total / 10 : 1);
  p->tty = isatty(fileno(stdout));
  p->t0 = now();
  return p;
}

static void fmt_time(double s, char *buf, size_t n) {
  long t = s < 0 ? 0 : (long)(s + 0.5);
  snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void asg_progress_update(asg_progress *p, int64_t step, double loss, int64_t items) {
  if (!p) return;
  p->items += items;
  double t = now(), el = t - p->t0;
  bool last = step >= p->total;
  double rate = el > 0 ? (double)p->items / el : 0;
  double eta = step > 0 ? el / (double)step * (double)(p->total - step) : 0;
  char eta_s[32], el_s[32];
  fmt_time(eta, eta_s, sizeof eta_s);
  fmt_time(el, el_s, sizeof el_s);
  if (p->tty) {
    if (!last && t - p->last_draw < 0.1) return; /* ~10 redraws a second */
    p->last_draw = t;
    char bar[31];
    int fill = (int)(30.0 * (double)step / (double)p->total);
    for (int i = 0; i < 30; i++)
      bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    printf("\r%s [%s] %lld/%lld loss %.4f %.0f/s %s ETA %s ", p->label, bar, (long long)step,
           (long long)p->total, loss, rate, el_s, eta_s);
    fflush(stdout);
    p->drawn = true;
  } else if (step % p->every == 0 || last) {
    printf("%s step %lld/%lld loss %.4f %.0f/s elapsed %s ETA %s\n", p->label, (long long)step,
           (long long)p->total, loss, rate, el_s, eta_s);
    fflush(stdout);
  }
}

void asg_progress_free(asg_progress *p) {
  if (!p) return;
  if (p->tty && p->drawn) printf("\n");
  free(p);
}
