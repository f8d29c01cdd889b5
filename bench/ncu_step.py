#!/usr/bin/env python3
"""Per-kernel table of one training step from an Nsight Compute CSV.

Run on the GPU machine (graph replay off, so that ncu sees each kernel; two
steps, the second one is reported; caches and clocks left alone):

  ASG_CUDA_GRAPH=0 ncu --cache-control none --clock-control none \
      --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
      --csv bench_gpt2 --backend cuda --precision bf16 --steps 2 --warmup 0 > step.csv
  python3 bench/ncu_step.py step.csv [rows]

The step is the kernels after the next-to-last multi-tensor Adam launch, up
to and including the last one. Kernels are grouped by name (template
arguments kept); per group: total ms, launches, us per launch, DRAM TB/s and
MB moved per launch. Times are ncu's, kernel by kernel (no launch gaps).
"""
import collections
import csv
import re
import sys


def main():
    rows = list(csv.reader(open(sys.argv[1])))
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    hdr, recs = None, {}
    for r in rows:
        if hdr is None:
            if "Kernel Name" in r:
                hdr = r
            continue
        if len(r) != len(hdr):
            continue
        d = dict(zip(hdr, r))
        e = recs.setdefault(int(d["ID"]), {"name": d["Kernel Name"]})
        e[d["Metric Name"]] = float(d["Metric Value"].replace(",", "") or 0)
    ids = sorted(recs)
    adam = [k for k, i in enumerate(ids) if "adam_multi" in recs[i]["name"]]
    sel = ids[adam[-2] + 1 : adam[-1] + 1] if len(adam) > 1 else ids
    agg = collections.defaultdict(lambda: collections.defaultdict(float))
    for i in sel:
        e = recs[i]
        name = e["name"].replace("(anonymous namespace)::", "").replace("void ", "")
        a = agg[re.split(r"[(]", name)[0][:90]]
        a["ns"] += e.get("gpu__time_duration.sum", 0)
        a["n"] += 1
        a["by"] += e.get("dram__bytes_read.sum", 0) + e.get("dram__bytes_write.sum", 0)
    total = sum(a["ns"] for a in agg.values())
    print("step: %d kernels, %.3f ms" % (len(sel), total / 1e6))
    for k, a in sorted(agg.items(), key=lambda kv: -kv[1]["ns"])[:top]:
        print("%8.3f ms %4d x %7.1f us %5.2f TB/s %6.0f MB  %s" % (
            a["ns"] / 1e6, a["n"], a["ns"] / a["n"] / 1e3, a["by"] / a["ns"] / 1e3,
            a["by"] / a["n"] / 1e6, k))


if __name__ == "__main__":
    main()
