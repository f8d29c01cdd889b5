/* main() for fuzz targets built without libFuzzer: runs
 * LLVMFuzzerTestOneInput on each file named on the command line, and on
 * every file of each directory named (options starting with '-' are
 * ignored, so a libFuzzer command line replays unchanged). ctest runs the
 * committed corpora this way in every build. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return 1;
  }
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t k; buf && (k = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += k;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "replay: out of memory reading %s\n", path);
    return 1;
  }
  /* an exact-size copy, so that ASan sees reads past the input's end */
  uint8_t *exact = malloc(n ? n : 1);
  if (exact) memcpy(exact, buf, n);
  free(buf);
  if (!exact) return 1;
  printf("replay: %s (%zu bytes)\n", path, n);
  fflush(stdout);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, int *count) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "replay: cannot open directory %s\n", dir);
    return 1;
  }
  char *names[4096];
  int n = 0, bad = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL && n < 4096;)
    if (e->d_name[0] != '.') {
      names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
      if (names[n]) sprintf(names[n++], "%s/%s", dir, e->d_name);
    }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_name); /* a stable order */
  for (int i = 0; i < n; i++) {
    bad |= run_file(names[i]);
    free(names[i]);
  }
  *count += n;
  return bad;
}

int main(int argc, char **argv) {
  int bad = 0, count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (argv[i][0] == '-') continue;
    if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
      bad |= run_dir(argv[i], &count);
    } else {
      bad |= run_file(argv[i]);
      count++;
    }
  }
  printf("replay: %d inputs, %s\n", count, bad ? "errors" : "all ran");
  return bad || count == 0;
}
