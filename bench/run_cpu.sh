#!/usr/bin/env bash
# CPU training-step benchmark, ASG vs PyTorch eager in one run on one machine:
# the MLP, the Fashion-MNIST CNN and the char-level GPT of examples/char_gpt.c
# (bench/bench_train.c, bench/torch_train.py; their headers say what each
# model is). Checks that both sides count the same parameters.
# Usage: bench/run_cpu.sh [build-dir]   (needs python3 with torch)
# Environment: STEPS (50), MODEL (all; or mlp, cnn, gpt: that model only),
# PRECISION (f32; bf16: ASG's bf16_matmul against torch.autocast(bfloat16)).
set -eu
build=${1:-build}
steps=${STEPS:-50}
model=${MODEL:-all}
prec=${PRECISION:-f32}
cd "$(dirname "$0")/.."
echo "# $(date -u +%F) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $prec"
"$build/bench_train" cpu "$steps" "$model" "$prec" | tee /tmp/asg_bench.txt
python3 bench/torch_train.py cpu "$steps" eager "$model" "$prec" | tee /tmp/torch_bench.txt
for m in mlp cnn gpt; do
  [ "$model" = all ] || [ "$model" = "$m" ] || continue
  a=$(awk -v m=$m '$1=="model" && $2==m {print $6}' /tmp/asg_bench.txt)
  t=$(awk -v m=$m '$1=="model" && $2==m {print $6}' /tmp/torch_bench.txt)
  pa=$(awk -v m=$m '$2=="params" && $3==m {print $4}' /tmp/asg_bench.txt)
  pt=$(awk -v m=$m '$2=="params" && $3==m {print $4}' /tmp/torch_bench.txt)
  [ "$pa" = "$pt" ] || echo "WARNING $m: $pa parameters in ASG, $pt in PyTorch: not the same model"
  awk -v m=$m -v a="$a" -v t="$t" 'BEGIN {printf "ratio %s: torch/asg = %.2f (>1: ASG faster)\n", m, t / a}'
done
