/* Data: IDX files (plain and gzip, malformed ones), batcher, text corpora. */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void test_idx(void) {
  /* 2x3 uint8 */
  unsigned char ok[] = {0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 5, 6};
  tu_write_file("t_ok.idx", ok, sizeof ok);
  asg_host_tensor t;
  TU_CHECK(asg_idx_read("t_ok.idx", ASG_F32, &t) == ASG_OK, "read: %s", asg_last_error());
  TU_CHECK(t.shape.ndim == 2 && t.shape.dims[0] == 2 && t.shape.dims[1] == 3, "shape");
  TU_CHECK(((float *)t.data)[3] == 250.0f && ((float *)t.data)[5] == 6.0f, "values");
  asg_host_tensor_free(&t);
  /* gzip of the same file reads the same */
  TU_CHECK(system("gzip -kf t_ok.idx") == 0, "gzip available");
  TU_CHECK(asg_idx_read("t_ok.idx.gz", ASG_I64, &t) == ASG_OK, "gz read: %s", asg_last_error());
  TU_CHECK(t.data && ((int64_t *)t.data)[3] == 250, "gz values");
  asg_host_tensor_free(&t);
  /* int32 big-endian values, 1-D */
  unsigned char i32[] = {0, 0, 0x0C, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 0};
  tu_write_file("t_i32.idx", i32, sizeof i32);
  TU_CHECK(asg_idx_read("t_i32.idx", ASG_I32, &t) == ASG_OK, "i32 read");
  TU_CHECK(t.data && ((int32_t *)t.data)[0] == -2 && ((int32_t *)t.data)[1] == 256, "i32 values");
  asg_host_tensor_free(&t);
  /* malformed: bad magic, truncated values, truncated dims, zero dim, missing */
  unsigned char bad_magic[] = {1, 0, 0x08, 1, 0, 0, 0, 1, 7};
  unsigned char trunc[] = {0, 0, 0x08, 1, 0, 0, 0, 9, 1, 2};
  unsigned char trunc_dims[] = {0, 0, 0x08, 3, 0, 0};
  unsigned char zero_dim[] = {0, 0, 0x08, 1, 0, 0, 0, 0};
  unsigned char bad_type[] = {0, 0, 0x07, 1, 0, 0, 0, 1, 1};
  struct {
    const char *name;
    unsigned char *b;
    size_t n;
  } cases[] = {{"t_b1.idx", bad_magic, sizeof bad_magic},
               {"t_b2.idx", trunc, sizeof trunc},
               {"t_b3.idx", trunc_dims, sizeof trunc_dims},
               {"t_b4.idx", zero_dim, sizeof zero_dim},
               {"t_b5.idx", bad_type, sizeof bad_type}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tu_write_file(cases[i].name, cases[i].b, cases[i].n);
    asg_status st = asg_idx_read(cases[i].name, ASG_F32, &t);
    TU_CHECK(st == ASG_ERR_FORMAT && t.data == NULL && strstr(asg_last_error(), cases[i].name),
             "%s: status %d, message '%s'", cases[i].name, st, asg_last_error());
  }
  TU_CHECK(asg_idx_read("does-not-exist.idx", ASG_F32, &t) == ASG_ERR_IO, "missing file");
  TU_CHECK(asg_idx_read("t_ok.idx", ASG_BF16, &t) == ASG_ERR_DTYPE, "bf16 target refused");
}

static void test_batcher(void) {
  asg_batcher *b = asg_batcher_new(10, 3, true, false, 7);
  int64_t idx[3], seen[10] = {0}, k, total = 0;
  while ((k = asg_batcher_next(b, idx)) > 0) {
    for (int64_t i = 0; i < k; i++)
      seen[idx[i]]++;
    total += k;
  }
  TU_CHECK(total == 10, "epoch covers all items (%lld)", (long long)total);
  int all_once = 1;
  for (int i = 0; i < 10; i++)
    all_once &= seen[i] == 1;
  TU_CHECK(all_once, "each item once per epoch");
  TU_CHECK(asg_batcher_epoch(b) == 1 && asg_batcher_batches_per_epoch(b) == 4, "epoch counters");
  /* same seed, same order; different epochs differ */
  asg_batcher *b2 = asg_batcher_new(10, 10, true, true, 7);
  int64_t e0[10], e1[10], c[10];
  asg_batcher_next(b2, e0);
  asg_batcher_next(b2, c); /* end of epoch */
  asg_batcher_next(b2, e1);
  asg_batcher *b3 = asg_batcher_new(10, 10, true, true, 7);
  asg_batcher_next(b3, c);
  TU_CHECK(memcmp(c, e0, sizeof c) == 0, "reproducible from the seed");
  TU_CHECK(memcmp(e0, e1, sizeof c) != 0, "reshuffled each epoch");
  TU_CHECK(asg_batcher_new(5, 6, true, true, 1) == NULL && asg_last_error()[0],
           "bad sizes refused");
  asg_batcher_free(b), asg_batcher_free(b2), asg_batcher_free(b3);
}

static void test_text(void) {
  const char *txt = "abracadabra\n";
  tu_write_file("t_text.txt", (const unsigned char *)txt, strlen(txt));
  const char *paths[1] = {"t_text.txt"};
  asg_text t;
  TU_CHECK(asg_text_load(paths, 1, &t) == ASG_OK, "text load: %s", asg_last_error());
  TU_CHECK(t.n == 12 && t.vocab_size == 6, "n %lld vocab %d", (long long)t.n, t.vocab_size);
  TU_CHECK(t.chars[t.tokens[0]] == 'a' && t.chars[t.tokens[1]] == 'b', "round trip");
  /* unigram entropy: a5 b2 r2 c1 d1 \n1 over 12 */
  double h = 0, cnt[6] = {5, 2, 2, 1, 1, 1};
  for (int i = 0; i < 6; i++)
    h -= cnt[i] / 12 * log(cnt[i] / 12);
  TU_CHECK(fabs(asg_text_unigram_entropy(&t, 0, 12) - h) < 1e-12, "entropy");
  int32_t x[8], y[8];
  TU_CHECK(asg_text_batch(&t, 0, 12, 2, 4, 1, 0, x, y) == ASG_OK, "batch");
  int shifted = 1;
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 3; i++)
      shifted &= x[b * 4 + i + 1] == y[b * 4 + i];
  TU_CHECK(shifted, "targets are inputs shifted by one");
  TU_CHECK(asg_text_batch(&t, 0, 4, 1, 4, 1, 0, x, y) != ASG_OK, "too-short range refused");
  asg_text_free(&t);
  const char *missing[1] = {"no/such/file"};
  TU_CHECK(asg_text_load(missing, 1, &t) == ASG_ERR_IO, "missing file");
}

static void test_split(void) {
  int64_t tr[10], va[10], ntr, nva, seen[10] = {0};
  TU_CHECK(asg_train_val_split(10, 0.3, 5, tr, &ntr, va, &nva) == ASG_OK, "split");
  TU_CHECK(ntr == 7 && nva == 3, "sizes %lld/%lld", (long long)ntr, (long long)nva);
  for (int64_t i = 0; i < ntr; i++)
    seen[tr[i]]++;
  for (int64_t i = 0; i < nva; i++)
    seen[va[i]]++;
  int once = 1;
  for (int i = 0; i < 10; i++)
    once &= seen[i] == 1;
  TU_CHECK(once, "a partition of 0..9");
  int64_t tr2[10], va2[10];
  asg_train_val_split(10, 0.3, 5, tr2, &ntr, va2, &nva);
  TU_CHECK(memcmp(tr, tr2, sizeof(int64_t) * 7) == 0, "reproducible");
  asg_batcher *b = asg_batcher_new_subset(va, nva, 2, true, false, 1);
  int64_t got[2], k, total = 0, inval = 1;
  while ((k = asg_batcher_next(b, got)) > 0) {
    total += k;
    for (int64_t i = 0; i < k; i++)
      inval &= got[i] == va[0] || got[i] == va[1] || got[i] == va[2];
  }
  TU_CHECK(total == 3 && inval, "subset batcher yields the subset");
  asg_batcher_free(b);
  TU_CHECK(asg_train_val_split(10, 1.5, 5, tr, &ntr, va, &nva) != ASG_OK, "bad fraction refused");
}

int main(void) {
  test_split();
  test_idx();
  test_batcher();
  test_text();
  return tu_finish();
}
