#!/usr/bin/env bash
# GPT-2 124M training step on CUDA, ASG vs PyTorch in one run on one machine.
# Usage: bench/run_gpt2.sh [build-dir]    (needs python3 with torch, a GPU)
# Environment: B (8), T (1024), STEPS (20), WARMUP (3), DEVICE (cuda),
#   TORCH_RUNS: PyTorch configurations "mode:precision:attn" to run
#   (default: eager and compile, each fp32/tf32/bf16 with sdpa, plus fp32
#   naive attention, which materializes the [B, H, T, T] scores).
# ASG runs fp32, tf32 (allow_tf32) and bf16 (bf16_matmul: bf16 GEMM operands,
# f32 storage; PyTorch's bf16 is autocast). Every line is also kept in
# /tmp/gpt2_bench.txt; ratio lines compare each PyTorch run with ASG.
set -u
build=${1:-build}
B=${B:-8} T=${T:-1024} STEPS=${STEPS:-20} WARMUP=${WARMUP:-3} DEVICE=${DEVICE:-cuda}
TORCH_RUNS=${TORCH_RUNS:-"eager:fp32:sdpa eager:fp32:naive eager:tf32:sdpa eager:bf16:sdpa
  compile:fp32:sdpa compile:fp32:naive compile:tf32:sdpa compile:bf16:sdpa"}
cd "$(dirname "$0")/.."
out=/tmp/gpt2_bench.txt
: >"$out"
common=(--batch "$B" --ctx "$T" --steps "$STEPS" --warmup "$WARMUP")
echo "# $(date -u '+%F %H:%M UTC') $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"

for p in fp32 tf32 bf16; do
  echo "## ASG $p"
  "$build/bench_gpt2" --backend "$DEVICE" --precision "$p" "${common[@]}" | tee -a "$out"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || [ "$rc" = 77 ] || echo "ASG $p failed (exit $rc)"
done
for r in $TORCH_RUNS; do
  IFS=: read -r mode prec attn <<<"$r"
  echo "## PyTorch $mode $prec $attn"
  python3 bench/torch_gpt2.py --device "$DEVICE" --mode "$mode" --precision "$prec" \
    --attn "$attn" "${common[@]}" | tee -a "$out"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || echo "PyTorch $r failed (exit $rc)"
done

# field value after a key on a summary line
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}'; }
asg_ms() { grep "^gpt2 backend $DEVICE precision $1 " "$out" | field ms; }
echo "## ratios (torch ms / ASG ms; > 1: ASG faster)"
# every PyTorch run vs ASG at the same precision (fp32, tf32, bf16)
grep '^gpt2 backend torch-' "$out" | while read -r line; do
  be=$(echo "$line" | field backend)
  prec=$(echo "$line" | field precision)
  attn=$(echo "$line" | field attn)
  t=$(echo "$line" | field ms)
  a=$(asg_ms "$prec")
  [ -n "$a" ] || continue
  awk -v n="$be $prec $attn" -v r="$prec" -v a="$a" -v t="$t" \
    'BEGIN {printf "ratio %-28s / asg %s: %.2f\n", n, r, t / a}'
done
