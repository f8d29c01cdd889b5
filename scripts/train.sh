#!/usr/bin/env bash
# The main job: install dependencies (Fashion-MNIST included), build the CPU
# library and the example only, and train the Fashion-MNIST MLP on the CPU.
# Extra arguments go to the example. It builds in its own directory
# (build-train), so it and scripts/test.sh (build) never rebuild each other's
# tree; no GPU backend, test or benchmark is compiled for it.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build-train -DASG_WITH_CUDA=OFF -DASG_WITH_VULKAN=OFF -DASG_BUILD_TESTS=OFF \
  -DASG_BUILD_BENCH=OFF >/dev/null
cmake --build build-train -j"$(nproc)" --target fashion_mnist_mlp
exec build-train/fashion_mnist_mlp "$@"
