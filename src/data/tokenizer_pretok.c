/* Text scanning for the tokenizers: UTF-8 decoding that never fails, the
 * character classes, GPT-2's byte <-> code point map, and the two
 * pre-tokenizer regexes that checkpoints ship, as hand-written scanners
 * that give exactly the matches of Oniguruma's leftmost-first backtracking
 * (the engine of Hugging Face tokenizers):
 *
 * GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *
 * Every character is a letter (L), a number (N), white space (S) or other
 * (O), so one of the alternatives matches at every position: a match always
 * starts where the previous one ended. */
#include <string.h>

#include "data/tokenizer_internal.h"

uint32_t asg__tk_utf8(const unsigned char *s, size_t n, size_t i, size_t *len) {
  unsigned c = s[i];
  *len = 1;
  if (c < 0x80) return c;
  size_t k;
  uint32_t cp, min;
  if (c >= 0xc2 && c <= 0xdf) {
    k = 2, cp = c & 0x1f, min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    k = 3, cp = c & 0x0f, min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    k = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return ASG_TK_BAD_CP + c;
  }
  if (n - i < k) return ASG_TK_BAD_CP + c;
  for (size_t j = 1; j < k; j++) {
    if ((s[i + j] & 0xc0) != 0x80) return ASG_TK_BAD_CP + c;
    cp = (cp << 6) | (s[i + j] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return ASG_TK_BAD_CP + c;
  *len = k;
  return cp;
}

void asg__tk_put_cp(asg_sbuf *b, uint32_t cp) {
  char u[4];
  size_t k;
  if (cp < 0x80) {
    u[0] = (char)cp, k = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), k = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    u[2] = (char)(0x80 | (cp & 0x3f)), k = 3;
  } else {
    u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), k = 4;
  }
  asg__sb_putn(b, u, k);
}

bool asg__tk_is_space(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
  return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

enum { C_L, C_N, C_S, C_O };

static int cls(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return C_L;
    if (cp >= '0' && cp <= '9') return C_N;
    return asg__tk_is_space(cp) ? C_S : C_O;
  }
  if (asg__tk_is_space(cp)) return C_S;
  if (asg__uni_is_letter(cp)) return C_L;
  if (asg__uni_is_number(cp)) return C_N;
  return C_O;
}

/* The class of the character at i (C_O past the end never matches: callers
 * check i < n first) and its end in *end. */
static int cls_at(const unsigned char *s, size_t n, size_t i, size_t *end) {
  size_t len;
  uint32_t cp = asg__tk_utf8(s, n, i, &len);
  *end = i + len;
  return cls(cp);
}

/* End of the run of class c that starts at i (i itself if none). */
static size_t run(const unsigned char *s, size_t n, size_t i, int c) {
  size_t e;
  while (i < n && cls_at(s, n, i, &e) == c)
    i = e;
  return i;
}

/* 's 't 're 've 'm 'll 'd at s[i] == '\''; fold: also upper case and
 * U+017F (long s, which folds to s). Returns the end or 0. */
static size_t contraction(const unsigned char *s, size_t n, size_t i, bool fold) {
  if (i + 1 >= n) return 0;
  unsigned a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
  if (fold) {
    if (a == 0xc5 && b == 0xbf) return i + 3; /* 'ſ */
    if (a < 0x80) a |= 0x20;
    if (b < 0x80 && b >= 'A' && b <= 'Z') b |= 0x20;
  }
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

/* \s+(?!\S) then \s+ at a white space character: the whole run when it ends
 * the text or is one character, else the run without its last character
 * (so that the next match can take it with what follows). */
static size_t space_run(const unsigned char *s, size_t n, size_t i) {
  size_t e, last = i, j = i;
  while (j < n && cls_at(s, n, j, &e) == C_S) {
    last = j;
    j = e;
  }
  if (j == n || last == i) return j;
  return last;
}

static size_t match_gpt2(const unsigned char *s, size_t n, size_t i) {
  size_t e, k;
  if (s[i] == '\'' && (k = contraction(s, n, i, false)) != 0) return k;
  /* ' ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+': after an optional space, a run
   * of one class; when the space is followed by white space, or s[i] is
   * white space itself, only the white space alternatives remain. */
  size_t st = s[i] == ' ' && i + 1 < n ? i + 1 : i;
  int c = cls_at(s, n, st, &e);
  if (c != C_S) return run(s, n, e, c);
  return space_run(s, n, i);
}

static size_t match_llama3(const unsigned char *s, size_t n, size_t i) {
  size_t e, e2, k;
  if (s[i] == '\'' && (k = contraction(s, n, i, true)) != 0) return k;
  int c = cls_at(s, n, i, &e);
  /* [^\r\n\p{L}\p{N}]?\p{L}+ */
  if (c == C_L) return run(s, n, e, C_L);
  if (c != C_N && s[i] != '\r' && s[i] != '\n' && e < n && cls_at(s, n, e, &e2) == C_L)
    return run(s, n, e2, C_L);
  /* \p{N}{1,3} */
  if (c == C_N) {
    for (int m = 1; m < 3 && e < n && cls_at(s, n, e, &e2) == C_N; m++)
      e = e2;
    return e;
  }
  /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
  size_t st = s[i] == ' ' && i + 1 < n ? i + 1 : i;
  if (cls_at(s, n, st, &e2) == C_O) {
    size_t j = run(s, n, e2, C_O);
    while (j < n && (s[j] == '\r' || s[j] == '\n'))
      j++;
    return j;
  }
  /* \s*[\r\n]+: up to the last \r or \n of the white space run */
  size_t j = i, nl = 0;
  while (j < n && cls_at(s, n, j, &e2) == C_S) {
    if (s[j] == '\r' || s[j] == '\n') nl = j + 1;
    j = e2;
  }
  if (nl) return nl;
  return space_run(s, n, i);
}

size_t asg__tk_match(tk_regex re, const unsigned char *s, size_t n, size_t i) {
  return re == TK_RE_GPT2 ? match_gpt2(s, n, i) : match_llama3(s, n, i);
}

/* GPT-2's map: the printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ stand for
 * themselves; the 68 others (0x00-0x20, 0x7f-0xa0, 0xad) take 256, 257, ...
 * in byte order, so that every byte is a visible character. */
uint32_t asg__tk_byte_cp(unsigned char b) {
  if (b <= 0x20) return 256u + b;
  if (b >= 0x7f && b <= 0xa0) return 256u + 33 + (b - 0x7fu);
  if (b == 0xad) return 256u + 67;
  return b;
}

int asg__tk_cp_byte(uint32_t cp) {
  if (cp < 256) return asg__tk_byte_cp((unsigned char)cp) == cp ? (int)cp : -1;
  if (cp <= 256 + 32) return (int)(cp - 256);
  if (cp <= 256 + 66) return (int)(0x7f + cp - 256 - 33);
  if (cp == 256 + 67) return 0xad;
  return -1;
}
