/* The character corpus of char_gpt and char_rnn: the text files named on
 * the command line (up to 16), else the Debian package `fortunes`, split
 * 9:1 into training and validation text. Header-only. */
#ifndef ASG_EXAMPLE_CORPUS_H
#define ASG_EXAMPLE_CORPUS_H

#include <stdio.h>

#include "asg/asg.h"

/* Loads argv[first..argc) (or the fortunes) into *text and prints its size,
 * vocabulary and *h1, the unigram entropy (nats per character) of the
 * validation text [*split, n). Returns 0, or 1 after printing why. */
static inline int corpus_load(int argc, char **argv, int first, asg_text *text, int64_t *split,
                              double *h1) {
  const char *paths[16];
  int npaths = 0;
  for (int i = first; i < argc && npaths < 16; i++)
    paths[npaths++] = argv[i];
  if (npaths == 0) paths[npaths++] = "/usr/share/games/fortunes";
  if (asg_text_load(paths, npaths, text) != ASG_OK) {
    fprintf(stderr, "%s\n(install a corpus: apt-get install fortunes)\n", asg_last_error());
    return 1;
  }
  *split = text->n * 9 / 10; /* train [0, split), validation [split, n) */
  *h1 = asg_text_unigram_entropy(text, *split, text->n);
  printf("corpus: %lld characters, vocabulary %d; unigram entropy of validation text %.3f nats\n",
         (long long)text->n, text->vocab_size, *h1);
  return 0;
}

#endif
