#!/usr/bin/env bash
# CPU training-step benchmark, ASG vs PyTorch eager in one run on one machine.
# Usage: bench/run_cpu.sh [build-dir]   (needs python3 with torch)
set -eu
build=${1:-build}
steps=${STEPS:-50}
cd "$(dirname "$0")/.."
echo "# $(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
"$build/bench_train" cpu "$steps" | tee /tmp/asg_bench.txt
python3 bench/torch_train.py cpu "$steps" eager | tee /tmp/torch_bench.txt
for m in mlp cnn; do
  a=$(awk -v m=$m '$2==m {print $6}' /tmp/asg_bench.txt)
  t=$(awk -v m=$m '$2==m {print $6}' /tmp/torch_bench.txt)
  awk -v m=$m -v a="$a" -v t="$t" 'BEGIN {printf "ratio %s: torch/asg = %.2f (>1: ASG faster)\n", m, t / a}'
done
