/* What the benchmarks share: a clock, medians, and the MLP and CNN models
 * of bench_train (also timed by bench_symbolic). */
#ifndef ASG_BENCH_COMMON_H
#define ASG_BENCH_COMMON_H

#include "asg/asg.h"

/* Seconds on a monotonic clock. */
double bench_now(void);
/* qsort comparator of doubles. */
int bench_cmp(const void *a, const void *b);
/* The median of t[0..n) (sorts t). */
double bench_median(double *t, int n);

/* Logits [B, 10] of the MLP 784-512-512-10 from x [B, 784]. */
asg_tensor *bench_mlp_logits(asg_graph *g, asg_tensor *x);
/* Logits [B, 10] of the Fashion-MNIST example's CNN from x [B, 1, 28, 28]. */
asg_tensor *bench_cnn_logits(asg_graph *g, asg_tensor *x);

#endif
