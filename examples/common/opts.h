/* Option values for the examples (getopt_long parses the options): numbers
 * are checked, so "--epochs ten" is an error rather than 0. Header-only. */
#ifndef ASG_EXAMPLE_OPTS_H
#define ASG_EXAMPLE_OPTS_H

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* *out = v as an int in [lo, hi]; else prints why and returns -1. */
static inline int opt_int(const char *name, const char *v, int lo, int hi, int *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) {
    fprintf(stderr, "--%s: '%s' is not an integer in [%d, %d]\n", name, v, lo, hi);
    return -1;
  }
  *out = (int)x;
  return 0;
}

/* *out = v as a finite number >= lo; else prints why and returns -1. */
static inline int opt_double(const char *name, const char *v, double lo, double *out) {
  char *end;
  double x = strtod(v, &end);
  if (end == v || *end || !isfinite(x) || x < lo) {
    fprintf(stderr, "--%s: '%s' is not a number >= %g\n", name, v, lo);
    return -1;
  }
  *out = x;
  return 0;
}

/* The small examples' only option: --backend NAME (default cpu), and --help
 * printing `about`. Returns 0 to go on, 1 after --help, -1 on bad usage. */
static inline int opt_backend_only(int argc, char **argv, const char *about, const char **backend) {
  static const struct option lo[] = {
      {"backend", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  *backend = "cpu";
  for (int c; (c = getopt_long(argc, argv, "h", lo, NULL)) != -1;) {
    if (c == 'b') {
      *backend = optarg;
    } else {
      if (c == 'h') printf("usage: %s [--backend cpu|cuda|vulkan (cpu)]\n%s\n", argv[0], about);
      return c == 'h' ? 1 : -1;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "unexpected argument '%s' (--help lists the options)\n", argv[optind]);
    return -1;
  }
  return 0;
}

#endif
