/* Inference latency of an imported ONNX model: asg_onnx_import, one
 * compiled program (symbolic batch), then N timed runs at a batch size after
 * warm-up runs; prints the median ms per inference (a run and the read of
 * its output) and the samples per second. bench/onnx_ort.py runs it beside
 * onnxruntime on the same files, bench/onnx_torch.py beside PyTorch.
 *
 *   bench_onnx --model tests/onnx/models/torch_cnn.onnx --batch 64 --threads 2
 *
 * Inputs are filled with fixed values: float inputs uniform in [-1, 1), int64
 * inputs (token ids) in [0, --vocab) and attention masks (an input whose name
 * contains "mask") with 1. Every dynamic axis after the first (the batch) is
 * --seq. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asg/asg.h"
#include "bench_common.h"

static void usage(FILE *f) {
  fprintf(f, "usage: bench_onnx --model FILE.onnx [--batch B] [--seq T] [--vocab V] [--threads N]\n"
             "                  [--iters N] [--warmup N] [--backend cpu|cuda|vulkan]\n"
             "  --batch B    the first dynamic axis (default 1)\n"
             "  --seq T      other dynamic axes (default 16)\n"
             "  --vocab V    int64 inputs are ids in [0, V) (default 64)\n"
             "  --threads N  CPU threads (default 2; 0: all)\n"
             "  --iters N    timed runs (default 200), after --warmup (default 20)\n"
             "  --no-fusion  compile without the fusion passes (asg_compile_opts.no_fusion)\n");
}

int main(int argc, char **argv) {
  const char *path = NULL, *backend = "cpu";
  long batch = 1, seq = 16, vocab = 64;
  int threads = 2, iters = 200, warmup = 20, no_fusion = 0, c;
  static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                       {"batch", required_argument, 0, 'B'},
                                       {"seq", required_argument, 0, 'T'},
                                       {"vocab", required_argument, 0, 'V'},
                                       {"threads", required_argument, 0, 'j'},
                                       {"iters", required_argument, 0, 'n'},
                                       {"warmup", required_argument, 0, 'w'},
                                       {"backend", required_argument, 0, 'b'},
                                       {"no-fusion", no_argument, 0, 'F'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  while ((c = getopt_long(argc, argv, "m:B:T:V:j:n:w:b:Fh", opts, NULL)) != -1) {
    switch (c) {
    case 'm': path = optarg; break;
    case 'B': batch = atol(optarg); break;
    case 'T': seq = atol(optarg); break;
    case 'V': vocab = atol(optarg); break;
    case 'j': threads = atoi(optarg); break;
    case 'n': iters = atoi(optarg); break;
    case 'w': warmup = atoi(optarg); break;
    case 'b': backend = optarg; break;
    case 'F': no_fusion = 1; break;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (!path || optind < argc || batch < 1 || seq < 1 || vocab < 1 || threads < 0 || iters < 1 ||
      warmup < 0) {
    usage(stderr);
    return 2;
  }
  asg_graph *g = asg_graph_new();
  asg_onnx_model *m = NULL;
  if (asg_onnx_import(g, path, NULL, &m)) {
    fprintf(stderr, "bench_onnx: %s\n", asg_last_error());
    return 1;
  }
  asg_tensor *y = asg_onnx_model_output(m, 0);
  asg_compile_opts o = {0};
  o.backend = backend;
  o.num_threads = threads;
  o.no_fusion = no_fusion;
  asg_program *p = asg_compile(g, 1, &y, &o);
  if (!p) {
    fprintf(stderr, "bench_onnx: compile: %s\n", asg_last_error());
    return 1;
  }
  for (int i = 0; i < asg_onnx_model_input_count(m); i++) {
    asg_tensor *t = asg_onnx_model_input(m, i);
    const char *name = asg_onnx_model_input_name(m, i);
    asg_shape s = asg_tensor_shape(t);
    bool first = true;
    for (int d = 0; d < s.ndim; d++)
      if (asg_dim_is_symbolic(s.dims[d])) s.dims[d] = first ? batch : seq, first = false;
    long n = (long)asg_shape_numel(s);
    asg_dtype dt = asg_tensor_dtype(t);
    void *buf = malloc(8 * (size_t)n);
    if (!buf) return 1;
    for (long k = 0; k < n; k++) {
      unsigned long long h = (unsigned long long)k * 0x9E3779B97F4A7C15ull >> 11;
      double u = (double)h / (double)(1ull << 53);
      if (dt == ASG_F32)
        ((float *)buf)[k] = (float)(2 * u - 1);
      else if (dt == ASG_I64)
        ((int64_t *)buf)[k] = strstr(name, "mask") ? 1 : (int64_t)(u * (double)vocab);
      else {
        fprintf(stderr, "bench_onnx: input '%s' has dtype %s\n", name, asg_dtype_name(dt));
        return 1;
      }
    }
    if (asg_program_feed_tensor(p, name, dt, s, buf)) {
      fprintf(stderr, "bench_onnx: feed: %s\n", asg_last_error());
      return 1;
    }
    free(buf);
  }
  double *t = malloc(sizeof(double) * (size_t)iters);
  asg_shape ys;
  if (!t || asg_program_run(p) || asg_program_output_shape(p, y, &ys)) {
    fprintf(stderr, "bench_onnx: run: %s\n", asg_last_error());
    return 1;
  }
  /* an inference is a run and the read of its result: on a GPU the run is
   * queued, and the read waits for it */
  size_t ybytes = (size_t)asg_shape_numel(ys) * asg_dtype_size(asg_tensor_dtype(y));
  void *yh = malloc(ybytes ? ybytes : 1);
  if (!yh) return 1;
  for (int i = 0; i < warmup + iters; i++) {
    double t0 = bench_now();
    if (asg_program_run(p) || asg_program_fetch(p, y, yh, ybytes)) {
      fprintf(stderr, "bench_onnx: run: %s\n", asg_last_error());
      return 1;
    }
    if (i >= warmup) t[i - warmup] = bench_now() - t0;
  }
  free(yh);
  double med = bench_median(t, iters);
  printf("asg %s batch %ld seq %ld threads %d: %.4f ms/iter, %.0f samples/s\n", path, batch, seq,
         threads, med * 1e3, (double)batch / med);
  free(t);
  asg_program_free(p);
  asg_onnx_model_free(m);
  asg_graph_free(g);
  return 0;
}
