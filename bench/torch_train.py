"""PyTorch side of bench_train.c: the same models, batch sizes and Adam step.
Usage: python3 torch_train.py [cpu|cuda] [steps] [eager|compile|graphs]
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

dev = sys.argv[1] if len(sys.argv) > 1 else "cpu"
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 50
mode = sys.argv[3] if len(sys.argv) > 3 else "eager"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def models():
    yield "mlp", 128, (784,), nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                                            nn.ReLU(), nn.Linear(512, 10))
    yield "cnn", 64, (1, 28, 28), nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


for name, batch, shape, model in models():
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=(mode == "graphs"))
    x = torch.rand((batch,) + shape, device=dev)
    y = torch.arange(batch, device=dev) % 10
    lossf = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()
        return loss

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
            static_loss = lossf(model(x), y)
            static_loss.backward()
            opt.step()

        def fn():
            graph.replay()
            return static_loss
    for _ in range(5):
        fn()
    sync()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = fn()
        loss.item()  # the same host sync as bench_train.c
        ts.append(time.perf_counter() - t0)
    host = [torch.rand((batch,) + shape).pin_memory() if dev == "cuda" else
            torch.rand((batch,) + shape) for _ in range(2)]
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        x.copy_(host[i % 2], non_blocking=True)
        loss = fn()
    loss.item()
    pipe = (time.perf_counter() - t0) / steps
    print(f"model {name} backend torch-{dev}-{mode} ms {1e3 * statistics.median(ts):.3f} "
          f"min_ms {1e3 * min(ts):.3f} pipe_ms {1e3 * pipe:.3f} loss {loss.item():.4f}")
