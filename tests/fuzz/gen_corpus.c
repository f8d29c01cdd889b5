/* Writes the seed corpora of the fuzz targets with the library's own
 * writers: gen_corpus OUTDIR creates OUTDIR/<target>/<seed> (the committed
 * tests/fuzz/corpus was made this way; scripts/fuzz.sh regenerates them
 * next to the working corpus so that seeds follow format changes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef HAVE_ZLIB
#include <zlib.h>
#endif

#include "fuzz.h"

static const char *out;
static int failures;

static const char *path(const char *target, const char *name) {
  static char buf[2][1024];
  static int k;
  k ^= 1;
  snprintf(buf[k], sizeof buf[k], "%s/%s", out, target);
  mkdir(buf[k], 0777);
  snprintf(buf[k], sizeof buf[k], "%s/%s/%s", out, target, name);
  return buf[k];
}

static void check(asg_status st, const char *what) {
  if (st == ASG_OK) return;
  fprintf(stderr, "gen_corpus: %s: %s\n", what, asg_last_error());
  failures++;
}

static void write_bytes(const char *p, const void *data, size_t n) {
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, n, f) != n) failures++;
  if (f) fclose(f);
}

static void safetensors_seeds(void) {
  float f32[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
  double f64[2] = {0.25, -1e300};
  int32_t i32[3] = {1, -1, 2147483647};
  int64_t i64[1] = {-5};
  float half[4] = {1, 65504, -0.5f, 1e-7f};
  asg_host_tensor t[] = {{ASG_F32, ASG_SHAPE(2, 3), f32},  {ASG_F64, ASG_SHAPE(2), f64},
                         {ASG_I32, ASG_SHAPE(3), i32},     {ASG_I64, ASG_SHAPE(1), i64},
                         {ASG_F32, ASG_SHAPE(2, 2), half}, {ASG_F32, ASG_SHAPE(2), half},
                         {ASG_F32, ASG_SCALAR, f32},       {ASG_F32, ASG_SHAPE(0, 3), f32}};
  const char *names[] = {"a", "b.f64", "c/i32", "d", "e.half", "f.bf16", "scalar", "empty"};
  asg_dtype fdt[] = {ASG_F32, ASG_F64, ASG_I32, ASG_I64, ASG_F16, ASG_BF16, ASG_F32, ASG_F32};
  const char *meta[] = {"format", "pt", "note", "caf\xc3\xa9 \"quoted\""};
  const char *p = path("safetensors", "all_dtypes.safetensors");
  check(asg_safetensors_write_as(p, 8, names, t, fdt, 2, meta), "all_dtypes");
  check(asg_safetensors_write(path("safetensors", "empty.safetensors"), 0, NULL, NULL, 0, NULL),
        "empty");
  /* its header alone seeds the JSON target */
  FILE *f = fopen(p, "rb");
  unsigned char len8[8];
  if (f && fread(len8, 1, 8, f) == 8) {
    size_t n = 0;
    for (int k = 7; k >= 0; k--)
      n = n << 8 | len8[k];
    char *h = n < 65536 ? malloc(n) : NULL;
    if (h && fread(h, 1, n, f) == n) write_bytes(path("json", "header.json"), h, n);
    free(h);
  }
  if (f) fclose(f);
}

static void json_seeds(void) {
  const char *s[] = {
      "{\"a\": [1, -2.5e3, 0.0, 9223372036854775807, -9223372036854775808, 1e400], \"b\": {}}",
      "[true, false, null, \"\\u00e9\\ud83d\\ude00\\n\\\"\", [], [[[]]]]",
      ("{\"__metadata__\": {\"k\": \"v\"}, \"t\": {\"dtype\": \"F32\", \"shape\": [2], "
       "\"data_offsets\": [0, 8]}}"),
  };
  char name[32];
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "seed%d.json", i);
    write_bytes(path("json", name), s[i], strlen(s[i]));
  }
}

static void checkpoint_seeds(void) {
  asg_graph *g;
  asg_tensor *loss;
  asg_program *p = fuzz_model(&g, &loss);
  if (!p) {
    failures++;
    return;
  }
  check(fuzz_model_feed(p), "feed");
  check(asg_program_run(p), "run");
  check(asg_checkpoint_save(p, path("checkpoint", "step1.ckpt"), 1), "checkpoint");
  check(asg_program_save_variables(p, path("checkpoint", "model.safetensors"), ASG_VARS_MODEL),
        "model");
  float w[3 * 5] = {0};
  asg_host_tensor t = {ASG_F32, ASG_SHAPE(3, 5), w};
  const char *name = "fc2.weight"; /* one variable, stored as F16 */
  check(asg_safetensors_write_as(path("checkpoint", "one_f16.safetensors"), 1, &name, &t,
                                 (asg_dtype[]){ASG_F16}, 0, NULL),
        "one_f16");
  asg_program_free(p);
  asg_graph_free(g);
}

static void idx_bytes(unsigned char *b, int type, int ndim, const int *dims) {
  b[0] = b[1] = 0;
  b[2] = (unsigned char)type;
  b[3] = (unsigned char)ndim;
  for (int i = 0; i < ndim; i++) {
    b[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
    b[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
    b[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
    b[7 + 4 * i] = (unsigned char)dims[i];
  }
}

static void idx_seeds(void) {
  struct {
    const char *name;
    int type, size, ndim, dims[3];
  } s[] = {{"u8_2x3.idx", 0x08, 1, 2, {2, 3}},       {"i8_4.idx", 0x09, 1, 1, {4}},
           {"i16_3.idx", 0x0B, 2, 1, {3}},           {"i32_2.idx", 0x0C, 4, 1, {2}},
           {"f32_1x2x2.idx", 0x0D, 4, 3, {1, 2, 2}}, {"f64_2.idx", 0x0E, 8, 1, {2}}};
  for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
    unsigned char b[128];
    idx_bytes(b, s[k].type, s[k].ndim, s[k].dims);
    size_t n = 4 + 4 * (size_t)s[k].ndim, count = 1;
    for (int i = 0; i < s[k].ndim; i++)
      count *= (size_t)s[k].dims[i];
    for (size_t i = 0; i < count * (size_t)s[k].size; i++)
      b[n + i] = (unsigned char)(0x3f + 13 * i); /* arbitrary values */
    n += count * (size_t)s[k].size;
    write_bytes(path("idx", s[k].name), b, n);
#ifdef HAVE_ZLIB
    if (k == 0) {
      gzFile z = gzopen(path("idx", "u8_2x3.idx.gz"), "wb");
      if (!z || gzwrite(z, b, (unsigned)n) != (int)n) failures++;
      if (z) gzclose(z);
    }
#endif
  }
}

static void text_seeds(void) {
  static const char binary[] = "ab\n\x00\xff\xc3\xa9\t\r\n 0123456789 ~";
  const char *s[] = {"To be, or not to be, that is the question.\n", binary, "aa"};
  size_t n[] = {strlen(s[0]), sizeof binary - 1, 2};
  char name[32];
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "seed%d.txt", i);
    write_bytes(path("text", name), s[i], n[i]);
  }
}

/* fuzz_tokenizer: a first byte that picks the mode, then text for a
 * built-in tokenizer (even) or a tokenizer.json (odd). */
#define SEED(lit)                                                                                  \
  { lit, sizeof lit - 1 }
static void tokenizer_seeds(void) {
  static const struct {
    const char *s;
    size_t n;
  } seeds[] = {
      SEED("\x00Hello world's 12345  spaces\t\n<|endoftext|>caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac"),
      SEED("\x02I'M HERE, they'LL see 1234567 \r\n\r\n  x\xff"),
      SEED("\x02They'RE \xc5\xbf'\xc5\xbf 1234567\r\n \t\n x\xc2\xa0y <|endoftext|>"),
      SEED("\x04 ab a\xe2\x96\x81"
           "b <s> \xf0\x9f\x91\x8d \xc3"),
      SEED(
          "\x01{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, "
          "\"\xe2\x96\x81\": 1, \"a\": 2, \"b\": 3, \"ab\": 4}, \"merges\": [\"a b\"]}, "
          "\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
          "\"prepend_scheme\": \"first\", \"split\": true}, \"decoder\": {\"type\": "
          "\"Metaspace\", \"replacement\": \"\xe2\x96\x81\", \"prepend_scheme\": \"first\"}, "
          "\"added_tokens\": [{\"id\": 5, \"content\": \"<s>\", \"special\": true, \"lstrip\": "
          "true, \"rstrip\": true, \"single_word\": false, \"normalized\": false}]}"),
      SEED("\x01{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"<\": 3}, \"merges\": "
           "[[\"a\", \"b\"]], \"ignore_merges\": true}, \"pre_tokenizer\": {\"type\": \"Split\", "
           "\"pattern\": {\"Regex\": \"'s|'t|'re|'ve|'m|'ll|'d| ?\\\\p{L}+| ?\\\\p{N}+| "
           "?[^\\\\s\\\\p{L}\\\\p{N}]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", "
           "\"invert\": false}, \"post_processor\": {\"type\": \"RobertaProcessing\", \"cls\": "
           "[\"a\", 0], \"sep\": [\"b\", 1]}, \"decoder\": null}"),
  };
  char name[32];
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    snprintf(name, sizeof name, "seed%zu", i);
    write_bytes(path("tokenizer", name), seeds[i].s, seeds[i].n);
  }
}
#undef SEED

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: gen_corpus OUTDIR\n");
    return 2;
  }
  out = argv[1];
  mkdir(out, 0777);
  safetensors_seeds();
  json_seeds();
  checkpoint_seeds();
  idx_seeds();
  text_seeds();
  tokenizer_seeds();
  if (failures) fprintf(stderr, "gen_corpus: %d failures\n", failures);
  return failures != 0;
}
