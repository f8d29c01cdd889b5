#!/usr/bin/env bash
# The test command: install dependencies, build with warnings as errors, run ctest.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DASG_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
