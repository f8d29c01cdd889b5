/* `asg inspect FILE.safetensors`: each tensor's name, dtype, shape and
 * size, the total, and the file's metadata (for an ASG checkpoint: format,
 * version, step and run count). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "asg/asg.h"
#include "asg_cmd.h"

static const char usage[] = "usage: asg inspect [options] FILE.safetensors\n"
                            "  -q, --quiet   only the totals and the metadata, not each tensor\n"
                            "  -h, --help    this help\n";

static void human(double b, char *buf, size_t n) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  for (; b >= 1024 && i < 4; i++)
    b /= 1024;
  snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

int asg_cmd_inspect(int argc, char **argv) {
  static const struct option lo[] = {
      {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  bool quiet = false;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
    if (c == 'q')
      quiet = true;
    else if (c == 'h') {
      printf("%s", usage);
      return 0;
    } else {
      fprintf(stderr, "%s", usage);
      return 2;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "asg inspect: give one file\n%s", usage);
    return 2;
  }
  const char *path = argv[optind];
  asg_safetensors *f = asg_safetensors_open(path);
  if (!f) {
    fprintf(stderr, "asg inspect: %s\n", asg_last_error());
    return 1;
  }
  const int n = asg_safetensors_count(f);
  size_t total = 0;
  int64_t elems = 0;
  char sh[256], hb[32];
  if (!quiet) printf("%-48s %-5s %-22s %10s\n", "name", "dtype", "shape", "bytes");
  for (int i = 0; i < n; i++) {
    asg_safetensors_info in;
    if (asg_safetensors_info_at(f, i, &in)) continue;
    total += in.nbytes;
    elems += asg_shape_numel(in.shape);
    if (quiet) continue;
    human((double)in.nbytes, hb, sizeof hb);
    printf("%-48s %-5s %-22s %10s\n", in.name, asg_dtype_name(in.dtype),
           asg_shape_str(in.shape, sh, sizeof sh), hb);
  }
  human((double)total, hb, sizeof hb);
  printf("total: %d tensors, %lld elements, %s (%zu bytes)\n", n, (long long)elems, hb, total);
  const int nm = asg_safetensors_metadata_count(f);
  if (nm > 0) printf("metadata:\n");
  for (int i = 0; i < nm; i++) {
    const char *k = NULL, *v = NULL;
    if (!asg_safetensors_metadata_at(f, i, &k, &v)) printf("  %s: %s\n", k, v);
  }
  const char *fmt = asg_safetensors_metadata(f, "format");
  if (fmt && !strcmp(fmt, "asg-checkpoint")) {
    const char *step = asg_safetensors_metadata(f, "step");
    int n_opt = 0;
    for (int i = 0; i < n; i++) {
      asg_safetensors_info in;
      if (!asg_safetensors_info_at(f, i, &in) && asg_is_optimizer_state(in.name)) n_opt++;
    }
    printf("ASG checkpoint at step %s: %d parameters/buffers, %d optimizer state tensors\n",
           step ? step : "?", n - n_opt, n_opt);
  }
  asg_safetensors_close(f);
  return 0;
}
