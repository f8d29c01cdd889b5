/* Loading tokenizers: tokenizer.json (a BPE model and the pipeline around
 * it), GPT-2's vocab.json + merges.txt, and the BOS/EOS names of
 * tokenizer_config.json / special_tokens_map.json. Every field is checked:
 * a malformed file is ASG_ERR_FORMAT naming the file and the field, a
 * component outside docs/tokenizer.md is ASG_ERR_UNSUPPORTED naming it. */
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"
#include "io/hf_internal.h"

#define WHO "asg_tokenizer_load"
#define TEXT_MAX ((size_t)1 << 30)

static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

asg_tokenizer *asg__tk_new(void) {
  asg_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    asg__error(ASG_ERR_OOM, WHO ": out of memory");
    return NULL;
  }
  t->bpe.unk = t->bos = t->eos = -1;
  return t;
}

/* ---- typed access to the JSON: errors name the file and the field ---- */
typedef struct ctx {
  const char *file;
  asg_tokenizer *t;
} ctx;

static asg_status bad(const ctx *c, const char *field, const char *want) {
  return asg__error(ASG_ERR_FORMAT, WHO ": %s: %s must be %s", c->file, field, want);
}

static asg_status unsupported(const ctx *c, const char *what, const char *name) {
  return asg__error(ASG_ERR_UNSUPPORTED,
                    WHO ": %s: %s \"%.200s\" is not supported (docs/tokenizer.md)", c->file, what,
                    name);
}

/* Optional boolean (absent or null: def). */
static asg_status get_bool(const ctx *c, const asg_jval *o, const char *key, bool def, bool *out) {
  const asg_jval *v = asg__hf_obj_get(o, key);
  *out = def;
  if (!v || v->type == ASG_J_NULL) return ASG_OK;
  if (v->type != ASG_J_BOOL) return bad(c, key, "true or false");
  *out = v->b;
  return ASG_OK;
}

/* String member (required unless opt; absent or null gives NULL). */
static asg_status get_str(const ctx *c, const asg_jval *o, const char *key, bool opt,
                          const char **out) {
  const asg_jval *v = asg__hf_obj_get(o, key);
  *out = NULL;
  if ((!v || v->type == ASG_J_NULL) && opt) return ASG_OK;
  if (!v || v->type != ASG_J_STR) return bad(c, key, "a string");
  *out = v->s;
  return ASG_OK;
}

static asg_status get_int(const ctx *c, const asg_jval *o, const char *key, int64_t lo, int64_t hi,
                          int64_t *out) {
  const asg_jval *v = asg__hf_obj_get(o, key);
  if (!v || v->type != ASG_J_NUM || !v->is_int || v->i < lo || v->i > hi) {
    char want[96];
    snprintf(want, sizeof want, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
    return bad(c, key, want);
  }
  *out = v->i;
  return ASG_OK;
}

/* The "type" of a component object. */
static asg_status get_type(const ctx *c, const asg_jval *o, const char *what, const char **type) {
  if (!o || o->type != ASG_J_OBJ) return bad(c, what, "an object or null");
  char field[64];
  snprintf(field, sizeof field, "%s.type", what);
  const asg_jval *v = asg__hf_obj_get(o, "type");
  if (!v || v->type != ASG_J_STR) return bad(c, field, "a string");
  *type = v->s;
  return ASG_OK;
}

/* {"String": s} patterns only (a "Regex" pattern is unsupported). */
static asg_status get_pattern(const ctx *c, const asg_jval *o, const char *what, const char **s,
                              bool *regex) {
  const asg_jval *p = asg__hf_obj_get(o, "pattern");
  const asg_jval *str = asg__hf_obj_get(p, "String"), *re = asg__hf_obj_get(p, "Regex");
  *regex = re && re->type == ASG_J_STR;
  *s = *regex ? re->s : str && str->type == ASG_J_STR ? str->s : NULL;
  if (!*s) {
    char field[64];
    snprintf(field, sizeof field, "%s.pattern", what);
    return bad(c, field, "{\"String\": ...} or {\"Regex\": ...}");
  }
  return ASG_OK;
}

/* The replacement character of Metaspace and whether it is prepended. */
static asg_status get_metaspace(const ctx *c, const asg_jval *o, char rep[5], int *prepend,
                                bool *split) {
  const char *r, *scheme;
  asg_status st = get_str(c, o, "replacement", false, &r);
  if (!st) st = get_str(c, o, "prepend_scheme", true, &scheme);
  if (st) return st;
  size_t len;
  if (!r[0] || asg__tk_utf8((const unsigned char *)r, strlen(r), 0, &len) >= ASG_TK_BAD_CP ||
      r[len])
    return bad(c, "Metaspace.replacement", "one character");
  memcpy(rep, r, len + 1);
  if (scheme) {
    if (strcmp(scheme, "always") == 0)
      *prepend = TK_PREPEND_ALWAYS;
    else if (strcmp(scheme, "first") == 0)
      *prepend = TK_PREPEND_FIRST;
    else if (strcmp(scheme, "never") == 0)
      *prepend = TK_PREPEND_NEVER;
    else
      return bad(c, "Metaspace.prepend_scheme", "\"always\", \"first\" or \"never\"");
  } else { /* older files: add_prefix_space */
    bool add;
    if ((st = get_bool(c, o, "add_prefix_space", true, &add))) return st;
    *prepend = add ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER;
  }
  return get_bool(c, o, "split", true, split);
}

static void *grow_one(void **arr, int *n, size_t size) {
  void *p = realloc(*arr, (size_t)(*n + 1) * size);
  if (!p) return NULL;
  *arr = p;
  memset((char *)p + (size_t)*n * size, 0, size);
  return (char *)p + (size_t)(*n)++ * size;
}

#define OOM() asg__error(ASG_ERR_OOM, WHO ": out of memory")

/* ---- normalizer ---- */
static asg_status load_norm(const ctx *c, const asg_jval *o, int depth) {
  if (!o || o->type == ASG_J_NULL) return ASG_OK;
  const char *type = NULL;
  asg_status st = get_type(c, o, "normalizer", &type);
  if (st) return st;
  if (strcmp(type, "Sequence") == 0) {
    const asg_jval *list = asg__hf_obj_get(o, "normalizers");
    if (!list || list->type != ASG_J_ARR) return bad(c, "normalizer.normalizers", "an array");
    if (depth > 8) return bad(c, "normalizer", "nested at most 8 deep");
    for (int i = 0; i < list->n && !st; i++)
      st = load_norm(c, &list->items[i], depth + 1);
    return st;
  }
  tk_norm nm = {0};
  if (strcmp(type, "Prepend") == 0) {
    const char *s;
    if ((st = get_str(c, o, "prepend", false, &s))) return st;
    nm = (tk_norm){TK_NORM_PREPEND, asg__strdup(s), NULL};
  } else if (strcmp(type, "Replace") == 0) {
    const char *pat, *content;
    bool regex;
    if ((st = get_pattern(c, o, "Replace", &pat, &regex))) return st;
    if (regex) return unsupported(c, "normalizer Replace with the regex", pat);
    if ((st = get_str(c, o, "content", false, &content))) return st;
    if (!pat[0]) return bad(c, "Replace.pattern", "a non-empty string");
    nm = (tk_norm){TK_NORM_REPLACE, asg__strdup(pat), asg__strdup(content)};
  } else {
    return unsupported(c, "normalizer", type);
  }
  tk_norm *slot = grow_one((void **)&c->t->norm, &c->t->n_norm, sizeof *slot);
  if (!slot || !nm.a || (nm.kind == TK_NORM_REPLACE && !nm.b)) {
    free(nm.a), free(nm.b);
    return OOM();
  }
  *slot = nm;
  return ASG_OK;
}

/* ---- pre-tokenizer ---- */
static asg_status load_pre(const ctx *c, const asg_jval *o, int depth) {
  if (!o || o->type == ASG_J_NULL) return ASG_OK;
  const char *type = NULL;
  asg_status st = get_type(c, o, "pre_tokenizer", &type);
  if (st) return st;
  if (strcmp(type, "Sequence") == 0) {
    const asg_jval *list = asg__hf_obj_get(o, "pretokenizers");
    if (!list || list->type != ASG_J_ARR) return bad(c, "pre_tokenizer.pretokenizers", "an array");
    if (depth > 8) return bad(c, "pre_tokenizer", "nested at most 8 deep");
    for (int i = 0; i < list->n && !st; i++)
      st = load_pre(c, &list->items[i], depth + 1);
    return st;
  }
  tk_pre p = {0};
  if (strcmp(type, "ByteLevel") == 0) {
    p.kind = TK_PRE_BYTELEVEL;
    st = get_bool(c, o, "add_prefix_space", true, &p.add_prefix_space);
    if (!st) st = get_bool(c, o, "use_regex", true, &p.use_regex);
  } else if (strcmp(type, "Split") == 0) {
    const char *pat, *behavior;
    bool regex, invert;
    p.kind = TK_PRE_SPLIT;
    if ((st = get_pattern(c, o, "Split", &pat, &regex))) return st;
    if (!regex || (strcmp(pat, GPT2_RE) != 0 && strcmp(pat, LLAMA3_RE) != 0))
      return unsupported(c, "Split pre-tokenizer pattern", pat);
    p.re = strcmp(pat, GPT2_RE) == 0 ? TK_RE_GPT2 : TK_RE_LLAMA3;
    if ((st = get_str(c, o, "behavior", false, &behavior))) return st;
    if (strcmp(behavior, "Isolated") != 0)
      return unsupported(c, "Split pre-tokenizer behavior", behavior);
    if ((st = get_bool(c, o, "invert", false, &invert))) return st;
    if (invert) return unsupported(c, "Split pre-tokenizer option", "invert");
  } else if (strcmp(type, "Metaspace") == 0) {
    p.kind = TK_PRE_METASPACE;
    st = get_metaspace(c, o, p.rep, &p.prepend, &p.split);
  } else {
    return unsupported(c, "pre-tokenizer", type);
  }
  if (st) return st;
  tk_pre *slot = grow_one((void **)&c->t->pre, &c->t->n_pre, sizeof *slot);
  if (!slot) return OOM();
  *slot = p;
  return ASG_OK;
}

/* ---- decoder ---- */
static asg_status load_dec(const ctx *c, const asg_jval *o, int depth) {
  if (!o || o->type == ASG_J_NULL) return ASG_OK;
  const char *type = NULL;
  asg_status st = get_type(c, o, "decoder", &type);
  if (st) return st;
  c->t->has_decoder = true;
  if (strcmp(type, "Sequence") == 0) {
    const asg_jval *list = asg__hf_obj_get(o, "decoders");
    if (!list || list->type != ASG_J_ARR) return bad(c, "decoder.decoders", "an array");
    if (depth > 8) return bad(c, "decoder", "nested at most 8 deep");
    for (int i = 0; i < list->n && !st; i++)
      st = load_dec(c, &list->items[i], depth + 1);
    return st;
  }
  tk_dec d = {0};
  const char *a = NULL, *b = NULL;
  if (strcmp(type, "ByteLevel") == 0) {
    d.kind = TK_DEC_BYTELEVEL;
  } else if (strcmp(type, "ByteFallback") == 0) {
    d.kind = TK_DEC_BYTEFALLBACK;
  } else if (strcmp(type, "Fuse") == 0) {
    d.kind = TK_DEC_FUSE;
  } else if (strcmp(type, "Replace") == 0) {
    bool regex;
    d.kind = TK_DEC_REPLACE;
    if ((st = get_pattern(c, o, "Replace", &a, &regex))) return st;
    if (regex) return unsupported(c, "decoder Replace with the regex", a);
    if (!a[0]) return bad(c, "Replace.pattern", "a non-empty string");
    st = get_str(c, o, "content", false, &b);
  } else if (strcmp(type, "Strip") == 0) {
    int64_t start = 0, stop = 0;
    d.kind = TK_DEC_STRIP;
    st = get_str(c, o, "content", false, &a);
    if (!st) st = get_int(c, o, "start", 0, 1 << 20, &start);
    if (!st) st = get_int(c, o, "stop", 0, 1 << 20, &stop);
    size_t len;
    if (!st &&
        (!a[0] || asg__tk_utf8((const unsigned char *)a, strlen(a), 0, &len) >= ASG_TK_BAD_CP ||
         a[len]))
      st = bad(c, "Strip.content", "one character");
    d.start = (int)(st ? 0 : start), d.stop = (int)(st ? 0 : stop);
  } else if (strcmp(type, "Metaspace") == 0) {
    char rep[5];
    int prepend = 0;
    bool split;
    d.kind = TK_DEC_METASPACE;
    st = get_metaspace(c, o, rep, &prepend, &split);
    d.prepend = prepend != TK_PREPEND_NEVER;
    a = rep;
    if (!st && !(d.a = asg__strdup(a))) st = OOM();
    a = NULL;
  } else {
    return unsupported(c, "decoder", type);
  }
  if (!st && a && !(d.a = asg__strdup(a))) st = OOM();
  if (!st && b && !(d.b = asg__strdup(b))) st = OOM();
  tk_dec *slot = st ? NULL : grow_one((void **)&c->t->dec, &c->t->n_dec, sizeof *slot);
  if (!st && !slot) st = OOM();
  if (st) {
    free(d.a), free(d.b);
    return st;
  }
  *slot = d;
  return ASG_OK;
}

/* ---- post-processor: the ids around a single sequence ---- */
static asg_status add_ids(const ctx *c, bool prefix, const int32_t *ids, int n) {
  asg_tokenizer *t = c->t;
  int32_t **arr = prefix ? &t->prefix : &t->suffix;
  int *cnt = prefix ? &t->n_prefix : &t->n_suffix;
  int32_t *p = realloc(*arr, (size_t)(*cnt + n) * sizeof *p);
  if (!p) return OOM();
  memcpy(p + *cnt, ids, (size_t)n * sizeof *ids);
  *arr = p;
  *cnt += n;
  return ASG_OK;
}

static asg_status load_template(const ctx *c, const asg_jval *o) {
  const asg_jval *single = asg__hf_obj_get(o, "single"), *sp = asg__hf_obj_get(o, "special_tokens");
  if (!single || single->type != ASG_J_ARR) return bad(c, "TemplateProcessing.single", "an array");
  if (!sp || sp->type != ASG_J_OBJ) return bad(c, "TemplateProcessing.special_tokens", "an object");
  bool seen_a = false;
  for (int i = 0; i < single->n; i++) {
    const asg_jval *it = &single->items[i];
    const asg_jval *seq = asg__hf_obj_get(it, "Sequence"),
                   *tok = asg__hf_obj_get(it, "SpecialToken");
    if (seq) {
      const asg_jval *id = asg__hf_obj_get(seq, "id");
      if (seen_a || !id || id->type != ASG_J_STR || strcmp(id->s, "A") != 0)
        return bad(c, "TemplateProcessing.single",
                   "one {\"Sequence\": {\"id\": \"A\"}} with special tokens");
      seen_a = true;
      continue;
    }
    const asg_jval *name = asg__hf_obj_get(tok, "id");
    if (!name || name->type != ASG_J_STR)
      return bad(c, "TemplateProcessing.single",
                 "items {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
    const asg_jval *def = asg__hf_obj_get(sp, name->s), *ids = asg__hf_obj_get(def, "ids");
    if (!ids || ids->type != ASG_J_ARR)
      return asg__error(ASG_ERR_FORMAT,
                        WHO ": %s: TemplateProcessing: special token \"%.80s\" has no \"ids\"",
                        c->file, name->s);
    for (int k = 0; k < ids->n; k++) {
      const asg_jval *v = &ids->items[k];
      if (v->type != ASG_J_NUM || !v->is_int || v->i < 0 || v->i > INT32_MAX)
        return bad(c, "TemplateProcessing.special_tokens ids", "non-negative integers");
      int32_t id = (int32_t)v->i;
      asg_status st = add_ids(c, !seen_a, &id, 1);
      if (st) return st;
    }
  }
  if (!seen_a) return bad(c, "TemplateProcessing.single", "a template with the sequence $A");
  return ASG_OK;
}

/* RobertaProcessing / BertProcessing: cls $A sep, each ["token", id]. */
static asg_status load_cls_sep(const ctx *c, const asg_jval *o) {
  const char *keys[2] = {"cls", "sep"};
  for (int k = 0; k < 2; k++) {
    const asg_jval *v = asg__hf_obj_get(o, keys[k]);
    if (!v || v->type != ASG_J_ARR || v->n != 2 || v->items[1].type != ASG_J_NUM ||
        !v->items[1].is_int || v->items[1].i < 0 || v->items[1].i > INT32_MAX)
      return bad(c, keys[k], "[\"token\", id]");
    int32_t id = (int32_t)v->items[1].i;
    asg_status st = add_ids(c, k == 0, &id, 1);
    if (st) return st;
  }
  return ASG_OK;
}

static asg_status load_post(const ctx *c, const asg_jval *o, int depth) {
  if (!o || o->type == ASG_J_NULL) return ASG_OK;
  const char *type = NULL;
  asg_status st = get_type(c, o, "post_processor", &type);
  if (st) return st;
  if (strcmp(type, "Sequence") == 0) {
    const asg_jval *list = asg__hf_obj_get(o, "processors");
    if (!list || list->type != ASG_J_ARR) return bad(c, "post_processor.processors", "an array");
    if (depth > 8) return bad(c, "post_processor", "nested at most 8 deep");
    for (int i = 0; i < list->n && !st; i++)
      st = load_post(c, &list->items[i], depth + 1);
    return st;
  }
  if (strcmp(type, "ByteLevel") == 0) return ASG_OK; /* offsets only */
  if (strcmp(type, "TemplateProcessing") == 0) return load_template(c, o);
  if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0)
    return load_cls_sep(c, o);
  return unsupported(c, "post-processor", type);
}

/* ---- model ---- */
static asg_status load_vocab(const ctx *c, const asg_jval *v, const char *field) {
  if (!v || v->type != ASG_J_OBJ) return bad(c, field, "an object {\"token\": id, ...}");
  for (int i = 0; i < v->n; i++) {
    const asg_jval *id = &v->items[i];
    if (id->type != ASG_J_NUM || !id->is_int || id->i < 0 || id->i > INT32_MAX)
      return asg__error(ASG_ERR_FORMAT,
                        WHO ": %s: the id of token \"%.80s\" is not a non-negative integer",
                        c->file, v->keys[i]);
    asg_status st =
        asg__bpe_add_token(&c->t->bpe, v->keys[i], strlen(v->keys[i]), (int32_t)id->i, c->file);
    if (st) return st;
  }
  return ASG_OK;
}

static asg_status load_model(const ctx *c, const asg_jval *m) {
  if (!m || m->type != ASG_J_OBJ) return bad(c, "model", "an object");
  const char *type, *unk, *prefix, *suffix;
  asg_status st = get_str(c, m, "type", true, &type);
  if (st) return st;
  if (type && strcmp(type, "BPE") != 0) return unsupported(c, "model type", type);
  tk_bpe *b = &c->t->bpe;
  if ((st = get_str(c, m, "unk_token", true, &unk)) ||
      (st = get_str(c, m, "continuing_subword_prefix", true, &prefix)) ||
      (st = get_str(c, m, "end_of_word_suffix", true, &suffix)) ||
      (st = get_bool(c, m, "fuse_unk", false, &b->fuse_unk)) ||
      (st = get_bool(c, m, "byte_fallback", false, &b->byte_fallback)) ||
      (st = get_bool(c, m, "ignore_merges", false, &b->ignore_merges)))
    return st;
  if (prefix && prefix[0]) return unsupported(c, "BPE continuing_subword_prefix", prefix);
  if (suffix && suffix[0]) return unsupported(c, "BPE end_of_word_suffix", suffix);
  const asg_jval *drop = asg__hf_obj_get(m, "dropout");
  if (drop && drop->type != ASG_J_NULL) {
    if (drop->type != ASG_J_NUM) return bad(c, "model.dropout", "a number or null");
    if (!drop->is_int || drop->i != 0) /* 0 is the only dropout that changes nothing */
      return unsupported(c, "BPE option", "dropout (random merges at encode time)");
  }
  if ((st = load_vocab(c, asg__hf_obj_get(m, "vocab"), "model.vocab"))) return st;
  if (unk && (b->unk = asg__tk_map_get(&b->vocab, unk, strlen(unk))) < 0)
    return asg__error(ASG_ERR_FORMAT,
                      WHO ": %s: the unknown token \"%.80s\" is not in the vocabulary", c->file,
                      unk);
  const asg_jval *merges = asg__hf_obj_get(m, "merges");
  if (!merges || merges->type != ASG_J_ARR) return bad(c, "model.merges", "an array");
  for (int i = 0; i < merges->n && !st; i++) {
    const asg_jval *it = &merges->items[i];
    if (it->type == ASG_J_ARR && it->n == 2 && it->items[0].type == ASG_J_STR &&
        it->items[1].type == ASG_J_STR) {
      st = asg__bpe_add_merge(b, it->items[0].s, strlen(it->items[0].s), it->items[1].s,
                              strlen(it->items[1].s), c->file);
      continue;
    }
    const char *sp = it->type == ASG_J_STR ? strchr(it->s, ' ') : NULL;
    if (!sp || strchr(sp + 1, ' '))
      return asg__error(ASG_ERR_FORMAT,
                        WHO ": %s: merge %d must be \"a b\" (one space) or [\"a\", \"b\"]", c->file,
                        i + 1);
    st = asg__bpe_add_merge(b, it->s, (size_t)(sp - it->s), sp + 1, strlen(sp + 1), c->file);
  }
  return st;
}

static asg_status load_added(const ctx *c, const asg_jval *list) {
  if (!list || list->type == ASG_J_NULL) return ASG_OK;
  if (list->type != ASG_J_ARR) return bad(c, "added_tokens", "an array");
  for (int i = 0; i < list->n; i++) {
    const asg_jval *o = &list->items[i];
    if (o->type != ASG_J_OBJ) return bad(c, "added_tokens items", "objects");
    const char *content;
    int64_t id = 0;
    tk_added a = {0};
    asg_status st = get_str(c, o, "content", false, &content);
    if (!st) st = get_int(c, o, "id", 0, (1 << 24) - 1, &id);
    if (!st) st = get_bool(c, o, "special", false, &a.special);
    if (!st) st = get_bool(c, o, "normalized", true, &a.normalized);
    if (!st) st = get_bool(c, o, "lstrip", false, &a.lstrip);
    if (!st) st = get_bool(c, o, "rstrip", false, &a.rstrip);
    if (!st) st = get_bool(c, o, "single_word", false, &a.single_word);
    if (st) return st;
    if (!content[0]) return bad(c, "added_tokens content", "a non-empty string");
    tk_added *slot = grow_one((void **)&c->t->added, &c->t->n_added, sizeof *slot);
    if (!slot || !(a.content = asg__strdup(content))) return OOM();
    a.len = strlen(content);
    a.id = (int32_t)id;
    *slot = a;
  }
  return ASG_OK;
}

static asg_status load_json(asg_tokenizer *t, const char *path) {
  asg_jval root;
  asg_status st = asg__hf_read_json(path, WHO, &root);
  if (st) return st;
  ctx c = {path, t};
  const asg_jval *m = asg__hf_obj_get(&root, "model");
  if (!(st = load_model(&c, m)) && !(st = load_added(&c, asg__hf_obj_get(&root, "added_tokens"))) &&
      !(st = load_norm(&c, asg__hf_obj_get(&root, "normalizer"), 0)) &&
      !(st = load_pre(&c, asg__hf_obj_get(&root, "pre_tokenizer"), 0)) &&
      !(st = load_post(&c, asg__hf_obj_get(&root, "post_processor"), 0)))
    st = load_dec(&c, asg__hf_obj_get(&root, "decoder"), 0);
  asg__json_free(&root);
  return st;
}

/* ---- GPT-2 files ---- */
static asg_status load_merges_txt(asg_tokenizer *t, const char *path) {
  char *text;
  size_t len;
  asg_status st = asg__hf_read_text(path, WHO, TEXT_MAX, &text, &len);
  if (st) return st;
  if (memchr(text, '\0', len))
    st = asg__error(ASG_ERR_FORMAT, WHO ": %s: contains a NUL byte", path);
  size_t line = 0;
  for (char *p = text; !st && p < text + len; line++) {
    char *nl = memchr(p, '\n', (size_t)(text + len - p)), *end = nl ? nl : text + len;
    char *next = nl ? nl + 1 : text + len;
    if (end > p && end[-1] == '\r') end--;
    if (end == p || (line == 0 && end - p >= 8 && memcmp(p, "#version", 8) == 0)) {
      p = next; /* empty lines and the optional "#version: 0.2" header */
      continue;
    }
    char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp == p || sp + 1 == end || memchr(sp + 1, ' ', (size_t)(end - sp - 1))) {
      st = asg__error(ASG_ERR_FORMAT, WHO ": %s: line %zu is not \"a b\" (two tokens, one space)",
                      path, line + 1);
      break;
    }
    *sp = *end = '\0';
    st = asg__bpe_add_merge(&t->bpe, p, (size_t)(sp - p), sp + 1, (size_t)(end - sp - 1), path);
    p = next;
  }
  free(text);
  return st;
}

static asg_status load_gpt2_files(asg_tokenizer *t, const char *vocab, const char *merges) {
  asg_jval root;
  asg_status st = asg__hf_read_json(vocab, WHO, &root);
  if (st) return st;
  ctx c = {vocab, t};
  st = load_vocab(&c, &root, "the file");
  asg__json_free(&root);
  if (!st) st = load_merges_txt(t, merges);
  if (st) return st;
  t->pre = calloc(1, sizeof *t->pre);
  t->dec = calloc(1, sizeof *t->dec);
  if (!t->pre || !t->dec) return OOM();
  t->n_pre = t->n_dec = 1;
  t->pre[0] = (tk_pre){.kind = TK_PRE_BYTELEVEL, .use_regex = true};
  t->dec[0] = (tk_dec){.kind = TK_DEC_BYTELEVEL};
  t->has_decoder = true;
  int32_t eot = asg__tk_map_get(&t->bpe.vocab, "<|endoftext|>", 13);
  if (eot >= 0) {
    t->added = calloc(1, sizeof *t->added);
    if (!t->added || !(t->added[0].content = asg__strdup("<|endoftext|>"))) return OOM();
    t->n_added = 1;
    t->added[0].len = 13, t->added[0].id = eot, t->added[0].special = true;
    t->added[0].normalized = true;
  }
  return ASG_OK;
}

/* ---- tables derived from the vocabulary and the added tokens ---- */
asg_status asg__tk_finish(asg_tokenizer *t, const char *file) {
  tk_bpe *b = &t->bpe;
  for (int i = 0; i < 256; i++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", i);
    b->byte_tok[i] = asg__tk_map_get(&b->vocab, name, 6);
  }
  int32_t n = b->n_tok;
  for (int i = 0; i < t->n_added; i++)
    if (t->added[i].id >= n) n = t->added[i].id + 1;
  t->n_ids = n;
  t->id_tok = calloc((size_t)n + 1, sizeof *t->id_tok);
  t->special = calloc((size_t)n + 1, sizeof *t->special);
  if (!t->id_tok || !t->special) return OOM();
  for (int32_t i = 0; i < b->n_tok; i++)
    t->id_tok[i] = b->tok[i];
  for (int i = 0; i < t->n_added; i++) { /* added tokens first, as Hugging Face */
    tk_added *a = &t->added[i];
    t->id_tok[a->id] = a->content;
    t->special[a->id] = a->special;
    if (!asg__tk_map_put(&t->added_map, a->content, a->len, a->id)) return OOM();
  }
  /* added tokens by first byte, longest first (leftmost-longest matching) */
  t->added_by_byte = malloc(((size_t)t->n_added + 1) * sizeof *t->added_by_byte);
  if (!t->added_by_byte) return OOM();
  memset(t->added_start, 0, sizeof t->added_start);
  for (int i = 0; i < t->n_added; i++)
    t->added_start[(unsigned char)t->added[i].content[0] + 1]++;
  for (int b = 0; b < 256; b++)
    t->added_start[b + 1] += t->added_start[b];
  int fill[256];
  memcpy(fill, t->added_start, sizeof fill);
  for (int i = 0; i < t->n_added; i++) {
    int b = (unsigned char)t->added[i].content[0], k = fill[b]++;
    while (k > t->added_start[b] && t->added[t->added_by_byte[k - 1]].len < t->added[i].len) {
      t->added_by_byte[k] = t->added_by_byte[k - 1]; /* insertion sort within the byte */
      k--;
    }
    t->added_by_byte[k] = i;
  }
  t->vocab_size = 0;
  for (int32_t i = 0; i < n; i++)
    t->vocab_size += t->id_tok[i] != NULL;
  for (int k = 0; k < t->n_prefix + t->n_suffix; k++) {
    int32_t id = k < t->n_prefix ? t->prefix[k] : t->suffix[k - t->n_prefix];
    if (id >= n || !t->id_tok[id])
      return asg__error(ASG_ERR_FORMAT,
                        WHO ": %s: the post-processor adds id %d, which is not in the vocabulary",
                        file, id);
  }
  return ASG_OK;
}

static bool is_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode);
}

/* "bos_token"/"eos_token" of a config file: a string or {"content": ...}. */
static asg_status config_tokens(asg_tokenizer *t, const char *dir, const char *name) {
  char *path = asg__hf_join(dir, name);
  if (!path) return OOM();
  asg_status st = ASG_OK;
  if (is_file(path)) {
    asg_jval root;
    st = asg__hf_read_json(path, WHO, &root);
    for (int k = 0; k < 2 && !st; k++) {
      const asg_jval *v = asg__hf_obj_get(&root, k ? "eos_token" : "bos_token");
      if (v && v->type == ASG_J_OBJ) v = asg__hf_obj_get(v, "content");
      int32_t *dst = k ? &t->eos : &t->bos;
      if (v && v->type == ASG_J_STR && *dst < 0) *dst = asg_tokenizer_token_to_id(t, v->s);
    }
    if (!st) asg__json_free(&root);
  }
  free(path);
  return st;
}

static asg_status finish_all(asg_tokenizer *t, const char *file, const char *dir) {
  asg_status st = asg__tk_finish(t, file);
  if (!st && dir) st = config_tokens(t, dir, "tokenizer_config.json");
  if (!st && dir) st = config_tokens(t, dir, "special_tokens_map.json");
  if (st) return st;
  if (t->bos < 0 && t->n_prefix) t->bos = t->prefix[0];
  if (t->eos < 0 && t->n_suffix) t->eos = t->suffix[t->n_suffix - 1];
  int32_t eot = asg_tokenizer_token_to_id(t, "<|endoftext|>");
  if (t->bos < 0) t->bos = eot;
  if (t->eos < 0) t->eos = eot;
  return ASG_OK;
}

static asg_tokenizer *done(asg_tokenizer *t, asg_status st) {
  if (!st) return t;
  asg_tokenizer_free(t);
  return NULL;
}

asg_tokenizer *asg_tokenizer_load(const char *path) {
  if (!path) {
    asg__error(ASG_ERR_INVALID, WHO ": path is NULL");
    return NULL;
  }
  asg_tokenizer *t = asg__tk_new();
  if (!t) return NULL;
  asg_status st = ASG_OK;
  char *dir = NULL, *json = NULL, *vocab = NULL, *merges = NULL;
  const char *file = path;
  if (asg__hf_is_dir(path)) {
    dir = asg__hf_join(path, "");
    json = asg__hf_join(path, "tokenizer.json");
    vocab = asg__hf_join(path, "vocab.json");
    merges = asg__hf_join(path, "merges.txt");
    if (!dir || !json || !vocab || !merges) {
      st = OOM();
    } else if (is_file(json)) {
      st = load_json(t, file = json);
    } else if (is_file(vocab) && is_file(merges)) {
      st = load_gpt2_files(t, file = vocab, merges);
    } else {
      st = asg__error(ASG_ERR_IO,
                      WHO ": '%s' has neither tokenizer.json nor vocab.json + merges.txt", path);
    }
  } else {
    st = load_json(t, path);
    const char *slash = strrchr(path, '/');
    if (!st && !(dir = slash ? malloc((size_t)(slash - path) + 2) : asg__strdup("."))) st = OOM();
    if (!st && slash) {
      memcpy(dir, path, (size_t)(slash - path) + 1);
      dir[slash - path + 1] = '\0';
    }
  }
  if (!st) st = finish_all(t, file, dir);
  free(dir), free(json), free(vocab), free(merges);
  return done(t, st);
}

asg_tokenizer *asg_tokenizer_load_bpe(const char *vocab_json, const char *merges_txt) {
  if (!vocab_json || !merges_txt) {
    asg__error(ASG_ERR_INVALID, "asg_tokenizer_load_bpe: a path is NULL");
    return NULL;
  }
  asg_tokenizer *t = asg__tk_new();
  if (!t) return NULL;
  asg_status st = load_gpt2_files(t, vocab_json, merges_txt);
  if (!st) st = finish_all(t, vocab_json, NULL);
  return done(t, st);
}
