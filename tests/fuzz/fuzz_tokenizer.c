/* Fuzz target: tokenizers (include/asg/tokenizer.h). The first byte picks
 * the mode. Odd: the rest is a tokenizer.json, loaded (a refusal must come
 * with a message) and, when it loads, used to encode the input itself and
 * a fixed text; every id must be in the vocabulary and decode. Even: the
 * rest is text for one of three built-in tokenizers (GPT-2 style
 * byte-level, Llama 3 style Split + ByteLevel, Llama 2 style byte
 * fallback); byte-level ones must decode valid UTF-8 back unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/io_internal.h"

#define RE_LLAMA3                                                                                  \
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "           \
  "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

static asg_tokenizer *builtin[3];

/* GPT-2's byte -> code point map (printable bytes stand for themselves). */
static unsigned byte_cp(unsigned b) {
  if (b <= 0x20) return 256 + b;
  if (b >= 0x7f && b <= 0xa0) return 256 + 33 + (b - 0x7f);
  if (b == 0xad) return 256 + 67;
  return b;
}

/* A byte-level tokenizer.json: the 256 byte characters, three merges, one
 * special token; pre is the pre_tokenizer, extra more model fields. */
static asg_tokenizer *byte_level(const char *pre, const char *extra, const char *post) {
  asg_sbuf b = {0};
  asg__sb_printf(&b,
                 "{\"added_tokens\": [{\"id\": 259, \"content\": \"<|endoftext|>\", "
                 "\"special\": true, \"normalized\": false}], \"pre_tokenizer\": %s, "
                 "\"post_processor\": %s, \"decoder\": {\"type\": \"ByteLevel\"}, "
                 "\"model\": {\"type\": \"BPE\", %s \"vocab\": {",
                 pre, post, extra);
  for (unsigned i = 0; i < 256; i++)
    asg__sb_printf(&b, "\"\\u%04x\": %u, ", byte_cp(i), i);
  asg__sb_puts(&b, "\"\\u0120t\": 256, \"he\": 257, \"\\u0120the\": 258, \"<|endoftext|>\": 259}, "
                   "\"merges\": [\"\\u0120 t\", \"h e\", [\"\\u0120t\", \"he\"]]}}");
  const char *path = b.oom ? NULL : fuzz_file((const uint8_t *)b.s, b.len);
  asg_tokenizer *t = path ? asg_tokenizer_load(path) : NULL;
  if (!t) fprintf(stderr, "fuzz_tokenizer: built-in tokenizer: %s\n", asg_last_error());
  asg__sb_free(&b);
  return t;
}

static asg_tokenizer *byte_fallback(void) {
  asg_sbuf b = {0};
  asg__sb_puts(&b, "{\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\", \"special\": true, "
                   "\"normalized\": false}], \"normalizer\": {\"type\": \"Sequence\", "
                   "\"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\\u2581\"}, "
                   "{\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": "
                   "\"\\u2581\"}]}, \"post_processor\": {\"type\": \"TemplateProcessing\", "
                   "\"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, {\"Sequence\": {\"id\": "
                   "\"A\"}}], \"special_tokens\": {\"<s>\": {\"ids\": [1]}}}, \"decoder\": "
                   "{\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": "
                   "{\"String\": \"\\u2581\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, "
                   "{\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, "
                   "\"stop\": 0}]}, \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", "
                   "\"fuse_unk\": true, \"byte_fallback\": true, \"vocab\": {\"<unk>\": 0, "
                   "\"<s>\": 1, \"\\u2581\": 258, \"a\": 259, \"b\": 260, \"\\u2581a\": 261, "
                   "\"ab\": 262");
  for (unsigned i = 0; i < 256; i++)
    asg__sb_printf(&b, ", \"<0x%02X>\": %u", i, i + 2);
  asg__sb_puts(&b, "}, \"merges\": [\"\\u2581 a\", \"a b\"]}}");
  const char *path = b.oom ? NULL : fuzz_file((const uint8_t *)b.s, b.len);
  asg_tokenizer *t = path ? asg_tokenizer_load(path) : NULL;
  if (!t) fprintf(stderr, "fuzz_tokenizer: built-in tokenizer: %s\n", asg_last_error());
  asg__sb_free(&b);
  return t;
}

/* Encodes and decodes; aborts on an id outside the vocabulary or a failed
 * decode. Returns the decoded text (malloc'd) or NULL. */
static char *round_trip(const asg_tokenizer *t, const char *s, size_t n, bool special,
                        size_t *len) {
  int32_t *ids = NULL;
  size_t k = 0;
  if (asg_tokenizer_encode(t, s, n, special, &ids, &k) != ASG_OK) abort();
  for (size_t i = 0; i < k; i++)
    if (!asg_tokenizer_id_to_token(t, ids[i])) abort();
  char *text = NULL;
  if (asg_tokenizer_decode(t, ids, k, special, &text, len) != ASG_OK || !text) abort();
  if (!asg__utf8_valid((const unsigned char *)text, *len)) abort(); /* decoders give UTF-8 */
  free(ids);
  return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    ready = true;
    builtin[0] = byte_level("{\"type\": \"ByteLevel\", \"add_prefix_space\": false}", "", "null");
    builtin[1] = byte_level("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                            "\"pattern\": {\"Regex\": \"" RE_LLAMA3 "\"}, \"behavior\": "
                            "\"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
                            "\"use_regex\": false, \"add_prefix_space\": false}]}",
                            "\"ignore_merges\": true,",
                            "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
                            "{\"id\": \"e\"}}, {\"Sequence\": {\"id\": \"A\"}}], "
                            "\"special_tokens\": {\"e\": {\"ids\": [259]}}}");
    builtin[2] = byte_fallback();
    if (!builtin[0] || !builtin[1] || !builtin[2]) abort();
  }
  if (size == 0) return 0;
  const char *s = (const char *)data + 1;
  size_t n = size - 1, len;
  if (data[0] & 1) {
    const char *path = fuzz_file(data + 1, n);
    if (!path) return 0;
    asg_tokenizer *t = asg_tokenizer_load(path);
    if (!t) {
      if (!asg_last_error()[0]) abort();
      return 0;
    }
    static const char fixed[] = "Hello  world's 12345 <s> \xe2\x96\x81x \xff\n";
    free(round_trip(t, fixed, sizeof fixed - 1, true, &len));
    free(round_trip(t, s, n, false, &len));
    asg_tokenizer_free(t);
    return 0;
  }
  int which = (data[0] >> 1) % 3;
  char *text = round_trip(builtin[which], s, n, false, &len);
  if (which < 2 && asg__utf8_valid((const unsigned char *)s, n) && (len != n || memcmp(text, s, n)))
    abort(); /* byte-level: decode(encode(s)) == s */
  free(text);
  return 0;
}
