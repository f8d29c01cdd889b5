/* Encoding and decoding (include/asg/tokenizer.h), in Hugging Face's order:
 * added tokens are cut out of the raw text (those with normalized: false)
 * or out of the normalized text (the others); each remaining span is
 * normalized, pre-tokenized into words, and each word encoded by the BPE
 * model; the post-processor adds its tokens around the result. Decoding
 * maps ids to token strings and runs the decoders over the list. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

#define OOM(who) asg__error(ASG_ERR_OOM, who ": out of memory")

/* ---- small helpers ---- */
typedef struct piece {
  size_t off, len;
  bool first; /* starts at offset 0 of the original text (Metaspace "first") */
} piece;

typedef struct plist {
  piece *p;
  size_t n, cap;
} plist;

static bool plist_add(plist *l, size_t off, size_t len, bool first) {
  if (!len) return true; /* empty pieces give no tokens (Hugging Face drops them) */
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    piece *p = realloc(l->p, cap * sizeof *p);
    if (!p) return false;
    l->p = p;
    l->cap = cap;
  }
  l->p[l->n++] = (piece){off, len, first};
  return true;
}

typedef struct enc {
  const asg_tokenizer *t;
  tk_bpe_scratch *scratch;
  int32_t *ids;
  size_t n, cap;
} enc;

static bool push_id(enc *e, int32_t id) {
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 256;
    int32_t *p = realloc(e->ids, cap * sizeof *p);
    if (!p) return false;
    e->ids = p;
    e->cap = cap;
  }
  e->ids[e->n++] = id;
  return true;
}

/* s with every occurrence of pat replaced by rep, appended to out. */
static void replace_all(asg_sbuf *out, const char *s, size_t n, const char *pat, size_t pn,
                        const char *rep, size_t rn) {
  size_t i = 0;
  while (i < n) {
    const char *hit = pn <= n - i ? memchr(s + i, pat[0], n - i - pn + 1) : NULL;
    while (hit && memcmp(hit, pat, pn) != 0)
      hit = (size_t)(hit - s) + 1 + pn <= n ? memchr(hit + 1, pat[0], n - (size_t)(hit - s) - pn)
                                            : NULL;
    if (!hit) break;
    asg__sb_putn(out, s + i, (size_t)(hit - s) - i);
    asg__sb_putn(out, rep, rn);
    i = (size_t)(hit - s) + pn;
  }
  asg__sb_putn(out, s + i, n - i);
}

/* ---- pre-tokenizers: each maps (buffer, pieces) to (buffer, pieces) ---- */
static void put_bytelevel(asg_sbuf *out, const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    asg__tk_put_cp(out, asg__tk_byte_cp(s[i]));
}

/* Appends the matches of regex re over s[0..n) as pieces of out. */
static bool split_regex(tk_regex re, const char *s, size_t n, bool first, asg_sbuf *out, plist *pl,
                        bool bytelevel) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0, e; i < n; i = e) {
    e = asg__tk_match(re, u, n, i);
    size_t off = out->len;
    if (bytelevel)
      put_bytelevel(out, u + i, e - i);
    else
      asg__sb_putn(out, s + i, e - i);
    if (!plist_add(pl, off, out->len - off, first && i == 0)) return false;
  }
  return true;
}

static bool pre_step(const tk_pre *p, const asg_sbuf *in, const plist *pin, asg_sbuf *out,
                     plist *pout) {
  for (size_t k = 0; k < pin->n; k++) {
    const char *s = in->s + pin->p[k].off;
    size_t n = pin->p[k].len;
    bool first = pin->p[k].first;
    if (p->kind == TK_PRE_SPLIT) {
      if (!split_regex(p->re, s, n, first, out, pout, false)) return false;
    } else if (p->kind == TK_PRE_BYTELEVEL) {
      asg_sbuf tmp = {0};
      if (p->add_prefix_space && s[0] != ' ') { /* every piece, as Hugging Face */
        asg__sb_putn(&tmp, " ", 1);
        asg__sb_putn(&tmp, s, n);
        if (tmp.oom) return false;
        s = tmp.s, n = tmp.len;
      }
      bool ok;
      if (p->use_regex) {
        ok = split_regex(TK_RE_GPT2, s, n, first, out, pout, true);
      } else {
        size_t off = out->len;
        put_bytelevel(out, (const unsigned char *)s, n);
        ok = plist_add(pout, off, out->len - off, first);
      }
      asg__sb_free(&tmp);
      if (!ok) return false;
    } else { /* METASPACE: spaces become the replacement, which may be prepended */
      size_t rl = strlen(p->rep), off = out->len;
      bool starts = n >= 1 && (s[0] == ' ' || (n >= rl && memcmp(s, p->rep, rl) == 0));
      if (!starts && (p->prepend == TK_PREPEND_ALWAYS || (p->prepend == TK_PREPEND_FIRST && first)))
        asg__sb_putn(out, p->rep, rl);
      replace_all(out, s, n, " ", 1, p->rep, rl);
      if (out->oom) return false;
      if (!p->split) {
        if (!plist_add(pout, off, out->len - off, first)) return false;
        continue;
      }
      /* split before each replacement (Hugging Face's MergedWithNext) */
      size_t start = off, end = out->len;
      for (size_t i = off + 1; i + rl <= end; i++) {
        if (memcmp(out->s + i, p->rep, rl) != 0) continue;
        if (!plist_add(pout, start, i - start, first && start == off)) return false;
        start = i;
        i += rl - 1;
      }
      if (!plist_add(pout, start, end - start, first && start == off)) return false;
    }
  }
  return !out->oom;
}

/* Pre-tokenizes and encodes s[0..n) (already normalized). */
static asg_status encode_words(enc *e, const char *s, size_t n, bool first) {
  const asg_tokenizer *t = e->t;
  asg_sbuf buf[2] = {{0}, {0}};
  plist pl[2] = {{0}, {0}};
  asg_status st = ASG_OK;
  asg__sb_putn(&buf[0], s, n);
  if (buf[0].oom || !plist_add(&pl[0], 0, n, first)) st = OOM("asg_tokenizer_encode");
  int cur = 0;
  for (int k = 0; k < t->n_pre && !st; k++) {
    buf[!cur].len = 0, pl[!cur].n = 0;
    if (!pre_step(&t->pre[k], &buf[cur], &pl[cur], &buf[!cur], &pl[!cur]))
      st = OOM("asg_tokenizer_encode");
    cur = !cur;
  }
  for (size_t k = 0; k < pl[cur].n && !st; k++)
    st = asg__bpe_word(&t->bpe, e->scratch, buf[cur].s + pl[cur].p[k].off, pl[cur].p[k].len,
                       &e->ids, &e->n, &e->cap);
  for (int k = 0; k < 2; k++) {
    asg__sb_free(&buf[k]);
    free(pl[k].p);
  }
  return st;
}

/* ---- added tokens ---- */
static bool is_word_cp(uint32_t cp) {
  return cp == '_' || asg__uni_is_letter(cp) || asg__uni_is_number(cp);
}

/* The code point that ends s[0..n) (n > 0). */
static uint32_t last_cp(const unsigned char *s, size_t n) {
  size_t i = n - 1, len;
  while (i > 0 && n - i < 4 && (s[i] & 0xc0) == 0x80)
    i--;
  uint32_t cp = asg__tk_utf8(s, n, i, &len);
  return i + len == n ? cp : ASG_TK_BAD_CP;
}

/* The leftmost-longest added token (normalized ones or not) in s[from..n). */
static const tk_added *find_added(const asg_tokenizer *t, bool normalized, const char *s, size_t n,
                                  size_t from, size_t *at) {
  if (!t->n_added) return NULL;
  for (size_t p = from; p < n; p++) {
    int b = (unsigned char)s[p];
    for (int k = t->added_start[b]; k < t->added_start[b + 1]; k++) { /* longest first */
      const tk_added *a = &t->added[t->added_by_byte[k]];
      if (a->normalized == normalized && a->len <= n - p &&
          memcmp(s + p, a->content, a->len) == 0) {
        *at = p;
        return a;
      }
    }
  }
  return NULL;
}

typedef asg_status (*span_fn)(enc *e, const char *s, size_t n, bool first);

/* Cuts the added tokens (of one kind) out of s, passing the spans between
 * them to fn: Hugging Face's AddedVocabulary::split_with_indices, with
 * single_word, lstrip and rstrip. */
static asg_status split_added(enc *e, bool normalized, const char *s, size_t n, bool first,
                              span_fn fn) {
  const unsigned char *u = (const unsigned char *)s;
  size_t done = 0, pos = 0, at, len;
  const tk_added *a;
  asg_status st = ASG_OK;
  while (!st && pos < n && (a = find_added(e->t, normalized, s, n, pos, &at)) != NULL) {
    size_t start = at, stop = at + a->len;
    pos = stop;
    if (a->single_word) {
      bool before = start > 0 && is_word_cp(last_cp(u, start));
      bool after = stop < n && is_word_cp(asg__tk_utf8(u, n, stop, &len));
      if (before || after) continue;
    }
    if (a->lstrip) {
      while (start > done && asg__tk_is_space(last_cp(u, start))) {
        size_t i = start - 1;
        while (i > done && (u[i] & 0xc0) == 0x80)
          i--;
        start = i;
      }
    }
    if (a->rstrip)
      while (stop < n && asg__tk_is_space(asg__tk_utf8(u, n, stop, &len)))
        stop += len;
    if (start > done) st = fn(e, s + done, start - done, first && done == 0);
    if (!st && !push_id(e, a->id)) st = OOM("asg_tokenizer_encode");
    done = stop > done ? stop : done;
    pos = pos > done ? pos : done;
  }
  if (!st && done < n) st = fn(e, s + done, n - done, first && done == 0);
  return st;
}

static asg_status normalized_span(enc *e, const char *s, size_t n, bool first) {
  const asg_tokenizer *t = e->t;
  if (!t->n_norm) return split_added(e, true, s, n, first, encode_words);
  asg_sbuf a = {0}, b = {0};
  asg__sb_putn(&a, s, n);
  for (int k = 0; k < t->n_norm; k++) {
    const tk_norm *nm = &t->norm[k];
    b.len = 0;
    if (nm->kind == TK_NORM_PREPEND) {
      if (a.len) asg__sb_puts(&b, nm->a); /* only a non-empty string */
      asg__sb_putn(&b, a.s, a.len);
    } else {
      replace_all(&b, a.s, a.len, nm->a, strlen(nm->a), nm->b, strlen(nm->b));
    }
    asg_sbuf tmp = a;
    a = b, b = tmp;
  }
  asg_status st = a.oom || b.oom ? OOM("asg_tokenizer_encode")
                                 : split_added(e, true, a.s ? a.s : "", a.len, first, encode_words);
  asg__sb_free(&a);
  asg__sb_free(&b);
  return st;
}

asg_status asg_tokenizer_encode(const asg_tokenizer *t, const char *text, size_t len,
                                bool add_special, int32_t **ids, size_t *n) {
  if (ids) *ids = NULL;
  if (n) *n = 0;
  if (!t || !ids || !n || (!text && len))
    return asg__error(ASG_ERR_INVALID, "asg_tokenizer_encode: NULL argument");
  enc e = {t, asg__bpe_scratch_new(), NULL, 0, 0};
  asg_status st = e.scratch ? ASG_OK : OOM("asg_tokenizer_encode");
  for (int k = 0; add_special && k < t->n_prefix && !st; k++)
    if (!push_id(&e, t->prefix[k])) st = OOM("asg_tokenizer_encode");
  if (!st && len) st = split_added(&e, false, text, len, true, normalized_span);
  for (int k = 0; add_special && k < t->n_suffix && !st; k++)
    if (!push_id(&e, t->suffix[k])) st = OOM("asg_tokenizer_encode");
  asg__bpe_scratch_free(e.scratch);
  if (st) {
    free(e.ids);
    return st;
  }
  *ids = e.ids;
  *n = e.n;
  return ASG_OK;
}

/* ---- decoding ---- */
typedef struct strv {
  asg_sbuf *s;
  size_t n, cap;
} strv;

static asg_sbuf *strv_add(strv *v) {
  if (v->n == v->cap) {
    size_t cap = v->cap ? v->cap * 2 : 64;
    asg_sbuf *p = realloc(v->s, cap * sizeof *p);
    if (!p) return NULL;
    v->s = p;
    v->cap = cap;
  }
  v->s[v->n] = (asg_sbuf){0};
  asg__sb_putn(&v->s[v->n], "", 0); /* never NULL, even when empty */
  return &v->s[v->n++];
}

static void strv_free(strv *v) {
  for (size_t i = 0; i < v->n; i++)
    asg__sb_free(&v->s[i]);
  free(v->s);
  *v = (strv){0};
}

static bool strv_oom(const strv *v) {
  for (size_t i = 0; i < v->n; i++)
    if (v->s[i].oom) return true;
  return false;
}

/* Bytes to text as Rust's String::from_utf8_lossy: each maximal invalid
 * subsequence becomes one U+FFFD. */
static void put_lossy(asg_sbuf *out, const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i], lo = 0x80, hi = 0xbf;
    size_t w = 0;
    if (c < 0x80)
      w = 1;
    else if (c >= 0xc2 && c <= 0xdf)
      w = 2;
    else if (c >= 0xe0 && c <= 0xef)
      w = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
      w = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    size_t k = 1;
    while (w && k < w && i + k < n && s[i + k] >= (k == 1 ? lo : 0x80) &&
           s[i + k] <= (k == 1 ? hi : 0xbf))
      k++;
    if (w && k == w)
      asg__sb_putn(out, (const char *)s + i, w);
    else
      asg__sb_puts(out, "\xef\xbf\xbd");
    i += k;
  }
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
  return -1;
}

/* The byte of a "<0xXX>" token, -1 for other tokens. */
static int byte_token(const asg_sbuf *s) {
  if (s->len != 6 || memcmp(s->s, "<0x", 3) != 0 || s->s[5] != '>') return -1;
  int a = hexval(s->s[3]), b = hexval(s->s[4]);
  return a < 0 || b < 0 ? -1 : a * 16 + b;
}

static bool flush_bytes(strv *out, asg_sbuf *bytes) {
  if (!bytes->len) return true;
  if (asg__utf8_valid((const unsigned char *)bytes->s, bytes->len)) {
    asg_sbuf *d = strv_add(out);
    if (!d) return false;
    asg__sb_putn(d, bytes->s, bytes->len);
  } else { /* one U+FFFD per byte, as Hugging Face's ByteFallback */
    for (size_t i = 0; i < bytes->len; i++) {
      asg_sbuf *d = strv_add(out);
      if (!d) return false;
      asg__sb_puts(d, "\xef\xbf\xbd");
    }
  }
  bytes->len = 0;
  return true;
}

static bool dec_step(const tk_dec *d, const strv *in, strv *out) {
  size_t al = d->a ? strlen(d->a) : 0;
  if (d->kind == TK_DEC_BYTELEVEL || d->kind == TK_DEC_FUSE) {
    asg_sbuf *o = strv_add(out), raw = {0};
    if (!o) return false;
    for (size_t i = 0; i < in->n; i++) {
      if (d->kind == TK_DEC_FUSE) {
        asg__sb_putn(o, in->s[i].s, in->s[i].len);
        continue;
      }
      /* each token's characters back to bytes; a token with a character
       * outside the map contributes its UTF-8 unchanged */
      const unsigned char *u = (const unsigned char *)in->s[i].s;
      size_t n = in->s[i].len, mark = raw.len, len;
      bool all = true;
      for (size_t j = 0; j < n && all; j += len) {
        int b = asg__tk_cp_byte(asg__tk_utf8(u, n, j, &len));
        if (b < 0)
          all = false;
        else {
          char c = (char)b;
          asg__sb_putn(&raw, &c, 1);
        }
      }
      if (!all) {
        raw.len = mark;
        asg__sb_putn(&raw, (const char *)u, n);
      }
    }
    if (d->kind == TK_DEC_BYTELEVEL) put_lossy(o, (const unsigned char *)raw.s, raw.len);
    bool ok = !raw.oom;
    asg__sb_free(&raw);
    return ok;
  }
  if (d->kind == TK_DEC_BYTEFALLBACK) {
    asg_sbuf bytes = {0};
    bool ok = true;
    for (size_t i = 0; i < in->n && ok; i++) {
      int b = byte_token(&in->s[i]);
      if (b >= 0) {
        char c = (char)b;
        asg__sb_putn(&bytes, &c, 1);
        continue;
      }
      asg_sbuf *o = (ok = flush_bytes(out, &bytes)) ? strv_add(out) : NULL;
      if (!o)
        ok = false;
      else
        asg__sb_putn(o, in->s[i].s, in->s[i].len);
    }
    ok = ok && !bytes.oom && flush_bytes(out, &bytes);
    asg__sb_free(&bytes);
    return ok;
  }
  for (size_t i = 0; i < in->n; i++) { /* per-token decoders */
    const char *s = in->s[i].s;
    size_t n = in->s[i].len;
    asg_sbuf *o = strv_add(out);
    if (!o) return false;
    if (d->kind == TK_DEC_REPLACE) {
      replace_all(o, s, n, d->a, al, d->b, strlen(d->b));
    } else if (d->kind == TK_DEC_METASPACE) {
      /* the replacement is a space, except in the first token where it is
       * dropped (every one, as Hugging Face) when a prefix was prepended */
      replace_all(o, s, n, d->a, al, i == 0 && d->prepend ? "" : " ", i == 0 && d->prepend ? 0 : 1);
    } else { /* STRIP: up to start/stop copies of the character at each end */
      size_t b = 0, e = n;
      for (int k = 0; k < d->start && e - b >= al && memcmp(s + b, d->a, al) == 0; k++)
        b += al;
      for (int k = 0; k < d->stop && e - b >= al && memcmp(s + e - al, d->a, al) == 0; k++)
        e -= al;
      asg__sb_putn(o, s + b, e - b);
    }
  }
  return true;
}

asg_status asg_tokenizer_decode(const asg_tokenizer *t, const int32_t *ids, size_t n,
                                bool skip_special, char **text, size_t *len) {
  if (text) *text = NULL;
  if (len) *len = 0;
  if (!t || !text || (!ids && n))
    return asg__error(ASG_ERR_INVALID, "asg_tokenizer_decode: NULL argument");
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= t->n_ids || !t->id_tok[ids[i]])
      return asg__error(ASG_ERR_INVALID,
                        "asg_tokenizer_decode: id %d (at %zu) is not in the vocabulary (%lld ids)",
                        ids[i], i, (long long)t->vocab_size);
  strv v[2] = {{0}, {0}};
  bool ok = true;
  for (size_t i = 0; i < n && ok; i++) {
    if (skip_special && t->special[ids[i]]) continue;
    asg_sbuf *s = strv_add(&v[0]);
    if (!s)
      ok = false;
    else
      asg__sb_puts(s, t->id_tok[ids[i]]);
  }
  int cur = 0;
  for (int k = 0; k < t->n_dec && ok; k++) {
    strv_free(&v[!cur]);
    ok = dec_step(&t->dec[k], &v[cur], &v[!cur]) && !strv_oom(&v[!cur]);
    cur = !cur;
  }
  asg_sbuf out = {0};
  asg__sb_putn(&out, "", 0);
  for (size_t i = 0; i < v[cur].n && ok; i++) {
    if (i && !t->has_decoder) asg__sb_putn(&out, " ", 1); /* no decoder: joined by spaces */
    asg__sb_putn(&out, v[cur].s[i].s, v[cur].s[i].len);
  }
  ok = ok && !out.oom && !strv_oom(&v[cur]);
  strv_free(&v[0]);
  strv_free(&v[1]);
  if (!ok) {
    asg__sb_free(&out);
    return OOM("asg_tokenizer_decode");
  }
  *text = out.s;
  if (len) *len = out.len;
  return ASG_OK;
}

/* ---- vocabulary ---- */
void asg_tokenizer_free(asg_tokenizer *t) {
  if (!t) return;
  asg__bpe_free(&t->bpe);
  for (int i = 0; i < t->n_added; i++)
    free(t->added[i].content);
  free(t->added);
  asg__tk_map_free(&t->added_map);
  free(t->added_by_byte);
  for (int i = 0; i < t->n_norm; i++)
    free(t->norm[i].a), free(t->norm[i].b);
  free(t->norm);
  free(t->pre);
  for (int i = 0; i < t->n_dec; i++)
    free(t->dec[i].a), free(t->dec[i].b);
  free(t->dec);
  free(t->prefix);
  free(t->suffix);
  free(t->id_tok);
  free(t->special);
  free(t);
}

int64_t asg_tokenizer_vocab_size(const asg_tokenizer *t) { return t ? t->vocab_size : -1; }

int32_t asg_tokenizer_token_to_id(const asg_tokenizer *t, const char *token) {
  if (!t || !token) return -1;
  size_t n = strlen(token);
  int32_t id = asg__tk_map_get(&t->added_map, token, n);
  return id >= 0 ? id : asg__tk_map_get(&t->bpe.vocab, token, n);
}

const char *asg_tokenizer_id_to_token(const asg_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_ids ? t->id_tok[id] : NULL;
}

int32_t asg_tokenizer_bos(const asg_tokenizer *t) { return t ? t->bos : -1; }
int32_t asg_tokenizer_eos(const asg_tokenizer *t) { return t ? t->eos : -1; }

bool asg_tokenizer_is_special(const asg_tokenizer *t, int32_t id) {
  return t && id >= 0 && id < t->n_ids && t->special[id];
}
