"""PyTorch side of bench_train.c: the same models, batch sizes and optimizer
steps: the MLP and the CNN with Adam 1e-3, the char-level GPT of
examples/char_gpt.c (4 pre-LN blocks, width 128, 4 heads, learned positions
over a context of 64, GELU MLP 4x, final layernorm, untied head; dropout 0
here; batch 16, vocabulary 114, random token ids and targets fixed per run)
with AdamW 2e-3, weight decay 0.01.
Usage: python3 torch_train.py [cpu|cuda] [steps] [eager|compile|graphs]
                              [mlp|cnn|gpt|all] [f32|bf16]
(the fourth argument runs one model only, default all; bf16: the forward
under torch.autocast with bfloat16, as bench_train's bf16). Per model a line
"# params <name> <count> loss0 <loss>" (parameter elements, loss of the
first step), to be compared with bench_train's, then the timing line.
graphs: the whole step (forward, backward, Adam with capturable=True)
captured once with torch.cuda.graph and replayed (CUDA only).
Two figures per model, as bench_train.c: ms (each step followed by
loss.item(), a host sync) and pipe_ms (steps back to back, each uploading a
new batch from pinned host memory, one sync at the end; time per step)."""
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

dev = sys.argv[1] if len(sys.argv) > 1 else "cpu"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
mode = sys.argv[3] if len(sys.argv) > 3 else "eager"
only = sys.argv[4] if len(sys.argv) > 4 else "all"
prec = sys.argv[5] if len(sys.argv) > 5 else "f32"
if prec not in ("f32", "bf16"):
    sys.exit(f"unknown precision {prec} (f32 or bf16)")
if only not in ("mlp", "cnn", "gpt", "all"):
    sys.exit(f"unknown model {only} (mlp, cnn, gpt or all)")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.manual_seed(0)  # the same initial weights and data every run

L, D, H, T, V = 4, 128, 4, 64, 114  # the char GPT, as bench_common.h


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

    def forward(self, x):
        B = x.shape[0]
        h = self.ln1(x)
        q, k, v = (t(h).view(B, T, H, D // H).transpose(1, 2) for t in (self.q, self.k, self.v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, D))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(T, D)
        self.blocks = nn.Sequential(*[Block() for _ in range(L)])
        self.ln_f, self.head = nn.LayerNorm(D), nn.Linear(D, V)
        self.register_buffer("pos", torch.arange(T), persistent=False)

    def forward(self, idx):
        return self.head(self.ln_f(self.blocks(self.wte(idx) + self.wpe(self.pos))))


def models():
    yield "mlp", 128, (784,), nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                                            nn.ReLU(), nn.Linear(512, 10))
    yield "cnn", 64, (1, 28, 28), nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    yield "gpt", 16, (T,), GPT()


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


for name, batch, shape, model in models():
    if only not in ("all", name):
        continue
    model = model.to(dev)
    lm = name == "gpt"
    if lm:
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01,
                                capturable=(mode == "graphs"))
        x = torch.randint(0, V, (batch,) + shape, device=dev)
        y = torch.randint(0, V, (batch,) + shape, device=dev)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=(mode == "graphs"))
        x = torch.rand((batch,) + shape, device=dev)
        y = torch.arange(batch, device=dev) % 10
    lossf = nn.CrossEntropyLoss()

    def fwd():
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=prec == "bf16"):
            out = model(x)
            return lossf(out.view(-1, V), y.view(-1)) if lm else lossf(out, y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = fwd()
        loss.backward()
        opt.step()
        return loss

    nparams = sum(p.numel() for p in model.parameters())
    print(f"# params {name} {nparams} loss0 {step().item():.4f}")

    fn = torch.compile(step) if mode == "compile" else step
    if mode == "graphs":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = fwd()
            static_loss.backward()
            opt.step()

        def fn():
            graph.replay()
            return static_loss
    for _ in range(4):  # with the step above, 5 warm-up steps as bench_train.c
        fn()
    sync()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = fn()
        loss.item()  # the same host sync as bench_train.c
        ts.append(time.perf_counter() - t0)
    host = [torch.randint(0, V, (batch,) + shape) if lm else torch.rand((batch,) + shape)
            for _ in range(2)]
    if dev == "cuda":
        host = [h.pin_memory() for h in host]
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        x.copy_(host[i % 2], non_blocking=True)
        loss = fn()
    loss.item()
    pipe = (time.perf_counter() - t0) / steps
    print(f"model {name} backend torch-{dev}-{mode} ms {1e3 * statistics.median(ts):.3f} "
          f"min_ms {1e3 * min(ts):.3f} pipe_ms {1e3 * pipe:.3f} loss {loss.item():.4f}")
