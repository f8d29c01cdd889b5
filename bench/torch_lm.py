#!/usr/bin/env python3
"""transformers' side of bench_lm: prefill tokens/s (one forward of a
prompt, with its KV cache) and greedy decode tokens/s with generate()'s KV
cache, on the CPU or CUDA, eager and (CUDA) with the static cache and
torch.compile. Also measures the device's memory bandwidth (a large copy) for
the decode floor.

    python bench/torch_lm.py MODEL_DIR [--device cpu|cuda] [--threads 2]
        [--prompt 512] [--batch 1,8] [--decode 64] [--reps 3] [--mode eager|compile|both]
Prints one line per measurement: "torch <mode> batch=B prefill_tok_s=.. decode_tok_s=..".
"""
import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev, reps):
    ts = []
    for _ in range(reps):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bandwidth(dev):
    n = 1 << 28  # 1 GiB of f32
    x = torch.empty(n, device=dev)
    y = torch.empty_like(x)
    y.copy_(x)
    t = timed(lambda: y.copy_(x), dev, 5)
    return 2 * 4 * n / t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mode", default="eager", choices=["eager", "compile", "both"],
                    help="eager, static cache + torch.compile, or both")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = a.device
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).to(dev).eval()
    V = model.config.vocab_size
    if dev == "cuda":
        print(f"torch bandwidth_GBs={bandwidth(dev) / 1e9:.1f}")
    modes = {"eager": ["eager"], "compile": ["static+compile"],
             "both": ["eager", "static+compile"]}[a.mode]
    for mode in modes:
        # static+compile: generate() with the static cache compiles its decoding
        # step itself (transformers' auto-compile, torch.compile "reduce-overhead":
        # CUDA graphs); compiling model.forward by hand as well breaks its CUDA
        # graphs' outputs. The prefill is the same eager forward in both modes.
        for B in [int(b) for b in a.batch.split(",")]:
            g = torch.Generator().manual_seed(0)
            ids = torch.randint(0, V, (B, a.prompt), generator=g).to(dev)
            mask = torch.ones_like(ids)
            kw = dict(do_sample=False, attention_mask=mask, pad_token_id=0)
            if mode != "eager":
                kw["cache_implementation"] = "static"
            try:
                model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kw)  # warm-up
                pre = timed(lambda: model(ids, attention_mask=mask, use_cache=True), dev, a.reps)
                n = a.decode
                gen = timed(lambda: model.generate(ids, max_new_tokens=n + 1, min_new_tokens=n + 1,
                                                   **kw), dev, a.reps)
                one = timed(lambda: model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw),
                            dev, a.reps)
                dec = (gen - one) / n
                print(f"torch {mode} device={dev} batch={B} prompt={a.prompt} "
                      f"prefill_tok_s={B * a.prompt / pre:.1f} decode_tok_s={B / dec:.1f} "
                      f"decode_ms_per_step={1e3 * dec:.3f}", flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"torch {mode} device={dev} batch={B} failed: {type(e).__name__}: {e}",
                      flush=True)


if __name__ == "__main__":
    main()
