"""PyTorch replica of examples/fashion_mnist_cnn.c for time-to-accuracy:
the same network (conv-bn-relu-pool x2, dropout 0.25, linear 3136-128-10),
standardization, Adam with lr 1e-3 cosine-decayed to 2e-5 over all steps,
batch 64 (shuffled, last partial batch dropped), 5 epochs, test accuracy
after each epoch. The data sit on the GPU (no host loader in the timing).
Usage: python3 torch_fmnist_cnn.py DATA_DIR [--epochs 5] [--mode eager|compile]
Prints one line per epoch: accuracy and seconds since training started."""
import argparse
import gzip
import math
import time

import numpy as np
import torch
import torch.nn as nn

ap = argparse.ArgumentParser()
ap.add_argument("data")
ap.add_argument("--epochs", type=int, default=5)
ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
args = ap.parse_args()
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"


def idx(name, off):
    with gzip.open(f"{args.data}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=off)


def images(name):
    x = idx(name, 16).astype(np.float32).reshape(-1, 1, 28, 28)
    return torch.from_numpy((x / 255.0 - 0.2860) / 0.3530).to(dev)


xtr, xte = images("train-images-idx3-ubyte.gz"), images("t10k-images-idx3-ubyte.gz")
ytr = torch.from_numpy(idx("train-labels-idx1-ubyte.gz", 8).astype(np.int64)).to(dev)
yte = torch.from_numpy(idx("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)).to(dev)
torch.manual_seed(1)
model = nn.Sequential(
    nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
    nn.Linear(128, 10)).to(dev)
batch = 64
per_epoch = xtr.shape[0] // batch
total = args.epochs * per_epoch
lr0, lr_min = 1e-3, 2e-5
opt = torch.optim.Adam(model.parameters(), lr=lr0)
lossf = nn.CrossEntropyLoss()


def step(x, y):
    opt.zero_grad(set_to_none=True)
    loss = lossf(model(x), y)
    loss.backward()
    opt.step()
    return loss


fn = torch.compile(step) if args.mode == "compile" else step
torch.cuda.synchronize()
t0 = time.perf_counter()
t = 0
for ep in range(1, args.epochs + 1):
    model.train()
    perm = torch.randperm(xtr.shape[0], device=dev)
    for b in range(per_epoch):
        for g in opt.param_groups:
            g["lr"] = lr_min + 0.5 * (lr0 - lr_min) * (1 + math.cos(math.pi * t / total))
        i = perm[b * batch:(b + 1) * batch]
        loss = fn(xtr[i], ytr[i])
        loss.item()  # a host sync per step, as the ASG example reads its loss
        t += 1
    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[s:s + 500]).argmax(1) == yte[s:s + 500]).sum().item()
                      for s in range(0, xte.shape[0], 500))
    print(f"torch-{args.mode} epoch {ep}: test accuracy {100 * correct / xte.shape[0]:.2f}% "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
