"""PyTorch DistributedDataParallel (gloo, CPU) on bench_dist.c's model: the
MLP 784-H-H-10, AdamW, the same batch per rank (weak scaling). Prints one
line like bench_dist.

  python bench/torch_ddp.py --ranks N [--batch 64] [--steps 30] [--threads T] [--hidden 1024]
"""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank, a, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(784, a.hidden), torch.nn.ReLU(),
                            torch.nn.Linear(a.hidden, a.hidden), torch.nn.ReLU(),
                            torch.nn.Linear(a.hidden, 10))
    ddp = torch.nn.parallel.DistributedDataParallel(m)
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3, weight_decay=0.01)
    i = torch.arange(784 * a.batch)
    x = (((i * 37 + rank * 11) % 101).float() / 101).reshape(a.batch, 784)
    y = (torch.arange(a.batch) * 7 + rank) % 10
    warm = 5
    for s in range(warm + a.steps):
        if s == warm:
            dist.barrier()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(ddp(x), y)
        loss.backward()
        opt.step()
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        out.put(dt)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--port", type=int, default=29517)
    a = p.parse_args()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(r, a, a.port, q)) for r in range(a.ranks)]
    for pr in ps:
        pr.start()
    dt = q.get()
    for pr in ps:
        pr.join()
    print(f"torch ddp gloo ranks {a.ranks} threads/rank {a.threads} batch/rank {a.batch} "
          f"hidden {a.hidden}: {1e3 * dt / a.steps:.2f} ms/step, "
          f"{a.ranks * a.batch * a.steps / dt:.0f} samples/s (torch {torch.__version__})")


if __name__ == "__main__":
    main()
