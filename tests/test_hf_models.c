/* Pretrained models against Hugging Face transformers: the fixtures of
 * tests/fixtures/hf/make_models.py (tiny GPT-2 and Llama with grouped-query
 * attention, random weights, saved by transformers) and what transformers
 * computed for them: logits within 1e-4 relative, identical greedy tokens
 * (one prompt at a time and batched with left padding), decoding with the
 * KV cache equal to full-sequence logits, reproducible sampling, tokenizer
 * ids and text, a short fine-tuning run and a save that loads back.
 *
 *   test_hf_models [backend]                   the fixtures (default cpu)
 *   test_hf_models MODEL_DIR ORACLE_DIR [backend]
 *       a real checkpoint and the oracle make_models.py --model wrote. */
#include <stdlib.h>
#include <string.h>

#include "asg/tokenizer.h"
#include "testutil.h"

static const char *backend = "cpu";

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
  double e = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (d > e || d != d) e = d != d ? INFINITY : d;
    if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
  }
  return m > 0 ? e / m : e;
}

/* tensor `name` of the oracle as i32 or f32 (malloc'd); *n elements */
static void *oracle_read(asg_safetensors *f, const char *name, asg_dtype dt, int64_t *n) {
  int i = asg_safetensors_find(f, name);
  if (i < 0) return NULL;
  asg_safetensors_info info;
  if (asg_safetensors_info_at(f, i, &info) != ASG_OK) return NULL;
  int64_t numel = asg_shape_numel(info.shape);
  void *p = malloc((size_t)(numel ? numel : 1) * 4);
  if (p && asg_safetensors_read(f, i, dt, p, (size_t)numel * 4) != ASG_OK) {
    free(p);
    return NULL;
  }
  *n = numel;
  return p;
}

typedef struct oracle {
  int np;
  int32_t *prompt[3], *greedy[3];
  int plen[3], glen[3];
  float *logits[3];
} oracle;

static bool oracle_load(asg_safetensors *f, oracle *o) {
  memset(o, 0, sizeof *o);
  char name[64];
  for (int i = 0; i < 3; i++) {
    int64_t n = 0, g = 0, l = 0;
    snprintf(name, sizeof name, "prompt.%d", i);
    if (!(o->prompt[i] = oracle_read(f, name, ASG_I32, &n))) break;
    snprintf(name, sizeof name, "greedy.%d", i);
    o->greedy[i] = oracle_read(f, name, ASG_I32, &g);
    snprintf(name, sizeof name, "logits.%d", i);
    o->logits[i] = oracle_read(f, name, ASG_F32, &l);
    if (!o->greedy[i] || !o->logits[i]) return false;
    o->plen[i] = (int)n;
    o->glen[i] = (int)g;
    o->np = i + 1;
  }
  return o->np > 0;
}

static void oracle_free(oracle *o) {
  for (int i = 0; i < 3; i++)
    free(o->prompt[i]), free(o->greedy[i]), free(o->logits[i]);
}

static bool same_ids(const int32_t *a, const int32_t *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != b[i]) return false;
  return true;
}

/* prefill seq[0..T0), then decode seq[T0..T0+G) one token at a time: every
 * step's logits equal the full-sequence program's at that position */
static void check_cached(asg_lm *m, const int32_t *seq, int T0, int G, const char *what) {
  int64_t V = asg_lm_get_config(m)->vocab_size;
  float *full = malloc(sizeof(float) * (size_t)((T0 + G) * V));
  float *step = malloc(sizeof(float) * (size_t)V);
  asg_status st = asg_lm_logits(m, seq, T0 + G, full);
  const int32_t *p1[1] = {seq};
  int32_t nxt;
  if (st == ASG_OK) st = asg_lm_prefill(m, 1, p1, &T0, NULL, &nxt, step);
  double worst = st == ASG_OK ? rel_err(step, full + (size_t)(T0 - 1) * V, (size_t)V) : 1;
  for (int t = 0; st == ASG_OK && t < G; t++) {
    st = asg_lm_decode(m, &seq[T0 + t], NULL, &nxt, step);
    double e = rel_err(step, full + (size_t)(T0 + t) * V, (size_t)V);
    if (e > worst) worst = e;
  }
  TU_CHECK(st == ASG_OK && worst <= 1e-4,
           "%s: prompt of %d, cached decode vs full logits: relative error %.3g (%s)", what, T0,
           worst, st ? asg_last_error() : "values");
  free(full), free(step);
}

/* logits, greedy (alone and batched), cache vs full, sampling */
static void check_against_oracle(asg_lm *m, const oracle *o, const char *what) {
  const asg_lm_config *c = asg_lm_get_config(m);
  int64_t V = c->vocab_size;
  for (int i = 0; i < o->np; i++) {
    float *lg = malloc(sizeof(float) * (size_t)(o->plen[i] * V));
    asg_status st = asg_lm_logits(m, o->prompt[i], o->plen[i], lg);
    TU_CHECK(st == ASG_OK, "%s: logits %d: %s", what, i, asg_last_error());
    double e = st == ASG_OK ? rel_err(lg, o->logits[i], (size_t)(o->plen[i] * V)) : 1;
    TU_CHECK(e <= 1e-4, "%s: prompt %d logits relative error %.3g > 1e-4", what, i, e);
    free(lg);
    /* greedy, one prompt at a time */
    int32_t out[64];
    int32_t *outs[1] = {out};
    int olen = 0;
    const int32_t *pp[1] = {o->prompt[i]};
    asg_lm_request r = {.n = 1,
                        .prompts = pp,
                        .lens = &o->plen[i],
                        .max_new_tokens = o->glen[i],
                        .out = outs,
                        .out_lens = &olen};
    st = asg_lm_generate(m, &r);
    TU_CHECK(st == ASG_OK && olen == o->glen[i] && same_ids(out, o->greedy[i], olen),
             "%s: greedy continuation of prompt %d differs (%s)", what, i,
             st ? asg_last_error() : "tokens");
  }
  /* batched: prompts of different lengths together (left padding) */
  int32_t bo[3][64];
  int32_t *bouts[3] = {bo[0], bo[1], bo[2]};
  int blen[3] = {0, 0, 0};
  const int32_t *pp[3] = {o->prompt[0], o->prompt[1], o->prompt[2]};
  asg_lm_request r = {.n = o->np,
                      .prompts = pp,
                      .lens = o->plen,
                      .max_new_tokens = o->glen[0],
                      .out = bouts,
                      .out_lens = blen};
  asg_status st = asg_lm_generate(m, &r);
  TU_CHECK(st == ASG_OK, "%s: batched generate: %s", what, asg_last_error());
  for (int i = 0; st == ASG_OK && i < o->np; i++)
    TU_CHECK(blen[i] == o->glen[0] && same_ids(bo[i], o->greedy[i], blen[i]),
             "%s: batched greedy row %d differs", what, i);
  /* decode with the cache = full-sequence logits at every position: a
   * prompt the prefill pads (17 -> 32 rows) and one it does not (16) */
  int T0 = o->plen[o->np - 1], G = o->glen[o->np - 1];
  int32_t seq[128];
  memcpy(seq, o->prompt[o->np - 1], sizeof(int32_t) * (size_t)T0);
  memcpy(seq + T0, o->greedy[o->np - 1], sizeof(int32_t) * (size_t)G);
  check_cached(m, seq, T0, G, what);
  if (T0 + G > 20) check_cached(m, seq, 16, T0 + G - 16, what);
  /* sampling: top_k 1 and a tiny top_p are greedy; a seed repeats */
  asg_sampling k1 = {.temperature = 0.8, .top_k = 1, .seed = 7};
  asg_sampling p0 = {.temperature = 1.5, .top_p = 1e-6, .seed = 9};
  asg_sampling any = {.temperature = 1.0, .top_k = 50, .top_p = 0.95, .seed = 11};
  const asg_sampling *ss[2] = {&k1, &p0};
  for (int k = 0; k < 2; k++) {
    int32_t so[64], *sp[1] = {so};
    int sl = 0;
    asg_lm_request q = {.n = 1,
                        .prompts = pp,
                        .lens = o->plen,
                        .max_new_tokens = o->glen[0],
                        .sampling = *ss[k],
                        .out = sp,
                        .out_lens = &sl};
    st = asg_lm_generate(m, &q);
    TU_CHECK(st == ASG_OK && sl == o->glen[0] && same_ids(so, o->greedy[0], sl),
             "%s: sampling case %d is not greedy (%s)", what, k, st ? asg_last_error() : "ids");
  }
  int32_t s1[3][64], s2[3][64];
  int l1[3], l2[3];
  int32_t *sp1[3] = {s1[0], s1[1], s1[2]}, *sp2[3] = {s2[0], s2[1], s2[2]};
  asg_lm_request q1 = {.n = o->np,
                       .prompts = pp,
                       .lens = o->plen,
                       .max_new_tokens = 10,
                       .sampling = any,
                       .out = sp1,
                       .out_lens = l1};
  asg_lm_request q2 = q1;
  q2.out = sp2;
  q2.out_lens = l2;
  st = asg_lm_generate(m, &q1);
  if (st == ASG_OK) st = asg_lm_generate(m, &q2);
  bool same = st == ASG_OK;
  for (int i = 0; same && i < o->np; i++)
    same = l1[i] == l2[i] && same_ids(s1[i], s2[i], l1[i]);
  TU_CHECK(same, "%s: sampling with one seed is not reproducible (%s)", what,
           st ? asg_last_error() : "ids differ");
  bool in_range = true;
  for (int i = 0; st == ASG_OK && i < o->np; i++)
    for (int t = 0; t < l1[i]; t++)
      in_range = in_range && s1[i][t] >= 0 && s1[i][t] < V;
  TU_CHECK(in_range, "%s: sampled ids out of range", what);
}

/* the text prompt through the tokenizer, generation and decoding */
static void check_text(asg_lm *m, asg_safetensors *f, const char *dir, const char *what) {
  int64_t n = 0, g = 0;
  int32_t *ids = oracle_read(f, "text_ids", ASG_I32, &n);
  int32_t *want = oracle_read(f, "text_greedy", ASG_I32, &g);
  const char *text = asg_safetensors_metadata(f, "text");
  const char *decoded = asg_safetensors_metadata(f, "text_greedy_decoded");
  asg_tokenizer *tok = ids ? asg_tokenizer_load(dir) : NULL;
  TU_CHECK(!ids || tok, "%s: tokenizer: %s", what, asg_last_error());
  if (tok && want && text && decoded) {
    int32_t *got = NULL;
    size_t ng = 0;
    asg_status st = asg_tokenizer_encode(tok, text, strlen(text), true, &got, &ng);
    TU_CHECK(st == ASG_OK && ng == (size_t)n && same_ids(got, ids, (int)n),
             "%s: tokenizer ids of \"%s\" differ", what, text);
    int32_t out[64], *outs[1] = {out};
    int olen = 0, len = (int)n;
    const int32_t *pp[1] = {ids};
    asg_lm_request r = {.n = 1,
                        .prompts = pp,
                        .lens = &len,
                        .max_new_tokens = (int)g,
                        .out = outs,
                        .out_lens = &olen};
    st = asg_lm_generate(m, &r);
    TU_CHECK(st == ASG_OK && olen == (int)g && same_ids(out, want, olen),
             "%s: text greedy continuation differs", what);
    char *s = NULL;
    size_t sl = 0;
    if (st == ASG_OK) st = asg_tokenizer_decode(tok, out, (size_t)olen, false, &s, &sl);
    TU_CHECK(st == ASG_OK && s && !strcmp(s, decoded), "%s: decoded \"%s\", transformers \"%s\"",
             what, s ? s : "(null)", decoded);
    free(s);
    free(got);
  }
  asg_tokenizer_free(tok);
  free(ids), free(want);
}

/* fine-tuning: a few AdamW steps on one batch through asg_lm_forward; the
 * loss must fall; the tuned weights save in the HF layout and load back
 * into a generator that then reproduces the tuned logits */
static void check_finetune(const char *dir, const char *tmp, const char *what) {
  asg_lm_config c;
  TU_CHECK(asg_lm_config_load(dir, &c) == ASG_OK, "%s: config: %s", what, asg_last_error());
  asg_graph *g = asg_graph_new();
  enum { B = 2, T = 8 };
  asg_tensor *x = asg_input(g, "x", ASG_I32, ASG_SHAPE(B, T));
  asg_tensor *y = asg_input(g, "y", ASG_I32, ASG_SHAPE(B, T));
  asg_lm_inputs in = {.tokens = x};
  asg_tensor *logits = asg_lm_forward(g, &c, ASG_F32, &in);
  asg_tensor *loss = asg_softmax_cross_entropy(logits, y, 0.0, -100);
  asg_compile_opts co = {.backend = backend};
  asg_program *p = asg_compile_train(g, loss, asg_adamw(3e-3, 0.0), 1, &logits, &co);
  TU_CHECK(p != NULL, "%s: compile_train: %s", what, asg_last_error());
  if (!p) {
    asg_graph_free(g);
    return;
  }
  int n = 0;
  const asg_hf_rule *rules = asg_lm_hf_rules(c.arch, &n);
  static const char *const strip[1] = {"transformer."};
  asg_hf_load_opts lo = {
      .rules = rules, .n_rules = n, .strict = true, .strip_prefixes = strip, .n_strip_prefixes = 1};
  asg_status st = asg_hf_load(p, dir, &lo, NULL);
  TU_CHECK(st == ASG_OK, "%s: load into the training program: %s", what, asg_last_error());
  int32_t xs[B * T], ys[B * T];
  for (int i = 0; i < B * T; i++) {
    xs[i] = (int32_t)((i * 7 + 3) % c.vocab_size);
    ys[i] = (int32_t)((i * 11 + 5) % c.vocab_size);
  }
  double first = 0, last = 0;
  for (int s = 0; st == ASG_OK && s < 30; s++) {
    st = asg_program_feed(p, "x", xs, sizeof xs);
    if (st == ASG_OK) st = asg_program_feed(p, "y", ys, sizeof ys);
    if (st == ASG_OK) st = asg_program_run(p);
    last = asg_program_scalar(p, loss);
    if (s == 0) first = last;
  }
  TU_CHECK(st == ASG_OK && last < 0.5 * first, "%s: fine-tuning loss %g -> %g (%s)", what, first,
           last, st ? asg_last_error() : "did not halve");
  /* save the tuned weights as transformers would, load them into a generator */
  const char *out = tu_path(tmp, "tuned");
  asg_hf_save_opts so = {
      .rules = rules, .n_rules = n, .prefix = c.arch == ASG_LM_GPT2 ? "transformer." : NULL};
  st = asg_hf_save(p, out, &so);
  TU_CHECK(st == ASG_OK, "%s: save: %s", what, asg_last_error());
  asg_lm_opts mo = {.backend = backend, .max_len = 32};
  asg_lm *m = asg_lm_new(&c, &mo);
  TU_CHECK(m && asg_lm_load_weights(m, out) == ASG_OK, "%s: reload tuned: %s", what,
           asg_last_error());
  if (m && st == ASG_OK) {
    /* a step at lr 0 gives the tuned weights' logits without changing them */
    float *a = malloc(sizeof(float) * (size_t)(B * T * c.vocab_size));
    float *b = malloc(sizeof(float) * (size_t)(T * c.vocab_size));
    st = asg_optim_set_lr(p, 0.0);
    if (st == ASG_OK) st = asg_program_run(p);
    if (st == ASG_OK)
      st = asg_program_fetch(p, logits, a, sizeof(float) * (size_t)(B * T * c.vocab_size));
    if (st == ASG_OK) st = asg_lm_logits(m, xs, T, b);
    double e = st == ASG_OK ? rel_err(b, a, (size_t)(T * c.vocab_size)) : 1;
    TU_CHECK(e <= 1e-5, "%s: tuned weights saved and reloaded: logits differ by %.3g (%s)", what, e,
             st ? asg_last_error() : "values");
    free(a), free(b);
  }
  asg_lm_free(m);
  asg_program_free(p);
  asg_graph_free(g);
}

/* errors: a missing weight, a wrong shape, an unsupported config */
static void check_errors(const char *dir, const char *tmp, const char *what) {
  asg_lm_config c;
  if (asg_lm_config_load(dir, &c) != ASG_OK) return;
  asg_lm_config big = c;
  big.d_model *= 2;
  big.head_dim = c.head_dim ? c.head_dim * 2 : 0;
  asg_lm_opts mo = {.backend = backend, .max_len = 16};
  asg_lm *m = asg_lm_new(&big, &mo);
  TU_CHECK(m && asg_lm_load_weights(m, dir) == ASG_ERR_SHAPE &&
               tu_contains(asg_last_error(), "weight"),
           "%s: wrong-width model must fail to load naming a weight: %s", what, asg_last_error());
  asg_lm_free(m);
  const char *bad = tu_path(tmp, "config.json");
  const char *txt = "{\"model_type\": \"bert\", \"vocab_size\": 10}";
  tu_write_file(bad, txt, strlen(txt));
  TU_CHECK(asg_lm_config_load(tmp, &c) == ASG_ERR_UNSUPPORTED &&
               tu_contains(asg_last_error(), "bert"),
           "%s: unsupported model_type: %s", what, asg_last_error());
  remove(bad);
}

static void check_model(const char *dir, const char *oracle_dir, const char *what, bool fixture) {
  char path[1200];
  snprintf(path, sizeof path, "%s/expected.safetensors", oracle_dir);
  asg_safetensors *f = asg_safetensors_open(path);
  TU_CHECK(f != NULL, "%s: oracle: %s", what, asg_last_error());
  if (!f) return;
  oracle o;
  TU_CHECK(oracle_load(f, &o), "%s: oracle tensors missing", what);
  asg_lm_opts opts = {.backend = backend, .max_batch = 3, .max_len = 64};
  asg_lm *m = asg_lm_load(dir, &opts);
  TU_CHECK(m != NULL, "%s: load: %s", what, asg_last_error());
  if (m && o.np) {
    check_against_oracle(m, &o, what);
    check_text(m, f, dir, what);
    /* a seed gives the same tokens in a fresh generator as in a used one */
    asg_lm *fresh = asg_lm_load(dir, &opts);
    int32_t a[3][16], b[3][16];
    int la[3], lb[3];
    int32_t *pa[3] = {a[0], a[1], a[2]}, *pb[3] = {b[0], b[1], b[2]};
    const int32_t *pp[3] = {o.prompt[0], o.prompt[1], o.prompt[2]};
    asg_lm_request q = {.n = o.np,
                        .prompts = pp,
                        .lens = o.plen,
                        .max_new_tokens = 16,
                        .sampling = {.temperature = 0.9, .top_k = 40, .top_p = 0.9, .seed = 5},
                        .out = pa,
                        .out_lens = la};
    asg_status st = fresh ? asg_lm_generate(fresh, &q) : ASG_ERR_INVALID;
    q.out = pb;
    q.out_lens = lb;
    if (st == ASG_OK) st = asg_lm_generate(m, &q);
    bool same = st == ASG_OK;
    for (int i = 0; same && i < o.np; i++)
      same = la[i] == lb[i] && same_ids(a[i], b[i], la[i]);
    TU_CHECK(same, "%s: seed 5 in a fresh and a used generator differs (%s)", what,
             st ? asg_last_error() : "ids");
    asg_lm_free(fresh);
  }
  asg_lm_free(m);
  oracle_free(&o);
  asg_safetensors_close(f);
  if (fixture) {
    const char *tmp = tu_tmpdir_create("asg_test_hf_models");
    if (tmp) {
      char t[1024];
      snprintf(t, sizeof t, "%s", tmp);
      check_finetune(dir, t, what);
      check_errors(dir, t, what);
      tu_tmpdir_remove(tu_path(t, "tuned"));
      tu_tmpdir_remove(t);
    }
  }
}

int main(int argc, char **argv) {
  if (argc == 2 || argc == 4) backend = argv[argc - 1];
  if (!asg_backend_available(backend)) {
    printf("backend %s not available: skipped\n", backend);
    return TU_SKIP;
  }
  if (argc >= 3) {
    check_model(argv[1], argv[2], argv[1], false);
    return tu_finish();
  }
  char dir[1024], sub[1100];
  const char *env = getenv("ASG_FIXTURES"); /* tests/fixtures elsewhere (a device run) */
  if (env) {
    snprintf(dir, sizeof dir, "%s/hf", env);
  } else { /* tests/fixtures/hf next to this source file */
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
      snprintf(slash, sizeof dir - (size_t)(slash - dir), "/fixtures/hf");
    else
      snprintf(dir, sizeof dir, "fixtures/hf");
  }
  const char *models[2] = {"tiny-gpt2", "tiny-llama"};
  for (int i = 0; i < 2; i++) {
    snprintf(sub, sizeof sub, "%s/%s", dir, models[i]);
    check_model(sub, sub, models[i], true);
  }
  return tu_finish();
}
