#!/usr/bin/env bash
# GPU training-step benchmark: ASG's Vulkan and CUDA backends and PyTorch on
# the same GPU in one run. Usage: bench/run_gpu.sh [build-dir]
# (needs an NVIDIA GPU with its Vulkan driver, python3 with torch).
# Models: the MLP and CNN steps of bench_train.c (torch_train.py), the
# char-level GPT of examples/char_gpt.c (4 layers, 128 wide, 4 heads,
# context 64, batch 16, vocabulary 128) and GPT-2 124M (B 8, T 1024) in
# fp32, through bench_gpt2 (torch_gpt2.py); with FMNIST=dir and/or
# CORPUS=dir also time to accuracy of examples/fashion_mnist_cnn and
# examples/char_gpt on CUDA against their PyTorch replicas
# (bench/torch_fmnist_cnn.py, bench/torch_char_gpt.py). Environment: STEPS
# (50), GPT2_STEPS (10), BACKENDS ("vulkan cuda"), SKIP_GPT2 (unset), FMNIST,
# CORPUS (unset: skipped). Mixed precision: bench/run_gpt2.sh.
set -u
build=${1:-build}
STEPS=${STEPS:-50} GPT2_STEPS=${GPT2_STEPS:-10} BACKENDS=${BACKENDS:-"vulkan cuda"}
cd "$(dirname "$0")/.."
echo "# $(date -u '+%F %H:%M UTC') $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
for be in $BACKENDS; do "$build/asg" backends | grep "^$be"; done
echo "## MLP and CNN training steps"
for be in $BACKENDS; do "$build/bench_train" "$be" "$STEPS"; done
for mode in eager graphs; do python3 bench/torch_train.py cuda "$STEPS" "$mode"; done
char=(--layers 4 --dim 128 --heads 4 --ctx 64 --batch 16 --vocab 128)
echo "## char-level GPT step (fp32)"
for be in $BACKENDS; do
  "$build/bench_gpt2" --backend "$be" --precision fp32 "${char[@]}" --steps "$STEPS" | tail -1
done
for attn in naive sdpa; do
  python3 bench/torch_gpt2.py --mode eager --precision fp32 --attn "$attn" "${char[@]}" \
    --steps "$STEPS" | tail -1
done
if [ -n "${FMNIST:-}" ]; then
  echo "## time to accuracy: Fashion-MNIST CNN"
  "$build/fashion_mnist_cnn" --backend cuda --data "$FMNIST" | grep "^epoch [0-9]*:\|final"
  python3 bench/torch_fmnist_cnn.py "$FMNIST"
fi
if [ -n "${CORPUS:-}" ]; then
  echo "## time to accuracy: char GPT"
  line=$("$build/char_gpt" --backend cuda --sample 0 "$CORPUS" | grep "^validation loss")
  echo "$line"
  # PyTorch's time to ASG's validation loss
  python3 bench/torch_char_gpt.py "$CORPUS" --target "$(echo "$line" | awk '{print $3}')" | tail -2
fi
[ -n "${SKIP_GPT2:-}" ] && exit 0
echo "## GPT-2 124M step (fp32, B 8, T 1024)"
for be in $BACKENDS; do
  "$build/bench_gpt2" --backend "$be" --precision fp32 --steps "$GPT2_STEPS" --warmup 2 | tail -1
done
for attn in naive sdpa; do
  python3 bench/torch_gpt2.py --mode eager --precision fp32 --attn "$attn" --steps "$GPT2_STEPS" \
    --warmup 2 | tail -1
done
