/* The BPE model of the tokenizers: vocabulary and merge tables, and the
 * encoding of one word. A word starts as one symbol per character (the
 * unknown token or <0xXX> byte tokens for characters outside the
 * vocabulary) and the adjacent pair of lowest merge rank (leftmost on ties)
 * is merged until none is left, through a priority queue of candidate pairs
 * checked when popped: the same order and the same stale-entry test as
 * Hugging Face's Word::merge_all, so ties and tokens reachable by several
 * merges come out identically. A per-call cache maps words seen before to
 * their ids. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

uint64_t asg__tk_hash(const char *s, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed */
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return asg__mix64(h);
}

/* ---- string map ---- */
static bool map_grow(tk_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  tk_map nm = {calloc(cap, sizeof *nm.keys), malloc(cap * sizeof *nm.lens),
               malloc(cap * sizeof *nm.vals), cap, 0};
  if (!nm.keys || !nm.lens || !nm.vals) {
    asg__tk_map_free(&nm);
    return false;
  }
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i]) asg__tk_map_put(&nm, m->keys[i], m->lens[i], m->vals[i]);
  asg__tk_map_free(m);
  *m = nm;
  return true;
}

bool asg__tk_map_put(tk_map *m, const char *key, size_t len, int32_t val) {
  if ((m->count + 1) * 2 > m->cap && !map_grow(m)) return false;
  size_t i = (size_t)asg__tk_hash(key, len) & (m->cap - 1);
  while (m->keys[i]) {
    if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) {
      m->vals[i] = val;
      return true;
    }
    i = (i + 1) & (m->cap - 1);
  }
  m->keys[i] = key;
  m->lens[i] = (uint32_t)len;
  m->vals[i] = val;
  m->count++;
  return true;
}

int32_t asg__tk_map_get(const tk_map *m, const char *key, size_t len) {
  if (!m->cap) return -1;
  size_t i = (size_t)asg__tk_hash(key, len) & (m->cap - 1);
  while (m->keys[i]) {
    if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) return m->vals[i];
    i = (i + 1) & (m->cap - 1);
  }
  return -1;
}

void asg__tk_map_free(tk_map *m) {
  free(m->keys);
  free(m->lens);
  free(m->vals);
  *m = (tk_map){0};
}

/* ---- vocabulary and merges ---- */
#define TK_MAX_ID (1 << 24) /* 16M ids: far above any real vocabulary */

asg_status asg__bpe_add_token(tk_bpe *m, const char *tok, size_t len, int32_t id,
                              const char *file) {
  if (id < 0 || id >= TK_MAX_ID)
    return asg__error(ASG_ERR_FORMAT, "tokenizer: %s: token \"%.80s\" has id %d outside [0, %d)",
                      file, tok, id, TK_MAX_ID);
  if (len > UINT32_MAX / 2)
    return asg__error(ASG_ERR_FORMAT, "tokenizer: %s: token too long", file);
  if (id >= m->n_tok) {
    int32_t n = m->n_tok ? m->n_tok : 256;
    while (n <= id)
      n *= 2;
    char **nt = realloc(m->tok, (size_t)n * sizeof *nt);
    if (!nt) return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
    memset(nt + m->n_tok, 0, (size_t)(n - m->n_tok) * sizeof *nt);
    m->tok = nt;
    m->n_tok = n;
  }
  if (m->tok[id])
    return asg__error(ASG_ERR_FORMAT,
                      "tokenizer: %s: id %d is given to both \"%.80s\" and \"%.80s\"", file, id,
                      m->tok[id], tok);
  if (asg__tk_map_get(&m->vocab, tok, len) >= 0)
    return asg__error(ASG_ERR_FORMAT, "tokenizer: %s: token \"%.80s\" appears twice", file, tok);
  char *s = malloc(len + 1);
  if (!s) return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
  memcpy(s, tok, len);
  s[len] = '\0';
  m->tok[id] = s;
  if (!asg__tk_map_put(&m->vocab, s, len, id))
    return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
  m->n_vocab++;
  return ASG_OK;
}

static tk_merge_slot *merge_find(const tk_bpe *m, int32_t a, int32_t b) {
  if (!m->merge_cap) return NULL;
  uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
  size_t i = (size_t)asg__mix64(key) & (m->merge_cap - 1);
  while (m->merges[i].key) {
    if (m->merges[i].key == key) return &m->merges[i];
    i = (i + 1) & (m->merge_cap - 1);
  }
  return &m->merges[i]; /* the free slot where it would go */
}

asg_status asg__bpe_add_merge(tk_bpe *m, const char *a, size_t alen, const char *b, size_t blen,
                              const char *file) {
  int32_t ia = asg__tk_map_get(&m->vocab, a, alen), ib = asg__tk_map_get(&m->vocab, b, blen);
  if (ia < 0 || ib < 0)
    return asg__error(
        ASG_ERR_FORMAT,
        "tokenizer: %s: merge %zu (\"%.80s\" \"%.80s\"): \"%.80s\" is not in the vocabulary", file,
        m->n_merges + 1, a, b, ia < 0 ? a : b);
  char buf[512], *ab = alen + blen <= sizeof buf ? buf : malloc(alen + blen);
  if (!ab) return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
  memcpy(ab, a, alen);
  memcpy(ab + alen, b, blen);
  int32_t id = asg__tk_map_get(&m->vocab, ab, alen + blen);
  if (ab != buf) free(ab);
  if (id < 0)
    return asg__error(
        ASG_ERR_FORMAT,
        "tokenizer: %s: merge %zu (\"%.80s\" \"%.80s\"): the merged token is not in the vocabulary",
        file, m->n_merges + 1, a, b);
  if ((m->n_merges + 1) * 2 > m->merge_cap) {
    size_t cap = m->merge_cap ? m->merge_cap * 2 : 1024;
    tk_merge_slot *old = m->merges;
    size_t ocap = m->merge_cap;
    m->merges = calloc(cap, sizeof *m->merges);
    if (!m->merges) {
      m->merges = old;
      return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
    }
    m->merge_cap = cap;
    for (size_t i = 0; i < ocap; i++) {
      if (!old[i].key) continue;
      size_t j = (size_t)asg__mix64(old[i].key) & (cap - 1);
      while (m->merges[j].key)
        j = (j + 1) & (cap - 1);
      m->merges[j] = old[i];
    }
    free(old);
  }
  /* a repeated pair takes its last rank, as Hugging Face's map of merges */
  tk_merge_slot *s = merge_find(m, ia, ib);
  s->key = (((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib) + 1;
  s->rank = (int32_t)m->n_merges;
  s->id = id;
  m->n_merges++;
  return ASG_OK;
}

void asg__bpe_free(tk_bpe *m) {
  for (int32_t i = 0; i < m->n_tok; i++)
    free(m->tok[i]);
  free(m->tok);
  free(m->merges);
  asg__tk_map_free(&m->vocab);
  *m = (tk_bpe){0};
}

/* ---- encoding a word ---- */
typedef struct tk_sym {
  int32_t id, prev, next;
  uint32_t len; /* bytes; 0 once merged into its left neighbour */
} tk_sym;

typedef struct tk_cand {
  int32_t rank, pos, id;
} tk_cand;

#define CACHE_WORD_MAX 256      /* longer words are not cached */
#define CACHE_BYTES (16u << 20) /* keys + ids of the cache, at most */

struct tk_bpe_scratch {
  tk_sym *sym;
  size_t sym_cap;
  tk_cand *heap;
  size_t heap_n, heap_cap;
  /* cache: slot -> (key in kpool, ids in ipool) */
  uint32_t *c_koff, *c_klen, *c_ioff, *c_in; /* c_klen == 0: free slot */
  size_t c_cap, c_count;
  char *kpool;
  size_t kn, kcap;
  int32_t *ipool;
  size_t in, icap;
  bool c_full;
};

tk_bpe_scratch *asg__bpe_scratch_new(void) { return calloc(1, sizeof(tk_bpe_scratch)); }

void asg__bpe_scratch_free(tk_bpe_scratch *s) {
  if (!s) return;
  free(s->sym);
  free(s->heap);
  free(s->c_koff);
  free(s->c_klen);
  free(s->c_ioff);
  free(s->c_in);
  free(s->kpool);
  free(s->ipool);
  free(s);
}

static bool grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 64;
  while (c < need)
    c *= 2;
  void *np = realloc(*p, c * size);
  if (!np) return false;
  *p = np;
  *cap = c;
  return true;
}

static bool push_ids(int32_t **out, size_t *n, size_t *cap, const int32_t *ids, size_t k) {
  if (!grow((void **)out, cap, *n + k, sizeof **out)) return false;
  memcpy(*out + *n, ids, k * sizeof *ids);
  *n += k;
  return true;
}

static bool cand_less(tk_cand a, tk_cand b) {
  return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static bool heap_push(tk_bpe_scratch *s, tk_cand c) {
  if (!grow((void **)&s->heap, &s->heap_cap, s->heap_n + 1, sizeof *s->heap)) return false;
  size_t i = s->heap_n++;
  while (i > 0 && cand_less(c, s->heap[(i - 1) / 2])) {
    s->heap[i] = s->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  s->heap[i] = c;
  return true;
}

static tk_cand heap_pop(tk_bpe_scratch *s) {
  tk_cand top = s->heap[0], last = s->heap[--s->heap_n];
  size_t i = 0, n = s->heap_n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && cand_less(s->heap[c + 1], s->heap[c])) c++;
    if (!cand_less(s->heap[c], last)) break;
    s->heap[i] = s->heap[c];
    i = c;
  }
  if (n) s->heap[i] = last;
  return top;
}

static bool cand_at(const tk_bpe *m, tk_bpe_scratch *s, int32_t pos) {
  tk_sym *a = &s->sym[pos];
  if (a->next < 0) return true;
  tk_merge_slot *ms = merge_find(m, a->id, s->sym[a->next].id);
  if (!ms || !ms->key) return true;
  return heap_push(s, (tk_cand){ms->rank, pos, ms->id});
}

static bool add_sym(tk_bpe_scratch *s, size_t *n, int32_t id, size_t len) {
  if (!grow((void **)&s->sym, &s->sym_cap, *n + 1, sizeof *s->sym)) return false;
  s->sym[*n] = (tk_sym){id, (int32_t)*n - 1, (int32_t)*n + 1, (uint32_t)len};
  ++*n;
  return true;
}

/* One symbol per character (Hugging Face's BPE::merge_word, including its
 * order of a pending unknown token after byte-fallback tokens). */
static bool split_chars(const tk_bpe *m, tk_bpe_scratch *s, const char *w, size_t n, size_t *ns) {
  const unsigned char *u = (const unsigned char *)w;
  int32_t unk_len = -1; /* a pending (possibly fused) unknown token */
  for (size_t i = 0, len; i < n; i += len) {
    asg__tk_utf8(u, n, i, &len);
    int32_t id = asg__tk_map_get(&m->vocab, w + i, len);
    if (id >= 0) {
      if (unk_len >= 0 && !add_sym(s, ns, m->unk, (size_t)unk_len)) return false;
      unk_len = -1;
      if (!add_sym(s, ns, id, len)) return false;
      continue;
    }
    if (m->byte_fallback) {
      bool all = true;
      for (size_t k = 0; k < len; k++)
        all = all && m->byte_tok[u[i + k]] >= 0;
      if (all) {
        for (size_t k = 0; k < len; k++)
          if (!add_sym(s, ns, m->byte_tok[u[i + k]], 1)) return false;
        continue;
      }
    }
    if (m->unk < 0) continue; /* no unknown token: the character is dropped */
    if (unk_len >= 0 && m->fuse_unk) {
      unk_len += (int32_t)len;
    } else {
      if (unk_len >= 0 && !add_sym(s, ns, m->unk, (size_t)unk_len)) return false;
      unk_len = (int32_t)len;
    }
  }
  if (unk_len >= 0 && !add_sym(s, ns, m->unk, (size_t)unk_len)) return false;
  if (*ns) s->sym[*ns - 1].next = -1;
  return true;
}

static bool merge_all(const tk_bpe *m, tk_bpe_scratch *s, size_t ns) {
  s->heap_n = 0;
  for (size_t i = 0; i + 1 < ns; i++)
    if (!cand_at(m, s, (int32_t)i)) return false;
  while (s->heap_n) {
    tk_cand top = heap_pop(s);
    tk_sym *a = &s->sym[top.pos];
    if (a->len == 0 || a->next < 0) continue;
    tk_sym *b = &s->sym[a->next];
    tk_merge_slot *ms = merge_find(m, a->id, b->id);
    if (!ms || !ms->key || ms->id != top.id) continue; /* stale */
    a->id = top.id;
    a->len += b->len;
    a->next = b->next;
    b->len = 0;
    if (a->next >= 0) s->sym[a->next].prev = top.pos;
    if (a->prev >= 0 && !cand_at(m, s, a->prev)) return false;
    if (!cand_at(m, s, top.pos)) return false;
  }
  return true;
}

static size_t cache_slot(const tk_bpe_scratch *s, const char *w, size_t n, bool *found) {
  size_t i = (size_t)asg__tk_hash(w, n) & (s->c_cap - 1);
  while (s->c_klen[i]) {
    if (s->c_klen[i] == n && memcmp(s->kpool + s->c_koff[i], w, n) == 0) {
      *found = true;
      return i;
    }
    i = (i + 1) & (s->c_cap - 1);
  }
  *found = false;
  return i;
}

/* Remembers w -> ids when there is room (a full cache only stops caching). */
static void cache_put(tk_bpe_scratch *s, const char *w, size_t n, const int32_t *ids, size_t k) {
  if (s->c_full) return;
  if (s->kn + n + (s->in + k) * sizeof *ids > CACHE_BYTES) {
    s->c_full = true;
    return;
  }
  if ((s->c_count + 1) * 2 > s->c_cap) {
    size_t cap = s->c_cap ? s->c_cap * 2 : 1024;
    uint32_t *ko = malloc(cap * sizeof *ko), *kl = calloc(cap, sizeof *kl),
             *io = malloc(cap * sizeof *io), *in = malloc(cap * sizeof *in);
    if (!ko || !kl || !io || !in) {
      free(ko), free(kl), free(io), free(in);
      s->c_full = true;
      return;
    }
    for (size_t i = 0; i < s->c_cap; i++) {
      if (!s->c_klen[i]) continue;
      size_t j = (size_t)asg__tk_hash(s->kpool + s->c_koff[i], s->c_klen[i]) & (cap - 1);
      while (kl[j])
        j = (j + 1) & (cap - 1);
      ko[j] = s->c_koff[i], kl[j] = s->c_klen[i], io[j] = s->c_ioff[i], in[j] = s->c_in[i];
    }
    free(s->c_koff), free(s->c_klen), free(s->c_ioff), free(s->c_in);
    s->c_koff = ko, s->c_klen = kl, s->c_ioff = io, s->c_in = in, s->c_cap = cap;
  }
  if (!grow((void **)&s->kpool, &s->kcap, s->kn + n, 1) ||
      !grow((void **)&s->ipool, &s->icap, s->in + k, sizeof *ids)) {
    s->c_full = true;
    return;
  }
  bool found;
  size_t i = cache_slot(s, w, n, &found);
  memcpy(s->kpool + s->kn, w, n);
  if (k) memcpy(s->ipool + s->in, ids, k * sizeof *ids);
  s->c_koff[i] = (uint32_t)s->kn, s->c_klen[i] = (uint32_t)n;
  s->c_ioff[i] = (uint32_t)s->in, s->c_in[i] = (uint32_t)k;
  s->kn += n, s->in += k, s->c_count++;
}

asg_status asg__bpe_word(const tk_bpe *m, tk_bpe_scratch *s, const char *w, size_t n, int32_t **out,
                         size_t *n_out, size_t *cap) {
  if (!n) return ASG_OK;
  if (m->ignore_merges) {
    int32_t id = asg__tk_map_get(&m->vocab, w, n);
    if (id >= 0)
      return push_ids(out, n_out, cap, &id, 1)
                 ? ASG_OK
                 : asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
  }
  bool cacheable = n <= CACHE_WORD_MAX, found = false;
  size_t slot = 0;
  if (cacheable && s->c_cap) slot = cache_slot(s, w, n, &found);
  if (found) { /* a word cached with no ids may have no id pool at all */
    if (s->c_in[slot] && !push_ids(out, n_out, cap, s->ipool + s->c_ioff[slot], s->c_in[slot]))
      return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
    return ASG_OK;
  }
  size_t ns = 0, first = *n_out;
  if (!split_chars(m, s, w, n, &ns) || !merge_all(m, s, ns))
    return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
  for (int32_t i = ns ? 0 : -1; i >= 0; i = s->sym[i].next)
    if (!push_ids(out, n_out, cap, &s->sym[i].id, 1))
      return asg__error(ASG_ERR_OOM, "tokenizer: out of memory");
  if (cacheable) cache_put(s, w, n, *n_out > first ? *out + first : NULL, *n_out - first);
  return ASG_OK;
}
