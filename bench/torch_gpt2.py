"""PyTorch side of bench/gpt2.c: the same GPT-2 small training step.

Usage: python3 bench/torch_gpt2.py [--device cuda] [--mode eager|compile]
         [--precision fp32|tf32|bf16] [--attn sdpa|naive] [--batch 8] [--ctx 1024]
         [--steps 20] [--warmup 3] [--layers 12] [--dim 768] [--heads 12]
         [--vocab 50304] [--peak-tflops P] [--seed S]

Model as in bench/gpt2.c: wte/wpe embeddings N(0, 0.02), pre-LN blocks (fused
qkv Linear with bias, out projection, MLP d -> 4d -> d with nn.GELU() -- the
exact erf form, which is what ASG's asg_nn_transformer_block uses, not GPT-2's
tanh approximation), final LayerNorm, tied head (logits = h @ wte^T), mean
cross-entropy, AdamW(lr=6e-4, weight_decay=0.1; fused=True on cuda).
Dropout 0.

--attn sdpa (default): F.scaled_dot_product_attention(is_causal=True), i.e.
flash attention on cuda, which ASG does not have; --attn naive: materialized
scores and softmax [B, H, T, T], as ASG does (compare like with like).
--precision: fp32 (TF32 off), tf32 (TF32 matmuls), bf16 (torch.autocast
bf16, fp32 master weights, TF32 on for the remaining fp32 matmuls).
--mode compile: torch.compile(model); the optimizer step stays eager (fused).

Timing as bench/gpt2.c: warm-up steps, then the median of `steps` steps,
each followed by loss.item() (a host sync). Summary line:
  gpt2 backend torch-cuda-eager precision fp32 B 8 T 1024 params 124.5M ms ...
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PEAKS = {"fp32": 67.0, "tf32": 494.5, "bf16": 989.0}  # H100 SXM dense TFLOP/s

ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cuda")
ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32")
ap.add_argument("--attn", choices=["sdpa", "naive"], default="sdpa")
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--ctx", type=int, default=1024)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--dim", type=int, default=768)
ap.add_argument("--heads", type=int, default=12)
ap.add_argument("--vocab", type=int, default=50304)
ap.add_argument("--peak-tflops", type=float, default=0.0)
ap.add_argument("--seed", type=int, default=1234)
args = ap.parse_args()

dev = torch.device(args.device)
cuda = dev.type == "cuda"
tf32 = args.precision in ("tf32", "bf16")
torch.backends.cuda.matmul.allow_tf32 = tf32
torch.backends.cudnn.allow_tf32 = tf32
torch.manual_seed(args.seed)


class Block(nn.Module):
    def __init__(self, d, h, attn, ctx):
        super().__init__()
        self.h, self.attn = h, attn
        if attn == "naive":
            self.register_buffer("mask", torch.ones(ctx, ctx, dtype=torch.bool).triu(1),
                                 persistent=False)
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.act = nn.GELU()  # erf form, as ASG's transformer block
        self.fc2 = nn.Linear(4 * d, d)

    def attention(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)
        q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
        if self.attn == "sdpa":
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # materialized [B, H, T, T] scores, as ASG
            s = (q * (1.0 / math.sqrt(D // self.h))) @ k.transpose(-2, -1)
            o = s.masked_fill(self.mask[:T, :T], float("-inf")).softmax(dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, T, D))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class GPT2(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.wte = nn.Embedding(a.vocab, a.dim)
        self.wpe = nn.Embedding(a.ctx, a.dim)
        nn.init.normal_(self.wte.weight, 0.0, 0.02)  # GPT-2 init (as bench/gpt2.c)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02)
        self.blocks = nn.ModuleList(Block(a.dim, a.heads, a.attn, a.ctx) for _ in range(a.layers))
        self.ln_f = nn.LayerNorm(a.dim)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


model = GPT2(args).to(dev)
nparams = sum(p.numel() for p in model.parameters())  # wte counted once
opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1,
                        **({"fused": True} if cuda else {}))
fwd = torch.compile(model) if args.mode == "compile" else model
g = torch.Generator().manual_seed(args.seed)
x = torch.randint(0, args.vocab, (args.batch, args.ctx), generator=g).to(dev)
y = torch.randint(0, args.vocab, (args.batch, args.ctx), generator=g).to(dev)


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        loss = fwd(x, y)
    loss.backward()
    opt.step()
    return loss


def sync():
    if cuda:
        torch.cuda.synchronize()


tw = time.perf_counter()
first = None
for i in range(args.warmup):
    loss = step()
    if i == 0:
        first = loss.item()
sync()
tw = time.perf_counter() - tw
if cuda:
    torch.cuda.reset_peak_memory_stats()
ts = []
for i in range(args.steps):
    t0 = time.perf_counter()
    loss = step()
    last = loss.item()  # the same host sync as bench/gpt2.c
    ts.append(time.perf_counter() - t0)
    if first is None:
        first = last
med = statistics.median(ts)
tokens = args.batch * args.ctx
flops_tok = 6.0 * nparams + 6.0 * args.layers * args.dim * args.ctx
tps = tokens / med
tflops = flops_tok * tps / 1e12
peak = args.peak_tflops if args.peak_tflops > 0 else PEAKS[args.precision]
backend = f"torch-{dev.type}-{args.mode}"
mem = (f"peak memory allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
       if cuda else "peak memory n/a on cpu")
print(f"model: GPT-2, {args.layers} layers, d {args.dim}, {args.heads} heads, vocab {args.vocab}, "
      f"context {args.ctx}, batch {args.batch}; attention {args.attn}; PyTorch {torch.__version__}")
print(f"params {nparams} ({nparams / 1e6:.2f}M); {mem}; FLOPs per token 6N + 6*L*d*T = "
      f"{flops_tok:.4g}; MFU below vs {peak:g} ({args.precision})")
print(f"loss first step {first:.4f}, last {last:.4f} (ln V = {math.log(args.vocab):.4f}); "
      f"warm-up {args.warmup} steps {tw:.2f} s; step ms median {1e3 * med:.2f} "
      f"min {1e3 * min(ts):.2f} max {1e3 * max(ts):.2f}; MFU vs bf16 989: {tflops / 989.0:.4f}")
print(f"gpt2 backend {backend} precision {args.precision} B {args.batch} T {args.ctx} "
      f"params {nparams / 1e6:.1f}M ms {1e3 * med:.1f} tok/s {tps:.0f} tflops {tflops:.2f} "
      f"peak {peak:g} mfu {tflops / peak:.4f} attn {args.attn}")
