#!/usr/bin/env python3
"""ASG vs PyTorch on the models of tests/onnx/make_torch_models.py, in one
run: ASG imports the committed ONNX exports (bench_onnx --backend B), PyTorch
runs the same modules (the generator's classes and initialization) eagerly
and under torch.compile. Latency = median ms of a forward and the copy of
its output to the host (so a GPU run is waited for), batch 1 and 64,
sequence 16. Each measurement alternates ASG and PyTorch --rounds times and
keeps the median of the rounds' medians. For CUDA, where onnxruntime's CUDA
provider is not available (the issue's fallback peer is PyTorch):

    python3 bench/onnx_torch.py --bench build/bench_onnx --device cuda

Prints one table row per model and batch; ratio = ASG ms / PyTorch ms
(< 1: ASG faster), against eager and against torch.compile.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "tests", "onnx", "models")
sys.path.insert(0, os.path.join(HERE, "..", "tests", "onnx"))
import make_torch_models as mtm  # noqa: E402  (the exported modules)


def modules(device):
    """The CNN and the encoder with the generator's initialization."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    out = {}
    for name, cls in (("cnn", mtm.CNN), ("transformer", mtm.Encoder)):
        m = cls()
        mtm.randomize(m, gen)
        out[name] = m.eval().to(device)
    return out


def example(name, batch, seq, device):
    if name == "cnn":
        return torch.rand(batch, 1, 28, 28, device=device) * 2 - 1
    return torch.randint(0, 64, (batch, seq), device=device)


def torch_ms(fn, x, iters, warmup):
    ts = []
    with torch.no_grad():
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            fn(x).cpu()  # the output on the host: waits for the device
            if i >= warmup:
                ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def asg_ms(bench, backend, path, batch, seq, iters, warmup, threads):
    out = subprocess.run([bench, "--model", path, "--batch", str(batch), "--seq", str(seq),
                          "--backend", backend, "--threads", str(threads), "--iters", str(iters),
                          "--warmup", str(warmup)], check=True, capture_output=True,
                         text=True).stdout
    return float(re.search(r"([0-9.]+) ms/iter", out).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench_onnx"))
    ap.add_argument("--device", default="cuda", help="cuda or cpu (ASG backend of the same name)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of both (cpu only)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    a = ap.parse_args()
    if a.device == "cpu":
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    mods = modules(dev)
    what = torch.cuda.get_device_name() if a.device == "cuda" else f"{a.threads} CPU threads"
    print(f"torch {torch.__version__} on {what}; median of {a.rounds} rounds of {a.iters} runs")
    print("| model | batch | ASG ms | torch eager ms | torch.compile ms | ASG/eager | ASG/compile |")
    print("|---|---|---|---|---|---|---|")
    for name, m in mods.items():
        path = os.path.join(MODELS, f"torch_{name}.onnx")
        comp = None
        if not a.no_compile:
            try:
                comp = torch.compile(m)
            except Exception as e:  # noqa: BLE001  (reported, the row goes on without it)
                print(f"torch.compile failed: {e}", file=sys.stderr)
        for batch in (1, 64):
            x = example(name, batch, a.seq, dev)
            asg, eager, compiled = [], [], []
            for _ in range(a.rounds):  # alternate, so that load changes hit all alike
                asg.append(asg_ms(a.bench, a.device, path, batch, a.seq, a.iters, a.warmup,
                                  a.threads))
                eager.append(torch_ms(m, x, a.iters, a.warmup))
                if comp is not None:
                    try:
                        compiled.append(torch_ms(comp, x, a.iters, a.warmup))
                    except Exception as e:  # noqa: BLE001
                        print(f"torch.compile run failed: {e}", file=sys.stderr)
                        comp = None
            ma, me = statistics.median(asg), statistics.median(eager)
            mc = statistics.median(compiled) if compiled else float("nan")
            print(f"| {name} | {batch} | {ma:.4f} | {me:.4f} | {mc:.4f} | {ma / me:.2f} "
                  f"| {ma / mc:.2f} |", flush=True)


if __name__ == "__main__":
    main()
