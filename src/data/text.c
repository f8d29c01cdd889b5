/* Character-level text corpora. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>

#include "core/checks.h"
#include "core/internal.h"

typedef struct bytes {
  unsigned char *p;
  size_t n, cap;
} bytes;

static asg_status append_file(bytes *b, const char *path) {
  asg_status st;
  int fd = asg__open_regular(path, "asg_text_load", &st); /* no FIFOs: they block */
  if (fd < 0) return st;
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return asg__error(ASG_ERR_OOM, "asg_text_load: cannot read '%s': out of memory", path);
  }
  unsigned char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
    if (b->n + k > b->cap) {
      size_t cap = b->cap ? b->cap * 2 : 1 << 20;
      while (cap < b->n + k)
        cap *= 2;
      unsigned char *np = realloc(b->p, cap);
      if (!np) {
        fclose(f);
        return asg__error(ASG_ERR_OOM, "asg_text_load: out of memory reading '%s'", path);
      }
      b->p = np;
      b->cap = cap;
    }
    memcpy(b->p + b->n, buf, k);
    b->n += k;
  }
  bool err = ferror(f);
  fclose(f);
  return err ? asg__error(ASG_ERR_IO, "asg_text_load: read error in '%s'", path) : ASG_OK;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static asg_status append_dir(bytes *b, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return asg__error(ASG_ERR_IO, "asg_text_load: cannot open directory '%s'", dir);
  char **names = NULL;
  size_t n = 0, cap = 0;
  asg_status st = ASG_OK;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && !st) {
    size_t len = strlen(e->d_name);
    if (e->d_name[0] == '.' || (len > 4 && strcmp(e->d_name + len - 4, ".dat") == 0)) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue; /* skips symlinks */
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) {
        st = asg__error(ASG_ERR_OOM, "asg_text_load: out of memory");
        break;
      }
      names = nn;
    }
    names[n] = malloc(strlen(path) + 1);
    if (!names[n]) {
      st = asg__error(ASG_ERR_OOM, "asg_text_load: out of memory");
      break;
    }
    strcpy(names[n++], path);
  }
  closedir(d);
  if (names) qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++) {
    if (!st) st = append_file(b, names[i]);
    free(names[i]);
  }
  free(names);
  return st;
}

asg_status asg_text_load(const char *const *paths, int n_paths, asg_text *out) {
  if (!paths || n_paths <= 0 || !out) return asg__error(ASG_ERR_INVALID, "asg_text_load: no paths");
  memset(out, 0, sizeof *out);
  bytes b = {0};
  asg_status st = ASG_OK;
  for (int i = 0; i < n_paths && !st; i++) {
    struct stat sb;
    if (!paths[i] || stat(paths[i], &sb) != 0)
      st = asg__error(ASG_ERR_IO, "asg_text_load: '%s' does not exist",
                      paths[i] ? paths[i] : "(null)");
    else
      st = S_ISDIR(sb.st_mode) ? append_dir(&b, paths[i]) : append_file(&b, paths[i]);
  }
  if (!st && b.n < 2)
    st = asg__error(ASG_ERR_FORMAT, "asg_text_load: corpus has fewer than 2 bytes");
  if (!st) {
    out->tokens = malloc(sizeof *out->tokens * b.n);
    if (!out->tokens) st = asg__error(ASG_ERR_OOM, "asg_text_load: out of memory");
  }
  if (st) {
    free(b.p);
    return st;
  }
  bool seen[256] = {false};
  for (size_t i = 0; i < b.n; i++)
    seen[b.p[i]] = true;
  for (int c = 0; c < 256; c++) {
    out->index[c] = -1;
    if (seen[c]) {
      out->index[c] = (int16_t)out->vocab_size;
      out->chars[out->vocab_size++] = (unsigned char)c;
    }
  }
  for (size_t i = 0; i < b.n; i++)
    out->tokens[i] = out->index[b.p[i]];
  out->n = (int64_t)b.n;
  free(b.p);
  return ASG_OK;
}

void asg_text_free(asg_text *t) {
  if (!t) return;
  free(t->tokens);
  memset(t, 0, sizeof *t);
}

double asg_text_unigram_entropy(const asg_text *t, int64_t begin, int64_t end) {
  if (!t || !t->tokens || begin < 0 || end > t->n || end <= begin) return NAN;
  int64_t count[256] = {0};
  for (int64_t i = begin; i < end; i++)
    count[t->tokens[i]]++;
  double h = 0, n = (double)(end - begin);
  for (int c = 0; c < 256; c++)
    if (count[c]) h -= (double)count[c] / n * log((double)count[c] / n);
  return h;
}

asg_status asg_text_batch(const asg_text *t, int64_t begin, int64_t end, int64_t batch, int64_t ctx,
                          uint64_t seed, uint64_t step, int32_t *x, int32_t *y) {
  /* end - begin - 1 < ctx, not end - begin < ctx + 1: ctx may be INT64_MAX */
  if (!t || !t->tokens || !x || !y || batch <= 0 || ctx <= 0 || begin < 0 || end > t->n ||
      end <= begin || end - begin - 1 < ctx)
    return asg__error(ASG_ERR_INVALID,
                      "asg_text_batch: range [%lld,%lld) too short for context %lld",
                      (long long)begin, (long long)end, (long long)ctx);
  int64_t cells;
  if (!asg__mul_i64(batch, ctx, &cells))
    return asg__error(ASG_ERR_INVALID, "asg_text_batch: batch %lld x context %lld overflows",
                      (long long)batch, (long long)ctx);
  uint64_t key = asg__rng_key(seed, step);
  uint64_t span = (uint64_t)(end - begin - ctx); /* valid window starts */
  for (int64_t b = 0; b < batch; b++) {
    int64_t s = begin + (int64_t)(asg__rng_bits(key, (uint64_t)b) % span);
    memcpy(x + b * ctx, t->tokens + s, sizeof *x * (size_t)ctx);
    memcpy(y + b * ctx, t->tokens + s + 1, sizeof *y * (size_t)ctx);
  }
  return ASG_OK;
}
