#!/usr/bin/env bash
# The main job: install dependencies (Fashion-MNIST included), build, and
# train the Fashion-MNIST MLP on the CPU. Extra arguments go to the example.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target fashion_mnist_mlp
exec build/fashion_mnist_mlp "$@"
