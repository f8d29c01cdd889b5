/* Tokenizers against Hugging Face `tokenizers`: the ids and decoded text of
 * every string in tests/fixtures/hf/tokenizers/encodings.json (written by
 * tests/fixtures/hf/make_tokenizers.py), round trips, vocabulary lookups,
 * invalid UTF-8, and malformed or unsupported files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static char fixdir[4096];
static const char *tmpdir;

/* ---- a minimal JSON reader for the fixture (the library's is internal) ---- */
typedef struct jv {
  char type; /* 'n' null, 'b' bool, 'i' number, 's' string, 'a' array, 'o' object */
  int64_t i;
  char *s;
  size_t len;
  int n;
  struct jv *items;
  char **keys;
} jv;

static void ws(const char **p) {
  while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t')
    (*p)++;
}

static void put_utf8(char *o, size_t *k, unsigned cp) {
  if (cp < 0x80) {
    o[(*k)++] = (char)cp;
  } else if (cp < 0x800) {
    o[(*k)++] = (char)(0xc0 | (cp >> 6));
    o[(*k)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    o[(*k)++] = (char)(0xe0 | (cp >> 12));
    o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[(*k)++] = (char)(0x80 | (cp & 0x3f));
  } else {
    o[(*k)++] = (char)(0xf0 | (cp >> 18));
    o[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[(*k)++] = (char)(0x80 | (cp & 0x3f));
  }
}

static bool jstr(const char **p, char **out, size_t *len) {
  const char *q = ++*p; /* after the quote */
  size_t cap = 16;
  while (*q && *q != '"')
    q += *q == '\\' ? 2 : 1, cap++;
  char *o = malloc(cap + 1);
  size_t k = 0;
  while (**p != '"') {
    char c = *(*p)++;
    if (c != '\\') {
      o[k++] = c;
      continue;
    }
    c = *(*p)++;
    const char *esc = strchr("\"\"\\\\//b\bf\fn\nr\rt\t", c);
    if (c != 'u' && esc) {
      o[k++] = esc[1];
      continue;
    }
    unsigned cp = (unsigned)strtoul((char[5]){(*p)[0], (*p)[1], (*p)[2], (*p)[3], 0}, NULL, 16);
    *p += 4;
    if (cp >= 0xd800 && cp < 0xdc00 && (*p)[0] == '\\' && (*p)[1] == 'u') {
      unsigned lo = (unsigned)strtoul((char[5]){(*p)[2], (*p)[3], (*p)[4], (*p)[5], 0}, NULL, 16);
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      *p += 6;
    }
    put_utf8(o, &k, cp);
  }
  (*p)++;
  o[k] = '\0';
  *out = o;
  *len = k;
  return true;
}

static bool jparse(const char **p, jv *v) {
  ws(p);
  memset(v, 0, sizeof *v);
  char c = **p;
  if (c == '"') {
    v->type = 's';
    return jstr(p, &v->s, &v->len);
  }
  if (c == '[' || c == '{') {
    v->type = c == '[' ? 'a' : 'o';
    (*p)++;
    int cap = 0;
    for (;;) {
      ws(p);
      if (**p == (c == '[' ? ']' : '}')) {
        (*p)++;
        return true;
      }
      if (**p == ',') (*p)++, ws(p);
      if (v->n == cap) {
        cap = cap ? cap * 2 : 8;
        v->items = realloc(v->items, (size_t)cap * sizeof *v->items);
        v->keys = realloc(v->keys, (size_t)cap * sizeof *v->keys);
      }
      v->keys[v->n] = NULL;
      if (c == '{') {
        size_t kl;
        if (!jstr(p, &v->keys[v->n], &kl)) return false;
        ws(p);
        (*p)++; /* ':' */
      }
      if (!jparse(p, &v->items[v->n++])) return false;
    }
  }
  if (strncmp(*p, "null", 4) == 0) return v->type = 'n', *p += 4, true;
  if (strncmp(*p, "true", 4) == 0) return v->type = 'b', v->i = 1, *p += 4, true;
  if (strncmp(*p, "false", 5) == 0) return v->type = 'b', *p += 5, true;
  char *end;
  v->type = 'i';
  v->i = strtoll(*p, &end, 10);
  if (end == *p) return false;
  *p = end;
  return true;
}

static void jfree(jv *v) {
  free(v->s);
  for (int i = 0; i < v->n; i++) {
    jfree(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
}

static const jv *jget(const jv *o, const char *key) {
  for (int i = 0; o && o->type == 'o' && i < o->n; i++)
    if (strcmp(o->keys[i], key) == 0) return &o->items[i];
  return NULL;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  fclose(f);
  s[got] = '\0';
  if (len) *len = got;
  return s;
}

/* ---- comparisons against the fixture ---- */
static bool same_ids(const jv *want, const int32_t *ids, size_t n) {
  if (!want || want->type != 'a' || (size_t)want->n != n) return false;
  for (size_t i = 0; i < n; i++)
    if (want->items[i].i != ids[i]) return false;
  return true;
}

static int32_t *to_ids(const jv *a) {
  int32_t *ids = malloc(((size_t)a->n + 1) * sizeof *ids);
  for (int i = 0; i < a->n; i++)
    ids[i] = (int32_t)a->items[i].i;
  return ids;
}

/* decode(ids) == want (NUL bytes included) */
static void check_decode(const asg_tokenizer *t, const char *name, const jv *ids, bool skip,
                         const jv *want, const char *what) {
  int32_t *v = to_ids(ids);
  char *text = NULL;
  size_t len = 0;
  asg_status st = asg_tokenizer_decode(t, v, (size_t)ids->n, skip, &text, &len);
  TU_CHECK(st == ASG_OK && text && len == want->len && memcmp(text, want->s, len) == 0 &&
               text[len] == '\0',
           "%s: decode%s of %s: got '%s', want '%s' (%s)", name, skip ? " (skip)" : "", what,
           text ? text : "(null)", want->s, asg_last_error());
  free(text);
  free(v);
}

static void check_fixture(const asg_tokenizer *t, const char *name, const jv *fx, bool bytelevel) {
  TU_CHECK(t != NULL, "%s: load: %s", name, asg_last_error());
  if (!t || !fx) return;
  TU_CHECK(asg_tokenizer_vocab_size(t) == jget(fx, "vocab_size")->i, "%s: vocab size %lld", name,
           (long long)asg_tokenizer_vocab_size(t));
  const jv *rows = jget(fx, "encodings");
  int bad = 0;
  for (int r = 0; r < rows->n; r++) {
    const jv *row = &rows->items[r], *text = jget(row, "text");
    for (int sp = 0; sp < 2; sp++) {
      int32_t *ids = NULL;
      size_t n = 0;
      asg_status st = asg_tokenizer_encode(t, text->s, text->len, sp == 0, &ids, &n);
      bool ok = st == ASG_OK && same_ids(jget(row, sp == 0 ? "ids" : "ids_plain"), ids, n);
      bad += !ok;
      TU_CHECK(ok, "%s: encode%s of row %d '%s': %zu ids (%s)", name, sp ? "" : " (special)", r,
               text->s, n, st ? asg_last_error() : "different ids");
      if (!ok && bad < 3) {
        printf("   got ");
        for (size_t i = 0; i < n; i++)
          printf("%d ", ids[i]);
        printf("\n");
      }
      if (sp == 1 && bytelevel && st == ASG_OK) { /* round trip */
        char *back = NULL;
        size_t blen = 0;
        asg_tokenizer_decode(t, ids, n, false, &back, &blen);
        TU_CHECK(back && blen == text->len && memcmp(back, text->s, blen) == 0,
                 "%s: round trip of row %d '%s' gave '%s'", name, r, text->s, back ? back : "");
        free(back);
      }
      free(ids);
    }
    check_decode(t, name, jget(row, "ids"), false, jget(row, "decoded"), text->s);
    check_decode(t, name, jget(row, "ids"), true, jget(row, "decoded_skip"), text->s);
  }
  const jv *decs = jget(fx, "decodes");
  for (int r = 0; r < decs->n; r++) {
    char what[32];
    snprintf(what, sizeof what, "decode case %d", r);
    check_decode(t, name, jget(&decs->items[r], "ids"), false, jget(&decs->items[r], "decoded"),
                 what);
    check_decode(t, name, jget(&decs->items[r], "ids"), true, jget(&decs->items[r], "decoded_skip"),
                 what);
  }
  /* every id maps to a token that maps back */
  int64_t nv = asg_tokenizer_vocab_size(t);
  int lookups = 0;
  for (int32_t id = 0; id < nv; id++) {
    const char *tok = asg_tokenizer_id_to_token(t, id);
    lookups += tok && asg_tokenizer_token_to_id(t, tok) == id;
  }
  TU_CHECK(lookups == nv, "%s: %d of %lld ids map to a token and back", name, lookups,
           (long long)nv);
  TU_CHECK(asg_tokenizer_id_to_token(t, -1) == NULL &&
               asg_tokenizer_id_to_token(t, (int32_t)nv) == NULL,
           "%s: id_to_token out of range", name);
  TU_CHECK(asg_tokenizer_token_to_id(t, "no such token, surely") == -1, "%s: unknown token", name);
}

static const char *fx_path(const char *rel) { return tu_path(fixdir, rel); }

static void test_fixtures(void) {
  char *text = read_all(fx_path("encodings.json"), NULL);
  TU_CHECK(text != NULL, "cannot read %s", fx_path("encodings.json"));
  if (!text) return;
  jv root;
  const char *p = text;
  TU_CHECK(jparse(&p, &root) && root.type == 'o', "encodings.json parses");
  free(text);

  asg_tokenizer *t = asg_tokenizer_load(fx_path("gpt2")); /* folder: its tokenizer.json */
  check_fixture(t, "gpt2", jget(&root, "gpt2"), true);
  TU_CHECK(asg_tokenizer_bos(t) == 511 && asg_tokenizer_eos(t) == 511, "gpt2 bos/eos %d %d",
           asg_tokenizer_bos(t), asg_tokenizer_eos(t));
  TU_CHECK(asg_tokenizer_is_special(t, 511) && !asg_tokenizer_is_special(t, 510), "gpt2 special");
  asg_tokenizer_free(t);
  char vocab[4096], merges[4096];
  snprintf(vocab, sizeof vocab, "%s", fx_path("gpt2/vocab.json"));
  snprintf(merges, sizeof merges, "%s", fx_path("gpt2/merges.txt"));
  t = asg_tokenizer_load_bpe(vocab, merges);
  check_fixture(t, "gpt2 vocab.json+merges.txt", jget(&root, "gpt2"), true);
  TU_CHECK(t && asg_tokenizer_bos(t) == 511 && asg_tokenizer_eos(t) == 511, "gpt2 files bos/eos");
  TU_CHECK(t && strcmp(asg_tokenizer_id_to_token(t, 511), "<|endoftext|>") == 0, "gpt2 files eot");
  asg_tokenizer_free(t);

  t = asg_tokenizer_load(fx_path("llama"));
  check_fixture(t, "llama", jget(&root, "llama"), false);
  TU_CHECK(asg_tokenizer_bos(t) == 1 && asg_tokenizer_eos(t) == 2, "llama bos/eos %d %d",
           asg_tokenizer_bos(t), asg_tokenizer_eos(t));
  asg_tokenizer_free(t);
  t = asg_tokenizer_load(fx_path("llama_meta/tokenizer.json")); /* a file; no config next to it */
  check_fixture(t, "llama_meta", jget(&root, "llama_meta"), false);
  TU_CHECK(asg_tokenizer_bos(t) == 1 && asg_tokenizer_eos(t) == 2,
           "llama_meta bos/eos from the template %d %d", asg_tokenizer_bos(t),
           asg_tokenizer_eos(t));
  asg_tokenizer_free(t);
  t = asg_tokenizer_load(fx_path("llama3"));
  check_fixture(t, "llama3", jget(&root, "llama3"), true);
  TU_CHECK(t && asg_tokenizer_bos(t) == asg_tokenizer_token_to_id(t, "<|begin_of_text|>") &&
               asg_tokenizer_eos(t) == asg_tokenizer_token_to_id(t, "<|end_of_text|>") &&
               asg_tokenizer_eos(t) >= 0,
           "llama3 bos/eos %d %d", asg_tokenizer_bos(t), asg_tokenizer_eos(t));
  asg_tokenizer_free(t);
  jfree(&root);
}

/* Invalid UTF-8 never fails: byte-level tokenizers encode the bytes and
 * decode them to U+FFFD as Hugging Face's lossy decoding; byte fallback
 * gives the <0xXX> tokens. */
static void test_invalid_utf8(void) {
  const char bad[] = "\xff\xfe abc \xc3";
  const char lossy[] = "\xef\xbf\xbd\xef\xbf\xbd abc \xef\xbf\xbd";
  asg_tokenizer *t = asg_tokenizer_load(fx_path("gpt2"));
  int32_t *ids = NULL;
  size_t n = 0;
  char *text = NULL;
  TU_CHECK(t && asg_tokenizer_encode(t, bad, sizeof bad - 1, true, &ids, &n) == ASG_OK && n >= 5,
           "gpt2: invalid UTF-8 encodes (%s)", asg_last_error());
  TU_CHECK(ids && asg_tokenizer_decode(t, ids, n, false, &text, NULL) == ASG_OK && text &&
               strcmp(text, lossy) == 0,
           "gpt2: invalid UTF-8 decodes to U+FFFD: '%s'", text ? text : "");
  free(ids), free(text);
  asg_tokenizer_free(t);

  t = asg_tokenizer_load(fx_path("llama"));
  ids = NULL, text = NULL;
  TU_CHECK(t && asg_tokenizer_encode(t, bad, sizeof bad - 1, false, &ids, &n) == ASG_OK,
           "llama: invalid UTF-8 encodes (%s)", asg_last_error());
  int32_t ff = asg_tokenizer_token_to_id(t, "<0xFF>"), fe = asg_tokenizer_token_to_id(t, "<0xFE>"),
          c3 = asg_tokenizer_token_to_id(t, "<0xC3>");
  TU_CHECK(ids && n >= 4 && ff >= 0 && ids[1] == ff && ids[2] == fe && ids[n - 1] == c3,
           "llama: invalid bytes are byte-fallback tokens");
  TU_CHECK(ids && asg_tokenizer_decode(t, ids, n, false, &text, NULL) == ASG_OK && text &&
               strcmp(text, lossy) == 0,
           "llama: invalid bytes decode to U+FFFD: '%s'", text ? text : "");
  free(ids), free(text);
  asg_tokenizer_free(t);
}

/* merges.txt without the "#version" line, CRLF line ends, a trailing empty line */
static void test_merges_variants(void) {
  size_t len;
  char *m = read_all(fx_path("gpt2/merges.txt"), &len);
  TU_CHECK(m && strncmp(m, "#version", 8) == 0, "fixture merges.txt has a header");
  if (!m) return;
  char *body = strchr(m, '\n') + 1;
  tu_write_file(tu_path(tmpdir, "merges_plain.txt"), body, strlen(body));
  size_t crlf_len = 0;
  char *crlf = malloc(2 * len + 2);
  for (const char *p = body; *p; p++) {
    if (*p == '\n') crlf[crlf_len++] = '\r';
    crlf[crlf_len++] = *p;
  }
  crlf[crlf_len++] = '\n';
  tu_write_file(tu_path(tmpdir, "merges_crlf.txt"), crlf, crlf_len);
  const char *s = "The quick brown fox, 12345 times: isn't it?\n";
  asg_tokenizer *ref = asg_tokenizer_load(fx_path("gpt2"));
  int32_t *want = NULL;
  size_t nw = 0;
  asg_tokenizer_encode(ref, s, strlen(s), false, &want, &nw);
  const char *names[2] = {"merges_plain.txt", "merges_crlf.txt"};
  for (int k = 0; k < 2; k++) {
    char vocab[4096];
    snprintf(vocab, sizeof vocab, "%s", fx_path("gpt2/vocab.json"));
    asg_tokenizer *t = asg_tokenizer_load_bpe(vocab, tu_path(tmpdir, names[k]));
    int32_t *ids = NULL;
    size_t n = 0;
    TU_CHECK(t && asg_tokenizer_encode(t, s, strlen(s), false, &ids, &n) == ASG_OK && n == nw &&
                 n > 0 && memcmp(ids, want, n * sizeof *ids) == 0 && n < strlen(s),
             "%s: same ids as tokenizer.json (%s)", names[k], asg_last_error());
    free(ids);
    asg_tokenizer_free(t);
  }
  free(want), free(m), free(crlf);
  asg_tokenizer_free(ref);
}

/* Writes text as tmpdir/name and returns the path. */
static const char *tmp_file(const char *name, const char *text) {
  const char *path = tu_path(tmpdir, name);
  tu_write_file(path, text, strlen(text));
  return path;
}

/* tokenizer.json of llama3 with `from` replaced by `to` (once). */
static const char *edited_json(const char *name, const char *from, const char *to) {
  char *s = read_all(fx_path("llama3/tokenizer.json"), NULL);
  char *hit = s ? strstr(s, from) : NULL;
  TU_CHECK(hit != NULL, "fixture has '%s'", from);
  if (!hit) {
    free(s);
    return tmp_file(name, "{}");
  }
  size_t a = (size_t)(hit - s), fl = strlen(from), tl = strlen(to), n = strlen(s);
  char *o = malloc(n - fl + tl + 1);
  memcpy(o, s, a);
  memcpy(o + a, to, tl);
  memcpy(o + a + tl, hit + fl, n - a - fl + 1);
  const char *path = tmp_file(name, o);
  free(s), free(o);
  return path;
}

static void expect_fail(asg_tokenizer *t, asg_status want, const char *needle, const char *what) {
  TU_CHECK(t == NULL, "%s: loaded", what);
  asg_tokenizer_free(t);
  const char *msg = asg_last_error();
  TU_CHECK(msg && strstr(msg, needle), "%s: message '%s' lacks '%s'", what, msg, needle);
  (void)want;
}

static void test_errors(void) {
  char vocab[4096];
  snprintf(vocab, sizeof vocab, "%s", fx_path("gpt2/vocab.json"));
  const char *merges = tmp_file("m_ok.txt", "#version: 0.2\n\xc4\xa0 t\n");
  asg_tokenizer *t;

  /* missing files and folders */
  t = asg_tokenizer_load(tu_path(tmpdir, "nope.json"));
  expect_fail(t, ASG_ERR_IO, "nope.json", "missing file");
  TU_CHECK(asg_status_string(ASG_ERR_IO) && t == NULL, "missing");
  t = asg_tokenizer_load(tmpdir); /* a folder without tokenizer files */
  expect_fail(t, ASG_ERR_IO, "neither tokenizer.json", "empty folder");
  t = asg_tokenizer_load_bpe(vocab, tu_path(tmpdir, "no_merges.txt"));
  expect_fail(t, ASG_ERR_IO, "no_merges.txt", "missing merges.txt");
  TU_CHECK(asg_tokenizer_load(NULL) == NULL && asg_tokenizer_load_bpe(NULL, merges) == NULL,
           "NULL paths");

  /* malformed vocab.json and merges.txt */
  struct {
    const char *vocab, *merges, *needle;
  } cases[] = {
      {"{\"a\": 0, \"b\": ", NULL, "v_bad.json"},               /* truncated JSON */
      {"[1, 2]", NULL, "v_bad.json"},                           /* not an object */
      {"{\"a\": \"x\"}", NULL, "\"a\""},                        /* id not an integer */
      {"{\"a\": -1}", NULL, "\"a\""},                           /* negative id */
      {"{\"a\": 0, \"b\": 0}", NULL, "id 0"},                   /* duplicate id */
      {"{\"a\": 0, \"b\": 1, \"ab\": 2}", "a b c\n", "line 1"}, /* three tokens */
      {"{\"a\": 0, \"b\": 1, \"ab\": 2}", "a x\n", "\"x\" is not in the vocabulary"},
      {"{\"a\": 0, \"b\": 1}", "a b\n", "merged token is not in the vocabulary"},
      {"{\"a\": 0, \"b\": 1, \"ab\": 2}", "a b\nab\n", "line 2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *v = tmp_file("v_bad.json", cases[i].vocab);
    char vp[4096];
    snprintf(vp, sizeof vp, "%s", v);
    const char *m = cases[i].merges ? tmp_file("m_bad.txt", cases[i].merges) : merges;
    t = asg_tokenizer_load_bpe(vp, m);
    TU_CHECK(t == NULL && asg_status_string(ASG_ERR_FORMAT), "case %zu loaded", i);
    const char *msg = asg_last_error();
    TU_CHECK(strstr(msg, cases[i].needle) &&
                 (strstr(msg, "v_bad.json") || strstr(msg, "m_bad.txt")),
             "case %zu: message '%s' lacks '%s' or the file", i, msg, cases[i].needle);
    asg_tokenizer_free(t);
  }

  /* tokenizer.json: unsupported components are named */
  t = asg_tokenizer_load(edited_json("re.json", "\\\\p{N}{1,3}", "\\\\p{N}{1,4}"));
  expect_fail(t, ASG_ERR_UNSUPPORTED, "\\p{N}{1,4}", "unknown Split pattern");
  t = asg_tokenizer_load(edited_json("wp.json", "\"type\": \"BPE\"", "\"type\": \"WordPiece\""));
  expect_fail(t, ASG_ERR_UNSUPPORTED, "WordPiece", "WordPiece model");
  t = asg_tokenizer_load(
      edited_json("nfc.json", "\"normalizer\": null", "\"normalizer\": {\"type\": \"NFC\"}"));
  expect_fail(t, ASG_ERR_UNSUPPORTED, "NFC", "NFC normalizer");
  t = asg_tokenizer_load(edited_json("dec.json", "\"decoder\": {\n    \"type\": \"ByteLevel\"",
                                     "\"decoder\": {\n    \"type\": \"WordPiece\""));
  expect_fail(t, ASG_ERR_UNSUPPORTED, "WordPiece", "WordPiece decoder");
  t = asg_tokenizer_load(edited_json("mv.json", "\"vocab\": {", "\"vocab\": 3, \"v\": {"));
  expect_fail(t, ASG_ERR_FORMAT, "model.vocab", "vocab not an object");
  t = asg_tokenizer_load(edited_json("mg.json", "\"merges\": [", "\"merges\": [[\"x\"], "));
  expect_fail(t, ASG_ERR_FORMAT, "merge 1", "bad merge item");
  t = asg_tokenizer_load(tmp_file("trunc.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {"));
  expect_fail(t, ASG_ERR_FORMAT, "trunc.json", "truncated tokenizer.json");
  t = asg_tokenizer_load(tmp_file("empty.json", "{}"));
  expect_fail(t, ASG_ERR_FORMAT, "model", "no model");

  /* decode: ids outside the vocabulary are named */
  t = asg_tokenizer_load(fx_path("gpt2"));
  int32_t ids[3] = {1, 512, 2};
  char *text = (char *)"x";
  TU_CHECK(asg_tokenizer_decode(t, ids, 3, false, &text, NULL) == ASG_ERR_INVALID && text == NULL &&
               strstr(asg_last_error(), "id 512"),
           "decode id 512: %s", asg_last_error());
  ids[1] = -3;
  TU_CHECK(asg_tokenizer_decode(t, ids, 3, false, &text, NULL) == ASG_ERR_INVALID &&
               strstr(asg_last_error(), "id -3"),
           "decode id -3: %s", asg_last_error());
  int32_t *out = NULL;
  size_t n = 5;
  TU_CHECK(asg_tokenizer_encode(NULL, "a", 1, false, &out, &n) == ASG_ERR_INVALID && n == 0,
           "encode NULL tokenizer");
  TU_CHECK(asg_tokenizer_encode(t, NULL, 1, false, &out, &n) == ASG_ERR_INVALID,
           "encode NULL text");
  TU_CHECK(asg_tokenizer_encode(t, NULL, 0, true, &out, &n) == ASG_OK && n == 0 && out == NULL,
           "encode empty");
  TU_CHECK(asg_tokenizer_decode(t, NULL, 0, false, &text, NULL) == ASG_OK && text &&
               text[0] == '\0',
           "decode nothing");
  free(text);
  asg_tokenizer_free(t);
  TU_CHECK(asg_tokenizer_vocab_size(NULL) == -1 && asg_tokenizer_bos(NULL) == -1 &&
               asg_tokenizer_token_to_id(NULL, "a") == -1,
           "NULL tokenizer");
}

/* A few MB of text: encodes and round-trips (time printed, not checked). */
static void test_large(void) {
  size_t unit_len;
  char *unit = read_all(fx_path("../make_tokenizers.py"), &unit_len);
  if (!unit) return;
  size_t reps = (4u << 20) / unit_len + 1, len = reps * unit_len;
  char *big = malloc(len + 1);
  for (size_t i = 0; i < reps; i++)
    memcpy(big + i * unit_len, unit, unit_len);
  big[len] = '\0';
  /* no special tokens such as <s> in the text, and no "▁" (llama decodes it
   * as a space) */
  for (char *p = big; (p = strstr(p, "\xe2\x96\x81")) != NULL;)
    memcpy(p, "___", 3);
  for (size_t i = 0; i < len; i++)
    if (big[i] == '<') big[i] = '[';
  const char *names[3] = {"gpt2", "llama3", "llama"};
  for (int k = 0; k < 3; k++) {
    asg_tokenizer *t = asg_tokenizer_load(fx_path(names[k]));
    int32_t *ids = NULL;
    size_t n = 0;
    char *back = NULL;
    size_t blen = 0;
    clock_t c0 = clock();
    asg_status st = asg_tokenizer_encode(t, big, len, false, &ids, &n);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    TU_CHECK(st == ASG_OK && n > len / 8, "%s: %zu MB encoded to %zu ids", names[k], len >> 20, n);
    printf("%s: %.2f MB in %.3f s (%zu ids)\n", names[k], (double)len / 1e6, secs, n);
    /* round trip for llama too: its decoder strips the space that its
     * normalizer prepends */
    TU_CHECK(asg_tokenizer_decode(t, ids, n, false, &back, &blen) == ASG_OK && blen == len &&
                 memcmp(back, big, len) == 0,
             "%s: large round trip", names[k]);
    free(ids), free(back);
    asg_tokenizer_free(t);
  }
  free(big), free(unit);
}

int main(void) {
  const char *env = getenv("ASG_FIXTURES");
  if (env) {
    snprintf(fixdir, sizeof fixdir, "%s/hf/tokenizers", env);
  } else { /* tests/fixtures/hf/tokenizers next to this source file */
    snprintf(fixdir, sizeof fixdir, "%s", __FILE__);
    char *slash = strrchr(fixdir, '/');
    if (slash)
      snprintf(slash, sizeof fixdir - (size_t)(slash - fixdir), "/fixtures/hf/tokenizers");
    else
      snprintf(fixdir, sizeof fixdir, "fixtures/hf/tokenizers");
  }
  tmpdir = tu_tmpdir_create("asg_test_tokenizer");
  if (!tmpdir) {
    printf("cannot create a temporary directory\n");
    return 1;
  }
  static char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", tmpdir);
  tmpdir = tmp;
  test_fixtures();
  test_invalid_utf8();
  test_merges_variants();
  test_errors();
  test_large();
  tu_tmpdir_remove(tmpdir);
  return tu_finish();
}
