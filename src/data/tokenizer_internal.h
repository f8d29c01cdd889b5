/* Internals of the tokenizers (include/asg/tokenizer.h): the loaded
 * pipeline (normalizers, pre-tokenizers, BPE model, post-processor,
 * decoders) shared by tokenizer.c (encode/decode), tokenizer_load.c (JSON),
 * tokenizer_bpe.c (the model) and tokenizer_pretok.c (text scanners). */
#ifndef ASG_TOKENIZER_INTERNAL_H
#define ASG_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "asg/tokenizer.h"
#include "io/io_internal.h"

/* ---- Unicode (unicode_tables.c, generated; tokenizer_pretok.c) ---- */
bool asg__uni_is_letter(uint32_t cp);
bool asg__uni_is_number(uint32_t cp);
/* Code point of the character at s[i] (i < n) and its length in *len.
 * Invalid UTF-8 gives one byte as a character of its own: ASG_TK_BAD_CP
 * plus the byte, which no class contains. */
#define ASG_TK_BAD_CP 0x110000u
uint32_t asg__tk_utf8(const unsigned char *s, size_t n, size_t i, size_t *len);
/* Unicode White_Space (what the regex \s and Rust's is_whitespace match). */
bool asg__tk_is_space(uint32_t cp);
/* Appends the UTF-8 of cp (< 0x110000) to b. */
void asg__tk_put_cp(asg_sbuf *b, uint32_t cp);

/* ---- string -> id map (open addressing) ---- */
typedef struct tk_map {
  const char **keys; /* borrowed: the tokenizer owns the strings */
  uint32_t *lens;
  int32_t *vals;
  size_t cap, count; /* cap: power of two; slots with keys[i] == NULL are free */
} tk_map;
bool asg__tk_map_put(tk_map *m, const char *key, size_t len, int32_t val); /* false: OOM */
int32_t asg__tk_map_get(const tk_map *m, const char *key, size_t len);     /* -1 if absent */
void asg__tk_map_free(tk_map *m);
uint64_t asg__tk_hash(const char *s, size_t len);

/* ---- BPE model (tokenizer_bpe.c) ---- */
typedef struct tk_merge_slot {
  uint64_t key; /* (left id << 32 | right id) + 1; 0 = free */
  int32_t rank, id;
} tk_merge_slot;

typedef struct tk_bpe {
  tk_map vocab;
  char **tok;      /* id -> token string of the model's vocabulary (NULL: hole) */
  int32_t n_tok;   /* ids are in [0, n_tok) */
  int32_t n_vocab; /* distinct tokens */
  tk_merge_slot *merges;
  size_t merge_cap, n_merges;
  int32_t unk; /* -1: none */
  bool fuse_unk, byte_fallback, ignore_merges;
  int32_t byte_tok[256]; /* id of "<0xXX>", -1 if absent */
} tk_bpe;

/* Adds token -> id to the model vocabulary (copies the string). */
asg_status asg__bpe_add_token(tk_bpe *m, const char *tok, size_t len, int32_t id, const char *file);
/* Adds the merge of rank `rank` of tokens a and b (both in the vocabulary,
 * and their concatenation too). */
asg_status asg__bpe_add_merge(tk_bpe *m, const char *a, size_t alen, const char *b, size_t blen,
                              const char *file);
void asg__bpe_free(tk_bpe *m);

/* Per-call scratch of the model: a cache of words and the merge queue. */
typedef struct tk_bpe_scratch tk_bpe_scratch;
tk_bpe_scratch *asg__bpe_scratch_new(void);
void asg__bpe_scratch_free(tk_bpe_scratch *s);
/* Appends the ids of word w[0..n) to out (*n_out, capacity *cap). */
asg_status asg__bpe_word(const tk_bpe *m, tk_bpe_scratch *s, const char *w, size_t n, int32_t **out,
                         size_t *n_out, size_t *cap);

/* ---- pipeline ---- */
typedef enum tk_norm_kind { TK_NORM_PREPEND, TK_NORM_REPLACE } tk_norm_kind;
typedef struct tk_norm {
  tk_norm_kind kind;
  char *a, *b; /* PREPEND: a = text; REPLACE: a = pattern, b = content */
} tk_norm;

typedef enum tk_regex { TK_RE_GPT2, TK_RE_LLAMA3 } tk_regex;
typedef enum tk_pre_kind { TK_PRE_BYTELEVEL, TK_PRE_SPLIT, TK_PRE_METASPACE } tk_pre_kind;
enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
typedef struct tk_pre {
  tk_pre_kind kind;
  bool add_prefix_space, use_regex; /* BYTELEVEL */
  tk_regex re;                      /* SPLIT (behavior Isolated) */
  char rep[5];                      /* METASPACE: the replacement, UTF-8 */
  int prepend;                      /* METASPACE: TK_PREPEND_* */
  bool split;                       /* METASPACE */
} tk_pre;

typedef enum tk_dec_kind {
  TK_DEC_BYTELEVEL,
  TK_DEC_REPLACE,
  TK_DEC_BYTEFALLBACK,
  TK_DEC_FUSE,
  TK_DEC_STRIP,
  TK_DEC_METASPACE
} tk_dec_kind;
typedef struct tk_dec {
  tk_dec_kind kind;
  char *a, *b;     /* REPLACE: pattern, content; STRIP/METASPACE: the character */
  int start, stop; /* STRIP */
  bool prepend;    /* METASPACE: strip the first token's leading space */
} tk_dec;

typedef struct tk_added {
  char *content;
  size_t len;
  int32_t id;
  bool special, normalized, lstrip, rstrip, single_word;
} tk_added;

struct asg_tokenizer {
  tk_bpe bpe;
  tk_added *added;
  int n_added;
  tk_map added_map;     /* content -> id */
  int *added_by_byte;   /* indices of added, by first byte, longest first */
  int added_start[257]; /* added_by_byte[added_start[b] .. added_start[b + 1]) */
  tk_norm *norm;
  int n_norm;
  tk_pre *pre;
  int n_pre;
  tk_dec *dec;
  int n_dec;
  bool has_decoder;         /* no decoder: tokens joined by spaces */
  int32_t *prefix, *suffix; /* ids the post-processor adds around the text */
  int n_prefix, n_suffix;
  int32_t bos, eos;
  /* id -> token with added tokens, and which ids are special */
  const char **id_tok;
  bool *special;
  int32_t n_ids;
  int64_t vocab_size;
};

/* tokenizer_load.c: an empty tokenizer, and the tables derived once the
 * vocabulary and added tokens are known. */
asg_tokenizer *asg__tk_new(void);
asg_status asg__tk_finish(asg_tokenizer *t, const char *file);

/* tokenizer_pretok.c: the pre-tokenizer regexes as scanners. Returns the
 * end of the match that starts at i (i < n; every position matches). */
size_t asg__tk_match(tk_regex re, const unsigned char *s, size_t n, size_t i);
/* GPT-2's byte -> code point map (printable bytes map to themselves). */
uint32_t asg__tk_byte_cp(unsigned char b);
/* The byte a code point of that map stands for, -1 if none. */
int asg__tk_cp_byte(uint32_t cp);

#endif
