/* Generation speed of a Hugging Face model folder (bench/make_lm_weights.py
 * writes GPT-2 124M and a Llama of the same size): prefill tokens/s of a
 * prompt and greedy decode tokens/s with the KV cache, per batch size; the
 * peer is bench/torch_lm.py on the same folder.
 *
 *   bench_lm --model DIR [--backend cpu] [--threads N] [--prompt 512]
 *            [--batch 1,8] [--decode 64] [--reps 3]
 * Prints one line per batch size:
 *   asg backend=.. batch=B prompt=P prefill_tok_s=.. decode_tok_s=.. decode_ms_per_step=..
 *   and the bytes a decode step must read at least (weights + the cache rows in use). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

static void usage(FILE *f) {
  fprintf(f, "usage: bench_lm --model DIR [--backend cpu|cuda|vulkan] [--threads N] "
             "[--prompt P] [--batch 1,8] [--decode N] [--reps R]\n");
}

int main(int argc, char **argv) {
  const char *model = NULL, *backend = "cpu", *batches = "1,8";
  int threads = 0, P = 512, N = 64, reps = 3;
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                       {"backend", required_argument, 0, 'b'},
                                       {"threads", required_argument, 0, 'j'},
                                       {"prompt", required_argument, 0, 'p'},
                                       {"batch", required_argument, 0, 'B'},
                                       {"decode", required_argument, 0, 'n'},
                                       {"reps", required_argument, 0, 'r'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "m:b:j:p:B:n:r:h", opts, NULL)) != -1) {
    switch (c) {
    case 'm': model = optarg; break;
    case 'b': backend = optarg; break;
    case 'j': threads = atoi(optarg); break;
    case 'p': P = atoi(optarg); break;
    case 'B': batches = optarg; break;
    case 'n': N = atoi(optarg); break;
    case 'r': reps = atoi(optarg); break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!model || P < 1 || N < 1 || reps < 1) {
    usage(stderr);
    return 2;
  }
  asg_lm_config cfg;
  if (asg_lm_config_load(model, &cfg) != ASG_OK) {
    fprintf(stderr, "%s\n", asg_last_error());
    return 1;
  }
  char list[256];
  snprintf(list, sizeof list, "%s", batches);
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    int B = atoi(tok);
    if (B < 1) continue;
    asg_lm_opts o = {
        .backend = backend, .num_threads = threads, .max_batch = B, .max_len = P + N + 1};
    double t0 = bench_now();
    asg_lm *m = asg_lm_load(model, &o);
    if (!m) {
      fprintf(stderr, "load: %s\n", asg_last_error());
      return 1;
    }
    double t_load = bench_now() - t0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)P),
            *next = malloc(sizeof(int32_t) * (size_t)B);
    const int32_t **pp = malloc(sizeof(*pp) * (size_t)B);
    int *lens = malloc(sizeof(int) * (size_t)B);
    for (int i = 0; i < B * P; i++)
      ids[i] = (int32_t)((i * 2654435761u) % (unsigned)cfg.vocab_size);
    for (int b = 0; b < B; b++) {
      pp[b] = ids + (size_t)b * P;
      lens[b] = P;
    }
    /* the first prefill specializes the program for P: timed apart */
    t0 = bench_now();
    asg_status st = asg_lm_prefill(m, B, pp, lens, NULL, next, NULL);
    double t_first = bench_now() - t0;
    double *tp = malloc(sizeof(double) * (size_t)reps), *td = malloc(sizeof(double) * (size_t)reps);
    for (int r = 0; st == ASG_OK && r < reps; r++) {
      t0 = bench_now();
      st = asg_lm_prefill(m, B, pp, lens, NULL, next, NULL);
      tp[r] = bench_now() - t0;
      /* decode N tokens (the first step also warms the decode program up) */
      if (st == ASG_OK) st = asg_lm_decode(m, next, NULL, next, NULL);
      t0 = bench_now();
      for (int k = 1; st == ASG_OK && k < N; k++)
        st = asg_lm_decode(m, next, NULL, next, NULL);
      td[r] = (bench_now() - t0) / (N - 1 > 0 ? N - 1 : 1);
    }
    if (st != ASG_OK) {
      fprintf(stderr, "run: %s\n", asg_last_error());
      return 1;
    }
    double pre = bench_median(tp, reps), dec = bench_median(td, reps);
    int64_t Dh = cfg.head_dim ? cfg.head_dim : cfg.d_model / cfg.n_head;
    /* at least: every weight once, and the cache rows in use (about P + N/2) */
    size_t weights = asg_program_persistent_memory(asg_lm_program(m)) -
                     (size_t)(2 * cfg.n_layer * B * cfg.n_kv_head * Dh * 4) * (size_t)(P + N + 1);
    size_t cache = (size_t)(2 * cfg.n_layer * B * cfg.n_kv_head * Dh * 4) * (size_t)(P + N / 2);
    printf("asg backend=%s batch=%d prompt=%d load_s=%.2f first_prefill_s=%.3f prefill_tok_s=%.1f "
           "decode_tok_s=%.1f decode_ms_per_step=%.3f weight_bytes=%zu cache_bytes=%zu\n",
           backend, B, P, t_load, t_first, B * P / pre, B / dec, 1e3 * dec, weights, cache);
    fflush(stdout);
    free(tp), free(td), free(ids), free(next), free(pp), free(lens);
    asg_lm_free(m);
  }
  return 0;
}
