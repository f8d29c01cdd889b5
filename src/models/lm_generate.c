/* Generation: one graph holding a model's prefill, decode and full-sequence
 * passes, compiled into three programs that share the weights and the KV
 * cache, and the sampling on the device.
 *
 * Prompts of a batch are left-padded to a common length P (the padding is
 * masked out of attention, and positions count from each prompt's first
 * token), so every row's next token lands in the same cache row P, P+1, ...
 * P is rounded up to a few lengths (powers of two, then multiples of 64) so
 * that the prefill program, symbolic in P, specializes only a few times. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lm_internal.h"

struct asg_lm {
  asg_lm_config c;
  int B, L; /* cache rows: batch and length */
  asg_graph *g;
  /* Programs made on first use, [sampling]: 0 greedy, 1 sampling (greedy
   * runs skip the filter and the noise). Prefills [unmasked][sampling]: 1
   * without a key mask, for batches with no padding (the fused attention's
   * fastest kernels take no mask). pre[0][0] owns the variables. */
  asg_program *pre[2][2], *dec[2], *full;
  /* [unmasked]: [0] sampled token, [1] greedy token (I64 [B]), [2] logits
   * [B, V], then the 2 * n_layer cache writes (outputs of a prefill too) */
  asg_tensor **pre_out[2];
  asg_tensor *dec_out[3], *full_logits;
  asg_compile_opts copts;
  int n;          /* rows of the current generation */
  int cur;        /* cache row the next decode step writes */
  int32_t *start; /* [B] first cache row of each prompt (after its padding) */
  int64_t *tok64; /* [B] fetched tokens */
  int32_t *tok32; /* [B] tokens fed to a decode step */
};

/* Sampling from logits [B, V]: greedy argmax and, with the runtime settings,
 * argmax(top-k/top-p filtered logits / temperature + Gumbel noise), which is
 * a draw from the filtered softmax. */
static void sampler(asg_lm *m, asg_tensor *logits, uint64_t seed, asg_tensor **out) {
  asg_graph *g = m->g;
  asg_tensor *inv_t = asg_graph_find(g, "sample.inv_temperature");
  if (!inv_t) inv_t = asg_input(g, "sample.inv_temperature", ASG_F32, ASG_SHAPE(1));
  asg_tensor *top_k = asg_graph_find(g, "sample.top_k");
  if (!top_k) top_k = asg_input(g, "sample.top_k", ASG_I32, ASG_SHAPE(1));
  asg_tensor *top_p = asg_graph_find(g, "sample.top_p");
  if (!top_p) top_p = asg_input(g, "sample.top_p", ASG_F32, ASG_SHAPE(1));
  asg_tensor *f = asg_sample_filter(asg_mul(logits, inv_t), top_k, top_p);
  asg_tensor *u = asg_rand_uniform(g, ASG_F32, ASG_SHAPE(m->B, m->c.vocab_size), 1e-12, 1.0, seed);
  asg_tensor *gumbel = asg_neg(asg_log(asg_neg(asg_log(u))));
  out[0] = asg_argmax(asg_add(f, gumbel), -1, false);
  out[1] = asg_argmax(logits, -1, false);
  out[2] = logits;
}

/* The outputs a program needs: the sampled token only when sampling. */
static asg_program *compile_outputs(asg_lm *m, int n, asg_tensor *const *out, bool sampling) {
  asg_compile_opts o = m->copts;
  o.share_variables = m->pre[0][0];
  return asg_compile(m->g, n - !sampling, out + !sampling, &o);
}

/* The prefill of one kind, compiled on first use. */
static asg_status prefill_program(asg_lm *m, bool unmasked, bool sampling) {
  if (!m->pre[unmasked][sampling])
    m->pre[unmasked][sampling] =
        compile_outputs(m, 3 + 2 * (int)m->c.n_layer, m->pre_out[unmasked], sampling);
  return m->pre[unmasked][sampling] ? ASG_OK : asg__last_status();
}

static asg_status decode_program(asg_lm *m, bool sampling) {
  if (!m->dec[sampling]) m->dec[sampling] = compile_outputs(m, 3, m->dec_out, sampling);
  return m->dec[sampling] ? ASG_OK : asg__last_status();
}

static asg_status build(asg_lm *m) {
  asg_graph *g = m->g;
  const asg_lm_config *c = &m->c;
  int64_t B = m->B, L = m->L;
  int nl = (int)c->n_layer;
  for (int u = 0; u < 2; u++)
    if (!(m->pre_out[u] = calloc((size_t)(2 * nl + 3), sizeof *m->pre_out[u])))
      return asg__error(ASG_ERR_OOM, "asg_lm_new: out of memory");
  /* prefill: [B, P] tokens, positions and key mask, cache rows 0 .. P-1 */
  int64_t P = asg_dim(g, "prompt", L);
  asg_tensor *ptok = asg_input(g, "prefill.tokens", ASG_I32, ASG_SHAPE(B, P));
  asg_tensor *ppos = asg_input(g, "prefill.positions", ASG_I32, ASG_SHAPE(B, P));
  asg_tensor *pmask = asg_input(g, "prefill.mask", ASG_F32, ASG_SHAPE(B, P));
  const int32_t zero = 0;
  asg_tensor *pos0 = asg_constant(g, ASG_I32, ASG_SHAPE(1), &zero), *h;
  for (int u = 0; u < 2; u++) { /* with the key mask, then without */
    asg__lm_cache kc = {.pos = pos0, .batch = B, .len = L, .writes = m->pre_out[u] + 3};
    asg_lm_inputs in = {.tokens = ptok, .positions = ppos, .key_mask = u ? NULL : pmask};
    h = asg__lm_hidden(g, c, ASG_F32, &in, &kc);
    h = asg_reshape(asg__slice_dims(h, 1, asg_dim_sub(g, P, 1), 1, 1), ASG_SHAPE(B, c->d_model));
    sampler(m, asg__lm_head(g, c, ASG_F32, h, true), 0x5eed0001u, m->pre_out[u]);
  }
  /* decode: one token per row at cache row `pos`; the key mask (rows
   * start[b] .. pos) and the positions (pos - start[b]) are made here */
  asg_tensor *dtok = asg_input(g, "decode.tokens", ASG_I32, ASG_SHAPE(B, 1));
  asg_tensor *dpos = asg_input(g, "decode.pos", ASG_I32, ASG_SHAPE(1));
  asg_tensor *dstart = asg_input(g, "decode.start", ASG_I32, ASG_SHAPE(B));
  float *iota = malloc(sizeof(float) * (size_t)L);
  if (!iota) return asg__error(ASG_ERR_OOM, "asg_lm_new: out of memory");
  for (int64_t j = 0; j < L; j++)
    iota[j] = (float)j;
  asg_tensor *rows = asg_constant(g, ASG_F32, ASG_SHAPE(1, L), iota);
  free(iota);
  asg_tensor *startf = asg_reshape(asg_cast(dstart, ASG_F32), ASG_SHAPE(B, 1));
  asg_tensor *posf = asg_reshape(asg_cast(dpos, ASG_F32), ASG_SHAPE(1, 1));
  asg_tensor *dmask = asg_mul(asg_ge(rows, startf), asg_le(rows, posf)); /* [B, L] */
  asg_tensor *positions = asg_reshape(asg_sub(dpos, dstart), ASG_SHAPE(B, 1));
  asg__lm_cache dc = {.pos = dpos, .batch = B, .len = L, .decode = true};
  asg_lm_inputs din = {.tokens = dtok, .positions = positions, .key_mask = dmask};
  h = asg__lm_hidden(g, c, ASG_F32, &din, &dc);
  sampler(m, asg__lm_head(g, c, ASG_F32, asg_reshape(h, ASG_SHAPE(B, c->d_model)), true),
          0x5eed0002u, m->dec_out);
  if (asg_graph_status(g) != ASG_OK)
    return asg__error(asg_graph_status(g), "asg_lm_new: %s", asg_graph_error(g));
  asg_status st = prefill_program(m, false, false);
  return st == ASG_OK ? decode_program(m, false) : st;
}

/* Frees m after a failure; the error message stays the failure's. */
static asg_lm *free_keeping_error(asg_lm *m) {
  asg_status st = asg__last_status();
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", asg_last_error());
  asg_lm_free(m);
  asg__error(st, "%s", msg);
  return NULL;
}

asg_lm *asg_lm_new(const asg_lm_config *c, const asg_lm_opts *o) {
  if (asg_lm_config_check(c) != ASG_OK) return NULL;
  asg_lm_opts d = {0};
  if (!o) o = &d;
  if (o->max_batch < 0 || o->max_len < 0 || o->max_batch > 4096) {
    asg__error(ASG_ERR_INVALID, "asg_lm_new: max_batch %d / max_len %d out of range", o->max_batch,
               o->max_len);
    return NULL;
  }
  asg_lm *m = calloc(1, sizeof *m);
  if (!m) {
    asg__error(ASG_ERR_OOM, "asg_lm_new: out of memory");
    return NULL;
  }
  m->c = *c;
  m->B = o->max_batch ? o->max_batch : 1;
  m->L = o->max_len ? o->max_len : (int)(c->max_pos < 1 << 20 ? c->max_pos : 1 << 20);
  if (c->arch == ASG_LM_GPT2 && m->L > c->max_pos) {
    asg__error(ASG_ERR_INVALID, "asg_lm_new: max_len %d exceeds the model's %lld positions", m->L,
               (long long)c->max_pos);
    free(m);
    return NULL;
  }
  m->copts.backend = o->backend;
  m->copts.num_threads = o->num_threads;
  m->copts.allow_tf32 = o->allow_tf32;
  m->start = calloc((size_t)m->B, sizeof *m->start);
  m->tok64 = calloc((size_t)m->B, sizeof *m->tok64);
  m->tok32 = calloc((size_t)m->B, sizeof *m->tok32);
  m->g = asg_graph_new();
  if (!m->start || !m->tok64 || !m->tok32 || !m->g) {
    asg__error(ASG_ERR_OOM, "asg_lm_new: out of memory");
    asg_lm_free(m);
    return NULL;
  }
  return build(m) == ASG_OK ? m : free_keeping_error(m);
}

void asg_lm_free(asg_lm *m) {
  if (!m) return;
  asg_program_free(m->full);
  for (int k = 3; k >= 0; k--) { /* pre[0][0], the owner, last */
    asg_program_free(m->dec[k & 1]);
    m->dec[k & 1] = NULL;
    asg_program_free(m->pre[k >> 1][k & 1]);
  }
  free(m->pre_out[0]);
  free(m->pre_out[1]);
  asg_graph_free(m->g);
  free(m->start);
  free(m->tok32);
  free(m->tok64);
  free(m);
}

const asg_lm_config *asg_lm_get_config(const asg_lm *m) { return m ? &m->c : NULL; }
asg_program *asg_lm_program(asg_lm *m) { return m ? m->pre[0][0] : NULL; }

static const char *const cache_pattern[1] = {"cache.*"};

asg_status asg_lm_load_weights(asg_lm *m, const char *path) {
  if (!m || !path) return asg__error(ASG_ERR_INVALID, "asg_lm_load_weights: NULL argument");
  int n = 0;
  const asg_hf_rule *r = asg_lm_hf_rules(m->c.arch, &n);
  static const char *const prefix[1] = {"transformer."};
  asg_hf_load_opts o = {.rules = r,
                        .n_rules = n,
                        .strict = true,
                        .exclude = cache_pattern,
                        .n_exclude = 1,
                        .strip_prefixes = prefix,
                        .n_strip_prefixes = m->c.arch == ASG_LM_GPT2};
  return asg_hf_load(m->pre[0][0], path, &o, NULL);
}

asg_status asg_lm_save_weights(asg_lm *m, const char *dir, const asg_hf_save_opts *opt) {
  if (!m || !dir) return asg__error(ASG_ERR_INVALID, "asg_lm_save_weights: NULL argument");
  int n = 0;
  const asg_hf_rule *r = asg_lm_hf_rules(m->c.arch, &n);
  asg_hf_save_opts o = {0};
  if (opt) o = *opt;
  o.rules = r;
  o.n_rules = n;
  o.exclude = cache_pattern;
  o.n_exclude = 1;
  if (m->c.arch == ASG_LM_GPT2) o.prefix = "transformer.";
  return asg_hf_save(m->pre[0][0], dir, &o);
}

asg_lm *asg_lm_load(const char *dir, const asg_lm_opts *o) {
  asg_lm_config c;
  if (asg_lm_config_load(dir, &c) != ASG_OK) return NULL;
  asg_lm *m = asg_lm_new(&c, o);
  return m && asg_lm_load_weights(m, dir) != ASG_OK ? free_keeping_error(m) : m;
}

/* ---- running ---- */

static asg_status feed_sampling(asg_program *p, const asg_sampling *s) {
  float inv_t = 1.0f, top_p = 1.0f;
  int32_t top_k = 0;
  if (s && s->temperature > 0) {
    inv_t = (float)(1.0 / s->temperature);
    top_k = s->top_k > 0 ? s->top_k : 0;
    top_p = s->top_p > 0 && s->top_p < 1 ? (float)s->top_p : 1.0f;
  }
  asg_status st = asg_program_feed(p, "sample.inv_temperature", &inv_t, sizeof inv_t);
  if (st == ASG_OK) st = asg_program_feed(p, "sample.top_k", &top_k, sizeof top_k);
  if (st == ASG_OK) st = asg_program_feed(p, "sample.top_p", &top_p, sizeof top_p);
  return st;
}

static asg_status check_sampling(const asg_sampling *s) {
  if (s && (!(s->temperature >= 0) || s->temperature > 1e6 || s->top_k < 0 || !(s->top_p >= 0) ||
            s->top_p > 1))
    return asg__error(ASG_ERR_INVALID,
                      "sampling: temperature %g must be in [0, 1e6], top_k %d >= 0, top_p %g in "
                      "[0, 1]",
                      s->temperature, s->top_k, s->top_p);
  return ASG_OK;
}

/* Fetches the chosen tokens (and logits) of the last run of p. */
static asg_status results(asg_lm *m, asg_program *p, asg_tensor *const *out, const asg_sampling *s,
                          int32_t *next, float *logits) {
  asg_status st = ASG_OK;
  if (next) {
    bool sample = s && s->temperature > 0;
    st = asg_program_fetch(p, out[sample ? 0 : 1], m->tok64, sizeof(int64_t) * (size_t)m->B);
    for (int i = 0; st == ASG_OK && i < m->n; i++)
      next[i] = (int32_t)m->tok64[i];
  }
  if (st == ASG_OK && logits) {
    size_t row = (size_t)m->c.vocab_size * sizeof(float);
    float *all = malloc(row * (size_t)m->B);
    if (!all) return asg__error(ASG_ERR_OOM, "lm: out of memory for logits");
    st = asg_program_fetch(p, out[2], all, row * (size_t)m->B);
    if (st == ASG_OK) memcpy(logits, all, row * (size_t)m->n);
    free(all);
  }
  return st;
}

static int bucket(int len, int L) {
  int p = 1;
  while (p < len && p < 64)
    p *= 2;
  if (p < len) p = (len + 63) / 64 * 64;
  return p < L ? p : L;
}

/* reserve: cache rows to keep free for the decode steps to come (the
 * padding of the bucket must not take them) */
static asg_status prefill(asg_lm *m, int n, const int32_t *const *prompts, const int *lens,
                          const asg_sampling *s, int32_t *next, float *logits, int reserve) {
  if (!m || !prompts || !lens) return asg__error(ASG_ERR_INVALID, "asg_lm_prefill: NULL argument");
  if (n < 1 || n > m->B)
    return asg__error(ASG_ERR_INVALID, "asg_lm_prefill: %d prompts, max_batch is %d", n, m->B);
  if (check_sampling(s) != ASG_OK) return ASG_ERR_INVALID;
  int longest = 0;
  for (int i = 0; i < n; i++) {
    if (!prompts[i] || lens[i] < 1 || lens[i] > m->L)
      return asg__error(ASG_ERR_INVALID,
                        "asg_lm_prefill: prompt %d has %d tokens (1 .. max_len %d)", i, lens[i],
                        m->L);
    for (int t = 0; t < lens[i]; t++)
      if (prompts[i][t] < 0 || prompts[i][t] >= m->c.vocab_size)
        return asg__error(ASG_ERR_INVALID,
                          "asg_lm_prefill: prompt %d token %d is %d, outside [0, %lld)", i, t,
                          (int)prompts[i][t], (long long)m->c.vocab_size);
    if (lens[i] > longest) longest = lens[i];
  }
  int P = bucket(longest, m->L);
  if (P > longest && P + reserve > m->L) P = m->L - reserve > longest ? m->L - reserve : longest;
  size_t cells = (size_t)m->B * (size_t)P;
  int32_t *tok = calloc(cells, sizeof *tok), *pos = calloc(cells, sizeof *pos);
  float *mask = calloc(cells, sizeof *mask);
  if (!tok || !pos || !mask) {
    free(tok), free(pos), free(mask);
    return asg__error(ASG_ERR_OOM, "asg_lm_prefill: out of memory");
  }
  bool padded = false;
  for (int b = 0; b < m->B; b++) {
    int len = b < n ? lens[b] : 1; /* rows past n: one token 0, unused */
    int s0 = P - len;
    padded = padded || s0 > 0;
    m->start[b] = s0;
    for (int t = s0; t < P; t++) {
      tok[(size_t)b * P + t] = b < n ? prompts[b][t - s0] : 0;
      pos[(size_t)b * P + t] = t - s0;
      mask[(size_t)b * P + t] = 1.0f;
    }
  }
  asg_shape sh = ASG_SHAPE(m->B, P);
  bool smp = s && s->temperature > 0;
  /* the decode program too: its run count is set below */
  asg_status st = prefill_program(m, !padded, smp);
  if (st == ASG_OK) st = decode_program(m, smp);
  asg_program *p = m->pre[!padded][smp];
  if (st == ASG_OK) st = asg_program_feed_tensor(p, "prefill.tokens", ASG_I32, sh, tok);
  if (st == ASG_OK) st = asg_program_feed_tensor(p, "prefill.positions", ASG_I32, sh, pos);
  if (st == ASG_OK && padded) st = asg_program_feed_tensor(p, "prefill.mask", ASG_F32, sh, mask);
  free(tok), free(pos), free(mask);
  if (st == ASG_OK && smp) {
    st = feed_sampling(p, s);
    /* the noise is a function of (seed, run count): same seed, same draws */
    asg_program_set_run_count(p, s->seed << 24);
    asg_program_set_run_count(m->dec[1], s->seed << 24);
  }
  if (st == ASG_OK) st = asg_program_run(p);
  m->n = 0;
  if (st != ASG_OK) return st;
  m->n = n;
  m->cur = P;
  return results(m, p, m->pre_out[!padded], s, next, logits);
}

asg_status asg_lm_prefill(asg_lm *m, int n, const int32_t *const *prompts, const int *lens,
                          const asg_sampling *s, int32_t *next, float *logits) {
  return prefill(m, n, prompts, lens, s, next, logits, 0);
}

asg_status asg_lm_decode(asg_lm *m, const int32_t *tokens, const asg_sampling *s, int32_t *next,
                         float *logits) {
  if (!m || !tokens) return asg__error(ASG_ERR_INVALID, "asg_lm_decode: NULL argument");
  if (m->n < 1) return asg__error(ASG_ERR_INVALID, "asg_lm_decode: no prefill before decoding");
  if (m->cur >= m->L)
    return asg__error(ASG_ERR_INVALID, "asg_lm_decode: the cache is full (max_len %d)", m->L);
  if (check_sampling(s) != ASG_OK) return ASG_ERR_INVALID;
  for (int b = 0; b < m->n; b++) /* rows past n keep token 0 */
    if (tokens[b] < 0 || tokens[b] >= m->c.vocab_size)
      return asg__error(ASG_ERR_INVALID, "asg_lm_decode: row %d token %d is outside [0, %lld)", b,
                        (int)tokens[b], (long long)m->c.vocab_size);
  memcpy(m->tok32, tokens, sizeof(int32_t) * (size_t)m->n);
  int32_t cur = m->cur;
  bool smp = s && s->temperature > 0;
  asg_status st = decode_program(m, smp);
  asg_program *p = m->dec[smp];
  if (st == ASG_OK)
    st = asg_program_feed(p, "decode.tokens", m->tok32, sizeof(int32_t) * (size_t)m->B);
  if (st == ASG_OK) st = asg_program_feed(p, "decode.pos", &cur, sizeof cur);
  if (st == ASG_OK)
    st = asg_program_feed(p, "decode.start", m->start, sizeof(int32_t) * (size_t)m->B);
  if (st == ASG_OK && smp) st = feed_sampling(p, s);
  if (st == ASG_OK) st = asg_program_run(p);
  if (st != ASG_OK) return st;
  m->cur++;
  return results(m, p, m->dec_out, s, next, logits);
}

asg_status asg_lm_logits(asg_lm *m, const int32_t *tokens, int T, float *logits) {
  if (!m || !tokens || !logits) return asg__error(ASG_ERR_INVALID, "asg_lm_logits: NULL argument");
  if (T < 1 || T > m->c.max_pos)
    return asg__error(ASG_ERR_INVALID, "asg_lm_logits: %d tokens (1 .. %lld)", T,
                      (long long)m->c.max_pos);
  if (!m->full) {
    asg_graph *g = m->g;
    asg_tensor *t = asg_input(g, "full.tokens", ASG_I32, ASG_SHAPE(1, asg_dim(g, "seq", 0)));
    asg_lm_inputs in = {.tokens = t};
    m->full_logits = asg_lm_forward(g, &m->c, ASG_F32, &in);
    if (!m->full_logits) return asg__error(asg_graph_status(g), "%s", asg_graph_error(g));
    asg_compile_opts o = m->copts;
    o.share_variables = m->pre[0][0];
    m->full = asg_compile(g, 1, &m->full_logits, &o);
    if (!m->full) return asg__last_status();
  }
  asg_status st = asg_program_feed_tensor(m->full, "full.tokens", ASG_I32, ASG_SHAPE(1, T), tokens);
  if (st == ASG_OK) st = asg_program_run(m->full);
  if (st == ASG_OK)
    st = asg_program_fetch(m->full, m->full_logits, logits,
                           sizeof(float) * (size_t)T * (size_t)m->c.vocab_size);
  return st;
}

asg_status asg_lm_generate(asg_lm *m, const asg_lm_request *r) {
  if (!m || !r) return asg__error(ASG_ERR_INVALID, "asg_lm_generate: NULL argument");
  if (r->max_new_tokens < 0 || r->n_stop < 0 || (r->n_stop && !r->stop_ids))
    return asg__error(ASG_ERR_INVALID, "asg_lm_generate: max_new_tokens %d / n_stop %d invalid",
                      r->max_new_tokens, r->n_stop);
  if (r->out_lens)
    for (int i = 0; i < r->n; i++)
      r->out_lens[i] = 0;
  if (r->max_new_tokens == 0) return ASG_OK;
  int32_t *next = calloc((size_t)m->B, sizeof *next);
  bool *done = calloc((size_t)m->B, sizeof *done);
  if (!next || !done) {
    free(next), free(done);
    return asg__error(ASG_ERR_OOM, "asg_lm_generate: out of memory");
  }
  asg_status st =
      prefill(m, r->n, r->prompts, r->lens, &r->sampling, next, NULL, r->max_new_tokens - 1);
  int live = r->n;
  for (int step = 0; st == ASG_OK && live > 0; step++) {
    for (int i = 0; i < r->n; i++) {
      if (done[i]) continue;
      if (r->out) r->out[i][step] = next[i];
      if (r->out_lens) r->out_lens[i] = step + 1;
      bool go = r->on_token ? r->on_token(r->ctx, i, next[i]) : true;
      for (int k = 0; k < r->n_stop && go; k++)
        go = next[i] != r->stop_ids[k];
      if (!go || step + 1 == r->max_new_tokens) {
        done[i] = true;
        live--;
      }
    }
    if (live == 0) break;
    if (m->cur >= m->L) {
      st = asg__error(ASG_ERR_INVALID,
                      "asg_lm_generate: the cache is full after %d new tokens (max_len %d)",
                      step + 1, m->L);
      break;
    }
    st = asg_lm_decode(m, next, &r->sampling, next, NULL);
  }
  free(next), free(done);
  return st;
}
