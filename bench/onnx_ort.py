#!/usr/bin/env python3
"""ASG vs onnxruntime on the same imported PyTorch exports, in one run:
inference latency (median ms per run) and throughput at batch 1 and 64, both
on the CPU with 2 threads (ASG: bench_onnx --threads 2; onnxruntime:
intra_op_num_threads=2, inter_op_num_threads=1, sequential execution, all
graph optimizations). Inputs as bench_onnx makes them (float uniform in
[-1, 1), int64 ids in [0, 64), sequence 16). Each measurement alternates ASG
and onnxruntime --rounds times and keeps the median of the rounds' medians.

    python3 bench/onnx_ort.py --bench build/bench_onnx [--rounds 3] [--iters 200]

Prints one table row per model and batch; ratio = ASG ms / onnxruntime ms
(< 1: ASG faster). Needs numpy and onnxruntime.
"""
import argparse
import os
import re
import statistics
import subprocess
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "tests", "onnx", "models")


def inputs_like_bench(sess, batch, seq, vocab=64):
    """The values bench_onnx feeds (the same hash of the element index)."""
    feeds = {}
    for inp in sess.get_inputs():
        dims, first = [], True
        for d in inp.shape:
            if isinstance(d, int):
                dims.append(d)
            else:
                dims.append(batch if first else seq)
                first = False
        n = int(np.prod(dims))
        k = np.arange(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            h = (k * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
        u = h.astype(np.float64) / float(1 << 53)
        if inp.type == "tensor(float)":
            feeds[inp.name] = (2 * u - 1).astype(np.float32).reshape(dims)
        elif "mask" in inp.name:
            feeds[inp.name] = np.ones(dims, np.int64)
        else:
            feeds[inp.name] = (u * vocab).astype(np.int64).reshape(dims)
    return feeds


def ort_ms(path, batch, seq, iters, warmup):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 2
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    feeds = inputs_like_bench(sess, batch, seq)
    ts = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        if i >= warmup:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def asg_ms(bench, path, batch, seq, iters, warmup):
    out = subprocess.run([bench, "--model", path, "--batch", str(batch), "--seq", str(seq),
                          "--threads", "2", "--iters", str(iters), "--warmup", str(warmup)],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) ms/iter", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench_onnx"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--models", default="cnn,transformer")
    a = ap.parse_args()
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} CPUs; 2 threads each; "
          f"median of {a.rounds} rounds of {a.iters} runs")
    print(f"| model | batch | ASG ms | onnxruntime ms | ASG samples/s | onnxruntime samples/s "
          f"| ratio ASG/ORT |")
    print("|---|---|---|---|---|---|---|")
    for name in a.models.split(","):
        path = os.path.join(MODELS, f"torch_{name}.onnx")
        for batch in (1, 64):
            asg, ref = [], []
            for _ in range(a.rounds):  # alternate, so that load changes hit both alike
                asg.append(asg_ms(a.bench, path, batch, a.seq, a.iters, a.warmup))
                ref.append(ort_ms(path, batch, a.seq, a.iters, a.warmup))
            ma, mr = statistics.median(asg), statistics.median(ref)
            print(f"| {name} | {batch} | {ma:.4f} | {mr:.4f} | {batch / ma * 1e3:.0f} "
                  f"| {batch / mr * 1e3:.0f} | {ma / mr:.2f} |", flush=True)


if __name__ == "__main__":
    main()
