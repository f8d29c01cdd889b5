/* Tokenizers: text <-> token ids, matching Hugging Face `tokenizers` for
 * the BPE tokenizers that GPT-2 and Llama-family checkpoints ship
 * (docs/tokenizer.md lists what is supported).
 *
 *   - GPT-2 byte-level BPE from vocab.json + merges.txt;
 *   - tokenizer.json with a BPE model: byte-level (GPT-2, Llama 3 style
 *     Split + ByteLevel) or SentencePiece-converted (Llama 2 / Mistral:
 *     "▁" for spaces, <0xXX> byte fallback), with added/special tokens and
 *     a TemplateProcessing post-processor (BOS/EOS).
 *
 * Encoding runs in time about linear in the text (a hand-written scanner
 * for the pre-tokenizer regex, BPE merges through a priority queue, a
 * per-call cache of words): a few MB of text take well under a second.
 * A loaded tokenizer is read-only: one may encode/decode from several
 * threads at once. */
#ifndef ASG_TOKENIZER_H
#define ASG_TOKENIZER_H

#include "asg/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct asg_tokenizer asg_tokenizer;

/* Loads a tokenizer from path: a folder (its tokenizer.json, else its
 * vocab.json + merges.txt; and its tokenizer_config.json /
 * special_tokens_map.json for the BOS/EOS names) or a tokenizer.json file.
 * NULL on error, with asg_last_error(): ASG_ERR_IO (missing or unreadable
 * file), ASG_ERR_FORMAT (malformed file, naming it and the problem),
 * ASG_ERR_UNSUPPORTED (a model, normalizer, pre-tokenizer regex, decoder
 * or post-processor outside docs/tokenizer.md, named). */
ASG_API asg_tokenizer *asg_tokenizer_load(const char *path);
/* GPT-2 files: vocab.json ({"token": id, ...}) and merges.txt (one "a b"
 * pair per line, a first "#version" line optional), the GPT-2 byte-level
 * pre-tokenizer and decoder. "<|endoftext|>", when in the vocabulary, is a
 * special token (matched in text before pre-tokenizing) and the BOS/EOS. */
ASG_API asg_tokenizer *asg_tokenizer_load_bpe(const char *vocab_json, const char *merges_txt);
ASG_API void asg_tokenizer_free(asg_tokenizer *tok);

/* Encodes text[0..len) into *ids (malloc'd, *n of them; the caller frees;
 * NULL when *n is 0). add_special: add the post-processor's tokens (the BOS
 * of Llama's "<s> $A" template; GPT-2 adds none), as Hugging Face's
 * encode(add_special_tokens=True). Special tokens written in the text are
 * always recognized. Text is UTF-8; invalid bytes never fail: each one is a
 * character of its own class "other" (byte-level tokenizers encode it as its
 * byte, byte-fallback ones as its <0xXX> token, others as the unknown
 * token). Errors: ASG_ERR_INVALID (NULL arguments), ASG_ERR_OOM. */
ASG_API asg_status asg_tokenizer_encode(const asg_tokenizer *tok, const char *text, size_t len,
                                        bool add_special, int32_t **ids, size_t *n);
/* Decodes ids[0..n) into *text (malloc'd, NUL-terminated, *len bytes
 * without the NUL; the caller frees) as Hugging Face's Tokenizer.decode
 * (no clean-up of spaces): byte sequences that are not valid UTF-8 become
 * U+FFFD as Hugging Face does, so decode(encode(s)) == s for valid UTF-8 s
 * with byte-level tokenizers. skip_special: leave out special tokens. An id
 * outside the vocabulary is ASG_ERR_INVALID naming it (Hugging Face skips
 * it silently). */
ASG_API asg_status asg_tokenizer_decode(const asg_tokenizer *tok, const int32_t *ids, size_t n,
                                        bool skip_special, char **text, size_t *len);

/* Number of distinct ids, added tokens included (Hugging Face's
 * get_vocab_size(with_added_tokens=True), len(tokenizer)); -1 for NULL. */
ASG_API int64_t asg_tokenizer_vocab_size(const asg_tokenizer *tok);
/* The id of a token string (added tokens first), -1 if absent. */
ASG_API int32_t asg_tokenizer_token_to_id(const asg_tokenizer *tok, const char *token);
/* The token string of an id (owned by tok), NULL if out of range. */
ASG_API const char *asg_tokenizer_id_to_token(const asg_tokenizer *tok, int32_t id);
/* BOS/EOS ids: from tokenizer_config.json or special_tokens_map.json next
 * to the loaded files ("bos_token"/"eos_token"), else the post-processor's
 * first template token as BOS, else GPT-2's <|endoftext|>; -1 if none. */
ASG_API int32_t asg_tokenizer_bos(const asg_tokenizer *tok);
ASG_API int32_t asg_tokenizer_eos(const asg_tokenizer *tok);
/* Whether id is a special token (skipped by decode with skip_special). */
ASG_API bool asg_tokenizer_is_special(const asg_tokenizer *tok, int32_t id);

#ifdef __cplusplus
}
#endif

#endif
