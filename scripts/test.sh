#!/usr/bin/env bash
# The test command: install dependencies, build everything (every backend
# whose toolchain is found) with warnings as errors, run ctest. Its tree is
# build/; scripts/train.sh builds in build-train/ with other flags, so running
# one does not make the other rebuild.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DASG_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
