"""PyTorch replica of examples/char_gpt.c for time-to-accuracy: the same
corpus (every regular file of the directory but *.dat, in sorted order,
bytes as tokens, first 90% for training), model (pre-LN blocks: q/k/v/out
projections, causal softmax attention, dropout 0.1 on the attention output,
GELU MLP 4x with dropout 0.1; learned positions; untied head), AdamW (2e-3,
weight decay 0.01) with 100 warm-up steps and the example's cosine factor,
3000 steps of batch 16 x 64, then the mean loss of 20 validation batches.
Usage: python3 torch_char_gpt.py CORPUS_DIR [--steps 3000] [--mode eager|compile]
                                 [--target LOSS] [--eval-every 250]
With --target, the validation loss is also measured every --eval-every steps
(that time left out of the training time) and the first step and training
seconds at which it is <= LOSS are printed."""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("corpus")
ap.add_argument("--steps", type=int, default=3000)
ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
ap.add_argument("--target", type=float, default=None)
ap.add_argument("--eval-every", type=int, default=250)
args = ap.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
L, D, H, T, B, lr = 4, 128, 4, 64, 16, 2e-3

data = b""
for name in sorted(os.listdir(args.corpus)):
    p = os.path.join(args.corpus, name)
    if name.startswith(".") or name.endswith(".dat") or os.path.islink(p) or not os.path.isfile(p):
        continue
    with open(p, "rb") as f:
        data += f.read()
chars = sorted(set(data))
lut = {c: i for i, c in enumerate(chars)}
tokens = torch.tensor([lut[c] for c in data], dtype=torch.long, device=dev)
V, split = len(chars), len(data) * 9 // 10


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)
        self.drop1, self.drop2 = nn.Dropout(0.1), nn.Dropout(0.1)

    def forward(self, x):
        h = self.ln1(x)
        q, k, v = (t(h).view(B, T, H, D // H).transpose(1, 2) for t in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.drop1(self.o(a.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop2(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.Sequential(*[Block() for _ in range(L)])
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, V)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(T, device=dev))
        return self.head(self.ln_f(self.blocks(x)))


def batch(lo, hi, gen):
    s = torch.randint(lo, hi - T - 1, (B,), device=dev, generator=gen)
    i = s[:, None] + torch.arange(T + 1, device=dev)
    w = tokens[i]
    return w[:, :-1], w[:, 1:]


torch.manual_seed(7)
model = GPT().to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)


def step(x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x).view(-1, V), y.reshape(-1))
    loss.backward()
    opt.step()
    return loss


fn = torch.compile(step) if args.mode == "compile" else step


def validate():
    model.eval()
    vgen = torch.Generator(device=dev).manual_seed(99)
    with torch.no_grad():
        v = sum(F.cross_entropy(model(x).view(-1, V), y.reshape(-1)).item()
                for x, y in (batch(split, len(data), vgen) for _ in range(20))) / 20
    model.train()
    return v


gen = torch.Generator(device=dev).manual_seed(1)
torch.cuda.synchronize()
train_s, reached = 0.0, None
t0 = time.perf_counter()
model.train()
for s in range(1, args.steps + 1):
    warm = s / 100 if s < 100 else 1.0
    for g in opt.param_groups:
        g["lr"] = lr * warm * (0.55 + 0.45 * math.cos(math.pi * s / args.steps))
    loss = fn(*batch(0, split, gen))
    loss.item()  # a host sync per step, as the ASG example reads its loss
    if args.target is not None and reached is None and s % args.eval_every == 0:
        train_s += time.perf_counter() - t0
        v = validate()
        print(f"  step {s}: validation {v:.3f} ({train_s:.1f} s training)", flush=True)
        if v <= args.target:
            reached = (s, train_s)
        t0 = time.perf_counter()
train_s += time.perf_counter() - t0
val = validate()
print(f"torch-{args.mode} char_gpt: validation loss {val:.3f} nats/char after {args.steps} steps "
      f"({train_s:.1f} s training)")
if args.target is not None:
    print(f"torch-{args.mode} char_gpt: target {args.target:.3f} " +
          (f"reached at step {reached[0]} after {reached[1]:.1f} s training" if reached
           else "not reached"))
