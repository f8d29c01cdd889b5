/* Text generation with a pretrained Hugging Face model (GPT-2 or Llama
 * family): loads the model folder (config.json, model.safetensors or a
 * sharded index, and the tokenizer files), encodes the prompt, and streams
 * the continuation with the KV cache, then prints tokens per second.
 *
 *   generate --model DIR [--prompt TEXT] [--max-new N] [--temperature T]
 *            [--top-k K] [--top-p P] [--seed S] [--max-len L]
 *            [--backend cpu|cuda|vulkan] [--threads N] [--help]
 *
 * Try it on the small fixture model (random weights: the text is noise, but
 * it is transformers' noise, token for token):
 *   generate --model tests/fixtures/hf/tiny-gpt2 --prompt "The meaning of life is"
 * or on GPT-2 124M downloaded from https://huggingface.co/openai-community/gpt2
 * (config.json, model.safetensors, vocab.json, merges.txt). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asg/asg.h"
#include "asg/tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct stream {
  asg_tokenizer *tok;
  int32_t *ids;
  int n, cap;
  size_t printed; /* bytes of the decoded text already written */
  double t_first; /* when the first token (the prefill's) arrived */
} stream;

/* Decodes everything generated so far and prints what is new, holding back
 * a trailing incomplete UTF-8 character (shown as U+FFFD by the decoder). */
static bool on_token(void *ctx, int row, int32_t token) {
  stream *s = ctx;
  (void)row;
  if (s->n == s->cap) return false;
  s->ids[s->n++] = token;
  if (s->n == 1) s->t_first = now();
  char *text = NULL;
  size_t len = 0;
  if (asg_tokenizer_decode(s->tok, s->ids, (size_t)s->n, true, &text, &len) != ASG_OK) return false;
  bool partial = len >= 3 && !memcmp(text + len - 3, "\xEF\xBF\xBD", 3);
  if (!partial && len > s->printed) {
    fwrite(text + s->printed, 1, len - s->printed, stdout);
    fflush(stdout);
    s->printed = len;
  }
  free(text);
  return true;
}

static void usage(FILE *f) {
  fprintf(f, "usage: generate --model DIR [options]\n"
             "  --model DIR        Hugging Face model folder (config.json, weights, tokenizer)\n"
             "  --prompt TEXT      prompt (default \"The meaning of life is\")\n"
             "  --max-new N        tokens to generate (default 40)\n"
             "  --temperature T    0 = greedy (default 0)\n"
             "  --top-k K          sample among the K most likely (default 0 = off)\n"
             "  --top-p P          nucleus sampling (default 1 = off)\n"
             "  --seed S           sampling seed (default 1)\n"
             "  --max-len L        cache length, prompt + new tokens (default: prompt + max-new)\n"
             "  --backend NAME     cpu (default), cuda or vulkan\n"
             "  --threads N        CPU threads (default: all)\n"
             "  --help             this text\n");
}

int main(int argc, char **argv) {
  const char *model = NULL, *prompt = "The meaning of life is", *backend = "cpu";
  int max_new = 40, max_len = 0, threads = 0;
  asg_sampling smp = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = 1};
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
      {"max-new", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 't'},
      {"top-k", required_argument, 0, 'k'},   {"top-p", required_argument, 0, 'P'},
      {"seed", required_argument, 0, 's'},    {"max-len", required_argument, 0, 'L'},
      {"backend", required_argument, 0, 'b'}, {"threads", required_argument, 0, 'j'},
      {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "m:p:n:t:k:P:s:L:b:j:h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'p': prompt = optarg; break;
    case 'n': max_new = atoi(optarg); break;
    case 't': smp.temperature = atof(optarg); break;
    case 'k': smp.top_k = atoi(optarg); break;
    case 'P': smp.top_p = atof(optarg); break;
    case 's': smp.seed = strtoull(optarg, NULL, 10); break;
    case 'L': max_len = atoi(optarg); break;
    case 'b': backend = optarg; break;
    case 'j': threads = atoi(optarg); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!model || optind < argc || max_new < 1) {
    usage(stderr);
    return 2;
  }
  asg_tokenizer *tok = asg_tokenizer_load(model);
  if (!tok) {
    fprintf(stderr, "tokenizer: %s\n", asg_last_error());
    return 1;
  }
  int32_t *ids = NULL;
  size_t n_ids = 0;
  if (asg_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &n_ids) != ASG_OK ||
      n_ids == 0) {
    fprintf(stderr, "encode: %s\n", n_ids ? asg_last_error() : "empty prompt");
    free(ids);
    asg_tokenizer_free(tok);
    return 1;
  }
  asg_lm_opts lo = {.backend = backend,
                    .num_threads = threads,
                    .max_len = max_len ? max_len : (int)n_ids + max_new};
  double t0 = now();
  asg_lm *lm = asg_lm_load(model, &lo);
  if (!lm) {
    fprintf(stderr, "model: %s\n", asg_last_error());
    free(ids);
    asg_tokenizer_free(tok);
    return 1;
  }
  double t1 = now();
  const asg_lm_config *cfg = asg_lm_get_config(lm);
  fprintf(stderr, "%s: %s, %lld layers, width %lld, %lld tokens in the prompt; loaded in %.2f s\n",
          model, cfg->arch == ASG_LM_GPT2 ? "GPT-2" : "Llama", (long long)cfg->n_layer,
          (long long)cfg->d_model, (long long)n_ids, t1 - t0);
  stream s = {.tok = tok, .cap = max_new};
  s.ids = malloc(sizeof(int32_t) * (size_t)max_new);
  int32_t eos = cfg->eos_id >= 0 ? cfg->eos_id : asg_tokenizer_eos(tok);
  const int32_t *prompts[1] = {ids};
  int lens[1] = {(int)n_ids}, out_len = 0;
  asg_lm_request r = {.n = 1,
                      .prompts = prompts,
                      .lens = lens,
                      .max_new_tokens = max_new,
                      .sampling = smp,
                      .stop_ids = &eos,
                      .n_stop = eos >= 0,
                      .on_token = on_token,
                      .ctx = &s,
                      .out_lens = &out_len};
  fputs(prompt, stdout);
  fflush(stdout);
  double t2 = now();
  asg_status st = s.ids ? asg_lm_generate(lm, &r) : ASG_ERR_OOM;
  double t3 = now();
  putchar('\n');
  if (st != ASG_OK)
    fprintf(stderr, "generate: %s\n", asg_last_error());
  else
    fprintf(stderr,
            "prefill (%lld tokens, first compile included) %.3f s; %d tokens decoded in %.3f s: "
            "%.1f tokens/s\n",
            (long long)n_ids, s.t_first - t2, out_len - 1, t3 - s.t_first,
            out_len > 1 ? (out_len - 1) / (t3 - s.t_first) : 0.0);
  free(s.ids);
  free(ids);
  asg_lm_free(lm);
  asg_tokenizer_free(tok);
  return st == ASG_OK ? 0 : 1;
}
